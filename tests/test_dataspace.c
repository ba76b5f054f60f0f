/* SPDX-License-Identifier: MIT */
/* Layer 6: dataspaces and aliases, both lifetime policies, lent-page accounting. */
#include <stdio.h>
#include <string.h>

#include "account_internal.h"
#include "ds_internal.h"
#include "support.h"

#define PAGE 4096u

typedef test_world_t fixture_t;

static fixture_t fx;

static int setup(void **state)
{
    test_world_open_phys(&fx, 64ull << 20, 0, 0);
    *state = &fx;
    return 0;
}

static int teardown(void **state)
{
    test_world_close(*state);
    return 0;
}

static capmem_ram_info_t info(capmem_arena_t *a, capmem_cap_t acc)
{
    capmem_ram_info_t i;
    assert_ok(capmem_ram_info(a, acc, &i));
    return i;
}

static capmem_cap_t session(fixture_t *f, capmem_cap_t parent, uint64_t quota, const char *label)
{
    capmem_ram_open_attr_t at = CAPMEM_RAM_OPEN_ATTR_INIT;
    at.quota = quota;
    at.label = label;
    at.caps = parent == f->root ? 1024 : 16;
    capmem_cap_t c;
    assert_ok(capmem_ram_open(f->arena, parent, &at, &c));
    return c;
}

static capmem_cap_t alias(fixture_t *f, capmem_cap_t sess, capmem_cap_t ds, uint64_t off,
                          uint64_t size, int writable, capmem_alias_lifetime_t lt)
{
    capmem_alias_attr_t at = CAPMEM_ALIAS_ATTR_INIT;
    at.offset = off;
    at.size = size;
    at.writable = writable;
    at.lifetime = lt;
    capmem_cap_t c = CAPMEM_CAP_NULL;
    assert_ok(capmem_ds_alias(f->arena, sess, ds, &at, &c));
    CHECK_INVARIANTS(f->arena);
    return c;
}

static int alive(capmem_arena_t *a, capmem_cap_t ds)
{
    capmem_ds_info_t di;
    return capmem_ds_info(a, ds, &di) == CAPMEM_OK;
}

/* Bytes of [lo, hi) that the RAM service's physical map shows as used. */
typedef struct used_in {
    uint64_t lo;
    uint64_t hi;
    uint64_t used;
} used_in_t;

static int count_used(uint64_t phys, uint64_t size, bool used, void *ctx)
{
    used_in_t *u = ctx;
    uint64_t s = phys > u->lo ? phys : u->lo;
    uint64_t e = phys + size < u->hi ? phys + size : u->hi;
    if (used && s < e) {
        u->used += e - s;
    }
    return 0;
}

static uint64_t used_bytes(fixture_t *f, uint64_t phys, uint64_t size)
{
    used_in_t u = {phys, phys + size, 0};
    assert_ok(capmem_ram_map(f->arena, f->root, count_used, &u));
    return u.used;
}

static uint64_t phys_of(fixture_t *f, capmem_cap_t ds)
{
    capmem_ds_info_t di;
    assert_ok(capmem_ds_info(f->arena, ds, &di));
    return di.phys;
}

static void test_ds_alias_shares_bytes_both_ways(void **state)
{
    fixture_t *f = *state;
    capmem_cap_t ds;
    assert_ok(capmem_ram_alloc(f->arena, f->root, 4 * PAGE, &ds));
    capmem_cap_t a = alias(f, f->root, ds, PAGE, 2 * PAGE, 1, CAPMEM_ALIAS_DEPENDENT);
    capmem_ds_info_t di;
    assert_ok(capmem_ds_info(f->arena, a, &di));
    assert_int_equal(di.kind, CAPMEM_DS_ALIAS_DEPENDENT);
    assert_int_equal(di.size, 2 * PAGE);
    assert_int_equal(di.phys, phys_of(f, ds) + PAGE);
    assert_ok(capmem_ds_write(f->arena, ds, PAGE + 8, "orig", 4));
    char buf[4];
    assert_ok(capmem_ds_read(f->arena, a, 8, buf, 4));
    assert_memory_equal(buf, "orig", 4);
    assert_ok(capmem_ds_write(f->arena, a, PAGE, "alia", 4));
    assert_ok(capmem_ds_read(f->arena, ds, 2 * PAGE, buf, 4));
    assert_memory_equal(buf, "alia", 4);
    /* "To the end" and the alias's own bounds. */
    capmem_cap_t tail = alias(f, f->root, a, PAGE, 0, 1, CAPMEM_ALIAS_DEPENDENT);
    assert_ok(capmem_ds_info(f->arena, tail, &di));
    assert_int_equal(di.size, PAGE);
    assert_err(capmem_ds_read(f->arena, a, 2 * PAGE - 2, buf, 4), CAPMEM_E_INVALID_ARGS);
    assert_string_equal(capmem_ds_kind_name(CAPMEM_DS_ALIAS_FIRST_CLASS), "first-class alias");
    assert_string_equal(capmem_ds_kind_name((capmem_ds_kind_t)0), "unknown");
}

