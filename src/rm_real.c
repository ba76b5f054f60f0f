/* SPDX-License-Identifier: MIT */
/*
 * Real mode (layer 7, second half; rm_real_internal.h): region maps mapped
 * into the process. A view is one PROT_NONE reservation of the map's size;
 * a fault in it (rm_real_signal.c) comes here with the arena lock held and
 * runs the simulated mode's own path, capmem__rm_translate() and
 * capmem__rm_deliver(), then maps the whole attached piece behind the
 * address with mmap(MAP_FIXED | MAP_SHARED) of the arena's memfd.
 * docs/region_map.md ("Real mode") explains it for a reader new to it.
 *
 * Views are a cache of the model. The region-map layer reports every range
 * that stops translating as before (a region leaves its map: detach,
 * dataspace free, alias revoke) and every closing map through the hooks
 * registered here; a range of a map that is itself attached elsewhere (a
 * managed dataspace) is followed up through every map that shows it, so
 * the range drops back to PROT_NONE in every view. The next access faults
 * again and finds the model as it is now.
 *
 * A piece is the largest range around the faulting address that translates
 * through the same regions at every level of nesting: one mmap, one record.
 * Records come from a fixed pool per arena (host memory, bounded by the
 * budget, not by the number of regions); past the budget the least
 * recently mapped piece is dropped. Every mapping call is a raw
 * syscall(SYS_mmap): ThreadSanitizer's interceptor would treat each one as
 * a write of the whole range.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "rm_real_internal.h"

/*
 * Valgrind's memcheck marks a PROT_NONE mapping inaccessible and would report
 * the first touch of every page before the fault that maps it; the
 * reservation is marked defined instead. Optional: the core needs libc only.
 */
#if defined(__has_include)
#if __has_include(<valgrind/memcheck.h>)
#include <valgrind/memcheck.h>
#define REAL_MARK_DEFINED(p, n) VALGRIND_MAKE_MEM_DEFINED((p), (n))
#endif
#endif
#ifndef REAL_MARK_DEFINED
#define REAL_MARK_DEFINED(p, n) ((void)(p), (void)(n))
#endif

typedef struct real_piece {
    uint64_t boff;  /* arena offset of its first byte */
    uint32_t first; /* first page in the view */
    uint32_t pages;
    uint32_t older; /* mapping order, towards the oldest: index + 1, 0 for none */
    uint32_t newer; /* towards the newest; the free list's link */
    uint16_t view;  /* registry index of its view */
    uint8_t prot;
    uint8_t live;
} real_piece_t;

/*
 * The layer's per-arena state (host memory). Invariants (real_check):
 * used == live records == the length of the oldest..newest list == the sum
 * of the views' npieces; used <= cap; every live piece lies in its view,
 * its view's table names it at each of its pages, and it still translates
 * to the arena range and protection it was mapped with.
 */
typedef struct real_arena {
    real_view_t *views;
    real_piece_t *pool; /* cap records, lazily committed */
    uint32_t cap;       /* the budget */
    uint32_t high;      /* records handed out at least once */
    uint32_t free;      /* free list through newer: index + 1 */
    uint32_t used;
    uint32_t oldest;
    uint32_t newest;
    bool hooked; /* the region-map layer calls its hooks */
    capmem_rm_real_stats_t stats;
} real_arena_t;

static void real_fini(capmem_arena_t *arena, void *state);
static capmem_err_t real_check(capmem_arena_t *arena, void *state, char *why, size_t len);

static const capmem__layer_t real_layer = {
    .name = "real mode",
    .fini = real_fini,
    .check = real_check,
};

/* ---- the host calls ------------------------------------------------------------------- */

static _Atomic uint64_t inject_at[4];
static _Atomic uint64_t inject_n[4];

void capmem__real_inject(unsigned kind, uint64_t nth)
{
    if (kind < 4) {
        atomic_store(&inject_n[kind], 0);
        atomic_store(&inject_at[kind], nth);
    }
}

static bool injected(unsigned kind)
{
    const uint64_t at = atomic_load_explicit(&inject_at[kind], memory_order_relaxed);
    if (at == 0) {
        return false;
    }
    if (atomic_fetch_add(&inject_n[kind], 1) + 1 == at) {
        errno = ENOMEM;
        return true;
    }
    return false;
}

static void *sys_mmap(void *addr, size_t len, int prot, int flags, int fd, uint64_t off)
{
    long r = syscall(SYS_mmap, addr, len, prot, flags, fd, (long)off);
    return r == -1 ? MAP_FAILED : (void *)r;
}

