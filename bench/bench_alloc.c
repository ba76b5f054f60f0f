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
#include <string.h>

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

/* Free a random live block and allocate it again at the same offset (alloc_at). */
static void body_pairs_at(void *vctx, uint64_t iters)
{
    work_t *w = vctx;
    for (uint64_t i = 0; i < iters; i++) {
        size_t k = (size_t)(((bench_rand(&w->seed) >> 32) * (uint64_t)w->nlive) >> 32);
        w_free(w, w->live[k]);
        must(capmem_alloc_alloc_at(w->a, w->live[k], PAGE), "alloc_at");
    }
}

/*
 * alloc_at against alloc in the same layout: free+alloc_at at the freed
 * offset (the freed page lands at a free range's start, end or inside one
 * merged with its neighbours) and free+alloc pairs.
 */
static void rows_alloc_at(const bench_t *b, work_t *w, uint64_t iters)
{
    double at = bench_measure(b, "range-alloc-at", body_pairs_at, NULL, w, iters);
    double pair = bench_measure(b, "range-alloc-pair", body_pairs, NULL, w, iters);
    char note[128];
    snprintf(note, sizeof(note), "same layout, %zu live: %.2fx the free+alloc pair", w->nlive,
             at / pair);
    bench_row("range free+alloc_at same offset", at, -1, note);
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
    if (bench_cg_skip(b, "range-alloc-")) {
        return;
    }
    bench_section("alloc: policies over a 1 GiB span at 4 KiB granularity");
    uint64_t iters = bench_n(b, 2000000, 200000);

    work_t range = {0};
    must(capmem_alloc_create_range(0, SPAN, PAGE, &range.a), "create range");
    w_setup(&range, 100000);

    work_t ff = {0};
    w_setup_ff(&ff, &range);

    if (b->cg_key == NULL) {
        row(b, "range", &range, iters);
    }
    rows_alloc_at(b, &range, iters);
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

/* ---- the standard workload (issue 16) ------------------------------------ */

/*
 * 1 GiB as 262,144 units of 4 KiB; 1,000,000 operations over 2,048 slots,
 * drawn from splitmix64 seeded with 42: an operation takes a slot (one
 * draw, modulo 2,048) and allocates into it if it is empty (a second draw
 * gives the size), else frees it. Sizes: powers of two from 4 KiB to 1 MiB
 * (pow2: 4 KiB << (draw % 9)), uniform in 4 KiB steps from 4 KiB to 1 MiB
 * (rand: 4 KiB * (1 + draw % 256)), or half and half (mixed: the draw's low
 * bit picks, the rest sizes). Alignment 1 (the policies work in 4 KiB
 * units). A failed allocation leaves its slot empty and is counted.
 */
#define STD_SLOTS 2048u
#define STD_OPS 1000000u
#define STD_SEED 42u

static const char *const std_names[] = {"pow2", "rand", "mixed"};

static uint64_t splitmix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t std_size(unsigned kind, uint64_t d)
{
    if (kind == 2) {
        kind = (d & 1) ? 0 : 1;
        d >>= 1;
    }
    return kind == 0 ? PAGE << (d % 9) : PAGE * (1 + d % 256);
}

/* The operations, drawn before any is timed: slot in the low 16 bits, size in pages above. */
static uint32_t *std_ops(unsigned kind, uint64_t nops)
{
    uint32_t *ops = malloc(nops * sizeof(uint32_t));
    if (ops == NULL) {
        abort();
    }
    uint64_t s = STD_SEED;
    for (uint64_t i = 0; i < nops; i++) {
        uint32_t slot = (uint32_t)(splitmix64(&s) % STD_SLOTS);
        uint64_t pages = std_size(kind, splitmix64(&s)) / PAGE;
        ops[i] = slot | (uint32_t)(pages << 16);
    }
    return ops;
}

typedef struct std_run {
    capmem_alloc_t *a;
    const uint32_t *ops;
    uint64_t nops;
    uint64_t off[STD_SLOTS];
    uint64_t size[STD_SLOTS]; /* 0: empty */
    uint64_t failed;
} std_run_t;

static void std_body(void *vctx, uint64_t nops)
{
    std_run_t *w = vctx;
    for (uint64_t i = 0; i < nops; i++) {
        uint32_t op = w->ops[i];
        uint32_t k = op & 0xffffu;
        if (w->size[k] != 0) {
            if (capmem_alloc_free(w->a, w->off[k], w->size[k]) != CAPMEM_OK) {
                abort();
            }
            w->size[k] = 0;
        } else {
            uint64_t sz = (uint64_t)(op >> 16) * PAGE;
            if (capmem_alloc_alloc(w->a, sz, 1, &w->off[k]) == CAPMEM_OK) {
                w->size[k] = sz;
            } else {
                w->failed++;
            }
        }
    }
}

static void std_policy(int buddy, capmem_alloc_t **a)
{
    if (buddy) {
        must(capmem_alloc_create_buddy(0, SPAN, 12, 30, a), "create buddy");
    } else {
        must(capmem_alloc_create_range(0, SPAN, PAGE, a), "create range");
    }
}

/* One timed run of a workload from an empty policy: ns per operation. */
static double std_once(int buddy, const uint32_t *ops, uint64_t nops, uint64_t *failed,
                       uint64_t *meta)
{
    std_run_t *w = calloc(1, sizeof(*w));
    if (w == NULL) {
        abort();
    }
    std_policy(buddy, &w->a);
    w->ops = ops;
    w->nops = nops;
    double t0 = bench_now_ns();
    bench_cg_run(std_body, w, nops);
    double t1 = bench_now_ns();
    *failed = w->failed;
    *meta = capmem__alloc_metadata_bytes(w->a);
    capmem_alloc_destroy(w->a);
    free(w);
    return (t1 - t0) / (double)nops;
}

static int cmp_d(const void *x, const void *y)
{
    double a = *(const double *)x;
    double b = *(const double *)y;
    return (a > b) - (a < b);
}

void bench_alloc_standard(const bench_t *b)
{
    bench_section("alloc: the standard workload (issue 16; definition below)");
    printf("   1 GiB in 4 KiB units; %s operations over %u slots, splitmix64 seed %u; an "
           "operation\n   allocates into its slot if empty, else frees it; sizes pow2 = 4 KiB << "
           "(d %% 9),\n   rand = 4 KiB * (1 + d %% 256), mixed = half and half; ns per operation, "
           "median of\n   interleaved repetitions (range and buddy alternate within each).\n",
           b->smoke ? "20,000" : "1,000,000", STD_SLOTS, STD_SEED);
    uint64_t nops = b->smoke ? 20000 : STD_OPS;
    unsigned reps = b->repeats < 1 ? 1 : (b->repeats > 15 ? 15 : b->repeats);
    for (unsigned kind = 0; kind < 3; kind++) {
        uint32_t *ops = std_ops(kind, nops);
        double ns[2][15];
        uint64_t failed[2] = {0, 0};
        uint64_t meta[2] = {0, 0};
        for (unsigned r = 0; r < reps; r++) {
            for (int p = 0; p < 2; p++) {
                ns[p][r] = std_once(p, ops, nops, &failed[p], &meta[p]);
            }
        }
        double med[2];
        for (int p = 0; p < 2; p++) {
            qsort(ns[p], reps, sizeof(double), cmp_d);
            med[p] = ns[p][reps / 2];
        }
        for (int p = 0; p < 2; p++) {
            char label[64];
            char note[160];
            snprintf(label, sizeof(label), "%s, standard %s", p ? "buddy" : "range",
                     std_names[kind]);
            snprintf(note, sizeof(note), "%llu failed allocations; metadata %llu B%s",
                     (unsigned long long)failed[p], (unsigned long long)meta[p], "");
            if (p == 0) {
                size_t l = strlen(note);
                snprintf(note + l, sizeof(note) - l, "; %.2fx buddy (target <= 1.5x)",
                         med[0] / med[1]);
            }
            bench_row(label, med[p], -1, note);
        }
        free(ops);
    }
}

/* ---- scaling: free+alloc pairs with 1k .. 1M live blocks ----------------- */

typedef struct scale_run {
    capmem_alloc_t *a;
    uint64_t *off;
    uint64_t *size;
    size_t nlive;
    unsigned kind; /* 3: one page; 2: mixed */
    uint64_t seed;
} scale_run_t;

static uint64_t scale_size(scale_run_t *w)
{
    return w->kind == 3 ? PAGE : std_size(2, splitmix64(&w->seed));
}

static void body_scale(void *vctx, uint64_t iters)
{
    scale_run_t *w = vctx;
    for (uint64_t i = 0; i < iters; i++) {
        size_t k = (size_t)(((splitmix64(&w->seed) >> 32) * (uint64_t)w->nlive) >> 32);
        if (capmem_alloc_free(w->a, w->off[k], w->size[k]) != CAPMEM_OK) {
            abort();
        }
        w->size[k] = scale_size(w);
        if (capmem_alloc_alloc(w->a, w->size[k], 1, &w->off[k]) != CAPMEM_OK) {
            abort();
        }
    }
}

/* A span about twice what nlive blocks of the kind take, as a power of two. */
static uint64_t scale_span(size_t nlive, unsigned kind)
{
    uint64_t need = (uint64_t)nlive * (kind == 3 ? PAGE : 380ull * 1024) * 2;
    uint64_t span = 1ull << 30;
    while (span < need) {
        span <<= 1;
    }
    return span;
}

static double scale_one(const bench_t *b, int buddy, size_t nlive, unsigned kind, double *bytes)
{
    scale_run_t w = {.nlive = nlive, .kind = kind, .seed = 7};
    uint64_t span = scale_span(nlive, kind);
    if (buddy) {
        unsigned top = 20;
        must(capmem_alloc_create_buddy(0, span, 12, top, &w.a), "create buddy");
    } else {
        must(capmem_alloc_create_range(0, span, PAGE, &w.a), "create range");
    }
    w.off = malloc(nlive * sizeof(uint64_t));
    w.size = malloc(nlive * sizeof(uint64_t));
    if (w.off == NULL || w.size == NULL) {
        abort();
    }
    for (size_t i = 0; i < nlive; i++) {
        w.size[i] = scale_size(&w);
        must(capmem_alloc_alloc(w.a, w.size[i], 1, &w.off[i]), "fill");
    }
    uint64_t iters = bench_n(b, 1000000, 200000);
    body_scale(&w, iters / 2); /* the layout's steady state */
    double ns = bench_median_ns(b, body_scale, NULL, &w, iters);
    *bytes = (double)capmem__alloc_metadata_bytes(w.a) / (double)nlive;
    capmem_alloc_destroy(w.a);
    free(w.off);
    free(w.size);
    return ns;
}

void bench_alloc_scaling(const bench_t *b)
{
    bench_section("alloc: free+alloc pairs by live blocks (span ~2x the live bytes)");
    static const size_t counts[] = {1000, 10000, 100000, 1000000};
    for (unsigned kind = 3; kind >= 2; kind--) {
        for (unsigned i = 0; i < 4; i++) {
            size_t nlive = counts[i];
            if (b->smoke && nlive > 10000) {
                break;
            }
            if (b->quick && !b->smoke && nlive > 100000) {
                break;
            }
            double bytes[2];
            double ns[2];
            for (int p = 0; p < 2; p++) {
                ns[p] = scale_one(b, p, nlive, kind, &bytes[p]);
            }
            for (int p = 0; p < 2; p++) {
                char label[64];
                char note[128];
                snprintf(label, sizeof(label), "%s pair, %zu live, %s", p ? "buddy" : "range",
                         nlive, kind == 3 ? "1 page" : "mixed");
                snprintf(note, sizeof(note), "span %llu GiB%s",
                         (unsigned long long)(scale_span(nlive, kind) >> 30), "");
                if (p == 0) {
                    size_t l = strlen(note);
                    snprintf(note + l, sizeof(note) - l, "; %.2fx buddy (target <= 1.5x)",
                             ns[0] / ns[1]);
                }
                bench_row(label, ns[p], bytes[p], note);
            }
        }
    }
}

/* ---- callgrind mode ---------------------------------------------------------- */

/*
 * Run one standard workload once, for `valgrind --tool=callgrind
 * --toggle-collect=bench_cg_run`: the instructions per operation are the
 * count divided by the operations printed.
 */
int bench_alloc_callgrind(const char *name, uint64_t nops)
{
    for (unsigned kind = 0; kind < 3; kind++) {
        for (int p = 0; p < 2; p++) {
            char full[32];
            snprintf(full, sizeof(full), "%s-%s", p ? "buddy" : "range", std_names[kind]);
            if (strcmp(full, name) != 0) {
                continue;
            }
            uint32_t *ops = std_ops(kind, nops);
            uint64_t failed = 0;
            uint64_t meta = 0;
            (void)std_once(p, ops, nops, &failed, &meta);
            printf("%s: %llu operations, %llu failed allocations\n", full, (unsigned long long)nops,
                   (unsigned long long)failed);
            free(ops);
            return 0;
        }
    }
    return -1;
}
