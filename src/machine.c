/* SPDX-License-Identifier: MIT */
/*
 * The per-arena machine: how a public call enters and leaves an arena, and
 * what happens after it has left.
 *
 * Every public call on an arena runs between capmem__enter() and
 * capmem__leave(). Entering refuses a call from a forked child (the arena's
 * records are shared with the parent, its host-side state is a stale copy)
 * and a call from a callback that runs in the middle of another call (an
 * allocation policy's hook); then it takes the arena lock and records the
 * call's name for error reports. Only a fault handler may call the library
 * while the lock is held: it resolves an access that is in progress, and
 * the access re-validates everything after it returns.
 *
 * Events raised during a call are queued in a fixed ring and delivered by
 * the thread that leaves the outermost call, after the lock is released,
 * in the order they were raised: like libuv's close callbacks, which run
 * after the loop iteration, a callback sees the state after the call and
 * may call anything, including closing the object the event is about. The
 * events a callback raises are delivered after it returns, by the same
 * loop. The destroy hooks of user object types are deferred the same way.
 *
 * The machine also owns the capability table with its type registry (each
 * layer registers how its objects are destroyed, named and described, so
 * deleting a capability here names no layer above), and the list of layers
 * set up on the arena with their state and checkers. The arena's own public
 * calls (creation, destruction, devices, addresses) are here too: they are
 * the backing memory (arena.c) behind the lock.
 */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <stdlib.h>

#include "machine_internal.h"

_Thread_local char capmem__thread_tag;

/* ---- fork ---------------------------------------------------------------- */

/*
 * Bumped in the child of every fork(), so an arena that remembers the value
 * it was created under knows, with one load, whether it is being used by a
 * forked child. getpid() would be a system call on every entry.
 */
_Atomic unsigned capmem__fork_generation;
static pthread_once_t fork_once = PTHREAD_ONCE_INIT;

static void on_fork_child(void)
{
    atomic_fetch_add_explicit(&capmem__fork_generation, 1, memory_order_relaxed);
}

static void register_fork_handler(void)
{
    pthread_atfork(NULL, NULL, on_fork_child);
}

static void machine_init(capmem_arena_t *arena)
{
    pthread_once(&fork_once, register_fork_handler);
    arena->fork_gen = atomic_load_explicit(&capmem__fork_generation, memory_order_relaxed);
    arena->creator = (long)getpid();
    pthread_mutex_init(&arena->lock, NULL);
    atomic_init(&arena->lock_owner, 0);
}

/* ---- arena tags ---------------------------------------------------------- */

/*
 * Every live arena of the process has a distinct tag, and the tag is part
 * of every handle the arena issues, so a handle of one arena is refused by
 * another. Tags are handed out round-robin, so a destroyed arena's tag is
 * reused as late as possible and an old handle of it is very likely
 * refused as "of no live arena" rather than aliasing a new one.
 */
static pthread_mutex_t tag_lock = PTHREAD_MUTEX_INITIALIZER;
static _Atomic uint64_t tag_live[(CAPMEM__CAP_TAG_MASK + 1) / 64];
static uint32_t tag_cursor;

static capmem_err_t tag_take(uint32_t *tag)
{
    capmem_err_t err = CAPMEM_E_OUT_OF_CAPS;
    pthread_mutex_lock(&tag_lock);
    for (uint32_t i = 0; i < CAPMEM__CAP_TAG_MASK; i++) {
        uint32_t t = (tag_cursor + i) % CAPMEM__CAP_TAG_MASK + 1; /* 1..MASK; 0 is never used */
        uint64_t bit = 1ull << (t % 64);
        if ((atomic_load(&tag_live[t / 64]) & bit) == 0) {
            atomic_fetch_or(&tag_live[t / 64], bit);
            tag_cursor = t;
            *tag = t;
            err = CAPMEM_OK;
            break;
        }
    }
    pthread_mutex_unlock(&tag_lock);
    if (err != CAPMEM_OK) {
        return capmem__fail(CAPMEM_E_OUT_OF_CAPS, "capmem_arena_create",
                            "%u arenas are alive in this process, the most handles can tell apart",
                            CAPMEM__CAP_TAG_MASK);
    }
    return CAPMEM_OK;
}

static void tag_give(uint32_t tag)
{
    atomic_fetch_and(&tag_live[tag / 64], ~(1ull << (tag % 64)));
}

bool capmem__tag_live(uint32_t tag)
{
    return tag <= CAPMEM__CAP_TAG_MASK && (atomic_load(&tag_live[tag / 64]) >> (tag % 64)) & 1u;
}

