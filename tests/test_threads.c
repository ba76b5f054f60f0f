/* SPDX-License-Identifier: MIT */
/*
 * Thread stress: 8 threads doing mixed operations (open, alloc, alias,
 * write/read, transfer, free, close, retype, delete, forged handles, and
 * region maps: create, attach, detach, reads, writes and touches through a
 * map whose fault handler attaches pages) on one shared arena, then 8
 * threads each on an arena of its own. Every call
 * takes the arena's lock, so quota must be conserved and the checker must
 * pass at the end; ThreadSanitizer (scripts/check) must report nothing.
 * Then 8 threads share an arena whose event callback calls back in on the
 * delivering thread (opens, allocations, frees, closes of that thread's
 * objects, the account the event names included), with strict results.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
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

/* ---- event callbacks that call back in, on every thread ---------------------------- */

/*
 * Each thread works on its own account (open, alloc, write and read back,
 * free, transfer, upgrade, close) in an arena with an event callback. The
 * callback runs on whichever thread delivers the event (the one whose call
 * raised it, or one delivering at that moment), and acts on the objects of
 * that thread (found through a thread-local pointer, so nothing is shared):
 * it opens a sub-account, allocates and frees dataspaces in it, closes it,
 * and closes the thread's own account when the event names it. A budget
 * refilled before each of the thread's own calls bounds what callbacks do.
 *
 * Every result is strict: a call on a live handle of the thread's own never
 * returns INVALID_CAP (the loop reads its handles again after each call, so
 * what a callback closed is not used), frees and closes succeed, and
 * allocations fail only for lack of quota, metadata, memory or capability
 * quota. No call returns REENTRANT or UNSUPPORTED; an event is never
 * delivered inside a callback on the same thread.
 */

#define CB_DS 6

typedef struct cbworker {
    capmem_arena_t *arena;
    capmem_cap_t root;
    uint64_t seed;
    uint64_t cb_seed;
    unsigned iters;
    capmem_cap_t acc;          /* the thread's account */
    capmem_cap_t ds[CB_DS];    /* its dataspaces */
    capmem_cap_t sub;          /* the callbacks' sub-account of acc */
    capmem_cap_t cb_ds[CB_DS]; /* dataspaces the callbacks allocated in sub */
    unsigned budget;           /* callback actions left before the thread's next call */
    int in_cb;
    uint64_t callbacks, cb_calls, cb_closed_acc, ok, refused;
    int broken;
    char why[400];
} cbworker_t;

static _Thread_local cbworker_t *me;
static _Atomic uint64_t delivered;

static void cb_broke(cbworker_t *w, const char *what, capmem_err_t e)
{
    if (!w->broken) {
        w->broken = 1;
        snprintf(w->why, sizeof(w->why), "%s: %s (%s)", what, capmem_err_name(e),
                 capmem_last_error()->message);
    }
}

/* A call on the thread's own live objects: success, or only running out of something. */
static void cb_expect(cbworker_t *w, capmem_err_t e, int may_run_out, const char *what)
{
    if (e == CAPMEM_OK) {
        w->ok++;
        return;
    }
    w->refused++;
    if (!may_run_out || (e != CAPMEM_E_OUT_OF_RAM && e != CAPMEM_E_OUT_OF_METADATA &&
                         e != CAPMEM_E_OUT_OF_PHYS && e != CAPMEM_E_OUT_OF_CAPS)) {
        cb_broke(w, what, e);
    }
}

static void forget_account(cbworker_t *w)
{
    w->acc = CAPMEM_CAP_NULL;
    w->sub = CAPMEM_CAP_NULL;
    memset(w->ds, 0, sizeof(w->ds));
    memset(w->cb_ds, 0, sizeof(w->cb_ds));
}

