/* SPDX-License-Identifier: MIT */
/*
 * Layer 5, the RAM service's sessions (ram_internal.h): accounts opened and
 * closed Genode-style with a donation, quota moved between an account and
 * its reference account, upgrades, and RAM dataspaces made (the service is
 * their factory; dataspace.c frees them). Every mutating call decodes into
 * a plan, then commits in a step that cannot fail.
 */
#include <stdio.h>
#include <string.h>

#include "ram_internal.h"

/* ---- accounts ------------------------------------------------------------------ */

typedef struct open_plan {
    capmem__account_t *parent;
    uint64_t need; /* donation + quota */
    uint64_t off;  /* the donation's physical range, reserved last in decode */
} open_plan_t;

static capmem_err_t decode_open(capmem_arena_t *arena, capmem_cap_t parent,
                                const capmem_ram_open_attr_t *at, open_plan_t *p)
{
    capmem_err_t err = capmem__ram_check_step(arena, at->donation, "donation");
    if (err != CAPMEM_OK) {
        return err;
    }
    if (at->donation < capmem__ram_min_donation(arena)) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, NULL,
                            "a donation of %llu bytes cannot hold the session record (minimum "
                            "%llu)",
                            (unsigned long long)at->donation,
                            (unsigned long long)capmem__ram_min_donation(arena));
    }
    err = capmem__ram_check_step(arena, at->upgrade_step, "upgrade step");
    if (err != CAPMEM_OK) {
        return err;
    }
    if (!capmem__add_ok(at->donation, at->quota, &p->need)) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, NULL, "donation + quota overflows");
    }
    err = capmem__account_lookup(arena, parent, CAPMEM_RIGHT_WRITE, &p->parent);
    if (err != CAPMEM_OK) {
        return err;
    }
    capmem__account_t *pa = p->parent;
    if (!capmem__quota_can(&pa->ram, p->need)) {
        return capmem__fail_space(CAPMEM_E_OUT_OF_RAM, NULL, p->need, capmem__quota_avail(&pa->ram),
                                  "opening a session needs %llu bytes (donation %llu + quota "
                                  "%llu), the parent has %llu available",
                                  (unsigned long long)p->need, (unsigned long long)at->donation,
                                  (unsigned long long)at->quota,
                                  (unsigned long long)capmem__quota_avail(&pa->ram));
    }
    /* The child's capability quota, and one capability more for its own. */
    if (at->caps == UINT64_MAX || !capmem__quota_can(&pa->caps, at->caps + 1)) {
        return capmem__fail_space(CAPMEM_E_OUT_OF_CAPS, NULL, at->caps + 1,
                                  capmem__quota_avail(&pa->caps),
                                  "the parent's capability quota cannot pay %llu capabilities",
                                  (unsigned long long)(at->caps + 1));
    }
    err = capmem__cap_reserve_check(arena, &pa->caps, 1);
    if (err != CAPMEM_OK) {
        return err;
    }
    /* Last, so nothing needs undoing: the donation's physical range. */
    return capmem__meta_reserve(pa->phys, at->donation, arena->mem.page_size,
                                "the session's donation", &p->off);
}

static capmem_cap_t invoke_open(capmem_arena_t *arena, const capmem_ram_open_attr_t *at,
                                const open_plan_t *p)
{
    capmem__account_t *pa = p->parent;
    capmem__account_t *acc =
        capmem__ram_account_init(arena, pa->phys, p->off, at->donation, at->label);
    acc->ref = pa;
    acc->ram.limit = at->quota;
    acc->flags = at->flags;
    acc->upgrade_step = at->upgrade_step;
    pa->ram.limit -= p->need;
    capmem__quota_transfer(&pa->caps, &acc->caps, at->caps);
    pa->sessions++;
    const capmem_cap_t h = capmem__cap_create(arena, CAPMEM_OBJ_RAM_SESSION, acc, CAPMEM_RIGHTS_ALL,
                                              CAPMEM__SLOT_ORIGINAL, pa->slot, &pa->caps);
    acc->slot = capmem__cap_index(h);
    if (capmem__event_wanted(arena, CAPMEM_EVENT_DONATE)) {
        capmem__emit(arena,
                     &(capmem__ev_t){.kind = CAPMEM_EVENT_DONATE,
                                     .cap = h,
                                     .other = capmem__slot_handle(&arena->cspace, pa->slot),
                                     .a = at->donation,
                                     .b = at->quota},
                     "session \"%s\" opened by \"%s\": donation %llu, quota %llu", acc->label,
                     pa->label, (unsigned long long)at->donation, (unsigned long long)at->quota);
    }
    return h;
}

