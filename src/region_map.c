/* SPDX-License-Identifier: MIT */
/*
 * Layer 7: region maps (RM sessions), simulated access mode.
 *
 * A region map is a session record carved, like a RAM account, from the
 * first slots of its own donated metadata chunk; each region is one more
 * 64-byte record of that donation. The regions of a map form an AVL tree
 * ordered by address, augmented with the largest free gap in each subtree,
 * so the region under an address, a conflict, and the lowest free range of a
 * given size are all found in O(log n). Each region is also linked into its
 * dataspace's list of attachments, so a dataspace that goes away is detached
 * everywhere in O(its attachments).
 *
 * The access path is split in two so that a later real (mmap) mode can reuse
 * it: translate() is a pure function from (map, address, access) to either a
 * backing offset with the number of contiguous bytes behind it, or a fault
 * (which map, which address); rm_access() moves bytes and, on a fault, calls
 * deliver(), which records the state, emits the event and runs the handler.
 * After a handler has run nothing is trusted: the access looks its top-level
 * capability up again and retranslates, because the handler may have
 * attached, detached or closed anything.
 */
#include <stdio.h>
#include <string.h>

#include "cap_internal.h"
#include "capmem/region_map.h"
#include "ram_internal.h"
#include "rm_hooks.h"
#include "rm_internal.h"

/* Per-arena state: the list of maps (for the checker and conservation). */
typedef struct rm_state {
    capmem__rm_t *maps;
    uint32_t stamp;
} rm_state_t;

static capmem_err_t rm_check(capmem_arena_t *arena, void *state, char *why, size_t len);
static void rm_destroy(capmem_arena_t *arena, void *obj, capmem_cap_t handle);

static void rm_fini(capmem_arena_t *arena, void *state)
{
    (void)arena;
    const rm_state_t *st = state;
    CAPMEM_ASSERT(st->maps == NULL, "every map closed with its client");
    (void)st;
}

static const capmem__layer_t rm_layer = {
    .name = "region maps",
    .fini = rm_fini,
    .check = rm_check,
};

static const capmem__type_ops_t rm_type = {
    .type = CAPMEM_OBJ_REGION_MAP,
    .name = "region map",
    .destroy = rm_destroy,
};

static rm_state_t *rm_state(capmem_arena_t *arena)
{
    void *st = NULL;
    if (capmem__layer_setup(arena, &rm_layer, sizeof(rm_state_t), &st) != CAPMEM_OK) {
        return NULL;
    }
    capmem__type_register(arena, &rm_type);
    return st;
}

/* ---- small helpers ------------------------------------------------------- */

const char *capmem_rm_access_name(capmem_rm_access_t access)
{
    switch (access) {
    case CAPMEM_RM_READ:
        return "read";
    case CAPMEM_RM_WRITE:
        return "write";
    case CAPMEM_RM_EXEC:
        return "exec";
    }
    return "unknown";
}

static capmem_cap_t rm_handle(const capmem_arena_t *arena, const capmem__rm_t *rm)
{
    return capmem__slot_handle(&arena->cspace, rm->slot);
}

static capmem_err_t rm_lookup(capmem_arena_t *arena, capmem_cap_t cap, unsigned rights,
                              const char *func, capmem__slot_t **slot, capmem__rm_t **out)
{
    capmem__slot_t *s;
    capmem_err_t err = capmem__cap_lookup(arena, cap, CAPMEM_OBJ_REGION_MAP, rights, &s);
    if (err == CAPMEM_OK) {
        *out = s->obj;
        if (slot != NULL) {
            *slot = s;
        }
    }
    return err;
}

/* The map a handle names, without touching the error record; NULL if gone. */
static capmem__rm_t *rm_by_handle(capmem_arena_t *arena, capmem_cap_t h)
{
    const capmem__slot_t *s = capmem__cspace_get(&arena->cspace, h);
    return s != NULL && s->type == CAPMEM_OBJ_REGION_MAP ? s->obj : NULL;
}

/* ---- the region tree ----------------------------------------------------- */

static void rg_fix(rm_region_t *n)
{
    rm_region_t *l = rg_left(n);
    rm_region_t *r = rg_right(n);
    unsigned hl = rg_height(l);
    unsigned hr = rg_height(r);
    n->left = (uintptr_t)l | (uintptr_t)(1u + (hl > hr ? hl : hr));
    uint32_t g = n->gap;
    g = gap_of(l) > g ? gap_of(l) : g;
    g = gap_of(r) > g ? gap_of(r) : g;
    n->max_gap = g;
}

static rm_region_t *rg_rot_right(rm_region_t *y)
{
    rm_region_t *x = rg_left(y);
    rg_set_left(y, rg_right(x));
    rg_set_right(x, y);
    rg_fix(y);
    rg_fix(x);
    return x;
}

static rm_region_t *rg_rot_left(rm_region_t *x)
{
    rm_region_t *y = rg_right(x);
    rg_set_right(x, rg_left(y));
    rg_set_left(y, x);
    rg_fix(x);
    rg_fix(y);
    return y;
}

static rm_region_t *rg_balance(rm_region_t *n)
{
    rg_fix(n);
    int bf = (int)rg_height(rg_left(n)) - (int)rg_height(rg_right(n));
    if (bf > 1) {
        rm_region_t *l = rg_left(n);
        if (rg_height(rg_left(l)) < rg_height(rg_right(l))) {
            rg_set_left(n, rg_rot_left(l));
        }
        return rg_rot_right(n);
    }
    if (bf < -1) {
        rm_region_t *r = rg_right(n);
        if (rg_height(rg_right(r)) < rg_height(rg_left(r))) {
            rg_set_right(n, rg_rot_right(r));
        }
        return rg_rot_left(n);
    }
    return n;
}

static rm_region_t *rg_insert_at(rm_region_t *n, rm_region_t *x)
{
    if (n == NULL) {
        return x;
    }
    if (x->base < n->base) {
        rg_set_left(n, rg_insert_at(rg_left(n), x));
    } else {
        rg_set_right(n, rg_insert_at(rg_right(n), x));
    }
    return rg_balance(n);
}

static rm_region_t *rg_remove_min(rm_region_t *n, rm_region_t **min)
{
    if (rg_left(n) == NULL) {
        *min = n;
        return rg_right(n);
    }
    rg_set_left(n, rg_remove_min(rg_left(n), min));
    return rg_balance(n);
}

static rm_region_t *rg_remove_at(rm_region_t *n, const rm_region_t *x)
{
    if (x->base < n->base) {
        rg_set_left(n, rg_remove_at(rg_left(n), x));
    } else if (x->base > n->base) {
        rg_set_right(n, rg_remove_at(rg_right(n), x));
    } else {
        rm_region_t *l = rg_left(n);
        rm_region_t *r = rg_right(n);
        if (r == NULL) {
            return l;
        }
        rm_region_t *m = NULL;
        r = rg_remove_min(r, &m);
        rg_set_left(m, l);
        rg_set_right(m, r);
        return rg_balance(m);
    }
    return rg_balance(n);
}