static void test_ds_read_only_alias_is_rom(void **state)
{
    fixture_t *f = *state;
    capmem_cap_t ds;
    assert_ok(capmem_ram_alloc(f->arena, f->root, 2 * PAGE, &ds));
    assert_ok(capmem_ds_write(f->arena, ds, 0, "rom!", 4));
    for (int lt = 0; lt < 2; lt++) {
        capmem_cap_t ro = alias(f, f->root, ds, 0, 0, 0, (capmem_alias_lifetime_t)lt);
        capmem_ds_info_t di;
        assert_ok(capmem_ds_info(f->arena, ro, &di));
        assert_false(di.writable);
        assert_err(capmem_ds_write(f->arena, ro, 0, "XXXX", 4), CAPMEM_E_DENIED);
        /* Asking a read-only source for a writable alias is refused. */
        capmem_alias_attr_t at = CAPMEM_ALIAS_ATTR_INIT;
        capmem_cap_t w = CAPMEM_CAP_NULL;
        assert_err(capmem_ds_alias(f->arena, f->root, ro, &at, &w), CAPMEM_E_DENIED);
        assert_int_equal(w, CAPMEM_CAP_NULL);
        /* A read-only alias of it is fine, and also ROM. */
        capmem_cap_t ro2 = alias(f, f->root, ro, 0, PAGE, 0, CAPMEM_ALIAS_DEPENDENT);
        assert_err(capmem_ds_write(f->arena, ro2, 0, "XXXX", 4), CAPMEM_E_DENIED);
        /* Minting a writable copy of the capability cannot grow it either. */
        capmem_cap_t cp = CAPMEM_CAP_NULL;
        assert_err(capmem_cap_mint(f->arena, ro, CAPMEM_RIGHTS_ALL, &cp), CAPMEM_E_DENIED);
    }
    char buf[4];
    assert_ok(capmem_ds_read(f->arena, ds, 0, buf, 4));
    assert_memory_equal(buf, "rom!", 4); /* no write ever landed */
    /* A read-only capability to a writable dataspace cannot make a writable alias. */
    capmem_cap_t rcap;
    assert_ok(capmem_cap_mint(f->arena, ds, CAPMEM_RIGHT_READ | CAPMEM_RIGHT_GRANT, &rcap));
    capmem_alias_attr_t at = CAPMEM_ALIAS_ATTR_INIT;
    capmem_cap_t w = CAPMEM_CAP_NULL;
    assert_err(capmem_ds_alias(f->arena, f->root, rcap, &at, &w), CAPMEM_E_DENIED);
    /* Without GRANT no alias at all. */
    capmem_cap_t nog;
    assert_ok(capmem_cap_mint(f->arena, ds, CAPMEM_RIGHT_READ, &nog));
    at.writable = 0;
    assert_err(capmem_ds_alias(f->arena, f->root, nog, &at, &w), CAPMEM_E_DENIED);
}

