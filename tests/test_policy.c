/* SPDX-License-Identifier: MIT */
/*
 * Placement policies everywhere (issue 15): recipes (capmem_alloc_policy_t),
 * fragmentation metrics (capmem_alloc_stats), a policy placing the RAM
 * service's physical blocks and a region map's "anywhere" attachments, and
 * every wrong answer refused with CAPMEM_E_POLICY, changing nothing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "liar.h"
#include "support.h"

#define PAGE 4096ull

/* ---- recipes and stats ------------------------------------------------------ */

static void test_policy_recipes_make_every_kind_and_refuse_bad_ones(void **state)
{
    (void)state;
    static const char *names[] = {"default", "watermark", "range", "buddy"};
    static const char *made[] = {"range", "watermark", "range", "buddy"};
    for (size_t i = 0; i < 4; i++) {
        capmem_alloc_policy_t p;
        assert_ok(capmem_alloc_policy_by_name(names[i], &p));
        capmem_alloc_t *a = NULL;
        assert_ok(capmem_alloc_create_policy(&p, 0x10000, 0x40000, PAGE, &a));
        assert_string_equal(capmem_alloc_name(a), made[i]);
        assert_int_equal(capmem_alloc_avail(a), 0x40000);
        capmem_alloc_destroy(a);
    }
    capmem_alloc_policy_t p = {.kind = CAPMEM_ALLOC_BUDDY};
    assert_err(capmem_alloc_policy_by_name("best-fit", &p), CAPMEM_E_NOT_FOUND);
    assert_int_equal(p.kind, CAPMEM_ALLOC_BUDDY); /* untouched */
    assert_err(capmem_alloc_policy_by_name(NULL, &p), CAPMEM_E_INVALID_ARGS);

    capmem_alloc_t *a = (capmem_alloc_t *)&p; /* a sentinel: must stay */
    const capmem_alloc_policy_t nf = CAPMEM_ALLOC_POLICY_CUSTOM(&next_fit_ops, NULL);
    assert_err(capmem_alloc_create_policy(&nf, 0, 0x1000, 3, &a), CAPMEM_E_INVALID_ARGS);
    assert_err(capmem_alloc_create_policy(&nf, 0, 0, PAGE, &a), CAPMEM_E_INVALID_ARGS);
    assert_err(capmem_alloc_create_policy(&nf, 0x800, 0x1000, PAGE, &a), CAPMEM_E_INVALID_ARGS);
    capmem_alloc_ops_t no_create = next_fit_ops;
    no_create.create = NULL;
    const capmem_alloc_policy_t bad = CAPMEM_ALLOC_POLICY_CUSTOM(&no_create, NULL);
    assert_err(capmem_alloc_create_policy(&bad, 0, 0x1000, PAGE, &a), CAPMEM_E_INVALID_ARGS);
    const capmem_alloc_policy_t unknown = {.kind = (capmem_alloc_kind_t)42};
    assert_err(capmem_alloc_create_policy(&unknown, 0, 0x1000, PAGE, &a), CAPMEM_E_INVALID_ARGS);
    assert_err(capmem_alloc_create_policy(NULL, 0, 0x1000, PAGE, &a), CAPMEM_E_INVALID_ARGS);
    assert_ptr_equal(a, (capmem_alloc_t *)&p);
}

/* Free bytes, runs and blocks counted by hand from a walk. */
typedef struct tally {
    uint64_t free_runs;
    uint64_t used_blocks;
    uint64_t prev_end;
    int prev_free;
} tally_t;

static int tally_visit(uint64_t off, uint64_t size, capmem_block_state_t st, void *ctx)
{
    tally_t *t = ctx;
    if (st == CAPMEM_BLOCK_FREE) {
        t->free_runs += (t->prev_free && t->prev_end == off) ? 0 : 1;
    } else {
        t->used_blocks++;
    }
    t->prev_free = st == CAPMEM_BLOCK_FREE;
    t->prev_end = off + size;
    return 0;
}