/* The region overlapping pages [b, e), or NULL. Regions are disjoint, so ends are sorted too. */
static rm_region_t *rg_overlap(rm_region_t *n, uint64_t b, uint64_t e)
{
    while (n != NULL) {
        if (e <= n->base) {
            n = rg_left(n);
        } else if (b >= rg_end(n)) {
            n = rg_right(n);
        } else {
            return n;
        }
    }
    return NULL;
}

/*
 * Link @p x (base, pages set) into the tree. Its own gap comes from its
 * predecessor, and its successor's gap shrinks; both lie on the search path,
 * so the recursive insert refreshes every max_gap that changed.
 */
static void tree_insert(capmem__rm_t *rm, rm_region_t *x)
{
    rm_region_t *pred = NULL;
    rm_region_t *succ = NULL;
    for (rm_region_t *n = rm->root; n != NULL;) {
        if (x->base < n->base) {
            succ = n;
            n = rg_left(n);
        } else {
            pred = n;
            n = rg_right(n);
        }
    }
    x->gap = (uint32_t)(x->base - (pred != NULL ? rg_end(pred) : 0));
    if (succ != NULL) {
        succ->gap = (uint32_t)(succ->base - rg_end(x));
    }
    x->left = 1; /* a leaf of height 1 */
    x->right &= RG_LOW_MASK;
    x->max_gap = x->gap;
    rm->root = rg_insert_at(rm->root, x);
}

/*
 * Unlink @p x. Its successor inherits x's gap and pages as free space; the
 * successor is either on the path to x or the minimum of x's right subtree,
 * which the removal walks, so every affected max_gap is refreshed.
 */
static void tree_remove(capmem__rm_t *rm, rm_region_t *x)
{
    rm_region_t *succ = NULL;
    if (rg_right(x) != NULL) {
        succ = rg_right(x);
        while (rg_left(succ) != NULL) {
            succ = rg_left(succ);
        }
    } else {
        for (rm_region_t *n = rm->root; n != x;) {
            if (x->base < n->base) {
                succ = n;
                n = rg_left(n);
            } else {
                n = rg_right(n);
            }
        }
    }
    if (succ != NULL) {
        succ->gap += x->gap + x->pages;
    }
    rm->root = rg_remove_at(rm->root, x);
}

/* Lowest first page of a free run of @p need pages, in O(log n). */
static bool tree_find_free(const capmem__rm_t *rm, uint64_t need, uint64_t *at)
{
    rm_region_t *n = rm->root;
    if (n != NULL && n->max_gap >= need) {
        while (n != NULL) {
            rm_region_t *l = rg_left(n);
            if (l != NULL && l->max_gap >= need) {
                n = l;
            } else if (n->gap >= need) {
                *at = n->base - n->gap;
                return true;
            } else {
                n = rg_right(n);
            }
        }
        CAPMEM_ASSERT(0, "max_gap promised a gap in this subtree");
    }
    uint64_t tail = 0;
    for (n = rm->root; n != NULL; n = rg_right(n)) {
        tail = rg_end(n);
    }
    if (rm->pages - tail >= need) {
        *at = tail;
        return true;
    }
    return false;
}

/* ---- dataspace attachment lists ------------------------------------------------ */

static void ds_link(capmem__ds_t *ds, rm_region_t *r)
{
    rm_region_t *head = ds->regions;
    r->ds_prev = NULL;
    r->ds_next = head;
    if (head != NULL) {
        head->ds_prev = r;
    }
    ds->regions = r;
}

static void ds_unlink(capmem__ds_t *ds, rm_region_t *r)
{
    if (r->ds_prev != NULL) {
        r->ds_prev->ds_next = r->ds_next;
    } else {
        ds->regions = r->ds_next;
    }
    if (r->ds_next != NULL) {
        r->ds_next->ds_prev = r->ds_prev;
    }
    r->ds_next = r->ds_prev = NULL;
}

/* Detach one region of @p rm whose dataspace is @p ds: the phase that cannot fail. */
static void region_remove(capmem__rm_t *rm, rm_region_t *r, capmem__ds_t *ds)
{
    tree_remove(rm, r);
    ds_unlink(ds, r);
    rm->regions--;
    capmem__meta_free(&rm->meta, r);
}

/* ---- hooks for the lower layers ------------------------------------------------ */

void capmem__rm_detach_all(capmem_arena_t *arena, struct capmem__ds *ds)
{
    while (ds->regions != NULL) {
        rm_region_t *r = ds->regions;
        region_remove(rg_rm(arena, r), r, ds);
    }
}

void capmem__rm_managed_destroy(capmem_arena_t *arena, struct capmem__ds *ds)
{
    (void)arena;
    capmem__rm_t *rm = ds->owner;
    CAPMEM_ASSERT(rm->managed == ds, "a map has one managed dataspace");
    rm->managed = NULL;
}

uint64_t capmem__rm_donations(capmem_arena_t *arena, const struct capmem__ram_service *svc)
{
    rm_state_t *st = capmem__layer_state(arena, &rm_layer);
    uint64_t sum = 0;
    for (const capmem__rm_t *rm = st != NULL ? st->maps : NULL; rm != NULL; rm = rm->next) {
        if (rm->client->svc == svc) {
            sum += rm->meta.donation;
        }
    }
    return sum;
}

uint64_t capmem__rm_records_in(capmem_arena_t *arena, const struct capmem__meta *m)
{
    (void)arena;
    if (m->account != NULL) {
        return 0; /* a RAM account's slab holds no region records */
    }
    const capmem__rm_t *rm =
        (const capmem__rm_t *)(const void *)((const uint8_t *)m - offsetof(capmem__rm_t, meta));
    return rm->regions;
}

static void rm_destroy(capmem_arena_t *arena, void *obj, capmem_cap_t handle)
{
    capmem__rm_t *rm = obj;
    CAPMEM_ASSERT(rm->managed == NULL, "the managed dataspace is a child capability: gone first");
    /* Every region leaves its dataspace's list; the records go with the chunks. */
    rm_region_t *stack[128];
    unsigned top = 0;
    if (rm->root != NULL) {
        stack[top++] = rm->root;
    }
    while (top > 0) {
        rm_region_t *r = stack[--top];
        if (rg_left(r) != NULL) {
            stack[top++] = rg_left(r);
        }
        if (rg_right(r) != NULL) {
            stack[top++] = rg_right(r);
        }
        CAPMEM_ASSERT(top < 128, "an AVL tree of 2^32 nodes is at most 46 high");
        ds_unlink(rg_ds(arena, r), r);
    }
    rm_state_t *st = capmem__layer_state(arena, &rm_layer);
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
    client->quota += returned;
    client->sessions--;
    if (capmem__events_on(arena)) {
        capmem__emitf(arena, CAPMEM_EVENT_SESSION_CLOSE, handle, returned, 0,
                      "region map \"%s\" closed: %llu bytes return to \"%s\"", rm->label,
                      (unsigned long long)returned, client->label);
    }
    /* The record lives in its own first chunk: copy the slab header before releasing it. */
    capmem__meta_t m = rm->meta;
    capmem__meta_release(client->svc, &m);
}

