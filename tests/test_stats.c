/* SPDX-License-Identifier: MIT */
/* Layer 9: statistics: capmem_stats() agrees with the *_info calls, and fails cleanly. */
#define _GNU_SOURCE
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "support.h"

#define PAGE 4096ull

TEST_WORLD_FIXTURE(64ull << 20, 16ull << 20);

static capmem_stats_t stats_of(capmem_arena_t *arena)
{
    capmem_stats_t s;
    memset(&s, 0, sizeof(s));
    s.size = sizeof(s);
    assert_ok(capmem_stats(arena, &s));
    assert_int_equal(s.size, sizeof(s));
    assert_int_equal(s.version, CAPMEM_STATS_VERSION);
    return s;
}

static uint64_t attach_at(fixture_t *f, capmem_cap_t rm, capmem_cap_t ds, uint64_t at)
{
    capmem_rm_attach_attr_t a = CAPMEM_RM_ATTACH_ATTR_INIT;
    a.at = at;
    a.executable = 1;
    uint64_t addr = 0;
    assert_ok(capmem_rm_attach(f->arena, rm, ds, &a, &addr));
    return addr;
}

static uint64_t records_used(fixture_t *f, const capmem_cap_t *accounts, size_t na,
                             const capmem_cap_t *maps, size_t nm)
{
    uint64_t n = 0;
    for (size_t i = 0; i < na; i++) {
        capmem_ram_info_t ri;
        assert_ok(capmem_ram_info(f->arena, accounts[i], &ri));
        n += ri.records_used;
    }
    for (size_t i = 0; i < nm; i++) {
        capmem_rm_info_t mi;
        assert_ok(capmem_rm_info(f->arena, maps[i], &mi));
        n += mi.records_used;
    }
    return n;
}

static uint64_t upgrades_of(fixture_t *f, const capmem_cap_t *accounts, size_t na,
                            const capmem_cap_t *maps, size_t nm)
{
    uint64_t n = 0;
    for (size_t i = 0; i < na; i++) {
        capmem_ram_info_t ri;
        assert_ok(capmem_ram_info(f->arena, accounts[i], &ri));
        n += ri.upgrades;
    }
    for (size_t i = 0; i < nm; i++) {
        capmem_rm_info_t mi;
        assert_ok(capmem_rm_info(f->arena, maps[i], &mi));
        n += mi.upgrades;
    }
    return n;
}

static void assert_stat_grew(const capmem_stat_t *before, const capmem_stat_t *after)
{
    assert_true(after->total >= before->total);
    assert_true(after->peak >= before->peak);
    assert_true(after->current <= after->peak);
    assert_true(after->peak <= after->total);
}

static void assert_totals_only_grow(const capmem_stats_t *b, const capmem_stats_t *a)
{
    assert_stat_grew(&b->caps, &a->caps);
    assert_stat_grew(&b->records, &a->records);
    assert_stat_grew(&b->dataspaces, &a->dataspaces);
    assert_stat_grew(&b->aliases, &a->aliases);
    assert_stat_grew(&b->regions, &a->regions);
    assert_stat_grew(&b->bytes_lent, &a->bytes_lent);
    assert_true(a->faults_read >= b->faults_read && a->faults_write >= b->faults_write &&
                a->faults_exec >= b->faults_exec && a->faults_resolved >= b->faults_resolved);
    assert_true(a->upgrades >= b->upgrades && a->retypes >= b->retypes &&
                a->revokes >= b->revokes && a->bytes_zeroed >= b->bytes_zeroed);
}

/* ---- agreement with the info calls ------------------------------------------------- */

