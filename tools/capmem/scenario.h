/* SPDX-License-Identifier: MIT */
/*
 * capmem run: scenario files (docs/scenarios.md). A scenario is read and
 * checked whole first (keys, types, names, objects already closed), so a
 * mistake in the file is reported with its line and column before anything
 * runs; then its steps run one by one against a fresh arena, each outcome
 * compared with the step's expectation.
 */
#ifndef CAPMEM_TOOL_SCENARIO_H
#define CAPMEM_TOOL_SCENARIO_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Exit statuses of capmem run. */
enum {
    SCEN_OK = 0,       /* every step ran and every expectation held */
    SCEN_DIFFERS = 1,  /* a step's outcome differs from its expectation (or an invariant broke) */
    SCEN_BAD_INPUT = 2 /* the file (or an option) is wrong: nothing was judged */
};

typedef struct scen_opts {
    FILE *out;              /* the narration (stdout) */
    FILE *err;              /* complaints (stderr) */
    const char *base_dir;   /* where relative file names in the scenario are looked up */
    int check_only;         /* read and check the file, run nothing */
    int step_dump;          /* --step: the text dump after every step */
    const char *dump_path;  /* --dump FORMAT FILE */
    int dump_format;        /* a capmem_dump_format_t when dump_path is set */
    const char *dump_after; /* --after NAME: dump after that step instead of at the end */
    const char *trace_path; /* --trace FILE */
    /* Limits for untrusted input (the fuzzer): 0 means none. */
    uint64_t max_ram;
    uint64_t max_repeat;
    int no_files; /* refuse pagers that read files from disk */
} scen_opts_t;

/* Read, check and run one scenario held in memory; @p file names it in messages. */
int scenario_run_buffer(const char *file, const char *buf, size_t len, const scen_opts_t *opts);

/* The same for a file on disk ("-" is standard input). */
int scenario_run_file(const char *path, const scen_opts_t *opts);

#endif
