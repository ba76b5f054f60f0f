/* SPDX-License-Identifier: MIT */
/*
 * Layer 8, space banks (Coyotos' SpaceBank, EROS and KeyKOS before it).
 *
 * A service is opened on an account of the RAM service and takes one RAM
 * dataspace of it: the first chunk holds the records (the service, the
 * banks, the nodes and the frames' dataspace records, 64 bytes each), the
 * rest are the frames the prime bank hands out. Every bank's capability is
 * a child of the prime bank's, and every object's too, so the derivation
 * tree stays flat and moving objects between banks (remove) touches no
 * capability; the bank tree lives in the records.
 *
 * Charging: an allocation is checked against the bank and every ancestor
 * before anything is charged, then charged to all of them. Coyotos charges
 * up the tree and undoes the partial charges on LimitReached; deciding
 * first (seL4's decode, then invoke) gives the same all-or-nothing answer
 * with nothing to undo.
 *
 * Deaths: a bank, frame or node dies when its original capability is
 * deleted, whoever deletes it (capmem_bank_destroy and capmem_bank_free
 * delete them; so does a revoke, or the account's close). The destroy
 * hooks below uncharge, give the page back and free the record, so every
 * path keeps the books.
 */
#include <stdio.h>
#include <string.h>

#include "bank_internal.h"

typedef struct bank_state {
    capmem__bank_svc_t *svc;
} bank_state_t;

static const capmem__layer_t bank_layer = {
    .name = "space banks",
    .fini = NULL,
    .check = capmem__bank_check,
};

capmem__bank_svc_t *capmem__bank_service(const capmem_arena_t *arena)
{
    const bank_state_t *st = capmem__layer_state(arena, &bank_layer);
    return st != NULL ? st->svc : NULL;
}

capmem__bank_svc_t *capmem__bank_svc_of(capmem__bank_t *b)
{
    while (b->parent != NULL) {
        b = b->parent;
    }
    return (capmem__bank_svc_t *)(void *)b; /* the prime bank leads the service record */
}

capmem_cap_t capmem__bank_handle(const capmem_arena_t *arena, const capmem__bank_t *b)
{
    return b->slot != 0 ? capmem__slot_handle(&arena->cspace, b->slot) : CAPMEM_CAP_NULL;
}

void capmem__bank_own(const capmem__bank_svc_t *svc, const capmem__bank_t *b,
                      uint64_t own[CAPMEM_BANK_TYPES])
{
    own[CAPMEM_BANK_FRAME] = b == svc->kernel ? svc->heap_frames : 0;
    own[CAPMEM_BANK_NODE] = 0;
    for (const capmem__ds_t *d = svc->frame_list; d != NULL; d = d->u.bank.link.next) {
        own[CAPMEM_BANK_FRAME] += d->u.bank.bank == b;
    }
    for (const capmem__bnode_t *n = svc->node_list; n != NULL; n = n->next) {
        own[CAPMEM_BANK_NODE] += n->bank == b;
    }
    for (const capmem__bank_t *c = b->child; c != NULL; c = c->sibling) {
        own[CAPMEM_BANK_NODE]++;
    }
}

int capmem__bank_walk(capmem__bank_svc_t *svc, int (*fn)(capmem__bank_t *b, void *ctx), void *ctx)
{
    /* Pre-order without a stack: down to the first child, else along, else up and along. */
    capmem__bank_t *b = &svc->prime;
    while (b != NULL) {
        int rc = fn(b, ctx);
        if (rc != 0) {
            return rc;
        }
        if (b->child != NULL) {
            b = b->child;
            continue;
        }
        while (b != NULL && b->sibling == NULL) {
            b = b->parent;
        }
        b = b != NULL ? b->sibling : NULL;
    }
    return 0;
}

/* ---- charging ----------------------------------------------------------------------- */

/* LIMIT_REACHED unless @p b and every ancestor can take @p n more of each type. */
static capmem_err_t can_charge(const capmem__bank_t *b, const uint64_t n[CAPMEM_BANK_TYPES])
{
    for (const capmem__bank_t *a = b; a != NULL; a = a->parent) {
        for (int t = 0; t < CAPMEM_BANK_TYPES; t++) {
            const uint64_t avail = a->used[t] < a->limit[t] ? a->limit[t] - a->used[t] : 0;
            if (n[t] > avail) {
                return capmem__fail_space(
                    CAPMEM_E_LIMIT_REACHED, NULL, n[t], avail,
                    "%llu %s(s) would pass the limit of %s (depth %u: %llu, used %llu)",
                    (unsigned long long)n[t], t == CAPMEM_BANK_FRAME ? "frame" : "node",
                    a == b              ? "the bank"
                    : a->parent == NULL ? "the prime bank"
                                        : "an ancestor",
                    a->depth, (unsigned long long)a->limit[t], (unsigned long long)a->used[t]);
            }
        }
    }
    return CAPMEM_OK;
}

static void charge(capmem__bank_t *b, int type, uint64_t n)
{
    for (capmem__bank_t *a = b; a != NULL; a = a->parent) {
        a->used[type] += n;
    }
}

static void uncharge(capmem__bank_t *b, int type, uint64_t n)
{
    for (capmem__bank_t *a = b; a != NULL; a = a->parent) {
        CAPMEM_ASSERT(a->used[type] >= n, "what is uncharged was charged");
        a->used[type] -= n;
    }
}

/* ---- pages ------------------------------------------------------------------------------ */

static uint64_t pages_avail(const capmem__bank_svc_t *svc)
{
    uint64_t n = capmem_alloc_avail(svc->pages[0]);
    if (svc->pages[1] != NULL) {
        n += capmem_alloc_avail(svc->pages[1]);
    }
    return n;
}

/* A run of @p bytes: released frames first, then the dataspace's. */
static bool pages_take(capmem__bank_svc_t *svc, uint64_t bytes, uint64_t page, uint64_t *off)
{
    for (int i = 1; i >= 0; i--) {
        if (svc->pages[i] != NULL && capmem_alloc_largest(svc->pages[i]) >= bytes &&
            capmem_alloc_alloc(svc->pages[i], bytes, page, off) == CAPMEM_OK) {
            return true;
        }
    }
    return false;
}

