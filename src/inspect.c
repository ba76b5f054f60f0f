/* SPDX-License-Identifier: MIT */
/* Layer 9: inspection. The invariant checker over every layer present. */
#include <string.h>

#include "machine_internal.h"

capmem_err_t capmem_check(capmem_arena_t *arena, char *why, size_t len)
{
    if (arena == NULL) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, __func__, "arena is NULL");
    }
    /* The layer checkers write their finding somewhere even when the caller wants none. */
    char scratch[256];
    if (why == NULL || len == 0) {
        why = scratch;
        len = sizeof(scratch);
    }
    why[0] = '\0';
    CAPMEM__ENTER_OR_RETURN(arena);
    capmem_err_t err = capmem__cspace_check(&arena->cspace, why, len);
    if (err == CAPMEM_OK) {
        err = capmem__layers_check(arena, why, len);
    }
    CAPMEM__LEAVE(arena);
    return err;
}