static void test_ds_alias_bad_arguments_change_nothing(void **state)
{
    fixture_t *f = *state;
    capmem_cap_t ds;
    assert_ok(capmem_ram_alloc(f->arena, f->root, 4 * PAGE, &ds));
    capmem_ram_info_t before = info(f->arena, f->root);
    size_t caps = capmem_cap_count(f->arena);
    const struct {
        uint64_t off;
        uint64_t size;
    } bad[] = {
        {1, PAGE},                         /* misaligned offset */
        {0, PAGE + 1},                     /* misaligned size */
        {4 * PAGE, 0},                     /* empty: offset at the end */
        {3 * PAGE, 2 * PAGE},              /* beyond the source */
        {UINT64_MAX & ~4095ull, 2 * PAGE}, /* overflowing */
        {PAGE, UINT64_MAX & ~4095ull},     /* overflowing size */
    };
    capmem_cap_t out = CAPMEM_CAP_NULL;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        capmem_alias_attr_t at = CAPMEM_ALIAS_ATTR_INIT;
        at.offset = bad[i].off;
        at.size = bad[i].size;
        assert_err(capmem_ds_alias(f->arena, f->root, ds, &at, &out), CAPMEM_E_INVALID_ARGS);
    }
    capmem_alias_attr_t at = CAPMEM_ALIAS_ATTR_INIT;
    at.lifetime = (capmem_alias_lifetime_t)7;
    assert_err(capmem_ds_alias(f->arena, f->root, ds, &at, &out), CAPMEM_E_INVALID_ARGS);
    at = (capmem_alias_attr_t)CAPMEM_ALIAS_ATTR_INIT;
    assert_err(capmem_ds_alias(f->arena, f->root, ds, NULL, &out), CAPMEM_E_INVALID_ARGS);
    assert_err(capmem_ds_alias(f->arena, f->root, ds, &at, NULL), CAPMEM_E_INVALID_ARGS);
    assert_err(capmem_ds_alias(NULL, f->root, ds, &at, &out), CAPMEM_E_INVALID_ARGS);
    assert_err(capmem_ds_alias(f->arena, ds, ds, &at, &out), CAPMEM_E_WRONG_TYPE);
    assert_err(capmem_ds_alias(f->arena, f->root, f->root, &at, &out), CAPMEM_E_WRONG_TYPE);
    assert_err(capmem_ds_alias(f->arena, f->root, 777, &at, &out), CAPMEM_E_INVALID_CAP);
    assert_int_equal(out, CAPMEM_CAP_NULL);
    capmem_ram_info_t after = info(f->arena, f->root);
    assert_memory_equal(&before, &after, sizeof(after));
    assert_int_equal(capmem_cap_count(f->arena), caps);
    assert_err(capmem_ds_free(f->arena, f->root), CAPMEM_E_WRONG_TYPE);
    assert_err(capmem_ds_free(NULL, ds), CAPMEM_E_INVALID_ARGS);
    assert_err(capmem_ds_info(f->arena, ds, NULL), CAPMEM_E_INVALID_ARGS);
}

static void test_ds_alias_record_is_paid_by_creating_session(void **state)
{
    fixture_t *f = *state;
    capmem_cap_t lender = session(f, f->root, 1 << 20, "lender");
    capmem_cap_t borrower = session(f, f->root, 0, "borrower");
    capmem_cap_t ds;
    assert_ok(capmem_ram_alloc(f->arena, lender, 4 * PAGE, &ds));
    capmem_ram_info_t l0 = info(f->arena, lender);
    capmem_ram_info_t b0 = info(f->arena, borrower);
    capmem_cap_t a = alias(f, borrower, ds, 0, PAGE, 1, CAPMEM_ALIAS_FIRST_CLASS);
    capmem_cap_t d = alias(f, borrower, ds, PAGE, PAGE, 1, CAPMEM_ALIAS_DEPENDENT);
    capmem_ram_info_t l1 = info(f->arena, lender);
    capmem_ram_info_t b1 = info(f->arena, borrower);
    assert_int_equal(b1.records_used, b0.records_used + 2);
    assert_int_equal(b1.caps_used, b0.caps_used + 2);
    assert_int_equal(b1.used, 0); /* the borrower pays no pages */
    assert_int_equal(l1.records_used, l0.records_used);
    assert_int_equal(l1.used, l0.used);
    /* When the borrower's donation is used up: OUT_OF_METADATA, nothing created. */
    capmem_ram_open_attr_t small = CAPMEM_RAM_OPEN_ATTR_INIT;
    small.donation = PAGE; /* 64 slots: header + 3 session + 60 records */
    small.caps = 100;
    capmem_cap_t tiny;
    assert_ok(capmem_ram_open(f->arena, f->root, &small, &tiny));
    capmem_cap_t x;
    for (int i = 0; i < 60; i++) {
        capmem_alias_attr_t at = CAPMEM_ALIAS_ATTR_INIT;
        at.size = PAGE;
        assert_ok(capmem_ds_alias(f->arena, tiny, ds, &at, &x));
    }
    capmem_alias_attr_t at = CAPMEM_ALIAS_ATTR_INIT;
    capmem_cap_t none = CAPMEM_CAP_NULL;
    assert_err(capmem_ds_alias(f->arena, tiny, ds, &at, &none), CAPMEM_E_OUT_OF_METADATA);
    assert_int_equal(none, CAPMEM_CAP_NULL);
    CHECK_INVARIANTS(f->arena);
    (void)a;
    (void)d;
}

