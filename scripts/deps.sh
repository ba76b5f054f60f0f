#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Sourced by scripts/demo and scripts/check: make sure the Debian packages a
# step needs are there. As root, missing ones are installed with apt-get;
# otherwise the exact apt-get line is printed and the script stops.
#
# Usage (after sourcing): capmem_need_packages pkg...

capmem_pkg_present() {
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"
}

capmem_need_packages() {
    local missing=()
    local p
    for p in "$@"; do
        capmem_pkg_present "$p" || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$(id -u)" -eq 0 ]; then
        echo "capmem: installing missing packages: ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq || return 1
        apt-get install -y -qq --no-install-recommends "${missing[@]}" || return 1
    else
        echo "capmem: missing packages. Install them with:" >&2
        echo "  sudo apt-get install -y ${missing[*]}" >&2
        exit 1
    fi
}