static void reenter(capmem_arena_t *a, const capmem_event_t *ev, void *ctx)
{
    (void)ctx;
    atomic_fetch_add_explicit(&delivered, 1, memory_order_relaxed);
    cbworker_t *w = me;
    if (w == NULL) {
        return; /* the main thread, setting up or closing down */
    }
    if (w->in_cb) {
        cb_broke(w, "an event was delivered inside a callback", CAPMEM_OK);
        return;
    }
    w->callbacks++;
    if (w->budget == 0 || w->acc == CAPMEM_CAP_NULL) {
        return;
    }
    w->budget--;
    w->in_cb = 1;
    uint64_t r = rnd(&w->cb_seed);
    unsigned k = (unsigned)(r >> 8) % CB_DS;
    capmem_err_t e;
    if (ev->cap == w->acc && ev->kind != CAPMEM_EVENT_CAP_DELETE && r % 4 == 0) {
        /* The event is about the thread's account (its upgrade, transfer, opening): close it. */
        w->cb_calls++;
        cb_expect(w, capmem_ram_close(a, w->acc), 0, "callback: close the event's account");
        forget_account(w);
        w->cb_closed_acc++;
    } else if (w->sub == CAPMEM_CAP_NULL) {
        capmem_ram_open_attr_t oa = CAPMEM_RAM_OPEN_ATTR_INIT;
        oa.quota = 8 * 4096;
        oa.donation = 4096;
        oa.caps = CB_DS + 1;
        w->cb_calls++;
        e = capmem_ram_open(a, w->acc, &oa, &w->sub);
        cb_expect(w, e, 1, "callback: open a sub-account");
        if (e != CAPMEM_OK) {
            w->sub = CAPMEM_CAP_NULL;
        }
    } else if (r % 8 == 1) {
        w->cb_calls++;
        cb_expect(w, capmem_ram_close(a, w->sub), 0, "callback: close its sub-account");
        w->sub = CAPMEM_CAP_NULL;
        memset(w->cb_ds, 0, sizeof(w->cb_ds));
    } else if (w->cb_ds[k] == CAPMEM_CAP_NULL) {
        w->cb_calls++;
        e = capmem_ram_alloc(a, w->sub, 4096, &w->cb_ds[k]);
        cb_expect(w, e, 1, "callback: alloc");
        if (e != CAPMEM_OK) {
            w->cb_ds[k] = CAPMEM_CAP_NULL;
        }
    } else {
        w->cb_calls++;
        cb_expect(w, capmem_ds_free(a, w->cb_ds[k]), 0, "callback: free");
        w->cb_ds[k] = CAPMEM_CAP_NULL;
    }
    w->in_cb = 0;
}

static void *cb_work(void *arg)
{
    cbworker_t *w = arg;
    me = w;
    capmem_arena_t *a = w->arena;
    uint8_t buf[64];
    uint8_t back[64];
    for (unsigned i = 0; i < w->iters && !w->broken; i++) {
        uint64_t r = rnd(&w->seed);
        unsigned k = (unsigned)(r >> 8) % CB_DS;
        capmem_err_t e;
        w->budget = 2;
        if (w->acc == CAPMEM_CAP_NULL) {
            capmem_ram_open_attr_t oa = CAPMEM_RAM_OPEN_ATTR_INIT;
            oa.quota = 48 * 4096;
            oa.donation = 4096;
            oa.caps = 2 * CB_DS + 4;
            oa.flags = (r & 1) ? CAPMEM_RAM_EXPANDING : 0;
            capmem_cap_t acc = CAPMEM_CAP_NULL;
            e = capmem_ram_open(a, w->root, &oa, &acc);
            cb_expect(w, e, 1, "open");
            /* (No callback closes it on its DONATE: until the call returns, acc is unset.) */
            w->acc = e == CAPMEM_OK ? acc : CAPMEM_CAP_NULL;
            continue;
        }
        switch ((r >> 4) % 8) {
        case 0:
        case 1:
            if (w->ds[k] == CAPMEM_CAP_NULL) {
                capmem_cap_t ds = CAPMEM_CAP_NULL;
                e = capmem_ram_alloc(a, w->acc, ((r >> 16) % 4 + 1) * 4096, &ds);
                cb_expect(w, e, 1, "alloc");
                if (e == CAPMEM_OK && w->acc != CAPMEM_CAP_NULL) {
                    w->ds[k] = ds; /* unless a callback closed the account meanwhile */
                }
            }
            break;
        case 2:
            if (w->ds[k] != CAPMEM_CAP_NULL) {
                memset(buf, (int)r | 1, sizeof(buf));
                cb_expect(w, capmem_ds_write(a, w->ds[k], 0, buf, sizeof(buf)), 0, "write");
                if (w->ds[k] != CAPMEM_CAP_NULL) {
                    cb_expect(w, capmem_ds_read(a, w->ds[k], 0, back, sizeof(back)), 0, "read");
                    if (!w->broken && memcmp(buf, back, sizeof(buf)) != 0) {
                        cb_broke(w, "bytes written do not read back", CAPMEM_OK);
                    }
                }
            }
            break;
        case 3:
            if (w->ds[k] != CAPMEM_CAP_NULL) {
                capmem_cap_t ds = w->ds[k];
                w->ds[k] = CAPMEM_CAP_NULL;
                cb_expect(w, capmem_ds_free(a, ds), 0, "free");
            }
            break;
        case 4:
            cb_expect(w,
                      (r >> 24) & 1 ? capmem_ram_transfer(a, w->acc, w->root, 4096)
                                    : capmem_ram_transfer(a, w->root, w->acc, 4096),
                      1, "transfer");
            break;
        case 5:
            cb_expect(w, capmem_ram_upgrade(a, w->acc, w->acc, 8192), 1, "upgrade");
            break;
        case 6: {
            capmem_ram_info_t ri;
            cb_expect(w, capmem_ram_info(a, w->acc, &ri), 0, "info");
            break;
        }
        default:
            if (((r >> 32) % 8) == 0) {
                capmem_cap_t acc = w->acc;
                forget_account(w);
                cb_expect(w, capmem_ram_close(a, acc), 0, "close");
            }
            break;
        }
    }
    w->budget = 0;
    if (w->acc != CAPMEM_CAP_NULL) {
        capmem_cap_t acc = w->acc;
        forget_account(w);
        cb_expect(w, capmem_ram_close(a, acc), 0, "close at the end");
    }
    me = NULL;
    return NULL;
}

