"""Linear, activation, pooling, reshape, dropout and container layers.

Each layer is compared with the PyTorch layer of the same meaning (output,
input gradient and parameter gradients, with a random upstream gradient) and
with central differences in float64.
"""

import math
import warnings

import numpy as np
import pytest
import torch

from convgrad.nn._erf import ERF_IMPLEMENTATION, erf, erf_chebyshev
from convgrad.nn.activation import GELU, LeakyReLU, ReLU, Sigmoid, Tanh, sigmoid
from convgrad.nn.container import Sequential
from convgrad.nn.conv import Conv2d
from convgrad.nn.dropout import Dropout
from convgrad.nn.linear import Linear
from convgrad.nn.normalization import BatchNorm1d, BatchNorm2d
from convgrad.nn.pooling import AvgPool1d, AvgPool2d, GlobalAvgPool, MaxPool1d, MaxPool2d
from convgrad.nn.reshape import Flatten
from convgrad.gradcheck import gradcheck_module
from layer_checks import check_against_torch

TORCH_DTYPES = {np.float32: torch.float32, np.float64: torch.float64}


class TorchGlobalAvgPool(torch.nn.Module):
    def forward(self, x):
        return x.mean(dim=tuple(range(2, x.ndim)))


# (name, factory of (our layer, torch layer) for a dtype and rng, input shape).
# Layers with parameters are built in the dtype, and stateless ones ignore it.
LAYER_CASES = [
    ("Linear", lambda dt, rng: (Linear(5, 3, dtype=dt, rng=rng), torch.nn.Linear(5, 3, dtype=TORCH_DTYPES[dt])), (4, 5)),
    ("Linear-nobias-3d", lambda dt, rng: (Linear(5, 3, bias=False, dtype=dt, rng=rng), torch.nn.Linear(5, 3, bias=False, dtype=TORCH_DTYPES[dt])), (2, 3, 5)),
    ("ReLU", lambda dt, rng: (ReLU(), torch.nn.ReLU()), (3, 4, 5)),
    ("LeakyReLU", lambda dt, rng: (LeakyReLU(0.2), torch.nn.LeakyReLU(0.2)), (3, 4, 5)),
    ("LeakyReLU-default", lambda dt, rng: (LeakyReLU(), torch.nn.LeakyReLU()), (3, 7)),
    ("GELU", lambda dt, rng: (GELU(), torch.nn.GELU()), (3, 4, 5)),
    ("GELU-tanh", lambda dt, rng: (GELU("tanh"), torch.nn.GELU("tanh")), (3, 4, 5)),
    ("Tanh", lambda dt, rng: (Tanh(), torch.nn.Tanh()), (3, 4, 5)),
    ("Sigmoid", lambda dt, rng: (Sigmoid(), torch.nn.Sigmoid()), (3, 4, 5)),
    ("MaxPool1d", lambda dt, rng: (MaxPool1d(2), torch.nn.MaxPool1d(2)), (2, 3, 9)),
    ("MaxPool1d-k3s2p1", lambda dt, rng: (MaxPool1d(3, 2, 1), torch.nn.MaxPool1d(3, 2, 1)), (2, 3, 10)),
    ("MaxPool2d", lambda dt, rng: (MaxPool2d(2), torch.nn.MaxPool2d(2)), (2, 3, 6, 7)),
    ("MaxPool2d-overlap", lambda dt, rng: (MaxPool2d((3, 2), stride=(1, 2), padding=(1, 0)), torch.nn.MaxPool2d((3, 2), stride=(1, 2), padding=(1, 0))), (2, 2, 5, 6)),
    ("MaxPool2d-k4s3p2", lambda dt, rng: (MaxPool2d(4, 3, 2), torch.nn.MaxPool2d(4, 3, 2)), (2, 2, 9, 7)),
    ("AvgPool1d", lambda dt, rng: (AvgPool1d(3, 2), torch.nn.AvgPool1d(3, 2)), (2, 3, 10)),
    ("AvgPool1d-pad", lambda dt, rng: (AvgPool1d(4, 3, 2), torch.nn.AvgPool1d(4, 3, 2)), (2, 3, 10)),
    ("AvgPool2d", lambda dt, rng: (AvgPool2d(2), torch.nn.AvgPool2d(2)), (2, 3, 6, 7)),
    ("AvgPool2d-pad", lambda dt, rng: (AvgPool2d(3, 2, 1), torch.nn.AvgPool2d(3, 2, 1)), (2, 2, 7, 6)),
    ("AvgPool2d-exclude-pad", lambda dt, rng: (AvgPool2d((3, 2), 1, (1, 1), count_include_pad=False), torch.nn.AvgPool2d((3, 2), 1, (1, 1), count_include_pad=False)), (2, 2, 5, 4)),
    ("GlobalAvgPool-2d", lambda dt, rng: (GlobalAvgPool(), TorchGlobalAvgPool()), (3, 4, 5, 6)),
    ("GlobalAvgPool-1d", lambda dt, rng: (GlobalAvgPool(), TorchGlobalAvgPool()), (3, 4, 5)),
    ("Flatten", lambda dt, rng: (Flatten(), torch.nn.Flatten()), (2, 3, 4, 5)),
    ("Flatten-middle", lambda dt, rng: (Flatten(1, 2), torch.nn.Flatten(1, 2)), (2, 3, 4, 5)),
    ("BatchNorm1d-2d-input", lambda dt, rng: (BatchNorm1d(4, dtype=dt), torch.nn.BatchNorm1d(4, dtype=TORCH_DTYPES[dt])), (6, 4)),
    ("BatchNorm1d-3d-input", lambda dt, rng: (BatchNorm1d(3, dtype=dt), torch.nn.BatchNorm1d(3, dtype=TORCH_DTYPES[dt])), (4, 3, 5)),
    ("BatchNorm2d", lambda dt, rng: (BatchNorm2d(3, dtype=dt), torch.nn.BatchNorm2d(3, dtype=TORCH_DTYPES[dt])), (4, 3, 5, 4)),
    ("BatchNorm2d-noaffine", lambda dt, rng: (BatchNorm2d(3, affine=False, dtype=dt), torch.nn.BatchNorm2d(3, affine=False, dtype=TORCH_DTYPES[dt])), (4, 3, 3, 2)),
    ("Dropout-p0", lambda dt, rng: (Dropout(0.0), torch.nn.Dropout(0.0)), (3, 4)),
]


