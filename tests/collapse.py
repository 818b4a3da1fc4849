"""Reference for the loss's collapse rule, shared by tests/test_losses.py and
tests/test_official_equivalence.py."""

from __future__ import annotations

import torch


def exactly_collapsed(z: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Rows whose exact Σ_k exp(z_k - max z), of the terms as ``dtype`` rounds them, rounds to 1 in
    ``dtype`` (the sum taken in float64: exact to far below a float32 rounding step)."""
    zz = z.to(dtype)
    return torch.exp(zz - zz.amax(-1, keepdim=True)).double().sum(-1).to(dtype) == 1
