/* SPDX-License-Identifier: MIT */
/* Layer 1: the arena. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "cap_internal.h"
#include "support.h"

static capmem_arena_t *const SENTINEL = (capmem_arena_t *)(uintptr_t)0x5a5a;

static void expect_create_fails(capmem_arena_attr_t attr, capmem_err_t want)
{
    capmem_arena_t *a = SENTINEL;
    assert_err(capmem_arena_create(&attr, &a), want);
    assert_ptr_equal(a, SENTINEL); /* out-parameter untouched on failure */
}

static void test_arena_defaults_and_queries(void **state)
{
    (void)state;
    capmem_arena_t *a = NULL;
    assert_ok(capmem_arena_create(NULL, &a));
    assert_int_equal(capmem_arena_ram_size(a), 64ull << 20);
    assert_int_equal(capmem_arena_page_size(a), 4096);
    assert_int_equal(capmem_arena_phys_base(a), 0x100000);
    assert_int_equal(capmem_arena_backing(a), CAPMEM_BACKING_MEMFD);
    assert_string_equal(capmem_backing_name(capmem_arena_backing(a)), "memfd");
    assert_true(capmem_arena_fd(a) >= 0);
    uint64_t phys = 0;
    uint64_t off = 0;
    assert_ok(capmem_arena_offset_to_phys(a, 0x2345, &phys));
    assert_int_equal(phys, 0x100000 + 0x2345);
    assert_ok(capmem_arena_phys_to_offset(a, phys, &off));
    assert_int_equal(off, 0x2345);
    assert_ok(capmem_arena_offset_to_phys(a, (64ull << 20) - 1, &phys));
    capmem_arena_destroy(a);
}

static void test_arena_queries_on_null_are_zero(void **state)
{
    (void)state;
    assert_int_equal(capmem_arena_ram_size(NULL), 0);
    assert_int_equal(capmem_arena_page_size(NULL), 0);
    assert_int_equal(capmem_arena_phys_base(NULL), 0);
    assert_int_equal(capmem_arena_backing(NULL), 0);
    assert_int_equal(capmem_arena_fd(NULL), -1);
    assert_string_equal(capmem_backing_name((capmem_backing_t)99), "unknown");
    capmem_arena_destroy(NULL); /* no-op */
}

static void test_arena_rejects_bad_page_sizes(void **state)
{
    (void)state;
    const uint64_t bad[] = {0, 1, 3, 128, 255, 4095, 4097, 3ull << 12, 1ull << 31, UINT64_MAX};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        capmem_arena_attr_t at = CAPMEM_ARENA_ATTR_INIT;
        at.page_size = bad[i];
        at.ram_size = 1ull << 31;
        expect_create_fails(at, CAPMEM_E_INVALID_ARGS);
    }
    /* Both ends of the permitted range work. */
    const uint64_t good[] = {256, 1ull << 30};
    for (size_t i = 0; i < 2; i++) {
        capmem_arena_attr_t at = CAPMEM_ARENA_ATTR_INIT;
        at.page_size = good[i];
        at.ram_size = good[i] * 4;
        at.phys_base = 0;
        capmem_arena_t *a = NULL;
        assert_ok(capmem_arena_create(&at, &a));
        assert_int_equal(capmem_arena_page_size(a), good[i]);
        capmem_arena_destroy(a);
    }
}

