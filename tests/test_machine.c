/* SPDX-License-Identifier: MIT */
/*
 * The machine's contracts (src/machine.c): events arrive after the call that
 * raised them, and a callback may call anything, closing or revoking the
 * very objects under operation included; a callback that runs mid-call (an
 * allocation policy's hook) is refused; handles are bound to their arena; a
 * forked child is refused and the parent keeps working; the arena can be
 * destroyed from inside a callback; a fault handler's own failure is the
 * reported root cause. Every test ends with the invariant checker.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cap_internal.h"
#include "internal.h"
#include "support.h"

TEST_WORLD_FIXTURE(32ull << 20, 0);

static capmem_cap_t open_account(fixture_t *f, capmem_cap_t parent, uint64_t quota,
                                 uint64_t donation, uint32_t flags, const char *label)
{
    capmem_ram_open_attr_t at = CAPMEM_RAM_OPEN_ATTR_INIT;
    at.quota = quota;
    at.donation = donation;
    at.flags = flags;
    at.label = label;
    at.caps = parent == f->root ? 512 : 64;
    capmem_cap_t c = CAPMEM_CAP_NULL;
    assert_ok(capmem_ram_open(f->arena, parent, &at, &c));
    return c;
}

static capmem_ram_info_t ram_info(capmem_arena_t *a, capmem_cap_t acc)
{
    capmem_ram_info_t i;
    assert_ok(capmem_ram_info(a, acc, &i));
    return i;
}

/* Fill an account's records until the next record needs an upgrade. */
static void fill_records(fixture_t *f, capmem_cap_t acc)
{
    capmem_ram_info_t in = ram_info(f->arena, acc);
    capmem_cap_t ds;
    for (uint64_t i = in.records_used; i < in.records_capacity; i++) {
        assert_ok(capmem_ram_alloc(f->arena, acc, 4096, &ds));
    }
    in = ram_info(f->arena, acc);
    assert_int_equal(in.records_used, in.records_capacity);
}

/* ---- a callback that acts on the object under operation ------------------ */

typedef struct actor {
    capmem_event_kind_t on; /* the event kind that triggers the action */
    int action;             /* what to do, see act() */
    capmem_cap_t target;    /* the object to act on */
    int fired;              /* times the action ran */
    capmem_err_t result;    /* what the action's call returned */
    int events;             /* events seen in all */
    capmem_event_kind_t kinds[64];
    uint64_t used_seen; /* the account's used bytes seen from inside the callback */
    capmem_cap_t probe; /* account to read from inside the callback, or NULL */
} actor_t;

enum { ACT_RAM_CLOSE = 1, ACT_REVOKE, ACT_RM_CLOSE, ACT_DESTROY_ARENA };

static void act(capmem_arena_t *a, const capmem_event_t *ev, void *ctx)
{
    actor_t *x = ctx;
    if (x->events < 64) {
        x->kinds[x->events] = ev->kind;
    }
    x->events++;
    if (x->probe != CAPMEM_CAP_NULL && ev->kind == x->on) {
        capmem_ram_info_t in;
        if (capmem_ram_info(a, x->probe, &in) == CAPMEM_OK) {
            x->used_seen = in.used;
        }
    }
    if (ev->kind != x->on || x->fired != 0) {
        return;
    }
    x->fired++;
    switch (x->action) {
    case ACT_RAM_CLOSE:
        x->result = capmem_ram_close(a, x->target);
        break;
    case ACT_REVOKE:
        x->result = capmem_cap_revoke(a, x->target);
        break;
    case ACT_RM_CLOSE:
        x->result = capmem_rm_close(a, x->target);
        break;
    case ACT_DESTROY_ARENA:
        capmem_arena_destroy(a);
        x->result = CAPMEM_OK;
        break;
    }
}

static void test_machine_upgrade_callback_closes_the_account_after_the_alloc(void **state)
{
    fixture_t *f = *state;
    capmem_cap_t acc = open_account(f, f->root, 4u << 20, 8192, CAPMEM_RAM_EXPANDING, "exp");
    fill_records(f, acc);
    const capmem_ram_info_t root0 = ram_info(f->arena, f->root);
    actor_t x = {.on = CAPMEM_EVENT_UPGRADE, .action = ACT_RAM_CLOSE, .target = acc, .probe = acc};
    assert_ok(capmem_arena_set_event_handler(f->arena, act, &x));
    capmem_cap_t ds = CAPMEM_CAP_NULL;
    const capmem_ram_info_t before = ram_info(f->arena, acc);
    /* The allocation completes (upgrade included) before the callback runs. */
    assert_ok(capmem_ram_alloc(f->arena, acc, 4096, &ds));
    assert_int_equal(x.fired, 1);
    assert_int_equal(x.result, CAPMEM_OK);
    /* The callback saw the state after the call: the new dataspace charged. */
    assert_int_equal(x.used_seen, before.used + 4096);
    /* Then it closed the account: everything went back to the root. */
    capmem_ram_info_t gone;
    assert_err(capmem_ram_info(f->arena, acc, &gone), CAPMEM_E_INVALID_CAP);
    assert_err(capmem_ds_free(f->arena, ds), CAPMEM_E_INVALID_CAP);
    const capmem_ram_info_t root1 = ram_info(f->arena, f->root);
    assert_int_equal(root1.quota, root0.quota + before.quota + before.donation);
    assert_ok(capmem_arena_set_event_handler(f->arena, NULL, NULL));
    CHECK_INVARIANTS(f->arena);
}

