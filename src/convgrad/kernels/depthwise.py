"""Depthwise convolutions (``groups == C_in``, one input channel per group).

Each group has ``m = C_out / G`` output channels (the depth multiplier)
that read one input channel::

    out[n, g, j, y]  = sum_k w[g, j, k] x̃[n, g, y s + k r]
    dW[g, j, k]      = sum_{n, y} x̃[n, g, y s + k r] go[n, g, j, y]
    dx̃[n, g, y s + k r] += sum_j w[g, j, k] go[n, g, j, y]

with output channel ``o = g m + j``. The general im2col path would loop over
``G`` groups with products of inner dimension ``prod(K)``. Here the work is
split into chunks of samples that run in the thread pool:

- forward: the chunk's windows are copied into columns
  ``(n, G, prod(K), width)`` and one batched product ``w[g] @ cols[n, g]``
  computes them all. This was measured 2.5x faster on one thread than
  multiplying and adding one kernel offset at a time (28x28, 32 channels,
  3x3 kernel);
- weight gradient and input gradient: element-wise multiply-accumulate per
  kernel offset, or (weight gradient, stride 1) flat offsets as below.

Flat offsets (stride 1)
-----------------------
With stride 1 the spatial axes of the padded input are flattened: offset
``k`` then reads the padded input shifted by one number,
``shift_k = sum_a k_a r_a F_a`` with ``F_a = prod(L̃_{a+1..d})``, and output
``y`` sits at flat position ``sum_a y_a F_a``. Each offset becomes one
contiguous slice per (sample, channel), so the copies run over whole planes
instead of single rows. The flat positions between rows are not outputs.
The forward pass computes them and drops them. The flat weight gradient
gives them a zero output gradient, so it needs a finite input: an infinite
input times that zero would be NaN where the direct sum has no term. The
dispatcher checks this. The flat weight gradient was measured 2-3x faster
than the element-wise one.
"""

from __future__ import annotations

import numpy as np

from convgrad.geometry import ConvGeometry
from convgrad.kernels._parallel import get_num_threads, run_tasks, split_range
from convgrad.kernels.im2col import offset_slices, windows

# Bytes of output gradient per task of the element-wise passes.
TASK_BYTES = 4 << 20

# Bytes of columns per task of the forward pass. Larger tasks mean fewer
# (tiny) products per group, smaller ones stay in cache. On the 28x28
# depthwise benchmark case (one thread) 4 MiB took 5.0 ms, 1 MiB 6.9 ms and
# 16 MiB 7.1 ms.
COLUMN_TASK_BYTES = 4 << 20


