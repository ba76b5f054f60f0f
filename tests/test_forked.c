/* SPDX-License-Identifier: MIT */
/*
 * A forked child and the parent's arena (docs/threads.md, "fork"). The
 * interpreter of tests/ops builds a state with objects of every kind; the
 * process forks; the child makes every mutating public call on the parent's
 * arena, with arguments that would succeed in the parent, and each must
 * return UNSUPPORTED, name the fork, and leave its out-parameters alone
 * (the child's exit code counts the mismatches). The arena's memory is a
 * shared mapping, so a call that got through would show in the parent: the
 * parent then compares every account, map and untyped, the bytes of every
 * dataspace and frame, the capability count and the checker with what it
 * saw before, and goes on with interpreter steps that must all match the
 * model. The child also builds an arena of its own, which works.
 */
#define _GNU_SOURCE
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ops/interp.h"
#include "support.h"

#define SEED 1u /* the first seed tried */
#define MAX_H 160
#define PROBE 64 /* bytes of each dataspace and frame compared */

/* One handle of each kind the child's calls need. */
typedef struct world {
    capmem_arena_t *a;
    capmem_cap_t root, acc, ds, dep, fc, ut, frame, kobj, rm, mds;
} world_t;

static capmem_cap_t first(const interp_t *in, interp_kind_t kind, size_t skip)
{
    capmem_cap_t h[MAX_H];
    size_t n = interp_handles(in, kind, h, MAX_H);
    return n > skip ? h[skip] : CAPMEM_CAP_NULL;
}

static int complete(const interp_t *in, world_t *w)
{
    w->a = interp_arena(in);
    w->root = first(in, INTERP_ACCOUNT, 0);
    w->acc = first(in, INTERP_ACCOUNT, 1);
    w->ds = first(in, INTERP_DATASPACE, 0);
    w->dep = first(in, INTERP_DEPENDENT_ALIAS, 0);
    w->fc = first(in, INTERP_FIRST_CLASS_ALIAS, 0);
    w->ut = first(in, INTERP_UNTYPED, 0);
    w->frame = first(in, INTERP_FRAME, 0);
    w->kobj = first(in, INTERP_KOBJ, 0);
    w->rm = first(in, INTERP_MAP, 0);
    w->mds = first(in, INTERP_MANAGED, 0);
    return w->acc && w->ds && w->dep && w->fc && w->frame && w->kobj && w->rm && w->mds;
}

/* ---- what the parent compares ------------------------------------------------ */

typedef struct snapshot {
    size_t caps;
    size_t n[INTERP_KINDS];
    capmem_cap_t h[INTERP_KINDS][MAX_H];
    capmem_ram_info_t ram[MAX_H];
    capmem_rm_info_t rm[MAX_H];
    capmem_rm_state_t st[MAX_H];
    capmem_untyped_info_t ut[MAX_H];
    uint8_t bytes[INTERP_KINDS][MAX_H][PROBE];
} snapshot_t;

static void take_snapshot(const interp_t *in, snapshot_t *s)
{
    capmem_arena_t *a = interp_arena(in);
    memset(s, 0, sizeof(*s));
    s->caps = capmem_cap_count(a);
    for (int k = 0; k < INTERP_KINDS; k++) {
        s->n[k] = interp_handles(in, (interp_kind_t)k, s->h[k], MAX_H);
        assert_true(s->n[k] <= MAX_H);
        for (size_t i = 0; i < s->n[k]; i++) {
            capmem_cap_t h = s->h[k][i];
            switch (k) {
            case INTERP_ACCOUNT:
                assert_ok(capmem_ram_info(a, h, &s->ram[i]));
                break;
            case INTERP_MAP:
                assert_ok(capmem_rm_info(a, h, &s->rm[i]));
                assert_ok(capmem_rm_state(a, h, &s->st[i]));
                break;
            case INTERP_UNTYPED:
                assert_ok(capmem_untyped_info(a, h, &s->ut[i]));
                s->ut[i].policy = NULL; /* a pointer; the name is compared by free bytes */
                break;
            case INTERP_FRAME:
                assert_ok(capmem_frame_read(a, h, 0, s->bytes[k][i], PROBE));
                break;
            case INTERP_DATASPACE:
            case INTERP_DEPENDENT_ALIAS:
            case INTERP_FIRST_CLASS_ALIAS:
                assert_ok(capmem_ds_read(a, h, 0, s->bytes[k][i], PROBE));
                break;
            default:
                break;
            }
        }
    }
}

