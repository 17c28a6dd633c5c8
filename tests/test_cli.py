"""End-to-end tests of the ``convgrad`` command line on small data."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from trainer_support import image_data_dir, mnist1d_cache  # noqa: F401 - pytest fixtures

from convgrad.cli import main

SOURCE_DIR = Path(__file__).resolve().parent.parent / "src"


def _train_mnist1d(out, cache, *extra):
    return main(
        [
            "train",
            "--model",
            "tiny1d",
            "--epochs",
            "2",
            "--batch-size",
            "50",
            "--limit-train",
            "300",
            "--limit-test",
            "100",
            "--data-dir",
            str(cache),
            "--out",
            str(out),
            "--quiet",
            *extra,
        ]
    )


@pytest.fixture(scope="module")
def mnist1d_run(tmp_path_factory, mnist1d_cache):
    out = tmp_path_factory.mktemp("cli") / "mnist1d"
    assert _train_mnist1d(out, mnist1d_cache) == 0
    return out


@pytest.fixture(scope="module")
def image_run(tmp_path_factory, image_data_dir):
    out = tmp_path_factory.mktemp("cli") / "images"
    code = main(
        [
            "train",
            "--dataset",
            "fashion-mnist",
            "--data-dir",
            str(image_data_dir),
            "--model",
            "fashion-small",
            "--epochs",
            "1",
            "--batch-size",
            "50",
            "--out",
            str(out),
            "--quiet",
        ]
    )
    assert code == 0
    return out


def _single_error_line(capsys, expected_code, code, pattern):
    captured = capsys.readouterr()
    assert code == expected_code
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert "Traceback" not in captured.err
    assert re.search(pattern, lines[0]), lines[0]
    return lines[0]


# -- train --------------------------------------------------------------------------------------


def test_train_writes_checkpoints_and_report(mnist1d_run):
    for name in ("last.npz", "best.npz", "metrics.json", "curves.png", "filters.png", "confusion.png"):
        assert (mnist1d_run / name).is_file(), name
    for name in ("curves.png", "filters.png", "confusion.png"):
        assert (mnist1d_run / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    metrics = json.loads((mnist1d_run / "metrics.json").read_text())
    assert len(metrics["epochs"]) == 2
    assert metrics["dataset"]["num_train"] == 300
    assert metrics["dataset"]["num_test"] == 100
    assert metrics["config"]["model"] == "tiny1d"


def test_train_prints_final_line(tmp_path, mnist1d_cache, capsys):
    assert _train_mnist1d(tmp_path / "run", mnist1d_cache, "--epochs", "1") == 0
    captured = capsys.readouterr()
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    last_line = captured.out.strip().splitlines()[-1]
    assert last_line.startswith(f"test accuracy {metrics['final']['test_acc']:.4f}")
    assert "after 1 epoch in" in last_line
    # --quiet: nothing on standard error.
    assert captured.err == ""


def test_train_start_line_uses_singular_for_one_epoch(tmp_path, mnist1d_cache, capsys):
    argv = ["train", "--model", "tiny1d", "--epochs", "1", "--batch-size", "50", "--limit-train", "100"]
    argv += ["--limit-test", "50", "--data-dir", str(mnist1d_cache), "--out", str(tmp_path / "run")]
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert "1 epoch of batch 50" in captured.err
    assert "1 epochs" not in captured.err + captured.out


def test_train_warns_before_replacing_run(tmp_path, mnist1d_cache, capsys):
    assert _train_mnist1d(tmp_path / "run", mnist1d_cache, "--epochs", "1") == 0
    capsys.readouterr()
    assert _train_mnist1d(tmp_path / "run", mnist1d_cache, "--epochs", "1") == 0
    assert "already contains a run; its checkpoints and report will be replaced" in capsys.readouterr().err


def test_train_interrupted_then_resumed(tmp_path, mnist1d_cache, mnist1d_run, capsys, monkeypatch):
    """Ctrl-C after epoch 1 of 2, then --resume, gives the fixture's uninterrupted result."""
    from convgrad.checkpoint import load_checkpoint
    from convgrad.train import Trainer

    real_log = Trainer._log_epoch

    def interrupt_after_first(self, record, improved):
        real_log(self, record, improved)
        if record.epoch == 1:
            raise KeyboardInterrupt

    out = tmp_path / "run"
    monkeypatch.setattr(Trainer, "_log_epoch", interrupt_after_first)
    assert _train_mnist1d(out, mnist1d_cache) == 130
    assert f"continue with convgrad train --resume --out {out}" in capsys.readouterr().err
    monkeypatch.setattr(Trainer, "_log_epoch", real_log)

    assert main(["train", "--resume", "--out", str(out), "--quiet"]) == 0
    expected, expected_metadata = load_checkpoint(mnist1d_run / "last.npz")
    resumed, metadata = load_checkpoint(out / "last.npz")
    assert metadata["epoch"] == 2
    assert sorted(expected) == sorted(resumed)
    for key in expected:
        assert np.array_equal(expected[key], resumed[key]), key
    assert metadata["rng_states"] == expected_metadata["rng_states"]


