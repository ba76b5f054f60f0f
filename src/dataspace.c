/* SPDX-License-Identifier: MIT */
/*
 * Layer 6: dataspaces and aliases (ds_internal.h).
 *
 * Page reference counts are kept per run: each first-class alias record is
 * one run, the original RAM dataspace covers all its pages while it lives,
 * and a page's count is the number of live runs covering it. The physical
 * allocator always holds, for each backing, the overlap-merged union of its
 * live runs as blocks; releasing a run frees its block and re-reserves the
 * parts other runs still cover. Lists are sorted in place (merge sort on
 * the record links), so no host memory is needed on these paths.
 *
 * A dataspace that goes away is detached from every region map through the
 * hook the region-map layer registered, and a managed dataspace is reached
 * only through the kind hooks that layer registered: this layer names none
 * above it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc_internal.h"
#include "ds_internal.h"

/* Per-arena state: the kinds' hooks and the region maps' detach hook. */
typedef struct ds_state {
    const capmem__ds_kind_ops_t *kinds[CAPMEM__DS_KINDS];
    void (*detach_all)(capmem_arena_t *arena, capmem__ds_t *ds, capmem_cap_t handle);
} ds_state_t;

static const capmem__layer_t ds_layer = {.name = "dataspaces"};

static ds_state_t *ds_state(const capmem_arena_t *arena)
{
    ds_state_t *st = capmem__layer_state(arena, &ds_layer);
    CAPMEM_ASSERT(st != NULL, "dataspaces exist only on arenas whose dataspace layer is set up");
    return st;
}

const char *capmem_ds_kind_name(capmem_ds_kind_t kind)
{
    switch (kind) {
    case CAPMEM_DS_RAM:
        return "RAM";
    case CAPMEM_DS_ALIAS_DEPENDENT:
        return "dependent alias";
    case CAPMEM_DS_ALIAS_FIRST_CLASS:
        return "first-class alias";
    case CAPMEM_DS_MANAGED:
        return "managed";
    case CAPMEM_DS_BANK_FRAME:
        return "bank frame";
    }
    return "unknown";
}

/* ---- list helpers ----------------------------------------------------------- */

/* Unlink d from a NULL-terminated list whose head pointer is *head (or whose head is a record). */
static void list_unlink(capmem__ds_t **head, capmem__ds_t *d)
{
    if (d->u.link.prev != NULL) {
        d->u.link.prev->u.link.next = d->u.link.next;
    } else if (head != NULL) {
        *head = d->u.link.next;
    }
    if (d->u.link.next != NULL) {
        d->u.link.next->u.link.prev = d->u.link.prev;
    }
    d->u.link.next = d->u.link.prev = NULL;
}

static void list_push(capmem__ds_t **head, capmem__ds_t *d)
{
    d->u.link.prev = NULL;
    d->u.link.next = *head;
    if (*head != NULL) {
        (*head)->u.link.prev = d;
    }
    *head = d;
}

/* Merge sort by offset on the next links; prev links are rebuilt by the caller. */
static capmem__ds_t *sort_by_off(capmem__ds_t *h)
{
    if (h == NULL || h->u.link.next == NULL) {
        return h;
    }
    capmem__ds_t *slow = h;
    capmem__ds_t *fast = h->u.link.next;
    while (fast != NULL && fast->u.link.next != NULL) {
        slow = slow->u.link.next;
        fast = fast->u.link.next->u.link.next;
    }
    capmem__ds_t *b = slow->u.link.next;
    slow->u.link.next = NULL;
    capmem__ds_t *a = sort_by_off(h);
    b = sort_by_off(b);
    capmem__ds_t head = {0};
    capmem__ds_t *t = &head;
    while (a != NULL && b != NULL) {
        if (a->off <= b->off) {
            t->u.link.next = a;
            a = a->u.link.next;
        } else {
            t->u.link.next = b;
            b = b->u.link.next;
        }
        t = t->u.link.next;
    }
    t->u.link.next = a != NULL ? a : b;
    return head.u.link.next;
}

static void rebuild_prev(capmem__ds_t *first, capmem__ds_t *prev_of_first)
{
    capmem__ds_t *p = prev_of_first;
    for (capmem__ds_t *d = first; d != NULL; d = d->u.link.next) {
        d->u.link.prev = p;
        p = d;
    }
}

