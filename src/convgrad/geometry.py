"""Validated geometry of an N-dimensional convolution.

Every operator in convgrad (the loop reference, the vectorized default and the
layers) describes a convolution through one :class:`ConvGeometry`, built and
checked here, so that a shape rule is written once.

Notation
--------
For ``d`` spatial axes, on axis ``a``:

- ``L_a`` input length, ``K_a`` kernel length,
- ``s_a`` stride, ``r_a`` dilation (1 means no gaps),
- ``p_a^lo`` and ``p_a^hi`` the padding before and after the input,
- ``E_a = r_a * (K_a - 1) + 1`` the effective (dilated) kernel length,
- ``O_a`` output length::

      O_a = floor((L_a + p_a^lo + p_a^hi - E_a) / s_a) + 1

The convolution is valid only when ``L_a + p_a^lo + p_a^hi >= E_a`` on every
axis, so that each output reads at least one whole window.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np

PADDING_MODES = ("zeros", "reflect", "replicate", "circular")
PADDING_STRINGS = ("valid", "same", "full")
MAX_INT = np.iinfo(np.int64).max


# ---------------------------------------------------------------------------
# Argument normalization
# ---------------------------------------------------------------------------


def _check_int(name: str, value, *, minimum: int) -> int:
    """Return ``value`` as an ``int`` after checking its type and lower bound."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r} of type {type(value).__name__}")
    value = int(value)
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    if value > MAX_INT:
        raise ValueError(f"{name} must be at most {MAX_INT} (the largest int64), got {value}")
    return value


def expand_ints(name: str, value, ndim: int, *, minimum: int) -> tuple[int, ...]:
    """Expand an int or a sequence of ``ndim`` ints into a tuple of ``ndim`` ints.

    Raises
    ------
    TypeError
        If ``value`` or one of its entries is not an integer (a float such as
        ``1.5`` or ``2.0`` is rejected, like PyTorch does).
    ValueError
        If the sequence has the wrong length or an entry is below ``minimum``.
    """
    if isinstance(value, (list, tuple, np.ndarray)):
        items = list(np.asarray(value, dtype=object).ravel()) if isinstance(value, np.ndarray) else list(value)
        if len(items) != ndim:
            raise ValueError(
                f"{name} must be an int or a sequence of {ndim} ints (one per spatial axis), "
                f"got {value!r} with {len(items)} entries"
            )
        return tuple(_check_int(f"{name}[{i}]", item, minimum=minimum) for i, item in enumerate(items))
    return (_check_int(name, value, minimum=minimum),) * ndim


def _is_pair(item) -> bool:
    return isinstance(item, (list, tuple)) and len(item) == 2


