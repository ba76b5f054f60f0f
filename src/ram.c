/* SPDX-License-Identifier: MIT */
/*
 * Layer 5: the RAM service, after Genode's. Accounts with quota and a
 * reference account, donations that really pay for the service's records,
 * upgrades and the expanding client, and RAM dataspaces.
 *
 * Every public call decodes first (arguments, capabilities, quota,
 * capability quota, metadata, physical memory) and only then commits, in a
 * phase that cannot fail. The one visible exception is an expanding
 * client's upgrade: it is an action of its own (with its own event) taken
 * before the retry, exactly as Genode's Expanding_parent_client does.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ram_internal.h"
#include "rm_hooks.h"

/*
 * Records are announced to Valgrind as blocks of a mempool per slab
 * (anchored at its first chunk), and unallocated slots are kept
 * inaccessible, so a simulated use-after-free of a record, or a read of a
 * slot never handed out, is a memcheck error like a heap bug. Outside
 * Valgrind the client requests cost a few instructions.
 */
#ifdef CAPMEM_HAVE_VALGRIND
#include <valgrind/memcheck.h>
#else
#define VALGRIND_MAKE_MEM_NOACCESS(a, n) ((void)(a), (void)(n))
#define VALGRIND_MAKE_MEM_UNDEFINED(a, n) ((void)(a), (void)(n))
#define VALGRIND_MAKE_MEM_DEFINED(a, n) ((void)(a), (void)(n))
#define VALGRIND_CREATE_MEMPOOL(pool, rz, zeroed) ((void)(pool))
#define VALGRIND_DESTROY_MEMPOOL(pool) ((void)(pool))
#define VALGRIND_MEMPOOL_ALLOC(pool, a, n) ((void)(pool), (void)(a), (void)(n))
#define VALGRIND_MEMPOOL_FREE(pool, a) ((void)(pool), (void)(a))
#endif

/* Push a slot that is not a live record onto the free list (its link word only is accessible). */
static void push_free_slot(capmem__meta_t *m, void *slot)
{
    VALGRIND_MAKE_MEM_UNDEFINED(slot, sizeof(void *));
    *(void **)slot = m->free;
    m->free = slot;
}

/* ---- per-arena state ----------------------------------------------------- */

static void ram_fini(capmem_arena_t *arena, void *state)
{
    (void)arena;
    const capmem__ram_state_t *st = state;
    CAPMEM_ASSERT(st->services == NULL, "every service died with its pools");
    (void)st;
}

static capmem_err_t ram_check(capmem_arena_t *arena, void *state, char *why, size_t len)
{
    (void)state;
    return capmem__ram_check(arena, why, len);
}

static const capmem__layer_t ram_layer = {
    .name = "RAM service",
    .fini = ram_fini,
    .check = ram_check,
};

static void account_destroy(capmem_arena_t *arena, void *obj, capmem_cap_t handle);

static const capmem__type_ops_t account_type = {
    .type = CAPMEM_OBJ_RAM_SESSION,
    .name = "RAM session",
    .destroy = account_destroy,
};

capmem__ram_state_t *capmem__ram_state(capmem_arena_t *arena)
{
    void *st = NULL;
    if (capmem__layer_setup(arena, &ram_layer, sizeof(capmem__ram_state_t), &st) != CAPMEM_OK) {
        return NULL;
    }
    capmem__type_register(arena, &account_type);
    capmem__type_register(arena, &capmem__ds_type);
    return st;
}

/* ---- metadata slabs -------------------------------------------------------- */

static uint64_t meta_free_slots(const capmem__meta_t *m)
{
    return m->capacity - m->used;
}

bool capmem__meta_has_room(const capmem__meta_t *m, uint64_t slots)
{
    return meta_free_slots(m) >= slots;
}

capmem_err_t capmem__meta_add_chunk(capmem_arena_t *arena, capmem__ram_service_t *svc,
                                    capmem__meta_t *m, uint64_t bytes, const char *func)
{
    uint64_t off;
    capmem_err_t err = capmem_alloc_alloc(svc->phys, bytes, arena->mem.page_size, &off);
    if (err != CAPMEM_OK) {
        uint64_t largest = capmem_alloc_largest(svc->phys);
        return capmem__fail_space(CAPMEM_E_OUT_OF_PHYS, func, bytes, largest,
                                  "no contiguous physical range of %llu bytes for metadata "
                                  "(largest free range: %llu bytes)",
                                  (unsigned long long)bytes, (unsigned long long)largest);
    }
    uint8_t *chunk = capmem__bytes(&arena->mem, off);
    capmem__backing_zero(&arena->mem, off, bytes);
    capmem__chunk_t *hdr = (capmem__chunk_t *)chunk;
    hdr->size = bytes;
    hdr->next = NULL;
    /* Every slot after the header is inaccessible until it is handed out. */
    VALGRIND_MAKE_MEM_NOACCESS(chunk + CAPMEM__REC, bytes - CAPMEM__REC);
    /* Append, so the first chunk (holding the session record) stays first. */
    if (m->chunks == NULL) {
        m->chunks = chunk;
        VALGRIND_CREATE_MEMPOOL(chunk, 0, 0);
    } else {
        uint8_t *c = m->chunks;
        while (((capmem__chunk_t *)c)->next != NULL) {
            c = ((capmem__chunk_t *)c)->next;
        }
        ((capmem__chunk_t *)c)->next = chunk;
    }
    /* The rest of the current chunk joins the free list before we move on. */
    if (m->cur != NULL) {
        uint64_t cur_size = ((capmem__chunk_t *)m->cur)->size;
        for (; m->bump + CAPMEM__REC <= cur_size; m->bump += CAPMEM__REC) {
            push_free_slot(m, m->cur + m->bump);
        }
    }
    m->cur = chunk;
    m->bump = CAPMEM__REC; /* slot 0 is the header */
    m->capacity += bytes / CAPMEM__REC;
    m->used += 1;
    m->donation += bytes;
    return CAPMEM_OK;
}

