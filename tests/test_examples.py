"""The example plugins in examples/ install with pip and run exactly as docs/extending.md says, from a
folder outside this checkout; ``harness check`` passes on each and fails, in one line naming the
problem, on a deliberately broken copy of each.

The commands are read from the ``bash`` blocks of docs/extending.md and run in order.  ``pip install
./examples/X`` installs into a folder of this test's own (``--target``, on ``PYTHONPATH`` for the
commands), without build isolation or dependencies, so nothing is downloaded and the test
environment itself is left as it was (the examples' plugins load only in these commands).
"""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import REPO

pytest.importorskip("torch")

DOC = REPO / "docs" / "extending.md"
EXAMPLES = ("hash_encoder", "weather_category", "echo_scorer", "max_pool_aggregator")
HARNESS = shutil.which("harness", path=str(Path(sys.executable).parent))


def doc_commands() -> dict[str, list[str]]:
    """Example folder -> the commands of the docs' ``bash`` blocks that install it, in order."""
    out: dict[str, list[str]] = {}
    for block in re.findall(r"^```bash\n(.*?)^```", DOC.read_text(encoding="utf-8"), flags=re.S | re.M):
        lines = [line.strip() for line in block.splitlines() if line.strip() and not line.startswith("#")]
        named = re.search(r"pip install \./examples/(\w+)", block)
        assert named, f"a bash block of {DOC.name} installs no example; the test would not know what it is for:\n{block}"
        out.setdefault(named[1], []).extend(lines)
    return out


@dataclass
class Workspace:
    root: Path  # cwd of every command: holds a copy of examples/, nothing else of this checkout
    site: Path  # where `pip install ./examples/X` puts the packages
    env: dict[str, str]

    def run(self, line: str, *, check: bool = True) -> subprocess.CompletedProcess[str]:
        args = shlex.split(line, comments=True)
        if args[:2] == ["pip", "install"]:
            args = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                    "--target", str(self.site), *args[2:]]
        elif args[0] == "harness":
            args = [str(HARNESS), *args[1:]]
        else:
            raise AssertionError(f"{DOC.name}: the tests run only pip install and harness commands, not {line!r}")
        proc = subprocess.run(args, cwd=self.root, env=self.env, capture_output=True, text=True, timeout=600)
        if check:
            assert proc.returncode == 0, f"{line}\nfailed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        return proc


def _can_build_offline() -> bool:
    """setuptools that builds wheels by itself (>= 70.1), or with the wheel package: no download needed."""
    if importlib.util.find_spec("setuptools") is None:
        return False
    from importlib.metadata import version

    major, minor = (int(x) for x in re.findall(r"\d+", version("setuptools"))[:2])
    return (major, minor) >= (70, 1) or importlib.util.find_spec("wheel") is not None


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    if HARNESS is None:
        pytest.skip("the harness command is not installed in this environment (pip install -e .)")
    if not _can_build_offline():
        if os.environ.get("HARNESS_REQUIRE_EXAMPLES"):  # CI: a skip here would hide the examples' test
            pytest.fail("HARNESS_REQUIRE_EXAMPLES is set but setuptools cannot build the examples offline")
        pytest.skip("setuptools >= 70.1 (or an older one with wheel) is not installed here; the offline install of "
                    "the examples (pip install --no-build-isolation) needs it: pip install -U setuptools")
    root = tmp_path_factory.mktemp("elsewhere")
    # a copy, so the build's build/ and *.egg-info folders never land in the checkout
    shutil.copytree(REPO / "examples", root / "examples",
                    ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    site = root / "site"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")])),
           "HF_HUB_OFFLINE": "1", "HARNESS_CACHE_DIR": str(root / "cache"), "PIP_DISABLE_PIP_VERSION_CHECK": "1",
           "PIP_NO_INDEX": "1"}
    env.pop("HARNESS_DISABLE_PLUGIN_AUTOLOAD", None)
    return Workspace(root, site, env)


def test_every_example_is_a_package_with_a_guide() -> None:
    found = sorted(p.parent.name for p in (REPO / "examples").glob("*/pyproject.toml"))
    assert found == sorted(EXAMPLES)
    for name in EXAMPLES:
        assert '[project.entry-points."harness.plugins"]' in (REPO / "examples" / name / "pyproject.toml").read_text()
    commands = doc_commands()
    assert sorted(commands) == sorted(EXAMPLES), "docs/extending.md: one runnable section per example"
    for name, lines in commands.items():
        assert lines[0] == f"pip install ./examples/{name}", f"{name}: its section starts by installing it"
        assert any(line.startswith("harness check ") for line in lines), f"{name}: its section runs harness check"
        assert any(re.match(r"harness( -p \S+)* run ", line) for line in lines), f"{name}: its section runs harness run"


def _results(ws: Workspace, folder: str) -> dict:  # type: ignore[type-arg]
    return json.loads((ws.root / folder / "results.json").read_text())