/* ---- create and close ---------------------------------------------------------- */

static capmem_err_t check_bytes(const capmem_arena_t *arena, uint64_t bytes, uint64_t min,
                                const char *what, const char *func)
{
    if (bytes < min || !capmem__is_aligned(bytes, arena->mem.page_size)) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, func,
                            "%s of %llu bytes is not a multiple of the page size (%llu) or "
                            "below %llu bytes",
                            what, (unsigned long long)bytes,
                            (unsigned long long)arena->mem.page_size, (unsigned long long)min);
    }
    return CAPMEM_OK;
}

capmem_err_t capmem_rm_open(capmem_arena_t *arena, capmem_cap_t client,
                            const capmem_rm_open_attr_t *attr, capmem_cap_t *out)
{
    const char *fn = __func__;
    if (arena == NULL || attr == NULL || out == NULL) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, fn, "arena, attr or out is NULL");
    }
    if ((attr->flags & ~(uint32_t)CAPMEM_RM_EXPANDING) != 0) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, fn, "unknown flags 0x%x", attr->flags);
    }
    CAPMEM__ENTER_OR_RETURN(arena);
    capmem__account_t *acc = NULL;
    /* The donation must hold the chunk header, the map's record and one region. */
    uint64_t min_donation = CAPMEM__REC * (2u + CAPMEM_RM_SESSION_SLOTS);
    capmem_err_t err = CAPMEM_OK;
    if (attr->size == 0 || !capmem__is_aligned(attr->size, arena->mem.page_size) ||
        attr->size / arena->mem.page_size > CAPMEM_RM_MAX_PAGES) {
        err = capmem__fail(CAPMEM_E_INVALID_ARGS, fn,
                           "map size %llu is 0, not a multiple of the page size (%llu) or above "
                           "%llu pages",
                           (unsigned long long)attr->size, (unsigned long long)arena->mem.page_size,
                           CAPMEM_RM_MAX_PAGES);
    }
    if (err == CAPMEM_OK) {
        err = check_bytes(arena, attr->donation, min_donation, "donation", fn);
    }
    if (err == CAPMEM_OK) {
        err = check_bytes(arena, attr->upgrade_step, 2 * CAPMEM__REC, "upgrade step", fn);
    }
    if (err == CAPMEM_OK) {
        err = capmem__account_lookup(arena, client, CAPMEM_RIGHT_WRITE, fn, &acc);
    }
    if (err == CAPMEM_OK && acc->quota - acc->used < attr->donation) {
        err = capmem__fail_space(CAPMEM_E_OUT_OF_RAM, fn, attr->donation, acc->quota - acc->used,
                                 "a region map's donation of %llu bytes exceeds the %llu bytes "
                                 "\"%s\" has available",
                                 (unsigned long long)attr->donation,
                                 (unsigned long long)(acc->quota - acc->used), acc->label);
    }
    if (err == CAPMEM_OK) {
        err = capmem__cap_reserve_check(arena, &acc->caps, 1);
    }
    if (err == CAPMEM_OK) {
        uint64_t largest = capmem_alloc_largest(acc->svc->phys);
        if (largest < attr->donation) {
            err =
                capmem__fail_space(CAPMEM_E_OUT_OF_PHYS, fn, attr->donation, largest,
                                   "no contiguous physical range of %llu bytes for the "
                                   "donation (largest free range: %llu bytes)",
                                   (unsigned long long)attr->donation, (unsigned long long)largest);
        }
    }
    rm_state_t *st = NULL;
    if (err == CAPMEM_OK) {
        st = rm_state(arena);
        if (st == NULL) {
            err = capmem__fail(CAPMEM_E_HOST_NOMEM, fn, "no host memory for the region-map state");
        }
    }
    if (err == CAPMEM_OK) {
        /* Commit: nothing below fails. */
        capmem__meta_t m = {0};
        err = capmem__meta_add_chunk(arena, acc->svc, &m, attr->donation, fn);
        CAPMEM_ASSERT(err == CAPMEM_OK, "the physical range was checked above");
        capmem__rm_t *rm = capmem__meta_session_record(&m, CAPMEM_RM_SESSION_SLOTS);
        rm->meta = m;
        rm->meta.account = NULL;
        rm->client = acc;
        rm->size = attr->size;
        rm->pages = (uint32_t)(attr->size / arena->mem.page_size);
        rm->upgrade_step = attr->upgrade_step;
        rm->flags = attr->flags;
        snprintf(rm->label, sizeof(rm->label), "%s",
                 attr->label != NULL ? attr->label : "region map");
        acc->quota -= attr->donation;
        acc->sessions++;
        rm->next = st->maps;
        if (st->maps != NULL) {
            st->maps->prev = rm;
        }
        st->maps = rm;
        *out = capmem__cap_create(arena, CAPMEM_OBJ_REGION_MAP, rm, CAPMEM_RIGHTS_ALL,
                                  CAPMEM__SLOT_ORIGINAL, acc->slot, &acc->caps);
        rm->slot = capmem__cap_index(*out);
        if (capmem__events_on(arena)) {
            capmem__emitf(arena, CAPMEM_EVENT_DONATE, *out, attr->donation, attr->size,
                          "region map \"%s\" opened by \"%s\": donation %llu, size %llu", rm->label,
                          acc->label, (unsigned long long)attr->donation,
                          (unsigned long long)attr->size);
        }
    }
    CAPMEM__LEAVE(arena);
    return err;
}

capmem_err_t capmem_rm_close(capmem_arena_t *arena, capmem_cap_t rm)
{
    if (arena == NULL) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, __func__, "arena is NULL");
    }
    CAPMEM__ENTER_OR_RETURN(arena);
    capmem__rm_t *r = NULL;
    capmem__slot_t *s = NULL;
    capmem_err_t err = rm_lookup(arena, rm, CAPMEM_RIGHT_WRITE, __func__, &s, &r);
    if (err == CAPMEM_OK && !(s->flags & CAPMEM__SLOT_ORIGINAL)) {
        err = capmem__fail(CAPMEM_E_INVALID_ARGS, __func__,
                           "close needs the region map's original capability, not a copy");
    }
    if (err == CAPMEM_OK) {
        uint32_t idx = capmem__cap_index(rm);
        capmem__cap_revoke_index(arena, idx);
        capmem__cap_delete_leaf(arena, idx);
    }
    CAPMEM__LEAVE(arena);
    return err;
}

