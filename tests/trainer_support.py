"""Fixtures shared by the trainer and command-line tests: small data on disk."""

from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest


@pytest.fixture(scope="session")
def mnist1d_cache(tmp_path_factory):
    """Cache directory holding the generated MNIST-1D data (generated once per session)."""
    from convgrad.datasets import load_mnist1d

    cache_dir = tmp_path_factory.mktemp("mnist1d-cache")
    load_mnist1d(cache_dir=cache_dir)
    return cache_dir


def write_idx_ubyte(path, array: np.ndarray) -> None:
    """Write a uint8 array in the IDX format (magic 0x08 = unsigned byte), gzip-compressed."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(struct.pack(">i", size) for size in array.shape)
    with gzip.open(path, "wb") as handle:
        handle.write(header + np.ascontiguousarray(array, dtype=np.uint8).tobytes())


def synthetic_images(num_samples: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Return 28x28 uint8 images whose class is the row of a bright horizontal band."""
    labels = rng.integers(0, 10, num_samples)
    images = rng.integers(0, 60, (num_samples, 28, 28))
    for index, label in enumerate(labels):
        top = 2 + 2 * label
        images[index, top : top + 3, 4:24] += 180
    return images.astype(np.uint8), labels.astype(np.uint8)


@pytest.fixture(scope="session")
def image_data_dir(tmp_path_factory):
    """Directory with the four Fashion-MNIST IDX files of a small synthetic set (200 train, 60 test)."""
    directory = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    for split, count in (("train", 200), ("t10k", 60)):
        images, labels = synthetic_images(count, rng)
        write_idx_ubyte(directory / f"{split}-images-idx3-ubyte.gz", images)
        write_idx_ubyte(directory / f"{split}-labels-idx1-ubyte.gz", labels)
    return directory
