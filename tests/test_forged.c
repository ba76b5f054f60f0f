/* SPDX-License-Identifier: MIT */
/*
 * Forged handles: millions of random 64-bit values, passed to every call
 * that takes a handle (region maps included), never crash and always
 * return INVALID_CAP or WRONG_TYPE. The values mix pure noise with near misses: a valid type
 * byte, a live slot index with a wrong generation, stale handles of deleted
 * objects. Every value also goes to capmem_cap_identify. CAPMEM_FORGED=<n> sets the count (default
 * 10,000,000; 20,000 under Valgrind; 1,000,000 in sanitizer builds).
 *
 * In the plain build every value goes to every call (ten million values,
 * 41 calls: about two minutes); sanitizer builds spread their values over
 * the calls instead (CAPMEM_FORGED_ALL=1 forces every value everywhere,
 * CAPMEM_FORGED_ALL=0 spreads them).
 */
#define _POSIX_C_SOURCE 200809L
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "support.h"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define FORGED_DEFAULT 1000000ull
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define FORGED_DEFAULT 1000000ull
#endif
#endif
#ifndef FORGED_DEFAULT
#define FORGED_DEFAULT 10000000ull
#define FORGED_ALL_DEFAULT 1
#else
#define FORGED_ALL_DEFAULT 0
#endif

#define NCALLS 41

static uint64_t rng = 0x1234567;

