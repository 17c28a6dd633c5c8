"""Batch normalization over the channel axis.

In training mode each channel ``c`` is normalized with the statistics of the
current batch, taken over every axis but the channel axis (``n`` values)::

    mean_c = sum(x) / n
    var_c  = sum((x - mean_c)**2) / n                  (biased)
    y      = (x - mean_c) / sqrt(var_c + eps) * weight_c + bias_c

and the running statistics are updated with the unbiased variance::

    running_mean = (1 - momentum) * running_mean + momentum * mean_c
    running_var  = (1 - momentum) * running_var  + momentum * var_c * n / (n - 1)

In evaluation mode the running statistics replace the batch statistics. These
are PyTorch's definitions, defaults included (eps 1e-5, momentum 0.1).
"""

from __future__ import annotations

import numbers

import numpy as np

from convgrad.nn._validation import (
    as_float_array,
    check_channels,
    check_float_dtype,
    check_grad_shape,
    check_ndim,
    check_positive_int,
    require_forward,
)
from convgrad.nn.module import Module, Parameter


class _BatchNorm(Module):
    """Shared implementation. Subclasses set the accepted input ranks."""

    allowed_ndims: tuple[int, ...] = ()
    layout = ""

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
        dtype=np.float32,
    ):
        super().__init__()
        self.num_features = check_positive_int(num_features, "num_features")
        if isinstance(eps, bool) or not isinstance(eps, numbers.Real) or not eps > 0:
            raise ValueError(f"eps must be a positive number, got {eps!r}")
        if momentum is not None and (
            isinstance(momentum, bool) or not isinstance(momentum, numbers.Real) or not 0 <= momentum <= 1
        ):
            raise ValueError(f"momentum must be a number in [0, 1] or None, got {momentum!r}")
        dtype = check_float_dtype(dtype)

        # Python floats keep float32 arithmetic in float32.
        self.eps = float(eps)
        self.momentum = None if momentum is None else float(momentum)
        self.affine = bool(affine)
        self.track_running_stats = bool(track_running_stats)

        if self.affine:
            self.weight = Parameter(np.ones(self.num_features, dtype=dtype))
            self.bias = Parameter(np.zeros(self.num_features, dtype=dtype))
        else:
            self.weight = None
            self.bias = None

        if self.track_running_stats:
            self.register_buffer("running_mean", np.zeros(self.num_features, dtype=dtype))
            self.register_buffer("running_var", np.ones(self.num_features, dtype=dtype))
            self.register_buffer("num_batches_tracked", np.array(0, dtype=np.int64))
        else:
            self.running_mean = None
            self.running_var = None
            self.num_batches_tracked = None

        # Saved by forward for backward.
        self.normalized = None
        self.inv_std = None
        self.used_batch_stats = None

    def _channel_shape(self, ndim: int) -> tuple[int, ...]:
        # Shape that broadcasts a per-channel vector against the input.
        return (1, self.num_features) + (1,) * (ndim - 2)

    def forward(self, x: np.ndarray) -> np.ndarray:
        name = type(self).__name__
        x = as_float_array(x)
        check_ndim(x, self.allowed_ndims, self.layout, name)
        check_channels(x, self.num_features, name)

        reduce_axes = (0,) + tuple(range(2, x.ndim))
        shape = self._channel_shape(x.ndim)
        use_batch_stats = self.training or not self.track_running_stats

        if use_batch_stats:
            count = x.size // self.num_features
            if self.training and count <= 1:
                raise ValueError(
                    f"{name} in training mode needs more than 1 value per channel, got input of shape {x.shape}"
                )
            mean = x.mean(axis=reduce_axes)
            centered = x - mean.reshape(shape)
            var = np.mean(centered * centered, axis=reduce_axes)
            if self.training and self.track_running_stats:
                self._update_running_stats(mean, var, count)
        else:
            mean = self.running_mean
            var = self.running_var
            centered = x - mean.reshape(shape)

        inv_std = 1 / np.sqrt(var + self.eps)
        normalized = centered * inv_std.reshape(shape)

        self.normalized = normalized
        self.inv_std = inv_std
        self.used_batch_stats = use_batch_stats

        if not self.affine:
            return normalized
        return normalized * self.weight.data.reshape(shape) + self.bias.data.reshape(shape)

    def _update_running_stats(self, mean: np.ndarray, var: np.ndarray, count: int) -> None:
        self.num_batches_tracked += 1
        if self.momentum is None:
            # Cumulative moving average over every batch seen so far.
            factor = 1.0 / int(self.num_batches_tracked)
        else:
            factor = self.momentum
        unbiased_var = var * (count / (count - 1))
        self.running_mean *= 1 - factor
        self.running_mean += factor * mean
        self.running_var *= 1 - factor
        self.running_var += factor * unbiased_var

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        name = type(self).__name__
        normalized = require_forward(self.normalized, name)
        grad_output = check_grad_shape(grad_output, normalized.shape, name)
        reduce_axes = (0,) + tuple(range(2, normalized.ndim))
        shape = self._channel_shape(normalized.ndim)

        if self.affine:
            self.weight.grad += np.sum(grad_output * normalized, axis=reduce_axes)
            self.bias.grad += np.sum(grad_output, axis=reduce_axes)
            grad_normalized = grad_output * self.weight.data.reshape(shape)
        else:
            grad_normalized = grad_output

        if not self.used_batch_stats:
            # Running statistics are constants, so the map is affine per channel.
            return grad_normalized * self.inv_std.reshape(shape)

        # With batch statistics, mean and variance depend on every input too:
        # dx = inv_std * (g - mean(g) - xhat * mean(g * xhat)), with g = dL/dxhat
        # and the means taken per channel over the n normalized values.
        mean_grad = np.mean(grad_normalized, axis=reduce_axes).reshape(shape)
        mean_grad_dot = np.mean(grad_normalized * normalized, axis=reduce_axes).reshape(shape)
        return (grad_normalized - mean_grad - normalized * mean_grad_dot) * self.inv_std.reshape(shape)

    def extra_repr(self) -> str:
        return (
            f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
            f"track_running_stats={self.track_running_stats}"
        )


class BatchNorm1d(_BatchNorm):
    """Batch normalization of ``(N, C)`` or ``(N, C, L)`` input, per channel ``C``.

    Parameters
    ----------
    num_features : int
        Number of channels ``C``.
    eps : float
        Added to the variance before the square root (default 1e-5).
    momentum : float or None
        Weight of the newest batch in the running statistics (default 0.1).
        None gives a cumulative average over all batches.
    affine : bool
        Whether to learn a per-channel ``weight`` (initialized to 1) and
        ``bias`` (initialized to 0).
    track_running_stats : bool
        Whether to keep ``running_mean``/``running_var`` buffers. Without them
        batch statistics are used in evaluation mode too.
    dtype : numpy floating dtype
        dtype of the parameters and buffers (default float32).

    Attributes
    ----------
    running_mean, running_var : numpy.ndarray of shape (C,)
        Buffers (included in ``state_dict``), initialized to 0 and 1.
    num_batches_tracked : numpy.ndarray, int64 scalar
        Buffer counting training batches, as in PyTorch.
    """

    allowed_ndims = (2, 3)
    layout = "(N, C) or (N, C, L)"


class BatchNorm2d(_BatchNorm):
    """Batch normalization of ``(N, C, H, W)`` input, per channel ``C``.

    Arguments and attributes are those of ``BatchNorm1d``.
    """

    allowed_ndims = (4,)
    layout = "(N, C, H, W)"
