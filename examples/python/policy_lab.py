#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""A policy lab: write a placement policy in Python, check it, replay a shipped
trace against it and against the built-in ones, and compare.

1. A worst-fit policy is written in Python (class WorstFit below).
2. The conformance suite runs on it (capmem.conform): eight properties over
   random sequences. A buggy variant is caught, with the seed that replays it.
3. A shipped trace (data/traces/, by default every malloc and free of a real
   python3 run, recorded with glibc's mtrace) is replayed by capmem-replay
   against the built-in policies, and in Python against the same built-ins
   and the Python policies, over the same span; the comparison is printed,
   and the built-ins' figures must agree between the two replays.
4. The Python policy places blocks in the RAM service, in a region map and
   in an untyped; a buggy variant is refused by the library (its answers
   are checked like a C policy's).

Run: meson devenv -C build /usr/bin/python3 $PWD/examples/python/policy_lab.py
"""
import argparse
import os
import sys

import capmem

PAGE = 4096


class WorstFit(capmem.Policy):
    """Place each block at the start of the largest free range (aligned)."""

    name = "py-worst-fit"

    def __init__(self, base, size, granule=16):
        self.base, self.span = base, size
        self.reset()

    def reset(self):
        self.free_list = [(self.base, self.span)]  # sorted (start, length)
        self.live = {}  # offset -> size of the blocks handed out

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
        self.live[at] = size
        start, length = self.free_list.pop(i)
        for piece in reversed([(start, at - start), (at + size, start + length - at - size)]):
            if piece[1]:
                self.free_list.insert(i, piece)

    def alloc_at(self, offset, size):
        for i, (start, length) in enumerate(self.free_list):
            if start <= offset and offset + size <= start + length:
                self._carve(i, offset, size)
                return
        raise capmem.NotEnoughMemory(f"[{offset:#x}, +{size:#x}) is not free")

    def free(self, offset, size):
        if self.live.get(offset) != size:
            raise capmem.NotAllocated(f"[{offset:#x}, +{size:#x}) was never handed out")
        del self.live[offset]
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


TRACES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "data", "traces")


def table(rows):
    columns = list(rows[0])
    widths = [max(len(c), *(len(_fmt(r[c])) for r in rows)) for c in columns]
    print("    " + "  ".join(c.ljust(w) for c, w in zip(columns, widths)))
    for r in rows:
        print("    " + "  ".join(_fmt(r[c]).ljust(w) for c, w in zip(columns, widths)))


def _fmt(v):
    return f"{v:.4f}" if isinstance(v, float) else str(v)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trace", default=os.path.join(TRACES, "python3_json.mtrace.gz"),
                        help="a trace capmem-replay reads (default: the shipped python3 mtrace)")
    parser.add_argument("--span", type=lambda x: int(x, 0), default=0x200000,
                        help="bytes each policy places blocks in (default 2 MiB)")
    parser.add_argument("--granule", type=lambda x: int(x, 0), default=16)
    args = parser.parse_args(argv)
    ok = True

    print("1. Conformance of the Python policies (capmem.conform, 20 sequences each):")
    for factory in (WorstFit, FirstFit, SloppyWorstFit):
        result = capmem.conform(factory, sequences=20, ops=100)
        verdict = "passes" if result.ok else "violates " + ", ".join(result.violated)
        print(f"    {factory.name:<17} {verdict}")
        for v in result.violations[:1]:
            print(f"        seed {v.seed}, {v.length} operations: {v.what}")
        ok &= result.ok == (factory is not SloppyWorstFit)

    print(f"\n2. Replaying {os.path.basename(args.trace)} over {args.span:#x} bytes:")
    ops = capmem.read_trace(args.trace)
    print(f"    {len(ops)} operations")
    tool = None
    try:
        tool = capmem.replay(args.trace, span=args.span, granule=args.granule)
        print("    capmem-replay (C, built-ins):")
        print("\n".join("    " + line for line in tool.summary.splitlines()[1:]))
    except FileNotFoundError as e:
        print(f"    (capmem-replay not found: {e})")
    rows = []
    for policy in ("watermark", "range", "buddy", WorstFit, FirstFit):
        with capmem.Allocator.from_policy(policy, 0, args.span, args.granule) as alloc:
            rows.append(capmem.replay_allocator(alloc, ops))
    print("    in Python (capmem.replay_allocator):")
    table(rows)
    if tool is not None:
        last = tool.policies()
        for row in rows[:3]:
            agree = (last[row["policy"]]["served"], last[row["policy"]]["failed"]) == (
                row["served"], row["failures"])
            ok &= agree
        print("    the built-ins served and failed the same in both replays"
              if ok else "    policy_lab: the two replays disagree")
    worst, best = rows[3], rows[1]
    print(f"    worst fit refused {worst['failures']} requests and ends with its largest free "
          f"block {worst['largest']:#x} bytes;\n    best fit (range) refused {best['failures']} "
          f"and ends with {best['largest']:#x}: worst fit breaks up the big ranges")

    print("\n3. The Python policy inside the library:")
    with capmem.Arena(ram_size=4 << 20, cap_slots=1 << 12) as arena:
        root = arena.ram_boot(policy=WorstFit)
        app = root.open(quota=1 << 20, label="app")
        a, b = app.alloc(4096), app.alloc(8192)
        print(f"    RAM service: dataspaces at {a.phys:#x} and {b.phys:#x}")
        rm = app.region_map(1 << 20, policy=WorstFit, label="worst-fit map")
        first = rm.attach(a)
        second = rm.attach(b)
        print(f"    region map: anywhere attachments at {first:#x} and {second:#x}")
        sloppy = app.region_map(1 << 20, policy=SloppyWorstFit)
        sloppy.attach(a)
        try:
            sloppy.attach(b)
            ok = False
        except capmem.PolicyError as e:
            print(f"    a buggy policy is refused: {e.name}: {e.message}")
        arena.check()
    with capmem.Arena(ram_size=1 << 20, cap_slots=1 << 10) as arena:
        ut = arena.boot_untypeds()[0].untyped(14)
        ut.set_policy(WorstFit(0, 1 << 14))
        offsets = [obj.info().offset - ut.info().offset
                   for obj in (ut.kobj(10), ut.kobj(12), ut.kobj(10))]
        print("    untyped: objects of 1, 4 and 1 KiB at " + ", ".join(f"{o:#x}" for o in offsets))
        ok &= offsets == [0, 0x1000, 0x2000]
        arena.check()
    print("\nAll invariants hold." if ok else "\npolicy_lab: something did not hold")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
