/* SPDX-License-Identifier: MIT */
/*
 * The invariant checker catches corruption: each test breaks one piece of
 * internal state on purpose (through the internal headers), asserts that
 * capmem_check() reports it with a message naming the broken invariant,
 * then restores the state so the arena tears down cleanly.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cap_internal.h"
#include "first_fit.h"
#include "ram_internal.h"
#include "rm_internal.h"
#include "support.h"
#include "untyped_internal.h"

typedef test_boot_world_t fixture_t;

static fixture_t fx;

static int setup(void **state)
{
    test_boot_world_open(&fx, 0, NULL);
    *state = &fx;
    return 0;
}

static int teardown(void **state)
{
    test_boot_world_close(*state);
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
    capmem__ut_child_t *b = slot_of(f->arena, f->frames[1])->obj;
    capmem__ut_child_t *a = slot_of(f->arena, f->frames[0])->obj;
    uint64_t saved = b->offset;
    b->offset = a->offset;
    expect_caught(f->arena, "overlap");
    b->offset = saved;
}

static void test_checker_catches_child_outside_its_untyped(void **state)
{
    fixture_t *f = *state;
    capmem__ut_child_t *b = slot_of(f->arena, f->frames[1])->obj;
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

/* ---- the region-map checker (rm_check.c) ------------------------------------ */

/*
 * A map of 16 pages with @p n one-page regions of the fixture's dataspace at
 * pages 0 .. n-1 (offsets 0 .. n-1 pages), attached in address order, or in
 * reverse with @p reverse; the regions in address order go to @p out.
 */
static capmem__rm_t *map_with(fixture_t *f, capmem_cap_t *rm, unsigned n, bool reverse,
                              rm_region_t **out)
{
    capmem_rm_open_attr_t ra = CAPMEM_RM_OPEN_ATTR_INIT;
    ra.size = 16 * 4096;
    ra.label = "corrupted";
    assert_ok(capmem_rm_open(f->arena, f->acc, &ra, rm));
    for (unsigned i = 0; i < n; i++) {
        unsigned p = reverse ? n - 1 - i : i;
        capmem_rm_attach_attr_t at = CAPMEM_RM_ATTACH_ATTR_INIT;
        at.size = 4096;
        at.at = (uint64_t)p * 4096;
        at.offset = (uint64_t)p * 4096;
        uint64_t addr;
        assert_ok(capmem_rm_attach(f->arena, *rm, f->ds, &at, &addr));
        assert_int_equal(addr, at.at);
    }
    CHECK_INVARIANTS(f->arena);
    capmem__rm_t *m = slot_of(f->arena, *rm)->obj;
    for (unsigned i = 0; i < n; i++) {
        out[i] = capmem__rm_region_at(f->arena, m, (uint64_t)i * 4096);
        assert_non_null(out[i]);
    }
    return m;
}

static void test_checker_catches_region_tree_cycle(void **state)
{
    fixture_t *f = *state;
    capmem_cap_t rm;
    rm_region_t *r[2];
    capmem__rm_t *m = map_with(f, &rm, 2, false, r);
    /* The root becomes its own left child: the walk would never end. */
    uintptr_t saved = m->root->left;
    rg_set_left(m->root, m->root);
    expect_caught(f->arena, "region map \"corrupted\": region tree deeper than 64");
    m->root->left = saved;
}

static void test_checker_catches_region_of_another_map(void **state)
{
    fixture_t *f = *state;
    capmem_cap_t rm;
    rm_region_t *r[2];
    map_with(f, &rm, 2, false, r);
    r[0]->rm_slot = capmem__cap_index(f->ds); /* a live slot, but not this map's */
    expect_caught(f->arena, "region map \"corrupted\": region at 0x0 (1 pages, gap 0) is empty, "
                            "overlaps its predecessor, leaves the map or has a wrong gap");
    r[0]->rm_slot = capmem__cap_index(rm);
}

