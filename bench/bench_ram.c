/* SPDX-License-Identifier: MIT */
/*
 * Benchmarks of the capability, untyped and RAM layers: the cost of the
 * bookkeeping a capability system adds to an allocation (capability slot,
 * quota, donated record, physical range), and what one million live
 * dataspaces cost in memory.
 */
#include <stdio.h>
#include <stdlib.h>

#include "bench.h"
#include "capmem.h"
#include "cspace_internal.h"
#include "internal.h"

/* BENCH_TRY with a label of the caller's (the checker's reason, for capmem_check). */
static void must(capmem_err_t err, const char *what)
{
    if (err != CAPMEM_OK) {
        bench_die(__FILE__, what, err);
    }
}

typedef struct ram_ctx {
    capmem_arena_t *arena;
    capmem_cap_t session;
    capmem_cap_t cap;
} ram_ctx_t;

static void body_alloc_free(void *vctx, uint64_t iters)
{
    ram_ctx_t *c = vctx;
    for (uint64_t i = 0; i < iters; i++) {
        capmem_cap_t ds;
        if (capmem_ram_alloc(c->arena, c->session, 4096, &ds) != CAPMEM_OK ||
            capmem_ds_free(c->arena, ds) != CAPMEM_OK) {
            abort();
        }
    }
}

static void body_mint_delete(void *vctx, uint64_t iters)
{
    ram_ctx_t *c = vctx;
    for (uint64_t i = 0; i < iters; i++) {
        capmem_cap_t d;
        if (capmem_cap_mint(c->arena, c->cap, CAPMEM_RIGHT_READ, &d) != CAPMEM_OK ||
            capmem_cap_delete(c->arena, d) != CAPMEM_OK) {
            abort();
        }
    }
}

static void body_retype_delete(void *vctx, uint64_t iters)
{
    ram_ctx_t *c = vctx;
    capmem_retype_attr_t at = CAPMEM_RETYPE_ATTR_INIT;
    for (uint64_t i = 0; i < iters; i++) {
        capmem_cap_t fr;
        if (capmem_untyped_retype(c->arena, c->cap, &at, &fr, 1) != CAPMEM_OK ||
            capmem_cap_delete(c->arena, fr) != CAPMEM_OK) {
            abort();
        }
    }
}

static void body_read8(void *vctx, uint64_t iters)
{
    ram_ctx_t *c = vctx;
    uint64_t sink = 0;
    for (uint64_t i = 0; i < iters; i++) {
        uint64_t v;
        if (capmem_ds_read(c->arena, c->cap, (i * 8) & 4095, &v, 8) != CAPMEM_OK) {
            abort();
        }
        sink += v;
    }
    if (sink == 42) {
        puts("");
    }
}

static void body_identify(void *vctx, uint64_t iters)
{
    ram_ctx_t *c = vctx;
    for (uint64_t i = 0; i < iters; i++) {
        capmem_cap_info_t info;
        if (capmem_cap_identify(c->arena, c->cap, &info) != CAPMEM_OK) {
            abort();
        }
    }
}

/* The same call with a forged handle: the failure is recorded, its message formatted only if read.
 */
static void body_identify_forged(void *vctx, uint64_t iters)
{
    ram_ctx_t *c = vctx;
    for (uint64_t i = 0; i < iters; i++) {
        capmem_cap_info_t info;
        if (capmem_cap_identify(c->arena, c->cap, &info) != CAPMEM_E_INVALID_CAP) {
            abort();
        }
    }
}

/*
 * Dumps of the arena holding n dataspaces (the million row's) to /dev/null,
 * in each format: seconds for the whole dump (the only host memory it takes
 * is the physical map's sorting buffer, bounded whatever the arena holds).
 */
static void dump_rows(capmem_arena_t *a, uint64_t n)
{
    static const struct {
        capmem_dump_format_t format;
        const char *row;
    } formats[] = {
        {CAPMEM_DUMP_TEXT, "capmem_dump text to /dev/null"},
        {CAPMEM_DUMP_JSON, "capmem_dump JSON to /dev/null"},
        {CAPMEM_DUMP_DOT, "capmem_dump DOT to /dev/null"},
        {CAPMEM_DUMP_SVG, "capmem_dump SVG to /dev/null"},
    };
    FILE *null = fopen("/dev/null", "w");
    if (null == NULL) {
        return;
    }
    for (size_t i = 0; i < sizeof(formats) / sizeof(formats[0]); i++) {
        const double t0 = bench_now_ns();
        must(capmem_dump(a, null, formats[i].format), "dump");
        const double t = bench_now_ns() - t0;
        char note[160];
        snprintf(note, sizeof(note),
                 "%llu dataspaces: %.2f s per dump; host memory: one sorting buffer <= 1.5 MiB",
                 (unsigned long long)n, t / 1e9);
        bench_row(formats[i].row, t / (double)n, -1, note);
    }
    fclose(null);
}

