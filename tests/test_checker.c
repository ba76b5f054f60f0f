/* SPDX-License-Identifier: MIT */
/*
 * The invariant checker catches corruption: each test breaks one piece of
 * internal state on purpose (through the internal headers), asserts that
 * capmem_check() reports it with a message naming the broken invariant,
 * then restores the state so the arena tears down cleanly.
 */
#include <stdlib.h>
#include <string.h>

#include "cap_internal.h"
#include "ram_internal.h"
#include "rm_internal.h"
#include "support.h"
#include "untyped_internal.h"

typedef struct fixture {
    capmem_arena_t *arena;
    capmem_cap_t root;
    capmem_cap_t acc;
    capmem_cap_t ds;
    capmem_cap_t ut;
    capmem_cap_t kids[2];
} fixture_t;

static fixture_t fx;

static int setup(void **state)
{
    capmem_arena_attr_t at = CAPMEM_ARENA_ATTR_INIT;
    at.ram_size = 3ull << 20;
    at.phys_base = 0x100000;
    at.cap_slots = 1u << 12;
    memset(&fx, 0, sizeof(fx));
    assert_ok(capmem_arena_create(&at, &fx.arena));
    capmem_untyped_info_t boot[4];
    size_t n = 0;
    assert_ok(capmem_untyped_boot(fx.arena, boot, 4, &n));
    assert_int_equal(n, 2);
    fx.ut = boot[0].cap;
    assert_ok(capmem_ram_create(fx.arena, &boot[1].cap, 1, NULL, &fx.root));
    capmem_ram_open_attr_t oa = CAPMEM_RAM_OPEN_ATTR_INIT;
    oa.quota = 256 * 1024;
    assert_ok(capmem_ram_open(fx.arena, fx.root, &oa, &fx.acc));
    assert_ok(capmem_ram_alloc(fx.arena, fx.acc, 3 * 4096, &fx.ds));
    capmem_retype_attr_t ra = CAPMEM_RETYPE_ATTR_INIT;
    ra.count = 2;
    assert_ok(capmem_untyped_retype(fx.arena, fx.ut, &ra, fx.kids, 2));
    CHECK_INVARIANTS(fx.arena);
    *state = &fx;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    CHECK_INVARIANTS(f->arena);
    capmem_arena_destroy(f->arena);
    return 0;
}

/* The checker must fail and its message must contain @p needle. */
static void expect_caught(capmem_arena_t *a, const char *needle)
{
    char why[512];
    capmem_err_t err = capmem_check(a, why, sizeof(why));
    if (err == CAPMEM_OK) {
        fail_msg("corruption not caught (expected \"%s\")", needle);
    }
    assert_int_equal(err, CAPMEM_E_CORRUPT);
    if (strstr(why, needle) == NULL) {
        fail_msg("checker said \"%s\", expected it to mention \"%s\"", why, needle);
    }
}

static capmem__slot_t *slot_of(capmem_arena_t *a, capmem_cap_t c)
{
    return &a->cspace.slots[capmem__cap_index(c)];
}

static capmem__account_t *account_of(capmem_arena_t *a, capmem_cap_t c)
{
    return slot_of(a, c)->obj;
}

static void test_checker_catches_bumped_quota(void **state)
{
    fixture_t *f = *state;
    capmem__account_t *acc = account_of(f->arena, f->acc);
    acc->ram.limit += 4096;
    expect_caught(f->arena, "conservation");
    acc->ram.limit -= 4096;
}

static void test_checker_catches_used_beyond_quota(void **state)
{
    fixture_t *f = *state;
    capmem__account_t *acc = account_of(f->arena, f->acc);
    uint64_t q = acc->ram.limit;
    acc->ram.limit = acc->ram.used - 1;
    expect_caught(f->arena, "exceeds quota");
    acc->ram.limit = q;
}

