# SPDX-License-Identifier: MIT
"""The object layer of the binding: Arena and the capability objects.

Ownership, in one paragraph. Every capability object holds its Arena, so an
arena lives as long as anything made from it. The Arena owns the C arena and
everything the C side keeps a pointer to: the contexts of fault handlers,
event subscribers, user-object destroy hooks and Python policies. Nothing
else keeps those alive, so a handler object dies with the arena. Closing the
arena (``close()``, the ``with`` block's end, or the arena being garbage
collected, cycles included: ``__del__``) destroys the C arena, which frees
every object, capability, mapping and the memfd; wrappers still around then
raise ValueError ("the arena is closed").
"""
import dataclasses
import enum
import json
import sys
import threading
import traceback
import weakref

from . import errors
from ._ffi import ffi, lib, libc, string
from .errors import Error

# ---------------------------------------------------------------------------
# Enums and flags, with the values of the C headers (checked by test_layout).


class ObjType(enum.IntEnum):
    """The type of the object a capability names (capmem_obj_type_t)."""

    NONE = lib.CAPMEM_OBJ_NONE
    UNTYPED = lib.CAPMEM_OBJ_UNTYPED
    FRAME = lib.CAPMEM_OBJ_FRAME
    KOBJ = lib.CAPMEM_OBJ_KOBJ
    RAM_SESSION = lib.CAPMEM_OBJ_RAM_SESSION
    DATASPACE = lib.CAPMEM_OBJ_DATASPACE
    REGION_MAP = lib.CAPMEM_OBJ_REGION_MAP
    USER = lib.CAPMEM_OBJ_USER
    BANK = lib.CAPMEM_OBJ_BANK
    BANK_NODE = lib.CAPMEM_OBJ_BANK_NODE


class Rights(enum.IntFlag):
    """Capability rights (read, write, grant)."""

    NONE = 0
    READ = lib.CAPMEM_RIGHT_READ
    WRITE = lib.CAPMEM_RIGHT_WRITE
    GRANT = lib.CAPMEM_RIGHT_GRANT
    ALL = lib.CAPMEM_RIGHTS_ALL


class Access(enum.IntEnum):
    """Access types of faults and touches (capmem_rm_access_t)."""

    READ = lib.CAPMEM_RM_READ
    WRITE = lib.CAPMEM_RM_WRITE
    EXEC = lib.CAPMEM_RM_EXEC

    def __str__(self):
        return string(lib.capmem_rm_access_name(self))


class DsKind(enum.IntEnum):
    """What a dataspace is (capmem_ds_kind_t)."""

    RAM = lib.CAPMEM_DS_RAM
    ALIAS_DEPENDENT = lib.CAPMEM_DS_ALIAS_DEPENDENT
    ALIAS_FIRST_CLASS = lib.CAPMEM_DS_ALIAS_FIRST_CLASS
    MANAGED = lib.CAPMEM_DS_MANAGED
    BANK_FRAME = lib.CAPMEM_DS_BANK_FRAME

    def __str__(self):
        return string(lib.capmem_ds_kind_name(self))


class UntypedPolicy(enum.IntEnum):
    """Built-in placement policies of untyped memory."""

    WATERMARK = lib.CAPMEM_UNTYPED_WATERMARK
    RANGE = lib.CAPMEM_UNTYPED_RANGE
    BUDDY = lib.CAPMEM_UNTYPED_BUDDY
    INHERIT = lib.CAPMEM_UNTYPED_INHERIT


class Backing(enum.IntEnum):
    """What backs an arena's bytes."""

    MEMFD = lib.CAPMEM_BACKING_MEMFD
    ANON_SHARED = lib.CAPMEM_BACKING_ANON_SHARED


EventKind = enum.IntEnum(
    "EventKind",
    sorted(
        ((name[len("CAPMEM_EVENT_"):], getattr(lib, name))
         for name in dir(lib)
         if name.startswith("CAPMEM_EVENT_")
         and name not in ("CAPMEM_EVENT_ALL", "CAPMEM_EVENT_KIND_COUNT")),
        key=lambda item: item[1],
    ),
)
EventKind.__doc__ = "Event kinds (capmem_event_kind_t); str() gives the library's name."
EventKind.__str__ = lambda self: string(lib.capmem_event_kind_name(self))
EventKind.mask = property(lambda self: 1 << int(self), doc="the kind's mask bit")

ANYWHERE = 0xFFFFFFFFFFFFFFFF
EVENT_ALL = lib.CAPMEM_EVENT_ALL


def _policy_value(policy):
    if isinstance(policy, str):
        try:
            return UntypedPolicy[policy.upper()]
        except KeyError:
            raise ValueError(f"unknown untyped policy {policy!r}") from None
    return UntypedPolicy(policy)


def _label(text):
    return ffi.NULL if text is None else ffi.new("char[]", str(text).encode("utf-8"))


# ---------------------------------------------------------------------------
# Snapshots: frozen dataclasses made from the C info structs.


@dataclasses.dataclass(frozen=True)
class CapInfo:
    cap: "Cap"
    type: ObjType
    rights: Rights
    original: bool
    parent: "Cap"
    children: int
    object_id: int
    name: str
    depth: int = 0


@dataclasses.dataclass(frozen=True)
class DeviceInfo:
    id: int
    phys: int
    size: int
    backing_offset: int


@dataclasses.dataclass(frozen=True)
class UntypedInfo:
    phys: int
    offset: int
    size_bits: int
    device: bool
    policy: str
    free_bytes: int
    largest_free: int
    watermark: int
    children: int
    full: bool

    @property
    def size(self):
        return 1 << self.size_bits


@dataclasses.dataclass(frozen=True)
class ObjectInfo:
    type: ObjType
    phys: int
    offset: int
    size_bits: int
    device: bool

    @property
    def size(self):
        return 1 << self.size_bits


@dataclasses.dataclass(frozen=True)
class AccountInfo:
    ref: "Account"
    quota: int
    used: int
    avail: int
    lent: int
    donation: int
    records_used: int
    records_capacity: int
    caps_limit: int
    caps_used: int
    upgrade_step: int
    upgrades: int
    expanding: bool
    is_root: bool
    label: str


@dataclasses.dataclass(frozen=True)
class DataspaceInfo:
    kind: DsKind
    size: int
    phys: int
    offset: int
    writable: bool
    rights: Rights


@dataclasses.dataclass(frozen=True)
class RegionMapInfo:
    client: "Account"
    size: int
    regions: int
    donation: int
    records_used: int
    records_capacity: int
    upgrade_step: int
    upgrades: int
    faults: int
    expanding: bool
    has_handler: bool
    label: str
    real_base: int = 0  # where the map is mapped in real mode, or 0


@dataclasses.dataclass(frozen=True)
class FaultState:
    """A region map's fault state (Genode's Region_map::State)."""

    faulted: bool
    pending: bool
    unresolved: bool
    access: Access
    address: int
    faults: int


@dataclasses.dataclass(frozen=True)
class Region:
    """One attachment of a region map."""

    address: int
    size: int
    offset: int
    writable: bool
    executable: bool
    managed: bool


@dataclasses.dataclass(frozen=True)
class KernelInfo:
    """The kernel heap of per-frame records (capmem/kernel.h)."""

    strategy: str
    record_size: int
    image_frames: int
    boot_heap_frames: int
    heap_frames: int
    borrowed_frames: int
    released_frames: int
    records_capacity: int
    records_used: int
    ram_records: int
    device_records: int
    device_reserve: int
    kernel_frames: int
    boot_ended: bool


