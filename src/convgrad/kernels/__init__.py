"""Vectorized kernels behind :mod:`convgrad.conv`, and the choice between them.

Every pass has several implementations ("paths"). Each computes the same
sums as :mod:`convgrad.reference` to within rounding, including where a NaN
or an infinity goes; they differ in speed and memory. The dispatch functions
:func:`forward`, :func:`input_grad` and :func:`weight_grad` pick one per
shape with :func:`choose_forward`, :func:`choose_input_grad` and
:func:`choose_weight_grad`, or run the one named by ``path``.

Inputs arrive batched, in the compute dtype and not padded: each path pads
as it needs to (the im2col paths write zero padding straight into their
columns).

Paths
-----
``gemm`` (forward, weight gradient) and ``col2im`` (input gradient)
    im2col and one matrix product per group and chunk of samples, with the
    output (or output gradient) transposed between ``(n, M_g, P)`` and
    ``(M_g, n P)``. They accept any geometry. See
    :mod:`convgrad.kernels.im2col`.
``gemm_per_sample`` and ``col2im_per_sample``
    The same with one product per sample on the output as stored, which
    saves the transposes but gives BLAS smaller products.
``pointwise`` (all passes)
    Kernel of ones, stride 1, no padding, one group: a matrix product per
    sample on the input as stored. See :mod:`convgrad.kernels.pointwise`.
``depthwise`` (all passes)
    One input channel per group. The forward pass copies a chunk's windows
    into columns and multiplies them by every group's kernels in one batched
    product; the gradients multiply and accumulate one kernel offset at a
    time. See :mod:`convgrad.kernels.depthwise`.
``transposed_conv`` (input gradient)
    For stride 1, the input gradient is the convolution of the zero-padded
    output gradient with the flipped kernel, whose input and output channels
    are swapped; it runs through :func:`forward`, with a gather (im2col)
    instead of col2im's scatter-add. The zero padding of the output
    gradient meets every weight, so the path needs a finite weight: an
    infinite weight times a padded zero would give NaN where the direct sum
    has no term.

Dispatch rules
--------------
forward:
    ``pointwise`` when it applies, else ``depthwise`` when ``C_in / G == 1``
    and ``G > 1``, else ``gemm_per_sample`` when ``C_g prod(K) < 2 M_g``
    (few columns rows against many output channels: the transpose of the
    output would cost more than the larger product gains), else ``gemm``.
weight gradient:
    the same rule, except that a depthwise convolution with stride 1 and a
    finite input takes ``depthwise_flat``.
input gradient:
    ``pointwise`` when it applies; else ``transposed_conv`` when the stride is
    1, the weight is finite and either the convolution is depthwise with
    multiplier 1, or it is not depthwise and ``C_out / G <= 2 C_in / G``
    (the gather copies ``C_out/G`` rows per input position, col2im adds
    ``C_in/G``, and an add is estimated to cost about two copies); else ``depthwise`` when
    ``C_in / G == 1`` and ``G > 1``; else ``col2im_per_sample`` or
    ``col2im`` by the forward pass's rule.

The rules and thresholds come from timings on a 2-core AMD EPYC (Zen 4)
with OpenBLAS 0.3.31; see docs/benchmarks.md.

NOTE: that machine was shared with other jobs while the timings were taken,
so the thresholds (``2 M_g``, ``2 C_in / G``) rest on the benchmark shapes
and best-of-several samples; shapes far from those were not measured.
"""

from __future__ import annotations

import numpy as np

from convgrad.geometry import ConvGeometry
from convgrad.kernels import depthwise, im2col, pointwise
from convgrad.kernels._parallel import get_num_threads, set_num_threads
from convgrad.padding import pad, pad_adjoint

__all__ = [
    "FORWARD_PATHS",
    "INPUT_GRAD_PATHS",
    "SavedConv",
    "conv_forward_saved",
    "WEIGHT_GRAD_PATHS",
    "choose_forward",
    "choose_input_grad",
    "choose_weight_grad",
    "forward",
    "get_num_threads",
    "input_grad",
    "set_num_threads",
    "weight_grad",
]

FORWARD_PATHS = ("gemm", "gemm_per_sample", "pointwise", "depthwise")
WEIGHT_GRAD_PATHS = ("gemm", "gemm_per_sample", "pointwise", "depthwise", "depthwise_flat")
INPUT_GRAD_PATHS = ("col2im", "col2im_per_sample", "transposed_conv", "pointwise", "depthwise")


# ---------------------------------------------------------------------------
# Which paths apply
# ---------------------------------------------------------------------------


def is_pointwise(geometry: ConvGeometry) -> bool:
    """True for a kernel of ones with stride 1, no padding and one group."""
    return (
        all(k == 1 for k in geometry.kernel_size)
        and all(s == 1 for s in geometry.stride)
        and all(lo == 0 and hi == 0 for lo, hi in geometry.padding)
        and geometry.groups == 1
    )


def is_depthwise(geometry: ConvGeometry) -> bool:
    """True when every group has one input channel (``groups == C_in > 1``)."""
    return geometry.groups > 1 and geometry.group_in_channels == 1


