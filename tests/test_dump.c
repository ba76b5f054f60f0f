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

#include "internal.h"
#include "support.h"

#define PAGE 4096ull

TEST_WORLD_FIXTURE(8ull << 20, 2ull << 20);

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
    at.writable = false;
    at.executable = true;
    assert_ok(capmem_rm_attach(f->arena, rm, ds, &at, &addr));
    capmem_dump_opts_t o = CAPMEM_DUMP_OPTS_INIT;
    char *text = dump_of(f->arena, &o);
    /* A region's rights read as rwx: reads are always allowed. */
    assert_non_null(strstr(text, "12 KiB  rw-  RAM"));
    assert_non_null(strstr(text, "12 KiB  r-x  RAM"));
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
    old.root = child; /* beyond its size: not read */
    text = dump_of(f->arena, &old);
    assert_non_null(strstr(text, "== untyped memory =="));
    assert_null(strstr(text, "subtree of"));
    free(text);
    CHECK_INVARIANTS(f->arena);
}

/* Any capability can be the root of a dump, in every format. */
static void test_dump_any_capability_roots_a_subtree(void **state)
{
    fixture_t *f = *state;
    capmem_cap_t ds, alias, copy, rm, inner, mds;
    assert_ok(capmem_ram_alloc(f->arena, f->client, 4 * PAGE, &ds));
    capmem_alias_attr_t aa = CAPMEM_ALIAS_ATTR_INIT;
    aa.size = PAGE;
    aa.lifetime = CAPMEM_ALIAS_FIRST_CLASS;
    assert_ok(capmem_ds_alias(f->arena, f->client, ds, &aa, &alias));
    assert_ok(capmem_cap_mint(f->arena, ds, CAPMEM_RIGHT_READ, &copy));
    capmem_rm_open_attr_t ra = CAPMEM_RM_OPEN_ATTR_INIT;
    ra.size = 64 * PAGE;
    assert_ok(capmem_rm_open(f->arena, f->client, &ra, &rm));
    assert_ok(capmem_rm_open(f->arena, f->client, &ra, &inner));
    assert_ok(capmem_rm_dataspace(f->arena, inner, &mds));
    capmem_rm_attach_attr_t at = CAPMEM_RM_ATTACH_ATTR_INIT;
    uint64_t addr;
    assert_ok(capmem_rm_attach(f->arena, rm, mds, &at, &addr));
    assert_ok(capmem_rm_attach(f->arena, inner, ds, &at, &addr));
    static const capmem_user_type_t thing = {.name = "thing"};
    capmem_cap_t user;
    assert_ok(capmem_cap_create_user(f->arena, &thing, NULL, CAPMEM_RIGHTS_ALL, &user));
    capmem_untyped_info_t boot[2];
    size_t n = 0;
    assert_ok(capmem_untyped_boot(f->arena, boot, 2, &n));
    const capmem_cap_t roots[] = {ds, alias, copy, rm, mds, user, f->root, boot[0].cap};
    for (size_t i = 0; i < sizeof(roots) / sizeof(roots[0]); i++) {
        for (int fmt = CAPMEM_DUMP_TEXT; fmt <= CAPMEM_DUMP_SVG; fmt++) {
            capmem_dump_opts_t o = CAPMEM_DUMP_OPTS_INIT;
            o.root = roots[i];
            o.format = (capmem_dump_format_t)fmt;
            char *s = dump_of(f->arena, &o);
            assert_true(strlen(s) > 0);
            free(s);
        }
    }
    /* A map's subtree follows its managed region into the inner map. */
    capmem_dump_opts_t o = CAPMEM_DUMP_OPTS_INIT;
    o.root = rm;
    o.sections = CAPMEM_DUMP_RM;
    o.format = CAPMEM_DUMP_JSON;
    char *s = dump_of(f->arena, &o);
    assert_non_null(strstr(s, "\"inner_map\":{"));
    free(s);
    /* The user object shows its type's own name. */
    o.root = user;
    o.sections = CAPMEM_DUMP_CAPS;
    o.format = CAPMEM_DUMP_TEXT;
    s = dump_of(f->arena, &o);
    assert_non_null(strstr(s, " thing rwg original"));
    free(s);
    CHECK_INVARIANTS(f->arena);
}