static void test_arena_rejects_bad_sizes_and_bases(void **state)
{
    (void)state;
    capmem_arena_attr_t at = CAPMEM_ARENA_ATTR_INIT;
    at.ram_size = 0;
    expect_create_fails(at, CAPMEM_E_INVALID_ARGS);
    at = (capmem_arena_attr_t)CAPMEM_ARENA_ATTR_INIT;
    at.ram_size = 4096 * 3 + 1;
    expect_create_fails(at, CAPMEM_E_INVALID_ARGS);
    at = (capmem_arena_attr_t)CAPMEM_ARENA_ATTR_INIT;
    at.phys_base = 0x1001; /* misaligned */
    expect_create_fails(at, CAPMEM_E_INVALID_ARGS);
    at = (capmem_arena_attr_t)CAPMEM_ARENA_ATTR_INIT;
    at.phys_base = UINT64_MAX - 4095; /* RAM would wrap around */
    expect_create_fails(at, CAPMEM_E_INVALID_ARGS);
    at = (capmem_arena_attr_t)CAPMEM_ARENA_ATTR_INIT;
    at.ram_size = UINT64_MAX - 4095; /* overflowing size */
    expect_create_fails(at, CAPMEM_E_INVALID_ARGS);
    at = (capmem_arena_attr_t)CAPMEM_ARENA_ATTR_INIT;
    at.ram_size = CAPMEM_ARENA_MAX_BYTES;
    at.device_window = 4096; /* sum beyond the maximum */
    expect_create_fails(at, CAPMEM_E_INVALID_ARGS);
    at = (capmem_arena_attr_t)CAPMEM_ARENA_ATTR_INIT;
    at.ram_size = 4096;
    at.device_window = UINT64_MAX & ~4095ull; /* sum overflows */
    expect_create_fails(at, CAPMEM_E_INVALID_ARGS);
    at = (capmem_arena_attr_t)CAPMEM_ARENA_ATTR_INIT;
    at.device_window = 100; /* not a page multiple */
    expect_create_fails(at, CAPMEM_E_INVALID_ARGS);
    at = (capmem_arena_attr_t)CAPMEM_ARENA_ATTR_INIT;
    at.cap_slots = 15;
    expect_create_fails(at, CAPMEM_E_RANGE);
    at = (capmem_arena_attr_t)CAPMEM_ARENA_ATTR_INIT;
    at.flags = 0x80;
    expect_create_fails(at, CAPMEM_E_INVALID_ARGS);
    assert_err(capmem_arena_create(NULL, NULL), CAPMEM_E_INVALID_ARGS);
}

static void test_arena_translation_rejects_out_of_range(void **state)
{
    (void)state;
    capmem_arena_t *a = test_arena(1 << 20, 4096);
    uint64_t v = 77;
    assert_err(capmem_arena_offset_to_phys(a, 1 << 20, &v), CAPMEM_E_INVALID_ARGS);
    assert_int_equal(capmem_last_error()->address, 1 << 20);
    assert_err(capmem_arena_offset_to_phys(a, UINT64_MAX, &v), CAPMEM_E_INVALID_ARGS);
    assert_err(capmem_arena_phys_to_offset(a, 0x100000 - 1, &v), CAPMEM_E_NOT_FOUND);
    assert_err(capmem_arena_phys_to_offset(a, 0x100000 + (1 << 20), &v), CAPMEM_E_NOT_FOUND);
    assert_int_equal(v, 77);
    assert_err(capmem_arena_offset_to_phys(a, 0, NULL), CAPMEM_E_INVALID_ARGS);
    assert_err(capmem_arena_offset_to_phys(NULL, 0, &v), CAPMEM_E_INVALID_ARGS);
    assert_err(capmem_arena_phys_to_offset(a, 0, NULL), CAPMEM_E_INVALID_ARGS);
    assert_err(capmem_arena_phys_to_offset(NULL, 0, &v), CAPMEM_E_INVALID_ARGS);
    capmem_arena_destroy(a);
}

static void test_arena_anonymous_fallback_reports_itself(void **state)
{
    (void)state;
    capmem_arena_attr_t at = CAPMEM_ARENA_ATTR_INIT;
    at.flags = CAPMEM_ARENA_FORCE_ANON;
    at.ram_size = 1 << 20;
    capmem_arena_t *a = NULL;
    assert_ok(capmem_arena_create(&at, &a));
    assert_int_equal(capmem_arena_backing(a), CAPMEM_BACKING_ANON_SHARED);
    assert_string_equal(capmem_backing_name(CAPMEM_BACKING_ANON_SHARED), "anonymous shared");
    assert_int_equal(capmem_arena_fd(a), -1);
    capmem__bytes(&a->mem, 100)[0] = 42; /* the bytes are usable */
    assert_int_equal(capmem__bytes(&a->mem, 100)[0], 42);
    capmem_arena_destroy(a);
}

static void test_arena_fd_maps_the_same_bytes(void **state)
{
    (void)state;
    capmem_arena_t *a = test_arena(1 << 20, 4096);
    int fd = capmem_arena_fd(a);
    assert_true(fd >= 0);
    uint8_t *view = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 4096);
    assert_true(view != MAP_FAILED);
    capmem__bytes(&a->mem, 4096 + 10)[0] = 0xab;
    assert_int_equal(view[10], 0xab);
    view[20] = 0xcd;
    assert_int_equal(capmem__bytes(&a->mem, 4096 + 20)[0], 0xcd);
    munmap(view, 8192);
    capmem_arena_destroy(a);
}

