#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Generate the standard synthetic workload of the benchmarks as a trace in
capmem-replay's text format, on standard output.

1 GiB managed as 262,144 units of 4 KiB; OPS operations (default 1,000,000)
over 2,048 slots; a splitmix64 stream seeded with 42. Each operation draws a
slot: if it is empty, allocate a block into it, else free it. Sizes, in
units of 4 KiB, by --sizes:
  pow2     2^k units, k uniform in 0..8 (4 KiB .. 1 MiB)
  uniform  1 + r % 256 units (4 KiB .. 1 MiB, in 4 KiB steps)
  mixed    half and half: one draw picks pow2 or uniform for each block
Replay with --span 1073741824 --granule 4096.

The full 1,000,000-operation trace is about 12 MB of text (3.3 MB gzipped): it is made at
test time by this script rather than stored (data/traces/README.md).
"""
import argparse
import sys

MASK = (1 << 64) - 1


class SplitMix64:
    def __init__(self, seed):
        self.s = seed & MASK

    def next(self):
        self.s = (self.s + 0x9E3779B97F4A7C15) & MASK
        z = self.s
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
        return z ^ (z >> 31)


def units(rng, sizes):
    if sizes == "mixed":
        sizes = "pow2" if rng.next() & 1 else "uniform"
    r = rng.next()
    if sizes == "pow2":
        return 1 << (r % 9)
    return 1 + r % 256


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ops", type=int, default=1_000_000)
    ap.add_argument("--slots", type=int, default=2048)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--sizes", choices=["pow2", "uniform", "mixed"], default="mixed")
    a = ap.parse_args()
    rng = SplitMix64(a.seed)
    live = [False] * a.slots
    out = sys.stdout
    out.write("# synthetic workload: %d ops over %d slots, splitmix64 seed %d, sizes %s\n"
              "# replay with --span 1073741824 --granule 4096\n"
              % (a.ops, a.slots, a.seed, a.sizes))
    for _ in range(a.ops):
        slot = rng.next() % a.slots
        if live[slot]:
            out.write("f %d\n" % slot)
        else:
            out.write("a %d %d 4096\n" % (slot, units(rng, a.sizes) * 4096))
        live[slot] = not live[slot]


if __name__ == "__main__":
    main()
