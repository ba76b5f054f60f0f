/* SPDX-License-Identifier: MIT */
/*
 * Layer 6: dataspaces and aliases, and the RAM checker.
 *
 * Page reference counts are kept per run: each first-class alias record is
 * one run, the original RAM dataspace covers all its pages while it lives,
 * and a page's count is the number of live runs covering it. The physical
 * allocator always holds, for each backing, the overlap-merged union of its
 * live runs as blocks; releasing a run frees its block and re-reserves the
 * parts other runs still cover. Lists are sorted in place (merge sort on
 * the record links), so no host memory is needed on these paths.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ram_internal.h"
#include "rm_hooks.h"

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
    }
    return "unknown";
}

/* ---- list helpers ----------------------------------------------------------- */

/* Unlink d from a NULL-terminated list whose head pointer is *head (or whose head is a record). */
static void list_unlink(capmem__ds_t **head, capmem__ds_t *d)
{
    if (d->prev != NULL) {
        d->prev->next = d->next;
    } else if (head != NULL) {
        *head = d->next;
    }
    if (d->next != NULL) {
        d->next->prev = d->prev;
    }
    d->next = d->prev = NULL;
}

static void list_push(capmem__ds_t **head, capmem__ds_t *d)
{
    d->prev = NULL;
    d->next = *head;
    if (*head != NULL) {
        (*head)->prev = d;
    }
    *head = d;
}

/* Merge sort by offset on the next links; prev links are rebuilt by the caller. */
static capmem__ds_t *sort_by_off(capmem__ds_t *h)
{
    if (h == NULL || h->next == NULL) {
        return h;
    }
    capmem__ds_t *slow = h;
    capmem__ds_t *fast = h->next;
    while (fast != NULL && fast->next != NULL) {
        slow = slow->next;
        fast = fast->next->next;
    }
    capmem__ds_t *b = slow->next;
    slow->next = NULL;
    capmem__ds_t *a = sort_by_off(h);
    b = sort_by_off(b);
    capmem__ds_t head = {0};
    capmem__ds_t *t = &head;
    while (a != NULL && b != NULL) {
        if (a->off <= b->off) {
            t->next = a;
            a = a->next;
        } else {
            t->next = b;
            b = b->next;
        }
        t = t->next;
    }
    t->next = a != NULL ? a : b;
    return head.next;
}

static void rebuild_prev(capmem__ds_t *first, capmem__ds_t *prev_of_first)
{
    capmem__ds_t *p = prev_of_first;
    for (capmem__ds_t *d = first; d != NULL; d = d->next) {
        d->prev = p;
        p = d;
    }
}

/* ---- page runs ------------------------------------------------------------- */

static void phys_reserve(capmem__ram_service_t *svc, uint64_t off, uint64_t size)
{
    capmem_err_t err = capmem_alloc_alloc_at(svc->phys, off, size);
    CAPMEM_ASSERT(err == CAPMEM_OK, "re-reserving pages that were just freed");
    (void)err;
}

static void phys_release(capmem__ram_service_t *svc, uint64_t off, uint64_t size)
{
    capmem_err_t err = capmem_alloc_free(svc->phys, off, size);
    CAPMEM_ASSERT(err == CAPMEM_OK, "each run's block is allocated exactly");
    (void)err;
}

/*
 * Reserve the overlap-merged components of the sorted runs in [first, stop)
 * (skipping @p skip) and return the bytes reserved.
 */
static uint64_t reserve_components(capmem__ram_service_t *svc, capmem__ds_t *first,
                                   capmem__ds_t *stop, const capmem__ds_t *skip)
{
    uint64_t kept = 0;
    uint64_t cs = 0;
    uint64_t ce = 0;
    bool open = false;
    for (capmem__ds_t *d = first; d != stop; d = d->next) {
        if (d == skip) {
            continue;
        }
        if (open && d->off < ce) {
            ce = d->off + d->size > ce ? d->off + d->size : ce;
            continue;
        }
        if (open) {
            phys_reserve(svc, cs, ce - cs);
            kept += ce - cs;
        }
        cs = d->off;
        ce = d->off + d->size;
        open = true;
    }
    if (open) {
        phys_reserve(svc, cs, ce - cs);
        kept += ce - cs;
    }
    return kept;
}

/*
 * The original RAM dataspace goes: free its block, keep what its
 * first-class aliases cover, and move them to the lender's lent list.
 */
