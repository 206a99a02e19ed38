"""Reading and writing IDX files, the format of MNIST, Fashion-MNIST and KMNIST.

An IDX file is a header followed by a payload, all big-endian:

===========  =====================================================================
bytes        meaning
===========  =====================================================================
0, 1         zero
2            type code: 0x08 ubyte, 0x09 signed byte, 0x0B int16, 0x0C int32,
             0x0D float32, 0x0E float64
3            number of dimensions ``ndim`` (at least 1)
4 ...        ``ndim`` sizes, each an unsigned 32-bit big-endian integer
then         ``prod(sizes)`` items of the type, big-endian, in C (row-major) order
===========  =====================================================================

Files may be gzip-compressed; the reader recognises gzip by its first two bytes, whatever the
file's name.  Memory is bounded by the header, not by what the file expands to: the header is read
first, the payload size it promises is checked against :data:`MAX_IDX_BYTES` (and, for a raw file,
against the file's size), and gzip data is decompressed as a stream that stops one byte past that
size, so a small gzip "bomb" is refused without being expanded.  The reader checks every field and
the exact payload length, so a truncated download, a file with trailing bytes or one whose type
code does not match its length is reported with the file name and what is wrong instead of being silently reshaped.
"""

from __future__ import annotations

import gzip
import math
import os
import zlib
from pathlib import Path
from typing import BinaryIO

import numpy as np

# type code -> big-endian dtype stored in the file
IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
IDX_TYPE_NAMES: dict[int, str] = {
    0x08: "ubyte",
    0x09: "byte",
    0x0B: "short",
    0x0C: "int",
    0x0D: "float",
    0x0E: "double",
}
_GZIP_MAGIC = b"\x1f\x8b"
MAX_IDX_BYTES = 1 << 31  # 2 GiB of payload; MNIST's largest file holds 47 MB


def _type_list() -> str:
    return ", ".join(f"0x{code:02X} ({IDX_TYPE_NAMES[code]})" for code in IDX_DTYPES)


def _read_exact(stream: BinaryIO, n: int) -> bytes:
    """Up to ``n`` bytes of ``stream`` (fewer only at its end)."""
    parts, left = [], n
    while left > 0:
        chunk = stream.read(min(left, 1 << 24))
        if not chunk:
            break
        parts.append(chunk)
        left -= len(chunk)
    return b"".join(parts)


def _payload_size(head: bytes, name: str, max_bytes: int) -> int:
    """The header's length plus the payload size it promises (checked against ``max_bytes``)."""
    if len(head) >= 4 and head[0] == 0 and head[1] == 0 and head[2] in IDX_DTYPES and head[3] > 0 \
            and len(head) >= 4 + 4 * head[3]:
        shape = np.frombuffer(head, dtype=">u4", count=head[3], offset=4)
        payload = math.prod(int(d) for d in shape) * IDX_DTYPES[head[2]].itemsize
        if payload > max_bytes:
            dims = " x ".join(str(int(d)) for d in shape)
            raise ValueError(f"read_idx: {name}: header promises {payload:,} bytes ({dims}), more than the "
                             f"limit of {max_bytes:,}")
        return 4 + 4 * head[3] + payload
    return len(head)  # not a valid header: parse_idx says what is wrong with it


def _read_bytes(path: Path, max_bytes: int = MAX_IDX_BYTES) -> bytes:
    """The file's content, decompressed when it is gzip, never more than the header promises plus one byte."""
    with open(path, "rb") as raw:
        magic = raw.read(2)
        raw.seek(0)
        stream: BinaryIO = raw
        if magic != _GZIP_MAGIC:  # a raw file: its size is known, so its length errors are exact
            size = os.fstat(raw.fileno()).st_size
            if size > max_bytes + 1024:
                raise ValueError(f"read_idx: {path}: file has {size:,} bytes, more than the limit of {max_bytes:,}")
            return raw.read()
        stream = gzip.GzipFile(fileobj=raw, mode="rb")  # type: ignore[assignment]
        try:
            head = _read_exact(stream, 4)
            if len(head) == 4:
                head += _read_exact(stream, 4 * head[3])
            total = _payload_size(head, str(path), max_bytes)
            data = head + _read_exact(stream, total - len(head) + 1)  # one extra byte reveals trailing data
        except (EOFError, OSError, zlib.error) as exc:
            raise ValueError(f"read_idx: {path}: damaged gzip data ({exc})") from None
    if len(data) > total > len(head):
        raise ValueError(f"read_idx: {path}: payload is longer than the {total - len(head):,} bytes the header "
                         "promises: trailing bytes (decompression stopped there)")
    return data


