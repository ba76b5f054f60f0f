/* SPDX-License-Identifier: MIT */
/*
 * Benchmarks of real mode (capmem/rm_real.h), each beside the baseline it
 * is judged against, measured in the same run:
 * - a real fault resolved by a pager that attaches a page (SIGSEGV, the
 *   registry, the arena lock, translate, deliver, the pager's attach,
 *   translate again, mmap of the memfd), against a bare SIGSEGV handler
 *   that maps one memfd page with mmap(MAP_FIXED) (target: within 1.2x);
 * - a sequential scan of an attached 64-page dataspace, per page (one real
 *   fault maps the whole piece), against the kernel's own first touch of a
 *   fresh anonymous page;
 * - memcpy of 1 MiB out of a mapped view, against memcpy between two
 *   malloc'd buffers (target: within 1.1x).
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "bench.h"
#include "capmem.h"

#ifdef CAPMEM_HAVE_VALGRIND
#include <valgrind/memcheck.h>
#else
#define VALGRIND_MAKE_MEM_DEFINED(p, n) ((void)(p), (void)(n))
#endif

#define PAGE 4096ull

/* ---- the baseline: a bare handler mapping one memfd page --------------------------- */

static int bare_fd = -1;
static uint8_t *bare_base;
static uint64_t bare_pages;

static void bare_handler(int sig, siginfo_t *si, void *uctx)
{
    (void)sig;
    (void)uctx;
    const uintptr_t a = (uintptr_t)si->si_addr & ~(uintptr_t)(PAGE - 1);
    if (mmap((void *)a, PAGE, PROT_READ | PROT_WRITE, MAP_FIXED | MAP_SHARED, bare_fd,
             (off_t)(a - (uintptr_t)bare_base)) == MAP_FAILED) {
        abort();
    }
}

