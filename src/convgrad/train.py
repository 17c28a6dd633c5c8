"""Minibatch training with checkpoints that resume bit for bit.

:class:`Trainer` runs epochs of shuffled minibatches, evaluates on the test
split after each epoch and writes two checkpoints into its output directory:

``last.npz``
    Written after every epoch. ``Trainer(..., resume=True)`` continues from it.
``best.npz``
    Written whenever the test accuracy improves on every earlier epoch.

Both contain the model's parameters and buffers, the optimizer and schedule
state, the state of every random generator the run uses, the epoch and the
metrics history. They also store the ``metadata`` the caller passes, which for
the command line is the configuration, the preset and dataset names and the
normalization statistics. Training is deterministic given the seed because one
``numpy.random.Generator`` draws the initial weights, the shuffling order and
the dropout masks, and its state is saved with the weights. A run stopped after
epoch k and resumed therefore ends with the same bits as an uninterrupted run
on the same machine.

:func:`convgrad.run.prepare_training` builds a trainer from a
:class:`convgrad.run.TrainConfig`, which is what ``convgrad train`` does.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, TextIO

import numpy as np

from convgrad.checkpoint import load_checkpoint, save_checkpoint

CHECKPOINT_FORMAT = "convgrad-train-checkpoint"
CHECKPOINT_VERSION = 1

# Evaluation minibatch size. It bounds memory use and does not change results.
# NOTE: per-sample forward time grew with the batch size beyond ~128 for
# fashion-cnn on a 2-core machine (measurements under load, so rough).
EVAL_BATCH_SIZE = 128

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
    that refers to a different generator object (a layer built with its own
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
        check_positive_int("epochs", epochs)
        check_positive_int("batch_size", batch_size)
        check_positive_int("eval_batch_size", eval_batch_size)
        if patience is not None:
            check_positive_int("patience", patience)
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
                    f"(epoch {self.best_epoch}) for {self.patience} epoch{'' if self.patience == 1 else 's'}"
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

        See :func:`evaluate_model`. ``x`` must already have the model's input
        shape.
        """
        return evaluate_model(self.model, self.loss, x, y, self.eval_batch_size)

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


def evaluate_model(model, loss, x: np.ndarray, y: np.ndarray, batch_size: int = EVAL_BATCH_SIZE):
    """Return (mean loss, accuracy, predicted classes) of ``model`` on ``x``.

    The model runs in evaluation mode (running batch-norm statistics, no
    dropout) in minibatches of ``batch_size`` and is switched back to its
    previous mode afterwards. For an empty ``x`` the loss and accuracy are
    NaN.
    """
    was_training = model.training
    model.eval()
    total_loss = 0.0
    predictions = np.empty(len(x), dtype=np.int64)
    try:
        for start in range(0, len(x), batch_size):
            stop = start + batch_size
            logits = model.forward(x[start:stop])
            total_loss += float(loss.forward(logits, y[start:stop])) * len(logits)
            predictions[start:stop] = logits.argmax(axis=1)
    finally:
        model.train(was_training)
    if len(x) == 0:
        return math.nan, math.nan, predictions
    return total_loss / len(x), float(np.mean(predictions == y)), predictions


def check_training_checkpoint(metadata: dict, path) -> None:
    """Raise ValueError unless ``metadata`` comes from :meth:`Trainer.save`."""
    if not isinstance(metadata, dict) or metadata.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not a convgrad training checkpoint (its metadata has no format {CHECKPOINT_FORMAT!r})")
    if metadata.get("version") != CHECKPOINT_VERSION:
        raise ValueError(
            f"{path} has checkpoint version {metadata.get('version')!r}; this convgrad reads version {CHECKPOINT_VERSION}"
        )


def check_positive_int(name: str, value) -> None:
    """Raise ValueError unless ``value`` is an integer >= 1 (bool excluded)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
