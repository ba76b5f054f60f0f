/* SPDX-License-Identifier: MIT */
/*
 * Real mode, the signal side (rm_real_internal.h): the process-wide
 * registry of views, the SIGSEGV handler, and the guard. docs/region_map.md
 * ("Real mode") explains it.
 *
 * The handler runs on the faulting thread, which may hold no lock, the
 * arena lock (the fault hit a buffer a library call was copying, or a pager
 * touched a view) or anything else. It finds the view without a lock: the
 * registry is a fixed table read under a sequence counter, its slots live
 * as long as the process, and only base, size, arena and gen are read
 * there. Then it takes the arena lock (recursive for this thread, as for a
 * pager's own calls), checks that the slot still belongs to the view it
 * found, and resolves the access in rm_real.c.
 *
 * The access type comes from x86-64's page-fault error code (REG_ERR:
 * bit 2 user mode, which every fault of ours has, bit 1 write, bit 4
 * instruction fetch). Without it (another architecture, or Valgrind, which
 * leaves it 0), the access is taken as a read, and a fault that repeats on
 * a page already mapped is promoted READ -> WRITE -> EXEC.
 *
 * A fault that is not the library's, or one that stays unresolved outside
 * a guard, goes to the disposition SIGSEGV had before the library
 * installed its handler.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <string.h>
#include <ucontext.h>

#include "rm_real_internal.h"

/* ---- the registry ------------------------------------------------------------------ */

static real_view_t registry[CAPMEM_RM_REAL_MAX_VIEWS];
/* Odd while a writer changes a slot's published fields. */
static _Atomic unsigned reg_seq;
/* Serializes the writers (map, unmap, close) of every arena. */
static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;

real_view_t *capmem__real_slot(unsigned i)
{
    return &registry[i];
}

unsigned capmem__real_slot_index(const real_view_t *v)
{
    return (unsigned)(v - registry);
}

real_view_t *capmem__real_slot_take(void)
{
    real_view_t *v = NULL;
    pthread_mutex_lock(&reg_lock);
    for (unsigned i = 0; i < CAPMEM_RM_REAL_MAX_VIEWS && v == NULL; i++) {
        if (!registry[i].taken) {
            v = &registry[i];
            v->taken = true;
        }
    }
    pthread_mutex_unlock(&reg_lock);
    return v;
}

static void write_begin(void)
{
    atomic_fetch_add_explicit(&reg_seq, 1, memory_order_relaxed);
    atomic_thread_fence(memory_order_release);
}

static void write_end(void)
{
    atomic_fetch_add_explicit(&reg_seq, 1, memory_order_release);
}

void capmem__real_slot_publish(real_view_t *v, uintptr_t base, uintptr_t size,
                               capmem_arena_t *arena)
{
    pthread_mutex_lock(&reg_lock);
    write_begin();
    atomic_store_explicit(&v->arena, arena, memory_order_relaxed);
    atomic_store_explicit(&v->base, base, memory_order_relaxed);
    atomic_store_explicit(&v->size, size, memory_order_relaxed);
    write_end();
    pthread_mutex_unlock(&reg_lock);
}

void capmem__real_slot_release(real_view_t *v)
{
    pthread_mutex_lock(&reg_lock);
    write_begin();
    atomic_store_explicit(&v->size, 0, memory_order_relaxed);
    atomic_store_explicit(&v->base, 0, memory_order_relaxed);
    atomic_fetch_add_explicit(&v->gen, 1, memory_order_relaxed);
    write_end();
    v->taken = false;
    pthread_mutex_unlock(&reg_lock);
}

/* The view whose range holds @p addr, its gen and arena as published; NULL if none. */
static real_view_t *registry_find(uintptr_t addr, uint32_t *gen, capmem_arena_t **arena)
{
    for (;;) {
        const unsigned s = atomic_load_explicit(&reg_seq, memory_order_acquire);
        if (s & 1u) {
            continue; /* a writer is in the middle: its thread is not this one */
        }
        real_view_t *found = NULL;
        for (unsigned i = 0; i < CAPMEM_RM_REAL_MAX_VIEWS && found == NULL; i++) {
            real_view_t *v = &registry[i];
            const uintptr_t size = atomic_load_explicit(&v->size, memory_order_relaxed);
            if (size != 0 && addr - atomic_load_explicit(&v->base, memory_order_relaxed) < size) {
                found = v;
                *gen = atomic_load_explicit(&v->gen, memory_order_relaxed);
                *arena = atomic_load_explicit(&v->arena, memory_order_relaxed);
            }
        }
        atomic_thread_fence(memory_order_acquire);
        if (atomic_load_explicit(&reg_seq, memory_order_relaxed) == s) {
            return found;
        }
    }
}