void *capmem__meta_session_record(capmem__meta_t *m, unsigned slots)
{
    CAPMEM_ASSERT(m->chunks != NULL && m->cur == m->chunks && m->bump == CAPMEM__REC,
                  "a fresh slab with one chunk");
    uint8_t *rec = m->chunks + CAPMEM__REC;
    VALGRIND_MAKE_MEM_UNDEFINED(rec, (size_t)CAPMEM__REC * slots);
    memset(rec, 0, (size_t)CAPMEM__REC * slots);
    m->bump = CAPMEM__REC * (1u + slots);
    m->used += slots;
    return rec;
}

capmem_err_t capmem__meta_alloc(capmem__meta_t *m, const char *func, void **rec)
{
    void *r = NULL;
    if (m->free != NULL) {
        r = m->free;
        m->free = *(void **)r;
    } else if (m->cur != NULL && m->bump + CAPMEM__REC <= ((capmem__chunk_t *)m->cur)->size) {
        r = m->cur + m->bump;
        m->bump += CAPMEM__REC;
    } else {
        return capmem__fail_space(CAPMEM_E_OUT_OF_METADATA, func, CAPMEM__REC, 0,
                                  "Could not allocate metadata (%u-byte record; the donation "
                                  "of %llu bytes is used up)",
                                  CAPMEM__REC, (unsigned long long)m->donation);
    }
    VALGRIND_MEMPOOL_ALLOC(m->chunks, r, CAPMEM__REC);
    memset(r, 0, CAPMEM__REC);
    m->used++;
    *rec = r;
    return CAPMEM_OK;
}

void capmem__meta_free(capmem__meta_t *m, void *rec)
{
    CAPMEM_ASSERT(m->used > 0, "freeing a record that was allocated");
    /* From here a stale pointer into the record is a Valgrind error. */
    VALGRIND_MEMPOOL_FREE(m->chunks, rec);
    push_free_slot(m, rec);
    m->used--;
}

void capmem__meta_release(capmem__ram_service_t *svc, capmem__meta_t *m)
{
    uint8_t *c = m->chunks;
    if (c != NULL) {
        VALGRIND_DESTROY_MEMPOOL(c);
    }
    /* Offsets are relative to the arena base, which the service knows through phys. */
    while (c != NULL) {
        capmem__chunk_t *hdr = (capmem__chunk_t *)c;
        uint8_t *next = hdr->next;
        uint64_t size = hdr->size;
        VALGRIND_MAKE_MEM_DEFINED(c, size);
        uint64_t off = (uint64_t)(c - svc->base);
        capmem_err_t err = capmem_alloc_free(svc->phys, off, size);
        CAPMEM_ASSERT(err == CAPMEM_OK, "a chunk was allocated from this service");
        (void)err;
        c = next;
    }
    m->chunks = NULL;
    m->cur = NULL;
    m->free = NULL;
}

capmem_err_t capmem__meta_upgrade(capmem_arena_t *arena, capmem__meta_t *m,
                                  capmem__account_t *payer, capmem_cap_t session_cap,
                                  const char *who, uint64_t bytes, const char *func)
{
    if (payer->quota - payer->used < bytes) {
        return capmem__fail_space(CAPMEM_E_OUT_OF_RAM, func, bytes, payer->quota - payer->used,
                                  "upgrade of %llu bytes: the paying account has %llu available",
                                  (unsigned long long)bytes,
                                  (unsigned long long)(payer->quota - payer->used));
    }
    capmem_err_t err = capmem__meta_add_chunk(arena, payer->svc, m, bytes, func);
    if (err != CAPMEM_OK) {
        return err;
    }
    payer->quota -= bytes;
    if (m->account != NULL) {
        m->account->upgrades++;
    }
    if (capmem__events_on(arena)) {
        capmem__emitf(arena, CAPMEM_EVENT_UPGRADE, session_cap, bytes, m->donation,
                      "upgrading quota donation for %s by %llu bytes", who,
                      (unsigned long long)bytes);
    }
    return CAPMEM_OK;
}

capmem_err_t capmem__meta_reserve(capmem_arena_t *arena, capmem__meta_t *m,
                                  capmem__account_t *expander, capmem_cap_t session_cap,
                                  const char *who, uint64_t slots, const char *func)
{
    if (capmem__meta_has_room(m, slots)) {
        return CAPMEM_OK;
    }
    if (expander == NULL || !(expander->flags & CAPMEM_RAM_EXPANDING)) {
        return capmem__fail_space(
            CAPMEM_E_OUT_OF_METADATA, func, slots * CAPMEM__REC, meta_free_slots(m) * CAPMEM__REC,
            "Could not allocate metadata (%llu-byte record; the donation "
            "of %llu bytes is used up)",
            (unsigned long long)(slots * CAPMEM__REC), (unsigned long long)m->donation);
    }
    while (!capmem__meta_has_room(m, slots)) {
        capmem_err_t err = capmem__meta_upgrade(arena, m, expander, session_cap, who,
                                                expander->upgrade_step, func);
        if (err != CAPMEM_OK) {
            return err;
        }
    }
    return CAPMEM_OK;
}

