"""Classification metrics against plain loops, and checkpoint file safety."""

import os
import pickle
import zipfile

import numpy as np
import pytest

from convgrad import checkpoint
from convgrad.checkpoint import load_checkpoint, save_checkpoint
from convgrad.metrics import accuracy, confusion_matrix, per_class_accuracy

# -- metrics --------------------------------------------------------------------


def test_accuracy_from_logits_and_indices():
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((50, 4))
    targets = rng.integers(0, 4, size=50)

    correct = 0
    for row, target in zip(logits, targets):
        best = max(range(4), key=lambda c: row[c])
        correct += best == target
    expected = correct / 50

    assert accuracy(logits, targets) == expected
    assert accuracy(np.argmax(logits, axis=1), targets) == expected


def test_accuracy_ties_pick_first_class():
    logits = np.array([[1.0, 1.0, 0.0], [0.0, 2.0, 2.0]])
    assert accuracy(logits, np.array([0, 1])) == 1.0


def test_accuracy_rejects_bad_input():
    with pytest.raises(ValueError, match="undefined for 0 samples"):
        accuracy(np.zeros((0, 3)), np.zeros(0, dtype=int))
    with pytest.raises(TypeError, match="integer class indices"):
        accuracy(np.array([0.0, 1.0]), np.array([0, 1]))
    with pytest.raises(ValueError, match=r"targets must have shape \(2,\)"):
        accuracy(np.array([0, 1]), np.array([0, 1, 1]))
    with pytest.raises(TypeError, match="targets must have an integer dtype"):
        accuracy(np.array([0, 1]), np.array([0.0, 1.0]))


def test_confusion_matrix_matches_loop():
    rng = np.random.default_rng(1)
    num_classes = 5
    pred = rng.integers(0, num_classes, size=200)
    targets = rng.integers(0, num_classes, size=200)

    expected = np.zeros((num_classes, num_classes), dtype=np.int64)
    for p, t in zip(pred, targets):
        expected[t, p] += 1

    matrix = confusion_matrix(pred, targets, num_classes)

    assert matrix.dtype == np.int64
    np.testing.assert_array_equal(matrix, expected)
    assert matrix.sum() == 200


def test_confusion_matrix_rows_are_true_classes():
    matrix = confusion_matrix(np.array([2, 2, 0]), np.array([0, 1, 0]), 3)
    assert matrix[0, 2] == 1
    assert matrix[1, 2] == 1
    assert matrix[0, 0] == 1
    assert matrix[2].sum() == 0


def test_confusion_matrix_accepts_logits():
    logits = np.array([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7]])
    np.testing.assert_array_equal(confusion_matrix(logits, np.array([1, 1, 0]), 2), [[0, 1], [1, 1]])


def test_confusion_matrix_rejects_out_of_range():
    with pytest.raises(ValueError, match=r"pred must be in \[0, 3\)"):
        confusion_matrix(np.array([0, 3]), np.array([0, 1]), 3)
    with pytest.raises(ValueError, match=r"targets must be in \[0, 3\)"):
        confusion_matrix(np.array([0, 1]), np.array([-1, 1]), 3)
    with pytest.raises(ValueError, match="num_classes must be a positive integer"):
        confusion_matrix(np.array([0]), np.array([0]), 0)


def test_per_class_accuracy_matches_loop():
    confusion = np.array([[5, 1, 0], [0, 0, 0], [2, 3, 5]])

    result = per_class_accuracy(confusion)

    assert result[0] == 5 / 6
    assert np.isnan(result[1]), "a class without samples has no accuracy"
    assert result[2] == 5 / 10


def test_per_class_accuracy_rejects_bad_matrix():
    with pytest.raises(ValueError, match="square"):
        per_class_accuracy(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="non-negative"):
        per_class_accuracy(np.array([[1, -1], [0, 1]]))


# -- checkpoint round trip ------------------------------------------------------


def special_floats(dtype, uint_dtype, payloads):
    """Return an array with NaN payloads, signed zeros, infinities and subnormals."""
    info = np.finfo(dtype)
    values = np.array([-0.0, 0.0, np.inf, -np.inf, info.smallest_subnormal, info.max, 1.5], dtype=dtype)
    nans = np.array(payloads, dtype=uint_dtype).view(dtype)
    return np.concatenate([values, nans])