static void test_machine_upgrade_callback_revokes_the_root(void **state)
{
    fixture_t *f = *state;
    capmem_cap_t acc = open_account(f, f->root, 4u << 20, 8192, CAPMEM_RAM_EXPANDING, "exp");
    capmem_cap_t sub = open_account(f, acc, 1u << 20, 8192, 0, "sub");
    fill_records(f, acc);
    actor_t x = {.on = CAPMEM_EVENT_UPGRADE, .action = ACT_REVOKE, .target = f->root};
    assert_ok(capmem_arena_set_event_handler(f->arena, act, &x));
    capmem_cap_t ds;
    assert_ok(capmem_ram_alloc(f->arena, acc, 4096, &ds));
    assert_int_equal(x.fired, 1);
    assert_int_equal(x.result, CAPMEM_OK);
    capmem_ram_info_t in;
    assert_err(capmem_ram_info(f->arena, acc, &in), CAPMEM_E_INVALID_CAP);
    assert_err(capmem_ram_info(f->arena, sub, &in), CAPMEM_E_INVALID_CAP);
    /* The root keeps every byte: its quota is the whole service again. */
    in = ram_info(f->arena, f->root);
    assert_int_equal(in.used, 0);
    assert_ok(capmem_arena_set_event_handler(f->arena, NULL, NULL));
    CHECK_INVARIANTS(f->arena);
}

static void test_machine_close_callbacks_may_close_the_same_account_or_its_parent(void **state)
{
    fixture_t *f = *state;
    const capmem_event_kind_t kinds[] = {CAPMEM_EVENT_CAP_DELETE, CAPMEM_EVENT_SESSION_CLOSE};
    for (size_t k = 0; k < 2; k++) {
        for (int target = 0; target < 3; target++) {
            capmem_cap_t mid = open_account(f, f->root, 2u << 20, 8192, 0, "mid");
            capmem_cap_t leaf = open_account(f, mid, 1u << 20, 8192, 0, "leaf");
            capmem_cap_t ds;
            assert_ok(capmem_ram_alloc(f->arena, leaf, 8192, &ds));
            /* Close leaf; its events close leaf again, then mid, or revoke the root. */
            actor_t x = {.on = kinds[k]};
            x.action = target == 2 ? ACT_REVOKE : ACT_RAM_CLOSE;
            x.target = target == 0 ? leaf : target == 1 ? mid : f->root;
            assert_ok(capmem_arena_set_event_handler(f->arena, act, &x));
            assert_ok(capmem_ram_close(f->arena, leaf));
            assert_int_equal(x.fired, 1);
            /* Closing what is already gone is a clean error, not an abort. */
            assert_int_equal(x.result, target == 0 ? CAPMEM_E_INVALID_CAP : CAPMEM_OK);
            assert_ok(capmem_arena_set_event_handler(f->arena, NULL, NULL));
            CHECK_INVARIANTS(f->arena);
            if (target == 0) {
                assert_ok(capmem_ram_close(f->arena, mid));
            }
            capmem_ram_info_t in;
            assert_err(capmem_ram_info(f->arena, mid, &in), CAPMEM_E_INVALID_CAP);
            CHECK_INVARIANTS(f->arena);
        }
    }
}

static void test_machine_attach_upgrade_callback_closes_the_map(void **state)
{
    fixture_t *f = *state;
    for (int close_client = 0; close_client < 2; close_client++) {
        capmem_cap_t client = open_account(f, f->root, 8u << 20, 16384, 0, "client");
        capmem_rm_open_attr_t ra = CAPMEM_RM_OPEN_ATTR_INIT;
        ra.size = 1u << 20;
        ra.donation = 4096;
        ra.flags = CAPMEM_RM_EXPANDING;
        capmem_cap_t rm;
        assert_ok(capmem_rm_open(f->arena, client, &ra, &rm));
        capmem_cap_t ds;
        assert_ok(capmem_ram_alloc(f->arena, f->root, 4096, &ds));
        /* The callback closes the map, or the client account that pays for it. */
        actor_t x = {.on = CAPMEM_EVENT_UPGRADE};
        x.action = close_client ? ACT_RAM_CLOSE : ACT_RM_CLOSE;
        x.target = close_client ? client : rm;
        capmem_rm_attach_attr_t aa = CAPMEM_RM_ATTACH_ATTR_INIT;
        uint64_t addr = 0;
        unsigned attached = 0;
        assert_ok(capmem_arena_set_event_handler(f->arena, act, &x));
        /* Attach page after page until the map's records run out and it upgrades. */
        while (x.fired == 0) {
            aa.at = (uint64_t)attached * 4096;
            assert_ok(capmem_rm_attach(f->arena, rm, ds, &aa, &addr));
            assert_int_equal(addr, aa.at);
            attached++;
            assert_true(attached < 256);
        }
        assert_int_equal(x.result, CAPMEM_OK);
        capmem_rm_info_t ri;
        assert_err(capmem_rm_info(f->arena, rm, &ri), CAPMEM_E_INVALID_CAP);
        assert_ok(capmem_arena_set_event_handler(f->arena, NULL, NULL));
        CHECK_INVARIANTS(f->arena);
        /* The dataspace is attached nowhere now, and frees cleanly. */
        assert_ok(capmem_ds_free(f->arena, ds));
        if (!close_client) {
            assert_ok(capmem_ram_close(f->arena, client));
        }
        CHECK_INVARIANTS(f->arena);
    }
}

static void test_machine_alias_upgrade_callback_closes_lender_or_payer(void **state)
{
    fixture_t *f = *state;
    for (int which = 0; which < 2; which++) {
        capmem_cap_t lender = open_account(f, f->root, 2u << 20, 8192, 0, "lender");
        capmem_cap_t payer =
            open_account(f, f->root, 2u << 20, 8192, CAPMEM_RAM_EXPANDING, "payer");
        capmem_cap_t ds;
        assert_ok(capmem_ram_alloc(f->arena, lender, 64 * 1024, &ds));
        fill_records(f, payer);
        actor_t x = {.on = CAPMEM_EVENT_UPGRADE, .action = ACT_RAM_CLOSE};
        x.target = which == 0 ? lender : payer;
        assert_ok(capmem_arena_set_event_handler(f->arena, act, &x));
        capmem_alias_attr_t al = CAPMEM_ALIAS_ATTR_INIT;
        al.lifetime = which == 0 ? CAPMEM_ALIAS_FIRST_CLASS : CAPMEM_ALIAS_DEPENDENT;
        al.size = 4096;
        capmem_cap_t alias = CAPMEM_CAP_NULL;
        assert_ok(capmem_ds_alias(f->arena, payer, ds, &al, &alias));
        assert_int_equal(x.fired, 1);
        assert_int_equal(x.result, CAPMEM_OK);
        capmem_ds_info_t di;
        if (which == 0) {
            /* The lender is gone; the first-class alias keeps its page alive. */
            assert_ok(capmem_ds_info(f->arena, alias, &di));
            assert_int_equal(di.size, 4096);
            CHECK_INVARIANTS(f->arena);
            assert_ok(capmem_ram_close(f->arena, payer));
        } else {
            /* The payer is gone and its dependent alias with it. */
            assert_err(capmem_ds_info(f->arena, alias, &di), CAPMEM_E_INVALID_CAP);
            CHECK_INVARIANTS(f->arena);
            assert_ok(capmem_ram_close(f->arena, lender));
        }
        assert_ok(capmem_arena_set_event_handler(f->arena, NULL, NULL));
        CHECK_INVARIANTS(f->arena);
    }
}

