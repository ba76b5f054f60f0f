/* SPDX-License-Identifier: MIT */
/*
 * Layer 5: the RAM service, after Genode's. A service claims untypeds as
 * its pools; its root account holds all their RAM; accounts open sessions
 * with a donation that really pays for the service's records (ram_session.c
 * opens them, transfers quota and makes RAM dataspaces); this file makes and
 * destroys services, tears accounts down, and checks conservation.
 *
 * Every public call decodes first (arguments, capabilities, quota,
 * capability quota, metadata, physical memory) into a plan, and only then
 * commits, in a step that cannot fail. The one visible exception is an
 * expanding client's upgrade: an action of its own (with its own event)
 * taken in decode, exactly as Genode's Expanding_parent_client does.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc_internal.h"
#include "ram_internal.h"

/* ---- per-arena state ----------------------------------------------------- */

typedef struct ram_state {
    capmem__ram_service_t *services;
} ram_state_t;

static void ram_fini(capmem_arena_t *arena, void *state)
{
    (void)arena;
    const ram_state_t *st = state;
    CAPMEM_ASSERT(st->services == NULL, "every service died with its pools");
    (void)st;
}

static capmem_err_t ram_check(capmem_arena_t *arena, void *state, char *why, size_t len);

static const capmem__layer_t ram_layer = {
    .name = "RAM service",
    .fini = ram_fini,
    .check = ram_check,
};

static void account_destroy(capmem_arena_t *arena, void *obj, capmem_cap_t handle);

static int account_describe(capmem_arena_t *arena, const void *obj, char *buf, size_t len)
{
    (void)arena;
    const capmem__account_t *acc = obj;
    return snprintf(buf, len, "account \"%s\": quota %llu, used %llu, donation %llu", acc->label,
                    (unsigned long long)acc->ram.limit, (unsigned long long)acc->ram.used,
                    (unsigned long long)acc->meta.donation);
}

static const capmem__type_ops_t account_type = {
    .type = CAPMEM_OBJ_RAM_SESSION,
    .name = "RAM session",
    .destroy = account_destroy,
    .describe = account_describe,
};

static capmem_err_t ram_setup(capmem_arena_t *arena, ram_state_t **out)
{
    capmem_err_t err = capmem__layer_setup(arena, &ram_layer, sizeof(ram_state_t), (void **)out);
    if (err == CAPMEM_OK) {
        err = capmem__ds_setup(arena);
    }
    if (err == CAPMEM_OK) {
        capmem__type_register(arena, &account_type);
    }
    return err;
}

/* The service an account belongs to: the one with its physical allocator. */
static capmem__ram_service_t *service_of(capmem_arena_t *arena, const capmem__account_t *acc)
{
    ram_state_t *st = capmem__layer_state(arena, &ram_layer);
    for (capmem__ram_service_t *svc = st->services; svc != NULL; svc = svc->next_svc) {
        if (svc->phys == acc->phys) {
            return svc;
        }
    }
    CAPMEM_ASSERT(0, "every account belongs to a service");
    return NULL;
}

/* ---- shared checks --------------------------------------------------------------- */

capmem_err_t capmem__ram_check_step(const capmem_arena_t *arena, uint64_t bytes, const char *what)
{
    if (bytes == 0 || !capmem__is_aligned(bytes, arena->mem.page_size) || bytes < 2 * CAPMEM__REC) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, NULL,
                            "%s of %llu bytes is zero, not a multiple of the page size (%llu) "
                            "or too small for a chunk",
                            what, (unsigned long long)bytes,
                            (unsigned long long)arena->mem.page_size);
    }
    return CAPMEM_OK;
}

capmem_err_t capmem__ram_phys_fail(capmem_alloc_t *phys, uint64_t bytes, const char *what)
{
    uint64_t largest = capmem_alloc_largest(phys);
    return capmem__fail_space(CAPMEM_E_OUT_OF_PHYS, NULL, bytes, largest,
                              "no contiguous physical range of %llu bytes for %s (largest "
                              "free range: %llu bytes)",
                              (unsigned long long)bytes, what, (unsigned long long)largest);
}

