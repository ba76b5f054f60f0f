/* SPDX-License-Identifier: MIT */
/*
 * The arena record. The arena is the simulated machine: it owns the backing
 * memory, the capability space, the event callback and the one lock that
 * serialises every public call on it. Higher layers hang their per-arena
 * state off `ext[]` so the arena needs no knowledge of them.
 */
#ifndef CAPMEM_ARENA_INTERNAL_H
#define CAPMEM_ARENA_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include "capmem/arena.h"
#include "capmem/inspect.h"
#include "cap_internal.h"
#include "internal.h"

/* Slots for the per-arena state of higher layers. */
typedef enum capmem__ext {
    CAPMEM__EXT_UNTYPED = 0,
    CAPMEM__EXT_RAM,
    CAPMEM__EXT_RM,
    CAPMEM__EXT_COUNT
} capmem__ext_t;

typedef struct capmem__device {
    uint32_t id;   /* 0 = unused entry */
    uint32_t pins; /* untyped objects covering it; removal refused while > 0 */
    uint64_t phys;
    uint64_t size;
    uint64_t backing_offset;
} capmem__device_t;

struct capmem_arena {
    /*
     * Recursive, so that callbacks (fault handlers, event callbacks) may call
     * any library function on the same arena from the same thread without
     * deadlock. Other threads block until the outermost call returns.
     * Built from a plain mutex and an owner word instead of a
     * PTHREAD_MUTEX_RECURSIVE mutex: the owner check is a load, and the
     * plain mutex is glibc's fastest path.
     */
    pthread_mutex_t lock;
    _Atomic uintptr_t lock_owner; /* the owning thread's tag, 0 when free */
    unsigned lock_depth;          /* written only by the owner */

    uint8_t *base;     /* the one mapping: RAM then the device window */
    uint64_t map_size; /* ram_size + device_window */
    uint64_t ram_size;
    uint64_t page_size;
    unsigned page_shift;
    uint64_t host_page; /* the host's page size, for hole punching */
    uint64_t phys_base;
    uint64_t device_window;
    int fd; /* memfd, or -1 for the anonymous fallback */
    capmem_backing_t backing;

    /* Invariant: entries with id != 0 never overlap in phys or in backing. */
    capmem__device_t devices[CAPMEM_DEVICE_MAX];
    uint32_t next_device_id;

    capmem__cspace_t cspace;

    capmem_event_fn on_event;
    void *event_ctx;
    bool tearing_down; /* destroy in progress: no events, no new objects */
    /*
     * The handle whose object is being destroyed, for teardown hooks that
     * report it (the slot is already free when the hook runs). Read it
     * first thing in the hook: nested deletions overwrite it.
     */
    capmem_cap_t dying;

    void *ext[CAPMEM__EXT_COUNT];
    /* Called by capmem_arena_destroy after all capabilities are gone. */
    void (*ext_fini[CAPMEM__EXT_COUNT])(capmem_arena_t *arena);
    /* Invariant checkers of the higher layers, run by capmem_check(). */
    capmem_err_t (*ext_check[CAPMEM__EXT_COUNT])(capmem_arena_t *arena, char *why, size_t len);
};

/* The capability-space checker without taking the lock (for capmem_check). */
capmem_err_t capmem__cspace_check(capmem_arena_t *arena, char *why, size_t len);

/* An address unique to the calling thread: its tag for the arena lock. */
extern _Thread_local char capmem__thread_tag;

static inline void capmem__lock(capmem_arena_t *arena)
{
    const uintptr_t self = (uintptr_t)&capmem__thread_tag;
    /*
     * Only this thread stores its own tag, and clears it before unlocking,
     * so a relaxed load that sees our tag means we hold the lock already.
     */
    if (atomic_load_explicit(&arena->lock_owner, memory_order_relaxed) == self) {
        arena->lock_depth++;
        return;
    }
    pthread_mutex_lock(&arena->lock);
    atomic_store_explicit(&arena->lock_owner, self, memory_order_relaxed);
    arena->lock_depth = 1;
}

static inline void capmem__unlock(capmem_arena_t *arena)
{
    CAPMEM_ASSERT(arena->lock_depth > 0, "unlock by the owning thread");
    if (--arena->lock_depth == 0) {
        atomic_store_explicit(&arena->lock_owner, 0, memory_order_relaxed);
        pthread_mutex_unlock(&arena->lock);
    }
}

/*
 * Validate a handle (see capmem__cap_lookup_slow for the rules and the
 * errors). The common case, a live handle of the right type with the
 * rights, is decided here inline; anything else takes the out-of-line path,
 * which works out which error it is and records the detail.
 */
static inline capmem_err_t capmem__cap_lookup(capmem_arena_t *arena, capmem_cap_t cap,
                                              capmem_obj_type_t type, unsigned rights,
                                              const char *func, capmem__slot_t **slot)
{
    const capmem__cspace_t *cs = &arena->cspace;
    const uint32_t idx = capmem__cap_index(cap);
    if (idx != 0 && idx < cs->high) {
        capmem__slot_t *s = &cs->slots[idx];
        if (s->type != CAPMEM_OBJ_NONE && capmem__cap_gen(cap) == (s->gen & CAPMEM__CAP_GEN_MASK) &&
            (capmem_obj_type_t)s->type == capmem_cap_type(cap) &&
            (type == CAPMEM_OBJ_NONE || (capmem_obj_type_t)s->type == type) &&
            (rights & ~(unsigned)s->rights) == 0) {
            *slot = s;
            return CAPMEM_OK;
        }
    }
    return capmem__cap_lookup_slow(arena, cap, type, rights, func, slot);
}

/* Pointer to backing byte @p offset (RAM or device window). No checks. */
static inline uint8_t *capmem__bytes(const capmem_arena_t *arena, uint64_t offset)
{
    return arena->base + offset;
}

/*
 * Make backing bytes [off, off+size) read as zero. Whole host pages are
 * released (hole punched), so zeroing a large range also gives the memory
 * back to the host instead of touching it; the ragged edges are cleared.
 */
void capmem__arena_zero(capmem_arena_t *arena, uint64_t off, uint64_t size);

/* Device entry covering backing offset range [off, off+size), or NULL. */
capmem__device_t *capmem__device_at_backing(capmem_arena_t *arena, uint64_t off, uint64_t size);

/* Emit an event if a callback is installed (and the arena is not tearing down). */
void capmem__emit(capmem_arena_t *arena, const capmem_event_t *ev);
/* Convenience: an event with a printf message. */
void capmem__emitf(capmem_arena_t *arena, capmem_event_kind_t kind, capmem_cap_t cap, uint64_t a,
                   uint64_t b, const char *fmt, ...) __attribute__((format(printf, 6, 7)));

#endif
