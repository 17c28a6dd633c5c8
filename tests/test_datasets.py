"""Tests for convgrad.datasets: IDX files, loaders, MNIST-1D cache, normalization, batching.

The oracles are independent of the code under test. IDX bytes are built by
hand with ``struct``, and MNIST-1D is compared with a direct call of the
``mnist1d`` generator. Statistics are checked against PyTorch. The real
Fashion-MNIST files are checked with a fixed-offset parse, the balanced
class counts and the commonly quoted training-set pixel mean and std.
"""

from __future__ import annotations

import gzip
import logging
import random
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from convgrad.datasets import (
    DATASET_NAMES,
    FASHION_MNIST_CLASS_NAMES,
    FASHION_MNIST_SYSTEM_DIR,
    KMNIST_CLASS_NAMES,
    DataLoader,
    Dataset,
    Standardizer,
    default_cache_dir,
    get_dataset,
    iterate_minibatches,
    load_fashion_mnist,
    load_kmnist,
    load_mnist,
    load_mnist1d,
    normalize,
    read_idx,
    write_idx,
)
from convgrad.datasets import mnist1d_loader, preprocessing

IDX_DTYPES = [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64]
IDX_SHAPES = [(7,), (3, 5), (4, 2, 3), (2, 3, 1, 4)]


def random_array(rng: np.random.Generator, dtype, shape) -> np.ndarray:
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return rng.standard_normal(shape).astype(dtype) * 1e3
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max, size=shape, endpoint=True, dtype=dtype)


def write_valid_idx(path: Path) -> bytes:
    """Write a small uint8 IDX file by hand and return its uncompressed bytes."""
    content = bytes([0, 0, 0x08, 2]) + struct.pack(">II", 3, 4) + bytes(range(12))
    if path.suffix == ".gz":
        path.write_bytes(gzip.compress(content))
    else:
        path.write_bytes(content)
    return content


# --- IDX reader and writer ----------------------------------------------------


@pytest.mark.parametrize("suffix", ["", ".gz"])
@pytest.mark.parametrize("shape", IDX_SHAPES)
@pytest.mark.parametrize("dtype", IDX_DTYPES)
def test_idx_round_trip(tmp_path, dtype, shape, suffix):
    rng = np.random.default_rng(0)
    array = random_array(rng, dtype, shape)
    path = tmp_path / f"array-idx{len(shape)}{suffix}"

    write_idx(path, array)
    loaded = read_idx(path)

    assert loaded.dtype == np.dtype(dtype)
    assert loaded.dtype.isnative
    assert loaded.shape == shape
    assert np.array_equal(loaded, array)
    assert loaded.flags.writeable


def test_idx_read_hand_built_big_endian(tmp_path):
    values = [1, -2, 258, -32768, 32767, 0]
    content = bytes([0, 0, 0x0B, 2]) + struct.pack(">II", 2, 3) + struct.pack(">6h", *values)
    path = tmp_path / "int16-idx2"
    path.write_bytes(content)

    loaded = read_idx(path)

    assert loaded.dtype == np.int16
    assert loaded.shape == (2, 3)
    assert loaded.ravel().tolist() == values


def test_idx_write_matches_hand_built_bytes(tmp_path):
    array = np.array([[1.5, -2.0]], dtype=np.float64)
    path = tmp_path / "float64-idx2"

    write_idx(path, array)

    expected = bytes([0, 0, 0x0E, 2]) + struct.pack(">II", 1, 2) + struct.pack(">2d", 1.5, -2.0)
    assert path.read_bytes() == expected


def test_idx_write_accepts_big_endian_input(tmp_path):
    array = np.arange(6, dtype=">i4").reshape(2, 3)
    path = tmp_path / "big-endian-idx2"

    write_idx(path, array)

    assert np.array_equal(read_idx(path), array)


def test_idx_gzip_detected_without_suffix(tmp_path):
    path = tmp_path / "compressed-without-suffix"
    content = write_valid_idx(tmp_path / "plain")
    path.write_bytes(gzip.compress(content))

    assert np.array_equal(read_idx(path), np.arange(12, dtype=np.uint8).reshape(3, 4))


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_idx_truncated_file(tmp_path, suffix):
    path = tmp_path / f"truncated{suffix}"
    content = write_valid_idx(tmp_path / "valid")[:-1]
    path.write_bytes(gzip.compress(content) if suffix else content)

    with pytest.raises(ValueError, match="truncated") as error:
        read_idx(path)

    message = str(error.value)
    assert str(path) in message
    assert "12" in message
    assert "11" in message


