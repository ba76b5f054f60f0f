/* SPDX-License-Identifier: MIT */
/*
 * Region maps, attach and detach (rm_internal.h): a dataspace becomes a
 * region of a map, with one record of the map's donation, and stops being
 * one, by detach or because the dataspace goes away (the detach hook the
 * dataspace layer calls). Attaching a map's managed dataspace where it
 * would contain itself is refused. docs/region_map.md explains the layer.
 *
 * Both calls decode into a plan first (capabilities, alignment, ranges,
 * rights, cycles, the address range, the record), then invoke it in a step
 * that cannot fail.
 */
#include <string.h>

#include "rm_internal.h"

/*
 * Detach region @p r of @p rm, whose dataspace is @p ds (handle @p dsh): the
 * step that cannot fail.
 */
static void region_remove(capmem_arena_t *arena, capmem__rm_t *rm, rm_region_t *r, capmem__ds_t *ds,
                          capmem_cap_t dsh)
{
    /* Real mode's views showing the region drop it first (rm_real.c). */
    capmem__rm_real_drop(arena, rm, r->base, r->pages);
    if (capmem__event_wanted(arena, CAPMEM_EVENT_DETACH)) {
        const uint64_t addr = (uint64_t)r->base << arena->mem.page_shift;
        const uint64_t size = (uint64_t)r->pages << arena->mem.page_shift;
        capmem__emit(arena,
                     &(capmem__ev_t){.kind = CAPMEM_EVENT_DETACH,
                                     .cap = capmem__rm_handle(arena, rm),
                                     .other = dsh,
                                     .a = addr,
                                     .offset = r->off,
                                     .size = size},
                     "detach %llu bytes at 0x%llx from region map \"%s\"", (unsigned long long)size,
                     (unsigned long long)addr, rm->label);
    }
    if (rm->place != NULL) {
        capmem_err_t err = capmem_alloc_free(rm->place, (uint64_t)r->base << arena->mem.page_shift,
                                             (uint64_t)r->pages << arena->mem.page_shift);
        /* A policy that refuses to free its own block keeps it: nothing goes there again. */
        (void)err;
    }
    capmem__rm_tree_remove(rm, r);
    capmem__rm_ds_unlink(ds, r);
    rm->regions--;
    capmem__meta_free(arena, &rm->meta, r);
    capmem__stat_sub(&arena->stats.regions, 1);
}

void capmem__rm_detach_all(capmem_arena_t *arena, capmem__ds_t *ds, capmem_cap_t handle)
{
    while (ds->regions != NULL) {
        rm_region_t *r = ds->regions;
        region_remove(arena, rg_rm(arena, r), r, ds, handle);
    }
}

/* ---- cycles ------------------------------------------------------------------------ */

/*
 * Would attaching the managed dataspace of @p inner into @p outer make a
 * cycle? Only if inner is outer or contains it: walk up from outer through
 * the maps its managed dataspace is attached into. Visit marks keep the walk
 * linear in the attachments on the way, however the maps share.
 */
static bool contains_up(capmem_arena_t *arena, capmem__rm_t *m, const capmem__rm_t *target,
                        uint32_t stamp)
{
    if (m == target) {
        return true;
    }
    if (m->stamp == stamp) {
        return false;
    }
    m->stamp = stamp;
    if (m->managed == NULL) {
        return false;
    }
    for (rm_region_t *r = m->managed->regions; r != NULL; r = r->ds_next) {
        if (contains_up(arena, rg_rm(arena, r), target, stamp)) {
            return true;
        }
    }
    return false;
}

static bool would_cycle(capmem_arena_t *arena, capmem__rm_t *outer, const capmem__rm_t *inner)
{
    return contains_up(arena, outer, inner, capmem__rm_visit_stamp(arena));
}

/* ---- attach ------------------------------------------------------------------------- */

typedef struct attach_plan {
    capmem__rm_t *rm;
    capmem__ds_t *ds;
    uint64_t offset;  /* into the dataspace */
    uint64_t at_pg;   /* first page: the run [at_pg, at_pg + pages) is free */
    uint64_t pages;   /* non-zero */
    uint64_t address; /* at_pg as a local address */
    unsigned flags;   /* RG_WRITABLE, RG_EXEC */
    bool placed;      /* the block is taken in the map's placement policy: undo on failure */
} attach_plan_t;

