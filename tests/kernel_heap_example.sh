#!/bin/sh
# SPDX-License-Identifier: MIT
# examples/kernel_heap prints exactly tests/kernel_heap.expected: every
# number of the three-strategy scenario (frames reserved at boot, the prime
# bank's limit, which step fails and why) is asserted.
# Usage: kernel_heap_example.sh EXAMPLE EXPECTED
set -eu
out=$("$1")
printf '%s\n' "$out" | diff -u "$2" - && echo "kernel_heap: every number as expected"
