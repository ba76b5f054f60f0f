/* SPDX-License-Identifier: MIT */
/* Layer 4: untyped memory and retype, with seL4's rules and scenarios. */
#include <stdio.h>
#include <string.h>

#include "first_fit.h"
#include "internal.h"
#include "support.h"

typedef struct fixture {
    capmem_arena_t *arena;
    capmem_cap_t root; /* the first boot untyped */
} fixture_t;

static int setup(void **state)
{
    static fixture_t f;
    capmem_arena_attr_t at = CAPMEM_ARENA_ATTR_INIT;
    at.ram_size = 1 << 20;
    at.phys_base = 0x100000; /* 1 MiB-aligned: one boot untyped of 2^20 */
    at.device_window = 1 << 16;
    assert_ok(capmem_arena_create(&at, &f.arena));
    capmem_untyped_info_t boot[4];
    size_t n = 0;
    assert_ok(capmem_untyped_boot(f.arena, boot, 4, &n));
    assert_int_equal(n, 1);
    f.root = boot[0].cap;
    *state = &f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    CHECK_INVARIANTS(f->arena);
    capmem_arena_destroy(f->arena);
    return 0;
}

static capmem_err_t retype(capmem_arena_t *a, capmem_cap_t ut, capmem_obj_type_t type,
                           unsigned bits, uint32_t count, capmem_cap_t *dest)
{
    capmem_retype_attr_t at = CAPMEM_RETYPE_ATTR_INIT;
    at.type = type;
    at.size_bits = bits;
    at.count = count;
    return capmem_untyped_retype(a, ut, &at, dest, count);
}

/* A child untyped of 2^bits bytes with the given policy. */
static capmem_cap_t make_untyped(fixture_t *f, unsigned bits, capmem_untyped_policy_t policy)
{
    capmem_retype_attr_t at = CAPMEM_RETYPE_ATTR_INIT;
    at.type = CAPMEM_OBJ_UNTYPED;
    at.size_bits = bits;
    at.child_policy = policy;
    capmem_cap_t c = CAPMEM_CAP_NULL;
    assert_ok(capmem_untyped_retype(f->arena, f->root, &at, &c, 1));
    CHECK_INVARIANTS(f->arena);
    return c;
}

static uint64_t offset_in(capmem_arena_t *a, capmem_cap_t ut, capmem_cap_t obj)
{
    capmem_untyped_info_t ui;
    capmem_object_info_t oi;
    assert_ok(capmem_untyped_info(a, ut, &ui));
    assert_ok(capmem_object_info(a, obj, &oi));
    return oi.offset - ui.offset;
}

/* ---- what a refused call must leave alone --------------------------------- */

/* The capability count and one untyped's description (none when ut is NULL). */
typedef struct snapshot {
    size_t caps;
    capmem_untyped_info_t ui;
} snapshot_t;

static snapshot_t snap(capmem_arena_t *a, capmem_cap_t ut)
{
    snapshot_t s;
    memset(&s, 0, sizeof(s));
    s.caps = capmem_cap_count(a);
    if (ut != CAPMEM_CAP_NULL) {
        assert_ok(capmem_untyped_info(a, ut, &s.ui));
    }
    return s;
}

static void unchanged(capmem_arena_t *a, capmem_cap_t ut, const snapshot_t *before,
                      const char *call, int line)
{
    const snapshot_t now = snap(a, ut);
    const capmem_untyped_info_t *x = &before->ui;
    const capmem_untyped_info_t *y = &now.ui;
    if (now.caps != before->caps || x->cap != y->cap || x->phys != y->phys ||
        x->offset != y->offset || x->size_bits != y->size_bits || x->device != y->device ||
        x->free_bytes != y->free_bytes || x->largest_free != y->largest_free ||
        x->watermark != y->watermark || x->children != y->children || x->full != y->full ||
        (ut != CAPMEM_CAP_NULL && strcmp(x->policy, y->policy) != 0)) {
        fail_msg("line %d: refused %s changed the capabilities (%zu, now %zu) or the untyped", line,
                 call, before->caps, now.caps);
    }
    test_check_invariants(a, __FILE__, line);
}