def _check_path(kind: str, path: str, known: tuple[str, ...], geometry: ConvGeometry) -> None:
    if path not in known:
        raise ValueError(f"{kind} path must be one of {known}, got {path!r}")
    if path == "pointwise" and not is_pointwise(geometry):
        raise ValueError(
            f"the pointwise path needs a kernel of ones, stride 1, no padding and groups=1, got kernel "
            f"{geometry.kernel_size}, stride {geometry.stride}, padding {geometry.padding}, groups {geometry.groups}"
        )
    if path.startswith("depthwise") and not is_depthwise(geometry):
        raise ValueError(
            f"the depthwise path needs one input channel per group (groups == C_in > 1), got C_in "
            f"{geometry.in_channels} and groups {geometry.groups}"
        )
    if path in ("transposed_conv", "depthwise_flat") and any(s != 1 for s in geometry.stride):
        raise ValueError(f"the {path} path needs stride 1 on every axis, got stride {geometry.stride}")


# ---------------------------------------------------------------------------
# Choice
# ---------------------------------------------------------------------------


def _prefers_per_sample(geometry: ConvGeometry) -> bool:
    rows = geometry.group_in_channels * int(np.prod(geometry.kernel_size))
    return rows < 2 * geometry.group_out_channels


def choose_forward(geometry: ConvGeometry) -> str:
    """Return the forward path the dispatcher uses for ``geometry``."""
    if is_pointwise(geometry):
        return "pointwise"
    if is_depthwise(geometry):
        return "depthwise"
    return "gemm_per_sample" if _prefers_per_sample(geometry) else "gemm"


def choose_weight_grad(geometry: ConvGeometry, input_finite: bool = True) -> str:
    """Return the weight-gradient path the dispatcher uses for ``geometry``.

    ``input_finite`` is whether every element of the input is finite, the
    condition under which the ``depthwise_flat`` path is exact.
    """
    if is_depthwise(geometry) and input_finite and all(s == 1 for s in geometry.stride):
        return "depthwise_flat"
    return choose_forward(geometry)


def choose_input_grad(geometry: ConvGeometry, weight_finite: bool = True) -> str:
    """Return the input-gradient path the dispatcher uses for ``geometry``.

    ``weight_finite`` is whether every weight is finite, the condition under
    which the ``transposed_conv`` path is exact.
    """
    if is_pointwise(geometry):
        return "pointwise"
    stride_one = all(s == 1 for s in geometry.stride)
    if stride_one and weight_finite:
        if is_depthwise(geometry):
            if geometry.group_out_channels == 1:
                return "transposed_conv"
        elif geometry.group_out_channels <= 2 * geometry.group_in_channels:
            return "transposed_conv"
    if is_depthwise(geometry):
        return "depthwise"
    return "col2im_per_sample" if _prefers_per_sample(geometry) else "col2im"


def all_finite(array: np.ndarray) -> bool:
    """Return True when no element of ``array`` is NaN or infinite.

    A sum is NaN or infinite when an element is, so one reduction without a
    temporary mask decides. A sum that overflows reads as not finite: the
    caller then takes a path that is exact for any input, only slower.
    """
    with np.errstate(over="ignore", invalid="ignore"):
        return bool(np.isfinite(np.add.reduce(array, axis=None)))


# ---------------------------------------------------------------------------
# Dispatch
# ---------------------------------------------------------------------------


def _padded(x: np.ndarray, geometry: ConvGeometry) -> np.ndarray:
    if any(lo or hi for lo, hi in geometry.padding):
        return pad(x, geometry.padding, geometry.padding_mode)
    return x


def forward(
    x: np.ndarray,
    weight: np.ndarray,
    geometry: ConvGeometry,
    path: str | None = None,
    memory_limit: int | None = None,
) -> np.ndarray:
    """Compute the convolution of a batched input, without bias: ``(N, C_out, *O)``.

    Parameters
    ----------
    x : numpy.ndarray
        ``(N, C_in, *L)``, not padded.
    weight : numpy.ndarray
        ``(C_out, C_in / G, *K)``, same dtype.
    geometry : ConvGeometry
    path : str, optional
        One of :data:`FORWARD_PATHS`; by default :func:`choose_forward` picks.
    memory_limit : int, optional
        Bytes the im2col paths may use for their buffers; by default the size
        of the im2col matrix of ``geometry``.
    """
    path = choose_forward(geometry) if path is None else path
    _check_path("forward", path, FORWARD_PATHS, geometry)
    if x.shape[0] == 0:
        return np.zeros((0, geometry.out_channels, *geometry.output_size), dtype=x.dtype)
    if path == "pointwise":
        return pointwise.forward(x, weight, geometry)
    if path == "depthwise":
        return depthwise.forward(_padded(x, geometry), weight, geometry)
    return im2col.forward(x, weight, geometry, per_sample=path == "gemm_per_sample", memory_limit=memory_limit)


