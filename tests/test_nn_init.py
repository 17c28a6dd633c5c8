"""Initializers: bounds, spreads and gains against their formulas and PyTorch."""

import math

import numpy as np
import pytest
import torch

from convgrad.nn import init
from convgrad.nn.linear import Linear
from convgrad.nn.module import Parameter


@pytest.mark.parametrize("shape", [(7, 5), (6, 4, 3, 2), (3, 8, 5)])
def test_fan_in_and_fan_out_match_torch(shape):
    expected = torch.nn.init._calculate_fan_in_and_fan_out(torch.empty(shape))
    assert init.calculate_fan_in_and_fan_out(shape) == expected


@pytest.mark.parametrize(
    "nonlinearity, param",
    [("linear", None), ("conv2d", None), ("sigmoid", None), ("tanh", None), ("relu", None), ("leaky_relu", None), ("leaky_relu", 0.2)],
)
def test_gain_matches_torch(nonlinearity, param):
    assert init.calculate_gain(nonlinearity, param) == pytest.approx(torch.nn.init.calculate_gain(nonlinearity, param), rel=1e-15)


def test_gain_rejects_unknown_nonlinearity():
    with pytest.raises(ValueError, match="nonlinearity"):
        init.calculate_gain("softplus")


# Shape (400, 50, 3) has fan_in 150, fan_out 1200 and 60,000 entries. The
# relative standard error of a sample standard deviation from that many draws
# is below 0.4%, so a 2% tolerance is five standard errors.
SHAPE = (400, 50, 3)
FAN_IN, FAN_OUT = 150, 1200


@pytest.mark.parametrize(
    "initializer, kwargs, expected_std, uniform_bound",
    [
        (init.kaiming_uniform, dict(nonlinearity="relu"), math.sqrt(2 / FAN_IN), math.sqrt(6 / FAN_IN)),
        (init.kaiming_uniform, dict(a=0.2, mode="fan_out"), math.sqrt(2 / 1.04 / FAN_OUT), math.sqrt(6 / 1.04 / FAN_OUT)),
        (init.kaiming_normal, dict(nonlinearity="relu"), math.sqrt(2 / FAN_IN), None),
        (init.xavier_uniform, dict(gain=2.0), 2 * math.sqrt(2 / (FAN_IN + FAN_OUT)), 2 * math.sqrt(6 / (FAN_IN + FAN_OUT))),
        (init.xavier_normal, dict(), math.sqrt(2 / (FAN_IN + FAN_OUT)), None),
    ],
)
def test_initializer_spread(initializer, kwargs, expected_std, uniform_bound):
    array = np.empty(SHAPE, dtype=np.float64)
    result = initializer(array, rng=np.random.default_rng(0), **kwargs)
    assert result is array
    assert array.std() == pytest.approx(expected_std, rel=0.02)
    # The mean of 60,000 draws has a standard deviation of 0.004 * std.
    assert abs(array.mean()) < 0.03 * expected_std
    if uniform_bound is not None:
        assert np.abs(array).max() <= uniform_bound
        assert np.abs(array).max() > 0.99 * uniform_bound


def test_initializer_fills_parameter_and_keeps_float32():
    param = Parameter(np.zeros((8, 4), dtype=np.float32))
    init.kaiming_normal(param, rng=np.random.default_rng(1))
    assert param.data.dtype == np.float32
    assert param.data.any()


def test_same_seed_same_values_across_dtypes():
    low = init.xavier_uniform(np.empty((5, 6), dtype=np.float32), rng=np.random.default_rng(2))
    high = init.xavier_uniform(np.empty((5, 6), dtype=np.float64), rng=np.random.default_rng(2))
    np.testing.assert_array_equal(low, high.astype(np.float32))


@pytest.mark.parametrize("initializer", [init.kaiming_uniform, init.kaiming_normal, init.xavier_uniform, init.xavier_normal])
def test_empty_array_is_left_unchanged(initializer):
    array = np.empty((0, 3))
    assert initializer(array, rng=np.random.default_rng(4)) is array


def test_zeros_and_ones():
    array = np.full((3, 3), 7.0)
    np.testing.assert_array_equal(init.zeros(array), 0)
    np.testing.assert_array_equal(init.ones(array), 1)


def test_linear_default_init_matches_torch_distribution():
    # PyTorch: kaiming_uniform(a=sqrt(5)) gives U(-1/sqrt(fan_in), 1/sqrt(fan_in)),
    # and the bias uses the same bound.
    layer = Linear(64, 400, rng=np.random.default_rng(3))
    torch.manual_seed(0)
    reference = torch.nn.Linear(64, 400)
    bound = 1 / math.sqrt(64)
    assert np.abs(layer.weight.data).max() <= bound
    assert layer.weight.data.std() == pytest.approx(reference.weight.detach().numpy().std(), rel=0.03)
    assert layer.weight.data.std() == pytest.approx(bound / math.sqrt(3), rel=0.02)
    assert np.abs(layer.bias.data).max() <= bound


@pytest.mark.parametrize(
    "call, error",
    [
        (lambda: init.kaiming_uniform(np.empty(3)), ValueError),
        (lambda: init.kaiming_uniform(np.empty((4, 3)), mode="fan_avg"), ValueError),
        (lambda: init.xavier_normal(np.empty((4, 3), dtype=np.int64)), TypeError),
        (lambda: init.normal(np.empty((4, 3)), std=-1.0), ValueError),
        (lambda: init.uniform([1.0, 2.0]), TypeError),
    ],
)
def test_initializer_rejects_invalid_input(call, error):
    with pytest.raises(error):
        call()