/* Device memory and untyped copies in the physical map: every byte of RAM and devices once. */
static void test_dump_physical_map_covers_devices_and_copies(void **state)
{
    (void)state;
    capmem_arena_t *a = test_arena(1u << 20, PAGE); /* with a 1 MiB device window */
    capmem_device_info_t dev;
    assert_ok(capmem_arena_device_add(a, 0xfe000000, 16 * PAGE, &dev));
    capmem_untyped_info_t boot[8];
    size_t n = 0;
    assert_ok(capmem_untyped_boot(a, boot, 8, &n));
    capmem_cap_t frame = CAPMEM_CAP_NULL, copy = CAPMEM_CAP_NULL, kid = CAPMEM_CAP_NULL;
    for (size_t i = 0; i < n; i++) {
        capmem_retype_attr_t ra = CAPMEM_RETYPE_ATTR_INIT;
        if (boot[i].device && frame == CAPMEM_CAP_NULL) {
            assert_ok(capmem_untyped_retype(a, boot[i].cap, &ra, &frame, 1));
        } else if (!boot[i].device && kid == CAPMEM_CAP_NULL) {
            ra.type = CAPMEM_OBJ_UNTYPED;
            ra.size_bits = 16;
            assert_ok(capmem_untyped_retype(a, boot[i].cap, &ra, &kid, 1));
            assert_ok(capmem_untyped_copy(a, kid, &copy));
        }
    }
    assert_int_not_equal(frame, CAPMEM_CAP_NULL);
    assert_int_not_equal(copy, CAPMEM_CAP_NULL);
    capmem_dump_opts_t o = CAPMEM_DUMP_OPTS_INIT;
    o.sections = CAPMEM_DUMP_PHYS;
    char *s = dump_of(a, &o);
    assert_non_null(strstr(s, "device memory 1 0xfe000000..0xfe00ffff (64 KiB)"));
    char line[64];
    snprintf(line, sizeof(line), "frame         0x%llx", (unsigned long long)frame);
    assert_non_null(strstr(s, line));
    free(s);
    o.sections = CAPMEM_DUMP_UNTYPED;
    s = dump_of(a, &o);
    assert_non_null(strstr(s, "full (a copy of it is alive)"));
    assert_non_null(strstr(s, "device untyped"));
    free(s);
    /* The JSON ranges add up to RAM plus the device range, each byte once. */
    o.sections = CAPMEM_DUMP_PHYS;
    o.format = CAPMEM_DUMP_JSON;
    s = dump_of(a, &o);
    uint64_t total = 0;
    for (const char *p = strstr(s, "\"size\":"); p != NULL; p = strstr(p + 1, "\"size\":")) {
        total += strtoull(p + 7, NULL, 10);
    }
    assert_int_equal(total, (1u << 20) + 16 * PAGE);
    free(s);
    CHECK_INVARIANTS(a);
    capmem_arena_destroy(a);
}

/* The value after "key": in a JSON line. */
static uint64_t json_field(const char *line, const char *key)
{
    char pat[32];
    snprintf(pat, sizeof(pat), "\"%s\":", key);
    const char *q = strstr(line, pat);
    assert_non_null(q);
    return strtoull(q + strlen(pat), NULL, 10);
}

/*
 * Check the physical map's pieces of @p kind against page reference counts
 * computed by brute force: each page in @p want[] (indexed from @p base) must
 * be covered once with refs == want[page] (0: not shown).
 */
static void check_refs(const char *json, const char *kind, uint64_t base, const unsigned *want,
                       unsigned pages)
{
    unsigned seen[64] = {0};
    char pat[48];
    snprintf(pat, sizeof(pat), "\"kind\":\"%s\"", kind);
    for (const char *l = strstr(json, "\n{\"phys\""); l != NULL; l = strstr(l + 1, "\n{\"phys\"")) {
        const char *eol = strchr(l + 1, '\n');
        char line[512];
        size_t n = eol != NULL ? (size_t)(eol - l) : strlen(l);
        n = n < sizeof(line) - 1 ? n : sizeof(line) - 1;
        memcpy(line, l, n);
        line[n] = '\0';
        if (strstr(line, pat) == NULL) {
            continue;
        }
        const uint64_t off = json_field(line, "offset");
        const uint64_t size = json_field(line, "size");
        const uint64_t refs = json_field(line, "refs");
        for (uint64_t pg = (off - base) / PAGE; pg < (off + size - base) / PAGE; pg++) {
            assert_true(pg < pages);
            assert_int_equal(refs, want[pg]);
            seen[pg]++;
        }
    }
    for (unsigned pg = 0; pg < pages; pg++) {
        assert_int_equal(seen[pg], want[pg] > 0 ? 1 : 0);
    }
}

