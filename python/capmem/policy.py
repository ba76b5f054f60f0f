# SPDX-License-Identifier: MIT
"""Placement policies: the built-in allocators, and policies written in Python.

A Python policy subclasses :class:`Policy` and answers the hooks of
``capmem_alloc_ops_t`` (capmem/alloc.h). It is plugged in through the same
vtable a C policy uses, so the library checks every answer exactly as it
checks a C policy's: an offset outside the span, misaligned, or overlapping
a live block is refused with PolicyError and changes nothing. Slow (a
Python call per hook), but the quickest way to try an idea.

Hooks (offsets are absolute within the span the policy was created for;
for an untyped, relative to its first byte):

- ``alloc(size, align) -> offset``; raise NotEnoughMemory (or return None)
  when nothing fits;
- ``alloc_at(offset, size)``; raise NotEnoughMemory when it is taken;
- ``free(offset, size)``;
- ``avail() -> int`` and ``largest() -> int``;
- ``reset()``: everything free again;
- optional ``check() -> str | None`` (the first broken invariant) and
  ``walk() -> iterable of (offset, size, used)``.

A hook that raises a capmem.Error passes its code and message on; any other
exception becomes PolicyError, with the Python traceback attached to the
error the library call raises.
"""
import dataclasses
import sys

from . import errors
from ._core import _checked_call, _Entry, _record_callback_exception
from ._ffi import ffi, lib, string
from .errors import Error


class Policy:
    """Base class of placement policies written in Python."""

    name = "python"

    def alloc(self, size, align):
        raise NotImplementedError

    def alloc_at(self, offset, size):
        raise errors.NotEnoughMemory(f"{self.name} cannot place blocks at an offset",
                                     code=lib.CAPMEM_E_NOT_ENOUGH_MEMORY)

    def free(self, offset, size):
        raise NotImplementedError

    def avail(self):
        raise NotImplementedError

    def largest(self):
        raise NotImplementedError

    def reset(self):
        raise NotImplementedError

    # Optional: check() and walk() (see the module's doc).


def _fail(exc, policy):
    """The code a hook returns for an exception (recorded as the thread's error)."""
    _record_callback_exception(exc)
    if isinstance(exc, Error) and exc.code:
        return errors.set_error(exc.code, exc.message or exc.name, exc.needed or None,
                                exc.available or None)
    return errors.set_error(lib.CAPMEM_E_POLICY,
                            f"Python policy {policy.name!r} raised {type(exc).__name__}: {exc}")


def _policy(self_ptr):
    return ffi.from_handle(self_ptr).extra


@ffi.callback("capmem_err_t(void *, uint64_t, uint64_t, uint64_t *)")
def _alloc(self_ptr, size, align, out):
    policy = _policy(self_ptr)
    try:
        offset = policy.alloc(int(size), int(align))
        if offset is None:
            return errors.set_error(lib.CAPMEM_E_NOT_ENOUGH_MEMORY,
                                    f"policy {policy.name!r} found no block of {size} bytes",
                                    int(size), int(policy.avail()))
        out[0] = int(offset)
        return 0
    except BaseException as exc:  # noqa: B036
        return _fail(exc, policy)


@ffi.callback("capmem_err_t(void *, uint64_t, uint64_t)")
def _alloc_at(self_ptr, offset, size):
    policy = _policy(self_ptr)
    try:
        policy.alloc_at(int(offset), int(size))
        return 0
    except BaseException as exc:  # noqa: B036
        return _fail(exc, policy)


@ffi.callback("capmem_err_t(void *, uint64_t, uint64_t)")
def _free(self_ptr, offset, size):
    policy = _policy(self_ptr)
    try:
        policy.free(int(offset), int(size))
        return 0
    except BaseException as exc:  # noqa: B036
        return _fail(exc, policy)


def _number(fn, policy):
    try:
        return max(0, min(int(fn()), 2**64 - 1))
    except BaseException as exc:  # noqa: B036
        # The hook has no way to fail: report it and answer 0 (nothing free).
        _record_callback_exception(exc)
        sys.unraisablehook(_unraisable(exc, policy))
        return 0


class _unraisable:
    def __init__(self, exc, obj):
        self.exc_type, self.exc_value, self.exc_traceback = type(exc), exc, exc.__traceback__
        self.err_msg = "Exception ignored in capmem Python policy"
        self.object = obj


