"""The checkpoint file itself: its constants, and reading and checking a safetensors file
before anything is built from it (:mod:`cnnlab.checkpoint` is the public side: save and load).

A file is read whole, its header parsed and checked entry by entry (dtype, shape, byte range; the
tensors must tile the data section), the cnnlab document in its ``__metadata__`` schema-checked,
and the SHA-256 of its tensor bytes compared with the one the document records.  Only then are
tensors made, as owned, writable arrays.  Every problem raises :class:`CheckpointError` naming
the file; nothing in a file is executed.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from collections.abc import Mapping
from typing import Any

import numpy as np

FORMAT_VERSION = 1
METADATA_KEY = "cnnlab"
DIGEST_KEY = "tensor_sha256"
MAX_NESTING = 64  # deepest JSON nesting a cnnlab document may have (cnnlab writes about 12)

PathLike = str | os.PathLike

# dtypes safetensors stores, by the header's names.
_DTYPES = {
    "BOOL": np.dtype(np.bool_),
    "U8": np.dtype(np.uint8),
    "I8": np.dtype(np.int8),
    "U16": np.dtype(np.uint16),
    "I16": np.dtype(np.int16),
    "U32": np.dtype(np.uint32),
    "I32": np.dtype(np.int32),
    "U64": np.dtype(np.uint64),
    "I64": np.dtype(np.int64),
    "F16": np.dtype(np.float16),
    "F32": np.dtype(np.float32),
    "F64": np.dtype(np.float64),
}
_SAVABLE = {dtype.newbyteorder("<") for dtype in _DTYPES.values()}
_MAX_HEADER = 100_000_000  # the limit safetensors itself enforces


class CheckpointError(ValueError):
    """A file cannot be read as a cnnlab checkpoint, or does not fit the model it is loaded into.

    The message names the file and the problem.
    """


CheckpointError.__module__ = "cnnlab.checkpoint"  # (where users import it from)


def _safetensors_numpy() -> Any:
    try:
        import safetensors.numpy
    except ImportError:
        raise ImportError(
            "cnnlab checkpoints need the 'safetensors' package; install it with "
            "`pip install cnnlab[io]` (or `pip install safetensors`)"
        ) from None
    return safetensors.numpy


def _with_digest(data: bytes, document: str) -> bytes:
    """``data`` (a safetensors file) with the SHA-256 of its tensor bytes added to the cnnlab document.

    The tensor bytes do not depend on the header, so only the header is rewritten: the same JSON
    with the document replaced, padded with spaces to a multiple of 8 bytes as safetensors does.
    """
    (header_len,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + header_len])
    tensor_bytes = memoryview(data)[8 + header_len:]
    full = json.loads(document)
    full[DIGEST_KEY] = hashlib.sha256(tensor_bytes).hexdigest()
    header["__metadata__"][METADATA_KEY] = json.dumps(full, allow_nan=False)
    raw = json.dumps(header, separators=(",", ":")).encode("utf-8")
    raw += b" " * (-len(raw) % 8)
    return struct.pack("<Q", len(raw)) + raw + bytes(tensor_bytes)


def _sniff(head: bytes) -> str | None:
    """Name a well-known non-safetensors format from a file's first bytes, if it is one."""
    if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        return "a Python pickle (as written by torch.save or pickle.dump)"
    if head[:4] == b"PK\x03\x04":
        return "a zip archive (torch.save's default format)"
    if head[:6] == b"\x93NUMPY":
        return "a NumPy .npy file"
    if head[:8] == b"\x89HDF\r\n\x1a\n":
        return "an HDF5 file"
    if head and all(32 <= byte < 127 or byte in b"\t\r\n" for byte in head[:64]):
        return "a text file"
    return None


def _read_bytes(path: PathLike) -> tuple[str, bytes]:
    name = os.fspath(path)
    try:
        with open(name, "rb") as f:
            return name, f.read()
    except FileNotFoundError:
        raise FileNotFoundError(f"checkpoint file {name!r} does not exist") from None
    except IsADirectoryError:
        raise CheckpointError(f"{name!r} is a directory, not a checkpoint file") from None


