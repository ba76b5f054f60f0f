/* SPDX-License-Identifier: MIT */
/*
 * Tests of the alloc layer through its public API: every error path of every
 * policy (and that it changes nothing), the reference scenarios of
 * docs/alloc.md, a user policy plugged in through the vtable, seeded randomized
 * runs checked against a shadow bitmap, and host-failure injection.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "alloc_internal.h" /* one test bends a built-in policy's vtable */
#include "capmem/alloc.h"
#include "first_fit.h"
#include "internal.h"

/* ---- helpers ------------------------------------------------------------ */

#define SNAP_MAX 1024

typedef struct blk {
    uint64_t off;
    uint64_t size;
    int state;
} blk_t;

/* What a policy reports about itself: compared before and after failures. */
typedef struct snap {
    uint64_t avail;
    uint64_t largest;
    size_t n;
    uint64_t hash; /* over every block, also beyond SNAP_MAX */
    blk_t b[SNAP_MAX];
} snap_t;

static int snap_visit(uint64_t off, uint64_t size, capmem_block_state_t st, void *ctx)
{
    snap_t *s = ctx;
    if (s->n < SNAP_MAX) {
        s->b[s->n] = (blk_t){off, size, (int)st};
    }
    s->n++;
    s->hash = (s->hash ^ off) * 0x100000001b3ull;
    s->hash = (s->hash ^ size) * 0x100000001b3ull;
    s->hash = (s->hash ^ (uint64_t)st) * 0x100000001b3ull;
    return 0;
}

static snap_t *snap_take(const capmem_alloc_t *a)
{
    snap_t *s = calloc(1, sizeof(*s));
    assert_non_null(s);
    s->avail = capmem_alloc_avail(a);
    s->largest = capmem_alloc_largest(a);
    s->hash = 0xcbf29ce484222325ull;
    assert_int_equal(capmem_alloc_walk(a, snap_visit, s), CAPMEM_OK);
    return s;
}

static void snap_same(const snap_t *x, const snap_t *y, const char *what, int line)
{
    if (x->avail != y->avail || x->largest != y->largest || x->n != y->n || x->hash != y->hash) {
        fail_msg("line %d: %s changed the allocator (avail %llu->%llu, largest %llu->%llu, "
                 "blocks %zu->%zu)",
                 line, what, (unsigned long long)x->avail, (unsigned long long)y->avail,
                 (unsigned long long)x->largest, (unsigned long long)y->largest, x->n, y->n);
    }
}

static void check_ok(const capmem_alloc_t *a, int line)
{
    char why[256];
    capmem_err_t err = capmem_alloc_check(a, why, sizeof(why));
    if (err != CAPMEM_OK) {
        fail_msg("line %d: %s: invariant broken: %s", line, capmem_alloc_name(a), why);
    }
}
#define CHECK(a) check_ok((a), __LINE__)

static void expect_err(capmem_err_t got, capmem_err_t want, const char *expr, int line)
{
    if (got != want) {
        fail_msg("line %d: %s returned %s (%s), expected %s", line, expr, capmem_err_name(got),
                 got != CAPMEM_OK ? capmem_last_error()->message : "-", capmem_err_name(want));
    }
}
#define EXPECT(expr, want) expect_err((expr), (want), #expr, __LINE__)

