/* SPDX-License-Identifier: MIT */
/*
 * The seed scenarios of the design discussion, built and dumped in every
 * format, for the checks in tests/dump_check.py (JSON schema and content,
 * Graphviz, xmllint and rsvg-convert) and for scripts/pictures. For each
 * scenario NAME it writes, into the directory given:
 *   NAME.txt, NAME.json, NAME.dot, NAME.svg   the whole arena
 *   NAME.sub.json, NAME.sub.svg               a subtree (an account, untyped or map)
 *   NAME.expect.json                          what the public calls say: every live
 *                                             capability (capmem_cap_walk) and every
 *                                             account's capmem_ram_info
 * Usage: dump_scenarios DIR [NAME]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "capmem.h"

#define CHECK(expr)                                                                                \
    do {                                                                                           \
        capmem_err_t e_ = (expr);                                                                  \
        if (e_ != CAPMEM_OK) {                                                                     \
            fprintf(stderr, "%s:%d: %s: %s (%s)\n", __FILE__, __LINE__, #expr,                     \
                    capmem_err_name(e_), capmem_last_error()->message);                            \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

static const char *dir;

static FILE *open_out(const char *name, const char *ext)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s.%s", dir, name, ext);
    FILE *f = fopen(path, "w");
    if (f == NULL) {
        perror(path);
        exit(1);
    }
    return f;
}

static int write_cap(const capmem_cap_info_t *info, unsigned depth, void *ctx)
{
    (void)depth;
    FILE *f = ctx;
    fprintf(f, "%s\"0x%llx\"", ftell(f) > 0 && info != NULL ? "," : "",
            (unsigned long long)info->cap);
    return 0;
}

/* Dump @p a in every format, a subtree of @p sub, and what the public calls say. */
static void dump_all(capmem_arena_t *a, const char *name, capmem_cap_t sub,
                     const capmem_cap_t *accounts, size_t naccounts)
{
    static const struct {
        capmem_dump_format_t format;
        const char *ext;
    } formats[] = {{CAPMEM_DUMP_TEXT, "txt"},
                   {CAPMEM_DUMP_JSON, "json"},
                   {CAPMEM_DUMP_DOT, "dot"},
                   {CAPMEM_DUMP_SVG, "svg"}};
    char why[256];
    CHECK(capmem_check(a, why, sizeof(why)));
    for (size_t i = 0; i < sizeof(formats) / sizeof(formats[0]); i++) {
        FILE *f = open_out(name, formats[i].ext);
        CHECK(capmem_dump(a, f, formats[i].format));
        fclose(f);
    }
    if (sub != CAPMEM_CAP_NULL) {
        capmem_dump_opts_t o = CAPMEM_DUMP_OPTS_INIT;
        o.root = sub;
        o.format = CAPMEM_DUMP_JSON;
        FILE *f = open_out(name, "sub.json");
        CHECK(capmem_dump_ex(a, f, &o));
        fclose(f);
        o.format = CAPMEM_DUMP_SVG;
        f = open_out(name, "sub.svg");
        CHECK(capmem_dump_ex(a, f, &o));
        fclose(f);
        o.format = CAPMEM_DUMP_TEXT;
        f = open_out(name, "sub.txt");
        CHECK(capmem_dump_ex(a, f, &o));
        fclose(f);
    }
    FILE *f = open_out(name, "expect.json");
    fputs("{\"caps\":[", f);
    /* write_cap separates by the position in its own stream. */
    FILE *caps = tmpfile();
    CHECK(capmem_cap_walk(a, CAPMEM_CAP_NULL, write_cap, caps));
    rewind(caps);
    int c;
    while ((c = fgetc(caps)) != EOF) {
        fputc(c, f);
    }
    fclose(caps);
    fputs("],\"accounts\":{", f);
    for (size_t i = 0; i < naccounts; i++) {
        capmem_ram_info_t ri;
        CHECK(capmem_ram_info(a, accounts[i], &ri));
        fprintf(f,
                "%s\"0x%llx\":{\"quota\":%llu,\"used\":%llu,\"avail\":%llu,\"lent\":%llu,"
                "\"donation\":%llu,\"records_used\":%llu,\"records_capacity\":%llu,"
                "\"caps_limit\":%llu,\"caps_used\":%llu,\"upgrades\":%llu}",
                i ? "," : "", (unsigned long long)accounts[i], (unsigned long long)ri.quota,
                (unsigned long long)ri.used, (unsigned long long)ri.avail,
                (unsigned long long)ri.lent, (unsigned long long)ri.donation,
                (unsigned long long)ri.records_used, (unsigned long long)ri.records_capacity,
                (unsigned long long)ri.caps_limit, (unsigned long long)ri.caps_used,
                (unsigned long long)ri.upgrades);
    }
    fputs("}}\n", f);
    fclose(f);
}

