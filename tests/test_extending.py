"""docs/extending.md as a specification: each extension it shows is one registry entry, and runs.

The code blocks of the page are executed as written; each registers its entry, which the test
then selects by name and trains for a few epochs, and takes away again.
"""

import re
from pathlib import Path

import pandas as pd
import pytest
import torch

from grokking.cli import compose
from grokking.data import DATASETS
from grokking.losses import LOSSES
from grokking.metrics import COLUMNS
from grokking.optim import OPTIMIZERS
from grokking.train import to_config, train
from grokking.validation import ConfigError, validate

PAGE = Path(__file__).resolve().parent.parent / "docs" / "extending.md"
TINY = ["device=cpu", "model.width=16", "epochs=6", "log_every=2", "checkpoint_every=0"]


def check(cfg) -> None:
    validate(to_config(cfg)[0])


def section(title: str) -> tuple[str, list[str]]:
    """The python code of one ``## <title>`` section of the page, and its yaml blocks."""
    text = PAGE.read_text().split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]
    python = re.findall(r"```python\n(.*?)```", text, re.S)
    assert len(python) == 1, f"section {title!r} should show one python block"
    return python[0], re.findall(r"```yaml\n(.*?)```", text, re.S)


@pytest.fixture
def registered():
    """Runs a section's code and removes what it registered afterwards."""
    added = []

    def _run(title: str, registry) -> str:
        before = set(registry.entries)
        code, _ = section(title)
        exec(compile(code, str(PAGE), "exec"), {})
        (name,) = set(registry.entries) - before
        added.append((registry, name))
        return name

    yield _run
    for registry, name in added:
        registry.unregister(name)


def test_a_registered_dataset_trains(registered, tmp_path):
    name = registered("A dataset", DATASETS)
    summary = train(
        compose([f"dataset.name={name}", "dataset.n_samples=200", "dataset.train_fraction=0.5", *TINY]), tmp_path
    )
    assert summary["status"] == "completed"
    assert pd.read_csv(tmp_path / "metrics.csv").train_acc.iloc[-1] > 0.5  # a linearly separable task


def test_a_registered_loss_trains(registered, tmp_path):
    name = registered("A loss", LOSSES)
    summary = train(compose([f"loss.name={name}", "dataset.modulus=23", *TINY]), tmp_path)
    df = pd.read_csv(tmp_path / "metrics.csv")
    assert summary["status"] == "completed" and summary["training_step"] == "torch"  # no C++ kernel for it
    assert df.train_loss.iloc[-1] < df.train_loss.iloc[0]


def test_a_registered_optimizer_trains_and_takes_perpgrad(registered, tmp_path):
    name = registered("An optimizer", OPTIMIZERS)
    _, yamls = section("An optimizer")
    assert f"base: {name}" in yamls[0]
    summary = train(compose(["optimizer=perp_adamw", f"optimizer.base={name}", "dataset.modulus=23", *TINY]), tmp_path)
    assert summary["status"] == "completed"
    with pytest.raises(ConfigError, match=f"optimizer.momentum=0.5 has no effect with optimizer.base={name}"):
        check(compose([f"optimizer.base={name}", "optimizer.momentum=0.5"]))


def test_a_registered_column_is_logged_and_a_resume_across_it_keeps_earlier_rows(registered, tmp_path):
    first = ["dataset.modulus=23", "device=cpu", "model.width=16", "log_every=2", "checkpoint_every=2"]
    train(compose([*first, "epochs=4"]), tmp_path)
    (tmp_path / "summary.json").unlink()  # as if stopped right after its last checkpoint (epoch 4)
    name = registered("A metric column", COLUMNS)
    summary = train(compose([*first, "epochs=8"]), tmp_path)
    df = pd.read_csv(tmp_path / "metrics.csv")
    assert summary["status"] == "completed" and name in df.columns
    assert df.epoch.tolist() == [0, 2, 3, 4, 6, 7]
    assert df[name].isna().tolist() == [True, True, True, False, False, False]
    assert (df[name].dropna() > 0).all()


def test_an_unknown_name_is_one_line_with_the_registered_choices():
    for key, registry in (("dataset.name", DATASETS), ("loss.name", LOSSES), ("optimizer.base", OPTIMIZERS)):
        with pytest.raises(
            ConfigError, match=f"{key}=nope is not valid; choose one of: {', '.join(registry.names())}$"
        ):
            check(compose([f"{key}=nope"]))


def test_a_name_cannot_be_registered_twice():
    with pytest.raises(ValueError, match="registered already"):
        LOSSES.register("softmax", lambda z, y, dtype: z)


def test_the_kernels_tables_name_registered_options():
    from grokking.models import MODELS
    from grokking.native import LOSS_KINDS, STEPS

    assert set(LOSS_KINDS) <= set(LOSSES.names()) and set(STEPS) <= set(MODELS.names())


def test_a_dataset_entry_states_what_other_code_asked_of_its_name():
    assert DATASETS.names(lambda e: e.tokens) == ("add_mod", "mul_mod", "sub_mod")
    assert DATASETS.names(lambda e: e.pairs) == ("add_mod", "mul_mod", "sub_mod", "add_mod_binary")
    with pytest.raises(ConfigError, match="model=transformer needs token inputs; dataset=sparse_parity"):
        check(compose(["model=transformer", "dataset=sparse_parity"]))


def test_hinge_matches_its_definition():
    from grokking.losses import LOSSES as losses

    code, _ = section("A loss")
    scope: dict = {}
    exec(compile(code.replace('@LOSSES.register("hinge")\n', ""), str(PAGE), "exec"), scope)
    z, y = torch.tensor([[2.0, 0.5, 1.8], [0.0, 3.0, 0.0]]), torch.tensor([0, 1])
    assert torch.allclose(scope["hinge"](z, y, torch.float64), torch.tensor([0.8, 0.0], dtype=torch.float64))
    assert "hinge" not in losses
