# SPDX-License-Identifier: MIT
"""Policies as recipes: Python policies in the RAM service and region maps,
the conformance suite, capmem-replay and traces from Python."""
import gc
import os
import weakref

import pytest

import capmem
from conftest import SOURCE_ROOT
from test_policy import FirstFit, Garbage

TRACES = SOURCE_ROOT / "data" / "traces"


def first_fit(made=None):
    """A factory of FirstFit policies (keeps what it made in ``made``)."""

    def make(base, size, granule):
        p = FirstFit(size, base)
        if made is not None:
            made.append(weakref.ref(p))
        return p

    make.name = "py-first-fit"
    return make


def test_ram_service_places_blocks_with_a_python_policy(arena):
    made = []
    root = arena.ram_boot(policy=first_fit(made))
    assert len(made) == 1 and made[0]() is not None
    app = root.open(quota=1 << 20)
    a, b = app.alloc(4096), app.alloc(4096)
    hole = a.phys
    assert b.phys == hole + 4096  # first fit: one after the other
    a.free()
    c = app.alloc(4096)
    assert c.phys == hole  # the hole is reused first
    arena.check()


def test_region_map_places_anywhere_attachments_with_a_python_policy(arena, app):
    rm = app.region_map(1 << 20, policy=first_fit())
    ds = app.alloc(8192)
    assert [rm.attach(ds), rm.attach(ds, size=4096)] == [0, 0x2000]
    rm.detach(0)
    assert rm.attach(ds, size=4096) == 0
    assert rm.attach(ds, at=0x10000, size=4096) == 0x10000  # at an address: alloc_at
    arena.check()


def test_region_map_refuses_a_python_policys_garbage(arena, app):
    rm = app.region_map(1 << 20, policy=lambda base, size, granule: Garbage(size, 0))
    ds = app.alloc(4096)
    rm.attach(ds)
    before = rm.info()
    with pytest.raises(capmem.PolicyError):
        rm.attach(ds)  # 0 again: overlaps the first region
    assert rm.info() == before
    arena.check()


def test_builtin_policies_by_name_and_errors(arena, app):
    rm = app.region_map(1 << 20, policy="buddy")
    assert rm.attach(app.alloc(4096)) == 0
    with pytest.raises(capmem.NotFound):
        app.region_map(1 << 20, policy="best-guess")
    with pytest.raises(TypeError):
        app.region_map(1 << 20, policy=FirstFit(1 << 20))  # an instance, not a factory


def test_factory_that_raises_fails_the_call_with_its_traceback(arena):
    def broken(base, size, granule):
        raise RuntimeError("no policy today")

    with pytest.raises(capmem.PolicyError) as e:
        arena.ram_boot(policy=broken)
    assert isinstance(e.value.__cause__, RuntimeError)
    assert "no policy today" in e.value.callback_traceback
    arena.check()


def test_python_policy_instances_go_with_the_arena():
    made = []
    arena = capmem.Arena(ram_size=4 << 20, cap_slots=1 << 12)
    root = arena.ram_boot(policy=first_fit(made))
    root.region_map(1 << 20, policy=first_fit(made))
    assert len(made) == 2 and all(r() is not None for r in made)
    del root
    arena.close()
    gc.collect()
    assert all(r() is None for r in made)


def test_allocator_from_policy_and_stats():
    with capmem.Allocator.from_policy("range", 0, 0x10000, 0x100) as a:
        a.alloc(0x100)
        s = a.stats()
        assert s["span"] == 0x10000 and s["used_blocks"] == 1 and s["free_bytes"] == 0xFF00
        assert s["source"] in ("policy", "walk", "counts")
    with capmem.Allocator.from_policy(first_fit(), 0x1000, 0x1000) as a:
        assert a.alloc(0x10, 0x10) == 0x1000 and a.name == "py-first-fit"
        assert a.stats()["fragmentation"] == 0.0


def test_conformance_of_builtins_and_of_a_broken_python_policy():
    assert capmem.conform("buddy", sequences=5).ok
    result = capmem.conform(lambda b, s, g: Garbage(s, b), sequences=5, ops=50)
    assert not result.ok and "no-overlap" in result.violated
    v = result.violations[0]
    again = capmem.conform(lambda b, s, g: Garbage(s, b), seed=v.seed, sequences=1, ops=50)
    assert v.property in again.violated  # the seed replays it
    assert "FAIL" in result.report and len(capmem.PROPERTIES) == 8


def test_read_trace_reads_every_shipped_format():
    assert len(capmem.read_trace(TRACES / "sel4_fragmentation.txt")) == 7
    assert len(capmem.read_trace(TRACES / "python3_json.mtrace.gz")) == 4270
    ops = capmem.read_trace(TRACES / "genode_metadata.jsonl.gz")
    assert ops[0][0] == "a" and any(op[0] == "f" for op in ops)


@pytest.mark.skipif(not os.environ.get("CAPMEM_REPLAY"), reason="CAPMEM_REPLAY is not set")
def test_replay_tool_and_the_python_replay_agree():
    trace = TRACES / "sel4_fragmentation.txt"
    result = capmem.replay(trace, span=0x2000, granule=0x400)
    last = result.policies()
    assert (last["watermark"]["served"], last["watermark"]["failed"]) == (3, 2)
    assert (last["range"]["served"], last["range"]["failed"]) == (5, 0)
    assert "watermark" in result.summary
    ops = capmem.read_trace(trace)
    for name in ("watermark", "range", "buddy"):
        with capmem.Allocator.from_policy(name, 0, 0x2000, 0x400) as a:
            row = capmem.replay_allocator(a, ops)
        assert (row["served"], row["failures"]) == (last[name]["served"], last[name]["failed"])
    text = "a x 0x100\nf x\n"
    assert capmem.replay(text, policies=["range"], span=0x1000).policies()["range"]["served"] == 1
    with pytest.raises(capmem.InvalidArgs, match=":1:"):
        capmem.replay("bogus line\n", span=0x1000)