static void pages_give(capmem__bank_svc_t *svc, uint64_t off, uint64_t bytes)
{
    const int i = off >= svc->page_off && off - svc->page_off < svc->page_bytes ? 0 : 1;
    capmem_err_t err = capmem_alloc_free(svc->pages[i], off, bytes);
    CAPMEM_ASSERT(err == CAPMEM_OK, "a frame goes back where it came from");
    (void)err;
}

/* ---- the kernel's lender ------------------------------------------------------------------ */

static capmem_err_t lend_check(capmem_arena_t *arena, void *ctx, uint64_t frames)
{
    capmem__bank_svc_t *svc = ctx;
    const uint64_t n[CAPMEM_BANK_TYPES] = {[CAPMEM_BANK_FRAME] = frames};
    capmem_err_t err = can_charge(svc->kernel, n);
    if (err == CAPMEM_OK) {
        const uint64_t bytes = frames << arena->mem.page_shift;
        if ((svc->pages[0] == NULL || capmem_alloc_largest(svc->pages[0]) < bytes) &&
            (svc->pages[1] == NULL || capmem_alloc_largest(svc->pages[1]) < bytes)) {
            err = capmem__fail_space(CAPMEM_E_OUT_OF_PHYS, NULL, bytes, 0,
                                     "the banks have no %llu contiguous free frames",
                                     (unsigned long long)frames);
        }
    }
    return err;
}

static uint64_t lend(capmem_arena_t *arena, void *ctx, uint64_t frames)
{
    capmem__bank_svc_t *svc = ctx;
    uint64_t off = 0;
    const bool ok = pages_take(svc, frames << arena->mem.page_shift, arena->mem.page_size, &off);
    CAPMEM_ASSERT(ok, "lend_check found the run");
    (void)ok;
    charge(svc->kernel, CAPMEM_BANK_FRAME, frames);
    svc->heap_frames += frames;
    capmem__kernel_frames_owned(arena, off, frames, (uint64_t)(uintptr_t)svc->kernel, true);
    return off;
}

static void emit_bank(capmem_arena_t *arena, const capmem__bank_t *b, capmem_bank_op_t op,
                      const char *what)
{
    if (capmem__event_wanted(arena, CAPMEM_EVENT_BANK)) {
        capmem__emit(arena,
                     &(capmem__ev_t){.kind = CAPMEM_EVENT_BANK,
                                     .cap = capmem__bank_handle(arena, b),
                                     .other = b->parent != NULL
                                                  ? capmem__bank_handle(arena, b->parent)
                                                  : CAPMEM_CAP_NULL,
                                     .a = b->used[CAPMEM_BANK_FRAME],
                                     .b = op},
                     "bank at depth %u %s: %llu frames, %llu nodes charged", b->depth, what,
                     (unsigned long long)b->used[CAPMEM_BANK_FRAME],
                     (unsigned long long)b->used[CAPMEM_BANK_NODE]);
    }
}

/* Frames the kernel released join the prime bank (pages[1]); its limit grows. */
static void receive(capmem_arena_t *arena, void *ctx, uint64_t off, uint64_t frames)
{
    capmem__bank_svc_t *svc = ctx;
    CAPMEM_ASSERT(svc->pages[1] != NULL, "the service made room for the kernel's frames");
    /* Held frame by frame when the service opened: each one is handed out on its own now. */
    for (uint64_t f = 0; f < frames; f++) {
        capmem_err_t err = capmem_alloc_free(svc->pages[1], off + (f << arena->mem.page_shift),
                                             arena->mem.page_size);
        CAPMEM_ASSERT(err == CAPMEM_OK, "the released run was held for the kernel");
        (void)err;
    }
    svc->released_frames += frames;
    svc->prime.limit[CAPMEM_BANK_FRAME] += frames;
    emit_bank(arena, &svc->prime, CAPMEM_BANK_OP_GROW, "grew by the frames the kernel released");
}

/* ---- destroy hooks ------------------------------------------------------------------------ */

static void emit_free(capmem_arena_t *arena, capmem_cap_t h, bool frame, uint64_t off)
{
    if (capmem__event_wanted(arena, CAPMEM_EVENT_BANK_FREE)) {
        capmem__emit(arena,
                     &(capmem__ev_t){.kind = CAPMEM_EVENT_BANK_FREE,
                                     .cap = h,
                                     .a = frame ? 1 : 0,
                                     .offset = off,
                                     .size = frame ? arena->mem.page_size : 0},
                     "bank %s freed", frame ? "frame" : "node");
    }
}

static void frame_destroy(capmem_arena_t *arena, capmem__ds_t *ds)
{
    capmem__bank_t *b = ds->u.bank.bank;
    capmem__bank_svc_t *svc = capmem__bank_svc_of(b);
    uncharge(b, CAPMEM_BANK_FRAME, 1);
    capmem__ds_link_t *l = &ds->u.bank.link;
    if (l->prev != NULL) {
        l->prev->u.bank.link.next = l->next;
    } else {
        svc->frame_list = l->next;
    }
    if (l->next != NULL) {
        l->next->u.bank.link.prev = l->prev;
    }
    pages_give(svc, ds->off, ds->size);
    capmem__stat_sub(&arena->stats.bank_frames, 1);
    capmem__kernel_frames_owned(arena, ds->off, 1, 0, false);
    /* The slot is free already: the DS_FREE event just before this one names the frame. */
    emit_free(arena, CAPMEM_CAP_NULL, true, ds->off);
}

static int frame_describe(capmem_arena_t *arena, const capmem__ds_t *ds, char *buf, size_t len)
{
    (void)arena;
    const capmem__bank_t *b = ds->u.bank.bank;
    return snprintf(buf, len, "bank frame at offset 0x%llx, of a bank at depth %u",
                    (unsigned long long)ds->off, b->depth);
}

static capmem_err_t frame_access(capmem_arena_t *arena, capmem__ds_t *ds, uint64_t offset,
                                 void *buf, size_t len, bool write)
{
    if (write) {
        memcpy(capmem__bytes(&arena->mem, ds->off + offset), buf, len);
    } else {
        memcpy(buf, capmem__bytes(&arena->mem, ds->off + offset), len);
    }
    return CAPMEM_OK;
}

