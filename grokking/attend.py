"""The attention of the "=" position over [a, b, "="] as one autograd node.

In the one-layer transformer (:class:`grokking.models.Transformer`) the query is the same for every
sample, so each sample's attention reduces to three scores per head (two picked from per-token
tables, one constant) and three values per head. :class:`Attend` computes

    p = softmax over positions of (s_a, s_b, s_=),     z = p_a v_a + p_b v_b + p_= v_=

with a hand-written backward pass: a few elementwise passes over the (R, N, heads, e) values instead
of the broadcast products, temporaries and sums that autograd records. Tests compare it with the
plain autograd computation (:func:`attend_reference`).
"""

from __future__ import annotations

import torch


def attend_reference(v_ab: torch.Tensor, s_ab: torch.Tensor, s_eq: torch.Tensor, v_eq: torch.Tensor) -> torch.Tensor:
    """The definition. ``v_ab`` (R, N, 2, h, e) and ``s_ab`` (R, N, 2, h): values and scores of the
    tokens a and b; ``s_eq`` (R, h) and ``v_eq`` (R, h, e): the "=" position's. Returns z (R, N, h, e)."""
    R, N, _, h, e = v_ab.shape
    s = torch.cat([s_ab, s_eq[:, None, None].expand(R, N, 1, h)], 2)  # (R, N, 3, h)
    v = torch.cat([v_ab, v_eq[:, None, None].expand(R, N, 1, h, e)], 2)
    return (s.softmax(2).unsqueeze(-1) * v).sum(2)


class Attend(torch.autograd.Function):
    @staticmethod
    def forward(ctx, v_ab: torch.Tensor, s_ab: torch.Tensor, s_eq: torch.Tensor, v_eq: torch.Tensor) -> torch.Tensor:
        R, N, _, h, e = v_ab.shape
        p = torch.cat([s_ab, s_eq[:, None, None].expand(R, N, 1, h)], 2).softmax(2)  # (R, N, 3, h)
        z = v_ab[:, :, 0] * p[:, :, 0, :, None]
        z.addcmul_(v_ab[:, :, 1], p[:, :, 1, :, None]).addcmul_(v_eq[:, None], p[:, :, 2, :, None])
        ctx.save_for_backward(v_ab, v_eq, p)
        return z

    @staticmethod
    def backward(ctx, g: torch.Tensor):
        v_ab, v_eq, p = ctx.saved_tensors
        grad_v_ab = g.unsqueeze(2) * p[:, :, :2, :, None]
        dp = torch.cat([(g.unsqueeze(2) * v_ab).sum(-1), (g * v_eq[:, None]).sum(-1).unsqueeze(2)], 2)  # <g, v>
        ds = p * (dp - (p * dp).sum(2, keepdim=True))  # softmax backward over the 3 positions
        grad_v_eq = torch.einsum("rnh,rnhe->rhe", p[:, :, 2], g)
        return grad_v_ab, ds[:, :, :2], ds[:, :, 2].sum(1), grad_v_eq


def attend(v_ab: torch.Tensor, s_ab: torch.Tensor, s_eq: torch.Tensor, v_eq: torch.Tensor) -> torch.Tensor:
    return Attend.apply(v_ab, s_ab, s_eq, v_eq)