capmem_err_t capmem_rm_upgrade(capmem_arena_t *arena, capmem_cap_t rm, capmem_cap_t payer,
                               uint64_t bytes)
{
    if (arena == NULL) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, __func__, "arena is NULL");
    }
    CAPMEM__ENTER_OR_RETURN(arena);
    capmem__account_t *pay = NULL;
    capmem__rm_t *m = NULL;
    capmem_err_t err = check_bytes(arena, bytes, 2 * CAPMEM__REC, "upgrade", __func__);
    if (err == CAPMEM_OK) {
        err = capmem__account_lookup(arena, payer, CAPMEM_RIGHT_WRITE, __func__, &pay);
    }
    if (err == CAPMEM_OK) {
        err = rm_lookup(arena, rm, 0, __func__, NULL, &m);
    }
    if (err == CAPMEM_OK && pay != m->client) {
        err = capmem__fail(CAPMEM_E_DENIED, __func__,
                           "region map \"%s\" can only be upgraded by its client account \"%s\"",
                           m->label, m->client->label);
    }
    if (err == CAPMEM_OK) {
        err = capmem__meta_upgrade(arena, &m->meta, pay, rm, m->label, bytes, __func__);
    }
    CAPMEM__LEAVE(arena);
    return err;
}

/* ---- metadata room ---------------------------------------------------------------- */

/*
 * Make room for one record in the map's slab. An expanding map upgrades
 * from its client's quota in steps (an action of its own, with its event,
 * as the expanding RAM client does); otherwise OUT_OF_METADATA.
 */
static capmem_err_t rm_reserve(capmem_arena_t *arena, capmem__rm_t *rm, const char *func)
{
    if (capmem__meta_has_room(&rm->meta, 1)) {
        return CAPMEM_OK;
    }
    if (!(rm->flags & CAPMEM_RM_EXPANDING)) {
        return capmem__fail_space(CAPMEM_E_OUT_OF_METADATA, func, CAPMEM__REC, 0,
                                  "Could not allocate metadata (%u-byte region record; the "
                                  "donation of %llu bytes to region map \"%s\" is used up)",
                                  CAPMEM__REC, (unsigned long long)rm->meta.donation, rm->label);
    }
    while (!capmem__meta_has_room(&rm->meta, 1)) {
        capmem_err_t err = capmem__meta_upgrade(arena, &rm->meta, rm->client, rm_handle(arena, rm),
                                                rm->label, rm->upgrade_step, func);
        if (err != CAPMEM_OK) {
            return err;
        }
    }
    return CAPMEM_OK;
}

/* ---- attach and detach ------------------------------------------------------------ */

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
    rm_state_t *st = capmem__layer_state(arena, &rm_layer);
    if (++st->stamp == 0) {
        for (capmem__rm_t *m = st->maps; m != NULL; m = m->next) {
            m->stamp = 0;
        }
        st->stamp = 1;
    }
    return contains_up(arena, outer, inner, st->stamp);
}

capmem_err_t capmem_rm_attach(capmem_arena_t *arena, capmem_cap_t rm, capmem_cap_t ds,
                              const capmem_rm_attach_attr_t *attr, uint64_t *out)
{
    const char *fn = __func__;
    if (arena == NULL || attr == NULL || out == NULL) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, fn, "arena, attr or out is NULL");
    }
    CAPMEM__ENTER_OR_RETURN(arena);
    const uint64_t page = arena->mem.page_size;
    const unsigned shift = arena->mem.page_shift;
    capmem__rm_t *m = NULL;
    capmem__slot_t *ds_slot = NULL;
    capmem__ds_t *d = NULL;
    uint64_t size = attr->size;
    uint64_t end = 0;
    uint64_t at_pg = 0;
    capmem_err_t err = rm_lookup(arena, rm, CAPMEM_RIGHT_WRITE, fn, NULL, &m);
    if (err == CAPMEM_OK) {
        err = capmem__ds_lookup(arena, ds, CAPMEM_RIGHT_READ, fn, &ds_slot, &d);
    }
    if (err == CAPMEM_OK &&
        (!capmem__is_aligned(attr->offset, page) || !capmem__is_aligned(size, page) ||
         (attr->at != CAPMEM_RM_ANYWHERE && !capmem__is_aligned(attr->at, page)))) {
        err = capmem__fail(CAPMEM_E_INVALID_ARGS, fn,
                           "offset 0x%llx, size 0x%llx or address 0x%llx is not aligned to the "
                           "page size 0x%llx",
                           (unsigned long long)attr->offset, (unsigned long long)size,
                           (unsigned long long)attr->at, (unsigned long long)page);
    }
    if (err == CAPMEM_OK && size == 0 && attr->offset < d->size) {
        size = d->size - attr->offset;
    }
    if (err == CAPMEM_OK &&
        (size == 0 || !capmem__add_ok(attr->offset, size, &end) || end > d->size)) {
        err = capmem__fail_range(fn, 2, attr->offset, 0, d->size,
                                 "offset + size beyond the dataspace");
        capmem__detail()->size = size;
    }
    if (err == CAPMEM_OK && attr->writable &&
        !((ds_slot->rights & CAPMEM_RIGHT_WRITE) && (d->flags & CAPMEM__DS_WRITABLE))) {
        err = capmem__fail(CAPMEM_E_DENIED, fn,
                           "a writable attachment of a read-only dataspace or capability");
    }
    if (err == CAPMEM_OK && attr->at != CAPMEM_RM_ANYWHERE &&
        (!capmem__add_ok(attr->at, size, &end) || end > m->size)) {
        err = capmem__fail_range(fn, 3, attr->at, 0, m->size, "region beyond the region map");
        capmem__detail()->size = size;
    }
    if (err == CAPMEM_OK && attr->at == CAPMEM_RM_ANYWHERE && size > m->size) {
        err = capmem__fail_range(fn, 3, size, 0, m->size, "region larger than the region map");
    }
    if (err == CAPMEM_OK && capmem__ds_kind(d) == CAPMEM__DS_MANAGED &&
        would_cycle(arena, m, d->owner)) {
        err = capmem__fail(CAPMEM_E_CYCLE, fn, "region map \"%s\" would end up inside itself",
                           ((capmem__rm_t *)d->owner)->label);
    }
    uint64_t pages = size >> shift;
    if (err == CAPMEM_OK && attr->at != CAPMEM_RM_ANYWHERE) {
        at_pg = attr->at >> shift;
        rm_region_t *c = rg_overlap(m->root, at_pg, at_pg + pages);
        if (c != NULL) {
            err = capmem__fail(CAPMEM_E_REGION_CONFLICT, fn,
                               "0x%llx+0x%llx overlaps the region at 0x%llx+0x%llx",
                               (unsigned long long)attr->at, (unsigned long long)size,
                               (unsigned long long)((uint64_t)c->base << shift),
                               (unsigned long long)((uint64_t)c->pages << shift));
            capmem__detail()->address = (uint64_t)c->base << shift;
            capmem__detail()->size = (uint64_t)c->pages << shift;
        }
    } else if (err == CAPMEM_OK && !tree_find_free(m, pages, &at_pg)) {
        err = capmem__fail_space(CAPMEM_E_NOT_ENOUGH_MEMORY, fn, size, 0,
                                 "no free range of 0x%llx bytes in region map \"%s\"",
                                 (unsigned long long)size, m->label);
    }
    if (err == CAPMEM_OK) {
        err = rm_reserve(arena, m, fn);
    }
    if (err == CAPMEM_OK) {
        rm_region_t *r = NULL;
        err = capmem__meta_alloc(&m->meta, fn, (void **)&r);
        CAPMEM_ASSERT(err == CAPMEM_OK, "room was made above");
        r->off = attr->offset;
        r->ds_slot = d->slot;
        r->rm_slot = m->slot;
        r->base = (uint32_t)at_pg;
        r->pages = (uint32_t)pages;
        r->right = (attr->writable ? RG_WRITABLE : 0u) | (attr->executable ? RG_EXEC : 0u);
        tree_insert(m, r);
        ds_link(d, r);
        m->regions++;
        *out = at_pg << shift;
    }
    CAPMEM__LEAVE(arena);
    return err;
}