static void sys_munmap(void *addr, size_t len)
{
    if (addr != NULL && len != 0) {
        syscall(SYS_munmap, addr, len);
    }
}

static int sys_mprotect(void *addr, size_t len, int prot)
{
    return (int)syscall(SYS_mprotect, addr, len, prot);
}

/* ---- state, views, pieces ------------------------------------------------------------- */

static real_arena_t *real_state(const capmem_arena_t *arena)
{
    return capmem__layer_state(arena, &real_layer);
}

static size_t pool_bytes(uint32_t cap)
{
    return (size_t)cap * sizeof(real_piece_t);
}

static real_view_t *view_of(const real_arena_t *st, const capmem__rm_t *rm)
{
    for (real_view_t *v = st != NULL ? st->views : NULL; v != NULL; v = v->next) {
        if (v->rm == rm) {
            return v;
        }
    }
    return NULL;
}

static uint8_t *view_base(const real_view_t *v)
{
    return (uint8_t *)atomic_load_explicit(&v->base, memory_order_relaxed);
}

/* Unlink piece @p i (index + 1) from the mapping order and free its record. */
static void piece_free(real_arena_t *st, uint32_t i)
{
    real_piece_t *p = &st->pool[i - 1];
    if (p->older != 0) {
        st->pool[p->older - 1].newer = p->newer;
    } else {
        st->oldest = p->newer;
    }
    if (p->newer != 0) {
        st->pool[p->newer - 1].older = p->older;
    } else {
        st->newest = p->older;
    }
    real_view_t *v = capmem__real_slot(p->view);
    memset(v->table + p->first, 0, (size_t)p->pages * sizeof(uint32_t));
    v->npieces--;
    st->used--;
    p->live = 0;
    p->older = 0;
    p->newer = st->free;
    st->free = i;
}

/*
 * Every piece of @p v forgotten, and the whole reservation PROT_NONE in one
 * call: the last resort of a drop, when the kernel refuses to split a
 * mapping (the limit of mappings). mprotect of the whole reservation never
 * splits anything, so it cannot hit that limit.
 */
static void view_reset(capmem_arena_t *arena, real_arena_t *st, real_view_t *v)
{
    const size_t size = atomic_load_explicit(&v->size, memory_order_relaxed);
    int rc = sys_mprotect(view_base(v), size, PROT_NONE);
    CAPMEM_ASSERT(rc == 0, "mprotect of a whole reservation needs no new mapping");
    (void)rc;
    REAL_MARK_DEFINED(view_base(v), size);
    const unsigned idx = capmem__real_slot_index(v);
    for (uint32_t i = st->oldest; i != 0;) {
        const uint32_t next = st->pool[i - 1].newer;
        if (st->pool[i - 1].view == idx) {
            piece_free(st, i);
            st->stats.dropped++;
        }
        i = next;
    }
    (void)arena;
}

/*
 * Drop piece @p i back to PROT_NONE: a fresh anonymous PROT_NONE mapping
 * over it (it merges back into the reservation), or, when the kernel is at
 * its limit of mappings, mprotect(PROT_NONE) of the piece, or of the whole
 * view. A drop always succeeds, so detach always works.
 */
static void piece_drop(capmem_arena_t *arena, real_arena_t *st, uint32_t i)
{
    const real_piece_t *p = &st->pool[i - 1];
    real_view_t *v = capmem__real_slot(p->view);
    const unsigned shift = arena->mem.page_shift;
    uint8_t *at = view_base(v) + ((uint64_t)p->first << shift);
    const size_t len = (size_t)p->pages << shift;
    if (!injected(1) &&
        sys_mmap(at, len, PROT_NONE, MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1,
                 0) != MAP_FAILED) {
        REAL_MARK_DEFINED(at, len);
        piece_free(st, i);
        return;
    }
    if (!injected(2) && sys_mprotect(at, len, PROT_NONE) == 0) {
        REAL_MARK_DEFINED(at, len);
        piece_free(st, i);
        return;
    }
    view_reset(arena, st, v);
}

/* Drop the pieces of @p v that overlap pages [first, first + pages). */
static void view_drop(capmem_arena_t *arena, real_arena_t *st, real_view_t *v, uint64_t first,
                      uint64_t pages)
{
    uint64_t end = first + pages;
    if (end > v->pages) {
        end = v->pages;
    }
    for (uint64_t pg = first; pg < end && v->npieces != 0;) {
        const uint32_t i = v->table[pg];
        if (i == 0) {
            pg++;
            continue;
        }
        pg = (uint64_t)st->pool[i - 1].first + st->pool[i - 1].pages;
        piece_drop(arena, st, i);
        st->stats.dropped++;
    }
}

