"""Checks of every config value that can be wrong, run before any compute is spent.

Each failure raises :class:`ConfigError` with one line naming the bad value and the valid choices.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import fields, is_dataclass

import torch

from grokking.config import TrainConfig
from grokking.data import (
    DATASETS,
    MODULAR_OPS,
    MnistFileError,
    find_mnist_files,
    mnist_arrays,
    mnist_available_images,
    train_size,
)
from grokking.losses import DTYPES, LOSSES
from grokking.native import KERNEL_CHOICES, blocker

MODELS = ("mlp", "transformer")
OPTIMIZERS = ("adamw", "sgd")
MODEL_DTYPES = ("float32", "float64")
LOGGERS = ("none", "wandb")
WANDB_MODES = ("offline", "online", "disabled")
TEMPERATURE_RANGE = (1e-3, 1e3)  # beyond these, logits / T overflow or every logit rounds to 0
INIT_SCALE_RANGE = (1e-4, 1e4)  # beyond these, the initial weights underflow or the logits overflow
MAX_EPS = 1.0  # Adam's eps above this swamps every gradient: the model never moves
MAX_RANDOM_CODE_BITS = 24  # random binary codes draw from all 2^bits codes at once
MAX_SEED = 2**63 - 1
STOP_METRICS = ("test_acc", "train_acc")


class ConfigError(ValueError):
    """A config value that cannot run; the message is one line meant for the user."""


def choice(key: str, value: object, choices: tuple[str, ...] | list[str]) -> None:
    if value not in choices:
        raise ConfigError(f"{key}={value} is not valid; choose one of: {', '.join(map(str, choices))}")


def require(ok: bool, key: str, value: object, expected: str) -> None:
    if not ok:
        raise ConfigError(f"{key}={value} is not valid; expected {expected}")


def check_finite(node: object, prefix: str = "") -> None:
    """Every float of the config, at any depth, is finite (inf or nan makes a run meaningless)."""
    for f in fields(node):
        value, key = getattr(node, f.name), prefix + f.name
        if is_dataclass(value):
            check_finite(value, key + ".")
        values = value if isinstance(value, list) else [value]
        if any(isinstance(v, float) and not math.isfinite(v) for v in values):
            raise ConfigError(f"{key}={value} is not valid; expected a finite number")


def example_counts(cfg: TrainConfig) -> tuple[int, int, str]:
    """(training examples, test examples, what the total is) of the configured dataset."""
    d = cfg.dataset
    if d.name == "mnist":
        if d.mnist_dir is None:
            return d.n_train, mnist_available_images(None) - d.n_train, "images"
        return d.n_train, len(mnist_arrays(d.mnist_dir)[3]), "images"
    n = d.n_samples if d.name == "sparse_parity" else d.modulus**2
    n_train = train_size(n, d.train_fraction)
    what = f"dataset.n_samples={n}" if d.name == "sparse_parity" else f"{n} pairs with dataset.modulus={d.modulus}"
    return n_train, n - n_train, what


def validate(cfg: TrainConfig) -> None:
    d, m, o = cfg.dataset, cfg.model, cfg.optimizer
    check_finite(cfg)
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

    require(0 <= d.seed <= MAX_SEED, "dataset.seed", d.seed, f"an integer in [0, {MAX_SEED}]")
    require(0 <= cfg.seed <= MAX_SEED, "seed", cfg.seed, f"an integer in [0, {MAX_SEED}]")
    if cfg.seeds is not None:
        require(all(0 <= s <= MAX_SEED for s in cfg.seeds), "seeds", cfg.seeds, f"integers in [0, {MAX_SEED}]")
        if cfg.seed != 0:  # the default: seeds replace it
            raise ConfigError(
                f"seed={cfg.seed} has no effect when seeds={cfg.seeds} is given; put it in seeds or leave seed out"
            )
    if d.name != "mnist":
        require(0 < d.train_fraction < 1, "dataset.train_fraction", d.train_fraction, "a fraction in (0, 1)")
    elif d.train_fraction != 0.4:  # the schema's default; MNIST's training set is dataset.n_train images
        raise ConfigError(
            f"dataset.train_fraction={d.train_fraction} has no effect with dataset=mnist; set dataset.n_train (images) instead"
        )
    if d.name in MODULAR_OPS or d.name == "add_mod_binary":
        require(d.modulus >= 2, "dataset.modulus", d.modulus, "an integer >= 2")
    if d.name == "add_mod_binary":
        choice("dataset.code", d.code, ("random", "binary"))
        most = MAX_RANDOM_CODE_BITS if d.code == "random" else 62
        least = max(1, math.ceil(math.log2(d.modulus)))
        require(
            least <= d.code_bits <= most,
            "dataset.code_bits",
            d.code_bits,
            f"an integer in [{least}, {most}] (2^bits >= modulus {d.modulus}; dataset.code={d.code})",
        )
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
        try:
            available = mnist_available_images(d.mnist_dir)
        except MnistFileError as e:
            raise ConfigError(f"dataset.mnist_dir={d.mnist_dir}: {e}") from None
        limit = available - 1 if d.mnist_dir is None else available
        require(1 <= d.n_train <= limit, "dataset.n_train", d.n_train, f"between 1 and {limit} (images available)")
    else:
        n_train, n_test, what = example_counts(cfg)
        if n_train < 1 or n_test < 1:
            side = "training" if n_train < 1 else "test"
            raise ConfigError(
                f"dataset.train_fraction={d.train_fraction} leaves the {side} set empty ({n_train} of {what} for "
                "training); expected a fraction that keeps at least one example on each side"
            )

    low, high = INIT_SCALE_RANGE
    require(low <= m.init_scale <= high, "model.init_scale", m.init_scale, f"a number in [{low:g}, {high:g}]")
    if m.name == "mlp":
        require(m.depth >= 1, "model.depth", m.depth, "an integer >= 1")
        require(m.width >= 1, "model.width", m.width, "an integer >= 1")
    else:
        if d.name not in MODULAR_OPS:
            raise ConfigError(
                f"model=transformer needs token inputs; dataset={d.name} is not valid with it; "
                f"choose one of: {', '.join(MODULAR_OPS)}"
            )
        require(m.d_model >= 1, "model.d_model", m.d_model, "an integer >= 1")
        require(m.d_mlp >= 1, "model.d_mlp", m.d_mlp, "an integer >= 1")
        require(
            m.n_heads >= 1 and m.d_model % m.n_heads == 0,
            "model.n_heads",
            m.n_heads,
            f"a positive divisor of d_model={m.d_model}",
        )

    require(o.lr > 0, "optimizer.lr", o.lr, "a positive number")
    require(len(o.betas) == 2 and all(0 <= b < 1 for b in o.betas), "optimizer.betas", o.betas, "two numbers in [0, 1)")
    require(0 <= o.eps <= MAX_EPS, "optimizer.eps", o.eps, f"a number in [0, {MAX_EPS:g}]")
    require(o.weight_decay >= 0, "optimizer.weight_decay", o.weight_decay, "a number >= 0")
    require(0 <= o.momentum < 1, "optimizer.momentum", o.momentum, "a number in [0, 1)")
    if o.momentum and o.base != "sgd":
        raise ConfigError(
            f"optimizer.momentum={o.momentum} has no effect with optimizer.base={o.base}; it is SGD's (optimizer.base=sgd)"
        )

    loss = cfg.loss
    low, high = TEMPERATURE_RANGE
    require(low <= loss.temperature <= high, "loss.temperature", loss.temperature, f"a number in [{low:g}, {high:g}]")
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
    check_memory(cfg)


def memory_estimate(cfg: TrainConfig) -> int:
    """Bytes a run needs at its peak, roughly (within a small factor, never far below): the dataset
    as built, every replica's activations and gradients over the training set, the test set's
    forward pass and the diagnostics, parameters and optimizer state."""
    d, m = cfg.dataset, cfg.model
    replicas = len(cfg.seeds) if cfg.seeds is not None else 1
    b = 8 if cfg.precision.model_dtype == "float64" else 4
    n_train, n_test, _ = example_counts(cfg)
    n = n_train + n_test
    if d.name == "mnist":
        classes, inputs, data = 10, 784, n * (784 * (4 + b) + 16)
    elif d.name == "sparse_parity":
        n_bits = d.noise_bits + d.parity_bits
        classes, inputs, data = 2, n_bits, n * (n_bits * (1 + 4 + b) + 200)  # + the set of drawn vectors
    elif d.name == "add_mod_binary":
        classes, inputs = d.modulus, 2 * d.code_bits
        data = n * (inputs * (4 + b) + 48) + (2**d.code_bits * 8 if d.code == "random" else 0)
    else:
        classes, inputs, data = d.modulus, 2 * d.modulus, n * 64  # pairs, labels, split, permutation
    if m.name == "mlp":
        widths = [m.width] * m.depth
        params = inputs * m.width + m.width * m.width * (m.depth - 1) + m.width * classes
        per_sample = 3 * sum(widths) + 6 * classes  # activations, their gradients; logits in 3 dtypes
    else:
        params = (classes + 3) * m.d_model + 4 * m.d_model * m.d_model + 2 * m.d_model * m.d_mlp + m.d_model * classes
        per_sample = 3 * (8 * m.d_model + 3 * m.d_mlp + 9 * m.n_heads) + 6 * classes
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
    if free is None or need <= free:
        return
    n_train, n_test, what = example_counts(cfg)
    d = cfg.dataset
    key = {"mnist": f"dataset.n_train={d.n_train}", "sparse_parity": f"dataset.n_samples={d.n_samples}"}.get(
        d.name, f"dataset.modulus={d.modulus}"
    )
    raise ConfigError(
        f"{key} needs about {need / 2**30:.1f} GiB of memory ({n_train + n_test} examples, {what}), more than the "
        f"{free / 2**30:.1f} GiB free on this machine; choose a smaller dataset or model"
    )
