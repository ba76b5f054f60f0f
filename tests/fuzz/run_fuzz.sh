#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Run the libFuzzer harness for a bounded time on a scratch copy of the seed
# corpus (the checked-in corpus is never modified). Usage: run_fuzz.sh BIN CORPUS
set -euo pipefail
bin=$1
seeds=$2
secs=${CAPMEM_FUZZ_SECONDS:-60}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/corpus" "$work/artifacts"
cp "$seeds"/* "$work/corpus/"
status=0
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
    "$bin" -max_total_time="$secs" -max_len="${CAPMEM_FUZZ_MAX_LEN:-1024}" -timeout=30 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$work/artifacts/" "$work/corpus" >"$work/log" 2>&1 ||
    status=$?
grep -E "^#[0-9]+ +(INITED|DONE)|stat::number_of_executed_units|ERROR|fuzz_ops:|SUMMARY" \
    "$work/log" || true
if [ "$status" -ne 0 ] || ls "$work/artifacts"/* >/dev/null 2>&1; then
    tail -60 "$work/log"
    for f in "$work/artifacts"/*; do
        [ -e "$f" ] && echo "fuzz: failing input saved as $f: $(xxd -p "$f" | head -c 400)"
    done
    exit 1
fi
echo "fuzz: no crash, leak or invariant violation in ${secs}s"