def test_train_resume_rejects_changed_option(mnist1d_run, capsys):
    code = main(["train", "--resume", "--out", str(mnist1d_run), "--batch-size", "10"])
    _single_error_line(capsys, 2, code, r"--batch-size 10 \(the run used 50\)")


def test_train_resume_without_checkpoint(tmp_path, capsys):
    code = main(["train", "--resume", "--out", str(tmp_path / "missing")])
    _single_error_line(capsys, 2, code, r"last\.npz not found")


def test_train_nan_loss_exits_nonzero(tmp_path, mnist1d_cache, capsys, monkeypatch):
    from convgrad.nn import losses

    real_forward = losses.CrossEntropyLoss.forward
    calls = {"count": 0}

    def nan_from_step_ten(self, logits, targets):
        value = real_forward(self, logits, targets)
        if logits.shape[0] == 50:  # training minibatches only
            calls["count"] += 1
            if calls["count"] >= 10:
                return float("nan")
        return value

    monkeypatch.setattr(losses.CrossEntropyLoss, "forward", nan_from_step_ten)
    out = tmp_path / "run"
    code = _train_mnist1d(out, mnist1d_cache, "--epochs", "3")
    captured = capsys.readouterr()
    assert code == 1
    assert "the loss is nan at epoch 2, step 10" in captured.err
    assert "(epoch 1) was left unchanged" in captured.err
    assert "Traceback" not in captured.err
    from convgrad.checkpoint import load_checkpoint

    assert load_checkpoint(out / "last.npz")[1]["epoch"] == 1
    assert not (out / "metrics.json").exists()


@pytest.mark.parametrize(
    ("argv", "pattern"),
    [
        (["train", "--epochs", "0"], r"--epochs: expected a positive integer, got '0'"),
        (["train", "--lr", "abc"], r"--lr: expected a number >= 0, got 'abc'"),
        (["train", "--dataset", "cifar10"], r"--dataset: invalid choice: 'cifar10'"),
        (["train", "--model", "fashion-cnn", "--epochs", "1"], r"model 'fashion-cnn' does not fit dataset 'mnist1d'"),
        (["train", "--unknown"], r"unrecognized arguments: --unknown"),
        (["frobnicate"], r"invalid choice: 'frobnicate'"),
    ],
)
def test_invalid_options_exit_2(argv, pattern, capsys, tmp_path):
    code = main([*argv, "--out", str(tmp_path)] if argv[0] == "train" else argv)
    _single_error_line(capsys, 2, code, pattern)


def _unusable_out_dirs(tmp_path):
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    cases = [(a_file, "existing file"), (a_file / "sub", "cannot create"), (Path("/proc/nope"), "cannot create")]
    if os.geteuid() != 0:  # root can write into a read-only directory
        read_only = tmp_path / "read-only"
        read_only.mkdir()
        read_only.chmod(0o500)
        cases.append((read_only, "cannot create or write"))
    return cases