/* A fixed address: the run must be free (REGION_CONFLICT names the region in the way). */
static capmem_err_t decode_fixed(const capmem_arena_t *arena, uint64_t at, attach_plan_t *plan)
{
    const unsigned shift = arena->mem.page_shift;
    plan->at_pg = at >> shift;
    const rm_region_t *c =
        capmem__rm_tree_overlap(plan->rm, plan->at_pg, plan->at_pg + plan->pages);
    if (c != NULL) {
        const uint64_t c_at = (uint64_t)c->base << shift;
        const uint64_t c_size = (uint64_t)c->pages << shift;
        capmem_err_t err = capmem__fail(
            CAPMEM_E_REGION_CONFLICT, NULL, "0x%llx+0x%llx overlaps the region at 0x%llx+0x%llx",
            (unsigned long long)at, (unsigned long long)(plan->pages << shift),
            (unsigned long long)c_at, (unsigned long long)c_size);
        capmem__detail()->address = c_at;
        capmem__detail()->size = c_size;
        return err;
    }
    if (plan->rm->place != NULL) {
        /* Every region is a block of the policy: it must take this one too. */
        const uint64_t size = plan->pages << shift;
        capmem_err_t err = capmem_alloc_alloc_at(plan->rm->place, at, size);
        if (err == CAPMEM_E_HOST_NOMEM || err == CAPMEM_E_REENTRANT) {
            capmem__detail()->function = capmem__tls_function; /* the wrapper's own: passed on */
            return err;
        }
        if (err != CAPMEM_OK) {
            char why[sizeof(capmem__detail()->message)];
            memcpy(why, capmem__detail()->message, sizeof(why));
            capmem__fail(CAPMEM_E_REGION_CONFLICT, NULL,
                         "placement policy '%s' of region map \"%s\" refused 0x%llx+0x%llx: %s",
                         capmem_alloc_name(plan->rm->place), plan->rm->label,
                         (unsigned long long)at, (unsigned long long)size, why);
            capmem__detail()->address = at;
            capmem__detail()->size = size;
            return CAPMEM_E_REGION_CONFLICT;
        }
        plan->placed = true;
    }
    return CAPMEM_OK;
}

/*
 * Anywhere, through the map's placement policy. Its answer is checked like
 * every policy's (the wrapper: inside [0, size), page-aligned; a custom
 * one's against its live blocks) and then against the regions themselves.
 */
static capmem_err_t decode_placed(const capmem_arena_t *arena, attach_plan_t *plan)
{
    capmem__rm_t *m = plan->rm;
    const unsigned shift = arena->mem.page_shift;
    const uint64_t size = plan->pages << shift;
    uint64_t at = 0;
    capmem_err_t err = capmem_alloc_alloc(m->place, size, arena->mem.page_size, &at);
    if (err != CAPMEM_OK) {
        capmem__detail()->function = capmem__tls_function;
        return err;
    }
    const rm_region_t *c = capmem__rm_tree_overlap(m, at >> shift, (at >> shift) + plan->pages);
    if (c != NULL) {
        (void)capmem_alloc_free(m->place, at, size);
        capmem__fail(CAPMEM_E_POLICY, NULL,
                     "placement policy '%s' of region map \"%s\" answered 0x%llx for 0x%llx "
                     "bytes: overlaps the region at 0x%llx+0x%llx",
                     capmem_alloc_name(m->place), m->label, (unsigned long long)at,
                     (unsigned long long)size, (unsigned long long)((uint64_t)c->base << shift),
                     (unsigned long long)((uint64_t)c->pages << shift));
        capmem__detail()->address = at;
        capmem__detail()->size = size;
        return CAPMEM_E_POLICY;
    }
    plan->at_pg = at >> shift;
    plan->placed = true;
    return CAPMEM_OK;
}