static const capmem__ds_kind_ops_t frame_kind = {
    .access = frame_access,
    .destroy = frame_destroy,
    .describe = frame_describe,
};

static void node_destroy(capmem_arena_t *arena, void *obj, capmem_cap_t handle)
{
    capmem__bnode_t *n = obj;
    capmem__bank_svc_t *svc = capmem__bank_svc_of(n->bank);
    uncharge(n->bank, CAPMEM_BANK_NODE, 1);
    if (n->prev != NULL) {
        n->prev->next = n->next;
    } else {
        svc->node_list = n->next;
    }
    if (n->next != NULL) {
        n->next->prev = n->prev;
    }
    capmem__meta_free(arena, &svc->meta, n);
    emit_free(arena, handle, false, 0);
}

static int node_describe(capmem_arena_t *arena, const void *obj, char *buf, size_t len)
{
    (void)arena;
    const capmem__bnode_t *n = obj;
    return snprintf(buf, len, "bank node of a bank at depth %u", n->bank->depth);
}

static const capmem__type_ops_t node_type = {
    .type = CAPMEM_OBJ_BANK_NODE,
    .name = "bank node",
    .destroy = node_destroy,
    .describe = node_describe,
};

/* Delete an object's or bank's original capability, its copies first; the hooks do the rest. */
static void kill_slot(capmem_arena_t *arena, uint32_t slot)
{
    capmem__cap_revoke_index(arena, slot);
    capmem__cap_delete_leaf(arena, slot);
}

/* Unlink @p b from its parent's children. */
static void unlink_child(capmem__bank_t *b)
{
    capmem__bank_t **p = &b->parent->child;
    while (*p != b) {
        p = &(*p)->sibling;
    }
    *p = b->sibling;
    b->sibling = NULL;
}

/* The service is closing (the prime bank's capability died): everything else died first. */
static void service_close(capmem_arena_t *arena, capmem__bank_svc_t *svc)
{
    bank_state_t *st = capmem__layer_state(arena, &bank_layer);
    capmem__kernel_set_lender(arena, NULL);
    if (svc->released_frames > 0) {
        capmem__kernel_unclaim_released(arena); /* the next service gets them */
    }
    if (svc->kernel != NULL) {
        /*
         * The kernel bank has no capability: it goes with the service. Heap
         * frames it lent are never returned (capmem_bank_service_destroy
         * refuses then); only the account's close or the arena's teardown
         * get here with some, and the memory is the account's again.
         */
        svc->prime.child = NULL;
        capmem__meta_free(arena, &svc->meta, svc->kernel);
        svc->kernel = NULL;
    }
    CAPMEM_ASSERT(svc->prime.child == NULL && svc->frame_list == NULL && svc->node_list == NULL,
                  "every bank and object died before the prime bank");
    capmem_alloc_t *pages[2] = {svc->pages[0], svc->pages[1]};
    st->svc = NULL;
    /*
     * The records live in the dataspace, which dies next (the prime bank is
     * its child). Release the slab first, so its chunk stops being a
     * record pool (Valgrind's mempool); the record is in it: copy it out.
     */
    capmem__meta_t m = svc->meta;
    capmem__meta_release(arena, pages[0], &m);
    capmem_alloc_destroy(pages[0]);
    capmem_alloc_destroy(pages[1]);
}

static void bank_destroy(capmem_arena_t *arena, void *obj, capmem_cap_t handle)
{
    (void)handle;
    capmem__bank_t *b = obj;
    capmem__bank_svc_t *svc = capmem__bank_svc_of(b);
    if (b->flags & CAPMEM__BANK_PRIME) {
        service_close(arena, svc);
        return;
    }
    /* Sub-banks first (each one's own hook empties it), then this bank's objects. */
    while (b->child != NULL) {
        kill_slot(arena, b->child->slot);
    }
    for (capmem__ds_t *d = svc->frame_list; d != NULL;) {
        capmem__ds_t *next = d->u.bank.link.next;
        if (d->u.bank.bank == b) {
            kill_slot(arena, d->slot);
        }
        d = next;
    }
    for (capmem__bnode_t *n = svc->node_list; n != NULL;) {
        capmem__bnode_t *next = n->next;
        if (n->bank == b) {
            kill_slot(arena, n->slot);
        }
        n = next;
    }
    b->slot = 0;
    emit_bank(arena, b, CAPMEM_BANK_OP_DESTROY, "destroyed");
    unlink_child(b);
    uncharge(b->parent, CAPMEM_BANK_NODE, 1); /* its record, charged to the parent */
    svc->banks--;
    capmem__stat_sub(&arena->stats.banks, 1);
    capmem__meta_free(arena, &svc->meta, b);
}

static int bank_describe(capmem_arena_t *arena, const void *obj, char *buf, size_t len)
{
    (void)arena;
    const capmem__bank_t *b = obj;
    return snprintf(buf, len, "%s at depth %u: frames %llu of %llu, nodes %llu",
                    (b->flags & CAPMEM__BANK_PRIME) ? "prime bank" : "space bank", b->depth,
                    (unsigned long long)b->used[CAPMEM_BANK_FRAME],
                    (unsigned long long)b->limit[CAPMEM_BANK_FRAME],
                    (unsigned long long)b->used[CAPMEM_BANK_NODE]);
}

static const capmem__type_ops_t bank_type = {
    .type = CAPMEM_OBJ_BANK,
    .name = "space bank",
    .destroy = bank_destroy,
    .describe = bank_describe,
};

/* ---- the service ------------------------------------------------------------------------------
 */

typedef struct svc_plan {
    bank_state_t *st;
    capmem__account_t *acc;
    uint64_t frames;
    uint64_t bytes; /* donation + frames */
    uint64_t rel_off;
    uint64_t rel_frames;
    capmem_alloc_t *pages[2];
    capmem__kernel_t *kernel; /* booted, HYBRID: make the kernel bank */
} svc_plan_t;

static void svc_plan_free(svc_plan_t *p)
{
    capmem_alloc_destroy(p->pages[0]);
    capmem_alloc_destroy(p->pages[1]);
}

