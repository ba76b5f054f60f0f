/* SPDX-License-Identifier: MIT */
/* Layer 7: region maps: attach, detach, faults, managed dataspaces, accounting. */
#define _GNU_SOURCE
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"
#include "rm_internal.h"
#include "support.h"

#define PAGE 4096ull

TEST_WORLD_FIXTURE(64ull << 20, 16ull << 20);

static capmem_cap_t rm_new(fixture_t *f, uint64_t size)
{
    capmem_cap_t rm = test_rm_new(f, size, "map");
    CHECK_INVARIANTS(f->arena);
    return rm;
}

static uint64_t attach(fixture_t *f, capmem_cap_t rm, capmem_cap_t ds, uint64_t at, uint64_t off,
                       uint64_t size, int writable)
{
    capmem_rm_attach_attr_t a = CAPMEM_RM_ATTACH_ATTR_INIT;
    a.at = at;
    a.offset = off;
    a.size = size;
    a.writable = writable;
    uint64_t addr = 0;
    assert_ok(capmem_rm_attach(f->arena, rm, ds, &a, &addr));
    CHECK_INVARIANTS(f->arena);
    return addr;
}

static capmem_rm_info_t rm_info(capmem_arena_t *a, capmem_cap_t rm)
{
    capmem_rm_info_t i;
    assert_ok(capmem_rm_info(a, rm, &i));
    return i;
}

static capmem_ram_info_t acc_info(capmem_arena_t *a, capmem_cap_t acc)
{
    capmem_ram_info_t i;
    assert_ok(capmem_ram_info(a, acc, &i));
    return i;
}

static uint32_t read32(capmem_arena_t *a, capmem_cap_t rm, uint64_t addr)
{
    uint32_t v = 0;
    assert_ok(capmem_rm_read(a, rm, addr, &v, sizeof(v)));
    return v;
}

/* ---- accounting ------------------------------------------------------------------- */

static void test_rm_default_donation_pays_for_documented_regions(void **state)
{
    fixture_t *f = *state;
    assert_int_equal(CAPMEM_RM_DEFAULT_REGIONS, 65536 / 64 - 1 - 4);
    assert_int_equal(CAPMEM_RM_DEFAULT_REGIONS, 1019);
    capmem_cap_t rm = rm_new(f, 8ull << 20);
    capmem_rm_info_t in = rm_info(f->arena, rm);
    assert_int_equal(in.donation, CAPMEM_RM_DEFAULT_DONATION);
    assert_int_equal(in.records_capacity, 1024);
    assert_int_equal(in.records_used, 1 + CAPMEM_RM_SESSION_SLOTS);
    capmem_cap_t ds = test_ds_new(f, PAGE, 0);
    capmem_rm_attach_attr_t a = CAPMEM_RM_ATTACH_ATTR_INIT;
    uint64_t addr;
    for (unsigned i = 0; i < CAPMEM_RM_DEFAULT_REGIONS; i++) {
        assert_true(capmem_rm_attach(f->arena, rm, ds, &a, &addr) == CAPMEM_OK);
        assert_int_equal(addr, (uint64_t)i * PAGE); /* anywhere: the lowest free page */
        if (i % 128 == 0) {
            CHECK_INVARIANTS(f->arena);
        }
    }
    CHECK_INVARIANTS(f->arena);
    capmem_rm_info_t full = rm_info(f->arena, rm);
    assert_int_equal(full.regions, CAPMEM_RM_DEFAULT_REGIONS);
    addr = 77;
    assert_err(capmem_rm_attach(f->arena, rm, ds, &a, &addr), CAPMEM_E_OUT_OF_METADATA);
    assert_int_equal(addr, 77);
    assert_non_null(strstr(capmem_last_error()->message, "Could not allocate metadata"));
    assert_int_equal(capmem_last_error()->needed, 64);
    capmem_rm_info_t after = rm_info(f->arena, rm);
    assert_memory_equal(&after, &full, sizeof(after));
    /* The managed dataspace's record needs a slot too: none left. */
    capmem_cap_t mds = CAPMEM_CAP_NULL;
    assert_err(capmem_rm_dataspace(f->arena, rm, &mds), CAPMEM_E_OUT_OF_METADATA);
    assert_int_equal(mds, CAPMEM_CAP_NULL);
    CHECK_INVARIANTS(f->arena);
}

typedef struct evlog {
    int donate;
    int close;
    int upgrade;
    int fault;
    uint64_t last_fault_addr;
    uint64_t last_fault_access;
} evlog_t;

static void on_event(capmem_arena_t *a, const capmem_event_t *ev, void *ctx)
{
    (void)a;
    evlog_t *log = ctx;
    switch (ev->kind) {
    case CAPMEM_EVENT_DONATE:
        log->donate++;
        break;
    case CAPMEM_EVENT_SESSION_CLOSE:
        log->close++;
        break;
    case CAPMEM_EVENT_UPGRADE:
        log->upgrade++;
        break;
    case CAPMEM_EVENT_FAULT:
        log->fault++;
        log->last_fault_addr = ev->a;
        log->last_fault_access = ev->b;
        break;
    default:
        break;
    }
}

static void test_rm_client_pays_donation_and_gets_it_back(void **state)
{
    fixture_t *f = *state;
    evlog_t log = {0};
    assert_ok(capmem_arena_set_event_handler(f->arena, on_event, &log));
    capmem_ram_info_t before = acc_info(f->arena, f->client);
    capmem_cap_t rm = rm_new(f, 1ull << 20);
    capmem_ram_info_t during = acc_info(f->arena, f->client);
    assert_int_equal(during.quota, before.quota - CAPMEM_RM_DEFAULT_DONATION);
    assert_int_equal(during.caps_used, before.caps_used + 1);
    assert_int_equal(log.donate, 1);
    /* The map's capability is a child of the client's. */
    capmem_cap_info_t ci;
    assert_ok(capmem_cap_identify(f->arena, rm, &ci));
    assert_int_equal(ci.parent, f->client);
    assert_int_equal(ci.type, CAPMEM_OBJ_REGION_MAP);
    assert_int_equal(rm_info(f->arena, rm).client, f->client);
    capmem_cap_t ds = test_ds_new(f, PAGE, 0);
    attach(f, rm, ds, 0, 0, 0, 1);
    /* A copy cannot close it. */
    capmem_cap_t copy;
    assert_ok(capmem_cap_mint(f->arena, rm, CAPMEM_RIGHTS_ALL, &copy));
    assert_err(capmem_rm_close(f->arena, copy), CAPMEM_E_INVALID_ARGS);
    assert_ok(capmem_rm_close(f->arena, rm));
    CHECK_INVARIANTS(f->arena);
    assert_int_equal(log.close, 1);
    assert_err(capmem_rm_info(f->arena, rm, &(capmem_rm_info_t){0}), CAPMEM_E_INVALID_CAP);
    assert_err(capmem_rm_info(f->arena, copy, &(capmem_rm_info_t){0}), CAPMEM_E_INVALID_CAP);
    capmem_ram_info_t after = acc_info(f->arena, f->client);
    assert_int_equal(after.quota, before.quota);
    assert_int_equal(after.caps_used, before.caps_used + 1); /* the dataspace */
    /* The dataspace outlives the map. */
    capmem_ds_info_t di;
    assert_ok(capmem_ds_info(f->arena, ds, &di));
    /* Closing the client closes its maps. */
    capmem_cap_t rm2 = rm_new(f, 1ull << 20);
    attach(f, rm2, ds, CAPMEM_RM_ANYWHERE, 0, 0, 1);
    assert_ok(capmem_ram_close(f->arena, f->client));
    CHECK_INVARIANTS(f->arena);
    assert_err(capmem_rm_info(f->arena, rm2, &(capmem_rm_info_t){0}), CAPMEM_E_INVALID_CAP);
    assert_ok(capmem_arena_set_event_handler(f->arena, NULL, NULL));
}

static void test_rm_create_errors_change_nothing(void **state)
{
    fixture_t *f = *state;
    capmem_ram_info_t before = acc_info(f->arena, f->client);
    capmem_rm_open_attr_t at = CAPMEM_RM_OPEN_ATTR_INIT;
    at.size = 1ull << 20;
    capmem_cap_t rm = CAPMEM_CAP_NULL;
    assert_err(capmem_rm_open(NULL, f->client, &at, &rm), CAPMEM_E_INVALID_ARGS);
    assert_err(capmem_rm_open(f->arena, f->client, NULL, &rm), CAPMEM_E_INVALID_ARGS);
    assert_err(capmem_rm_open(f->arena, f->client, &at, NULL), CAPMEM_E_INVALID_ARGS);
    capmem_rm_open_attr_t bad = at;
    bad.size = 0;
    assert_err(capmem_rm_open(f->arena, f->client, &bad, &rm), CAPMEM_E_INVALID_ARGS);
    bad.size = PAGE + 1;
    assert_err(capmem_rm_open(f->arena, f->client, &bad, &rm), CAPMEM_E_INVALID_ARGS);
    bad.size = (CAPMEM_RM_MAX_PAGES + 1) * PAGE;
    assert_err(capmem_rm_open(f->arena, f->client, &bad, &rm), CAPMEM_E_INVALID_ARGS);
    bad = at;
    bad.donation = 1000;
    assert_err(capmem_rm_open(f->arena, f->client, &bad, &rm), CAPMEM_E_INVALID_ARGS);
    bad.donation = 0;
    assert_err(capmem_rm_open(f->arena, f->client, &bad, &rm), CAPMEM_E_INVALID_ARGS);
    bad = at;
    bad.upgrade_step = 100;
    assert_err(capmem_rm_open(f->arena, f->client, &bad, &rm), CAPMEM_E_INVALID_ARGS);
    bad = at;
    bad.flags = 0x80;
    assert_err(capmem_rm_open(f->arena, f->client, &bad, &rm), CAPMEM_E_INVALID_ARGS);
    /* Capability errors. */
    capmem_cap_t ds = test_ds_new(f, PAGE, 0);
    assert_err(capmem_rm_open(f->arena, ds, &at, &rm), CAPMEM_E_WRONG_TYPE);
    assert_err(capmem_rm_open(f->arena, 0x1234567ull, &at, &rm), CAPMEM_E_INVALID_CAP);
    capmem_cap_t ro;
    assert_ok(capmem_cap_mint(f->arena, f->client, CAPMEM_RIGHT_READ, &ro));
    assert_err(capmem_rm_open(f->arena, ro, &at, &rm), CAPMEM_E_DENIED);
    assert_ok(capmem_cap_delete(f->arena, ro));
    assert_ok(capmem_ds_free(f->arena, ds));
    /* Quota: a poor client. */
    capmem_ram_open_attr_t oa = CAPMEM_RAM_OPEN_ATTR_INIT;
    oa.quota = 32 * 1024;
    oa.caps = 0;
    capmem_cap_t poor;
    assert_ok(capmem_ram_open(f->arena, f->client, &oa, &poor));
    capmem_ram_info_t pb = acc_info(f->arena, poor);
    assert_err(capmem_rm_open(f->arena, poor, &at, &rm), CAPMEM_E_OUT_OF_RAM);
    assert_int_equal(capmem_last_error()->needed, CAPMEM_RM_DEFAULT_DONATION);
    assert_int_equal(capmem_last_error()->available, 32 * 1024);
    at.donation = 16 * 1024;
    assert_err(capmem_rm_open(f->arena, poor, &at, &rm), CAPMEM_E_OUT_OF_CAPS);
    capmem_ram_info_t pa = acc_info(f->arena, poor);
    assert_memory_equal(&pa, &pb, sizeof(pa));
    assert_int_equal(rm, CAPMEM_CAP_NULL);
    assert_ok(capmem_ram_close(f->arena, poor));
    capmem_ram_info_t after = acc_info(f->arena, f->client);
    assert_int_equal(after.quota, before.quota);
    assert_int_equal(after.caps_used, before.caps_used);
    CHECK_INVARIANTS(f->arena);
}

