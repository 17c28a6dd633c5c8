"""ConvGeometry: output sizes, padding resolution and every validation rule."""

import numpy as np
import pytest
import torch

from convgrad import conv, conv_input_grad, conv_transpose, conv_weight_grad
from convgrad.geometry import ConvGeometry, normalize_padding, transposed_geometry

torch.set_num_threads(1)


@pytest.mark.parametrize(
    "length, kernel, stride, dilation, pad, expected",
    [
        (5, 3, 1, 1, (1, 1), 5),
        (8, 3, 2, 1, (0, 0), 3),  # (8 - 3) % 2 == 1: the last element is never read
        (9, 4, 3, 1, (0, 0), 2),
        (7, 3, 1, 2, (0, 0), 3),
        (7, 3, 3, 2, (2, 1), 2),
        (1, 1, 1, 1, (0, 0), 1),
        (3, 5, 1, 1, (1, 1), 1),
    ],
)
def test_output_size_floor_formula(length, kernel, stride, dilation, pad, expected):
    geometry = ConvGeometry.create((2, 3, length), (4, 3, kernel), stride, (pad,), dilation)
    assert geometry.output_size == (expected,)
    assert geometry.output_shape == (2, 4, expected)


def test_output_shape_matches_torch_on_nonsquare_3d():
    x = torch.zeros(1, 2, 5, 7, 9, dtype=torch.float64)
    w = torch.zeros(4, 1, 2, 3, 4, dtype=torch.float64)
    expected = torch.nn.functional.conv3d(x, w, stride=(1, 2, 3), padding=(0, 1, 2), dilation=(2, 1, 1), groups=2)
    geometry = ConvGeometry.create(x.shape, w.shape, (1, 2, 3), (0, 1, 2), (2, 1, 1), 2)
    assert geometry.output_shape == tuple(expected.shape)


@pytest.mark.parametrize("kernel, dilation", [(3, 1), (4, 1), (2, 3), (5, 2), (1, 1)])
def test_same_padding_puts_extra_element_after(kernel, dilation):
    (lo, hi), = normalize_padding("same", 1, (kernel,), (dilation,), (1,))
    total = dilation * (kernel - 1)
    assert lo + hi == total
    assert lo == total // 2
    x = torch.arange(10, dtype=torch.float64).reshape(1, 1, 10)
    w = torch.rand(1, 1, kernel, dtype=torch.float64)
    expected = torch.nn.functional.conv1d(x, w, padding="same", dilation=dilation).numpy()
    np.testing.assert_allclose(conv(x.numpy(), w.numpy(), padding="same", dilation=dilation), expected, rtol=1e-13)


def test_padding_forms_resolve_per_axis():
    assert normalize_padding(2, 2, (3, 3), (1, 1), (1, 1)) == ((2, 2), (2, 2))
    assert normalize_padding((1, 0), 2, (3, 3), (1, 1), (1, 1)) == ((1, 1), (0, 0))
    assert normalize_padding(((2, 0), (1, 3)), 2, (3, 3), (1, 1), (1, 1)) == ((2, 0), (1, 3))
    assert normalize_padding("valid", 2, (3, 3), (1, 1), (1, 1)) == ((0, 0), (0, 0))
    assert normalize_padding("full", 2, (3, 2), (2, 1), (1, 1)) == ((4, 4), (1, 1))


def test_unbatched_input_keeps_no_batch_axis():
    geometry = ConvGeometry.create((3, 8, 8), (5, 3, 3, 3), padding=1)
    assert not geometry.batched
    assert geometry.output_shape == (5, 8, 8)


def test_transposed_output_size_matches_torch():
    x = torch.zeros(2, 4, 5, 3, dtype=torch.float64)
    w = torch.zeros(4, 3, 3, 2, dtype=torch.float64)
    expected = torch.nn.functional.conv_transpose2d(
        x, w, stride=(2, 3), padding=(1, 0), output_padding=(1, 2), groups=2, dilation=(1, 2)
    )
    geometry = transposed_geometry(x.shape, w.shape, (2, 3), (1, 0), (1, 2), 2, (1, 2))
    assert geometry.input_shape == tuple(expected.shape)


# -- validation: each rule raises the documented class and names the argument --


