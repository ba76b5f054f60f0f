#!/bin/sh
# SPDX-License-Identifier: MIT
# capmem-replay on every shipped trace, with built-in policies and next fit
# from a shared object; CSV and summary; and bad input of every kind: a
# message with the line number, exit status 1 (2 for bad usage), never a
# crash. Usage: replay_test.sh BUILD_DIR SOURCE_DIR
set -u
build=$1
src=$2
replay="$build/tools/replay/capmem-replay"
nf="$build/examples/libnext_fit.so:next_fit_ops"
traces="$src/data/traces"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0
pass=0

ok() { pass=$((pass + 1)); }
bad() { echo "FAIL: $*"; fails=$((fails + 1)); }

# expect_ok NAME CMD...: exit 0
expect_ok() {
    name=$1
    shift
    if "$@" >"$tmp/out" 2>"$tmp/err"; then ok; else bad "$name: exit $?: $(cat "$tmp/err")"; fi
}

# expect_fail NAME STATUS PATTERN CMD...: exit STATUS and stderr matching PATTERN
expect_fail() {
    name=$1
    want=$2
    pat=$3
    shift 3
    "$@" >"$tmp/out" 2>"$tmp/err"
    got=$?
    if [ "$got" -ne "$want" ]; then
        bad "$name: exit $got, expected $want: $(cat "$tmp/err")"
    elif ! grep -q -- "$pat" "$tmp/err"; then
        bad "$name: message '$(cat "$tmp/err")' lacks '$pat'"
    else
        ok
    fi
}

# The seL4 case: watermark fails twice, the others never; CSV has every column.
expect_ok sel4 "$replay" --span 0x2000 --granule 0x400 --csv "$tmp/sel4.csv" \
    --policy watermark --policy range --policy buddy --policy "$nf" "$traces/sel4_fragmentation.txt"
grep -q '^watermark  *3  *2 ' "$tmp/out" || bad "sel4: watermark should serve 3, fail 2: $(cat "$tmp/out")"
grep -q '^next-fit  *5  *0 ' "$tmp/out" || bad "sel4: next-fit should serve 5: $(cat "$tmp/out")"
head -1 "$tmp/sel4.csv" | grep -q '^policy,op,live,served,failed,free,largest,fragmentation,align_loss$' ||
    bad "sel4: CSV header: $(head -1 "$tmp/sel4.csv")"
[ "$(grep -c '^next-fit,' "$tmp/sel4.csv")" -eq 7 ] || bad "sel4: 7 CSV rows for next-fit"

# The chart: well-formed SVG, one line and one legend entry per policy.
expect_ok svg "$replay" --span 0x2000 --granule 0x400 --svg "$tmp/sel4.svg" \
    --policy range --policy buddy --policy "$nf" "$traces/sel4_fragmentation.txt"
if command -v xmllint >/dev/null 2>&1; then
    xmllint --noout "$tmp/sel4.svg" || bad "svg: not well-formed XML"
fi
[ "$(grep -o '<polyline' "$tmp/sel4.svg" | wc -l)" -eq 3 ] || bad "svg: expected 3 lines"
for label in range buddy next-fit 'fragmentation (1 - largest / free)' operation; do
    grep -q ">$label<" "$tmp/sel4.svg" || bad "svg: no '$label' text"
done
expect_fail svg-unwritable 1 "nodir" "$replay" --svg "$tmp/nodir/x.svg" "$traces/sel4_fragmentation.txt"

# Buddy halving: every request served by buddy.
expect_ok buddy "$replay" --span 0x2000 --granule 0x400 --policy buddy "$traces/buddy_halving.txt"
grep -q '^buddy  *4  *0 ' "$tmp/out" || bad "buddy: $(cat "$tmp/out")"

# The library's own trace, and a real program's, from standard input.
gzip -dc "$traces/genode_metadata.jsonl.gz" >"$tmp/genode.jsonl"
expect_ok genode "$replay" --policy range --policy "$nf" "$tmp/genode.jsonl"
grep -q '^range  *1280  *0 ' "$tmp/out" || bad "genode: $(cat "$tmp/out")"
gzip -dc "$traces/python3_json.mtrace.gz" >"$tmp/py.mtrace"
expect_ok mtrace sh -c "\"$replay\" --span 0x1000000 --csv - - <\"$tmp/py.mtrace\""
grep -q '^buddy,' "$tmp/out" || bad "mtrace: no CSV rows on standard output"

