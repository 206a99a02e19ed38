"""IDX reader and writer on files the tests write: round trips, byte layout, every header error."""

from __future__ import annotations

import gzip
import re
import struct

import numpy as np
import pytest

from cnnlab.data.idx import parse_idx, read_idx, write_idx

DTYPES = [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64]
CODES = {np.uint8: 0x08, np.int8: 0x09, np.int16: 0x0B, np.int32: 0x0C, np.float32: 0x0D, np.float64: 0x0E}
STRUCT = {np.uint8: "B", np.int8: "b", np.int16: "h", np.int32: "i", np.float32: "f", np.float64: "d"}


def _sample(dtype, shape, seed=0):
    rng = np.random.default_rng(seed)
    if np.dtype(dtype).kind == "f":
        return rng.standard_normal(shape).astype(dtype)
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max, size=shape, endpoint=True).astype(dtype)


def _idx_bytes(code: int, shape: tuple[int, ...], payload: bytes) -> bytes:
    """An IDX file assembled by hand with struct (independent of write_idx)."""
    return bytes([0, 0, code, len(shape)]) + struct.pack(f">{len(shape)}I", *shape) + payload


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("compressed", [False, True], ids=["raw", "gz"])
def test_round_trip(tmp_path, dtype, compressed):
    x = _sample(dtype, (5, 3, 4))
    path = write_idx(tmp_path / ("x.idx.gz" if compressed else "x.idx"), x)
    assert path.read_bytes().startswith(b"\x1f\x8b") == compressed
    y = read_idx(path)
    assert y.dtype == np.dtype(dtype) and y.dtype.isnative
    assert y.flags.writeable
    np.testing.assert_array_equal(y, x)


@pytest.mark.parametrize("dtype", DTYPES)
def test_reads_hand_built_big_endian_file(tmp_path, dtype):
    values = _sample(dtype, (2, 3), seed=1)
    payload = struct.pack(">" + STRUCT[dtype] * values.size, *values.ravel().tolist())
    path = tmp_path / "hand.idx"
    path.write_bytes(_idx_bytes(CODES[dtype], (2, 3), payload))
    np.testing.assert_array_equal(read_idx(path), values)


@pytest.mark.parametrize("dtype", DTYPES)
def test_writer_layout_is_big_endian(tmp_path, dtype):
    values = _sample(dtype, (4,), seed=2)
    data = write_idx(tmp_path / "w.idx", values).read_bytes()
    expected = _idx_bytes(CODES[dtype], (4,), struct.pack(">" + STRUCT[dtype] * 4, *values.tolist()))
    assert data == expected


def test_gzip_recognised_by_content_not_name(tmp_path):
    x = np.arange(12, dtype=np.uint8).reshape(3, 4)
    gz_named_plain = write_idx(tmp_path / "a.gz", x, compress=False)
    plain_named_gz = write_idx(tmp_path / "b-idx2-ubyte", x, compress=True)
    np.testing.assert_array_equal(read_idx(gz_named_plain), x)
    np.testing.assert_array_equal(read_idx(plain_named_gz), x)


def test_mnist_like_file_names_and_shapes(tmp_path):
    images = _sample(np.uint8, (10, 28, 28))
    labels = np.arange(10, dtype=np.uint8)
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", images)
    write_idx(tmp_path / "train-labels-idx1-ubyte", labels)
    assert read_idx(tmp_path / "train-images-idx3-ubyte.gz").shape == (10, 28, 28)
    np.testing.assert_array_equal(read_idx(tmp_path / "train-labels-idx1-ubyte"), labels)


def test_zero_length_dimension(tmp_path):
    path = write_idx(tmp_path / "empty.idx", np.zeros((0, 28), dtype=np.uint8))
    assert read_idx(path).shape == (0, 28)


# ----------------------------------------------------------------------------------------------
# Errors: each names the file and says what is wrong


def _write(tmp_path, name, data, compress=False):
    path = tmp_path / name
    path.write_bytes(gzip.compress(data) if compress else data)
    return path


@pytest.mark.parametrize("compress", [False, True], ids=["raw", "gz"])
def test_truncated_payload(tmp_path, compress):
    data = _idx_bytes(0x08, (10, 28, 28), bytes(1000))
    path = _write(tmp_path, "train-images-idx3-ubyte.gz", data, compress)
    msg = "payload has 1000 bytes, header promises 7840 (10 x 28 x 28 x 1"
    with pytest.raises(ValueError, match=re.escape(str(path)) + ".*" + re.escape(msg) + ".*truncated"):
        read_idx(path)


