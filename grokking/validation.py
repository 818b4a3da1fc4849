"""Checks of every config value that can be wrong, run before any compute is spent.

Each failure raises :class:`ConfigError` with one line naming the bad value and the valid choices.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import fields, is_dataclass

import torch

from grokking.config import OptimizerConfig, TrainConfig
from grokking.data import DATASETS
from grokking.errors import ConfigError, choice, require
from grokking.losses import DTYPES, LOSSES
from grokking.models import MODELS
from grokking.native import KERNEL_CHOICES, blocker
from grokking.optim import OPTIMIZERS
from grokking.tracking import TRACKERS

__all__ = ["ConfigError", "validate"]

MODEL_DTYPES = ("float32", "float64")
TEMPERATURE_RANGE = (1e-3, 1e3)  # beyond these, logits / T overflow or every logit rounds to 0
INIT_SCALE_RANGE = (1e-4, 1e4)  # beyond these, the initial weights underflow or the logits overflow
MAX_EPS = 1.0  # Adam's eps above this swamps every gradient: the model never moves
MAX_SEED = 2**63 - 1
STOP_METRICS = ("test_acc", "train_acc")
HYPER_KEYS = ("lr", "betas", "eps", "weight_decay", "momentum")  # what an optimizer.base may read


def check_finite(node: object, prefix: str = "") -> None:
    """Every float of the config, at any depth, is finite (inf or nan makes a run meaningless)."""
    for f in fields(node):
        value, key = getattr(node, f.name), prefix + f.name
        if is_dataclass(value):
            check_finite(value, key + ".")
        values = value if isinstance(value, list) else [value]
        if any(isinstance(v, float) and not math.isfinite(v) for v in values):
            raise ConfigError(f"{key}={value} is not valid; expected a finite number")


def example_counts(cfg: TrainConfig) -> tuple[int, int, str] | None:
    """(training examples, test examples, what the total is) of the configured dataset, or None
    where its registry entry cannot tell before building it."""
    examples = DATASETS[cfg.dataset.name].examples
    return None if examples is None else examples(cfg.dataset)


def validate(cfg: TrainConfig) -> None:
    d, m, o = cfg.dataset, cfg.model, cfg.optimizer
    check_finite(cfg)
    dataset, model = DATASETS[d.name], MODELS[m.name]  # unknown names fail here, with the choices
    loss_entry, base = LOSSES[cfg.loss.name], OPTIMIZERS[o.base]
    choice("precision.loss_dtype", cfg.precision.loss_dtype, tuple(DTYPES))
    choice("precision.model_dtype", cfg.precision.model_dtype, MODEL_DTYPES)
    k = cfg.precision.backward_log2_scale
    require(0 <= k <= 64, "precision.backward_log2_scale", k, "an integer exponent in [0, 64]")
    tracker = TRACKERS[cfg.logger.name]
    if tracker.check is not None:
        tracker.check(cfg.logger)
    if tracker.package is not None:
        try:
            __import__(tracker.package)
        except ImportError:
            raise ConfigError(
                f"logger={cfg.logger.name} needs the {tracker.package} package: pip install -e '.[{tracker.package}]'"
            ) from None

    require(0 <= d.seed <= MAX_SEED, "dataset.seed", d.seed, f"an integer in [0, {MAX_SEED}]")
    require(0 <= cfg.seed <= MAX_SEED, "seed", cfg.seed, f"an integer in [0, {MAX_SEED}]")
    if cfg.seeds is not None:
        require(all(0 <= s <= MAX_SEED for s in cfg.seeds), "seeds", cfg.seeds, f"integers in [0, {MAX_SEED}]")
        if cfg.seed != 0:  # the default: seeds replace it
            raise ConfigError(
                f"seed={cfg.seed} has no effect when seeds={cfg.seeds} is given; put it in seeds or leave seed out"
            )
    if dataset.fraction:
        require(0 < d.train_fraction < 1, "dataset.train_fraction", d.train_fraction, "a fraction in (0, 1)")
    elif d.train_fraction != 0.4:  # the schema's default; the dataset's size key sets its split
        raise ConfigError(
            f"dataset.train_fraction={d.train_fraction} has no effect with dataset={d.name}; "
            f"set {dataset.size_key} instead"
        )
    if dataset.check is not None:
        dataset.check(d)
    if dataset.fraction and (counts := example_counts(cfg)) is not None:
        n_train, n_test, what = counts
        if n_train < 1 or n_test < 1:
            side = "training" if n_train < 1 else "test"
            raise ConfigError(
                f"dataset.train_fraction={d.train_fraction} leaves the {side} set empty ({n_train} of {what} for "
                "training); expected a fraction that keeps at least one example on each side"
            )

    low, high = INIT_SCALE_RANGE
    require(low <= m.init_scale <= high, "model.init_scale", m.init_scale, f"a number in [{low:g}, {high:g}]")
    if model.tokens and not dataset.tokens:
        raise ConfigError(
            f"model={m.name} needs token inputs; dataset={d.name} is not valid with it; "
            f"choose one of: {', '.join(DATASETS.names(lambda e: e.tokens))}"
        )
    if model.check is not None:
        model.check(m)

    require(o.lr > 0, "optimizer.lr", o.lr, "a positive number")
    require(len(o.betas) == 2 and all(0 <= b < 1 for b in o.betas), "optimizer.betas", o.betas, "two numbers in [0, 1)")
    require(0 <= o.eps <= MAX_EPS, "optimizer.eps", o.eps, f"a number in [0, {MAX_EPS:g}]")
    require(o.weight_decay >= 0, "optimizer.weight_decay", o.weight_decay, "a number >= 0")
    require(0 <= o.momentum < 1, "optimizer.momentum", o.momentum, "a number in [0, 1)")
    defaults = OptimizerConfig(base=o.base)
    for key in HYPER_KEYS:
        if key not in base.keys and getattr(o, key) != getattr(defaults, key):
            users = ", ".join(OPTIMIZERS.names(lambda e, key=key: key in e.keys))
            raise ConfigError(
                f"optimizer.{key}={getattr(o, key)} has no effect with optimizer.base={o.base}; "
                f"it is read by optimizer.base={users}"
            )

    loss = cfg.loss
    low, high = TEMPERATURE_RANGE
    require(low <= loss.temperature <= high, "loss.temperature", loss.temperature, f"a number in [{low:g}, {high:g}]")
    require(0 <= loss.label_smoothing < 1, "loss.label_smoothing", loss.label_smoothing, "a number in [0, 1)")
    if loss.label_smoothing and not loss_entry.smoothing:
        takes = " or ".join(f"loss={n}" for n in LOSSES.names(lambda e: e.smoothing))
        raise ConfigError(f"loss.label_smoothing={loss.label_smoothing} needs {takes}, not loss={loss.name}")
    require(loss.logit_norm_penalty >= 0, "loss.logit_norm_penalty", loss.logit_norm_penalty, "a number >= 0")
    if cfg.sc_intervention_epoch is not None:
        require(
            cfg.sc_intervention_epoch >= 0, "sc_intervention_epoch", cfg.sc_intervention_epoch, "an epoch >= 0 or null"
        )
    require(cfg.snapshot_every >= 0, "snapshot_every", cfg.snapshot_every, "an integer >= 0 (0 = none)")

    stop = cfg.stop_when
    if stop.metric is not None:
        choice("stop_when.metric", stop.metric, [*STOP_METRICS, "null"])
    require(0 < stop.threshold <= 1, "stop_when.threshold", stop.threshold, "an accuracy in (0, 1]")
    require(stop.patience >= 1, "stop_when.patience", stop.patience, "an integer >= 1 (logged epochs)")

    require(cfg.epochs > 0, "epochs", cfg.epochs, "a positive integer")
    require(cfg.log_every > 0, "log_every", cfg.log_every, "a positive integer")
    require(0 <= cfg.log_resolution < 1, "log_resolution", cfg.log_resolution, "a fraction in [0, 1) (0 = off)")
    require(
        cfg.checkpoint_every >= 0, "checkpoint_every", cfg.checkpoint_every, "an integer >= 0 (0 = only at the end)"
    )
    if cfg.seeds is not None:
        require(len(cfg.seeds) > 0 and len(set(cfg.seeds)) == len(cfg.seeds), "seeds", cfg.seeds, "distinct integers")
    require(
        re.fullmatch(r"auto|cpu|cuda(:\d+)?", cfg.device) is not None, "device", cfg.device, "auto, cpu, cuda or cuda:N"
    )
    if cfg.device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device={cfg.device} is not available on this machine; choose one of: auto, cpu")
    choice("cpu_kernel", cfg.cpu_kernel, KERNEL_CHOICES)
    if cfg.cpu_kernel == "native" and (why := blocker(cfg)) is not None:
        raise ConfigError(f"cpu_kernel=native cannot run {why}; choose one of: cpu_kernel=auto, cpu_kernel=torch")
    if cfg.cuda_graph and (cfg.device == "cpu" or not torch.cuda.is_available()):
        where = "device=cpu" if cfg.device == "cpu" else "this machine has no CUDA device"
        raise ConfigError(
            f"cuda_graph=true needs a CUDA device ({where}); choose one of: cuda_graph=false, device=cuda"
        )
    check_memory(cfg)


def memory_estimate(cfg: TrainConfig) -> int | None:
    """Bytes a run needs at its peak, roughly (within a small factor, never far below): the dataset
    as built, every replica's activations and gradients over the training set, the test set's
    forward pass and the diagnostics, parameters and optimizer state. None where the dataset's or
    the model's registry entry gives no footprint."""
    dataset, model = DATASETS[cfg.dataset.name], MODELS[cfg.model.name]
    counts = example_counts(cfg)
    if counts is None or dataset.footprint is None or model.footprint is None:
        return None
    replicas = len(cfg.seeds) if cfg.seeds is not None else 1
    b = 8 if cfg.precision.model_dtype == "float64" else 4
    n_train, n_test, _ = counts
    inputs, classes, data = dataset.footprint(cfg.dataset, n_train + n_test, b)
    params, per_sample = model.footprint(cfg.model, inputs, classes)
    return int(data + replicas * (b * (n_train * per_sample + n_test * (per_sample // 2) + 6 * params)))


def available_memory(device: str) -> int | None:
    """Bytes free for a run on ``device`` (None where unknown)."""
    if device.startswith("cuda") or (device == "auto" and torch.cuda.is_available()):
        try:
            return torch.cuda.mem_get_info(torch.device(device if device != "auto" else "cuda"))[0]
        except (RuntimeError, AssertionError):
            return None
    try:
        with open("/proc/meminfo") as f:
            info = dict(line.split(":", 1) for line in f)
        return int(info["MemAvailable"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):
        try:
            return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError):
            return None


def check_memory(cfg: TrainConfig) -> None:
    need, free = memory_estimate(cfg), available_memory(cfg.device)
    if need is None or free is None or need <= free:
        return
    n_train, n_test, what = example_counts(cfg)
    key = DATASETS[cfg.dataset.name].size_key
    raise ConfigError(
        f"{key}={getattr(cfg.dataset, key.split('.')[1])} needs about {need / 2**30:.1f} GiB of memory "
        f"({n_train + n_test} examples, {what}), more than the {free / 2**30:.1f} GiB free on this machine; "
        "choose a smaller dataset or model"
    )
