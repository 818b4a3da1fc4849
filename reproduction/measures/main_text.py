"""Measures made for one claim of the main text: Fig. 2 (SC order, train epoch, test accuracy after
SC), Fig. 5 (NLM alignment around overfitting) and Fig. 6c (SCE against the weight norm)."""

from __future__ import annotations

import math

import pandas as pd

from reproduction.measures.registry import AtLeast, Measure, completed, measure, stopped
from reproduction.results import Root, onsets

PRECISIONS = ("float16", "float32", "float64")  # Fig. 2's loss dtypes; runs are frac<f>_<precision>


@measure("sc_order_gap")
def sc_order_gap(frac: float) -> Measure:
    """min(epoch_SC(fp32) - epoch_SC(fp16), epoch_SC(fp64) - epoch_SC(fp32)) of Fig. 2 at train
    fraction ``frac``, SC being > 50 %; > 0 iff fp16 < fp32 < fp64."""

    def measure(r: Root) -> float | None:
        e16, e32, e64 = (onsets("fig2", f"frac{frac}_{p}", "sc_fraction", 0.5, r)[0] for p in PRECISIONS)
        return None if None in (e16, e32, e64) else min(e32 - e16, e64 - e32)

    return measure


@measure("fig2_train_epoch")
def fig2_train_epoch(fractions: list[float]) -> Measure:
    """Latest epoch, over the Fig. 2 runs of ``fractions`` (every precision), at which train
    accuracy reaches 100 %."""

    def measure(r: Root) -> float | None:
        epochs = [onsets("fig2", f"frac{f}_{p}", "train_acc", 1.0, r)[0] for f in fractions for p in PRECISIONS]
        return None if None in epochs else max(epochs)

    return measure


@measure("fig2_gain_after_sc")
def fig2_gain_after_sc(fractions: list[float]) -> Measure:
    """Largest rise of test accuracy (points) from the first SC > 50 % epoch to the end, over the
    Fig. 2 runs of ``fractions`` (every precision; completed only). Where some of them stopped at
    their SC onset (the official code's ``--until``), the largest over the rest is a lower bound."""

    def measure(r: Root) -> float:
        gains, early = [], 0
        for frac in fractions:
            for prec in PRECISIONS:
                if stopped("fig2", f"frac{frac}_{prec}", r):
                    early += 1
                    continue
                df = completed("fig2", f"frac{frac}_{prec}", r)
                hit = df[df.sc_fraction >= 0.5]
                if not hit.empty:
                    gains.append(100 * (df.test_acc.iloc[-1] - hit.test_acc.iloc[0]))
        if early and not gains:
            raise FileNotFoundError(f"no Fig. 2 run of {fractions} both finished and collapsed")
        return AtLeast(max(gains)) if early else max(gains)

    return measure


# Fig. 5: NLM alignment (cos(θ_l, -∇L)) around the first epoch with 100 % train accuracy
FIG5_OUTPUT = {"mlp": "output.weight", "mlp_bias": "output.weight", "transformer": "unembed"}
FIG5_OTHERS = {
    "mlp": ["input.weight", "hidden.1.weight"],
    "mlp_bias": ["input.weight", "hidden.1.weight"],
    "transformer": ["W_Q", "W_K", "W_V", "W_O", "W_in", "W_out"],
}
WINDOW = 500  # epochs after 100 % train accuracy


def fig5_run(run: str) -> str:
    """``run``, once it is a Fig. 5 run (a typo in the claims table fails when it loads)."""
    if run not in FIG5_OUTPUT:
        raise ValueError(f"Fig. 5 has the runs {', '.join(FIG5_OUTPUT)}, not {run!r}")
    return run


def fig5_windows(run: str, r: Root) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The rows before the first epoch with 100 % train accuracy, and the ``WINDOW`` epochs from it."""
    df = completed("fig5", run, r)
    t100 = df[df.train_acc >= 1.0].epoch.iloc[0]
    return df[df.epoch < t100], df[(df.epoch >= t100) & (df.epoch < t100 + WINDOW)]


@measure("fig5_rise")
def fig5_rise(run: str) -> Measure:
    """Output-layer alignment: mean over the 500 epochs after 100 % train accuracy minus the mean before."""
    fig5_run(run)

    def measure(r: Root) -> float:
        before, after = fig5_windows(run, r)
        column = f"nlm_cos/{FIG5_OUTPUT[run]}"
        return after[column].mean() - before[column].mean()

    return measure


@measure("fig5_output_max")
def fig5_output_max(run: str) -> Measure:
    """Highest output-layer alignment over training."""
    fig5_run(run)
    return lambda r: completed("fig5", run, r)[f"nlm_cos/{FIG5_OUTPUT[run]}"].max()


@measure("fig5_output_lead")
def fig5_output_lead(run: str) -> Measure:
    """After overfitting, output-layer (MLP) or max(embed, unembed) (transformer) alignment minus the
    largest alignment of the other weight tensors (means over the 500-epoch window)."""
    fig5_run(run)

    def measure(r: Root) -> float:
        _, after = fig5_windows(run, r)
        top = ["embed", "unembed"] if run == "transformer" else [FIG5_OUTPUT[run]]
        best = max(after[f"nlm_cos/{t}"].mean() for t in top)
        return best - max(after[f"nlm_cos/{t}"].mean() for t in FIG5_OTHERS[run])

    return measure


# Fig. 6c: SCE against the squared weight norm of the weight-decay run
def fig6c_phases(r: Root) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The rows up to the weight-norm peak, and from it."""
    df = completed("fig6", "a_adamw_wd", r)
    peak = df.weight_norm.idxmax()
    return df.loc[:peak], df.loc[peak:]


@measure("fig6c_loss_drop_while_growing")
def fig6c_loss_drop_while_growing() -> Measure:
    """log10(SCE at the weight-norm peak / initial SCE); < 0 when SCE falls while the norm grows."""

    def measure(r: Root) -> float:
        growing, _ = fig6c_phases(r)
        return math.log10(growing.train_loss.iloc[-1] / growing.train_loss.iloc[0])

    return measure


@measure("fig6c_norm_after_peak")
def fig6c_norm_after_peak() -> Measure:
    """Final ‖θ‖² / peak ‖θ‖²; < 1 when the L2 penalty falls after its peak."""

    def measure(r: Root) -> float:
        growing, after = fig6c_phases(r)
        return (after.weight_norm.iloc[-1] / growing.weight_norm.iloc[-1]) ** 2

    return measure


@measure("fig6c_both_fall")
def fig6c_both_fall() -> Measure:
    """Spearman correlation of SCE and ‖θ‖ after the norm peak (positive when both fall together)."""

    def measure(r: Root) -> float:
        _, after = fig6c_phases(r)
        return after.train_loss.rank().corr(after.weight_norm.rank())

    return measure
