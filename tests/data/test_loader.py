"""TensorDataset and DataLoader: batching, seeded shuffling per epoch, drop_last, resuming."""

from __future__ import annotations

import numpy as np
import pytest

from cnnlab.data.loader import DataLoader, Dataset, TensorDataset
from cnnlab.data.transforms import Compose, RandomShift, ToFloat


def _dataset(n=10):
    x = np.arange(n * 3, dtype=np.float32).reshape(n, 3)
    y = np.arange(n, dtype=np.int64)
    return TensorDataset(x, y)


class ListDataset:
    """A plain Python dataset (not a TensorDataset): items are (list, int) pairs."""

    def __init__(self, n, shape=(2,)):
        self.n, self.shape = n, shape

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        if not 0 <= i < self.n:
            raise IndexError(i)
        return np.full(self.shape, i, dtype=np.uint8), i


def _labels(loader):
    return [y.tolist() for _, y in loader]


# ----------------------------------------------------------------------------------------------
# TensorDataset


def test_tensor_dataset_items():
    ds = _dataset(4)
    assert len(ds) == 4 and isinstance(ds, Dataset)
    x, y = ds[2]
    np.testing.assert_array_equal(x, [6, 7, 8])
    assert y == 2
    assert len(TensorDataset(np.zeros(3))[0]) == 1


def test_tensor_dataset_errors():
    with pytest.raises(ValueError, match="needs at least one array"):
        TensorDataset()
    with pytest.raises(ValueError, match=r"same first dimension, got lengths \[3, 4\]"):
        TensorDataset(np.zeros(3), np.zeros(4))
    with pytest.raises(ValueError, match="array 1 must be at least 1-D"):
        TensorDataset(np.zeros(3), 5)


# ----------------------------------------------------------------------------------------------
# Batching


@pytest.mark.parametrize(("n", "batch_size", "drop_last", "sizes"), [
    (10, 3, False, [3, 3, 3, 1]),
    (10, 3, True, [3, 3, 3]),
    (9, 3, False, [3, 3, 3]),
    (9, 3, True, [3, 3, 3]),
    (2, 5, False, [2]),
    (2, 5, True, []),
    (0, 4, False, []),
])
def test_batch_sizes_and_len(n, batch_size, drop_last, sizes):
    loader = DataLoader(_dataset(n), batch_size=batch_size, drop_last=drop_last)
    batches = list(loader)
    assert len(loader) == len(sizes)
    assert [len(y) for _, y in batches] == sizes


def test_unshuffled_batches_are_in_order_and_stacked():
    loader = DataLoader(_dataset(5), batch_size=2)
    batches = list(loader)
    x, y = batches[0]
    assert x.shape == (2, 3) and x.dtype == np.float32 and y.dtype == np.int64
    np.testing.assert_array_equal(np.concatenate([y for _, y in batches]), np.arange(5))
    np.testing.assert_array_equal(np.concatenate([x for x, _ in batches]), _dataset(5).arrays[0])
    assert _labels(loader) == _labels(loader)  # every epoch the same without shuffle


def test_generic_dataset_tuples_are_collated():
    loader = DataLoader(ListDataset(5, (2, 2)), batch_size=2)
    x, y = next(iter(loader))
    assert x.shape == (2, 2, 2) and x.dtype == np.uint8
    assert y.tolist() == [0, 1] and y.dtype == np.int64


def test_dataset_of_bare_arrays():
    class Bare:
        def __len__(self):
            return 3

        def __getitem__(self, i):
            return np.full(4, i)

    batches = list(DataLoader(Bare(), batch_size=2))
    assert isinstance(batches[0], np.ndarray) and batches[0].shape == (2, 4)
    assert batches[1].tolist() == [[2, 2, 2, 2]]


def test_ragged_items_give_a_clear_error():
    class Ragged(ListDataset):
        def __getitem__(self, i):
            return np.zeros(i + 1), i

    pattern = r"cannot stack the field 0 of a batch, their shapes differ: \[\(1,\), \(2,\)\]"
    with pytest.raises(ValueError, match=pattern):
        next(iter(DataLoader(Ragged(3), batch_size=2)))


