"""Containers that compose layers."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np

from convgrad.nn.module import Module


class Sequential(Module):
    """Chain of modules: ``forward`` runs them in order, ``backward`` in reverse.

    Parameters
    ----------
    *modules : Module
        Layers registered under the names ``"0"``, ``"1"``, ..., so parameter
        names in ``state_dict`` read ``"0.weight"``, as in PyTorch. A single
        ``OrderedDict`` of ``name -> Module`` registers them under those names.

    Examples
    --------
    >>> import numpy as np
    >>> from convgrad.nn.container import Sequential
    >>> from convgrad.nn.linear import Linear
    >>> from convgrad.nn.activation import ReLU
    >>> rng = np.random.default_rng(0)
    >>> model = Sequential(Linear(4, 8, rng=rng), ReLU(), Linear(8, 2, rng=rng))
    >>> model.forward(np.ones((3, 4), dtype=np.float32)).shape
    (3, 2)
    """

    def __init__(self, *modules):
        super().__init__()
        if len(modules) == 1 and isinstance(modules[0], OrderedDict):
            named = list(modules[0].items())
        else:
            named = [(str(index), module) for index, module in enumerate(modules)]
        for name, module in named:
            self._check_module(name, module)
            setattr(self, name, module)

    @staticmethod
    def _check_module(name, module) -> None:
        if not isinstance(name, str) or not name or "." in name:
            raise ValueError(f"Sequential layer names must be non-empty strings without '.', got {name!r}")
        if not isinstance(module, Module):
            raise TypeError(f"Sequential accepts only Module instances, got {type(module).__name__} for {name!r}")

    def append(self, module: Module) -> "Sequential":
        """Add ``module`` at the end under the next free integer name."""
        name = str(len(self._modules))
        self._check_module(name, module)
        setattr(self, name, module)
        return self

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def __getitem__(self, index):
        modules = list(self._modules.values())
        if isinstance(index, slice):
            names = list(self._modules.keys())[index]
            return Sequential(OrderedDict((name, self._modules[name]) for name in names))
        return modules[index]

    def forward(self, x: np.ndarray) -> np.ndarray:
        for module in self._modules.values():
            x = module(x)
        return x

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        for module in reversed(self._modules.values()):
            grad_output = module.backward(grad_output)
        return grad_output
