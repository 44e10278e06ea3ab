"""torchrun with 2 CPU ranks (gloo) gives the single-process numbers: scores, loss curve and weights;
more ranks than visible GPUs on a CUDA run is one line, exit 2, before any model loads."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
if not torch.distributed.is_available():
    pytest.skip("torch built without torch.distributed", allow_module_level=True)

from cli_checks import FAKE, QUICK, refused  # noqa: E402

from harness import ConfigError  # noqa: E402
from harness.cli import main as cli  # noqa: E402
from harness.features import distributed  # noqa: E402

pytestmark = pytest.mark.slow


def _pairs(path: Path, n: int = 37) -> Path:
    """``n`` caption pairs: with batch 8, the last batch of 5 splits unevenly over 2 ranks (3 + 2, padded)."""
    rng = random.Random(0)
    colors, things = ["red", "blue", "green", "black", "white", "yellow"], ["cup", "dog", "car", "lamp", "boat", "kite"]
    with open(path, "w", encoding="utf-8") as fh:
        for i in range(n):
            c1, c2 = rng.sample(colors, 2)
            t1, t2 = rng.sample(things, 2)
            rec = {"a": f"a {c1} {t1} next to a {c2} {t2}", "b": f"the {t2} is {c2} and the {t1} is {c1}",
                   "group": f"g{i % 30}"}  # some groups repeat: same-group masking must see the global batch
            fh.write(json.dumps(rec) + "\n")
    return path


def _args(tmp: Path, pairs: Path, name: str) -> list[str]:
    return ["-p", "harness.testing", "-p", "no:hf", "run", "--encoders", "fake", "--tasks", "tiny",
            "--train-pairs", str(pairs), "--preset", "baby", "--epochs", "2", "--bootstrap", "0",
            "--extract", "last,learned", "--cache-dir", str(tmp / name / "feat"), "--ckpt-dir", str(tmp / name / "ck"),
            "--output", str(tmp / name / "out")]


def _torchrun_env() -> dict[str, str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MASTER_ADDR": "127.0.0.1", "GLOO_SOCKET_IFNAME": "lo"}
    env.pop("WORLD_SIZE", None)
    return env


def test_two_ranks_match_single_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Both runs on the CPU (gloo), also where a GPU is visible: the aggregator's "auto" device would pick it
    # in this process, and two ranks need two GPUs (see the refusal tests below).
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    pairs = _pairs(tmp_path / "pairs.jsonl")
    assert cli.main(_args(tmp_path, pairs, "single")) == 0
    env = {**_torchrun_env(), "CUDA_VISIBLE_DEVICES": ""}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--standalone",
           "-m", "harness.cli.main", *_args(tmp_path, pairs, "ddp")]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"torchrun failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    assert "fake: 91 texts encoded" in proc.stdout and proc.stdout.count("texts encoded") == 1, \
        "rank 0 alone prints, counting the texts of both ranks"

    one, two = (json.loads((tmp_path / n / "out" / "results.json").read_text()) for n in ("single", "ddp"))
    assert [(r["extractor"], r["category"], r["value"]) for r in one["scores"]] == \
           [(r["extractor"], r["category"], r["value"]) for r in two["scores"]], "accuracies differ"
    for a, b in zip(one["training"], two["training"], strict=True):
        assert a["steps"] == b["steps"] == 10
        assert a["losses"] == pytest.approx(b["losses"], abs=1e-5), f"{a['extractor']}: loss curves differ"
        wa, wb = torch.load(a["checkpoint"]), torch.load(b["checkpoint"])
        for k in wa:
            torch.testing.assert_close(wa[k], wb[k], atol=1e-5, rtol=0, msg=f"{a['extractor']}: weight {k} differs")

    shards = list((tmp_path / "ddp" / "feat").glob("*/*.tedf"))
    writers = {p.name.split("-")[1] for p in shards}
    assert len(writers) == 2, f"expected shards from 2 ranks (data-parallel encoding), got pids {writers}"
    assert len(list((tmp_path / "ddp" / "ck" / "aggregators").glob("*.pt"))) == 2, "only rank 0 writes checkpoints"


def _cuda_visible(monkeypatch: pytest.MonkeyPatch, n: int) -> None:
    """Pretend ``n`` CUDA devices are visible (nothing may touch them: the refusal comes first)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: n)

    def no_device(*args: object) -> None:
        raise AssertionError("torch.cuda.set_device was called before the refusal")
    monkeypatch.setattr(torch.cuda, "set_device", no_device)


