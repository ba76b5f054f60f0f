# SPDX-License-Identifier: MIT
"""Region maps: attach, detach, accesses, fault handlers in Python, nesting."""
import weakref

import pytest

import capmem


@pytest.fixture
def rm(app):
    return app.region_map(1 << 20, label="space")


def test_attach_lookup_read_write_detach(app, rm):
    ds = app.alloc(8192)
    addr = rm.attach(ds)
    assert addr == 0
    rm.write(addr + 10, b"hello")
    assert ds.read(10, 5) == b"hello" and rm.read(10, 5) == b"hello"
    region = rm.lookup(4096)
    assert region == capmem.Region(address=0, size=8192, offset=0, writable=True,
                                   executable=False, managed=False)
    at = rm.attach(ds, at=0x10000, size=4096, offset=4096, writable=False, executable=True)
    assert at == 0x10000 and rm.regions == 2
    rm.touch(at, 1, "exec")
    with pytest.raises(capmem.UnresolvedFault) as e:
        rm.write(at, b"x")
    assert e.value.address == at
    st = rm.state
    assert st.faulted and st.unresolved and st.access == capmem.Access.WRITE and str(st.access) == "write"
    rm.detach(at)
    with pytest.raises(capmem.NotFound):
        rm.lookup(at)
    info = rm.info()
    assert info.client == app and info.size == 1 << 20 and info.label == "space"
    assert info.regions == 1 and info.faults == 1 and not info.has_handler
    assert rm.size == 1 << 20 and rm.faults == 1 and rm.label == "space" and not rm.expanding
    assert rm.records_used < rm.records_capacity and rm.upgrades == 0 and rm.upgrade_step == 8192
    assert rm.client == app and rm.donation == capmem.RM_DEFAULT_DONATION


def test_fault_handler_attaches_and_resolves(app, rm):
    seen = []

    def pager(fault):
        seen.append((fault.address, fault.access, fault.rm))
        assert fault.arena is app.arena
        page = app.alloc(4096)
        fault.rm.attach(page, at=fault.address & ~0xFFF)
        return True

    rm.fault_handler = pager
    assert rm.fault_handler is pager and rm.info().has_handler
    rm.write(0x3010, b"paged")
    assert rm.read(0x3010, 5) == b"paged"
    assert seen == [(0x3010, capmem.Access.WRITE, rm)]
    assert rm.state.faults == 1 and not rm.state.unresolved
    rm.fault_handler = None
    assert rm.fault_handler is None and not rm.info().has_handler
    with pytest.raises(capmem.UnresolvedFault):
        rm.read(0x9000, 1)


def test_handler_that_declines_leaves_the_fault_unresolved(rm):
    rm.fault_handler = lambda fault: False
    with pytest.raises(capmem.UnresolvedFault) as e:
        rm.read(0x5000, 4)
    assert "did not resolve" in e.value.message and e.value.__cause__ is None


def test_handler_that_raises_is_an_unresolved_fault_with_the_traceback(arena, rm):
    def broken(fault):
        raise KeyError("no page for you")

    rm.fault_handler = broken
    with pytest.raises(capmem.UnresolvedFault) as e:
        rm.read(0x5000, 4)
    err = e.value
    assert isinstance(err.__cause__, KeyError)
    assert "KeyError" in err.message and "no page for you" in err.message
    assert "def broken" in err.callback_traceback or "broken" in err.callback_traceback
    assert "Python callback traceback" in str(err)
    assert err.address == 0x5000
    arena.check()


def test_library_error_inside_handler_is_the_root_cause(app, rm):
    def greedy(fault):
        fault.rm.attach(app.alloc(64 << 20), at=0)  # beyond app's quota
        return True

    rm.fault_handler = greedy
    with pytest.raises(capmem.UnresolvedFault) as e:
        rm.read(0, 1)
    assert "OUT_OF_RAM" in e.value.message
    assert isinstance(e.value.__cause__, capmem.OutOfRam)
    assert e.value.needed == 64 << 20


def test_handler_without_progress_is_a_fault_loop(rm):
    rm.fault_handler = lambda fault: True
    with pytest.raises(capmem.FaultLoop):
        rm.read(0x1000, 1)


def test_nested_map_faults_go_to_the_inner_handler(app, rm):
    heap = app.region_map(64 << 10, label="heap")
    faults = []

    def inner(fault):
        faults.append((fault.rm, fault.address))
        fault.rm.attach(app.alloc(4096), at=fault.address & ~0xFFF)
        return True

    heap.fault_handler = inner
    heap_ds = heap.dataspace()
    assert isinstance(heap_ds, capmem.ManagedDataspace) and heap_ds.region_map == heap
    base = rm.attach(heap_ds, at=0x80000)
    rm.write(base + 0x2010, b"nested")
    assert rm.read(base + 0x2010, 6) == b"nested"
    assert faults == [(heap, 0x2010)]
    assert rm.lookup(base).managed


def test_upgrade_close_and_context_manager(arena, app):
    with app.region_map(1 << 20, donation=4096, expanding=True) as m:
        assert m.expanding
        m.upgrade(8192)
        assert m.donation == 4096 + 8192 and m.upgrades == 1
        m.fault_handler = lambda f: False
        handler = weakref.ref(m.fault_handler)
    assert not m.alive
    assert handler() is None  # closing the map released its handler
    m2 = app.region_map(1 << 20)
    m2.close()
    with pytest.raises(capmem.InvalidCap):
        m2.close()
    arena.check()


def test_keyboard_interrupt_in_a_handler_is_raised_as_itself(arena, rm):
    def interrupted(fault):
        raise KeyboardInterrupt

    rm.fault_handler = interrupted
    with pytest.raises(KeyboardInterrupt):
        rm.read(0x5000, 1)
    assert rm.state.unresolved
    arena.check()


def test_handler_raising_a_capmem_error_of_its_own_names_it(rm):
    def picky(fault):
        raise capmem.NotFound(f"no backing page for {fault.address:#x}")

    rm.fault_handler = picky
    with pytest.raises(capmem.UnresolvedFault) as e:
        rm.read(0x7000, 1)
    assert "NOT_FOUND: no backing page for 0x7000" in e.value.message
    assert isinstance(e.value.__cause__, capmem.NotFound)
