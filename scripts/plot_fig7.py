"""Fig. 7: parameter trajectories of SGD, SGD + weight decay and ⊥SGD (MLP, addition, StableMax,
float64) projected on the first two principal components of the three trajectories, drawn over the
train-loss and test-loss surfaces of that plane.

    python scripts/reproduce.py fig7 && python scripts/figures.py fig7

Reads ``results/fig7/trajectories.csv`` and ``results/fig7/loss_grid.csv`` (written by the
reproduce step from the runs' parameter snapshots).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from reproduction.manifest import experiment
from reproduction.plotting import FIGURES, panels, save, series_of
from reproduction.results import RESULTS

EXP = experiment("fig7")  # one panel's series: the trajectories drawn


def main(results: Path = RESULTS, out_dir: Path = FIGURES) -> None:
    fig, axes = panels(2, width=4.6, height=3.8)
    traj_path, grid_path = results / "fig7" / "trajectories.csv", results / "fig7" / "loss_grid.csv"
    if not (traj_path.is_file() and grid_path.is_file()):
        for ax in axes:
            ax.text(0.5, 0.5, "fig7: not run", ha="center", transform=ax.transAxes)
        save(fig, "fig7", out_dir)
        return
    traj, grid = pd.read_csv(traj_path), pd.read_csv(grid_path)
    pc1, pc2 = np.sort(grid.pc1.unique()), np.sort(grid.pc2.unique())
    for ax, column, title in zip(axes, ("train_loss", "test_loss"), ("train loss", "test loss")):
        surface = grid.pivot(index="pc2", columns="pc1", values=column).loc[pc2, pc1].to_numpy()
        filled = ax.contourf(pc1, pc2, np.log10(surface), levels=20, cmap="Greys_r")
        ax.contour(pc1, pc2, np.log10(surface), levels=10, colors="k", linewidths=0.3, alpha=0.5)
        fig.colorbar(filled, ax=ax, label=f"log10 {title} (StableMax CE)")
        for run, (label, color) in series_of(EXP.plot.panels[0]).items():
            t = traj[traj.run == run].sort_values("epoch")
            ax.plot(t.pc1, t.pc2, color=color, lw=1.8, label=label)
            ax.plot(t.pc1.iloc[-1], t.pc2.iloc[-1], marker="*", color=color, ms=11, mec="k", mew=0.5)
        start = traj[traj.epoch == traj.epoch.min()].iloc[0]
        ax.plot(start.pc1, start.pc2, marker="o", color="w", mec="k", ms=6, label="start", ls="")
        ax.set(title=title, xlabel="PC 1", ylabel="PC 2", xlim=(pc1[0], pc1[-1]), ylim=(pc2[0], pc2[-1]))
        ax.grid(False)
    axes[0].legend(loc="lower left", fontsize=7)
    save(fig, "fig7", out_dir)