def randomize_affine(layer, rng):
    # BatchNorm starts at weight 1, bias 0, which would hide a swapped gradient.
    for param in layer.parameters():
        param.data[...] = rng.uniform(0.5, 1.5, size=param.shape)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name, factory, shape", LAYER_CASES, ids=[case[0] for case in LAYER_CASES])
def test_layer_matches_torch(name, factory, shape, dtype):
    rng = np.random.default_rng(0)
    layer, torch_layer = factory(dtype, rng)
    if name.startswith("BatchNorm"):
        randomize_affine(layer, rng)
    x = (2 * rng.standard_normal(shape)).astype(dtype)

    output = check_against_torch(layer, torch_layer, x, rng, what=name)

    assert output.dtype == dtype, f"{name} changed dtype {np.dtype(dtype)} to {output.dtype}"
    for param_name, param in layer.named_parameters():
        assert param.grad.dtype == dtype, f"{name}.{param_name} gradient has dtype {param.grad.dtype}"


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name, factory, shape", LAYER_CASES, ids=[case[0] for case in LAYER_CASES])
def test_layer_backward_keeps_dtype(name, factory, shape, dtype):
    rng = np.random.default_rng(0)
    layer, _ = factory(dtype, rng)
    output = layer.forward(rng.standard_normal(shape).astype(dtype))
    grad_input = layer.backward(np.ones(output.shape, dtype=dtype))
    assert grad_input.dtype == dtype


