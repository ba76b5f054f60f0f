/* SPDX-License-Identifier: MIT */
/*
 * Thread stress: 8 threads doing mixed operations (open, alloc, alias,
 * write/read, transfer, free, close, retype, delete, forged handles, and
 * region maps: create, attach, detach, reads, writes and touches through a
 * map whose fault handler attaches pages) on one shared arena, then 8
 * threads each on an arena of its own. Every call
 * takes the arena's lock, so quota must be conserved and the checker must
 * pass at the end; ThreadSanitizer (scripts/check) must report nothing.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "support.h"

#define THREADS 8

typedef struct worker {
    capmem_arena_t *arena;
    capmem_cap_t root;
    capmem_cap_t ut;
    uint64_t seed;
    unsigned iters;
    uint64_t ok;
    uint64_t refused;
    int broken; /* an unexpected result */
    capmem_cap_t ds[8];
    capmem_cap_t rm; /* the worker's region map, CAPMEM_CAP_NULL when it has none */
    uint64_t faults; /* faults its handler saw */
} worker_t;

#define RM_PAGES 32u

static uint64_t rnd(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static void tally(worker_t *w, capmem_err_t e)
{
    if (e == CAPMEM_OK) {
        w->ok++;
    } else {
        w->refused++;
        /* Nothing here may fail for a reason other than running out or a bad handle. */
        if (e != CAPMEM_E_OUT_OF_RAM && e != CAPMEM_E_OUT_OF_METADATA &&
            e != CAPMEM_E_OUT_OF_PHYS && e != CAPMEM_E_OUT_OF_CAPS &&
            e != CAPMEM_E_NOT_ENOUGH_MEMORY && e != CAPMEM_E_INVALID_CAP &&
            e != CAPMEM_E_WRONG_TYPE) {
            w->broken = 1;
        }
    }
}

/* Region-map calls may also fault, miss a region or collide with one. */
static void tally_rm(worker_t *w, capmem_err_t e)
{
    if (e == CAPMEM_E_UNRESOLVED_FAULT || e == CAPMEM_E_FAULT_LOOP || e == CAPMEM_E_NOT_FOUND ||
        e == CAPMEM_E_REGION_CONFLICT) {
        w->refused++;
        return;
    }
    tally(w, e);
}

/*
 * The worker's pager. It runs on the worker's thread with the arena lock
 * held, so it may use the worker's state and call the library. By fault
 * page: attach a page of one of the worker's dataspaces and resolve; give up;
 * or claim success without attaching (the access ends with FAULT_LOOP).
 */
static capmem_rm_fault_result_t pager(capmem_arena_t *arena, const capmem_rm_fault_t *f, void *ctx)
{
    worker_t *w = ctx;
    w->faults++;
    uint64_t pg = f->address / 4096;
    switch (pg % 4) {
    case 0:
    case 1:
        for (unsigned k = 0; k < 8; k++) {
            if (w->ds[k] != CAPMEM_CAP_NULL) {
                capmem_rm_attach_attr_t at = CAPMEM_RM_ATTACH_ATTR_INIT;
                at.size = 4096;
                at.at = pg * 4096;
                at.executable = f->access == CAPMEM_RM_EXEC;
                uint64_t addr;
                capmem_err_t e = capmem_rm_attach(arena, f->rm, w->ds[k], &at, &addr);
                tally_rm(w, e);
                return e == CAPMEM_OK ? CAPMEM_RM_FAULT_RESOLVED : CAPMEM_RM_FAULT_UNRESOLVED;
            }
        }
        return CAPMEM_RM_FAULT_UNRESOLVED;
    case 2:
        return CAPMEM_RM_FAULT_UNRESOLVED;
    default:
        return CAPMEM_RM_FAULT_RESOLVED;
    }
}

static void rm_step(worker_t *w, capmem_cap_t acc, uint64_t r)
{
    capmem_arena_t *a = w->arena;
    if (w->rm == CAPMEM_CAP_NULL) {
        capmem_rm_open_attr_t ra = CAPMEM_RM_OPEN_ATTR_INIT;
        ra.size = RM_PAGES * 4096;
        ra.donation = 4096; /* 59 regions: the metadata runs out too */
        ra.flags = (r >> 40) & 1 ? CAPMEM_RM_EXPANDING : 0;
        capmem_err_t e = capmem_rm_open(a, acc, &ra, &w->rm);
        tally(w, e);
        if (e != CAPMEM_OK) {
            w->rm = CAPMEM_CAP_NULL;
            return;
        }
        tally(w, capmem_rm_set_fault_handler(a, w->rm, pager, w));
        return;
    }
    unsigned k = (unsigned)(r >> 8) % 8;
    uint64_t addr = ((r >> 16) % RM_PAGES) * 4096 + (r >> 24) % 4096;
    uint8_t buf[200];
    uint8_t back[200];
    size_t len = (size_t)((r >> 36) % sizeof(buf)) + 1;
    if (addr + len > RM_PAGES * 4096) {
        len = (size_t)(RM_PAGES * 4096 - addr);
    }
    switch ((r >> 44) % 6) {
    case 0:
        if (w->ds[k] != CAPMEM_CAP_NULL) {
            capmem_rm_attach_attr_t at = CAPMEM_RM_ATTACH_ATTR_INIT;
            at.size = 4096;
            at.writable = (int)((r >> 50) & 1);
            uint64_t where;
            tally_rm(w, capmem_rm_attach(a, w->rm, w->ds[k], &at, &where));
        }
        break;
    case 1:
        tally_rm(w, capmem_rm_detach(a, w->rm, addr));
        break;
    case 2:
    case 3: {
        memset(buf, (int)(r >> 52) | 1, len);
        capmem_err_t e = capmem_rm_write(a, w->rm, addr, buf, len);
        tally_rm(w, e);
        if (e == CAPMEM_OK) {
            /* Nobody else touches this map: the bytes read back without a fault. */
            capmem_err_t e2 = capmem_rm_read(a, w->rm, addr, back, len);
            tally_rm(w, e2);
            if (e2 != CAPMEM_OK || memcmp(buf, back, len) != 0) {
                w->broken = 1;
            }
        }
        break;
    }
    case 4:
        tally_rm(w, capmem_rm_read(a, w->rm, addr, back, len));
        break;
    default:
        tally_rm(w, capmem_rm_touch(a, w->rm, addr, len, (capmem_rm_access_t)((r >> 56) % 3)));
        break;
    }
}

static void *work(void *arg)
{
    worker_t *w = arg;
    capmem_cap_t acc = CAPMEM_CAP_NULL;
    capmem_cap_t *ds = w->ds;
    capmem_cap_t objs[8] = {0};
    uint8_t buf[64];
    for (unsigned i = 0; i < w->iters; i++) {
        uint64_t r = rnd(&w->seed);
        if (acc == CAPMEM_CAP_NULL) {
            capmem_ram_open_attr_t oa = CAPMEM_RAM_OPEN_ATTR_INIT;
            oa.quota = 64 * 4096;
            oa.caps = 32;
            oa.flags = (r & 1) ? CAPMEM_RAM_EXPANDING : 0;
            capmem_err_t e = capmem_ram_open(w->arena, w->root, &oa, &acc);
            tally(w, e);
            if (e != CAPMEM_OK) {
                acc = CAPMEM_CAP_NULL;
            }
            continue;
        }
        unsigned k = (unsigned)(r >> 8) % 8;
        if ((r >> 62) == 0) {
            rm_step(w, acc, r); /* a quarter of the steps go to the region map */
            continue;
        }
        switch ((r >> 4) % 9) {
        case 0:
        case 1:
            if (ds[k] == CAPMEM_CAP_NULL) {
                capmem_err_t e =
                    capmem_ram_alloc(w->arena, acc, ((r >> 16) % 8 + 1) * 4096, &ds[k]);
                tally(w, e);
                if (e != CAPMEM_OK) {
                    ds[k] = CAPMEM_CAP_NULL;
                }
            }
            break;
        case 2:
            if (ds[k] != CAPMEM_CAP_NULL) {
                memset(buf, (int)k, sizeof(buf));
                tally(w, capmem_ds_write(w->arena, ds[k], 0, buf, sizeof(buf)));
                uint8_t back[64];
                tally(w, capmem_ds_read(w->arena, ds[k], 0, back, sizeof(back)));
                if (memcmp(buf, back, sizeof(buf)) != 0) {
                    w->broken = 1;
                }
            }
            break;
        case 3:
            if (ds[k] != CAPMEM_CAP_NULL) {
                capmem_alias_attr_t at = CAPMEM_ALIAS_ATTR_INIT;
                at.lifetime = (r >> 20) & 1 ? CAPMEM_ALIAS_FIRST_CLASS : CAPMEM_ALIAS_DEPENDENT;
                at.size = 4096;
                capmem_cap_t al;
                capmem_err_t e = capmem_ds_alias(w->arena, acc, ds[k], &at, &al);
                tally(w, e);
                /* First-class aliases outlive the original; free them at once to bound state. */
                if (e == CAPMEM_OK && at.lifetime == CAPMEM_ALIAS_FIRST_CLASS) {
                    tally(w, capmem_ds_free(w->arena, al));
                }
            }
            break;
        case 4:
            if (ds[k] != CAPMEM_CAP_NULL) {
                tally(w, capmem_ds_free(w->arena, ds[k]));
                ds[k] = CAPMEM_CAP_NULL;
            }
            break;
        case 5:
            tally(w, capmem_ram_transfer(w->arena, (r >> 24) & 1 ? acc : w->root,
                                         (r >> 24) & 1 ? w->root : acc, 4096));
            break;
        case 6: {
            capmem_retype_attr_t ra = CAPMEM_RETYPE_ATTR_INIT;
            ra.type = (r >> 12) & 1 ? CAPMEM_OBJ_FRAME : CAPMEM_OBJ_KOBJ;
            ra.size_bits = 12;
            if (objs[k] != CAPMEM_CAP_NULL) {
                tally(w, capmem_cap_delete(w->arena, objs[k]));
                objs[k] = CAPMEM_CAP_NULL;
            } else {
                capmem_err_t e = capmem_untyped_retype(w->arena, w->ut, &ra, &objs[k], 1);
                tally(w, e);
                if (e != CAPMEM_OK) {
                    objs[k] = CAPMEM_CAP_NULL;
                }
            }
            break;
        }
        case 7: {
            capmem_ram_info_t ri;
            tally(w, capmem_ram_info(w->arena, r | 1, &ri)); /* forged */
            break;
        }
        default:
            if (((r >> 32) % 16) == 0) {
                tally(w, capmem_ram_close(w->arena, acc));
                acc = CAPMEM_CAP_NULL;
                memset(w->ds, 0, sizeof(w->ds)); /* they went with the account */
                w->rm = CAPMEM_CAP_NULL;         /* so did the map */
            }
            break;
        }
    }
    for (unsigned k = 0; k < 8; k++) {
        if (objs[k] != CAPMEM_CAP_NULL) {
            tally(w, capmem_cap_delete(w->arena, objs[k]));
        }
    }
    if (w->rm != CAPMEM_CAP_NULL && ((w->seed >> 3) & 1)) {
        tally(w, capmem_rm_close(w->arena, w->rm)); /* else it goes with the account */
    }
    if (acc != CAPMEM_CAP_NULL) {
        tally(w, capmem_ram_close(w->arena, acc));
    }
    return NULL;
}

static unsigned iterations(void)
{
    return test_under_valgrind() ? 300 : 20000;
}

static void make_world(capmem_arena_t **a, capmem_cap_t *root, capmem_cap_t *ut)
{
    capmem_arena_attr_t at = CAPMEM_ARENA_ATTR_INIT;
    at.ram_size = 12ull << 20;
    at.phys_base = 0x400000; /* pieces: 4 MiB, 8 MiB */
    at.cap_slots = 1u << 14;
    assert_ok(capmem_arena_create(&at, a));
    capmem_untyped_info_t boot[4];
    size_t n = 0;
    assert_ok(capmem_untyped_boot(*a, boot, 4, &n));
    assert_int_equal(n, 2);
    *ut = boot[0].cap;
    assert_ok(capmem_untyped_set_policy(*a, *ut, CAPMEM_UNTYPED_RANGE, NULL));
    assert_ok(capmem_ram_create(*a, &boot[1].cap, 1, NULL, root));
}

static uint64_t conserved(capmem_arena_t *a, capmem_cap_t root)
{
    capmem_ram_info_t ri;
    assert_ok(capmem_ram_info(a, root, &ri));
    return ri.quota + ri.donation;
}

static void run_workers(worker_t *w, const char *what)
{
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++) {
        assert_int_equal(pthread_create(&t[i], NULL, work, &w[i]), 0);
    }
    uint64_t ok = 0;
    uint64_t refused = 0;
    uint64_t faults = 0;
    for (int i = 0; i < THREADS; i++) {
        assert_int_equal(pthread_join(t[i], NULL), 0);
        ok += w[i].ok;
        refused += w[i].refused;
        faults += w[i].faults;
        if (w[i].broken) {
            fail_msg("%s: thread %d saw an unexpected result", what, i);
        }
    }
    printf("# %s: %d threads, %" PRIu64 " calls succeeded, %" PRIu64 " refused, %" PRIu64
           " faults handled\n",
           what, THREADS, ok, refused, faults);
}

