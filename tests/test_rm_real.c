/* SPDX-License-Identifier: MIT */
/*
 * Real mode (capmem/rm_real.h): region maps mapped into the process, real
 * loads and stores, real page faults delivered to the same handlers as
 * simulated accesses. Every test ends with the checker, which also proves
 * that every mapped piece still shows what the model translates to.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <ucontext.h>
#include <unistd.h>

#include "rm_real_internal.h"
#include "support.h"

#ifdef CAPMEM_HAVE_VALGRIND
#include <valgrind/memcheck.h>
#else
#define VALGRIND_MAKE_MEM_DEFINED(p, n) ((void)(p), (void)(n))
#endif

#define PAGE 4096ull

#if defined(__SANITIZE_THREAD__)
#define UNDER_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define UNDER_TSAN 1
#endif
#endif
#ifndef UNDER_TSAN
#define UNDER_TSAN 0
#endif

typedef test_world_t fixture_t;

static fixture_t fx;

static int setup(void **state)
{
    test_world_open(&fx, 64ull << 20, 48ull << 20);
    *state = &fx;
    return 0;
}

static int teardown(void **state)
{
    capmem_rm_real_stats_t s;
    fixture_t *f = *state;
    if (f->arena != NULL) {
        assert_ok(capmem_rm_real_stats(f->arena, &s));
    }
    test_world_close(*state);
    return 0;
}

static uint64_t attach(fixture_t *f, capmem_cap_t rm, capmem_cap_t ds, uint64_t at, uint64_t size,
                       int writable, int exec)
{
    capmem_rm_attach_attr_t a = CAPMEM_RM_ATTACH_ATTR_INIT;
    a.at = at;
    a.size = size;
    a.writable = writable;
    a.executable = exec;
    uint64_t addr = 0;
    assert_ok(capmem_rm_attach(f->arena, rm, ds, &a, &addr));
    return addr;
}

static uint8_t *map_real(fixture_t *f, capmem_cap_t rm)
{
    void *base = NULL;
    assert_ok(capmem_rm_real_map(f->arena, rm, 0, &base));
    assert_non_null(base);
    return base;
}

static capmem_rm_real_stats_t real_stats(fixture_t *f)
{
    capmem_rm_real_stats_t s;
    assert_ok(capmem_rm_real_stats(f->arena, &s));
    return s;
}

/* The protection /proc/self/maps shows at @p p ("---p", "rw-s", ...), or "" if unmapped. */
static const char *maps_perms(const void *p)
{
    static char perms[8];
    perms[0] = '\0';
    FILE *fp = fopen("/proc/self/maps", "r");
    assert_non_null(fp);
    char line[512];
    while (fgets(line, sizeof(line), fp) != NULL) {
        unsigned long lo = 0;
        unsigned long hi = 0;
        char pr[8] = {0};
        if (sscanf(line, "%lx-%lx %7s", &lo, &hi, pr) == 3 && (uintptr_t)p >= lo &&
            (uintptr_t)p < hi) {
            snprintf(perms, sizeof(perms), "%s", pr);
            break;
        }
    }
    fclose(fp);
    return perms;
}

/*
 * The view at @p p is gone: nothing is mapped there, or something that is
 * neither a reservation of ours (---p) nor a piece of the arena (shared).
 * Once unmapped, the range is free for any mmap of the process: a
 * sanitizer's runtime or malloc may take it at once (seen under TSan).
 */
static bool view_gone(const void *p)
{
    const char *pr = maps_perms(p);
    return pr[0] == '\0' || (strcmp(pr, "---p") != 0 && pr[3] != 's');
}

/*
 * CMocka puts its own SIGSEGV handler in place around every test (and the
 * previous one back after it), so a test that uses views owns SIGSEGV the
 * documented way: its handler calls capmem_rm_real_handle_signal() first
 * and hands the rest to CMocka's, which reports a crash.
 */
static struct sigaction cmocka_action;

static void test_segv(int sig, siginfo_t *si, void *uctx)
{
    if (capmem_rm_real_handle_signal(sig, si, uctx)) {
        return;
    }
    if (cmocka_action.sa_flags & SA_SIGINFO) {
        cmocka_action.sa_sigaction(sig, si, uctx);
    } else if (cmocka_action.sa_handler != SIG_DFL && cmocka_action.sa_handler != SIG_IGN) {
        cmocka_action.sa_handler(sig);
    } else {
        signal(SIGSEGV, SIG_DFL);
    }
}

static void views_on(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_sigaction = test_segv;
    sa.sa_flags = SA_SIGINFO | SA_NODEFER;
    assert_int_equal(sigaction(SIGSEGV, &sa, &cmocka_action), 0);
}

/* ---- a guard around one access ----------------------------------------------------- */

typedef struct access_ctx {
    volatile uint8_t *p;
    uint8_t value;
    int write;
    uint8_t got;
} access_ctx_t;

static void do_access(void *c)
{
    access_ctx_t *a = c;
    if (a->write) {
        *a->p = a->value;
    } else {
        a->got = *a->p;
    }
}

static capmem_err_t guarded(capmem_arena_t *arena, volatile uint8_t *p, int write, uint8_t value,
                            uint8_t *got)
{
    access_ctx_t a = {.p = p, .value = value, .write = write};
    capmem_err_t err = capmem_rm_real_guard(arena, do_access, &a);
    if (got != NULL) {
        *got = a.got;
    }
    return err;
}

/* ---- pagers ------------------------------------------------------------------------- */

typedef struct pager {
    capmem_cap_t account;
    unsigned calls;
    capmem_rm_fault_t last;
    capmem_rm_state_t state; /* the map's state as the pager saw it */
    capmem_rm_access_t accesses[64];
    uint64_t addresses[64];
    int resolve; /* attach a fresh page (1), report resolved without doing anything (2), give up (0)
                  */
} pager_t;

static capmem_rm_fault_result_t demand_pager(capmem_arena_t *arena, const capmem_rm_fault_t *f,
                                             void *ctx)
{
    pager_t *pg = ctx;
    if (pg->calls < 64) {
        pg->accesses[pg->calls] = f->access;
        pg->addresses[pg->calls] = f->address;
    }
    pg->calls++;
    pg->last = *f;
    if (capmem_rm_state(arena, f->rm, &pg->state) != CAPMEM_OK) {
        return CAPMEM_RM_FAULT_UNRESOLVED;
    }
    if (pg->resolve == 2) {
        return CAPMEM_RM_FAULT_RESOLVED;
    }
    if (pg->resolve == 0) {
        return CAPMEM_RM_FAULT_UNRESOLVED;
    }
    capmem_cap_t ds;
    if (capmem_ram_alloc(arena, pg->account, PAGE, &ds) != CAPMEM_OK) {
        return CAPMEM_RM_FAULT_UNRESOLVED;
    }
    capmem_rm_attach_attr_t a = CAPMEM_RM_ATTACH_ATTR_INIT;
    a.at = f->address & ~(PAGE - 1);
    uint64_t at;
    return capmem_rm_attach(arena, f->rm, ds, &a, &at) == CAPMEM_OK ? CAPMEM_RM_FAULT_RESOLVED
                                                                    : CAPMEM_RM_FAULT_UNRESOLVED;
}

/* ---- an application's own handler ------------------------------------------------- */

static volatile sig_atomic_t app_faults;
static void *app_page;

static void app_handler(int sig, siginfo_t *si, void *uctx)
{
    (void)sig;
    (void)uctx;
    if (si->si_addr == app_page) {
        app_faults++;
        mprotect(app_page, PAGE, PROT_READ | PROT_WRITE);
    }
}

static void app_plain_handler(int sig)
{
    (void)sig;
    app_faults++;
    mprotect(app_page, PAGE, PROT_READ | PROT_WRITE);
}

static void app_handler_first(int sig, siginfo_t *si, void *uctx)
{
    if (capmem_rm_real_handle_signal(sig, si, uctx)) {
        return;
    }
    app_handler(sig, si, uctx);
}

/*
 * Runs first, before any map is mapped in this process: an application's
 * handler installed before the library's still gets the faults outside
 * every view (the library keeps the previous disposition and chains to it),
 * and one installed after it, which calls capmem_rm_real_handle_signal()
 * first, gets them too while the views keep working.
 */