def test_round_trip_is_bit_exact(tmp_path):
    arrays = {
        "float32": special_floats(np.float32, np.uint32, [0x7FC00001, 0xFFBFFFFF, 0x7F800001]),
        "float64": special_floats(np.float64, np.uint64, [0x7FF8000000000123, 0xFFF0000000000001]),
        "weights.conv1": np.random.default_rng(2).standard_normal((4, 3, 5, 5)).astype(np.float32),
        "fortran": np.asfortranarray(np.arange(12.0).reshape(3, 4)),
        "strided": np.arange(20, dtype=np.float64)[::3],
        "int64": np.array([-(2**63), 2**63 - 1], dtype=np.int64),
        "bool": np.array([True, False]),
        "empty": np.zeros((0, 3), dtype=np.float32),
        "scalar": np.float64(-0.0),
        "string": np.array(["relu", "gelu"]),
        "file": np.array([1]),
        "allow_pickle": np.array([2]),
    }
    metadata = {"epoch": 3, "loss": 0.25, "name": "run é", "sizes": [1, 2], "nested": {"a": None}}
    path = tmp_path / "model.npz"

    save_checkpoint(path, arrays, metadata)
    loaded, loaded_metadata = load_checkpoint(path)

    assert loaded_metadata == metadata
    assert list(loaded) == list(arrays)
    for name, original in arrays.items():
        original = np.asarray(original)
        assert loaded[name].dtype == original.dtype, name
        assert loaded[name].shape == original.shape, name
        assert loaded[name].tobytes() == original.tobytes(), name


def test_file_is_plain_npz(tmp_path):
    path = tmp_path / "plain.npz"
    save_checkpoint(path, {"x": np.arange(3.0)}, {"k": 1})

    with np.load(path, allow_pickle=False) as archive:
        np.testing.assert_array_equal(archive["x"], np.arange(3.0))
        assert archive[checkpoint.METADATA_KEY].dtype == np.uint8


def test_save_replaces_existing_file(tmp_path):
    path = tmp_path / "ckpt.npz"
    save_checkpoint(path, {"x": np.zeros(2)}, {"version": 1})
    save_checkpoint(path, {"y": np.ones(3)}, {"version": 2})

    arrays, metadata = load_checkpoint(path)

    assert metadata == {"version": 2}
    assert list(arrays) == ["y"]
    assert sorted(os.listdir(tmp_path)) == ["ckpt.npz"]


def test_saved_file_mode_follows_umask(tmp_path):
    path = tmp_path / "ckpt.npz"
    save_checkpoint(path, {"x": np.zeros(2)}, {})
    assert os.stat(path).st_mode & 0o777 == 0o666 & ~checkpoint._UMASK


# -- checkpoint failures --------------------------------------------------------


def write_original(path):
    save_checkpoint(path, {"x": np.arange(5.0)}, {"version": 1})
    return path.read_bytes()


def test_failed_replace_keeps_old_file(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.npz"
    original = write_original(path)

    def failing_replace(src, dst):
        raise OSError("simulated failure during rename")

    monkeypatch.setattr(checkpoint.os, "replace", failing_replace)
    with pytest.raises(OSError, match="simulated failure"):
        save_checkpoint(path, {"x": np.zeros(1000)}, {"version": 2})

    assert path.read_bytes() == original
    assert os.listdir(tmp_path) == ["ckpt.npz"], "the temporary file must be removed"


def test_failure_mid_write_keeps_old_file(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.npz"
    original = write_original(path)
    real_write_array = np.lib.format.write_array
    calls = []

    def write_then_fail(file, array, **kwargs):
        calls.append(array.shape)
        if len(calls) == 2:
            raise KeyboardInterrupt
        real_write_array(file, array, **kwargs)

    monkeypatch.setattr(np.lib.format, "write_array", write_then_fail)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, {"a": np.ones(10_000), "b": np.ones(10_000)}, {"version": 2})

    assert len(calls) == 2, "the failure must happen after one array was written"
    assert path.read_bytes() == original
    assert os.listdir(tmp_path) == ["ckpt.npz"]
    assert load_checkpoint(path)[1] == {"version": 1}


def test_missing_file_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        load_checkpoint(tmp_path / "absent.npz")


def test_missing_directory_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        save_checkpoint(tmp_path / "no_such_dir" / "ckpt.npz", {}, {})


@pytest.mark.parametrize("fraction", [0.0, 0.1, 0.5, 0.9, 0.999])
def test_truncated_file_raises_value_error(tmp_path, fraction):
    path = tmp_path / "ckpt.npz"
    save_checkpoint(path, {"w": np.arange(1000.0), "b": np.arange(10.0)}, {"epoch": 1})
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])

    with pytest.raises(ValueError, match="not a (valid )?convgrad checkpoint"):
        load_checkpoint(path)


