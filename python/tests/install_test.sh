#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# `meson install` into a scratch DESTDIR, then import the installed package
# with /usr/bin/python3 (no CAPMEM_LIBRARY: it must find the installed
# library by itself) and run the Python tour against it.
# Usage: install_test.sh BUILD_ROOT SOURCE_ROOT
set -euo pipefail
build=$1
src=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

meson install -C "$build" --destdir "$tmp/root" --no-rebuild --quiet >/dev/null
init=$(find "$tmp/root" -path '*/capmem/__init__.py' -print -quit)
[ -n "$init" ] || { echo "the capmem package was not installed"; exit 1; }
site=$(dirname "$(dirname "$init")")
[ -f "$site/capmem/_config.py" ] || { echo "_config.py was not installed"; exit 1; }
echo "installed package: ${site#"$tmp/root"}/capmem"
cd "$tmp"
unset CAPMEM_LIBRARY
export PYTHONPATH=$site
/usr/bin/python3 - "$tmp/root" <<'PY'
import sys
import capmem
assert capmem.__file__.startswith(sys.argv[1]), capmem.__file__
assert capmem.LIBRARY_PATH.startswith(sys.argv[1]), capmem.LIBRARY_PATH
print("loaded", capmem.LIBRARY_PATH[len(sys.argv[1]):])
tool = capmem.replay_tool()
assert tool.startswith(sys.argv[1]) and tool.endswith("/capmem-replay"), tool
print("replay tool", tool[len(sys.argv[1]):])
with capmem.Arena(ram_size=1 << 20) as arena:
    app = arena.ram_boot().open(quota=8192)
    app.alloc(4096)
    assert app.used == 4096
    arena.check()
PY
/usr/bin/python3 "$src/examples/python/tour.py" >/dev/null
echo "the installed package imports and runs the tour"