static void test_threads_event_callbacks_call_in_from_every_thread(void **state)
{
    (void)state;
    capmem_arena_t *a;
    capmem_cap_t root;
    capmem_cap_t ut;
    make_world(&a, &root, &ut);
    const uint64_t before = conserved(a, root);
    assert_ok(capmem_arena_set_event_handler(a, reenter, NULL));
    atomic_store(&delivered, 0);
    static cbworker_t w[THREADS];
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++) {
        w[i] = (cbworker_t){.arena = a,
                            .root = root,
                            .seed = 500u + (uint64_t)i,
                            .cb_seed = 700u + (uint64_t)i,
                            .iters = iterations()};
        assert_int_equal(pthread_create(&t[i], NULL, cb_work, &w[i]), 0);
    }
    uint64_t callbacks = 0;
    uint64_t cb_calls = 0;
    uint64_t closed = 0;
    uint64_t ok = 0;
    uint64_t refused = 0;
    int called_in = 0;
    for (int i = 0; i < THREADS; i++) {
        assert_int_equal(pthread_join(t[i], NULL), 0);
        if (w[i].broken) {
            fail_msg("thread %d: %s", i, w[i].why);
        }
        /* Count the threads whose callbacks called in: each delivers its own events. */
        called_in += w[i].cb_calls > 0;
        callbacks += w[i].callbacks;
        cb_calls += w[i].cb_calls;
        closed += w[i].cb_closed_acc;
        ok += w[i].ok;
        refused += w[i].refused;
    }
    /*
     * Each thread delivers the events of its own calls (docs/threads.md), so
     * every thread ran callbacks, and every call a callback made was checked.
     */
    assert_int_equal(called_in, THREADS);
    assert_true(cb_calls > 0);
    assert_true(closed > 0);
    /* Events reach the workers' callbacks only: the main thread made no call meanwhile. */
    assert_int_equal(callbacks, atomic_load(&delivered));
    assert_ok(capmem_arena_set_event_handler(a, NULL, NULL));
    CHECK_INVARIANTS(a);
    /* Every account closed, by a thread or by a callback: all quota is back at the root. */
    assert_int_equal(conserved(a, root), before);
    printf("# event callbacks: %d threads, %" PRIu64 " events delivered, %" PRIu64
           " calls from callbacks on %d threads (%" PRIu64
           " closed the account the event named), %" PRIu64 " calls succeeded, %" PRIu64
           " ran out\n",
           THREADS, callbacks, cb_calls, called_in, closed, ok, refused);
    capmem_arena_destroy(a);
}

/*
 * Space banks and hot-plug under threads: each thread allocates and frees
 * in a sub-bank of its own, all of them under one prime bank, while every
 * thread also plugs and unplugs a device range of its own under a fixed
 * kernel reserve. Each thread's bank ends where its own calls left it, the
 * prime bank's usage is the sum, and the checker passes.
 */
typedef struct bank_worker {
    capmem_arena_t *arena;
    capmem_cap_t bank;
    uint64_t seed;
    unsigned iters;
    uint64_t held; /* frames the thread's bank holds at the end */
    uint64_t index;
    uint32_t dev; /* its device range, 0 when unplugged */
    int broken;
} bank_worker_t;

