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
from convgrad.kernels._parallel import chunk_threads, run_chunks, split_range

# Bytes of per-sample weight-gradient products summed at once.
PARTIAL_BYTES = 4 << 20


def _sample_ranges(n: int) -> list[tuple[int, int]]:
    """Split the samples into one range per thread of :func:`run_chunks` (one range without threadpoolctl)."""
    return split_range(n, chunk_threads())


def _per_sample_product(matrix: np.ndarray, batch: np.ndarray, geometry: ConvGeometry) -> np.ndarray:
    """Compute ``matrix @ batch[n]`` for every sample ``n`` of a ``(N, rows, positions)`` batch, in chunks."""
    n = batch.shape[0]
    out = np.empty((n, matrix.shape[0], batch.shape[2]), dtype=batch.dtype)

    def work(item, _):
        start, stop = item
        np.matmul(matrix, batch[start:stop], out=out[start:stop])

    run_chunks(_sample_ranges(n), lambda: None, work, geometry.flops)
    return out


@np.errstate(invalid="ignore")
def forward(x: np.ndarray, weight: np.ndarray, geometry: ConvGeometry) -> np.ndarray:
    """Compute ``W @ x[n]`` for every sample: ``(N, C_out, *L)``."""
    n = x.shape[0]
    w = weight.reshape(geometry.out_channels, geometry.in_channels)
    out = _per_sample_product(w, x.reshape(n, geometry.in_channels, -1), geometry)
    return out.reshape(n, geometry.out_channels, *geometry.output_size)


@np.errstate(invalid="ignore")
def input_grad(weight: np.ndarray, grad_output: np.ndarray, geometry: ConvGeometry) -> np.ndarray:
    """Compute ``W^T @ go[n]`` for every sample: ``(N, C_in, *L)``."""
    n = grad_output.shape[0]
    w_t = weight.reshape(geometry.out_channels, geometry.in_channels).T
    grad = _per_sample_product(w_t, grad_output.reshape(n, geometry.out_channels, -1), geometry)
    return grad.reshape(n, geometry.in_channels, *geometry.input_size)


@np.errstate(invalid="ignore")
def weight_grad(x: np.ndarray, grad_output: np.ndarray, geometry: ConvGeometry) -> np.ndarray:
    """Compute ``sum_n go[n] @ x[n]^T``: ``(C_out, C_in, 1, ..., 1)``."""
    n = x.shape[0]
    x3 = x.reshape(n, geometry.in_channels, -1)
    go3 = grad_output.reshape(n, geometry.out_channels, -1)
    positions = x3.shape[2]
    threads = chunk_threads()

    # The per-sample products of a chunk, (chunk, C_out, C_in), stay below
    # PARTIAL_BYTES and, over all threads, below half of the input (here the
    # im2col matrix).
    by_speed = PARTIAL_BYTES // (geometry.out_channels * geometry.in_channels * x.dtype.itemsize)
    by_memory = n * positions // (2 * geometry.out_channels * threads)
    chunk = max(1, min(-(-n // threads), by_speed, by_memory))
    items = [(start, min(n, start + chunk)) for start in range(0, n, chunk)]

    def work(item, grad):
        start, stop = item
        grad += np.matmul(go3[start:stop], x3[start:stop].transpose(0, 2, 1)).sum(axis=0)

    partials = run_chunks(
        items, lambda: np.zeros((geometry.out_channels, geometry.in_channels), dtype=x.dtype), work, geometry.flops
    )
    grad = partials[0]
    for partial in partials[1:]:
        grad += partial
    return grad.reshape(geometry.weight_shape)
