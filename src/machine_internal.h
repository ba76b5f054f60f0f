/* SPDX-License-Identifier: MIT */
/*
 * The per-arena machine: the lock every public call takes, the capability
 * table with its type registry, the event queue and the layers set up on
 * the arena. `struct capmem_arena` is the machine; its backing memory is the
 * arena proper (arena_internal.h). Higher layers reach it through the
 * registries here and are never named by it. Never installed.
 */
#ifndef CAPMEM_MACHINE_INTERNAL_H
#define CAPMEM_MACHINE_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include "arena_internal.h"
#include "capmem/inspect.h"
#include "cspace_internal.h"
#include "internal.h"

/*
 * A layer set up on an arena (untyped, RAM, region maps...): its per-arena
 * state, torn down after every capability is gone, and its invariant
 * checker, run by capmem_check() in the order the layers were set up.
 */
typedef struct capmem__layer {
    const char *name;
    void (*fini)(capmem_arena_t *arena, void *state);
    capmem_err_t (*check)(capmem_arena_t *arena, void *state, char *why, size_t len);
} capmem__layer_t;

#define CAPMEM__LAYERS_MAX 16u

/*
 * Work deferred to after the call, outside the lock, like an event: the
 * destroy hooks of user object types. run() is called once and frees the
 * record that embeds the node.
 */
typedef struct capmem__deferred {
    struct capmem__deferred *next;
    void (*run)(struct capmem__deferred *d);
    uintptr_t owner; /* the thread whose call queued it, which runs it */
} capmem__deferred_t;

/* Events one call may raise before the rest are counted as lost. */
#define CAPMEM__EVENT_RING 1024u

/* An event's fields, as the layers raise it (capmem__emit); see capmem_event_kind_t. */
typedef struct capmem__ev {
    capmem_event_kind_t kind;
    capmem_cap_t cap;
    capmem_cap_t other;
    uint64_t a;
    uint64_t b;
    uint64_t offset;
    uint64_t size;
    capmem_cap_t payer;
} capmem__ev_t;

typedef struct capmem__event_rec {
    capmem__ev_t ev;
    uintptr_t owner; /* the thread whose call raised it, which delivers it; 0 once taken */
    char msg[160];
} capmem__event_rec_t;

/*
 * A subscriber's place. Place 0 is capmem_arena_set_event_handler's, places
 * 1..CAPMEM_SUBSCRIBERS_MAX are subscriptions. A place is free when fn is
 * NULL; gen is bumped when it is freed, and a subscription's id is
 * (arena tag << 40 | gen << 8 | place), so an ended subscription, or one of
 * another arena, is never mistaken for a live one. The subscriber receives events with a
 * sequence number >= from.
 */
typedef struct capmem__sub {
    capmem_event_fn fn;
    void *ctx;
    unsigned mask;
    uint32_t gen; /* wraps after 2^32 subscriptions in one place */
    uint64_t from;
} capmem__sub_t;

#define CAPMEM__SUBS (CAPMEM_SUBSCRIBERS_MAX + 1u)

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

/*
 * The arena's statistics (capmem_stats): a resource's current, peak and
 * total, and counts of things that happened. Each layer bumps its own at
 * the commit step of an operation, never in a decode step, so a failed
 * call changes none of them (steps that complete on their own, an
 * expanding client's upgrade or a fault delivered, count when they
 * complete). Bytes zeroed are counted by the backing (mem.zeroed), which
 * sits below the machine. Invariant: current <= peak <= total for each
 * resource; written only with the lock held.
 */
typedef struct capmem__stats {
    capmem_stat_t caps;
    capmem_stat_t records;
    capmem_stat_t dataspaces;
    capmem_stat_t aliases;
    capmem_stat_t regions;
    capmem_stat_t lent;
    uint64_t faults[3]; /* delivered, by capmem_rm_access_t */
    uint64_t faults_resolved;
    uint64_t upgrades;
    uint64_t retypes;
    uint64_t revokes;
    capmem_stat_t kernel_records; /* layer 8 */
    capmem_stat_t banks;
    capmem_stat_t bank_frames;
} capmem__stats_t;

/*
 * Who else must agree to a device range coming or going: the kernel-metadata
 * layer registers these when it boots (capmem__device_hooks_set), so the
 * machine's device calls name no layer above. add runs after the range is
 * registered: on an error it has changed nothing and the range is
 * unregistered again; on success it has made what it needs (the per-frame
 * records). removed runs after a range is unregistered and cannot fail.
 */
typedef struct capmem__device_hooks {
    capmem_err_t (*add)(capmem_arena_t *arena, const capmem__device_t *dev);
    void (*removed)(capmem_arena_t *arena, const capmem__device_t *dev);
} capmem__device_hooks_t;