static void test_stats_agree_with_info_calls_and_keep_peaks(void **state)
{
    fixture_t *f = *state;
    capmem_stats_t s0 = stats_of(f->arena);
    assert_int_equal(s0.caps.current, capmem_cap_count(f->arena));
    assert_int_equal(s0.dataspaces.current, 0);
    const capmem_cap_t accounts[] = {f->root, f->client};
    assert_int_equal(s0.records.current, records_used(f, accounts, 2, NULL, 0));

    capmem_cap_t ds[3];
    for (int i = 0; i < 3; i++) {
        assert_ok(capmem_ram_alloc(f->arena, f->client, 2 * PAGE, &ds[i]));
    }
    capmem_alias_attr_t aa = CAPMEM_ALIAS_ATTR_INIT;
    aa.size = PAGE;
    capmem_cap_t dep = CAPMEM_CAP_NULL;
    assert_ok(capmem_ds_alias(f->arena, f->client, ds[0], &aa, &dep));
    aa.lifetime = CAPMEM_ALIAS_FIRST_CLASS;
    aa.offset = PAGE;
    capmem_cap_t fc = CAPMEM_CAP_NULL;
    assert_ok(capmem_ds_alias(f->arena, f->client, ds[1], &aa, &fc));
    const capmem_cap_t rm = test_rm_new(f, 64 * PAGE, "map");
    attach_at(f, rm, ds[0], 0);
    attach_at(f, rm, ds[2], 8 * PAGE);
    attach_at(f, rm, fc, 16 * PAGE);
    assert_ok(capmem_ram_upgrade(f->arena, f->client, f->root, 4 * PAGE));
    assert_ok(capmem_rm_upgrade(f->arena, rm, f->client, 4 * PAGE));
    CHECK_INVARIANTS(f->arena);

    capmem_stats_t s1 = stats_of(f->arena);
    assert_totals_only_grow(&s0, &s1);
    capmem_rm_info_t mi;
    assert_ok(capmem_rm_info(f->arena, rm, &mi));
    assert_int_equal(s1.caps.current, capmem_cap_count(f->arena));
    assert_int_equal(s1.dataspaces.current, 3);
    assert_int_equal(s1.dataspaces.total, 3);
    assert_int_equal(s1.aliases.current, 2);
    assert_int_equal(s1.regions.current, mi.regions);
    assert_int_equal(s1.regions.current, 3);
    assert_int_equal(s1.upgrades, upgrades_of(f, accounts, 2, &rm, 1));
    assert_int_equal(s1.upgrades - s0.upgrades, 2);
    assert_int_equal(s1.records.current, records_used(f, accounts, 2, &rm, 1));
    assert_int_equal(s1.bytes_lent.current, 0);
    /* Three dataspaces of two pages each were cleared at least. */
    assert_true(s1.bytes_zeroed - s0.bytes_zeroed >= 6 * PAGE);

    /* Freeing the original of a first-class alias lends its page. */
    assert_ok(capmem_ds_free(f->arena, ds[1]));
    capmem_ram_info_t ci;
    assert_ok(capmem_ram_info(f->arena, f->client, &ci));
    capmem_stats_t s2 = stats_of(f->arena);
    assert_totals_only_grow(&s1, &s2);
    assert_int_equal(ci.lent, PAGE);
    assert_int_equal(s2.bytes_lent.current, ci.lent);
    assert_int_equal(s2.bytes_lent.total, PAGE);

    /* Free everything: currents fall, peaks stay at the high-water mark. */
    assert_ok(capmem_ds_free(f->arena, fc));
    assert_ok(capmem_ds_free(f->arena, ds[0])); /* takes the dependent alias along */
    assert_ok(capmem_ds_free(f->arena, ds[2]));
    assert_ok(capmem_rm_close(f->arena, rm));
    CHECK_INVARIANTS(f->arena);
    capmem_stats_t s3 = stats_of(f->arena);
    assert_totals_only_grow(&s2, &s3);
    assert_int_equal(s3.caps.current, capmem_cap_count(f->arena));
    assert_int_equal(s3.caps.current, s0.caps.current);
    assert_true(s3.caps.peak >= s1.caps.current);
    assert_int_equal(s3.dataspaces.current, 0);
    assert_int_equal(s3.dataspaces.peak, 3);
    assert_int_equal(s3.aliases.current, 0);
    assert_int_equal(s3.aliases.peak, 2);
    assert_int_equal(s3.aliases.total, 2);
    assert_int_equal(s3.regions.current, 0);
    assert_int_equal(s3.regions.peak, 3);
    assert_int_equal(s3.bytes_lent.current, 0);
    assert_int_equal(s3.bytes_lent.peak, PAGE);
    assert_int_equal(s3.records.current, records_used(f, accounts, 2, NULL, 0));
    assert_true(s3.records.peak >= s1.records.current);
    CHECK_INVARIANTS(f->arena);
}