static void release_original(capmem__ds_t *ds)
{
    capmem__account_t *acc = ds->owner;
    capmem__ram_service_t *svc = acc->svc;
    phys_release(svc, ds->off, ds->size);
    if (ds->next == NULL) {
        acc->used -= ds->size;
        return;
    }
    capmem__ds_t *first = sort_by_off(ds->next);
    uint64_t kept = reserve_components(svc, first, NULL, NULL);
    acc->used -= ds->size - kept;
    acc->lent += kept;
    for (capmem__ds_t *d = first; d != NULL;) {
        capmem__ds_t *next = d->next;
        d->flags |= CAPMEM__DS_LENT;
        list_push(&acc->lent_list, d);
        d = next;
    }
    ds->next = NULL;
}

/*
 * A first-class alias of a freed original goes: find the component of the
 * lender's runs that contains it, free that block and re-reserve what the
 * other runs in it still cover.
 */
static void release_lent(capmem__ds_t *a)
{
    capmem__account_t *lender = a->owner;
    CAPMEM_ASSERT(lender != NULL, "a lent alias always has a living lender (see pass_lent)");
    capmem__ram_service_t *svc = lender->svc;
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
    for (capmem__ds_t *d = first;; d = d->next) {
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
    phys_release(svc, found_lo, found_hi - found_lo);
    uint64_t kept = reserve_components(svc, found_start, found_stop, a);
    uint64_t released = (found_hi - found_lo) - kept;
    list_unlink(&lender->lent_list, a);
    lender->used -= released;
    lender->lent -= released;
}

void capmem__pass_lent(capmem__account_t *from, capmem__account_t *to)
{
    for (capmem__ds_t *d = from->lent_list; d != NULL;) {
        capmem__ds_t *next = d->next;
        d->owner = to;
        list_push(&to->lent_list, d);
        d = next;
    }
    to->used += from->lent;
    to->lent += from->lent;
    from->lent_list = NULL;
    from->used -= from->lent;
    from->lent = 0;
}

/* ---- teardown ---------------------------------------------------------------- */

static void ds_destroy(capmem_arena_t *arena, void *obj, capmem_cap_t handle)
{
    (void)handle;
    capmem__ds_t *ds = obj;
    capmem__rm_detach_all(arena, ds);
    switch (capmem__ds_kind(ds)) {
    case CAPMEM__DS_RAM:
        release_original(ds);
        break;
    case CAPMEM__DS_ALIAS_DEP:
        list_unlink(&ds->meta->account->dependents, ds);
        break;
    case CAPMEM__DS_ALIAS_FC:
        if (ds->flags & CAPMEM__DS_LENT) {
            release_lent(ds);
        } else {
            list_unlink(NULL, ds); /* from the original's ring; the head is a record */
        }
        break;
    default:
        capmem__rm_managed_destroy(arena, ds);
        break;
    }
    capmem__meta_free(ds->meta, ds);
}

static int ds_describe(capmem_arena_t *arena, const void *obj, char *buf, size_t len)
{
    const capmem__ds_t *ds = obj;
    (void)arena;
    return snprintf(buf, len, "%s dataspace of %llu bytes at offset 0x%llx",
                    capmem_ds_kind_name((capmem_ds_kind_t)capmem__ds_kind(ds)),
                    (unsigned long long)ds->size, (unsigned long long)ds->off);
}

const capmem__type_ops_t capmem__ds_type = {
    .type = CAPMEM_OBJ_DATASPACE,
    .name = "dataspace",
    .destroy = ds_destroy,
    .describe = ds_describe,
};

/* ---- public calls --------------------------------------------------------------- */

static int writable(const capmem__slot_t *s, const capmem__ds_t *ds)
{
    return (s->rights & CAPMEM_RIGHT_WRITE) && (ds->flags & CAPMEM__DS_WRITABLE);
}

capmem_err_t capmem_ds_info(capmem_arena_t *arena, capmem_cap_t ds, capmem_ds_info_t *info)
{
    if (arena == NULL || info == NULL) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, __func__, "arena or info is NULL");
    }
    CAPMEM__ENTER_OR_RETURN(arena);
    capmem__slot_t *s = NULL;
    capmem__ds_t *d = NULL;
    capmem_err_t err = capmem__ds_lookup(arena, ds, 0, __func__, &s, &d);
    if (err == CAPMEM_OK) {
        memset(info, 0, sizeof(*info));
        info->kind = (capmem_ds_kind_t)capmem__ds_kind(d);
        info->size = d->size;
        if (info->kind != CAPMEM_DS_MANAGED) {
            info->offset = d->off;
            info->phys = arena->mem.phys_base + d->off;
        }
        info->writable = writable(s, d);
        info->rights = s->rights;
    }
    CAPMEM__LEAVE(arena);
    return err;
}