/* ---- entering and leaving ------------------------------------------------ */

static uintptr_t self_tag(void)
{
    return (uintptr_t)&capmem__thread_tag;
}

capmem_err_t capmem__enter_refused(const capmem_arena_t *arena, const char *func)
{
    if (capmem__forked(arena)) {
        capmem__fail(CAPMEM_E_UNSUPPORTED, func,
                     "arena was created by process %ld; a forked child cannot use it",
                     arena->creator);
        return CAPMEM_E_UNSUPPORTED;
    }
    /*
     * This thread is inside a call on the arena already, and not in a fault
     * handler that call runs: an allocation policy's hook (or another
     * callback that runs mid-call) called back. The call in progress has
     * decided things the nested one could invalidate.
     */
    return capmem__fail(CAPMEM_E_REENTRANT, func,
                        "called on this arena from a callback that runs in the middle of "
                        "another call on it (an allocation policy's hook); only fault "
                        "handlers and event callbacks may call in");
}

static void destroy_now(capmem_arena_t *arena);

unsigned capmem__reentry_allow(capmem_arena_t *arena)
{
    unsigned saved = arena->reentry_depth;
    arena->reentry_depth = arena->lock_depth;
    return saved;
}

void capmem__reentry_restore(capmem_arena_t *arena, unsigned saved)
{
    arena->reentry_depth = saved;
}

/* ---- events -------------------------------------------------------------- */

static const char *const kind_names[CAPMEM_EVENT_KIND_COUNT] = {
    [CAPMEM_EVENT_CAP_DELETE] = "delete",
    [CAPMEM_EVENT_REVOKE] = "revoke",
    [CAPMEM_EVENT_RETYPE] = "retype",
    [CAPMEM_EVENT_TRANSFER] = "transfer",
    [CAPMEM_EVENT_DONATE] = "donate",
    [CAPMEM_EVENT_UPGRADE] = "upgrade",
    [CAPMEM_EVENT_FAULT] = "fault",
    [CAPMEM_EVENT_SESSION_CLOSE] = "session close",
    [CAPMEM_EVENT_LOST] = "lost",
    [CAPMEM_EVENT_TRANSFER_CAPS] = "transfer caps",
    [CAPMEM_EVENT_DS_ALLOC] = "dataspace alloc",
    [CAPMEM_EVENT_DS_FREE] = "dataspace free",
    [CAPMEM_EVENT_ALIAS] = "alias",
    [CAPMEM_EVENT_ATTACH] = "attach",
    [CAPMEM_EVENT_DETACH] = "detach",
    [CAPMEM_EVENT_FAULT_RESOLVED] = "fault resolved",
    [CAPMEM_EVENT_DEVICE_ADD] = "device add",
    [CAPMEM_EVENT_DEVICE_REMOVE] = "device remove",
    [CAPMEM_EVENT_MINT] = "mint",
    [CAPMEM_EVENT_UNTYPED_NEW] = "untyped new",
    [CAPMEM_EVENT_SERVICE_NEW] = "service new",
    [CAPMEM_EVENT_SET_POLICY] = "set policy",
    [CAPMEM_EVENT_SET_EXPANDING] = "set expanding",
    [CAPMEM_EVENT_SET_FAULT_HANDLER] = "set fault handler",
    [CAPMEM_EVENT_USER_NEW] = "user new",
    [CAPMEM_EVENT_MANAGED_NEW] = "managed new",
    [CAPMEM_EVENT_KERNEL_HEAP] = "kernel heap",
    [CAPMEM_EVENT_BANK] = "bank",
    [CAPMEM_EVENT_BANK_ALLOC] = "bank alloc",
    [CAPMEM_EVENT_BANK_FREE] = "bank free",
};

const char *capmem_event_kind_name(capmem_event_kind_t kind)
{
    if ((unsigned)kind >= CAPMEM_EVENT_KIND_COUNT || kind_names[kind] == NULL) {
        return "unknown";
    }
    return kind_names[kind];
}

/* The union of the live subscribers' masks: an event of another kind is not queued. */
static void sub_mask_update(capmem_arena_t *arena)
{
    unsigned m = 0;
    for (unsigned i = 0; i < CAPMEM__SUBS; i++) {
        if (arena->subs[i].fn != NULL) {
            m |= arena->subs[i].mask;
        }
    }
    arena->sub_mask = m;
}