static void test_rm_expanding_map_upgrades_from_client(void **state)
{
    fixture_t *f = *state;
    evlog_t log = {0};
    assert_ok(capmem_arena_set_event_handler(f->arena, on_event, &log));
    capmem_rm_open_attr_t at = CAPMEM_RM_OPEN_ATTR_INIT;
    at.size = 4ull << 20;
    at.donation = PAGE; /* 64 slots: 1 header + 4 session slots + 59 regions */
    at.upgrade_step = PAGE;
    at.flags = CAPMEM_RM_EXPANDING;
    capmem_cap_t rm;
    assert_ok(capmem_rm_open(f->arena, f->client, &at, &rm));
    capmem_cap_t ds = test_ds_new(f, PAGE, 0);
    capmem_ram_info_t before = acc_info(f->arena, f->client);
    capmem_rm_attach_attr_t a = CAPMEM_RM_ATTACH_ATTR_INIT;
    uint64_t addr;
    for (unsigned i = 0; i < 59; i++) {
        assert_ok(capmem_rm_attach(f->arena, rm, ds, &a, &addr));
    }
    assert_int_equal(log.upgrade, 0);
    assert_ok(capmem_rm_attach(f->arena, rm, ds, &a, &addr));
    CHECK_INVARIANTS(f->arena);
    assert_int_equal(log.upgrade, 1);
    capmem_rm_info_t in = rm_info(f->arena, rm);
    assert_int_equal(in.upgrades, 1);
    assert_int_equal(in.donation, 2 * PAGE);
    assert_int_equal(in.regions, 60);
    assert_true(in.expanding);
    assert_int_equal(acc_info(f->arena, f->client).quota, before.quota - PAGE);
    /* An explicit upgrade paid by the client works; any other payer is refused. */
    assert_ok(capmem_rm_upgrade(f->arena, rm, f->client, PAGE));
    assert_err(capmem_rm_upgrade(f->arena, rm, f->root, PAGE), CAPMEM_E_DENIED);
    assert_int_equal(rm_info(f->arena, rm).donation, 3 * PAGE);
    assert_int_equal(rm_info(f->arena, rm).upgrades, 2);
    CHECK_INVARIANTS(f->arena);
    /* A non-expanding map of a client whose quota runs dry: OUT_OF_METADATA; expanding: OUT_OF_RAM.
     */
    capmem_ram_open_attr_t oa = CAPMEM_RAM_OPEN_ATTR_INIT;
    oa.quota = PAGE * 3;
    oa.caps = 8;
    capmem_cap_t poor;
    assert_ok(capmem_ram_open(f->arena, f->client, &oa, &poor));
    capmem_rm_open_attr_t pat = at;
    capmem_cap_t prm;
    assert_ok(capmem_rm_open(f->arena, poor, &pat, &prm)); /* quota left: 2 pages */
    capmem_cap_t pds;
    assert_ok(capmem_ram_alloc(f->arena, poor, PAGE * 2, &pds)); /* quota left: 0 */
    for (unsigned i = 0; i < 59; i++) {
        assert_ok(capmem_rm_attach(f->arena, prm, pds, &a, &addr));
    }
    capmem_rm_info_t pfull = rm_info(f->arena, prm);
    assert_err(capmem_rm_attach(f->arena, prm, pds, &a, &addr), CAPMEM_E_OUT_OF_RAM);
    capmem_rm_info_t pafter = rm_info(f->arena, prm);
    assert_memory_equal(&pfull, &pafter, sizeof(pfull));
    CHECK_INVARIANTS(f->arena);
    assert_ok(capmem_ram_close(f->arena, poor));
    CHECK_INVARIANTS(f->arena);
    assert_ok(capmem_arena_set_event_handler(f->arena, NULL, NULL));
}

/* ---- attach, detach, lookup ------------------------------------------------------- */

static void test_rm_attach_maps_dataspace_bytes_both_ways(void **state)
{
    fixture_t *f = *state;
    capmem_cap_t rm = rm_new(f, 1ull << 20);
    capmem_cap_t a = test_ds_new(f, 2 * PAGE, 0x11);
    capmem_cap_t b = test_ds_new(f, 3 * PAGE, 0x22);
    uint64_t at_a = attach(f, rm, a, 0x10000, 0, 0, 1);
    assert_int_equal(at_a, 0x10000);
    /* b's last two pages right after a: an access can span both. */
    uint64_t at_b = attach(f, rm, b, 0x12000, PAGE, 0, 1);
    assert_int_equal(at_b, 0x12000);
    uint8_t buf[64];
    assert_ok(capmem_rm_read(f->arena, rm, 0x12000 - 32, buf, sizeof(buf)));
    for (int i = 0; i < 32; i++) {
        assert_int_equal(buf[i], 0x11);
        assert_int_equal(buf[32 + i], 0x22);
    }
    memset(buf, 0x5a, sizeof(buf));
    assert_ok(capmem_rm_write(f->arena, rm, 0x12000 - 32, buf, sizeof(buf)));
    uint8_t check[32];
    assert_ok(capmem_ds_read(f->arena, a, 2 * PAGE - 32, check, 32));
    assert_int_equal(check[0], 0x5a);
    assert_ok(capmem_ds_read(f->arena, b, PAGE, check, 32));
    assert_int_equal(check[31], 0x5a);
    assert_ok(capmem_ds_read(f->arena, b, PAGE - 1, check, 1));
    assert_int_equal(check[0], 0x22); /* the page before the offset is untouched */
    capmem_rm_region_t r;
    assert_ok(capmem_rm_lookup(f->arena, rm, 0x13fff, &r));
    assert_int_equal(r.address, 0x12000);
    assert_int_equal(r.size, 2 * PAGE);
    assert_int_equal(r.offset, PAGE);
    assert_true(r.writable);
    assert_false(r.executable);
    assert_false(r.managed);
    assert_err(capmem_rm_lookup(f->arena, rm, 0x14000, &r), CAPMEM_E_NOT_FOUND);
    assert_int_equal(rm_info(f->arena, rm).regions, 2);
    CHECK_INVARIANTS(f->arena);
}

static void test_rm_attach_refusals_change_nothing(void **state)
{
    fixture_t *f = *state;
    capmem_cap_t rm = rm_new(f, 16 * PAGE);
    capmem_cap_t ds = test_ds_new(f, 4 * PAGE, 0);
    attach(f, rm, ds, 4 * PAGE, 0, 2 * PAGE, 1);
    capmem_rm_info_t before = rm_info(f->arena, rm);
    capmem_rm_attach_attr_t a = CAPMEM_RM_ATTACH_ATTR_INIT;
    uint64_t addr = 0xdead;
    /* Overlap: the detail names the conflicting region. */
    a.at = 5 * PAGE;
    assert_err(capmem_rm_attach(f->arena, rm, ds, &a, &addr), CAPMEM_E_REGION_CONFLICT);
    assert_int_equal(capmem_last_error()->address, 4 * PAGE);
    assert_int_equal(capmem_last_error()->size, 2 * PAGE);
    a.at = 2 * PAGE; /* 4 pages from page 2 overlap at page 4 */
    assert_err(capmem_rm_attach(f->arena, rm, ds, &a, &addr), CAPMEM_E_REGION_CONFLICT);
    /* Beyond the map. */
    a.at = 14 * PAGE;
    assert_err(capmem_rm_attach(f->arena, rm, ds, &a, &addr), CAPMEM_E_RANGE);
    assert_int_equal(capmem_last_error()->argument, 3);
    assert_int_equal(capmem_last_error()->bound_max, 16 * PAGE);
    a.at = UINT64_MAX - PAGE + 1;
    assert_err(capmem_rm_attach(f->arena, rm, ds, &a, &addr), CAPMEM_E_RANGE);
    /* Beyond the dataspace. */
    a.at = 8 * PAGE;
    a.offset = 2 * PAGE;
    a.size = 3 * PAGE;
    assert_err(capmem_rm_attach(f->arena, rm, ds, &a, &addr), CAPMEM_E_RANGE);
    assert_int_equal(capmem_last_error()->argument, 2);
    assert_int_equal(capmem_last_error()->bound_max, 4 * PAGE);
    a.offset = 4 * PAGE;
    a.size = 0;
    assert_err(capmem_rm_attach(f->arena, rm, ds, &a, &addr), CAPMEM_E_RANGE);
    /* Misalignment. */
    a = (capmem_rm_attach_attr_t)CAPMEM_RM_ATTACH_ATTR_INIT;
    a.offset = 100;
    assert_err(capmem_rm_attach(f->arena, rm, ds, &a, &addr), CAPMEM_E_INVALID_ARGS);
    a.offset = 0;
    a.size = PAGE + 8;
    assert_err(capmem_rm_attach(f->arena, rm, ds, &a, &addr), CAPMEM_E_INVALID_ARGS);
    a.size = 0;
    a.at = 12 * PAGE + 512;
    assert_err(capmem_rm_attach(f->arena, rm, ds, &a, &addr), CAPMEM_E_INVALID_ARGS);
    /* Read-only alias attached writable: DENIED; read-only is fine. */
    capmem_alias_attr_t al = CAPMEM_ALIAS_ATTR_INIT;
    al.writable = 0;
    capmem_cap_t rom;
    assert_ok(capmem_ds_alias(f->arena, f->client, ds, &al, &rom));
    a = (capmem_rm_attach_attr_t)CAPMEM_RM_ATTACH_ATTR_INIT;
    assert_err(capmem_rm_attach(f->arena, rm, rom, &a, &addr), CAPMEM_E_DENIED);
    /* Writable through a capability without WRITE: DENIED. */
    capmem_cap_t rcap;
    assert_ok(capmem_cap_mint(f->arena, ds, CAPMEM_RIGHT_READ, &rcap));
    assert_err(capmem_rm_attach(f->arena, rm, rcap, &a, &addr), CAPMEM_E_DENIED);
    /* A capability without READ cannot attach at all. */
    capmem_cap_t gcap;
    assert_ok(capmem_cap_mint(f->arena, ds, CAPMEM_RIGHT_GRANT, &gcap));
    a.writable = 0;
    assert_err(capmem_rm_attach(f->arena, rm, gcap, &a, &addr), CAPMEM_E_DENIED);
    /* Revoked and wrong-type capabilities. */
    capmem_cap_t copy;
    assert_ok(capmem_cap_mint(f->arena, ds, CAPMEM_RIGHTS_ALL, &copy));
    assert_ok(capmem_cap_delete(f->arena, copy));
    assert_err(capmem_rm_attach(f->arena, rm, copy, &a, &addr), CAPMEM_E_INVALID_CAP);
    assert_err(capmem_rm_attach(f->arena, rm, f->client, &a, &addr), CAPMEM_E_WRONG_TYPE);
    assert_err(capmem_rm_attach(f->arena, ds, ds, &a, &addr), CAPMEM_E_WRONG_TYPE);
    capmem_cap_t rmro;
    assert_ok(capmem_cap_mint(f->arena, rm, CAPMEM_RIGHT_READ, &rmro));
    assert_err(capmem_rm_attach(f->arena, rmro, ds, &a, &addr), CAPMEM_E_DENIED);
    /* NULL arguments. */
    assert_err(capmem_rm_attach(NULL, rm, ds, &a, &addr), CAPMEM_E_INVALID_ARGS);
    assert_err(capmem_rm_attach(f->arena, rm, ds, NULL, &addr), CAPMEM_E_INVALID_ARGS);
    assert_err(capmem_rm_attach(f->arena, rm, ds, &a, NULL), CAPMEM_E_INVALID_ARGS);
    /* Anywhere without room: 4 pages + 10 pages free, 12 asked. */
    capmem_cap_t big = test_ds_new(f, 12 * PAGE, 0);
    assert_err(capmem_rm_attach(f->arena, rm, big, &a, &addr), CAPMEM_E_NOT_ENOUGH_MEMORY);
    capmem_cap_t huge = test_ds_new(f, 32 * PAGE, 0);
    assert_err(capmem_rm_attach(f->arena, rm, huge, &a, &addr), CAPMEM_E_RANGE);
    assert_int_equal(addr, 0xdead);
    capmem_rm_info_t after = rm_info(f->arena, rm);
    assert_memory_equal(&after, &before, sizeof(after));
    /* A read-only attachment of the read-only alias is accepted. */
    uint64_t ro_at = attach(f, rm, rom, CAPMEM_RM_ANYWHERE, 0, PAGE, 0);
    assert_int_equal(ro_at, 0);
    CHECK_INVARIANTS(f->arena);
}

static void test_rm_anywhere_takes_lowest_fitting_address(void **state)
{
    fixture_t *f = *state;
    capmem_cap_t rm = rm_new(f, 64 * PAGE);
    capmem_cap_t ds = test_ds_new(f, 8 * PAGE, 0);
    /* Regions at pages 0-1, 3, 6-9, 12; free: 2, 4-5, 10-11, 13.. */
    attach(f, rm, ds, 0, 0, 2 * PAGE, 1);
    attach(f, rm, ds, 3 * PAGE, 0, PAGE, 1);
    attach(f, rm, ds, 6 * PAGE, 0, 4 * PAGE, 1);
    attach(f, rm, ds, 12 * PAGE, 0, PAGE, 1);
    assert_int_equal(attach(f, rm, ds, CAPMEM_RM_ANYWHERE, 0, 2 * PAGE, 1), 4 * PAGE);
    assert_int_equal(attach(f, rm, ds, CAPMEM_RM_ANYWHERE, 0, PAGE, 1), 2 * PAGE);
    assert_int_equal(attach(f, rm, ds, CAPMEM_RM_ANYWHERE, 0, 3 * PAGE, 1), 13 * PAGE);
    assert_int_equal(attach(f, rm, ds, CAPMEM_RM_ANYWHERE, 0, 2 * PAGE, 1), 10 * PAGE);
    /* Detaching joins the gaps again. */
    assert_ok(capmem_rm_detach(f->arena, rm, 3 * PAGE + 17));
    CHECK_INVARIANTS(f->arena);
    assert_ok(capmem_rm_detach(f->arena, rm, 4 * PAGE));
    CHECK_INVARIANTS(f->arena);
    assert_int_equal(attach(f, rm, ds, CAPMEM_RM_ANYWHERE, 0, 3 * PAGE, 1), 3 * PAGE);
    /* The tail of the map counts as a gap. */
    assert_int_equal(attach(f, rm, ds, CAPMEM_RM_ANYWHERE, 0, 8 * PAGE, 1), 16 * PAGE);
    assert_err(capmem_rm_detach(f->arena, rm, 60 * PAGE), CAPMEM_E_NOT_FOUND);
    assert_int_equal(capmem_last_error()->address, 60 * PAGE);
    assert_err(capmem_rm_detach(f->arena, rm, UINT64_MAX), CAPMEM_E_NOT_FOUND);
    assert_err(capmem_rm_detach(NULL, rm, 0), CAPMEM_E_INVALID_ARGS);
    assert_err(capmem_rm_detach(f->arena, ds, 0), CAPMEM_E_WRONG_TYPE);
    CHECK_INVARIANTS(f->arena);
}

