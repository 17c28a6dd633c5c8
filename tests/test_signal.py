"""True convolution against numpy.convolve and scipy.signal."""

import numpy as np
import pytest
import scipy.signal

from convgrad.signal import convolve, correlate

SHAPES = [((7,), (3,)), ((8,), (4,)), ((3,), (6,)), ((5, 6), (2, 3)), ((4, 5, 6), (3, 2, 4)), ((2, 3), (5, 6)),
          ((1,), (1,)), ((6, 2), (3, 2))]


@pytest.mark.parametrize("mode", ["full", "same", "valid"])
@pytest.mark.parametrize("shapes", SHAPES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_matches_scipy(shapes, mode):
    rng = np.random.default_rng(0)
    a, v = rng.standard_normal(shapes[0]), rng.standard_normal(shapes[1])
    np.testing.assert_allclose(convolve(a, v, mode), scipy.signal.convolve(a, v, mode=mode, method="direct"),
                               rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(correlate(a, v, mode), scipy.signal.correlate(a, v, mode=mode, method="direct"),
                               rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("mode", ["full", "same", "valid"])
def test_matches_numpy_convolve_1d(mode):
    rng = np.random.default_rng(1)
    for n, k in [(9, 3), (10, 4), (5, 5), (4, 7)]:
        a, v = rng.standard_normal(n), rng.standard_normal(k)
        if mode == "same" and k > n:
            continue  # numpy returns max(n, k) elements here, scipy and convgrad n
        np.testing.assert_allclose(convolve(a, v, mode), np.convolve(a, v, mode), rtol=1e-12, atol=1e-12)


def test_integers_promote_to_float64():
    result = convolve([1, 2, 3], [1, 1])
    assert result.dtype == np.float64
    np.testing.assert_array_equal(result, [1, 3, 5, 3])


def test_invalid_arguments():
    with pytest.raises(ValueError, match="mode"):
        convolve([1, 2], [1], "circular")
    with pytest.raises(ValueError, match="dimensions"):
        convolve(np.ones((2, 2)), np.ones(2))
    with pytest.raises(ValueError, match="valid"):
        convolve(np.ones((2, 5)), np.ones((3, 2)), "valid")
    with pytest.raises(TypeError, match="in1"):
        convolve(np.ones(3, dtype=complex), np.ones(2))
