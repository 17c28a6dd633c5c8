"""gradcheck: it passes correct backward passes and catches wrong ones."""

import numpy as np
import pytest

import convgrad
from convgrad import GradcheckError, gradcheck

CONV_SETTINGS = [
    {"stride": 2, "padding": 1},
    {"stride": (1, 2), "padding": ((2, 0), (1, 1)), "dilation": (2, 1)},
    {"padding": 1, "padding_mode": "reflect"},
    {"padding": 2, "padding_mode": "replicate"},
    {"padding": (1, 2), "padding_mode": "circular"},
    {"groups": 2, "stride": 2},
]


def _positional(settings):
    return (settings.get("stride", 1), settings.get("padding", 0), settings.get("dilation", 1),
            settings.get("groups", 1), settings.get("padding_mode", "zeros"))


@pytest.mark.parametrize("settings", CONV_SETTINGS, ids=lambda s: "-".join(f"{k}{v}" for k, v in s.items()))
def test_conv_gradients_pass(settings):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 4, 5, 6))
    w = rng.standard_normal((2, 4 // settings.get("groups", 1), 3, 2))
    b = rng.standard_normal(2)
    args = _positional(settings)

    def backward(go, x, w, b):
        return (convgrad.conv_input_grad(x.shape, w, go, *args),
                convgrad.conv_weight_grad(x, w.shape, go, *args),
                convgrad.conv_bias_grad(go))

    report = gradcheck(lambda x, w, b: convgrad.conv(x, w, b, **settings), [x, w, b], backward,
                       names=["input", "weight", "bias"])
    assert report.passed
    assert [r.name for r in report.arguments] == ["input", "weight", "bias"]
    assert report.max_abs_error < 1e-6


def test_conv_transpose_gradients_pass():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 4, 3, 4))
    w = rng.standard_normal((4, 3, 3, 2))
    kwargs = {"stride": 2, "padding": 1, "output_padding": 1, "groups": 2}

    def backward(go, x, w):
        gx = convgrad.conv(go, w, stride=2, padding=1, groups=2)
        gw = convgrad.conv_weight_grad(go, w.shape, x, 2, 1, 1, 2, "zeros")
        return gx, gw

    assert gradcheck(lambda x, w: convgrad.conv_transpose(x, w, **kwargs), [x, w], backward).passed


def test_input_grad_function_is_linear_in_grad_output():
    """conv_input_grad itself is differentiable: its gradient is conv of the upstream gradient."""
    rng = np.random.default_rng(2)
    w = rng.standard_normal((3, 2, 3))
    go = rng.standard_normal((2, 3, 4))
    shape = (2, 2, 9)
    report = gradcheck(lambda go: convgrad.conv_input_grad(shape, w, go, stride=2),
                       [go], lambda g, go: (convgrad.conv(g, w, stride=2),))
    assert report.passed


@pytest.mark.parametrize("scale_argument", [0, 1])
def test_wrong_backward_is_caught_with_location(scale_argument):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((1, 2, 7))
    w = rng.standard_normal((2, 2, 3))

    def backward(go, x, w):
        grads = [convgrad.conv_input_grad(x.shape, w, go, padding=1), convgrad.conv_weight_grad(x, w.shape, go, padding=1)]
        grads[scale_argument] = grads[scale_argument] * 1.001
        return grads

    with pytest.raises(GradcheckError) as info:
        gradcheck(lambda x, w: convgrad.conv(x, w, padding=1), [x, w], backward, names=["input", "weight"])
    message = str(info.value)
    assert ["input", "weight"][scale_argument] in message
    assert "at index" in message


def test_missing_kernel_flip_is_caught():
    """An input gradient that correlates with the unflipped kernel is the classic bug."""
    rng = np.random.default_rng(4)
    x = rng.standard_normal((1, 1, 6))
    w = np.array([[[1.0, 2.0, -3.0]]])

    def wrong_backward(go, x):
        return (convgrad.conv(go, w, padding=1),)  # should use the flipped kernel

    with pytest.raises(GradcheckError):
        gradcheck(lambda x: convgrad.conv(x, w, padding=1), [x], wrong_backward)


def test_random_direction_mode():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 3, 8, 8))
    w = rng.standard_normal((4, 3, 3, 3))
    good = gradcheck(lambda x: convgrad.conv(x, w, padding=1), [x],
                     lambda go, x: convgrad.conv_input_grad(x.shape, w, go, padding=1), mode="random")
    assert good.passed
    assert good.arguments[0].worst_index is None
    with pytest.raises(GradcheckError, match="random direction"):
        gradcheck(lambda x: convgrad.conv(x, w, padding=1), [x],
                  lambda go, x: 0.9 * convgrad.conv_input_grad(x.shape, w, go, padding=1), mode="random")


def test_kink_is_reported():
    """ReLU at 0: the one-sided differences are 0 and 1, the central one 0.5."""
    x = np.array([0.0, 1.0, -1.0])
    with pytest.raises(GradcheckError, match="kink"):
        gradcheck(lambda x: np.maximum(x, 0), [x], lambda go, x: go * (x >= 0), grad_output=np.ones(3))


def test_caller_arrays_untouched_even_for_views():
    base = np.arange(12, dtype=np.float32).reshape(3, 4)
    view = base[:, 1:3]
    before = base.copy()
    gradcheck(lambda v: v ** 2, [view], lambda go, v: 2 * v * go)
    np.testing.assert_array_equal(base, before)


def test_report_without_raising():
    report = gradcheck(lambda x: x * 2, [np.ones(3)], lambda go, x: go, raise_exception=False)
    assert not report.passed
    assert "FAIL" in str(report)


def test_backward_wrong_shape_is_value_error():
    with pytest.raises(ValueError, match="shape"):
        gradcheck(lambda x: x * 2, [np.ones(3)], lambda go, x: np.ones(4))