/* The one-million-dataspaces row: fill one session, report time and memory per object. */
static void million(const bench_t *b)
{
    const uint64_t n = bench_n(b, 1000000, 100000);
    capmem_arena_attr_t aa = CAPMEM_ARENA_ATTR_INIT;
    aa.page_size = 256;
    aa.ram_size = (n * 256) + (n * 64) + (16ull << 20);
    aa.ram_size = (aa.ram_size + (1 << 20) - 1) & ~((1ull << 20) - 1);
    aa.cap_slots = (uint32_t)(n + 1024);
    capmem_arena_t *a = NULL;
    must(capmem_arena_create(&aa, &a), "arena");
    capmem_cap_t root;
    must(capmem_ram_boot(a, NULL, &root), "boot");
    capmem_ram_open_attr_t at = CAPMEM_RAM_OPEN_ATTR_INIT;
    at.donation = ((n + 64) * 64 + 4095) & ~4095ull;
    at.quota = n * 256;
    at.caps = n;
    capmem_cap_t s;
    must(capmem_ram_open(a, root, &at, &s), "open");
    uint64_t rss0 = bench_rss_bytes();
    double t0 = bench_now_ns();
    for (uint64_t i = 0; i < n; i++) {
        capmem_cap_t ds;
        must(capmem_ram_alloc(a, s, 256, &ds), "alloc");
    }
    double t1 = bench_now_ns();
    uint64_t rss1 = bench_rss_bytes();
    char why[256];
    must(capmem_check(a, why, sizeof(why)), why);
    /*
     * Resident growth minus the dataspaces' own pages (zeroed on allocation,
     * so touched) is the bookkeeping: records, capability slots, allocator.
     */
    double all = ((double)rss1 - (double)rss0 - (double)(n * 256)) / (double)n;
    char note[200];
    snprintf(note, sizeof(note),
             "%llu live in one session; resident per object %.0f B = 64 B record (donated, in "
             "the arena) + 40 B cap slot + %.0f B allocator",
             (unsigned long long)n, all, all - 104.0);
    bench_row("ram_alloc while filling to 1M live", (t1 - t0) / (double)n, 64.0, note);
    dump_rows(a, n);
    double t2 = bench_now_ns();
    must(capmem_ram_close(a, s), "close");
    double t3 = bench_now_ns();
    bench_row("ram_close with them all (per dataspace)", (t3 - t2) / (double)n, -1,
              "revoke + free + refund");
    capmem_arena_destroy(a);
}

/*
 * capmem_check over 4,000 accounts holding 100,000 dataspaces in all: one
 * pass per structure, so its cost per object stays flat as the number of
 * accounts grows (it used to scan every slot once per account).
 */
static void check_many(const bench_t *b)
{
    const unsigned accounts = bench_n(b, 4000, 400);
    const unsigned per = 25; /* 100,000 dataspaces at 4,000 accounts */
    capmem_arena_attr_t aa = CAPMEM_ARENA_ATTR_INIT;
    aa.page_size = 256;
    aa.ram_size = 256ull << 20;
    aa.cap_slots = 1u << 20;
    capmem_arena_t *a = NULL;
    must(capmem_arena_create(&aa, &a), "arena");
    capmem_cap_t root;
    must(capmem_ram_boot(a, NULL, &root), "boot");
    capmem_ram_open_attr_t at = CAPMEM_RAM_OPEN_ATTR_INIT;
    at.donation = 4096;
    at.quota = per * 256;
    at.caps = per;
    for (unsigned i = 0; i < accounts; i++) {
        capmem_cap_t s;
        must(capmem_ram_open(a, root, &at, &s), "open");
        for (unsigned j = 0; j < per; j++) {
            capmem_cap_t ds;
            must(capmem_ram_alloc(a, s, 256, &ds), "alloc");
        }
    }
    const size_t objects = capmem_cap_count(a);
    char why[256];
    double best = 0;
    for (unsigned r = 0; r < (b->repeats > 3 ? 3 : b->repeats); r++) {
        double t0 = bench_now_ns();
        must(capmem_check(a, why, sizeof(why)), why);
        double t = bench_now_ns() - t0;
        best = r == 0 || t < best ? t : best;
    }
    char note[160];
    snprintf(note, sizeof(note), "%u accounts, %u dataspaces, %zu capabilities: %.1f ms per check",
             accounts, accounts * per, objects, best / 1e6);
    bench_row("capmem_check, per capability", best / (double)objects, -1, note);
    capmem_arena_destroy(a);
}