/* Expect an error and that nothing observable changed. */
#define EXPECT_UNCHANGED(a, expr, want)                                                            \
    do {                                                                                           \
        snap_t *before_ = snap_take(a);                                                            \
        expect_err((expr), (want), #expr, __LINE__);                                               \
        snap_t *after_ = snap_take(a);                                                             \
        snap_same(before_, after_, #expr, __LINE__);                                               \
        free(before_);                                                                             \
        free(after_);                                                                              \
        CHECK(a);                                                                                  \
    } while (0)

static uint64_t alloc_ok(capmem_alloc_t *a, uint64_t size, uint64_t align, int line)
{
    uint64_t off = 0;
    capmem_err_t err = capmem_alloc_alloc(a, size, align, &off);
    if (err != CAPMEM_OK) {
        fail_msg("line %d: alloc(0x%llx, 0x%llx) failed: %s", line, (unsigned long long)size,
                 (unsigned long long)align, capmem_last_error()->message);
    }
    check_ok(a, line);
    return off;
}
#define ALLOC(a, size, align) alloc_ok((a), (size), (align), __LINE__)

/* Assert the walk yields exactly these blocks. */
static void expect_blocks(const capmem_alloc_t *a, const blk_t *want, size_t n, int line)
{
    snap_t *s = snap_take(a);
    if (s->n != n) {
        fail_msg("line %d: walk gave %zu blocks, expected %zu", line, s->n, n);
    }
    for (size_t i = 0; i < n; i++) {
        if (s->b[i].off != want[i].off || s->b[i].size != want[i].size ||
            s->b[i].state != want[i].state) {
            fail_msg("line %d: block %zu is [0x%llx +0x%llx %s], expected [0x%llx +0x%llx %s]",
                     line, i, (unsigned long long)s->b[i].off, (unsigned long long)s->b[i].size,
                     s->b[i].state ? "used" : "free", (unsigned long long)want[i].off,
                     (unsigned long long)want[i].size, want[i].state ? "used" : "free");
        }
    }
    free(s);
}
#define EXPECT_BLOCKS(a, ...)                                                                      \
    do {                                                                                           \
        const blk_t want_[] = {__VA_ARGS__};                                                       \
        expect_blocks((a), want_, sizeof(want_) / sizeof(want_[0]), __LINE__);                     \
    } while (0)
#define U(off, size)                                                                               \
    {                                                                                              \
        (off), (size), CAPMEM_BLOCK_USED                                                           \
    }
#define F(off, size)                                                                               \
    {                                                                                              \
        (off), (size), CAPMEM_BLOCK_FREE                                                           \
    }

enum { P_WATERMARK, P_RANGE, P_BUDDY, P_COUNT };

static capmem_alloc_t *make(int policy, uint64_t base, uint64_t size)
{
    capmem_alloc_t *a = NULL;
    capmem_err_t err;
    switch (policy) {
    case P_WATERMARK:
        err = capmem_alloc_create_watermark(base, size, &a);
        break;
    case P_RANGE:
        err = capmem_alloc_create_range(base, size, 0x100, &a);
        break;
    default:
        err = capmem_alloc_create_buddy(base, size, 8, 20, &a);
        break;
    }
    if (err != CAPMEM_OK) {
        fail_msg("create policy %d: %s", policy, capmem_last_error()->message);
    }
    CHECK(a);
    return a;
}

/* ---- creation ----------------------------------------------------------- */

static void test_create_rejects_bad_arguments_and_leaves_out_untouched(void **state)
{
    (void)state;
    capmem_alloc_t *sentinel = (capmem_alloc_t *)(uintptr_t)0x1234;
    capmem_alloc_t *a = sentinel;
    EXPECT(capmem_alloc_create_watermark(0, 0x1000, NULL), CAPMEM_E_INVALID_ARGS);
    EXPECT(capmem_alloc_create_watermark(0, 0, &a), CAPMEM_E_INVALID_ARGS);
    EXPECT(capmem_alloc_create_watermark(UINT64_MAX - 10, 0x1000, &a), CAPMEM_E_INVALID_ARGS);
    EXPECT(capmem_alloc_create_range(0, 0x1000, 0, &a), CAPMEM_E_INVALID_ARGS);
    EXPECT(capmem_alloc_create_range(0, 0x1000, 3, &a), CAPMEM_E_INVALID_ARGS);
    EXPECT(capmem_alloc_create_range(0x800, 0x1000, 0x1000, &a), CAPMEM_E_INVALID_ARGS);
    EXPECT(capmem_alloc_create_range(0, 0x1800, 0x1000, &a), CAPMEM_E_INVALID_ARGS);
    EXPECT(capmem_alloc_create_range(0, 0, 0x1000, &a), CAPMEM_E_INVALID_ARGS);
    EXPECT(capmem_alloc_create_range(0, 1ull << 40, 1, &a), CAPMEM_E_INVALID_ARGS);
    EXPECT(capmem_alloc_create_range(0, 0x1000, 0x100, NULL), CAPMEM_E_INVALID_ARGS);
    EXPECT(capmem_alloc_create_buddy(0, 0x1000, 13, 12, &a), CAPMEM_E_INVALID_ARGS);
    EXPECT(capmem_alloc_create_buddy(0, 0x1000, 12, 63, &a), CAPMEM_E_INVALID_ARGS);
    EXPECT(capmem_alloc_create_buddy(0x100, 0x1000, 12, 20, &a), CAPMEM_E_INVALID_ARGS);
    EXPECT(capmem_alloc_create_buddy(0, 0x1100, 12, 20, &a), CAPMEM_E_INVALID_ARGS);
    EXPECT(capmem_alloc_create_buddy(0, 0, 12, 20, &a), CAPMEM_E_INVALID_ARGS);
    EXPECT(capmem_alloc_create_buddy(0, 1ull << 40, 0, 20, &a), CAPMEM_E_INVALID_ARGS);
    EXPECT(capmem_alloc_create_buddy(0, 0x1000, 12, 12, NULL), CAPMEM_E_INVALID_ARGS);
    EXPECT(capmem_alloc_create_custom(NULL, NULL, &a), CAPMEM_E_INVALID_ARGS);
    capmem_alloc_ops_t empty = {.name = "empty"};
    EXPECT(capmem_alloc_create_custom(&empty, NULL, &a), CAPMEM_E_INVALID_ARGS);
    assert_ptr_equal(a, sentinel);
    assert_string_equal(capmem_err_name(capmem_last_error()->code), "INVALID_ARGS");
    assert_string_equal(capmem_last_error()->function, "capmem_alloc_create_custom");
}

static void test_create_reports_span_name_and_everything_free(void **state)
{
    (void)state;
    const char *names[P_COUNT] = {"watermark", "range", "buddy"};
    for (int p = 0; p < P_COUNT; p++) {
        capmem_alloc_t *a = make(p, 0x100000, 0x3000);
        assert_string_equal(capmem_alloc_name(a), names[p]);
        assert_int_equal(capmem_alloc_base(a), 0x100000);
        assert_int_equal(capmem_alloc_size(a), 0x3000);
        assert_int_equal(capmem_alloc_avail(a), 0x3000);
        /* Buddy covers 0x3000 with a 0x2000 and a 0x1000 block. */
        assert_int_equal(capmem_alloc_largest(a), p == P_BUDDY ? 0x2000 : 0x3000);
        capmem_alloc_destroy(a);
    }
    capmem_alloc_destroy(NULL);
    assert_int_equal(capmem_alloc_avail(NULL), 0);
    assert_string_equal(capmem_alloc_name(NULL), "");
}

/* ---- generic argument validation ------------------------------------------ */

static void test_generic_calls_reject_bad_arguments_and_change_nothing(void **state)
{
    (void)state;
    for (int p = 0; p < P_COUNT; p++) {
        capmem_alloc_t *a = make(p, 0x10000, 0x4000);
        uint64_t live = ALLOC(a, 0x400, 0x400);
        uint64_t off = 0xdead;
        EXPECT(capmem_alloc_alloc(NULL, 0x100, 1, &off), CAPMEM_E_INVALID_ARGS);
        EXPECT_UNCHANGED(a, capmem_alloc_alloc(a, 0x100, 1, NULL), CAPMEM_E_INVALID_ARGS);
        EXPECT_UNCHANGED(a, capmem_alloc_alloc(a, 0, 1, &off), CAPMEM_E_INVALID_ARGS);
        EXPECT_UNCHANGED(a, capmem_alloc_alloc(a, 0x100, 0, &off), CAPMEM_E_INVALID_ARGS);
        EXPECT_UNCHANGED(a, capmem_alloc_alloc(a, 0x100, 3, &off), CAPMEM_E_INVALID_ARGS);
        EXPECT_UNCHANGED(a, capmem_alloc_alloc(a, 0x100000, 1, &off), CAPMEM_E_NOT_ENOUGH_MEMORY);
        EXPECT_UNCHANGED(a, capmem_alloc_alloc(a, UINT64_MAX, 1, &off), CAPMEM_E_NOT_ENOUGH_MEMORY);
        assert_int_equal(capmem_last_error()->needed, UINT64_MAX);
        assert_int_equal(off, 0xdead);

        EXPECT(capmem_alloc_alloc_at(NULL, 0x10000, 0x100), CAPMEM_E_INVALID_ARGS);
        EXPECT_UNCHANGED(a, capmem_alloc_alloc_at(a, 0x13000, 0), CAPMEM_E_INVALID_ARGS);
        EXPECT_UNCHANGED(a, capmem_alloc_alloc_at(a, 0xff00, 0x100), CAPMEM_E_INVALID_ARGS);
        EXPECT_UNCHANGED(a, capmem_alloc_alloc_at(a, 0x13f00, 0x200), CAPMEM_E_INVALID_ARGS);
        EXPECT_UNCHANGED(a, capmem_alloc_alloc_at(a, UINT64_MAX - 0xff, 0x200),
                         CAPMEM_E_INVALID_ARGS);
        assert_int_equal(capmem_last_error()->code, CAPMEM_E_INVALID_ARGS);

        EXPECT(capmem_alloc_free(NULL, live, 0x400), CAPMEM_E_INVALID_ARGS);
        EXPECT_UNCHANGED(a, capmem_alloc_free(a, live, 0), CAPMEM_E_INVALID_ARGS);
        EXPECT_UNCHANGED(a, capmem_alloc_free(a, 0x14000, 0x400), CAPMEM_E_INVALID_ARGS);
        EXPECT_UNCHANGED(a, capmem_alloc_free(a, UINT64_MAX, 2), CAPMEM_E_INVALID_ARGS);

        EXPECT(capmem_alloc_walk(NULL, snap_visit, NULL), CAPMEM_E_INVALID_ARGS);
        EXPECT(capmem_alloc_walk(a, NULL, NULL), CAPMEM_E_INVALID_ARGS);
        EXPECT(capmem_alloc_check(NULL, NULL, 0), CAPMEM_E_INVALID_ARGS);
        EXPECT(capmem_alloc_check(a, NULL, 10), CAPMEM_E_INVALID_ARGS);
        EXPECT(capmem_alloc_check(a, NULL, 0), CAPMEM_OK);

        EXPECT(capmem_alloc_free(a, live, 0x400), CAPMEM_OK);
        CHECK(a);
        capmem_alloc_destroy(a);
    }
}

/* Double frees, foreign ranges, sub-ranges, spanning ranges, wrong sizes. */
static void test_every_policy_refuses_foreign_frees_and_changes_nothing(void **state)
{
    (void)state;
    for (int p = 0; p < P_COUNT; p++) {
        capmem_alloc_t *a = make(p, 0x10000, 0x4000);
        uint64_t x = ALLOC(a, 0x400, 0x400);
        uint64_t y = ALLOC(a, 0x400, 0x400);
        assert_int_equal(y, x + 0x400);
        EXPECT_UNCHANGED(a, capmem_alloc_free(a, x + 0x100, 0x100), CAPMEM_E_NOT_ALLOCATED);
        EXPECT_UNCHANGED(a, capmem_alloc_free(a, x, 0x800), CAPMEM_E_NOT_ALLOCATED);
        EXPECT_UNCHANGED(a, capmem_alloc_free(a, x, 0x1000), CAPMEM_E_NOT_ALLOCATED);
        EXPECT_UNCHANGED(a, capmem_alloc_free(a, x + 0x200, 0x400), CAPMEM_E_NOT_ALLOCATED);
        EXPECT_UNCHANGED(a, capmem_alloc_free(a, 0x13000, 0x400), CAPMEM_E_NOT_ALLOCATED);
        if (p != P_BUDDY) {
            /* Buddy rounds 0x300 up to the 0x400 block it gave: that is the same block. */
            EXPECT_UNCHANGED(a, capmem_alloc_free(a, x, 0x300), CAPMEM_E_NOT_ALLOCATED);
        }
        EXPECT(capmem_alloc_free(a, x, 0x400), CAPMEM_OK);
        CHECK(a);
        EXPECT_UNCHANGED(a, capmem_alloc_free(a, x, 0x400), CAPMEM_E_NOT_ALLOCATED);
        assert_int_equal(capmem_last_error()->address, x);
        assert_non_null(strstr(capmem_last_error()->message, "0x"));
        assert_string_equal(capmem_last_error()->function, "capmem_alloc_free");
        EXPECT(capmem_alloc_free(a, y, 0x400), CAPMEM_OK);
        CHECK(a);
        capmem_alloc_destroy(a);
    }
}

/* ---- watermark ------------------------------------------------------------ */

/* The seL4 fragmentation scenario (docs/untyped.md), watermark side. */
static void test_watermark_skips_alignment_gap_and_fails_fourth_request(void **state)
{
    (void)state;
    capmem_alloc_t *a = NULL;
    EXPECT(capmem_alloc_create_watermark(0x40000, 0x2000, &a), CAPMEM_OK);
    assert_int_equal(ALLOC(a, 0x400, 0x400), 0x40000);
    assert_int_equal(ALLOC(a, 0x800, 0x800), 0x40800); /* 0x400 gap lost */
    assert_int_equal(ALLOC(a, 0x1000, 0x1000), 0x41000);
    assert_int_equal(capmem_alloc_avail(a), 0);
    uint64_t off = 7;
    EXPECT_UNCHANGED(a, capmem_alloc_alloc(a, 0x400, 0x400, &off), CAPMEM_E_NOT_ENOUGH_MEMORY);
    const capmem_error_info_t *d = capmem_last_error();
    assert_int_equal(d->needed, 1024);
    assert_int_equal(d->available, 0);
    assert_non_null(strstr(d->message, "1024 bytes needed, 0 bytes available"));
    assert_int_equal(off, 7);
    /* Freeing the first two objects does not make their space reusable. */
    EXPECT(capmem_alloc_free(a, 0x40000, 0x400), CAPMEM_OK);
    EXPECT(capmem_alloc_free(a, 0x40800, 0x800), CAPMEM_OK);
    CHECK(a);
    assert_int_equal(capmem_alloc_avail(a), 0);
    EXPECT_UNCHANGED(a, capmem_alloc_alloc(a, 0x400, 0x400, &off), CAPMEM_E_NOT_ENOUGH_MEMORY);
    EXPECT_UNCHANGED(a, capmem_alloc_alloc_at(a, 0x40000, 0x400), CAPMEM_E_NOT_ENOUGH_MEMORY);
    assert_non_null(strstr(capmem_last_error()->message, "overlaps"));
    EXPECT_BLOCKS(a, U(0x41000, 0x1000));
    EXPECT(capmem_alloc_free(a, 0x41000, 0x1000), CAPMEM_OK);
    capmem_alloc_reset(a);
    CHECK(a);
    EXPECT_BLOCKS(a, F(0x40000, 0x2000));
    assert_int_equal(ALLOC(a, 0x400, 0x400), 0x40000);
    capmem_alloc_destroy(a);
}

static void test_watermark_alloc_at_moves_index_and_loses_gap(void **state)
{
    (void)state;
    capmem_alloc_t *a = make(P_WATERMARK, 0, 0x10000);
    EXPECT(capmem_alloc_alloc_at(a, 0x3000, 0x100), CAPMEM_OK);
    CHECK(a);
    assert_int_equal(capmem_alloc_avail(a), 0x10000 - 0x3100);
    assert_int_equal(ALLOC(a, 0x10, 1), 0x3100);
    EXPECT_UNCHANGED(a, capmem_alloc_alloc_at(a, 0x1000, 0x10), CAPMEM_E_NOT_ENOUGH_MEMORY);
    EXPECT_BLOCKS(a, U(0x3000, 0x100), U(0x3100, 0x10), F(0x3110, 0x10000 - 0x3110));
    capmem_alloc_destroy(a);
}

/* Many blocks grow the live-block table; a failed growth changes nothing. */
static void test_watermark_table_growth_failure_is_clean(void **state)
{
    (void)state;
    capmem_alloc_t *a = make(P_WATERMARK, 0, 1 << 20);
    uint64_t off = 0;
    for (int i = 0; i < 16; i++) {
        (void)ALLOC(a, 8, 8);
    }
    capmem__inject_fail(CAPMEM__HOST_MALLOC, 1);
    EXPECT_UNCHANGED(a, capmem_alloc_alloc(a, 8, 8, &off), CAPMEM_E_HOST_NOMEM);
    capmem__inject_reset();
    for (int i = 0; i < 1000; i++) {
        (void)ALLOC(a, 8, 8);
    }
    /* Freed entries become tombstones and are compacted instead of growing. */
    for (uint64_t o = 0; o < 1016 * 8; o += 16) {
        EXPECT(capmem_alloc_free(a, o, 8), CAPMEM_OK);
    }
    CHECK(a);
    EXPECT(capmem_alloc_free(a, 0, 8), CAPMEM_E_NOT_ALLOCATED);
    EXPECT(capmem_alloc_free(a, 8, 8), CAPMEM_OK);
    CHECK(a);
    capmem_alloc_destroy(a);
}

/* ---- range ---------------------------------------------------------------- */

static void test_range_sel4_fragmentation_reuses_gap(void **state)
{
    (void)state;
    capmem_alloc_t *a = NULL;
    EXPECT(capmem_alloc_create_range(0x40000, 0x2000, 0x100, &a), CAPMEM_OK);
    assert_int_equal(ALLOC(a, 0x400, 0x400), 0x40000);
    assert_int_equal(ALLOC(a, 0x800, 0x800), 0x40800);
    assert_int_equal(ALLOC(a, 0x1000, 0x1000), 0x41000);
    assert_int_equal(ALLOC(a, 0x400, 0x400), 0x40400); /* the gap */
    assert_int_equal(capmem_alloc_avail(a), 0);
    capmem_alloc_destroy(a);
}

/*
 * Free ranges of 3, 2, 2 and a big tail granules. Good fit: the smallest
 * class whose every range fits (below 16 granules a class is one length, so
 * that is the best fit by length), and in it the newest range: the 2-range
 * at 0x700 was cut last.
 */
static void test_range_good_fit_takes_the_newest_of_the_smallest_class(void **state)
{
    (void)state;
    capmem_alloc_t *a = NULL;
    EXPECT(capmem_alloc_create_range(0, 0x10000, 0x100, &a), CAPMEM_OK);
    /* Layout: [3 free][1 used][2 free][1 used][2 free][1 used][tail free] */
    EXPECT(capmem_alloc_alloc_at(a, 0x300, 0x100), CAPMEM_OK);
    EXPECT(capmem_alloc_alloc_at(a, 0x600, 0x100), CAPMEM_OK);
    EXPECT(capmem_alloc_alloc_at(a, 0x900, 0x100), CAPMEM_OK);
    CHECK(a);
    assert_int_equal(ALLOC(a, 0x200, 1), 0x700);
    assert_int_equal(ALLOC(a, 0x101, 1), 0x400); /* rounds to 2 granules */
    assert_int_equal(ALLOC(a, 0x100, 1), 0x0);   /* 3-range is now the best fit */
    assert_int_equal(ALLOC(a, 0x200, 1), 0x100);
    assert_int_equal(ALLOC(a, 0x200, 1), 0xa00); /* only the tail is left */
    EXPECT_BLOCKS(a, U(0x0, 0x100), U(0x100, 0x200), U(0x300, 0x100), U(0x400, 0x200),
                  U(0x600, 0x100), U(0x700, 0x200), U(0x900, 0x100), U(0xa00, 0x200),
                  F(0xc00, 0x10000 - 0xc00));
    CHECK(a);
    capmem_alloc_destroy(a);
}

/*
 * Above 16 granules a class spans several lengths: a request takes the
 * lowest class all of whose ranges fit, even when a shorter fitting range
 * sits in its own class; only when no such class has a range does it take
 * one of those.
 */
static void test_range_good_fit_rounds_up_to_a_class_that_always_fits(void **state)
{
    (void)state;
    capmem_alloc_t *a = NULL;
    /* Granule 1: lengths are bytes. From 32 to 63 a class holds two lengths: {32, 33},
     * {34, 35}, ... Free ranges of 33 and 34 bytes. */
    EXPECT(capmem_alloc_create_range(0, 0x1000, 1, &a), CAPMEM_OK);
    EXPECT(capmem_alloc_alloc_at(a, 33, 1), CAPMEM_OK);
    EXPECT(capmem_alloc_alloc_at(a, 68, 0x1000 - 68), CAPMEM_OK);
    CHECK(a);
    /* 33 fits the 33-range exactly, but its class also holds 32: the class {34, 35} always
     * fits, so the 34-range serves. */
    assert_int_equal(ALLOC(a, 33, 1), 34);
    CHECK(a);
    /* Now only the 33-range (and one byte) are free: the fallback finds it. */
    assert_int_equal(ALLOC(a, 33, 1), 0);
    CHECK(a);
    uint64_t off = 9;
    EXPECT_UNCHANGED(a, capmem_alloc_alloc(a, 4, 1, &off), CAPMEM_E_NOT_ENOUGH_MEMORY);
    assert_int_equal(off, 9);
    capmem_alloc_destroy(a);
}

/*
 * alloc_at inside a range that free merged from three pieces: the range is
 * split into a head and a tail around the block, both free, and the
 * address index (which alloc_at searches) finds the tail afterwards.
 */
static void test_range_alloc_at_splits_a_merged_range(void **state)
{
    (void)state;
    capmem_alloc_t *a = NULL;
    EXPECT(capmem_alloc_create_range(0x10000, 0x10000, 0x100, &a), CAPMEM_OK);
    uint64_t x = ALLOC(a, 0x300, 1);
    uint64_t y = ALLOC(a, 0x200, 1);
    uint64_t z = ALLOC(a, 0x400, 1);
    (void)ALLOC(a, 0x100, 1); /* keeps the merged range apart from the tail */
    EXPECT(capmem_alloc_free(a, x, 0x300), CAPMEM_OK);
    EXPECT(capmem_alloc_free(a, z, 0x400), CAPMEM_OK);
    EXPECT(capmem_alloc_free(a, y, 0x200), CAPMEM_OK); /* merges both sides */
    CHECK(a);
    EXPECT_BLOCKS(a, F(0x10000, 0x900), U(0x10900, 0x100), F(0x10a00, 0xf600));
    EXPECT(capmem_alloc_alloc_at(a, 0x10400, 0x200), CAPMEM_OK);
    CHECK(a);
    EXPECT_BLOCKS(a, F(0x10000, 0x400), U(0x10400, 0x200), F(0x10600, 0x300), U(0x10900, 0x100),
                  F(0x10a00, 0xf600));
    /* The tail and the head are found again by exact offset, inside and at their ends. */
    EXPECT(capmem_alloc_alloc_at(a, 0x10700, 0x200), CAPMEM_OK);
    EXPECT(capmem_alloc_alloc_at(a, 0x10000, 0x100), CAPMEM_OK);
    EXPECT(capmem_alloc_alloc_at(a, 0x10300, 0x100), CAPMEM_OK);
    CHECK(a);
    EXPECT_UNCHANGED(a, capmem_alloc_alloc_at(a, 0x10500, 0x200), CAPMEM_E_NOT_ENOUGH_MEMORY);
    EXPECT_BLOCKS(a, U(0x10000, 0x100), F(0x10100, 0x200), U(0x10300, 0x100), U(0x10400, 0x200),
                  F(0x10600, 0x100), U(0x10700, 0x200), U(0x10900, 0x100), F(0x10a00, 0xf600));
    capmem_alloc_destroy(a);
}

/*
 * alloc_at looks first in the free range the last free made or grew; that
 * hint goes stale when the range is taken whole and its node reused for
 * another range, and a stale hint must neither admit an allocated place nor
 * hide a free one.
 */
static void test_range_alloc_at_after_the_freed_range_vanished(void **state)
{
    (void)state;
    capmem_alloc_t *a = NULL;
    EXPECT(capmem_alloc_create_range(0x10000, 0x10000, 0x100, &a), CAPMEM_OK);
    (void)ALLOC(a, 0x100, 1);
    uint64_t y = ALLOC(a, 0x100, 1);
    (void)ALLOC(a, 0x100, 1);
    EXPECT(capmem_alloc_free(a, y, 0x100), CAPMEM_OK); /* the hint: y's one-granule range */
    EXPECT(ALLOC(a, 0x100, 1), y);                     /* taken whole: the node dies */
    CHECK(a);
    EXPECT_UNCHANGED(a, capmem_alloc_alloc_at(a, y, 0x100), CAPMEM_E_NOT_ENOUGH_MEMORY);
    /* A split inside the tail reuses the dead node for the new tail range. */
    EXPECT(capmem_alloc_alloc_at(a, 0x18000, 0x100), CAPMEM_OK);
    CHECK(a);
    EXPECT_UNCHANGED(a, capmem_alloc_alloc_at(a, y, 0x100), CAPMEM_E_NOT_ENOUGH_MEMORY);
    EXPECT(capmem_alloc_alloc_at(a, 0x18800, 0x200), CAPMEM_OK);
    EXPECT(capmem_alloc_alloc_at(a, 0x10400, 0x100), CAPMEM_OK);
    CHECK(a);
    EXPECT_BLOCKS(a, U(0x10000, 0x100), U(0x10100, 0x100), U(0x10200, 0x100), F(0x10300, 0x100),
                  U(0x10400, 0x100), F(0x10500, 0x7b00), U(0x18000, 0x100), F(0x18100, 0x700),
                  U(0x18800, 0x200), F(0x18a00, 0x7600));
    capmem_alloc_destroy(a);
}

typedef struct count_ctx {
    uint64_t nfree;
    uint64_t nused;
} count_ctx_t;

static int count_blocks(uint64_t off, uint64_t size, capmem_block_state_t st, void *ctx)
{
    (void)off;
    (void)size;
    count_ctx_t *c = ctx;
    c->nfree += st == CAPMEM_BLOCK_FREE;
    c->nused += st == CAPMEM_BLOCK_USED;
    return 0;
}

/*
 * The range policy's metadata follows what is live, not the span: the same
 * operations over a 16 MiB and a 1 TiB span cost the same bytes, and at every
 * step at most what alloc.h documents: 24 bytes per node up to the peak
 * number of free ranges, and a hash table at least a fifth full (8-byte
 * slots: at most 40 bytes per key, one key per live block and two per free
 * range, room for the 3 keys of one operation), never below 64 slots.
 */
static void test_range_metadata_is_bounded_by_live_blocks_not_span(void **state)
{
    (void)state;
    capmem_alloc_t *small = NULL;
    capmem_alloc_t *huge = NULL;
    EXPECT(capmem_alloc_create_range(0, 1ull << 24, 0x1000, &small), CAPMEM_OK);
    EXPECT(capmem_alloc_create_range(0, 1ull << 40, 0x1000, &huge), CAPMEM_OK);
    uint64_t live[64] = {0};
    uint64_t sizes[64] = {0};
    uint64_t seed = 0x1234567;
    uint64_t peak_free = 1;
    for (int op = 0; op < 3000; op++) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        unsigned k = (unsigned)(seed >> 58);
        if (sizes[k] != 0) {
            EXPECT(capmem_alloc_free(small, live[k], sizes[k]), CAPMEM_OK);
            EXPECT(capmem_alloc_free(huge, live[k], sizes[k]), CAPMEM_OK);
            sizes[k] = 0;
        } else {
            uint64_t sz = 0x1000 * (1 + ((seed >> 20) % 24));
            live[k] = ALLOC(small, sz, 1);
            EXPECT(capmem_alloc_alloc_at(huge, live[k], sz), CAPMEM_OK);
            sizes[k] = sz;
        }
        count_ctx_t c = {0};
        EXPECT(capmem_alloc_walk(huge, count_blocks, &c), CAPMEM_OK);
        peak_free = c.nfree > peak_free ? c.nfree : peak_free;
        uint64_t bytes = capmem__alloc_metadata_bytes(huge);
        assert_int_equal(bytes, capmem__alloc_metadata_bytes(small));
        uint64_t bound = 24 * peak_free + 40 * (c.nused + 2 * c.nfree + 3) + 64 * 8;
        if (bytes > bound) {
            fail_msg("op %d: %llu bytes of metadata for %llu free ranges and %llu live blocks", op,
                     (unsigned long long)bytes, (unsigned long long)c.nfree,
                     (unsigned long long)c.nused);
        }
    }
    CHECK(small);
    CHECK(huge);
    capmem_alloc_destroy(small);
    capmem_alloc_destroy(huge);
}

static void test_range_alloc_at_exact_offset_and_refuses_overlap(void **state)
{
    (void)state;
    capmem_alloc_t *a = NULL;
    EXPECT(capmem_alloc_create_range(0x100000, 0x10000, 0x1000, &a), CAPMEM_OK);
    EXPECT(capmem_alloc_alloc_at(a, 0x104000, 0x2000), CAPMEM_OK);
    CHECK(a);
    EXPECT_BLOCKS(a, F(0x100000, 0x4000), U(0x104000, 0x2000), F(0x106000, 0xa000));
    EXPECT_UNCHANGED(a, capmem_alloc_alloc_at(a, 0x105000, 0x1000), CAPMEM_E_NOT_ENOUGH_MEMORY);
    assert_non_null(strstr(capmem_last_error()->message, "overlaps"));
    EXPECT_UNCHANGED(a, capmem_alloc_alloc_at(a, 0x103000, 0x2000), CAPMEM_E_NOT_ENOUGH_MEMORY);
    EXPECT_UNCHANGED(a, capmem_alloc_alloc_at(a, 0x100000, 0x10000), CAPMEM_E_NOT_ENOUGH_MEMORY);
    EXPECT_UNCHANGED(a, capmem_alloc_alloc_at(a, 0x100800, 0x1000), CAPMEM_E_INVALID_ARGS);
    EXPECT_UNCHANGED(a, capmem_alloc_free(a, 0x104800, 0x1000), CAPMEM_E_INVALID_ARGS);
    /* Exactly filling the hole before it and the tail after it. */
    EXPECT(capmem_alloc_alloc_at(a, 0x100000, 0x4000), CAPMEM_OK);
    EXPECT(capmem_alloc_alloc_at(a, 0x10f000, 1), CAPMEM_OK);
    CHECK(a);
    EXPECT_BLOCKS(a, U(0x100000, 0x4000), U(0x104000, 0x2000), F(0x106000, 0x9000),
                  U(0x10f000, 0x1000));
    capmem_alloc_destroy(a);
}

static void test_range_free_coalesces_both_neighbours(void **state)
{
    (void)state;
    capmem_alloc_t *a = NULL;
    EXPECT(capmem_alloc_create_range(0, 0x5000, 0x1000, &a), CAPMEM_OK);
    for (uint64_t i = 0; i < 5; i++) {
        assert_int_equal(ALLOC(a, 0x1000, 1), i * 0x1000);
    }
    EXPECT(capmem_alloc_free(a, 0x1000, 0x1000), CAPMEM_OK);
    EXPECT(capmem_alloc_free(a, 0x3000, 0x1000), CAPMEM_OK);
    CHECK(a);
    EXPECT_BLOCKS(a, U(0x0, 0x1000), F(0x1000, 0x1000), U(0x2000, 0x1000), F(0x3000, 0x1000),
                  U(0x4000, 0x1000));
    assert_int_equal(capmem_alloc_largest(a), 0x1000);
    EXPECT(capmem_alloc_free(a, 0x2000, 0x1000), CAPMEM_OK); /* joins both sides */
    CHECK(a);
    EXPECT_BLOCKS(a, U(0x0, 0x1000), F(0x1000, 0x3000), U(0x4000, 0x1000));
    assert_int_equal(capmem_alloc_largest(a), 0x3000);
    EXPECT(capmem_alloc_free(a, 0x0, 0x1000), CAPMEM_OK);    /* joins the right side */
    EXPECT(capmem_alloc_free(a, 0x4000, 0x1000), CAPMEM_OK); /* joins the left side */
    CHECK(a);
    EXPECT_BLOCKS(a, F(0x0, 0x5000));
    capmem_alloc_destroy(a);
}

typedef struct ranges {
    size_t n;
    blk_t b[16];
    size_t stop_after;
} ranges_t;

static int collect_range(uint64_t off, uint64_t size, capmem_block_state_t st, void *ctx)
{
    ranges_t *r = ctx;
    r->b[r->n++] = (blk_t){off, size, (int)st};
    return r->n == r->stop_after;
}

static void test_range_free_ranges_visits_in_address_order(void **state)
{
    (void)state;
    capmem_alloc_t *a = NULL;
    EXPECT(capmem_alloc_create_range(0, 0x8000, 0x1000, &a), CAPMEM_OK);
    EXPECT(capmem_alloc_alloc_at(a, 0x1000, 0x1000), CAPMEM_OK);
    EXPECT(capmem_alloc_alloc_at(a, 0x4000, 0x2000), CAPMEM_OK);
    ranges_t r = {.stop_after = 16};
    EXPECT(capmem_alloc_free_ranges(a, collect_range, &r), CAPMEM_OK);
    assert_int_equal(r.n, 3);
    const blk_t want[3] = {F(0x0, 0x1000), F(0x2000, 0x2000), F(0x6000, 0x2000)};
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(r.b[i].off, want[i].off);
        assert_int_equal(r.b[i].size, want[i].size);
        assert_int_equal(r.b[i].state, CAPMEM_BLOCK_FREE);
    }
    ranges_t stop = {.stop_after = 2};
    EXPECT(capmem_alloc_free_ranges(a, collect_range, &stop), CAPMEM_OK);
    assert_int_equal(stop.n, 2);
    EXPECT(capmem_alloc_free_ranges(a, NULL, NULL), CAPMEM_E_INVALID_ARGS);
    EXPECT(capmem_alloc_free_ranges(NULL, collect_range, &r), CAPMEM_E_INVALID_ARGS);
    for (int p = 0; p < P_COUNT; p++) {
        if (p != P_RANGE) {
            capmem_alloc_t *o = make(p, 0, 0x1000);
            EXPECT(capmem_alloc_free_ranges(o, collect_range, &r), CAPMEM_E_WRONG_TYPE);
            capmem_alloc_destroy(o);
        }
    }
    capmem_alloc_destroy(a);
}

