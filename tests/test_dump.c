/* SPDX-License-Identifier: MIT */
/*
 * Layer 9: capmem_dump() and capmem_dump_ex(): what each format shows, the
 * subtree and section options, and every error, which writes nothing and
 * changes nothing. (The seed scenarios' JSON, DOT and SVG are checked by
 * tests/dump_check.py.)
 */
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>

#include "support.h"

#define PAGE 4096ull

typedef test_world_t fixture_t;

static fixture_t fx;

static int setup(void **state)
{
    test_world_open(&fx, 8ull << 20, 2ull << 20);
    *state = &fx;
    return 0;
}

static int teardown(void **state)
{
    test_world_close(*state);
    return 0;
}

/* The dump as a string (malloc'd; the caller frees). */
static char *dump_of(capmem_arena_t *a, const capmem_dump_opts_t *o)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    assert_ok(capmem_dump_ex(a, f, o));
    fclose(f);
    return buf;
}

static size_t count(const char *hay, const char *needle)
{
    size_t n = 0;
    for (const char *p = strstr(hay, needle); p != NULL; p = strstr(p + 1, needle)) {
        n++;
    }
    return n;
}

static void test_dump_text_shows_every_section(void **state)
{
    fixture_t *f = *state;
    capmem_cap_t ds;
    assert_ok(capmem_ram_alloc(f->arena, f->client, 3 * PAGE, &ds));
    capmem_rm_open_attr_t ra = CAPMEM_RM_OPEN_ATTR_INIT;
    ra.size = 1u << 20;
    ra.label = "space";
    capmem_cap_t rm;
    assert_ok(capmem_rm_open(f->arena, f->client, &ra, &rm));
    capmem_rm_attach_attr_t at = CAPMEM_RM_ATTACH_ATTR_INIT;
    uint64_t addr;
    assert_ok(capmem_rm_attach(f->arena, rm, ds, &at, &addr));
    capmem_dump_opts_t o = CAPMEM_DUMP_OPTS_INIT;
    char *text = dump_of(f->arena, &o);
    assert_non_null(strstr(text, "== capabilities =="));
    assert_non_null(strstr(text, "== untyped memory =="));
    assert_non_null(strstr(text, "\"client\""));
    assert_non_null(strstr(text, "== physical memory =="));
    assert_non_null(strstr(text, "12 KiB  dataspace"));
    assert_non_null(strstr(text, "map "));
    assert_non_null(strstr(text, "\"space\""));
    assert_non_null(strstr(text, "not booted"));
    assert_non_null(strstr(text, "== statistics =="));
    /* Every live capability once in the capability section. */
    char handle[32];
    snprintf(handle, sizeof(handle), "0x%llx region map", (unsigned long long)rm);
    assert_int_equal(count(text, handle), 1);
    free(text);
    /* capmem_dump() is capmem_dump_ex() with the defaults. */
    char *buf = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&buf, &len);
    assert_ok(capmem_dump(f->arena, m, CAPMEM_DUMP_TEXT));
    fclose(m);
    text = dump_of(f->arena, &o);
    assert_string_equal(buf, text);
    free(buf);
    free(text);
    CHECK_INVARIANTS(f->arena);
}

