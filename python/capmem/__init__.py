# SPDX-License-Identifier: MIT
"""Python binding of libcapmem: capability-based memory accounting.

>>> import capmem
>>> with capmem.Arena(ram_size=16 << 20) as arena:
...     root = arena.ram_boot()
...     app = root.open(quota=1 << 20, label="app")
...     ds = app.alloc(4096)
...     app.used
4096

See docs/python.md. Every failing call raises a subclass of capmem.Error
carrying the library's detail (needed, available, address, message).
"""
from ._ffi import LIBRARY_PATH, ffi, lib
from ._core import (
    ANYWHERE,
    EVENT_ALL,
    Access,
    Account,
    AccountInfo,
    Alias,
    Arena,
    Backing,
    Bank,
    BankInfo,
    BankNode,
    Cap,
    CapInfo,
    Dataspace,
    DataspaceInfo,
    DeviceInfo,
    DsKind,
    Event,
    EventKind,
    Fault,
    FaultState,
    Frame,
    KernelFrame,
    KernelInfo,
    KernelObject,
    ManagedDataspace,
    ObjectInfo,
    ObjType,
    Region,
    RegionMap,
    RegionMapInfo,
    Rights,
    Subscription,
    Trace,
    Untyped,
    UntypedInfo,
    UntypedPolicy,
    UserCap,
)
from .errors import *  # noqa: F401,F403 - the exception classes
from .errors import CLASSES as ERRORS
from .errors import Error, error_class, last_error, strerror
from .policy import PROPERTIES, Allocator, ConformResult, Policy, Violation, conform
from .replay import ReplayResult, read_trace, replay, replay_allocator, replay_tool

__version__ = "0.1.0"


def library_version():
    """The version of the loaded libcapmem ("major.minor.patch")."""
    return ffi.string(lib.capmem_version()).decode()


# Constants of the C headers, for readers of the C documentation.
RAM_DEFAULT_DONATION = lib.CAPMEM_RAM_DEFAULT_DONATION
RAM_DEFAULT_UPGRADE = lib.CAPMEM_RAM_DEFAULT_UPGRADE
RAM_RECORD_SIZE = lib.CAPMEM_RAM_RECORD_SIZE
RM_DEFAULT_DONATION = lib.CAPMEM_RM_DEFAULT_DONATION
SUBSCRIBERS_MAX = lib.CAPMEM_SUBSCRIBERS_MAX