struct capmem_arena {
    /*
     * Recursive for fault handlers, which may call any library function on
     * the same arena from the same thread. Other threads block until the
     * outermost call returns. Built from a plain mutex and an owner word
     * instead of a PTHREAD_MUTEX_RECURSIVE mutex: the owner check is a
     * load, and the plain mutex is glibc's fastest path.
     */
    pthread_mutex_t lock;
    _Atomic uintptr_t lock_owner; /* the owning thread's tag, 0 when free */
    unsigned lock_depth;          /* written only by the owner */
    /* The lock depth at which a nested call is allowed (a fault handler runs there), or 0. */
    unsigned reentry_depth;

    capmem__backing_t mem;
    capmem__cspace_t cspace;
    /* The type registry: how each type's objects are destroyed, named, described. */
    const capmem__type_ops_t *types[CAPMEM_OBJ_TYPE_COUNT];
    struct {
        const capmem__layer_t *layer;
        void *state;
    } layers[CAPMEM__LAYERS_MAX];
    unsigned nlayers;

    /* The process that made the arena; a forked child is refused (capmem__forked). */
    unsigned fork_gen;
    long creator;

    capmem__sub_t subs[CAPMEM__SUBS];
    unsigned sub_mask; /* the union of the live subscribers' masks: the kinds queued */
    uint64_t ev_seq;   /* the sequence number of the next event delivered */
    capmem__evq_t evq;
    capmem__deferred_t *deferred; /* FIFO of work to run after the call */
    capmem__deferred_t *deferred_tail;
    bool destroy_requested; /* capmem_arena_destroy from inside a call or callback */
    bool pending;           /* events, deferred work or a destroy wait for capmem__drain */
    bool tearing_down;      /* destroy in progress: no events, no new objects */

    capmem__stats_t stats;
    const capmem__device_hooks_t *device_hooks; /* or NULL */
};

/* Route device hot-plug through a higher layer's hooks (NULL: none). */
static inline void capmem__device_hooks_set(capmem_arena_t *arena, const capmem__device_hooks_t *h)
{
    arena->device_hooks = h;
}

/* ---- statistics --------------------------------------------------------------- */

/* @p n more of a resource: current and total grow, peak follows current. */
static inline void capmem__stat_add(capmem_stat_t *s, uint64_t n)
{
    s->current += n;
    s->total += n;
    if (s->current > s->peak) {
        s->peak = s->current;
    }
}

/* @p n fewer of a resource; peak and total keep what they saw. */
static inline void capmem__stat_sub(capmem_stat_t *s, uint64_t n)
{
    CAPMEM_ASSERT(s->current >= n, "a resource released was counted when it was made");
    s->current -= n;
}

/* ---- the lock ----------------------------------------------------------- */

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

/* ---- entering and leaving a public call ------------------------------------ */

/* Bumped in the child of every fork (machine.c). */
extern _Atomic unsigned capmem__fork_generation;

/* True when the calling process is a fork child of the arena's creator. */
static inline bool capmem__forked(const capmem_arena_t *arena)
{
    return arena->fork_gen != atomic_load_explicit(&capmem__fork_generation, memory_order_relaxed);
}

/* The refusal of capmem__enter, out of line: UNSUPPORTED (forked) or REENTRANT. */
capmem_err_t capmem__enter_refused(const capmem_arena_t *arena, const char *func);
/* Deliver what the calls left behind (events, deferred work, a destroy). */
void capmem__drain(capmem_arena_t *arena);

/*
 * Enter a public call: refuse a forked child (UNSUPPORTED) and a call from
 * a callback that runs mid-call (REENTRANT), take the lock, and record
 * @p func for error reports; *prev receives the name to restore. Pair with
 * capmem__leave(arena, prev), the last thing the call does with the arena:
 * leaving the outermost call delivers the queued events. Inline: every
 * public call pays this, so the common case is a few loads and the lock.
 */
static inline __attribute__((warn_unused_result)) capmem_err_t
capmem__enter(capmem_arena_t *arena, const char *func, const char **prev)
{
    const uintptr_t self = (uintptr_t)&capmem__thread_tag;
    if (__builtin_expect(
            capmem__forked(arena) ||
                (atomic_load_explicit(&arena->lock_owner, memory_order_relaxed) == self &&
                 arena->reentry_depth != arena->lock_depth),
            0)) {
        return capmem__enter_refused(arena, func);
    }
    capmem__lock(arena);
    *prev = capmem__set_function(func);
    return CAPMEM_OK;
}