/* ---- order and timing ------------------------------------------------------ */

typedef struct order_log {
    int n;
    capmem_event_kind_t kind[32];
    int depth; /* nesting of the callback when each arrived */
    int max_depth;
    capmem_cap_t open_from; /* open a child from inside the first DONATE */
    capmem_cap_t opened;
} order_log_t;

static void log_order(capmem_arena_t *a, const capmem_event_t *ev, void *ctx)
{
    order_log_t *l = ctx;
    l->depth++;
    if (l->depth > l->max_depth) {
        l->max_depth = l->depth;
    }
    if (l->n < 32) {
        l->kind[l->n] = ev->kind;
    }
    l->n++;
    if (ev->kind == CAPMEM_EVENT_DONATE && l->open_from != CAPMEM_CAP_NULL) {
        capmem_cap_t from = l->open_from;
        l->open_from = CAPMEM_CAP_NULL;
        capmem_ram_open_attr_t at = CAPMEM_RAM_OPEN_ATTR_INIT;
        at.quota = 4096;
        at.donation = 8192;
        assert_ok(capmem_ram_open(a, from, &at, &l->opened));
        /* The nested open's DONATE is not delivered inside this callback. */
        assert_int_equal(l->n, 1);
    }
    l->depth--;
}

static void test_machine_events_raised_by_a_callback_follow_it_in_order(void **state)
{
    fixture_t *f = *state;
    order_log_t l = {.open_from = f->root};
    assert_ok(capmem_arena_set_event_handler(f->arena, log_order, &l));
    capmem_cap_t acc = open_account(f, f->root, 1u << 20, 8192, 0, "first");
    assert_int_equal(l.n, 2);
    assert_int_equal(l.kind[0], CAPMEM_EVENT_DONATE);
    assert_int_equal(l.kind[1], CAPMEM_EVENT_DONATE);
    assert_int_equal(l.max_depth, 1); /* delivered one after the other, never nested */
    assert_int_not_equal(l.opened, CAPMEM_CAP_NULL);
    /* A close raises its deletes and the close, all after the call. */
    l.n = 0;
    assert_ok(capmem_ram_close(f->arena, l.opened));
    assert_true(l.n >= 2);
    assert_ok(capmem_ram_close(f->arena, acc));
    assert_ok(capmem_arena_set_event_handler(f->arena, NULL, NULL));
    CHECK_INVARIANTS(f->arena);
}

static void test_machine_failed_call_raises_no_event(void **state)
{
    fixture_t *f = *state;
    actor_t x = {.on = CAPMEM_EVENT_LOST};
    assert_ok(capmem_arena_set_event_handler(f->arena, act, &x));
    capmem_cap_t acc = open_account(f, f->root, 4096, 8192, 0, "small");
    x.events = 0;
    capmem_cap_t ds;
    assert_err(capmem_ram_alloc(f->arena, acc, 8192, &ds), CAPMEM_E_OUT_OF_RAM);
    assert_err(capmem_ram_transfer(f->arena, acc, f->root, 1u << 20), CAPMEM_E_OUT_OF_RAM);
    assert_int_equal(x.events, 0);
    assert_ok(capmem_arena_set_event_handler(f->arena, NULL, NULL));
    CHECK_INVARIANTS(f->arena);
}

static void count_lost(capmem_arena_t *a, const capmem_event_t *ev, void *ctx)
{
    (void)a;
    uint64_t *c = ctx;
    if (ev->kind == CAPMEM_EVENT_LOST) {
        c[1] += ev->a;
        assert_non_null(strstr(ev->message, "lost"));
    } else {
        c[0]++;
    }
}

static void test_machine_events_beyond_the_queue_are_counted_as_lost(void **state)
{
    fixture_t *f = *state;
    const capmem_user_type_t t = {.name = "node"};
    capmem_cap_t top;
    assert_ok(capmem_cap_create_user(f->arena, &t, NULL, CAPMEM_RIGHTS_ALL, &top));
    capmem_cap_t c = top;
    const unsigned n = 3000;
    for (unsigned i = 0; i < n; i++) {
        assert_ok(capmem_cap_mint(f->arena, c, CAPMEM_RIGHTS_ALL, &c));
    }
    uint64_t counts[2] = {0, 0};
    assert_ok(capmem_arena_set_event_handler(f->arena, count_lost, counts));
    /* n deletes and one revoke event: 1024 kept, the rest counted. */
    assert_ok(capmem_cap_revoke(f->arena, top));
    assert_int_equal(counts[0], 1024);
    assert_int_equal(counts[1], n + 1 - 1024);
    /* The queue works normally afterwards. */
    counts[0] = counts[1] = 0;
    assert_ok(capmem_cap_delete(f->arena, top));
    assert_int_equal(counts[0], 1);
    assert_int_equal(counts[1], 0);
    assert_ok(capmem_arena_set_event_handler(f->arena, NULL, NULL));
    CHECK_INVARIANTS(f->arena);
}

/* ---- the event queue ------------------------------------------------------------- */

/*
 * The queue is made with the first handler. When the host cannot give it,
 * the handler is not installed and nothing else changed: the next call
 * raises no callback, and a later installation works.
 */
