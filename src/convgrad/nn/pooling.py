"""Max, average and global average pooling over 1 or 2 spatial axes.

The windowed layers loop only over the offsets inside one window (at most
``prod(kernel_size)`` iterations). Each iteration handles every output
position at once through a strided slice of the padded input, and backward
adds into the same slices, so no Python loop runs over positions.

Output size per spatial axis, as in PyTorch with ``ceil_mode=False``::

    L_out = floor((L_in + 2 * padding - kernel_size) / stride) + 1
"""

from __future__ import annotations

import itertools
import math

import numpy as np

from convgrad.geometry import expand_ints
from convgrad.nn._validation import as_float_array, check_grad_shape, check_ndim, require_forward
from convgrad.nn.module import Module


def _window_slices(offset, stride, output_shape) -> tuple[slice, ...]:
    # Slices of the padded spatial axes that contain element ``offset`` of every window.
    return tuple(
        slice(o, o + s * (n - 1) + 1, s) for o, s, n in zip(offset, stride, output_shape)
    )


class _PoolNd(Module):
    """Shared geometry of the windowed pooling layers over ``spatial_dims`` (1 or 2) axes."""

    spatial_dims = 0

    def __init__(self, kernel_size, stride=None, padding=0):
        super().__init__()
        d = self.spatial_dims
        name = type(self).__name__
        self.kernel_size = expand_ints("kernel_size", kernel_size, d, minimum=1)
        self.stride = self.kernel_size if stride is None else expand_ints("stride", stride, d, minimum=1)
        self.padding = expand_ints("padding", padding, d, minimum=0)
        for k, p in zip(self.kernel_size, self.padding):
            if 2 * p > k:
                raise ValueError(
                    f"{name}: padding must be at most half of kernel_size (PyTorch's rule), "
                    f"got padding={self.padding}, kernel_size={self.kernel_size}"
                )
        self.input_shape = None
        self.output_shape = None

    def _check_input(self, x) -> np.ndarray:
        x = as_float_array(x)
        d = self.spatial_dims
        layout = "(N, C, L)" if d == 1 else "(N, C, H, W)"
        check_ndim(x, (d + 2,), layout, type(self).__name__)
        return x

    def _output_spatial_shape(self, spatial_shape) -> tuple[int, ...]:
        sizes = []
        for length, k, s, p in zip(spatial_shape, self.kernel_size, self.stride, self.padding):
            size = (length + 2 * p - k) // s + 1
            if size < 1:
                raise ValueError(
                    f"{type(self).__name__}: input spatial shape {tuple(spatial_shape)} is too small "
                    f"for kernel_size={self.kernel_size} with padding={self.padding}"
                )
            sizes.append(size)
        return tuple(sizes)

    def _pad(self, x: np.ndarray, value: float) -> np.ndarray:
        if not any(self.padding):
            return x
        widths = ((0, 0), (0, 0)) + tuple((p, p) for p in self.padding)
        return np.pad(x, widths, constant_values=value)

    def _crop(self, padded: np.ndarray) -> np.ndarray:
        index = (slice(None), slice(None)) + tuple(
            slice(p, padded.shape[2 + i] - p) for i, p in enumerate(self.padding)
        )
        return padded[index]

    def _offsets(self):
        return itertools.product(*(range(k) for k in self.kernel_size))

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class _MaxPoolNd(_PoolNd):
    """Maximum over each window. Backward routes the gradient to the argmax.

    Padding is filled with ``-inf`` so it never wins. When several elements of
    a window share the maximum, the first in row-major window order receives
    the whole gradient. The tests check that PyTorch 2.13 on CPU makes the
    same choice. A NaN in a window becomes the window's maximum, and the last
    NaN in window order receives the gradient, as PyTorch 2.13 does on CPU.
    """

    def __init__(self, kernel_size, stride=None, padding=0):
        super().__init__(kernel_size, stride, padding)
        self.argmax = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = self._check_input(x)
        output_spatial = self._output_spatial_shape(x.shape[2:])
        padded = self._pad(x, -np.inf)

        # Running maximum over window offsets. ``argmax`` is the offset's index in
        # row-major window order, stored in the smallest signed integer type that fits.
        # The updates use arithmetic on masks, not masked assignment, because
        # masked assignment on a random mask was 3x slower in a NumPy 2.4 benchmark.
        kernel_count = math.prod(self.kernel_size)
        output = None
        argmax = np.zeros(x.shape[:2] + output_spatial, dtype=np.min_scalar_type(-kernel_count))
        for index, offset in enumerate(self._offsets()):
            window_slice = (Ellipsis,) + _window_slices(offset, self.stride, output_spatial)
            candidate = padded[window_slice]
            if output is None:
                output = candidate.copy()
                continue
            # Strict ``>`` keeps the first of equal maxima. Every NaN replaces the
            # running maximum, so the last NaN wins, as in PyTorch 2.13 on CPU.
            better = candidate > output
            better |= np.isnan(candidate)
            argmax += better * (index - argmax)
            np.maximum(output, candidate, out=output)

        self.input_shape = x.shape
        self.output_shape = output.shape
        self.argmax = argmax
        return output

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        argmax = require_forward(self.argmax, type(self).__name__)
        grad_output = check_grad_shape(grad_output, self.output_shape, type(self).__name__)
        output_spatial = self.output_shape[2:]

        padded_shape = self.input_shape[:2] + tuple(
            n + 2 * p for n, p in zip(self.input_shape[2:], self.padding)
        )
        grad_padded = np.zeros(padded_shape, dtype=grad_output.dtype)
        for index, offset in enumerate(self._offsets()):
            window_slice = (Ellipsis,) + _window_slices(offset, self.stride, output_spatial)
            grad_padded[window_slice] += grad_output * (argmax == index)
        return self._crop(grad_padded)


