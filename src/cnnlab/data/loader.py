"""Datasets and the DataLoader: batching, seeded shuffling, resumable iteration.

A dataset is anything with ``__len__`` and ``__getitem__(i)`` (the :class:`Dataset` protocol);
an item is a tuple of fields, usually ``(x, y)``, or a single array.  :class:`DataLoader` stacks
the items of each batch field by field into NumPy arrays.

Shuffling is a pure function of ``(seed, epoch)``: the order of epoch ``e`` is the permutation
drawn by ``numpy.random.default_rng(SeedSequence(seed, spawn_key=(e, 0)))``.  Unlike a generator
whose state advances with each epoch (PyTorch's default), no hidden state has to be saved: the
loader's :meth:`~DataLoader.state_dict` is ``{"seed", "epoch", "batch"}``, and a loader restored
from it yields exactly the batches an uninterrupted run would have yielded next, including the
random augmentations of its ``transform`` (drawn from ``spawn_key=(e, 1, b)`` for batch ``b``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any, Protocol, runtime_checkable

import numpy as np

from cnnlab.data.transforms import apply_transform
from cnnlab.functional._args import check_bool, check_int


@runtime_checkable
class Dataset(Protocol):
    """What :class:`DataLoader` needs: a length and integer indexing from 0 to ``len - 1``."""

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> Any: ...


class TensorDataset:
    """Arrays of equal length seen as a dataset of tuples: item ``i`` is ``(a[i] for a in arrays)``.

    Parameters
    ----------
    *arrays : array_like
        At least one; each at least 1-D, all with the same first dimension.

    Examples
    --------
    >>> ds = TensorDataset(np.zeros((3, 2)), np.array([0, 1, 2]))
    >>> len(ds), ds[1][1]
    (3, np.int64(1))
    """

    def __init__(self, *arrays: Any) -> None:
        if not arrays:
            raise ValueError("TensorDataset: needs at least one array")
        converted = []
        for k, a in enumerate(arrays):
            arr = np.asarray(a)
            if arr.ndim == 0:
                raise ValueError(f"TensorDataset: array {k} must be at least 1-D, got a scalar")
            converted.append(arr)
        lengths = [len(a) for a in converted]
        if len(set(lengths)) != 1:
            raise ValueError(f"TensorDataset: arrays must have the same first dimension, got lengths {lengths}")
        self.arrays: tuple[np.ndarray, ...] = tuple(converted)

    def __len__(self) -> int:
        return len(self.arrays[0])

    def __getitem__(self, index: int) -> tuple[Any, ...]:
        return tuple(a[index] for a in self.arrays)

    def __repr__(self) -> str:
        return "TensorDataset(" + ", ".join(f"{a.dtype}{list(a.shape)}" for a in self.arrays) + ")"


def _stack(field: list[Any], what: str) -> np.ndarray:
    try:
        return np.stack([np.asarray(v) for v in field])
    except ValueError:
        shapes = sorted({np.shape(v) for v in field})
        raise ValueError(
            f"DataLoader: cannot stack the {what} of a batch, their shapes differ: {shapes[:4]}"
            " (give the dataset a fixed size, e.g. ImageFolder(size=...), or use batch_size=1)"
        ) from None


class DataLoader:
    """Iterate over a dataset in batches of stacked NumPy arrays.

    Parameters
    ----------
    dataset : Dataset
        Supports ``len()`` and ``dataset[i]``.
    batch_size : int, optional
        Items per batch.
    shuffle : bool, optional
        Visit items in a new seeded random order each epoch.
    drop_last : bool, optional
        Drop the final batch when it is smaller than ``batch_size``.
    seed : int or None, optional
        Non-negative seed of the shuffling and of the transform's randomness.
    generator : numpy.random.Generator or None, optional
        Alternative to ``seed``: the seed is drawn from it once, at construction.  With neither,
        a seed is drawn from the operating system; it is kept in :attr:`seed` so the run can be
        repeated.
    transform : callable or None, optional
        Applied to the first field (the input) of every item.  Random cnnlab transforms get an
        ``rng`` derived from ``(seed, epoch, batch)``.

    Yields
    ------
    tuple of numpy.ndarray or numpy.ndarray
        For tuple items, a tuple with one stacked array per field, e.g. ``(x, y)`` with ``x`` of
        shape ``(B, ...)`` and ``y`` of shape ``(B,)``; for array items, one stacked array.

    Notes
    -----
    Each call of ``iter(loader)`` (each ``for`` loop) starts the next epoch.  :meth:`set_epoch`
    chooses the epoch explicitly; :meth:`state_dict` and :meth:`load_state_dict` save and restore
    the position, mid-epoch included (batches already yielded count as consumed).

    Examples
    --------
    >>> ds = TensorDataset(np.arange(10.0).reshape(5, 2), np.arange(5))
    >>> loader = DataLoader(ds, batch_size=2, shuffle=True, seed=0)
    >>> len(loader), [y.shape for _, y in loader]
    (3, [(2,), (2,), (1,)])
    >>> first = [y.tolist() for _, y in loader]          # epoch 1: another order
    >>> loader.set_epoch(1)
    >>> [y.tolist() for _, y in loader] == first         # the same epoch gives the same order
    True
    """

    def __init__(
        self,
        dataset: Dataset,
        batch_size: int = 1,
        shuffle: bool = False,
        drop_last: bool = False,
        seed: int | None = None,
        generator: np.random.Generator | None = None,
        transform: Callable[..., np.ndarray] | None = None,
    ) -> None:
        if not isinstance(dataset, Dataset):
            raise TypeError(f"DataLoader: dataset must support len() and indexing, got {type(dataset).__name__}")
        self.dataset = dataset
        self.batch_size = check_int("DataLoader", "batch_size", batch_size, minimum=1)
        self.shuffle = check_bool("DataLoader", "shuffle", shuffle)
        self.drop_last = check_bool("DataLoader", "drop_last", drop_last)
        if transform is not None and not callable(transform):
            raise TypeError(f"DataLoader: transform must be callable or None, got {transform!r}")
        self.transform = transform
        if seed is not None and generator is not None:
            raise ValueError("DataLoader: give seed or generator, not both")
        if generator is not None:
            if not isinstance(generator, np.random.Generator):
                raise TypeError(f"DataLoader: generator must be a numpy.random.Generator, got {generator!r}")
            seed = int(generator.integers(0, 2**63))
        elif seed is None:
            seed = int(np.random.SeedSequence().entropy)
        self._seed = check_int("DataLoader", "seed", seed, minimum=0)
        self._epoch = 0
        self._resume_batch = 0
        self._progress: tuple[int, int] | None = None

    @property
    def seed(self) -> int:
        """The seed of the shuffling and augmentation (given, or drawn at construction)."""
        return self._seed

    @property
    def epoch(self) -> int:
        """The epoch the next ``iter(loader)`` will run."""
        return self._epoch

    def __len__(self) -> int:
        n = len(self.dataset)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def set_epoch(self, epoch: int) -> None:
        """Make the next iteration run epoch ``epoch`` from its first batch."""
        self._epoch = check_int("DataLoader", "epoch", epoch, minimum=0)
        self._resume_batch = 0
        self._progress = None

    def indices(self, epoch: int) -> np.ndarray:
        """The order in which epoch ``epoch`` visits the dataset (before batching and dropping).

        Examples
        --------
        >>> loader = DataLoader(TensorDataset(np.arange(4)), shuffle=True, seed=3)
        >>> sorted(loader.indices(0).tolist())
        [0, 1, 2, 3]
        """
        epoch = check_int("DataLoader", "epoch", epoch, minimum=0)
        n = len(self.dataset)
        if not self.shuffle:
            return np.arange(n)
        return self._rng(epoch, 0).permutation(n)

    def _rng(self, *key: int) -> np.random.Generator:
        return np.random.default_rng(np.random.SeedSequence(self._seed, spawn_key=key))

    def state_dict(self) -> dict[str, int]:
        """Where the loader stands: ``{"seed", "epoch", "batch"}`` for the next batch to yield."""
        if self._progress is not None and self._progress[1] < len(self):
            epoch, batch = self._progress
        else:
            epoch, batch = self._epoch, self._resume_batch
        return {"seed": self._seed, "epoch": epoch, "batch": batch}

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Continue from a :meth:`state_dict`: the next iteration resumes at that epoch and batch."""
        if not isinstance(state, dict) or set(state) != {"seed", "epoch", "batch"}:
            raise ValueError(f"DataLoader: state must be a dict with keys seed, epoch, batch, got {state!r}")
        self._seed = check_int("DataLoader", "seed", state["seed"], minimum=0)
        self._epoch = check_int("DataLoader", "epoch", state["epoch"], minimum=0)
        self._resume_batch = check_int("DataLoader", "batch", state["batch"], minimum=0)
        if self._resume_batch > len(self):
            raise ValueError(f"DataLoader: state batch {self._resume_batch} is past the {len(self)} batches")
        self._progress = None

    def __iter__(self) -> Iterator[Any]:
        epoch, start = self._epoch, self._resume_batch
        self._epoch, self._resume_batch = epoch + 1, 0
        self._progress = (epoch, start)
        return self._batches(epoch, start, self.indices(epoch))

    def _batches(self, epoch: int, start: int, order: np.ndarray) -> Iterator[Any]:
        for b in range(start, len(self)):
            idx = order[b * self.batch_size:(b + 1) * self.batch_size]
            batch = self._collate(idx, epoch, b)
            self._progress = (epoch, b + 1)
            yield batch

    def _transform_field(self, xs: Any, epoch: int, b: int) -> np.ndarray:
        rng = self._rng(epoch, 1, b) if getattr(self.transform, "uses_rng", False) else None
        return _stack([apply_transform(self.transform, x, rng) for x in xs], "transformed inputs")

    def _collate(self, idx: np.ndarray, epoch: int, b: int) -> Any:
        if isinstance(self.dataset, TensorDataset):
            fields = [a[idx] for a in self.dataset.arrays]
            if self.transform is not None:
                fields[0] = self._transform_field(fields[0], epoch, b)
            return tuple(fields)
        items = [self.dataset[int(i)] for i in idx]
        if all(isinstance(item, (tuple, list)) for item in items):
            columns = list(zip(*items, strict=True))
            if self.transform is not None:
                first = self._transform_field(columns[0], epoch, b)
                return (first, *(_stack(list(c), f"field {k + 1}") for k, c in enumerate(columns[1:])))
            return tuple(_stack(list(c), f"field {k}") for k, c in enumerate(columns))
        if self.transform is not None:
            return self._transform_field(items, epoch, b)
        return _stack(items, "items")

    def __repr__(self) -> str:
        return (f"DataLoader({type(self.dataset).__name__} of {len(self.dataset)}, batch_size={self.batch_size}, "
                f"shuffle={self.shuffle}, drop_last={self.drop_last}, seed={self._seed})")
