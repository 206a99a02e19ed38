"""download_file against a local HTTP server on 127.0.0.1: verified success, mismatches, HTTP errors."""

from __future__ import annotations

import hashlib
import os

import pytest

from cnnlab.data.download import ChecksumError, DownloadError, download_file, file_digest

PAYLOAD = os.urandom(3 * (1 << 20) + 12345)  # several chunks
SHA = hashlib.sha256(PAYLOAD).hexdigest()
MD5 = hashlib.md5(PAYLOAD).hexdigest()


def _leftovers(folder):
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_success_with_sha256_and_size(file_server, tmp_path):
    file_server.put("data/train.gz", PAYLOAD)
    dest = tmp_path / "out" / "nested" / "train.gz"
    seen = []
    got = download_file(file_server.url + "data/train.gz", dest, sha256=SHA.upper(), size=len(PAYLOAD),
                        progress=lambda done, total: seen.append((done, total)))
    assert got == dest
    assert dest.read_bytes() == PAYLOAD
    assert _leftovers(dest.parent) == ["train.gz"]  # no temporary file left behind
    assert seen[-1] == (len(PAYLOAD), len(PAYLOAD))
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)
    assert file_server.requests == ["/data/train.gz"]


def test_success_with_md5_only(file_server, tmp_path):
    file_server.put("f.bin", PAYLOAD)
    dest = download_file(file_server.url + "f.bin", tmp_path / "dl" / "f.bin", md5=MD5)
    assert file_digest(dest) == SHA
    assert file_digest(dest, "md5") == MD5


def test_sha256_mismatch_leaves_nothing(file_server, tmp_path):
    file_server.put("f.bin", PAYLOAD)
    dest = tmp_path / "dl" / "f.bin"
    wrong = hashlib.sha256(b"something else").hexdigest()
    with pytest.raises(ChecksumError, match=rf"sha256 mismatch for .*f\.bin: expected {wrong}, got {SHA}"):
        download_file(file_server.url + "f.bin", dest, sha256=wrong)
    assert not dest.exists()
    assert _leftovers(dest.parent) == []


def test_md5_mismatch_is_checked_too(file_server, tmp_path):
    file_server.put("f.bin", PAYLOAD)
    with pytest.raises(ChecksumError, match="md5 mismatch"):
        download_file(file_server.url + "f.bin", tmp_path / "dl" / "f.bin", sha256=SHA, md5="0" * 32)
    assert _leftovers(tmp_path / "dl") == []


def test_mismatch_keeps_an_existing_good_file(file_server, tmp_path):
    dest = tmp_path / "dl" / "f.bin"
    dest.parent.mkdir()
    dest.write_bytes(b"previous verified copy")
    file_server.put("f.bin", PAYLOAD)
    with pytest.raises(ChecksumError):
        download_file(file_server.url + "f.bin", dest, sha256="1" * 64)
    assert dest.read_bytes() == b"previous verified copy"
    assert _leftovers(tmp_path / "dl") == ["f.bin"]


def test_size_mismatch(file_server, tmp_path):
    file_server.put("f.bin", PAYLOAD)
    with pytest.raises(ChecksumError, match=rf"gave {len(PAYLOAD)} bytes, expected {len(PAYLOAD) + 1}"):
        download_file(file_server.url + "f.bin", tmp_path / "dl" / "f.bin", size=len(PAYLOAD) + 1)
    assert _leftovers(tmp_path / "dl") == []


def test_http_404(file_server, tmp_path):
    url = file_server.url + "missing.gz"
    with pytest.raises(DownloadError, match=rf"{url} answered HTTP 404") as info:
        download_file(url, tmp_path / "dl" / "missing.gz", sha256=SHA)
    assert not isinstance(info.value, ChecksumError)
    assert _leftovers(tmp_path / "dl") == []


def test_connection_refused(closed_port_url, tmp_path):
    with pytest.raises(DownloadError, match=r"cannot reach http://127\.0\.0\.1:\d+/f\.bin"):
        download_file(closed_port_url + "f.bin", tmp_path / "dl" / "f.bin")
    assert _leftovers(tmp_path / "dl") == []


def test_interrupted_download_leaves_nothing(file_server, tmp_path):
    file_server.put("f.bin", PAYLOAD)

    def interrupt(done, total):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        download_file(file_server.url + "f.bin", tmp_path / "dl" / "f.bin", progress=interrupt)
    assert _leftovers(tmp_path / "dl") == []


@pytest.mark.parametrize(
    ("kwargs", "exc", "pattern"),
    [
        ({"url": "file:///etc/passwd"}, ValueError, "url must start with http:// or https://"),
        ({"sha256": "abc"}, ValueError, "sha256 must be 64 hex digits, got 'abc'"),
        ({"sha256": "g" * 64}, ValueError, "sha256 must be 64 hex digits"),
        ({"md5": 5}, TypeError, "md5 must be a hex string or None, got int"),
    ],
)
def test_argument_errors(tmp_path, kwargs, exc, pattern):
    args = {"url": "http://127.0.0.1:9/x", "dest": tmp_path / "dl" / "x"} | kwargs
    with pytest.raises(exc, match=pattern):
        download_file(args.pop("url"), args.pop("dest"), **args)
    assert _leftovers(tmp_path / "dl") == []
