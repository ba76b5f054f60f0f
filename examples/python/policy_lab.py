#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""A policy lab: write a placement policy in Python, replay a trace against it
and against the built-in ones, and compare.

1. A worst-fit policy is written in Python (class WorstFit below).
2. A trace is recorded: a program's allocations and frees of dataspaces in a
   RAM service (a seeded workload), as libcapmem's JSON Lines trace; or, with
   ``--trace FILE``, a trace you recorded yourself (Arena.trace_start).
3. Its "dataspace alloc" and "dataspace free" events are replayed against the
   watermark, range and buddy allocators and the Python policies, each over
   the same span (smaller than the recording's RAM, so the policies are under
   pressure), and the comparison is printed.
4. The Python policy is plugged into an untyped, and a buggy variant of it is
   refused by the library (its answers are checked like a C policy's).

Run: meson devenv -C build /usr/bin/python3 $PWD/examples/python/policy_lab.py
"""
import argparse
import json
import random
import sys

import capmem

PAGE = 4096


class WorstFit(capmem.Policy):
    """Place each block at the start of the largest free range (aligned)."""

    name = "py-worst-fit"

    def __init__(self, base, size):
        self.base, self.span = base, size
        self.reset()

    def reset(self):
        self.free_list = [(self.base, self.span)]  # sorted (start, length)

    def _fits(self, start, length, size, align):
        at = -(-start // align) * align
        return at if at + size <= start + length else None

    def alloc(self, size, align):
        best = None
        for i, (start, length) in enumerate(self.free_list):
            at = self._fits(start, length, size, align)
            if at is not None and (best is None or length > self.free_list[best][1]):
                best = i
        if best is None:
            return None  # NotEnoughMemory, with the numbers
        start, length = self.free_list[best]
        at = self._fits(start, length, size, align)
        self._carve(best, at, size)
        return at

    def _carve(self, i, at, size):
        start, length = self.free_list.pop(i)
        for piece in reversed([(start, at - start), (at + size, start + length - at - size)]):
            if piece[1]:
                self.free_list.insert(i, piece)

    def alloc_at(self, offset, size):
        for i, (start, length) in enumerate(self.free_list):
            if start <= offset and offset + size <= start + length:
                self._carve(i, offset, size)
                return
        raise capmem.NotEnoughMemory(f"[{offset:#x}, +{size:#x}) is not free",
                                     code=capmem.NotEnoughMemory.code)

    def free(self, offset, size):
        ranges = sorted(self.free_list + [(offset, size)])
        merged = [ranges[0]]
        for start, length in ranges[1:]:
            last_start, last_length = merged[-1]
            if last_start + last_length == start:
                merged[-1] = (last_start, last_length + length)
            else:
                merged.append((start, length))
        self.free_list = merged

    def avail(self):
        return sum(length for _, length in self.free_list)

    def largest(self):
        return max((length for _, length in self.free_list), default=0)

    def check(self):
        for (s1, n1), (s2, _) in zip(self.free_list, self.free_list[1:]):
            if s1 + n1 > s2:
                return f"free ranges {s1:#x} and {s2:#x} overlap"
        return None

    def walk(self):
        return [(s, n, False) for s, n in self.free_list]


class FirstFit(WorstFit):
    """The lowest free range that fits: for comparison."""

    name = "py-first-fit"

    def alloc(self, size, align):
        for i, (start, length) in enumerate(self.free_list):
            at = self._fits(start, length, size, align)
            if at is not None:
                self._carve(i, at, size)
                return at
        return None


class SloppyWorstFit(WorstFit):
    """Worst fit with a bug: it forgets to take the block out of its free list."""

    name = "sloppy-worst-fit"

    def _carve(self, i, at, size):
        pass


def record_workload(seed=7, steps=600):
    """Run a seeded heap-like workload in a RAM service; return its trace text."""
    rng = random.Random(seed)
    with capmem.Arena(ram_size=8 << 20, cap_slots=1 << 12) as arena:
        root = arena.ram_boot()
        app = root.open(quota=6 << 20, expanding=True, label="workload")
        trace = arena.trace_start(kinds=[capmem.EventKind.DS_ALLOC, capmem.EventKind.DS_FREE])
        live = []
        for _ in range(steps):
            if live and rng.random() < 0.45:
                live.pop(rng.randrange(len(live))).free()
                continue
            pages = rng.choice([1, 1, 1, 2, 2, 3, 4, 8, 16, 32])
            try:
                live.append(app.alloc(pages * PAGE))
            except capmem.OutOfRam:
                live.pop(0).free()
        text = trace.stop()
        arena.check()
    return text


def parse_trace(text):
    """The (op, handle, size) of each dataspace alloc and free of a trace."""
    ops = []
    lines = text.splitlines()
    header = json.loads(lines[0])
    if header.get("format") != "capmem-trace":
        raise SystemExit("policy_lab: not a capmem trace")
    for line in lines[1:]:
        ev = json.loads(line)
        if ev["kind_id"] == capmem.EventKind.DS_ALLOC:
            ops.append(("alloc", ev["cap"], ev["size"]))
        elif ev["kind_id"] == capmem.EventKind.DS_FREE and ev["b"] == capmem.DsKind.RAM:
            ops.append(("free", ev["cap"], ev["size"]))
    return ops


def replay(alloc, ops):
    """Replay the ops against one allocator; return its figures."""
    placed = {}
    ok = failed = 0
    first_failure = None
    used = peak = 0
    for step, (op, handle, size) in enumerate(ops):
        if op == "alloc":
            try:
                placed[handle] = (alloc.alloc(size, PAGE), size)
                ok += 1
                used += size
                peak = max(peak, used)
            except capmem.NotEnoughMemory:
                failed += 1
                first_failure = step if first_failure is None else first_failure
        elif handle in placed:  # a block that could not be placed is not freed
            offset, size = placed.pop(handle)
            alloc.free(offset, size)
            used -= size
    alloc.check()
    avail, largest = alloc.avail, alloc.largest
    return {
        "policy": alloc.name,
        "placed": ok,
        "refused": failed,
        "first refusal": "-" if first_failure is None else first_failure,
        "peak KiB": peak >> 10,
        "free KiB": avail >> 10,
        "largest KiB": largest >> 10,
        "fragmentation": f"{1 - largest / avail:.2f}" if avail else "-",
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trace", help="a capmem JSON Lines trace to replay")
    parser.add_argument("--span", type=int, default=1 << 20,
                        help="bytes each policy places blocks in (default 1 MiB)")
    args = parser.parse_args(argv)

    if args.trace:
        with open(args.trace, encoding="utf-8") as f:
            text = f.read()
        source = args.trace
    else:
        text = record_workload()
        source = "a recorded seeded workload"
    ops = parse_trace(text)
    allocs = sum(1 for op in ops if op[0] == "alloc")
    print(f"Replaying {len(ops)} events ({allocs} allocations) of {source}\n"
          f"against each policy over a span of {args.span >> 10} KiB:\n")

    span = args.span
    candidates = [
        capmem.Allocator.watermark(0, span),
        capmem.Allocator.range(0, span, PAGE),
        capmem.Allocator.buddy(0, span, 12, 20),
        capmem.Allocator.custom(WorstFit(0, span), 0, span),
        capmem.Allocator.custom(FirstFit(0, span), 0, span),
    ]
    rows = []
    for alloc in candidates:
        with alloc:
            rows.append(replay(alloc, ops))
    columns = list(rows[0])
    widths = [max(len(c), *(len(str(r[c])) for r in rows)) for c in columns]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths)))
    for r in rows:
        print("  ".join(str(r[c]).ljust(w) for c, w in zip(columns, widths)))
    ok = all(r["placed"] + r["refused"] == allocs for r in rows)
    worst = rows[3]
    print(f"\nWorst fit keeps {worst['largest KiB']} KiB in one piece at the end; "
          f"best fit (range) keeps {rows[1]['largest KiB']} KiB.")

    print("\nThe same policy placing the children of an untyped (seL4 retype):")
    with capmem.Arena(ram_size=1 << 20, cap_slots=1 << 10) as arena:
        ut = arena.boot_untypeds()[0].untyped(14)
        ut.set_policy(WorstFit(0, 1 << 14))
        offsets = [obj.info().offset - ut.info().offset
                   for obj in (ut.kobj(10), ut.kobj(12), ut.kobj(10))]
        print("    objects of 1, 4 and 1 KiB at " + ", ".join(f"{o:#x}" for o in offsets))
        ok &= offsets == [0, 0x1000, 0x2000]

        print("A buggy policy (it hands the same block out twice) is refused by the library:")
        buggy = arena.boot_untypeds()[0].untyped(14)
        buggy.set_policy(SloppyWorstFit(0, 1 << 14))
        buggy.kobj(10)
        try:
            buggy.kobj(10)
            ok = False
        except capmem.PolicyError as e:
            print(f"    {e.name}: {e.message}")
        arena.check()
    print("\nAll invariants hold." if ok else "\npolicy_lab: something did not hold")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
