/* SPDX-License-Identifier: MIT */
/*
 * Layer 7: region maps (RM sessions), the session side: the layer's
 * per-arena state and registrations, open, close, upgrade, the fault
 * handler, the queries, and the map's managed dataspace. Attach and detach
 * are rm_attach.c, the access path rm_access.c, the region tree rm_tree.c,
 * the checker rm_check.c; docs/region_map.md explains the layer.
 *
 * A region map is a session record carved, like a RAM account, from the
 * first slots of its own donated metadata chunk; each region is one more
 * 64-byte record of that donation. Every mutating call decodes first
 * (arguments, capabilities, quota, capability quota, metadata room,
 * physical memory) into a plan, then invokes it in a step that cannot fail.
 * The one visible exception is an expanding map's upgrade, taken last in
 * decode: an action of its own with its own event, as Genode's
 * Expanding_parent_client does.
 */
#include <stdio.h>
#include <string.h>

#include "rm_internal.h"

/* ---- the layer and its registrations ----------------------------------------------- */

static void rm_fini(capmem_arena_t *arena, void *state)
{
    (void)arena;
    const capmem__rm_arena_t *st = state;
    CAPMEM_ASSERT(st->maps == NULL, "every map closed with its client");
    (void)st;
}

static const capmem__layer_t rm_layer = {
    .name = "region maps",
    .fini = rm_fini,
    .check = capmem__rm_check,
};

static void rm_destroy(capmem_arena_t *arena, void *obj, capmem_cap_t handle);

static int rm_describe(capmem_arena_t *arena, const void *obj, char *buf, size_t len)
{
    (void)arena;
    const capmem__rm_t *rm = obj;
    return snprintf(buf, len, "region map \"%s\" of %llu bytes, %llu regions, donation %llu",
                    rm->label, (unsigned long long)rm->size, (unsigned long long)rm->regions,
                    (unsigned long long)rm->meta.donation);
}

static const capmem__type_ops_t rm_type = {
    .type = CAPMEM_OBJ_REGION_MAP,
    .name = "region map",
    .destroy = rm_destroy,
    .describe = rm_describe,
};

/* A managed dataspace's record is going away: drop the map's pointer to it. */
static void managed_destroy(capmem_arena_t *arena, capmem__ds_t *ds)
{
    (void)arena;
    capmem__rm_t *rm = capmem__ds_map(ds);
    CAPMEM_ASSERT(rm->managed == ds, "a map has one managed dataspace");
    rm->managed = NULL;
}

static int managed_describe(capmem_arena_t *arena, const capmem__ds_t *ds, char *buf, size_t len)
{
    (void)arena;
    const capmem__rm_t *rm = capmem__ds_map(ds);
    return snprintf(buf, len, "managed dataspace of region map \"%s\" (%llu bytes)", rm->label,
                    (unsigned long long)ds->size);
}

static const capmem__ds_kind_ops_t managed_kind = {
    .access = capmem__rm_managed_access,
    .destroy = managed_destroy,
    .describe = managed_describe,
};

/*
 * Set the layer up on this arena (idempotent): its state, the REGION_MAP
 * type, and what the dataspace layer reaches through its registry, the
 * MANAGED kind and the detach hook. NULL when host memory runs out.
 */
static capmem__rm_arena_t *rm_setup(capmem_arena_t *arena)
{
    void *st = NULL;
    if (capmem__layer_setup(arena, &rm_layer, sizeof(capmem__rm_arena_t), &st) != CAPMEM_OK ||
        capmem__ds_setup(arena) != CAPMEM_OK) {
        return NULL;
    }
    capmem__type_register(arena, &rm_type);
    capmem__ds_kind_register(arena, CAPMEM__DS_MANAGED, &managed_kind);
    capmem__ds_set_detach(arena, capmem__rm_detach_all);
    return st;
}

uint32_t capmem__rm_visit_stamp(capmem_arena_t *arena)
{
    capmem__rm_arena_t *st = capmem__layer_state(arena, &rm_layer);
    if (++st->stamp == 0) {
        for (capmem__rm_t *m = st->maps; m != NULL; m = m->next) {
            m->stamp = 0;
        }
        st->stamp = 1;
    }
    return st->stamp;
}

