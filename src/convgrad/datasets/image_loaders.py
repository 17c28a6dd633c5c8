"""Loaders for MNIST, Fashion-MNIST and KMNIST from local IDX files.

All three datasets ship as the same four IDX files (see ``convgrad.datasets.idx``)::

    train-images-idx3-ubyte   uint8 (60000, 28, 28)
    train-labels-idx1-ubyte   uint8 (60000,)
    t10k-images-idx3-ubyte    uint8 (10000, 28, 28)
    t10k-labels-idx1-ubyte    uint8 (10000,)

Each file may be raw or gzip-compressed with a ``.gz`` suffix, and one
directory may mix both. Nothing is downloaded. On Debian and Ubuntu,
``apt-get install dataset-fashion-mnist`` installs Fashion-MNIST as the four
``.gz`` files in ``/usr/share/datasets/fashion-mnist``, which
``load_fashion_mnist`` searches when no directory is given. MNIST and KMNIST
have no Debian package, so their four files must be placed in a directory
passed as ``data_dir``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .dataset import Dataset
from .idx import read_idx

__all__ = [
    "load_mnist",
    "load_fashion_mnist",
    "load_kmnist",
    "IDX_FILE_NAMES",
    "FASHION_MNIST_SYSTEM_DIR",
    "FASHION_MNIST_CLASS_NAMES",
    "MNIST_CLASS_NAMES",
    "KMNIST_CLASS_NAMES",
]

# Split -> (images file, labels file), without the optional .gz suffix.
IDX_FILE_NAMES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}

# Install directory of the four gzip-compressed files of the Debian package
# dataset-fashion-mnist (version 0.0~git20200523.55506a9-1 in Debian 12).
FASHION_MNIST_SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")

FASHION_MNIST_CLASS_NAMES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
MNIST_CLASS_NAMES = tuple(str(digit) for digit in range(10))
# Romanized readings of the ten hiragana characters of KMNIST, in label order.
KMNIST_CLASS_NAMES = ("o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo")

_IMAGE_SIZE = 28
_NUM_CLASSES = 10


def _file_list() -> str:
    names = [name for pair in IDX_FILE_NAMES.values() for name in pair]
    return ", ".join(names)


def _find_idx_file(directory: Path, base_name: str) -> Path | None:
    """Return ``directory/base_name`` or, failing that, ``directory/base_name.gz``."""
    for candidate in (directory / base_name, directory / f"{base_name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _read_split(directory: Path, split: str, display_name: str) -> tuple[np.ndarray, np.ndarray]:
    """Read one split's images and labels and check them against each other."""
    images_name, labels_name = IDX_FILE_NAMES[split]
    images_path = _find_idx_file(directory, images_name)
    labels_path = _find_idx_file(directory, labels_name)
    images = read_idx(images_path)
    labels = read_idx(labels_path)

    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (_IMAGE_SIZE, _IMAGE_SIZE):
        raise ValueError(
            f"{display_name}: {images_path} must contain uint8 images of shape "
            f"(N, {_IMAGE_SIZE}, {_IMAGE_SIZE}), got {images.dtype} {images.shape}"
        )
    if labels.dtype != np.uint8 or labels.ndim != 1:
        raise ValueError(
            f"{display_name}: {labels_path} must contain a 1-D uint8 label array, "
            f"got {labels.dtype} {labels.shape}"
        )
    if images.shape[0] != labels.shape[0]:
        raise ValueError(
            f"{display_name}: {images_path} has {images.shape[0]} images but "
            f"{labels_path} has {labels.shape[0]} labels"
        )
    if labels.size and labels.max() >= _NUM_CLASSES:
        raise ValueError(
            f"{display_name}: {labels_path} has label {labels.max()}, labels must lie in "
            f"[0, {_NUM_CLASSES})"
        )

    # Scale to [0, 1] and add the channel axis: (N, 28, 28) uint8 -> (N, 1, 28, 28) float32.
    x = images.astype(np.float32)[:, np.newaxis, :, :]
    x /= np.float32(255)
    return x, labels.astype(np.int64)


