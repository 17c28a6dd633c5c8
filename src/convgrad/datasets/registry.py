"""Look up a dataset loader by name."""

from __future__ import annotations

import os

from .dataset import Dataset
from .image_loaders import load_fashion_mnist, load_kmnist, load_mnist
from .mnist1d_loader import load_mnist1d

__all__ = ["get_dataset", "DATASET_NAMES"]

DATASET_NAMES = ("mnist1d", "fashion-mnist", "mnist", "kmnist")


def get_dataset(
    name: str,
    data_dir: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
) -> Dataset:
    """Load a dataset by name.

    Parameters
    ----------
    name : str
        One of ``DATASET_NAMES``: ``"mnist1d"`` (the default dataset,
        generated offline), ``"fashion-mnist"``, ``"mnist"`` or ``"kmnist"``.
        Case and ``_`` in place of ``-`` are accepted.
    data_dir : str or os.PathLike, optional
        Directory of the IDX files for the image datasets; ignored for
        ``"mnist1d"``. See ``load_fashion_mnist`` and ``load_mnist``.
    cache_dir : str or os.PathLike, optional
        Cache directory for ``"mnist1d"``; ignored for the image datasets.

    Raises
    ------
    ValueError
        If ``name`` is not a known dataset. The message lists the accepted names.
    """
    if not isinstance(name, str):
        raise TypeError(f"get_dataset: name must be a str, got {type(name).__name__}")
    key = name.strip().lower().replace("_", "-")

    if key == "mnist1d":
        return load_mnist1d(cache_dir=cache_dir)
    if key == "fashion-mnist":
        return load_fashion_mnist(data_dir)
    if key == "mnist":
        return load_mnist(data_dir)
    if key == "kmnist":
        return load_kmnist(data_dir)
    raise ValueError(
        f"get_dataset: unknown dataset name {name!r}. Accepted names: {', '.join(DATASET_NAMES)}"
    )
