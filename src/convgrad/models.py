"""Named model presets for the training command line.

Each preset is a function ``build(num_classes, rng, dtype) -> Sequential`` that
draws every initial weight from ``rng``, so one seeded ``numpy.random.Generator``
fixes the whole model. Layers that need randomness while training (``Dropout``)
keep a reference to the same generator.

The registry ``PRESETS`` maps each name to a :class:`Preset` that also records
the per-sample input shape the model expects and the datasets it is meant for.
``DEFAULT_PRESETS`` maps each dataset name to the preset ``convgrad train``
uses when ``--model`` is not given.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from convgrad.nn.activation import ReLU
from convgrad.nn.container import Sequential
from convgrad.nn.conv import Conv1d, Conv2d
from convgrad.nn.dropout import Dropout
from convgrad.nn.linear import Linear
from convgrad.nn.normalization import BatchNorm1d, BatchNorm2d
from convgrad.nn.pooling import GlobalAvgPool, MaxPool1d, MaxPool2d
from convgrad.nn.reshape import Flatten


def _conv1d_bn_relu(in_channels, out_channels, kernel_size, rng, dtype):
    """Return a bias-free 'same' Conv1d followed by BatchNorm1d and ReLU.

    The convolution has no bias because the batch normalization right after it
    subtracts the per-channel mean, which would cancel any bias.
    """
    return [
        Conv1d(in_channels, out_channels, kernel_size, padding="same", bias=False, rng=rng, dtype=dtype),
        BatchNorm1d(out_channels, dtype=dtype),
        ReLU(),
    ]


def _conv2d_bn_relu(in_channels, out_channels, rng, dtype):
    """Return a bias-free 3x3 'same' Conv2d followed by BatchNorm2d and ReLU."""
    return [
        Conv2d(in_channels, out_channels, 3, padding="same", bias=False, rng=rng, dtype=dtype),
        BatchNorm2d(out_channels, dtype=dtype),
        ReLU(),
    ]


def build_mnist1d_cnn(num_classes: int, rng: np.random.Generator, dtype=np.float32) -> Sequential:
    """Build the default MNIST-1D network (97,578 parameters for 10 classes).

    Three blocks of two Conv1d-BatchNorm1d-ReLU units with 32, 64 and 128
    channels, each block ending in ``MaxPool1d(2)``, so a length-40 signal
    shrinks 40 -> 20 -> 10 -> 5. Global average pooling, ``Dropout(0.2)`` and
    ``Linear(128, num_classes)`` follow. The first convolution has kernel 5,
    the other five kernel 3.

    Input (N, 1, 40) or any length that survives three halvings; output
    (N, num_classes) logits.
    """
    layers = []
    layers += _conv1d_bn_relu(1, 32, 5, rng, dtype)
    layers += _conv1d_bn_relu(32, 32, 3, rng, dtype)
    layers.append(MaxPool1d(2))
    layers += _conv1d_bn_relu(32, 64, 3, rng, dtype)
    layers += _conv1d_bn_relu(64, 64, 3, rng, dtype)
    layers.append(MaxPool1d(2))
    layers += _conv1d_bn_relu(64, 128, 3, rng, dtype)
    layers += _conv1d_bn_relu(128, 128, 3, rng, dtype)
    layers.append(MaxPool1d(2))
    layers += [
        GlobalAvgPool(),
        Flatten(),
        Dropout(0.2, rng=rng),
        Linear(128, num_classes, rng=rng, dtype=dtype),
    ]
    return Sequential(*layers)


def build_tiny1d(num_classes: int, rng: np.random.Generator, dtype=np.float32) -> Sequential:
    """Build a two-convolution 1-D network for fast tests (642 parameters for 10 classes).

    Conv1d(1, 8, 5)-BatchNorm1d-ReLU-MaxPool1d(2), Conv1d(8, 16, 3)-
    BatchNorm1d-ReLU-MaxPool1d(2), global average pooling, Dropout(0.1) and
    ``Linear(16, num_classes)``. Input (N, 1, L) with L >= 4.
    """
    layers = []
    layers += _conv1d_bn_relu(1, 8, 5, rng, dtype)
    layers.append(MaxPool1d(2))
    layers += _conv1d_bn_relu(8, 16, 3, rng, dtype)
    layers.append(MaxPool1d(2))
    layers += [
        GlobalAvgPool(),
        Flatten(),
        Dropout(0.1, rng=rng),
        Linear(16, num_classes, rng=rng, dtype=dtype),
    ]
    return Sequential(*layers)


def build_fashion_cnn(num_classes: int, rng: np.random.Generator, dtype=np.float32) -> Sequential:
    """Build the default network for 28x28 grayscale images.

    Two blocks of two 3x3 Conv2d-BatchNorm2d-ReLU units with 32 and 64
    channels, each block ending in ``MaxPool2d(2)`` (28 -> 14 -> 7), then
    ``Flatten``, ``Dropout(0.3)`` and ``Linear(64 * 7 * 7, num_classes)``.

    Input (N, 1, 28, 28); output (N, num_classes) logits.
    """
    layers = []
    layers += _conv2d_bn_relu(1, 32, rng, dtype)
    layers += _conv2d_bn_relu(32, 32, rng, dtype)
    layers.append(MaxPool2d(2))
    layers += _conv2d_bn_relu(32, 64, rng, dtype)
    layers += _conv2d_bn_relu(64, 64, rng, dtype)
    layers.append(MaxPool2d(2))
    layers += [
        Flatten(),
        Dropout(0.3, rng=rng),
        Linear(64 * 7 * 7, num_classes, rng=rng, dtype=dtype),
    ]
    return Sequential(*layers)


def build_fashion_small(num_classes: int, rng: np.random.Generator, dtype=np.float32) -> Sequential:
    """Build a small 2-D network for tests (1,442 parameters for 10 classes).

    Conv2d(1, 8, 3)-BatchNorm2d-ReLU-MaxPool2d(2), Conv2d(8, 16, 3)-
    BatchNorm2d-ReLU-MaxPool2d(2), global average pooling and
    ``Linear(16, num_classes)``. Input (N, 1, H, W) with H, W >= 4.
    """
    layers = []
    layers += _conv2d_bn_relu(1, 8, rng, dtype)
    layers.append(MaxPool2d(2))
    layers += _conv2d_bn_relu(8, 16, rng, dtype)
    layers.append(MaxPool2d(2))
    layers += [
        GlobalAvgPool(),
        Flatten(),
        Linear(16, num_classes, rng=rng, dtype=dtype),
    ]
    return Sequential(*layers)


@dataclass(frozen=True)
class Preset:
    """A named model builder and the data it is meant for.

    Attributes
    ----------
    name : str
        Registry key, as given to ``convgrad train --model``.
    build : callable
        ``build(num_classes, rng, dtype) -> Sequential``.
    input_shape : tuple of int
        Per-sample input shape (C, *spatial) of the datasets it suits.
    datasets : tuple of str
        Dataset names whose samples have ``input_shape``.
    description : str
        One line for ``--help`` and listings.
    """

    name: str
    build: Callable[..., Sequential]
    input_shape: tuple[int, ...]
    datasets: tuple[str, ...]
    description: str


PRESETS: dict[str, Preset] = {
    preset.name: preset
    for preset in (
        Preset(
            "mnist1d-cnn",
            build_mnist1d_cnn,
            (1, 40),
            ("mnist1d",),
            "six Conv1d-BatchNorm-ReLU layers (32, 64, 128 channels), global average pooling, linear",
        ),
        Preset("tiny1d", build_tiny1d, (1, 40), ("mnist1d",), "two small Conv1d layers, for tests"),
        Preset(
            "fashion-cnn",
            build_fashion_cnn,
            (1, 28, 28),
            ("fashion-mnist", "mnist"),
            "four 3x3 Conv2d-BatchNorm-ReLU layers (32, 64 channels), dropout, linear",
        ),
        Preset("fashion-small", build_fashion_small, (1, 28, 28), ("fashion-mnist", "mnist"), "two small Conv2d layers, for tests"),
    )
}

DEFAULT_PRESETS: dict[str, str] = {
    "mnist1d": "mnist1d-cnn",
    "fashion-mnist": "fashion-cnn",
    "mnist": "fashion-cnn",
}


def get_preset(name: str) -> Preset:
    """Return the preset called ``name``.

    Raises
    ------
    ValueError
        If ``name`` is not in ``PRESETS``; the message lists the known names.
    """
    if name not in PRESETS:
        raise ValueError(f"unknown model preset {name!r}; known presets: {', '.join(PRESETS)}")
    return PRESETS[name]


def build_model(name: str, num_classes: int, rng: np.random.Generator, dtype=np.float32) -> Sequential:
    """Build the preset ``name`` with ``num_classes`` outputs from ``rng``."""
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    return get_preset(name).build(int(num_classes), rng, np.dtype(dtype))
