/* SPDX-License-Identifier: MIT */
/* Layer 9: the event stream and its subscribers. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "json.h"
#include "support.h"

#define PAGE 4096u

TEST_WORLD_FIXTURE(16ull << 20, 0);

/* ---- a recorder of events ------------------------------------------------------ */

#define LOG_MAX 256

typedef struct log {
    int n;
    capmem_event_t ev[LOG_MAX];
    char msg[LOG_MAX][160];
    /* Optional action on the first event of kind `on`. */
    capmem_event_kind_t on;
    capmem_subscription_t unsub; /* unsubscribe this one */
    capmem_subscription_t *sub_out;
    unsigned sub_mask;
    struct log *sub_log;
    int fired;
    int order_tag; /* written into a shared order trace */
    int *order;
    int *norder;
} log_t;

static void record(capmem_arena_t *a, const capmem_event_t *ev, void *ctx);

static void record(capmem_arena_t *a, const capmem_event_t *ev, void *ctx)
{
    log_t *l = ctx;
    if (l->n < LOG_MAX) {
        l->ev[l->n] = *ev;
        snprintf(l->msg[l->n], sizeof(l->msg[0]), "%s", ev->message);
        l->ev[l->n].message = l->msg[l->n];
    }
    l->n++;
    if (l->order != NULL) {
        l->order[(*l->norder)++] = l->order_tag;
    }
    if (l->on != 0 && ev->kind == l->on && l->fired == 0) {
        l->fired = 1;
        if (l->unsub != 0) {
            assert_ok(capmem_unsubscribe(a, l->unsub));
        }
        if (l->sub_out != NULL) {
            assert_ok(capmem_subscribe(a, l->sub_mask, record, l->sub_log, l->sub_out));
        }
    }
}

/* The i-th event of kind k in the log, or NULL. */
static const capmem_event_t *find(const log_t *l, capmem_event_kind_t k, int i)
{
    for (int j = 0; j < l->n && j < LOG_MAX; j++) {
        if (l->ev[j].kind == k && i-- == 0) {
            return &l->ev[j];
        }
    }
    return NULL;
}

static int count(const log_t *l, capmem_event_kind_t k)
{
    int c = 0;
    for (int j = 0; j < l->n && j < LOG_MAX; j++) {
        c += l->ev[j].kind == k;
    }
    return c;
}

static capmem_cap_t open_account(fixture_t *f, capmem_cap_t parent, uint64_t quota,
                                 const char *label)
{
    capmem_ram_open_attr_t at = CAPMEM_RAM_OPEN_ATTR_INIT;
    at.quota = quota;
    at.donation = 16384;
    at.label = label;
    at.caps = 64;
    capmem_cap_t c = CAPMEM_CAP_NULL;
    assert_ok(capmem_ram_open(f->arena, parent, &at, &c));
    return c;
}

/* ---- each kind is raised by its operation ---------------------------------------- */

static void test_inspect_accounts_raise_open_transfer_upgrade_close(void **state)
{
    fixture_t *f = *state;
    static log_t l;
    memset(&l, 0, sizeof(l));
    capmem_subscription_t s;
    assert_ok(capmem_subscribe(f->arena, CAPMEM_EVENT_ALL, record, &l, &s));
    assert_int_not_equal(s, 0);
    capmem_cap_t acc = open_account(f, f->root, 1u << 20, "child");
    const capmem_event_t *e = find(&l, CAPMEM_EVENT_DONATE, 0);
    assert_non_null(e);
    assert_int_equal(e->cap, acc);
    assert_int_equal(e->other, f->root);
    assert_int_equal(e->a, 16384);
    assert_int_equal(e->b, 1u << 20);
    assert_non_null(strstr(e->message, "child"));

    assert_ok(capmem_ram_transfer(f->arena, f->root, acc, 8192));
    e = find(&l, CAPMEM_EVENT_TRANSFER, 0);
    assert_non_null(e);
    assert_int_equal(e->cap, f->root);
    assert_int_equal(e->other, acc);
    assert_int_equal(e->a, 8192);

    assert_ok(capmem_ram_transfer_caps(f->arena, acc, f->root, 3));
    e = find(&l, CAPMEM_EVENT_TRANSFER_CAPS, 0);
    assert_non_null(e);
    assert_int_equal(e->cap, acc);
    assert_int_equal(e->other, f->root);
    assert_int_equal(e->a, 3);

    capmem_ram_info_t before;
    assert_ok(capmem_ram_info(f->arena, acc, &before));
    assert_ok(capmem_ram_upgrade(f->arena, acc, f->root, 8192));
    e = find(&l, CAPMEM_EVENT_UPGRADE, 0);
    assert_non_null(e);
    assert_int_equal(e->cap, acc);
    assert_int_equal(e->a, 8192);
    assert_int_equal(e->b, before.donation + 8192);

    capmem_ram_info_t in;
    assert_ok(capmem_ram_info(f->arena, acc, &in));
    assert_ok(capmem_ram_close(f->arena, acc));
    e = find(&l, CAPMEM_EVENT_SESSION_CLOSE, 0);
    assert_non_null(e);
    assert_int_equal(e->cap, acc);
    assert_int_equal(e->other, f->root);
    assert_int_equal(e->a, in.quota + in.donation);
    /* Numbers are in delivery order. */
    for (int i = 0; i < l.n; i++) {
        assert_int_equal(l.ev[i].seq, l.ev[0].seq + (uint64_t)i);
    }
    assert_ok(capmem_unsubscribe(f->arena, s));
    CHECK_INVARIANTS(f->arena);
}