static void test_arena_64gib_is_lazy(void **state)
{
    (void)state;
    /*
     * Valgrind's address-space manager refuses a 64 GiB mapping, and RSS
     * under Valgrind measures Valgrind; there the test creates the largest
     * arena it allows and checks laziness only in native runs.
     */
    const int native = !test_under_valgrind();
    const uint64_t size = native ? 64ull << 30 : 4ull << 30;
    uint64_t before = test_rss_bytes();
    capmem_arena_attr_t at = CAPMEM_ARENA_ATTR_INIT;
    at.ram_size = size;
    capmem_arena_t *a = NULL;
    assert_ok(capmem_arena_create(&at, &a));
    uint64_t after = test_rss_bytes();
    /* Touch one byte near the end: the whole range is really there. */
    capmem__bytes(&a->mem, size - 1)[0] = 1;
    capmem_arena_destroy(a);
    if (native) {
        assert_true(before > 0);
        int64_t grown = (int64_t)after - (int64_t)before;
        print_message("# RSS grew by %lld bytes for a 64 GiB arena\n", (long long)grown);
        assert_true(grown < (1 << 20));
    }
}

static void test_arena_device_ranges(void **state)
{
    (void)state;
    capmem_arena_attr_t at = CAPMEM_ARENA_ATTR_INIT;
    at.ram_size = 1 << 20;
    at.phys_base = 0x100000;
    at.device_window = 64 * 1024;
    capmem_arena_t *a = NULL;
    assert_ok(capmem_arena_create(&at, &a));
    capmem_device_info_t d1;
    capmem_device_info_t d2;
    assert_ok(capmem_arena_device_add(a, 0xfe000000, 0x4000, &d1));
    assert_int_not_equal(d1.id, 0);
    assert_int_equal(d1.backing_offset, 1 << 20); /* the window follows RAM */
    assert_ok(capmem_arena_device_add(a, 0xd0000000, 0x2000, &d2));
    assert_int_equal(d2.backing_offset, (1 << 20) + 0x4000);
    uint64_t off = 0;
    assert_ok(capmem_arena_phys_to_offset(a, 0xfe000010, &off));
    assert_int_equal(off, (1 << 20) + 0x10);
    /* Device memory is never RAM: offset_to_phys covers RAM only. */
    uint64_t phys = 0;
    assert_err(capmem_arena_offset_to_phys(a, off, &phys), CAPMEM_E_INVALID_ARGS);

    capmem_device_info_t list[4];
    size_t n = 0;
    assert_ok(capmem_arena_devices(a, list, 4, &n));
    assert_int_equal(n, 2);
    assert_int_equal(list[0].phys, 0xd0000000); /* sorted by address */
    assert_int_equal(list[1].phys, 0xfe000000);

    capmem_device_info_t x = {.id = 999};
    assert_err(capmem_arena_device_add(a, 0x100000 + 0x1000, 0x1000, &x),
               CAPMEM_E_REGION_CONFLICT); /* overlaps RAM */
    assert_int_equal(capmem_last_error()->address, 0x100000);
    assert_err(capmem_arena_device_add(a, 0xfe002000, 0x4000, &x), CAPMEM_E_REGION_CONFLICT);
    assert_int_equal(capmem_last_error()->address, 0xfe000000);
    assert_err(capmem_arena_device_add(a, 0xfe100001, 0x1000, &x), CAPMEM_E_INVALID_ARGS);
    assert_err(capmem_arena_device_add(a, 0xfe100000, 0, &x), CAPMEM_E_INVALID_ARGS);
    assert_err(capmem_arena_device_add(a, UINT64_MAX & ~0xfffull, 0x2000, &x),
               CAPMEM_E_INVALID_ARGS);
    assert_err(capmem_arena_device_add(a, 0xe0000000, 0x100000, &x), CAPMEM_E_NOT_ENOUGH_MEMORY);
    assert_err(capmem_arena_device_add(a, 0xe0000000, 0x1000, NULL), CAPMEM_E_INVALID_ARGS);
    assert_int_equal(x.id, 999);
    assert_ok(capmem_arena_devices(a, list, 4, &n));
    assert_int_equal(n, 2); /* nothing changed */

    /* Pinned (an untyped covers it): removal refused. */
    capmem__device_t *dev = capmem__device_at_backing(&a->mem, d1.backing_offset, 0x4000);
    assert_non_null(dev);
    dev->pins = 1;
    assert_err(capmem_arena_device_remove(a, d1.id), CAPMEM_E_DELETE_FIRST);
    dev->pins = 0;
    assert_ok(capmem_arena_device_remove(a, d1.id));
    assert_err(capmem_arena_device_remove(a, d1.id), CAPMEM_E_NOT_FOUND);
    assert_err(capmem_arena_device_remove(a, 0), CAPMEM_E_NOT_FOUND);
    assert_err(capmem_arena_device_remove(NULL, 1), CAPMEM_E_INVALID_ARGS);
    assert_err(capmem_arena_phys_to_offset(a, 0xfe000010, &off), CAPMEM_E_NOT_FOUND);
    /* Hot-plug again into the freed window space: first fit reuses it, zeroed. */
    capmem__bytes(&a->mem, d1.backing_offset)[0] = 0x77;
    assert_ok(capmem_arena_device_add(a, 0xfc000000, 0x1000, &x));
    assert_int_equal(x.backing_offset, d1.backing_offset);
    assert_int_equal(capmem__bytes(&a->mem, x.backing_offset)[0], 0);
    assert_err(capmem_arena_devices(a, NULL, 1, &n), CAPMEM_E_INVALID_ARGS);
    assert_err(capmem_arena_devices(a, list, 4, NULL), CAPMEM_E_INVALID_ARGS);
    capmem_arena_destroy(a);
}