static void test_checker_catches_charge_without_dataspace(void **state)
{
    fixture_t *f = *state;
    capmem__account_t *acc = account_of(f->arena, f->acc);
    acc->ram.used += 4096;
    expect_caught(f->arena, "holds");
    acc->ram.used -= 4096;
}

static void test_checker_catches_page_owned_twice(void **state)
{
    fixture_t *f = *state;
    /* The dataspace's record claims a range that its account also counts elsewhere. */
    capmem__ds_t *d = slot_of(f->arena, f->ds)->obj;
    d->size += 4096;
    expect_caught(f->arena, "account");
    d->size -= 4096;
}

static void test_checker_catches_leaked_physical_page(void **state)
{
    fixture_t *f = *state;
    capmem__account_t *acc = account_of(f->arena, f->acc);
    uint64_t off = 0;
    assert_ok(capmem_alloc_alloc(acc->phys, 4096, 4096, &off));
    expect_caught(f->arena, "exclusivity");
    assert_ok(capmem_alloc_free(acc->phys, off, 4096));
}

static void test_checker_catches_overlapping_untyped_children(void **state)
{
    fixture_t *f = *state;
    capmem__ut_child_t *b = slot_of(f->arena, f->kids[1])->obj;
    capmem__ut_child_t *a = slot_of(f->arena, f->kids[0])->obj;
    uint64_t saved = b->offset;
    b->offset = a->offset;
    expect_caught(f->arena, "overlap");
    b->offset = saved;
}

static void test_checker_catches_child_outside_its_untyped(void **state)
{
    fixture_t *f = *state;
    capmem__ut_child_t *b = slot_of(f->arena, f->kids[1])->obj;
    uint64_t saved = b->offset;
    b->offset = saved + (1ull << 20);
    expect_caught(f->arena, "outside");
    b->offset = saved;
}

static void test_checker_catches_wrong_children_count(void **state)
{
    fixture_t *f = *state;
    capmem__untyped_t *ut = slot_of(f->arena, f->ut)->obj;
    ut->children++;
    expect_caught(f->arena, "children");
    ut->children--;
}

static void test_checker_catches_dead_parent(void **state)
{
    fixture_t *f = *state;
    capmem__slot_t *s = slot_of(f->arena, f->ds);
    uint32_t saved = s->parent;
    /* Point at a slot that was never used: a parent that is not alive. */
    uint32_t never = 0;
    for (uint32_t i = 1; i < f->arena->cspace.high; i++) {
        if (f->arena->cspace.slots[i].type == CAPMEM_OBJ_NONE) {
            never = i;
        }
    }
    if (never == 0) {
        capmem_cap_t tmp;
        assert_ok(capmem_ram_alloc(f->arena, f->acc, 4096, &tmp));
        assert_ok(capmem_ds_free(f->arena, tmp));
        never = capmem__cap_index(tmp);
    }
    s->parent = never;
    /* Reported from either end: the dead parent, or the list that no longer matches. */
    expect_caught(f->arena, "parent");
    s->parent = saved;
}

static void test_checker_catches_broken_sibling_links(void **state)
{
    fixture_t *f = *state;
    capmem__slot_t *s = slot_of(f->arena, f->ut);
    uint32_t first = s->first_child;
    capmem__slot_t *c = &f->arena->cspace.slots[first];
    uint32_t saved = c->parent;
    c->parent = capmem__cap_index(f->root);
    expect_caught(f->arena, "another parent");
    c->parent = saved;
}

static void test_checker_catches_live_count_drift(void **state)
{
    fixture_t *f = *state;
    f->arena->cspace.live++;
    expect_caught(f->arena, "live count");
    f->arena->cspace.live--;
}

static void test_checker_catches_record_count_drift(void **state)
{
    fixture_t *f = *state;
    capmem__account_t *acc = account_of(f->arena, f->acc);
    acc->meta.used++;
    expect_caught(f->arena, "metadata slots");
    acc->meta.used--;
}