static capmem_err_t decode_service(capmem_arena_t *arena, capmem_cap_t account,
                                   const capmem_bank_service_attr_t *at, svc_plan_t *p)
{
    const uint64_t page = arena->mem.page_size;
    const uint64_t min = CAPMEM__REC * (2u + CAPMEM_BANK_SERVICE_SLOTS);
    if (at->donation == 0 || !capmem__is_aligned(at->donation, page) || at->donation < min) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, NULL,
                            "donation of %llu bytes is not a multiple of the page size (%llu) or "
                            "below %llu bytes (the service record and one more)",
                            (unsigned long long)at->donation, (unsigned long long)page,
                            (unsigned long long)min);
    }
    capmem_err_t err = capmem__account_lookup(arena, account, CAPMEM_RIGHT_WRITE, &p->acc);
    if (err != CAPMEM_OK) {
        return err;
    }
    err = capmem__layer_setup(arena, &bank_layer, sizeof(bank_state_t), (void **)&p->st);
    if (err != CAPMEM_OK) {
        return err;
    }
    if (p->st->svc != NULL) {
        return capmem__fail(CAPMEM_E_DENIED, NULL, "a bank service exists on this arena already");
    }
    capmem__account_t *acc = p->acc;
    const uint64_t avail = capmem__quota_avail(&acc->ram);
    p->frames = at->frames;
    if (p->frames == 0) {
        p->frames = avail > at->donation ? (avail - at->donation) >> arena->mem.page_shift : 0;
    }
    uint64_t fb;
    if (p->frames == 0 || !capmem__mul_ok(p->frames, page, &fb) ||
        !capmem__add_ok(fb, at->donation, &p->bytes)) {
        return capmem__fail_space(CAPMEM_E_OUT_OF_RAM, NULL, at->donation + page, avail,
                                  "\"%s\" cannot pay a donation of %llu bytes and %llu frames",
                                  acc->label, (unsigned long long)at->donation,
                                  (unsigned long long)p->frames);
    }
    err = capmem__account_can_pay(acc, p->bytes, "a bank service");
    if (err != CAPMEM_OK) {
        return err;
    }
    capmem__kernel_t *k = capmem__kernel_get(arena);
    p->kernel = k != NULL && k->strategy == CAPMEM_KERNEL_HYBRID ? k : NULL;
    err = capmem__cap_reserve_check(arena, &acc->caps, 2);
    if (err != CAPMEM_OK) {
        return err;
    }
    if (!capmem__meta_has_room(&acc->meta, 1)) {
        return capmem__meta_full(&acc->meta, 1);
    }
    err = capmem__ram_phys_check(acc->phys, p->bytes, "a bank service");
    if (err != CAPMEM_OK) {
        return err;
    }
    /* Host memory last: the page allocators (one over the released frames, if the kernel has). */
    err = capmem_alloc_create_range(0, arena->mem.ram_size, page, &p->pages[0]);
    if (err == CAPMEM_OK && capmem__kernel_release_span(arena, &p->rel_off, &p->rel_frames)) {
        err = capmem_alloc_create_range(p->rel_off, p->rel_frames * page, page, &p->pages[1]);
    }
    if (err != CAPMEM_OK) {
        svc_plan_free(p);
        return capmem__fail(CAPMEM_E_HOST_NOMEM, NULL, "no host memory for the bank service");
    }
    return CAPMEM_OK;
}

/* Hold all of [0, ram) in @p a but [off, off + bytes): only that range is handed out. */
static void pages_only(capmem_alloc_t *a, uint64_t ram, uint64_t off, uint64_t bytes)
{
    capmem_err_t err = CAPMEM_OK;
    if (off > 0) {
        err = capmem_alloc_alloc_at(a, 0, off);
    }
    if (err == CAPMEM_OK && off + bytes < ram) {
        err = capmem_alloc_alloc_at(a, off + bytes, ram - off - bytes);
    }
    CAPMEM_ASSERT(err == CAPMEM_OK, "a fresh allocator holds the whole span");
    (void)err;
}

static capmem_cap_t invoke_service(capmem_arena_t *arena, const capmem_bank_service_attr_t *at,
                                   svc_plan_t *p)
{
    capmem__account_t *acc = p->acc;
    const uint64_t ram = arena->mem.ram_size;
    /* The dataspace, as capmem_ram_alloc makes one. */
    capmem__ds_t *rec = NULL;
    uint64_t off = 0;
    capmem_err_t err = capmem__meta_alloc(arena, &acc->meta, (void **)&rec);
    if (err == CAPMEM_OK) {
        err = capmem_alloc_alloc(acc->phys, p->bytes, arena->mem.page_size, &off);
    }
    CAPMEM_ASSERT(err == CAPMEM_OK, "the record and the range were checked");
    capmem__backing_zero(&arena->mem, off, p->bytes);
    const capmem_cap_t dsh = capmem__ds_make_ram(arena, acc, rec, off, p->bytes);
    capmem__stat_add(&arena->stats.dataspaces, 1);
    /* The records' chunk comes first, from the dataspace; the frames are the rest. */
    pages_only(p->pages[0], ram, off, p->bytes);
    capmem__meta_t m = {.kind = CAPMEM__META_BANK};
    err = capmem__meta_add_chunk(arena, p->pages[0], &m, at->donation);
    CAPMEM_ASSERT(err == CAPMEM_OK, "the dataspace holds the donation");
    capmem__bank_svc_t *svc = capmem__meta_session_record(arena, &m, CAPMEM_BANK_SERVICE_SLOTS);
    svc->meta = m;
    svc->acc = acc;
    svc->pages[0] = p->pages[0];
    svc->pages[1] = p->pages[1];
    svc->page_off = off;
    svc->page_bytes = p->bytes;
    svc->frames = p->frames;
    svc->ds_slot = capmem__cap_index(dsh);
    for (uint64_t f = 0; p->pages[1] != NULL && f < p->rel_frames; f++) {
        /* Held until the kernel releases them, one block per frame (see receive). */
        err = capmem_alloc_alloc_at(p->pages[1], p->rel_off + f * arena->mem.page_size,
                                    arena->mem.page_size);
        CAPMEM_ASSERT(err == CAPMEM_OK, "a fresh allocator holds its span");
    }
    capmem__bank_t *prime = &svc->prime;
    prime->flags = CAPMEM__BANK_PRIME;
    prime->limit[CAPMEM_BANK_FRAME] = p->frames;
    prime->limit[CAPMEM_BANK_NODE] = CAPMEM_BANK_UNLIMITED;
    const capmem_cap_t h = capmem__cap_create(arena, CAPMEM_OBJ_BANK, prime, CAPMEM_BANK_RIGHTS_ALL,
                                              CAPMEM__SLOT_ORIGINAL, svc->ds_slot, &acc->caps);
    prime->slot = capmem__cap_index(h);
    svc->lender = (capmem__kernel_lender_t){
        .can_lend = lend_check, .lend = lend, .receive = receive, .ctx = svc};
    p->st->svc = svc;
    emit_bank(arena, prime, CAPMEM_BANK_OP_SERVICE, "opened");
    if (p->kernel != NULL) {
        /* The kernel's bank: a child of the prime bank, with no capability (no one may destroy it).
         */
        capmem__bank_t *kb = NULL;
        err = capmem__meta_alloc(arena, &svc->meta, (void **)&kb);
        CAPMEM_ASSERT(err == CAPMEM_OK, "a donation holds the service record and one more");
        kb->parent = prime;
        kb->flags = CAPMEM__BANK_KERNEL;
        kb->depth = 1;
        kb->limit[CAPMEM_BANK_FRAME] = CAPMEM_BANK_UNLIMITED;
        kb->limit[CAPMEM_BANK_NODE] = CAPMEM_BANK_UNLIMITED;
        prime->child = kb;
        charge(prime, CAPMEM_BANK_NODE, 1);
        svc->kernel = kb;
    }
    capmem__kernel_set_lender(arena, &svc->lender);
    uint64_t roff = 0;
    uint64_t rframes = 0;
    if (capmem__kernel_claim_released(arena, &roff, &rframes)) {
        receive(arena, svc, roff, rframes);
    }
    return h;
}