@ffi.callback("uint64_t(const void *)")
def _avail(self_ptr):
    policy = _policy(self_ptr)
    return _number(policy.avail, policy)


@ffi.callback("uint64_t(const void *)")
def _largest(self_ptr):
    policy = _policy(self_ptr)
    return _number(policy.largest, policy)


@ffi.callback("void(void *)")
def _reset(self_ptr):
    policy = _policy(self_ptr)
    try:
        policy.reset()
    except BaseException as exc:  # noqa: B036
        _record_callback_exception(exc)
        sys.unraisablehook(_unraisable(exc, policy))


@ffi.callback("void(void *)")
def _destroy(self_ptr):
    entry = ffi.from_handle(self_ptr)
    owner = entry.arena_ref() if entry.arena_ref is not None else None
    keep = getattr(owner, "_keep", None) if owner is not None else None
    if keep is not None:
        keep.pop(id(entry), None)
    destroy = getattr(entry.extra, "destroy", None)
    if destroy is not None:
        try:
            destroy()
        except BaseException as exc:  # noqa: B036
            sys.unraisablehook(_unraisable(exc, entry.extra))


@ffi.callback("capmem_err_t(const void *, char *, size_t)")
def _check(self_ptr, why, length):
    policy = _policy(self_ptr)
    try:
        problem = policy.check()
    except BaseException as exc:  # noqa: B036
        return _fail(exc, policy)
    if problem:
        text = str(problem).encode("utf-8")[: max(int(length) - 1, 0)]
        if length > 0:
            ffi.memmove(why, text + b"\0", len(text) + 1)
        return errors.set_error(lib.CAPMEM_E_CORRUPT, str(problem))
    if length > 0:
        why[0] = b"\0"
    return 0


@ffi.callback("capmem_err_t(const void *, capmem_alloc_walk_fn, void *)")
def _walk(self_ptr, fn, ctx):
    policy = _policy(self_ptr)
    try:
        for offset, size, used in policy.walk():
            if fn(int(offset), int(size), 1 if used else 0, ctx) != 0:
                break
        return 0
    except BaseException as exc:  # noqa: B036
        return _fail(exc, policy)


class _Owner:
    """Stands in for an arena as the keeper of a standalone allocator's hooks."""

    def __init__(self):
        self._keep = {}


@ffi.callback("capmem_err_t(void *, uint64_t, uint64_t, uint64_t, void **)")
def _create(ctx, base, size, granule, self_out):
    recipe = ffi.from_handle(ctx)
    owner = recipe.arena_ref()
    factory = recipe.extra
    try:
        if owner is None:
            raise RuntimeError("the policy's owner is gone")
        policy = factory(int(base), int(size), int(granule))
        if not isinstance(policy, Policy):
            raise TypeError(f"{factory!r} made {type(policy).__name__}, not a capmem.Policy")
    except BaseException as exc:  # noqa: B036
        return _fail(exc, _Named(factory))
    entry = _Entry(owner, recipe.fn, policy)
    handle = entry.handle()
    owner._keep[id(entry)] = handle
    self_out[0] = handle
    return 0


class _Named:
    def __init__(self, obj):
        self.name = getattr(obj, "name", None) or getattr(obj, "__name__", "python")


def _ops_for(name, with_create=False, with_check=True, with_walk=True):
    """An ops table of the trampolines (and the name it points to)."""
    cname = ffi.new("char[]", str(name).encode("utf-8"))
    ops = ffi.new("capmem_alloc_ops_t *")
    ops.name = cname
    ops.alloc = _alloc
    ops.alloc_at = _alloc_at
    ops.free = _free
    ops.avail = _avail
    ops.largest = _largest
    ops.reset = _reset
    ops.destroy = _destroy
    ops.check = _check if with_check else ffi.NULL
    ops.walk = _walk if with_walk else ffi.NULL
    ops.stats = ffi.NULL
    ops.create = _create if with_create else ffi.NULL
    return ops, cname


