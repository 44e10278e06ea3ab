"""Seeded scene graphs: 1-3 groups of coloured shapes, each a shape, colour, size and slots (count = slots).

Groups have distinct shapes and distinct colours, so a caption can name an object by its shape.
A scene may carry a word of 2-4 capital letters, written along the bottom (the bottom slot is
then left free for it).  Everything here is plain Python: no numpy, no torch.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace

__all__ = ["COLOURS", "PALETTE", "SHAPES", "SIZES", "SLOTS", "Group", "Scene", "sample_scene", "sample_scenes"]

# RGB 0-255; far apart, so the checker can segment by distance to the palette.
PALETTE: dict[str, tuple[int, int, int]] = {
    "red": (230, 40, 40),
    "green": (40, 190, 60),
    "blue": (50, 90, 230),
    "yellow": (235, 215, 40),
    "purple": (160, 60, 200),
    "cyan": (40, 200, 210),
}
COLOURS = tuple(PALETTE)
SHAPES = ("circle", "square", "triangle")
SIZES = ("small", "large")
# Slot centres (x, y) on the 32-pixel base canvas; large shapes are 7 px, small 5 px, so
# neighbouring slots never touch.
SLOTS: dict[str, tuple[int, int]] = {
    "left": (8, 16), "right": (24, 16), "top": (16, 7), "bottom": (16, 25), "center": (16, 16),
}
WORD_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


@dataclass(frozen=True)
class Group:
    """``len(slots)`` copies of one shape, one colour and one size, one copy per slot."""

    shape: str
    colour: str
    size: str
    slots: tuple[str, ...]

    @property
    def count(self) -> int:
        return len(self.slots)


@dataclass(frozen=True)
class Scene:
    groups: tuple[Group, ...]
    word: str = ""

    def free_slots(self) -> list[str]:
        used = {s for g in self.groups for s in g.slots}
        return [s for s in SLOTS if s not in used and not (self.word and s == "bottom")]

    def with_group(self, i: int, **changes: object) -> Scene:
        groups = list(self.groups)
        groups[i] = replace(groups[i], **changes)  # type: ignore[arg-type]
        return replace(self, groups=tuple(groups))


def sample_scene(rng: random.Random, *, p_word: float = 0.4) -> Scene:
    """One scene: 1-3 groups, counts 1-3 (as slots allow), an optional 2-4 letter word."""
    word = "".join(rng.choice(WORD_LETTERS) for _ in range(rng.randint(2, 4))) if rng.random() < p_word else ""
    free = [s for s in SLOTS if not (word and s == "bottom")]
    rng.shuffle(free)
    n_groups = rng.randint(1, 3)
    shapes = rng.sample(SHAPES, n_groups)
    colours = rng.sample(COLOURS, n_groups)
    groups = []
    for i, (shape, colour) in enumerate(zip(shapes, colours)):
        room = len(free) - (n_groups - i - 1)  # leave one slot for each group still to place
        count = min(rng.choice((1, 1, 2, 3)), room)
        slots, free = tuple(free[:count]), free[count:]
        groups.append(Group(shape, colour, rng.choice(SIZES), slots))
    return Scene(tuple(groups), word)


def sample_scenes(n: int, seed: int = 0) -> list[Scene]:
    """``n`` scenes from one seeded stream (the same list on every machine)."""
    rng = random.Random(seed)
    return [sample_scene(rng) for _ in range(n)]


def variants(scene: Scene, kind: str) -> list[Scene]:
    """Every scene one change away: ``kind`` colour | position | count | letter (for checker tests)."""
    out: list[Scene] = []
    used_colours = {g.colour for g in scene.groups}
    for i, g in enumerate(scene.groups):
        free = scene.free_slots()
        if kind == "colour":
            out += [scene.with_group(i, colour=c) for c in COLOURS if c not in used_colours]
        elif kind == "position":
            out += [scene.with_group(i, slots=g.slots[:j] + (s,) + g.slots[j + 1:])
                    for j in range(g.count) for s in free]
        elif kind == "count":
            out += [scene.with_group(i, slots=g.slots + (s,)) for s in free]
            if g.count > 1:
                out.append(scene.with_group(i, slots=g.slots[:-1]))
    if kind == "letter":
        out += [replace(scene, word=scene.word[:j] + c + scene.word[j + 1:])
                for j in range(len(scene.word)) for c in WORD_LETTERS if c != scene.word[j]]
    return out