# The synthetic workload, made now (20,000 of its 1,000,000 operations).
if python3 "$traces/gen_synthetic.py" --ops 20000 >"$tmp/syn.txt"; then
    expect_ok synthetic "$replay" --span 1073741824 --granule 4096 --policy range \
        --policy buddy --policy "$nf" "$tmp/syn.txt"
    grep -q '^range  *10' "$tmp/out" || bad "synthetic: $(cat "$tmp/out")"
else
    bad "gen_synthetic.py failed"
fi

# Bad input: the line number, status 1.
printf 'a 1 16\nbogus line here\n' >"$tmp/b1.txt"
expect_fail malformed 1 "b1.txt:2: malformed line" "$replay" "$tmp/b1.txt"
printf 'a 1 16\nf 7\n' >"$tmp/b2.txt"
expect_fail unknown-id 1 "b2.txt:2: free of '7', which was never allocated" "$replay" "$tmp/b2.txt"
printf '# a comment\na x 16\nf x\nf x\n' >"$tmp/b3.txt"
expect_fail double-free 1 "b3.txt:4: free of 'x', which was freed already" "$replay" "$tmp/b3.txt"
printf 'a x 16\na x 32\n' >"$tmp/b4.txt"
expect_fail live-again 1 "b4.txt:2: 'x' is allocated again" "$replay" "$tmp/b4.txt"
printf 'a x 0x\n' >"$tmp/b5.txt"
expect_fail bad-number 1 "b5.txt:1: malformed" "$replay" "$tmp/b5.txt"
printf 'a x 16 3\n' >"$tmp/b6.txt"
expect_fail bad-align 1 "b6.txt:1: alignment 3" "$replay" "$tmp/b6.txt"
head -3 "$tmp/genode.jsonl" >"$tmp/j.jsonl"
echo '{"seq":9,"kind":"dataspace alloc"' >>"$tmp/j.jsonl"
expect_fail json-cut 1 "j.jsonl:4: not a JSON object" "$replay" "$tmp/j.jsonl"
echo '{"format":"capmem-trace","version":7}' >"$tmp/j2.jsonl"
expect_fail json-version 1 "j2.jsonl:1: trace version 7" "$replay" "$tmp/j2.jsonl"
printf '= Start\n@ x:[0x1] + 0x10 zz\n' >"$tmp/m.mtrace"
expect_fail mtrace-bad 1 "m.mtrace:2: malformed mtrace line" "$replay" "$tmp/m.mtrace"
expect_fail no-symbol 1 "has no symbol 'nope'" "$replay" --policy "$build/examples/libnext_fit.so:nope" \
    "$traces/sel4_fragmentation.txt"
expect_fail no-object 1 "cannot load" "$replay" --policy "$tmp/missing.so:x" "$traces/sel4_fragmentation.txt"
expect_fail no-policy 1 "no built-in policy named 'best'" "$replay" --policy best "$traces/sel4_fragmentation.txt"
expect_fail no-file 1 "No such file" "$replay" "$tmp/none.txt"
expect_fail usage 2 "usage" "$replay"
expect_fail bad-granule 2 "bad option" "$replay" --granule 3 "$traces/sel4_fragmentation.txt"
printf 'a x 16\n\000\n' >"$tmp/nul.txt"
expect_fail nul 1 "nul.txt:2: a NUL byte" "$replay" "$tmp/nul.txt"
head -c 3000 /dev/urandom >"$tmp/noise.bin"
"$replay" "$tmp/noise.bin" >/dev/null 2>&1
st=$?
if [ "$st" -ne 0 ] && [ "$st" -ne 1 ]; then bad "noise: exit $st (a crash?)"; else ok; fi

echo "replay checks: $pass ok, $fails failed"
[ "$fails" -eq 0 ]
