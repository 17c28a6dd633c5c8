"""Layers that only change the shape of their input."""

from __future__ import annotations

import numbers

import numpy as np

from convgrad.nn._validation import as_float_array, check_grad_shape, require_forward
from convgrad.nn.module import Module


class Flatten(Module):
    """Merge axes ``start_dim`` to ``end_dim`` (inclusive) into one.

    The defaults turn ``(N, C, *spatial)`` into ``(N, C * prod(spatial))``.
    Negative axes count from the end, as in PyTorch.
    """

    def __init__(self, start_dim: int = 1, end_dim: int = -1):
        super().__init__()
        for name, value in (("start_dim", start_dim), ("end_dim", end_dim)):
            if isinstance(value, bool) or not isinstance(value, numbers.Integral):
                raise TypeError(f"{name} must be an int, got {value!r}")
        self.start_dim = int(start_dim)
        self.end_dim = int(end_dim)
        self.input_shape = None
        self.output_shape = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = as_float_array(x)
        start = self.start_dim + x.ndim if self.start_dim < 0 else self.start_dim
        end = self.end_dim + x.ndim if self.end_dim < 0 else self.end_dim
        if not 0 <= start <= end < x.ndim:
            raise ValueError(
                f"Flatten(start_dim={self.start_dim}, end_dim={self.end_dim}) needs "
                f"0 <= start_dim <= end_dim < ndim after wrapping negative axes, got input of shape {x.shape}"
            )
        self.input_shape = x.shape
        # The explicit product (not -1) also works when another axis has length 0.
        merged = int(np.prod(x.shape[start:end + 1]))
        output = x.reshape(x.shape[:start] + (merged,) + x.shape[end + 1:])
        self.output_shape = output.shape
        return output

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        input_shape = require_forward(self.input_shape, "Flatten")
        grad_output = check_grad_shape(grad_output, self.output_shape, "Flatten")
        return grad_output.reshape(input_shape)

    def extra_repr(self) -> str:
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"
