"""Fig. 9: Fig. 2 with SGD whose step is divided by the full-gradient norm (lr 3 at 40 %, 4 at
60/70 %), loss in float16 / float32 / float64. Solid test, dashed train; a dotted vertical line where
the SC fraction first exceeds 50 %. ``fig9_plain_sgd``: the same with plain SGD (momentum 0.2), the
optimizer the authors' run script uses, drawn where those runs exist."""

from __future__ import annotations

from pathlib import Path

from reproduction.plotting import COLORS, accuracy_curves, official_legend, official_overlay, panels, save
from reproduction.results import exists, metrics, per_seed

FRACTIONS = (0.4, 0.6, 0.7)
PRECISIONS = ("float16", "float32", "float64")


def main(results: Path, out_dir: Path) -> None:
    draw(results, out_dir, "", "fig9")
    if any(exists("fig9", f"plain_sgd_frac{f}_{p}", results) for f in FRACTIONS for p in PRECISIONS):
        draw(results, out_dir, "plain_sgd_", "fig9_plain_sgd")


def draw(results: Path, out_dir: Path, prefix: str, name: str) -> None:
    fig, axes = panels(len(FRACTIONS))
    official = False
    for ax, frac in zip(axes, FRACTIONS, strict=True):
        for prec in PRECISIONS:
            run = f"{prefix}frac{frac}_{prec}"
            if not exists("fig9", run, results):
                continue
            df = metrics("fig9", run, results)
            df = df[df.epoch > 0]  # log axis
            accuracy_curves(ax, df, prec, COLORS[prec])
            for epoch in per_seed("fig9", run, "epoch_sc_50", results):
                if epoch is not None:
                    ax.axvline(epoch, color=COLORS[prec], ls=":", lw=1.2)
            official |= official_overlay(ax, "fig9", run, "test_acc", results)
        optimizer = "plain SGD, momentum 0.2" if prefix else "normalized SGD"
        ax.set(title=f"{frac:.0%} train, {optimizer}, lr {3 if frac == 0.4 else 4}", xlabel="epoch", xscale="log")
        ax.set(xlim=(50, 10_000), ylim=(-2, 102), ylabel="accuracy (%)")
    legend = next((ax for ax in axes if ax.lines), axes[0])  # the first panel with runs
    if official:  # the official script's plain-SGD runs, test accuracy
        official_legend(legend)
    legend.legend(title="loss dtype", loc="center left")
    save(fig, name, out_dir)