static void test_inspect_dataspaces_raise_alloc_alias_free(void **state)
{
    fixture_t *f = *state;
    static log_t l;
    memset(&l, 0, sizeof(l));
    capmem_subscription_t s;
    capmem_cap_t acc = open_account(f, f->root, 1u << 20, "ds");
    assert_ok(capmem_subscribe(f->arena, CAPMEM_EVENT_ALL, record, &l, &s));
    capmem_cap_t ds;
    assert_ok(capmem_ram_alloc(f->arena, acc, 3 * PAGE - 1, &ds));
    capmem_ds_info_t di;
    assert_ok(capmem_ds_info(f->arena, ds, &di));
    const capmem_event_t *e = find(&l, CAPMEM_EVENT_DS_ALLOC, 0);
    assert_non_null(e);
    assert_int_equal(e->cap, ds);
    assert_int_equal(e->other, acc);
    assert_int_equal(e->a, 3 * PAGE);
    assert_int_equal(e->size, 3 * PAGE);
    assert_int_equal(e->offset, di.offset);

    capmem_alias_attr_t aa = CAPMEM_ALIAS_ATTR_INIT;
    aa.writable = 0;
    aa.offset = PAGE;
    aa.size = PAGE;
    capmem_cap_t al;
    assert_ok(capmem_ds_alias(f->arena, acc, ds, &aa, &al));
    e = find(&l, CAPMEM_EVENT_ALIAS, 0);
    assert_non_null(e);
    assert_int_equal(e->cap, al);
    assert_int_equal(e->other, ds);
    assert_int_equal(e->a, PAGE);
    assert_int_equal(e->b, 0); /* read-only, dependent */
    assert_int_equal(e->offset, di.offset + PAGE);
    assert_int_equal(e->size, PAGE);
    assert_int_equal(e->payer, acc); /* the session whose donation holds its record */

    /* Freeing the original takes its dependent alias with it: two frees, alias first. */
    assert_ok(capmem_ds_free(f->arena, ds));
    assert_int_equal(count(&l, CAPMEM_EVENT_DS_FREE), 2);
    e = find(&l, CAPMEM_EVENT_DS_FREE, 0);
    assert_int_equal(e->cap, al);
    assert_int_equal(e->b, CAPMEM_DS_ALIAS_DEPENDENT);
    e = find(&l, CAPMEM_EVENT_DS_FREE, 1);
    assert_int_equal(e->cap, ds);
    assert_int_equal(e->b, CAPMEM_DS_RAM);
    assert_int_equal(e->offset, di.offset);
    assert_int_equal(e->size, 3 * PAGE);
    assert_int_equal(count(&l, CAPMEM_EVENT_CAP_DELETE), 2);
    assert_ok(capmem_unsubscribe(f->arena, s));
    assert_ok(capmem_ram_close(f->arena, acc));
    CHECK_INVARIANTS(f->arena);
}

static capmem_rm_fault_result_t pager(capmem_arena_t *a, const capmem_rm_fault_t *fault, void *ctx)
{
    capmem_cap_t ds = *(capmem_cap_t *)ctx;
    capmem_rm_attach_attr_t at = CAPMEM_RM_ATTACH_ATTR_INIT;
    at.at = fault->address & ~(uint64_t)(PAGE - 1);
    uint64_t addr;
    if (capmem_rm_attach(a, fault->rm, ds, &at, &addr) != CAPMEM_OK) {
        return CAPMEM_RM_FAULT_UNRESOLVED;
    }
    return CAPMEM_RM_FAULT_RESOLVED;
}

static void test_inspect_region_maps_raise_attach_detach_fault(void **state)
{
    fixture_t *f = *state;
    static log_t l;
    memset(&l, 0, sizeof(l));
    capmem_cap_t acc = open_account(f, f->root, 4u << 20, "rm");
    capmem_cap_t ds;
    assert_ok(capmem_ram_alloc(f->arena, acc, 2 * PAGE, &ds));
    capmem_subscription_t s;
    assert_ok(capmem_subscribe(f->arena, CAPMEM_EVENT_ALL, record, &l, &s));
    capmem_rm_open_attr_t ro = CAPMEM_RM_OPEN_ATTR_INIT;
    ro.size = 1u << 20;
    ro.label = "space";
    capmem_cap_t rm;
    assert_ok(capmem_rm_open(f->arena, acc, &ro, &rm));
    const capmem_event_t *e = find(&l, CAPMEM_EVENT_DONATE, 0);
    assert_non_null(e);
    assert_int_equal(e->cap, rm);
    assert_int_equal(e->other, acc);
    assert_int_equal(e->b, 1u << 20);

    capmem_rm_attach_attr_t at = CAPMEM_RM_ATTACH_ATTR_INIT;
    at.at = 0x10000;
    at.offset = PAGE;
    at.size = PAGE;
    at.writable = 0;
    uint64_t addr;
    assert_ok(capmem_rm_attach(f->arena, rm, ds, &at, &addr));
    e = find(&l, CAPMEM_EVENT_ATTACH, 0);
    assert_non_null(e);
    assert_int_equal(e->cap, rm);
    assert_int_equal(e->other, ds);
    assert_int_equal(e->a, 0x10000);
    assert_int_equal(e->b, 0);
    assert_int_equal(e->offset, PAGE);
    assert_int_equal(e->size, PAGE);

    assert_ok(capmem_rm_detach(f->arena, rm, 0x10000 + 100));
    e = find(&l, CAPMEM_EVENT_DETACH, 0);
    assert_non_null(e);
    assert_int_equal(e->cap, rm);
    assert_int_equal(e->other, ds);
    assert_int_equal(e->a, 0x10000);
    assert_int_equal(e->offset, PAGE);
    assert_int_equal(e->size, PAGE);

    /* A fault: delivered, resolved by the pager's attach, then the access. */
    assert_ok(capmem_rm_set_fault_handler(f->arena, rm, pager, &ds));
    uint8_t byte;
    assert_ok(capmem_rm_read(f->arena, rm, 0x20004, &byte, 1));
    const int nf = (int)(find(&l, CAPMEM_EVENT_FAULT, 0) - l.ev);
    e = &l.ev[nf];
    assert_int_equal(e->cap, rm);
    assert_int_equal(e->a, 0x20004);
    assert_int_equal(e->b, CAPMEM_RM_READ);
    assert_int_equal(l.ev[nf + 1].kind, CAPMEM_EVENT_ATTACH);
    assert_int_equal(l.ev[nf + 1].a, 0x20000);
    assert_int_equal(l.ev[nf + 2].kind, CAPMEM_EVENT_FAULT_RESOLVED);
    assert_int_equal(l.ev[nf + 2].a, 0x20004);
    assert_int_equal(l.ev[nf + 2].cap, rm);

    /* An unresolved fault raises FAULT only. */
    assert_ok(capmem_rm_set_fault_handler(f->arena, rm, NULL, NULL));
    assert_err(capmem_rm_read(f->arena, rm, 0x80000, &byte, 1), CAPMEM_E_UNRESOLVED_FAULT);
    assert_int_equal(count(&l, CAPMEM_EVENT_FAULT), 2);
    assert_int_equal(count(&l, CAPMEM_EVENT_FAULT_RESOLVED), 1);

    /* Freeing an attached dataspace detaches it everywhere, then frees it. */
    const int n0 = l.n;
    assert_ok(capmem_ds_free(f->arena, ds));
    assert_int_equal(l.ev[n0].kind, CAPMEM_EVENT_DETACH);
    assert_int_equal(l.ev[n0].other, ds);
    assert_int_equal(l.ev[n0].a, 0x20000);
    assert_int_equal(l.ev[n0 + 1].kind, CAPMEM_EVENT_DS_FREE);
    assert_int_equal(l.ev[n0 + 1].cap, ds);

    assert_ok(capmem_rm_close(f->arena, rm));
    e = find(&l, CAPMEM_EVENT_SESSION_CLOSE, 0);
    assert_non_null(e);
    assert_int_equal(e->cap, rm);
    assert_int_equal(e->other, acc);
    assert_ok(capmem_unsubscribe(f->arena, s));
    assert_ok(capmem_ram_close(f->arena, acc));
    CHECK_INVARIANTS(f->arena);
}

