#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Install the library into a scratch DESTDIR, then build and run a small
# program against it through pkg-config, as a user would after
# `meson install`. Usage: install_test.sh BUILD_ROOT SOURCE_ROOT
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
