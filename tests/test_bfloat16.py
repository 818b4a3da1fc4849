"""bfloat16 as the loss dtype: it trains through autograd, logs its own SC column, and the Fig. 2-style
run set (``scripts/reproduce.py fig2_bf16``) composes and trains."""

import importlib.util
import json
from pathlib import Path

import pandas as pd
import pytest
import torch

from grokking.cli import compose
from grokking.metrics import output_diagnostics
from grokking.train import to_config
from grokking.validation import ConfigError, validate

ROOT = Path(__file__).resolve().parent.parent
TINY = ["dataset.modulus=23", "model.width=32", "epochs=30", "log_every=10", "checkpoint_every=0"]


def reproduce_runs():
    spec = importlib.util.spec_from_file_location("reproduce", ROOT / "scripts" / "reproduce.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.RUNS


def test_sc_fraction_bfloat16_flags_the_rows_collapsed_in_bfloat16_only():
    # gap 6: e^-6 = 2.5e-3 is below half an ulp of 1 in bfloat16 (2^-8) but not in float16 (2^-11)
    logits = torch.tensor([[[0.0, 3.0], [0.0, 6.0], [0.0, 6.0], [0.0, 12.0]]], dtype=torch.float32)
    y = torch.tensor([1, 1, 1, 1])
    out = output_diagnostics(logits, y, torch.ones(1, 4), "bfloat16")
    assert out["sc_fraction_bfloat16"].item() == 0.75
    assert out["sc_fraction"].item() == 0.75  # the run's own loss dtype
    assert out["sc_fraction_float16"].item() == 0.25
    assert out["sc_fraction_float32"].item() == 0.0


def test_the_run_set_composes_with_distinct_split_and_init_seeds():
    runs = reproduce_runs()["fig2_bf16"]
    assert list(runs) == ["seed0", "seed1", "seed2"]
    for seed, overrides in enumerate(runs.values()):
        cfg = to_config(compose(overrides))[0]
        validate(cfg)
        assert (cfg.seed, cfg.dataset.seed) == (seed, seed)
        assert cfg.precision.loss_dtype == "bfloat16" and cfg.precision.model_dtype == "float32"
        assert (cfg.dataset.train_fraction, cfg.epochs, cfg.optimizer.base, cfg.loss.name) == (
            0.7, 20000, "adamw", "softmax",
        )  # fmt: skip


def test_the_run_set_trains_through_autograd_with_a_bfloat16_loss(run):
    summary, out = run([*reproduce_runs()["fig2_bf16"]["seed1"], *TINY])
    assert summary["status"] == "completed" and summary["training_step"] == "torch"
    df = pd.read_csv(out / "metrics.csv")
    assert (df.sc_fraction == df.sc_fraction_bfloat16).all()
    assert (df.sc_fraction_bfloat16 >= df.sc_fraction_float16).all()  # fewer significand bits collapse first
    losses = torch.tensor(df.train_loss.values)
    assert torch.equal(losses.to(torch.bfloat16).double(), losses)  # the loss is a bfloat16 value
    assert df.train_loss.iloc[-1] < df.train_loss.iloc[0]
    saved = json.loads((out / "summary.json").read_text())
    assert saved["per_seed"]["1"]["final"]["sc_fraction_bfloat16"] >= 0


def test_cpu_kernel_native_refuses_bfloat16_in_one_line():
    cfg = to_config(compose(["precision=bfloat16", "cpu_kernel=native"]))[0]
    with pytest.raises(
        ConfigError, match=r"^cpu_kernel=native cannot run precision.loss_dtype=bfloat16 .*cpu_kernel=auto"
    ):
        validate(cfg)