/* ---- page runs ------------------------------------------------------------- */

static void phys_reserve(capmem_alloc_t *phys, uint64_t off, uint64_t size)
{
    capmem_err_t err = capmem_alloc_alloc_at(phys, off, size);
    CAPMEM_ASSERT(err == CAPMEM_OK, "re-reserving pages that were just freed");
    (void)err;
}

static void phys_release(capmem_alloc_t *phys, uint64_t off, uint64_t size)
{
    capmem_err_t err = capmem_alloc_free(phys, off, size);
    CAPMEM_ASSERT(err == CAPMEM_OK, "each run's block is allocated exactly");
    (void)err;
}

/*
 * Reserve the overlap-merged components of the sorted runs in [first, stop)
 * (skipping @p skip) and return the bytes reserved.
 */
static uint64_t reserve_components(capmem_alloc_t *phys, capmem__ds_t *first, capmem__ds_t *stop,
                                   const capmem__ds_t *skip)
{
    uint64_t kept = 0;
    uint64_t cs = 0;
    uint64_t ce = 0;
    bool open = false;
    for (capmem__ds_t *d = first; d != stop; d = d->u.link.next) {
        if (d == skip) {
            continue;
        }
        if (open && d->off < ce) {
            ce = d->off + d->size > ce ? d->off + d->size : ce;
            continue;
        }
        if (open) {
            phys_reserve(phys, cs, ce - cs);
            kept += ce - cs;
        }
        cs = d->off;
        ce = d->off + d->size;
        open = true;
    }
    if (open) {
        phys_reserve(phys, cs, ce - cs);
        kept += ce - cs;
    }
    return kept;
}

/*
 * The original RAM dataspace goes: free its block, keep what its
 * first-class aliases cover, and move them to the lender's lent list.
 */
static void release_original(capmem_arena_t *arena, capmem__ds_t *ds)
{
    capmem__account_t *acc = capmem__ds_account(ds);
    phys_release(acc->phys, ds->off, ds->size);
    if (ds->u.link.next == NULL) {
        capmem__alloc_settle(acc->phys, ds->off, ds->off + ds->size);
        capmem__quota_replenish(&acc->ram, ds->size);
        return;
    }
    capmem__ds_t *first = sort_by_off(ds->u.link.next);
    uint64_t kept = reserve_components(acc->phys, first, NULL, NULL);
    /* A placement policy hears of the block once no alias keeps a page of it. */
    capmem__alloc_settle(acc->phys, ds->off, ds->off + ds->size);
    capmem__quota_replenish(&acc->ram, ds->size - kept);
    acc->lent += kept;
    capmem__stat_add(&arena->stats.lent, kept);
    for (capmem__ds_t *d = first; d != NULL;) {
        capmem__ds_t *next = d->u.link.next;
        d->flags |= CAPMEM__DS_LENT;
        list_push(&acc->lent_list, d);
        d = next;
    }
    ds->u.link.next = NULL;
}

/*
 * A first-class alias of a freed original goes: find the component of the
 * lender's runs that contains it, free that block and re-reserve what the
 * other runs in it still cover.
 */
static void release_lent(capmem_arena_t *arena, capmem__ds_t *a)
{
    capmem__account_t *lender = capmem__ds_lender(a);
    CAPMEM_ASSERT(lender != NULL, "a lent alias always has a living lender (see pass_lent)");
    capmem__ds_t *first = sort_by_off(lender->lent_list);
    rebuild_prev(first, NULL);
    lender->lent_list = first;
    /* The component containing a: a maximal overlap-merged run of the sorted list. */
    capmem__ds_t *cstart = first;
    uint64_t ce = 0;
    capmem__ds_t *found_start = NULL;
    capmem__ds_t *found_stop = NULL;
    uint64_t found_lo = 0;
    uint64_t found_hi = 0;
    bool contains = false;
    for (capmem__ds_t *d = first;; d = d->u.link.next) {
        if (d == NULL || (d != cstart && d->off >= ce)) {
            if (contains) {
                found_start = cstart;
                found_stop = d;
                found_lo = cstart->off;
                found_hi = ce;
                break;
            }
            if (d == NULL) {
                break;
            }
            cstart = d;
            ce = 0;
        }
        ce = d->off + d->size > ce ? d->off + d->size : ce;
        contains = contains || d == a;
    }
    CAPMEM_ASSERT(found_start != NULL, "a lent alias is in its lender's list");
    phys_release(lender->phys, found_lo, found_hi - found_lo);
    uint64_t kept = reserve_components(lender->phys, found_start, found_stop, a);
    capmem__alloc_settle(lender->phys, found_lo, found_hi);
    uint64_t released = (found_hi - found_lo) - kept;
    list_unlink(&lender->lent_list, a);
    capmem__quota_replenish(&lender->ram, released);
    lender->lent -= released;
    capmem__stat_sub(&arena->stats.lent, released);
}

