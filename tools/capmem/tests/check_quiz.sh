#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# A quiz answer file is the exact output of capmem for the command on its
# first line ("capmem quiz TOPIC -s SEED ..."). Run that command again and
# compare byte for byte: the same seed gives the same questions and answers
# on every machine. Usage: check_quiz.sh CAPMEM FILE...
set -euo pipefail
capmem=$1
shift
status=0
for f in "$@"; do
    read -r -a cmd <"$f"
    if [ "${cmd[0]:-}" != capmem ] || [ "${cmd[1]:-}" != quiz ]; then
        echo "$f: the first line must be the command, e.g. 'capmem quiz retype -s 7 -c'"
        status=1
        continue
    fi
    if ! diff -u "$f" <("$capmem" "${cmd[@]:1}"); then
        echo "$f: capmem ${cmd[*]:1} printed something else (diff above: - expected, + actual)"
        status=1
    else
        echo "$f: same output"
    fi
done
exit $status
