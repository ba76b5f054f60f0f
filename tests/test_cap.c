/* SPDX-License-Identifier: MIT */
/* Layer 3: the capability space. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cap_internal.h"
#include "support.h"

static int destroyed;

static void count_destroy(void *object, void *ctx)
{
    (void)ctx;
    destroyed++;
    if (object != NULL) {
        (*(int *)object)++;
    }
}

static const capmem_user_type_t widget = {.name = "widget", .destroy = count_destroy};
static const capmem_user_type_t gadget = {.name = "gadget", .destroy = NULL};

static int setup(void **state)
{
    destroyed = 0;
    *state = test_arena(1 << 20, 4096);
    return 0;
}

static int teardown(void **state)
{
    CHECK_INVARIANTS(*state);
    capmem_arena_destroy(*state);
    return 0;
}

static capmem_cap_t make(capmem_arena_t *a, unsigned rights)
{
    capmem_cap_t c = CAPMEM_CAP_NULL;
    assert_ok(capmem_cap_create_user(a, &widget, NULL, rights, &c));
    return c;
}

static void test_cap_handle_encodes_type_and_is_not_null(void **state)
{
    capmem_arena_t *a = *state;
    capmem_cap_t c = make(a, CAPMEM_RIGHTS_ALL);
    assert_int_not_equal(c, CAPMEM_CAP_NULL);
    assert_int_equal(capmem_cap_type(c), CAPMEM_OBJ_USER);
    assert_string_equal(capmem_obj_type_name(CAPMEM_OBJ_USER), "user object");
    assert_string_equal(capmem_obj_type_name((capmem_obj_type_t)200), "invalid");
    capmem_cap_info_t info;
    assert_ok(capmem_cap_identify(a, c, &info));
    assert_int_equal(info.cap, c);
    assert_int_equal(info.rights, CAPMEM_RIGHTS_ALL);
    assert_true(info.original);
    assert_int_equal(info.parent, CAPMEM_CAP_NULL);
    assert_int_equal(info.children, 0);
    assert_int_equal(capmem_cap_count(a), 1);
    CHECK_INVARIANTS(a);
}

static void test_cap_user_object_lookup_checks_type_and_rights(void **state)
{
    capmem_arena_t *a = *state;
    int obj = 0;
    capmem_cap_t c = CAPMEM_CAP_NULL;
    assert_ok(capmem_cap_create_user(a, &widget, &obj, CAPMEM_RIGHT_READ, &c));
    void *got = NULL;
    assert_ok(capmem_cap_user_object(a, c, &widget, CAPMEM_RIGHT_READ, &got));
    assert_ptr_equal(got, &obj);
    got = NULL;
    assert_err(capmem_cap_user_object(a, c, &gadget, 0, &got), CAPMEM_E_WRONG_TYPE);
    assert_err(capmem_cap_user_object(a, c, &widget, CAPMEM_RIGHT_WRITE, &got), CAPMEM_E_DENIED);
    assert_null(got);
    assert_err(capmem_cap_user_object(a, c, NULL, 0, &got), CAPMEM_E_INVALID_ARGS);
    assert_err(capmem_cap_user_object(a, c, &widget, 0, NULL), CAPMEM_E_INVALID_ARGS);
    assert_err(capmem_cap_user_object(NULL, c, &widget, 0, &got), CAPMEM_E_INVALID_ARGS);
    /* Wrong object type entirely (internal lookup for an untyped). */
    capmem__slot_t *s = NULL;
    assert_err(capmem__cap_lookup(a, c, CAPMEM_OBJ_UNTYPED, 0, &s), CAPMEM_E_WRONG_TYPE);
    assert_null(s);
    /* obj lives on this stack: destroy it before returning, and see the teardown run. */
    assert_ok(capmem_cap_delete(a, c));
    assert_int_equal(obj, 1);
}