void bench_ram(const bench_t *b)
{
    if (bench_cg_skip(b, "ram-") && bench_cg_skip(b, "cap-") && bench_cg_skip(b, "ds-")) {
        return;
    }
    bench_section("capabilities, untyped, RAM service");
    capmem_arena_attr_t aa = CAPMEM_ARENA_ATTR_INIT;
    aa.ram_size = 256ull << 20;
    ram_ctx_t c = {0};
    must(capmem_arena_create(&aa, &c.arena), "arena");
    capmem_cap_t root;
    must(capmem_ram_boot(c.arena, NULL, &root), "boot");
    capmem_ram_open_attr_t at = CAPMEM_RAM_OPEN_ATTR_INIT;
    at.quota = 64ull << 20;
    must(capmem_ram_open(c.arena, root, &at, &c.session), "open");
    /* Keep some live dataspaces so the allocator is not trivially empty. */
    for (int i = 0; i < 1000; i++) {
        capmem_cap_t ds;
        must(capmem_ram_alloc(c.arena, c.session, 4096, &ds), "prefill");
    }
    const uint64_t iters = bench_n(b, 1000000, 100000);
    double ns = bench_measure(b, "ram-alloc-free", body_alloc_free, NULL, &c, iters);
    bench_row("ram_alloc+ds_free 1-page dataspace", ns, 64.0,
              "cap + quota + record + phys range + zeroing; target < 250 ns");
    c.cap = root;
    double ok_ns = bench_measure(b, "cap-identify", body_identify, NULL, &c, iters);
    bench_row("cap_identify, valid handle", ok_ns, -1, "lookup + copy of the slot's facts");
    /* A slot index that does not exist, with this arena's tag: forged. */
    c.cap = capmem__cap_make(capmem__cap_tag(root), CAPMEM__CAP_INDEX_MASK, capmem__cap_gen(root),
                             capmem_cap_type(root));
    ns = bench_measure(b, "cap-identify-forged", body_identify_forged, NULL, &c, iters);
    char note[128];
    snprintf(note, sizeof(note), "refused, message formatted when read: %.2fx the valid lookup",
             ns / ok_ns);
    bench_row("cap_identify, forged handle", ns, -1, note);
    c.cap = root;
    ns = bench_median_ns(b, body_mint_delete, NULL, &c, iters);
    bench_row("cap_mint+cap_delete", ns, 40.0, "one slot of the capability table");
    must(capmem_ram_alloc(c.arena, c.session, 4096, &c.cap), "ds");
    ns = bench_measure(b, "ds-read8", body_read8, NULL, &c, iters);
    bench_row("dataspace_read 8 bytes", ns, -1, "lookup + bounds + memcpy");
    capmem_arena_destroy(c.arena);

    must(capmem_arena_create(&aa, &c.arena), "arena");
    capmem_untyped_info_t boot[8];
    size_t n = 0;
    must(capmem_untyped_boot(c.arena, boot, 8, &n), "boot untyped");
    capmem_retype_attr_t rt = CAPMEM_RETYPE_ATTR_INIT;
    rt.type = CAPMEM_OBJ_UNTYPED;
    rt.size_bits = 24;
    rt.child_policy = CAPMEM_UNTYPED_RANGE;
    size_t big = 0;
    /* n counts every boot untyped; only the first 8 were written. */
    for (size_t i = 1; i < n && i < 8; i++) {
        big = boot[i].size_bits > boot[big].size_bits ? i : big;
    }
    must(capmem_untyped_retype(c.arena, boot[big].cap, &rt, &c.cap, 1), "untyped");
    ns = bench_median_ns(b, body_retype_delete, NULL, &c, iters);
    bench_row("untyped_retype+cap_delete 4 KiB frame", ns, -1, "range policy");
    capmem_arena_destroy(c.arena);

    if (b->cg_key != NULL) {
        return;
    }
    million(b);
    check_many(b);
}