void capmem__ds_sort_ring(capmem__ds_t *original)
{
    capmem__ds_t *first = sort_by_off(original->u.link.next);
    original->u.link.next = first;
    rebuild_prev(first, original);
}

void capmem__ds_sort_lent(capmem__account_t *acc)
{
    acc->lent_list = sort_by_off(acc->lent_list);
    rebuild_prev(acc->lent_list, NULL);
}

void capmem__ds_pass_lent(capmem__account_t *from, capmem__account_t *to)
{
    for (capmem__ds_t *d = from->lent_list; d != NULL;) {
        capmem__ds_t *next = d->u.link.next;
        d->u.fc.lender = to;
        list_push(&to->lent_list, d);
        d = next;
    }
    capmem__quota_withdraw(&to->ram, from->lent);
    to->lent += from->lent;
    from->lent_list = NULL;
    capmem__quota_replenish(&from->ram, from->lent);
    from->lent = 0;
}

/* ---- the kinds of this layer --------------------------------------------------- */

static capmem_err_t bytes_access(capmem_arena_t *arena, capmem__ds_t *ds, uint64_t offset,
                                 void *buf, size_t len, bool write)
{
    if (write) {
        memcpy(capmem__bytes(&arena->mem, ds->off + offset), buf, len);
    } else {
        memcpy(buf, capmem__bytes(&arena->mem, ds->off + offset), len);
    }
    return CAPMEM_OK;
}

static void ram_destroy(capmem_arena_t *arena, capmem__ds_t *ds)
{
    release_original(arena, ds);
}

static void dep_destroy(capmem_arena_t *arena, capmem__ds_t *ds)
{
    (void)arena;
    capmem__account_t *payer = capmem__account_of(ds->meta);
    CAPMEM_ASSERT(payer != NULL, "a dependent alias's record is paid by an account");
    list_unlink(&payer->dependents, ds);
}

static void fc_destroy(capmem_arena_t *arena, capmem__ds_t *ds)
{
    if (ds->flags & CAPMEM__DS_LENT) {
        release_lent(arena, ds);
    } else {
        list_unlink(NULL, ds); /* from the original's ring; the head is a record */
    }
}

static const capmem__ds_kind_ops_t ram_kind = {.access = bytes_access, .destroy = ram_destroy};
static const capmem__ds_kind_ops_t dep_kind = {.access = bytes_access, .destroy = dep_destroy};
static const capmem__ds_kind_ops_t fc_kind = {.access = bytes_access, .destroy = fc_destroy};

/* ---- the DATASPACE type ---------------------------------------------------------- */

