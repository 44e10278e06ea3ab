"""GenEval-style checker: read an image back and score which of a caption's facts hold.

Pixels are labelled by the nearest palette colour (or background, or text white) when close
enough; objects are connected components per colour (``scipy.ndimage.label``) of at least
`MIN_AREA` pixels, classified as square / circle / triangle by how much of their bounding box
they fill, and as large / small by their extent.  The word is read letter by letter with
template matching against the renderer's own glyphs.  Works on 32- or 64-pixel images (64 is
averaged down to the 32-pixel base canvas first).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from harness_plugins.generator._captions import CATEGORIES, Fact, _relation
from harness_plugins.generator._glyphs import GLYPH_H, GLYPH_W, GLYPHS
from harness_plugins.generator._render import BASE, TEXT_COLOUR, WORD_Y, word_x
from harness_plugins.generator._scene import PALETTE

if TYPE_CHECKING:
    from numpy.typing import NDArray

__all__ = ["MIN_AREA", "Blob", "check_facts", "find_blobs", "read_word", "score_caption"]

MIN_AREA = 4  # smaller components are noise (a small triangle has 13 pixels)
MAX_DIST = 90.0  # RGB distance to a palette colour to count as that colour
_NAMES = list(PALETTE) + ["text"]
_COLOURS = np.array(list(PALETTE.values()) + [TEXT_COLOUR], dtype=np.float32)
_TEMPLATES = {k: np.array([[c == "#" for c in row] for row in v]) for k, v in GLYPHS.items()}


@dataclass(frozen=True)
class Blob:
    colour: str
    shape: str
    size: str
    area: int
    centroid: tuple[float, float]  # (x, y) on the 32-pixel canvas


def _base(img: NDArray[np.uint8]) -> NDArray[np.float32]:
    x = np.asarray(img, dtype=np.float32)
    k = x.shape[0] // BASE
    if x.shape[:2] != (BASE * k, BASE * k) or k < 1:
        raise ValueError(f"image shape {x.shape} is not square at a multiple of {BASE} pixels")
    return x.reshape(BASE, k, BASE, k, 3).mean((1, 3)) if k > 1 else x


def _labels(x: NDArray[np.float32]) -> NDArray[np.int64]:
    """Per pixel: index into ``_NAMES``, or -1 for background / unclear."""
    d = np.linalg.norm(x[:, :, None, :] - _COLOURS[None, None], axis=-1)
    lab = d.argmin(-1)
    return np.where(d.min(-1) <= MAX_DIST, lab, -1)


def _classify(mask: NDArray[np.bool_]) -> tuple[str, str]:
    ys, xs = np.nonzero(mask)
    h, w = int(ys.max() - ys.min()) + 1, int(xs.max() - xs.min()) + 1
    fill = mask.sum() / float(h * w)
    shape = "square" if fill > 0.92 else "circle" if fill > 0.65 else "triangle"
    return shape, "large" if max(h, w) >= 6 else "small"


def find_blobs(img: NDArray[np.uint8]) -> list[Blob]:
    """Every coloured object of ``img`` (text excluded), in label order."""
    from scipy import ndimage

    lab = _labels(_base(img))
    out = []
    for ci, name in enumerate(_NAMES[:-1]):
        comps, n = ndimage.label(lab == ci)
        for k in range(1, n + 1):
            m = comps == k
            if m.sum() < MIN_AREA:
                continue
            ys, xs = np.nonzero(m)
            shape, size = _classify(m)
            out.append(Blob(name, shape, size, int(m.sum()), (float(xs.mean()), float(ys.mean()))))
    return out


def read_word(img: NDArray[np.uint8], n_letters: int) -> str:
    """Read ``n_letters`` letters where the renderer writes them (aligned within ±1 pixel)."""
    text = _labels(_base(img)) == len(_NAMES) - 1
    x0 = word_x(n_letters)
    best: tuple[float, str] = (-1.0, "")
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            y, score, word = WORD_Y + dy, 0.0, ""
            for i in range(n_letters):
                x = x0 + dx + i * (GLYPH_W + 1)
                cell = np.zeros((GLYPH_H, GLYPH_W), dtype=bool)
                part = text[max(y, 0):y + GLYPH_H, max(x, 0):x + GLYPH_W]
                cell[:part.shape[0], :part.shape[1]] = part
                hits = {k: float((cell == t).mean()) for k, t in _TEMPLATES.items()}
                letter = max(hits, key=lambda k: hits[k])
                score, word = score + hits[letter], word + letter
            if score > best[0]:
                best = (score, word)
    return best[1]


def _holds(fact: Fact, blobs: Sequence[Blob], img: NDArray[np.uint8]) -> bool:
    if fact.kind == "word":
        return read_word(img, len(fact.value)) == fact.value
    mine = [b for b in blobs if b.shape == fact.shape]
    if fact.kind == "count":
        return len(mine) == fact.count
    if not mine:
        return False
    if fact.kind == "colour":
        return Counter(b.colour for b in mine).most_common(1)[0][0] == fact.value
    if fact.kind == "size":
        return max(mine, key=lambda b: b.area).size == fact.value
    if fact.kind == "relation":
        other = [b for b in blobs if b.shape == fact.other]
        if not other:
            return False
        a = tuple(np.mean([b.centroid for b in mine], axis=0))
        o = tuple(np.mean([b.centroid for b in other], axis=0))
        return _relation((a[0], a[1]), (o[0], o[1]), fact.value)
    raise ValueError(f"unknown fact kind {fact.kind!r}")


def check_facts(img: NDArray[np.uint8], facts: Sequence[Fact]) -> list[bool]:
    """Whether each fact holds in ``img``."""
    blobs = find_blobs(img)
    return [_holds(f, blobs, img) for f in facts]


def score_caption(img: NDArray[np.uint8], facts: Sequence[Fact]) -> dict[str, float]:
    """Fraction of the facts that hold: ``"all"`` and per category present (``adjective``, ...)."""
    ok = check_facts(img, facts)
    out = {"all": sum(ok) / len(ok)} if ok else {}
    for cat in CATEGORIES:
        sub = [o for o, f in zip(ok, facts) if f.category == cat]
        if sub:
            out[cat] = sum(sub) / len(sub)
    return out