def test_train_rejects_unusable_out_before_training(tmp_path, mnist1d_cache, capsys, monkeypatch):
    from convgrad import run

    def fail_if_loaded(*args, **kwargs):
        raise AssertionError("the dataset was loaded before --out was checked")

    monkeypatch.setattr(run, "load_dataset", fail_if_loaded)
    for out, wording in _unusable_out_dirs(tmp_path):
        code = _train_mnist1d(out, mnist1d_cache)
        line = _single_error_line(capsys, 2, code, rf"^convgrad train: error: .*{re.escape(str(out))}")
        assert wording in line


def test_train_missing_image_dataset(tmp_path, capsys):
    code = main(["train", "--dataset", "mnist", "--data-dir", str(tmp_path / "nowhere"), "--out", str(tmp_path)])
    _single_error_line(capsys, 2, code, r"^convgrad train: error: .*nowhere")


# -- evaluate ---------------------------------------------------------------------------------


def test_evaluate_matches_training_report(mnist1d_run, mnist1d_cache, capsys):
    code = main(["evaluate", str(mnist1d_run / "last.npz"), "--data-dir", str(mnist1d_cache), "--limit-test", "100"])
    captured = capsys.readouterr()
    assert code == 0
    metrics = json.loads((mnist1d_run / "metrics.json").read_text())
    assert f"accuracy {metrics['final']['test_acc']:.4f}" in captured.out

    # The printed matrix is the one in metrics.json.
    lines = captured.out.splitlines()
    start = lines.index("confusion matrix (rows: true class, columns: predicted class):") + 2
    printed = np.array([[int(v) for v in line.split()[1:]] for line in lines[start : start + 10]])
    assert np.array_equal(printed, np.array(metrics["final"]["confusion_matrix"]))
    assert "per-class accuracy:" in captured.out


def test_evaluate_bad_checkpoint(tmp_path, capsys):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a checkpoint")
    code = main(["evaluate", str(bad)])
    _single_error_line(capsys, 2, code, r"^convgrad evaluate: error: ")


def test_evaluate_json_file_is_not_a_checkpoint(tmp_path, capsys):
    path = tmp_path / "metrics.json"
    path.write_text('{"final": {"test_acc": 0.5}}')
    code = main(["evaluate", str(path)])
    line = _single_error_line(capsys, 2, code, r"is not a convgrad checkpoint \(not a valid \.npz archive written by convgrad\)")
    assert "pickled" not in line
    assert "unsafe" not in line


def test_directory_arguments_are_reported_as_directories(mnist1d_run, tmp_path, capsys):
    code = main(["evaluate", str(tmp_path)])
    _single_error_line(capsys, 2, code, r"^convgrad evaluate: error: checkpoint .* is a directory, not a checkpoint file$")
    code = main(["predict", str(tmp_path), str(tmp_path)])
    _single_error_line(capsys, 2, code, r"^convgrad predict: error: checkpoint .* is a directory")
    code = main(["predict", str(mnist1d_run / "last.npz"), str(tmp_path)])
    _single_error_line(capsys, 2, code, r"^convgrad predict: error: input file .* is a directory")


def _nan_weight_checkpoint(run_dir, tmp_path):
    from convgrad.checkpoint import load_checkpoint, save_checkpoint

    arrays, metadata = load_checkpoint(run_dir / "last.npz")
    arrays = {key: np.full_like(value, np.nan) if key.startswith("model/") and value.dtype.kind == "f" else value for key, value in arrays.items()}
    path = tmp_path / "nan.npz"
    save_checkpoint(path, arrays, metadata)
    return path


