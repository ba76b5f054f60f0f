/* SPDX-License-Identifier: MIT */
/*
 * Real mode in the property test: seeded random sequences of attaches,
 * detaches, frees, aliases, nested maps, fault handlers, budgets and
 * views that come and go, with real-pointer loads and stores compared,
 * after each one, against the simulated path (capmem_rm_read, and
 * capmem_rm_touch for a store that did not go through). The library is
 * its own model here: the two access paths must agree byte for byte and
 * error for error, and capmem_check (which compares every mapped piece
 * with what the model translates to) runs after every step.
 */
#define _GNU_SOURCE
#include "real_pointers.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PAGE 4096ull
#define OUTER_PAGES 64u
#define INNER_PAGES 16u
#define MAX_DS 8

typedef struct world {
    capmem_arena_t *arena;
    capmem_cap_t acc;
    capmem_cap_t map[2]; /* outer, inner */
    capmem_cap_t inner_ds;
    uint8_t *view[2]; /* NULL while unmapped */
    capmem_cap_t ds[MAX_DS];
    uint64_t rng;
    int handler[2]; /* 0 none, 1 gives up, 2 attaches a fresh page */
    char *why;
    size_t len;
} world_t;

static uint64_t rnd(world_t *w, uint64_t n)
{
    uint64_t x = w->rng += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    x ^= x >> 31;
    return n != 0 ? x % n : 0;
}

static capmem_rm_fault_result_t pager(capmem_arena_t *arena, const capmem_rm_fault_t *f, void *ctx)
{
    world_t *w = ctx;
    const int which = f->rm == w->map[0] ? 0 : 1;
    if (w->handler[which] != 2) {
        return CAPMEM_RM_FAULT_UNRESOLVED;
    }
    capmem_cap_t ds;
    capmem_rm_attach_attr_t a = CAPMEM_RM_ATTACH_ATTR_INIT;
    a.at = f->address & ~(PAGE - 1);
    uint64_t at;
    if (capmem_ram_alloc(arena, w->acc, PAGE, &ds) != CAPMEM_OK) {
        return CAPMEM_RM_FAULT_UNRESOLVED;
    }
    const uint8_t fill = (uint8_t)(f->address >> 12);
    if (capmem_ds_write(arena, ds, 0, &fill, 1) != CAPMEM_OK ||
        capmem_rm_attach(arena, f->rm, ds, &a, &at) != CAPMEM_OK) {
        (void)capmem_ds_free(arena, ds);
        return CAPMEM_RM_FAULT_UNRESOLVED;
    }
    return CAPMEM_RM_FAULT_RESOLVED;
}

typedef struct access {
    volatile uint8_t *p;
    uint8_t value;
    int store;
} access_t;

static void do_access(void *ctx)
{
    access_t *a = ctx;
    if (a->store) {
        *a->p = a->value;
    } else {
        a->value = *a->p;
    }
}

static int fail(world_t *w, const char *fmt, uint64_t a, uint64_t b, uint64_t c)
{
    snprintf(w->why, w->len, fmt, a, b, c);
    return 1;
}

/* A pointer load against capmem_rm_read. */
static int check_load(world_t *w, int m, uint64_t off)
{
    access_t a = {.p = w->view[m] + off};
    const capmem_err_t e1 = capmem_rm_real_guard(w->arena, do_access, &a);
    uint8_t b = 0;
    const capmem_err_t e2 = capmem_rm_read(w->arena, w->map[m], off, &b, 1);
    if (e1 != e2 || (e1 == CAPMEM_OK && a.value != b)) {
        return fail(w,
                    "load at 0x%" PRIx64 ": pointer gave %" PRIu64 ", capmem_rm_read %" PRIu64
                    " (codes, or the byte when both are 0)",
                    off, e1 != e2 ? (uint64_t)e1 : a.value, e1 != e2 ? (uint64_t)e2 : b);
    }
    return 0;
}

