"""Padding as a linear map, with its adjoint.

Padding the last ``d`` axes of an array is linear in the array: every padded
element is either zero or a copy of one input element. Write it as
``y = P x``. The gradient of a loss with respect to ``x`` is then
``P^T (dL/dy)``: each padded element sends its gradient back to the input
element it was copied from, and copies of the same element add up.

Per axis of length ``n`` with ``lo`` elements before and ``hi`` after, the
padded coordinate ``j`` (``-lo <= j < n + hi``) reads input element

- ``zeros``: ``j`` if ``0 <= j < n``, else nothing (the value is 0);
- ``reflect``: ``-j`` for ``j < 0`` and ``2 (n - 1) - j`` for ``j >= n``
  (mirror without repeating the edge; needs ``lo, hi < n``);
- ``replicate``: ``j`` clipped to ``[0, n - 1]``;
- ``circular``: ``j mod n`` (needs ``lo, hi <= n``).

Axes are padded one after the other, so corners are filled from the already
padded neighbouring axis. This matches PyTorch's padding modes.
"""

from __future__ import annotations

import numpy as np


def source_index(j: int, n: int, mode: str) -> int | None:
    """Return the input index that padded coordinate ``j`` copies, or None for a zero."""
    if 0 <= j < n:
        return j
    if mode == "zeros":
        return None
    if mode == "reflect":
        return -j if j < 0 else 2 * (n - 1) - j
    if mode == "replicate":
        return 0 if j < 0 else n - 1
    if mode == "circular":
        return j % n
    raise ValueError(f"padding_mode must be 'zeros', 'reflect', 'replicate' or 'circular', got {mode!r}")


def _border(n: int, lo: int, hi: int) -> list[tuple[int, int]]:
    """Pairs (position in the padded axis, source index) for the border elements."""
    pairs = []
    for position in list(range(lo)) + list(range(lo + n, lo + n + hi)):
        pairs.append((position, position - lo))
    return pairs


def pad(x: np.ndarray, padding, mode: str = "zeros") -> np.ndarray:
    """Pad the last ``len(padding)`` axes of ``x``.

    Parameters
    ----------
    x : numpy.ndarray
        Array of shape ``(..., n_1, ..., n_d)``.
    padding : sequence of (int, int)
        ``(lo, hi)`` for each of the last ``d`` axes, in order.
    mode : {'zeros', 'reflect', 'replicate', 'circular'}

    Returns
    -------
    numpy.ndarray
        Shape ``(..., n_1 + lo_1 + hi_1, ..., n_d + lo_d + hi_d)``, same dtype.
        A new array, even when no padding is requested.
    """
    ndim = len(padding)
    lead = x.ndim - ndim
    padded_shape = x.shape[:lead] + tuple(n + lo + hi for n, (lo, hi) in zip(x.shape[lead:], padding))

    if mode == "zeros":
        out = np.zeros(padded_shape, dtype=x.dtype)
        interior = tuple(slice(lo, lo + n) for n, (lo, _) in zip(x.shape[lead:], padding))
        out[(Ellipsis, *interior)] = x
        return out

    out = x
    for axis, (lo, hi) in enumerate(padding):
        if lo == 0 and hi == 0:
            continue
        axis_index = lead + axis
        n = out.shape[axis_index]
        shape = list(out.shape)
        shape[axis_index] = n + lo + hi
        grown = np.empty(shape, dtype=x.dtype)

        def at(index, axis_index=axis_index):
            key = [slice(None)] * len(shape)
            key[axis_index] = index
            return tuple(key)

        grown[at(slice(lo, lo + n))] = out
        for position, j in _border(n, lo, hi):
            grown[at(position)] = out[at(source_index(j, n, mode))]
        out = grown
    return out if out is not x else x.copy()


def pad_adjoint(grad_padded: np.ndarray, padding, mode: str = "zeros") -> np.ndarray:
    """Apply the transpose of :func:`pad` to a gradient of the padded array.

    Parameters
    ----------
    grad_padded : numpy.ndarray
        Gradient with respect to the padded array, shape
        ``(..., n_1 + lo_1 + hi_1, ..., n_d + lo_d + hi_d)``.
    padding, mode
        As given to :func:`pad`.

    Returns
    -------
    numpy.ndarray
        Gradient with respect to the unpadded array, shape ``(..., n_1, ..., n_d)``.
        For 'zeros' the border is dropped; for the other modes each border
        element's gradient is added onto the input element it copied.
    """
    ndim = len(padding)
    lead = grad_padded.ndim - ndim

    if mode == "zeros":
        interior = tuple(
            slice(lo, size - hi) for size, (lo, hi) in zip(grad_padded.shape[lead:], padding)
        )
        return grad_padded[(Ellipsis, *interior)].copy()

    grad = grad_padded
    for axis in reversed(range(ndim)):
        lo, hi = padding[axis]
        if lo == 0 and hi == 0:
            continue
        axis_index = lead + axis
        n = grad.shape[axis_index] - lo - hi

        def at(index, axis_index=axis_index, rank=grad.ndim):
            key = [slice(None)] * rank
            key[axis_index] = index
            return tuple(key)

        shrunk = grad[at(slice(lo, lo + n))].copy()
        for position, j in _border(n, lo, hi):
            shrunk[at(source_index(j, n, mode))] += grad[at(position)]
        grad = shrunk
    return grad if grad is not grad_padded else grad_padded.copy()
