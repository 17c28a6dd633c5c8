"""Loss functions with explicit forward and backward passes.

A loss object works like a layer without parameters. ``forward`` returns the
loss and stores what ``backward`` needs, and ``backward`` returns the gradient
of the loss with respect to the first argument of ``forward``.
"""

from __future__ import annotations

import numbers

import numpy as np

_REDUCTIONS = ("mean", "sum", "none")


def _as_float_array(x, name: str) -> np.ndarray:
    """Convert ``x`` to a floating array, promoting integers and booleans to float64."""
    array = np.asarray(x)
    if array.dtype == object or not (
        np.issubdtype(array.dtype, np.number) or array.dtype == np.bool_
    ):
        raise TypeError(f"{name} must be a numeric array, got dtype {array.dtype}")
    if np.issubdtype(array.dtype, np.complexfloating):
        raise TypeError(f"{name} must be real, got dtype {array.dtype}")
    if not np.issubdtype(array.dtype, np.floating):
        array = array.astype(np.float64)
    return array


def _check_reduction(reduction) -> str:
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")
    return reduction


def log_softmax(x, axis: int = -1) -> np.ndarray:
    """Compute ``log(softmax(x))`` along ``axis`` without overflow.

    ``log_softmax(x)_i = x_i - m - log(sum_j exp(x_j - m))`` with
    ``m = max_j x_j``, so the largest exponent is 0 and logits of any finite
    size are safe.

    Parameters
    ----------
    x : array_like
        Real input of any shape. Integers are promoted to float64. float32 and
        float64 keep their dtype.
    axis : int
        Axis that the softmax normalizes over.

    Returns
    -------
    numpy.ndarray
        Same shape and floating dtype as ``x``.
    """
    x = _as_float_array(x, "x")
    shifted = x - np.max(x, axis=axis, keepdims=True)
    log_normalizer = np.log(np.sum(np.exp(shifted), axis=axis, keepdims=True))
    shifted -= log_normalizer
    return shifted


def softmax(x, axis: int = -1) -> np.ndarray:
    """Compute ``exp(x_i) / sum_j exp(x_j)`` along ``axis`` without overflow.

    Parameters
    ----------
    x : array_like
        Real input of any shape. Integers are promoted to float64.
    axis : int
        Axis that the softmax normalizes over.

    Returns
    -------
    numpy.ndarray
        Same shape and floating dtype as ``x``. Every slice along ``axis``
        sums to 1 up to rounding.
    """
    x = _as_float_array(x, "x")
    exps = np.exp(x - np.max(x, axis=axis, keepdims=True))
    exps /= np.sum(exps, axis=axis, keepdims=True)
    return exps


def _check_upstream(grad_output, reduction: str, num_samples: int, dtype) -> np.ndarray | float:
    """Validate the upstream gradient of a loss: a scalar, or shape (N,) when reduction is 'none'."""
    if reduction == "none":
        grad = np.asarray(grad_output, dtype=dtype)
        if grad.shape != (num_samples,) and grad.shape != ():
            raise ValueError(
                f"grad_output must be a scalar or have shape ({num_samples},) when reduction='none', "
                f"got shape {grad.shape}"
            )
        return grad
    if not isinstance(grad_output, numbers.Real) and np.ndim(grad_output) != 0:
        raise ValueError(
            f"grad_output must be a scalar when reduction={reduction!r}, "
            f"got shape {np.shape(grad_output)}"
        )
    return float(grad_output)


class CrossEntropyLoss:
    """Softmax cross-entropy between logits and integer class targets.

    With ``p = softmax(logits[n])``, ``y = targets[n]``, ``C`` classes and
    ``eps = label_smoothing``, the loss of sample ``n`` is

        ``l_n = -(1 - eps) * log p_y - (eps / C) * sum_c log p_c``

    which is the cross-entropy against the target distribution
    ``q = (1 - eps) * onehot(y) + eps / C``. The values match
    ``torch.nn.CrossEntropyLoss`` with the same ``reduction`` and
    ``label_smoothing`` (no class weights, no ignored index).

    The gradient with respect to the logits is ``softmax(logits) - q`` per
    sample, divided by N for ``reduction="mean"``.

    Parameters
    ----------
    reduction : {"mean", "sum", "none"}
        How the per-sample losses ``l_n`` are combined.
    label_smoothing : float
        ``eps`` above, in [0, 1].

    Notes
    -----
    The logits must be 2-D, shape (N, C). For a dense prediction of shape
    (N, C, H, W), move the class axis last and reshape to (N * H * W, C).
    """

    def __init__(self, reduction: str = "mean", label_smoothing: float = 0.0):
        self.reduction = _check_reduction(reduction)
        if not isinstance(label_smoothing, numbers.Real) or not 0.0 <= label_smoothing <= 1.0:
            raise ValueError(f"label_smoothing must be a number in [0, 1], got {label_smoothing!r}")
        self.label_smoothing = float(label_smoothing)
        self.log_probs: np.ndarray | None = None
        self.targets: np.ndarray | None = None

    def forward(self, logits, targets):
        """Compute the loss and store the log-probabilities for ``backward``.

        Parameters
        ----------
        logits : array_like, shape (N, C)
            Unnormalized scores. float32 stays float32, integers become float64.
        targets : array_like of int, shape (N,)
            Class index of each sample, in [0, C).

        Returns
        -------
        float or numpy.ndarray
            The mean or sum as a Python float, or the per-sample losses of
            shape (N,) in the dtype of ``logits`` when ``reduction="none"``.
        """
        logits = _as_float_array(logits, "logits")
        if logits.ndim != 2:
            raise ValueError(f"logits must have shape (N, C), got shape {logits.shape}")
        num_samples, num_classes = logits.shape
        if num_samples == 0 or num_classes == 0:
            raise ValueError(f"logits must have at least one sample and one class, got shape {logits.shape}")
        targets = _check_targets(targets, num_samples, num_classes)

        log_probs = log_softmax(logits, axis=1)
        losses = -log_probs[np.arange(num_samples), targets]
        if self.label_smoothing > 0.0:
            eps = self.label_smoothing
            # (eps / C) * sum_c log p_c is eps times the mean over classes.
            losses *= 1.0 - eps
            losses -= eps * np.mean(log_probs, axis=1)

        self.log_probs = log_probs
        self.targets = targets
        return _reduce(losses, self.reduction)

    __call__ = forward

    def backward(self, grad_output=1.0) -> np.ndarray:
        """Return the gradient of the loss with respect to the logits, shape (N, C).

        Parameters
        ----------
        grad_output : float or array_like
            Gradient of the final objective with respect to this loss: a
            scalar, or shape (N,) when ``reduction="none"``.
        """
        if self.log_probs is None:
            raise RuntimeError("CrossEntropyLoss.backward called before forward")
        num_samples, num_classes = self.log_probs.shape
        upstream = _check_upstream(grad_output, self.reduction, num_samples, self.log_probs.dtype)

        grad = np.exp(self.log_probs)
        grad[np.arange(num_samples), self.targets] -= 1.0 - self.label_smoothing
        if self.label_smoothing > 0.0:
            grad -= self.label_smoothing / num_classes

        if self.reduction == "mean":
            grad *= upstream / num_samples
        elif self.reduction == "sum":
            grad *= upstream
        else:
            grad *= upstream[..., None] if upstream.ndim else upstream
        return grad

    def __repr__(self) -> str:
        return f"CrossEntropyLoss(reduction={self.reduction!r}, label_smoothing={self.label_smoothing})"


