"""``scripts/figures.py`` on the committed results draws every figure (into a temporary folder)."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MAIN_FIGURES = [f"fig{n}" for n in range(1, 8)]


def test_figures_script_draws_every_figure(tmp_path):
    out, claims = tmp_path / "figures", tmp_path / "CLAIMS.md"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, str(ROOT / "scripts" / "figures.py"), "--out", str(out), "--claims", str(claims)]
    done = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    from reproduction.manifest import experiments

    drawn = [name for name, exp in experiments().items() if exp.plot is not None]  # every manifest with a plot
    assert set(MAIN_FIGURES) <= set(drawn)
    for name in drawn:
        for suffix in (".png", ".pdf"):
            assert (out / f"{name}{suffix}").stat().st_size > 1000, name
    lines = claims.read_text().strip().splitlines()
    assert lines[-1].split(":")[0].endswith("claims") and " hold, " in lines[-1]


def test_main_figures_skip_missing_runs(tmp_path):
    """On a results folder with no runs each main-text script still writes its (empty) figure."""
    import importlib.util

    for name in MAIN_FIGURES:
        spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"plot_{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        module.main(tmp_path / "results", tmp_path / "out")
        assert (tmp_path / "out" / f"{name}.png").is_file()


def test_a_band_interpolates_curves_at_the_epochs_only_others_logged():
    """Replicates log extra epochs around their own onsets: at such an epoch the mean is over every
    curve (the others interpolated), not over the curves that logged it, so it does not jump; a
    curve is never extended beyond its own last epoch."""
    import pandas as pd

    from reproduction.plotting import curve_stats

    dense = pd.DataFrame({"epoch": [0, 10, 15, 20], "replicate": 0, "seed": 0, "acc": [0.0, 10.0, 15.0, 20.0]})
    sparse = pd.DataFrame({"epoch": [0, 10, 20, 30], "replicate": 1, "seed": 1, "acc": [0.0, 0.0, 10.0, 20.0]})
    mean, lo, hi = curve_stats(pd.concat([dense, sparse]), "epoch", "acc")
    assert mean.to_dict() == {0: 0.0, 10: 5.0, 15: 10.0, 20: 15.0, 30: 20.0}  # 15: (15 + 5) / 2
    assert lo[15] == 5.0 and hi[15] == 15.0 and lo[30] == hi[30] == 20.0
    one, *_ = curve_stats(dense, "epoch", "acc")
    assert one.to_dict() == dict(zip(dense.epoch, dense.acc))