/* The ring is made with the first subscriber: an arena nobody listens to pays nothing. */
static capmem_err_t evq_ensure(capmem_arena_t *arena)
{
    if (arena->evq.ring == NULL) {
        arena->evq.ring = capmem__calloc(CAPMEM__EVENT_RING, sizeof(*arena->evq.ring));
        if (arena->evq.ring == NULL) {
            return capmem__fail(CAPMEM_E_HOST_NOMEM, NULL,
                                "no host memory for the event queue (%u events)",
                                CAPMEM__EVENT_RING);
        }
    }
    return CAPMEM_OK;
}

/*
 * Put a subscriber in place @p i. While events are being delivered, the
 * event in progress has number ev_seq - 1, so a subscriber added from a
 * callback starts with the next one; otherwise with every event queued.
 */
static void sub_set(capmem_arena_t *arena, unsigned i, capmem_event_fn fn, void *ctx, unsigned mask)
{
    capmem__sub_t *s = &arena->subs[i];
    if (fn == NULL) {
        if (s->fn != NULL) {
            s->gen++;
        }
        s->fn = NULL;
        s->ctx = NULL;
        s->mask = 0;
    } else {
        s->fn = fn;
        s->ctx = ctx;
        s->mask = mask;
        s->from = arena->ev_seq;
    }
    sub_mask_update(arena);
}

capmem_err_t capmem_arena_set_event_handler(capmem_arena_t *arena, capmem_event_fn fn, void *ctx)
{
    if (arena == NULL) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, __func__, "arena is NULL");
    }
    CAPMEM__ENTER_OR_RETURN(arena);
    capmem_err_t err = fn != NULL ? evq_ensure(arena) : CAPMEM_OK;
    if (err == CAPMEM_OK) {
        capmem__sub_t *s = &arena->subs[0];
        if (fn != NULL && s->fn != NULL) {
            /* A replacement takes the events queued for the callback it replaces. */
            s->fn = fn;
            s->ctx = ctx;
        } else {
            sub_set(arena, 0, fn, ctx, CAPMEM_EVENT_ALL);
            s->from = 0;
        }
    }
    CAPMEM__LEAVE(arena);
    return err;
}

/* A subscription's id: the arena's tag, the place's generation and the place; never 0. */
static capmem_subscription_t sub_id(const capmem_arena_t *arena, unsigned place)
{
    return ((uint64_t)arena->cspace.tag << 40) | ((uint64_t)arena->subs[place].gen << 8) | place;
}

capmem_err_t capmem__subscribe(capmem_arena_t *arena, unsigned mask, capmem_event_fn fn, void *ctx,
                               capmem_subscription_t *out)
{
    unsigned place = 0;
    for (unsigned i = 1; i < CAPMEM__SUBS && place == 0; i++) {
        if (arena->subs[i].fn == NULL) {
            place = i;
        }
    }
    if (place == 0) {
        return capmem__fail(CAPMEM_E_OUT_OF_CAPS, NULL, "%u subscriptions exist already",
                            CAPMEM_SUBSCRIBERS_MAX);
    }
    capmem_err_t err = evq_ensure(arena);
    if (err == CAPMEM_OK) {
        sub_set(arena, place, fn, ctx, mask);
        *out = sub_id(arena, place);
    }
    return err;
}

capmem_err_t capmem__unsubscribe(capmem_arena_t *arena, capmem_subscription_t sub)
{
    const unsigned place = (unsigned)(sub & 0xffu);
    if (place == 0 || place >= CAPMEM__SUBS || arena->subs[place].fn == NULL ||
        sub != sub_id(arena, place)) {
        return capmem__fail(CAPMEM_E_NOT_FOUND, NULL,
                            "subscription 0x%llx is not a live subscription of this arena",
                            (unsigned long long)sub);
    }
    sub_set(arena, place, NULL, NULL, 0);
    return CAPMEM_OK;
}

capmem_err_t capmem_subscribe(capmem_arena_t *arena, unsigned mask, capmem_event_fn fn, void *ctx,
                              capmem_subscription_t *out)
{
    if (arena == NULL || fn == NULL || out == NULL || mask == 0) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, __func__,
                            "arena, fn or out is NULL, or mask is 0");
    }
    CAPMEM__ENTER_OR_RETURN(arena);
    capmem_err_t err = capmem__subscribe(arena, mask, fn, ctx, out);
    CAPMEM__LEAVE(arena);
    return err;
}

capmem_err_t capmem_unsubscribe(capmem_arena_t *arena, capmem_subscription_t sub)
{
    if (arena == NULL) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, __func__, "arena is NULL");
    }
    CAPMEM__ENTER_OR_RETURN(arena);
    capmem_err_t err = capmem__unsubscribe(arena, sub);
    CAPMEM__LEAVE(arena);
    return err;
}