class _AvgPoolNd(_PoolNd):
    """Mean over each window.

    With ``count_include_pad=True`` (PyTorch's default) every window is divided
    by ``prod(kernel_size)``, padded zeros included. With ``False`` each window
    is divided by the number of its elements that lie inside the input.
    """

    def __init__(self, kernel_size, stride=None, padding=0, count_include_pad: bool = True):
        super().__init__(kernel_size, stride, padding)
        if not isinstance(count_include_pad, bool):
            raise TypeError(f"count_include_pad must be a bool, got {count_include_pad!r}")
        self.count_include_pad = count_include_pad
        self.divisor = None

    def _window_counts(self, spatial_shape, output_spatial, dtype) -> np.ndarray | float:
        if self.count_include_pad or not any(self.padding):
            return float(math.prod(self.kernel_size))
        inside = self._pad(np.ones((1, 1) + tuple(spatial_shape), dtype=dtype), 0)
        counts = np.zeros((1, 1) + output_spatial, dtype=dtype)
        for offset in self._offsets():
            counts += inside[(Ellipsis,) + _window_slices(offset, self.stride, output_spatial)]
        return counts

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = self._check_input(x)
        output_spatial = self._output_spatial_shape(x.shape[2:])
        padded = self._pad(x, 0)

        total = np.zeros(x.shape[:2] + output_spatial, dtype=x.dtype)
        for offset in self._offsets():
            total += padded[(Ellipsis,) + _window_slices(offset, self.stride, output_spatial)]
        self.divisor = self._window_counts(x.shape[2:], output_spatial, x.dtype)

        self.input_shape = x.shape
        self.output_shape = total.shape
        return total / self.divisor

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        divisor = require_forward(self.divisor, type(self).__name__)
        grad_output = check_grad_shape(grad_output, self.output_shape, type(self).__name__)
        output_spatial = self.output_shape[2:]

        grad_window = grad_output / divisor
        padded_shape = self.input_shape[:2] + tuple(
            n + 2 * p for n, p in zip(self.input_shape[2:], self.padding)
        )
        grad_padded = np.zeros(padded_shape, dtype=grad_window.dtype)
        for offset in self._offsets():
            grad_padded[(Ellipsis,) + _window_slices(offset, self.stride, output_spatial)] += grad_window
        return self._crop(grad_padded)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", count_include_pad={self.count_include_pad}"


class MaxPool1d(_MaxPoolNd):
    """Max pooling over ``(N, C, L)``.

    Parameters
    ----------
    kernel_size : int
    stride : int, optional
        Defaults to ``kernel_size``.
    padding : int
        Implicit ``-inf`` padding on both sides, at most ``kernel_size / 2``.
    """

    spatial_dims = 1


class MaxPool2d(_MaxPoolNd):
    """Max pooling over ``(N, C, H, W)``.

    Parameters
    ----------
    kernel_size : int or (int, int)
    stride : int or (int, int), optional
        Defaults to ``kernel_size``.
    padding : int or (int, int)
        Implicit ``-inf`` padding on both sides, at most ``kernel_size / 2``.
    """

    spatial_dims = 2


class AvgPool1d(_AvgPoolNd):
    """Average pooling over ``(N, C, L)``.

    Parameters
    ----------
    kernel_size : int
    stride : int, optional
        Defaults to ``kernel_size``.
    padding : int
        Implicit zero padding on both sides, at most ``kernel_size / 2``.
    count_include_pad : bool
        Whether padded zeros count in the divisor (default True).
    """

    spatial_dims = 1


class AvgPool2d(_AvgPoolNd):
    """Average pooling over ``(N, C, H, W)``.

    Parameters
    ----------
    kernel_size : int or (int, int)
    stride : int or (int, int), optional
        Defaults to ``kernel_size``.
    padding : int or (int, int)
        Implicit zero padding on both sides, at most ``kernel_size / 2``.
    count_include_pad : bool
        Whether padded zeros count in the divisor (default True).
    """

    spatial_dims = 2


class GlobalAvgPool(Module):
    """Mean over every spatial axis: ``(N, C, *spatial) -> (N, C)``.

    Works for any number of spatial axes (at least one).
    """

    def __init__(self):
        super().__init__()
        self.input_shape = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = as_float_array(x)
        if x.ndim < 3:
            raise ValueError(f"GlobalAvgPool expects input of shape (N, C, *spatial), got shape {x.shape}")
        self.input_shape = x.shape
        return x.mean(axis=tuple(range(2, x.ndim)))

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        input_shape = require_forward(self.input_shape, "GlobalAvgPool")
        grad_output = check_grad_shape(grad_output, input_shape[:2], "GlobalAvgPool")
        count = math.prod(input_shape[2:])
        spatial_axes = (1,) * (len(input_shape) - 2)
        scaled = grad_output.reshape(grad_output.shape + spatial_axes) / count
        return np.broadcast_to(scaled, input_shape).copy()
