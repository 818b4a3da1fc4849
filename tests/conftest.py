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


@pytest.fixture(scope="session")
def committed_verdicts():
    """Every claim measured on the committed runs: (ours, the official code's), as `make figures` does."""
    from reproduction.claims import evaluate, load_claims
    from reproduction.official import OFFICIAL_COMMIT
    from reproduction.results import RESULTS

    claims = load_claims()
    return [evaluate(c, RESULTS) for c in claims], [evaluate(c, RESULTS / "official" / OFFICIAL_COMMIT) for c in claims]