static capmem_err_t access(capmem_arena_t *arena, capmem_cap_t ds, uint64_t offset, void *buf,
                           size_t len, int write, const char *func)
{
    if (arena == NULL || buf == NULL) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, func, "arena or buf is NULL");
    }
    CAPMEM__ENTER_AS_OR_RETURN(arena, func);
    capmem__slot_t *s = NULL;
    capmem__ds_t *d = NULL;
    capmem_err_t err =
        capmem__ds_lookup(arena, ds, write ? CAPMEM_RIGHT_WRITE : CAPMEM_RIGHT_READ, func, &s, &d);
    uint64_t end;
    if (err == CAPMEM_OK && write && !(d->flags & CAPMEM__DS_WRITABLE)) {
        err = capmem__fail(CAPMEM_E_DENIED, func, "the dataspace is read-only");
    }
    if (err == CAPMEM_OK && (!capmem__add_ok(offset, len, &end) || end > d->size)) {
        err = capmem__fail(CAPMEM_E_INVALID_ARGS, func,
                           "access 0x%llx+0x%zx is outside the 0x%llx-byte dataspace",
                           (unsigned long long)offset, len, (unsigned long long)d->size);
        capmem__detail()->address = offset;
    }
    if (err == CAPMEM_OK) {
        if (capmem__ds_kind(d) == CAPMEM__DS_MANAGED) {
            /*
             * This may run fault handlers, which may free d itself: d must
             * not be touched after the call.
             */
            err = capmem__rm_managed_access(arena, d, offset, buf, len, write, func);
        } else if (write) {
            memcpy(capmem__bytes(&arena->mem, d->off + offset), buf, len);
        } else {
            memcpy(buf, capmem__bytes(&arena->mem, d->off + offset), len);
        }
    }
    CAPMEM__LEAVE(arena);
    return err;
}

capmem_err_t capmem_ds_read(capmem_arena_t *arena, capmem_cap_t ds, uint64_t offset, void *buf,
                            size_t len)
{
    return access(arena, ds, offset, buf, len, 0, __func__);
}

capmem_err_t capmem_ds_write(capmem_arena_t *arena, capmem_cap_t ds, uint64_t offset,
                             const void *buf, size_t len)
{
    return access(arena, ds, offset, (void *)(uintptr_t)buf, len, 1, __func__);
}

/*
 * Where a new first-class alias of @p src shares pages: the RAM dataspace
 * whose ring it joins (*head), or, when the original is already freed, no
 * ring (*head NULL) and the lender's lent list. A dependent alias shares
 * the pages of its base (src->owner: the RAM dataspace or first-class alias
 * it was made from, which outlives it).
 */
static void share_point(capmem__ds_t *src, capmem__ds_t **head, capmem__account_t **lender)
{
    capmem__ds_t *b = capmem__ds_kind(src) == CAPMEM__DS_ALIAS_DEP ? src->owner : src;
    if (capmem__ds_kind(b) == CAPMEM__DS_ALIAS_FC && (b->flags & CAPMEM__DS_LENT)) {
        *head = NULL;
        *lender = b->owner;
        return;
    }
    while (capmem__ds_kind(b) != CAPMEM__DS_RAM) {
        b = b->prev; /* first-class aliases in a ring lead back to their RAM head */
    }
    *head = b;
    *lender = b->owner;
}