/* Alignment above the granule: the block goes to the lowest aligned spot. */
static void test_range_alignment_above_granule_places_block_aligned(void **state)
{
    (void)state;
    capmem_alloc_t *a = NULL;
    EXPECT(capmem_alloc_create_range(0x100, 0x8000, 0x100, &a), CAPMEM_OK);
    /* Span starts at 0x100: the first 0x1000-aligned spot is 0x1000. */
    assert_int_equal(ALLOC(a, 0x100, 0x1000), 0x1000);
    EXPECT_BLOCKS(a, F(0x100, 0xf00), U(0x1000, 0x100), F(0x1100, 0x7000));
    /* The 0xf00 range is the best fit for 0x200 at 0x200 alignment. */
    assert_int_equal(ALLOC(a, 0x200, 0x200), 0x200);
    /* No 0x8000-aligned spot holds 0x100 bytes inside [0x100, 0x8100). */
    uint64_t off = 3;
    EXPECT_UNCHANGED(a, capmem_alloc_alloc(a, 0x200, 0x8000, &off), CAPMEM_E_NOT_ENOUGH_MEMORY);
    assert_int_equal(ALLOC(a, 0x100, 0x8000), 0x8000);
    assert_int_equal(off, 3);
    /* Sizes round up to the granule: one byte takes a whole one. */
    uint64_t before = capmem_alloc_avail(a);
    uint64_t one = ALLOC(a, 1, 1);
    assert_int_equal(capmem_alloc_avail(a), before - 0x100);
    EXPECT(capmem_alloc_free(a, one, 1), CAPMEM_OK);
    capmem_alloc_destroy(a);
}

/* ---- buddy ---------------------------------------------------------------- */

/* The buddy halving scenario (docs/alloc.md), block by block. */
static void test_buddy_halving_splits_lowest_first_and_consumes_pieces(void **state)
{
    (void)state;
    capmem_alloc_t *a = NULL;
    EXPECT(capmem_alloc_create_buddy(0x80000, 0x2000, 10, 13, &a), CAPMEM_OK);
    EXPECT_BLOCKS(a, F(0x80000, 0x2000));
    assert_int_equal(ALLOC(a, 0x400, 1), 0x80000);
    EXPECT_BLOCKS(a, U(0x80000, 0x400), F(0x80400, 0x400), F(0x80800, 0x800), F(0x81000, 0x1000));
    assert_int_equal(ALLOC(a, 0x800, 1), 0x80800);
    assert_int_equal(ALLOC(a, 0x1000, 1), 0x81000);
    assert_int_equal(ALLOC(a, 0x400, 1), 0x80400);
    EXPECT_BLOCKS(a, U(0x80000, 0x400), U(0x80400, 0x400), U(0x80800, 0x800), U(0x81000, 0x1000));
    assert_int_equal(capmem_alloc_avail(a), 0);
    assert_int_equal(capmem_alloc_largest(a), 0);
    uint64_t off = 1;
    EXPECT_UNCHANGED(a, capmem_alloc_alloc(a, 0x400, 1, &off), CAPMEM_E_NOT_ENOUGH_MEMORY);
    assert_int_equal(capmem_last_error()->needed, 0x400);
    assert_int_equal(capmem_last_error()->available, 0);
    capmem_alloc_destroy(a);
}

static void test_buddy_sel4_fragmentation_reuses_gap(void **state)
{
    (void)state;
    capmem_alloc_t *a = NULL;
    EXPECT(capmem_alloc_create_buddy(0x40000, 0x2000, 10, 13, &a), CAPMEM_OK);
    assert_int_equal(ALLOC(a, 0x400, 0x400), 0x40000);
    assert_int_equal(ALLOC(a, 0x800, 0x800), 0x40800);
    assert_int_equal(ALLOC(a, 0x1000, 0x1000), 0x41000);
    assert_int_equal(ALLOC(a, 0x400, 0x400), 0x40400);
    capmem_alloc_destroy(a);
}

static void test_buddy_free_merges_buddies_back(void **state)
{
    (void)state;
    capmem_alloc_t *a = NULL;
    EXPECT(capmem_alloc_create_buddy(0, 0x2000, 10, 13, &a), CAPMEM_OK);
    uint64_t x = ALLOC(a, 0x400, 1);
    uint64_t y = ALLOC(a, 0x400, 1);
    EXPECT(capmem_alloc_free(a, x, 0x400), CAPMEM_OK);
    CHECK(a);
    EXPECT_BLOCKS(a, F(0x0, 0x400), U(0x400, 0x400), F(0x800, 0x800), F(0x1000, 0x1000));
    EXPECT(capmem_alloc_free(a, y, 0x300), CAPMEM_OK); /* same rounded block */
    CHECK(a);
    EXPECT_BLOCKS(a, F(0x0, 0x2000));
    capmem_alloc_destroy(a);
}

/* A span neither a power of two nor aligned to the largest block. */
static void test_buddy_covers_unaligned_span_with_natural_blocks(void **state)
{
    (void)state;
    capmem_alloc_t *a = NULL;
    EXPECT(capmem_alloc_create_buddy(0x1400, 0x3c00, 10, 12, &a), CAPMEM_OK);
    CHECK(a);
    EXPECT_BLOCKS(a, F(0x1400, 0x400), F(0x1800, 0x800), F(0x2000, 0x1000), F(0x3000, 0x1000),
                  F(0x4000, 0x1000));
    assert_int_equal(capmem_alloc_largest(a), 0x1000);
    assert_int_equal(ALLOC(a, 0x800, 1), 0x1800);
    assert_int_equal(ALLOC(a, 0x1000, 1), 0x2000);
    EXPECT(capmem_alloc_free(a, 0x1800, 0x800), CAPMEM_OK);
    CHECK(a);
    /* 0x1400 and 0x1800 are not buddies of one legal block: no merge. */
    EXPECT_BLOCKS(a, F(0x1400, 0x400), F(0x1800, 0x800), U(0x2000, 0x1000), F(0x3000, 0x1000),
                  F(0x4000, 0x1000));
    uint64_t off = 0;
    EXPECT_UNCHANGED(a, capmem_alloc_alloc(a, 0x2000, 1, &off), CAPMEM_E_NOT_ENOUGH_MEMORY);
    capmem_alloc_destroy(a);
}

static void test_buddy_alloc_at_splits_toward_offset(void **state)
{
    (void)state;
    capmem_alloc_t *a = NULL;
    EXPECT(capmem_alloc_create_buddy(0, 0x2000, 10, 13, &a), CAPMEM_OK);
    EXPECT(capmem_alloc_alloc_at(a, 0x1c00, 0x400), CAPMEM_OK);
    CHECK(a);
    EXPECT_BLOCKS(a, F(0x0, 0x1000), F(0x1000, 0x800), F(0x1800, 0x400), U(0x1c00, 0x400));
    EXPECT_UNCHANGED(a, capmem_alloc_alloc_at(a, 0x1800, 0x800), CAPMEM_E_NOT_ENOUGH_MEMORY);
    assert_non_null(strstr(capmem_last_error()->message, "overlaps"));
    EXPECT_UNCHANGED(a, capmem_alloc_alloc_at(a, 0x1000, 0x1000), CAPMEM_E_NOT_ENOUGH_MEMORY);
    EXPECT_UNCHANGED(a, capmem_alloc_alloc_at(a, 0x1400, 0x800), CAPMEM_E_INVALID_ARGS);
    EXPECT_UNCHANGED(a, capmem_alloc_alloc_at(a, 0x1c00, 0x400), CAPMEM_E_NOT_ENOUGH_MEMORY);
    EXPECT(capmem_alloc_alloc_at(a, 0x1000, 0x500), CAPMEM_OK); /* rounds to 0x800 */
    CHECK(a);
    EXPECT_BLOCKS(a, F(0x0, 0x1000), U(0x1000, 0x800), F(0x1800, 0x400), U(0x1c00, 0x400));
    EXPECT(capmem_alloc_free(a, 0x1000, 0x800), CAPMEM_OK);
    EXPECT(capmem_alloc_free(a, 0x1c00, 0x400), CAPMEM_OK);
    CHECK(a);
    EXPECT_BLOCKS(a, F(0x0, 0x2000));
    capmem_alloc_destroy(a);
}

