/* SPDX-License-Identifier: MIT */
/* The error model: names, messages, and the per-thread detail record. */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"
#include "support.h"

static void test_every_code_has_distinct_name_and_message(void **state)
{
    (void)state;
    for (int i = 0; i < CAPMEM_E__COUNT; i++) {
        const char *name = capmem_err_name((capmem_err_t)i);
        const char *msg = capmem_strerror((capmem_err_t)i);
        assert_non_null(name);
        assert_non_null(msg);
        assert_true(strlen(name) > 0);
        assert_true(strlen(msg) > 0);
        assert_string_not_equal(name, "UNKNOWN");
        for (int j = 0; j < i; j++) {
            assert_string_not_equal(name, capmem_err_name((capmem_err_t)j));
            assert_string_not_equal(msg, capmem_strerror((capmem_err_t)j));
        }
    }
    assert_int_equal(CAPMEM_OK, 0);
}

static void test_unknown_code_is_named_unknown(void **state)
{
    (void)state;
    assert_string_equal(capmem_err_name((capmem_err_t)CAPMEM_E__COUNT), "UNKNOWN");
    assert_string_equal(capmem_strerror((capmem_err_t)-1), "unknown error");
}

static void test_metadata_message_is_genode_wording(void **state)
{
    (void)state;
    assert_string_equal(capmem_strerror(CAPMEM_E_OUT_OF_METADATA), "Could not allocate metadata");
    assert_string_equal(capmem_err_name(CAPMEM_E_OUT_OF_METADATA), "OUT_OF_METADATA");
}

static void test_detail_carries_numbers_of_failure(void **state)
{
    (void)state;
    capmem_error_clear();
    assert_int_equal(capmem_last_error()->code, CAPMEM_OK);
    capmem_err_t e = capmem__fail_space(CAPMEM_E_OUT_OF_RAM, "f", 4096, 100, "need %d", 4096);
    assert_int_equal(e, CAPMEM_E_OUT_OF_RAM);
    const capmem_error_info_t *d = capmem_last_error();
    assert_int_equal(d->code, CAPMEM_E_OUT_OF_RAM);
    assert_int_equal(d->needed, 4096);
    assert_int_equal(d->available, 100);
    assert_string_equal(d->message, "need 4096");
    assert_string_equal(d->function, "f");
    e = capmem__fail_range("g", 3, 257, 1, 256, "count");
    assert_int_equal(e, CAPMEM_E_RANGE);
    assert_int_equal(d->argument, 3);
    assert_int_equal(d->bound_min, 1);
    assert_int_equal(d->bound_max, 256);
    assert_int_equal(d->needed, 0); /* cleared: only the fields of this failure are set */
}

static void test_detail_survives_successful_calls(void **state)
{
    (void)state;
    capmem_arena_t *a = NULL;
    capmem_arena_attr_t bad = CAPMEM_ARENA_ATTR_INIT;
    bad.page_size = 3;
    assert_err(capmem_arena_create(&bad, &a), CAPMEM_E_INVALID_ARGS);
    assert_ok(capmem_arena_create(NULL, &a));
    assert_int_equal(capmem_last_error()->code, CAPMEM_E_INVALID_ARGS);
    assert_non_null(strstr(capmem_last_error()->message, "page size 3"));
    capmem_arena_destroy(a);
}

static void *other_thread(void *arg)
{
    (void)arg;
    capmem__fail(CAPMEM_E_DENIED, "other", "from the other thread");
    return (void *)(uintptr_t)capmem_last_error()->code;
}

static void test_detail_is_per_thread(void **state)
{
    (void)state;
    capmem__fail(CAPMEM_E_CYCLE, "main", "from main");
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, other_thread, NULL), 0);
    void *ret = NULL;
    assert_int_equal(pthread_join(t, &ret), 0);
    assert_int_equal((uintptr_t)ret, CAPMEM_E_DENIED);
    assert_int_equal(capmem_last_error()->code, CAPMEM_E_CYCLE);
    assert_string_equal(capmem_last_error()->message, "from main");
}

static void test_version_string_matches_macros(void **state)
{
    (void)state;
    char buf[32];
    snprintf(buf, sizeof(buf), "%d.%d.%d", CAPMEM_VERSION_MAJOR, CAPMEM_VERSION_MINOR,
             CAPMEM_VERSION_PATCH);
    assert_string_equal(capmem_version(), buf);
}

static void test_error_set_records_a_hooks_own_detail(void **state)
{
    (void)state;
    capmem_error_clear();
    capmem_err_t err = capmem_error_set(CAPMEM_E_NOT_ENOUGH_MEMORY, "no run of %d pages", 7);
    capmem_error_set_numbers(7, 3);
    assert_int_equal(err, CAPMEM_E_NOT_ENOUGH_MEMORY);
    const capmem_error_info_t *e = capmem_last_error();
    assert_int_equal(e->code, CAPMEM_E_NOT_ENOUGH_MEMORY);
    assert_string_equal(e->message, "no run of 7 pages");
    assert_int_equal(e->needed, 7);
    assert_int_equal(e->available, 3);
    /* Without a format the message is the code's own. */
    assert_int_equal(capmem_error_set(CAPMEM_E_POLICY, NULL), CAPMEM_E_POLICY);
    assert_string_equal(capmem_last_error()->message, capmem_strerror(CAPMEM_E_POLICY));
    assert_int_equal(capmem_last_error()->needed, 0);
}