/* A pointer store against capmem_rm_read (it went through) or capmem_rm_touch (it did not). */
static int check_store(world_t *w, int m, uint64_t off)
{
    access_t a = {.p = w->view[m] + off, .value = (uint8_t)rnd(w, 256), .store = 1};
    const capmem_err_t e1 = capmem_rm_real_guard(w->arena, do_access, &a);
    if (e1 == CAPMEM_OK) {
        uint8_t b = 0;
        const capmem_err_t e2 = capmem_rm_read(w->arena, w->map[m], off, &b, 1);
        if (e2 != CAPMEM_OK || b != a.value) {
            return fail(w, "store at 0x%" PRIx64 ": read back %" PRIu64 " code %" PRIu64, off, b,
                        (uint64_t)e2);
        }
        return 0;
    }
    const capmem_err_t e2 = capmem_rm_touch(w->arena, w->map[m], off, 1, CAPMEM_RM_WRITE);
    if (e2 != e1) {
        return fail(w, "store at 0x%" PRIx64 ": pointer %" PRIu64 ", capmem_rm_touch %" PRIu64, off,
                    (uint64_t)e1, (uint64_t)e2);
    }
    return 0;
}

static capmem_cap_t *some_ds(world_t *w)
{
    return &w->ds[rnd(w, MAX_DS)];
}

/* One random step; 0 when both paths agreed. */
static int step(world_t *w)
{
    const int m = (int)rnd(w, 2);
    const uint64_t pages = m == 0 ? OUTER_PAGES : INNER_PAGES;
    const unsigned op = (unsigned)rnd(w, 100);
    capmem_rm_attach_attr_t a = CAPMEM_RM_ATTACH_ATTR_INIT;
    uint64_t at;
    if (op < 30) {
        return w->view[m] != NULL ? check_load(w, m, rnd(w, pages * PAGE)) : 0;
    }
    if (op < 55) {
        return w->view[m] != NULL ? check_store(w, m, rnd(w, pages * PAGE)) : 0;
    }
    if (op < 67) {
        /* attach a dataspace, an alias, or (into the outer map) the inner map */
        a.at = rnd(w, pages) * PAGE;
        a.writable = rnd(w, 3) != 0;
        capmem_cap_t *d = some_ds(w);
        capmem_cap_t what = *d;
        if (m == 0 && rnd(w, 4) == 0) {
            what = w->inner_ds;
        } else if (what == CAPMEM_CAP_NULL) {
            return 0;
        }
        (void)capmem_rm_attach(w->arena, w->map[m], what, &a, &at);
        return 0;
    }
    if (op < 77) {
        (void)capmem_rm_detach(w->arena, w->map[m], rnd(w, pages) * PAGE);
        return 0;
    }
    if (op < 85) {
        /* a new dataspace or alias in a free place, or a free (aliases of it go too) */
        capmem_cap_t *d = some_ds(w);
        if (*d != CAPMEM_CAP_NULL) {
            (void)capmem_ds_free(w->arena, *d);
            *d = CAPMEM_CAP_NULL;
            return 0;
        }
        const capmem_cap_t src = *some_ds(w);
        if (src != CAPMEM_CAP_NULL && rnd(w, 2) == 0) {
            capmem_alias_attr_t aa = CAPMEM_ALIAS_ATTR_INIT;
            aa.writable = rnd(w, 2) != 0;
            aa.lifetime = rnd(w, 2) ? CAPMEM_ALIAS_FIRST_CLASS : CAPMEM_ALIAS_DEPENDENT;
            if (capmem_ds_alias(w->arena, w->acc, src, &aa, d) != CAPMEM_OK) {
                *d = CAPMEM_CAP_NULL;
            }
        } else if (capmem_ram_alloc(w->arena, w->acc, (1 + rnd(w, 3)) * PAGE, d) != CAPMEM_OK) {
            *d = CAPMEM_CAP_NULL;
        }
        return 0;
    }
    if (op < 90) {
        /* bytes written by the library, then loaded through the pointer */
        const uint8_t v = (uint8_t)rnd(w, 256);
        const uint64_t off = rnd(w, pages * PAGE);
        if (capmem_rm_write(w->arena, w->map[m], off, &v, 1) == CAPMEM_OK && w->view[m] != NULL) {
            return check_load(w, m, off);
        }
        return 0;
    }
    if (op < 95) {
        w->handler[m] = (int)rnd(w, 3);
        return 0;
    }
    if (op < 98) {
        if (w->view[m] != NULL) {
            (void)capmem_rm_real_unmap(w->arena, w->map[m]);
            w->view[m] = NULL;
        } else {
            void *base = NULL;
            if (capmem_rm_real_map(w->arena, w->map[m], 0, &base) == CAPMEM_OK) {
                w->view[m] = base;
            }
        }
        return 0;
    }
    (void)capmem_rm_real_set_budget(w->arena, rnd(w, 2) ? 2 + (uint32_t)rnd(w, 6) : 16384);
    return 0;
}