capmem_err_t capmem__ram_phys_check(capmem_alloc_t *phys, uint64_t bytes, const char *what)
{
    return capmem_alloc_largest(phys) < bytes ? capmem__ram_phys_fail(phys, bytes, what)
                                              : CAPMEM_OK;
}

/* The smallest donation: header + session record + one record. */
uint64_t capmem__ram_min_donation(const capmem_arena_t *arena)
{
    uint64_t need = CAPMEM__REC * (2 + CAPMEM_RAM_SESSION_SLOTS);
    return need < arena->mem.page_size ? arena->mem.page_size : need;
}

/* ---- the service --------------------------------------------------------------- */

/* A RAM pool: an untyped claimed whole by the service. */
typedef struct ram_pool {
    capmem__ut_child_t base;
    capmem__ram_service_t *svc;
    uint32_t index; /* in svc->pool_slot */
} ram_pool_t;

static void svc_unref(capmem_arena_t *arena, capmem__ram_service_t *svc)
{
    if (svc->pools > 0 || svc->alive) {
        return;
    }
    ram_state_t *st = capmem__layer_state(arena, &ram_layer);
    for (capmem__ram_service_t **p = &st->services; *p != NULL; p = &(*p)->next_svc) {
        if (*p == svc) {
            *p = svc->next_svc;
            break;
        }
    }
    capmem_alloc_destroy(svc->phys);
    capmem__free(svc);
}

static void pool_destroy(capmem_arena_t *arena, capmem__ut_child_t *child, capmem_cap_t handle)
{
    (void)handle;
    ram_pool_t *pool = (ram_pool_t *)child;
    capmem__ram_service_t *svc = pool->svc;
    if (svc->alive) {
        /*
         * A pool of a living service is revoked: its memory is in use, so
         * the service closes first (this deletes capabilities in another
         * subtree, never an ancestor of the pool, so the revoke that got
         * us here is unaffected).
         */
        uint32_t root_slot = svc->root->slot;
        capmem__cap_revoke_index(arena, root_slot);
        capmem__cap_delete_leaf(arena, root_slot);
    }
    svc->pools--;
    svc->pool_slot[pool->index] = 0;
    capmem__ut_child_release(arena, &pool->base);
    capmem__free(pool);
    svc_unref(arena, svc);
}

static const capmem__ut_claim_t pool_claim = {.name = "RAM pool", .destroy = pool_destroy};

/* Lay out a new account in the first slots of its first chunk (the range was checked). */
capmem__account_t *capmem__ram_account_init(capmem_arena_t *arena, capmem_alloc_t *phys,
                                            uint64_t off, uint64_t donation, const char *label)
{
    capmem__meta_t m = {.kind = CAPMEM__META_ACCOUNT};
    capmem__meta_add_chunk_at(arena, &m, off, donation);
    capmem__account_t *acc = capmem__meta_session_record(arena, &m, CAPMEM_RAM_SESSION_SLOTS);
    acc->meta = m;
    acc->phys = phys;
    acc->upgrade_step = CAPMEM_RAM_DEFAULT_UPGRADE;
    snprintf(acc->label, sizeof(acc->label), "%s", label != NULL ? label : "session");
    return acc;
}

typedef struct create_plan {
    size_t n;
    capmem__untyped_t *ut[64];
    uint64_t lo;
    uint64_t hi;
    uint64_t total;
    capmem__ram_service_t *svc; /* host records, taken in decode */
    ram_pool_t *pools[64];
    uint64_t root_off; /* the root's donation, reserved in decode */
} create_plan_t;

static void plan_free_host(create_plan_t *p)
{
    for (size_t i = 0; i < p->n; i++) {
        capmem__free(p->pools[i]);
    }
    if (p->svc != NULL) {
        capmem_alloc_destroy(p->svc->phys);
        capmem__free(p->svc);
    }
}