/* ---- real mode's hooks ---------------------------------------------------------------- */

void capmem__rm_real_register(capmem_arena_t *arena, const capmem__rm_real_hooks_t *hooks)
{
    capmem__rm_arena_t *st = capmem__layer_state(arena, &rm_layer);
    CAPMEM_ASSERT(st != NULL, "real mode maps a map, so the layer is set up");
    st->real = hooks;
}

void capmem__rm_real_drop(capmem_arena_t *arena, capmem__rm_t *rm, uint64_t first, uint64_t pages)
{
    const capmem__rm_arena_t *st = capmem__layer_state(arena, &rm_layer);
    if (st->real != NULL) {
        st->real->drop(arena, rm, first, pages);
    }
}

void capmem__rm_abandon_handlers(capmem_arena_t *arena)
{
    const capmem__rm_arena_t *st = capmem__layer_state(arena, &rm_layer);
    for (capmem__rm_t *m = st != NULL ? st->maps : NULL; m != NULL; m = m->next) {
        if (m->in_handler != 0) {
            m->in_handler = 0;
            m->state = (uint8_t)((m->state & ~ST_PENDING) | ST_UNRESOLVED);
        }
    }
}

/* A closing map leaves real mode first (its view goes), while its regions are intact. */
static void real_close(capmem_arena_t *arena, capmem__rm_t *rm)
{
    const capmem__rm_arena_t *st = capmem__layer_state(arena, &rm_layer);
    if (st->real != NULL) {
        st->real->close(arena, rm);
    }
}

/* The address the map is mapped at in real mode, or NULL. */
static void *real_base(capmem_arena_t *arena, const capmem__rm_t *rm)
{
    const capmem__rm_arena_t *st = capmem__layer_state(arena, &rm_layer);
    return st->real != NULL ? st->real->base(arena, rm) : NULL;
}

/*
 * The map's capability died (close, or a revoke of its client): its
 * managed dataspace, a child capability, is gone already, and the records
 * of its regions go with its chunks once they have left their dataspaces'
 * lists. The donation, upgrades included, returns to the client.
 */
static void rm_destroy(capmem_arena_t *arena, void *obj, capmem_cap_t handle)
{
    capmem__rm_t *rm = obj;
    CAPMEM_ASSERT(rm->managed == NULL, "the managed dataspace is a child capability: gone first");
    real_close(arena, rm);
    capmem__rm_ds_unlink_all(arena, rm);
    /* Its regions' records go with its chunks: they stop being regions here. */
    capmem__stat_sub(&arena->stats.regions, rm->regions);
    capmem__rm_arena_t *st = capmem__layer_state(arena, &rm_layer);
    if (rm->prev != NULL) {
        rm->prev->next = rm->next;
    } else {
        st->maps = rm->next;
    }
    if (rm->next != NULL) {
        rm->next->prev = rm->prev;
    }
    capmem__account_t *client = rm->client;
    uint64_t returned = rm->meta.donation;
    client->ram.limit += returned;
    client->donated -= returned;
    client->sessions--;
    if (capmem__event_wanted(arena, CAPMEM_EVENT_SESSION_CLOSE)) {
        capmem__emit(arena,
                     &(capmem__ev_t){.kind = CAPMEM_EVENT_SESSION_CLOSE,
                                     .cap = handle,
                                     .other = capmem__slot_handle(&arena->cspace, client->slot),
                                     .a = returned},
                     "region map \"%s\" closed: %llu bytes return to \"%s\"", rm->label,
                     (unsigned long long)returned, client->label);
    }
    capmem_alloc_destroy(rm->place);
    /* The record lives in its own first chunk: copy the slab header before releasing it. */
    capmem__meta_t m = rm->meta;
    capmem__meta_release(arena, client->phys, &m);
}

/* ---- open ------------------------------------------------------------------------- */

