"""Minibatch training with checkpoints that resume bit for bit.

:class:`Trainer` runs epochs of shuffled minibatches, evaluates on the test
split after each epoch and writes two checkpoints into its output directory:

``last.npz``
    Written after every epoch. ``Trainer(..., resume=True)`` continues from it.
``best.npz``
    Written whenever the test accuracy improves on every earlier epoch.

Both contain the model's parameters and buffers, the optimizer and schedule
state, the state of every random generator the run uses, the epoch, the
metrics history and whatever ``metadata`` the caller adds (the command line
adds the configuration, the preset and dataset names and the normalization
statistics). Training is deterministic given the seed because one
``numpy.random.Generator`` draws the initial weights, the shuffling order and
the dropout masks, and its state is saved with the weights. A run stopped after
epoch k and resumed therefore ends with the same bits as an uninterrupted run
on the same machine.

:func:`prepare_training` builds everything from a :class:`TrainConfig`, which
is what ``convgrad train`` does.
"""

from __future__ import annotations

import dataclasses
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, TextIO

import numpy as np

from convgrad import models
from convgrad.checkpoint import load_checkpoint, save_checkpoint

CHECKPOINT_FORMAT = "convgrad-train-checkpoint"
CHECKPOINT_VERSION = 1

DATASET_NAMES = ("mnist1d", "fashion-mnist", "mnist")
OPTIMIZER_NAMES = ("adamw", "adam", "sgd")
SCHEDULE_NAMES = ("onecycle", "cosine", "step", "constant")

# Defaults per dataset. MNIST-1D follows the usual recipe for that data set:
# 2000 steps of batch 100 over its 4000 training samples.
DATASET_DEFAULTS = {
    "mnist1d": {"epochs": 50, "batch_size": 100},
    "fashion-mnist": {"epochs": 5, "batch_size": 128},
    "mnist": {"epochs": 3, "batch_size": 128},
}
DEFAULT_LR = {"adamw": 3e-3, "adam": 3e-3, "sgd": 0.05}
DEFAULT_WEIGHT_DECAY = 5e-4
SGD_MOMENTUM = 0.9
STEP_SCHEDULE_GAMMA = 0.1
EVAL_BATCH_SIZE = 500


class TrainingDiverged(RuntimeError):
    """Raised when the training loss or the parameters stop being finite.

    Attributes
    ----------
    epoch : int
        1-based epoch in which the non-finite value appeared.
    step : int
        1-based global step (minibatch count since the start of training).
    value : float
        The offending loss value, or ``nan`` when a parameter is the problem.
    """

    def __init__(self, message: str, epoch: int, step: int, value: float):
        super().__init__(message)
        self.epoch = epoch
        self.step = step
        self.value = value


# -- state (de)serialization ---------------------------------------------------


def flatten_state(value: Any, prefix: str, arrays: dict[str, np.ndarray]) -> Any:
    """Split a nested state into NumPy arrays and a JSON-serializable tree.

    Every array (and NumPy scalar, kept as a 0-d array so its dtype survives)
    is stored in ``arrays`` under a key that starts with ``prefix`` and is
    replaced in the tree by ``{"__array__": key}``. Dicts with string keys stay
    dicts, other dicts become ``{"__items__": [[key, value], ...]}``, tuples
    become ``{"__tuple__": [...]}``, lists stay lists, and Python scalars,
    strings and ``None`` pass through. :func:`unflatten_state` inverts it.

    Raises
    ------
    TypeError
        If the state contains any other type.
    """
    if isinstance(value, (np.ndarray, np.generic)):
        arrays[prefix] = np.array(value, copy=True)
        return {"__array__": prefix}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, dict):
        if all(isinstance(key, str) for key in value):
            return {key: flatten_state(item, f"{prefix}/{key}", arrays) for key, item in value.items()}
        return {
            "__items__": [
                [key, flatten_state(item, f"{prefix}/{index}", arrays)]
                for index, (key, item) in enumerate(value.items())
            ]
        }
    if isinstance(value, tuple):
        return {"__tuple__": [flatten_state(item, f"{prefix}/{i}", arrays) for i, item in enumerate(value)]}
    if isinstance(value, list):
        return [flatten_state(item, f"{prefix}/{i}", arrays) for i, item in enumerate(value)]
    raise TypeError(f"cannot store a value of type {type(value).__name__} at {prefix!r} in a checkpoint")


