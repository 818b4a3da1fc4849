"""Fig. 12: Fourier spectra of the first-layer weights (operand a; b is alike) of MLPs that grok
without weight decay against ones that memorize. Normalized power per frequency 1..56 (the constant
term is left out); each title gives the share of the non-constant power in the 10 strongest
frequencies."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from reproduction.plotting import panels, save

# (csv stem, run, title, color): the long runs are always there, the short ones when exported
PAIRS = [
    ("long_runs", "stablemax", "grokked: StableMax, 100k epochs (Fig. 4)", "#ff7f0e"),
    ("long_runs", "softmax", "memorizing: softmax, 80k epochs (Fig. 1c)", "#7f7f7f"),
    ("", "grokked_perp_adamw", "grokked: ⊥AdamW, 300 epochs (Fig. 1a)", "#9467bd"),
    ("", "memorizing_adamw", "memorizing: AdamW, 500 epochs (Fig. 6b)", "#1f77b4"),
]


def read(results: Path, stem: str) -> tuple[pd.DataFrame, pd.DataFrame] | None:
    prefix = f"{stem}_" if stem else ""
    spectra, sparsity = results / "fig12" / f"{prefix}spectra.csv", results / "fig12" / f"{prefix}sparsity.csv"
    if not (spectra.is_file() and sparsity.is_file()):
        return None
    return pd.read_csv(spectra), pd.read_csv(sparsity)


def main(results: Path, out_dir: Path) -> None:
    tables = {stem: read(results, stem) for stem in {p[0] for p in PAIRS}}
    shown = [p for p in PAIRS if tables[p[0]] is not None and p[1] in set(tables[p[0]][0].run)]
    if not shown:
        raise FileNotFoundError(f"{results / 'fig12'} holds no spectra (python scripts/reproduce.py fig12)")
    fig, axes = panels(len(shown), width=3.4)
    for ax, (stem, run, title, color) in zip(axes, shown, strict=True):
        spectra, sparsity = tables[stem]
        rows = spectra[(spectra.run == run) & (spectra.operand == "a") & (spectra.frequency > 0)]
        share = sparsity[(sparsity.run == run) & (sparsity.operand == "a")].top10_share.iloc[0]
        ax.bar(rows.frequency, rows.power, width=0.9, color=color)
        ax.set(xlabel="frequency k", ylabel="normalized power", xlim=(0, 57))
        ax.set_title(f"{title}\ntop-10 share {share:.0%}", fontsize=8.5)
    save(fig, "fig12", out_dir)