@dataclasses.dataclass(frozen=True)
class KernelFrame:
    """One frame's record in the kernel heap."""

    phys: int
    type: int
    flags: int
    alloc_count: int
    device: int
    record_phys: int
    owned: bool


@dataclasses.dataclass(frozen=True)
class BankInfo:
    """A space bank: each per-type figure is a dict {"frame": n, "node": n}."""

    limit: dict
    used: dict
    own: dict
    avail: dict
    effective: dict
    depth: int
    children: int
    rights: int
    is_prime: bool
    is_kernel: bool


@dataclasses.dataclass(frozen=True)
class Fault:
    """A fault as a fault handler sees it; ``rm`` is the map that faulted."""

    rm: "RegionMap"
    address: int
    access: Access

    @property
    def arena(self):
        return self.rm.arena


@dataclasses.dataclass(frozen=True)
class Event:
    """One event (see capmem/inspect.h for what each kind fills)."""

    kind: EventKind
    cap: "Cap"
    other: "Cap"
    a: int
    b: int
    offset: int
    size: int
    seq: int
    message: str
    payer: "Cap" = None


# ---------------------------------------------------------------------------
# Callbacks. One C trampoline per signature, made once; the context pointer
# is an ffi.new_handle of the Python object the arena keeps.

_tls = threading.local()


def _record_callback_exception(exc):
    """Keep a callback's exception for the library call that is running."""
    _tls.exc = exc
    _tls.tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))


def _take_callback_exception():
    exc = getattr(_tls, "exc", None)
    tb = getattr(_tls, "tb", None)
    _tls.exc = None
    _tls.tb = None
    return exc, tb


def _checked_call(ptr, fn, args):
    """Call ``fn(ptr, *args)``, a libcapmem function returning capmem_err_t; raise on failure.

    An exception that a Python callback raised during the call becomes the
    ``__cause__`` of the raised error, with its traceback as text in
    ``callback_traceback``. A callback's KeyboardInterrupt or SystemExit
    (not an Exception) is raised as it is: the user's, not a fault.
    """
    _take_callback_exception()
    err = fn(ptr, *args)
    exc, tb = _take_callback_exception()
    if exc is not None and not isinstance(exc, Exception):
        raise exc  # KeyboardInterrupt, SystemExit: the user's, not a fault
    if err != 0:
        try:
            errors.check(err)
        except Error as e:
            if exc is not None:
                e.callback_traceback = tb
                raise e from exc
            raise


class _Entry:
    """What a C context pointer leads to: the callable and its arena (weakly).

    ``handle`` makes the context pointer (ffi.new_handle). The handle keeps
    the entry alive and the entry must not keep the handle (that would be a
    cycle, freed only by the garbage collector): the keeper stores the
    handle, never the entry.
    """

    __slots__ = ("arena_ref", "fn", "extra", "__weakref__")

    def __init__(self, arena, fn, extra=None):
        self.arena_ref = weakref.ref(arena)
        self.fn = fn
        self.extra = extra

    def handle(self):
        return ffi.new_handle(self)


@ffi.callback("capmem_rm_fault_result_t(capmem_arena_t *, const capmem_rm_fault_t *, void *)")
def _fault_trampoline(arena_ptr, fault, ctx):
    entry = ffi.from_handle(ctx)
    arena = entry.arena_ref()
    if arena is None:
        return lib.CAPMEM_RM_FAULT_UNRESOLVED
    try:
        rm = RegionMap(arena, fault.rm)
        resolved = entry.fn(Fault(rm, int(fault.address), Access(fault.access)))
        return lib.CAPMEM_RM_FAULT_RESOLVED if resolved else lib.CAPMEM_RM_FAULT_UNRESOLVED
    except BaseException as exc:  # noqa: B036 - nothing may cross the C frame
        _record_callback_exception(exc)
        if not isinstance(exc, Error):
            # A failure of our own, so that the library names it as the root
            # cause in the UNRESOLVED_FAULT message.
            errors.set_error(lib.CAPMEM_E_UNRESOLVED_FAULT,
                             f"Python fault handler raised {type(exc).__name__}: {exc}")
        elif lib.capmem_last_error().code != exc.code:
            # A capmem.Error the handler made itself; one raised by a library
            # call inside the handler was recorded by that call already.
            errors.set_error(exc.code, exc.message or exc.name, exc.needed or None,
                             exc.available or None)
        return lib.CAPMEM_RM_FAULT_UNRESOLVED


@ffi.callback("void(capmem_arena_t *, const capmem_event_t *, void *)")
def _event_trampoline(arena_ptr, ev, ctx):
    entry = ffi.from_handle(ctx)
    arena = entry.arena_ref()
    if arena is None:
        return
    try:
        event = Event(
            kind=EventKind(ev.kind) if ev.kind in EventKind._value2member_map_ else int(ev.kind),
            cap=arena.wrap(ev.cap, lookup=False),
            other=arena.wrap(ev.other, lookup=False),
            a=int(ev.a),
            b=int(ev.b),
            offset=int(ev.offset),
            size=int(ev.size),
            seq=int(ev.seq),
            message=string(ev.message),
            payer=arena.wrap(ev.payer, lookup=False),
        )
        entry.fn(event)
    except BaseException as exc:  # noqa: B036
        # The call that raised the event has committed already: its result
        # stands. The exception is kept on the arena and reported the way
        # Python reports exceptions it cannot raise (sys.unraisablehook).
        arena.callback_errors.append(exc)
        del arena.callback_errors[:-16]
        hook = getattr(sys, "unraisablehook", None)
        if hook is not None:
            hook(_Unraisable(exc, entry.fn))


class _Unraisable:
    """What sys.unraisablehook takes, for a callback's exception nobody can catch."""

    def __init__(self, exc, obj, where="event subscriber"):
        self.exc_type = type(exc)
        self.exc_value = exc
        self.exc_traceback = exc.__traceback__
        self.err_msg = f"Exception ignored in capmem {where}"
        self.object = obj


@ffi.callback("void(void *, void *)")
def _user_destroy_trampoline(obj, ctx):
    holder = ffi.from_handle(obj)
    try:
        if holder.fn is not None:
            holder.fn(holder.extra)
    except BaseException as exc:  # noqa: B036
        hook = getattr(sys, "unraisablehook", None)
        if hook is not None:
            hook(_Unraisable(exc, holder.fn, "user object destroy hook"))
    finally:
        arena = holder.arena_ref()
        if arena is not None:
            arena._keep.pop(id(holder), None)


@ffi.callback("int(capmem_cap_info_t *, unsigned, void *)")
def _walk_trampoline(info, depth, ctx):
    out = ffi.from_handle(ctx)
    out.append((_copy_struct(info[0]), int(depth)))
    return 0


@ffi.callback("int(uint64_t, uint64_t, bool, void *)")
def _ram_map_trampoline(phys, size, used, ctx):
    ffi.from_handle(ctx).append((int(phys), int(size), bool(used)))
    return 0


def _copy_struct(cdata):
    """A plain dict of a C struct's fields (char arrays and strings as str)."""
    out = {}
    for name, field in ffi.typeof(cdata).fields:
        value = getattr(cdata, name)
        kind = field.type.kind
        if kind == "array" and field.type.item.cname == "char":
            value = ffi.string(value).decode("utf-8", "replace")
        elif kind == "pointer" and field.type.item.cname == "char":
            value = string(value)
        elif kind == "pointer":
            value = int(ffi.cast("uintptr_t", value))
        elif field.type.cname == "_Bool":
            value = bool(value)
        out[name] = value
    return out


# ---------------------------------------------------------------------------
# The arena.