static void test_arena_device_table_full(void **state)
{
    (void)state;
    capmem_arena_attr_t at = CAPMEM_ARENA_ATTR_INIT;
    at.ram_size = 1 << 20;
    at.device_window = (CAPMEM_DEVICE_MAX + 1) * 4096ull;
    capmem_arena_t *a = NULL;
    assert_ok(capmem_arena_create(&at, &a));
    capmem_device_info_t d;
    for (uint64_t i = 0; i < CAPMEM_DEVICE_MAX; i++) {
        assert_ok(capmem_arena_device_add(a, 0xf0000000 + i * 4096, 4096, &d));
    }
    assert_err(capmem_arena_device_add(a, 0xe0000000, 4096, &d), CAPMEM_E_OUT_OF_CAPS);
    capmem_arena_destroy(a);
}

static void test_arena_host_failures_are_clean_errors(void **state)
{
    (void)state;
    capmem_arena_t *a = SENTINEL;
    int fds_before = test_open_fds();
    const struct {
        capmem__host_kind_t kind;
        uint64_t nth;
        capmem_err_t want;
    } cases[] = {
        {CAPMEM__HOST_MALLOC, 1, CAPMEM_E_HOST_NOMEM},
        {CAPMEM__HOST_MEMFD, 1, CAPMEM_E_SYSTEM},
        {CAPMEM__HOST_FTRUNCATE, 1, CAPMEM_E_SYSTEM},
        {CAPMEM__HOST_MMAP, 1, CAPMEM_E_SYSTEM}, /* the arena mapping */
        {CAPMEM__HOST_MMAP, 2, CAPMEM_E_SYSTEM}, /* the capability table */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        capmem__inject_fail(cases[i].kind, cases[i].nth);
        assert_err(capmem_arena_create(NULL, &a), cases[i].want);
        assert_ptr_equal(a, SENTINEL);
        capmem__inject_reset();
    }
    /* Nothing leaked: Valgrind checks host memory; the fd count is back. */
    assert_int_equal(test_open_fds(), fds_before);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_arena_defaults_and_queries),
        cmocka_unit_test(test_arena_queries_on_null_are_zero),
        cmocka_unit_test(test_arena_rejects_bad_page_sizes),
        cmocka_unit_test(test_arena_rejects_bad_sizes_and_bases),
        cmocka_unit_test(test_arena_translation_rejects_out_of_range),
        cmocka_unit_test(test_arena_anonymous_fallback_reports_itself),
        cmocka_unit_test(test_arena_fd_maps_the_same_bytes),
        cmocka_unit_test(test_arena_64gib_is_lazy),
        cmocka_unit_test(test_arena_device_ranges),
        cmocka_unit_test(test_arena_device_table_full),
        cmocka_unit_test(test_arena_host_failures_are_clean_errors),
    };
    return cmocka_run_group_tests_name("arena", tests, NULL, NULL);
}
