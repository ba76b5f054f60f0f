/* SPDX-License-Identifier: MIT */
/* Layer 8: space banks: the tree, parallel charges, limits, destroy and remove, restrictions. */
#include <stddef.h>
#include <string.h>

#include "bank_internal.h"
#include "support.h"

#define PAGE 4096ull

typedef struct fixture {
    test_world_t w;
    capmem_cap_t prime;
} fixture_t;

static fixture_t fx;

/* 16 MiB of RAM, a client with 8 MiB, a bank service of 1,024 frames on it. */
static int setup(void **state)
{
    test_world_open(&fx.w, 16ull << 20, 8ull << 20);
    capmem_bank_service_attr_t at = CAPMEM_BANK_SERVICE_ATTR_INIT;
    at.frames = 1024;
    assert_ok(capmem_bank_service_create(fx.w.arena, fx.w.client, &at, &fx.prime));
    CHECK_INVARIANTS(fx.w.arena);
    *state = &fx;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    test_world_close(&f->w);
    return 0;
}

static capmem_bank_info_t info(fixture_t *f, capmem_cap_t bank)
{
    capmem_bank_info_t i;
    assert_ok(capmem_bank_info(f->w.arena, bank, &i));
    return i;
}

static uint64_t frames_used(fixture_t *f, capmem_cap_t bank)
{
    return info(f, bank).used[CAPMEM_BANK_FRAME];
}

static uint64_t nodes_used(fixture_t *f, capmem_cap_t bank)
{
    return info(f, bank).used[CAPMEM_BANK_NODE];
}

static capmem_cap_t child(fixture_t *f, capmem_cap_t parent, uint64_t frames, uint64_t nodes)
{
    capmem_bank_limits_t l = {.limit = {frames, nodes}};
    capmem_cap_t b = CAPMEM_CAP_NULL;
    assert_ok(capmem_bank_create(f->w.arena, parent, &l, &b));
    CHECK_INVARIANTS(f->w.arena);
    return b;
}

static capmem_cap_t frame(fixture_t *f, capmem_cap_t bank)
{
    const capmem_bank_type_t t = CAPMEM_BANK_FRAME;
    capmem_cap_t c = CAPMEM_CAP_NULL;
    assert_ok(capmem_bank_alloc(f->w.arena, bank, &t, 1, &c));
    return c;
}

static void test_bank_service_takes_one_dataspace_of_the_account(void **state)
{
    fixture_t *f = *state;
    capmem_bank_info_t p = info(f, f->prime);
    assert_true(p.is_prime);
    assert_int_equal(p.limit[CAPMEM_BANK_FRAME], 1024);
    assert_int_equal(p.limit[CAPMEM_BANK_NODE], CAPMEM_BANK_UNLIMITED);
    assert_int_equal(p.used[CAPMEM_BANK_FRAME], 0);
    assert_int_equal(p.rights, CAPMEM_BANK_RIGHTS_ALL);
    capmem_ram_info_t r;
    assert_ok(capmem_ram_info(f->w.arena, f->w.client, &r));
    assert_int_equal(r.used, 1024 * PAGE + 64 * 1024); /* frames + donation */
    /* Closing it gives all of it back. */
    assert_ok(capmem_bank_service_destroy(f->w.arena, f->prime));
    assert_ok(capmem_ram_info(f->w.arena, f->w.client, &r));
    assert_int_equal(r.used, 0);
    assert_err(capmem_bank_info(f->w.arena, f->prime, &p), CAPMEM_E_INVALID_CAP);
    CHECK_INVARIANTS(f->w.arena);
}

static void test_bank_service_bad_input_changes_nothing(void **state)
{
    fixture_t *f = *state;
    capmem_arena_t *a = f->w.arena;
    capmem_ram_info_t before, after;
    assert_ok(capmem_ram_info(a, f->w.client, &before));
    capmem_bank_service_attr_t at = CAPMEM_BANK_SERVICE_ATTR_INIT;
    capmem_cap_t p2 = CAPMEM_CAP_NULL;
    assert_err(capmem_bank_service_create(NULL, f->w.client, &at, &p2), CAPMEM_E_INVALID_ARGS);
    assert_err(capmem_bank_service_create(a, f->w.client, NULL, &p2), CAPMEM_E_INVALID_ARGS);
    assert_err(capmem_bank_service_create(a, f->w.client, &at, NULL), CAPMEM_E_INVALID_ARGS);
    at.donation = 100;
    assert_err(capmem_bank_service_create(a, f->w.client, &at, &p2), CAPMEM_E_INVALID_ARGS);
    at.donation = 64 * 1024;
    assert_err(capmem_bank_service_create(a, f->prime, &at, &p2), CAPMEM_E_WRONG_TYPE);
    assert_err(capmem_bank_service_create(a, f->w.client, &at, &p2), CAPMEM_E_DENIED); /* one */
    assert_err(capmem_bank_service_destroy(a, CAPMEM_CAP_NULL), CAPMEM_E_INVALID_CAP);
    capmem_cap_t sub = child(f, f->prime, 10, 10);
    assert_err(capmem_bank_service_destroy(a, sub), CAPMEM_E_INVALID_ARGS);
    capmem_cap_t copy = CAPMEM_CAP_NULL;
    assert_ok(capmem_bank_restrict(a, f->prime, 0, &copy));
    assert_err(capmem_bank_service_destroy(a, copy), CAPMEM_E_INVALID_ARGS);
    assert_ok(capmem_ram_info(a, f->w.client, &after));
    assert_int_equal(after.used, before.used);
    CHECK_INVARIANTS(a);
    /* Too many frames for the account: OUT_OF_RAM, nothing taken. */
    assert_ok(capmem_bank_service_destroy(a, f->prime));
    at.frames = 4096;
    assert_err(capmem_bank_service_create(a, f->w.client, &at, &p2), CAPMEM_E_OUT_OF_RAM);
    assert_ok(capmem_ram_info(a, f->w.client, &after));
    assert_int_equal(after.used, 0);
    /* frames 0 takes all the account can pay. */
    at.frames = 0;
    assert_ok(capmem_bank_service_create(a, f->w.client, &at, &f->prime));
    assert_int_equal(info(f, f->prime).limit[CAPMEM_BANK_FRAME], (8ull << 20) / PAGE - 16);
    CHECK_INVARIANTS(a);
}

