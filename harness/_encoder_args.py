"""Per-encoder arguments: ``NAME[key=value,...]`` in an encoder spec.

One syntax for registry names and ``FAMILY:PATH`` alike (lm-eval's ``--model_args``, MTEB's
per-model revision), so one run can compare encoders at their own settings::

    --encoders 'umt5-xxl[dtype=bfloat16,max_length=512],causal-lm:/ckpt/x[revision=abc]'

The keys are `EncoderOptions`' fields, ``revision`` (the checkpoint's revision) and ``name`` (the
name the encoder's rows carry; default: the spec as written).  A value may be quoted ('...' or
"...") to hold a comma, a bracket or an equals sign.  Precedence: the registry entry's options, then
the run-wide flags (``--dtype``, ``--max-length``, ...), then the bracket.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Any

from harness._exceptions import ConfigError, unknown_name
from harness.types import EncoderOptions

__all__ = ["ENCODER_ARG_KEYS", "format_encoder_args", "parse_encoder_args", "split_encoder_list", "template_problem"]

_DTYPES = ("float32", "bfloat16", "float16")
_TEMPLATES = ("plain", "chat", "granted-caption")
_BOOL = {"true": True, "yes": True, "1": True, "on": True, "false": False, "no": False, "0": False, "off": False}
_NONE = ("none", "null")
_DEVICE = re.compile(r"^(cpu|mps|meta|(cuda|xpu|npu)(:\d+)?)$")
_INT_MIN = {"max_length": 1, "train_max_length": 1, "drop_prefix_tokens": 0}
_MAX_INT = 1 << 24  # a length bound against typos (16M tokens), as --max-length's
_FIELDS = {f.name: f for f in dataclasses.fields(EncoderOptions)}
ENCODER_ARG_KEYS: tuple[str, ...] = ("name", "revision", *sorted(_FIELDS))
"""Every key an encoder's ``[...]`` may set."""


def split_encoder_list(text: str) -> list[str]:
    """``--encoders`` split on the commas outside brackets and quotes (``a[x=1,y=2],b`` -> 2 items).

    Raises ValueError on an unbalanced bracket or quote."""
    items: list[str] = []
    depth, quote, start = 0, "", 0
    for i, ch in enumerate(text):
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"" and depth:
            quote = ch
        elif ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
            if depth < 0:
                raise ValueError(f"{text!r}: ']' without '['")
        elif ch == "," and depth == 0:
            items.append(text[start:i])
            start = i + 1
    if quote:
        raise ValueError(f"{text!r}: unclosed quote {quote}")
    if depth:
        raise ValueError(f"{text!r}: '[' without ']'")
    items.append(text[start:])
    return [x.strip() for x in items if x.strip()]


def _pairs(body: str, spec: str) -> list[tuple[str, str]]:
    """``k=v,k2='a, b'`` -> [(k, v), (k2, 'a, b')]."""
    out: list[tuple[str, str]] = []
    i, n = 0, len(body)
    while i < n:
        eq = body.find("=", i)
        comma = body.find(",", i)
        if eq < 0 or (0 <= comma < eq):
            item = body[i:comma if comma >= 0 else n].strip()
            raise ConfigError(f"encoder {spec!r}: {item!r} is not key=value" if item else
                              f"encoder {spec!r}: an empty item in [...]; write [key=value,...]")
        key = body[i:eq].strip()
        j = eq + 1
        while j < n and body[j] == " ":
            j += 1
        if j < n and body[j] in "'\"":
            end = body.find(body[j], j + 1)
            value, j = body[j + 1:end], end + 1
            while j < n and body[j] == " ":
                j += 1
            if j < n and body[j] != ",":
                raise ConfigError(f"encoder {spec!r}: text after the quoted value of {key!r}")
        else:
            end = body.find(",", j)
            end = n if end < 0 else end
            value, j = body[j:end].strip(), end
        out.append((key, value))
        i = j + 1
        if j < n and i >= n:
            raise ConfigError(f"encoder {spec!r}: a trailing ',' in [...]")
    return out