/*
 * Pages [first, first + pages) of @p rm changed: drop them in @p rm's view
 * and, through each attachment of its managed dataspace, in every map that
 * shows them, up to the outermost. Cycles are refused at attach, so the
 * walk ends.
 */
static void drop_up(capmem_arena_t *arena, real_arena_t *st, capmem__rm_t *rm, uint64_t first,
                    uint64_t pages)
{
    real_view_t *v = view_of(st, rm);
    if (v != NULL) {
        view_drop(arena, st, v, first, pages);
    }
    if (rm->managed == NULL) {
        return;
    }
    const unsigned shift = arena->mem.page_shift;
    for (rm_region_t *r = rm->managed->regions; r != NULL; r = r->ds_next) {
        const uint64_t o = r->off >> shift; /* the map's page shown at the region's first page */
        const uint64_t lo = first > o ? first : o;
        const uint64_t hi = first + pages < o + r->pages ? first + pages : o + r->pages;
        if (lo < hi) {
            drop_up(arena, st, rg_rm(arena, r), r->base + (lo - o), hi - lo);
        }
    }
}

static void hook_drop(capmem_arena_t *arena, capmem__rm_t *rm, uint64_t first, uint64_t pages)
{
    real_arena_t *st = real_state(arena);
    if (st != NULL && st->used != 0) {
        drop_up(arena, st, rm, first, pages);
    }
}

/* Unmap and unregister view @p v (unmap, close, arena destroy). */
static void view_close(real_arena_t *st, real_view_t *v)
{
    const unsigned idx = capmem__real_slot_index(v);
    for (uint32_t i = st->oldest; i != 0 && v->npieces != 0;) {
        const uint32_t next = st->pool[i - 1].newer;
        if (st->pool[i - 1].view == idx) {
            piece_free(st, i);
        }
        i = next;
    }
    void *base = view_base(v);
    const size_t size = atomic_load_explicit(&v->size, memory_order_relaxed);
    /* Hidden from the handler first: a fault there from now on is not the library's. */
    capmem__real_slot_release(v);
    sys_munmap(base, size);
    sys_munmap(v->table, (size_t)v->pages * sizeof(uint32_t));
    for (real_view_t **pp = &st->views; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == v) {
            *pp = v->next;
            break;
        }
    }
    v->rm = NULL;
    v->table = NULL;
    v->next = NULL;
    st->stats.views--;
}

static void hook_close(capmem_arena_t *arena, capmem__rm_t *rm)
{
    real_arena_t *st = real_state(arena);
    real_view_t *v = view_of(st, rm);
    if (v != NULL) {
        view_close(st, v);
    }
}

static void *hook_base(capmem_arena_t *arena, const capmem__rm_t *rm)
{
    const real_view_t *v = view_of(real_state(arena), rm);
    return v != NULL ? view_base(v) : NULL;
}

static const capmem__rm_real_hooks_t real_hooks = {
    .drop = hook_drop,
    .close = hook_close,
    .base = hook_base,
};

static void real_fini(capmem_arena_t *arena, void *state)
{
    (void)arena;
    real_arena_t *st = state;
    CAPMEM_ASSERT(st->views == NULL, "every view went with its map");
    sys_munmap(st->pool, pool_bytes(st->cap));
}