static void test_stats_count_retypes_revokes_and_zeroed_bytes(void **state)
{
    (void)state;
    capmem_arena_t *a = test_arena(1ull << 20, PAGE);
    capmem_untyped_info_t boot[4];
    size_t n = 0;
    assert_ok(capmem_untyped_boot(a, boot, 4, &n));
    capmem_stats_t s0 = stats_of(a);
    assert_int_equal(s0.caps.current, capmem_cap_count(a));
    assert_int_equal(s0.retypes, 0);

    capmem_retype_attr_t at = CAPMEM_RETYPE_ATTR_INIT;
    at.count = 3;
    capmem_cap_t frames[3];
    assert_ok(capmem_untyped_retype(a, boot[0].cap, &at, frames, 3));
    capmem_stats_t s1 = stats_of(a);
    assert_totals_only_grow(&s0, &s1);
    assert_int_equal(s1.retypes, 1);
    assert_int_equal(s1.caps.current, s0.caps.current + 3);
    assert_int_equal(s1.caps.current, capmem_cap_count(a));
    assert_int_equal(s1.bytes_zeroed - s0.bytes_zeroed, 3 * PAGE);

    capmem_cap_t copy = CAPMEM_CAP_NULL;
    assert_ok(capmem_cap_mint(a, frames[0], CAPMEM_RIGHT_READ, &copy));
    assert_ok(capmem_cap_revoke(a, boot[0].cap));
    capmem_stats_t s2 = stats_of(a);
    assert_totals_only_grow(&s1, &s2);
    assert_int_equal(s2.revokes, 1);
    assert_int_equal(s2.caps.current, s0.caps.current);
    assert_int_equal(s2.caps.current, capmem_cap_count(a));
    assert_int_equal(s2.caps.peak, s0.caps.current + 4);
    assert_int_equal(s2.caps.total, s0.caps.total + 4);
    CHECK_INVARIANTS(a);
    capmem_arena_destroy(a);
}

/* ---- a failed call changes nothing ------------------------------------------------------ */

static void assert_same_stats(capmem_arena_t *arena, const capmem_stats_t *before)
{
    capmem_stats_t now = stats_of(arena);
    assert_memory_equal(&now, before, sizeof(now));
}

