"""Per-sample transforms in plain NumPy: type conversion, normalisation, random shifts and crops.

A transform is any callable taking one sample (not a batch) and returning the transformed sample.
Samples are channel-first: a 1-D signal is ``(L,)`` or ``(C, L)``, an image ``(H, W)`` or
``(C, H, W)``.  The spatial axes are the last one or two; which is meant is inferred from the
sample (1-D: one axis; 2-D or 3-D: two) unless ``spatial_dims`` is given, as it must be for a
``(C, L)`` signal.

Random transforms (``uses_rng = True``) draw from their own generator, seeded at construction,
unless they are called with ``rng=``.  :class:`cnnlab.data.DataLoader` passes such an ``rng``,
derived from its seed, the epoch and the batch number, so that augmentation is reproducible and a
run resumed from ``DataLoader.state_dict()`` sees the same augmented batches.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from numbers import Integral, Real
from typing import Any

import numpy as np

SeedLike = int | np.random.Generator | None


def _sample(op: str, x: Any) -> np.ndarray:
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{op}: sample must be a numpy.ndarray, got {type(x).__name__}")
    if x.ndim == 0:
        raise ValueError(f"{op}: sample must have at least one axis, got a 0-d array")
    return x


def _generator(op: str, generator: SeedLike) -> np.random.Generator:
    if isinstance(generator, np.random.Generator):
        return generator
    if generator is None or (isinstance(generator, Integral) and not isinstance(generator, bool) and generator >= 0):
        return np.random.default_rng(generator)
    raise TypeError(f"{op}: generator must be a non-negative int, a numpy Generator or None, got {generator!r}")


def _int_tuple(op: str, name: str, value: Any, minimum: int) -> tuple[int, ...]:
    items = value if isinstance(value, (tuple, list)) else (value,)
    if len(items) == 0 or len(items) > 2:
        raise ValueError(f"{op}: {name} must be an int or a tuple of 1 or 2 ints, got {value!r}")
    for v in items:
        if isinstance(v, bool) or not isinstance(v, Integral):
            raise TypeError(f"{op}: {name} must be an int or a tuple of ints, got {value!r}")
        if v < minimum:
            raise ValueError(f"{op}: {name} must be >= {minimum}, got {value!r}")
    return tuple(int(v) for v in items)


def _spatial_dims(op: str, x: np.ndarray, given: int | None) -> int:
    """How many trailing axes of ``x`` are spatial."""
    if given is None:
        if x.ndim == 1:
            return 1
        if x.ndim in (2, 3):
            return 2
        raise ValueError(f"{op}: cannot tell the spatial axes of a sample of shape {x.shape}; give spatial_dims")
    if x.ndim < given:
        raise ValueError(f"{op}: sample of shape {x.shape} has fewer than spatial_dims={given} axes")
    return given


def _per_axis(values: tuple[int, ...], n: int) -> tuple[int, ...]:
    return values * n if len(values) == 1 else values


def _check_spatial_dims(op: str, spatial_dims: Any, fixed: int | None) -> int | None:
    if spatial_dims is None:
        return fixed
    if spatial_dims not in (1, 2) or isinstance(spatial_dims, bool):
        raise ValueError(f"{op}: spatial_dims must be 1, 2 or None, got {spatial_dims!r}")
    if fixed is not None and fixed != spatial_dims:
        raise ValueError(f"{op}: spatial_dims={spatial_dims} disagrees with a tuple of {fixed} sizes")
    return int(spatial_dims)


class Transform:
    """Base class: ``__call__(x, rng=None)`` maps one sample to a new one."""

    uses_rng = False

    def __call__(self, x: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        raise NotImplementedError


class ToFloat(Transform):
    """uint8 pixels 0..255 to float32 in [0, 1].

    Raises ``TypeError`` for any other dtype, so data already scaled is never divided twice.

    Examples
    --------
    >>> ToFloat()(np.array([0, 51, 255], dtype=np.uint8))
    array([0. , 0.2, 1. ], dtype=float32)
    """

    def __call__(self, x: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        x = _sample("ToFloat", x)
        if x.dtype != np.uint8:
            raise TypeError(f"ToFloat: sample must have dtype uint8, got {x.dtype}")
        return x.astype(np.float32) / np.float32(255)

    def __repr__(self) -> str:
        return "ToFloat()"


class Normalize(Transform):
    """Subtract ``mean`` and divide by ``std``, per channel: ``(x[c] - mean[c]) / std[c]``.

    Parameters
    ----------
    mean, std : float or sequence of float
        One value for all, or one per channel (the first axis of the sample).  ``std`` must be
        positive.

    Notes
    -----
    The sample must be floating point (apply :class:`ToFloat` first); its dtype is kept.

    Examples
    --------
    >>> Normalize(0.5, 0.25)(np.array([0.0, 0.5, 1.0], dtype=np.float32))
    array([-2.,  0.,  2.], dtype=float32)
    >>> Normalize([0.0, 1.0], [1.0, 2.0])(np.ones((2, 1, 1))).ravel()
    array([1., 0.])
    """

    def __init__(self, mean: float | Sequence[float], std: float | Sequence[float]) -> None:
        self.mean = self._values("mean", mean)
        self.std = self._values("std", std)
        if np.any(self.std <= 0):
            raise ValueError(f"Normalize: std must be positive, got {std!r}")
        if self.mean.size != 1 and self.std.size != 1 and self.mean.size != self.std.size:
            raise ValueError(f"Normalize: mean has {self.mean.size} values but std has {self.std.size}")

    @staticmethod
    def _values(name: str, value: Any) -> np.ndarray:
        items = value if isinstance(value, (list, tuple, np.ndarray)) else [value]
        if not all(isinstance(v, Real) and not isinstance(v, bool) for v in np.ravel(items)):
            raise TypeError(f"Normalize: {name} must be a number or a sequence of numbers, got {value!r}")
        arr = np.asarray(items, dtype=np.float64).ravel()
        if arr.size == 0 or not np.all(np.isfinite(arr)):
            raise ValueError(f"Normalize: {name} must be finite and not empty, got {value!r}")
        return arr

    def __call__(self, x: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        x = _sample("Normalize", x)
        if x.dtype.kind != "f":
            raise TypeError(f"Normalize: sample must be floating point (use ToFloat first), got dtype {x.dtype}")
        channels = max(self.mean.size, self.std.size)
        shape = (1,) * x.ndim
        if channels > 1:
            if x.shape[0] != channels:
                raise ValueError(f"Normalize: {channels} channel values but the sample has shape {x.shape}")
            shape = (channels,) + (1,) * (x.ndim - 1)
        mean = np.broadcast_to(self.mean, (channels,)).reshape(shape).astype(x.dtype)
        std = np.broadcast_to(self.std, (channels,)).reshape(shape).astype(x.dtype)
        return (x - mean) / std

    def __repr__(self) -> str:
        return f"Normalize(mean={self.mean.tolist()}, std={self.std.tolist()})"


def shift(x: np.ndarray, offsets: Sequence[int]) -> np.ndarray:
    """Shift the last ``len(offsets)`` axes of ``x`` by whole samples, filling with zeros.

    ``out[..., i + s] = x[..., i]`` where the index stays in range; content shifted past an edge
    is dropped.  Positive offsets move content towards higher indices (right, down).

    Examples
    --------
    >>> shift(np.array([1, 2, 3, 4]), [1])
    array([0, 1, 2, 3])
    >>> shift(np.array([[1, 2], [3, 4]]), [-1, 1])
    array([[0, 3],
           [0, 0]])
    """
    out = np.zeros_like(x)
    dst: list[slice] = []
    src: list[slice] = []
    for size, s in zip(x.shape[x.ndim - len(offsets):], offsets, strict=True):
        s = max(-size, min(size, int(s)))
        dst.append(slice(s, size) if s >= 0 else slice(0, size + s))
        src.append(slice(0, size - s) if s >= 0 else slice(-s, size))
    lead = (slice(None),) * (x.ndim - len(offsets))
    out[lead + tuple(dst)] = x[lead + tuple(src)]
    return out


class RandomShift(Transform):
    """Shift the sample by a random whole number of positions per spatial axis, padding with zeros.

    Each offset is drawn uniformly from ``-max_shift .. max_shift`` (inclusive); all channels move
    together.  The output has the input's shape and dtype.

    Parameters
    ----------
    max_shift : int or tuple of int
        Largest shift, one for all spatial axes or one per axis (the tuple's length then fixes the
        number of spatial axes).
    generator : int, numpy.random.Generator or None, optional
        Seed or generator used when no ``rng`` is passed at call time.
    spatial_dims : {1, 2} or None, optional
        Number of trailing spatial axes; inferred from the sample by default (see the module notes).

    Examples
    --------
    >>> t = RandomShift(2, generator=0)
    >>> x = np.arange(1.0, 7.0)
    >>> y = t(x)
    >>> y.shape, bool(np.isin(y[y != 0], x).all())
    ((6,), True)
    """

    uses_rng = True

    def __init__(self, max_shift: int | tuple[int, ...], generator: SeedLike = None,
                 spatial_dims: int | None = None) -> None:
        self.max_shift = _int_tuple("RandomShift", "max_shift", max_shift, 0)
        fixed = len(self.max_shift) if isinstance(max_shift, (tuple, list)) else None
        self.spatial_dims = _check_spatial_dims("RandomShift", spatial_dims, fixed)
        self.generator = _generator("RandomShift", generator)

    def __call__(self, x: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        x = _sample("RandomShift", x)
        n = _spatial_dims("RandomShift", x, self.spatial_dims)
        limits = _per_axis(self.max_shift, n)
        r = rng if rng is not None else self.generator
        offsets = [int(r.integers(-m, m + 1)) for m in limits]
        return shift(x, offsets)

    def __repr__(self) -> str:
        return f"RandomShift(max_shift={self.max_shift}, spatial_dims={self.spatial_dims})"


class RandomCrop(Transform):
    """Pad the spatial axes with zeros, then cut a window of ``size`` at a random position.

    Parameters
    ----------
    size : int or tuple of int
        Output spatial size, one for all axes or one per axis.
    padding : int or tuple of int, optional
        Zeros added on both sides of each spatial axis before cropping.
    generator : int, numpy.random.Generator or None, optional
        Seed or generator used when no ``rng`` is passed at call time.
    spatial_dims : {1, 2} or None, optional
        Number of trailing spatial axes; inferred from the sample by default.

    Shape
    -----
    ``(..., in + 2 * padding)`` is cropped to ``(..., size)``; the window's start is uniform in
    ``0 .. in + 2 * padding - size``.  With ``size == in`` this is a random shift by at most
    ``padding``.

    Examples
    --------
    >>> RandomCrop(28, padding=2, generator=0)(np.ones((1, 28, 28), dtype=np.float32)).shape
    (1, 28, 28)
    """

    uses_rng = True

    def __init__(self, size: int | tuple[int, ...], padding: int | tuple[int, ...] = 0,
                 generator: SeedLike = None, spatial_dims: int | None = None) -> None:
        self.size = _int_tuple("RandomCrop", "size", size, 1)
        self.padding = _int_tuple("RandomCrop", "padding", padding, 0)
        fixed = None
        for value, parsed in ((size, self.size), (padding, self.padding)):
            if isinstance(value, (tuple, list)):
                if fixed is not None and fixed != len(parsed):
                    raise ValueError(f"RandomCrop: size {size!r} and padding {padding!r} differ in length")
                fixed = len(parsed)
        self.spatial_dims = _check_spatial_dims("RandomCrop", spatial_dims, fixed)
        self.generator = _generator("RandomCrop", generator)

    def __call__(self, x: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        x = _sample("RandomCrop", x)
        n = _spatial_dims("RandomCrop", x, self.spatial_dims)
        size, pad = _per_axis(self.size, n), _per_axis(self.padding, n)
        spatial = x.shape[x.ndim - n:]
        padded = tuple(s + 2 * p for s, p in zip(spatial, pad, strict=True))
        if any(c > p for c, p in zip(size, padded, strict=True)):
            raise ValueError(f"RandomCrop: crop size {size} is larger than the padded sample {padded} "
                             f"(spatial shape {spatial} + 2 x padding {pad})")
        widths = [(0, 0)] * (x.ndim - n) + [(p, p) for p in pad]
        xp = np.pad(x, widths) if any(pad) else x
        r = rng if rng is not None else self.generator
        starts = [int(r.integers(0, p - c + 1)) for p, c in zip(padded, size, strict=True)]
        window = (slice(None),) * (x.ndim - n) + tuple(slice(s, s + c) for s, c in zip(starts, size, strict=True))
        return np.array(xp[window])

    def __repr__(self) -> str:
        return f"RandomCrop(size={self.size}, padding={self.padding}, spatial_dims={self.spatial_dims})"


class Compose(Transform):
    """Apply transforms one after another.

    Random members receive the ``rng`` given to the composition (when one is given).

    Examples
    --------
    >>> t = Compose([ToFloat(), Normalize(0.5, 0.5)])
    >>> t(np.array([0, 255], dtype=np.uint8))
    array([-1.,  1.], dtype=float32)
    """

    def __init__(self, transforms: Sequence[Callable[..., np.ndarray]]) -> None:
        if isinstance(transforms, (str, bytes)) or not isinstance(transforms, Sequence):
            raise TypeError(f"Compose: transforms must be a sequence of callables, got {type(transforms).__name__}")
        for t in transforms:
            if not callable(t):
                raise TypeError(f"Compose: every transform must be callable, got {t!r}")
        self.transforms = list(transforms)
        self.uses_rng = any(getattr(t, "uses_rng", False) for t in self.transforms)

    def __call__(self, x: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        for t in self.transforms:
            x = apply_transform(t, x, rng)
        return x

    def __repr__(self) -> str:
        return "Compose([" + ", ".join(repr(t) for t in self.transforms) + "])"


def apply_transform(transform: Callable[..., np.ndarray], x: np.ndarray,
                    rng: np.random.Generator | None = None) -> np.ndarray:
    """Call ``transform`` on ``x``, passing ``rng`` only to random cnnlab transforms.

    Plain functions (``lambda x: x[None]``) are called with the sample alone.

    Examples
    --------
    >>> apply_transform(lambda x: x * 2, np.array([1, 2]))
    array([2, 4])
    """
    if rng is not None and getattr(transform, "uses_rng", False):
        return transform(x, rng=rng)
    return transform(x)
