/* SPDX-License-Identifier: MIT */
/*
 * The capability layer: handles looked up with errors, capabilities
 * created for objects and charged to a capability quota. Deletion and
 * revoke, which dispatch through the type registry, belong to the machine
 * (machine_internal.h). Never installed.
 */
#ifndef CAPMEM_CAP_INTERNAL_H
#define CAPMEM_CAP_INTERNAL_H

#include "machine_internal.h"

/*
 * Validate a handle: of this arena (else INVALID_CAP, "of another arena"),
 * live, generation and type bits match (else INVALID_CAP, stale or
 * forged), of @p type unless it is CAPMEM_OBJ_NONE (else WRONG_TYPE),
 * holding every right in @p rights (else DENIED). On success *slot points
 * into the table (valid until the next capability is created or deleted).
 * The common case is decided inline; anything else takes the out-of-line
 * path, which works out which error it is and records the detail.
 */
capmem_err_t capmem__cap_lookup_slow(capmem_arena_t *arena, capmem_cap_t cap,
                                     capmem_obj_type_t type, unsigned rights,
                                     capmem__slot_t **slot);

static inline capmem_err_t capmem__cap_lookup(capmem_arena_t *arena, capmem_cap_t cap,
                                              capmem_obj_type_t type, unsigned rights,
                                              capmem__slot_t **slot)
{
    capmem__slot_t *s = capmem__cspace_get(&arena->cspace, cap);
    /* The exact compare inside covers tag, generation, type bits and index. */
    if (s != NULL && (type == CAPMEM_OBJ_NONE || (capmem_obj_type_t)s->type == type) &&
        (rights & ~(unsigned)s->rights) == 0) {
        *slot = s;
        return CAPMEM_OK;
    }
    return capmem__cap_lookup_slow(arena, cap, type, rights, slot);
}

/*
 * Can @p count more capabilities be created now, charged to @p quota (may
 * be NULL)? OUT_OF_CAPS with needed and available otherwise. For decode
 * phases: capmem__cap_create cannot fail after it said yes.
 */
capmem_err_t capmem__cap_reserve_check(capmem_arena_t *arena, const capmem__quota_t *quota,
                                       uint32_t count);

/*
 * Create a capability for object @p obj of @p type. With parent != 0 (a
 * slot index) the new capability becomes its last child. ORIGINAL in
 * @p flags makes the new slot own the object. The slot is charged to
 * @p quota (may be NULL). The caller reserved it (capmem__cap_reserve_check):
 * this cannot fail. Returns the new handle.
 */
capmem_cap_t capmem__cap_create(capmem_arena_t *arena, capmem_obj_type_t type, void *obj,
                                unsigned rights, uint16_t flags, uint32_t parent,
                                capmem__quota_t *quota);

#endif