/* ---- lookups ----------------------------------------------------------------- */

capmem_err_t capmem__account_lookup(capmem_arena_t *arena, capmem_cap_t cap, unsigned rights,
                                    const char *func, capmem__account_t **out)
{
    capmem__slot_t *s = NULL;
    capmem_err_t err = capmem__cap_lookup(arena, cap, CAPMEM_OBJ_RAM_SESSION, rights, &s);
    if (err == CAPMEM_OK) {
        *out = s->obj;
    }
    return err;
}

capmem_err_t capmem__ds_lookup(capmem_arena_t *arena, capmem_cap_t cap, unsigned rights,
                               const char *func, capmem__slot_t **slot, capmem__ds_t **out)
{
    capmem_err_t err = capmem__cap_lookup(arena, cap, CAPMEM_OBJ_DATASPACE, rights, slot);
    if (err == CAPMEM_OK) {
        *out = (*slot)->obj;
    }
    return err;
}

static capmem_cap_t account_handle(capmem_arena_t *arena, const capmem__account_t *acc)
{
    return capmem__slot_handle(&arena->cspace, acc->slot);
}

/* ---- the service --------------------------------------------------------------- */

/*
 * A RAM pool: an untyped retyped whole for the service. The first pool is
 * the parent of the root account's capability.
 */
typedef struct ram_pool {
    capmem__ut_child_t base;
    capmem__ram_service_t *svc;
    bool primary;
    uint32_t index; /* in svc->pool_slot */
} ram_pool_t;

static void svc_unref(capmem_arena_t *arena, capmem__ram_service_t *svc)
{
    if (svc->pools > 0 || svc->alive) {
        return;
    }
    capmem__ram_state_t *st = capmem__ram_state(arena);
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

static void set_label(capmem__account_t *acc, const char *label)
{
    snprintf(acc->label, sizeof(acc->label), "%s", label != NULL ? label : "session");
}

/* Lay out a new account in the first slots of its first chunk. */
static capmem__account_t *account_init(capmem_arena_t *arena, capmem__ram_service_t *svc,
                                       uint64_t donation, const char *func)
{
    capmem__meta_t m = {0};
    capmem_err_t err = capmem__meta_add_chunk(arena, svc, &m, donation, func);
    CAPMEM_ASSERT(err == CAPMEM_OK, "callers check the physical range first");
    if (err != CAPMEM_OK || m.chunks == NULL) {
        return NULL;
    }
    capmem__account_t *acc = capmem__meta_session_record(&m, CAPMEM_RAM_SESSION_SLOTS);
    acc->meta = m;
    acc->meta.account = acc;
    acc->svc = svc;
    acc->upgrade_step = CAPMEM_RAM_DEFAULT_UPGRADE;
    return acc;
}

/* The smallest donation: header + session record + one record. */
static uint64_t min_donation(const capmem_arena_t *arena)
{
    uint64_t need = CAPMEM__REC * (2 + CAPMEM_RAM_SESSION_SLOTS);
    return need < arena->mem.page_size ? arena->mem.page_size : need;
}

static capmem_err_t check_step(const capmem_arena_t *arena, uint64_t bytes, const char *what,
                               const char *func)
{
    if (bytes == 0 || !capmem__is_aligned(bytes, arena->mem.page_size) || bytes < 2 * CAPMEM__REC) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, func,
                            "%s of %llu bytes is zero, not a multiple of the page size (%llu) "
                            "or too small for a chunk",
                            what, (unsigned long long)bytes,
                            (unsigned long long)arena->mem.page_size);
    }
    return CAPMEM_OK;
}

static capmem_err_t phys_fail(capmem__ram_service_t *svc, uint64_t bytes, const char *what,
                              const char *func)
{
    uint64_t largest = capmem_alloc_largest(svc->phys);
    return capmem__fail_space(CAPMEM_E_OUT_OF_PHYS, func, bytes, largest,
                              "no contiguous physical range of %llu bytes for %s (largest "
                              "free range: %llu bytes)",
                              (unsigned long long)bytes, what, (unsigned long long)largest);
}

static capmem_err_t phys_check(capmem__ram_service_t *svc, uint64_t bytes, const char *what,
                               const char *func)
{
    if (capmem_alloc_largest(svc->phys) < bytes) {
        return phys_fail(svc, bytes, what, func);
    }
    return CAPMEM_OK;
}

