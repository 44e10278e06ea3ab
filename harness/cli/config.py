"""``--config run.yaml`` for ``harness run``, ``train`` and ``score`` (lm-eval's ``--config``).

A run file is a YAML mapping of the command's options by their long names (``train-pairs`` or
``train_pairs``), plus ``plugins`` / ``registry`` (the global ``-p`` / ``--registry``).  Flags on
the command line override the file; list-valued flags that add (``--include-path``, ``-O``) add to
it.  Every value is checked as the flag checks it, and an unknown key is refused by name, before
anything runs.  A finished ``run`` / ``score`` writes the resolved options as ``config.yaml`` next to
its results, so ``harness run --config out/config.yaml`` reruns the same thing::

    encoders: [umt5-xxl[dtype=bfloat16], qwen3-vl-8b]
    tasks: ted6k
    extract: [last, norm-avg]
    train-pairs: pairs.jsonl
    preset: official
    seeds: [0, 1, 2]
"""

from __future__ import annotations

import argparse
import difflib
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from harness._exceptions import ConfigError

__all__ = ["CONFIG_COMMANDS", "CONFIG_FILE", "config_plugins", "expand_config", "resolved_config", "split_command"]

CONFIG_COMMANDS = ("run", "train", "score")
CONFIG_FILE = "config.yaml"
_GLOBAL = {"plugins": "-p", "registry": "--registry"}
_SKIP = {"command", "config", "verbose", "help"}  # never written to, nor read from, a run file
SECRET = re.compile(r"api_?key|secret|password|(^|_)token$", re.IGNORECASE)
"""Option names whose values are never written to a run file or results (give them again, or by env)."""


def split_command(argv: Sequence[str]) -> tuple[list[str], str | None, list[str]]:
    """``argv`` as (global options, the sub-command, its arguments); (argv, None, []) without one."""
    pre = argparse.ArgumentParser(add_help=False, exit_on_error=False)
    pre.add_argument("-p", dest="plugins", action="append", default=[])
    pre.add_argument("--registry", action="append")
    pre.add_argument("-v", "--verbose", action="store_true")
    pre.add_argument("rest", nargs=argparse.REMAINDER)
    try:
        rest = list(pre.parse_known_args(argv)[0].rest)
    except argparse.ArgumentError:
        return list(argv), None, []
    if not rest:
        return list(argv), None, []
    cut = len(argv) - len(rest)
    return list(argv[:cut]), rest[0], rest[1:]


def _config_path(args: Sequence[str]) -> str | None:
    for i, tok in enumerate(args):
        if tok == "--":
            return None
        if tok == "--config":
            if i + 1 >= len(args):
                raise ConfigError("--config needs a run file (a YAML mapping of options)")
            return args[i + 1]
        if tok.startswith("--config="):
            return tok.partition("=")[2]
    return None


def read_config(path: str) -> dict[str, Any]:
    """The run file's mapping; a missing file, bad YAML or a non-mapping is one line naming it."""
    p = Path(path)
    if not path.strip():
        raise ConfigError("--config '': give a run file (a YAML mapping of options)")
    if not p.is_file():
        raise ConfigError(f"--config {path!r}: no such file" if not p.exists() else f"--config {path!r} is not a file")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise ConfigError(f"--config {path!r} cannot be read ({exc.strerror or exc})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}{where}: not valid YAML ({getattr(exc, 'problem', None) or exc})") from None
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{path}: a run file is a mapping of option: value, got {type(data).__name__}")
    return {str(k): v for k, v in data.items()}


def _options(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    """Every key a run file may use for ``parser``: long option names (``-`` and ``_`` alike) and
    positionals by their dest."""
    out: dict[str, argparse.Action] = {}
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction) or action.dest in _SKIP:
            continue
        negated = isinstance(action, argparse.BooleanOptionalAction)
        longs = [s[2:] for s in action.option_strings if s.startswith("--") and not (negated and s.startswith("--no-"))]
        for name in longs or ([action.dest] if not action.option_strings else []):
            out[name.replace("_", "-")] = action
    return out


def _scalar(value: Any, where: str) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{where}: {value!r} is not a finite number")
    if isinstance(value, (str, int, float)):
        return str(value)
    raise ConfigError(f"{where}: expected a value, got {type(value).__name__} {value!r}")


