/* SPDX-License-Identifier: MIT */
/*
 * Benchmarks of the alloc layer: free+alloc pairs over a 1 GiB span at 4 KiB
 * granularity with a fixed set of live blocks, for the range and buddy
 * policies and a plain first-fit list (written here, as the baseline a user
 * would otherwise write). Each pair frees a random live block and allocates
 * a new one of the same workload size; the workload is seeded, so every run
 * measures the same sequence.
 */
#include <stdio.h>
#include <stdlib.h>

#include "alloc_internal.h"
#include "bench.h"

#define SPAN (1ull << 30)
#define PAGE 4096ull

/* ---- baseline: a plain first-fit list of free ranges --------------------- */

/*
 * Free ranges in a singly linked list sorted by address, nodes from a pool.
 * alloc takes the first range that fits (O(n)); free walks to the insertion
 * point and coalesces (O(n)). No double-free detection: it trusts callers.
 */
typedef struct ff_node {
    uint64_t off;
    uint64_t len;
    uint32_t next;
} ff_node_t;

typedef struct ff_list {
    ff_node_t *pool; /* [0] is nil */
    uint32_t head;
    uint32_t free_nodes;
    uint32_t hw;
    uint32_t cap;
} ff_list_t;

static uint32_t ff_node(ff_list_t *f)
{
    uint32_t x = f->free_nodes;
    if (x != 0) {
        f->free_nodes = f->pool[x].next;
        return x;
    }
    if (f->hw + 1 >= f->cap) {
        abort();
    }
    return ++f->hw;
}

static void ff_init(ff_list_t *f, uint64_t size)
{
    f->cap = (uint32_t)(size / PAGE) + 2;
    f->pool = calloc(f->cap, sizeof(ff_node_t));
    if (f->pool == NULL) {
        abort();
    }
    f->hw = 0;
    f->free_nodes = 0;
    f->head = ff_node(f);
    f->pool[f->head] = (ff_node_t){0, size, 0};
}

static bool ff_alloc(ff_list_t *f, uint64_t len, uint64_t *off)
{
    uint32_t prev = 0;
    for (uint32_t x = f->head; x != 0; prev = x, x = f->pool[x].next) {
        if (f->pool[x].len >= len) {
            *off = f->pool[x].off;
            f->pool[x].off += len;
            f->pool[x].len -= len;
            if (f->pool[x].len == 0) {
                if (prev == 0) {
                    f->head = f->pool[x].next;
                } else {
                    f->pool[prev].next = f->pool[x].next;
                }
                f->pool[x].next = f->free_nodes;
                f->free_nodes = x;
            }
            return true;
        }
    }
    return false;
}

static void ff_free(ff_list_t *f, uint64_t off, uint64_t len)
{
    uint32_t prev = 0;
    uint32_t x = f->head;
    while (x != 0 && f->pool[x].off < off) {
        prev = x;
        x = f->pool[x].next;
    }
    bool join_prev = prev != 0 && f->pool[prev].off + f->pool[prev].len == off;
    bool join_next = x != 0 && off + len == f->pool[x].off;
    if (join_prev && join_next) {
        f->pool[prev].len += len + f->pool[x].len;
        f->pool[prev].next = f->pool[x].next;
        f->pool[x].next = f->free_nodes;
        f->free_nodes = x;
    } else if (join_prev) {
        f->pool[prev].len += len;
    } else if (join_next) {
        f->pool[x].off = off;
        f->pool[x].len += len;
    } else {
        uint32_t n = ff_node(f);
        f->pool[n] = (ff_node_t){off, len, x};
        if (prev == 0) {
            f->head = n;
        } else {
            f->pool[prev].next = n;
        }
    }
}

/* ---- workload ------------------------------------------------------------ */

typedef struct work {
    capmem_alloc_t *a; /* NULL: the first-fit list */
    ff_list_t ff;
    uint64_t *live;
    size_t nlive;
    uint64_t seed;
} work_t;

static void must(capmem_err_t err, const char *what)
{
    if (err != CAPMEM_OK) {
        fprintf(stderr, "bench_alloc: %s: %s\n", what, capmem_last_error()->message);
        abort();
    }
}

static uint64_t w_alloc(work_t *w)
{
    uint64_t off = 0;
    if (w->a != NULL) {
        must(capmem_alloc_alloc(w->a, PAGE, 1, &off), "alloc");
    } else if (!ff_alloc(&w->ff, PAGE, &off)) {
        abort();
    }
    return off;
}

static void w_free(work_t *w, uint64_t off)
{
    if (w->a != NULL) {
        must(capmem_alloc_free(w->a, off, PAGE), "free");
    } else {
        ff_free(&w->ff, off, PAGE);
    }
}

static void body_pairs(void *vctx, uint64_t iters)
{
    work_t *w = vctx;
    for (uint64_t i = 0; i < iters; i++) {
        /* Multiply-shift range reduction (Lemire): a division would cost more than some
         * of the operations measured here. */
        size_t k = (size_t)(((bench_rand(&w->seed) >> 32) * (uint64_t)w->nlive) >> 32);
        w_free(w, w->live[k]);
        w->live[k] = w_alloc(w);
    }
}

