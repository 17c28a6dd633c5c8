"""Read and write IDX files, the array format of MNIST, Fashion-MNIST and KMNIST.

An IDX file is a 4-byte magic number, one 4-byte size per dimension and the
array data in C order, all big-endian::

    byte 0, 1   0x00 0x00
    byte 2      type code: 0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32,
                0x0D float32, 0x0E float64
    byte 3      number of dimensions d
    4 * d       dimension sizes, unsigned 32-bit big-endian
    rest        prod(sizes) * item size bytes of data

The distributed MNIST-family files are gzip-compressed. ``read_idx`` recognises
gzip by its two-byte signature (0x1F 0x8B), so a file is read correctly
whatever its name ends with.
"""

from __future__ import annotations

import gzip
import math
import os
import struct
import zlib
from pathlib import Path

import numpy as np

__all__ = ["read_idx", "write_idx", "IDX_TYPE_CODES"]

# Type code -> big-endian NumPy dtype.
IDX_TYPE_CODES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

_GZIP_SIGNATURE = b"\x1f\x8b"
_HEADER_PREFIX_SIZE = 4
_DIMENSION_SIZE = 4
_MAX_DIMENSION = 2**32 - 1


def _read_file_bytes(path: Path) -> bytes:
    """Return the file's bytes, decompressed when it starts with the gzip signature."""
    raw = path.read_bytes()
    if raw[:2] != _GZIP_SIGNATURE:
        if path.suffix == ".gz":
            raise ValueError(
                f"IDX file {str(path)!r} ends with .gz but is not gzip data "
                f"(first bytes {raw[:2].hex()}, expected 1f8b)"
            )
        return raw

    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as error:
        # gzip raises BadGzipFile (an OSError) for a bad header or CRC, EOFError
        # for a truncated stream and zlib.error for corrupt compressed blocks.
        raise ValueError(f"IDX file {str(path)!r} is not a valid gzip file: {error}") from error


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file, raw or gzip-compressed, into a NumPy array.

    Parameters
    ----------
    path : str or os.PathLike
        File to read. Gzip compression is detected from the file contents.

    Returns
    -------
    numpy.ndarray
        Writable array in native byte order, with the shape stored in the file
        and the dtype of its type code (uint8, int8, int16, int32, float32 or
        float64).

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the file is not valid gzip, the magic number is wrong, the type code
        is unknown, the header is cut short, or the data size differs from
        ``prod(dims) * itemsize``. The message names the file and, for a size
        mismatch, the expected and actual byte counts.
    """
    path = Path(path)
    data = _read_file_bytes(path)
    name = str(path)

    if len(data) < _HEADER_PREFIX_SIZE:
        raise ValueError(
            f"IDX file {name!r} is too short for the 4-byte magic number: {len(data)} bytes"
        )
    zero_bytes, type_code, ndim = data[:2], data[2], data[3]
    if zero_bytes != b"\x00\x00":
        raise ValueError(
            f"IDX file {name!r} has an invalid magic number {data[:4].hex()}: "
            "the first two bytes must be 00 00"
        )
    if type_code not in IDX_TYPE_CODES:
        known = ", ".join(f"0x{code:02X}" for code in IDX_TYPE_CODES)
        raise ValueError(
            f"IDX file {name!r} has an unknown type code 0x{type_code:02X}. Known codes: {known}"
        )
    if ndim == 0:
        raise ValueError(f"IDX file {name!r} declares 0 dimensions, but at least 1 is required")

    header_size = _HEADER_PREFIX_SIZE + _DIMENSION_SIZE * ndim
    if len(data) < header_size:
        raise ValueError(
            f"IDX file {name!r} is truncated inside its header: {ndim} dimensions need "
            f"{header_size} header bytes, the file has {len(data)} bytes"
        )
    shape = struct.unpack(f">{ndim}I", data[_HEADER_PREFIX_SIZE:header_size])

    dtype = IDX_TYPE_CODES[type_code]
    expected_bytes = math.prod(shape) * dtype.itemsize
    actual_bytes = len(data) - header_size
    if actual_bytes != expected_bytes:
        problem = "truncated" if actual_bytes < expected_bytes else "longer than its header declares"
        raise ValueError(
            f"IDX file {name!r} is {problem}: shape {shape} of {dtype.newbyteorder('=').name} "
            f"needs {expected_bytes} data bytes, the file has {actual_bytes}"
        )

    array = np.frombuffer(data, dtype=dtype, offset=header_size).reshape(shape)
    return array.astype(dtype.newbyteorder("="), copy=True)


def _type_code_for(dtype: np.dtype) -> int:
    for code, idx_dtype in IDX_TYPE_CODES.items():
        if dtype.kind == idx_dtype.kind and dtype.itemsize == idx_dtype.itemsize:
            return code
    supported = ", ".join(idx_dtype.newbyteorder("=").name for idx_dtype in IDX_TYPE_CODES.values())
    raise TypeError(f"write_idx: array dtype {dtype} has no IDX type code. Supported dtypes: {supported}")


def write_idx(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write an array as an IDX file, gzip-compressed when ``path`` ends with ``.gz``.

    Parameters
    ----------
    path : str or os.PathLike
        Destination. An existing file is overwritten. With a ``.gz`` suffix the
        output is gzip with a zero timestamp, so equal arrays give equal files.
    array : numpy.ndarray
        Array with at least 1 dimension, every size below 2**32, and dtype
        uint8, int8, int16, int32, float32 or float64 (any byte order).

    Raises
    ------
    TypeError
        If ``array`` is not an ndarray or its dtype has no IDX type code.
    ValueError
        If ``array`` is 0-dimensional, has more than 255 dimensions or a
        dimension of 2**32 or more.
    """
    if not isinstance(array, np.ndarray):
        raise TypeError(f"write_idx: array must be a numpy.ndarray, got {type(array).__name__}")
    type_code = _type_code_for(array.dtype)
    if array.ndim == 0 or array.ndim > 255:
        raise ValueError(f"write_idx: array must have 1 to 255 dimensions, got shape {array.shape}")
    if any(size > _MAX_DIMENSION for size in array.shape):
        raise ValueError(
            f"write_idx: every dimension must be below 2**32 to fit the header, got shape {array.shape}"
        )

    header = bytes([0, 0, type_code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    payload = np.ascontiguousarray(array, dtype=IDX_TYPE_CODES[type_code]).tobytes()

    path = Path(path)
    if path.suffix == ".gz":
        with open(path, "wb") as raw_file, gzip.GzipFile(fileobj=raw_file, mode="wb", mtime=0) as file:
            file.write(header)
            file.write(payload)
    else:
        with open(path, "wb") as file:
            file.write(header)
            file.write(payload)
