"""Build the open TED-style set (`ted-open`) and its caption pairs from pinned public snapshots.

Every string is copied verbatim from a source file (leading/trailing whitespace trimmed); the
construction is rule-based only, nothing is generated or paraphrased:

* **Instances** (VITATECS, CC BY 4.0; its captions are VATEX's human captions): for a VATEX video,
  the *positive* is one human caption, the *negatives* are VITATECS's counterfactuals of that
  caption for one temporal aspect (minimal edits, LLM-written then human-filtered by the VITATECS
  authors), and the *caption* is every OTHER distinct human caption of the same video in VITATECS,
  one per line; ``group`` = ``vatex-<video id>``, as in the pairs.  Aspects map to categories: Type, Direction -> action; Localization -> spatial;
  Compositionality -> coreference; Intensity -> adverb; Sequence -> temporal.
* **Pairs**: every two distinct human captions of the same video or image, ``group`` = its id,
  from videos/images that no instance uses (and no pair text equals an instance text).

Texts equal to a held-out text (lower-cased, non-alphanumerics removed) are dropped: the list of
such normalised texts is ``tools/open_data/heldout_drop.txt``, made by ``--check-heldout``.

Usage::

    python tools/build_open_data.py --mirror /work/.mirror --out tasks/data/open
    python tools/build_open_data.py --mirror /work/.mirror --check-heldout heldout_norm.txt.gz

``--mirror`` is a folder of snapshots as the search tool's ``fetch`` lays them out
(``OWNER+NAME/repo`` git directories); each file is read with ``git show COMMIT:PATH`` at the commit
pinned below, so the output is byte-identical wherever the snapshots are.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import random
import re
import subprocess
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
DROP_FILE = HERE / "open_data" / "heldout_drop.txt"

SOURCES = {
    "vitatecs": {
        "repo": "lscpku/VITATECS",
        "commit": "58bff59bb1d3ed287983fca8ca7589498f4db6b2",
        "files": [f"{v}/{a}.jsonl" for v in ("data", "data_opt") for a in
                  ("Compositionality", "Direction", "Intensity", "Localization", "Sequence", "Type")],
    },
    # COCO captions (CC BY 4.0) of the Karpathy test split, 5 per image (a verbatim copy of the split file)
    "coco_karpathy_test": {
        "repo": "kanadn/diht",
        "commit": "060dec7d35d5c2d402bc3181a941fb4967a7bd4a",
        "files": ["coco_test.json"],
    },
    # only the image ids of COCO val2017, to leave those images out (their captions are held out)
    "coco_val2017_ids": {
        "repo": "ruizewang/evaluate",
        "commit": "1152656d3b8c66c48fc6a4357e159f5e21bd2d2d",
        "files": ["annotations/captions_val2017.json"],
    },
}
ASPECT_CATEGORY = {"Type": "action", "Direction": "action", "Localization": "spatial",
                   "Compositionality": "coreference", "Intensity": "adverb", "Sequence": "temporal"}
# Instances per category in the shipped set (all there are when fewer): enough for a +-2-point
# interval per category while the embedded default stays within minutes on 2 CPU cores.
PER_CATEGORY = {"action": 600, "spatial": 500, "coreference": 500, "adverb": 500, "temporal": 500}
MIN_CONTEXT = 2  # other captions of the video that make up an instance's caption
SEED = 0


def norm(text: str) -> str:
    """The comparison key: lower-cased, only [a-z0-9] kept."""
    return re.sub(r"[^a-z0-9]", "", text.lower())


def read_source(mirror: Path, name: str, path: str) -> str:
    src = SOURCES[name]
    git_dir = mirror / src["repo"].replace("/", "+") / "repo"
    if (git_dir / ".git").is_dir():  # a snapshot someone checked out
        git_dir = git_dir / ".git"
    if not git_dir.is_dir():
        raise SystemExit(f"error: snapshot of {src['repo']} not found at {git_dir} (fetch github:{src['repo']})")
    out = subprocess.run(["git", "--git-dir", str(git_dir), "show", f"{src['commit']}:{path}"],
                         capture_output=True, check=False)
    if out.returncode:
        raise SystemExit(f"error: {src['repo']}@{src['commit'][:12]}:{path}: {out.stderr.decode().strip()}")
    return out.stdout.decode("utf-8")


@dataclass
class Video:
    """One VATEX video's distinct human captions (first surface form kept, data_opt's casing first)."""

    name: str
    captions: dict[str, str] = field(default_factory=dict)  # norm -> verbatim
    foils: dict[tuple[str, str], dict[str, tuple[str, str]]] = field(default_factory=dict)
    # (caption norm, aspect) -> {foil norm: (verbatim foil, "file:line")}


def load_vitatecs(mirror: Path) -> dict[str, Video]:
    videos: dict[str, Video] = {}
    # data_opt keeps the original casing of the VATEX captions: read it first so its forms win.
    files = sorted(SOURCES["vitatecs"]["files"], key=lambda f: (not f.startswith("data_opt"), f))
    for path in files:
        for lineno, line in enumerate(read_source(mirror, "vitatecs", path).splitlines(), 1):
            if not line.strip():
                continue
            rec = json.loads(line)
            if rec["src_dataset"] != "VATEX":
                continue  # MSR-VTT's captions carry no clear licence
            cap, foil = rec["caption"].strip(), rec["counterfactual"].strip()
            if not cap or not foil or norm(cap) == norm(foil):
                continue
            video = videos.setdefault(rec["video_name"], Video(rec["video_name"]))
            video.captions.setdefault(norm(cap), cap)
            video.foils.setdefault((norm(cap), rec["aspect"]), {}).setdefault(norm(foil), (foil, f"{path}:{lineno}"))
    return videos


def candidates(videos: dict[str, Video], drop: set[str]) -> dict[str, list[dict[str, object]]]:
    """Every valid instance, by category: >= MIN_CONTEXT other captions, >= 1 negative, no held-out text."""
    out: dict[str, list[dict[str, object]]] = defaultdict(list)
    for name in sorted(videos):
        video = videos[name]
        for (key, aspect), foils in sorted(video.foils.items()):
            others = [c for k, c in video.captions.items() if k != key and k not in drop]
            # a counterfactual that another human caption of the video states is not a contradiction
            negs = [(f, where) for k, (f, where) in foils.items() if k not in video.captions and k not in drop]
            if len(others) < MIN_CONTEXT or not negs or key in drop:
                continue
            vid = name.removesuffix(".mp4")
            out[ASPECT_CATEGORY[aspect]].append({
                "id": f"vatex-{vid}-{aspect.lower()}-{hashlib.sha1(key.encode()).hexdigest()[:8]}",
                "category": ASPECT_CATEGORY[aspect],
                "caption": "\n".join(others),
                "positive": video.captions[key],
                "negatives": [f for f, _ in negs],
                "caption_type": "video",
                "group": f"vatex-{vid}",  # the pairs' convention: a pair of this group would be contamination
                "origin": {"dataset": "VITATECS/VATEX", "video": vid, "aspect": aspect,
                           "negatives_from": [w for _, w in negs]},
            })
    return out


def select(pool: dict[str, list[dict[str, object]]]) -> list[dict[str, object]]:
    """Up to PER_CATEGORY[c] instances per category, rarest category first, preferring videos already
    chosen (fewer videos used, more left for the pairs); ties broken by a seeded shuffle."""
    rng = random.Random(SEED)
    chosen: list[dict[str, object]] = []
    used: set[str] = set()
    for cat in sorted(pool, key=lambda c: (len(pool[c]), c)):
        items = list(pool[cat])
        rng.shuffle(items)
        items.sort(key=lambda x: x["origin"]["video"] not in used)  # type: ignore[index]
        take = items[: PER_CATEGORY.get(cat, 0)]
        used.update(x["origin"]["video"] for x in take)  # type: ignore[index]
        chosen.extend(take)
    return sorted(chosen, key=lambda x: (str(x["category"]), str(x["id"])))


def vitatecs_pairs(videos: dict[str, Video], used: set[str], banned: set[str]) -> list[dict[str, str]]:
    pairs = []
    for name in sorted(videos):
        vid = name.removesuffix(".mp4")
        if vid in used:
            continue
        caps = [c for k, c in videos[name].captions.items() if k not in banned]
        pairs += [{"a": a, "b": b, "group": f"vatex-{vid}", "caption_type": "video"}
                  for i, a in enumerate(caps) for b in caps[i + 1:]]
    return pairs


def coco_pairs(mirror: Path, banned: set[str]) -> list[dict[str, str]]:
    """Every two distinct captions of one COCO image of the Karpathy test split, val2017 images left out."""
    val2017 = {img["id"] for img in json.loads(read_source(mirror, "coco_val2017_ids",
                                                           "annotations/captions_val2017.json"))["images"]}
    pairs = []
    for item in json.loads(read_source(mirror, "coco_karpathy_test", "coco_test.json")):
        image_id = int(re.findall(r"(\d+)\.jpg$", item["image"])[0])
        if image_id in val2017:
            continue
        caps: dict[str, str] = {}
        for cap in (c.strip() for c in item["caption"]):
            if cap and norm(cap) not in banned:
                caps.setdefault(norm(cap), cap)
        texts = list(caps.values())
        pairs += [{"a": a, "b": b, "group": f"coco-{image_id}", "caption_type": "image"}
                  for i, a in enumerate(texts) for b in texts[i + 1:]]
    assert not {int(p["group"][5:]) for p in pairs} & val2017, "a COCO val2017 image got through"
    return pairs


def gz_jsonl(records: list[dict[str, object]]) -> bytes:
    """Deterministic gzip (no name, mtime 0) of one JSON object per line."""
    raw = "".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in records).encode()
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", filename="", mtime=0, compresslevel=9) as f:
        f.write(raw)
    return buf.getvalue()


def build(mirror: Path) -> dict[str, bytes]:
    drop = set(DROP_FILE.read_text().split()) if DROP_FILE.exists() else set()
    videos = load_vitatecs(mirror)
    chosen = select(candidates(videos, drop))
    used = {str(x["origin"]["video"]) for x in chosen}  # type: ignore[index]
    banned = drop | {norm(str(t)) for x in chosen for t in (x["positive"], x["caption"], *x["negatives"])}  # type: ignore[misc]
    banned |= {norm(line) for x in chosen for line in str(x["caption"]).splitlines()}
    video_pairs, image_pairs = vitatecs_pairs(videos, used, banned), coco_pairs(mirror, banned)
    pairs = video_pairs + image_pairs
    random.Random(SEED).shuffle(pairs)  # the first N pairs (--max-pairs) mix videos and images
    counts = {
        "instances": len(chosen),
        "videos_in_instances": len(used),
        "by_category_aspect": Counter(f"{x['category']}/{x['origin']['aspect']}" for x in chosen),  # type: ignore[index]
        "negatives_per_instance": Counter(len(x["negatives"]) for x in chosen),  # type: ignore[arg-type]
        "pairs": len(pairs),
        "pairs_video_vatex": len(video_pairs),
        "pairs_image_coco": len(image_pairs),
        "pair_groups_video": len({p["group"] for p in video_pairs}),
        "pair_groups_image": len({p["group"] for p in image_pairs}),
        "heldout_dropped_texts": len(drop),
    }
    return {"ted_open.jsonl.gz": gz_jsonl(chosen), "pairs_open.jsonl.gz": gz_jsonl(pairs),  # type: ignore[arg-type]
            "counts.json": (json.dumps(counts, indent=1, sort_keys=True) + "\n").encode()}


def all_texts(files: dict[str, bytes]) -> dict[str, str]:
    """norm -> verbatim for every text the build would ship (caption lines, statements, pair sides)."""
    out: dict[str, str] = {}
    for name in ("ted_open.jsonl.gz", "pairs_open.jsonl.gz"):
        for line in gzip.decompress(files[name]).decode().splitlines():
            rec = json.loads(line)
            texts = [rec["a"], rec["b"]] if "a" in rec else [rec["positive"], *rec["negatives"],
                                                             *rec["caption"].splitlines()]
            out.update({norm(t): t for t in texts})
    return out


def check_heldout(files: dict[str, bytes], heldout: Path) -> list[str]:
    with gzip.open(heldout, "rt") as f:
        held = {line.strip() for line in f if line.strip()}
    return sorted(k for k in all_texts(files) if k in held)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--mirror", type=Path, required=True, help="folder of fetched snapshots (OWNER+NAME/repo)")
    p.add_argument("--out", type=Path, help="write the files here (tasks/data/open)")
    p.add_argument("--check-heldout", type=Path, metavar="NORM_GZ",
                   help="gzip file of normalised held-out texts: add any shipped text found in it to "
                        f"{DROP_FILE.relative_to(HERE.parent)} and rebuild")
    args = p.parse_args(argv)
    files = build(args.mirror)
    if args.check_heldout:
        hits = check_heldout(files, args.check_heldout)
        if hits:
            old = set(DROP_FILE.read_text().split()) if DROP_FILE.exists() else set()
            DROP_FILE.parent.mkdir(parents=True, exist_ok=True)
            DROP_FILE.write_text("".join(f"{k}\n" for k in sorted(old | set(hits))))
            files = build(args.mirror)
            assert not check_heldout(files, args.check_heldout), "a held-out text survived the rebuild"
        print(f"held-out check: {len(hits)} shipped text(s) found in {args.check_heldout}; "
              f"{len(all_texts(files))} distinct texts now shipped, none held out")
    print(files["counts.json"].decode(), end="")
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        for name, data in files.items():
            (args.out / name).write_bytes(data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