capmem_err_t capmem_bank_service_create(capmem_arena_t *arena, capmem_cap_t account,
                                        const capmem_bank_service_attr_t *attr, capmem_cap_t *prime)
{
    if (arena == NULL || attr == NULL || prime == NULL) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, __func__, "arena, attr or prime is NULL");
    }
    CAPMEM__ENTER_OR_RETURN(arena);
    svc_plan_t plan = {0};
    capmem_err_t err = decode_service(arena, account, attr, &plan);
    if (err == CAPMEM_OK) {
        capmem__type_register(arena, &bank_type);
        capmem__type_register(arena, &node_type);
        capmem__ds_kind_register(arena, CAPMEM__DS_BANK_FRAME, &frame_kind);
        *prime = invoke_service(arena, attr, &plan);
    }
    CAPMEM__LEAVE(arena);
    return err;
}

/* Look a bank up: a BANK capability with @p rights. */
static capmem_err_t bank_lookup(capmem_arena_t *arena, capmem_cap_t cap, unsigned rights,
                                capmem__slot_t **slot, capmem__bank_t **out)
{
    capmem__slot_t *s = NULL;
    capmem_err_t err = capmem__cap_lookup(arena, cap, CAPMEM_OBJ_BANK, rights, &s);
    if (err == CAPMEM_OK) {
        *out = s->obj;
        if (slot != NULL) {
            *slot = s;
        }
    }
    return err;
}

capmem_err_t capmem_bank_service_destroy(capmem_arena_t *arena, capmem_cap_t prime)
{
    if (arena == NULL) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, __func__, "arena is NULL");
    }
    CAPMEM__ENTER_OR_RETURN(arena);
    capmem__slot_t *s = NULL;
    capmem__bank_t *b = NULL;
    capmem_err_t err = bank_lookup(arena, prime, CAPMEM_BANK_RIGHT_DESTROY, &s, &b);
    if (err == CAPMEM_OK) {
        err = capmem__cap_require_original(s, "closing the service", "prime bank");
    }
    if (err == CAPMEM_OK && !(b->flags & CAPMEM__BANK_PRIME)) {
        err = capmem__fail(CAPMEM_E_INVALID_ARGS, NULL,
                           "not a prime bank: destroy a sub-bank with capmem_bank_destroy");
    }
    capmem__bank_svc_t *svc = err == CAPMEM_OK ? capmem__bank_svc_of(b) : NULL;
    if (err == CAPMEM_OK && svc->heap_frames > 0) {
        err = capmem__fail(CAPMEM_E_DELETE_FIRST, NULL,
                           "the kernel heap borrowed %llu frames of this service: a heap frame "
                           "is never returned",
                           (unsigned long long)svc->heap_frames);
    }
    if (err == CAPMEM_OK) {
        kill_slot(arena, svc->ds_slot); /* the prime bank is its child: everything goes */
    }
    CAPMEM__LEAVE(arena);
    return err;
}

/* ---- banks ---------------------------------------------------------------------------------- */

capmem_err_t capmem_bank_create(capmem_arena_t *arena, capmem_cap_t parent,
                                const capmem_bank_limits_t *limits, capmem_cap_t *out)
{
    if (arena == NULL || out == NULL) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, __func__, "arena or out is NULL");
    }
    CAPMEM__ENTER_OR_RETURN(arena);
    capmem__bank_t *p = NULL;
    capmem_err_t err = bank_lookup(arena, parent, CAPMEM_BANK_RIGHT_ALLOC, NULL, &p);
    capmem__bank_svc_t *svc = err == CAPMEM_OK ? capmem__bank_svc_of(p) : NULL;
    if (err == CAPMEM_OK) {
        const uint64_t n[CAPMEM_BANK_TYPES] = {[CAPMEM_BANK_NODE] = 1};
        err = can_charge(p, n);
    }
    if (err == CAPMEM_OK && !capmem__meta_has_room(&svc->meta, 1)) {
        err = capmem__meta_full(&svc->meta, 1);
    }
    if (err == CAPMEM_OK) {
        err = capmem__cap_reserve_check(arena, &svc->acc->caps, 1);
    }
    if (err == CAPMEM_OK) {
        capmem__bank_t *b = NULL;
        err = capmem__meta_alloc(arena, &svc->meta, (void **)&b);
        CAPMEM_ASSERT(err == CAPMEM_OK, "room was checked");
        b->parent = p;
        b->depth = (uint16_t)(p->depth + 1);
        for (int t = 0; t < CAPMEM_BANK_TYPES; t++) {
            b->limit[t] = limits != NULL ? limits->limit[t] : CAPMEM_BANK_UNLIMITED;
        }
        /* Appended, so children keep their creation order. */
        capmem__bank_t **tail = &p->child;
        while (*tail != NULL) {
            tail = &(*tail)->sibling;
        }
        *tail = b;
        charge(p, CAPMEM_BANK_NODE, 1);
        svc->banks++;
        capmem__stat_add(&arena->stats.banks, 1);
        *out = capmem__cap_create(arena, CAPMEM_OBJ_BANK, b, CAPMEM_BANK_RIGHTS_ALL,
                                  CAPMEM__SLOT_ORIGINAL, svc->prime.slot, &svc->acc->caps);
        b->slot = capmem__cap_index(*out);
        emit_bank(arena, b, CAPMEM_BANK_OP_CREATE, "created");
    }
    CAPMEM__LEAVE(arena);
    return err;
}