@pytest.mark.parametrize("name, factory, shape", LAYER_CASES, ids=[case[0] for case in LAYER_CASES])
def test_layer_finite_differences(name, factory, shape):
    rng = np.random.default_rng(1)
    layer, _ = factory(np.float64, rng)
    if name.startswith("BatchNorm"):
        randomize_affine(layer, rng)
    x = 2 * rng.standard_normal(shape)
    if name.startswith(("ReLU", "LeakyReLU")):
        # Keep inputs away from the kink at 0, where the derivative jumps.
        x += np.where(x >= 0, 0.1, -0.1)
    if name.startswith("MaxPool"):
        # Distinct values spaced far beyond the step keep the argmax fixed.
        x = rng.permutation(x.size).reshape(shape) * 0.01
    gradcheck_module(layer, x)


def test_maxpool_ties_route_to_first_max_like_torch():
    rng = np.random.default_rng(2)
    # Values from {0, 1, 2} make most windows contain several maxima.
    x = rng.integers(0, 3, size=(2, 2, 6, 6)).astype(np.float64)
    layer = MaxPool2d(3, stride=1, padding=1)
    output = check_against_torch(layer, torch.nn.MaxPool2d(3, stride=1, padding=1), x, rng, what="MaxPool2d ties")

    # Each output sends its whole gradient to exactly one input element.
    grad_input = layer.backward(np.ones(output.shape))
    assert grad_input.sum() == output.size


def test_maxpool_all_equal_window_picks_first_element():
    layer = MaxPool1d(3)
    layer.forward(np.zeros((1, 1, 3)))
    np.testing.assert_array_equal(layer.backward(np.ones((1, 1, 1))), [[[1.0, 0.0, 0.0]]])


def test_maxpool_nan_matches_torch():
    x = np.array([[[1.0, np.nan, 3.0, 2.0, np.nan, np.nan, 0.0, np.nan, 5.0]]])
    layer = MaxPool1d(3)
    output = layer.forward(x)
    grad_input = layer.backward(np.ones(output.shape))

    x_torch = torch.from_numpy(x).requires_grad_(True)
    output_torch = torch.nn.functional.max_pool1d(x_torch, 3)
    output_torch.backward(torch.ones_like(output_torch))
    np.testing.assert_array_equal(output, output_torch.detach().numpy())
    np.testing.assert_array_equal(grad_input, x_torch.grad.numpy())


def test_maxpool_rejects_padding_over_half_kernel():
    with pytest.raises(ValueError, match="at most half"):
        MaxPool2d(2, padding=2)


@pytest.mark.parametrize(
    "kwargs, error",
    [(dict(kernel_size=0), ValueError), (dict(kernel_size=2.0), TypeError), (dict(kernel_size=(2, 2, 2)), ValueError), (dict(kernel_size=2, stride=0), ValueError)],
)
def test_pool_rejects_invalid_arguments(kwargs, error):
    with pytest.raises(error):
        AvgPool2d(**kwargs)


def test_pool_rejects_too_small_input():
    with pytest.raises(ValueError, match="too small"):
        AvgPool2d(3).forward(np.zeros((1, 1, 2, 5)))


def test_pool_rejects_wrong_rank():
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        MaxPool2d(2).forward(np.zeros((1, 4, 4)))


def test_linear_gradients_accumulate_until_zero_grad():
    rng = np.random.default_rng(3)
    layer = Linear(4, 3, dtype=np.float64, rng=rng)
    x = rng.standard_normal((5, 4))
    grad_output = rng.standard_normal((5, 3))
    layer.forward(x)
    layer.backward(grad_output)
    first_weight, first_bias = layer.weight.grad.copy(), layer.bias.grad.copy()

    layer.forward(x)
    layer.backward(grad_output)
    np.testing.assert_allclose(layer.weight.grad, 2 * first_weight, rtol=1e-12)
    np.testing.assert_allclose(layer.bias.grad, 2 * first_bias, rtol=1e-12)

    layer.zero_grad()
    assert not layer.weight.grad.any()
    assert not layer.bias.grad.any()


