"""Verbs the scene generator can give to people, animals and vehicles.

A verb either takes a free object phrase ("slices a loaf of bread": `things`) or an entity
of the scene as its patient ("hands the mug to the boy": `ptag`). Verbs in the same `group`
can't be done at once by one agent in one shot, so swapping one for another contradicts the
caption. `contrast` names a verb whose event contradicts this one (open vs close).
"""

from __future__ import annotations

from dataclasses import dataclass

from .vocab_entities import ANY


@dataclass(frozen=True)
class Verb:
    """One verb with its surface forms and selection restrictions."""

    vid: str
    third: str
    ing: str
    base: str
    group: str  # hands | body | social | animal | vehicle
    agents: frozenset[str]  # entity classes or type names allowed as agent
    things: tuple[str, ...] = ()
    ptag: str = ""
    prep: str = ""  # "to" / "from": a recipient follows the patient
    contrast: str = ""
    domains: frozenset[str] = ANY

    @property
    def takes_entity(self) -> bool:
        return bool(self.ptag)


def _v(forms: str, group: str, agents: str, things: str = "", **kw: str) -> Verb:
    vid, third, ing, base = forms.split("|")
    dom = kw.pop("dom", "")
    return Verb(vid, third, ing, base, group, frozenset(agents.split()),
                tuple(t for t in things.split("|") if t),
                domains=frozenset(dom.split()) if dom else ANY, **kw)


_KIT = "kitchen home shop"
_BIRDS = "parrot duck pigeon chicken goose seagull owl"

PERSON_THING_VERBS: tuple[Verb, ...] = (
    _v("read|reads|reading|read", "hands", "person",
       "a newspaper|a paperback novel|a folded map|a handwritten letter|a menu"),
    _v("fold|folds|folding|fold", "hands", "person",
       "a newspaper|a paper map|a handwritten letter|a linen shirt|a paper napkin"),
    _v("slice|slices|slicing|slice", "hands", "person",
       "a loaf of bread|a ripe tomato|an onion|a watermelon|a lemon", dom=_KIT + " nature"),
    _v("peel|peels|peeling|peel", "hands", "person", "an apple|an orange|a potato|a banana",
       dom=_KIT + " nature"),
    _v("pour|pours|pouring|pour", "hands", "person",
       "a cup of coffee|a glass of water|a glass of milk|a cup of cocoa", dom=_KIT + " work"),
    _v("stir|stirs|stirring|stir", "hands", "person",
       "a pot of soup|a bowl of batter|a cup of coffee", dom=_KIT),
    _v("knead|kneads|kneading|knead", "hands", "person", "a ball of dough|a lump of bread dough",
       dom="kitchen shop"),
    _v("sweep|sweeps|sweeping|sweep", "hands", "person",
       "a patch of dust|a pile of leaves|the front step"),
    _v("paint|paints|painting|paint", "hands", "person",
       "a small canvas|a picket fence|a clay pot|a mural", dom="work home street nature"),
    _v("sketch|sketches|sketching|sketch", "hands", "person",
       "a portrait|a street scene|a bowl of fruit|the view"),
    _v("write|writes|writing|write", "hands", "person", "a postcard|a shopping list|a note"),
    _v("eat|eats|eating|eat", "hands", "person",
       "a sandwich|an apple|a bowl of noodles|a slice of pizza|a croissant"),
    _v("drink|drinks|drinking|drink", "hands", "person",
       "a cup of tea|a glass of water|a bottle of soda|a cup of cocoa"),
    _v("play|plays|playing|play", "hands", "person",
       "a violin|an accordion|a harmonica|a flute|a ukulele"),
    _v("water|waters|watering|water", "hands", "person",
       "a row of potted ferns|the tomato plants|a flower bed", dom="home nature shop farm"),
    _v("wash|washes|washing|wash", "hands", "person",
       "a stack of dishes|a pile of carrots|a pair of muddy boots", dom=_KIT + " farm"),
    _v("count|counts|counting|count", "hands", "person",
       "a handful of coins|a stack of banknotes|a pile of receipts", dom="shop street work"),
    _v("sort|sorts|sorting|sort", "hands", "person",
       "a pile of letters|a tray of screws|a heap of socks"),
    _v("repair|repairs|repairing|repair", "hands", "person",
       "a bicycle chain|a torn fishing net|a leaky tap", dom="work home street water"),
    _v("knit|knits|knitting|knit", "hands", "person", "a long scarf|a wool sock|a tiny hat",
       dom="home shop"),
    _v("juggle|juggles|juggling|juggle", "hands", "person",
       "three oranges|four beanbags|a set of clubs", dom="street nature school water"),
    _v("photograph|photographs|photographing|photograph", "hands", "person",
       "the skyline|a plate of food|the sunset|a row of flowers"),
    _v("scroll|scrolls through|scrolling through|scroll through", "hands", "person",
       "a phone|a tablet"),
    _v("tie|ties|tying|tie", "hands", "person",
       "a pair of shoelaces|a parcel with string|a bundle of sticks"),
    _v("wrap|wraps|wrapping|wrap", "hands", "person",
       "a gift|a sandwich|a bunch of flowers"),
    _v("arrange|arranges|arranging|arrange", "hands", "person",
       "a bunch of tulips|a tray of pastries|a display of apples", dom="shop home"),
    _v("hammer|hammers|hammering|hammer", "hands", "person", "a nail|a loose plank",
       dom="work home nature farm"),
    _v("sew|sews|sewing|sew", "hands", "person", "a button|a torn sleeve|a patch",
       dom="home work shop"),
    _v("carry|carries|carrying|carry", "hands", "person",
       "a tray of cups|a bag of groceries|a stack of books|a bundle of firewood"),
    _v("wave|waves|waving|wave", "hands", "person", "a small flag|a handkerchief"),
)

