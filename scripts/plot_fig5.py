"""Fig. 5: alignment of each parameter tensor with the naïve-loss-minimization (NLM) direction,
cos(θ_l, -∇_{θ_l} L) on the training gradient, against epoch; the dotted vertical line marks the
first logged epoch with 100 % train accuracy. Modular addition, 40 %, AdamW lr 1e-3, softmax CE,
no regularization: (a) MLP without biases, (b) MLP with biases, (c) transformer.

    python scripts/reproduce.py fig5 && python scripts/figures.py fig5
"""

from __future__ import annotations

import statistics
from pathlib import Path

from reproduction.manifest import experiment
from reproduction.plotting import FIGURES, curves_label, mean_band, run_panels, save
from reproduction.results import RESULTS

EXP = experiment("fig5")  # a panel per run; its options.tensors: the nlm_cos/<tensor> columns and their labels


def first_full_train(df) -> int | None:
    """Median over replicates of the first logged epoch with 100 % train accuracy."""
    keys = ["replicate", "seed"] if "replicate" in df else ["seed"]
    hits = [rows[rows.train_acc >= 1.0].epoch.min() for _, rows in df.groupby(keys)]
    hits = [int(h) for h in hits if h == h]
    return None if not hits else int(statistics.median(hits))


def main(results: Path = RESULTS, out_dir: Path = FIGURES) -> None:
    specs = [(p.series[0].run, p.title, p.options["tensors"]) for p in EXP.plot.panels]
    fig, present = run_panels(EXP.name, specs, results)
    for ax, _, (tensors,), df in present:
        for tensor, label in tensors.items():
            if f"nlm_cos/{tensor}" in df:
                mean_band(ax, df, "epoch", f"nlm_cos/{tensor}", label, lw=1.2)
        mean_band(ax, df, "epoch", "nlm_cos", curves_label("whole model", df), "k", ls="--", lw=1)
        epoch = first_full_train(df)
        if epoch is not None:
            ax.axvline(epoch, color="k", ls=":", lw=1.5, label="100 % train acc.")
        ax.set(ylim=(-0.4, 1.0), xlabel="epoch", ylabel="cos(θ, −∇L)")
        ax.legend(loc="lower right", ncol=2, fontsize=7)
    save(fig, EXP.name, out_dir)
