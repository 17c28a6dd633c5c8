"""Vectorized error function that keeps float32 as float32.

``erf`` is ``scipy.special.erf`` when SciPy is importable (SciPy is not a
dependency of convgrad) and otherwise ``erf_chebyshev``, a NumPy
approximation defined here. Both keep a float32 input in float32.

``erf_chebyshev`` uses two Chebyshev expansions. The coefficients come from a
least-squares fit, at 200 Chebyshev nodes, to ``erf`` evaluated with mpmath at
40 digits:

* ``|x| <= 2``: ``erf(x) = x * P(x**2)``, degree 16 in ``x**2``.
* ``2 < |x| <= 6``: ``erf(x) = 1 - exp(-x**2) * Q(1 / |x|)``, degree 14.
* ``|x| > 6``: ``erf(x) = sign(x)``, because ``erfc(6) < 3e-17``.

Measured against ``mpmath.erf`` on a grid of 20,001 points in [0, 6], the
largest absolute error of the float64 evaluation was 2e-15. A float32 input is
evaluated in float32, which limits the error to a few float32 ulps (about 1e-7).
"""

from __future__ import annotations

import numpy as np

# Chebyshev coefficients of erf(x) / x as a function of t = x**2 / 2 - 1 on [-1, 1].
_SMALL_COEFFICIENTS = (
    0.741555282042402, -0.3010710733865949, 0.06899483068983164, -0.01391627126472221,
    0.0024207995224335374, -0.00036586396858471955, 4.8620984432321026e-05,
    -5.749256557926128e-06, 6.113243578532562e-07, -5.899101525269949e-08,
    5.207009073899786e-09, -4.2329752564167353e-10, 3.188108068756e-11,
    -2.2359387151930896e-12, 1.4667228089070286e-13, -8.83415260424975e-15,
    4.309547945640615e-16,
)

# Chebyshev coefficients of erfc(x) * exp(x**2) as a function of s = 1 / x, with
# s in [1/6, 1/2] mapped linearly onto [-1, 1].
_LARGE_COEFFICIENTS = (
    0.17652811793633824, 0.08137379533782717, -0.0024575013733779396,
    -6.324093536657399e-05, 1.5519910419493007e-05, -1.0108306756332386e-06,
    -1.3197327701897333e-08, 1.0635366018860452e-08, -1.228496756477885e-09,
    4.970337014436964e-11, 7.773835071085268e-12, -1.8655526436092355e-12,
    1.9513791609804012e-13, -5.5362911497679665e-15, -2.0300032248807215e-15,
)

_SMALL_LIMIT = 2.0
_LARGE_LIMIT = 6.0


def _chebyshev_series(t: np.ndarray, coefficients: tuple[float, ...]) -> np.ndarray:
    # Clenshaw recurrence. The coefficients are Python floats so that a float32
    # ``t`` keeps its dtype (NumPy treats Python scalars as weakly typed).
    b1 = np.zeros_like(t)
    b2 = np.zeros_like(t)
    two_t = 2 * t
    for c in reversed(coefficients[1:]):
        b1, b2 = two_t * b1 - b2 + c, b1
    return t * b1 - b2 + coefficients[0]


def erf_chebyshev(x: np.ndarray) -> np.ndarray:
    """Compute the error function from two Chebyshev expansions, keeping the input's float dtype."""
    x = np.asarray(x)
    magnitude = np.abs(x)
    result = np.empty_like(x)

    small = magnitude <= _SMALL_LIMIT
    xs = x[small]
    result[small] = xs * _chebyshev_series(xs * xs / 2 - 1, _SMALL_COEFFICIENTS)

    middle = (magnitude > _SMALL_LIMIT) & (magnitude <= _LARGE_LIMIT)
    xm = magnitude[middle]
    low, high = 1 / _LARGE_LIMIT, 1 / _SMALL_LIMIT
    s = (1 / xm - low) * (2 / (high - low)) - 1
    erfc_middle = np.exp(-xm * xm) * _chebyshev_series(s, _LARGE_COEFFICIENTS)
    result[middle] = np.copysign(1 - erfc_middle, x[middle])

    large = magnitude > _LARGE_LIMIT
    result[large] = np.sign(x[large])

    # NaN fails every comparison above, so it has to be written explicitly.
    nan = np.isnan(x)
    result[nan] = np.nan
    return result


try:
    from scipy.special import erf as _scipy_erf
except ImportError:  # SciPy is optional.
    _scipy_erf = None

ERF_IMPLEMENTATION = "scipy.special.erf" if _scipy_erf is not None else "erf_chebyshev"


def erf(x: np.ndarray) -> np.ndarray:
    """Compute the error function element-wise. A float32 input gives a float32 output."""
    if _scipy_erf is not None:
        return _scipy_erf(x)
    return erf_chebyshev(x)
