"""Replicas of a batched model are independent: ⊥Grad projects each one's gradient on its own."""

import torch

from grokking.config import DatasetConfig, ModelConfig, OptimizerConfig
from grokking.data import build_dataset
from grokking.fused import training_loss
from grokking.models import build_model
from grokking.optim import build_optimizer


def projected_grads(seeds):
    data = build_dataset(DatasetConfig(name="add_mod", modulus=13, train_fraction=0.5))
    model = build_model(ModelConfig(name="mlp", width=16), data, seeds).double()
    params = list(model.parameters())
    opt = build_optimizer(OptimizerConfig(base="sgd", orthogonal=True, lr=1e-12), params)
    loss = training_loss("softmax")(model(data.train_x), data.train_y, torch.float64).mean(-1).sum()
    loss.backward()
    theta = [p.detach().clone() for p in params]
    raw = [p.grad.clone() for p in params]
    opt.step()  # replaces every p.grad by its projection, then takes a negligible step
    return theta, raw, [p.grad for p in params]


def test_perpgrad_projects_each_replica_of_a_batched_model_on_its_own_weights():
    theta, raw, perp = projected_grads([0, 1, 2])
    for t, g, gp in zip(theta, raw, perp):
        for r in range(3):
            assert abs(torch.dot(t[r].flatten(), gp[r].flatten())) < 1e-12 * t[r].norm() * g[r].norm()
            torch.testing.assert_close(gp[r].norm(), g[r].norm())  # rescaled to the norm of g
    _, _, single = projected_grads([1])
    for gp, gs in zip(perp, single):
        torch.testing.assert_close(gp[1], gs[0])  # replica 1 is the single-seed run with seed 1
