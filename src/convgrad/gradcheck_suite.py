"""Finite-difference checks of every core operator and layer, as one table.

``convgrad gradcheck`` prints the results of :func:`run_all`. Each check
builds small float64 inputs from one seeded generator, compares the analytic
gradients with central differences through :func:`convgrad.gradcheck` or
:func:`convgrad.gradcheck_module`, and records the largest absolute and
relative error over all arguments and parameters.

The configurations reach the corners that a plain check would miss: strides
that leave a remainder, dilation, groups, even kernels, per-side and 'same'
padding and the non-zero padding modes. ``conv_input_grad`` and
``conv_weight_grad`` are checked as the backward pass of ``conv``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np


@dataclass
class CheckResult:
    """Outcome of one gradient check.

    Attributes
    ----------
    name : str
        What was checked, with its configuration.
    max_abs_error, max_rel_error : float
        Largest errors over every checked argument and parameter.
    passed : bool
        Whether every element was within the tolerance.
    detail : str
        The failure description for a failed check, otherwise empty.
    """

    name: str
    max_abs_error: float
    max_rel_error: float
    passed: bool
    detail: str = ""


def _result(name: str, report) -> CheckResult:
    detail = "; ".join(argument.describe() for argument in report.arguments if not argument.passed)
    return CheckResult(name, report.max_abs_error, report.max_rel_error, report.passed, detail)


# -- core operators -------------------------------------------------------------------


def _conv_check(name, rng, input_shape, weight_shape, **options) -> CheckResult:
    import convgrad

    x = rng.standard_normal(input_shape)
    weight = rng.standard_normal(weight_shape)
    bias = rng.standard_normal(weight_shape[0])

    def forward(x, weight, bias):
        return convgrad.conv(x, weight, bias, **options)

    def backward(grad_output, x, weight, bias):
        return convgrad.conv_backward(x, weight, grad_output, **options, bias=True)

    report = convgrad.gradcheck(
        forward, (x, weight, bias), backward, names=("input", "weight", "bias"), seed=0, raise_exception=False
    )
    return _result(name, report)


def _conv_transpose_check(name, rng, input_shape, weight_shape, output_padding=0, **options) -> CheckResult:
    """Check conv_transpose through its adjoint: it is the input gradient of conv.

    With ``y = conv_transpose(x, w)`` and upstream gradient ``g``,
    ``<g, y> = <conv(g, w), x>``, so ``dL/dx = conv(g, w)`` and
    ``dL/dw = conv_weight_grad(g, w.shape, x)`` with the same stride,
    padding, dilation and groups.
    """
    import convgrad

    x = rng.standard_normal(input_shape)
    weight = rng.standard_normal(weight_shape)
    groups = options.get("groups", 1)
    bias = rng.standard_normal(weight_shape[1] * groups)

    def forward(x, weight, bias):
        return convgrad.conv_transpose(x, weight, bias, output_padding=output_padding, **options)

    def backward(grad_output, x, weight, bias):
        grad_input = convgrad.conv(grad_output, weight, **options)
        grad_weight = convgrad.conv_weight_grad(grad_output, weight.shape, x, **options)
        return grad_input, grad_weight, convgrad.conv_bias_grad(grad_output)

    report = convgrad.gradcheck(
        forward, (x, weight, bias), backward, names=("input", "weight", "bias"), seed=0, raise_exception=False
    )
    return _result(name, report)


def operator_checks() -> list[tuple[str, Callable[[np.random.Generator], CheckResult]]]:
    """Return (name, check) pairs for the core convolution operators."""
    cases = [
        ("conv 1-D stride 2 padding 1", lambda r, n: _conv_check(n, r, (2, 2, 9), (3, 2, 3), stride=2, padding=1)),
        (
            "conv 1-D dilation 2 groups 2 even kernel",
            lambda r, n: _conv_check(n, r, (2, 4, 10), (4, 2, 4), dilation=2, groups=2, padding=((2, 1),)),
        ),
        ("conv 1-D 'same' reflect", lambda r, n: _conv_check(n, r, (2, 2, 7), (3, 2, 3), padding="same", padding_mode="reflect")),
        (
            "conv 1-D circular, unbatched",
            lambda r, n: _conv_check(n, r, (2, 8), (2, 2, 3), padding=2, padding_mode="circular"),
        ),
        (
            "conv 2-D stride (2, 1) replicate",
            lambda r, n: _conv_check(n, r, (2, 2, 5, 6), (3, 2, 3, 2), stride=(2, 1), padding=1, padding_mode="replicate"),
        ),
        ("conv 2-D 'full' groups 2", lambda r, n: _conv_check(n, r, (1, 4, 4, 5), (4, 2, 2, 3), padding="full", groups=2)),
        ("conv 3-D stride 2", lambda r, n: _conv_check(n, r, (1, 2, 4, 5, 4), (2, 2, 2, 3, 2), stride=2, padding=1)),
        (
            "conv_transpose 1-D stride 3 output_padding 1",
            lambda r, n: _conv_transpose_check(n, r, (2, 3, 4), (3, 2, 3), stride=3, padding=1, output_padding=1),
        ),
        (
            "conv_transpose 2-D groups 2 dilation 2",
            lambda r, n: _conv_transpose_check(n, r, (1, 4, 3, 4), (4, 1, 2, 3), stride=2, groups=2, dilation=2),
        ),
        (
            "conv_transpose 3-D stride 2",
            lambda r, n: _conv_transpose_check(n, r, (1, 2, 2, 3, 2), (2, 2, 2, 2, 2), stride=2),
        ),
    ]
    return [(name, (lambda check, name: lambda rng: check(rng, name))(check, name)) for name, check in cases]


# -- layers -----------------------------------------------------------------------------


def _module_check(name: str, module, input_shape, rng, *, positive: bool = False) -> CheckResult:
    import convgrad

    x = rng.standard_normal(input_shape)
    if positive:
        x = np.abs(x) + 0.1
    report = convgrad.gradcheck_module(module, x, seed=0, raise_exception=False)
    return _result(name, report)


def _fixed_mask_dropout(p: float, rng: np.random.Generator):
    """Return a training-mode Dropout wrapper that draws the same mask on every forward.

    Finite differences evaluate the layer many times, so the mask must not
    change between evaluations. The wrapper restores the generator's state
    before each forward pass.
    """
    from convgrad.nn.dropout import Dropout
    from convgrad.nn.module import Module

    class FixedMaskDropout(Module):
        def __init__(self):
            super().__init__()
            self.dropout = Dropout(p, rng=rng)
            self.state = rng.bit_generator.state

        def forward(self, x):
            rng.bit_generator.state = self.state
            return self.dropout.forward(x)

        def backward(self, grad_output):
            return self.dropout.backward(grad_output)

    return FixedMaskDropout()


def layer_checks() -> list[tuple[str, Callable[[np.random.Generator], CheckResult]]]:
    """Return (name, check) pairs for every layer in ``convgrad.nn``."""
    from convgrad import nn

    f64 = np.float64

    def small_network(rng):
        return nn.Sequential(
            nn.Conv1d(2, 3, 3, padding="same", bias=False, rng=rng, dtype=f64),
            nn.BatchNorm1d(3, dtype=f64),
            nn.ReLU(),
            nn.MaxPool1d(2),
            nn.GlobalAvgPool(),
            nn.Linear(3, 4, rng=rng, dtype=f64),
        )

    cases = [
        ("Conv1d stride 2 dilation 2", lambda r: nn.Conv1d(2, 3, 3, stride=2, dilation=2, padding=1, rng=r, dtype=f64), (2, 2, 9)),
        ("Conv2d groups 2 'same'", lambda r: nn.Conv2d(4, 2, 3, padding="same", groups=2, rng=r, dtype=f64), (2, 4, 5, 5)),
        ("Conv3d stride 2", lambda r: nn.Conv3d(2, 2, 2, stride=2, rng=r, dtype=f64), (1, 2, 4, 4, 5)),
        (
            "ConvTranspose1d stride 2 output_padding 1",
            lambda r: nn.ConvTranspose1d(3, 2, 3, stride=2, padding=1, output_padding=1, rng=r, dtype=f64),
            (2, 3, 5),
        ),
        ("ConvTranspose2d stride 2", lambda r: nn.ConvTranspose2d(2, 3, 2, stride=2, rng=r, dtype=f64), (1, 2, 3, 4)),
        ("ConvTranspose3d", lambda r: nn.ConvTranspose3d(2, 2, 2, stride=(1, 2, 1), rng=r, dtype=f64), (1, 2, 2, 2, 3)),
        ("Linear", lambda r: nn.Linear(5, 3, rng=r, dtype=f64), (4, 5)),
        ("ReLU", lambda r: nn.ReLU(), (3, 7)),
        ("LeakyReLU", lambda r: nn.LeakyReLU(0.1), (3, 7)),
        ("GELU", lambda r: nn.GELU(), (3, 7)),
        ("GELU tanh approximation", lambda r: nn.GELU(approximate="tanh"), (3, 7)),
        ("Tanh", lambda r: nn.Tanh(), (3, 7)),
        ("Sigmoid", lambda r: nn.Sigmoid(), (3, 7)),
        ("MaxPool1d kernel 3 stride 2", lambda r: nn.MaxPool1d(3, stride=2), (2, 2, 9)),
        ("MaxPool2d", lambda r: nn.MaxPool2d(2), (2, 2, 4, 6)),
        ("AvgPool1d padding 1", lambda r: nn.AvgPool1d(3, stride=2, padding=1), (2, 2, 9)),
        ("AvgPool2d", lambda r: nn.AvgPool2d(2), (2, 2, 4, 6)),
        ("GlobalAvgPool", lambda r: nn.GlobalAvgPool(), (2, 3, 5)),
        ("Flatten", lambda r: nn.Flatten(), (2, 3, 4)),
        ("Dropout p=0.3, fixed mask", lambda r: _fixed_mask_dropout(0.3, r), (3, 8)),
        ("BatchNorm1d training", lambda r: nn.BatchNorm1d(3, dtype=f64), (4, 3, 5)),
        ("BatchNorm1d evaluation", lambda r: nn.BatchNorm1d(3, dtype=f64).eval(), (4, 3, 5)),
        ("BatchNorm2d training", lambda r: nn.BatchNorm2d(2, dtype=f64), (3, 2, 3, 3)),
        ("Sequential of conv, batch norm, pool, linear", small_network, (4, 2, 8)),
    ]

    def make(name, build, shape):
        return lambda rng: _module_check(name, build(rng), shape, rng)

    return [(name, make(name, build, shape)) for name, build, shape in cases]


def tolerances() -> tuple[float, float]:
    """Return the (atol, rtol) that every check uses: the defaults of ``convgrad.gradcheck``."""
    import inspect

    import convgrad

    parameters = inspect.signature(convgrad.gradcheck).parameters
    return parameters["atol"].default, parameters["rtol"].default


def run_all(seed: int = 0) -> list[CheckResult]:
    """Run every operator and layer check and return their results in order.

    A check that raises records the exception as a failure instead of
    stopping the others.
    """
    results = []
    for name, check in operator_checks() + layer_checks():
        rng = np.random.default_rng(seed)
        try:
            results.append(check(rng))
        except Exception as error:  # noqa: BLE001 - one broken layer must not hide the other results
            results.append(CheckResult(name, float("nan"), float("nan"), False, f"{type(error).__name__}: {error}"))
    return results
