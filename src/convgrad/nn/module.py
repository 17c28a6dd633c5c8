"""Base classes for layers with explicit forward and backward passes.

A layer in convgrad is a plain object. ``forward`` computes the output and
stores, as named attributes, what ``backward`` needs. ``backward`` receives the
gradient of the loss with respect to the output, adds the gradients of the
parameters into ``Parameter.grad`` and returns the gradient with respect to the
input. Nothing is recorded globally: the stored values live on the layer until
the next ``forward`` replaces them.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Iterator

import numpy as np


class Parameter:
    """A trainable array with its accumulated gradient.

    Parameters
    ----------
    data : numpy.ndarray
        Initial value. It is stored as given (no copy), so the caller should
        pass an array that it does not reuse.

    Attributes
    ----------
    data : numpy.ndarray
        Current value. Optimizers update it in place.
    grad : numpy.ndarray
        Gradient of the loss with respect to ``data``, same shape and dtype.
        ``backward`` adds into it; ``zero_grad`` resets it to zeros.
    """

    def __init__(self, data: np.ndarray):
        if not isinstance(data, np.ndarray):
            raise TypeError(f"Parameter data must be a numpy.ndarray, got {type(data).__name__}")
        if not np.issubdtype(data.dtype, np.floating):
            raise TypeError(f"Parameter data must have a floating dtype, got {data.dtype}")
        self.data = data
        self.grad = np.zeros_like(data)

    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape

    @property
    def size(self) -> int:
        return self.data.size

    def zero_grad(self) -> None:
        self.grad[...] = 0

    def __repr__(self) -> str:
        return f"Parameter(shape={self.data.shape}, dtype={self.data.dtype})"


class Module:
    """Base class of every layer and model.

    Subclasses set parameters, buffers and child modules as attributes in
    ``__init__``; this class finds them through ``__setattr__`` so that
    ``parameters``, ``state_dict`` and ``train``/``eval`` reach every one in
    the order they were assigned.

    Buffers are arrays that belong to the model state but are not trained by
    gradient descent, such as the running statistics of batch normalization.
    Register them with ``register_buffer`` so that checkpoints include them.
    """

    def __init__(self) -> None:
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "training", True)

    def __setattr__(self, name: str, value) -> None:
        if "_parameters" not in self.__dict__:
            raise RuntimeError(
                f"{type(self).__name__}.__init__ must call super().__init__() before assigning {name!r}"
            )
        for registry in (self._parameters, self._modules):
            registry.pop(name, None)
        if isinstance(value, Parameter):
            self._parameters[name] = value
        elif isinstance(value, Module):
            self._modules[name] = value
        object.__setattr__(self, name, value)

    def register_buffer(self, name: str, value: np.ndarray) -> None:
        """Store ``value`` as attribute ``name`` and include it in ``state_dict``."""
        self._buffers[name] = None
        object.__setattr__(self, name, value)

    # -- computation -------------------------------------------------------

    def forward(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.forward(x)

    # -- traversal ---------------------------------------------------------

    def children(self) -> Iterator["Module"]:
        return iter(self._modules.values())

    def named_parameters(self, prefix: str = "") -> Iterator[tuple[str, Parameter]]:
        """Yield ``(dotted_name, parameter)`` for this module and its children."""
        for name, param in self._parameters.items():
            yield prefix + name, param
        for name, module in self._modules.items():
            yield from module.named_parameters(prefix + name + ".")

    def parameters(self) -> list[Parameter]:
        return [param for _, param in self.named_parameters()]

    def named_buffers(self, prefix: str = "") -> Iterator[tuple[str, np.ndarray]]:
        for name in self._buffers:
            yield prefix + name, getattr(self, name)
        for name, module in self._modules.items():
            yield from module.named_buffers(prefix + name + ".")

    def zero_grad(self) -> None:
        for param in self.parameters():
            param.zero_grad()

    def train(self, mode: bool = True) -> "Module":
        """Set training mode (dropout active, batch statistics) on every module."""
        object.__setattr__(self, "training", bool(mode))
        for module in self._modules.values():
            module.train(mode)
        return self

    def eval(self) -> "Module":
        return self.train(False)

    # -- state -------------------------------------------------------------

    def state_dict(self) -> "OrderedDict[str, np.ndarray]":
        """Return copies of every parameter and buffer, keyed by dotted name."""
        state: OrderedDict[str, np.ndarray] = OrderedDict()
        for name, param in self.named_parameters():
            state[name] = param.data.copy()
        for name, buffer in self.named_buffers():
            state[name] = np.array(buffer, copy=True)
        return state

    def load_state_dict(self, state: dict) -> None:
        """Copy arrays from ``state`` into the parameters and buffers in place.

        Raises
        ------
        ValueError
            If a key is missing or unexpected, or an array has the wrong shape.
        """
        expected = list(self.state_dict().keys())
        missing = [key for key in expected if key not in state]
        unexpected = [key for key in state if key not in expected]
        if missing or unexpected:
            raise ValueError(
                f"state does not match {type(self).__name__}: missing keys {missing}, "
                f"unexpected keys {unexpected}"
            )

        params = dict(self.named_parameters())
        for key in expected:
            value = np.asarray(state[key])
            if key in params:
                target = params[key].data
                if value.shape != target.shape:
                    raise ValueError(
                        f"state[{key!r}] has shape {value.shape}, the parameter has shape {target.shape}"
                    )
                target[...] = value
            else:
                owner, _, attr = key.rpartition(".")
                module = self
                for part in owner.split(".") if owner else []:
                    module = module._modules[part]
                current = getattr(module, attr)
                if np.shape(current) != value.shape:
                    raise ValueError(
                        f"state[{key!r}] has shape {value.shape}, the buffer has shape {np.shape(current)}"
                    )
                object.__setattr__(module, attr, value.astype(np.asarray(current).dtype, copy=True))

    def num_parameters(self) -> int:
        return sum(param.size for param in self.parameters())

    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__}({self.extra_repr()}"]
        for name, module in self._modules.items():
            child = repr(module).replace("\n", "\n  ")
            lines.append(f"  ({name}): {child}")
        if len(lines) == 1:
            return lines[0] + ")"
        return "\n".join(lines) + "\n)"
