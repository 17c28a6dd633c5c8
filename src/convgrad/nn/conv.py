"""Convolution and transposed-convolution layers over 1, 2 or 3 spatial axes.

The layers hold the weight and bias and call the core operators of
:mod:`convgrad.conv`. Argument names and meanings are PyTorch's.
"""

from __future__ import annotations

import numpy as np

from convgrad.conv import conv, conv_input_grad, conv_transpose, conv_weight_grad
from convgrad.kernels import conv_forward_saved
from convgrad.geometry import PADDING_MODES, expand_ints, normalize_padding
from convgrad.nn import init
from convgrad.nn._validation import (
    check_float_dtype,
    check_grad_shape,
    check_positive_int,
    check_rng,
    require_forward,
)
from convgrad.nn.module import Module, Parameter


def _check_groups(in_channels: int, out_channels: int, groups) -> int:
    groups = check_positive_int(groups, "groups")
    for name, channels in (("in_channels", in_channels), ("out_channels", out_channels)):
        if channels % groups:
            raise ValueError(f"{name} must be divisible by groups, got {name}={channels} and groups={groups}")
    return groups


def _bias_grad(grad_output: np.ndarray, batched: bool) -> np.ndarray:
    # Sum over every axis except the channel axis (1, or 0 for an unbatched input).
    channel_axis = 1 if batched else 0
    return grad_output.sum(axis=tuple(a for a in range(grad_output.ndim) if a != channel_axis))


def _set_shared_arguments(layer, in_channels, out_channels, kernel_size, stride, dilation, groups) -> None:
    """Validate and store the arguments that convolution and transposed-convolution layers share."""
    d = layer.spatial_dims
    layer.in_channels = check_positive_int(in_channels, "in_channels")
    layer.out_channels = check_positive_int(out_channels, "out_channels")
    layer.kernel_size = expand_ints("kernel_size", kernel_size, d, minimum=1)
    layer.stride = expand_ints("stride", stride, d, minimum=1)
    layer.dilation = expand_ints("dilation", dilation, d, minimum=1)
    layer.groups = _check_groups(layer.in_channels, layer.out_channels, groups)


def _create_parameters(layer, weight_shape, bias: bool, dtype, rng) -> None:
    """Create the weight (and bias) with PyTorch's default initialization."""
    dtype = check_float_dtype(dtype)
    rng = check_rng(rng)
    layer.weight = Parameter(np.empty(weight_shape, dtype=dtype))
    layer.bias = Parameter(np.empty(layer.out_channels, dtype=dtype)) if bias else None
    init.default_weight_and_bias(layer.weight, layer.bias, rng)


