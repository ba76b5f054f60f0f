#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Every malformed scenario is refused with exit status 2 and a message that
# names the place (FILE:LINE:COLUMN) and what was expected. The first line
# of each file says what: "# error: LINE:COLUMN: beginning of the message".
# A crash (status above 128), any other status, or another message fails.
# Usage: check_bad.sh CAPMEM FILE...
set -uo pipefail
capmem=$1
shift
status=0
# Under meson test --setup=valgrind (which sets CAPMEM_UNDER_VALGRIND), each
# run of capmem goes under memcheck too: bad input must not leak either.
run=("$capmem")
# A Valgrind setup that traces children checks each run already (a child of
# this script then still has valgrind's preload): no second memcheck.
traced=$(bash -c 'echo "${LD_PRELOAD:-}"')
if [ -n "${CAPMEM_UNDER_VALGRIND:-}" ] && command -v valgrind >/dev/null &&
    [[ "$traced" != *vgpreload* ]]; then
    run=(valgrind --quiet --error-exitcode=99 --leak-check=full --show-leak-kinds=all
        --errors-for-leak-kinds=definite,indirect,possible "$capmem")
fi
for f in "$@"; do
    want=$(head -1 "$f" | sed -n 's/^# error: //p')
    if [ -z "$want" ]; then
        echo "$f: the first line must be '# error: LINE:COLUMN: message'"
        status=1
        continue
    fi
    err=$("${run[@]}" run "$f" 2>&1 >/dev/null)
    rc=$?
    if [ $rc -ne 2 ]; then
        echo "$f: exit status $rc, expected 2; it said: $err"
        status=1
    elif [[ "$err" != *"$f:$want"* ]]; then
        echo "$f: expected '$f:$want...'"
        echo "    got: $err"
        status=1
    else
        echo "$f: refused as expected: $err"
    fi
done
# Command-line mistakes are bad input too.
for args in "run" "run --dump xml out.txt x.yaml" "run a.yaml b.yaml" "run --bogus x.yaml" \
    "quiz" "quiz nosuchtopic" "quiz retype -n 0" "quiz retype -s minus" "quiz buddy -p range" \
    "quiz retype -p best-fit" "frobnicate" "run /no/such/file.yaml"; do
    # shellcheck disable=SC2086
    "${run[@]}" $args >/dev/null 2>&1
    rc=$?
    if [ $rc -ne 2 ]; then
        echo "capmem $args: exit status $rc, expected 2"
        status=1
    fi
done
exit $status