/* ---- the guard ------------------------------------------------------------------------ */

/* Guards nest this deep on one thread. */
#define GUARDS_MAX 16u

/*
 * A guard's frame. Thread-local rather than on the guard's stack: the
 * handler writes the outcome between sigsetjmp and siglongjmp, which an
 * automatic variable would not reliably keep.
 */
typedef struct guard {
    sigjmp_buf jb;
    capmem_arena_t *arena;
    unsigned depth;   /* the lock depth this thread held on the arena when the guard began */
    unsigned reentry; /* the arena's reentry depth then */
    const char *func; /* the public call this thread was in then */
    capmem_err_t err;
    capmem_error_info_t info;
} guard_t;

static _Thread_local guard_t guards[GUARDS_MAX];
static _Thread_local unsigned nguards;

static unsigned held_depth(const capmem_arena_t *arena)
{
    const uintptr_t self = (uintptr_t)&capmem__thread_tag;
    return atomic_load_explicit(&arena->lock_owner, memory_order_relaxed) == self
               ? arena->lock_depth
               : 0u;
}

/*
 * The guard's side of an unresolved fault: the frames between the guard
 * and the faulting instruction are gone. What they held on the guard's
 * arena is given back: fault handlers they were running are abandoned (no
 * other thread can be in one while this thread holds the lock), and the
 * lock is released down to the depth the guard began with.
 */
static void guard_unwind(const guard_t *g)
{
    capmem_arena_t *arena = g->arena;
    if (held_depth(arena) > g->depth) {
        if (g->depth == 0) {
            capmem__rm_abandon_handlers(arena);
        }
        arena->reentry_depth = g->reentry;
        while (held_depth(arena) > g->depth + 1) {
            capmem__unlock(arena);
        }
        /* The last level as a call leaves: deliver what the abandoned work queued. */
        capmem__leave(arena, g->func);
    }
    capmem__set_function(g->func);
}

capmem_err_t capmem_rm_real_guard(capmem_arena_t *arena, capmem_rm_real_fn fn, void *ctx)
{
    if (arena == NULL || fn == NULL) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, __func__, "arena or fn is NULL");
    }
    if (nguards == GUARDS_MAX) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, __func__, "guards nest %u deep at most",
                            GUARDS_MAX);
    }
    guard_t *g = &guards[nguards];
    g->arena = arena;
    g->depth = held_depth(arena);
    g->reentry = arena->reentry_depth;
    g->func = capmem__tls_function;
    g->err = CAPMEM_OK;
    const unsigned level = nguards++;
    if (sigsetjmp(g->jb, 1) == 0) {
        fn(ctx);
        nguards = level;
        return CAPMEM_OK;
    }
    nguards = level;
    g = &guards[level];
    guard_unwind(g);
    *capmem__detail() = g->info;
    return g->err;
}

/* ---- the handler ------------------------------------------------------------------------ */

static struct sigaction prev_action;
static _Atomic int installed;

/* The access a fault tried, and whether the hardware said so (@p exact). */
static capmem_rm_access_t access_of(const void *uctx, bool *exact)
{
    *exact = false;
#if defined(__x86_64__)
    const ucontext_t *uc = uctx;
    const unsigned long long err = (unsigned long long)uc->uc_mcontext.gregs[REG_ERR];
    if (err & 0x4u) {
        *exact = true;
        return (err & 0x10u) ? CAPMEM_RM_EXEC : (err & 0x2u) ? CAPMEM_RM_WRITE : CAPMEM_RM_READ;
    }
#else
    (void)uctx;
#endif
    return CAPMEM_RM_READ;
}