static uint64_t next(void)
{
    uint64_t z = (rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static int bad(capmem_err_t e)
{
    return e == CAPMEM_E_INVALID_CAP || e == CAPMEM_E_WRONG_TYPE;
}

#define CHECK_CALL(call)                                                                           \
    do {                                                                                           \
        capmem_err_t e_ = (call);                                                                  \
        if (!bad(e_)) {                                                                            \
            fail_msg("handle 0x%016" PRIx64 ": %s returned %s", h, #call, capmem_err_name(e_));    \
        }                                                                                          \
        calls++;                                                                                   \
    } while (0)

static void test_forged_handles_are_refused_everywhere(void **state)
{
    (void)state;
    capmem_arena_t *a = test_arena(4ull << 20, 4096);
    capmem_cap_t root;
    assert_ok(capmem_ram_boot(a, NULL, &root));
    capmem_ram_open_attr_t oa = CAPMEM_RAM_OPEN_ATTR_INIT;
    oa.quota = 1 << 20;
    capmem_cap_t acc;
    capmem_cap_t ds;
    capmem_cap_t stale;
    assert_ok(capmem_ram_open(a, root, &oa, &acc));
    assert_ok(capmem_ram_alloc(a, acc, 8192, &ds));
    assert_ok(capmem_ram_alloc(a, acc, 4096, &stale));
    assert_ok(capmem_ds_free(a, stale));
    /* A live region map with one region: calls that take a map and a dataspace get one good one. */
    capmem_rm_open_attr_t rma = CAPMEM_RM_OPEN_ATTR_INIT;
    rma.size = 16 * 4096;
    capmem_cap_t rm;
    capmem_cap_t rm_stale;
    uint64_t addr;
    assert_ok(capmem_rm_open(a, acc, &rma, &rm));
    assert_ok(capmem_rm_open(a, acc, &rma, &rm_stale));
    assert_ok(capmem_rm_close(a, rm_stale));
    capmem_rm_attach_attr_t rat = CAPMEM_RM_ATTACH_ATTR_INIT;
    assert_ok(capmem_rm_attach(a, rm, ds, &rat, &addr));
    size_t caps_before = capmem_cap_count(a);
    const char *env = getenv("CAPMEM_FORGED");
    uint64_t n = env != NULL             ? strtoull(env, NULL, 0)
                 : test_under_valgrind() ? 20000
                                         : FORGED_DEFAULT;
    uint64_t calls = 0;
    const char *all_env = getenv("CAPMEM_FORGED_ALL");
    const int all = all_env != NULL ? atoi(all_env) != 0 : FORGED_ALL_DEFAULT;
    uint64_t skipped = 0;
    struct timespec t0;
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (uint64_t i = 0; i < n; i++) {
        uint64_t r = next();
        capmem_cap_t h;
        switch (i & 3) {
        case 0:
            h = r;
            break; /* noise */
        case 1:
            h = (r & 0x00ffffffffffffffull) | ((uint64_t)(r % 8) << 56);
            break; /* type ok */
        case 2:
            h = (r & 0xffffffff00000000ull) | (r % 64);
            break; /* live-ish slot index */
        default:
            h = (((r >> 8) & 1 ? rm_stale : stale) & 0x00ffffffffffffffull) |
                ((uint64_t)(r % 8) << 56);
            break;
        }
        capmem_cap_info_t ci;
        if (capmem_cap_identify(a, h, &ci) == CAPMEM_OK) {
            skipped++; /* by chance a live handle: not forged */
            continue;
        }
        capmem_cap_t out;
        capmem_ram_info_t ri;
        capmem_ds_info_t di;
        capmem_untyped_info_t ui;
        capmem_object_info_t oi;
        uint8_t buf[8] = {0};
        capmem_ram_open_attr_t o2 = CAPMEM_RAM_OPEN_ATTR_INIT;
        capmem_alias_attr_t al = CAPMEM_ALIAS_ATTR_INIT;
        capmem_retype_attr_t ra = CAPMEM_RETYPE_ATTR_INIT;
        capmem_rm_open_attr_t rc = CAPMEM_RM_OPEN_ATTR_INIT;
        rc.size = 4096;
        capmem_rm_attach_attr_t ratt = CAPMEM_RM_ATTACH_ATTR_INIT;
        capmem_rm_state_t rs;
        capmem_rm_info_t rinf;
        capmem_rm_region_t rreg;
        uint64_t where;
        /*
         * Identify failed, so every call must refuse the handle. By default
         * each value goes to one call in turn (every call sees n / 41
         * values); CAPMEM_FORGED_ALL=1 passes every value to every call.
         */
        for (int c = all ? 0 : (int)(i % NCALLS); c < NCALLS; c++) {
            switch (c) {
            case 0:
                CHECK_CALL(capmem_cap_mint(a, h, CAPMEM_RIGHT_READ, &out));
                break;
            case 1:
                CHECK_CALL(capmem_cap_delete(a, h));
                break;
            case 2:
                CHECK_CALL(capmem_cap_revoke(a, h));
                break;
            case 3:
                CHECK_CALL(capmem_ram_open(a, h, &o2, &out));
                break;
            case 4:
                CHECK_CALL(capmem_ram_close(a, h));
                break;
            case 5:
                CHECK_CALL(capmem_ram_transfer(a, h, acc, 4096));
                break;
            case 6:
                CHECK_CALL(capmem_ram_transfer(a, acc, h, 4096));
                break;
            case 7:
                CHECK_CALL(capmem_ram_transfer_caps(a, h, root, 1));
                break;
            case 8:
                CHECK_CALL(capmem_ram_upgrade(a, h, root, 4096));
                break;
            case 9:
                CHECK_CALL(capmem_ram_upgrade(a, acc, h, 4096));
                break;
            case 10:
                CHECK_CALL(capmem_ram_set_expanding(a, h, 1, 0));
                break;
            case 11:
                CHECK_CALL(capmem_ram_info(a, h, &ri));
                break;
            case 12:
                CHECK_CALL(capmem_ram_alloc(a, h, 4096, &out));
                break;
            case 13:
                CHECK_CALL(capmem_ds_free(a, h));
                break;
            case 14:
                CHECK_CALL(capmem_ds_info(a, h, &di));
                break;
            case 15:
                CHECK_CALL(capmem_ds_read(a, h, 0, buf, sizeof(buf)));
                break;
            case 16:
                CHECK_CALL(capmem_ds_write(a, h, 0, buf, sizeof(buf)));
                break;
            case 17:
                CHECK_CALL(capmem_ds_alias(a, h, ds, &al, &out));
                break;
            case 18:
                CHECK_CALL(capmem_ds_alias(a, acc, h, &al, &out));
                break;
            case 19:
                CHECK_CALL(capmem_ds_free(a, h));
                break;
            case 20:
                CHECK_CALL(capmem_untyped_retype(a, h, &ra, &out, 1));
                break;
            case 21:
                CHECK_CALL(capmem_untyped_copy(a, h, &out));
                break;
            case 22:
                CHECK_CALL(capmem_untyped_info(a, h, &ui));
                break;
            case 23:
                CHECK_CALL(capmem_untyped_set_policy(a, h, CAPMEM_UNTYPED_RANGE, NULL));
                break;
            case 24:
                CHECK_CALL(capmem_object_info(a, h, &oi));
                break;
            case 25:
                CHECK_CALL(capmem_frame_read(a, h, 0, buf, sizeof(buf)));
                break;
            case 26:
                CHECK_CALL(capmem_frame_write(a, h, 0, buf, sizeof(buf)));
                break;
            case 27:
                CHECK_CALL(capmem_rm_open(a, h, &rc, &out));
                break;
            case 28:
                CHECK_CALL(capmem_rm_close(a, h));
                break;
            case 29:
                CHECK_CALL(capmem_rm_attach(a, h, ds, &ratt, &where));
                break;
            case 30:
                CHECK_CALL(capmem_rm_attach(a, rm, h, &ratt, &where));
                break;
            case 31:
                CHECK_CALL(capmem_rm_detach(a, h, addr));
                break;
            case 32:
                CHECK_CALL(capmem_rm_set_fault_handler(a, h, NULL, NULL));
                break;
            case 33:
                CHECK_CALL(capmem_rm_state(a, h, &rs));
                break;
            case 34:
                CHECK_CALL(capmem_rm_read(a, h, 0, buf, sizeof(buf)));
                break;
            case 35:
                CHECK_CALL(capmem_rm_write(a, h, 0, buf, sizeof(buf)));
                break;
            case 36:
                CHECK_CALL(capmem_rm_touch(a, h, 0, sizeof(buf), CAPMEM_RM_EXEC));
                break;
            case 37:
                CHECK_CALL(capmem_rm_lookup(a, h, addr, &rreg));
                break;
            case 38:
                CHECK_CALL(capmem_rm_info(a, h, &rinf));
                break;
            case 39:
                CHECK_CALL(capmem_rm_dataspace(a, h, &out));
                break;
            case 40:
                CHECK_CALL(capmem_rm_upgrade(a, rm, h, 4096));
                break;
            }
            if (!all) {
                break;
            }
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    printf("# %" PRIu64 " forged handles (%" PRIu64 " live by chance, skipped), %" PRIu64
           " calls in %.2f s\n",
           n, skipped, calls, s);
    assert_int_equal(capmem_cap_count(a), caps_before);
    capmem_rm_info_t mi;
    assert_ok(capmem_rm_info(a, rm, &mi));
    assert_int_equal(mi.regions, 1);
    CHECK_INVARIANTS(a);
    capmem_arena_destroy(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_forged_handles_are_refused_everywhere),
    };
    return cmocka_run_group_tests_name("forged", tests, NULL, NULL);
}