static void ds_destroy(capmem_arena_t *arena, void *obj, capmem_cap_t handle)
{
    capmem__ds_t *ds = obj;
    ds_state_t *st = ds_state(arena);
    if (st->detach_all != NULL) {
        st->detach_all(arena, ds, handle);
    }
    if (capmem__event_wanted(arena, CAPMEM_EVENT_DS_FREE)) {
        const unsigned kind = capmem__ds_kind(ds);
        const bool managed = kind == CAPMEM__DS_MANAGED;
        capmem__emit(arena,
                     &(capmem__ev_t){.kind = CAPMEM_EVENT_DS_FREE,
                                     .cap = handle,
                                     .a = ds->size,
                                     .b = kind,
                                     .offset = managed ? 0 : ds->off,
                                     .size = ds->size},
                     "free %s dataspace of %llu bytes at offset 0x%llx",
                     capmem_ds_kind_name((capmem_ds_kind_t)kind), (unsigned long long)ds->size,
                     (unsigned long long)(managed ? 0 : ds->off));
    }
    CAPMEM_ASSERT(ds->regions == NULL, "a dataspace with attachments has a detach hook");
    const unsigned kind = capmem__ds_kind(ds);
    if (kind == CAPMEM__DS_RAM) {
        capmem__stat_sub(&arena->stats.dataspaces, 1);
    } else if (kind == CAPMEM__DS_ALIAS_DEP || kind == CAPMEM__DS_ALIAS_FC) {
        capmem__stat_sub(&arena->stats.aliases, 1);
    }
    st->kinds[kind]->destroy(arena, ds);
    capmem__meta_free(arena, ds->meta, ds);
}

static int ds_describe(capmem_arena_t *arena, const void *obj, char *buf, size_t len)
{
    const capmem__ds_t *ds = obj;
    const capmem__ds_kind_ops_t *k = ds_state(arena)->kinds[capmem__ds_kind(ds)];
    if (k->describe != NULL) {
        return k->describe(arena, ds, buf, len);
    }
    return snprintf(buf, len, "%s dataspace of %llu bytes at offset 0x%llx",
                    capmem_ds_kind_name((capmem_ds_kind_t)capmem__ds_kind(ds)),
                    (unsigned long long)ds->size, (unsigned long long)ds->off);
}

static const capmem__type_ops_t ds_type = {
    .type = CAPMEM_OBJ_DATASPACE,
    .name = "dataspace",
    .destroy = ds_destroy,
    .describe = ds_describe,
};

capmem_err_t capmem__ds_setup(capmem_arena_t *arena)
{
    ds_state_t *st = NULL;
    capmem_err_t err = capmem__layer_setup(arena, &ds_layer, sizeof(*st), (void **)&st);
    if (err != CAPMEM_OK) {
        return err;
    }
    capmem__type_register(arena, &ds_type);
    st->kinds[CAPMEM__DS_RAM] = &ram_kind;
    st->kinds[CAPMEM__DS_ALIAS_DEP] = &dep_kind;
    st->kinds[CAPMEM__DS_ALIAS_FC] = &fc_kind;
    return CAPMEM_OK;
}

void capmem__ds_kind_register(capmem_arena_t *arena, unsigned kind,
                              const capmem__ds_kind_ops_t *ops)
{
    CAPMEM_ASSERT(kind > 0 && kind < CAPMEM__DS_KINDS, "a known kind");
    ds_state(arena)->kinds[kind] = ops;
}

void capmem__ds_set_detach(capmem_arena_t *arena,
                           void (*detach_all)(capmem_arena_t *, capmem__ds_t *, capmem_cap_t))
{
    ds_state(arena)->detach_all = detach_all;
}

capmem_err_t capmem__ds_lookup(capmem_arena_t *arena, capmem_cap_t cap, unsigned rights,
                               capmem__slot_t **slot, capmem__ds_t **out)
{
    capmem__slot_t *s = NULL;
    capmem_err_t err = capmem__cap_lookup(arena, cap, CAPMEM_OBJ_DATASPACE, rights, &s);
    if (err == CAPMEM_OK) {
        *out = s->obj;
        if (slot != NULL) {
            *slot = s;
        }
    }
    return err;
}

capmem_cap_t capmem__ds_make_ram(capmem_arena_t *arena, capmem__account_t *acc, capmem__ds_t *rec,
                                 uint64_t off, uint64_t size)
{
    rec->meta = &acc->meta;
    rec->off = off;
    rec->size = size;
    rec->u.ram.account = acc;
    rec->flags = CAPMEM__DS_RAM | CAPMEM__DS_WRITABLE;
    capmem__quota_withdraw(&acc->ram, size);
    const capmem_cap_t h = capmem__cap_create(arena, CAPMEM_OBJ_DATASPACE, rec, CAPMEM_RIGHTS_ALL,
                                              CAPMEM__SLOT_ORIGINAL, acc->slot, &acc->caps);
    rec->slot = capmem__cap_index(h);
    return h;
}