static inline void capmem__leave(capmem_arena_t *arena, const char *prev)
{
    capmem__set_function(prev);
    if (arena->lock_depth > 1) {
        capmem__unlock(arena);
        return;
    }
    const bool pending = arena->pending;
    capmem__unlock(arena);
    if (__builtin_expect(pending, 0)) {
        capmem__drain(arena);
    }
}

/*
 * The entry and exit of a public call that returns capmem_err_t: enter
 * (capmem__enter) or return its error from the enclosing function; leave
 * as the last thing done with the arena. The _AS form names the call for
 * error reports when a shared helper does the entering.
 */
#define CAPMEM__ENTER_OR_RETURN(arena) CAPMEM__ENTER_AS_OR_RETURN(arena, __func__)
#define CAPMEM__ENTER_AS_OR_RETURN(arena, func)                                                    \
    const char *capmem__prev_func_ = NULL;                                                         \
    do {                                                                                           \
        capmem_err_t capmem__enter_err_ = capmem__enter((arena), (func), &capmem__prev_func_);     \
        if (capmem__enter_err_ != CAPMEM_OK) {                                                     \
            return capmem__enter_err_;                                                             \
        }                                                                                          \
    } while (0)
#define CAPMEM__LEAVE(arena) capmem__leave((arena), capmem__prev_func_)

/*
 * Around a fault handler: allow nested calls at the current depth; returns
 * what capmem__reentry_restore puts back afterwards.
 */
unsigned capmem__reentry_allow(capmem_arena_t *arena);
void capmem__reentry_restore(capmem_arena_t *arena, unsigned saved);

/* Arena tags (see capmem__cap_make): is one live? */
bool capmem__tag_live(uint32_t tag);

/* ---- registries ------------------------------------------------------------ */

/* Register the hooks of an object type on this arena (idempotent). */
void capmem__type_register(capmem_arena_t *arena, const capmem__type_ops_t *ops);
/* The name of an object: its type's, or the object's own (a user type's). */
const char *capmem__object_name(const capmem_arena_t *arena, capmem_obj_type_t type,
                                const void *obj);

/* A layer's state on this arena, or NULL when it is not set up. */
void *capmem__layer_state(const capmem_arena_t *arena, const capmem__layer_t *layer);
/*
 * Set a layer up on this arena: a zeroed state of @p size bytes (host
 * memory), torn down by layer->fini at arena destruction. Returns the
 * existing state if it is set up already. HOST_NOMEM, or OUT_OF_CAPS when
 * CAPMEM__LAYERS_MAX layers are set up.
 */
capmem_err_t capmem__layer_setup(capmem_arena_t *arena, const capmem__layer_t *layer, size_t size,
                                 void **state);
/* Run every layer's checker, in set-up order. */
capmem_err_t capmem__layers_check(capmem_arena_t *arena, char *why, size_t len);

/* ---- deleting capabilities ---------------------------------------------------- */

/*
 * Delete a slot that has no children: unlink and free it, and if it was an
 * original, destroy its object through the type registry; raise CAP_DELETE.
 */
void capmem__cap_delete_leaf(capmem_arena_t *arena, uint32_t index);
/* Delete every descendant of @p index, children first; returns how many. */
uint64_t capmem__cap_revoke_index(capmem_arena_t *arena, uint32_t index);

/* ---- events and deferred work -------------------------------------------------- */

/* Is anybody listening? Callers skip formatting an event when not. */
static inline bool capmem__events_on(const capmem_arena_t *arena)
{
    return arena->sub_mask != 0 && !arena->tearing_down;
}

/* Does any subscriber want events of this kind? */
static inline bool capmem__event_wanted(const capmem_arena_t *arena, capmem_event_kind_t kind)
{
    return (arena->sub_mask & CAPMEM_EVENT_MASK(kind)) != 0 && !arena->tearing_down;
}

/* Queue an event with a printf message (nothing when nobody wants its kind). */
void capmem__emit(capmem_arena_t *arena, const capmem__ev_t *ev, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The same with the fields most kinds use. */
void capmem__emitf(capmem_arena_t *arena, capmem_event_kind_t kind, capmem_cap_t cap, uint64_t a,
                   uint64_t b, const char *fmt, ...) __attribute__((format(printf, 6, 7)));

/* capmem_subscribe() and capmem_unsubscribe() inside a call (the lock held, arguments checked). */
capmem_err_t capmem__subscribe(capmem_arena_t *arena, unsigned mask, capmem_event_fn fn, void *ctx,
                               capmem_subscription_t *out) __attribute__((warn_unused_result));
capmem_err_t capmem__unsubscribe(capmem_arena_t *arena, capmem_subscription_t sub);

/* Queue work to run after the call, in order, outside the lock. */
void capmem__defer(capmem_arena_t *arena, capmem__deferred_t *d);

#endif