/* Host memory of real mode: a reservation, a view's table, the pool (kind 3 of the hook). */
static void *sys_mmap_host(size_t len, int prot)
{
    return injected(3)
               ? MAP_FAILED
               : sys_mmap(NULL, len, prot, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
}

static capmem_err_t pool_make(real_arena_t *st, uint32_t cap)
{
    void *p = sys_mmap_host(pool_bytes(cap), PROT_READ | PROT_WRITE);
    if (p == MAP_FAILED) {
        return capmem__fail(CAPMEM_E_HOST_NOMEM, NULL,
                            "no host memory for %u records of mapped pieces", cap);
    }
    st->pool = p;
    st->cap = cap;
    st->high = 0;
    st->free = 0;
    st->stats.budget = cap;
    return CAPMEM_OK;
}

/* The layer on this arena, set up with its pool and its hooks (idempotent). */
static capmem_err_t real_setup(capmem_arena_t *arena, real_arena_t **out)
{
    real_arena_t *st = NULL;
    capmem_err_t err = capmem__layer_setup(arena, &real_layer, sizeof(*st), (void **)&st);
    if (err == CAPMEM_OK && st->pool == NULL) {
        err = pool_make(st, CAPMEM_RM_REAL_DEFAULT_BUDGET);
    }
    *out = st;
    return err;
}

/* ---- resolving an access --------------------------------------------------------------- */

static bool prot_allows(unsigned prot, capmem_rm_access_t access)
{
    switch (access) {
    case CAPMEM_RM_READ:
        return (prot & PROT_READ) != 0;
    case CAPMEM_RM_WRITE:
        return (prot & PROT_WRITE) != 0;
    case CAPMEM_RM_EXEC:
        return (prot & PROT_EXEC) != 0;
    }
    return false;
}

/*
 * The piece around local address @p addr of @p rm, which translates: the
 * largest range that goes through the same region at every level, as
 * [*lo, *hi) local to @p rm, the arena offset of *lo and the AND of the
 * regions' flags along the path. Each level narrows the window to its
 * region; delta maps an inner address back to the top map (modulo 2^64).
 */
static void piece_extent(const capmem_arena_t *arena, capmem__rm_t *rm, uint64_t addr, uint64_t *lo,
                         uint64_t *hi, uint64_t *boff, unsigned *flags)
{
    const unsigned shift = arena->mem.page_shift;
    uint64_t wlo = 0;
    uint64_t whi = rm->size;
    uint64_t delta = 0;
    unsigned f = RG_WRITABLE | RG_EXEC;
    for (;;) {
        const rm_region_t *r = capmem__rm_region_at(arena, rm, addr);
        CAPMEM_ASSERT(r != NULL, "the address translates");
        const uint64_t rs = (uint64_t)r->base << shift;
        const uint64_t re = rg_end(r) << shift;
        wlo = wlo > rs ? wlo : rs;
        whi = whi < re ? whi : re;
        f &= rg_flags(r);
        const capmem__ds_t *d = rg_ds(arena, r);
        if (capmem__ds_kind(d) == CAPMEM__DS_MANAGED) {
            /* Into the inner map: x becomes x - rs + off there. */
            wlo = wlo - rs + r->off;
            whi = whi - rs + r->off;
            addr = addr - rs + r->off;
            delta += rs - r->off;
            rm = capmem__ds_map(d);
            continue;
        }
        *boff = d->off + (wlo - rs + r->off);
        *lo = wlo + delta;
        *hi = whi + delta;
        *flags = f;
        return;
    }
}

/* Room for one more piece: the least recently mapped go first. */
static void make_room(capmem_arena_t *arena, real_arena_t *st)
{
    while (st->used >= st->cap) {
        piece_drop(arena, st, st->oldest);
        st->stats.evicted++;
    }
}

static uint32_t piece_alloc(real_arena_t *st)
{
    uint32_t i = st->free;
    if (i != 0) {
        st->free = st->pool[i - 1].newer;
    } else {
        i = ++st->high;
    }
    CAPMEM_ASSERT(i <= st->cap, "room was made");
    return i;
}

/* Map the piece behind byte @p off of @p v, which translates for the access. */
static capmem_err_t map_piece(capmem_arena_t *arena, real_arena_t *st, real_view_t *v, uint64_t off)
{
    const unsigned shift = arena->mem.page_shift;
    uint64_t lo;
    uint64_t hi;
    uint64_t boff;
    unsigned f;
    piece_extent(arena, v->rm, off, &lo, &hi, &boff, &f);
    const int prot = PROT_READ |
                     ((f & RG_WRITABLE) && !(v->flags & CAPMEM_RM_REAL_READONLY) ? PROT_WRITE : 0) |
                     ((f & RG_EXEC) ? PROT_EXEC : 0);
    /* Nothing is mapped there (a changed range was dropped); be sure of it cheaply. */
    view_drop(arena, st, v, lo >> shift, (hi - lo) >> shift);
    make_room(arena, st);
    uint8_t *at = view_base(v) + lo;
    for (;;) {
        if (!injected(0) && sys_mmap(at, (size_t)(hi - lo), prot, MAP_FIXED | MAP_SHARED,
                                     arena->mem.fd, boff) != MAP_FAILED) {
            break;
        }
        const int e = errno;
        if (e == ENOMEM && st->used != 0) {
            /* The kernel's limit of mappings: give back the oldest and try again. */
            piece_drop(arena, st, st->oldest);
            st->stats.evicted++;
            continue;
        }
        capmem_err_t err =
            capmem__fail(CAPMEM_E_SYSTEM, NULL, "mmap of %llu bytes at 0x%llx of a view failed: %s",
                         (unsigned long long)(hi - lo), (unsigned long long)lo, strerror(e));
        capmem__detail()->sys_errno = e;
        capmem__detail()->address = off;
        return err;
    }
    const uint32_t i = piece_alloc(st);
    real_piece_t *p = &st->pool[i - 1];
    p->boff = boff;
    p->first = (uint32_t)(lo >> shift);
    p->pages = (uint32_t)((hi - lo) >> shift);
    p->prot = (uint8_t)prot;
    p->view = (uint16_t)capmem__real_slot_index(v);
    p->live = 1;
    p->newer = 0;
    p->older = st->newest;
    if (st->newest != 0) {
        st->pool[st->newest - 1].newer = i;
    } else {
        st->oldest = i;
    }
    st->newest = i;
    for (uint64_t pg = p->first; pg < (uint64_t)p->first + p->pages; pg++) {
        v->table[pg] = i;
    }
    v->npieces++;
    st->used++;
    st->stats.mapped++;
    return CAPMEM_OK;
}

static capmem_err_t fail_at(capmem_err_t code, uint64_t off, const char *what)
{
    capmem_err_t err =
        capmem__fail(code, NULL, "%s at 0x%llx of a view", what, (unsigned long long)off);
    capmem__detail()->address = off;
    return err;
}

capmem_err_t capmem__real_resolve(capmem_arena_t *arena, real_view_t *v, uint64_t off,
                                  capmem_rm_access_t access, bool exact, bool fault)
{
    real_arena_t *st = real_state(arena);
    st->stats.faults += fault ? 1u : 0u;
    const uint32_t gen = atomic_load_explicit(&v->gen, memory_order_relaxed);
    const unsigned shift = arena->mem.page_shift;
    unsigned retries = 0;
    for (;;) {
        const uint32_t i = v->table[off >> shift];
        if (i != 0) {
            const unsigned prot = st->pool[i - 1].prot;
            /* Without an error code, a fault on a mapped page was not the access it allowed. */
            while (!exact && access <= CAPMEM_RM_EXEC && prot_allows(prot, access)) {
                access = (capmem_rm_access_t)(access + 1);
            }
            if (access > CAPMEM_RM_EXEC || prot_allows(prot, access)) {
                st->stats.spurious++; /* another thread mapped it first */
                return CAPMEM_OK;
            }
        }
        if (access == CAPMEM_RM_WRITE && (v->flags & CAPMEM_RM_REAL_READONLY)) {
            return fail_at(CAPMEM_E_DENIED, off, "store through a view mapped read-only");
        }
        capmem__rm_xlate_t x;
        capmem__rm_translate(arena, v->rm, off, access, &x);
        if (x.fault_rm == NULL) {
            return map_piece(arena, st, v, off);
        }
        capmem_err_t err = capmem__rm_deliver(arena, x.fault_rm, x.fault_addr, access);
        if (err != CAPMEM_OK) {
            return err;
        }
        if (atomic_load_explicit(&v->gen, memory_order_relaxed) != gen || v->rm == NULL) {
            return fail_at(CAPMEM_E_INVALID_CAP, off,
                           "the view went away while its fault was handled");
        }
        if (++retries >= CAPMEM_RM_FAULT_RETRIES) {
            err = capmem__fail(CAPMEM_E_FAULT_LOOP, NULL,
                               "%s fault at 0x%llx reported resolved %u times without progress",
                               capmem_rm_access_name(access), (unsigned long long)x.fault_addr,
                               retries);
            capmem__detail()->address = x.fault_addr;
            return err;
        }
    }
}

/* ---- the public calls ------------------------------------------------------------------- */

typedef struct map_plan {
    capmem__rm_t *rm;
    real_arena_t *st;
    real_view_t *v; /* a taken registry slot */
    void *base;     /* the reservation */
    uint32_t *table;
} map_plan_t;

static void map_plan_undo(map_plan_t *plan)
{
    if (plan->v != NULL) {
        capmem__real_slot_release(plan->v);
    }
    sys_munmap(plan->base, plan->rm != NULL ? (size_t)plan->rm->size : 0);
}

static capmem_err_t decode_map(capmem_arena_t *arena, capmem_cap_t rm, unsigned flags,
                               map_plan_t *plan)
{
    const unsigned rights =
        CAPMEM_RIGHT_READ | ((flags & CAPMEM_RM_REAL_READONLY) ? 0u : CAPMEM_RIGHT_WRITE);
    capmem__rm_t *m = NULL;
    capmem_err_t err = capmem__rm_lookup(arena, rm, rights, &m);
    if (err != CAPMEM_OK) {
        return err;
    }
    if (arena->mem.fd < 0) {
        return capmem__fail(CAPMEM_E_UNSUPPORTED, NULL,
                            "the arena has no memfd backing (%s): real mode maps the memfd",
                            capmem_backing_name(arena->mem.backing));
    }
    if (arena->mem.page_size < arena->mem.host_page) {
        return capmem__fail(CAPMEM_E_UNSUPPORTED, NULL,
                            "the arena's page (%llu bytes) is smaller than the host's (%llu): a "
                            "view maps whole host pages",
                            (unsigned long long)arena->mem.page_size,
                            (unsigned long long)arena->mem.host_page);
    }
    err = real_setup(arena, &plan->st);
    if (err != CAPMEM_OK) {
        return err;
    }
    if (!plan->st->hooked) {
        /* A map exists, so the region-map layer is set up to take the hooks. */
        capmem__rm_real_register(arena, &real_hooks);
        plan->st->hooked = true;
    }
    if (view_of(plan->st, m) != NULL) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, NULL, "region map \"%s\" is mapped already",
                            m->label);
    }
    err = capmem__real_install_handler();
    if (err != CAPMEM_OK) {
        return err;
    }
    plan->v = capmem__real_slot_take();
    if (plan->v == NULL) {
        return capmem__fail(CAPMEM_E_OUT_OF_CAPS, NULL,
                            "%u region maps are mapped in this process already",
                            CAPMEM_RM_REAL_MAX_VIEWS);
    }
    plan->rm = m;
    plan->base = sys_mmap_host((size_t)m->size, PROT_NONE);
    int e = errno;
    if (plan->base != MAP_FAILED) {
        plan->table = sys_mmap_host((size_t)m->pages * sizeof(uint32_t), PROT_READ | PROT_WRITE);
        e = errno;
    } else {
        plan->base = NULL;
    }
    if (plan->base == NULL || plan->table == MAP_FAILED) {
        map_plan_undo(plan);
        err = capmem__fail(CAPMEM_E_SYSTEM, NULL, "reserving %llu bytes for a view failed: %s",
                           (unsigned long long)m->size, strerror(e));
        capmem__detail()->sys_errno = e;
        return err;
    }
    return CAPMEM_OK;
}