/* align > block size: a small block at a large alignment. */
static void test_buddy_alignment_above_block_size_finds_aligned_block(void **state)
{
    (void)state;
    capmem_alloc_t *a = NULL;
    EXPECT(capmem_alloc_create_buddy(0, 0x4000, 10, 14, &a), CAPMEM_OK);
    assert_int_equal(ALLOC(a, 0x400, 1), 0x0);
    /* Lowest 0x400 block free is 0x400, but a 0x1000-aligned one is needed. */
    assert_int_equal(ALLOC(a, 0x400, 0x1000), 0x1000);
    EXPECT_BLOCKS(a, U(0x0, 0x400), F(0x400, 0x400), F(0x800, 0x800), U(0x1000, 0x400),
                  F(0x1400, 0x400), F(0x1800, 0x800), F(0x2000, 0x2000));
    /* No free 0x400 block is 0x800-aligned; the lowest free 0x800 block serves. */
    assert_int_equal(ALLOC(a, 0x400, 0x800), 0x800);
    uint64_t off = 0;
    EXPECT_UNCHANGED(a, capmem_alloc_alloc(a, 0x400, 0x8000, &off), CAPMEM_E_NOT_ENOUGH_MEMORY);
    EXPECT_UNCHANGED(a, capmem_alloc_alloc(a, 0x8000, 1, &off), CAPMEM_E_NOT_ENOUGH_MEMORY);
    capmem_alloc_destroy(a);
}

/* ---- custom policy: the plain first-fit list of tests/first_fit.c ---------- */

static void test_custom_first_fit_policy_works_through_generic_api(void **state)
{
    (void)state;
    test_ff_t f = {.base = 0x1000, .size = 0x2000};
    capmem_alloc_t *a = NULL;
    EXPECT(capmem_alloc_create_custom_span(&test_ff_ops, &f, 0x1000, 0x2000, &a), CAPMEM_OK);
    assert_string_equal(capmem_alloc_name(a), "first-fit");
    assert_int_equal(capmem_alloc_base(a), 0x1000);
    assert_int_equal(capmem_alloc_size(a), 0x2000);
    /* The seL4 sequence: first fit also reuses the gap. */
    assert_int_equal(ALLOC(a, 0x400, 0x400), 0x1000);
    assert_int_equal(ALLOC(a, 0x800, 0x800), 0x1800);
    assert_int_equal(ALLOC(a, 0x1000, 0x1000), 0x2000);
    assert_int_equal(ALLOC(a, 0x400, 0x400), 0x1400);
    assert_int_equal(capmem_alloc_avail(a), 0);
    EXPECT(capmem_alloc_free(a, 0x1800, 0x800), CAPMEM_OK);
    assert_int_equal(capmem_alloc_largest(a), 0x800);
    EXPECT_BLOCKS(a, U(0x1000, 0x400), U(0x1400, 0x400), F(0x1800, 0x800), U(0x2000, 0x1000));
    /* Bad input is stopped before the policy sees it. */
    int calls = f.calls;
    uint64_t off = 9;
    EXPECT(capmem_alloc_alloc(a, 0, 1, &off), CAPMEM_E_INVALID_ARGS);
    EXPECT(capmem_alloc_alloc(a, 8, 6, &off), CAPMEM_E_INVALID_ARGS);
    EXPECT(capmem_alloc_alloc_at(a, 0x800, 0x100), CAPMEM_E_INVALID_ARGS);
    EXPECT(capmem_alloc_alloc_at(a, 0x2f00, 0x200), CAPMEM_E_INVALID_ARGS);
    EXPECT(capmem_alloc_free(a, 0x3000, 0x10), CAPMEM_E_INVALID_ARGS);
    assert_int_equal(f.calls, calls);
    /* The policy's own errors come through, with a message even if it set none. */
    EXPECT_UNCHANGED(a, capmem_alloc_free(a, 0x1800, 0x800), CAPMEM_E_NOT_ALLOCATED);
    assert_string_equal(capmem_last_error()->function, "capmem_alloc_free");
    assert_true(capmem_last_error()->message[0] != '\0');
    EXPECT_UNCHANGED(a, capmem_alloc_alloc_at(a, 0x1c00, 0x800), CAPMEM_E_NOT_ENOUGH_MEMORY);
    EXPECT(capmem_alloc_alloc_at(a, 0x1800, 0x800), CAPMEM_OK);
    CHECK(a); /* no check hook: passes */
    capmem_alloc_reset(a);
    assert_int_equal(capmem_alloc_avail(a), 0x2000);
    capmem_alloc_destroy(a);
    assert_int_equal(f.destroyed, 1);
    assert_int_equal(off, 9);

    /* Without a span, and without destroy/walk hooks. */
    capmem_alloc_ops_t bare = test_ff_ops;
    bare.destroy = NULL;
    bare.walk = NULL;
    test_ff_t g = {.base = 0, .size = 0x100};
    EXPECT(capmem_alloc_create_custom(&bare, &g, &a), CAPMEM_OK);
    assert_int_equal(capmem_alloc_size(a), UINT64_MAX);
    assert_int_equal(ALLOC(a, 0x10, 0x10), 0);
    EXPECT(capmem_alloc_walk(a, snap_visit, NULL), CAPMEM_E_UNSUPPORTED);
    capmem_alloc_destroy(a);
    assert_int_equal(g.destroyed, 0);
}

/* ---- custom policies that answer wrongly --------------------------------- */

/*
 * The tests' first fit with a switch: while lie is LIE_NONE it answers
 * honestly; otherwise its hooks answer as told, without changing the first
 * fit's state, so that "nothing changed" can be asserted after the wrapper
 * refuses the answer.
 */
typedef enum lie {
    LIE_NONE,
    LIE_ANSWER,     /* alloc says OK with offset `answer`, recording nothing */
    LIE_NO_OFFSET,  /* alloc says OK without storing an offset */
    LIE_OWN_DETAIL, /* fail with a detail record of its own (capmem_error_set) */
    LIE_SILENT,     /* fail without recording anything */
    LIE_OK,         /* alloc_at says OK to anything, recording nothing */
    LIE_REENTER,    /* alloc calls back into its own wrapper, then answers honestly */
} lie_t;

typedef struct liar {
    test_ff_t ff; /* the honest policy underneath */
    lie_t lie;
    uint64_t answer;
    int calls;              /* mutating hooks called, honest or not */
    capmem_alloc_t *handle; /* the wrapper, for LIE_REENTER */
    capmem_err_t nested[3]; /* what the calls back returned */
} liar_t;

static capmem_err_t liar_own_detail(void)
{
    capmem_err_t err = capmem_error_set(CAPMEM_E_NOT_ENOUGH_MEMORY, "liar: quota of %d blocks", 3);
    capmem_error_set_numbers(7, 3);
    return err;
}

static capmem_err_t liar_alloc(void *self, uint64_t size, uint64_t align, uint64_t *offset)
{
    liar_t *l = self;
    l->calls++;
    switch (l->lie) {
    case LIE_ANSWER:
        *offset = l->answer;
        return CAPMEM_OK;
    case LIE_NO_OFFSET:
        return CAPMEM_OK;
    case LIE_REENTER: {
        uint64_t nested_off = 0;
        l->nested[0] = capmem_alloc_alloc(l->handle, size, align, &nested_off);
        l->nested[1] = capmem_alloc_alloc_at(l->handle, l->ff.base, size);
        l->nested[2] = capmem_alloc_free(l->handle, l->ff.base, size);
        capmem_alloc_reset(l->handle);   /* does nothing from inside a hook */
        capmem_alloc_destroy(l->handle); /* neither does this */
        return test_ff_ops.alloc(&l->ff, size, align, offset);
    }
    case LIE_OWN_DETAIL:
        return liar_own_detail();
    case LIE_SILENT:
        return CAPMEM_E_NOT_ENOUGH_MEMORY;
    case LIE_NONE:
    default:
        return test_ff_ops.alloc(&l->ff, size, align, offset);
    }
}

static capmem_err_t liar_alloc_at(void *self, uint64_t offset, uint64_t size)
{
    liar_t *l = self;
    l->calls++;
    switch ((int)l->lie) {
    case LIE_OK:
        return CAPMEM_OK;
    case LIE_OWN_DETAIL:
        return liar_own_detail();
    case LIE_SILENT:
        return CAPMEM_E_NOT_ENOUGH_MEMORY;
    case LIE_NONE:
    default:
        return test_ff_ops.alloc_at(&l->ff, offset, size);
    }
}

static capmem_err_t liar_free(void *self, uint64_t offset, uint64_t size)
{
    liar_t *l = self;
    l->calls++;
    if (l->lie == LIE_OWN_DETAIL) {
        return liar_own_detail();
    }
    return test_ff_ops.free(&l->ff, offset, size);
}

static uint64_t liar_avail(const void *self)
{
    return test_ff_ops.avail(&((const liar_t *)self)->ff);
}

static uint64_t liar_largest(const void *self)
{
    return test_ff_ops.largest(&((const liar_t *)self)->ff);
}

static void liar_reset(void *self)
{
    liar_t *l = self;
    l->calls++;
    test_ff_ops.reset(&l->ff);
}

static capmem_err_t liar_walk(const void *self, capmem_alloc_walk_fn fn, void *ctx)
{
    return test_ff_ops.walk(&((const liar_t *)self)->ff, fn, ctx);
}

static const capmem_alloc_ops_t liar_ops = {
    .name = "liar",
    .alloc = liar_alloc,
    .alloc_at = liar_alloc_at,
    .free = liar_free,
    .avail = liar_avail,
    .largest = liar_largest,
    .reset = liar_reset,
    .walk = liar_walk,
};

/* A liar over [base, base + size), honest until told otherwise. */
static capmem_alloc_t *make_liar(liar_t *l, uint64_t base, uint64_t size)
{
    memset(l, 0, sizeof(*l));
    l->ff.base = base;
    l->ff.size = size;
    capmem_alloc_t *a = NULL;
    EXPECT(capmem_alloc_create_custom_span(&liar_ops, l, base, size, &a), CAPMEM_OK);
    l->handle = a;
    CHECK(a);
    return a;
}

static void test_custom_hook_own_detail_is_passed_on_unchanged(void **state)
{
    (void)state;
    liar_t l;
    capmem_alloc_t *a = make_liar(&l, 0x1000, 0x2000);
    uint64_t x = ALLOC(a, 0x400, 0x400);
    uint64_t off = 5;
    l.lie = LIE_OWN_DETAIL;
    EXPECT_UNCHANGED(a, capmem_alloc_alloc(a, 0x100, 1, &off), CAPMEM_E_NOT_ENOUGH_MEMORY);
    EXPECT_UNCHANGED(a, capmem_alloc_alloc_at(a, 0x2000, 0x100), CAPMEM_E_NOT_ENOUGH_MEMORY);
    EXPECT_UNCHANGED(a, capmem_alloc_free(a, x, 0x400), CAPMEM_E_NOT_ENOUGH_MEMORY);
    const capmem_error_info_t *d = capmem_last_error();
    assert_int_equal(d->code, CAPMEM_E_NOT_ENOUGH_MEMORY);
    assert_string_equal(d->message, "liar: quota of 3 blocks");
    assert_int_equal(d->needed, 7);
    assert_int_equal(d->available, 3);
    assert_string_equal(d->function, "capmem_alloc_free"); /* the label is the public call's */
    EXPECT_UNCHANGED(a, capmem_alloc_alloc(a, 0x100, 1, &off), CAPMEM_E_NOT_ENOUGH_MEMORY);
    assert_string_equal(capmem_last_error()->message, "liar: quota of 3 blocks");
    assert_string_equal(capmem_last_error()->function, "capmem_alloc_alloc");
    assert_int_equal(capmem_last_error()->needed, 7);

    /* A hook that records nothing gets a message naming the policy, even when
     * a stale record with the same code is lying there from before. */
    (void)capmem_error_set(CAPMEM_E_NOT_ENOUGH_MEMORY, "stale");
    capmem_error_set_numbers(1, 2);
    l.lie = LIE_SILENT;
    EXPECT_UNCHANGED(a, capmem_alloc_alloc(a, 0x100, 1, &off), CAPMEM_E_NOT_ENOUGH_MEMORY);
    d = capmem_last_error();
    assert_non_null(strstr(d->message, "'liar'"));
    assert_null(strstr(d->message, "stale"));
    assert_int_equal(d->needed, 0);
    assert_string_equal(d->function, "capmem_alloc_alloc");
    assert_int_equal(off, 5);

    l.lie = LIE_NONE;
    EXPECT(capmem_alloc_free(a, x, 0x400), CAPMEM_OK);
    CHECK(a);
    capmem_alloc_destroy(a);
}

/* A refused answer: POLICY, the detail names policy, request and answer. */
static void expect_policy(capmem_alloc_t *a, liar_t *l, uint64_t size, uint64_t align,
                          uint64_t answer, const char *why, int line)
{
    char req[96];
    char ans[40];
    uint64_t off = 0xdead;
    int calls = l->calls;
    snap_t *before = snap_take(a);
    expect_err(capmem_alloc_alloc(a, size, align, &off), CAPMEM_E_POLICY, "alloc", line);
    snap_t *after = snap_take(a);
    snap_same(before, after, "a refused answer", line);
    free(before);
    free(after);
    check_ok(a, line);
    const capmem_error_info_t *d = capmem_last_error();
    snprintf(req, sizeof(req), "'%s' answered alloc(size 0x%llx, align 0x%llx)",
             capmem_alloc_name(a), (unsigned long long)size, (unsigned long long)align);
    snprintf(ans, sizeof(ans), "offset 0x%llx", (unsigned long long)answer);
    if (strstr(d->message, req) == NULL || strstr(d->message, ans) == NULL ||
        strstr(d->message, why) == NULL) {
        fail_msg("line %d: message '%s' lacks '%s', '%s' or '%s'", line, d->message, req, ans, why);
    }
    assert_string_equal(d->function, "capmem_alloc_alloc");
    assert_int_equal(d->address, answer);
    assert_int_equal(d->size, size);
    assert_int_equal(off, 0xdead);
    /* Asked once, and not again (not even to free the bad block). */
    assert_int_equal(l->calls, calls + 1);
}
#define EXPECT_POLICY(a, l, size, align, answer, why)                                              \
    expect_policy((a), (l), (size), (align), (answer), (why), __LINE__)

static void test_custom_answer_outside_span_is_refused_as_policy(void **state)
{
    (void)state;
    liar_t l;
    capmem_alloc_t *a = make_liar(&l, 0x1000, 0x2000);
    uint64_t x = ALLOC(a, 0x400, 0x400);
    l.lie = LIE_ANSWER;
    const uint64_t answers[] = {0x3000, 0x2f00, 0x800, 0, UINT64_MAX - 0x10};
    for (size_t i = 0; i < sizeof(answers) / sizeof(answers[0]); i++) {
        l.answer = answers[i];
        EXPECT_POLICY(a, &l, 0x400, 0x100, answers[i], "leaves the span [0x1000, 0x3000)");
        assert_int_equal(capmem_last_error()->bound_min, 0x1000);
        assert_int_equal(capmem_last_error()->bound_max, 0x3000);
    }
    /* OK without an offset: nothing was stored, which is no block at all. */
    l.lie = LIE_NO_OFFSET;
    EXPECT_POLICY(a, &l, 0x10, 1, UINT64_MAX, "none stored");
    /* The policy still works for honest answers. */
    l.lie = LIE_NONE;
    assert_int_equal(ALLOC(a, 0x400, 0x400), 0x1400);
    EXPECT(capmem_alloc_free(a, x, 0x400), CAPMEM_OK);
    EXPECT(capmem_alloc_free(a, 0x1400, 0x400), CAPMEM_OK);
    CHECK(a);
    capmem_alloc_destroy(a);
}