/* Reference counts of overlapping first-class aliases, before and after the original goes. */
static void test_dump_counts_the_runs_over_each_page(void **state)
{
    fixture_t *f = *state;
    enum { PAGES = 32, ALIASES = 40 };
    capmem_cap_t ds;
    assert_ok(capmem_ram_alloc(f->arena, f->client, PAGES * PAGE, &ds));
    capmem_ds_info_t di;
    assert_ok(capmem_ds_info(f->arena, ds, &di));
    unsigned with[PAGES], lent[PAGES];
    for (unsigned i = 0; i < PAGES; i++) {
        with[i] = 1;
        lent[i] = 0;
    }
    uint64_t seed = 12345;
    for (unsigned i = 0; i < ALIASES; i++) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        const unsigned first = (unsigned)(seed >> 33) % PAGES;
        const unsigned len = 1 + (unsigned)(seed >> 50) % (PAGES - first < 6 ? PAGES - first : 6);
        capmem_alias_attr_t aa = CAPMEM_ALIAS_ATTR_INIT;
        aa.offset = (uint64_t)first * PAGE;
        aa.size = (uint64_t)len * PAGE;
        aa.lifetime = CAPMEM_ALIAS_FIRST_CLASS;
        capmem_cap_t al;
        assert_ok(capmem_ds_alias(f->arena, f->client, ds, &aa, &al));
        for (unsigned pg = first; pg < first + len; pg++) {
            with[pg]++;
            lent[pg]++;
        }
    }
    capmem_dump_opts_t o = CAPMEM_DUMP_OPTS_INIT;
    o.sections = CAPMEM_DUMP_PHYS;
    o.format = CAPMEM_DUMP_JSON;
    char *json = dump_of(f->arena, &o);
    check_refs(json, "dataspace", di.offset, with, PAGES);
    free(json);
    assert_ok(capmem_ds_free(f->arena, ds));
    json = dump_of(f->arena, &o);
    check_refs(json, "lent", di.offset, lent, PAGES);
    free(json);
    /* The same counts in a dump of the account's subtree. */
    o.root = f->client;
    json = dump_of(f->arena, &o);
    check_refs(json, "lent", di.offset, lent, PAGES);
    free(json);
    CHECK_INVARIANTS(f->arena);
}