def _value(key: str, raw: str, spec: str) -> Any:
    """``raw`` typed as the field ``key`` wants; one-line error naming the encoder otherwise."""
    where = f"encoder {spec!r}: {key}={raw!r}"
    if key in ("name", "revision"):
        if not raw:
            raise ConfigError(f"{where} is empty")
        return raw
    f = _FIELDS[key]
    optional = f.default is None
    if optional and raw.lower() in _NONE:
        return None
    kind = str(f.type)
    if "bool" in kind:
        if raw.lower() not in _BOOL:
            raise ConfigError(f"{where} is not true or false")
        return _BOOL[raw.lower()]
    if "int" in kind:
        try:
            value = int(raw)
        except ValueError:
            raise ConfigError(f"{where} is not an integer") from None
        low = _INT_MIN.get(key, 0)
        if not low <= value <= _MAX_INT:
            raise ConfigError(f"{where} is out of range ({low}..{_MAX_INT})")
        return value
    if key == "dtype" and raw not in _DTYPES:
        raise ConfigError(f"{where} is not one of {', '.join(_DTYPES)}")
    if key == "device" and not _DEVICE.match(raw):
        raise ConfigError(f"{where} is not a device; use cpu, cuda, cuda:N or mps")
    if key in ("template", "statement_template"):
        why = template_problem(raw)
        if why is not None:
            raise ConfigError(f"{where} {why}")
    if not raw and not optional:
        raise ConfigError(f"{where} is empty")
    return raw


def template_problem(value: str) -> str | None:
    """Why ``value`` is no caption template (None: it is one): a named template, or a format string with
    ``{text}`` (and optionally ``{caption_type}``).  Shared by ``--template`` and an encoder's ``[template=]``."""
    if value in _TEMPLATES:
        return None
    try:
        rendered = value.format(text="\0", caption_type="image")
    except (KeyError, IndexError, ValueError) as exc:
        return (f"is not a valid format string ({exc!r}); it may use {{text}} and {{caption_type}}, and double "
                "other braces: {{ }}")
    if "\0" not in rendered:
        return f"has no {{text}} placeholder; use {', '.join(_TEMPLATES)} or a string with {{text}}"
    return None


def parse_encoder_args(spec: str) -> tuple[str, dict[str, Any]]:
    """``'minilm[dtype=bfloat16, max_length=128]'`` -> ``('minilm', {'dtype': 'bfloat16', 'max_length': 128})``.

    A spec without brackets comes back with ``{}``.  Unknown keys, bad values, an empty bracket, a
    key given twice and text after ``]`` are one-line `ConfigError`\\ s naming the encoder."""
    spec = spec.strip()
    if "[" not in spec and "]" not in spec:
        return spec, {}
    try:
        split_encoder_list(spec)
    except ValueError:
        raise ConfigError(f"encoder {spec!r}: unbalanced [ ] or quotes; write NAME[key=value,...]") from None
    base, _, rest = spec.partition("[")
    if not rest.endswith("]"):
        raise ConfigError(f"encoder {spec!r}: text after ']'; write NAME[key=value,...]")
    body = rest[:-1]
    if not base.strip():
        raise ConfigError(f"encoder {spec!r}: no encoder name before '['")
    if not body.strip():
        raise ConfigError(f"encoder {spec!r}: empty brackets; write NAME[key=value,...] or just NAME "
                          f"(keys: {', '.join(ENCODER_ARG_KEYS)})")
    args: dict[str, Any] = {}
    for key, raw in _pairs(body, spec):
        if key not in ENCODER_ARG_KEYS:
            raise ConfigError(f"encoder {spec!r}: {unknown_name('key', key, ENCODER_ARG_KEYS)}")
        if key in args:
            raise ConfigError(f"encoder {spec!r}: {key} given twice")
        args[key] = _value(key, raw, spec)
    return base.strip(), args


def format_encoder_args(args: Mapping[str, Any]) -> str:
    """The ``[...]`` text for ``args`` (empty for none); values quoted where they need it."""
    if not args:
        return ""
    parts = []
    for k, v in args.items():
        text = "none" if v is None else str(v).lower() if isinstance(v, bool) else str(v)
        if any(c in text for c in ",[]='\"") or text != text.strip() or not text:
            text = f"'{text}'" if "'" not in text else f'"{text}"'
        parts.append(f"{k}={text}")
    return "[" + ",".join(parts) + "]"
