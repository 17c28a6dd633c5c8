"""Argument checks shared by the layers.

Every helper raises ``ValueError`` or ``TypeError`` with a message that names
the argument, the value received and the rule it broke.
"""

from __future__ import annotations

import numbers

import numpy as np


def check_positive_int(value, name: str) -> int:
    """Return ``value`` as an int after checking that it is an integer >= 1."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {value!r} of type {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value}")
    return int(value)


def check_float_dtype(dtype) -> np.dtype:
    """Return ``dtype`` as a ``numpy.dtype`` after checking that it is a float type."""
    try:
        resolved = np.dtype(dtype)
    except TypeError as error:
        raise TypeError(f"dtype must be a numpy floating dtype, got {dtype!r}") from error
    if not np.issubdtype(resolved, np.floating):
        raise TypeError(f"dtype must be a numpy floating dtype such as float32 or float64, got {resolved}")
    return resolved


def check_rng(rng) -> np.random.Generator:
    """Return ``rng``, or a freshly seeded generator when it is None."""
    if rng is None:
        return np.random.default_rng()
    if not isinstance(rng, np.random.Generator):
        raise TypeError(
            f"rng must be a numpy.random.Generator or None, got {type(rng).__name__}. "
            "Create one with numpy.random.default_rng(seed)"
        )
    return rng


def as_float_array(x, name: str = "input") -> np.ndarray:
    """Return ``x`` as a floating ndarray without changing a float dtype.

    Booleans and integers are promoted to float64, as in the core operators.
    Other dtypes (complex, object, strings) raise ``TypeError``.
    """
    array = np.asarray(x)
    if np.issubdtype(array.dtype, np.floating):
        return array
    if np.issubdtype(array.dtype, np.integer) or array.dtype == np.bool_:
        return array.astype(np.float64)
    raise TypeError(f"{name} must have a real numeric dtype, got {array.dtype}")


def check_ndim(x: np.ndarray, allowed: tuple[int, ...], layout: str, layer: str) -> None:
    """Raise ``ValueError`` unless ``x.ndim`` is one of ``allowed``."""
    if x.ndim not in allowed:
        raise ValueError(f"{layer} expects input of shape {layout}, got shape {x.shape}")


def check_channels(x: np.ndarray, expected: int, layer: str, axis: int = 1) -> None:
    """Raise ``ValueError`` unless axis ``axis`` of ``x`` has ``expected`` entries."""
    if x.shape[axis] != expected:
        raise ValueError(
            f"{layer} expects {expected} channels on axis {axis}, got input of shape {x.shape}"
        )


def check_grad_shape(grad_output: np.ndarray, expected: tuple[int, ...], layer: str) -> np.ndarray:
    """Return ``grad_output`` as a float array after checking its shape against the output's."""
    grad_output = as_float_array(grad_output, "grad_output")
    if grad_output.shape != tuple(expected):
        raise ValueError(
            f"{layer}.backward expects grad_output of shape {tuple(expected)} (the shape of the "
            f"last forward output), got {grad_output.shape}"
        )
    return grad_output


def require_forward(value, layer: str):
    """Raise ``RuntimeError`` when ``backward`` runs before any ``forward``."""
    if value is None:
        raise RuntimeError(f"{layer}.backward was called before forward")
    return value