static void test_checker_catches_donation_not_matching_chunks(void **state)
{
    fixture_t *f = *state;
    capmem__account_t *acc = account_of(f->arena, f->acc);
    acc->meta.donation += 4096;
    expect_caught(f->arena, "donation");
    acc->meta.donation -= 4096;
}

static void test_checker_catches_lent_count_drift(void **state)
{
    fixture_t *f = *state;
    capmem_cap_t alias;
    capmem_alias_attr_t at = CAPMEM_ALIAS_ATTR_INIT;
    at.lifetime = CAPMEM_ALIAS_FIRST_CLASS;
    at.size = 4096;
    assert_ok(capmem_ds_alias(f->arena, f->acc, f->ds, &at, &alias));
    assert_ok(capmem_ds_free(f->arena, f->ds));
    CHECK_INVARIANTS(f->arena);
    capmem__account_t *acc = account_of(f->arena, f->acc);
    assert_int_equal(acc->lent, 4096);
    acc->lent -= 4096;
    acc->ram.used -= 4096;
    expect_caught(f->arena, "lent");
    acc->lent += 4096;
    acc->ram.used += 4096;
    CHECK_INVARIANTS(f->arena);
}

static void test_checker_reports_nothing_when_all_hold(void **state)
{
    fixture_t *f = *state;
    char why[64] = "junk";
    assert_ok(capmem_check(f->arena, why, sizeof(why)));
    assert_string_equal(why, "");
    assert_err(capmem_check(NULL, why, sizeof(why)), CAPMEM_E_INVALID_ARGS);
}

static void test_checker_catches_foreign_record_in_dependents_list(void **state)
{
    fixture_t *f = *state;
    capmem__account_t *acc = account_of(f->arena, f->acc);
    capmem__ds_t *ram = slot_of(f->arena, f->ds)->obj;
    capmem__ds_t *saved = acc->dependents;
    acc->dependents = ram; /* a RAM dataspace is no dependent alias */
    expect_caught(f->arena, "dependents list");
    acc->dependents = saved;
}

static void test_checker_needs_no_buffer_to_report(void **state)
{
    fixture_t *f = *state;
    capmem__account_t *acc = account_of(f->arena, f->acc);
    acc->ram.limit += 4096;
    assert_err(capmem_check(f->arena, NULL, 0), CAPMEM_E_CORRUPT);
    char tiny[8];
    assert_err(capmem_check(f->arena, tiny, sizeof(tiny)), CAPMEM_E_CORRUPT);
    assert_int_equal(strlen(tiny), sizeof(tiny) - 1); /* truncated, terminated */
    acc->ram.limit -= 4096;
    assert_ok(capmem_check(f->arena, NULL, 0));
}

/* A map with two regions, side by side at pages 0 and 1. */
static capmem__rm_t *two_regions(fixture_t *f, capmem_cap_t *rm)
{
    capmem_rm_open_attr_t ra = CAPMEM_RM_OPEN_ATTR_INIT;
    ra.size = 16 * 4096;
    assert_ok(capmem_rm_open(f->arena, f->acc, &ra, rm));
    capmem_rm_attach_attr_t at = CAPMEM_RM_ATTACH_ATTR_INIT;
    at.size = 4096;
    uint64_t addr;
    at.at = 0;
    assert_ok(capmem_rm_attach(f->arena, *rm, f->ds, &at, &addr));
    at.at = 4096;
    at.offset = 4096;
    assert_ok(capmem_rm_attach(f->arena, *rm, f->ds, &at, &addr));
    CHECK_INVARIANTS(f->arena);
    return slot_of(f->arena, *rm)->obj;
}

static void test_checker_catches_overlapping_regions(void **state)
{
    fixture_t *f = *state;
    capmem_cap_t rm;
    capmem__rm_t *m = two_regions(f, &rm);
    /* Grow the first region (the root's left child or the root) over the second. */
    rm_region_t *first = rg_left(m->root) != NULL ? rg_left(m->root) : m->root;
    first->pages++;
    expect_caught(f->arena, "overlaps its predecessor");
    first->pages--;
}