static void test_checker_catches_empty_region(void **state)
{
    fixture_t *f = *state;
    capmem_cap_t rm;
    rm_region_t *r[2];
    map_with(f, &rm, 2, false, r);
    r[1]->pages = 0;
    expect_caught(f->arena, "region at 0x1000 (0 pages, gap 0) is empty");
    r[1]->pages = 1;
}

static void test_checker_catches_wrong_gap_before_a_region(void **state)
{
    fixture_t *f = *state;
    capmem_cap_t rm;
    rm_region_t *r[2];
    map_with(f, &rm, 2, false, r);
    r[1]->gap = 3; /* it follows the first region directly */
    expect_caught(f->arena, "region at 0x1000 (1 pages, gap 3) is empty, overlaps its "
                            "predecessor, leaves the map or has a wrong gap");
    r[1]->gap = 0;
}

static void test_checker_catches_region_of_dead_dataspace(void **state)
{
    fixture_t *f = *state;
    capmem_cap_t rm;
    rm_region_t *r[2];
    map_with(f, &rm, 2, false, r);
    r[1]->ds_slot = capmem__cap_index(f->acc); /* live, but an account */
    expect_caught(f->arena, "region map \"corrupted\": region at 0x1000 names a dead dataspace");
    r[1]->ds_slot = 0;
    expect_caught(f->arena, "region at 0x1000 names a dead dataspace");
    r[1]->ds_slot = capmem__cap_index(f->ds);
}

static void test_checker_catches_region_beyond_its_dataspace(void **state)
{
    fixture_t *f = *state;
    capmem_cap_t rm;
    rm_region_t *r[2];
    map_with(f, &rm, 2, false, r);
    const char *msg = "region map \"corrupted\": region at 0x1000 exceeds its dataspace or writes "
                      "a read-only one";
    /* The offset starts past the dataspace's end (3 pages)... */
    r[1]->off = 4 * 4096;
    expect_caught(f->arena, msg);
    /* ...or inside it, with the region's page running past the end. */
    r[1]->off = 3 * 4096 - 1;
    expect_caught(f->arena, msg);
    r[1]->off = 4096;
}

static void test_checker_catches_writable_region_of_read_only_dataspace(void **state)
{
    fixture_t *f = *state;
    capmem_cap_t rm;
    rm_region_t *r[1];
    map_with(f, &rm, 1, false, r);
    assert_true(rg_flags(r[0]) & RG_WRITABLE);
    capmem__ds_t *d = slot_of(f->arena, f->ds)->obj;
    d->flags &= ~(uint32_t)CAPMEM__DS_WRITABLE;
    expect_caught(f->arena, "region at 0x0 exceeds its dataspace or writes a read-only one");
    d->flags |= CAPMEM__DS_WRITABLE;
}

static void test_checker_catches_region_missing_from_its_dataspace_list(void **state)
{
    fixture_t *f = *state;
    capmem_cap_t rm;
    rm_region_t *r[2];
    /* Attached in reverse: the list runs r[0] (its head), r[1], as the tree's order. */
    map_with(f, &rm, 2, true, r);
    capmem__ds_t *d = slot_of(f->arena, f->ds)->obj;
    assert_ptr_equal(d->regions, r[0]);
    assert_ptr_equal(r[0]->ds_next, r[1]);
    const char *msg = "region at 0x0 is not linked in its dataspace's list";
    /* The head is not the list's head. */
    d->regions = r[1];
    expect_caught(f->arena, msg);
    d->regions = r[0];
    /* The next one's back link skips the head. */
    r[1]->ds_prev = NULL;
    expect_caught(f->arena, msg);
    r[1]->ds_prev = r[0];
    /* The head's forward link skips the next one. */
    r[0]->ds_next = NULL;
    expect_caught(f->arena, "region at 0x1000 is not linked in its dataspace's list");
    r[0]->ds_next = r[1];
}

static void test_checker_catches_wrong_region_height(void **state)
{
    fixture_t *f = *state;
    capmem_cap_t rm;
    rm_region_t *r[3];
    capmem__rm_t *m = map_with(f, &rm, 3, false, r);
    assert_ptr_equal(m->root, r[1]);
    r[1]->left = (r[1]->left & ~RG_HEIGHT_MASK) | 3;
    expect_caught(f->arena, "region at 0x1000: height 3 (should be 2), balance 0, max gap 0 "
                            "(should be 0)");
    r[1]->left = (r[1]->left & ~RG_HEIGHT_MASK) | 2;
}