capmem_err_t capmem_ram_open(capmem_arena_t *arena, capmem_cap_t parent,
                             const capmem_ram_open_attr_t *attr, capmem_cap_t *out)
{
    static const capmem_ram_open_attr_t defaults = CAPMEM_RAM_OPEN_ATTR_INIT;
    const capmem_ram_open_attr_t *at = attr != NULL ? attr : &defaults;
    if (arena == NULL || out == NULL) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, __func__, "arena or out is NULL");
    }
    if ((at->flags & ~(uint32_t)CAPMEM_RAM_EXPANDING) != 0) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, __func__, "unknown flags 0x%x", at->flags);
    }
    CAPMEM__ENTER_OR_RETURN(arena);
    open_plan_t plan;
    capmem_err_t err = decode_open(arena, parent, at, &plan);
    if (err == CAPMEM_OK) {
        *out = invoke_open(arena, at, &plan);
    }
    CAPMEM__LEAVE(arena);
    return err;
}

static capmem_err_t decode_close(capmem_arena_t *arena, capmem_cap_t account,
                                 capmem__account_t **acc)
{
    capmem_err_t err = capmem__account_lookup(arena, account, CAPMEM_RIGHT_WRITE, acc);
    if (err != CAPMEM_OK) {
        return err;
    }
    err = capmem__cap_require_original(capmem__slot(&arena->cspace, capmem__cap_index(account)),
                                       "close", "account");
    if (err != CAPMEM_OK) {
        return err;
    }
    if ((*acc)->ref == NULL && (*acc)->sessions != 0) {
        return capmem__fail(CAPMEM_E_DELETE_FIRST, NULL,
                            "the root account has %u child sessions: close them first",
                            (*acc)->sessions);
    }
    return CAPMEM_OK;
}

capmem_err_t capmem_ram_close(capmem_arena_t *arena, capmem_cap_t account)
{
    if (arena == NULL) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, __func__, "arena is NULL");
    }
    CAPMEM__ENTER_OR_RETURN(arena);
    capmem__account_t *acc = NULL;
    capmem_err_t err = decode_close(arena, account, &acc);
    if (err == CAPMEM_OK) {
        capmem__cap_revoke_index(arena, acc->slot);
        capmem__cap_delete_leaf(arena, acc->slot);
    }
    CAPMEM__LEAVE(arena);
    return err;
}

/*
 * Quota moves between an account and its reference account only, in both
 * directions. @p caps selects the capability quota instead of the RAM one.
 */
static capmem_err_t transfer(capmem_arena_t *arena, capmem_cap_t from, capmem_cap_t to, uint64_t n,
                             bool caps)
{
    capmem__account_t *a = NULL;
    capmem__account_t *b = NULL;
    capmem_err_t err = capmem__account_lookup(arena, from, CAPMEM_RIGHT_WRITE, &a);
    if (err == CAPMEM_OK) {
        err = capmem__account_lookup(arena, to, 0, &b);
    }
    if (err != CAPMEM_OK) {
        return err;
    }
    if (a == b) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, NULL, "transfer from an account to itself");
    }
    if (a->ref != b && b->ref != a) {
        return capmem__fail(CAPMEM_E_DENIED, NULL,
                            "\"%s\" and \"%s\" are not account and reference account", a->label,
                            b->label);
    }
    capmem__quota_t *qa = caps ? &a->caps : &a->ram;
    capmem__quota_t *qb = caps ? &b->caps : &b->ram;
    if (!capmem__quota_can(qa, n)) {
        return capmem__fail_space(caps ? CAPMEM_E_OUT_OF_CAPS : CAPMEM_E_OUT_OF_RAM, NULL, n,
                                  capmem__quota_avail(qa),
                                  "\"%s\" has %llu %s available, %llu asked", a->label,
                                  (unsigned long long)capmem__quota_avail(qa),
                                  caps ? "capabilities" : "bytes", (unsigned long long)n);
    }
    capmem__quota_transfer(qa, qb, n);
    const capmem_event_kind_t kind = caps ? CAPMEM_EVENT_TRANSFER_CAPS : CAPMEM_EVENT_TRANSFER;
    if (capmem__event_wanted(arena, kind)) {
        capmem__emit(arena, &(capmem__ev_t){.kind = kind, .cap = from, .other = to, .a = n},
                     "transfer %llu %s from \"%s\" to \"%s\"", (unsigned long long)n,
                     caps ? "capabilities" : "bytes", a->label, b->label);
    }
    return CAPMEM_OK;
}