capmem_err_t capmem_ds_alias(capmem_arena_t *arena, capmem_cap_t session, capmem_cap_t ds,
                             const capmem_alias_attr_t *attr, capmem_cap_t *out)
{
    const char *fn = __func__;
    if (arena == NULL || attr == NULL || out == NULL) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, fn, "arena, attr or out is NULL");
    }
    if (attr->lifetime != CAPMEM_ALIAS_DEPENDENT && attr->lifetime != CAPMEM_ALIAS_FIRST_CLASS) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, fn, "unknown lifetime %d", (int)attr->lifetime);
    }
    CAPMEM__ENTER_OR_RETURN(arena);
    capmem__account_t *acc = NULL;
    capmem__slot_t *s = NULL;
    capmem__ds_t *src = NULL;
    uint64_t size = attr->size;
    uint64_t end = 0;
    capmem_err_t err = capmem__account_lookup(arena, session, CAPMEM_RIGHT_WRITE, fn, &acc);
    if (err == CAPMEM_OK) {
        err = capmem__ds_lookup(arena, ds, CAPMEM_RIGHT_GRANT, fn, &s, &src);
    }
    if (err == CAPMEM_OK && capmem__ds_kind(src) == CAPMEM__DS_MANAGED) {
        err = capmem__fail(CAPMEM_E_WRONG_TYPE, fn, "a managed dataspace cannot be aliased");
    }
    if (err == CAPMEM_OK) {
        if (size == 0 && attr->offset < src->size) {
            size = src->size - attr->offset;
        }
        if (size == 0 || !capmem__is_aligned(attr->offset, arena->mem.page_size) ||
            !capmem__is_aligned(size, arena->mem.page_size) ||
            !capmem__add_ok(attr->offset, size, &end) || end > src->size) {
            err = capmem__fail(CAPMEM_E_INVALID_ARGS, fn,
                               "alias 0x%llx+0x%llx of a 0x%llx-byte dataspace is empty, "
                               "misaligned or out of range",
                               (unsigned long long)attr->offset, (unsigned long long)attr->size,
                               (unsigned long long)src->size);
            capmem__detail()->address = attr->offset;
        }
    }
    if (err == CAPMEM_OK && attr->writable && !writable(s, src)) {
        err = capmem__fail(CAPMEM_E_DENIED, fn,
                           "a writable alias of a read-only dataspace or capability");
    }
    if (err == CAPMEM_OK) {
        err = capmem__cap_reserve_check(arena, &acc->caps, 1);
    }
    if (err == CAPMEM_OK) {
        err = capmem__meta_reserve(arena, &acc->meta, acc, session, acc->label, 1, fn);
    }
    if (err == CAPMEM_OK) {
        capmem__ds_t *rec = NULL;
        err = capmem__meta_alloc(&acc->meta, fn, (void **)&rec);
        CAPMEM_ASSERT(err == CAPMEM_OK, "room was made above");
        rec->meta = &acc->meta;
        rec->off = src->off + attr->offset;
        rec->size = size;
        unsigned rights = s->rights;
        if (!attr->writable) {
            rights &= ~(unsigned)CAPMEM_RIGHT_WRITE;
        }
        rec->flags = attr->writable ? CAPMEM__DS_WRITABLE : 0;
        uint32_t parent;
        if (attr->lifetime == CAPMEM_ALIAS_DEPENDENT) {
            rec->flags |= CAPMEM__DS_ALIAS_DEP;
            /* Its base: the RAM dataspace or first-class alias whose pages it shows. */
            rec->owner = capmem__ds_kind(src) == CAPMEM__DS_ALIAS_DEP ? src->owner : src;
            list_push(&acc->dependents, rec);
            parent = capmem__cap_index(ds);
        } else {
            rec->flags |= CAPMEM__DS_ALIAS_FC;
            capmem__ds_t *head = NULL;
            capmem__account_t *lender = NULL;
            share_point(src, &head, &lender);
            rec->owner = lender;
            if (head != NULL) {
                rec->prev = head;
                rec->next = head->next;
                if (head->next != NULL) {
                    head->next->prev = rec;
                }
                head->next = rec;
            } else {
                /* The original is gone: the pages are already lent, join the lent list. */
                rec->flags |= CAPMEM__DS_LENT;
                list_push(&lender->lent_list, rec);
            }
            parent = acc->slot;
        }
        *out = capmem__cap_create(arena, CAPMEM_OBJ_DATASPACE, rec, rights, CAPMEM__SLOT_ORIGINAL,
                                  parent, &acc->caps);
        rec->slot = capmem__cap_index(*out);
    }
    CAPMEM__LEAVE(arena);
    return err;
}