static void test_checker_catches_wrong_max_gap(void **state)
{
    fixture_t *f = *state;
    capmem_cap_t rm;
    rm_region_t *r[3];
    map_with(f, &rm, 3, false, r);
    r[2]->max_gap = 5;
    expect_caught(f->arena, "region at 0x2000: height 1 (should be 1), balance 0, max gap 5 "
                            "(should be 0)");
    r[2]->max_gap = 0;
}

static void test_checker_catches_unbalanced_region_tree(void **state)
{
    fixture_t *f = *state;
    capmem_cap_t rm;
    rm_region_t *r[3];
    capmem__rm_t *m = map_with(f, &rm, 3, false, r);
    assert_ptr_equal(m->root, r[1]);
    uintptr_t left[3];
    uintptr_t right[3];
    for (int i = 0; i < 3; i++) {
        left[i] = r[i]->left;
        right[i] = r[i]->right;
    }
    /* A chain r0 -> r1 -> r2 to the right, heights exact, no gaps: only the balance is wrong. */
    m->root = r[0];
    r[0]->left = 3;
    rg_set_right(r[0], r[1]);
    r[1]->left = 2;
    rg_set_right(r[1], r[2]);
    r[2]->left = 1;
    rg_set_right(r[2], NULL);
    expect_caught(f->arena, "region at 0x0: height 3 (should be 3), balance -2, max gap 0 "
                            "(should be 0)");
    m->root = r[1];
    for (int i = 0; i < 3; i++) {
        r[i]->left = left[i];
        r[i]->right = right[i];
    }
}

static void test_checker_catches_map_with_foreign_capability(void **state)
{
    fixture_t *f = *state;
    capmem_cap_t rm;
    rm_region_t *r[1];
    capmem__rm_t *m = map_with(f, &rm, 1, false, r);
    const char *msg = "region map \"corrupted\": its capability, client or list links are broken";
    m->slot = capmem__cap_index(f->ds);
    expect_caught(f->arena, msg);
    m->slot = capmem__cap_index(rm);
    /* A record that is not a map's slab header. */
    uint32_t kind = m->meta.kind;
    m->meta.kind = CAPMEM__META_RM + 1;
    expect_caught(f->arena, msg);
    m->meta.kind = kind;
}

static void test_checker_catches_map_of_dead_client(void **state)
{
    fixture_t *f = *state;
    capmem_cap_t rm;
    rm_region_t *r[1];
    capmem__rm_t *m = map_with(f, &rm, 1, false, r);
    capmem__account_t *client = m->client;
    capmem__account_t ghost = *client;
    ghost.slot = 0; /* a client whose capability is gone */
    m->client = &ghost;
    expect_caught(f->arena, "region map \"corrupted\": its capability, client or list links are "
                            "broken");
    m->client = client;
}

static void test_checker_catches_broken_map_list(void **state)
{
    fixture_t *f = *state;
    capmem_cap_t a;
    capmem_cap_t b;
    rm_region_t *r[1];
    capmem__rm_t *ma = map_with(f, &a, 1, false, r);
    capmem__rm_t *mb = map_with(f, &b, 0, false, r);
    capmem__rm_t *first = ma->next == mb ? ma : mb;
    assert_ptr_equal(first->next, first == ma ? mb : ma);
    capmem__rm_t *second = first->next;
    second->prev = NULL;
    expect_caught(f->arena, "region map \"corrupted\": its capability, client or list links are "
                            "broken");
    second->prev = first;
}

