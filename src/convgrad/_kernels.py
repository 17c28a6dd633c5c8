"""Vectorized kernels behind :mod:`convgrad.conv`.

All functions here take batched arrays that already have the compute dtype,
and a validated :class:`~convgrad.geometry.ConvGeometry`. Inputs arrive
padded; input gradients leave padded (the caller applies the padding's
adjoint).

im2col
------
A strided view of the padded input with shape ``(N, G, C_g, *K, *O)`` lists,
for every output position, the input elements its window reads. Copying a
group's view into a ``(N, C_g prod(K), prod(O))`` matrix ("columns") turns
the forward pass into one matrix product per group and sample::

    out[n, group] = W_g @ cols[n]          W_g: (C_out / G, C_g prod(K))

The weight gradient is ``sum_n go[n, group] @ cols[n]^T``. The input
gradient multiplies ``W_g^T @ go[n, group]`` and scatters the columns back
("col2im"), adding one kernel offset at a time.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided

from convgrad.geometry import ConvGeometry


def windows(x_padded: np.ndarray, geometry: ConvGeometry) -> np.ndarray:
    """Return a read-only view of shape ``(N, G, C_g, *K, *O)`` over the padded input.

    ``view[n, g, c, *k, *y] == x_padded[n, g C_g + c, *(y s + k r)]``.
    """
    n, channels = x_padded.shape[:2]
    item_strides = x_padded.strides
    spatial_strides = item_strides[2:]
    shape = (
        n,
        geometry.groups,
        geometry.group_in_channels,
        *geometry.kernel_size,
        *geometry.output_size,
    )
    strides = (
        item_strides[0],
        item_strides[1] * geometry.group_in_channels,
        item_strides[1],
        *(st * r for st, r in zip(spatial_strides, geometry.dilation)),
        *(st * s for st, s in zip(spatial_strides, geometry.stride)),
    )
    return as_strided(x_padded, shape=shape, strides=strides, writeable=False)


def offset_slices(offset: tuple[int, ...], geometry: ConvGeometry) -> tuple[slice, ...]:
    """Slices of the padded spatial axes that kernel offset ``offset`` reads.

    Along axis ``a`` the window at output ``y`` reads ``y s_a + k_a r_a``, so
    offset ``k`` reads ``k_a r_a, k_a r_a + s_a, ...`` for ``O_a`` outputs.
    """
    return tuple(
        slice(k * r, k * r + s * (o - 1) + 1, s)
        for k, r, s, o in zip(offset, geometry.dilation, geometry.stride, geometry.output_size)
    )


def _columns(view_group: np.ndarray, geometry: ConvGeometry) -> np.ndarray:
    """Copy one group's windows ``(N, C_g, *K, *O)`` into ``(N, C_g prod(K), prod(O))``."""
    n = view_group.shape[0]
    rows = geometry.group_in_channels * int(np.prod(geometry.kernel_size))
    return view_group.reshape(n, rows, int(np.prod(geometry.output_size)))


# NaN and infinity follow IEEE rules (inf * 0 is NaN), as in PyTorch; NumPy's
# "invalid value" warning for them would only repeat what the result shows.
@np.errstate(invalid="ignore")
def forward(x_padded: np.ndarray, weight: np.ndarray, geometry: ConvGeometry) -> np.ndarray:
    """Compute the convolution of a padded input, without bias: ``(N, C_out, *O)``."""
    n = x_padded.shape[0]
    view = windows(x_padded, geometry)
    out_g = geometry.group_out_channels
    positions = int(np.prod(geometry.output_size))
    out = np.empty((n, geometry.out_channels, positions), dtype=x_padded.dtype)
    for g in range(geometry.groups):
        cols = _columns(view[:, g], geometry)
        w_g = weight[g * out_g:(g + 1) * out_g].reshape(out_g, -1)
        np.matmul(w_g, cols, out=out[:, g * out_g:(g + 1) * out_g])
    return out.reshape(n, geometry.out_channels, *geometry.output_size)


@np.errstate(invalid="ignore")
def weight_grad(x_padded: np.ndarray, grad_output: np.ndarray, geometry: ConvGeometry) -> np.ndarray:
    """Compute ``dL/d weight`` of shape ``(C_out, C_in / G, *K)`` from the padded input."""
    n = x_padded.shape[0]
    view = windows(x_padded, geometry)
    out_g = geometry.group_out_channels
    positions = int(np.prod(geometry.output_size))
    go = grad_output.reshape(n, geometry.out_channels, positions)
    grad = np.empty(
        (geometry.out_channels, geometry.group_in_channels * int(np.prod(geometry.kernel_size))),
        dtype=x_padded.dtype,
    )
    for g in range(geometry.groups):
        cols = _columns(view[:, g], geometry)
        go_g = go[:, g * out_g:(g + 1) * out_g]
        # sum over samples and positions: (out_g, N P) @ (N P, rows)
        grad[g * out_g:(g + 1) * out_g] = np.tensordot(go_g, cols, axes=([0, 2], [0, 2]))
    return grad.reshape(geometry.weight_shape)


@np.errstate(invalid="ignore")
def input_grad(weight: np.ndarray, grad_output: np.ndarray, geometry: ConvGeometry) -> np.ndarray:
    """Compute ``dL/d x̃``, the gradient with respect to the padded input."""
    n = grad_output.shape[0]
    out_g = geometry.group_out_channels
    in_g = geometry.group_in_channels
    positions = int(np.prod(geometry.output_size))
    go = grad_output.reshape(n, geometry.out_channels, positions)
    grad_padded = np.zeros((n, geometry.in_channels, *geometry.padded_size), dtype=grad_output.dtype)

    for g in range(geometry.groups):
        w_g = weight[g * out_g:(g + 1) * out_g].reshape(out_g, -1)
        cols = np.matmul(w_g.T, go[:, g * out_g:(g + 1) * out_g])
        cols = cols.reshape(n, in_g, *geometry.kernel_size, *geometry.output_size)
        channels = slice(g * in_g, (g + 1) * in_g)
        for offset in np.ndindex(*geometry.kernel_size):
            target = (slice(None), channels, *offset_slices(offset, geometry))
            grad_padded[target] += cols[(slice(None), slice(None), *offset)]
    return grad_padded
