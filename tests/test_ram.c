/* SPDX-License-Identifier: MIT */
/* Layer 5: the RAM service, accounts, donations, upgrades, RAM dataspaces. */
#include <malloc.h>
#include <stdio.h>
#include <string.h>

#include "account_internal.h"
#include "cap_internal.h"
#include "internal.h"
#include "first_fit.h"
#include "support.h"

typedef test_world_t fixture_t;

static fixture_t fx;

static int setup_size(void **state, uint64_t ram)
{
    test_world_open_phys(&fx, ram, 0, 0);
    *state = &fx;
    return 0;
}

static int setup(void **state)
{
    return setup_size(state, 64ull << 20);
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

static capmem_cap_t open_child(fixture_t *f, capmem_cap_t parent, uint64_t quota, uint32_t flags,
                               const char *label)
{
    capmem_ram_open_attr_t at = CAPMEM_RAM_OPEN_ATTR_INIT;
    at.quota = quota;
    at.flags = flags;
    at.label = label;
    at.caps = parent == f->root ? 4096 : 64; /* enough for every test's dataspaces */
    capmem_cap_t c = CAPMEM_CAP_NULL;
    assert_ok(capmem_ram_open(f->arena, parent, &at, &c));
    CHECK_INVARIANTS(f->arena);
    return c;
}

/* Sum of quota + donation over the root and the given accounts: the RAM. */
static uint64_t quota_sum(capmem_arena_t *a, const capmem_cap_t *accs, size_t n)
{
    uint64_t sum = 0;
    for (size_t i = 0; i < n; i++) {
        capmem_ram_info_t in = info(a, accs[i]);
        sum += in.quota + in.donation;
    }
    return sum;
}

static void test_ram_root_holds_all_ram(void **state)
{
    fixture_t *f = *state;
    capmem_ram_info_t r = info(f->arena, f->root);
    assert_true(r.is_root);
    assert_int_equal(r.ref, CAPMEM_CAP_NULL);
    assert_int_equal(r.donation, CAPMEM_RAM_DEFAULT_DONATION);
    assert_int_equal(r.quota + r.donation, 64ull << 20);
    assert_int_equal(r.used, 0);
    assert_string_equal(r.label, "root");
    /* Composition: the root account's capability is a child of a RAM pool of the untyped. */
    capmem_cap_info_t ci;
    assert_ok(capmem_cap_identify(f->arena, f->root, &ci));
    capmem_cap_info_t pool;
    assert_ok(capmem_cap_identify(f->arena, ci.parent, &pool));
    assert_int_equal(pool.type, CAPMEM_OBJ_KOBJ);
    capmem_cap_info_t ut;
    assert_ok(capmem_cap_identify(f->arena, pool.parent, &ut));
    assert_int_equal(ut.type, CAPMEM_OBJ_UNTYPED);
}

static void test_ram_default_donation_pays_for_documented_dataspaces(void **state)
{
    fixture_t *f = *state;
    assert_int_equal(CAPMEM_RAM_DEFAULT_DATASPACES, 65536 / 64 - 1 - 3);
    capmem_cap_t child = open_child(f, f->root, 8ull << 20, 0, "child");
    capmem_ram_info_t before = info(f->arena, child);
    assert_int_equal(before.records_capacity, 1024);
    assert_int_equal(before.records_used, 4); /* chunk header + 3 session slots */
    capmem_cap_t ds;
    for (unsigned i = 0; i < CAPMEM_RAM_DEFAULT_DATASPACES; i++) {
        assert_true(capmem_ram_alloc(f->arena, child, 4096, &ds) == CAPMEM_OK);
        if (i % 97 == 0) {
            CHECK_INVARIANTS(f->arena);
        }
    }
    CHECK_INVARIANTS(f->arena);
    capmem_ram_info_t full = info(f->arena, child);
    capmem_cap_t x = CAPMEM_CAP_NULL;
    assert_err(capmem_ram_alloc(f->arena, child, 4096, &x), CAPMEM_E_OUT_OF_METADATA);
    assert_int_equal(x, CAPMEM_CAP_NULL);
    const capmem_error_info_t *d = capmem_last_error();
    assert_non_null(strstr(d->message, "Could not allocate metadata"));
    assert_int_equal(d->needed, 64);
    /* Nothing changed by the failure. */
    capmem_ram_info_t after = info(f->arena, child);
    assert_memory_equal(&after, &full, sizeof(after));
    assert_int_equal(after.used, CAPMEM_RAM_DEFAULT_DATASPACES * 4096ull);
    CHECK_INVARIANTS(f->arena);
}

typedef struct upgrade_log {
    int upgrades;
    char last[192];
} upgrade_log_t;

static void on_event(capmem_arena_t *a, const capmem_event_t *ev, void *ctx)
{
    (void)a;
    upgrade_log_t *log = ctx;
    if (ev->kind == CAPMEM_EVENT_UPGRADE) {
        log->upgrades++;
        snprintf(log->last, sizeof(log->last), "%s", ev->message);
    }
}

static void test_ram_expanding_client_upgrades_in_steps(void **state)
{
    fixture_t *f = *state;
    upgrade_log_t log = {0};
    assert_ok(capmem_arena_set_event_handler(f->arena, on_event, &log));
    const uint64_t quota = 6ull << 20;
    capmem_cap_t child = open_child(f, f->root, quota, CAPMEM_RAM_EXPANDING, "exp");
    capmem_cap_t all[2] = {f->root, child};
    const uint64_t ram = quota_sum(f->arena, all, 2);
    capmem_cap_t ds;
    const unsigned n = CAPMEM_RAM_DEFAULT_DATASPACES + 3 * CAPMEM_RAM_RECORDS_PER_UPGRADE(8192u);
    for (unsigned i = 0; i < n; i++) {
        assert_true(capmem_ram_alloc(f->arena, child, 4096, &ds) == CAPMEM_OK);
        assert_true(quota_sum(f->arena, all, 2) == ram); /* conserved at every step */
        if (i >= CAPMEM_RAM_DEFAULT_DATASPACES - 2) {
            CHECK_INVARIANTS(f->arena);
        }
    }
    /* Exactly three 8 KiB upgrades, each visible as an event. */
    assert_int_equal(log.upgrades, 3);
    assert_non_null(strstr(log.last, "upgrading quota donation for exp"));
    capmem_ram_info_t in = info(f->arena, child);
    assert_int_equal(in.upgrades, 3);
    assert_int_equal(in.donation, CAPMEM_RAM_DEFAULT_DONATION + 3 * 8192);
    assert_int_equal(in.quota, quota - 3 * 8192);
    /* Run the client's own quota down: OUT_OF_RAM only when it cannot pay. */
    capmem_err_t e = CAPMEM_OK;
    unsigned more = 0;
    while ((e = capmem_ram_alloc(f->arena, child, 4096, &ds)) == CAPMEM_OK) {
        more++;
    }
    assert_int_equal(e, CAPMEM_E_OUT_OF_RAM);
    in = info(f->arena, child);
    assert_true(in.avail < 4096 + 8192);
    assert_int_equal(quota_sum(f->arena, all, 2), ram);
    assert_true(more > 0);
    CHECK_INVARIANTS(f->arena);
    assert_ok(capmem_arena_set_event_handler(f->arena, NULL, NULL));
}

static void test_ram_init_distributes_budget_and_children_are_isolated(void **state)
{
    fixture_t *f = *state;
    const struct {
        const char *name;
        uint64_t quota;
    } table[3] = {{"timer", 1ull << 20}, {"fs", 4ull << 20}, {"shell", 2ull << 20}};
    capmem_cap_t init = open_child(f, f->root, 16ull << 20, 0, "init");
    capmem_cap_t kids[3];
    for (int i = 0; i < 3; i++) {
        kids[i] = open_child(f, init, table[i].quota, 0, table[i].name);
        assert_int_equal(info(f->arena, kids[i]).quota, table[i].quota);
    }
    capmem_ram_info_t init_before = info(f->arena, init);
    assert_int_equal(init_before.quota,
                     (16ull << 20) - 7 * (1ull << 20) - 3 * CAPMEM_RAM_DEFAULT_DONATION);
    capmem_cap_t ds;
    assert_ok(capmem_ram_alloc(f->arena, kids[1], 3ull << 20, &ds));
    capmem_ram_info_t sib0 = info(f->arena, kids[0]);
    capmem_ram_info_t sib2 = info(f->arena, kids[2]);
    /* The shell over-allocates: refused, and nobody else is touched. */
    capmem_cap_t x = CAPMEM_CAP_NULL;
    assert_err(capmem_ram_alloc(f->arena, kids[2], 3ull << 20, &x), CAPMEM_E_OUT_OF_RAM);
    assert_int_equal(capmem_last_error()->needed, 3ull << 20);
    assert_int_equal(capmem_last_error()->available, 2ull << 20);
    capmem_ram_info_t now0 = info(f->arena, kids[0]);
    capmem_ram_info_t now2 = info(f->arena, kids[2]);
    assert_memory_equal(&now0, &sib0, sizeof(now0));
    assert_memory_equal(&now2, &sib2, sizeof(now2));
    assert_int_equal(info(f->arena, init).quota, init_before.quota);
    CHECK_INVARIANTS(f->arena);
    /* Closing the fs child returns its quota and donation to init, dataspace and all. */
    assert_ok(capmem_ram_close(f->arena, kids[1]));
    assert_int_equal(info(f->arena, init).quota,
                     init_before.quota + (4ull << 20) + CAPMEM_RAM_DEFAULT_DONATION);
    capmem_ds_info_t di;
    assert_err(capmem_ds_info(f->arena, ds, &di), CAPMEM_E_INVALID_CAP);
    CHECK_INVARIANTS(f->arena);
    /* Closing init closes its remaining children first. */
    capmem_ram_info_t root_before = info(f->arena, f->root);
    assert_ok(capmem_ram_close(f->arena, init));
    capmem_ram_info_t root_after = info(f->arena, f->root);
    assert_int_equal(root_after.quota,
                     root_before.quota + (16ull << 20) + CAPMEM_RAM_DEFAULT_DONATION);
    assert_err(capmem_ram_info(f->arena, kids[0], &root_after), CAPMEM_E_INVALID_CAP);
}

static void test_ram_fragmentation_gives_out_of_phys(void **state)
{
    (void)state;
    fixture_t *f = &fx;
    setup_size(state, 1ull << 20);
    capmem_ram_info_t r = info(f->arena, f->root);
    /* Fill with single pages, free every other one: half the RAM free, no 2 pages in a row. */
    capmem_cap_t pages[256];
    unsigned n = 0;
    while (n < 256 && capmem_ram_alloc(f->arena, f->root, 4096, &pages[n]) == CAPMEM_OK) {
        n++;
    }
    assert_int_equal(capmem_last_error()->code, CAPMEM_E_OUT_OF_RAM);
    for (unsigned i = 0; i < n; i += 2) {
        assert_ok(capmem_ds_free(f->arena, pages[i]));
    }
    CHECK_INVARIANTS(f->arena);
    capmem_ram_info_t mid = info(f->arena, f->root);
    assert_true(mid.avail >= 8192);
    capmem_cap_t x = CAPMEM_CAP_NULL;
    assert_err(capmem_ram_alloc(f->arena, f->root, 8192, &x), CAPMEM_E_OUT_OF_PHYS);
    assert_int_equal(capmem_last_error()->needed, 8192);
    assert_int_equal(capmem_last_error()->available, 4096); /* the largest free range */
    capmem_ram_info_t after = info(f->arena, f->root);
    assert_memory_equal(&after, &mid, sizeof(after));
    (void)r;
    teardown(state);
}

static void test_ram_transfer_only_with_reference_account(void **state)
{
    fixture_t *f = *state;
    capmem_cap_t a = open_child(f, f->root, 1 << 20, 0, "a");
    capmem_cap_t b = open_child(f, f->root, 1 << 20, 0, "b");
    capmem_cap_t a1 = open_child(f, a, 256 << 10, 0, "a1");
    capmem_ram_info_t ia = info(f->arena, a);
    /* Child to parent and back. */
    assert_ok(capmem_ram_transfer(f->arena, a1, a, 4096));
    assert_ok(capmem_ram_transfer(f->arena, a, a1, 8192));
    assert_int_equal(info(f->arena, a).quota, ia.quota - 4096);
    /* Siblings, cousins, grandparents: refused. */
    assert_err(capmem_ram_transfer(f->arena, a, b, 4096), CAPMEM_E_DENIED);
    assert_err(capmem_ram_transfer(f->arena, a1, f->root, 4096), CAPMEM_E_DENIED);
    assert_err(capmem_ram_transfer(f->arena, a1, b, 4096), CAPMEM_E_DENIED);
    /* Never beyond what the giver has free; the donation is not transferable. */
    capmem_ram_info_t i1 = info(f->arena, a1);
    assert_err(capmem_ram_transfer(f->arena, a1, a, i1.avail + 1), CAPMEM_E_OUT_OF_RAM);
    assert_int_equal(capmem_last_error()->available, i1.avail);
    assert_ok(capmem_ram_transfer(f->arena, a1, a, i1.avail));
    assert_int_equal(info(f->arena, a1).quota, 0);
    assert_int_equal(info(f->arena, a1).donation, CAPMEM_RAM_DEFAULT_DONATION);
    assert_err(capmem_ram_transfer(f->arena, a1, a, 4096), CAPMEM_E_OUT_OF_RAM);
    /* Bad input. */
    assert_err(capmem_ram_transfer(f->arena, a, a1, 0), CAPMEM_E_INVALID_ARGS);
    assert_err(capmem_ram_transfer(f->arena, a, a, 4096), CAPMEM_E_INVALID_ARGS);
    assert_err(capmem_ram_transfer(NULL, a, a1, 4096), CAPMEM_E_INVALID_ARGS);
    capmem_cap_t ro;
    assert_ok(capmem_cap_mint(f->arena, a, CAPMEM_RIGHT_READ, &ro));
    assert_err(capmem_ram_transfer(f->arena, ro, a1, 4096), CAPMEM_E_DENIED);
    assert_ok(capmem_cap_delete(f->arena, ro));
    capmem_cap_t ds;
    assert_ok(capmem_ram_alloc(f->arena, a, 4096, &ds));
    assert_err(capmem_ram_transfer(f->arena, ds, a1, 4096), CAPMEM_E_WRONG_TYPE);
    CHECK_INVARIANTS(f->arena);
}

static void test_ram_capability_quota(void **state)
{
    fixture_t *f = *state;
    capmem_ram_open_attr_t at = CAPMEM_RAM_OPEN_ATTR_INIT;
    at.quota = 1 << 20;
    at.caps = 3;
    capmem_cap_t c;
    capmem_ram_info_t r0 = info(f->arena, f->root);
    assert_ok(capmem_ram_open(f->arena, f->root, &at, &c));
    capmem_ram_info_t r1 = info(f->arena, f->root);
    assert_int_equal(r1.caps_limit, r0.caps_limit - 3);
    assert_int_equal(r1.caps_used, r0.caps_used + 1); /* the session's own capability */
    capmem_cap_t ds[4];
    for (int i = 0; i < 3; i++) {
        assert_ok(capmem_ram_alloc(f->arena, c, 4096, &ds[i]));
    }
    assert_err(capmem_ram_alloc(f->arena, c, 4096, &ds[3]), CAPMEM_E_OUT_OF_CAPS);
    capmem_cap_t cp;
    assert_err(capmem_cap_mint(f->arena, ds[0], CAPMEM_RIGHT_READ, &cp), CAPMEM_E_OUT_OF_CAPS);
    assert_ok(capmem_ram_transfer_caps(f->arena, f->root, c, 2));
    assert_ok(capmem_ram_alloc(f->arena, c, 4096, &ds[3]));
    assert_ok(capmem_cap_mint(f->arena, ds[0], CAPMEM_RIGHT_READ, &cp));
    assert_err(capmem_ram_transfer_caps(f->arena, c, f->root, 1), CAPMEM_E_OUT_OF_CAPS);
    assert_err(capmem_ram_transfer_caps(f->arena, c, f->root, 0), CAPMEM_E_INVALID_ARGS);
    assert_int_equal(info(f->arena, c).caps_used, 5);
    at.caps = UINT64_MAX;
    capmem_cap_t d = CAPMEM_CAP_NULL;
    assert_err(capmem_ram_open(f->arena, f->root, &at, &d), CAPMEM_E_OUT_OF_CAPS);
    assert_ok(capmem_ram_close(f->arena, c));
    capmem_ram_info_t r2 = info(f->arena, f->root);
    assert_int_equal(r2.caps_limit, r0.caps_limit);
    assert_int_equal(r2.caps_used, r0.caps_used);
}

static void test_ram_open_and_close_errors_change_nothing(void **state)
{
    fixture_t *f = *state;
    capmem_ram_info_t r0 = info(f->arena, f->root);
    capmem_ram_open_attr_t at = CAPMEM_RAM_OPEN_ATTR_INIT;
    capmem_cap_t c = CAPMEM_CAP_NULL;
    at.donation = 1000; /* not a page multiple */
    assert_err(capmem_ram_open(f->arena, f->root, &at, &c), CAPMEM_E_INVALID_ARGS);
    at = (capmem_ram_open_attr_t)CAPMEM_RAM_OPEN_ATTR_INIT;
    at.donation = 0;
    assert_err(capmem_ram_open(f->arena, f->root, &at, &c), CAPMEM_E_INVALID_ARGS);
    at = (capmem_ram_open_attr_t)CAPMEM_RAM_OPEN_ATTR_INIT;
    at.quota = UINT64_MAX;
    assert_err(capmem_ram_open(f->arena, f->root, &at, &c), CAPMEM_E_INVALID_ARGS);
    at.quota = r0.avail; /* plus the donation is too much */
    assert_err(capmem_ram_open(f->arena, f->root, &at, &c), CAPMEM_E_OUT_OF_RAM);
    assert_int_equal(capmem_last_error()->available, r0.avail);
    at = (capmem_ram_open_attr_t)CAPMEM_RAM_OPEN_ATTR_INIT;
    at.flags = 0x40;
    assert_err(capmem_ram_open(f->arena, f->root, &at, &c), CAPMEM_E_INVALID_ARGS);
    at = (capmem_ram_open_attr_t)CAPMEM_RAM_OPEN_ATTR_INIT;
    at.upgrade_step = 100;
    assert_err(capmem_ram_open(f->arena, f->root, &at, &c), CAPMEM_E_INVALID_ARGS);
    assert_err(capmem_ram_open(f->arena, f->root, NULL, NULL), CAPMEM_E_INVALID_ARGS);
    assert_err(capmem_ram_open(f->arena, 12345, NULL, &c), CAPMEM_E_INVALID_CAP);
    assert_int_equal(c, CAPMEM_CAP_NULL);
    capmem_ram_info_t r1 = info(f->arena, f->root);
    assert_memory_equal(&r0, &r1, sizeof(r0));
    /* Close: the root with children is refused; a copy is refused; stale is refused. */
    capmem_cap_t child = open_child(f, f->root, 0, 0, "k");
    assert_err(capmem_ram_close(f->arena, f->root), CAPMEM_E_DELETE_FIRST);
    capmem_cap_t cp;
    assert_ok(capmem_cap_mint(f->arena, child, CAPMEM_RIGHTS_ALL, &cp));
    assert_err(capmem_ram_close(f->arena, cp), CAPMEM_E_INVALID_ARGS);
    assert_ok(capmem_ram_close(f->arena, child));
    assert_err(capmem_ram_close(f->arena, child), CAPMEM_E_INVALID_CAP);
    assert_err(capmem_ram_close(NULL, child), CAPMEM_E_INVALID_ARGS);
    r1 = info(f->arena, f->root);
    assert_int_equal(r1.quota, r0.quota);
    assert_err(capmem_ram_info(f->arena, child, NULL), CAPMEM_E_INVALID_ARGS);
}

static void test_ram_alloc_errors_change_nothing(void **state)
{
    fixture_t *f = *state;
    capmem_cap_t child = open_child(f, f->root, 1 << 20, 0, "c");
    capmem_ram_info_t before = info(f->arena, child);
    capmem_cap_t ds = CAPMEM_CAP_NULL;
    assert_err(capmem_ram_alloc(f->arena, child, 0, &ds), CAPMEM_E_INVALID_ARGS);
    assert_err(capmem_ram_alloc(f->arena, child, UINT64_MAX - 10, &ds), CAPMEM_E_INVALID_ARGS);
    assert_err(capmem_ram_alloc(f->arena, child, 4096, NULL), CAPMEM_E_INVALID_ARGS);
    assert_err(capmem_ram_alloc(NULL, child, 4096, &ds), CAPMEM_E_INVALID_ARGS);
    assert_err(capmem_ram_alloc(f->arena, child, (1 << 20) + 1, &ds), CAPMEM_E_OUT_OF_RAM);
    assert_int_equal(capmem_last_error()->needed, (1 << 20) + 4096);
    capmem_cap_t ro;
    assert_ok(capmem_cap_mint(f->arena, child, CAPMEM_RIGHT_READ, &ro));
    assert_err(capmem_ram_alloc(f->arena, ro, 4096, &ds), CAPMEM_E_DENIED);
    assert_int_equal(ds, CAPMEM_CAP_NULL);
    /* (The copy of the account's capability is charged to the root, like the original.) */
    capmem_ram_info_t after = info(f->arena, child);
    assert_memory_equal(&after, &before, sizeof(after));
    /* Rounding to whole pages. */
    assert_ok(capmem_ram_alloc(f->arena, child, 1, &ds));
    capmem_ds_info_t di;
    assert_ok(capmem_ds_info(f->arena, ds, &di));
    assert_int_equal(di.size, 4096);
    assert_int_equal(di.kind, CAPMEM_DS_RAM);
    assert_int_equal(info(f->arena, child).used, 4096);
    /* Free: only the original; copies are refused; double free is a stale handle. */
    capmem_cap_t copy;
    assert_ok(capmem_cap_mint(f->arena, ds, CAPMEM_RIGHTS_ALL, &copy));
    assert_err(capmem_ds_free(f->arena, copy), CAPMEM_E_INVALID_ARGS);
    assert_ok(capmem_ds_free(f->arena, ds));
    assert_err(capmem_ds_free(f->arena, ds), CAPMEM_E_INVALID_CAP);
    assert_err(capmem_ds_info(f->arena, copy, &di), CAPMEM_E_INVALID_CAP);
    assert_err(capmem_ds_free(f->arena, child), CAPMEM_E_WRONG_TYPE);
    assert_err(capmem_ds_free(NULL, ds), CAPMEM_E_INVALID_ARGS);
    assert_int_equal(info(f->arena, child).used, 0);
}

static void test_ram_dataspace_bytes_are_zeroed_and_shared(void **state)
{
    fixture_t *f = *state;
    capmem_cap_t ds;
    assert_ok(capmem_ram_alloc(f->arena, f->root, 3 * 4096, &ds));
    char buf[16];
    assert_ok(capmem_ds_read(f->arena, ds, 4090, buf, 16));
    for (int i = 0; i < 16; i++) {
        assert_int_equal(buf[i], 0);
    }
    assert_ok(capmem_ds_write(f->arena, ds, 4090, "hello, arena!!!", 16));
    capmem_cap_t ro;
    assert_ok(capmem_cap_mint(f->arena, ds, CAPMEM_RIGHT_READ, &ro));
    char back[16];
    assert_ok(capmem_ds_read(f->arena, ro, 4090, back, 16));
    assert_string_equal(back, "hello, arena!!!");
    assert_err(capmem_ds_write(f->arena, ro, 0, "x", 1), CAPMEM_E_DENIED);
    assert_err(capmem_ds_read(f->arena, ds, 3 * 4096 - 15, back, 16), CAPMEM_E_INVALID_ARGS);
    assert_err(capmem_ds_read(f->arena, ds, UINT64_MAX, back, 16), CAPMEM_E_INVALID_ARGS);
    assert_err(capmem_ds_read(f->arena, ds, 0, NULL, 16), CAPMEM_E_INVALID_ARGS);
    capmem_ds_info_t di;
    assert_ok(capmem_ds_info(f->arena, ds, &di));
    /* The bytes are the arena's: the physical address maps to the same offset. */
    uint64_t off;
    assert_ok(capmem_arena_phys_to_offset(f->arena, di.phys, &off));
    assert_int_equal(off, di.offset);
    /* A fresh allocation over reused memory reads as zeros again. */
    assert_ok(capmem_ds_free(f->arena, ds));
    assert_ok(capmem_ram_alloc(f->arena, f->root, 3 * 4096, &ds));
    assert_ok(capmem_ds_read(f->arena, ds, 4090, back, 16));
    for (int i = 0; i < 16; i++) {
        assert_int_equal(back[i], 0);
    }
}

static void test_ram_upgrade_rules(void **state)
{
    fixture_t *f = *state;
    capmem_cap_t a = open_child(f, f->root, 1 << 20, 0, "a");
    capmem_cap_t b = open_child(f, f->root, 1 << 20, 0, "b");
    capmem_ram_info_t ia = info(f->arena, a);
    /* Paid by itself or by its reference account. */
    assert_ok(capmem_ram_upgrade(f->arena, a, a, 8192));
    assert_ok(capmem_ram_upgrade(f->arena, a, f->root, 8192));
    capmem_ram_info_t ia2 = info(f->arena, a);
    assert_int_equal(ia2.donation, ia.donation + 16384);
    assert_int_equal(ia2.quota, ia.quota - 8192);
    assert_int_equal(ia2.records_capacity, ia.records_capacity + 256);
    /* Not by a sibling. */
    assert_err(capmem_ram_upgrade(f->arena, a, b, 8192), CAPMEM_E_DENIED);
    assert_err(capmem_ram_upgrade(f->arena, a, a, 100), CAPMEM_E_INVALID_ARGS);
    assert_err(capmem_ram_upgrade(f->arena, a, a, 0), CAPMEM_E_INVALID_ARGS);
    assert_err(capmem_ram_upgrade(f->arena, a, a, 2ull << 20), CAPMEM_E_OUT_OF_RAM);
    capmem_cap_t ds;
    assert_ok(capmem_ram_alloc(f->arena, a, 4096, &ds));
    assert_err(capmem_ram_upgrade(f->arena, ds, a, 8192), CAPMEM_E_WRONG_TYPE);
    assert_err(capmem_ram_upgrade(NULL, a, a, 8192), CAPMEM_E_INVALID_ARGS);
    assert_int_equal(info(f->arena, a).donation, ia2.donation);
    /* Expanding on and off, step validation. */
    assert_ok(capmem_ram_set_expanding(f->arena, a, 1, 16384));
    assert_true(info(f->arena, a).expanding);
    assert_int_equal(info(f->arena, a).upgrade_step, 16384);
    assert_err(capmem_ram_set_expanding(f->arena, a, 1, 1000), CAPMEM_E_INVALID_ARGS);
    assert_ok(capmem_ram_set_expanding(f->arena, a, 0, 0));
    assert_false(info(f->arena, a).expanding);
    assert_err(capmem_ram_set_expanding(NULL, a, 0, 0), CAPMEM_E_INVALID_ARGS);
    CHECK_INVARIANTS(f->arena);
}

static void test_ram_host_heap_does_not_grow_with_dataspaces(void **state)
{
    (void)state;
    const unsigned n = test_under_valgrind() ? 20000 : 100000;
    capmem_ram_open_attr_t at = CAPMEM_RAM_OPEN_ATTR_INIT;
    at.donation = ((uint64_t)n + 64) * 64;
    at.donation = (at.donation + 4095) & ~4095ull;
    at.quota = (uint64_t)n * 256;
    at.caps = n;
    capmem_arena_t *a = NULL;
    capmem_arena_attr_t aa = CAPMEM_ARENA_ATTR_INIT;
    aa.ram_size = 256ull << 20;
    aa.page_size = 256; /* tiny pages: 100,000 dataspaces in 25 MiB */
    assert_ok(capmem_arena_create(&aa, &a));
    capmem_cap_t root;
    assert_ok(capmem_ram_boot(a, NULL, &root));
    capmem_cap_t s;
    assert_ok(capmem_ram_open(a, root, &at, &s));
    uint64_t mallocs = capmem__inject_count(CAPMEM__HOST_MALLOC);
    struct mallinfo2 before = mallinfo2();
    capmem_cap_t ds = CAPMEM_CAP_NULL;
    for (unsigned i = 0; i < n; i++) {
        if (capmem_ram_alloc(a, s, 256, &ds) != CAPMEM_OK) {
            fail_msg("alloc %u: %s", i, capmem_last_error()->message);
        }
    }
    struct mallinfo2 after = mallinfo2();
    /* Not one host allocation by the library for all of them... */
    assert_int_equal(capmem__inject_count(CAPMEM__HOST_MALLOC), mallocs);
    /* ...and the heap did not grow (mallinfo2 is meaningful natively only). */
    if (!test_under_valgrind()) {
        print_message("# heap in use: %zu bytes before, %zu after %u dataspaces\n", before.uordblks,
                      after.uordblks, n);
        assert_true(after.uordblks <= before.uordblks + 4096);
    }
    capmem_ram_info_t in;
    assert_ok(capmem_ram_info(a, s, &in));
    assert_int_equal(in.used, (uint64_t)n * 256);
    CHECK_INVARIANTS(a);
    assert_ok(capmem_ram_close(a, s));
    CHECK_INVARIANTS(a);
    capmem_arena_destroy(a);
}

static void test_ram_million_live_dataspaces_in_one_session(void **state)
{
    (void)state;
    const uint64_t n = test_under_valgrind() ? 50000 : 1000000;
    capmem_arena_attr_t aa = CAPMEM_ARENA_ATTR_INIT;
    aa.page_size = 256;
    aa.ram_size = 512ull << 20;
    aa.cap_slots = (uint32_t)n + 1024;
    capmem_arena_t *a = NULL;
    assert_ok(capmem_arena_create(&aa, &a));
    capmem_cap_t root;
    assert_ok(capmem_ram_boot(a, NULL, &root));
    capmem_ram_open_attr_t at = CAPMEM_RAM_OPEN_ATTR_INIT;
    /* A large enough donation: n records plus the chunk header and the session record. */
    at.donation = ((n + 4) * 64 + 255) & ~255ull;
    at.quota = n * 256;
    at.caps = n;
    capmem_cap_t s;
    assert_ok(capmem_ram_open(a, root, &at, &s));
    capmem_ram_info_t in;
    assert_ok(capmem_ram_info(a, s, &in));
    assert_true(in.records_capacity - in.records_used >= n);
    capmem_cap_t ds = CAPMEM_CAP_NULL;
    for (uint64_t i = 0; i < n; i++) {
        if (capmem_ram_alloc(a, s, 256, &ds) != CAPMEM_OK) {
            fail_msg("dataspace %llu: %s", (unsigned long long)i, capmem_last_error()->message);
        }
    }
    assert_ok(capmem_ram_info(a, s, &in));
    assert_int_equal(in.used, n * 256);
    assert_int_equal(in.avail, 0);
    capmem_cap_t more = CAPMEM_CAP_NULL;
    assert_err(capmem_ram_alloc(a, s, 256, &more), CAPMEM_E_OUT_OF_RAM);
    /* The last one is a working dataspace among a million. */
    assert_ok(capmem_ds_write(a, ds, 0, "last", 4));
    CHECK_INVARIANTS(a);
    assert_ok(capmem_ram_close(a, s));
    CHECK_INVARIANTS(a);
    capmem_arena_destroy(a);
}

static void test_ram_service_over_several_untypeds(void **state)
{
    (void)state;
    capmem_untyped_info_t boot[2];
    capmem_cap_t halves[2];
    capmem_arena_t *a = test_split_boot(boot, halves);
    /* Keep the first 1 MiB of the 2 MiB untyped for seL4-style use, give the rest to RAM. */
    capmem_cap_t give[2] = {halves[1], boot[1].cap};
    capmem_cap_t root;
    /* Listing one twice, a device or a parent with children: refused, nothing claimed. */
    capmem_cap_t twice[2] = {halves[1], halves[1]};
    assert_err(capmem_ram_create(a, twice, 2, NULL, &root), CAPMEM_E_INVALID_ARGS);
    capmem_cap_t parent[1] = {boot[0].cap};
    assert_err(capmem_ram_create(a, parent, 1, NULL, &root), CAPMEM_E_REVOKE_FIRST);
    assert_err(capmem_ram_create(a, give, 0, NULL, &root), CAPMEM_E_INVALID_ARGS);
    capmem_ram_attr_t big = CAPMEM_RAM_ATTR_INIT;
    big.root_donation = 4ull << 20; /* more than both untypeds hold */
    assert_err(capmem_ram_create(a, give, 2, &big, &root), CAPMEM_E_OUT_OF_RAM);
    big.root_donation = 1536ull << 10; /* fits in the sum, not in one untyped */
    assert_err(capmem_ram_create(a, give, 2, &big, &root), CAPMEM_E_OUT_OF_PHYS);
    big.root_donation = 100; /* not a page multiple */
    assert_err(capmem_ram_create(a, give, 2, &big, &root), CAPMEM_E_INVALID_ARGS);
    CHECK_INVARIANTS(a);
    assert_ok(capmem_ram_create(a, give, 2, NULL, &root));
    capmem_ram_info_t r;
    assert_ok(capmem_ram_info(a, root, &r));
    assert_int_equal(r.quota + r.donation, 2ull << 20);
    /* The untyped given away cannot be retyped now. */
    capmem_cap_t fr;
    capmem_retype_attr_t rt = CAPMEM_RETYPE_ATTR_INIT;
    assert_err(capmem_untyped_retype(a, halves[1], &rt, &fr, 1), CAPMEM_E_NOT_ENOUGH_MEMORY);
    /* The other half still works as seL4 memory. */
    assert_ok(capmem_untyped_retype(a, halves[0], &rt, &fr, 1));
    capmem_cap_t ds;
    assert_ok(capmem_ram_alloc(a, root, 1536ull << 10, &ds)); /* spans no pool boundary? fits */
    CHECK_INVARIANTS(a);
    /* Revoking the second pool's untyped closes the service first. */
    assert_ok(capmem_cap_revoke(a, boot[1].cap));
    assert_err(capmem_ram_info(a, root, &r), CAPMEM_E_INVALID_CAP);
    assert_err(capmem_ds_info(a, ds, NULL), CAPMEM_E_INVALID_ARGS);
    CHECK_INVARIANTS(a);
    /* The first pool goes with its untyped; the memory is retypable again. */
    assert_ok(capmem_cap_revoke(a, halves[1]));
    assert_ok(capmem_untyped_retype(a, halves[1], &rt, &fr, 1));
    CHECK_INVARIANTS(a);
    capmem_arena_destroy(a);
}

static void test_ram_host_failure_on_create_is_clean(void **state)
{
    (void)state;
    capmem_arena_t *a = test_arena(4 << 20, 4096);
    capmem_cap_t root = CAPMEM_CAP_NULL;
    for (uint64_t nth = 1; nth <= 6; nth++) {
        capmem__inject_fail(CAPMEM__HOST_MALLOC, nth);
        capmem_err_t e = capmem_ram_boot(a, NULL, &root);
        capmem__inject_reset();
        if (e == CAPMEM_OK) {
            break;
        }
        assert_int_equal(e, CAPMEM_E_HOST_NOMEM);
        assert_int_equal(root, CAPMEM_CAP_NULL);
        CHECK_INVARIANTS(a);
    }
    if (root == CAPMEM_CAP_NULL) {
        assert_ok(capmem_ram_boot(a, NULL, &root));
    }
    capmem_ram_info_t r;
    assert_ok(capmem_ram_info(a, root, &r));
    assert_int_equal(r.quota + r.donation, 4 << 20);
    CHECK_INVARIANTS(a);
    capmem_arena_destroy(a);
}

static void test_ram_create_and_boot_refuse_bad_input(void **state)
{
    (void)state;
    capmem_arena_attr_t aa = CAPMEM_ARENA_ATTR_INIT;
    aa.ram_size = 2ull << 20;
    aa.phys_base = 0;
    aa.device_window = 1 << 20;
    aa.page_size = 256;
    capmem_arena_t *a = NULL;
    assert_ok(capmem_arena_create(&aa, &a));
    capmem_device_info_t dev;
    assert_ok(capmem_arena_device_add(a, 0xf0000000, 0x10000, &dev));
    capmem_untyped_info_t boot[8];
    size_t n = 0;
    assert_ok(capmem_untyped_boot(a, boot, 8, &n));
    assert_int_equal(n, 2); /* 2 MiB of RAM, one device untyped */
    capmem_cap_t root = CAPMEM_CAP_NULL;
    capmem_ram_attr_t at = CAPMEM_RAM_ATTR_INIT;
    at.flags = 0x80;
    assert_err(capmem_ram_create(a, &boot[0].cap, 1, &at, &root), CAPMEM_E_INVALID_ARGS);
    at = (capmem_ram_attr_t)CAPMEM_RAM_ATTR_INIT;
    at.root_donation = 256; /* a page, but too small for header + session record + one */
    assert_err(capmem_ram_create(a, &boot[0].cap, 1, &at, &root), CAPMEM_E_INVALID_ARGS);
    assert_err(capmem_ram_create(a, &boot[1].cap, 1, NULL, &root), CAPMEM_E_INVALID_ARGS);
    assert_non_null(strstr(capmem_last_error()->message, "device"));
    /* An untyped smaller than a page cannot be RAM. */
    capmem_cap_t small;
    capmem_retype_attr_t rt = CAPMEM_RETYPE_ATTR_INIT;
    rt.type = CAPMEM_OBJ_UNTYPED;
    rt.size_bits = 7;
    assert_ok(capmem_untyped_retype(a, boot[0].cap, &rt, &small, 1));
    assert_err(capmem_ram_create(a, &small, 1, NULL, &root), CAPMEM_E_INVALID_ARGS);
    assert_err(capmem_ram_boot(NULL, NULL, &root), CAPMEM_E_INVALID_ARGS);
    assert_err(capmem_ram_boot(a, NULL, NULL), CAPMEM_E_INVALID_ARGS);
    /* The only RAM boot untyped has a child now: nothing left to boot from. */
    assert_err(capmem_ram_boot(a, NULL, &root), CAPMEM_E_REVOKE_FIRST);
    assert_ok(capmem_cap_revoke(a, boot[0].cap));
    assert_ok(capmem_cap_delete(a, boot[0].cap));
    assert_err(capmem_ram_boot(a, NULL, &root), CAPMEM_E_NOT_FOUND);
    assert_int_equal(root, CAPMEM_CAP_NULL);
    CHECK_INVARIANTS(a);
    capmem_arena_destroy(a);
}

static void test_ram_open_needs_a_contiguous_donation(void **state)
{
    (void)state;
    fixture_t *f = &fx;
    setup_size(state, 1ull << 20);
    /* A donation smaller than the session record on a 256-byte-page arena is refused. */
    capmem_ram_open_attr_t at = CAPMEM_RAM_OPEN_ATTR_INIT;
    capmem_cap_t c = CAPMEM_CAP_NULL;
    /* Fragment the RAM: every other page taken. */
    capmem_cap_t pages[256];
    unsigned n = 0;
    while (n < 256 && capmem_ram_alloc(f->arena, f->root, 4096, &pages[n]) == CAPMEM_OK) {
        n++;
    }
    for (unsigned i = 0; i < n; i += 2) {
        assert_ok(capmem_ds_free(f->arena, pages[i]));
    }
    capmem_ram_info_t before = info(f->arena, f->root);
    at.donation = 8192;
    assert_err(capmem_ram_open(f->arena, f->root, &at, &c), CAPMEM_E_OUT_OF_PHYS);
    assert_int_equal(capmem_last_error()->available, 4096);
    capmem_ram_info_t after = info(f->arena, f->root);
    assert_memory_equal(&before, &after, sizeof(after));
    assert_int_equal(c, CAPMEM_CAP_NULL);
    teardown(state);
}

static void test_ram_open_refuses_a_donation_smaller_than_its_record(void **state)
{
    (void)state;
    capmem_arena_attr_t aa = CAPMEM_ARENA_ATTR_INIT;
    aa.ram_size = 1 << 20;
    aa.page_size = 256;
    capmem_arena_t *a = NULL;
    assert_ok(capmem_arena_create(&aa, &a));
    capmem_cap_t root;
    assert_ok(capmem_ram_boot(a, NULL, &root));
    capmem_ram_open_attr_t at = CAPMEM_RAM_OPEN_ATTR_INIT;
    at.donation = 256; /* one page: no room for header + session record + a record */
    capmem_cap_t c = CAPMEM_CAP_NULL;
    assert_err(capmem_ram_open(a, root, &at, &c), CAPMEM_E_INVALID_ARGS);
    at.donation = 512;
    assert_ok(capmem_ram_open(a, root, &at, &c));
    capmem_ram_info_t in;
    assert_ok(capmem_ram_info(a, c, &in));
    assert_int_equal(in.records_capacity - in.records_used, 512 / 64 - 1 - 3);
    capmem_cap_t m = CAPMEM_CAP_NULL;
    assert_err(capmem_ram_map(a, c, NULL, NULL), CAPMEM_E_INVALID_ARGS);
    assert_err(capmem_ram_map(NULL, c, NULL, NULL), CAPMEM_E_INVALID_ARGS);
    (void)m;
    CHECK_INVARIANTS(a);
    capmem_arena_destroy(a);
}

static void test_ram_expanding_client_that_cannot_pay_changes_nothing(void **state)
{
    fixture_t *f = *state;
    capmem_ram_open_attr_t at = CAPMEM_RAM_OPEN_ATTR_INIT;
    at.donation = 4096;
    at.flags = CAPMEM_RAM_EXPANDING;
    at.caps = 100;
    at.quota = 60 * 4096 + 4096 + 4096; /* 60 pages, then one more page but no 8 KiB step */
    capmem_cap_t c;
    assert_ok(capmem_ram_open(f->arena, f->root, &at, &c));
    capmem_cap_t ds;
    for (int i = 0; i < 60; i++) {
        assert_ok(capmem_ram_alloc(f->arena, c, 4096, &ds));
    }
    capmem_ram_info_t before = info(f->arena, c);
    assert_int_equal(before.avail, 8192);
    capmem_cap_t x = CAPMEM_CAP_NULL;
    assert_err(capmem_ram_alloc(f->arena, c, 4096, &x), CAPMEM_E_OUT_OF_RAM);
    assert_int_equal(capmem_last_error()->needed, 4096 + 8192);
    capmem_ram_info_t after = info(f->arena, c);
    assert_memory_equal(&before, &after, sizeof(after));
    assert_int_equal(x, CAPMEM_CAP_NULL);
    CHECK_INVARIANTS(f->arena);
}

static int transfers_seen;
static void count_transfers(capmem_arena_t *a, const capmem_event_t *ev, void *ctx)
{
    (void)a;
    (void)ctx;
    if (ev->kind == CAPMEM_EVENT_TRANSFER) {
        transfers_seen++;
        assert_int_equal(ev->a, 4096);
    }
}

static void test_ram_transfer_emits_event(void **state)
{
    fixture_t *f = *state;
    capmem_cap_t c = open_child(f, f->root, 8192, 0, "t");
    transfers_seen = 0;
    assert_ok(capmem_arena_set_event_handler(f->arena, count_transfers, NULL));
    assert_ok(capmem_ram_transfer(f->arena, c, f->root, 4096));
    assert_ok(capmem_arena_set_event_handler(f->arena, NULL, NULL));
    assert_int_equal(transfers_seen, 1);
}

#ifdef CAPMEM_HAVE_VALGRIND
#include <valgrind/memcheck.h>
#endif

/*
 * Records are blocks of a Valgrind mempool: under Valgrind, a freed
 * dataspace record (and a slot never handed out) is not addressable, so a
 * simulated use-after-free is a memcheck error. Natively this checks
 * nothing but the bookkeeping, and says so.
 */
static void test_ram_freed_records_are_unaddressable_under_valgrind(void **state)
{
    fixture_t *f = *state;
    capmem_cap_t a;
    capmem_cap_t b;
    assert_ok(capmem_ram_alloc(f->arena, f->root, 4096, &a));
    assert_ok(capmem_ram_alloc(f->arena, f->root, 4096, &b));
    uint8_t *rec = f->arena->cspace.slots[capmem__cap_index(a)].obj;
    uint8_t *next = f->arena->cspace.slots[capmem__cap_index(b)].obj;
    assert_ptr_equal(next, rec + 64); /* bumped one after the other */
#ifdef CAPMEM_HAVE_VALGRIND
    if (test_under_valgrind()) {
        uint8_t vbits[64];
        assert_int_equal(VALGRIND_GET_VBITS(rec, vbits, 64), 1); /* live: addressable */
        assert_ok(capmem_ds_free(f->arena, a));
        assert_int_equal(VALGRIND_GET_VBITS(rec + 8, vbits, 56), 3);   /* freed: not */
        assert_int_equal(VALGRIND_GET_VBITS(next + 64, vbits, 64), 3); /* never handed out */
        return;
    }
#endif
    print_message("# not under Valgrind: mempool annotations not observable\n");
    assert_ok(capmem_ds_free(f->arena, a));
}

static void test_ram_destroy_closes_everything_and_returns_the_untypeds(void **state)
{
    fixture_t *f = *state;
    capmem_cap_t child = open_child(f, f->root, 1u << 20, 0, "child");
    capmem_cap_t grandchild = open_child(f, child, 64 * 1024, 0, "grandchild");
    capmem_cap_t ds;
    assert_ok(capmem_ram_alloc(f->arena, grandchild, 8192, &ds));
    capmem_rm_open_attr_t ra = CAPMEM_RM_OPEN_ATTR_INIT;
    ra.size = 1u << 20;
    capmem_cap_t rm;
    assert_ok(capmem_rm_open(f->arena, child, &ra, &rm));
    capmem_untyped_info_t boot[8];
    size_t n = 0;
    assert_ok(capmem_untyped_boot(f->arena, boot, 8, &n));
    assert_int_equal(boot[0].children, 1); /* the service's pool */
    const size_t caps_before_service = capmem_cap_count(f->arena);
    assert_ok(capmem_ram_destroy(f->arena, f->root));
    CHECK_INVARIANTS(f->arena);
    capmem_ram_info_t in;
    assert_err(capmem_ram_info(f->arena, f->root, &in), CAPMEM_E_INVALID_CAP);
    assert_err(capmem_ram_info(f->arena, grandchild, &in), CAPMEM_E_INVALID_CAP);
    capmem_ds_info_t di;
    assert_err(capmem_ds_info(f->arena, ds, &di), CAPMEM_E_INVALID_CAP);
    capmem_rm_info_t ri;
    assert_err(capmem_rm_info(f->arena, rm, &ri), CAPMEM_E_INVALID_CAP);
    /* Only the boot untypeds are left, childless, and a new service can use them. */
    assert_true(capmem_cap_count(f->arena) < caps_before_service);
    capmem_untyped_info_t ui;
    assert_ok(capmem_untyped_info(f->arena, boot[0].cap, &ui));
    assert_int_equal(ui.children, 0);
    assert_ok(capmem_ram_boot(f->arena, NULL, &f->root));
    in = info(f->arena, f->root);
    assert_int_equal(in.used, 0);
    CHECK_INVARIANTS(f->arena);
}

static void test_ram_destroy_refuses_anything_but_the_roots_original(void **state)
{
    fixture_t *f = *state;
    capmem_cap_t child = open_child(f, f->root, 1u << 20, 0, "child");
    capmem_cap_t ds;
    assert_ok(capmem_ram_alloc(f->arena, child, 4096, &ds));
    capmem_cap_t copy;
    capmem_cap_t ro;
    assert_ok(capmem_cap_mint(f->arena, f->root, CAPMEM_RIGHTS_ALL, &copy));
    assert_ok(capmem_cap_mint(f->arena, f->root, CAPMEM_RIGHT_READ, &ro));
    const capmem_ram_info_t before = info(f->arena, f->root);
    const size_t caps = capmem_cap_count(f->arena);
    assert_err(capmem_ram_destroy(NULL, f->root), CAPMEM_E_INVALID_ARGS);
    assert_err(capmem_ram_destroy(f->arena, child), CAPMEM_E_INVALID_ARGS);
    assert_non_null(strstr(capmem_last_error()->message, "capmem_ram_close"));
    assert_err(capmem_ram_destroy(f->arena, copy), CAPMEM_E_INVALID_ARGS);
    assert_err(capmem_ram_destroy(f->arena, ro), CAPMEM_E_DENIED);
    assert_err(capmem_ram_destroy(f->arena, ds), CAPMEM_E_WRONG_TYPE);
    assert_err(capmem_ram_destroy(f->arena, f->root ^ 0x40000000ull), CAPMEM_E_INVALID_CAP);
    assert_string_equal(capmem_last_error()->function, "capmem_ram_destroy");
    const capmem_ram_info_t after = info(f->arena, f->root);
    assert_int_equal(after.quota, before.quota);
    assert_int_equal(after.used, before.used);
    assert_int_equal(capmem_cap_count(f->arena), caps);
    CHECK_INVARIANTS(f->arena);
}

static void test_ram_label_keeps_its_first_23_characters(void **state)
{
    fixture_t *f = *state;
    capmem_cap_t c = open_child(f, f->root, 4096, 0, "a-label-of-thirty-characters!!");
    capmem_ram_info_t in = info(f->arena, c);
    assert_string_equal(in.label, "a-label-of-thirty-chara");
    assert_int_equal(strlen(in.label), 23);
    assert_ok(capmem_ram_close(f->arena, c));
}

static void test_ram_create_refuses_an_untyped_with_a_user_policy(void **state)
{
    (void)state;
    capmem_arena_t *a = test_arena(4u << 20, 4096);
    capmem_untyped_info_t boot[8];
    size_t n = 0;
    assert_ok(capmem_untyped_boot(a, boot, 8, &n));
    static test_ff_t ff;
    ff = (test_ff_t){.base = 0, .size = 1ull << boot[0].size_bits};
    capmem_alloc_t *pol = NULL;
    assert_ok(capmem_alloc_create_custom_span(&test_ff_ops, &ff, 0, ff.size, &pol));
    assert_ok(capmem_untyped_set_policy(a, boot[0].cap, CAPMEM_UNTYPED_WATERMARK, pol));
    const size_t caps = capmem_cap_count(a);
    capmem_cap_t root = CAPMEM_CAP_NULL;
    /* A pool takes the untyped whole through its policy, which a user policy could refuse. */
    assert_err(capmem_ram_create(a, &boot[0].cap, 1, NULL, &root), CAPMEM_E_INVALID_ARGS);
    assert_non_null(strstr(capmem_last_error()->message, "user placement policy"));
    assert_int_equal(root, CAPMEM_CAP_NULL);
    assert_int_equal(capmem_cap_count(a), caps);
    assert_int_equal(ff.calls, 0);
    CHECK_INVARIANTS(a);
    capmem_arena_destroy(a); /* the untyped owned the policy */
}

static void test_ram_upgrade_takes_accounts_only(void **state)
{
    fixture_t *f = *state;
    capmem_rm_open_attr_t ra = CAPMEM_RM_OPEN_ATTR_INIT;
    ra.size = 1u << 20;
    capmem_cap_t rm;
    assert_ok(capmem_rm_open(f->arena, f->root, &ra, &rm));
    const capmem_ram_info_t before = info(f->arena, f->root);
    /* A region map is upgraded with capmem_rm_upgrade (region_map.h). */
    assert_err(capmem_ram_upgrade(f->arena, rm, f->root, 8192), CAPMEM_E_WRONG_TYPE);
    const capmem_ram_info_t after = info(f->arena, f->root);
    assert_int_equal(after.quota, before.quota);
    assert_ok(capmem_rm_upgrade(f->arena, rm, f->root, 8192));
    assert_int_equal(info(f->arena, f->root).quota, before.quota - 8192);
    assert_ok(capmem_rm_close(f->arena, rm));
    CHECK_INVARIANTS(f->arena);
}

/* ---- several services on one arena --------------------------------------------- */

/* An arena of 4 MiB cut into four 1 MiB untypeds (phys 0, 1, 2, 3 MiB). */
static capmem_arena_t *four_untypeds(capmem_cap_t u[4])
{
    capmem_arena_attr_t aa = CAPMEM_ARENA_ATTR_INIT;
    aa.ram_size = 4ull << 20;
    aa.phys_base = 0;
    capmem_arena_t *a = NULL;
    assert_ok(capmem_arena_create(&aa, &a));
    capmem_untyped_info_t boot[4];
    size_t n = 0;
    assert_ok(capmem_untyped_boot(a, boot, 4, &n));
    assert_int_equal(n, 1);
    capmem_retype_attr_t rt = CAPMEM_RETYPE_ATTR_INIT;
    rt.type = CAPMEM_OBJ_UNTYPED;
    rt.size_bits = 20;
    rt.count = 4;
    assert_ok(capmem_untyped_retype(a, boot[0].cap, &rt, u, 4));
    return a;
}

typedef struct map_log {
    int blocks;
    int stop_after;      /* 0: never */
    uint64_t used_at_1m; /* size of the used block that starts at 1 MiB, if any */
} map_log_t;

static int log_map(uint64_t phys, uint64_t size, bool used, void *ctx)
{
    map_log_t *m = ctx;
    m->blocks++;
    if (used && phys == 1ull << 20) {
        m->used_at_1m = size;
    }
    return m->stop_after != 0 && m->blocks >= m->stop_after;
}

typedef struct close_log {
    int closes;
    char last[160];
} close_log_t;

static void log_close(capmem_arena_t *a, const capmem_event_t *ev, void *ctx)
{
    (void)a;
    close_log_t *l = ctx;
    if (ev->kind == CAPMEM_EVENT_SESSION_CLOSE) {
        l->closes++;
        snprintf(l->last, sizeof(l->last), "%s", ev->message);
    }
}

/*
 * Two services on one arena: A over the untypeds at 0 and 2 MiB (the one at
 * 1 MiB between them is not A's and A never hands it out), B over the one
 * at 1 MiB. Their accounts do not mix, each conserves its own RAM, and
 * destroying A leaves B working and A's untypeds free.
 */
static void test_ram_two_services_with_a_hole_between_pools_stay_apart(void **state)
{
    (void)state;
    capmem_cap_t u[4];
    capmem_arena_t *a = four_untypeds(u);
    capmem_cap_t ra;
    capmem_cap_t rb;
    const capmem_cap_t for_a[2] = {u[0], u[2]};
    assert_ok(capmem_ram_create(a, for_a, 2, NULL, &ra));
    assert_ok(capmem_ram_create(a, &u[1], 1, NULL, &rb));
    CHECK_INVARIANTS(a);
    capmem_ram_info_t ia = info(a, ra);
    capmem_ram_info_t ib = info(a, rb);
    assert_int_equal(ia.quota + ia.donation, 2ull << 20);
    assert_int_equal(ib.quota + ib.donation, 1ull << 20);
    /* A's map shows the hole at 1 MiB as reserved for good. */
    map_log_t m = {0};
    assert_ok(capmem_ram_map(a, ra, log_map, &m));
    assert_int_equal(m.used_at_1m, 1ull << 20);
    /* Quota never moves between the services. */
    assert_err(capmem_ram_transfer(a, ra, rb, 4096), CAPMEM_E_DENIED);
    assert_err(capmem_ram_transfer(a, rb, ra, 4096), CAPMEM_E_DENIED);
    /* A hands out all it has, and none of it lies in B's untyped. */
    capmem_cap_t ds[8];
    int n = 0;
    while (n < 8 && capmem_ram_alloc(a, ra, 256 << 10, &ds[n]) == CAPMEM_OK) {
        capmem_ds_info_t di;
        assert_ok(capmem_ds_info(a, ds[n], &di));
        assert_true(di.phys + di.size <= (1ull << 20) || di.phys >= (2ull << 20));
        n++;
    }
    assert_int_equal(n, 7); /* 2 MiB less the root's 64 KiB donation */
    capmem_cap_t x;
    assert_ok(capmem_ram_alloc(a, rb, 256 << 10, &x));
    CHECK_INVARIANTS(a);
    /* Destroying A: its root's close names no reference account; B is untouched. */
    close_log_t log = {0};
    assert_ok(capmem_arena_set_event_handler(a, log_close, &log));
    ib = info(a, rb);
    assert_ok(capmem_ram_destroy(a, ra));
    assert_int_equal(log.closes, 1);
    assert_non_null(strstr(log.last, "return to \"(none)\""));
    capmem_ram_info_t r;
    assert_err(capmem_ram_info(a, ra, &r), CAPMEM_E_INVALID_CAP);
    capmem_ram_info_t ib2 = info(a, rb);
    assert_memory_equal(&ib2, &ib, sizeof(ib));
    CHECK_INVARIANTS(a);
    /* A's untypeds are childless again: they can be retyped. */
    capmem_retype_attr_t rt = CAPMEM_RETYPE_ATTR_INIT;
    capmem_cap_t fr;
    assert_ok(capmem_untyped_retype(a, u[0], &rt, &fr, 1));
    assert_ok(capmem_untyped_retype(a, u[2], &rt, &fr, 1));
    assert_ok(capmem_ds_free(a, x));
    assert_ok(capmem_ram_destroy(a, rb));
    CHECK_INVARIANTS(a);
    capmem_arena_destroy(a);
}

/*
 * The root account may close once it has no child sessions: the service is
 * then dead, but its pools stay children of their untypeds until those are
 * revoked.
 */
static void test_ram_closed_root_leaves_its_pools_until_the_untyped_is_revoked(void **state)
{
    (void)state;
    capmem_cap_t u[4];
    capmem_arena_t *a = four_untypeds(u);
    capmem_cap_t root;
    assert_ok(capmem_ram_create(a, &u[3], 1, NULL, &root));
    capmem_cap_t child = open_child(&(fixture_t){.arena = a, .root = root}, root, 4096, 0, "c");
    assert_err(capmem_ram_close(a, root), CAPMEM_E_DELETE_FIRST);
    assert_ok(capmem_ram_close(a, child));
    const size_t caps = capmem_cap_count(a);
    assert_ok(capmem_ram_close(a, root));
    assert_int_equal(capmem_cap_count(a), caps - 1);
    capmem_ram_info_t r;
    assert_err(capmem_ram_info(a, root, &r), CAPMEM_E_INVALID_CAP);
    assert_err(capmem_ram_destroy(a, root), CAPMEM_E_INVALID_CAP);
    CHECK_INVARIANTS(a);
    /* The pool still holds the untyped. */
    capmem_untyped_info_t ui;
    assert_ok(capmem_untyped_info(a, u[3], &ui));
    assert_int_equal(ui.children, 1);
    capmem_retype_attr_t rt = CAPMEM_RETYPE_ATTR_INIT;
    capmem_cap_t fr;
    assert_err(capmem_untyped_retype(a, u[3], &rt, &fr, 1), CAPMEM_E_NOT_ENOUGH_MEMORY);
    /* Revoking the untyped releases the pool, and the service with it. */
    assert_ok(capmem_cap_revoke(a, u[3]));
    assert_int_equal(capmem_cap_count(a), caps - 2);
    assert_ok(capmem_untyped_retype(a, u[3], &rt, &fr, 1));
    CHECK_INVARIANTS(a);
    capmem_arena_destroy(a);
}

/* Bad lists of untypeds are refused before anything is claimed. */
static void test_ram_create_refuses_bad_untyped_lists_and_changes_nothing(void **state)
{
    (void)state;
    capmem_cap_t u[4];
    capmem_arena_t *a = four_untypeds(u);
    capmem_cap_t root = CAPMEM_CAP_NULL;
    const size_t caps = capmem_cap_count(a);
    capmem_cap_t many[65];
    for (int i = 0; i < 65; i++) {
        many[i] = u[i % 4];
    }
    assert_err(capmem_ram_create(NULL, u, 1, NULL, &root), CAPMEM_E_INVALID_ARGS);
    assert_err(capmem_ram_create(a, NULL, 1, NULL, &root), CAPMEM_E_INVALID_ARGS);
    assert_err(capmem_ram_create(a, u, 1, NULL, NULL), CAPMEM_E_INVALID_ARGS);
    assert_err(capmem_ram_create(a, many, 65, NULL, &root), CAPMEM_E_INVALID_ARGS);
    /* A stale untyped after a good one: the good one is not claimed. */
    capmem_cap_t gone;
    capmem_retype_attr_t rt = CAPMEM_RETYPE_ATTR_INIT;
    rt.type = CAPMEM_OBJ_UNTYPED;
    rt.size_bits = 19;
    assert_ok(capmem_untyped_retype(a, u[1], &rt, &gone, 1));
    assert_ok(capmem_cap_delete(a, gone));
    const capmem_cap_t stale[2] = {u[0], gone};
    assert_err(capmem_ram_create(a, stale, 2, NULL, &root), CAPMEM_E_INVALID_CAP);
    /* Something that is not an untyped. */
    const capmem_user_type_t t = {.name = "not memory"};
    capmem_cap_t user;
    assert_ok(capmem_cap_create_user(a, &t, NULL, CAPMEM_RIGHTS_ALL, &user));
    const capmem_cap_t wrong[2] = {u[0], user};
    assert_err(capmem_ram_create(a, wrong, 2, NULL, &root), CAPMEM_E_WRONG_TYPE);
    /* An untyped without WRITE. */
    capmem_cap_t ro;
    assert_ok(capmem_cap_mint(a, u[2], CAPMEM_RIGHT_READ | CAPMEM_RIGHT_GRANT, &ro));
    assert_err(capmem_ram_create(a, &ro, 1, NULL, &root), CAPMEM_E_DENIED);
    assert_int_equal(root, CAPMEM_CAP_NULL);
    assert_ok(capmem_cap_delete(a, ro));
    assert_ok(capmem_cap_delete(a, user));
    assert_int_equal(capmem_cap_count(a), caps);
    CHECK_INVARIANTS(a);
    /* u[0] was never claimed; a root capability quota is the one asked for. */
    capmem_ram_attr_t at = CAPMEM_RAM_ATTR_INIT;
    at.root_caps = 100;
    assert_ok(capmem_ram_create(a, &u[0], 1, &at, &root));
    capmem_ram_info_t r = info(a, root);
    assert_int_equal(r.caps_limit, 100);
    assert_ok(capmem_ram_destroy(a, root));
    CHECK_INVARIANTS(a);
    capmem_arena_destroy(a);
}

/* Host failures while creating a service over two pools: clean, nothing claimed. */
static void test_ram_create_over_two_pools_host_failures_leak_nothing(void **state)
{
    (void)state;
    capmem_cap_t u[4];
    capmem_arena_t *a = four_untypeds(u);
    const capmem_cap_t two[2] = {u[0], u[1]};
    const size_t caps = capmem_cap_count(a);
    for (int kind = CAPMEM__HOST_MALLOC; kind <= CAPMEM__HOST_MMAP; kind++) {
        int failures = 0;
        for (uint64_t nth = 1; nth < 16; nth++) {
            capmem_cap_t root = CAPMEM_CAP_NULL;
            capmem__inject_fail((capmem__host_kind_t)kind, nth);
            capmem_err_t e = capmem_ram_create(a, two, 2, NULL, &root);
            capmem__inject_reset();
            if (e == CAPMEM_OK) {
                assert_ok(capmem_ram_destroy(a, root));
                break;
            }
            failures++;
            assert_int_equal(e, CAPMEM_E_HOST_NOMEM);
            assert_int_equal(root, CAPMEM_CAP_NULL);
            assert_int_equal(capmem_cap_count(a), caps);
            CHECK_INVARIANTS(a);
        }
        /* malloc: the state, the service, the allocator and both pools; mmap: the allocator. */
        assert_true(failures >= (kind == CAPMEM__HOST_MALLOC ? 4 : 1));
    }
    capmem_untyped_info_t ui;
    assert_ok(capmem_untyped_info(a, u[1], &ui));
    assert_int_equal(ui.children, 0);
    CHECK_INVARIANTS(a);
    capmem_arena_destroy(a);
}

/* The checker itself needs host memory; without it, it says so and changes nothing. */
static void test_ram_checker_host_failure_is_reported_not_corrupt(void **state)
{
    fixture_t *f = *state;
    capmem_cap_t child = open_child(f, f->root, 1 << 20, 0, "child");
    capmem_cap_t ds;
    assert_ok(capmem_ram_alloc(f->arena, child, 8192, &ds));
    const capmem_ram_info_t before = info(f->arena, child);
    int failures = 0;
    for (uint64_t nth = 1; nth < 16; nth++) {
        char why[160] = "x";
        capmem__inject_fail(CAPMEM__HOST_MALLOC, nth);
        capmem_err_t e = capmem_check(f->arena, why, sizeof(why));
        capmem__inject_reset();
        if (e == CAPMEM_OK) {
            assert_string_equal(why, "");
            break;
        }
        failures++;
        assert_int_equal(e, CAPMEM_E_HOST_NOMEM);
        assert_non_null(strstr(why, "no host memory"));
    }
    /* The RAM layer's table and one per account (root and child) for their lent pages. */
    assert_true(failures >= 3);
    const capmem_ram_info_t after = info(f->arena, child);
    assert_memory_equal(&after, &before, sizeof(after));
    assert_ok(capmem_ds_free(f->arena, ds));
    assert_ok(capmem_ram_close(f->arena, child));
    CHECK_INVARIANTS(f->arena);
}

/* An account overdrawing its capability quota is named by the checker. */
static void test_ram_checker_names_an_overdrawn_capability_quota(void **state)
{
    fixture_t *f = *state;
    capmem_cap_t child = open_child(f, f->root, 1 << 20, 0, "overdrawn");
    capmem__account_t *acc = NULL;
    assert_ok(capmem__account_lookup(f->arena, child, 0, &acc));
    const uint64_t saved = acc->caps.used;
    acc->caps.used = acc->caps.limit + 1;
    char why[256];
    assert_err(capmem_check(f->arena, why, sizeof(why)), CAPMEM_E_CORRUPT);
    char what[96];
    snprintf(what, sizeof(what), "account \"overdrawn\": %llu capabilities charged, quota %llu",
             (unsigned long long)acc->caps.limit + 1, (unsigned long long)acc->caps.limit);
    assert_non_null(strstr(why, what));
    acc->caps.used = saved;
    CHECK_INVARIANTS(f->arena);
    assert_ok(capmem_ram_close(f->arena, child));
}

/* ---- argument checks of open and map ---------------------------------------------- */

static void test_ram_open_refuses_a_bad_upgrade_step_and_changes_nothing(void **state)
{
    fixture_t *f = *state;
    const capmem_ram_info_t before = info(f->arena, f->root);
    const size_t caps = capmem_cap_count(f->arena);
    capmem_ram_open_attr_t at = CAPMEM_RAM_OPEN_ATTR_INIT;
    capmem_cap_t c = CAPMEM_CAP_NULL;
    const uint64_t bad[3] = {0, 100, 4096 + 64}; /* zero, below a page, not a page multiple */
    for (int i = 0; i < 3; i++) {
        at.upgrade_step = bad[i];
        assert_err(capmem_ram_open(f->arena, f->root, &at, &c), CAPMEM_E_INVALID_ARGS);
        assert_non_null(strstr(capmem_last_error()->message, "upgrade step"));
    }
    assert_int_equal(c, CAPMEM_CAP_NULL);
    const capmem_ram_info_t after = info(f->arena, f->root);
    assert_memory_equal(&after, &before, sizeof(after));
    assert_int_equal(capmem_cap_count(f->arena), caps);
    CHECK_INVARIANTS(f->arena);
}

static void test_ram_map_refuses_bad_accounts_and_stops_on_request(void **state)
{
    fixture_t *f = *state;
    capmem_cap_t child = open_child(f, f->root, 1 << 20, 0, "mapped");
    capmem_cap_t ds[3];
    for (int i = 0; i < 3; i++) {
        assert_ok(capmem_ram_alloc(f->arena, child, 4096, &ds[i]));
    }
    assert_ok(capmem_ds_free(f->arena, ds[1])); /* a free block between used ones */
    map_log_t all = {0};
    assert_ok(capmem_ram_map(f->arena, child, log_map, &all));
    assert_true(all.blocks >= 4);
    map_log_t two = {.stop_after = 2};
    assert_ok(capmem_ram_map(f->arena, child, log_map, &two));
    assert_int_equal(two.blocks, 2);
    map_log_t none = {0};
    assert_err(capmem_ram_map(f->arena, ds[1], log_map, &none), CAPMEM_E_INVALID_CAP);
    assert_err(capmem_ram_map(f->arena, ds[0], log_map, &none), CAPMEM_E_WRONG_TYPE);
    assert_err(capmem_ram_map(f->arena, child, NULL, &none), CAPMEM_E_INVALID_ARGS);
    assert_err(capmem_ram_map(NULL, child, log_map, &none), CAPMEM_E_INVALID_ARGS);
    assert_int_equal(none.blocks, 0);
    assert_ok(capmem_ram_close(f->arena, child));
    CHECK_INVARIANTS(f->arena);
}

/*
 * A dataspace that could not be placed anyway is refused before an
 * expanding account upgrades for its record: with the donation full and no
 * contiguous physical range, the answer is OUT_OF_PHYS and neither the
 * donation nor the quota moved.
 */
static void test_ram_full_donation_and_no_phys_range_upgrades_nothing(void **state)
{
    (void)state;
    fixture_t *f = &fx;
    setup_size(state, 1ull << 20);
    /* The root takes every other page of the RAM: no two free pages in a row. */
    capmem_cap_t pages[256];
    unsigned n = 0;
    while (n < 256 && capmem_ram_alloc(f->arena, f->root, 4096, &pages[n]) == CAPMEM_OK) {
        n++;
    }
    assert_int_equal(capmem_last_error()->code, CAPMEM_E_OUT_OF_RAM);
    for (unsigned i = 0; i < n; i += 2) {
        assert_ok(capmem_ds_free(f->arena, pages[i]));
    }
    /* An expanding child whose donation pays for 60 dataspaces, with quota to spare. */
    capmem_ram_open_attr_t oa = CAPMEM_RAM_OPEN_ATTR_INIT;
    oa.quota = 64 * 4096;
    oa.donation = 4096; /* 64 slots: the chunk header, the session record, 60 dataspaces */
    oa.flags = CAPMEM_RAM_EXPANDING;
    oa.caps = 256;
    capmem_cap_t c = CAPMEM_CAP_NULL;
    assert_ok(capmem_ram_open(f->arena, f->root, &oa, &c));
    /* The child fills its donation's records with single pages. */
    capmem_ram_info_t in = info(f->arena, c);
    capmem_cap_t ds;
    for (uint64_t i = in.records_used; i < in.records_capacity; i++) {
        assert_ok(capmem_ram_alloc(f->arena, c, 4096, &ds));
    }
    CHECK_INVARIANTS(f->arena);
    const capmem_ram_info_t full = info(f->arena, c);
    assert_int_equal(full.records_used, full.records_capacity);
    assert_true(full.avail >= 8192 + full.upgrade_step);
    capmem_cap_t x = CAPMEM_CAP_NULL;
    assert_err(capmem_ram_alloc(f->arena, c, 8192, &x), CAPMEM_E_OUT_OF_PHYS);
    assert_int_equal(capmem_last_error()->needed, 8192);
    assert_int_equal(capmem_last_error()->available, 4096);
    assert_int_equal(x, CAPMEM_CAP_NULL);
    const capmem_ram_info_t after = info(f->arena, c);
    assert_memory_equal(&after, &full, sizeof(after));
    assert_int_equal(after.upgrades, 0);
    /*
     * A single page could be placed, so the account tries to upgrade; its
     * 8 KiB chunk finds no range either: OUT_OF_PHYS for the metadata, and
     * again nothing moved.
     */
    assert_err(capmem_ram_alloc(f->arena, c, 4096, &x), CAPMEM_E_OUT_OF_PHYS);
    assert_non_null(strstr(capmem_last_error()->message, "for metadata"));
    assert_int_equal(capmem_last_error()->needed, full.upgrade_step);
    const capmem_ram_info_t again = info(f->arena, c);
    assert_memory_equal(&again, &full, sizeof(again));
    CHECK_INVARIANTS(f->arena);
    teardown(state);
}

/*
 * A full capability table refuses a new service and a new session with
 * OUT_OF_CAPS, even where the capability quota would pay, and changes nothing.
 */
static void test_ram_full_capability_table_refuses_create_and_open(void **state)
{
    (void)state;
    capmem_arena_attr_t aa = CAPMEM_ARENA_ATTR_INIT;
    aa.ram_size = 2ull << 20;
    aa.phys_base = 0;
    aa.cap_slots = 32;
    capmem_arena_t *a = NULL;
    assert_ok(capmem_arena_create(&aa, &a));
    capmem_untyped_info_t boot[4];
    size_t n = 0;
    assert_ok(capmem_untyped_boot(a, boot, 4, &n));
    assert_int_equal(n, 1);
    capmem_cap_t half[2];
    capmem_retype_attr_t rt = CAPMEM_RETYPE_ATTR_INIT;
    rt.type = CAPMEM_OBJ_UNTYPED;
    rt.size_bits = 20;
    rt.count = 2;
    assert_ok(capmem_untyped_retype(a, boot[0].cap, &rt, half, 2));
    capmem_cap_t root;
    assert_ok(capmem_ram_create(a, &half[0], 1, NULL, &root));
    /* Fill the table with user objects: they are charged to no quota. */
    const capmem_user_type_t t = {.name = "filler"};
    capmem_cap_t filler[32];
    size_t k = 0;
    while (k < 32 &&
           capmem_cap_create_user(a, &t, NULL, CAPMEM_RIGHTS_ALL, &filler[k]) == CAPMEM_OK) {
        k++;
    }
    assert_int_equal(capmem_last_error()->code, CAPMEM_E_OUT_OF_CAPS);
    assert_int_equal(capmem_cap_count(a), 31);
    const capmem_ram_info_t before = info(a, root);
    assert_true(before.caps_limit - before.caps_used >= 2); /* the quota would pay */
    capmem_cap_t out = CAPMEM_CAP_NULL;
    capmem_ram_open_attr_t oa = CAPMEM_RAM_OPEN_ATTR_INIT;
    oa.caps = 1;
    assert_err(capmem_ram_open(a, root, &oa, &out), CAPMEM_E_OUT_OF_CAPS);
    assert_non_null(strstr(capmem_last_error()->message, "capability table full"));
    assert_err(capmem_ram_create(a, &half[1], 1, NULL, &out), CAPMEM_E_OUT_OF_CAPS);
    assert_int_equal(capmem_last_error()->needed, 2); /* the pool and the root account */
    assert_int_equal(out, CAPMEM_CAP_NULL);
    const capmem_ram_info_t after = info(a, root);
    assert_memory_equal(&after, &before, sizeof(after));
    assert_int_equal(capmem_cap_count(a), 31);
    CHECK_INVARIANTS(a);
    /* Room again: both work. */
    assert_ok(capmem_cap_delete(a, filler[0]));
    assert_ok(capmem_cap_delete(a, filler[1]));
    assert_ok(capmem_ram_open(a, root, &oa, &out));
    assert_ok(capmem_ram_close(a, out));
    assert_ok(capmem_ram_create(a, &half[1], 1, NULL, &out));
    CHECK_INVARIANTS(a);
    capmem_arena_destroy(a);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_ram_root_holds_all_ram),
        T(test_ram_destroy_closes_everything_and_returns_the_untypeds),
        T(test_ram_destroy_refuses_anything_but_the_roots_original),
        T(test_ram_upgrade_takes_accounts_only),
        T(test_ram_label_keeps_its_first_23_characters),
        cmocka_unit_test(test_ram_create_refuses_an_untyped_with_a_user_policy),
        T(test_ram_default_donation_pays_for_documented_dataspaces),
        T(test_ram_expanding_client_upgrades_in_steps),
        T(test_ram_init_distributes_budget_and_children_are_isolated),
        cmocka_unit_test(test_ram_fragmentation_gives_out_of_phys),
        T(test_ram_transfer_only_with_reference_account),
        T(test_ram_capability_quota),
        T(test_ram_open_and_close_errors_change_nothing),
        T(test_ram_alloc_errors_change_nothing),
        T(test_ram_dataspace_bytes_are_zeroed_and_shared),
        T(test_ram_upgrade_rules),
        cmocka_unit_test(test_ram_host_heap_does_not_grow_with_dataspaces),
        cmocka_unit_test(test_ram_million_live_dataspaces_in_one_session),
        cmocka_unit_test(test_ram_service_over_several_untypeds),
        cmocka_unit_test(test_ram_host_failure_on_create_is_clean),
        cmocka_unit_test(test_ram_create_and_boot_refuse_bad_input),
        cmocka_unit_test(test_ram_open_needs_a_contiguous_donation),
        cmocka_unit_test(test_ram_open_refuses_a_donation_smaller_than_its_record),
        T(test_ram_expanding_client_that_cannot_pay_changes_nothing),
        T(test_ram_transfer_emits_event),
        T(test_ram_freed_records_are_unaddressable_under_valgrind),
        cmocka_unit_test(test_ram_two_services_with_a_hole_between_pools_stay_apart),
        cmocka_unit_test(test_ram_closed_root_leaves_its_pools_until_the_untyped_is_revoked),
        cmocka_unit_test(test_ram_create_refuses_bad_untyped_lists_and_changes_nothing),
        cmocka_unit_test(test_ram_create_over_two_pools_host_failures_leak_nothing),
        T(test_ram_checker_host_failure_is_reported_not_corrupt),
        T(test_ram_checker_names_an_overdrawn_capability_quota),
        T(test_ram_open_refuses_a_bad_upgrade_step_and_changes_nothing),
        T(test_ram_map_refuses_bad_accounts_and_stops_on_request),
        cmocka_unit_test(test_ram_full_donation_and_no_phys_range_upgrades_nothing),
        cmocka_unit_test(test_ram_full_capability_table_refuses_create_and_open),
    };
#undef T
    return cmocka_run_group_tests_name("ram", tests, NULL, NULL);
}