static void test_ds_dependent_aliases_die_with_the_original(void **state)
{
    fixture_t *f = *state;
    capmem_cap_t other = session(f, f->root, 0, "other");
    capmem_cap_t ds;
    assert_ok(capmem_ram_alloc(f->arena, f->root, 4 * PAGE, &ds));
    capmem_cap_t a = alias(f, f->root, ds, 0, 2 * PAGE, 1, CAPMEM_ALIAS_DEPENDENT);
    capmem_cap_t aa = alias(f, f->root, a, PAGE, PAGE, 0, CAPMEM_ALIAS_DEPENDENT);
    capmem_cap_t b = alias(f, other, ds, 2 * PAGE, 2 * PAGE, 1, CAPMEM_ALIAS_DEPENDENT);
    /* Revoking the original's capability revokes its dependents, the original stays. */
    assert_ok(capmem_cap_revoke(f->arena, ds));
    assert_false(alive(f->arena, a));
    assert_false(alive(f->arena, aa));
    assert_false(alive(f->arena, b));
    assert_true(alive(f->arena, ds));
    CHECK_INVARIANTS(f->arena);
    /* Freeing the original does too. */
    a = alias(f, f->root, ds, 0, 2 * PAGE, 1, CAPMEM_ALIAS_DEPENDENT);
    b = alias(f, other, ds, 2 * PAGE, 2 * PAGE, 1, CAPMEM_ALIAS_DEPENDENT);
    uint64_t phys = phys_of(f, ds);
    uint64_t used_before = info(f->arena, f->root).used;
    assert_ok(capmem_ds_free(f->arena, ds));
    assert_false(alive(f->arena, a));
    assert_false(alive(f->arena, b));
    assert_int_equal(info(f->arena, f->root).used, used_before - 4 * PAGE);
    assert_int_equal(used_bytes(f, phys, 4 * PAGE), 0); /* every page released */
    CHECK_INVARIANTS(f->arena);
    /* A dependent alias paid by a session dies when that session closes. */
    assert_ok(capmem_ram_alloc(f->arena, f->root, 4 * PAGE, &ds));
    b = alias(f, other, ds, 0, PAGE, 1, CAPMEM_ALIAS_DEPENDENT);
    assert_ok(capmem_ram_close(f->arena, other));
    assert_false(alive(f->arena, b));
    assert_true(alive(f->arena, ds));
    CHECK_INVARIANTS(f->arena);
    /* Freeing an alias itself leaves the original alone. */
    a = alias(f, f->root, ds, 0, PAGE, 1, CAPMEM_ALIAS_DEPENDENT);
    assert_ok(capmem_ds_free(f->arena, a));
    assert_true(alive(f->arena, ds));
}

static void test_ds_first_class_alias_keeps_only_its_pages(void **state)
{
    fixture_t *f = *state;
    capmem_cap_t lender = session(f, f->root, 1 << 20, "lender");
    capmem_cap_t borrower = session(f, f->root, 0, "borrower");
    capmem_cap_t ds;
    assert_ok(capmem_ram_alloc(f->arena, lender, 4 * PAGE, &ds));
    uint64_t phys = phys_of(f, ds);
    assert_ok(capmem_ds_write(f->arena, ds, PAGE, "kept", 4));
    capmem_cap_t a = alias(f, borrower, ds, PAGE, 2 * PAGE, 1, CAPMEM_ALIAS_FIRST_CLASS);
    capmem_ds_info_t di;
    assert_ok(capmem_ds_info(f->arena, a, &di));
    assert_int_equal(di.kind, CAPMEM_DS_ALIAS_FIRST_CLASS);
    /* While the original lives, nothing is lent. */
    assert_int_equal(info(f->arena, lender).lent, 0);
    assert_ok(capmem_ds_free(f->arena, ds));
    CHECK_INVARIANTS(f->arena);
    /* The alias is still a first-class dataspace with the bytes. */
    char buf[4];
    assert_ok(capmem_ds_read(f->arena, a, 0, buf, 4));
    assert_memory_equal(buf, "kept", 4);
    assert_ok(capmem_ds_write(f->arena, a, 4, "more", 4));
    /* Only the unreferenced pages were released, byte-exactly. */
    assert_int_equal(used_bytes(f, phys, PAGE), 0);
    assert_int_equal(used_bytes(f, phys + PAGE, 2 * PAGE), 2 * PAGE);
    assert_int_equal(used_bytes(f, phys + 3 * PAGE, PAGE), 0);
    capmem_ram_info_t l = info(f->arena, lender);
    assert_int_equal(l.used, 2 * PAGE);
    assert_int_equal(l.lent, 2 * PAGE);
    /* The lender pays until the borrower lets go. */
    assert_ok(capmem_ds_free(f->arena, a));
    l = info(f->arena, lender);
    assert_int_equal(l.used, 0);
    assert_int_equal(l.lent, 0);
    assert_int_equal(used_bytes(f, phys, 4 * PAGE), 0);
}