class Arena:
    """Simulated physical RAM and the machine around it (capmem/arena.h).

    Use it as a context manager, or call close(); an arena that is dropped
    without close() is destroyed when it is garbage collected.

    >>> with capmem.Arena(ram_size=16 << 20) as arena:
    ...     root = arena.ram_boot()
    """

    def __init__(self, ram_size=64 << 20, page_size=4096, phys_base=0x100000, device_window=0,
                 cap_slots=1 << 22, force_anon=False):
        self._ptr = None
        # Contexts the C side points into, kept alive here and only here.
        self._keep = {}
        self._subscriptions = {}
        self._event_handler = None
        self._fault_handlers = {}
        self._user_types = {}
        self._trace = None
        #: Exceptions raised by event subscribers (the last 16).
        self.callback_errors = []
        attr = ffi.new("capmem_arena_attr_t *")
        attr.ram_size = ram_size
        attr.page_size = page_size
        attr.phys_base = phys_base
        attr.device_window = device_window
        attr.cap_slots = cap_slots
        attr.flags = lib.CAPMEM_ARENA_FORCE_ANON if force_anon else 0
        out = ffi.new("capmem_arena_t **")
        errors.check(lib.capmem_arena_create(attr, out))
        self._ptr = out[0]

    # -- life cycle

    def close(self):
        """Destroy the arena and everything in it. Closing twice is a no-op."""
        ptr, self._ptr = self._ptr, None
        if ptr is None:
            return
        if self._trace is not None:
            self._trace.close_stream()
            self._trace = None
        lib.capmem_arena_destroy(ptr)
        # After the destroy: user objects' destroy hooks ran during it.
        self._keep.clear()
        self._subscriptions.clear()
        self._fault_handlers.clear()
        self._user_types.clear()
        self._event_handler = None

    def __del__(self):
        # Also reached for arenas caught in reference cycles (PEP 442): the
        # objects of the cycle are still intact while this runs.
        if getattr(self, "_ptr", None) is not None:
            try:
                self.close()
            except Exception:  # noqa: BLE001 - at interpreter exit, modules may be gone
                pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    @property
    def closed(self):
        return self._ptr is None

    @property
    def ptr(self):
        """The capmem_arena_t * (cffi cdata), for calling the C API directly."""
        if self._ptr is None:
            raise ValueError("the arena is closed")
        return self._ptr

    def call(self, fn, *args):
        """Call a libcapmem function that returns capmem_err_t; raise on failure.

        The arena pointer is passed first. An exception that a Python
        callback (fault handler, policy hook) raised during the call becomes
        the ``__cause__`` of the raised error, with its traceback as text in
        ``callback_traceback``.
        """
        _checked_call(self.ptr, fn, args)

    def _prune_fault_handlers(self):
        # Handlers of maps closed by other means (their account closed, a
        # revoke) go when the next handler is set, or with the arena.
        info = ffi.new("capmem_cap_info_t *")
        for key in list(self._fault_handlers):
            if lib.capmem_cap_identify(self.ptr, key, info) != 0:
                self._fault_handlers.pop(key, None)

    # -- properties

    @property
    def ram_size(self):
        return lib.capmem_arena_ram_size(self.ptr)

    @property
    def page_size(self):
        return lib.capmem_arena_page_size(self.ptr)

    @property
    def phys_base(self):
        return lib.capmem_arena_phys_base(self.ptr)

    @property
    def backing(self):
        return Backing(lib.capmem_arena_backing(self.ptr))

    @property
    def backing_name(self):
        return string(lib.capmem_backing_name(lib.capmem_arena_backing(self.ptr)))

    @property
    def fd(self):
        """The memfd (-1 for the anonymous fallback); the arena owns it."""
        return lib.capmem_arena_fd(self.ptr)

    def offset_to_phys(self, offset):
        out = ffi.new("uint64_t *")
        self.call(lib.capmem_arena_offset_to_phys, offset, out)
        return out[0]

    def phys_to_offset(self, phys):
        out = ffi.new("uint64_t *")
        self.call(lib.capmem_arena_phys_to_offset, phys, out)
        return out[0]

    def __repr__(self):
        if self._ptr is None:
            return "<capmem.Arena (closed)>"
        return (f"<capmem.Arena {self.ram_size >> 20} MiB RAM at {self.phys_base:#x}, "
                f"{self.page_size}-byte pages, {self.cap_count} capabilities>")

    # -- devices

    def add_device(self, phys, size):
        """Register a device-memory range (hot-plug); returns its DeviceInfo."""
        out = ffi.new("capmem_device_info_t *")
        self.call(lib.capmem_arena_device_add, phys, size, out)
        return DeviceInfo(**_copy_struct(out[0]))

    def remove_device(self, device):
        """Remove a device range (a DeviceInfo or its id)."""
        self.call(lib.capmem_arena_device_remove, getattr(device, "id", device))

    @property
    def devices(self):
        count = ffi.new("size_t *")
        self.call(lib.capmem_arena_devices, ffi.NULL, 0, count)
        buf = ffi.new("capmem_device_info_t[]", max(count[0], 1))
        self.call(lib.capmem_arena_devices, buf, count[0], count)
        return [DeviceInfo(**_copy_struct(buf[i])) for i in range(count[0])]

    # -- capabilities

    def wrap(self, handle, lookup=True):
        """The object for a raw handle (the class follows the handle's type).

        With lookup, a dataspace handle is asked for its kind, so aliases
        and managed dataspaces get their own classes; a stale handle then
        still gets a plain Dataspace. A 0 handle gives None.
        """
        handle = int(handle)
        if handle == 0:
            return None
        cls = _CLASS_OF_TYPE.get(handle >> 56, Cap)
        if cls is Dataspace and lookup:
            info = ffi.new("capmem_ds_info_t *")
            if lib.capmem_ds_info(self.ptr, handle, info) == 0:
                cls = _CLASS_OF_KIND.get(int(info.kind), Dataspace)
        return cls(self, handle)

    @property
    def cap_count(self):
        return lib.capmem_cap_count(self.ptr)

    def caps(self, root=None):
        """Every capability (or root's subtree) as CapInfo, parents first."""
        found = []
        handle = ffi.new_handle(found)
        self.call(lib.capmem_cap_walk, 0 if root is None else _handle(root), _walk_trampoline,
                  handle)
        return [self._cap_info(d, depth) for d, depth in found]

    def _cap_info(self, d, depth=0):
        return CapInfo(
            cap=self.wrap(d["cap"]),
            type=ObjType(d["type"]) if d["type"] < lib.CAPMEM_OBJ_TYPE_COUNT else d["type"],
            rights=Rights(d["rights"]),
            original=d["original"],
            parent=self.wrap(d["parent"], lookup=False),
            children=d["children"],
            object_id=d["object_id"],
            name=d["name"],
            depth=depth,
        )

    def user_object(self, obj, type_name="object", on_destroy=None, rights=Rights.ALL):
        """Put a Python object under capability control (a user object type).

        Returns the object's original capability (a UserCap). ``on_destroy``,
        if given, is called with ``obj`` after the call that destroyed it (or
        when the arena is destroyed). The arena keeps ``obj`` alive until then.
        """
        utype = self._user_types.get(type_name)
        if utype is None:
            name = ffi.new("char[]", type_name.encode("utf-8"))
            t = ffi.new("capmem_user_type_t *")
            t.name = name
            t.destroy = _user_destroy_trampoline
            t.ctx = ffi.NULL
            utype = self._user_types[type_name] = (t, name)
        holder = _Entry(self, on_destroy, obj)
        handle = holder.handle()
        out = ffi.new("capmem_cap_t *")
        self.call(lib.capmem_cap_create_user, utype[0], handle, int(rights), out)
        self._keep[id(holder)] = handle
        return UserCap(self, out[0])

    # -- untyped and the RAM service

    def boot_untypeds(self):
        """The boot untypeds (RAM, then device ranges), as seL4's boot info."""
        count = ffi.new("size_t *")
        self.call(lib.capmem_untyped_boot, ffi.NULL, 0, count)
        buf = ffi.new("capmem_untyped_info_t[]", max(count[0], 1))
        self.call(lib.capmem_untyped_boot, buf, count[0], count)
        return [Untyped(self, buf[i].cap) for i in range(count[0])]

    def add_device_untypeds(self, device):
        """Device untypeds for a device range registered after boot."""
        dev = getattr(device, "id", device)
        count = ffi.new("size_t *")
        buf = ffi.new("capmem_untyped_info_t[]", 64)
        self.call(lib.capmem_untyped_add_device, dev, buf, 64, count)
        return [Untyped(self, buf[i].cap) for i in range(min(count[0], 64))]

    def _ram_attr(self, root_donation, root_caps, expanding, policy):
        from .policy import recipe

        attr = ffi.new("capmem_ram_attr_t *")
        attr.root_donation = root_donation
        attr.root_caps = root_caps
        attr.flags = lib.CAPMEM_RAM_EXPANDING if expanding else 0
        attr.policy = recipe(self, policy)[0]
        return attr

    def ram_boot(self, root_donation=lib.CAPMEM_RAM_DEFAULT_DONATION, root_caps=0,
                 expanding=False, policy=None):
        """A RAM service over all RAM boot untypeds; returns its root Account.

        ``policy`` places the service's physical blocks: None (its own best
        fit), a built-in's name, or a factory of Python policies (capmem.policy).
        """
        out = ffi.new("capmem_cap_t *")
        self.call(lib.capmem_ram_boot,
                  self._ram_attr(root_donation, root_caps, expanding, policy), out)
        return Account(self, out[0])

    def ram_create(self, untypeds, root_donation=lib.CAPMEM_RAM_DEFAULT_DONATION, root_caps=0,
                   expanding=False, policy=None):
        """A RAM service over the given untypeds; returns its root Account."""
        handles = ffi.new("capmem_cap_t[]", [_handle(u) for u in untypeds] or [0])
        out = ffi.new("capmem_cap_t *")
        self.call(lib.capmem_ram_create, handles, len(untypeds),
                  self._ram_attr(root_donation, root_caps, expanding, policy), out)
        return Account(self, out[0])

    # -- kernel metadata (capmem/kernel.h)

    def kernel_boot(self, strategy="fixed", record_size=lib.CAPMEM_KERNEL_RECORD_SIZE,
                    image_frames=64, device_frames=0):
        """Boot the kernel heap: a record per frame; "fixed", "hybrid" or "conservative"."""
        attr = ffi.new("capmem_kernel_attr_t *")
        attr.strategy = KERNEL_STRATEGIES[strategy] if isinstance(strategy, str) else strategy
        attr.record_size = record_size
        attr.image_frames = image_frames
        attr.device_frames = device_frames
        self.call(lib.capmem_kernel_boot, attr)

    def kernel_end_boot(self, keep_device_frames=0):
        self.call(lib.capmem_kernel_end_boot, keep_device_frames)

    def kernel_info(self):
        out = ffi.new("capmem_kernel_info_t *")
        self.call(lib.capmem_kernel_info, out)
        d = _copy_struct(out[0])
        d["strategy"] = string(lib.capmem_kernel_strategy_name(d["strategy"]))
        return KernelInfo(**d)

    def kernel_frame(self, phys):
        out = ffi.new("capmem_kernel_frame_t *")
        self.call(lib.capmem_kernel_frame, phys, out)
        return KernelFrame(**_copy_struct(out[0]))

    # -- events and traces

    def subscribe(self, fn, kinds=None):
        """Call ``fn(event)`` for every event of ``kinds`` (EventKinds; all if None).

        Returns a Subscription (``unsubscribe()`` ends it). Events are
        delivered after the call that raised them; an exception in ``fn``
        does not undo that call: it goes to sys.unraisablehook and is kept
        in ``arena.callback_errors``.
        """
        mask = EVENT_ALL if kinds is None else _mask(kinds)
        handle = _Entry(self, fn).handle()
        out = ffi.new("capmem_subscription_t *")
        self.call(lib.capmem_subscribe, mask, _event_trampoline, handle, out)
        sub = Subscription(self, int(out[0]), fn)
        self._subscriptions[sub.id] = handle
        return sub

    def unsubscribe(self, sub):
        sid = getattr(sub, "id", sub)
        self.call(lib.capmem_unsubscribe, sid)
        self._subscriptions.pop(sid, None)

    @property
    def event_handler(self):
        """The arena's own event callback (every kind), or None; assignable."""
        return None if self._event_handler is None else ffi.from_handle(self._event_handler).fn

    @event_handler.setter
    def event_handler(self, fn):
        if fn is None:
            self.call(lib.capmem_arena_set_event_handler, ffi.NULL, ffi.NULL)
            self._event_handler = None
            return
        handle = _Entry(self, fn).handle()
        self.call(lib.capmem_arena_set_event_handler, _event_trampoline, handle)
        self._event_handler = handle

    def trace_start(self, target=None, kinds=None):
        """Record events as JSON Lines (docs/inspect.md, "Traces").

        ``target`` is a path to write to, or None to record in memory (read
        it with ``trace_stop()``, which returns the text). Returns a Trace,
        also a context manager.
        """
        if self._trace is not None:
            raise errors.InvalidArgs("a trace is being recorded already",
                                     code=lib.CAPMEM_E_INVALID_ARGS)
        trace = Trace(self, target)
        mask = EVENT_ALL if kinds is None else _mask(kinds)
        try:
            self.call(lib.capmem_trace_start, trace.stream, mask)
        except Error:
            trace.close_stream()
            raise
        self._trace = trace
        return trace

    def trace_stop(self):
        """Stop recording; return the trace's text (also for a file target)."""
        trace = self._trace
        if trace is None:
            raise errors.NotFound("no trace is being recorded", code=lib.CAPMEM_E_NOT_FOUND)
        self._trace = None
        try:
            self.call(lib.capmem_trace_stop)
        finally:
            text = trace.close_stream()
        return text

    # -- inspection

    def stats(self):
        """The statistics snapshot as a dict (resources: current, peak, total)."""
        out = ffi.new("capmem_stats_t *")
        out.size = ffi.sizeof("capmem_stats_t")
        self.call(lib.capmem_stats, out)
        d = {}
        for name, field in ffi.typeof("capmem_stats_t").fields:
            if name in ("size", "reserved"):
                continue
            v = getattr(out, name)
            d[name] = (_copy_struct(v) if field.type.cname == "capmem_stat_t" else int(v))
        return d

    # -- dumps (docs/inspect.md, "Dumps")

    def dump_as(self, format="text", root=None, sections=None):
        """The dump as text in ``format``: "text", "json", "dot" or "svg".

        ``root`` (a capability) limits it to that object's subtree;
        ``sections`` is a list of section names ("caps", "untyped", "ram",
        "phys", "rm", "kernel", "stats") or None for all.
        """
        fmt = DUMP_FORMATS[format] if isinstance(format, str) else int(format)
        opts = ffi.new("capmem_dump_opts_t *")
        opts.size = ffi.sizeof("capmem_dump_opts_t")
        opts.format = fmt
        opts.sections = _sections(sections)
        opts.root = 0 if root is None else _handle(root)
        bufp = ffi.new("char **")
        sizep = ffi.new("size_t *")
        stream = libc.open_memstream(bufp, sizep)
        if stream == ffi.NULL:
            raise errors.HostNoMem("open_memstream failed", code=lib.CAPMEM_E_HOST_NOMEM)
        try:
            self.call(lib.capmem_dump_ex, stream, opts)
        finally:
            libc.fclose(stream)
            text = ffi.string(bufp[0], sizep[0]).decode("utf-8", "replace")
            libc.free(bufp[0])
        return text

    def dump(self, root=None, sections=None):
        """The JSON dump as Python dicts and lists (docs/dump.schema.json)."""
        return json.loads(self.dump_as("json", root, sections))

    def _repr_svg_(self):
        """The arena's picture, shown inline by notebooks (IPython/Jupyter)."""
        return self.dump_as("svg")

    def check(self):
        """Run the invariant checker; raise Corrupt (with the reason) if one is broken."""
        why = ffi.new("char[]", 512)
        self.call(lib.capmem_check, why, 512)

    def validate(self):
        """True if every invariant holds (capmem_check), else False."""
        try:
            self.check()
        except errors.Corrupt:
            return False
        return True


