/* SPDX-License-Identifier: MIT */
/*
 * Shared test support: the reusable invariant checker every scenario and
 * property test calls after each step, and small helpers.
 */
#ifndef CAPMEM_TEST_SUPPORT_H
#define CAPMEM_TEST_SUPPORT_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "capmem.h"

/*
 * Run the library's invariant checker (capmem_check) over the whole arena
 * and fail the current test with the violation's text if any invariant is
 * broken. Call it after every step.
 */
#define CHECK_INVARIANTS(arena) test_check_invariants((arena), __FILE__, __LINE__)
void test_check_invariants(capmem_arena_t *arena, const char *file, int line);

/* Assert that an expression returns a given error code, with the detail on failure. */
#define assert_err(expr, code) test_assert_err((expr), (code), #expr, __FILE__, __LINE__)
#define assert_ok(expr) test_assert_err((expr), CAPMEM_OK, #expr, __FILE__, __LINE__)
void test_assert_err(capmem_err_t got, capmem_err_t want, const char *expr, const char *file,
                     int line);

/* An arena with the given RAM and page size (other attributes default). */
capmem_arena_t *test_arena(uint64_t ram_size, uint64_t page_size);

/*
 * Three MiB of RAM at physical 0, booted as seL4 does into two untypeds
 * (2 MiB at 0, 1 MiB at 2 MiB; @p boot gets both), the first retyped into
 * two 1 MiB halves (@p halves). Giving halves[0] and boot[1] to one RAM
 * service leaves a hole between its pools (halves[1]).
 */
capmem_arena_t *test_split_boot(capmem_untyped_info_t boot[2], capmem_cap_t halves[2]);

/*
 * The world most tests start from: an arena of @p ram bytes, its RAM
 * service booted (root), and, when @p client_quota is not 0, an account
 * "client" of the root with that quota and 4,096 capabilities. The checker
 * runs at both ends. close tolerates a world whose arena a test destroyed
 * itself (arena set to NULL).
 */
typedef struct test_world {
    capmem_arena_t *arena;
    capmem_cap_t root;
    capmem_cap_t client;
} test_world_t;

void test_world_open(test_world_t *w, uint64_t ram, uint64_t client_quota);
void test_world_close(test_world_t *w);

/*
 * The file fixture most test files start with: `fixture_t` (a test_world_t),
 * one static world `fx`, and the CMocka `setup` (test_world_open with @p ram
 * and @p client_quota, state set to &fx) and `teardown` (test_world_close).
 * Write TEST_WORLD_FIXTURE(ram, client_quota); once at file scope.
 */
#define TEST_WORLD_FIXTURE(ram, client_quota)                                                      \
    typedef test_world_t fixture_t;                                                                \
    static fixture_t fx;                                                                           \
    static int setup(void **state)                                                                 \
    {                                                                                              \
        test_world_open(&fx, (ram), (client_quota));                                               \
        *state = &fx;                                                                              \
        return 0;                                                                                  \
    }                                                                                              \
    static int teardown(void **state)                                                              \
    {                                                                                              \
        test_world_close(*state);                                                                  \
        return 0;                                                                                  \
    }                                                                                              \
    static fixture_t fx

/*
 * The same world with the arena's RAM at physical address @p phys_base
 * (test_world_open keeps the default, 0x100000). Close it with
 * test_world_close.
 */
void test_world_open_phys(test_world_t *w, uint64_t ram, uint64_t phys_base, uint64_t client_quota);

/* A RAM dataspace of @p size bytes from the world's client, filled with @p fill unless 0. */
capmem_cap_t test_ds_new(test_world_t *w, uint64_t size, uint8_t fill);

/* A region map of @p size bytes opened by the world's client, with @p label. */
capmem_cap_t test_rm_new(test_world_t *w, uint64_t size, const char *label);

/*
 * The seL4-style world the internal-state tests start from: an arena of
 * 3 MiB at physical 0x100000 with 4,096 capability slots and the given
 * device window, its two boot untypeds (ut keeps two frames retyped from
 * it; pool is claimed by a RAM service, root), an account acc of root with
 * 256 KiB of quota and @p label (NULL for none), and a 3-page dataspace ds
 * of acc. The checker runs at both ends.
 */
typedef struct test_boot_world {
    capmem_arena_t *arena;
    capmem_cap_t ut;   /* the first boot untyped, with two frames */
    capmem_cap_t pool; /* the second one, claimed by the RAM service */
    capmem_cap_t root;
    capmem_cap_t acc;
    capmem_cap_t ds;
    capmem_cap_t frames[2];
} test_boot_world_t;

void test_boot_world_open(test_boot_world_t *w, uint64_t device_window, const char *label);
void test_boot_world_close(test_boot_world_t *w);

/* True when the suite runs under Valgrind (the setup exports CAPMEM_UNDER_VALGRIND). */
int test_under_valgrind(void);

/* Number of open file descriptors of this process. */
int test_open_fds(void);

/* Resident set size of this process in bytes, from /proc/self/statm. */
uint64_t test_rss_bytes(void);

#endif