def test_idx_trailing_bytes(tmp_path):
    path = tmp_path / "too-long"
    path.write_bytes(write_valid_idx(tmp_path / "valid") + b"\x00")

    with pytest.raises(ValueError, match="longer than its header") as error:
        read_idx(path)

    message = str(error.value)
    assert str(path) in message
    assert "12" in message
    assert "13" in message


def test_idx_truncated_header(tmp_path):
    path = tmp_path / "short-header"
    path.write_bytes(bytes([0, 0, 0x08, 3]) + struct.pack(">I", 5))

    with pytest.raises(ValueError, match="header") as error:
        read_idx(path)

    assert str(path) in str(error.value)


def test_idx_bad_magic(tmp_path):
    path = tmp_path / "bad-magic"
    content = bytearray(write_valid_idx(tmp_path / "valid"))
    content[1] = 0x01
    path.write_bytes(bytes(content))

    with pytest.raises(ValueError, match="magic number") as error:
        read_idx(path)

    assert str(path) in str(error.value)


def test_idx_bad_type_code(tmp_path):
    path = tmp_path / "bad-type"
    content = bytearray(write_valid_idx(tmp_path / "valid"))
    content[2] = 0x0A
    path.write_bytes(bytes(content))

    with pytest.raises(ValueError, match="0x0A") as error:
        read_idx(path)

    assert str(path) in str(error.value)


def test_idx_zero_dimensions(tmp_path):
    path = tmp_path / "zero-dims"
    path.write_bytes(bytes([0, 0, 0x08, 0, 7]))

    with pytest.raises(ValueError, match="0 dimensions") as error:
        read_idx(path)

    assert str(path) in str(error.value)


def test_idx_corrupt_gzip(tmp_path):
    path = tmp_path / "corrupt.gz"
    compressed = bytearray(gzip.compress(write_valid_idx(tmp_path / "valid") * 50))
    middle = len(compressed) // 2
    compressed[middle : middle + 8] = b"\xff" * 8
    path.write_bytes(bytes(compressed))

    with pytest.raises(ValueError, match="gzip") as error:
        read_idx(path)

    assert str(path) in str(error.value)


def test_idx_truncated_gzip_stream(tmp_path):
    path = tmp_path / "cut.gz"
    compressed = gzip.compress(write_valid_idx(tmp_path / "valid"))
    path.write_bytes(compressed[:-10])

    with pytest.raises(ValueError, match="gzip") as error:
        read_idx(path)

    assert str(path) in str(error.value)


def test_idx_gz_suffix_without_gzip_data(tmp_path):
    path = tmp_path / "plain.gz"
    write_valid_idx(tmp_path / "valid")
    shutil.copy(tmp_path / "valid", path)

    with pytest.raises(ValueError, match="not gzip") as error:
        read_idx(path)

    assert str(path) in str(error.value)


def test_idx_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_idx(tmp_path / "absent")


def test_idx_write_rejects_bad_arrays(tmp_path):
    with pytest.raises(TypeError, match="int64"):
        write_idx(tmp_path / "a", np.zeros(3, dtype=np.int64))
    with pytest.raises(TypeError, match="bool"):
        write_idx(tmp_path / "b", np.zeros(3, dtype=bool))
    with pytest.raises(ValueError, match="dimensions"):
        write_idx(tmp_path / "c", np.array(3, dtype=np.uint8))
    with pytest.raises(TypeError, match="ndarray"):
        write_idx(tmp_path / "d", [1, 2, 3])


# --- MNIST-family loaders -----------------------------------------------------