capmem_err_t capmem_ram_create(capmem_arena_t *arena, const capmem_cap_t *untypeds, size_t n,
                               const capmem_ram_attr_t *attr, capmem_cap_t *root)
{
    static const capmem_ram_attr_t defaults = CAPMEM_RAM_ATTR_INIT;
    const capmem_ram_attr_t *at = attr != NULL ? attr : &defaults;
    const char *fn = __func__;
    if (arena == NULL || untypeds == NULL || root == NULL || n == 0 || n > 64) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, fn,
                            "arena, untypeds or root is NULL, or %zu untypeds (1..64)", n);
    }
    if ((at->flags & ~(uint32_t)CAPMEM_RAM_EXPANDING) != 0) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, fn, "unknown flags 0x%x", at->flags);
    }
    CAPMEM__ENTER_OR_RETURN(arena);
    capmem_err_t err = CAPMEM_OK;
    capmem__ram_state_t *st = capmem__ram_state(arena);
    ram_pool_t *pools[64] = {0};
    capmem_cap_t pool_caps[64];
    capmem__ram_service_t *svc = NULL;
    uint64_t lo = UINT64_MAX;
    uint64_t hi = 0;
    uint64_t total = 0;
    uint64_t largest_pool = 0;
    size_t made = 0;
    if (st == NULL) {
        err = capmem__fail(CAPMEM_E_HOST_NOMEM, fn, "no host memory for the RAM state");
        goto out;
    }
    err = check_step(arena, at->root_donation, "root donation", fn);
    if (err == CAPMEM_OK && at->root_donation < min_donation(arena)) {
        err = capmem__fail(CAPMEM_E_INVALID_ARGS, fn, "root donation below %llu bytes",
                           (unsigned long long)min_donation(arena));
    }
    /* Decode every untyped before claiming any. */
    for (size_t i = 0; err == CAPMEM_OK && i < n; i++) {
        capmem__slot_t *s = NULL;
        err = capmem__cap_lookup(arena, untypeds[i], CAPMEM_OBJ_UNTYPED, CAPMEM_RIGHT_WRITE, &s);
        if (err != CAPMEM_OK) {
            break;
        }
        for (size_t j = 0; j < i; j++) {
            if (capmem__cap_index(untypeds[j]) == capmem__cap_index(untypeds[i])) {
                err = capmem__fail(CAPMEM_E_INVALID_ARGS, fn, "untyped %zu is listed twice", i);
            }
        }
        capmem__untyped_t *ut = s->obj;
        if (err == CAPMEM_OK && ut->base.device) {
            err = capmem__fail(CAPMEM_E_INVALID_ARGS, fn, "untyped %zu is device memory", i);
        }
        if (err == CAPMEM_OK && (s->first_child != 0 || ut->children != 0)) {
            err = capmem__fail(CAPMEM_E_REVOKE_FIRST, fn, "untyped %zu has children", i);
        }
        if (err == CAPMEM_OK && (1ull << ut->base.size_bits) < arena->mem.page_size) {
            err = capmem__fail(CAPMEM_E_INVALID_ARGS, fn, "untyped %zu is smaller than a page", i);
        }
        if (err == CAPMEM_OK) {
            lo = ut->base.offset < lo ? ut->base.offset : lo;
            uint64_t end = ut->base.offset + (1ull << ut->base.size_bits);
            hi = end > hi ? end : hi;
            total += 1ull << ut->base.size_bits;
            if ((1ull << ut->base.size_bits) > largest_pool) {
                largest_pool = 1ull << ut->base.size_bits;
            }
        }
    }
    if (err == CAPMEM_OK && total < at->root_donation) {
        err = capmem__fail_space(CAPMEM_E_OUT_OF_RAM, fn, at->root_donation, total,
                                 "the untypeds hold %llu bytes, the root donation needs %llu",
                                 (unsigned long long)total, (unsigned long long)at->root_donation);
    }
    if (err == CAPMEM_OK && largest_pool < at->root_donation) {
        /* The root's donation is one chunk: it must fit in one pool. */
        err = capmem__fail_space(CAPMEM_E_OUT_OF_PHYS, fn, at->root_donation, largest_pool,
                                 "the root donation of %llu bytes fits in no single untyped "
                                 "(largest: %llu bytes)",
                                 (unsigned long long)at->root_donation,
                                 (unsigned long long)largest_pool);
    }
    if (err == CAPMEM_OK) {
        err = capmem__cap_reserve_check(arena, NULL, (uint32_t)n + 1);
    }
    if (err != CAPMEM_OK) {
        goto out;
    }
    /* Host side: the service and the pool records. */
    svc = capmem__calloc(1, sizeof(*svc));
    if (svc == NULL) {
        err = capmem__fail(CAPMEM_E_HOST_NOMEM, fn, "no host memory for the service");
        goto out;
    }
    err = capmem_alloc_create_range(lo, hi - lo, arena->mem.page_size, &svc->phys);
    for (size_t i = 0; err == CAPMEM_OK && i < n; i++) {
        pools[i] = capmem__calloc(1, sizeof(*pools[i]));
        if (pools[i] == NULL) {
            err = capmem__fail(CAPMEM_E_HOST_NOMEM, fn, "no host memory for a pool");
        }
    }
    if (err != CAPMEM_OK) {
        goto out;
    }
    /* Commit: nothing below fails. */
    svc->base = arena->mem.base;
    svc->lo = lo;
    svc->hi = hi;
    svc->total = total;
    /* The span between pools is not ours: mark it allocated for good. */
    {
        uint64_t cursor = lo;
        for (;;) {
            uint64_t next_start = hi;
            uint64_t next_end = hi;
            for (size_t i = 0; i < n; i++) {
                capmem__slot_t *s = NULL;
                capmem_err_t e2 = capmem__cap_lookup(arena, untypeds[i], CAPMEM_OBJ_UNTYPED, 0, &s);
                CAPMEM_ASSERT(e2 == CAPMEM_OK, "decoded above");
                (void)e2;
                capmem__untyped_t *ut = s->obj;
                if (ut->base.offset >= cursor && ut->base.offset < next_start) {
                    next_start = ut->base.offset;
                    next_end = ut->base.offset + (1ull << ut->base.size_bits);
                }
            }
            if (next_start > cursor) {
                capmem_err_t e3 = capmem_alloc_alloc_at(svc->phys, cursor, next_start - cursor);
                CAPMEM_ASSERT(e3 == CAPMEM_OK, "holes are free at creation");
                (void)e3;
            }
            if (next_start >= hi) {
                break;
            }
            cursor = next_end;
        }
    }
    for (size_t i = 0; i < n; i++) {
        pools[i]->svc = svc;
        pools[i]->primary = i == 0;
        pools[i]->index = (uint32_t)i;
        err =
            capmem__untyped_claim(arena, untypeds[i], &pools[i]->base, &pool_claim, &pool_caps[i]);
        CAPMEM_ASSERT(err == CAPMEM_OK, "decoded above");
        svc->pool_slot[i] = capmem__cap_index(pool_caps[i]);
        svc->pools++;
        made++;
    }
    capmem__account_t *acc = account_init(arena, svc, at->root_donation, fn);
    acc->quota = total - at->root_donation;
    acc->caps.limit = at->root_caps != 0 ? at->root_caps : arena->cspace.capacity;
    acc->flags = at->flags;
    snprintf(acc->label, sizeof(acc->label), "root");
    *root = capmem__cap_create(arena, CAPMEM_OBJ_RAM_SESSION, acc, CAPMEM_RIGHTS_ALL,
                               CAPMEM__SLOT_ORIGINAL, capmem__cap_index(pool_caps[0]), NULL);
    acc->slot = capmem__cap_index(*root);
    svc->root = acc;
    svc->alive = true;
    svc->next_svc = st->services;
    st->services = svc;
    svc = NULL;