/* Random attach/detach against a shadow page map: the tree stays valid after every step. */
static void test_rm_random_attach_detach_keeps_tree_valid(void **state)
{
    fixture_t *f = *state;
    enum { PAGES = 256 };
    capmem_cap_t rm = rm_new(f, PAGES * PAGE);
    capmem_cap_t ds = test_ds_new(f, 8 * PAGE, 0);
    int owner[PAGES];
    uint64_t start[PAGES];
    memset(owner, 0, sizeof(owner));
    uint64_t seed = 12345;
    int live = 0;
    unsigned steps = test_under_valgrind() ? 600 : 3000;
    for (unsigned step = 0; step < steps; step++) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        unsigned op = (unsigned)(seed >> 60) % 3;
        uint64_t pages = 1 + (seed >> 20) % 8;
        uint64_t pg = (seed >> 32) % PAGES;
        capmem_rm_attach_attr_t a = CAPMEM_RM_ATTACH_ATTR_INIT;
        a.size = pages * PAGE;
        uint64_t addr = 0;
        if (op == 0) {
            /* Expected lowest fit from the shadow map. */
            uint64_t want = UINT64_MAX;
            for (uint64_t p = 0; p + pages <= PAGES && want == UINT64_MAX; p++) {
                uint64_t k = 0;
                while (k < pages && owner[p + k] == 0) {
                    k++;
                }
                if (k == pages) {
                    want = p;
                }
            }
            capmem_err_t e = capmem_rm_attach(f->arena, rm, ds, &a, &addr);
            if (want == UINT64_MAX) {
                assert_int_equal(e, CAPMEM_E_NOT_ENOUGH_MEMORY);
            } else {
                assert_int_equal(e, CAPMEM_OK);
                assert_int_equal(addr, want * PAGE);
                live++;
                for (uint64_t k = 0; k < pages; k++) {
                    owner[want + k] = live;
                    start[want + k] = want;
                }
            }
        } else if (op == 1) {
            a.at = pg * PAGE;
            bool free_run = pg + pages <= PAGES;
            for (uint64_t k = 0; free_run && k < pages; k++) {
                free_run = owner[pg + k] == 0;
            }
            capmem_err_t e = capmem_rm_attach(f->arena, rm, ds, &a, &addr);
            if (pg + pages > PAGES) {
                assert_int_equal(e, CAPMEM_E_RANGE);
            } else if (!free_run) {
                assert_int_equal(e, CAPMEM_E_REGION_CONFLICT);
            } else {
                assert_int_equal(e, CAPMEM_OK);
                live++;
                for (uint64_t k = 0; k < pages; k++) {
                    owner[pg + k] = live;
                    start[pg + k] = pg;
                }
            }
        } else {
            capmem_err_t e = capmem_rm_detach(f->arena, rm, pg * PAGE);
            if (owner[pg] == 0) {
                assert_int_equal(e, CAPMEM_E_NOT_FOUND);
            } else {
                assert_int_equal(e, CAPMEM_OK);
                int id = owner[pg];
                for (uint64_t p = start[pg]; p < PAGES && owner[p] == id; p++) {
                    owner[p] = 0;
                }
            }
        }
        CHECK_INVARIANTS(f->arena);
    }
}

static void test_rm_free_or_revoke_detaches_everywhere(void **state)
{
    fixture_t *f = *state;
    capmem_cap_t rm1 = rm_new(f, 1ull << 20);
    capmem_cap_t rm2 = rm_new(f, 1ull << 20);
    capmem_cap_t ds = test_ds_new(f, 4 * PAGE, 0x33);
    capmem_alias_attr_t al = CAPMEM_ALIAS_ATTR_INIT;
    al.offset = PAGE;
    al.size = PAGE;
    capmem_cap_t dep;
    assert_ok(capmem_ds_alias(f->arena, f->client, ds, &al, &dep));
    attach(f, rm1, ds, 0, 0, 0, 1);
    attach(f, rm1, ds, 8 * PAGE, 0, PAGE, 1);
    attach(f, rm2, ds, PAGE, 0, 0, 0);
    attach(f, rm2, dep, 16 * PAGE, 0, 0, 1);
    assert_int_equal(read32(f->arena, rm2, 16 * PAGE), 0x33333333);
    assert_int_equal(rm_info(f->arena, rm1).regions, 2);
    assert_int_equal(rm_info(f->arena, rm2).regions, 2);
    /* Revoking the dataspace's capability kills the dependent alias: detached. */
    assert_ok(capmem_cap_revoke(f->arena, ds));
    CHECK_INVARIANTS(f->arena);
    assert_int_equal(rm_info(f->arena, rm2).regions, 1);
    uint32_t v;
    assert_err(capmem_rm_read(f->arena, rm2, 16 * PAGE, &v, 4), CAPMEM_E_UNRESOLVED_FAULT);
    /* Freeing the dataspace detaches it from both maps. */
    assert_ok(capmem_ds_free(f->arena, ds));
    CHECK_INVARIANTS(f->arena);
    assert_int_equal(rm_info(f->arena, rm1).regions, 0);
    assert_int_equal(rm_info(f->arena, rm2).regions, 0);
    assert_err(capmem_rm_read(f->arena, rm1, 0, &v, 4), CAPMEM_E_UNRESOLVED_FAULT);
    assert_err(capmem_rm_read(f->arena, rm2, PAGE, &v, 4), CAPMEM_E_UNRESOLVED_FAULT);
    /* Records were returned to the donations. */
    assert_int_equal(rm_info(f->arena, rm1).records_used, 1 + CAPMEM_RM_SESSION_SLOTS);
    /* Closing the map first, then freeing the dataspace, also works. */
    capmem_cap_t ds2 = test_ds_new(f, PAGE, 0);
    attach(f, rm1, ds2, 0, 0, 0, 1);
    assert_ok(capmem_rm_close(f->arena, rm1));
    CHECK_INVARIANTS(f->arena);
    assert_ok(capmem_ds_free(f->arena, ds2));
    CHECK_INVARIANTS(f->arena);
}

/* ---- faults ------------------------------------------------------------------------- */

typedef struct pager {
    capmem_cap_t client;
    capmem_cap_t rm;
    capmem_cap_t ds; /* attached at the fault page when set */
    int writable;
    int resolve;
    int calls;
    uint64_t last_addr;
    capmem_rm_access_t last_access;
    capmem_rm_state_t seen; /* state as the handler saw it */
} pager_t;

static capmem_rm_fault_result_t pager_fn(capmem_arena_t *a, const capmem_rm_fault_t *fault,
                                         void *ctx)
{
    pager_t *p = ctx;
    p->calls++;
    p->last_addr = fault->address;
    p->last_access = fault->access;
    if (capmem_rm_state(a, fault->rm, &p->seen) != CAPMEM_OK) {
        return CAPMEM_RM_FAULT_UNRESOLVED;
    }
    if (p->ds != CAPMEM_CAP_NULL) {
        capmem_rm_attach_attr_t at = CAPMEM_RM_ATTACH_ATTR_INIT;
        at.at = fault->address & ~(PAGE - 1);
        at.size = PAGE;
        at.writable = p->writable;
        uint64_t addr;
        if (capmem_rm_attach(a, fault->rm, p->ds, &at, &addr) != CAPMEM_OK) {
            return CAPMEM_RM_FAULT_UNRESOLVED;
        }
    }
    return p->resolve ? CAPMEM_RM_FAULT_RESOLVED : CAPMEM_RM_FAULT_UNRESOLVED;
}

static void test_rm_fault_without_handler_is_unresolved(void **state)
{
    fixture_t *f = *state;
    evlog_t log = {0};
    assert_ok(capmem_arena_set_event_handler(f->arena, on_event, &log));
    capmem_cap_t rm = rm_new(f, 1ull << 20);
    capmem_rm_state_t st;
    assert_ok(capmem_rm_state(f->arena, rm, &st));
    assert_false(st.faulted);
    uint8_t b = 0;
    assert_err(capmem_rm_read(f->arena, rm, 0x5123, &b, 1), CAPMEM_E_UNRESOLVED_FAULT);
    assert_int_equal(capmem_last_error()->address, 0x5123);
    assert_ok(capmem_rm_state(f->arena, rm, &st));
    assert_true(st.faulted);
    assert_true(st.unresolved);
    assert_false(st.pending);
    assert_int_equal(st.address, 0x5123);
    assert_int_equal(st.access, CAPMEM_RM_READ);
    assert_int_equal(st.rm, rm);
    assert_int_equal(st.faults, 1);
    assert_int_equal(log.fault, 1);
    assert_int_equal(log.last_fault_addr, 0x5123);
    assert_int_equal(log.last_fault_access, CAPMEM_RM_READ);
    /* A handler that declines: also unresolved. */
    pager_t p = {.resolve = 0};
    assert_ok(capmem_rm_set_fault_handler(f->arena, rm, pager_fn, &p));
    assert_true(rm_info(f->arena, rm).has_handler);
    assert_err(capmem_rm_write(f->arena, rm, 0x7000, &b, 1), CAPMEM_E_UNRESOLVED_FAULT);
    assert_int_equal(p.calls, 1);
    assert_int_equal(p.last_access, CAPMEM_RM_WRITE);
    assert_true(p.seen.pending);
    assert_int_equal(p.seen.address, 0x7000);
    assert_int_equal(rm_info(f->arena, rm).faults, 2);
    /* Access beyond the map is refused up front, not a fault. */
    assert_err(capmem_rm_read(f->arena, rm, (1ull << 20) - 1, &b, 2), CAPMEM_E_RANGE);
    assert_err(capmem_rm_read(f->arena, rm, UINT64_MAX, &b, 2), CAPMEM_E_RANGE);
    assert_int_equal(p.calls, 1);
    assert_ok(capmem_rm_set_fault_handler(f->arena, rm, NULL, NULL));
    assert_false(rm_info(f->arena, rm).has_handler);
    assert_ok(capmem_arena_set_event_handler(f->arena, NULL, NULL));
    CHECK_INVARIANTS(f->arena);
}

static void test_rm_handler_attaches_and_access_retries(void **state)
{
    fixture_t *f = *state;
    capmem_cap_t rm = rm_new(f, 1ull << 20);
    capmem_cap_t ds = test_ds_new(f, PAGE, 0);
    uint32_t magic = 0xfeedf00d;
    assert_ok(capmem_ds_write(f->arena, ds, 0x10, &magic, 4));
    pager_t p = {.ds = ds, .resolve = 1, .writable = 1};
    assert_ok(capmem_rm_set_fault_handler(f->arena, rm, pager_fn, &p));
    assert_int_equal(read32(f->arena, rm, 0x9010), 0xfeedf00d);
    CHECK_INVARIANTS(f->arena);
    assert_int_equal(p.calls, 1);
    assert_int_equal(p.last_addr, 0x9010);
    capmem_rm_state_t st;
    assert_ok(capmem_rm_state(f->arena, rm, &st));
    assert_true(st.faulted);
    assert_false(st.unresolved);
    assert_false(st.pending);
    assert_int_equal(st.address, 0x9010);
    /* Mapped now: no further fault. */
    assert_int_equal(read32(f->arena, rm, 0x9010), 0xfeedf00d);
    assert_int_equal(p.calls, 1);
    /* An access across three unmapped pages faults on each page in turn. */
    uint8_t buf[2 * PAGE + 16];
    assert_ok(capmem_rm_read(f->arena, rm, 0x20000 - 8, buf, sizeof(buf)));
    assert_int_equal(p.calls, 5);
    assert_int_equal(rm_info(f->arena, rm).regions, 5);
    CHECK_INVARIANTS(f->arena);
}