/* Queue one event of this thread with its formatted message (the caller checked it is wanted). */
static void vpush(capmem_arena_t *arena, const capmem__ev_t *ev, const char *fmt, va_list ap)
{
    capmem__evq_t *q = &arena->evq;
    arena->pending = true;
    if (q->n == CAPMEM__EVENT_RING || q->lost != 0) {
        /*
         * Full: count what is dropped from here on, and keep dropping until
         * the count has been delivered, so the LOST event stands exactly
         * where the gap is.
         */
        q->lost++;
        return;
    }
    capmem__event_rec_t *r = &q->ring[(q->head + q->n) % CAPMEM__EVENT_RING];
    q->n++;
    r->ev = *ev;
    r->owner = self_tag();
    vsnprintf(r->msg, sizeof(r->msg), fmt, ap);
}

void capmem__emit(capmem_arena_t *arena, const capmem__ev_t *ev, const char *fmt, ...)
{
    if (!capmem__event_wanted(arena, ev->kind)) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    vpush(arena, ev, fmt, ap);
    va_end(ap);
}

void capmem__emitf(capmem_arena_t *arena, capmem_event_kind_t kind, capmem_cap_t cap, uint64_t a,
                   uint64_t b, const char *fmt, ...)
{
    if (!capmem__event_wanted(arena, kind)) {
        return;
    }
    const capmem__ev_t ev = {.kind = kind, .cap = cap, .a = a, .b = b};
    va_list ap;
    va_start(ap, fmt);
    vpush(arena, &ev, fmt, ap);
    va_end(ap);
}

void capmem__defer(capmem_arena_t *arena, capmem__deferred_t *d)
{
    /* FIFO, so hooks run in the order their objects died. */
    d->next = NULL;
    d->owner = self_tag();
    if (arena->deferred == NULL) {
        arena->deferred = d;
    } else {
        arena->deferred_tail->next = d;
    }
    arena->deferred_tail = d;
    arena->pending = true;
}

static void run_deferred(capmem__deferred_t *list)
{
    while (list != NULL) {
        capmem__deferred_t *next = list->next;
        list->run(list);
        list = next;
    }
}

/*
 * The arenas this thread is delivering for, innermost first: a frame per
 * capmem__drain on the stack. A callback's own call on an arena that is in
 * the list leaves its items to the frame below, which delivers them after
 * the callback returns.
 */
typedef struct delivery {
    const capmem_arena_t *arena;
    struct delivery *below;
} delivery_t;

static _Thread_local delivery_t *deliveries;

static bool delivering(const capmem_arena_t *arena)
{
    for (const delivery_t *d = deliveries; d != NULL; d = d->below) {
        if (d->arena == arena) {
            return true;
        }
    }
    return false;
}

/* The oldest deferred item of this thread, unlinked; NULL if none. */
static capmem__deferred_t *take_deferred(capmem_arena_t *arena, uintptr_t self)
{
    capmem__deferred_t *prev = NULL;
    for (capmem__deferred_t *d = arena->deferred; d != NULL; prev = d, d = d->next) {
        if (d->owner == self) {
            if (prev == NULL) {
                arena->deferred = d->next;
            } else {
                prev->next = d->next;
            }
            if (arena->deferred_tail == d) {
                arena->deferred_tail = prev;
            }
            return d;
        }
    }
    return NULL;
}

/*
 * The oldest event of this thread, copied out and marked taken; false if
 * none. Taken records at the head are dropped, so the ring frees up as the
 * threads deliver, each its own, in any order.
 */
static bool take_event(capmem__evq_t *q, uintptr_t self, capmem__event_rec_t *out)
{
    bool found = false;
    for (uint32_t k = 0; k < q->n && !found; k++) {
        capmem__event_rec_t *r = &q->ring[(q->head + k) % CAPMEM__EVENT_RING];
        if (r->owner == self) {
            *out = *r;
            r->owner = 0;
            found = true;
        }
    }
    while (q->n != 0 && q->ring[q->head].owner == 0) {
        q->head = (q->head + 1) % CAPMEM__EVENT_RING;
        q->n--;
    }
    return found;
}

/*
 * Deliver what this thread's calls on the arena left behind: its deferred
 * work first, then its events, in the order they were raised, each callback
 * run without the lock. Every thread delivers its own, so a call's events
 * are delivered before the call returns to its caller, and a thread is
 * never kept busy with another thread's events. LOST reports go to the
 * first thread that delivers after the drop.
 */
