/* SPDX-License-Identifier: MIT */
/*
 * KNOWN LIBRARY BUGS: minimal reproductions found by the reliability suite,
 * written as tests of the documented behaviour, so they FAIL until src/ is
 * fixed. tests/meson.build runs this executable with should_fail: true, so
 * the suite reports it as an expected failure; when a fix lands the test
 * passes, Meson reports an unexpected pass, and the entry (and
 * should_fail) can go. Each entry says what is wrong and where to look.
 *
 * 1. An untyped trusts a user policy's answers that leave the untyped.
 *    capmem_untyped_set_policy() accepts a user policy whose span covers
 *    the untyped's [0, 2^size_bits), larger spans included, and
 *    capmem_alloc_create_custom() makes one with the span [0, 2^64). The
 *    wrapper then checks answers against that span only, and
 *    capmem_untyped_retype() (place() in src/untyped.c) uses an answer past
 *    the untyped's end: the retype succeeds with an object outside the
 *    untyped (capmem_check: "child at ... lies outside it"), and an answer
 *    beyond the arena makes the retype zero memory that is not mapped
 *    (SIGSEGV in capmem__backing_zero); once an object lies outside, the
 *    arena's destruction leaks the boot untypeds' records (Valgrind; which
 *    is why this file does not run under the Valgrind setup). Expected, per
 *    DESIGN.md ("every
 *    answer of a placement policy ... is checked (inside the span ...)")
 *    and capmem/alloc.h: CAPMEM_E_POLICY, nothing changed. The interpreter's
 *    liar (tests/ops/interp.c, LIAR_UNBOUNDED) hits it at once when it uses
 *    capmem_alloc_create_custom().
 */
#include <string.h>

#include "support.h"

#define UT_BITS 16
#define UT_SIZE (1ull << UT_BITS)

/* Answers `answer` to every alloc; everything else succeeds. */
static uint64_t answer;

static capmem_err_t fixed_alloc(void *self, uint64_t size, uint64_t align, uint64_t *offset)
{
    (void)self;
    (void)size;
    (void)align;
    *offset = answer;
    return CAPMEM_OK;
}

static capmem_err_t ok_at(void *self, uint64_t offset, uint64_t size)
{
    (void)self;
    (void)offset;
    (void)size;
    return CAPMEM_OK;
}

static uint64_t all_free(const void *self)
{
    (void)self;
    return UT_SIZE;
}

static void no_reset(void *self)
{
    (void)self;
}

static const capmem_alloc_ops_t fixed_ops = {
    .name = "fixed",
    .alloc = fixed_alloc,
    .alloc_at = ok_at,
    .free = ok_at,
    .avail = all_free,
    .largest = all_free,
    .reset = no_reset,
};

/* A retype through a policy that answers just past the untyped's end. */
static void retype_past_the_end(int span_twice)
{
    capmem_arena_attr_t at = CAPMEM_ARENA_ATTR_INIT;
    at.ram_size = (3ull << 20) + UT_SIZE; /* boot untypeds: 1 MiB, 2 MiB, 64 KiB */
    at.phys_base = 0x100000;
    capmem_arena_t *a = NULL;
    assert_ok(capmem_arena_create(&at, &a));
    capmem_untyped_info_t boot[4];
    size_t n = 0;
    assert_ok(capmem_untyped_boot(a, boot, 4, &n));
    assert_int_equal(n, 3);
    assert_int_equal(boot[2].size_bits, UT_BITS);
    capmem_alloc_t *pol = NULL;
    if (span_twice) {
        assert_ok(capmem_alloc_create_custom_span(&fixed_ops, NULL, 0, 2 * UT_SIZE, &pol));
    } else {
        assert_ok(capmem_alloc_create_custom(&fixed_ops, NULL, &pol));
    }
    /* Accepted: the policy's span covers the untyped. */
    assert_ok(capmem_untyped_set_policy(a, boot[2].cap, CAPMEM_UNTYPED_WATERMARK, pol));
    const size_t caps = capmem_cap_count(a);
    answer = UT_SIZE; /* aligned, inside the policy's span, one byte past the untyped */
    capmem_retype_attr_t ra = CAPMEM_RETYPE_ATTR_INIT;
    ra.type = CAPMEM_OBJ_KOBJ;
    ra.size_bits = 10;
    capmem_cap_t obj = CAPMEM_CAP_NULL;
    capmem_err_t err = capmem_untyped_retype(a, boot[2].cap, &ra, &obj, 1);
    char why[256];
    capmem_err_t check = capmem_check(a, why, sizeof(why));
    const size_t caps_after = capmem_cap_count(a);
    capmem_object_info_t oi = {0};
    if (err == CAPMEM_OK) {
        assert_ok(capmem_object_info(a, obj, &oi));
        assert_ok(capmem_cap_delete(a, obj)); /* tidy up before failing */
    }
    capmem_arena_destroy(a);
    if (err != CAPMEM_E_POLICY) {
        fail_msg("span %s: retype with an answer past the untyped returned %s (object at backing "
                 "offset 0x%llx, the untyped is [0x%llx, +0x%llx)); capmem_check said %s%s%s; "
                 "expected POLICY",
                 span_twice ? "[0, 2 * size)" : "[0, 2^64)", capmem_err_name(err),
                 (unsigned long long)oi.offset, (unsigned long long)boot[2].offset,
                 (unsigned long long)UT_SIZE, capmem_err_name(check), check ? ": " : "", why);
    }
    /* Refused: nothing changed. */
    assert_int_equal(check, CAPMEM_OK);
    assert_int_equal(caps_after, caps);
    assert_int_equal(obj, CAPMEM_CAP_NULL);
}

static void test_bug_untyped_uses_an_unbounded_custom_policys_answer_past_its_end(void **state)
{
    (void)state;
    retype_past_the_end(0);
}

static void test_bug_untyped_uses_a_wider_custom_policys_answer_past_its_end(void **state)
{
    (void)state;
    retype_past_the_end(1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bug_untyped_uses_an_unbounded_custom_policys_answer_past_its_end),
        cmocka_unit_test(test_bug_untyped_uses_a_wider_custom_policys_answer_past_its_end),
    };
    return cmocka_run_group_tests_name("known_bugs", tests, NULL, NULL);
}