/* Reserve the span between the pools of @p p in its new physical map. */
static capmem_err_t reserve_holes(create_plan_t *p, size_t n)
{
    uint64_t cursor = p->lo;
    for (;;) {
        uint64_t next_start = p->hi;
        uint64_t next_end = p->hi;
        for (size_t i = 0; i < n; i++) {
            const capmem__untyped_t *ut = p->ut[i];
            if (ut->base.offset >= cursor && ut->base.offset < next_start) {
                next_start = ut->base.offset;
                next_end = ut->base.offset + (1ull << ut->base.size_bits);
            }
        }
        if (next_start > cursor) {
            capmem_err_t err = capmem_alloc_alloc_at(p->svc->phys, cursor, next_start - cursor);
            if (err != CAPMEM_OK) {
                /* Only a placement policy can refuse: the map is fresh. */
                capmem__detail()->function = capmem__tls_function;
                return err;
            }
        }
        if (next_start >= p->hi) {
            return CAPMEM_OK;
        }
        cursor = next_end;
    }
}

static capmem_err_t decode_create(capmem_arena_t *arena, const capmem_cap_t *untypeds, size_t n,
                                  const capmem_ram_attr_t *at, create_plan_t *p)
{
    memset(p, 0, sizeof(*p));
    p->lo = UINT64_MAX;
    capmem_err_t err = capmem__ram_check_step(arena, at->root_donation, "root donation");
    if (err != CAPMEM_OK) {
        return err;
    }
    if (at->root_donation < capmem__ram_min_donation(arena)) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, NULL, "root donation below %llu bytes",
                            (unsigned long long)capmem__ram_min_donation(arena));
    }
    /* Decode every untyped before claiming any. */
    uint64_t largest_pool = 0;
    for (size_t i = 0; i < n; i++) {
        capmem__slot_t *s = NULL;
        err = capmem__cap_lookup(arena, untypeds[i], CAPMEM_OBJ_UNTYPED, CAPMEM_RIGHT_WRITE, &s);
        if (err != CAPMEM_OK) {
            return err;
        }
        for (size_t j = 0; j < i; j++) {
            if (capmem__cap_index(untypeds[j]) == capmem__cap_index(untypeds[i])) {
                return capmem__fail(CAPMEM_E_INVALID_ARGS, NULL, "untyped %zu is listed twice", i);
            }
        }
        capmem__untyped_t *ut = s->obj;
        const uint64_t size = 1ull << ut->base.size_bits;
        if (ut->base.device) {
            return capmem__fail(CAPMEM_E_INVALID_ARGS, NULL, "untyped %zu is device memory", i);
        }
        if (!capmem__ut_childless(s)) {
            return capmem__fail(CAPMEM_E_REVOKE_FIRST, NULL, "untyped %zu has children", i);
        }
        if (ut->user_policy) {
            /*
             * A pool takes the untyped whole through its policy; a user
             * policy could refuse that after other pools were claimed.
             */
            return capmem__fail(CAPMEM_E_INVALID_ARGS, NULL,
                                "untyped %zu has a user placement policy: give the RAM service "
                                "untypeds with a built-in one",
                                i);
        }
        if (size < arena->mem.page_size) {
            return capmem__fail(CAPMEM_E_INVALID_ARGS, NULL, "untyped %zu is smaller than a page",
                                i);
        }
        p->ut[i] = ut;
        p->lo = ut->base.offset < p->lo ? ut->base.offset : p->lo;
        p->hi = ut->base.offset + size > p->hi ? ut->base.offset + size : p->hi;
        p->total += size;
        largest_pool = size > largest_pool ? size : largest_pool;
    }
    if (p->total < at->root_donation) {
        return capmem__fail_space(CAPMEM_E_OUT_OF_RAM, NULL, at->root_donation, p->total,
                                  "the untypeds hold %llu bytes, the root donation needs %llu",
                                  (unsigned long long)p->total,
                                  (unsigned long long)at->root_donation);
    }
    if (largest_pool < at->root_donation) {
        /* The root's donation is one chunk: it must fit in one pool. */
        return capmem__fail_space(CAPMEM_E_OUT_OF_PHYS, NULL, at->root_donation, largest_pool,
                                  "the root donation of %llu bytes fits in no single untyped "
                                  "(largest: %llu bytes)",
                                  (unsigned long long)at->root_donation,
                                  (unsigned long long)largest_pool);
    }
    err = capmem__cap_reserve_check(arena, NULL, (uint32_t)n + 1);
    if (err != CAPMEM_OK) {
        return err;
    }
    /* Host side: the service and the pool records. */
    p->svc = capmem__calloc(1, sizeof(*p->svc));
    if (p->svc == NULL) {
        return capmem__fail(CAPMEM_E_HOST_NOMEM, NULL, "no host memory for the service");
    }
    if (at->policy.kind == CAPMEM_ALLOC_DEFAULT) {
        err = capmem_alloc_create_range(p->lo, p->hi - p->lo, arena->mem.page_size, &p->svc->phys);
    } else {
        err = capmem__alloc_create_placed(&at->policy, p->lo, p->hi - p->lo, arena->mem.page_size,
                                          &p->svc->phys);
    }
    if (err != CAPMEM_OK) {
        capmem__free(p->svc);
        p->svc = NULL;
        return err;
    }
    /*
     * The span between pools is not ours: mark it allocated for good. Then
     * the root's donation. Both here, in decode: a placement policy may
     * refuse either (then the service is never made).
     */
    err = reserve_holes(p, n);
    if (err == CAPMEM_OK) {
        err = capmem__meta_reserve(p->svc->phys, at->root_donation, arena->mem.page_size,
                                   "the root donation", &p->root_off);
    }
    if (err != CAPMEM_OK) {
        plan_free_host(p);
        p->svc = NULL;
        return err;
    }
    for (; p->n < n; p->n++) {
        p->pools[p->n] = capmem__calloc(1, sizeof(ram_pool_t));
        if (p->pools[p->n] == NULL) {
            plan_free_host(p);
            return capmem__fail(CAPMEM_E_HOST_NOMEM, NULL, "no host memory for a pool");
        }
    }
    return CAPMEM_OK;
}

