"""Training epochs replayed as captured CUDA graphs (``cuda_graph=true``).

One seed of the paper's models leaves a GPU idle: an epoch is a few hundred small kernels, and
launching them from Python takes longer (≈ 2 ms for the MLP) than running them. A CUDA graph
records the kernels of one whole step (forward, loss, backward, optimizer step) once and replays
them with a single launch.

Epochs that log metrics run eagerly, as without graphs, so every logged value is computed the same
way. Between them, :class:`StepGraphs` warms the step up on a side stream (a few ordinary eager
epochs, as CUDA graph capture requires), then captures it and replays it. A replay computes the
same kernels on the same memory, so the training trajectory is that of eager execution. A step
with a different graph (the Softmax Collapse intervention switching on) gets its own capture.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable

import torch


def make_capturable(optimizer, device: torch.device) -> None:
    """Let ``optimizer`` (or the one an ``OrthoGrad`` wraps) step inside a CUDA graph: AdamW's
    ``capturable`` flag on, and its step counters on the device (a checkpoint may restore them on
    the host)."""
    base = getattr(optimizer, "base", optimizer)
    for group in base.param_groups:
        if "capturable" in group:
            group["capturable"] = True
        for p in group["params"]:
            state = base.state.get(p, {})
            if torch.is_tensor(state.get("step")) and state["step"].device != device:
                state["step"] = state["step"].to(device, torch.float32)


class StepGraphs:
    """``graphs(key)`` runs one training step and returns its loss tensor. ``step(key)`` must run the
    forward pass, the loss and the backward pass and return the loss; the optimizer steps after it.
    The first ``warmup`` calls per key run eagerly on a side stream, the next captures the step into
    a graph and replays it, and every later call only replays it."""

    def __init__(self, step: Callable[[Hashable], torch.Tensor], optimizer, warmup: int = 2):
        self.step, self.optimizer, self.warmup = step, optimizer, warmup
        self.graphs: dict[Hashable, tuple[torch.cuda.CUDAGraph, torch.Tensor]] = {}
        self.warm: dict[Hashable, int] = {}
        self.side = torch.cuda.Stream()

    def __call__(self, key: Hashable) -> torch.Tensor:
        if key in self.graphs:
            graph, loss = self.graphs[key]
            graph.replay()
            return loss
        if self.warm.get(key, 0) < self.warmup:
            self.warm[key] = self.warm.get(key, 0) + 1
            self.side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(self.side):
                loss = self.step(key).detach()  # keeps no autograd graph (and its streams) alive
                self.optimizer.step()
            torch.cuda.current_stream().wait_stream(self.side)
            return loss
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):  # records the kernels without running them
            loss = self.step(key).detach()  # the same memory, refilled by every replay
            self.optimizer.step()
        self.graphs[key] = (graph, loss)
        graph.replay()
        return loss