def normalize_padding(
    padding,
    ndim: int,
    kernel_size: tuple[int, ...],
    dilation: tuple[int, ...],
    stride: tuple[int, ...],
) -> tuple[tuple[int, int], ...]:
    """Resolve any accepted padding form into ``((lo, hi), ...)`` per spatial axis.

    Accepted forms: an int (same on both sides of every axis), a sequence of
    ``ndim`` ints (both sides of each axis), a sequence of ``ndim`` pairs
    ``(lo, hi)``, or one of the strings:

    - ``'valid'``: no padding;
    - ``'same'``: output length equals input length (stride 1 only). The total
      ``r * (K - 1)`` is split as ``lo = total // 2`` and ``hi = total - lo``,
      so an odd total puts the extra element after the input, as PyTorch does;
    - ``'full'``: ``r * (K - 1)`` on both sides, so every partial overlap of
      kernel and input produces an output.
    """
    if isinstance(padding, str):
        if padding not in PADDING_STRINGS:
            raise ValueError(f"padding must be an int, a tuple or one of {PADDING_STRINGS}, got {padding!r}")
        totals = [r * (k - 1) for k, r in zip(kernel_size, dilation)]
        if padding == "valid":
            return tuple((0, 0) for _ in range(ndim))
        if padding == "full":
            return tuple((t, t) for t in totals)
        if any(s != 1 for s in stride):
            raise ValueError(
                f"padding='same' requires stride 1 on every axis, got stride {stride}; "
                "give the padding explicitly for strided convolutions"
            )
        return tuple((t // 2, t - t // 2) for t in totals)

    if isinstance(padding, (list, tuple)) and any(_is_pair(item) for item in padding):
        if len(padding) != ndim or not all(_is_pair(item) for item in padding):
            raise ValueError(
                f"explicit padding must be {ndim} pairs (lo, hi), one per spatial axis, got {padding!r}"
            )
        return tuple(
            (
                _check_int(f"padding[{i}][0]", lo, minimum=0),
                _check_int(f"padding[{i}][1]", hi, minimum=0),
            )
            for i, (lo, hi) in enumerate(padding)
        )

    per_axis = expand_ints("padding", padding, ndim, minimum=0)
    return tuple((p, p) for p in per_axis)


def _check_padding_mode(padding_mode, padding, input_size) -> str:
    if padding_mode not in PADDING_MODES:
        raise ValueError(f"padding_mode must be one of {PADDING_MODES}, got {padding_mode!r}")
    for axis, ((lo, hi), length) in enumerate(zip(padding, input_size)):
        widest = max(lo, hi)
        if padding_mode == "reflect" and widest >= length:
            raise ValueError(
                f"reflect padding must be smaller than the input length on each axis, but spatial "
                f"axis {axis} has length {length} and padding {(lo, hi)}"
            )
        if padding_mode == "circular" and widest > length:
            raise ValueError(
                f"circular padding must not exceed the input length on each axis, but spatial "
                f"axis {axis} has length {length} and padding {(lo, hi)}"
            )
    return padding_mode


def as_shape(name: str, shape) -> tuple[int, ...]:
    """Check that ``shape`` is a sequence of non-negative ints and return it as a tuple."""
    if isinstance(shape, np.ndarray):
        if shape.ndim != 1:
            raise TypeError(
                f"{name} must be a tuple of ints, got an ndarray of shape {shape.shape}; "
                f"to pass an array's shape, use array.shape"
            )
        shape = shape.tolist()
    if not isinstance(shape, (list, tuple)):
        raise TypeError(f"{name} must be a tuple of ints, got {shape!r} of type {type(shape).__name__}")
    return tuple(_check_int(f"{name}[{i}]", dim, minimum=0) for i, dim in enumerate(shape))


# ---------------------------------------------------------------------------
# The geometry
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ConvGeometry:
    """Shapes and hyper-parameters of one convolution, checked for consistency.

    Build it with :meth:`ConvGeometry.create`; the constructor itself does not
    validate.

    Attributes
    ----------
    batch : int
        N, the number of samples (1 for an unbatched input).
    batched : bool
        False when the caller passed an input without a batch axis,
        ``(C_in, *spatial)``; results then drop the batch axis too.
    in_channels, out_channels, groups : int
        ``C_in``, ``C_out`` and the number of groups G. Each group maps
        ``C_in / G`` input channels to ``C_out / G`` output channels.
    input_size, kernel_size, output_size : tuple of int
        ``L``, ``K`` and ``O`` per spatial axis.
    stride, dilation : tuple of int
        ``s`` and ``r`` per spatial axis.
    padding : tuple of (int, int)
        ``(p^lo, p^hi)`` per spatial axis.
    padding_mode : str
        How the padded border is filled: 'zeros', 'reflect', 'replicate' or
        'circular'.
    """

    batch: int
    batched: bool
    in_channels: int
    out_channels: int
    groups: int
    input_size: tuple[int, ...]
    kernel_size: tuple[int, ...]
    stride: tuple[int, ...]
    dilation: tuple[int, ...]
    padding: tuple[tuple[int, int], ...]
    padding_mode: str
    output_size: tuple[int, ...]

    @classmethod
    def create(
        cls,
        input_shape,
        weight_shape,
        stride=1,
        padding=0,
        dilation=1,
        groups=1,
        padding_mode="zeros",
    ) -> "ConvGeometry":
        """Validate a convolution's arguments and compute its output size.

        Parameters
        ----------
        input_shape : tuple of int
            ``(N, C_in, *L)`` or, unbatched, ``(C_in, *L)``.
        weight_shape : tuple of int
            ``(C_out, C_in / groups, *K)``; its length fixes ``d = len - 2``.
        stride, padding, dilation, groups, padding_mode
            As for :func:`convgrad.conv`.

        Raises
        ------
        TypeError
            If a shape entry, stride, dilation, groups or padding entry is not
            an integer.
        ValueError
            If a value breaks a rule: wrong number of dimensions, groups that
            do not divide the channel counts, channel mismatch, stride or
            dilation below 1, negative padding, padding too wide for its mode,
            'same' with stride > 1, or a dilated kernel longer than the padded
            input (the output would be empty).
        """
        input_shape = as_shape("input shape", input_shape)
        weight_shape = as_shape("weight shape", weight_shape)

        if len(weight_shape) < 3:
            raise ValueError(
                f"weight must have shape (C_out, C_in/groups, *kernel_size) with at least one "
                f"spatial axis, got shape {weight_shape}"
            )
        ndim = len(weight_shape) - 2
        if len(input_shape) == ndim + 2:
            batched = True
            batch, in_channels, *input_size = input_shape
        elif len(input_shape) == ndim + 1:
            batched = False
            batch = 1
            in_channels, *input_size = input_shape
        else:
            raise ValueError(
                f"a {ndim}-D convolution expects an input with {ndim + 2} dimensions (N, C_in, *spatial) "
                f"or {ndim + 1} dimensions (C_in, *spatial), got {len(input_shape)} dimensions, "
                f"shape {input_shape}"
            )
        input_size = tuple(input_size)

        out_channels, group_in_channels, *kernel_size = weight_shape
        kernel_size = tuple(kernel_size)
        if any(k < 1 for k in kernel_size):
            raise ValueError(f"kernel size must be >= 1 on every axis, got weight shape {weight_shape}")
        if any(n < 1 for n in input_size):
            raise ValueError(f"input spatial size must be >= 1 on every axis, got input shape {input_shape}")
        if in_channels < 1 or group_in_channels < 1:
            raise ValueError(
                f"input and weight need at least one channel, got input shape {input_shape} "
                f"and weight shape {weight_shape}"
            )

        groups = _check_int("groups", groups, minimum=1)
        if in_channels % groups or out_channels % groups:
            raise ValueError(
                f"groups must divide both channel counts, got groups={groups} with "
                f"C_in={in_channels} and C_out={out_channels}"
            )
        if group_in_channels * groups != in_channels:
            raise ValueError(
                f"input has {in_channels} channels, but weight shape {weight_shape} with groups={groups} "
                f"expects {group_in_channels * groups} channels (weight.shape[1] * groups)"
            )

        stride = expand_ints("stride", stride, ndim, minimum=1)
        dilation = expand_ints("dilation", dilation, ndim, minimum=1)
        padding = normalize_padding(padding, ndim, kernel_size, dilation, stride)
        padding_mode = _check_padding_mode(padding_mode, padding, input_size)

        output_size = []
        for axis in range(ndim):
            padded = input_size[axis] + padding[axis][0] + padding[axis][1]
            effective = dilation[axis] * (kernel_size[axis] - 1) + 1
            if padded < effective:
                raise ValueError(
                    f"the dilated kernel (length {effective} on spatial axis {axis}: kernel "
                    f"{kernel_size[axis]}, dilation {dilation[axis]}) is larger than the padded input "
                    f"(length {padded}: input {input_size[axis]}, padding {padding[axis]}), "
                    "so the output would be empty"
                )
            output_size.append((padded - effective) // stride[axis] + 1)

        return cls(
            batch=batch,
            batched=batched,
            in_channels=in_channels,
            out_channels=out_channels,
            groups=groups,
            input_size=input_size,
            kernel_size=kernel_size,
            stride=stride,
            dilation=dilation,
            padding=padding,
            padding_mode=padding_mode,
            output_size=tuple(output_size),
        )

    # -- derived sizes -----------------------------------------------------

    @property
    def ndim(self) -> int:
        """Number of spatial axes d."""
        return len(self.kernel_size)

    @property
    def padded_size(self) -> tuple[int, ...]:
        return tuple(n + lo + hi for n, (lo, hi) in zip(self.input_size, self.padding))

    @property
    def group_in_channels(self) -> int:
        return self.in_channels // self.groups

    @property
    def group_out_channels(self) -> int:
        return self.out_channels // self.groups

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of the input as the caller passed it (with or without the batch axis)."""
        shape = (self.in_channels, *self.input_size)
        return (self.batch, *shape) if self.batched else shape

    @property
    def weight_shape(self) -> tuple[int, ...]:
        return (self.out_channels, self.group_in_channels, *self.kernel_size)

    @property
    def output_shape(self) -> tuple[int, ...]:
        """Shape of the output, with a batch axis exactly when the input had one."""
        shape = (self.out_channels, *self.output_size)
        return (self.batch, *shape) if self.batched else shape

    @property
    def flops(self) -> int:
        """Multiply-adds times two for one pass: ``2 N C_out (C_in/G) prod(K) prod(O)``."""
        return (
            2
            * self.batch
            * self.out_channels
            * self.group_in_channels
            * int(np.prod(self.kernel_size))
            * int(np.prod(self.output_size))
        )

    def check_grad_output(self, grad_output_shape) -> None:
        """Raise ValueError unless ``grad_output_shape`` equals :attr:`output_shape`."""
        if tuple(grad_output_shape) != self.output_shape:
            raise ValueError(
                f"grad_output has shape {tuple(grad_output_shape)}, but the convolution of an input of "
                f"shape {self.input_shape} with a weight of shape {self.weight_shape} "
                f"(stride {self.stride}, padding {self.padding}, dilation {self.dilation}, "
                f"groups {self.groups}) produces shape {self.output_shape}"
            )


def transposed_geometry(
    input_shape,
    weight_shape,
    stride=1,
    padding=0,
    output_padding=0,
    groups=1,
    dilation=1,
) -> ConvGeometry:
    """Return the geometry of the forward convolution whose input gradient a
    transposed convolution computes.

    A transposed convolution with input ``(N, C_in, *L)`` and weight
    ``(C_in, C_out / G, *K)`` is the adjoint of a convolution that maps
    ``(N, C_out, *L')`` to ``(N, C_in, *L)`` with the same weight. The forward
    convolution's input length is::

        L'_a = (L_a - 1) s_a - p_a^lo - p_a^hi + r_a (K_a - 1) + output_padding_a + 1

    ``output_padding`` adds elements after the output that the forward
    convolution never reads (a stride remainder), so it must be smaller than
    the stride or the dilation on each axis, as in PyTorch. When it is not
    smaller than the stride, the forward convolution of that length has more
    outputs than the transposed convolution has inputs. The returned
    geometry's ``output_size`` then exceeds the input's spatial size, so
    callers pad the input with zeros at the end to match.

    Padding here accepts an int, a per-axis tuple or per-side pairs; the
    string forms are not defined for transposed convolutions.
    """
    input_shape = as_shape("input shape", input_shape)
    weight_shape = as_shape("weight shape", weight_shape)
    if len(weight_shape) < 3:
        raise ValueError(
            f"weight must have shape (C_in, C_out/groups, *kernel_size) with at least one spatial axis, "
            f"got shape {weight_shape}"
        )
    ndim = len(weight_shape) - 2
    if len(input_shape) not in (ndim + 1, ndim + 2):
        raise ValueError(
            f"a {ndim}-D transposed convolution expects an input with {ndim + 2} dimensions "
            f"(N, C_in, *spatial) or {ndim + 1} dimensions (C_in, *spatial), got {len(input_shape)} "
            f"dimensions, shape {input_shape}"
        )
    if isinstance(padding, str):
        raise ValueError(
            f"padding for a transposed convolution must be an int, a tuple or per-side pairs, got {padding!r}"
        )

    kernel_size = weight_shape[2:]
    stride_t = expand_ints("stride", stride, ndim, minimum=1)
    dilation_t = expand_ints("dilation", dilation, ndim, minimum=1)
    output_padding = expand_ints("output_padding", output_padding, ndim, minimum=0)
    padding_t = normalize_padding(padding, ndim, kernel_size, dilation_t, stride_t)
    for axis in range(ndim):
        if output_padding[axis] >= max(stride_t[axis], dilation_t[axis]):
            raise ValueError(
                f"output_padding must be smaller than either stride or dilation on each axis, got "
                f"output_padding {output_padding[axis]} with stride {stride_t[axis]} and dilation "
                f"{dilation_t[axis]} on spatial axis {axis}"
            )

    spatial = input_shape[-ndim:]
    size = []
    for axis in range(ndim):
        (lo, hi), s, r, k = padding_t[axis], stride_t[axis], dilation_t[axis], kernel_size[axis]
        size.append((spatial[axis] - 1) * s - lo - hi + r * (k - 1) + output_padding[axis] + 1)
    if any(n < 1 for n in size):
        raise ValueError(
            f"the transposed convolution's output would have spatial size {tuple(size)}; padding "
            f"{padding_t} is too large for input size {spatial}, kernel {kernel_size}, stride {stride_t}"
        )

    channels = input_shape[-ndim - 1]
    if channels != weight_shape[0]:
        raise ValueError(
            f"input has {channels} channels, but the transposed-convolution weight of shape "
            f"{weight_shape} expects weight.shape[0] = {weight_shape[0]}"
        )
    groups = _check_int("groups", groups, minimum=1)
    forward_channels = weight_shape[1] * groups
    forward_input_shape = (*input_shape[:-ndim - 1], forward_channels, *size)
    return ConvGeometry.create(forward_input_shape, weight_shape, stride_t, padding_t, dilation_t, groups, "zeros")
