"""Entity types (people, animals, objects, vehicles, signs) the scene generator can place.

`tags` say which verbs an entity can be the patient of (see vocab_verbs); `domains` say
which settings it fits (see vocab_settings).
"""

from __future__ import annotations

from dataclasses import dataclass

from .vocab_world import COLOURS

ANY = frozenset({"home", "kitchen", "shop", "work", "school", "street", "nature", "water",
                 "farm", "snow"})
BRIGHT = ("red", "orange", "yellow", "green", "blue", "purple", "pink", "black", "white",
          "grey", "teal", "navy", "turquoise", "lavender", "crimson", "cream", "olive")
DULL = ("brown", "black", "white", "grey", "beige", "green", "navy", "maroon", "olive",
        "silver", "cream")


@dataclass(frozen=True)
class EntityType:
    """One kind of thing that can appear in a scene."""

    name: str
    plural: str
    cls: str  # person | animal | object | vehicle | sign
    head: str  # word used to check that two entities can't be confused
    domains: frozenset[str]
    gender: str = ""  # "f" / "m" for gendered nouns, "" otherwise
    colours: tuple[str, ...] = ()
    materials: tuple[str, ...] = ()
    size_scale: str = ""
    state_scale: str = ""
    patterns: bool = False
    text_pool: str = ""
    text_phrase: str = ""  # how the caption attaches text, "{t}" is the quoted string
    surface: bool = False  # small things can sit on it or hide under it
    small: bool = False  # can sit on a surface
    hangs: bool = False  # mounted high, so can be above other things
    countable: bool = True
    tags: frozenset[str] = frozenset()


def _t(name: str, cls: str, dom: str = "", /, **kw: object) -> EntityType:
    plural = str(kw.pop("plural", name + "s"))
    head = str(kw.pop("head", name.split()[-1]))
    domains = ANY if not dom else frozenset(dom.split())
    for key in ("colours", "materials"):
        value = kw.get(key, ())
        kw[key] = tuple(value.split()) if isinstance(value, str) else value
    kw["tags"] = frozenset(str(kw.get("tags", "")).split())
    return EntityType(name, plural, cls, head, domains, **kw)  # type: ignore[arg-type]


_P: dict[str, object] = {"colours": COLOURS, "size_scale": "height", "tags": "person"}
_PF = {**_P, "gender": "f"}
_PM = {**_P, "gender": "m"}

PEOPLE: tuple[EntityType, ...] = (
    _t("man", "person", plural="men", **_PM), _t("woman", "person", plural="women", **_PF),
    _t("boy", "person", **_PM), _t("girl", "person", **_PF),
    _t("old man", "person", plural="old men", **_PM),
    _t("elderly woman", "person", plural="elderly women", **_PF),
    _t("grandfather", "person", **_PM), _t("grandmother", "person", **_PF),
    _t("waiter", "person", "shop street home", **_PM),
    _t("waitress", "person", "shop street home", plural="waitresses", **_PF),
    _t("policeman", "person", "street snow", plural="policemen", **_PM),
    _t("policewoman", "person", "street snow", plural="policewomen", **_PF),
    _t("fisherman", "person", "water street", plural="fishermen", **_PM),
    _t("businesswoman", "person", "street work shop", plural="businesswomen", **_PF),
    _t("businessman", "person", "street work shop", plural="businessmen", **_PM),
    _t("schoolboy", "person", "school street home nature", **_PM),
    _t("schoolgirl", "person", "school street home nature", **_PF),
    _t("chef", "person", "kitchen shop", **_P), _t("barista", "person", "shop", **_P),
    _t("cyclist", "person", "street nature snow", **_P),
    _t("mechanic", "person", "work street", **_P), _t("nurse", "person", "work street", **_P),
    _t("jogger", "person", "street nature snow water", **_P),
    _t("painter", "person", "work home street", **_P),
    _t("student", "person", "school shop street", **_P),
    _t("toddler", "person", "home nature school", **{**_P, "size_scale": ""}),
    _t("musician", "person", "street shop", **_P),
    _t("firefighter", "person", "street", **_P), _t("surfer", "person", "water", **_P),
    _t("florist", "person", "shop street", **_P), _t("farmer", "person", "farm nature", **_P),
    _t("librarian", "person", "school", **_P),
    _t("gardener", "person", "home nature", **_P),
    _t("tourist", "person", "street water nature snow", **_P),
    _t("photographer", "person", **_P),
)