def recipe(owner, policy):
    """A capmem_alloc_policy_t * for ``policy``, its C parts kept by ``owner``.

    ``policy`` is None or "default" (the layer's own placement), a built-in
    name ("watermark", "range", "buddy"), or a factory: a callable (a Policy
    subclass, say) called as ``factory(base, size, granule)`` whenever the
    library makes an instance (a RAM service, each region map, each
    conformance sequence), returning a Policy.
    """
    out = ffi.new("capmem_alloc_policy_t *")
    if policy is None:
        out.kind = lib.CAPMEM_ALLOC_DEFAULT
        return out
    if isinstance(policy, str):
        errors.check(lib.capmem_alloc_policy_by_name(policy.encode("utf-8"), out))
        return out
    if isinstance(policy, Policy) or not callable(policy):
        raise TypeError("a policy here is a built-in's name or a factory (a Policy subclass, or "
                        "a callable(base, size, granule) returning a Policy), not an instance")
    name = getattr(policy, "name", None) or getattr(policy, "__name__", "python")
    ops, cname = _ops_for(name, with_create=True, with_check=hasattr(policy, "check"),
                          with_walk=hasattr(policy, "walk"))
    entry = _Entry(owner, (ops, cname), policy)
    handle = entry.handle()
    owner._keep[id(entry)] = handle
    out.kind = lib.CAPMEM_ALLOC_CUSTOM
    out.ops = ops
    out.ctx = handle
    return out


def _make_custom(owner, policy, base, size):
    """A capmem_alloc_t * wrapping ``policy``; ``owner._keep`` keeps its hooks alive.

    The entry leaves ``owner._keep`` when the library destroys the policy
    (the ops' destroy hook).
    """
    ops, name = _ops_for(policy.name, with_check=hasattr(policy, "check"),
                         with_walk=hasattr(policy, "walk"))
    entry = _Entry(owner, (ops, name), policy)  # the C side points into ops and name
    handle = entry.handle()
    out = ffi.new("capmem_alloc_t **")
    errors.check(lib.capmem_alloc_create_custom_span(ops, handle, base, size, out))
    owner._keep[id(entry)] = handle
    return out[0], entry


@ffi.callback("int(uint64_t, uint64_t, capmem_block_state_t, void *)")
def _collect(offset, size, state, ctx):
    ffi.from_handle(ctx).append((int(offset), int(size), bool(state)))
    return 0


class Allocator:
    """A placement policy on its own, over an offset span (capmem/alloc.h).

    Make one with ``Allocator.watermark``, ``.range``, ``.buddy`` or
    ``.custom(policy, base, size)`` for a Python policy, whose answers the
    library checks. Use it as a context manager or call ``close()``.
    """

    def __init__(self, ptr, owner=None):
        self._ptr = ptr
        self._owner = owner

    @classmethod
    def watermark(cls, base, size):
        out = ffi.new("capmem_alloc_t **")
        errors.check(lib.capmem_alloc_create_watermark(base, size, out))
        return cls(out[0])

    @classmethod
    def range(cls, base, size, granule=1):
        out = ffi.new("capmem_alloc_t **")
        errors.check(lib.capmem_alloc_create_range(base, size, granule, out))
        return cls(out[0])

    @classmethod
    def buddy(cls, base, size, min_order, max_order):
        out = ffi.new("capmem_alloc_t **")
        errors.check(lib.capmem_alloc_create_buddy(base, size, min_order, max_order, out))
        return cls(out[0])

    @classmethod
    def from_policy(cls, policy, base, size, granule=16):
        """An instance of a recipe: a built-in's name or a factory (see ``recipe``)."""
        owner = _Owner()
        out = ffi.new("capmem_alloc_t **")
        errors.check(lib.capmem_alloc_create_policy(recipe(owner, policy), base, size, granule,
                                                    out))
        return cls(out[0], owner)

    @classmethod
    def custom(cls, policy, base=0, size=2**64 - 1):
        owner = _Owner()
        ptr, _ = _make_custom(owner, policy, base, size)
        return cls(ptr, owner)

    @property
    def ptr(self):
        if self._ptr is None:
            raise ValueError("the allocator is closed")
        return self._ptr

    def close(self):
        ptr, self._ptr = self._ptr, None
        if ptr is not None:
            lib.capmem_alloc_destroy(ptr)
        self._owner = None

    def __del__(self):
        if getattr(self, "_ptr", None) is not None:
            self.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _call(self, fn, *args):
        # As Arena.call, but a policy hook's KeyboardInterrupt is chained, not re-raised.
        _checked_call(self.ptr, fn, args)

    def alloc(self, size, align=1):
        out = ffi.new("uint64_t *")
        self._call(lib.capmem_alloc_alloc, size, align, out)
        return int(out[0])

    def alloc_at(self, offset, size):
        self._call(lib.capmem_alloc_alloc_at, offset, size)

    def free(self, offset, size):
        self._call(lib.capmem_alloc_free, offset, size)

    def reset(self):
        lib.capmem_alloc_reset(self.ptr)

    avail = property(lambda self: lib.capmem_alloc_avail(self.ptr))
    largest = property(lambda self: lib.capmem_alloc_largest(self.ptr))
    base = property(lambda self: lib.capmem_alloc_base(self.ptr))
    size = property(lambda self: lib.capmem_alloc_size(self.ptr))
    name = property(lambda self: string(lib.capmem_alloc_name(self.ptr)))

    def check(self):
        why = ffi.new("char[]", 256)
        self._call(lib.capmem_alloc_check, why, 256)

    def stats(self):
        """Fragmentation metrics as a dict (capmem_alloc_stats)."""
        out = ffi.new("capmem_alloc_stats_t *")
        out.size = ffi.sizeof("capmem_alloc_stats_t")
        self._call(lib.capmem_alloc_stats, out)
        d = {name: getattr(out, name) for name, _ in ffi.typeof(out[0]).fields
             if name not in ("size", "version", "reserved")}
        d["source"] = ("policy", "walk", "counts")[d["source"]] if d["source"] < 3 else d["source"]
        return d

    def walk(self):
        """Every block as (offset, size, used), in address order."""
        blocks = []
        self._call(lib.capmem_alloc_walk, _collect, ffi.new_handle(blocks))
        return blocks

    def free_ranges(self):
        """(range policy) the free ranges as (offset, size, False)."""
        blocks = []
        self._call(lib.capmem_alloc_free_ranges, _collect, ffi.new_handle(blocks))
        return blocks

    def __repr__(self):
        if self._ptr is None:
            return "<capmem.Allocator (closed)>"
        return (f"<capmem.Allocator {self.name} [{self.base:#x}, +{self.size:#x}) "
                f"avail {self.avail:#x}>")