capmem_err_t capmem_rm_detach(capmem_arena_t *arena, capmem_cap_t rm, uint64_t address)
{
    if (arena == NULL) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, __func__, "arena is NULL");
    }
    CAPMEM__ENTER_OR_RETURN(arena);
    capmem__rm_t *m = NULL;
    capmem_err_t err = rm_lookup(arena, rm, CAPMEM_RIGHT_WRITE, __func__, NULL, &m);
    if (err == CAPMEM_OK) {
        uint64_t pg = address >> arena->mem.page_shift;
        rm_region_t *r = address < m->size ? rg_overlap(m->root, pg, pg + 1) : NULL;
        if (r == NULL) {
            err = capmem__fail(CAPMEM_E_NOT_FOUND, __func__,
                               "no region at 0x%llx in region map \"%s\"",
                               (unsigned long long)address, m->label);
            capmem__detail()->address = address;
        } else {
            region_remove(m, r, rg_ds(arena, r));
        }
    }
    CAPMEM__LEAVE(arena);
    return err;
}

/* ---- handler, state, info, lookup ------------------------------------------------ */

capmem_err_t capmem_rm_set_fault_handler(capmem_arena_t *arena, capmem_cap_t rm,
                                         capmem_rm_fault_fn fn, void *ctx)
{
    if (arena == NULL) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, __func__, "arena is NULL");
    }
    CAPMEM__ENTER_OR_RETURN(arena);
    capmem__rm_t *m = NULL;
    capmem_err_t err = rm_lookup(arena, rm, CAPMEM_RIGHT_WRITE, __func__, NULL, &m);
    if (err == CAPMEM_OK) {
        m->handler = fn;
        m->handler_ctx = fn != NULL ? ctx : NULL;
    }
    CAPMEM__LEAVE(arena);
    return err;
}

capmem_err_t capmem_rm_state(capmem_arena_t *arena, capmem_cap_t rm, capmem_rm_state_t *state)
{
    if (arena == NULL || state == NULL) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, __func__, "arena or state is NULL");
    }
    CAPMEM__ENTER_OR_RETURN(arena);
    capmem__rm_t *m = NULL;
    capmem_err_t err = rm_lookup(arena, rm, 0, __func__, NULL, &m);
    if (err == CAPMEM_OK) {
        memset(state, 0, sizeof(*state));
        state->faulted = (m->state & ST_FAULTED) != 0;
        state->pending = (m->state & ST_PENDING) != 0;
        state->unresolved = (m->state & ST_UNRESOLVED) != 0;
        state->access = (capmem_rm_access_t)m->fault_access;
        state->address = m->fault_addr;
        state->rm = rm_handle(arena, m);
        state->faults = m->faults;
    }
    CAPMEM__LEAVE(arena);
    return err;
}

capmem_err_t capmem_rm_info(capmem_arena_t *arena, capmem_cap_t rm, capmem_rm_info_t *info)
{
    if (arena == NULL || info == NULL) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, __func__, "arena or info is NULL");
    }
    CAPMEM__ENTER_OR_RETURN(arena);
    capmem__rm_t *m = NULL;
    capmem_err_t err = rm_lookup(arena, rm, 0, __func__, NULL, &m);
    if (err == CAPMEM_OK) {
        memset(info, 0, sizeof(*info));
        info->client = capmem__slot_handle(&arena->cspace, m->client->slot);
        info->size = m->size;
        info->regions = m->regions;
        info->donation = m->meta.donation;
        info->records_used = m->meta.used;
        info->records_capacity = m->meta.capacity;
        info->upgrade_step = m->upgrade_step;
        /* Every chunk after the first is an upgrade, whoever asked for it. */
        for (const uint8_t *c = m->meta.chunks; c != NULL; c = ((const capmem__chunk_t *)c)->next) {
            info->upgrades++;
        }
        info->upgrades--;
        info->faults = m->faults;
        info->expanding = (m->flags & CAPMEM_RM_EXPANDING) != 0;
        info->has_handler = m->handler != NULL;
        snprintf(info->label, sizeof(info->label), "%s", m->label);
    }
    CAPMEM__LEAVE(arena);
    return err;
}

capmem_err_t capmem_rm_lookup(capmem_arena_t *arena, capmem_cap_t rm, uint64_t address,
                              capmem_rm_region_t *out)
{
    if (arena == NULL || out == NULL) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, __func__, "arena or out is NULL");
    }
    CAPMEM__ENTER_OR_RETURN(arena);
    capmem__rm_t *m = NULL;
    capmem_err_t err = rm_lookup(arena, rm, 0, __func__, NULL, &m);
    if (err == CAPMEM_OK) {
        uint64_t pg = address >> arena->mem.page_shift;
        rm_region_t *r = address < m->size ? rg_overlap(m->root, pg, pg + 1) : NULL;
        if (r == NULL) {
            err = capmem__fail(CAPMEM_E_NOT_FOUND, __func__, "no region at 0x%llx",
                               (unsigned long long)address);
            capmem__detail()->address = address;
        } else {
            memset(out, 0, sizeof(*out));
            out->address = (uint64_t)r->base << arena->mem.page_shift;
            out->size = (uint64_t)r->pages << arena->mem.page_shift;
            out->offset = r->off;
            out->writable = (rg_flags(r) & RG_WRITABLE) != 0;
            out->executable = (rg_flags(r) & RG_EXEC) != 0;
            out->managed = capmem__ds_kind(rg_ds(arena, r)) == CAPMEM__DS_MANAGED;
        }
    }
    CAPMEM__LEAVE(arena);
    return err;
}