_A: dict[str, object] = {"tags": "animal", "countable": True}
ANIMALS: tuple[EntityType, ...] = (
    _t("dog", "animal", colours="brown black white grey gold", size_scale="size", **_A),
    _t("cat", "animal", "home kitchen shop street farm", colours="black white grey orange",
       small=True, **_A),
    _t("horse", "animal", "farm nature", colours="brown black white grey", **_A),
    _t("parrot", "animal", "home shop", colours="green red blue yellow", small=True, **_A),
    _t("rabbit", "animal", "home nature farm school", colours="white brown grey black",
       small=True, **_A),
    _t("goat", "animal", "farm", colours="white brown black", **_A),
    _t("duck", "animal", "water farm nature", colours="white brown", small=True, **_A),
    _t("pigeon", "animal", "street", colours="grey white", small=True, **_A),
    _t("cow", "animal", "farm", colours="black brown white", **_A),
    _t("sheep", "animal", "farm", plural="sheep", colours="white black", **_A),
    _t("squirrel", "animal", "nature snow home", colours="brown grey", small=True, **_A),
    _t("owl", "animal", "nature", colours="brown grey white", small=True, **_A),
    _t("hamster", "animal", "home school", colours="gold brown white", small=True, **_A),
    _t("turtle", "animal", "water home", colours="green brown", small=True, **_A),
    _t("goose", "animal", "farm water", plural="geese", colours="white grey", **_A),
    _t("chicken", "animal", "farm", colours="brown white black", small=True, **_A),
    _t("pony", "animal", "farm nature", plural="ponies", colours="brown white grey black",
       **_A),
    _t("fox", "animal", "nature snow", plural="foxes", colours="orange", **_A),
    _t("seagull", "animal", "water street", colours="white grey", small=True, **_A),
    _t("kitten", "animal", "home", colours="grey white black orange", small=True, **_A),
)

