"""Loop reference for convolution and its gradients: the oracle.

Each function here is the defining sum written as nested Python loops, one
scalar product per innermost step, so that it can be read against the
formula. It is slow on purpose and meant for small arrays: tests compare the
vectorized operators of :mod:`convgrad.conv` against it, and it doubles as a
teaching text.

It shares only argument validation (:mod:`convgrad.geometry`) with the fast
path. Padding is not materialized: a padded coordinate is mapped to the input
element it copies by :func:`_source`, written here independently of
:mod:`convgrad.padding`.

Notation
--------
``x`` input ``(N, C_in, *L)``, ``w`` weight ``(C_out, C_in/G, *K)``, ``go``
the gradient of the loss with respect to the output ``(N, C_out, *O)``,
``C_g = C_in / G`` input channels and ``M_g = C_out / G`` output channels per
group. For output channel ``o`` the group is ``g = o // M_g``. Output
position ``y``, kernel offset ``k``, stride ``s``, dilation ``r`` and the low
padding ``p^lo`` are d-tuples, and arithmetic on them is per axis. The padded
coordinate that output ``y`` and offset ``k`` read is ``j = y s + k r - p^lo``
in input coordinates.
"""

from __future__ import annotations

import itertools

import numpy as np

from convgrad._arrays import as_numeric_array, compute_dtype
from convgrad.geometry import ConvGeometry, as_shape, transposed_geometry

__all__ = ["conv", "conv_input_grad", "conv_weight_grad", "conv_transpose"]


def _source(j: int, n: int, mode: str):
    """Return the input index that coordinate ``j`` of an axis of length ``n`` reads.

    ``None`` means the coordinate lies in zero padding. Coordinates outside
    ``[0, n)`` mirror (reflect, without repeating the edge), clamp
    (replicate) or wrap (circular).
    """
    if 0 <= j < n:
        return j
    if mode == "zeros":
        return None
    if mode == "reflect":
        return -j if j < 0 else 2 * n - 2 - j
    if mode == "replicate":
        return min(max(j, 0), n - 1)
    return j % n  # circular


def _source_point(point, geometry: ConvGeometry):
    """Map a d-tuple of input coordinates through :func:`_source`; None if any axis is zero padding."""
    mapped = []
    for j, n in zip(point, geometry.input_size):
        i = _source(j, n, geometry.padding_mode)
        if i is None:
            return None
        mapped.append(i)
    return tuple(mapped)


def _read_point(y, k, geometry: ConvGeometry):
    """Input coordinates ``y s + k r - p^lo`` read by output ``y`` at kernel offset ``k``."""
    return tuple(
        yi * s + ki * r - lo
        for yi, ki, s, r, (lo, _) in zip(y, k, geometry.stride, geometry.dilation, geometry.padding)
    )


def _batched(array: np.ndarray, geometry: ConvGeometry) -> np.ndarray:
    return array if geometry.batched else array[np.newaxis]


def _unbatched(array: np.ndarray, geometry: ConvGeometry) -> np.ndarray:
    return array if geometry.batched else array[0]


@np.errstate(invalid="ignore")  # inf * 0 is NaN, as in the fast path
def conv(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, padding_mode="zeros"):
    r"""Convolution (cross-correlation) by the defining sum.

    ``out[n, o, y] = bias[o] + sum_{c < C_g} sum_k w[o, c, k] * x̃[n, g C_g + c, y s + k r]``

    where ``x̃`` is the padded input. Arguments and result as for
    :func:`convgrad.conv`.
    """
    x = as_numeric_array("input", input)
    w = as_numeric_array("weight", weight)
    geometry = ConvGeometry.create(x.shape, w.shape, stride, padding, dilation, groups, padding_mode)
    arrays = (x, w) if bias is None else (x, w, as_numeric_array("bias", bias))
    dtype = compute_dtype(*arrays)
    if bias is not None and np.shape(bias) != (geometry.out_channels,):
        raise ValueError(f"bias must have shape ({geometry.out_channels},), got {np.shape(bias)}")

    x = _batched(x, geometry).astype(dtype)
    w = w.astype(dtype)
    out = np.zeros((geometry.batch, geometry.out_channels, *geometry.output_size), dtype=dtype)
    per_group = geometry.group_out_channels

    for n in range(geometry.batch):
        for o in range(geometry.out_channels):
            g = o // per_group
            for y in np.ndindex(*geometry.output_size):
                total = dtype.type(0) if bias is None else dtype.type(bias[o])
                for c in range(geometry.group_in_channels):
                    for k in np.ndindex(*geometry.kernel_size):
                        source = _source_point(_read_point(y, k, geometry), geometry)
                        value = dtype.type(0) if source is None else x[(n, g * geometry.group_in_channels + c, *source)]
                        total += w[(o, c, *k)] * value
                out[(n, o, *y)] = total
    return _unbatched(out, geometry)