capmem_err_t capmem_ds_free(capmem_arena_t *arena, capmem_cap_t ds)
{
    if (arena == NULL) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, __func__, "arena is NULL");
    }
    CAPMEM__ENTER_OR_RETURN(arena);
    capmem__slot_t *s = NULL;
    capmem__ds_t *d = NULL;
    /*
     * Freeing takes the original capability, not a right: a read-only alias
     * has no WRITE, yet whoever made it can free it.
     */
    capmem_err_t err = capmem__ds_lookup(arena, ds, 0, __func__, &s, &d);
    if (err == CAPMEM_OK && !(s->flags & CAPMEM__SLOT_ORIGINAL)) {
        err = capmem__fail(CAPMEM_E_INVALID_ARGS, __func__,
                           "free needs the dataspace's original capability, not a copy");
    }
    if (err == CAPMEM_OK && capmem__ds_kind(d) == CAPMEM__DS_MANAGED) {
        err = capmem__fail(CAPMEM_E_WRONG_TYPE, __func__,
                           "a managed dataspace goes with its region map");
    }
    if (err == CAPMEM_OK) {
        uint32_t idx = capmem__cap_index(ds);
        capmem__cap_revoke_index(arena, idx);
        capmem__cap_delete_leaf(arena, idx);
    }
    CAPMEM__LEAVE(arena);
    return err;
}

/* ---- the RAM checker ----------------------------------------------------------- */

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