/* Charges go to every ancestor; the most constraining limit wins, all or nothing. */
static void test_bank_charges_every_ancestor_and_tightest_limit_wins(void **state)
{
    fixture_t *f = *state;
    capmem_arena_t *a = f->w.arena;
    capmem_cap_t users = child(f, f->prime, 10, CAPMEM_BANK_UNLIMITED);
    capmem_cap_t app = child(f, users, CAPMEM_BANK_UNLIMITED, CAPMEM_BANK_UNLIMITED);
    assert_int_equal(nodes_used(f, f->prime), 2); /* the two bank records */
    assert_int_equal(nodes_used(f, users), 1);
    for (int i = 0; i < 8; i++) {
        (void)frame(f, app);
        CHECK_INVARIANTS(a);
    }
    assert_int_equal(frames_used(f, app), 8);
    assert_int_equal(frames_used(f, users), 8);
    assert_int_equal(frames_used(f, f->prime), 8);
    capmem_bank_info_t ai = info(f, app);
    assert_int_equal(ai.avail[CAPMEM_BANK_FRAME], 2);
    assert_int_equal(ai.effective[CAPMEM_BANK_FRAME], 10);
    /* Nodes are unlimited on app and every ancestor: unlimited, not 2^64 - 1 minus the usage. */
    assert_true(info(f, f->prime).used[CAPMEM_BANK_NODE] > 0);
    assert_true(ai.effective[CAPMEM_BANK_NODE] == CAPMEM_BANK_UNLIMITED);
    assert_true(ai.avail[CAPMEM_BANK_NODE] == CAPMEM_BANK_UNLIMITED);
    assert_true(info(f, users).effective[CAPMEM_BANK_NODE] == CAPMEM_BANK_UNLIMITED);
    /* The prime bank's frames are limited: its effective frame limit is that limit. */
    assert_int_equal(info(f, f->prime).effective[CAPMEM_BANK_FRAME],
                     info(f, f->prime).limit[CAPMEM_BANK_FRAME]);
    /* Three frames where two fit: LIMIT_REACHED, nothing charged anywhere. */
    const capmem_bank_type_t three[3] = {CAPMEM_BANK_FRAME, CAPMEM_BANK_FRAME, CAPMEM_BANK_FRAME};
    capmem_cap_t out[3] = {0};
    assert_err(capmem_bank_alloc(a, app, three, 3, out), CAPMEM_E_LIMIT_REACHED);
    assert_int_equal(capmem_last_error()->needed, 3);
    assert_int_equal(capmem_last_error()->available, 2);
    assert_int_equal(out[0], CAPMEM_CAP_NULL);
    assert_int_equal(frames_used(f, app), 8);
    assert_int_equal(frames_used(f, f->prime), 8);
    CHECK_INVARIANTS(a);
    /* A frame and a node: both, in one call. */
    const capmem_bank_type_t mix[2] = {CAPMEM_BANK_FRAME, CAPMEM_BANK_NODE};
    assert_ok(capmem_bank_alloc(a, app, mix, 2, out));
    assert_int_equal(capmem_cap_type(out[0]), CAPMEM_OBJ_DATASPACE);
    assert_int_equal(capmem_cap_type(out[1]), CAPMEM_OBJ_BANK_NODE);
    assert_int_equal(nodes_used(f, app), 1);
    assert_int_equal(nodes_used(f, f->prime), 3);
    CHECK_INVARIANTS(a);
}

static void test_bank_alloc_bad_input_changes_nothing(void **state)
{
    fixture_t *f = *state;
    capmem_arena_t *a = f->w.arena;
    const capmem_bank_type_t t[4] = {CAPMEM_BANK_FRAME, CAPMEM_BANK_FRAME, CAPMEM_BANK_FRAME,
                                     CAPMEM_BANK_FRAME};
    capmem_cap_t out[4];
    assert_err(capmem_bank_alloc(a, f->prime, t, 0, out), CAPMEM_E_RANGE);
    assert_err(capmem_bank_alloc(a, f->prime, t, 4, out), CAPMEM_E_RANGE);
    assert_err(capmem_bank_alloc(a, f->prime, NULL, 1, out), CAPMEM_E_INVALID_ARGS);
    assert_err(capmem_bank_alloc(a, f->prime, t, 1, NULL), CAPMEM_E_INVALID_ARGS);
    const capmem_bank_type_t bad = (capmem_bank_type_t)5;
    assert_err(capmem_bank_alloc(a, f->prime, &bad, 1, out), CAPMEM_E_INVALID_ARGS);
    assert_err(capmem_bank_alloc(a, f->w.client, t, 1, out), CAPMEM_E_WRONG_TYPE);
    assert_err(capmem_bank_alloc(a, f->prime + 1, t, 1, out), CAPMEM_E_INVALID_CAP);
    assert_int_equal(frames_used(f, f->prime), 0);
    assert_err(capmem_bank_create(a, f->prime, NULL, NULL), CAPMEM_E_INVALID_ARGS);
    assert_err(capmem_bank_info(a, f->prime, NULL), CAPMEM_E_INVALID_ARGS);
    /* A node limit of 0 refuses sub-banks: their records are nodes. */
    capmem_cap_t tight = child(f, f->prime, 5, 0);
    capmem_cap_t sub = CAPMEM_CAP_NULL;
    assert_err(capmem_bank_create(a, tight, NULL, &sub), CAPMEM_E_LIMIT_REACHED);
    assert_int_equal(info(f, tight).children, 0);
    CHECK_INVARIANTS(a);
}