static void test_inspect_caps_untyped_devices(void **state)
{
    (void)state;
    capmem_arena_t *a = test_arena(1u << 20, PAGE);
    static log_t l;
    memset(&l, 0, sizeof(l));
    capmem_subscription_t s;
    assert_ok(capmem_subscribe(a, CAPMEM_EVENT_ALL, record, &l, &s));
    capmem_untyped_info_t boot[4];
    size_t n = 0;
    assert_ok(capmem_untyped_boot(a, boot, 4, &n));
    const capmem_cap_t ut = boot[0].cap;
    capmem_retype_attr_t ra = CAPMEM_RETYPE_ATTR_INIT;
    ra.count = 3;
    capmem_cap_t frames[3];
    assert_ok(capmem_untyped_retype(a, ut, &ra, frames, 3));
    const capmem_event_t *e = find(&l, CAPMEM_EVENT_RETYPE, 0);
    assert_non_null(e);
    assert_int_equal(e->cap, ut);
    assert_int_equal(e->other, frames[0]);
    assert_int_equal(e->a, PAGE);
    assert_int_equal(e->b, 3);
    assert_int_equal(e->size, 3 * PAGE);
    capmem_object_info_t oi;
    assert_ok(capmem_object_info(a, frames[0], &oi));
    assert_int_equal(e->offset, oi.offset);

    capmem_cap_t copy;
    assert_ok(capmem_cap_mint(a, frames[1], CAPMEM_RIGHT_READ, &copy));
    e = find(&l, CAPMEM_EVENT_MINT, 0);
    assert_non_null(e);
    assert_int_equal(e->cap, copy);
    assert_int_equal(e->other, frames[1]);
    assert_int_equal(e->a, CAPMEM_RIGHT_READ);

    assert_ok(capmem_cap_delete(a, copy));
    e = find(&l, CAPMEM_EVENT_CAP_DELETE, 0);
    assert_non_null(e);
    assert_int_equal(e->cap, copy);

    assert_ok(capmem_cap_revoke(a, ut));
    e = find(&l, CAPMEM_EVENT_REVOKE, 0);
    assert_non_null(e);
    assert_int_equal(e->cap, ut);
    assert_int_equal(e->a, 3);
    assert_int_equal(count(&l, CAPMEM_EVENT_CAP_DELETE), 4);

    capmem_device_info_t d;
    assert_ok(capmem_arena_device_add(a, 0xfe000000, 0x4000, &d));
    e = find(&l, CAPMEM_EVENT_DEVICE_ADD, 0);
    assert_non_null(e);
    assert_int_equal(e->a, d.id);
    assert_int_equal(e->offset, 0xfe000000);
    assert_int_equal(e->size, 0x4000);
    assert_ok(capmem_arena_device_remove(a, d.id));
    e = find(&l, CAPMEM_EVENT_DEVICE_REMOVE, 0);
    assert_non_null(e);
    assert_int_equal(e->a, d.id);
    assert_int_equal(e->offset, 0xfe000000);
    assert_int_equal(e->size, 0x4000);
    /* An untyped's copy is a mint of the untyped, named as such. */
    capmem_cap_t ut_copy;
    assert_ok(capmem_untyped_copy(a, ut, &ut_copy));
    e = find(&l, CAPMEM_EVENT_MINT, 1);
    assert_non_null(e);
    assert_int_equal(e->cap, ut_copy);
    assert_int_equal(e->other, ut);
    capmem_cap_info_t ci;
    assert_ok(capmem_cap_identify(a, ut_copy, &ci));
    assert_int_equal(e->a, ci.rights);
    assert_ok(capmem_cap_delete(a, ut_copy));
    /* Failed calls raise nothing. */
    const int n0 = l.n;
    assert_err(capmem_arena_device_remove(a, d.id), CAPMEM_E_NOT_FOUND);
    assert_err(capmem_cap_mint(a, copy, CAPMEM_RIGHT_READ, &copy), CAPMEM_E_INVALID_CAP);
    assert_err(capmem_untyped_retype(a, frames[0], &ra, frames, 3), CAPMEM_E_INVALID_CAP);
    assert_int_equal(l.n, n0);
    for (int i = 0; i < l.n; i++) {
        assert_string_not_equal(capmem_event_kind_name(l.ev[i].kind), "unknown");
    }
    assert_string_equal(capmem_event_kind_name(CAPMEM_EVENT_KIND_COUNT), "unknown");
    assert_ok(capmem_unsubscribe(a, s));
    CHECK_INVARIANTS(a);
    capmem_arena_destroy(a);
}