out:
    if (svc != NULL) {
        for (size_t i = made; i < n; i++) {
            capmem__free(pools[i]);
        }
        capmem_alloc_destroy(svc->phys);
        capmem__free(svc);
    }
    CAPMEM__LEAVE(arena);
    return err;
}

capmem_err_t capmem_ram_destroy(capmem_arena_t *arena, capmem_cap_t root)
{
    if (arena == NULL) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, __func__, "arena is NULL");
    }
    CAPMEM__ENTER_OR_RETURN(arena);
    capmem__account_t *acc = NULL;
    capmem_err_t err = capmem__account_lookup(arena, root, CAPMEM_RIGHT_WRITE, NULL, &acc);
    if (err == CAPMEM_OK && acc->ref != NULL) {
        err = capmem__fail(CAPMEM_E_INVALID_ARGS, NULL,
                           "\"%s\" is not a service's root account: close it with "
                           "capmem_ram_close()",
                           acc->label);
    } else if (err == CAPMEM_OK && !(capmem__slot(&arena->cspace, capmem__cap_index(root))->flags &
                                     CAPMEM__SLOT_ORIGINAL)) {
        err = capmem__fail(CAPMEM_E_INVALID_ARGS, NULL,
                           "destroy needs the root account's original capability, not a copy");
    }
    if (err == CAPMEM_OK) {
        /*
         * Deleting the pools destroys the service: the first deletion of a
         * pool of a living service closes the root account, and with it
         * every session; each pool gives its memory back to its untyped.
         */
        capmem__ram_service_t *svc = acc->svc;
        for (size_t i = 0; i < sizeof(svc->pool_slot) / sizeof(svc->pool_slot[0]); i++) {
            const uint32_t slot = svc->pool_slot[i];
            if (slot != 0) {
                capmem__cap_revoke_index(arena, slot);
                capmem__cap_delete_leaf(arena, slot);
                if (svc->pools == 0) {
                    break; /* the service is freed with its last pool */
                }
            }
        }
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

/* ---- accounts ------------------------------------------------------------------ */

capmem_err_t capmem_ram_open(capmem_arena_t *arena, capmem_cap_t parent,
                             const capmem_ram_open_attr_t *attr, capmem_cap_t *out)
{
    static const capmem_ram_open_attr_t defaults = CAPMEM_RAM_OPEN_ATTR_INIT;
    const capmem_ram_open_attr_t *at = attr != NULL ? attr : &defaults;
    const char *fn = __func__;
    if (arena == NULL || out == NULL) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, fn, "arena or out is NULL");
    }
    if ((at->flags & ~(uint32_t)CAPMEM_RAM_EXPANDING) != 0) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, fn, "unknown flags 0x%x", at->flags);
    }
    CAPMEM__ENTER_OR_RETURN(arena);
    capmem__account_t *p = NULL;
    uint64_t need = 0;
    capmem_err_t err = check_step(arena, at->donation, "donation", fn);
    if (err == CAPMEM_OK && at->donation < min_donation(arena)) {
        err =
            capmem__fail(CAPMEM_E_INVALID_ARGS, fn,
                         "a donation of %llu bytes cannot hold the session record (minimum "
                         "%llu)",
                         (unsigned long long)at->donation, (unsigned long long)min_donation(arena));
    }
    if (err == CAPMEM_OK) {
        err = check_step(arena, at->upgrade_step, "upgrade step", fn);
    }
    if (err == CAPMEM_OK && !capmem__add_ok(at->donation, at->quota, &need)) {
        err = capmem__fail(CAPMEM_E_INVALID_ARGS, fn, "donation + quota overflows");
    }
    if (err == CAPMEM_OK) {
        err = capmem__account_lookup(arena, parent, CAPMEM_RIGHT_WRITE, fn, &p);
    }
    if (err == CAPMEM_OK && p->quota - p->used < need) {
        err = capmem__fail_space(CAPMEM_E_OUT_OF_RAM, fn, need, p->quota - p->used,
                                 "opening a session needs %llu bytes (donation %llu + quota "
                                 "%llu), the parent has %llu available",
                                 (unsigned long long)need, (unsigned long long)at->donation,
                                 (unsigned long long)at->quota,
                                 (unsigned long long)(p->quota - p->used));
    }
    if (err == CAPMEM_OK &&
        (at->caps == UINT64_MAX || p->caps.limit - p->caps.used < at->caps + 1 ||
         p->caps.used > p->caps.limit)) {
        err =
            capmem__fail_space(CAPMEM_E_OUT_OF_CAPS, fn, at->caps + 1, p->caps.limit - p->caps.used,
                               "the parent's capability quota cannot pay %llu capabilities",
                               (unsigned long long)(at->caps + 1));
    }
    if (err == CAPMEM_OK) {
        err = capmem__cap_reserve_check(arena, &p->caps, 1);
    }
    if (err == CAPMEM_OK) {
        err = phys_check(p->svc, at->donation, "the session's donation", fn);
    }
    if (err == CAPMEM_OK) {
        capmem__account_t *acc = account_init(arena, p->svc, at->donation, fn);
        acc->ref = p;
        acc->quota = at->quota;
        acc->caps.limit = at->caps;
        acc->flags = at->flags;
        acc->upgrade_step = at->upgrade_step;
        set_label(acc, at->label);
        p->quota -= need;
        p->caps.limit -= at->caps;
        p->sessions++;
        *out = capmem__cap_create(arena, CAPMEM_OBJ_RAM_SESSION, acc, CAPMEM_RIGHTS_ALL,
                                  CAPMEM__SLOT_ORIGINAL, p->slot, &p->caps);
        acc->slot = capmem__cap_index(*out);
        if (capmem__events_on(arena)) {
            capmem__emitf(arena, CAPMEM_EVENT_DONATE, *out, at->donation, at->quota,
                          "session \"%s\" opened by \"%s\": donation %llu, quota %llu", acc->label,
                          p->label, (unsigned long long)at->donation,
                          (unsigned long long)at->quota);
        }
    }
    CAPMEM__LEAVE(arena);
    return err;
}

