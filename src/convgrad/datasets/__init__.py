"""Datasets for convgrad: MNIST-1D, Fashion-MNIST, MNIST and KMNIST.

Every loader returns a ``Dataset`` with float32 inputs shaped
``(N, C, *spatial)`` and int64 labels. Nothing is downloaded.

Datasets
--------
``"mnist1d"`` (default)
    4000 training and 1000 test signals of shape ``(1, 40)``, ten classes.
    ``load_mnist1d`` generates them with the ``mnist1d`` package
    (``pip install mnist1d==0.0.2.post1``) and its default arguments, then
    caches them in ``$XDG_CACHE_HOME/convgrad`` or ``~/.cache/convgrad``.
``"fashion-mnist"``
    60000 training and 10000 test images of shape ``(1, 28, 28)`` in [0, 1].
    On Debian or Ubuntu, ``sudo apt-get install dataset-fashion-mnist``
    installs the files in ``/usr/share/datasets/fashion-mnist``, which is
    searched by default. Otherwise pass a ``data_dir`` with the four files below.
``"mnist"``, ``"kmnist"``
    Same layout as Fashion-MNIST. ``data_dir`` is required.

The image datasets read the four standard IDX files, each raw or ``.gz``:
``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
``t10k-images-idx3-ubyte`` and ``t10k-labels-idx1-ubyte``.

Example
-------
>>> from convgrad.datasets import get_dataset, normalize, DataLoader
>>> data = get_dataset("mnist1d")  # doctest: +SKIP
>>> data, standardizer = normalize(data)  # doctest: +SKIP
>>> loader = DataLoader(data.x_train, data.y_train, batch_size=100, seed=0)  # doctest: +SKIP
>>> for x_batch, y_batch in loader.batches(epoch=0):  # doctest: +SKIP
...     pass

``normalize`` fits per-channel statistics on the training split only;
``standardizer.state_dict()`` stores them for a checkpoint. ``read_idx`` and
``write_idx`` read and write IDX arrays directly.
"""

from .batching import DataLoader, iterate_minibatches
from .dataset import Dataset, default_cache_dir
from .idx import read_idx, write_idx
from .image_loaders import (
    FASHION_MNIST_CLASS_NAMES,
    FASHION_MNIST_SYSTEM_DIR,
    IDX_FILE_NAMES,
    KMNIST_CLASS_NAMES,
    MNIST_CLASS_NAMES,
    load_fashion_mnist,
    load_kmnist,
    load_mnist,
)
from .mnist1d_loader import MNIST1D_CLASS_NAMES, load_mnist1d
from .preprocessing import Standardizer, normalize
from .registry import DATASET_NAMES, get_dataset

__all__ = [
    "DATASET_NAMES",
    "DataLoader",
    "Dataset",
    "FASHION_MNIST_CLASS_NAMES",
    "FASHION_MNIST_SYSTEM_DIR",
    "IDX_FILE_NAMES",
    "KMNIST_CLASS_NAMES",
    "MNIST1D_CLASS_NAMES",
    "MNIST_CLASS_NAMES",
    "Standardizer",
    "default_cache_dir",
    "get_dataset",
    "iterate_minibatches",
    "load_fashion_mnist",
    "load_kmnist",
    "load_mnist",
    "load_mnist1d",
    "normalize",
    "read_idx",
    "write_idx",
]
