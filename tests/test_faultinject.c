/* SPDX-License-Identifier: MIT */
/*
 * Fault injection: for each host resource kind (malloc, mmap, memfd,
 * ftruncate), make the n-th operation of that kind fail, for n = 1, 2, ...
 * until the scenario runs through without reaching n. Every injected failure
 * must surface as a clean error (HOST_NOMEM or SYSTEM, or a checked
 * fallback), leave the arena consistent (the checker passes once injection
 * is disarmed) and leak nothing (Valgrind in scripts/check).
 *
 * The hook is process-global: this executable runs its tests one by one,
 * with no other threads.
 */
#include <inttypes.h>
#include <stdio.h>

#include "internal.h"
#include "support.h"

static int clean(capmem_err_t e)
{
    return e == CAPMEM_OK || e == CAPMEM_E_HOST_NOMEM || e == CAPMEM_E_SYSTEM;
}

#define STEP(call)                                                                                 \
    do {                                                                                           \
        capmem_err_t e_ = (call);                                                                  \
        if (!clean(e_)) {                                                                          \
            fail_msg("n=%" PRIu64 ": %s returned %s: %s", n, #call, capmem_err_name(e_),           \
                     capmem_last_error()->message);                                                \
        }                                                                                          \
        if (e_ != CAPMEM_OK) {                                                                     \
            failures++;                                                                            \
            goto check;                                                                            \
        }                                                                                          \
    } while (0)

/* The scenario's pager: attach a page of its dataspace at the fault, remember the result. */
typedef struct pager {
    capmem_cap_t ds;
    capmem_err_t err;
} pager_t;

static capmem_rm_fault_result_t pager(capmem_arena_t *arena, const capmem_rm_fault_t *f, void *ctx)
{
    pager_t *p = ctx;
    capmem_rm_attach_attr_t at = CAPMEM_RM_ATTACH_ATTR_INIT;
    at.size = 4096;
    at.at = f->address & ~(uint64_t)4095;
    uint64_t addr;
    p->err = capmem_rm_attach(arena, f->rm, p->ds, &at, &addr);
    return p->err == CAPMEM_OK ? CAPMEM_RM_FAULT_RESOLVED : CAPMEM_RM_FAULT_UNRESOLVED;
}

/* Events are listened to, so their queue is one of the host allocations. */
static void count_event(capmem_arena_t *arena, const capmem_event_t *ev, void *ctx)
{
    (void)arena;
    (void)ev;
    (*(uint64_t *)ctx)++;
}

/* An access that faults: a failure inside the handler's attach is the one that counts. */
static capmem_err_t via_pager(capmem_err_t e, const pager_t *p)
{
    return e == CAPMEM_E_UNRESOLVED_FAULT && p->err != CAPMEM_OK ? p->err : e;
}

/*
 * The scenario: an arena, boot untypeds, a RAM service, a session, a
 * dataspace and aliases, region maps (create, attach, a fault resolved by
 * the handler, a managed dataspace nested into a second map, metadata
 * upgrades of an expanding map, detach, close), retypes with every policy,
 * a close. Returns 1 if some step failed (an injected failure), 0 if it ran
 * through.
 */
/* A whole dump (its physical map takes a buffer) to nowhere. */
static capmem_err_t dump_to_null(capmem_arena_t *a)
{
    FILE *f = fopen("/dev/null", "w");
    assert_non_null(f);
    capmem_err_t e = capmem_dump(a, f, CAPMEM_DUMP_JSON);
    fclose(f);
    return e;
}
/* Set by a test: the RAM service places with buddy and the maps with range (issue 15). */
static int with_policies;