static void test_ds_overlapping_first_class_aliases_count_per_page(void **state)
{
    fixture_t *f = *state;
    capmem_cap_t lender = session(f, f->root, 1 << 20, "lender");
    capmem_cap_t b1 = session(f, f->root, 0, "b1");
    capmem_cap_t b2 = session(f, f->root, 0, "b2");
    capmem_cap_t ds;
    assert_ok(capmem_ram_alloc(f->arena, lender, 6 * PAGE, &ds));
    uint64_t phys = phys_of(f, ds);
    capmem_cap_t x = alias(f, b1, ds, 0, 3 * PAGE, 1, CAPMEM_ALIAS_FIRST_CLASS);    /* pages 0-2 */
    capmem_cap_t y = alias(f, b2, ds, PAGE, 3 * PAGE, 1, CAPMEM_ALIAS_FIRST_CLASS); /* 1-3 */
    capmem_cap_t z = alias(f, b2, ds, 5 * PAGE, PAGE, 0, CAPMEM_ALIAS_FIRST_CLASS); /* 5 */
    assert_ok(capmem_ds_free(f->arena, ds));
    CHECK_INVARIANTS(f->arena);
    assert_int_equal(info(f->arena, lender).used, 5 * PAGE); /* page 4 released */
    assert_int_equal(used_bytes(f, phys + 4 * PAGE, PAGE), 0);
    /* x goes: only page 0 loses its last reference. */
    assert_ok(capmem_ds_free(f->arena, x));
    CHECK_INVARIANTS(f->arena);
    assert_int_equal(info(f->arena, lender).used, 4 * PAGE);
    assert_int_equal(used_bytes(f, phys, PAGE), 0);
    assert_int_equal(used_bytes(f, phys + PAGE, 3 * PAGE), 3 * PAGE);
    /* A first-class alias of a lent alias shares its pages. */
    capmem_cap_t w = alias(f, b1, y, PAGE, PAGE, 1, CAPMEM_ALIAS_FIRST_CLASS); /* page 2 */
    assert_ok(capmem_ds_free(f->arena, y));
    CHECK_INVARIANTS(f->arena);
    assert_int_equal(info(f->arena, lender).used, 2 * PAGE); /* pages 2 and 5 */
    assert_int_equal(used_bytes(f, phys + 2 * PAGE, PAGE), PAGE);
    assert_ok(capmem_ds_free(f->arena, w));
    assert_ok(capmem_ds_free(f->arena, z));
    assert_int_equal(info(f->arena, lender).used, 0);
    assert_int_equal(used_bytes(f, phys, 6 * PAGE), 0);
}

static void test_ds_lender_closed_before_borrower_passes_charge_up(void **state)
{
    fixture_t *f = *state;
    capmem_cap_t parent = session(f, f->root, 4 << 20, "parent");
    capmem_cap_t lender = session(f, parent, 1 << 20, "lender");
    capmem_cap_t borrower = session(f, f->root, 0, "borrower");
    capmem_cap_t ds;
    assert_ok(capmem_ram_alloc(f->arena, lender, 4 * PAGE, &ds));
    uint64_t phys = phys_of(f, ds);
    capmem_cap_t a = alias(f, borrower, ds, 0, 2 * PAGE, 1, CAPMEM_ALIAS_FIRST_CLASS);
    capmem_ram_info_t p0 = info(f->arena, parent);
    /* The lender closes with its dataspace: 2 pages stay, their charge moves to the parent. */
    assert_ok(capmem_ram_close(f->arena, lender));
    CHECK_INVARIANTS(f->arena);
    capmem_ram_info_t p1 = info(f->arena, parent);
    assert_int_equal(p1.quota, p0.quota + (1 << 20) + CAPMEM_RAM_DEFAULT_DONATION);
    assert_int_equal(p1.used, p0.used + 2 * PAGE);
    assert_int_equal(p1.lent, 2 * PAGE);
    assert_int_equal(used_bytes(f, phys, 4 * PAGE), 2 * PAGE);
    char buf[2];
    assert_ok(capmem_ds_read(f->arena, a, PAGE, buf, 2));
    /* The parent closes too: the charge moves on to the root. */
    capmem_ram_info_t r0 = info(f->arena, f->root);
    assert_ok(capmem_ram_close(f->arena, parent));
    CHECK_INVARIANTS(f->arena);
    capmem_ram_info_t r1 = info(f->arena, f->root);
    assert_int_equal(r1.lent, r0.lent + 2 * PAGE);
    /* The borrower lets go: refunded where the charge ended up. */
    assert_ok(capmem_ds_free(f->arena, a));
    CHECK_INVARIANTS(f->arena);
    capmem_ram_info_t r2 = info(f->arena, f->root);
    assert_int_equal(r2.lent, r0.lent);
    assert_int_equal(r2.used, r1.used - 2 * PAGE);
    assert_int_equal(used_bytes(f, phys, 4 * PAGE), 0);
}