def write_image_set(directory: Path, train_count=5, test_count=3, gz_files=(), seed=0):
    """Write the four standard IDX files; names in ``gz_files`` get a .gz suffix."""
    rng = np.random.default_rng(seed)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (train_count, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": rng.integers(0, 10, train_count, dtype=np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (test_count, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, test_count, dtype=np.uint8),
    }
    directory.mkdir(parents=True, exist_ok=True)
    for name, array in arrays.items():
        suffix = ".gz" if name in gz_files else ""
        write_idx(directory / f"{name}{suffix}", array)
    return arrays


def test_mnist_loader_mixed_gzip_and_raw(tmp_path):
    arrays = write_image_set(
        tmp_path, gz_files=("train-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
    )

    dataset = load_mnist(tmp_path)

    assert dataset.name == "mnist"
    assert dataset.num_classes == 10
    assert dataset.x_train.shape == (5, 1, 28, 28)
    assert dataset.x_test.shape == (3, 1, 28, 28)
    assert dataset.x_train.dtype == np.float32
    assert dataset.y_train.dtype == np.int64
    expected_train = arrays["train-images-idx3-ubyte"].astype(np.float64)[:, None] / 255.0
    np.testing.assert_allclose(dataset.x_train, expected_train, rtol=0, atol=1e-7)
    expected_test = arrays["t10k-images-idx3-ubyte"].astype(np.float64)[:, None] / 255.0
    np.testing.assert_allclose(dataset.x_test, expected_test, rtol=0, atol=1e-7)
    assert dataset.y_train.tolist() == arrays["train-labels-idx1-ubyte"].tolist()
    assert dataset.y_test.tolist() == arrays["t10k-labels-idx1-ubyte"].tolist()


def test_image_loaders_class_names(tmp_path):
    write_image_set(tmp_path)

    fashion = load_fashion_mnist(tmp_path)
    kmnist = load_kmnist(tmp_path)
    mnist = get_dataset("MNIST", data_dir=tmp_path)

    assert fashion.class_names == FASHION_MNIST_CLASS_NAMES
    assert fashion.class_names[9] == "Ankle boot"
    assert kmnist.class_names == KMNIST_CLASS_NAMES
    assert mnist.class_names == tuple("0123456789")
    assert np.array_equal(fashion.x_train, mnist.x_train)


def test_image_loader_pixel_range(tmp_path):
    arrays = write_image_set(tmp_path)
    arrays["train-images-idx3-ubyte"][0, 0, :2] = [0, 255]
    write_idx(tmp_path / "train-images-idx3-ubyte", arrays["train-images-idx3-ubyte"])

    dataset = load_mnist(tmp_path)

    assert dataset.x_train[0, 0, 0, 0] == 0.0
    assert dataset.x_train[0, 0, 0, 1] == 1.0
    assert dataset.x_train.min() >= 0.0
    assert dataset.x_train.max() <= 1.0


def test_image_loader_missing_directory(tmp_path):
    missing = tmp_path / "no-such-dir"

    with pytest.raises(FileNotFoundError) as mnist_error:
        load_mnist(missing)
    with pytest.raises(FileNotFoundError) as fashion_error:
        load_fashion_mnist(missing)

    mnist_message = str(mnist_error.value)
    assert str(missing) in mnist_message
    assert "train-images-idx3-ubyte" in mnist_message
    assert "t10k-labels-idx1-ubyte" in mnist_message
    assert "--data-dir" in mnist_message
    fashion_message = str(fashion_error.value)
    assert "apt-get install dataset-fashion-mnist" in fashion_message
    assert str(FASHION_MNIST_SYSTEM_DIR) in fashion_message
    assert "train-labels-idx1-ubyte" in fashion_message


def test_image_loader_without_data_dir():
    with pytest.raises(FileNotFoundError, match="data_dir") as error:
        get_dataset("mnist")

    assert "train-images-idx3-ubyte" in str(error.value)


def test_image_loader_missing_one_file(tmp_path):
    write_image_set(tmp_path)
    (tmp_path / "t10k-images-idx3-ubyte").unlink()

    with pytest.raises(FileNotFoundError, match="t10k-images-idx3-ubyte") as error:
        load_kmnist(tmp_path)

    missing_list = str(error.value).split(": ", 1)[1].split(" (raw or .gz)")[0]
    assert missing_list == "t10k-images-idx3-ubyte"


@pytest.mark.parametrize("loader", [load_mnist, load_fashion_mnist])
def test_image_loader_empty_directory_names_each_file_once(tmp_path, loader):
    with pytest.raises(FileNotFoundError) as error:
        loader(tmp_path)

    message = str(error.value)
    assert str(tmp_path) in message
    for base_name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        assert message.count(base_name) == 1, message


def test_image_loader_count_mismatch(tmp_path):
    write_image_set(tmp_path)
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros(4, dtype=np.uint8))

    with pytest.raises(ValueError, match="5 images but .* 4 labels"):
        load_mnist(tmp_path)