static void *bank_worker_main(void *arg)
{
    bank_worker_t *w = arg;
    capmem_cap_t fr[16];
    unsigned n = 0;
    const capmem_bank_type_t t = CAPMEM_BANK_FRAME;
    for (unsigned i = 0; i < w->iters && !w->broken; i++) {
        const uint64_t r = rnd(&w->seed) % 4;
        if (r < 2 && n < 16) {
            capmem_err_t e = capmem_bank_alloc(w->arena, w->bank, &t, 1, &fr[n]);
            if (e == CAPMEM_OK) {
                n++;
            } else if (e != CAPMEM_E_LIMIT_REACHED) {
                w->broken = 1;
            }
        } else if (r == 2 && n > 0) {
            w->broken |= capmem_bank_free(w->arena, w->bank, &fr[--n], 1) != CAPMEM_OK;
        } else if (r == 3 && w->dev == 0) {
            /* 16 frames of its own: the 256-record reserve holds every thread's at once. */
            capmem_device_info_t d;
            const uint64_t phys = 0x100000000ull + w->index * 0x100000ull;
            w->broken |= capmem_arena_device_add(w->arena, phys, 16 * 4096, &d) != CAPMEM_OK;
            w->dev = d.id;
        } else if (r == 3) {
            w->broken |= capmem_arena_device_remove(w->arena, w->dev) != CAPMEM_OK;
            w->dev = 0;
        }
    }
    w->held = n;
    return NULL;
}

static void test_threads_share_banks_and_hotplug(void **state)
{
    (void)state;
    capmem_arena_attr_t at = CAPMEM_ARENA_ATTR_INIT;
    at.ram_size = 16ull << 20;
    at.device_window = 4ull << 20;
    capmem_arena_t *a = NULL;
    assert_ok(capmem_arena_create(&at, &a));
    capmem_kernel_attr_t ka = CAPMEM_KERNEL_ATTR_INIT;
    ka.device_frames = 256;
    assert_ok(capmem_kernel_boot(a, &ka));
    capmem_cap_t root = CAPMEM_CAP_NULL;
    assert_ok(capmem_ram_boot(a, NULL, &root));
    capmem_bank_service_attr_t sa = CAPMEM_BANK_SERVICE_ATTR_INIT;
    sa.frames = 256;
    capmem_cap_t prime = CAPMEM_CAP_NULL;
    assert_ok(capmem_bank_service_create(a, root, &sa, &prime));
    bank_worker_t w[THREADS];
    pthread_t th[THREADS];
    for (int i = 0; i < THREADS; i++) {
        capmem_bank_limits_t l = {.limit = {12, CAPMEM_BANK_UNLIMITED}};
        w[i] = (bank_worker_t){
            .arena = a, .seed = 7u + (uint64_t)i, .index = (uint64_t)i, .iters = iterations()};
        assert_ok(capmem_bank_create(a, prime, &l, &w[i].bank));
    }
    for (int i = 0; i < THREADS; i++) {
        assert_int_equal(pthread_create(&th[i], NULL, bank_worker_main, &w[i]), 0);
    }
    uint64_t sum = 0;
    uint64_t plugged = 0;
    for (int i = 0; i < THREADS; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
        assert_false(w[i].broken);
        capmem_bank_info_t bi;
        assert_ok(capmem_bank_info(a, w[i].bank, &bi));
        assert_int_equal(bi.used[CAPMEM_BANK_FRAME], w[i].held);
        sum += w[i].held;
        plugged += w[i].dev != 0 ? 16 : 0;
    }
    capmem_kernel_info_t ki;
    assert_ok(capmem_kernel_info(a, &ki));
    assert_int_equal(ki.device_records, plugged);
    capmem_bank_info_t pi;
    assert_ok(capmem_bank_info(a, prime, &pi));
    assert_int_equal(pi.used[CAPMEM_BANK_FRAME], sum);
    assert_int_equal(pi.used[CAPMEM_BANK_NODE], THREADS);
    CHECK_INVARIANTS(a);
    capmem_arena_destroy(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_threads_share_one_arena_and_conserve_quota),
        cmocka_unit_test(test_threads_on_separate_arenas_do_not_interfere),
        cmocka_unit_test(test_threads_event_callbacks_call_in_from_every_thread),
        cmocka_unit_test(test_threads_share_banks_and_hotplug),
    };
    return cmocka_run_group_tests_name("threads", tests, NULL, NULL);
}
