/* SPDX-License-Identifier: MIT */
/* Built by install_test.sh against the installed headers and library. */
#include <capmem.h>
#include <stdio.h>

int main(void)
{
    capmem_arena_t *arena = NULL;
    if (capmem_arena_create(NULL, &arena) != CAPMEM_OK) {
        fprintf(stderr, "arena: %s\n", capmem_last_error()->message);
        return 1;
    }
    printf("libcapmem %s: %llu bytes of RAM on %s\n", capmem_version(),
           (unsigned long long)capmem_arena_ram_size(arena),
           capmem_backing_name(capmem_arena_backing(arena)));
    capmem_arena_destroy(arena);
    return 0;
}