static void test_checker_catches_inconsistent_managed_dataspace(void **state)
{
    fixture_t *f = *state;
    capmem_cap_t rm;
    rm_region_t *r[1];
    capmem__rm_t *m = map_with(f, &rm, 1, false, r);
    capmem_cap_t mds;
    assert_ok(capmem_rm_dataspace(f->arena, rm, &mds));
    CHECK_INVARIANTS(f->arena);
    capmem__ds_t *md = slot_of(f->arena, mds)->obj;
    assert_ptr_equal(m->managed, md);
    const char *msg = "region map \"corrupted\": its managed dataspace is inconsistent";
    /* Its capability slot is another dataspace's. */
    md->slot = capmem__cap_index(f->ds);
    expect_caught(f->arena, msg);
    md->slot = capmem__cap_index(mds);
    /* It shows another map. */
    md->u.managed.map = NULL;
    expect_caught(f->arena, msg);
    md->u.managed.map = m;
    /* Its record claims another slab. */
    capmem__meta_t *meta = md->meta;
    capmem__meta_t other = m->meta; /* a map's slab, but not this map's */
    md->meta = &other;
    expect_caught(f->arena, msg);
    md->meta = meta;
    /* Its size is not the map's. */
    md->size += 4096;
    expect_caught(f->arena, msg);
    md->size -= 4096;
    /*
     * It is of no kind (0). Not RAM or an alias: the RAM checker, which runs
     * first, would read the record's union as that kind's and crash.
     */
    uint32_t flags = md->flags;
    md->flags = flags & ~(uint32_t)CAPMEM__DS_KIND_MASK;
    expect_caught(f->arena, msg);
    md->flags = flags;
}

static void test_checker_catches_map_record_count_drift(void **state)
{
    fixture_t *f = *state;
    capmem_cap_t rm;
    rm_region_t *r[1];
    capmem__rm_t *m = map_with(f, &rm, 1, false, r);
    capmem_rm_info_t info;
    assert_ok(capmem_rm_info(f->arena, rm, &info));
    m->meta.used++;
    char msg[96];
    snprintf(msg, sizeof(msg), "corrupted: %llu metadata slots in use, but ",
             (unsigned long long)(info.records_used + 1));
    expect_caught(f->arena, msg);
    m->meta.used--;
}

static void test_checker_catches_client_donation_drift(void **state)
{
    fixture_t *f = *state;
    capmem_cap_t rm;
    rm_region_t *r[1];
    capmem__rm_t *m = map_with(f, &rm, 1, false, r);
    capmem_rm_info_t info;
    assert_ok(capmem_rm_info(f->arena, rm, &info));
    /*
     * 4 KiB of the client's donation to its map is booked to the root
     * account instead, which has no map: the RAM service's sums
     * (conservation, exclusivity) still hold, only the client's own
     * donation disagrees with its maps'.
     */
    capmem__account_t *root = account_of(f->arena, f->root);
    m->client->donated -= 4096;
    root->donated += 4096;
    char msg[160];
    snprintf(msg, sizeof(msg),
             "account \"%s\": it has donated %llu bytes to region maps, but its maps hold %llu",
             m->client->label, (unsigned long long)(info.donation - 4096),
             (unsigned long long)info.donation);
    expect_caught(f->arena, msg);
    root->donated -= 4096;
    m->client->donated += 4096;
}

static void test_checker_catches_foreign_record_in_attachment_list(void **state)
{
    fixture_t *f = *state;
    capmem_cap_t rm;
    rm_region_t *r[1];
    map_with(f, &rm, 1, false, r);
    /* A record nobody's tree holds, appended to the dataspace's list. */
    _Alignas(CAPMEM__REC) rm_region_t stray;
    stray = *r[0];
    stray.left = 0;
    stray.right = 0;
    stray.ds_next = NULL;
    stray.ds_prev = r[0];
    r[0]->ds_next = &stray;
    const char *msg = "a dataspace's attachment list holds a region of another dataspace or of a "
                      "closed region map";
    stray.ds_slot = capmem__cap_index(f->acc); /* another object's */
    expect_caught(f->arena, msg);
    stray.ds_slot = capmem__cap_index(f->ds);
    stray.rm_slot = capmem__cap_index(f->ds); /* no region map */
    expect_caught(f->arena, msg);
    stray.rm_slot = capmem__cap_index(rm);
    /* Well formed, but no map counts it. */
    expect_caught(f->arena, "2 attachments listed by dataspaces, 1 regions in region maps");
    r[0]->ds_next = NULL;
}