capmem_err_t capmem_ram_transfer(capmem_arena_t *arena, capmem_cap_t from, capmem_cap_t to,
                                 uint64_t bytes)
{
    if (arena == NULL || bytes == 0) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, __func__, "arena is NULL or bytes is 0");
    }
    CAPMEM__ENTER_OR_RETURN(arena);
    capmem_err_t err = transfer(arena, from, to, bytes, false);
    CAPMEM__LEAVE(arena);
    return err;
}

capmem_err_t capmem_ram_transfer_caps(capmem_arena_t *arena, capmem_cap_t from, capmem_cap_t to,
                                      uint64_t count)
{
    if (arena == NULL || count == 0) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, __func__, "arena is NULL or count is 0");
    }
    CAPMEM__ENTER_OR_RETURN(arena);
    capmem_err_t err = transfer(arena, from, to, count, true);
    CAPMEM__LEAVE(arena);
    return err;
}

static capmem_err_t decode_upgrade(capmem_arena_t *arena, capmem_cap_t session, capmem_cap_t payer,
                                   uint64_t bytes, capmem__account_t **acc, capmem__account_t **pay)
{
    capmem_err_t err = capmem__ram_check_step(arena, bytes, "upgrade");
    if (err == CAPMEM_OK) {
        err = capmem__account_lookup(arena, payer, CAPMEM_RIGHT_WRITE, pay);
    }
    if (err == CAPMEM_OK) {
        err = capmem__account_lookup(arena, session, 0, acc);
    }
    if (err == CAPMEM_OK && *acc != *pay && (*acc)->ref != *pay) {
        err = capmem__fail(CAPMEM_E_DENIED, NULL,
                           "\"%s\" can only be upgraded by itself or its reference account",
                           (*acc)->label);
    }
    return err;
}

capmem_err_t capmem_ram_upgrade(capmem_arena_t *arena, capmem_cap_t session, capmem_cap_t payer,
                                uint64_t bytes)
{
    if (arena == NULL) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, __func__, "arena is NULL");
    }
    CAPMEM__ENTER_OR_RETURN(arena);
    capmem__account_t *acc = NULL;
    capmem__account_t *pay = NULL;
    capmem_err_t err = decode_upgrade(arena, session, payer, bytes, &acc, &pay);
    if (err == CAPMEM_OK) {
        /* Quota, then the physical range: the chunk is taken only if both are there. */
        err = capmem__account_upgrade(arena, &acc->meta, pay, session, acc->label, bytes);
    }
    CAPMEM__LEAVE(arena);
    return err;
}