def test_corrupt_array_data_raises_value_error(tmp_path):
    path = tmp_path / "ckpt.npz"
    save_checkpoint(path, {"w": np.arange(1000.0)}, {})
    data = bytearray(path.read_bytes())
    data[400] ^= 0xFF
    path.write_bytes(bytes(data))

    with pytest.raises(ValueError, match="not a (valid )?convgrad checkpoint"):
        load_checkpoint(path)


def test_pickled_object_array_is_rejected(tmp_path):
    path = tmp_path / "evil.npz"
    np.savez(path, payload=np.array([{"a": 1}], dtype=object), __metadata__=np.frombuffer(b"{}", np.uint8))

    with pytest.raises(ValueError, match="not a (valid )?convgrad checkpoint"):
        load_checkpoint(path)


def test_plain_pickle_is_rejected(tmp_path):
    path = tmp_path / "evil.npz"
    path.write_bytes(pickle.dumps({"x": 1}))

    with pytest.raises(ValueError, match="not a (valid )?convgrad checkpoint"):
        load_checkpoint(path)


@pytest.mark.parametrize(
    "content",
    [b"", bytes(range(256)) * 4, b'{"epoch": 3, "weights": [1, 2]}', b"\x80\x04K\x01."],
    ids=["empty", "random-bytes", "json", "pickle"],
)
def test_foreign_file_is_not_a_convgrad_checkpoint(tmp_path, content):
    path = tmp_path / "foreign.npz"
    path.write_bytes(content)

    with pytest.raises(ValueError) as excinfo:
        load_checkpoint(path)
    message = str(excinfo.value)
    assert "is not a convgrad checkpoint (not a valid .npz archive written by convgrad)" in message
    assert "pickled" not in message
    assert "unsafe" not in message


def test_directory_is_rejected(tmp_path):
    with pytest.raises(IsADirectoryError, match="is a directory"):
        load_checkpoint(tmp_path)


def test_npy_file_is_rejected(tmp_path):
    path = tmp_path / "array.npy"
    np.save(path, np.arange(3))

    with pytest.raises(ValueError, match="single .npy array"):
        load_checkpoint(path)


def test_missing_metadata_raises_value_error(tmp_path):
    path = tmp_path / "other.npz"
    np.savez(path, x=np.arange(3))

    with pytest.raises(ValueError, match="has no '__metadata__' entry"):
        load_checkpoint(path)


def test_invalid_metadata_raises_value_error(tmp_path):
    path = tmp_path / "bad.npz"
    with zipfile.ZipFile(path, "w") as archive:
        with archive.open("__metadata__.npy", "w") as entry:
            np.lib.format.write_array(entry, np.frombuffer(b"{not json", dtype=np.uint8))

    with pytest.raises(ValueError, match="not valid UTF-8 JSON"):
        load_checkpoint(path)


def test_save_rejects_invalid_input(tmp_path):
    path = tmp_path / "ckpt.npz"
    with pytest.raises(TypeError, match="needs pickling"):
        save_checkpoint(path, {"x": np.array([None])}, {})
    with pytest.raises(TypeError, match="must be serializable as JSON"):
        save_checkpoint(path, {}, {"array": np.zeros(2)})
    with pytest.raises(TypeError, match="metadata keys must be strings"):
        save_checkpoint(path, {}, {1: "one"})
    with pytest.raises(ValueError, match="must not use the key"):
        save_checkpoint(path, {"__metadata__": np.zeros(1)}, {})
    with pytest.raises(TypeError, match="must be a numpy.ndarray"):
        save_checkpoint(path, {"x": [1, 2]}, {})
    assert not path.exists()
    assert os.listdir(tmp_path) == []