static void test_checker_catches_region_naming_a_slot_beyond_the_table(void **state)
{
    fixture_t *f = *state;
    capmem_cap_t rm;
    rm_region_t *r[1];
    map_with(f, &rm, 1, false, r);
    r[0]->ds_slot = f->arena->cspace.high; /* never used */
    expect_caught(f->arena, "region map \"corrupted\": region at 0x0 names a dead dataspace");
    r[0]->ds_slot = capmem__cap_index(f->ds);
}

static void test_checker_catches_region_naming_a_derived_capability(void **state)
{
    fixture_t *f = *state;
    capmem_cap_t rm;
    rm_region_t *r[1];
    map_with(f, &rm, 1, false, r);
    /* A dataspace capability, the same object even, but not the original. */
    capmem_cap_t copy;
    assert_ok(capmem_cap_mint(f->arena, f->ds, CAPMEM_RIGHTS_ALL, &copy));
    assert_ptr_equal(slot_of(f->arena, copy)->obj, slot_of(f->arena, f->ds)->obj);
    r[0]->ds_slot = capmem__cap_index(copy);
    expect_caught(f->arena, "region map \"corrupted\": region at 0x0 names a dead dataspace");
    r[0]->ds_slot = capmem__cap_index(f->ds);
    assert_ok(capmem_cap_delete(f->arena, copy));
}

static void test_checker_catches_map_naming_another_maps_capability(void **state)
{
    fixture_t *f = *state;
    capmem_cap_t a;
    capmem_cap_t b;
    rm_region_t *r[1];
    capmem__rm_t *ma = map_with(f, &a, 1, false, r);
    map_with(f, &b, 0, false, r);
    /* A live original REGION_MAP slot, but of the other map's record. */
    ma->slot = capmem__cap_index(b);
    expect_caught(f->arena, "region map \"corrupted\": its capability, client or list links are "
                            "broken");
    ma->slot = capmem__cap_index(a);
}

static void test_checker_catches_left_leaning_region_tree(void **state)
{
    fixture_t *f = *state;
    capmem_cap_t rm;
    rm_region_t *r[3];
    capmem__rm_t *m = map_with(f, &rm, 3, false, r);
    assert_ptr_equal(m->root, r[1]);
    uintptr_t left[3];
    uintptr_t right[3];
    for (int i = 0; i < 3; i++) {
        left[i] = r[i]->left;
        right[i] = r[i]->right;
    }
    /* A chain r2 -> r1 -> r0 to the left, heights exact, no gaps: only the balance is wrong. */
    m->root = r[2];
    r[2]->right &= RG_LOW_MASK;
    r[2]->left = 3;
    rg_set_left(r[2], r[1]);
    r[1]->right &= RG_LOW_MASK;
    r[1]->left = 2;
    rg_set_left(r[1], r[0]);
    r[0]->right &= RG_LOW_MASK;
    r[0]->left = 1;
    expect_caught(f->arena, "region at 0x2000: height 3 (should be 3), balance 2, max gap 0 "
                            "(should be 0)");
    m->root = r[1];
    for (int i = 0; i < 3; i++) {
        r[i]->left = left[i];
        r[i]->right = right[i];
    }
}

/* The region-map layer's checker, as capmem_check() runs it, and its state. */
static capmem_err_t rm_checker(capmem_arena_t *a, char *why, size_t len)
{
    for (unsigned i = 0; i < a->nlayers; i++) {
        if (a->layers[i].layer->check == capmem__rm_check) {
            return capmem__rm_check(a, a->layers[i].state, why, len);
        }
    }
    fail_msg("the region-map layer is not set up");
    return CAPMEM_E_CORRUPT;
}