static capmem_arena_t *arena_of(uint64_t ram, uint64_t page)
{
    capmem_arena_attr_t at = CAPMEM_ARENA_ATTR_INIT;
    at.ram_size = ram;
    at.page_size = page;
    at.cap_slots = 4096;
    capmem_arena_t *a = NULL;
    CHECK(capmem_arena_create(&at, &a));
    return a;
}

/* seL4: 0x400, 0x800, 0x1000, 0x400 in an untyped of 0x2000, under each policy. */
static void sel4_fragmentation(void)
{
    capmem_arena_t *a = arena_of(64u << 10, 1024);
    capmem_untyped_info_t boot[4];
    size_t n = 0;
    CHECK(capmem_untyped_boot(a, boot, 4, &n));
    const capmem_untyped_policy_t policies[] = {CAPMEM_UNTYPED_WATERMARK, CAPMEM_UNTYPED_RANGE,
                                                CAPMEM_UNTYPED_BUDDY};
    capmem_cap_t first = CAPMEM_CAP_NULL;
    for (int p = 0; p < 3; p++) {
        capmem_retype_attr_t ra = CAPMEM_RETYPE_ATTR_INIT;
        ra.type = CAPMEM_OBJ_UNTYPED;
        ra.size_bits = 13;
        ra.child_policy = policies[p];
        capmem_cap_t ut;
        CHECK(capmem_untyped_retype(a, boot[0].cap, &ra, &ut, 1));
        first = p == 0 ? ut : first;
        const unsigned bits[] = {10, 11, 12, 10};
        for (int i = 0; i < 4; i++) {
            capmem_retype_attr_t ka = CAPMEM_RETYPE_ATTR_INIT;
            ka.type = i == 2 ? CAPMEM_OBJ_FRAME : CAPMEM_OBJ_KOBJ;
            ka.size_bits = bits[i];
            capmem_cap_t obj;
            capmem_err_t err = capmem_untyped_retype(a, ut, &ka, &obj, 1);
            /* Watermark mode cannot use the gap: the last one fails, as in seL4. */
            if (!(p == 0 && i == 3)) {
                CHECK(err);
            } else if (err != CAPMEM_E_NOT_ENOUGH_MEMORY) {
                fprintf(stderr, "watermark: expected NOT_ENOUGH_MEMORY\n");
                exit(1);
            }
        }
    }
    dump_all(a, "sel4_fragmentation", first, NULL, 0);
    capmem_arena_destroy(a);
}

/* Genode: a small donation runs out of records; an expanding client upgrades and goes on. */
static void genode_metadata(void)
{
    capmem_arena_t *a = arena_of(2u << 20, 4096);
    capmem_cap_t root;
    CHECK(capmem_ram_boot(a, NULL, &root));
    capmem_ram_open_attr_t oa = CAPMEM_RAM_OPEN_ATTR_INIT;
    oa.donation = 4096; /* 64 slots: a header, the session record (3), 60 records */
    oa.quota = 1u << 20;
    oa.label = "client";
    capmem_cap_t client;
    CHECK(capmem_ram_open(a, root, &oa, &client));
    oa.label = "expanding";
    oa.flags = CAPMEM_RAM_EXPANDING;
    oa.quota = 512u << 10;
    capmem_cap_t exp;
    CHECK(capmem_ram_open(a, root, &oa, &exp));
    capmem_cap_t ds;
    int n = 0;
    while (capmem_ram_alloc(a, client, 4096, &ds) == CAPMEM_OK) {
        n++;
    }
    if (n != 60 || capmem_last_error()->code != CAPMEM_E_OUT_OF_METADATA) {
        fprintf(stderr, "expected 60 dataspaces, then OUT_OF_METADATA (got %d)\n", n);
        exit(1);
    }
    for (int i = 0; i < 70; i++) {
        CHECK(capmem_ram_alloc(a, exp, 4096, &ds));
    }
    const capmem_cap_t accounts[] = {root, client, exp};
    dump_all(a, "genode_metadata", client, accounts, 3);
    capmem_arena_destroy(a);
}