static void test_ds_borrower_closing_releases_lent_pages(void **state)
{
    fixture_t *f = *state;
    capmem_cap_t lender = session(f, f->root, 1 << 20, "lender");
    capmem_cap_t borrower = session(f, f->root, 0, "borrower");
    capmem_cap_t ds;
    assert_ok(capmem_ram_alloc(f->arena, lender, 2 * PAGE, &ds));
    capmem_cap_t a = alias(f, borrower, ds, 0, PAGE, 1, CAPMEM_ALIAS_FIRST_CLASS);
    /* Borrower closes while the original lives: nothing to release. */
    assert_ok(capmem_ram_close(f->arena, borrower));
    assert_false(alive(f->arena, a));
    assert_int_equal(info(f->arena, lender).used, 2 * PAGE);
    CHECK_INVARIANTS(f->arena);
    /* Again, but the original goes first. */
    borrower = session(f, f->root, 0, "borrower2");
    a = alias(f, borrower, ds, PAGE, PAGE, 1, CAPMEM_ALIAS_FIRST_CLASS);
    assert_ok(capmem_ds_free(f->arena, ds));
    assert_int_equal(info(f->arena, lender).lent, PAGE);
    assert_ok(capmem_ram_close(f->arena, borrower));
    assert_int_equal(info(f->arena, lender).used, 0);
    assert_int_equal(info(f->arena, lender).lent, 0);
}

static void test_ds_first_class_alias_of_dependent_of_first_class(void **state)
{
    fixture_t *f = *state;
    capmem_cap_t lender = session(f, f->root, 1 << 20, "lender");
    capmem_cap_t ds;
    assert_ok(capmem_ram_alloc(f->arena, lender, 4 * PAGE, &ds));
    uint64_t phys = phys_of(f, ds);
    capmem_cap_t fc = alias(f, lender, ds, PAGE, 3 * PAGE, 1, CAPMEM_ALIAS_FIRST_CLASS);
    capmem_cap_t dep = alias(f, lender, fc, PAGE, 2 * PAGE, 1, CAPMEM_ALIAS_DEPENDENT);
    /* Shares the pages of fc (its dependent's base): joins the original's ring. */
    capmem_cap_t fc2 = alias(f, lender, dep, PAGE, PAGE, 1, CAPMEM_ALIAS_FIRST_CLASS);
    assert_ok(capmem_ds_free(f->arena, ds));
    CHECK_INVARIANTS(f->arena);
    assert_int_equal(used_bytes(f, phys, 4 * PAGE), 3 * PAGE);
    /* fc goes (and dep with it): only fc2's page stays. */
    assert_ok(capmem_ds_free(f->arena, fc));
    assert_false(alive(f->arena, dep));
    CHECK_INVARIANTS(f->arena);
    assert_int_equal(used_bytes(f, phys, 4 * PAGE), PAGE);
    assert_int_equal(used_bytes(f, phys + 3 * PAGE, PAGE), PAGE);
    /* A dependent alias of a lent alias, and a first-class alias of that. */
    dep = alias(f, lender, fc2, 0, PAGE, 0, CAPMEM_ALIAS_DEPENDENT);
    capmem_cap_t fc3 = alias(f, lender, dep, 0, PAGE, 0, CAPMEM_ALIAS_FIRST_CLASS);
    assert_ok(capmem_ds_free(f->arena, fc2));
    assert_false(alive(f->arena, dep));
    assert_int_equal(used_bytes(f, phys + 3 * PAGE, PAGE), PAGE); /* fc3 keeps it */
    assert_ok(capmem_ram_close(f->arena, lender)); /* fc3 is the lender's own: freed */
    CHECK_INVARIANTS(f->arena);
    assert_false(alive(f->arena, fc3));
    assert_int_equal(used_bytes(f, phys, 4 * PAGE), 0);
}

static capmem_cap_t closed_handle;

static void on_close(capmem_arena_t *a, const capmem_event_t *ev, void *ctx)
{
    (void)a;
    (void)ctx;
    if (ev->kind == CAPMEM_EVENT_SESSION_CLOSE) {
        closed_handle = ev->cap;
    }
}

