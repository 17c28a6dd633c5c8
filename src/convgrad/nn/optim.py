"""Gradient-descent optimizers that update ``Parameter.data`` in place.

The update rules are those of ``torch.optim.SGD``, ``torch.optim.Adam`` and
``torch.optim.AdamW`` (PyTorch 2.13, single-tensor code path, no ``maximize``,
no ``amsgrad``), written out with NumPy. An optimizer has one set of
hyperparameters for all of its parameters (PyTorch calls this one parameter
group).

Every parameter is updated on every ``step``, because ``Parameter.grad`` is
always an array (PyTorch skips parameters whose gradient is ``None``).

The update keeps the dtype of ``param.data``: hyperparameters are stored as
Python floats, which NumPy does not let promote a float32 array. Temporaries
live in two scratch buffers per dtype, sized to the largest parameter and
reused by every parameter on every step.
"""

from __future__ import annotations

import math
import numbers
from typing import Iterable

import numpy as np

from convgrad.nn.module import Module, Parameter


def _check_real(name: str, value, *, low: float = 0.0, high: float | None = None, high_open: bool = False) -> float:
    """Return ``value`` as a float after checking that it is finite and in range."""
    if isinstance(value, bool) or not isinstance(value, (numbers.Real, np.ndarray)) or np.ndim(value) != 0:
        raise TypeError(f"{name} must be a real number, got {value!r}")
    value = float(value)
    if not math.isfinite(value) or value < low:
        raise ValueError(f"{name} must be a finite number >= {low}, got {value}")
    if high is not None and (value >= high if high_open else value > high):
        bracket = ")" if high_open else "]"
        raise ValueError(f"{name} must be in [{low}, {high}{bracket}, got {value}")
    return value


def _check_params(params) -> list[Parameter]:
    if isinstance(params, Module):
        raise TypeError("params must be an iterable of Parameter, got a Module: pass module.parameters()")
    if isinstance(params, Parameter):
        raise TypeError("params must be an iterable of Parameter, got a single Parameter: wrap it in a list")
    try:
        params = list(params)
    except TypeError:
        raise TypeError(f"params must be an iterable of Parameter, got {type(params).__name__}") from None
    if not params:
        raise ValueError("params must contain at least one Parameter, got an empty iterable")
    for index, param in enumerate(params):
        if not isinstance(param, Parameter):
            raise TypeError(f"params[{index}] must be a Parameter, got {type(param).__name__}")
    if len({id(param) for param in params}) != len(params):
        raise ValueError("params contains the same Parameter more than once")
    return params


def _scalar_from_state(state: dict, key: str):
    """Return ``state[key]`` as a Python scalar, accepting 0-d arrays from a checkpoint."""
    value = np.asarray(state[key])
    if value.ndim != 0:
        raise ValueError(f"state[{key!r}] must be a scalar, got shape {value.shape}")
    return value.item()