def test_linear_rejects_wrong_feature_count():
    with pytest.raises(ValueError, match=r"\(N, 4\)"):
        Linear(4, 2).forward(np.zeros((3, 5), dtype=np.float32))


def test_backward_rejects_wrong_grad_shape():
    layer = ReLU()
    layer.forward(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="grad_output of shape"):
        layer.backward(np.zeros((3, 2)))


def test_sigmoid_is_stable_for_large_inputs():
    x = np.array([-1000.0, -50.0, 0.0, 50.0, 1000.0], dtype=np.float32)
    # Underflow of exp(-1000) to 0 is expected and harmless, but overflow is not.
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        output = sigmoid(x)
    expected = torch.sigmoid(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(output, expected, rtol=1e-6, atol=0)
    assert output.dtype == np.float32


def test_erf_implementation_is_reported():
    assert ERF_IMPLEMENTATION in ("scipy.special.erf", "erf_chebyshev")


def test_erf_chebyshev_matches_math_erf_in_float64():
    x = np.concatenate([np.linspace(-7, 7, 4001), [0.0, 1e-300, -1e-12, 2.0, -2.0, 6.0, np.inf, -np.inf]])
    expected = np.array([math.erf(value) for value in x])
    np.testing.assert_allclose(erf_chebyshev(x), expected, rtol=0, atol=5e-15)


def test_erf_chebyshev_float32_accuracy_and_dtype():
    x = np.linspace(-6.5, 6.5, 5001, dtype=np.float32)
    result = erf_chebyshev(x)
    assert result.dtype == np.float32
    expected = np.array([math.erf(float(value)) for value in x])
    assert np.abs(result - expected).max() < 2e-7


def test_erf_chebyshev_keeps_nan():
    assert np.isnan(erf_chebyshev(np.array([np.nan]))[0])


def test_erf_dispatch_keeps_float32():
    assert erf(np.ones(3, dtype=np.float32)).dtype == np.float32


def test_gelu_with_chebyshev_erf_matches_torch(monkeypatch):
    # Runs GELU on the NumPy fallback used when SciPy is not installed.
    monkeypatch.setattr("convgrad.nn.activation.erf", erf_chebyshev)
    rng = np.random.default_rng(4)
    x = 3 * rng.standard_normal((4, 50))
    check_against_torch(GELU(), torch.nn.GELU(), x, rng, dtype=np.float64, what="GELU fallback")


def test_gelu_rejects_unknown_approximation():
    with pytest.raises(ValueError, match="approximate"):
        GELU("erf")


def test_dropout_eval_is_identity():
    layer = Dropout(0.5, rng=np.random.default_rng(5))
    layer.eval()
    x = np.random.default_rng(6).standard_normal((4, 10)).astype(np.float32)
    np.testing.assert_array_equal(layer.forward(x), x)
    np.testing.assert_array_equal(layer.backward(x), x)


def test_dropout_train_keeps_expected_fraction_and_scale():
    p = 0.3
    layer = Dropout(p, rng=np.random.default_rng(7))
    x = np.ones((200, 500), dtype=np.float32)
    output = layer.forward(x)

    kept = output != 0
    # 100,000 Bernoulli(0.7) draws: the standard deviation of the kept fraction
    # is about 0.0015, so 0.01 is more than six standard deviations.
    assert abs(kept.mean() - (1 - p)) < 0.01
    np.testing.assert_allclose(output[kept], 1 / (1 - p), rtol=1e-6)
    assert output.dtype == np.float32

    grad_output = np.random.default_rng(8).standard_normal(x.shape).astype(np.float32)
    np.testing.assert_array_equal(layer.backward(grad_output), grad_output * output)


def test_dropout_masks_reproducible_from_seed():
    x = np.ones((10, 10))
    first = Dropout(0.5, rng=np.random.default_rng(9)).forward(x)
    second = Dropout(0.5, rng=np.random.default_rng(9)).forward(x)
    np.testing.assert_array_equal(first, second)


def test_dropout_p_one_zeroes_everything():
    output = Dropout(1.0).forward(np.ones((3, 3)))
    np.testing.assert_array_equal(output, 0)


@pytest.mark.parametrize("p", [-0.1, 1.5, "0.5"])
def test_dropout_rejects_invalid_probability(p):
    with pytest.raises(ValueError, match="probability"):
        Dropout(p)


def build_small_cnn(dtype, rng):
    ours = Sequential(
        Conv2d(1, 4, 3, padding=1, dtype=dtype, rng=rng),
        BatchNorm2d(4, dtype=dtype),
        ReLU(),
        MaxPool2d(2),
        Conv2d(4, 6, 3, stride=2, groups=2, dtype=dtype, rng=rng),
        GELU(),
        Flatten(),
        Linear(6, 3, dtype=dtype, rng=rng),
    )
    torch_dtype = TORCH_DTYPES[dtype]
    theirs = torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3, padding=1, dtype=torch_dtype),
        torch.nn.BatchNorm2d(4, dtype=torch_dtype),
        torch.nn.ReLU(),
        torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(4, 6, 3, stride=2, groups=2, dtype=torch_dtype),
        torch.nn.GELU(),
        torch.nn.Flatten(),
        torch.nn.Linear(6, 3, dtype=torch_dtype),
    )
    return ours, theirs


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_sequential_cnn_matches_torch(dtype):
    rng = np.random.default_rng(10)
    ours, theirs = build_small_cnn(dtype, rng)
    x = rng.standard_normal((3, 1, 6, 6)).astype(dtype)
    output = check_against_torch(ours, theirs, x, rng, what="Sequential")
    assert output.dtype == dtype