void capmem__drain(capmem_arena_t *arena)
{
    if (delivering(arena)) {
        return; /* a callback's own call: the frame below delivers after it returns */
    }
    const uintptr_t self = self_tag();
    delivery_t frame = {.arena = arena, .below = deliveries};
    deliveries = &frame;
    for (;;) {
        capmem__lock(arena);
        if (arena->destroy_requested) {
            capmem__unlock(arena);
            deliveries = frame.below;
            destroy_now(arena);
            return;
        }
        capmem__deferred_t *d = take_deferred(arena, self);
        if (d != NULL) {
            capmem__unlock(arena);
            d->run(d);
            continue;
        }
        capmem__evq_t *q = &arena->evq;
        capmem__event_rec_t r;
        if (take_event(q, self, &r)) {
            /* found */
        } else if (q->lost != 0) {
            r = (capmem__event_rec_t){.ev = {.kind = CAPMEM_EVENT_LOST, .a = q->lost}};
            snprintf(r.msg, sizeof(r.msg), "%llu events were lost: the queue holds %u",
                     (unsigned long long)q->lost, CAPMEM__EVENT_RING);
            q->lost = 0;
        } else {
            /* Nothing of ours is left; other threads deliver theirs when they leave. */
            arena->pending = q->n != 0 || arena->deferred != NULL;
            capmem__unlock(arena);
            deliveries = frame.below;
            return;
        }
        const uint64_t seq = arena->ev_seq++;
        capmem__unlock(arena);
        const capmem_event_t ev = {.kind = r.ev.kind,
                                   .cap = r.ev.cap,
                                   .a = r.ev.a,
                                   .b = r.ev.b,
                                   .message = r.msg,
                                   .other = r.ev.other,
                                   .offset = r.ev.offset,
                                   .size = r.ev.size,
                                   .seq = seq,
                                   .payer = r.ev.payer};
        /*
         * Each subscriber is looked up under the lock just before its call,
         * so one removed by an earlier callback (of this event or another
         * thread) is not called; one added during the delivery starts with
         * the next event (from > seq).
         */
        for (unsigned i = 0; i < CAPMEM__SUBS; i++) {
            capmem__lock(arena);
            if (arena->destroy_requested) {
                capmem__unlock(arena);
                break; /* the top of the loop destroys the arena */
            }
            const capmem__sub_t s = arena->subs[i];
            capmem__unlock(arena);
            if (s.fn != NULL && s.from <= seq &&
                (ev.kind == CAPMEM_EVENT_LOST || (s.mask & CAPMEM_EVENT_MASK(ev.kind)) != 0)) {
                s.fn(arena, &ev, s.ctx);
            }
        }
    }
}

static bool destroy_deferred(capmem_arena_t *arena)
{
    const uintptr_t self = self_tag();
    if (atomic_load_explicit(&arena->lock_owner, memory_order_relaxed) == self ||
        delivering(arena)) {
        /*
         * Called from a fault handler, a policy hook or an event callback:
         * the call (or the delivery loop) in progress still uses the arena,
         * so the destroy happens when it is done.
         */
        arena->destroy_requested = true;
        arena->pending = true;
        return true;
    }
    return false;
}

/* ---- the type registry ------------------------------------------------------ */

void capmem__type_register(capmem_arena_t *arena, const capmem__type_ops_t *ops)
{
    CAPMEM_ASSERT((unsigned)ops->type < CAPMEM_OBJ_TYPE_COUNT && ops->destroy != NULL,
                  "a registered type has a number and a destroy hook");
    CAPMEM_ASSERT(arena->types[ops->type] == NULL || arena->types[ops->type] == ops,
                  "one layer owns each type");
    arena->types[ops->type] = ops;
}

const char *capmem__object_name(const capmem_arena_t *arena, capmem_obj_type_t type,
                                const void *obj)
{
    const capmem__type_ops_t *ops =
        (unsigned)type < CAPMEM_OBJ_TYPE_COUNT ? arena->types[type] : NULL;
    if (ops == NULL) {
        return capmem_obj_type_name(type);
    }
    return ops->name_of != NULL && obj != NULL ? ops->name_of(obj) : ops->name;
}

/* ---- layers ------------------------------------------------------------------- */

void *capmem__layer_state(const capmem_arena_t *arena, const capmem__layer_t *layer)
{
    for (unsigned i = 0; i < arena->nlayers; i++) {
        if (arena->layers[i].layer == layer) {
            return arena->layers[i].state;
        }
    }
    return NULL;
}