def parse_idx(data: bytes, name: str = "<bytes>") -> np.ndarray:
    """Decode the bytes of an (uncompressed) IDX file into an array.

    Parameters
    ----------
    data : bytes
        The whole file content.
    name : str, optional
        The file's name, used in error messages.

    Returns
    -------
    numpy.ndarray
        In native byte order, with the dtype of the type code and the shape of the header.

    Raises
    ------
    ValueError
        If the header is short, its first two bytes are not zero, the type code is unknown, the
        number of dimensions is zero, or the payload length is not what the header promises.

    Examples
    --------
    >>> parse_idx(bytes([0, 0, 0x08, 1, 0, 0, 0, 3, 7, 8, 9]))
    array([7, 8, 9], dtype=uint8)
    """
    if len(data) < 4:
        raise ValueError(f"read_idx: {name}: file has {len(data)} bytes, an IDX header needs at least 4")
    if data[0] != 0 or data[1] != 0:
        raise ValueError(
            f"read_idx: {name}: magic number must start with two zero bytes, "
            f"got 0x{data[0]:02X} 0x{data[1]:02X} (not an IDX file)"
        )
    code, ndim = data[2], data[3]
    if code not in IDX_DTYPES:
        raise ValueError(f"read_idx: {name}: unknown type code 0x{code:02X}; expected one of {_type_list()}")
    if ndim == 0:
        raise ValueError(f"read_idx: {name}: header gives 0 dimensions; expected at least 1")
    header_len = 4 + 4 * ndim
    if len(data) < header_len:
        raise ValueError(
            f"read_idx: {name}: header promises {ndim} dimensions ({header_len} header bytes), "
            f"file has only {len(data)} bytes"
        )
    shape = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    dtype = IDX_DTYPES[code]
    expected = math.prod(shape) * dtype.itemsize
    got = len(data) - header_len
    if got != expected:
        dims = " x ".join(str(d) for d in shape)
        what = "truncated" if got < expected else "trailing bytes"
        raise ValueError(
            f"read_idx: {name}: payload has {got} bytes, header promises {expected} "
            f"({dims} x {dtype.itemsize}, type 0x{code:02X} {IDX_TYPE_NAMES[code]}): {what}"
        )
    array = np.frombuffer(data, dtype=dtype, offset=header_len).reshape(shape)
    return array.astype(dtype.newbyteorder("="))


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an IDX file, raw or gzip-compressed, validating its header and length.

    Parameters
    ----------
    path : str or os.PathLike
        The file.  Gzip compression is recognised from the content, not the name.

    Returns
    -------
    numpy.ndarray
        A new, writable array in native byte order: uint8, int8, int16, int32, float32 or float64
        according to the type code, with the shape the header gives.

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ValueError
        If the gzip stream is damaged, the header or payload length is wrong (see
        :func:`parse_idx`; trailing data is reported as soon as one byte of it is read), or the
        header promises more than :data:`MAX_IDX_BYTES`.  The message names the file and what is wrong, e.g.
        ``read_idx: train-images-idx3-ubyte.gz: payload has 1000 bytes, header promises 7840
        (10 x 28 x 28 x 1, type 0x08 ubyte): truncated``.

    See Also
    --------
    write_idx : the inverse.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     path = pathlib.Path(tmp) / "labels-idx1-ubyte.gz"
    ...     _ = write_idx(path, np.array([3, 1, 4], dtype=np.uint8))
    ...     read_idx(path)
    array([3, 1, 4], dtype=uint8)
    """
    path = Path(path)
    return parse_idx(_read_bytes(path), str(path))


def write_idx(path: str | os.PathLike[str], array: np.ndarray, compress: bool | None = None) -> Path:
    """Write an array as an IDX file.

    Parameters
    ----------
    path : str or os.PathLike
        Destination.  Parent folders must exist.
    array : numpy.ndarray
        At least 1-D, with dtype uint8, int8, int16, int32, float32 or float64 (any byte order)
        and every dimension below 2**32.
    compress : bool or None, optional
        Gzip the file.  By default, when ``path`` ends with ``.gz``.

    Returns
    -------
    pathlib.Path
        The path written.

    Raises
    ------
    TypeError
        If ``array`` is not a NumPy array or its dtype has no IDX type code.
    ValueError
        If ``array`` is 0-D, has more than 255 dimensions or a dimension of 2**32 or more.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     path = write_idx(pathlib.Path(tmp) / "x.idx", np.arange(6, dtype=np.int16).reshape(2, 3))
    ...     path.read_bytes()[:12].hex(" ")
    '00 00 0b 02 00 00 00 02 00 00 00 03'
    """
    if not isinstance(array, np.ndarray):
        raise TypeError(f"write_idx: array must be a numpy.ndarray, got {type(array).__name__}")
    native = array.dtype.newbyteorder("=")
    codes = {dt.newbyteorder("="): code for code, dt in IDX_DTYPES.items()}
    if native not in codes:
        raise TypeError(
            f"write_idx: array dtype {array.dtype} has no IDX type code; "
            "use uint8, int8, int16, int32, float32 or float64"
        )
    if array.ndim == 0 or array.ndim > 255:
        raise ValueError(f"write_idx: array must have 1 to 255 dimensions, got {array.ndim}")
    if max(array.shape) >= 2**32:
        raise ValueError(f"write_idx: every dimension must be below 2**32, got shape {array.shape}")
    code = codes[native]
    header = bytes([0, 0, code, array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
    payload = np.ascontiguousarray(array, dtype=IDX_DTYPES[code]).tobytes()
    path = Path(path)
    if compress is None:
        compress = path.name.endswith(".gz")
    data = header + payload
    path.write_bytes(gzip.compress(data, mtime=0) if compress else data)
    return path