_SMALL: dict[str, object] = {"small": True, "tags": "portable"}
OBJECTS: tuple[EntityType, ...] = (
    _t("mug", "object", "home kitchen shop work", colours=BRIGHT,
       materials="ceramic glass metal plastic", state_scale="fill", text_pool="name",
       text_phrase="printed with {t}", small=True, tags="portable fillable"),
    _t("teapot", "object", "kitchen home shop", colours=BRIGHT, materials="ceramic metal glass",
       small=True, tags="portable fillable"),
    _t("kettle", "object", "kitchen home", colours=BRIGHT, materials="metal plastic copper",
       small=True, tags="portable fillable switchable"),
    _t("vase", "object", "home shop", colours=BRIGHT, materials="glass ceramic",
       size_scale="size", **_SMALL),
    _t("lamp", "object", "home work school shop", colours=BRIGHT,
       materials="metal ceramic wooden", size_scale="height", state_scale="light",
       small=True, tags="portable switchable"),
    _t("chair", "object", "home kitchen work school shop", colours=BRIGHT,
       materials="wooden metal plastic wicker", surface=True, tags="pushable"),
    _t("table", "object", "home kitchen work school shop nature water", colours=DULL,
       materials="wooden metal plastic marble", size_scale="size", surface=True,
       tags="wipeable pushable"),
    _t("sofa", "object", "home", colours=BRIGHT, materials="leather velvet canvas",
       size_scale="size", surface=True),
    _t("armchair", "object", "home", colours=BRIGHT, materials="leather velvet",
       surface=True),
    _t("bookshelf", "object", "home school work shop", plural="bookshelves", colours=DULL,
       materials="wooden metal", size_scale="height", surface=True),
    _t("clock", "object", "home kitchen school work shop street", colours=BRIGHT,
       materials="wooden metal plastic", size_scale="size", hangs=True),
    _t("basket", "object", "home kitchen shop farm nature", colours=DULL,
       materials="wicker plastic", state_scale="fill", small=True, tags="portable fillable"),
    _t("bowl", "object", "kitchen home shop", colours=BRIGHT,
       materials="ceramic glass wooden metal", state_scale="fill", small=True,
       tags="portable fillable"),
    _t("jar", "object", "kitchen home shop", materials="glass ceramic", state_scale="fill",
       text_pool="label", text_phrase="labelled {t}", small=True, tags="portable fillable"),
    _t("bottle", "object", "kitchen home shop street water nature",
       colours="green blue white brown",
       materials="glass plastic", state_scale="fill", text_pool="label",
       text_phrase="with a label reading {t}", small=True, tags="portable fillable"),
    _t("candle", "object", "home shop", colours="white cream red purple", state_scale="light",
       **_SMALL),
    _t("mirror", "object", "home shop", materials="wooden metal", size_scale="size",
       hangs=True, tags="wipeable"),
    _t("painting", "object", "home shop work", size_scale="size", hangs=True),
    _t("rug", "object", "home", colours=BRIGHT, materials="woollen", patterns=True,
       size_scale="size"),
    _t("cushion", "object", "home", colours=BRIGHT, materials="velvet woollen canvas",
       patterns=True, small=True, tags="portable throwable"),
    _t("laptop", "object", "home work school shop", colours="silver black grey white",
       state_scale="open", small=True, tags="portable openable switchable"),
    _t("radio", "object", "home kitchen work", colours=BRIGHT, materials="plastic wooden metal",
       state_scale="power", small=True, tags="portable switchable"),
    _t("television", "object", "home", colours="black silver white", state_scale="power",
       size_scale="size", tags="switchable"),
    _t("fan", "object", "home work", colours="white black blue", materials="metal plastic",
       state_scale="power", small=True, tags="portable switchable"),
    _t("backpack", "object", "school street nature home", colours=BRIGHT,
       materials="canvas leather", patterns=True, text_pool="name",
       text_phrase="with {t} stitched on it",
       small=True, tags="portable openable"),
    _t("suitcase", "object", "street home", colours=BRIGHT, materials="leather plastic",
       state_scale="open", size_scale="size", text_pool="label",
       text_phrase="with a tag that says {t}", tags="portable openable pushable"),
    _t("umbrella", "object", "street shop home water", colours=BRIGHT, patterns=True,
       state_scale="open", small=True, tags="portable openable"),
    _t("flowerpot", "object", "home nature shop", colours=BRIGHT,
       materials="ceramic plastic stone", **_SMALL),
    _t("guitar", "object", "home street shop", colours="brown black red white",
       tags="portable"),
    _t("bucket", "object", "work farm water nature home", colours=BRIGHT,
       materials="metal plastic", state_scale="fill", small=True, tags="portable fillable"),
    _t("watering can", "object", "nature home", colours=BRIGHT, materials="metal plastic",
       state_scale="fill", small=True, tags="portable fillable"),
    _t("ladder", "object", "work home nature", materials="wooden metal", size_scale="height"),
    _t("crate", "object", "work farm shop street water", materials="wooden plastic",
       state_scale="fill", text_pool="label", text_phrase="stamped {t}", surface=True,
       tags="portable pushable"),
    _t("barrel", "object", "work farm water", colours="brown blue red green",
       materials="wooden metal", surface=True, tags="pushable"),
    _t("bench", "object", "street nature water school snow", plural="benches", colours=DULL,
       materials="wooden metal stone", surface=True, tags="wipeable"),
    _t("stool", "object", "kitchen shop work home", colours=BRIGHT, materials="wooden metal",
       size_scale="height", surface=True, tags="portable"),
    _t("toolbox", "object", "work home", plural="toolboxes", colours="red yellow blue grey",
       materials="metal plastic", state_scale="open", text_pool="label",
       text_phrase="marked {t}", small=True, tags="portable openable"),
    _t("box", "object", plural="boxes", materials="cardboard wooden", state_scale="open",
       text_pool="label", text_phrase="marked {t}", small=True, tags="portable openable"),
    _t("ball", "object", "school home street nature water snow", colours=BRIGHT,
       materials="rubber leather plastic", size_scale="size", patterns=True, small=True,
       tags="portable throwable kickable"),
    _t("kite", "object", "nature water street", colours=BRIGHT, patterns=True,
       tags="portable"),
    _t("skateboard", "object", "street school", colours=BRIGHT, materials="wooden plastic",
       small=True, tags="portable rideable"),
    _t("bicycle", "object", "street nature home work", colours=BRIGHT, materials="metal",
       tags="rideable pushable"),
    _t("surfboard", "object", "water", colours=BRIGHT, patterns=True, tags="portable"),
    _t("towel", "object", "water home kitchen", colours=BRIGHT, patterns=True, small=True,
       tags="portable"),
    _t("shopping cart", "object", "shop street", materials="metal plastic", state_scale="fill",
       tags="pushable"),
    _t("wheelbarrow", "object", "work farm nature home", colours=BRIGHT,
       materials="metal plastic", state_scale="fill", tags="pushable"),
    _t("trash can", "object", "street work home kitchen", colours=DULL,
       materials="metal plastic", state_scale="fill"),
    _t("mailbox", "object", "street", plural="mailboxes", colours="red blue green black",
       materials="metal", text_pool="place", text_phrase="numbered {t}"),
    _t("traffic cone", "object", "street work", colours="orange yellow", **_SMALL),
    _t("lantern", "object", "nature street home shop", colours=BRIGHT,
       materials="metal paper", state_scale="light", small=True, tags="portable"),
    _t("tent", "object", "nature water snow", colours=BRIGHT, materials="canvas",
       size_scale="size"),
    _t("teddy bear", "object", "home school", colours="brown white beige grey",
       materials="velvet woollen", small=True, tags="portable throwable"),
    _t("notebook", "object", "school work home shop", colours=BRIGHT, text_pool="name",
       text_phrase="with {t} written on the cover", **_SMALL),
    _t("globe", "object", "school home", size_scale="size", **_SMALL),
    _t("birdcage", "object", "home shop", colours="white gold silver",
       materials="metal bamboo", hangs=True),
    _t("sled", "object", "snow", colours="red blue", materials="wooden plastic",
       tags="pushable"),
    _t("stroller", "object", "street nature", colours=BRIGHT, tags="pushable"),
    _t("typewriter", "object", "work home", colours="black green cream", materials="metal",
       **_SMALL),
    _t("piano", "object", "home school shop", colours="black white brown", surface=True),
    _t("easel", "object", "work home", materials="wooden metal", size_scale="height"),
    _t("drum", "object", "street school home", colours=BRIGHT, small=True, tags="portable"),
    _t("fishing rod", "object", "water", colours="black green yellow", tags="portable"),
    _t("lunchbox", "object", "school", plural="lunchboxes", colours=BRIGHT,
       materials="metal plastic", state_scale="open", text_pool="name",
       text_phrase="with {t} on the lid", small=True, tags="portable openable"),
)