def test_image_loader_label_out_of_range(tmp_path):
    write_image_set(tmp_path)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.array([0, 10, 3], dtype=np.uint8))

    with pytest.raises(ValueError, match="label 10"):
        load_mnist(tmp_path)


def test_image_loader_wrong_image_size(tmp_path):
    write_image_set(tmp_path)
    write_idx(tmp_path / "train-images-idx3-ubyte", np.zeros((5, 27, 28), dtype=np.uint8))

    with pytest.raises(ValueError, match=r"\(N, 28, 28\)"):
        load_mnist(tmp_path)


def test_image_loader_wrong_label_dtype(tmp_path):
    write_image_set(tmp_path)
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros(5, dtype=np.int32))

    with pytest.raises(ValueError, match="uint8"):
        load_mnist(tmp_path)


@pytest.mark.skipif(
    not (FASHION_MNIST_SYSTEM_DIR / "train-images-idx3-ubyte.gz").is_file(),
    reason="Fashion-MNIST not installed in /usr/share/datasets/fashion-mnist "
    "(apt-get install dataset-fashion-mnist)",
)
def test_real_fashion_mnist():
    dataset = load_fashion_mnist()

    assert dataset.x_train.shape == (60000, 1, 28, 28)
    assert dataset.x_test.shape == (10000, 1, 28, 28)
    assert dataset.y_train.shape == (60000,)
    assert dataset.y_test.shape == (10000,)
    assert dataset.x_train.dtype == np.float32
    # Both splits are balanced: 6000 training and 1000 test images per class.
    assert np.bincount(dataset.y_train, minlength=10).tolist() == [6000] * 10
    assert np.bincount(dataset.y_test, minlength=10).tolist() == [1000] * 10

    # Fixed-offset parse of the MNIST layout: 8 header bytes for labels, 16 for images.
    with gzip.open(FASHION_MNIST_SYSTEM_DIR / "t10k-labels-idx1-ubyte.gz") as file:
        test_labels = np.frombuffer(file.read(), dtype=np.uint8, offset=8)
    with gzip.open(FASHION_MNIST_SYSTEM_DIR / "t10k-images-idx3-ubyte.gz") as file:
        test_images = np.frombuffer(file.read(), dtype=np.uint8, offset=16).reshape(-1, 28, 28)
    assert np.array_equal(dataset.y_test, test_labels)
    assert np.array_equal(np.rint(dataset.x_test[:, 0] * 255).astype(np.uint8), test_images)

    # Commonly quoted Fashion-MNIST training pixel statistics: mean 0.2860, std 0.3530.
    _, standardizer = normalize(dataset)
    assert abs(standardizer.mean[0] - 0.2860) < 5e-4
    assert abs(standardizer.std[0] - 0.3530) < 5e-4


# --- MNIST-1D -----------------------------------------------------------------


@pytest.fixture(scope="module")
def mnist1d_cache(tmp_path_factory):
    """Build MNIST-1D once into a module-wide cache directory."""
    cache_dir = tmp_path_factory.mktemp("mnist1d-cache")
    dataset = load_mnist1d(cache_dir=cache_dir)
    return cache_dir, dataset


def cache_file(cache_dir: Path) -> Path:
    files = list(cache_dir.glob("mnist1d-*.npz"))
    assert len(files) == 1, f"expected one cache file in {cache_dir}, found {files}"
    return files[0]