static void test_rm_write_never_reaches_read_only_memory(void **state)
{
    fixture_t *f = *state;
    capmem_cap_t rm = rm_new(f, 1ull << 20);
    capmem_cap_t ds = test_ds_new(f, PAGE, 0x44);
    capmem_alias_attr_t al = CAPMEM_ALIAS_ATTR_INIT;
    al.writable = 0;
    capmem_cap_t rom;
    assert_ok(capmem_ds_alias(f->arena, f->client, ds, &al, &rom));
    attach(f, rm, rom, 0, 0, 0, 0);
    attach(f, rm, ds, PAGE, 0, 0, 0); /* writable RAM attached read-only */
    uint32_t v = 0x12345678;
    assert_err(capmem_rm_write(f->arena, rm, 0x10, &v, 4), CAPMEM_E_UNRESOLVED_FAULT);
    capmem_rm_state_t st;
    assert_ok(capmem_rm_state(f->arena, rm, &st));
    assert_int_equal(st.access, CAPMEM_RM_WRITE);
    assert_int_equal(st.address, 0x10);
    assert_err(capmem_rm_write(f->arena, rm, PAGE + 0x10, &v, 4), CAPMEM_E_UNRESOLVED_FAULT);
    assert_err(capmem_rm_touch(f->arena, rm, PAGE, 1, CAPMEM_RM_WRITE), CAPMEM_E_UNRESOLVED_FAULT);
    /* A write spanning a writable and a read-only page stops at the boundary. */
    capmem_cap_t rw = test_ds_new(f, PAGE, 0x55);
    attach(f, rm, rw, 2 * PAGE, 0, 0, 1);
    attach(f, rm, rom, 3 * PAGE, 0, 0, 0);
    uint8_t buf[32];
    memset(buf, 0x66, sizeof(buf));
    assert_err(capmem_rm_write(f->arena, rm, 3 * PAGE - 16, buf, 32), CAPMEM_E_UNRESOLVED_FAULT);
    assert_int_equal(capmem_last_error()->address, 3 * PAGE);
    uint8_t back[PAGE];
    assert_ok(capmem_ds_read(f->arena, ds, 0, back, PAGE));
    for (unsigned i = 0; i < PAGE; i++) {
        assert_int_equal(back[i], 0x44);
    }
    assert_int_equal(read32(f->arena, rm, 0x10), 0x44444444);
    /* Execute: only executable attachments. */
    assert_err(capmem_rm_touch(f->arena, rm, 0, 4, CAPMEM_RM_EXEC), CAPMEM_E_UNRESOLVED_FAULT);
    assert_ok(capmem_rm_state(f->arena, rm, &st));
    assert_int_equal(st.access, CAPMEM_RM_EXEC);
    capmem_rm_attach_attr_t a = CAPMEM_RM_ATTACH_ATTR_INIT;
    a.at = 8 * PAGE;
    a.writable = 0;
    a.executable = 1;
    uint64_t addr;
    assert_ok(capmem_rm_attach(f->arena, rm, rom, &a, &addr));
    assert_ok(capmem_rm_touch(f->arena, rm, 8 * PAGE, PAGE, CAPMEM_RM_EXEC));
    assert_ok(capmem_rm_touch(f->arena, rm, 8 * PAGE, PAGE, CAPMEM_RM_READ));
    assert_err(capmem_rm_touch(f->arena, rm, 8 * PAGE, 1, (capmem_rm_access_t)7),
               CAPMEM_E_INVALID_ARGS);
    assert_err(capmem_rm_touch(NULL, rm, 0, 1, CAPMEM_RM_READ), CAPMEM_E_INVALID_ARGS);
    /* Writing through a read-only map capability is refused before any fault. */
    capmem_cap_t rmro;
    assert_ok(capmem_cap_mint(f->arena, rm, CAPMEM_RIGHT_READ, &rmro));
    assert_err(capmem_rm_write(f->arena, rmro, 2 * PAGE, &v, 4), CAPMEM_E_DENIED);
    assert_int_equal(read32(f->arena, rmro, 2 * PAGE), 0x55555555);
    assert_int_equal(read32(f->arena, rmro, 3 * PAGE - 4), 0x66666666); /* before the fault */
    assert_err(capmem_rm_read(f->arena, rm, 0, NULL, 4), CAPMEM_E_INVALID_ARGS);
    assert_err(capmem_rm_write(NULL, rm, 0, &v, 4), CAPMEM_E_INVALID_ARGS);
    CHECK_INVARIANTS(f->arena);
}

static void test_rm_handler_that_never_attaches_ends_in_fault_loop(void **state)
{
    fixture_t *f = *state;
    capmem_cap_t rm = rm_new(f, 1ull << 20);
    pager_t p = {.resolve = 1};
    assert_ok(capmem_rm_set_fault_handler(f->arena, rm, pager_fn, &p));
    uint8_t b;
    assert_err(capmem_rm_read(f->arena, rm, 0x3000, &b, 1), CAPMEM_E_FAULT_LOOP);
    assert_int_equal(p.calls, CAPMEM_RM_FAULT_RETRIES);
    assert_int_equal(capmem_last_error()->address, 0x3000);
    CHECK_INVARIANTS(f->arena);
}

/* A handler that uses the library heavily: allocate, attach, detach elsewhere, inspect. */
typedef struct busy {
    fixture_t *f;
    capmem_cap_t other_rm;
    capmem_cap_t other_ds;
    int calls;
    int failures;
} busy_t;

static capmem_rm_fault_result_t busy_fn(capmem_arena_t *a, const capmem_rm_fault_t *fault,
                                        void *ctx)
{
    busy_t *b = ctx;
    b->calls++;
    capmem_cap_t ds;
    capmem_rm_info_t in;
    char why[256];
    capmem_rm_attach_attr_t at = CAPMEM_RM_ATTACH_ATTR_INIT;
    at.at = fault->address & ~(PAGE - 1);
    uint64_t addr;
    uint32_t v = 0xabcd0000u + (uint32_t)b->calls;
    if (capmem_ram_alloc(a, b->f->client, PAGE, &ds) != CAPMEM_OK ||
        capmem_ds_write(a, ds, fault->address & (PAGE - 1), &v, 4) != CAPMEM_OK ||
        capmem_rm_attach(a, fault->rm, ds, &at, &addr) != CAPMEM_OK ||
        capmem_rm_detach(a, b->other_rm, 0) != CAPMEM_OK ||
        capmem_rm_info(a, fault->rm, &in) != CAPMEM_OK || capmem_check(a, why, sizeof(why)) ||
        capmem_rm_read(a, fault->rm, fault->address, &v, 4) != CAPMEM_OK) {
        b->failures++;
        return CAPMEM_RM_FAULT_UNRESOLVED;
    }
    /* Put the other attachment back for the next fault. */
    at.at = 0;
    if (capmem_rm_attach(a, b->other_rm, b->other_ds, &at, &addr) != CAPMEM_OK) {
        b->failures++;
    }
    return CAPMEM_RM_FAULT_RESOLVED;
}

typedef struct access_job {
    capmem_arena_t *arena;
    capmem_cap_t rm;
    int n;
    capmem_err_t err;
    uint32_t values[8];
} access_job_t;

static void *access_thread(void *arg)
{
    access_job_t *j = arg;
    for (int i = 0; i < j->n && j->err == CAPMEM_OK; i++) {
        j->err = capmem_rm_read(j->arena, j->rm, (uint64_t)i * 3 * PAGE + 8, &j->values[i], 4);
    }
    return NULL;
}

static void test_rm_handler_may_call_library_without_deadlock(void **state)
{
    fixture_t *f = *state;
    capmem_cap_t rm = rm_new(f, 1ull << 20);
    busy_t b = {.f = f};
    b.other_rm = rm_new(f, 1ull << 20);
    b.other_ds = test_ds_new(f, PAGE, 0);
    attach(f, b.other_rm, b.other_ds, 0, 0, 0, 1);
    assert_ok(capmem_rm_set_fault_handler(f->arena, rm, busy_fn, &b));
    /* Run the faulting accesses on another thread and wait with a deadline: a deadlock fails. */
    access_job_t j = {.arena = f->arena, .rm = rm, .n = 8};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, access_thread, &j), 0);
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += test_under_valgrind() ? 120 : 20;
    int rc = pthread_timedjoin_np(t, NULL, &deadline);
    if (rc != 0) {
        fail_msg("the faulting access did not finish: deadlock in the fault path");
    }
    assert_ok(j.err);
    assert_int_equal(b.failures, 0);
    assert_int_equal(b.calls, 8);
    for (int i = 0; i < 8; i++) {
        assert_int_equal(j.values[i], 0xabcd0000u + (uint32_t)(i + 1));
    }
    assert_int_equal(rm_info(f->arena, rm).regions, 8);
    CHECK_INVARIANTS(f->arena);
}

static capmem_rm_fault_result_t closer_fn(capmem_arena_t *a, const capmem_rm_fault_t *fault,
                                          void *ctx)
{
    (void)ctx;
    if (capmem_rm_close(a, fault->rm) != CAPMEM_OK) {
        return CAPMEM_RM_FAULT_UNRESOLVED;
    }
    return CAPMEM_RM_FAULT_RESOLVED;
}

static void test_rm_handler_closing_its_map_ends_the_access(void **state)
{
    fixture_t *f = *state;
    capmem_cap_t rm = rm_new(f, 1ull << 20);
    assert_ok(capmem_rm_set_fault_handler(f->arena, rm, closer_fn, NULL));
    uint8_t b;
    assert_err(capmem_rm_read(f->arena, rm, 0, &b, 1), CAPMEM_E_INVALID_CAP);
    CHECK_INVARIANTS(f->arena);
    /* The donation went back to the client. */
    assert_int_equal(acc_info(f->arena, f->client).quota, 16ull << 20);
}

/* A handler that reads the faulting address itself cannot recurse forever. */
static capmem_rm_fault_result_t reentrant_fn(capmem_arena_t *a, const capmem_rm_fault_t *fault,
                                             void *ctx)
{
    capmem_err_t *inner = ctx;
    uint8_t b;
    *inner = capmem_rm_read(a, fault->rm, fault->address, &b, 1);
    return CAPMEM_RM_FAULT_UNRESOLVED;
}

static void test_rm_fault_inside_own_handler_is_not_redelivered(void **state)
{
    fixture_t *f = *state;
    capmem_cap_t rm = rm_new(f, 1ull << 20);
    capmem_err_t inner = CAPMEM_OK;
    assert_ok(capmem_rm_set_fault_handler(f->arena, rm, reentrant_fn, &inner));
    uint8_t b;
    assert_err(capmem_rm_read(f->arena, rm, 0x100, &b, 1), CAPMEM_E_UNRESOLVED_FAULT);
    assert_int_equal(inner, CAPMEM_E_UNRESOLVED_FAULT);
    assert_int_equal(rm_info(f->arena, rm).faults, 2);
    CHECK_INVARIANTS(f->arena);
}

/* ---- managed dataspaces --------------------------------------------------------------- */

static void test_rm_managed_dataspace_is_created_once(void **state)
{
    fixture_t *f = *state;
    capmem_cap_t rm = rm_new(f, 16 * PAGE);
    capmem_ram_info_t before = acc_info(f->arena, f->client);
    capmem_rm_info_t rb = rm_info(f->arena, rm);
    capmem_cap_t mds;
    assert_ok(capmem_rm_dataspace(f->arena, rm, &mds));
    CHECK_INVARIANTS(f->arena);
    capmem_cap_t again;
    assert_ok(capmem_rm_dataspace(f->arena, rm, &again));
    assert_int_equal(again, mds);
    assert_int_equal(acc_info(f->arena, f->client).caps_used, before.caps_used + 1);
    assert_int_equal(rm_info(f->arena, rm).records_used, rb.records_used + 1);
    capmem_ds_info_t di;
    assert_ok(capmem_ds_info(f->arena, mds, &di));
    assert_int_equal(di.kind, CAPMEM_DS_MANAGED);
    assert_int_equal(di.size, 16 * PAGE);
    capmem_cap_info_t ci;
    assert_ok(capmem_cap_identify(f->arena, mds, &ci));
    assert_int_equal(ci.parent, rm);
    /* It goes with its map, not on its own; it cannot be aliased. */
    assert_err(capmem_ds_free(f->arena, mds), CAPMEM_E_WRONG_TYPE);
    capmem_alias_attr_t al = CAPMEM_ALIAS_ATTR_INIT;
    capmem_cap_t x;
    assert_err(capmem_ds_alias(f->arena, f->client, mds, &al, &x), CAPMEM_E_WRONG_TYPE);
    /* Reading and writing it goes through the map (and faults there). */
    capmem_cap_t ds = test_ds_new(f, PAGE, 0x77);
    attach(f, rm, ds, 2 * PAGE, 0, 0, 1);
    uint32_t v = 0;
    assert_ok(capmem_ds_read(f->arena, mds, 2 * PAGE + 4, &v, 4));
    assert_int_equal(v, 0x77777777);
    v = 0x01020304;
    assert_ok(capmem_ds_write(f->arena, mds, 2 * PAGE, &v, 4));
    assert_ok(capmem_ds_read(f->arena, ds, 0, &v, 4));
    assert_int_equal(v, 0x01020304);
    assert_err(capmem_ds_read(f->arena, mds, 0, &v, 4), CAPMEM_E_UNRESOLVED_FAULT);
    /* Errors. */
    assert_err(capmem_rm_dataspace(NULL, rm, &x), CAPMEM_E_INVALID_ARGS);
    assert_err(capmem_rm_dataspace(f->arena, rm, NULL), CAPMEM_E_INVALID_ARGS);
    assert_err(capmem_rm_dataspace(f->arena, ds, &x), CAPMEM_E_WRONG_TYPE);
    capmem_cap_t rmro;
    assert_ok(capmem_cap_mint(f->arena, rm, CAPMEM_RIGHT_READ, &rmro));
    assert_err(capmem_rm_dataspace(f->arena, rmro, &x), CAPMEM_E_DENIED);
    /* Revoking the map's capability takes the managed dataspace; asking again makes a new one. */
    assert_ok(capmem_cap_revoke(f->arena, rm));
    CHECK_INVARIANTS(f->arena);
    assert_err(capmem_ds_info(f->arena, mds, &di), CAPMEM_E_INVALID_CAP);
    assert_ok(capmem_rm_dataspace(f->arena, rm, &again));
    assert_int_not_equal(again, mds);
    CHECK_INVARIANTS(f->arena);
}

typedef struct inner_log {
    int calls;
    uint64_t addr;
    capmem_cap_t rm;
} inner_log_t;

static capmem_rm_fault_result_t log_fn(capmem_arena_t *a, const capmem_rm_fault_t *fault, void *ctx)
{
    (void)a;
    inner_log_t *l = ctx;
    l->calls++;
    l->addr = fault->address;
    l->rm = fault->rm;
    return CAPMEM_RM_FAULT_UNRESOLVED;
}

