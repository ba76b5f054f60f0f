/* SPDX-License-Identifier: MIT */
/*
 * capmem_bench: prints one row per measured operation:
 *   operation | ns/op (median of repeats) | ops/s | bytes per object | note
 * Usage: capmem_bench [--quick | --smoke] [--repeats N] [--only SECTION]
 *        capmem_bench --callgrind WORKLOAD [--ops N]
 * SECTION: baselines, alloc, std, scaling, rm, real, ram. WORKLOAD: range-pow2,
 * range-rand, range-mixed, buddy-pow2, buddy-rand, buddy-mixed (the
 * standard workload once), or one row: range-alloc-at, range-alloc-pair
 * (100,000 live pages), ram-alloc-free, cap-identify,
 * cap-identify-forged, ds-read8, rm-fault-4096, rm-fault-large, rm-read8.
 * Run under callgrind with bench/callgrind.sh WORKLOAD.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench.h"

double bench_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a;
    double y = *(const double *)b;
    return (x > y) - (x < y);
}

double bench_median_ns(const bench_t *b, bench_body_fn body, void (*setup)(void *ctx), void *ctx,
                       uint64_t iters)
{
    double samples[64];
    unsigned reps = b->repeats > 64 ? 64 : (b->repeats == 0 ? 1 : b->repeats);
    for (unsigned r = 0; r < reps; r++) {
        if (setup != NULL) {
            setup(ctx);
        }
        double t0 = bench_now_ns();
        body(ctx, iters);
        double t1 = bench_now_ns();
        samples[r] = (t1 - t0) / (double)(iters ? iters : 1);
    }
    qsort(samples, reps, sizeof(samples[0]), cmp_double);
    return samples[reps / 2];
}

__attribute__((noinline)) void bench_cg_run(bench_body_fn body, void *ctx, uint64_t iters)
{
    body(ctx, iters);
}

double bench_measure(const bench_t *b, const char *key, bench_body_fn body,
                     void (*setup)(void *ctx), void *ctx, uint64_t iters)
{
    if (b->cg_key == NULL) {
        return bench_median_ns(b, body, setup, ctx, iters);
    }
    if (strcmp(b->cg_key, key) != 0) {
        return 0;
    }
    if (setup != NULL) {
        setup(ctx);
    }
    uint64_t n = b->cg_ops != 0 ? b->cg_ops : iters;
    bench_cg_run(body, ctx, n);
    printf("%s: %llu operations\n", key, (unsigned long long)n);
    fflush(stdout);
    exit(0);
}

bool bench_cg_skip(const bench_t *b, const char *prefix)
{
    return b->cg_key != NULL && strncmp(b->cg_key, prefix, strlen(prefix)) != 0;
}

uint64_t bench_rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long size = 0;
    unsigned long resident = 0;
    if (f == NULL) {
        return 0;
    }
    if (fscanf(f, "%lu %lu", &size, &resident) != 2) {
        resident = 0;
    }
    fclose(f);
    return (uint64_t)resident * 4096u;
}

void bench_die(const char *file, const char *what, capmem_err_t err)
{
    fprintf(stderr, "%s: %s: %s (%s)\n", file, what, capmem_err_name(err),
            capmem_last_error()->message);
    abort();
}

void bench_section(const char *title)
{
    printf("%-44s|%11s |%14s |%10s | %s\n", "", "", "", "", "");
    printf("-- %s\n", title);
}

void bench_row(const char *op, double ns_per_op, double bytes_per_obj, const char *note)
{
    char bytes[32];
    if (bytes_per_obj < 0) {
        snprintf(bytes, sizeof(bytes), "-");
    } else {
        snprintf(bytes, sizeof(bytes), "%.1f", bytes_per_obj);
    }
    printf("%-44s|%11.1f |%14.0f |%10s | %s\n", op, ns_per_op,
           ns_per_op > 0 ? 1e9 / ns_per_op : 0.0, bytes, note ? note : "");
    fflush(stdout);
}

/* ---- baselines: what a user would otherwise reach for ------------------ */

