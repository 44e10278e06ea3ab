"""The benchmark scripts run and print their ratio lines (tiny settings; numbers are not checked)."""

from __future__ import annotations

import sys

import pytest

from conftest import REPO

sys.path.insert(0, str(REPO / "bench"))

import bench_encode  # noqa: E402
import bench_train  # noqa: E402
import scale_plan  # noqa: E402


def test_bench_train_prints_cache_over_ram_per_view(tmp_path, capsys):
    rc = bench_train.main(["-p", "harness.testing", "--encoder", "fake", "--preset", "baby", "--pairs", "16",
                           "--train-batch-size", "8", "--repeat", "1", "--threads", "1", "--tmp-dir", str(tmp_path),
                           "--widths", "16", "--layers", "3", "--tokens", "8", "--width-steps", "2"])
    out = capsys.readouterr().out
    assert rc == 0
    for view in ("last", "learned"):
        line = next((x for x in out.splitlines() if x.startswith(f"{view}, prefetched")), "")
        assert "cache/ram = " in line and "from the wait times" in line, f"no ratio line for {view}:\n{out}"
    assert "random x3" in out and "cpu-resident" in out, out


def test_bench_train_host_feed_times_both_paths_and_halves_the_bytes(capsys):
    assert bench_train.main(["--no-store", "--host-feed", "64,128"]) == 0
    rows = [line.split(" | ") for line in capsys.readouterr().out.splitlines() if line.startswith(("| 64 ", "| 128 "))]
    assert [r[0] for r in rows] == ["| 64", "| 128"]
    assert all(r[-1] == "0.50 |" for r in rows), "bf16 padded batches move half the bytes of float32 ones"


def test_cache_bytes_per_token_counts_each_view_from_the_shards(tmp_path, pm):
    from harness.features.cache import encoder_fingerprint
    from harness.features.extractors import parse_extractors, view_for
    from harness.features.store import FeatureStore
    from harness.testing import FakeEncoder

    enc = FakeEncoder(width=16, num_layers=3)
    views = [view_for(s, enc.info) for s in parse_extractors(pm, ["last", "learned"])]
    texts = ["a red cat sits on the mat", "two dogs run", "one bird"]
    for dtype, itemsize in (("float32", 4), ("bfloat16", 2)):
        cache = bench_train.make_cache(tmp_path / dtype, encoder_fingerprint(enc.info), dtype=dtype, fsync="none")
        store = FeatureStore(enc, views, dtype=dtype, cache=cache)
        store.ensure(texts)
        got = bench_encode.cache_bytes_per_token(store, texts, enc.info.width)
        cache.close()
        assert got["tokens"] == 7 + 3 + 2, got
        by_op = {k.split(":")[0]: v for k, v in got["views"].items()}
        assert by_op["single"]["payload_per_token"] == 16 * itemsize, "one layer: width x itemsize per token"
        assert by_op["stack"]["payload_per_token"] == 4 * 16 * itemsize, "stack: (3 layers + embedding) x width"
        assert by_op["single"]["bytes_per_token"] > by_op["single"]["payload_per_token"], "headers are charged"
        total = sum(v["bytes_per_token"] for v in got["views"].values()) * got["tokens"]
        assert total == pytest.approx(got["file_bytes"]), "every byte on disk is charged to a view"


def test_scale_plan_tables(capsys):
    assert scale_plan.MODELS[0].params == pytest.approx(4.63e9, rel=0.01), "UMT5-XXL encoder outside embeddings"
    assert scale_plan.MODELS[1].params == pytest.approx(6.95e9, rel=0.01), "Qwen3-VL-8B text model"
    assert scale_plan.MODELS[2].params == pytest.approx(31.2e9, rel=0.01), "Qwen3-VL-32B text model"
    assert scale_plan.main([]) == 0
    out = capsys.readouterr().out
    assert "0.906M tokens" in out and "3,906 steps" in out, out


@pytest.mark.parametrize("bad", ["abc", "2560,x", "0", "-4", ","])
def test_bench_train_refuses_a_bad_host_feed_in_one_line(bad, capsys):
    with pytest.raises(SystemExit) as exc:
        bench_train.main(["--no-store", "--host-feed", bad])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "Traceback" not in err
    assert "--host-feed" in err and "comma-separated list of positive integers" in err, err


def test_positive_int_list_is_the_shared_parser_of_widths():
    import argparse

    from harness.cli.argtypes import positive_int_list

    assert positive_int_list("2560, 4096,") == (2560, 4096)
    for bad in ("", ",", "0", "3,-1", "1.5", "x"):
        with pytest.raises(argparse.ArgumentTypeError, match="comma-separated list of positive integers"):
            positive_int_list(bad)
