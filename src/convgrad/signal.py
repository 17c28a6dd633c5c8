"""True (flipped-kernel) convolution of plain N-dimensional signals.

Two operations share the name "convolution":

- In signal processing, ``(a * v)[t] = sum_k a[t - k] v[k]``: the kernel is
  flipped. This is :func:`numpy.convolve` and :func:`scipy.signal.convolve`,
  and :func:`convolve` here.
- In deep learning, ``out[t] = sum_k x[t + k] w[k]``: no flip, which is
  cross-correlation. This is ``torch.nn.functional.conv1d`` and
  :func:`convgrad.conv`, and (for real signals) :func:`correlate` here, which
  matches :func:`scipy.signal.correlate`.

So ``convolve(a, v)`` equals ``convgrad.conv`` of ``a`` with the reversed
kernel ``v[::-1]`` and suitable padding, which is how it is computed.

Modes (per axis, for ``a`` of length ``n`` and ``v`` of length ``k``):

- ``'full'``: length ``n + k - 1``, every partial overlap;
- ``'valid'``: length ``n - k + 1``, full overlaps only. When ``v`` is at
  least as long as ``a`` on every axis the two are swapped (convolution
  commutes), as NumPy and SciPy do; otherwise one must not be shorter than
  the other on one axis and longer on another;
- ``'same'``: the shape of ``a``, the centre of the ``'full'`` result,
  starting at index ``(k - 1) // 2``. As padding of the correlation this is
  ``ceil((k - 1) / 2)`` before and ``(k - 1) // 2`` after: for an even
  kernel the extra element goes *before* the signal, the opposite of
  ``padding='same'`` in :func:`convgrad.conv`, because the kernel is flipped.

NOTE: :func:`numpy.convolve` in mode 'same' returns ``max(n, k)`` elements,
so for a kernel longer than the signal it differs from this function and
from :func:`scipy.signal.convolve`, which both return ``n``.
"""

from __future__ import annotations

import numpy as np

from convgrad._arrays import as_numeric_array, compute_dtype
from convgrad.conv import conv

__all__ = ["convolve", "correlate"]

MODES = ("full", "valid", "same")


def _check_signals(in1, in2, mode):
    a = as_numeric_array("in1", in1)
    v = as_numeric_array("in2", in2)
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if a.ndim == 0 or a.ndim != v.ndim:
        raise ValueError(
            f"in1 and in2 must have the same number of dimensions (at least 1), got shapes {a.shape} and {v.shape}"
        )
    if a.size == 0 or v.size == 0:
        raise ValueError(f"in1 and in2 must not be empty, got shapes {a.shape} and {v.shape}")
    return a, v


def convolve(in1, in2, mode: str = "full") -> np.ndarray:
    """Convolve two N-dimensional signals, flipping the kernel.

    ``out[t] = sum_k in1[t - k] in2[k]``, summed over every ``k`` where both
    indices are inside their arrays, with ``t`` ranging as ``mode`` defines.

    Parameters
    ----------
    in1, in2 : array_like
        Real signals with the same number of dimensions.
    mode : {'full', 'valid', 'same'}
        See the module documentation.

    Returns
    -------
    numpy.ndarray
        Floating dtype (integer inputs give float64).

    Examples
    --------
    >>> from convgrad.signal import convolve
    >>> convolve([1, 2, 3], [0, 1, 0.5])
    array([0. , 1. , 2.5, 4. , 1.5])
    """
    a, v = _check_signals(in1, in2, mode)
    if mode == "valid":
        if all(m >= n for m, n in zip(v.shape, a.shape)) and v.shape != a.shape:
            a, v = v, a
        elif not all(n >= m for n, m in zip(a.shape, v.shape)):
            raise ValueError(
                f"mode 'valid' needs one input at least as large as the other on every axis, "
                f"got shapes {a.shape} and {v.shape}"
            )

    dtype = compute_dtype(a, v)
    kernel = np.flip(v).astype(dtype)
    totals = [k - 1 for k in v.shape]
    if mode == "full":
        padding = tuple((t, t) for t in totals)
    elif mode == "valid":
        padding = tuple((0, 0) for _ in totals)
    else:
        padding = tuple((t - t // 2, t // 2) for t in totals)
    out = conv(a.astype(dtype)[np.newaxis, np.newaxis], kernel[np.newaxis, np.newaxis], padding=padding)
    return out[0, 0]


def correlate(in1, in2, mode: str = "full") -> np.ndarray:
    """Cross-correlate two real N-dimensional signals.

    ``out[t] = sum_k in1[t + k] in2[k]`` with the index range of ``mode``
    taken from ``convolve(in1, in2[::-1, ...])``; equal to
    :func:`scipy.signal.correlate` for real inputs.
    """
    a, v = _check_signals(in1, in2, mode)
    return convolve(a, np.flip(v), mode)
