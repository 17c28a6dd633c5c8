"""Shared helpers for the tests: configuration grids and comparison with context."""

from __future__ import annotations

import numpy as np
import pytest


def assert_close(actual, expected, *, rtol, atol=0.0, context=""):
    """Compare arrays and, on failure, name the configuration, the worst index and both values."""
    actual = np.asarray(actual)
    expected = np.asarray(expected)
    assert actual.shape == expected.shape, f"{context}: shape {actual.shape}, expected {expected.shape}"
    both_nan = np.isnan(actual) & np.isnan(expected)
    diff = np.where(both_nan, 0.0, np.abs(actual.astype(np.float64) - expected.astype(np.float64)))
    tol = atol + rtol * np.abs(expected.astype(np.float64))
    bad = ~(diff <= np.where(np.isinf(expected) & (actual == expected), np.inf, tol))
    if bad.any():
        index = np.unravel_index(np.argmax(np.where(bad, diff - tol, -np.inf)), expected.shape)
        pytest.fail(
            f"{context}: {int(bad.sum())} of {expected.size} entries differ; worst at {tuple(map(int, index))}: "
            f"got {actual[index]!r}, expected {expected[index]!r}"
        )


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
