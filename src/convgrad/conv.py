"""N-dimensional convolution and its gradients: the public, vectorized API.

Deep-learning "convolution" is cross-correlation: the kernel is not flipped.
For a sample ``n``, output channel ``o`` in group ``g`` and output position
``y`` (a d-tuple), with ``x̃`` the padded input::

    out[n, o, y] = bias[o] + sum_{c, k} weight[o, c, k] * x̃[n, g C_g + c, y s + k r]

where ``c`` runs over the ``C_g = C_in / G`` input channels of the group,
``k`` over the kernel offsets, and products of tuples are per axis. The true
(flipped-kernel) convolution of signal processing is in :mod:`convgrad.signal`.

Gradients
---------
The output is linear in the input and in the weight, so both gradients are
transposes of the same sum (with ``go = dL/d out``)::

    dL/dx̃[n, g C_g + c, y s + k r]  +=  weight[o, c, k] * go[n, o, y]
    dL/dweight[o, c, k]             =   sum_{n, y} x̃[n, g C_g + c, y s + k r] * go[n, o, y]
    dL/dbias[o]                     =   sum_{n, y} go[n, o, y]

and ``dL/dx`` is the adjoint of the padding applied to ``dL/dx̃`` (see
:mod:`convgrad.padding`). The input gradient is a transposed convolution of
``grad_output``, and :func:`conv_transpose` is implemented as exactly that.

Strategy
--------
The default path never loops in Python over output positions, only over
groups, kernel offsets and chunks of samples. See :mod:`convgrad.kernels` for
the ways it computes each pass and how one is chosen.
"""

from __future__ import annotations

import numpy as np

from convgrad import kernels
from convgrad._arrays import as_numeric_array, compute_dtype
from convgrad.geometry import ConvGeometry, as_shape, transposed_geometry
from convgrad.padding import pad

__all__ = [
    "conv",
    "conv1d",
    "conv2d",
    "conv3d",
    "conv_input_grad",
    "conv_weight_grad",
    "conv_bias_grad",
    "conv_backward",
    "conv_transpose",
    "conv_transpose1d",
    "conv_transpose2d",
    "conv_transpose3d",
]


# ---------------------------------------------------------------------------
# Helpers shared by the public functions
# ---------------------------------------------------------------------------


def _with_batch(array: np.ndarray, geometry: ConvGeometry) -> np.ndarray:
    return array if geometry.batched else array[np.newaxis]


def _without_batch(array: np.ndarray, geometry: ConvGeometry) -> np.ndarray:
    return array if geometry.batched else array[0]


def _check_bias(bias, out_channels: int) -> np.ndarray | None:
    if bias is None:
        return None
    bias = as_numeric_array("bias", bias)
    if bias.shape != (out_channels,):
        raise ValueError(f"bias must have shape ({out_channels},) (one value per output channel), got {bias.shape}")
    return bias


def _check_array_shape(name: str, array: np.ndarray, shape: tuple[int, ...]) -> None:
    if array.shape != shape:
        raise ValueError(f"{name} has shape {array.shape}, expected {shape}")


def _add_bias(out: np.ndarray, bias: np.ndarray | None) -> np.ndarray:
    if bias is not None:
        out += bias.astype(out.dtype, copy=False).reshape((1, -1) + (1,) * (out.ndim - 2))
    return out


# ---------------------------------------------------------------------------
# Forward
# ---------------------------------------------------------------------------


def conv(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, padding_mode="zeros"):
    r"""Apply an N-dimensional convolution (cross-correlation) over a batch.

    Parameters
    ----------
    input : array_like
        ``(N, C_in, *L)`` or, unbatched, ``(C_in, *L)``.
    weight : array_like
        ``(C_out, C_in / groups, *K)``. The number of spatial axes is
        ``d = weight.ndim - 2``.
    bias : array_like, optional
        ``(C_out,)``.
    stride, dilation : int or tuple of d ints
        Step between outputs and between kernel taps; 1 means none.
    padding : int, tuple of d ints, tuple of d (lo, hi) pairs, or str
        'valid', 'same' (stride 1 only; an odd total puts the extra element
        after the input) or 'full'. See :func:`convgrad.geometry.normalize_padding`.
    groups : int
        Splits channels into ``groups`` independent convolutions; must divide
        ``C_in`` and ``C_out``. ``groups == C_in`` is a depthwise convolution.
    padding_mode : {'zeros', 'reflect', 'replicate', 'circular'}

    Returns
    -------
    numpy.ndarray
        ``(N, C_out, *O)``, or ``(C_out, *O)`` for an unbatched input, where
        ``O_a = floor((L_a + p_a^lo + p_a^hi - r_a (K_a - 1) - 1) / s_a) + 1``.
        The dtype follows NumPy promotion of the inputs; integer and bool
        inputs give float64.

    Raises
    ------
    TypeError
        A non-numeric array, or a non-integer stride, dilation, padding or groups.
    ValueError
        Inconsistent shapes or invalid hyper-parameters; the message names the
        argument, its value and the rule.

    Examples
    --------
    >>> import numpy as np, convgrad
    >>> convgrad.conv(np.array([[[1., 2, 3, 4, 5]]]), np.ones((1, 1, 3)), padding="same")
    array([[[ 3.,  6.,  9., 12.,  9.]]])
    """
    x = as_numeric_array("input", input)
    w = as_numeric_array("weight", weight)
    geometry = ConvGeometry.create(x.shape, w.shape, stride, padding, dilation, groups, padding_mode)
    b = _check_bias(bias, geometry.out_channels)
    dtype = compute_dtype(x, w) if b is None else compute_dtype(x, w, b)

    x = _with_batch(x, geometry).astype(dtype, copy=False)
    w = w.astype(dtype, copy=False)
    out = kernels.forward(x, w, geometry)
    return _without_batch(_add_bias(out, b), geometry)