static void test_custom_misaligned_answer_is_refused_as_policy(void **state)
{
    (void)state;
    liar_t l;
    capmem_alloc_t *a = make_liar(&l, 0x1000, 0x2000);
    uint64_t x = ALLOC(a, 0x400, 0x400);
    l.lie = LIE_ANSWER;
    l.answer = 0x2100;
    EXPECT_POLICY(a, &l, 0x100, 0x200, 0x2100, "not a multiple of the alignment");
    l.answer = 0x2200;
    EXPECT_POLICY(a, &l, 0x400, 0x400, 0x2200, "not a multiple of the alignment");
    l.answer = 0x2001;
    EXPECT_POLICY(a, &l, 1, 2, 0x2001, "not a multiple of the alignment");
    /* The same offsets are fine where the alignment allows them. */
    l.answer = 0x2100;
    assert_int_equal(ALLOC(a, 0x100, 0x100), 0x2100);
    l.lie = LIE_NONE;
    EXPECT(capmem_alloc_free(a, x, 0x400), CAPMEM_OK);
    CHECK(a);
    capmem_alloc_destroy(a);
}

static void test_custom_answer_overlapping_live_block_is_refused_as_policy(void **state)
{
    (void)state;
    liar_t l;
    capmem_alloc_t *a = make_liar(&l, 0x1000, 0x2000);
    uint64_t x = ALLOC(a, 0x400, 0x400);
    uint64_t y = ALLOC(a, 0x400, 0x400);
    l.lie = LIE_ANSWER;
    l.answer = 0x1200; /* inside x */
    EXPECT_POLICY(a, &l, 0x100, 0x100, 0x1200, "overlaps the live block [0x1000, +0x400)");
    l.answer = 0x13c0; /* from the end of x into y */
    EXPECT_POLICY(a, &l, 0x80, 0x40, 0x13c0, "overlaps the live block [0x1400, +0x400)");
    l.answer = 0x800 + 0x400; /* a block covering x and y whole */
    EXPECT_POLICY(a, &l, 0x1000, 0x400, 0xc00, "leaves the span");
    l.answer = 0x1000;
    EXPECT_POLICY(a, &l, 0x1000, 0x1000, 0x1000, "overlaps the live block [0x1400, +0x400)");
    /* Right after y is free: accepted, and then live itself. */
    l.answer = 0x1800;
    assert_int_equal(ALLOC(a, 0x100, 0x100), 0x1800);
    EXPECT_POLICY(a, &l, 0x100, 0x100, 0x1800, "overlaps the live block [0x1800, +0x100)");
    l.lie = LIE_NONE;
    EXPECT(capmem_alloc_free(a, x, 0x400), CAPMEM_OK);
    EXPECT(capmem_alloc_free(a, y, 0x400), CAPMEM_OK);
    CHECK(a);
    capmem_alloc_destroy(a);
}

/* A policy that forgets to move on answers the same offset twice. */
static void test_custom_same_offset_twice_is_refused_as_policy(void **state)
{
    (void)state;
    liar_t l;
    capmem_alloc_t *a = make_liar(&l, 0x1000, 0x2000);
    uint64_t x = ALLOC(a, 0x400, 0x400);
    l.lie = LIE_ANSWER;
    l.answer = x;
    EXPECT_POLICY(a, &l, 0x400, 0x400, x, "overlaps the live block [0x1000, +0x400)");
    EXPECT_POLICY(a, &l, 0x10, 0x10, x, "overlaps the live block [0x1000, +0x400)");
    EXPECT_BLOCKS(a, U(0x1000, 0x400), F(0x1400, 0x1c00));
    l.lie = LIE_NONE;
    EXPECT(capmem_alloc_free(a, x, 0x400), CAPMEM_OK);
    /* Free again, the same offset is a fine answer. */
    l.lie = LIE_ANSWER;
    assert_int_equal(ALLOC(a, 0x400, 0x400), x);
    l.lie = LIE_NONE;
    CHECK(a);
    capmem_alloc_destroy(a);
}

/*
 * An alloc_at over a live block never reaches the policy: the wrapper
 * refuses it first, so a policy that would OK it cannot. Where it does OK
 * a block without recording it, the shadow set still knows the block is
 * live and refuses the policy's next answer that lands on it.
 */
static void test_custom_alloc_at_over_live_block_is_refused_before_the_policy(void **state)
{
    (void)state;
    liar_t l;
    capmem_alloc_t *a = make_liar(&l, 0x1000, 0x2000);
    uint64_t x = ALLOC(a, 0x400, 0x400);
    l.lie = LIE_OK;
    int calls = l.calls;
    EXPECT_UNCHANGED(a, capmem_alloc_alloc_at(a, 0x1200, 0x100), CAPMEM_E_NOT_ENOUGH_MEMORY);
    assert_non_null(strstr(capmem_last_error()->message, "overlaps the live block [0x1000"));
    assert_int_equal(capmem_last_error()->address, 0x1200);
    assert_int_equal(capmem_last_error()->size, 0x100);
    EXPECT_UNCHANGED(a, capmem_alloc_alloc_at(a, 0x13ff, 2), CAPMEM_E_NOT_ENOUGH_MEMORY);
    EXPECT_UNCHANGED(a, capmem_alloc_alloc_at(a, 0x1000, 0x2000), CAPMEM_E_NOT_ENOUGH_MEMORY);
    assert_int_equal(l.calls, calls);
    /* OK'd over free space: recorded by the wrapper (the liar forgot it). */
    EXPECT(capmem_alloc_alloc_at(a, 0x2000, 0x100), CAPMEM_OK);
    assert_int_equal(l.calls, calls + 1);
    EXPECT_UNCHANGED(a, capmem_alloc_alloc_at(a, 0x2000, 0x100), CAPMEM_E_NOT_ENOUGH_MEMORY);
    assert_int_equal(l.calls, calls + 1);
    /*
     * The first fit does not know 0x2000 is taken and offers it: refused. The
     * first fit has recorded the block it offered, so its own numbers change;
     * a policy that answers wrongly owns that state. The wrapper's do not:
     * the refused block cannot be freed through it.
     */
    l.lie = LIE_NONE;
    uint64_t off = 1;
    EXPECT(capmem_alloc_alloc(a, 0x1000, 0x1000, &off), CAPMEM_E_POLICY);
    assert_non_null(
        strstr(capmem_last_error()->message, "overlaps the live block [0x2000, +0x100)"));
    assert_int_equal(capmem_last_error()->address, 0x2000);
    assert_int_equal(off, 1);
    CHECK(a);
    calls = l.calls;
    EXPECT(capmem_alloc_free(a, 0x2000, 0x1000), CAPMEM_E_NOT_ALLOCATED);
    assert_int_equal(l.calls, calls);
    EXPECT(capmem_alloc_free(a, x, 0x400), CAPMEM_OK);
    CHECK(a);
    capmem_alloc_destroy(a);
}

static void test_custom_free_of_block_not_live_is_refused_before_the_policy(void **state)
{
    (void)state;
    liar_t l;
    capmem_alloc_t *a = make_liar(&l, 0x1000, 0x2000);
    uint64_t x = ALLOC(a, 0x400, 0x400);
    int calls = l.calls;
    EXPECT_UNCHANGED(a, capmem_alloc_free(a, 0x2000, 0x100), CAPMEM_E_NOT_ALLOCATED);
    assert_non_null(strstr(capmem_last_error()->message, "never handed out"));
    EXPECT_UNCHANGED(a, capmem_alloc_free(a, x, 0x200), CAPMEM_E_NOT_ALLOCATED);
    assert_non_null(strstr(capmem_last_error()->message, "asked for with size 0x400"));
    EXPECT_UNCHANGED(a, capmem_alloc_free(a, x + 0x100, 0x100), CAPMEM_E_NOT_ALLOCATED);
    assert_non_null(strstr(capmem_last_error()->message, "overlaps the live block [0x1000"));
    assert_int_equal(capmem_last_error()->address, x + 0x100);
    assert_string_equal(capmem_last_error()->function, "capmem_alloc_free");
    assert_int_equal(l.calls, calls);
    EXPECT(capmem_alloc_free(a, x, 0x400), CAPMEM_OK);
    calls = l.calls;
    EXPECT_UNCHANGED(a, capmem_alloc_free(a, x, 0x400), CAPMEM_E_NOT_ALLOCATED);
    assert_int_equal(l.calls, calls);
    CHECK(a);
    capmem_alloc_destroy(a);
}

/* The shadow set's node is taken before the policy is asked. */
static void test_custom_shadow_host_failure_is_clean_and_asks_nothing(void **state)
{
    (void)state;
    liar_t l;
    capmem_alloc_t *a = make_liar(&l, 0x1000, 0x2000);
    int calls = l.calls;
    uint64_t off = 3;
    capmem__inject_fail(CAPMEM__HOST_MALLOC, 1);
    EXPECT_UNCHANGED(a, capmem_alloc_alloc(a, 0x100, 1, &off), CAPMEM_E_HOST_NOMEM);
    capmem__inject_reset();
    assert_non_null(strstr(capmem_last_error()->message, "'liar'"));
    capmem__inject_fail(CAPMEM__HOST_MALLOC, 1);
    EXPECT_UNCHANGED(a, capmem_alloc_alloc_at(a, 0x1000, 0x100), CAPMEM_E_HOST_NOMEM);
    capmem__inject_reset();
    assert_int_equal(l.calls, calls);
    assert_int_equal(off, 3);
    uint64_t x = ALLOC(a, 0x100, 1);
    EXPECT(capmem_alloc_free(a, x, 0x100), CAPMEM_OK);
    /* A freed block's node is kept for the next one: no host allocation. */
    capmem__inject_fail(CAPMEM__HOST_MALLOC, 1);
    x = ALLOC(a, 0x100, 1);
    assert_int_equal(capmem__inject_count(CAPMEM__HOST_MALLOC), 0);
    capmem__inject_reset();
    EXPECT(capmem_alloc_free(a, x, 0x100), CAPMEM_OK);
    CHECK(a);
    capmem_alloc_destroy(a);
}

/* A hook that calls back into its own allocator is refused, and the allocator survives. */
static void test_custom_hook_calling_back_is_refused_as_reentrant(void **state)
{
    (void)state;
    liar_t l;
    capmem_alloc_t *a = make_liar(&l, 0x1000, 0x2000);
    l.lie = LIE_REENTER;
    uint64_t x = ALLOC(a, 0x400, 0x400);
    assert_int_equal(x, 0x1000);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(l.nested[i], CAPMEM_E_REENTRANT);
    }
    assert_int_equal(capmem_alloc_avail(a), 0x1c00);
    EXPECT_BLOCKS(a, U(0x1000, 0x400), F(0x1400, 0x1c00));
    l.lie = LIE_NONE;
    EXPECT(capmem_alloc_free(a, x, 0x400), CAPMEM_OK);
    CHECK(a);
    capmem_alloc_destroy(a);
}

/*
 * The built-in policies' answers go through the same check. They never
 * answer wrongly (their own checkers prove them), so the test bends one:
 * it swaps the handle's vtable for a copy whose alloc lies.
 */
static uint64_t bent_answer;

static capmem_err_t bent_alloc(void *self, uint64_t size, uint64_t align, uint64_t *offset)
{
    (void)self;
    (void)size;
    (void)align;
    *offset = bent_answer;
    return CAPMEM_OK;
}

static void test_builtin_answers_are_checked_for_span_and_alignment(void **state)
{
    (void)state;
    for (int p = 0; p < P_COUNT; p++) {
        capmem_alloc_t *a = make(p, 0x10000, 0x4000);
        uint64_t x = ALLOC(a, 0x400, 0x400);
        const capmem_alloc_ops_t *honest = a->ops;
        capmem_alloc_ops_t bent = *honest;
        bent.alloc = bent_alloc;
        const uint64_t answers[] = {0x14000, 0xfc00, 0x11100};
        for (size_t i = 0; i < 3; i++) {
            bent_answer = answers[i];
            a->ops = &bent;
            uint64_t off = 1;
            snap_t *before = snap_take(a);
            EXPECT(capmem_alloc_alloc(a, 0x400, 0x400, &off), CAPMEM_E_POLICY);
            snap_t *after = snap_take(a);
            snap_same(before, after, "a refused built-in answer", __LINE__);
            free(before);
            free(after);
            assert_int_equal(off, 1);
            assert_int_equal(capmem_last_error()->address, answers[i]);
            assert_int_equal(capmem_last_error()->size, 0x400);
            assert_non_null(strstr(capmem_last_error()->message, capmem_alloc_name(a)));
            a->ops = honest;
            CHECK(a);
        }
        EXPECT(capmem_alloc_free(a, x, 0x400), CAPMEM_OK);
        CHECK(a);
        capmem_alloc_destroy(a);
    }
}

/*
 * The shadow set itself (alloc_internal.h), at a size where the AA tree has
 * many levels: random inserts and removes of disjoint blocks, every query
 * compared with a plain array, the tree's invariants checked as it goes.
 */
static void test_shadow_set_stays_balanced_and_answers_like_an_array(void **state)
{
    (void)state;
    enum { UNITS = 1 << 14, UNIT = 16, BASE = 0x100000 };
    int32_t *owner = malloc(UNITS * sizeof(*owner)); /* start unit of the block there, or -1 */
    uint32_t *len = calloc(UNITS, sizeof(*len));     /* length of a block starting there */
    assert_non_null(owner);
    assert_non_null(len);
    for (int u = 0; u < UNITS; u++) {
        owner[u] = -1;
    }
    capmem__shadow_t sh = {0};
    char why[160];
    uint64_t seed = 0x9e3779b97f4a7c15ull;
    size_t live = 0;
    size_t peak = 0;
    for (int op = 0; op < 200000; op++) {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        uint32_t u = (uint32_t)(seed % UNITS);
        uint32_t n = 1 + (uint32_t)((seed >> 20) % 8);
        if (u + n > UNITS) {
            n = UNITS - u;
        }
        uint64_t off = BASE + (uint64_t)u * UNIT;
        /* The reference answers: the last block overlapping [u, u + n) (the
         * one the set names), a block starting at u. */
        int32_t over = -1;
        for (uint32_t v = u + n; v > u && over < 0; v--) {
            over = owner[v - 1];
        }
        const capmem__shadow_node_t *o = capmem__shadow_overlap(&sh, off, (uint64_t)n * UNIT);
        assert_int_equal(o != NULL, over >= 0);
        if (o != NULL) {
            assert_int_equal(o->offset, BASE + (uint64_t)over * UNIT);
        }
        const capmem__shadow_node_t *f = capmem__shadow_find(&sh, off);
        assert_int_equal(f != NULL, owner[u] == (int32_t)u);
        bool grow = (seed >> 40) % 100 < (live < 3000 ? 70 : 30);
        if (over < 0 && grow) {
            capmem__shadow_node_t *node = capmem__shadow_reserve(&sh);
            assert_non_null(node);
            capmem__shadow_insert(&sh, node, off, (uint64_t)n * UNIT);
            for (uint32_t v = u; v < u + n; v++) {
                owner[v] = (int32_t)u;
            }
            len[u] = n;
            live++;
        } else if (over >= 0 && !grow) {
            uint32_t s0 = (uint32_t)over;
            capmem__shadow_remove(&sh, BASE + (uint64_t)s0 * UNIT);
            for (uint32_t v = s0; v < s0 + len[s0]; v++) {
                owner[v] = -1;
            }
            len[s0] = 0;
            live--;
        }
        peak = live > peak ? live : peak;
        if (op % 4096 == 0) {
            if (capmem__shadow_check(&sh, BASE, (uint64_t)UNITS * UNIT, why, sizeof(why)) !=
                CAPMEM_OK) {
                fail_msg("op %d: %s", op, why);
            }
            assert_int_equal(sh.count, live);
        }
    }
    assert_true(peak > 1000);
    assert_int_equal(capmem__shadow_check(&sh, BASE, (uint64_t)UNITS * UNIT, why, sizeof(why)),
                     CAPMEM_OK);
    capmem__shadow_clear(&sh);
    assert_int_equal(capmem__shadow_check(&sh, BASE, UNIT, why, sizeof(why)), CAPMEM_OK);
    assert_null(capmem__shadow_overlap(&sh, BASE, UNIT));
    /* Its checker reports what breaks it: a block outside the span, a bad level. */
    for (uint64_t i = 0; i < 3; i++) {
        capmem__shadow_insert(&sh, capmem__shadow_reserve(&sh), BASE + i * UNIT, UNIT);
    }
    assert_int_equal(capmem__shadow_check(&sh, BASE + UNIT, 4 * UNIT, why, sizeof(why)),
                     CAPMEM_E_CORRUPT);
    assert_non_null(strstr(why, "outside the span"));
    sh.root->level += 2;
    assert_int_equal(capmem__shadow_check(&sh, BASE, 4 * UNIT, why, sizeof(why)), CAPMEM_E_CORRUPT);
    assert_non_null(strstr(why, "levels"));
    sh.root->level -= 2;
    assert_int_equal(capmem__shadow_check(&sh, BASE, 4 * UNIT, why, sizeof(why)), CAPMEM_OK);
    capmem__shadow_destroy(&sh);
    free(owner);
    free(len);
}

