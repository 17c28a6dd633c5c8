"""Training runs built from a configuration, and finished runs read back.

:class:`TrainConfig` contains every setting of ``convgrad train``.
:func:`prepare_training` loads and normalizes the data and builds the model,
optimizer, schedule and :class:`convgrad.train.Trainer` from it.
:func:`summarize_run` collects the report of a finished run, and
:func:`load_trained_model` rebuilds a model from a checkpoint for
``convgrad evaluate`` and ``convgrad predict``.
"""

from __future__ import annotations

import dataclasses
import math
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from convgrad import models
from convgrad.checkpoint import load_checkpoint
from convgrad.train import Trainer, check_positive_int, check_training_checkpoint

DATASET_NAMES = ("mnist1d", "fashion-mnist", "mnist")
OPTIMIZER_NAMES = ("adamw", "adam", "sgd")
SCHEDULE_NAMES = ("onecycle", "cosine", "step", "constant")

# Defaults per dataset. For MNIST-1D they give 2000 optimizer steps of batch
# 100 over its 4000 training samples.
DATASET_DEFAULTS = {
    "mnist1d": {"epochs": 50, "batch_size": 100},
    "fashion-mnist": {"epochs": 5, "batch_size": 128},
    "mnist": {"epochs": 3, "batch_size": 128},
}
DEFAULT_LR = {"adamw": 3e-3, "adam": 3e-3, "sgd": 0.05}
DEFAULT_WEIGHT_DECAY = 5e-4
SGD_MOMENTUM = 0.9
STEP_SCHEDULE_GAMMA = 0.1

# Value range of the unnormalized inputs of the image datasets, which
# `convgrad predict` needs to turn an 8-bit image into a sample.
RAW_INPUT_RANGE = {"fashion-mnist": [0.0, 1.0], "mnist": [0.0, 1.0]}

# TrainConfig fields that may differ between a run and its resumption,
# because they do not change the result.
RESUMABLE_CHANGES = ("data_dir", "out")


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
        Use only the first N samples of a split. The normalization
        statistics are fitted on the training samples that remain.
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
        check_positive_int("epochs", config.epochs)
        check_positive_int("batch_size", config.batch_size)
        for name in ("patience", "limit_train", "limit_test"):
            if getattr(config, name) is not None:
                check_positive_int(name, getattr(config, name))
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
        For an invalid configuration, a checkpoint that does not match it, or
        an output directory that cannot be created or written.
    FileNotFoundError
        If the dataset files or, with ``resume``, the checkpoint are missing.
    """
    from convgrad.datasets import normalize
    from convgrad.nn.losses import CrossEntropyLoss

    config = config.resolved()
    if resume:
        check_resume_config(Path(config.out) / "last.npz", config)
    prepare_output_dir(config.out)

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


def prepare_output_dir(out) -> Path:
    """Create the output directory ``out`` if missing and check that it is writable.

    Runs before any data is loaded, so that an unusable ``--out`` fails at
    once instead of after the first epoch. Writability is tested by creating
    and removing a temporary file in the directory.

    Raises
    ------
    ValueError
        If ``out`` is an existing file, lies under a file, or cannot be
        created or written. The message contains the operating system's reason.
    """
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise ValueError(f"output directory {path} is an existing file, not a directory")
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path, prefix=".convgrad-write-test-"):
            pass
    except OSError as error:
        reason = error.strerror or str(error)
        raise ValueError(f"cannot create or write the output directory {path}: {reason}") from error
    return path


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


def summarize_run(run: TrainingRun) -> tuple[dict, np.ndarray]:
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
        # Training and test evaluation time of every epoch, including epochs
        # run before a resume, without data loading and report writing.
        "seconds_per_epoch_mean": (
            float(np.mean([record["seconds"] for record in history])) if history else None
        ),
        "train_seconds_total": float(sum(record["seconds"] for record in history)),
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
    if path.is_dir():
        raise IsADirectoryError(f"checkpoint {path} is a directory, not a checkpoint file")
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
    if path.is_dir():
        raise IsADirectoryError(f"checkpoint {path} is a directory, not a checkpoint file")
    if not path.exists():
        raise FileNotFoundError(f"checkpoint {path} not found")
    _, metadata = load_checkpoint(path)
    check_training_checkpoint(metadata, path)
    names = {config_field.name for config_field in dataclasses.fields(TrainConfig)}
    return TrainConfig(**{key: value for key, value in metadata["run"]["config"].items() if key in names})
