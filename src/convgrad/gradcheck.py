"""Finite-difference checks of analytic gradients.

Given a function ``y = f(x_1, ..., x_m)`` and a claimed backward pass, the
check fixes an upstream gradient ``go`` (random unless given) and compares,
for every differentiable argument ``x_i``, the analytic gradient of the scalar
``L = sum(go * f(x))`` with the central difference::

    dL/dx_i[j]  ~  (L(x_i + eps e_j) - L(x_i - eps e_j)) / (2 eps)

whose error is ``O(eps^2)`` for smooth ``f``. An element passes when
``|analytic - numeric| <= atol + rtol * |numeric|``.

Semantics
---------
- Every array argument is copied to a new contiguous float64 array before the
  check, so the caller's arrays (and any array sharing their memory) are never
  perturbed, and float32 rounding does not drown the difference quotient.
  The function must therefore compute in the dtype it receives.
- ``mode='full'`` perturbs each element in turn (two evaluations per
  element). ``mode='random'`` compares directional derivatives along random
  unit directions ``v``: ``(L(x + eps v) - L(x - eps v)) / (2 eps)`` against
  ``<dL/dx, v>``, two evaluations per direction, for large arguments.
- Near a kink (ReLU at 0, a tie in max pooling) the function is not
  differentiable and the check can fail although the backward pass is right.
  A failing element's message then states whether the one-sided differences
  disagree, which is the sign of a kink.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

__all__ = ["gradcheck", "gradcheck_module", "GradcheckError", "GradcheckReport", "ArgumentReport"]


class GradcheckError(AssertionError):
    """Raised when an analytic gradient disagrees with finite differences."""


@dataclass
class ArgumentReport:
    """Result of checking one argument (or one parameter).

    Attributes
    ----------
    name : str
        Argument name, or ``"input[i]"`` when no names were given.
    max_abs_error : float
        ``max_j |analytic[j] - numeric[j]|``.
    max_rel_error : float
        ``max_j |analytic[j] - numeric[j]| / max(|numeric[j]|, 1e-12)``.
    worst_index : tuple of int or None
        Element with the largest excess over the tolerance (None in random mode).
    analytic, numeric : float
        The two values at ``worst_index`` (directional derivatives in random mode).
    passed : bool
    kink : bool
        True when the one-sided differences at the worst element disagree by
        more than the tolerance: the function is probably not differentiable there.
    """

    name: str
    max_abs_error: float
    max_rel_error: float
    worst_index: tuple | None
    analytic: float
    numeric: float
    passed: bool
    kink: bool = False

    def describe(self) -> str:
        where = "along a random direction" if self.worst_index is None else f"at index {self.worst_index}"
        text = (
            f"gradient of {self.name} differs from finite differences {where}: analytic {self.analytic!r}, "
            f"numeric {self.numeric!r} (max abs error {self.max_abs_error:.3e}, "
            f"max rel error {self.max_rel_error:.3e})"
        )
        if self.kink:
            text += "; the one-sided differences disagree there, so the function probably has a kink at this input"
        return text


@dataclass
class GradcheckReport:
    """Per-argument results of :func:`gradcheck`."""

    arguments: list[ArgumentReport] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(report.passed for report in self.arguments)

    @property
    def max_abs_error(self) -> float:
        return max((r.max_abs_error for r in self.arguments), default=0.0)

    @property
    def max_rel_error(self) -> float:
        return max((r.max_rel_error for r in self.arguments), default=0.0)

    def __str__(self) -> str:
        lines = [f"{'argument':<20} {'max abs error':>14} {'max rel error':>14}  result"]
        for r in self.arguments:
            lines.append(
                f"{r.name:<20} {r.max_abs_error:>14.3e} {r.max_rel_error:>14.3e}  {'ok' if r.passed else 'FAIL'}"
            )
        return "\n".join(lines)


def _is_differentiable(value) -> bool:
    return isinstance(value, np.ndarray) and value.dtype.kind in "biuf"


def _as_checked_input(value):
    """Return a float64 copy of a numeric array or nested list, and anything else unchanged."""
    if isinstance(value, (list, tuple)):
        try:
            array = np.asarray(value)
        except ValueError:
            return value
        if array.dtype.kind in "biuf":
            value = array
    if _is_differentiable(value):
        return np.array(value, dtype=np.float64, order="C", copy=True)
    return value


def _check_tolerances(eps, atol, rtol) -> None:
    for name, value, positive in (("eps", eps, True), ("atol", atol, False), ("rtol", rtol, False)):
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise TypeError(f"{name} must be a real number, got {value!r} of type {type(value).__name__}")
        if not math.isfinite(value) or value < 0 or (positive and value == 0):
            rule = "a finite number > 0" if positive else "a finite number >= 0"
            raise ValueError(f"{name} must be {rule}, got {value!r}")


def _as_tuple(grads, count: int, what: str) -> tuple:
    if isinstance(grads, np.ndarray) or grads is None:
        grads = (grads,)
    grads = tuple(grads)
    if len(grads) != count:
        raise ValueError(f"{what} returned {len(grads)} gradients, expected {count} (one per input, None allowed)")
    return grads


def _compare(name, analytic, numeric, atol, rtol, one_sided=None, index=None) -> ArgumentReport:
    diff = np.abs(analytic - numeric)
    tol = atol + rtol * np.abs(numeric)
    excess = np.where(np.isnan(diff), np.inf, diff - tol)
    flat = int(np.argmax(excess)) if excess.size else 0
    worst = np.unravel_index(flat, numeric.shape) if numeric.ndim else ()
    rel = diff / np.maximum(np.abs(numeric), 1e-12)
    passed = bool(excess.size == 0 or np.max(excess) <= 0)
    kink = False
    if one_sided is not None and not passed:
        forward, backward = one_sided
        kink = bool(abs(forward[worst] - backward[worst]) > atol + rtol * abs(numeric[worst]))
    return ArgumentReport(
        name=name,
        max_abs_error=float(np.nanmax(diff)) if diff.size else 0.0,
        max_rel_error=float(np.nanmax(rel)) if rel.size else 0.0,
        worst_index=tuple(int(i) for i in worst) if index is None else None,
        analytic=float(analytic[worst]) if analytic.size else 0.0,
        numeric=float(numeric[worst]) if numeric.size else 0.0,
        passed=passed,
        kink=kink,
    )


def gradcheck(
    func: Callable[..., np.ndarray],
    inputs: Sequence,
    backward: Callable[..., Sequence],
    *,
    grad_output: np.ndarray | None = None,
    eps: float = 1e-6,
    atol: float = 1e-7,
    rtol: float = 1e-5,
    names: Sequence[str] | None = None,
    wrt: Sequence[int] | None = None,
    mode: str = "full",
    num_directions: int = 4,
    seed: int = 0,
    raise_exception: bool = True,
) -> GradcheckReport:
    """Check ``backward`` against central finite differences of ``func``.

    Parameters
    ----------
    func : callable
        ``func(*inputs) -> numpy.ndarray``.
    inputs : sequence
        Arguments of ``func``. Numeric arrays are checked (unless ``wrt``
        restricts them); anything else is passed through unchanged.
    backward : callable
        ``backward(grad_output, *inputs) -> sequence`` with one gradient per
        input, shaped like that input, or None where there is none. A single
        array is accepted when there is one input.
    grad_output : numpy.ndarray, optional
        Upstream gradient ``dL/dy``. Default: standard normal from ``seed``,
        so a bug that an all-ones gradient would hide still shows.
    eps : float
        Step of the central difference.
    atol, rtol : float
        Tolerance per element: ``|analytic - numeric| <= atol + rtol |numeric|``.
    names : sequence of str, optional
        Names used in the report and the error message.
    wrt : sequence of int, optional
        Indices of the inputs to check. Default: every numeric array.
    mode : {'full', 'random'}
        Every element, or ``num_directions`` random directions per argument.
    seed : int
        Seeds the upstream gradient and the random directions.
    raise_exception : bool
        Raise :class:`GradcheckError` on failure (default) or only return the report.

    Returns
    -------
    GradcheckReport
        Max absolute and relative error per argument.

    Raises
    ------
    GradcheckError
        If an element is outside the tolerance; the message names the
        argument, the worst element and both values.
    ValueError
        If ``backward`` returns the wrong number of gradients or a wrong shape,
        or ``mode`` is unknown.

    Examples
    --------
    >>> import numpy as np, convgrad
    >>> x, w = np.random.default_rng(0).normal(size=(2, 1, 3, 6)), np.ones((1, 3, 2))
    >>> report = convgrad.gradcheck(
    ...     lambda x, w: convgrad.conv(x, w, stride=2),
    ...     [x, w],
    ...     lambda go, x, w: (convgrad.conv_input_grad(x.shape, w, go, stride=2),
    ...                       convgrad.conv_weight_grad(x, w.shape, go, stride=2)),
    ...     names=["input", "weight"])
    >>> report.passed
    True
    """
    if mode not in ("full", "random"):
        raise ValueError(f"mode must be 'full' or 'random', got {mode!r}")
    _check_tolerances(eps, atol, rtol)
    if isinstance(num_directions, bool) or not isinstance(num_directions, numbers.Integral) or num_directions < 1:
        raise ValueError(f"num_directions must be a positive integer, got {num_directions!r}")

    values = [_as_checked_input(v) for v in inputs]
    if names is None:
        names = [f"input[{i}]" for i in range(len(values))]
    if len(names) != len(values):
        raise ValueError(f"names has {len(names)} entries, but there are {len(values)} inputs")
    checked = [i for i, v in enumerate(values) if _is_differentiable(v)] if wrt is None else list(wrt)
    if len(set(checked)) != len(checked):
        raise ValueError(f"wrt must not repeat an index, got {list(wrt)}")
    for i in checked:
        if not (0 <= i < len(values)) or not _is_differentiable(values[i]):
            raise ValueError(f"wrt must list indices of numeric array inputs, got {i} in {list(wrt)}")

    rng = np.random.default_rng(seed)
    output = np.asarray(func(*values), dtype=np.float64)
    if grad_output is None:
        grad_output = rng.standard_normal(output.shape)
    grad_output = np.asarray(grad_output, dtype=np.float64)
    if grad_output.shape != output.shape:
        raise ValueError(f"grad_output has shape {grad_output.shape}, but func returns shape {output.shape}")

    def loss() -> float:
        return float(np.sum(grad_output * np.asarray(func(*values), dtype=np.float64)))

    analytic_all = _as_tuple(backward(grad_output, *values), len(values), "backward")
    report = GradcheckReport()

    for i in checked:
        x = values[i]
        analytic = analytic_all[i]
        if analytic is None:
            raise ValueError(f"backward returned None for {names[i]}, which is being checked")
        analytic = np.asarray(analytic, dtype=np.float64)
        if analytic.shape != x.shape:
            raise ValueError(f"backward returned a gradient of shape {analytic.shape} for {names[i]} of shape {x.shape}")

        if mode == "full":
            report.arguments.append(_check_elements(names[i], x, analytic, loss, eps, atol, rtol))
        else:
            report.arguments.append(
                _check_directions(names[i], x, analytic, loss, eps, atol, rtol, num_directions, rng)
            )

    if raise_exception and not report.passed:
        failures = "\n".join(r.describe() for r in report.arguments if not r.passed)
        raise GradcheckError(f"gradient check failed:\n{failures}\n{report}")
    return report


def _check_elements(name, x, analytic, loss, eps, atol, rtol) -> ArgumentReport:
    """Perturb every element of ``x`` in place (it is the check's own copy) and restore it."""
    base = loss()
    numeric = np.empty_like(x)
    forward = np.empty_like(x)
    backward = np.empty_like(x)
    if not x.flags.c_contiguous:
        raise ValueError(f"{name} must be C-contiguous to be perturbed in place, got strides {x.strides}")
    flat = x.reshape(-1)
    for j in range(flat.size):
        original = flat[j]
        flat[j] = original + eps
        plus = loss()
        flat[j] = original - eps
        minus = loss()
        flat[j] = original
        numeric.flat[j] = (plus - minus) / (2 * eps)
        forward.flat[j] = (plus - base) / eps
        backward.flat[j] = (base - minus) / eps
    return _compare(name, analytic, numeric, atol, rtol, one_sided=(forward, backward))


def _check_directions(name, x, analytic, loss, eps, atol, rtol, count, rng) -> ArgumentReport:
    original = x.copy()
    numeric = np.empty(count)
    projected = np.empty(count)
    for d in range(count):
        direction = rng.standard_normal(x.shape)
        direction /= max(np.linalg.norm(direction), 1e-300)
        x[...] = original + eps * direction
        plus = loss()
        x[...] = original - eps * direction
        minus = loss()
        x[...] = original
        numeric[d] = (plus - minus) / (2 * eps)
        projected[d] = float(np.sum(analytic * direction))
    return _compare(name, projected, numeric, atol, rtol, index="random")


def gradcheck_module(
    module,
    input: np.ndarray,
    *,
    grad_output: np.ndarray | None = None,
    eps: float = 1e-6,
    atol: float = 1e-7,
    rtol: float = 1e-5,
    seed: int = 0,
    raise_exception: bool = True,
) -> GradcheckReport:
    """Check a layer's ``backward`` for its input and every parameter.

    The module must hold float64 parameters and compute deterministically
    (call ``eval()`` on dropout, or use ``p=0``). Parameters are perturbed in
    place and restored; their ``grad`` is reset with ``zero_grad`` before the
    analytic backward pass and left holding the analytic gradient.

    Returns
    -------
    GradcheckReport
        One entry for ``input`` and one per named parameter.
    """
    _check_tolerances(eps, atol, rtol)
    x = np.array(input, dtype=np.float64, order="C", copy=True)
    rng = np.random.default_rng(seed)
    output = np.asarray(module.forward(x), dtype=np.float64)
    if grad_output is None:
        grad_output = rng.standard_normal(output.shape)

    def loss() -> float:
        return float(np.sum(grad_output * module.forward(x)))

    module.zero_grad()
    module.forward(x)
    grad_input = np.asarray(module.backward(grad_output), dtype=np.float64)
    report = GradcheckReport()
    report.arguments.append(_check_elements("input", x, grad_input, loss, eps, atol, rtol))
    for name, param in module.named_parameters():
        if param.data.dtype != np.float64:
            raise TypeError(
                f"gradcheck_module needs float64 parameters, {name} has dtype {param.data.dtype}; "
                "construct the layer with dtype=np.float64"
            )
        analytic = param.grad.copy()
        report.arguments.append(_check_elements(name, param.data, analytic, loss, eps, atol, rtol))

    if raise_exception and not report.passed:
        failures = "\n".join(r.describe() for r in report.arguments if not r.passed)
        raise GradcheckError(f"gradient check of {type(module).__name__} failed:\n{failures}\n{report}")
    return report