static capmem_err_t check_bytes(const capmem_arena_t *arena, uint64_t bytes, uint64_t min,
                                const char *what)
{
    if (bytes < min || !capmem__is_aligned(bytes, arena->mem.page_size)) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, NULL,
                            "%s of %llu bytes is not a multiple of the page size (%llu) or "
                            "below %llu bytes",
                            what, (unsigned long long)bytes,
                            (unsigned long long)arena->mem.page_size, (unsigned long long)min);
    }
    return CAPMEM_OK;
}

typedef struct open_plan {
    capmem_arena_t *arena;
    const capmem_rm_open_attr_t *attr;
    capmem__account_t *client; /* pays the donation and the capability */
    capmem__rm_arena_t *st;    /* the layer, set up */
    capmem_alloc_t *place;     /* the placement policy's instance, or NULL */
    uint64_t off;              /* the donation's physical range, reserved last */
} open_plan_t;

static capmem_err_t decode_open(capmem_arena_t *arena, capmem_cap_t client,
                                const capmem_rm_open_attr_t *attr, open_plan_t *plan)
{
    plan->arena = arena;
    plan->attr = attr;
    const uint64_t page = arena->mem.page_size;
    if (attr->size == 0 || !capmem__is_aligned(attr->size, page) ||
        attr->size / page > CAPMEM_RM_MAX_PAGES) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, NULL,
                            "map size %llu is 0, not a multiple of the page size (%llu) or above "
                            "%llu pages",
                            (unsigned long long)attr->size, (unsigned long long)page,
                            CAPMEM_RM_MAX_PAGES);
    }
    /* The donation must hold the chunk header, the map's record and one region. */
    capmem_err_t err = check_bytes(arena, attr->donation,
                                   CAPMEM__REC * (2u + CAPMEM_RM_SESSION_SLOTS), "donation");
    if (err != CAPMEM_OK) {
        return err;
    }
    err = check_bytes(arena, attr->upgrade_step, 2 * CAPMEM__REC, "upgrade step");
    if (err != CAPMEM_OK) {
        return err;
    }
    err = capmem__account_lookup(arena, client, CAPMEM_RIGHT_WRITE, &plan->client);
    if (err != CAPMEM_OK) {
        return err;
    }
    capmem__account_t *acc = plan->client;
    if (!capmem__quota_can(&acc->ram, attr->donation)) {
        return capmem__fail_space(CAPMEM_E_OUT_OF_RAM, NULL, attr->donation,
                                  capmem__quota_avail(&acc->ram),
                                  "a region map's donation of %llu bytes exceeds the %llu bytes "
                                  "\"%s\" has available",
                                  (unsigned long long)attr->donation,
                                  (unsigned long long)capmem__quota_avail(&acc->ram), acc->label);
    }
    err = capmem__cap_reserve_check(arena, &acc->caps, 1);
    if (err != CAPMEM_OK) {
        return err;
    }
    err = capmem__ram_phys_check(acc->phys, attr->donation, "the donation");
    if (err != CAPMEM_OK) {
        return err;
    }
    plan->st = rm_setup(arena);
    if (plan->st == NULL) {
        return capmem__fail(CAPMEM_E_HOST_NOMEM, NULL, "no host memory for the region-map state");
    }
    if (attr->policy.kind != CAPMEM_ALLOC_DEFAULT) {
        err = capmem_alloc_create_policy(&attr->policy, 0, attr->size, page, &plan->place);
        if (err != CAPMEM_OK) {
            capmem__detail()->function = capmem__tls_function;
            return err;
        }
    }
    err = capmem__meta_reserve(acc->phys, attr->donation, page, "the donation", &plan->off);
    if (err != CAPMEM_OK) {
        capmem_alloc_destroy(plan->place);
    }
    return err;
}

