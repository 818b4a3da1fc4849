"""Checkable claims of the appendix (Figs. 8-16) and the Table 1 analog, as PAPER.md states them.

Accuracies are read off the paper's figures ("≈"), so value claims get ±10 points; qualitative claims
("rises", "stays flat", "does not generalize") get a stated threshold on a number from the metrics.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from grokking.claims import Claim, at_least, at_most, within
from grokking.results import final_mean, first_epoch, metrics, per_seed, value_at

PCT = "{:.1f} %"
POINTS = "{:+.1f} points"
EPOCHS = "{:.0f}"


def test_pct(figure: str, run: str):
    return lambda r: 100 * final_mean(figure, run, "test_acc", r)


def change(figure: str, run: str, column: str, start: int, scale: float = 100.0):
    """Last logged value minus the value at ``start``, times ``scale``."""
    return lambda r: scale * (final_mean(figure, run, column, r) - value_at(figure, run, column, start, r))


# Fig. 9: (train fraction, loss dtype) -> the paper's final test accuracy (%)
FIG9 = {
    (0.7, "float64"): 96,
    (0.7, "float32"): 87,
    (0.7, "float16"): 57,
    (0.6, "float64"): 57,
    (0.6, "float32"): 32,
    (0.6, "float16"): 13,
}


def fig10_ratio(r: Path) -> float:
    """Absorbed-update share at the end over its value when train accuracy first reaches 100 %."""
    start = first_epoch("fig10", "sgd", "train_acc", 1.0, r)
    return final_mean("fig10", "sgd", "absorbed_fraction", r) / value_at("fig10", "sgd", "absorbed_fraction", start, r)


def fig10_zero_change(r: Path) -> float:
    start = first_epoch("fig10", "sgd", "train_acc", 1.0, r)
    return change("fig10", "sgd", "zero_grad_fraction", start)(r)


def fig12_ratio(stem: str, grokked: str, memorizing: str):
    """Top-10 share of the grokked run's first-layer spectrum over the memorizing run's (mean of a, b)."""

    def measure(r: Path) -> float:
        df = pd.read_csv(r / "fig12" / f"{stem}sparsity.csv").groupby("run").top10_share.mean()
        return float(df[grokked] / df[memorizing])

    return measure


DECAYS = ("wd2", "wd4", "wd6", "wd8")
FIG15_SWEEPS = {"lr 0.002": "", "lr 0.005": "lr0.005_"}  # the paper's lr is unknown: two sweeps


def delays(r: Path, prefix: str) -> dict[str, float | None]:
    """Epoch at which test accuracy first reaches 95 %, per weight decay of one Fig. 15 sweep."""
    return {run: first_epoch("fig15", prefix + run, "test_acc", 0.95, r) for run in DECAYS}


def fig15_shortening(prefix: str):
    def measure(r: Path) -> float | None:
        d = delays(r, prefix)
        reached = [v for v in d.values() if v is not None]
        return None if d["wd2"] is None else d["wd2"] - min(reached)

    return measure


def fig15_best_decay(prefix: str):
    def measure(r: Path) -> float | None:
        d = {run: v for run, v in delays(r, prefix).items() if v is not None}
        return float(min(d, key=d.get).removeprefix("wd")) if d else None

    return measure


def fig15_perp_at_best(prefix: str):
    def measure(r: Path) -> float | None:
        reached = [v for v in delays(r, prefix).values() if v is not None]
        return 100 * value_at("fig15", prefix + "perp_adamw", "test_acc", min(reached), r) if reached else None

    return measure


def fig15_perp_gap(prefix: str):
    def measure(r: Path) -> float | None:
        train = first_epoch("fig15", prefix + "perp_adamw", "train_acc", 0.95, r)
        test = first_epoch("fig15", prefix + "perp_adamw", "test_acc", 0.95, r)
        return None if train is None or test is None else test - train

    return measure


def fig16_sc_onset_delay(r: Path) -> float | None:
    base = first_epoch("fig16", "baseline", "sc_fraction", 0.5, r)  # SC onset as in Fig. 2: > 50 %
    hot = first_epoch("fig16", "temperature16", "sc_fraction", 0.5, r)
    return None if base is None or hot is None else hot - base


def table1_diff(run: str):
    """Mean final test accuracy of ``run`` minus softmax + AdamW, over the 5 seeds, in points."""

    def measure(r: Path) -> float:
        ours = np.mean(per_seed("table1", run, "test_acc", r))
        return 100 * float(ours - np.mean(per_seed("table1", "softmax_adamw", "test_acc", r)))

    return measure


CLAIMS = [
    # Fig. 8
    Claim(
        "Fig. 8",
        "baseline (no intervention) keeps generalizing: final test accuracy",
        "≈ 85 %",
        test_pct("fig8", "baseline"),
        within(85, 10),
        "±10 points",
        PCT,
    ),
    Claim(
        "Fig. 8",
        "SC intervention from epoch 6000: final test accuracy",
        "≈ 47 %",
        test_pct("fig8", "intervention"),
        within(47, 10),
        "±10 points",
        PCT,
    ),
    Claim(
        "Fig. 8",
        "intervened run freezes: test accuracy at the end minus at epoch 6000",
        "≈ 0 (frozen)",
        change("fig8", "intervention", "test_acc", 6000),
        within(0, 5),
        "±5 points",
        POINTS,
    ),
    # Fig. 9
    *[
        Claim(
            "Fig. 9",
            f"normalized SGD, {frac * 100:.0f} % train, loss in {prec}: final test accuracy",
            f"≈ {paper} %",
            test_pct("fig9", f"frac{frac}_{prec}"),
            within(paper, 10),
            "±10 points",
            PCT,
        )
        for (frac, prec), paper in FIG9.items()
    ],
    *[
        Claim(
            "Fig. 9",
            f"normalized SGD, 40 % train, loss in {prec}: final test accuracy",
            "≈ 0 %",
            test_pct("fig9", f"frac0.4_{prec}"),
            at_most(10),
            "≤ 10 %",
            PCT,
        )
        for prec in ("float64", "float32", "float16")
    ],
    Claim(
        "Fig. 9",
        "precision ordering at 60 %: final test accuracy float64 minus float16",
        "≈ +44 points (57 vs 13)",
        lambda r: test_pct("fig9", "frac0.6_float64")(r) - test_pct("fig9", "frac0.6_float16")(r),
        at_least(20),
        "≥ +20 points",
        POINTS,
    ),
    # Fig. 10
    Claim(
        "Fig. 10",
        "absorbed-update share rises as the gradient norm falls: end over epoch of 100 % train acc.",
        "rises sharply",
        fig10_ratio,
        at_least(2),
        "≥ ×2",
        "×{:.1f}",
    ),
    Claim(
        "Fig. 10",
        "exactly-zero-gradient share stays flat: end minus epoch of 100 % train acc.",
        "flat",
        fig10_zero_change,
        within(0, 2),
        "±2 points",
        POINTS,
    ),
    # Fig. 11
    Claim(
        "Fig. 11",
        "logit-norm penalty groks without weight decay: final test accuracy",
        "groks",
        test_pct("fig11", "logit_penalty"),
        at_least(90),
        "≥ 90 %",
        PCT,
    ),
    Claim(
        "Fig. 11",
        "Taylor softmax groks without weight decay: final test accuracy",
        "groks",
        test_pct("fig11", "taylor"),
        at_least(90),
        "≥ 90 %",
        PCT,
    ),
    Claim(
        "Fig. 11",
        "plain softmax baseline (same setting) does not: final test accuracy",
        "no grokking",
        test_pct("fig11", "baseline"),
        at_most(10),
        "≤ 10 %",
        PCT,
    ),
    # Fig. 12
    Claim(
        "Fig. 12",
        "grokked (StableMax, 100k) spectrum sparser than memorizing (softmax, 80k): top-10 share ratio",
        "sparser",
        fig12_ratio("long_runs_", "stablemax", "softmax"),
        at_least(1.5),
        "≥ ×1.5",
        "×{:.2f}",
    ),
    Claim(
        "Fig. 12",
        "grokked (⊥AdamW) spectrum sparser than memorizing (AdamW): top-10 share ratio",
        "sparser",
        fig12_ratio("", "grokked_perp_adamw", "memorizing_adamw"),
        at_least(1.5),
        "≥ ×1.5",
        "×{:.2f}",
    ),
    # Fig. 13
    Claim(
        "Fig. 13",
        "MSE, 1 hidden layer generalizes: final test accuracy",
        "generalizes",
        test_pct("fig13", "depth1"),
        at_least(90),
        "≥ 90 %",
        PCT,
    ),
    *[
        Claim(
            "Fig. 13",
            f"MSE, {d} hidden layers do not generalize: final test accuracy",
            "does not generalize",
            test_pct("fig13", f"depth{d}"),
            at_most(10),
            "≤ 10 %",
            PCT,
        )
        for d in (2, 3)
    ],
    # Fig. 14
    Claim(
        "Fig. 14",
        "MNIST ×100 init, no weight decay: SC fraction from the start (minimum over the run)",
        "≈ 100 %",
        lambda r: 100 * float(metrics("fig14", "no_wd", r).sc_fraction.min()),
        at_least(90),
        "≥ 90 %",
        PCT,
    ),
    Claim(
        "Fig. 14",
        "no weight decay: test accuracy stays low (final)",
        "low",
        test_pct("fig14", "no_wd"),
        at_most(50),
        "≤ 50 %",
        PCT,
    ),
    Claim(
        "Fig. 14",
        "with weight decay SC falls: final SC fraction",
        "falls",
        lambda r: 100 * final_mean("fig14", "wd", "sc_fraction", r),
        at_most(10),
        "≤ 10 %",
        PCT,
    ),
    Claim(
        "Fig. 14",
        "with weight decay test accuracy jumps: final test accuracy, wd minus no wd",
        "jumps",
        lambda r: test_pct("fig14", "wd")(r) - test_pct("fig14", "no_wd")(r),
        at_least(10),
        "≥ +10 points",
        POINTS,
    ),
    # Fig. 15, once per sweep
    *[
        claim
        for lr, prefix in FIG15_SWEEPS.items()
        for claim in (
            Claim(
                "Fig. 15",
                f"{lr}: more decay shortens the delay: epoch of 95 % test at wd 2 minus the shortest in the sweep",
                "> 0",
                fig15_shortening(prefix),
                at_least(1),
                "> 0 epochs",
                EPOCHS,
            ),
            Claim(
                "Fig. 15",
                f"{lr}: … up to a point: decay with the shortest delay (sweep 2, 4, 6, 8)",
                "< 8",
                fig15_best_decay(prefix),
                at_most(6),
                "not the largest (< 8)",
                "{:.0f}",
            ),
            Claim(
                "Fig. 15",
                f"{lr}: the largest decay (8) stops full generalization: final test accuracy",
                "< 100 % (incomplete)",
                test_pct("fig15", prefix + "wd8"),
                at_most(95),
                "≤ 95 %",
                PCT,
            ),
            Claim(
                "Fig. 15",
                f"{lr}: ⊥AdamW generalizes faster than the best decay: its test acc. when the best decay passes 95 %",
                "≥ 95 % (faster)",
                fig15_perp_at_best(prefix),
                at_least(95),
                "≥ 95 %",
                PCT,
            ),
            Claim(
                "Fig. 15",
                f"{lr}: ⊥AdamW has no overfitting phase: epochs from 95 % train to 95 % test accuracy",
                "≈ 0",
                fig15_perp_gap(prefix),
                at_most(100),
                "≤ 100 epochs",
                EPOCHS,
            ),
        )
    ],
    # Fig. 16
    Claim(
        "Fig. 16",
        "temperature delays SC: first epoch with SC ≥ 50 %, T = 16 minus T = 1",
        "> 0 (delayed)",
        fig16_sc_onset_delay,
        at_least(1),
        "> 0 epochs",
        EPOCHS,
    ),
    Claim(
        "Fig. 16",
        "… but does not prevent it: final SC fraction at T = 16",
        "SC still arrives",
        lambda r: 100 * final_mean("fig16", "temperature16", "sc_fraction", r),
        at_least(50),
        "≥ 50 %",
        PCT,
    ),
    Claim(
        "Fig. 16",
        "label smoothing 0.2 prevents SC: largest SC fraction over the run",
        "≈ 0 %",
        lambda r: 100 * float(metrics("fig16", "label_smoothing", r).sc_fraction.max()),
        at_most(1),
        "≤ 1 %",
        PCT,
    ),
    Claim(
        "Fig. 16",
        "label smoothing: generalization stays incomplete (final test accuracy)",
        "incomplete",
        test_pct("fig16", "label_smoothing"),
        at_most(90),
        "≤ 90 %",
        PCT,
    ),
    # Table 1 (analog)
    Claim(
        "Table 1 (analog)",
        "StableMax keeps accuracy of softmax/AdamW: mean final test acc. difference (5 seeds, MNIST)",
        "−0.2 / +0.6 points (CIFAR-10 / 100)",
        table1_diff("stablemax_adamw"),
        at_least(-1),
        "≥ −1 point (no loss beyond 1 point)",
        POINTS,
    ),
    Claim(
        "Table 1 (analog)",
        "⊥AdamW keeps accuracy of softmax/AdamW: mean final test acc. difference (5 seeds, MNIST)",
        "0.0 / +2.7 points (CIFAR-10 / 100)",
        table1_diff("softmax_perp_adamw"),
        at_least(-1),
        "≥ −1 point (no loss beyond 1 point)",
        POINTS,
    ),
]