static void test_cap_identify_names_user_types_by_their_own_name(void **state)
{
    capmem_arena_t *a = *state;
    capmem_cap_t w = make(a, CAPMEM_RIGHTS_ALL);
    capmem_cap_t copy;
    assert_ok(capmem_cap_mint(a, w, CAPMEM_RIGHT_READ | CAPMEM_RIGHT_GRANT, &copy));
    capmem_cap_info_t info;
    assert_ok(capmem_cap_identify(a, copy, &info));
    assert_string_equal(info.name, "widget"); /* the user type's name, copies too */
    capmem_untyped_info_t boot[4];
    size_t n = 0;
    assert_ok(capmem_untyped_boot(a, boot, 4, &n));
    assert_ok(capmem_cap_identify(a, boot[0].cap, &info));
    assert_string_equal(info.name, "untyped");
    assert_ok(capmem_cap_revoke(a, w));
    assert_ok(capmem_cap_delete(a, w));
    CHECK_INVARIANTS(a);
}

static void test_cap_mint_only_reduces_rights(void **state)
{
    capmem_arena_t *a = *state;
    /* Every source rights set against every requested set. */
    for (unsigned src = 0; src <= CAPMEM_RIGHTS_ALL; src++) {
        capmem_cap_t c = make(a, src);
        for (unsigned want = 0; want <= CAPMEM_RIGHTS_ALL; want++) {
            capmem_cap_t d = CAPMEM_CAP_NULL;
            capmem_err_t e = capmem_cap_mint(a, c, want, &d);
            if ((src & CAPMEM_RIGHT_GRANT) == 0 || (want & ~src) != 0) {
                assert_int_equal(e, CAPMEM_E_DENIED);
                assert_int_equal(d, CAPMEM_CAP_NULL);
                continue;
            }
            assert_int_equal(e, CAPMEM_OK);
            capmem_cap_info_t info;
            assert_ok(capmem_cap_identify(a, d, &info));
            assert_int_equal(info.rights, want);
            assert_false(info.original);
            assert_int_equal(info.parent, c);
            /* A grandchild can never exceed its parent either. */
            for (unsigned w2 = 0; w2 <= CAPMEM_RIGHTS_ALL; w2++) {
                capmem_cap_t g = CAPMEM_CAP_NULL;
                e = capmem_cap_mint(a, d, w2, &g);
                if ((want & CAPMEM_RIGHT_GRANT) == 0 || (w2 & ~want) != 0) {
                    assert_int_equal(e, CAPMEM_E_DENIED);
                } else {
                    assert_int_equal(e, CAPMEM_OK);
                    assert_ok(capmem_cap_identify(a, g, &info));
                    assert_int_equal(info.rights & ~want, 0);
                }
            }
        }
        assert_ok(capmem_cap_revoke(a, c));
        assert_ok(capmem_cap_delete(a, c));
        CHECK_INVARIANTS(a);
    }
    /* Unknown rights bits are bad input, not a way to grow. */
    capmem_cap_t c = make(a, CAPMEM_RIGHTS_ALL);
    capmem_cap_t d = CAPMEM_CAP_NULL;
    assert_err(capmem_cap_mint(a, c, 0x100, &d), CAPMEM_E_INVALID_ARGS);
    assert_err(capmem_cap_mint(a, c, CAPMEM_RIGHT_READ, NULL), CAPMEM_E_INVALID_ARGS);
    assert_err(capmem_cap_create_user(a, &widget, NULL, 0x8, &d), CAPMEM_E_INVALID_ARGS);
    assert_err(capmem_cap_create_user(a, NULL, NULL, 7, &d), CAPMEM_E_INVALID_ARGS);
    assert_err(capmem_cap_create_user(a, &widget, NULL, 7, NULL), CAPMEM_E_INVALID_ARGS);
    assert_err(capmem_cap_create_user(NULL, &widget, NULL, 7, &d), CAPMEM_E_INVALID_ARGS);
    size_t before = capmem_cap_count(a);
    capmem__inject_fail(CAPMEM__HOST_MALLOC, 1);
    assert_err(capmem_cap_create_user(a, &widget, NULL, 7, &d), CAPMEM_E_HOST_NOMEM);
    capmem__inject_reset();
    assert_int_equal(capmem_cap_count(a), before);
    assert_int_equal(d, CAPMEM_CAP_NULL);
}