def _tokens(action: argparse.Action, key: str, value: Any, path: str) -> list[str]:
    """``value`` as the command-line tokens that give it, each checked as argparse would."""
    where = f"{path}: {key}"
    flag = next((s for s in action.option_strings if s.startswith("--")), None)
    if value is None:
        return []
    if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction, argparse.BooleanOptionalAction)):
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: {value!r} is not true or false")
        if isinstance(action, argparse.BooleanOptionalAction):
            return [flag if value else f"--no-{flag[2:]}"] if flag else []
        on = isinstance(action, argparse._StoreTrueAction)
        return [flag] if flag and value == on else []
    many = isinstance(action, argparse._AppendAction) or action.nargs in ("*", "+")
    if isinstance(value, Mapping):
        raise ConfigError(f"{where}: expected a value or a list, got a mapping")
    items = list(value) if isinstance(value, (list, tuple)) else [value]
    if many:
        strings = [_scalar(v, where) for v in items]
    else:  # a comma-separated flag (--encoders, --extract, --seeds) takes a YAML list too
        strings = [",".join(_scalar(v, where) for v in items)]
    if not strings or any(not s.strip() for s in strings) and action.type is not None:
        raise ConfigError(f"{where}: empty value")
    for s in strings:
        try:
            typed = action.type(s) if callable(action.type) else s
        except (argparse.ArgumentTypeError, TypeError, ValueError) as exc:
            raise ConfigError(f"{where}: {exc}") from None
        if action.choices is not None and typed not in action.choices:
            raise ConfigError(f"{where}: {s!r} is not one of {', '.join(map(str, action.choices))}")
    if flag is None:  # a positional
        return strings
    if isinstance(action, argparse._AppendAction):
        return [f"{flag}={s}" for s in strings]
    return [flag, *strings] if many else [f"{flag}={strings[0]}"]


def config_plugins(argv: Sequence[str]) -> list[str]:
    """The ``plugins:`` a ``--config`` run file names (loaded before the command line's ``-p``)."""
    _, command, rest = split_command(argv)
    path = _config_path(rest) if command in CONFIG_COMMANDS else None
    if path is None:
        return []
    value = read_config(path).get("plugins")
    items = value if isinstance(value, list) else [] if value is None else [value]
    return [_scalar(v, f"{path}: plugins") for v in items]


def expand_config(argv: Sequence[str], parser: argparse.ArgumentParser) -> list[str]:
    """``argv`` with its ``--config`` file's options put in before the command line's own (which
    therefore win).  ``argv`` unchanged without ``--config``."""
    head, command, rest = split_command(argv)
    path = _config_path(rest) if command in CONFIG_COMMANDS else None
    if command is None or path is None:
        return list(argv)
    data = read_config(path)
    sub = _subparser(parser, command)
    known = _options(sub)
    before: list[str] = []
    opts: list[str] = []
    positional: list[str] = []
    for key, value in data.items():
        norm = key.replace("_", "-")
        if norm in _GLOBAL:
            items = value if isinstance(value, list) else [] if value is None else [value]
            before += [t for v in items for t in (_GLOBAL[norm], _scalar(v, f"{path}: {key}"))]
            continue
        action = known.get(norm)
        if action is None:
            close = difflib.get_close_matches(norm, [*known, *_GLOBAL], n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]!r}?" if close else f"; `harness {command} --help` lists them"
            raise ConfigError(f"{path}: unknown option {key!r} for harness {command}{hint}")
        toks = _tokens(action, key, value, path)
        (opts if action.option_strings else positional).extend(toks)
    out = [*before, *head, command, *opts, *rest]
    if positional and not _has_positional(sub, rest):
        out += positional
    return out


def _subparser(parser: argparse.ArgumentParser, command: str) -> argparse.ArgumentParser:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action.choices[command]  # type: ignore[no-any-return]
    raise ConfigError(f"no sub-command {command!r}")  # pragma: no cover - the parser always has them


def _has_positional(sub: argparse.ArgumentParser, rest: Sequence[str]) -> bool:
    """Whether the command line gives the command's positional arguments itself."""
    probe = argparse.ArgumentParser(add_help=False, exit_on_error=False)
    for action in sub._actions:
        if action.option_strings and not isinstance(action, argparse._HelpAction):
            kwargs: dict[str, Any] = {"dest": action.dest}
            if action.nargs is not None or not isinstance(action, argparse._StoreAction):
                if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction,
                                       argparse.BooleanOptionalAction)):
                    kwargs["action"] = "store_true"
                else:
                    kwargs["nargs"] = action.nargs
            probe.add_argument(*action.option_strings, **kwargs)
    probe.add_argument("positional", nargs="*")
    try:
        return bool(probe.parse_known_args(list(rest))[0].positional)
    except argparse.ArgumentError:
        return True


def _plain(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def resolved_config(args: argparse.Namespace, parser: argparse.ArgumentParser, command: str,
                    *, plugins: Sequence[str] = (), registry: Sequence[str] | None = None) -> str:
    """The YAML run file that reruns ``args``: every option of ``command`` by its long name, with the
    value this run used (null: the default, resolved at run time)."""
    sub = _subparser(parser, command)
    data: dict[str, Any] = {}
    if plugins:
        data["plugins"] = list(plugins)
    if registry:
        data["registry"] = list(registry)
    seen: set[str] = set()
    for name, action in _options(sub).items():
        if action.dest in seen:
            continue
        seen.add(action.dest)
        value = None if SECRET.search(action.dest) else _plain(getattr(args, action.dest, None))
        if isinstance(value, list) and not value and isinstance(action, argparse._AppendAction):
            value = None
        data[name] = value
    head = (f"# harness {command} --config THIS_FILE reruns this {command}; flags given with it override "
            "these values.\n# null: the option's default (secrets such as API keys are never written).\n")
    return head + str(yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=120))