def weight_grad(
    x: np.ndarray, grad_output: np.ndarray, geometry: ConvGeometry, path: str | None = None
) -> np.ndarray:
    """Compute ``dL/d weight`` of shape ``(C_out, C_in / G, *K)`` from the batched, unpadded input.

    ``path`` is one of :data:`WEIGHT_GRAD_PATHS`; by default
    :func:`choose_weight_grad` picks, after checking (for a depthwise
    convolution) whether the input is finite.
    """
    if path is None:
        path = choose_weight_grad(geometry, input_finite=not is_depthwise(geometry) or all_finite(x))
    _check_path("weight gradient", path, WEIGHT_GRAD_PATHS, geometry)
    if x.shape[0] == 0:
        # A sum over no samples.
        return np.zeros(geometry.weight_shape, dtype=np.result_type(x, grad_output))
    if path == "pointwise":
        return pointwise.weight_grad(x, grad_output, geometry)
    if path == "depthwise":
        return depthwise.weight_grad(_padded(x, geometry), grad_output, geometry)
    if path == "depthwise_flat":
        return depthwise.weight_grad_flat(_padded(x, geometry), grad_output, geometry)
    return im2col.weight_grad(x, grad_output, geometry, per_sample=path == "gemm_per_sample")


def input_grad(
    weight: np.ndarray, grad_output: np.ndarray, geometry: ConvGeometry, path: str | None = None
) -> np.ndarray:
    """Compute ``dL/dx``, the gradient with respect to the unpadded input ``(N, C_in, *L)``.

    The padding's adjoint (:func:`convgrad.padding.pad_adjoint`) is applied
    here. ``path`` is one of :data:`INPUT_GRAD_PATHS`; by default
    :func:`choose_input_grad` picks, after checking whether the weight is
    finite.
    """
    if path is None:
        path = choose_input_grad(geometry, weight_finite=all_finite(weight))
    _check_path("input gradient", path, INPUT_GRAD_PATHS, geometry)
    if grad_output.shape[0] == 0:
        return np.zeros((0, geometry.in_channels, *geometry.input_size), dtype=np.result_type(weight, grad_output))
    if path == "pointwise":
        return pointwise.input_grad(weight, grad_output, geometry)
    if path == "transposed_conv":
        grad, padded = _input_grad_transposed_conv(weight, grad_output, geometry)
    elif path == "depthwise":
        grad, padded = depthwise.input_grad_padded(weight, grad_output, geometry), True
    else:
        per_sample = path == "col2im_per_sample"
        grad, padded = im2col.input_grad_padded(weight, grad_output, geometry, per_sample=per_sample), True
    if not padded:
        return grad
    if all(lo == 0 and hi == 0 for lo, hi in geometry.padding):
        return grad
    return pad_adjoint(grad, geometry.padding, geometry.padding_mode)


def _input_grad_transposed_conv(
    weight: np.ndarray, grad_output: np.ndarray, geometry: ConvGeometry
) -> tuple[np.ndarray, bool]:
    """Compute the input gradient of a stride-1 convolution as a convolution of ``grad_output``.

    With ``E = r (K - 1) + 1`` the dilated kernel length, correlating
    ``grad_output``, zero-padded by ``E - 1`` on both sides, with the
    flipped weight ``w_t[g C_g + c, j, k] = w[g M_g + j, c, K - 1 - k]``
    gives ``dL/dx̃`` on the whole padded input. For zero padding no wider
    than ``E - 1`` it pads by ``E - 1 - p`` instead, which gives ``dL/dx``
    directly. The padding is part of the inner convolution's geometry, so
    the im2col paths do not copy ``grad_output``.

    Returns
    -------
    grad : numpy.ndarray
    padded : bool
        Whether ``grad`` is the gradient of the padded input.
    """
    d = geometry.ndim
    effective = [r * (k - 1) + 1 for k, r in zip(geometry.kernel_size, geometry.dilation)]
    direct = geometry.padding_mode == "zeros" and all(
        lo <= e - 1 and hi <= e - 1 for (lo, hi), e in zip(geometry.padding, effective)
    )
    if direct:
        widths = tuple((e - 1 - lo, e - 1 - hi) for (lo, hi), e in zip(geometry.padding, effective))
    else:
        widths = tuple((e - 1, e - 1) for e in effective)

    groups, in_g, out_g = geometry.groups, geometry.group_in_channels, geometry.group_out_channels
    flipped = weight.reshape(groups, out_g, in_g, *geometry.kernel_size).swapaxes(1, 2)
    flipped = flipped[(Ellipsis, *(slice(None, None, -1),) * d)]
    flipped = np.ascontiguousarray(flipped).reshape(geometry.in_channels, out_g, *geometry.kernel_size)

    geometry_t = ConvGeometry.create(
        grad_output.shape, flipped.shape, stride=1, padding=widths, dilation=geometry.dilation, groups=groups
    )
    # The buffers of the convolution below count against the im2col size of
    # the original convolution, which is smaller when C_out > C_in.
    memory_limit = im2col.im2col_bytes(geometry, weight.itemsize)
    return forward(grad_output, flipped, geometry_t, memory_limit=memory_limit), not direct


# Imported last: the module uses the dispatch functions above.
from convgrad.kernels.saved import SavedConv, conv_forward_saved  # noqa: E402
