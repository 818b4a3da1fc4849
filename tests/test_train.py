"""End-to-end training through the composed Hydra config."""

import csv
import json
import math
from pathlib import Path

import pandas as pd
import pytest

from grokking.cli import CONF_DIR, compose, group_aliases, group_options
from grokking.data import DATASETS
from grokking.train import train
from grokking.validation import ConfigError

TINY = ["dataset.modulus=23", "model.width=32", "epochs=6", "log_every=2"]
TINY_TRANSFORMER = ["model.d_model=16", "model.n_heads=2", "model.d_mlp=32"]
WANDB_OFF = ["logger.mode=disabled"]  # the offline files are tested in test_tracking.py

SMALL_DATASET = {"sparse_parity": ["dataset.n_samples=200"], "mnist": ["dataset.n_train=50"]}  # what each reads
TINY_MLP = ["model.width=32"]

GROUP_CASES = [
    ("dataset", option, ["model.width=16", "epochs=4", "log_every=2", *SMALL_DATASET.get(option, [])])
    for option in group_options("dataset")
] + [
    (
        group,
        option,
        [o for o in TINY if option != "transformer" or o not in TINY_MLP]
        + (TINY_TRANSFORMER if option == "transformer" else [])
        + (WANDB_OFF if option == "wandb" else []),
    )
    for group in ("model", "loss", "optimizer", "precision", "logger")
    for option in group_options(group)
]


@pytest.mark.parametrize("group,option,extra", GROUP_CASES, ids=[f"{g}={o}" for g, o, _ in GROUP_CASES])
def test_every_group_option_trains(run, group, option, extra):
    overrides = [f"{group}={option}", *extra]
    if group == "dataset" and DATASETS[option].pairs:
        overrides.append("dataset.modulus=23")
    summary, out = run(overrides)
    assert summary["status"] == "completed"
    df = pd.read_csv(out / "metrics.csv")
    assert list(df.columns[:6]) == ["epoch", "seed", "train_loss", "test_loss", "train_acc", "test_acc"]
    assert df["epoch"].iloc[-1] == summary["epochs"] - 1
    assert ((df.train_acc >= 0) & (df.train_acc <= 1)).all()


def test_every_experiment_composes():
    for option in group_options("experiment"):
        cfg = compose([f"experiment={option}"])
        assert cfg.epochs > 0


def test_run_directory_holds_config_metrics_summary_and_checkpoint(run):
    summary, out = run(TINY)
    for name in ("config.yaml", "metrics.csv", "summary.json", "checkpoint.pt"):
        assert (out / name).is_file(), name
    saved = json.loads((out / "summary.json").read_text())
    for key in ("status", "wall_time_s", "epochs_per_s", "git_commit", "torch", "device", "per_seed"):
        assert key in saved
    final = saved["per_seed"]["0"]["final"]
    assert math.isfinite(final["train_loss"]) and 0 <= final["test_acc"] <= 1


def test_accuracies_are_exact_fractions_of_integer_counts(run):
    summary, out = run(TINY)
    with open(out / "metrics.csv") as f:  # Python's float() parses exactly; some pandas versions do not
        counts = [float(row["train_acc"]) * int(0.4 * 23**2) for row in csv.DictReader(f)]
    assert counts and all(c == round(c) for c in counts)  # exact: count / n in float64


def test_every_diagnostic_column_is_finite_for_mlp_and_transformer(run):
    for extra in ([], ["model=transformer", *TINY_TRANSFORMER], ["model.bias=true"]):
        base = [o for o in TINY if not o.startswith("model.width")] if "model=transformer" in extra else TINY
        _, out = run([*base, *extra])  # model.width has no effect on the transformer, which refuses it
        df = pd.read_csv(out / "metrics.csv")
        expected = {
            "sc_fraction", "sc_fraction_float16", "sc_fraction_float32", "sc_fraction_float64", "sc_fraction_bfloat16",
            "zero_loss_fraction", "nlm_cos", "logit_norm", "logit_max", "logit_margin", "weight_norm",
            "grad_norm", "zero_grad_fraction", "absorbed_fraction",
        }  # fmt: skip
        assert expected <= set(df.columns)
        assert any(c.startswith("nlm_cos/") for c in df.columns)
        assert any(c.startswith("weight_norm/") for c in df.columns)
        assert df.notna().all().all() and (df.select_dtypes("number").abs() < float("inf")).all().all()


def test_same_config_gives_identical_metrics(run):
    _, a = run(TINY)
    _, b = run(TINY)
    assert (a / "metrics.csv").read_bytes() == (b / "metrics.csv").read_bytes()