static void test_threads_share_one_arena_and_conserve_quota(void **state)
{
    (void)state;
    capmem_arena_t *a;
    capmem_cap_t root;
    capmem_cap_t ut;
    make_world(&a, &root, &ut);
    uint64_t before = conserved(a, root);
    worker_t w[THREADS];
    for (int i = 0; i < THREADS; i++) {
        w[i] = (worker_t){
            .arena = a, .root = root, .ut = ut, .seed = 100u + (uint64_t)i, .iters = iterations()};
    }
    run_workers(w, "one shared arena");
    CHECK_INVARIANTS(a);
    /* Every session closed: all quota is back at the root. */
    assert_int_equal(conserved(a, root), before);
    capmem_untyped_info_t ui;
    assert_ok(capmem_untyped_info(a, ut, &ui));
    assert_int_equal(ui.children, 0);
    capmem_arena_destroy(a);
}

static void test_threads_on_separate_arenas_do_not_interfere(void **state)
{
    (void)state;
    capmem_arena_t *a[THREADS];
    capmem_cap_t root[THREADS];
    capmem_cap_t ut[THREADS];
    uint64_t before[THREADS];
    worker_t w[THREADS];
    for (int i = 0; i < THREADS; i++) {
        make_world(&a[i], &root[i], &ut[i]);
        before[i] = conserved(a[i], root[i]);
        w[i] = (worker_t){.arena = a[i],
                          .root = root[i],
                          .ut = ut[i],
                          .seed = 900u + (uint64_t)i,
                          .iters = iterations()};
    }
    run_workers(w, "separate arenas");
    for (int i = 0; i < THREADS; i++) {
        CHECK_INVARIANTS(a[i]);
        assert_int_equal(conserved(a[i], root[i]), before[i]);
        capmem_arena_destroy(a[i]);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_threads_share_one_arena_and_conserve_quota),
        cmocka_unit_test(test_threads_on_separate_arenas_do_not_interfere),
    };
    return cmocka_run_group_tests_name("threads", tests, NULL, NULL);
}
