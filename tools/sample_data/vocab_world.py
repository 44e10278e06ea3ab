"""Closed vocabularies for the scene generator: attributes, manners, settings and sign text.

Every value here is hand-written for this project. Attribute values come in *scales*: a
statement using a value from the opposite pole (or another colour that cannot be confused
with the true one) contradicts the caption, which is how negatives are verified.
"""

from __future__ import annotations

from dataclasses import dataclass

COLOURS: tuple[str, ...] = (
    "red", "orange", "yellow", "green", "blue", "purple", "pink", "brown", "black", "white",
    "grey", "teal", "navy", "maroon", "beige", "turquoise", "olive", "lavender", "gold",
    "silver", "crimson", "cream",
)

# Colours that a reader might call by each other's name; never used as a contradiction.
CONFUSABLE_COLOURS: tuple[frozenset[str], ...] = (
    frozenset({"red", "crimson", "maroon", "pink"}),
    frozenset({"blue", "navy", "teal", "turquoise", "lavender"}),
    frozenset({"green", "teal", "olive", "turquoise"}),
    frozenset({"purple", "lavender", "pink", "maroon"}),
    frozenset({"brown", "beige", "maroon", "olive", "gold", "orange"}),
    frozenset({"yellow", "gold", "orange", "beige", "cream"}),
    frozenset({"grey", "silver"}),
    frozenset({"white", "cream", "beige", "silver"}),
)

# How a colour reads on fur or feathers.
ANIMAL_COLOUR_WORDS: dict[str, str] = {"gold": "golden", "orange": "ginger"}
COLOUR_SHADES: tuple[str, ...] = ("bright", "pale", "deep", "faded", "dark")
NEUTRALS: tuple[str, ...] = ("white", "black", "grey", "silver", "gold", "cream", "beige")
DARK_COLOURS: tuple[str, ...] = ("navy", "maroon", "olive", "crimson", "lavender")  # no shade

MATERIALS: dict[str, str] = {
    # adjective -> noun used in "made of ..."
    "wooden": "wood", "metal": "metal", "glass": "glass", "plastic": "plastic",
    "ceramic": "ceramic", "leather": "leather", "wicker": "wicker", "stone": "stone",
    "cardboard": "cardboard", "woollen": "wool", "rubber": "rubber", "marble": "marble",
    "copper": "copper", "steel": "steel", "canvas": "canvas", "bamboo": "bamboo",
    "paper": "paper", "velvet": "velvet",
}
CONFUSABLE_MATERIALS: tuple[frozenset[str], ...] = (
    frozenset({"metal", "steel", "copper"}),
    frozenset({"stone", "marble"}),
    frozenset({"wicker", "bamboo", "wooden"}),
    frozenset({"cardboard", "paper"}),
    frozenset({"canvas", "velvet", "woollen"}),
)


@dataclass(frozen=True)
class Scale:
    """Two mutually exclusive poles; each pole lists interchangeable surface words."""

    key: str
    low: tuple[str, ...]
    high: tuple[str, ...]

    def pole(self, word: str) -> int:
        """0 for the low pole, 1 for the high pole, -1 if the word is not on this scale."""
        if word in self.low:
            return 0
        return 1 if word in self.high else -1

    def words(self, pole: int) -> tuple[str, ...]:
        return self.low if pole == 0 else self.high


SIZE_SCALES: dict[str, Scale] = {
    "size": Scale("size", ("small", "little", "tiny"), ("large", "big", "huge")),
    "height": Scale("height", ("short",), ("tall",)),
}
STATE_SCALES: dict[str, Scale] = {
    "open": Scale("open", ("closed",), ("open",)),
    "fill": Scale("fill", ("empty",), ("full",)),
    "light": Scale("light", ("unlit",), ("lit",)),
    "power": Scale("power", ("switched off",), ("switched on",)),
}
PATTERNS: tuple[str, ...] = ("striped", "checked", "polka-dot", "floral", "plain", "zigzag")

MANNER_SCALES: tuple[Scale, ...] = (
    Scale("speed", ("slowly", "unhurriedly", "at a leisurely pace"),
          ("quickly", "hastily", "in a hurry", "rapidly")),
    Scale("care", ("carefully", "cautiously", "with great care"),
          ("carelessly", "sloppily", "without any care")),
    Scale("force", ("gently", "softly", "delicately"), ("roughly", "forcefully", "violently")),
    Scale("calm", ("calmly", "serenely", "in a relaxed way"),
          ("nervously", "anxiously", "restlessly")),
    Scale("grace", ("gracefully", "elegantly", "smoothly"),
          ("clumsily", "awkwardly", "ungracefully")),
    Scale("energy", ("lazily", "sluggishly", "listlessly"),
          ("energetically", "eagerly", "vigorously")),
    Scale("noise", ("quietly", "silently", "without a sound"),
          ("loudly", "noisily", "with a lot of noise")),
    Scale("mood", ("cheerfully", "happily", "joyfully"), ("angrily", "grumpily", "sullenly")),
)

GARMENTS_ANY: tuple[str, ...] = (
    "coat", "jacket", "raincoat", "sweater", "hoodie", "apron", "scarf", "cap", "t-shirt",
    "vest", "cardigan", "blazer", "beanie", "poncho",
)
GARMENTS_TEXT: tuple[str, ...] = ("t-shirt", "hoodie", "apron", "cap")

