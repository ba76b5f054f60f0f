/* SPDX-License-Identifier: MIT */
/*
 * Benchmarks of the region-map layer (simulated access mode), through the
 * public API, each with the arena lock and capability checks included:
 * - a fault end to end: an access to an unattached page, the handler
 *   attaches a page there and resolves, the access retries and completes
 *   (each iteration touches a fresh page; the map is rebuilt outside the
 *   timed part);
 * - an 8-byte read through a mapped region;
 * - the lookup of the region under an address with 1,000 and 100,000
 *   regions in one map (O(log n): the two figures stay close);
 * - an attach ("anywhere") + detach pair in a map holding 1,000 regions.
 */
#include <stdio.h>
#include <stdlib.h>

#include "bench.h"
#include "capmem.h"

#define PAGE 4096ull

typedef struct rm_ctx {
    capmem_arena_t *arena;
    capmem_cap_t root;
    capmem_cap_t rm;
    capmem_cap_t ds;
    uint64_t regions; /* regions in the map, at every other page */
    uint64_t pages;   /* map size in pages */
    uint64_t seed;
} rm_ctx_t;

static capmem_cap_t make_map(rm_ctx_t *c, uint64_t pages, uint64_t max_regions)
{
    capmem_rm_open_attr_t at = CAPMEM_RM_OPEN_ATTR_INIT;
    at.size = pages * PAGE;
    at.donation = ((max_regions + 64) * 64 + PAGE - 1) & ~(PAGE - 1);
    capmem_cap_t rm;
    BENCH_TRY(capmem_rm_open(c->arena, c->root, &at, &rm));
    return rm;
}

/* Fill the map with n one-page regions at every other page. */
static void fill(rm_ctx_t *c, uint64_t n)
{
    capmem_rm_attach_attr_t a = CAPMEM_RM_ATTACH_ATTR_INIT;
    uint64_t addr;
    for (uint64_t i = 0; i < n; i++) {
        a.at = 2 * i * PAGE;
        BENCH_TRY(capmem_rm_attach(c->arena, c->rm, c->ds, &a, &addr));
    }
    c->regions = n;
}

static capmem_rm_fault_result_t page_in(capmem_arena_t *arena, const capmem_rm_fault_t *f,
                                        void *ctx)
{
    rm_ctx_t *c = ctx;
    capmem_rm_attach_attr_t a = CAPMEM_RM_ATTACH_ATTR_INIT;
    a.at = f->address & ~(PAGE - 1);
    uint64_t addr;
    if (capmem_rm_attach(arena, f->rm, c->ds, &a, &addr) != CAPMEM_OK) {
        return CAPMEM_RM_FAULT_UNRESOLVED;
    }
    return CAPMEM_RM_FAULT_RESOLVED;
}

static void setup_fault(void *vctx)
{
    rm_ctx_t *c = vctx;
    if (c->rm != CAPMEM_CAP_NULL) {
        BENCH_TRY(capmem_rm_close(c->arena, c->rm));
    }
    c->rm = make_map(c, c->pages, c->pages);
    BENCH_TRY(capmem_rm_set_fault_handler(c->arena, c->rm, page_in, c));
}

static void body_fault(void *vctx, uint64_t iters)
{
    rm_ctx_t *c = vctx;
    uint64_t v;
    for (uint64_t i = 0; i < iters; i++) {
        BENCH_TRY(capmem_rm_read(c->arena, c->rm, i * PAGE + 8, &v, sizeof(v)));
    }
}

static void body_read8(void *vctx, uint64_t iters)
{
    rm_ctx_t *c = vctx;
    uint64_t v;
    uint64_t sum = 0;
    for (uint64_t i = 0; i < iters; i++) {
        uint64_t off = (i * 8) & (PAGE - 8);
        BENCH_TRY(capmem_rm_read(c->arena, c->rm, off, &v, sizeof(v)));
        sum += v;
    }
    if (sum == 1) {
        puts("");
    }
}