capmem_err_t capmem__layer_setup(capmem_arena_t *arena, const capmem__layer_t *layer, size_t size,
                                 void **state)
{
    void *st = capmem__layer_state(arena, layer);
    if (st == NULL) {
        if (arena->nlayers == CAPMEM__LAYERS_MAX) {
            return capmem__fail(CAPMEM_E_OUT_OF_CAPS, NULL, "%u layers set up already",
                                CAPMEM__LAYERS_MAX);
        }
        st = capmem__calloc(1, size);
        if (st == NULL) {
            return capmem__fail(CAPMEM_E_HOST_NOMEM, NULL, "no host memory for the %s layer",
                                layer->name);
        }
        arena->layers[arena->nlayers].layer = layer;
        arena->layers[arena->nlayers].state = st;
        arena->nlayers++;
    }
    *state = st;
    return CAPMEM_OK;
}

capmem_err_t capmem__layers_check(capmem_arena_t *arena, char *why, size_t len)
{
    capmem_err_t err = CAPMEM_OK;
    for (unsigned i = 0; i < arena->nlayers && err == CAPMEM_OK; i++) {
        const capmem__layer_t *l = arena->layers[i].layer;
        if (l->check != NULL) {
            err = l->check(arena, arena->layers[i].state, why, len);
        }
    }
    return err;
}

/* ---- deleting capabilities ------------------------------------------------------ */

void capmem__cap_delete_leaf(capmem_arena_t *arena, uint32_t idx)
{
    capmem__cspace_t *cs = &arena->cspace;
    capmem__slot_t *s = capmem__slot(cs, idx);
    const capmem_cap_t handle = capmem__slot_handle(cs, idx);
    void *obj = s->obj;
    const capmem_obj_type_t type = (capmem_obj_type_t)s->type;
    const bool original = (s->flags & CAPMEM__SLOT_ORIGINAL) != 0;
    if (s->quota != NULL) {
        CAPMEM_ASSERT(s->quota->used > 0, "every charged slot was counted");
        capmem__quota_replenish(s->quota, 1);
    }
    /* The teardown may free obj: take what the event needs first (only if it is raised). */
    const char *name = capmem__events_on(arena) ? capmem__object_name(arena, type, obj) : NULL;
    /* Free the slot before the teardown runs, so the teardown sees a consistent table. */
    capmem__cspace_release(cs, idx);
    capmem__stat_sub(&arena->stats.caps, 1);
    if (original && obj != NULL) {
        const capmem__type_ops_t *ops = arena->types[type];
        CAPMEM_ASSERT(ops != NULL, "objects exist only of registered types");
        ops->destroy(arena, obj, handle);
    }
    if (capmem__events_on(arena)) {
        capmem__emitf(arena, CAPMEM_EVENT_CAP_DELETE, handle, 0, 0, "delete %s capability", name);
    }
}

uint64_t capmem__cap_revoke_index(capmem_arena_t *arena, uint32_t root)
{
    capmem__cspace_t *cs = &arena->cspace;
    uint64_t n = 0;
    uint32_t c = root;
    /*
     * Post-order without a stack: descend to a leaf, delete it, continue
     * from its parent. Each edge is descended once, so the whole revoke is
     * O(descendants) however deep or wide the tree is.
     */
    for (;;) {
        while (cs->slots[c].first_child != 0) {
            c = cs->slots[c].first_child;
        }
        if (c == root) {
            break;
        }
        uint32_t p = cs->slots[c].parent;
        capmem__cap_delete_leaf(arena, c);
        n++;
        c = p;
    }
    return n;
}

/* Delete every capability, children before parents. */
static void teardown_caps(capmem_arena_t *arena)
{
    capmem__cspace_t *cs = &arena->cspace;
    for (uint32_t i = 1; i < cs->high; i++) {
        capmem__slot_t *s = capmem__slot(cs, i);
        if (s->type != CAPMEM_OBJ_NONE && s->parent == 0) {
            capmem__cap_revoke_index(arena, i);
            capmem__cap_delete_leaf(arena, i);
        }
    }
}

/* ---- the arena's public calls ------------------------------------------------------ */