/* Bytes covered by the overlap-merged union of an account's lent runs. */
static capmem_err_t lent_bytes(const capmem__account_t *acc, uint64_t *out, char *why, size_t len)
{
    size_t n = 0;
    for (const capmem__ds_t *d = acc->lent_list; d != NULL; d = d->next) {
        n++;
    }
    run_t *runs = capmem__malloc((n + 1) * sizeof(*runs));
    if (runs == NULL) {
        snprintf(why, len, "RAM check: no host memory");
        return CAPMEM_E_HOST_NOMEM;
    }
    size_t k = 0;
    for (const capmem__ds_t *d = acc->lent_list; d != NULL; d = d->next) {
        if (capmem__ds_kind(d) != CAPMEM__DS_ALIAS_FC || !(d->flags & CAPMEM__DS_LENT) ||
            d->owner != acc) {
            snprintf(why, len,
                     "account \"%s\": its lent list holds a record that is not its "
                     "lent first-class alias",
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
    *out = total;
    return CAPMEM_OK;
}

static uint64_t chunk_count(const capmem__meta_t *m)
{
    uint64_t n = 0;
    for (const uint8_t *c = m->chunks; c != NULL; c = ((const capmem__chunk_t *)c)->next) {
        n++;
    }
    return n;
}

capmem_err_t capmem__meta_check(capmem_arena_t *arena, const capmem__meta_t *m, const char *who,
                                uint64_t records, uint64_t session_slots, char *why, size_t len)
{
    uint64_t bytes = 0;
    for (const uint8_t *c = m->chunks; c != NULL; c = ((const capmem__chunk_t *)c)->next) {
        bytes += ((const capmem__chunk_t *)c)->size;
    }
    if (bytes != m->donation || m->capacity * CAPMEM__REC != m->donation) {
        snprintf(why, len, "%s: donation %llu does not match its chunks (%llu bytes, %llu slots)",
                 who, (unsigned long long)m->donation, (unsigned long long)bytes,
                 (unsigned long long)m->capacity);
        return CAPMEM_E_CORRUPT;
    }
    uint64_t expect = chunk_count(m) + session_slots + records + capmem__rm_records_in(arena, m);
    if (m->used != expect || m->used > m->capacity) {
        snprintf(why, len,
                 "%s: %llu metadata slots in use, but %llu chunk headers + %llu session slots "
                 "+ %llu live records exist (capacity %llu)",
                 who, (unsigned long long)m->used, (unsigned long long)chunk_count(m),
                 (unsigned long long)session_slots, (unsigned long long)(expect - session_slots),
                 (unsigned long long)m->capacity);
        return CAPMEM_E_CORRUPT;
    }
    return CAPMEM_OK;
}

/* Live records paid from @p m: dataspace originals whose record it holds. */
uint64_t capmem__ds_records_in(capmem_arena_t *arena, const capmem__meta_t *m, uint64_t *ram_bytes)
{
    capmem__cspace_t *cs = &arena->cspace;
    uint64_t n = 0;
    for (uint32_t i = 1; i < cs->high; i++) {
        const capmem__slot_t *s = &cs->slots[i];
        if (s->type != CAPMEM_OBJ_DATASPACE || !(s->flags & CAPMEM__SLOT_ORIGINAL)) {
            continue;
        }
        const capmem__ds_t *d = s->obj;
        if (d->meta == m) {
            n++;
        }
        if (ram_bytes != NULL && capmem__ds_kind(d) == CAPMEM__DS_RAM && d->owner == m->account) {
            *ram_bytes += d->size;
        }
    }
    return n;
}

capmem_err_t capmem__ram_check(capmem_arena_t *arena, char *why, size_t len)
{
    capmem__ram_state_t *st = capmem__ram_state(arena);
    capmem__cspace_t *cs = &arena->cspace;
    capmem_err_t err = CAPMEM_OK;
    for (capmem__ram_service_t *svc = st->services; svc != NULL && err == CAPMEM_OK;
         svc = svc->next_svc) {
        if (!svc->alive) {
            continue; /* closed: only its pools remain, checked by the untyped layer */
        }
        uint64_t quota_sum = capmem__rm_donations(arena, svc);
        uint64_t phys_expect = capmem__rm_donations(arena, svc);
        for (uint32_t i = 1; i < cs->high && err == CAPMEM_OK; i++) {
            const capmem__slot_t *s = &cs->slots[i];
            if (s->type != CAPMEM_OBJ_RAM_SESSION || !(s->flags & CAPMEM__SLOT_ORIGINAL)) {
                continue;
            }
            const capmem__account_t *acc = s->obj;
            if (acc->svc != svc) {
                continue;
            }
            quota_sum += acc->quota + acc->meta.donation;
            uint64_t deps = 0;
            for (const capmem__ds_t *d = acc->dependents; d != NULL && err == CAPMEM_OK;
                 d = d->next) {
                if (capmem__ds_kind(d) != CAPMEM__DS_ALIAS_DEP || d->meta != &acc->meta ||
                    ++deps > acc->meta.used) {
                    snprintf(why, len,
                             "account \"%s\": its dependents list holds a record that is not "
                             "a dependent alias it paid for",
                             acc->label);
                    err = CAPMEM_E_CORRUPT;
                }
            }
            if (err != CAPMEM_OK) {
                break;
            }
            uint64_t own = 0;
            uint64_t lent = 0;
            uint64_t recs = capmem__ds_records_in(arena, &acc->meta, &own);
            err = lent_bytes(acc, &lent, why, len);
            if (err != CAPMEM_OK) {
                break;
            }
            if (acc->used > acc->quota || acc->lent > acc->used) {
                snprintf(why, len, "account \"%s\": used %llu exceeds quota %llu or lent %llu",
                         acc->label, (unsigned long long)acc->used, (unsigned long long)acc->quota,
                         (unsigned long long)acc->lent);
                err = CAPMEM_E_CORRUPT;
            } else if (acc->used != own + lent || acc->lent != lent) {
                snprintf(why, len,
                         "account \"%s\": charged %llu (lent %llu), but holds %llu bytes of "
                         "dataspaces and %llu bytes of lent pages",
                         acc->label, (unsigned long long)acc->used, (unsigned long long)acc->lent,
                         (unsigned long long)own, (unsigned long long)lent);
                err = CAPMEM_E_CORRUPT;
            } else if (acc->caps.used > acc->caps.limit && acc->ref != NULL) {
                snprintf(why, len, "account \"%s\": %llu capabilities charged, quota %llu",
                         acc->label, (unsigned long long)acc->caps.used,
                         (unsigned long long)acc->caps.limit);
                err = CAPMEM_E_CORRUPT;
            } else {
                err = capmem__meta_check(arena, &acc->meta, acc->label, recs,
                                         CAPMEM_RAM_SESSION_SLOTS, why, len);
            }
            phys_expect += acc->meta.donation + own + lent;
        }
        if (err != CAPMEM_OK) {
            break;
        }
        if (quota_sum != svc->total) {
            snprintf(why, len,
                     "conservation broken: accounts' quota + donations = %llu, the service has "
                     "%llu bytes of RAM",
                     (unsigned long long)quota_sum, (unsigned long long)svc->total);
            err = CAPMEM_E_CORRUPT;
            break;
        }
        uint64_t in_use = svc->total - capmem_alloc_avail(svc->phys);
        if (in_use != phys_expect) {
            snprintf(why, len,
                     "exclusivity broken: %llu bytes of physical memory reserved, but "
                     "donations, dataspaces and lent pages account for %llu",
                     (unsigned long long)in_use, (unsigned long long)phys_expect);
            err = CAPMEM_E_CORRUPT;
            break;
        }
        char sub[160];
        if (capmem_alloc_check(svc->phys, sub, sizeof(sub)) != CAPMEM_OK) {
            snprintf(why, len, "RAM service physical allocator: %s", sub);
            err = CAPMEM_E_CORRUPT;
        }
    }
    return err;
}
