"""Padding as a linear map: values against PyTorch, and the adjoint identity."""

import numpy as np
import pytest
import torch

from convgrad.padding import pad, pad_adjoint
from oracles import TORCH_PAD_MODES

CASES = [
    ("zeros", (2, 3, 5), ((2, 1),)),
    ("reflect", (2, 3, 5), ((4, 2),)),
    ("replicate", (1, 2, 3), ((5, 6),)),
    ("circular", (1, 2, 4), ((4, 1),)),
    ("zeros", (1, 1, 3, 4), ((0, 2), (3, 1))),
    ("reflect", (2, 1, 4, 5), ((3, 1), (2, 4))),
    ("replicate", (1, 2, 2, 3), ((2, 2), (0, 3))),
    ("circular", (1, 1, 3, 4), ((1, 3), (4, 0))),
    ("reflect", (1, 1, 3, 4, 5), ((1, 2), (0, 3), (4, 1))),
    ("circular", (1, 2, 3, 2, 4), ((3, 0), (1, 2), (2, 2))),
    ("replicate", (1, 1, 2, 2, 2), ((1, 1), (2, 0), (0, 3))),
]


@pytest.mark.parametrize("mode, shape, padding", CASES, ids=[f"{c[0]}-{len(c[2])}d-{i}" for i, c in enumerate(CASES)])
def test_pad_matches_torch(mode, shape, padding):
    x = np.random.default_rng(0).standard_normal(shape)
    flat = [p for pair in reversed(padding) for p in pair]
    expected = torch.nn.functional.pad(torch.tensor(x), flat, mode=TORCH_PAD_MODES[mode]).numpy()
    np.testing.assert_array_equal(pad(x, padding, mode), expected)


@pytest.mark.parametrize("mode, shape, padding", CASES, ids=[f"{c[0]}-{len(c[2])}d-{i}" for i, c in enumerate(CASES)])
def test_adjoint_identity(mode, shape, padding):
    """<P x, y> == <x, P^T y> for random x and y: pad_adjoint is the transpose of pad."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal(shape)
    padded = pad(x, padding, mode)
    y = rng.standard_normal(padded.shape)
    np.testing.assert_allclose(np.sum(padded * y), np.sum(x * pad_adjoint(y, padding, mode)), rtol=1e-12)


@pytest.mark.parametrize("mode, shape, padding", CASES[:4], ids=[c[0] for c in CASES[:4]])
def test_adjoint_matches_torch_autograd(mode, shape, padding):
    rng = np.random.default_rng(2)
    x = torch.tensor(rng.standard_normal(shape), requires_grad=True)
    flat = [p for pair in reversed(padding) for p in pair]
    out = torch.nn.functional.pad(x, flat, mode=TORCH_PAD_MODES[mode])
    grad = rng.standard_normal(tuple(out.shape))
    out.backward(torch.tensor(grad))
    np.testing.assert_allclose(pad_adjoint(grad, padding, mode), x.grad.numpy(), rtol=1e-13)


def test_reflect_gradient_returns_to_interior():
    grad = np.zeros(9)
    grad[0] = 1.0  # padded coordinate -2 mirrors input element 2
    np.testing.assert_array_equal(pad_adjoint(grad, ((2, 2),), "reflect"), [0, 0, 1, 0, 0])


def test_replicate_gradient_piles_on_edge():
    grad = np.ones(3 + 4 + 2)
    np.testing.assert_array_equal(pad_adjoint(grad, ((3, 2),), "replicate"), [4, 1, 1, 3])


def test_circular_gradient_wraps_to_opposite_edge():
    grad = np.zeros(6)
    grad[-1] = 1.0  # coordinate n after the end wraps to element 0
    np.testing.assert_array_equal(pad_adjoint(grad, ((1, 1),), "circular"), [1, 0, 0, 0])


def test_pad_returns_new_array():
    x = np.ones((1, 1, 3))
    for mode in ("zeros", "reflect"):
        padded = pad(x, ((0, 0),), mode)
        padded[...] = 5
        assert x[0, 0, 0] == 1
