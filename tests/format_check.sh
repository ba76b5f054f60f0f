#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Every C file follows .clang-format. Usage: format_check.sh CLANG_FORMAT SOURCE_ROOT
set -euo pipefail
cf=$1
cd "$2"
files=$(git ls-files '*.c' '*.h' 2>/dev/null || find src include tests examples bench -name '*.[ch]')
[ -n "$files" ] || files=$(find src include tests examples bench -name '*.[ch]')
# shellcheck disable=SC2086
"$cf" --dry-run --Werror $files
echo "format: $(echo "$files" | wc -w) files clean"