static void test_alloc_stats_agree_with_a_walk_for_every_policy(void **state)
{
    (void)state;
    const capmem_alloc_policy_t recipes[] = {
        CAPMEM_ALLOC_POLICY(CAPMEM_ALLOC_WATERMARK),
        CAPMEM_ALLOC_POLICY(CAPMEM_ALLOC_RANGE),
        CAPMEM_ALLOC_POLICY(CAPMEM_ALLOC_BUDDY),
        CAPMEM_ALLOC_POLICY_CUSTOM(&next_fit_ops, NULL),
    };
    for (size_t r = 0; r < 4; r++) {
        capmem_alloc_t *a = NULL;
        assert_ok(capmem_alloc_create_policy(&recipes[r], 0, 0x100000, PAGE, &a));
        capmem_alloc_stats_t st = {.size = sizeof(st)};
        assert_ok(capmem_alloc_stats(a, &st));
        assert_int_equal(st.version, CAPMEM_ALLOC_STATS_VERSION);
        assert_int_equal(st.free_bytes, 0x100000);
        assert_true(st.fragmentation == 0.0);
        assert_int_equal(st.align_loss, 0);
        uint64_t off[8];
        uint64_t req = 0;
        for (int i = 0; i < 8; i++) {
            uint64_t size = (uint64_t)(i + 1) * 3000; /* not page multiples: rounding */
            assert_ok(capmem_alloc_alloc(a, size, PAGE, &off[i]));
            req += size;
        }
        for (int i = 0; i < 8; i += 2) {
            assert_ok(capmem_alloc_free(a, off[i], (uint64_t)(i + 1) * 3000));
            req -= (uint64_t)(i + 1) * 3000;
        }
        assert_ok(capmem_alloc_stats(a, &st));
        assert_int_equal(st.size, sizeof(st));
        assert_int_equal(st.span, 0x100000);
        assert_int_equal(st.free_bytes, capmem_alloc_avail(a));
        assert_int_equal(st.largest_free, capmem_alloc_largest(a));
        assert_int_equal(st.used_bytes, 0x100000 - st.free_bytes);
        assert_int_equal(st.requested, req);
        assert_int_equal(st.align_loss, st.used_bytes - req);
        assert_true(st.align_loss > 0); /* every policy rounds 3000 up to a page at least */
        double frag = 1.0 - (double)st.largest_free / (double)st.free_bytes;
        assert_true(st.fragmentation > frag - 1e-12 && st.fragmentation < frag + 1e-12);
        tally_t t = {0};
        assert_ok(capmem_alloc_walk(a, tally_visit, &t));
        assert_int_equal(st.free_blocks, t.free_runs);
        assert_int_equal(st.used_blocks, t.used_blocks);
        assert_int_equal(st.source, r == 0 ? CAPMEM_ALLOC_STATS_POLICY : CAPMEM_ALLOC_STATS_WALK);
        if (r != 0) {
            assert_true(st.fragmentation > 0.0); /* the freed blocks are holes */
        }
        capmem_alloc_destroy(a);
    }
}

static void
test_alloc_stats_refuses_bad_arguments_and_writes_only_what_the_caller_knows(void **state)
{
    (void)state;
    capmem_alloc_t *a = NULL;
    assert_ok(capmem_alloc_create_range(0, 0x10000, PAGE, &a));
    capmem_alloc_stats_t st;
    memset(&st, 0x5a, sizeof(st));
    st.size = 8;
    assert_err(capmem_alloc_stats(a, &st), CAPMEM_E_INVALID_ARGS);
    assert_int_equal(st.size, 8);
    assert_int_equal(st.span, 0x5a5a5a5a5a5a5a5aull); /* unchanged */
    assert_err(capmem_alloc_stats(NULL, &st), CAPMEM_E_INVALID_ARGS);
    assert_err(capmem_alloc_stats(a, NULL), CAPMEM_E_INVALID_ARGS);
    /* A newer caller with a bigger struct gets what the library knows. */
    struct {
        capmem_alloc_stats_t st;
        uint64_t future;
    } big;
    memset(&big, 0x5a, sizeof(big));
    big.st.size = sizeof(big);
    assert_ok(capmem_alloc_stats(a, &big.st));
    assert_int_equal(big.st.size, sizeof(capmem_alloc_stats_t));
    assert_int_equal(big.future, 0x5a5a5a5a5a5a5a5aull);
    /* A policy without a walk hook: avail and largest only. */
    capmem_alloc_ops_t nowalk = next_fit_ops;
    nowalk.walk = NULL;
    const capmem_alloc_policy_t p = CAPMEM_ALLOC_POLICY_CUSTOM(&nowalk, NULL);
    capmem_alloc_t *b = NULL;
    assert_ok(capmem_alloc_create_policy(&p, 0, 0x10000, PAGE, &b));
    st.size = sizeof(st);
    assert_ok(capmem_alloc_stats(b, &st));
    assert_int_equal(st.source, CAPMEM_ALLOC_STATS_COUNTS);
    assert_int_equal(st.free_blocks, 0);
    assert_int_equal(st.free_bytes, 0x10000);
    capmem_alloc_destroy(b);
    capmem_alloc_destroy(a);
}

/* A table written before the appended hooks, positionally: still a valid policy. */
static capmem_err_t old_alloc(void *self, uint64_t size, uint64_t align, uint64_t *offset)
{
    return next_fit_ops.alloc(self, size, align, offset);
}

