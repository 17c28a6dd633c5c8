"""Learning-rate schedules that set ``optimizer.lr`` on every ``step``.

Each schedule computes the learning rate from a closed formula in the step
counter ``last_epoch``, so the rate after ``k`` calls of ``step`` depends only
on ``k`` and the constructor arguments. The values equal those of the
PyTorch 2.13 schedulers of the same names up to floating-point rounding.
PyTorch's StepLR and CosineAnnealingLR update the rate recursively from the
optimizer's current rate, which can differ from the closed formula in the
last few bits.

The unit of ``step`` is the caller's choice: call ``StepLR.step`` and
``CosineAnnealingLR.step`` once per epoch with ``step_size`` and ``T_max`` in
epochs, or once per batch with them in batches. ``OneCycleLR.step`` is meant
to be called once per batch, ``total_steps`` times in all.

Like PyTorch, the constructor already applies the rate for step 0. Call
``optimizer.step()`` before ``scheduler.step()`` in the training loop.

NOTE: because the rate comes from the formula alone, a change that the caller
makes to ``optimizer.lr`` lasts only until the next ``scheduler.step()``.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from convgrad.nn.optim import Optimizer, _check_real, _scalar_from_state


def _check_positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


class LRScheduler:
    """Base class: step counter, base learning rate and state.

    Subclasses implement ``_lr_at(step)`` and list the constructor arguments
    they save in ``_state_names``.

    Parameters
    ----------
    optimizer : Optimizer
    base_lr : float, optional
        Rate that the schedule starts from. Defaults to ``optimizer.lr``.

    Attributes
    ----------
    optimizer : Optimizer
    base_lr : float
        The optimizer's learning rate when the scheduler was built.
    last_epoch : int
        Number of ``step`` calls so far (PyTorch's name).
    """

    _state_names: tuple[str, ...] = ()

    def __init__(self, optimizer: Optimizer, base_lr: float | None = None):
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"optimizer must be a convgrad Optimizer, got {type(optimizer).__name__}")
        self.optimizer = optimizer
        self.base_lr = optimizer.lr if base_lr is None else base_lr
        self.last_epoch = 0
        self._apply()

    def _lr_at(self, step: int) -> float:
        raise NotImplementedError

    def _apply(self) -> None:
        self._last_lr = self._lr_at(self.last_epoch)
        self.optimizer.lr = self._last_lr

    def step(self) -> None:
        """Advance the counter by one and set ``optimizer.lr`` to the new rate."""
        self.last_epoch += 1
        self._apply()

    def get_last_lr(self) -> float:
        """Return the learning rate that the last ``step`` (or the constructor) set."""
        return self._last_lr

    def state_dict(self) -> dict:
        """Return the counter, base rate and constructor arguments as NumPy scalars."""
        state = {"last_epoch": np.int64(self.last_epoch), "base_lr": np.float64(self.base_lr)}
        for name in self._state_names:
            value = getattr(self, name)
            if isinstance(value, str):
                state[name] = np.str_(value)
            elif isinstance(value, bool):
                state[name] = np.bool_(value)
            elif isinstance(value, int):
                state[name] = np.int64(value)
            else:
                state[name] = np.float64(value)
        return state

    def load_state_dict(self, state: dict) -> None:
        """Restore the state returned by ``state_dict``.

        The optimizer is left unchanged, because its own ``load_state_dict``
        restores the learning rate. The next ``step`` sets the rate for
        ``last_epoch + 1`` either way.

        Raises
        ------
        ValueError
            If a key is missing or unexpected or a value is invalid.
        """
        expected = {"last_epoch", "base_lr", *self._state_names}
        missing = sorted(expected - set(state))
        unexpected = sorted(set(state) - expected)
        if missing or unexpected:
            raise ValueError(
                f"state does not match {type(self).__name__}: missing keys {missing}, "
                f"unexpected keys {unexpected}"
            )
        values = {key: _scalar_from_state(state, key) for key in expected}
        last_epoch = values.pop("last_epoch")
        if isinstance(last_epoch, bool) or not isinstance(last_epoch, numbers.Integral) or last_epoch < 0:
            raise ValueError(f"state['last_epoch'] must be a non-negative integer, got {last_epoch!r}")
        base_lr = _check_real("base_lr", values.pop("base_lr"))

        self._load_arguments(values)
        self.base_lr = base_lr
        self.last_epoch = int(last_epoch)
        self._last_lr = self._lr_at(self.last_epoch)

    def _load_arguments(self, values: dict) -> None:
        """Validate and set the constructor arguments from a state dict."""
        raise NotImplementedError


class StepLR(LRScheduler):
    """Multiply the learning rate by ``gamma`` every ``step_size`` steps.

    ``lr(k) = base_lr * gamma ** (k // step_size)`` after ``k`` calls of ``step``.

    Parameters
    ----------
    optimizer : Optimizer
    step_size : int
        Period of the decay, in calls of ``step``.
    gamma : float
        Multiplicative factor, >= 0.
    """

    _state_names = ("step_size", "gamma")

    def __init__(self, optimizer: Optimizer, step_size: int, gamma: float = 0.1):
        self.step_size = _check_positive_int("step_size", step_size)
        self.gamma = _check_real("gamma", gamma)
        super().__init__(optimizer)

    def _lr_at(self, step: int) -> float:
        return self.base_lr * self.gamma ** (step // self.step_size)

    def _load_arguments(self, values: dict) -> None:
        step_size = _check_positive_int("step_size", values["step_size"])
        self.gamma = _check_real("gamma", values["gamma"])
        self.step_size = step_size


class CosineAnnealingLR(LRScheduler):
    """Anneal the learning rate from ``base_lr`` to ``eta_min`` along a half cosine.

    ``lr(k) = eta_min + (base_lr - eta_min) * (1 + cos(pi * k / T_max)) / 2``

    The rate reaches ``eta_min`` at ``k = T_max``. Past ``T_max`` the formula
    continues, so the rate rises again over the next ``T_max`` steps, as in
    PyTorch.

    Parameters
    ----------
    optimizer : Optimizer
    T_max : int
        Number of ``step`` calls from ``base_lr`` down to ``eta_min``.
    eta_min : float
        Minimum learning rate, >= 0.
    """

    _state_names = ("T_max", "eta_min")

    def __init__(self, optimizer: Optimizer, T_max: int, eta_min: float = 0.0):
        self.T_max = _check_positive_int("T_max", T_max)
        self.eta_min = _check_real("eta_min", eta_min)
        super().__init__(optimizer)

    def _lr_at(self, step: int) -> float:
        return self.eta_min + (self.base_lr - self.eta_min) * (1.0 + math.cos(math.pi * step / self.T_max)) / 2.0

    def _load_arguments(self, values: dict) -> None:
        T_max = _check_positive_int("T_max", values["T_max"])
        self.eta_min = _check_real("eta_min", values["eta_min"])
        self.T_max = T_max


def _anneal_cos(start: float, end: float, fraction: float) -> float:
    return end + (start - end) / 2.0 * (math.cos(math.pi * fraction) + 1.0)


def _anneal_linear(start: float, end: float, fraction: float) -> float:
    return (end - start) * fraction + start


class OneCycleLR(LRScheduler):
    """The one-cycle policy: warm up to ``max_lr``, then anneal far below the start.

    Two phases, as PyTorch's ``OneCycleLR`` with ``three_phase=False``:

    1. steps 0 to ``pct_start * total_steps - 1``: from
       ``initial_lr = max_lr / div_factor`` up to ``max_lr``;
    2. from there to step ``total_steps - 1``: from ``max_lr`` down to
       ``min_lr = initial_lr / final_div_factor``.

    With ``cycle_momentum`` the momentum moves the opposite way, from
    ``max_momentum`` down to ``base_momentum`` and back. It is set on
    ``optimizer.momentum`` (SGD) or on ``optimizer.betas[0]`` (Adam, AdamW).

    The constructor sets ``optimizer.lr`` to ``initial_lr``. ``step`` may be
    called ``total_steps`` times, and one more call raises ValueError. The
    last call sets ``min_lr``, the value at the end of phase 2. PyTorch
    extrapolates one step past the end of phase 2 there, which with linear
    annealing gives a negative rate. Rates for steps 0 to ``total_steps - 1``
    match PyTorch.

    Parameters
    ----------
    optimizer : Optimizer
    max_lr : float
        Peak learning rate, >= 0.
    total_steps : int
        Length of the cycle in calls of ``step``.
    pct_start : float
        Fraction of the cycle spent increasing the rate, in [0, 1].
    div_factor : float
        ``initial_lr = max_lr / div_factor``, > 0.
    final_div_factor : float
        ``min_lr = initial_lr / final_div_factor``, > 0.
    anneal_strategy : {"cos", "linear"}
        Shape of each phase.
    cycle_momentum : bool
        Cycle the momentum inversely to the rate (PyTorch's default is True).
    base_momentum, max_momentum : float
        Momentum range, in [0, 1).
    """

    _state_names = (
        "max_lr",
        "total_steps",
        "pct_start",
        "div_factor",
        "final_div_factor",
        "anneal_strategy",
        "cycle_momentum",
        "base_momentum",
        "max_momentum",
    )

    def __init__(
        self,
        optimizer: Optimizer,
        max_lr: float,
        total_steps: int,
        pct_start: float = 0.3,
        div_factor: float = 25.0,
        final_div_factor: float = 1e4,
        anneal_strategy: str = "cos",
        cycle_momentum: bool = True,
        base_momentum: float = 0.85,
        max_momentum: float = 0.95,
    ):
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"optimizer must be a convgrad Optimizer, got {type(optimizer).__name__}")
        self._set_arguments(
            optimizer,
            max_lr=max_lr,
            total_steps=total_steps,
            pct_start=pct_start,
            div_factor=div_factor,
            final_div_factor=final_div_factor,
            anneal_strategy=anneal_strategy,
            cycle_momentum=cycle_momentum,
            base_momentum=base_momentum,
            max_momentum=max_momentum,
        )
        super().__init__(optimizer, base_lr=self.initial_lr)

    def _set_arguments(self, optimizer: Optimizer, **arguments) -> None:
        """Validate every argument, then assign them all."""
        max_lr = _check_real("max_lr", arguments["max_lr"])
        total_steps = _check_positive_int("total_steps", arguments["total_steps"])
        pct_start = _check_real("pct_start", arguments["pct_start"], high=1.0)
        div_factor = _check_real("div_factor", arguments["div_factor"])
        final_div_factor = _check_real("final_div_factor", arguments["final_div_factor"])
        for name, value in (("div_factor", div_factor), ("final_div_factor", final_div_factor)):
            if value == 0.0:
                raise ValueError(f"{name} must be > 0, got {value}")
        anneal_strategy = arguments["anneal_strategy"]
        if anneal_strategy not in ("cos", "linear"):
            raise ValueError(f"anneal_strategy must be 'cos' or 'linear', got {anneal_strategy!r}")
        cycle_momentum = arguments["cycle_momentum"]
        if not isinstance(cycle_momentum, (bool, np.bool_)):
            raise TypeError(f"cycle_momentum must be a bool, got {cycle_momentum!r}")
        base_momentum = _check_real("base_momentum", arguments["base_momentum"], high=1.0, high_open=True)
        max_momentum = _check_real("max_momentum", arguments["max_momentum"], high=1.0, high_open=True)
        if cycle_momentum and not (hasattr(optimizer, "betas") or hasattr(optimizer, "momentum")):
            raise ValueError(
                f"cycle_momentum=True needs an optimizer with momentum or betas, got {type(optimizer).__name__}"
            )

        self.max_lr = max_lr
        self.total_steps = total_steps
        self.pct_start = pct_start
        self.div_factor = div_factor
        self.final_div_factor = final_div_factor
        self.anneal_strategy = str(anneal_strategy)
        self.cycle_momentum = bool(cycle_momentum)
        self.base_momentum = base_momentum
        self.max_momentum = max_momentum

    @property
    def initial_lr(self) -> float:
        return self.max_lr / self.div_factor

    @property
    def min_lr(self) -> float:
        return self.initial_lr / self.final_div_factor

    def _phase_at(self, step: int) -> tuple[float, int]:
        """Return ``(fraction, phase)`` of ``step`` within phase 0 or 1.

        The phase boundary ``pct_start * total_steps - 1`` is a float, as in
        PyTorch, so the fraction is not always a multiple of one step. The
        fraction is capped at 1, which also covers the cases where PyTorch
        divides by zero (a warm-up ending at step 0, or ``pct_start=1``).
        """
        warmup_end = self.pct_start * self.total_steps - 1.0
        if step <= warmup_end:
            return (step / warmup_end if warmup_end > 0 else 1.0), 0
        anneal_length = self.total_steps - 1 - warmup_end
        if step >= self.total_steps - 1 or anneal_length <= 0:
            return 1.0, 1
        return (step - warmup_end) / anneal_length, 1

    def _anneal(self, start: float, end: float, fraction: float) -> float:
        if self.anneal_strategy == "cos":
            return _anneal_cos(start, end, fraction)
        return _anneal_linear(start, end, fraction)

    def _lr_at(self, step: int) -> float:
        fraction, phase = self._phase_at(step)
        if phase == 0:
            return self._anneal(self.initial_lr, self.max_lr, fraction)
        return self._anneal(self.max_lr, self.min_lr, fraction)

    def _momentum_at(self, step: int) -> float:
        fraction, phase = self._phase_at(step)
        if phase == 0:
            return self._anneal(self.max_momentum, self.base_momentum, fraction)
        return self._anneal(self.base_momentum, self.max_momentum, fraction)

    def _apply(self) -> None:
        super()._apply()
        if self.cycle_momentum:
            momentum = self._momentum_at(self.last_epoch)
            if hasattr(self.optimizer, "betas"):
                self.optimizer.betas = (momentum, self.optimizer.betas[1])
            else:
                self.optimizer.momentum = momentum

    def step(self) -> None:
        """Advance by one step and set the rate and momentum. Raise ValueError past ``total_steps``."""
        if self.last_epoch + 1 > self.total_steps:
            raise ValueError(
                f"OneCycleLR.step called {self.last_epoch + 1} times, more than total_steps={self.total_steps}"
            )
        super().step()

    def _load_arguments(self, values: dict) -> None:
        self._set_arguments(self.optimizer, **values)
