"""The vectorized operators against the loop reference and PyTorch, over a grid
of configurations chosen to reach the corners: stride remainders, even and odd
kernels, dilation, groups (depthwise with a channel multiplier too), every
padding form and mode, batch 1 and unbatched inputs, C_in != C_out, and
non-square, non-cubic shapes.
"""

import numpy as np
import pytest

import convgrad
from convgrad import reference
from convgrad.geometry import ConvGeometry
from conftest import assert_close
from oracles import torch_conv_transpose_with_grads, torch_conv_with_grads

# (id, input shape, weight shape, keyword arguments, bias)
CONFIGS = [
    ("1d-basic", (2, 3, 9), (4, 3, 3), {}, True),
    ("1d-stride-remainder", (2, 2, 8), (3, 2, 3), {"stride": 2}, False),
    ("1d-stride3-remainder2", (1, 2, 11), (2, 2, 4), {"stride": 3, "padding": 1}, True),
    ("1d-dilation-stride", (2, 1, 10), (2, 1, 3), {"stride": 2, "dilation": 2, "padding": 1}, False),
    ("1d-same-even", (1, 2, 7), (3, 2, 4), {"padding": "same"}, True),
    ("1d-same-dilated-odd-total", (2, 1, 9), (1, 1, 2), {"padding": "same", "dilation": 3}, False),
    ("1d-full", (1, 2, 5), (2, 2, 4), {"padding": "full"}, True),
    ("1d-valid", (1, 2, 5), (2, 2, 5), {"padding": "valid"}, False),
    ("1d-groups", (2, 4, 9), (6, 2, 3), {"groups": 2, "stride": 2}, True),
    ("1d-depthwise-multiplier", (2, 3, 10), (6, 1, 3), {"groups": 3, "stride": 3, "padding": 1}, False),
    ("1d-reflect", (2, 2, 6), (2, 2, 3), {"padding": 2, "padding_mode": "reflect"}, True),
    ("1d-replicate-wide", (1, 1, 4), (1, 1, 2), {"padding": 5, "padding_mode": "replicate"}, False),
    ("1d-circular-full-wrap", (1, 2, 4), (2, 2, 3), {"padding": 4, "padding_mode": "circular"}, False),
    ("1d-explicit-pairs", (2, 1, 6), (2, 1, 3), {"padding": ((3, 0),)}, True),
    ("1d-unbatched", (3, 7), (2, 3, 3), {"padding": 1}, True),
    ("1d-kernel-1", (2, 3, 5), (4, 3, 1), {}, True),
    ("1d-tiny-input", (1, 1, 1), (1, 1, 3), {"padding": 1}, True),
    ("2d-nonsquare", (2, 2, 4, 7), (3, 2, 2, 3), {"stride": (1, 2), "padding": (1, 0)}, True),
    ("2d-stride-remainders", (1, 2, 7, 8), (2, 2, 3, 2), {"stride": (2, 3)}, False),
    ("2d-dilation-per-axis", (1, 1, 8, 7), (2, 1, 3, 2), {"dilation": (2, 3), "padding": (1, 2)}, True),
    ("2d-same-even", (2, 1, 5, 6), (2, 1, 2, 4), {"padding": "same"}, False),
    ("2d-same-reflect-even", (1, 2, 5, 4), (1, 2, 2, 4), {"padding": "same", "padding_mode": "reflect"}, False),
    ("2d-groups", (2, 4, 5, 5), (4, 2, 3, 3), {"groups": 2, "stride": 2, "padding": 1}, True),
    ("2d-depthwise", (2, 3, 6, 5), (3, 1, 3, 3), {"groups": 3, "stride": 2, "padding": 1}, True),
    ("2d-replicate", (1, 1, 3, 4), (1, 1, 3, 3), {"padding": 2, "padding_mode": "replicate"}, False),
    ("2d-circular-one-axis", (1, 1, 2, 5), (1, 1, 1, 3), {"padding": (0, 1), "padding_mode": "circular"}, False),
    ("2d-reflect-pairs", (1, 2, 5, 6), (2, 2, 3, 3), {"padding": ((2, 0), (1, 3)), "padding_mode": "reflect"}, True),
    ("2d-explicit-wider-than-kernel", (1, 1, 3, 4), (1, 1, 2, 2), {"padding": ((2, 0), (1, 3))}, True),
    ("2d-unbatched-reflect", (2, 5, 5), (3, 2, 3, 3), {"padding": 1, "padding_mode": "reflect"}, False),
    ("2d-kernel-equals-input", (2, 2, 3, 4), (3, 2, 3, 4), {}, True),
    ("3d-noncubic", (1, 2, 3, 4, 5), (2, 2, 1, 2, 3), {"stride": (1, 1, 2), "padding": (0, 1, 1)}, False),
    ("3d-remainders", (1, 1, 5, 6, 7), (2, 1, 2, 2, 3), {"stride": (2, 2, 3), "padding": (0, 1, 0)}, True),
    ("3d-dilation", (1, 1, 5, 4, 6), (1, 1, 2, 2, 2), {"dilation": (2, 1, 3), "stride": (1, 2, 1), "padding": (1, 0, 1)}, True),
    ("3d-groups", (2, 4, 3, 4, 4), (2, 2, 2, 1, 2), {"groups": 2, "stride": (2, 1, 2)}, False),
    ("3d-circular-even", (1, 1, 3, 4, 3), (1, 1, 2, 1, 2), {"padding": 1, "padding_mode": "circular"}, False),
    ("3d-replicate-same", (1, 2, 3, 3, 4), (1, 2, 2, 3, 2), {"padding": "same", "padding_mode": "replicate"}, True),
]