static void account_destroy(capmem_arena_t *arena, void *obj, capmem_cap_t handle)
{
    capmem__account_t *acc = obj;
    capmem__ram_service_t *svc = acc->svc;
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
    CAPMEM_ASSERT(acc->used == acc->lent, "own dataspaces were freed first (they are children)");
    CAPMEM_ASSERT(acc->sessions == 0, "child sessions were closed first");
    if (ref != NULL) {
        capmem__pass_lent(acc, ref);
    }
    /*
     * The root dies last in its service, after every account that could
     * borrow from it (they are all its descendants), so it lends nothing.
     */
    CAPMEM_ASSERT(acc->lent_list == NULL && acc->lent == 0, "the root has nothing lent left");
    uint64_t returned = acc->quota + acc->meta.donation;
    if (ref != NULL) {
        ref->quota += returned;
        ref->caps.limit += acc->caps.limit;
        ref->sessions--;
    } else {
        svc->alive = false;
        svc->root = NULL;
    }
    if (capmem__events_on(arena)) {
        capmem__emitf(arena, CAPMEM_EVENT_SESSION_CLOSE, handle, returned, 0,
                      "session \"%s\" closed: %llu bytes return to \"%s\"", acc->label,
                      (unsigned long long)returned, ref != NULL ? ref->label : "(none)");
    }
    /* The account record lives in its own first chunk: copy what we need first. */
    capmem__meta_t m = acc->meta;
    capmem__meta_release(svc, &m);
    svc_unref(arena, svc);
}

capmem_err_t capmem_ram_close(capmem_arena_t *arena, capmem_cap_t account)
{
    if (arena == NULL) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, __func__, "arena is NULL");
    }
    CAPMEM__ENTER_OR_RETURN(arena);
    capmem__account_t *acc = NULL;
    capmem__slot_t *s = NULL;
    capmem_err_t err = capmem__account_lookup(arena, account, CAPMEM_RIGHT_WRITE, __func__, &acc);
    if (err == CAPMEM_OK) {
        s = capmem__slot(&arena->cspace, capmem__cap_index(account));
        if (!(s->flags & CAPMEM__SLOT_ORIGINAL)) {
            err = capmem__fail(CAPMEM_E_INVALID_ARGS, __func__,
                               "close needs the account's original capability, not a copy");
        } else if (acc->ref == NULL && acc->sessions != 0) {
            err = capmem__fail(CAPMEM_E_DELETE_FIRST, __func__,
                               "the root account has %u child sessions: close them first",
                               acc->sessions);
        }
    }
    if (err == CAPMEM_OK) {
        capmem__cap_revoke_index(arena, acc->slot);
        capmem__cap_delete_leaf(arena, capmem__cap_index(account));
    }
    CAPMEM__LEAVE(arena);
    return err;
}