PERSON_BODY_VERBS: tuple[Verb, ...] = (
    _v("walk|walks|walking|walk", "body", "person",
       "toward the exit|down the path|past the camera"),
    _v("run|runs|running|run", "body", "person",
       "toward the camera|in a wide circle|across the frame"),
    _v("jog|jogs|jogging|jog", "body", "person", "on the spot|past the camera"),
    _v("sit|sits|sitting|sit", "body", "person", "cross-legged on the ground|on the steps"),
    _v("kneel|kneels|kneeling|kneel", "body", "person", "on one knee|on the ground"),
    _v("dance|dances|dancing|dance", "body", "person", "in a small circle|on the spot"),
    _v("stretch|stretches|stretching|stretch", "body", "person",
       "with both arms raised|after a long run"),
    _v("jump|jumps|jumping|jump", "body", "person", "into the air|on the spot"),
    _v("crouch|crouches|crouching|crouch", "body", "person", "low to the ground|near the edge"),
    _v("lean|leans|leaning|lean", "body", "person", "against the wall|against a pillar"),
    _v("ride|rides|riding|ride", "body", "person", ptag="rideable"),
)

PERSON_ENTITY_VERBS: tuple[Verb, ...] = (
    _v("pick_up|picks up|picking up|pick up", "hands", "person", ptag="portable",
       contrast="put_down"),
    _v("put_down|puts down|putting down|put down", "hands", "person", ptag="portable",
       contrast="pick_up"),
    _v("hand|hands|handing|hand", "hands", "person", ptag="portable", prep="to",
       contrast="take"),
    _v("take|takes|taking|take", "hands", "person", ptag="portable", prep="from",
       contrast="hand"),
    _v("throw|throws|throwing|throw", "hands", "person", ptag="throwable", prep="to"),
    _v("kick|kicks|kicking|kick", "body", "person", ptag="kickable"),
    _v("open|opens|opening|open", "hands", "person", ptag="openable", contrast="close"),
    _v("close|closes|closing|close", "hands", "person", ptag="openable", contrast="open"),
    _v("push|pushes|pushing|push", "hands", "person", ptag="pushable", contrast="pull"),
    _v("pull|pulls|pulling|pull", "hands", "person", ptag="pushable", contrast="push"),
    _v("fill|fills|filling|fill", "hands", "person", ptag="fillable", contrast="empty"),
    _v("empty|empties|emptying|empty", "hands", "person", ptag="fillable", contrast="fill"),
    _v("switch_on|switches on|switching on|switch on", "hands", "person", ptag="switchable",
       contrast="switch_off"),
    _v("switch_off|switches off|switching off|switch off", "hands", "person",
       ptag="switchable", contrast="switch_on"),
    _v("carry_e|carries|carrying|carry", "hands", "person", ptag="portable"),
    _v("wipe|wipes|wiping|wipe", "hands", "person", ptag="wipeable"),
    _v("ignore|ignores|ignoring|ignore", "social", "person", ptag="person", contrast="wave_at"),
    _v("hug|hugs|hugging|hug", "social", "person", ptag="person"),
    _v("wave_at|waves at|waving at|wave at", "social", "person", ptag="person", contrast="ignore"),
    _v("follow|follows|following|follow", "social", "person", ptag="person"),
    _v("feed|feeds|feeding|feed", "social", "person", ptag="animal"),
    _v("pet|pets|petting|pet", "social", "person", ptag="animal"),
)