static capmem_cap_t invoke_open(const open_plan_t *plan)
{
    capmem_arena_t *arena = plan->arena;
    const capmem_rm_open_attr_t *attr = plan->attr;
    capmem__account_t *acc = plan->client;
    capmem__rm_arena_t *st = plan->st;
    capmem__meta_t m = {.kind = CAPMEM__META_RM};
    capmem__meta_add_chunk_at(arena, &m, plan->off, attr->donation);
    capmem__rm_t *rm = capmem__meta_session_record(arena, &m, CAPMEM_RM_SESSION_SLOTS);
    rm->meta = m;
    rm->place = plan->place;
    rm->client = acc;
    rm->size = attr->size;
    rm->pages = (uint32_t)(attr->size / arena->mem.page_size);
    rm->upgrade_step = attr->upgrade_step;
    rm->flags = attr->flags;
    /* The label is cut to what the record holds: the first 23 characters. */
    snprintf(rm->label, sizeof(rm->label), "%s", attr->label != NULL ? attr->label : "region map");
    acc->ram.limit -= attr->donation;
    acc->donated += attr->donation;
    acc->sessions++;
    rm->next = st->maps;
    if (st->maps != NULL) {
        st->maps->prev = rm;
    }
    st->maps = rm;
    const capmem_cap_t h = capmem__cap_create(arena, CAPMEM_OBJ_REGION_MAP, rm, CAPMEM_RIGHTS_ALL,
                                              CAPMEM__SLOT_ORIGINAL, acc->slot, &acc->caps);
    rm->slot = capmem__cap_index(h);
    if (capmem__event_wanted(arena, CAPMEM_EVENT_DONATE)) {
        capmem__emit(arena,
                     &(capmem__ev_t){.kind = CAPMEM_EVENT_DONATE,
                                     .cap = h,
                                     .other = capmem__slot_handle(&arena->cspace, acc->slot),
                                     .a = attr->donation,
                                     .b = attr->size},
                     "region map \"%s\" opened by \"%s\": donation %llu, size %llu", rm->label,
                     acc->label, (unsigned long long)attr->donation,
                     (unsigned long long)attr->size);
    }
    return h;
}

capmem_err_t capmem_rm_open(capmem_arena_t *arena, capmem_cap_t client,
                            const capmem_rm_open_attr_t *attr, capmem_cap_t *out)
{
    if (arena == NULL || attr == NULL || out == NULL) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, __func__, "arena, attr or out is NULL");
    }
    if ((attr->flags & ~(uint32_t)CAPMEM_RM_EXPANDING) != 0) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, __func__, "unknown flags 0x%x", attr->flags);
    }
    CAPMEM__ENTER_OR_RETURN(arena);
    open_plan_t plan = {0};
    capmem_err_t err = decode_open(arena, client, attr, &plan);
    if (err == CAPMEM_OK) {
        *out = invoke_open(&plan);
    }
    CAPMEM__LEAVE(arena);
    return err;
}

/* ---- close ------------------------------------------------------------------------ */

typedef struct close_plan {
    capmem_arena_t *arena;
    uint32_t slot; /* the map's original capability */
} close_plan_t;

static capmem_err_t decode_close(capmem_arena_t *arena, capmem_cap_t rm, close_plan_t *plan)
{
    capmem__slot_t *s = NULL;
    capmem_err_t err = capmem__cap_lookup(arena, rm, CAPMEM_OBJ_REGION_MAP, CAPMEM_RIGHT_WRITE, &s);
    if (err != CAPMEM_OK) {
        return err;
    }
    err = capmem__cap_require_original(s, "close", "region map");
    if (err != CAPMEM_OK) {
        return err;
    }
    plan->arena = arena;
    plan->slot = capmem__cap_index(rm);
    return CAPMEM_OK;
}

/* The managed dataspace (a child) goes first, detached everywhere; then the map (rm_destroy). */
static void invoke_close(const close_plan_t *plan)
{
    capmem__cap_revoke_index(plan->arena, plan->slot);
    capmem__cap_delete_leaf(plan->arena, plan->slot);
}