def unflatten_state(tree: Any, arrays: dict[str, np.ndarray]) -> Any:
    """Rebuild the nested state that :func:`flatten_state` split."""
    if isinstance(tree, list):
        return [unflatten_state(item, arrays) for item in tree]
    if not isinstance(tree, dict):
        return tree
    if set(tree) == {"__array__"}:
        array = arrays[tree["__array__"]]
        return array[()] if array.ndim == 0 else array
    if set(tree) == {"__items__"}:
        return {key: unflatten_state(item, arrays) for key, item in tree["__items__"]}
    if set(tree) == {"__tuple__"}:
        return tuple(unflatten_state(item, arrays) for item in tree["__tuple__"])
    return {key: unflatten_state(item, arrays) for key, item in tree.items()}


def find_generators(model, rng: np.random.Generator | None = None) -> dict[str, np.random.Generator]:
    """Return every distinct ``numpy.random.Generator`` the run draws from.

    The trainer's own generator is listed as ``"trainer"``. A module attribute
    that holds a different generator object (a layer built with its own
    generator) is listed under its dotted path, so that its state is saved
    too. Generators are told apart by identity.
    """
    found: dict[str, np.random.Generator] = {}
    seen: set[int] = set()
    if rng is not None:
        found["trainer"] = rng
        seen.add(id(rng))

    def visit(module, prefix):
        for name, value in vars(module).items():
            if isinstance(value, np.random.Generator) and id(value) not in seen:
                found[prefix + name] = value
                seen.add(id(value))
        for name, child in module._modules.items():
            visit(child, prefix + name + ".")

    visit(model, "model.")
    return found


def model_input(x: np.ndarray, input_shape: tuple[int, ...], dtype) -> np.ndarray:
    """Cast ``x`` to ``dtype`` and add the channel axis when it is missing.

    ``input_shape`` is the per-sample shape (C, *spatial) the model expects.
    A batch whose samples have one dimension fewer gets a channel axis of
    size 1 at position 1, so MNIST-1D's (N, 40) becomes (N, 1, 40).
    """
    x = np.asarray(x)
    if x.ndim == len(input_shape) and input_shape[0] == 1:
        x = x[:, None]
    return np.ascontiguousarray(x, dtype=dtype)


# -- the training loop -----------------------------------------------------------


@dataclass
class EpochRecord:
    """Metrics of one epoch. Losses are mean cross-entropy per sample."""

    epoch: int
    train_loss: float
    train_acc: float
    test_loss: float
    test_acc: float
    lr: float
    seconds: float

    def as_dict(self) -> dict[str, float]:
        return dataclasses.asdict(self)


