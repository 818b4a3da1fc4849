"""The API rows of the speed benchmark (``python scripts/bench.py --api``) run and give a ratio."""

import importlib.util
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "scripts" / "bench.py"


def test_api_rows_time_both_losses():
    spec = importlib.util.spec_from_file_location("bench_api_rows", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_api_rows"] = module  # dataclasses look their module up there
    try:
        spec.loader.exec_module(module)
        rows = module.bench_api("cpu", repeats=20, smoke=True)
    finally:
        del sys.modules["bench_api_rows"]
    assert [r["setting"] for r in rows] == ["api (256, 10) float32"]
    assert rows[0]["us_cross_entropy"] > 0 and rows[0]["us_stablemax"] > 0
    assert rows[0]["ratio"] == rows[0]["us_stablemax"] / rows[0]["us_cross_entropy"]