capmem_err_t capmem_arena_create(const capmem_arena_attr_t *attr, capmem_arena_t **out)
{
    static const capmem_arena_attr_t defaults = CAPMEM_ARENA_ATTR_INIT;
    const capmem_arena_attr_t *at = attr != NULL ? attr : &defaults;
    if (out == NULL) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, __func__, "out is NULL");
    }
    capmem_err_t err = capmem__backing_validate(at);
    if (err != CAPMEM_OK) {
        return err;
    }
    if (at->cap_slots < 16 || at->cap_slots > CAPMEM_CAP_SLOTS_MAX) {
        return capmem__fail_range(__func__, 1, at->cap_slots, 16, CAPMEM_CAP_SLOTS_MAX,
                                  "capability slots");
    }
    capmem_arena_t *a = capmem__calloc(1, sizeof(*a));
    if (a == NULL) {
        return capmem__fail(CAPMEM_E_HOST_NOMEM, __func__, "no host memory for the arena");
    }
    uint32_t tag = 0;
    err = capmem__backing_init(&a->mem, at);
    if (err == CAPMEM_OK) {
        err = tag_take(&tag);
        if (err != CAPMEM_OK) {
            capmem__backing_fini(&a->mem);
        }
    }
    if (err == CAPMEM_OK) {
        err = capmem__cspace_init(&a->cspace, at->cap_slots, tag);
        if (err != CAPMEM_OK) {
            tag_give(tag);
            capmem__backing_fini(&a->mem);
        }
    }
    if (err != CAPMEM_OK) {
        capmem__free(a);
        return err;
    }
    machine_init(a);
    *out = a;
    return CAPMEM_OK;
}

void capmem_arena_destroy(capmem_arena_t *arena)
{
    if (arena == NULL) {
        return;
    }
    if (capmem__forked(arena)) {
        /*
         * A forked child: the records are the parent's (shared memory), and
         * tearing them down would destroy the parent's objects. The child's
         * copies of the mapping and host state go when it exits or execs.
         */
        return;
    }
    if (destroy_deferred(arena)) {
        return;
    }
    destroy_now(arena);
}

static void destroy_now(capmem_arena_t *arena)
{
    capmem__lock(arena);
    arena->tearing_down = true;
    teardown_caps(arena);
    for (unsigned i = arena->nlayers; i-- > 0;) {
        const capmem__layer_t *l = arena->layers[i].layer;
        if (l->fini != NULL) {
            l->fini(arena, arena->layers[i].state);
        }
        capmem__free(arena->layers[i].state);
    }
    const uint32_t tag = arena->cspace.tag;
    capmem__cspace_fini(&arena->cspace);
    capmem__deferred_t *dead = arena->deferred;
    arena->deferred = NULL;
    capmem__unlock(arena);
    pthread_mutex_destroy(&arena->lock);
    capmem__backing_fini(&arena->mem);
    capmem__free(arena->evq.ring);
    capmem__free(arena);
    tag_give(tag);
    /* Last, as after any call: the hooks may do anything but use this arena. */
    run_deferred(dead);
}

uint64_t capmem_arena_ram_size(const capmem_arena_t *arena)
{
    return arena ? arena->mem.ram_size : 0;
}

uint64_t capmem_arena_page_size(const capmem_arena_t *arena)
{
    return arena ? arena->mem.page_size : 0;
}

uint64_t capmem_arena_phys_base(const capmem_arena_t *arena)
{
    return arena ? arena->mem.phys_base : 0;
}

capmem_backing_t capmem_arena_backing(const capmem_arena_t *arena)
{
    return arena ? arena->mem.backing : (capmem_backing_t)0;
}

const char *capmem_backing_name(capmem_backing_t backing)
{
    switch (backing) {
    case CAPMEM_BACKING_MEMFD:
        return "memfd";
    case CAPMEM_BACKING_ANON_SHARED:
        return "anonymous shared";
    }
    return "unknown";
}

int capmem_arena_fd(const capmem_arena_t *arena)
{
    return arena ? arena->mem.fd : -1;
}

capmem_err_t capmem_arena_offset_to_phys(const capmem_arena_t *arena, uint64_t offset,
                                         uint64_t *phys)
{
    if (arena == NULL || phys == NULL) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, __func__, "arena or phys is NULL");
    }
    if (offset >= arena->mem.ram_size) {
        capmem__fail(CAPMEM_E_INVALID_ARGS, __func__, "offset 0x%llx is beyond RAM (0x%llx bytes)",
                     (unsigned long long)offset, (unsigned long long)arena->mem.ram_size);
        capmem__detail()->address = offset;
        return CAPMEM_E_INVALID_ARGS;
    }
    *phys = arena->mem.phys_base + offset;
    return CAPMEM_OK;
}

capmem_err_t capmem_arena_phys_to_offset(const capmem_arena_t *arena, uint64_t phys,
                                         uint64_t *offset)
{
    if (arena == NULL || offset == NULL) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, __func__, "arena or offset is NULL");
    }
    if (phys >= arena->mem.phys_base && phys - arena->mem.phys_base < arena->mem.ram_size) {
        *offset = phys - arena->mem.phys_base;
        return CAPMEM_OK;
    }
    capmem_arena_t *a = (capmem_arena_t *)arena;
    CAPMEM__ENTER_OR_RETURN(a);
    capmem_err_t err = CAPMEM_OK;
    if (!capmem__device_phys_to_offset(&a->mem, phys, offset)) {
        err = capmem__fail(CAPMEM_E_NOT_FOUND, NULL,
                           "physical address 0x%llx is neither RAM nor device memory",
                           (unsigned long long)phys);
        capmem__detail()->address = phys;
    }
    CAPMEM__LEAVE(a);
    return err;
}