/* ---- randomized runs against a shadow bitmap ----------------------------- */

typedef struct live {
    uint64_t off;
    uint64_t size;
} live_t;

typedef struct model {
    int policy;
    capmem_alloc_t *a;
    uint64_t base;
    uint64_t size;
    uint64_t unit; /* granule (range), min block (buddy), 1 (watermark) */
    uint64_t n;    /* units */
    uint8_t *used; /* shadow: one byte per unit */
    live_t *live;
    size_t nlive;
    size_t cap;
    uint64_t seed;
} model_t;

static uint64_t rnd(model_t *m)
{
    uint64_t x = m->seed;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    m->seed = x;
    return x;
}

/* Bytes a request really takes under the policy. */
static uint64_t rounded(const model_t *m, uint64_t size)
{
    if (m->policy == P_BUDDY) {
        uint64_t b = m->unit;
        while (b < size) {
            b <<= 1;
        }
        return b;
    }
    return (size + m->unit - 1) / m->unit * m->unit;
}

static bool shadow_free(const model_t *m, uint64_t off, uint64_t len)
{
    for (uint64_t u = (off - m->base) / m->unit; u < (off - m->base + len) / m->unit; u++) {
        if (m->used[u]) {
            return false;
        }
    }
    return true;
}

static void shadow_mark(model_t *m, uint64_t off, uint64_t len, uint8_t v)
{
    for (uint64_t u = (off - m->base) / m->unit; u < (off - m->base + len) / m->unit; u++) {
        m->used[u] = v;
    }
}

/* The range policy's size class of a length in granules (as alloc_range.c). */
static unsigned range_class(uint64_t len)
{
    if (len < 16) {
        return (unsigned)len;
    }
    unsigned k = 63u - (unsigned)__builtin_clzll(len);
    return ((k - 3) << 4) | (unsigned)((len >> (k - 4)) & 15);
}

/*
 * Range with align <= granule, good fit: the answer must be the start of a
 * free range of the lowest class >= the first class all of whose lengths
 * fit (class_up); when no range is in such a class, a fitting range of the
 * request's own class. Returns the class the answer's range must have, or
 * UINT_MAX when nothing fits.
 */
static unsigned shadow_good_fit_class(const model_t *m, uint64_t len)
{
    uint64_t need = len / m->unit;
    uint64_t up = need;
    if (up >= 16) {
        up += (1ull << (63u - (unsigned)__builtin_clzll(up) - 4)) - 1;
    }
    unsigned sure = range_class(up);
    unsigned best = UINT_MAX;
    unsigned own = UINT_MAX;
    for (uint64_t u = 0; u < m->n;) {
        if (m->used[u]) {
            u++;
            continue;
        }
        uint64_t v = u;
        while (v < m->n && !m->used[v]) {
            v++;
        }
        unsigned c = range_class(v - u);
        if (c >= sure && c < best) {
            best = c;
        }
        if (v - u >= need && c < sure) {
            own = c;
        }
        u = v;
    }
    return best != UINT_MAX ? best : own;
}

/* The length in granules of the free run starting at off in the model (0 if none). */
static uint64_t shadow_run_at(const model_t *m, uint64_t off)
{
    uint64_t u = (off - m->base) / m->unit;
    if (u > 0 && !m->used[u - 1]) {
        return 0; /* not the start of a free range */
    }
    uint64_t v = u;
    while (v < m->n && !m->used[v]) {
        v++;
    }
    return v - u;
}

/* Is there any free, align-aligned spot for len bytes (buddy: natural too)? */
static bool shadow_any_fit(const model_t *m, uint64_t len, uint64_t align)
{
    uint64_t step = m->policy == P_BUDDY && len > align ? len : align;
    uint64_t start = (m->base + step - 1) / step * step;
    if (step < m->unit) {
        step = m->unit;
        start = m->base;
    }
    for (uint64_t off = start; off < m->base + m->size && m->base + m->size - off >= len;
         off += step) {
        if (shadow_free(m, off, len)) {
            return true;
        }
    }
    return false;
}

static void model_compare(const model_t *m)
{
    /* Used blocks of the walk are exactly the live blocks (rounded). */
    snap_t *s = snap_take(m->a);
    size_t used = 0;
    uint64_t free_bytes = 0;
    for (size_t i = 0; i < s->n && i < SNAP_MAX; i++) {
        if (s->b[i].state == CAPMEM_BLOCK_USED) {
            used++;
            uint64_t r = s->b[i].size;
            assert_false(shadow_free(m, s->b[i].off, r < m->unit ? m->unit : r));
        } else {
            free_bytes += s->b[i].size;
        }
    }
    if (s->n <= SNAP_MAX) {
        assert_int_equal(used, m->nlive);
        if (m->policy != P_WATERMARK) {
            uint64_t shadow_free_bytes = 0;
            for (uint64_t u = 0; u < m->n; u++) {
                shadow_free_bytes += m->used[u] ? 0 : m->unit;
            }
            assert_int_equal(free_bytes, shadow_free_bytes);
            assert_int_equal(capmem_alloc_avail(m->a), shadow_free_bytes);
        } else {
            assert_int_equal(free_bytes, capmem_alloc_avail(m->a));
        }
    }
    free(s);
}

static void model_run(int policy, capmem_alloc_t *a, uint64_t unit, uint64_t seed, int ops)
{
    model_t m = {.policy = policy, .a = a, .unit = unit, .seed = seed};
    m.base = capmem_alloc_base(a);
    m.size = capmem_alloc_size(a);
    m.n = m.size / unit;
    m.used = calloc(m.n, 1);
    m.cap = m.n + 1;
    m.live = calloc(m.cap, sizeof(live_t));
    assert_non_null(m.used);
    assert_non_null(m.live);
    uint64_t max_req = unit * 24;
    int fails = 0;
    int oks = 0;
    for (int op = 0; op < ops; op++) {
        uint64_t r = rnd(&m) % 100;
        if (r < 45 || m.nlive == 0) {
            uint64_t size = 1 + rnd(&m) % max_req;
            uint64_t align = 1ull << (rnd(&m) % 13);
            uint64_t off = 0;
            unsigned expect = UINT_MAX;
            uint64_t run = 0;
            if (policy == P_RANGE && align <= unit) {
                expect = shadow_good_fit_class(&m, rounded(&m, size));
            }
            snap_t *before = snap_take(a);
            capmem_err_t err = capmem_alloc_alloc(a, size, align, &off);
            if (err == CAPMEM_OK && policy == P_RANGE && align <= unit) {
                run = shadow_run_at(&m, off);
            }
            if (err == CAPMEM_OK) {
                uint64_t len = rounded(&m, size);
                assert_true(off % align == 0);
                assert_true(off >= m.base && off + len <= m.base + m.size);
                if (!shadow_free(&m, off, len)) {
                    fail_msg("op %d: alloc(%llu, %llu) gave 0x%llx, which overlaps a live block",
                             op, (unsigned long long)size, (unsigned long long)align,
                             (unsigned long long)off);
                }
                if (policy == P_RANGE && align <= unit &&
                    (run * m.unit < len || range_class(run) != expect)) {
                    fail_msg("op %d: good fit for %llu takes a range of class %u, got 0x%llx in a "
                             "free range of %llu granules",
                             op, (unsigned long long)size, expect, (unsigned long long)off,
                             (unsigned long long)run);
                }
                if (policy == P_BUDDY) {
                    assert_true(off % len == 0);
                }
                shadow_mark(&m, off, len, 1);
                m.live[m.nlive++] = (live_t){off, size};
                oks++;
            } else {
                assert_int_equal(err, CAPMEM_E_NOT_ENOUGH_MEMORY);
                snap_t *after = snap_take(a);
                snap_same(before, after, "failed alloc", __LINE__);
                free(after);
                if (policy != P_WATERMARK && shadow_any_fit(&m, rounded(&m, size), align)) {
                    fail_msg("op %d: alloc(%llu, %llu) failed though a spot is free", op,
                             (unsigned long long)size, (unsigned long long)align);
                }
                fails++;
            }
            free(before);
        } else if (r < 55) {
            uint64_t size = 1 + rnd(&m) % max_req;
            uint64_t len = rounded(&m, size);
            uint64_t step = policy == P_BUDDY ? len : unit;
            if (len > m.size) {
                continue;
            }
            uint64_t off = m.base + (rnd(&m) % (m.size / step)) * step;
            off = (off + step - 1) / step * step;
            if (off + len > m.base + m.size) {
                continue;
            }
            snap_t *before = snap_take(a);
            /* Watermark: below the index is never available, above it always is. */
            bool want_ok = policy == P_WATERMARK ? off >= m.base + m.size - capmem_alloc_avail(a)
                                                 : shadow_free(&m, off, len);
            capmem_err_t err = capmem_alloc_alloc_at(a, off, size);
            if (want_ok != (err == CAPMEM_OK)) {
                fail_msg("op %d: alloc_at(0x%llx, %llu) returned %s, expected %s", op,
                         (unsigned long long)off, (unsigned long long)size, capmem_err_name(err),
                         want_ok ? "OK" : "NOT_ENOUGH_MEMORY");
            }
            if (err == CAPMEM_OK) {
                assert_true(shadow_free(&m, off, len));
                shadow_mark(&m, off, len, 1);
                m.live[m.nlive++] = (live_t){off, size};
            } else {
                assert_int_equal(err, CAPMEM_E_NOT_ENOUGH_MEMORY);
                snap_t *after = snap_take(a);
                snap_same(before, after, "failed alloc_at", __LINE__);
                free(after);
            }
            free(before);
        } else if (r < 93) {
            size_t k = (size_t)(rnd(&m) % m.nlive);
            live_t b = m.live[k];
            EXPECT(capmem_alloc_free(a, b.off, b.size), CAPMEM_OK);
            shadow_mark(&m, b.off, rounded(&m, b.size), 0);
            m.live[k] = m.live[--m.nlive];
        } else {
            /* Bogus frees: each must fail and change nothing. */
            size_t k = (size_t)(rnd(&m) % m.nlive);
            live_t b = m.live[k];
            uint64_t len = rounded(&m, b.size);
            EXPECT_UNCHANGED(a, capmem_alloc_free(a, b.off, len * 2 + m.unit),
                             (b.off + len * 2 + m.unit > m.base + m.size) ? CAPMEM_E_INVALID_ARGS
                                                                          : CAPMEM_E_NOT_ALLOCATED);
            if (len > m.unit) {
                EXPECT_UNCHANGED(a, capmem_alloc_free(a, b.off + m.unit, m.unit),
                                 CAPMEM_E_NOT_ALLOCATED);
            }
            /* A unit that is free in the shadow cannot start a live block. */
            uint64_t u = rnd(&m) % m.n;
            if (!m.used[u] && policy != P_WATERMARK) {
                EXPECT_UNCHANGED(a, capmem_alloc_free(a, m.base + u * m.unit, m.unit),
                                 CAPMEM_E_NOT_ALLOCATED);
            }
        }
        CHECK(a);
        if (op % 50 == 0) {
            model_compare(&m);
        }
        if (policy == P_WATERMARK && capmem_alloc_avail(a) < max_req && rnd(&m) % 8 == 0) {
            capmem_alloc_reset(a);
            memset(m.used, 0, m.n);
            m.nlive = 0;
            CHECK(a);
        }
    }
    model_compare(&m);
    /* Both outcomes happened: the run exercised full and non-full states. */
    assert_true(oks > ops / 10);
    assert_true(fails > 0);
    while (m.nlive > 0) {
        live_t b = m.live[--m.nlive];
        EXPECT(capmem_alloc_free(a, b.off, b.size), CAPMEM_OK);
        CHECK(a);
    }
    if (policy != P_WATERMARK) {
        assert_int_equal(capmem_alloc_avail(a), m.size);
        snap_t *s = snap_take(a);
        if (policy == P_RANGE) {
            assert_int_equal(s->n, 1); /* everything coalesced back */
        }
        free(s);
    }
    free(m.used);
    free(m.live);
}

static void test_range_random_ops_match_shadow_model(void **state)
{
    (void)state;
    capmem_alloc_t *a = NULL;
    EXPECT(capmem_alloc_create_range(0x10040, 0x40 * 700, 0x40, &a), CAPMEM_OK);
    model_run(P_RANGE, a, 0x40, 0x1234567887654321ull, 6000);
    capmem_alloc_destroy(a);
}

static void test_buddy_random_ops_match_shadow_model(void **state)
{
    (void)state;
    capmem_alloc_t *a = NULL;
    EXPECT(capmem_alloc_create_buddy(0x1040, 0x40 * 700, 6, 11, &a), CAPMEM_OK);
    model_run(P_BUDDY, a, 0x40, 0xfeedfacecafebeefull, 6000);
    capmem_alloc_destroy(a);
}

static void test_watermark_random_ops_match_shadow_model(void **state)
{
    (void)state;
    capmem_alloc_t *a = NULL;
    EXPECT(capmem_alloc_create_watermark(0x3000, 0x2000, &a), CAPMEM_OK);
    model_run(P_WATERMARK, a, 1, 0x0123456789abcdefull, 4000);
    capmem_alloc_destroy(a);
}

/* ---- host failures ---------------------------------------------------------- */

static capmem_err_t create_policy(int p, capmem_alloc_t **a)
{
    switch (p) {
    case P_WATERMARK:
        return capmem_alloc_create_watermark(0, 1 << 20, a);
    case P_RANGE:
        return capmem_alloc_create_range(0, 1ull << 30, 0x1000, a);
    default:
        return capmem_alloc_create_buddy(0, 1ull << 30, 12, 30, a);
    }
}