static void test_stats_failed_calls_change_no_statistic(void **state)
{
    fixture_t *f = *state;
    capmem_cap_t ds = CAPMEM_CAP_NULL;
    assert_ok(capmem_ram_alloc(f->arena, f->client, PAGE, &ds));
    const capmem_cap_t rm = test_rm_new(f, 16 * PAGE, "map");
    attach_at(f, rm, ds, 0);
    capmem_stats_t before = stats_of(f->arena);

    capmem_cap_t out = CAPMEM_CAP_NULL;
    assert_err(capmem_ram_alloc(f->arena, f->client, 1ull << 30, &out), CAPMEM_E_OUT_OF_RAM);
    assert_same_stats(f->arena, &before);
    capmem_alias_attr_t aa = CAPMEM_ALIAS_ATTR_INIT;
    aa.offset = 8 * PAGE;
    assert_err(capmem_ds_alias(f->arena, f->client, ds, &aa, &out), CAPMEM_E_INVALID_ARGS);
    assert_same_stats(f->arena, &before);
    capmem_rm_attach_attr_t at = CAPMEM_RM_ATTACH_ATTR_INIT;
    at.at = 0; /* taken */
    uint64_t addr = 0;
    assert_err(capmem_rm_attach(f->arena, rm, ds, &at, &addr), CAPMEM_E_REGION_CONFLICT);
    assert_same_stats(f->arena, &before);
    assert_err(capmem_rm_detach(f->arena, rm, 8 * PAGE), CAPMEM_E_NOT_FOUND);
    assert_same_stats(f->arena, &before);
    assert_err(capmem_ram_upgrade(f->arena, f->client, f->root, 1ull << 40), CAPMEM_E_OUT_OF_RAM);
    assert_same_stats(f->arena, &before);
    assert_err(capmem_cap_revoke(f->arena, ds + 1), CAPMEM_E_INVALID_CAP);
    assert_same_stats(f->arena, &before);
    assert_err(capmem_cap_delete(f->arena, f->client), CAPMEM_E_REVOKE_FIRST);
    assert_same_stats(f->arena, &before);
    capmem_retype_attr_t rt = CAPMEM_RETYPE_ATTR_INIT;
    capmem_cap_t obj = CAPMEM_CAP_NULL;
    assert_err(capmem_untyped_retype(f->arena, ds, &rt, &obj, 1), CAPMEM_E_WRONG_TYPE);
    assert_same_stats(f->arena, &before);
    /* Out of range before any fault: no fault is delivered, none is counted. */
    uint8_t b = 0;
    assert_err(capmem_rm_read(f->arena, rm, 16 * PAGE, &b, 1), CAPMEM_E_RANGE);
    assert_same_stats(f->arena, &before);
    CHECK_INVARIANTS(f->arena);
}

/* ---- faults --------------------------------------------------------------------------- */

typedef struct pager {
    capmem_cap_t ds;
    int calls;
} pager_t;

static capmem_rm_fault_result_t page_in(capmem_arena_t *arena, const capmem_rm_fault_t *fault,
                                        void *ctx)
{
    pager_t *p = ctx;
    p->calls++;
    capmem_rm_attach_attr_t a = CAPMEM_RM_ATTACH_ATTR_INIT;
    a.at = fault->address & ~(PAGE - 1);
    a.size = PAGE;
    a.executable = 1;
    uint64_t addr = 0;
    return capmem_rm_attach(arena, fault->rm, p->ds, &a, &addr) == CAPMEM_OK
               ? CAPMEM_RM_FAULT_RESOLVED
               : CAPMEM_RM_FAULT_UNRESOLVED;
}

