"""Checks of every config value that can be wrong, run before any compute is spent.

Each failure raises :class:`ConfigError` with one line naming the bad value and the valid choices.
"""

from __future__ import annotations

import re

import torch

from grokking.config import TrainConfig
from grokking.data import DATASETS, MODULAR_OPS, find_mnist_files, mnist_available_images
from grokking.losses import DTYPES, LOSSES
from grokking.native import KERNEL_CHOICES, blocker

MODELS = ("mlp", "transformer")
OPTIMIZERS = ("adamw", "sgd")
MODEL_DTYPES = ("float32", "float64")
LOGGERS = ("none", "wandb")
WANDB_MODES = ("offline", "online", "disabled")
STOP_METRICS = ("test_acc", "train_acc")


class ConfigError(ValueError):
    """A config value that cannot run; the message is one line meant for the user."""


def choice(key: str, value: object, choices: tuple[str, ...] | list[str]) -> None:
    if value not in choices:
        raise ConfigError(f"{key}={value} is not valid; choose one of: {', '.join(map(str, choices))}")


def require(ok: bool, key: str, value: object, expected: str) -> None:
    if not ok:
        raise ConfigError(f"{key}={value} is not valid; expected {expected}")


def validate(cfg: TrainConfig) -> None:
    d, m, o = cfg.dataset, cfg.model, cfg.optimizer
    choice("dataset.name", d.name, DATASETS)
    choice("model.name", m.name, MODELS)
    choice("loss.name", cfg.loss.name, tuple(LOSSES))
    choice("optimizer.base", o.base, OPTIMIZERS)
    choice("precision.loss_dtype", cfg.precision.loss_dtype, tuple(DTYPES))
    choice("precision.model_dtype", cfg.precision.model_dtype, MODEL_DTYPES)
    k = cfg.precision.backward_log2_scale
    require(0 <= k <= 64, "precision.backward_log2_scale", k, "an integer exponent in [0, 64]")
    choice("logger.name", cfg.logger.name, LOGGERS)
    if cfg.logger.name == "wandb":
        choice("logger.mode", cfg.logger.mode, WANDB_MODES)
        try:
            import wandb  # noqa: F401
        except ImportError:
            raise ConfigError("logger=wandb needs the wandb package: pip install -e '.[wandb]'") from None

    if d.name != "mnist":
        require(0 < d.train_fraction < 1, "dataset.train_fraction", d.train_fraction, "a fraction in (0, 1)")
    if d.name in MODULAR_OPS or d.name == "add_mod_binary":
        require(d.modulus >= 2, "dataset.modulus", d.modulus, "an integer >= 2")
    if d.name == "add_mod_binary":
        choice("dataset.code", d.code, ("random", "binary"))
        require(2**d.code_bits >= d.modulus, "dataset.code_bits", d.code_bits, f"2^bits >= modulus {d.modulus}")
    if d.name == "sparse_parity":
        require(d.parity_bits >= 1, "dataset.parity_bits", d.parity_bits, "an integer >= 1")
        require(d.noise_bits >= 0, "dataset.noise_bits", d.noise_bits, "an integer >= 0")
        n_bits = d.noise_bits + d.parity_bits
        require(4 <= d.n_samples <= 2**n_bits, "dataset.n_samples", d.n_samples, f"between 4 and 2^{n_bits}")
    if d.name == "mnist":
        if d.mnist_dir is not None and find_mnist_files(d.mnist_dir) is None:
            raise ConfigError(
                f"dataset.mnist_dir={d.mnist_dir} holds no MNIST IDX files; expected "
                "train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte "
                "(optionally .gz)"
            )
        available = mnist_available_images(d.mnist_dir)
        limit = available - 1 if d.mnist_dir is None else available
        require(1 <= d.n_train <= limit, "dataset.n_train", d.n_train, f"between 1 and {limit} (images available)")

    require(m.init_scale > 0, "model.init_scale", m.init_scale, "a positive number")
    if m.name == "mlp":
        require(m.depth >= 1, "model.depth", m.depth, "an integer >= 1")
        require(m.width >= 1, "model.width", m.width, "an integer >= 1")
    else:
        if d.name not in MODULAR_OPS:
            raise ConfigError(
                f"model=transformer needs token inputs; dataset={d.name} is not valid with it; "
                f"choose one of: {', '.join(MODULAR_OPS)}"
            )
        require(m.d_model % m.n_heads == 0, "model.n_heads", m.n_heads, f"a divisor of d_model={m.d_model}")

    require(o.lr > 0, "optimizer.lr", o.lr, "a positive number")
    require(len(o.betas) == 2 and all(0 <= b < 1 for b in o.betas), "optimizer.betas", o.betas, "two numbers in [0, 1)")
    require(o.eps >= 0, "optimizer.eps", o.eps, "a number >= 0")
    require(o.weight_decay >= 0, "optimizer.weight_decay", o.weight_decay, "a number >= 0")
    require(0 <= o.momentum < 1, "optimizer.momentum", o.momentum, "a number in [0, 1)")

    loss = cfg.loss
    require(loss.temperature > 0, "loss.temperature", loss.temperature, "a positive number")
    require(0 <= loss.label_smoothing < 1, "loss.label_smoothing", loss.label_smoothing, "a number in [0, 1)")
    if loss.label_smoothing and loss.name != "softmax":
        raise ConfigError(f"loss.label_smoothing={loss.label_smoothing} needs loss=softmax, not loss={loss.name}")
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