#if defined(__siginfo_t_defined) || defined(_SIGINFO_T_DECLARED)
int capmem_rm_real_handle_signal(int sig, siginfo_t *si, void *uctx)
#else
int capmem_rm_real_handle_signal(int sig, void *si_, void *uctx)
#endif
{
#if !(defined(__siginfo_t_defined) || defined(_SIGINFO_T_DECLARED))
    siginfo_t *si = si_;
#endif
    if (sig != SIGSEGV || si == NULL) {
        return 0;
    }
    const uintptr_t addr = (uintptr_t)si->si_addr;
    uint32_t gen = 0;
    capmem_arena_t *arena = NULL;
    real_view_t *v = registry_find(addr, &gen, &arena);
    if (v == NULL || capmem__forked(arena)) {
        return 0; /* not a view, or a forked child's inherited one: not ours */
    }
    const int saved_errno = errno;
    bool exact;
    const capmem_rm_access_t access = access_of(uctx, &exact);
    capmem__lock(arena);
    const char *prev = capmem__set_function("capmem_rm_real_handle_signal");
    capmem_err_t err = CAPMEM_OK;
    /*
     * Still that view? If it went away meanwhile, report the fault handled:
     * the access runs again and faults afresh, ours or not.
     */
    if (atomic_load_explicit(&v->gen, memory_order_relaxed) == gen && v->rm != NULL) {
        const uintptr_t base = atomic_load_explicit(&v->base, memory_order_relaxed);
        err = capmem__real_resolve(arena, v, addr - base, access, exact, true);
    }
    if (err == CAPMEM_OK) {
        capmem__leave(arena, prev);
        errno = saved_errno;
        return 1;
    }
    if (nguards != 0) {
        guard_t *g = &guards[nguards - 1];
        g->err = err;
        g->info = *capmem_last_error();
        if (g->arena == arena) {
            capmem__set_function(prev); /* the guard releases the lock */
        } else {
            capmem__leave(arena, prev);
        }
        siglongjmp(g->jb, 1);
    }
    capmem__leave(arena, prev);
    errno = saved_errno;
    return 0;
}

/* Hand a fault that is not ours to the disposition SIGSEGV had before. */
static void chain(int sig, siginfo_t *si, void *uctx)
{
    const struct sigaction p = prev_action;
    if (p.sa_flags & SA_SIGINFO) {
        p.sa_sigaction(sig, si, uctx);
        return;
    }
    if (p.sa_handler == SIG_DFL || p.sa_handler == SIG_IGN) {
        /*
         * The default: put it back and return. The access runs again, faults
         * again, and the kernel ends the process with SIGSEGV, as it would
         * have without the library (a synchronous SIGSEGV cannot be ignored).
         */
        signal(SIGSEGV, SIG_DFL);
        return;
    }
    p.sa_handler(sig);
}

static void on_segv(int sig, siginfo_t *si, void *uctx)
{
    if (!capmem_rm_real_handle_signal(sig, si, uctx)) {
        chain(sig, si, uctx);
    }
}

capmem_err_t capmem__real_install_handler(void)
{
    if (atomic_load(&installed)) {
        return CAPMEM_OK;
    }
    capmem_err_t err = CAPMEM_OK;
    pthread_mutex_lock(&reg_lock);
    if (!atomic_load(&installed)) {
        struct sigaction sa;
        memset(&sa, 0, sizeof(sa));
        sa.sa_sigaction = on_segv;
        /* SA_NODEFER: a pager may fault in its turn (another map's view, a buffer). */
        sa.sa_flags = SA_SIGINFO | SA_NODEFER | SA_RESTART;
        sigemptyset(&sa.sa_mask);
        if (sigaction(SIGSEGV, &sa, &prev_action) != 0) {
            const int e = errno;
            err = capmem__fail(CAPMEM_E_SYSTEM, NULL, "sigaction(SIGSEGV) failed: %s", strerror(e));
            capmem__detail()->sys_errno = e;
        } else {
            atomic_store(&installed, 1);
        }
    }
    pthread_mutex_unlock(&reg_lock);
    return err;
}

void capmem__real_reinstall(const struct sigaction *prev)
{
    pthread_mutex_lock(&reg_lock);
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_sigaction = on_segv;
    sa.sa_flags = SA_SIGINFO | SA_NODEFER | SA_RESTART;
    sigemptyset(&sa.sa_mask);
    prev_action = *prev;
    sigaction(SIGSEGV, &sa, NULL);
    atomic_store(&installed, 1);
    pthread_mutex_unlock(&reg_lock);
}