static void test_rm_nested_fault_goes_to_inner_handler(void **state)
{
    fixture_t *f = *state;
    capmem_cap_t outer = rm_new(f, 64 * PAGE);
    capmem_cap_t inner = rm_new(f, 16 * PAGE);
    capmem_cap_t mds;
    assert_ok(capmem_rm_dataspace(f->arena, inner, &mds));
    /* Inner pages 4..11 appear at outer 32..39. */
    attach(f, outer, mds, 32 * PAGE, 4 * PAGE, 8 * PAGE, 1);
    capmem_rm_region_t r;
    assert_ok(capmem_rm_lookup(f->arena, outer, 33 * PAGE, &r));
    assert_true(r.managed);
    inner_log_t ol = {0};
    inner_log_t il = {0};
    assert_ok(capmem_rm_set_fault_handler(f->arena, outer, log_fn, &ol));
    assert_ok(capmem_rm_set_fault_handler(f->arena, inner, log_fn, &il));
    uint8_t b;
    assert_err(capmem_rm_read(f->arena, outer, 34 * PAGE + 5, &b, 1), CAPMEM_E_UNRESOLVED_FAULT);
    assert_int_equal(il.calls, 1);
    assert_int_equal(il.addr, 6 * PAGE + 5);
    assert_int_equal(il.rm, inner);
    assert_int_equal(ol.calls, 0);
    capmem_rm_state_t st;
    assert_ok(capmem_rm_state(f->arena, inner, &st));
    assert_int_equal(st.address, 6 * PAGE + 5);
    assert_ok(capmem_rm_state(f->arena, outer, &st));
    assert_false(st.faulted);
    /* Outside the managed window the outer handler gets it. */
    assert_err(capmem_rm_read(f->arena, outer, 5, &b, 1), CAPMEM_E_UNRESOLVED_FAULT);
    assert_int_equal(ol.calls, 1);
    /* Backed in the inner map: the read resolves through both. */
    capmem_cap_t ds = test_ds_new(f, PAGE, 0x99);
    attach(f, inner, ds, 6 * PAGE, 0, 0, 1);
    assert_int_equal(read32(f->arena, outer, 34 * PAGE), 0x99999999);
    /* Freeing the inner map detaches its dataspace from the outer map. */
    assert_ok(capmem_rm_close(f->arena, inner));
    CHECK_INVARIANTS(f->arena);
    assert_int_equal(rm_info(f->arena, outer).regions, 0);
}

static void test_rm_cycles_are_refused(void **state)
{
    fixture_t *f = *state;
    capmem_cap_t a = rm_new(f, 16 * PAGE);
    capmem_cap_t b = rm_new(f, 16 * PAGE);
    capmem_cap_t c = rm_new(f, 16 * PAGE);
    capmem_cap_t da, db, dc;
    assert_ok(capmem_rm_dataspace(f->arena, a, &da));
    assert_ok(capmem_rm_dataspace(f->arena, b, &db));
    assert_ok(capmem_rm_dataspace(f->arena, c, &dc));
    capmem_rm_attach_attr_t at = CAPMEM_RM_ATTACH_ATTR_INIT;
    at.size = 4 * PAGE;
    uint64_t addr;
    assert_err(capmem_rm_attach(f->arena, a, da, &at, &addr), CAPMEM_E_CYCLE);
    attach(f, b, da, 0, 0, 4 * PAGE, 1);        /* a inside b */
    attach(f, c, db, 0, 0, 4 * PAGE, 1);        /* b inside c */
    attach(f, c, da, PAGE * 8, 0, 4 * PAGE, 1); /* a inside c twice over: a DAG, fine */
    capmem_rm_info_t before = rm_info(f->arena, a);
    assert_err(capmem_rm_attach(f->arena, a, dc, &at, &addr), CAPMEM_E_CYCLE);
    assert_err(capmem_rm_attach(f->arena, a, db, &at, &addr), CAPMEM_E_CYCLE);
    assert_err(capmem_rm_attach(f->arena, b, dc, &at, &addr), CAPMEM_E_CYCLE);
    capmem_rm_info_t after = rm_info(f->arena, a);
    assert_memory_equal(&before, &after, sizeof(before));
    CHECK_INVARIANTS(f->arena);
}

static void test_rm_nesting_depth_eight_and_beyond(void **state)
{
    fixture_t *f = *state;
    enum { DEPTH = 12 };
    capmem_cap_t maps[DEPTH];
    for (int i = 0; i < DEPTH; i++) {
        maps[i] = rm_new(f, 16 * PAGE);
    }
    /* maps[i+1] holds maps[i] at page 1 (offset 0): address p in maps[0] is p + i pages up. */
    for (int i = 0; i + 1 < DEPTH; i++) {
        capmem_cap_t d;
        assert_ok(capmem_rm_dataspace(f->arena, maps[i], &d));
        attach(f, maps[i + 1], d, PAGE, 0, 15 * PAGE, 1);
    }
    capmem_cap_t ds = test_ds_new(f, PAGE, 0);
    uint32_t v = 0xc0ffee;
    assert_ok(capmem_ds_write(f->arena, ds, 12, &v, 4));
    attach(f, maps[0], ds, 2 * PAGE, 0, 0, 1);
    for (int depth = 0; depth < DEPTH; depth++) {
        assert_int_equal(read32(f->arena, maps[depth], (2 + (uint64_t)depth) * PAGE + 12), v);
    }
    v = 0xbeef;
    assert_ok(capmem_rm_write(f->arena, maps[8], 10 * PAGE + 12, &v, 4));
    assert_int_equal(read32(f->arena, maps[0], 2 * PAGE + 12), 0xbeef);
    inner_log_t l = {0};
    assert_ok(capmem_rm_set_fault_handler(f->arena, maps[0], log_fn, &l));
    uint8_t b;
    assert_err(capmem_rm_read(f->arena, maps[8], 8 * PAGE + 3 * PAGE, &b, 1),
               CAPMEM_E_UNRESOLVED_FAULT);
    assert_int_equal(l.calls, 1);
    assert_int_equal(l.addr, 3 * PAGE);
    CHECK_INVARIANTS(f->arena);
}

/* ---- scale and host memory ------------------------------------------------------------- */

static void test_rm_host_heap_does_not_grow_with_regions(void **state)
{
    (void)state;
    const unsigned n = test_under_valgrind() ? 20000 : 100000;
    capmem_arena_attr_t aa = CAPMEM_ARENA_ATTR_INIT;
    aa.ram_size = 64ull << 20;
    aa.page_size = 256;
    capmem_arena_t *a = NULL;
    assert_ok(capmem_arena_create(&aa, &a));
    capmem_cap_t root;
    assert_ok(capmem_ram_boot(a, NULL, &root));
    capmem_rm_open_attr_t at = CAPMEM_RM_OPEN_ATTR_INIT;
    at.size = (uint64_t)n * 2 * 256;
    at.donation = ((uint64_t)n + 64) * 64;
    at.donation = (at.donation + 255) & ~255ull;
    capmem_cap_t rm;
    assert_ok(capmem_rm_open(a, root, &at, &rm));
    capmem_cap_t ds;
    assert_ok(capmem_ram_alloc(a, root, 256, &ds));
    uint64_t mallocs = capmem__inject_count(CAPMEM__HOST_MALLOC);
    struct mallinfo2 before = mallinfo2();
    capmem_rm_attach_attr_t att = CAPMEM_RM_ATTACH_ATTR_INIT;
    uint64_t addr;
    for (unsigned i = 0; i < n; i++) {
        att.at = (uint64_t)i * 512; /* every other page: n gaps */
        if (capmem_rm_attach(a, rm, ds, &att, &addr) != CAPMEM_OK) {
            fail_msg("attach %u: %s", i, capmem_last_error()->message);
        }
    }
    uint32_t v;
    for (unsigned i = 0; i < n; i += 97) {
        assert_ok(capmem_rm_read(a, rm, (uint64_t)i * 512 + 8, &v, 4));
    }
    for (unsigned i = 0; i < n; i += 2) {
        assert_ok(capmem_rm_detach(a, rm, (uint64_t)i * 512));
    }
    struct mallinfo2 after = mallinfo2();
    assert_int_equal(capmem__inject_count(CAPMEM__HOST_MALLOC), mallocs);
    if (!test_under_valgrind()) {
        print_message("# heap in use: %zu bytes before, %zu after %u regions\n", before.uordblks,
                      after.uordblks, n);
        assert_true(after.uordblks <= before.uordblks + 4096);
    }
    capmem_rm_info_t in;
    assert_ok(capmem_rm_info(a, rm, &in));
    assert_int_equal(in.regions, n / 2);
    CHECK_INVARIANTS(a);
    assert_ok(capmem_rm_close(a, rm));
    CHECK_INVARIANTS(a);
    capmem_arena_destroy(a);
}

/* After Genode's rm_stress: many attach/detach cycles at varying addresses. */
static void test_rm_stress_attach_detach_cycles(void **state)
{
    fixture_t *f = *state;
    const unsigned cycles = test_under_valgrind() ? 4000 : 20000;
    capmem_cap_t rm = rm_new(f, 4096 * PAGE);
    capmem_cap_t ds[4];
    for (int i = 0; i < 4; i++) {
        ds[i] = test_ds_new(f, (uint64_t)(i + 1) * PAGE, (uint8_t)(0x10 + i));
    }
    uint64_t mallocs = capmem__inject_count(CAPMEM__HOST_MALLOC);
    struct mallinfo2 before = mallinfo2();
    uint64_t live[16] = {0};
    uint64_t seed = 99;
    for (unsigned c = 0; c < cycles; c++) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        unsigned slot = (unsigned)(seed >> 59) & 15u;
        if (live[slot] != 0) {
            assert_ok(capmem_rm_detach(f->arena, rm, live[slot] - 1));
            live[slot] = 0;
        }
        int k = (int)((seed >> 40) & 3u);
        capmem_rm_attach_attr_t a = CAPMEM_RM_ATTACH_ATTR_INIT;
        a.at = (c & 1) ? CAPMEM_RM_ANYWHERE : ((seed >> 20) % 4000) * PAGE;
        uint64_t addr;
        capmem_err_t e = capmem_rm_attach(f->arena, rm, ds[k], &a, &addr);
        if (e == CAPMEM_OK) {
            live[slot] = addr + 1;
            uint8_t b;
            assert_ok(capmem_rm_read(f->arena, rm, addr + (uint64_t)k * PAGE, &b, 1));
            assert_int_equal(b, 0x10 + k);
        } else {
            assert_int_equal(e, CAPMEM_E_REGION_CONFLICT);
        }
        if (c % 1000 == 0) {
            /* The checker may use the host heap; the region-map layer itself must not. */
            uint64_t m0 = capmem__inject_count(CAPMEM__HOST_MALLOC);
            CHECK_INVARIANTS(f->arena);
            mallocs += capmem__inject_count(CAPMEM__HOST_MALLOC) - m0;
        }
    }
    struct mallinfo2 after = mallinfo2();
    assert_int_equal(capmem__inject_count(CAPMEM__HOST_MALLOC), mallocs);
    if (!test_under_valgrind()) {
        assert_true(after.uordblks <= before.uordblks + 4096);
    }
    assert_true(rm_info(f->arena, rm).regions <= 16);
    CHECK_INVARIANTS(f->arena);
}

/* ---- the scenarios of the examples ------------------------------------------------------- */

/* examples/rm_fault.c: the pager escalates attachments until the client's write lands. */
typedef struct fault_pager {
    capmem_cap_t ram;
    capmem_cap_t rom;
    int stage;
    int reads;
    int write_faults;
    int exec_faults;
} fault_pager_t;

static capmem_rm_fault_result_t fault_pager_fn(capmem_arena_t *a, const capmem_rm_fault_t *fault,
                                               void *ctx)
{
    fault_pager_t *p = ctx;
    capmem_rm_attach_attr_t at = CAPMEM_RM_ATTACH_ATTR_INIT;
    at.at = fault->address & ~(PAGE - 1);
    uint64_t addr;
    if (fault->access == CAPMEM_RM_EXEC) {
        p->exec_faults++;
        return CAPMEM_RM_FAULT_UNRESOLVED;
    }
    if (fault->access == CAPMEM_RM_READ) {
        uint32_t v = 0x1000u + (uint32_t)p->reads++;
        at.writable = 0;
        if (capmem_ds_write(a, p->ram, 0, &v, 4) != CAPMEM_OK ||
            capmem_rm_attach(a, fault->rm, p->ram, &at, &addr) != CAPMEM_OK) {
            return CAPMEM_RM_FAULT_UNRESOLVED;
        }
        return CAPMEM_RM_FAULT_RESOLVED;
    }
    p->write_faults++;
    if (capmem_rm_detach(a, fault->rm, fault->address) != CAPMEM_OK && p->write_faults > 1) {
        return CAPMEM_RM_FAULT_UNRESOLVED; /* from the second write fault on, something is there */
    }
    capmem_cap_t ds = p->write_faults == 1 ? p->rom : p->ram;
    at.writable = p->write_faults >= 3;
    if (capmem_rm_attach(a, fault->rm, ds, &at, &addr) != CAPMEM_OK) {
        return CAPMEM_RM_FAULT_UNRESOLVED;
    }
    return CAPMEM_RM_FAULT_RESOLVED;
}