/* Look up a bank that is not the prime bank, for destroy and remove. */
static capmem_err_t decode_sub(capmem_arena_t *arena, capmem_cap_t bank, unsigned right,
                               const char *verb, capmem__bank_t **out)
{
    capmem_err_t err = bank_lookup(arena, bank, right, NULL, out);
    if (err == CAPMEM_OK && ((*out)->flags & CAPMEM__BANK_PRIME)) {
        err = capmem__fail(CAPMEM_E_DENIED, NULL,
                           "the prime bank cannot be %s: close the service "
                           "(capmem_bank_service_destroy)",
                           verb);
    }
    return err;
}

capmem_err_t capmem_bank_destroy(capmem_arena_t *arena, capmem_cap_t bank)
{
    if (arena == NULL) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, __func__, "arena is NULL");
    }
    CAPMEM__ENTER_OR_RETURN(arena);
    capmem__bank_t *b = NULL;
    capmem_err_t err = decode_sub(arena, bank, CAPMEM_BANK_RIGHT_DESTROY, "destroyed", &b);
    if (err == CAPMEM_OK) {
        kill_slot(arena, b->slot); /* bank_destroy frees the subtree */
    }
    CAPMEM__LEAVE(arena);
    return err;
}

capmem_err_t capmem_bank_remove(capmem_arena_t *arena, capmem_cap_t bank)
{
    if (arena == NULL) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, __func__, "arena is NULL");
    }
    CAPMEM__ENTER_OR_RETURN(arena);
    capmem__bank_t *b = NULL;
    capmem_err_t err = decode_sub(arena, bank, CAPMEM_BANK_RIGHT_REMOVE, "removed", &b);
    if (err == CAPMEM_OK) {
        capmem__bank_svc_t *svc = capmem__bank_svc_of(b);
        capmem__bank_t *p = b->parent;
        /*
         * Hand everything to the parent. Its usage already counts all of
         * it (usage includes the sub-banks'), so nothing is re-charged.
         */
        for (capmem__ds_t *d = svc->frame_list; d != NULL; d = d->u.bank.link.next) {
            if (d->u.bank.bank == b) {
                d->u.bank.bank = p;
                capmem__kernel_frames_owned(arena, d->off, 1, (uint64_t)(uintptr_t)p, false);
            }
        }
        for (capmem__bnode_t *n = svc->node_list; n != NULL; n = n->next) {
            if (n->bank == b) {
                n->bank = p;
            }
        }
        capmem__bank_t **tail = &p->child;
        while (*tail != NULL) {
            tail = &(*tail)->sibling;
        }
        for (capmem__bank_t *c = b->child; c != NULL; c = c->sibling) {
            c->parent = p;
        }
        *tail = b->child;
        b->child = NULL;
        /* Their depths fall by one: walk the moved subtrees. */
        for (capmem__bank_t *c = *tail; c != NULL;) {
            c->depth = (uint16_t)(c->parent->depth + 1);
            if (c->child != NULL) {
                c = c->child;
                continue;
            }
            while (c != NULL && c->sibling == NULL && c->parent != p) {
                c = c->parent;
            }
            c = c != NULL ? c->sibling : NULL;
        }
        /* b now holds nothing of its own: its usage is p's now. */
        for (int t = 0; t < CAPMEM_BANK_TYPES; t++) {
            b->used[t] = 0;
        }
        emit_bank(arena, b, CAPMEM_BANK_OP_REMOVE, "removed");
        kill_slot(arena, b->slot); /* frees the empty bank and its record's charge */
    }
    CAPMEM__LEAVE(arena);
    return err;
}

/* ---- objects -----------------------------------------------------------------------------------
 */