def _not_safetensors(name: str, data: bytes, problem: str) -> CheckpointError:
    kind = _sniff(data)
    if kind is not None:
        return CheckpointError(
            f"{name!r} is not a safetensors checkpoint: it looks like {kind}. cnnlab reads only "
            "safetensors files and never unpickles (unpickling can run arbitrary code)"
        )
    return CheckpointError(f"{name!r} is truncated or corrupted: {problem}")


def _parse_header(name: str, data: bytes) -> tuple[dict[str, Any], dict[str, str]]:
    """Check the file's structure; return its tensor entries and its string metadata."""
    if len(data) == 0:
        raise CheckpointError(f"{name!r} is empty, not a checkpoint")
    if len(data) < 8:
        raise _not_safetensors(
            name, data, f"it has only {len(data)} bytes, fewer than the 8-byte header length"
        )
    (header_len,) = struct.unpack("<Q", data[:8])
    if header_len > len(data) - 8 or header_len > _MAX_HEADER:
        raise _not_safetensors(
            name,
            data,
            f"its header claims {header_len} bytes but the file has only {len(data) - 8} "
            "after the length field",
        )
    raw = data[8 : 8 + header_len]
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _not_safetensors(name, data, f"its header is not valid JSON ({exc})") from None
    except RecursionError:
        raise CheckpointError(f"{name!r} has a corrupted header: its JSON is nested too deeply") from None
    if not isinstance(header, dict):
        raise CheckpointError(
            f"{name!r} has a corrupted header: expected a JSON object, got {type(header).__name__}"
        )
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()
    ):
        raise CheckpointError(f"{name!r} has a corrupted header: __metadata__ must map str to str")
    data_len = len(data) - 8 - header_len
    for key, entry in header.items():
        _check_entry(name, key, entry, data_len)
    end = 0  # the tensors must tile the data section: no overlap, no gap, nothing after them
    for key, entry in sorted(header.items(), key=lambda item: item[1]["data_offsets"]):
        begin, stop = entry["data_offsets"]
        if begin != end:
            raise CheckpointError(f"{name!r} is corrupted: tensor {key!r} has an invalid offset {begin} "
                                  f"(expected {end}: tensors overlap or leave a gap)")
        end = stop
    if end != data_len:
        raise CheckpointError(f"{name!r} is corrupted: the data section is not fully covered by the tensors "
                              f"({data_len - end} bytes after the last one)")
    return header, metadata


def _check_entry(name: str, key: str, entry: Any, data_len: int) -> None:
    bad = f"{name!r} has a corrupted header entry for tensor {key!r}"
    if not isinstance(entry, dict) or not {"dtype", "shape", "data_offsets"} <= set(entry):
        raise CheckpointError(f"{bad}: expected dtype, shape and data_offsets, got {entry!r}")
    dtype = _DTYPES.get(entry["dtype"])
    if dtype is None:
        raise CheckpointError(
            f"{bad}: unsupported dtype {entry['dtype']!r} (supported: {', '.join(_DTYPES)})"
        )
    shape, offsets = entry["shape"], entry["data_offsets"]
    if not isinstance(shape, list) or not all(
        isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape
    ):
        raise CheckpointError(f"{bad}: shape must be a list of non-negative ints, got {shape!r}")
    if (
        not isinstance(offsets, list)
        or len(offsets) != 2
        or not all(isinstance(n, int) and not isinstance(n, bool) for n in offsets)
        or not 0 <= offsets[0] <= offsets[1]
    ):
        raise CheckpointError(f"{bad}: data_offsets must be [begin, end], got {offsets!r}")
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if offsets[1] - offsets[0] != nbytes:
        raise CheckpointError(
            f"{bad}: shape {shape} of {entry['dtype']} needs {nbytes} bytes but data_offsets "
            f"{offsets} span {offsets[1] - offsets[0]}"
        )
    if offsets[1] > data_len:
        raise CheckpointError(
            f"{name!r} is truncated: tensor {key!r} ends at byte {offsets[1]} of the data "
            f"section, which has only {data_len} bytes"
        )


