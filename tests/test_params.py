"""Each option declares its parameters once (``params=`` where it is registered); the schema, the
arguments its code receives, range checks, "has no effect" errors, resume compatibility, the docs
table and these parametrizations all come from those specs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from omegaconf import OmegaConf

import grokking.config as config
from grokking.checkpoint import config_differences, load_checkpoint, save_checkpoint
from grokking.cli import CONF_DIR, compose, group_aliases
from grokking.config import GROUPS, options_table, with_old_values
from grokking.errors import ConfigError
from grokking.losses import LOSSES
from grokking.optim import OPTIMIZERS
from grokking.registry import Param
from grokking.train import to_config
from grokking.validation import check_specs, validate

ROOT = Path(__file__).resolve().parent.parent


def other_value(p: Param):
    """A valid value of ``p`` other than its default."""
    if p.type is bool:
        return not p.default
    if p.choices:
        return next(c for c in p.choices if c != p.default)
    if p.default is None:
        return "elsewhere" if "str" in str(p.type) else 1
    if isinstance(p.default, list):
        return [v * 0.5 for v in p.default]
    if p.type is int:
        return p.default + 1
    value = p.default * 0.5 if p.default else 0.5
    assert p.in_range(value)
    return value


def foreign_cases():
    """(group, option, parameter) for every parameter and every option that does not read it."""
    for group, (registry, _) in GROUPS.items():
        for name, p in registry.all_params().items():
            for option in registry.names():
                if option not in registry.readers(name):
                    yield pytest.param(group, option, p, id=f"{group}={option} {group}.{name}")


def reader_cases():
    for group, (registry, _) in GROUPS.items():
        for name, p in registry.all_params().items():
            for option in registry.readers(name):
                yield pytest.param(group, option, p, id=f"{group}={option} {group}.{name}")


def group_config(group: str, option: str, **values):
    registry, title = GROUPS[group]
    return getattr(config, f"{title}Config")(**{registry.selector: option}, **values)


@pytest.mark.parametrize("group, option, param", list(foreign_cases()))
def test_a_parameter_the_option_does_not_read_is_refused_away_from_its_default(group, option, param):
    registry = GROUPS[group][0]
    registry.check(group_config(group, option))  # at its default: accepted (committed configs hold every key)
    value = other_value(param)
    with pytest.raises(ConfigError) as err:
        registry.check(group_config(group, option, **{param.name: value}))
    readers = ", ".join(registry.readers(param.name))
    assert str(err.value) == (
        f"{group}.{param.name}={value} has no effect with {registry.label}={option}; "
        f"it is read by {registry.label}={readers}"
    )


@pytest.mark.parametrize("group, option, param", list(reader_cases()))
def test_a_parameter_the_option_reads_is_accepted_in_range_and_passed_to_it(group, option, param):
    registry = GROUPS[group][0]
    switch = {param.needs: other_value(registry.all_params()[param.needs])} if param.needs else {}  # its flag on
    cfg = group_config(group, option, **{param.name: other_value(param)}, **switch)
    registry.check(cfg)
    if param not in registry.shared:
        value = other_value(param)
        assert registry.arguments(cfg)[param.name] == (tuple(value) if isinstance(value, list) else value)


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["dataset=mnist", "dataset.modulus=97"], "dataset.modulus=97 has no effect with dataset=mnist; it is read by"),
        (["dataset=sparse_parity", "dataset.modulus=7"], "dataset.modulus=7 has no effect with dataset=sparse_parity"),
        (
            ["dataset=add_mod", "dataset.code_bits=3"],
            "dataset.code_bits=3 has no effect with dataset=add_mod; it is read by dataset=add_mod_binary",
        ),  # fmt: skip
        (
            ["model=mlp", "model.n_heads=3"],
            "model.n_heads=3 has no effect with model=mlp; it is read by model=transformer",
        ),  # fmt: skip
        (
            ["model=transformer", "model.depth=5"],
            "model.depth=5 has no effect with model=transformer; it is read by model=mlp",
        ),  # fmt: skip
        (["sc_intervention_epoch=1000000", "epochs=5"], "sc_intervention_epoch=1000000 is never reached in epochs=5"),
        (["sc_intervention_epoch=5", "epochs=5"], "sc_intervention_epoch=5 is never reached in epochs=5"),
        (
            ["loss=stablemax", "loss.z_coef=0.1"],
            "loss.z_coef=0.1 has no effect with loss=stablemax; it is read by loss=zloss",
        ),  # fmt: skip
    ],
)
def test_settings_that_would_be_ignored_are_refused_before_training(overrides, message):
    with pytest.raises(ConfigError) as err:
        validate(to_config(compose(["device=cpu", *overrides]))[0])
    assert str(err.value).startswith(message) and "\n" not in str(err.value)


@pytest.mark.parametrize("optimizer", ["adamw", "perp_adamw"])
def test_adamw_refuses_a_decoupled_decay_that_would_zero_or_flip_the_weights(optimizer):
    def check(lr, wd, name=optimizer):
        over = ["device=cpu", f"optimizer={name}", f"optimizer.lr={lr}", f"optimizer.weight_decay={wd}"]
        validate(to_config(compose(over))[0])

    check(0.3, 3)  # the weights shrink by 0.9 per step: runs
    for lr, wd, factor in [(0.5, 2, "0"), (0.5, 3, "-0.5")]:
        with pytest.raises(ConfigError) as err:
            check(lr, wd)
        assert str(err.value) == (
            f"optimizer.weight_decay={wd} with optimizer.lr={lr} scales the weights by 1 − lr × weight_decay = {factor}"
            " every step (AdamW's decoupled decay), which zeroes or flips them; expected lr × weight_decay < 1"
        )
    check(0.5, 3, "sgd")  # SGD's decay is an L2 term in the gradient: no such bound


@pytest.mark.slow
def test_on_the_command_line_it_is_one_error_line_and_no_run(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    args = ["model=transformer", "model.depth=5", f"hydra.run.dir={tmp_path / 'r'}"]
    res = subprocess.run([sys.executable, "train.py", *args], cwd=ROOT, env=env, capture_output=True, text=True)
    assert res.returncode == 2 and res.stderr.strip().splitlines() == [
        "error: model.depth=5 has no effect with model=transformer; it is read by model=mlp"
    ]
    assert not (tmp_path / "r" / "metrics.csv").exists()


def test_the_intervention_at_the_last_epoch_is_accepted():
    validate(to_config(compose(["device=cpu", "sc_intervention_epoch=4", "epochs=5"]))[0])


def test_the_schema_follows_registrations():
    @LOSSES.register("scaled_mse", params=(Param("scale", float, 1.0, "multiplies the squared error", low=0),))
    def scaled_mse(z, y, dtype, scale=1.0):
        return scale * LOSSES["mse"].fn(z, y, dtype)

    try:
        cfg, cfg_dict = to_config(compose(["loss.name=scaled_mse", "loss.scale=3"]))
        assert cfg_dict["loss"]["scale"] == 3.0 and LOSSES.arguments(cfg.loss) == {"scale": 3.0}
    finally:
        LOSSES.unregister("scaled_mse")
    with pytest.raises(Exception, match="scale"):
        compose(["loss.scale=3"])  # gone with its option


def test_one_name_means_one_parameter_across_options():
    with pytest.raises(ValueError, match="optimizer.lr is declared twice"):
        OPTIMIZERS.register("other", object, params=(Param("lr", float, 0.1),))
    assert "other" not in OPTIMIZERS


def test_an_option_receives_its_own_parameters_as_arguments():
    cfg, _ = to_config(compose(["optimizer=perp_adamw"]))
    assert OPTIMIZERS.arguments(cfg.optimizer) == {"lr": 0.01, "betas": (0.9, 0.99), "eps": 1e-25, "weight_decay": 0.0}
    cfg, _ = to_config(compose(["loss=softmax", "loss.label_smoothing=0.2"]))
    assert LOSSES.arguments(cfg.loss) == {"label_smoothing": 0.2, "sum": "exact"}


def option_yaml(group: str, name: str) -> dict:
    """The keys of ``conf/<group>/<name>.yaml`` with those of the siblings its defaults list names
    (Hydra's order: each listed one, then the file itself at ``_self_``, else last)."""
    node = yaml.safe_load((CONF_DIR / group / f"{name}.yaml").read_text()) or {}
    defaults = node.pop("defaults", [])
    merged: dict = {}
    for entry in defaults if "_self_" in defaults else [*defaults, "_self_"]:
        merged.update(node if entry == "_self_" else option_yaml(group, entry))
    return merged


@pytest.mark.parametrize("group", list(GROUPS))
def test_every_option_yaml_sets_only_what_its_option_reads(group):
    registry = GROUPS[group][0]
    for path in sorted((CONF_DIR / group).glob("*.yaml")):
        if path.stem in group_aliases(group):
            continue
        node = option_yaml(group, path.stem)  # with what it builds on (defaults:)
        reads = {p.name for p in registry.reads(node[registry.selector])}
        assert set(node) - {registry.selector} <= reads, f"{path.name} sets {set(node) - reads}"


@pytest.mark.parametrize("group", list(GROUPS))
def test_an_option_yaml_that_builds_on_another_sets_only_what_differs(group):
    for path in sorted((CONF_DIR / group).glob("*.yaml")):
        own = yaml.safe_load(path.read_text()) or {}
        for parent in [d for d in own.get("defaults", []) if d != "_self_"]:
            inherited = option_yaml(group, parent)
            repeated = {k for k, v in own.items() if k != "defaults" and k in inherited and inherited[k] == v}
            assert not repeated, f"{path.name} repeats {sorted(repeated)} of {parent}.yaml"


def test_option_yamls_build_on_one_another():
    assert yaml.safe_load((CONF_DIR / "optimizer" / "perp_adamw.yaml").read_text())["defaults"] == ["adamw", "_self_"]
    composed = compose(["optimizer=perp_adamw"]).optimizer
    plain = compose(["optimizer=adamw", "optimizer.orthogonal=true", "optimizer.lr=0.01"]).optimizer
    assert composed == plain


def test_the_docs_table_is_generated_from_the_specs():
    page = (ROOT / "docs" / "configuration.md").read_text()
    start, end = config.DOCS_TABLE
    assert page.split(start, 1)[1].split(end, 1)[0].strip() == options_table(), "run: python -m grokking.config"


def committed_configs() -> list[Path]:
    out = subprocess.run(["git", "ls-files", "results/**/config.yaml"], cwd=ROOT, capture_output=True, text=True)
    return [ROOT / p for p in out.stdout.split() if "/.hydra/" not in p]


def committed_training_configs() -> list[tuple[Path, dict]]:
    """Each committed training config once (runs that differ only in seed, device or logging check alike)."""
    found, seen = [], set()
    for path in committed_configs():
        saved = yaml.load(path.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
        if not {"dataset", "model", "loss", "optimizer"} <= set(saved):
            continue  # not a training run's config (e.g. the official code's)
        key = json.dumps({k: v for k, v in saved.items() if k not in ("seed", "seeds", "device")}, sort_keys=True)
        if key not in seen:
            seen.add(key)
            found.append((path, saved))
    return found


def resumed(saved: dict) -> tuple[config.TrainConfig, dict]:
    """What a resume compares: the saved config with its missing keys at their specs' old values,
    typed by the schema (OmegaConf, as ``train`` does)."""
    return to_config(OmegaConf.create(with_old_values(saved)))


def test_every_committed_config_passes_its_checks_and_resumes_unchanged():
    """Every committed run's saved config, its missing keys filled with their specs' old values,
    passes the spec checks (no committed run sets a key its option does not read) and equals what
    was saved (no difference that would refuse the resume). The schema's dataclasses are built
    directly here (a thousand configs); a sample goes through OmegaConf, the whole of them in the
    slow test below."""
    configs = committed_training_configs()
    assert len(configs) > 100
    for i, (path, saved) in enumerate(configs):
        filled = with_old_values(saved)
        groups = {g: getattr(config, f"{t}Config")(**filled[g]) for g, (_, t) in GROUPS.items()}
        cfg = config.TrainConfig(**{**filled, **groups, "precision": config.PrecisionConfig(**filled["precision"])})
        if i % 100 == 0:
            cfg, cfg_dict = resumed(saved)
            assert config_differences(saved, cfg_dict) == [], path
        try:
            check_specs(cfg)
        except ConfigError as e:
            raise AssertionError(f"{path.relative_to(ROOT)}: {e}") from None


@pytest.mark.slow
def test_every_committed_config_resumes_through_the_schema_unchanged():
    for path, saved in committed_training_configs():
        cfg, cfg_dict = resumed(saved)
        check_specs(cfg)
        assert config_differences(saved, cfg_dict) == [], path


def test_a_run_saved_before_a_parameter_existed_resumes_with_its_old_value(run, tmp_path):
    tiny = ["dataset.modulus=23", "model.width=16", "log_every=2", "checkpoint_every=2", "cpu_kernel=torch"]
    out = tmp_path / "r"
    run([*tiny, "epochs=4"], out)
    (out / "summary.json").unlink()  # as if stopped right after its last checkpoint
    state = load_checkpoint(out / "checkpoint.pt")
    del state["config"]["loss"]["temperature"]  # as if saved before loss.temperature existed
    save_checkpoint(out / "checkpoint.pt", state)
    saved = yaml.safe_load((out / "config.yaml").read_text())
    del saved["loss"]["temperature"]
    (out / "config.yaml").write_text(yaml.safe_dump(saved))
    with pytest.raises(ConfigError, match=r"different config \(loss.temperature\)"):
        run([*tiny, "epochs=6", "loss.temperature=2"], out)  # not what it was trained with
    summary, _ = run([*tiny, "epochs=6"], out)
    assert summary["status"] == "completed" and summary["epoch"] == 6