capmem_err_t capmem_ram_set_expanding(capmem_arena_t *arena, capmem_cap_t account, bool on,
                                      uint64_t step)
{
    if (arena == NULL) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, __func__, "arena is NULL");
    }
    CAPMEM__ENTER_OR_RETURN(arena);
    capmem__account_t *acc = NULL;
    capmem_err_t err = CAPMEM_OK;
    if (step != 0) {
        err = capmem__ram_check_step(arena, step, "upgrade step");
    }
    if (err == CAPMEM_OK) {
        err = capmem__account_lookup(arena, account, CAPMEM_RIGHT_WRITE, &acc);
    }
    if (err == CAPMEM_OK) {
        acc->flags =
            on ? acc->flags | CAPMEM_RAM_EXPANDING : acc->flags & ~(uint32_t)CAPMEM_RAM_EXPANDING;
        if (step != 0) {
            acc->upgrade_step = step;
        }
        if (capmem__event_wanted(arena, CAPMEM_EVENT_SET_EXPANDING)) {
            capmem__emit(arena,
                         &(capmem__ev_t){.kind = CAPMEM_EVENT_SET_EXPANDING,
                                         .cap = capmem__account_handle(arena, acc),
                                         .a = on ? 1u : 0u,
                                         .b = acc->upgrade_step},
                         "\"%s\" %s (upgrade step %llu bytes)", acc->label,
                         on ? "expands its donation when it runs out of records"
                            : "does not expand its donation",
                         (unsigned long long)acc->upgrade_step);
        }
    }
    CAPMEM__LEAVE(arena);
    return err;
}

void capmem__ram_fill_info(const capmem_arena_t *arena, const capmem__account_t *acc,
                           capmem_ram_info_t *info)
{
    memset(info, 0, sizeof(*info));
    info->ref = acc->ref != NULL ? capmem__account_handle(arena, acc->ref) : CAPMEM_CAP_NULL;
    info->quota = acc->ram.limit;
    info->used = acc->ram.used;
    info->avail = capmem__quota_avail(&acc->ram);
    info->lent = acc->lent;
    info->donation = acc->meta.donation;
    info->records_used = acc->meta.used;
    info->records_capacity = capmem__meta_capacity(&acc->meta);
    info->caps_limit = acc->caps.limit;
    info->caps_used = acc->caps.used;
    info->upgrade_step = acc->upgrade_step;
    info->upgrades = acc->upgrades;
    info->expanding = (acc->flags & CAPMEM_RAM_EXPANDING) != 0;
    info->is_root = acc->ref == NULL;
    snprintf(info->label, sizeof(info->label), "%s", acc->label);
}

capmem_err_t capmem_ram_info(capmem_arena_t *arena, capmem_cap_t account, capmem_ram_info_t *info)
{
    if (arena == NULL || info == NULL) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, __func__, "arena or info is NULL");
    }
    CAPMEM__ENTER_OR_RETURN(arena);
    capmem__account_t *acc = NULL;
    capmem_err_t err = capmem__account_lookup(arena, account, 0, &acc);
    if (err == CAPMEM_OK) {
        capmem__ram_fill_info(arena, acc, info);
    }
    CAPMEM__LEAVE(arena);
    return err;
}

/* ---- RAM dataspaces: the factory -------------------------------------------------- */

typedef struct alloc_plan {
    capmem__account_t *acc;
    uint64_t bytes;
    uint64_t off; /* the physical range, taken in decode */
} alloc_plan_t;

static capmem_err_t decode_alloc(capmem_arena_t *arena, capmem_cap_t account, alloc_plan_t *p)
{
    capmem_err_t err = capmem__account_lookup(arena, account, CAPMEM_RIGHT_WRITE, &p->acc);
    if (err != CAPMEM_OK) {
        return err;
    }
    capmem__account_t *acc = p->acc;
    err = capmem__account_can_pay(acc, p->bytes, "the dataspace");
    if (err != CAPMEM_OK) {
        return err;
    }
    err = capmem__cap_reserve_check(arena, &acc->caps, 1);
    if (err != CAPMEM_OK) {
        return err;
    }
    if (!capmem__meta_has_room(&acc->meta, 1)) {
        /* Do not upgrade for a dataspace that could not be placed anyway. */
        err = capmem__ram_phys_check(acc->phys, p->bytes, "the dataspace");
        if (err != CAPMEM_OK) {
            return err;
        }
        /* An expanding client upgrades only with quota to spare for the dataspace too. */
        const bool expanding = (acc->flags & CAPMEM_RAM_EXPANDING) != 0;
        if (expanding && !capmem__quota_can(&acc->ram, p->bytes + acc->upgrade_step)) {
            return capmem__fail_space(CAPMEM_E_OUT_OF_RAM, NULL, p->bytes + acc->upgrade_step,
                                      capmem__quota_avail(&acc->ram),
                                      "\"%s\" cannot pay an upgrade of %llu bytes and the "
                                      "dataspace",
                                      acc->label, (unsigned long long)acc->upgrade_step);
        }
        err = capmem__account_make_room(arena, &acc->meta, acc, expanding, acc->upgrade_step,
                                        account, acc->label, 1);
        if (err != CAPMEM_OK) {
            return err;
        }
    }
    /*
     * The physical range is the last thing that can fail, so it is taken
     * here, in decode, and nothing needs undoing if it is not there.
     */
    return capmem__meta_reserve(acc->phys, p->bytes, arena->mem.page_size, "the dataspace",
                                &p->off);
}