/* Anywhere: the lowest free run of the size (NOT_ENOUGH_MEMORY if none). */
static capmem_err_t decode_anywhere(const capmem_arena_t *arena, attach_plan_t *plan)
{
    if (!capmem__rm_tree_find_free(plan->rm, plan->pages, &plan->at_pg)) {
        const uint64_t size = plan->pages << arena->mem.page_shift;
        return capmem__fail_space(CAPMEM_E_NOT_ENOUGH_MEMORY, NULL, size, 0,
                                  "no free range of 0x%llx bytes in region map \"%s\"",
                                  (unsigned long long)size, plan->rm->label);
    }
    return CAPMEM_OK;
}

static capmem_err_t decode_attach(capmem_arena_t *arena, capmem_cap_t rm, capmem_cap_t ds,
                                  const capmem_rm_attach_attr_t *attr, attach_plan_t *plan)
{
    const uint64_t page = arena->mem.page_size;
    const bool anywhere = attr->at == CAPMEM_RM_ANYWHERE;
    capmem_err_t err = capmem__rm_lookup(arena, rm, CAPMEM_RIGHT_WRITE, &plan->rm);
    if (err != CAPMEM_OK) {
        return err;
    }
    capmem__slot_t *ds_slot = NULL;
    err = capmem__ds_lookup(arena, ds, CAPMEM_RIGHT_READ, &ds_slot, &plan->ds);
    if (err != CAPMEM_OK) {
        return err;
    }
    const capmem__rm_t *m = plan->rm;
    const capmem__ds_t *d = plan->ds;
    if (!capmem__is_aligned(attr->offset, page) || !capmem__is_aligned(attr->size, page) ||
        (!anywhere && !capmem__is_aligned(attr->at, page))) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, NULL,
                            "offset 0x%llx, size 0x%llx or address 0x%llx is not aligned to the "
                            "page size 0x%llx",
                            (unsigned long long)attr->offset, (unsigned long long)attr->size,
                            (unsigned long long)attr->at, (unsigned long long)page);
    }
    /* Size 0: the dataspace from the offset to its end. */
    uint64_t size = attr->size;
    if (size == 0 && attr->offset < d->size) {
        size = d->size - attr->offset;
    }
    uint64_t end = 0;
    if (size == 0 || !capmem__add_ok(attr->offset, size, &end) || end > d->size) {
        err = capmem__fail_range(NULL, 2, attr->offset, 0, d->size,
                                 "offset + size beyond the dataspace");
        capmem__detail()->size = size;
        return err;
    }
    if (attr->writable && !capmem__ds_writable(ds_slot, d)) {
        return capmem__fail(CAPMEM_E_DENIED, NULL,
                            "a writable attachment of a read-only dataspace or capability");
    }
    if (!anywhere && (!capmem__add_ok(attr->at, size, &end) || end > m->size)) {
        err = capmem__fail_range(NULL, 3, attr->at, 0, m->size, "region beyond the region map");
        capmem__detail()->size = size;
        return err;
    }
    if (anywhere && size > m->size) {
        return capmem__fail_range(NULL, 3, size, 0, m->size, "region larger than the region map");
    }
    if (capmem__ds_kind(d) == CAPMEM__DS_MANAGED &&
        would_cycle(arena, plan->rm, capmem__ds_map(d))) {
        return capmem__fail(CAPMEM_E_CYCLE, NULL, "region map \"%s\" would end up inside itself",
                            ((const capmem__rm_t *)capmem__ds_map(d))->label);
    }
    plan->offset = attr->offset;
    plan->pages = size >> arena->mem.page_shift;
    plan->flags = (attr->writable ? RG_WRITABLE : 0u) | (attr->executable ? RG_EXEC : 0u);
    if (anywhere) {
        err = plan->rm->place != NULL ? decode_placed(arena, plan) : decode_anywhere(arena, plan);
    } else {
        err = decode_fixed(arena, attr->at, plan);
    }
    if (err != CAPMEM_OK) {
        return err;
    }
    plan->address = plan->at_pg << arena->mem.page_shift;
    /* Last: an expanding map's upgrade is a completed step of its own. */
    err = capmem__rm_make_room(arena, plan->rm);
    if (err != CAPMEM_OK && plan->placed) {
        /* The policy's block was a reservation of this call: give it back. */
        (void)capmem_alloc_free(plan->rm->place, plan->address,
                                plan->pages << arena->mem.page_shift);
    }
    return err;
}

