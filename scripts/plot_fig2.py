"""Fig. 2: modular addition with AdamW (lr 5e-4) and the loss in float16 / float32 / float64, at
40 %, 60 % and 70 % train data. Test accuracy rises, then freezes once Softmax Collapse (SC) takes
hold; SC arrives first in the lowest precision.

    python scripts/reproduce.py fig2 && python scripts/figures.py fig2

Solid: test accuracy; dashed: train accuracy; dotted vertical line: first logged epoch at which more
than 50 % of the training samples are in SC, measured in the run's own loss dtype.
"""

from __future__ import annotations

from pathlib import Path

from grokking.plotting import COLORS, FIGURES, panels, save
from grokking.results import RESULTS, exists, metrics

FRACTIONS = (0.4, 0.6, 0.7)
PRECISIONS = ("float16", "float32", "float64")
SC_THRESHOLD = 0.5


def first_sc_epoch(df) -> int | None:
    hit = df[df.sc_fraction > SC_THRESHOLD]
    return None if hit.empty else int(hit.epoch.iloc[0])


def main(results: Path = RESULTS, out_dir: Path = FIGURES) -> None:
    fig, axes = panels(3)
    for ax, frac in zip(axes, FRACTIONS):
        for prec in PRECISIONS:
            run = f"frac{frac}_{prec}"
            if not exists("fig2", run, results):
                continue
            df = metrics("fig2", run, results)
            df = df[df.epoch > 0]
            color = COLORS[prec]
            ax.plot(df.epoch, 100 * df.test_acc, color=color, label=prec)
            ax.plot(df.epoch, 100 * df.train_acc, color=color, ls="--", lw=1)
            sc = first_sc_epoch(df)
            if sc is not None:
                ax.axvline(sc, color=color, ls=":", lw=1.5)
        ax.set_xscale("log")
        ax.set_ylim(-3, 103)
        ax.set_title(f"{100 * frac:.0f} % train data")
        ax.set_xlabel("epoch")
        ax.set_ylabel("accuracy (%)")
    axes[0].plot([], [], color="k", ls="--", lw=1, label="train")
    axes[0].plot([], [], color="k", ls=":", lw=1.5, label="SC > 50 %")
    axes[0].legend(loc="center left")
    save(fig, "fig2", out_dir)
