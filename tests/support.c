/* SPDX-License-Identifier: MIT */
#define _GNU_SOURCE
#include "support.h"

#include <stdio.h>
#include <stdlib.h>
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

void test_world_open(test_world_t *w, uint64_t ram, uint64_t client_quota)
{
    *w = (test_world_t){0};
    capmem_arena_attr_t at = CAPMEM_ARENA_ATTR_INIT;
    at.ram_size = ram;
    assert_ok(capmem_arena_create(&at, &w->arena));
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

void test_world_close(test_world_t *w)
{
    if (w->arena != NULL) {
        CHECK_INVARIANTS(w->arena);
        capmem_arena_destroy(w->arena);
    }
    w->arena = NULL;
}