/* More runs over one page than the sweep keeps: the slow path counts them all. */
static void test_dump_counts_many_runs_over_one_page(void **state)
{
    fixture_t *f = *state;
    capmem_ram_open_attr_t oa = CAPMEM_RAM_OPEN_ATTR_INIT;
    oa.quota = 64 * PAGE;
    oa.donation = 80 * PAGE; /* 5,120 records */
    oa.caps = 8192;
    oa.label = "many";
    capmem_cap_t acc;
    assert_ok(capmem_ram_open(f->arena, f->root, &oa, &acc));
    capmem_cap_t ds;
    assert_ok(capmem_ram_alloc(f->arena, acc, 2 * PAGE, &ds));
    capmem_ds_info_t di;
    assert_ok(capmem_ds_info(f->arena, ds, &di));
    enum { N = 4100 };
    capmem_alias_attr_t aa = CAPMEM_ALIAS_ATTR_INIT;
    aa.size = PAGE;
    aa.lifetime = CAPMEM_ALIAS_FIRST_CLASS;
    for (unsigned i = 0; i < N; i++) {
        capmem_cap_t al;
        assert_ok(capmem_ds_alias(f->arena, acc, ds, &aa, &al));
    }
    capmem_dump_opts_t o = CAPMEM_DUMP_OPTS_INIT;
    o.sections = CAPMEM_DUMP_PHYS;
    o.format = CAPMEM_DUMP_JSON;
    o.root = acc;
    char *json = dump_of(f->arena, &o);
    const unsigned with[2] = {N + 1, 1};
    check_refs(json, "dataspace", di.offset, with, 2);
    free(json);
    assert_ok(capmem_ds_free(f->arena, ds));
    json = dump_of(f->arena, &o);
    const unsigned lent[2] = {N, 0};
    check_refs(json, "lent", di.offset, lent, 2);
    free(json);
    assert_ok(capmem_ram_close(f->arena, acc));
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
    /* Text keeps the line structure: control characters become '?'. */
    o.format = CAPMEM_DUMP_TEXT;
    s = dump_of(f->arena, &o);
    assert_non_null(strstr(s, "\"a\"b\\c?d?\xff<&>\""));
    assert_null(strstr(s, "c\nd"));
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

/* No host memory for the physical map's buffer: HOST_NOMEM, and not a byte written. */
static void test_dump_without_host_memory_writes_nothing(void **state)
{
    fixture_t *f = *state;
    char *buf = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&buf, &len);
    capmem__inject_reset();
    capmem__inject_fail(CAPMEM__HOST_MALLOC, 1);
    assert_err(capmem_dump(f->arena, m, CAPMEM_DUMP_JSON), CAPMEM_E_HOST_NOMEM);
    capmem__inject_reset();
    fflush(m);
    assert_int_equal(len, 0);
    /* Without the physical section the dump needs no buffer at all. */
    capmem_dump_opts_t o = CAPMEM_DUMP_OPTS_INIT;
    o.sections = CAPMEM_DUMP_ALL & ~(uint32_t)CAPMEM_DUMP_PHYS;
    capmem__inject_fail(CAPMEM__HOST_MALLOC, 1);
    assert_ok(capmem_dump_ex(f->arena, m, &o));
    capmem__inject_reset();
    fclose(m);
    assert_true(len > 0);
    free(buf);
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

/* ---- the kernel heap and space banks ---------------------------------------------- */

typedef struct kworld {
    capmem_arena_t *a;
    capmem_cap_t root, prime, app, sub, copy;
} kworld_t;

/*
 * A hybrid kernel (no records for devices at boot), a bank service, a
 * child bank limited to 8 frames with a grandchild, a few objects, a
 * restricted copy, then 32 device frames plugged: the heap borrows a frame.
 */
static kworld_t kworld_open(void)
{
    kworld_t w;
    capmem_arena_attr_t at = CAPMEM_ARENA_ATTR_INIT;
    at.ram_size = 1u << 20;
    at.page_size = PAGE;
    at.cap_slots = 1024;
    at.device_window = 32 * PAGE;
    assert_ok(capmem_arena_create(&at, &w.a));
    capmem_kernel_attr_t ka = CAPMEM_KERNEL_ATTR_INIT;
    ka.strategy = CAPMEM_KERNEL_HYBRID;
    ka.image_frames = 8;
    assert_ok(capmem_kernel_boot(w.a, &ka));
    CHECK_INVARIANTS(w.a);
    assert_ok(capmem_ram_boot(w.a, NULL, &w.root));
    capmem_bank_service_attr_t sa = CAPMEM_BANK_SERVICE_ATTR_INIT;
    sa.frames = 32;
    assert_ok(capmem_bank_service_create(w.a, w.root, &sa, &w.prime));
    CHECK_INVARIANTS(w.a);
    capmem_bank_limits_t l = {{8, CAPMEM_BANK_UNLIMITED}};
    assert_ok(capmem_bank_create(w.a, w.prime, &l, &w.app));
    capmem_bank_limits_t l2 = {{CAPMEM_BANK_UNLIMITED, 2}};
    assert_ok(capmem_bank_create(w.a, w.app, &l2, &w.sub));
    CHECK_INVARIANTS(w.a);
    const capmem_bank_type_t t[3] = {CAPMEM_BANK_FRAME, CAPMEM_BANK_FRAME, CAPMEM_BANK_NODE};
    capmem_cap_t o[3];
    assert_ok(capmem_bank_alloc(w.a, w.app, t, 3, o));
    assert_ok(capmem_bank_alloc(w.a, w.sub, t, 1, o));
    assert_ok(capmem_bank_restrict(w.a, w.app, CAPMEM_BANK_NO_DESTROY, &w.copy));
    CHECK_INVARIANTS(w.a);
    capmem_device_info_t d;
    assert_ok(capmem_arena_device_add(w.a, 0x100000000ull, 32 * PAGE, &d));
    CHECK_INVARIANTS(w.a);
    return w;
}

/* The kernel section: the heap's numbers, its chunks, every bank with its usage and limits. */
static void test_dump_kernel_section_shows_heap_and_banks(void **state)
{
    (void)state;
    kworld_t w = kworld_open();
    capmem_kernel_info_t ki;
    assert_ok(capmem_kernel_info(w.a, &ki));
    assert_int_equal(ki.borrowed_frames, 1);
    assert_int_equal(ki.records_used, 256 + 32);
    capmem_dump_opts_t o = CAPMEM_DUMP_OPTS_INIT;
    o.sections = CAPMEM_DUMP_KERNEL;
    char *text = dump_of(w.a, &o);
    CHECK_INVARIANTS(w.a);
    char want[160];
    assert_non_null(strstr(text, "kernel heap: hybrid strategy, 48-byte records; image 8 frames"));
    snprintf(want, sizeof(want), "records: %llu used of %llu (256 RAM + 32 device frames)",
             (unsigned long long)ki.records_used, (unsigned long long)ki.records_capacity);
    assert_non_null(strstr(text, want));
    assert_non_null(strstr(text, "carved at boot"));
    assert_non_null(strstr(text, "borrowed through the banks"));
    assert_non_null(strstr(text, "(kernel heap's bank)"));
    assert_non_null(strstr(text, "1 heap frame lent"));
    /* The prime bank: 2 + 1 frames charged below it, 1 lent to the kernel; limit 32. */
    snprintf(want, sizeof(want), "0x%llx prime", (unsigned long long)w.prime);
    assert_non_null(strstr(text, want));
    assert_non_null(strstr(text, "4/0/32/32"));
    /* The child: 3 frames (2 its own), limit 8; the grandchild's nodes limited to 2. */
    assert_non_null(strstr(text, "3/2/8/8"));
    assert_non_null(strstr(text, "0/0/2/2"));
    /* The restricted copy, without destroy. */
    snprintf(want, sizeof(want), "copy 0x%llx qlaf-rg", (unsigned long long)w.copy);
    assert_non_null(strstr(text, want));
    assert_null(strstr(text, "== capabilities =="));
    free(text);

    /* JSON: the same numbers as capmem_bank_info. */
    o.format = CAPMEM_DUMP_JSON;
    char *json = dump_of(w.a, &o);
    snprintf(want, sizeof(want), "\"records_used\":%llu,\"ram_records\":256,\"device_records\":32",
             (unsigned long long)ki.records_used);
    assert_non_null(strstr(json, want));
    const capmem_cap_t banks[] = {w.prime, w.app, w.sub};
    for (size_t i = 0; i < 3; i++) {
        capmem_bank_info_t bi;
        assert_ok(capmem_bank_info(w.a, banks[i], &bi));
        snprintf(want, sizeof(want), "{\"cap\":\"0x%llx\"", (unsigned long long)banks[i]);
        const char *at = strstr(json, want);
        assert_non_null(at);
        snprintf(want, sizeof(want), "\"frames\":{\"used\":%llu,\"own\":%llu,",
                 (unsigned long long)bi.used[CAPMEM_BANK_FRAME],
                 (unsigned long long)bi.own[CAPMEM_BANK_FRAME]);
        /* The bank's first "frames" object is its own (copies have none). */
        const char *frames = strstr(at, "\"frames\":{");
        assert_non_null(frames);
        assert_memory_equal(frames, want, strlen(want));
    }
    assert_int_equal(count(json, "\"kernel\":true"), 1);
    assert_non_null(strstr(json, "\"restrictions\":[\"noDestroy\"]"));
    free(json);
    capmem_arena_destroy(w.a);
}

/* A dump rooted at a bank shows that bank and its sub-banks, not the heap or other banks. */
static void test_dump_subtree_of_a_bank_shows_its_banks(void **state)
{
    (void)state;
    kworld_t w = kworld_open();
    capmem_dump_opts_t o = CAPMEM_DUMP_OPTS_INIT;
    o.format = CAPMEM_DUMP_JSON;
    o.sections = CAPMEM_DUMP_KERNEL;
    o.root = w.app;
    char *json = dump_of(w.a, &o);
    char want[64];
    assert_non_null(strstr(json, "\"kernel\":{\"heap\":null,\"banks\":["));
    snprintf(want, sizeof(want), "{\"cap\":\"0x%llx\"", (unsigned long long)w.app);
    assert_int_equal(count(json, want), 1);
    snprintf(want, sizeof(want), "{\"cap\":\"0x%llx\",\"parent\":\"0x%llx\",\"depth\":1",
             (unsigned long long)w.sub, (unsigned long long)w.app);
    assert_int_equal(count(json, want), 1);
    snprintf(want, sizeof(want), "{\"cap\":\"0x%llx\"", (unsigned long long)w.prime);
    assert_int_equal(count(json, want), 0);
    assert_int_equal(count(json, "\"kernel\":true"), 0);
    free(json);
    /* A restricted copy roots the same subtree; the text shows no heap. */
    o.format = CAPMEM_DUMP_TEXT;
    o.sections = CAPMEM_DUMP_ALL;
    o.root = w.copy;
    char *text = dump_of(w.a, &o);
    assert_null(strstr(text, "kernel heap:"));
    assert_non_null(strstr(text, "3/2/8/8"));
    assert_null(strstr(text, "prime"));
    free(text);
    /* A leaf bank: itself only. */
    o.root = w.sub;
    o.sections = CAPMEM_DUMP_KERNEL;
    text = dump_of(w.a, &o);
    assert_non_null(strstr(text, "0/0/2/2"));
    /* The header's six slashes, and one bank: two cells of three. */
    assert_int_equal(count(text, "/"), 12);
    free(text);
    /* Rooted at an account, the section is empty and says so (the kernel is booted). */
    o.root = w.root;
    text = dump_of(w.a, &o);
    assert_non_null(strstr(text, "(no space bank in this subtree)"));
    assert_null(strstr(text, "not booted"));
    free(text);
    CHECK_INVARIANTS(w.a);
    capmem_arena_destroy(w.a);
}

/* The physical map shows the kernel image and the heap carved at boot, before the untypeds. */
static void test_dump_physical_map_shows_kernel_image_and_heap(void **state)
{
    (void)state;
    kworld_t w = kworld_open();
    capmem_dump_opts_t o = CAPMEM_DUMP_OPTS_INIT;
    o.sections = CAPMEM_DUMP_PHYS;
    char *text = dump_of(w.a, &o);
    assert_non_null(strstr(text, "0x000100000..0x000107fff     32 KiB  kernel image"));
    assert_non_null(strstr(text, "0x000108000..0x00010afff     12 KiB  kernel heap"));
    free(text);
    o.format = CAPMEM_DUMP_SVG;
    o.sections = CAPMEM_DUMP_ALL;
    char *svg = dump_of(w.a, &o);
    assert_non_null(strstr(svg, "data-kind=\"kernel image\""));
    assert_non_null(strstr(svg, "data-kind=\"kernel heap\""));
    assert_non_null(strstr(svg, ">kernel image</text>"));
    assert_int_equal(count(svg, "class=\"bank\""), 4);
    free(svg);
    o.format = CAPMEM_DUMP_DOT;
    char *dot = dump_of(w.a, &o);
    assert_non_null(strstr(dot, "bkernel -> kheap"));
    free(dot);
    CHECK_INVARIANTS(w.a);
    capmem_arena_destroy(w.a);
}

/* Conservative: the end of boot releases heap frames to the prime bank; the dump says where. */
static void test_dump_kernel_shows_frames_released_at_end_of_boot(void **state)
{
    (void)state;
    capmem_arena_attr_t at = CAPMEM_ARENA_ATTR_INIT;
    at.ram_size = 1u << 20;
    at.page_size = PAGE;
    at.cap_slots = 1024;
    at.device_window = 1024 * PAGE;
    capmem_arena_t *a = NULL;
    assert_ok(capmem_arena_create(&at, &a));
    capmem_kernel_attr_t ka = CAPMEM_KERNEL_ATTR_INIT;
    ka.strategy = CAPMEM_KERNEL_CONSERVATIVE;
    ka.image_frames = 4;
    ka.device_frames = 1024;
    assert_ok(capmem_kernel_boot(a, &ka));
    capmem_dump_opts_t o = CAPMEM_DUMP_OPTS_INIT;
    o.sections = CAPMEM_DUMP_KERNEL;
    char *text = dump_of(a, &o);
    assert_non_null(strstr(text, "conservative strategy"));
    assert_non_null(strstr(text, "booting"));
    assert_null(strstr(text, "released 0x"));
    assert_null(strstr(text, "bank "));
    free(text);
    assert_ok(capmem_kernel_end_boot(a, 0));
    CHECK_INVARIANTS(a);
    capmem_kernel_info_t ki;
    assert_ok(capmem_kernel_info(a, &ki));
    assert_true(ki.released_frames > 0);
    text = dump_of(a, &o);
    assert_non_null(strstr(text, "boot ended"));
    assert_non_null(strstr(text, "to no bank service yet"));
    free(text);
    capmem_cap_t root, prime;
    assert_ok(capmem_ram_boot(a, NULL, &root));
    capmem_bank_service_attr_t sa = CAPMEM_BANK_SERVICE_ATTR_INIT;
    sa.frames = 8;
    assert_ok(capmem_bank_service_create(a, root, &sa, &prime));
    CHECK_INVARIANTS(a);
    text = dump_of(a, &o);
    char want[96];
    snprintf(want, sizeof(want), "frames) to the prime bank 0x%llx", (unsigned long long)prime);
    assert_non_null(strstr(text, want));
    free(text);
    /* In the physical map, the released frames are the prime bank's. */
    o.sections = CAPMEM_DUMP_PHYS;
    text = dump_of(a, &o);
    snprintf(want, sizeof(want), "released by the kernel 0x%llx \"prime bank\"",
             (unsigned long long)prime);
    assert_non_null(strstr(text, want));
    free(text);
    o.sections = CAPMEM_DUMP_KERNEL;
    o.format = CAPMEM_DUMP_JSON;
    char *json = dump_of(a, &o);
    snprintf(want, sizeof(want), "\"released_frames\":%llu,",
             (unsigned long long)ki.released_frames);
    assert_non_null(strstr(json, want));
    snprintf(want, sizeof(want), "\"released_to\":\"0x%llx\"", (unsigned long long)prime);
    assert_non_null(strstr(json, want));
    assert_non_null(strstr(json, "\"boot_ended\":true"));
    free(json);
    CHECK_INVARIANTS(a);
    capmem_arena_destroy(a);
}

/* Banks without a kernel: the heap is null, the banks are there. */
static void test_dump_banks_without_a_kernel(void **state)
{
    fixture_t *f = *state;
    capmem_bank_service_attr_t sa = CAPMEM_BANK_SERVICE_ATTR_INIT;
    sa.frames = 4;
    capmem_cap_t prime;
    assert_ok(capmem_bank_service_create(f->arena, f->client, &sa, &prime));
    capmem_dump_opts_t o = CAPMEM_DUMP_OPTS_INIT;
    o.format = CAPMEM_DUMP_JSON;
    o.sections = CAPMEM_DUMP_KERNEL;
    char *json = dump_of(f->arena, &o);
    char want[96];
    snprintf(want, sizeof(want), "\"kernel\":{\"heap\":null,\"banks\":[\n{\"cap\":\"0x%llx\"",
             (unsigned long long)prime);
    assert_non_null(strstr(json, want));
    assert_int_equal(count(json, "\"kernel\":true"), 0);
    free(json);
    CHECK_INVARIANTS(f->arena);
}

/*
 * The SVG draws at most so many accounts, maps and banks, then says how many
 * more there are; a legend too wide for the page wraps onto a new line.
 */
static void test_dump_svg_cuts_long_lists_with_a_count_of_the_rest(void **state)
{
    fixture_t *f = *state;
    enum { ACCOUNTS = 45, MAPS = 26, BANKS = 26 };
    for (int i = 0; i < ACCOUNTS; i++) {
        char label[64];
        snprintf(label, sizeof(label), "an account with a rather long label, number %02d", i);
        capmem_ram_open_attr_t oa = CAPMEM_RAM_OPEN_ATTR_INIT;
        oa.donation = 2 * PAGE;
        oa.quota = PAGE;
        oa.caps = 4;
        oa.label = label;
        capmem_cap_t acc;
        assert_ok(capmem_ram_open(f->arena, f->root, &oa, &acc));
    }
    capmem_cap_t ds;
    assert_ok(capmem_ram_alloc(f->arena, f->client, PAGE, &ds));
    for (int i = 0; i < MAPS; i++) {
        capmem_rm_open_attr_t ra = CAPMEM_RM_OPEN_ATTR_INIT;
        ra.size = 16 * PAGE;
        capmem_cap_t rm;
        assert_ok(capmem_rm_open(f->arena, f->client, &ra, &rm));
        capmem_rm_attach_attr_t aa = CAPMEM_RM_ATTACH_ATTR_INIT;
        uint64_t at = 0;
        assert_ok(capmem_rm_attach(f->arena, rm, ds, &aa, &at));
    }
    capmem_bank_service_attr_t sa = CAPMEM_BANK_SERVICE_ATTR_INIT;
    sa.frames = 4;
    capmem_cap_t prime;
    assert_ok(capmem_bank_service_create(f->arena, f->client, &sa, &prime));
    for (int i = 0; i < BANKS; i++) {
        capmem_cap_t b;
        assert_ok(capmem_bank_create(f->arena, prime, NULL, &b));
    }
    CHECK_INVARIANTS(f->arena);
    capmem_dump_opts_t o = CAPMEM_DUMP_OPTS_INIT;
    o.format = CAPMEM_DUMP_SVG;
    char *svg = dump_of(f->arena, &o);
    assert_non_null(strstr(svg, "... more maps"));
    char want[64];
    /* The root, the client and the accounts opened here; the prime bank and those made here. */
    snprintf(want, sizeof(want), "... %u more accounts", 2 + ACCOUNTS - 40);
    if (strstr(svg, want) == NULL) {
        fail_msg("no \"%s\" in the SVG", want);
    }
    snprintf(want, sizeof(want), "... %u more banks", 1 + BANKS - 24);
    if (strstr(svg, want) == NULL) {
        fail_msg("no \"%s\" in the SVG", want);
    }
    assert_non_null(strstr(svg, "</svg>"));
    free(svg);
}

/* The y coordinate of the SVG text element whose content is @p text. */
static double svg_text_y(const char *svg, const char *text)
{
    const char *t = strstr(svg, text);
    if (t == NULL) {
        fail_msg("no \"%s\" in the SVG", text);
    }
    const char *open = t;
    while (open > svg && strncmp(open, "<text", 5) != 0) {
        open--;
    }
    const char *y = strstr(open, " y=\"");
    assert_non_null(y);
    assert_true(y < t);
    return strtod(y + 4, NULL);
}

/* Accounts with long labels fill the legend's lines: the next entry, account or kind, starts a new
 * line below. */
static void test_dump_svg_legend_wraps_onto_a_new_line_when_the_page_is_full(void **state)
{
    fixture_t *f = *state;
    enum { ACCOUNTS = 9 };
    for (int i = 0; i < ACCOUNTS; i++) {
        char label[64];
        snprintf(label, sizeof(label), "wide legend account #%02d", i); /* the longest label */
        capmem_ram_open_attr_t oa = CAPMEM_RAM_OPEN_ATTR_INIT;
        oa.donation = 2 * PAGE;
        oa.quota = PAGE;
        oa.caps = 4;
        oa.label = label;
        capmem_cap_t acc;
        assert_ok(capmem_ram_open(f->arena, f->root, &oa, &acc));
        capmem_cap_t ds;
        assert_ok(capmem_ram_alloc(f->arena, acc, PAGE, &ds));
    }
    CHECK_INVARIANTS(f->arena);
    capmem_dump_opts_t o = CAPMEM_DUMP_OPTS_INIT;
    o.format = CAPMEM_DUMP_SVG;
    char *svg = dump_of(f->arena, &o);
    /* The legend's entries (size 22; the account rows further down are bold, size 20). */
    const double y0 = svg_text_y(svg, "font-size=\"22\">&quot;wide legend account #00&quot;<");
    const double y1 = svg_text_y(svg, "font-size=\"22\">&quot;wide legend account #01&quot;<");
    const double y7 = svg_text_y(svg, "font-size=\"22\">&quot;wide legend account #07&quot;<");
    assert_true(y1 == y0);
    assert_true(y7 > y0);
    /* The kinds follow the accounts and wrap the same way: "free" does not fit after them. */
    const double y8 = svg_text_y(svg, "font-size=\"22\">&quot;wide legend account #08&quot;<");
    const double yfree = svg_text_y(svg, "font-size=\"22\">free<");
    assert_true(yfree > y8);
    free(svg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_dump_text_shows_every_section, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dump_subtree_of_an_account_shows_only_its_objects,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_dump_any_capability_roots_a_subtree, setup, teardown),
        cmocka_unit_test(test_dump_physical_map_covers_devices_and_copies),
        cmocka_unit_test_setup_teardown(test_dump_counts_the_runs_over_each_page, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dump_counts_many_runs_over_one_page, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dump_formats_write_json_dot_svg, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dump_svg_cuts_long_lists_with_a_count_of_the_rest,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_dump_svg_legend_wraps_onto_a_new_line_when_the_page_is_full, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dump_escapes_labels_in_every_format, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dump_errors_write_nothing_and_change_nothing, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_dump_without_host_memory_writes_nothing, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_dump_from_a_visitor_is_reentrant, setup, teardown),
        cmocka_unit_test(test_dump_of_an_empty_arena),
        cmocka_unit_test(test_dump_kernel_section_shows_heap_and_banks),
        cmocka_unit_test(test_dump_subtree_of_a_bank_shows_its_banks),
        cmocka_unit_test(test_dump_physical_map_shows_kernel_image_and_heap),
        cmocka_unit_test(test_dump_kernel_shows_frames_released_at_end_of_boot),
        cmocka_unit_test_setup_teardown(test_dump_banks_without_a_kernel, setup, teardown),
    };
    return cmocka_run_group_tests_name("dump", tests, NULL, NULL);
}