static void test_machine_event_queue_host_failure_installs_nothing(void **state)
{
    fixture_t *f = *state;
    actor_t x = {.on = CAPMEM_EVENT_LOST};
    capmem__inject_fail(CAPMEM__HOST_MALLOC, 1);
    assert_err(capmem_arena_set_event_handler(f->arena, act, &x), CAPMEM_E_HOST_NOMEM);
    capmem__inject_reset();
    const capmem_error_info_t *d = capmem_last_error();
    assert_string_equal(d->function, "capmem_arena_set_event_handler");
    assert_non_null(strstr(d->message, "event queue"));
    capmem_cap_t acc = open_account(f, f->root, 1u << 20, 8192, 0, "unheard");
    assert_int_equal(x.events, 0);
    /* Installing it now works, and the queue is there from then on. */
    assert_ok(capmem_arena_set_event_handler(f->arena, act, &x));
    assert_ok(capmem_ram_close(f->arena, acc));
    int closes = 0;
    for (int i = 0; i < x.events && i < 64; i++) {
        closes += x.kinds[i] == CAPMEM_EVENT_SESSION_CLOSE;
    }
    assert_int_equal(closes, 1);
    /* Removing and reinstalling takes no new queue. */
    assert_ok(capmem_arena_set_event_handler(f->arena, NULL, NULL));
    capmem__inject_fail(CAPMEM__HOST_MALLOC, 1);
    assert_ok(capmem_arena_set_event_handler(f->arena, act, &x));
    assert_int_equal(capmem__inject_count(CAPMEM__HOST_MALLOC), 0);
    capmem__inject_reset();
    assert_ok(capmem_arena_set_event_handler(f->arena, NULL, NULL));
    assert_err(capmem_arena_set_event_handler(NULL, act, &x), CAPMEM_E_INVALID_ARGS);
    CHECK_INVARIANTS(f->arena);
}

/*
 * Events already queued go to the handler installed when they are
 * delivered: a callback that removes the handler drops the rest of its
 * call's events.
 */
typedef struct quitter {
    int seen;
    capmem_event_kind_t first;
} quitter_t;

static void quit_after_first(capmem_arena_t *a, const capmem_event_t *ev, void *ctx)
{
    quitter_t *q = ctx;
    if (q->seen++ == 0) {
        q->first = ev->kind;
        assert_ok(capmem_arena_set_event_handler(a, NULL, NULL));
    }
}

static void test_machine_handler_removed_by_a_callback_drops_the_queued_events(void **state)
{
    fixture_t *f = *state;
    const capmem_user_type_t t = {.name = "node"};
    const size_t caps = capmem_cap_count(f->arena);
    capmem_cap_t top;
    capmem_cap_t c;
    assert_ok(capmem_cap_create_user(f->arena, &t, NULL, CAPMEM_RIGHTS_ALL, &top));
    assert_ok(capmem_cap_mint(f->arena, top, CAPMEM_RIGHTS_ALL, &c));
    assert_ok(capmem_cap_mint(f->arena, c, CAPMEM_RIGHTS_ALL, &c));
    quitter_t q = {0};
    assert_ok(capmem_arena_set_event_handler(f->arena, quit_after_first, &q));
    /* Two deletes and a revoke are queued; only the first is delivered. */
    assert_ok(capmem_cap_revoke(f->arena, top));
    assert_int_equal(q.seen, 1);
    assert_int_equal(q.first, CAPMEM_EVENT_CAP_DELETE);
    /* Nothing more arrives later either. */
    assert_ok(capmem_cap_delete(f->arena, top));
    assert_int_equal(q.seen, 1);
    assert_int_equal(capmem_cap_count(f->arena), caps);
    assert_string_equal(capmem_event_kind_name((capmem_event_kind_t)99), "unknown");
    CHECK_INVARIANTS(f->arena);
}

/* ---- arena tags -------------------------------------------------------------------- */

/*
 * Handles carry a 10-bit arena tag, so at most 1023 arenas live at once in
 * a process; the next creation is refused with OUT_OF_CAPS, leaks nothing,
 * and works again once an arena is gone.
 */
static void test_machine_arena_count_is_bounded_by_the_handle_tag(void **state)
{
    fixture_t *f = *state;
    enum { MAX_ARENAS = 1023 };
    capmem_arena_t **all = calloc(MAX_ARENAS, sizeof(*all));
    assert_non_null(all);
    capmem_arena_attr_t at = CAPMEM_ARENA_ATTR_INIT;
    at.ram_size = 4096;
    at.cap_slots = 16;
    at.flags = CAPMEM_ARENA_FORCE_ANON; /* no file descriptor per arena */
    const int fds = test_open_fds();
    size_t n = 0;
    capmem_err_t err = CAPMEM_OK;
    while (n < MAX_ARENAS && (err = capmem_arena_create(&at, &all[n])) == CAPMEM_OK) {
        n++;
    }
    /* The fixture's arena is alive too. */
    assert_int_equal(n, MAX_ARENAS - 1);
    assert_int_equal(err, CAPMEM_E_OUT_OF_CAPS);
    assert_null(all[n]);
    assert_non_null(strstr(capmem_last_error()->message, "1023 arenas are alive"));
    assert_string_equal(capmem_last_error()->function, "capmem_arena_create");
    assert_int_equal(test_open_fds(), fds);
    /* Every arena works, and handles of one are refused by another. */
    const capmem_user_type_t t = {.name = "tagged"};
    capmem_cap_t h0;
    capmem_cap_t hl;
    assert_ok(capmem_cap_create_user(all[0], &t, NULL, CAPMEM_RIGHTS_ALL, &h0));
    assert_ok(capmem_cap_create_user(all[n - 1], &t, NULL, CAPMEM_RIGHTS_ALL, &hl));
    capmem_cap_info_t ci;
    assert_err(capmem_cap_identify(all[0], hl, &ci), CAPMEM_E_INVALID_CAP);
    assert_err(capmem_cap_identify(all[n - 1], h0, &ci), CAPMEM_E_INVALID_CAP);
    assert_non_null(strstr(capmem_last_error()->message, "another arena"));
    /* One gone, one more fits. */
    capmem_arena_destroy(all[n / 2]);
    assert_ok(capmem_arena_create(&at, &all[n / 2]));
    for (size_t i = 0; i < n; i++) {
        CHECK_INVARIANTS(all[i]);
        capmem_arena_destroy(all[i]);
    }
    free(all);
    CHECK_INVARIANTS(f->arena);
}

