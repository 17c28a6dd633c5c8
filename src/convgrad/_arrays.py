"""Conversion of user arrays to the floating dtype the computation runs in."""

from __future__ import annotations

import numpy as np


def as_numeric_array(name: str, value) -> np.ndarray:
    """Return ``value`` as an ndarray of a real numeric dtype (bool, int or float).

    Raises
    ------
    TypeError
        If ``value`` is not array-like, or has a complex, object or string dtype.
    """
    if value is None:
        raise TypeError(f"{name} must be an array, got None")
    try:
        array = np.asarray(value)
    except (TypeError, ValueError) as error:
        raise TypeError(f"{name} must be array-like, got {type(value).__name__}: {error}") from error
    if array.dtype.kind not in "biuf":
        raise TypeError(
            f"{name} must have a real numeric dtype (bool, integer or floating), got dtype {array.dtype}"
        )
    return array


def compute_dtype(*arrays: np.ndarray) -> np.dtype:
    """Return the floating dtype for an operation on ``arrays``.

    NumPy's promotion rules decide (float32 with float32 stays float32, float32
    with float64 gives float64). A result that would be an integer or bool
    dtype becomes float64, so gradients are never truncated to integers.
    """
    dtype = np.result_type(*arrays)
    if dtype.kind != "f":
        return np.dtype(np.float64)
    return dtype