capmem_err_t capmem_rm_dataspace(capmem_arena_t *arena, capmem_cap_t rm, capmem_cap_t *ds)
{
    const char *fn = __func__;
    if (arena == NULL || ds == NULL) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, fn, "arena or ds is NULL");
    }
    CAPMEM__ENTER_OR_RETURN(arena);
    capmem__rm_t *m = NULL;
    capmem_err_t err = rm_lookup(arena, rm, CAPMEM_RIGHT_WRITE | CAPMEM_RIGHT_GRANT, fn, NULL, &m);
    if (err == CAPMEM_OK && m->managed != NULL) {
        *ds = capmem__slot_handle(&arena->cspace, m->managed->slot);
        CAPMEM__LEAVE(arena);
        return CAPMEM_OK;
    }
    if (err == CAPMEM_OK) {
        err = capmem__cap_reserve_check(arena, &m->client->caps, 1);
    }
    if (err == CAPMEM_OK) {
        err = rm_reserve(arena, m, fn);
    }
    if (err == CAPMEM_OK) {
        capmem__ds_t *rec = NULL;
        err = capmem__meta_alloc(&m->meta, fn, (void **)&rec);
        CAPMEM_ASSERT(err == CAPMEM_OK, "room was made above");
        rec->meta = &m->meta;
        rec->off = 0;
        rec->size = m->size;
        rec->owner = m;
        rec->flags = CAPMEM__DS_MANAGED | CAPMEM__DS_WRITABLE;
        *ds = capmem__cap_create(arena, CAPMEM_OBJ_DATASPACE, rec, CAPMEM_RIGHTS_ALL,
                                 CAPMEM__SLOT_ORIGINAL, m->slot, &m->client->caps);
        rec->slot = capmem__cap_index(*ds);
        m->managed = rec;
    }
    CAPMEM__LEAVE(arena);
    return err;
}

/* ---- the access path ------------------------------------------------------------------ */

/* Where an access lands: backing bytes, or a fault to deliver. */
typedef struct xlate {
    capmem__rm_t *fault_rm; /* NULL: no fault */
    uint64_t fault_addr;
    uint64_t boff;  /* backing offset of the first byte */
    uint64_t avail; /* contiguous bytes from there with the same translation */
} xlate_t;

/*
 * Translate local address @p addr of @p rm for @p access, through nested
 * maps. Pure: it changes nothing. Cycles are refused at attach, so the walk
 * ends after at most as many levels as maps exist.
 */
static inline void translate(const capmem_arena_t *arena, capmem__rm_t *rm, uint64_t addr,
                             capmem_rm_access_t access, xlate_t *x)
{
    const unsigned shift = arena->mem.page_shift;
    uint64_t avail = UINT64_MAX;
    for (;;) {
        uint64_t pg = addr >> shift;
        rm_region_t *r = rm->root;
        while (r != NULL) {
            if (pg < r->base) {
                r = rg_left(r);
            } else if (pg >= rg_end(r)) {
                r = rg_right(r);
            } else {
                break;
            }
        }
        if (r == NULL || (access == CAPMEM_RM_WRITE && !(rg_flags(r) & RG_WRITABLE)) ||
            (access == CAPMEM_RM_EXEC && !(rg_flags(r) & RG_EXEC))) {
            x->fault_rm = rm;
            x->fault_addr = addr;
            return;
        }
        uint64_t rstart = (uint64_t)r->base << shift;
        uint64_t left = (rg_end(r) << shift) - addr;
        avail = left < avail ? left : avail;
        const capmem__ds_t *d = rg_ds(arena, r);
        uint64_t dsoff = addr - rstart + r->off;
        if (capmem__ds_kind(d) == CAPMEM__DS_MANAGED) {
            rm = d->owner;
            addr = dsoff;
            continue;
        }
        x->fault_rm = NULL;
        x->boff = d->off + dsoff;
        x->avail = avail;
        return;
    }
}

/*
 * Deliver a fault of @p rm at @p addr: record it as the map's state, emit
 * the event, run the handler. Returns OK only when the handler reports the
 * fault resolved. The handler may change anything, even close @p rm: the
 * map is looked up again by handle afterwards.
 */
static capmem_err_t deliver(capmem_arena_t *arena, capmem__rm_t *rm, uint64_t addr,
                            capmem_rm_access_t access, const char *func)
{
    capmem_cap_t h = rm_handle(arena, rm);
    rm->state = ST_FAULTED | ST_PENDING;
    rm->fault_addr = addr;
    rm->fault_access = (uint8_t)access;
    rm->faults++;
    if (capmem__events_on(arena)) {
        capmem__emitf(arena, CAPMEM_EVENT_FAULT, h, addr, (uint64_t)access,
                      "%s fault at 0x%llx in region map \"%s\"", capmem_rm_access_name(access),
                      (unsigned long long)addr, rm->label);
    }
    capmem_rm_fault_result_t res = CAPMEM_RM_FAULT_UNRESOLVED;
    const char *why = "no fault handler";
    /* The handler's own failure, if it had one: the root cause of an unresolved fault. */
    capmem_error_info_t cause = {.code = CAPMEM_OK};
    if (rm->handler != NULL && rm->in_handler == 0) {
        capmem_rm_fault_fn fn = rm->handler;
        void *ctx = rm->handler_ctx;
        capmem_rm_fault_t f = {.rm = h, .address = addr, .access = access};
        rm->in_handler++;
        const uint64_t failures = capmem__failures();
        const unsigned saved = capmem__reentry_allow(arena);
        res = fn(arena, &f, ctx);
        capmem__reentry_restore(arena, saved);
        if (capmem__failures() != failures) {
            cause = *capmem_last_error();
        }
        rm = rm_by_handle(arena, h); /* the handler may have closed the map */
        if (rm != NULL) {
            rm->in_handler--;
        }
        why = "the handler did not resolve it";
    } else if (rm->in_handler != 0) {
        why = "it was raised while the map's own handler runs";
    }
    if (rm != NULL) {
        rm->state &= (uint8_t)~ST_PENDING;
        if (res != CAPMEM_RM_FAULT_RESOLVED) {
            rm->state |= ST_UNRESOLVED;
        }
    }
    if (res != CAPMEM_RM_FAULT_RESOLVED) {
        capmem_err_t err;
        if (cause.code != CAPMEM_OK) {
            err = capmem__fail(CAPMEM_E_UNRESOLVED_FAULT, func,
                               "%s fault at 0x%llx not resolved: the handler's %s failed: %s: %s",
                               capmem_rm_access_name(access), (unsigned long long)addr,
                               cause.function != NULL ? cause.function : "call",
                               capmem_err_name(cause.code), cause.message);
            capmem__detail()->needed = cause.needed;
            capmem__detail()->available = cause.available;
        } else {
            err = capmem__fail(CAPMEM_E_UNRESOLVED_FAULT, func, "unresolved %s fault at 0x%llx: %s",
                               capmem_rm_access_name(access), (unsigned long long)addr, why);
        }
        capmem__detail()->address = addr;
        return err;
    }
    return CAPMEM_OK;
}

