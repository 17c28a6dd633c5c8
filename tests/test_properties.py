"""Property-based tests: random valid configurations agree with the reference,
random invalid ones raise the documented error class."""

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import convgrad
from convgrad import reference
from convgrad.geometry import ConvGeometry

MODES = ["zeros", "reflect", "replicate", "circular"]


@st.composite
def valid_configs(draw):
    ndim = draw(st.integers(1, 3))
    max_len = {1: 9, 2: 6, 3: 4}[ndim]
    groups = draw(st.integers(1, 3))
    in_channels = groups * draw(st.integers(1, 2))
    out_channels = groups * draw(st.integers(1, 2))
    batch = draw(st.integers(1, 2))
    batched = draw(st.booleans()) or batch > 1
    kernel = tuple(draw(st.integers(1, 3)) for _ in range(ndim))
    dilation = tuple(draw(st.integers(1, 2)) for _ in range(ndim))
    mode = draw(st.sampled_from(MODES))
    padding_form = draw(st.sampled_from(["int", "pairs", "same", "valid", "full"]))
    stride = tuple(draw(st.integers(1, 3)) for _ in range(ndim)) if padding_form != "same" else (1,) * ndim
    size = tuple(draw(st.integers(2, max_len)) for _ in range(ndim))
    limit = min(size) - 1 if mode == "reflect" else min(size)
    if padding_form == "int":
        padding = draw(st.integers(0, min(2, limit)))
    elif padding_form == "pairs":
        padding = tuple((draw(st.integers(0, min(2, limit))), draw(st.integers(0, min(2, limit)))) for _ in range(ndim))
    else:
        padding = padding_form
    input_shape = ((batch,) if batched else ()) + (in_channels, *size)
    weight_shape = (out_channels, in_channels // groups, *kernel)
    kwargs = dict(stride=stride, padding=padding, dilation=dilation, groups=groups, padding_mode=mode)
    try:
        geometry = ConvGeometry.create(input_shape, weight_shape, **kwargs)
    except ValueError:
        # Kernel longer than the padded input, or padding too wide for the mode:
        # the invalid-configuration test covers those.
        assume(False)
    return input_shape, weight_shape, kwargs, geometry, draw(st.integers(0, 2**31 - 1))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow])
@given(valid_configs())
def test_random_valid_configuration_matches_reference(config):
    input_shape, weight_shape, kwargs, geometry, seed = config
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(input_shape)
    w = rng.standard_normal(weight_shape)
    go = rng.standard_normal(geometry.output_shape)
    args = tuple(kwargs.values())

    np.testing.assert_allclose(convgrad.conv(x, w, **kwargs), reference.conv(x, w, **kwargs), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(convgrad.conv_input_grad(x.shape, w, go, *args),
                               reference.conv_input_grad(x.shape, w, go, *args), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(convgrad.conv_weight_grad(x, w.shape, go, *args),
                               reference.conv_weight_grad(x, w.shape, go, *args), rtol=1e-12, atol=1e-12)


@st.composite
def invalid_configs(draw):
    """Start from a valid 2-D configuration and break exactly one rule."""
    x_shape, w_shape = [2, 4, 6, 6], [4, 2, 3, 3]
    kwargs = {"stride": 1, "padding": 1, "dilation": 1, "groups": 2, "padding_mode": "zeros"}
    fault = draw(st.sampled_from([
        "stride_nonpositive", "stride_float", "dilation_nonpositive", "padding_negative", "groups_not_dividing",
        "channels", "kernel_too_large", "ndim", "same_strided", "reflect_too_wide", "mode_unknown", "padding_length",
    ]))
    if fault == "stride_nonpositive":
        kwargs["stride"] = draw(st.integers(-3, 0))
        error = ValueError
    elif fault == "stride_float":
        kwargs["stride"] = draw(st.floats(0.5, 3.5).filter(lambda v: v != int(v)))
        error = TypeError
    elif fault == "dilation_nonpositive":
        kwargs["dilation"] = (1, draw(st.integers(-2, 0)))
        error = ValueError
    elif fault == "padding_negative":
        kwargs["padding"] = ((draw(st.integers(-3, -1)), 0), (0, 0))
        error = ValueError
    elif fault == "groups_not_dividing":
        kwargs["groups"] = draw(st.sampled_from([3, 5, 7]))
        error = ValueError
    elif fault == "channels":
        x_shape[1] = draw(st.sampled_from([2, 6, 8]))
        error = ValueError
    elif fault == "kernel_too_large":
        kwargs["padding"] = 0
        x_shape[3] = draw(st.integers(1, 2))
        error = ValueError
    elif fault == "ndim":
        x_shape = x_shape[: draw(st.integers(1, 2))]
        error = ValueError
    elif fault == "same_strided":
        kwargs.update(padding="same", stride=draw(st.integers(2, 4)))
        error = ValueError
    elif fault == "reflect_too_wide":
        kwargs.update(padding=draw(st.integers(6, 9)), padding_mode="reflect")
        error = ValueError
    elif fault == "mode_unknown":
        kwargs["padding_mode"] = draw(st.sampled_from(["constant", "mirror", "wrap", ""]))
        error = ValueError
    else:
        kwargs["padding"] = (1, 1, 1)
        error = ValueError
    return tuple(x_shape), tuple(w_shape), kwargs, error, fault


@settings(max_examples=80, deadline=None)
@given(invalid_configs())
def test_random_invalid_configuration_raises(config):
    x_shape, w_shape, kwargs, error, fault = config
    x, w = np.zeros(x_shape), np.zeros(w_shape)
    go = np.zeros((2, 4, 6, 6))
    args = tuple(kwargs.values())
    calls = {
        "conv": lambda: convgrad.conv(x, w, **kwargs),
        "input_grad": lambda: convgrad.conv_input_grad(x_shape, w, go, *args),
        "weight_grad": lambda: convgrad.conv_weight_grad(x, w_shape, go, *args),
        "reference": lambda: reference.conv(x, w, **kwargs),
    }
    for name, call in calls.items():
        with pytest.raises(error) as info:
            call()
        assert str(info.value), f"{fault} via {name}: empty message"