DUMP_FORMATS = {
    "text": lib.CAPMEM_DUMP_TEXT,
    "json": lib.CAPMEM_DUMP_JSON,
    "dot": lib.CAPMEM_DUMP_DOT,
    "svg": lib.CAPMEM_DUMP_SVG,
}
DUMP_SECTIONS = {
    "caps": lib.CAPMEM_DUMP_CAPS,
    "untyped": lib.CAPMEM_DUMP_UNTYPED,
    "ram": lib.CAPMEM_DUMP_RAM,
    "phys": lib.CAPMEM_DUMP_PHYS,
    "rm": lib.CAPMEM_DUMP_RM,
    "kernel": lib.CAPMEM_DUMP_KERNEL,
    "stats": lib.CAPMEM_DUMP_STATS,
}


def _sections(sections):
    if sections is None:
        return lib.CAPMEM_DUMP_ALL
    if isinstance(sections, int):
        return sections
    mask = 0
    for name in sections:
        try:
            mask |= DUMP_SECTIONS[name]
        except KeyError:
            raise ValueError(f"unknown dump section {name!r}") from None
    return mask


KERNEL_STRATEGIES = {
    "fixed": lib.CAPMEM_KERNEL_FIXED,
    "hybrid": lib.CAPMEM_KERNEL_HYBRID,
    "conservative": lib.CAPMEM_KERNEL_CONSERVATIVE,
}
BANK_TYPES = {"frame": lib.CAPMEM_BANK_FRAME, "node": lib.CAPMEM_BANK_NODE}
BANK_UNLIMITED = lib.CAPMEM_BANK_UNLIMITED