# ----------------------------------------------------------------------------------------------
# Shuffling


def test_shuffled_epoch_is_a_permutation():
    loader = DataLoader(_dataset(23), batch_size=4, shuffle=True, seed=0)
    for _ in range(3):
        seen = np.concatenate([y for _, y in loader])
        assert sorted(seen.tolist()) == list(range(23))


def test_shuffled_inputs_stay_with_their_labels():
    ds = _dataset(17)
    for x, y in DataLoader(ds, batch_size=5, shuffle=True, seed=4):
        np.testing.assert_array_equal(x, ds.arrays[0][y])


def test_same_seed_same_orders_epoch_after_epoch():
    a = DataLoader(_dataset(30), batch_size=7, shuffle=True, seed=123)
    b = DataLoader(_dataset(30), batch_size=7, shuffle=True, seed=123)
    orders_a = [_labels(a) for _ in range(3)]
    orders_b = [_labels(b) for _ in range(3)]
    assert orders_a == orders_b
    assert orders_a[0] != orders_a[1] != orders_a[2]  # each epoch has its own permutation


def test_different_seeds_differ():
    a = DataLoader(_dataset(30), shuffle=True, seed=1)
    b = DataLoader(_dataset(30), shuffle=True, seed=2)
    assert not np.array_equal(a.indices(0), b.indices(0))


def test_set_epoch_reproduces_an_epoch():
    loader = DataLoader(_dataset(20), batch_size=6, shuffle=True, seed=9)
    orders = [_labels(loader) for _ in range(3)]
    loader.set_epoch(1)
    assert loader.epoch == 1
    assert _labels(loader) == orders[1]
    assert _labels(loader) == orders[2]


def test_order_depends_only_on_seed_and_epoch():
    fresh = DataLoader(_dataset(20), batch_size=6, shuffle=True, seed=9)
    fresh.set_epoch(2)
    used = DataLoader(_dataset(20), batch_size=6, shuffle=True, seed=9)
    for _ in range(2):
        list(used)
    assert _labels(fresh) == _labels(used)


def test_drop_last_with_shuffle_drops_different_items():
    loader = DataLoader(_dataset(10), batch_size=4, shuffle=True, drop_last=True, seed=5)
    dropped = set()
    for _ in range(6):
        seen = np.concatenate([y for _, y in loader])
        assert len(seen) == 8
        dropped |= set(range(10)) - set(seen.tolist())
    assert len(dropped) > 2


def test_generator_gives_a_reproducible_seed():
    a = DataLoader(_dataset(12), shuffle=True, generator=np.random.default_rng(7))
    b = DataLoader(_dataset(12), shuffle=True, generator=np.random.default_rng(7))
    assert a.seed == b.seed
    assert _labels(a) == _labels(b)


def test_no_seed_draws_one_and_records_it():
    a = DataLoader(_dataset(12), shuffle=True)
    b = DataLoader(_dataset(12), shuffle=True, seed=a.seed)
    assert _labels(a) == _labels(b)


# ----------------------------------------------------------------------------------------------
# Resuming


def test_resume_mid_epoch_gives_the_uninterrupted_sequence():
    ref = DataLoader(_dataset(25), batch_size=4, shuffle=True, seed=11)
    expected = [_labels(ref) for _ in range(3)]
    flat = [b for epoch in expected for b in epoch]

    run = DataLoader(_dataset(25), batch_size=4, shuffle=True, seed=11)
    list(run)  # epoch 0
    it = iter(run)  # epoch 1: consume three batches then "crash"
    consumed = [next(it)[1].tolist() for _ in range(3)]
    state = run.state_dict()
    assert state == {"seed": 11, "epoch": 1, "batch": 3}

    resumed = DataLoader(_dataset(25), batch_size=4, shuffle=True, seed=0)
    resumed.load_state_dict(state)
    rest = _labels(resumed) + _labels(resumed)
    assert expected[0] + consumed + rest == flat


