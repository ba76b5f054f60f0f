/* SPDX-License-Identifier: MIT */
/*
 * The benchmark runnable: each layer contributes a function that measures
 * its operations and prints one table row per operation. Rows read as
 * ratios against the baselines measured in the same run (glibc malloc/free,
 * a plain first-fit list).
 */
#ifndef CAPMEM_BENCH_H
#define CAPMEM_BENCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "capmem.h"

typedef struct bench {
    unsigned repeats;   /* timed repeats per row; the median is reported */
    bool quick;         /* smaller workloads (meson benchmark) */
    bool smoke;         /* tiny workloads: the test suite checks every row still runs */
    const char *only;   /* run only this section (alloc, std, scaling, rm, ram), or NULL */
    const char *cg_key; /* callgrind mode: run only the row with this key, once */
    uint64_t cg_ops;    /* operations for callgrind mode (0: the row's own count) */
} bench_t;

/*
 * A workload's size: @p full, @p quick under --quick, and a fiftieth of
 * quick (at least 1) under --smoke, where only running matters, not the
 * figure.
 */
static inline uint64_t bench_n(const bench_t *b, uint64_t full, uint64_t quick)
{
    if (b->smoke) {
        return quick / 50 > 0 ? quick / 50 : 1;
    }
    return b->quick ? quick : full;
}

/* A measured body: run @p iters operations, return nothing. */
typedef void (*bench_body_fn)(void *ctx, uint64_t iters);

/*
 * Run @p body once with @p iters operations, not inlined: the callgrind
 * mode counts the instructions of this function alone
 * (valgrind --tool=callgrind --toggle-collect=bench_cg_run).
 */
void bench_cg_run(bench_body_fn body, void *ctx, uint64_t iters);

/*
 * bench_median_ns for the row @p key. In callgrind mode (b->cg_key set) it
 * runs only the row whose key matches, once (setup first, outside the
 * count), prints the operation count and exits the program; other rows
 * return 0 without running.
 */
double bench_measure(const bench_t *b, const char *key, bench_body_fn body,
                     void (*setup)(void *ctx), void *ctx, uint64_t iters);

/* In callgrind mode, is the wanted row's key one of this section's (prefix)? */
bool bench_cg_skip(const bench_t *b, const char *prefix);

/* Monotonic clock in nanoseconds. */
double bench_now_ns(void);

/*
 * Run @p body b->repeats times with @p iters operations each and return the
 * median nanoseconds per operation. @p setup, when not NULL, runs before
 * each repeat outside the timed part.
 */
double bench_median_ns(const bench_t *b, bench_body_fn body, void (*setup)(void *ctx), void *ctx,
                       uint64_t iters);

/*
 * Print one table row. @p bytes_per_obj < 0 prints "-" (not applicable).
 * @p note is free text (workload, target), may be NULL.
 */
void bench_row(const char *op, double ns_per_op, double bytes_per_obj, const char *note);

/* Resident set size of this process in bytes (/proc/self/statm). */
uint64_t bench_rss_bytes(void);

/*
 * A benchmark's setup must not fail: print where (@p file), the failed call
 * (@p what), the error's name and the library's detail message, and abort.
 */
void bench_die(const char *file, const char *what, capmem_err_t err);

/* Run a library call that must succeed; on error bench_die with the call's text. */
#define BENCH_TRY(call)                                                                            \
    do {                                                                                           \
        capmem_err_t e_ = (call);                                                                  \
        if (e_ != CAPMEM_OK) {                                                                     \
            bench_die(__FILE__, #call, e_);                                                        \
        }                                                                                          \
    } while (0)

/* Print a section heading between rows. */
void bench_section(const char *title);

/* Per-layer entry points, called in layer order by main(). */
void bench_baselines(const bench_t *b);
void bench_alloc(const bench_t *b);
void bench_alloc_standard(const bench_t *b);
void bench_alloc_scaling(const bench_t *b);
/* Run the standard workload NAME (range-pow2, buddy-rand, ...) once; -1 if unknown. */
int bench_alloc_callgrind(const char *name, uint64_t nops);
void bench_rm(const bench_t *b);
void bench_ram(const bench_t *b);
void bench_real(const bench_t *b);

/* A tiny deterministic PRNG so every run measures the same workload. */
static inline uint64_t bench_rand(uint64_t *state)
{
    uint64_t x = *state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *state = x;
    return x;
}

#endif
