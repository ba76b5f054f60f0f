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
 */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "arena_internal.h"

_Thread_local char capmem__thread_tag;

/* ---- fork ---------------------------------------------------------------- */

/*
 * Bumped in the child of every fork(), so an arena that remembers the value
 * it was created under knows, with one load, whether it is being used by a
 * forked child. getpid() would be a system call on every entry.
 */
static _Atomic unsigned fork_generation;
static pthread_once_t fork_once = PTHREAD_ONCE_INIT;

static void on_fork_child(void)
{
    atomic_fetch_add_explicit(&fork_generation, 1, memory_order_relaxed);
}

static void register_fork_handler(void)
{
    pthread_atfork(NULL, NULL, on_fork_child);
}

void capmem__machine_init(capmem_arena_t *arena)
{
    pthread_once(&fork_once, register_fork_handler);
    arena->fork_gen = atomic_load_explicit(&fork_generation, memory_order_relaxed);
    arena->creator = (long)getpid();
    pthread_mutex_init(&arena->lock, NULL);
    atomic_init(&arena->lock_owner, 0);
}

bool capmem__forked(const capmem_arena_t *arena)
{
    return arena->fork_gen != atomic_load_explicit(&fork_generation, memory_order_relaxed);
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

capmem_err_t capmem__tag_take(uint32_t *tag)
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

void capmem__tag_give(uint32_t tag)
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

capmem_err_t capmem__enter(capmem_arena_t *arena, const char *func, const char **prev)
{
    if (capmem__forked(arena)) {
        capmem__fail(CAPMEM_E_UNSUPPORTED, func,
                     "arena was created by process %ld; a forked child cannot use it",
                     arena->creator);
        return CAPMEM_E_UNSUPPORTED;
    }
    if (atomic_load_explicit(&arena->lock_owner, memory_order_relaxed) == self_tag() &&
        arena->reentry_depth != arena->lock_depth) {
        /*
         * This thread is inside a call on the arena already, and not in a
         * fault handler that call runs: an allocation policy's hook (or
         * another callback that runs mid-call) called back. The call in
         * progress has decided things the nested one could invalidate.
         */
        return capmem__fail(CAPMEM_E_REENTRANT, func,
                            "called on this arena from a callback that runs in the middle of "
                            "another call on it (an allocation policy's hook); only fault "
                            "handlers and event callbacks may call in");
    }
    capmem__lock(arena);
    *prev = capmem__set_function(func);
    return CAPMEM_OK;
}

static void drain(capmem_arena_t *arena);

void capmem__leave(capmem_arena_t *arena, const char *prev)
{
    capmem__set_function(prev);
    if (arena->lock_depth > 1) {
        capmem__unlock(arena);
        return;
    }
    const bool pending = arena->evq.n != 0 || arena->evq.lost != 0 || arena->dead_users != NULL ||
                         arena->destroy_requested;
    capmem__unlock(arena);
    if (pending) {
        drain(arena);
    }
}

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

static const char *const kind_names[] = {
    [CAPMEM_EVENT_CAP_DELETE] = "delete", [CAPMEM_EVENT_REVOKE] = "revoke",
    [CAPMEM_EVENT_RETYPE] = "retype",     [CAPMEM_EVENT_TRANSFER] = "transfer",
    [CAPMEM_EVENT_DONATE] = "donate",     [CAPMEM_EVENT_UPGRADE] = "upgrade",
    [CAPMEM_EVENT_FAULT] = "fault",       [CAPMEM_EVENT_SESSION_CLOSE] = "session close",
    [CAPMEM_EVENT_LOST] = "lost",
};

const char *capmem_event_kind_name(capmem_event_kind_t kind)
{
    if ((unsigned)kind >= sizeof(kind_names) / sizeof(kind_names[0]) || kind_names[kind] == NULL) {
        return "unknown";
    }
    return kind_names[kind];
}

capmem_err_t capmem_arena_set_event_handler(capmem_arena_t *arena, capmem_event_fn fn, void *ctx)
{
    if (arena == NULL) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, __func__, "arena is NULL");
    }
    const char *prev;
    capmem_err_t err = capmem__enter(arena, __func__, &prev);
    if (err != CAPMEM_OK) {
        return err;
    }
    /* The ring is made with the first handler: an arena nobody listens to pays nothing. */
    if (fn != NULL && arena->evq.ring == NULL) {
        arena->evq.ring = capmem__calloc(CAPMEM__EVENT_RING, sizeof(*arena->evq.ring));
        if (arena->evq.ring == NULL) {
            err =
                capmem__fail(CAPMEM_E_HOST_NOMEM, NULL,
                             "no host memory for the event queue (%u events)", CAPMEM__EVENT_RING);
        }
    }
    if (err == CAPMEM_OK) {
        arena->on_event = fn;
        arena->event_ctx = ctx;
    }
    capmem__leave(arena, prev);
    return err;
}

