/* SPDX-License-Identifier: MIT */
/*
 * rm_fault, after Genode's rm_fault test: a region map with a fault
 * handler (the pager). The client reads an unattached address four times;
 * each time the read faults, the pager writes a value into a RAM dataspace,
 * attaches it read-only at the fault page and resolves, and the client sees
 * the value; then the page is detached again. Next the client writes: the
 * pager first attaches a read-only dataspace (the write faults again), then
 * the RAM dataspace read-only (faults again), then writable, and the write
 * completes. Finally an execute touch of the non-executable attachment
 * faults with EXEC. Exits non-zero if anything shown does not hold, in
 * particular if a write ever lands in the read-only dataspace.
 */
#include <capmem.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#define EXAMPLE_NAME "rm_fault"
#include "example.h"

enum { PAGE = 4096 };
static const uint64_t FAULT_ADDR = 0x40000;

typedef struct pager {
    capmem_cap_t ram; /* writable RAM dataspace */
    capmem_cap_t rom; /* a read-only alias of another dataspace */
    uint32_t next_value;
    int write_faults;
} pager_t;

static capmem_rm_fault_result_t pager(capmem_arena_t *arena, const capmem_rm_fault_t *fault,
                                      void *ctx)
{
    pager_t *p = ctx;
    capmem_rm_state_t st;
    TRY(capmem_rm_state(arena, fault->rm, &st));
    printf("  pager: %s fault at 0x%" PRIx64 " (state: %s at 0x%" PRIx64 ")\n",
           capmem_rm_access_name(fault->access), fault->address, capmem_rm_access_name(st.access),
           st.address);
    capmem_rm_attach_attr_t at = CAPMEM_RM_ATTACH_ATTR_INIT;
    at.at = fault->address & ~(uint64_t)(PAGE - 1);
    uint64_t addr;
    switch (fault->access) {
    case CAPMEM_RM_READ:
        TRY(capmem_ds_write(arena, p->ram, 0, &p->next_value, sizeof(p->next_value)));
        at.writable = 0;
        TRY(capmem_rm_attach(arena, fault->rm, p->ram, &at, &addr));
        printf("  pager: wrote %#" PRIx32 " and attached RAM read-only at 0x%" PRIx64 "\n",
               p->next_value, addr);
        p->next_value++;
        return CAPMEM_RM_FAULT_RESOLVED;
    case CAPMEM_RM_WRITE:
        p->write_faults++;
        if (p->write_faults > 1) {
            TRY(capmem_rm_detach(arena, fault->rm, fault->address));
        }
        at.writable = p->write_faults >= 3;
        TRY(capmem_rm_attach(arena, fault->rm, p->write_faults == 1 ? p->rom : p->ram, &at, &addr));
        printf("  pager: attached %s %s at 0x%" PRIx64 "\n",
               p->write_faults == 1 ? "a read-only dataspace" : "RAM",
               at.writable ? "writable" : "read-only", addr);
        return CAPMEM_RM_FAULT_RESOLVED;
    case CAPMEM_RM_EXEC:
        printf("  pager: no executable memory here, fault stays unresolved\n");
        return CAPMEM_RM_FAULT_UNRESOLVED;
    }
    return CAPMEM_RM_FAULT_UNRESOLVED;
}

int main(void)
{
    capmem_arena_t *arena;
    TRY(capmem_arena_create(NULL, &arena));
    capmem_cap_t root;
    TRY(capmem_ram_boot(arena, NULL, &root));
    pager_t p = {.next_value = 0x1000};
    TRY(capmem_ram_alloc(arena, root, PAGE, &p.ram));
    capmem_cap_t rom_src;
    TRY(capmem_ram_alloc(arena, root, PAGE, &rom_src));
    uint32_t pattern = 0xdeadbeef;
    TRY(capmem_ds_write(arena, rom_src, 0, &pattern, sizeof(pattern)));
    capmem_alias_attr_t al = CAPMEM_ALIAS_ATTR_INIT;
    al.writable = 0;
    TRY(capmem_ds_alias(arena, root, rom_src, &al, &p.rom));

    capmem_rm_open_attr_t ra = CAPMEM_RM_OPEN_ATTR_INIT;
    ra.size = 1u << 20;
    ra.label = "rm_fault";
    capmem_cap_t rm;
    TRY(capmem_rm_open(arena, root, &ra, &rm));
    TRY(capmem_rm_set_fault_handler(arena, rm, pager, &p));

    printf("client: reading 0x%" PRIx64 " four times\n", FAULT_ADDR);
    for (uint32_t i = 0; i < 4; i++) {
        uint32_t v = 0;
        TRY(capmem_rm_read(arena, rm, FAULT_ADDR, &v, sizeof(v)));
        printf("client: read %#" PRIx32 "\n", v);
        EXPECT(v == 0x1000 + i);
        TRY(capmem_rm_detach(arena, rm, FAULT_ADDR)); /* so the next read faults again */
    }

    printf("client: writing 0x%" PRIx64 "\n", FAULT_ADDR);
    uint32_t w = 0xaa55aa55;
    TRY(capmem_rm_write(arena, rm, FAULT_ADDR, &w, sizeof(w)));
    EXPECT(p.write_faults == 3);
    uint32_t back = 0;
    TRY(capmem_ds_read(arena, p.ram, 0, &back, sizeof(back)));
    EXPECT(back == w);
    TRY(capmem_ds_read(arena, p.rom, 0, &back, sizeof(back)));
    EXPECT(back == pattern); /* the read-only dataspace never saw the write */
    printf("client: the write landed in RAM after %d write faults\n", p.write_faults);

    printf("client: executing at 0x%" PRIx64 "\n", FAULT_ADDR);
    capmem_err_t e = capmem_rm_touch(arena, rm, FAULT_ADDR, 4, CAPMEM_RM_EXEC);
    EXPECT(e == CAPMEM_E_UNRESOLVED_FAULT);
    capmem_rm_state_t st;
    TRY(capmem_rm_state(arena, rm, &st));
    EXPECT(st.access == CAPMEM_RM_EXEC && st.unresolved && st.address == FAULT_ADDR);
    printf("client: %s (%s)\n", capmem_err_name(e), capmem_last_error()->message);
    printf("faults in total: %" PRIu64 "\n", st.faults);
    EXPECT(st.faults == 4 + 3 + 1);

    char why[256];
    TRY(capmem_check(arena, why, sizeof(why)));
    TRY(capmem_rm_close(arena, rm));
    capmem_arena_destroy(arena);
    printf("rm_fault: all expectations hold\n");
    return 0;
}