capmem_cap_t capmem__ds_make_managed(capmem_arena_t *arena, capmem__meta_t *m, capmem__ds_t *rec,
                                     void *map, uint64_t size, uint32_t parent,
                                     capmem__quota_t *quota)
{
    rec->meta = m;
    rec->size = size;
    rec->u.managed.map = map;
    rec->flags = CAPMEM__DS_MANAGED | CAPMEM__DS_WRITABLE;
    const capmem_cap_t h = capmem__cap_create(arena, CAPMEM_OBJ_DATASPACE, rec, CAPMEM_RIGHTS_ALL,
                                              CAPMEM__SLOT_ORIGINAL, parent, quota);
    rec->slot = capmem__cap_index(h);
    return h;
}

/* ---- info, read and write ---------------------------------------------------------- */

capmem_err_t capmem_ds_info(capmem_arena_t *arena, capmem_cap_t ds, capmem_ds_info_t *info)
{
    if (arena == NULL || info == NULL) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, __func__, "arena or info is NULL");
    }
    CAPMEM__ENTER_OR_RETURN(arena);
    capmem__slot_t *s = NULL;
    capmem__ds_t *d = NULL;
    capmem_err_t err = capmem__ds_lookup(arena, ds, 0, &s, &d);
    if (err == CAPMEM_OK) {
        memset(info, 0, sizeof(*info));
        info->kind = (capmem_ds_kind_t)capmem__ds_kind(d);
        info->size = d->size;
        if (info->kind != CAPMEM_DS_MANAGED) {
            info->offset = d->off;
            info->phys = arena->mem.phys_base + d->off;
        }
        info->writable = capmem__ds_writable(s, d);
        info->rights = s->rights;
    }
    CAPMEM__LEAVE(arena);
    return err;
}

static capmem_err_t access(capmem_arena_t *arena, capmem_cap_t ds, uint64_t offset, void *buf,
                           size_t len, bool write, const char *func)
{
    if (arena == NULL || buf == NULL) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, func, "arena or buf is NULL");
    }
    CAPMEM__ENTER_AS_OR_RETURN(arena, func);
    capmem__slot_t *s = NULL;
    capmem__ds_t *d = NULL;
    uint64_t end;
    capmem_err_t err =
        capmem__ds_lookup(arena, ds, write ? CAPMEM_RIGHT_WRITE : CAPMEM_RIGHT_READ, &s, &d);
    if (err == CAPMEM_OK && write && !(d->flags & CAPMEM__DS_WRITABLE)) {
        err = capmem__fail(CAPMEM_E_DENIED, NULL, "the dataspace is read-only");
    } else if (err == CAPMEM_OK && (!capmem__add_ok(offset, len, &end) || end > d->size)) {
        err = capmem__fail(CAPMEM_E_INVALID_ARGS, NULL,
                           "access 0x%llx+0x%zx is outside the 0x%llx-byte dataspace",
                           (unsigned long long)offset, len, (unsigned long long)d->size);
        capmem__detail()->address = offset;
    }
    if (err == CAPMEM_OK) {
        /* A managed dataspace's access may run fault handlers that free d: d is not used after. */
        err = ds_state(arena)->kinds[capmem__ds_kind(d)]->access(arena, d, offset, buf, len, write);
    }
    CAPMEM__LEAVE(arena);
    return err;
}

capmem_err_t capmem_ds_read(capmem_arena_t *arena, capmem_cap_t ds, uint64_t offset, void *buf,
                            size_t len)
{
    return access(arena, ds, offset, buf, len, false, __func__);
}

capmem_err_t capmem_ds_write(capmem_arena_t *arena, capmem_cap_t ds, uint64_t offset,
                             const void *buf, size_t len)
{
    return access(arena, ds, offset, (void *)(uintptr_t)buf, len, true, __func__);
}

/* ---- aliases ------------------------------------------------------------------------ */

/*
 * Where a new first-class alias of @p src shares pages: the RAM dataspace
 * whose ring it joins (*head), or, when the original is already freed, no
 * ring (*head NULL) and the lender's lent list. A dependent alias shares
 * the pages of its base, which outlives it.
 */
