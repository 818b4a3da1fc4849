"""loss.sum: the softmax cross-entropy's Σ exp added exactly (ours) or as torch's log_softmax adds it."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from grokking.losses import LOSSES


def test_torch_sum_is_torchs_log_softmax_bit_for_bit():
    gen = torch.Generator().manual_seed(0)
    z = torch.randn(64, 113, generator=gen) * 30
    y = torch.randint(0, 113, (64,), generator=gen)
    ours = LOSSES["softmax"].fn(z, y, torch.float32, sum="torch")
    assert torch.equal(ours, F.cross_entropy(z, y, reduction="none"))


def test_the_two_sums_part_near_collapse():
    """Logits at the edge of collapse in float32: the exact sum keeps a loss where the lane sum loses
    the small terms, or the reverse; on some rows the two give different losses."""
    gen = torch.Generator().manual_seed(1)
    z = torch.zeros(4096, 113)
    z[:, 0] = 16 + torch.rand(4096, generator=gen) * 2  # exp(-16..-18) per term: near float32's rounding of 1
    z[:, 1:] = torch.rand(4096, 112, generator=gen)
    y = torch.zeros(4096, dtype=torch.long)
    exact = LOSSES["softmax"].fn(z, y, torch.float32)
    lane = LOSSES["softmax"].fn(z, y, torch.float32, sum="torch")
    assert (exact != lane).any()
    reference = LOSSES["softmax"].fn(z.double(), y, torch.float64)
    assert (exact.double() - reference).abs().max() <= (lane.double() - reference).abs().max()


def test_torchs_sum_is_outside_the_cpp_step_and_read_only_by_softmax():
    from grokking import native
    from grokking.cli import compose
    from grokking.train import to_config

    cfg, _ = to_config(compose(["loss=softmax", "loss.sum=torch", "device=cpu"]))
    assert native.unsupported(cfg) == "loss.sum=torch (the kernel implements only loss.sum=exact)"
    assert "sum" not in {p.name for p in LOSSES.params["stablemax"]}