static void test_checker_region_map_checker_needs_no_buffer_to_report(void **state)
{
    fixture_t *f = *state;
    capmem_cap_t rm;
    rm_region_t *r[2];
    map_with(f, &rm, 2, false, r);
    char why[64] = "untouched";
    assert_ok(rm_checker(f->arena, NULL, 0));
    r[1]->gap = 3;
    /* capmem_check() always hands a buffer down; the layer's checker does without one too. */
    assert_err(rm_checker(f->arena, NULL, 0), CAPMEM_E_CORRUPT);
    assert_err(rm_checker(f->arena, why, 0), CAPMEM_E_CORRUPT);
    assert_string_equal(why, "untouched");
    r[1]->gap = 0;
    assert_ok(rm_checker(f->arena, why, sizeof(why)));
}

/* ---- the untyped checker (untyped_check.c) ---------------------------------- */

static void test_checker_catches_child_of_dead_untyped(void **state)
{
    fixture_t *f = *state;
    capmem__ut_child_t *c = slot_of(f->arena, f->frames[0])->obj;
    capmem__untyped_t *parent = c->parent;
    capmem__untyped_t ghost = *parent; /* a record no capability names */
    c->parent = &ghost;
    parent->children--; /* so that only the dead parent is wrong */
    expect_caught(f->arena, "an object names a parent or source untyped that is not alive");
    parent->children++;
    c->parent = parent;
}

static void test_checker_catches_child_below_its_untyped(void **state)
{
    fixture_t *f = *state;
    /* A child untyped of 64 KiB past the start of the boot untyped, with a frame of its own. */
    capmem_retype_attr_t ra = CAPMEM_RETYPE_ATTR_INIT;
    ra.type = CAPMEM_OBJ_UNTYPED;
    ra.size_bits = 16;
    capmem_cap_t sub;
    assert_ok(capmem_untyped_retype(f->arena, f->ut, &ra, &sub, 1));
    capmem_cap_t frame;
    capmem_retype_attr_t fa = CAPMEM_RETYPE_ATTR_INIT;
    assert_ok(capmem_untyped_retype(f->arena, sub, &fa, &frame, 1));
    CHECK_INVARIANTS(f->arena);
    capmem_untyped_info_t ui;
    assert_ok(capmem_untyped_info(f->arena, sub, &ui));
    assert_true(ui.offset >= 4096);
    capmem__ut_child_t *c = slot_of(f->arena, frame)->obj;
    uint64_t saved = c->offset;
    c->offset = ui.offset - 4096;
    char msg[96];
    snprintf(msg, sizeof(msg), "untyped at 0x%llx: child at 0x%llx lies outside it",
             (unsigned long long)ui.offset, (unsigned long long)(ui.offset - 4096));
    expect_caught(f->arena, msg);
    c->offset = saved;
}

static void test_checker_catches_copies_count_drift(void **state)
{
    fixture_t *f = *state;
    capmem__untyped_t *ut = slot_of(f->arena, f->ut)->obj;
    capmem_untyped_info_t ui;
    assert_ok(capmem_untyped_info(f->arena, f->ut, &ui));
    ut->copies++;
    char msg[96];
    snprintf(msg, sizeof(msg), "untyped at 0x%llx counts 1 copies, 0 are alive",
             (unsigned long long)ui.offset);
    expect_caught(f->arena, msg);
    ut->copies--;
}

static void test_checker_catches_copied_untyped_with_children(void **state)
{
    fixture_t *f = *state;
    /* A second untyped claims to be a copy of the fixture's, which has two frames. */
    capmem_retype_attr_t ra = CAPMEM_RETYPE_ATTR_INIT;
    ra.type = CAPMEM_OBJ_UNTYPED;
    ra.size_bits = 16;
    capmem_cap_t other;
    assert_ok(capmem_untyped_retype(f->arena, f->ut, &ra, &other, 1));
    CHECK_INVARIANTS(f->arena);
    capmem__untyped_t *ut = slot_of(f->arena, f->ut)->obj;
    capmem__untyped_t *o = slot_of(f->arena, other)->obj;
    capmem_untyped_info_t ui;
    assert_ok(capmem_untyped_info(f->arena, f->ut, &ui));
    assert_int_equal(ui.children, 3);
    o->copy_of = ut;
    ut->copies = 1;
    char msg[96];
    snprintf(msg, sizeof(msg), "untyped at 0x%llx has a copy and children of its own",
             (unsigned long long)ui.offset);
    expect_caught(f->arena, msg);
    ut->copies = 0;
    o->copy_of = NULL;
}

