/* SPDX-License-Identifier: MIT */
/*
 * The conformance suite (capmem/conform.h): the built-in policies and the
 * walkthrough's next fit pass it; a deliberately broken policy for each
 * property of the contract is caught, with a short sequence and a seed that
 * replays it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "liar.h"
#include "support.h"

/* ---- a first-fit bitmap policy with one bug per property --------------------------- */

enum {
    BUG_ALIGN = 1 << 0,      /* ignores alignments above the granule */
    BUG_OVERLAP = 1 << 1,    /* forgets to mark what it hands out */
    BUG_FREE = 1 << 2,       /* says OK to any free */
    BUG_COUNTS = 1 << 3,     /* avail is off by a granule once something is used */
    BUG_LARGEST = 1 << 4,    /* largest is all free bytes, contiguous or not */
    BUG_RESET = 1 << 5,      /* reset forgets the used counter */
    BUG_CHECK = 1 << 6,      /* its check fails with more than 5 live blocks */
    BUG_ALLOC_AT = 1 << 7,   /* alloc_at takes taken units too */
    BUG_AT_LEAKS = 1 << 8,   /* a refused alloc_at loses a unit */
    BUG_FREE_LEAKS = 1 << 9, /* a refused free loses a unit */
    BUG_ONCE = 1 << 11,      /* its check fails once in the whole run, never again */
    BUG_TIMID = 1 << 10,     /* alloc refuses more than 4 units, though largest says it fits */
};

typedef struct bits {
    uint64_t base;
    uint64_t g;
    uint64_t units;
    uint64_t used; /* units */
    uint64_t live;
    unsigned bugs;
    uint8_t *st;   /* 0 free, 1 start of a block, 2 inside one */
    uint64_t *len; /* units, at starts */
} bits_t;

static uint64_t need_units(const bits_t *b, uint64_t size)
{
    return (size + b->g - 1) / b->g;
}

static void mark(bits_t *b, uint64_t u, uint64_t n)
{
    for (uint64_t k = 0; k < n; k++) {
        b->st[u + k] = k == 0 ? 1 : 2;
    }
    b->len[u] = n;
    b->used += n;
    b->live++;
}

static int run_free(const bits_t *b, uint64_t u, uint64_t n)
{
    for (uint64_t k = 0; k < n; k++) {
        if (u + k >= b->units || b->st[u + k] != 0) {
            return 0;
        }
    }
    return 1;
}

static capmem_err_t bits_alloc(void *self, uint64_t size, uint64_t align, uint64_t *offset)
{
    bits_t *b = self;
    uint64_t n = need_units(b, size);
    uint64_t a = align > b->g ? align : b->g;
    if ((b->bugs & BUG_TIMID) && n > 4) {
        return CAPMEM_E_NOT_ENOUGH_MEMORY;
    }
    for (uint64_t u = 0; u + n <= b->units; u++) {
        uint64_t off = b->base + u * b->g;
        if (!(b->bugs & BUG_ALIGN) && off % a != 0) {
            continue;
        }
        if (run_free(b, u, n)) {
            if (!(b->bugs & BUG_OVERLAP)) {
                mark(b, u, n);
            }
            *offset = off;
            return CAPMEM_OK;
        }
    }
    return CAPMEM_E_NOT_ENOUGH_MEMORY;
}

static capmem_err_t bits_alloc_at(void *self, uint64_t offset, uint64_t size)
{
    bits_t *b = self;
    uint64_t u = (offset - b->base) / b->g;
    uint64_t n = need_units(b, size);
    if ((offset - b->base) % b->g != 0 || u + n > b->units) {
        return CAPMEM_E_INVALID_ARGS;
    }
    if (!(b->bugs & BUG_ALLOC_AT) && !run_free(b, u, n)) {
        b->used += (b->bugs & BUG_AT_LEAKS) ? 1 : 0;
        return CAPMEM_E_NOT_ENOUGH_MEMORY;
    }
    if (b->bugs & BUG_ALLOC_AT) {
        for (uint64_t k = 0; k < n; k++) {
            if (b->st[u + k] == 1) {
                b->used -= b->len[u + k];
                b->live--;
            }
            b->st[u + k] = 0;
        }
        /* Blocks it cut into keep their tails marked as inside: clear whole blocks. */
        for (uint64_t k = u + n; k < b->units && b->st[k] == 2; k++) {
            b->st[k] = 0;
        }
    }
    mark(b, u, n);
    return CAPMEM_OK;
}