static void test_an_ops_table_initialised_positionally_leaves_the_new_hooks_null(void **state)
{
    (void)state;
/* A table written for the ten-hook struct: gcc's -Wextra would note the missing two. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
    const capmem_alloc_ops_t old = {"old",
                                    old_alloc,
                                    next_fit_ops.alloc_at,
                                    next_fit_ops.free,
                                    next_fit_ops.avail,
                                    next_fit_ops.largest,
                                    next_fit_ops.reset,
                                    next_fit_ops.destroy,
                                    next_fit_ops.check,
                                    next_fit_ops.walk};
#pragma GCC diagnostic pop
    assert_null(old.stats);
    assert_null(old.create);
    void *self = NULL;
    assert_ok(next_fit_ops.create(NULL, 0, 0x10000, PAGE, &self));
    capmem_alloc_t *a = NULL;
    assert_ok(capmem_alloc_create_custom_span(&old, self, 0, 0x10000, &a));
    uint64_t off = 0;
    assert_ok(capmem_alloc_alloc(a, 100, 1, &off));
    capmem_alloc_stats_t st = {.size = sizeof(st)};
    assert_ok(capmem_alloc_stats(a, &st));
    assert_int_equal(st.used_blocks, 1);
    assert_int_equal(st.align_loss, PAGE - 100);
    capmem_alloc_destroy(a);
}

/* ---- the RAM service --------------------------------------------------------- */

typedef struct ram_world {
    capmem_arena_t *arena;
    capmem_cap_t root;
    capmem_cap_t client;
} ram_world_t;

static void ram_world_open(ram_world_t *w, const capmem_alloc_policy_t *policy)
{
    w->arena = test_arena(4ull << 20, PAGE);
    capmem_ram_attr_t at = CAPMEM_RAM_ATTR_INIT;
    if (policy != NULL) {
        at.policy = *policy;
    }
    assert_ok(capmem_ram_boot(w->arena, &at, &w->root));
    capmem_ram_open_attr_t oa = CAPMEM_RAM_OPEN_ATTR_INIT;
    oa.quota = 1ull << 20;
    oa.label = "client";
    assert_ok(capmem_ram_open(w->arena, w->root, &oa, &w->client));
    CHECK_INVARIANTS(w->arena);
}

static void ram_world_close(ram_world_t *w)
{
    CHECK_INVARIANTS(w->arena);
    capmem_arena_destroy(w->arena);
}

static uint64_t phys_of(capmem_arena_t *arena, capmem_cap_t ds)
{
    capmem_ds_info_t info;
    assert_ok(capmem_ds_info(arena, ds, &info));
    return info.offset;
}

/* Free the middle one of three, allocate again: where does it go? */
static uint64_t refill_hole(const capmem_alloc_policy_t *policy, uint64_t *hole)
{
    ram_world_t w;
    ram_world_open(&w, policy);
    capmem_cap_t ds[3];
    for (int i = 0; i < 3; i++) {
        assert_ok(capmem_ram_alloc(w.arena, w.client, 2 * PAGE, &ds[i]));
        CHECK_INVARIANTS(w.arena);
    }
    *hole = phys_of(w.arena, ds[1]);
    assert_ok(capmem_ds_free(w.arena, ds[1]));
    CHECK_INVARIANTS(w.arena);
    capmem_cap_t again;
    assert_ok(capmem_ram_alloc(w.arena, w.client, 2 * PAGE, &again));
    uint64_t at = phys_of(w.arena, again);
    ram_world_close(&w);
    return at;
}

static void test_ram_service_places_dataspaces_with_the_policy_it_was_created_with(void **state)
{
    (void)state;
    uint64_t hole = 0;
    /* Best fit (the default) takes the exact hole; next fit goes on past the last block. */
    uint64_t at = refill_hole(NULL, &hole);
    assert_int_equal(at, hole);
    const capmem_alloc_policy_t nf = CAPMEM_ALLOC_POLICY_CUSTOM(&next_fit_ops, NULL);
    at = refill_hole(&nf, &hole);
    assert_true(at > hole);
    const capmem_alloc_policy_t buddy = CAPMEM_ALLOC_POLICY(CAPMEM_ALLOC_BUDDY);
    at = refill_hole(&buddy, &hole);
    assert_int_equal(at, hole);
}

static void test_ram_policy_hears_of_a_block_only_when_no_first_class_alias_keeps_it(void **state)
{
    (void)state;
    const capmem_alloc_policy_t nf = CAPMEM_ALLOC_POLICY_CUSTOM(&next_fit_ops, NULL);
    ram_world_t w;
    ram_world_open(&w, &nf);
    capmem_cap_t ds;
    assert_ok(capmem_ram_alloc(w.arena, w.client, 4 * PAGE, &ds));
    capmem_alias_attr_t aa = CAPMEM_ALIAS_ATTR_INIT;
    aa.offset = PAGE;
    aa.size = PAGE;
    aa.lifetime = CAPMEM_ALIAS_FIRST_CLASS;
    capmem_cap_t alias;
    assert_ok(capmem_ds_alias(w.arena, w.client, ds, &aa, &alias));
    CHECK_INVARIANTS(w.arena);
    assert_ok(capmem_ds_free(w.arena, ds)); /* the alias keeps one page */
    CHECK_INVARIANTS(w.arena);
    capmem_ram_info_t ri;
    assert_ok(capmem_ram_info(w.arena, w.client, &ri));
    assert_int_equal(ri.lent, PAGE);
    capmem_cap_t more[3];
    for (int i = 0; i < 3; i++) {
        assert_ok(capmem_ram_alloc(w.arena, w.client, PAGE, &more[i]));
        CHECK_INVARIANTS(w.arena);
    }
    assert_ok(capmem_ds_free(w.arena, alias)); /* now the policy gets the block back */
    CHECK_INVARIANTS(w.arena);
    for (int i = 0; i < 3; i++) {
        assert_ok(capmem_ds_free(w.arena, more[i]));
        CHECK_INVARIANTS(w.arena);
    }
    assert_ok(capmem_ram_close(w.arena, w.client));
    ram_world_close(&w);
}

static void test_ram_service_refuses_every_wrong_answer_and_changes_nothing(void **state)
{
    (void)state;
    liar_ctl_t ctl = {0};
    const capmem_alloc_policy_t lp = CAPMEM_ALLOC_POLICY_CUSTOM(&liar_ops, &ctl);
    ram_world_t w;
    ram_world_open(&w, &lp);
    capmem_cap_t keep;
    assert_ok(capmem_ram_alloc(w.arena, w.client, PAGE, &keep));
    const liar_mode_t lies[] = {LIAR_OUT_OF_SPAN, LIAR_MISALIGNED, LIAR_OVERLAP, LIAR_NO_OFFSET};
    for (size_t i = 0; i < 4; i++) {
        capmem_ram_info_t before;
        capmem_ram_info_t after;
        assert_ok(capmem_ram_info(w.arena, w.client, &before));
        uint64_t caps = capmem_cap_count(w.arena);
        ctl.mode = lies[i];
        capmem_cap_t ds = CAPMEM_CAP_NULL;
        assert_err(capmem_ram_alloc(w.arena, w.client, PAGE, &ds), CAPMEM_E_POLICY);
        assert_int_equal(ds, CAPMEM_CAP_NULL);
        assert_string_equal(capmem_last_error()->function, "capmem_ram_alloc");
        assert_ok(capmem_ram_info(w.arena, w.client, &after));
        assert_memory_equal(&before, &after, sizeof(before));
        assert_int_equal(capmem_cap_count(w.arena), caps);
        CHECK_INVARIANTS(w.arena);
    }
    /* A lie about a session's donation: the session is not opened. */
    capmem_ram_info_t before;
    capmem_ram_info_t after;
    assert_ok(capmem_ram_info(w.arena, w.root, &before));
    ctl.mode = LIAR_OUT_OF_SPAN;
    capmem_cap_t s = CAPMEM_CAP_NULL;
    assert_err(capmem_ram_open(w.arena, w.root, NULL, &s), CAPMEM_E_POLICY);
    assert_int_equal(s, CAPMEM_CAP_NULL);
    assert_ok(capmem_ram_info(w.arena, w.root, &after));
    assert_memory_equal(&before, &after, sizeof(before));
    CHECK_INVARIANTS(w.arena);
    /* The honest answers still work. */
    capmem_cap_t ok;
    assert_ok(capmem_ram_alloc(w.arena, w.client, PAGE, &ok));
    CHECK_INVARIANTS(w.arena);
    ram_world_close(&w);
}

static void test_ram_service_creation_refuses_a_lie_and_a_bad_recipe(void **state)
{
    (void)state;
    capmem_arena_t *arena = test_arena(4ull << 20, PAGE);
    liar_ctl_t ctl = {.mode = LIAR_MISALIGNED};
    capmem_ram_attr_t at = CAPMEM_RAM_ATTR_INIT;
    at.policy = CAPMEM_ALLOC_POLICY_CUSTOM(&liar_ops, &ctl);
    capmem_cap_t root = CAPMEM_CAP_NULL;
    uint64_t caps = capmem_cap_count(arena);
    assert_err(capmem_ram_boot(arena, &at, &root), CAPMEM_E_POLICY);
    assert_int_equal(root, CAPMEM_CAP_NULL);
    capmem_alloc_ops_t no_create = next_fit_ops;
    no_create.create = NULL;
    at.policy = CAPMEM_ALLOC_POLICY_CUSTOM(&no_create, NULL);
    assert_err(capmem_ram_boot(arena, &at, &root), CAPMEM_E_INVALID_ARGS);
    assert_int_equal(root, CAPMEM_CAP_NULL);
    CHECK_INVARIANTS(arena);
    /* Nothing was claimed: a service with an honest policy can be made now. */
    at.policy = CAPMEM_ALLOC_POLICY_CUSTOM(&next_fit_ops, NULL);
    assert_ok(capmem_ram_boot(arena, &at, &root));
    assert_true(capmem_cap_count(arena) > caps);
    CHECK_INVARIANTS(arena);
    capmem_arena_destroy(arena);
}

static capmem_err_t refuse_alloc_at(void *self, uint64_t offset, uint64_t size)
{
    (void)self;
    (void)offset;
    (void)size;
    return capmem_error_set(CAPMEM_E_NOT_ENOUGH_MEMORY, "this policy takes no exact blocks");
}

/* A policy that refuses the hole between two pools: no service, nothing claimed. */
static void test_ram_service_creation_over_a_hole_its_policy_refuses_claims_nothing(void **state)
{
    (void)state;
    capmem_untyped_info_t boot[2];
    capmem_cap_t halves[2];
    capmem_arena_t *a = test_split_boot(boot, halves);
    /* The first half and the second boot untyped: the second half is a hole between them. */
    capmem_cap_t give[2] = {halves[0], boot[1].cap};
    capmem_untyped_info_t before[2];
    assert_ok(capmem_untyped_info(a, give[0], &before[0]));
    assert_ok(capmem_untyped_info(a, give[1], &before[1]));
    uint64_t caps = capmem_cap_count(a);
    capmem_alloc_ops_t refusing = next_fit_ops;
    refusing.alloc_at = refuse_alloc_at;
    capmem_ram_attr_t at = CAPMEM_RAM_ATTR_INIT;
    at.policy = CAPMEM_ALLOC_POLICY_CUSTOM(&refusing, NULL);
    capmem_cap_t root = CAPMEM_CAP_NULL;
    assert_err(capmem_ram_create(a, give, 2, &at, &root), CAPMEM_E_NOT_ENOUGH_MEMORY);
    assert_int_equal(root, CAPMEM_CAP_NULL);
    assert_string_equal(capmem_last_error()->function, "capmem_ram_create");
    assert_int_equal(capmem_cap_count(a), caps);
    for (int i = 0; i < 2; i++) {
        capmem_untyped_info_t after;
        assert_ok(capmem_untyped_info(a, give[i], &after));
        assert_memory_equal(&before[i], &after, sizeof(after));
    }
    CHECK_INVARIANTS(a);
    /* Nothing was claimed: the same untypeds make a service with an honest policy. */
    at.policy = CAPMEM_ALLOC_POLICY_CUSTOM(&next_fit_ops, NULL);
    assert_ok(capmem_ram_create(a, give, 2, &at, &root));
    CHECK_INVARIANTS(a);
    capmem_arena_destroy(a);
}

typedef struct map_tally {
    uint64_t next;   /* where the next block must start */
    uint64_t used;   /* bytes in used blocks */
    uint64_t want;   /* a physical address that must lie in a used block */
    bool want_used;  /* it did */
    bool contiguous; /* every block started where the one before ended */
} map_tally_t;

static int tally_block(uint64_t phys, uint64_t size, bool used, void *ctx)
{
    map_tally_t *t = ctx;
    if (t->next != 0 && phys != t->next) {
        t->contiguous = false;
    }
    t->next = phys + size;
    if (used) {
        t->used += size;
        if (t->want >= phys && t->want < phys + size) {
            t->want_used = true;
        }
    }
    return 0;
}

static map_tally_t map_after_three_allocs(const capmem_alloc_policy_t *policy)
{
    ram_world_t w;
    ram_world_open(&w, policy);
    capmem_cap_t ds[3];
    for (int i = 0; i < 3; i++) {
        assert_ok(capmem_ram_alloc(w.arena, w.client, (uint64_t)(i + 1) * PAGE, &ds[i]));
    }
    assert_ok(capmem_ds_free(w.arena, ds[1]));
    capmem_ds_info_t info;
    assert_ok(capmem_ds_info(w.arena, ds[2], &info));
    map_tally_t t = {.want = info.phys, .contiguous = true};
    assert_ok(capmem_ram_map(w.arena, w.client, tally_block, &t));
    CHECK_INVARIANTS(w.arena);
    ram_world_close(&w);
    return t;
}

/* The physical map of a service with a policy is its page map: same pages in use as without. */
static void test_ram_map_of_a_service_with_a_policy_shows_the_pages_in_use(void **state)
{
    (void)state;
    map_tally_t plain = map_after_three_allocs(NULL);
    const capmem_alloc_policy_t nf = CAPMEM_ALLOC_POLICY_CUSTOM(&next_fit_ops, NULL);
    map_tally_t placed = map_after_three_allocs(&nf);
    assert_true(plain.contiguous);
    assert_true(placed.contiguous);
    assert_true(placed.want_used);
    assert_int_equal(placed.used, plain.used);
}

static bool policy_says_broken;

static capmem_err_t check_on_demand(const void *self, char *why, size_t len)
{
    if (policy_says_broken) {
        if (why != NULL && len > 0) {
            snprintf(why, len, "its own books are wrong");
        }
        return CAPMEM_E_CORRUPT;
    }
    return next_fit_ops.check(self, why, len);
}

/* capmem_check asks a RAM service's placement policy too, and passes its finding on. */
static void test_checker_reports_a_ram_policy_that_finds_itself_broken(void **state)
{
    (void)state;
    capmem_alloc_ops_t ops = next_fit_ops;
    ops.check = check_on_demand;
    const capmem_alloc_policy_t p = CAPMEM_ALLOC_POLICY_CUSTOM(&ops, NULL);
    ram_world_t w;
    ram_world_open(&w, &p);
    capmem_cap_t ds;
    assert_ok(capmem_ram_alloc(w.arena, w.client, PAGE, &ds));
    CHECK_INVARIANTS(w.arena);
    policy_says_broken = true;
    char why[256];
    assert_int_equal(capmem_check(w.arena, why, sizeof(why)), CAPMEM_E_CORRUPT);
    policy_says_broken = false;
    if (strstr(why, "placement policy: ") == NULL ||
        strstr(why, "its own books are wrong") == NULL) {
        fail_msg("checker said \"%s\"", why);
    }
    ram_world_close(&w);
}

/* ---- region maps ----------------------------------------------------------------- */

static capmem_cap_t open_map(ram_world_t *w, const capmem_alloc_policy_t *policy)
{
    capmem_rm_open_attr_t oa = CAPMEM_RM_OPEN_ATTR_INIT;
    oa.size = 64 * PAGE;
    oa.label = "placed";
    if (policy != NULL) {
        oa.policy = *policy;
    }
    capmem_cap_t rm;
    assert_ok(capmem_rm_open(w->arena, w->client, &oa, &rm));
    CHECK_INVARIANTS(w->arena);
    return rm;
}

static uint64_t attach_anywhere(ram_world_t *w, capmem_cap_t rm, capmem_cap_t ds, uint64_t size)
{
    capmem_rm_attach_attr_t aa = CAPMEM_RM_ATTACH_ATTR_INIT;
    aa.size = size;
    uint64_t at = 0;
    assert_ok(capmem_rm_attach(w->arena, rm, ds, &aa, &at));
    CHECK_INVARIANTS(w->arena);
    return at;
}

static void test_region_map_anywhere_follows_its_placement_policy(void **state)
{
    (void)state;
    ram_world_t w;
    ram_world_open(&w, NULL);
    capmem_cap_t ds;
    assert_ok(capmem_ram_alloc(w.arena, w.client, 4 * PAGE, &ds));
    const capmem_alloc_policy_t nf = CAPMEM_ALLOC_POLICY_CUSTOM(&next_fit_ops, NULL);
    capmem_cap_t lowest = open_map(&w, NULL);
    capmem_cap_t next = open_map(&w, &nf);
    capmem_cap_t maps[2] = {lowest, next};
    uint64_t third[2];
    for (int m = 0; m < 2; m++) {
        uint64_t a = attach_anywhere(&w, maps[m], ds, 2 * PAGE);
        uint64_t b = attach_anywhere(&w, maps[m], ds, 2 * PAGE);
        assert_int_equal(a, 0);
        assert_int_equal(b, 2 * PAGE);
        assert_ok(capmem_rm_detach(w.arena, maps[m], a));
        third[m] = attach_anywhere(&w, maps[m], ds, 2 * PAGE);
    }
    assert_int_equal(third[0], 0);        /* lowest fit reuses the hole */
    assert_int_equal(third[1], 4 * PAGE); /* next fit goes on */
    /* An attach at an address is a block of the policy too: next fit skips it. */
    capmem_rm_attach_attr_t fixed = CAPMEM_RM_ATTACH_ATTR_INIT;
    fixed.size = PAGE;
    fixed.at = 6 * PAGE;
    uint64_t got = 0;
    assert_ok(capmem_rm_attach(w.arena, next, ds, &fixed, &got));
    assert_int_equal(attach_anywhere(&w, next, ds, PAGE), 7 * PAGE);
    assert_ok(capmem_rm_close(w.arena, next));
    assert_ok(capmem_rm_close(w.arena, lowest));
    ram_world_close(&w);
}

static void test_region_map_refuses_every_wrong_answer_and_changes_nothing(void **state)
{
    (void)state;
    ram_world_t w;
    ram_world_open(&w, NULL);
    capmem_cap_t ds;
    assert_ok(capmem_ram_alloc(w.arena, w.client, 4 * PAGE, &ds));
    liar_ctl_t ctl = {0};
    const capmem_alloc_policy_t lp = CAPMEM_ALLOC_POLICY_CUSTOM(&liar_ops, &ctl);
    capmem_cap_t rm = open_map(&w, &lp);
    (void)attach_anywhere(&w, rm, ds, PAGE);
    const liar_mode_t lies[] = {LIAR_OUT_OF_SPAN, LIAR_MISALIGNED, LIAR_OVERLAP, LIAR_NO_OFFSET};
    for (size_t i = 0; i < 4; i++) {
        capmem_rm_info_t before;
        capmem_rm_info_t after;
        assert_ok(capmem_rm_info(w.arena, rm, &before));
        capmem_stats_t s0 = {.size = sizeof(s0)};
        capmem_stats_t s1 = {.size = sizeof(s1)};
        assert_ok(capmem_stats(w.arena, &s0));
        ctl.mode = lies[i];
        capmem_rm_attach_attr_t aa = CAPMEM_RM_ATTACH_ATTR_INIT;
        aa.size = PAGE;
        uint64_t at = 0xdead;
        assert_err(capmem_rm_attach(w.arena, rm, ds, &aa, &at), CAPMEM_E_POLICY);
        assert_int_equal(at, 0xdead);
        assert_ok(capmem_rm_info(w.arena, rm, &after));
        assert_memory_equal(&before, &after, sizeof(before));
        assert_ok(capmem_stats(w.arena, &s1));
        assert_int_equal(s0.regions.current, s1.regions.current);
        CHECK_INVARIANTS(w.arena);
    }
    assert_int_equal(attach_anywhere(&w, rm, ds, PAGE) % PAGE, 0);
    assert_ok(capmem_rm_close(w.arena, rm));
    ram_world_close(&w);
}

static void test_region_map_attach_at_an_address_its_policy_refuses_is_a_conflict(void **state)
{
    (void)state;
    ram_world_t w;
    ram_world_open(&w, NULL);
    capmem_cap_t ds;
    assert_ok(capmem_ram_alloc(w.arena, w.client, 4 * PAGE, &ds));
    /* Watermark cannot place a block below its index. */
    const capmem_alloc_policy_t wm = CAPMEM_ALLOC_POLICY(CAPMEM_ALLOC_WATERMARK);
    capmem_cap_t rm = open_map(&w, &wm);
    assert_int_equal(attach_anywhere(&w, rm, ds, 2 * PAGE), 0);
    assert_int_equal(attach_anywhere(&w, rm, ds, 2 * PAGE), 2 * PAGE);
    assert_ok(capmem_rm_detach(w.arena, rm, 0));
    CHECK_INVARIANTS(w.arena);
    capmem_rm_info_t before;
    capmem_rm_info_t after;
    assert_ok(capmem_rm_info(w.arena, rm, &before));
    capmem_rm_attach_attr_t fixed = CAPMEM_RM_ATTACH_ATTR_INIT;
    fixed.size = PAGE;
    fixed.at = 0;
    uint64_t at = 0xdead;
    assert_err(capmem_rm_attach(w.arena, rm, ds, &fixed, &at), CAPMEM_E_REGION_CONFLICT);
    assert_int_equal(at, 0xdead);
    assert_ok(capmem_rm_info(w.arena, rm, &after));
    assert_memory_equal(&before, &after, sizeof(before));
    CHECK_INVARIANTS(w.arena);
    /* A bad recipe: the map is not opened. */
    capmem_alloc_ops_t no_create = next_fit_ops;
    no_create.create = NULL;
    capmem_rm_open_attr_t oa = CAPMEM_RM_OPEN_ATTR_INIT;
    oa.size = 16 * PAGE;
    oa.policy = CAPMEM_ALLOC_POLICY_CUSTOM(&no_create, NULL);
    capmem_ram_info_t r0;
    capmem_ram_info_t r1;
    assert_ok(capmem_ram_info(w.arena, w.client, &r0));
    capmem_cap_t bad = CAPMEM_CAP_NULL;
    assert_err(capmem_rm_open(w.arena, w.client, &oa, &bad), CAPMEM_E_INVALID_ARGS);
    assert_int_equal(bad, CAPMEM_CAP_NULL);
    assert_ok(capmem_ram_info(w.arena, w.client, &r1));
    assert_memory_equal(&r0, &r1, sizeof(r0));
    assert_ok(capmem_rm_close(w.arena, rm));
    ram_world_close(&w);
}

/* ---- random steps, the checker after each ----------------------------------------- */

static uint64_t next_rand(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static int acceptable(capmem_err_t err)
{
    return err == CAPMEM_OK || err == CAPMEM_E_OUT_OF_PHYS || err == CAPMEM_E_OUT_OF_RAM ||
           err == CAPMEM_E_OUT_OF_METADATA || err == CAPMEM_E_NOT_ENOUGH_MEMORY;
}

/*
 * Dataspaces, first-class and dependent aliases and region maps with every
 * policy, at random: every call succeeds or runs out of something, and the
 * checker (the RAM service's page map inside the policy's blocks, the
 * policy's and the map's own invariants) passes after every step.
 */
static void test_random_steps_with_every_policy_keep_every_invariant(void **state)
{
    (void)state;
    liar_ctl_t ctl = {0};
    const capmem_alloc_policy_t recipes[] = {
        CAPMEM_ALLOC_POLICY(CAPMEM_ALLOC_WATERMARK),
        CAPMEM_ALLOC_POLICY(CAPMEM_ALLOC_RANGE),
        CAPMEM_ALLOC_POLICY(CAPMEM_ALLOC_BUDDY),
        CAPMEM_ALLOC_POLICY_CUSTOM(&next_fit_ops, NULL),
        CAPMEM_ALLOC_POLICY_CUSTOM(&liar_ops, &ctl), /* lies now and then */
    };
    const int steps = test_under_valgrind() ? 150 : 1500;
    uint64_t lies = 0;
    for (size_t r = 0; r < 5; r++) {
        ram_world_t w;
        ram_world_open(&w, &recipes[r]);
        assert_ok(capmem_ram_set_expanding(w.arena, w.client, true, 0));
        capmem_cap_t rm = open_map(&w, &recipes[r]);
        capmem_cap_t ds[32] = {0};
        uint64_t pages[32] = {0};
        capmem_cap_t regions_at[32] = {0};
        uint64_t addr[32] = {0};
        uint64_t seed = 1000 + r;
        for (int i = 0; i < steps; i++) {
            uint64_t k = next_rand(&seed);
            size_t slot = (size_t)(next_rand(&seed) % 32);
            capmem_err_t err = CAPMEM_OK;
            /* The liar's next answer (alloc, alias record's chunk, attach) may be a lie. */
            ctl.mode = r == 4 && next_rand(&seed) % 8 == 0 ? (liar_mode_t)(1 + next_rand(&seed) % 4)
                                                           : LIAR_HONEST;
            switch (k % 5) {
            case 0:
            case 1:
                if (ds[slot] == 0) {
                    pages[slot] = 1 + next_rand(&seed) % 6;
                    err = capmem_ram_alloc(w.arena, w.client, pages[slot] * PAGE, &ds[slot]);
                    if (err != CAPMEM_OK) {
                        ds[slot] = 0;
                    }
                } else {
                    err = capmem_ds_free(w.arena, ds[slot]);
                    ds[slot] = 0;
                    regions_at[slot] = 0;
                }
                break;
            case 2:
                if (ds[slot] != 0 && ds[(slot + 1) % 32] == 0) {
                    capmem_alias_attr_t aa = CAPMEM_ALIAS_ATTR_INIT;
                    aa.offset = (next_rand(&seed) % pages[slot]) * PAGE;
                    aa.size = PAGE;
                    aa.lifetime = (k >> 8) & 1 ? CAPMEM_ALIAS_FIRST_CLASS : CAPMEM_ALIAS_DEPENDENT;
                    size_t to = (slot + 1) % 32;
                    err = capmem_ds_alias(w.arena, w.client, ds[slot], &aa, &ds[to]);
                    if (err == CAPMEM_OK) {
                        pages[to] = 1;
                    } else {
                        ds[to] = 0;
                    }
                }
                break;
            case 3:
                if (ds[slot] != 0 && regions_at[slot] == 0) {
                    capmem_rm_attach_attr_t at = CAPMEM_RM_ATTACH_ATTR_INIT;
                    at.size = PAGE;
                    err = capmem_rm_attach(w.arena, rm, ds[slot], &at, &addr[slot]);
                    regions_at[slot] = err == CAPMEM_OK ? ds[slot] : 0;
                }
                break;
            default:
                if (regions_at[slot] != 0) {
                    /* The region may be gone with a dataspace freed by its original. */
                    err = capmem_rm_detach(w.arena, rm, addr[slot]);
                    err = err == CAPMEM_E_NOT_FOUND ? CAPMEM_OK : err;
                    regions_at[slot] = 0;
                }
                break;
            }
            if (err == CAPMEM_E_INVALID_CAP) {
                /* A dependent alias died with its original: forget it. */
                ds[slot] = 0;
                err = CAPMEM_OK;
            }
            if (err == CAPMEM_E_POLICY && r == 4) {
                lies++;
                err = CAPMEM_OK;
            }
            if (!acceptable(err)) {
                fail_msg("policy %zu step %d: %s (%s)", r, i, capmem_err_name(err),
                         capmem_last_error()->message);
            }
            CHECK_INVARIANTS(w.arena);
        }
        assert_ok(capmem_rm_close(w.arena, rm));
        assert_ok(capmem_ram_close(w.arena, w.client));
        ram_world_close(&w);
    }
    assert_true(lies > 0); /* lies were told, and refused */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_policy_recipes_make_every_kind_and_refuse_bad_ones),
        cmocka_unit_test(test_alloc_stats_agree_with_a_walk_for_every_policy),
        cmocka_unit_test(
            test_alloc_stats_refuses_bad_arguments_and_writes_only_what_the_caller_knows),
        cmocka_unit_test(test_an_ops_table_initialised_positionally_leaves_the_new_hooks_null),
        cmocka_unit_test(test_ram_service_places_dataspaces_with_the_policy_it_was_created_with),
        cmocka_unit_test(test_ram_policy_hears_of_a_block_only_when_no_first_class_alias_keeps_it),
        cmocka_unit_test(test_ram_service_refuses_every_wrong_answer_and_changes_nothing),
        cmocka_unit_test(test_ram_service_creation_refuses_a_lie_and_a_bad_recipe),
        cmocka_unit_test(test_ram_service_creation_over_a_hole_its_policy_refuses_claims_nothing),
        cmocka_unit_test(test_ram_map_of_a_service_with_a_policy_shows_the_pages_in_use),
        cmocka_unit_test(test_checker_reports_a_ram_policy_that_finds_itself_broken),
        cmocka_unit_test(test_region_map_anywhere_follows_its_placement_policy),
        cmocka_unit_test(test_region_map_refuses_every_wrong_answer_and_changes_nothing),
        cmocka_unit_test(test_region_map_attach_at_an_address_its_policy_refuses_is_a_conflict),
        cmocka_unit_test(test_random_steps_with_every_policy_keep_every_invariant),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
