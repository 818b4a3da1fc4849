"""Checkable claims of the main text (Figs. 1-7), as PAPER.md states them.

Accuracies are in percent and read off the paper's figures, so the tolerance on an accuracy is
±10 points unless the paper gives a bound; epochs read off a figure get the tolerance written next
to them. Fig. 3 (s(x) against exp(x)) has no result to check. A run without ``summary.json`` (not
run, or still running) makes its claims ``missing``.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from grokking.claims import Claim, at_least, at_most, within
from grokking.results import final_mean, first_epoch, metrics, onsets, summary, value_at


def completed(figure: str, run: str, root: Path) -> pd.DataFrame:
    """The run's metrics, only once its summary says it completed (else the claim is missing)."""
    if summary(figure, run, root)["status"] != "completed":
        raise FileNotFoundError(f"{figure}/{run} has not completed")
    return metrics(figure, run, root)


def first_test_50(figure: str, run: str):
    """The first logged epoch with test accuracy >= 50 % of a completed single-seed run."""

    def measure(r: Path) -> float | None:
        completed(figure, run, r)
        return onsets(figure, run, "test_acc", 0.5, r)[0]

    return measure


def pct_final(figure: str, run: str, column: str = "test_acc"):
    """Seed mean of the last logged ``column``, in percent."""

    def measure(r: Path) -> float:
        completed(figure, run, r)
        return 100 * final_mean(figure, run, column, r)

    return measure


def pct_at(figure: str, run: str, epoch: int, column: str = "test_acc"):
    """Seed mean of ``column`` at the last logged epoch <= ``epoch``, in percent."""

    def measure(r: Path) -> float:
        completed(figure, run, r)
        return 100 * value_at(figure, run, column, epoch, r)

    return measure


def max_pct(figure: str, run: str, column: str = "test_acc"):
    """Largest seed-mean value of ``column`` over training, in percent."""
    return lambda r: 100 * completed(figure, run, r).groupby("epoch")[column].mean().max()


# ---------------------------------------------------------------------------------------------
# Fig. 2: the first epoch with SC > 50 % (in the run's loss dtype) and the test accuracy after it
FIG2_PAPER = {  # fraction -> precision -> final test accuracy (%) read off the paper, as a range
    0.7: {"float16": (48, 48), "float32": (65, 65), "float64": (85, 93)},
    0.6: {"float16": (15, 15), "float32": (30, 30), "float64": (52, 52)},
    0.4: {"float16": (0, 0), "float32": (0, 0), "float64": (0, 0)},
}


def sc_order_gap(frac: float):
    """min(epoch_SC(fp32) - epoch_SC(fp16), epoch_SC(fp64) - epoch_SC(fp32)); > 0 iff fp16 < fp32 < fp64."""

    def measure(r: Path) -> float | None:
        e16, e32, e64 = (
            onsets("fig2", f"frac{frac}_{p}", "sc_fraction", 0.5, r)[0] for p in ("float16", "float32", "float64")
        )
        return None if None in (e16, e32, e64) else min(e32 - e16, e64 - e32)

    return measure


def fig2_train_epoch(r: Path) -> float | None:
    epochs = [onsets("fig2", f"frac{f}_{p}", "train_acc", 1.0, r)[0] for f in FIG2_PAPER for p in FIG2_PAPER[f]]
    return None if None in epochs else max(epochs)


def fig2_gain_after_sc(r: Path) -> float:
    """Largest rise of test accuracy (points) from the first SC > 50 % epoch to the end, over the 60/70 % runs."""
    gains = []
    for frac in (0.6, 0.7):
        for prec in ("float16", "float32", "float64"):
            df = completed("fig2", f"frac{frac}_{prec}", r)
            hit = df[df.sc_fraction >= 0.5]
            if not hit.empty:
                gains.append(100 * (df.test_acc.iloc[-1] - hit.test_acc.iloc[0]))
    return max(gains)


# ---------------------------------------------------------------------------------------------
# Fig. 5: NLM alignment (cos(θ_l, -∇L)) around the first epoch with 100 % train accuracy
FIG5_OUTPUT = {"mlp": "output.weight", "mlp_bias": "output.weight", "transformer": "unembed"}
FIG5_OTHERS = {
    "mlp": ["input.weight", "hidden.1.weight"],
    "mlp_bias": ["input.weight", "hidden.1.weight"],
    "transformer": ["W_Q", "W_K", "W_V", "W_O", "W_in", "W_out"],
}
WINDOW = 500  # epochs after 100 % train accuracy