static void body_lookup(void *vctx, uint64_t iters)
{
    rm_ctx_t *c = vctx;
    capmem_rm_region_t r;
    for (uint64_t i = 0; i < iters; i++) {
        uint64_t k = bench_rand(&c->seed) % c->regions;
        BENCH_TRY(capmem_rm_lookup(c->arena, c->rm, 2 * k * PAGE + 16, &r));
    }
}

static void body_attach_detach(void *vctx, uint64_t iters)
{
    rm_ctx_t *c = vctx;
    capmem_rm_attach_attr_t a = CAPMEM_RM_ATTACH_ATTR_INIT;
    uint64_t addr;
    for (uint64_t i = 0; i < iters; i++) {
        BENCH_TRY(capmem_rm_attach(c->arena, c->rm, c->ds, &a, &addr));
        BENCH_TRY(capmem_rm_detach(c->arena, c->rm, addr));
    }
}

void bench_rm(const bench_t *b)
{
    if (bench_cg_skip(b, "rm-")) {
        return;
    }
    bench_section("region maps (simulated access mode)");
    capmem_arena_attr_t aa = CAPMEM_ARENA_ATTR_INIT;
    aa.ram_size = 256ull << 20;
    rm_ctx_t c = {.seed = 0x2545f4914f6cdd1dull};
    BENCH_TRY(capmem_arena_create(&aa, &c.arena));
    BENCH_TRY(capmem_ram_boot(c.arena, NULL, &c.root));
    BENCH_TRY(capmem_ram_alloc(c.arena, c.root, PAGE, &c.ds));
    char note[128];

    /* A fault end to end, in a map that grows to 4,096 and to 100,000 regions. */
    c.pages = 4096;
    double ns = bench_measure(b, "rm-fault-4096", body_fault, setup_fault, &c, c.pages);
    snprintf(note, sizeof(note), "handler attaches a page and resolves; map grows to 4,096");
    bench_row("rm fault end to end (read 8 B)", ns, -1, note);
    if (c.rm != CAPMEM_CAP_NULL) { /* callgrind mode may have skipped the row */
        BENCH_TRY(capmem_rm_close(c.arena, c.rm));
    }
    c.rm = CAPMEM_CAP_NULL;
    c.pages = bench_n(b, 100000, 20000);
    ns = bench_measure(b, "rm-fault-large", body_fault, setup_fault, &c, c.pages);
    snprintf(note, sizeof(note), "same, map grows to %llu regions (cache misses)",
             (unsigned long long)c.pages);
    bench_row("rm fault end to end, large map", ns, -1, note);
    if (c.rm != CAPMEM_CAP_NULL) {
        BENCH_TRY(capmem_rm_close(c.arena, c.rm));
    }

    /* An 8-byte read through a mapped region. */
    c.rm = make_map(&c, 16, 16);
    fill(&c, 1);
    ns = bench_measure(b, "rm-read8", body_read8, NULL, &c, bench_n(b, 5000000, 1000000));
    bench_row("rm read 8 B through a mapped region", ns, -1, "target <30");
    BENCH_TRY(capmem_rm_close(c.arena, c.rm));
    if (b->cg_key != NULL) {
        capmem_arena_destroy(c.arena);
        return;
    }

    /* Lookup at two sizes, and the 8-byte read in the large map. */
    const uint64_t sizes[2] = {1000, 100000};
    for (int s = 0; s < 2; s++) {
        c.rm = make_map(&c, 2 * sizes[s], sizes[s]);
        fill(&c, sizes[s]);
        ns = bench_median_ns(b, body_lookup, NULL, &c, bench_n(b, 2000000, 300000));
        snprintf(note, sizeof(note), "%llu regions in one map, random address",
                 (unsigned long long)sizes[s]);
        bench_row(s == 0 ? "rm lookup, 1,000 regions" : "rm lookup, 100,000 regions", ns, 64, note);
        if (s == 0) {
            ns = bench_median_ns(b, body_attach_detach, NULL, &c, bench_n(b, 2000000, 300000));
            bench_row("rm attach (anywhere) + detach pair", ns, 64, "map holds 1,000 regions");
        }
        BENCH_TRY(capmem_rm_close(c.arena, c.rm));
    }
    capmem_arena_destroy(c.arena);
}
