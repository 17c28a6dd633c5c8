"""Printable overview of a model: layers, output shapes and parameter counts."""

from __future__ import annotations

import numbers

import numpy as np

from convgrad.nn.module import Module


def _named_modules(module: Module, prefix: str = "", seen: set | None = None):
    # A module registered under two names is listed once, under the first.
    seen = set() if seen is None else seen
    if id(module) in seen:
        return
    seen.add(id(module))
    yield prefix, module
    for name, child in module._modules.items():
        yield from _named_modules(child, f"{prefix}.{name}" if prefix else name, seen)


def _format_bytes(count: int) -> str:
    if count < 2**20:
        return f"{count / 2**10:.1f} KiB"
    return f"{count / 2**20:.2f} MiB"


def _default_dtype(model: Module) -> np.dtype:
    for param in model.parameters():
        return param.data.dtype
    return np.dtype(np.float32)


def summary(model: Module, input_shape, dtype=None) -> str:
    """Run one forward pass on zeros and return a table of the layers.

    Parameters
    ----------
    model : Module
        The model to describe.
    input_shape : tuple of int
        Shape of one sample, without the batch axis, e.g. ``(1, 28, 28)``.
        The forward pass uses a batch of 1.
    dtype : numpy floating dtype, optional
        dtype of the zeros. The default is the dtype of the model's first
        parameter, or float32 when it has none.

    Returns
    -------
    str
        A table with one row per leaf module (a module without children) and
        per module that owns parameters, in the order of their first forward
        call. Columns: dotted name, type, output shape (batch axis included,
        so it starts with 1) and the number of parameters the module owns.
        Totals follow. Modules that
        the forward pass never calls are listed at the end with output shape
        ``-``.

    Notes
    -----
    The forward pass runs in evaluation mode, so dropout is off and batch
    normalization reads its running statistics without updating them. The
    previous mode of every module is restored afterwards, also when the
    forward pass raises. Output shapes are recorded by temporarily wrapping
    each module's ``forward`` on the instance.
    """
    if not isinstance(model, Module):
        raise TypeError(f"model must be a Module, got {type(model).__name__}")
    if isinstance(input_shape, numbers.Integral):
        input_shape = (input_shape,)
    if not isinstance(input_shape, (tuple, list)) or not all(
        isinstance(n, numbers.Integral) and not isinstance(n, bool) and n >= 1 for n in input_shape
    ):
        raise ValueError(f"input_shape must be a tuple of positive ints (one sample, no batch axis), got {input_shape!r}")
    dtype = _default_dtype(model) if dtype is None else np.dtype(dtype)

    named = list(_named_modules(model))
    listed = [(name, module) for name, module in named if not module._modules or module._parameters]
    output_shapes: dict[int, tuple[int, ...]] = {}
    call_order: list[int] = []

    def wrap(module: Module):
        original = module.forward

        def recording_forward(x):
            output = original(x)
            if id(module) not in output_shapes:
                call_order.append(id(module))
            output_shapes[id(module)] = np.shape(output)
            return output

        return recording_forward

    previous_modes = [(module, module.training) for _, module in named]
    model.eval()
    for _, module in listed:
        object.__setattr__(module, "forward", wrap(module))
    try:
        output = model.forward(np.zeros((1,) + tuple(input_shape), dtype=dtype))
    finally:
        for _, module in listed:
            # Deleting the instance attribute uncovers the class's forward again.
            del module.__dict__["forward"]
        for module, mode in previous_modes:
            object.__setattr__(module, "training", mode)

    rank = {key: position for position, key in enumerate(call_order)}
    unused_rank = len(call_order)
    listed.sort(key=lambda item: rank.get(id(item[1]), unused_rank))

    rows = [("Layer", "Type", "Output shape", "Params")]
    for name, module in listed:
        shape = output_shapes.get(id(module))
        own_params = sum(param.size for param in module._parameters.values())
        rows.append((name or "(model)", type(module).__name__, "-" if shape is None else str(tuple(shape)), f"{own_params:,}"))

    widths = [max(len(row[column]) for row in rows) for column in range(4)]
    rule = "-" * (sum(widths) + 3 * 2)

    def format_row(row) -> str:
        cells = [cell.ljust(width) for cell, width in zip(row[:3], widths[:3])]
        return "  ".join(cells + [row[3].rjust(widths[3])])

    total = model.num_parameters()
    parameter_bytes = sum(param.data.nbytes for param in model.parameters())
    lines = [format_row(rows[0]), rule]
    lines += [format_row(row) for row in rows[1:]]
    lines += [
        rule,
        f"Input shape: {(1,) + tuple(input_shape)}, output shape: {tuple(np.shape(output))}",
        f"Total params: {total:,}",
        f"Parameter memory: {_format_bytes(parameter_bytes)}",
    ]
    return "\n".join(lines)