static void assert_same(const snapshot_t *before, const snapshot_t *after)
{
    assert_int_equal(after->caps, before->caps);
    for (int k = 0; k < INTERP_KINDS; k++) {
        assert_int_equal(after->n[k], before->n[k]);
        assert_memory_equal(after->h[k], before->h[k], before->n[k] * sizeof(capmem_cap_t));
    }
    for (size_t i = 0; i < before->n[INTERP_ACCOUNT]; i++) {
        const capmem_ram_info_t *x = &before->ram[i];
        const capmem_ram_info_t *y = &after->ram[i];
        assert_int_equal(y->quota, x->quota);
        assert_int_equal(y->used, x->used);
        assert_int_equal(y->lent, x->lent);
        assert_int_equal(y->donation, x->donation);
        assert_int_equal(y->records_used, x->records_used);
        assert_int_equal(y->caps_limit, x->caps_limit);
        assert_int_equal(y->caps_used, x->caps_used);
        assert_int_equal(y->upgrades, x->upgrades);
        assert_int_equal(y->upgrade_step, x->upgrade_step);
        assert_int_equal(y->expanding, x->expanding);
    }
    for (size_t i = 0; i < before->n[INTERP_MAP]; i++) {
        const capmem_rm_info_t *x = &before->rm[i];
        const capmem_rm_info_t *y = &after->rm[i];
        assert_int_equal(y->regions, x->regions);
        assert_int_equal(y->donation, x->donation);
        assert_int_equal(y->records_used, x->records_used);
        assert_int_equal(y->faults, x->faults);
        assert_int_equal(y->has_handler, x->has_handler);
        assert_int_equal(after->st[i].faults, before->st[i].faults);
        assert_int_equal(after->st[i].address, before->st[i].address);
    }
    for (size_t i = 0; i < before->n[INTERP_UNTYPED]; i++) {
        assert_int_equal(after->ut[i].free_bytes, before->ut[i].free_bytes);
        assert_int_equal(after->ut[i].children, before->ut[i].children);
        assert_int_equal(after->ut[i].full, before->ut[i].full);
    }
    assert_memory_equal(after->bytes, before->bytes, sizeof(before->bytes));
}

/* ---- the child ------------------------------------------------------------------ */

static int bad;

/* One refused call: UNSUPPORTED, a message that says why, out-parameters untouched. */
static void refused(capmem_err_t got, const char *what, int untouched)
{
    const capmem_error_info_t *e = capmem_last_error();
    if (got != CAPMEM_E_UNSUPPORTED || strstr(e->message, "forked child") == NULL || !untouched) {
        fprintf(stderr, "child: %s returned %s (%s)%s\n", what, capmem_err_name(got), e->message,
                untouched ? "" : ", and wrote its out-parameter");
        bad++;
    }
}

#define SENTINEL ((capmem_cap_t)0x5a5a5a5a5a5a5a5aull)
#define REFUSED(call) refused((call), #call, 1)
#define REFUSED_OUT(call, out) refused((call), #call, (out) == SENTINEL)

static void no_event(capmem_arena_t *a, const capmem_event_t *ev, void *ctx)
{
    (void)a;
    (void)ev;
    (void)ctx;
    bad++;
}

static capmem_rm_fault_result_t no_fault(capmem_arena_t *a, const capmem_rm_fault_t *f, void *ctx)
{
    (void)a;
    (void)f;
    (void)ctx;
    bad++;
    return CAPMEM_RM_FAULT_UNRESOLVED;
}

/*
 * Every mutating public call, in the order of the headers, with arguments
 * that pass every check before the fork check (a NULL out-pointer would be
 * refused as INVALID_ARGS first) and would succeed in the parent.
 */