def _mask(kinds):
    if isinstance(kinds, int):
        return 1 << int(kinds) if isinstance(kinds, EventKind) else int(kinds)
    mask = 0
    for k in kinds:
        mask |= 1 << int(EventKind[k.upper()] if isinstance(k, str) else k)
    return mask


def _handle(obj):
    if isinstance(obj, Cap):
        return obj.handle
    raise TypeError(f"expected a capmem capability object, got {type(obj).__name__}")


class Subscription:
    """An event subscription; ``unsubscribe()`` ends it."""

    def __init__(self, arena, sid, fn):
        self.arena = arena
        self.id = sid
        self.fn = fn

    def unsubscribe(self):
        self.arena.unsubscribe(self)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if not self.arena.closed and self.id in self.arena._subscriptions:
            self.unsubscribe()


class Trace:
    """A trace being recorded (``Arena.trace_start``)."""

    def __init__(self, arena, target):
        self.arena = arena
        self.path = None if target is None else str(target)
        self._bufp = None
        self._sizep = None
        if self.path is None:
            self._bufp = ffi.new("char **")
            self._sizep = ffi.new("size_t *")
            self.stream = libc.open_memstream(self._bufp, self._sizep)
        else:
            self.stream = libc.fopen(self.path.encode(), b"w")
        if self.stream == ffi.NULL:
            raise errors.SystemCallError(f"cannot open the trace stream {self.path or ''}",
                                         code=lib.CAPMEM_E_SYSTEM)
        self.text = None

    def close_stream(self):
        if self.stream is None:
            return self.text
        libc.fclose(self.stream)
        self.stream = None
        if self._bufp is not None:
            self.text = ffi.string(self._bufp[0], self._sizep[0]).decode("utf-8")
            libc.free(self._bufp[0])
        else:
            with open(self.path, encoding="utf-8") as f:
                self.text = f.read()
        return self.text

    def stop(self):
        return self.arena.trace_stop()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.stream is not None and self.arena._trace is self:
            self.arena.trace_stop()


# ---------------------------------------------------------------------------
# Capabilities.


class Cap:
    """A capability: an opaque handle with rights, in the derivation tree.

    Objects compare equal when they are the same handle of the same arena;
    ``handle`` is the raw 64-bit integer.
    """

    __slots__ = ("arena", "handle")

    def __init__(self, arena, handle):
        self.arena = arena
        self.handle = int(handle)

    def __eq__(self, other):
        return (isinstance(other, Cap) and other.arena is self.arena
                and other.handle == self.handle)

    def __hash__(self):
        return hash((id(self.arena), self.handle))

    def __repr__(self):
        detail = ""
        if not self.arena.closed:
            try:
                detail = self._describe()
            except Error:
                detail = "(stale)"
        return f"<capmem.{type(self).__name__} {self.handle:#018x}{' ' if detail else ''}{detail}>"

    def _describe(self):
        return ""

    @property
    def type(self):
        """The object type encoded in the handle (no lookup)."""
        t = self.handle >> 56
        return ObjType(t) if t < lib.CAPMEM_OBJ_TYPE_COUNT else t

    def identify(self):
        """CapInfo: type, rights, original, parent, children, object id."""
        out = ffi.new("capmem_cap_info_t *")
        self.arena.call(lib.capmem_cap_identify, self.handle, out)
        return self.arena._cap_info(_copy_struct(out[0]))

    @property
    def rights(self):
        return self.identify().rights

    @property
    def parent(self):
        return self.identify().parent

    @property
    def alive(self):
        """False once the handle is stale (its object or capability is gone)."""
        out = ffi.new("capmem_cap_info_t *")
        return (not self.arena.closed
                and lib.capmem_cap_identify(self.arena.ptr, self.handle, out) == 0)

    def mint(self, rights):
        """Derive a child capability with a subset of the rights (needs GRANT)."""
        out = ffi.new("capmem_cap_t *")
        self.arena.call(lib.capmem_cap_mint, self.handle, int(rights), out)
        return self.arena.wrap(out[0])

    def delete(self):
        """Delete this capability (the original destroys the object)."""
        self.arena.call(lib.capmem_cap_delete, self.handle)

    def revoke(self):
        """Delete every capability derived from this one."""
        self.arena.call(lib.capmem_cap_revoke, self.handle)

    def tree(self):
        """This capability and its descendants as CapInfo, parents first."""
        return self.arena.caps(self)

    def dump(self, sections=None):
        """The JSON dump of this object's subtree, as dicts and lists."""
        return self.arena.dump(root=self, sections=sections)

    def dump_as(self, format="text", sections=None):
        return self.arena.dump_as(format, root=self, sections=sections)

    def _repr_svg_(self):
        return self.arena.dump_as("svg", root=self)