def _fixed_rank(operator, ndim: int, name: str, layout: str):
    """Wrap ``operator`` so that it first checks that the weight has ``ndim`` spatial axes.

    ``layout`` names the weight's first two axes for the error message.
    """
    kernel_axes = ", ".join(f"K{i + 1}" for i in range(ndim))

    def fixed_rank(input, weight, *args, **kwargs):
        w = as_numeric_array("weight", weight)
        if w.ndim != ndim + 2:
            raise ValueError(
                f"{name} expects a weight with {ndim + 2} dimensions ({layout}, {kernel_axes}), got shape {w.shape}"
            )
        return operator(input, w, *args, **kwargs)

    fixed_rank.__name__ = name
    fixed_rank.__qualname__ = name
    fixed_rank.__doc__ = f"Apply :func:`{operator.__name__}` after checking that the weight has {ndim} spatial axes."
    return fixed_rank


def _conv_nd(ndim: int, name: str):
    return _fixed_rank(conv, ndim, name, "C_out, C_in/groups")


conv1d = _conv_nd(1, "conv1d")
conv2d = _conv_nd(2, "conv2d")
conv3d = _conv_nd(3, "conv3d")


# ---------------------------------------------------------------------------
# Gradients
# ---------------------------------------------------------------------------


def conv_input_grad(
    input_shape, weight, grad_output, stride=1, padding=0, dilation=1, groups=1, padding_mode="zeros"
):
    """Compute the gradient of a convolution's loss with respect to its input.

    The input's shape is an argument because the output shape does not fix it:
    with stride > 1, several input lengths give the same output length, and
    the trailing elements that no window reads get a zero gradient.

    Parameters
    ----------
    input_shape : tuple of int
        Shape of the forward input, ``(N, C_in, *L)`` or ``(C_in, *L)``.
    weight : array_like
        ``(C_out, C_in / groups, *K)``.
    grad_output : array_like
        ``dL/d out``, with the forward output's shape.
    stride, padding, dilation, groups, padding_mode
        As given to :func:`conv`.

    Returns
    -------
    numpy.ndarray
        ``dL/d input`` of shape ``input_shape``::

            dL/dx = P^T ( sum_{o, y, k} weight[o, c, k] go[n, o, y] at position y s + k r )

        where ``P^T`` is the adjoint of the padding.
    """
    input_shape = as_shape("input_shape", input_shape)
    w = as_numeric_array("weight", weight)
    go = as_numeric_array("grad_output", grad_output)
    geometry = ConvGeometry.create(input_shape, w.shape, stride, padding, dilation, groups, padding_mode)
    geometry.check_grad_output(go.shape)
    dtype = compute_dtype(w, go)

    go = _with_batch(go, geometry).astype(dtype, copy=False)
    grad = kernels.input_grad(w.astype(dtype, copy=False), go, geometry)
    return _without_batch(grad, geometry)


def conv_weight_grad(
    input, weight_shape, grad_output, stride=1, padding=0, dilation=1, groups=1, padding_mode="zeros"
):
    """Compute the gradient of a convolution's loss with respect to its weight.

    Parameters
    ----------
    input : array_like
        The forward input, ``(N, C_in, *L)`` or ``(C_in, *L)``.
    weight_shape : tuple of int
        ``(C_out, C_in / groups, *K)``.
    grad_output : array_like
        ``dL/d out``, with the forward output's shape.
    stride, padding, dilation, groups, padding_mode
        As given to :func:`conv`.

    Returns
    -------
    numpy.ndarray
        ``dL/d weight`` of shape ``weight_shape``: the sum over the batch (not
        the mean) of ``x̃[n, g C_g + c, y s + k r] go[n, o, y]`` over positions ``y``.
    """
    x = as_numeric_array("input", input)
    weight_shape = as_shape("weight_shape", weight_shape)
    go = as_numeric_array("grad_output", grad_output)
    geometry = ConvGeometry.create(x.shape, weight_shape, stride, padding, dilation, groups, padding_mode)
    geometry.check_grad_output(go.shape)
    dtype = compute_dtype(x, go)

    x = _with_batch(x, geometry).astype(dtype, copy=False)
    go = _with_batch(go, geometry).astype(dtype, copy=False)
    return kernels.weight_grad(x, go, geometry)


