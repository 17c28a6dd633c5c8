"""Fully connected layer."""

from __future__ import annotations

import numpy as np

from convgrad.nn import init
from convgrad.nn._validation import (
    as_float_array,
    check_float_dtype,
    check_grad_shape,
    check_positive_int,
    check_rng,
    require_forward,
)
from convgrad.nn.module import Module, Parameter


class Linear(Module):
    """Affine map ``y = x @ weight.T + bias``.

    Parameters
    ----------
    in_features, out_features : int
        Sizes of the last axis of the input and of the output.
    bias : bool
        Whether to add a learned bias.
    dtype : numpy floating dtype
        dtype of the parameters (default float32).
    rng : numpy.random.Generator, optional
        Source of the initial values. None uses a fresh unseeded generator.

    Attributes
    ----------
    weight : Parameter, shape (out_features, in_features)
        Initialized uniform in ``±1 / sqrt(in_features)`` (PyTorch's default).
    bias : Parameter of shape (out_features,), or None
        Initialized uniform in ``±1 / sqrt(in_features)``.

    Notes
    -----
    Input has shape ``(N, in_features)``, but any number of leading axes is
    accepted, as in PyTorch, and the output keeps them:
    ``(*, in_features) -> (*, out_features)``.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        dtype=np.float32,
        rng: np.random.Generator | None = None,
    ):
        super().__init__()
        self.in_features = check_positive_int(in_features, "in_features")
        self.out_features = check_positive_int(out_features, "out_features")
        dtype = check_float_dtype(dtype)
        rng = check_rng(rng)

        self.weight = Parameter(np.empty((self.out_features, self.in_features), dtype=dtype))
        self.bias = Parameter(np.empty(self.out_features, dtype=dtype)) if bias else None
        init.default_weight_and_bias(self.weight, self.bias, rng)

        self.input = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = as_float_array(x)
        if x.ndim < 1 or x.shape[-1] != self.in_features:
            raise ValueError(
                f"Linear expects input of shape (N, {self.in_features}), got shape {x.shape}"
            )
        self.input = x

        output = x @ self.weight.data.T
        if self.bias is not None:
            output += self.bias.data
        return output

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        x = require_forward(self.input, "Linear")
        grad_output = check_grad_shape(grad_output, x.shape[:-1] + (self.out_features,), "Linear")

        # Collapse leading axes so that both gradients are single matrix products.
        x_2d = x.reshape(-1, self.in_features)
        grad_2d = grad_output.reshape(-1, self.out_features)
        self.weight.grad += grad_2d.T @ x_2d
        if self.bias is not None:
            self.bias.grad += grad_2d.sum(axis=0)

        return grad_output @ self.weight.data

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"
