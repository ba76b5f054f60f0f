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

/*
 * A user object's host record (capmem_cap_create_user). When its original
 * capability dies the record is queued on the arena (next), and the type's
 * destroy hook runs after the call, outside the lock, like an event.
 */
typedef struct capmem__user_obj {
    capmem__object_t hdr;
    const capmem_user_type_t *utype;
    void *object;
    struct capmem__user_obj *next;
} capmem__user_obj_t;

/* Events one call may raise before the rest are counted as lost. */
#define CAPMEM__EVENT_RING 1024u

typedef struct capmem__event_rec {
    capmem_event_kind_t kind;
    capmem_cap_t cap;
    uint64_t a;
    uint64_t b;
    char msg[160];
} capmem__event_rec_t;

/*
 * The event queue: a ring of CAPMEM__EVENT_RING records, made with the
 * first handler. Invariant: n <= CAPMEM__EVENT_RING; lost != 0 only while
 * the ring was full at some push since the last LOST event was delivered.
 */
typedef struct capmem__evq {
    capmem__event_rec_t *ring;
    uint32_t head;
    uint32_t n;
    uint64_t lost;
} capmem__evq_t;

struct capmem_arena {
    /*
     * Recursive, so that fault handlers may call any library function on
     * the same arena from the same thread without deadlock. Other threads
     * block until the outermost call returns. Built from a plain mutex and
     * an owner word instead of a PTHREAD_MUTEX_RECURSIVE mutex: the owner
     * check is a load, and the plain mutex is glibc's fastest path.
     */
    pthread_mutex_t lock;
    _Atomic uintptr_t lock_owner; /* the owning thread's tag, 0 when free */
    unsigned lock_depth;          /* written only by the owner */
    /*
     * The lock depth at which a nested call is allowed (a fault handler
     * runs there), 0 when none is.
     */
    unsigned reentry_depth;

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

    /* The process that made the arena; a forked child is refused (capmem__forked). */
    unsigned fork_gen;
    long creator;

    capmem_event_fn on_event;
    void *event_ctx;
    capmem__evq_t evq;
    capmem__user_obj_t *dead_users; /* user destroy hooks to run after the call */
    capmem__user_obj_t *dead_users_tail;
    _Atomic uintptr_t delivering; /* the thread running the delivery loop, 0 if none */
    bool destroy_requested;       /* capmem_arena_destroy from inside a call or callback */
    bool tearing_down;            /* destroy in progress: no events, no new objects */
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
        /*
         * One compare covers tag, generation, type bits and index: the
         * handle is exactly the one this live slot would issue.
         */
        if (s->type != CAPMEM_OBJ_NONE && cap == capmem__slot_handle(cs, idx) &&
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

/* ---- the machine (src/machine.c) ---------------------------------------- */

/* Set up the lock and the fork guard of a new arena. */
void capmem__machine_init(capmem_arena_t *arena);
/* True when the calling process is a fork child of the arena's creator. */
bool capmem__forked(const capmem_arena_t *arena);

/* Arena tags (see capmem__cap_make): take a free one, give it back, ask if one is live. */
capmem_err_t capmem__tag_take(uint32_t *tag);
void capmem__tag_give(uint32_t tag);
bool capmem__tag_live(uint32_t tag);

/*
 * Enter a public call: refuse a forked child (UNSUPPORTED) and a call from
 * a callback that runs mid-call (REENTRANT), take the lock, and record
 * @p func for error reports; *prev receives the name to restore. Pair with
 * capmem__leave(arena, prev), the last thing the call does with the arena:
 * leaving the outermost call delivers the queued events.
 */
capmem_err_t capmem__enter(capmem_arena_t *arena, const char *func, const char **prev)
    __attribute__((warn_unused_result));
void capmem__leave(capmem_arena_t *arena, const char *prev);

/*
 * Around a fault handler: allow nested calls at the current depth; returns
 * what capmem__reentry_restore puts back afterwards.
 */
unsigned capmem__reentry_allow(capmem_arena_t *arena);
void capmem__reentry_restore(capmem_arena_t *arena, unsigned saved);

/*
 * The entry and exit of a public call that returns capmem_err_t: enter
 * (capmem__enter) or return its error from the enclosing function; leave
 * as the last thing done with the arena. The _AS form names the call for
 * error reports when a shared helper does the entering.
 */
#define CAPMEM__ENTER_OR_RETURN(arena) CAPMEM__ENTER_AS_OR_RETURN(arena, __func__)
#define CAPMEM__ENTER_AS_OR_RETURN(arena, func)                                                    \
    const char *capmem__prev_func_;                                                                \
    do {                                                                                           \
        capmem_err_t capmem__enter_err_ = capmem__enter((arena), (func), &capmem__prev_func_);     \
        if (capmem__enter_err_ != CAPMEM_OK) {                                                     \
            return capmem__enter_err_;                                                             \
        }                                                                                          \
    } while (0)
#define CAPMEM__LEAVE(arena) capmem__leave((arena), capmem__prev_func_)

/* Is anybody listening? Callers skip formatting an event when not. */
static inline bool capmem__events_on(const capmem_arena_t *arena)
{
    return arena->on_event != NULL && !arena->tearing_down;
}

/* Queue a user object's destroy hook to run after the call. */
void capmem__defer_user_destroy(capmem_arena_t *arena, capmem__user_obj_t *u);
/* Run (and free) a list of dead user objects, linked by next. */
void capmem__run_user_destroys(capmem__user_obj_t *list);

/*
 * capmem_arena_destroy from inside a call or a callback on this thread:
 * mark the arena and return true, and the outermost call destroys it as it
 * leaves. Returns false when the destroy may happen now.
 */
bool capmem__destroy_deferred(capmem_arena_t *arena);
/* Tear the arena down and free it (no call may be in progress). */
void capmem__arena_destroy_now(capmem_arena_t *arena);

/* Queue an event with a printf message (nothing when nobody listens). */
void capmem__emitf(capmem_arena_t *arena, capmem_event_kind_t kind, capmem_cap_t cap, uint64_t a,
                   uint64_t b, const char *fmt, ...) __attribute__((format(printf, 6, 7)));

#endif
