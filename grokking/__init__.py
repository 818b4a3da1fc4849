"""Grokking at the Edge of Numerical Stability: a reproduction, and its tools for any PyTorch model.

    from grokking import OrthoGrad, StableMaxCrossEntropyLoss, stablemax_cross_entropy

- :func:`stablemax`, :func:`stablemax_cross_entropy`, :class:`StableMaxCrossEntropyLoss`: StableMax
  and its cross-entropy with ``torch.nn.functional.cross_entropy``'s conventions;
- :class:`OrthoGrad`: ⊥Grad around any torch optimizer, itself a ``torch.optim.Optimizer``;
- :class:`Grokfast`: Grokfast-EMA's gradient filter around any torch optimizer (⊥Grad included);
- :func:`softmax_collapse_fraction`, :func:`nlm_alignment`: the paper's two diagnostics.

They are the implementations that this repository's training uses (docs/api.md).
"""

from grokking.metrics import nlm_alignment, softmax_collapse_fraction
from grokking.optim import Grokfast, OrthoGrad
from grokking.stablemax import StableMaxCrossEntropyLoss, stablemax, stablemax_cross_entropy

__all__ = [
    "Grokfast",
    "OrthoGrad",
    "StableMaxCrossEntropyLoss",
    "nlm_alignment",
    "softmax_collapse_fraction",
    "stablemax",
    "stablemax_cross_entropy",
]
