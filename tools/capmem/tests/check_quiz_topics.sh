#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Every topic, under every policy it has, sets up and answers 40 questions
# for two seeds (the library never refuses a question's setup), and the
# questions do not depend on -c: the same seed prints the same questions with
# and without the answers. Usage: check_quiz_topics.sh CAPMEM
set -uo pipefail
capmem=$1
status=0
specs=(retype:watermark retype:range retype:buddy buddy: donation:plain donation:expanding quota:
    alias:mixed alias:dependent alias:first-class fault:)
# The kernel topic exists when the library has the kernel layer.
if "$capmem" quiz --help | grep -q "^  kernel "; then
    specs+=(kernel:fixed kernel:hybrid kernel:conservative)
fi
for spec in "${specs[@]}"; do
    topic=${spec%%:*}
    policy=${spec#*:}
    args=(quiz "$topic" -n 40)
    [ -n "$policy" ] && args+=(-p "$policy")
    for seed in 1 18446744073709551615; do
        if ! "$capmem" "${args[@]}" -s "$seed" -c >/dev/null; then
            echo "capmem ${args[*]} -s $seed -c failed"
            status=1
        fi
        q=$("$capmem" "${args[@]}" -s "$seed" | grep -v '^capmem quiz\|^Work out')
        a=$("$capmem" "${args[@]}" -s "$seed" -c | awk '/^Answer/{skip=1} /^Question/{skip=0} !skip' |
            grep -v '^capmem quiz')
        if [ "$(grep -v '^$' <<<"$q")" != "$(grep -v '^$' <<<"$a")" ]; then
            echo "capmem ${args[*]} -s $seed: the questions change with -c"
            status=1
        fi
    done
done
[ $status -eq 0 ] && echo "quiz: every topic and policy answers 80 questions"
exit $status