@np.errstate(invalid="ignore")  # inf * 0 is NaN, as in the fast path
def conv_input_grad(
    input_shape, weight, grad_output, stride=1, padding=0, dilation=1, groups=1, padding_mode="zeros"
):
    r"""Gradient with respect to the input, by the chain rule term by term.

    Every product ``w[o, c, k] * x̃[n, g C_g + c, j]`` of the forward sum
    contributes ``w[o, c, k] * go[n, o, y]`` to the gradient of the input
    element that padded coordinate ``j = y s + k r - p^lo`` copies (nothing
    for zero padding; several contributions add up)::

        dL/dx[n, g C_g + c, source(j)] += w[o, c, k] * go[n, o, y]

    Arguments as for :func:`convgrad.conv_input_grad`.
    """
    input_shape = as_shape("input_shape", input_shape)
    w = as_numeric_array("weight", weight)
    go = as_numeric_array("grad_output", grad_output)
    geometry = ConvGeometry.create(input_shape, w.shape, stride, padding, dilation, groups, padding_mode)
    geometry.check_grad_output(go.shape)
    dtype = compute_dtype(w, go)

    go = _batched(go, geometry).astype(dtype)
    w = w.astype(dtype)
    grad = np.zeros((geometry.batch, geometry.in_channels, *geometry.input_size), dtype=dtype)
    per_group = geometry.group_out_channels

    for n in range(geometry.batch):
        for o in range(geometry.out_channels):
            g = o // per_group
            for y in np.ndindex(*geometry.output_size):
                for c in range(geometry.group_in_channels):
                    for k in np.ndindex(*geometry.kernel_size):
                        source = _source_point(_read_point(y, k, geometry), geometry)
                        if source is not None:
                            grad[(n, g * geometry.group_in_channels + c, *source)] += w[(o, c, *k)] * go[(n, o, *y)]
    return _unbatched(grad, geometry)


@np.errstate(invalid="ignore")  # inf * 0 is NaN, as in the fast path
def conv_weight_grad(
    input, weight_shape, grad_output, stride=1, padding=0, dilation=1, groups=1, padding_mode="zeros"
):
    r"""Gradient with respect to the weight.

    ``dL/dw[o, c, k] = sum_n sum_y x̃[n, g C_g + c, y s + k r] * go[n, o, y]``

    summed (not averaged) over the batch. Arguments as for
    :func:`convgrad.conv_weight_grad`.
    """
    x = as_numeric_array("input", input)
    weight_shape = as_shape("weight_shape", weight_shape)
    go = as_numeric_array("grad_output", grad_output)
    geometry = ConvGeometry.create(x.shape, weight_shape, stride, padding, dilation, groups, padding_mode)
    geometry.check_grad_output(go.shape)
    dtype = compute_dtype(x, go)

    x = _batched(x, geometry).astype(dtype)
    go = _batched(go, geometry).astype(dtype)
    grad = np.zeros(geometry.weight_shape, dtype=dtype)
    per_group = geometry.group_out_channels

    for o in range(geometry.out_channels):
        g = o // per_group
        for c in range(geometry.group_in_channels):
            for k in np.ndindex(*geometry.kernel_size):
                total = dtype.type(0)
                for n in range(geometry.batch):
                    for y in np.ndindex(*geometry.output_size):
                        source = _source_point(_read_point(y, k, geometry), geometry)
                        value = dtype.type(0) if source is None else x[(n, g * geometry.group_in_channels + c, *source)]
                        total += value * go[(n, o, *y)]
                grad[(o, c, *k)] = total
    return grad


@np.errstate(invalid="ignore")  # inf * 0 is NaN, as in the fast path
def conv_transpose(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    r"""Transposed convolution by scattering each input element through the kernel.

    With the weight in PyTorch's transposed layout ``(C_in, C_out/G, *K)``,
    ``C_g = C_in / G`` and ``M_g = C_out / G``, every input element ``x[n, i, q]``
    of group ``g = i // C_g`` adds itself, scaled by the kernel, onto the
    output::

        out[n, g M_g + m, q s + k r - p^lo] += x[n, i, q] * w[i, m, k]

    for every output channel ``m < M_g`` of its group and every kernel offset
    ``k``; positions that fall outside ``[0, O)`` are cropped. ``O`` is
    ``(L - 1) s - p^lo - p^hi + r (K - 1) + output_padding + 1``. Arguments
    as for :func:`convgrad.conv_transpose`.
    """
    x = as_numeric_array("input", input)
    w = as_numeric_array("weight", weight)
    geometry = transposed_geometry(x.shape, w.shape, stride, padding, output_padding, groups, dilation)
    arrays = (x, w) if bias is None else (x, w, as_numeric_array("bias", bias))
    dtype = compute_dtype(*arrays)
    out_channels = geometry.in_channels  # the forward convolution's input is this output
    if bias is not None and np.shape(bias) != (out_channels,):
        raise ValueError(f"bias must have shape ({out_channels},), got {np.shape(bias)}")

    x = _batched(x, geometry).astype(dtype)
    w = w.astype(dtype)
    out_size = geometry.input_size
    out = np.zeros((x.shape[0], out_channels, *out_size), dtype=dtype)
    in_per_group = x.shape[1] // geometry.groups
    out_per_group = w.shape[1]

    for n in range(x.shape[0]):
        for i in range(x.shape[1]):
            g = i // in_per_group
            for q in np.ndindex(*x.shape[2:]):
                for m in range(out_per_group):
                    for k in np.ndindex(*geometry.kernel_size):
                        position = _read_point(q, k, geometry)
                        if all(0 <= p < size for p, size in zip(position, out_size)):
                            out[(n, g * out_per_group + m, *position)] += x[(n, i, *q)] * w[(i, m, *k)]

    if bias is not None:
        for n, o in itertools.product(range(out.shape[0]), range(out_channels)):
            out[n, o] += dtype.type(bias[o])
    return _unbatched(out, geometry)
