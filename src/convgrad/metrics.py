"""Classification metrics computed from logits or predicted class indices."""

from __future__ import annotations

import numbers

import numpy as np


def _predicted_classes(logits_or_pred, name: str) -> np.ndarray:
    """Return class indices: argmax over axis 1 of (N, C) scores, or the (N,) indices as given."""
    array = np.asarray(logits_or_pred)
    if array.ndim == 2:
        if array.shape[1] == 0:
            raise ValueError(f"{name} has shape {array.shape}, with no class columns")
        if not (np.issubdtype(array.dtype, np.number) and not np.issubdtype(array.dtype, np.complexfloating)):
            raise TypeError(f"{name} of shape (N, C) must contain real scores, got dtype {array.dtype}")
        return np.argmax(array, axis=1)
    if array.ndim == 1:
        if not np.issubdtype(array.dtype, np.integer):
            raise TypeError(
                f"{name} of shape (N,) must contain integer class indices, got dtype {array.dtype}"
            )
        return array
    raise ValueError(f"{name} must have shape (N, C) (scores) or (N,) (class indices), got shape {array.shape}")


def _check_targets(targets, num_samples: int) -> np.ndarray:
    targets = np.asarray(targets)
    if not np.issubdtype(targets.dtype, np.integer):
        raise TypeError(f"targets must have an integer dtype (class indices), got dtype {targets.dtype}")
    if targets.shape != (num_samples,):
        raise ValueError(f"targets must have shape ({num_samples},) to match the predictions, got shape {targets.shape}")
    return targets


def accuracy(logits_or_pred, targets) -> float:
    """Compute the fraction of samples whose predicted class equals the target.

    Parameters
    ----------
    logits_or_pred : array_like
        Scores of shape (N, C), whose argmax over axis 1 is the prediction
        (the first maximum wins a tie), or integer class indices of shape (N,).
    targets : array_like of int, shape (N,)
        True class indices.

    Returns
    -------
    float
        Value in [0, 1].

    Raises
    ------
    ValueError
        If N is 0 or the shapes do not match.
    """
    pred = _predicted_classes(logits_or_pred, "logits_or_pred")
    targets = _check_targets(targets, pred.shape[0])
    if pred.shape[0] == 0:
        raise ValueError("accuracy is undefined for 0 samples")
    return float(np.count_nonzero(pred == targets)) / pred.shape[0]


def confusion_matrix(pred, targets, num_classes: int) -> np.ndarray:
    """Count samples by true and predicted class.

    ``matrix[i, j]`` is the number of samples of true class ``i`` that were
    predicted as class ``j``, so rows sum to the class frequencies and the
    diagonal contains the correct predictions.

    Parameters
    ----------
    pred : array_like
        Integer class indices of shape (N,), or scores of shape (N, C) whose
        argmax over axis 1 is taken.
    targets : array_like of int, shape (N,)
        True class indices.
    num_classes : int
        Number of classes K. Every index must be in [0, K).

    Returns
    -------
    numpy.ndarray of int64, shape (K, K)
    """
    if isinstance(num_classes, bool) or not isinstance(num_classes, numbers.Integral) or num_classes <= 0:
        raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
    num_classes = int(num_classes)
    pred = _predicted_classes(pred, "pred")
    targets = _check_targets(targets, pred.shape[0])
    for name, values in (("pred", pred), ("targets", targets)):
        if values.size and (values.min() < 0 or values.max() >= num_classes):
            bad = values.min() if values.min() < 0 else values.max()
            raise ValueError(f"{name} must be in [0, {num_classes}) for num_classes={num_classes}, found {bad}")

    # Each (true, predicted) pair maps to one cell of the flattened matrix.
    cells = targets.astype(np.int64) * num_classes + pred.astype(np.int64)
    counts = np.bincount(cells, minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes).astype(np.int64, copy=False)


def per_class_accuracy(confusion) -> np.ndarray:
    """Compute the recall of each class from a confusion matrix.

    ``result[i] = confusion[i, i] / confusion[i, :].sum()``, the fraction of
    samples of true class ``i`` predicted correctly.

    Parameters
    ----------
    confusion : array_like, shape (K, K)
        Non-negative counts with rows as true classes, as returned by
        ``confusion_matrix``.

    Returns
    -------
    numpy.ndarray of float64, shape (K,)
        NaN for a class with no samples (an all-zero row).
    """
    confusion = np.asarray(confusion)
    if confusion.ndim != 2 or confusion.shape[0] != confusion.shape[1]:
        raise ValueError(f"confusion must be a square (K, K) matrix, got shape {confusion.shape}")
    if not (np.issubdtype(confusion.dtype, np.integer) or np.issubdtype(confusion.dtype, np.floating)):
        raise TypeError(f"confusion must contain counts (integer or float), got dtype {confusion.dtype}")
    if confusion.size and np.min(confusion) < 0:
        raise ValueError(f"confusion must contain non-negative counts, found {np.min(confusion)}")

    totals = confusion.sum(axis=1).astype(np.float64)
    correct = np.diagonal(confusion).astype(np.float64)
    result = np.full(confusion.shape[0], np.nan)
    np.divide(correct, totals, out=result, where=totals > 0)
    return result
