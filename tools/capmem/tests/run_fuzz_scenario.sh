#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Fuzz the scenario reader for CAPMEM_FUZZ_SCENARIO_SECONDS (default 20),
# with inputs up to 4 KiB, through the shared runner of tests/fuzz.
# Usage: run_fuzz_scenario.sh RUN_FUZZ_SH BIN CORPUS
set -euo pipefail
export CAPMEM_FUZZ_SECONDS=${CAPMEM_FUZZ_SCENARIO_SECONDS:-20}
export CAPMEM_FUZZ_MAX_LEN=4096
exec "$1" "$2" "$3"