static capmem_err_t bits_free(void *self, uint64_t offset, uint64_t size)
{
    bits_t *b = self;
    uint64_t u = (offset - b->base) / b->g;
    if ((offset - b->base) % b->g != 0 || u >= b->units || b->st[u] != 1 ||
        b->len[u] != need_units(b, size)) {
        b->used += (b->bugs & BUG_FREE_LEAKS) ? 1 : 0;
        return (b->bugs & BUG_FREE) ? CAPMEM_OK : CAPMEM_E_NOT_ALLOCATED;
    }
    for (uint64_t k = 0; k < b->len[u]; k++) {
        b->st[u + k] = 0;
    }
    b->used -= b->len[u];
    b->live--;
    return CAPMEM_OK;
}

static uint64_t bits_avail(const void *self)
{
    const bits_t *b = self;
    uint64_t avail = (b->units - b->used) * b->g;
    return (b->bugs & BUG_COUNTS) && b->used > 0 ? avail - b->g : avail;
}

static uint64_t bits_largest(const void *self)
{
    const bits_t *b = self;
    if (b->bugs & BUG_LARGEST) {
        return (b->units - b->used) * b->g;
    }
    uint64_t best = 0;
    uint64_t run = 0;
    for (uint64_t u = 0; u < b->units; u++) {
        run = b->st[u] == 0 ? run + 1 : 0;
        best = run > best ? run : best;
    }
    return best * b->g;
}

static void bits_reset(void *self)
{
    bits_t *b = self;
    memset(b->st, 0, b->units);
    b->live = 0;
    if (!(b->bugs & BUG_RESET)) {
        b->used = 0;
    }
}

static void bits_destroy(void *self)
{
    bits_t *b = self;
    free(b->st);
    free(b->len);
    free(b);
}

static bool once_fired;     /* BUG_ONCE: the check has failed already */
static unsigned once_calls; /* BUG_ONCE: checks so far */
static unsigned once_at;    /* BUG_ONCE: the first check that may fail */

static capmem_err_t bits_check(const void *self, char *why, size_t len)
{
    const bits_t *b = self;
    if ((b->bugs & BUG_ONCE) && !once_fired && ++once_calls > once_at && b->live > 5) {
        once_fired = true;
        snprintf(why, len, "failed once");
        return CAPMEM_E_CORRUPT;
    }
    if ((b->bugs & BUG_CHECK) && b->live > 5) {
        snprintf(why, len, "more than five live blocks");
        return CAPMEM_E_CORRUPT;
    }
    return CAPMEM_OK;
}

static capmem_err_t bits_walk(const void *self, capmem_alloc_walk_fn fn, void *ctx)
{
    const bits_t *b = self;
    for (uint64_t u = 0; u < b->units;) {
        uint64_t n = 1;
        if (b->st[u] == 1) {
            n = b->len[u];
        } else {
            while (u + n < b->units && b->st[u + n] == 0 && b->st[u] == 0) {
                n++;
            }
        }
        capmem_block_state_t s = b->st[u] == 0 ? CAPMEM_BLOCK_FREE : CAPMEM_BLOCK_USED;
        if (fn(b->base + u * b->g, n * b->g, s, ctx) != 0) {
            break;
        }
        u += n;
    }
    return CAPMEM_OK;
}