/* The map at the top of an access: a map capability or a managed dataspace's. */
static capmem_err_t top_lookup(capmem_arena_t *arena, capmem_cap_t top, unsigned rights,
                               const char *func, capmem__rm_t **out)
{
    if (capmem_cap_type(top) == CAPMEM_OBJ_DATASPACE) {
        capmem__slot_t *s;
        capmem__ds_t *d;
        capmem_err_t err = capmem__ds_lookup(arena, top, rights, func, &s, &d);
        if (err == CAPMEM_OK) {
            CAPMEM_ASSERT(capmem__ds_kind(d) == CAPMEM__DS_MANAGED, "accesses start at a map");
            *out = d->owner;
        }
        return err;
    }
    return rm_lookup(arena, top, rights, func, NULL, out);
}

/*
 * Move @p len bytes at @p addr of the map named by @p top (rights already
 * checked), or only touch them when @p buf is NULL. The lock is held.
 */
static capmem_err_t rm_access(capmem_arena_t *arena, capmem_cap_t top, capmem__rm_t *rm,
                              uint64_t addr, uint8_t *buf, size_t len, capmem_rm_access_t access,
                              const char *func)
{
    size_t done = 0;
    unsigned retries = 0;
    while (done < len) {
        xlate_t x;
        translate(arena, rm, addr + done, access, &x);
        if (x.fault_rm != NULL) {
            capmem_err_t err = deliver(arena, x.fault_rm, x.fault_addr, access, func);
            if (err != CAPMEM_OK) {
                return err;
            }
            if (++retries >= CAPMEM_RM_FAULT_RETRIES) {
                err = capmem__fail(CAPMEM_E_FAULT_LOOP, func,
                                   "%s fault at 0x%llx reported resolved %u times without "
                                   "progress",
                                   capmem_rm_access_name(access), (unsigned long long)x.fault_addr,
                                   retries);
                capmem__detail()->address = x.fault_addr;
                return err;
            }
            /* The handler may have changed anything: start again from the top capability. */
            err = top_lookup(arena, top, 0, func, &rm);
            if (err != CAPMEM_OK) {
                return err;
            }
            continue;
        }
        size_t n = len - done;
        if (x.avail < n) {
            n = (size_t)x.avail;
        }
        if (buf != NULL) {
            if (access == CAPMEM_RM_WRITE) {
                memcpy(capmem__bytes(&arena->mem, x.boff), buf + done, n);
            } else {
                memcpy(buf + done, capmem__bytes(&arena->mem, x.boff), n);
            }
        }
        done += n;
        retries = 0;
    }
    return CAPMEM_OK;
}

static capmem_err_t rm_access_public(capmem_arena_t *arena, capmem_cap_t rm, uint64_t addr,
                                     uint8_t *buf, size_t len, capmem_rm_access_t access,
                                     const char *func)
{
    CAPMEM__ENTER_AS_OR_RETURN(arena, func);
    capmem__rm_t *m = NULL;
    uint64_t end;
    unsigned rights = access == CAPMEM_RM_WRITE ? CAPMEM_RIGHT_WRITE : CAPMEM_RIGHT_READ;
    capmem_err_t err = rm_lookup(arena, rm, rights, func, NULL, &m);
    if (err == CAPMEM_OK && (!capmem__add_ok(addr, len, &end) || end > m->size)) {
        err = capmem__fail_range(func, 3, addr, 0, m->size, "access beyond the region map");
        capmem__detail()->size = len;
    }
    if (err == CAPMEM_OK) {
        err = rm_access(arena, rm, m, addr, buf, len, access, func);
    }
    CAPMEM__LEAVE(arena);
    return err;
}

capmem_err_t capmem_rm_read(capmem_arena_t *arena, capmem_cap_t rm, uint64_t address, void *buf,
                            size_t len)
{
    if (arena == NULL || buf == NULL) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, __func__, "arena or buf is NULL");
    }
    return rm_access_public(arena, rm, address, buf, len, CAPMEM_RM_READ, __func__);
}

capmem_err_t capmem_rm_write(capmem_arena_t *arena, capmem_cap_t rm, uint64_t address,
                             const void *buf, size_t len)
{
    if (arena == NULL || buf == NULL) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, __func__, "arena or buf is NULL");
    }
    return rm_access_public(arena, rm, address, (uint8_t *)(uintptr_t)buf, len, CAPMEM_RM_WRITE,
                            __func__);
}

capmem_err_t capmem_rm_touch(capmem_arena_t *arena, capmem_cap_t rm, uint64_t address, size_t len,
                             capmem_rm_access_t access)
{
    if (arena == NULL ||
        (access != CAPMEM_RM_READ && access != CAPMEM_RM_WRITE && access != CAPMEM_RM_EXEC)) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, __func__,
                            "arena is NULL or access type %d is unknown", (int)access);
    }
    return rm_access_public(arena, rm, address, NULL, len, access, __func__);
}

capmem_err_t capmem__rm_managed_access(capmem_arena_t *arena, struct capmem__ds *ds,
                                       uint64_t offset, void *buf, size_t len, int write,
                                       const char *func)
{
    capmem_cap_t top = capmem__slot_handle(&arena->cspace, ds->slot);
    return rm_access(arena, top, ds->owner, offset, buf, len,
                     write ? CAPMEM_RM_WRITE : CAPMEM_RM_READ, func);
}

/* ---- the checker --------------------------------------------------------------------- */

typedef struct walk {
    capmem_arena_t *arena;
    const capmem__rm_t *rm;
    uint64_t prev_end; /* end page of the previous region in address order */
    uint64_t count;
    char *why;
    size_t len;
} walk_t;

static bool slot_is(const capmem_arena_t *arena, uint32_t idx, capmem_obj_type_t type,
                    const void *obj)
{
    const capmem__cspace_t *cs = &arena->cspace;
    if (idx == 0 || idx >= cs->high) {
        return false;
    }
    const capmem__slot_t *s = &cs->slots[idx];
    return s->type == type && (s->flags & CAPMEM__SLOT_ORIGINAL) && (obj == NULL || s->obj == obj);
}

