"""Convolution and transposed-convolution layers against PyTorch and finite differences."""

import numpy as np
import pytest
import torch

from convgrad.nn.conv import (
    Conv1d,
    Conv2d,
    Conv3d,
    ConvTranspose1d,
    ConvTranspose2d,
    ConvTranspose3d,
)
from convgrad.gradcheck import gradcheck_module
from layer_checks import check_against_torch

TORCH_DTYPES = {np.float32: torch.float32, np.float64: torch.float64}

# (our class, torch class, constructor arguments, input shape). The cases cover
# strides that leave a remainder, even kernels, groups, dilation, string
# padding, every padding mode, no bias, batch > 1 and unbatched input.
CONV_CASES = [
    (Conv1d, torch.nn.Conv1d, dict(in_channels=4, out_channels=6, kernel_size=3, stride=2, padding=1, groups=2), (3, 4, 10)),
    (Conv1d, torch.nn.Conv1d, dict(in_channels=2, out_channels=3, kernel_size=4, padding="same", dilation=2), (2, 2, 9)),
    (Conv1d, torch.nn.Conv1d, dict(in_channels=2, out_channels=2, kernel_size=3, padding=2, padding_mode="circular"), (2, 2, 7)),
    (Conv1d, torch.nn.Conv1d, dict(in_channels=3, out_channels=2, kernel_size=2, bias=False), (3, 8)),
    (Conv2d, torch.nn.Conv2d, dict(in_channels=3, out_channels=4, kernel_size=(3, 2), stride=(2, 1), padding=(1, 0)), (2, 3, 7, 6)),
    (Conv2d, torch.nn.Conv2d, dict(in_channels=4, out_channels=6, kernel_size=4, stride=3, groups=2), (2, 4, 9, 10)),
    (Conv2d, torch.nn.Conv2d, dict(in_channels=3, out_channels=3, kernel_size=3, groups=3, padding=1), (2, 3, 5, 5)),
    (Conv2d, torch.nn.Conv2d, dict(in_channels=2, out_channels=3, kernel_size=3, dilation=(2, 1), padding="valid"), (2, 2, 8, 6)),
    (Conv2d, torch.nn.Conv2d, dict(in_channels=2, out_channels=2, kernel_size=3, padding=1, padding_mode="reflect"), (2, 2, 5, 6)),
    (Conv2d, torch.nn.Conv2d, dict(in_channels=2, out_channels=2, kernel_size=2, padding=1, padding_mode="replicate", stride=2), (2, 2, 5, 6)),
    (Conv2d, torch.nn.Conv2d, dict(in_channels=2, out_channels=2, kernel_size=(2, 3), padding="same"), (2, 2, 5, 6)),
    (Conv3d, torch.nn.Conv3d, dict(in_channels=2, out_channels=4, kernel_size=(2, 3, 2), stride=(1, 2, 2), padding=1, groups=2), (2, 2, 4, 5, 5)),
]

TRANSPOSE_CASES = [
    (ConvTranspose1d, torch.nn.ConvTranspose1d, dict(in_channels=4, out_channels=6, kernel_size=3, stride=2, padding=1, output_padding=1, groups=2), (3, 4, 6)),
    (ConvTranspose1d, torch.nn.ConvTranspose1d, dict(in_channels=3, out_channels=2, kernel_size=3, stride=2, output_padding=2, dilation=3), (2, 3, 5)),
    (ConvTranspose1d, torch.nn.ConvTranspose1d, dict(in_channels=2, out_channels=3, kernel_size=4, bias=False), (2, 5)),
    (ConvTranspose2d, torch.nn.ConvTranspose2d, dict(in_channels=3, out_channels=4, kernel_size=(3, 2), stride=(2, 3), padding=(1, 0), output_padding=(1, 2)), (2, 3, 4, 3)),
    (ConvTranspose2d, torch.nn.ConvTranspose2d, dict(in_channels=4, out_channels=2, kernel_size=4, stride=2, padding=1, groups=2, dilation=2), (2, 4, 3, 4)),
    (ConvTranspose3d, torch.nn.ConvTranspose3d, dict(in_channels=2, out_channels=2, kernel_size=2, stride=2, padding=(0, 1, 0)), (2, 2, 2, 3, 2)),
]


def case_id(case):
    cls, _, kwargs, shape = case
    return f"{cls.__name__}-{'-'.join(f'{k}={v}' for k, v in kwargs.items())}-{shape}"


# PyTorch warns that 'same' padding with an even kernel copies the input.
@pytest.mark.filterwarnings("ignore:Using padding='same':UserWarning")
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("case", CONV_CASES + TRANSPOSE_CASES, ids=case_id)
def test_conv_layer_matches_torch(case, dtype):
    cls, torch_cls, kwargs, shape = case
    rng = np.random.default_rng(0)
    layer = cls(**kwargs, dtype=dtype, rng=rng)
    torch_layer = torch_cls(**kwargs, dtype=TORCH_DTYPES[dtype])
    x = rng.standard_normal(shape).astype(dtype)

    output = check_against_torch(layer, torch_layer, x, rng, what=cls.__name__)

    assert output.dtype == dtype
    assert layer.weight.grad.dtype == dtype


