#!/bin/sh
# SPDX-License-Identifier: MIT
# Record a real program's allocations with glibc's mtrace, as
# python3_json.mtrace.gz was made (Debian 12, glibc 2.36, Python 3.11.2):
#
#   data/traces/record_mtrace.sh out.mtrace /usr/bin/python3 -c \
#     "import json; print(len(json.dumps([list(range(i)) for i in range(200)])))"
#   gzip -9 out.mtrace
#
# glibc 2.34 moved mtrace into libc_malloc_debug.so.0, and tracing starts
# only when the program calls mtrace(): mtrace_on.c (preloaded) does that.
# Only the first process writes a useful log (children would truncate it),
# so trace the program itself, not a driver that forks it.
set -eu
if [ $# -lt 2 ]; then
    echo "usage: $0 OUT.mtrace PROGRAM [ARGS...]" >&2
    exit 2
fi
out=$1
shift
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cc -shared -fPIC -o "$tmp/libmtrace_on.so" "$here/mtrace_on.c"
LD_PRELOAD="libc_malloc_debug.so.0 $tmp/libmtrace_on.so" MALLOC_TRACE="$out" "$@"