/* @p call fails with @p code and changes neither the capability count nor untyped @p ut. */
#define assert_refused(a, ut, call, code)                                                          \
    do {                                                                                           \
        const snapshot_t before_ = snap((a), (ut));                                                \
        assert_err((call), (code));                                                                \
        unchanged((a), (ut), &before_, #call, __LINE__);                                           \
    } while (0)

/*
 * Make the 1st, 2nd, ... host allocation of @p call fail until the call
 * succeeds: each failure is HOST_NOMEM and changes nothing.
 */
#define assert_host_failures_refused(a, ut, call)                                                  \
    do {                                                                                           \
        uint64_t nth_ = 1;                                                                         \
        for (;; nth_++) {                                                                          \
            const snapshot_t before_ = snap((a), (ut));                                            \
            capmem__inject_fail(CAPMEM__HOST_MALLOC, nth_);                                        \
            const capmem_err_t err_ = (call);                                                      \
            capmem__inject_reset();                                                                \
            if (err_ == CAPMEM_OK) {                                                               \
                break;                                                                             \
            }                                                                                      \
            assert_err(err_, CAPMEM_E_HOST_NOMEM);                                                 \
            unchanged((a), (ut), &before_, #call, __LINE__);                                       \
        }                                                                                          \
        assert_true(nth_ > 1); /* at least one allocation was made, and refused */                 \
    } while (0)

/*
 * An arena with a 16-slot capability table and one boot untyped of 1 MiB,
 * for running out of capabilities.
 */
static capmem_arena_t *small_arena(capmem_cap_t *root)
{
    capmem_arena_attr_t at = CAPMEM_ARENA_ATTR_INIT;
    at.ram_size = 1 << 20;
    at.phys_base = 0x100000;
    at.device_window = 1 << 16;
    at.cap_slots = 16;
    capmem_arena_t *a = NULL;
    assert_ok(capmem_arena_create(&at, &a));
    capmem_untyped_info_t boot[1];
    size_t n = 0;
    assert_ok(capmem_untyped_boot(a, boot, 1, &n));
    assert_int_equal(n, 1);
    *root = boot[0].cap;
    return a;
}

/* Mint @p cap until the table is full. */
static void fill_caps(capmem_arena_t *a, capmem_cap_t cap)
{
    capmem_cap_t x;
    capmem_err_t err;
    while ((err = capmem_cap_mint(a, cap, CAPMEM_RIGHT_READ, &x)) == CAPMEM_OK) {
    }
    assert_err(err, CAPMEM_E_OUT_OF_CAPS);
}

/* ---- boot ----------------------------------------------------------------- */

static void test_untyped_boot_covers_ram_with_aligned_pieces(void **state)
{
    (void)state;
    capmem_arena_attr_t at = CAPMEM_ARENA_ATTR_INIT;
    at.ram_size = 64ull << 20;
    at.phys_base = 0x100000;
    at.device_window = 0x10000;
    capmem_arena_t *a = NULL;
    assert_ok(capmem_arena_create(&at, &a));
    capmem_device_info_t dev;
    assert_ok(capmem_arena_device_add(a, 0xfe000000, 0x3000, &dev));
    capmem_untyped_info_t boot[32];
    size_t n = 0;
    assert_ok(capmem_untyped_boot(a, boot, 32, &n));
    uint64_t ram = 0;
    uint64_t next = 0x100000;
    size_t i = 0;
    for (; i < n && !boot[i].device; i++) {
        assert_int_equal(boot[i].phys, next); /* contiguous, in order */
        assert_int_equal(boot[i].phys & ((1ull << boot[i].size_bits) - 1), 0);
        assert_string_equal(boot[i].policy, "watermark");
        ram += 1ull << boot[i].size_bits;
        next += 1ull << boot[i].size_bits;
    }
    assert_int_equal(ram, 64ull << 20);
    assert_int_equal(i, 7); /* 1M@1M, 2M, 4M, 8M, 16M, 32M, then 1M at 64M */
    /* The device range 0x3000 at 0xfe000000 is 0x2000 + 0x1000. */
    assert_int_equal(n - i, 2);
    assert_int_equal(boot[i].phys, 0xfe000000);
    assert_int_equal(boot[i].size_bits, 13);
    assert_int_equal(boot[i + 1].size_bits, 12);
    assert_true(boot[i].device);
    /* Device range is pinned while untypeds cover it. */
    assert_err(capmem_arena_device_remove(a, dev.id), CAPMEM_E_DELETE_FIRST);
    /* A second call returns the same list. */
    capmem_untyped_info_t again[32];
    size_t n2 = 0;
    assert_ok(capmem_untyped_boot(a, again, 32, &n2));
    assert_int_equal(n2, n);
    assert_int_equal(again[3].cap, boot[3].cap);
    assert_err(capmem_untyped_boot(a, NULL, 1, &n2), CAPMEM_E_INVALID_ARGS);
    assert_err(capmem_untyped_boot(NULL, again, 1, &n2), CAPMEM_E_INVALID_ARGS);
    CHECK_INVARIANTS(a);
    /* Deleting the device untypeds unpins the range. */
    assert_ok(capmem_cap_delete(a, boot[i].cap));
    assert_ok(capmem_cap_delete(a, boot[i + 1].cap));
    assert_ok(capmem_arena_device_remove(a, dev.id));
    CHECK_INVARIANTS(a);
    capmem_arena_destroy(a);
}

static void test_untyped_hotplugged_device_gets_device_untyped(void **state)
{
    fixture_t *f = *state;
    capmem_device_info_t dev;
    assert_ok(capmem_arena_device_add(f->arena, 0xf0000000, 0x4000, &dev));
    capmem_untyped_info_t ui[4];
    size_t n = 0;
    assert_ok(capmem_untyped_add_device(f->arena, dev.id, ui, 4, &n));
    assert_int_equal(n, 1);
    assert_true(ui[0].device);
    assert_int_equal(ui[0].phys, 0xf0000000);
    assert_err(capmem_untyped_add_device(f->arena, dev.id, ui, 4, &n), CAPMEM_E_DELETE_FIRST);
    assert_err(capmem_untyped_add_device(f->arena, 999, ui, 4, &n), CAPMEM_E_NOT_FOUND);
    assert_err(capmem_untyped_add_device(f->arena, dev.id, NULL, 4, &n), CAPMEM_E_INVALID_ARGS);
    CHECK_INVARIANTS(f->arena);
}

/* ---- the seL4 scenarios -------------------------------------------------- */

static void fragmentation(fixture_t *f, capmem_untyped_policy_t policy, int expect_fourth)
{
    capmem_cap_t ut = make_untyped(f, 13, policy); /* 0x2000 */
    capmem_cap_t o[4];
    assert_ok(retype(f->arena, ut, CAPMEM_OBJ_KOBJ, 10, 1, &o[0])); /* 0x400 */
    CHECK_INVARIANTS(f->arena);
    assert_ok(retype(f->arena, ut, CAPMEM_OBJ_KOBJ, 11, 1, &o[1])); /* 0x800 */
    CHECK_INVARIANTS(f->arena);
    assert_int_equal(offset_in(f->arena, ut, o[1]), 0x800); /* aligned up: gap 0x400..0x800 */
    assert_ok(retype(f->arena, ut, CAPMEM_OBJ_KOBJ, 12, 1, &o[2])); /* 0x1000 */
    CHECK_INVARIANTS(f->arena);
    capmem_err_t e = retype(f->arena, ut, CAPMEM_OBJ_KOBJ, 10, 1, &o[3]);
    CHECK_INVARIANTS(f->arena);
    if (expect_fourth) {
        assert_ok(e);
        assert_int_equal(offset_in(f->arena, ut, o[3]), 0x400); /* the gap is used */
    } else {
        assert_int_equal(e, CAPMEM_E_NOT_ENOUGH_MEMORY);
        const capmem_error_info_t *d = capmem_last_error();
        assert_string_equal(
            d->message,
            "Untyped Retype: Insufficient memory (1 * 1024 bytes needed, 0 bytes available).");
        assert_int_equal(d->needed, 1024);
        assert_int_equal(d->available, 0);
    }
    assert_ok(capmem_cap_revoke(f->arena, ut));
    assert_ok(capmem_cap_delete(f->arena, ut));
    CHECK_INVARIANTS(f->arena);
}

static void test_untyped_watermark_fragmentation_fails_fourth(void **state)
{
    fragmentation(*state, CAPMEM_UNTYPED_WATERMARK, 0);
}

static void test_untyped_range_fragmentation_uses_gap(void **state)
{
    fragmentation(*state, CAPMEM_UNTYPED_RANGE, 1);
}

static void test_untyped_buddy_fragmentation_uses_gap(void **state)
{
    fragmentation(*state, CAPMEM_UNTYPED_BUDDY, 1);
}

static void test_untyped_buddy_halving_consumes_exact_pieces(void **state)
{
    fixture_t *f = *state;
    capmem_cap_t ut = make_untyped(f, 13, CAPMEM_UNTYPED_BUDDY);
    capmem_cap_t a;
    capmem_cap_t b;
    capmem_cap_t c;
    capmem_cap_t d;
    capmem_cap_t e = CAPMEM_CAP_NULL;
    /* 0x400 splits 0x2000 into 0x1000, 0x800, 0x400 and 0x400 and takes the first 0x400. */
    assert_ok(retype(f->arena, ut, CAPMEM_OBJ_KOBJ, 10, 1, &a));
    assert_int_equal(offset_in(f->arena, ut, a), 0);
    capmem_untyped_info_t ui;
    assert_ok(capmem_untyped_info(f->arena, ut, &ui));
    assert_int_equal(ui.free_bytes, 0x1c00);
    assert_int_equal(ui.largest_free, 0x1000);
    /* Later requests take exactly the pieces that were left. */
    assert_ok(retype(f->arena, ut, CAPMEM_OBJ_KOBJ, 11, 1, &b));
    assert_int_equal(offset_in(f->arena, ut, b), 0x800);
    assert_ok(retype(f->arena, ut, CAPMEM_OBJ_KOBJ, 12, 1, &c));
    assert_int_equal(offset_in(f->arena, ut, c), 0x1000);
    assert_ok(retype(f->arena, ut, CAPMEM_OBJ_KOBJ, 10, 1, &d));
    assert_int_equal(offset_in(f->arena, ut, d), 0x400);
    assert_ok(capmem_untyped_info(f->arena, ut, &ui));
    assert_int_equal(ui.free_bytes, 0);
    assert_err(retype(f->arena, ut, CAPMEM_OBJ_KOBJ, 4, 1, &e), CAPMEM_E_NOT_ENOUGH_MEMORY);
    CHECK_INVARIANTS(f->arena);
    /* Deleting everything merges back into one 0x2000 block. */
    assert_ok(capmem_cap_revoke(f->arena, ut));
    assert_ok(capmem_untyped_info(f->arena, ut, &ui));
    assert_int_equal(ui.largest_free, 0x2000);
    CHECK_INVARIANTS(f->arena);
}

static void test_untyped_watermark_reuse_only_when_childless(void **state)
{
    fixture_t *f = *state;
    capmem_cap_t ut = make_untyped(f, 14, CAPMEM_UNTYPED_WATERMARK); /* 16 KiB */
    capmem_cap_t fr[4];
    assert_ok(retype(f->arena, ut, CAPMEM_OBJ_FRAME, 12, 4, fr));
    for (int i = 0; i < 4; i++) {
        /* Placed contiguously, in order. */
        assert_int_equal(offset_in(f->arena, ut, fr[i]), (uint64_t)i * 4096);
        assert_ok(capmem_frame_write(f->arena, fr[i], 0, "dirty", 5));
    }
    capmem_untyped_info_t ui;
    assert_ok(capmem_untyped_info(f->arena, ut, &ui));
    assert_int_equal(ui.watermark, 0x4000);
    /* Deleting the first two frees nothing while the others live. */
    assert_ok(capmem_cap_delete(f->arena, fr[0]));
    assert_ok(capmem_cap_delete(f->arena, fr[1]));
    CHECK_INVARIANTS(f->arena);
    assert_ok(capmem_untyped_info(f->arena, ut, &ui));
    assert_int_equal(ui.watermark, 0x4000);
    assert_int_equal(ui.free_bytes, 0);
    assert_int_equal(ui.children, 2);
    capmem_cap_t x = CAPMEM_CAP_NULL;
    assert_err(retype(f->arena, ut, CAPMEM_OBJ_FRAME, 12, 1, &x), CAPMEM_E_NOT_ENOUGH_MEMORY);
    assert_int_equal(capmem_last_error()->available, 0);
    /* Childless: the next retype starts at 0 and the memory reads as zeros. */
    assert_ok(capmem_cap_delete(f->arena, fr[2]));
    assert_ok(capmem_cap_delete(f->arena, fr[3]));
    assert_ok(retype(f->arena, ut, CAPMEM_OBJ_FRAME, 12, 1, &x));
    assert_int_equal(offset_in(f->arena, ut, x), 0);
    char buf[5] = "xxxx";
    assert_ok(capmem_frame_read(f->arena, x, 0, buf, 5));
    assert_memory_equal(buf, "\0\0\0\0\0", 5);
    CHECK_INVARIANTS(f->arena);
}

static void reuse_at_once(fixture_t *f, capmem_untyped_policy_t policy)
{
    capmem_cap_t ut = make_untyped(f, 14, policy);
    capmem_cap_t fr[4];
    assert_ok(retype(f->arena, ut, CAPMEM_OBJ_FRAME, 12, 4, fr));
    uint64_t first = offset_in(f->arena, ut, fr[0]);
    assert_ok(capmem_frame_write(f->arena, fr[0], 0, "dirty", 5));
    assert_ok(capmem_cap_delete(f->arena, fr[0]));
    capmem_cap_t x;
    assert_ok(retype(f->arena, ut, CAPMEM_OBJ_FRAME, 12, 1, &x));
    assert_int_equal(offset_in(f->arena, ut, x), first);
    char buf[5];
    assert_ok(capmem_frame_read(f->arena, x, 0, buf, 5));
    assert_memory_equal(buf, "\0\0\0\0\0", 5);
    CHECK_INVARIANTS(f->arena);
}

static void test_untyped_range_reuses_deleted_space_at_once(void **state)
{
    reuse_at_once(*state, CAPMEM_UNTYPED_RANGE);
}

static void test_untyped_buddy_reuses_deleted_space_at_once(void **state)
{
    reuse_at_once(*state, CAPMEM_UNTYPED_BUDDY);
}

static void test_untyped_exact_fill_sixteen_frames(void **state)
{
    fixture_t *f = *state;
    capmem_cap_t ut = make_untyped(f, 16, CAPMEM_UNTYPED_WATERMARK); /* 64 KiB */
    capmem_cap_t fr;
    for (int i = 0; i < 16; i++) {
        assert_ok(retype(f->arena, ut, CAPMEM_OBJ_FRAME, 12, 1, &fr));
        CHECK_INVARIANTS(f->arena);
    }
    assert_err(retype(f->arena, ut, CAPMEM_OBJ_FRAME, 12, 1, &fr), CAPMEM_E_NOT_ENOUGH_MEMORY);
    assert_string_equal(
        capmem_last_error()->message,
        "Untyped Retype: Insufficient memory (1 * 4096 bytes needed, 0 bytes available).");
    CHECK_INVARIANTS(f->arena);
}

/* ---- seL4's checks and their order --------------------------------------- */

static void test_untyped_retype_errors_follow_sel4_order(void **state)
{
    fixture_t *f = *state;
    capmem_cap_t ut = make_untyped(f, 12, CAPMEM_UNTYPED_WATERMARK);
    capmem_cap_t d[300];
    memset(d, 0, sizeof(d));
    capmem_retype_attr_t at = CAPMEM_RETYPE_ATTR_INIT;
    /* Type first: a bad type wins over a bad count. */
    at.type = CAPMEM_OBJ_DATASPACE;
    at.count = 0;
    assert_err(capmem_untyped_retype(f->arena, ut, &at, d, 300), CAPMEM_E_INVALID_ARGS);
    assert_int_equal(capmem_last_error()->argument, 1);
    /* Then size: 2^48 is beyond 2^47 even with a bad count. */
    at = (capmem_retype_attr_t)CAPMEM_RETYPE_ATTR_INIT;
    at.type = CAPMEM_OBJ_KOBJ;
    at.size_bits = 48;
    at.count = 0;
    assert_err(capmem_untyped_retype(f->arena, ut, &at, d, 300), CAPMEM_E_RANGE);
    assert_int_equal(capmem_last_error()->bound_max, 47);
    /* Untyped below 2^4 is an invalid argument, as in seL4. */
    at = (capmem_retype_attr_t)CAPMEM_RETYPE_ATTR_INIT;
    at.type = CAPMEM_OBJ_UNTYPED;
    at.size_bits = 3;
    assert_err(capmem_untyped_retype(f->arena, ut, &at, d, 300), CAPMEM_E_INVALID_ARGS);
    /* Frames smaller than a page. */
    at = (capmem_retype_attr_t)CAPMEM_RETYPE_ATTR_INIT;
    at.size_bits = 11;
    assert_err(capmem_untyped_retype(f->arena, ut, &at, d, 300), CAPMEM_E_RANGE);
    assert_int_equal(capmem_last_error()->bound_min, 12);
    /* Then count: 0 and 257 name the bounds 1..256, before memory is looked at. */
    at = (capmem_retype_attr_t)CAPMEM_RETYPE_ATTR_INIT;
    at.type = CAPMEM_OBJ_KOBJ;
    at.size_bits = 30; /* would not fit either */
    at.count = 0;
    assert_err(capmem_untyped_retype(f->arena, ut, &at, d, 300), CAPMEM_E_RANGE);
    assert_int_equal(capmem_last_error()->bound_min, 1);
    assert_int_equal(capmem_last_error()->bound_max, 256);
    at.count = 257;
    assert_err(capmem_untyped_retype(f->arena, ut, &at, d, 300), CAPMEM_E_RANGE);
    /* 256 objects of 16 bytes fit in 4 KiB exactly. */
    at.size_bits = 4;
    at.count = 256;
    assert_ok(capmem_untyped_retype(f->arena, ut, &at, d, 300));
    for (int i = 1; i < 256; i++) {
        assert_int_equal(offset_in(f->arena, ut, d[i]), offset_in(f->arena, ut, d[i - 1]) + 16);
    }
    CHECK_INVARIANTS(f->arena);
    assert_ok(capmem_cap_revoke(f->arena, ut));
    /* Memory last: 2 * 4 KiB in 4 KiB. */
    at.size_bits = 12;
    at.count = 2;
    assert_err(capmem_untyped_retype(f->arena, ut, &at, d, 300), CAPMEM_E_NOT_ENOUGH_MEMORY);
    assert_string_equal(
        capmem_last_error()->message,
        "Untyped Retype: Insufficient memory (2 * 4096 bytes needed, 4096 bytes available).");
    /* Too few destination slots, NULL arguments. */
    at.count = 1;
    assert_err(capmem_untyped_retype(f->arena, ut, &at, d, 0), CAPMEM_E_INVALID_ARGS);
    assert_err(capmem_untyped_retype(f->arena, ut, NULL, d, 1), CAPMEM_E_INVALID_ARGS);
    assert_err(capmem_untyped_retype(f->arena, ut, &at, NULL, 1), CAPMEM_E_INVALID_ARGS);
    assert_err(capmem_untyped_retype(NULL, ut, &at, d, 1), CAPMEM_E_INVALID_ARGS);
    capmem_untyped_info_t ui;
    assert_ok(capmem_untyped_info(f->arena, ut, &ui));
    assert_int_equal(ui.children, 0); /* nothing was created by any failure */
    CHECK_INVARIANTS(f->arena);
}

static void test_untyped_untyped_sizes_span_4_to_47_bits(void **state)
{
    (void)state;
    /* A 2^47 arena is too big to map here; check the bounds on a small one. */
    fixture_t *f = *state;
    capmem_cap_t c;
    capmem_retype_attr_t at = CAPMEM_RETYPE_ATTR_INIT;
    at.type = CAPMEM_OBJ_UNTYPED;
    at.size_bits = 4;
    assert_ok(capmem_untyped_retype(f->arena, f->root, &at, &c, 1));
    capmem_untyped_info_t ui;
    assert_ok(capmem_untyped_info(f->arena, c, &ui));
    assert_int_equal(ui.size_bits, 4);
    at.size_bits = 47; /* within seL4's bounds, but larger than this 1 MiB root */
    assert_err(capmem_untyped_retype(f->arena, f->root, &at, &c, 1), CAPMEM_E_NOT_ENOUGH_MEMORY);
    CHECK_INVARIANTS(f->arena);
}

static void test_untyped_capability_checks(void **state)
{
    fixture_t *f = *state;
    capmem_cap_t ut = make_untyped(f, 12, CAPMEM_UNTYPED_WATERMARK);
    capmem_cap_t fr;
    assert_ok(retype(f->arena, ut, CAPMEM_OBJ_FRAME, 12, 1, &fr));
    capmem_cap_t x = CAPMEM_CAP_NULL;
    /* A frame is not an untyped. */
    assert_err(retype(f->arena, fr, CAPMEM_OBJ_FRAME, 12, 1, &x), CAPMEM_E_WRONG_TYPE);
    /* Read-only copy of the untyped: retype needs WRITE. */
    capmem_cap_t ro;
    assert_ok(capmem_cap_mint(f->arena, f->root, CAPMEM_RIGHT_READ, &ro));
    assert_err(retype(f->arena, ro, CAPMEM_OBJ_FRAME, 12, 1, &x), CAPMEM_E_DENIED);
    assert_ok(capmem_cap_delete(f->arena, ro));
    /* Stale and forged. */
    assert_ok(capmem_cap_delete(f->arena, fr));
    capmem_object_info_t oi;
    assert_err(capmem_object_info(f->arena, fr, &oi), CAPMEM_E_INVALID_CAP);
    assert_err(retype(f->arena, 0xdeadbeefcafef00dull, CAPMEM_OBJ_FRAME, 12, 1, &x),
               CAPMEM_E_INVALID_CAP);
    assert_int_equal(x, CAPMEM_CAP_NULL);
    capmem_untyped_info_t ui;
    assert_err(capmem_untyped_info(f->arena, fr, &ui), CAPMEM_E_INVALID_CAP);
    assert_err(capmem_untyped_info(f->arena, ut, NULL), CAPMEM_E_INVALID_ARGS);
    assert_err(capmem_object_info(f->arena, ut, &oi), CAPMEM_E_WRONG_TYPE);
    assert_err(capmem_object_info(NULL, ut, &oi), CAPMEM_E_INVALID_ARGS);
    CHECK_INVARIANTS(f->arena);
}

static void test_untyped_frame_access_checks_bounds_and_rights(void **state)
{
    fixture_t *f = *state;
    capmem_cap_t fr;
    capmem_cap_t ko;
    assert_ok(retype(f->arena, f->root, CAPMEM_OBJ_FRAME, 12, 1, &fr));
    assert_ok(retype(f->arena, f->root, CAPMEM_OBJ_KOBJ, 11, 1, &ko));
    char buf[8] = "abcdefg";
    assert_ok(capmem_frame_write(f->arena, fr, 4088, buf, 8));
    assert_err(capmem_frame_write(f->arena, fr, 4089, buf, 8), CAPMEM_E_INVALID_ARGS);
    assert_err(capmem_frame_read(f->arena, fr, UINT64_MAX, buf, 8), CAPMEM_E_INVALID_ARGS);
    assert_err(capmem_frame_read(f->arena, ko, 0, buf, 8), CAPMEM_E_WRONG_TYPE);
    assert_err(capmem_frame_read(f->arena, fr, 0, NULL, 8), CAPMEM_E_INVALID_ARGS);
    assert_err(capmem_frame_write(f->arena, fr, 0, NULL, 8), CAPMEM_E_INVALID_ARGS);
    assert_err(capmem_frame_write(NULL, fr, 0, buf, 8), CAPMEM_E_INVALID_ARGS);
    capmem_cap_t ro;
    assert_ok(capmem_cap_mint(f->arena, fr, CAPMEM_RIGHT_READ, &ro));
    assert_err(capmem_frame_write(f->arena, ro, 0, "zz", 2), CAPMEM_E_DENIED);
    char back[8];
    assert_ok(capmem_frame_read(f->arena, ro, 4088, back, 8));
    assert_memory_equal(back, "abcdefg", 8); /* the refused write changed nothing */
    capmem_cap_t none;
    assert_ok(capmem_cap_mint(f->arena, fr, CAPMEM_RIGHT_GRANT, &none));
    assert_err(capmem_frame_read(f->arena, none, 0, back, 1), CAPMEM_E_DENIED);
    CHECK_INVARIANTS(f->arena);
}

static void test_untyped_device_yields_frames_and_untyped_only(void **state)
{
    fixture_t *f = *state;
    capmem_device_info_t dev;
    assert_ok(capmem_arena_device_add(f->arena, 0xe0000000, 0x8000, &dev));
    capmem_untyped_info_t ui[2];
    size_t n = 0;
    assert_ok(capmem_untyped_add_device(f->arena, dev.id, ui, 2, &n));
    capmem_cap_t dut = ui[0].cap;
    capmem_cap_t x = CAPMEM_CAP_NULL;
    assert_err(retype(f->arena, dut, CAPMEM_OBJ_KOBJ, 10, 1, &x), CAPMEM_E_INVALID_ARGS);
    assert_string_equal(capmem_last_error()->message,
                        "Untyped Retype: Creating kernel objects with device untyped");
    capmem_cap_t sub;
    assert_ok(retype(f->arena, dut, CAPMEM_OBJ_UNTYPED, 13, 1, &sub));
    capmem_untyped_info_t si;
    assert_ok(capmem_untyped_info(f->arena, sub, &si));
    assert_true(si.device); /* children inherit the device flag */
    assert_int_equal(si.phys, 0xe0000000);
    capmem_cap_t fr;
    assert_ok(retype(f->arena, sub, CAPMEM_OBJ_FRAME, 12, 1, &fr));
    capmem_object_info_t oi;
    assert_ok(capmem_object_info(f->arena, fr, &oi));
    assert_true(oi.device);
    assert_int_equal(oi.phys, 0xe0000000);
    assert_ok(capmem_frame_write(f->arena, fr, 0, "regs", 4));
    /* Device memory is never zeroed: a new frame over it sees the old bytes. */
    assert_ok(capmem_cap_delete(f->arena, fr));
    assert_ok(retype(f->arena, sub, CAPMEM_OBJ_FRAME, 12, 1, &fr));
    char buf[4];
    assert_ok(capmem_frame_read(f->arena, fr, 0, buf, 4));
    assert_memory_equal(buf, "regs", 4);
    assert_err(retype(f->arena, sub, CAPMEM_OBJ_KOBJ, 4, 1, &x), CAPMEM_E_INVALID_ARGS);
    CHECK_INVARIANTS(f->arena);
}

static void test_untyped_copy_rules(void **state)
{
    fixture_t *f = *state;
    capmem_cap_t ut = make_untyped(f, 13, CAPMEM_UNTYPED_WATERMARK);
    capmem_cap_t fr;
    capmem_cap_t cp = CAPMEM_CAP_NULL;
    assert_ok(retype(f->arena, ut, CAPMEM_OBJ_FRAME, 12, 1, &fr));
    assert_err(capmem_untyped_copy(f->arena, ut, &cp), CAPMEM_E_REVOKE_FIRST);
    assert_int_equal(cp, CAPMEM_CAP_NULL);
    assert_ok(capmem_cap_revoke(f->arena, ut));
    assert_ok(capmem_untyped_copy(f->arena, ut, &cp));
    capmem_cap_info_t ci;
    assert_ok(capmem_cap_identify(f->arena, cp, &ci));
    assert_int_equal(ci.parent, ut); /* the copy is a child */
    capmem_untyped_info_t ui;
    assert_ok(capmem_untyped_info(f->arena, ut, &ui));
    assert_true(ui.full);
    assert_int_equal(ui.free_bytes, 0);
    capmem_cap_t x = CAPMEM_CAP_NULL;
    assert_err(retype(f->arena, ut, CAPMEM_OBJ_FRAME, 12, 1, &x), CAPMEM_E_NOT_ENOUGH_MEMORY);
    assert_int_equal(capmem_last_error()->available, 0);
    /* The copy can use the whole region. */
    capmem_cap_t two[2];
    assert_ok(retype(f->arena, cp, CAPMEM_OBJ_FRAME, 12, 2, two));
    CHECK_INVARIANTS(f->arena);
    /* Once the copy is gone, the original is childless and resets. */
    assert_ok(capmem_cap_revoke(f->arena, ut));
    assert_ok(retype(f->arena, ut, CAPMEM_OBJ_FRAME, 12, 1, &x));
    assert_err(capmem_untyped_copy(f->arena, ut, NULL), CAPMEM_E_INVALID_ARGS);
    CHECK_INVARIANTS(f->arena);
}

static void test_untyped_range_retype_at_offset(void **state)
{
    fixture_t *f = *state;
    capmem_cap_t ut = make_untyped(f, 14, CAPMEM_UNTYPED_RANGE);
    capmem_retype_attr_t at = CAPMEM_RETYPE_ATTR_INIT;
    at.offset = 0x2000;
    capmem_cap_t fr;
    assert_ok(capmem_untyped_retype(f->arena, ut, &at, &fr, 1));
    assert_int_equal(offset_in(f->arena, ut, fr), 0x2000);
    capmem_cap_t x = CAPMEM_CAP_NULL;
    assert_err(capmem_untyped_retype(f->arena, ut, &at, &x, 1), CAPMEM_E_NOT_ENOUGH_MEMORY);
    at.offset = 0x2100; /* misaligned for a 4 KiB frame */
    assert_err(capmem_untyped_retype(f->arena, ut, &at, &x, 1), CAPMEM_E_INVALID_ARGS);
    at.offset = 0x4000; /* outside */
    assert_err(capmem_untyped_retype(f->arena, ut, &at, &x, 1), CAPMEM_E_INVALID_ARGS);
    at.offset = 0x3000;
    at.count = 2; /* runs past the end */
    assert_err(capmem_untyped_retype(f->arena, ut, &at, &x, 2), CAPMEM_E_INVALID_ARGS);
    at.offset = 0;
    at.count = 2;
    capmem_cap_t two[2];
    assert_ok(capmem_untyped_retype(f->arena, ut, &at, two, 2));
    assert_int_equal(x, CAPMEM_CAP_NULL);
    /* Watermark places objects itself. */
    capmem_cap_t wm = make_untyped(f, 13, CAPMEM_UNTYPED_WATERMARK);
    at.count = 1;
    assert_err(capmem_untyped_retype(f->arena, wm, &at, &x, 1), CAPMEM_E_INVALID_ARGS);
    CHECK_INVARIANTS(f->arena);
}

static void test_untyped_children_inherit_policy_only_when_asked(void **state)
{
    fixture_t *f = *state;
    capmem_cap_t ut = make_untyped(f, 14, CAPMEM_UNTYPED_BUDDY);
    capmem_retype_attr_t at = CAPMEM_RETYPE_ATTR_INIT;
    at.type = CAPMEM_OBJ_UNTYPED;
    at.size_bits = 12;
    capmem_cap_t plain;
    capmem_cap_t inh;
    assert_ok(capmem_untyped_retype(f->arena, ut, &at, &plain, 1));
    at.child_policy = CAPMEM_UNTYPED_INHERIT;
    assert_ok(capmem_untyped_retype(f->arena, ut, &at, &inh, 1));
    capmem_untyped_info_t ui;
    assert_ok(capmem_untyped_info(f->arena, plain, &ui));
    assert_string_equal(ui.policy, "watermark");
    assert_ok(capmem_untyped_info(f->arena, inh, &ui));
    assert_string_equal(ui.policy, "buddy");
    at.child_policy = (capmem_untyped_policy_t)42;
    capmem_cap_t x;
    assert_err(capmem_untyped_retype(f->arena, ut, &at, &x, 1), CAPMEM_E_INVALID_ARGS);
    assert_string_equal(capmem_untyped_policy_name(CAPMEM_UNTYPED_RANGE), "range");
    assert_string_equal(capmem_untyped_policy_name((capmem_untyped_policy_t)9), "unknown");
    CHECK_INVARIANTS(f->arena);
}

/* ---- a user policy: the tests' first fit (tests/first_fit.c) ------------- */

static void test_untyped_user_policy_runs_the_scenarios(void **state)
{
    fixture_t *f = *state;
    static test_ff_t ff;
    memset(&ff, 0, sizeof(ff));
    ff.size = 0x2000;
    capmem_alloc_t *pol = NULL;
    assert_ok(capmem_alloc_create_custom_span(&test_ff_ops, &ff, 0, 0x2000, &pol));
    capmem_cap_t ut = make_untyped(f, 13, CAPMEM_UNTYPED_WATERMARK);
    assert_ok(capmem_untyped_set_policy(f->arena, ut, CAPMEM_UNTYPED_WATERMARK, pol));
    capmem_untyped_info_t ui;
    assert_ok(capmem_untyped_info(f->arena, ut, &ui));
    assert_string_equal(ui.policy, "first-fit");
    /* The fragmentation scenario: first fit uses the gap too. */
    capmem_cap_t o[5];
    assert_ok(retype(f->arena, ut, CAPMEM_OBJ_KOBJ, 10, 1, &o[0]));
    assert_ok(retype(f->arena, ut, CAPMEM_OBJ_KOBJ, 11, 1, &o[1]));
    assert_ok(retype(f->arena, ut, CAPMEM_OBJ_KOBJ, 12, 1, &o[2]));
    assert_ok(retype(f->arena, ut, CAPMEM_OBJ_KOBJ, 10, 1, &o[3]));
    assert_int_equal(offset_in(f->arena, ut, o[3]), 0x400);
    assert_int_equal(ff.n, 4);
    CHECK_INVARIANTS(f->arena);
    assert_err(retype(f->arena, ut, CAPMEM_OBJ_KOBJ, 4, 1, &o[4]), CAPMEM_E_NOT_ENOUGH_MEMORY);
    /* Reuse after delete: the policy decides, and first fit reuses at once. */
    assert_ok(capmem_cap_delete(f->arena, o[1]));
    assert_int_equal(ff.n, 3);
    assert_ok(retype(f->arena, ut, CAPMEM_OBJ_KOBJ, 11, 1, &o[1]));
    assert_int_equal(offset_in(f->arena, ut, o[1]), 0x800);
    /* Changing the policy needs a childless untyped. */
    assert_err(capmem_untyped_set_policy(f->arena, ut, CAPMEM_UNTYPED_RANGE, NULL),
               CAPMEM_E_REVOKE_FIRST);
    assert_ok(capmem_cap_revoke(f->arena, ut));
    assert_int_equal(ff.n, 0);
    assert_ok(capmem_untyped_set_policy(f->arena, ut, CAPMEM_UNTYPED_RANGE, NULL));
    assert_err(capmem_untyped_set_policy(f->arena, ut, CAPMEM_UNTYPED_INHERIT, NULL),
               CAPMEM_E_INVALID_ARGS);
    assert_err(capmem_untyped_set_policy(NULL, ut, CAPMEM_UNTYPED_RANGE, NULL),
               CAPMEM_E_INVALID_ARGS);
    /* A user policy must cover the untyped from offset 0. */
    static test_ff_t short_ff;
    memset(&short_ff, 0, sizeof(short_ff));
    short_ff.size = 0x1000;
    capmem_alloc_t *shorter = NULL;
    assert_ok(capmem_alloc_create_custom_span(&test_ff_ops, &short_ff, 0, 0x1000, &shorter));
    assert_err(capmem_untyped_set_policy(f->arena, ut, CAPMEM_UNTYPED_WATERMARK, shorter),
               CAPMEM_E_INVALID_ARGS);
    capmem_alloc_destroy(shorter); /* refused: still ours to destroy */
    CHECK_INVARIANTS(f->arena);
}

/* ---- a garbage policy: every answer is checked ---------------------------- */

/* Answers `answer` to every alloc and OK to everything else, recording nothing. */
typedef struct garbage {
    uint64_t answer;
    int allocs;
} garbage_t;

static capmem_err_t garbage_alloc(void *self, uint64_t size, uint64_t align, uint64_t *offset)
{
    garbage_t *g = self;
    (void)size;
    (void)align;
    g->allocs++;
    *offset = g->answer;
    return CAPMEM_OK;
}

static capmem_err_t garbage_alloc_at(void *self, uint64_t offset, uint64_t size)
{
    (void)self;
    (void)offset;
    (void)size;
    return CAPMEM_OK;
}

static capmem_err_t garbage_free(void *self, uint64_t offset, uint64_t size)
{
    (void)self;
    (void)offset;
    (void)size;
    return CAPMEM_OK;
}

static uint64_t garbage_avail(const void *self)
{
    (void)self;
    return 0x2000;
}

static void garbage_reset(void *self)
{
    (void)self;
}

static const capmem_alloc_ops_t garbage_ops = {
    .name = "garbage",
    .alloc = garbage_alloc,
    .alloc_at = garbage_alloc_at,
    .free = garbage_free,
    .avail = garbage_avail,
    .largest = garbage_avail,
    .reset = garbage_reset,
};

/* A refused answer reaches the caller as POLICY, with the policy's name in the detail. */

/*
 * Retype through the garbage policy: refused, the untyped's info and the
 * capability count unchanged, no handle written, the checker passes.
 */
static void retype_is_refused(fixture_t *f, capmem_cap_t ut, uint32_t count, int line)
{
    capmem_untyped_info_t before;
    capmem_untyped_info_t after;
    assert_ok(capmem_untyped_info(f->arena, ut, &before));
    size_t caps = capmem_cap_count(f->arena);
    capmem_cap_t d[2] = {CAPMEM_CAP_NULL, CAPMEM_CAP_NULL};
    capmem_err_t err = retype(f->arena, ut, CAPMEM_OBJ_KOBJ, 10, count, d);
    const capmem_error_info_t *e = capmem_last_error();
    if (err != CAPMEM_E_POLICY || strstr(e->message, "'garbage'") == NULL) {
        fail_msg("line %d: retype returned %s (%s), expected POLICY", line, capmem_err_name(err),
                 e->message);
    }
    assert_ok(capmem_untyped_info(f->arena, ut, &after));
    if (after.free_bytes != before.free_bytes || after.largest_free != before.largest_free ||
        after.children != before.children || after.watermark != before.watermark ||
        after.full != before.full || strcmp(after.policy, before.policy) != 0) {
        fail_msg("line %d: a refused retype changed the untyped", line);
    }
    assert_int_equal(capmem_cap_count(f->arena), caps);
    assert_int_equal(d[0], CAPMEM_CAP_NULL);
    assert_int_equal(d[1], CAPMEM_CAP_NULL);
    CHECK_INVARIANTS(f->arena);
}

static void test_untyped_garbage_policy_answer_is_refused_and_changes_nothing(void **state)
{
    fixture_t *f = *state;
    static garbage_t g;
    memset(&g, 0, sizeof(g));
    capmem_alloc_t *pol = NULL;
    assert_ok(capmem_alloc_create_custom_span(&garbage_ops, &g, 0, 0x2000, &pol));
    capmem_cap_t ut = make_untyped(f, 13, CAPMEM_UNTYPED_WATERMARK);
    assert_ok(capmem_untyped_set_policy(f->arena, ut, CAPMEM_UNTYPED_WATERMARK, pol));
    /* Out of the span, at its end and far beyond; misaligned for 1 KiB objects. */
    const uint64_t answers[] = {0x2000, 0x1c00 + 0x800, UINT64_MAX - 0x100, 0x10, 0x200};
    for (size_t i = 0; i < sizeof(answers) / sizeof(answers[0]); i++) {
        g.answer = answers[i];
        for (uint32_t count = 1; count <= 2; count++) {
            int allocs = g.allocs;
            retype_is_refused(f, ut, count, __LINE__);
            assert_int_equal(g.allocs, allocs + 1); /* asked once, not again */
        }
    }
    /* The same offset twice: the first answer is fine, the second overlaps it. */
    g.answer = 0x400;
    capmem_cap_t first = CAPMEM_CAP_NULL;
    assert_ok(retype(f->arena, ut, CAPMEM_OBJ_KOBJ, 10, 1, &first));
    assert_int_equal(offset_in(f->arena, ut, first), 0x400);
    CHECK_INVARIANTS(f->arena);
    retype_is_refused(f, ut, 1, __LINE__);
    assert_ok(capmem_cap_delete(f->arena, first));
    CHECK_INVARIANTS(f->arena);
}

/* ---- host failures, events ---------------------------------------------- */

static void test_untyped_host_failure_changes_nothing(void **state)
{
    fixture_t *f = *state;
    capmem_cap_t ut = make_untyped(f, 14, CAPMEM_UNTYPED_RANGE);
    capmem_untyped_info_t before;
    capmem_untyped_info_t after;
    assert_ok(capmem_untyped_info(f->arena, ut, &before));
    size_t caps = capmem_cap_count(f->arena);
    capmem_cap_t d[4] = {0};
    for (uint64_t nth = 1; nth <= 4; nth++) {
        capmem__inject_fail(CAPMEM__HOST_MALLOC, nth);
        capmem_err_t e = retype(f->arena, ut, CAPMEM_OBJ_FRAME, 12, 4, d);
        capmem__inject_reset();
        assert_int_equal(e, CAPMEM_E_HOST_NOMEM);
        assert_ok(capmem_untyped_info(f->arena, ut, &after));
        assert_int_equal(after.free_bytes, before.free_bytes);
        assert_int_equal(after.children, 0);
        assert_int_equal(capmem_cap_count(f->arena), caps);
        assert_int_equal(d[0], CAPMEM_CAP_NULL);
        CHECK_INVARIANTS(f->arena);
    }
    assert_ok(retype(f->arena, ut, CAPMEM_OBJ_FRAME, 12, 4, d));
    CHECK_INVARIANTS(f->arena);
}

static int retypes_seen;
static void on_event(capmem_arena_t *a, const capmem_event_t *ev, void *ctx)
{
    (void)a;
    (void)ctx;
    if (ev->kind == CAPMEM_EVENT_RETYPE) {
        retypes_seen++;
        assert_int_equal(ev->a, 4096);
        assert_int_equal(ev->b, 3);
    }
}

static void test_untyped_retype_emits_event(void **state)
{
    fixture_t *f = *state;
    retypes_seen = 0;
    assert_ok(capmem_arena_set_event_handler(f->arena, on_event, NULL));
    capmem_cap_t d[3];
    assert_ok(retype(f->arena, f->root, CAPMEM_OBJ_FRAME, 12, 3, d));
    assert_int_equal(retypes_seen, 1);
    assert_ok(capmem_arena_set_event_handler(f->arena, NULL, NULL));
    CHECK_INVARIANTS(f->arena);
}

static void test_untyped_revoke_returns_everything(void **state)
{
    fixture_t *f = *state;
    capmem_cap_t ut = make_untyped(f, 16, CAPMEM_UNTYPED_RANGE);
    capmem_cap_t sub;
    capmem_cap_t d[8];
    capmem_retype_attr_t at = CAPMEM_RETYPE_ATTR_INIT;
    at.type = CAPMEM_OBJ_UNTYPED;
    at.size_bits = 14;
    at.child_policy = CAPMEM_UNTYPED_BUDDY;
    assert_ok(capmem_untyped_retype(f->arena, ut, &at, &sub, 1));
    assert_ok(retype(f->arena, sub, CAPMEM_OBJ_FRAME, 12, 4, d));
    assert_ok(retype(f->arena, ut, CAPMEM_OBJ_KOBJ, CAPMEM_SEL4_X86_64_TCB_BITS, 8, d));
    CHECK_INVARIANTS(f->arena);
    assert_ok(capmem_cap_revoke(f->arena, ut));
    capmem_untyped_info_t ui;
    assert_ok(capmem_untyped_info(f->arena, ut, &ui));
    assert_int_equal(ui.children, 0);
    assert_int_equal(ui.free_bytes, 1 << 16);
    assert_int_equal(capmem_cap_count(f->arena), 2); /* root and ut */
    CHECK_INVARIANTS(f->arena);
}

/* ---- copies and free bytes ------------------------------------------------- */

static void test_untyped_copy_marks_source_full_while_the_copy_lives(void **state)
{
    fixture_t *f = *state;
    capmem_cap_t ut = make_untyped(f, 13, CAPMEM_UNTYPED_WATERMARK);
    capmem_cap_t cp;
    assert_ok(capmem_untyped_copy(f->arena, ut, &cp));
    capmem_untyped_info_t ui;
    assert_ok(capmem_untyped_info(f->arena, ut, &ui));
    assert_true(ui.full);
    assert_int_equal(ui.free_bytes, 0);
    assert_int_equal(ui.largest_free, 0);
    assert_ok(capmem_untyped_info(f->arena, cp, &ui));
    assert_false(ui.full); /* the copy itself can use everything */
    assert_int_equal(ui.free_bytes, 0x2000);
    CHECK_INVARIANTS(f->arena);
    /* Deleting the copy ends it: not full, every byte free again. */
    assert_ok(capmem_cap_delete(f->arena, cp));
    assert_ok(capmem_untyped_info(f->arena, ut, &ui));
    assert_false(ui.full);
    assert_int_equal(ui.free_bytes, 0x2000);
    assert_int_equal(ui.largest_free, 0x2000);
    capmem_cap_t fr[2];
    assert_ok(retype(f->arena, ut, CAPMEM_OBJ_FRAME, 12, 2, fr));
    CHECK_INVARIANTS(f->arena);
}

static void test_untyped_copy_marks_source_full_through_every_capability(void **state)
{
    fixture_t *f = *state;
    capmem_cap_t ut = make_untyped(f, 13, CAPMEM_UNTYPED_WATERMARK);
    capmem_cap_t via;
    capmem_cap_t cp;
    capmem_cap_t other;
    assert_ok(capmem_cap_mint(f->arena, ut, CAPMEM_RIGHTS_ALL, &via));
    assert_ok(capmem_untyped_copy(f->arena, via, &cp));
    /* A capability with no children of its own still sees the copy: no reset, no memory. */
    assert_ok(capmem_cap_mint(f->arena, ut, CAPMEM_RIGHTS_ALL, &other));
    capmem_untyped_info_t ui;
    assert_ok(capmem_untyped_info(f->arena, other, &ui));
    assert_true(ui.full);
    assert_int_equal(ui.free_bytes, 0);
    capmem_cap_t x = CAPMEM_CAP_NULL;
    assert_refused(f->arena, other, retype(f->arena, other, CAPMEM_OBJ_FRAME, 12, 1, &x),
                   CAPMEM_E_NOT_ENOUGH_MEMORY);
    assert_int_equal(capmem_last_error()->available, 0);
    assert_refused(f->arena, other, capmem_untyped_copy(f->arena, other, &x),
                   CAPMEM_E_REVOKE_FIRST);
    assert_refused(f->arena, other,
                   capmem_untyped_set_policy(f->arena, other, CAPMEM_UNTYPED_RANGE, NULL),
                   CAPMEM_E_REVOKE_FIRST);
    assert_int_equal(x, CAPMEM_CAP_NULL);
    assert_ok(capmem_cap_delete(f->arena, cp));
    assert_ok(capmem_untyped_info(f->arena, other, &ui));
    assert_false(ui.full);
    assert_int_equal(ui.free_bytes, 0x2000);
    assert_ok(retype(f->arena, other, CAPMEM_OBJ_FRAME, 12, 1, &x));
    CHECK_INVARIANTS(f->arena);
}

static void test_untyped_childless_watermark_reports_what_a_retype_can_use(void **state)
{
    fixture_t *f = *state;
    capmem_cap_t ut = make_untyped(f, 14, CAPMEM_UNTYPED_WATERMARK); /* 16 KiB */
    capmem_cap_t fr[4];
    assert_ok(retype(f->arena, ut, CAPMEM_OBJ_FRAME, 12, 1, fr));
    capmem_untyped_info_t ui;
    assert_ok(capmem_untyped_info(f->arena, ut, &ui));
    assert_int_equal(ui.free_bytes, 0x3000);
    assert_int_equal(ui.largest_free, 0x3000);
    /* Childless: the index is still at 0x1000, but the next retype starts at 0. */
    assert_ok(capmem_cap_delete(f->arena, fr[0]));
    assert_ok(capmem_untyped_info(f->arena, ut, &ui));
    assert_int_equal(ui.children, 0);
    assert_int_equal(ui.watermark, 0x1000);
    assert_int_equal(ui.free_bytes, 0x4000);
    assert_int_equal(ui.largest_free, 0x4000);
    /* A derived capability is a child of this one: a retype through it would not reset. */
    capmem_cap_t ro;
    assert_ok(capmem_cap_mint(f->arena, ut, CAPMEM_RIGHT_READ, &ro));
    assert_ok(capmem_untyped_info(f->arena, ut, &ui));
    assert_int_equal(ui.free_bytes, 0x3000);
    assert_ok(capmem_cap_delete(f->arena, ro));
    /* What info promised, a retype gets. */
    assert_ok(retype(f->arena, ut, CAPMEM_OBJ_FRAME, 12, 4, fr));
    assert_int_equal(offset_in(f->arena, ut, fr[0]), 0);
    assert_ok(capmem_untyped_info(f->arena, ut, &ui));
    assert_int_equal(ui.free_bytes, 0);
    CHECK_INVARIANTS(f->arena);
}

/* ---- every refusal changes nothing ------------------------------------------- */

static void test_untyped_boot_refusals_change_nothing(void **state)
{
    (void)state;
    capmem_arena_attr_t at = CAPMEM_ARENA_ATTR_INIT;
    at.ram_size = 0x1ffe000; /* from 0x1000: 12 pieces up to 16 MiB, 12 down from it */
    at.phys_base = 0x1000;
    at.cap_slots = 16;
    capmem_arena_t *a = NULL;
    assert_ok(capmem_arena_create(&at, &a));
    capmem_untyped_info_t boot[32];
    size_t n = 0;
    assert_refused(a, CAPMEM_CAP_NULL, capmem_untyped_boot(NULL, boot, 32, &n),
                   CAPMEM_E_INVALID_ARGS);
    assert_refused(a, CAPMEM_CAP_NULL, capmem_untyped_boot(a, boot, 32, NULL),
                   CAPMEM_E_INVALID_ARGS);
    assert_refused(a, CAPMEM_CAP_NULL, capmem_untyped_boot(a, NULL, 1, &n), CAPMEM_E_INVALID_ARGS);
    assert_refused(a, CAPMEM_CAP_NULL, capmem_untyped_boot(a, boot, 32, &n), CAPMEM_E_OUT_OF_CAPS);
    assert_int_equal(capmem_last_error()->needed, 24);
    assert_int_equal(capmem_last_error()->available, 15);
    /* Not half booted: the next call tries again, all or nothing. */
    assert_refused(a, CAPMEM_CAP_NULL, capmem_untyped_boot(a, boot, 32, &n), CAPMEM_E_OUT_OF_CAPS);
    assert_int_equal(n, 0);
    capmem_arena_destroy(a);

    at.cap_slots = 64;
    at.device_window = 0x10000;
    assert_ok(capmem_arena_create(&at, &a));
    capmem_device_info_t dev;
    assert_ok(capmem_arena_device_add(a, 0xfe000000, 0x3000, &dev));
    assert_host_failures_refused(a, CAPMEM_CAP_NULL, capmem_untyped_boot(a, boot, 32, &n));
    assert_int_equal(n, 26); /* 24 RAM pieces, 2 device pieces */
    assert_int_equal(capmem_cap_count(a), 26);
    CHECK_INVARIANTS(a);
    capmem_arena_destroy(a);
}

static void test_untyped_add_device_refusals_change_nothing(void **state)
{
    fixture_t *f = *state;
    capmem_device_info_t dev;
    assert_ok(capmem_arena_device_add(f->arena, 0xf0000000, 0x3000, &dev));
    capmem_untyped_info_t ui[4];
    size_t n = 0;
    assert_refused(f->arena, f->root, capmem_untyped_add_device(NULL, dev.id, ui, 4, &n),
                   CAPMEM_E_INVALID_ARGS);
    assert_refused(f->arena, f->root, capmem_untyped_add_device(f->arena, dev.id, ui, 4, NULL),
                   CAPMEM_E_INVALID_ARGS);
    assert_refused(f->arena, f->root, capmem_untyped_add_device(f->arena, dev.id, NULL, 4, &n),
                   CAPMEM_E_INVALID_ARGS);
    assert_refused(f->arena, f->root, capmem_untyped_add_device(f->arena, 0, ui, 4, &n),
                   CAPMEM_E_NOT_FOUND);
    assert_refused(f->arena, f->root, capmem_untyped_add_device(f->arena, 999, ui, 4, &n),
                   CAPMEM_E_NOT_FOUND);
    /* None of the refusals pinned the range. */
    assert_ok(capmem_arena_device_remove(f->arena, dev.id));
    assert_ok(capmem_arena_device_add(f->arena, 0xf0000000, 0x3000, &dev));
    assert_host_failures_refused(f->arena, f->root,
                                 capmem_untyped_add_device(f->arena, dev.id, ui, 4, &n));
    assert_int_equal(n, 2);
    assert_refused(f->arena, f->root, capmem_untyped_add_device(f->arena, dev.id, ui, 4, &n),
                   CAPMEM_E_DELETE_FIRST);
    assert_int_equal(n, 2);

    /* Out of capabilities. */
    capmem_cap_t root;
    capmem_arena_t *a = small_arena(&root);
    assert_ok(capmem_arena_device_add(a, 0xf0000000, 0x3000, &dev));
    fill_caps(a, root);
    assert_refused(a, root, capmem_untyped_add_device(a, dev.id, ui, 4, &n), CAPMEM_E_OUT_OF_CAPS);
    assert_ok(capmem_arena_device_remove(a, dev.id)); /* still unpinned */
    capmem_arena_destroy(a);
    CHECK_INVARIANTS(f->arena);
}

static void test_untyped_set_policy_refusals_change_nothing(void **state)
{
    fixture_t *f = *state;
    capmem_cap_t ut = make_untyped(f, 13, CAPMEM_UNTYPED_WATERMARK);
    capmem_cap_t fr;
    assert_ok(retype(f->arena, f->root, CAPMEM_OBJ_FRAME, 12, 1, &fr));
    capmem_cap_t ro;
    assert_ok(capmem_cap_mint(f->arena, ut, CAPMEM_RIGHT_READ | CAPMEM_RIGHT_GRANT, &ro));
    assert_refused(f->arena, ut, capmem_untyped_set_policy(NULL, ut, CAPMEM_UNTYPED_RANGE, NULL),
                   CAPMEM_E_INVALID_ARGS);
    assert_refused(f->arena, ut,
                   capmem_untyped_set_policy(f->arena, ut, CAPMEM_UNTYPED_INHERIT, NULL),
                   CAPMEM_E_INVALID_ARGS);
    assert_refused(f->arena, ut,
                   capmem_untyped_set_policy(f->arena, ut, (capmem_untyped_policy_t)42, NULL),
                   CAPMEM_E_INVALID_ARGS);
    assert_refused(
        f->arena, ut,
        capmem_untyped_set_policy(f->arena, 0xdeadbeefcafef00dull, CAPMEM_UNTYPED_RANGE, NULL),
        CAPMEM_E_INVALID_CAP);
    assert_refused(f->arena, ut,
                   capmem_untyped_set_policy(f->arena, fr, CAPMEM_UNTYPED_RANGE, NULL),
                   CAPMEM_E_WRONG_TYPE);
    assert_refused(f->arena, ut,
                   capmem_untyped_set_policy(f->arena, ro, CAPMEM_UNTYPED_RANGE, NULL),
                   CAPMEM_E_DENIED);
    /* The derived capability is a child of ut's. */
    assert_refused(f->arena, ut,
                   capmem_untyped_set_policy(f->arena, ut, CAPMEM_UNTYPED_RANGE, NULL),
                   CAPMEM_E_REVOKE_FIRST);
    assert_ok(capmem_cap_delete(f->arena, ro));
    assert_host_failures_refused(
        f->arena, ut, capmem_untyped_set_policy(f->arena, ut, CAPMEM_UNTYPED_RANGE, NULL));
    capmem_untyped_info_t ui;
    assert_ok(capmem_untyped_info(f->arena, ut, &ui));
    assert_string_equal(ui.policy, "range");
    CHECK_INVARIANTS(f->arena);
}

static void test_untyped_retype_refusals_change_nothing(void **state)
{
    fixture_t *f = *state;
    capmem_cap_t ut = make_untyped(f, 14, CAPMEM_UNTYPED_RANGE);
    capmem_cap_t d[4] = {0};
    capmem_retype_attr_t at = CAPMEM_RETYPE_ATTR_INIT;
    assert_refused(f->arena, ut, capmem_untyped_retype(NULL, ut, &at, d, 4), CAPMEM_E_INVALID_ARGS);
    assert_refused(f->arena, ut, capmem_untyped_retype(f->arena, ut, NULL, d, 4),
                   CAPMEM_E_INVALID_ARGS);
    assert_refused(f->arena, ut, capmem_untyped_retype(f->arena, ut, &at, NULL, 4),
                   CAPMEM_E_INVALID_ARGS);
    at.type = CAPMEM_OBJ_DATASPACE;
    assert_refused(f->arena, ut, capmem_untyped_retype(f->arena, ut, &at, d, 4),
                   CAPMEM_E_INVALID_ARGS);
    at = (capmem_retype_attr_t)CAPMEM_RETYPE_ATTR_INIT;
    at.size_bits = 48;
    assert_refused(f->arena, ut, capmem_untyped_retype(f->arena, ut, &at, d, 4), CAPMEM_E_RANGE);
    at.size_bits = 11; /* a frame below the page size */
    assert_refused(f->arena, ut, capmem_untyped_retype(f->arena, ut, &at, d, 4), CAPMEM_E_RANGE);
    at.type = CAPMEM_OBJ_KOBJ;
    at.size_bits = 3;
    assert_refused(f->arena, ut, capmem_untyped_retype(f->arena, ut, &at, d, 4), CAPMEM_E_RANGE);
    at.type = CAPMEM_OBJ_UNTYPED;
    assert_refused(f->arena, ut, capmem_untyped_retype(f->arena, ut, &at, d, 4),
                   CAPMEM_E_INVALID_ARGS);
    at.size_bits = 12;
    at.child_policy = (capmem_untyped_policy_t)42;
    assert_refused(f->arena, ut, capmem_untyped_retype(f->arena, ut, &at, d, 4),
                   CAPMEM_E_INVALID_ARGS);
    at = (capmem_retype_attr_t)CAPMEM_RETYPE_ATTR_INIT;
    at.count = 0;
    assert_refused(f->arena, ut, capmem_untyped_retype(f->arena, ut, &at, d, 4), CAPMEM_E_RANGE);
    at.count = 2;
    assert_refused(f->arena, ut, capmem_untyped_retype(f->arena, ut, &at, d, 1),
                   CAPMEM_E_INVALID_ARGS);
    at.count = 5;
    assert_refused(f->arena, ut, capmem_untyped_retype(f->arena, ut, &at, d, 5),
                   CAPMEM_E_NOT_ENOUGH_MEMORY);
    at.count = 1;
    at.offset = 0x800;
    assert_refused(f->arena, ut, capmem_untyped_retype(f->arena, ut, &at, d, 4),
                   CAPMEM_E_INVALID_ARGS);
    capmem_cap_t fr;
    assert_ok(retype(f->arena, f->root, CAPMEM_OBJ_FRAME, 12, 1, &fr));
    at.offset = CAPMEM_RETYPE_ANYWHERE;
    assert_refused(f->arena, ut, capmem_untyped_retype(f->arena, fr, &at, d, 4),
                   CAPMEM_E_WRONG_TYPE);
    assert_refused(f->arena, ut, capmem_untyped_retype(f->arena, 0xdeadbeefcafef00dull, &at, d, 4),
                   CAPMEM_E_INVALID_CAP);
    capmem_cap_t ro;
    assert_ok(capmem_cap_mint(f->arena, ut, CAPMEM_RIGHT_READ, &ro));
    assert_refused(f->arena, ut, capmem_untyped_retype(f->arena, ro, &at, d, 4), CAPMEM_E_DENIED);
    assert_ok(capmem_cap_delete(f->arena, ro));
    assert_host_failures_refused(f->arena, ut, capmem_untyped_retype(f->arena, ut, &at, d, 4));
    assert_int_equal(d[1], CAPMEM_CAP_NULL);

    /* Out of capabilities: the memory would be there. */
    capmem_cap_t root;
    capmem_arena_t *a = small_arena(&root);
    capmem_cap_t fr2;
    assert_ok(retype(a, root, CAPMEM_OBJ_FRAME, 12, 1, &fr2));
    fill_caps(a, fr2);
    assert_refused(a, root, retype(a, root, CAPMEM_OBJ_FRAME, 12, 1, d), CAPMEM_E_OUT_OF_CAPS);
    capmem_arena_destroy(a);
    CHECK_INVARIANTS(f->arena);
}

static void test_untyped_copy_refusals_change_nothing(void **state)
{
    fixture_t *f = *state;
    capmem_cap_t ut = make_untyped(f, 13, CAPMEM_UNTYPED_BUDDY);
    capmem_cap_t fr;
    assert_ok(retype(f->arena, f->root, CAPMEM_OBJ_FRAME, 12, 1, &fr));
    capmem_cap_t cp = CAPMEM_CAP_NULL;
    assert_refused(f->arena, ut, capmem_untyped_copy(NULL, ut, &cp), CAPMEM_E_INVALID_ARGS);
    assert_refused(f->arena, ut, capmem_untyped_copy(f->arena, ut, NULL), CAPMEM_E_INVALID_ARGS);
    assert_refused(f->arena, ut, capmem_untyped_copy(f->arena, 0xdeadbeefcafef00dull, &cp),
                   CAPMEM_E_INVALID_CAP);
    assert_refused(f->arena, ut, capmem_untyped_copy(f->arena, fr, &cp), CAPMEM_E_WRONG_TYPE);
    capmem_cap_t rw;
    assert_ok(capmem_cap_mint(f->arena, ut, CAPMEM_RIGHT_READ | CAPMEM_RIGHT_WRITE, &rw));
    assert_refused(f->arena, ut, capmem_untyped_copy(f->arena, rw, &cp), CAPMEM_E_DENIED);
    assert_refused(f->arena, ut, capmem_untyped_copy(f->arena, ut, &cp), CAPMEM_E_REVOKE_FIRST);
    assert_ok(capmem_cap_delete(f->arena, rw));
    assert_int_equal(cp, CAPMEM_CAP_NULL);
    assert_host_failures_refused(f->arena, ut, capmem_untyped_copy(f->arena, ut, &cp));
    capmem_untyped_info_t ui;
    assert_ok(capmem_untyped_info(f->arena, cp, &ui));
    assert_string_equal(ui.policy, "buddy"); /* a copy has its source's built-in policy */

    capmem_cap_t root;
    capmem_arena_t *a = small_arena(&root);
    capmem_cap_t kid;
    capmem_cap_t fr2;
    capmem_retype_attr_t at = CAPMEM_RETYPE_ATTR_INIT;
    at.type = CAPMEM_OBJ_UNTYPED;
    at.size_bits = 13;
    assert_ok(capmem_untyped_retype(a, root, &at, &kid, 1));
    assert_ok(retype(a, root, CAPMEM_OBJ_FRAME, 12, 1, &fr2));
    fill_caps(a, fr2);
    assert_refused(a, kid, capmem_untyped_copy(a, kid, &cp), CAPMEM_E_OUT_OF_CAPS);
    capmem_arena_destroy(a);
    CHECK_INVARIANTS(f->arena);
}

static void test_untyped_queries_refuse_bad_arguments(void **state)
{
    fixture_t *f = *state;
    capmem_cap_t fr;
    assert_ok(retype(f->arena, f->root, CAPMEM_OBJ_FRAME, 12, 1, &fr));
    capmem_untyped_info_t ui;
    capmem_object_info_t oi;
    char buf[4] = "abc";
    assert_refused(f->arena, f->root, capmem_untyped_info(NULL, f->root, &ui),
                   CAPMEM_E_INVALID_ARGS);
    assert_refused(f->arena, f->root, capmem_untyped_info(f->arena, fr, &ui), CAPMEM_E_WRONG_TYPE);
    assert_refused(f->arena, f->root, capmem_object_info(f->arena, fr, NULL),
                   CAPMEM_E_INVALID_ARGS);
    assert_refused(f->arena, f->root, capmem_object_info(f->arena, 0xdeadbeefcafef00dull, &oi),
                   CAPMEM_E_INVALID_CAP);
    assert_refused(f->arena, f->root, capmem_frame_read(NULL, fr, 0, buf, 1),
                   CAPMEM_E_INVALID_ARGS);
    assert_refused(f->arena, f->root, capmem_frame_read(f->arena, f->root, 0, buf, 1),
                   CAPMEM_E_WRONG_TYPE);
    assert_refused(f->arena, f->root, capmem_frame_write(f->arena, f->root, 0, buf, 1),
                   CAPMEM_E_WRONG_TYPE);
    assert_refused(f->arena, f->root,
                   capmem_frame_write(f->arena, 0xdeadbeefcafef00dull, 0, buf, 1),
                   CAPMEM_E_INVALID_CAP);
    assert_refused(f->arena, f->root, capmem_frame_write(f->arena, fr, 4096, buf, 1),
                   CAPMEM_E_INVALID_ARGS);
    assert_int_equal(capmem_last_error()->address, 4096);
    char back[4] = "xyz";
    assert_ok(capmem_frame_read(f->arena, fr, 0, back, 4));
    assert_memory_equal(back, "\0\0\0\0", 4); /* no refused write reached the frame */
    CHECK_INVARIANTS(f->arena);
}

/*
 * A user policy's span may be wider than the untyped (capmem_alloc_create_custom
 * gives [0, 2^64)); an answer inside that span but past the untyped's end is
 * still a wrong answer: POLICY, nothing changed (found by the reliability
 * suite's lying policy).
 */
#define PAST_UT_BITS 16
#define PAST_UT_SIZE (1ull << PAST_UT_BITS)

/* Answers `answer` to every alloc; everything else succeeds. */
static uint64_t fixed_answer;

static capmem_err_t fixed_alloc(void *self, uint64_t size, uint64_t align, uint64_t *offset)
{
    (void)self;
    (void)size;
    (void)align;
    *offset = fixed_answer;
    return CAPMEM_OK;
}

static capmem_err_t ok_at(void *self, uint64_t offset, uint64_t size)
{
    (void)self;
    (void)offset;
    (void)size;
    return CAPMEM_OK;
}

static uint64_t all_free(const void *self)
{
    (void)self;
    return PAST_UT_SIZE;
}

static void no_reset(void *self)
{
    (void)self;
}

static const capmem_alloc_ops_t fixed_ops = {
    .name = "fixed",
    .alloc = fixed_alloc,
    .alloc_at = ok_at,
    .free = ok_at,
    .avail = all_free,
    .largest = all_free,
    .reset = no_reset,
};

/* A retype through a policy that answers just past the untyped's end. */
static void retype_past_the_end(int span_twice)
{
    capmem_arena_attr_t at = CAPMEM_ARENA_ATTR_INIT;
    at.ram_size = (3ull << 20) + PAST_UT_SIZE; /* boot untypeds: 1 MiB, 2 MiB, 64 KiB */
    at.phys_base = 0x100000;
    capmem_arena_t *a = NULL;
    assert_ok(capmem_arena_create(&at, &a));
    capmem_untyped_info_t boot[4];
    size_t n = 0;
    assert_ok(capmem_untyped_boot(a, boot, 4, &n));
    assert_int_equal(n, 3);
    assert_int_equal(boot[2].size_bits, PAST_UT_BITS);
    capmem_alloc_t *pol = NULL;
    if (span_twice) {
        assert_ok(capmem_alloc_create_custom_span(&fixed_ops, NULL, 0, 2 * PAST_UT_SIZE, &pol));
    } else {
        assert_ok(capmem_alloc_create_custom(&fixed_ops, NULL, &pol));
    }
    /* Accepted: the policy's span covers the untyped. */
    assert_ok(capmem_untyped_set_policy(a, boot[2].cap, CAPMEM_UNTYPED_WATERMARK, pol));
    const size_t caps = capmem_cap_count(a);
    fixed_answer = PAST_UT_SIZE; /* aligned, inside the policy's span, one byte past the untyped */
    capmem_retype_attr_t ra = CAPMEM_RETYPE_ATTR_INIT;
    ra.type = CAPMEM_OBJ_KOBJ;
    ra.size_bits = 10;
    capmem_cap_t obj = CAPMEM_CAP_NULL;
    capmem_err_t err = capmem_untyped_retype(a, boot[2].cap, &ra, &obj, 1);
    char why[256];
    capmem_err_t check = capmem_check(a, why, sizeof(why));
    const size_t caps_after = capmem_cap_count(a);
    capmem_object_info_t oi = {0};
    if (err == CAPMEM_OK) {
        assert_ok(capmem_object_info(a, obj, &oi));
        assert_ok(capmem_cap_delete(a, obj)); /* tidy up before failing */
    }
    capmem_arena_destroy(a);
    if (err != CAPMEM_E_POLICY) {
        fail_msg("span %s: retype with an answer past the untyped returned %s (object at backing "
                 "offset 0x%llx, the untyped is [0x%llx, +0x%llx)); capmem_check said %s%s%s; "
                 "expected POLICY",
                 span_twice ? "[0, 2 * size)" : "[0, 2^64)", capmem_err_name(err),
                 (unsigned long long)oi.offset, (unsigned long long)boot[2].offset,
                 (unsigned long long)PAST_UT_SIZE, capmem_err_name(check), check ? ": " : "", why);
    }
    /* Refused: nothing changed. */
    assert_int_equal(check, CAPMEM_OK);
    assert_int_equal(caps_after, caps);
    assert_int_equal(obj, CAPMEM_CAP_NULL);
}

static void test_untyped_refuses_an_unbounded_policys_answer_past_its_end(void **state)
{
    (void)state;
    retype_past_the_end(0);
}

static void test_untyped_refuses_a_wider_policys_answer_past_its_end(void **state)
{
    (void)state;
    retype_past_the_end(1);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_untyped_refuses_an_unbounded_policys_answer_past_its_end),
        cmocka_unit_test(test_untyped_refuses_a_wider_policys_answer_past_its_end),
        cmocka_unit_test(test_untyped_boot_covers_ram_with_aligned_pieces),
        T(test_untyped_hotplugged_device_gets_device_untyped),
        T(test_untyped_watermark_fragmentation_fails_fourth),
        T(test_untyped_range_fragmentation_uses_gap),
        T(test_untyped_buddy_fragmentation_uses_gap),
        T(test_untyped_buddy_halving_consumes_exact_pieces),
        T(test_untyped_watermark_reuse_only_when_childless),
        T(test_untyped_range_reuses_deleted_space_at_once),
        T(test_untyped_buddy_reuses_deleted_space_at_once),
        T(test_untyped_exact_fill_sixteen_frames),
        T(test_untyped_retype_errors_follow_sel4_order),
        T(test_untyped_untyped_sizes_span_4_to_47_bits),
        T(test_untyped_capability_checks),
        T(test_untyped_frame_access_checks_bounds_and_rights),
        T(test_untyped_device_yields_frames_and_untyped_only),
        T(test_untyped_copy_rules),
        T(test_untyped_range_retype_at_offset),
        T(test_untyped_children_inherit_policy_only_when_asked),
        T(test_untyped_user_policy_runs_the_scenarios),
        T(test_untyped_garbage_policy_answer_is_refused_and_changes_nothing),
        T(test_untyped_host_failure_changes_nothing),
        T(test_untyped_retype_emits_event),
        T(test_untyped_revoke_returns_everything),
        T(test_untyped_copy_marks_source_full_while_the_copy_lives),
        T(test_untyped_copy_marks_source_full_through_every_capability),
        T(test_untyped_childless_watermark_reports_what_a_retype_can_use),
        T(test_untyped_boot_refusals_change_nothing),
        T(test_untyped_add_device_refusals_change_nothing),
        T(test_untyped_set_policy_refusals_change_nothing),
        T(test_untyped_retype_refusals_change_nothing),
        T(test_untyped_copy_refusals_change_nothing),
        T(test_untyped_queries_refuse_bad_arguments),
    };
#undef T
    return cmocka_run_group_tests_name("untyped", tests, NULL, NULL);
}