capmem_err_t capmem_bank_alloc(capmem_arena_t *arena, capmem_cap_t bank,
                               const capmem_bank_type_t *types, size_t count, capmem_cap_t *out)
{
    if (arena == NULL || types == NULL || out == NULL) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, __func__, "arena, types or out is NULL");
    }
    if (count < 1 || count > CAPMEM_BANK_MAX_OBJECTS) {
        return capmem__fail_range(__func__, 4, count, 1, CAPMEM_BANK_MAX_OBJECTS,
                                  "objects per allocation");
    }
    uint64_t n[CAPMEM_BANK_TYPES] = {0};
    for (size_t i = 0; i < count; i++) {
        if ((unsigned)types[i] >= CAPMEM_BANK_TYPES) {
            return capmem__fail(CAPMEM_E_INVALID_ARGS, __func__, "unknown object type %d",
                                (int)types[i]);
        }
        n[types[i]]++;
    }
    CAPMEM__ENTER_OR_RETURN(arena);
    capmem__bank_t *b = NULL;
    capmem_err_t err = bank_lookup(arena, bank, CAPMEM_BANK_RIGHT_ALLOC, NULL, &b);
    capmem__bank_svc_t *svc = err == CAPMEM_OK ? capmem__bank_svc_of(b) : NULL;
    if (err == CAPMEM_OK) {
        err = can_charge(b, n);
    }
    if (err == CAPMEM_OK && !capmem__meta_has_room(&svc->meta, count)) {
        err = capmem__meta_full(&svc->meta, count);
    }
    if (err == CAPMEM_OK) {
        err = capmem__cap_reserve_check(arena, &svc->acc->caps, (uint32_t)count);
    }
    const uint64_t page = arena->mem.page_size;
    if (err == CAPMEM_OK && pages_avail(svc) < n[CAPMEM_BANK_FRAME] * page) {
        err = capmem__fail_space(CAPMEM_E_OUT_OF_PHYS, NULL, n[CAPMEM_BANK_FRAME],
                                 pages_avail(svc) / page,
                                 "the limits allow %llu frame(s) but the service has %llu free",
                                 (unsigned long long)n[CAPMEM_BANK_FRAME],
                                 (unsigned long long)(pages_avail(svc) / page));
    }
    for (size_t i = 0; err == CAPMEM_OK && i < count; i++) {
        void *rec = NULL;
        capmem_err_t e = capmem__meta_alloc(arena, &svc->meta, &rec);
        CAPMEM_ASSERT(e == CAPMEM_OK, "room was checked");
        (void)e;
        if (types[i] == CAPMEM_BANK_FRAME) {
            capmem__ds_t *d = rec;
            uint64_t off = 0;
            const bool ok = pages_take(svc, page, page, &off);
            CAPMEM_ASSERT(ok, "free frames were counted");
            (void)ok;
            capmem__backing_zero(&arena->mem, off, page);
            d->meta = &svc->meta;
            d->off = off;
            d->size = page;
            d->flags = CAPMEM__DS_BANK_FRAME | CAPMEM__DS_WRITABLE;
            d->u.bank.bank = b;
            d->u.bank.link.next = svc->frame_list;
            if (svc->frame_list != NULL) {
                svc->frame_list->u.bank.link.prev = d;
            }
            svc->frame_list = d;
            out[i] = capmem__cap_create(arena, CAPMEM_OBJ_DATASPACE, d, CAPMEM_RIGHTS_ALL,
                                        CAPMEM__SLOT_ORIGINAL, svc->prime.slot, &svc->acc->caps);
            d->slot = capmem__cap_index(out[i]);
            capmem__kernel_frames_owned(arena, off, 1, (uint64_t)(uintptr_t)b, true);
            capmem__stat_add(&arena->stats.bank_frames, 1);
        } else {
            capmem__bnode_t *nd = rec;
            nd->bank = b;
            nd->next = svc->node_list;
            if (svc->node_list != NULL) {
                svc->node_list->prev = nd;
            }
            svc->node_list = nd;
            out[i] = capmem__cap_create(arena, CAPMEM_OBJ_BANK_NODE, nd, CAPMEM_RIGHTS_ALL,
                                        CAPMEM__SLOT_ORIGINAL, svc->prime.slot, &svc->acc->caps);
            nd->slot = capmem__cap_index(out[i]);
        }
        charge(b, types[i], 1);
    }
    if (err == CAPMEM_OK && capmem__event_wanted(arena, CAPMEM_EVENT_BANK_ALLOC)) {
        capmem__emit(arena,
                     &(capmem__ev_t){.kind = CAPMEM_EVENT_BANK_ALLOC,
                                     .cap = bank,
                                     .other = out[0],
                                     .a = n[CAPMEM_BANK_FRAME],
                                     .b = n[CAPMEM_BANK_NODE]},
                     "bank at depth %u allocated %llu frame(s) and %llu node(s)", b->depth,
                     (unsigned long long)n[CAPMEM_BANK_FRAME],
                     (unsigned long long)n[CAPMEM_BANK_NODE]);
    }
    CAPMEM__LEAVE(arena);
    return err;
}

/*
 * The bank object a handle names: its owning bank and original slot.
 * WRONG_TYPE for anything that is not a bank's frame or node.
 */
static capmem_err_t object_lookup(capmem_arena_t *arena, capmem_cap_t obj, capmem__bank_t **owner,
                                  uint32_t *slot)
{
    capmem__slot_t *s = NULL;
    capmem_err_t err = capmem__cap_lookup(arena, obj, CAPMEM_OBJ_NONE, 0, &s);
    if (err != CAPMEM_OK) {
        return err;
    }
    if (s->type == CAPMEM_OBJ_BANK_NODE) {
        const capmem__bnode_t *n = s->obj;
        *owner = n->bank;
        *slot = n->slot;
        return CAPMEM_OK;
    }
    if (s->type == CAPMEM_OBJ_DATASPACE &&
        capmem__ds_kind((const capmem__ds_t *)s->obj) == CAPMEM__DS_BANK_FRAME) {
        const capmem__ds_t *d = s->obj;
        *owner = d->u.bank.bank;
        *slot = d->slot;
        return CAPMEM_OK;
    }
    capmem__fail(CAPMEM_E_WRONG_TYPE, NULL, "a %s is not an object of a space bank",
                 capmem_obj_type_name((capmem_obj_type_t)s->type));
    capmem__detail()->address = obj;
    return CAPMEM_E_WRONG_TYPE;
}

capmem_err_t capmem_bank_free(capmem_arena_t *arena, capmem_cap_t bank, const capmem_cap_t *objs,
                              size_t count)
{
    if (arena == NULL || objs == NULL) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, __func__, "arena or objs is NULL");
    }
    if (count < 1 || count > CAPMEM_BANK_MAX_OBJECTS) {
        return capmem__fail_range(__func__, 4, count, 1, CAPMEM_BANK_MAX_OBJECTS,
                                  "objects per free");
    }
    CAPMEM__ENTER_OR_RETURN(arena);
    capmem__bank_t *b = NULL;
    uint32_t slots[CAPMEM_BANK_MAX_OBJECTS] = {0};
    capmem_err_t err = bank_lookup(arena, bank, CAPMEM_BANK_RIGHT_FREE, NULL, &b);
    for (size_t i = 0; err == CAPMEM_OK && i < count; i++) {
        capmem__bank_t *owner = NULL;
        err = object_lookup(arena, objs[i], &owner, &slots[i]);
        if (err == CAPMEM_OK && owner != b) {
            err = capmem__fail(CAPMEM_E_DENIED, NULL,
                               "object %zu belongs to another bank (depth %u), not this one "
                               "(depth %u)",
                               i, owner->depth, b->depth);
            capmem__detail()->address = objs[i];
        }
        for (size_t j = 0; err == CAPMEM_OK && j < i; j++) {
            if (slots[j] == slots[i]) {
                err = capmem__fail(CAPMEM_E_INVALID_ARGS, NULL, "object %zu is listed twice", i);
            }
        }
    }
    for (size_t i = 0; err == CAPMEM_OK && i < count; i++) {
        kill_slot(arena, slots[i]); /* the hooks uncharge and free */
    }
    CAPMEM__LEAVE(arena);
    return err;
}

