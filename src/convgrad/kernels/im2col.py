"""The general path: im2col, one matrix product per group and chunk of samples.

For a chunk of ``n`` samples, the input elements that every window of a
group reads are copied into the columns matrix ``cols`` of shape
``(C_g prod(K), n prod(O))``, rows ordered like the weight's ``(C_g, *K)``
and columns ``(sample, position)``. Zero padding is written into the
columns directly (see :class:`ColumnSource`), so the input is not copied
into a padded array first. Then, with
``W_g`` the group's weight as ``(M_g, C_g prod(K))`` and ``go_g`` the
group's output gradient as ``(M_g, n prod(O))``::

    out_g     = W_g @ cols                 forward
    dW_g     += go_g @ cols^T              weight gradient, summed over chunks
    cols_grad = W_g^T @ go_g               input gradient, then col2im

col2im adds ``cols_grad`` back onto the padded input, one kernel offset at a
time: offset ``k`` of the window at output ``y`` is padded position
``y s + k r``.

One product over all samples of a chunk keeps BLAS busy; a batch of
per-sample products was measured 2-4x slower for small outputs. Chunks bound
the memory: the columns of one chunk plus the product's result stay below
the size of the whole im2col matrix ``N C_in prod(K) prod(O)``.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided

from convgrad.geometry import ConvGeometry
from convgrad.padding import pad
from convgrad.kernels._parallel import chunk_threads, parallel_copy, parallel_parts, run_chunks, run_tasks, split_range

# Target size of one chunk's columns matrix. Larger chunks make longer matrix
# products, smaller ones stay in cache between the copy and the product.
# NOTE: 8 MiB was not tuned; the shared benchmark machine was too noisy to
# separate neighbouring sizes.
CHUNK_BYTES = 8 << 20

# Zero padding is copied into a padded array only when that array takes at
# most this fraction of the im2col matrix (see ColumnSource).
PADDED_COPY_FRACTION = 0.25


def windows(x_padded: np.ndarray, geometry: ConvGeometry) -> np.ndarray:
    """Return a read-only view of shape ``(N, G, C_g, *K, *O)`` over the padded input.

    ``view[n, g, c, *k, *y] == x_padded[n, g C_g + c, *(y s + k r)]``.
    """
    n = x_padded.shape[0]
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


def _sizes(geometry: ConvGeometry) -> tuple[int, int, int, int]:
    """Return ``(C_g, M_g, rows, positions)`` with ``rows = C_g prod(K)`` and ``positions = prod(O)``."""
    rows = geometry.group_in_channels * int(np.prod(geometry.kernel_size))
    return geometry.group_in_channels, geometry.group_out_channels, rows, int(np.prod(geometry.output_size))


def im2col_bytes(geometry: ConvGeometry, itemsize: int) -> int:
    """Size of the whole im2col matrix ``N C_in prod(K) prod(O)`` in bytes."""
    _, _, rows, positions = _sizes(geometry)
    return geometry.batch * geometry.groups * rows * positions * itemsize


def chunk_samples(
    geometry: ConvGeometry,
    other_rows: int,
    itemsize: int,
    reserved_bytes: int = 0,
    memory_limit: int | None = None,
    concurrency: int = 1,
) -> int:
    """Return how many samples one chunk holds.

    A chunk needs ``rows + other_rows`` values per sample and output position
    (its columns plus the result or gradient that goes with them). It is
    sized to about :data:`CHUNK_BYTES` of columns. Together with
    ``reserved_bytes`` of other buffers it takes at most three quarters of
    ``memory_limit`` (default: the size of the whole im2col matrix), which
    leaves the last quarter for small temporaries. ``concurrency`` chunks
    are in memory at once, and with more than one the chunks are small
    enough that every thread gets one. A chunk contains at least one sample.
    """
    _, _, rows, positions = _sizes(geometry)
    if memory_limit is None:
        memory_limit = im2col_bytes(geometry, itemsize)
    per_sample = (rows + other_rows) * positions * itemsize
    by_speed = CHUNK_BYTES // (rows * positions * itemsize)
    by_memory = (memory_limit * 3 // 4 - reserved_bytes) // (per_sample * concurrency)
    chunk = min(geometry.batch, by_speed, by_memory)
    if concurrency > geometry.groups:
        chunk = min(chunk, -(-geometry.batch * geometry.groups // concurrency))
    return int(max(1, chunk))


def _valid_range(k: int, r: int, s: int, lo: int, length: int, outputs: int) -> tuple[int, int]:
    """Return the outputs ``[first, stop)`` whose tap ``k`` reads inside an unpadded axis.

    Output ``y`` reads unpadded coordinate ``y s + k r - lo``; the range keeps
    those in ``[0, length)``.
    """
    first = max(0, -(-(lo - k * r) // s))
    stop = max(0, (length - 1 + lo - k * r) // s + 1)
    return min(first, outputs), min(max(stop, first), outputs)


class ColumnSource:
    """Source of the im2col columns of one convolution input.

    Other padding modes than zeros pad a copy of the input once and copy the
    columns from its windows, in one strided copy per chunk. So does zero
    padding when the padded copy takes at most a quarter of the im2col
    matrix. Otherwise (the padded copy would crowd the chunks out of their
    memory budget, as with stride 2) the columns are filled from the
    unpadded input one kernel offset at a time, with zeros where a tap lands
    in the padding. The per-offset fill makes more, shorter copies: on the
    2d-14x14 benchmark case it took 1.6 ms per chunk against 1.2 ms for the
    strided copy plus 0.3 ms for the padding.

    Parameters
    ----------
    x : numpy.ndarray
        The batched input ``(N, C_in, *L)``, not padded.
    geometry : ConvGeometry
    """

    def __init__(self, x: np.ndarray, geometry: ConvGeometry):
        self.geometry = geometry
        self.x = x
        self.offsets = list(np.ndindex(*geometry.kernel_size))
        self.view = None
        self.reserved_bytes = 0
        if not any(lo or hi for lo, hi in geometry.padding):
            self.view = windows(x, geometry)
            return
        padded_bytes = x.shape[0] * x.shape[1] * int(np.prod(geometry.padded_size)) * x.itemsize
        cheap = padded_bytes <= PADDED_COPY_FRACTION * im2col_bytes(geometry, x.itemsize)
        if geometry.padding_mode != "zeros" or cheap:
            x_padded = pad(x, geometry.padding, geometry.padding_mode)
            self.view = windows(x_padded, geometry)
            self.reserved_bytes = x_padded.nbytes

    def fill(self, target: np.ndarray, group: int, start: int, stop: int) -> None:
        """Write the windows of samples ``start:stop`` of ``group`` into ``target`` ``(C_g, *K, n, *O)``."""
        d = self.geometry.ndim
        if self.view is not None:
            source = self.view[start:stop, group].transpose(1, *range(2, 2 + d), 0, *range(2 + d, 2 + 2 * d))
            parallel_copy(target, source)
            return
        parts = parallel_parts(target.nbytes)
        run_tasks(
            (lambda a=a, b=b: self._fill_offsets(target, group, start, stop, self.offsets[a:b]))
            for a, b in split_range(len(self.offsets), parts)
        )

    def _fill_offsets(self, target, group, start, stop, offsets) -> None:
        geometry = self.geometry
        in_g = geometry.group_in_channels
        source = self.x[start:stop, group * in_g:(group + 1) * in_g].swapaxes(0, 1)  # (C_g, n, *L)
        for offset in offsets:
            slab = target[(slice(None), *offset)]  # (C_g, n, *O)
            ranges = [
                _valid_range(k, r, s, lo, length, o)
                for k, r, s, (lo, _), length, o in zip(
                    offset, geometry.dilation, geometry.stride, geometry.padding,
                    geometry.input_size, geometry.output_size,
                )
            ]
            if any(first >= stop_y for first, stop_y in ranges):
                slab[...] = 0
                continue
            # Zero the strips of outputs whose tap lands in the padding.
            for axis, (first, stop_y) in enumerate(ranges):
                index = [slice(None)] * (2 + geometry.ndim)
                if first > 0:
                    index[2 + axis] = slice(0, first)
                    slab[tuple(index)] = 0
                if stop_y < geometry.output_size[axis]:
                    index[2 + axis] = slice(stop_y, None)
                    slab[tuple(index)] = 0
            inner_target = slab[(slice(None), slice(None), *(slice(f, t) for f, t in ranges))]
            inner_source = source[(slice(None), slice(None), *(
                slice(f * s + k * r - lo, (t - 1) * s + k * r - lo + 1, s)
                for (f, t), k, r, s, (lo, _) in zip(ranges, offset, geometry.dilation, geometry.stride, geometry.padding)
            ))]
            np.copyto(inner_target, inner_source)


def columns(source: ColumnSource, group: int, start: int, stop: int, buffer: np.ndarray) -> np.ndarray:
    """Fill ``(C_g prod(K), n prod(O))`` columns for samples ``start:stop`` of ``group``.

    ``buffer`` is a flat array with room for the result.
    """
    geometry = source.geometry
    _, _, rows, positions = _sizes(geometry)
    count = stop - start
    shape = (geometry.group_in_channels, *geometry.kernel_size, count, *geometry.output_size)
    cols = buffer[: rows * count * positions].reshape(shape)
    source.fill(cols, group, start, stop)
    return cols.reshape(rows, count * positions)


def per_sample_columns(source: ColumnSource, group: int, start: int, stop: int, buffer: np.ndarray) -> np.ndarray:
    """Fill ``(n, C_g prod(K), prod(O))`` columns for samples ``start:stop`` of ``group``."""
    geometry = source.geometry
    d = geometry.ndim
    _, _, rows, positions = _sizes(geometry)
    count = stop - start
    shape = (count, geometry.group_in_channels, *geometry.kernel_size, *geometry.output_size)
    cols = buffer[: rows * count * positions].reshape(shape)
    # The same memory seen as (C_g, *K, n, *O), the order fill() writes.
    source.fill(cols.transpose(1, *range(2, 2 + d), 0, *range(2 + d, 2 + 2 * d)), group, start, stop)
    return cols.reshape(count, rows, positions)


def to_group_major(
    array: np.ndarray, start: int, stop: int, channels: slice, buffer: np.ndarray
) -> np.ndarray:
    """Copy ``array[start:stop, channels]`` of shape ``(n, M, P)`` into ``(M, n P)``."""
    source = array[start:stop, channels].transpose(1, 0, 2)
    target = buffer[: source.size].reshape(source.shape)
    parallel_copy(target, source)
    return target.reshape(source.shape[0], -1)


# NaN and infinity follow IEEE rules (inf * 0 is NaN), as in PyTorch; NumPy's
# "invalid value" warning for them would only repeat what the result shows.
@np.errstate(invalid="ignore")
def forward(
    x: np.ndarray,
    weight: np.ndarray,
    geometry: ConvGeometry,
    per_sample: bool = False,
    memory_limit: int | None = None,
) -> np.ndarray:
    """Compute the convolution of the batched, unpadded input ``x`` by im2col and GEMM: ``(N, C_out, *O)``.

    With ``per_sample`` the columns are laid out ``(n, C_g prod(K), prod(O))``
    and each sample's product is written straight into the output. Otherwise
    one product covers the chunk and its result is transposed into place.
    ``memory_limit`` bounds the buffers as in :func:`chunk_samples`.
    """
    n = x.shape[0]
    _, out_g, rows, positions = _sizes(geometry)
    dtype = x.dtype
    source = ColumnSource(x, geometry)
    weight = np.ascontiguousarray(weight).reshape(geometry.out_channels, rows)
    out = np.empty((n, geometry.out_channels, positions), dtype=dtype)

    threads = chunk_threads()
    other_rows = 0 if per_sample else out_g
    chunk = chunk_samples(geometry, other_rows, dtype.itemsize, source.reserved_bytes, memory_limit, threads)

    def make_buffers():
        cols_buffer = np.empty(rows * chunk * positions, dtype=dtype)
        result_buffer = np.empty(out_g * chunk * positions, dtype=dtype) if chunk > 1 and not per_sample else None
        return cols_buffer, result_buffer

    def work(item, buffers):
        g, start, stop = item
        cols_buffer, result_buffer = buffers
        channels = slice(g * out_g, (g + 1) * out_g)
        w_g = weight[channels]
        if per_sample:
            cols = per_sample_columns(source, g, start, stop, cols_buffer)
            np.matmul(w_g, cols, out=out[start:stop, channels])
            return
        cols = columns(source, g, start, stop, cols_buffer)
        if stop - start == 1:
            np.matmul(w_g, cols, out=out[start, channels])
            return
        result = np.matmul(w_g, cols, out=result_buffer[: out_g * cols.shape[1]].reshape(out_g, -1))
        parallel_copy(out[start:stop, channels], result.reshape(out_g, stop - start, positions).transpose(1, 0, 2))

    run_chunks(_chunk_items(geometry, chunk), make_buffers, work, geometry.flops)
    return out.reshape(n, geometry.out_channels, *geometry.output_size)


def _chunk_items(geometry: ConvGeometry, chunk: int) -> list[tuple[int, int, int]]:
    """``(group, start, stop)`` for every group and chunk of samples."""
    n = geometry.batch
    return [(g, start, min(n, start + chunk)) for g in range(geometry.groups) for start in range(0, n, chunk)]


@np.errstate(invalid="ignore")
def forward_keeping_columns(
    x: np.ndarray, weight: np.ndarray, geometry: ConvGeometry
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Compute the forward pass from whole-batch columns and return them too.

    Returns the output ``(N, C_out, *O)`` and one ``(C_g prod(K), N prod(O))``
    columns matrix per group, for :class:`convgrad.kernels.saved.SavedConv`.
    Unlike :func:`forward` it does not chunk: the columns of every sample are
    kept.
    """
    n = x.shape[0]
    _, out_g, rows, positions = _sizes(geometry)
    dtype = x.dtype
    source = ColumnSource(x, geometry)
    weight = np.ascontiguousarray(weight).reshape(geometry.out_channels, rows)
    out = np.empty((n, geometry.out_channels, positions), dtype=dtype)
    kept = []
    result = np.empty((out_g, n * positions), dtype=dtype) if n > 1 else None
    for g in range(geometry.groups):
        channels = slice(g * out_g, (g + 1) * out_g)
        cols = columns(source, g, 0, n, np.empty(rows * n * positions, dtype=dtype))
        kept.append(cols)
        if n == 1:
            np.matmul(weight[channels], cols, out=out[0, channels])
            continue
        np.matmul(weight[channels], cols, out=result)
        parallel_copy(out[:, channels], result.reshape(out_g, n, positions).transpose(1, 0, 2))
    return out.reshape(n, geometry.out_channels, *geometry.output_size), kept


