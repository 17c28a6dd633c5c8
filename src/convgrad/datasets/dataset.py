"""The ``Dataset`` container shared by every loader, and the default cache directory."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["Dataset", "default_cache_dir"]


def default_cache_dir() -> Path:
    """Return ``$XDG_CACHE_HOME/convgrad``, or ``~/.cache/convgrad`` when that variable is unset.

    As the XDG Base Directory specification requires, an empty or relative
    ``XDG_CACHE_HOME`` is ignored. The directory is not created here.
    """
    xdg_cache_home = os.environ.get("XDG_CACHE_HOME", "")
    if xdg_cache_home and os.path.isabs(xdg_cache_home):
        return Path(xdg_cache_home) / "convgrad"
    return Path.home() / ".cache" / "convgrad"


def _check_split(dataset_name: str, split: str, x: object, y: object, num_classes: int) -> None:
    if not isinstance(x, np.ndarray) or x.dtype != np.float32 or x.ndim < 3:
        description = (
            f"{x.dtype} array of shape {x.shape}" if isinstance(x, np.ndarray) else type(x).__name__
        )
        raise TypeError(
            f"Dataset {dataset_name!r}: x_{split} must be a float32 array shaped "
            f"(N, C, *spatial) with at least 3 dimensions, got {description}"
        )
    if not isinstance(y, np.ndarray) or y.dtype != np.int64 or y.ndim != 1:
        description = (
            f"{y.dtype} array of shape {y.shape}" if isinstance(y, np.ndarray) else type(y).__name__
        )
        raise TypeError(
            f"Dataset {dataset_name!r}: y_{split} must be a 1-D int64 array, got {description}"
        )
    if x.shape[0] != y.shape[0]:
        raise ValueError(
            f"Dataset {dataset_name!r}: x_{split} has {x.shape[0]} samples but "
            f"y_{split} has {y.shape[0]} labels"
        )
    if y.size and (y.min() < 0 or y.max() >= num_classes):
        raise ValueError(
            f"Dataset {dataset_name!r}: y_{split} must lie in [0, {num_classes}), "
            f"got labels from {y.min()} to {y.max()}"
        )


@dataclass(frozen=True)
class Dataset:
    """A classification dataset split into training and test arrays.

    The constructor checks the types, shapes and label range below, so every
    loader returns arrays that a model can consume without further checks.

    Attributes
    ----------
    name : str
        Short name, as accepted by ``get_dataset`` (for example ``"mnist1d"``).
    x_train, x_test : numpy.ndarray
        float32 inputs shaped ``(N, C, *spatial)``: ``(N, 1, 40)`` for
        MNIST-1D and ``(N, 1, 28, 28)`` for the image sets. Both splits have
        the same ``(C, *spatial)``.
    y_train, y_test : numpy.ndarray
        int64 labels shaped ``(N,)``, each in ``[0, num_classes)``.
    num_classes : int
        Number of classes.
    class_names : tuple of str or None
        Human-readable name of each class index, or None when the classes have
        no names.
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int
    class_names: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if isinstance(self.num_classes, bool) or not isinstance(self.num_classes, int) or self.num_classes < 1:
            raise ValueError(
                f"Dataset {self.name!r}: num_classes must be a positive int, got {self.num_classes!r}"
            )

        _check_split(self.name, "train", self.x_train, self.y_train, self.num_classes)
        _check_split(self.name, "test", self.x_test, self.y_test, self.num_classes)
        if self.x_train.shape[1:] != self.x_test.shape[1:]:
            raise ValueError(
                f"Dataset {self.name!r}: x_train samples have shape {self.x_train.shape[1:]} "
                f"but x_test samples have shape {self.x_test.shape[1:]}"
            )

        if self.class_names is not None:
            if not isinstance(self.class_names, tuple) or not all(
                isinstance(class_name, str) for class_name in self.class_names
            ):
                raise TypeError(
                    f"Dataset {self.name!r}: class_names must be a tuple of str or None, "
                    f"got {self.class_names!r}"
                )
            if len(self.class_names) != self.num_classes:
                raise ValueError(
                    f"Dataset {self.name!r}: class_names has {len(self.class_names)} entries "
                    f"but num_classes is {self.num_classes}"
                )

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one sample, ``(C, *spatial)``."""
        return self.x_train.shape[1:]

    def __repr__(self) -> str:
        return (
            f"Dataset(name={self.name!r}, x_train={self.x_train.shape}, x_test={self.x_test.shape}, "
            f"num_classes={self.num_classes})"
        )
