"""A tiny run of the speed benchmark (the full one is `make bench`, not a test)."""

import csv
import importlib.util
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "scripts" / "bench.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    yield module
    del sys.modules["bench"]


def test_bench_smoke_writes_every_setting(bench, tmp_path):
    out = tmp_path / "bench.csv"
    bench.main(["--smoke", "--threads", "1", "--out", str(out)])
    rows = list(csv.DictReader(out.open()))
    assert [r["setting"] for r in rows[: len(bench.SETTINGS)]] == [s.name for s in bench.SETTINGS]
    assert len(rows) == len(bench.SETTINGS) + 2
    for r in rows:
        assert float(r["ms_per_epoch"]) > 0 and float(r["matmul_gflops"]) > 0
    for r in rows[: len(bench.SETTINGS)]:
        assert float(r["gflop_per_epoch"]) > 0 and float(r["ratio_to_floor"]) > 0


def test_flop_count_of_the_mlp_leaves_out_the_gather(bench):
    step = bench.Epoch(["dataset.modulus=23", "model.width=32", "dataset.train_fraction=0.4"], [0])
    n, h, c = step.n_train, 32, 23
    # hidden and output layers: forward, gradient of the input and of the weight; first layer: a gather
    assert step.flops() == 3 * 2 * n * (h * h + h * c)