static void test_rm_fault_scenario(void **state)
{
    fixture_t *f = *state;
    capmem_cap_t rm = rm_new(f, 1ull << 20);
    fault_pager_t p = {0};
    p.ram = test_ds_new(f, PAGE, 0);
    capmem_cap_t rom_src = test_ds_new(f, PAGE, 0xee);
    capmem_alias_attr_t al = CAPMEM_ALIAS_ATTR_INIT;
    al.writable = 0;
    assert_ok(capmem_ds_alias(f->arena, f->client, rom_src, &al, &p.rom));
    assert_ok(capmem_rm_set_fault_handler(f->arena, rm, fault_pager_fn, &p));
    const uint64_t addr = 0x40000;
    for (int i = 0; i < 4; i++) {
        assert_int_equal(read32(f->arena, rm, addr), 0x1000u + (uint32_t)i);
        CHECK_INVARIANTS(f->arena);
        assert_ok(capmem_rm_detach(f->arena, rm, addr));
        CHECK_INVARIANTS(f->arena);
    }
    assert_int_equal(p.reads, 4);
    uint32_t v = 0xaa55aa55;
    assert_ok(capmem_rm_write(f->arena, rm, addr, &v, 4));
    CHECK_INVARIANTS(f->arena);
    assert_int_equal(p.write_faults, 3);
    uint32_t back;
    assert_ok(capmem_ds_read(f->arena, p.ram, 0, &back, 4));
    assert_int_equal(back, v);
    assert_ok(capmem_ds_read(f->arena, p.rom, 0, &back, 4));
    assert_int_equal(back, 0xeeeeeeee);
    assert_err(capmem_rm_touch(f->arena, rm, addr, 1, CAPMEM_RM_EXEC), CAPMEM_E_UNRESOLVED_FAULT);
    assert_int_equal(p.exec_faults, 1);
    assert_int_equal(rm_info(f->arena, rm).faults, 4 + 3 + 1);
}

/* examples/rm_nested.c (a): 16 faults for a 64 KiB map written every 256th byte. */
typedef struct alloc_pager {
    capmem_cap_t client;
    int faults;
} alloc_pager_t;

static capmem_rm_fault_result_t alloc_pager_fn(capmem_arena_t *a, const capmem_rm_fault_t *fault,
                                               void *ctx)
{
    alloc_pager_t *p = ctx;
    p->faults++;
    capmem_cap_t ds;
    capmem_rm_attach_attr_t at = CAPMEM_RM_ATTACH_ATTR_INIT;
    at.at = fault->address & ~(PAGE - 1);
    uint64_t addr;
    if (capmem_ram_alloc(a, p->client, PAGE, &ds) != CAPMEM_OK ||
        capmem_rm_attach(a, fault->rm, ds, &at, &addr) != CAPMEM_OK) {
        return CAPMEM_RM_FAULT_UNRESOLVED;
    }
    return CAPMEM_RM_FAULT_RESOLVED;
}

static void test_rm_nested_scenario(void **state)
{
    fixture_t *f = *state;
    /* (a) */
    capmem_cap_t outer = rm_new(f, 1ull << 20);
    capmem_cap_t sub = rm_new(f, 64 * 1024);
    alloc_pager_t ap = {.client = f->client};
    assert_ok(capmem_rm_set_fault_handler(f->arena, sub, alloc_pager_fn, &ap));
    capmem_cap_t sub_ds;
    assert_ok(capmem_rm_dataspace(f->arena, sub, &sub_ds));
    uint64_t base = attach(f, outer, sub_ds, CAPMEM_RM_ANYWHERE, 0, 0, 1);
    for (uint64_t off = 0; off < 64 * 1024; off += 256) {
        uint8_t b = (uint8_t)off;
        assert_ok(capmem_rm_write(f->arena, outer, base + off, &b, 1));
    }
    CHECK_INVARIANTS(f->arena);
    assert_int_equal(ap.faults, 16);
    /* (b) */
    capmem_cap_t top = rm_new(f, 40 * 1024);
    capmem_cap_t m24 = rm_new(f, 24 * 1024);
    capmem_cap_t m16 = rm_new(f, 16 * 1024);
    capmem_cap_t bottom = rm_new(f, 40 * 1024);
    capmem_cap_t d24, d16, dbottom;
    assert_ok(capmem_rm_dataspace(f->arena, m24, &d24));
    assert_ok(capmem_rm_dataspace(f->arena, m16, &d16));
    assert_ok(capmem_rm_dataspace(f->arena, bottom, &dbottom));
    attach(f, top, d24, 0, 0, 0, 1);
    attach(f, top, d16, 24 * 1024, 0, 0, 1);
    capmem_cap_t zero = test_ds_new(f, 8 * 1024, 0);
    attach(f, m16, zero, 0x1000, 0, 0, 0);
    attach(f, m24, dbottom, 0, 0, 24 * 1024, 0);
    capmem_cap_t ff = test_ds_new(f, 40 * 1024, 0xff);
    attach(f, bottom, ff, 0, 0, 0, 1);
    CHECK_INVARIANTS(f->arena);
    assert_int_equal(read32(f->arena, top, 24 * 1024 + 0x1000), 0);
    for (uint64_t off = 0; off < 24 * 1024; off += 4) {
        uint32_t v = 0;
        assert_ok(capmem_rm_read(f->arena, top, off, &v, 4));
        assert_int_equal(v, 0xffffffff);
    }
    inner_log_t il = {0};
    assert_ok(capmem_rm_set_fault_handler(f->arena, m16, log_fn, &il));
    uint32_t v;
    assert_err(capmem_rm_read(f->arena, top, 24 * 1024, &v, 4), CAPMEM_E_UNRESOLVED_FAULT);
    assert_int_equal(il.calls, 1);
    assert_int_equal(il.addr, 0);
    assert_int_equal(il.rm, m16);
    /* Writes through the read-only window never reach the bottom's RAM. */
    assert_err(capmem_rm_write(f->arena, top, 0, &v, 4), CAPMEM_E_UNRESOLVED_FAULT);
    CHECK_INVARIANTS(f->arena);
}

/* examples/iso9660_pager.c: a file larger than the cache, paged in on faults, LRU eviction. */
enum { CACHE_PAGES = 4, FILE_PAGES = 24 };

typedef struct iso {
    const uint8_t *file;
    capmem_cap_t cache;
    uint64_t slot_page[CACHE_PAGES]; /* file page + 1 held by each cache slot, 0 if none */
    uint64_t slot_used[CACHE_PAGES];
    uint64_t tick;
    int faults;
    int evictions;
} iso_t;

static capmem_rm_fault_result_t iso_fn(capmem_arena_t *a, const capmem_rm_fault_t *fault, void *ctx)
{
    iso_t *s = ctx;
    s->faults++;
    unsigned victim = 0;
    for (unsigned i = 0; i < CACHE_PAGES; i++) {
        if (s->slot_page[i] == 0) {
            victim = i;
            break;
        }
        if (s->slot_used[i] < s->slot_used[victim]) {
            victim = i;
        }
    }
    if (s->slot_page[victim] != 0) {
        if (capmem_rm_detach(a, fault->rm, (s->slot_page[victim] - 1) * PAGE) != CAPMEM_OK) {
            return CAPMEM_RM_FAULT_UNRESOLVED;
        }
        s->evictions++;
    }
    uint64_t page = fault->address / PAGE;
    capmem_rm_attach_attr_t at = CAPMEM_RM_ATTACH_ATTR_INIT;
    at.at = page * PAGE;
    at.offset = victim * PAGE;
    at.size = PAGE;
    at.writable = 0;
    uint64_t addr;
    if (capmem_ds_write(a, s->cache, victim * PAGE, s->file + page * PAGE, PAGE) != CAPMEM_OK ||
        capmem_rm_attach(a, fault->rm, s->cache, &at, &addr) != CAPMEM_OK) {
        return CAPMEM_RM_FAULT_UNRESOLVED;
    }
    s->slot_page[victim] = page + 1;
    s->slot_used[victim] = ++s->tick;
    return CAPMEM_RM_FAULT_RESOLVED;
}

static void test_rm_iso9660_pager_scenario(void **state)
{
    fixture_t *f = *state;
    uint8_t *file = malloc(FILE_PAGES * PAGE);
    assert_non_null(file);
    uint64_t x = 7;
    for (size_t i = 0; i < FILE_PAGES * PAGE; i++) {
        x = x * 6364136223846793005ull + 1;
        file[i] = (uint8_t)(x >> 56);
    }
    iso_t s = {.file = file};
    s.cache = test_ds_new(f, CACHE_PAGES * PAGE, 0);
    capmem_cap_t pager = rm_new(f, FILE_PAGES * PAGE);
    assert_ok(capmem_rm_set_fault_handler(f->arena, pager, iso_fn, &s));
    capmem_cap_t mds;
    assert_ok(capmem_rm_dataspace(f->arena, pager, &mds));
    capmem_cap_t client_rm = rm_new(f, 1ull << 20);
    uint64_t base = attach(f, client_rm, mds, CAPMEM_RM_ANYWHERE, 0, 0, 0);
    uint8_t *got = malloc(FILE_PAGES * PAGE);
    assert_non_null(got);
    for (int pass = 0; pass < 3; pass++) {
        memset(got, 0, FILE_PAGES * PAGE);
        for (uint64_t off = 0; off < FILE_PAGES * PAGE; off += 1000) {
            size_t n = FILE_PAGES * PAGE - off < 1000 ? FILE_PAGES * PAGE - off : 1000;
            assert_ok(capmem_rm_read(f->arena, client_rm, base + off, got + off, n));
        }
        assert_memory_equal(got, file, FILE_PAGES * PAGE);
        CHECK_INVARIANTS(f->arena);
    }
    assert_int_equal(s.faults, 3 * FILE_PAGES);
    assert_int_equal(s.evictions, 3 * FILE_PAGES - CACHE_PAGES);
    free(got);
    free(file);
}

static void test_rm_query_errors(void **state)
{
    fixture_t *f = *state;
    capmem_cap_t rm = rm_new(f, 16 * PAGE);
    capmem_rm_info_t in;
    capmem_rm_state_t st;
    capmem_rm_region_t r;
    assert_err(capmem_rm_info(NULL, rm, &in), CAPMEM_E_INVALID_ARGS);
    assert_err(capmem_rm_info(f->arena, rm, NULL), CAPMEM_E_INVALID_ARGS);
    assert_err(capmem_rm_info(f->arena, f->client, &in), CAPMEM_E_WRONG_TYPE);
    assert_err(capmem_rm_state(NULL, rm, &st), CAPMEM_E_INVALID_ARGS);
    assert_err(capmem_rm_state(f->arena, rm, NULL), CAPMEM_E_INVALID_ARGS);
    assert_err(capmem_rm_state(f->arena, 42, &st), CAPMEM_E_INVALID_CAP);
    assert_err(capmem_rm_lookup(NULL, rm, 0, &r), CAPMEM_E_INVALID_ARGS);
    assert_err(capmem_rm_lookup(f->arena, rm, 0, NULL), CAPMEM_E_INVALID_ARGS);
    assert_err(capmem_rm_lookup(f->arena, rm, 0, &r), CAPMEM_E_NOT_FOUND);
    assert_err(capmem_rm_lookup(f->arena, rm, UINT64_MAX, &r), CAPMEM_E_NOT_FOUND);
    assert_err(capmem_rm_set_fault_handler(NULL, rm, pager_fn, NULL), CAPMEM_E_INVALID_ARGS);
    capmem_cap_t rmro;
    assert_ok(capmem_cap_mint(f->arena, rm, CAPMEM_RIGHT_READ, &rmro));
    assert_err(capmem_rm_set_fault_handler(f->arena, rmro, pager_fn, NULL), CAPMEM_E_DENIED);
    assert_err(capmem_rm_detach(f->arena, rmro, 0), CAPMEM_E_DENIED);
    assert_err(capmem_rm_close(f->arena, rmro), CAPMEM_E_DENIED);
    assert_err(capmem_rm_close(NULL, rm), CAPMEM_E_INVALID_ARGS);
    assert_err(capmem_rm_close(f->arena, f->client), CAPMEM_E_WRONG_TYPE);
    assert_string_equal(capmem_rm_access_name(CAPMEM_RM_READ), "read");
    assert_string_equal(capmem_rm_access_name(CAPMEM_RM_WRITE), "write");
    assert_string_equal(capmem_rm_access_name(CAPMEM_RM_EXEC), "exec");
    assert_string_equal(capmem_rm_access_name((capmem_rm_access_t)9), "unknown");
    assert_string_equal(rm_info(f->arena, rm).label, "map");
    CHECK_INVARIANTS(f->arena);
}

/* ---- the label --------------------------------------------------------------------------- */

static void label_event(capmem_arena_t *a, const capmem_event_t *ev, void *ctx)
{
    (void)a;
    if (ev->kind == CAPMEM_EVENT_DONATE) {
        snprintf(ctx, 128, "%s", ev->message);
    }
}