class Trainer:
    """Train a model with minibatches and checkpoint it after every epoch.

    Parameters
    ----------
    model : convgrad.nn.Module
        Network mapping a batch (N, *input_shape) to logits (N, num_classes).
    loss : object
        ``forward(logits, targets) -> float`` (mean over the batch) and
        ``backward() -> grad_logits``, such as ``CrossEntropyLoss``.
    optimizer : object
        ``zero_grad()``, ``step()``, an ``lr`` attribute and
        ``state_dict()``/``load_state_dict()``.
    schedule : object or None
        Learning-rate schedule stepped once per minibatch, after the
        optimizer, or ``None`` for a constant learning rate.
    dataset : convgrad.datasets.Dataset
        Normalized splits. ``x_train`` and ``x_test`` are batches of samples
        with or without the channel axis (see :func:`model_input`).
    rng : numpy.random.Generator
        Generator for the shuffling order. Pass the generator that also
        initialized the model and feeds its dropout layers so that one saved
        state covers all randomness.
    epochs : int
        Total number of epochs, counting those done before a resume.
    batch_size : int
        Training minibatch size. The last minibatch of an epoch is smaller
        when ``batch_size`` does not divide the training set.
    out_dir : str or Path
        Directory for ``last.npz`` and ``best.npz``. Created if missing.
    input_shape : tuple of int
        Per-sample shape (C, *spatial) the model expects.
    patience : int or None
        Stop after this many consecutive epochs without a higher test
        accuracy than the best so far. ``None`` turns early stopping off.
    metadata : dict
        JSON-serializable values stored in every checkpoint under
        ``"run"`` (configuration, names, normalization tree).
    metadata_arrays : dict of str to ndarray
        Arrays stored in every checkpoint next to the model state, such as the
        normalization statistics.
    progress : bool
        Show a tqdm progress bar per epoch on ``stream``.
    stream : file object or None
        Where the progress bar and one line per epoch go. ``None`` keeps the
        trainer silent.
    resume : bool
        Load ``out_dir/last.npz`` and continue after its epoch.
    eval_batch_size : int
        Minibatch size for evaluation. It changes memory use, not results.
    """

    def __init__(
        self,
        model,
        loss,
        optimizer,
        schedule,
        dataset,
        *,
        rng: np.random.Generator,
        epochs: int,
        batch_size: int,
        out_dir,
        input_shape: tuple[int, ...],
        patience: int | None = None,
        metadata: dict | None = None,
        metadata_arrays: dict[str, np.ndarray] | None = None,
        progress: bool = False,
        stream: TextIO | None = None,
        resume: bool = False,
        eval_batch_size: int = EVAL_BATCH_SIZE,
    ):
        _check_positive_int("epochs", epochs)
        _check_positive_int("batch_size", batch_size)
        _check_positive_int("eval_batch_size", eval_batch_size)
        if patience is not None:
            _check_positive_int("patience", patience)
        if not isinstance(rng, np.random.Generator):
            raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")

        self.model = model
        self.loss = loss
        self.optimizer = optimizer
        self.schedule = schedule
        self.rng = rng
        self.epochs = epochs
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size
        self.out_dir = Path(out_dir)
        self.input_shape = tuple(input_shape)
        self.patience = patience
        self.metadata = dict(metadata or {})
        self.metadata_arrays = dict(metadata_arrays or {})
        self.progress = progress
        self.stream = stream

        dtype = model.parameters()[0].data.dtype
        self.x_train = model_input(dataset.x_train, self.input_shape, dtype)
        self.y_train = np.asarray(dataset.y_train, dtype=np.int64)
        self.x_test = model_input(dataset.x_test, self.input_shape, dtype)
        self.y_test = np.asarray(dataset.y_test, dtype=np.int64)
        if len(self.x_train) == 0:
            raise ValueError("dataset.x_train is empty: the training split needs at least one sample")

        self.epoch = 0
        self.global_step = 0
        self.history: list[EpochRecord] = []
        self.best_epoch = 0
        self.best_test_acc = -math.inf
        self.stop_reason: str | None = None

        if resume:
            self.load(self.last_path)

    # -- paths and properties --------------------------------------------------

    @property
    def last_path(self) -> Path:
        return self.out_dir / "last.npz"

    @property
    def best_path(self) -> Path:
        return self.out_dir / "best.npz"

    @property
    def steps_per_epoch(self) -> int:
        return math.ceil(len(self.x_train) / self.batch_size)

    @property
    def finished(self) -> bool:
        return self.epoch >= self.epochs or self.stop_reason is not None

    # -- training ----------------------------------------------------------------

    def fit(self, epoch_callback: Callable[["Trainer", EpochRecord], None] | None = None) -> list[EpochRecord]:
        """Train until ``epochs`` or early stopping and return the history.

        After each epoch the trainer evaluates on the test split, writes the
        checkpoints and then calls ``epoch_callback(trainer, record)``. An
        exception raised by the callback stops training with both checkpoints
        already written, which is how tests simulate an interruption.

        Raises
        ------
        TrainingDiverged
            If a minibatch loss, the parameters or the test loss are not
            finite. The checkpoints of the last completed epoch stay as they
            were.
        """
        self.model.train()
        while not self.finished:
            epoch = self.epoch + 1
            started = time.perf_counter()
            train_loss, train_acc = self._train_epoch(epoch)
            test_loss, test_acc, _ = self.evaluate(self.x_test, self.y_test)
            seconds = time.perf_counter() - started

            self._check_finite_after_epoch(epoch, test_loss)
            record = EpochRecord(
                epoch=epoch,
                train_loss=train_loss,
                train_acc=train_acc,
                test_loss=test_loss,
                test_acc=test_acc,
                lr=float(self.optimizer.lr),
                seconds=seconds,
            )
            self.history.append(record)
            self.epoch = epoch

            improved = test_acc > self.best_test_acc
            if improved:
                self.best_epoch = epoch
                self.best_test_acc = test_acc
            elif self.patience is not None and epoch - self.best_epoch >= self.patience:
                self.stop_reason = (
                    f"early stopping: no test accuracy above {self.best_test_acc:.4f} "
                    f"(epoch {self.best_epoch}) for {self.patience} epochs"
                )

            # best.npz goes first, so that last.npz existing implies best.npz is
            # at least as recent.
            if improved:
                self.save(self.best_path)
            self.save(self.last_path)
            self._log_epoch(record, improved)

            if epoch_callback is not None:
                epoch_callback(self, record)

        if self.stop_reason is not None:
            self._write_line(self.stop_reason)
        return self.history

    def _train_epoch(self, epoch: int) -> tuple[float, float]:
        """Run one epoch of minibatch steps and return (mean loss, accuracy)."""
        n = len(self.x_train)
        order = self.rng.permutation(n)
        total_loss = 0.0
        total_correct = 0
        seen = 0
        bar = self._progress_bar(epoch)
        try:
            for batch_index, start in enumerate(range(0, n, self.batch_size)):
                index = order[start : start + self.batch_size]
                x = self.x_train[index]
                y = self.y_train[index]
                step = self.global_step + 1

                self.optimizer.zero_grad()
                logits = self.model.forward(x)
                loss = float(self.loss.forward(logits, y))
                if not math.isfinite(loss):
                    raise TrainingDiverged(
                        f"training diverged: the loss is {loss} at epoch {epoch}, step {step} "
                        f"(minibatch {batch_index + 1} of {self.steps_per_epoch}); "
                        f"{self._kept_checkpoint_phrase()}",
                        epoch,
                        step,
                        loss,
                    )
                self.model.backward(self.loss.backward())
                self.optimizer.step()
                if self.schedule is not None:
                    self.schedule.step()
                self.global_step = step

                total_loss += loss * len(index)
                total_correct += int(np.count_nonzero(logits.argmax(axis=1) == y))
                seen += len(index)
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{total_loss / seen:.4f}", acc=f"{total_correct / seen:.4f}", refresh=False)
        finally:
            if bar is not None:
                bar.close()
        return total_loss / seen, total_correct / seen

    def evaluate(self, x: np.ndarray, y: np.ndarray) -> tuple[float, float, np.ndarray]:
        """Return (mean loss, accuracy, predicted classes) of the model on ``x``.

        The model is switched to evaluation mode (running batch-norm
        statistics, no dropout) for the pass and back to its previous mode
        afterwards. ``x`` must already have the model's input shape.
        """
        was_training = self.model.training
        self.model.eval()
        total_loss = 0.0
        predictions = np.empty(len(x), dtype=np.int64)
        try:
            for start in range(0, len(x), self.eval_batch_size):
                stop = start + self.eval_batch_size
                logits = self.model.forward(x[start:stop])
                total_loss += float(self.loss.forward(logits, y[start:stop])) * len(logits)
                predictions[start:stop] = logits.argmax(axis=1)
        finally:
            self.model.train(was_training)
        if len(x) == 0:
            return math.nan, math.nan, predictions
        return total_loss / len(x), float(np.mean(predictions == y)), predictions

    def _check_finite_after_epoch(self, epoch: int, test_loss: float) -> None:
        bad = [name for name, param in self.model.named_parameters() if not np.all(np.isfinite(param.data))]
        if bad:
            raise TrainingDiverged(
                f"training diverged: parameter {bad[0]} contains non-finite values after epoch {epoch}, "
                f"step {self.global_step}; {self._kept_checkpoint_phrase()}",
                epoch,
                self.global_step,
                math.nan,
            )
        if len(self.x_test) and not math.isfinite(test_loss):
            raise TrainingDiverged(
                f"training diverged: the test loss is {test_loss} after epoch {epoch}, "
                f"step {self.global_step}; {self._kept_checkpoint_phrase()}",
                epoch,
                self.global_step,
                test_loss,
            )

    def _kept_checkpoint_phrase(self) -> str:
        if self.epoch == 0:
            return "no checkpoint was written"
        return f"{self.last_path} (epoch {self.epoch}) was left unchanged"

    # -- checkpoints -----------------------------------------------------------

    def save(self, path) -> None:
        """Write the full training state to ``path`` atomically."""
        arrays: dict[str, np.ndarray] = {}
        for name, value in self.model.state_dict().items():
            arrays[f"model/{name}"] = value
        for name, value in self.metadata_arrays.items():
            arrays[f"extra/{name}"] = np.asarray(value)
        optimizer_tree = flatten_state(self.optimizer.state_dict(), "optimizer", arrays)
        schedule_tree = None
        if self.schedule is not None:
            schedule_tree = flatten_state(self.schedule.state_dict(), "schedule", arrays)

        metadata = {
            "format": CHECKPOINT_FORMAT,
            "version": CHECKPOINT_VERSION,
            "epoch": self.epoch,
            "global_step": self.global_step,
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "input_shape": list(self.input_shape),
            "dtype": str(self.model.parameters()[0].data.dtype),
            "history": [record.as_dict() for record in self.history],
            "best_epoch": self.best_epoch,
            "best_test_acc": self.best_test_acc if self.best_epoch else None,
            "stop_reason": self.stop_reason,
            "optimizer": optimizer_tree,
            "optimizer_lr": float(self.optimizer.lr),
            "schedule": schedule_tree,
            "rng_states": {
                name: generator.bit_generator.state for name, generator in find_generators(self.model, self.rng).items()
            },
            "run": self.metadata,
        }
        self.out_dir.mkdir(parents=True, exist_ok=True)
        save_checkpoint(path, arrays, metadata)

    def load(self, path) -> None:
        """Restore the state that :meth:`save` wrote to ``path``.

        Raises
        ------
        FileNotFoundError
            If ``path`` does not exist.
        ValueError
            If the file is not a training checkpoint or does not match this
            trainer (model layout, optimizer, schedule, generators, batch
            size, number of epochs).
        """
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"cannot resume: checkpoint {path} not found")
        arrays, metadata = load_checkpoint(path)
        check_training_checkpoint(metadata, path)
        for key, expected in (("epochs", self.epochs), ("batch_size", self.batch_size)):
            if metadata[key] != expected:
                raise ValueError(
                    f"cannot resume from {path}: it was trained with {key}={metadata[key]}, "
                    f"this run has {key}={expected}"
                )
        if (metadata["schedule"] is None) != (self.schedule is None):
            raise ValueError(f"cannot resume from {path}: its learning-rate schedule does not match this run's")

        self.model.load_state_dict({key[len("model/") :]: value for key, value in arrays.items() if key.startswith("model/")})
        self.optimizer.load_state_dict(unflatten_state(metadata["optimizer"], arrays))
        self.optimizer.lr = metadata["optimizer_lr"]
        if self.schedule is not None:
            self.schedule.load_state_dict(unflatten_state(metadata["schedule"], arrays))
            self.optimizer.lr = metadata["optimizer_lr"]

        generators = find_generators(self.model, self.rng)
        saved_states = metadata["rng_states"]
        if set(generators) != set(saved_states):
            raise ValueError(
                f"cannot resume from {path}: it stores random generators {sorted(saved_states)}, "
                f"this run has {sorted(generators)}"
            )
        for name, generator in generators.items():
            # Assigning the state in place keeps every layer that holds a
            # reference to this generator in step with the trainer.
            generator.bit_generator.state = saved_states[name]

        self.epoch = metadata["epoch"]
        self.global_step = metadata["global_step"]
        self.history = [EpochRecord(**record) for record in metadata["history"]]
        self.best_epoch = metadata["best_epoch"]
        self.best_test_acc = metadata["best_test_acc"] if self.best_epoch else -math.inf
        self.stop_reason = metadata["stop_reason"]

    # -- output ---------------------------------------------------------------

    def _progress_bar(self, epoch: int):
        if not self.progress or self.stream is None:
            return None
        from tqdm.auto import tqdm

        return tqdm(
            total=self.steps_per_epoch,
            desc=f"epoch {epoch}/{self.epochs}",
            unit="batch",
            file=self.stream,
            leave=False,
            dynamic_ncols=True,
        )

    def _log_epoch(self, record: EpochRecord, improved: bool) -> None:
        marker = " *" if improved else ""
        self._write_line(
            f"epoch {record.epoch}/{self.epochs}: train loss {record.train_loss:.4f} acc {record.train_acc:.4f} | "
            f"test loss {record.test_loss:.4f} acc {record.test_acc:.4f} | lr {record.lr:.2e} | "
            f"{record.seconds:.1f} s{marker}"
        )

    def _write_line(self, line: str) -> None:
        if self.stream is not None:
            print(line, file=self.stream, flush=True)


