"""Inverted dropout."""

from __future__ import annotations

import numbers

import numpy as np

from convgrad.nn._validation import as_float_array, check_grad_shape, check_rng
from convgrad.nn.module import Module


class Dropout(Module):
    """Zero each element with probability ``p`` in training mode and scale the rest.

    Kept elements are multiplied by ``1 / (1 - p)`` so the expected output
    equals the input, and evaluation mode is the identity. With ``p == 1``
    every element is zeroed.

    Parameters
    ----------
    p : float
        Drop probability in ``[0, 1]`` (default 0.5).
    rng : numpy.random.Generator, optional
        Source of the masks. None uses a fresh unseeded generator. Passing a
        seeded generator makes the sequence of masks reproducible.

    Attributes
    ----------
    mask : numpy.ndarray or None
        Scaled mask of the last training-mode forward (``0`` or ``1 / (1 - p)``
        per element, in the input's dtype), or None after an evaluation-mode forward.
    """

    def __init__(self, p: float = 0.5, rng: np.random.Generator | None = None):
        super().__init__()
        if isinstance(p, bool) or not isinstance(p, numbers.Real) or not 0 <= p <= 1:
            raise ValueError(f"p must be a probability in [0, 1], got {p!r}")
        self.p = float(p)
        self.rng = check_rng(rng)
        self.mask = None
        self.input_shape = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = as_float_array(x)
        self.input_shape = x.shape
        if not self.training or self.p == 0:
            self.mask = None
            return x

        keep = self.rng.random(x.shape) >= self.p
        scale = 0.0 if self.p == 1 else 1.0 / (1.0 - self.p)
        self.mask = keep.astype(x.dtype) * scale
        return x * self.mask

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        if self.input_shape is None:
            raise RuntimeError("Dropout.backward was called before forward")
        grad_output = check_grad_shape(grad_output, self.input_shape, "Dropout")
        if self.mask is None:
            return grad_output
        return grad_output * self.mask

    def extra_repr(self) -> str:
        return f"p={self.p}"