static void test_stats_count_faults_by_kind_with_and_without_a_handler(void **state)
{
    fixture_t *f = *state;
    const capmem_cap_t rm = test_rm_new(f, 16 * PAGE, "map");
    capmem_stats_t s0 = stats_of(f->arena);
    uint8_t buf[8] = {0};

    /* No handler: each access faults once and fails. */
    assert_err(capmem_rm_read(f->arena, rm, 0, buf, sizeof(buf)), CAPMEM_E_UNRESOLVED_FAULT);
    assert_err(capmem_rm_write(f->arena, rm, PAGE, buf, sizeof(buf)), CAPMEM_E_UNRESOLVED_FAULT);
    assert_err(capmem_rm_touch(f->arena, rm, 2 * PAGE, 1, CAPMEM_RM_EXEC),
               CAPMEM_E_UNRESOLVED_FAULT);
    assert_err(capmem_rm_touch(f->arena, rm, 3 * PAGE, 1, CAPMEM_RM_WRITE),
               CAPMEM_E_UNRESOLVED_FAULT);
    capmem_stats_t s1 = stats_of(f->arena);
    assert_int_equal(s1.faults_read - s0.faults_read, 1);
    assert_int_equal(s1.faults_write - s0.faults_write, 2);
    assert_int_equal(s1.faults_exec - s0.faults_exec, 1);
    assert_int_equal(s1.faults_resolved, s0.faults_resolved);
    CHECK_INVARIANTS(f->arena);

    /* A pager attaching a page on demand resolves each fault. */
    pager_t p = {.ds = CAPMEM_CAP_NULL};
    assert_ok(capmem_ram_alloc(f->arena, f->client, PAGE, &p.ds));
    assert_ok(capmem_rm_set_fault_handler(f->arena, rm, page_in, &p));
    capmem_stats_t s2 = stats_of(f->arena);
    assert_ok(capmem_rm_read(f->arena, rm, 4 * PAGE, buf, sizeof(buf)));
    assert_ok(capmem_rm_write(f->arena, rm, 5 * PAGE, buf, sizeof(buf)));
    assert_ok(capmem_rm_touch(f->arena, rm, 6 * PAGE, 1, CAPMEM_RM_EXEC));
    /* Attached now: no fault. */
    assert_ok(capmem_rm_read(f->arena, rm, 4 * PAGE, buf, sizeof(buf)));
    capmem_stats_t s3 = stats_of(f->arena);
    assert_int_equal(p.calls, 3);
    assert_int_equal(s3.faults_read - s2.faults_read, 1);
    assert_int_equal(s3.faults_write - s2.faults_write, 1);
    assert_int_equal(s3.faults_exec - s2.faults_exec, 1);
    assert_int_equal(s3.faults_resolved - s2.faults_resolved, 3);
    assert_int_equal(s3.regions.current - s2.regions.current, 3);

    capmem_rm_info_t mi;
    assert_ok(capmem_rm_info(f->arena, rm, &mi));
    assert_int_equal(s3.faults_read + s3.faults_write + s3.faults_exec, mi.faults);
    assert_int_equal(s3.regions.current, mi.regions);
    assert_totals_only_grow(&s0, &s3);
    CHECK_INVARIANTS(f->arena);
}

/* ---- versions and errors ------------------------------------------------------------ */

static void test_stats_older_smaller_struct_gets_only_its_fields(void **state)
{
    fixture_t *f = *state;
    const capmem_stats_t full = stats_of(f->arena);
    /* A caller whose header ended before the regions. */
    const size_t old = offsetof(capmem_stats_t, regions);
    unsigned char buf[sizeof(capmem_stats_t) + 32];
    memset(buf, 0xab, sizeof(buf));
    capmem_stats_t *s = (capmem_stats_t *)(void *)buf;
    s->size = old;
    assert_ok(capmem_stats(f->arena, s));
    assert_int_equal(s->size, old);
    assert_int_equal(s->version, CAPMEM_STATS_VERSION);
    assert_memory_equal(&s->caps, &full.caps, old - offsetof(capmem_stats_t, caps));
    for (size_t i = old; i < sizeof(buf); i++) {
        assert_int_equal(buf[i], 0xab);
    }
    /* The oldest size accepted. */
    memset(buf, 0xab, sizeof(buf));
    s->size = CAPMEM_STATS_SIZE_MIN;
    assert_ok(capmem_stats(f->arena, s));
    assert_int_equal(s->size, CAPMEM_STATS_SIZE_MIN);
    assert_int_equal(buf[CAPMEM_STATS_SIZE_MIN], 0xab);
    /* A newer caller's bigger struct: told how much this library filled. */
    memset(buf, 0xab, sizeof(buf));
    s->size = sizeof(buf);
    assert_ok(capmem_stats(f->arena, s));
    assert_int_equal(s->size, sizeof(capmem_stats_t));
    assert_int_equal(buf[sizeof(capmem_stats_t)], 0xab);
    CHECK_INVARIANTS(f->arena);
}

