# SPDX-License-Identifier: MIT
"""Run by test_faultinject.py in a child process whose CAPMEM_LIBRARY is the
test-only libcapmem_inject (the library plus exported fault-injection
hooks). For each host resource kind, the n-th operation of that kind fails,
for n = 1, 2, ... until the scenario runs through: every injected failure
must surface as HostNoMem or SystemCallError from the binding (never a
crash, never another error), and the arena must pass its checker once
injection is disarmed. Prints one line per kind: "KIND runs=N failures=F".
"""
import os
import sys

import cffi

import capmem

hooks_ffi = cffi.FFI()
hooks_ffi.cdef("""
void capmem_test_inject_fail(int kind, uint64_t nth);
uint64_t capmem_test_inject_count(int kind);
void capmem_test_inject_reset(void);
""")
hooks = hooks_ffi.dlopen(os.environ["CAPMEM_LIBRARY"])
KINDS = {"malloc": 0, "mmap": 1, "memfd": 2, "ftruncate": 3}
CLEAN = (capmem.HostNoMem, capmem.SystemCallError)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_policy import FirstFit  # noqa: E402


def scenario(state):
    arena = state["arena"] = capmem.Arena(ram_size=2 << 20, cap_slots=1 << 10)
    events = []
    arena.subscribe(events.append)
    trace = arena.trace_start()
    ut = arena.boot_untypeds()
    small = ut[0].untyped(14)
    small.set_policy(FirstFit(1 << 14))
    small.kobj(10)
    root = arena.ram_create(ut[1:])
    app = root.open(quota=256 << 10, caps=64, expanding=True)
    ds = app.alloc(4 * 4096)
    ds.alias(app, size=4096, first_class=True)
    rm = app.region_map(1 << 20, donation=8192, expanding=True)
    rm.fault_handler = lambda f: f.rm.attach(ds, at=f.address & ~0xFFF, size=4096) or True
    rm.write(0x3000, b"x")
    inner = app.region_map(64 << 10)
    rm.attach(inner.dataspace(), at=0x80000)
    for i in range(130):  # upgrades of the expanding map
        rm.attach(ds, size=4096)
    trace.stop()
    app.close()


def run(kind):
    runs = failures = 0
    n = 1
    while True:
        runs += 1
        hooks.capmem_test_inject_reset()
        hooks.capmem_test_inject_fail(KINDS[kind], n)
        state = {}
        failed = False
        try:
            scenario(state)
        except CLEAN:
            failed = True
            failures += 1
        reached = hooks.capmem_test_inject_count(KINDS[kind]) >= n
        hooks.capmem_test_inject_reset()
        arena = state.get("arena")
        if arena is not None:
            arena.check()
            arena.close()
        if not failed and not reached:
            return runs, failures
        n += 1


for kind in sys.argv[1:]:
    runs, failures = run(kind)
    print(f"{kind} runs={runs} failures={failures}")