ANIMAL_VERBS: tuple[Verb, ...] = (
    _v("sleep|sleeps|sleeping|sleep", "animal", "animal",
       "curled up in a ball|on a folded blanket|with its eyes half closed"),
    _v("bark|barks|barking|bark", "animal", "dog", "at a passing stranger|at the wind"),
    _v("eat_a|eats|eating|eat", "animal", "animal", "a pile of seeds|a carrot|some scraps"),
    _v("drink_a|drinks|drinking|drink", "animal", "animal",
       "from a shallow dish|from a small tin dish"),
    _v("scratch|scratches|scratching|scratch", "animal", "dog cat kitten fox goat pony horse",
       "behind its ear|at the ground"),
    _v("lick|licks|licking|lick", "animal", "dog cat kitten fox", "its paw|its fur"),
    _v("wag|wags|wagging|wag", "animal", "dog", "its tail"),
    _v("groom|grooms|grooming|groom", "animal", "cat kitten squirrel rabbit parrot hamster",
       "its whiskers|its fur"),
    _v("peck|pecks|pecking|peck", "animal", _BIRDS, "at some crumbs|at the ground"),
    _v("graze|grazes|grazing|graze", "animal", "cow sheep goat horse pony", "on a patch of grass",
       dom="farm nature"),
    _v("swim|swims|swimming|swim", "animal", "duck goose turtle dog", "in circles|near the bank",
       dom="water"),
    _v("roll|rolls|rolling|roll", "animal", "dog cat kitten pony horse", "on its back"),
    _v("sniff_air|sniffs|sniffing|sniff", "animal", "animal", "the air|the ground"),
    _v("chase|chases|chasing|chase", "animal", "dog cat kitten fox goose", ptag="animal",
       contrast="flee"),
    _v("flee|runs away from|running away from|run away from", "animal", "animal",
       ptag="animal", contrast="chase"),
    _v("sniff|sniffs|sniffing|sniff", "animal", "dog cat kitten fox rabbit horse pony goat",
       ptag="portable"),
    _v("jump_onto|jumps onto|jumping onto|jump onto", "animal", "dog cat kitten fox goat squirrel",
       ptag="surface", contrast="jump_off"),
    _v("jump_off|jumps off|jumping off|jump off", "animal", "dog cat kitten fox goat squirrel",
       ptag="surface", contrast="jump_onto"),
    _v("knock_over|knocks over|knocking over|knock over", "animal", "dog cat kitten goat",
       ptag="portable"),
    _v("fetch|fetches|fetching|fetch", "animal", "dog", ptag="throwable"),
    _v("follow_a|follows|following|follow", "animal", "dog cat kitten duck goose goat",
       ptag="person"),
)

VEHICLE_VERBS: tuple[Verb, ...] = (
    _v("park|stands parked|standing parked|stand parked", "vehicle",
       "car van bus truck tractor motorbike taxi", "by the curb|at an angle|near the corner"),
    _v("drive|drives|driving|drive", "vehicle", "car van bus truck tractor motorbike taxi tram",
       "past the camera|down the road"),
    _v("turn|turns|turning|turn", "vehicle", "car van bus truck tractor motorbike taxi tram",
       "into a side road|the corner"),
    _v("reverse|reverses|reversing|reverse", "vehicle", "car van truck tractor taxi",
       "out of a space|toward the camera"),
    _v("idle|idles|idling|idle", "vehicle", "car van bus truck tractor motorbike taxi tram",
       "with its engine running|at the traffic lights"),
    _v("drift|drifts|drifting|drift", "vehicle", "boat canoe", "near the pier|on the current"),
    _v("moor|sits moored|sitting moored|sit moored", "vehicle", "boat canoe",
       "at the jetty|against the wall"),
)

# Verbs that can describe the same moment, so one never contradicts the other.
COMPATIBLE: tuple[frozenset[str], ...] = (
    frozenset({"walk", "run", "jog"}), frozenset({"pick_up", "carry_e", "take"}),
    frozenset({"hand", "carry_e"}), frozenset({"eat_a", "peck", "graze"}),
    frozenset({"groom", "lick"}), frozenset({"sniff", "sniff_air"}),
    frozenset({"chase", "follow_a"}), frozenset({"stretch", "dance"}),
    frozenset({"read", "fold"}), frozenset({"carry", "carry_e"}),
)
# Verbs for keeping still: only calm or quiet manners make sense with them.
STILL_VERBS = frozenset({"sleep", "sit", "kneel", "lean", "crouch", "park", "idle", "moor",
                         "drift", "read", "scroll"})
STILL_SCALES = ("calm", "noise")

ALL_VERBS: tuple[Verb, ...] = (PERSON_THING_VERBS + PERSON_BODY_VERBS + PERSON_ENTITY_VERBS
                               + ANIMAL_VERBS + VEHICLE_VERBS)
VERBS: dict[str, Verb] = {v.vid: v for v in ALL_VERBS}


def compatible(a: str, b: str) -> bool:
    """True when verbs `a` and `b` could both truthfully describe what an agent is doing."""
    return a == b or any(a in g and b in g for g in COMPATIBLE)