def conv_bias_grad(grad_output, batched: bool = True):
    """Compute the gradient with respect to the bias: ``grad_output`` summed over
    every axis except the channel axis (axis 1, or axis 0 when ``batched`` is False).
    """
    go = as_numeric_array("grad_output", grad_output)
    channel_axis = 1 if batched else 0
    if go.ndim < channel_axis + 2:
        raise ValueError(
            f"grad_output must have a channel axis and at least one spatial axis, got shape {go.shape}"
        )
    axes = tuple(a for a in range(go.ndim) if a != channel_axis)
    return go.astype(compute_dtype(go), copy=False).sum(axis=axes)


def conv_backward(
    input, weight, grad_output, stride=1, padding=0, dilation=1, groups=1, padding_mode="zeros", bias=True
):
    """Compute all gradients of :func:`conv` at once.

    Returns
    -------
    grad_input, grad_weight, grad_bias : numpy.ndarray
        Shapes of ``input``, ``weight`` and ``(C_out,)``. ``grad_bias`` is None
        when ``bias`` is False.
    """
    if not isinstance(bias, (bool, np.bool_)):
        raise TypeError(
            f"bias must be True or False (whether to return the bias gradient), got {type(bias).__name__}; "
            "the bias values do not enter the gradients"
        )
    x = as_numeric_array("input", input)
    w = as_numeric_array("weight", weight)
    grad_input = conv_input_grad(x.shape, w, grad_output, stride, padding, dilation, groups, padding_mode)
    grad_weight = conv_weight_grad(x, w.shape, grad_output, stride, padding, dilation, groups, padding_mode)
    grad_bias = conv_bias_grad(grad_output, batched=x.ndim == w.ndim) if bias else None
    return grad_input, grad_weight, grad_bias


# ---------------------------------------------------------------------------
# Transposed convolution
# ---------------------------------------------------------------------------


def conv_transpose(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    """Apply an N-dimensional transposed convolution.

    It is the input gradient of the convolution with the same weight, stride,
    padding, dilation and groups, so both share one implementation.

    Parameters
    ----------
    input : array_like
        ``(N, C_in, *L)`` or ``(C_in, *L)``.
    weight : array_like
        ``(C_in, C_out / groups, *K)`` (PyTorch's layout for transposed
        convolutions).
    bias : array_like, optional
        ``(C_out,)``.
    stride, dilation : int or tuple of d ints
    padding : int, tuple of d ints or tuple of d (lo, hi) pairs
        Removed from each side of the full output (string forms are rejected).
    output_padding : int or tuple of d ints
        Extra elements after the output on each axis, smaller than the stride
        or the dilation.
    groups : int

    Returns
    -------
    numpy.ndarray
        ``(N, C_out, *O)`` with
        ``O_a = (L_a - 1) s_a - p_a^lo - p_a^hi + r_a (K_a - 1) + output_padding_a + 1``.

    Notes
    -----
    Its gradients are the adjoint identities: with respect to ``input``,
    ``conv(grad_output, weight, stride=..., padding=..., dilation=..., groups=...)``;
    with respect to ``weight``,
    ``conv_weight_grad(grad_output, weight.shape, input, stride, padding, dilation, groups)``.
    """
    x = as_numeric_array("input", input)
    w = as_numeric_array("weight", weight)
    geometry = transposed_geometry(x.shape, w.shape, stride, padding, output_padding, groups, dilation)
    b = _check_bias(bias, geometry.in_channels)
    dtype = compute_dtype(x, w) if b is None else compute_dtype(x, w, b)

    x = _with_batch(x, geometry).astype(dtype, copy=False)
    spatial = x.shape[2:]
    if spatial != geometry.output_size:
        # output_padding >= stride: the forward convolution of this length has
        # extra trailing outputs that the transposed input does not cover.
        extra = tuple((0, o - n) for o, n in zip(geometry.output_size, spatial))
        x = pad(x, extra, "zeros")

    out = kernels.input_grad(w.astype(dtype, copy=False), x, geometry)
    return _without_batch(_add_bias(out, b), geometry)


def _conv_transpose_nd(ndim: int, name: str):
    return _fixed_rank(conv_transpose, ndim, name, "C_in, C_out/groups")


conv_transpose1d = _conv_transpose_nd(1, "conv_transpose1d")
conv_transpose2d = _conv_transpose_nd(2, "conv_transpose2d")
conv_transpose3d = _conv_transpose_nd(3, "conv_transpose3d")