static void *invoke_map(capmem_arena_t *arena, const map_plan_t *plan, unsigned flags)
{
    real_view_t *v = plan->v;
    v->rm = plan->rm;
    v->table = plan->table;
    v->pages = plan->rm->pages;
    v->npieces = 0;
    v->flags = flags;
    v->next = plan->st->views;
    plan->st->views = v;
    plan->st->stats.views++;
    REAL_MARK_DEFINED(plan->base, plan->rm->size);
    capmem__real_slot_publish(v, (uintptr_t)plan->base, (uintptr_t)plan->rm->size, arena);
    return plan->base;
}

capmem_err_t capmem_rm_real_map(capmem_arena_t *arena, capmem_cap_t rm, unsigned flags, void **base)
{
    if (arena == NULL || base == NULL) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, __func__, "arena or base is NULL");
    }
    if ((flags & ~(unsigned)CAPMEM_RM_REAL_READONLY) != 0) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, __func__, "unknown flags 0x%x", flags);
    }
    CAPMEM__ENTER_OR_RETURN(arena);
    map_plan_t plan = {0};
    void *at = NULL;
    capmem_err_t err = decode_map(arena, rm, flags, &plan);
    if (err == CAPMEM_OK) {
        at = invoke_map(arena, &plan, flags);
    }
    CAPMEM__LEAVE(arena);
    if (err == CAPMEM_OK) {
        *base = at;
    }
    return err;
}