/* Free: the owning bank only; a foreign object is refused; all or nothing. */
static void test_bank_free_needs_the_owning_bank(void **state)
{
    fixture_t *f = *state;
    capmem_arena_t *a = f->w.arena;
    capmem_cap_t b1 = child(f, f->prime, 100, 100);
    capmem_cap_t b2 = child(f, f->prime, 100, 100);
    capmem_cap_t x = frame(f, b1);
    capmem_cap_t y = frame(f, b2);
    capmem_cap_t ram = CAPMEM_CAP_NULL;
    assert_ok(capmem_ram_alloc(a, f->w.client, PAGE, &ram));
    capmem_cap_t list[3] = {x, y, 0};
    assert_err(capmem_bank_free(a, b1, list, 2), CAPMEM_E_DENIED); /* y is b2's */
    list[1] = ram;
    assert_err(capmem_bank_free(a, b1, list, 2), CAPMEM_E_WRONG_TYPE); /* a foreign free */
    list[1] = x;
    assert_err(capmem_bank_free(a, b1, list, 2), CAPMEM_E_INVALID_ARGS); /* twice */
    assert_err(capmem_bank_free(a, b1, list, 0), CAPMEM_E_RANGE);
    assert_err(capmem_bank_free(a, b1, list, 4), CAPMEM_E_RANGE);
    assert_err(capmem_bank_free(a, b1, NULL, 1), CAPMEM_E_INVALID_ARGS);
    assert_int_equal(frames_used(f, b1), 1);
    assert_int_equal(frames_used(f, b2), 1);
    bool owns = false;
    assert_ok(capmem_bank_owns(a, b1, x, &owns));
    assert_true(owns);
    assert_ok(capmem_bank_owns(a, b1, y, &owns));
    assert_false(owns);
    assert_err(capmem_bank_owns(a, b1, ram, &owns), CAPMEM_E_WRONG_TYPE);
    CHECK_INVARIANTS(a);
    assert_ok(capmem_bank_free(a, b1, &x, 1));
    assert_int_equal(frames_used(f, b1), 0);
    assert_int_equal(frames_used(f, f->prime), 1);
    assert_err(capmem_bank_free(a, b1, &x, 1), CAPMEM_E_INVALID_CAP); /* gone */
    CHECK_INVARIANTS(a);
}

/* Destroy: the subtree's objects go, every ancestor falls by its usage, capabilities die. */
static void test_bank_destroy_frees_the_subtree(void **state)
{
    fixture_t *f = *state;
    capmem_arena_t *a = f->w.arena;
    capmem_cap_t top = child(f, f->prime, 100, 100);
    capmem_cap_t mid = child(f, top, 100, 100);
    capmem_cap_t leaf = child(f, mid, 100, 100);
    capmem_cap_t keep = frame(f, top);
    capmem_cap_t m1 = frame(f, mid);
    capmem_cap_t l1 = frame(f, leaf);
    capmem_cap_t l2 = frame(f, leaf);
    capmem_cap_t weak = CAPMEM_CAP_NULL;
    assert_ok(capmem_bank_restrict(a, leaf, CAPMEM_BANK_NO_DESTROY, &weak));
    const capmem_bank_info_t mi = info(f, mid);
    assert_int_equal(mi.used[CAPMEM_BANK_FRAME], 3);
    assert_int_equal(mi.used[CAPMEM_BANK_NODE], 1);
    const uint64_t top_frames = frames_used(f, top);
    const uint64_t top_nodes = nodes_used(f, top);
    assert_ok(capmem_bank_destroy(a, mid));
    /* Lower by the subtree's usage (3 frames, 1 node) plus mid's own record (1 node). */
    assert_int_equal(frames_used(f, top), top_frames - 3);
    assert_int_equal(nodes_used(f, top), top_nodes - 2);
    assert_int_equal(frames_used(f, f->prime), 1);
    capmem_ds_info_t di;
    assert_err(capmem_ds_info(a, m1, &di), CAPMEM_E_INVALID_CAP);
    assert_err(capmem_ds_info(a, l1, &di), CAPMEM_E_INVALID_CAP);
    assert_err(capmem_ds_info(a, l2, &di), CAPMEM_E_INVALID_CAP);
    capmem_bank_info_t bi;
    assert_err(capmem_bank_info(a, leaf, &bi), CAPMEM_E_INVALID_CAP);
    assert_err(capmem_bank_info(a, weak, &bi), CAPMEM_E_INVALID_CAP);
    assert_ok(capmem_ds_info(a, keep, &di));
    CHECK_INVARIANTS(a);
    /* The prime bank is not destroyed this way. */
    assert_err(capmem_bank_destroy(a, f->prime), CAPMEM_E_DENIED);
    assert_err(capmem_bank_remove(a, f->prime), CAPMEM_E_DENIED);
    CHECK_INVARIANTS(a);
}

/* Remove: objects and sub-banks go to the parent with no re-accounting. */
static void test_bank_remove_hands_everything_to_the_parent(void **state)
{
    fixture_t *f = *state;
    capmem_arena_t *a = f->w.arena;
    capmem_cap_t top = child(f, f->prime, 100, 100);
    capmem_cap_t mid = child(f, top, 100, 100);
    capmem_cap_t leaf = child(f, mid, 100, 100);
    capmem_cap_t m1 = frame(f, mid);
    capmem_cap_t l1 = frame(f, leaf);
    const uint64_t tf = frames_used(f, top);
    const uint64_t tn = nodes_used(f, top);
    const uint64_t pf = frames_used(f, f->prime);
    assert_ok(capmem_bank_remove(a, mid));
    assert_int_equal(frames_used(f, top), tf);
    assert_int_equal(nodes_used(f, top), tn - 1); /* only mid's own record went */
    assert_int_equal(frames_used(f, f->prime), pf);
    bool owns = false;
    assert_ok(capmem_bank_owns(a, top, m1, &owns));
    assert_true(owns);
    assert_ok(capmem_bank_owns(a, leaf, l1, &owns));
    assert_true(owns);
    capmem_bank_info_t li = info(f, leaf);
    assert_int_equal(li.depth, 2);
    assert_int_equal(info(f, top).children, 1);
    CHECK_INVARIANTS(a);
    assert_ok(capmem_bank_free(a, top, &m1, 1)); /* the parent frees it now */
    CHECK_INVARIANTS(a);
}

