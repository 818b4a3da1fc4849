"""docs/extending.md as a specification: each extension it shows is one registry entry, and runs.

The code blocks of the page are executed as written; each registers its entry, which the test
then selects by name and trains for a few epochs, and takes away again.
"""

import re
import shutil
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
    """Runs a section's code and removes what it registered afterwards (an option the page shows
    as the repository defines it is taken away first, and put back after)."""
    added, restore = [], []

    def _run(title: str, registry, replaces: str | None = None) -> str:
        if replaces is not None:
            restore.append((registry, replaces, registry.entries[replaces], registry.params[replaces]))
            registry.unregister(replaces)
        before = set(registry.entries)
        code, _ = section(title)
        exec(compile(code, str(PAGE), "exec"), {})
        (name,) = set(registry.entries) - before
        added.append((registry, name))
        return name

    yield _run
    for registry, name in added:
        registry.unregister(name)
    for registry, name, entry, params in restore:
        registry.register(name, entry.fn, params=params)


def yaml_overrides(block: str, group: str) -> list[str]:
    """The keys of a YAML block of the page as overrides of ``group``."""
    import yaml

    return [f"{group}.{k}={v}" for k, v in yaml.safe_load(block).items()]


def test_a_registered_dataset_trains_with_its_parameters(registered, tmp_path):
    name = registered("A dataset", DATASETS)
    _, yamls = section("A dataset")
    overrides = [o.replace("n_points=400", "n_points=200") for o in yaml_overrides(yamls[0], "dataset")]
    summary = train(compose([*overrides, *TINY]), tmp_path)
    assert summary["status"] == "completed"
    assert pd.read_csv(tmp_path / "metrics.csv").train_acc.iloc[-1] > 0.5  # a linearly separable task
    assert "n_points: 200" in (tmp_path / "config.yaml").read_text()  # its parameter is part of the config
    with pytest.raises(ConfigError, match=f"dataset.n_points=50 has no effect with dataset=add_mod; .*={name}$"):
        check(compose(["dataset.n_points=50"]))
    with pytest.raises(ConfigError, match="dataset.features=0 is not valid; expected an integer >= 1"):
        check(compose([*overrides, "dataset.features=0"]))


def test_the_loss_section_is_the_repository_s_zloss_and_the_kernels_claim_it(registered, tmp_path, capfd):
    code, _ = section("A loss")
    assert code.split("\n\n\n", 1)[1] in (PAGE.parent.parent / "grokking" / "losses.py").read_text()
    name = registered("A loss", LOSSES, replaces="zloss")
    summary = train(compose([f"loss={name}", "loss.z_coef=1e-3", "dataset.modulus=23", *TINY]), tmp_path)
    df = pd.read_csv(tmp_path / "metrics.csv")
    compiled = shutil.which("c++") is not None
    # the C++ step computes it (grokking.native.KERNELS claims loss=zloss and loss.z_coef)
    assert summary["status"] == "completed" and summary["training_step"] == ("native" if compiled else "torch")
    assert df.train_loss.iloc[-1] < df.train_loss.iloc[0]
    notices = [line for line in capfd.readouterr().err.splitlines() if "does not compute loss" in line]
    assert notices == []
    with pytest.raises(
        ConfigError, match="loss.z_coef=0.001 has no effect with loss=softmax; it is read by loss=zloss$"
    ):
        check(compose(["loss=softmax", "loss.z_coef=1e-3"]))


def test_zloss_is_cross_entropy_plus_the_squared_log_normalizer():
    from grokking.fused import build_loss
    from grokking.losses import softmax_cross_entropy

    z = torch.tensor([[2.0, 0.5, 1.8], [0.0, 3.0, 0.0]], dtype=torch.float64)
    y = torch.tensor([0, 1])
    cfg, _ = to_config(compose(["loss=zloss", "loss.z_coef=0.5"]))
    expected = softmax_cross_entropy(z, y, torch.float64) + 0.5 * torch.logsumexp(z, -1) ** 2
    assert torch.allclose(build_loss(cfg.loss)(z, y, torch.float64), expected)


def test_a_registered_optimizer_trains_and_takes_perpgrad(registered, tmp_path):
    name = registered("An optimizer", OPTIMIZERS)
    _, yamls = section("An optimizer")
    assert f"base: {name}" in yamls[0] and "orthogonal: true" in yamls[0]
    overrides = yaml_overrides(yamls[0], "optimizer")
    summary = train(compose([*overrides, "dataset.modulus=23", *TINY]), tmp_path)
    assert summary["status"] == "completed"
    with pytest.raises(ConfigError, match=f"optimizer.momentum=0.5 has no effect with optimizer.base={name}"):
        check(compose([f"optimizer.base={name}", "optimizer.momentum=0.5"]))
    cfg, _ = to_config(compose([*overrides, "optimizer.lr_decay=0.25"]))
    assert OPTIMIZERS.arguments(cfg.optimizer) == {"lr": 0.01, "lr_decay": 0.25, "weight_decay": 0.0}


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


def test_the_kernels_capabilities_name_registered_options_and_settings():
    from grokking.config import group_specs, settings
    from grokking.models import MODELS
    from grokking.native import KERNELS, LOSS_KINDS

    assert set(LOSS_KINDS) <= set(LOSSES.names()) and set(KERNELS) <= set(MODELS.names())
    keys = {f"{g}.{k}" for g, params in group_specs().items() for k in params} | {p.name for p in settings()}
    for kernel in KERNELS.values():
        assert set(kernel.implements) - {"model.name", "loss.name"} <= keys


def test_a_dataset_entry_states_what_other_code_asked_of_its_name():
    assert DATASETS.names(lambda e: e.tokens) == ("add_mod", "mul_mod", "sub_mod")
    assert DATASETS.names(lambda e: e.pairs) == ("add_mod", "mul_mod", "sub_mod", "add_mod_binary")
    with pytest.raises(ConfigError, match="model=transformer needs token inputs; dataset=sparse_parity"):
        check(compose(["model=transformer", "dataset=sparse_parity"]))
