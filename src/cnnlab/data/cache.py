"""Where cnnlab keeps data sets: the data directory, the user cache directory, system copies.

The data directory is ``$CNNLAB_DATA`` when that variable is set, otherwise the user cache
directory: ``$XDG_CACHE_HOME/cnnlab`` (an absolute ``XDG_CACHE_HOME`` only, as the XDG base
directory specification asks), else ``~/.cache/cnnlab`` (``%LOCALAPPDATA%\\cnnlab`` on Windows).
Each data set lives in a sub-folder named after it: ``<data dir>/fashion-mnist/``.

Loaders look for an existing copy before downloading anything, in this order: the folder under
``$CNNLAB_DATA``, the folder under the user cache directory, then the copies that operating
system packages install (Debian's ``dataset-fashion-mnist`` puts Fashion-MNIST in
``/usr/share/datasets/fashion-mnist``).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ENV_DATA = "CNNLAB_DATA"
ENV_MIRROR = "CNNLAB_MIRROR"

# Folders that operating-system packages fill, per data set.  Debian ships only Fashion-MNIST
# (``apt-get install dataset-fashion-mnist``); no Debian package carries MNIST or KMNIST.
SYSTEM_DIRS: dict[str, tuple[Path, ...]] = {
    "fashion-mnist": (Path("/usr/share/datasets/fashion-mnist"),),
}


def _env_path(name: str) -> Path | None:
    value = os.environ.get(name, "").strip()
    return Path(value).expanduser() if value else None


def user_cache_dir() -> Path:
    """The per-user cache directory for cnnlab (it may not exist yet).

    Returns
    -------
    pathlib.Path
        ``$XDG_CACHE_HOME/cnnlab`` when ``XDG_CACHE_HOME`` is an absolute path, otherwise
        ``~/.cache/cnnlab`` (``%LOCALAPPDATA%\\cnnlab`` on Windows).

    Examples
    --------
    >>> user_cache_dir().name
    'cnnlab'
    """
    if sys.platform == "win32":
        local = _env_path("LOCALAPPDATA")
        if local is not None:
            return local / "cnnlab"
    xdg = _env_path("XDG_CACHE_HOME")
    if xdg is not None and xdg.is_absolute():
        return xdg / "cnnlab"
    return Path.home() / ".cache" / "cnnlab"


def data_dir() -> Path:
    """The directory new downloads and generated data sets go to (it may not exist yet).

    Returns
    -------
    pathlib.Path
        ``$CNNLAB_DATA`` when set and not empty, otherwise :func:`user_cache_dir`.

    Examples
    --------
    >>> import os
    >>> data_dir() == (Path(os.environ["CNNLAB_DATA"]).expanduser() if os.environ.get("CNNLAB_DATA")
    ...                else user_cache_dir())
    True
    """
    env = _env_path(ENV_DATA)
    return env if env is not None else user_cache_dir()


def search_dirs(name: str) -> list[Path]:
    """The folders searched, in order, for an existing copy of the data set ``name``.

    Parameters
    ----------
    name : str
        The data set's folder name, e.g. ``"fashion-mnist"``.

    Returns
    -------
    list of pathlib.Path
        ``$CNNLAB_DATA/<name>`` (when the variable is set), ``<user cache dir>/<name>``, then
        the system folders known for that data set.  Duplicates are dropped; folders need not exist.

    Examples
    --------
    >>> search_dirs("fashion-mnist")[-1].as_posix()
    '/usr/share/datasets/fashion-mnist'
    """
    dirs: list[Path] = []
    env = _env_path(ENV_DATA)
    if env is not None:
        dirs.append(env / name)
    dirs.append(user_cache_dir() / name)
    dirs.extend(SYSTEM_DIRS.get(name, ()))
    unique: list[Path] = []
    for d in dirs:
        if d not in unique:
            unique.append(d)
    return unique