def test_mnist1d_shapes_and_labels(mnist1d_cache):
    _, dataset = mnist1d_cache

    assert dataset.name == "mnist1d"
    assert dataset.x_train.shape == (4000, 1, 40)
    assert dataset.x_test.shape == (1000, 1, 40)
    assert dataset.y_train.shape == (4000,)
    assert dataset.y_test.shape == (1000,)
    assert dataset.x_train.dtype == np.float32
    assert dataset.y_train.dtype == np.int64
    assert dataset.y_test.dtype == np.int64
    assert dataset.num_classes == 10
    assert set(np.unique(dataset.y_train).tolist()) == set(range(10))
    assert dataset.y_test.min() >= 0
    assert dataset.y_test.max() <= 9
    assert dataset.input_shape == (1, 40)


def test_mnist1d_matches_generator(mnist1d_cache):
    import mnist1d.data

    _, dataset = mnist1d_cache
    reference = mnist1d.data.make_dataset(mnist1d.data.get_dataset_args())

    assert np.array_equal(dataset.x_train[:, 0], reference["x"].astype(np.float32))
    assert np.array_equal(dataset.x_test[:, 0], reference["x_test"].astype(np.float32))
    assert np.array_equal(dataset.y_train, reference["y"])
    assert np.array_equal(dataset.y_test, reference["y_test"])


def test_mnist1d_cache_round_trip(mnist1d_cache, monkeypatch):
    cache_dir, built = mnist1d_cache

    def fail_generation():
        raise AssertionError("the generator ran although a valid cache exists")

    monkeypatch.setattr(mnist1d_loader, "_generate_arrays", fail_generation)
    loaded = load_mnist1d(cache_dir=cache_dir)

    for field in ("x_train", "y_train", "x_test", "y_test"):
        built_array, loaded_array = getattr(built, field), getattr(loaded, field)
        assert loaded_array.dtype == built_array.dtype
        assert loaded_array.tobytes() == built_array.tobytes()
    assert not list(cache_dir.glob("*.tmp"))


def test_mnist1d_build_keeps_caller_rng(tmp_path, mnist1d_cache):
    _, first_build = mnist1d_cache
    np.random.seed(1234)
    random.seed(5678)
    numpy_before = np.random.get_state()
    python_before = random.getstate()

    second_build = load_mnist1d(cache_dir=tmp_path)

    numpy_after = np.random.get_state()
    assert numpy_after[0] == numpy_before[0]
    assert np.array_equal(numpy_after[1], numpy_before[1])
    assert numpy_after[2:] == numpy_before[2:]
    assert random.getstate() == python_before
    # Two independent builds give bit-identical data.
    assert second_build.x_train.tobytes() == first_build.x_train.tobytes()
    assert second_build.x_test.tobytes() == first_build.x_test.tobytes()
    assert np.array_equal(second_build.y_train, first_build.y_train)
    assert np.array_equal(second_build.y_test, first_build.y_test)


def replace_generator_with_copy(monkeypatch, built: Dataset) -> list[int]:
    """Make the loader's generator return ``built``'s arrays and count its calls."""
    calls = []

    def generate_copy():
        calls.append(1)
        return {
            "x_train": built.x_train.copy(), "y_train": built.y_train.copy(),
            "x_test": built.x_test.copy(), "y_test": built.y_test.copy(),
        }

    monkeypatch.setattr(mnist1d_loader, "_generate_arrays", generate_copy)
    return calls


@pytest.mark.parametrize("corruption", ["truncated", "garbage", "wrong_shape", "pickled"])
def test_mnist1d_corrupt_cache_rebuilt(tmp_path, mnist1d_cache, corruption, caplog, monkeypatch):
    cache_dir, built = mnist1d_cache
    generator_calls = replace_generator_with_copy(monkeypatch, built)
    path = tmp_path / cache_file(cache_dir).name
    if corruption == "truncated":
        path.write_bytes(cache_file(cache_dir).read_bytes()[:1000])
    elif corruption == "garbage":
        path.write_bytes(b"not an npz file")
    elif corruption == "wrong_shape":
        np.savez(path, x_train=built.x_train[:10], y_train=built.y_train[:10],
                 x_test=built.x_test, y_test=built.y_test)
    else:
        np.savez(path, x_train=np.array([{"a": 1}], dtype=object), y_train=built.y_train,
                 x_test=built.x_test, y_test=built.y_test)

    with caplog.at_level(logging.WARNING, logger=mnist1d_loader.__name__):
        rebuilt = load_mnist1d(cache_dir=tmp_path)

    assert "rebuilding" in caplog.text
    assert len(generator_calls) == 1
    assert rebuilt.x_train.tobytes() == built.x_train.tobytes()
    with np.load(path, allow_pickle=False) as npz_file:
        assert npz_file["x_train"].shape == (4000, 1, 40)
        assert npz_file["y_test"].dtype == np.int64


