/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer harness for the scenario reader and runner: any bytes must give
 * exit status 0, 1 or 2 and never a crash, a leak or a sanitizer report.
 * Scenarios run with small limits (4 MiB of RAM, 64 repeats, no files) so
 * that each input takes milliseconds. Built with -Dfuzz=true (clang); the
 * 'fuzz_scenario' test runs it for CAPMEM_FUZZ_SCENARIO_SECONDS (20).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "scenario.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static FILE *sink;
    if (sink == NULL) {
        sink = fopen("/dev/null", "w");
        if (sink == NULL) {
            abort();
        }
    }
    scen_opts_t o = {0};
    o.out = sink;
    o.err = sink;
    o.max_ram = 4u << 20;
    o.max_repeat = 64;
    o.no_files = 1;
    int rc = scenario_run_buffer("fuzz.yaml", (const char *)data, size, &o);
    if (rc != SCEN_OK && rc != SCEN_DIFFERS && rc != SCEN_BAD_INPUT) {
        abort();
    }
    return 0;
}
