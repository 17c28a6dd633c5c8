"""Shared helpers for the tests: configuration grids and comparison with context."""

from __future__ import annotations

import numpy as np
import pytest


def assert_close(actual, expected, *, rtol, atol=0.0, context=""):
    """Compare arrays and, on failure, name the configuration, the worst index and both values."""
    actual = np.asarray(actual)
    expected = np.asarray(expected)
    assert actual.shape == expected.shape, f"{context}: shape {actual.shape}, expected {expected.shape}"
    a64, e64 = actual.astype(np.float64), expected.astype(np.float64)
    same_special = (np.isnan(a64) & np.isnan(e64)) | (np.isinf(e64) & (a64 == e64))
    finite = np.isfinite(e64) & np.isfinite(a64)
    with np.errstate(invalid="ignore"):
        diff = np.where(finite, np.abs(a64 - e64), np.inf)
        tol = atol + rtol * np.abs(np.where(finite, e64, 0.0))
    bad = ~same_special & ~(diff <= tol)
    if bad.any():
        index = np.unravel_index(np.argmax(np.where(bad, diff - tol, -np.inf)), expected.shape)
        pytest.fail(
            f"{context}: {int(bad.sum())} of {expected.size} entries differ; worst at {tuple(map(int, index))}: "
            f"got {actual[index]!r}, expected {expected[index]!r}"
        )


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