def _check_targets(targets, num_samples: int, num_classes: int) -> np.ndarray:
    targets = np.asarray(targets)
    if not np.issubdtype(targets.dtype, np.integer):
        raise TypeError(f"targets must have an integer dtype (class indices), got dtype {targets.dtype}")
    if targets.shape != (num_samples,):
        raise ValueError(f"targets must have shape ({num_samples},) to match the logits, got shape {targets.shape}")
    low, high = int(targets.min()), int(targets.max())
    if low < 0 or high >= num_classes:
        bad = low if low < 0 else high
        raise ValueError(f"targets must be in [0, {num_classes}) for {num_classes} classes, found {bad}")
    return targets.astype(np.intp, copy=False)


def _reduce(losses: np.ndarray, reduction: str):
    if reduction == "mean":
        return float(np.mean(losses))
    if reduction == "sum":
        return float(np.sum(losses))
    return losses


class MSELoss:
    """Mean squared error ``l_i = (input_i - target_i) ** 2`` over all elements.

    ``reduction="mean"`` divides the sum by the number of elements, not by N,
    as ``torch.nn.MSELoss`` does. The gradient with respect to ``input`` is
    ``2 * (input - target)``, divided by the element count for the mean.

    Parameters
    ----------
    reduction : {"mean", "sum", "none"}
        How the element losses are combined. ``"none"`` returns an array of
        the input's shape.
    """

    def __init__(self, reduction: str = "mean"):
        self.reduction = _check_reduction(reduction)
        self.diff: np.ndarray | None = None

    def forward(self, input, target):
        """Compute the loss and store ``input - target`` for ``backward``.

        Parameters
        ----------
        input : array_like
            Prediction of any shape. float32 stays float32, integers become
            float64.
        target : array_like
            Same shape as ``input``. It is cast to the dtype of ``input``.

        Returns
        -------
        float or numpy.ndarray
            A Python float, or the element losses when ``reduction="none"``.
        """
        input = _as_float_array(input, "input")
        target = np.asarray(target)
        if target.shape != input.shape:
            raise ValueError(f"target must have the shape of input {input.shape}, got shape {target.shape}")
        if input.size == 0:
            raise ValueError("input must have at least one element")
        diff = np.subtract(input, _as_float_array(target, "target").astype(input.dtype, copy=False))
        self.diff = diff
        return _reduce(np.square(diff), self.reduction)

    __call__ = forward

    def backward(self, grad_output=1.0) -> np.ndarray:
        """Return the gradient of the loss with respect to ``input``.

        Parameters
        ----------
        grad_output : float or array_like
            A scalar, or an array of the input's shape when ``reduction="none"``.
        """
        if self.diff is None:
            raise RuntimeError("MSELoss.backward called before forward")
        grad = self.diff * 2.0
        if self.reduction == "none":
            upstream = np.asarray(grad_output, dtype=grad.dtype)
            if upstream.shape not in ((), grad.shape):
                raise ValueError(
                    f"grad_output must be a scalar or have shape {grad.shape} when reduction='none', "
                    f"got shape {upstream.shape}"
                )
            grad *= upstream
            return grad
        upstream = _check_upstream(grad_output, self.reduction, grad.shape[0] if grad.ndim else 1, grad.dtype)
        if self.reduction == "mean":
            grad *= upstream / grad.size
        else:
            grad *= upstream
        return grad

    def __repr__(self) -> str:
        return f"MSELoss(reduction={self.reduction!r})"