def check_training_checkpoint(metadata: dict, path) -> None:
    """Raise ValueError unless ``metadata`` comes from :meth:`Trainer.save`."""
    if not isinstance(metadata, dict) or metadata.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not a convgrad training checkpoint (its metadata has no format {CHECKPOINT_FORMAT!r})")
    if metadata.get("version") != CHECKPOINT_VERSION:
        raise ValueError(
            f"{path} has checkpoint version {metadata.get('version')!r}; this convgrad reads version {CHECKPOINT_VERSION}"
        )


def _check_positive_int(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


# -- building a run from a configuration -------------------------------------------


@dataclass
class TrainConfig:
    """Every setting of a training run, as ``convgrad train`` takes them.

    Fields left at ``None`` get a default from :meth:`resolved`: the preset
    from ``models.DEFAULT_PRESETS``, epochs and batch size from
    ``DATASET_DEFAULTS``, the learning rate from ``DEFAULT_LR``.

    Attributes
    ----------
    dataset : str
        One of ``DATASET_NAMES``.
    model : str or None
        Preset name from ``convgrad.models.PRESETS``.
    epochs : int or None
        Passes over the training split.
    batch_size : int or None
        Samples per training minibatch.
    lr : float or None
        Peak learning rate: the maximum of the one-cycle schedule, the start
        of the cosine and step schedules, the constant rate otherwise.
    weight_decay : float
        Decoupled weight decay for AdamW, L2 penalty for Adam and SGD.
    optimizer : str
        One of ``OPTIMIZER_NAMES``. SGD uses momentum ``SGD_MOMENTUM``.
    schedule : str
        One of ``SCHEDULE_NAMES``, stepped per minibatch. "step" multiplies
        the rate by ``STEP_SCHEDULE_GAMMA`` after each third of the steps.
    seed : int
        Seed of the one generator behind initialization, shuffling and dropout.
    patience : int or None
        Early-stopping patience in epochs, ``None`` for no early stopping.
    limit_train, limit_test : int or None
        Use only the first N samples of a split.
    data_dir : str or None
        Directory of the IDX files for the image datasets, or the cache
        directory of the generated MNIST-1D data.
    out : str
        Output directory for checkpoints and the report.
    dtype : str
        Floating dtype of the parameters and inputs, "float32" or "float64".
    """

    dataset: str = "mnist1d"
    model: str | None = None
    epochs: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    weight_decay: float = DEFAULT_WEIGHT_DECAY
    optimizer: str = "adamw"
    schedule: str = "onecycle"
    seed: int = 0
    patience: int | None = None
    limit_train: int | None = None
    limit_test: int | None = None
    data_dir: str | None = None
    out: str = "runs/mnist1d"
    dtype: str = "float32"

    def resolved(self) -> "TrainConfig":
        """Return a validated copy with every ``None`` default filled in.

        Raises
        ------
        ValueError
            If a value is outside its allowed set or range. The message names
            the field, the value and the rule.
        """
        _check_choice("dataset", self.dataset, DATASET_NAMES)
        _check_choice("optimizer", self.optimizer, OPTIMIZER_NAMES)
        _check_choice("schedule", self.schedule, SCHEDULE_NAMES)
        _check_choice("dtype", self.dtype, ("float32", "float64"))
        model = self.model if self.model is not None else models.DEFAULT_PRESETS[self.dataset]
        _check_choice("model", model, tuple(models.PRESETS))
        preset = models.PRESETS[model]
        if self.dataset not in preset.datasets:
            raise ValueError(
                f"model {model!r} does not fit dataset {self.dataset!r}: it takes inputs of shape "
                f"{preset.input_shape} and is meant for {', '.join(preset.datasets)}"
            )

        defaults = DATASET_DEFAULTS[self.dataset]
        config = dataclasses.replace(
            self,
            model=model,
            epochs=self.epochs if self.epochs is not None else defaults["epochs"],
            batch_size=self.batch_size if self.batch_size is not None else defaults["batch_size"],
            lr=self.lr if self.lr is not None else DEFAULT_LR[self.optimizer],
        )
        _check_positive_int("epochs", config.epochs)
        _check_positive_int("batch_size", config.batch_size)
        for name in ("patience", "limit_train", "limit_test"):
            if getattr(config, name) is not None:
                _check_positive_int(name, getattr(config, name))
        if isinstance(config.seed, bool) or not isinstance(config.seed, int) or config.seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {config.seed!r}")
        for name in ("lr", "weight_decay"):
            value = getattr(config, name)
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
        return config

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass
class TrainingRun:
    """A :class:`Trainer` together with what was used to build it."""

    config: TrainConfig
    trainer: Trainer
    dataset: Any
    standardizer: Any
    preset: "models.Preset"


def load_dataset(name: str, data_dir=None):
    """Load the raw (unnormalized) dataset ``name`` from ``data_dir``.

    For MNIST-1D ``data_dir`` is the cache directory of the generated data;
    ``None`` uses the default cache. For the image sets it is the directory
    of the four IDX files.
    """
    from convgrad.datasets import get_dataset

    if name == "mnist1d":
        return get_dataset(name, cache_dir=data_dir)
    return get_dataset(name, data_dir=data_dir)


def limit_dataset(dataset, limit_train: int | None, limit_test: int | None):
    """Return ``dataset`` cut to the first ``limit_train``/``limit_test`` samples."""
    changes = {}
    if limit_train is not None:
        changes.update(x_train=dataset.x_train[:limit_train], y_train=dataset.y_train[:limit_train])
    if limit_test is not None:
        changes.update(x_test=dataset.x_test[:limit_test], y_test=dataset.y_test[:limit_test])
    return dataclasses.replace(dataset, **changes) if changes else dataset


def build_optimizer(name: str, params, lr: float, weight_decay: float):
    """Build the optimizer ``name`` (one of ``OPTIMIZER_NAMES``) over ``params``."""
    from convgrad.nn import optim

    _check_choice("optimizer", name, OPTIMIZER_NAMES)
    if name == "adamw":
        return optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    if name == "adam":
        return optim.Adam(params, lr=lr, weight_decay=weight_decay)
    return optim.SGD(params, lr=lr, momentum=SGD_MOMENTUM, weight_decay=weight_decay)


def build_schedule(name: str, optimizer, lr: float, total_steps: int):
    """Build the per-minibatch schedule ``name`` over ``total_steps`` steps.

    Returns ``None`` for "constant".
    """
    from convgrad.nn import schedules

    _check_choice("schedule", name, SCHEDULE_NAMES)
    if name == "onecycle":
        return schedules.OneCycleLR(optimizer, max_lr=lr, total_steps=total_steps)
    if name == "cosine":
        return schedules.CosineAnnealingLR(optimizer, T_max=total_steps)
    if name == "step":
        return schedules.StepLR(optimizer, step_size=max(1, math.ceil(total_steps / 3)), gamma=STEP_SCHEDULE_GAMMA)
    return None


def prepare_training(
    config: TrainConfig,
    *,
    resume: bool = False,
    progress: bool = False,
    stream: TextIO | None = None,
) -> TrainingRun:
    """Load the data and build the model, optimizer, schedule and trainer.

    The order of random draws is fixed: one generator seeded with
    ``config.seed`` first initializes the model's weights in layer order and
    then serves the trainer's shuffling and the dropout layers. With
    ``resume=True`` the state in ``config.out/last.npz`` then replaces all of
    it, and the configuration stored there must equal ``config``.

    Raises
    ------
    ValueError
        For an invalid configuration, or a checkpoint that does not match it.
    FileNotFoundError
        If the dataset files or, with ``resume``, the checkpoint are missing.
    """
    from convgrad.datasets import normalize
    from convgrad.nn.losses import CrossEntropyLoss

    config = config.resolved()
    if resume:
        check_resume_config(Path(config.out) / "last.npz", config)

    dataset = load_dataset(config.dataset, config.data_dir)
    dataset = limit_dataset(dataset, config.limit_train, config.limit_test)
    dataset, standardizer = normalize(dataset)

    preset = models.PRESETS[config.model]
    dtype = np.dtype(config.dtype)
    rng = np.random.default_rng(config.seed)
    model = preset.build(dataset.num_classes, rng, dtype)

    optimizer = build_optimizer(config.optimizer, model.parameters(), config.lr, config.weight_decay)
    total_steps = config.epochs * math.ceil(len(dataset.x_train) / config.batch_size)
    schedule = build_schedule(config.schedule, optimizer, config.lr, total_steps)

    metadata = {
        "config": config.as_dict(),
        "preset": config.model,
        "dataset": config.dataset,
        "num_classes": dataset.num_classes,
        "class_names": list(dataset.class_names) if dataset.class_names is not None else None,
        "raw_input_range": RAW_INPUT_RANGE.get(config.dataset),
    }
    metadata_arrays = {f"normalization/{key}": value for key, value in standardizer.state_dict().items()}
    trainer = Trainer(
        model,
        CrossEntropyLoss(),
        optimizer,
        schedule,
        dataset,
        rng=rng,
        epochs=config.epochs,
        batch_size=config.batch_size,
        out_dir=config.out,
        input_shape=tuple(dataset.x_train.shape[1:]),
        patience=config.patience,
        metadata=metadata,
        metadata_arrays=metadata_arrays,
        progress=progress,
        stream=stream,
        resume=resume,
    )
    return TrainingRun(config=config, trainer=trainer, dataset=dataset, standardizer=standardizer, preset=preset)


# Value range of the unnormalized inputs, used to turn a PNG image into a sample.
RAW_INPUT_RANGE = {"fashion-mnist": [0.0, 1.0], "mnist": [0.0, 1.0]}

# Settings that may differ between a run and its resumption, because they do
# not change the result.
RESUMABLE_CHANGES = ("data_dir", "out")


def check_resume_config(path: Path, config: TrainConfig) -> None:
    """Raise unless the checkpoint at ``path`` was written by a run of ``config``.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If ``path`` is not a training checkpoint or a result-changing
        setting differs; the message lists each differing setting.
    """
    if not path.exists():
        raise FileNotFoundError(f"cannot resume: checkpoint {path} not found")
    _, metadata = load_checkpoint(path)
    check_training_checkpoint(metadata, path)
    stored = metadata["run"]["config"]
    differences = [
        f"{name}={stored.get(name)!r} in the checkpoint, {value!r} now"
        for name, value in config.as_dict().items()
        if name not in RESUMABLE_CHANGES and stored.get(name) != value
    ]
    if differences:
        raise ValueError(f"cannot resume from {path} with different settings: {'; '.join(differences)}")


def _check_choice(name: str, value, choices: tuple) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(str, choices))}; got {value!r}")