def test_state_after_a_full_epoch_points_at_the_next():
    loader = DataLoader(_dataset(8), batch_size=3, shuffle=True, seed=2)
    assert loader.state_dict() == {"seed": 2, "epoch": 0, "batch": 0}
    list(loader)
    assert loader.state_dict() == {"seed": 2, "epoch": 1, "batch": 0}
    it = iter(loader)
    for _ in range(len(loader)):
        next(it)  # all batches taken, generator not yet exhausted
    assert loader.state_dict() == {"seed": 2, "epoch": 2, "batch": 0}


def test_resume_reproduces_random_transforms():
    x = np.arange(6 * 8, dtype=np.uint8).reshape(6, 8) + 1
    ds = TensorDataset(x, np.arange(6))
    make = lambda: DataLoader(ds, batch_size=2, shuffle=True, seed=3,  # noqa: E731
                              transform=Compose([ToFloat(), RandomShift(3, generator=99)]))
    ref = make()
    pairs = [(xb, yb) for epoch in range(2) for xb, yb in ref]
    expected = [xb for xb, _ in pairs]
    run = make()
    it = iter(run)
    first = next(it)[0]
    resumed = make()
    resumed.load_state_dict(run.state_dict())
    got = [first] + [xb for xb, _ in resumed] + [xb for xb, _ in resumed]
    assert len(got) == len(expected)
    for a, b in zip(got, expected, strict=True):
        np.testing.assert_array_equal(a, b)
    # the shift really happened: some batches differ from their unshifted rows
    assert any(not np.array_equal(xb, x[yb].astype(np.float32) / 255) for xb, yb in pairs)


def test_transform_applies_to_inputs_only():
    ds = TensorDataset(np.full((4, 3), 255, np.uint8), np.arange(4))
    x, y = next(iter(DataLoader(ds, batch_size=4, transform=ToFloat())))
    assert x.dtype == np.float32 and np.all(x == 1.0)
    np.testing.assert_array_equal(y, np.arange(4))
    x2, y2 = next(iter(DataLoader(ListDataset(3), batch_size=3, transform=lambda v: v * 2)))
    np.testing.assert_array_equal(x2[:, 0], [0, 2, 4])
    np.testing.assert_array_equal(y2, [0, 1, 2])


# ----------------------------------------------------------------------------------------------
# Argument errors


@pytest.mark.parametrize(
    ("kwargs", "exc", "pattern"),
    [
        ({"batch_size": 0}, ValueError, "batch_size must be >= 1, got 0"),
        ({"batch_size": 2.0}, TypeError, "batch_size must be an int, got 2.0"),
        ({"batch_size": True}, TypeError, "batch_size must be an int"),
        ({"shuffle": 1}, TypeError, "shuffle must be a bool, got 1"),
        ({"drop_last": "yes"}, TypeError, "drop_last must be a bool"),
        ({"seed": -1}, ValueError, "seed must be >= 0, got -1"),
        ({"seed": 1, "generator": np.random.default_rng()}, ValueError, "give seed or generator, not both"),
        ({"generator": 5}, TypeError, "generator must be a numpy.random.Generator"),
        ({"transform": 3}, TypeError, "transform must be callable or None"),
    ],
)
def test_argument_errors(kwargs, exc, pattern):
    with pytest.raises(exc, match="DataLoader: " + pattern):
        DataLoader(_dataset(4), **kwargs)


def test_dataset_must_be_a_dataset():
    with pytest.raises(TypeError, match="DataLoader: dataset must support len"):
        DataLoader(iter(range(3)))


def test_bad_state():
    loader = DataLoader(_dataset(4), batch_size=2)
    with pytest.raises(ValueError, match="state must be a dict with keys seed, epoch, batch"):
        loader.load_state_dict({"epoch": 1})
    with pytest.raises(ValueError, match="state batch 3 is past the 2 batches"):
        loader.load_state_dict({"seed": 0, "epoch": 0, "batch": 3})
    with pytest.raises(ValueError, match="epoch must be >= 0"):
        loader.set_epoch(-1)