static capmem_cap_t invoke_create(capmem_arena_t *arena, ram_state_t *st,
                                  const capmem_cap_t *untypeds, const capmem_ram_attr_t *at,
                                  const create_plan_t *p)
{
    capmem__ram_service_t *svc = p->svc;
    svc->lo = p->lo;
    svc->hi = p->hi;
    svc->total = p->total;
    capmem_cap_t first_pool = CAPMEM_CAP_NULL;
    for (size_t i = 0; i < p->n; i++) {
        ram_pool_t *pool = p->pools[i];
        pool->svc = svc;
        pool->index = (uint32_t)i;
        capmem_cap_t pc = CAPMEM_CAP_NULL;
        capmem_err_t err = capmem__untyped_claim(arena, untypeds[i], &pool->base, &pool_claim, &pc);
        CAPMEM_ASSERT(err == CAPMEM_OK, "decoded above");
        (void)err;
        svc->pool_slot[i] = capmem__cap_index(pc);
        svc->pools++;
        first_pool = i == 0 ? pc : first_pool;
    }
    capmem__account_t *acc =
        capmem__ram_account_init(arena, svc->phys, p->root_off, at->root_donation, "root");
    acc->ram.limit = p->total - at->root_donation;
    acc->caps.limit = at->root_caps != 0 ? at->root_caps : arena->cspace.capacity;
    acc->flags = at->flags;
    const capmem_cap_t root =
        capmem__cap_create(arena, CAPMEM_OBJ_RAM_SESSION, acc, CAPMEM_RIGHTS_ALL,
                           CAPMEM__SLOT_ORIGINAL, capmem__cap_index(first_pool), NULL);
    acc->slot = capmem__cap_index(root);
    svc->root = acc;
    svc->alive = true;
    svc->next_svc = st->services;
    st->services = svc;
    if (capmem__event_wanted(arena, CAPMEM_EVENT_SERVICE_NEW)) {
        capmem__emit(arena,
                     &(capmem__ev_t){.kind = CAPMEM_EVENT_SERVICE_NEW,
                                     .cap = root,
                                     .other = first_pool,
                                     .payer = root,
                                     .a = p->total,
                                     .b = at->root_donation,
                                     .offset = p->lo,
                                     .size = p->hi - p->lo},
                     "RAM service of %llu bytes in %zu pool%s; its root account donates %llu "
                     "bytes to its records",
                     (unsigned long long)p->total, p->n, p->n == 1 ? "" : "s",
                     (unsigned long long)at->root_donation);
    }
    return root;
}