@pytest.mark.parametrize(
    "model", [["model.width=32"], ["model=transformer", *TINY_TRANSFORMER, "optimizer=adamw", "optimizer.lr=0.003"]]
)
def test_batched_seeds_match_single_seed_runs(run, model):
    base = ["dataset.modulus=23", *model, "epochs=100", "log_every=1"]
    _, batched = run([*base, "seeds=[0,1,2]"])
    _, single = run([*base, "seed=1"])
    b = pd.read_csv(batched / "metrics.csv")
    s = pd.read_csv(single / "metrics.csv")
    b1 = b[b.seed == 1].reset_index(drop=True)
    assert len(b1) == len(s) == 100
    pd.testing.assert_series_equal(b1.train_loss, s.train_loss, rtol=1e-5)
    assert b1.train_acc.iloc[-1] == s.train_acc.iloc[-1] and b1.test_acc.iloc[-1] == s.test_acc.iloc[-1]
    assert set(b.seed) == {0, 1, 2}


def test_completed_run_is_not_clobbered(run, tmp_path):
    out = tmp_path / "same"
    run(TINY, out)
    with pytest.raises(ConfigError, match="completed run"):
        run(TINY, out)
    summary, _ = run([*TINY, "overwrite=true"], out)
    assert summary["status"] == "completed"


def test_resume_refuses_a_different_config(run, tmp_path):
    out = tmp_path / "r"
    out.mkdir()
    cfg = compose(["device=cpu", *TINY, "checkpoint_every=2"])
    train(cfg, out)
    (out / "summary.json").unlink()  # pretend it stopped early
    with pytest.raises(ConfigError, match="different config"):
        run([*TINY, "optimizer.lr=0.5"], out)


def test_divergence_stops_with_status_and_keeps_rows(run):
    summary, out = run(["dataset.modulus=23", "epochs=50", "log_every=1", "optimizer=sgd", "optimizer.lr=1e30"])
    assert summary["status"] == "diverged"
    assert summary["epoch"] < 50
    df = pd.read_csv(out / "metrics.csv")
    assert len(df) == summary["epoch"]  # every epoch before the divergence was logged


def test_conf_dir_has_every_group():
    assert {p.name for p in Path(CONF_DIR).iterdir() if p.is_dir()} >= {
        "dataset", "model", "loss", "optimizer", "precision", "logger", "experiment",
    }  # fmt: skip


def test_snapshots_record_parameters_at_the_requested_epochs(run):
    import torch

    _, out = run([*TINY, "snapshot_every=2", "seeds=[0,1]"])
    snap = torch.load(out / "snapshots.pt")
    assert [e for e, _ in snap["snapshots"]] == [0, 2, 4]
    n_params = 2 * 23 * 32 + 32 * 32 + 32 * 23
    assert snap["snapshots"][0][1].shape == (2, n_params)


def test_appendix_options_train(run):
    for extra in (
        ["sc_intervention_epoch=2"],
        ["loss.temperature=0.5"],
        ["loss.label_smoothing=0.2"],
        ["loss.logit_norm_penalty=0.1"],
        ["loss=taylor"],
        ["optimizer=sgd", "optimizer.normalize_grad=true", "optimizer.lr=3"],
        ["loss=mse", "model.depth=1"],
        ["loss=mse", "model.depth=3"],
    ):
        summary, _ = run([*TINY, *extra])
        assert summary["status"] == "completed", extra


def test_logit_norm_penalty_shrinks_logits(run):
    base = [*TINY, "epochs=40", "optimizer=adamw", "optimizer.lr=0.01"]
    plain, _ = run(base)
    penalized, _ = run([*base, "loss.logit_norm_penalty=1.0"])
    norm = lambda s: s["per_seed"]["0"]["final"]["logit_norm"]  # noqa: E731
    assert norm(penalized) < norm(plain)


def test_experiment_values_override_the_defaults():
    cfg = compose(["experiment=fig1b"])
    assert cfg.epochs == 80000 and cfg.loss.name == "stablemax" and cfg.optimizer.betas == [0.9, 0.999]
    assert cfg.optimizer.lr == 0.01 and cfg.precision.loss_dtype == "float64"
    cfg = compose(["experiment=fig6b", "optimizer=perp_sgd"])
    assert cfg.epochs == 500 and cfg.optimizer.base == "sgd" and cfg.optimizer.orthogonal
    assert cfg.optimizer.momentum == 0.8  # from the option: the experiment does not set it
    assert cfg.optimizer.lr == 0.005  # the experiment's value wins over the option's: override it explicitly
    assert compose([]).optimizer.lr == 0.01 and compose([]).epochs == 300


def test_a_run_directory_in_use_is_refused(run, tmp_path):
    from grokking.train import lock_run_dir

    out = tmp_path / "busy"
    out.mkdir()
    held = lock_run_dir(out)  # as if another process were training here
    try:
        with pytest.raises(ConfigError, match="in use by another training process"):
            run(TINY, out)
        assert not (out / "metrics.csv").exists()
    finally:
        held.close()
    summary, _ = run(TINY, out)
    assert summary["status"] == "completed"


def test_the_default_run_groks(run):
    """`python train.py` with no overrides: ⊥AdamW on modular addition reaches ≥ 99 % test accuracy."""
    summary, _ = run(["log_every=50"])
    final = summary["per_seed"]["0"]["final"]
    assert summary["epochs"] == 300 and final["train_acc"] == 1.0 and final["test_acc"] >= 0.99