static void test_cap_stale_handle_is_refused_everywhere(void **state)
{
    capmem_arena_t *a = *state;
    capmem_cap_t c = make(a, CAPMEM_RIGHTS_ALL);
    assert_ok(capmem_cap_delete(a, c));
    assert_int_equal(destroyed, 1);
    capmem_cap_t reuse = make(a, CAPMEM_RIGHTS_ALL); /* same slot, new generation */
    /* The slot index is the low 30 bits (cap.h: the handle layout). */
    assert_int_equal(reuse & 0x3fffffffu, c & 0x3fffffffu);
    assert_int_not_equal(reuse, c);
    capmem_cap_t d = CAPMEM_CAP_NULL;
    capmem_cap_info_t info;
    void *obj = NULL;
    assert_err(capmem_cap_delete(a, c), CAPMEM_E_INVALID_CAP);
    assert_non_null(strstr(capmem_last_error()->message, "stale"));
    assert_err(capmem_cap_revoke(a, c), CAPMEM_E_INVALID_CAP);
    assert_err(capmem_cap_mint(a, c, 0, &d), CAPMEM_E_INVALID_CAP);
    assert_err(capmem_cap_identify(a, c, &info), CAPMEM_E_INVALID_CAP);
    assert_err(capmem_cap_user_object(a, c, &widget, 0, &obj), CAPMEM_E_INVALID_CAP);
    assert_err(capmem_cap_walk(a, c, NULL, NULL), CAPMEM_E_INVALID_ARGS);
    assert_int_equal(capmem_cap_count(a), 1);
    assert_int_equal(destroyed, 1); /* the live object in the reused slot is untouched */
}

static int count_visit(const capmem_cap_info_t *info, unsigned depth, void *ctx)
{
    (void)info;
    (void)depth;
    (*(size_t *)ctx)++;
    return 0;
}

static void test_cap_forged_handles_never_crash(void **state)
{
    capmem_arena_t *a = *state;
    capmem_cap_t live = make(a, CAPMEM_RIGHTS_ALL);
    capmem_cap_t d = CAPMEM_CAP_NULL;
    capmem_cap_info_t info;
    /* Type bits flipped on a live handle: forged, not wrong type. */
    capmem_cap_t flipped = (live & ~(0xffull << 56)) | ((uint64_t)CAPMEM_OBJ_UNTYPED << 56);
    assert_err(capmem_cap_identify(a, flipped, &info), CAPMEM_E_INVALID_CAP);
    assert_non_null(strstr(capmem_last_error()->message, "forged"));
    /* Generation from the future. */
    assert_err(capmem_cap_identify(a, live + (1ull << 32), &info), CAPMEM_E_INVALID_CAP);
    assert_err(capmem_cap_identify(a, CAPMEM_CAP_NULL, &info), CAPMEM_E_INVALID_CAP);
    assert_err(capmem_cap_identify(a, UINT64_MAX, &info), CAPMEM_E_INVALID_CAP);
    uint64_t x = 0x243f6a8885a308d3ull;
    unsigned n = test_under_valgrind() ? 20000 : 200000;
    for (unsigned i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        capmem_cap_t f = x;
        if (f == live) {
            continue;
        }
        capmem_err_t e = capmem_cap_mint(a, f, 0, &d);
        assert_true(e == CAPMEM_E_INVALID_CAP);
        assert_true(capmem_cap_delete(a, f) == CAPMEM_E_INVALID_CAP);
        assert_true(capmem_cap_revoke(a, f) == CAPMEM_E_INVALID_CAP);
    }
    assert_int_equal(capmem_cap_count(a), 1);
    assert_int_equal(destroyed, 0);
}

