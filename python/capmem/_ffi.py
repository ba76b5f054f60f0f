# SPDX-License-Identifier: MIT
"""Load libcapmem with cffi in ABI mode (no compiler needed at import time).

Where the library comes from, first match wins:

1. ``CAPMEM_LIBRARY``: the path of a libcapmem shared library (the build
   tree's ``build/src/libcapmem.so``; ``meson devenv`` sets it);
2. the library installed beside this package by ``meson install``
   (``_config.py``, written at install time, knows where);
3. the system's search path (``libcapmem.so.0``).
"""
import ctypes.util
import os

import cffi

from ._cdef import CDEF, LIBC_CDEF

ffi = cffi.FFI()
ffi.cdef(CDEF)
ffi.cdef(LIBC_CDEF)


def _installed_candidates():
    try:
        from . import _config
    except ImportError:
        return []
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    found = []
    # The package may sit under a DESTDIR (a staged install): the site
    # directory ends with the configured one, and the library is then under
    # the same root.
    site = os.path.normpath(_config.PYTHON_DIR)
    if here.endswith(site):
        root = here[: len(here) - len(site)]
        found.append(os.path.join(root + _config.LIBDIR, _config.LIBNAME))
    found.append(os.path.join(_config.LIBDIR, _config.LIBNAME))
    return found


def _candidates():
    env = os.environ.get("CAPMEM_LIBRARY")
    if env:
        return [env]
    found = [p for p in _installed_candidates() if os.path.exists(p)]
    name = ctypes.util.find_library("capmem")
    found.append(name or "libcapmem.so.0")
    return found


def _load():
    errors = []
    for path in _candidates():
        try:
            return ffi.dlopen(path), path
        except OSError as e:
            errors.append(f"{path}: {e}")
    raise ImportError(
        "capmem: cannot load libcapmem (set CAPMEM_LIBRARY to the path of libcapmem.so, "
        "or run inside `meson devenv -C BUILD`): " + "; ".join(errors)
    )


lib, LIBRARY_PATH = _load()
libc = ffi.dlopen(None)


def string(p):
    """A C string as str ('' for NULL)."""
    return "" if p == ffi.NULL else ffi.string(p).decode("utf-8", "replace")
