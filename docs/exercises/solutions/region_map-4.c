/* SPDX-License-Identifier: MIT */
/*
 * Solution to region_map exercise 4: a pager of your own. It counts the
 * faults it sees and, instead of a fresh page, attaches the same one
 * "shared zero page" read-only everywhere, so every read of untouched
 * memory costs one fault and no quota, and every write faults.
 */
#include <capmem.h>
#include <stdio.h>

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "region_map-4: %s does not hold (line %d)\n", #cond, __LINE__);        \
            return 1;                                                                              \
        }                                                                                          \
    } while (0)

typedef struct pager {
    capmem_cap_t zero_page;
    unsigned faults;
    unsigned write_faults;
} pager_t;

static capmem_rm_fault_result_t on_fault(capmem_arena_t *arena, const capmem_rm_fault_t *f,
                                         void *ctx)
{
    pager_t *p = ctx;
    p->faults++;
    if (f->access != CAPMEM_RM_READ) {
        p->write_faults++;
        return CAPMEM_RM_FAULT_UNRESOLVED; /* a copy-on-write pager would copy here */
    }
    capmem_rm_attach_attr_t at = CAPMEM_RM_ATTACH_ATTR_INIT;
    at.at = f->address & ~(uint64_t)4095;
    at.size = 4096;
    at.writable = 0;
    uint64_t got;
    return capmem_rm_attach(arena, f->rm, p->zero_page, &at, &got) == CAPMEM_OK
               ? CAPMEM_RM_FAULT_RESOLVED
               : CAPMEM_RM_FAULT_UNRESOLVED;
}

int main(void)
{
    capmem_arena_t *arena = NULL;
    capmem_cap_t root, app, rm;
    CHECK(capmem_arena_create(NULL, &arena) == CAPMEM_OK);
    CHECK(capmem_ram_boot(arena, NULL, &root) == CAPMEM_OK);
    capmem_ram_open_attr_t oa = CAPMEM_RAM_OPEN_ATTR_INIT;
    oa.quota = 1u << 20;
    CHECK(capmem_ram_open(arena, root, &oa, &app) == CAPMEM_OK);
    pager_t pager = {0};
    CHECK(capmem_ram_alloc(arena, app, 4096, &pager.zero_page) == CAPMEM_OK);
    capmem_rm_open_attr_t ra = CAPMEM_RM_OPEN_ATTR_INIT;
    ra.size = 64 * 4096;
    CHECK(capmem_rm_open(arena, app, &ra, &rm) == CAPMEM_OK);
    CHECK(capmem_rm_set_fault_handler(arena, rm, on_fault, &pager) == CAPMEM_OK);

    capmem_ram_info_t before, after;
    CHECK(capmem_ram_info(arena, app, &before) == CAPMEM_OK);
    /* (a) Reading 10 pages costs 10 faults; a second pass costs none. */
    for (int pass = 0; pass < 2; pass++) {
        for (uint64_t page = 0; page < 10; page++) {
            unsigned char byte = 1;
            CHECK(capmem_rm_read(arena, rm, page * 4096 + 100, &byte, 1) == CAPMEM_OK);
            CHECK(byte == 0);
        }
    }
    CHECK(pager.faults == 10);
    /* (b) ...and no quota: all ten regions show the same page. */
    CHECK(capmem_ram_info(arena, app, &after) == CAPMEM_OK);
    CHECK(after.used == before.used);
    /* (c) A write faults (the page is read-only), the pager refuses, the write fails. */
    CHECK(capmem_rm_write(arena, rm, 0, "x", 1) == CAPMEM_E_UNRESOLVED_FAULT);
    CHECK(pager.write_faults == 1);
    capmem_rm_state_t st;
    CHECK(capmem_rm_state(arena, rm, &st) == CAPMEM_OK);
    CHECK(st.faults == 11 && st.unresolved && st.access == CAPMEM_RM_WRITE);

    char why[256];
    CHECK(capmem_check(arena, why, sizeof(why)) == CAPMEM_OK);
    capmem_arena_destroy(arena);
    printf("region_map-4: %u faults, all answers hold\n", pager.faults);
    return 0;
}