capmem_err_t capmem_ram_create(capmem_arena_t *arena, const capmem_cap_t *untypeds, size_t n,
                               const capmem_ram_attr_t *attr, capmem_cap_t *root)
{
    static const capmem_ram_attr_t defaults = CAPMEM_RAM_ATTR_INIT;
    const capmem_ram_attr_t *at = attr != NULL ? attr : &defaults;
    if (arena == NULL || untypeds == NULL || root == NULL || n == 0 || n > 64) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, __func__,
                            "arena, untypeds or root is NULL, or %zu untypeds (1..64)", n);
    }
    if ((at->flags & ~(uint32_t)CAPMEM_RAM_EXPANDING) != 0) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, __func__, "unknown flags 0x%x", at->flags);
    }
    CAPMEM__ENTER_OR_RETURN(arena);
    ram_state_t *st = NULL;
    create_plan_t plan;
    capmem_err_t err = ram_setup(arena, &st);
    if (err == CAPMEM_OK) {
        err = decode_create(arena, untypeds, n, at, &plan);
    }
    if (err == CAPMEM_OK) {
        *root = invoke_create(arena, st, untypeds, at, &plan);
    }
    CAPMEM__LEAVE(arena);
    return err;
}

capmem_err_t capmem_ram_boot(capmem_arena_t *arena, const capmem_ram_attr_t *attr,
                             capmem_cap_t *root)
{
    if (arena == NULL || root == NULL) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, __func__, "arena or root is NULL");
    }
    capmem_untyped_info_t boot[64];
    size_t n = 0;
    capmem_err_t err = capmem_untyped_boot(arena, boot, 64, &n);
    if (err != CAPMEM_OK) {
        return err;
    }
    capmem_cap_t caps[64];
    size_t k = 0;
    for (size_t i = 0; i < n && i < 64; i++) {
        if (!boot[i].device && boot[i].cap != CAPMEM_CAP_NULL) {
            caps[k++] = boot[i].cap;
        }
    }
    if (k == 0) {
        return capmem__fail(CAPMEM_E_NOT_FOUND, __func__, "no RAM boot untyped left");
    }
    return capmem_ram_create(arena, caps, k, attr, root);
}

static capmem_err_t decode_destroy(capmem_arena_t *arena, capmem_cap_t root,
                                   capmem__ram_service_t **svc)
{
    capmem__account_t *acc = NULL;
    capmem_err_t err = capmem__account_lookup(arena, root, CAPMEM_RIGHT_WRITE, &acc);
    if (err != CAPMEM_OK) {
        return err;
    }
    if (acc->ref != NULL) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, NULL,
                            "\"%s\" is not a service's root account: close it with "
                            "capmem_ram_close()",
                            acc->label);
    }
    err = capmem__cap_require_original(capmem__slot(&arena->cspace, capmem__cap_index(root)),
                                       "destroy", "root account");
    if (err != CAPMEM_OK) {
        return err;
    }
    *svc = service_of(arena, acc);
    return CAPMEM_OK;
}

capmem_err_t capmem_ram_destroy(capmem_arena_t *arena, capmem_cap_t root)
{
    if (arena == NULL) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, __func__, "arena is NULL");
    }
    CAPMEM__ENTER_OR_RETURN(arena);
    capmem__ram_service_t *svc = NULL;
    capmem_err_t err = decode_destroy(arena, root, &svc);
    /*
     * Deleting the pools destroys the service: the first deletion of a pool
     * of a living service closes the root account, and with it every
     * session; each pool gives its memory back to its untyped, and the last
     * one frees the service.
     */
    for (size_t i = 0; err == CAPMEM_OK && i < 64; i++) {
        const uint32_t slot = svc->pool_slot[i];
        if (slot != 0) {
            const bool last = svc->pools == 1;
            capmem__cap_revoke_index(arena, slot);
            capmem__cap_delete_leaf(arena, slot);
            if (last) {
                break;
            }
        }
    }
    CAPMEM__LEAVE(arena);
    return err;
}