static void share_point(capmem__ds_t *src, capmem__ds_t **head, capmem__account_t **lender)
{
    capmem__ds_t *b = capmem__ds_kind(src) == CAPMEM__DS_ALIAS_DEP ? capmem__ds_base(src) : src;
    if (capmem__ds_kind(b) == CAPMEM__DS_ALIAS_FC && (b->flags & CAPMEM__DS_LENT)) {
        *head = NULL;
        *lender = capmem__ds_lender(b);
        return;
    }
    while (capmem__ds_kind(b) != CAPMEM__DS_RAM) {
        b = b->u.link.prev; /* first-class aliases in a ring lead back to their RAM head */
    }
    *head = b;
    *lender = capmem__ds_account(b);
}

typedef struct alias_plan {
    capmem__account_t *acc; /* pays the record and the capability */
    capmem__slot_t *src_slot;
    capmem__ds_t *src;
    uint64_t offset;
    uint64_t size;
    bool writable;
    capmem_alias_lifetime_t lifetime;
    capmem_cap_t session;
} alias_plan_t;

static capmem_err_t decode_alias(capmem_arena_t *arena, capmem_cap_t session, capmem_cap_t ds,
                                 const capmem_alias_attr_t *attr, alias_plan_t *p)
{
    capmem_err_t err = capmem__account_lookup(arena, session, CAPMEM_RIGHT_WRITE, &p->acc);
    if (err != CAPMEM_OK) {
        return err;
    }
    err = capmem__ds_lookup(arena, ds, CAPMEM_RIGHT_GRANT, &p->src_slot, &p->src);
    if (err != CAPMEM_OK) {
        return err;
    }
    const capmem__ds_t *src = p->src;
    if (capmem__ds_kind(src) == CAPMEM__DS_MANAGED) {
        return capmem__fail(CAPMEM_E_WRONG_TYPE, NULL, "a managed dataspace cannot be aliased");
    }
    if (capmem__ds_kind(src) == CAPMEM__DS_BANK_FRAME) {
        /* Its bank owns the page: an alias would outlive a destroy of the bank. */
        return capmem__fail(CAPMEM_E_WRONG_TYPE, NULL, "a space bank's frame cannot be aliased");
    }
    p->offset = attr->offset;
    p->size = attr->size;
    if (p->size == 0 && attr->offset < src->size) {
        p->size = src->size - attr->offset; /* to the end */
    }
    uint64_t end = 0;
    if (p->size == 0 || !capmem__is_aligned(attr->offset, arena->mem.page_size) ||
        !capmem__is_aligned(p->size, arena->mem.page_size) ||
        !capmem__add_ok(attr->offset, p->size, &end) || end > src->size) {
        capmem__fail(CAPMEM_E_INVALID_ARGS, NULL,
                     "alias 0x%llx+0x%llx of a 0x%llx-byte dataspace is empty, misaligned or out "
                     "of range",
                     (unsigned long long)attr->offset, (unsigned long long)attr->size,
                     (unsigned long long)src->size);
        capmem__detail()->address = attr->offset;
        return CAPMEM_E_INVALID_ARGS;
    }
    p->writable = attr->writable;
    if (p->writable && !capmem__ds_writable(p->src_slot, src)) {
        return capmem__fail(CAPMEM_E_DENIED, NULL,
                            "a writable alias of a read-only dataspace or capability");
    }
    err = capmem__cap_reserve_check(arena, &p->acc->caps, 1);
    if (err != CAPMEM_OK) {
        return err;
    }
    p->lifetime = attr->lifetime;
    p->session = session;
    /* The last check, because an expanding session's upgrade is an action of its own. */
    return capmem__account_make_room(arena, &p->acc->meta, p->acc,
                                     (p->acc->flags & CAPMEM_RAM_EXPANDING) != 0,
                                     p->acc->upgrade_step, session, p->acc->label, 1);
}