static void test_bank_set_limits_never_below_usage(void **state)
{
    fixture_t *f = *state;
    capmem_arena_t *a = f->w.arena;
    capmem_cap_t b = child(f, f->prime, 5, 5);
    (void)frame(f, b);
    (void)frame(f, b);
    capmem_bank_limits_t l = {.limit = {1, 5}};
    assert_err(capmem_bank_set_limits(a, b, &l), CAPMEM_E_RANGE);
    assert_int_equal(capmem_last_error()->bound_min, 2);
    assert_int_equal(info(f, b).limit[CAPMEM_BANK_FRAME], 5);
    assert_err(capmem_bank_set_limits(a, b, NULL), CAPMEM_E_INVALID_ARGS);
    assert_err(capmem_bank_set_limits(a, f->prime, &l), CAPMEM_E_DENIED);
    l.limit[0] = 2;
    assert_ok(capmem_bank_set_limits(a, b, &l));
    capmem_cap_t c = CAPMEM_CAP_NULL;
    const capmem_bank_type_t t = CAPMEM_BANK_FRAME;
    assert_err(capmem_bank_alloc(a, b, &t, 1, &c), CAPMEM_E_LIMIT_REACHED);
    CHECK_INVARIANTS(a);
}

/* Each restriction takes away exactly its operation. */
static void test_bank_restrictions_are_rights(void **state)
{
    fixture_t *f = *state;
    capmem_arena_t *a = f->w.arena;
    capmem_cap_t b = child(f, f->prime, 50, 50);
    capmem_cap_t fr = frame(f, b);
    capmem_cap_t r = CAPMEM_CAP_NULL;
    const capmem_bank_type_t t = CAPMEM_BANK_FRAME;
    capmem_cap_t c = CAPMEM_CAP_NULL;
    capmem_bank_limits_t l = {.limit = {50, 50}};
    capmem_bank_info_t bi;
    assert_ok(capmem_bank_restrict(a, b, CAPMEM_BANK_NO_ALLOC, &r));
    assert_err(capmem_bank_alloc(a, r, &t, 1, &c), CAPMEM_E_DENIED);
    assert_err(capmem_bank_create(a, r, NULL, &c), CAPMEM_E_DENIED);
    assert_ok(capmem_bank_restrict(a, b, CAPMEM_BANK_NO_FREE, &r));
    assert_err(capmem_bank_free(a, r, &fr, 1), CAPMEM_E_DENIED);
    assert_ok(capmem_bank_restrict(a, b, CAPMEM_BANK_NO_QUERY_LIMITS, &r));
    assert_err(capmem_bank_info(a, r, &bi), CAPMEM_E_DENIED);
    assert_ok(capmem_bank_restrict(a, b, CAPMEM_BANK_NO_CHANGE_LIMITS, &r));
    assert_err(capmem_bank_set_limits(a, r, &l), CAPMEM_E_DENIED);
    assert_ok(capmem_bank_restrict(a, b, CAPMEM_BANK_NO_REMOVE, &r));
    assert_err(capmem_bank_remove(a, r), CAPMEM_E_DENIED);
    capmem_cap_t nd = CAPMEM_CAP_NULL;
    assert_ok(capmem_bank_restrict(a, r, CAPMEM_BANK_NO_DESTROY, &nd));
    assert_err(capmem_bank_destroy(a, nd), CAPMEM_E_DENIED);
    assert_int_equal(info(f, b).rights, CAPMEM_BANK_RIGHTS_ALL);
    /* Rights never grow: a mint asking back a removed right is refused. */
    assert_err(capmem_cap_mint(a, nd, CAPMEM_BANK_RIGHT_DESTROY, &c), CAPMEM_E_DENIED);
    assert_ok(capmem_cap_mint(a, nd, CAPMEM_BANK_RIGHT_QUERY, &c));
    assert_ok(capmem_bank_info(a, c, &bi));
    assert_int_equal(bi.rights, CAPMEM_BANK_RIGHT_QUERY);
    assert_err(capmem_bank_restrict(a, b, 0x80, &r), CAPMEM_E_INVALID_ARGS);
    assert_err(capmem_bank_restrict(a, b, CAPMEM_RIGHT_GRANT, &r), CAPMEM_E_INVALID_ARGS);
    assert_err(capmem_bank_restrict(a, b, 0, NULL), CAPMEM_E_INVALID_ARGS);
    assert_int_equal(frames_used(f, b), 1);
    CHECK_INVARIANTS(a);
}

/* A bank's frame is a dataspace: bytes, region maps; only its bank frees it. */
static void test_bank_frames_are_dataspaces(void **state)
{
    fixture_t *f = *state;
    capmem_arena_t *a = f->w.arena;
    capmem_cap_t fr = frame(f, f->prime);
    capmem_ds_info_t di;
    assert_ok(capmem_ds_info(a, fr, &di));
    assert_int_equal(di.kind, CAPMEM_DS_BANK_FRAME);
    assert_int_equal(di.size, PAGE);
    assert_ok(capmem_ds_write(a, fr, 8, "bank", 5));
    capmem_rm_open_attr_t ro = CAPMEM_RM_OPEN_ATTR_INIT;
    ro.size = 16 * PAGE;
    capmem_cap_t rm = CAPMEM_CAP_NULL;
    assert_ok(capmem_rm_open(a, f->w.client, &ro, &rm));
    capmem_rm_attach_attr_t at = CAPMEM_RM_ATTACH_ATTR_INIT;
    uint64_t addr = 0;
    assert_ok(capmem_rm_attach(a, rm, fr, &at, &addr));
    char buf[5] = {0};
    assert_ok(capmem_rm_read(a, rm, addr + 8, buf, 5));
    assert_string_equal(buf, "bank");
    assert_err(capmem_ds_free(a, fr), CAPMEM_E_WRONG_TYPE);
    capmem_alias_attr_t aa = CAPMEM_ALIAS_ATTR_INIT;
    capmem_cap_t al = CAPMEM_CAP_NULL;
    assert_err(capmem_ds_alias(a, f->w.client, fr, &aa, &al), CAPMEM_E_WRONG_TYPE);
    CHECK_INVARIANTS(a);
    /* Freed by its bank: detached everywhere. */
    assert_ok(capmem_bank_free(a, f->prime, &fr, 1));
    assert_err(capmem_rm_read(a, rm, addr + 8, buf, 5), CAPMEM_E_UNRESOLVED_FAULT);
    CHECK_INVARIANTS(a);
    /* Deleting an object's original capability frees it as its bank would. */
    capmem_cap_t n = CAPMEM_CAP_NULL;
    const capmem_bank_type_t nt = CAPMEM_BANK_NODE;
    assert_ok(capmem_bank_alloc(a, f->prime, &nt, 1, &n));
    assert_int_equal(nodes_used(f, f->prime), 1);
    assert_ok(capmem_cap_delete(a, n));
    assert_int_equal(nodes_used(f, f->prime), 0);
    CHECK_INVARIANTS(a);
}

