"""The 1-D 'same' example convolution was first derived on, with hand-computed values.

Input [1, 2, 3, 4, 5], kernel [1, 1, 1], zero 'same' padding and an all-ones
upstream gradient: each output sums three neighbours, each input element
feeds as many outputs as windows cover it, and each weight tap sees the
input shifted by one.
"""

import numpy as np
import pytest

import convgrad
from convgrad import reference

X = [1, 2, 3, 4, 5]
W = [1, 1, 1]


@pytest.mark.parametrize("module", [convgrad, reference], ids=["fast", "reference"])
@pytest.mark.parametrize("dtype", [np.float64, np.int64, np.int32], ids=["float64", "int64", "int32"])
def test_same_padding_example_values(module, dtype):
    x = np.array([[X]], dtype=dtype)
    w = np.array([[W]], dtype=dtype)
    go = np.ones((1, 1, 5), dtype=dtype)

    out = module.conv(x, w, padding="same")
    grad_input = module.conv_input_grad(x.shape, w, go, 1, "same")
    grad_weight = module.conv_weight_grad(x, w.shape, go, 1, "same")

    np.testing.assert_array_equal(out[0, 0], [3, 6, 9, 12, 9])
    np.testing.assert_array_equal(grad_input[0, 0], [2, 3, 3, 3, 2])
    np.testing.assert_array_equal(grad_weight[0, 0], [10, 15, 14])
    for result in (out, grad_input, grad_weight):
        assert result.dtype == np.float64


def test_integer_gradients_keep_fractions():
    x = np.array([[[3, 1, 4, 1, 5]]])
    w = np.array([[[0.5, -0.25, 0.125]]])
    go = np.array([[[0.5, 1.5, -2.0, 0.25, 1.0]]])
    grad_weight = convgrad.conv_weight_grad(x, w.shape, go, padding=1)
    expected = reference.conv_weight_grad(x.astype(float), w.shape, go, padding=1)
    np.testing.assert_allclose(grad_weight, expected, rtol=1e-15)
    assert grad_weight.dtype == np.float64
    assert not np.allclose(grad_weight, np.round(grad_weight))


def test_float32_stays_float32():
    x = np.ones((1, 2, 6), dtype=np.float32)
    w = np.ones((3, 2, 3), dtype=np.float32)
    go = np.ones((1, 3, 4), dtype=np.float32)
    assert convgrad.conv(x, w).dtype == np.float32
    assert convgrad.conv_input_grad(x.shape, w, go).dtype == np.float32
    assert convgrad.conv_weight_grad(x, w.shape, go).dtype == np.float32
    assert convgrad.conv_transpose(go, w).dtype == np.float32


def test_mixed_dtypes_follow_numpy_promotion():
    x = np.ones((1, 1, 5), dtype=np.float32)
    w = np.ones((1, 1, 3), dtype=np.float64)
    assert convgrad.conv(x, w).dtype == np.float64
    assert convgrad.conv(x, w.astype(np.int8)).dtype == np.float32
    assert convgrad.conv(x.astype(bool), w.astype(np.int16)).dtype == np.float64