/* ---- subscribers ------------------------------------------------------------------ */

static void test_inspect_masks_filter_and_subscribers_share_the_order(void **state)
{
    fixture_t *f = *state;
    static log_t all, dsonly, handler;
    memset(&all, 0, sizeof(all));
    memset(&dsonly, 0, sizeof(dsonly));
    memset(&handler, 0, sizeof(handler));
    int order[64];
    int norder = 0;
    all.order = dsonly.order = handler.order = order;
    all.norder = dsonly.norder = handler.norder = &norder;
    all.order_tag = 1;
    dsonly.order_tag = 2;
    handler.order_tag = 0;
    capmem_subscription_t s1, s2;
    assert_ok(capmem_subscribe(f->arena, CAPMEM_EVENT_ALL, record, &all, &s1));
    assert_ok(capmem_subscribe(f->arena,
                               CAPMEM_EVENT_MASK(CAPMEM_EVENT_DS_ALLOC) |
                                   CAPMEM_EVENT_MASK(CAPMEM_EVENT_DS_FREE),
                               record, &dsonly, &s2));
    assert_int_not_equal(s1, s2);
    assert_ok(capmem_arena_set_event_handler(f->arena, record, &handler));
    capmem_cap_t acc = open_account(f, f->root, 1u << 20, "m");
    capmem_cap_t ds;
    assert_ok(capmem_ram_alloc(f->arena, acc, PAGE, &ds));
    assert_ok(capmem_ds_free(f->arena, ds));
    /* all: DONATE, DS_ALLOC, DS_FREE, CAP_DELETE; dsonly: DS_ALLOC, DS_FREE. */
    assert_int_equal(all.n, 4);
    assert_int_equal(handler.n, 4);
    assert_int_equal(dsonly.n, 2);
    assert_int_equal(dsonly.ev[0].kind, CAPMEM_EVENT_DS_ALLOC);
    assert_int_equal(dsonly.ev[1].kind, CAPMEM_EVENT_DS_FREE);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(all.ev[i].kind, handler.ev[i].kind);
        assert_int_equal(all.ev[i].seq, handler.ev[i].seq);
    }
    assert_int_equal(dsonly.ev[0].seq, all.ev[1].seq);
    /* Per event: the handler's place first, then the subscriptions in order. */
    const int want[] = {0, 1, 0, 1, 2, 0, 1, 2, 0, 1};
    assert_int_equal(norder, 10);
    assert_memory_equal(order, want, sizeof(want));
    /* A kind nobody wants is not delivered to anyone once the catch-all ones leave. */
    assert_ok(capmem_unsubscribe(f->arena, s1));
    assert_ok(capmem_arena_set_event_handler(f->arena, NULL, NULL));
    all.order = dsonly.order = NULL;
    assert_ok(capmem_ram_transfer(f->arena, f->root, acc, PAGE));
    assert_int_equal(all.n, 4);
    assert_int_equal(dsonly.n, 2);
    assert_ok(capmem_unsubscribe(f->arena, s2));
    assert_ok(capmem_ram_close(f->arena, acc));
    CHECK_INVARIANTS(f->arena);
}

static void test_inspect_unsubscribe_and_subscribe_from_a_callback(void **state)
{
    fixture_t *f = *state;
    static log_t first, second, late;
    memset(&first, 0, sizeof(first));
    memset(&second, 0, sizeof(second));
    memset(&late, 0, sizeof(late));
    capmem_subscription_t s1, s2, s3 = 0;
    assert_ok(capmem_subscribe(f->arena, CAPMEM_EVENT_ALL, record, &first, &s1));
    assert_ok(capmem_subscribe(f->arena, CAPMEM_EVENT_ALL, record, &second, &s2));
    /* On DS_ALLOC, the first removes the second (before its turn) and adds a third. */
    first.on = CAPMEM_EVENT_DS_ALLOC;
    first.unsub = s2;
    first.sub_out = &s3;
    first.sub_mask = CAPMEM_EVENT_ALL;
    first.sub_log = &late;
    capmem_cap_t acc = open_account(f, f->root, 1u << 20, "u");
    capmem_cap_t ds;
    assert_ok(capmem_ram_alloc(f->arena, acc, PAGE, &ds));
    assert_int_equal(first.fired, 1);
    assert_int_equal(second.n, 1); /* DONATE only: removed before it saw DS_ALLOC */
    assert_int_equal(late.n, 0);   /* added during DS_ALLOC: starts with the next */
    assert_ok(capmem_ds_free(f->arena, ds));
    assert_int_equal(second.n, 1);
    assert_int_equal(late.n, 2); /* DS_FREE, CAP_DELETE */
    assert_int_equal(late.ev[0].kind, CAPMEM_EVENT_DS_FREE);
    assert_int_equal(late.ev[0].seq, first.ev[2].seq);
    /* The removed subscription is gone for good; its place is reused with a new id. */
    assert_err(capmem_unsubscribe(f->arena, s2), CAPMEM_E_NOT_FOUND);
    /* A callback that unsubscribes itself. */
    static log_t self;
    memset(&self, 0, sizeof(self));
    capmem_subscription_t s4;
    assert_ok(capmem_subscribe(f->arena, CAPMEM_EVENT_ALL, record, &self, &s4));
    assert_int_not_equal(s4, s2);
    self.on = CAPMEM_EVENT_DS_ALLOC;
    self.unsub = s4;
    assert_ok(capmem_ram_alloc(f->arena, acc, PAGE, &ds));
    assert_ok(capmem_ds_free(f->arena, ds));
    assert_int_equal(self.n, 1);
    assert_err(capmem_unsubscribe(f->arena, s4), CAPMEM_E_NOT_FOUND);
    assert_ok(capmem_unsubscribe(f->arena, s1));
    assert_ok(capmem_unsubscribe(f->arena, s3));
    assert_ok(capmem_ram_close(f->arena, acc));
    CHECK_INVARIANTS(f->arena);
}

