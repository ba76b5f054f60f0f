#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Every solution in docs/exercises/solutions is linked from an exercise page
# and registered in tools/capmem/meson.build (so the suite checks it), and
# every link to a solution points at a file that exists.
# Usage: check_exercises.sh EXERCISES_DIR TOOL_MESON_BUILD
set -uo pipefail
dir=$1
meson_build=$2
status=0
for f in "$dir"/solutions/*; do
    base=$(basename "$f")
    name=${base%.*}
    if ! grep -q "solutions/$base" "$dir"/*.md; then
        echo "$base: no exercise page links to it"
        status=1
    fi
    if ! grep -q "'$name'" "$meson_build"; then
        echo "$base: not registered in tools/capmem/meson.build, so nothing checks it"
        status=1
    fi
done
for link in $(grep -oh 'solutions/[A-Za-z0-9_.-]*' $(ls "$dir"/*.md | grep -v /README.md) | sort -u); do
    if [ "$link" != solutions/ ] && [ ! -e "$dir/$link" ]; then
        echo "$link: linked, but there is no such file"
        status=1
    fi
done
count=$(ls "$dir"/solutions | wc -l)
[ $status -eq 0 ] && echo "exercises: $count solutions, each linked and registered"
exit $status