static void test_create_host_failure_is_clean_error_without_leak(void **state)
{
    (void)state;
    for (int p = 0; p < P_COUNT; p++) {
        for (int kind = CAPMEM__HOST_MALLOC; kind <= CAPMEM__HOST_MMAP; kind++) {
            /* Fail the 1st, 2nd, ... host operation until creation no longer needs it. */
            for (uint64_t nth = 1; nth < 8; nth++) {
                capmem_alloc_t *sentinel = (capmem_alloc_t *)(uintptr_t)0x5678;
                capmem_alloc_t *a = sentinel;
                capmem__inject_fail((capmem__host_kind_t)kind, nth);
                capmem_err_t err = create_policy(p, &a);
                uint64_t attempts = capmem__inject_count((capmem__host_kind_t)kind);
                capmem__inject_reset();
                if (attempts < nth) {
                    EXPECT(err, CAPMEM_OK);
                    CHECK(a);
                    capmem_alloc_destroy(a);
                    break;
                }
                EXPECT(err, CAPMEM_E_HOST_NOMEM);
                assert_ptr_equal(a, sentinel);
                assert_true(capmem_last_error()->message[0] != '\0');
            }
        }
    }
    /* Custom: only the handle is allocated. */
    test_ff_t f = {.base = 0, .size = 0x100};
    capmem_alloc_t *a = NULL;
    capmem__inject_fail(CAPMEM__HOST_MALLOC, 1);
    EXPECT(capmem_alloc_create_custom(&test_ff_ops, &f, &a), CAPMEM_E_HOST_NOMEM);
    capmem__inject_reset();
    assert_null(a);
    assert_int_equal(f.destroyed, 0);
}

/* A large range costs nothing up front and works at both ends. */
static void test_range_large_span_is_lazy_and_usable(void **state)
{
    (void)state;
    capmem_alloc_t *a = NULL;
    EXPECT(capmem_alloc_create_range(0, 64ull << 30, 0x1000, &a), CAPMEM_OK);
    EXPECT(capmem_alloc_alloc_at(a, (64ull << 30) - 0x1000, 0x1000), CAPMEM_OK);
    assert_int_equal(ALLOC(a, 0x1000, 1), 0);
    assert_int_equal(capmem_alloc_largest(a), (64ull << 30) - 0x2000);
    capmem_alloc_destroy(a);
    EXPECT(capmem_alloc_create_buddy(0, 64ull << 30, 12, 30, &a), CAPMEM_OK);
    assert_int_equal(ALLOC(a, 1ull << 30, 1), 0);
    assert_int_equal(ALLOC(a, 0x1000, 1), 1ull << 30);
    capmem_alloc_destroy(a);
}

/* ---- what the generic front refuses, and what it reports ------------------ */

/* A custom policy is refused before it is wrapped when a piece is missing. */
static void test_alloc_create_custom_names_what_is_missing(void **state)
{
    (void)state;
    capmem_alloc_t *sentinel = (capmem_alloc_t *)(uintptr_t)0x4321;
    capmem_alloc_t *a = sentinel;
    test_ff_t f = {.base = 0, .size = 0x1000};
    EXPECT(capmem_alloc_create_custom_span(&test_ff_ops, &f, 0, 0x1000, NULL),
           CAPMEM_E_INVALID_ARGS);
    assert_non_null(strstr(capmem_last_error()->message, "out is NULL"));
    EXPECT(capmem_alloc_create_custom_span(NULL, &f, 0, 0x1000, &a), CAPMEM_E_INVALID_ARGS);
    assert_non_null(strstr(capmem_last_error()->message, "ops is NULL"));
    /* Each mandatory hook on its own. */
    for (int hook = 0; hook < 6; hook++) {
        capmem_alloc_ops_t ops = test_ff_ops;
        switch (hook) {
        case 0:
            ops.alloc = NULL;
            break;
        case 1:
            ops.alloc_at = NULL;
            break;
        case 2:
            ops.free = NULL;
            break;
        case 3:
            ops.avail = NULL;
            break;
        case 4:
            ops.largest = NULL;
            break;
        default:
            ops.reset = NULL;
            break;
        }
        EXPECT(capmem_alloc_create_custom_span(&ops, &f, 0, 0x1000, &a), CAPMEM_E_INVALID_ARGS);
        assert_non_null(strstr(capmem_last_error()->message, "mandatory hook"));
        EXPECT(capmem_alloc_create_custom(&ops, &f, &a), CAPMEM_E_INVALID_ARGS);
        assert_string_equal(capmem_last_error()->function, "capmem_alloc_create_custom");
    }
    /* The span is checked like a built-in policy's. */
    EXPECT(capmem_alloc_create_custom_span(&test_ff_ops, &f, 0x1000, 0, &a), CAPMEM_E_INVALID_ARGS);
    assert_non_null(strstr(capmem_last_error()->message, "size is 0"));
    EXPECT(capmem_alloc_create_custom_span(&test_ff_ops, &f, UINT64_MAX - 0xff, 0x200, &a),
           CAPMEM_E_INVALID_ARGS);
    assert_non_null(strstr(capmem_last_error()->message, "overflows"));
    assert_string_equal(capmem_last_error()->function, "capmem_alloc_create_custom_span");
    assert_ptr_equal(a, sentinel);
    assert_int_equal(f.calls, 0);
    assert_int_equal(f.destroyed, 0);
}

/* NULL is 0 (or "" or a no-op) for every query; a policy without a name is "". */
static void test_alloc_queries_on_null_and_on_a_nameless_policy(void **state)
{
    (void)state;
    assert_int_equal(capmem_alloc_avail(NULL), 0);
    assert_int_equal(capmem_alloc_largest(NULL), 0);
    assert_int_equal(capmem_alloc_base(NULL), 0);
    assert_int_equal(capmem_alloc_size(NULL), 0);
    assert_string_equal(capmem_alloc_name(NULL), "");
    capmem_alloc_reset(NULL);
    capmem_alloc_destroy(NULL);

    capmem_alloc_ops_t nameless = test_ff_ops;
    nameless.name = NULL;
    test_ff_t f = {.base = 0x100, .size = 0x100};
    capmem_alloc_t *a = NULL;
    EXPECT(capmem_alloc_create_custom_span(&nameless, &f, 0x100, 0x100, &a), CAPMEM_OK);
    assert_string_equal(capmem_alloc_name(a), "");
    /* A failure of the nameless policy still gets a message. */
    uint64_t off = 0;
    EXPECT_UNCHANGED(a, capmem_alloc_alloc(a, 0x200, 1, &off), CAPMEM_E_NOT_ENOUGH_MEMORY);
    assert_true(capmem_last_error()->message[0] != '\0');
    capmem_alloc_destroy(a);
    assert_int_equal(f.destroyed, 1);
}

/*
 * A custom policy's check hook speaks for the policy: its finding (CORRUPT
 * with its text, or another code) is what capmem_alloc_check returns, named
 * after the policy, also when the caller gave no buffer. Its walk hook's
 * failure is passed on the same way.
 */
typedef struct judged {
    test_ff_t ff;
    capmem_err_t verdict; /* what check returns */
    capmem_err_t walk_err;
    int checks;
} judged_t;

static capmem_err_t judged_check(const void *self, char *why, size_t len)
{
    judged_t *j = (judged_t *)self;
    j->checks++;
    if (j->verdict == CAPMEM_E_CORRUPT && why != NULL && len > 0) {
        snprintf(why, len, "block 3 lost its end tag");
    }
    return j->verdict;
}

static capmem_err_t judged_walk(const void *self, capmem_alloc_walk_fn fn, void *ctx)
{
    const judged_t *j = self;
    if (j->walk_err != CAPMEM_OK) {
        return j->walk_err;
    }
    return test_ff_ops.walk(&j->ff, fn, ctx);
}

static void test_alloc_custom_check_and_walk_hook_failures_are_reported(void **state)
{
    (void)state;
    capmem_alloc_ops_t ops = test_ff_ops;
    ops.name = "judged";
    ops.check = judged_check;
    ops.walk = judged_walk;
    ops.destroy = NULL;
    judged_t j = {.ff = {.base = 0, .size = 0x1000}};
    capmem_alloc_t *a = NULL;
    EXPECT(capmem_alloc_create_custom_span(&ops, &j.ff, 0, 0x1000, &a), CAPMEM_OK);
    assert_int_equal(ALLOC(a, 0x100, 1), 0);
    j.checks = 0;

    char why[128];
    j.verdict = CAPMEM_E_CORRUPT;
    EXPECT(capmem_alloc_check(a, why, sizeof(why)), CAPMEM_E_CORRUPT);
    assert_string_equal(why, "block 3 lost its end tag");
    const capmem_error_info_t *d = capmem_last_error();
    assert_string_equal(d->function, "capmem_alloc_check");
    assert_non_null(strstr(d->message, "judged: invariant broken: block 3 lost its end tag"));
    /* Without a buffer the hook's text is not there to quote. */
    EXPECT(capmem_alloc_check(a, NULL, 0), CAPMEM_E_CORRUPT);
    assert_non_null(strstr(capmem_last_error()->message, "(no buffer)"));
    /* Another code from the hook is passed on as it is. */
    j.verdict = CAPMEM_E_UNSUPPORTED;
    EXPECT(capmem_alloc_check(a, why, sizeof(why)), CAPMEM_E_UNSUPPORTED);
    assert_int_equal(j.checks, 3);

    /* A failing walk hook: its code, with a message naming the policy. */
    j.walk_err = CAPMEM_E_UNSUPPORTED;
    EXPECT(capmem_alloc_walk(a, snap_visit, NULL), CAPMEM_E_UNSUPPORTED);
    assert_string_equal(capmem_last_error()->function, "capmem_alloc_walk");
    assert_non_null(strstr(capmem_last_error()->message, "'judged'"));

    /* Nothing was changed by any of it. */
    j.verdict = CAPMEM_OK;
    j.walk_err = CAPMEM_OK;
    EXPECT_BLOCKS(a, U(0, 0x100), F(0x100, 0xf00));
    CHECK(a);
    capmem_alloc_destroy(a);
}

/*
 * The wrapper's own check of a custom policy: its shadow set. Each test
 * breaks one invariant of the set on purpose (alloc_internal.h), asserts
 * that capmem_alloc_check names it, and puts the set back.
 */
static void expect_shadow_broken(const capmem_alloc_t *a, const char *what, int line)
{
    char why[160];
    capmem_err_t err = capmem_alloc_check(a, why, sizeof(why));
    if (err != CAPMEM_E_CORRUPT || strstr(why, what) == NULL) {
        fail_msg("line %d: check returned %s (%s), expected CORRUPT naming \"%s\"", line,
                 capmem_err_name(err), why, what);
    }
    /* Without a buffer the finding is still CORRUPT. */
    expect_err(capmem_alloc_check(a, NULL, 0), CAPMEM_E_CORRUPT, "check without buffer", line);
}
#define EXPECT_SHADOW_BROKEN(a, what) expect_shadow_broken((a), (what), __LINE__)

static void test_alloc_check_finds_each_broken_shadow_invariant(void **state)
{
    (void)state;
    test_ff_t f = {.base = 0x1000, .size = 0x1000};
    capmem_alloc_t *a = NULL;
    EXPECT(capmem_alloc_create_custom_span(&test_ff_ops, &f, 0x1000, 0x1000, &a), CAPMEM_OK);
    /* Three blocks: an AA tree with a root on level 2 and two leaves. */
    assert_int_equal(ALLOC(a, 0x100, 1), 0x1000);
    assert_int_equal(ALLOC(a, 0x100, 1), 0x1100);
    assert_int_equal(ALLOC(a, 0x100, 1), 0x1200);
    CHECK(a);
    capmem__shadow_t *sh = &a->shadow;
    capmem__shadow_node_t *root = sh->root;
    assert_int_equal(root->offset, 0x1100);
    assert_int_equal(root->level, 2);
    capmem__shadow_node_t *left = root->left;
    capmem__shadow_node_t *right = root->right;
    assert_non_null(left);
    assert_non_null(right);

    root->level = 1;
    EXPECT_SHADOW_BROKEN(a, "AA tree levels broken at 0x1100");
    root->level = 2;

    right->level = 3;
    EXPECT_SHADOW_BROKEN(a, "AA tree levels broken at 0x1100");
    right->level = 1;

    left->offset = 0x800; /* below the span */
    EXPECT_SHADOW_BROKEN(a, "block empty or outside the span at 0x800");
    left->offset = 0x1000;

    left->size = 0;
    EXPECT_SHADOW_BROKEN(a, "block empty or outside the span at 0x1000");
    left->size = 0x100;

    right->size = 0xf00; /* [0x1200, 0x2100) leaves the span */
    EXPECT_SHADOW_BROKEN(a, "block empty or outside the span at 0x1200");
    right->size = UINT64_MAX; /* its end wraps past 2^64 */
    EXPECT_SHADOW_BROKEN(a, "block empty or outside the span at 0x1200");
    right->size = 0x100;

    left->level = 0;
    EXPECT_SHADOW_BROKEN(a, "AA tree levels broken");
    left->level = 1;

    left->size = 0x180; /* overlaps the root's block */
    EXPECT_SHADOW_BROKEN(a, "blocks out of order or overlapping at 0x1100");
    left->size = 0x100;

    sh->count++;
    EXPECT_SHADOW_BROKEN(a, "4 blocks counted, 3 in the tree");
    sh->count--;

    /* A spare node appears after a free; the spare count must match the list. */
    EXPECT(capmem_alloc_free(a, 0x1200, 0x100), CAPMEM_OK);
    assert_int_equal(sh->nspare, 1);
    sh->nspare = 2;
    EXPECT_SHADOW_BROKEN(a, "2 spare nodes counted, 1 listed");
    sh->nspare = 1;
    /* A cycle in the spare list is cut off after the most spares there can be. */
    sh->spare->left = sh->spare;
    EXPECT_SHADOW_BROKEN(a, "1 spare nodes counted, 17 listed");
    sh->spare->left = NULL;

    CHECK(a);
    capmem_alloc_destroy(a);
}

/*
 * Host bytes of metadata per policy (what the benchmark reports), as
 * alloc.h documents them: the watermark's table of 16-byte entries that
 * doubles; range and buddy reserve everything at creation; a custom policy
 * pays one 40-byte node per live block, spares included.
 */
static void test_alloc_metadata_bytes_follow_the_documented_costs(void **state)
{
    (void)state;
    capmem_alloc_t *a = make(P_WATERMARK, 0, 1 << 20);
    const uint64_t wm0 = capmem__alloc_metadata_bytes(a);
    assert_int_equal(wm0, 16 * 16); /* the initial table of 16 entries */
    for (int i = 0; i < 16; i++) {
        (void)ALLOC(a, 8, 8);
    }
    assert_int_equal(capmem__alloc_metadata_bytes(a), wm0);
    (void)ALLOC(a, 8, 8); /* the 17th entry doubles the table */
    assert_int_equal(capmem__alloc_metadata_bytes(a), 2 * wm0);
    capmem_alloc_destroy(a);

    for (int p = P_RANGE; p <= P_BUDDY; p++) {
        a = make(p, 0, 1 << 20);
        const uint64_t m0 = capmem__alloc_metadata_bytes(a);
        assert_true(m0 > 0);
        uint64_t x = ALLOC(a, 0x100, 1);
        (void)ALLOC(a, 0x1000, 0x1000);
        EXPECT(capmem_alloc_free(a, x, 0x100), CAPMEM_OK);
        if (p == P_RANGE) {
            /* Nodes up to the high-water mark (24 bytes) and the hash table (8 per slot). */
            assert_true(capmem__alloc_metadata_bytes(a) <= 3 * 24 + 64 * 8);
        } else {
            assert_int_equal(capmem__alloc_metadata_bytes(a), m0);
        }
        capmem_alloc_destroy(a);
    }

    test_ff_t f = {.base = 0, .size = 0x1000};
    EXPECT(capmem_alloc_create_custom_span(&test_ff_ops, &f, 0, 0x1000, &a), CAPMEM_OK);
    assert_int_equal(capmem__alloc_metadata_bytes(a), 0);
    uint64_t x = ALLOC(a, 0x100, 1);
    (void)ALLOC(a, 0x100, 1);
    assert_int_equal(capmem__alloc_metadata_bytes(a), 2 * sizeof(capmem__shadow_node_t));
    assert_true(sizeof(capmem__shadow_node_t) <= 40);
    /* A freed block's node stays as a spare. */
    EXPECT(capmem_alloc_free(a, x, 0x100), CAPMEM_OK);
    assert_int_equal(capmem__alloc_metadata_bytes(a), 2 * sizeof(capmem__shadow_node_t));
    capmem_alloc_destroy(a);
}