static void ignore(capmem_arena_t *a, const capmem_event_t *ev, void *ctx)
{
    (void)a;
    (void)ev;
    (void)ctx;
}

typedef struct policy_probe {
    capmem_arena_t *arena;
    capmem_err_t sub;
    capmem_err_t unsub;
} policy_probe_t;

typedef struct relay {
    int first;  /* events the first handler saw */
    int second; /* events the replacement saw */
} relay_t;

static void second_handler(capmem_arena_t *a, const capmem_event_t *ev, void *ctx)
{
    (void)a;
    (void)ev;
    ((relay_t *)ctx)->second++;
}

static void first_handler(capmem_arena_t *a, const capmem_event_t *ev, void *ctx)
{
    (void)ev;
    relay_t *r = ctx;
    r->first++;
    assert_ok(capmem_arena_set_event_handler(a, second_handler, r));
}

static void test_inspect_a_replaced_handler_hands_on_the_queued_events(void **state)
{
    fixture_t *f = *state;
    capmem_cap_t acc = open_account(f, f->root, 1u << 20, "leaf");
    capmem_cap_t ds[3];
    for (int i = 0; i < 3; i++) {
        assert_ok(capmem_ram_alloc(f->arena, acc, PAGE, &ds[i]));
    }
    relay_t r = {0};
    assert_ok(capmem_arena_set_event_handler(f->arena, first_handler, &r));
    /* Closing the account raises several events; the first replaces the handler. */
    assert_ok(capmem_ram_close(f->arena, acc));
    assert_int_equal(r.first, 1);
    assert_true(r.second >= 4); /* three dataspaces' deletes and frees, the close, ... */
    assert_ok(capmem_arena_set_event_handler(f->arena, NULL, NULL));
    CHECK_INVARIANTS(f->arena);
}

static void test_inspect_subscription_errors_change_nothing(void **state)
{
    fixture_t *f = *state;
    capmem_subscription_t s = 42;
    assert_err(capmem_subscribe(NULL, CAPMEM_EVENT_ALL, ignore, NULL, &s), CAPMEM_E_INVALID_ARGS);
    assert_err(capmem_subscribe(f->arena, CAPMEM_EVENT_ALL, NULL, NULL, &s), CAPMEM_E_INVALID_ARGS);
    assert_err(capmem_subscribe(f->arena, CAPMEM_EVENT_ALL, ignore, NULL, NULL),
               CAPMEM_E_INVALID_ARGS);
    assert_err(capmem_subscribe(f->arena, 0, ignore, NULL, &s), CAPMEM_E_INVALID_ARGS);
    assert_int_equal(s, 42);
    assert_err(capmem_unsubscribe(NULL, 1), CAPMEM_E_INVALID_ARGS);
    assert_err(capmem_unsubscribe(f->arena, 0), CAPMEM_E_NOT_FOUND);
    assert_err(capmem_unsubscribe(f->arena, 1), CAPMEM_E_NOT_FOUND);
    assert_err(capmem_unsubscribe(f->arena, 0x12345), CAPMEM_E_NOT_FOUND);
    /* Full: CAPMEM_SUBSCRIBERS_MAX subscriptions, then OUT_OF_CAPS, nothing changed. */
    capmem_subscription_t subs[CAPMEM_SUBSCRIBERS_MAX];
    for (unsigned i = 0; i < CAPMEM_SUBSCRIBERS_MAX; i++) {
        assert_ok(capmem_subscribe(f->arena, CAPMEM_EVENT_ALL, ignore, NULL, &subs[i]));
    }
    assert_err(capmem_subscribe(f->arena, CAPMEM_EVENT_ALL, ignore, NULL, &s),
               CAPMEM_E_OUT_OF_CAPS);
    assert_int_equal(s, 42);
    /* The handler has a place of its own. */
    assert_ok(capmem_arena_set_event_handler(f->arena, ignore, NULL));
    assert_ok(capmem_arena_set_event_handler(f->arena, NULL, NULL));
    /* Another arena's subscription is refused, though its place is taken here. */
    capmem_arena_t *other = test_arena(1u << 20, PAGE);
    capmem_subscription_t os;
    assert_ok(capmem_subscribe(other, CAPMEM_EVENT_ALL, ignore, NULL, &os));
    assert_int_equal(os & 0xff, subs[0] & 0xff);
    assert_err(capmem_unsubscribe(f->arena, os), CAPMEM_E_NOT_FOUND);
    assert_ok(capmem_unsubscribe(other, os));
    assert_err(capmem_unsubscribe(other, os), CAPMEM_E_NOT_FOUND);
    capmem_arena_destroy(other);
    for (unsigned i = 0; i < CAPMEM_SUBSCRIBERS_MAX; i++) {
        assert_ok(capmem_unsubscribe(f->arena, subs[i]));
        assert_err(capmem_unsubscribe(f->arena, subs[i]), CAPMEM_E_NOT_FOUND);
    }
    /* A forked child is refused and changes nothing. */
    assert_ok(capmem_subscribe(f->arena, CAPMEM_EVENT_ALL, ignore, NULL, &s));
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        capmem_subscription_t cs;
        int bad = 0;
        bad |=
            capmem_subscribe(f->arena, CAPMEM_EVENT_ALL, ignore, NULL, &cs) != CAPMEM_E_UNSUPPORTED;
        bad |= capmem_unsubscribe(f->arena, s) != CAPMEM_E_UNSUPPORTED;
        _exit(bad);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    assert_ok(capmem_unsubscribe(f->arena, s));
    CHECK_INVARIANTS(f->arena);
}