static capmem_err_t transfer_pair(capmem_arena_t *arena, capmem_cap_t from, capmem_cap_t to,
                                  const char *fn, capmem__account_t **a, capmem__account_t **b)
{
    capmem_err_t err = capmem__account_lookup(arena, from, CAPMEM_RIGHT_WRITE, fn, a);
    if (err == CAPMEM_OK) {
        err = capmem__account_lookup(arena, to, 0, fn, b);
    }
    if (err == CAPMEM_OK && *a == *b) {
        err = capmem__fail(CAPMEM_E_INVALID_ARGS, fn, "transfer from an account to itself");
    }
    if (err == CAPMEM_OK && (*a)->ref != *b && (*b)->ref != *a) {
        err = capmem__fail(CAPMEM_E_DENIED, fn,
                           "\"%s\" and \"%s\" are not account and reference account", (*a)->label,
                           (*b)->label);
    }
    return err;
}

capmem_err_t capmem_ram_transfer(capmem_arena_t *arena, capmem_cap_t from, capmem_cap_t to,
                                 uint64_t bytes)
{
    if (arena == NULL || bytes == 0) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, __func__, "arena is NULL or bytes is 0");
    }
    CAPMEM__ENTER_OR_RETURN(arena);
    capmem__account_t *a = NULL;
    capmem__account_t *b = NULL;
    capmem_err_t err = transfer_pair(arena, from, to, __func__, &a, &b);
    if (err == CAPMEM_OK && a->quota - a->used < bytes) {
        err =
            capmem__fail_space(CAPMEM_E_OUT_OF_RAM, __func__, bytes, a->quota - a->used,
                               "\"%s\" has %llu bytes available, %llu asked", a->label,
                               (unsigned long long)(a->quota - a->used), (unsigned long long)bytes);
    }
    if (err == CAPMEM_OK) {
        a->quota -= bytes;
        b->quota += bytes;
        if (capmem__events_on(arena)) {
            capmem__emitf(arena, CAPMEM_EVENT_TRANSFER, from, bytes, 0,
                          "transfer %llu bytes from \"%s\" to \"%s\"", (unsigned long long)bytes,
                          a->label, b->label);
        }
    }
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
    capmem__account_t *a = NULL;
    capmem__account_t *b = NULL;
    capmem_err_t err = transfer_pair(arena, from, to, __func__, &a, &b);
    if (err == CAPMEM_OK &&
        (a->caps.used > a->caps.limit || a->caps.limit - a->caps.used < count)) {
        err = capmem__fail_space(CAPMEM_E_OUT_OF_CAPS, __func__, count,
                                 a->caps.used > a->caps.limit ? 0 : a->caps.limit - a->caps.used,
                                 "\"%s\" has too little unused capability quota", a->label);
    }
    if (err == CAPMEM_OK) {
        a->caps.limit -= count;
        b->caps.limit += count;
    }
    CAPMEM__LEAVE(arena);
    return err;
}

capmem_err_t capmem_ram_upgrade(capmem_arena_t *arena, capmem_cap_t session, capmem_cap_t payer,
                                uint64_t bytes)
{
    if (arena == NULL) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, __func__, "arena is NULL");
    }
    CAPMEM__ENTER_OR_RETURN(arena);
    capmem__account_t *pay = NULL;
    capmem__slot_t *s = NULL;
    capmem_err_t err = check_step(arena, bytes, "upgrade", __func__);
    if (err == CAPMEM_OK) {
        err = capmem__account_lookup(arena, payer, CAPMEM_RIGHT_WRITE, __func__, &pay);
    }
    if (err == CAPMEM_OK) {
        err = capmem__cap_lookup(arena, session, CAPMEM_OBJ_RAM_SESSION, 0, &s);
    }
    capmem__meta_t *m = NULL;
    const char *who = "?";
    if (err == CAPMEM_OK) {
        capmem__account_t *acc = s->obj;
        if (acc != pay && acc->ref != pay) {
            err = capmem__fail(CAPMEM_E_DENIED, __func__,
                               "\"%s\" can only be upgraded by itself or its reference account",
                               acc->label);
        }
        m = &acc->meta;
        who = acc->label;
    }
    if (err == CAPMEM_OK) {
        err = capmem__meta_upgrade(arena, m, pay, session, who, bytes, __func__);
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
        err = check_step(arena, step, "upgrade step", __func__);
    }
    if (err == CAPMEM_OK) {
        err = capmem__account_lookup(arena, account, CAPMEM_RIGHT_WRITE, __func__, &acc);
    }
    if (err == CAPMEM_OK) {
        acc->flags =
            on ? acc->flags | CAPMEM_RAM_EXPANDING : acc->flags & ~(uint32_t)CAPMEM_RAM_EXPANDING;
        if (step != 0) {
            acc->upgrade_step = step;
        }
    }
    CAPMEM__LEAVE(arena);
    return err;
}

