/* SPDX-License-Identifier: MIT */
/*
 * Teardown by object type, as seL4's finaliseCap dispatches on the cap
 * type. Records carved from donated metadata (accounts, dataspaces, region
 * maps) carry no ops header, which keeps a dataspace record at 64 bytes;
 * host objects (untyped, frames, kernel objects, user objects) carry one.
 */
#include "ram_internal.h"
#include "rm_hooks.h"

void capmem__object_destroy(capmem_arena_t *arena, capmem_obj_type_t type, void *obj)
{
    switch (type) {
    case CAPMEM_OBJ_RAM_SESSION:
        capmem__account_destroy(arena, obj);
        return;
    case CAPMEM_OBJ_DATASPACE:
        capmem__ds_destroy(arena, obj);
        return;
    case CAPMEM_OBJ_REGION_MAP:
        capmem__rm_destroy(arena, obj);
        return;
    default: {
        capmem__object_t *o = obj;
        if (o->ops->destroy != NULL) {
            o->ops->destroy(arena, o);
        }
        return;
    }
    }
}

const char *capmem__object_name(capmem_obj_type_t type, const void *obj)
{
    switch (type) {
    case CAPMEM_OBJ_RAM_SESSION:
    case CAPMEM_OBJ_DATASPACE:
    case CAPMEM_OBJ_REGION_MAP:
        return capmem_obj_type_name(type);
    default:
        return obj != NULL ? ((const capmem__object_t *)obj)->ops->name : "?";
    }
}
