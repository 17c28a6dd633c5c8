"""Weight initializers.

Each initializer fills an array (or a ``Parameter``'s data) in place and
returns it. An array with no elements is returned unchanged, as in PyTorch. Random values are drawn in float64 from the given
``numpy.random.Generator`` and then cast to the array's dtype, so one seed
gives the same values, up to rounding, in float32 and float64.

Fan definitions follow PyTorch: for a weight of shape
``(d0, d1, *kernel_size)``, ``fan_in = d1 * prod(kernel_size)`` and
``fan_out = d0 * prod(kernel_size)``. For a linear weight
``(out_features, in_features)`` that gives ``fan_in = in_features``, and for a
convolution weight ``(C_out, C_in / groups, *kernel_size)`` it gives the number
of inputs that one output element sums over.

Default initialization of ``Linear`` and the convolution layers is PyTorch's
(version 2.x): ``kaiming_uniform(weight, a=sqrt(5))``, which is uniform in
``±1 / sqrt(fan_in)``, and bias uniform in ``±1 / sqrt(fan_in)``.
"""

from __future__ import annotations

import math

import numpy as np

from convgrad.nn._validation import check_rng
from convgrad.nn.module import Parameter

_NONLINEARITIES = ("linear", "identity", "conv1d", "conv2d", "conv3d", "sigmoid", "tanh", "relu", "leaky_relu")


def _as_array(tensor) -> np.ndarray:
    if isinstance(tensor, Parameter):
        return tensor.data
    if isinstance(tensor, np.ndarray):
        if not np.issubdtype(tensor.dtype, np.floating):
            raise TypeError(f"tensor must have a floating dtype, got {tensor.dtype}")
        return tensor
    raise TypeError(f"tensor must be a numpy.ndarray or a Parameter, got {type(tensor).__name__}")


def calculate_fan_in_and_fan_out(shape) -> tuple[int, int]:
    """Return ``(fan_in, fan_out)`` of a weight of the given shape.

    Parameters
    ----------
    shape : tuple of int
        ``(d0, d1, *kernel_size)`` with at least two entries.

    Returns
    -------
    fan_in, fan_out : int
        ``d1 * prod(kernel_size)`` and ``d0 * prod(kernel_size)``.
    """
    shape = tuple(shape)
    if len(shape) < 2:
        raise ValueError(f"fan in and fan out need a shape with at least 2 axes, got {shape}")
    receptive_field = math.prod(shape[2:])
    return shape[1] * receptive_field, shape[0] * receptive_field


def _select_fan(shape, mode: str) -> int:
    fan_in, fan_out = calculate_fan_in_and_fan_out(shape)
    if mode == "fan_in":
        fan = fan_in
    elif mode == "fan_out":
        fan = fan_out
    else:
        raise ValueError(f"mode must be 'fan_in' or 'fan_out', got {mode!r}")
    return fan


def calculate_gain(nonlinearity: str, param: float | None = None) -> float:
    """Return the gain that keeps activations at unit variance through ``nonlinearity``.

    ====================  ==========================
    nonlinearity          gain
    ====================  ==========================
    linear, identity,     1
    conv1d/2d/3d,
    sigmoid
    tanh                  5/3
    relu                  sqrt(2)
    leaky_relu            sqrt(2 / (1 + param**2)),
                          param defaults to 0.01
    ====================  ==========================
    """
    if nonlinearity in ("linear", "identity", "conv1d", "conv2d", "conv3d", "sigmoid"):
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3.0
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else param
        if isinstance(slope, bool) or not isinstance(slope, (int, float)):
            raise TypeError(f"param must be a number (the negative slope), got {param!r}")
        return math.sqrt(2.0 / (1.0 + slope**2))
    raise ValueError(f"nonlinearity must be one of {_NONLINEARITIES}, got {nonlinearity!r}")


def uniform(tensor, low: float = 0.0, high: float = 1.0, rng: np.random.Generator | None = None):
    """Fill ``tensor`` in place with values drawn uniformly from ``[low, high)``."""
    array = _as_array(tensor)
    if not high >= low:
        raise ValueError(f"high must be >= low, got low={low}, high={high}")
    rng = check_rng(rng)
    array[...] = rng.uniform(low, high, size=array.shape)
    return tensor


