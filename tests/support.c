/* SPDX-License-Identifier: MIT */
#define _GNU_SOURCE
#include "support.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <unistd.h>

void test_check_invariants(capmem_arena_t *arena, const char *file, int line)
{
    char why[512];
    capmem_err_t err = capmem_check(arena, why, sizeof(why));
    if (err != CAPMEM_OK) {
        fail_msg("%s:%d: invariant broken: %s", file, line, why);
    }
}

void test_assert_err(capmem_err_t got, capmem_err_t want, const char *expr, const char *file,
                     int line)
{
    if (got != want) {
        const capmem_error_info_t *d = capmem_last_error();
        fail_msg("%s:%d: %s returned %s (%s), expected %s", file, line, expr, capmem_err_name(got),
                 got != CAPMEM_OK ? d->message : "-", capmem_err_name(want));
    }
}

capmem_arena_t *test_arena(uint64_t ram_size, uint64_t page_size)
{
    capmem_arena_attr_t attr = CAPMEM_ARENA_ATTR_INIT;
    attr.ram_size = ram_size;
    attr.page_size = page_size;
    attr.device_window = 1ull << 20;
    capmem_arena_t *a = NULL;
    capmem_err_t err = capmem_arena_create(&attr, &a);
    if (err != CAPMEM_OK) {
        fail_msg("capmem_arena_create: %s", capmem_last_error()->message);
    }
    return a;
}

capmem_arena_t *test_split_boot(capmem_untyped_info_t boot[2], capmem_cap_t halves[2])
{
    capmem_arena_attr_t aa = CAPMEM_ARENA_ATTR_INIT;
    aa.ram_size = 3ull << 20;
    aa.phys_base = 0;
    capmem_arena_t *a = NULL;
    assert_ok(capmem_arena_create(&aa, &a));
    capmem_untyped_info_t all[4];
    size_t n = 0;
    assert_ok(capmem_untyped_boot(a, all, 4, &n));
    assert_int_equal(n, 2);
    boot[0] = all[0];
    boot[1] = all[1];
    capmem_retype_attr_t rt = CAPMEM_RETYPE_ATTR_INIT;
    rt.type = CAPMEM_OBJ_UNTYPED;
    rt.size_bits = 20;
    rt.count = 2;
    assert_ok(capmem_untyped_retype(a, boot[0].cap, &rt, halves, 2));
    return a;
}

int test_under_valgrind(void)
{
    return getenv("CAPMEM_UNDER_VALGRIND") != NULL;
}

uint64_t test_rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long size = 0;
    unsigned long resident = 0;
    if (f == NULL) {
        return 0;
    }
    if (fscanf(f, "%lu %lu", &size, &resident) != 2) {
        resident = 0;
    }
    fclose(f);
    return (uint64_t)resident * (uint64_t)sysconf(_SC_PAGESIZE);
}

int test_open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    int n = 0;
    if (d == NULL) {
        return -1;
    }
    while (readdir(d) != NULL) {
        n++;
    }
    closedir(d);
    return n;
}

static void world_open(test_world_t *w, const capmem_arena_attr_t *at, uint64_t client_quota)
{
    *w = (test_world_t){0};
    assert_ok(capmem_arena_create(at, &w->arena));
    assert_ok(capmem_ram_boot(w->arena, NULL, &w->root));
    if (client_quota != 0) {
        capmem_ram_open_attr_t oa = CAPMEM_RAM_OPEN_ATTR_INIT;
        oa.quota = client_quota;
        oa.caps = 4096;
        oa.label = "client";
        assert_ok(capmem_ram_open(w->arena, w->root, &oa, &w->client));
    }
    CHECK_INVARIANTS(w->arena);
}

void test_world_open(test_world_t *w, uint64_t ram, uint64_t client_quota)
{
    capmem_arena_attr_t at = CAPMEM_ARENA_ATTR_INIT;
    at.ram_size = ram;
    world_open(w, &at, client_quota);
}

void test_world_open_phys(test_world_t *w, uint64_t ram, uint64_t phys_base, uint64_t client_quota)
{
    capmem_arena_attr_t at = CAPMEM_ARENA_ATTR_INIT;
    at.ram_size = ram;
    at.phys_base = phys_base;
    world_open(w, &at, client_quota);
}

void test_world_close(test_world_t *w)
{
    if (w->arena != NULL) {
        CHECK_INVARIANTS(w->arena);
        capmem_arena_destroy(w->arena);
    }
    w->arena = NULL;
}

capmem_cap_t test_ds_new(test_world_t *w, uint64_t size, uint8_t fill)
{
    capmem_cap_t ds = CAPMEM_CAP_NULL;
    assert_ok(capmem_ram_alloc(w->arena, w->client, size, &ds));
    if (fill != 0) {
        uint8_t *buf = malloc(size);
        assert_non_null(buf);
        memset(buf, fill, size);
        assert_ok(capmem_ds_write(w->arena, ds, 0, buf, size));
        free(buf);
    }
    return ds;
}

capmem_cap_t test_rm_new(test_world_t *w, uint64_t size, const char *label)
{
    capmem_rm_open_attr_t at = CAPMEM_RM_OPEN_ATTR_INIT;
    at.size = size;
    at.label = label;
    capmem_cap_t rm = CAPMEM_CAP_NULL;
    assert_ok(capmem_rm_open(w->arena, w->client, &at, &rm));
    return rm;
}

void test_boot_world_open(test_boot_world_t *w, uint64_t device_window, const char *label)
{
    capmem_arena_attr_t at = CAPMEM_ARENA_ATTR_INIT;
    at.ram_size = 3ull << 20;
    at.phys_base = 0x100000;
    at.cap_slots = 1u << 12;
    at.device_window = device_window;
    *w = (test_boot_world_t){0};
    assert_ok(capmem_arena_create(&at, &w->arena));
    capmem_untyped_info_t boot[4];
    size_t n = 0;
    assert_ok(capmem_untyped_boot(w->arena, boot, 4, &n));
    assert_int_equal(n, 2);
    w->ut = boot[0].cap;
    w->pool = boot[1].cap;
    assert_ok(capmem_ram_create(w->arena, &boot[1].cap, 1, NULL, &w->root));
    capmem_ram_open_attr_t oa = CAPMEM_RAM_OPEN_ATTR_INIT;
    oa.quota = 256 * 1024;
    oa.label = label;
    assert_ok(capmem_ram_open(w->arena, w->root, &oa, &w->acc));
    assert_ok(capmem_ram_alloc(w->arena, w->acc, 3 * 4096, &w->ds));
    capmem_retype_attr_t ra = CAPMEM_RETYPE_ATTR_INIT;
    ra.count = 2;
    assert_ok(capmem_untyped_retype(w->arena, w->ut, &ra, w->frames, 2));
    CHECK_INVARIANTS(w->arena);
}

void test_boot_world_close(test_boot_world_t *w)
{
    CHECK_INVARIANTS(w->arena);
    capmem_arena_destroy(w->arena);
    w->arena = NULL;
}