def _load_idx_dataset(
    name: str,
    display_name: str,
    directory: Path,
    how_to_get: str,
    class_names: tuple[str, ...],
) -> Dataset:
    """Load the four standard IDX files from ``directory`` into a ``Dataset``.

    Raises FileNotFoundError, ending with ``how_to_get``, when the directory or
    any of the four files is missing.
    """
    if not directory.is_dir():
        raise FileNotFoundError(
            f"{display_name} directory {str(directory)!r} does not exist. {how_to_get}"
        )
    required = [base_name for pair in IDX_FILE_NAMES.values() for base_name in pair]
    missing = [base_name for base_name in required if _find_idx_file(directory, base_name) is None]
    if len(missing) == len(required):
        # ``how_to_get`` names all four files, so they are not repeated here.
        raise FileNotFoundError(f"{display_name} files not found in {str(directory)!r}. {how_to_get}")
    if missing:
        raise FileNotFoundError(
            f"{display_name} files not found in {str(directory)!r}: "
            f"{', '.join(missing)} (raw or .gz). {how_to_get}"
        )

    x_train, y_train = _read_split(directory, "train", display_name)
    x_test, y_test = _read_split(directory, "test", display_name)
    return Dataset(
        name=name,
        x_train=x_train,
        y_train=y_train,
        x_test=x_test,
        y_test=y_test,
        num_classes=_NUM_CLASSES,
        class_names=class_names,
    )


def _place_files_hint(display_name: str) -> str:
    return (
        f"To use {display_name}, put the four files {_file_list()} (each raw or .gz) "
        "in one directory and pass it as data_dir (--data-dir on the command line)."
    )


def load_fashion_mnist(data_dir: str | os.PathLike | None = None) -> Dataset:
    """Load Fashion-MNIST (Xiao, Rasul and Vollgraf, 2017) from local IDX files.

    Parameters
    ----------
    data_dir : str or os.PathLike, optional
        Directory with the four IDX files. When None, the files are read from
        ``/usr/share/datasets/fashion-mnist``, where the Debian package
        ``dataset-fashion-mnist`` installs them. A given ``data_dir`` is the
        only place searched.

    Returns
    -------
    Dataset
        Images scaled to [0, 1] as float32 ``(N, 1, 28, 28)``, int64 labels in
        [0, 10) and the ten Fashion-MNIST class names. The official files give
        60000 training and 10000 test images.

    Raises
    ------
    FileNotFoundError
        If the directory or one of the files is missing. The message gives the
        apt command and the file names to place in ``data_dir``.
    ValueError
        If a file is not valid IDX, or the images and labels do not match.
    """
    how_to_get = (
        "On Debian or Ubuntu, install Fashion-MNIST into "
        f"{FASHION_MNIST_SYSTEM_DIR} with: sudo apt-get install dataset-fashion-mnist. "
        + _place_files_hint("Fashion-MNIST")
    )
    directory = FASHION_MNIST_SYSTEM_DIR if data_dir is None else Path(data_dir)
    return _load_idx_dataset(
        "fashion-mnist", "Fashion-MNIST", directory, how_to_get, FASHION_MNIST_CLASS_NAMES
    )


def _require_data_dir(data_dir: str | os.PathLike | None, display_name: str) -> Path:
    if data_dir is None:
        raise FileNotFoundError(
            f"{display_name} has no default location and no data_dir was given. "
            + _place_files_hint(display_name)
        )
    return Path(data_dir)


def load_mnist(data_dir: str | os.PathLike | None) -> Dataset:
    """Load MNIST handwritten digits from the four IDX files in ``data_dir``.

    Parameters
    ----------
    data_dir : str or os.PathLike
        Directory with the four IDX files. None raises FileNotFoundError,
        because MNIST has no default location.

    Returns
    -------
    Dataset
        Images scaled to [0, 1] as float32 ``(N, 1, 28, 28)``, int64 labels in
        [0, 10) and class names ``"0"`` to ``"9"``.

    Raises
    ------
    FileNotFoundError
        If ``data_dir`` is None or misses one of the files. The message lists
        the files to place there.
    ValueError
        If a file is not valid IDX, or the images and labels do not match.
    """
    directory = _require_data_dir(data_dir, "MNIST")
    return _load_idx_dataset("mnist", "MNIST", directory, _place_files_hint("MNIST"), MNIST_CLASS_NAMES)


def load_kmnist(data_dir: str | os.PathLike | None) -> Dataset:
    """Load Kuzushiji-MNIST (KMNIST) from the four IDX files in ``data_dir``.

    KMNIST uses the same file names and layout as MNIST. Its ten classes are
    cursive hiragana characters, named here by their romanized readings.

    Parameters
    ----------
    data_dir : str or os.PathLike
        Directory with the four IDX files. None raises FileNotFoundError.

    Returns
    -------
    Dataset
        As ``load_mnist``, with ``KMNIST_CLASS_NAMES``.

    Raises
    ------
    FileNotFoundError
        If ``data_dir`` is None or misses one of the files.
    ValueError
        If a file is not valid IDX, or the images and labels do not match.
    """
    directory = _require_data_dir(data_dir, "KMNIST")
    return _load_idx_dataset("kmnist", "KMNIST", directory, _place_files_hint("KMNIST"), KMNIST_CLASS_NAMES)