/* The view of map @p rm (looked up with @p rights), or INVALID_ARGS if it is not mapped. */
static capmem_err_t lookup_view(capmem_arena_t *arena, capmem_cap_t rm, unsigned rights,
                                real_view_t **out)
{
    capmem__rm_t *m = NULL;
    capmem_err_t err = capmem__rm_lookup(arena, rm, rights, &m);
    if (err != CAPMEM_OK) {
        return err;
    }
    *out = view_of(real_state(arena), m);
    if (*out == NULL) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, NULL,
                            "region map \"%s\" is not mapped (capmem_rm_real_map)", m->label);
    }
    return CAPMEM_OK;
}

capmem_err_t capmem_rm_real_unmap(capmem_arena_t *arena, capmem_cap_t rm)
{
    if (arena == NULL) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, __func__, "arena is NULL");
    }
    CAPMEM__ENTER_OR_RETURN(arena);
    real_view_t *v = NULL;
    capmem_err_t err = lookup_view(arena, rm, 0, &v);
    if (err == CAPMEM_OK) {
        view_close(real_state(arena), v);
    }
    CAPMEM__LEAVE(arena);
    return err;
}

static capmem_err_t prefault(capmem_arena_t *arena, capmem_cap_t rm, uint64_t address, size_t len,
                             capmem_rm_access_t access)
{
    const unsigned rights = access == CAPMEM_RM_WRITE ? CAPMEM_RIGHT_WRITE : CAPMEM_RIGHT_READ;
    real_view_t *v = NULL;
    capmem_err_t err = lookup_view(arena, rm, rights, &v);
    if (err != CAPMEM_OK) {
        return err;
    }
    uint64_t end;
    if (!capmem__add_ok(address, len, &end) || end > v->rm->size) {
        err = capmem__fail_range(NULL, 3, address, 0, v->rm->size, "prefault beyond the map");
        capmem__detail()->size = len;
        return err;
    }
    const unsigned shift = arena->mem.page_shift;
    const real_arena_t *st = real_state(arena);
    for (uint64_t off = address; off < end;) {
        err = capmem__real_resolve(arena, v, off, access, true, false);
        if (err != CAPMEM_OK) {
            return err;
        }
        const uint32_t i = v->table[off >> shift];
        CAPMEM_ASSERT(i != 0, "a resolved page is mapped");
        off = ((uint64_t)st->pool[i - 1].first + st->pool[i - 1].pages) << shift;
    }
    return CAPMEM_OK;
}

