#!/bin/sh
# SPDX-License-Identifier: MIT
# Instructions per operation of one bench workload, counted by callgrind:
#   bench/callgrind.sh WORKLOAD [BUILD_DIR] [OPS]
# WORKLOAD: range-pow2 range-rand range-mixed buddy-pow2 buddy-rand
# buddy-mixed ram-alloc-free cap-identify cap-identify-forged ds-read8
# rm-fault-4096 rm-fault-large rm-read8 (see capmem_bench --help).
# Only the measured loop is counted (--toggle-collect=bench_cg_run), so the
# figure includes the loop's own few instructions and the public call.
set -eu
w=${1:?workload}
build=${2:-build}
ops=${3:-}
out=$(mktemp)
trap 'rm -f "$out"' EXIT
if [ -n "$ops" ]; then set -- --ops "$ops"; else set --; fi
line=$(valgrind --tool=callgrind --callgrind-out-file="$out" --toggle-collect=bench_cg_run \
    "$build/bench/capmem_bench" --callgrind "$w" "$@" 2>/dev/null | grep ' operations')
n=$(echo "$line" | sed 's/^[^:]*: \([0-9]*\) operations.*/\1/')
ir=$(callgrind_annotate "$out" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1; exit}')
echo "$w: $ir instructions / $n operations = $(awk "BEGIN {printf \"%.1f\", $ir / $n}") per operation"