static void bare_setup(void *ctx)
{
    (void)ctx;
    if (bare_base != NULL) {
        munmap(bare_base, bare_pages * PAGE);
    }
    bare_base = mmap(NULL, bare_pages * PAGE, PROT_NONE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (bare_base == MAP_FAILED) {
        abort();
    }
    /* As the library does for its views: memcheck lets the access through to the fault. */
    (void)VALGRIND_MAKE_MEM_DEFINED(bare_base, bare_pages * PAGE);
}

static void touch_pages(uint8_t *p, uint64_t iters)
{
    for (uint64_t i = 0; i < iters; i++) {
        ((volatile uint8_t *)p)[i * PAGE] = (uint8_t)i;
    }
}

static void bare_body(void *ctx, uint64_t iters)
{
    (void)ctx;
    touch_pages(bare_base, iters);
}

/* ---- a real fault, resolved by a pager that attaches a page ----------------------------- */

typedef struct real_ctx {
    capmem_arena_t *arena;
    capmem_cap_t root;
    capmem_cap_t ds; /* pages, sliced one per fault */
    capmem_cap_t rm;
    uint64_t pages;
    uint8_t *base;
    uint8_t *fresh; /* anonymous pages for the kernel's first touch */
} real_ctx_t;

static capmem_rm_fault_result_t slice_pager(capmem_arena_t *arena, const capmem_rm_fault_t *f,
                                            void *ctx)
{
    real_ctx_t *c = ctx;
    capmem_rm_attach_attr_t a = CAPMEM_RM_ATTACH_ATTR_INIT;
    a.at = f->address & ~(PAGE - 1);
    a.offset = a.at;
    a.size = PAGE;
    uint64_t addr;
    return capmem_rm_attach(arena, f->rm, c->ds, &a, &addr) == CAPMEM_OK
               ? CAPMEM_RM_FAULT_RESOLVED
               : CAPMEM_RM_FAULT_UNRESOLVED;
}

static void real_setup(void *vctx)
{
    real_ctx_t *c = vctx;
    if (c->rm != CAPMEM_CAP_NULL) {
        BENCH_TRY(capmem_rm_close(c->arena, c->rm));
    }
    capmem_rm_open_attr_t at = CAPMEM_RM_OPEN_ATTR_INIT;
    const uint64_t pages = c->pages > 256 ? c->pages : 256; /* room for the 1 MiB copy */
    at.size = pages * PAGE;
    at.donation = ((pages + 64) * 64 + PAGE - 1) & ~(PAGE - 1);
    BENCH_TRY(capmem_rm_open(c->arena, c->root, &at, &c->rm));
    BENCH_TRY(capmem_rm_set_fault_handler(c->arena, c->rm, slice_pager, c));
    void *base;
    BENCH_TRY(capmem_rm_real_map(c->arena, c->rm, 0, &base));
    c->base = base;
}

static void real_body(void *vctx, uint64_t iters)
{
    real_ctx_t *c = vctx;
    touch_pages(c->base, iters);
}

/* ---- a scan of an attached 64-page dataspace, and the kernel's first touch ------------ */

static void scan_setup(void *vctx)
{
    real_ctx_t *c = vctx;
    /* Detach and attach again: the view drops the piece, the next touch faults. */
    BENCH_TRY(capmem_rm_detach(c->arena, c->rm, 0));
    capmem_rm_attach_attr_t a = CAPMEM_RM_ATTACH_ATTR_INIT;
    a.at = 0;
    a.size = 64 * PAGE;
    uint64_t addr;
    BENCH_TRY(capmem_rm_attach(c->arena, c->rm, c->ds, &a, &addr));
}

static void scan_body(void *vctx, uint64_t iters)
{
    real_ctx_t *c = vctx;
    touch_pages(c->base, iters);
}

static void fresh_setup(void *vctx)
{
    real_ctx_t *c = vctx;
    if (c->fresh != NULL) {
        munmap(c->fresh, 64 * PAGE);
    }
    c->fresh = mmap(NULL, 64 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (c->fresh == MAP_FAILED) {
        abort();
    }
}

static void fresh_body(void *vctx, uint64_t iters)
{
    real_ctx_t *c = vctx;
    touch_pages(c->fresh, iters);
}

/* ---- memcpy ----------------------------------------------------------------------------- */

typedef struct copy_ctx {
    const uint8_t *src;
    uint8_t *dst;
    size_t len;
} copy_ctx_t;

static void copy_body(void *vctx, uint64_t iters)
{
    copy_ctx_t *c = vctx;
    for (uint64_t i = 0; i < iters; i++) {
        memcpy(c->dst, c->src, c->len);
        __asm__ volatile("" : : "r"(c->dst) : "memory");
    }
}

void bench_real(const bench_t *b)
{
    bench_section("region maps, real mode (mapped into the process)");
    char note[160];
    real_ctx_t c = {0};
    capmem_arena_attr_t aa = CAPMEM_ARENA_ATTR_INIT;
    aa.ram_size = 64ull << 20;
    BENCH_TRY(capmem_arena_create(&aa, &c.arena));
    if (capmem_arena_backing(c.arena) != CAPMEM_BACKING_MEMFD) {
        bench_row("real mode", 0, -1, "skipped: no memfd on this host");
        capmem_arena_destroy(c.arena);
        return;
    }
    BENCH_TRY(capmem_ram_boot(c.arena, NULL, &c.root));
    c.pages = bench_n(b, 4096, 2048);
    /* Room for the 1 MiB copy whatever the count. */
    BENCH_TRY(capmem_ram_alloc(c.arena, c.root, (c.pages > 256 ? c.pages : 256) * PAGE, &c.ds));

    /* The baseline's handler in place of the library's for its rows, then the library's back. */
    bare_pages = c.pages;
    bare_fd = memfd_create("bench-bare", MFD_CLOEXEC);
    if (bare_fd < 0 || ftruncate(bare_fd, (off_t)(bare_pages * PAGE)) != 0) {
        abort();
    }
    struct sigaction sa;
    struct sigaction prev;
    memset(&sa, 0, sizeof(sa));
    sa.sa_sigaction = bare_handler;
    sa.sa_flags = SA_SIGINFO | SA_NODEFER;
    sigaction(SIGSEGV, &sa, &prev);
    const double bare = bench_median_ns(b, bare_body, bare_setup, NULL, bare_pages);
    sigaction(SIGSEGV, &prev, NULL);
    munmap(bare_base, bare_pages * PAGE);
    bare_base = NULL;
    close(bare_fd);
    bench_row("base: bare SIGSEGV, mmap a memfd page", bare, -1, "one page per fault, no model");

    const double real = bench_median_ns(b, real_body, real_setup, &c, c.pages);
    snprintf(note, sizeof(note), "%.2fx the baseline (target <= 1.2x)", real / bare);
    bench_row("real fault, pager attaches a page", real, -1, note);

    /* A 64-page dataspace attached at 0 of the same map, scanned page by page. */
    BENCH_TRY(capmem_rm_close(c.arena, c.rm));
    c.rm = CAPMEM_CAP_NULL;
    real_setup(&c);
    capmem_rm_attach_attr_t a = CAPMEM_RM_ATTACH_ATTR_INIT;
    a.at = 0;
    a.size = 64 * PAGE;
    uint64_t addr;
    BENCH_TRY(capmem_rm_attach(c.arena, c.rm, c.ds, &a, &addr));
    const double fresh = bench_median_ns(b, fresh_body, fresh_setup, &c, 64);
    munmap(c.fresh, 64 * PAGE);
    bench_row("base: kernel first touch, anon page", fresh, -1, "per page");
    const double scan = bench_median_ns(b, scan_body, scan_setup, &c, 64);
    snprintf(note, sizeof(note), "per page: one real fault for 64 pages; %.2fx the first touch",
             scan / fresh);
    bench_row("real scan of a 64-page ds, per page", scan, -1, note);

    /* memcpy of 1 MiB out of a view against plain memory. */
    const size_t len = 1u << 20;
    BENCH_TRY(capmem_rm_detach(c.arena, c.rm, 0));
    a.size = len;
    BENCH_TRY(capmem_rm_attach(c.arena, c.rm, c.ds, &a, &addr));
    BENCH_TRY(capmem_rm_real_prefault(c.arena, c.rm, 0, len, CAPMEM_RM_WRITE));
    uint8_t *plain = malloc(len);
    uint8_t *dst = malloc(len);
    if (plain == NULL || dst == NULL) {
        abort();
    }
    memset(plain, 1, len);
    memset(dst, 2, len);
    memset(c.base, 3, len);
    const uint64_t reps = bench_n(b, 2000, 500);
    copy_ctx_t cc = {.src = plain, .dst = dst, .len = len};
    const double plain_ns = bench_median_ns(b, copy_body, NULL, &cc, reps);
    bench_row("base: memcpy 1 MiB, malloc to malloc", plain_ns, -1, NULL);
    cc.src = c.base;
    const double view_ns = bench_median_ns(b, copy_body, NULL, &cc, reps);
    snprintf(note, sizeof(note), "%.2fx plain memory (target <= 1.1x)", view_ns / plain_ns);
    bench_row("memcpy 1 MiB out of a view", view_ns, -1, note);
    free(plain);
    free(dst);
    capmem_arena_destroy(c.arena);
}