capmem_err_t capmem_rm_real_prefault(capmem_arena_t *arena, capmem_cap_t rm, uint64_t address,
                                     size_t len, capmem_rm_access_t access)
{
    if (arena == NULL ||
        (access != CAPMEM_RM_READ && access != CAPMEM_RM_WRITE && access != CAPMEM_RM_EXEC)) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, __func__,
                            "arena is NULL or access type %d is unknown", (int)access);
    }
    CAPMEM__ENTER_OR_RETURN(arena);
    capmem_err_t err = prefault(arena, rm, address, len, access);
    CAPMEM__LEAVE(arena);
    return err;
}

/* Move the live pieces of @p st into a fresh pool of @p cap records (used <= cap). */
static capmem_err_t pool_resize(real_arena_t *st, uint32_t cap)
{
    real_arena_t old = *st;
    capmem_err_t err = pool_make(st, cap);
    if (err != CAPMEM_OK) {
        *st = old;
        return err;
    }
    st->oldest = 0;
    st->newest = 0;
    for (uint32_t i = old.oldest; i != 0; i = old.pool[i - 1].newer) {
        const real_piece_t *p = &old.pool[i - 1];
        const uint32_t j = ++st->high;
        st->pool[j - 1] = *p;
        st->pool[j - 1].newer = 0;
        st->pool[j - 1].older = st->newest;
        if (st->newest != 0) {
            st->pool[st->newest - 1].newer = j;
        } else {
            st->oldest = j;
        }
        st->newest = j;
        real_view_t *v = capmem__real_slot(p->view);
        for (uint64_t pg = p->first; pg < (uint64_t)p->first + p->pages; pg++) {
            v->table[pg] = j;
        }
    }
    sys_munmap(old.pool, pool_bytes(old.cap));
    return CAPMEM_OK;
}

capmem_err_t capmem_rm_real_set_budget(capmem_arena_t *arena, uint32_t pieces)
{
    if (arena == NULL || pieces == 0) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, __func__, "arena is NULL or pieces is 0");
    }
    CAPMEM__ENTER_OR_RETURN(arena);
    real_arena_t *st = NULL;
    capmem_err_t err = real_setup(arena, &st);
    if (err == CAPMEM_OK) {
        /* Pieces past the new budget go, the least recently mapped first. */
        while (st->used > pieces) {
            piece_drop(arena, st, st->oldest);
            st->stats.evicted++;
        }
        err = pool_resize(st, pieces);
    }
    CAPMEM__LEAVE(arena);
    return err;
}