/* In-order walk of a subtree; returns its height, or -1 with *why set. */
static int check_subtree(walk_t *w, const rm_region_t *n, unsigned depth)
{
    if (n == NULL) {
        return 0;
    }
    const capmem__rm_t *rm = w->rm;
    const capmem_arena_t *arena = w->arena;
    if (depth > 64) {
        snprintf(w->why, w->len, "region map \"%s\": region tree deeper than 64", rm->label);
        return -1;
    }
    int hl = check_subtree(w, rg_left(n), depth + 1);
    if (hl < 0) {
        return -1;
    }
    uint64_t a = (uint64_t)n->base << arena->mem.page_shift;
    if (n->rm_slot != rm->slot || n->pages == 0 || n->base < w->prev_end || rg_end(n) > rm->pages ||
        n->gap != n->base - w->prev_end) {
        snprintf(w->why, w->len,
                 "region map \"%s\": region at 0x%llx (%u pages, gap %u) is empty, overlaps its "
                 "predecessor, leaves the map or has a wrong gap",
                 rm->label, (unsigned long long)a, n->pages, n->gap);
        return -1;
    }
    w->prev_end = rg_end(n);
    w->count++;
    if (!slot_is(arena, n->ds_slot, CAPMEM_OBJ_DATASPACE, NULL)) {
        snprintf(w->why, w->len, "region map \"%s\": region at 0x%llx names a dead dataspace",
                 rm->label, (unsigned long long)a);
        return -1;
    }
    const capmem__ds_t *d = rg_ds(arena, n);
    uint64_t bytes = (uint64_t)n->pages << arena->mem.page_shift;
    if (n->off > d->size || d->size - n->off < bytes ||
        ((rg_flags(n) & RG_WRITABLE) && !(d->flags & CAPMEM__DS_WRITABLE))) {
        snprintf(w->why, w->len,
                 "region map \"%s\": region at 0x%llx exceeds its dataspace or writes a "
                 "read-only one",
                 rm->label, (unsigned long long)a);
        return -1;
    }
    if ((n->ds_prev == NULL ? d->regions != n : n->ds_prev->ds_next != n) ||
        (n->ds_next != NULL && n->ds_next->ds_prev != n)) {
        snprintf(w->why, w->len,
                 "region map \"%s\": region at 0x%llx is not linked in its dataspace's list",
                 rm->label, (unsigned long long)a);
        return -1;
    }
    int hr = check_subtree(w, rg_right(n), depth + 1);
    if (hr < 0) {
        return -1;
    }
    int h = 1 + (hl > hr ? hl : hr);
    uint32_t g = n->gap;
    g = gap_of(rg_left(n)) > g ? gap_of(rg_left(n)) : g;
    g = gap_of(rg_right(n)) > g ? gap_of(rg_right(n)) : g;
    if ((int)rg_height(n) != h || hl - hr > 1 || hr - hl > 1 || n->max_gap != g) {
        snprintf(w->why, w->len,
                 "region map \"%s\": region at 0x%llx: height %u (should be %d), balance %d, "
                 "max gap %u (should be %u)",
                 rm->label, (unsigned long long)a, rg_height(n), h, hl - hr, n->max_gap, g);
        return -1;
    }
    return h;
}

static capmem_err_t rm_check(capmem_arena_t *arena, void *state, char *why, size_t len)
{
    (void)state;
    rm_state_t *st = capmem__layer_state(arena, &rm_layer);
    char scratch[8];
    if (why == NULL || len == 0) {
        why = scratch;
        len = sizeof(scratch);
    }
    uint64_t total = 0;
    for (const capmem__rm_t *rm = st->maps; rm != NULL; rm = rm->next) {
        if (!slot_is(arena, rm->slot, CAPMEM_OBJ_REGION_MAP, rm) ||
            !slot_is(arena, rm->client->slot, CAPMEM_OBJ_RAM_SESSION, rm->client) ||
            (rm->next != NULL && rm->next->prev != rm) || rm->meta.account != NULL) {
            snprintf(why, len,
                     "region map \"%s\": its capability, client or list links are "
                     "broken",
                     rm->label);
            return CAPMEM_E_CORRUPT;
        }
        if (rm->managed != NULL &&
            (!slot_is(arena, rm->managed->slot, CAPMEM_OBJ_DATASPACE, rm->managed) ||
             capmem__ds_kind(rm->managed) != CAPMEM__DS_MANAGED || rm->managed->owner != rm ||
             rm->managed->meta != &rm->meta || rm->managed->size != rm->size)) {
            snprintf(why, len, "region map \"%s\": its managed dataspace is inconsistent",
                     rm->label);
            return CAPMEM_E_CORRUPT;
        }
        walk_t w = {.arena = arena, .rm = rm, .why = why, .len = len};
        if (check_subtree(&w, rm->root, 0) < 0) {
            return CAPMEM_E_CORRUPT;
        }
        if (w.count != rm->regions) {
            snprintf(why, len, "region map \"%s\": %llu regions counted, %llu in the tree",
                     rm->label, (unsigned long long)rm->regions, (unsigned long long)w.count);
            return CAPMEM_E_CORRUPT;
        }
        total += w.count;
        capmem_err_t err =
            capmem__meta_check(arena, &rm->meta, rm->label, rm->managed != NULL ? 1 : 0,
                               CAPMEM_RM_SESSION_SLOTS, why, len);
        if (err != CAPMEM_OK) {
            return err;
        }
    }
    /* Every attachment in a dataspace's list is a region of a live map, and no others exist. */
    uint64_t listed = 0;
    const capmem__cspace_t *cs = &arena->cspace;
    for (uint32_t i = 1; i < cs->high; i++) {
        const capmem__slot_t *s = &cs->slots[i];
        if (s->type != CAPMEM_OBJ_DATASPACE || !(s->flags & CAPMEM__SLOT_ORIGINAL)) {
            continue;
        }
        const capmem__ds_t *d = s->obj;
        for (const rm_region_t *r = d->regions; r != NULL; r = r->ds_next) {
            listed++;
            if (r->ds_slot != i || !slot_is(arena, r->rm_slot, CAPMEM_OBJ_REGION_MAP, NULL)) {
                snprintf(why, len,
                         "a dataspace's attachment list holds a region of another "
                         "dataspace or of a closed region map");
                return CAPMEM_E_CORRUPT;
            }
        }
    }
    if (listed != total) {
        snprintf(why, len, "%llu attachments listed by dataspaces, %llu regions in region maps",
                 (unsigned long long)listed, (unsigned long long)total);
        return CAPMEM_E_CORRUPT;
    }
    return CAPMEM_OK;
}