class Optimizer:
    """Base class: parameter list, learning rate, step counter and scratch memory.

    Parameters
    ----------
    params : iterable of Parameter
        The parameters to update, for example ``model.parameters()``. Their
        order defines the numeric prefixes of the ``state_dict`` keys.
    lr : float
        Learning rate, >= 0. Schedulers change it through the ``lr`` attribute.

    Attributes
    ----------
    params : list of Parameter
    lr : float
    step_count : int
        Number of completed ``step`` calls.
    """

    # Names of the per-parameter buffers that appear in state_dict as "<index>.<name>".
    _buffer_names: tuple[str, ...] = ()
    # Names of the float hyperparameters saved in state_dict.
    _hyperparameter_names: tuple[str, ...] = ("lr",)

    def __init__(self, params: Iterable[Parameter], lr: float):
        self.params = _check_params(params)
        self.lr = lr
        self.step_count = 0
        self._scratch: dict[np.dtype, tuple[np.ndarray, np.ndarray]] = {}

    @property
    def lr(self) -> float:
        return self._lr

    @lr.setter
    def lr(self, value) -> None:
        self._lr = _check_real("lr", value)

    def zero_grad(self) -> None:
        """Set the gradient of every parameter to zero in place."""
        for param in self.params:
            param.zero_grad()

    def step(self) -> None:
        """Apply one update to every parameter from its current ``grad``."""
        for index, param in enumerate(self.params):
            if param.grad.shape != param.data.shape:
                raise ValueError(
                    f"params[{index}].grad has shape {param.grad.shape}, "
                    f"the parameter has shape {param.data.shape}"
                )
        self.step_count += 1
        for index, param in enumerate(self.params):
            first, second = self._scratch_for(param.data)
            self._update(index, param, first, second)

    def _update(self, index: int, param: Parameter, first: np.ndarray, second: np.ndarray) -> None:
        raise NotImplementedError

    def _scratch_for(self, data: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Return two scratch arrays of the shape and dtype of ``data``.

        The flat buffers grow to the largest parameter of each dtype during
        the first step and are reused afterwards.
        """
        buffers = self._scratch.get(data.dtype)
        if buffers is None or buffers[0].size < data.size:
            buffers = (np.empty(data.size, dtype=data.dtype), np.empty(data.size, dtype=data.dtype))
            self._scratch[data.dtype] = buffers
        return tuple(buffer[: data.size].reshape(data.shape) for buffer in buffers)

    # -- state -------------------------------------------------------------

    def _buffers(self, name: str) -> list[np.ndarray | None]:
        return getattr(self, "_" + name)

    def state_dict(self) -> dict:
        """Return the hyperparameters, step count and buffers as a flat dict.

        Values are NumPy scalars or array copies, so the dict can be passed to
        ``convgrad.checkpoint.save_checkpoint`` as it is. Buffer keys are
        ``"<parameter index>.<buffer name>"``, such as ``"0.exp_avg"``. A
        buffer that does not exist yet (the SGD momentum buffer before the
        first step) has no key.
        """
        state = {"step": np.int64(self.step_count)}
        for name in self._hyperparameter_names:
            state[name] = np.float64(getattr(self, name))
        state.update(self._extra_state())
        for name in self._buffer_names:
            for index, buffer in enumerate(self._buffers(name)):
                if buffer is not None:
                    state[f"{index}.{name}"] = buffer.copy()
        return state

    def _extra_state(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        """Restore the state returned by ``state_dict``.

        The optimizer must have been built over parameters of the same shapes
        in the same order. Buffers are copied and cast to each parameter's
        dtype, so a later ``step`` continues exactly as the saved run would.

        Raises
        ------
        ValueError
            If a key is missing or unexpected, a value is out of range, or a
            buffer has the wrong shape.
        """
        required = {"step", *self._hyperparameter_names, *self._extra_state()}
        allowed = required | {
            f"{index}.{name}" for name in self._buffer_names for index in range(len(self.params))
        }
        missing = sorted(required - set(state))
        unexpected = sorted(set(state) - allowed)
        if missing or unexpected:
            raise ValueError(
                f"state does not match {type(self).__name__} over {len(self.params)} parameters: "
                f"missing keys {missing}, unexpected keys {unexpected}"
            )

        step = _scalar_from_state(state, "step")
        if isinstance(step, bool) or not isinstance(step, numbers.Integral) or step < 0:
            raise ValueError(f"state['step'] must be a non-negative integer, got {step!r}")

        buffers = {}
        for name in self._buffer_names:
            buffers[name] = []
            for index, param in enumerate(self.params):
                key = f"{index}.{name}"
                if key not in state:
                    buffers[name].append(None)
                    continue
                value = np.asarray(state[key])
                if value.shape != param.data.shape:
                    raise ValueError(
                        f"state[{key!r}] has shape {value.shape}, params[{index}] has shape {param.data.shape}"
                    )
                buffers[name].append(value.astype(param.data.dtype, copy=True))

        # Set the hyperparameters through the validating setters and constructor
        # checks before touching any buffer, so a rejected state leaves the
        # optimizer unchanged.
        self._load_hyperparameters({key: _scalar_from_state(state, key) for key in required - {"step"}})
        self.step_count = int(step)
        for name, values in buffers.items():
            self._set_buffers(name, values)

    def _load_hyperparameters(self, values: dict) -> None:
        raise NotImplementedError

    def _set_buffers(self, name: str, values: list[np.ndarray | None]) -> None:
        setattr(self, "_" + name, values)


class SGD(Optimizer):
    """Stochastic gradient descent with optional momentum and L2 weight decay.

    For each parameter ``p`` with gradient ``g`` (PyTorch's rule):

        ``d = g + weight_decay * p``
        ``b = d`` on the first step, else ``b = momentum * b + (1 - dampening) * d``
        ``d = d + momentum * b`` if ``nesterov``, else ``d = b`` (when momentum > 0)
        ``p = p - lr * d``

    Parameters
    ----------
    params : iterable of Parameter
    lr : float
        Learning rate, >= 0.
    momentum : float
        Momentum factor, >= 0.
    nesterov : bool
        Use Nesterov momentum. Requires ``momentum > 0`` and ``dampening == 0``.
    weight_decay : float
        L2 penalty coefficient, >= 0, added to the gradient.
    dampening : float
        Dampening for the momentum buffer, in [0, 1].
    """

    _buffer_names = ("momentum_buffer",)
    _hyperparameter_names = ("lr", "momentum", "dampening", "weight_decay")

    def __init__(
        self,
        params: Iterable[Parameter],
        lr: float,
        momentum: float = 0.0,
        nesterov: bool = False,
        weight_decay: float = 0.0,
        dampening: float = 0.0,
    ):
        super().__init__(params, lr)
        self._set_hyperparameters(momentum, nesterov, weight_decay, dampening)
        self._momentum_buffer: list[np.ndarray | None] = [None] * len(self.params)

    def _set_hyperparameters(self, momentum, nesterov, weight_decay, dampening) -> None:
        """Validate all four values, then assign them together."""
        if not isinstance(nesterov, (bool, np.bool_)):
            raise TypeError(f"nesterov must be a bool, got {nesterov!r}")
        momentum = _check_real("momentum", momentum)
        dampening = _check_real("dampening", dampening, high=1.0)
        weight_decay = _check_real("weight_decay", weight_decay)
        if nesterov and (momentum <= 0.0 or dampening != 0.0):
            raise ValueError(
                f"nesterov=True requires momentum > 0 and dampening == 0, "
                f"got momentum={momentum} and dampening={dampening}"
            )
        self._nesterov = bool(nesterov)
        self._dampening = dampening
        self._momentum = momentum
        self.weight_decay = weight_decay

    @property
    def momentum(self) -> float:
        return self._momentum

    @momentum.setter
    def momentum(self, value) -> None:
        value = _check_real("momentum", value)
        if self._nesterov and value <= 0.0:
            raise ValueError(f"momentum must be > 0 when nesterov=True, got {value}")
        self._momentum = value

    @property
    def nesterov(self) -> bool:
        return self._nesterov

    @property
    def dampening(self) -> float:
        return self._dampening

    def _extra_state(self) -> dict:
        return {"nesterov": np.bool_(self._nesterov)}

    def _load_hyperparameters(self, values: dict) -> None:
        lr = _check_real("lr", values["lr"])
        self._set_hyperparameters(
            values["momentum"], bool(values["nesterov"]), values["weight_decay"], values["dampening"]
        )
        self.lr = lr

    def _update(self, index, param, first, second) -> None:
        momentum = self._momentum
        direction = param.grad
        if self.weight_decay != 0.0:
            np.multiply(param.data, self.weight_decay, out=first)
            np.add(direction, first, out=first)
            direction = first

        if momentum != 0.0:
            buffer = self._momentum_buffer[index]
            if buffer is None:
                buffer = np.array(direction, dtype=param.data.dtype, copy=True)
                self._momentum_buffer[index] = buffer
            else:
                buffer *= momentum
                if self._dampening != 0.0:
                    np.multiply(direction, 1.0 - self._dampening, out=second)
                    buffer += second
                else:
                    buffer += direction
            if self._nesterov:
                np.multiply(buffer, momentum, out=second)
                np.add(direction, second, out=second)
                direction = second
            else:
                direction = buffer

        np.multiply(direction, -self.lr, out=second)
        param.data += second

    def __repr__(self) -> str:
        return (
            f"SGD(lr={self.lr}, momentum={self.momentum}, nesterov={self.nesterov}, "
            f"weight_decay={self.weight_decay}, dampening={self.dampening})"
        )


class Adam(Optimizer):
    """Adam with L2 weight decay added to the gradient (PyTorch's ``Adam``).

    With step count ``t`` (starting at 1) and gradient ``g``:

        ``g = g + weight_decay * p``
        ``m = m + (1 - beta1) * (g - m)``
        ``v = beta2 * v + (1 - beta2) * g * g``
        ``p = p - lr / (1 - beta1**t) * m / (sqrt(v) / sqrt(1 - beta2**t) + eps)``

    Parameters
    ----------
    params : iterable of Parameter
    lr : float
        Learning rate, >= 0.
    betas : tuple of float
        ``(beta1, beta2)``, each in [0, 1).
    eps : float
        Term added to the denominator, >= 0.
    weight_decay : float
        L2 penalty coefficient, >= 0.

    Attributes
    ----------
    betas : tuple of float
        Schedulers that cycle momentum set ``betas`` to change beta1.
    """

    _buffer_names = ("exp_avg", "exp_avg_sq")
    _hyperparameter_names = ("lr", "beta1", "beta2", "eps", "weight_decay")
    _decoupled_weight_decay = False

    def __init__(
        self,
        params: Iterable[Parameter],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
    ):
        super().__init__(params, lr)
        self.betas = betas
        self.eps = _check_real("eps", eps)
        self.weight_decay = _check_real("weight_decay", weight_decay)
        self._exp_avg = [np.zeros_like(param.data) for param in self.params]
        self._exp_avg_sq = [np.zeros_like(param.data) for param in self.params]

    @property
    def betas(self) -> tuple[float, float]:
        return self._betas

    @betas.setter
    def betas(self, value) -> None:
        try:
            beta1, beta2 = value
        except (TypeError, ValueError):
            raise ValueError(f"betas must be a pair (beta1, beta2), got {value!r}") from None
        self._betas = (
            _check_real("betas[0]", beta1, high=1.0, high_open=True),
            _check_real("betas[1]", beta2, high=1.0, high_open=True),
        )

    @property
    def beta1(self) -> float:
        return self._betas[0]

    @property
    def beta2(self) -> float:
        return self._betas[1]

    def _load_hyperparameters(self, values: dict) -> None:
        lr = _check_real("lr", values["lr"])
        eps = _check_real("eps", values["eps"])
        weight_decay = _check_real("weight_decay", values["weight_decay"])
        self.betas = (values["beta1"], values["beta2"])
        self.lr = lr
        self.eps = eps
        self.weight_decay = weight_decay

    def _set_buffers(self, name, values) -> None:
        # Adam's moments start at zero, so a state without them means zeros.
        params = self.params
        super()._set_buffers(
            name, [np.zeros_like(p.data) if v is None else v for p, v in zip(params, values)]
        )

    def _update(self, index, param, first, second) -> None:
        beta1, beta2 = self._betas
        exp_avg = self._exp_avg[index]
        exp_avg_sq = self._exp_avg_sq[index]

        grad = param.grad
        if self.weight_decay != 0.0:
            if self._decoupled_weight_decay:
                param.data *= 1.0 - self.lr * self.weight_decay
            else:
                np.multiply(param.data, self.weight_decay, out=first)
                np.add(grad, first, out=first)
                grad = first

        # m = lerp(m, g, 1 - beta1), with the two formulas torch.lerp uses
        # for weights below and above one half.
        weight = 1.0 - beta1
        np.subtract(grad, exp_avg, out=second)
        if weight < 0.5:
            second *= weight
            exp_avg += second
        else:
            second *= beta1
            np.subtract(grad, second, out=exp_avg)

        exp_avg_sq *= beta2
        np.multiply(grad, grad, out=second)
        second *= 1.0 - beta2
        exp_avg_sq += second

        step = self.step_count
        step_size = self.lr / (1.0 - beta1**step)
        bias_correction2_sqrt = (1.0 - beta2**step) ** 0.5
        np.sqrt(exp_avg_sq, out=second)
        second /= bias_correction2_sqrt
        second += self.eps
        np.divide(exp_avg, second, out=second)
        second *= -step_size
        param.data += second

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(lr={self.lr}, betas={self.betas}, eps={self.eps}, "
            f"weight_decay={self.weight_decay})"
        )


class AdamW(Adam):
    """Adam with decoupled weight decay (PyTorch's ``AdamW``).

    Before the Adam update, which uses the plain gradient, every parameter is
    scaled: ``p = p * (1 - lr * weight_decay)``.

    Parameters
    ----------
    params : iterable of Parameter
    lr : float
        Learning rate, >= 0.
    betas : tuple of float
        ``(beta1, beta2)``, each in [0, 1).
    eps : float
        Term added to the denominator, >= 0.
    weight_decay : float
        Decoupled decay coefficient, >= 0.
    """

    _decoupled_weight_decay = True

    def __init__(
        self,
        params: Iterable[Parameter],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
    ):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