def test_evaluate_nan_weights_exit_1(mnist1d_run, mnist1d_cache, tmp_path, capsys):
    path = _nan_weight_checkpoint(mnist1d_run, tmp_path)
    code = main(["evaluate", str(path), "--data-dir", str(mnist1d_cache), "--limit-test", "100"])
    _single_error_line(capsys, 1, code, r"^convgrad evaluate: error: .* produces non-finite logits")


def test_predict_nan_weights_exit_1(mnist1d_run, tmp_path, capsys):
    path = _nan_weight_checkpoint(mnist1d_run, tmp_path)
    np.save(tmp_path / "sample.npy", np.zeros((1, 40)))
    code = main(["predict", str(path), str(tmp_path / "sample.npy")])
    _single_error_line(capsys, 1, code, r"^convgrad predict: error: .* produces non-finite logits")


def test_predict_rejects_nan_input(mnist1d_run, tmp_path, capsys):
    sample = np.zeros((1, 40))
    sample[0, 7] = np.nan
    np.save(tmp_path / "nan.npy", sample)
    code = main(["predict", str(mnist1d_run / "last.npz"), str(tmp_path / "nan.npy")])
    _single_error_line(capsys, 2, code, r"nan\.npy contains NaN or infinite values; every input value must be finite")


def test_evaluate_missing_checkpoint(tmp_path, capsys):
    code = main(["evaluate", str(tmp_path / "none.npz")])
    _single_error_line(capsys, 2, code, r"none\.npz not found")


# -- predict ------------------------------------------------------------------------------------


def _predictions(output: str) -> list[tuple[int, float]]:
    return [(int(m.group(1)), float(m.group(2))) for m in re.finditer(r"class (\d+) \(.*?\), probability ([\d.]+)", output)]


def _probabilities(output: str) -> list[list[float]]:
    blocks = []
    for line in output.splitlines():
        if line.startswith("sample "):
            blocks.append([])
        else:
            blocks[-1].append(float(line.split()[-1]))
    return blocks


def test_predict_npy_sample_and_batch(mnist1d_run, mnist1d_cache, tmp_path, capsys):
    from convgrad.datasets import load_mnist1d

    raw = load_mnist1d(cache_dir=mnist1d_cache).x_test[:3]
    np.save(tmp_path / "batch.npy", raw)
    np.save(tmp_path / "one.npy", raw[1, 0])  # shape (40,)

    assert main(["predict", str(mnist1d_run / "last.npz"), str(tmp_path / "batch.npy")]) == 0
    batch_output = capsys.readouterr().out
    assert main(["predict", str(mnist1d_run / "last.npz"), str(tmp_path / "one.npy")]) == 0
    single_output = capsys.readouterr().out

    batch = _probabilities(batch_output)
    assert len(batch) == 3
    for row in batch:
        assert len(row) == 10
        assert sum(row) == pytest.approx(1.0, abs=5e-4)
    assert _probabilities(single_output)[0] == batch[1]

    # Independent oracle: the stored model on the stored normalization.
    from convgrad.checkpoint import load_checkpoint
    from convgrad.run import load_trained_model

    model, _, _ = load_trained_model(mnist1d_run / "last.npz")
    arrays, _ = load_checkpoint(mnist1d_run / "last.npz")
    mean = arrays["extra/normalization/mean"].reshape(1, -1, 1)
    std = arrays["extra/normalization/std"].reshape(1, -1, 1)
    logits = model.forward(((raw - mean) / std).astype(np.float32))
    assert [label for label, _ in _predictions(batch_output)] == list(logits.argmax(axis=1))


def test_predict_rejects_wrong_shape(mnist1d_run, tmp_path, capsys):
    np.save(tmp_path / "wrong.npy", np.zeros((2, 39)))
    code = main(["predict", str(mnist1d_run / "last.npz"), str(tmp_path / "wrong.npy")])
    _single_error_line(capsys, 2, code, r"shape \(2, 39\); this model takes \(1, 40\) for one sample")