static void child_calls(const world_t *w)
{
    capmem_arena_t *a = w->a;
    capmem_cap_t out = SENTINEL;
    uint8_t buf[16];
    memset(buf, 0xa5, sizeof(buf));
    /* arena.h */
    capmem_device_info_t dev = {.id = 77};
    REFUSED(capmem_arena_device_add(a, 1ull << 40, 4096, &dev));
    bad += dev.id != 77;
    REFUSED(capmem_arena_device_remove(a, 0));
    /* inspect.h */
    REFUSED(capmem_arena_set_event_handler(a, no_event, NULL));
    REFUSED(capmem_arena_set_event_handler(a, NULL, NULL));
    /* cap.h */
    static const capmem_user_type_t type = {.name = "child's"};
    REFUSED_OUT(capmem_cap_create_user(a, &type, NULL, CAPMEM_RIGHTS_ALL, &out), out);
    REFUSED_OUT(capmem_cap_mint(a, w->ds, CAPMEM_RIGHT_READ, &out), out);
    REFUSED(capmem_cap_delete(a, w->kobj));
    REFUSED(capmem_cap_revoke(a, w->acc));
    REFUSED(capmem_cap_revoke(a, w->root));
    /* dataspace.h */
    REFUSED(capmem_ds_write(a, w->ds, 0, buf, sizeof(buf)));
    REFUSED(capmem_ds_write(a, w->fc, 0, buf, sizeof(buf)));
    REFUSED(capmem_ds_write(a, w->mds, 0, buf, sizeof(buf)));
    capmem_alias_attr_t al = CAPMEM_ALIAS_ATTR_INIT;
    al.size = 4096;
    REFUSED_OUT(capmem_ds_alias(a, w->acc, w->ds, &al, &out), out);
    REFUSED(capmem_ds_free(a, w->ds));
    REFUSED(capmem_ds_free(a, w->dep));
    REFUSED(capmem_ds_free(a, w->fc));
    /* ram.h */
    capmem_cap_t r = SENTINEL;
    REFUSED_OUT(capmem_ram_create(a, &w->ut, 1, NULL, &r), r);
    REFUSED_OUT(capmem_ram_boot(a, NULL, &r), r);
    REFUSED(capmem_ram_destroy(a, w->root));
    capmem_ram_open_attr_t oa = CAPMEM_RAM_OPEN_ATTR_INIT;
    oa.quota = 4096;
    oa.caps = 4;
    REFUSED_OUT(capmem_ram_open(a, w->root, &oa, &out), out);
    REFUSED(capmem_ram_close(a, w->acc));
    REFUSED(capmem_ram_transfer(a, w->root, w->acc, 4096));
    REFUSED(capmem_ram_transfer(a, w->acc, w->root, 1));
    REFUSED(capmem_ram_transfer_caps(a, w->root, w->acc, 1));
    REFUSED(capmem_ram_upgrade(a, w->acc, w->root, 8192));
    REFUSED(capmem_ram_set_expanding(a, w->acc, true, 8192));
    REFUSED_OUT(capmem_ram_alloc(a, w->root, 4096, &out), out);
    /* region_map.h */
    capmem_rm_open_attr_t ra = CAPMEM_RM_OPEN_ATTR_INIT;
    ra.size = 16 * 4096;
    REFUSED_OUT(capmem_rm_open(a, w->root, &ra, &out), out);
    capmem_rm_info_t mi;
    REFUSED(capmem_rm_info(a, w->rm, &mi));
    REFUSED(capmem_rm_upgrade(a, w->rm, w->root, 8192));
    capmem_rm_attach_attr_t aa = CAPMEM_RM_ATTACH_ATTR_INIT;
    aa.size = 4096;
    uint64_t addr = 0x77;
    REFUSED(capmem_rm_attach(a, w->rm, w->ds, &aa, &addr));
    bad += addr != 0x77;
    REFUSED(capmem_rm_detach(a, w->rm, 0));
    REFUSED(capmem_rm_set_fault_handler(a, w->rm, no_fault, NULL));
    REFUSED(capmem_rm_set_fault_handler(a, w->rm, NULL, NULL));
    REFUSED(capmem_rm_write(a, w->rm, 0, buf, sizeof(buf)));
    REFUSED(capmem_rm_read(a, w->rm, 0, buf, sizeof(buf)));
    REFUSED(capmem_rm_touch(a, w->rm, 0, 1, CAPMEM_RM_EXEC));
    REFUSED_OUT(capmem_rm_dataspace(a, w->rm, &out), out);
    REFUSED(capmem_rm_close(a, w->rm));
    /* untyped.h */
    capmem_untyped_info_t ui[8];
    size_t count = 99;
    REFUSED(capmem_untyped_boot(a, ui, 8, &count));
    REFUSED(capmem_untyped_add_device(a, 0, ui, 8, &count));
    bad += count != 99;
    REFUSED(capmem_untyped_set_policy(a, w->ut, CAPMEM_UNTYPED_RANGE, NULL));
    capmem_retype_attr_t rt = CAPMEM_RETYPE_ATTR_INIT;
    capmem_cap_t dest = SENTINEL;
    REFUSED_OUT(capmem_untyped_retype(a, w->ut, &rt, &dest, 1), dest);
    REFUSED_OUT(capmem_untyped_copy(a, w->ut, &out), out);
    REFUSED(capmem_frame_write(a, w->frame, 0, buf, sizeof(buf)));
    /* Queries are refused too: the child's copy of the host-side state is stale. */
    capmem_ram_info_t ri;
    REFUSED(capmem_ram_info(a, w->root, &ri));
    REFUSED(capmem_ds_read(a, w->ds, 0, buf, sizeof(buf)));
    char why[128];
    REFUSED(capmem_check(a, why, sizeof(why)));
    bad += capmem_cap_count(a) != 0;
    /* Destroying the parent's arena does nothing here; calls are still refused cleanly. */
    capmem_arena_destroy(a);
    REFUSED(capmem_cap_revoke(a, w->root));
}

