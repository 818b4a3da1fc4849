"""Fig. 3: StableMax's s(x) (x + 1 for x ≥ 0, 1 / (1 - x) for x < 0) against exp(x) on [-4, 4].

    python scripts/figures.py fig3   # no runs needed

Both functions are evaluated on the same grid that is plotted.
"""

from __future__ import annotations

from pathlib import Path

import torch

from grokking.losses import stablemax_s
from reproduction.plotting import COLORS, FIGURES, panels, save
from reproduction.results import RESULTS


def main(results: Path = RESULTS, out_dir: Path = FIGURES) -> None:
    x = torch.linspace(-4, 4, 801, dtype=torch.float64)
    fig, (ax,) = panels(1, width=4.2, height=3.2)
    ax.plot(x, torch.exp(x), color=COLORS["softmax"], label="$e^x$ (softmax)")
    ax.plot(x, stablemax_s(x), color=COLORS["stablemax"], label="$s(x)$ (StableMax)")
    ax.set_xlabel("$x$")
    ax.set_ylabel("value")
    ax.set_xlim(-4, 4)
    ax.legend(loc="upper left")
    save(fig, "fig3", out_dir)
