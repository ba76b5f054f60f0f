#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# capmem run's options: --check runs nothing; --step prints the text dump
# after every step; --dump writes JSON (parsed), DOT (a digraph) and SVG
# (well-formed XML) at the end or --after a named step; --trace writes JSON
# Lines (each line parsed, one header); a failed expectation exits 1 with
# expected and actual side by side. Usage: check_options.sh CAPMEM SCENARIO_DIR
set -uo pipefail
capmem=$1
dir=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
status=0
fail() {
    echo "FAILED: $*"
    status=1
}
py=/usr/bin/python3
[ -x $py ] || py=python3

out=$("$capmem" run --check "$dir/init-budget.yaml") || fail "--check exit status"
[[ "$out" == *"13 steps, well formed"* ]] || fail "--check says: $out"
[[ "$out" != *"[1]"* ]] || fail "--check ran steps"

out=$("$capmem" run --step "$dir/buddy-halving.yaml") || fail "--step exit status"
n=$(grep -c "^== capabilities ==" <<<"$out")
[ "$n" -eq 9 ] || fail "--step printed $n dumps for 9 steps"

"$capmem" run --dump json "$tmp/s.json" "$dir/dataspace-split.yaml" >/dev/null || fail "--dump json"
$py -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["format"]=="capmem-dump", d["format"]' \
    "$tmp/s.json" || fail "the JSON dump does not parse as a capmem dump"
"$capmem" run --dump dot "$tmp/s.dot" "$dir/rm-nested.yaml" >/dev/null || fail "--dump dot"
grep -q "^digraph" "$tmp/s.dot" || fail "the DOT dump is not a digraph"
"$capmem" run --dump svg "$tmp/s.svg" --after "open fs" "$dir/init-budget.yaml" >"$tmp/out" ||
    fail "--dump svg --after"
grep -q "state written to" "$tmp/out" || fail "--after wrote nothing"
$py -c 'import sys, xml.dom.minidom as m; m.parse(sys.argv[1])' "$tmp/s.svg" || fail "SVG not XML"
"$capmem" run --dump json "$tmp/x.json" --after "no such step" "$dir/init-budget.yaml" \
    >/dev/null 2>"$tmp/err"
[ $? -eq 2 ] || fail "--after an unknown step should exit 2"
grep -q "no step has that name" "$tmp/err" || fail "--after an unknown step: $(cat "$tmp/err")"

"$capmem" run --trace "$tmp/t.jsonl" "$dir/rm-fault.yaml" >/dev/null || fail "--trace"
$py -c '
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
assert lines[0]["format"] == "capmem-trace", lines[0]
kinds = {l.get("kind") for l in lines[1:]}
assert "fault" in kinds and "attach" in kinds, kinds
' "$tmp/t.jsonl" || fail "the trace is not JSON Lines with faults and attaches"

# A wrong expectation: exit 1, the step named, expected and actual side by side.
sed 's/expect: {avail: 4480 KiB}/expect: {avail: 4 MiB}/' "$dir/init-budget.yaml" >"$tmp/wrong.yaml"
"$capmem" run "$tmp/wrong.yaml" >/dev/null 2>"$tmp/err"
[ $? -eq 1 ] || fail "a wrong expectation should exit 1"
grep -q 'step 12 "show init" differs' "$tmp/err" || fail "the failing step is not named: $(cat "$tmp/err")"
grep -Eq "avail +4 MiB \(0x400000\) +4480 KiB" "$tmp/err" || fail "no side by side: $(cat "$tmp/err")"

# A step that fails without an expectation differs too.
sed 's/    expect: DENIED//' "$dir/init-budget.yaml" >"$tmp/noexp.yaml"
"$capmem" run "$tmp/noexp.yaml" >/dev/null 2>"$tmp/err"
[ $? -eq 1 ] || fail "an unexpected error should exit 1"
grep -Eq "error +OK +DENIED" "$tmp/err" || fail "unexpected error not shown: $(cat "$tmp/err")"

# Help for every command.
for c in "--help" "run --help" "quiz --help" "help run" "help quiz"; do
    # shellcheck disable=SC2086
    "$capmem" $c | grep -q "^usage: capmem" || fail "capmem $c prints no usage"
done
[ $status -eq 0 ] && echo "options: all hold"
exit $status
