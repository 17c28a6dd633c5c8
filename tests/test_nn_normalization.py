"""Batch normalization: running statistics and evaluation mode against PyTorch."""

import numpy as np
import pytest
import torch

from convgrad.nn.normalization import BatchNorm1d, BatchNorm2d
from layer_checks import assert_close, check_against_torch, copy_state_to_torch

TORCH_DTYPES = {np.float32: torch.float32, np.float64: torch.float64}

CASES = [
    (BatchNorm1d, torch.nn.BatchNorm1d, (8, 3)),
    (BatchNorm1d, torch.nn.BatchNorm1d, (4, 3, 5)),
    (BatchNorm2d, torch.nn.BatchNorm2d, (4, 3, 5, 4)),
]


@pytest.mark.parametrize("momentum", [0.1, 0.5, None])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("cls, torch_cls, shape", CASES, ids=lambda v: getattr(v, "__name__", str(v)))
def test_running_stats_and_eval_match_torch(cls, torch_cls, shape, dtype, momentum):
    rng = np.random.default_rng(0)
    layer = cls(3, momentum=momentum, dtype=dtype)
    torch_layer = torch_cls(3, momentum=momentum, dtype=TORCH_DTYPES[dtype])
    layer.weight.data[...] = rng.uniform(0.5, 1.5, size=3)
    layer.bias.data[...] = rng.uniform(-0.5, 0.5, size=3)
    copy_state_to_torch(layer, torch_layer)

    # Several training steps with shifted, scaled batches so the running
    # statistics move far from their initial 0 and 1.
    for step in range(4):
        x = (3 * rng.standard_normal(shape) + step).astype(dtype)
        check_against_torch(layer, torch_layer, x, rng, what=f"{cls.__name__} train step {step}")

    assert_close(layer.running_mean, torch_layer.running_mean.numpy(), dtype, "running_mean")
    assert_close(layer.running_var, torch_layer.running_var.numpy(), dtype, "running_var")
    assert int(layer.num_batches_tracked) == int(torch_layer.num_batches_tracked) == 4
    assert layer.running_mean.dtype == dtype

    layer.eval()
    torch_layer.eval()
    frozen_mean = layer.running_mean.copy()
    x = (2 * rng.standard_normal(shape) + 1).astype(dtype)
    output = check_against_torch(layer, torch_layer, x, rng, what=f"{cls.__name__} eval")
    assert output.dtype == dtype
    np.testing.assert_array_equal(layer.running_mean, frozen_mean)


def test_untracked_stats_eval_matches_torch():
    """Without running statistics, evaluation mode normalizes with batch statistics."""
    rng = np.random.default_rng(1)
    layer = BatchNorm2d(2, track_running_stats=False, dtype=np.float64)
    torch_layer = torch.nn.BatchNorm2d(2, track_running_stats=False, dtype=torch.float64)
    layer.eval()
    torch_layer.eval()
    check_against_torch(layer, torch_layer, rng.standard_normal((3, 2, 4, 4)), rng, what="no running stats")
    assert "running_mean" not in layer.state_dict()


def test_training_rejects_single_value_per_channel():
    layer = BatchNorm1d(4)
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        layer.forward(np.zeros((1, 4), dtype=np.float32))
    layer.eval()
    assert layer.forward(np.zeros((1, 4), dtype=np.float32)).shape == (1, 4)


def test_rejects_wrong_channel_count():
    with pytest.raises(ValueError, match="3 channels"):
        BatchNorm2d(3).forward(np.zeros((2, 4, 2, 2), dtype=np.float32))


def test_batchnorm1d_rejects_4d_input():
    with pytest.raises(ValueError, match=r"\(N, C\) or \(N, C, L\)"):
        BatchNorm1d(3).forward(np.zeros((2, 3, 2, 2), dtype=np.float32))


@pytest.mark.parametrize("kwargs", [dict(eps=0), dict(momentum=1.5), dict(momentum="0.1")])
def test_rejects_invalid_hyperparameters(kwargs):
    with pytest.raises(ValueError):
        BatchNorm2d(3, **kwargs)
