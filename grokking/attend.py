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


def attend_reference(picked: torch.Tensor, s_eq: torch.Tensor, v_eq: torch.Tensor) -> torch.Tensor:
    """The definition. ``picked`` (R, N, 2, h·e + h): rows [values | scores] of a and b; ``s_eq`` (R, h)
    and ``v_eq`` (R, h, e): the "=" position's score and value. Returns z (R, N, h, e)."""
    R, N, _, width = picked.shape
    h = s_eq.shape[1]
    e = (width - h) // h
    s = torch.cat([picked[..., h * e :], s_eq[:, None, None].expand(R, N, 1, h)], 2)  # (R, N, 3, h)
    v = torch.cat([picked[..., : h * e].view(R, N, 2, h, e), v_eq[:, None, None].expand(R, N, 1, h, e)], 2)
    return (s.softmax(2).unsqueeze(-1) * v).sum(2)


class Attend(torch.autograd.Function):
    @staticmethod
    def forward(ctx, picked: torch.Tensor, s_eq: torch.Tensor, v_eq: torch.Tensor) -> torch.Tensor:
        R, N, _, width = picked.shape
        h = s_eq.shape[1]
        e = (width - h) // h
        s = torch.cat([picked[..., h * e :], s_eq[:, None, None].expand(R, N, 1, h)], 2)
        p = s.softmax(2)  # (R, N, 3, h)
        v_a = picked[:, :, 0, : h * e].view(R, N, h, e)
        v_b = picked[:, :, 1, : h * e].view(R, N, h, e)
        z = v_a * p[:, :, 0, :, None]
        z.addcmul_(v_b, p[:, :, 1, :, None]).addcmul_(v_eq[:, None], p[:, :, 2, :, None])
        ctx.save_for_backward(picked, v_eq, p)
        return z

    @staticmethod
    def backward(ctx, g: torch.Tensor):
        picked, v_eq, p = ctx.saved_tensors
        R, N, h, e = g.shape
        grad = torch.empty_like(picked)
        dp = torch.empty_like(p)  # ∂/∂p = <g, v> per position and head
        for pos in range(2):
            v = picked[:, :, pos, : h * e].view(R, N, h, e)
            torch.linalg.vecdot(g, v, out=dp[:, :, pos])
            torch.mul(g, p[:, :, pos, :, None], out=grad[:, :, pos, : h * e].view(R, N, h, e))
        torch.linalg.vecdot(g, v_eq[:, None], out=dp[:, :, 2])
        ds = p * (dp - (p * dp).sum(2, keepdim=True))  # softmax backward over the 3 positions
        grad[..., h * e :] = ds[:, :, :2]
        grad_s_eq = ds[:, :, 2].sum(1)
        grad_v_eq = torch.einsum("rnh,rnhe->rhe", p[:, :, 2], g)
        return grad, grad_s_eq, grad_v_eq


def attend(picked: torch.Tensor, s_eq: torch.Tensor, v_eq: torch.Tensor) -> torch.Tensor:
    return Attend.apply(picked, s_eq, v_eq)