static capmem_err_t bits_create(void *ctx, uint64_t base, uint64_t size, uint64_t granule,
                                void **self)
{
    bits_t *b = calloc(1, sizeof(*b));
    if (b == NULL) {
        return CAPMEM_E_HOST_NOMEM;
    }
    b->base = base;
    b->g = granule;
    b->units = size / granule;
    b->bugs = *(const unsigned *)ctx;
    b->st = calloc(b->units, 1);
    b->len = calloc(b->units, sizeof(uint64_t));
    if (b->st == NULL || b->len == NULL) {
        bits_destroy(b);
        return CAPMEM_E_HOST_NOMEM;
    }
    *self = b;
    return CAPMEM_OK;
}

static const capmem_alloc_ops_t bits_ops = {
    .name = "bits",
    .alloc = bits_alloc,
    .alloc_at = bits_alloc_at,
    .free = bits_free,
    .avail = bits_avail,
    .largest = bits_largest,
    .reset = bits_reset,
    .destroy = bits_destroy,
    .check = bits_check,
    .walk = bits_walk,
    .create = bits_create,
};

/* Small and quick, the same for every run here. */
static capmem_conform_attr_t small_attr(void)
{
    capmem_conform_attr_t at = CAPMEM_CONFORM_ATTR_INIT;
    at.seed = 7;
    at.sequences = test_under_valgrind() ? 20 : 60;
    at.ops = 120;
    at.base = 0x10000;
    at.size = 0x2000;
    at.granule = 16;
    return at;
}

static void test_conform_builtin_policies_and_next_fit_pass(void **state)
{
    (void)state;
    const capmem_alloc_policy_t recipes[] = {
        CAPMEM_ALLOC_POLICY(CAPMEM_ALLOC_WATERMARK),
        CAPMEM_ALLOC_POLICY(CAPMEM_ALLOC_RANGE),
        CAPMEM_ALLOC_POLICY(CAPMEM_ALLOC_BUDDY),
        CAPMEM_ALLOC_POLICY_CUSTOM(&next_fit_ops, NULL),
    };
    unsigned clean = 0;
    const capmem_alloc_policy_t bitsp = CAPMEM_ALLOC_POLICY_CUSTOM(&bits_ops, &clean);
    capmem_conform_result_t *res = malloc(sizeof(*res));
    assert_non_null(res);
    for (size_t i = 0; i < 5; i++) {
        capmem_conform_attr_t at = small_attr();
        capmem_err_t err = capmem_conform_run(i < 4 ? &recipes[i] : &bitsp, &at, res);
        if (err != CAPMEM_OK) {
            fail_msg("%s", res->report);
        }
        assert_int_equal(res->violated, 0);
        assert_int_equal(res->sequences, at.sequences);
        assert_true(res->ops > at.sequences * 100u);
        assert_non_null(strstr(res->report, "PASS"));
    }
    free(res);
}