capmem_err_t capmem_bank_owns(capmem_arena_t *arena, capmem_cap_t bank, capmem_cap_t obj,
                              bool *owns)
{
    if (arena == NULL || owns == NULL) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, __func__, "arena or owns is NULL");
    }
    CAPMEM__ENTER_OR_RETURN(arena);
    capmem__bank_t *b = NULL;
    capmem__bank_t *owner = NULL;
    uint32_t slot = 0;
    capmem_err_t err = bank_lookup(arena, bank, CAPMEM_BANK_RIGHT_QUERY, NULL, &b);
    if (err == CAPMEM_OK) {
        err = object_lookup(arena, obj, &owner, &slot);
    }
    if (err == CAPMEM_OK) {
        *owns = owner == b;
    }
    CAPMEM__LEAVE(arena);
    return err;
}

capmem_err_t capmem_bank_set_limits(capmem_arena_t *arena, capmem_cap_t bank,
                                    const capmem_bank_limits_t *limits)
{
    if (arena == NULL || limits == NULL) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, __func__, "arena or limits is NULL");
    }
    CAPMEM__ENTER_OR_RETURN(arena);
    capmem__bank_t *b = NULL;
    capmem_err_t err = bank_lookup(arena, bank, CAPMEM_BANK_RIGHT_LIMITS, NULL, &b);
    if (err == CAPMEM_OK && (b->flags & CAPMEM__BANK_PRIME)) {
        err = capmem__fail(CAPMEM_E_DENIED, NULL,
                           "the prime bank's limits are fixed from the frame count");
    }
    for (int t = 0; err == CAPMEM_OK && t < CAPMEM_BANK_TYPES; t++) {
        if (limits->limit[t] < b->used[t]) {
            err = capmem__fail_range(NULL, t, limits->limit[t], b->used[t], CAPMEM_BANK_UNLIMITED,
                                     t == CAPMEM_BANK_FRAME ? "frame limit (not below usage)"
                                                            : "node limit (not below usage)");
        }
    }
    if (err == CAPMEM_OK) {
        for (int t = 0; t < CAPMEM_BANK_TYPES; t++) {
            b->limit[t] = limits->limit[t];
        }
        emit_bank(arena, b, CAPMEM_BANK_OP_LIMITS, "got new limits");
    }
    CAPMEM__LEAVE(arena);
    return err;
}

capmem_err_t capmem_bank_info(capmem_arena_t *arena, capmem_cap_t bank, capmem_bank_info_t *info)
{
    if (arena == NULL || info == NULL) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, __func__, "arena or info is NULL");
    }
    CAPMEM__ENTER_OR_RETURN(arena);
    capmem__slot_t *s = NULL;
    capmem__bank_t *b = NULL;
    capmem_err_t err = bank_lookup(arena, bank, CAPMEM_BANK_RIGHT_QUERY, &s, &b);
    if (err == CAPMEM_OK) {
        memset(info, 0, sizeof(*info));
        capmem__bank_own(capmem__bank_svc_of(b), b, info->own);
        for (int t = 0; t < CAPMEM_BANK_TYPES; t++) {
            info->limit[t] = b->limit[t];
            info->used[t] = b->used[t];
            uint64_t avail = UINT64_MAX;
            for (const capmem__bank_t *a = b; a != NULL; a = a->parent) {
                const uint64_t left = a->used[t] < a->limit[t] ? a->limit[t] - a->used[t] : 0;
                avail = left < avail ? left : avail;
            }
            info->avail[t] = avail;
            info->effective[t] = avail == UINT64_MAX ? UINT64_MAX : b->used[t] + avail;
        }
        info->depth = b->depth;
        for (const capmem__bank_t *c = b->child; c != NULL; c = c->sibling) {
            info->children++;
        }
        info->rights = s->rights;
        info->is_prime = (b->flags & CAPMEM__BANK_PRIME) != 0;
        info->is_kernel = (b->flags & CAPMEM__BANK_KERNEL) != 0;
    }
    CAPMEM__LEAVE(arena);
    return err;
}

capmem_err_t capmem_bank_restrict(capmem_arena_t *arena, capmem_cap_t bank, unsigned restrictions,
                                  capmem_cap_t *out)
{
    if (arena == NULL || out == NULL) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, __func__, "arena or out is NULL");
    }
    if ((restrictions & ~(unsigned)CAPMEM_BANK_RIGHTS_ALL) != 0 ||
        (restrictions & CAPMEM_RIGHT_GRANT) != 0) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, __func__, "unknown restriction bits 0x%x",
                            restrictions);
    }
    CAPMEM__ENTER_OR_RETURN(arena);
    capmem__slot_t *s = NULL;
    capmem__bank_t *b = NULL;
    capmem_err_t err = bank_lookup(arena, bank, CAPMEM_RIGHT_GRANT, &s, &b);
    if (err == CAPMEM_OK) {
        err = capmem__cap_reserve_check(arena, s->quota, 1);
    }
    if (err == CAPMEM_OK) {
        const unsigned rights = s->rights & ~restrictions;
        *out = capmem__cap_create(arena, CAPMEM_OBJ_BANK, b, rights, 0,
                                  capmem__slot_index(&arena->cspace, s), s->quota);
        if (capmem__event_wanted(arena, CAPMEM_EVENT_MINT)) {
            capmem__emit(
                arena,
                &(capmem__ev_t){.kind = CAPMEM_EVENT_MINT, .cap = *out, .other = bank, .a = rights},
                "mint a space bank capability with rights 0x%x", rights);
        }
    }
    CAPMEM__LEAVE(arena);
    return err;
}
