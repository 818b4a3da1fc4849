"""The public diagnostics take the loss's layout (classes in dimension 1) and refuse bad input with
one line."""

from __future__ import annotations

import pytest
import torch

from grokking import nlm_alignment, softmax_collapse_fraction


def crafted(n_collapsed: int, n_open: int) -> torch.Tensor:
    """(N, 2) rows: the first ``n_collapsed`` collapse in float32 (gap 40), the others do not (gap 1)."""
    gaps = torch.tensor([40.0] * n_collapsed + [1.0] * n_open, dtype=torch.float64)
    return torch.stack([torch.zeros_like(gaps), gaps], 1)


def test_classes_in_dimension_one_as_the_loss_takes_them():
    rows = crafted(3, 1)  # (4, 2): 3 of 4 rows collapse
    assert softmax_collapse_fraction(rows, torch.float32).item() == 0.75
    # (N, C, d) = (2, 2, 2): the 4 rows are the (sample, position) pairs, classes in dimension 1
    nc_d = rows.reshape(2, 2, 2, 1).squeeze(-1).permute(0, 2, 1)  # row (i, j) = rows[2 i + j]
    assert nc_d.shape == (2, 2, 2)
    assert softmax_collapse_fraction(nc_d, torch.float32).item() == 0.75
    assert softmax_collapse_fraction(nc_d.movedim(1, -1), torch.float32, dim=-1).item() == 0.75
    assert softmax_collapse_fraction(crafted(1, 0)[0], torch.float32).item() == 1.0  # unbatched (C,)
    # a (N, C, d) batch whose every row collapses: the old classes-last reading gave 0
    collapsed = torch.zeros(3, 5, 4, dtype=torch.float64)
    collapsed[:, 2] = 100.0
    assert softmax_collapse_fraction(collapsed, "float32").item() == 1.0


@pytest.mark.parametrize("name", ["float16", "bfloat16", "float32", "float64"])
def test_dtype_names_equal_the_dtypes(name):
    logits = 8 * torch.randn(64, 3, dtype=torch.float64)
    assert softmax_collapse_fraction(logits, name) == softmax_collapse_fraction(logits, getattr(torch, name))


def test_bad_input_is_refused_with_one_line():
    logits = torch.randn(4, 3)
    with pytest.raises(
        ValueError, match=r"dtype='fp16' is not valid; choose one of: float16, float32, float64, bfloat16"
    ):
        softmax_collapse_fraction(logits, "fp16")
    with pytest.raises(TypeError, match="torch.int64 is not a floating-point dtype"):
        softmax_collapse_fraction(logits, torch.int64)
    with pytest.raises(ValueError, match=r"logits of shape \(0, 3\) are empty"):
        softmax_collapse_fraction(torch.empty(0, 3), torch.float32)
    with pytest.raises(TypeError, match="floating-point tensor"):
        softmax_collapse_fraction(torch.ones(4, 3, dtype=torch.long), torch.float32)
    with pytest.raises(ValueError, match="dim=2"):
        softmax_collapse_fraction(logits, torch.float32, dim=2)
    for bad in (torch.zeros(3), 3):
        with pytest.raises(TypeError, match="iterable|not a tensor"):
            nlm_alignment(bad if isinstance(bad, torch.Tensor) else [bad])


def test_nlm_alignment_leaves_out_empty_tensors():
    p = torch.nn.Parameter(torch.ones(3))
    empty = torch.nn.Parameter(torch.ones(0))
    p.grad, empty.grad = -torch.ones(3), torch.ones(0)
    assert nlm_alignment([("p", p), ("empty", empty)]) == {"p": pytest.approx(1.0)}