class UserCap(Cap):
    """A capability to a Python object (``Arena.user_object``)."""

    __slots__ = ()

    @property
    def object(self):
        """The Python object behind the capability (the handle is checked first)."""
        info = self.identify()
        utype = self.arena._user_types.get(info.name)
        if utype is None:
            raise errors.WrongType("not a user object of this binding",
                                   code=lib.CAPMEM_E_WRONG_TYPE)
        out = ffi.new("void **")
        self.arena.call(lib.capmem_cap_user_object, self.handle, utype[0], 0, out)
        return ffi.from_handle(out[0]).extra


class Untyped(Cap):
    """Untyped memory: seL4's retype (capmem/untyped.h)."""

    __slots__ = ()

    def info(self):
        out = ffi.new("capmem_untyped_info_t *")
        self.arena.call(lib.capmem_untyped_info, self.handle, out)
        d = _copy_struct(out[0])
        del d["cap"]
        return UntypedInfo(**d)

    def _describe(self):
        i = self.info()
        return f"{'device ' if i.device else ''}{i.phys:#x} 2^{i.size_bits} {i.policy}"

    phys = property(lambda self: self.info().phys)
    size = property(lambda self: self.info().size)
    size_bits = property(lambda self: self.info().size_bits)
    device = property(lambda self: self.info().device)
    policy = property(lambda self: self.info().policy)
    free_bytes = property(lambda self: self.info().free_bytes)
    largest_free = property(lambda self: self.info().largest_free)
    watermark = property(lambda self: self.info().watermark)
    children = property(lambda self: self.info().children)
    full = property(lambda self: self.info().full)

    def retype(self, type, size_bits, count=1, offset=None, child_policy=UntypedPolicy.WATERMARK):
        """Create ``count`` objects of 2**size_bits bytes; returns their objects.

        ``type`` is ObjType.UNTYPED, FRAME or KOBJ (or "untyped", "frame",
        "kobj"); ``offset`` None lets the policy place them.
        """
        if isinstance(type, str):
            type = ObjType[type.upper()]
        attr = ffi.new("capmem_retype_attr_t *")
        attr.type = int(type)
        attr.size_bits = size_bits
        attr.count = count
        attr.offset = ANYWHERE if offset is None else offset
        attr.child_policy = int(_policy_value(child_policy))
        # Room for every object asked for, within the library's bound (a
        # count beyond it is the library's to refuse, with its numbers).
        n = min(max(int(count), 1), lib.CAPMEM_RETYPE_MAX_COUNT)
        dest = ffi.new("capmem_cap_t[]", n)
        self.arena.call(lib.capmem_untyped_retype, self.handle, attr, dest, n)
        return [self.arena.wrap(dest[i]) for i in range(n)]

    def untyped(self, size_bits, policy=UntypedPolicy.WATERMARK, offset=None):
        """One child untyped of 2**size_bits bytes with the given policy."""
        return self.retype(ObjType.UNTYPED, size_bits, 1, offset, policy)[0]

    def frame(self, size_bits=12, offset=None):
        return self.retype(ObjType.FRAME, size_bits, 1, offset)[0]

    def kobj(self, size_bits, offset=None):
        return self.retype(ObjType.KOBJ, size_bits, 1, offset)[0]

    def copy(self):
        """seL4's copy: the original is full while the copy lives."""
        out = ffi.new("capmem_cap_t *")
        self.arena.call(lib.capmem_untyped_copy, self.handle, out)
        return Untyped(self.arena, out[0])

    def set_policy(self, policy):
        """Change the placement policy of a childless untyped.

        ``policy`` is a built-in one ("watermark", "range", "buddy" or an
        UntypedPolicy) or a Python policy (a capmem.Policy), whose offsets
        are relative to the untyped's first byte.
        """
        from .policy import Policy, _make_custom

        if isinstance(policy, Policy):
            size = 1 << self.info().size_bits
            alloc, entry = _make_custom(self.arena, policy, 0, size)
            try:
                self.arena.call(lib.capmem_untyped_set_policy, self.handle, 0, alloc)
            except Error:
                lib.capmem_alloc_destroy(alloc)
                raise
            return
        self.arena.call(lib.capmem_untyped_set_policy, self.handle, int(_policy_value(policy)),
                        ffi.NULL)


class Frame(Cap):
    """A frame retyped from untyped: memory you can read and write."""

    __slots__ = ()

    def info(self):
        out = ffi.new("capmem_object_info_t *")
        self.arena.call(lib.capmem_object_info, self.handle, out)
        d = _copy_struct(out[0])
        d["type"] = ObjType(d["type"])
        return ObjectInfo(**d)

    phys = property(lambda self: self.info().phys)
    size = property(lambda self: self.info().size)

    def read(self, offset, length):
        buf = ffi.new("char[]", max(length, 1))
        self.arena.call(lib.capmem_frame_read, self.handle, offset, buf, length)
        return ffi.buffer(buf, length)[:]

    def write(self, offset, data):
        data = bytes(data)
        self.arena.call(lib.capmem_frame_write, self.handle, offset, ffi.from_buffer(data),
                        len(data))


class KernelObject(Frame):
    """An opaque kernel object retyped from untyped (no bytes to read)."""

    __slots__ = ()
    read = None
    write = None