static void test_ds_session_close_event_names_the_session(void **state)
{
    fixture_t *f = *state;
    capmem_cap_t s = session(f, f->root, 0, "short-lived");
    closed_handle = CAPMEM_CAP_NULL;
    assert_ok(capmem_arena_set_event_handler(f->arena, on_close, NULL));
    assert_ok(capmem_ram_close(f->arena, s));
    assert_ok(capmem_arena_set_event_handler(f->arena, NULL, NULL));
    assert_int_equal(closed_handle, s);
}

static void splitting(fixture_t *f, capmem_alias_lifetime_t lt)
{
    enum { N = 256 };
    capmem_cap_t owner = session(f, f->root, 2 << 20, "owner");
    capmem_cap_t ds;
    assert_ok(capmem_ram_alloc(f->arena, owner, 1 << 20, &ds));
    uint64_t phys = phys_of(f, ds);
    static capmem_cap_t sess[N];
    static capmem_cap_t al[N];
    capmem_ram_open_attr_t at = CAPMEM_RAM_OPEN_ATTR_INIT;
    at.donation = PAGE;
    at.caps = 2;
    for (int i = 0; i < N; i++) {
        char label[16];
        snprintf(label, sizeof(label), "piece%d", i);
        at.label = label;
        assert_ok(capmem_ram_open(f->arena, f->root, &at, &sess[i]));
        al[i] = alias(f, sess[i], ds, (uint64_t)i * PAGE, PAGE, i != 7, lt);
        uint32_t v = 0xa0000000u + (uint32_t)i;
        if (i != 7) {
            assert_ok(capmem_ds_write(f->arena, al[i], 0, &v, 4));
        }
    }
    /* Piece 7 is read-only: its write is refused, the original can still write there. */
    uint32_t v = 7;
    assert_err(capmem_ds_write(f->arena, al[7], 0, &v, 4), CAPMEM_E_DENIED);
    v = 0xa0000007u;
    assert_ok(capmem_ds_write(f->arena, ds, 7 * PAGE, &v, 4));
    assert_ok(capmem_ds_free(f->arena, ds));
    CHECK_INVARIANTS(f->arena);
    capmem_ram_info_t o = info(f->arena, owner);
    if (lt == CAPMEM_ALIAS_DEPENDENT) {
        for (int i = 0; i < N; i++) {
            assert_false(alive(f->arena, al[i]));
        }
        assert_int_equal(o.used, 0);
        assert_int_equal(used_bytes(f, phys, 1 << 20), 0);
    } else {
        for (int i = 0; i < N; i++) {
            uint32_t got = 0;
            assert_ok(capmem_ds_read(f->arena, al[i], 0, &got, 4));
            assert_int_equal(got, 0xa0000000u + (uint32_t)i);
        }
        assert_int_equal(o.used, 1 << 20);
        assert_int_equal(o.lent, 1 << 20);
        for (int i = 0; i < N; i++) {
            assert_ok(capmem_ds_free(f->arena, al[i]));
            CHECK_INVARIANTS(f->arena);
            assert_int_equal(info(f->arena, owner).used, (uint64_t)(N - 1 - i) * PAGE);
        }
        assert_int_equal(used_bytes(f, phys, 1 << 20), 0);
    }
    for (int i = 0; i < N; i++) {
        assert_ok(capmem_ram_close(f->arena, sess[i]));
    }
    assert_ok(capmem_ram_close(f->arena, owner));
    CHECK_INVARIANTS(f->arena);
}

static void test_ds_splitting_with_dependent_aliases(void **state)
{
    splitting(*state, CAPMEM_ALIAS_DEPENDENT);
}

static void test_ds_splitting_with_first_class_aliases(void **state)
{
    splitting(*state, CAPMEM_ALIAS_FIRST_CLASS);
}

/* Every kind has its name, and info reports the kind each dataspace is. */
static void test_ds_kind_names_name_every_kind(void **state)
{
    fixture_t *f = *state;
    assert_string_equal(capmem_ds_kind_name(CAPMEM_DS_RAM), "RAM");
    assert_string_equal(capmem_ds_kind_name(CAPMEM_DS_ALIAS_DEPENDENT), "dependent alias");
    assert_string_equal(capmem_ds_kind_name(CAPMEM_DS_ALIAS_FIRST_CLASS), "first-class alias");
    assert_string_equal(capmem_ds_kind_name(CAPMEM_DS_MANAGED), "managed");
    assert_string_equal(capmem_ds_kind_name((capmem_ds_kind_t)99), "unknown");
    capmem_cap_t s = session(f, f->root, 1 << 20, "kinds");
    capmem_cap_t ds;
    assert_ok(capmem_ram_alloc(f->arena, s, 2 * PAGE, &ds));
    capmem_cap_t dep = alias(f, s, ds, 0, PAGE, 0, CAPMEM_ALIAS_DEPENDENT);
    capmem_ds_info_t di;
    assert_ok(capmem_ds_info(f->arena, dep, &di));
    assert_int_equal(di.kind, CAPMEM_DS_ALIAS_DEPENDENT);
    assert_false(di.writable);
    assert_int_equal(di.rights & CAPMEM_RIGHT_WRITE, 0);
    assert_ok(capmem_ds_info(f->arena, ds, &di));
    assert_int_equal(di.kind, CAPMEM_DS_RAM);
    assert_ok(capmem_ds_free(f->arena, ds));
    assert_false(alive(f->arena, dep));
    assert_ok(capmem_ram_close(f->arena, s));
    CHECK_INVARIANTS(f->arena);
}

