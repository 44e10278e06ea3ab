"""Deterministic renderer: a scene graph -> an RGB ``uint8`` image (numpy only).

Shapes are drawn on a 32-pixel base canvas without anti-aliasing (every pixel is exactly a
palette colour, the background or the text white) and scaled up by pixel repetition for 64 px,
so the checker can read back exactly what was drawn.  Pillow is only used by `to_pil`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from harness_plugins.generator._glyphs import GLYPH_H, GLYPH_W, GLYPHS
from harness_plugins.generator._scene import PALETTE, SLOTS, Scene

if TYPE_CHECKING:
    from numpy.typing import NDArray

__all__ = ["BACKGROUND", "BASE", "TEXT_COLOUR", "WORD_Y", "render", "shape_mask", "to_pil", "word_x"]

BASE = 32
BACKGROUND = (0, 0, 0)
TEXT_COLOUR = (255, 255, 255)
WORD_Y = 24  # top row of the word, under the centre slot
HALF = {"small": 2, "large": 3}  # side 5 or 7 pixels


def word_x(n_letters: int) -> int:
    """Left column of an ``n_letters`` word (letters 5 wide, 1 apart, centred)."""
    return (BASE - (n_letters * (GLYPH_W + 1) - 1)) // 2


def shape_mask(shape: str, size: str, centre: tuple[int, int]) -> NDArray[np.bool_]:
    """``[32, 32]`` mask of one shape centred on ``centre`` (x, y)."""
    h = HALF[size]
    cx, cy = centre
    yy, xx = np.mgrid[0:BASE, 0:BASE]
    dx, dy = xx - cx, yy - cy
    inside: NDArray[np.bool_] = (np.abs(dx) <= h) & (np.abs(dy) <= h)
    if shape == "square":
        return inside
    out: NDArray[np.bool_]
    if shape == "circle":
        out = np.logical_and(inside, dx**2 + dy**2 <= (h + 0.5) ** 2)
        return out
    if shape == "triangle":  # apex up: row k from the top is 2*(k//2)+1 wide
        out = np.logical_and(inside, np.abs(dx) <= (dy + h) // 2)
        return out
    raise ValueError(f"unknown shape {shape!r}; use circle, square or triangle")


def render(scene: Scene, size: int = 32) -> NDArray[np.uint8]:
    """``[size, size, 3]`` uint8 image of ``scene``; ``size`` is 32 or a multiple of it (64)."""
    if size % BASE:
        raise ValueError(f"image size {size} must be a multiple of {BASE} (32 or 64)")
    img = np.zeros((BASE, BASE, 3), dtype=np.uint8)
    img[:] = BACKGROUND
    for g in scene.groups:
        for slot in g.slots:
            img[shape_mask(g.shape, g.size, SLOTS[slot])] = PALETTE[g.colour]
    x0 = word_x(len(scene.word))
    for i, letter in enumerate(scene.word):
        on = np.array([[c == "#" for c in row] for row in GLYPHS[letter]])
        x = x0 + i * (GLYPH_W + 1)
        img[WORD_Y:WORD_Y + GLYPH_H, x:x + GLYPH_W][on] = TEXT_COLOUR
    k = size // BASE
    return np.kron(img, np.ones((k, k, 1), dtype=np.uint8)) if k > 1 else img


def to_pil(img: NDArray[np.uint8]) -> Any:
    """A ``PIL.Image`` of ``img`` (needs Pillow: pip install 'ted-harness[gen]')."""
    from PIL import Image

    return Image.fromarray(img, mode="RGB")
