"""CUDA-graph replay of the epochs that do not log (``cuda_graph=true``). The equivalence tests
need a GPU and are skipped without one; the configuration checks run everywhere."""

import pandas as pd
import pytest
import torch

from grokking.cli import compose, group_options
from grokking.data import DATASETS
from grokking.graphs import make_capturable
from grokking.train import train
from grokking.validation import ConfigError

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
TINY = ["dataset.modulus=23", "model.width=32", "epochs=40", "log_every=7"]
TINY_TRANSFORMER = ["model=transformer", "model.d_model=16", "model.n_heads=2", "model.d_mlp=32", "optimizer=adamw"]


def test_cuda_graph_without_a_gpu_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="cuda_graph=true needs a CUDA device"):
        train(compose(["device=cpu", "cuda_graph=true", *TINY]), tmp_path / "r")
    assert not (tmp_path / "r" / "metrics.csv").exists()


def test_make_capturable_turns_adamw_capturable():
    p = torch.nn.Parameter(torch.randn(3))
    opt = torch.optim.AdamW([p], fused=True)
    p.grad = torch.ones(3)
    opt.step()
    make_capturable(opt, p.device)
    assert opt.param_groups[0]["capturable"] is True
    assert opt.state[p]["step"].device == p.device


def test_switching_cuda_graph_on_or_off_does_not_block_a_resume():
    from grokking.checkpoint import config_differences
    from grokking.train import to_config

    _, eager = to_config(compose(["device=cpu"]))
    _, graph = to_config(compose(["device=cpu", "cuda_graph=true"]))
    older = {k: v for k, v in eager.items() if k != "cuda_graph"}  # saved before the key existed
    assert config_differences(eager, graph) == config_differences(older, graph) == []


def graph_and_eager(tmp_path, overrides):
    runs = {}
    for graph in (False, True):
        train(compose(["device=cuda", f"cuda_graph={str(graph).lower()}", *overrides]), tmp_path / str(graph))
        runs[graph] = pd.read_csv(tmp_path / str(graph) / "metrics.csv")
    return runs[False], runs[True]


@cuda
@pytest.mark.parametrize(
    "overrides",
    [
        TINY,  # ⊥AdamW MLP, the default run
        [*TINY, "loss=stablemax", "precision=float64", "optimizer=adamw", "seeds=[0,1,2]"],
        [*TINY, *TINY_TRANSFORMER],
        [*TINY, "optimizer=perp_sgd", "optimizer.lr=1", "precision.model_dtype=float64", "sc_intervention_epoch=20"],
    ],
    ids=["perp-adamw", "stablemax-3-seeds", "transformer", "perp-sgd-f64-intervention"],
)
def test_graph_replay_trains_exactly_like_eager_epochs(tmp_path, overrides):
    eager, graph = graph_and_eager(tmp_path, overrides)
    assert len(eager) == len(graph) > 0
    pd.testing.assert_frame_equal(eager, graph, check_exact=False, rtol=1e-6, atol=0)


@cuda
def test_graph_run_resumes_like_an_uninterrupted_one(tmp_path):
    full = ["device=cuda", "cuda_graph=true", *TINY]
    train(compose(full), tmp_path / "full")
    train(compose([*full, "epochs=19"]), tmp_path / "cut")  # checkpointed at epoch 19, between logged epochs
    (tmp_path / "cut" / "summary.json").unlink()  # as if it had been stopped there
    train(compose(full), tmp_path / "cut")  # resumes to 40
    a, b = (pd.read_csv(tmp_path / d / "metrics.csv") for d in ("full", "cut"))
    b = b[b.epoch != 18].reset_index(drop=True)  # the cut run also logged its last epoch
    pd.testing.assert_frame_equal(a, b, check_exact=False, rtol=1e-6, atol=0)


GROUP_CASES = [
    (group, option) for group in ("dataset", "loss", "optimizer", "precision") for option in group_options(group)
]


@cuda
@pytest.mark.parametrize("group,option", GROUP_CASES, ids=[f"{g}={o}" for g, o in GROUP_CASES])
def test_every_group_option_replays_like_eager(tmp_path, group, option):
    overrides = [f"{group}={option}", "model.width=32", "epochs=16", "log_every=5"]
    overrides += {"dataset": ["dataset.n_samples=200", "dataset.n_train=50"]}.get(group, ["dataset.modulus=23"])
    if group == "dataset" and DATASETS[option].pairs:
        overrides.append("dataset.modulus=23")
    eager, graph = graph_and_eager(tmp_path, overrides)
    pd.testing.assert_frame_equal(eager, graph, check_exact=False, rtol=1e-6, atol=0)