def test_predict_rejects_empty_batch(mnist1d_run, tmp_path, capsys):
    np.save(tmp_path / "empty.npy", np.zeros((0, 1, 40)))
    code = main(["predict", str(mnist1d_run / "last.npz"), str(tmp_path / "empty.npy")])
    _single_error_line(capsys, 2, code, r"empty batch of shape \(0, 1, 40\); expected at least one sample")


def test_predict_missing_input_file(mnist1d_run, tmp_path, capsys):
    code = main(["predict", str(mnist1d_run / "last.npz"), str(tmp_path / "absent.npy")])
    _single_error_line(capsys, 2, code, r"input file .*absent\.npy not found")


def test_predict_png_equals_npy(image_run, tmp_path, capsys):
    from PIL import Image
    from trainer_support import synthetic_images

    images, _ = synthetic_images(1, np.random.default_rng(7))
    Image.fromarray(images[0], mode="L").save(tmp_path / "sample.png")
    np.save(tmp_path / "sample.npy", images[0].astype(np.float64) / 255.0)

    checkpoint = str(image_run / "last.npz")
    assert main(["predict", checkpoint, str(tmp_path / "sample.png")]) == 0
    png_output = capsys.readouterr()
    assert main(["predict", checkpoint, str(tmp_path / "sample.npy")]) == 0
    npy_output = capsys.readouterr()
    assert png_output.out == npy_output.out
    assert png_output.err == ""
    assert "Ankle boot" in png_output.out  # class names come from the checkpoint


def test_predict_image_scaled_by_bit_depth(tmp_path):
    """One picture saved at 8-bit, 16-bit, 32-bit integer and float depth reads as the same sample."""
    from PIL import Image

    from convgrad.cli import read_samples

    # Values above 255 in the 16-bit file catch a reader that clips instead of scaling.
    picture16 = np.random.default_rng(3).integers(0, 65536, size=(28, 28), dtype=np.uint16)
    expected = picture16 / 65535.0
    Image.fromarray(np.round(picture16 / 257.0).astype(np.uint8)).save(tmp_path / "eight.png")
    Image.fromarray(picture16).save(tmp_path / "sixteen.png")
    Image.fromarray(picture16).save(tmp_path / "sixteen.tif")
    Image.fromarray((expected * (2**31 - 1)).astype(np.int32)).save(tmp_path / "thirty-two.tif")
    Image.fromarray(expected.astype(np.float32)).save(tmp_path / "float.tif")
    rgb = np.repeat(np.round(picture16 / 257.0).astype(np.uint8)[:, :, None], 3, axis=2)
    Image.fromarray(rgb).save(tmp_path / "rgb.png")

    for name in ("eight.png", "sixteen.png", "sixteen.tif", "thirty-two.tif", "float.tif", "rgb.png"):
        sample = read_samples(tmp_path / name, (1, 28, 28), (0.0, 1.0))
        assert sample.shape == (1, 1, 28, 28)
        np.testing.assert_allclose(sample[0, 0], expected, rtol=0, atol=1 / 255, err_msg=name)


def test_predict_rejects_float_image_outside_unit_range(image_run, tmp_path, capsys):
    from PIL import Image

    Image.fromarray(np.full((28, 28), 2.5, dtype=np.float32)).save(tmp_path / "bright.tif")
    code = main(["predict", str(image_run / "last.npz"), str(tmp_path / "bright.tif")])
    _single_error_line(capsys, 2, code, r"floating-point images must contain finite values in \[0, 1\]")


def test_predict_png_other_size_is_resized(image_run, tmp_path, capsys):
    from PIL import Image

    Image.fromarray(np.full((40, 56), 128, dtype=np.uint8), mode="L").save(tmp_path / "big.png")
    assert main(["predict", str(image_run / "last.npz"), str(tmp_path / "big.png")]) == 0
    captured = capsys.readouterr()
    assert "is 56x40 pixels; resized to 28x28" in captured.err
    assert len(_predictions(captured.out)) == 1