def test_trailing_bytes(tmp_path):
    path = _write(tmp_path, "labels.idx", _idx_bytes(0x08, (5,), bytes(5) + b"junk"))
    with pytest.raises(ValueError, match=r"labels\.idx: payload has 9 bytes, header promises 5 .*trailing"):
        read_idx(path)


def test_wrong_magic_not_zero(tmp_path):
    path = _write(tmp_path, "pic.png", b"\x89PNG\r\n\x1a\n" + bytes(20))
    with pytest.raises(ValueError, match=r"pic\.png: magic number must start with two zero bytes, got 0x89 0x50"):
        read_idx(path)


@pytest.mark.parametrize("code", [0x00, 0x07, 0x0A, 0x0F, 0xFF])
def test_unknown_type_code(tmp_path, code):
    path = _write(tmp_path, "x.idx", _idx_bytes(code, (2,), bytes(2)))
    with pytest.raises(ValueError, match=rf"x\.idx: unknown type code 0x{code:02X}; expected one of 0x08 \(ubyte\)"):
        read_idx(path)


def test_mislabelled_type_code_caught_by_length(tmp_path):
    # ubyte labels whose header claims int32 (0x0C): 4 bytes per item promised, 1 present
    path = _write(tmp_path, "labels-idx1-ubyte", _idx_bytes(0x0C, (8,), bytes(range(8))))
    with pytest.raises(ValueError, match=r"payload has 8 bytes, header promises 32 \(8 x 4, type 0x0C int\)"):
        read_idx(path)


def test_zero_dimensions(tmp_path):
    path = _write(tmp_path, "x.idx", bytes([0, 0, 0x08, 0]) + bytes(4))
    with pytest.raises(ValueError, match=r"x\.idx: header gives 0 dimensions"):
        read_idx(path)


def test_header_shorter_than_its_dimensions(tmp_path):
    path = _write(tmp_path, "x.idx", bytes([0, 0, 0x08, 3]) + struct.pack(">I", 10))
    with pytest.raises(ValueError, match=r"x\.idx: header promises 3 dimensions \(16 header bytes\), file has only 8"):
        read_idx(path)


def test_dims_disagree_with_payload(tmp_path):
    # header says 4 x 4 but 3 x 4 items follow
    path = _write(tmp_path, "x.idx", _idx_bytes(0x08, (4, 4), bytes(12)))
    with pytest.raises(ValueError, match=r"payload has 12 bytes, header promises 16 \(4 x 4 x 1"):
        read_idx(path)


@pytest.mark.parametrize("n", [0, 1, 3])
def test_too_short_for_a_header(tmp_path, n):
    path = _write(tmp_path, "tiny", bytes(n))
    with pytest.raises(ValueError, match=rf"tiny: file has {n} bytes, an IDX header needs at least 4"):
        read_idx(path)


def test_truncated_gzip_stream(tmp_path):
    data = gzip.compress(_idx_bytes(0x08, (100,), bytes(range(100))))
    path = _write(tmp_path, "cut.gz", data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"cut\.gz: damaged gzip data"):
        read_idx(path)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_idx(tmp_path / "nope.idx")


def test_parse_idx_names_the_source():
    with pytest.raises(ValueError, match=r"^read_idx: <bytes>: file has 2 bytes"):
        parse_idx(b"\x00\x00")


# ----------------------------------------------------------------------------------------------
# write_idx argument errors


@pytest.mark.parametrize("dtype", [np.uint16, np.int64, np.float16, np.bool_, np.complex64])
def test_write_rejects_dtypes_without_code(tmp_path, dtype):
    with pytest.raises(TypeError, match=rf"write_idx: array dtype {np.dtype(dtype)} has no IDX type code"):
        write_idx(tmp_path / "x.idx", np.zeros(3, dtype=dtype))


def test_write_rejects_non_arrays_and_scalars(tmp_path):
    with pytest.raises(TypeError, match="write_idx: array must be a numpy.ndarray, got list"):
        write_idx(tmp_path / "x.idx", [1, 2])
    with pytest.raises(ValueError, match="write_idx: array must have 1 to 255 dimensions, got 0"):
        write_idx(tmp_path / "x.idx", np.array(3, dtype=np.uint8))


def test_write_accepts_big_endian_and_non_contiguous(tmp_path):
    x = np.arange(20, dtype=">i4").reshape(4, 5)[:, ::2]
    np.testing.assert_array_equal(read_idx(write_idx(tmp_path / "x.idx", x)), x)