int real_pointers_run(uint64_t seed, uint64_t steps, char *why, size_t len)
{
    world_t w = {.rng = seed, .why = why, .len = len};
    capmem_arena_attr_t at = CAPMEM_ARENA_ATTR_INIT;
    at.ram_size = 32ull << 20;
    capmem_cap_t root;
    int bad = 0;
    if (capmem_arena_create(&at, &w.arena) != CAPMEM_OK ||
        capmem_arena_backing(w.arena) != CAPMEM_BACKING_MEMFD) {
        snprintf(why, len, "no memfd arena");
        capmem_arena_destroy(w.arena);
        return -1;
    }
    capmem_ram_open_attr_t oa = CAPMEM_RAM_OPEN_ATTR_INIT;
    oa.quota = 16ull << 20;
    oa.caps = 100000;
    oa.flags = CAPMEM_RAM_EXPANDING;
    capmem_rm_open_attr_t ma = CAPMEM_RM_OPEN_ATTR_INIT;
    ma.flags = CAPMEM_RM_EXPANDING;
    void *base;
    bad = capmem_ram_boot(w.arena, NULL, &root) != CAPMEM_OK ||
          capmem_ram_open(w.arena, root, &oa, &w.acc) != CAPMEM_OK;
    for (int m = 0; m < 2 && !bad; m++) {
        ma.size = (m == 0 ? OUTER_PAGES : INNER_PAGES) * PAGE;
        bad = capmem_rm_open(w.arena, w.acc, &ma, &w.map[m]) != CAPMEM_OK ||
              capmem_rm_set_fault_handler(w.arena, w.map[m], pager, &w) != CAPMEM_OK ||
              capmem_rm_real_map(w.arena, w.map[m], 0, &base) != CAPMEM_OK;
        w.view[m] = bad ? NULL : base;
    }
    bad = bad || capmem_rm_dataspace(w.arena, w.map[1], &w.inner_ds) != CAPMEM_OK;
    if (bad) {
        snprintf(why, len, "setting up: %s", capmem_last_error()->message);
    }
    for (uint64_t i = 0; i < steps && !bad; i++) {
        if (step(&w) != 0) {
            char msg[224];
            snprintf(msg, sizeof(msg), "%s", why);
            snprintf(why, len, "step %" PRIu64 ": %s", i, msg);
            bad = 1;
            break;
        }
        char cwhy[256];
        if (capmem_check(w.arena, cwhy, sizeof(cwhy)) != CAPMEM_OK) {
            snprintf(why, len, "step %" PRIu64 ": capmem_check: %s", i, cwhy);
            bad = 1;
        }
    }
    capmem_rm_real_stats_t rs;
    if (getenv("CAPMEM_REAL_VERBOSE") != NULL && capmem_rm_real_stats(w.arena, &rs) == CAPMEM_OK) {
        printf("# seed %" PRIu64 ": %" PRIu64 " real faults, %" PRIu64 " pieces mapped, %" PRIu64
               " dropped, %" PRIu64 " evicted\n",
               seed, rs.faults, rs.mapped, rs.dropped, rs.evicted);
    }
    capmem_arena_destroy(w.arena);
    return bad;
}