# ---------------------------------------------------------------------------
# The conformance suite (capmem/conform.h).

PROPERTIES = tuple(
    string(lib.capmem_conform_property_name(i)) for i in range(lib.CAPMEM_CONFORM_PROPERTIES)
)


@dataclasses.dataclass(frozen=True)
class Violation:
    """Where a property failed: ``seed`` replays it (``conform(..., seed=s, sequences=1)``)."""

    property: str
    seed: int
    length: int
    original: int
    what: str


@dataclasses.dataclass(frozen=True)
class ConformResult:
    violations: tuple
    sequences: int
    ops: int
    seed: int
    report: str

    @property
    def ok(self):
        return not self.violations

    @property
    def violated(self):
        return [v.property for v in self.violations]


def conform(policy, seed=0, sequences=0, ops=0, base=0x100000, size=0, granule=0):
    """Run the conformance suite on a policy (a built-in's name or a factory).

    Random sequences of operations check eight properties (inside and
    aligned, no overlap, free, counts, largest, reset, check, alloc_at);
    each violation is shrunk to its shortest sequence and names the seed
    that replays it. 0 means the library's default for each number.
    """
    owner = _Owner()
    attr = ffi.new("capmem_conform_attr_t *")
    attr.seed = seed
    attr.sequences = sequences
    attr.ops = ops
    attr.base = base
    attr.size = size
    attr.granule = granule
    attr.report = ffi.NULL
    out = ffi.new("capmem_conform_result_t *")
    from ._core import _take_callback_exception

    _take_callback_exception()
    err = lib.capmem_conform_run(recipe(owner, policy), attr, out)
    _take_callback_exception()  # a policy's exceptions are its violations here
    if err != lib.CAPMEM_E_POLICY:  # POLICY: violations, described in the result
        errors.check(err)
    violations = tuple(
        Violation(PROPERTIES[i], int(out.violation[i].seed), int(out.violation[i].length),
                  int(out.violation[i].original), ffi.string(out.violation[i].what).decode())
        for i in range(lib.CAPMEM_CONFORM_PROPERTIES) if out.violated & (1 << i)
    )
    return ConformResult(violations, int(out.sequences), int(out.ops), int(out.seed),
                         ffi.string(out.report).decode("utf-8", "replace"))