/* A walk visitor runs mid-call: subscribing from it is REENTRANT. */
static int reenter(const capmem_cap_info_t *info, unsigned depth, void *ctx)
{
    (void)info;
    (void)depth;
    policy_probe_t *p = ctx;
    capmem_subscription_t s = 7;
    p->sub = capmem_subscribe(p->arena, CAPMEM_EVENT_ALL, ignore, NULL, &s);
    p->unsub = capmem_unsubscribe(p->arena, 1);
    return 1;
}

static void test_inspect_subscription_from_a_visitor_is_reentrant(void **state)
{
    fixture_t *f = *state;
    policy_probe_t p = {.arena = f->arena};
    assert_ok(capmem_cap_walk(f->arena, f->root, reenter, &p));
    assert_int_equal(p.sub, CAPMEM_E_REENTRANT);
    assert_int_equal(p.unsub, CAPMEM_E_REENTRANT);
    CHECK_INVARIANTS(f->arena);
}

/* ---- the JSON writer ---------------------------------------------------------------- */

static char *json_of(const char *s)
{
    static char buf[512];
    FILE *f = tmpfile();
    assert_non_null(f);
    capmem__json_string(f, s);
    rewind(f);
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static void test_inspect_json_strings_are_escaped(void **state)
{
    (void)state;
    assert_string_equal(json_of("plain"), "\"plain\"");
    assert_string_equal(json_of(""), "\"\"");
    assert_string_equal(json_of(NULL), "null");
    assert_string_equal(json_of("say \"hi\" \\ bye"), "\"say \\\"hi\\\" \\\\ bye\"");
    assert_string_equal(json_of("a\nb\tc\rd\be\ff"), "\"a\\nb\\tc\\rd\\be\\ff\"");
    assert_string_equal(json_of("\x01\x1f\x7f"), "\"\\u0001\\u001f\\u007f\"");
    /* Valid UTF-8 is kept: é (2 bytes), € (3), 😀 (4). */
    assert_string_equal(json_of("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"),
                        "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"");
    /* Bytes that are not UTF-8 become U+FFFD, one each: a stray continuation, a
     * truncated sequence, an overlong form, a surrogate, beyond U+10FFFF, 0xff. */
    assert_string_equal(json_of("\x80"), "\"\\ufffd\"");
    assert_string_equal(json_of("\xe2\x82"), "\"\\ufffd\\ufffd\"");
    assert_string_equal(json_of("\xc0\xaf"), "\"\\ufffd\\ufffd\"");
    assert_string_equal(json_of("\xed\xa0\x80"), "\"\\ufffd\\ufffd\\ufffd\"");
    assert_string_equal(json_of("\xf4\x90\x80\x80"), "\"\\ufffd\\ufffd\\ufffd\\ufffd\"");
    assert_string_equal(json_of("a\xffz"), "\"a\\ufffdz\"");
}

/* Calls that make roots or change a setting raise events too: nothing changes silently. */
static void test_inspect_creations_and_settings_raise_events(void **state)
{
    (void)state;
    capmem_arena_t *a = test_arena(4u << 20, PAGE);
    static log_t l;
    memset(&l, 0, sizeof(l));
    capmem_subscription_t s;
    assert_ok(capmem_subscribe(a, CAPMEM_EVENT_ALL, record, &l, &s));
    capmem_untyped_info_t boot[4];
    size_t n = 0;
    assert_ok(capmem_untyped_boot(a, boot, 4, &n));
    assert_int_equal(count(&l, CAPMEM_EVENT_UNTYPED_NEW), (int)n);
    const capmem_event_t *e = find(&l, CAPMEM_EVENT_UNTYPED_NEW, 0);
    assert_int_equal(e->cap, boot[0].cap);
    assert_int_equal(e->a, 0);
    assert_int_equal(e->b, boot[0].size_bits);
    assert_int_equal(e->offset, boot[0].offset);
    assert_int_equal(e->size, 1ull << boot[0].size_bits);
    /* A second call makes nothing and says nothing. */
    assert_ok(capmem_untyped_boot(a, boot, 4, &n));
    assert_int_equal(count(&l, CAPMEM_EVENT_UNTYPED_NEW), (int)n);

    /* An untyped's policy. */
    capmem_retype_attr_t ra = CAPMEM_RETYPE_ATTR_INIT;
    ra.type = CAPMEM_OBJ_UNTYPED;
    ra.size_bits = 16;
    capmem_cap_t ut;
    assert_ok(capmem_untyped_retype(a, boot[0].cap, &ra, &ut, 1));
    assert_ok(capmem_untyped_set_policy(a, ut, CAPMEM_UNTYPED_BUDDY, NULL));
    e = find(&l, CAPMEM_EVENT_SET_POLICY, 0);
    assert_non_null(e);
    assert_int_equal(e->cap, ut);
    assert_int_equal(e->a, CAPMEM_UNTYPED_BUDDY);
    assert_non_null(strstr(e->message, "buddy"));
    assert_ok(capmem_cap_revoke(a, boot[0].cap));

    /* The RAM service and its root account. */
    capmem_cap_t root;
    assert_ok(capmem_ram_boot(a, NULL, &root));
    e = find(&l, CAPMEM_EVENT_SERVICE_NEW, 0);
    assert_non_null(e);
    assert_int_equal(e->cap, root);
    assert_int_equal(e->payer, root);
    assert_int_equal(e->a, 4u << 20);
    assert_int_equal(e->b, CAPMEM_RAM_DEFAULT_DONATION);
    assert_int_equal(capmem_cap_type(e->other), CAPMEM_OBJ_KOBJ);

    assert_ok(capmem_ram_set_expanding(a, root, true, 2 * PAGE));
    e = find(&l, CAPMEM_EVENT_SET_EXPANDING, 0);
    assert_non_null(e);
    assert_int_equal(e->cap, root);
    assert_int_equal(e->a, 1);
    assert_int_equal(e->b, 2 * PAGE);
    /* A refused change raises nothing. */
    assert_err(capmem_ram_set_expanding(a, root, false, 3), CAPMEM_E_INVALID_ARGS);
    assert_int_equal(count(&l, CAPMEM_EVENT_SET_EXPANDING), 1);

    /* A map's fault handler and its managed dataspace. */
    capmem_rm_open_attr_t oa = CAPMEM_RM_OPEN_ATTR_INIT;
    oa.size = 1u << 20;
    capmem_cap_t rm;
    assert_ok(capmem_rm_open(a, root, &oa, &rm));
    assert_ok(capmem_rm_set_fault_handler(a, rm, NULL, NULL));
    e = find(&l, CAPMEM_EVENT_SET_FAULT_HANDLER, 0);
    assert_non_null(e);
    assert_int_equal(e->cap, rm);
    assert_int_equal(e->a, 0);
    capmem_cap_t mds;
    assert_ok(capmem_rm_dataspace(a, rm, &mds));
    assert_ok(capmem_rm_dataspace(a, rm, &mds)); /* the same one: no second event */
    assert_int_equal(count(&l, CAPMEM_EVENT_MANAGED_NEW), 1);
    e = find(&l, CAPMEM_EVENT_MANAGED_NEW, 0);
    assert_int_equal(e->cap, mds);
    assert_int_equal(e->other, rm);
    assert_int_equal(e->payer, root);
    assert_int_equal(e->size, 1u << 20);

    /* A user object. */
    static const capmem_user_type_t widget = {.name = "widget"};
    capmem_cap_t u;
    assert_ok(capmem_cap_create_user(a, &widget, NULL, CAPMEM_RIGHT_READ, &u));
    e = find(&l, CAPMEM_EVENT_USER_NEW, 0);
    assert_non_null(e);
    assert_int_equal(e->cap, u);
    assert_int_equal(e->a, CAPMEM_RIGHT_READ);
    assert_non_null(strstr(e->message, "widget"));
    for (int k = CAPMEM_EVENT_UNTYPED_NEW; k <= CAPMEM_EVENT_MANAGED_NEW; k++) {
        assert_string_not_equal(capmem_event_kind_name((capmem_event_kind_t)k), "unknown");
    }
    CHECK_INVARIANTS(a);
    capmem_arena_destroy(a);
}

/* ---- traces --------------------------------------------------------------------------- */

/* The value of "key": in a line, as a number (hex strings included); 0 if absent. */
static uint64_t field(const char *line, const char *key)
{
    char pat[32];
    snprintf(pat, sizeof(pat), "\"%s\":", key);
    const char *p = strstr(line, pat);
    if (p == NULL) {
        return 0;
    }
    p += strlen(pat);
    if (*p == '"') {
        p++;
    }
    return strtoull(p, NULL, 0);
}

static int is_kind(const char *line, const char *kind)
{
    char pat[48];
    snprintf(pat, sizeof(pat), "\"kind\":\"%s\"", kind);
    return strstr(line, pat) != NULL;
}

#define MAP_MAX 64

typedef struct handle_map {
    int n;
    uint64_t from[MAP_MAX];
    capmem_cap_t to[MAP_MAX];
} handle_map_t;

static void map_put(handle_map_t *m, uint64_t from, capmem_cap_t to)
{
    assert_true(m->n < MAP_MAX);
    m->from[m->n] = from;
    m->to[m->n] = to;
    m->n++;
}

static capmem_cap_t map_get(const handle_map_t *m, uint64_t from)
{
    for (int i = 0; i < m->n; i++) {
        if (m->from[i] == from) {
            return m->to[i];
        }
    }
    fail_msg("handle 0x%llx not in the trace", (unsigned long long)from);
    return CAPMEM_CAP_NULL;
}

static void test_inspect_trace_records_and_replays(void **state)
{
    fixture_t *f = *state;
    char path[] = "/tmp/capmem-trace-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *out = fdopen(fd, "w+");
    assert_non_null(out);
    assert_ok(capmem_trace_start(f->arena, out, CAPMEM_EVENT_ALL));
    /* A scenario: two accounts, allocations and frees that leave holes, an alias. */
    capmem_cap_t a1 = open_account(f, f->root, 2u << 20, "first \"quoted\" \\ label\n");
    capmem_cap_t a2 = open_account(f, f->root, 2u << 20, "caf\xc3\xa9 \xff");
    const uint64_t sizes[] = {3 * PAGE, PAGE, 5 * PAGE, 2 * PAGE, 7 * PAGE, PAGE, 4 * PAGE};
    capmem_cap_t ds[7];
    for (int i = 0; i < 7; i++) {
        assert_ok(capmem_ram_alloc(f->arena, i % 2 ? a2 : a1, sizes[i], &ds[i]));
    }
    assert_ok(capmem_ds_free(f->arena, ds[1]));
    assert_ok(capmem_ds_free(f->arena, ds[4]));
    capmem_cap_t more[3];
    assert_ok(capmem_ram_alloc(f->arena, a1, PAGE, &more[0]));
    assert_ok(capmem_ram_alloc(f->arena, a2, 6 * PAGE, &more[1]));
    capmem_alias_attr_t aa = CAPMEM_ALIAS_ATTR_INIT;
    capmem_cap_t al;
    /* Paid by the other session, first-class: it keeps ds[0]'s pages once ds[0] is freed. */
    aa.lifetime = CAPMEM_ALIAS_FIRST_CLASS;
    aa.offset = PAGE;
    aa.size = PAGE;
    assert_ok(capmem_ds_alias(f->arena, a2, ds[0], &aa, &al));
    assert_ok(capmem_ds_free(f->arena, ds[0]));
    assert_ok(capmem_ram_alloc(f->arena, a1, 2 * PAGE, &more[2]));
    /* Errors of start and stop change nothing. */
    assert_err(capmem_trace_start(f->arena, out, CAPMEM_EVENT_ALL), CAPMEM_E_INVALID_ARGS);
    assert_err(capmem_trace_start(NULL, out, CAPMEM_EVENT_ALL), CAPMEM_E_INVALID_ARGS);
    assert_ok(capmem_trace_stop(f->arena));
    assert_err(capmem_trace_stop(f->arena), CAPMEM_E_NOT_FOUND);
    assert_err(capmem_trace_stop(NULL), CAPMEM_E_INVALID_ARGS);
    assert_err(capmem_trace_start(f->arena, NULL, CAPMEM_EVENT_ALL), CAPMEM_E_INVALID_ARGS);
    assert_err(capmem_trace_start(f->arena, out, 0), CAPMEM_E_INVALID_ARGS);
    /* Nothing is written once stopped. */
    capmem_cap_t late;
    assert_ok(capmem_ram_alloc(f->arena, a1, PAGE, &late));
    fflush(out);

    /* Every line parses as JSON (when python3 is there to say so). */
    if (system("command -v python3 >/dev/null 2>&1") == 0) {
        char cmd[256];
        snprintf(cmd, sizeof(cmd),
                 "python3 -c 'import json,sys\n"
                 "for l in open(sys.argv[1], encoding=\"utf-8\"): json.loads(l)' %s",
                 path);
        assert_int_equal(system(cmd), 0);
    }

    /* Replay the allocations and frees on a fresh arena of the header's configuration. */
    rewind(out);
    char *line = NULL;
    size_t cap = 0;
    assert_true(getline(&line, &cap, out) > 0);
    assert_non_null(strstr(line, "\"format\":\"capmem-trace\""));
    assert_int_equal(field(line, "version"), CAPMEM_TRACE_VERSION);
    capmem_arena_attr_t at = CAPMEM_ARENA_ATTR_INIT;
    at.ram_size = field(line, "ram_size");
    at.page_size = field(line, "page_size");
    at.phys_base = field(line, "phys_base");
    at.device_window = field(line, "device_window");
    at.cap_slots = (uint32_t)field(line, "cap_slots");
    assert_int_equal(at.ram_size, 16ull << 20);
    capmem_arena_t *r = NULL;
    assert_ok(capmem_arena_create(&at, &r));
    capmem_cap_t rroot;
    assert_ok(capmem_ram_boot(r, NULL, &rroot));
    static handle_map_t map; /* trace handle -> replay handle */
    memset(&map, 0, sizeof(map));
    map_put(&map, f->root, rroot);
    int allocs = 0, frees = 0, lines = 0;
    uint64_t last_seq = 0;
    while (getline(&line, &cap, out) > 0) {
        const uint64_t seq = field(line, "seq");
        assert_true(lines == 0 || seq == last_seq + 1);
        last_seq = seq;
        lines++;
        if (is_kind(line, "donate")) {
            capmem_ram_open_attr_t oa = CAPMEM_RAM_OPEN_ATTR_INIT;
            oa.donation = field(line, "a");
            oa.quota = field(line, "b");
            oa.caps = 64;
            capmem_cap_t acc;
            assert_ok(capmem_ram_open(r, map_get(&map, field(line, "other")), &oa, &acc));
            map_put(&map, field(line, "cap"), acc);
        } else if (is_kind(line, "dataspace alloc")) {
            capmem_cap_t d;
            assert_ok(
                capmem_ram_alloc(r, map_get(&map, field(line, "other")), field(line, "size"), &d));
            capmem_ds_info_t di;
            assert_ok(capmem_ds_info(r, d, &di));
            assert_int_equal(di.offset, field(line, "offset"));
            map_put(&map, field(line, "cap"), d);
            allocs++;
        } else if (is_kind(line, "alias")) {
            capmem_cap_t d;
            capmem_alias_attr_t ra = CAPMEM_ALIAS_ATTR_INIT;
            ra.offset = field(line, "a");
            ra.size = field(line, "size");
            ra.writable = (field(line, "b") & 1) != 0;
            ra.lifetime =
                (field(line, "b") & 2) ? CAPMEM_ALIAS_FIRST_CLASS : CAPMEM_ALIAS_DEPENDENT;
            /* The session that pays for the alias's record is the event's payer. */
            assert_ok(capmem_ds_alias(r, map_get(&map, field(line, "payer")),
                                      map_get(&map, field(line, "other")), &ra, &d));
            capmem_ds_info_t di;
            assert_ok(capmem_ds_info(r, d, &di));
            assert_int_equal(di.offset, field(line, "offset"));
            map_put(&map, field(line, "cap"), d);
        } else if (is_kind(line, "dataspace free") && field(line, "b") == CAPMEM_DS_RAM) {
            assert_ok(capmem_ds_free(r, map_get(&map, field(line, "cap"))));
            frees++;
        }
    }
    assert_int_equal(allocs, 10);
    assert_int_equal(frees, 3);
    assert_true(lines > allocs + frees);
    free(line);
    fclose(out);
    unlink(path);
    CHECK_INVARIANTS(r);
    capmem_arena_destroy(r);
    CHECK_INVARIANTS(f->arena);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_inspect_accounts_raise_open_transfer_upgrade_close,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_inspect_dataspaces_raise_alloc_alias_free, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_inspect_region_maps_raise_attach_detach_fault, setup,
                                        teardown),
        cmocka_unit_test(test_inspect_caps_untyped_devices),
        cmocka_unit_test(test_inspect_creations_and_settings_raise_events),
        cmocka_unit_test_setup_teardown(test_inspect_masks_filter_and_subscribers_share_the_order,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_inspect_unsubscribe_and_subscribe_from_a_callback,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_inspect_a_replaced_handler_hands_on_the_queued_events,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_inspect_subscription_errors_change_nothing, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_inspect_subscription_from_a_visitor_is_reentrant,
                                        setup, teardown),
        cmocka_unit_test(test_inspect_json_strings_are_escaped),
        cmocka_unit_test_setup_teardown(test_inspect_trace_records_and_replays, setup, teardown),
    };
    return cmocka_run_group_tests_name("inspect", tests, NULL, NULL);
}
