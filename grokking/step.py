"""The body of the training loop: forward pass, loss and backward pass of one full-batch epoch.

:class:`TrainStep` is shared by ``grokking.train`` and the speed benchmark (``scripts/bench.py``),
so that the benchmark times exactly what a run computes. The optimizer steps after it.
"""

from __future__ import annotations

from functools import partial

import torch

from grokking.backward import scaled_backward
from grokking.config import TrainConfig
from grokking.data import Dataset
from grokking.losses import DTYPES, build_loss, zero_correct_class_grad


class TrainStep:
    def __init__(self, cfg: TrainConfig, model: torch.nn.Module, data: Dataset, optimizer):
        self.model, self.data, self.optimizer = model, data, optimizer
        self.params = list(model.parameters())
        self.loss_fn = build_loss(cfg.loss)  # fused softmax/StableMax CE where possible: same values, fewer passes
        self.loss_dtype = DTYPES[cfg.precision.loss_dtype]
        self.temperature, self.penalty = cfg.loss.temperature, cfg.loss.logit_norm_penalty
        self.log2_scale = cfg.precision.backward_log2_scale
        self.intervention = partial(zero_correct_class_grad, y=data.train_y)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.model(x)
        return logits / self.temperature if self.temperature != 1.0 else logits

    def __call__(self, intervene: bool = False) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(logits, per-sample losses, summed objective) of the training set, gradients in ``.grad``.
        ``intervene`` zeroes the gradient through every correct-class logit (Fig. 8)."""
        logits = self.forward(self.data.train_x)
        if intervene:
            logits.register_hook(self.intervention)
        per_sample = self.loss_fn(logits, self.data.train_y, self.loss_dtype)
        objective = per_sample.mean(-1)
        if self.penalty:
            objective = objective + self.penalty * logits.pow(2).sum(-1).mean(-1)
        loss = objective.sum()  # replicas are independent: their losses add
        self.optimizer.zero_grad(set_to_none=True)
        scaled_backward(loss, logits, self.params, self.log2_scale, self.loss_dtype)
        return logits, per_sample, loss