def _document(name: str, metadata: Mapping[str, str]) -> dict[str, Any] | None:
    text = metadata.get(METADATA_KEY)
    if text is None:
        return None
    bad = f"{name!r} has corrupted cnnlab metadata"
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{bad}: not valid JSON ({exc})") from None
    except RecursionError:
        raise CheckpointError(f"{bad}: its JSON is nested more than {MAX_NESTING} levels deep") from None
    if not isinstance(document, dict):
        raise CheckpointError(f"{bad}: expected a JSON object, got {type(document).__name__}")
    depth = nesting_depth(document)
    if depth > MAX_NESTING:
        raise CheckpointError(f"{bad}: its JSON is nested {depth} levels deep, more than {MAX_NESTING}")
    version = document.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise CheckpointError(f"{bad}: format_version must be a whole number >= 1, got {version!r}")
    if version > FORMAT_VERSION:
        raise CheckpointError(
            f"{name!r} was written in cnnlab checkpoint format {version}, newer than the "
            f"format {FORMAT_VERSION} this cnnlab reads; upgrade cnnlab"
        )
    expected = {"cnnlab_version": str, "metadata": dict, "config": dict, DIGEST_KEY: str}
    for key, kind in expected.items():
        if key in document and document[key] is not None and not isinstance(document[key], kind):
            raise CheckpointError(f"{bad}: {key!r} must be a {'JSON object' if kind is dict else 'string'}, "
                                  f"got {type(document[key]).__name__}")
    digest = document.get(DIGEST_KEY)
    if digest is not None and not (len(digest) == 64 and all(c in "0123456789abcdef" for c in digest)):
        raise CheckpointError(f"{bad}: {DIGEST_KEY!r} must be 64 lower-case hex digits")
    return document


def nesting_depth(value: Any) -> int:
    """How deeply JSON data (dicts and lists) nests: 0 for a scalar, 1 for a flat list or dict.

    Iterative, so hostile data nested 100,000 deep is measured without recursion.

    Examples
    --------
    >>> nesting_depth({"a": [1, {"b": 2}]}), nesting_depth(3)
    (3, 0)
    """
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return deepest


def _verify(name: str, data: bytes, document: dict[str, Any] | None) -> None:
    """Compare the SHA-256 of the tensor bytes with the one the document records (if it records one)."""
    digest = None if document is None else document.get(DIGEST_KEY)
    if digest is None:
        return
    (header_len,) = struct.unpack("<Q", data[:8])
    actual = hashlib.sha256(memoryview(data)[8 + header_len:]).hexdigest()
    if actual != digest:
        raise CheckpointError(
            f"{name!r} is corrupted: the SHA-256 of its tensor data is {actual[:12]}..., but the file "
            f"records {digest[:12]}... (a changed or damaged byte in the weights)"
        )


def _read_checked(path: PathLike, verify: bool) -> tuple[str, bytes, dict[str, Any], dict[str, Any] | None]:
    """The file's bytes, its checked header entries and its checked cnnlab document; no tensor built yet."""
    _safetensors_numpy()
    name, data = _read_bytes(path)
    entries, metadata = _parse_header(name, data)
    document = _document(name, metadata)
    if verify:
        _verify(name, data, document)
    return name, data, entries, document


def _tensors(name: str, data: bytes) -> dict[str, np.ndarray]:
    st = _safetensors_numpy()
    try:
        tensors = st.load(data)
    except Exception as exc:  # safetensors raises its own error type for format problems
        raise CheckpointError(f"{name!r} is corrupted: {exc}") from None
    # safetensors returns read-only views of the file's bytes; hand out owned, writable arrays.
    return {key: np.array(value, copy=True) for key, value in tensors.items()}


def _read(path: PathLike, verify: bool = True) -> tuple[str, dict[str, np.ndarray], dict[str, Any] | None]:
    name, data, _, document = _read_checked(path, verify)
    return name, _tensors(name, data), document