/* A large dataspace handed out as aliases, one read-only, one first-class; the original freed. */
static void alias_split(void)
{
    capmem_arena_t *a = arena_of(1u << 20, 4096);
    capmem_cap_t root;
    CHECK(capmem_ram_boot(a, NULL, &root));
    capmem_ram_open_attr_t oa = CAPMEM_RAM_OPEN_ATTR_INIT;
    oa.quota = 256u << 10;
    oa.label = "lender";
    capmem_cap_t lender;
    CHECK(capmem_ram_open(a, root, &oa, &lender));
    oa.label = "borrower \"b\"";
    oa.quota = 64u << 10;
    capmem_cap_t borrower;
    CHECK(capmem_ram_open(a, root, &oa, &borrower));
    capmem_cap_t big;
    CHECK(capmem_ram_alloc(a, lender, 64u << 10, &big));
    capmem_cap_t parts[4];
    for (int i = 0; i < 4; i++) {
        capmem_alias_attr_t aa = CAPMEM_ALIAS_ATTR_INIT;
        aa.offset = (uint64_t)i * (16u << 10);
        aa.size = 16u << 10;
        aa.writable = i != 1;
        aa.lifetime = i == 3 ? CAPMEM_ALIAS_FIRST_CLASS : CAPMEM_ALIAS_DEPENDENT;
        CHECK(capmem_ds_alias(a, i == 3 ? borrower : lender, big, &aa, &parts[i]));
    }
    /* A second first-class alias over half of the first one: pages shared three ways. */
    capmem_alias_attr_t aa = CAPMEM_ALIAS_ATTR_INIT;
    aa.offset = 56u << 10;
    aa.size = 8u << 10;
    aa.lifetime = CAPMEM_ALIAS_FIRST_CLASS;
    capmem_cap_t shared;
    CHECK(capmem_ds_alias(a, borrower, big, &aa, &shared));
    const capmem_cap_t accounts[] = {root, lender, borrower};
    dump_all(a, "alias_split", lender, accounts, 3);
    /* The lender frees the original: the first-class aliases keep their pages, lent. */
    CHECK(capmem_ds_free(a, big));
    dump_all(a, "alias_lent", borrower, accounts, 3);
    capmem_arena_destroy(a);
}

typedef struct pager {
    capmem_cap_t account;
    capmem_cap_t ds;
} pager_t;

static capmem_rm_fault_result_t attach_on_fault(capmem_arena_t *a, const capmem_rm_fault_t *f,
                                                void *ctx)
{
    pager_t *p = ctx;
    capmem_rm_state_t st;
    if (capmem_rm_state(a, f->rm, &st) != CAPMEM_OK || st.address != f->address) {
        return CAPMEM_RM_FAULT_UNRESOLVED;
    }
    capmem_rm_attach_attr_t at = CAPMEM_RM_ATTACH_ATTR_INIT;
    at.at = f->address & ~(uint64_t)0xfff;
    uint64_t addr;
    return capmem_rm_attach(a, f->rm, p->ds, &at, &addr) == CAPMEM_OK ? CAPMEM_RM_FAULT_RESOLVED
                                                                      : CAPMEM_RM_FAULT_UNRESOLVED;
}

