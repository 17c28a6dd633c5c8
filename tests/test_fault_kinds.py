"""Targeted tests for the faults convolution code classically gets wrong.

Each test states the invariant that a whole family of bugs breaks, and checks
it on the fast path and on the reference.
"""

import numpy as np
import pytest
import torch

import convgrad
from convgrad import reference
from conftest import assert_close
from oracles import torch_conv_with_grads

MODULES = pytest.mark.parametrize("module", [convgrad, reference], ids=["fast", "reference"])


@MODULES
def test_one_hot_grad_output_touches_only_its_window(module):
    """An input gradient added into the whole array (not one element) fails this."""
    x_shape = (1, 1, 9)
    w = np.array([[[1.0, 2.0, 3.0]]])
    for position in range(4):
        go = np.zeros((1, 1, 4))
        go[0, 0, position] = 1.0
        grad = module.conv_input_grad(x_shape, w, go, stride=2)
        expected = np.zeros(9)
        expected[2 * position: 2 * position + 3] = [1.0, 2.0, 3.0]
        np.testing.assert_array_equal(grad[0, 0], expected)


@MODULES
def test_stride_remainder_elements_get_zero_gradient(module):
    """(L - K) % s leftover elements are never read: zero gradient, full input shape."""
    rng = np.random.default_rng(0)
    for length, kernel, stride in [(8, 3, 2), (11, 4, 3), (10, 3, 4)]:
        w = rng.standard_normal((2, 1, kernel))
        out_len = (length - kernel) // stride + 1
        go = rng.standard_normal((1, 2, out_len))
        grad = module.conv_input_grad((1, 1, length), w, go, stride=stride)
        assert grad.shape == (1, 1, length)
        unread = length - ((out_len - 1) * stride + kernel)
        assert unread > 0
        np.testing.assert_array_equal(grad[0, 0, length - unread:], 0.0)


@MODULES
def test_weight_gradient_sums_over_batch(module):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((1, 2, 6))
    go = rng.standard_normal((1, 3, 4))
    single = module.conv_weight_grad(x, (3, 2, 3), go)
    doubled = module.conv_weight_grad(np.concatenate([x, x]), (3, 2, 3), np.concatenate([go, go]))
    assert_close(doubled, 2 * single, rtol=1e-13, context="batch of two equal samples")


@MODULES
def test_grouped_weight_gradient_sees_only_its_group(module):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 4, 5, 5))
    go = rng.standard_normal((2, 6, 3, 3))
    base = module.conv_weight_grad(x, (6, 2, 3, 3), go, groups=2)
    changed_x = x.copy()
    changed_x[:, 2:] += 10.0  # the second group's input channels
    changed_go = go.copy()
    changed_go[:, 3:] -= 5.0  # the second group's output channels
    after = module.conv_weight_grad(changed_x, (6, 2, 3, 3), changed_go, groups=2)
    np.testing.assert_array_equal(after[:3], base[:3])
    assert not np.allclose(after[3:], base[3:])


def test_width_is_not_taken_from_height():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((1, 1, 4, 9))
    w = rng.standard_normal((1, 1, 2, 5))
    out = convgrad.conv(x, w, stride=(1, 2), padding=(1, 0))
    assert out.shape == (1, 1, 5, 3)
    assert convgrad.conv_input_grad(x.shape, w, np.ones(out.shape), stride=(1, 2), padding=(1, 0)).shape == x.shape


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("padding_mode", ["zeros", "reflect", "circular"])
def test_non_finite_input_stays_local(value, padding_mode):
    """A NaN or infinity reaches exactly the sums that read it, as in PyTorch."""
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 2, 7, 6))
    x[0, 1, 3, 2] = value
    w = rng.standard_normal((3, 2, 3, 2))
    w[1, 1, 0, 0] = 0.0  # inf * 0 is NaN in the sums that use this tap
    go = rng.standard_normal((2, 3, 7, 5))
    kwargs = {"padding": (1, 0), "padding_mode": padding_mode}
    out, gx, gw, _ = torch_conv_with_grads(x, w, None, go, 1, (1, 0), 1, 1, padding_mode)

    for module in (convgrad, reference):
        assert_close(module.conv(x, w, **kwargs), out, rtol=1e-12, atol=1e-12, context=f"{module.__name__} output")
        assert_close(module.conv_weight_grad(x, w.shape, go, 1, (1, 0), 1, 1, padding_mode), gw, rtol=1e-12,
                     atol=1e-12, context=f"{module.__name__} weight grad")
    finite = convgrad.conv(np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0), w, **kwargs)
    changed = ~np.isclose(convgrad.conv(x, w, **kwargs), finite, equal_nan=False)
    assert changed.any()
    assert changed.sum() < changed.size / 4, "a non-finite input spread beyond its windows"


@MODULES
def test_unbatched_input_gives_unbatched_results(module):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 5, 4))
    w = rng.standard_normal((3, 2, 3, 3))
    out = module.conv(x, w, padding=1)
    go = rng.standard_normal(out.shape)
    assert out.shape == (3, 5, 4)
    assert module.conv_input_grad(x.shape, w, go, 1, 1).shape == x.shape
    batched = module.conv(x[None], w, padding=1)[0]
    assert_close(out, batched, rtol=0, context="unbatched vs batch of one")


def test_float32_inputs_are_not_upcast_silently_in_gradients():
    x = torch.randn(2, 3, 8, dtype=torch.float32)
    w = torch.randn(4, 3, 3, dtype=torch.float32)
    go = np.random.default_rng(6).standard_normal((2, 4, 8)).astype(np.float32)
    gx = convgrad.conv_input_grad(tuple(x.shape), w.numpy(), go, padding=1)
    assert gx.dtype == np.float32
    expected = torch.nn.grad.conv1d_input(x.shape, w, torch.from_numpy(go), padding=1).numpy()
    assert_close(gx, expected, rtol=1e-5, atol=1e-5, context="float32 input grad")