/* ---- user destroy hooks ------------------------------------------------------ */

typedef struct hook_ctx {
    capmem_arena_t *arena;
    int ran;
    capmem_err_t inner;
    capmem_cap_t made;
} hook_ctx_t;

static void hook_calls_library(void *object, void *ctx)
{
    (void)object;
    hook_ctx_t *h = ctx;
    h->ran++;
    static const capmem_user_type_t plain = {.name = "plain"};
    h->inner = capmem_cap_create_user(h->arena, &plain, NULL, CAPMEM_RIGHTS_ALL, &h->made);
}

static void test_machine_user_destroy_hook_runs_after_the_call_and_may_call_in(void **state)
{
    fixture_t *f = *state;
    hook_ctx_t h = {.arena = f->arena};
    const capmem_user_type_t t = {.name = "widget", .destroy = hook_calls_library, .ctx = &h};
    capmem_cap_t w;
    assert_ok(capmem_cap_create_user(f->arena, &t, NULL, CAPMEM_RIGHTS_ALL, &w));
    const size_t before = capmem_cap_count(f->arena);
    assert_ok(capmem_cap_delete(f->arena, w));
    assert_int_equal(h.ran, 1);
    assert_int_equal(h.inner, CAPMEM_OK);
    /* The hook's own object exists: one deleted, one created. */
    assert_int_equal(capmem_cap_count(f->arena), before);
    capmem_cap_info_t ci;
    assert_ok(capmem_cap_identify(f->arena, h.made, &ci));
    assert_ok(capmem_cap_delete(f->arena, h.made));
    CHECK_INVARIANTS(f->arena);
}

/* ---- policy hooks may not call in ---------------------------------------------- */

typedef struct nosy {
    capmem_arena_t *arena;
    capmem_cap_t ut;
    capmem_err_t seen;
    uint64_t next;
    uint64_t size;
} nosy_t;

static capmem_err_t nosy_alloc(void *self, uint64_t size, uint64_t align, uint64_t *offset)
{
    nosy_t *n = self;
    capmem_untyped_info_t ui;
    n->seen = capmem_untyped_info(n->arena, n->ut, &ui);
    uint64_t at = (n->next + align - 1) & ~(align - 1);
    if (at + size > n->size) {
        return CAPMEM_E_NOT_ENOUGH_MEMORY;
    }
    *offset = at;
    n->next = at + size;
    return CAPMEM_OK;
}

static capmem_err_t nosy_alloc_at(void *self, uint64_t offset, uint64_t size)
{
    (void)self;
    (void)offset;
    (void)size;
    return CAPMEM_E_NOT_ENOUGH_MEMORY;
}

static capmem_err_t nosy_free(void *self, uint64_t offset, uint64_t size)
{
    (void)self;
    (void)offset;
    (void)size;
    return CAPMEM_OK;
}

static uint64_t nosy_avail(const void *self)
{
    const nosy_t *n = self;
    return n->size - n->next;
}

static void nosy_reset(void *self)
{
    ((nosy_t *)self)->next = 0;
}

static const capmem_alloc_ops_t nosy_ops = {
    .name = "nosy",
    .alloc = nosy_alloc,
    .alloc_at = nosy_alloc_at,
    .free = nosy_free,
    .avail = nosy_avail,
    .largest = nosy_avail,
    .reset = nosy_reset,
};

static void test_machine_policy_hook_calling_in_is_refused_as_reentrant(void **state)
{
    fixture_t *f = *state;
    capmem_untyped_info_t boot[8];
    size_t nb = 0;
    capmem_arena_t *a = NULL;
    capmem_arena_attr_t at = CAPMEM_ARENA_ATTR_INIT;
    at.ram_size = 1u << 20;
    assert_ok(capmem_arena_create(&at, &a));
    assert_ok(capmem_untyped_boot(a, boot, 8, &nb));
    assert_true(nb >= 1);
    const uint64_t size = 1ull << boot[0].size_bits;
    nosy_t n = {.arena = a, .ut = boot[0].cap, .size = size};
    capmem_alloc_t *pol = NULL;
    assert_ok(capmem_alloc_create_custom(&nosy_ops, &n, &pol));
    assert_ok(capmem_untyped_set_policy(a, boot[0].cap, CAPMEM_UNTYPED_WATERMARK, pol));
    capmem_retype_attr_t ra = CAPMEM_RETYPE_ATTR_INIT;
    capmem_cap_t frame;
    assert_ok(capmem_untyped_retype(a, boot[0].cap, &ra, &frame, 1));
    /* The hook's call was refused; the retype itself went through. */
    assert_int_equal(n.seen, CAPMEM_E_REENTRANT);
    capmem_object_info_t oi;
    assert_ok(capmem_object_info(a, frame, &oi));
    /* Outside a call the same query works. */
    capmem_untyped_info_t ui;
    assert_ok(capmem_untyped_info(a, boot[0].cap, &ui));
    CHECK_INVARIANTS(a);
    capmem_arena_destroy(a); /* the untyped owned the policy */
    (void)f;
}

typedef struct minting_visitor {
    capmem_arena_t *arena;
    capmem_cap_t src;
    capmem_err_t seen;
    int visits;
} minting_visitor_t;

static int mint_from_visitor(const capmem_cap_info_t *info, unsigned depth, void *ctx)
{
    (void)info;
    (void)depth;
    minting_visitor_t *v = ctx;
    capmem_cap_t out;
    v->seen = capmem_cap_mint(v->arena, v->src, CAPMEM_RIGHT_READ, &out);
    v->visits++;
    return 0;
}

