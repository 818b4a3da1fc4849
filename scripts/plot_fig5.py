"""Fig. 5: alignment of each parameter tensor with the naïve-loss-minimization (NLM) direction,
cos(θ_l, -∇_{θ_l} L) on the training gradient, against epoch; the dotted vertical line marks the
first logged epoch with 100 % train accuracy. Modular addition, 40 %, AdamW lr 1e-3, softmax CE,
no regularization: (a) MLP without biases, (b) MLP with biases, (c) transformer.

    python scripts/reproduce.py fig5 && python scripts/figures.py fig5
"""

from __future__ import annotations

from pathlib import Path

from grokking.plotting import FIGURES, run_panels, save
from grokking.results import RESULTS

MLP = {"input.weight": "input layer", "hidden.1.weight": "hidden layer", "output.weight": "output layer"}
MLP_BIAS = {**MLP, "output.bias": "output bias"}
TRANSFORMER = {"embed": "embed", "W_in": "MLP in", "W_out": "MLP out", "unembed": "unembed", "W_O": "attention out"}
PANELS = [
    ("mlp", "(a) MLP, no biases", MLP),
    ("mlp_bias", "(b) MLP with biases", MLP_BIAS),
    ("transformer", "(c) transformer", TRANSFORMER),
]


def first_full_train(df) -> int | None:
    hit = df[df.train_acc >= 1.0]
    return None if hit.empty else int(hit.epoch.iloc[0])


def main(results: Path = RESULTS, out_dir: Path = FIGURES) -> None:
    fig, present = run_panels("fig5", PANELS, results)
    for ax, _, (tensors,), df in present:
        for tensor, label in tensors.items():
            if f"nlm_cos/{tensor}" in df:
                ax.plot(df.epoch, df[f"nlm_cos/{tensor}"], label=label, lw=1.2)
        ax.plot(df.epoch, df.nlm_cos, color="k", ls="--", lw=1, label="whole model")
        epoch = first_full_train(df)
        if epoch is not None:
            ax.axvline(epoch, color="k", ls=":", lw=1.5, label="100 % train acc.")
        ax.set(ylim=(-0.4, 1.0), xlabel="epoch", ylabel="cos(θ, −∇L)")
        ax.legend(loc="lower right", ncol=2, fontsize=7)
    save(fig, "fig5", out_dir)
