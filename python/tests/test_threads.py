# SPDX-License-Identifier: MIT
"""Threads: the library serialises calls on an arena and cffi releases the
GIL around each call, so Python threads may share an arena, fault handlers
and event subscribers included, without deadlock."""
import threading

import capmem


def test_threads_share_an_arena_with_handlers_and_subscribers(arena, root):
    events = []
    lock = threading.Lock()

    def on_event(event):
        with lock:
            events.append((threading.current_thread().name, event.cap.handle))

    arena.subscribe(on_event, kinds=[capmem.EventKind.FAULT_RESOLVED])
    errors = []
    owner = {}

    def worker(n):
        try:
            app = root.open(quota=256 << 10, caps=64, label=f"worker{n}")
            rm = app.region_map(1 << 20)
            with lock:
                owner[rm.handle] = threading.current_thread().name

            def pager(fault):
                fault.rm.attach(app.alloc(4096), at=fault.address & ~0xFFF)
                return True

            rm.fault_handler = pager
            for i in range(20):
                rm.write(i * 4096 + n, bytes([n]) * 8)
                assert rm.read(i * 4096 + n, 8) == bytes([n]) * 8
            assert app.used == 20 * 4096
            app.close()
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(n,), name=f"worker{n}") for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors and not any(t.is_alive() for t in threads)
    # Each thread delivers its own calls' events.
    assert len(events) == 4 * 20 and len(owner) == 4
    assert all(owner[cap] == name for name, cap in events)
    arena.check()