capmem_err_t capmem_ram_info(capmem_arena_t *arena, capmem_cap_t account, capmem_ram_info_t *info)
{
    if (arena == NULL || info == NULL) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, __func__, "arena or info is NULL");
    }
    CAPMEM__ENTER_OR_RETURN(arena);
    capmem__account_t *acc = NULL;
    capmem_err_t err = capmem__account_lookup(arena, account, 0, __func__, &acc);
    if (err == CAPMEM_OK) {
        memset(info, 0, sizeof(*info));
        info->ref = acc->ref != NULL ? account_handle(arena, acc->ref) : CAPMEM_CAP_NULL;
        info->quota = acc->quota;
        info->used = acc->used;
        info->avail = acc->quota - acc->used;
        info->lent = acc->lent;
        info->donation = acc->meta.donation;
        info->records_used = acc->meta.used;
        info->records_capacity = acc->meta.capacity;
        info->caps_limit = acc->caps.limit;
        info->caps_used = acc->caps.used;
        info->upgrade_step = acc->upgrade_step;
        info->upgrades = acc->upgrades;
        info->expanding = (acc->flags & CAPMEM_RAM_EXPANDING) != 0;
        info->is_root = acc->ref == NULL;
        snprintf(info->label, sizeof(info->label), "%s", acc->label);
    }
    CAPMEM__LEAVE(arena);
    return err;
}

/* ---- RAM dataspaces -------------------------------------------------------------- */

capmem_err_t capmem_ram_alloc(capmem_arena_t *arena, capmem_cap_t account, uint64_t size,
                              capmem_cap_t *ds)
{
    const char *fn = __func__;
    if (arena == NULL || ds == NULL || size == 0) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, fn, "arena or ds is NULL, or size is 0");
    }
    uint64_t bytes;
    if (!capmem__align_up_ok(size, arena->mem.page_size, &bytes)) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, fn, "size %llu overflows when rounded up",
                            (unsigned long long)size);
    }
    CAPMEM__ENTER_OR_RETURN(arena);
    capmem__account_t *acc = NULL;
    capmem_err_t err = capmem__account_lookup(arena, account, CAPMEM_RIGHT_WRITE, fn, &acc);
    if (err == CAPMEM_OK && acc->quota - acc->used < bytes) {
        err = capmem__fail_space(CAPMEM_E_OUT_OF_RAM, fn, bytes, acc->quota - acc->used,
                                 "RAM quota of \"%s\" exceeded: %llu bytes needed, %llu "
                                 "available",
                                 acc->label, (unsigned long long)bytes,
                                 (unsigned long long)(acc->quota - acc->used));
    }
    if (err == CAPMEM_OK) {
        err = capmem__cap_reserve_check(arena, &acc->caps, 1);
    }
    if (err == CAPMEM_OK && !capmem__meta_has_room(&acc->meta, 1)) {
        /* Do not upgrade for a dataspace that could not be placed anyway. */
        err = phys_check(acc->svc, bytes, "the dataspace", fn);
    }
    if (err == CAPMEM_OK && !capmem__meta_has_room(&acc->meta, 1)) {
        /* An expanding client upgrades only with quota to spare for the dataspace too. */
        if ((acc->flags & CAPMEM_RAM_EXPANDING) &&
            acc->quota - acc->used < bytes + acc->upgrade_step) {
            err = capmem__fail_space(CAPMEM_E_OUT_OF_RAM, fn, bytes + acc->upgrade_step,
                                     acc->quota - acc->used,
                                     "\"%s\" cannot pay an upgrade of %llu bytes and the "
                                     "dataspace",
                                     acc->label, (unsigned long long)acc->upgrade_step);
        } else {
            err = capmem__meta_reserve(arena, &acc->meta, acc, account, acc->label, 1, fn);
        }
    }
    /*
     * The physical range is the last thing that can fail, so it is taken
     * here, in decode, and nothing needs undoing if it is not there.
     */
    uint64_t off = 0;
    if (err == CAPMEM_OK &&
        capmem_alloc_alloc(acc->svc->phys, bytes, arena->mem.page_size, &off) != CAPMEM_OK) {
        err = phys_fail(acc->svc, bytes, "the dataspace", fn);
    }
    if (err == CAPMEM_OK) {
        capmem__ds_t *rec = NULL;
        err = capmem__meta_alloc(&acc->meta, fn, (void **)&rec);
        CAPMEM_ASSERT(err == CAPMEM_OK, "room was made above");
        capmem__backing_zero(&arena->mem, off, bytes);
        rec->meta = &acc->meta;
        rec->off = off;
        rec->size = bytes;
        rec->owner = acc;
        rec->flags = CAPMEM__DS_RAM | CAPMEM__DS_WRITABLE;
        *ds = capmem__cap_create(arena, CAPMEM_OBJ_DATASPACE, rec, CAPMEM_RIGHTS_ALL,
                                 CAPMEM__SLOT_ORIGINAL, acc->slot, &acc->caps);
        rec->slot = capmem__cap_index(*ds);
        acc->used += bytes;
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
    capmem_err_t err = capmem__account_lookup(arena, account, 0, __func__, &acc);
    if (err == CAPMEM_OK) {
        map_walk_t w = {.phys_base = arena->mem.phys_base, .fn = fn, .ctx = ctx};
        err = capmem_alloc_walk(acc->svc->phys, map_visit, &w);
    }
    CAPMEM__LEAVE(arena);
    return err;
}