static uint64_t invoke_attach(capmem_arena_t *arena, const attach_plan_t *plan)
{
    capmem__rm_t *m = plan->rm;
    rm_region_t *r = NULL;
    capmem_err_t err = capmem__meta_alloc(arena, &m->meta, (void **)&r);
    CAPMEM_ASSERT(err == CAPMEM_OK, "room was made in decode");
    (void)err;
    r->off = plan->offset;
    r->ds_slot = plan->ds->slot;
    r->rm_slot = m->slot;
    r->base = (uint32_t)plan->at_pg;
    r->pages = (uint32_t)plan->pages;
    r->right = plan->flags;
    capmem__rm_tree_insert(m, r);
    capmem__rm_ds_link(plan->ds, r);
    m->regions++;
    capmem__stat_add(&arena->stats.regions, 1);
    if (capmem__event_wanted(arena, CAPMEM_EVENT_ATTACH)) {
        const uint64_t size = plan->pages << arena->mem.page_shift;
        capmem__emit(arena,
                     &(capmem__ev_t){.kind = CAPMEM_EVENT_ATTACH,
                                     .cap = capmem__rm_handle(arena, m),
                                     .other = capmem__slot_handle(&arena->cspace, r->ds_slot),
                                     .a = plan->address,
                                     .b = ((plan->flags & RG_WRITABLE) ? 1u : 0u) |
                                          ((plan->flags & RG_EXEC) ? 2u : 0u),
                                     .offset = plan->offset,
                                     .size = size},
                     "attach %llu bytes at 0x%llx in region map \"%s\"", (unsigned long long)size,
                     (unsigned long long)plan->address, m->label);
    }
    return plan->address;
}

capmem_err_t capmem_rm_attach(capmem_arena_t *arena, capmem_cap_t rm, capmem_cap_t ds,
                              const capmem_rm_attach_attr_t *attr, uint64_t *out)
{
    if (arena == NULL || attr == NULL || out == NULL) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, __func__, "arena, attr or out is NULL");
    }
    CAPMEM__ENTER_OR_RETURN(arena);
    attach_plan_t plan = {0};
    capmem_err_t err = decode_attach(arena, rm, ds, attr, &plan);
    if (err == CAPMEM_OK) {
        *out = invoke_attach(arena, &plan);
    }
    CAPMEM__LEAVE(arena);
    return err;
}

/* ---- detach -------------------------------------------------------------------------- */

typedef struct detach_plan {
    capmem__rm_t *rm;
    rm_region_t *region;
    capmem__ds_t *ds; /* the region's */
} detach_plan_t;

static capmem_err_t decode_detach(capmem_arena_t *arena, capmem_cap_t rm, uint64_t address,
                                  detach_plan_t *plan)
{
    capmem_err_t err = capmem__rm_lookup(arena, rm, CAPMEM_RIGHT_WRITE, &plan->rm);
    if (err != CAPMEM_OK) {
        return err;
    }
    plan->region = capmem__rm_region_at(arena, plan->rm, address);
    if (plan->region == NULL) {
        err = capmem__fail(CAPMEM_E_NOT_FOUND, NULL, "no region at 0x%llx in region map \"%s\"",
                           (unsigned long long)address, plan->rm->label);
        capmem__detail()->address = address;
        return err;
    }
    plan->ds = rg_ds(arena, plan->region);
    return CAPMEM_OK;
}

static void invoke_detach(capmem_arena_t *arena, const detach_plan_t *plan)
{
    region_remove(arena, plan->rm, plan->region, plan->ds,
                  capmem__slot_handle(&arena->cspace, plan->region->ds_slot));
}

capmem_err_t capmem_rm_detach(capmem_arena_t *arena, capmem_cap_t rm, uint64_t address)
{
    if (arena == NULL) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, __func__, "arena is NULL");
    }
    CAPMEM__ENTER_OR_RETURN(arena);
    detach_plan_t plan = {0};
    capmem_err_t err = decode_detach(arena, rm, address, &plan);
    if (err == CAPMEM_OK) {
        invoke_detach(arena, &plan);
    }
    CAPMEM__LEAVE(arena);
    return err;
}