def _task_ranges(batch: int, bytes_per_sample: int, task_bytes: int = TASK_BYTES) -> list[tuple[int, int]]:
    per_task = max(1, task_bytes // max(1, bytes_per_sample))
    parts = max(-(-batch // per_task), min(batch, get_num_threads()))
    return split_range(batch, parts)


def _flat_layout(geometry: ConvGeometry) -> tuple[list[int], int]:
    """Return the flat shifts of the kernel offsets and the flat length that contains every output."""
    padded = geometry.padded_size
    flat_strides = [int(np.prod(padded[a + 1:])) for a in range(geometry.ndim)]
    shifts = [
        sum(k * r * f for k, r, f in zip(offset, geometry.dilation, flat_strides))
        for offset in np.ndindex(*geometry.kernel_size)
    ]
    # One past the last output's flat position.
    length = sum((o - 1) * f for o, f in zip(geometry.output_size, flat_strides)) + 1
    return shifts, length


def _valid_outputs(flat: np.ndarray, geometry: ConvGeometry, lead: int) -> np.ndarray:
    """View the outputs ``(..., *O)`` inside a flat array ``(..., O_1 L̃_2 ... L̃_d)`` of ``lead`` leading axes."""
    shaped = flat.reshape(*flat.shape[:lead], geometry.output_size[0], *geometry.padded_size[1:])
    return shaped[(Ellipsis, slice(None), *(slice(0, o) for o in geometry.output_size[1:]))]


def _offsets(geometry: ConvGeometry):
    offsets = list(np.ndindex(*geometry.kernel_size))
    return list(enumerate(offset_slices(offset, geometry) for offset in offsets))


def _columns(x_padded: np.ndarray, start: int, stop: int, geometry: ConvGeometry, flat: bool) -> np.ndarray:
    """Copy the windows of samples ``start:stop`` into ``(G, prod(K), n, width)``.

    ``width`` is ``prod(O)`` for window columns, or the flat length
    ``O_1 L̃_2 ... L̃_d`` for flat columns (stride 1). Flat positions between
    rows and past the last output are not outputs, and those past the
    input's end are set to zero.
    """
    d = geometry.ndim
    count = stop - start
    groups = geometry.groups
    kernel = int(np.prod(geometry.kernel_size))
    if not flat:
        view = windows(x_padded[start:stop], geometry)[:, :, 0]  # (n, G, *K, *O)
        view = view.transpose(1, *range(2, 2 + d), 0, *range(2 + d, 2 + 2 * d))
        cols = np.empty(view.shape, dtype=x_padded.dtype)
        np.copyto(cols, view)
        return cols.reshape(groups, kernel, count, -1)

    shifts, _ = _flat_layout(geometry)
    width = geometry.output_size[0] * int(np.prod(geometry.padded_size[1:]))
    source = x_padded[start:stop].reshape(count, groups, -1).swapaxes(0, 1)  # (G, n, flat)
    cols = np.empty((groups, kernel, count, width), dtype=x_padded.dtype)
    for i, shift in enumerate(shifts):
        available = min(width, source.shape[-1] - shift)
        cols[:, i, :, :available] = source[:, :, shift:shift + available]
        cols[:, i, :, available:] = 0
    return cols


@np.errstate(invalid="ignore")
def forward(x_padded: np.ndarray, weight: np.ndarray, geometry: ConvGeometry) -> np.ndarray:
    """Compute a depthwise convolution of a padded input: ``(N, C_out, *O)``.

    Per chunk of samples, the windows are copied into columns
    ``(G, prod(K), n, width)`` (flat for stride 1), and one batched product
    ``w[g] @ cols[g]``, with ``w[g]`` of shape ``(m, prod(K))``, gives every
    output channel of the group for all samples of the chunk. For 32 groups
    of a 3x3 kernel, one product per group over 15 samples took 0.66 ms
    against 1.16 ms for one product per group and sample, because the
    products are tiny and their call overhead dominates.
    """
    n, groups = x_padded.shape[:2]
    m = geometry.group_out_channels
    flat = all(s == 1 for s in geometry.stride)
    w = weight.reshape(groups, m, -1)
    kernel = w.shape[-1]
    out = np.empty((n, groups, m, *geometry.output_size), dtype=x_padded.dtype)
    if flat:
        width = geometry.output_size[0] * int(np.prod(geometry.padded_size[1:]))
    else:
        width = int(np.prod(geometry.output_size))
    columns_bytes = groups * kernel * width * x_padded.itemsize

    def task(start, stop):
        count = stop - start
        cols = _columns(x_padded, start, stop, geometry, flat)
        result = np.matmul(w, cols.reshape(groups, kernel, count * width))  # (G, m, n width)
        result = result.reshape(groups, m, count, width).transpose(2, 0, 1, 3)
        if flat:
            np.copyto(out[start:stop], _valid_outputs(result, geometry, 3))
        else:
            np.copyto(out[start:stop].reshape(count, groups, m, width), result)

    run_tasks((lambda a=a, b=b: task(a, b)) for a, b in _task_ranges(n, columns_bytes, _column_task_bytes(geometry)))
    return out.reshape(n, geometry.out_channels, *geometry.output_size)


def _column_task_bytes(geometry: ConvGeometry) -> int:
    """Bytes of columns per task: :data:`COLUMN_TASK_BYTES`, and all tasks running at once
    within half of the im2col matrix ``N C_in prod(K) prod(O)`` (float32 or wider)."""
    im2col = geometry.batch * geometry.in_channels * int(np.prod(geometry.kernel_size))
    im2col *= int(np.prod(geometry.output_size)) * 4
    return max(1, min(COLUMN_TASK_BYTES, im2col // (2 * get_num_threads())))


@np.errstate(invalid="ignore")
def weight_grad_flat(x_padded: np.ndarray, grad_output: np.ndarray, geometry: ConvGeometry) -> np.ndarray:
    """Compute the weight gradient of a stride-1 depthwise convolution with flat offsets.

    Exact only for a finite ``x_padded`` (see the module notes).
    """
    n, groups = x_padded.shape[:2]
    m = geometry.group_out_channels
    kernel = int(np.prod(geometry.kernel_size))
    shifts, length = _flat_layout(geometry)
    flat_size = geometry.output_size[0] * int(np.prod(geometry.padded_size[1:]))
    source = x_padded.reshape(n, groups, 1, -1)
    go = grad_output.reshape(n, groups, m, *geometry.output_size)
    ranges = _task_ranges(n, groups * m * flat_size * x_padded.itemsize)
    partials = [None] * len(ranges)

    def task(index, start, stop):
        # The output gradient on the flat grid, zero between the rows.
        go_flat = np.zeros((stop - start, groups, m, flat_size), dtype=go.dtype)
        np.copyto(_valid_outputs(go_flat, geometry, 3), go[start:stop])
        go_t = go_flat[..., :length].swapaxes(-1, -2)  # (n, G, length, m)
        partial = np.empty((groups, m, kernel), dtype=go.dtype)
        for i, shift in enumerate(shifts):
            # (n, G, 1, length) @ (n, G, length, m) -> (n, G, 1, m)
            dots = np.matmul(source[start:stop, :, :, shift:shift + length], go_t)
            partial[:, :, i] = dots[:, :, 0].sum(axis=0)
        partials[index] = partial

    run_tasks((lambda i=i, a=a, b=b: task(i, a, b)) for i, (a, b) in enumerate(ranges))
    grad = partials[0]
    for partial in partials[1:]:
        grad += partial
    return grad.reshape(geometry.weight_shape)


@np.errstate(invalid="ignore")
def weight_grad(x_padded: np.ndarray, grad_output: np.ndarray, geometry: ConvGeometry) -> np.ndarray:
    """Compute ``dL/d weight`` of a depthwise convolution: ``(C_out, 1, *K)``."""
    n, groups = x_padded.shape[:2]
    m = geometry.group_out_channels
    kernel = int(np.prod(geometry.kernel_size))
    positions = int(np.prod(geometry.output_size))
    go = grad_output.reshape(n, groups, m, *geometry.output_size)
    source = x_padded[:, :, np.newaxis]
    offsets = _offsets(geometry)
    ranges = _task_ranges(n, go[0].nbytes)
    partials = [None] * len(ranges)

    def task(index, start, stop):
        product = np.empty_like(go[start:stop])
        flat = product.reshape(stop - start, groups, m, positions)
        partial = np.empty((groups, m, kernel), dtype=go.dtype)
        for i, window in offsets:
            shifted = source[(slice(start, stop), slice(None), slice(None), *window)]
            np.multiply(shifted, go[start:stop], out=product)
            partial[:, :, i] = flat.sum(axis=3).sum(axis=0)
        partials[index] = partial

    run_tasks((lambda i=i, a=a, b=b: task(i, a, b)) for i, (a, b) in enumerate(ranges))
    grad = partials[0]
    for partial in partials[1:]:
        grad += partial
    return grad.reshape(geometry.weight_shape)


@np.errstate(invalid="ignore")
def input_grad_padded(weight: np.ndarray, grad_output: np.ndarray, geometry: ConvGeometry) -> np.ndarray:
    """Compute ``dL/d x̃`` of a depthwise convolution, the gradient of the padded input."""
    n = grad_output.shape[0]
    groups = geometry.groups
    d = geometry.ndim
    m = geometry.group_out_channels
    go = grad_output.reshape(n, groups, m, *geometry.output_size)
    w = weight.reshape(groups, m, -1)
    w = w.reshape(groups, m, w.shape[-1], *(1,) * d)
    grad_padded = np.zeros((n, groups, *geometry.padded_size), dtype=grad_output.dtype)
    offsets = _offsets(geometry)

    def task(start, stop):
        product = np.empty_like(go[start:stop])
        for i, window in offsets:
            np.multiply(go[start:stop], w[:, :, i], out=product)
            contribution = product[:, :, 0] if m == 1 else product.sum(axis=2)
            destination = grad_padded[(slice(start, stop), slice(None), *window)]
            destination += contribution

    run_tasks((lambda a=a, b=b: task(a, b)) for a, b in _task_ranges(n, go[0].nbytes))
    return grad_padded
