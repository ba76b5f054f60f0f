# SPDX-License-Identifier: MIT
"""One exception class per libcapmem error code, all under :class:`Error`.

Every failing call raises the class of its code, carrying the numbers of
the library's per-thread detail record (``capmem_last_error()``): the
message with the numbers filled in, the function that failed, bytes needed
and available, the conflicting or faulting address and size, the bounds of
a RANGE error and the offending argument.
"""
from ._cdef import ERROR_NAMES
from ._ffi import ffi, lib, string


class Error(Exception):
    """A libcapmem call failed. ``code`` and ``name`` say which error."""

    code = None
    name = "UNKNOWN"

    def __init__(self, message="", *, code=None, function="", needed=0, available=0, address=0,
                 size=0, bound_min=0, bound_max=0, argument=0, sys_errno=0):
        super().__init__(message)
        if code is not None:
            self.code = code
            self.name = ERROR_NAMES[code] if 0 <= code < len(ERROR_NAMES) else "UNKNOWN"
        self.message = message
        self.function = function
        self.needed = needed
        self.available = available
        self.address = address
        self.size = size
        self.bound_min = bound_min
        self.bound_max = bound_max
        self.argument = argument
        self.sys_errno = sys_errno
        #: The Python traceback of a callback (fault handler, policy hook)
        #: whose exception caused this failure, as text; None otherwise.
        self.callback_traceback = None

    def __str__(self):
        text = f"{self.name}: {self.message}" if self.message else self.name
        if self.callback_traceback:
            text += "\n\nPython callback traceback:\n" + self.callback_traceback
        return text


class InvalidArgs(Error, ValueError):
    """An argument is invalid (size 0, misaligned, overflowing...)."""


class InvalidCap(Error):
    """A stale, forged or foreign capability handle."""


class WrongType(Error, TypeError):
    """The capability names an object of another type."""


class Denied(Error, PermissionError):
    """The capability lacks a right the operation needs."""


class OutOfRam(Error):
    """RAM quota exhausted: ``needed`` and ``available`` say by how much."""


class OutOfMetadata(Error):
    """The session's donation has no record left ("Could not allocate metadata")."""


class OutOfPhys(Error):
    """No contiguous physical range large enough."""


class OutOfCaps(Error):
    """Capability quota or capability slots exhausted."""


class RegionConflict(Error):
    """The region overlaps an attachment (``address`` and ``size`` of it)."""


class UnresolvedFault(Error):
    """A page fault was not resolved; ``address`` is where it happened."""


class RevokeFirst(Error):
    """The object has children: revoke them first."""


class DeleteFirst(Error):
    """The object is still in use: delete its dependents first."""


class RangeError(Error, ValueError):
    """An argument is outside its range (``bound_min`` .. ``bound_max``)."""


class NotEnoughMemory(Error):
    """Not enough free memory in the region (``needed``, ``available``)."""


class NotAllocated(Error):
    """The range was not allocated (double free or foreign range)."""


class NotFound(Error, LookupError):
    """No such object, region or range."""


class Cycle(Error):
    """The operation would create a cycle."""


class FaultLoop(Error):
    """The fault handler reported success without making progress."""


class Unsupported(Error):
    """The operation is not supported by this arena or host."""


class SystemCallError(Error, OSError):
    """A host system call failed (``sys_errno``)."""


class HostNoMem(Error, MemoryError):
    """A host memory allocation failed."""


class Corrupt(Error):
    """An internal invariant is broken (reported by a check function)."""


class PolicyError(Error):
    """An allocation policy returned an invalid block (or raised)."""


class Reentrant(Error):
    """The library was called from a callback that may not call it."""


class LimitReached(Error):
    """A space bank's limit (its own or an ancestor's) would be exceeded."""


_CLASS_OF_NAME = {
    "INVALID_ARGS": InvalidArgs,
    "INVALID_CAP": InvalidCap,
    "WRONG_TYPE": WrongType,
    "DENIED": Denied,
    "OUT_OF_RAM": OutOfRam,
    "OUT_OF_METADATA": OutOfMetadata,
    "OUT_OF_PHYS": OutOfPhys,
    "OUT_OF_CAPS": OutOfCaps,
    "REGION_CONFLICT": RegionConflict,
    "UNRESOLVED_FAULT": UnresolvedFault,
    "REVOKE_FIRST": RevokeFirst,
    "DELETE_FIRST": DeleteFirst,
    "RANGE": RangeError,
    "NOT_ENOUGH_MEMORY": NotEnoughMemory,
    "NOT_ALLOCATED": NotAllocated,
    "NOT_FOUND": NotFound,
    "CYCLE": Cycle,
    "FAULT_LOOP": FaultLoop,
    "UNSUPPORTED": Unsupported,
    "SYSTEM": SystemCallError,
    "HOST_NOMEM": HostNoMem,
    "CORRUPT": Corrupt,
    "POLICY": PolicyError,
    "REENTRANT": Reentrant,
    "LIMIT_REACHED": LimitReached,
}

#: Error code (int) -> exception class.
CLASSES = {}
for _code, _name in enumerate(ERROR_NAMES):
    if _name == "OK":
        continue
    _cls = _CLASS_OF_NAME[_name]
    _cls.code = _code
    _cls.name = _name
    CLASSES[_code] = _cls


def error_class(code):
    """The exception class of an error code (Error for unknown codes)."""
    return CLASSES.get(code, Error)


def last_error():
    """The calling thread's detail record as an exception instance (not raised)."""
    info = lib.capmem_last_error()
    code = int(info.code)
    return error_class(code)(
        string(info.message),
        code=code,
        function=string(info.function),
        needed=info.needed,
        available=info.available,
        address=info.address,
        size=info.size,
        bound_min=info.bound_min,
        bound_max=info.bound_max,
        argument=info.argument,
        sys_errno=info.sys_errno,
    )


def check(err):
    """Raise the exception of ``err`` (with the thread's detail) unless it is OK."""
    if err != 0:
        exc = last_error()
        if exc.code != err:
            # The detail belongs to another failure: keep the code of this one.
            exc = error_class(err)(string(lib.capmem_strerror(err)), code=err)
        raise exc


def strerror(code):
    """The library's message for an error code."""
    return string(lib.capmem_strerror(code))


def set_error(code, message, needed=None, available=None):
    """Record a failure as the thread's last error (for policy hooks); return code."""
    lib.capmem_error_set(code, b"%s", ffi.new("char[]", message.encode("utf-8", "replace")))
    if needed is not None or available is not None:
        lib.capmem_error_set_numbers(needed or 0, available or 0)
    return code