def test_mnist1d_unwritable_cache_dir(tmp_path, mnist1d_cache, monkeypatch, caplog):
    _, built = mnist1d_cache
    blocking_file = tmp_path / "not-a-directory"
    blocking_file.write_text("a file where the cache directory should be")
    replace_generator_with_copy(monkeypatch, built)

    with caplog.at_level(logging.WARNING, logger=mnist1d_loader.__name__):
        dataset = load_mnist1d(cache_dir=blocking_file / "cache")

    assert "Could not write" in caplog.text
    assert dataset.x_train.shape == (4000, 1, 40)


def test_default_cache_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert default_cache_dir() == tmp_path / "convgrad"

    monkeypatch.setenv("XDG_CACHE_HOME", "relative/path")
    assert default_cache_dir() == Path.home() / ".cache" / "convgrad"

    monkeypatch.delenv("XDG_CACHE_HOME")
    assert default_cache_dir() == Path.home() / ".cache" / "convgrad"


def test_get_dataset_mnist1d(mnist1d_cache):
    cache_dir, built = mnist1d_cache

    dataset = get_dataset("mnist1d", cache_dir=cache_dir)

    assert dataset.x_train.tobytes() == built.x_train.tobytes()


def test_get_dataset_unknown_name():
    with pytest.raises(ValueError, match="cifar10") as error:
        get_dataset("cifar10")

    for name in DATASET_NAMES:
        assert name in str(error.value)


# --- Dataset container --------------------------------------------------------


def make_dataset(x_train, x_test, num_classes=3) -> Dataset:
    return Dataset(
        name="toy",
        x_train=x_train,
        y_train=np.arange(len(x_train), dtype=np.int64) % num_classes,
        x_test=x_test,
        y_test=np.arange(len(x_test), dtype=np.int64) % num_classes,
        num_classes=num_classes,
    )


def test_dataset_rejects_invalid_fields():
    x = np.zeros((4, 1, 5), dtype=np.float32)

    with pytest.raises(TypeError, match="x_train must be a float32"):
        make_dataset(x.astype(np.float64), x)
    with pytest.raises(ValueError, match="x_train samples have shape"):
        make_dataset(x, np.zeros((4, 1, 6), dtype=np.float32))
    with pytest.raises(ValueError, match=r"y_train must lie in \[0, 2\)"):
        Dataset(name="toy", x_train=x, y_train=np.array([0, 1, 2, 0], dtype=np.int64), x_test=x,
                y_test=np.zeros(4, dtype=np.int64), num_classes=2)
    with pytest.raises(TypeError, match="y_test must be a 1-D int64"):
        Dataset(name="toy", x_train=x, y_train=np.zeros(4, dtype=np.int64), x_test=x,
                y_test=np.zeros(4, dtype=np.int32), num_classes=2)
    with pytest.raises(ValueError, match="class_names has 2 entries"):
        Dataset(name="toy", x_train=x, y_train=np.zeros(4, dtype=np.int64), x_test=x,
                y_test=np.zeros(4, dtype=np.int64), num_classes=3, class_names=("a", "b"))


# --- Normalization ------------------------------------------------------------