capmem_err_t capmem_rm_real_stats(capmem_arena_t *arena, capmem_rm_real_stats_t *out)
{
    if (arena == NULL || out == NULL) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, __func__, "arena or out is NULL");
    }
    CAPMEM__ENTER_OR_RETURN(arena);
    const real_arena_t *st = real_state(arena);
    capmem_rm_real_stats_t s = {0};
    if (st != NULL) {
        s = st->stats;
        s.pieces = st->used;
    }
    CAPMEM__LEAVE(arena);
    *out = s;
    return CAPMEM_OK;
}

/* ---- the checker ----------------------------------------------------------------------- */

static capmem_err_t check_piece(capmem_arena_t *arena, const real_arena_t *st, uint32_t i,
                                char *why, size_t len)
{
    const real_piece_t *p = &st->pool[i - 1];
    const real_view_t *v = capmem__real_slot(p->view);
    const unsigned shift = arena->mem.page_shift;
    if (!p->live || !v->taken || v->rm == NULL ||
        atomic_load_explicit(&v->arena, memory_order_relaxed) != arena || p->pages == 0 ||
        (uint64_t)p->first + p->pages > v->pages || v->table[p->first] != i ||
        v->table[p->first + p->pages - 1] != i) {
        snprintf(why, len, "real mode: piece %u (pages %u+%u) is not in its view's table", i,
                 p->first, p->pages);
        return CAPMEM_E_CORRUPT;
    }
    /* The cache agrees with the model: the piece still translates as it was mapped. */
    const uint64_t off = (uint64_t)p->first << shift;
    capmem__rm_xlate_t x;
    capmem__rm_translate(arena, v->rm, off, CAPMEM_RM_READ, &x);
    uint64_t lo = 0;
    uint64_t hi = 0;
    uint64_t boff = 0;
    unsigned f = 0;
    if (x.fault_rm == NULL) {
        piece_extent(arena, v->rm, off, &lo, &hi, &boff, &f);
    }
    const bool w = (f & RG_WRITABLE) && !(v->flags & CAPMEM_RM_REAL_READONLY);
    if (x.fault_rm != NULL || lo != off || hi != off + ((uint64_t)p->pages << shift) ||
        boff != p->boff || ((p->prot & PROT_WRITE) != 0) != w ||
        ((p->prot & PROT_EXEC) != 0) != ((f & RG_EXEC) != 0)) {
        snprintf(why, len,
                 "real mode: the piece at 0x%llx (%u pages) of the view of \"%s\" no longer "
                 "shows what the map translates to",
                 (unsigned long long)off, p->pages, v->rm->label);
        return CAPMEM_E_CORRUPT;
    }
    return CAPMEM_OK;
}

static capmem_err_t real_check(capmem_arena_t *arena, void *state, char *why, size_t len)
{
    const real_arena_t *st = state;
    uint32_t n = 0;
    uint32_t prev = 0;
    for (uint32_t i = st->oldest; i != 0; prev = i, i = st->pool[i - 1].newer) {
        if (++n > st->used || i > st->high || st->pool[i - 1].older != prev) {
            snprintf(why, len, "real mode: the mapping order is broken at piece %u", i);
            return CAPMEM_E_CORRUPT;
        }
        capmem_err_t err = check_piece(arena, st, i, why, len);
        if (err != CAPMEM_OK) {
            return err;
        }
    }
    uint32_t in_views = 0;
    uint32_t views = 0;
    for (const real_view_t *v = st->views; v != NULL; v = v->next) {
        in_views += v->npieces;
        views++;
        const capmem__slot_t *s = &arena->cspace.slots[v->rm->slot];
        if (s->obj != v->rm || s->type != CAPMEM_OBJ_REGION_MAP) {
            snprintf(why, len, "real mode: a view shows a map that is gone");
            return CAPMEM_E_CORRUPT;
        }
    }
    if (n != st->used || in_views != st->used || st->used > st->cap || prev != st->newest ||
        views != st->stats.views) {
        snprintf(why, len,
                 "real mode: %u pieces in order, %u in views, %u counted (budget %u), %u views "
                 "listed, %u counted",
                 n, in_views, st->used, st->cap, views, st->stats.views);
        return CAPMEM_E_CORRUPT;
    }
    return CAPMEM_OK;
}