static int scenario(uint64_t n, int anon)
{
    int failures = 0;
    capmem_arena_t *a = NULL;
    capmem_arena_attr_t at = CAPMEM_ARENA_ATTR_INIT;
    at.ram_size = 3ull << 20;
    at.phys_base = 0x100000;
    at.cap_slots = 1u << 12;
    at.flags = anon ? CAPMEM_ARENA_FORCE_ANON : 0;
    capmem_err_t e = capmem_arena_create(&at, &a);
    if (e != CAPMEM_OK) {
        if (!clean(e) || a != NULL) {
            fail_msg("n=%" PRIu64 ": arena_create returned %s, out %p", n, capmem_err_name(e),
                     (void *)a);
        }
        capmem__inject_reset();
        return 1;
    }
    {
        capmem_untyped_info_t boot[4];
        size_t nb = 0;
        capmem_cap_t root;
        capmem_cap_t acc;
        capmem_cap_t ds;
        capmem_cap_t al;
        capmem_cap_t kids[4];
        capmem_cap_t sub[2];
        uint64_t events = 0;
        char why[256];
        STEP(capmem_arena_set_event_handler(a, count_event, &events));
        STEP(capmem_untyped_boot(a, boot, 4, &nb));
        capmem_ram_attr_t rattr = CAPMEM_RAM_ATTR_INIT;
        if (with_policies) {
            rattr.policy = CAPMEM_ALLOC_POLICY(CAPMEM_ALLOC_BUDDY);
        }
        STEP(capmem_ram_create(a, &boot[1].cap, 1, &rattr, &root));
        capmem_ram_open_attr_t oa = CAPMEM_RAM_OPEN_ATTR_INIT;
        oa.quota = 256 * 1024;
        oa.flags = CAPMEM_RAM_EXPANDING;
        STEP(capmem_ram_open(a, root, &oa, &acc));
        STEP(capmem_ram_alloc(a, acc, 4 * 4096, &ds));
        capmem_alias_attr_t aa = CAPMEM_ALIAS_ATTR_INIT;
        aa.lifetime = CAPMEM_ALIAS_FIRST_CLASS;
        aa.size = 4096;
        STEP(capmem_ds_alias(a, acc, ds, &aa, &al));
        STEP(capmem_ds_free(a, ds));
        /* The checker needs host memory too: without it, it says so and is not wrong. */
        STEP(capmem_check(a, why, sizeof(why)));
        /* Region maps. */
        capmem_cap_t rm;
        capmem_cap_t outer;
        capmem_cap_t mds;
        pager_t pg = {CAPMEM_CAP_NULL, CAPMEM_OK};
        uint64_t addr;
        uint8_t buf[64] = {1, 2, 3};
        STEP(capmem_ram_alloc(a, acc, 8 * 4096, &pg.ds));
        capmem_rm_open_attr_t ma = CAPMEM_RM_OPEN_ATTR_INIT;
        ma.size = 128 * 4096;
        ma.donation = 4096; /* 59 regions, then the expanding map upgrades */
        ma.flags = CAPMEM_RM_EXPANDING;
        if (with_policies) {
            ma.policy = CAPMEM_ALLOC_POLICY(CAPMEM_ALLOC_RANGE);
        }
        STEP(capmem_rm_open(a, acc, &ma, &rm));
        STEP(capmem_rm_set_fault_handler(a, rm, pager, &pg));
        capmem_rm_attach_attr_t rat = CAPMEM_RM_ATTACH_ATTR_INIT;
        rat.writable = 0;
        STEP(capmem_rm_attach(a, rm, al, &rat, &addr));
        pg.err = CAPMEM_OK;
        STEP(via_pager(capmem_rm_write(a, rm, 16 * 4096 + 8, buf, sizeof(buf)), &pg));
        STEP(capmem_rm_dataspace(a, rm, &mds));
        ma.size = 256 * 4096;
        ma.flags = 0;
        ma.donation = CAPMEM_RM_DEFAULT_DONATION;
        STEP(capmem_rm_open(a, acc, &ma, &outer));
        rat.at = 128 * 4096;
        STEP(capmem_rm_attach(a, outer, mds, &rat, &addr));
        /* Through the outer map into the inner one, where the inner map's handler pages. */
        pg.err = CAPMEM_OK;
        STEP(via_pager(capmem_rm_read(a, outer, 128 * 4096 + 40 * 4096, buf, sizeof(buf)), &pg));
        rat = (capmem_rm_attach_attr_t)CAPMEM_RM_ATTACH_ATTR_INIT;
        rat.size = 4096;
        for (int i = 0; i < 70; i++) {
            STEP(capmem_rm_attach(a, rm, pg.ds, &rat, &addr));
        }
        STEP(capmem_rm_detach(a, rm, addr));
        STEP(dump_to_null(a));
        STEP(capmem_rm_close(a, outer));
        capmem_retype_attr_t ra = CAPMEM_RETYPE_ATTR_INIT;
        ra.type = CAPMEM_OBJ_UNTYPED;
        ra.size_bits = 16;
        ra.count = 3;
        ra.child_policy = CAPMEM_UNTYPED_RANGE;
        STEP(capmem_untyped_retype(a, boot[0].cap, &ra, kids, 4));
        STEP(capmem_untyped_set_policy(a, kids[1], CAPMEM_UNTYPED_BUDDY, NULL));
        ra.type = CAPMEM_OBJ_FRAME;
        ra.size_bits = 12;
        ra.count = 2;
        STEP(capmem_untyped_retype(a, kids[0], &ra, sub, 2));
        STEP(capmem_untyped_retype(a, kids[1], &ra, sub, 2));
        STEP(capmem_cap_revoke(a, boot[0].cap));
        STEP(capmem_ram_close(a, acc));
    }
check:
    capmem__inject_reset();
    {
        char why[512];
        if (capmem_check(a, why, sizeof(why)) != CAPMEM_OK) {
            fail_msg("n=%" PRIu64 ": state inconsistent after an injected failure: %s", n, why);
        }
    }
    capmem_arena_destroy(a);
    return failures;
}

