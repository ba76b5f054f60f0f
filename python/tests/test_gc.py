# SPDX-License-Identifier: MIT
"""Ownership and garbage collection: the arena owns everything the C side
points to; dropping it (even inside a reference cycle) releases it all."""
import gc
import os
import weakref

import capmem


def memfds():
    """The memfds this process has open (each arena has one)."""
    n = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            n += "memfd:" in os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            pass
    return n


class Pager:
    """A handler object: attaches a page of its account at each fault."""

    def __init__(self, account=None):
        self.account = account
        self.faults = 0

    def __call__(self, fault):
        self.faults += 1
        fault.rm.attach(fault.rm.client.alloc(4096), at=fault.address & ~0xFFF)
        return True


def test_handler_object_is_kept_alive_by_the_arena_only():
    arena = capmem.Arena(ram_size=4 << 20, cap_slots=1 << 12)
    app = arena.ram_boot().open(quota=1 << 20)
    rm = app.region_map(1 << 20)
    rm.fault_handler = Pager()  # nobody else holds it
    handler = weakref.ref(rm.fault_handler)
    gc.collect()
    rm.write(0x1000, b"x")  # the handler still runs
    assert handler() is not None and handler().faults == 1
    arena.close()
    assert handler() is None


def test_arena_dropped_without_close_releases_everything():
    before = memfds()
    arena = capmem.Arena(ram_size=4 << 20, cap_slots=1 << 12)
    app = arena.ram_boot().open(quota=1 << 20)
    rm = app.region_map(1 << 20)
    rm.fault_handler = Pager()
    sub = arena.subscribe(lambda e: None)
    obj = arena.user_object(object(), "thing")
    handler = weakref.ref(rm.fault_handler)
    ref = weakref.ref(arena)
    assert memfds() == before + 1
    del arena, app, rm, sub, obj  # no close(); no cycle: freed at once
    assert ref() is None and handler() is None
    assert memfds() == before


def test_arena_in_a_reference_cycle_is_collected():
    before = memfds()
    gc.disable()
    try:
        arena = capmem.Arena(ram_size=4 << 20, cap_slots=1 << 12)
        app = arena.ram_boot().open(quota=1 << 20)
        rm = app.region_map(1 << 20)
        pager = Pager(app)  # arena -> handler -> account -> arena
        rm.fault_handler = pager
        destroyed = []
        arena.user_object("file", "file", on_destroy=destroyed.append)
        handler = weakref.ref(pager)
        ref = weakref.ref(arena)
        del arena, app, rm, pager
        assert ref() is not None  # only the cycle holds it now
        assert memfds() == before + 1
        gc.collect()
    finally:
        gc.enable()
    assert ref() is None and handler() is None
    assert destroyed == ["file"]  # the user object's destroy hook ran
    assert memfds() == before


def test_objects_keep_their_arena_alive():
    def make():
        arena = capmem.Arena(ram_size=4 << 20, cap_slots=1 << 12)
        return arena.ram_boot().open(quota=8192)

    app = make()
    gc.collect()
    ds = app.alloc(4096)
    assert ds.size == 4096 and not app.arena.closed
    app.arena.check()


def test_policy_and_subscriber_are_released_with_the_arena():
    from test_policy import FirstFit

    arena = capmem.Arena(ram_size=4 << 20, cap_slots=1 << 12)
    ut = arena.boot_untypeds()[0].untyped(13)
    policy = FirstFit(0x2000)
    ut.set_policy(policy)
    seen = []
    sub = arena.subscribe(seen.append)
    p, s = weakref.ref(policy), weakref.ref(sub.fn)
    del policy, sub
    ut.kobj(10)
    assert p() is not None and seen
    seen_fn = None  # noqa: F841
    del seen
    arena.close()
    assert p() is None and s() is None


def test_deleting_an_untyped_releases_its_python_policy():
    from test_policy import FirstFit

    with capmem.Arena(ram_size=4 << 20, cap_slots=1 << 12) as arena:
        ut = arena.boot_untypeds()[0].untyped(13)
        policy = FirstFit(0x2000)
        ut.set_policy(policy)
        p = weakref.ref(policy)
        del policy
        ut.delete()
        assert p() is None and not arena._keep


def test_handler_of_a_map_closed_with_its_account_goes_at_the_next_set(arena, root):
    app = root.open(quota=1 << 20)
    rm = app.region_map(1 << 20)
    rm.fault_handler = Pager()
    handler = weakref.ref(rm.fault_handler)
    app.close()  # closes the map too
    other = root.region_map(1 << 20)
    other.fault_handler = lambda f: False
    assert handler() is None and len(arena._fault_handlers) == 1
