#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Install the library into a scratch DESTDIR, then build and run a small
# program against it through pkg-config, as a user would after
# `meson install`; then build and run the same program against the build
# tree through the uninstalled .pc file Meson writes, as the README shows.
# Usage: install_test.sh BUILD_ROOT SOURCE_ROOT
set -euo pipefail
build=$1
src=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

meson install -C "$build" --destdir "$tmp/root" --no-rebuild --quiet >/dev/null
pc=$(find "$tmp/root" -name capmem.pc -print -quit)
[ -n "$pc" ] || { echo "capmem.pc was not installed"; exit 1; }
export PKG_CONFIG_PATH=$(dirname "$pc")
export PKG_CONFIG_SYSROOT_DIR=$tmp/root
cflags=$(pkg-config --cflags capmem)
libs=$(pkg-config --libs capmem)
echo "pkg-config --cflags --libs capmem: $cflags $libs"
${CC:-cc} -std=c11 -Wall -Wextra -Werror $cflags "$src/tests/install_consumer.c" $libs \
    -o "$tmp/consumer"
so=$(find "$tmp/root" -name 'libcapmem.so.*' -print -quit)
LD_LIBRARY_PATH=$(dirname "$so") "$tmp/consumer"

# The capmem command goes to bin/ when it was built (it needs libyaml), and
# runs against the installed library.
if [ -x "$build/tools/capmem/capmem" ]; then
    tool=$(find "$tmp/root" -path '*/bin/capmem' -print -quit)
    [ -n "$tool" ] || { echo "capmem was built but not installed to bin/"; exit 1; }
    LD_LIBRARY_PATH=$(dirname "$so") "$tool" quiz buddy -s 1 -n 1 -c >/dev/null
    echo "installed: $tool"
fi

# Without installing: PKG_CONFIG_PATH=BUILD_ROOT/meson-uninstalled, where
# pkg-config takes capmem-uninstalled.pc for capmem, and the library from
# BUILD_ROOT/src at run time.
unset PKG_CONFIG_SYSROOT_DIR
export PKG_CONFIG_PATH=$build/meson-uninstalled
cflags=$(pkg-config --cflags capmem)
libs=$(pkg-config --libs capmem)
echo "uninstalled: pkg-config --cflags --libs capmem: $cflags $libs"
case " $cflags " in
*" -I$src/include "*) ;;
*) echo "the uninstalled .pc does not point at $src/include"; exit 1 ;;
esac
${CC:-cc} -std=c11 -Wall -Wextra -Werror $cflags "$src/tests/install_consumer.c" $libs \
    -o "$tmp/consumer-uninstalled"
LD_LIBRARY_PATH=$build/src "$tmp/consumer-uninstalled"

# A policy built only against the installed headers (examples/next_fit.c, as
# docs/alloc.md's walkthrough writes it) drives an untyped, the RAM service
# and a region map, passes the installed conformance suite, and replays a
# shipped trace through the installed capmem-replay.
export PKG_CONFIG_PATH=$(dirname "$pc")
export PKG_CONFIG_SYSROOT_DIR=$tmp/root
cflags=$(pkg-config --cflags capmem)
libs=$(pkg-config --libs capmem)
libdir=$(dirname "$so")
${CC:-cc} -std=c11 -Wall -Wextra -Werror -fPIC -shared $cflags "$src/examples/next_fit.c" $libs \
    -o "$tmp/libnext_fit.so"
${CC:-cc} -std=c11 -Wall -Wextra -Werror $cflags "$src/tests/install_policy.c" "$tmp/libnext_fit.so" \
    $libs -o "$tmp/policy"
LD_LIBRARY_PATH=$libdir:$tmp "$tmp/policy"
replay=$(find "$tmp/root" -name capmem-replay -type f -print -quit)
[ -n "$replay" ] || { echo "capmem-replay was not installed"; exit 1; }
LD_LIBRARY_PATH=$libdir "$replay" --span 0x2000 --granule 0x400 \
    --policy "$tmp/libnext_fit.so:next_fit_ops" --policy range --csv "$tmp/out.csv" \
    "$src/data/traces/sel4_fragmentation.txt"
grep -q '^next-fit,' "$tmp/out.csv"