capmem_err_t capmem_rm_close(capmem_arena_t *arena, capmem_cap_t rm)
{
    if (arena == NULL) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, __func__, "arena is NULL");
    }
    CAPMEM__ENTER_OR_RETURN(arena);
    close_plan_t plan = {0};
    capmem_err_t err = decode_close(arena, rm, &plan);
    if (err == CAPMEM_OK) {
        invoke_close(&plan);
    }
    CAPMEM__LEAVE(arena);
    return err;
}

/* ---- upgrade ---------------------------------------------------------------------- */

typedef struct upgrade_plan {
    capmem_arena_t *arena;
    capmem__rm_t *rm;
    capmem__account_t *payer; /* the map's client */
    capmem_cap_t session;     /* the handle the caller named, for the event */
    uint64_t bytes;
} upgrade_plan_t;

static capmem_err_t decode_upgrade(capmem_arena_t *arena, capmem_cap_t rm, capmem_cap_t payer,
                                   uint64_t bytes, upgrade_plan_t *plan)
{
    plan->arena = arena;
    plan->session = rm;
    plan->bytes = bytes;
    capmem_err_t err = check_bytes(arena, bytes, 2 * CAPMEM__REC, "upgrade");
    if (err != CAPMEM_OK) {
        return err;
    }
    err = capmem__account_lookup(arena, payer, CAPMEM_RIGHT_WRITE, &plan->payer);
    if (err != CAPMEM_OK) {
        return err;
    }
    err = capmem__rm_lookup(arena, rm, 0, &plan->rm);
    if (err != CAPMEM_OK) {
        return err;
    }
    if (plan->payer != plan->rm->client) {
        return capmem__fail(CAPMEM_E_DENIED, NULL,
                            "region map \"%s\" can only be upgraded by its client account \"%s\"",
                            plan->rm->label, plan->rm->client->label);
    }
    /* What capmem__account_upgrade would refuse, refused here with the same words. */
    err = capmem__account_can_pay(plan->payer, bytes, "the upgrade");
    if (err != CAPMEM_OK) {
        return err;
    }
    return capmem__ram_phys_check(plan->payer->phys, bytes, "metadata");
}

static void invoke_upgrade(const upgrade_plan_t *plan)
{
    capmem_err_t err = capmem__account_upgrade(plan->arena, &plan->rm->meta, plan->payer,
                                               plan->session, plan->rm->label, plan->bytes);
    CAPMEM_ASSERT(err == CAPMEM_OK, "quota and physical range were checked in decode");
    (void)err;
}

capmem_err_t capmem_rm_upgrade(capmem_arena_t *arena, capmem_cap_t rm, capmem_cap_t payer,
                               uint64_t bytes)
{
    if (arena == NULL) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, __func__, "arena is NULL");
    }
    CAPMEM__ENTER_OR_RETURN(arena);
    upgrade_plan_t plan = {0};
    capmem_err_t err = decode_upgrade(arena, rm, payer, bytes, &plan);
    if (err == CAPMEM_OK) {
        invoke_upgrade(&plan);
    }
    CAPMEM__LEAVE(arena);
    return err;
}

/* ---- the fault handler -------------------------------------------------------------- */

typedef struct handler_plan {
    capmem__rm_t *rm;
    capmem_rm_fault_fn fn;
    void *ctx;
} handler_plan_t;

static capmem_err_t decode_set_fault_handler(capmem_arena_t *arena, capmem_cap_t rm,
                                             capmem_rm_fault_fn fn, void *ctx, handler_plan_t *plan)
{
    plan->fn = fn;
    plan->ctx = fn != NULL ? ctx : NULL;
    return capmem__rm_lookup(arena, rm, CAPMEM_RIGHT_WRITE, &plan->rm);
}

static void invoke_set_fault_handler(const handler_plan_t *plan)
{
    plan->rm->handler = plan->fn;
    plan->rm->handler_ctx = plan->ctx;
}

