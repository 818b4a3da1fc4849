"""Post-processing for Figs. 7 and 12, and the reproduction manifest."""

import math
import subprocess
import sys
from pathlib import Path

import pandas as pd
import torch

from reproduction.fourier import export_spectra, operand_spectra, top_k_share
from reproduction.trajectory import export_trajectories, principal_plane

ROOT = Path(__file__).resolve().parent.parent
TINY = ["dataset.modulus=23", "model.width=16", "epochs=20", "log_every=5", "snapshot_every=5"]


def test_principal_plane_finds_the_dominant_directions():
    t = torch.linspace(-1, 1, 50, dtype=torch.float64)
    points = torch.stack([10 * t, 3 * torch.cos(6 * t), 0.01 * t**2, torch.zeros_like(t)], 1) + 5
    mean, basis = principal_plane(points)
    assert torch.allclose(mean, points.mean(0))
    assert abs(basis[0, 0].abs().item() - 1) < 1e-6 and basis[1, 1].abs().item() > 0.99


def test_fourier_spectrum_of_a_pure_frequency_is_sparse():
    p = 23
    k = torch.arange(p, dtype=torch.float64)
    weight = torch.cat([torch.cos(2 * math.pi * 3 * k / p)[:, None].repeat(1, 8)] * 2)
    spectra = operand_spectra(weight, p)
    assert spectra["a"].argmax().item() == 3
    assert top_k_share(spectra["a"], k=1) > 0.999
    noise = operand_spectra(torch.randn(2 * p, 64, dtype=torch.float64), p)
    assert top_k_share(noise["a"], k=1) < 0.5


def test_trajectory_and_spectrum_exports_from_real_runs(run, tmp_path):
    runs = {}
    for name, extra in (
        ("sgd", ["optimizer=sgd", "optimizer.lr=1"]),
        ("perp", ["optimizer=perp_sgd", "optimizer.lr=1"]),
    ):
        _, runs[name] = run([*TINY, *extra])
    export_trajectories(runs, tmp_path / "fig7", grid=4)
    traj = pd.read_csv(tmp_path / "fig7" / "trajectories.csv")
    assert set(traj.run) == {"sgd", "perp"} and list(traj[traj.run == "sgd"].epoch) == [0, 5, 10, 15]
    grid = pd.read_csv(tmp_path / "fig7" / "loss_grid.csv")
    assert len(grid) == 16 and grid[["train_loss", "test_loss"]].notna().all().all()
    export_spectra(runs, tmp_path / "fig12")
    spectra = pd.read_csv(tmp_path / "fig12" / "spectra.csv")
    assert len(spectra) == 2 * 2 * (23 // 2 + 1)


def test_reproduce_lists_every_figure():
    out = subprocess.run([sys.executable, "scripts/reproduce.py", "--list"], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    for fig in ("fig1/", "fig2/", "fig4/", "fig5/", "fig6/", "fig7/", "fig8/", "fig9/", "fig16/", "table1/"):
        assert fig in out.stdout
    bad = subprocess.run([sys.executable, "scripts/reproduce.py", "fig99"], cwd=ROOT, capture_output=True, text=True)
    assert bad.returncode != 0 and "fig99" in bad.stderr


def test_reproduce_only_takes_names_or_figure_slash_name_and_rejects_others():
    def listed(*args):
        return subprocess.run([sys.executable, "scripts/reproduce.py", *args], cwd=ROOT, capture_output=True, text=True)

    out = listed("fig6", "--only", "fig1/a_perp_adamw", "b_adamw", "--list")  # fig1/... is not among fig6's runs
    assert out.returncode != 0 and "--only fig1/a_perp_adamw is not a run of fig6" in out.stderr
    out = listed("--only", "fig1/a_perp_adamw", "b_adamw", "--list")
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [
        "fig1/a_perp_adamw: python train.py experiment=fig1a",
        "fig6/b_adamw: python train.py experiment=fig6b",
    ]