def _overall(res: dict) -> list[dict]:  # type: ignore[type-arg]
    return [s for s in res["scores"] if s["category"] == "all" and s["caption_type"] == "all"]


@pytest.mark.parametrize("example", EXAMPLES)
def test_example_installs_and_runs_as_documented(workspace: Workspace, example: str) -> None:
    outputs = [workspace.run(line) for line in doc_commands()[example]]
    checks = [p.stdout for line, p in zip(doc_commands()[example], outputs) if line.startswith("harness check")]
    assert checks and all(re.search(r"^ok +hooks:", out, re.M) for out in checks)
    if example == "hash_encoder":
        assert "ok   encoder hash-bow (family hash-bow" in checks[0]
        res = _results(workspace, "runs/hash-bow")
        assert {(s["encoder"], s["extractor"], s["aggregator"]) for s in _overall(res)} == {
            ("hash-bow", "last", "mean-pool"), ("hash-bow", "norm-avg", "mean-pool")}
        assert [s["n"] for s in _overall(res)][0] == 25, "ted-open: 5 categories x --limit 5"
        assert res["provenance"]["encoders"]["hash-bow"]["family"] == "hash-bow"
    elif example == "weather_category":
        assert "ok   category weather" in checks[0] and "weather (6 instances)" in checks[0]
        listed = next(p.stdout for line, p in zip(doc_commands()[example], outputs) if "list categories" in line)
        assert "harness_example_category" in listed and "Weather" in listed
        res = _results(workspace, "runs/weather")
        assert {(s["task"], s["n"]) for s in _overall(res)} == {("weather", 6)}
    elif example == "echo_scorer":
        assert "ok   scorer ted-echo" in checks[0]
        ted = {(s["encoder"], s["extractor"]): s["value"] for s in _overall(_results(workspace, "runs/ted"))}
        with open(workspace.root / "runs/echo/downstream.csv", newline="") as fh:
            rows = list(csv.DictReader(fh))
        assert {(r["encoder"], r["extractor"]) for r in rows} == set(ted) and len(rows) == 3
        for r in rows:  # ted-echo's rule: the row's TED accuracy (percent) times scale 1
            assert float(r["value"]) == pytest.approx(100 * ted[(r["encoder"], r["extractor"])], abs=1e-6)
        assert "Pearson" in outputs[-1].stdout
    else:
        assert "ok   aggregator max-pool" in checks[0] and "3-layer stack" in checks[0]
        res = _results(workspace, "runs/max-pool")
        assert {s["aggregator"] for s in _overall(res)} == {"max-pool"}
        assert res["training"] == [], "max-pool trains nothing"


# A copy of each example with one deliberate mistake, and what `harness check` must say about it.
BROKEN = {
    "hash_encoder": (  # one hidden state short: the last layer is dropped
        "harness_example_hash_encoder/encoder.py", "for w in self.weights[:up_to_layer]:",
        "for w in self.weights[:up_to_layer][:-1]:",
        r"Encoder 'hash-bow' \(family 'hash-bow'\): encode returned 4 hidden states; expected info.num_layers \+ 1 = 5"),
    "weather_category": (  # the data labels its rows with another category
        "harness_example_category/categories/weather.jsonl", '"category": "weather"', '"category": "climate"',
        r"Category 'weather' .*task 'weather' does not load: Task 'weather' selects category 'weather', but .* "
        r"has no instance of it"),
    "echo_scorer": (  # the factory answers every name, hiding every other plugin's scorers
        "harness_example_scorer/__init__.py", "    if name != NAME:\n        return None  # not ours\n", "",
        r"Scorer 'ted-echo': harness_make_scorer built a EchoScorer for the name '__harness-check-not-yours__', "
        r"which is not its own"),
    "max_pool_aggregator": (  # pools over padding too
        "harness_example_aggregator/__init__.py", 'x.masked_fill(~keep, float("-inf"))', "x",
        r"Aggregator 'max-pool' \(width 16, n_layers_in 1\): text \d embeds differently in a batch with other texts "
        r"than alone; padding must be masked"),
}


@pytest.mark.parametrize("example", EXAMPLES)
def test_check_fails_in_one_line_on_a_broken_copy(workspace: Workspace, example: str) -> None:
    rel, old, new, message = BROKEN[example]
    copy = workspace.root / "broken" / example
    shutil.copytree(workspace.root / "examples" / example, copy, ignore=shutil.ignore_patterns("build", "*.egg-info"))
    path = copy / rel
    text = path.read_text(encoding="utf-8")
    assert old in text, f"examples/{example}/{rel} changed: update BROKEN[{example!r}]"
    path.write_text(text.replace(old, new), encoding="utf-8")
    proc = workspace.run(f"harness check ./broken/{example}", check=False)
    assert proc.returncode == 2, f"harness check passed a broken {example}:\n{proc.stdout}\n{proc.stderr}"
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: ./broken/{example}: "), proc.stderr
    assert re.search(message, lines[0]), lines[0]