static void account_destroy(capmem_arena_t *arena, void *obj, capmem_cap_t handle)
{
    capmem__account_t *acc = obj;
    /*
     * Dependent aliases this account paid for may live under other
     * sessions' dataspaces: they go now, before their records' memory does.
     */
    while (acc->dependents != NULL) {
        uint32_t slot = acc->dependents->slot;
        capmem__cap_revoke_index(arena, slot);
        capmem__cap_delete_leaf(arena, slot);
    }
    capmem__account_t *ref = acc->ref;
    CAPMEM_ASSERT(acc->ram.used == acc->lent, "own dataspaces were freed first (children)");
    CAPMEM_ASSERT(acc->sessions == 0 && acc->donated == 0, "child sessions were closed first");
    capmem__ram_service_t *svc = NULL;
    if (ref != NULL) {
        capmem__ds_pass_lent(acc, ref);
    } else {
        svc = service_of(arena, acc);
    }
    /*
     * The root dies last in its service, after every account that could
     * borrow from it (they are all its descendants), so it lends nothing.
     */
    CAPMEM_ASSERT(acc->lent_list == NULL && acc->lent == 0, "the root has nothing lent left");
    const uint64_t returned = acc->ram.limit + acc->meta.donation;
    if (ref != NULL) {
        ref->ram.limit += returned;
        ref->caps.limit += acc->caps.limit;
        ref->sessions--;
    } else {
        svc->alive = false;
        svc->root = NULL;
    }
    if (capmem__event_wanted(arena, CAPMEM_EVENT_SESSION_CLOSE)) {
        capmem__emit(arena,
                     &(capmem__ev_t){.kind = CAPMEM_EVENT_SESSION_CLOSE,
                                     .cap = handle,
                                     .other = ref != NULL
                                                  ? capmem__slot_handle(&arena->cspace, ref->slot)
                                                  : CAPMEM_CAP_NULL,
                                     .a = returned},
                     "session \"%s\" closed: %llu bytes return to \"%s\"", acc->label,
                     (unsigned long long)returned, ref != NULL ? ref->label : "(none)");
    }
    /* The account record lives in its own first chunk: copy what we need first. */
    capmem__meta_t m = acc->meta;
    capmem_alloc_t *phys = acc->phys;
    capmem__meta_release(arena, phys, &m);
    if (svc != NULL) {
        svc_unref(arena, svc);
    }
}

/* ---- the checker -------------------------------------------------------------------- */

static capmem_err_t check_account(capmem__account_t *acc, uint64_t own, char *why, size_t len)
{
    uint64_t lent = 0;
    capmem_err_t err = capmem__ds_check_account(acc, &lent, why, len);
    if (err != CAPMEM_OK) {
        return err;
    }
    if (acc->ram.used > acc->ram.limit || acc->lent > acc->ram.used) {
        snprintf(why, len, "account \"%s\": used %llu exceeds quota %llu or lent %llu", acc->label,
                 (unsigned long long)acc->ram.used, (unsigned long long)acc->ram.limit,
                 (unsigned long long)acc->lent);
        return CAPMEM_E_CORRUPT;
    }
    if (acc->ram.used != own + lent || acc->lent != lent) {
        snprintf(why, len,
                 "account \"%s\": charged %llu (lent %llu), but holds %llu bytes of dataspaces "
                 "and %llu bytes of lent pages",
                 acc->label, (unsigned long long)acc->ram.used, (unsigned long long)acc->lent,
                 (unsigned long long)own, (unsigned long long)lent);
        return CAPMEM_E_CORRUPT;
    }
    if (acc->caps.used > acc->caps.limit && acc->ref != NULL) {
        snprintf(why, len, "account \"%s\": %llu capabilities charged, quota %llu", acc->label,
                 (unsigned long long)acc->caps.used, (unsigned long long)acc->caps.limit);
        return CAPMEM_E_CORRUPT;
    }
    return capmem__meta_check(&acc->meta, acc->label, acc->meta.tally, CAPMEM_RAM_SESSION_SLOTS,
                              why, len);
}