/* Closing the account under the service tears the banks down with it. */
static void test_bank_account_close_takes_the_service(void **state)
{
    fixture_t *f = *state;
    capmem_arena_t *a = f->w.arena;
    capmem_cap_t b = child(f, f->prime, 10, 10);
    (void)frame(f, b);
    (void)frame(f, f->prime);
    assert_ok(capmem_ram_close(a, f->w.client));
    capmem_bank_info_t bi;
    assert_err(capmem_bank_info(a, f->prime, &bi), CAPMEM_E_INVALID_CAP);
    f->w.client = CAPMEM_CAP_NULL;
    CHECK_INVARIANTS(a);
}

typedef struct ds_list {
    capmem_cap_t cap[16];
    size_t n;
} ds_list_t;

/* The dataspaces right under an account. */
static int list_ds(const capmem_cap_info_t *ci, unsigned depth, void *ctx)
{
    ds_list_t *l = ctx;
    if (depth == 1 && ci->type == CAPMEM_OBJ_DATASPACE && l->n < 16) {
        l->cap[l->n++] = ci->cap;
    }
    return 0;
}

/* Nothing changed: the prime bank, the account and the stats are as before. */
typedef struct upgrade_view {
    capmem_bank_info_t bank;
    capmem_ram_info_t ram;
    capmem_stats_t stats;
} upgrade_view_t;

static upgrade_view_t upgrade_view(fixture_t *f)
{
    upgrade_view_t v;
    memset(&v, 0, sizeof(v));
    v.bank = info(f, f->prime);
    assert_ok(capmem_ram_info(f->w.arena, f->w.client, &v.ram));
    v.stats.size = sizeof(v.stats);
    assert_ok(capmem_stats(f->w.arena, &v.stats));
    return v;
}

static void same_view(fixture_t *f, const upgrade_view_t *before)
{
    upgrade_view_t now = upgrade_view(f);
    assert_memory_equal(&now.bank, &before->bank, sizeof(now.bank));
    assert_memory_equal(&now.ram, &before->ram, sizeof(now.ram));
    assert_int_equal(now.stats.upgrades, before->stats.upgrades);
    assert_int_equal(now.stats.dataspaces.current, before->stats.dataspaces.current);
}

/*
 * A full record slab refuses with OUT_OF_METADATA; the service's account
 * upgrades the donation (one more dataspace of its quota) and the records
 * come back. Each bad upgrade changes nothing; the upgrades go with the
 * service.
 */
static void test_bank_service_upgrade_adds_records(void **state)
{
    fixture_t *f = *state;
    capmem_arena_t *a = f->w.arena;
    const capmem_bank_type_t t = CAPMEM_BANK_NODE;
    capmem_cap_t n = CAPMEM_CAP_NULL;
    unsigned made = 0;
    while (capmem_bank_alloc(a, f->prime, &t, 1, &n) == CAPMEM_OK) {
        made++;
    }
    assert_int_equal(capmem_last_error()->code, CAPMEM_E_OUT_OF_METADATA);
    /* 64 KiB of records: 1,024 slots - a chunk header - 5 for the service = 1,018 nodes. */
    assert_int_equal(made, 1018);
    CHECK_INVARIANTS(a);
    upgrade_view_t before = upgrade_view(f);
    /* Bad upgrades: each gets its error and changes nothing. */
    assert_err(capmem_bank_service_upgrade(NULL, f->prime, f->w.client, PAGE),
               CAPMEM_E_INVALID_ARGS);
    assert_err(capmem_bank_service_upgrade(a, f->prime, f->w.client, 0), CAPMEM_E_INVALID_ARGS);
    assert_err(capmem_bank_service_upgrade(a, f->prime, f->w.client, 100), CAPMEM_E_INVALID_ARGS);
    assert_err(capmem_bank_service_upgrade(a, f->w.client, f->w.client, PAGE), CAPMEM_E_WRONG_TYPE);
    assert_err(capmem_bank_service_upgrade(a, f->prime, f->prime, PAGE), CAPMEM_E_WRONG_TYPE);
    assert_err(capmem_bank_service_upgrade(a, f->prime, f->w.root, PAGE), CAPMEM_E_DENIED);
    assert_err(capmem_bank_service_upgrade(a, f->prime, f->w.client, 64ull << 20),
               CAPMEM_E_OUT_OF_RAM);
    same_view(f, &before);
    CHECK_INVARIANTS(a);
    /* A sub-bank is not the service (made after a first upgrade: the slab was full). */
    assert_ok(capmem_bank_service_upgrade(a, f->prime, f->w.client, PAGE));
    upgrade_view_t after = upgrade_view(f);
    assert_int_equal(after.ram.used, before.ram.used + PAGE); /* the account pays */
    assert_int_equal(after.stats.upgrades, before.stats.upgrades + 1);
    assert_int_equal(after.bank.limit[CAPMEM_BANK_FRAME], before.bank.limit[CAPMEM_BANK_FRAME]);
    CHECK_INVARIANTS(a);
    capmem_cap_t sub = child(f, f->prime, 10, 10);
    before = upgrade_view(f);
    assert_err(capmem_bank_service_upgrade(a, sub, f->w.client, PAGE), CAPMEM_E_INVALID_ARGS);
    same_view(f, &before);
    /* 4 KiB more: 64 slots - a header = 63 records, one of them the sub-bank's. */
    made = 0;
    while (capmem_bank_alloc(a, f->prime, &t, 1, &n) == CAPMEM_OK) {
        made++;
    }
    assert_int_equal(capmem_last_error()->code, CAPMEM_E_OUT_OF_METADATA);
    assert_int_equal(made, 62);
    CHECK_INVARIANTS(a);
    /* At most CAPMEM_BANK_SERVICE_UPGRADES upgrades. */
    for (unsigned i = 1; i < CAPMEM_BANK_SERVICE_UPGRADES; i++) {
        assert_ok(capmem_bank_service_upgrade(a, f->prime, f->w.client, PAGE));
    }
    before = upgrade_view(f);
    assert_err(capmem_bank_service_upgrade(a, f->prime, f->w.client, PAGE), CAPMEM_E_RANGE);
    same_view(f, &before);
    CHECK_INVARIANTS(a);
    /* The upgrades' dataspaces cannot be deleted alone; they go with the service. */
    ds_list_t dl = {0};
    assert_ok(capmem_cap_walk(a, f->w.client, list_ds, &dl));
    assert_int_equal(dl.n, 1 + CAPMEM_BANK_SERVICE_UPGRADES); /* the service's and the upgrades' */
    before = upgrade_view(f);
    unsigned refused = 0;
    for (size_t i = 0; i < dl.n; i++) {
        capmem_err_t err = capmem_cap_delete(a, dl.cap[i]);
        assert_true(err == CAPMEM_E_DELETE_FIRST || err == CAPMEM_E_REVOKE_FIRST);
        if (err == CAPMEM_E_DELETE_FIRST) {
            refused++;
            /* Freeing an upgrade's dataspace is refused the same way. */
            assert_err(capmem_ds_free(a, dl.cap[i]), CAPMEM_E_DELETE_FIRST);
        }
    }
    assert_int_equal(refused, CAPMEM_BANK_SERVICE_UPGRADES);
    same_view(f, &before);
    CHECK_INVARIANTS(a);
    capmem_ram_info_t ri;
    assert_ok(capmem_bank_service_destroy(a, f->prime));
    assert_ok(capmem_ram_info(a, f->w.client, &ri));
    assert_int_equal(ri.used, 0);
    CHECK_INVARIANTS(a);
    /* Closing the account takes a service and its upgrades alike. */
    capmem_bank_service_attr_t at = CAPMEM_BANK_SERVICE_ATTR_INIT;
    at.frames = 16;
    assert_ok(capmem_bank_service_create(a, f->w.client, &at, &f->prime));
    assert_ok(capmem_bank_service_upgrade(a, f->prime, f->w.client, 2 * PAGE));
    (void)child(f, f->prime, 4, 4);
    CHECK_INVARIANTS(a);
    assert_ok(capmem_ram_close(a, f->w.client));
    f->w.client = CAPMEM_CAP_NULL;
    CHECK_INVARIANTS(a);
}