/* rm_fault: a read of an unattached address; the handler attaches a dataspace there. */
static void rm_fault(void)
{
    capmem_arena_t *a = arena_of(1u << 20, 4096);
    capmem_cap_t root;
    CHECK(capmem_ram_boot(a, NULL, &root));
    capmem_ram_open_attr_t oa = CAPMEM_RAM_OPEN_ATTR_INIT;
    oa.quota = 256u << 10;
    oa.label = "app";
    capmem_cap_t app;
    CHECK(capmem_ram_open(a, root, &oa, &app));
    capmem_rm_open_attr_t ra = CAPMEM_RM_OPEN_ATTR_INIT;
    ra.size = 64u << 10;
    ra.label = "address space";
    capmem_cap_t rm;
    CHECK(capmem_rm_open(a, app, &ra, &rm));
    pager_t p = {app, CAPMEM_CAP_NULL};
    CHECK(capmem_ram_alloc(a, app, 8192, &p.ds));
    CHECK(capmem_ds_write(a, p.ds, 0, "hello", 6));
    capmem_cap_t code;
    CHECK(capmem_ram_alloc(a, app, 16384, &code));
    capmem_rm_attach_attr_t at = CAPMEM_RM_ATTACH_ATTR_INIT;
    at.at = 0;
    at.writable = 0;
    at.executable = 1;
    uint64_t addr;
    CHECK(capmem_rm_attach(a, rm, code, &at, &addr));
    CHECK(capmem_rm_set_fault_handler(a, rm, attach_on_fault, &p));
    char buf[6];
    CHECK(capmem_rm_read(a, rm, 0x8000, buf, sizeof(buf)));
    const capmem_cap_t accounts[] = {root, app};
    dump_all(a, "rm_fault", rm, accounts, 2);
    capmem_arena_destroy(a);
}

/* rm_nested: a managed dataspace attached into a second map; a fault inside goes to the inner map.
 */
static void rm_nested(void)
{
    capmem_arena_t *a = arena_of(1u << 20, 4096);
    capmem_cap_t root;
    CHECK(capmem_ram_boot(a, NULL, &root));
    capmem_ram_open_attr_t oa = CAPMEM_RAM_OPEN_ATTR_INIT;
    oa.quota = 256u << 10;
    oa.label = "parent";
    capmem_cap_t parent;
    CHECK(capmem_ram_open(a, root, &oa, &parent));
    capmem_rm_open_attr_t ra = CAPMEM_RM_OPEN_ATTR_INIT;
    ra.size = 256u << 10;
    ra.label = "outer";
    capmem_cap_t outer;
    CHECK(capmem_rm_open(a, parent, &ra, &outer));
    ra.size = 64u << 10;
    ra.label = "inner";
    capmem_cap_t inner;
    CHECK(capmem_rm_open(a, parent, &ra, &inner));
    capmem_cap_t inner_ds;
    CHECK(capmem_rm_dataspace(a, inner, &inner_ds));
    capmem_rm_attach_attr_t at = CAPMEM_RM_ATTACH_ATTR_INIT;
    at.at = 64u << 10;
    uint64_t addr;
    CHECK(capmem_rm_attach(a, outer, inner_ds, &at, &addr));
    pager_t p = {parent, CAPMEM_CAP_NULL};
    CHECK(capmem_ram_alloc(a, parent, 4096, &p.ds));
    CHECK(capmem_rm_set_fault_handler(a, inner, attach_on_fault, &p));
    capmem_cap_t heap;
    CHECK(capmem_ram_alloc(a, parent, 32768, &heap));
    at.at = 0;
    CHECK(capmem_rm_attach(a, outer, heap, &at, &addr));
    char buf[4];
    CHECK(capmem_rm_read(a, outer, (64u << 10) + 0x3000, buf, sizeof(buf)));
    const capmem_cap_t accounts[] = {root, parent};
    dump_all(a, "rm_nested", outer, accounts, 2);
    capmem_arena_destroy(a);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s DIR [NAME]\n", argv[0]);
        return 2;
    }
    dir = argv[1];
    const char *only = argc > 2 ? argv[2] : NULL;
    static const struct {
        const char *name;
        void (*run)(void);
    } scenarios[] = {
        {"sel4_fragmentation", sel4_fragmentation},
        {"genode_metadata", genode_metadata},
        {"alias_split", alias_split},
        {"rm_fault", rm_fault},
        {"rm_nested", rm_nested},
    };
    for (size_t i = 0; i < sizeof(scenarios) / sizeof(scenarios[0]); i++) {
        if (only == NULL || strcmp(only, scenarios[i].name) == 0) {
            scenarios[i].run();
        }
    }
    return 0;
}