capmem_err_t capmem_rm_set_fault_handler(capmem_arena_t *arena, capmem_cap_t rm,
                                         capmem_rm_fault_fn fn, void *ctx)
{
    if (arena == NULL) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, __func__, "arena is NULL");
    }
    CAPMEM__ENTER_OR_RETURN(arena);
    handler_plan_t plan = {0};
    capmem_err_t err = decode_set_fault_handler(arena, rm, fn, ctx, &plan);
    if (err == CAPMEM_OK) {
        invoke_set_fault_handler(&plan);
        if (capmem__event_wanted(arena, CAPMEM_EVENT_SET_FAULT_HANDLER)) {
            capmem__emit(arena,
                         &(capmem__ev_t){.kind = CAPMEM_EVENT_SET_FAULT_HANDLER,
                                         .cap = rm,
                                         .a = fn != NULL ? 1u : 0u},
                         "map %s a fault handler", fn != NULL ? "has" : "no longer has");
        }
    }
    CAPMEM__LEAVE(arena);
    return err;
}

/* ---- queries ------------------------------------------------------------------------- */

void capmem__rm_fill_state(const capmem_arena_t *arena, const capmem__rm_t *m,
                           capmem_rm_state_t *state)
{
    memset(state, 0, sizeof(*state));
    state->faulted = (m->state & ST_FAULTED) != 0;
    state->pending = (m->state & ST_PENDING) != 0;
    state->unresolved = (m->state & ST_UNRESOLVED) != 0;
    state->access = (capmem_rm_access_t)m->fault_access;
    state->address = m->fault_addr;
    state->rm = capmem__rm_handle(arena, m);
    state->faults = m->faults;
}

capmem_err_t capmem_rm_state(capmem_arena_t *arena, capmem_cap_t rm, capmem_rm_state_t *state)
{
    if (arena == NULL || state == NULL) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, __func__, "arena or state is NULL");
    }
    CAPMEM__ENTER_OR_RETURN(arena);
    capmem__rm_t *m = NULL;
    capmem_err_t err = capmem__rm_lookup(arena, rm, 0, &m);
    if (err == CAPMEM_OK) {
        capmem__rm_fill_state(arena, m, state);
    }
    CAPMEM__LEAVE(arena);
    return err;
}

void capmem__rm_fill_info(capmem_arena_t *arena, const capmem__rm_t *m, capmem_rm_info_t *info)
{
    memset(info, 0, sizeof(*info));
    info->client = capmem__account_handle(arena, m->client);
    info->size = m->size;
    info->regions = m->regions;
    info->donation = m->meta.donation;
    info->records_used = m->meta.used;
    info->records_capacity = capmem__meta_capacity(&m->meta);
    info->upgrade_step = m->upgrade_step;
    /* Every chunk after the first is an upgrade, whoever asked for it. */
    for (const uint8_t *c = m->meta.chunks; c != NULL; c = ((const capmem__chunk_t *)c)->next) {
        info->upgrades++;
    }
    info->upgrades--;
    info->faults = m->faults;
    info->expanding = (m->flags & CAPMEM_RM_EXPANDING) != 0;
    info->has_handler = m->handler != NULL;
    /* Same size as the record's (rm_internal.h): the label as kept. */
    memcpy(info->label, m->label, sizeof(info->label));
    info->real_base = real_base(arena, m);
}

capmem_err_t capmem_rm_info(capmem_arena_t *arena, capmem_cap_t rm, capmem_rm_info_t *info)
{
    if (arena == NULL || info == NULL) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, __func__, "arena or info is NULL");
    }
    CAPMEM__ENTER_OR_RETURN(arena);
    capmem__rm_t *m = NULL;
    capmem_err_t err = capmem__rm_lookup(arena, rm, 0, &m);
    if (err == CAPMEM_OK) {
        capmem__rm_fill_info(arena, m, info);
    }
    CAPMEM__LEAVE(arena);
    return err;
}

