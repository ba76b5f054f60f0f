/* SPDX-License-Identifier: MIT */
/*
 * rm_nested, after Genode's rm_nested test.
 *
 * (a) A 64 KiB region map whose fault handler allocates a 4 KiB dataspace
 *     and attaches it at the fault page is attached, as a managed
 *     dataspace, into an outer map. Writing every 256th byte of it through
 *     the outer map faults exactly once per page: 16 faults.
 * (b) A stack of maps: a 40 KiB top map holds a 24 KiB and a 16 KiB map.
 *     8 KiB of RAM attached read-only into the 16 KiB map at 0x1000 read as
 *     zero; a 40 KiB bottom map is attached read-only into the 24 KiB map
 *     as a 24 KiB window; 40 KiB of RAM filled with 0xff attached into the
 *     bottom map read as 0xffffffff through the whole chain; a read of the
 *     16 KiB map's unattached page 0 reaches that inner map's handler at
 *     its own address 0, exactly once.
 *
 * Exits non-zero if anything shown does not hold.
 */
#include <capmem.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EXAMPLE_NAME "rm_nested"
#include "example.h"

enum { PAGE = 4096, KIB = 1024 };

static capmem_arena_t *arena;
static capmem_cap_t account;

static capmem_cap_t new_map(uint64_t size, const char *label)
{
    capmem_rm_open_attr_t at = CAPMEM_RM_OPEN_ATTR_INIT;
    at.size = size;
    at.label = label;
    capmem_cap_t rm;
    TRY(capmem_rm_open(arena, account, &at, &rm));
    return rm;
}

static capmem_cap_t managed(capmem_cap_t rm)
{
    capmem_cap_t ds;
    TRY(capmem_rm_dataspace(arena, rm, &ds));
    return ds;
}

static uint64_t attach(capmem_cap_t rm, capmem_cap_t ds, uint64_t at, uint64_t size, int writable)
{
    capmem_rm_attach_attr_t a = CAPMEM_RM_ATTACH_ATTR_INIT;
    a.at = at;
    a.size = size;
    a.writable = writable;
    uint64_t addr;
    TRY(capmem_rm_attach(arena, rm, ds, &a, &addr));
    return addr;
}

static capmem_rm_fault_result_t allocating_pager(capmem_arena_t *a, const capmem_rm_fault_t *f,
                                                 void *ctx)
{
    int *faults = ctx;
    (*faults)++;
    capmem_cap_t ds;
    TRY(capmem_ram_alloc(a, account, PAGE, &ds));
    capmem_rm_attach_attr_t at = CAPMEM_RM_ATTACH_ATTR_INIT;
    at.at = f->address & ~(uint64_t)(PAGE - 1);
    uint64_t addr;
    TRY(capmem_rm_attach(a, f->rm, ds, &at, &addr));
    return CAPMEM_RM_FAULT_RESOLVED;
}

typedef struct seen {
    int calls;
    uint64_t address;
    capmem_cap_t rm;
} seen_t;

static capmem_rm_fault_result_t logging_handler(capmem_arena_t *a, const capmem_rm_fault_t *f,
                                                void *ctx)
{
    (void)a;
    seen_t *s = ctx;
    s->calls++;
    s->address = f->address;
    s->rm = f->rm;
    printf("  16 KiB map's handler: %s fault at its address 0x%" PRIx64 "\n",
           capmem_rm_access_name(f->access), f->address);
    return CAPMEM_RM_FAULT_UNRESOLVED;
}

int main(void)
{
    TRY(capmem_arena_create(NULL, &arena));
    TRY(capmem_ram_boot(arena, NULL, &account));

    printf("(a) a 64 KiB map paged by an allocating handler, written through an outer map\n");
    capmem_cap_t outer = new_map(1u << 20, "outer");
    capmem_cap_t sub = new_map(64 * KIB, "sub");
    int faults = 0;
    TRY(capmem_rm_set_fault_handler(arena, sub, allocating_pager, &faults));
    uint64_t base = attach(outer, managed(sub), CAPMEM_RM_ANYWHERE, 0, 1);
    for (uint64_t off = 0; off < 64 * KIB; off += 256) {
        uint8_t b = (uint8_t)(off >> 8);
        TRY(capmem_rm_write(arena, outer, base + off, &b, 1));
    }
    printf("    faults: %d (one per 4 KiB page)\n", faults);
    EXPECT(faults == 16);
    uint8_t b = 0;
    TRY(capmem_rm_read(arena, outer, base + 0x3f00, &b, 1));
    EXPECT(b == 0x3f);

    printf("(b) a stack of maps\n");
    capmem_cap_t top = new_map(40 * KIB, "top");
    capmem_cap_t m24 = new_map(24 * KIB, "24K");
    capmem_cap_t m16 = new_map(16 * KIB, "16K");
    capmem_cap_t bottom = new_map(40 * KIB, "bottom");
    attach(top, managed(m24), 0, 0, 1);
    attach(top, managed(m16), 24 * KIB, 0, 1);
    capmem_cap_t zero;
    TRY(capmem_ram_alloc(arena, account, 8 * KIB, &zero));
    attach(m16, zero, 0x1000, 0, 0);
    attach(m24, managed(bottom), 0, 24 * KIB, 0);
    capmem_cap_t ff;
    TRY(capmem_ram_alloc(arena, account, 40 * KIB, &ff));
    uint8_t *fill = malloc(40 * KIB);
    EXPECT(fill != NULL);
    memset(fill, 0xff, 40 * KIB);
    TRY(capmem_ds_write(arena, ff, 0, fill, 40 * KIB));
    free(fill);
    attach(bottom, ff, 0, 0, 1);

    uint32_t v = 1;
    TRY(capmem_rm_read(arena, top, 24 * KIB + 0x1000, &v, 4));
    printf("    top 0x%x -> 16K 0x1000 (read-only RAM): %#" PRIx32 "\n", 24 * KIB + 0x1000, v);
    EXPECT(v == 0);
    for (uint64_t off = 0; off < 24 * KIB; off += 4) {
        TRY(capmem_rm_read(arena, top, off, &v, 4));
        EXPECT(v == 0xffffffff);
    }
    printf("    top 0x0..0x5fff -> 24K -> bottom -> RAM: every word reads 0xffffffff\n");
    uint32_t w = 0;
    EXPECT(capmem_rm_write(arena, top, 0x100, &w, 4) == CAPMEM_E_UNRESOLVED_FAULT);
    TRY(capmem_rm_read(arena, top, 0x100, &v, 4));
    EXPECT(v == 0xffffffff); /* the read-only window kept the write out */

    seen_t seen = {0};
    TRY(capmem_rm_set_fault_handler(arena, m16, logging_handler, &seen));
    capmem_err_t e = capmem_rm_read(arena, top, 24 * KIB, &v, 4);
    EXPECT(e == CAPMEM_E_UNRESOLVED_FAULT);
    EXPECT(seen.calls == 1 && seen.address == 0 && seen.rm == m16);
    capmem_rm_state_t st;
    TRY(capmem_rm_state(arena, top, &st));
    EXPECT(!st.faulted); /* no fault was ever the top map's own */
    TRY(capmem_rm_state(arena, m24, &st));
    EXPECT(st.faulted && st.access == CAPMEM_RM_WRITE && st.address == 0x100);
    printf("    top 0x%x -> 16K page 0: delivered once, to the inner map, at 0x0\n", 24 * KIB);

    char why[256];
    TRY(capmem_check(arena, why, sizeof(why)));
    capmem_arena_destroy(arena);
    printf("rm_nested: all expectations hold\n");
    return 0;
}
