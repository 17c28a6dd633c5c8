"""Atomic checkpoint files: named NumPy arrays plus JSON metadata in one ``.npz``.

The file is a standard NumPy ``.npz`` archive (an uncompressed zip of
``.npy`` files), readable with ``np.load(path, allow_pickle=False)``. The
metadata is JSON text stored as a uint8 array under the reserved key
``"__metadata__"``. Nothing in the file is pickled, so loading a checkpoint
never runs code from it.

``save_checkpoint`` writes a temporary file in the destination directory,
flushes it to disk and renames it over ``path``. A reader therefore sees
either the old complete file or the new complete file, never a partial one.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
import zlib

import numpy as np

METADATA_KEY = "__metadata__"


def _read_umask() -> int:
    # os.umask can only be read by setting it. Doing that once at import time
    # avoids changing it later while other threads may be creating files.
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK = _read_umask()


def _check_arrays(arrays) -> dict[str, np.ndarray]:
    if not isinstance(arrays, dict):
        raise TypeError(f"arrays must be a dict mapping names to arrays, got {type(arrays).__name__}")
    checked = {}
    for name, value in arrays.items():
        if not isinstance(name, str) or not name:
            raise TypeError(f"arrays keys must be non-empty strings, got {name!r}")
        if name == METADATA_KEY:
            raise ValueError(f"arrays must not use the key {METADATA_KEY!r}, which stores the metadata")
        if isinstance(value, np.ndarray):
            array = value
        elif isinstance(value, (np.generic, int, float, bool, complex)):
            array = np.asarray(value)
        else:
            raise TypeError(f"arrays[{name!r}] must be a numpy.ndarray or scalar, got {type(value).__name__}")
        if array.dtype.hasobject:
            raise TypeError(
                f"arrays[{name!r}] has dtype {array.dtype}, which needs pickling. "
                "Checkpoints store only numeric, boolean and string arrays"
            )
        checked[name] = array
    return checked


def _encode_metadata(metadata) -> np.ndarray:
    if not isinstance(metadata, dict):
        raise TypeError(f"metadata must be a dict, got {type(metadata).__name__}")
    for key in metadata:
        if not isinstance(key, str):
            raise TypeError(f"metadata keys must be strings so that they survive JSON, got {key!r}")
    try:
        text = json.dumps(metadata)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"metadata must be serializable as JSON: {exc}") from exc
    return np.frombuffer(text.encode("utf-8"), dtype=np.uint8)


def _write_npz(file, arrays: dict[str, np.ndarray]) -> None:
    """Write ``arrays`` as an uncompressed ``.npz`` archive to the open binary ``file``.

    This is what ``np.savez`` does, except that pickling is disabled and no
    array name can clash with a keyword argument of ``np.savez``.
    """
    with zipfile.ZipFile(file, mode="w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
        for name, array in arrays.items():
            with archive.open(name + ".npy", mode="w", force_zip64=True) as entry:
                np.lib.format.write_array(entry, array, allow_pickle=False)


def save_checkpoint(path, arrays: dict, metadata: dict) -> None:
    """Write ``arrays`` and ``metadata`` to ``path`` atomically.

    Parameters
    ----------
    path : str or os.PathLike
        Destination file, written exactly at this name (no ``.npz`` suffix is
        added). Its directory must exist. An existing file is replaced.
    arrays : dict of str to numpy.ndarray
        Arrays to store, bit for bit. NumPy and Python scalars are stored as
        0-d arrays. Object arrays are rejected.
    metadata : dict
        JSON-serializable values with string keys, such as the epoch or the
        command-line options. JSON has no tuples, so tuples load as lists.

    Raises
    ------
    TypeError
        If an array has an object dtype or the metadata is not JSON.
    FileNotFoundError
        If the directory of ``path`` does not exist.

    Notes
    -----
    The temporary file ``.<name>.<random>.tmp`` is created next to ``path``
    so that the final ``os.replace`` is a rename within one file system. It
    is removed if anything fails before the rename. The file gets the mode
    ``0o666`` minus the process umask, like a file from ``open``.
    """
    path = os.fspath(path)
    entries = _check_arrays(arrays)
    entries[METADATA_KEY] = _encode_metadata(metadata)

    directory = os.path.dirname(os.path.abspath(path))
    fd, temp_path = tempfile.mkstemp(dir=directory, prefix="." + os.path.basename(path) + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as file:
            _write_npz(file, entries)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temp_path, 0o666 & ~_UMASK)
        os.replace(temp_path, path)
    except BaseException:
        try:
            os.unlink(temp_path)
        except FileNotFoundError:
            pass
        raise

    _fsync_directory(directory)


def _fsync_directory(directory: str) -> None:
    """Flush the directory entry of the renamed file, where the OS supports it."""
    # NOTE: Windows cannot open a directory, so there the rename is atomic
    # but may not survive a power failure.
    if os.name != "posix":
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def load_checkpoint(path) -> tuple[dict[str, np.ndarray], dict]:
    """Read a file written by ``save_checkpoint``.

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    arrays : dict of str to numpy.ndarray
        The stored arrays, bit-identical to those saved, in saving order.
    metadata : dict
        The decoded JSON metadata.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    IsADirectoryError
        If ``path`` is a directory.
    ValueError
        If the file is not a ``.npz`` archive, is truncated or corrupt,
        contains a pickled object array, or lacks valid metadata.
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        raise IsADirectoryError(f"checkpoint {path} is a directory, not a checkpoint file")
    if not os.path.exists(path):
        raise FileNotFoundError(f"checkpoint file not found: {path}")

    # np.load treats any file that is neither a zip archive nor a .npy file as
    # a pickle and then suggests loading it unsafely. Checking the magic bytes
    # first gives an accurate message for such files, and nothing unpickles.
    with open(path, "rb") as file:
        magic = file.read(6)
    if magic == b"\x93NUMPY":
        raise ValueError(f"{path} contains a single .npy array, not a checkpoint (.npz archive)")
    if magic[:4] not in (b"PK\x03\x04", b"PK\x05\x06"):
        raise ValueError(f"{path} is not a convgrad checkpoint (not a valid .npz archive written by convgrad)")

    try:
        loaded = np.load(path, allow_pickle=False)
        with loaded:
            arrays = {name: loaded[name] for name in loaded.files}
    except (FileNotFoundError, PermissionError, IsADirectoryError):
        raise
    except (ValueError, EOFError, zipfile.BadZipFile, zlib.error, OSError) as exc:
        raise ValueError(f"{path} is not a valid convgrad checkpoint (a corrupt or truncated .npz archive, or one with pickled object arrays): {exc}") from exc

    if METADATA_KEY not in arrays:
        raise ValueError(f"{path} has no {METADATA_KEY!r} entry, so it was not written by save_checkpoint")
    encoded = arrays.pop(METADATA_KEY)
    if encoded.dtype != np.uint8 or encoded.ndim != 1:
        raise ValueError(
            f"{path}: entry {METADATA_KEY!r} must be a 1-D uint8 array of JSON text, "
            f"got dtype {encoded.dtype} and shape {encoded.shape}"
        )
    try:
        metadata = json.loads(encoded.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: entry {METADATA_KEY!r} is not valid UTF-8 JSON: {exc}") from exc
    if not isinstance(metadata, dict):
        raise ValueError(f"{path}: metadata must be a JSON object, got {type(metadata).__name__}")
    return arrays, metadata