/* A walk stops at the first visit that returns non-zero, for every policy. */
static int stop_after(uint64_t off, uint64_t size, capmem_block_state_t st, void *ctx)
{
    (void)off;
    (void)size;
    (void)st;
    int *left = ctx;
    return --*left <= 0;
}

static void test_alloc_walk_stops_when_the_visitor_says_so(void **state)
{
    (void)state;
    for (int p = 0; p < P_COUNT; p++) {
        capmem_alloc_t *a = make(p, 0x10000, 0x4000);
        (void)ALLOC(a, 0x400, 0x400);
        (void)ALLOC(a, 0x400, 0x400);
        (void)ALLOC(a, 0x400, 0x400);
        snap_t *all = snap_take(a);
        assert_true(all->n >= 4);
        for (int stop = 1; stop < (int)all->n; stop++) {
            int left = stop;
            EXPECT(capmem_alloc_walk(a, stop_after, &left), CAPMEM_OK);
            assert_int_equal(left, 0); /* visited exactly `stop` blocks */
        }
        if (p == P_RANGE) {
            int left = 1;
            EXPECT(capmem_alloc_free_ranges(a, stop_after, &left), CAPMEM_OK);
            assert_int_equal(left, 0);
        }
        free(all);
        CHECK(a);
        capmem_alloc_destroy(a);
    }
}

/* ---- policy-specific paths ---------------------------------------------- */

/* Reset forgets every block of a range policy: one free range again, nothing committed anew. */
static void test_range_reset_frees_every_block(void **state)
{
    (void)state;
    capmem_alloc_t *a = make(P_RANGE, 0x100000, 0x10000);
    (void)ALLOC(a, 0x100, 1);
    uint64_t b = ALLOC(a, 0x3000, 0x1000);
    (void)ALLOC(a, 0x200, 1);
    EXPECT(capmem_alloc_alloc_at(a, 0x10f000, 0x1000), CAPMEM_OK);
    EXPECT(capmem_alloc_free(a, b, 0x3000), CAPMEM_OK);
    CHECK(a);
    capmem_alloc_reset(a);
    CHECK(a);
    assert_int_equal(capmem_alloc_avail(a), 0x10000);
    assert_int_equal(capmem_alloc_largest(a), 0x10000);
    EXPECT_BLOCKS(a, F(0x100000, 0x10000));
    /* The forgotten blocks are free to take again. */
    EXPECT(capmem_alloc_alloc_at(a, 0x10f000, 0x1000), CAPMEM_OK);
    assert_int_equal(ALLOC(a, 0x100, 1), 0x100000);
    CHECK(a);
    capmem_alloc_destroy(a);
}

/* Buddy alloc_at: a block larger than the largest order, or one reaching past the end. */
static void test_buddy_alloc_at_refuses_oversized_and_overhanging_blocks(void **state)
{
    (void)state;
    capmem_alloc_t *a = NULL;
    /* Orders 8..12 over 0x4000: the largest block is 0x1000. */
    EXPECT(capmem_alloc_create_buddy(0, 0x4000, 8, 12, &a), CAPMEM_OK);
    EXPECT_UNCHANGED(a, capmem_alloc_alloc_at(a, 0, 0x2000), CAPMEM_E_NOT_ENOUGH_MEMORY);
    assert_int_equal(capmem_last_error()->needed, 0x2000);
    assert_int_equal(capmem_last_error()->available, 0x1000);
    assert_string_equal(capmem_last_error()->function, "capmem_alloc_alloc_at");
    capmem_alloc_destroy(a);

    /*
     * 0x7000 is tiled by 0x4000 + 0x2000 + 0x1000: a request of 0x2100 bytes
     * at 0x4000 is a 0x4000 block there, which would reach 0x8000.
     */
    EXPECT(capmem_alloc_create_buddy(0, 0x7000, 8, 20, &a), CAPMEM_OK);
    EXPECT_UNCHANGED(a, capmem_alloc_alloc_at(a, 0x4000, 0x2100), CAPMEM_E_NOT_ENOUGH_MEMORY);
    assert_int_equal(capmem_last_error()->needed, 0x4000);
    assert_int_equal(capmem_last_error()->available, 0x3000);
    assert_non_null(strstr(capmem_last_error()->message, "reaches past the end"));
    /* The same offset with a block that fits is fine. */
    EXPECT(capmem_alloc_alloc_at(a, 0x4000, 0x2000), CAPMEM_OK);
    CHECK(a);
    EXPECT_BLOCKS(a, F(0, 0x4000), U(0x4000, 0x2000), F(0x6000, 0x1000));
    capmem_alloc_destroy(a);
}

/* Watermark: an alignment that overflows the address space fails like no room. */
static void test_watermark_alignment_beyond_the_address_space_is_no_room(void **state)
{
    (void)state;
    const uint64_t base = 0xf000000000000000ull;
    capmem_alloc_t *a = make(P_WATERMARK, base, 0x10000);
    assert_int_equal(ALLOC(a, 0x10, 1), base);
    uint64_t off = 7;
    /* base + 0x10 aligned up to 2^63 wraps past 2^64. */
    EXPECT_UNCHANGED(a, capmem_alloc_alloc(a, 0x10, 1ull << 63, &off), CAPMEM_E_NOT_ENOUGH_MEMORY);
    assert_int_equal(capmem_last_error()->available, 0);
    assert_int_equal(off, 7);
    /* An alignment that lands beyond the span's end, without wrapping. */
    EXPECT_UNCHANGED(a, capmem_alloc_alloc(a, 0x10, 0x100000, &off), CAPMEM_E_NOT_ENOUGH_MEMORY);
    assert_int_equal(capmem_last_error()->available, 0);
    /* An alignment that the span can serve still works. */
    assert_int_equal(ALLOC(a, 0x10, 0x1000), base + 0x1000);
    capmem_alloc_destroy(a);
}

/* Watermark alloc_at grows the same table as alloc: a failed growth changes nothing. */
static void test_watermark_alloc_at_table_growth_failure_is_clean(void **state)
{
    (void)state;
    capmem_alloc_t *a = make(P_WATERMARK, 0, 1 << 20);
    for (int i = 0; i < 16; i++) {
        (void)ALLOC(a, 8, 8);
    }
    capmem__inject_fail(CAPMEM__HOST_MALLOC, 1);
    EXPECT_UNCHANGED(a, capmem_alloc_alloc_at(a, 0x1000, 8), CAPMEM_E_HOST_NOMEM);
    capmem__inject_reset();
    assert_string_equal(capmem_last_error()->function, "capmem_alloc_alloc_at");
    assert_int_equal(capmem_alloc_avail(a), (1 << 20) - 16 * 8);
    EXPECT(capmem_alloc_alloc_at(a, 0x1000, 8), CAPMEM_OK);
    CHECK(a);
    capmem_alloc_destroy(a);
}

/*
 * Range with an alignment above the granule: the policy takes a range from
 * the smallest class long enough to hold the aligned block wherever it
 * starts; failing that it scans the shorter ones, so alloc never fails
 * while some free range fits.
 */
static void range_gaps(capmem_alloc_t *a)
{
    /* Nine free gaps of 0x200 at k * 0x1000 + 0x100: none holds a 0x1000-aligned block. */
    for (uint64_t k = 0; k < 9; k++) {
        EXPECT(capmem_alloc_alloc_at(a, k * 0x1000, 0x100), CAPMEM_OK);
        EXPECT(capmem_alloc_alloc_at(a, k * 0x1000 + 0x300, 0xd00), CAPMEM_OK);
    }
    EXPECT(capmem_alloc_alloc_at(a, 0x9000, 0xf00), CAPMEM_OK);
    CHECK(a);
}

static void test_range_alignment_search_beyond_the_first_candidates(void **state)
{
    (void)state;
    /* A long free range after the gaps: found through its length. */
    capmem_alloc_t *a = make(P_RANGE, 0, 0x100000);
    range_gaps(a);
    assert_int_equal(ALLOC(a, 0x200, 0x1000), 0xa000);
    capmem_alloc_destroy(a);

    /* Only a short range, tenth in best-fit order, holds an aligned block: found by the scan. */
    a = make(P_RANGE, 0, 0x100000);
    range_gaps(a);
    EXPECT(capmem_alloc_alloc_at(a, 0xa200, 0x100000 - 0xa200),
           CAPMEM_OK); /* gap [0x9f00, 0xa200) */
    assert_int_equal(capmem_alloc_largest(a), 0x300);
    assert_int_equal(ALLOC(a, 0x200, 0x1000), 0xa000);
    /* No free range holds another one. */
    uint64_t off = 5;
    EXPECT_UNCHANGED(a, capmem_alloc_alloc(a, 0x200, 0x1000, &off), CAPMEM_E_NOT_ENOUGH_MEMORY);
    assert_int_equal(off, 5);
    /* Without the alignment, good fit takes the newest of the equally short gaps. */
    assert_int_equal(ALLOC(a, 0x200, 1), 0x8100);
    capmem_alloc_destroy(a);
}

/* Range: an alignment whose rounding wraps past 2^64 fails like no room. */
static void test_range_alignment_beyond_the_address_space_is_no_room(void **state)
{
    (void)state;
    const uint64_t base = 0ull - 0x20000; /* granule 1: offsets are granules */
    capmem_alloc_t *a = NULL;
    EXPECT(capmem_alloc_create_range(base, 0x10000, 1, &a), CAPMEM_OK);
    assert_int_equal(ALLOC(a, 0x10, 1), base);
    uint64_t off = 7;
    EXPECT_UNCHANGED(a, capmem_alloc_alloc(a, 0x10, 1ull << 63, &off), CAPMEM_E_NOT_ENOUGH_MEMORY);
    assert_int_equal(off, 7);
    assert_int_equal(ALLOC(a, 0x10, 0x1000), base + 0x1000);
    capmem_alloc_destroy(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create_rejects_bad_arguments_and_leaves_out_untouched),
        cmocka_unit_test(test_create_reports_span_name_and_everything_free),
        cmocka_unit_test(test_generic_calls_reject_bad_arguments_and_change_nothing),
        cmocka_unit_test(test_every_policy_refuses_foreign_frees_and_changes_nothing),
        cmocka_unit_test(test_watermark_skips_alignment_gap_and_fails_fourth_request),
        cmocka_unit_test(test_watermark_alloc_at_moves_index_and_loses_gap),
        cmocka_unit_test(test_watermark_table_growth_failure_is_clean),
        cmocka_unit_test(test_range_sel4_fragmentation_reuses_gap),
        cmocka_unit_test(test_range_good_fit_takes_the_newest_of_the_smallest_class),
        cmocka_unit_test(test_range_good_fit_rounds_up_to_a_class_that_always_fits),
        cmocka_unit_test(test_range_alloc_at_splits_a_merged_range),
        cmocka_unit_test(test_range_alloc_at_after_the_freed_range_vanished),
        cmocka_unit_test(test_range_metadata_is_bounded_by_live_blocks_not_span),
        cmocka_unit_test(test_range_alloc_at_exact_offset_and_refuses_overlap),
        cmocka_unit_test(test_range_free_coalesces_both_neighbours),
        cmocka_unit_test(test_range_free_ranges_visits_in_address_order),
        cmocka_unit_test(test_range_alignment_above_granule_places_block_aligned),
        cmocka_unit_test(test_buddy_halving_splits_lowest_first_and_consumes_pieces),
        cmocka_unit_test(test_buddy_sel4_fragmentation_reuses_gap),
        cmocka_unit_test(test_buddy_free_merges_buddies_back),
        cmocka_unit_test(test_buddy_covers_unaligned_span_with_natural_blocks),
        cmocka_unit_test(test_buddy_alloc_at_splits_toward_offset),
        cmocka_unit_test(test_buddy_alignment_above_block_size_finds_aligned_block),
        cmocka_unit_test(test_custom_first_fit_policy_works_through_generic_api),
        cmocka_unit_test(test_custom_hook_own_detail_is_passed_on_unchanged),
        cmocka_unit_test(test_custom_answer_outside_span_is_refused_as_policy),
        cmocka_unit_test(test_custom_misaligned_answer_is_refused_as_policy),
        cmocka_unit_test(test_custom_answer_overlapping_live_block_is_refused_as_policy),
        cmocka_unit_test(test_custom_same_offset_twice_is_refused_as_policy),
        cmocka_unit_test(test_custom_alloc_at_over_live_block_is_refused_before_the_policy),
        cmocka_unit_test(test_custom_free_of_block_not_live_is_refused_before_the_policy),
        cmocka_unit_test(test_custom_shadow_host_failure_is_clean_and_asks_nothing),
        cmocka_unit_test(test_custom_hook_calling_back_is_refused_as_reentrant),
        cmocka_unit_test(test_shadow_set_stays_balanced_and_answers_like_an_array),
        cmocka_unit_test(test_builtin_answers_are_checked_for_span_and_alignment),
        cmocka_unit_test(test_range_random_ops_match_shadow_model),
        cmocka_unit_test(test_buddy_random_ops_match_shadow_model),
        cmocka_unit_test(test_watermark_random_ops_match_shadow_model),
        cmocka_unit_test(test_create_host_failure_is_clean_error_without_leak),
        cmocka_unit_test(test_range_large_span_is_lazy_and_usable),
        cmocka_unit_test(test_alloc_create_custom_names_what_is_missing),
        cmocka_unit_test(test_alloc_queries_on_null_and_on_a_nameless_policy),
        cmocka_unit_test(test_alloc_custom_check_and_walk_hook_failures_are_reported),
        cmocka_unit_test(test_alloc_check_finds_each_broken_shadow_invariant),
        cmocka_unit_test(test_alloc_metadata_bytes_follow_the_documented_costs),
        cmocka_unit_test(test_alloc_walk_stops_when_the_visitor_says_so),
        cmocka_unit_test(test_range_reset_frees_every_block),
        cmocka_unit_test(test_buddy_alloc_at_refuses_oversized_and_overhanging_blocks),
        cmocka_unit_test(test_watermark_alignment_beyond_the_address_space_is_no_room),
        cmocka_unit_test(test_watermark_alloc_at_table_growth_failure_is_clean),
        cmocka_unit_test(test_range_alignment_search_beyond_the_first_candidates),
        cmocka_unit_test(test_range_alignment_beyond_the_address_space_is_no_room),
    };
    return cmocka_run_group_tests_name("alloc", tests, NULL, NULL);
}
