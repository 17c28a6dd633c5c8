"""PyTorch parity checks shared by the layer tests.

Finite-difference checks use ``convgrad.gradcheck.gradcheck_module``.
"""

from __future__ import annotations

import numpy as np
import torch

# The oracle's ops are tiny, and one thread avoids thread-pool overhead that
# made some of them take 0.1 s per call on a 2-core machine.
torch.set_num_threads(1)

TOLERANCES = {
    np.dtype(np.float64): 1e-10,
    np.dtype(np.float32): 1e-5,
}


def assert_close(actual, expected, dtype, what: str) -> None:
    """Compare with a tolerance relative to the largest magnitude of ``expected``.

    The failure message names the quantity, the worst index and both values.
    """
    actual = np.asarray(actual)
    expected = np.asarray(expected)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != expected {expected.shape}"
    tolerance = TOLERANCES[np.dtype(dtype)] * max(1.0, float(np.max(np.abs(expected), initial=0.0)))
    error = np.abs(actual.astype(np.float64) - expected.astype(np.float64))
    if error.size and error.max() > tolerance:
        worst = np.unravel_index(np.argmax(error), error.shape)
        raise AssertionError(
            f"{what}: max error {error.max():.3e} > {tolerance:.1e} at index {worst}: "
            f"got {actual[worst]!r}, expected {expected[worst]!r}"
        )


def copy_state_to_torch(layer, torch_layer) -> None:
    """Copy every parameter and buffer of ``layer`` into the same-named tensor of ``torch_layer``."""
    torch_state = torch_layer.state_dict()
    ours = layer.state_dict()
    missing = sorted(set(ours) - set(torch_state))
    assert not missing, f"no PyTorch counterpart for {missing}"
    with torch.no_grad():
        for name, value in ours.items():
            torch_state[name].copy_(torch.from_numpy(np.array(value)))


def check_against_torch(layer, torch_layer, x, rng, dtype=None, what: str = "") -> np.ndarray:
    """Run forward and backward on both layers and compare every result.

    Parameters are copied from ``layer`` into ``torch_layer`` first. A random
    upstream gradient (never all ones, which hides index errors) drives both
    backward passes. Compared: output, input gradient, and the gradient of
    every parameter, by name. Returns our output.
    """
    dtype = np.dtype(x.dtype if dtype is None else dtype)
    copy_state_to_torch(layer, torch_layer)

    output = layer.forward(x)
    x_torch = torch.from_numpy(x.copy()).requires_grad_(True)
    output_torch = torch_layer(x_torch)
    assert_close(output, output_torch.detach().numpy(), dtype, f"{what} output")

    grad_output = rng.standard_normal(output.shape).astype(output.dtype)
    grad_input = layer.backward(grad_output)
    output_torch.backward(torch.from_numpy(grad_output.copy()))
    assert_close(grad_input, x_torch.grad.numpy(), dtype, f"{what} input gradient")

    torch_params = dict(torch_layer.named_parameters())
    ours = dict(layer.named_parameters())
    assert sorted(ours) == sorted(torch_params), f"{what}: parameters {sorted(ours)} != {sorted(torch_params)}"
    for name, param in ours.items():
        assert_close(param.grad, torch_params[name].grad.numpy(), dtype, f"{what} gradient of {name}")
    return output
