"""Measures over several runs or one curve's shape, made for claims of the main text: Fig. 2 (SC
order, train epoch, test accuracy after SC), Fig. 5 (NLM alignment around overfitting) and Fig. 6c
(SCE against the weight norm). Every run name is an argument (the claim rows of the manifests)."""

from __future__ import annotations

import math

import pandas as pd

from reproduction.measures.registry import AtLeast, Measure, completed, measure, stopped
from reproduction.results import Root, onsets


@measure("sc_order_gap")
def sc_order_gap(figure: str, runs: list[str]) -> Measure:
    """min(epoch_SC(runs[1]) - epoch_SC(runs[0]), epoch_SC(runs[2]) - epoch_SC(runs[1])) with SC > 50 %,
    for three runs in rising precision (Fig. 2: float16, float32, float64 at one train fraction);
    > 0 iff SC arrives in that order."""
    _three(runs)

    def measure(r: Root) -> float | None:
        e16, e32, e64 = (onsets(figure, run, "sc_fraction", 0.5, r)[0] for run in runs)
        return None if None in (e16, e32, e64) else min(e32 - e16, e64 - e32)

    return measure


def _three(runs: list[str]) -> None:
    if not (isinstance(runs, list) and len(runs) == 3):
        raise ValueError(f"runs must be three run names in rising precision, not {runs!r}")


@measure("latest_onset")
def latest_onset(figure: str, runs: list[str], column: str, threshold: float) -> Measure:
    """Latest epoch, over ``runs``, at which ``column`` reaches ``threshold`` (each run's first seed;
    e.g. Fig. 2's train accuracy reaching 100 %)."""

    def measure(r: Root) -> float | None:
        epochs = [onsets(figure, run, column, threshold, r)[0] for run in runs]
        return None if None in epochs else max(epochs)

    return measure


@measure("gain_after_sc")
def gain_after_sc(figure: str, runs: list[str]) -> Measure:
    """Largest rise of test accuracy (points) from the first SC > 50 % epoch to the end, over ``runs``
    (completed only). Where some of them stopped at their SC onset (the official code's ``--until``),
    the largest over the rest is a lower bound."""

    def measure(r: Root) -> float:
        gains, early = [], 0
        for run in runs:
            if stopped(figure, run, r):
                early += 1
                continue
            df = completed(figure, run, r)
            hit = df[df.sc_fraction >= 0.5]
            if not hit.empty:
                gains.append(100 * (df.test_acc.iloc[-1] - hit.test_acc.iloc[0]))
        if early and not gains:
            raise FileNotFoundError(f"no run of {figure}/{{{','.join(runs)}}} both finished and collapsed")
        return AtLeast(max(gains)) if early else max(gains)

    return measure


# Fig. 5: NLM alignment (cos(θ_l, -∇L), the nlm_cos/<tensor> columns) around the first epoch with 100 % train accuracy
WINDOW = 500  # epochs after 100 % train accuracy


def alignment_windows(figure: str, run: str, r: Root) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The rows before the first epoch with 100 % train accuracy, and the ``WINDOW`` epochs from it."""
    df = completed(figure, run, r)
    t100 = df[df.train_acc >= 1.0].epoch.iloc[0]
    return df[df.epoch < t100], df[(df.epoch >= t100) & (df.epoch < t100 + WINDOW)]


@measure("alignment_rise")
def alignment_rise(figure: str, run: str, tensor: str) -> Measure:
    """``tensor``'s alignment: mean over the 500 epochs after 100 % train accuracy minus the mean before."""

    def measure(r: Root) -> float:
        before, after = alignment_windows(figure, run, r)
        column = f"nlm_cos/{tensor}"
        return after[column].mean() - before[column].mean()

    return measure


@measure("alignment_max")
def alignment_max(figure: str, run: str, tensor: str) -> Measure:
    """Highest alignment of ``tensor`` over training."""
    return lambda r: completed(figure, run, r)[f"nlm_cos/{tensor}"].max()


@measure("alignment_lead")
def alignment_lead(figure: str, run: str, top: list[str], others: list[str]) -> Measure:
    """After overfitting, the largest alignment of the ``top`` tensors minus the largest of the
    ``others`` (means over the 500-epoch window)."""

    def measure(r: Root) -> float:
        _, after = alignment_windows(figure, run, r)
        best = max(after[f"nlm_cos/{t}"].mean() for t in top)
        return best - max(after[f"nlm_cos/{t}"].mean() for t in others)

    return measure


# Fig. 6c: SCE against the squared weight norm of the weight-decay run
def norm_phases(figure: str, run: str, r: Root) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The rows up to the weight-norm peak, and from it."""
    df = completed(figure, run, r)
    peak = df.weight_norm.idxmax()
    return df.loc[:peak], df.loc[peak:]


@measure("loss_drop_while_norm_grows")
def loss_drop_while_norm_grows(figure: str, run: str) -> Measure:
    """log10(SCE at the weight-norm peak / initial SCE); < 0 when SCE falls while the norm grows."""

    def measure(r: Root) -> float:
        growing, _ = norm_phases(figure, run, r)
        return math.log10(growing.train_loss.iloc[-1] / growing.train_loss.iloc[0])

    return measure


@measure("norm_after_peak")
def norm_after_peak(figure: str, run: str) -> Measure:
    """Final ‖θ‖² / peak ‖θ‖²; < 1 when the L2 penalty falls after its peak."""

    def measure(r: Root) -> float:
        growing, after = norm_phases(figure, run, r)
        return (after.weight_norm.iloc[-1] / growing.weight_norm.iloc[-1]) ** 2

    return measure


@measure("loss_and_norm_fall")
def loss_and_norm_fall(figure: str, run: str) -> Measure:
    """Spearman correlation of SCE and ‖θ‖ after the norm peak (positive when both fall together)."""

    def measure(r: Root) -> float:
        _, after = norm_phases(figure, run, r)
        return after.train_loss.rank().corr(after.weight_norm.rank())

    return measure