static void test_checker_catches_region_outside_its_map(void **state)
{
    fixture_t *f = *state;
    capmem_cap_t rm;
    capmem__rm_t *m = two_regions(f, &rm);
    uint32_t saved = m->pages;
    m->pages = 1; /* the map shrinks under its second region */
    expect_caught(f->arena, "leaves the map");
    m->pages = saved;
}

static void test_checker_catches_region_count_drift(void **state)
{
    fixture_t *f = *state;
    capmem_cap_t rm;
    capmem__rm_t *m = two_regions(f, &rm);
    m->regions++;
    expect_caught(f->arena, "regions counted");
    m->regions--;
}

/*
 * Regression (found by this suite): a first-class alias of a dependent alias
 * of a first-class alias used to be linked into the session's dependents
 * list; closing the session then freed physical memory twice.
 */
static void test_checker_first_class_alias_of_dependent_of_first_class_closes_cleanly(void **state)
{
    fixture_t *f = *state;
    capmem_cap_t fc;
    capmem_cap_t dep;
    capmem_cap_t fc2;
    capmem_alias_attr_t fa = CAPMEM_ALIAS_ATTR_INIT;
    fa.lifetime = CAPMEM_ALIAS_FIRST_CLASS;
    capmem_alias_attr_t da = CAPMEM_ALIAS_ATTR_INIT;
    assert_ok(capmem_ds_alias(f->arena, f->acc, f->ds, &fa, &fc));
    assert_ok(capmem_ds_alias(f->arena, f->acc, fc, &da, &dep));
    assert_ok(capmem_ds_alias(f->arena, f->acc, dep, &fa, &fc2));
    CHECK_INVARIANTS(f->arena);
    assert_ok(capmem_ds_free(f->arena, f->ds));
    assert_ok(capmem_ds_free(f->arena, fc));
    CHECK_INVARIANTS(f->arena);
    assert_ok(capmem_ram_close(f->arena, f->acc)); /* asserts in phys_release */
    CHECK_INVARIANTS(f->arena);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_checker_catches_bumped_quota, setup, teardown),
        cmocka_unit_test_setup_teardown(test_checker_catches_used_beyond_quota, setup, teardown),
        cmocka_unit_test_setup_teardown(test_checker_catches_charge_without_dataspace, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_checker_catches_page_owned_twice, setup, teardown),
        cmocka_unit_test_setup_teardown(test_checker_catches_leaked_physical_page, setup, teardown),
        cmocka_unit_test_setup_teardown(test_checker_catches_overlapping_untyped_children, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_checker_catches_child_outside_its_untyped, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_checker_catches_wrong_children_count, setup, teardown),
        cmocka_unit_test_setup_teardown(test_checker_catches_dead_parent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_checker_catches_broken_sibling_links, setup, teardown),
        cmocka_unit_test_setup_teardown(test_checker_catches_live_count_drift, setup, teardown),
        cmocka_unit_test_setup_teardown(test_checker_catches_record_count_drift, setup, teardown),
        cmocka_unit_test_setup_teardown(test_checker_catches_donation_not_matching_chunks, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_checker_catches_lent_count_drift, setup, teardown),
        cmocka_unit_test_setup_teardown(test_checker_reports_nothing_when_all_hold, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_checker_catches_foreign_record_in_dependents_list,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_checker_needs_no_buffer_to_report, setup, teardown),
        cmocka_unit_test_setup_teardown(test_checker_catches_overlapping_regions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_checker_catches_region_outside_its_map, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_checker_catches_region_count_drift, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_checker_first_class_alias_of_dependent_of_first_class_closes_cleanly, setup,
            teardown),
    };
    return cmocka_run_group_tests_name("checker", tests, NULL, NULL);
}