# -- after training --------------------------------------------------------------


def summarize_run(run: TrainingRun, total_seconds: float | None = None) -> tuple[dict, np.ndarray]:
    """Evaluate the final model on the test split and collect the report data.

    Returns
    -------
    metrics : dict
        The content of ``metrics.json`` (see ``convgrad.report``).
    confusion : ndarray of int64, shape (num_classes, num_classes)
        Confusion matrix of the final model, rows indexed by the true class.
    """
    from convgrad.metrics import confusion_matrix, per_class_accuracy
    from convgrad.report import versions

    trainer = run.trainer
    dataset = run.dataset
    test_loss, test_acc, predictions = trainer.evaluate(trainer.x_test, trainer.y_test)
    confusion = confusion_matrix(predictions, trainer.y_test, dataset.num_classes)
    per_class = per_class_accuracy(confusion)

    history = [record.as_dict() for record in trainer.history]
    metrics = {
        "config": run.config.as_dict(),
        "dataset": {
            "name": dataset.name,
            "num_train": int(len(dataset.x_train)),
            "num_test": int(len(dataset.x_test)),
            "num_classes": int(dataset.num_classes),
            "class_names": list(dataset.class_names) if dataset.class_names is not None else None,
            "input_shape": list(trainer.input_shape),
        },
        "model": {"preset": run.config.model, "num_parameters": int(trainer.model.num_parameters())},
        "epochs": history,
        "epochs_completed": trainer.epoch,
        "stop_reason": trainer.stop_reason,
        "best": {"epoch": trainer.best_epoch, "test_acc": trainer.best_test_acc if trainer.best_epoch else None},
        "final": {
            "test_loss": _json_number(test_loss),
            "test_acc": _json_number(test_acc),
            # NaN (a class with no test samples) becomes null in JSON.
            "per_class_accuracy": [_json_number(value) for value in per_class],
            "confusion_matrix": confusion.tolist(),
        },
        "seconds_per_epoch_mean": (
            float(np.mean([record["seconds"] for record in history])) if history else None
        ),
        "total_seconds": total_seconds,
        "versions": versions(),
    }
    return metrics, confusion