def test_sequential_state_dict_keys_match_torch():
    ours, theirs = build_small_cnn(np.float32, np.random.default_rng(11))
    assert sorted(ours.state_dict()) == sorted(theirs.state_dict())


def test_sequential_indexing_and_append():
    first, second = ReLU(), Tanh()
    model = Sequential(first)
    model.append(second)
    assert len(model) == 2
    assert model[0] is first
    assert model[-1] is second
    assert list(model) == [first, second]
    assert model[1:][0] is second


def test_sequential_rejects_non_module():
    with pytest.raises(TypeError, match="Module"):
        Sequential(ReLU(), np.tanh)


def test_state_dict_round_trip_includes_batchnorm_buffers():
    rng = np.random.default_rng(12)
    model, _ = build_small_cnn(np.float64, rng)
    for _ in range(3):
        model.forward(rng.standard_normal((4, 1, 6, 6)))
    state = model.state_dict()
    assert "1.running_mean" in state
    assert "1.running_var" in state
    assert "1.num_batches_tracked" in state
    assert int(state["1.num_batches_tracked"]) == 3

    restored, _ = build_small_cnn(np.float64, np.random.default_rng(13))
    restored.load_state_dict(state)
    for key, value in restored.state_dict().items():
        np.testing.assert_array_equal(value, state[key], err_msg=key)

    x = rng.standard_normal((2, 1, 6, 6))
    model.eval()
    restored.eval()
    np.testing.assert_array_equal(restored.forward(x), model.forward(x))


def test_state_dict_is_a_copy():
    layer = BatchNorm1d(2, dtype=np.float64)
    state = layer.state_dict()
    state["running_mean"][...] = 5
    assert not layer.running_mean.any()


def test_load_state_dict_rejects_missing_key():
    layer = BatchNorm1d(2)
    state = layer.state_dict()
    del state["running_var"]
    with pytest.raises(ValueError, match="running_var"):
        layer.load_state_dict(state)


def test_integer_input_is_promoted_to_float64():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        output = ReLU().forward(np.array([[-1, 2]]))
    assert output.dtype == np.float64