/*
 * The RAM checker walks each account's lent list: a record there that is
 * not a lent first-class alias of that account is named (ds_internal.h).
 */
static void test_ds_checker_names_a_foreign_record_in_the_lent_list(void **state)
{
    fixture_t *f = *state;
    capmem_cap_t lender = session(f, f->root, 1 << 20, "lender");
    capmem_cap_t borrower = session(f, f->root, 0, "borrower");
    capmem_cap_t ds;
    assert_ok(capmem_ram_alloc(f->arena, lender, 2 * PAGE, &ds));
    capmem_cap_t a = alias(f, borrower, ds, 0, PAGE, 1, CAPMEM_ALIAS_FIRST_CLASS);
    assert_ok(capmem_ds_free(f->arena, ds));
    assert_int_equal(info(f->arena, lender).lent, PAGE);
    capmem__ds_t *rec = NULL;
    assert_ok(capmem__ds_lookup(f->arena, a, 0, NULL, &rec));
    assert_true(rec->flags & CAPMEM__DS_LENT);
    char why[256];

    rec->flags &= ~(uint32_t)CAPMEM__DS_LENT;
    assert_err(capmem_check(f->arena, why, sizeof(why)), CAPMEM_E_CORRUPT);
    assert_non_null(strstr(why, "account \"lender\": its lent list holds a record that is not its "
                                "lent first-class alias"));
    rec->flags |= CAPMEM__DS_LENT;

    /* A dependent alias where a first-class one belongs. */
    rec->flags = (rec->flags & ~(uint32_t)CAPMEM__DS_KIND_MASK) | CAPMEM__DS_ALIAS_DEP;
    assert_err(capmem_check(f->arena, why, sizeof(why)), CAPMEM_E_CORRUPT);
    assert_non_null(strstr(why, "account \"lender\": its lent list"));
    rec->flags = (rec->flags & ~(uint32_t)CAPMEM__DS_KIND_MASK) | CAPMEM__DS_ALIAS_FC;

    capmem__account_t *other = NULL;
    assert_ok(capmem__account_lookup(f->arena, borrower, 0, &other));
    capmem__account_t *saved = rec->u.fc.lender;
    rec->u.fc.lender = other;
    assert_err(capmem_check(f->arena, why, sizeof(why)), CAPMEM_E_CORRUPT);
    assert_non_null(strstr(why, "account \"lender\": its lent list"));
    rec->u.fc.lender = saved;

    CHECK_INVARIANTS(f->arena);
    assert_ok(capmem_ds_free(f->arena, a));
    assert_int_equal(info(f->arena, lender).lent, 0);
    assert_ok(capmem_ram_close(f->arena, borrower));
    assert_ok(capmem_ram_close(f->arena, lender));
    CHECK_INVARIANTS(f->arena);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_ds_alias_shares_bytes_both_ways),
        T(test_ds_read_only_alias_is_rom),
        T(test_ds_alias_bad_arguments_change_nothing),
        T(test_ds_alias_record_is_paid_by_creating_session),
        T(test_ds_dependent_aliases_die_with_the_original),
        T(test_ds_first_class_alias_keeps_only_its_pages),
        T(test_ds_overlapping_first_class_aliases_count_per_page),
        T(test_ds_lender_closed_before_borrower_passes_charge_up),
        T(test_ds_borrower_closing_releases_lent_pages),
        T(test_ds_first_class_alias_of_dependent_of_first_class),
        T(test_ds_session_close_event_names_the_session),
        T(test_ds_splitting_with_dependent_aliases),
        T(test_ds_splitting_with_first_class_aliases),
        T(test_ds_kind_names_name_every_kind),
        T(test_ds_checker_names_a_foreign_record_in_the_lent_list),
    };
#undef T
    return cmocka_run_group_tests_name("dataspace", tests, NULL, NULL);
}
