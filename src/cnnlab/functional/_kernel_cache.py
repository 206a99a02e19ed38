"""Numba's disk cache and compiler for cnnlab's kernels (:func:`cnnlab.functional._backend.job_kernel`
compiles each kernel with them): the cache of a kernel is keyed by every kernel file, not its own
alone, and the compiler tells LLVM that no array argument aliases another."""

from __future__ import annotations

import os
from typing import Any

_state: dict[str, Any] = {}


def kernel_sources() -> list[str]:
    """The files of cnnlab's compiled kernels and the code inlined into them (``_numba_*.py``
    and the helper threads' ``_team.py``), sorted."""
    folder = os.path.dirname(os.path.abspath(__file__))
    names = [n for n in os.listdir(folder) if n.startswith("_numba_") and n.endswith(".py")] + ["_team.py"]
    return sorted(os.path.join(folder, n) for n in names)


def kernel_sources_stamp() -> str:
    """A SHA-256 of the kernel files' names and contents (:func:`kernel_sources`), hashed once
    per process (then kept for each set of sizes and modification times)."""
    files = kernel_sources()
    key = tuple((f, st.st_mtime_ns, st.st_size) for f in files for st in [os.stat(f)])
    if _state.get("stamp_key") != key:
        import hashlib

        digest = hashlib.sha256()
        for f in files:
            with open(f, "rb") as source:
                digest.update(os.path.basename(f).encode() + b"\0" + source.read() + b"\0")
        _state["stamp_key"], _state["stamp"] = key, digest.hexdigest()
    return _state["stamp"]


def stamp_kernel_caches() -> None:
    """Key Numba's disk cache of every kernel defined in cnnlab's kernel files by all of those
    files (:func:`kernel_sources_stamp`), not by its own file alone, as Numba does: a kernel
    holds code inlined from other files (the register blocks of ``_numba_panels.py``, the vector
    steps of ``_numba_simd.py``), and with a change there alone Numba loaded the kernel compiled
    before it (a test failed on code that was no longer in the sources).  Done once, by putting
    a locator for those files ahead of Numba's own (in its ``CacheImpl._locator_classes``, a
    private list; where a Numba has none, its own stamps stay); a kernel whose stamp differs is compiled again
    and its cache entry replaced.  Functions in other files keep Numba's locators."""
    if _state.get("stamped"):
        return
    _state["stamped"] = True
    try:
        from numba.core import caching

        impl = getattr(caching, "CacheImpl", None) or caching._CacheImpl  # (the name before Numba 0.61)
        classes = list(impl._locator_classes)
    except (ImportError, AttributeError):
        return
    ours = [_kernels_locator(base) for base in classes
            if getattr(base, "__name__", "").lstrip("_") in ("UserProvidedCacheLocator", "InTreeCacheLocator",
                                                             "UserWideCacheLocator")]
    impl._locator_classes = ours + classes


def _kernels_locator(base: Any) -> Any:
    """A subclass of Numba's cache locator ``base`` for the functions of cnnlab's kernel files
    (:func:`stamp_kernel_caches`): the same cache folder, the stamp of all kernel files added."""
    class KernelsLocator(base):
        @classmethod
        def from_function(cls, py_func: Any, py_file: str) -> Any:
            if os.path.abspath(py_file) not in kernel_sources():
                return None
            return super().from_function(py_func, py_file)

        def get_source_stamp(self) -> Any:
            return super().get_source_stamp(), kernel_sources_stamp()

    KernelsLocator.__name__ = KernelsLocator.__qualname__ = "CnnlabKernels" + base.__name__.lstrip("_")
    return KernelsLocator


def no_alias_compiler() -> Any:
    """Numba's compiler with the ``noalias`` flag set (see :func:`cnnlab.functional._backend.job_kernel`), made once."""
    if "no_alias" not in _state:
        from numba.core import compiler

        class NoAliasCompiler(compiler.Compiler):
            def __init__(self, typingctx: Any, targetctx: Any, library: Any, args: Any, return_type: Any,
                         flags: Any, locals: Any) -> None:
                flags = flags.copy()
                flags.noalias = True
                super().__init__(typingctx, targetctx, library, args, return_type, flags, locals)

        _state["no_alias"] = NoAliasCompiler
    return _state["no_alias"]