_V: dict[str, object] = {"countable": True, "size_scale": "size"}
VEHICLES: tuple[EntityType, ...] = (
    _t("car", "vehicle", "street", colours=BRIGHT, **_V),
    _t("van", "vehicle", "street work", colours=BRIGHT, text_pool="shop",
       text_phrase="with {t} painted on its side", **_V),
    _t("bus", "vehicle", "street", plural="buses", colours="red yellow blue green white",
       text_pool="place", text_phrase="showing {t} on its destination display", **_V),
    _t("truck", "vehicle", "street work farm", colours=BRIGHT, text_pool="shop",
       text_phrase="with {t} printed on its door", **_V),
    _t("tractor", "vehicle", "farm", colours="red green blue yellow", **_V),
    _t("boat", "vehicle", "water", colours=BRIGHT, text_pool="name",
       text_phrase="with {t} painted on its hull", **_V),
    _t("canoe", "vehicle", "water nature", colours=BRIGHT, text_pool="name",
       text_phrase="with {t} painted near its bow", **_V),
    _t("motorbike", "vehicle", "street", colours=BRIGHT, **_V),
    _t("taxi", "vehicle", "street", colours="yellow black white", text_pool="place",
       text_phrase="with {t} on its roof sign", **_V),
    _t("tram", "vehicle", "street", colours="red blue green white yellow", text_pool="place",
       text_phrase="showing {t} above its windscreen", **_V),
)

_S: dict[str, object] = {"countable": False, "hangs": True}
SIGNS: tuple[EntityType, ...] = (
    _t("neon sign", "sign", "shop street home", colours="pink blue green red orange",
       text_pool="shop", text_phrase="that spells out {t}", **_S),
    _t("chalkboard", "sign", "shop street kitchen school", text_pool="notice",
       text_phrase="that says {t} in looping letters", countable=False),
    _t("poster", "sign", "shop street school work home", colours=BRIGHT, text_pool="notice",
       text_phrase="announcing {t}", **_S),
    _t("banner", "sign", "shop street school water farm", colours=BRIGHT, text_pool="shop",
       text_phrase="reading {t}", **_S),
    _t("street sign", "sign", "street snow", colours="green blue white", text_pool="place",
       text_phrase="that reads {t}", **_S),
    _t("wooden sign", "sign", "shop street nature farm water", text_pool="shop",
       text_phrase="carved with {t}", **_S),
    _t("menu board", "sign", "shop kitchen street", colours="black green", text_pool="notice",
       text_phrase="listing {t} at the top", **_S),
)

ALL_TYPES: tuple[EntityType, ...] = PEOPLE + ANIMALS + OBJECTS + VEHICLES + SIGNS