static void test_machine_walk_visitor_calling_in_is_refused_as_reentrant(void **state)
{
    fixture_t *f = *state;
    const size_t before = capmem_cap_count(f->arena);
    minting_visitor_t v = {.arena = f->arena, .src = f->root};
    assert_ok(capmem_cap_walk(f->arena, f->root, mint_from_visitor, &v));
    assert_true(v.visits >= 1);
    assert_int_equal(v.seen, CAPMEM_E_REENTRANT);
    assert_non_null(strstr(capmem_last_error()->message, "middle of another call"));
    assert_string_equal(capmem_last_error()->function, "capmem_cap_mint");
    assert_int_equal(capmem_cap_count(f->arena), before);
    CHECK_INVARIANTS(f->arena);
}

/* ---- handles are bound to their arena --------------------------------------------- */

static void test_machine_handle_of_another_arena_is_refused(void **state)
{
    fixture_t *f = *state;
    capmem_arena_attr_t at = CAPMEM_ARENA_ATTR_INIT;
    at.ram_size = 32ull << 20;
    capmem_arena_t *b = NULL;
    capmem_cap_t broot;
    assert_ok(capmem_arena_create(&at, &b));
    assert_ok(capmem_ram_boot(b, NULL, &broot));
    /* The same sequence of calls in two arenas gives different handles. */
    assert_int_not_equal(broot, f->root);
    capmem_cap_t acc = open_account(f, f->root, 1u << 20, 8192, 0, "a");
    const capmem_ram_info_t r0 = ram_info(b, broot);
    capmem_cap_t ds;
    assert_err(capmem_ram_alloc(b, acc, 4096, &ds), CAPMEM_E_INVALID_CAP);
    assert_non_null(strstr(capmem_last_error()->message, "another arena"));
    assert_int_equal(capmem_last_error()->address, acc);
    assert_err(capmem_ram_alloc(b, f->root, 4096, &ds), CAPMEM_E_INVALID_CAP);
    capmem_cap_info_t ci;
    assert_err(capmem_cap_identify(b, acc, &ci), CAPMEM_E_INVALID_CAP);
    assert_err(capmem_cap_revoke(b, f->root), CAPMEM_E_INVALID_CAP);
    const capmem_ram_info_t r1 = ram_info(b, broot);
    assert_int_equal(r1.used, r0.used);
    assert_int_equal(r1.quota, r0.quota);
    CHECK_INVARIANTS(b);
    CHECK_INVARIANTS(f->arena);
    capmem_arena_destroy(b);
    /* Once b is gone, its handles are refused as of no live arena. */
    assert_err(capmem_cap_identify(f->arena, broot, &ci), CAPMEM_E_INVALID_CAP);
    assert_non_null(strstr(capmem_last_error()->message, "no live arena"));
    assert_ok(capmem_ram_close(f->arena, acc));
    CHECK_INVARIANTS(f->arena);
}

/* ---- fork --------------------------------------------------------------------- */

/*
 * How a forked child ends. exit writes the coverage counters (gcov) of what
 * the child ran, which _exit would drop. Under AddressSanitizer, though,
 * exit runs LeakSanitizer, which would report the parent's objects: the
 * child sees them but does not own them, and the pointers to them live in
 * the shared arena mapping, which LeakSanitizer does not scan. So
 * sanitizer builds _exit (Valgrind, which does scan it, is fine with exit).
 */
#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CHILD_EXIT_QUICK 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define CHILD_EXIT_QUICK 1
#endif

static _Noreturn void child_exit(int status)
{
#ifdef CHILD_EXIT_QUICK
    _exit(status);
#else
    exit(status);
#endif
}

static int visit_nothing(const capmem_cap_info_t *info, unsigned depth, void *ctx)
{
    (void)info;
    (void)depth;
    (void)ctx;
    return 0;
}

static int map_nothing(uint64_t phys, uint64_t size, bool used, void *ctx)
{
    (void)phys;
    (void)size;
    (void)used;
    (void)ctx;
    return 0;
}

static void ignore_event(capmem_arena_t *a, const capmem_event_t *ev, void *ctx)
{
    (void)a;
    (void)ev;
    (void)ctx;
}

/*
 * In a forked child, every call on the arena that enters it (the capability,
 * RAM-service, dataspace, device, event and checker calls) is refused with
 * UNSUPPORTED before it touches anything; the queries that need no lock
 * still answer. Returns how many calls did otherwise.
 */
static int child_calls_all_refused(capmem_arena_t *a, capmem_cap_t root, capmem_cap_t acc,
                                   capmem_cap_t ds, capmem_cap_t user,
                                   const capmem_user_type_t *type)
{
    int bad = 0;
#define REFUSED(call) bad += (call) != CAPMEM_E_UNSUPPORTED
    capmem_cap_t out = CAPMEM_CAP_NULL;
    void *obj = NULL;
    capmem_cap_info_t ci;
    capmem_ram_info_t ri;
    capmem_ds_info_t di;
    capmem_device_info_t dev;
    size_t ndev = 0;
    uint64_t off = 0;
    char byte = 0;
    char why[64];
    capmem_alias_attr_t alias = CAPMEM_ALIAS_ATTR_INIT;
    REFUSED(capmem_cap_create_user(a, type, NULL, CAPMEM_RIGHTS_ALL, &out));
    REFUSED(capmem_cap_user_object(a, user, type, 0, &obj));
    REFUSED(capmem_cap_mint(a, user, CAPMEM_RIGHT_READ, &out));
    REFUSED(capmem_cap_identify(a, user, &ci));
    REFUSED(capmem_cap_walk(a, CAPMEM_CAP_NULL, visit_nothing, NULL));
    REFUSED(capmem_cap_delete(a, user));
    REFUSED(capmem_cap_revoke(a, root));
    REFUSED(capmem_cap_check(a, why, sizeof(why)));
    REFUSED(capmem_ram_create(a, &user, 1, NULL, &out));
    REFUSED(capmem_ram_destroy(a, root));
    REFUSED(capmem_ram_open(a, root, NULL, &out));
    REFUSED(capmem_ram_close(a, acc));
    REFUSED(capmem_ram_transfer(a, root, acc, 4096));
    REFUSED(capmem_ram_transfer_caps(a, root, acc, 1));
    REFUSED(capmem_ram_upgrade(a, acc, root, 8192));
    REFUSED(capmem_ram_set_expanding(a, acc, true, 0));
    REFUSED(capmem_ram_info(a, acc, &ri));
    REFUSED(capmem_ram_alloc(a, acc, 4096, &out));
    REFUSED(capmem_ram_map(a, acc, map_nothing, NULL));
    REFUSED(capmem_ds_info(a, ds, &di));
    REFUSED(capmem_ds_read(a, ds, 0, &byte, 1));
    REFUSED(capmem_ds_write(a, ds, 0, &byte, 1));
    REFUSED(capmem_ds_alias(a, acc, ds, &alias, &out));
    REFUSED(capmem_ds_free(a, ds));
    REFUSED(capmem_check(a, why, sizeof(why)));
    REFUSED(capmem_arena_set_event_handler(a, ignore_event, NULL));
    REFUSED(capmem_arena_phys_to_offset(a, 0x1000000000ull, &off));
    REFUSED(capmem_arena_device_add(a, 0x1000000000ull, 4096, &dev));
    REFUSED(capmem_arena_device_remove(a, 1));
    REFUSED(capmem_arena_devices(a, NULL, 0, &ndev));
#undef REFUSED
    bad += strstr(capmem_last_error()->message, "forked child") == NULL;
    bad += out != CAPMEM_CAP_NULL || obj != NULL || ndev != 0;
    /* The lock-free queries answer; a RAM address needs no lock either. */
    bad += capmem_cap_count(a) != 0;
    bad += capmem_arena_ram_size(a) != 32ull << 20;
    bad += capmem_arena_phys_to_offset(a, capmem_arena_phys_base(a) + 4096, &off) != CAPMEM_OK ||
           off != 4096;
    return bad;
}