class Account(Cap):
    """A RAM session of the RAM service: an account with a quota (capmem/ram.h).

    Properties read a fresh snapshot each time (``info()`` takes one for all).
    Use an account as a context manager to close it at the block's end.
    """

    __slots__ = ()

    def info(self):
        out = ffi.new("capmem_ram_info_t *")
        self.arena.call(lib.capmem_ram_info, self.handle, out)
        d = _copy_struct(out[0])
        d["ref"] = self.arena.wrap(d["ref"], lookup=False)
        return AccountInfo(**d)

    ref = property(lambda self: self.info().ref, doc="the reference account (None for root)")
    quota = property(lambda self: self.info().quota, doc="RAM quota, donation not included")
    used = property(lambda self: self.info().used)
    avail = property(lambda self: self.info().avail)
    lent = property(lambda self: self.info().lent)
    donation = property(lambda self: self.info().donation)
    records_used = property(lambda self: self.info().records_used)
    records_capacity = property(lambda self: self.info().records_capacity)
    caps_limit = property(lambda self: self.info().caps_limit)
    caps_used = property(lambda self: self.info().caps_used)
    upgrade_step = property(lambda self: self.info().upgrade_step)
    upgrades = property(lambda self: self.info().upgrades)
    is_root = property(lambda self: self.info().is_root)
    label = property(lambda self: self.info().label)

    @property
    def expanding(self):
        return self.info().expanding

    @expanding.setter
    def expanding(self, on):
        self.set_expanding(on)

    def _describe(self):
        i = self.info()
        return f"{i.label!r} quota {i.quota} used {i.used} donation {i.donation}"

    def set_expanding(self, on=True, step=0):
        """Upgrade the donation by ``step`` bytes (0: keep) on OUT_OF_METADATA."""
        self.arena.call(lib.capmem_ram_set_expanding, self.handle, bool(on), step)

    def open(self, quota=0, donation=lib.CAPMEM_RAM_DEFAULT_DONATION, caps=1024,
             upgrade_step=lib.CAPMEM_RAM_DEFAULT_UPGRADE, expanding=False, label=None):
        """Open a child account; this account pays donation + quota and caps + 1."""
        attr = ffi.new("capmem_ram_open_attr_t *")
        attr.donation = donation
        attr.quota = quota
        attr.caps = caps
        attr.upgrade_step = upgrade_step
        attr.flags = lib.CAPMEM_RAM_EXPANDING if expanding else 0
        text = _label(label)
        attr.label = text
        out = ffi.new("capmem_cap_t *")
        self.arena.call(lib.capmem_ram_open, self.handle, attr, out)
        return Account(self.arena, out[0])

    def close(self):
        """Close the account: its sessions and dataspaces go, its quota returns."""
        self.arena.call(lib.capmem_ram_close, self.handle)

    def destroy_service(self):
        """(root account) Close every session and give the RAM back to the untypeds."""
        self.arena.call(lib.capmem_ram_destroy, self.handle)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if not self.arena.closed and self.alive:
            self.close()

    def transfer(self, to, nbytes):
        """Move RAM quota to ``to`` (this account's reference account or child)."""
        self.arena.call(lib.capmem_ram_transfer, self.handle, _handle(to), nbytes)

    def transfer_caps(self, to, count):
        self.arena.call(lib.capmem_ram_transfer_caps, self.handle, _handle(to), count)

    def upgrade(self, nbytes, payer=None):
        """Add ``nbytes`` to the donation, paid by ``payer`` (self or the reference account)."""
        self.arena.call(lib.capmem_ram_upgrade, self.handle,
                        self.handle if payer is None else _handle(payer), nbytes)

    def alloc(self, size):
        """Allocate a RAM dataspace (rounded up to pages); this account pays."""
        out = ffi.new("capmem_cap_t *")
        self.arena.call(lib.capmem_ram_alloc, self.handle, size, out)
        return Dataspace(self.arena, out[0])

    def region_map(self, size, donation=lib.CAPMEM_RM_DEFAULT_DONATION,
                   upgrade_step=lib.CAPMEM_RM_DEFAULT_UPGRADE, expanding=False, label=None,
                   policy=None):
        """Open a region map of ``size`` bytes; this account pays the donation.

        ``policy`` places its "anywhere" attachments: None (the lowest free
        range), a built-in's name, or a factory of Python policies.
        """
        from .policy import recipe

        attr = ffi.new("capmem_rm_open_attr_t *")
        attr.policy = recipe(self.arena, policy)[0]
        attr.size = size
        attr.donation = donation
        attr.upgrade_step = upgrade_step
        attr.flags = lib.CAPMEM_RM_EXPANDING if expanding else 0
        text = _label(label)
        attr.label = text
        out = ffi.new("capmem_cap_t *")
        self.arena.call(lib.capmem_rm_open, self.handle, attr, out)
        return RegionMap(self.arena, out[0])

    def bank_service(self, donation=64 * 1024, frames=0):
        """A space-bank service on this account; returns its prime Bank.

        ``frames``: how many frames the prime bank may hand out (0: all the
        account can pay).
        """
        attr = ffi.new("capmem_bank_service_attr_t *")
        attr.donation = donation
        attr.frames = frames
        out = ffi.new("capmem_cap_t *")
        self.arena.call(lib.capmem_bank_service_create, self.handle, attr, out)
        return Bank(self.arena, out[0])

    def physical_map(self):
        """The service's physical map: (phys, size, used) blocks in address order."""
        blocks = []
        handle = ffi.new_handle(blocks)
        self.arena.call(lib.capmem_ram_map, self.handle, _ram_map_trampoline, handle)
        return blocks


class Dataspace(Cap):
    """A capability to a range of memory (capmem/dataspace.h)."""

    __slots__ = ()

    def info(self):
        out = ffi.new("capmem_ds_info_t *")
        self.arena.call(lib.capmem_ds_info, self.handle, out)
        d = _copy_struct(out[0])
        d["kind"] = DsKind(d["kind"])
        d["rights"] = Rights(d["rights"])
        return DataspaceInfo(**d)

    kind = property(lambda self: self.info().kind)
    size = property(lambda self: self.info().size)
    phys = property(lambda self: self.info().phys)
    offset = property(lambda self: self.info().offset)
    writable = property(lambda self: self.info().writable)

    def __len__(self):
        return self.info().size

    def _describe(self):
        i = self.info()
        return f"{i.kind} of {i.size} bytes at {i.phys:#x}{'' if i.writable else ' read-only'}"

    def read(self, offset=0, length=None):
        if length is None:
            length = self.info().size - offset
        buf = ffi.new("char[]", max(length, 1))
        self.arena.call(lib.capmem_ds_read, self.handle, offset, buf, length)
        return ffi.buffer(buf, length)[:]

    def write(self, offset, data):
        data = bytes(data)
        self.arena.call(lib.capmem_ds_write, self.handle, offset, ffi.from_buffer(data),
                        len(data))

    def alias(self, session, offset=0, size=0, writable=True, first_class=False):
        """A new dataspace for a page-aligned subrange; ``session`` pays its record.

        ``first_class`` aliases keep their pages alive when the original is
        freed; dependent ones (the default) die with it.
        """
        attr = ffi.new("capmem_alias_attr_t *")
        attr.writable = bool(writable)
        attr.offset = offset
        attr.size = size
        attr.lifetime = lib.CAPMEM_ALIAS_FIRST_CLASS if first_class else lib.CAPMEM_ALIAS_DEPENDENT
        out = ffi.new("capmem_cap_t *")
        self.arena.call(lib.capmem_ds_alias, _handle(session), self.handle, attr, out)
        return Alias(self.arena, out[0])

    def free(self):
        """Free the dataspace (its quota, record and capability come back)."""
        self.arena.call(lib.capmem_ds_free, self.handle)


class Alias(Dataspace):
    """An alias: a dataspace for a subrange of another one."""

    __slots__ = ()

    @property
    def first_class(self):
        return self.info().kind == DsKind.ALIAS_FIRST_CLASS


class ManagedDataspace(Dataspace):
    """A region map used as a dataspace; it goes when its map closes."""

    __slots__ = ()
    free = None
    alias = None

    @property
    def region_map(self):
        return RegionMap(self.arena, self.identify().parent.handle)