def _torchrun_vars(monkeypatch: pytest.MonkeyPatch, *, local_rank: int, local_world: int | None,
                   world: int | None = None) -> None:
    world = world or local_world or local_rank + 1
    for name, value in {"WORLD_SIZE": world, "RANK": local_rank, "LOCAL_RANK": local_rank,
                        "LOCAL_WORLD_SIZE": local_world, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "1"}.items():
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, str(value))


@pytest.mark.parametrize(("local_rank", "local_world", "visible", "ranks"),
                         [(0, 2, 1, 2), (1, 2, 1, 2), (5, 8, 4, 8), (1, None, 1, 2), (0, 2, 0, 2)],
                         ids=["rank0-of-2-on-1-gpu", "rank1-of-2-on-1-gpu", "8-ranks-on-4-gpus",
                              "no-local-world-size", "cuda-without-devices"])
def test_more_ranks_than_gpus_is_refused_before_the_process_group(
        monkeypatch: pytest.MonkeyPatch, local_rank: int, local_world: int | None, visible: int, ranks: int) -> None:
    _cuda_visible(monkeypatch, visible)
    _torchrun_vars(monkeypatch, local_rank=local_rank, local_world=local_world)
    with pytest.raises(ConfigError) as err:
        distributed.init_from_env(cuda=True if visible == 0 else None, error=ConfigError)
    msg = str(err.value)
    assert f"torchrun started {ranks} ranks on this node but {visible} CUDA device(s)" in msg, msg
    assert f"--nproc_per_node {max(visible, 1)}" in msg and "CUDA_VISIBLE_DEVICES=" in msg, msg
    assert "\n" not in msg and not torch.distributed.is_initialized(), "one line, nothing joined"


def test_more_ranks_than_gpus_is_one_line_exit_2_before_any_model_loads(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], no_model_load: None) -> None:
    _cuda_visible(monkeypatch, 1)
    _torchrun_vars(monkeypatch, local_rank=0, local_world=2)
    rc = cli.main([*FAKE, "run", *QUICK, "--tasks", "tiny", "--no-cache"])
    refused(capsys, rc, "torchrun started 2 ranks on this node but 1 CUDA device(s) are visible",
            "--nproc_per_node 1")
    assert not torch.distributed.is_initialized()


def test_torchrun_with_more_ranks_than_gpus_exits_2_on_every_rank(tmp_path: Path) -> None:
    """The real launcher: a rank prints the one line and exits 2 (torchrun then stops the others and reports
    the failure its own way, exit 1); no CUDA traceback such as 'invalid device ordinal'.  One GPU is
    simulated in each rank."""
    script = tmp_path / "one_gpu.py"
    script.write_text(
        "import sys, torch\n"
        "torch.cuda.is_available = lambda: True\n"
        "torch.cuda.device_count = lambda: 1\n"
        "def no_device(*a):\n"
        "    raise SystemExit('set_device called: ' + repr(a))\n"
        "torch.cuda.set_device = no_device\n"
        "import harness.testing\n"
        "def no_model(*a, **k):\n"
        "    raise SystemExit('a model loaded before the refusal')\n"
        "harness.testing.FakeEncoder.__init__ = no_model\n"
        "from harness.cli.main import main\n"
        "sys.exit(main(sys.argv[1:]))\n")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--standalone", str(script),
           *FAKE, "run", *QUICK, "--tasks", "tiny", "--no-cache", "--output", str(tmp_path / "out")]
    proc = subprocess.run(cmd, env=_torchrun_env(), capture_output=True, text=True, timeout=120)
    ours = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert 1 <= len(ours) <= 2 and all("torchrun started 2 ranks on this node but 1 CUDA device(s)" in line
                                       for line in ours), proc.stderr[-3000:]
    # torchrun stops the other rank (SIGTERM, -15) once one has failed, unless it has exited 2 already
    codes = [line.split(":")[1].split()[0] for line in proc.stderr.splitlines() if line.strip().startswith("exitcode")]
    assert "2" in codes and set(codes) <= {"2", "-15"}, f"ranks exit 2:\n{proc.stderr[-3000:]}"
    frames = [line for line in proc.stderr.splitlines() if line.strip().startswith('File "') and "/harness/" in line]
    assert "invalid device ordinal" not in proc.stderr and not frames, proc.stderr[-3000:]
    assert not (tmp_path / "out").exists()