static void test_conform_catches_a_broken_policy_for_each_property(void **state)
{
    (void)state;
    static const struct {
        unsigned bug;
        capmem_conform_property_t property;
    } cases[] = {
        {BUG_ALIGN, CAPMEM_CONFORM_INSIDE_ALIGNED},
        {BUG_OVERLAP, CAPMEM_CONFORM_NO_OVERLAP},
        {BUG_FREE, CAPMEM_CONFORM_FREE},
        {BUG_COUNTS, CAPMEM_CONFORM_COUNTS},
        {BUG_LARGEST, CAPMEM_CONFORM_LARGEST},
        {BUG_RESET, CAPMEM_CONFORM_RESET},
        {BUG_CHECK, CAPMEM_CONFORM_CHECK},
        {BUG_ALLOC_AT, CAPMEM_CONFORM_ALLOC_AT},
        {BUG_AT_LEAKS, CAPMEM_CONFORM_ALLOC_AT},
        {BUG_FREE_LEAKS, CAPMEM_CONFORM_FREE},
        {BUG_TIMID, CAPMEM_CONFORM_LARGEST},
    };
    capmem_conform_result_t *res = malloc(sizeof(*res));
    capmem_conform_result_t *again = malloc(sizeof(*again));
    assert_non_null(res);
    assert_non_null(again);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        unsigned bug = cases[i].bug;
        const capmem_alloc_policy_t p = CAPMEM_ALLOC_POLICY_CUSTOM(&bits_ops, &bug);
        capmem_conform_attr_t at = small_attr();
        assert_err(capmem_conform_run(&p, &at, res), CAPMEM_E_POLICY);
        const capmem_conform_property_t want = cases[i].property;
        if (!(res->violated & (1u << want))) {
            fail_msg("bug 0x%x: %s not reported:\n%s", bug, capmem_conform_property_name(want),
                     res->report);
        }
        const capmem_conform_violation_t *v = &res->violation[want];
        /* Shrunk: a handful of operations, never more than it took to fail. */
        assert_true(v->length >= 1);
        assert_true(v->length <= v->original);
        assert_true(v->length <= 8);
        char head[64];
        snprintf(head, sizeof(head), "FAIL %s", capmem_conform_property_name(want));
        assert_non_null(strstr(res->report, head));
        char seed[64];
        snprintf(seed, sizeof(seed), "seed %llu", (unsigned long long)v->seed);
        assert_non_null(strstr(res->report, seed));
        /* The printed seed replays the same failure on its own. */
        at.seed = v->seed;
        at.sequences = 1;
        assert_err(capmem_conform_run(&p, &at, again), CAPMEM_E_POLICY);
        assert_true(again->violated & (1u << want));
        assert_int_equal(again->violation[want].length, v->length);
        assert_int_equal(again->violation[want].original, v->original);
        assert_string_equal(again->violation[want].what, v->what);
    }
    free(again);
    free(res);
}

static void test_conform_refuses_bad_arguments(void **state)
{
    (void)state;
    capmem_conform_result_t *res = malloc(sizeof(*res));
    assert_non_null(res);
    memset(res, 0x5a, sizeof(*res));
    const capmem_alloc_policy_t nf = CAPMEM_ALLOC_POLICY_CUSTOM(&next_fit_ops, NULL);
    assert_err(capmem_conform_run(NULL, NULL, res), CAPMEM_E_INVALID_ARGS);
    assert_err(capmem_conform_run(&nf, NULL, NULL), CAPMEM_E_INVALID_ARGS);
    capmem_conform_attr_t at = small_attr();
    at.ops = 100001;
    assert_err(capmem_conform_run(&nf, &at, res), CAPMEM_E_INVALID_ARGS);
    at = small_attr();
    at.granule = 3;
    assert_err(capmem_conform_run(&nf, &at, res), CAPMEM_E_INVALID_ARGS);
    capmem_alloc_ops_t no_create = next_fit_ops;
    no_create.create = NULL;
    const capmem_alloc_policy_t bad = CAPMEM_ALLOC_POLICY_CUSTOM(&no_create, NULL);
    at = small_attr();
    assert_err(capmem_conform_run(&bad, &at, res), CAPMEM_E_INVALID_ARGS);
    assert_int_equal(res->violated, 0x5a5a5a5au); /* untouched */
    assert_string_equal(capmem_conform_property_name(CAPMEM_CONFORM_PROPERTIES), "");
    free(res);
}

/* With a FILE, the report is printed as it runs: the same text the result holds. */
static void test_conform_prints_the_report_it_returns(void **state)
{
    (void)state;
    capmem_conform_result_t *res = malloc(sizeof(*res));
    char *printed = calloc(1, sizeof(res->report) + 1);
    assert_non_null(res);
    assert_non_null(printed);
    FILE *f = tmpfile();
    assert_non_null(f);
    unsigned bug = BUG_OVERLAP;
    const capmem_alloc_policy_t p = CAPMEM_ALLOC_POLICY_CUSTOM(&bits_ops, &bug);
    capmem_conform_attr_t at = small_attr();
    at.report = f;
    assert_err(capmem_conform_run(&p, &at, res), CAPMEM_E_POLICY);
    rewind(f);
    size_t n = fread(printed, 1, sizeof(res->report), f);
    fclose(f);
    size_t len = strlen(res->report);
    assert_true(len > 0);
    assert_true(n >= len);
    assert_memory_equal(printed, res->report, len);
    assert_non_null(strstr(printed, "FAIL"));
    free(printed);
    free(res);
}

