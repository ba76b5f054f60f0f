# SPDX-License-Identifier: MIT
"""Event subscribers and traces from Python."""
import json

import pytest

import capmem


def test_subscriber_sees_events_after_the_call(arena, root):
    events = []
    sub = arena.subscribe(events.append)
    app = root.open(quota=8192, label="app")
    ds = app.alloc(4096)
    kinds = [e.kind for e in events]
    assert kinds == [capmem.EventKind.DONATE, capmem.EventKind.DS_ALLOC]
    donate, alloc = events
    assert donate.cap == app and donate.other == root and donate.b == 8192
    assert alloc.cap == ds and alloc.a == 4096 and alloc.size == 4096
    assert alloc.seq == donate.seq + 1 and "app" in donate.message
    assert str(alloc.kind) == "dataspace alloc"
    sub.unsubscribe()
    app.close()
    assert len(events) == 2


def test_subscription_filters_kinds_and_is_a_context_manager(arena, root):
    got = []
    with arena.subscribe(got.append, kinds=[capmem.EventKind.TRANSFER, "upgrade"]):
        app = root.open(quota=8192, donation=8192)
        root.transfer(app, 4096)
        app.upgrade(8192)
    root.transfer(app, 4096)
    assert [e.kind for e in got] == [capmem.EventKind.TRANSFER, capmem.EventKind.UPGRADE]
    assert got[0].a == 4096
    assert capmem.EventKind.TRANSFER.mask == 1 << 4


def test_event_handler_property_replaces_and_removes(arena, root):
    first, second = [], []
    arena.event_handler = first.append
    assert arena.event_handler == first.append
    root.open(label="a")
    arena.event_handler = second.append
    root.open(label="b")
    arena.event_handler = None
    root.open(label="c")
    assert len(first) == 1 and len(second) == 1 and arena.event_handler is None


def test_subscriber_that_raises_does_not_undo_the_call(arena, root, monkeypatch):
    reported = []
    monkeypatch.setattr("sys.unraisablehook", reported.append)

    def broken(event):
        raise RuntimeError("subscriber bug")

    arena.subscribe(broken)
    app = root.open(quota=4096, label="still opened")
    assert app.alive and app.label == "still opened"
    assert isinstance(arena.callback_errors[-1], RuntimeError)
    assert reported and reported[0].exc_type is RuntimeError


def test_subscriber_may_call_the_library(arena, root):
    labels = []

    def on_donate(event):
        labels.append(event.cap.label)  # a call on the arena from the callback

    arena.subscribe(on_donate, kinds=[capmem.EventKind.DONATE])
    root.open(label="seen")
    assert labels == ["seen"]


def test_too_many_subscribers_is_out_of_caps(arena):
    subs = [arena.subscribe(lambda e: None) for _ in range(capmem.SUBSCRIBERS_MAX)]
    with pytest.raises(capmem.OutOfCaps):
        arena.subscribe(lambda e: None)
    for s in subs:
        s.unsubscribe()
    with pytest.raises(capmem.NotFound):
        subs[0].unsubscribe()


def test_trace_in_memory_is_json_lines(arena, root):
    trace = arena.trace_start()
    with pytest.raises(capmem.InvalidArgs):
        arena.trace_start()
    app = root.open(quota=4096, label="traced")
    app.alloc(4096)
    text = trace.stop()
    lines = [json.loads(line) for line in text.splitlines()]
    assert lines[0]["format"] == "capmem-trace"
    assert [line.get("kind") for line in lines[1:]] == ["donate", "dataspace alloc"]
    with pytest.raises(capmem.NotFound):
        arena.trace_stop()


def test_trace_to_a_file_with_kinds(arena, root, tmp_path):
    path = tmp_path / "run.jsonl"
    with arena.trace_start(path, kinds=[capmem.EventKind.DS_ALLOC]) as trace:
        app = root.open(quota=8192)
        app.alloc(4096)
        app.alloc(4096)
    assert trace.text == path.read_text()
    kinds = [json.loads(line).get("kind") for line in trace.text.splitlines()[1:]]
    assert kinds == ["dataspace alloc", "dataspace alloc"]


def test_trace_left_running_is_closed_with_the_arena(root):
    arena = root.arena
    arena.trace_start()
    root.open()
    arena.close()
    assert arena.closed