def test_snapshots_survive_a_resume(run, tmp_path):
    import torch

    out = tmp_path / "snap"
    base = [*TINY, "epochs=10", "snapshot_every=2", "checkpoint_every=4"]
    run(base, out)
    full = torch.load(out / "snapshots.pt")["snapshots"]
    (out / "summary.json").unlink()  # pretend it stopped after the last checkpoint, then resume
    ckpt = torch.load(out / "checkpoint.pt", weights_only=True)
    ckpt["epoch"] = 4
    torch.save(ckpt, out / "checkpoint.pt")
    run(base, out)
    resumed = torch.load(out / "snapshots.pt")["snapshots"]
    assert [e for e, _ in resumed] == [e for e, _ in full] == [0, 2, 4, 6, 8]


@pytest.mark.parametrize("option", group_options("optimizer"))
def test_an_optimizer_option_means_what_its_yaml_says(option):
    """`optimizer=<x>` composes <x>.yaml's values: no top-level default overrides them."""
    import yaml

    declared = yaml.safe_load((CONF_DIR / "optimizer" / f"{option}.yaml").read_text())
    composed = compose([f"optimizer={option}"]).optimizer
    for key, value in declared.items():
        if key == "defaults":  # what it builds on: that option's own test checks its keys
            continue
        assert composed[key] == value, f"optimizer={option}: {key} is {composed[key]}, {option}.yaml says {value}"


@pytest.mark.parametrize("alias,option", sorted(group_aliases("optimizer").items()))
def test_a_former_optimizer_name_composes_its_option(alias, option):
    assert compose([f"optimizer={alias}"]).optimizer == compose([f"optimizer={option}"]).optimizer


def test_optimizer_options_read_as_base_and_projection():
    assert group_aliases("optimizer") == {"perpgrad": "perp_adamw", "perpsgd": "perp_sgd"}
    for option in group_options("optimizer"):
        o = compose([f"optimizer={option}"]).optimizer
        assert option == ("perp_" if o.orthogonal else "") + o.base


def test_the_default_run_is_still_fig1a():
    cfg = compose([])
    assert cfg.optimizer.orthogonal and cfg.optimizer.base == "adamw" and cfg.optimizer.lr == 0.01
    assert cfg.epochs == 300 and cfg.dataset.train_fraction == 0.4


def test_metrics_header_grows_when_a_resumed_run_logs_a_new_column(tmp_path):
    """A checkpoint saved before a metric column existed resumes: the header grows, old rows keep
    their values and leave the new column empty."""
    from grokking.checkpoint import MetricsWriter

    path = tmp_path / "metrics.csv"
    rows = [{"epoch": 0, "seed": 0, "train_acc": 0.5}, {"epoch": 10, "seed": 0, "train_acc": 0.7}]
    writer = MetricsWriter(path, rows)
    new = [{"epoch": 20, "seed": 0, "train_acc": 0.9, "sc_fraction_bfloat16": 0.25}]
    rows += new
    writer.append(new)
    df = pd.read_csv(path)
    assert list(df.columns) == ["epoch", "seed", "train_acc", "sc_fraction_bfloat16"]
    assert df.train_acc.tolist() == [0.5, 0.7, 0.9]
    assert df.sc_fraction_bfloat16.isna().tolist() == [True, True, False]
    more = [{"epoch": 30, "seed": 0, "train_acc": 1.0, "sc_fraction_bfloat16": 0.5}]
    rows += more
    writer.append(more)  # same columns: appended
    assert pd.read_csv(path).epoch.tolist() == [0, 10, 20, 30]


def test_log_resolution_logs_within_that_fraction_of_every_epoch_and_keeps_the_trajectory(run):
    _, dense_dir = run([*TINY, "epochs=400", "log_every=100", "log_resolution=0.02"])
    _, sparse_dir = run([*TINY, "epochs=400", "log_every=100"])
    dense, sparse = pd.read_csv(dense_dir / "metrics.csv"), pd.read_csv(sparse_dir / "metrics.csv")
    epochs = dense.epoch.tolist()
    assert all(b - a <= max(1, 0.02 * b) for a, b in zip(epochs, epochs[1:]))
    assert epochs[:50] == list(range(50)) and 300 in epochs and 399 in epochs
    same = dense[dense.epoch.isin(sparse.epoch)].reset_index(drop=True)
    columns = ["epoch", "train_loss", "test_acc", "weight_norm"]
    pd.testing.assert_frame_equal(same[columns], sparse[columns])  # logging more changes no value


def test_a_run_saved_before_log_resolution_existed_resumes_with_it(run, tmp_path):
    out = tmp_path / "old"
    run([*TINY, "epochs=6", "checkpoint_every=2"], out)
    import torch

    ckpt = torch.load(out / "checkpoint.pt", weights_only=True)
    del ckpt["config"]["log_resolution"]  # as a run saved before the key existed
    ckpt["epoch"] = 4
    torch.save(ckpt, out / "checkpoint.pt")
    (out / "summary.json").unlink()
    summary, _ = run([*TINY, "epochs=6", "checkpoint_every=2", "log_resolution=0.01"], out)
    assert summary["status"] == "completed"