static void test_rm_label_keeps_first_23_characters(void **state)
{
    fixture_t *f = *state;
    char msg[128] = "";
    assert_ok(capmem_arena_set_event_handler(f->arena, label_event, msg));
    capmem_rm_open_attr_t at = CAPMEM_RM_OPEN_ATTR_INIT;
    at.size = 16 * PAGE;
    at.label = "abcdefghijklmnopqrstuvwxyz0123456789";
    capmem_cap_t rm;
    assert_ok(capmem_rm_open(f->arena, f->client, &at, &rm));
    capmem_rm_info_t in = rm_info(f->arena, rm);
    assert_int_equal(sizeof(in.label), 24);
    assert_string_equal(in.label, "abcdefghijklmnopqrstuvw");
    /* Events and dumps name the map by the label as kept. */
    assert_non_null(strstr(msg, "region map \"abcdefghijklmnopqrstuvw\" opened"));
    /* Exactly 23 characters are kept whole; no label gives the default. */
    at.label = "12345678901234567890123";
    assert_ok(capmem_rm_open(f->arena, f->client, &at, &rm));
    assert_string_equal(rm_info(f->arena, rm).label, "12345678901234567890123");
    at.label = NULL;
    assert_ok(capmem_rm_open(f->arena, f->client, &at, &rm));
    assert_string_equal(rm_info(f->arena, rm).label, "region map");
    assert_ok(capmem_arena_set_event_handler(f->arena, NULL, NULL));
    CHECK_INVARIANTS(f->arena);
}

/* ---- refusals change nothing ---------------------------------------------------------------- */

/* What a refused call must leave as it was: the paying account, the map, its fault state. */
typedef struct snap {
    capmem_ram_info_t client;
    capmem_rm_info_t map;
    capmem_rm_state_t state;
} snap_t;

static snap_t snap(capmem_arena_t *a, capmem_cap_t client, capmem_cap_t rm)
{
    snap_t s;
    memset(&s, 0, sizeof(s));
    assert_ok(capmem_ram_info(a, client, &s.client));
    assert_ok(capmem_rm_info(a, rm, &s.map));
    assert_ok(capmem_rm_state(a, rm, &s.state));
    return s;
}

/* @p call fails with @p code, and the client, the map @p rm and the invariants are as before. */
#define EXPECT_REFUSED(a, client, rm, call, code)                                                  \
    do {                                                                                           \
        const snap_t before_ = snap((a), (client), (rm));                                          \
        assert_err((call), (code));                                                                \
        const snap_t after_ = snap((a), (client), (rm));                                           \
        assert_memory_equal(&after_, &before_, sizeof(before_));                                   \
        CHECK_INVARIANTS(a);                                                                       \
    } while (0)

static void test_rm_open_without_host_memory_changes_nothing(void **state)
{
    fixture_t *f = *state;
    capmem_ram_info_t before = acc_info(f->arena, f->client);
    capmem_rm_open_attr_t at = CAPMEM_RM_OPEN_ATTR_INIT;
    at.size = 16 * PAGE;
    capmem_cap_t rm = CAPMEM_CAP_NULL;
    /* The first map of an arena sets the layer up: its state is the one host allocation. */
    capmem__inject_fail(CAPMEM__HOST_MALLOC, 1);
    assert_err(capmem_rm_open(f->arena, f->client, &at, &rm), CAPMEM_E_HOST_NOMEM);
    capmem__inject_fail(CAPMEM__HOST_MALLOC, 0);
    assert_int_equal(rm, CAPMEM_CAP_NULL);
    capmem_ram_info_t after = acc_info(f->arena, f->client);
    assert_memory_equal(&after, &before, sizeof(after));
    CHECK_INVARIANTS(f->arena);
    assert_ok(capmem_rm_open(f->arena, f->client, &at, &rm));
    CHECK_INVARIANTS(f->arena);
}

static void test_rm_open_step_and_donation_bounds(void **state)
{
    (void)state;
    /* 256-byte pages: a donation can be a page multiple and still too small for the record. */
    capmem_arena_t *a = test_arena(1ull << 20, 256);
    capmem_cap_t root;
    assert_ok(capmem_ram_boot(a, NULL, &root));
    capmem_ram_info_t before = acc_info(a, root);
    capmem_rm_open_attr_t at = CAPMEM_RM_OPEN_ATTR_INIT;
    at.size = 16 * 256;
    capmem_cap_t rm = CAPMEM_CAP_NULL;
    at.donation = 256; /* header + 4 session slots + 1 region need 384 bytes */
    assert_err(capmem_rm_open(a, root, &at, &rm), CAPMEM_E_INVALID_ARGS);
    at.donation = 512;
    at.upgrade_step = 0;
    assert_err(capmem_rm_open(a, root, &at, &rm), CAPMEM_E_INVALID_ARGS);
    assert_int_equal(rm, CAPMEM_CAP_NULL);
    capmem_ram_info_t after = acc_info(a, root);
    assert_memory_equal(&after, &before, sizeof(after));
    CHECK_INVARIANTS(a);
    /* The smallest of both is fine: 384 bytes round up to two pages, a step of one page. */
    at.upgrade_step = 256;
    assert_ok(capmem_rm_open(a, root, &at, &rm));
    CHECK_INVARIANTS(a);
    capmem_arena_destroy(a);
}

static void test_rm_upgrade_refusals_change_nothing(void **state)
{
    fixture_t *f = *state;
    capmem_arena_t *a = f->arena;
    capmem_cap_t rm = rm_new(f, 16 * PAGE);
    capmem_cap_t gone = rm_new(f, 16 * PAGE);
    assert_ok(capmem_rm_close(a, gone));
    capmem_cap_t ds = test_ds_new(f, PAGE, 0);
    capmem_cap_t ro;
    assert_ok(capmem_cap_mint(a, f->client, CAPMEM_RIGHT_READ, &ro));
    EXPECT_REFUSED(a, f->client, rm, capmem_rm_upgrade(NULL, rm, f->client, PAGE),
                   CAPMEM_E_INVALID_ARGS);
    EXPECT_REFUSED(a, f->client, rm, capmem_rm_upgrade(a, rm, f->client, PAGE + 64),
                   CAPMEM_E_INVALID_ARGS);
    EXPECT_REFUSED(a, f->client, rm, capmem_rm_upgrade(a, rm, f->client, 0), CAPMEM_E_INVALID_ARGS);
    EXPECT_REFUSED(a, f->client, rm, capmem_rm_upgrade(a, gone, f->client, PAGE),
                   CAPMEM_E_INVALID_CAP);
    EXPECT_REFUSED(a, f->client, rm, capmem_rm_upgrade(a, ds, f->client, PAGE),
                   CAPMEM_E_WRONG_TYPE);
    EXPECT_REFUSED(a, f->client, rm, capmem_rm_upgrade(a, rm, ds, PAGE), CAPMEM_E_WRONG_TYPE);
    EXPECT_REFUSED(a, f->client, rm, capmem_rm_upgrade(a, rm, 0x1234567ull, PAGE),
                   CAPMEM_E_INVALID_CAP);
    EXPECT_REFUSED(a, f->client, rm, capmem_rm_upgrade(a, rm, ro, PAGE), CAPMEM_E_DENIED);
    EXPECT_REFUSED(a, f->client, rm, capmem_rm_upgrade(a, rm, f->root, PAGE), CAPMEM_E_DENIED);
    /* The client's avail is below the bytes. */
    const uint64_t avail = acc_info(a, f->client).avail;
    EXPECT_REFUSED(a, f->client, rm, capmem_rm_upgrade(a, rm, f->client, avail + PAGE),
                   CAPMEM_E_OUT_OF_RAM);
    assert_int_equal(capmem_last_error()->needed, avail + PAGE);
    assert_int_equal(capmem_last_error()->available, avail);
    assert_ok(capmem_cap_delete(a, ro));
    CHECK_INVARIANTS(a);
}

static void test_rm_stale_and_wrong_handles_change_nothing(void **state)
{
    fixture_t *f = *state;
    capmem_arena_t *a = f->arena;
    capmem_cap_t rm = rm_new(f, 16 * PAGE);
    capmem_cap_t ds = test_ds_new(f, PAGE, 0);
    attach(f, rm, ds, 0, 0, 0, 1);
    capmem_cap_t gone = rm_new(f, 16 * PAGE);
    assert_ok(capmem_rm_close(a, gone));
    capmem_rm_attach_attr_t at = CAPMEM_RM_ATTACH_ATTR_INIT;
    uint64_t addr = 0xdead;
    capmem_rm_state_t st;
    capmem_rm_region_t r;
    capmem_cap_t out = CAPMEM_CAP_NULL;
    uint8_t b = 0;
    EXPECT_REFUSED(a, f->client, rm, capmem_rm_close(a, gone), CAPMEM_E_INVALID_CAP);
    EXPECT_REFUSED(a, f->client, rm, capmem_rm_attach(a, gone, ds, &at, &addr),
                   CAPMEM_E_INVALID_CAP);
    EXPECT_REFUSED(a, f->client, rm, capmem_rm_detach(a, gone, 0), CAPMEM_E_INVALID_CAP);
    EXPECT_REFUSED(a, f->client, rm, capmem_rm_set_fault_handler(a, gone, pager_fn, NULL),
                   CAPMEM_E_INVALID_CAP);
    EXPECT_REFUSED(a, f->client, rm, capmem_rm_set_fault_handler(a, ds, pager_fn, NULL),
                   CAPMEM_E_WRONG_TYPE);
    EXPECT_REFUSED(a, f->client, rm, capmem_rm_state(a, ds, &st), CAPMEM_E_WRONG_TYPE);
    EXPECT_REFUSED(a, f->client, rm, capmem_rm_lookup(a, gone, 0, &r), CAPMEM_E_INVALID_CAP);
    EXPECT_REFUSED(a, f->client, rm, capmem_rm_lookup(a, ds, 0, &r), CAPMEM_E_WRONG_TYPE);
    EXPECT_REFUSED(a, f->client, rm, capmem_rm_dataspace(a, gone, &out), CAPMEM_E_INVALID_CAP);
    EXPECT_REFUSED(a, f->client, rm, capmem_rm_read(a, gone, 0, &b, 1), CAPMEM_E_INVALID_CAP);
    EXPECT_REFUSED(a, f->client, rm, capmem_rm_read(a, ds, 0, &b, 1), CAPMEM_E_WRONG_TYPE);
    EXPECT_REFUSED(a, f->client, rm, capmem_rm_write(a, gone, 0, &b, 1), CAPMEM_E_INVALID_CAP);
    EXPECT_REFUSED(a, f->client, rm, capmem_rm_write(a, ds, 0, &b, 1), CAPMEM_E_WRONG_TYPE);
    EXPECT_REFUSED(a, f->client, rm, capmem_rm_touch(a, gone, 0, 1, CAPMEM_RM_READ),
                   CAPMEM_E_INVALID_CAP);
    EXPECT_REFUSED(a, f->client, rm, capmem_rm_touch(a, f->client, 0, 1, CAPMEM_RM_READ),
                   CAPMEM_E_WRONG_TYPE);
    assert_int_equal(addr, 0xdead);
    assert_int_equal(out, CAPMEM_CAP_NULL);
    assert_int_equal(b, 0);
    assert_false(rm_info(a, rm).has_handler);
}

static void test_rm_access_refusals_change_nothing(void **state)
{
    fixture_t *f = *state;
    capmem_arena_t *a = f->arena;
    capmem_cap_t rm = rm_new(f, 16 * PAGE);
    capmem_cap_t ds = test_ds_new(f, PAGE, 0x21);
    attach(f, rm, ds, 0, 0, 0, 1);
    pager_t p = {.resolve = 1};
    assert_ok(capmem_rm_set_fault_handler(a, rm, pager_fn, &p));
    capmem_cap_t ro;
    capmem_cap_t grant_only;
    assert_ok(capmem_cap_mint(a, rm, CAPMEM_RIGHT_READ, &ro));
    assert_ok(capmem_cap_mint(a, rm, CAPMEM_RIGHT_GRANT, &grant_only));
    uint8_t buf[8];
    memset(buf, 0x5a, sizeof(buf));
    /* Refused before any byte moves and before any fault: no state, no handler call. */
    EXPECT_REFUSED(a, f->client, rm, capmem_rm_read(NULL, rm, 0, buf, 1), CAPMEM_E_INVALID_ARGS);
    EXPECT_REFUSED(a, f->client, rm, capmem_rm_write(a, rm, 0, NULL, 1), CAPMEM_E_INVALID_ARGS);
    EXPECT_REFUSED(a, f->client, rm, capmem_rm_read(a, grant_only, 0, buf, 1), CAPMEM_E_DENIED);
    EXPECT_REFUSED(a, f->client, rm, capmem_rm_touch(a, grant_only, 0, 1, CAPMEM_RM_EXEC),
                   CAPMEM_E_DENIED);
    EXPECT_REFUSED(a, f->client, rm, capmem_rm_touch(a, ro, 0, 1, CAPMEM_RM_WRITE),
                   CAPMEM_E_DENIED);
    EXPECT_REFUSED(a, f->client, rm, capmem_rm_write(a, rm, 16 * PAGE - 4, buf, 8), CAPMEM_E_RANGE);
    assert_int_equal(capmem_last_error()->argument, 3);
    assert_int_equal(capmem_last_error()->bound_max, 16 * PAGE);
    assert_int_equal(capmem_last_error()->size, 8);
    EXPECT_REFUSED(a, f->client, rm, capmem_rm_touch(a, rm, 16 * PAGE, 1, CAPMEM_RM_READ),
                   CAPMEM_E_RANGE);
    EXPECT_REFUSED(a, f->client, rm, capmem_rm_touch(a, rm, UINT64_MAX, 2, CAPMEM_RM_READ),
                   CAPMEM_E_RANGE);
    assert_int_equal(p.calls, 0);
    uint8_t back[8];
    assert_ok(capmem_ds_read(a, ds, 0, back, sizeof(back)));
    for (unsigned i = 0; i < sizeof(back); i++) {
        assert_int_equal(back[i], 0x21);
    }
    assert_ok(capmem_cap_delete(a, ro));
    assert_ok(capmem_cap_delete(a, grant_only));
    CHECK_INVARIANTS(a);
}