/* A user policy (the tests' first fit) whose check hook fails on demand. */
static bool policy_broken;

static capmem_err_t failing_check(const void *self, char *why, size_t len)
{
    (void)self;
    if (policy_broken) {
        snprintf(why, len, "first-fit: blocks out of order");
        return CAPMEM_E_CORRUPT;
    }
    return CAPMEM_OK;
}

static void test_checker_catches_policy_whose_check_fails(void **state)
{
    fixture_t *f = *state;
    static capmem_alloc_ops_t ops;
    static test_ff_t ff;
    ops = test_ff_ops;
    ops.check = failing_check;
    memset(&ff, 0, sizeof(ff));
    ff.size = 1ull << 16;
    capmem_retype_attr_t ra = CAPMEM_RETYPE_ATTR_INIT;
    ra.type = CAPMEM_OBJ_UNTYPED;
    ra.size_bits = 16;
    capmem_cap_t sub;
    assert_ok(capmem_untyped_retype(f->arena, f->ut, &ra, &sub, 1));
    capmem_alloc_t *pol = NULL;
    assert_ok(capmem_alloc_create_custom_span(&ops, &ff, 0, ff.size, &pol));
    assert_ok(capmem_untyped_set_policy(f->arena, sub, CAPMEM_UNTYPED_WATERMARK, pol));
    capmem_untyped_info_t ui;
    assert_ok(capmem_untyped_info(f->arena, sub, &ui));
    CHECK_INVARIANTS(f->arena);
    policy_broken = true;
    char msg[128];
    snprintf(msg, sizeof(msg), "untyped at 0x%llx: policy check: first-fit: blocks out of order",
             (unsigned long long)ui.offset);
    expect_caught(f->arena, msg);
    policy_broken = false;
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
        cmocka_unit_test_setup_teardown(test_checker_catches_region_tree_cycle, setup, teardown),
        cmocka_unit_test_setup_teardown(test_checker_catches_region_of_another_map, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_checker_catches_empty_region, setup, teardown),
        cmocka_unit_test_setup_teardown(test_checker_catches_wrong_gap_before_a_region, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_checker_catches_region_of_dead_dataspace, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_checker_catches_region_beyond_its_dataspace, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_checker_catches_writable_region_of_read_only_dataspace,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_checker_catches_region_missing_from_its_dataspace_list,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_checker_catches_wrong_region_height, setup, teardown),
        cmocka_unit_test_setup_teardown(test_checker_catches_wrong_max_gap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_checker_catches_unbalanced_region_tree, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_checker_catches_map_with_foreign_capability, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_checker_catches_map_of_dead_client, setup, teardown),
        cmocka_unit_test_setup_teardown(test_checker_catches_broken_map_list, setup, teardown),
        cmocka_unit_test_setup_teardown(test_checker_catches_inconsistent_managed_dataspace, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_checker_catches_map_record_count_drift, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_checker_catches_client_donation_drift, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_checker_catches_foreign_record_in_attachment_list,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_checker_catches_child_of_dead_untyped, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_checker_catches_child_below_its_untyped, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_checker_catches_copies_count_drift, setup, teardown),
        cmocka_unit_test_setup_teardown(test_checker_catches_copied_untyped_with_children, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_checker_catches_policy_whose_check_fails, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_checker_catches_region_naming_a_slot_beyond_the_table,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_checker_catches_region_naming_a_derived_capability,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_checker_catches_map_naming_another_maps_capability,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_checker_catches_left_leaning_region_tree, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_checker_region_map_checker_needs_no_buffer_to_report,
                                        setup, teardown),
    };
    return cmocka_run_group_tests_name("checker", tests, NULL, NULL);
}