static capmem_cap_t invoke_alloc(capmem_arena_t *arena, const alloc_plan_t *p)
{
    capmem__ds_t *rec = NULL;
    capmem_err_t err = capmem__meta_alloc(arena, &p->acc->meta, (void **)&rec);
    CAPMEM_ASSERT(err == CAPMEM_OK, "room was made in decode");
    (void)err;
    capmem__backing_zero(&arena->mem, p->off, p->bytes);
    const capmem_cap_t h = capmem__ds_make_ram(arena, p->acc, rec, p->off, p->bytes);
    capmem__stat_add(&arena->stats.dataspaces, 1);
    if (capmem__event_wanted(arena, CAPMEM_EVENT_DS_ALLOC)) {
        capmem__emit(arena,
                     &(capmem__ev_t){.kind = CAPMEM_EVENT_DS_ALLOC,
                                     .cap = h,
                                     .other = capmem__slot_handle(&arena->cspace, p->acc->slot),
                                     .a = p->bytes,
                                     .offset = p->off,
                                     .size = p->bytes},
                     "allocate a dataspace of %llu bytes at offset 0x%llx for \"%s\"",
                     (unsigned long long)p->bytes, (unsigned long long)p->off, p->acc->label);
    }
    return h;
}

capmem_err_t capmem_ram_alloc(capmem_arena_t *arena, capmem_cap_t account, uint64_t size,
                              capmem_cap_t *ds)
{
    if (arena == NULL || ds == NULL || size == 0) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, __func__, "arena or ds is NULL, or size is 0");
    }
    alloc_plan_t plan = {0};
    if (!capmem__align_up_ok(size, arena->mem.page_size, &plan.bytes)) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, __func__, "size %llu overflows when rounded up",
                            (unsigned long long)size);
    }
    CAPMEM__ENTER_OR_RETURN(arena);
    capmem_err_t err = decode_alloc(arena, account, &plan);
    if (err == CAPMEM_OK) {
        *ds = invoke_alloc(arena, &plan);
    }
    CAPMEM__LEAVE(arena);
    return err;
}

/* ---- the physical map -------------------------------------------------------------- */

typedef struct map_walk {
    uint64_t phys_base;
    capmem_ram_map_fn fn;
    void *ctx;
} map_walk_t;

static int map_visit(uint64_t offset, uint64_t size, capmem_block_state_t state, void *ctx)
{
    map_walk_t *w = ctx;
    return w->fn(w->phys_base + offset, size, state == CAPMEM_BLOCK_USED, w->ctx);
}

capmem_err_t capmem_ram_map(capmem_arena_t *arena, capmem_cap_t account, capmem_ram_map_fn fn,
                            void *ctx)
{
    if (arena == NULL || fn == NULL) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, __func__, "arena or fn is NULL");
    }
    CAPMEM__ENTER_OR_RETURN(arena);
    capmem__account_t *acc = NULL;
    capmem_err_t err = capmem__account_lookup(arena, account, 0, &acc);
    if (err == CAPMEM_OK) {
        map_walk_t w = {.phys_base = arena->mem.phys_base, .fn = fn, .ctx = ctx};
        err = capmem_alloc_walk(acc->phys, map_visit, &w);
    }
    CAPMEM__LEAVE(arena);
    return err;
}