static void test_stats_bad_arguments_are_invalid_and_change_nothing(void **state)
{
    fixture_t *f = *state;
    capmem_stats_t s;
    s.size = sizeof(s);
    assert_err(capmem_stats(NULL, &s), CAPMEM_E_INVALID_ARGS);
    assert_err(capmem_stats(f->arena, NULL), CAPMEM_E_INVALID_ARGS);
    memset(&s, 0x5a, sizeof(s));
    s.size = CAPMEM_STATS_SIZE_MIN - 1;
    capmem_stats_t copy = s;
    assert_err(capmem_stats(f->arena, &s), CAPMEM_E_INVALID_ARGS);
    assert_memory_equal(&s, &copy, sizeof(s));
    s.size = 0;
    assert_err(capmem_stats(f->arena, &s), CAPMEM_E_INVALID_ARGS);
    CHECK_INVARIANTS(f->arena);
}

static void test_stats_from_a_forked_child_is_unsupported(void **state)
{
    fixture_t *f = *state;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        capmem_stats_t s;
        memset(&s, 0x5a, sizeof(s));
        s.size = sizeof(s);
        capmem_stats_t copy = s;
        int bad = capmem_stats(f->arena, &s) != CAPMEM_E_UNSUPPORTED;
        bad |= memcmp(&s, &copy, sizeof(s)) != 0;
        _exit(bad);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    CHECK_INVARIANTS(f->arena);
}

typedef struct probe {
    capmem_arena_t *arena;
    capmem_err_t err;
    int unchanged;
} probe_t;

static int stats_from_visitor(const capmem_cap_info_t *info, unsigned depth, void *ctx)
{
    (void)info;
    (void)depth;
    probe_t *p = ctx;
    capmem_stats_t s;
    memset(&s, 0x5a, sizeof(s));
    s.size = sizeof(s);
    capmem_stats_t copy = s;
    p->err = capmem_stats(p->arena, &s);
    p->unchanged = memcmp(&s, &copy, sizeof(s)) == 0;
    return 1;
}

static void test_stats_from_a_visitor_is_reentrant(void **state)
{
    fixture_t *f = *state;
    probe_t p = {.arena = f->arena};
    capmem_stats_t before = stats_of(f->arena);
    assert_ok(capmem_cap_walk(f->arena, f->root, stats_from_visitor, &p));
    assert_int_equal(p.err, CAPMEM_E_REENTRANT);
    assert_true(p.unchanged);
    assert_same_stats(f->arena, &before);
    CHECK_INVARIANTS(f->arena);
}

/* Adding a device range clears its part of the window: counted as bytes zeroed. */
static void test_stats_device_add_counts_bytes_zeroed(void **state)
{
    (void)state;
    capmem_arena_t *a = test_arena(1u << 20, PAGE); /* with a 1 MiB device window */
    const capmem_stats_t before = stats_of(a);
    capmem_device_info_t dev;
    assert_ok(capmem_arena_device_add(a, 0x40000000, 64 * PAGE, &dev));
    assert_int_equal(stats_of(a).bytes_zeroed, before.bytes_zeroed + 64 * PAGE);
    /* A refused add clears nothing. */
    assert_err(capmem_arena_device_add(a, 0x40000000, PAGE, &dev), CAPMEM_E_REGION_CONFLICT);
    assert_int_equal(stats_of(a).bytes_zeroed, before.bytes_zeroed + 64 * PAGE);
    CHECK_INVARIANTS(a);
    capmem_arena_destroy(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stats_device_add_counts_bytes_zeroed),
        cmocka_unit_test_setup_teardown(test_stats_agree_with_info_calls_and_keep_peaks, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_stats_count_retypes_revokes_and_zeroed_bytes, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_stats_failed_calls_change_no_statistic, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_stats_count_faults_by_kind_with_and_without_a_handler,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_stats_older_smaller_struct_gets_only_its_fields, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_stats_bad_arguments_are_invalid_and_change_nothing,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_stats_from_a_forked_child_is_unsupported, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_stats_from_a_visitor_is_reentrant, setup, teardown),
    };
    return cmocka_run_group_tests_name("stats", tests, NULL, NULL);
}
