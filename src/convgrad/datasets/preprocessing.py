"""Per-channel standardization fitted on the training split only.

For inputs shaped ``(N, C, *spatial)``, channel ``c`` becomes
``(x[:, c] - mean[c]) / std[c]``, where ``mean`` and ``std`` are the
population mean and standard deviation of ``x_train[:, c]`` over all samples
and positions. The test split is transformed with the same statistics, so no
information from it leaks into training.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from .dataset import Dataset

__all__ = ["Standardizer", "normalize"]

# Samples per chunk when accumulating statistics in float64, so that a
# 60000 x 784 float32 training set is never copied to float64 at once.
_CHUNK_SIZE = 4096


def _check_input(x: object, argument: str) -> np.ndarray:
    if not isinstance(x, np.ndarray) or x.ndim < 2 or not np.issubdtype(x.dtype, np.floating):
        description = (
            f"{x.dtype} array of shape {x.shape}" if isinstance(x, np.ndarray) else type(x).__name__
        )
        raise TypeError(
            f"{argument} must be a floating array shaped (N, C, *spatial), got {description}"
        )
    return x


def _reduction_axes(x: np.ndarray) -> tuple[int, ...]:
    return (0,) + tuple(range(2, x.ndim))


@dataclass(frozen=True)
class Standardizer:
    """Per-channel mean and standard deviation, and the transform that uses them.

    Attributes
    ----------
    mean : numpy.ndarray
        float64 array of shape ``(C,)``.
    std : numpy.ndarray
        float64 array of shape ``(C,)``, every entry positive. ``fit`` stores
        1.0 for a channel that is constant in the training data, so that
        channel is only centered.
    """

    mean: np.ndarray
    std: np.ndarray

    def __post_init__(self) -> None:
        mean = np.asarray(self.mean, dtype=np.float64)
        std = np.asarray(self.std, dtype=np.float64)
        if mean.ndim != 1 or mean.shape != std.shape:
            raise ValueError(
                f"Standardizer: mean and std must be 1-D arrays of equal length, "
                f"got shapes {mean.shape} and {std.shape}"
            )
        if not (np.isfinite(mean).all() and np.isfinite(std).all() and (std > 0).all()):
            raise ValueError(
                f"Standardizer: mean must be finite and std finite and positive, got mean={mean}, std={std}"
            )
        object.__setattr__(self, "mean", mean)
        object.__setattr__(self, "std", std)

    @classmethod
    def fit(cls, x: np.ndarray) -> "Standardizer":
        """Compute per-channel statistics of ``x``.

        Parameters
        ----------
        x : numpy.ndarray
            Floating array shaped ``(N, C, *spatial)`` with N >= 1.

        Returns
        -------
        Standardizer
            ``mean[c] = x[:, c].mean()`` and ``std[c] = x[:, c].std()``
            (population, ``ddof=0``), accumulated in float64 in two passes.
        """
        x = _check_input(x, "x")
        if x.shape[0] == 0:
            raise ValueError(f"Standardizer.fit: x must contain at least one sample, got shape {x.shape}")
        axes = _reduction_axes(x)
        count = x.size // x.shape[1]

        # Two passes (mean, then squared deviations) avoid the cancellation of
        # the one-pass E[x^2] - E[x]^2 formula.
        total = np.zeros(x.shape[1], dtype=np.float64)
        for start in range(0, x.shape[0], _CHUNK_SIZE):
            total += x[start : start + _CHUNK_SIZE].sum(axis=axes, dtype=np.float64)
        mean = total / count

        mean_broadcast = mean.reshape((1, -1) + (1,) * (x.ndim - 2))
        squared_deviations = np.zeros(x.shape[1], dtype=np.float64)
        for start in range(0, x.shape[0], _CHUNK_SIZE):
            deviation = x[start : start + _CHUNK_SIZE].astype(np.float64) - mean_broadcast
            squared_deviations += np.square(deviation).sum(axis=axes)
        std = np.sqrt(squared_deviations / count)

        std = np.where(std > 0, std, 1.0)
        return cls(mean=mean, std=std)

    def transform(self, x: np.ndarray) -> np.ndarray:
        """Return ``(x - mean) / std`` per channel as a new float32 array.

        ``x`` must be floating, shaped ``(N, C, *spatial)`` with the fitted C.
        The statistics are rounded to float32 before use.
        """
        x = _check_input(x, "x")
        if x.shape[1] != self.mean.shape[0]:
            raise ValueError(
                f"Standardizer.transform: x has {x.shape[1]} channels (shape {x.shape}), "
                f"the statistics have {self.mean.shape[0]}"
            )
        shape = (1, -1) + (1,) * (x.ndim - 2)
        mean = self.mean.astype(np.float32).reshape(shape)
        std = self.std.astype(np.float32).reshape(shape)
        result = x.astype(np.float32, copy=True)
        result -= mean
        result /= std
        return result

    def inverse_transform(self, x: np.ndarray) -> np.ndarray:
        """Return ``x * std + mean`` per channel as a new float32 array."""
        x = _check_input(x, "x")
        if x.shape[1] != self.mean.shape[0]:
            raise ValueError(
                f"Standardizer.inverse_transform: x has {x.shape[1]} channels (shape {x.shape}), "
                f"the statistics have {self.mean.shape[0]}"
            )
        shape = (1, -1) + (1,) * (x.ndim - 2)
        mean = self.mean.astype(np.float32).reshape(shape)
        std = self.std.astype(np.float32).reshape(shape)
        result = x.astype(np.float32, copy=True)
        result *= std
        result += mean
        return result

    def state_dict(self) -> dict[str, np.ndarray]:
        """Return copies of ``mean`` and ``std`` for storing in a checkpoint."""
        return {"mean": self.mean.copy(), "std": self.std.copy()}

    @classmethod
    def from_state_dict(cls, state: dict[str, np.ndarray]) -> "Standardizer":
        """Rebuild a ``Standardizer`` from the output of ``state_dict``."""
        missing = {"mean", "std"} - set(state)
        if missing:
            raise ValueError(f"Standardizer.from_state_dict: state is missing {sorted(missing)}")
        return cls(mean=np.array(state["mean"]), std=np.array(state["std"]))


def normalize(dataset: Dataset) -> tuple[Dataset, Standardizer]:
    """Standardize both splits with per-channel statistics of ``x_train``.

    Parameters
    ----------
    dataset : Dataset
        Dataset to standardize. It is not modified.

    Returns
    -------
    normalized : Dataset
        Copy of ``dataset`` with ``x_train`` and ``x_test`` replaced by
        ``(x - mean) / std``. The labels are shared, not copied.
    standardizer : Standardizer
        The statistics, fitted on ``dataset.x_train`` alone. Store
        ``standardizer.state_dict()`` with a model to preprocess new inputs
        the same way.
    """
    if not isinstance(dataset, Dataset):
        raise TypeError(f"normalize: dataset must be a Dataset, got {type(dataset).__name__}")
    standardizer = Standardizer.fit(dataset.x_train)
    normalized = dataclasses.replace(
        dataset,
        x_train=standardizer.transform(dataset.x_train),
        x_test=standardizer.transform(dataset.x_test),
    )
    return normalized, standardizer
