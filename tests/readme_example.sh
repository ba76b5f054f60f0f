#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The README's first C example compiles with -Wall -Wextra -Werror against
# the built library and runs. Usage: readme_example.sh BUILD_ROOT SOURCE_ROOT
set -euo pipefail
build=$1
src=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# The first ```c block of README.md, verbatim.
awk '/^```c$/ { on = 1; next } on && /^```$/ { exit } on { print }' "$src/README.md" \
    >"$tmp/example.c"
[ -s "$tmp/example.c" ] || { echo "README.md has no \`\`\`c block"; exit 1; }
${CC:-cc} -std=c11 -Wall -Wextra -Werror -I"$src/include" "$tmp/example.c" \
    -L"$build/src" -Wl,-rpath,"$build/src" -lcapmem -o "$tmp/example"
"$tmp/example"
echo "README example: compiled without a warning and ran"