/*
 * The library's messages (capmem__fail) are formatted when read
 * (capmem_last_error()), from arguments captured at the failure: the text must be exactly what
 * snprintf gives at once, for every conversion the library uses, strings that died since, and
 * messages cut at the record's size.
 */
static void expect_same(const char *want)
{
    char exp[sizeof(((capmem_error_info_t *)0)->message)];
    size_t n = strlen(want) < sizeof(exp) - 1 ? strlen(want) : sizeof(exp) - 1;
    memcpy(exp, want, n);
    exp[n] = '\0';
    assert_string_equal(capmem_last_error()->message, exp);
}

static void test_lazy_message_reads_as_snprintf(void **state)
{
    (void)state;
    char want[1024];
    char dying[300];
    memset(dying, 'q', sizeof(dying) - 1);
    dying[sizeof(dying) - 1] = '\0';
    capmem__fail(CAPMEM_E_RANGE, "test",
                 "a %d b %u c %x d %016llx e %zu f %s g %% h %c i %-5s| j %lu", -3, 4u, 0xbeefu,
                 0x12ull, (size_t)9, "str", 'Z', "ab", 77ul);
    snprintf(want, sizeof(want), "a %d b %u c %x d %016llx e %zu f %s g %% h %c i %-5s| j %lu", -3,
             4u, 0xbeefu, 0x12ull, (size_t)9, "str", 'Z', "ab", 77ul);
    expect_same(want);
    /* A string gone before the message is read, and a message longer than the record. */
    capmem__fail(CAPMEM_E_RANGE, "test", "<%s> and %lld", dying, -5ll);
    snprintf(want, sizeof(want), "<%s> and %lld", dying, -5ll);
    memset(dying, 'x', sizeof(dying) - 1);
    expect_same(want);
    /* Reading twice gives the same text; a later failure replaces it. */
    expect_same(want);
    capmem__fail(CAPMEM_E_RANGE, "test", "%s then %s", capmem_last_error()->message, "more");
    want[0] = '<';
    memset(want + 1, 'q', 222); /* the first message, as it read: cut at the record's size */
    snprintf(want + 223, sizeof(want) - 223, " then more");
    expect_same(want);
    capmem__fail(CAPMEM_E_RANGE, "test", "[%s]", "short");
    expect_same("[short]");
    /* Formats the capture does not take are formatted at once, same text. */
    capmem__fail(CAPMEM_E_RANGE, "test", "%*d|%.3f", 6, 42, 1.5);
    expect_same("    42|1.500");
    capmem_error_clear();
    assert_string_equal(capmem_last_error()->message, "");
}

/*
 * Every length modifier and flag the capture parses (precision, hh/h, l, ll, j, z, t) and %p
 * give, when read later, the text snprintf gives at once.
 */
static void test_lazy_message_reads_as_snprintf_for_every_length_modifier(void **state)
{
    (void)state;
    char want[1024];
    int local = 0;
    void *ptr = &local;
    capmem__fail(CAPMEM_E_RANGE, "test", "a %.5d b %hd c %hhx d %ld e %lu f %jd g %td", -42,
                 (short)-3, (unsigned char)0xab, -77l, 78ul, (intmax_t)-9, (ptrdiff_t)-11);
    snprintf(want, sizeof(want), "a %.5d b %hd c %hhx d %ld e %lu f %jd g %td", -42, (short)-3,
             (unsigned char)0xab, -77l, 78ul, (intmax_t)-9, (ptrdiff_t)-11);
    expect_same(want);
    capmem__fail(CAPMEM_E_RANGE, "test", "h %zd i %p j %llo k %lli l %#o m %X", (size_t)12, ptr,
                 0777ull, -13ll, 8u, 0xcafeu);
    snprintf(want, sizeof(want), "h %zd i %p j %llo k %lli l %#o m %X", (size_t)12, ptr, 0777ull,
             -13ll, 8u, 0xcafeu);
    expect_same(want);
    assert_int_equal(capmem_last_error()->code, CAPMEM_E_RANGE);
    capmem_error_clear();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_code_has_distinct_name_and_message),
        cmocka_unit_test(test_unknown_code_is_named_unknown),
        cmocka_unit_test(test_metadata_message_is_genode_wording),
        cmocka_unit_test(test_detail_carries_numbers_of_failure),
        cmocka_unit_test(test_detail_survives_successful_calls),
        cmocka_unit_test(test_detail_is_per_thread),
        cmocka_unit_test(test_version_string_matches_macros),
        cmocka_unit_test(test_error_set_records_a_hooks_own_detail),
        cmocka_unit_test(test_lazy_message_reads_as_snprintf),
        cmocka_unit_test(test_lazy_message_reads_as_snprintf_for_every_length_modifier),
    };
    return cmocka_run_group_tests_name("error", tests, NULL, NULL);
}