static void test_machine_forked_child_is_refused_and_parent_keeps_working(void **state)
{
    fixture_t *f = *state;
    capmem_cap_t acc = open_account(f, f->root, 1u << 20, 8192, 0, "parent's");
    capmem_cap_t ds;
    assert_ok(capmem_ram_alloc(f->arena, acc, 4096, &ds));
    static const capmem_user_type_t type = {.name = "parent's object"};
    capmem_cap_t user;
    assert_ok(capmem_cap_create_user(f->arena, &type, NULL, CAPMEM_RIGHTS_ALL, &user));
    const capmem_ram_info_t before = ram_info(f->arena, acc);
    const size_t caps_before = capmem_cap_count(f->arena);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        /* The child: every call is refused, and destroy touches nothing. */
        int bad = child_calls_all_refused(f->arena, f->root, acc, ds, user, &type);
        capmem_arena_destroy(f->arena);
        child_exit(bad);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    /* The parent sees nothing changed and goes on. */
    const capmem_ram_info_t after = ram_info(f->arena, acc);
    assert_memory_equal(&after, &before, sizeof(after));
    assert_int_equal(capmem_cap_count(f->arena), caps_before);
    void *obj = (void *)1;
    assert_ok(capmem_cap_user_object(f->arena, user, &type, 0, &obj));
    assert_null(obj);
    CHECK_INVARIANTS(f->arena);
    assert_ok(capmem_cap_delete(f->arena, user));
    assert_ok(capmem_ds_free(f->arena, ds));
    assert_ok(capmem_ram_close(f->arena, acc));
    CHECK_INVARIANTS(f->arena);
}

/* ---- destroying the arena from inside ------------------------------------------- */

static void test_machine_destroy_from_an_event_callback_waits_for_it(void **state)
{
    fixture_t *f = *state;
    actor_t x = {.on = CAPMEM_EVENT_DONATE, .action = ACT_DESTROY_ARENA};
    assert_ok(capmem_arena_set_event_handler(f->arena, act, &x));
    capmem_ram_open_attr_t at = CAPMEM_RAM_OPEN_ATTR_INIT;
    at.quota = 4096;
    capmem_cap_t acc;
    /* The open succeeds; the arena is gone when the call returns (Valgrind: no leak). */
    assert_ok(capmem_ram_open(f->arena, f->root, &at, &acc));
    assert_int_equal(x.fired, 1);
    f->arena = NULL;
}

/*
 * Destroying an arena raises no events, even with a handler installed and
 * objects alive; the destroy hooks of remaining user objects still run,
 * once each, after the teardown. A hole in the capability table (a deleted
 * capability) does not disturb the teardown.
 */
static void count_hook(void *object, void *ctx)
{
    (void)object;
    (*(int *)ctx)++;
}

static void test_machine_destroy_raises_no_events_and_runs_user_hooks(void **state)
{
    fixture_t *f = *state;
    int hooks = 0;
    const capmem_user_type_t t = {.name = "survivor", .destroy = count_hook, .ctx = &hooks};
    capmem_cap_t u[3];
    for (int i = 0; i < 3; i++) {
        assert_ok(capmem_cap_create_user(f->arena, &t, NULL, CAPMEM_RIGHTS_ALL, &u[i]));
    }
    capmem_cap_t acc = open_account(f, f->root, 1u << 20, 8192, 0, "alive at the end");
    capmem_cap_t ds;
    assert_ok(capmem_ram_alloc(f->arena, acc, 4096, &ds));
    /* A copy of u[2] in a slot below u[2]'s (u[0]'s, freed), then a hole (u[1]'s). */
    assert_ok(capmem_cap_delete(f->arena, u[0]));
    capmem_cap_t copy;
    assert_ok(capmem_cap_mint(f->arena, u[2], CAPMEM_RIGHT_READ, &copy));
    assert_int_equal(capmem__cap_index(copy), capmem__cap_index(u[0]));
    assert_true(capmem__cap_index(copy) < capmem__cap_index(u[2]));
    assert_ok(capmem_cap_delete(f->arena, u[1]));
    assert_int_equal(hooks, 2);
    actor_t x = {.on = CAPMEM_EVENT_LOST};
    assert_ok(capmem_arena_set_event_handler(f->arena, act, &x));
    CHECK_INVARIANTS(f->arena);
    capmem_arena_destroy(f->arena);
    f->arena = NULL;
    assert_int_equal(x.events, 0);
    assert_int_equal(hooks, 3); /* u[2]'s, once, though its copy went first */
}