static capmem_err_t lookup_region(capmem_arena_t *arena, capmem_cap_t rm, uint64_t address,
                                  capmem_rm_region_t *out)
{
    capmem__rm_t *m = NULL;
    capmem_err_t err = capmem__rm_lookup(arena, rm, 0, &m);
    if (err != CAPMEM_OK) {
        return err;
    }
    const rm_region_t *r = capmem__rm_region_at(arena, m, address);
    if (r == NULL) {
        err = capmem__fail(CAPMEM_E_NOT_FOUND, NULL, "no region at 0x%llx",
                           (unsigned long long)address);
        capmem__detail()->address = address;
        return err;
    }
    const unsigned shift = arena->mem.page_shift;
    memset(out, 0, sizeof(*out));
    out->address = (uint64_t)r->base << shift;
    out->size = (uint64_t)r->pages << shift;
    out->offset = r->off;
    out->writable = (rg_flags(r) & RG_WRITABLE) != 0;
    out->executable = (rg_flags(r) & RG_EXEC) != 0;
    out->managed = capmem__ds_kind(rg_ds(arena, r)) == CAPMEM__DS_MANAGED;
    return CAPMEM_OK;
}

capmem_err_t capmem_rm_lookup(capmem_arena_t *arena, capmem_cap_t rm, uint64_t address,
                              capmem_rm_region_t *out)
{
    if (arena == NULL || out == NULL) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, __func__, "arena or out is NULL");
    }
    CAPMEM__ENTER_OR_RETURN(arena);
    capmem_err_t err = lookup_region(arena, rm, address, out);
    CAPMEM__LEAVE(arena);
    return err;
}

/* ---- the managed dataspace ------------------------------------------------------------ */

typedef struct dataspace_plan {
    capmem_arena_t *arena;
    capmem__rm_t *rm; /* with a managed dataspace already, or room and a capability for one */
} dataspace_plan_t;

static capmem_err_t decode_dataspace(capmem_arena_t *arena, capmem_cap_t rm, dataspace_plan_t *plan)
{
    plan->arena = arena;
    capmem_err_t err =
        capmem__rm_lookup(arena, rm, CAPMEM_RIGHT_WRITE | CAPMEM_RIGHT_GRANT, &plan->rm);
    if (err != CAPMEM_OK) {
        return err;
    }
    if (plan->rm->managed != NULL) {
        return CAPMEM_OK; /* later calls cost nothing */
    }
    err = capmem__cap_reserve_check(arena, &plan->rm->client->caps, 1);
    if (err != CAPMEM_OK) {
        return err;
    }
    return capmem__rm_make_room(arena, plan->rm);
}

static capmem_cap_t invoke_dataspace(const dataspace_plan_t *plan)
{
    capmem_arena_t *arena = plan->arena;
    capmem__rm_t *m = plan->rm;
    if (m->managed != NULL) {
        return capmem__slot_handle(&arena->cspace, m->managed->slot);
    }
    capmem__ds_t *rec = NULL;
    capmem_err_t err = capmem__meta_alloc(arena, &m->meta, (void **)&rec);
    CAPMEM_ASSERT(err == CAPMEM_OK, "room was made in decode");
    (void)err;
    const capmem_cap_t h =
        capmem__ds_make_managed(arena, &m->meta, rec, m, m->size, m->slot, &m->client->caps);
    m->managed = rec;
    if (capmem__event_wanted(arena, CAPMEM_EVENT_MANAGED_NEW)) {
        capmem__emit(arena,
                     &(capmem__ev_t){.kind = CAPMEM_EVENT_MANAGED_NEW,
                                     .cap = h,
                                     .other = capmem__rm_handle(arena, m),
                                     .size = m->size,
                                     .payer = capmem__account_handle(arena, m->client)},
                     "map \"%s\" as a managed dataspace of %llu bytes", m->label,
                     (unsigned long long)m->size);
    }
    return h;
}

capmem_err_t capmem_rm_dataspace(capmem_arena_t *arena, capmem_cap_t rm, capmem_cap_t *ds)
{
    if (arena == NULL || ds == NULL) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, __func__, "arena or ds is NULL");
    }
    CAPMEM__ENTER_OR_RETURN(arena);
    dataspace_plan_t plan = {0};
    capmem_err_t err = decode_dataspace(arena, rm, &plan);
    if (err == CAPMEM_OK) {
        *ds = invoke_dataspace(&plan);
    }
    CAPMEM__LEAVE(arena);
    return err;
}