def _json_number(value: float) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def load_trained_model(path):
    """Rebuild the model stored in a training checkpoint.

    Returns
    -------
    model : convgrad.nn.Sequential
        The preset named in the checkpoint with its stored parameters and
        buffers, in evaluation mode.
    metadata : dict
        The checkpoint's metadata (see :meth:`Trainer.save`).
    arrays : dict of str to ndarray
        The checkpoint's arrays.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If ``path`` is not a training checkpoint or its preset is unknown.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint {path} not found")
    arrays, metadata = load_checkpoint(path)
    check_training_checkpoint(metadata, path)
    run = metadata["run"]
    # The seed is irrelevant: the stored state replaces every initial weight.
    model = models.build_model(run["preset"], run["num_classes"], np.random.default_rng(0), metadata["dtype"])
    model.load_state_dict({key[len("model/") :]: value for key, value in arrays.items() if key.startswith("model/")})
    model.eval()
    return model, metadata, arrays


def stored_config(path) -> TrainConfig:
    """Return the :class:`TrainConfig` saved in the training checkpoint ``path``.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If ``path`` is not a training checkpoint.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint {path} not found")
    _, metadata = load_checkpoint(path)
    check_training_checkpoint(metadata, path)
    names = {config_field.name for config_field in dataclasses.fields(TrainConfig)}
    return TrainConfig(**{key: value for key, value in metadata["run"]["config"].items() if key in names})