TIMES: tuple[str, ...] = (
    "in the early morning", "around noon", "late in the afternoon", "at dusk",
    "late at night", "on a grey afternoon", "just after sunrise", "in the evening",
)
CAMERA_MOVES: tuple[str, ...] = (
    "The camera stays fixed at eye level for the whole clip.",
    "The camera pans gradually to the right as the action unfolds.",
    "A handheld camera follows the action with a slight wobble.",
    "The shot is filmed from a high angle and never cuts away.",
    "The camera pushes in a little toward the end of the shot.",
    "The whole clip is a single static wide shot.",
    "The camera tracks sideways, keeping everyone in frame.",
)

TEXT_POOLS: dict[str, tuple[str, ...]] = {
    "shop": (
        "BLUE HERON CAFE", "MOSSWOOD BAKERY", "ZEPHYR BIKES", "LUMA LAUNDRY", "KELLAN & SONS",
        "PEBBLEFORD MARKET", "MARLOWE BOOKS", "TIDEWATER FISH CO", "BRAMBLE & CO",
        "NOVA PIZZA", "ORCHID FLORIST", "COPPER KETTLE INN", "DRIFTWOOD SURF SHOP",
        "PIXEL REPAIRS", "SUNNYSIDE DINER", "THE LARK", "WAFFLE HUT", "FERN & FIG",
        "GRAIN & GROVE", "SPARROW POST", "HALCYON HOTEL", "VELVET MOON", "QUAYSIDE DELI",
        "TALLOW & WICK", "ODDLY NOODLES", "CINDER GYM", "PLUM TREE TOYS", "GOLDFINCH TEA",
    ),
    "notice": (
        "OPEN 24 HOURS", "NO PARKING", "SALE 40% OFF", "HOT SOUP", "LIVE MUSIC TONIGHT",
        "CLOSED", "WELCOME", "STAFF ONLY", "WET PAINT", "BEWARE OF DOG", "FREE WIFI",
        "FRESH FIGS $3", "2 FOR $5", "TODAY: LENTIL STEW", "PLEASE KNOCK", "MIND THE STEP",
        "EXIT", "QUIET PLEASE", "SOLD OUT", "BACK IN 5 MIN",
    ),
    "place": (
        "ROUTE 18", "GATE 7", "PLATFORM 4", "ROOM 214", "WILLOW LANE", "ELM ST", "3RD AVE",
        "MAPLE COURT", "KIOSK 9", "BAY 3", "LOT C", "DOCK 12", "LINE 6", "TRAM 22",
        "BEACON 5", "CARGO 88", "LOT 7B", "PIER 40",
    ),
    "label": (
        "FLOUR", "SUGAR", "RICE", "SALT", "COCOA", "OATS", "TEA", "HONEY", "JAM", "PICKLES",
        "OLIVES", "FRAGILE", "THIS SIDE UP", "HANDLE WITH CARE", "NO. 47", "EST. 1962",
        "$4.50", "LEMONS", "BOLTS", "SEEDS", "BUTTONS", "SPARE PARTS",
    ),
    "name": (
        "QUILLO", "MARIGOLD", "NIMBUS", "JUNO", "MOCHI", "POLARIS", "KAPOK", "ASTER",
        "TOFFEE", "RIVET", "ALBA", "MISTRAL", "ZINNIA", "HALDEN", "ORBIT", "TALLY HO",
        "STAY CURIOUS", "HELLO SUNSHINE", "TEAM OTTER", "RUN CLUB", "NO. 9", "BIG DIPPER",
    ),
}

# Spare words for word-level edits of sign text ("BLUE HERON CAFE" -> "BLUE HERON DELI").
TEXT_SWAP_WORDS: tuple[str, ...] = (
    "CAFE", "DELI", "BAKERY", "BISTRO", "MARKET", "BOOKS", "BIKES", "HOTEL", "SHOP", "TEA",
    "HERON", "FALCON", "MOON", "SUN", "FERN", "OAK", "GROVE", "LANE", "COURT", "STREET",
    "OPEN", "CLOSED", "FRESH", "HOT", "COLD", "SOUP", "STEW", "RICE", "SALT", "SUGAR",
    "NORTH", "SOUTH", "RED", "GREEN", "GOLD", "SILVER", "LARK", "WREN", "OTTER", "FOX",
)
# Letter edits a reader could plausibly misread.
LETTER_SWAPS: dict[str, str] = {
    "O": "Q", "Q": "O", "C": "G", "G": "C", "E": "F", "F": "E", "I": "L", "L": "I",
    "M": "N", "N": "M", "B": "R", "R": "B", "P": "R", "D": "O", "U": "V", "V": "U",
    "H": "N", "K": "X", "T": "I", "A": "R", "S": "Z", "W": "V", "Y": "V", "J": "I",
    "1": "7", "7": "1", "3": "8", "8": "3", "6": "5", "5": "6", "0": "9", "9": "0",
    "2": "3", "4": "1", "X": "K", "Z": "S",
}


def colours_confusable(a: str, b: str) -> bool:
    """True when `a` and `b` are the same colour or could be named for each other."""
    return a == b or any(a in g and b in g for g in CONFUSABLE_COLOURS)


def materials_confusable(a: str, b: str) -> bool:
    """True when `a` and `b` are the same material or overlapping kinds of it."""
    return a == b or any(a in g and b in g for g in CONFUSABLE_MATERIALS)


def manner_scale(word: str) -> Scale | None:
    """The manner scale that lists `word`, if any."""
    for scale in MANNER_SCALES:
        if scale.pole(word) >= 0:
            return scale
    return None