static void test_cap_delete_with_children_says_revoke_first(void **state)
{
    capmem_arena_t *a = *state;
    capmem_cap_t c = make(a, CAPMEM_RIGHTS_ALL);
    capmem_cap_t d = CAPMEM_CAP_NULL;
    assert_ok(capmem_cap_mint(a, c, CAPMEM_RIGHT_READ, &d));
    assert_err(capmem_cap_delete(a, c), CAPMEM_E_REVOKE_FIRST);
    assert_int_equal(capmem_cap_count(a), 2); /* nothing changed */
    assert_int_equal(destroyed, 0);
    capmem_cap_info_t info;
    assert_ok(capmem_cap_identify(a, d, &info));
    /* Deleting a copy frees only the slot; the object lives on. */
    assert_ok(capmem_cap_delete(a, d));
    assert_int_equal(destroyed, 0);
    assert_ok(capmem_cap_delete(a, c));
    assert_int_equal(destroyed, 1);
    assert_err(capmem_cap_delete(NULL, c), CAPMEM_E_INVALID_ARGS);
    assert_err(capmem_cap_revoke(NULL, c), CAPMEM_E_INVALID_ARGS);
}

static int record_visit(const capmem_cap_info_t *info, unsigned depth, void *ctx)
{
    char *buf = ctx;
    char item[32];
    snprintf(item, sizeof(item), "%u:%u ", depth, info->rights);
    strcat(buf, item);
    return 0;
}

static void test_cap_revoke_destroys_every_descendant_only(void **state)
{
    capmem_arena_t *a = *state;
    int o1 = 0;
    int o2 = 0;
    capmem_cap_t root = CAPMEM_CAP_NULL;
    capmem_cap_t other = CAPMEM_CAP_NULL;
    assert_ok(capmem_cap_create_user(a, &widget, &o1, CAPMEM_RIGHTS_ALL, &root));
    assert_ok(capmem_cap_create_user(a, &widget, &o2, CAPMEM_RIGHTS_ALL, &other));
    capmem_cap_t c1;
    capmem_cap_t c2;
    capmem_cap_t g1;
    assert_ok(capmem_cap_mint(a, root, 7, &c1));
    assert_ok(capmem_cap_mint(a, root, 5, &c2));
    assert_ok(capmem_cap_mint(a, c1, 1, &g1));
    char order[128] = "";
    assert_ok(capmem_cap_walk(a, root, record_visit, order));
    assert_string_equal(order, "0:7 1:7 2:1 1:5 ");
    size_t n = 0;
    assert_ok(capmem_cap_walk(a, CAPMEM_CAP_NULL, count_visit, &n));
    assert_int_equal(n, 5);
    assert_ok(capmem_cap_revoke(a, root));
    assert_int_equal(capmem_cap_count(a), 2);
    assert_int_equal(o1, 0); /* copies die, the object stays with its original */
    capmem_cap_info_t info;
    assert_err(capmem_cap_identify(a, g1, &info), CAPMEM_E_INVALID_CAP);
    assert_err(capmem_cap_identify(a, c2, &info), CAPMEM_E_INVALID_CAP);
    assert_ok(capmem_cap_identify(a, other, &info));
    assert_ok(capmem_cap_revoke(a, root)); /* nothing left: no-op */
    assert_ok(capmem_cap_delete(a, root));
    assert_int_equal(o1, 1);
    assert_int_equal(o2, 0);
    /* o2 lives on this stack: its object goes before the test returns. */
    assert_ok(capmem_cap_delete(a, other));
    assert_int_equal(o2, 1);
    CHECK_INVARIANTS(a);
}