static void test_rm_dataspace_refusals_change_nothing(void **state)
{
    fixture_t *f = *state;
    capmem_arena_t *a = f->arena;
    capmem_cap_t rm = rm_new(f, 16 * PAGE);
    capmem_cap_t out = CAPMEM_CAP_NULL;
    /* WRITE alone is not enough: the managed dataspace can be handed on, so GRANT too. */
    capmem_cap_t no_grant;
    assert_ok(capmem_cap_mint(a, rm, CAPMEM_RIGHT_READ | CAPMEM_RIGHT_WRITE, &no_grant));
    EXPECT_REFUSED(a, f->client, rm, capmem_rm_dataspace(a, no_grant, &out), CAPMEM_E_DENIED);
    assert_ok(capmem_cap_delete(a, no_grant));
    /* A client whose capability quota went to the map itself. */
    capmem_ram_open_attr_t oa = CAPMEM_RAM_OPEN_ATTR_INIT;
    oa.quota = 4 * PAGE;
    oa.caps = 1;
    capmem_cap_t capless;
    assert_ok(capmem_ram_open(a, f->client, &oa, &capless));
    capmem_rm_open_attr_t ra = CAPMEM_RM_OPEN_ATTR_INIT;
    ra.size = 16 * PAGE;
    ra.donation = PAGE;
    capmem_cap_t crm;
    assert_ok(capmem_rm_open(a, capless, &ra, &crm));
    EXPECT_REFUSED(a, capless, crm, capmem_rm_dataspace(a, crm, &out), CAPMEM_E_OUT_OF_CAPS);
    assert_int_equal(capmem_last_error()->needed, 1);
    assert_int_equal(capmem_last_error()->available, 0);
    /* An expanding map, full, of a client with no quota left: the upgrade cannot be paid. */
    oa.quota = 3 * PAGE;
    oa.caps = 8;
    capmem_cap_t poor;
    assert_ok(capmem_ram_open(a, f->client, &oa, &poor));
    ra.size = 64 * PAGE;
    ra.flags = CAPMEM_RM_EXPANDING;
    ra.upgrade_step = PAGE;
    capmem_cap_t prm;
    assert_ok(capmem_rm_open(a, poor, &ra, &prm)); /* quota left: 2 pages */
    capmem_cap_t pds;
    assert_ok(capmem_ram_alloc(a, poor, 2 * PAGE, &pds)); /* quota left: 0 */
    capmem_rm_attach_attr_t at = CAPMEM_RM_ATTACH_ATTR_INIT;
    at.size = PAGE;
    uint64_t addr;
    for (unsigned i = 0; i < 59; i++) {
        assert_ok(capmem_rm_attach(a, prm, pds, &at, &addr));
    }
    EXPECT_REFUSED(a, poor, prm, capmem_rm_dataspace(a, prm, &out), CAPMEM_E_OUT_OF_RAM);
    assert_int_equal(capmem_last_error()->needed, PAGE);
    assert_int_equal(capmem_last_error()->available, 0);
    assert_int_equal(out, CAPMEM_CAP_NULL);
    assert_ok(capmem_ram_close(a, capless));
    assert_ok(capmem_ram_close(a, poor));
    CHECK_INVARIANTS(a);
}

/* The service's RAM in single free pages: every call that needs a contiguous range says so. */
static void test_rm_fragmented_ram_gives_out_of_phys_everywhere(void **state)
{
    (void)state;
    capmem_arena_t *a = test_arena(1ull << 20, PAGE);
    capmem_cap_t root;
    assert_ok(capmem_ram_boot(a, NULL, &root));
    capmem_rm_open_attr_t ra = CAPMEM_RM_OPEN_ATTR_INIT;
    ra.size = 64 * PAGE;
    ra.donation = PAGE; /* 59 regions */
    ra.upgrade_step = 2 * PAGE;
    ra.flags = CAPMEM_RM_EXPANDING;
    capmem_cap_t rm;
    assert_ok(capmem_rm_open(a, root, &ra, &rm));
    capmem_cap_t ds;
    assert_ok(capmem_ram_alloc(a, root, PAGE, &ds));
    capmem_rm_attach_attr_t at = CAPMEM_RM_ATTACH_ATTR_INIT;
    uint64_t addr = 0xdead;
    for (unsigned i = 0; i < 59; i++) {
        assert_ok(capmem_rm_attach(a, rm, ds, &at, &addr));
    }
    /* Fill the rest with single pages, then free every other one. */
    capmem_cap_t pages[256];
    unsigned n = 0;
    while (n < 256 && capmem_ram_alloc(a, root, PAGE, &pages[n]) == CAPMEM_OK) {
        n++;
    }
    for (unsigned i = 0; i < n; i += 2) {
        assert_ok(capmem_ds_free(a, pages[i]));
    }
    CHECK_INVARIANTS(a);
    assert_true(acc_info(a, root).avail >= 4 * PAGE);
    capmem_cap_t out = CAPMEM_CAP_NULL;
    ra.flags = 0;
    ra.donation = 2 * PAGE;
    EXPECT_REFUSED(a, root, rm, capmem_rm_open(a, root, &ra, &out), CAPMEM_E_OUT_OF_PHYS);
    assert_int_equal(capmem_last_error()->needed, 2 * PAGE);
    assert_int_equal(capmem_last_error()->available, PAGE);
    EXPECT_REFUSED(a, root, rm, capmem_rm_upgrade(a, rm, root, 2 * PAGE), CAPMEM_E_OUT_OF_PHYS);
    assert_int_equal(capmem_last_error()->needed, 2 * PAGE);
    /* The expanding map is full: its upgrade step of two pages has nowhere to go. */
    addr = 0xdead;
    EXPECT_REFUSED(a, root, rm, capmem_rm_attach(a, rm, ds, &at, &addr), CAPMEM_E_OUT_OF_PHYS);
    EXPECT_REFUSED(a, root, rm, capmem_rm_dataspace(a, rm, &out), CAPMEM_E_OUT_OF_PHYS);
    assert_int_equal(addr, 0xdead);
    assert_int_equal(out, CAPMEM_CAP_NULL);
    /* One page is enough for an upgrade of one page, and then attach has room. */
    assert_ok(capmem_rm_upgrade(a, rm, root, PAGE));
    assert_ok(capmem_rm_attach(a, rm, ds, &at, &addr));
    CHECK_INVARIANTS(a);
    capmem_arena_destroy(a);
}

/* ---- the seam of real mappings ---------------------------------------------------------- */

/* A pager that replaces the read-only page under a write fault by a writable one. */
typedef struct upgrade_pager {
    capmem_cap_t ds;
    int calls;
} upgrade_pager_t;

static capmem_rm_fault_result_t upgrade_fn(capmem_arena_t *a, const capmem_rm_fault_t *fault,
                                           void *ctx)
{
    upgrade_pager_t *p = ctx;
    p->calls++;
    capmem_rm_attach_attr_t at = CAPMEM_RM_ATTACH_ATTR_INIT;
    at.at = fault->address & ~(PAGE - 1);
    at.offset = PAGE;
    at.size = PAGE;
    uint64_t addr;
    if (capmem_rm_detach(a, fault->rm, fault->address) != CAPMEM_OK ||
        capmem_rm_attach(a, fault->rm, p->ds, &at, &addr) != CAPMEM_OK) {
        return CAPMEM_RM_FAULT_UNRESOLVED;
    }
    return CAPMEM_RM_FAULT_RESOLVED;
}

/* Translate and deliver on their own, inside a call, as a SIGSEGV path will use them. */
static void test_rm_translate_and_deliver_stand_alone(void **state)
{
    fixture_t *f = *state;
    capmem_arena_t *a = f->arena;
    capmem_cap_t outer = rm_new(f, 16 * PAGE);
    capmem_cap_t inner = rm_new(f, 8 * PAGE);
    capmem_cap_t mds;
    assert_ok(capmem_rm_dataspace(a, inner, &mds));
    attach(f, outer, mds, 4 * PAGE, 0, 0, 1); /* inner page p at outer page 4 + p */
    capmem_cap_t ds = test_ds_new(f, 2 * PAGE, 0x31);
    attach(f, inner, ds, 2 * PAGE, PAGE, PAGE, 0); /* ds page 1, read-only, at inner page 2 */
    capmem_ds_info_t di;
    assert_ok(capmem_ds_info(a, ds, &di));
    upgrade_pager_t p = {.ds = ds};
    assert_ok(capmem_rm_set_fault_handler(a, inner, upgrade_fn, &p));
    const char *prev = NULL;
    assert_ok(capmem__enter(a, "test", &prev));
    capmem__rm_t *o = NULL;
    capmem__rm_t *i = NULL;
    assert_ok(capmem__rm_lookup(a, outer, 0, &o));
    assert_ok(capmem__rm_lookup(a, inner, 0, &i));
    capmem__rm_xlate_t x;
    capmem__rm_translate(a, o, 6 * PAGE + 8, CAPMEM_RM_READ, &x);
    assert_null(x.fault_rm);
    assert_int_equal(x.boff, di.offset + PAGE + 8);
    assert_int_equal(x.avail, PAGE - 8);
    /* A write faults in the inner map, at the inner address; translating records nothing. */
    capmem__rm_translate(a, o, 6 * PAGE + 8, CAPMEM_RM_WRITE, &x);
    assert_ptr_equal(x.fault_rm, i);
    assert_int_equal(x.fault_addr, 2 * PAGE + 8);
    assert_int_equal(i->faults, 0);
    capmem__rm_translate(a, o, PAGE, CAPMEM_RM_READ, &x);
    assert_ptr_equal(x.fault_rm, o);
    assert_int_equal(x.fault_addr, PAGE);
    /* Delivering runs the inner handler, which may call in; then translate again. */
    assert_ok(capmem__rm_deliver(a, i, 2 * PAGE + 8, CAPMEM_RM_WRITE));
    assert_int_equal(p.calls, 1);
    assert_ok(capmem__rm_lookup(a, outer, 0, &o));
    capmem__rm_translate(a, o, 6 * PAGE + 8, CAPMEM_RM_WRITE, &x);
    assert_null(x.fault_rm);
    assert_int_equal(x.boff, di.offset + PAGE + 8);
    /* No handler: unresolved, with the address, and the state says so. */
    assert_err(capmem__rm_deliver(a, o, PAGE, CAPMEM_RM_READ), CAPMEM_E_UNRESOLVED_FAULT);
    assert_int_equal(capmem_last_error()->address, PAGE);
    assert_string_equal(capmem_last_error()->function, "test");
    capmem__leave(a, prev);
    capmem_rm_state_t st;
    assert_ok(capmem_rm_state(a, outer, &st));
    assert_true(st.unresolved);
    assert_int_equal(st.address, PAGE);
    assert_ok(capmem_rm_state(a, inner, &st));
    assert_false(st.unresolved);
    assert_int_equal(st.faults, 1);
    CHECK_INVARIANTS(a);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_rm_default_donation_pays_for_documented_regions),
        T(test_rm_client_pays_donation_and_gets_it_back),
        T(test_rm_create_errors_change_nothing),
        T(test_rm_expanding_map_upgrades_from_client),
        T(test_rm_attach_maps_dataspace_bytes_both_ways),
        T(test_rm_attach_refusals_change_nothing),
        T(test_rm_anywhere_takes_lowest_fitting_address),
        T(test_rm_random_attach_detach_keeps_tree_valid),
        T(test_rm_free_or_revoke_detaches_everywhere),
        T(test_rm_fault_without_handler_is_unresolved),
        T(test_rm_handler_attaches_and_access_retries),
        T(test_rm_write_never_reaches_read_only_memory),
        T(test_rm_handler_that_never_attaches_ends_in_fault_loop),
        T(test_rm_handler_may_call_library_without_deadlock),
        T(test_rm_handler_closing_its_map_ends_the_access),
        T(test_rm_fault_inside_own_handler_is_not_redelivered),
        T(test_rm_managed_dataspace_is_created_once),
        T(test_rm_nested_fault_goes_to_inner_handler),
        T(test_rm_cycles_are_refused),
        T(test_rm_nesting_depth_eight_and_beyond),
        cmocka_unit_test(test_rm_host_heap_does_not_grow_with_regions),
        T(test_rm_stress_attach_detach_cycles),
        T(test_rm_fault_scenario),
        T(test_rm_nested_scenario),
        T(test_rm_iso9660_pager_scenario),
        T(test_rm_query_errors),
        T(test_rm_label_keeps_first_23_characters),
        T(test_rm_open_without_host_memory_changes_nothing),
        cmocka_unit_test(test_rm_open_step_and_donation_bounds),
        T(test_rm_upgrade_refusals_change_nothing),
        T(test_rm_stale_and_wrong_handles_change_nothing),
        T(test_rm_access_refusals_change_nothing),
        T(test_rm_dataspace_refusals_change_nothing),
        cmocka_unit_test(test_rm_fragmented_ram_gives_out_of_phys_everywhere),
        T(test_rm_translate_and_deliver_stand_alone),
    };
#undef T
    return cmocka_run_group_tests_name("region_map", tests, NULL, NULL);
}
