"""Checkable claims of the main text (Figs. 1-7), as PAPER.md states them."""

from __future__ import annotations

from grokking.claims import Claim, at_least, at_most
from grokking.results import final_mean, first_epoch

CLAIMS = [
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
]