static void test_cap_walk_visitor_can_stop(void **state)
{
    capmem_arena_t *a = *state;
    capmem_cap_t root = make(a, CAPMEM_RIGHTS_ALL);
    for (int i = 0; i < 5; i++) {
        capmem_cap_t d;
        assert_ok(capmem_cap_mint(a, root, 7, &d));
    }
    size_t n = 0;
    assert_ok(capmem_cap_walk(a, root, count_visit, &n));
    assert_int_equal(n, 6);
    assert_err(capmem_cap_walk(NULL, root, count_visit, &n), CAPMEM_E_INVALID_ARGS);
    assert_err(capmem_cap_identify(a, root, NULL), CAPMEM_E_INVALID_ARGS);
    assert_err(capmem_cap_identify(NULL, root, NULL), CAPMEM_E_INVALID_ARGS);
}

/* Revoke on a thread with a small stack: recursion would overflow it. */
typedef struct revoke_job {
    capmem_arena_t *arena;
    capmem_cap_t root;
    capmem_err_t result;
} revoke_job_t;

static void *revoke_thread(void *arg)
{
    revoke_job_t *job = arg;
    job->result = capmem_cap_revoke(job->arena, job->root);
    return NULL;
}

static void revoke_on_small_stack(capmem_arena_t *a, capmem_cap_t root)
{
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 256 * 1024);
    revoke_job_t job = {.arena = a, .root = root, .result = CAPMEM_E_INVALID_ARGS};
    pthread_t t;
    assert_int_equal(pthread_create(&t, &attr, revoke_thread, &job), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    pthread_attr_destroy(&attr);
    assert_ok(job.result);
}

static void test_cap_revoke_million_deep_chain_iteratively(void **state)
{
    capmem_arena_t *a = *state;
    const unsigned n = 1000000;
    capmem_cap_t root = make(a, CAPMEM_RIGHTS_ALL);
    capmem_cap_t c = root;
    for (unsigned i = 0; i < n; i++) {
        assert_true(capmem_cap_mint(a, c, CAPMEM_RIGHTS_ALL, &c) == CAPMEM_OK);
    }
    assert_int_equal(capmem_cap_count(a), n + 1);
    CHECK_INVARIANTS(a);
    revoke_on_small_stack(a, root);
    assert_int_equal(capmem_cap_count(a), 1);
    CHECK_INVARIANTS(a);
}

static void test_cap_revoke_million_fanout_iteratively(void **state)
{
    capmem_arena_t *a = *state;
    const unsigned n = 1000000;
    capmem_cap_t root = make(a, CAPMEM_RIGHTS_ALL);
    for (unsigned i = 0; i < n; i++) {
        capmem_cap_t c;
        assert_true(capmem_cap_mint(a, root, CAPMEM_RIGHT_READ, &c) == CAPMEM_OK);
    }
    capmem_cap_info_t info;
    assert_ok(capmem_cap_identify(a, root, &info));
    assert_int_equal(info.children, n);
    revoke_on_small_stack(a, root);
    assert_int_equal(capmem_cap_count(a), 1);
}

static void test_cap_table_full_is_out_of_caps(void **state)
{
    (void)state;
    destroyed = 0;
    capmem_arena_attr_t at = CAPMEM_ARENA_ATTR_INIT;
    at.ram_size = 1 << 20;
    at.cap_slots = 16; /* 15 usable: slot 0 is never handed out */
    capmem_arena_t *a = NULL;
    assert_ok(capmem_arena_create(&at, &a));
    capmem_cap_t root = make(a, CAPMEM_RIGHTS_ALL);
    capmem_cap_t c;
    for (int i = 0; i < 14; i++) {
        assert_ok(capmem_cap_mint(a, root, 7, &c));
    }
    capmem_cap_t d = CAPMEM_CAP_NULL;
    assert_err(capmem_cap_mint(a, root, 7, &d), CAPMEM_E_OUT_OF_CAPS);
    assert_err(capmem_cap_create_user(a, &widget, NULL, 7, &d), CAPMEM_E_OUT_OF_CAPS);
    assert_int_equal(d, CAPMEM_CAP_NULL);
    assert_int_equal(capmem_cap_count(a), 15);
    assert_ok(capmem_cap_delete(a, c));
    assert_ok(capmem_cap_mint(a, root, 7, &d)); /* a freed slot is reused */
    CHECK_INVARIANTS(a);
    capmem_arena_destroy(a); /* destroys the object: teardown runs */
    assert_int_equal(destroyed, 1);
}