capmem_err_t capmem_arena_device_add(capmem_arena_t *arena, uint64_t phys, uint64_t size,
                                     capmem_device_info_t *out)
{
    if (arena == NULL || out == NULL) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, __func__, "arena or out is NULL");
    }
    CAPMEM__ENTER_OR_RETURN(arena);
    const uint32_t next_id = arena->mem.next_device_id;
    capmem_device_info_t info = {0};
    capmem_err_t err = capmem__device_add(&arena->mem, phys, size, &info);
    if (err == CAPMEM_OK && arena->device_hooks != NULL) {
        capmem__device_t *d = capmem__device_at_backing(&arena->mem, info.backing_offset, size);
        err = arena->device_hooks->add(arena, d);
        if (err != CAPMEM_OK) {
            /* Refused (no per-frame records for it): the range was never there. */
            capmem_err_t undo = capmem__device_remove(&arena->mem, info.id);
            CAPMEM_ASSERT(undo == CAPMEM_OK, "a range just added has no pins");
            (void)undo;
            arena->mem.next_device_id = next_id;
        }
    }
    if (err == CAPMEM_OK) {
        *out = info;
    }
    if (err == CAPMEM_OK && capmem__event_wanted(arena, CAPMEM_EVENT_DEVICE_ADD)) {
        capmem__emit(arena,
                     &(capmem__ev_t){.kind = CAPMEM_EVENT_DEVICE_ADD,
                                     .a = out->id,
                                     .offset = out->phys,
                                     .size = out->size},
                     "add device memory %u: %llu bytes at physical 0x%llx", out->id,
                     (unsigned long long)out->size, (unsigned long long)out->phys);
    }
    CAPMEM__LEAVE(arena);
    return err;
}

capmem_err_t capmem_arena_device_remove(capmem_arena_t *arena, uint32_t id)
{
    if (arena == NULL) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, __func__, "arena is NULL");
    }
    CAPMEM__ENTER_OR_RETURN(arena);
    capmem__device_t gone = {0};
    for (int i = 0; i < CAPMEM_DEVICE_MAX; i++) {
        if (id != 0 && arena->mem.devices[i].id == id) {
            gone = arena->mem.devices[i];
        }
    }
    capmem_err_t err = capmem__device_remove(&arena->mem, id);
    if (err == CAPMEM_OK && arena->device_hooks != NULL) {
        arena->device_hooks->removed(arena, &gone);
    }
    if (err == CAPMEM_OK && capmem__event_wanted(arena, CAPMEM_EVENT_DEVICE_REMOVE)) {
        capmem__emit(arena,
                     &(capmem__ev_t){.kind = CAPMEM_EVENT_DEVICE_REMOVE,
                                     .a = id,
                                     .offset = gone.phys,
                                     .size = gone.size},
                     "remove device memory %u: %llu bytes at physical 0x%llx", id,
                     (unsigned long long)gone.size, (unsigned long long)gone.phys);
    }
    CAPMEM__LEAVE(arena);
    return err;
}

static int cmp_dev(const void *x, const void *y)
{
    const capmem_device_info_t *a = x;
    const capmem_device_info_t *b = y;
    return (a->phys > b->phys) - (a->phys < b->phys);
}

capmem_err_t capmem_arena_devices(const capmem_arena_t *arena, capmem_device_info_t *out,
                                  size_t max, size_t *count)
{
    if (arena == NULL || count == NULL || (out == NULL && max > 0)) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, __func__, "arena or count is NULL");
    }
    capmem_arena_t *a = (capmem_arena_t *)arena;
    capmem_device_info_t all[CAPMEM_DEVICE_MAX];
    size_t n = 0;
    CAPMEM__ENTER_OR_RETURN(a);
    for (int i = 0; i < CAPMEM_DEVICE_MAX; i++) {
        const capmem__device_t *d = &a->mem.devices[i];
        if (d->id != 0) {
            all[n++] = (capmem_device_info_t){d->id, d->phys, d->size, d->backing_offset};
        }
    }
    CAPMEM__LEAVE(a);
    qsort(all, n, sizeof(all[0]), cmp_dev);
    for (size_t i = 0; i < n && i < max; i++) {
        out[i] = all[i];
    }
    *count = n;
    return CAPMEM_OK;
}