ARG_ORDER = ("stride", "padding", "dilation", "groups", "padding_mode")


def _positional(kwargs):
    defaults = {"stride": 1, "padding": 0, "dilation": 1, "groups": 1, "padding_mode": "zeros"}
    return tuple(kwargs.get(name, defaults[name]) for name in ARG_ORDER)


def _arrays(input_shape, weight_shape, kwargs, has_bias, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(input_shape)
    w = rng.standard_normal(weight_shape)
    b = rng.standard_normal(weight_shape[0]) if has_bias else None
    geometry = ConvGeometry.create(input_shape, weight_shape, *_positional(kwargs))
    go = rng.standard_normal(geometry.output_shape)
    return x, w, b, go


@pytest.fixture(scope="module")
def reference_results():
    """Reference results for every configuration, computed once (the loops are slow)."""
    results = {}
    for name, input_shape, weight_shape, kwargs, has_bias in CONFIGS:
        x, w, b, go = _arrays(input_shape, weight_shape, kwargs, has_bias)
        args = _positional(kwargs)
        results[name] = (
            reference.conv(x, w, b, *args),
            reference.conv_input_grad(x.shape, w, go, *args),
            reference.conv_weight_grad(x, w.shape, go, *args),
        )
    return results


@pytest.mark.parametrize("name, input_shape, weight_shape, kwargs, has_bias", CONFIGS, ids=[c[0] for c in CONFIGS])
def test_fast_matches_reference_float64(name, input_shape, weight_shape, kwargs, has_bias, reference_results):
    x, w, b, go = _arrays(input_shape, weight_shape, kwargs, has_bias)
    args = _positional(kwargs)
    expected_out, expected_gx, expected_gw = reference_results[name]

    assert_close(convgrad.conv(x, w, b, **kwargs), expected_out, rtol=1e-12, atol=1e-12, context=f"{name} output")
    assert_close(convgrad.conv_input_grad(x.shape, w, go, *args), expected_gx, rtol=1e-12, atol=1e-12,
                 context=f"{name} input grad")
    assert_close(convgrad.conv_weight_grad(x, w.shape, go, *args), expected_gw, rtol=1e-12, atol=1e-12,
                 context=f"{name} weight grad")


@pytest.mark.parametrize("name, input_shape, weight_shape, kwargs, has_bias", CONFIGS, ids=[c[0] for c in CONFIGS])
def test_fast_and_reference_match_torch(name, input_shape, weight_shape, kwargs, has_bias, reference_results):
    x, w, b, go = _arrays(input_shape, weight_shape, kwargs, has_bias)
    out, gx, gw, gb = torch_conv_with_grads(x, w, b, go, *_positional(kwargs))
    fast_gx, fast_gw, fast_gb = convgrad.conv_backward(x, w, go, *_positional(kwargs), bias=has_bias)

    assert_close(convgrad.conv(x, w, b, **kwargs), out, rtol=1e-11, atol=1e-12, context=f"{name} output")
    assert_close(fast_gx, gx, rtol=1e-11, atol=1e-12, context=f"{name} input grad")
    assert_close(fast_gw, gw, rtol=1e-11, atol=1e-12, context=f"{name} weight grad")
    if has_bias:
        assert_close(fast_gb, gb, rtol=1e-11, atol=1e-12, context=f"{name} bias grad")
    for actual, expected, what in zip(reference_results[name], (out, gx, gw), ("output", "input grad", "weight grad")):
        assert_close(actual, expected, rtol=1e-11, atol=1e-12, context=f"{name} reference {what}")


@pytest.mark.parametrize("name, input_shape, weight_shape, kwargs, has_bias", CONFIGS, ids=[c[0] for c in CONFIGS])
def test_float32_matches_float64_within_rounding(name, input_shape, weight_shape, kwargs, has_bias):
    x, w, b, go = _arrays(input_shape, weight_shape, kwargs, has_bias)
    args = _positional(kwargs)
    f32 = [a.astype(np.float32) for a in (x, w, go)]
    b32 = None if b is None else b.astype(np.float32)

    out = convgrad.conv(f32[0], f32[1], b32, **kwargs)
    gx = convgrad.conv_input_grad(x.shape, f32[1], f32[2], *args)
    gw = convgrad.conv_weight_grad(f32[0], w.shape, f32[2], *args)
    for result in (out, gx, gw):
        assert result.dtype == np.float32
    assert_close(out, convgrad.conv(x, w, b, **kwargs), rtol=1e-4, atol=1e-4, context=f"{name} float32 output")
    assert_close(gx, convgrad.conv_input_grad(x.shape, w, go, *args), rtol=1e-4, atol=1e-4, context=f"{name} gx")
    assert_close(gw, convgrad.conv_weight_grad(x, w.shape, go, *args), rtol=1e-4, atol=1e-4, context=f"{name} gw")


# -- transposed convolution ----------------------------------------------------

# (id, input shape, weight shape (C_in, C_out/groups, *K), kwargs, bias)
TRANSPOSE_CONFIGS = [
    ("1d-stride-output-padding", (1, 1, 4), (1, 1, 3), {"stride": 2, "padding": 1, "output_padding": 1}, True),
    ("1d-groups-dilation", (2, 4, 5), (4, 3, 3), {"stride": 3, "groups": 2, "dilation": 2, "output_padding": 1}, False),
    ("1d-output-padding-below-dilation", (1, 2, 4), (2, 1, 3), {"stride": 1, "dilation": 3, "output_padding": 2}, True),
    ("2d-nonsquare", (2, 2, 3, 4), (2, 3, 2, 3), {"stride": (2, 1), "padding": (1, 0), "output_padding": (1, 0)}, True),
    ("2d-unbatched", (2, 3, 3), (2, 1, 3, 3), {"stride": 2, "padding": 1}, False),
    ("3d-groups", (1, 4, 2, 2, 2), (4, 1, 2, 2, 3), {"stride": 2, "padding": (0, 1, 0), "output_padding": (1, 0, 1), "groups": 2}, True),
]


@pytest.mark.parametrize("name, input_shape, weight_shape, kwargs, has_bias", TRANSPOSE_CONFIGS,
                         ids=[c[0] for c in TRANSPOSE_CONFIGS])
def test_conv_transpose_matches_torch_and_reference(name, input_shape, weight_shape, kwargs, has_bias):
    rng = np.random.default_rng(5)
    x = rng.standard_normal(input_shape)
    w = rng.standard_normal(weight_shape)
    b = rng.standard_normal(weight_shape[1] * kwargs.get("groups", 1)) if has_bias else None
    out_shape = convgrad.conv_transpose(x, w, b, **kwargs).shape
    go = rng.standard_normal(out_shape)
    full = {"stride": 1, "padding": 0, "output_padding": 0, "groups": 1, "dilation": 1, **kwargs}
    expected_out, expected_gx, expected_gw = torch_conv_transpose_with_grads(
        x if len(input_shape) == len(weight_shape) else x[None], w, b,
        go if len(input_shape) == len(weight_shape) else go[None],
        full["stride"], full["padding"], full["output_padding"], full["groups"], full["dilation"],
    )
    if len(input_shape) != len(weight_shape):
        expected_out, expected_gx = expected_out[0], expected_gx[0]

    conv_kwargs = {k: full[k] for k in ("stride", "padding", "dilation", "groups")}
    assert_close(convgrad.conv_transpose(x, w, b, **kwargs), expected_out, rtol=1e-11, atol=1e-12, context=name)
    assert_close(reference.conv_transpose(x, w, b, **kwargs), expected_out, rtol=1e-11, atol=1e-12,
                 context=f"{name} reference")
    # Its gradients are the adjoint identities.
    assert_close(convgrad.conv(go, w, None, **conv_kwargs)[..., *[slice(0, n) for n in input_shape[-(w.ndim - 2):]]],
                 expected_gx, rtol=1e-11, atol=1e-12, context=f"{name} input grad")
    assert_close(
        convgrad.conv_weight_grad(go, w.shape, _grow_to(x, go, w, conv_kwargs), *conv_kwargs.values(), "zeros"),
        expected_gw, rtol=1e-11, atol=1e-12, context=f"{name} weight grad",
    )


def _grow_to(x, go, w, conv_kwargs):
    """Zero-pad x at the end up to the forward convolution's output size for grad_output ``go``."""
    geometry = ConvGeometry.create(go.shape, w.shape, **conv_kwargs)
    extra = [(0, 0)] * (x.ndim - geometry.ndim) + [(0, o - n) for o, n in zip(geometry.output_size, x.shape[-geometry.ndim:])]
    return np.pad(x, extra)


def test_conv_transpose_equals_input_grad():
    rng = np.random.default_rng(2)
    x_shape = (2, 4, 9, 8)
    w = rng.standard_normal((6, 2, 3, 2))
    go = rng.standard_normal(ConvGeometry.create(x_shape, w.shape, stride=2, padding=1, groups=2).output_shape)
    via_grad = convgrad.conv_input_grad(x_shape, w, go, stride=2, padding=1, groups=2)
    via_transpose = convgrad.conv_transpose(go, w, stride=2, padding=1, groups=2)
    np.testing.assert_array_equal(via_grad, via_transpose)


def test_zero_dimensional_conv_equals_matmul():
    """A 1x1 kernel with stride 1 is a matrix product over channels at every position."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((3, 5, 4, 6))
    w = rng.standard_normal((7, 5, 1, 1))
    expected = np.einsum("oc,nchw->nohw", w[:, :, 0, 0], x)
    assert_close(convgrad.conv(x, w), expected, rtol=1e-13, atol=1e-13, context="pointwise")


def test_nd_with_unit_axis_equals_lower_rank():
    """A 3-D convolution with a length-1 axis and kernel 1 there equals the 2-D one."""
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 3, 6, 7))
    w = rng.standard_normal((4, 3, 3, 2))
    two_d = convgrad.conv(x, w, stride=(2, 1), padding=(1, 0))
    three_d = convgrad.conv(x[:, :, None], w[:, :, None], stride=(1, 2, 1), padding=(0, 1, 0))
    assert_close(three_d[:, :, 0], two_d, rtol=1e-13, atol=1e-13, context="3-D vs 2-D")


def test_inputs_are_not_modified():
    rng = np.random.default_rng(6)
    x = rng.standard_normal((2, 2, 6))
    w = rng.standard_normal((3, 2, 3))
    go = rng.standard_normal((2, 3, 6))
    copies = [a.copy() for a in (x, w, go)]
    convgrad.conv(x, w, padding=1, padding_mode="reflect")
    convgrad.conv_input_grad(x.shape, w, go, padding=1, padding_mode="reflect")
    convgrad.conv_weight_grad(x, w.shape, go, padding=1, padding_mode="circular")
    for original, copy in zip((x, w, go), copies):
        np.testing.assert_array_equal(original, copy)