static void test_cap_quota_is_charged_and_refunded(void **state)
{
    capmem_arena_t *a = *state;
    capmem_cap_t root = make(a, CAPMEM_RIGHTS_ALL);
    capmem__quota_t q = {.limit = 2, .used = 0};
    capmem__slot_t *s = NULL;
    assert_ok(capmem__cap_lookup(a, root, CAPMEM_OBJ_NONE, 0, &s));
    s->quota = &q; /* as the RAM layer does for an account's objects */
    q.used = 1;
    capmem_cap_t c1;
    capmem_cap_t c2 = CAPMEM_CAP_NULL;
    assert_ok(capmem_cap_mint(a, root, 7, &c1)); /* mint charges the source's account */
    assert_int_equal(q.used, 2);
    assert_err(capmem_cap_mint(a, root, 7, &c2), CAPMEM_E_OUT_OF_CAPS);
    assert_int_equal(capmem_last_error()->needed, 1);
    assert_int_equal(capmem_last_error()->available, 0);
    assert_int_equal(q.used, 2);
    assert_ok(capmem_cap_delete(a, c1));
    assert_int_equal(q.used, 1);
    assert_ok(capmem__cap_lookup(a, root, CAPMEM_OBJ_NONE, 0, &s));
    s->quota = NULL;
}

static void test_cap_generation_wrap_retires_slot(void **state)
{
    capmem_arena_t *a = *state;
    capmem_cap_t c = make(a, CAPMEM_RIGHTS_ALL);
    uint32_t idx = capmem__cap_index(c);
    /* Fast-forward the slot to its last generation. */
    capmem__slot_t *s = capmem__slot(&a->cspace, idx);
    s->gen = CAPMEM__CAP_GEN_MASK;
    c = capmem__slot_handle(&a->cspace, idx);
    assert_ok(capmem_cap_delete(a, c));
    capmem_cap_t d = make(a, CAPMEM_RIGHTS_ALL);
    assert_int_not_equal(capmem__cap_index(d), idx); /* retired, not reused */
    capmem_cap_info_t info;
    assert_err(capmem_cap_identify(a, c, &info), CAPMEM_E_INVALID_CAP);
}

static void test_cap_checker_finds_broken_links(void **state)
{
    capmem_arena_t *a = *state;
    capmem_cap_t root = make(a, CAPMEM_RIGHTS_ALL);
    capmem_cap_t c;
    assert_ok(capmem_cap_mint(a, root, 7, &c));
    char why[256];
    assert_ok(capmem_cap_check(a, why, sizeof(why)));
    capmem__slot_t *s = capmem__slot(&a->cspace, capmem__cap_index(c));
    uint32_t saved = s->parent;
    s->parent = 0; /* orphaned but still in the parent's list */
    assert_err(capmem_cap_check(a, why, sizeof(why)), CAPMEM_E_CORRUPT);
    assert_non_null(strstr(why, "another parent"));
    s->parent = saved;
    assert_ok(capmem_check(a, why, sizeof(why)));
    assert_string_equal(why, "");
    assert_err(capmem_cap_check(NULL, why, sizeof(why)), CAPMEM_E_INVALID_ARGS);
    assert_err(capmem_check(NULL, why, sizeof(why)), CAPMEM_E_INVALID_ARGS);
}

typedef struct ev_log {
    int revokes;
    int deletes;
    uint64_t last_count;
} ev_log_t;

static void on_event(capmem_arena_t *arena, const capmem_event_t *ev, void *ctx)
{
    (void)arena;
    ev_log_t *log = ctx;
    if (ev->kind == CAPMEM_EVENT_REVOKE) {
        log->revokes++;
        log->last_count = ev->a;
    } else if (ev->kind == CAPMEM_EVENT_CAP_DELETE) {
        log->deletes++;
    }
    assert_non_null(ev->message);
}