/*
 * Fill with nlive blocks, then free a random half and refill, so the live
 * blocks are scattered over the span rather than packed at its bottom.
 */
static void w_setup(work_t *w, size_t nlive)
{
    w->nlive = nlive;
    w->seed = 0x2545f4914f6cdd1dull;
    w->live = malloc(nlive * sizeof(uint64_t));
    if (w->live == NULL) {
        abort();
    }
    /* Spread: allocate at a random page offset so the layout is not sequential. */
    for (size_t i = 0; i < nlive; i++) {
        if (w->a != NULL) {
            for (;;) {
                uint64_t off = (bench_rand(&w->seed) % (SPAN / PAGE)) * PAGE;
                if (capmem_alloc_alloc_at(w->a, off, PAGE) == CAPMEM_OK) {
                    w->live[i] = off;
                    break;
                }
            }
        } else {
            w->live[i] = 0;
        }
    }
}

/* The first-fit list has no alloc_at: mirror the layout of a built-in run. */
static void w_setup_ff(work_t *w, const work_t *like)
{
    w->nlive = like->nlive;
    w->seed = like->seed;
    w->live = malloc(w->nlive * sizeof(uint64_t));
    if (w->live == NULL) {
        abort();
    }
    ff_init(&w->ff, SPAN);
    /* Rebuild the free list from a page map of the live blocks, in one pass. */
    uint8_t *used = calloc(SPAN / PAGE, 1);
    if (used == NULL) {
        abort();
    }
    for (size_t i = 0; i < w->nlive; i++) {
        w->live[i] = like->live[i];
        used[like->live[i] / PAGE] = 1;
    }
    w->ff.hw = 0;
    w->ff.free_nodes = 0;
    w->ff.head = 0;
    uint32_t tail = 0;
    for (uint64_t p = 0; p < SPAN / PAGE;) {
        if (used[p]) {
            p++;
            continue;
        }
        uint64_t q = p;
        while (q < SPAN / PAGE && !used[q]) {
            q++;
        }
        uint32_t n = ff_node(&w->ff);
        w->ff.pool[n] = (ff_node_t){p * PAGE, (q - p) * PAGE, 0};
        if (tail == 0) {
            w->ff.head = n;
        } else {
            w->ff.pool[tail].next = n;
        }
        tail = n;
        p = q;
    }
    free(used);
}

static void w_done(work_t *w)
{
    capmem_alloc_destroy(w->a);
    if (w->a == NULL) {
        free(w->ff.pool);
    }
    free(w->live);
}

static void body_watermark(void *vctx, uint64_t iters)
{
    work_t *w = vctx;
    for (uint64_t i = 0; i < iters; i++) {
        w_free(w, w_alloc(w));
    }
}

static void setup_watermark(void *vctx)
{
    work_t *w = vctx;
    capmem_alloc_reset(w->a);
}

static void row(const bench_t *b, const char *name, work_t *w, uint64_t iters)
{
    body_pairs(w, iters / 4 + 1); /* warm up: caches, and the layout's steady state */
    double ns = bench_median_ns(b, body_pairs, NULL, w, iters);
    double bytes = -1;
    if (w->a != NULL) {
        bytes = (double)capmem__alloc_metadata_bytes(w->a) / (double)w->nlive;
    } else {
        bytes = (double)sizeof(ff_node_t); /* per free range, not per block */
    }
    char label[64];
    char note[128];
    snprintf(label, sizeof(label), "%s free+alloc pair", name);
    snprintf(note, sizeof(note), "1 GiB span, 4 KiB blocks, %zu live, random victim", w->nlive);
    bench_row(label, ns, bytes, note);
}

void bench_alloc(const bench_t *b)
{
    bench_section("alloc: policies over a 1 GiB span at 4 KiB granularity");
    uint64_t iters = bench_n(b, 2000000, 200000);

    work_t range = {0};
    must(capmem_alloc_create_range(0, SPAN, PAGE, &range.a), "create range");
    w_setup(&range, 100000);

    work_t ff = {0};
    w_setup_ff(&ff, &range);

    row(b, "range", &range, iters);
    w_done(&range);

    work_t buddy = {0};
    must(capmem_alloc_create_buddy(0, SPAN, 12, 30, &buddy.a), "create buddy");
    w_setup(&buddy, 100000);
    row(b, "buddy", &buddy, iters);
    w_done(&buddy);

    /* O(n) per pair: far fewer iterations, same workload and layout. */
    row(b, "first-fit list", &ff, bench_n(b, 3000, 500));
    w_done(&ff);

    work_t small = {0};
    must(capmem_alloc_create_range(0, SPAN, PAGE, &small.a), "create range");
    w_setup(&small, 1000);
    row(b, "range (1,000 live)", &small, iters);
    w_done(&small);

    /* Watermark never reuses: each pair allocates above the index and frees it. */
    work_t wm = {0};
    must(capmem_alloc_create_watermark(0, SPAN, &wm.a), "create watermark");
    uint64_t wm_iters = SPAN / PAGE - 1;
    double ns = bench_median_ns(b, body_watermark, setup_watermark, &wm, wm_iters);
    bench_row("watermark alloc+free pair", ns, 16.0,
              "bump index, 16 B per live block; reset per repeat");
    w_done(&wm);
}