typedef struct malloc_ctx {
    void **live;
    size_t nlive;
    uint64_t seed;
} malloc_ctx_t;

/* Random free+malloc pairs over a fixed set of live blocks. */
static void body_malloc_pairs(void *vctx, uint64_t iters)
{
    malloc_ctx_t *c = vctx;
    for (uint64_t i = 0; i < iters; i++) {
        size_t k = (size_t)(bench_rand(&c->seed) % c->nlive);
        free(c->live[k]);
        c->live[k] = malloc(4096);
        if (c->live[k] == NULL) {
            abort();
        }
    }
}

void bench_baselines(const bench_t *b)
{
    bench_section("baselines (same workloads, for ratios)");
    malloc_ctx_t c = {.nlive = bench_n(b, 100000, 10000), .seed = 0x9e3779b97f4a7c15ull};
    c.live = calloc(c.nlive, sizeof(void *));
    if (c.live == NULL) {
        abort();
    }
    for (size_t i = 0; i < c.nlive; i++) {
        c.live[i] = malloc(4096);
    }
    double ns = bench_median_ns(b, body_malloc_pairs, NULL, &c, bench_n(b, 1000000, 100000));
    char note[96];
    snprintf(note, sizeof(note), "4 KiB blocks, %zu live, random victim", c.nlive);
    bench_row("glibc free+malloc pair", ns, -1, note);
    for (size_t i = 0; i < c.nlive; i++) {
        free(c.live[i]);
    }
    free(c.live);
}

int main(int argc, char **argv)
{
    bench_t b = {.repeats = 5, .quick = false};
    const char *cg = NULL;
    uint64_t cg_ops = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0) {
            b.quick = true;
            b.repeats = 3;
        } else if (strcmp(argv[i], "--smoke") == 0) {
            b.quick = true;
            b.smoke = true;
            b.repeats = 1;
        } else if (strcmp(argv[i], "--only") == 0 && i + 1 < argc) {
            b.only = argv[++i];
        } else if (strcmp(argv[i], "--callgrind") == 0 && i + 1 < argc) {
            cg = argv[++i];
        } else if (strcmp(argv[i], "--ops") == 0 && i + 1 < argc) {
            cg_ops = strtoull(argv[++i], NULL, 10);
        } else if (strcmp(argv[i], "--repeats") == 0 && i + 1 < argc) {
            b.repeats = (unsigned)atoi(argv[++i]);
        } else {
            fprintf(stderr,
                    "usage: %s [--quick | --smoke] [--repeats N] [--only SECTION]\n"
                    "       %s --callgrind WORKLOAD [--ops N]\n",
                    argv[0], argv[0]);
            return 2;
        }
    }
    if (cg != NULL) {
        if (bench_alloc_callgrind(cg, cg_ops != 0 ? cg_ops : 1000000) == 0) {
            return 0;
        }
        b.cg_key = cg;
        b.cg_ops = cg_ops;
        b.repeats = 1;
        bench_alloc(&b);
        bench_rm(&b);
        bench_ram(&b);
        fprintf(stderr, "bench: unknown workload '%s'\n", cg);
        return 2;
    }
    printf("%-44s|%11s |%14s |%10s | %s\n", "operation", "ns/op", "ops/s", "B/object", "note");
    printf("%.*s\n", 110,
           "------------------------------------------------------------------------"
           "----------------------------------------------------------------");
    static const struct {
        const char *name;
        void (*fn)(const bench_t *);
    } sections[] = {
        {"baselines", bench_baselines},
        {"alloc", bench_alloc},
        {"std", bench_alloc_standard},
        {"scaling", bench_alloc_scaling},
        {"rm", bench_rm},
        {"real", bench_real},
        {"ram", bench_ram},
    };
    for (size_t i = 0; i < sizeof(sections) / sizeof(sections[0]); i++) {
        if (b.only == NULL || strcmp(b.only, sections[i].name) == 0) {
            sections[i].fn(&b);
        }
    }
    return 0;
}