static void test_cap_revoke_and_delete_emit_events(void **state)
{
    capmem_arena_t *a = *state;
    ev_log_t log = {0};
    assert_ok(capmem_arena_set_event_handler(a, on_event, &log));
    capmem_cap_t root = make(a, CAPMEM_RIGHTS_ALL);
    capmem_cap_t c;
    assert_ok(capmem_cap_mint(a, root, 7, &c));
    assert_ok(capmem_cap_mint(a, c, 7, &c));
    assert_ok(capmem_cap_revoke(a, root));
    assert_int_equal(log.revokes, 1);
    assert_int_equal(log.last_count, 2);
    assert_int_equal(log.deletes, 2);
    assert_string_equal(capmem_event_kind_name(CAPMEM_EVENT_UPGRADE), "upgrade");
    assert_string_equal(capmem_event_kind_name((capmem_event_kind_t)0), "unknown");
    assert_ok(capmem_arena_set_event_handler(a, NULL, NULL));
    assert_err(capmem_arena_set_event_handler(NULL, NULL, NULL), CAPMEM_E_INVALID_ARGS);
}

/* Several threads mint, delete and revoke on one arena at once. */
typedef struct thread_job {
    capmem_arena_t *arena;
    capmem_cap_t root;
    int failures;
} thread_job_t;

static void *churn(void *arg)
{
    thread_job_t *job = arg;
    for (int i = 0; i < 2000; i++) {
        capmem_cap_t c;
        capmem_cap_t g;
        if (capmem_cap_mint(job->arena, job->root, 7, &c) != CAPMEM_OK ||
            capmem_cap_mint(job->arena, c, 1, &g) != CAPMEM_OK) {
            job->failures++;
            continue;
        }
        if (i % 3 == 0) {
            job->failures += capmem_cap_revoke(job->arena, c) != CAPMEM_OK;
        } else {
            job->failures += capmem_cap_delete(job->arena, g) != CAPMEM_OK;
        }
        job->failures += capmem_cap_delete(job->arena, c) != CAPMEM_OK;
    }
    return NULL;
}

static void test_cap_threads_share_one_arena(void **state)
{
    capmem_arena_t *a = *state;
    enum { N = 4 };
    pthread_t t[N];
    thread_job_t jobs[N];
    for (int i = 0; i < N; i++) {
        jobs[i] = (thread_job_t){.arena = a, .root = make(a, CAPMEM_RIGHTS_ALL)};
        assert_int_equal(pthread_create(&t[i], NULL, churn, &jobs[i]), 0);
    }
    for (int i = 0; i < N; i++) {
        assert_int_equal(pthread_join(t[i], NULL), 0);
        assert_int_equal(jobs[i].failures, 0);
    }
    assert_int_equal(capmem_cap_count(a), N);
    CHECK_INVARIANTS(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_cap_handle_encodes_type_and_is_not_null, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_cap_user_object_lookup_checks_type_and_rights, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_cap_identify_names_user_types_by_their_own_name, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_cap_mint_only_reduces_rights, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cap_stale_handle_is_refused_everywhere, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_cap_forged_handles_never_crash, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cap_delete_with_children_says_revoke_first, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_cap_revoke_destroys_every_descendant_only, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_cap_walk_visitor_can_stop, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cap_revoke_million_deep_chain_iteratively, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_cap_revoke_million_fanout_iteratively, setup,
                                        teardown),
        cmocka_unit_test(test_cap_table_full_is_out_of_caps),
        cmocka_unit_test_setup_teardown(test_cap_quota_is_charged_and_refunded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cap_generation_wrap_retires_slot, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cap_checker_finds_broken_links, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cap_revoke_and_delete_emit_events, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cap_threads_share_one_arena, setup, teardown),
    };
    return cmocka_run_group_tests_name("cap", tests, NULL, NULL);
}