def test_predict_png_rejected_for_1d_model(mnist1d_run, tmp_path, capsys):
    from PIL import Image

    Image.fromarray(np.zeros((28, 28), dtype=np.uint8), mode="L").save(tmp_path / "x.png")
    code = main(["predict", str(mnist1d_run / "last.npz"), str(tmp_path / "x.png")])
    _single_error_line(capsys, 2, code, r"images are accepted only for models of 1-channel 2-D images")


# -- summary, gradcheck, help ----------------------------------------------------------------


def test_summary_lists_parameter_count(capsys):
    assert main(["summary", "mnist1d-cnn"]) == 0
    output = capsys.readouterr().out
    assert re.search(r"97,?578", output), output
    assert "Conv1d" in output


def test_gradcheck_passes(capsys):
    assert main(["gradcheck"]) == 0
    output = capsys.readouterr().out
    lines = output.strip().splitlines()
    assert lines[0].split()[:2] == ["check", "max"]
    assert lines[-1].endswith(" 0 failed")
    names = [line for line in lines[1:-1] if not line.startswith("an element passes")]
    assert any(line.startswith("conv 2-D") for line in names)
    assert any(line.startswith("BatchNorm2d training") for line in names)
    assert all(line.rstrip().endswith("pass") for line in names)


def test_gradcheck_reports_wrong_gradient(capsys, monkeypatch):
    from convgrad.nn.activation import Tanh

    real_backward = Tanh.backward
    monkeypatch.setattr(Tanh, "backward", lambda self, grad_output: 1.01 * real_backward(self, grad_output))
    assert main(["gradcheck"]) == 1
    output = capsys.readouterr().out
    failing = [line for line in output.splitlines() if line.rstrip().endswith("FAIL")]
    assert [line.split()[0] for line in failing] == ["Tanh"]
    assert re.search(r"^Tanh: gradient of input differs from finite differences", output, re.MULTILINE)
    assert output.strip().splitlines()[-1].endswith(" 1 failed")


@pytest.mark.parametrize("argv", [["--help"], ["train", "--help"], ["predict", "--help"]])
def test_help_exits_zero(argv, capsys):
    assert main(argv) == 0
    assert "usage: convgrad" in capsys.readouterr().out


def test_train_help_states_units_and_defaults(capsys):
    main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "mnist1d: 50 epochs of batch 100, model mnist1d-cnn" in text
    assert "default: 0.003 for adamw" in text
    assert "stepped after every minibatch" in text


def test_subprocess_console_entry(tmp_path):
    """The module runs as a program and reports an error without a traceback."""
    env = dict(os.environ, PYTHONPATH=str(SOURCE_DIR))
    ok = subprocess.run([sys.executable, "-m", "convgrad.cli", "summary", "tiny1d"], capture_output=True, text=True, env=env)
    assert ok.returncode == 0, ok.stderr
    assert "tiny1d" in ok.stdout

    bad = subprocess.run(
        [sys.executable, "-m", "convgrad.cli", "evaluate", str(tmp_path / "missing.npz")],
        capture_output=True,
        text=True,
        env=env,
    )
    assert bad.returncode == 2
    assert bad.stderr.strip().count("\n") == 0
    assert "Traceback" not in bad.stderr


def test_plot_ratios_help_and_missing_results(tmp_path):
    script = Path(__file__).resolve().parent.parent / "benchmarks" / "plot_ratios.py"
    shown = subprocess.run([sys.executable, str(script), "--help"], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert shown.returncode == 0, shown.stderr
    assert "RESULTS.json" in shown.stdout
    assert "bench_conv.py" in shown.stdout

    missing = subprocess.run([sys.executable, str(script), "absent.json"], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert missing.returncode == 2
    assert "Traceback" not in missing.stderr
    assert "cannot read absent.json" in missing.stderr


def test_train_help_names_test_split(capsys):
    assert main(["train", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "There is no validation split: best.npz and --patience select on the test split" in text
    patience_help = text[text.index("--patience EPOCHS") :]
    assert "uses the test split, because there is no validation split" in patience_help
