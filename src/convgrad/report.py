"""Training report: ``metrics.json`` and PNG plots in the run directory.

Files written by :func:`write_report`:

``metrics.json``
    Per-epoch train and test loss and accuracy, learning rate and seconds,
    the best epoch, the final per-class accuracy and confusion matrix, the
    configuration and the versions of Python, NumPy and convgrad.
``curves.png``
    Loss and accuracy per epoch, train against test.
``filters.png``
    The first convolution's learned kernels: one line plot per filter for
    1-D kernels, one image per filter for 2-D kernels.
``confusion.png``
    The final confusion matrix (rows are true classes, columns predictions).

matplotlib is imported only inside the plotting functions, and through its
object-oriented API with the Agg canvas, so importing this module is cheap
and no global backend is changed.
"""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path
from typing import Sequence

import numpy as np

METRICS_FILE = "metrics.json"
CURVES_FILE = "curves.png"
FILTERS_FILE = "filters.png"
CONFUSION_FILE = "confusion.png"

# Filters drawn per row of filters.png.
FILTER_COLUMNS = 8


def versions() -> dict[str, str]:
    """Return the versions of Python, NumPy, convgrad and the platform."""
    import convgrad

    return {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "convgrad": convgrad.__version__,
        "platform": platform.platform(),
    }


def write_metrics(path, metrics: dict) -> None:
    """Write ``metrics`` as indented JSON, replacing ``path`` atomically."""
    path = Path(path)
    temporary = path.with_name(path.name + ".tmp")
    with open(temporary, "w", encoding="utf-8") as handle:
        json.dump(metrics, handle, indent=2, allow_nan=False)
        handle.write("\n")
    os.replace(temporary, path)


