"""Downloading a file safely: stream to a temporary file beside the target, verify, then rename.

A download is written to a uniquely named ``.<name>.<random>.part`` file in the destination
folder while its SHA-256 (or MD5) is computed on the fly.  Only when the size and checksum match
is it moved to its final name with :func:`os.replace`, which is atomic on one file system.  So an
interrupted, failed or corrupted download never sits at the final path, two processes downloading
the same file do not write into each other's file, and the next attempt simply starts over.
Only the standard library is used (:mod:`urllib.request`); it honours the usual ``http_proxy``,
``https_proxy`` and ``no_proxy`` variables.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path

_CHUNK = 1 << 20

ProgressFn = Callable[[int, int | None], None]


class DownloadError(OSError):
    """A download failed: the server could not be reached or answered with an error."""


class ChecksumError(DownloadError):
    """A downloaded file's size or checksum differs from the published one."""


def file_digest(path: str | os.PathLike[str], algorithm: str = "sha256") -> str:
    """The hex digest of a file's content.

    Parameters
    ----------
    path : str or os.PathLike
        The file.
    algorithm : str, optional
        Any name :func:`hashlib.new` knows, e.g. ``"sha256"`` (default) or ``"md5"``.

    Returns
    -------
    str
        Lower-case hexadecimal digest.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     path = pathlib.Path(tmp) / "empty"
    ...     _ = path.write_bytes(b"")
    ...     file_digest(path)[:16]
    'e3b0c44298fc1c14'
    """
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def _check_hex(name: str, value: str | None, length: int) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise TypeError(f"download_file: {name} must be a hex string or None, got {type(value).__name__}")
    value = value.strip().lower()
    if len(value) != length or any(c not in "0123456789abcdef" for c in value):
        raise ValueError(f"download_file: {name} must be {length} hex digits, got {value!r}")
    return value


def download_file(
    url: str,
    dest: str | os.PathLike[str],
    *,
    sha256: str | None = None,
    md5: str | None = None,
    size: int | None = None,
    timeout: float = 60.0,
    progress: ProgressFn | None = None,
) -> Path:
    """Download ``url`` to ``dest`` through a temporary file, checking size and checksum.

    Parameters
    ----------
    url : str
        An ``http://`` or ``https://`` address.
    dest : str or os.PathLike
        The final path.  Its folder is created if needed.  An existing file there is replaced
        only after the new download has been verified.
    sha256, md5 : str or None, optional
        Expected hex digests.  SHA-256 is checked when given; MD5 only when it is given too (or
        alone, for sources that publish nothing stronger).  With neither, nothing is verified.
    size : int or None, optional
        Expected size in bytes.
    timeout : float, optional
        Seconds to wait for the server on connecting and on each read.
    progress : callable or None, optional
        Called as ``progress(bytes_so_far, total_or_None)`` after each chunk.

    Returns
    -------
    pathlib.Path
        ``dest``.

    Raises
    ------
    ValueError
        If ``url`` is not http(s) or a checksum argument is malformed.
    DownloadError
        If the server cannot be reached, answers with an HTTP error, or the connection breaks.
    ChecksumError
        If the size or a checksum differs.  The temporary file is removed and nothing is left at
        ``dest`` (a file that was already there is untouched).

    Examples
    --------
    >>> download_file("ftp://example.org/x", "x")
    Traceback (most recent call last):
        ...
    ValueError: download_file: url must start with http:// or https://, got 'ftp://example.org/x'
    """
    if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        raise ValueError(f"download_file: url must start with http:// or https://, got {url!r}")
    sha256 = _check_hex("sha256", sha256, 64)
    md5 = _check_hex("md5", md5, 32)
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            got, digests = _stream(url, out, timeout, progress)
        _verify(url, got, digests, size, sha256, md5)
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return dest


def _stream(url: str, out, timeout: float, progress: ProgressFn | None) -> tuple[int, dict[str, str]]:
    """Copy the response body of ``url`` into ``out``; return its size and digests."""
    hashes = {"sha256": hashlib.sha256(), "md5": hashlib.md5(usedforsecurity=False)}
    got = 0
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            for chunk in iter(lambda: response.read(_CHUNK), b""):
                out.write(chunk)
                for h in hashes.values():
                    h.update(chunk)
                got += len(chunk)
                if progress is not None:
                    progress(got, total)
    except urllib.error.HTTPError as exc:
        raise DownloadError(f"download_file: {url} answered HTTP {exc.code} {exc.reason}") from None
    except urllib.error.URLError as exc:
        raise DownloadError(f"download_file: cannot reach {url} ({exc.reason})") from None
    except (OSError, ValueError) as exc:
        raise DownloadError(f"download_file: connection to {url} broke after {got} bytes ({exc})") from None
    if total is not None and got != total:
        raise DownloadError(f"download_file: {url} sent {got} bytes of the {total} it announced")
    return got, {name: h.hexdigest() for name, h in hashes.items()}


def _verify(
    url: str, got: int, digests: dict[str, str], size: int | None, sha256: str | None, md5: str | None
) -> None:
    if size is not None and got != size:
        raise ChecksumError(f"download_file: {url} gave {got} bytes, expected {size}; the file was discarded")
    for name, expected in (("sha256", sha256), ("md5", md5)):
        if expected is not None and digests[name] != expected:
            raise ChecksumError(
                f"download_file: {name} mismatch for {url}: expected {expected}, got {digests[name]}; "
                "the file was discarded"
            )
