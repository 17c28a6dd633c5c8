"""Deterministic shuffling and mini-batching.

``iterate_minibatches`` makes one pass over the data with an explicit
``numpy.random.Generator`` or seed. ``DataLoader`` wraps it for training loops:
the order of epoch ``e`` depends only on ``(seed, e)``, so a run resumed from
a checkpoint at epoch ``e`` sees the same batches as an uninterrupted run.
"""

from __future__ import annotations

import math
from typing import Iterator

import numpy as np

__all__ = ["iterate_minibatches", "DataLoader"]

RandomSource = np.random.Generator | int | None


def _as_generator(rng: RandomSource) -> np.random.Generator:
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None:
        return np.random.default_rng()
    if isinstance(rng, (int, np.integer)) and not isinstance(rng, bool) and rng >= 0:
        return np.random.default_rng(int(rng))
    raise TypeError(
        f"rng must be a numpy.random.Generator, a non-negative int seed or None, got {rng!r}"
    )


def _check_arrays(x: object, y: object, batch_size: object) -> None:
    if not isinstance(x, np.ndarray) or x.ndim < 1:
        raise TypeError(f"x must be a numpy.ndarray with a sample axis, got {type(x).__name__}")
    if not isinstance(y, np.ndarray) or y.ndim < 1:
        raise TypeError(f"y must be a numpy.ndarray with a sample axis, got {type(y).__name__}")
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"x has {x.shape[0]} samples but y has {y.shape[0]}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")


def _yield_batches(
    x: np.ndarray, y: np.ndarray, batch_size: int, order: np.ndarray | None, drop_last: bool
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    num_samples = x.shape[0]
    stop_at = num_samples - num_samples % batch_size if drop_last else num_samples
    for start in range(0, stop_at, batch_size):
        stop = min(start + batch_size, num_samples)
        if order is None:
            x_batch, y_batch = x[start:stop], y[start:stop]
        else:
            indices = order[start:stop]
            x_batch, y_batch = x[indices], y[indices]
        yield x_batch.astype(np.float32, copy=False), y_batch.astype(np.int64, copy=False)


def iterate_minibatches(
    x: np.ndarray,
    y: np.ndarray,
    batch_size: int,
    shuffle: bool = True,
    rng: RandomSource = None,
    drop_last: bool = False,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Return an iterator over ``(x_batch, y_batch)`` pairs covering the data once.

    Parameters
    ----------
    x : numpy.ndarray
        Inputs, samples along axis 0.
    y : numpy.ndarray
        Labels, same number of samples as ``x``.
    batch_size : int
        Samples per batch. The last batch is smaller when ``batch_size`` does
        not divide the number of samples, unless ``drop_last`` is set.
    shuffle : bool
        Visit the samples in the order of ``rng.permutation(N)`` when True, in
        index order when False.
    rng : numpy.random.Generator or int or None
        Source of the permutation. A Generator is advanced by one
        ``permutation`` call, so repeated calls with the same Generator give
        different orders. An int seeds a new Generator, so equal seeds give
        equal orders. None uses fresh operating-system entropy. Unused when
        ``shuffle`` is False.
    drop_last : bool
        Skip the final batch when it has fewer than ``batch_size`` samples.

    Returns
    -------
    iterator of (numpy.ndarray, numpy.ndarray)
        ``x_batch`` as float32 and ``y_batch`` as int64. Without shuffling,
        a batch of an input that already has that dtype is a view into it.
        With shuffling, every batch is a copy.

    Notes
    -----
    The arguments are checked and the permutation drawn when this function
    is called, not when the first batch is requested.
    """
    _check_arrays(x, y, batch_size)
    order = _as_generator(rng).permutation(x.shape[0]) if shuffle else None
    return _yield_batches(x, y, int(batch_size), order, drop_last)


class DataLoader:
    """Mini-batches of a fixed dataset with a reproducible order per epoch.

    Parameters
    ----------
    x, y, batch_size, shuffle, drop_last
        As in ``iterate_minibatches``.
    seed : int or None
        Non-negative seed. The permutation of epoch ``e`` comes from
        ``numpy.random.default_rng([seed, e])``. None draws a seed from
        operating-system entropy and stores it in ``self.seed``.

    Examples
    --------
    >>> loader = DataLoader(x, y, batch_size=64, seed=0)  # doctest: +SKIP
    >>> for epoch in range(10):  # doctest: +SKIP
    ...     for x_batch, y_batch in loader.batches(epoch):
    ...         ...
    """

    def __init__(
        self,
        x: np.ndarray,
        y: np.ndarray,
        batch_size: int,
        shuffle: bool = True,
        seed: int | None = None,
        drop_last: bool = False,
    ):
        _check_arrays(x, y, batch_size)
        if seed is None:
            seed = int(np.random.SeedSequence().entropy)
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise TypeError(f"seed must be a non-negative int or None, got {seed!r}")

        self.x = x
        self.y = y
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.seed = int(seed)
        self.drop_last = drop_last
        self.next_epoch = 0

    def __len__(self) -> int:
        """Number of batches per epoch."""
        num_samples = self.x.shape[0]
        if self.drop_last:
            return num_samples // self.batch_size
        return math.ceil(num_samples / self.batch_size)

    def batches(self, epoch: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Return an iterator over the batches of ``epoch`` (a non-negative int)."""
        if isinstance(epoch, bool) or not isinstance(epoch, (int, np.integer)) or epoch < 0:
            raise ValueError(f"epoch must be a non-negative int, got {epoch!r}")
        rng = np.random.default_rng([self.seed, int(epoch)])
        return iterate_minibatches(
            self.x, self.y, self.batch_size, shuffle=self.shuffle, rng=rng, drop_last=self.drop_last
        )

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Iterate over epoch ``self.next_epoch``, then advance ``next_epoch`` by one."""
        epoch = self.next_epoch
        self.next_epoch += 1
        return self.batches(epoch)
