"""Checks of every config value that can be wrong, run before any compute is spent.

Each failure raises :class:`ConfigError` with one line naming the bad value and the valid choices.
"""

from __future__ import annotations

import dataclasses
import os
import re

import torch

from grokking.config import GROUPS, PRECISION, TrainConfig, settings
from grokking.data import DATASETS, uses_fraction
from grokking.errors import ConfigError, choice, require
from grokking.models import MODELS
from grokking.native import unsupported
from grokking.optim import OPTIMIZERS
from grokking.tracking import TRACKERS

__all__ = ["ConfigError", "validate"]

STOP_METRICS = ("test_acc", "train_acc")


def example_counts(cfg: TrainConfig) -> tuple[int, int, str] | None:
    """(training examples, test examples, what the total is) of the configured dataset, or None
    where its registry entry cannot tell before building it."""
    examples = DATASETS[cfg.dataset.name].examples
    return None if examples is None else examples(cfg.dataset)


def check_specs(cfg: TrainConfig) -> None:
    """Every value against its spec: each group's chosen option reads its parameters in range and
    leaves the others at their defaults (:meth:`grokking.registry.Registry.check`); precision and
    the top-level settings are in range."""
    for group, (registry, _) in GROUPS.items():
        registry.check(getattr(cfg, group))
    for p in PRECISION:
        p.check(f"precision.{p.name}", getattr(cfg.precision, p.name))
    for p in settings():
        p.check(p.name, getattr(cfg, p.name))


def validate(cfg: TrainConfig) -> None:
    d, m = cfg.dataset, cfg.model
    dataset, model = DATASETS[d.name], MODELS[m.name]  # unknown names fail here, with the choices
    for registry, _ in GROUPS.values():
        registry[getattr(getattr(cfg, registry.group), registry.selector)]
    check_specs(cfg)
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

    if cfg.seeds is not None and cfg.seed != 0:  # the default: seeds replace it
        raise ConfigError(
            f"seed={cfg.seed} has no effect when seeds={cfg.seeds} is given; put it in seeds or leave seed out"
        )
    if dataset.check is not None:
        dataset.check(d)
    if uses_fraction(d.name) and (counts := example_counts(cfg)) is not None:
        n_train, n_test, what = counts
        if n_train < 1 or n_test < 1:
            side = "training" if n_train < 1 else "test"
            raise ConfigError(
                f"dataset.train_fraction={d.train_fraction} leaves the {side} set empty ({n_train} of {what} for "
                "training); expected a fraction that keeps at least one example on each side"
            )

    if model.tokens and not dataset.tokens:
        raise ConfigError(
            f"model={m.name} needs token inputs; dataset={d.name} is not valid with it; "
            f"choose one of: {', '.join(DATASETS.names(lambda e: e.tokens))}"
        )
    if model.check is not None:
        model.check(m)
    if (optimizer := OPTIMIZERS[cfg.optimizer.base]).check is not None:
        optimizer.check(cfg.optimizer)

    if cfg.sc_intervention_epoch is not None and cfg.sc_intervention_epoch >= cfg.epochs:
        raise ConfigError(
            f"sc_intervention_epoch={cfg.sc_intervention_epoch} is never reached in epochs={cfg.epochs}; "
            f"expected an epoch in [0, {cfg.epochs - 1}] or null"
        )

    stop = cfg.stop_when
    if stop.metric is not None:
        choice("stop_when.metric", stop.metric, [*STOP_METRICS, "null"])
    require(0 < stop.threshold <= 1, "stop_when.threshold", stop.threshold, "an accuracy in (0, 1]")
    require(stop.patience >= 1, "stop_when.patience", stop.patience, "an integer >= 1 (logged epochs)")

    if cfg.seeds is not None:
        require(len(cfg.seeds) > 0 and len(set(cfg.seeds)) == len(cfg.seeds), "seeds", cfg.seeds, "distinct integers")
    require(
        re.fullmatch(r"auto|cpu|cuda(:\d+)?", cfg.device) is not None, "device", cfg.device, "auto, cpu, cuda or cuda:N"
    )
    if cfg.device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device={cfg.device} is not available on this machine; choose one of: auto, cpu")
    if cfg.cpu_kernel == "native" and (why := unsupported(cfg)) is not None:
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
    blame = f"{key}={getattr(cfg.dataset, key.split('.')[1])}"
    defaults = {p.name: p.default for p in MODELS.params.get(cfg.model.name, ())}
    changed = {k: v for k, v in defaults.items() if getattr(cfg.model, k, v) != v}
    at_defaults = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, **defaults))
    if changed and (memory_estimate(at_defaults) or 0) <= free:  # the model's own settings make it too large
        blame = " ".join(f"model.{k}={getattr(cfg.model, k)}" for k in changed)
    raise ConfigError(
        f"{blame} needs about {need / 2**30:.1f} GiB of memory "
        f"({n_train + n_test} examples, {what}), more than the {free / 2**30:.1f} GiB free on this machine; "
        "choose a smaller dataset or model"
    )