static void test_rm_real_app_handler_still_gets_faults_outside_the_views(void **state)
{
    fixture_t *f = *state;
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_sigaction = app_handler;
    sa.sa_flags = SA_SIGINFO | SA_NODEFER;
    assert_int_equal(sigaction(SIGSEGV, &sa, NULL), 0);
    app_page = mmap(NULL, PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(app_page != MAP_FAILED);
    /* As the library does for its views: memcheck lets the access through to the fault. */
    (void)VALGRIND_MAKE_MEM_DEFINED(app_page, PAGE);

    capmem_cap_t rm = test_rm_new(f, 16 * PAGE, "app");
    attach(f, rm, test_ds_new(f, PAGE, 7), 0, 0, 1, 0);
    volatile uint8_t *v = map_real(f, rm);
    assert_int_equal(v[5], 7);
    *(volatile uint8_t *)app_page = 1; /* not a view: the application's handler */
    assert_int_equal(app_faults, 1);
    CHECK_INVARIANTS(f->arena);

    /* Now the application takes SIGSEGV over and calls the library first. */
    mprotect(app_page, PAGE, PROT_NONE);
    (void)VALGRIND_MAKE_MEM_DEFINED(app_page, PAGE);
    sa.sa_sigaction = app_handler_first;
    struct sigaction lib;
    assert_int_equal(sigaction(SIGSEGV, &sa, &lib), 0);
    attach(f, rm, test_ds_new(f, PAGE, 9), 4 * PAGE, 0, 1, 0);
    assert_int_equal(v[4 * PAGE], 9);
    *(volatile uint8_t *)app_page = 2;
    assert_int_equal(app_faults, 2);
    assert_int_equal(capmem_rm_real_handle_signal(SIGBUS, NULL, NULL), 0);
    siginfo_t si;
    memset(&si, 0, sizeof(si));
    si.si_addr = app_page;
    assert_int_equal(capmem_rm_real_handle_signal(SIGSEGV, &si, NULL), 0);
    /* The library's handler before a plain (not SA_SIGINFO) one: chained to it too. */
    mprotect(app_page, PAGE, PROT_NONE);
    (void)VALGRIND_MAKE_MEM_DEFINED(app_page, PAGE);
    struct sigaction plain;
    memset(&plain, 0, sizeof(plain));
    plain.sa_handler = app_plain_handler;
    capmem__real_reinstall(&plain);
    *(volatile uint8_t *)app_page = 3;
    assert_int_equal(app_faults, 3);
    assert_int_equal(v[4 * PAGE], 9);
    /* The library's handler back, for the other tests. */
    assert_int_equal(sigaction(SIGSEGV, &lib, NULL), 0);
    munmap(app_page, PAGE);
    CHECK_INVARIANTS(f->arena);
}

/* ---- map and unmap -------------------------------------------------------------------- */

static void test_rm_real_map_reserves_and_unmap_releases(void **state)
{
    views_on();
    fixture_t *f = *state;
    capmem_cap_t rm = test_rm_new(f, 64 * PAGE, "reserved");
    void *base = NULL;
    assert_ok(capmem_rm_real_map(f->arena, rm, 0, &base));
    assert_non_null(base);
    assert_string_equal(maps_perms(base), "---p");
    assert_string_equal(maps_perms((uint8_t *)base + 63 * PAGE), "---p");
    capmem_rm_info_t info;
    assert_ok(capmem_rm_info(f->arena, rm, &info));
    assert_ptr_equal(info.real_base, base);
    capmem_rm_real_stats_t s = real_stats(f);
    assert_int_equal(s.views, 1);
    assert_int_equal(s.budget, CAPMEM_RM_REAL_DEFAULT_BUDGET);
    CHECK_INVARIANTS(f->arena);

    /* A second map of the same map is refused, and nothing changes. */
    void *again = (void *)0x1;
    assert_err(capmem_rm_real_map(f->arena, rm, 0, &again), CAPMEM_E_INVALID_ARGS);
    assert_ptr_equal(again, (void *)0x1);
    assert_int_equal(real_stats(f).views, 1);

    /* Bad arguments. */
    assert_err(capmem_rm_real_map(NULL, rm, 0, &again), CAPMEM_E_INVALID_ARGS);
    assert_err(capmem_rm_real_map(f->arena, rm, 0, NULL), CAPMEM_E_INVALID_ARGS);
    assert_err(capmem_rm_real_map(f->arena, rm, 0x10, &again), CAPMEM_E_INVALID_ARGS);
    assert_err(capmem_rm_real_map(f->arena, rm ^ 0x100000, 0, &again), CAPMEM_E_INVALID_CAP);
    assert_err(capmem_rm_real_map(f->arena, f->client, 0, &again), CAPMEM_E_WRONG_TYPE);
    capmem_cap_t ro = CAPMEM_CAP_NULL;
    capmem_cap_t rm2 = test_rm_new(f, 4 * PAGE, "minted");
    assert_ok(capmem_cap_mint(f->arena, rm2, CAPMEM_RIGHT_READ, &ro));
    assert_err(capmem_rm_real_map(f->arena, ro, 0, &again), CAPMEM_E_DENIED);
    assert_ptr_equal(again, (void *)0x1);
    assert_int_equal(real_stats(f).views, 1);
    /* READ is enough for a read-only view. */
    void *rbase = NULL;
    assert_ok(capmem_rm_real_map(f->arena, ro, CAPMEM_RM_REAL_READONLY, &rbase));
    assert_int_equal(real_stats(f).views, 2);
    assert_ok(capmem_rm_real_unmap(f->arena, ro));
    CHECK_INVARIANTS(f->arena);

    assert_ok(capmem_rm_real_unmap(f->arena, rm));
    assert_true(view_gone(base));
    assert_ok(capmem_rm_info(f->arena, rm, &info));
    assert_null(info.real_base);
    assert_err(capmem_rm_real_unmap(f->arena, rm), CAPMEM_E_INVALID_ARGS);
    assert_err(capmem_rm_real_unmap(NULL, rm), CAPMEM_E_INVALID_ARGS);
    assert_err(capmem_rm_real_unmap(f->arena, rm ^ 0x100000), CAPMEM_E_INVALID_CAP);
    assert_int_equal(real_stats(f).views, 0);
    CHECK_INVARIANTS(f->arena);

    /* Closing a mapped map unmaps it; so does destroying the arena (teardown). */
    assert_ok(capmem_rm_real_map(f->arena, rm, 0, &base));
    assert_ok(capmem_rm_close(f->arena, rm));
    assert_true(view_gone(base));
    assert_int_equal(real_stats(f).views, 0);
    assert_ok(capmem_rm_real_map(f->arena, rm2, 0, &base));
    CHECK_INVARIANTS(f->arena);
    capmem_arena_destroy(f->arena);
    f->arena = NULL;
    assert_true(view_gone(base));
}

static void test_rm_real_map_refuses_arenas_it_cannot_map(void **state)
{
    views_on();
    (void)state;
    /* The anonymous fallback has no memfd to map. */
    capmem_arena_attr_t at = CAPMEM_ARENA_ATTR_INIT;
    at.ram_size = 4ull << 20;
    at.flags = CAPMEM_ARENA_FORCE_ANON;
    capmem_arena_t *a = NULL;
    capmem_cap_t root;
    capmem_cap_t rm;
    assert_ok(capmem_arena_create(&at, &a));
    assert_ok(capmem_ram_boot(a, NULL, &root));
    capmem_rm_open_attr_t oa = CAPMEM_RM_OPEN_ATTR_INIT;
    oa.size = 16 * PAGE;
    assert_ok(capmem_rm_open(a, root, &oa, &rm));
    void *base = (void *)0x1;
    assert_err(capmem_rm_real_map(a, rm, 0, &base), CAPMEM_E_UNSUPPORTED);
    assert_non_null(strstr(capmem_last_error()->message, "memfd"));
    assert_ptr_equal(base, (void *)0x1);
    CHECK_INVARIANTS(a);
    capmem_arena_destroy(a);

    /* Pages smaller than the host's cannot be mapped one by one. */
    at.flags = 0;
    at.page_size = 1024;
    assert_ok(capmem_arena_create(&at, &a));
    assert_ok(capmem_ram_boot(a, NULL, &root));
    oa.size = 16 * 1024;
    assert_ok(capmem_rm_open(a, root, &oa, &rm));
    assert_err(capmem_rm_real_map(a, rm, 0, &base), CAPMEM_E_UNSUPPORTED);
    assert_non_null(strstr(capmem_last_error()->message, "smaller than the host"));
    assert_ptr_equal(base, (void *)0x1);
    CHECK_INVARIANTS(a);
    capmem_arena_destroy(a);
}

static void test_rm_real_full_registry_is_refused(void **state)
{
    views_on();
    fixture_t *f = *state;
    capmem_cap_t rms[CAPMEM_RM_REAL_MAX_VIEWS + 1];
    void *base;
    for (unsigned i = 0; i <= CAPMEM_RM_REAL_MAX_VIEWS; i++) {
        capmem_rm_open_attr_t at = CAPMEM_RM_OPEN_ATTR_INIT;
        at.size = 4 * PAGE;
        at.donation = 2 * PAGE;
        assert_ok(capmem_rm_open(f->arena, f->client, &at, &rms[i]));
    }
    for (unsigned i = 0; i < CAPMEM_RM_REAL_MAX_VIEWS; i++) {
        assert_ok(capmem_rm_real_map(f->arena, rms[i], 0, &base));
    }
    base = (void *)0x1;
    assert_err(capmem_rm_real_map(f->arena, rms[CAPMEM_RM_REAL_MAX_VIEWS], 0, &base),
               CAPMEM_E_OUT_OF_CAPS);
    assert_ptr_equal(base, (void *)0x1);
    assert_int_equal(real_stats(f).views, CAPMEM_RM_REAL_MAX_VIEWS);
    CHECK_INVARIANTS(f->arena);
    /* A slot frees up with an unmap. */
    assert_ok(capmem_rm_real_unmap(f->arena, rms[0]));
    assert_ok(capmem_rm_real_map(f->arena, rms[CAPMEM_RM_REAL_MAX_VIEWS], 0, &base));
    CHECK_INVARIANTS(f->arena);
}

/* ---- coherence -------------------------------------------------------------------------- */

static void test_rm_real_pointer_rm_read_ds_read_and_aliases_agree(void **state)
{
    views_on();
    fixture_t *f = *state;
    capmem_cap_t rm = test_rm_new(f, 64 * PAGE, "coherent");
    capmem_cap_t ds = test_ds_new(f, 8 * PAGE, 0);
    capmem_alias_attr_t aa = CAPMEM_ALIAS_ATTR_INIT;
    aa.offset = 2 * PAGE;
    aa.size = 2 * PAGE;
    capmem_cap_t a1;
    capmem_cap_t a2;
    assert_ok(capmem_ds_alias(f->arena, f->client, ds, &aa, &a1));
    aa.writable = 0;
    aa.lifetime = CAPMEM_ALIAS_FIRST_CLASS;
    assert_ok(capmem_ds_alias(f->arena, f->client, ds, &aa, &a2));
    attach(f, rm, ds, 0, 0, 1, 0);
    attach(f, rm, a1, 16 * PAGE, 0, 1, 0);
    attach(f, rm, a2, 32 * PAGE, 0, 0, 0);
    uint8_t *v = map_real(f, rm);

    /* A store through the pointer is the arena's byte: every path sees it at once. */
    memcpy(v + 2 * PAGE + 100, "hello", 6);
    char buf[6];
    assert_ok(capmem_rm_read(f->arena, rm, 2 * PAGE + 100, buf, 6));
    assert_string_equal(buf, "hello");
    assert_ok(capmem_ds_read(f->arena, ds, 2 * PAGE + 100, buf, 6));
    assert_string_equal(buf, "hello");
    assert_ok(capmem_ds_read(f->arena, a1, 100, buf, 6));
    assert_string_equal(buf, "hello");
    assert_ok(capmem_ds_read(f->arena, a2, 100, buf, 6));
    assert_string_equal(buf, "hello");
    assert_memory_equal(v + 16 * PAGE + 100, "hello", 6);
    assert_memory_equal(v + 32 * PAGE + 100, "hello", 6);
    CHECK_INVARIANTS(f->arena);

    /* And the other way: library writes show through the pointers. */
    assert_ok(capmem_ds_write(f->arena, a1, PAGE, "world", 6));
    assert_string_equal((char *)v + 3 * PAGE, "world");
    assert_string_equal((char *)v + 17 * PAGE, "world");
    assert_string_equal((char *)v + 33 * PAGE, "world");
    assert_ok(capmem_rm_write(f->arena, rm, 16 * PAGE + 8, "alias", 6));
    assert_string_equal((char *)v + 2 * PAGE + 8, "alias");
    assert_string_equal((char *)v + 32 * PAGE + 8, "alias");
    /* One fault per attached piece, not per page. */
    for (uint64_t i = 0; i < 8 * PAGE; i += 64) {
        (void)*(volatile uint8_t *)(v + i);
    }
    capmem_rm_real_stats_t s = real_stats(f);
    assert_int_equal(s.pieces, 3);
    assert_int_equal(s.mapped, 3);
    CHECK_INVARIANTS(f->arena);
}

/* ---- the pager ---------------------------------------------------------------------------- */

static void count_event(capmem_arena_t *arena, const capmem_event_t *ev, void *ctx)
{
    (void)arena;
    unsigned *n = ctx;
    n[ev->kind == CAPMEM_EVENT_FAULT ? 0 : 1]++;
}

static void test_rm_real_pager_runs_once_per_page_with_address_access_and_state(void **state)
{
    views_on();
    fixture_t *f = *state;
    capmem_cap_t rm = test_rm_new(f, 64 * PAGE, "paged");
    pager_t pg = {.account = f->client, .resolve = 1};
    assert_ok(capmem_rm_set_fault_handler(f->arena, rm, demand_pager, &pg));
    /* The same events as simulated faults, delivered when the handler leaves the arena. */
    unsigned events[2] = {0, 0};
    capmem_subscription_t sub;
    assert_ok(capmem_subscribe(f->arena,
                               CAPMEM_EVENT_MASK(CAPMEM_EVENT_FAULT) |
                                   CAPMEM_EVENT_MASK(CAPMEM_EVENT_FAULT_RESOLVED),
                               count_event, events, &sub));
    uint8_t *v = map_real(f, rm);
    for (unsigned i = 0; i < 16; i++) {
        v[i * PAGE + 123] = (uint8_t)(i + 1);
        v[i * PAGE + 124] = (uint8_t)(i + 2); /* same page: no second fault */
    }
    assert_int_equal(pg.calls, 16);
    assert_int_equal(events[0], 16);
    assert_int_equal(events[1], 16);
    assert_ok(capmem_unsubscribe(f->arena, sub));
    for (unsigned i = 0; i < 16; i++) {
        assert_int_equal(pg.addresses[i], i * PAGE + 123);
        assert_int_equal(pg.accesses[i], CAPMEM_RM_WRITE);
    }
    assert_true(pg.state.faulted);
    assert_true(pg.state.pending);
    assert_int_equal(pg.state.address, 15 * PAGE + 123);
    capmem_rm_state_t st;
    assert_ok(capmem_rm_state(f->arena, rm, &st));
    assert_false(st.pending);
    assert_false(st.unresolved);
    assert_int_equal(st.faults, 16);
    for (unsigned i = 0; i < 16; i++) {
        uint8_t b;
        assert_ok(capmem_rm_read(f->arena, rm, i * PAGE + 123, &b, 1));
        assert_int_equal(b, i + 1);
    }
    /* A load of a fresh page delivers READ. */
    assert_int_equal(v[40 * PAGE], 0);
    assert_int_equal(pg.calls, 17);
    assert_int_equal(pg.last.access, CAPMEM_RM_READ);
    assert_int_equal(pg.last.address, 40 * PAGE);
    capmem_stats_t cs = {.size = sizeof(cs)};
    assert_ok(capmem_stats(f->arena, &cs));
    assert_true(cs.faults_resolved >= 17);
    CHECK_INVARIANTS(f->arena);
}

static void test_rm_real_unresolved_fault_under_a_guard_returns_the_error(void **state)
{
    views_on();
    fixture_t *f = *state;
    capmem_cap_t rm = test_rm_new(f, 16 * PAGE, "guarded");
    uint8_t *v = map_real(f, rm);
    uint8_t got = 0;
    /* No handler. */
    assert_err(guarded(f->arena, v + 3 * PAGE + 5, 0, 0, &got), CAPMEM_E_UNRESOLVED_FAULT);
    assert_int_equal(capmem_last_error()->address, 3 * PAGE + 5);
    /* A handler that gives up. */
    pager_t pg = {.account = f->client, .resolve = 0};
    assert_ok(capmem_rm_set_fault_handler(f->arena, rm, demand_pager, &pg));
    assert_err(guarded(f->arena, v + 7, 1, 1, NULL), CAPMEM_E_UNRESOLVED_FAULT);
    assert_int_equal(pg.calls, 1);
    capmem_rm_state_t st;
    assert_ok(capmem_rm_state(f->arena, rm, &st));
    assert_true(st.unresolved);
    /* A handler that claims success without doing anything: FAULT_LOOP. */
    pg.resolve = 2;
    assert_err(guarded(f->arena, v + 9, 0, 0, &got), CAPMEM_E_FAULT_LOOP);
    assert_int_equal(capmem_last_error()->address, 9);
    /* After all that the arena is usable and consistent. */
    pg.resolve = 1;
    assert_ok(guarded(f->arena, v + 9, 1, 42, NULL));
    assert_int_equal(v[9], 42);
    assert_err(capmem_rm_real_guard(NULL, do_access, NULL), CAPMEM_E_INVALID_ARGS);
    assert_err(capmem_rm_real_guard(f->arena, NULL, NULL), CAPMEM_E_INVALID_ARGS);
    CHECK_INVARIANTS(f->arena);
}

/* A copy-on-write pager: a store to the read-only attachment gets a private writable copy. */
static capmem_rm_fault_result_t cow_pager(capmem_arena_t *arena, const capmem_rm_fault_t *f,
                                          void *ctx)
{
    pager_t *pg = ctx;
    pg->calls++;
    pg->last = *f;
    if (f->access != CAPMEM_RM_WRITE) {
        return CAPMEM_RM_FAULT_UNRESOLVED;
    }
    const uint64_t at = f->address & ~(PAGE - 1);
    uint8_t page[PAGE];
    capmem_cap_t copy;
    capmem_rm_attach_attr_t a = CAPMEM_RM_ATTACH_ATTR_INIT;
    a.at = at;
    uint64_t out;
    if (capmem_rm_read(arena, f->rm, at, page, PAGE) != CAPMEM_OK ||
        capmem_ram_alloc(arena, pg->account, PAGE, &copy) != CAPMEM_OK ||
        capmem_ds_write(arena, copy, 0, page, PAGE) != CAPMEM_OK ||
        capmem_rm_detach(arena, f->rm, at) != CAPMEM_OK ||
        capmem_rm_attach(arena, f->rm, copy, &a, &out) != CAPMEM_OK) {
        return CAPMEM_RM_FAULT_UNRESOLVED;
    }
    return CAPMEM_RM_FAULT_RESOLVED;
}

static void test_rm_real_store_to_read_only_alias_delivers_write(void **state)
{
    views_on();
    fixture_t *f = *state;
    capmem_cap_t rm = test_rm_new(f, 16 * PAGE, "rom");
    capmem_cap_t ds = test_ds_new(f, PAGE, 0x5a);
    capmem_alias_attr_t aa = CAPMEM_ALIAS_ATTR_INIT;
    aa.writable = 0;
    capmem_cap_t rom;
    assert_ok(capmem_ds_alias(f->arena, f->client, ds, &aa, &rom));
    attach(f, rm, rom, 0, 0, 0, 0);
    pager_t pg = {.account = f->client, .resolve = 0};
    assert_ok(capmem_rm_set_fault_handler(f->arena, rm, demand_pager, &pg));
    uint8_t *v = map_real(f, rm);
    assert_int_equal(v[10], 0x5a); /* loads are fine */
    assert_int_equal(pg.calls, 0);
    assert_string_equal(maps_perms(v), "r--s");
    assert_err(guarded(f->arena, v + 10, 1, 1, NULL), CAPMEM_E_UNRESOLVED_FAULT);
    assert_int_equal(pg.calls, 1);
    assert_int_equal(pg.last.access, CAPMEM_RM_WRITE);
    assert_int_equal(pg.last.address, 10);
    uint8_t b;
    assert_ok(capmem_ds_read(f->arena, ds, 10, &b, 1));
    assert_int_equal(b, 0x5a); /* no byte reached the ROM */
    CHECK_INVARIANTS(f->arena);

    /* A copy-on-write pager resolves it: the store lands in the copy, the ROM keeps its byte. */
    pager_t cow = {.account = f->client};
    assert_ok(capmem_rm_set_fault_handler(f->arena, rm, cow_pager, &cow));
    v[10] = 0x77;
    assert_int_equal(cow.last.access, CAPMEM_RM_WRITE);
    assert_int_equal(v[10], 0x77);
    assert_int_equal(v[11], 0x5a);
    assert_ok(capmem_ds_read(f->arena, ds, 10, &b, 1));
    assert_int_equal(b, 0x5a);
    assert_ok(capmem_rm_read(f->arena, rm, 10, &b, 1));
    assert_int_equal(b, 0x77);
    assert_string_equal(maps_perms(v), "rw-s");
    CHECK_INVARIANTS(f->arena);

    /* A read-only view refuses stores even where the attachment is writable. */
    capmem_cap_t rm2 = test_rm_new(f, 4 * PAGE, "ro view");
    attach(f, rm2, ds, 0, 0, 1, 0);
    void *rb;
    assert_ok(capmem_rm_real_map(f->arena, rm2, CAPMEM_RM_REAL_READONLY, &rb));
    assert_int_equal(((uint8_t *)rb)[3], 0x5a);
    assert_err(guarded(f->arena, (uint8_t *)rb + 3, 1, 1, NULL), CAPMEM_E_DENIED);
    assert_err(capmem_rm_real_prefault(f->arena, rm2, 0, PAGE, CAPMEM_RM_WRITE), CAPMEM_E_DENIED);
    CHECK_INVARIANTS(f->arena);
}

#if defined(__x86_64__)
typedef struct call {
    int (*fn)(void);
    int ret;
} call_t;

static void call_it(void *c)
{
    call_t *call = c;
    call->ret = call->fn();
}

static void test_rm_real_exec_attachments_run_code_and_others_deliver_exec(void **state)
{
    views_on();
    fixture_t *f = *state;
    /* mov eax, 42; ret */
    static const uint8_t code[] = {0xb8, 0x2a, 0x00, 0x00, 0x00, 0xc3};
    capmem_cap_t rm = test_rm_new(f, 16 * PAGE, "code");
    capmem_cap_t ds = test_ds_new(f, PAGE, 0);
    assert_ok(capmem_ds_write(f->arena, ds, 0, code, sizeof(code)));
    attach(f, rm, ds, 0, 0, 0, 1);
    attach(f, rm, ds, 4 * PAGE, 0, 1, 0);
    pager_t pg = {.account = f->client, .resolve = 0};
    assert_ok(capmem_rm_set_fault_handler(f->arena, rm, demand_pager, &pg));
    uint8_t *v = map_real(f, rm);
    int (*fn)(void);
    void *p = v;
    memcpy(&fn, &p, sizeof(fn));
    assert_int_equal(fn(), 42);
    assert_int_equal(pg.calls, 0);
    CHECK_INVARIANTS(f->arena);

    /* The same bytes attached without exec: the fetch is an EXEC fault. */
    p = v + 4 * PAGE;
    memcpy(&fn, &p, sizeof(fn));
    assert_int_equal(v[4 * PAGE], 0xb8); /* mapped readable and writable, not executable */
    call_t c = {.fn = fn};
    assert_err(capmem_rm_real_guard(f->arena, call_it, &c), CAPMEM_E_UNRESOLVED_FAULT);
    assert_int_equal(pg.calls, 1);
    assert_int_equal(pg.last.access, CAPMEM_RM_EXEC);
    assert_int_equal(pg.last.address, 4 * PAGE);
    CHECK_INVARIANTS(f->arena);
}
#endif

/* ---- invalidation ---------------------------------------------------------------------- */

static capmem_err_t load(fixture_t *f, uint8_t *p)
{
    uint8_t got;
    return guarded(f->arena, p, 0, 0, &got);
}

static void test_rm_real_every_invalidation_path_faults_again(void **state)
{
    views_on();
    fixture_t *f = *state;
    capmem_cap_t rm = test_rm_new(f, 64 * PAGE, "cache");
    uint8_t *v = map_real(f, rm);

    /* detach */
    capmem_cap_t ds = test_ds_new(f, PAGE, 1);
    attach(f, rm, ds, 0, 0, 1, 0);
    assert_ok(load(f, v));
    assert_string_equal(maps_perms(v), "rw-s");
    assert_ok(capmem_rm_detach(f->arena, rm, 0));
    assert_string_equal(maps_perms(v), "---p");
    assert_err(load(f, v), CAPMEM_E_UNRESOLVED_FAULT);
    CHECK_INVARIANTS(f->arena);

    /* dataspace free */
    attach(f, rm, ds, PAGE, 0, 1, 0);
    assert_ok(load(f, v + PAGE));
    assert_ok(capmem_ds_free(f->arena, ds));
    assert_err(load(f, v + PAGE), CAPMEM_E_UNRESOLVED_FAULT);
    CHECK_INVARIANTS(f->arena);

    /* alias revoke: a dependent alias dies with its original */
    ds = test_ds_new(f, 2 * PAGE, 2);
    capmem_alias_attr_t aa = CAPMEM_ALIAS_ATTR_INIT;
    capmem_cap_t dep;
    assert_ok(capmem_ds_alias(f->arena, f->client, ds, &aa, &dep));
    attach(f, rm, dep, 8 * PAGE, 0, 1, 0);
    assert_ok(load(f, v + 9 * PAGE));
    assert_ok(capmem_ds_free(f->arena, ds));
    assert_err(load(f, v + 9 * PAGE), CAPMEM_E_UNRESOLVED_FAULT);
    /* and a revoke of a copy's source */
    ds = test_ds_new(f, PAGE, 3);
    capmem_cap_t copy;
    assert_ok(capmem_ds_alias(f->arena, f->client, ds, &aa, &copy));
    attach(f, rm, copy, 12 * PAGE, 0, 1, 0);
    assert_ok(load(f, v + 12 * PAGE));
    assert_ok(capmem_cap_revoke(f->arena, ds));
    assert_err(load(f, v + 12 * PAGE), CAPMEM_E_UNRESOLVED_FAULT);
    CHECK_INVARIANTS(f->arena);

    /* a change inside a nested map, and the inner map's close */
    capmem_cap_t inner = test_rm_new(f, 8 * PAGE, "inner");
    capmem_cap_t mds;
    assert_ok(capmem_rm_dataspace(f->arena, inner, &mds));
    capmem_cap_t ids = test_ds_new(f, PAGE, 4);
    attach(f, inner, ids, 2 * PAGE, 0, 1, 0);
    attach(f, rm, mds, 32 * PAGE, 0, 1, 0);
    uint8_t got = 0;
    assert_ok(guarded(f->arena, v + 34 * PAGE, 0, 0, &got));
    assert_int_equal(got, 4);
    assert_ok(capmem_rm_detach(f->arena, inner, 2 * PAGE));
    assert_err(load(f, v + 34 * PAGE), CAPMEM_E_UNRESOLVED_FAULT);
    attach(f, inner, ids, 2 * PAGE, 0, 1, 0);
    assert_ok(load(f, v + 34 * PAGE));
    capmem_rm_real_stats_t before = real_stats(f);
    assert_ok(capmem_rm_close(f->arena, inner));
    assert_err(load(f, v + 34 * PAGE), CAPMEM_E_UNRESOLVED_FAULT);
    assert_true(real_stats(f).dropped > before.dropped);
    CHECK_INVARIANTS(f->arena);

    /* closing the map itself: its view goes */
    assert_ok(capmem_rm_close(f->arena, rm));
    assert_true(view_gone(v));
    CHECK_INVARIANTS(f->arena);
}

/* ---- nesting ----------------------------------------------------------------------------- */

#define DEPTH 8

static void test_rm_real_nesting_eight_deep_ands_rights_and_drops_outer_ranges(void **state)
{
    views_on();
    fixture_t *f = *state;
    /* m[0] outermost ... m[DEPTH] innermost; each inner map sits one page further in. */
    capmem_cap_t m[DEPTH + 1];
    for (int i = 0; i <= DEPTH; i++) {
        m[i] = test_rm_new(f, (uint64_t)(64 - 4 * i) * PAGE, "level");
    }
    for (int i = DEPTH; i > 0; i--) {
        capmem_cap_t mds;
        assert_ok(capmem_rm_dataspace(f->arena, m[i], &mds));
        attach(f, m[i - 1], mds, PAGE, (uint64_t)(64 - 4 * i) * PAGE, 1, 0);
    }
    capmem_cap_t ds = test_ds_new(f, 2 * PAGE, 0x33);
    attach(f, m[DEPTH], ds, 0, 0, 1, 0);
    pager_t inner_pg = {.account = f->client, .resolve = 0};
    assert_ok(capmem_rm_set_fault_handler(f->arena, m[DEPTH], demand_pager, &inner_pg));
    uint8_t *outer = map_real(f, m[0]);
    uint8_t *inner = map_real(f, m[DEPTH]);
    const uint64_t at = (uint64_t)DEPTH * PAGE; /* the innermost byte 0, seen from outside */

    outer[at + 5] = 0x44;
    assert_int_equal(inner[5], 0x44);
    uint8_t b;
    assert_ok(capmem_ds_read(f->arena, ds, 5, &b, 1));
    assert_int_equal(b, 0x44);
    /* A hole of the innermost map: its handler, with its own address. */
    assert_err(load(f, outer + at + 3 * PAGE + 1), CAPMEM_E_UNRESOLVED_FAULT);
    assert_int_equal(inner_pg.calls, 1);
    assert_int_equal(inner_pg.last.address, 3 * PAGE + 1);
    assert_int_equal(inner_pg.last.rm, m[DEPTH]);
    CHECK_INVARIANTS(f->arena);

    /* An inner detach drops the range in the outer view too. */
    assert_ok(capmem_rm_detach(f->arena, m[DEPTH], 0));
    assert_err(load(f, outer + at), CAPMEM_E_UNRESOLVED_FAULT);
    assert_err(load(f, inner), CAPMEM_E_UNRESOLVED_FAULT);
    CHECK_INVARIANTS(f->arena);

    /* The AND of the rights: a read-only level in the middle makes the outer view read-only. */
    attach(f, m[DEPTH], ds, 0, 0, 1, 0);
    capmem_cap_t mid_ds;
    assert_ok(capmem_rm_dataspace(f->arena, m[DEPTH / 2], &mid_ds));
    const uint64_t mid_at = PAGE; /* where m[DEPTH / 2] sits in m[DEPTH / 2 - 1] */
    assert_ok(capmem_rm_detach(f->arena, m[DEPTH / 2 - 1], mid_at));
    attach(f, m[DEPTH / 2 - 1], mid_ds, mid_at, (uint64_t)(64 - 4 * (DEPTH / 2)) * PAGE, 0, 0);
    assert_ok(load(f, outer + at));
    assert_int_equal(outer[at + 5], 0x44);
    pager_t mid_pg = {.account = f->client, .resolve = 0};
    assert_ok(capmem_rm_set_fault_handler(f->arena, m[DEPTH / 2 - 1], demand_pager, &mid_pg));
    assert_err(guarded(f->arena, outer + at + 5, 1, 1, NULL), CAPMEM_E_UNRESOLVED_FAULT);
    assert_int_equal(mid_pg.calls, 1);
    assert_int_equal(mid_pg.last.access, CAPMEM_RM_WRITE);
    /* The inner view is writable. */
    inner[5] = 0x45;
    assert_int_equal(outer[at + 5], 0x45);
    CHECK_INVARIANTS(f->arena);
}

/* ---- threads ------------------------------------------------------------------------------ */

#define THREADS 4
#define TPAGES 64

typedef struct thr {
    uint8_t *v;
    unsigned id;
} thr_t;

static void *toucher(void *arg)
{
    thr_t *t = arg;
    for (unsigned p = 0; p < TPAGES; p++) {
        /* Each thread its own byte of each page: the pages are shared, the bytes are not. */
        t->v[p * PAGE + t->id * 8] = (uint8_t)(t->id + 1);
    }
    return NULL;
}

static void test_rm_real_threads_faulting_the_same_pages_deliver_once_per_page(void **state)
{
    views_on();
    fixture_t *f = *state;
    capmem_cap_t rm = test_rm_new(f, TPAGES * PAGE, "shared");
    pager_t pg = {.account = f->client, .resolve = 1};
    assert_ok(capmem_rm_set_fault_handler(f->arena, rm, demand_pager, &pg));
    uint8_t *v = map_real(f, rm);
    pthread_t th[THREADS];
    thr_t args[THREADS];
    for (unsigned i = 0; i < THREADS; i++) {
        args[i] = (thr_t){.v = v, .id = i};
        assert_int_equal(pthread_create(&th[i], NULL, toucher, &args[i]), 0);
    }
    for (unsigned i = 0; i < THREADS; i++) {
        pthread_join(th[i], NULL);
    }
    assert_int_equal(pg.calls, TPAGES);
    for (unsigned p = 0; p < TPAGES; p++) {
        for (unsigned i = 0; i < THREADS; i++) {
            uint8_t b;
            assert_ok(capmem_rm_read(f->arena, rm, p * PAGE + i * 8, &b, 1));
            assert_int_equal(b, i + 1);
        }
    }
    capmem_rm_real_stats_t s = real_stats(f);
    assert_int_equal(s.mapped, TPAGES);
    assert_true(s.faults >= TPAGES);
    CHECK_INVARIANTS(f->arena);
}

/* ---- recursion ----------------------------------------------------------------------------- */

typedef struct recurse {
    pager_t pg;
    uint8_t *other; /* another map's view the pager reads from */
    uint8_t seen;
    uint8_t *own; /* its own view, touched at an unbacked page under a guard */
    capmem_err_t own_err;
} recurse_t;

static capmem_rm_fault_result_t reading_pager(capmem_arena_t *arena, const capmem_rm_fault_t *f,
                                              void *ctx)
{
    recurse_t *r = ctx;
    atomic_signal_fence(memory_order_seq_cst);
    r->seen = r->other[PAGE + 1]; /* faults in the other map: resolved by recursion */
    if (r->own != NULL) {
        uint8_t got;
        r->own_err = guarded(arena, r->own + 60 * PAGE, 0, 0, &got);
    }
    return demand_pager(arena, f, &r->pg);
}

static void test_rm_real_faults_inside_pagers_and_library_calls_resolve_by_recursion(void **state)
{
    views_on();
    fixture_t *f = *state;
    capmem_cap_t a = test_rm_new(f, 64 * PAGE, "a");
    capmem_cap_t b = test_rm_new(f, 64 * PAGE, "b");
    pager_t bpg = {.account = f->client, .resolve = 1};
    assert_ok(capmem_rm_set_fault_handler(f->arena, b, demand_pager, &bpg));
    uint8_t *vb = map_real(f, b);

    /* A library call whose buffer lies in an unmapped page of a view. */
    capmem_cap_t ds = test_ds_new(f, PAGE, 0x21);
    assert_ok(capmem_ds_read(f->arena, ds, 0, vb + 5 * PAGE, 64));
    assert_int_equal(bpg.calls, 1);
    assert_int_equal(vb[5 * PAGE + 63], 0x21);
    assert_ok(capmem_ds_write(f->arena, ds, 0, vb + 6 * PAGE, 16)); /* source unmapped: READ */
    assert_int_equal(bpg.calls, 2);
    assert_int_equal(bpg.last.access, CAPMEM_RM_READ);
    CHECK_INVARIANTS(f->arena);

    if (UNDER_TSAN) {
        /* A fault inside a fault handler ends a ThreadSanitizer process. */
        return;
    }
    /* A pager that touches another map's view. */
    recurse_t r = {.pg = {.account = f->client, .resolve = 1}, .other = vb};
    vb[PAGE + 1] = 0x66;
    assert_ok(capmem_rm_detach(f->arena, b, PAGE)); /* unmapped again: the pager faults */
    assert_ok(capmem_rm_set_fault_handler(f->arena, a, reading_pager, &r));
    uint8_t *va = map_real(f, a);
    va[0] = 1;
    assert_int_equal(r.pg.calls, 1);
    assert_int_equal(r.seen, 0); /* b's pager attached a fresh page */
    assert_int_equal(bpg.calls, 4);
    CHECK_INVARIANTS(f->arena);

    /* A fault on a map whose own handler runs is not delivered again. */
    r.own = va;
    /* The pager runs inside the store: what it reads must be in memory before (C11 7.17.4). */
    atomic_signal_fence(memory_order_seq_cst);
    va[2 * PAGE] = 1;
    assert_int_equal(r.own_err, CAPMEM_E_UNRESOLVED_FAULT);
    assert_int_equal(r.pg.calls, 2);
    assert_int_equal(va[2 * PAGE], 1);
    capmem_rm_state_t st;
    assert_ok(capmem_rm_state(f->arena, a, &st));
    assert_false(st.pending);
    CHECK_INVARIANTS(f->arena);
}

/* ---- system calls ----------------------------------------------------------------------- */

static void test_rm_real_read_syscall_gets_efault_before_and_works_after_prefault(void **state)
{
    views_on();
    fixture_t *f = *state;
    capmem_cap_t rm = test_rm_new(f, 16 * PAGE, "syscall");
    pager_t pg = {.account = f->client, .resolve = 1};
    assert_ok(capmem_rm_set_fault_handler(f->arena, rm, demand_pager, &pg));
    uint8_t *v = map_real(f, rm);
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    assert_int_equal(write(fds[1], "kernel", 6), 6);
    /* The kernel's own access never reaches a handler. */
    errno = 0;
    assert_int_equal(read(fds[0], v + 2 * PAGE, 6), -1);
    assert_int_equal(errno, EFAULT);
    assert_int_equal(pg.calls, 0);
    assert_ok(capmem_rm_real_prefault(f->arena, rm, 2 * PAGE, 6, CAPMEM_RM_WRITE));
    assert_int_equal(pg.calls, 1);
    assert_int_equal(pg.last.access, CAPMEM_RM_WRITE);
    assert_int_equal(read(fds[0], v + 2 * PAGE, 6), 6);
    char buf[7] = {0};
    assert_ok(capmem_rm_read(f->arena, rm, 2 * PAGE, buf, 6));
    assert_string_equal(buf, "kernel");
    close(fds[0]);
    close(fds[1]);
    /* A prefault over pages already mapped costs nothing; several pieces at once. */
    assert_ok(capmem_rm_real_prefault(f->arena, rm, PAGE, 3 * PAGE, CAPMEM_RM_READ));
    assert_int_equal(pg.calls, 3);

    /* Its refusals change nothing. */
    capmem_rm_real_stats_t s = real_stats(f);
    assert_err(capmem_rm_real_prefault(NULL, rm, 0, 1, CAPMEM_RM_READ), CAPMEM_E_INVALID_ARGS);
    assert_err(capmem_rm_real_prefault(f->arena, rm, 0, 1, (capmem_rm_access_t)7),
               CAPMEM_E_INVALID_ARGS);
    assert_err(capmem_rm_real_prefault(f->arena, rm, 15 * PAGE, 2 * PAGE, CAPMEM_RM_READ),
               CAPMEM_E_RANGE);
    assert_err(capmem_rm_real_prefault(f->arena, rm, UINT64_MAX, 2, CAPMEM_RM_READ),
               CAPMEM_E_RANGE);
    capmem_cap_t other = test_rm_new(f, 4 * PAGE, "unmapped");
    assert_err(capmem_rm_real_prefault(f->arena, other, 0, 1, CAPMEM_RM_READ),
               CAPMEM_E_INVALID_ARGS);
    pg.resolve = 0;
    assert_err(capmem_rm_real_prefault(f->arena, rm, 9 * PAGE, 1, CAPMEM_RM_READ),
               CAPMEM_E_UNRESOLVED_FAULT);
    capmem_rm_real_stats_t s2 = real_stats(f);
    assert_int_equal(s2.pieces, s.pieces);
    assert_int_equal(s2.mapped, s.mapped);
    CHECK_INVARIANTS(f->arena);
}

/* ---- the default ending ----------------------------------------------------------------- */

static int ended_by_segv(int status)
{
    if (WIFSIGNALED(status)) {
        return WTERMSIG(status) == SIGSEGV;
    }
    /* ASan and TSan report the fault themselves and exit non-zero. */
    return WIFEXITED(status) && WEXITSTATUS(status) != 0;
}

static void test_rm_real_unresolved_fault_without_a_guard_ends_the_process(void **state)
{
    views_on();
    fixture_t *f = *state;
    capmem_cap_t rm = test_rm_new(f, 16 * PAGE, "fatal");
    attach(f, rm, test_ds_new(f, PAGE, 1), 0, 0, 1, 0);
    uint8_t *v = map_real(f, rm);
    assert_int_equal(v[0], 1);
    fflush(NULL);
    /* A forked child inherits the view but must not use the arena: a fault is not resolved. */
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct sigaction dfl;
        memset(&dfl, 0, sizeof(dfl));
        dfl.sa_handler = SIG_DFL;
        capmem__real_reinstall(&dfl); /* the library's handler, the default behind it */
        (void)*(volatile uint8_t *)(v + 5 * PAGE);
        _exit(0);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(ended_by_segv(status));

    /* A child with an arena of its own: an unresolved fault there ends it too. */
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct sigaction dfl;
        memset(&dfl, 0, sizeof(dfl));
        dfl.sa_handler = SIG_DFL;
        capmem__real_reinstall(&dfl);
        test_world_t w;
        capmem_arena_attr_t at = CAPMEM_ARENA_ATTR_INIT;
        at.ram_size = 1ull << 20;
        capmem_cap_t root;
        capmem_cap_t crm;
        void *base;
        if (capmem_arena_create(&at, &w.arena) != CAPMEM_OK ||
            capmem_ram_boot(w.arena, NULL, &root) != CAPMEM_OK) {
            _exit(3);
        }
        capmem_rm_open_attr_t oa = CAPMEM_RM_OPEN_ATTR_INIT;
        oa.size = 4 * PAGE;
        if (capmem_rm_open(w.arena, root, &oa, &crm) != CAPMEM_OK ||
            capmem_rm_real_map(w.arena, crm, 0, &base) != CAPMEM_OK) {
            _exit(4);
        }
        (void)*(volatile uint8_t *)base;
        _exit(0);
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(ended_by_segv(status));
    /* The parent goes on. */
    v[1] = 2;
    CHECK_INVARIANTS(f->arena);
}

/* ---- the budget ---------------------------------------------------------------------------- */

static void test_rm_real_budget_evicts_the_least_recently_mapped(void **state)
{
    views_on();
    fixture_t *f = *state;
    capmem_cap_t rm = test_rm_new(f, 64 * PAGE, "budget");
    capmem_cap_t ds[10];
    for (unsigned i = 0; i < 10; i++) {
        ds[i] = test_ds_new(f, PAGE, (uint8_t)(i + 1));
        attach(f, rm, ds[i], 2 * i * PAGE, 0, 1, 0); /* a hole between: separate pieces */
    }
    uint8_t *v = map_real(f, rm);
    assert_err(capmem_rm_real_set_budget(f->arena, 0), CAPMEM_E_INVALID_ARGS);
    assert_err(capmem_rm_real_set_budget(NULL, 4), CAPMEM_E_INVALID_ARGS);
    assert_err(capmem_rm_real_stats(NULL, NULL), CAPMEM_E_INVALID_ARGS);
    for (unsigned i = 0; i < 6; i++) {
        assert_int_equal(v[2 * i * PAGE], i + 1);
    }
    assert_ok(capmem_rm_real_set_budget(f->arena, 4)); /* two go at once, the oldest */
    capmem_rm_real_stats_t s = real_stats(f);
    assert_int_equal(s.pieces, 4);
    assert_int_equal(s.evicted, 2);
    assert_int_equal(s.budget, 4);
    assert_string_equal(maps_perms(v), "---p");
    assert_string_equal(maps_perms(v + 2 * PAGE), "---p");
    assert_string_equal(maps_perms(v + 4 * PAGE), "rw-s");
    CHECK_INVARIANTS(f->arena);
    for (unsigned i = 0; i < 10; i++) {
        assert_int_equal(v[2 * i * PAGE], i + 1);
    }
    /* A scan in mapping order evicts just ahead of itself: every one faults again. */
    s = real_stats(f);
    assert_int_equal(s.pieces, 4);
    assert_int_equal(s.evicted, 12);
    CHECK_INVARIANTS(f->arena);
    /* The model is untouched: all ten are attached and readable again. */
    for (unsigned i = 0; i < 10; i++) {
        uint8_t b;
        assert_ok(capmem_rm_read(f->arena, rm, 2 * i * PAGE, &b, 1));
        assert_int_equal(b, i + 1);
    }

    /* At the kernel's limit of mappings a drop falls back to mprotect, then to the whole view. */
    capmem__real_inject(1, 1);
    assert_ok(capmem_rm_detach(f->arena, rm, 18 * PAGE));
    capmem__real_inject(1, 0);
    assert_string_equal(maps_perms(v + 18 * PAGE), "---s");
    CHECK_INVARIANTS(f->arena);
    capmem__real_inject(1, 1);
    capmem__real_inject(2, 1);
    const uint32_t before = real_stats(f).pieces;
    assert_true(before >= 2);
    assert_ok(capmem_rm_detach(f->arena, rm, 16 * PAGE));
    capmem__real_inject(1, 0);
    capmem__real_inject(2, 0);
    assert_int_equal(real_stats(f).pieces, 0);
    CHECK_INVARIANTS(f->arena);
    /* A piece the kernel refuses to map: the oldest goes and it is tried again. */
    assert_int_equal(v[0], 1);
    capmem__real_inject(0, 1);
    assert_int_equal(v[2 * PAGE], 2);
    capmem__real_inject(0, 0);
    assert_int_equal(real_stats(f).pieces, 1);
    /* With nothing left to give back, the fault is unresolved (SYSTEM under a guard). */
    capmem__real_inject(0, 1);
    assert_ok(capmem_rm_real_set_budget(f->arena, 1));
    assert_err(load(f, v + 4 * PAGE), CAPMEM_E_SYSTEM);
    capmem__real_inject(0, 0);
    assert_int_equal(v[4 * PAGE], 3);
    assert_ok(capmem_rm_real_set_budget(f->arena, CAPMEM_RM_REAL_DEFAULT_BUDGET));
    CHECK_INVARIANTS(f->arena);
}

static capmem_rm_fault_result_t unmapping_pager(capmem_arena_t *arena, const capmem_rm_fault_t *f,
                                                void *ctx)
{
    (void)ctx;
    return capmem_rm_real_unmap(arena, f->rm) == CAPMEM_OK ? CAPMEM_RM_FAULT_RESOLVED
                                                           : CAPMEM_RM_FAULT_UNRESOLVED;
}

typedef struct nest {
    capmem_arena_t *arena;
    unsigned depth;
    capmem_err_t deepest;
} nest_t;

static void nest_guard(void *ctx)
{
    nest_t *n = ctx;
    n->depth++;
    capmem_err_t err = capmem_rm_real_guard(n->arena, nest_guard, n);
    if (err != CAPMEM_OK) {
        n->deepest = err;
    }
}

static void test_rm_real_refusals_of_host_failures_change_nothing(void **state)
{
    fixture_t *f = *state;
    views_on();
    capmem_cap_t rm = test_rm_new(f, 16 * PAGE, "host");
    void *base = (void *)0x1;
    /* The pool of the arena's first view. */
    capmem__real_inject(3, 1);
    assert_err(capmem_rm_real_map(f->arena, rm, 0, &base), CAPMEM_E_HOST_NOMEM);
    /* The reservation, then the table. */
    capmem__real_inject(3, 2);
    assert_err(capmem_rm_real_map(f->arena, rm, 0, &base), CAPMEM_E_SYSTEM);
    assert_int_equal(capmem_last_error()->sys_errno, ENOMEM);
    capmem__real_inject(3, 2); /* the pool is there now: the reservation, then the table */
    assert_err(capmem_rm_real_map(f->arena, rm, 0, &base), CAPMEM_E_SYSTEM);
    capmem__real_inject(3, 0);
    assert_ptr_equal(base, (void *)0x1);
    capmem_rm_real_stats_t s = real_stats(f);
    assert_int_equal(s.views, 0);
    capmem_rm_info_t info;
    assert_ok(capmem_rm_info(f->arena, rm, &info));
    assert_null(info.real_base);
    CHECK_INVARIANTS(f->arena);
    /* A bigger pool that cannot be had leaves the old one. */
    uint8_t *v = map_real(f, rm);
    attach(f, rm, test_ds_new(f, PAGE, 5), 0, 0, 1, 0);
    assert_int_equal(v[0], 5);
    capmem__real_inject(3, 1);
    assert_err(capmem_rm_real_set_budget(f->arena, 100), CAPMEM_E_HOST_NOMEM);
    capmem__real_inject(3, 0);
    s = real_stats(f);
    assert_int_equal(s.budget, CAPMEM_RM_REAL_DEFAULT_BUDGET);
    assert_int_equal(s.pieces, 1);
    /* A prefault whose piece cannot be mapped. */
    attach(f, rm, test_ds_new(f, PAGE, 6), 2 * PAGE, 0, 1, 0);
    capmem__real_inject(0, 1);
    assert_ok(capmem_rm_real_set_budget(f->arena, 1));
    assert_err(capmem_rm_real_prefault(f->arena, rm, 2 * PAGE, 1, CAPMEM_RM_READ), CAPMEM_E_SYSTEM);
    capmem__real_inject(0, 0);
    assert_int_equal(real_stats(f).pieces, 0);
    /* A prefault for a write needs WRITE on the capability; unmap needs a map. */
    capmem_cap_t ro;
    assert_ok(capmem_cap_mint(f->arena, rm, CAPMEM_RIGHT_READ, &ro));
    assert_err(capmem_rm_real_prefault(f->arena, ro, 0, 1, CAPMEM_RM_WRITE), CAPMEM_E_DENIED);
    assert_err(capmem_rm_real_unmap(f->arena, f->client), CAPMEM_E_WRONG_TYPE);
    assert_int_equal(real_stats(f).pieces, 0);
    assert_ok(capmem_rm_real_set_budget(f->arena, CAPMEM_RM_REAL_DEFAULT_BUDGET));
    CHECK_INVARIANTS(f->arena);

    /* A pager that unmaps the view it serves: the fault has nowhere to go. */
    assert_ok(capmem_rm_set_fault_handler(f->arena, rm, unmapping_pager, NULL));
    assert_err(load(f, v + 4 * PAGE), CAPMEM_E_INVALID_CAP);
    assert_true(view_gone(v));
    CHECK_INVARIANTS(f->arena);

    /* Guards nest 16 deep. */
    nest_t n = {.arena = f->arena};
    assert_ok(capmem_rm_real_guard(f->arena, nest_guard, &n));
    assert_int_equal(n.deepest, CAPMEM_E_INVALID_ARGS);
    assert_int_equal(n.depth, 16);
    CHECK_INVARIANTS(f->arena);
}

typedef struct lib_call {
    capmem_arena_t *arena;
    capmem_cap_t ds;
    uint8_t *buf;
    capmem_err_t err;
} lib_call_t;

static void read_into(void *ctx)
{
    lib_call_t *c = ctx;
    c->err = capmem_ds_read(c->arena, c->ds, 0, c->buf, 64);
}

static void test_rm_real_guard_unwinds_library_calls_and_other_arenas(void **state)
{
    views_on();
    fixture_t *f = *state;
    capmem_cap_t rm = test_rm_new(f, 16 * PAGE, "unwound");
    pager_t pg = {.account = f->client, .resolve = 0};
    assert_ok(capmem_rm_set_fault_handler(f->arena, rm, demand_pager, &pg));
    uint8_t *v = map_real(f, rm);
    capmem_cap_t ds = test_ds_new(f, PAGE, 9);
    /* A library call copying into an unbacked page: abandoned, its lock released. */
    lib_call_t c = {.arena = f->arena, .ds = ds, .buf = v + 3 * PAGE, .err = CAPMEM_E_CORRUPT};
    assert_err(capmem_rm_real_guard(f->arena, read_into, &c), CAPMEM_E_UNRESOLVED_FAULT);
    assert_int_equal(c.err, CAPMEM_E_CORRUPT); /* it never returned */
    assert_int_equal(pg.calls, 1);
    capmem_rm_state_t st;
    assert_ok(capmem_rm_state(f->arena, rm, &st));
    assert_false(st.pending);
    CHECK_INVARIANTS(f->arena); /* the arena is usable: the lock was given back */

    /* A guard on another arena catches a fault of this one's view. */
    capmem_arena_t *other = test_arena(1ull << 20, PAGE);
    uint8_t got;
    access_ctx_t a = {.p = v + 5 * PAGE};
    assert_err(capmem_rm_real_guard(other, do_access, &a), CAPMEM_E_UNRESOLVED_FAULT);
    assert_int_equal(capmem_last_error()->address, 5 * PAGE);
    CHECK_INVARIANTS(other);
    capmem_arena_destroy(other);
    assert_err(guarded(f->arena, v + 5 * PAGE, 0, 0, &got), CAPMEM_E_UNRESOLVED_FAULT);
    CHECK_INVARIANTS(f->arena);
}

#if defined(__x86_64__)
/*
 * Without an error code in the signal context (Valgrind's instruction
 * fetches, other architectures), a fault on a page mapped already is
 * promoted: READ on a readable page is a WRITE, on a writable one an EXEC.
 */
static void test_rm_real_faults_without_error_code_are_promoted(void **state)
{
    views_on();
    fixture_t *f = *state;
    capmem_cap_t rm = test_rm_new(f, 16 * PAGE, "promoted");
    capmem_cap_t ds = test_ds_new(f, PAGE, 1);
    attach(f, rm, ds, 0, 0, 0, 0);        /* read-only */
    attach(f, rm, ds, PAGE, 0, 1, 0);     /* writable, not executable */
    attach(f, rm, ds, 2 * PAGE, 0, 1, 1); /* everything */
    pager_t pg = {.account = f->client, .resolve = 0};
    assert_ok(capmem_rm_set_fault_handler(f->arena, rm, demand_pager, &pg));
    uint8_t *v = map_real(f, rm);
    assert_ok(capmem_rm_real_prefault(f->arena, rm, 0, 3 * PAGE, CAPMEM_RM_READ));
    siginfo_t si;
    memset(&si, 0, sizeof(si));
    ucontext_t uc;
    memset(&uc, 0, sizeof(uc));
    si.si_addr = v + 8;
    assert_int_equal(capmem_rm_real_handle_signal(SIGSEGV, &si, &uc), 0);
    assert_int_equal(pg.calls, 1);
    assert_int_equal(pg.last.access, CAPMEM_RM_WRITE);
    si.si_addr = v + PAGE + 8;
    assert_int_equal(capmem_rm_real_handle_signal(SIGSEGV, &si, &uc), 0);
    assert_int_equal(pg.calls, 2);
    assert_int_equal(pg.last.access, CAPMEM_RM_EXEC);
    /* Every access allowed: another thread was first, nothing to do. */
    const uint64_t spurious = real_stats(f).spurious;
    si.si_addr = v + 2 * PAGE + 8;
    assert_int_equal(capmem_rm_real_handle_signal(SIGSEGV, &si, &uc), 1);
    assert_int_equal(pg.calls, 2);
    assert_int_equal(real_stats(f).spurious, spurious + 1);
    /* With the error code: a user-mode read of a readable page is just spurious. */
    uc.uc_mcontext.gregs[REG_ERR] = 0x4 | 0x1;
    si.si_addr = v + 8;
    assert_int_equal(capmem_rm_real_handle_signal(SIGSEGV, &si, &uc), 1);
    assert_int_equal(pg.calls, 2);
    CHECK_INVARIANTS(f->arena);
}
#endif

/* The checker notices a view whose pieces disagree with its table or with the model. */
static void test_rm_real_checker_finds_broken_views(void **state)
{
    views_on();
    fixture_t *f = *state;
    capmem_cap_t rm = test_rm_new(f, 16 * PAGE, "checked");
    capmem_cap_t ds = test_ds_new(f, 2 * PAGE, 1);
    attach(f, rm, ds, 0, PAGE, 1, 0);
    uint8_t *v = map_real(f, rm);
    assert_int_equal(v[0], 1);
    CHECK_INVARIANTS(f->arena);
    capmem_rm_info_t info;
    assert_ok(capmem_rm_info(f->arena, rm, &info));
    real_view_t *view = NULL;
    for (unsigned i = 0; i < CAPMEM_RM_REAL_MAX_VIEWS; i++) {
        if ((void *)atomic_load(&capmem__real_slot(i)->base) == info.real_base) {
            view = capmem__real_slot(i);
        }
    }
    assert_non_null(view);
    char why[256];
    /* The table forgets the piece. */
    const uint32_t saved = view->table[0];
    view->table[0] = 0;
    assert_err(capmem_check(f->arena, why, sizeof(why)), CAPMEM_E_CORRUPT);
    assert_non_null(strstr(why, "not in its view's table"));
    view->table[0] = saved;
    /* The count of pieces is off. */
    view->npieces++;
    assert_err(capmem_check(f->arena, why, sizeof(why)), CAPMEM_E_CORRUPT);
    assert_non_null(strstr(why, "in views"));
    view->npieces--;
    /* The model moves under a mapped piece (a region's offset changes behind the hooks). */
    capmem_arena_t *a = f->arena;
    capmem__rm_t *m = NULL;
    capmem__lock(a);
    assert_ok(capmem__rm_lookup(a, rm, 0, &m));
    rm_region_t *r = capmem__rm_region_at(a, m, 0);
    r->off = PAGE;
    capmem__unlock(a);
    assert_err(capmem_check(f->arena, why, sizeof(why)), CAPMEM_E_CORRUPT);
    assert_non_null(strstr(why, "no longer shows"));
    capmem__lock(a);
    r->off = 0;
    capmem__unlock(a);
    CHECK_INVARIANTS(f->arena);
    /* A view of a map that is not the one its capability names any more. */
    capmem__rm_t fake;
    capmem__lock(a);
    memcpy(&fake, m, sizeof(fake));
    capmem__unlock(a);
    capmem_cap_t rm2 = test_rm_new(f, 4 * PAGE, "second");
    void *b2;
    assert_ok(capmem_rm_real_map(f->arena, rm2, 0, &b2));
    real_view_t *v2 = NULL;
    for (unsigned i = 0; i < CAPMEM_RM_REAL_MAX_VIEWS; i++) {
        if ((void *)atomic_load(&capmem__real_slot(i)->base) == b2) {
            v2 = capmem__real_slot(i);
        }
    }
    assert_non_null(v2);
    capmem__rm_t *real_rm = v2->rm;
    v2->rm = &fake;
    assert_err(capmem_check(f->arena, why, sizeof(why)), CAPMEM_E_CORRUPT);
    assert_non_null(strstr(why, "a map that is gone"));
    v2->rm = real_rm;
    CHECK_INVARIANTS(f->arena);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_rm_real_app_handler_still_gets_faults_outside_the_views),
        T(test_rm_real_map_reserves_and_unmap_releases),
        T(test_rm_real_map_refuses_arenas_it_cannot_map),
        T(test_rm_real_full_registry_is_refused),
        T(test_rm_real_pointer_rm_read_ds_read_and_aliases_agree),
        T(test_rm_real_pager_runs_once_per_page_with_address_access_and_state),
        T(test_rm_real_unresolved_fault_under_a_guard_returns_the_error),
        T(test_rm_real_store_to_read_only_alias_delivers_write),
#if defined(__x86_64__)
        T(test_rm_real_exec_attachments_run_code_and_others_deliver_exec),
#endif
        T(test_rm_real_every_invalidation_path_faults_again),
        T(test_rm_real_nesting_eight_deep_ands_rights_and_drops_outer_ranges),
        T(test_rm_real_threads_faulting_the_same_pages_deliver_once_per_page),
        T(test_rm_real_faults_inside_pagers_and_library_calls_resolve_by_recursion),
        T(test_rm_real_read_syscall_gets_efault_before_and_works_after_prefault),
        T(test_rm_real_unresolved_fault_without_a_guard_ends_the_process),
        T(test_rm_real_budget_evicts_the_least_recently_mapped),
        T(test_rm_real_refusals_of_host_failures_change_nothing),
        T(test_rm_real_guard_unwinds_library_calls_and_other_arenas),
#if defined(__x86_64__)
        T(test_rm_real_faults_without_error_code_are_promoted),
#endif
        T(test_rm_real_checker_finds_broken_views),
    };
    return cmocka_run_group_tests_name("rm_real", tests, NULL, NULL);
}