static capmem_cap_t invoke_alias(capmem_arena_t *arena, const alias_plan_t *p)
{
    capmem__account_t *acc = p->acc;
    capmem__ds_t *rec = NULL;
    capmem_err_t err = capmem__meta_alloc(arena, &acc->meta, (void **)&rec);
    CAPMEM_ASSERT(err == CAPMEM_OK, "room was made in decode");
    (void)err;
    capmem__ds_t *src = p->src;
    rec->meta = &acc->meta;
    rec->off = src->off + p->offset;
    rec->size = p->size;
    rec->flags = p->writable ? CAPMEM__DS_WRITABLE : 0;
    unsigned rights = p->src_slot->rights;
    if (!p->writable) {
        rights &= ~(unsigned)CAPMEM_RIGHT_WRITE;
    }
    uint32_t parent;
    if (p->lifetime == CAPMEM_ALIAS_DEPENDENT) {
        rec->flags |= CAPMEM__DS_ALIAS_DEP;
        /* Its base: the RAM dataspace or first-class alias whose pages it shows. */
        rec->u.dep.base = capmem__ds_kind(src) == CAPMEM__DS_ALIAS_DEP ? capmem__ds_base(src) : src;
        list_push(&acc->dependents, rec);
        parent = capmem__slot_index(&arena->cspace, p->src_slot);
    } else {
        rec->flags |= CAPMEM__DS_ALIAS_FC;
        capmem__ds_t *head = NULL;
        capmem__account_t *lender = NULL;
        share_point(src, &head, &lender);
        rec->u.fc.lender = lender;
        if (head != NULL) {
            rec->u.link.prev = head;
            rec->u.link.next = head->u.link.next;
            if (head->u.link.next != NULL) {
                head->u.link.next->u.link.prev = rec;
            }
            head->u.link.next = rec;
        } else {
            /* The original is gone: the pages are already lent, join the lent list. */
            rec->flags |= CAPMEM__DS_LENT;
            list_push(&lender->lent_list, rec);
        }
        parent = acc->slot;
    }
    const capmem_cap_t h = capmem__cap_create(arena, CAPMEM_OBJ_DATASPACE, rec, rights,
                                              CAPMEM__SLOT_ORIGINAL, parent, &acc->caps);
    rec->slot = capmem__cap_index(h);
    capmem__stat_add(&arena->stats.aliases, 1);
    if (capmem__event_wanted(arena, CAPMEM_EVENT_ALIAS)) {
        capmem__emit(
            arena,
            &(capmem__ev_t){
                .kind = CAPMEM_EVENT_ALIAS,
                .cap = h,
                .other = capmem__slot_handle(&arena->cspace,
                                             capmem__slot_index(&arena->cspace, p->src_slot)),
                .a = p->offset,
                .b = (p->writable ? 1u : 0u) | (p->lifetime == CAPMEM_ALIAS_FIRST_CLASS ? 2u : 0u),
                .offset = rec->off,
                .size = rec->size,
                .payer = capmem__account_handle(arena, acc)},
            "%s %s alias of %llu bytes at offset 0x%llx",
            p->lifetime == CAPMEM_ALIAS_DEPENDENT ? "dependent" : "first-class",
            p->writable ? "writable" : "read-only", (unsigned long long)rec->size,
            (unsigned long long)rec->off);
    }
    return h;
}

capmem_err_t capmem_ds_alias(capmem_arena_t *arena, capmem_cap_t session, capmem_cap_t ds,
                             const capmem_alias_attr_t *attr, capmem_cap_t *out)
{
    if (arena == NULL || attr == NULL || out == NULL) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, __func__, "arena, attr or out is NULL");
    }
    if (attr->lifetime != CAPMEM_ALIAS_DEPENDENT && attr->lifetime != CAPMEM_ALIAS_FIRST_CLASS) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, __func__, "unknown lifetime %d",
                            (int)attr->lifetime);
    }
    CAPMEM__ENTER_OR_RETURN(arena);
    alias_plan_t plan;
    capmem_err_t err = decode_alias(arena, session, ds, attr, &plan);
    if (err == CAPMEM_OK) {
        *out = invoke_alias(arena, &plan);
    }
    CAPMEM__LEAVE(arena);
    return err;
}

/* ---- free ------------------------------------------------------------------------------ */