class _ConvNd(Module):
    """Convolution layer over ``spatial_dims`` axes, documented on ``Conv2d``."""

    spatial_dims = 0

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size,
        stride=1,
        padding=0,
        dilation=1,
        groups: int = 1,
        bias: bool = True,
        padding_mode: str = "zeros",
        dtype=np.float32,
        rng: np.random.Generator | None = None,
    ):
        super().__init__()
        d = self.spatial_dims
        _set_shared_arguments(self, in_channels, out_channels, kernel_size, stride, dilation, groups)
        if padding_mode not in PADDING_MODES:
            raise ValueError(f"padding_mode must be one of {PADDING_MODES}, got {padding_mode!r}")
        self.padding_mode = padding_mode

        # Resolving the padding here rejects invalid values, such as 'same' with
        # a stride, at construction. The core receives the original form, so
        # 'same' and 'valid' keep their meaning there.
        if isinstance(padding, str):
            if padding not in ("valid", "same"):
                raise ValueError(f"padding must be an int, a tuple of {d} ints, 'valid' or 'same', got {padding!r}")
            normalize_padding(padding, d, self.kernel_size, self.dilation, self.stride)
            self.padding = padding
        else:
            self.padding = expand_ints("padding", padding, d, minimum=0)

        weight_shape = (self.out_channels, self.in_channels // self.groups) + self.kernel_size
        _create_parameters(self, weight_shape, bias, dtype, rng)

        self.input = None
        self.saved = None

    def _conv_arguments(self) -> tuple:
        return self.stride, self.padding, self.dilation, self.groups, self.padding_mode

    def forward(self, x: np.ndarray) -> np.ndarray:
        d = self.spatial_dims
        x = np.asarray(x)
        if x.ndim not in (d + 1, d + 2):
            raise ValueError(
                f"{type(self).__name__} expects input of shape (N, C, *spatial) with {d} spatial "
                f"axes, or (C, *spatial) unbatched, got shape {x.shape}"
            )
        self.input = x
        bias = None if self.bias is None else self.bias.data
        if not self.training:
            self.saved = None
            return conv(x, self.weight.data, bias, *self._conv_arguments())

        # In training, keep the forward pass's im2col columns (about the size
        # of the input times prod(kernel_size)) so the weight gradient reuses them.
        output, self.saved = conv_forward_saved(x, self.weight.data, bias, *self._conv_arguments())
        return output

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        x = require_forward(self.input, type(self).__name__)
        grad_output = np.asarray(grad_output)
        arguments = self._conv_arguments()
        if self.bias is not None:
            self.bias.grad += _bias_grad(grad_output, batched=x.ndim == self.spatial_dims + 2)

        # The core checks grad_output's shape against the forward geometry.
        if self.saved is not None:
            self.weight.grad += self.saved.weight_grad(grad_output)
            return self.saved.input_grad(grad_output)
        self.weight.grad += conv_weight_grad(x, self.weight.shape, grad_output, *arguments)
        return conv_input_grad(x.shape, self.weight.data, grad_output, *arguments)

    def extra_repr(self) -> str:
        text = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        if self.padding != (0,) * self.spatial_dims:
            text += f", padding={self.padding!r}"
        if self.dilation != (1,) * self.spatial_dims:
            text += f", dilation={self.dilation}"
        if self.groups != 1:
            text += f", groups={self.groups}"
        if self.bias is None:
            text += ", bias=False"
        if self.padding_mode != "zeros":
            text += f", padding_mode={self.padding_mode!r}"
        return text


class Conv1d(_ConvNd):
    """1-D convolution: ``(N, C_in, L) -> (N, C_out, L_out)``.

    Arguments, attributes and output size are those of ``Conv2d``, with one
    spatial axis: tuples have one entry.
    """

    spatial_dims = 1


class Conv2d(_ConvNd):
    """2-D convolution: ``(N, C_in, H, W) -> (N, C_out, H_out, W_out)``.

    Parameters
    ----------
    in_channels, out_channels : int
        Channels of the input and of the output, both divisible by ``groups``.
    kernel_size : int or tuple of int
    stride : int or tuple of int
        Step between output positions (default 1).
    padding : int, tuple of int, 'valid' or 'same'
        Implicit padding on both sides of each spatial axis (default 0).
        'same' keeps the spatial size and requires stride 1. When the total
        padding is odd, the extra element goes after the input, as in PyTorch.
    dilation : int or tuple of int
        Spacing between kernel taps (default 1, no dilation).
    groups : int
        Number of independent channel groups (default 1). ``groups ==
        in_channels`` gives a depthwise convolution.
    bias : bool
        Whether to add a learned bias (default True).
    padding_mode : {'zeros', 'reflect', 'replicate', 'circular'}
    dtype : numpy floating dtype
        dtype of the parameters (default float32).
    rng : numpy.random.Generator, optional
        Source of the initial values. None uses a fresh unseeded generator.

    Attributes
    ----------
    weight : Parameter, shape (out_channels, in_channels / groups, *kernel_size)
    bias : Parameter of shape (out_channels,), or None
        Both initialized as in PyTorch: uniform in ``±1 / sqrt(fan_in)`` with
        ``fan_in = in_channels / groups * prod(kernel_size)``.

    Notes
    -----
    The layer computes a cross-correlation (the kernel is not flipped), and
    unbatched input ``(C, *spatial)`` gives unbatched output. Per axis::

        L_out = floor((L_in + 2 padding - dilation (kernel_size - 1) - 1) / stride) + 1
    """

    spatial_dims = 2


class Conv3d(_ConvNd):
    """3-D convolution: ``(N, C_in, D, H, W) -> (N, C_out, D_out, H_out, W_out)``.

    Arguments, attributes and output size are those of ``Conv2d``, with three
    spatial axes: tuples have three entries.
    """

    spatial_dims = 3


class _ConvTransposeNd(Module):
    """Transposed convolution over ``spatial_dims`` axes, documented on ``ConvTranspose2d``."""

    spatial_dims = 0

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size,
        stride=1,
        padding=0,
        output_padding=0,
        groups: int = 1,
        bias: bool = True,
        dilation=1,
        dtype=np.float32,
        rng: np.random.Generator | None = None,
    ):
        super().__init__()
        d = self.spatial_dims
        _set_shared_arguments(self, in_channels, out_channels, kernel_size, stride, dilation, groups)
        self.padding = expand_ints("padding", padding, d, minimum=0)
        self.output_padding = expand_ints("output_padding", output_padding, d, minimum=0)
        for op, s, r in zip(self.output_padding, self.stride, self.dilation):
            if op >= max(s, r):
                raise ValueError(
                    f"output_padding must be smaller than stride or dilation on each axis, got "
                    f"output_padding={self.output_padding}, stride={self.stride}, dilation={self.dilation}"
                )

        weight_shape = (self.in_channels, self.out_channels // self.groups) + self.kernel_size
        # PyTorch computes fan_in from weight.shape[1], which for this layout is
        # out_channels / groups * prod(kernel_size). That is kept so initial
        # values follow the same distribution as PyTorch's.
        _create_parameters(self, weight_shape, bias, dtype, rng)

        self.input = None
        self.output_shape = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        d = self.spatial_dims
        x = np.asarray(x)
        if x.ndim not in (d + 1, d + 2):
            raise ValueError(
                f"{type(self).__name__} expects input of shape (N, C, *spatial) with {d} spatial "
                f"axes, or (C, *spatial) unbatched, got shape {x.shape}"
            )
        self.input = x
        bias = None if self.bias is None else self.bias.data
        output = conv_transpose(
            x, self.weight.data, bias, self.stride, self.padding, self.output_padding, self.groups, self.dilation
        )
        self.output_shape = output.shape
        return output

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        x = require_forward(self.input, type(self).__name__)
        batched = x.ndim == self.spatial_dims + 2
        grad_output = check_grad_shape(grad_output, self.output_shape, type(self).__name__)

        # The transposed convolution is the input gradient of conv(., weight), so
        # its own gradients are that convolution's forward and weight gradient.
        # With output_padding >= stride (allowed when dilation is larger), that
        # convolution has trailing outputs that match no input position: the
        # input is zero-padded to that size here and the input gradient cropped.
        spatial = x.shape[-self.spatial_dims:]
        conv_spatial = tuple(
            (n + 2 * p - r * (k - 1) - 1) // s + 1
            for n, s, p, r, k in zip(
                grad_output.shape[-self.spatial_dims:], self.stride, self.padding, self.dilation, self.kernel_size
            )
        )
        x_for_weight = x
        if conv_spatial != spatial:
            extra = tuple((0, c - n) for c, n in zip(conv_spatial, spatial))
            x_for_weight = np.pad(x, ((0, 0),) * (x.ndim - self.spatial_dims) + extra)
        self.weight.grad += conv_weight_grad(
            grad_output, self.weight.shape, x_for_weight, self.stride, self.padding, self.dilation, self.groups,
            "zeros",
        )
        if self.bias is not None:
            self.bias.grad += _bias_grad(grad_output, batched)

        grad_input = conv(
            grad_output, self.weight.data, stride=self.stride, padding=self.padding,
            dilation=self.dilation, groups=self.groups,
        )
        crop = (Ellipsis,) + tuple(slice(0, n) for n in x.shape[-self.spatial_dims:])
        return grad_input[crop]

    def extra_repr(self) -> str:
        text = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        if any(self.padding):
            text += f", padding={self.padding}"
        if any(self.output_padding):
            text += f", output_padding={self.output_padding}"
        if self.dilation != (1,) * self.spatial_dims:
            text += f", dilation={self.dilation}"
        if self.groups != 1:
            text += f", groups={self.groups}"
        if self.bias is None:
            text += ", bias=False"
        return text


class ConvTranspose1d(_ConvTransposeNd):
    """1-D transposed convolution: ``(N, C_in, L) -> (N, C_out, L_out)``.

    Arguments, attributes and output size are those of ``ConvTranspose2d``,
    with one spatial axis: tuples have one entry.
    """

    spatial_dims = 1


class ConvTranspose2d(_ConvTransposeNd):
    """2-D transposed convolution: ``(N, C_in, H, W) -> (N, C_out, H_out, W_out)``.

    Parameters
    ----------
    in_channels, out_channels : int
        Channels of the input and of the output, both divisible by ``groups``.
    kernel_size : int or tuple of int
    stride : int or tuple of int
        Upsampling factor (default 1).
    padding : int or tuple of int
        Removed from both sides of the full output (default 0).
    output_padding : int or tuple of int
        Extra elements after the output on each axis, smaller than stride or
        dilation (default 0). It selects among the output sizes that a strided
        convolution maps to the same input size.
    groups : int
        Number of independent channel groups (default 1).
    bias : bool
        Whether to add a learned bias (default True).
    dilation : int or tuple of int
        Spacing between kernel taps (default 1).
    dtype : numpy floating dtype
        dtype of the parameters (default float32).
    rng : numpy.random.Generator, optional
        Source of the initial values. None uses a fresh unseeded generator.

    Attributes
    ----------
    weight : Parameter, shape (in_channels, out_channels / groups, *kernel_size)
    bias : Parameter of shape (out_channels,), or None
        Both initialized as in PyTorch: uniform in ``±1 / sqrt(fan_in)`` with
        ``fan_in = out_channels / groups * prod(kernel_size)`` (PyTorch reads
        ``fan_in`` from the weight's second axis for this layout too).

    Notes
    -----
    The layer is the adjoint (input gradient) of the ``Conv`` layer with the
    same weight and arguments. Per axis::

        L_out = (L_in - 1) stride - 2 padding + dilation (kernel_size - 1) + output_padding + 1
    """

    spatial_dims = 2


class ConvTranspose3d(_ConvTransposeNd):
    """3-D transposed convolution: ``(N, C_in, D, H, W) -> (N, C_out, D_out, H_out, W_out)``.

    Arguments, attributes and output size are those of ``ConvTranspose2d``,
    with three spatial axes: tuples have three entries.
    """

    spatial_dims = 3