/* A policy whose failure does not come back when replayed: the unshrunk sequence is reported. */
static void test_conform_reports_a_failure_that_does_not_replay_unshrunk(void **state)
{
    (void)state;
    capmem_conform_result_t *res = malloc(sizeof(*res));
    assert_non_null(res);
    unsigned bug = BUG_ONCE;
    once_fired = false;
    once_calls = 0;
    once_at = 0;
    const capmem_alloc_policy_t p = CAPMEM_ALLOC_POLICY_CUSTOM(&bits_ops, &bug);
    capmem_conform_attr_t at = small_attr();
    assert_err(capmem_conform_run(&p, &at, res), CAPMEM_E_POLICY);
    assert_true(once_fired);
    assert_int_equal(res->violated, 1u << CAPMEM_CONFORM_CHECK);
    const capmem_conform_violation_t *v = &res->violation[CAPMEM_CONFORM_CHECK];
    assert_int_equal(v->length, v->original);
    assert_non_null(strstr(v->what, "failed once"));
    free(res);
}

/*
 * A failure late in a long sequence that does not come back on replay: the run still reports
 * it, and the FILE gets exactly the text the result holds, the long sequence included.
 */
static void test_conform_prints_a_long_failing_sequence_as_the_result_holds_it(void **state)
{
    (void)state;
    capmem_conform_result_t *res = malloc(sizeof(*res));
    char *printed = calloc(1, sizeof(res->report) + 1);
    assert_non_null(res);
    assert_non_null(printed);
    FILE *f = tmpfile();
    assert_non_null(f);
    unsigned bug = BUG_ONCE;
    once_fired = false;
    once_calls = 0;
    once_at = 150;
    const capmem_alloc_policy_t p = CAPMEM_ALLOC_POLICY_CUSTOM(&bits_ops, &bug);
    capmem_conform_attr_t at = small_attr();
    at.ops = 300;
    at.sequences = 1;
    at.report = f;
    assert_err(capmem_conform_run(&p, &at, res), CAPMEM_E_POLICY);
    assert_true(once_fired);
    assert_int_equal(res->violated, 1u << CAPMEM_CONFORM_CHECK);
    assert_true(res->violation[CAPMEM_CONFORM_CHECK].original > 150);
    rewind(f);
    size_t n = fread(printed, 1, sizeof(res->report), f);
    fclose(f);
    assert_int_equal(n, strlen(res->report));
    assert_memory_equal(printed, res->report, n);
    unsigned lines = 0;
    for (const char *l = strstr(printed, "\n    "); l != NULL; l = strstr(l + 1, "\n    ")) {
        lines += l[5] == ' ' || (l[5] >= '0' && l[5] <= '9');
    }
    assert_true(lines > 50); /* the sequence is printed, not just its summary */
    assert_non_null(strstr(printed, "FAIL check: check failed: failed once"));
    free(printed);
    free(res);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conform_builtin_policies_and_next_fit_pass),
        cmocka_unit_test(test_conform_catches_a_broken_policy_for_each_property),
        cmocka_unit_test(test_conform_refuses_bad_arguments),
        cmocka_unit_test(test_conform_prints_the_report_it_returns),
        cmocka_unit_test(test_conform_reports_a_failure_that_does_not_replay_unshrunk),
        cmocka_unit_test(test_conform_prints_a_long_failing_sequence_as_the_result_holds_it),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