void capmem__emitf(capmem_arena_t *arena, capmem_event_kind_t kind, capmem_cap_t cap, uint64_t a,
                   uint64_t b, const char *fmt, ...)
{
    capmem__evq_t *q = &arena->evq;
    if (!capmem__events_on(arena)) {
        return;
    }
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
    r->kind = kind;
    r->cap = cap;
    r->a = a;
    r->b = b;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->msg, sizeof(r->msg), fmt, ap);
    va_end(ap);
}

void capmem__defer_user_destroy(capmem_arena_t *arena, capmem__user_obj_t *u)
{
    /* FIFO, so hooks run in the order their objects died. */
    u->next = NULL;
    if (arena->dead_users == NULL) {
        arena->dead_users = u;
    } else {
        arena->dead_users_tail->next = u;
    }
    arena->dead_users_tail = u;
}

static void run_user_destroy(capmem__user_obj_t *u)
{
    if (u->utype->destroy != NULL) {
        u->utype->destroy(u->object, u->utype->ctx);
    }
    capmem__free(u);
}

void capmem__run_user_destroys(capmem__user_obj_t *list)
{
    while (list != NULL) {
        capmem__user_obj_t *next = list->next;
        run_user_destroy(list);
        list = next;
    }
}

/*
 * Deliver what the calls on this arena left behind. One thread delivers at
 * a time, so events keep their order; a thread that finds another one
 * delivering leaves its events to it. Each step takes one item under the
 * lock and runs its callback without it.
 */
static void drain(capmem_arena_t *arena)
{
    capmem__lock(arena);
    if (atomic_load_explicit(&arena->delivering, memory_order_relaxed) != 0) {
        /*
         * Another thread delivers, and will take our items too; or this
         * thread does, further down the stack, and a callback's own call
         * just left: the loop in that frame delivers after it returns.
         */
        capmem__unlock(arena);
        return;
    }
    atomic_store_explicit(&arena->delivering, self_tag(), memory_order_relaxed);
    capmem__unlock(arena);
    for (;;) {
        capmem__lock(arena);
        if (arena->destroy_requested) {
            atomic_store_explicit(&arena->delivering, 0, memory_order_relaxed);
            capmem__unlock(arena);
            capmem__arena_destroy_now(arena);
            return;
        }
        capmem__user_obj_t *dead = arena->dead_users;
        if (dead != NULL) {
            arena->dead_users = dead->next;
            capmem__unlock(arena);
            run_user_destroy(dead);
            continue;
        }
        capmem__evq_t *q = &arena->evq;
        capmem_event_fn fn = arena->on_event;
        void *ctx = arena->event_ctx;
        capmem__event_rec_t r;
        if (q->n != 0) {
            r = q->ring[q->head];
            q->head = (q->head + 1) % CAPMEM__EVENT_RING;
            q->n--;
        } else if (q->lost != 0) {
            r = (capmem__event_rec_t){.kind = CAPMEM_EVENT_LOST, .a = q->lost};
            snprintf(r.msg, sizeof(r.msg), "%llu events were lost: the queue holds %u",
                     (unsigned long long)q->lost, CAPMEM__EVENT_RING);
            q->lost = 0;
        } else {
            atomic_store_explicit(&arena->delivering, 0, memory_order_relaxed);
            capmem__unlock(arena);
            return;
        }
        capmem__unlock(arena);
        if (fn != NULL) {
            capmem_event_t ev = {
                .kind = r.kind, .cap = r.cap, .a = r.a, .b = r.b, .message = r.msg};
            fn(arena, &ev, ctx);
        }
    }
}

bool capmem__destroy_deferred(capmem_arena_t *arena)
{
    const uintptr_t self = self_tag();
    if (atomic_load_explicit(&arena->lock_owner, memory_order_relaxed) == self ||
        atomic_load_explicit(&arena->delivering, memory_order_relaxed) == self) {
        /*
         * Called from a fault handler, a policy hook or an event callback:
         * the call (or the delivery loop) in progress still uses the arena,
         * so the destroy happens when it is done.
         */
        arena->destroy_requested = true;
        return true;
    }
    return false;
}