typedef struct seen {
    unsigned kinds[CAPMEM_EVENT_KIND_COUNT];
} seen_t;

static void on_event(capmem_arena_t *arena, const capmem_event_t *ev, void *ctx)
{
    (void)arena;
    seen_t *s = ctx;
    s->kinds[ev->kind]++;
}

static void test_bank_operations_raise_events(void **state)
{
    fixture_t *f = *state;
    capmem_arena_t *a = f->w.arena;
    seen_t s = {{0}};
    capmem_subscription_t sub = 0;
    assert_ok(capmem_subscribe(
        a,
        CAPMEM_EVENT_MASK(CAPMEM_EVENT_MINT) | CAPMEM_EVENT_MASK(CAPMEM_EVENT_BANK) |
            CAPMEM_EVENT_MASK(CAPMEM_EVENT_BANK_ALLOC) | CAPMEM_EVENT_MASK(CAPMEM_EVENT_BANK_FREE),
        on_event, &s, &sub));
    capmem_cap_t b = child(f, f->prime, 10, 10); /* BANK create */
    capmem_cap_t fr = frame(f, b);               /* BANK_ALLOC */
    assert_ok(capmem_bank_free(a, b, &fr, 1));   /* BANK_FREE */
    capmem_bank_limits_t l = {.limit = {5, 5}};
    assert_ok(capmem_bank_set_limits(a, b, &l)); /* BANK limits */
    (void)frame(f, b);
    assert_ok(capmem_bank_destroy(a, b)); /* BANK destroy + BANK_FREE */
    assert_int_equal(s.kinds[CAPMEM_EVENT_BANK], 3);
    assert_int_equal(s.kinds[CAPMEM_EVENT_BANK_ALLOC], 2);
    assert_int_equal(s.kinds[CAPMEM_EVENT_BANK_FREE], 2);
    capmem_cap_t r = CAPMEM_CAP_NULL;
    assert_ok(capmem_bank_restrict(a, f->prime, CAPMEM_BANK_NO_DESTROY, &r));
    assert_int_equal(s.kinds[CAPMEM_EVENT_MINT], 1);
    assert_ok(capmem_unsubscribe(a, sub));
}

