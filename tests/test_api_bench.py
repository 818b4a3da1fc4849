"""The API rows of the speed benchmark (``python scripts/bench.py --api``) run and give a ratio."""

from reproduction.bench import bench_api


def test_api_rows_time_both_losses():
    rows = bench_api("cpu", repeats=20, smoke=True)
    assert [r["setting"] for r in rows] == ["api (256, 10) float32"]
    assert rows[0]["us_cross_entropy"] > 0 and rows[0]["us_stablemax"] > 0
    assert rows[0]["ratio"] == rows[0]["us_stablemax"] / rows[0]["us_cross_entropy"]