static void sweep(capmem__host_kind_t kind, int anon, const char *name)
{
    uint64_t n = 1;
    uint64_t failed = 0;
    for (;; n++) {
        capmem__inject_reset();
        capmem__inject_fail(kind, n);
        int f = scenario(n, anon);
        capmem__inject_reset();
        if (!f) {
            break; /* the n-th operation was never reached: every earlier one was tried */
        }
        failed++;
    }
    printf("# %s%s: %" PRIu64 " injection points, each a clean error\n", name,
           anon ? " (anonymous backing)" : "", failed);
}

static void test_faultinject_every_malloc_failure_is_clean(void **state)
{
    (void)state;
    sweep(CAPMEM__HOST_MALLOC, 0, "malloc");
}

static void test_faultinject_every_mmap_failure_is_clean(void **state)
{
    (void)state;
    sweep(CAPMEM__HOST_MMAP, 0, "mmap");
    sweep(CAPMEM__HOST_MMAP, 1, "mmap");
}

static void test_faultinject_memfd_and_ftruncate_failures_are_clean(void **state)
{
    (void)state;
    sweep(CAPMEM__HOST_MEMFD, 0, "memfd");
    sweep(CAPMEM__HOST_FTRUNCATE, 0, "ftruncate");
}

/* The same with placement policies in the RAM service and the region maps. */
static void test_faultinject_failures_with_placement_policies_are_clean(void **state)
{
    (void)state;
    with_policies = 1;
    sweep(CAPMEM__HOST_MALLOC, 0, "malloc (placement policies)");
    sweep(CAPMEM__HOST_MMAP, 0, "mmap (placement policies)");
    with_policies = 0;
}

static void test_faultinject_no_fd_leaks(void **state)
{
    (void)state;
    int before = test_open_fds();
    sweep(CAPMEM__HOST_MMAP, 0, "mmap (fd count)");
    sweep(CAPMEM__HOST_FTRUNCATE, 0, "ftruncate (fd count)");
    assert_int_equal(test_open_fds(), before);
}

/* The hook ignores kinds it does not know, and counts nothing for them. */
static void test_faultinject_hook_ignores_unknown_kinds(void **state)
{
    (void)state;
    capmem__inject_reset();
    capmem__inject_fail(CAPMEM__HOST_KIND_COUNT, 1);
    capmem__inject_fail((capmem__host_kind_t)-1, 1);
    capmem_arena_t *a = NULL;
    assert_int_equal(capmem_arena_create(NULL, &a), CAPMEM_OK);
    assert_int_equal(capmem__inject_count(CAPMEM__HOST_KIND_COUNT), 0);
    assert_int_equal(capmem__inject_count((capmem__host_kind_t)-1), 0);
    assert_true(capmem__inject_count(CAPMEM__HOST_MALLOC) >= 1); /* the arena record */
    capmem_arena_destroy(a);
    capmem__inject_reset();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_faultinject_every_malloc_failure_is_clean),
        cmocka_unit_test(test_faultinject_every_mmap_failure_is_clean),
        cmocka_unit_test(test_faultinject_memfd_and_ftruncate_failures_are_clean),
        cmocka_unit_test(test_faultinject_failures_with_placement_policies_are_clean),
        cmocka_unit_test(test_faultinject_no_fd_leaks),
        cmocka_unit_test(test_faultinject_hook_ignores_unknown_kinds),
    };
    return cmocka_run_group_tests_name("faultinject", tests, NULL, NULL);
}
