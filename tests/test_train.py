"""Tests of the model presets, the trainer, its checkpoints and the report."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math

import numpy as np
import pytest

from convgrad import models
from trainer_support import mnist1d_cache  # noqa: F401 - pytest fixture
from convgrad.run import TrainConfig, load_trained_model, prepare_training, summarize_run
from convgrad.train import Trainer, TrainingDiverged, flatten_state, unflatten_state

torch = pytest.importorskip("torch")


# -- presets against PyTorch ---------------------------------------------------------


def _torch_mnist1d_cnn():
    tnn = torch.nn
    layers = []
    for index, (c_in, c_out) in enumerate([(1, 32), (32, 32), (32, 64), (64, 64), (64, 128), (128, 128)]):
        kernel = 5 if index == 0 else 3
        layers += [tnn.Conv1d(c_in, c_out, kernel, padding="same", bias=False), tnn.BatchNorm1d(c_out), tnn.ReLU()]
        if index % 2 == 1:
            layers.append(tnn.MaxPool1d(2))
    layers += [tnn.AdaptiveAvgPool1d(1), tnn.Flatten(), tnn.Dropout(0.2), tnn.Linear(128, 10)]
    return tnn.Sequential(*layers)


def _torch_fashion_cnn():
    tnn = torch.nn
    layers = []
    for index, (c_in, c_out) in enumerate([(1, 32), (32, 32), (32, 64), (64, 64)]):
        layers += [tnn.Conv2d(c_in, c_out, 3, padding="same", bias=False), tnn.BatchNorm2d(c_out), tnn.ReLU()]
        if index % 2 == 1:
            layers.append(tnn.MaxPool2d(2))
    layers += [tnn.Flatten(), tnn.Dropout(0.3), tnn.Linear(64 * 7 * 7, 10)]
    return tnn.Sequential(*layers)


@pytest.mark.parametrize(
    ("name", "torch_builder", "input_shape"),
    [("mnist1d-cnn", _torch_mnist1d_cnn, (1, 40)), ("fashion-cnn", _torch_fashion_cnn, (1, 28, 28))],
)
def test_preset_matches_torch_architecture(name, torch_builder, input_shape):
    """Same parameter count, and the same eval-mode logits once PyTorch gets our weights."""
    model = models.build_model(name, 10, np.random.default_rng(0), np.float64)
    reference = torch_builder().double()
    reference_params = sum(p.numel() for p in reference.parameters())
    assert model.num_parameters() == reference_params

    # Both are flat Sequentials with the layers in the same order, so the
    # dotted state names coincide.
    state = model.state_dict()
    rng = np.random.default_rng(1)
    for key, value in state.items():
        if "running_var" in key:
            state[key] = rng.uniform(0.5, 2.0, value.shape)
        elif "running_mean" in key:
            state[key] = rng.normal(0.0, 0.5, value.shape)
    model.load_state_dict(state)
    reference.load_state_dict({key: torch.from_numpy(np.asarray(value)) for key, value in state.items()})

    x = rng.standard_normal((3, *input_shape))
    model.eval()
    reference.eval()
    expected = reference(torch.from_numpy(x)).detach().numpy()
    np.testing.assert_allclose(model.forward(x), expected, rtol=1e-10, atol=1e-10)


def test_mnist1d_cnn_parameter_count():
    convolutions = 1 * 32 * 5 + 32 * 32 * 3 + 32 * 64 * 3 + 64 * 64 * 3 + 64 * 128 * 3 + 128 * 128 * 3
    batch_norms = 2 * (32 + 32 + 64 + 64 + 128 + 128)
    linear = 128 * 10 + 10
    model = models.build_model("mnist1d-cnn", 10, np.random.default_rng(0))
    assert model.num_parameters() == convolutions + batch_norms + linear == 97578


@pytest.mark.parametrize("name", sorted(models.PRESETS))
def test_preset_output_shape_and_dtype(name):
    preset = models.get_preset(name)
    model = preset.build(7, np.random.default_rng(0), np.float32)
    x = np.random.default_rng(1).standard_normal((2, *preset.input_shape)).astype(np.float32)
    logits = model.forward(x)
    assert logits.shape == (2, 7)
    assert logits.dtype == np.float32


def test_preset_same_seed_same_weights():
    first = models.build_model("tiny1d", 10, np.random.default_rng(5)).state_dict()
    second = models.build_model("tiny1d", 10, np.random.default_rng(5)).state_dict()
    third = models.build_model("tiny1d", 10, np.random.default_rng(6)).state_dict()
    assert all(np.array_equal(first[key], second[key]) for key in first)
    assert not all(np.array_equal(first[key], third[key]) for key in first)


def test_build_model_rejects_unknown_name():
    with pytest.raises(ValueError, match="unknown model preset 'resnet'"):
        models.build_model("resnet", 10, np.random.default_rng(0))


# -- state flattening --------------------------------------------------------------------


def test_flatten_state_round_trip():
    state = {
        "step": np.int64(3),
        "lr": np.float64(0.1),
        "name": np.str_("cos"),
        "0.exp_avg": np.arange(6, dtype=np.float32).reshape(2, 3),
        "nested": {"values": [1, 2.5, None, "text"], "pair": (np.zeros(2), True)},
        7: np.ones(3),
    }
    arrays = {}
    tree = flatten_state(state, "optimizer", arrays)
    json.dumps(tree)  # the tree must be plain JSON
    restored = unflatten_state(json.loads(json.dumps(tree)), arrays)

    assert restored["step"] == 3
    assert restored["step"].dtype == np.int64
    assert restored["lr"] == 0.1
    assert restored["lr"].dtype == np.float64
    assert restored["name"] == "cos"
    assert np.array_equal(restored["0.exp_avg"], state["0.exp_avg"])
    assert restored["0.exp_avg"].dtype == np.float32
    assert restored["nested"]["values"] == [1, 2.5, None, "text"]
    assert isinstance(restored["nested"]["pair"], tuple)
    assert np.array_equal(restored[7], np.ones(3))


def test_flatten_state_rejects_objects():
    with pytest.raises(TypeError, match="cannot store a value of type object"):
        flatten_state({"bad": object()}, "x", {})


# -- training runs ---------------------------------------------------------------------------


def _config(tmp_path, cache_dir, **changes):
    settings = dict(
        dataset="mnist1d",
        model="tiny1d",
        epochs=3,
        batch_size=50,
        limit_train=400,
        limit_test=200,
        data_dir=str(cache_dir),
        out=str(tmp_path / "run"),
    )
    settings.update(changes)
    return TrainConfig(**settings)


def _read_checkpoint(path):
    from convgrad.checkpoint import load_checkpoint

    arrays, metadata = load_checkpoint(path)
    return arrays, metadata


def _assert_same_checkpoint(first, second):
    arrays_a, meta_a = _read_checkpoint(first)
    arrays_b, meta_b = _read_checkpoint(second)
    assert sorted(arrays_a) == sorted(arrays_b)
    for key in arrays_a:
        assert arrays_a[key].dtype == arrays_b[key].dtype, key
        assert np.array_equal(arrays_a[key], arrays_b[key]), key

    def without_time(history):
        return [{k: v for k, v in record.items() if k != "seconds"} for record in history]

    assert without_time(meta_a["history"]) == without_time(meta_b["history"])
    for key in ("epoch", "global_step", "rng_states", "optimizer", "schedule", "optimizer_lr", "best_epoch"):
        assert meta_a[key] == meta_b[key], key


def test_short_run_learns_mnist1d(tmp_path, mnist1d_cache):
    config = _config(tmp_path, mnist1d_cache, epochs=12, limit_train=1000, limit_test=500, lr=2e-2)
    run = prepare_training(config)
    history = run.trainer.fit()

    assert [record.epoch for record in history] == list(range(1, 13))
    # Ten classes: chance is 10 %.
    assert history[-1].train_acc > 0.6
    assert history[-1].test_acc > 0.6
    assert history[-1].train_loss < history[0].train_loss
    assert (tmp_path / "run" / "last.npz").exists()
    assert (tmp_path / "run" / "best.npz").exists()


def test_checkpoint_round_trip_is_bit_exact(tmp_path, mnist1d_cache):
    config = _config(tmp_path, mnist1d_cache, epochs=1)
    run = prepare_training(config)
    run.trainer.fit()

    model, metadata, _ = load_trained_model(tmp_path / "run" / "last.npz")
    original = run.trainer.model.state_dict()
    restored = model.state_dict()
    assert list(original) == list(restored)
    for key in original:
        assert restored[key].dtype == original[key].dtype, key
        assert np.array_equal(restored[key], original[key]), key

    x = run.trainer.x_test[:20]
    run.trainer.model.eval()
    assert np.array_equal(model.forward(x), run.trainer.model.forward(x))
    assert metadata["epoch"] == 1
    assert metadata["run"]["preset"] == "tiny1d"
    assert metadata["run"]["dataset"] == "mnist1d"


class _Interrupt(Exception):
    pass


@pytest.mark.parametrize("optimizer", ["adamw", "sgd"])
def test_resumed_run_equals_uninterrupted(tmp_path, mnist1d_cache, optimizer):
    """Stopping after epoch 2 of 4 and resuming gives the same bits as one run.

    The tiny preset has dropout and batch normalization, so the generator
    state and the running statistics both have to be restored.
    """
    straight = _config(tmp_path / "a", mnist1d_cache, epochs=4, optimizer=optimizer)
    prepare_training(straight).trainer.fit()

    interrupted = _config(tmp_path / "b", mnist1d_cache, epochs=4, optimizer=optimizer)

    def stop_after_second(trainer, record):
        if record.epoch == 2:
            raise _Interrupt

    with pytest.raises(_Interrupt):
        prepare_training(interrupted).trainer.fit(epoch_callback=stop_after_second)
    _, metadata = _read_checkpoint(tmp_path / "b" / "run" / "last.npz")
    assert metadata["epoch"] == 2

    resumed = prepare_training(interrupted, resume=True)
    assert resumed.trainer.epoch == 2
    resumed.trainer.fit()

    _assert_same_checkpoint(tmp_path / "a" / "run" / "last.npz", tmp_path / "b" / "run" / "last.npz")
    _assert_same_checkpoint(tmp_path / "a" / "run" / "best.npz", tmp_path / "b" / "run" / "best.npz")


def test_resume_rejects_different_settings(tmp_path, mnist1d_cache):
    config = _config(tmp_path, mnist1d_cache, epochs=1)
    prepare_training(config).trainer.fit()
    with pytest.raises(ValueError, match="batch_size=50 in the checkpoint, 25 now"):
        prepare_training(dataclasses.replace(config, batch_size=25), resume=True)


def test_resume_without_checkpoint_fails(tmp_path, mnist1d_cache):
    with pytest.raises(FileNotFoundError, match="last.npz not found"):
        prepare_training(_config(tmp_path, mnist1d_cache), resume=True)


def _digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_nan_loss_stops_and_keeps_checkpoint(tmp_path, mnist1d_cache):
    run = prepare_training(_config(tmp_path, mnist1d_cache, epochs=3))
    trainer = run.trainer
    digests = {}

    class NanAfterFiveSteps:
        """Wraps the real loss and returns NaN from its sixth call on."""

        def __init__(self, loss):
            self.loss = loss
            self.calls = 0

        def forward(self, logits, targets):
            self.calls += 1
            value = self.loss.forward(logits, targets)
            return math.nan if self.calls > 5 else value

        def backward(self):
            return self.loss.backward()

    def poison_after_first(trainer, record):
        digests["last"] = _digest(trainer.last_path)
        digests["best"] = _digest(trainer.best_path)
        trainer.loss = NanAfterFiveSteps(trainer.loss)

    with pytest.raises(TrainingDiverged) as raised:
        trainer.fit(epoch_callback=poison_after_first)

    steps_per_epoch = 400 // 50
    assert raised.value.epoch == 2
    assert raised.value.step == steps_per_epoch + 6
    message = str(raised.value)
    assert "the loss is nan at epoch 2, step 14" in message
    assert "(epoch 1) was left unchanged" in message
    assert _digest(trainer.last_path) == digests["last"]
    assert _digest(trainer.best_path) == digests["best"]


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_nan_in_first_epoch_writes_no_checkpoint(tmp_path, mnist1d_cache):
    run = prepare_training(_config(tmp_path, mnist1d_cache, lr=1e30, optimizer="sgd", schedule="constant"))
    with pytest.raises(TrainingDiverged, match="at epoch 1, step .*no checkpoint was written"):
        run.trainer.fit()
    assert not (tmp_path / "run" / "last.npz").exists()


def test_early_stopping_after_patience(tmp_path, mnist1d_cache, monkeypatch):
    accuracies = iter([0.5, 0.6, 0.55, 0.6, 0.58, 0.9])
    real_evaluate = Trainer.evaluate

    def scripted_evaluate(self, x, y):
        loss, _, predictions = real_evaluate(self, x, y)
        return loss, next(accuracies), predictions

    monkeypatch.setattr(Trainer, "evaluate", scripted_evaluate)
    run = prepare_training(_config(tmp_path, mnist1d_cache, epochs=6, patience=2))
    history = run.trainer.fit()

    # Best is 0.6 at epoch 2; epochs 3 and 4 do not beat it (a tie is no improvement).
    assert [record.epoch for record in history] == [1, 2, 3, 4]
    assert run.trainer.best_epoch == 2
    assert "early stopping" in run.trainer.stop_reason
    _, metadata = _read_checkpoint(tmp_path / "run" / "best.npz")
    assert metadata["epoch"] == 2


def test_patience_off_by_default():
    assert TrainConfig().patience is None


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"dataset": "cifar"}, "dataset must be one of"),
        ({"model": "fashion-cnn"}, "model 'fashion-cnn' does not fit dataset 'mnist1d'"),
        ({"epochs": 0}, "epochs must be a positive integer, got 0"),
        ({"lr": -1.0}, "lr must be a finite number >= 0, got -1.0"),
        ({"optimizer": "rmsprop"}, "optimizer must be one of adamw, adam, sgd"),
        ({"seed": -3}, "seed must be a non-negative integer"),
    ],
)
def test_config_rejects_invalid_values(changes, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**changes).resolved()


def test_config_defaults_for_mnist1d():
    config = TrainConfig().resolved()
    assert (config.model, config.epochs, config.batch_size) == ("mnist1d-cnn", 50, 100)
    assert (config.optimizer, config.schedule, config.lr, config.weight_decay) == ("adamw", "onecycle", 3e-3, 5e-4)
    # 4000 samples in batches of 100 for 50 epochs: 2000 optimizer steps.
    assert config.epochs * 4000 // config.batch_size == 2000


# -- report -----------------------------------------------------------------------------------


def test_report_files_are_valid(tmp_path, mnist1d_cache):
    from PIL import Image

    from convgrad.report import write_report

    run = prepare_training(_config(tmp_path, mnist1d_cache, epochs=2))
    run.trainer.fit()
    metrics, confusion = summarize_run(run)
    written = write_report(tmp_path / "run", metrics, run.trainer.model, confusion, run.dataset.class_names)
    assert sorted(path.name for path in written) == ["confusion.png", "curves.png", "filters.png", "metrics.json"]

    for name in ("curves.png", "filters.png", "confusion.png"):
        path = tmp_path / "run" / name
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        with Image.open(path) as image:
            image.verify()

    loaded = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert [record["epoch"] for record in loaded["epochs"]] == [1, 2]
    for key in ("train_loss", "train_acc", "test_loss", "test_acc", "seconds", "lr"):
        assert key in loaded["epochs"][0]
    matrix = np.array(loaded["final"]["confusion_matrix"])
    assert matrix.shape == (10, 10)
    assert matrix.sum() == 200

    # The confusion matrix and accuracies must agree with an independent count.
    _, _, predictions = run.trainer.evaluate(run.trainer.x_test, run.trainer.y_test)
    expected = np.zeros((10, 10), dtype=int)
    np.add.at(expected, (run.trainer.y_test, predictions), 1)
    assert np.array_equal(matrix, expected)
    assert loaded["final"]["test_acc"] == pytest.approx(np.trace(expected) / 200)
    for label in range(10):
        value = loaded["final"]["per_class_accuracy"][label]
        if expected[label].sum():
            assert value == pytest.approx(expected[label, label] / expected[label].sum())
    assert loaded["config"]["model"] == "tiny1d"
    assert loaded["versions"]["numpy"] == np.__version__