/* The child may build an arena of its own, and the interpreter works on it. */
static void child_own_arena(void)
{
    interp_t *mine = interp_new();
    if (mine == NULL) {
        bad++;
        return;
    }
    interp_src_t src;
    interp_src_seed(&src, SEED + 1);
    for (int i = 0; i < 500; i++) {
        if (interp_step(mine, &src) != 0) {
            fprintf(stderr, "child: own arena, op %d: %s: %s\n", i + 1, interp_last_op(mine),
                    interp_why(mine));
            bad++;
            break;
        }
    }
    interp_free(mine);
}

static void test_forked_child_is_refused_every_mutating_call_and_parent_goes_on(void **state)
{
    (void)state;
    /*
     * Interesting state: an object of every kind the child's calls take.
     * Which seed gets there first depends on everything the interpreter
     * draws (event callbacks draw too), so the test takes the first seed
     * from SEED on whose run holds every kind within 20,000 steps.
     */
    interp_t *in = NULL;
    interp_src_t src;
    world_t w;
    unsigned steps = 0;
    for (unsigned seed = SEED; seed < SEED + 32 && in == NULL; seed++) {
        in = interp_new();
        assert_non_null(in);
        interp_src_seed(&src, seed);
        for (steps = 0; !complete(in, &w) && steps < 20000; steps++) {
            if (interp_step(in, &src) != 0) {
                fail_msg("seed %u, op %u: %s: %s", seed, steps + 1, interp_last_op(in),
                         interp_why(in));
            }
        }
        if (!complete(in, &w)) {
            interp_free(in);
            in = NULL;
        }
    }
    assert_non_null(in);
    static snapshot_t before;
    static snapshot_t after;
    take_snapshot(in, &before);
    CHECK_INVARIANTS(w.a);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        child_calls(&w);
        child_own_arena();
        fflush(NULL);
        _exit(bad > 255 ? 255 : bad);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0); /* the number of calls that were not refused */
    /* Nothing changed in the parent. */
    take_snapshot(in, &after);
    assert_same(&before, &after);
    CHECK_INVARIANTS(w.a);
    /* And it goes on: every step still matches the model. */
    for (unsigned i = 0; i < 3000; i++) {
        if (interp_step(in, &src) != 0) {
            fail_msg("after the fork, op %u: %s: %s", steps + i + 1, interp_last_op(in),
                     interp_why(in));
        }
    }
    CHECK_INVARIANTS(w.a);
    printf("# state of %u steps (accounts %zu, dataspaces %zu, maps %zu): the child's calls were "
           "refused, nothing changed, 3000 steps after it\n",
           steps, before.n[INTERP_ACCOUNT], before.n[INTERP_DATASPACE], before.n[INTERP_MAP]);
    interp_free(in);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_forked_child_is_refused_every_mutating_call_and_parent_goes_on),
    };
    return cmocka_run_group_tests_name("forked", tests, NULL, NULL);
}