static capmem_rm_fault_result_t destroying_pager(capmem_arena_t *a, const capmem_rm_fault_t *fault,
                                                 void *ctx)
{
    (void)fault;
    int *ran = ctx;
    (*ran)++;
    capmem_arena_destroy(a);
    return CAPMEM_RM_FAULT_UNRESOLVED;
}

static void test_machine_destroy_from_a_fault_handler_waits_for_the_access(void **state)
{
    fixture_t *f = *state;
    capmem_rm_open_attr_t ra = CAPMEM_RM_OPEN_ATTR_INIT;
    ra.size = 1u << 20;
    capmem_cap_t rm;
    assert_ok(capmem_rm_open(f->arena, f->root, &ra, &rm));
    int ran = 0;
    assert_ok(capmem_rm_set_fault_handler(f->arena, rm, destroying_pager, &ran));
    uint8_t b = 0;
    assert_err(capmem_rm_read(f->arena, rm, 0, &b, 1), CAPMEM_E_UNRESOLVED_FAULT);
    assert_int_equal(ran, 1);
    f->arena = NULL;
}

/* ---- a fault handler's failure is the root cause ---------------------------------- */

typedef struct failing_pager {
    capmem_cap_t ds;
} failing_pager_t;

static capmem_rm_fault_result_t failing_pager_fn(capmem_arena_t *a, const capmem_rm_fault_t *fault,
                                                 void *ctx)
{
    failing_pager_t *p = ctx;
    capmem_rm_attach_attr_t aa = CAPMEM_RM_ATTACH_ATTR_INIT;
    aa.at = fault->address & ~(uint64_t)4095;
    uint64_t addr;
    /* The map's records are used up: the attach fails with OUT_OF_METADATA. */
    if (capmem_rm_attach(a, fault->rm, p->ds, &aa, &addr) != CAPMEM_OK) {
        return CAPMEM_RM_FAULT_UNRESOLVED;
    }
    return CAPMEM_RM_FAULT_RESOLVED;
}

static void test_machine_unresolved_fault_carries_the_handlers_failure(void **state)
{
    fixture_t *f = *state;
    capmem_rm_open_attr_t ra = CAPMEM_RM_OPEN_ATTR_INIT;
    ra.size = 1u << 20;
    ra.donation = 4096; /* room for the map's own records only, and a few regions */
    capmem_cap_t rm;
    assert_ok(capmem_rm_open(f->arena, f->root, &ra, &rm));
    failing_pager_t p;
    assert_ok(capmem_ram_alloc(f->arena, f->root, 4096, &p.ds));
    capmem_rm_attach_attr_t aa = CAPMEM_RM_ATTACH_ATTR_INIT;
    uint64_t addr;
    unsigned n = 0;
    for (;;) {
        aa.at = (uint64_t)n * 4096;
        capmem_err_t e = capmem_rm_attach(f->arena, rm, p.ds, &aa, &addr);
        if (e != CAPMEM_OK) {
            assert_int_equal(e, CAPMEM_E_OUT_OF_METADATA);
            break;
        }
        n++;
    }
    assert_ok(capmem_rm_set_fault_handler(f->arena, rm, failing_pager_fn, &p));
    uint8_t b = 0;
    const uint64_t at = (uint64_t)(n + 1) * 4096 + 12;
    assert_err(capmem_rm_read(f->arena, rm, at, &b, 1), CAPMEM_E_UNRESOLVED_FAULT);
    const capmem_error_info_t *e = capmem_last_error();
    assert_string_equal(e->function, "capmem_rm_read");
    assert_int_equal(e->address, at);
    assert_non_null(strstr(e->message, "capmem_rm_attach failed: OUT_OF_METADATA"));
    assert_non_null(strstr(e->message, "not resolved"));
    assert_int_equal(e->needed, CAPMEM_RAM_RECORD_SIZE);
    CHECK_INVARIANTS(f->arena);
    assert_ok(capmem_rm_close(f->arena, rm));
    assert_ok(capmem_ds_free(f->arena, p.ds));
    CHECK_INVARIANTS(f->arena);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(
            test_machine_upgrade_callback_closes_the_account_after_the_alloc, setup, teardown),
        cmocka_unit_test_setup_teardown(test_machine_upgrade_callback_revokes_the_root, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            test_machine_close_callbacks_may_close_the_same_account_or_its_parent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_machine_attach_upgrade_callback_closes_the_map, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_machine_alias_upgrade_callback_closes_lender_or_payer,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_machine_events_raised_by_a_callback_follow_it_in_order,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_machine_failed_call_raises_no_event, setup, teardown),
        cmocka_unit_test_setup_teardown(test_machine_events_beyond_the_queue_are_counted_as_lost,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_machine_user_destroy_hook_runs_after_the_call_and_may_call_in, setup, teardown),
        cmocka_unit_test_setup_teardown(test_machine_policy_hook_calling_in_is_refused_as_reentrant,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_machine_walk_visitor_calling_in_is_refused_as_reentrant, setup, teardown),
        cmocka_unit_test_setup_teardown(test_machine_handle_of_another_arena_is_refused, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            test_machine_forked_child_is_refused_and_parent_keeps_working, setup, teardown),
        cmocka_unit_test_setup_teardown(test_machine_destroy_from_an_event_callback_waits_for_it,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_machine_destroy_from_a_fault_handler_waits_for_the_access, setup, teardown),
        cmocka_unit_test_setup_teardown(test_machine_unresolved_fault_carries_the_handlers_failure,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_machine_event_queue_host_failure_installs_nothing,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_machine_handler_removed_by_a_callback_drops_the_queued_events, setup, teardown),
        cmocka_unit_test_setup_teardown(test_machine_arena_count_is_bounded_by_the_handle_tag,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_machine_destroy_raises_no_events_and_runs_user_hooks,
                                        setup, teardown),
    };
    return cmocka_run_group_tests_name("machine", tests, NULL, NULL);
}
