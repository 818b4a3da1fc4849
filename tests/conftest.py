import pytest
import torch

from grokking.cli import compose
from grokking.train import train

torch.set_num_threads(1)


@pytest.fixture
def run(tmp_path):
    """Train a composed config in-process: run(["loss=stablemax", "epochs=5"]) -> (summary, out_dir)."""
    counter = iter(range(1000))

    def _run(overrides, out_dir=None):
        out = out_dir or tmp_path / f"run{next(counter)}"
        return train(compose(["device=cpu", *overrides]), out), out

    return _run
