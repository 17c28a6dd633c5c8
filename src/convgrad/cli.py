"""The ``convgrad`` command line: train, evaluate, predict, gradcheck, summary.

Exit status: 0 on success, 1 when training diverges, a gradient check
fails or a model produces non-finite logits, 2 for invalid options, missing data and unreadable checkpoints (one
line on standard error, no traceback), 130 when interrupted with Ctrl-C.
Results go to standard output. Progress and per-epoch lines go to standard
error.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
from pathlib import Path

import numpy as np

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

# Errors that mean bad input (options, data files, checkpoints), reported in
# one line with EXIT_USAGE. Anything else is a bug and keeps its traceback.
USER_ERRORS = (ValueError, TypeError, OSError, ImportError)


class UsageError(Exception):
    """An invalid command line, reported in one line with exit status 2."""


class _Parser(argparse.ArgumentParser):
    """ArgumentParser whose errors are a single line and raise UsageError."""

    def error(self, message):
        raise UsageError(f"{self.prog}: error: {message} (see {self.prog} --help)")


# -- argument types -----------------------------------------------------------


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}")
    return value


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"expected a finite number >= 0, got {text!r}")
    return value


# -- parser ----------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser with its five subcommands."""
    from convgrad import models, run as train_run

    parser = _Parser(
        prog="convgrad",
        description="Train and inspect small convolutional networks written in NumPy.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands.required = True

    defaults_text = "; ".join(
        f"{name}: {_count(values['epochs'], 'epoch')} of batch {values['batch_size']}, model {models.DEFAULT_PRESETS[name]}"
        for name, values in train_run.DATASET_DEFAULTS.items()
    )
    train_parser = commands.add_parser(
        "train",
        help="train a model and write checkpoints and a report",
        description=(
            "Train a preset model on a dataset. Writes last.npz (every epoch), best.npz (the epoch with the "
            "best test accuracy), metrics.json and PNG plots into --out, and prints the final test accuracy. "
            "There is no validation split: best.npz and --patience select on the test split, so the best "
            "test accuracy is an optimistic estimate. "
            f"Defaults per dataset: {defaults_text}."
        ),
    )
    train_parser.add_argument(
        "--dataset", choices=train_run.DATASET_NAMES, help="dataset to train on (default: mnist1d)"
    )
    train_parser.add_argument(
        "--data-dir",
        metavar="DIR",
        help=(
            "directory with the four IDX files of fashion-mnist or mnist (default for fashion-mnist: "
            "/usr/share/datasets/fashion-mnist); for mnist1d, the cache directory of the generated data "
            "(default: ~/.cache/convgrad)"
        ),
    )
    train_parser.add_argument(
        "--model", choices=tuple(models.PRESETS), help="model preset (default: the dataset's preset, see above)"
    )
    train_parser.add_argument("--epochs", type=_positive_int, metavar="N", help="number of passes over the training split")
    train_parser.add_argument("--batch-size", type=_positive_int, metavar="N", help="training samples per minibatch")
    train_parser.add_argument(
        "--lr",
        type=_non_negative_float,
        metavar="RATE",
        help=(
            "peak learning rate: the maximum of onecycle, the start of cosine and step, the rate of constant "
            f"(default: {train_run.DEFAULT_LR['adamw']:g} for adamw and adam, {train_run.DEFAULT_LR['sgd']:g} for sgd)"
        ),
    )
    train_parser.add_argument(
        "--weight-decay",
        type=_non_negative_float,
        metavar="COEFFICIENT",
        help=f"decoupled weight decay for adamw, L2 penalty for adam and sgd (default: {train_run.DEFAULT_WEIGHT_DECAY:g})",
    )
    train_parser.add_argument(
        "--optimizer",
        choices=train_run.OPTIMIZER_NAMES,
        help=f"optimizer; sgd uses momentum {train_run.SGD_MOMENTUM:g} (default: adamw)",
    )
    train_parser.add_argument(
        "--schedule",
        choices=train_run.SCHEDULE_NAMES,
        help=(
            "learning-rate schedule, stepped after every minibatch: onecycle (warm-up to --lr, then cosine "
            "decay), cosine (decay from --lr to 0), step (times "
            f"{train_run.STEP_SCHEDULE_GAMMA:g} after each third of the steps), constant (default: onecycle)"
        ),
    )
    train_parser.add_argument(
        "--seed",
        type=_non_negative_int,
        metavar="N",
        help="seed of the generator behind initialization, shuffling and dropout (default: 0)",
    )
    train_parser.add_argument("--out", metavar="DIR", help="output directory, created if missing (default: runs/DATASET)")
    train_parser.add_argument(
        "--resume",
        action="store_true",
        help=(
            "continue from DIR/last.npz with its stored settings; on the same machine the result is bit for "
            "bit that of an uninterrupted run. Options given with --resume must match the stored ones"
        ),
    )
    train_parser.add_argument(
        "--patience",
        type=_positive_int,
        metavar="EPOCHS",
        help=(
            "stop after this many epochs without a new best test accuracy; this uses the test split, "
            "because there is no validation split (default: off)"
        ),
    )
    train_parser.add_argument(
        "--limit-train", type=_positive_int, metavar="N", help="train on the first N training samples only"
    )
    train_parser.add_argument(
        "--limit-test", type=_positive_int, metavar="N", help="evaluate on the first N test samples only"
    )
    train_parser.add_argument(
        "--quiet", action="store_true", help="print only the final line (no progress bar, no per-epoch lines)"
    )
    train_parser.set_defaults(handler=command_train)

    evaluate_parser = commands.add_parser(
        "evaluate",
        help="print the test accuracy, per-class accuracy and confusion matrix of a checkpoint",
        description=(
            "Evaluate a training checkpoint on the full test split of its dataset (or the first "
            "--limit-test samples), normalized with the statistics stored in the checkpoint."
        ),
    )
    evaluate_parser.add_argument("checkpoint", metavar="CHECKPOINT", help="last.npz or best.npz of a run")
    evaluate_parser.add_argument("--data-dir", metavar="DIR", help="dataset directory, as for train (default: as for train)")
    evaluate_parser.add_argument("--limit-test", type=_positive_int, metavar="N", help="use the first N test samples")
    evaluate_parser.set_defaults(handler=command_evaluate)

    predict_parser = commands.add_parser(
        "predict",
        help="classify samples from a .npy file or an image",
        description=(
            "Print the predicted class and the class probabilities for each sample in FILE. FILE is a .npy "
            "array holding one sample (C, *spatial) or (*spatial) for one channel, or a batch (N, C, *spatial) "
            "or (N, *spatial), in the dataset's raw scale (pixels in [0, 1] for the image sets); the "
            "checkpoint's normalization is applied. For 2-D models FILE may also be an image (PNG or any "
            "format Pillow reads): color and palette images are converted to grayscale, integer pixels are "
            "divided by the maximum of their bit depth (255, 65535 or 2**31 - 1), floating-point pixels must "
            "already be in [0, 1], and, when its size differs "
            "from the model's input (28x28), resized to it with a warning, without keeping the aspect ratio. "
            "The image sets show light objects on a dark background."
        ),
    )
    predict_parser.add_argument("checkpoint", metavar="CHECKPOINT", help="last.npz or best.npz of a run")
    predict_parser.add_argument("file", metavar="FILE", help=".npy array or image file")
    predict_parser.set_defaults(handler=command_predict)

    gradcheck_parser = commands.add_parser(
        "gradcheck",
        help="check the gradients of every operator and layer against finite differences",
        description=(
            "Compare the analytic gradients of the core convolution operators and of every layer with "
            "central finite differences on small float64 inputs, print a table and exit with status 1 if "
            "any check fails."
        ),
    )
    gradcheck_parser.add_argument(
        "--seed", type=_non_negative_int, default=0, help="seed of the random inputs (default: 0)"
    )
    gradcheck_parser.set_defaults(handler=command_gradcheck)

    summary_parser = commands.add_parser(
        "summary",
        help="print the layers, output shapes and parameter counts of a model preset",
        description="Print the summary table of a model preset for one sample of its input shape.",
    )
    summary_parser.add_argument("model", metavar="MODEL", choices=tuple(models.PRESETS), help=", ".join(models.PRESETS))
    summary_parser.set_defaults(handler=command_summary)
    return parser


# -- entry point --------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """Run the command line with ``argv`` (default: ``sys.argv[1:]``).

    Returns the exit status instead of calling ``sys.exit``, so that tests
    can call it directly. The console script passes it to ``sys.exit``.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except UsageError as error:
        print(error, file=sys.stderr)
        return EXIT_USAGE
    except SystemExit as exit_request:
        # --help and --version end parsing with SystemExit(0).
        return int(exit_request.code or 0)

    try:
        return args.handler(args)
    except UsageError as error:
        print(error, file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"convgrad {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def _count(number: int, noun: str) -> str:
    """Format ``number`` with ``noun`` in the singular or the plural ("1 epoch", "2 epochs")."""
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def _fail(command: str, error: BaseException) -> int:
    print(f"convgrad {command}: error: {error}", file=sys.stderr)
    return EXIT_USAGE


# -- train ---------------------------------------------------------------------------


# Options of `convgrad train` that become TrainConfig fields of the same name.
_CONFIG_OPTIONS = (
    "dataset",
    "data_dir",
    "model",
    "epochs",
    "batch_size",
    "lr",
    "weight_decay",
    "optimizer",
    "schedule",
    "seed",
    "patience",
    "limit_train",
    "limit_test",
)


def _train_config(args) -> "TrainConfig":
    """Turn the parsed options into a TrainConfig, merging the stored one on --resume."""
    from convgrad.run import RESUMABLE_CHANGES, TrainConfig, stored_config

    explicit = {name: getattr(args, name) for name in _CONFIG_OPTIONS if getattr(args, name) is not None}
    dataset = explicit.get("dataset", "mnist1d")
    out = args.out if args.out is not None else f"runs/{dataset}"
    if not args.resume:
        return TrainConfig(out=out, **explicit)

    stored = stored_config(Path(out) / "last.npz")
    conflicts = [
        f"--{name.replace('_', '-')} {value} (the run used {getattr(stored, name)})"
        for name, value in explicit.items()
        if name not in RESUMABLE_CHANGES and value != getattr(stored, name)
    ]
    if conflicts:
        raise UsageError(
            f"convgrad train: error: --resume continues the stored run, but these options differ from it: "
            f"{', '.join(conflicts)}; drop them or start a new run with another --out"
        )
    overrides = {"out": out}
    if "data_dir" in explicit:
        overrides["data_dir"] = explicit["data_dir"]
    return dataclasses.replace(stored, **overrides)


def command_train(args) -> int:
    from convgrad.report import write_report
    from convgrad.run import prepare_training, summarize_run
    from convgrad.train import TrainingDiverged

    stream = None if args.quiet else sys.stderr
    progress = not args.quiet and sys.stderr.isatty()
    try:
        config = _train_config(args)
        run = prepare_training(config, resume=args.resume, progress=progress, stream=stream)
    except USER_ERRORS as error:
        return _fail("train", error)

    trainer = run.trainer
    if not args.resume and trainer.last_path.exists():
        print(
            f"convgrad train: warning: {run.config.out} already contains a run; its checkpoints and report "
            "will be replaced (--resume continues it instead)",
            file=sys.stderr,
        )
    if stream is not None:
        action = f"resuming after epoch {trainer.epoch}" if args.resume else "training"
        print(
            f"{action}: {run.config.model} ({trainer.model.num_parameters():,} parameters) on "
            f"{run.config.dataset} ({len(trainer.x_train)} train, {len(trainer.x_test)} test samples), "
            f"{_count(run.config.epochs, 'epoch')} of batch {run.config.batch_size}, {run.config.optimizer} "
            f"lr {run.config.lr:g} with {run.config.schedule} schedule, output in {run.config.out}",
            file=stream,
        )
    try:
        trainer.fit()
    except TrainingDiverged as error:
        print(f"convgrad train: error: {error}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        print(
            f"convgrad train: interrupted after epoch {trainer.epoch}; continue with "
            f"convgrad train --resume --out {run.config.out}",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED

    metrics, confusion = summarize_run(run)
    write_report(run.config.out, metrics, trainer.model, confusion, run.dataset.class_names)

    final = metrics["final"]
    best = metrics["best"]
    print(
        f"test accuracy {final['test_acc']:.4f} (best {best['test_acc']:.4f} at epoch {best['epoch']}) "
        f"after {_count(trainer.epoch, 'epoch')} in {metrics['train_seconds_total']:.1f} s; report in {run.config.out}"
    )
    return EXIT_OK


# -- evaluate -----------------------------------------------------------------------


def _normalization(arrays):
    """Return the Standardizer stored in a training checkpoint's arrays."""
    from convgrad.datasets import Standardizer

    prefix = "extra/normalization/"
    return Standardizer.from_state_dict({key[len(prefix) :]: value for key, value in arrays.items() if key.startswith(prefix)})


def command_evaluate(args) -> int:
    from convgrad.metrics import confusion_matrix, per_class_accuracy
    from convgrad.nn.losses import CrossEntropyLoss
    from convgrad.run import limit_dataset, load_dataset, load_trained_model
    from convgrad.train import evaluate_model, model_input

    try:
        model, metadata, arrays = load_trained_model(args.checkpoint)
        run = metadata["run"]
        data_dir = args.data_dir if args.data_dir is not None else run["config"].get("data_dir")
        dataset = limit_dataset(load_dataset(run["dataset"], data_dir), None, args.limit_test)
        standardizer = _normalization(arrays)
        x_test = model_input(standardizer.transform(dataset.x_test), tuple(metadata["input_shape"]), metadata["dtype"])
    except USER_ERRORS as error:
        return _fail("evaluate", error)

    mean_loss, accuracy, predictions = evaluate_model(model, CrossEntropyLoss(), x_test, dataset.y_test)
    # The cross-entropy of finite logits is finite (log-sum-exp is computed
    # stably), so a non-finite mean loss means NaN or infinite logits, whose
    # argmax would make every prediction class 0.
    if not math.isfinite(mean_loss):
        print(
            f"convgrad evaluate: error: the model in {args.checkpoint} produces non-finite logits "
            "(NaN or infinite weights?), so its predictions are meaningless",
            file=sys.stderr,
        )
        return EXIT_FAILURE
    num_classes = run["num_classes"]
    names = run["class_names"] or [str(i) for i in range(num_classes)]
    confusion = confusion_matrix(predictions, dataset.y_test, num_classes)
    per_class = per_class_accuracy(confusion)

    print(f"checkpoint {args.checkpoint}: {run['preset']} after epoch {metadata['epoch']}")
    print(f"dataset {run['dataset']}: {len(x_test)} test samples")
    print(f"accuracy {accuracy:.4f}, mean loss {mean_loss:.4f}")
    print()
    print("per-class accuracy:")
    width = max(len(name) for name in names)
    for index, name in enumerate(names):
        support = int(confusion[index].sum())
        value = "n/a" if support == 0 else f"{per_class[index]:.4f}"
        print(f"  {index:>2}  {name:<{width}}  {value:>6}  ({_count(support, 'sample')})")
    print()
    print("confusion matrix (rows: true class, columns: predicted class):")
    print(_format_matrix(confusion))
    return EXIT_OK


def _format_matrix(matrix: np.ndarray) -> str:
    width = max(len(str(int(matrix.max()))) if matrix.size else 1, len(str(len(matrix) - 1)))
    header = "      " + " ".join(f"{column:>{width}}" for column in range(matrix.shape[1]))
    rows = [f"  {row:>2}  " + " ".join(f"{int(value):>{width}}" for value in matrix[row]) for row in range(len(matrix))]
    return "\n".join([header, *rows])


# -- predict --------------------------------------------------------------------------


def read_samples(path: Path, input_shape: tuple[int, ...], raw_range) -> np.ndarray:
    """Read FILE for ``convgrad predict`` as a batch of shape (N, *input_shape).

    Raises
    ------
    ValueError
        If the array's shape fits neither one sample nor a batch, the image
        cannot be used by this model, or the file cannot be read.
    """
    if path.is_dir():
        raise IsADirectoryError(f"input file {path} is a directory; expected a .npy array or an image file")
    if not path.is_file():
        raise FileNotFoundError(f"input file {path} not found")
    if path.suffix.lower() == ".npy":
        try:
            array = np.load(path, allow_pickle=False)
        except ValueError as error:
            raise ValueError(f"cannot read {path} as a .npy array: {error}") from error
        if not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
            raise ValueError(f"{path} contains a {array.dtype} array; expected an integer or floating array")
        if not np.all(np.isfinite(array)):
            raise ValueError(f"{path} contains NaN or infinite values; every input value must be finite")
        return _as_batch(array.astype(np.float64), input_shape, path)
    return _read_image(path, input_shape, raw_range)[None]


def _as_batch(array: np.ndarray, input_shape: tuple[int, ...], path: Path) -> np.ndarray:
    sample_shapes = [tuple(input_shape)]
    if input_shape[0] == 1:
        sample_shapes.append(tuple(input_shape[1:]))
    for shape in sample_shapes:
        if array.shape == shape:
            return array.reshape((1, *input_shape))
        if array.ndim == len(shape) + 1 and array.shape[1:] == shape:
            if len(array) == 0:
                raise ValueError(f"{path} contains an empty batch of shape {array.shape}; expected at least one sample")
            return array.reshape((len(array), *input_shape))
    accepted = " or ".join(f"{shape} for one sample, (N, {', '.join(map(str, shape))}) for a batch" for shape in sample_shapes)
    raise ValueError(f"{path} contains an array of shape {array.shape}; this model takes {accepted}")


# Divisors that map the pixel values of Pillow's integer grayscale modes to
# [0, 1]. Mode "I" contains signed 32-bit integers, and only its non-negative half
# is accepted.
# NOTE: a 16-bit image that a reader loads as mode "I" instead of "I;16" comes
# out near black, because its values are divided by 2**31 - 1.
_INTEGER_MODE_MAX = {
    "L": 255,
    "I;16": 65535,
    "I;16L": 65535,
    "I;16B": 65535,
    "I;16N": 65535,
    "I": 2**31 - 1,
}


def _image_pixels(image, path: Path) -> np.ndarray:
    """Return the pixels of a Pillow image as a 2-D float64 array in [0, 1].

    Integer grayscale images are divided by the maximum of their mode (255 for
    8-bit, 65535 for 16-bit, 2**31 - 1 for 32-bit). Float images (mode "F")
    are taken as already in [0, 1]. Other modes (RGB, RGBA, palette, ...)
    are converted to 8-bit grayscale first.

    Raises
    ------
    ValueError
        If a float image has values outside [0, 1] or that are not finite, or
        a 32-bit integer image has negative values.
    """
    if image.mode == "F":
        pixels = np.asarray(image, dtype=np.float64)
        if not np.all(np.isfinite(pixels)) or pixels.min() < 0.0 or pixels.max() > 1.0:
            raise ValueError(
                f"{path} is a floating-point image with values in [{pixels.min():g}, {pixels.max():g}]; "
                "floating-point images must contain finite values in [0, 1]"
            )
        return pixels
    if image.mode not in _INTEGER_MODE_MAX:
        image = image.convert("L")
    pixels = np.asarray(image).astype(np.float64)
    if pixels.size and pixels.min() < 0:
        raise ValueError(
            f"{path} is a 32-bit integer image with negative values (minimum {pixels.min():g}); "
            "expected values in [0, 2**31 - 1]"
        )
    return pixels / _INTEGER_MODE_MAX[image.mode]


def _read_image(path: Path, input_shape: tuple[int, ...], raw_range) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    if len(input_shape) != 3 or input_shape[0] != 1 or raw_range is None:
        raise ValueError(
            f"{path} is not a .npy file, and this model takes inputs of shape {tuple(input_shape)}; "
            "images are accepted only for models of 1-channel 2-D images"
        )
    height, width = input_shape[1:]
    try:
        with Image.open(path) as image:
            image.load()
            pixels = _image_pixels(image, path)
    except (UnidentifiedImageError, OSError) as error:
        raise ValueError(f"cannot read {path} as an image: {error}") from error

    if pixels.shape != (height, width):
        print(
            f"convgrad predict: warning: {path} is {pixels.shape[1]}x{pixels.shape[0]} pixels; "
            f"resized to {width}x{height} without keeping the aspect ratio",
            file=sys.stderr,
        )
        # Resampling in float keeps the full precision of 16-bit and float
        # images. Lanczos can overshoot, so the result is clipped to [0, 1].
        resized = Image.fromarray(pixels.astype(np.float32)).resize((width, height), Image.Resampling.LANCZOS)
        pixels = np.clip(np.asarray(resized, dtype=np.float64), 0.0, 1.0)
    low, high = raw_range
    return (low + (high - low) * pixels)[None]


def command_predict(args) -> int:
    from convgrad.run import load_trained_model
    from convgrad.train import model_input

    try:
        model, metadata, arrays = load_trained_model(args.checkpoint)
        run = metadata["run"]
        input_shape = tuple(metadata["input_shape"])
        samples = read_samples(Path(args.file), input_shape, run.get("raw_input_range"))
        standardizer = _normalization(arrays)
        x = model_input(standardizer.transform(samples.astype(np.float32)), input_shape, metadata["dtype"])
    except USER_ERRORS as error:
        return _fail("predict", error)

    logits = model.forward(x).astype(np.float64)
    if not np.all(np.isfinite(logits)):
        print(
            f"convgrad predict: error: the model in {args.checkpoint} produces non-finite logits "
            "(NaN or infinite weights?), so its predictions are meaningless",
            file=sys.stderr,
        )
        return EXIT_FAILURE
    shifted = logits - logits.max(axis=1, keepdims=True)
    probabilities = np.exp(shifted)
    probabilities /= probabilities.sum(axis=1, keepdims=True)

    names = run["class_names"] or [str(i) for i in range(run["num_classes"])]
    width = max(len(name) for name in names)
    for index, row in enumerate(probabilities):
        predicted = int(row.argmax())
        print(f"sample {index}: class {predicted} ({names[predicted]}), probability {row[predicted]:.4f}")
        for class_index, probability in enumerate(row):
            print(f"  {class_index:>2}  {names[class_index]:<{width}}  {probability:.4f}")
    return EXIT_OK


# -- gradcheck and summary ----------------------------------------------------------------


def command_gradcheck(args) -> int:
    from convgrad.gradcheck_suite import run_all, tolerances

    results = run_all(seed=args.seed)
    name_width = max(len(result.name) for result in results)
    print(f"{'check':<{name_width}}  {'max abs error':>13}  {'max rel error':>13}  result")
    for result in results:
        print(
            f"{result.name:<{name_width}}  {result.max_abs_error:>13.3e}  {result.max_rel_error:>13.3e}  "
            f"{'pass' if result.passed else 'FAIL'}"
        )
    failed = [result for result in results if not result.passed]
    atol, rtol = tolerances()
    print(
        f"an element passes when |analytic - numeric| <= {atol:g} + {rtol:g} * |numeric|, so the max rel error "
        "can exceed the relative tolerance at elements whose gradient is close to 0"
    )
    for result in failed:
        print(f"{result.name}: {result.detail}")
    print(f"{len(results) - len(failed)} passed, {len(failed)} failed")
    return EXIT_FAILURE if failed else EXIT_OK


def command_summary(args) -> int:
    from convgrad import models
    from convgrad.nn.summary import summary

    preset = models.get_preset(args.model)
    model = preset.build(10, np.random.default_rng(0), np.float32)
    print(f"{preset.name}: {preset.description}")
    print(f"datasets: {', '.join(preset.datasets)}; input shape {preset.input_shape} per sample, 10 classes")
    print(summary(model, preset.input_shape))
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
