"""Fig. 9: Fig. 2 with SGD whose step is divided by the full-gradient norm (lr 3 at 40 %, 4 at
60/70 %), loss in float16 / float32 / float64. Solid test, dashed train; a dotted vertical line where
the SC fraction first exceeds 50 %."""

from __future__ import annotations

from pathlib import Path

from grokking.plotting import COLORS, accuracy_curves, panels, save
from grokking.results import exists, metrics, per_seed

FRACTIONS = (0.4, 0.6, 0.7)
PRECISIONS = ("float16", "float32", "float64")


def main(results: Path, out_dir: Path) -> None:
    fig, axes = panels(len(FRACTIONS))
    for ax, frac in zip(axes, FRACTIONS, strict=True):
        for prec in PRECISIONS:
            run = f"frac{frac}_{prec}"
            if not exists("fig9", run, results):
                continue
            df = metrics("fig9", run, results)
            df = df[df.epoch > 0]  # log axis
            accuracy_curves(ax, df, prec, COLORS[prec])
            for epoch in per_seed("fig9", run, "epoch_sc_50", results):
                if epoch is not None:
                    ax.axvline(epoch, color=COLORS[prec], ls=":", lw=1.2)
        ax.set(title=f"{frac:.0%} train, lr {3 if frac == 0.4 else 4}", xlabel="epoch", xscale="log")
        ax.set(xlim=(50, 10_000), ylim=(-2, 102), ylabel="accuracy (%)")
    axes[0].legend(title="loss dtype", loc="center left")
    save(fig, "fig9", out_dir)
