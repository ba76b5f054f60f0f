/* SPDX-License-Identifier: MIT */
/*
 * Solution to arena exercise 3: physical addresses are phys_base + offset,
 * and a device range may not overlap RAM. Build it against the library
 * (the test suite does) and run it: it exits 0 when every answer holds.
 */
#include <capmem.h>
#include <inttypes.h>
#include <stdio.h>

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "arena-3: %s does not hold (line %d)\n", #cond, __LINE__);             \
            return 1;                                                                              \
        }                                                                                          \
    } while (0)

int main(void)
{
    capmem_arena_attr_t attr = CAPMEM_ARENA_ATTR_INIT;
    attr.ram_size = 8ull << 20;
    attr.phys_base = 0x40000000;
    attr.device_window = 1ull << 20;
    capmem_arena_t *arena = NULL;
    CHECK(capmem_arena_create(&attr, &arena) == CAPMEM_OK);

    /* (a) Offset 0x1234 of RAM is physical 0x40001234. */
    uint64_t phys = 0;
    CHECK(capmem_arena_offset_to_phys(arena, 0x1234, &phys) == CAPMEM_OK);
    CHECK(phys == 0x40001234);
    printf("offset 0x1234 is physical 0x%" PRIx64 "\n", phys);

    /* (b) The last byte of RAM is offset 8 MiB - 1; one more is no RAM at all. */
    CHECK(capmem_arena_offset_to_phys(arena, 8ull << 20, &phys) == CAPMEM_E_INVALID_ARGS);

    /* (c) A device on top of RAM is refused, and the detail names the conflict. */
    capmem_device_info_t dev;
    CHECK(capmem_arena_device_add(arena, 0x40100000, 0x10000, &dev) == CAPMEM_E_REGION_CONFLICT);
    printf("a device inside RAM: %s\n", capmem_last_error()->message);

    /* (d) Beside RAM it is accepted, and its bytes live in the device window. */
    CHECK(capmem_arena_device_add(arena, 0xfee00000, 0x10000, &dev) == CAPMEM_OK);
    uint64_t off = 0;
    CHECK(capmem_arena_phys_to_offset(arena, 0xfee00010, &off) == CAPMEM_OK);
    CHECK(off == (8ull << 20) + 0x10);
    printf("device byte 0xfee00010 lives at backing offset 0x%" PRIx64 "\n", off);

    char why[256];
    CHECK(capmem_check(arena, why, sizeof(why)) == CAPMEM_OK);
    capmem_arena_destroy(arena);
    printf("arena-3: all answers hold\n");
    return 0;
}
