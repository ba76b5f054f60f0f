/* SPDX-License-Identifier: MIT */
/*
 * Solution to capabilities exercise 2: rights only shrink when a capability
 * is minted, and revoking a capability destroys everything minted from it.
 */
#include <capmem.h>
#include <stdio.h>

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "capabilities-2: %s does not hold (line %d)\n", #cond, __LINE__);      \
            return 1;                                                                              \
        }                                                                                          \
    } while (0)

static const capmem_user_type_t note_type = {.name = "note"};

int main(void)
{
    capmem_arena_t *arena = NULL;
    CHECK(capmem_arena_create(NULL, &arena) == CAPMEM_OK);
    static char note[] = "a note";
    capmem_cap_t all, reader, reader2, sneaky;
    CHECK(capmem_cap_create_user(arena, &note_type, note, CAPMEM_RIGHTS_ALL, &all) == CAPMEM_OK);

    /* (a) read+grant can be minted from all rights... */
    CHECK(capmem_cap_mint(arena, all, CAPMEM_RIGHT_READ | CAPMEM_RIGHT_GRANT, &reader) ==
          CAPMEM_OK);
    /* ...but write cannot come back from a capability that lacks it. */
    CHECK(capmem_cap_mint(arena, reader, CAPMEM_RIGHTS_ALL, &sneaky) == CAPMEM_E_DENIED);
    /* (b) read alone can be minted from read+grant; from read alone nothing (no grant). */
    CHECK(capmem_cap_mint(arena, reader, CAPMEM_RIGHT_READ, &reader2) == CAPMEM_OK);
    CHECK(capmem_cap_mint(arena, reader2, CAPMEM_RIGHT_READ, &sneaky) == CAPMEM_E_DENIED);

    /* (c) Revoking the original destroys both descendants; the original stays. */
    CHECK(capmem_cap_revoke(arena, all) == CAPMEM_OK);
    capmem_cap_info_t info;
    CHECK(capmem_cap_identify(arena, reader, &info) == CAPMEM_E_INVALID_CAP);
    CHECK(capmem_cap_identify(arena, reader2, &info) == CAPMEM_E_INVALID_CAP);
    CHECK(capmem_cap_identify(arena, all, &info) == CAPMEM_OK);
    CHECK(capmem_cap_count(arena) == 1);

    char why[256];
    CHECK(capmem_check(arena, why, sizeof(why)) == CAPMEM_OK);
    capmem_arena_destroy(arena);
    printf("capabilities-2: all answers hold\n");
    return 0;
}