def write_report(out_dir, metrics: dict, model, confusion: np.ndarray, class_names: Sequence[str] | None) -> list[Path]:
    """Write ``metrics.json`` and the three plots into ``out_dir``.

    Parameters
    ----------
    out_dir : str or Path
        Run directory, created if missing.
    metrics : dict
        JSON-serializable content of ``metrics.json``. ``metrics["epochs"]``
        must be the list of per-epoch records with keys ``epoch``,
        ``train_loss``, ``train_acc``, ``test_loss`` and ``test_acc``.
    model : convgrad.nn.Module
        Trained model whose first convolution is drawn.
    confusion : ndarray of int, shape (num_classes, num_classes)
        Final confusion matrix, rows indexed by the true class.
    class_names : sequence of str or None
        Axis labels for the confusion matrix; class indices when ``None``.

    Returns
    -------
    list of Path
        The files written.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = [out_dir / METRICS_FILE]
    write_metrics(written[0], metrics)

    plot_curves(metrics["epochs"], out_dir / CURVES_FILE)
    written.append(out_dir / CURVES_FILE)
    weight = first_conv_weight(model)
    if weight is not None:
        plot_filters(weight, out_dir / FILTERS_FILE)
        written.append(out_dir / FILTERS_FILE)
    plot_confusion(confusion, class_names, out_dir / CONFUSION_FILE)
    written.append(out_dir / CONFUSION_FILE)
    return written


def first_conv_weight(model) -> np.ndarray | None:
    """Return the weight of the first 1-D or 2-D convolution in ``model``.

    The first parameter named ``weight`` of a module whose class name starts
    with "Conv" and whose weight has 3 dimensions (C_out, C_in, k) or 4
    dimensions (C_out, C_in, kh, kw). ``None`` when there is none.
    """
    stack = [model]
    while stack:
        module = stack.pop(0)
        weight = module._parameters.get("weight")
        if type(module).__name__.startswith("Conv") and weight is not None and weight.data.ndim in (3, 4):
            return weight.data
        stack[0:0] = list(module.children())
    return None


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def plot_curves(records: Sequence[dict], path) -> None:
    """Plot loss and accuracy per epoch, train and test, into a PNG at ``path``."""
    from matplotlib.ticker import MaxNLocator

    figure = _figure(10, 4)
    loss_axes, accuracy_axes = figure.subplots(1, 2)
    epochs = [record["epoch"] for record in records]
    for split, style in (("train", "-o"), ("test", "-s")):
        loss_axes.plot(epochs, [record[f"{split}_loss"] for record in records], style, markersize=3, label=split)
        accuracy_axes.plot(epochs, [record[f"{split}_acc"] for record in records], style, markersize=3, label=split)
    loss_axes.set(xlabel="epoch", ylabel="mean cross-entropy", title="Loss")
    accuracy_axes.set(xlabel="epoch", ylabel="accuracy", title="Accuracy")
    for axes in (loss_axes, accuracy_axes):
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.grid(alpha=0.3)
        axes.legend()
    figure.savefig(path)


def plot_filters(weight: np.ndarray, path) -> None:
    """Draw the kernels of a convolution weight into a PNG at ``path``.

    ``weight`` has shape (C_out, C_in, k) or (C_out, C_in, kh, kw). A 1-D
    filter becomes a line plot of its taps, one line per input channel. A
    2-D filter becomes an image with a color scale shared by all filters and
    centered on zero. For more than one input channel, 2-D filters show
    input channel 0 only.
    """
    weight = np.asarray(weight, dtype=np.float64)
    num_filters = weight.shape[0]
    columns = min(FILTER_COLUMNS, num_filters)
    rows = -(-num_filters // columns)
    figure = _figure(1.6 * columns, 1.3 * rows + 0.5)
    grid = np.atleast_1d(figure.subplots(rows, columns, squeeze=False)).ravel()
    limit = float(np.max(np.abs(weight))) or 1.0

    for index, axes in enumerate(grid):
        if index >= num_filters:
            axes.set_axis_off()
            continue
        if weight.ndim == 3:
            for channel in range(weight.shape[1]):
                axes.plot(weight[index, channel], "-o", markersize=2, linewidth=1)
            axes.axhline(0.0, color="gray", linewidth=0.5)
            axes.set_ylim(-limit * 1.05, limit * 1.05)
            axes.tick_params(labelsize=6)
        else:
            axes.imshow(weight[index, 0], cmap="RdBu_r", vmin=-limit, vmax=limit)
            axes.set_xticks([])
            axes.set_yticks([])
        axes.set_title(str(index), fontsize=7)

    kind = "1-D" if weight.ndim == 3 else "2-D"
    channel_note = ", input channel 0" if weight.ndim == 4 and weight.shape[1] > 1 else ""
    figure.suptitle(f"First convolution: {num_filters} {kind} filters of shape {weight.shape[2:]}{channel_note}")
    figure.savefig(path)


def plot_confusion(confusion: np.ndarray, class_names: Sequence[str] | None, path) -> None:
    """Draw a confusion matrix with per-cell counts into a PNG at ``path``."""
    confusion = np.asarray(confusion)
    num_classes = confusion.shape[0]
    labels = list(class_names) if class_names is not None else [str(i) for i in range(num_classes)]
    size = max(4.0, 0.55 * num_classes + 2.5)
    figure = _figure(size + 1.0, size)
    axes = figure.subplots()
    image = axes.imshow(confusion, cmap="Blues")
    figure.colorbar(image, ax=axes, shrink=0.8, label="samples")

    threshold = confusion.max() / 2 if confusion.size else 0
    for row in range(num_classes):
        for column in range(num_classes):
            count = int(confusion[row, column])
            color = "white" if count > threshold else "black"
            axes.text(column, row, str(count), ha="center", va="center", fontsize=7, color=color)

    axes.set_xticks(range(num_classes), labels, rotation=45, ha="right", fontsize=8)
    axes.set_yticks(range(num_classes), labels, fontsize=8)
    axes.set(xlabel="predicted class", ylabel="true class", title="Confusion matrix (test split)")
    figure.savefig(path)