def _conv_call(**kwargs):
    x = kwargs.pop("x", np.zeros((1, 4, 6, 6)))
    w = kwargs.pop("w", np.zeros((4, 2, 3, 3)))
    kwargs.setdefault("groups", 2)
    return lambda: conv(x, w, **kwargs)


INVALID = [
    ("stride zero", _conv_call(stride=0), ValueError, "stride"),
    ("stride negative", _conv_call(stride=(1, -1)), ValueError, "stride"),
    ("stride float", _conv_call(stride=1.5), TypeError, "stride"),
    ("stride float integral", _conv_call(stride=2.0), TypeError, "stride"),
    ("stride bool", _conv_call(stride=True), TypeError, "stride"),
    ("stride wrong length", _conv_call(stride=(1, 1, 1)), ValueError, "stride"),
    ("dilation zero", _conv_call(dilation=0), ValueError, "dilation"),
    ("padding negative", _conv_call(padding=-1), ValueError, "padding"),
    ("padding string unknown", _conv_call(padding="half"), ValueError, "padding"),
    ("padding float", _conv_call(padding=0.5), TypeError, "padding"),
    ("padding pairs count", _conv_call(padding=((1, 1),)), ValueError, "padding"),
    ("padding mixed pairs", _conv_call(padding=((1, 1), 2)), ValueError, "padding"),
    ("same with stride", _conv_call(padding="same", stride=2), ValueError, "same"),
    ("padding mode unknown", _conv_call(padding=1, padding_mode="mirror"), ValueError, "padding_mode"),
    ("reflect too wide", _conv_call(padding=6, padding_mode="reflect"), ValueError, "reflect"),
    ("circular too wide", _conv_call(padding=7, padding_mode="circular"), ValueError, "circular"),
    ("groups zero", _conv_call(groups=0), ValueError, "groups"),
    ("groups not dividing", _conv_call(groups=3), ValueError, "groups"),
    ("groups float", _conv_call(groups=2.0), TypeError, "groups"),
    ("channel mismatch", _conv_call(x=np.zeros((1, 6, 6, 6))), ValueError, "channels"),
    ("kernel too large", _conv_call(x=np.zeros((1, 4, 2, 6))), ValueError, "kernel"),
    ("dilated kernel too large", _conv_call(dilation=3), ValueError, "kernel"),
    ("input ndim", _conv_call(x=np.zeros((4, 6))), ValueError, "dimensions"),
    ("weight ndim", _conv_call(w=np.zeros((4, 2))), ValueError, "weight"),
    ("zero spatial size", _conv_call(x=np.zeros((1, 4, 0, 6))), ValueError, "spatial"),
    ("complex input", _conv_call(x=np.zeros((1, 4, 6, 6), dtype=complex)), TypeError, "input"),
    ("string input", _conv_call(x=np.array([["a"]])), TypeError, "input"),
    ("bias shape", _conv_call(bias=np.zeros(3)), ValueError, "bias"),
]


@pytest.mark.parametrize("name, call, error, word", INVALID, ids=[case[0] for case in INVALID])
def test_invalid_conv_arguments_raise(name, call, error, word):
    with pytest.raises(error) as info:
        call()
    assert word in str(info.value)
    assert not isinstance(info.value, AssertionError)


def test_gradient_functions_check_grad_output_shape():
    x = np.zeros((1, 2, 5, 5))
    w = np.zeros((3, 2, 3, 3))
    with pytest.raises(ValueError, match="grad_output"):
        conv_input_grad(x.shape, w, np.zeros((1, 3, 4, 4)))
    with pytest.raises(ValueError, match="grad_output"):
        conv_weight_grad(x, w.shape, np.zeros((1, 2, 3, 3)))
    with pytest.raises(TypeError, match="input_shape"):
        conv_input_grad((1, 2, 5.0, 5), w, np.zeros((1, 3, 3, 3)))


def test_transpose_output_padding_rule():
    x = np.zeros((1, 2, 4))
    w = np.zeros((2, 1, 3))
    with pytest.raises(ValueError, match="output_padding"):
        conv_transpose(x, w, stride=2, output_padding=2)
    with pytest.raises(ValueError, match="padding"):
        conv_transpose(x, w, padding="same")
    with pytest.raises(ValueError, match="channels"):
        conv_transpose(np.zeros((1, 3, 4)), w)
