import pytest
import torch

from grokking.config import DatasetConfig
from grokking.data import binary_codes, build_dataset


@pytest.mark.parametrize("fraction,n_train", [(0.4, 5107), (0.6, 7661), (0.7, 8938)])
def test_modular_split_sizes(fraction, n_train):
    data = build_dataset(DatasetConfig(name="add_mod", train_fraction=fraction))
    assert len(data.train_y) == n_train
    assert len(data.train_y) + len(data.test_y) == 113**2


@pytest.mark.parametrize(
    "name,op", [("add_mod", lambda a, b: a + b), ("mul_mod", lambda a, b: a * b), ("sub_mod", lambda a, b: a - b)]
)
def test_modular_labels(name, op):
    data = build_dataset(DatasetConfig(name=name))
    for x, y in ((data.train_x, data.train_y), (data.test_x, data.test_y)):
        assert torch.equal(y, op(x[:, 0], x[:, 1]) % 113)
        assert x.min() >= 0 and x.max() < 113


def test_split_is_disjoint_complete_and_seeded():
    a = build_dataset(DatasetConfig(name="add_mod", seed=0))
    b = build_dataset(DatasetConfig(name="add_mod", seed=0))
    c = build_dataset(DatasetConfig(name="add_mod", seed=1))
    assert set(a.train_idx.tolist()).isdisjoint(a.test_idx.tolist())
    assert sorted(a.train_idx.tolist() + a.test_idx.tolist()) == list(range(113**2))
    assert torch.equal(a.train_idx, b.train_idx) and not torch.equal(a.train_idx, c.train_idx)
    pairs = {tuple(p) for p in a.train_x.tolist()}
    assert pairs.isdisjoint(tuple(p) for p in a.test_x.tolist())


def test_binary_codes_are_distinct_and_of_the_given_width():
    codes = binary_codes(113, 14, seed=0)
    assert codes.shape == (113, 14)
    assert len({tuple(c) for c in codes.tolist()}) == 113
    data = build_dataset(DatasetConfig(name="add_mod_binary"))
    assert data.train_x.shape == (5107, 28) and data.vocab_size is None


def test_sparse_parity_labels_and_distinct_vectors():
    data = build_dataset(DatasetConfig(name="sparse_parity", train_fraction=0.5))
    x = torch.cat([data.train_x, data.test_x])
    y = torch.cat([data.train_y, data.test_y])
    assert x.shape == (2000, 43) and len(data.train_y) == 1000
    assert len({tuple(v) for v in x.int().tolist()}) == 2000
    assert torch.equal(y, x[:, :3].sum(1).long() % 2)


def test_mnist_subset_shapes_and_labels():
    data = build_dataset(DatasetConfig(name="mnist"))
    assert data.train_x.shape == (200, 784) and data.test_x.shape == (4800, 784)
    assert data.train_x.min() >= 0 and data.train_x.max() <= 1
    assert set(data.train_y.tolist()) <= set(range(10)) and data.num_classes == 10
    assert set(data.train_idx.tolist()).isdisjoint(data.test_idx.tolist())


def test_base2_codes_are_the_digits_of_the_integer():
    codes = binary_codes(113, 7, seed=0, code="binary")
    assert codes[5].tolist() == [0, 0, 0, 0, 1, 0, 1]
    assert codes[112].tolist() == [1, 1, 1, 0, 0, 0, 0]
    data = build_dataset(DatasetConfig(name="add_mod_binary", code="binary", code_bits=7))
    assert data.train_x.shape == (5107, 14)