class RegionMap(Cap):
    """A region map (an address space) in the simulated access mode."""

    __slots__ = ()

    def info(self):
        out = ffi.new("capmem_rm_info_t *")
        self.arena.call(lib.capmem_rm_info, self.handle, out)
        d = _copy_struct(out[0])
        d["client"] = self.arena.wrap(d["client"], lookup=False)
        return RegionMapInfo(**d)

    client = property(lambda self: self.info().client)
    size = property(lambda self: self.info().size)
    regions = property(lambda self: self.info().regions)
    donation = property(lambda self: self.info().donation)
    records_used = property(lambda self: self.info().records_used)
    records_capacity = property(lambda self: self.info().records_capacity)
    upgrade_step = property(lambda self: self.info().upgrade_step)
    upgrades = property(lambda self: self.info().upgrades)
    faults = property(lambda self: self.info().faults)
    expanding = property(lambda self: self.info().expanding)
    label = property(lambda self: self.info().label)

    def _describe(self):
        i = self.info()
        return f"{i.label!r} of {i.size} bytes, {i.regions} regions"

    def attach(self, ds, at=None, size=0, offset=0, writable=True, executable=False):
        """Attach a dataspace at ``at`` (None: anywhere); returns the local address."""
        attr = ffi.new("capmem_rm_attach_attr_t *")
        attr.size = size
        attr.offset = offset
        attr.at = ANYWHERE if at is None else at
        attr.writable = bool(writable)
        attr.executable = bool(executable)
        out = ffi.new("uint64_t *")
        self.arena.call(lib.capmem_rm_attach, self.handle, _handle(ds), attr, out)
        return int(out[0])

    def detach(self, address):
        self.arena.call(lib.capmem_rm_detach, self.handle, address)

    def read(self, address, length):
        buf = ffi.new("char[]", max(length, 1))
        self.arena.call(lib.capmem_rm_read, self.handle, address, buf, length)
        return ffi.buffer(buf, length)[:]

    def write(self, address, data):
        data = bytes(data)
        self.arena.call(lib.capmem_rm_write, self.handle, address, ffi.from_buffer(data),
                        len(data))

    def touch(self, address, length=1, access=Access.READ):
        if isinstance(access, str):
            access = Access[access.upper()]
        self.arena.call(lib.capmem_rm_touch, self.handle, address, length, int(access))

    def lookup(self, address):
        """The Region that contains ``address`` (NotFound if none)."""
        out = ffi.new("capmem_rm_region_t *")
        self.arena.call(lib.capmem_rm_lookup, self.handle, address, out)
        return Region(**_copy_struct(out[0]))

    @property
    def state(self):
        out = ffi.new("capmem_rm_state_t *")
        self.arena.call(lib.capmem_rm_state, self.handle, out)
        d = _copy_struct(out[0])
        del d["rm"]
        d["access"] = Access(d["access"])
        return FaultState(**d)

    @property
    def fault_handler(self):
        """The Python fault handler, or None. Assign a callable (or None).

        The handler is called as ``handler(fault)`` with a Fault; it may
        attach something (``fault.rm.attach(...)``) and return True to have
        the access retried. An exception inside it makes the fault
        unresolved: the access raises UnresolvedFault, whose ``__cause__`` is
        the exception and ``callback_traceback`` its traceback.
        """
        handle = self.arena._fault_handlers.get(self._key())
        return None if handle is None else ffi.from_handle(handle).fn

    @fault_handler.setter
    def fault_handler(self, fn):
        self.set_fault_handler(fn)

    def _key(self):
        # Handlers are kept per map (its original capability).
        return self.state_rm()

    def state_rm(self):
        out = ffi.new("capmem_rm_state_t *")
        self.arena.call(lib.capmem_rm_state, self.handle, out)
        return int(out.rm)

    def set_fault_handler(self, fn):
        key = self._key()
        self.arena._prune_fault_handlers()
        if fn is None:
            self.arena.call(lib.capmem_rm_set_fault_handler, self.handle, ffi.NULL, ffi.NULL)
            self.arena._fault_handlers.pop(key, None)
            return
        handle = _Entry(self.arena, fn).handle()
        self.arena.call(lib.capmem_rm_set_fault_handler, self.handle, _fault_trampoline, handle)
        self.arena._fault_handlers[key] = handle

    def dataspace(self):
        """The map as a dataspace (created on first use), to nest it into other maps."""
        out = ffi.new("capmem_cap_t *")
        self.arena.call(lib.capmem_rm_dataspace, self.handle, out)
        return ManagedDataspace(self.arena, out[0])

    def upgrade(self, nbytes, payer=None):
        """Add ``nbytes`` to the map's donation, paid by its client account."""
        payer = self.info().client if payer is None else payer
        self.arena.call(lib.capmem_rm_upgrade, self.handle, _handle(payer), nbytes)

    def close(self):
        key = self.state_rm() if self.alive else None
        self.arena.call(lib.capmem_rm_close, self.handle)
        self.arena._fault_handlers.pop(key, None)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if not self.arena.closed and self.alive:
            self.close()


def _limits(frames, nodes):
    lim = ffi.new("capmem_bank_limits_t *")
    lim.limit[lib.CAPMEM_BANK_FRAME] = BANK_UNLIMITED if frames is None else frames
    lim.limit[lib.CAPMEM_BANK_NODE] = BANK_UNLIMITED if nodes is None else nodes
    return lim


class Bank(Cap):
    """A space bank (Coyotos; capmem/bank.h): limits per type, charged to every ancestor."""

    __slots__ = ()

    def info(self):
        out = ffi.new("capmem_bank_info_t *")
        self.arena.call(lib.capmem_bank_info, self.handle, out)
        d = _copy_struct(out[0])
        for key in ("limit", "used", "own", "avail", "effective"):
            arr = getattr(out, key)
            d[key] = {name: int(arr[i]) for name, i in BANK_TYPES.items()}
        return BankInfo(**d)

    limit = property(lambda self: self.info().limit)
    used = property(lambda self: self.info().used)
    avail = property(lambda self: self.info().avail)

    def _describe(self):
        i = self.info()
        return f"depth {i.depth}, frames {i.used['frame']}/{i.limit['frame']}"

    def create(self, frames=None, nodes=None):
        """A sub-bank with these limits (None: unlimited)."""
        out = ffi.new("capmem_cap_t *")
        self.arena.call(lib.capmem_bank_create, self.handle, _limits(frames, nodes), out)
        return Bank(self.arena, out[0])

    def alloc(self, *types):
        """Allocate up to three objects ("frame" or "node"), all or nothing."""
        codes = [BANK_TYPES[t] if isinstance(t, str) else int(t) for t in types] or [0]
        arr = ffi.new("capmem_bank_type_t[]", codes)
        out = ffi.new("capmem_cap_t[]", max(len(types), 1))
        self.arena.call(lib.capmem_bank_alloc, self.handle, arr, len(types), out)
        return [self.arena.wrap(out[i]) for i in range(len(types))]

    def free(self, *objs):
        handles = ffi.new("capmem_cap_t[]", [_handle(o) for o in objs] or [0])
        self.arena.call(lib.capmem_bank_free, self.handle, handles, len(objs))

    def set_limits(self, frames=None, nodes=None):
        self.arena.call(lib.capmem_bank_set_limits, self.handle, _limits(frames, nodes))

    def destroy(self):
        """Destroy the bank and its sub-banks; all their objects are freed."""
        self.arena.call(lib.capmem_bank_destroy, self.handle)

    def remove(self):
        """Remove the bank; its objects go to its parent."""
        self.arena.call(lib.capmem_bank_remove, self.handle)

    def restrict(self, restrictions):
        """A copy without some rights (CAPMEM_BANK_NO_* bits)."""
        out = ffi.new("capmem_cap_t *")
        self.arena.call(lib.capmem_bank_restrict, self.handle, int(restrictions), out)
        return Bank(self.arena, out[0])

    def owns(self, obj):
        out = ffi.new("bool *")
        self.arena.call(lib.capmem_bank_owns, self.handle, _handle(obj), out)
        return bool(out[0])

    def destroy_service(self):
        """(prime bank) Destroy the bank service."""
        self.arena.call(lib.capmem_bank_service_destroy, self.handle)


class BankNode(Cap):
    """A kernel object (a node) from a space bank."""

    __slots__ = ()


_CLASS_OF_TYPE = {
    int(ObjType.UNTYPED): Untyped,
    int(ObjType.FRAME): Frame,
    int(ObjType.KOBJ): KernelObject,
    int(ObjType.RAM_SESSION): Account,
    int(ObjType.DATASPACE): Dataspace,
    int(ObjType.REGION_MAP): RegionMap,
    int(ObjType.USER): UserCap,
    int(ObjType.BANK): Bank,
    int(ObjType.BANK_NODE): BankNode,
}
_CLASS_OF_KIND = {
    int(DsKind.RAM): Dataspace,
    int(DsKind.ALIAS_DEPENDENT): Alias,
    int(DsKind.ALIAS_FIRST_CLASS): Alias,
    int(DsKind.MANAGED): ManagedDataspace,
    int(DsKind.BANK_FRAME): Dataspace,
}