@np.errstate(invalid="ignore")
def weight_grad(
    x: np.ndarray, grad_output: np.ndarray, geometry: ConvGeometry, per_sample: bool = False
) -> np.ndarray:
    """Compute ``dL/d weight`` of shape ``(C_out, C_in / G, *K)`` from the unpadded input by im2col and GEMM.

    With ``per_sample`` each sample gets its own product ``go[n] @ cols[n]^T``
    and the products are summed. Otherwise one product covers the chunk,
    after the chunk's output gradient is transposed to ``(M_g, n prod(O))``.
    """
    n = x.shape[0]
    _, out_g, rows, positions = _sizes(geometry)
    dtype = x.dtype
    source = ColumnSource(x, geometry)
    go = grad_output.reshape(n, geometry.out_channels, positions)

    threads = chunk_threads()
    # Each sample's product (M_g, rows) needs as much memory as
    # ceil(M_g rows / P) more rows of columns.
    other_rows = -(-out_g * rows // positions) if per_sample else out_g
    chunk = chunk_samples(geometry, other_rows, dtype.itemsize, source.reserved_bytes, concurrency=threads)

    def make_buffers():
        return {
            "cols": np.empty(rows * chunk * positions, dtype=dtype),
            "go": np.empty(out_g * chunk * positions, dtype=dtype) if chunk > 1 and not per_sample else None,
            "products": np.empty((chunk, out_g, rows), dtype=dtype) if per_sample else None,
            "partial": np.empty((out_g, rows), dtype=dtype),
            # This thread's share of the gradient.
            "grad": np.zeros((geometry.out_channels, rows), dtype=dtype),
        }

    def work(item, buffers):
        g, start, stop = item
        channels = slice(g * out_g, (g + 1) * out_g)
        if per_sample:
            cols = per_sample_columns(source, g, start, stop, buffers["cols"])
            product = np.matmul(go[start:stop, channels], cols.transpose(0, 2, 1), out=buffers["products"][: stop - start])
            buffers["grad"][channels] += product.sum(axis=0)
            return
        cols = columns(source, g, start, stop, buffers["cols"])
        if stop - start == 1:
            go_g = go[start, channels]
        else:
            go_g = to_group_major(go, start, stop, channels, buffers["go"])
        np.matmul(go_g, cols.T, out=buffers["partial"])
        buffers["grad"][channels] += buffers["partial"]

    runs = run_chunks(_chunk_items(geometry, chunk), make_buffers, work, geometry.flops)
    grad = runs[0]["grad"]
    for run in runs[1:]:
        grad += run["grad"]
    return grad.reshape(geometry.weight_shape)


@np.errstate(invalid="ignore")
def input_grad_padded(
    weight: np.ndarray, grad_output: np.ndarray, geometry: ConvGeometry, per_sample: bool = False
) -> np.ndarray:
    """Compute ``dL/d x̃``, the gradient with respect to the padded input, by GEMM and col2im.

    With ``per_sample`` each sample's columns are ``W_g^T @ go[n]``, read
    from the output gradient as stored. Otherwise the chunk's output
    gradient is first transposed to ``(M_g, n prod(O))`` for one product.
    """
    n = grad_output.shape[0]
    d = geometry.ndim
    in_g, out_g, rows, positions = _sizes(geometry)
    dtype = grad_output.dtype
    go = grad_output.reshape(n, geometry.out_channels, positions)
    weight = np.ascontiguousarray(weight).reshape(geometry.out_channels, rows)
    grad_padded = np.zeros((n, geometry.in_channels, *geometry.padded_size), dtype=dtype)

    threads = chunk_threads()
    other_rows = 0 if per_sample else out_g
    chunk = chunk_samples(geometry, other_rows, dtype.itemsize, grad_padded.nbytes, concurrency=threads)
    offsets = list(np.ndindex(*geometry.kernel_size))
    slices = [offset_slices(offset, geometry) for offset in offsets]

    def make_buffers():
        cols_buffer = np.empty(rows * chunk * positions, dtype=dtype)
        go_buffer = np.empty(out_g * chunk * positions, dtype=dtype) if chunk > 1 and not per_sample else None
        return cols_buffer, go_buffer

    def work(item, buffers):
        g, start, stop = item
        cols_buffer, go_buffer = buffers
        count = stop - start
        out_channels = slice(g * out_g, (g + 1) * out_g)
        w_g = weight[out_channels]
        if per_sample:
            cols = np.matmul(
                w_g.T, go[start:stop, out_channels], out=cols_buffer[: rows * count * positions].reshape(count, rows, -1)
            )
            cols = cols.reshape(count, in_g, *geometry.kernel_size, *geometry.output_size)
        else:
            go_g = go[start, out_channels] if count == 1 else to_group_major(go, start, stop, out_channels, go_buffer)
            cols = np.matmul(w_g.T, go_g, out=cols_buffer[: rows * count * positions].reshape(rows, -1))
            # (C_g, *K, n, *O) -> (n, C_g, *K, *O)
            cols = cols.reshape(in_g, *geometry.kernel_size, count, *geometry.output_size)
            cols = np.moveaxis(cols, 1 + d, 0)
        # Chunks of different threads cover different samples or groups, so
        # their scatter-adds never touch the same element.
        target = grad_padded[start:stop, g * in_g:(g + 1) * in_g]
        scatter_add_offsets(target, cols, offsets, slices)

    run_chunks(_chunk_items(geometry, chunk), make_buffers, work, geometry.flops)
    return grad_padded


def scatter_add_offsets(target: np.ndarray, cols: np.ndarray, offsets, slices) -> None:
    """Add ``cols[:, :, *k]`` onto ``target[:, :, *slices_k]`` for every kernel offset ``k``.

    ``target`` is ``(n, C, *padded)`` and ``cols`` is ``(n, C, *K, *O)``. The
    work is split over channels, or over samples when there are fewer
    channels than threads, so that no two threads add into the same element.
    """
    count, channels = cols.shape[:2]
    parts = parallel_parts(cols.nbytes)
    axis = 1 if channels >= parts or count < channels else 0

    def scatter(start, stop):
        part = [slice(None), slice(None)]
        part[axis] = slice(start, stop)
        for offset, window in zip(offsets, slices):
            destination = target[(*part, *window)]
            np.add(destination, cols[(*part, *offset)], out=destination)

    run_tasks((lambda a=a, b=b: scatter(a, b)) for a, b in split_range(cols.shape[axis], parts))