static capmem_err_t decode_free(capmem_arena_t *arena, capmem_cap_t ds, uint32_t *index)
{
    capmem__slot_t *s = NULL;
    capmem__ds_t *d = NULL;
    /*
     * Freeing takes the original capability, not a right: a read-only alias
     * has no WRITE, yet whoever made it can free it.
     */
    capmem_err_t err = capmem__ds_lookup(arena, ds, 0, &s, &d);
    if (err != CAPMEM_OK) {
        return err;
    }
    err = capmem__cap_require_original(s, "free", "dataspace");
    if (err != CAPMEM_OK) {
        return err;
    }
    if (capmem__ds_kind(d) == CAPMEM__DS_MANAGED) {
        return capmem__fail(CAPMEM_E_WRONG_TYPE, NULL,
                            "a managed dataspace goes with its region map");
    }
    if (capmem__ds_kind(d) == CAPMEM__DS_BANK_FRAME) {
        return capmem__fail(CAPMEM_E_WRONG_TYPE, NULL,
                            "a space bank's frame is freed through its bank (capmem_bank_free)");
    }
    /*
     * Freeing kills the dataspace's capability subtree, as a revoke and a
     * delete would: a layer that must refuse that (a bank service whose
     * frames the kernel heap borrowed, a service's upgrade) is asked first.
     */
    if (arena->kill_check != NULL) {
        err = arena->kill_check(arena, capmem__cap_index(ds), true);
        if (err != CAPMEM_OK) {
            return err;
        }
    }
    *index = capmem__cap_index(ds);
    return CAPMEM_OK;
}

capmem_err_t capmem_ds_free(capmem_arena_t *arena, capmem_cap_t ds)
{
    if (arena == NULL) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, __func__, "arena is NULL");
    }
    CAPMEM__ENTER_OR_RETURN(arena);
    uint32_t idx = 0;
    capmem_err_t err = decode_free(arena, ds, &idx);
    if (err == CAPMEM_OK) {
        capmem__cap_revoke_index(arena, idx);
        capmem__cap_delete_leaf(arena, idx);
    }
    CAPMEM__LEAVE(arena);
    return err;
}

/* ---- checks ------------------------------------------------------------------------------ */

typedef struct run {
    uint64_t off;
    uint64_t end;
} run_t;

static int cmp_run(const void *x, const void *y)
{
    const run_t *a = x;
    const run_t *b = y;
    return (a->off > b->off) - (a->off < b->off);
}

capmem_err_t capmem__ds_check_account(const capmem__account_t *acc, uint64_t *lent_bytes, char *why,
                                      size_t len)
{
    uint64_t deps = 0;
    for (const capmem__ds_t *d = acc->dependents; d != NULL; d = d->u.link.next) {
        if (capmem__ds_kind(d) != CAPMEM__DS_ALIAS_DEP || d->meta != &acc->meta ||
            ++deps > acc->meta.used) {
            snprintf(why, len,
                     "account \"%s\": its dependents list holds a record that is not a dependent "
                     "alias it paid for",
                     acc->label);
            return CAPMEM_E_CORRUPT;
        }
    }
    size_t n = 0;
    for (const capmem__ds_t *d = acc->lent_list; d != NULL; d = d->u.link.next) {
        n++;
    }
    run_t *runs = capmem__malloc((n + 1) * sizeof(*runs));
    if (runs == NULL) {
        snprintf(why, len, "RAM check: no host memory");
        return CAPMEM_E_HOST_NOMEM;
    }
    size_t k = 0;
    for (const capmem__ds_t *d = acc->lent_list; d != NULL; d = d->u.link.next) {
        if (capmem__ds_kind(d) != CAPMEM__DS_ALIAS_FC || !(d->flags & CAPMEM__DS_LENT) ||
            d->u.fc.lender != acc) {
            snprintf(why, len,
                     "account \"%s\": its lent list holds a record that is not its lent "
                     "first-class alias",
                     acc->label);
            capmem__free(runs);
            return CAPMEM_E_CORRUPT;
        }
        runs[k++] = (run_t){d->off, d->off + d->size};
    }
    qsort(runs, k, sizeof(*runs), cmp_run);
    uint64_t total = 0;
    for (size_t i = 0; i < k;) {
        uint64_t s = runs[i].off;
        uint64_t e = runs[i].end;
        for (i++; i < k && runs[i].off < e; i++) {
            e = runs[i].end > e ? runs[i].end : e;
        }
        total += e - s;
    }
    capmem__free(runs);
    *lent_bytes = total;
    return CAPMEM_OK;
}