static void test_dump_subtree_of_an_account_shows_only_its_objects(void **state)
{
    fixture_t *f = *state;
    capmem_ram_open_attr_t oa = CAPMEM_RAM_OPEN_ATTR_INIT;
    oa.quota = 256u << 10;
    oa.label = "child";
    capmem_cap_t child;
    assert_ok(capmem_ram_open(f->arena, f->client, &oa, &child));
    capmem_cap_t mine, other;
    assert_ok(capmem_ram_alloc(f->arena, child, PAGE, &mine));
    assert_ok(capmem_ram_alloc(f->arena, f->root, PAGE, &other));
    capmem_dump_opts_t o = CAPMEM_DUMP_OPTS_INIT;
    o.root = child;
    o.format = CAPMEM_DUMP_JSON;
    char *json = dump_of(f->arena, &o);
    char h[32];
    snprintf(h, sizeof(h), "\"0x%llx\"", (unsigned long long)mine);
    assert_non_null(strstr(json, h));
    snprintf(h, sizeof(h), "\"0x%llx\"", (unsigned long long)other);
    assert_null(strstr(json, h));
    assert_null(strstr(json, "\"kind\":\"free\"")); /* a subtree shows what it holds */
    free(json);
    /* Sections: only the capability tree. */
    o.sections = CAPMEM_DUMP_CAPS;
    o.format = CAPMEM_DUMP_TEXT;
    char *text = dump_of(f->arena, &o);
    assert_non_null(strstr(text, "== capabilities =="));
    assert_null(strstr(text, "== physical memory =="));
    free(text);
    /* An older, smaller options struct (no root field) dumps the whole arena. */
    capmem_dump_opts_t old = CAPMEM_DUMP_OPTS_INIT;
    old.size = CAPMEM_DUMP_OPTS_SIZE_MIN;
    text = dump_of(f->arena, &old);
    assert_non_null(strstr(text, "== untyped memory =="));
    free(text);
    CHECK_INVARIANTS(f->arena);
}

static void test_dump_formats_write_json_dot_svg(void **state)
{
    fixture_t *f = *state;
    capmem_cap_t ds;
    assert_ok(capmem_ram_alloc(f->arena, f->client, PAGE, &ds));
    capmem_dump_opts_t o = CAPMEM_DUMP_OPTS_INIT;
    o.format = CAPMEM_DUMP_JSON;
    char *s = dump_of(f->arena, &o);
    assert_non_null(strstr(s, "{\"format\":\"capmem-dump\",\"version\":1"));
    free(s);
    o.format = CAPMEM_DUMP_DOT;
    s = dump_of(f->arena, &o);
    assert_true(strncmp(s, "digraph capmem {", 16) == 0);
    free(s);
    o.format = CAPMEM_DUMP_SVG;
    s = dump_of(f->arena, &o);
    assert_non_null(strstr(s, "<svg xmlns=\"http://www.w3.org/2000/svg\""));
    assert_non_null(strstr(s, "</svg>"));
    free(s);
}

/* A label with quotes, backslashes, control characters and bytes that are not UTF-8. */
static void test_dump_escapes_labels_in_every_format(void **state)
{
    fixture_t *f = *state;
    capmem_ram_open_attr_t oa = CAPMEM_RAM_OPEN_ATTR_INIT;
    oa.quota = 64u << 10;
    oa.label = "a\"b\\c\nd\x01\xff<&>";
    capmem_cap_t acc;
    assert_ok(capmem_ram_open(f->arena, f->client, &oa, &acc));
    capmem_dump_opts_t o = CAPMEM_DUMP_OPTS_INIT;
    o.format = CAPMEM_DUMP_JSON;
    char *s = dump_of(f->arena, &o);
    assert_non_null(strstr(s, "\"a\\\"b\\\\c\\nd\\u0001\\ufffd<&>\""));
    free(s);
    o.format = CAPMEM_DUMP_SVG;
    s = dump_of(f->arena, &o);
    assert_non_null(strstr(s, "a&quot;b\\c&#10;d\xef\xbf\xbd\xef\xbf\xbd&lt;&amp;&gt;"));
    free(s);
    o.format = CAPMEM_DUMP_DOT;
    s = dump_of(f->arena, &o);
    assert_non_null(strstr(s, "a\\\"b\\\\c\\nd \xef\xbf\xbd<&>"));
    free(s);
}