/* Running out of records, capabilities or host memory: the error, and nothing changed. */
static void test_bank_resource_errors_change_nothing(void **state)
{
    fixture_t *f = *state;
    capmem_arena_t *a = f->w.arena;
    /* Records: a one-page donation holds 64 - 1 - 5 = 58 records. */
    assert_ok(capmem_bank_service_destroy(a, f->prime));
    capmem_bank_service_attr_t sa = CAPMEM_BANK_SERVICE_ATTR_INIT;
    sa.donation = PAGE;
    sa.frames = 8;
    assert_ok(capmem_bank_service_create(a, f->w.client, &sa, &f->prime));
    const capmem_bank_type_t node = CAPMEM_BANK_NODE;
    capmem_cap_t c = CAPMEM_CAP_NULL;
    for (int i = 0; i < 58; i++) {
        assert_ok(capmem_bank_alloc(a, f->prime, &node, 1, &c));
    }
    assert_err(capmem_bank_alloc(a, f->prime, &node, 1, &c), CAPMEM_E_OUT_OF_METADATA);
    assert_err(capmem_bank_create(a, f->prime, NULL, &c), CAPMEM_E_OUT_OF_METADATA);
    assert_int_equal(nodes_used(f, f->prime), 58);
    CHECK_INVARIANTS(a);
    assert_ok(capmem_bank_service_destroy(a, f->prime));

    /* Capabilities: an account with 4 pays 2 for the service, then 2 frames. */
    capmem_ram_open_attr_t ro = CAPMEM_RAM_OPEN_ATTR_INIT;
    ro.quota = 1ull << 20;
    ro.caps = 4;
    capmem_cap_t small = CAPMEM_CAP_NULL;
    assert_ok(capmem_ram_open(a, f->w.client, &ro, &small));
    sa.donation = 16 * 1024;
    capmem_cap_t p2 = CAPMEM_CAP_NULL;
    assert_ok(capmem_bank_service_create(a, small, &sa, &p2));
    const capmem_bank_type_t two[2] = {CAPMEM_BANK_FRAME, CAPMEM_BANK_FRAME};
    capmem_cap_t out[3];
    assert_ok(capmem_bank_alloc(a, p2, two, 2, out));
    assert_err(capmem_bank_alloc(a, p2, two, 1, out), CAPMEM_E_OUT_OF_CAPS);
    assert_err(capmem_bank_create(a, p2, NULL, &c), CAPMEM_E_OUT_OF_CAPS);
    assert_err(capmem_bank_restrict(a, p2, CAPMEM_BANK_NO_FREE, &c), CAPMEM_E_OUT_OF_CAPS);
    capmem_bank_info_t bi;
    assert_ok(capmem_bank_info(a, p2, &bi));
    assert_int_equal(bi.used[CAPMEM_BANK_FRAME], 2);
    assert_int_equal(bi.children, 0);
    CHECK_INVARIANTS(a);
    assert_ok(capmem_bank_service_destroy(a, p2));
    /* Too few capabilities for the service itself. */
    assert_err(capmem_bank_alloc(a, f->prime, two, 1, out), CAPMEM_E_INVALID_CAP); /* closed */
    capmem_ram_info_t ri;
    assert_ok(capmem_ram_transfer_caps(a, small, f->w.client, 3));
    assert_ok(capmem_ram_info(a, small, &ri));
    assert_err(capmem_bank_service_create(a, small, &sa, &p2), CAPMEM_E_OUT_OF_CAPS);
    capmem_ram_info_t ri2;
    assert_ok(capmem_ram_info(a, small, &ri2));
    assert_int_equal(ri2.used, ri.used);
    CHECK_INVARIANTS(a);

    /* Host memory: each host allocation of the service's creation fails in turn. */
    capmem_ram_info_t before;
    assert_ok(capmem_ram_info(a, f->w.client, &before));
    int failures = 0;
    for (int kind = CAPMEM__HOST_MALLOC; kind <= CAPMEM__HOST_MMAP; kind++) {
        for (uint64_t nth = 1;; nth++) {
            capmem__inject_reset();
            capmem__inject_fail((capmem__host_kind_t)kind, nth);
            capmem_err_t err = capmem_bank_service_create(a, f->w.client, &sa, &p2);
            capmem__inject_reset();
            if (err == CAPMEM_OK) {
                assert_ok(capmem_bank_service_destroy(a, p2));
                break;
            }
            assert_int_equal(err, CAPMEM_E_HOST_NOMEM);
            capmem_ram_info_t now;
            assert_ok(capmem_ram_info(a, f->w.client, &now));
            assert_int_equal(now.used, before.used);
            CHECK_INVARIANTS(a);
            failures++;
        }
    }
    assert_true(failures >= 2);
    assert_ok(capmem_bank_service_create(a, f->w.client, &sa, &f->prime)); /* for teardown */
}

/* capmem_stats counts banks and their frames where they commit, with peaks. */
static void test_bank_stats_count_banks_and_frames(void **state)
{
    fixture_t *f = *state;
    capmem_arena_t *a = f->w.arena;
    capmem_cap_t b = child(f, f->prime, 2, 10);
    capmem_cap_t x = frame(f, b);
    (void)frame(f, b);
    capmem_cap_t y = CAPMEM_CAP_NULL;
    const capmem_bank_type_t t = CAPMEM_BANK_FRAME;
    assert_err(capmem_bank_alloc(a, b, &t, 1, &y), CAPMEM_E_LIMIT_REACHED); /* counts nothing */
    assert_ok(capmem_bank_free(a, b, &x, 1));
    capmem_stats_t s;
    memset(&s, 0, sizeof(s));
    s.size = sizeof(s);
    assert_ok(capmem_stats(a, &s));
    assert_int_equal(s.version, 2);
    assert_int_equal(s.banks.current, 1);
    assert_int_equal(s.bank_frames.current, 1);
    assert_int_equal(s.bank_frames.peak, 2);
    assert_int_equal(s.bank_frames.total, 2);
    assert_int_equal(s.kernel_records.current, 0); /* no kernel booted here */
    assert_ok(capmem_bank_destroy(a, b));
    assert_ok(capmem_stats(a, &s));
    assert_int_equal(s.banks.current, 0);
    assert_int_equal(s.bank_frames.current, 0);
    CHECK_INVARIANTS(a);
}

/* Nodes, a deep remove, reads through the dataspace path, descriptions, NULL arenas. */
static void test_bank_nodes_deep_remove_and_descriptions(void **state)
{
    fixture_t *f = *state;
    capmem_arena_t *a = f->w.arena;
    capmem_cap_t top = child(f, f->prime, 100, 100);
    capmem_cap_t mid = child(f, top, 100, 100);
    capmem_cap_t low = child(f, mid, 100, 100);
    capmem_cap_t leaf = child(f, low, 100, 100);
    const capmem_bank_type_t three[3] = {CAPMEM_BANK_NODE, CAPMEM_BANK_NODE, CAPMEM_BANK_FRAME};
    capmem_cap_t o[3];
    assert_ok(capmem_bank_alloc(a, mid, three, 3, o));
    capmem_cap_t n2[3];
    assert_ok(capmem_bank_alloc(a, leaf, three, 3, n2));
    /* Free the middle node of the service's list first, then the others. */
    assert_ok(capmem_bank_free(a, mid, &o[1], 1));
    assert_ok(capmem_bank_free(a, leaf, &n2[0], 1));
    CHECK_INVARIANTS(a);
    /* Remove mid: its node and frame go to top, low (with leaf below) moves up a level. */
    assert_ok(capmem_bank_remove(a, mid));
    bool owns = false;
    assert_ok(capmem_bank_owns(a, top, o[0], &owns));
    assert_true(owns);
    assert_int_equal(info(f, low).depth, 2);
    assert_int_equal(info(f, leaf).depth, 3);
    CHECK_INVARIANTS(a);
    assert_ok(capmem_bank_free(a, top, o, 1)); /* a node, by its new owner */
    /* The frame reads back through the dataspace path. */
    assert_ok(capmem_ds_write(a, o[2], 0, "xyz", 4));
    char buf[4] = {0};
    assert_ok(capmem_ds_read(a, o[2], 0, buf, 4));
    assert_string_equal(buf, "xyz");
    /* What a dump prints of each. */
    char d[160];
    const capmem__bank_svc_t *svc = capmem__bank_service(a);
    a->types[CAPMEM_OBJ_BANK]->describe(a, &svc->prime, d, sizeof(d));
    assert_non_null(strstr(d, "prime bank at depth 0"));
    capmem_cap_info_t ci;
    assert_ok(capmem_cap_identify(a, n2[1], &ci));
    const capmem__slot_t *s = &a->cspace.slots[n2[1] & ((1u << 30) - 1)];
    a->types[CAPMEM_OBJ_BANK_NODE]->describe(a, s->obj, d, sizeof(d));
    assert_non_null(strstr(d, "bank node of a bank at depth 3"));
    s = &a->cspace.slots[o[2] & ((1u << 30) - 1)];
    a->types[CAPMEM_OBJ_DATASPACE]->describe(a, s->obj, d, sizeof(d));
    assert_non_null(strstr(d, "bank frame at offset"));
    /* NULL arenas. */
    assert_err(capmem_bank_owns(a, top, o[2], NULL), CAPMEM_E_INVALID_ARGS);
    assert_err(capmem_bank_destroy(NULL, top), CAPMEM_E_INVALID_ARGS);
    assert_err(capmem_bank_remove(NULL, top), CAPMEM_E_INVALID_ARGS);
    assert_err(capmem_bank_service_destroy(NULL, f->prime), CAPMEM_E_INVALID_ARGS);
    assert_err(capmem_bank_free(NULL, top, o, 1), CAPMEM_E_INVALID_ARGS);
    CHECK_INVARIANTS(a);
}

