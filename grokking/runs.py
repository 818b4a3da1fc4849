"""Load a finished run back: its config, data, model (with trained weights) and metrics."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import torch
from omegaconf import OmegaConf

from grokking.checkpoint import CHECKPOINT, CONFIG, METRICS, load_checkpoint
from grokking.config import TrainConfig, with_old_values
from grokking.data import Dataset, build_dataset
from grokking.fused import build_loss
from grokking.losses import DTYPES, LossFn
from grokking.models import build_model


def load_config(run_dir: str | Path) -> TrainConfig:
    """The run's saved config; a key it lacks (saved before the key existed) takes its spec's old
    value, the one the run was trained with."""
    saved = OmegaConf.to_container(OmegaConf.load(Path(run_dir) / CONFIG), resolve=True)
    merged = OmegaConf.merge(OmegaConf.structured(TrainConfig), with_old_values(saved))
    return OmegaConf.to_object(merged)


def load_metrics(run_dir: str | Path) -> pd.DataFrame:
    return pd.read_csv(Path(run_dir) / METRICS)


def load_run(run_dir: str | Path) -> tuple[TrainConfig, Dataset, torch.nn.Module]:
    """The run's config, its data split and its model with the final checkpoint's weights (CPU)."""
    cfg = load_config(run_dir)
    dtype = DTYPES[cfg.precision.model_dtype]
    data = build_dataset(cfg.dataset).to(torch.device("cpu"), dtype)
    seeds = list(cfg.seeds) if cfg.seeds is not None else [cfg.seed]
    model = build_model(cfg.model, data, seeds).to(dtype)
    model.load_state_dict(load_checkpoint(Path(run_dir) / CHECKPOINT)["model"])
    return cfg, data, model


def run_loss(cfg: TrainConfig) -> tuple[LossFn, torch.dtype]:
    """The run's per-sample loss and loss dtype."""
    return build_loss(cfg.loss), DTYPES[cfg.precision.loss_dtype]