@pytest.mark.parametrize(
    "case",
    [CONV_CASES[0], CONV_CASES[2], CONV_CASES[3], CONV_CASES[5], CONV_CASES[8], TRANSPOSE_CASES[1], TRANSPOSE_CASES[4]],
    ids=case_id,
)
def test_conv_layer_finite_differences(case):
    cls, _, kwargs, shape = case
    rng = np.random.default_rng(1)
    # One sample keeps the number of forward passes small.
    shape = (1,) + shape[1:] if len(shape) == cls.spatial_dims + 2 else shape
    layer = cls(**kwargs, dtype=np.float64, rng=rng)
    gradcheck_module(layer, rng.standard_normal(shape))


def test_conv_gradients_accumulate_until_zero_grad():
    rng = np.random.default_rng(2)
    layer = Conv2d(2, 3, 3, stride=2, padding=1, dtype=np.float64, rng=rng)
    x = rng.standard_normal((2, 2, 6, 5))
    grad_output = rng.standard_normal(layer.forward(x).shape)

    layer.backward(grad_output)
    first_weight, first_bias = layer.weight.grad.copy(), layer.bias.grad.copy()
    layer.forward(x)
    layer.backward(grad_output)

    np.testing.assert_allclose(layer.weight.grad, 2 * first_weight, rtol=1e-12)
    np.testing.assert_allclose(layer.bias.grad, 2 * first_bias, rtol=1e-12)
    layer.zero_grad()
    assert not layer.weight.grad.any()
    assert not layer.bias.grad.any()


def test_conv_transpose_gradients_accumulate():
    rng = np.random.default_rng(3)
    layer = ConvTranspose1d(2, 3, 3, stride=2, dtype=np.float64, rng=rng)
    x = rng.standard_normal((2, 2, 4))
    grad_output = rng.standard_normal(layer.forward(x).shape)
    layer.backward(grad_output)
    first = layer.weight.grad.copy()
    layer.backward(grad_output)
    np.testing.assert_allclose(layer.weight.grad, 2 * first, rtol=1e-12)


def test_conv_default_init_follows_torch_bounds():
    rng = np.random.default_rng(4)
    layer = Conv2d(6, 8, (3, 5), groups=2, rng=rng)
    fan_in = 3 * 3 * 5
    bound = 1 / np.sqrt(fan_in)
    for values in (layer.weight.data, layer.bias.data):
        assert np.abs(values).max() <= bound
    # 360 uniform draws: the largest magnitude is within 5% of the bound with
    # probability 1 - 0.95**360, which is 1 - 1e-8.
    assert np.abs(layer.weight.data).max() > 0.95 * bound


def test_conv_transpose_init_uses_torch_fan_in():
    layer = ConvTranspose2d(8, 4, 3, groups=2, rng=np.random.default_rng(5))
    # PyTorch reads fan_in from weight.shape[1] * prod(kernel_size) = (4 / 2) * 9.
    bound = 1 / np.sqrt(2 * 9)
    assert layer.weight.shape == (8, 2, 3, 3)
    assert np.abs(layer.weight.data).max() <= bound
    assert np.abs(layer.weight.data).max() > 0.9 * bound


def test_conv_same_seed_same_weights():
    first = Conv1d(3, 4, 5, rng=np.random.default_rng(7))
    second = Conv1d(3, 4, 5, rng=np.random.default_rng(7))
    np.testing.assert_array_equal(first.weight.data, second.weight.data)
    np.testing.assert_array_equal(first.bias.data, second.bias.data)


@pytest.mark.parametrize(
    "kwargs, error",
    [
        (dict(in_channels=3, out_channels=4, kernel_size=3, groups=2), ValueError),
        (dict(in_channels=2, out_channels=4, kernel_size=3, stride=2, padding="same"), ValueError),
        (dict(in_channels=2, out_channels=4, kernel_size=3, padding="full"), ValueError),
        (dict(in_channels=2, out_channels=4, kernel_size=3, padding_mode="mirror"), ValueError),
        (dict(in_channels=2, out_channels=4, kernel_size=0), ValueError),
        (dict(in_channels=2, out_channels=4, kernel_size=2.5), TypeError),
        (dict(in_channels=2, out_channels=4, kernel_size=(3, 3, 3)), ValueError),
        (dict(in_channels=2, out_channels=4, kernel_size=3, dtype=np.int32), TypeError),
        (dict(in_channels=2, out_channels=4, kernel_size=3, rng=0), TypeError),
    ],
)
def test_conv2d_rejects_invalid_arguments(kwargs, error):
    with pytest.raises(error):
        Conv2d(**kwargs)


def test_conv_transpose_rejects_large_output_padding():
    with pytest.raises(ValueError, match="output_padding"):
        ConvTranspose2d(2, 2, 3, stride=2, output_padding=2)


def test_conv_rejects_wrong_input_rank():
    layer = Conv2d(2, 3, 3)
    with pytest.raises(ValueError, match="Conv2d expects input"):
        layer.forward(np.zeros((2, 5), dtype=np.float32))


def test_conv_backward_before_forward_raises():
    with pytest.raises(RuntimeError, match="before forward"):
        Conv1d(1, 1, 1).backward(np.zeros((1, 1, 1)))