def fig5_windows(run: str, r: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    df = completed("fig5", run, r)
    t100 = df[df.train_acc >= 1.0].epoch.iloc[0]
    return df[df.epoch < t100], df[(df.epoch >= t100) & (df.epoch < t100 + WINDOW)]


def fig5_rise(run: str):
    """Output-layer alignment: mean over the 500 epochs after 100 % train accuracy minus the mean before."""

    def measure(r: Path) -> float:
        before, after = fig5_windows(run, r)
        column = f"nlm_cos/{FIG5_OUTPUT[run]}"
        return after[column].mean() - before[column].mean()

    return measure


def fig5_output_max(run: str):
    return lambda r: completed("fig5", run, r)[f"nlm_cos/{FIG5_OUTPUT[run]}"].max()


def fig5_output_lead(run: str):
    """After overfitting, output-layer (MLP) or max(embed, unembed) (transformer) alignment minus the
    largest alignment of the other weight tensors (means over the 500-epoch window)."""

    def measure(r: Path) -> float:
        _, after = fig5_windows(run, r)
        top = ["embed", "unembed"] if run == "transformer" else [FIG5_OUTPUT[run]]
        best = max(after[f"nlm_cos/{t}"].mean() for t in top)
        return best - max(after[f"nlm_cos/{t}"].mean() for t in FIG5_OTHERS[run])

    return measure


# ---------------------------------------------------------------------------------------------
# Fig. 6a: no overfitting phase for ⊥AdamW; Fig. 6c: SCE against the squared weight norm
def max_train_test_gap(figure: str, run: str):
    """Largest (train - test) accuracy gap over training, in points (seed means)."""

    def measure(r: Path) -> float:
        df = completed(figure, run, r).groupby("epoch")[["train_acc", "test_acc"]].mean()
        return 100 * (df.train_acc - df.test_acc).max()

    return measure


def fig6c_phases(r: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    df = completed("fig6", "a_adamw_wd", r)
    peak = df.weight_norm.idxmax()
    return df.loc[:peak], df.loc[peak:]


def fig6c_loss_drop_while_growing(r: Path) -> float:
    """log10(SCE at the weight-norm peak / initial SCE); < 0 when SCE falls while the norm grows."""
    growing, _ = fig6c_phases(r)
    return math.log10(growing.train_loss.iloc[-1] / growing.train_loss.iloc[0])


def fig6c_norm_after_peak(r: Path) -> float:
    """Final ‖θ‖² / peak ‖θ‖²; < 1 when the L2 penalty falls after its peak."""
    growing, after = fig6c_phases(r)
    return (after.weight_norm.iloc[-1] / growing.weight_norm.iloc[-1]) ** 2


def fig6c_both_fall(r: Path) -> float:
    """Spearman correlation of SCE and ‖θ‖ after the norm peak (positive when both fall together)."""
    _, after = fig6c_phases(r)
    return after.train_loss.rank().corr(after.weight_norm.rank())


# ---------------------------------------------------------------------------------------------
# Fig. 7: losses of the SGD, SGD + wd and ⊥SGD runs
def fig7_loss(run: str, column: str, which: str):
    def measure(r: Path) -> float:
        loss = completed("fig7", run, r)[column]
        return {"final": loss.iloc[-1], "initial": loss.iloc[0], "max": loss.max()}[which]

    return measure


def ratio(a, b):
    return lambda r: a(r) / b(r)


CLAIMS = [
    # Fig. 1
    Claim(
        "Fig. 1a",
        "⊥AdamW: test accuracy at the end of 300 epochs (mean of 5 seeds)",
        "≈ 100 %",
        lambda r: 100 * final_mean("fig1", "a_perp_adamw", "test_acc", r),
        at_least(97),
        "≥ 97 %",
        "{:.1f} %",
    ),
    Claim(
        "Fig. 1a",
        "⊥AdamW: epoch at which test accuracy passes 95 % (mean of 5 seeds)",
        "≈ 150–200",
        lambda r: first_epoch("fig1", "a_perp_adamw", "test_acc", 0.95, r),
        at_most(250),
        "≤ 250",
        "{:.0f}",
    ),
    Claim(
        "Fig. 1a",
        "⊥AdamW: epoch at which train accuracy reaches 100 % (mean of 5 seeds)",
        "≈ 150–200",
        lambda r: first_epoch("fig1", "a_perp_adamw", "train_acc", 1.0, r),
        at_most(250),
        "≤ 250",
        "{:.0f}",
    ),
    Claim(
        "Fig. 1b",
        "StableMax: train accuracy at epoch 5 000",
        "100 %",
        pct_at("fig1", "b_stablemax", 5000, "train_acc"),
        at_least(99),
        "≥ 99 %",
        "{:.1f} %",
    ),
    Claim(
        "Fig. 1b",
        "StableMax: first epoch with test accuracy ≥ 50 %",
        "35 000–47 000",
        lambda r: onsets("fig1", "b_stablemax", "test_acc", 0.5, r)[0],
        lambda x: 30_000 <= x <= 52_000,
        "30 000–52 000 (±5 000)",
        "{:.0f}",
    ),
    Claim(
        "Fig. 1b",
        "StableMax: test accuracy at epoch 75 000",
        "≈ 97 %",
        pct_at("fig1", "b_stablemax", 75000),
        within(97, 10),
        "±10 points",
        "{:.1f} %",
    ),
    *[
        Claim(
            "Fig. 1b",
            f"StableMax, init seed {seed} (extra seed, same split): first epoch with test accuracy ≥ 50 %",
            "35 000–47 000",
            first_test_50("fig1", f"b_stablemax_seed{seed}"),
            lambda x: 30_000 <= x <= 52_000,
            "30 000–52 000 (±5 000)",
            "{:.0f}",
        )
        for seed in (1, 2)
    ],
    Claim(
        "Fig. 1c",
        "softmax CE: highest test accuracy over 80k epochs",
        "≈ 0 %",
        max_pct("fig1", "c_softmax"),
        at_most(5),
        "≤ 5 %",
        "{:.1f} %",
    ),
    # Fig. 2
    *[
        Claim(
            "Fig. 2",
            f"{100 * frac:.0f} % data, loss in {prec}: final test accuracy (epoch 20k)",
            f"≈ {lo}–{hi} %" if lo != hi else f"≈ {lo} %",
            pct_final("fig2", f"frac{frac}_{prec}"),
            lambda x, lo=lo, hi=hi: lo - 10 <= x <= hi + 10,
            "±10 points",
            "{:.1f} %",
        )
        for frac, precs in FIG2_PAPER.items()
        for prec, (lo, hi) in precs.items()
    ],
    *[
        Claim(
            "Fig. 2",
            f"{100 * frac:.0f} % data: SC (> 50 %) arrives first in fp16, then fp32, then fp64 — "
            "min(epoch_SC fp32 − fp16, fp64 − fp32)",
            "> 0",
            sc_order_gap(frac),
            at_least(1),
            "> 0 epochs",
            "{:+.0f} epochs",
        )
        for frac in (0.4, 0.6, 0.7)
    ],
    Claim(
        "Fig. 2",
        "latest epoch, over the 9 runs, at which train accuracy reaches 100 %",
        "≈ 500",
        fig2_train_epoch,
        at_most(600),
        "≤ 600 (+20 %)",
        "{:.0f}",
    ),
    Claim(
        "Fig. 2",
        "test accuracy freezes once SC takes hold: largest rise after SC > 50 % (60 % and 70 % runs)",
        "≈ 0 points",
        fig2_gain_after_sc,
        at_most(5),
        "≤ 5 points",
        "{:+.1f} points",
    ),
    # Fig. 4
    *[
        Claim(
            "Fig. 4",
            f"StableMax, {label}: final test accuracy (100k epochs)",
            "≥ 95 %",
            pct_final("fig4", run),
            at_least(95),
            "≥ 95 %",
            "{:.1f} %",
        )
        for run, label in (("add_mod", "addition"), ("mul_mod", "multiplication"), ("sparse_parity", "sparse parity"))
    ],
    *[
        Claim(
            "Fig. 4",
            f"StableMax, {label}: train accuracy at epoch 5 000",
            "100 %",
            pct_at("fig4", run, 5000, "train_acc"),
            at_least(99),
            "≥ 99 %",
            "{:.1f} %",
        )
        for run, label in (("add_mod", "addition"), ("mul_mod", "multiplication"), ("sparse_parity", "sparse parity"))
    ],
    *[
        Claim(
            "Fig. 4",
            f"StableMax, {label}: final total L2 weight norm",
            "tens of thousands",
            lambda r, run=run: completed("fig4", run, r).weight_norm.iloc[-1],
            lambda x: 1e4 <= x < 1e5,
            "10⁴–10⁵",
            "{:,.0f}",
        )
        for run, label in (("add_mod", "addition"), ("mul_mod", "multiplication"))
    ],
    Claim(
        "Fig. 4",
        "one-hot input: final train accuracy (mean of 5 seeds)",
        "100 %",
        pct_final("fig4", "input_one_hot", "train_acc"),
        at_least(99),
        "≥ 99 %",
        "{:.1f} %",
    ),
    Claim(
        "Fig. 4",
        "one-hot input: final test accuracy (mean of 5 seeds)",
        "≈ 0 %",
        pct_final("fig4", "input_one_hot"),
        at_most(10),
        "≤ 10 %",
        "{:.1f} %",
    ),
    Claim(
        "Fig. 4",
        "binary input (random 14-bit code per integer, as PAPER.md states): test accuracy at epoch 100 (5 seeds)",
        "≈ 96 %",
        pct_at("fig4", "input_binary", 100),
        within(96, 10),
        "±10 points",
        "{:.1f} %",
    ),
    Claim(
        "Fig. 4",
        "binary input (each operand's 7-bit base-2 digits, as the released dataset): test accuracy at epoch 100 (5 seeds)",
        "≈ 96 %",
        pct_at("fig4", "input_base2", 100),
        within(96, 10),
        "±10 points",
        "{:.1f} %",
    ),
    # Fig. 5
    *[
        Claim(
            "Fig. 5",
            f"{label}: {FIG5_OUTPUT[run]} alignment rises after overfitting — mean over the {WINDOW} epochs after "
            "100 % train accuracy minus mean before",
            "> 0 (jumps)",
            fig5_rise(run),
            at_least(0.05),
            "≥ +0.05",
            "{:+.2f}",
        )
        for run, label in (("mlp", "MLP"), ("mlp_bias", "MLP with biases"), ("transformer", "transformer"))
    ],
    *[
        Claim(
            "Fig. 5",
            f"{label}: highest {FIG5_OUTPUT[run]} alignment",
            "≈ 0.9",
            fig5_output_max(run),
            within(0.9, 0.1),
            "±0.1",
            "{:.2f}",
        )
        for run, label in (("mlp", "MLP"), ("mlp_bias", "MLP with biases"), ("transformer", "transformer"))
    ],
    *[
        Claim(
            "Fig. 5",
            f"{label}: alignment strongest for {what} — its mean after overfitting minus the largest other weight's",
            "> 0",
            fig5_output_lead(run),
            at_least(0),
            "≥ 0",
            "{:+.2f}",
        )
        for run, label, what in (
            ("mlp", "MLP", "the output layer"),
            ("mlp_bias", "MLP with biases", "the output layer"),
            ("transformer", "transformer", "embed/unembed"),
        )
    ],
    # Fig. 6
    Claim(
        "Fig. 6a",
        "transformer, AdamW: final test accuracy (epoch 5k)",
        "≈ 0 %",
        pct_final("fig6", "a_adamw"),
        at_most(10),
        "≤ 10 %",
        "{:.1f} %",
    ),
    Claim(
        "Fig. 6a",
        "transformer, AdamW + weight decay 1.5: test accuracy at epoch 3 000",
        "≈ 99 %",
        pct_at("fig6", "a_adamw_wd", 3000),
        within(99, 10),
        "±10 points",
        "{:.1f} %",
    ),
    Claim(
        "Fig. 6a",
        "transformer, ⊥AdamW: test accuracy at epoch 2 000",
        "generalized (≈ 100 %)",
        pct_at("fig6", "a_perp_adamw", 2000),
        at_least(90),
        "≥ 90 %",
        "{:.1f} %",
    ),
    Claim(
        "Fig. 6a",
        "transformer, ⊥AdamW: no overfitting phase — largest train − test accuracy gap",
        "≈ 0 points",
        max_train_test_gap("fig6", "a_perp_adamw"),
        at_most(20),
        "≤ 20 points",
        "{:.1f} points",
    ),
    Claim(
        "Fig. 6b",
        "MLP, AdamW: final test accuracy (epoch 500, mean of 5 seeds)",
        "0 %",
        pct_final("fig6", "b_adamw"),
        at_most(10),
        "≤ 10 %",
        "{:.1f} %",
    ),
    Claim(
        "Fig. 6b",
        "MLP, ⊥AdamW: test accuracy at epoch 200 (mean of 5 seeds)",
        "> 90 %",
        pct_at("fig6", "b_perp_adamw", 200),
        at_least(80),
        "≥ 80 % (−10 points)",
        "{:.1f} %",
    ),
    Claim(
        "Fig. 6b",
        "MLP, ⊥AdamW: test accuracy at epoch 300 (mean of 5 seeds)",
        "100 %",
        pct_at("fig6", "b_perp_adamw", 300),
        at_least(90),
        "≥ 90 % (−10 points)",
        "{:.1f} %",
    ),
    Claim(
        "Fig. 6b",
        "MLP, ⊥SGD (StableMax, float64): test accuracy at epoch 400 (mean of 5 seeds)",
        "100 %",
        pct_at("fig6", "b_perp_sgd", 400),
        at_least(90),
        "≥ 90 % (−10 points)",
        "{:.1f} %",
    ),
    Claim(
        "Fig. 6c",
        "weight-decay run: SCE falls while the L2 norm grows — log10(SCE at the norm peak / initial SCE)",
        "< 0",
        fig6c_loss_drop_while_growing,
        at_most(-1),
        "≤ −1 (a tenfold drop)",
        "{:+.1f}",
    ),
    Claim(
        "Fig. 6c",
        "weight-decay run: then the L2 penalty falls — final ‖θ‖² / peak ‖θ‖²",
        "< 1",
        fig6c_norm_after_peak,
        at_most(0.9),
        "≤ 0.9",
        "{:.2f}",
    ),
    Claim(
        "Fig. 6c",
        "weight-decay run: then both fall — Spearman correlation of SCE and ‖θ‖ after the norm peak",
        "> 0",
        fig6c_both_fall,
        at_least(0.5),
        "≥ 0.5",
        "{:+.2f}",
    ),
    # Fig. 7
    Claim(
        "Fig. 7",
        "final test loss, ⊥SGD / SGD",
        "< 1",
        ratio(fig7_loss("perp_sgd", "test_loss", "final"), fig7_loss("sgd", "test_loss", "final")),
        at_most(0.5),
        "≤ 0.5",
        "{:.3f}",
    ),
    Claim(
        "Fig. 7",
        "SGD: train loss falls — final / initial train loss",
        "< 1",
        ratio(fig7_loss("sgd", "train_loss", "final"), fig7_loss("sgd", "train_loss", "initial")),
        at_most(0.5),
        "≤ 0.5",
        "{:.3f}",
    ),
    Claim(
        "Fig. 7",
        "SGD: test loss rises — final / initial test loss",
        "> 1",
        ratio(fig7_loss("sgd", "test_loss", "final"), fig7_loss("sgd", "test_loss", "initial")),
        at_least(1.1),
        "≥ 1.1",
        "{:.2f}",
    ),
    Claim(
        "Fig. 7",
        "SGD + wd first follows SGD (test loss up) — peak / initial test loss",
        "> 1",
        ratio(fig7_loss("sgd_wd", "test_loss", "max"), fig7_loss("sgd_wd", "test_loss", "initial")),
        at_least(1.1),
        "≥ 1.1",
        "{:.2f}",
    ),
    Claim(
        "Fig. 7",
        "SGD + wd then turns (test loss down) — final / peak test loss",
        "< 1",
        ratio(fig7_loss("sgd_wd", "test_loss", "final"), fig7_loss("sgd_wd", "test_loss", "max")),
        at_most(0.9),
        "≤ 0.9",
        "{:.2f}",
    ),
    Claim(
        "Fig. 7",
        "⊥SGD heads straight to low test loss — peak / initial test loss",
        "≈ 1 (never rises)",
        ratio(fig7_loss("perp_sgd", "test_loss", "max"), fig7_loss("perp_sgd", "test_loss", "initial")),
        at_most(1.1),
        "≤ 1.1",
        "{:.2f}",
    ),
]