static void test_dump_errors_write_nothing_and_change_nothing(void **state)
{
    fixture_t *f = *state;
    char *buf = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&buf, &len);
    capmem_dump_opts_t o = CAPMEM_DUMP_OPTS_INIT;
    const size_t caps = capmem_cap_count(f->arena);
    assert_err(capmem_dump(NULL, m, CAPMEM_DUMP_TEXT), CAPMEM_E_INVALID_ARGS);
    assert_err(capmem_dump(f->arena, NULL, CAPMEM_DUMP_TEXT), CAPMEM_E_INVALID_ARGS);
    assert_err(capmem_dump(f->arena, m, (capmem_dump_format_t)4), CAPMEM_E_INVALID_ARGS);
    assert_err(capmem_dump_ex(f->arena, m, NULL), CAPMEM_E_INVALID_ARGS);
    o.size = CAPMEM_DUMP_OPTS_SIZE_MIN - 1;
    assert_err(capmem_dump_ex(f->arena, m, &o), CAPMEM_E_INVALID_ARGS);
    o.size = sizeof(o);
    o.sections = 1u << 20;
    assert_err(capmem_dump_ex(f->arena, m, &o), CAPMEM_E_INVALID_ARGS);
    o.sections = CAPMEM_DUMP_ALL;
    capmem_cap_t ds;
    assert_ok(capmem_ram_alloc(f->arena, f->client, PAGE, &ds));
    assert_ok(capmem_ds_free(f->arena, ds));
    o.root = ds; /* stale */
    assert_err(capmem_dump_ex(f->arena, m, &o), CAPMEM_E_INVALID_CAP);
    o.root = 0x123456789ull; /* forged */
    assert_err(capmem_dump_ex(f->arena, m, &o), CAPMEM_E_INVALID_CAP);
    fflush(m);
    assert_int_equal(len, 0);
    fclose(m);
    free(buf);
    assert_int_equal(capmem_cap_count(f->arena), caps);
    /* A stream that cannot be written is reported. */
    FILE *ro = fopen("/dev/null", "r");
    assert_non_null(ro);
    assert_err(capmem_dump(f->arena, ro, CAPMEM_DUMP_JSON), CAPMEM_E_SYSTEM);
    fclose(ro);
    CHECK_INVARIANTS(f->arena);
}

static int visit_and_dump(const capmem_cap_info_t *info, unsigned depth, void *ctx)
{
    (void)info;
    (void)depth;
    capmem_arena_t *a = ctx;
    FILE *null = fopen("/dev/null", "w");
    const capmem_err_t err = capmem_dump(a, null, CAPMEM_DUMP_TEXT);
    fclose(null);
    assert_int_equal(err, CAPMEM_E_REENTRANT);
    return 1;
}

static void test_dump_from_a_visitor_is_reentrant(void **state)
{
    fixture_t *f = *state;
    assert_ok(capmem_cap_walk(f->arena, f->root, visit_and_dump, f->arena));
}

/* A fresh arena: no layer set up, every section empty but present. */
static void test_dump_of_an_empty_arena(void **state)
{
    (void)state;
    capmem_arena_t *a = test_arena(1u << 20, PAGE);
    capmem_dump_opts_t o = CAPMEM_DUMP_OPTS_INIT;
    o.format = CAPMEM_DUMP_JSON;
    char *s = dump_of(a, &o);
    assert_non_null(strstr(s, "\"capabilities\":[\n]"));
    assert_non_null(strstr(s, "\"kind\":\"unclaimed\""));
    free(s);
    for (int fmt = CAPMEM_DUMP_TEXT; fmt <= CAPMEM_DUMP_SVG; fmt++) {
        o.format = (capmem_dump_format_t)fmt;
        free(dump_of(a, &o));
    }
    capmem_arena_destroy(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_dump_text_shows_every_section, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dump_subtree_of_an_account_shows_only_its_objects,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_dump_formats_write_json_dot_svg, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dump_escapes_labels_in_every_format, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dump_errors_write_nothing_and_change_nothing, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_dump_from_a_visitor_is_reentrant, setup, teardown),
        cmocka_unit_test(test_dump_of_an_empty_arena),
    };
    return cmocka_run_group_tests_name("dump", tests, NULL, NULL);
}
