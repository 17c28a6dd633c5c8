"""Pointwise convolutions: a 1x...x1 kernel, stride 1, no padding and one group.

The convolution is then a matrix product per sample, on the input as it is
stored, with no im2col copy::

    out[n] = W @ x[n]            W: (C_out, C_in), x[n]: (C_in, prod(L))
    dx[n]  = W^T @ go[n]
    dW     = sum_n go[n] @ x[n]^T
"""

from __future__ import annotations

import numpy as np

from convgrad.geometry import ConvGeometry

# Bytes of per-sample weight-gradient products summed at once.
PARTIAL_BYTES = 4 << 20


@np.errstate(invalid="ignore")
def forward(x: np.ndarray, weight: np.ndarray, geometry: ConvGeometry) -> np.ndarray:
    """Compute ``W @ x[n]`` for every sample: ``(N, C_out, *L)``."""
    n = x.shape[0]
    w = weight.reshape(geometry.out_channels, geometry.in_channels)
    out = np.matmul(w, x.reshape(n, geometry.in_channels, -1))
    return out.reshape(n, geometry.out_channels, *geometry.output_size)


@np.errstate(invalid="ignore")
def input_grad(weight: np.ndarray, grad_output: np.ndarray, geometry: ConvGeometry) -> np.ndarray:
    """Compute ``W^T @ go[n]`` for every sample: ``(N, C_in, *L)``."""
    n = grad_output.shape[0]
    w = weight.reshape(geometry.out_channels, geometry.in_channels)
    grad = np.matmul(w.T, grad_output.reshape(n, geometry.out_channels, -1))
    return grad.reshape(n, geometry.in_channels, *geometry.input_size)


@np.errstate(invalid="ignore")
def weight_grad(x: np.ndarray, grad_output: np.ndarray, geometry: ConvGeometry) -> np.ndarray:
    """Compute ``sum_n go[n] @ x[n]^T``: ``(C_out, C_in, 1, ..., 1)``."""
    n = x.shape[0]
    x3 = x.reshape(n, geometry.in_channels, -1)
    go3 = grad_output.reshape(n, geometry.out_channels, -1)
    positions = x3.shape[2]

    # The per-sample products of a chunk, (chunk, C_out, C_in), stay below
    # PARTIAL_BYTES and below half of the input (here the im2col matrix).
    by_speed = PARTIAL_BYTES // (geometry.out_channels * geometry.in_channels * x.dtype.itemsize)
    by_memory = n * positions // (2 * geometry.out_channels)
    chunk = max(1, min(n, by_speed, by_memory))
    grad = np.zeros((geometry.out_channels, geometry.in_channels), dtype=x.dtype)
    for start in range(0, n, chunk):
        stop = min(n, start + chunk)
        grad += np.matmul(go3[start:stop], x3[start:stop].transpose(0, 2, 1)).sum(axis=0)
    return grad.reshape(geometry.weight_shape)