static void expect_corrupt(capmem_arena_t *a, const char *why)
{
    char buf[256];
    assert_int_equal(capmem_check(a, buf, sizeof(buf)), CAPMEM_E_CORRUPT);
    if (strstr(buf, why) == NULL) {
        fail_msg("checker said \"%s\", expected \"%s\"", buf, why);
    }
}

/* Each bank invariant is checked: break it by hand, the checker names it. */
static void test_bank_checker_finds_each_broken_invariant(void **state)
{
    fixture_t *f = *state;
    capmem_arena_t *a = f->w.arena;
    capmem_cap_t b = child(f, f->prime, 10, 10);
    (void)frame(f, b);
    capmem__bank_svc_t *svc = capmem__bank_service(a);
    capmem__bank_t *bank = svc->prime.child;
    bank->used[CAPMEM_BANK_FRAME]++;
    expect_corrupt(a, "its own objects and sub-banks make");
    bank->used[CAPMEM_BANK_FRAME]--;
    bank->limit[CAPMEM_BANK_FRAME] = 0;
    expect_corrupt(a, "above its limit");
    bank->limit[CAPMEM_BANK_FRAME] = 10;
    svc->prime.limit[CAPMEM_BANK_FRAME]--;
    expect_corrupt(a, "prime bank's frame limit");
    svc->prime.limit[CAPMEM_BANK_FRAME]++;
    bank->depth = 7;
    expect_corrupt(a, "another parent or depth");
    bank->depth = 1;
    svc->heap_frames++; /* no kernel bank here: pages lent that nobody holds */
    expect_corrupt(a, "frames handed out");
    svc->heap_frames--;
    /* A frame whose owner is no bank of the tree (the usages made to agree). */
    svc->frame_list->u.bank.bank = (capmem__bank_t *)(void *)&svc->meta;
    bank->used[CAPMEM_BANK_FRAME]--;
    svc->prime.used[CAPMEM_BANK_FRAME]--;
    expect_corrupt(a, "the banks of the tree own");
    svc->frame_list->u.bank.bank = bank;
    bank->used[CAPMEM_BANK_FRAME]++;
    svc->prime.used[CAPMEM_BANK_FRAME]++;
    svc->meta.used++;
    expect_corrupt(a, "bank service");
    svc->meta.used--;
    CHECK_INVARIANTS(a);
}

/* Every bank, frame and node must be the object of its own capability: break each link. */
static void test_bank_checker_finds_each_broken_capability_link(void **state)
{
    fixture_t *f = *state;
    capmem_arena_t *a = f->w.arena;
    capmem_cap_t b = child(f, f->prime, 10, 10);
    (void)frame(f, b);
    const capmem_bank_type_t t = CAPMEM_BANK_NODE;
    capmem_cap_t node = CAPMEM_CAP_NULL;
    assert_ok(capmem_bank_alloc(a, b, &t, 1, &node));
    CHECK_INVARIANTS(a);
    capmem__bank_svc_t *svc = capmem__bank_service(a);
    capmem__bank_t *bank = svc->prime.child;
    capmem__ds_t *fr = svc->frame_list;
    capmem__bnode_t *n = svc->node_list;
    const uint32_t bank_slot = bank->slot;
    bank->slot = fr->slot;
    expect_corrupt(a, "bank at depth 1: its capability is gone");
    bank->slot = 0;
    expect_corrupt(a, "a bank other than the kernel's has no capability");
    bank->slot = bank_slot;
    fr->size += a->mem.page_size;
    expect_corrupt(a, "its record or capability is broken");
    fr->size -= a->mem.page_size;
    const uint32_t node_slot = n->slot;
    n->slot = fr->slot;
    expect_corrupt(a, "a node's capability is broken");
    n->slot = node_slot;
    CHECK_INVARIANTS(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_bank_service_takes_one_dataspace_of_the_account, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_bank_service_bad_input_changes_nothing, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_bank_charges_every_ancestor_and_tightest_limit_wins,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_bank_alloc_bad_input_changes_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bank_free_needs_the_owning_bank, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bank_destroy_frees_the_subtree, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bank_remove_hands_everything_to_the_parent, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_bank_set_limits_never_below_usage, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bank_restrictions_are_rights, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bank_frames_are_dataspaces, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bank_account_close_takes_the_service, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bank_operations_raise_events, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bank_checker_finds_each_broken_invariant, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_bank_checker_finds_each_broken_capability_link, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_bank_resource_errors_change_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bank_nodes_deep_remove_and_descriptions, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_bank_stats_count_banks_and_frames, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bank_service_upgrade_adds_records, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