def normal(tensor, mean: float = 0.0, std: float = 1.0, rng: np.random.Generator | None = None):
    """Fill ``tensor`` in place with values drawn from ``N(mean, std**2)``."""
    array = _as_array(tensor)
    if not std >= 0:
        raise ValueError(f"std must be >= 0, got {std}")
    rng = check_rng(rng)
    array[...] = rng.normal(mean, std, size=array.shape)
    return tensor


def zeros(tensor):
    """Fill ``tensor`` in place with zeros."""
    _as_array(tensor)[...] = 0
    return tensor


def ones(tensor):
    """Fill ``tensor`` in place with ones."""
    _as_array(tensor)[...] = 1
    return tensor


def kaiming_uniform(
    tensor,
    a: float = 0.0,
    mode: str = "fan_in",
    nonlinearity: str = "leaky_relu",
    rng: np.random.Generator | None = None,
):
    """Fill ``tensor`` with He initialization, uniform variant.

    Values are uniform in ``±gain * sqrt(3 / fan)``, so their standard
    deviation is ``gain / sqrt(fan)``. ``gain = calculate_gain(nonlinearity, a)``,
    where ``a`` is the negative slope of a leaky ReLU (0 gives plain ReLU's
    ``sqrt(2)``). ``mode`` picks ``fan_in`` (preserves forward variance) or
    ``fan_out`` (preserves backward variance).
    """
    array = _as_array(tensor)
    if array.size == 0:
        return tensor
    fan = _select_fan(array.shape, mode)
    bound = calculate_gain(nonlinearity, a) * math.sqrt(3.0 / fan)
    return uniform(tensor, -bound, bound, rng)


def kaiming_normal(
    tensor,
    a: float = 0.0,
    mode: str = "fan_in",
    nonlinearity: str = "leaky_relu",
    rng: np.random.Generator | None = None,
):
    """Fill ``tensor`` with He initialization, normal variant: ``N(0, (gain / sqrt(fan))**2)``.

    Arguments mean the same as in ``kaiming_uniform``.
    """
    array = _as_array(tensor)
    if array.size == 0:
        return tensor
    fan = _select_fan(array.shape, mode)
    std = calculate_gain(nonlinearity, a) / math.sqrt(fan)
    return normal(tensor, 0.0, std, rng)


def xavier_uniform(tensor, gain: float = 1.0, rng: np.random.Generator | None = None):
    """Fill ``tensor`` with Glorot initialization: uniform in ``±gain * sqrt(6 / (fan_in + fan_out))``."""
    array = _as_array(tensor)
    if array.size == 0:
        return tensor
    fan_in, fan_out = calculate_fan_in_and_fan_out(array.shape)
    bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return uniform(tensor, -bound, bound, rng)


def xavier_normal(tensor, gain: float = 1.0, rng: np.random.Generator | None = None):
    """Fill ``tensor`` with Glorot initialization: ``N(0, gain**2 * 2 / (fan_in + fan_out))``."""
    array = _as_array(tensor)
    if array.size == 0:
        return tensor
    fan_in, fan_out = calculate_fan_in_and_fan_out(array.shape)
    std = gain * math.sqrt(2.0 / (fan_in + fan_out))
    return normal(tensor, 0.0, std, rng)


def default_weight_and_bias(weight: Parameter, bias: Parameter | None, rng: np.random.Generator) -> None:
    """Apply PyTorch's default initialization of linear and convolution layers.

    The weight gets ``kaiming_uniform(a=sqrt(5))``, which works out to uniform
    in ``±1 / sqrt(fan_in)``, and the bias, when present, uniform in
    ``±1 / sqrt(fan_in)``, with ``fan_in`` computed from the weight's shape.
    """
    kaiming_uniform(weight, a=math.sqrt(5.0), rng=rng)
    if bias is not None:
        fan_in, _ = calculate_fan_in_and_fan_out(weight.shape)
        bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
        uniform(bias, -bound, bound, rng)