def torch_channel_stats(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    tensor = torch.from_numpy(x.astype(np.float64))
    dims = (0,) + tuple(range(2, x.ndim))
    mean = tensor.mean(dim=dims)
    std = tensor.std(dim=dims, unbiased=False)
    return mean.numpy(), std.numpy()


def test_normalize_uses_train_statistics_only():
    rng = np.random.default_rng(1)
    scale = np.array([2.0, 0.5]).reshape(1, 2, 1, 1)
    offset = np.array([3.0, -1.0]).reshape(1, 2, 1, 1)
    x_train = (rng.normal(size=(40, 2, 4, 4)) * scale + offset).astype(np.float32)
    x_test = (rng.normal(size=(10, 2, 4, 4)) * 7.0 - 5.0).astype(np.float32)
    dataset = make_dataset(x_train, x_test)

    normalized, standardizer = normalize(dataset)

    train_mean, train_std = torch_channel_stats(x_train)
    np.testing.assert_allclose(standardizer.mean, train_mean, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(standardizer.std, train_std, rtol=1e-12)
    expected_test = (x_test - train_mean.reshape(1, 2, 1, 1)) / train_std.reshape(1, 2, 1, 1)
    np.testing.assert_allclose(normalized.x_test, expected_test, rtol=1e-5, atol=1e-5)
    assert normalized.x_train.dtype == np.float32
    assert normalized.x_test.dtype == np.float32
    normalized_mean, normalized_std = torch_channel_stats(normalized.x_train)
    np.testing.assert_allclose(normalized_mean, 0.0, atol=1e-6)
    np.testing.assert_allclose(normalized_std, 1.0, atol=1e-6)
    # The test split keeps its offset, so test statistics were not used.
    assert abs(normalized.x_test.mean()) > 1.0
    assert np.array_equal(dataset.x_test, x_test)


def test_standardizer_chunked_statistics(monkeypatch):
    monkeypatch.setattr(preprocessing, "_CHUNK_SIZE", 7)
    rng = np.random.default_rng(2)
    x = (rng.normal(size=(50, 3, 6)) * 4.0 + 100.0).astype(np.float32)

    standardizer = Standardizer.fit(x)

    mean, std = torch_channel_stats(x)
    np.testing.assert_allclose(standardizer.mean, mean, rtol=1e-12)
    np.testing.assert_allclose(standardizer.std, std, rtol=1e-10)


def test_standardizer_constant_channel():
    x = np.ones((5, 2, 3), dtype=np.float32)
    x[:, 1] = np.arange(15, dtype=np.float32).reshape(5, 3)

    standardizer = Standardizer.fit(x)
    transformed = standardizer.transform(x)

    assert standardizer.std[0] == 1.0
    assert np.all(transformed[:, 0] == 0.0)
    assert np.all(np.isfinite(transformed))


def test_standardizer_state_dict_round_trip():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(8, 2, 5)).astype(np.float32)
    standardizer = Standardizer.fit(x)

    restored = Standardizer.from_state_dict(standardizer.state_dict())

    assert np.array_equal(restored.mean, standardizer.mean)
    assert np.array_equal(restored.std, standardizer.std)
    np.testing.assert_allclose(restored.inverse_transform(restored.transform(x)), x, rtol=1e-5, atol=1e-5)


def test_standardizer_rejects_wrong_channels():
    rng = np.random.default_rng(4)
    standardizer = Standardizer.fit(rng.normal(size=(3, 2, 4)).astype(np.float32))

    with pytest.raises(ValueError, match="3 channels"):
        standardizer.transform(np.zeros((1, 3, 4), dtype=np.float32))
    with pytest.raises(ValueError, match="positive"):
        Standardizer(mean=np.zeros(2), std=np.array([1.0, 0.0]))


# --- Batching -----------------------------------------------------------------


def batch_labels(batches) -> list[np.ndarray]:
    return [y_batch for _, y_batch in batches]


@pytest.mark.parametrize("shuffle", [True, False])
def test_minibatches_cover_every_index_once(shuffle):
    x = np.arange(23, dtype=np.float32).reshape(23, 1, 1)
    y = np.arange(23)

    batches = list(iterate_minibatches(x, y, 5, shuffle=shuffle, rng=0))

    assert [len(y_batch) for _, y_batch in batches] == [5, 5, 5, 5, 3]
    seen = np.concatenate([y_batch for _, y_batch in batches])
    assert sorted(seen.tolist()) == list(range(23))
    for x_batch, y_batch in batches:
        assert np.array_equal(x_batch[:, 0, 0], y_batch.astype(np.float32))
    if not shuffle:
        assert seen.tolist() == list(range(23))


def test_minibatches_same_seed_same_order():
    x = np.zeros((100, 2), dtype=np.float32)
    y = np.arange(100)

    first = np.concatenate(batch_labels(iterate_minibatches(x, y, 16, rng=42)))
    second = np.concatenate(batch_labels(iterate_minibatches(x, y, 16, rng=42)))
    from_generator = np.concatenate(
        batch_labels(iterate_minibatches(x, y, 16, rng=np.random.default_rng(42)))
    )
    other_seed = np.concatenate(batch_labels(iterate_minibatches(x, y, 16, rng=43)))

    assert np.array_equal(first, second)
    assert np.array_equal(first, from_generator)
    assert np.array_equal(first, np.random.default_rng(42).permutation(100))
    assert not np.array_equal(first, other_seed)


def test_minibatches_generator_advances():
    x = np.zeros((50, 1), dtype=np.float32)
    y = np.arange(50)
    rng = np.random.default_rng(7)

    first = np.concatenate(batch_labels(iterate_minibatches(x, y, 10, rng=rng)))
    second = np.concatenate(batch_labels(iterate_minibatches(x, y, 10, rng=rng)))

    assert not np.array_equal(first, second)


def test_minibatches_drop_last():
    x = np.zeros((23, 1), dtype=np.float32)
    y = np.arange(23)

    batches = list(iterate_minibatches(x, y, 5, shuffle=True, rng=1, drop_last=True))

    assert [len(y_batch) for _, y_batch in batches] == [5, 5, 5, 5]
    seen = np.concatenate(batch_labels(batches))
    assert len(set(seen.tolist())) == 20


def test_minibatches_dtypes_and_views():
    x64 = np.arange(12, dtype=np.float64).reshape(6, 2)
    x32 = x64.astype(np.float32)
    y32 = np.arange(6, dtype=np.int32)

    converted = next(iterate_minibatches(x64, y32, 4, shuffle=False))
    viewed = next(iterate_minibatches(x32, y32.astype(np.int64), 4, shuffle=False))
    shuffled = next(iterate_minibatches(x32, y32, 4, shuffle=True, rng=0))

    assert converted[0].dtype == np.float32
    assert converted[1].dtype == np.int64
    assert np.shares_memory(viewed[0], x32)
    assert not np.shares_memory(shuffled[0], x32)


def test_minibatches_reject_invalid_arguments():
    x = np.zeros((4, 1), dtype=np.float32)
    y = np.zeros(4, dtype=np.int64)

    with pytest.raises(ValueError, match="batch_size"):
        iterate_minibatches(x, y, 0)
    with pytest.raises(ValueError, match="batch_size"):
        iterate_minibatches(x, y, True)
    with pytest.raises(ValueError, match="4 samples but y has 3"):
        iterate_minibatches(x, y[:3], 2)
    with pytest.raises(TypeError, match="rng"):
        iterate_minibatches(x, y, 2, rng=-1)
    with pytest.raises(TypeError, match="rng"):
        iterate_minibatches(x, y, 2, rng="seed")


def test_data_loader_epochs_reproducible():
    x = np.zeros((30, 1), dtype=np.float32)
    y = np.arange(30)
    loader = DataLoader(x, y, batch_size=8, seed=11)
    resumed = DataLoader(x, y, batch_size=8, seed=11)

    epoch0 = np.concatenate(batch_labels(iter(loader)))
    epoch1 = np.concatenate(batch_labels(iter(loader)))
    resumed_epoch1 = np.concatenate(batch_labels(resumed.batches(1)))

    assert len(loader) == 4
    assert loader.next_epoch == 2
    assert np.array_equal(epoch1, resumed_epoch1)
    assert not np.array_equal(epoch0, epoch1)
    assert sorted(epoch1.tolist()) == list(range(30))
    assert len(DataLoader(x, y, batch_size=8, drop_last=True, seed=0)) == 3


def test_data_loader_random_seed_recorded():
    x = np.zeros((10, 1), dtype=np.float32)
    y = np.arange(10)
    loader = DataLoader(x, y, batch_size=3)

    replay = DataLoader(x, y, batch_size=3, seed=loader.seed)

    first = np.concatenate(batch_labels(loader.batches(0)))
    second = np.concatenate(batch_labels(replay.batches(0)))
    assert np.array_equal(first, second)