/*
 * One pass over the capability table for each of: the accounts (reset
 * their tallies), the dataspaces (count each record into its payer's slab
 * and each RAM dataspace's bytes into its account), the accounts again
 * (check each, and sum into its service); then each service. O(objects).
 */
static capmem_err_t ram_check(capmem_arena_t *arena, void *state, char *why, size_t len)
{
    ram_state_t *st = state;
    const capmem__cspace_t *cs = &arena->cspace;
    uint64_t *own = capmem__calloc(cs->high, sizeof(*own)); /* RAM bytes by account slot */
    if (own == NULL) {
        snprintf(why, len, "RAM check: no host memory");
        return CAPMEM_E_HOST_NOMEM;
    }
    for (capmem__ram_service_t *svc = st->services; svc != NULL; svc = svc->next_svc) {
        svc->tally_quota = svc->tally_phys = 0;
    }
    for (uint32_t i = 1; i < cs->high; i++) {
        const capmem__slot_t *s = &cs->slots[i];
        if (s->type == CAPMEM_OBJ_RAM_SESSION && (s->flags & CAPMEM__SLOT_ORIGINAL)) {
            ((capmem__account_t *)s->obj)->meta.tally = 0;
        }
    }
    for (uint32_t i = 1; i < cs->high; i++) {
        const capmem__slot_t *s = &cs->slots[i];
        if (s->type != CAPMEM_OBJ_DATASPACE || !(s->flags & CAPMEM__SLOT_ORIGINAL)) {
            continue;
        }
        capmem__ds_t *d = s->obj;
        if (d->meta->kind == CAPMEM__META_ACCOUNT) {
            d->meta->tally++;
        }
        if (capmem__ds_kind(d) == CAPMEM__DS_RAM) {
            own[capmem__ds_account(d)->slot] += d->size;
        }
    }
    capmem_err_t err = CAPMEM_OK;
    for (uint32_t i = 1; i < cs->high && err == CAPMEM_OK; i++) {
        const capmem__slot_t *s = &cs->slots[i];
        if (s->type != CAPMEM_OBJ_RAM_SESSION || !(s->flags & CAPMEM__SLOT_ORIGINAL)) {
            continue;
        }
        capmem__account_t *acc = s->obj;
        err = check_account(acc, own[i], why, len);
        capmem__ram_service_t *svc = service_of(arena, acc);
        svc->tally_quota += acc->ram.limit + acc->meta.donation + acc->donated;
        svc->tally_phys += acc->meta.donation + acc->donated + own[i] + acc->lent;
    }
    capmem__free(own);
    for (capmem__ram_service_t *svc = st->services; svc != NULL && err == CAPMEM_OK;
         svc = svc->next_svc) {
        if (!svc->alive) {
            continue; /* closed: only its pools remain, checked by the untyped layer */
        }
        if (svc->tally_quota != svc->total) {
            snprintf(why, len,
                     "conservation broken: accounts' quota + donations = %llu, the service has "
                     "%llu bytes of RAM",
                     (unsigned long long)svc->tally_quota, (unsigned long long)svc->total);
            return CAPMEM_E_CORRUPT;
        }
        const uint64_t in_use = svc->total - capmem_alloc_avail(svc->phys);
        if (in_use != svc->tally_phys) {
            snprintf(why, len,
                     "exclusivity broken: %llu bytes of physical memory reserved, but "
                     "donations, dataspaces and lent pages account for %llu",
                     (unsigned long long)in_use, (unsigned long long)svc->tally_phys);
            return CAPMEM_E_CORRUPT;
        }
        char sub[160];
        if (capmem_alloc_check(svc->phys, sub, sizeof(sub)) != CAPMEM_OK) {
            snprintf(why, len, "RAM service physical allocator: %s", sub);
            return CAPMEM_E_CORRUPT;
        }
    }
    return err;
}
