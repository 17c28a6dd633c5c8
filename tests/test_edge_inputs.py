"""Empty batches and argument slips that once crashed or produced unreadable errors."""

import numpy as np
import pytest

import convgrad
import convgrad.nn as nn
from convgrad import reference


@pytest.mark.parametrize(
    "weight_shape, groups",
    [((4, 3, 1, 1), 1), ((4, 3, 3, 3), 1), ((3, 1, 3, 3), 3), ((6, 1, 3, 3), 3)],
    ids=["pointwise", "im2col", "depthwise", "depthwise-multiplier"],
)
def test_empty_batch_gives_empty_results(weight_shape, groups):
    x = np.zeros((0, 3, 8, 8))
    w = np.ones(weight_shape)
    out = convgrad.conv(x, w, groups=groups)
    expected = reference.conv(x, w, groups=groups)
    assert out.shape == expected.shape

    grad_input, grad_weight, grad_bias = convgrad.conv_backward(x, w, out, groups=groups)
    assert grad_input.shape == x.shape
    np.testing.assert_array_equal(grad_weight, np.zeros(weight_shape))
    np.testing.assert_array_equal(grad_bias, np.zeros(weight_shape[0]))
    assert convgrad.conv_transpose(out, w, groups=groups).shape == x.shape


@pytest.mark.parametrize("layer, shape", [(nn.Conv2d(3, 4, 3), (0, 3, 8, 8)), (nn.Conv1d(3, 4, 3), (0, 3, 8)),
                                          (nn.ConvTranspose2d(3, 4, 3), (0, 3, 8, 8))],
                         ids=["Conv2d", "Conv1d", "ConvTranspose2d"])
def test_layers_accept_empty_batch(layer, shape):
    x = np.zeros(shape, dtype=np.float32)
    out = layer(x)
    assert out.shape[0] == 0
    assert layer.backward(out).shape == shape
    np.testing.assert_array_equal(layer.weight.grad, 0)


def test_flatten_empty_batch():
    assert nn.Flatten()(np.zeros((0, 3, 4, 4))).shape == (0, 48)


def test_array_passed_as_shape_gets_short_message():
    x = np.zeros((8, 64, 32, 32))
    w = np.zeros((2, 64, 3, 3))
    with pytest.raises(TypeError) as info:
        convgrad.conv_input_grad(x, w, np.zeros((8, 2, 30, 30)))
    assert "x.shape" in str(info.value) or "array.shape" in str(info.value)
    assert len(str(info.value)) < 300


def test_conv_backward_bias_flag_must_be_bool():
    x, w = np.zeros((1, 1, 5)), np.zeros((2, 1, 3))
    with pytest.raises(TypeError, match="bias"):
        convgrad.conv_backward(x, w, np.zeros((1, 2, 3)), bias=np.ones(2))


def test_huge_stride_is_value_error():
    with pytest.raises(ValueError, match="stride"):
        convgrad.conv(np.zeros((1, 1, 5)), np.zeros((1, 1, 3)), stride=2**70)


@pytest.mark.parametrize(
    "kwargs, error, word",
    [
        ({"mode": "random", "num_directions": 0}, ValueError, "num_directions"),
        ({"mode": "random", "num_directions": 1.5}, ValueError, "num_directions"),
        ({"atol": -1}, ValueError, "atol"),
        ({"rtol": "1e-5"}, TypeError, "rtol"),
        ({"eps": float("nan")}, ValueError, "eps"),
        ({"eps": 0.0}, ValueError, "eps"),
        ({"wrt": [0, 0]}, ValueError, "wrt"),
    ],
)
def test_gradcheck_rejects_bad_settings(kwargs, error, word):
    with pytest.raises(error, match=word):
        convgrad.gradcheck(lambda a: a * 2, [np.ones(2)], lambda go, a: 2 * go, **kwargs)


def test_gradcheck_accepts_nested_lists():
    report = convgrad.gradcheck(
        lambda x, w: convgrad.conv(x, w),
        [[[[1.0, 2.0, 3.0, 4.0]]], [[[0.5, -1.0]]]],
        lambda go, x, w: (convgrad.conv_input_grad(x.shape, w, go), convgrad.conv_weight_grad(x, w.shape, go)),
    )
    assert report.passed
    assert len(report.arguments) == 2


def test_gradcheck_module_float32_message_says_fix():
    with pytest.raises(TypeError, match="dtype=np.float64"):
        convgrad.gradcheck_module(nn.Conv1d(1, 1, 3), np.zeros((1, 1, 5)))
