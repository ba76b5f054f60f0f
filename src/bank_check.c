/* SPDX-License-Identifier: MIT */
/*
 * Layer 8, space banks: the invariants, run by capmem_check():
 * - usage(bank) = its own objects + the usage of its sub-banks, and never
 *   above its limit; the tree's links and depths agree;
 * - every frame and node belongs to a bank of the tree, and its original
 *   capability is alive and names it;
 * - the prime bank's frame limit is the service's frames plus what the
 *   kernel released, and never falls;
 * - the records: the slab holds the service record, the banks, the frames
 *   and the nodes, nothing else; the pages handed out are the donation,
 *   the frames and the heap frames lent to the kernel.
 */
#include <stdarg.h>
#include <stdio.h>

#include "bank_internal.h"

typedef struct walk {
    capmem_arena_t *arena;
    capmem__bank_svc_t *svc;
    uint64_t banks;
    uint64_t owned_frames;
    uint64_t owned_nodes;
    char *why;
    size_t len;
} walk_t;

static int broken(walk_t *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int broken(walk_t *w, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = snprintf(w->why, w->len, "space banks: ");
    if (n > 0 && (size_t)n < w->len) {
        vsnprintf(w->why + n, w->len - (size_t)n, fmt, ap);
    }
    va_end(ap);
    return 1;
}

static int check_bank(capmem__bank_t *b, void *ctx)
{
    walk_t *w = ctx;
    uint64_t own[CAPMEM_BANK_TYPES];
    capmem__bank_own(w->svc, b, own);
    uint64_t sum[CAPMEM_BANK_TYPES] = {own[0], own[1]};
    uint32_t kids = 0;
    for (const capmem__bank_t *c = b->child; c != NULL; c = c->sibling) {
        if (c->parent != b || c->depth != b->depth + 1) {
            return broken(w, "a sub-bank of the bank at depth %u names another parent or depth",
                          b->depth);
        }
        sum[0] += c->used[0];
        sum[1] += c->used[1];
        kids++;
    }
    for (int t = 0; t < CAPMEM_BANK_TYPES; t++) {
        if (b->used[t] != sum[t]) {
            return broken(
                w, "bank at depth %u: usage %llu %s, its own objects and sub-banks make %llu",
                b->depth, (unsigned long long)b->used[t], t == 0 ? "frames" : "nodes",
                (unsigned long long)sum[t]);
        }
        if (b->used[t] > b->limit[t]) {
            return broken(w, "bank at depth %u uses %llu %s, above its limit %llu", b->depth,
                          (unsigned long long)b->used[t], t == 0 ? "frames" : "nodes",
                          (unsigned long long)b->limit[t]);
        }
    }
    if (b != &w->svc->prime) {
        w->banks++;
    }
    /* Node objects only: sub-bank records count as the parent's nodes but are not node objects. */
    w->owned_frames += own[0] - (b == w->svc->kernel ? w->svc->heap_frames : 0);
    w->owned_nodes += own[1] - kids;
    if (b->slot != 0) {
        const capmem__slot_t *s = &w->arena->cspace.slots[b->slot];
        if (s->type != CAPMEM_OBJ_BANK || s->obj != b || !(s->flags & CAPMEM__SLOT_ORIGINAL)) {
            return broken(w, "bank at depth %u: its capability is gone", b->depth);
        }
    } else if (b != w->svc->kernel) {
        return broken(w, "a bank other than the kernel's has no capability");
    }
    return 0;
}

capmem_err_t capmem__bank_check(capmem_arena_t *arena, void *state, char *why, size_t len)
{
    (void)state;
    capmem__bank_svc_t *svc = capmem__bank_service(arena);
    if (svc == NULL) {
        return CAPMEM_OK;
    }
    walk_t w = {.arena = arena, .svc = svc, .why = why, .len = len};
    if (capmem__bank_walk(svc, check_bank, &w) != 0) {
        return CAPMEM_E_CORRUPT;
    }
    uint64_t frames = 0;
    uint64_t nodes = 0;
    for (const capmem__ds_t *d = svc->frame_list; d != NULL; d = d->u.bank.link.next, frames++) {
        const capmem__slot_t *s = &arena->cspace.slots[d->slot];
        if (capmem__ds_kind(d) != CAPMEM__DS_BANK_FRAME || s->obj != d ||
            s->type != CAPMEM_OBJ_DATASPACE || d->size != arena->mem.page_size) {
            broken(&w, "frame at offset 0x%llx: its record or capability is broken",
                   (unsigned long long)d->off);
            return CAPMEM_E_CORRUPT;
        }
    }
    for (const capmem__bnode_t *n = svc->node_list; n != NULL; n = n->next, nodes++) {
        const capmem__slot_t *s = &arena->cspace.slots[n->slot];
        if (s->obj != n || s->type != CAPMEM_OBJ_BANK_NODE) {
            broken(&w, "a node's capability is broken");
            return CAPMEM_E_CORRUPT;
        }
    }
    if (w.owned_frames != frames || w.owned_nodes != nodes) {
        broken(&w, "%llu frames and %llu nodes exist, the banks of the tree own %llu and %llu",
               (unsigned long long)frames, (unsigned long long)nodes,
               (unsigned long long)w.owned_frames, (unsigned long long)w.owned_nodes);
        return CAPMEM_E_CORRUPT;
    }
    const uint64_t limit = svc->prime.limit[CAPMEM_BANK_FRAME];
    if (limit != svc->frames + svc->released_frames || limit < svc->seen_prime) {
        broken(&w, "the prime bank's frame limit %llu is not %llu + %llu released, or fell",
               (unsigned long long)limit, (unsigned long long)svc->frames,
               (unsigned long long)svc->released_frames);
        return CAPMEM_E_CORRUPT;
    }
    svc->seen_prime = limit;
    capmem_err_t err = capmem__meta_check(&svc->meta, "bank service", w.banks + frames + nodes,
                                          CAPMEM_BANK_SERVICE_SLOTS, why, len);
    if (err != CAPMEM_OK) {
        return err;
    }
    const uint64_t page = arena->mem.page_size;
    const uint64_t used0 = svc->page_bytes - capmem_alloc_avail(svc->pages[0]);
    const uint64_t used1 =
        svc->pages[1] != NULL ? svc->released_frames * page - capmem_alloc_avail(svc->pages[1]) : 0;
    if (used0 + used1 != svc->meta.donation + (frames + svc->heap_frames) * page) {
        broken(&w,
               "%llu bytes of frames handed out, the donation, %llu frames and %llu heap frames "
               "make %llu",
               (unsigned long long)(used0 + used1), (unsigned long long)frames,
               (unsigned long long)svc->heap_frames,
               (unsigned long long)(svc->meta.donation + (frames + svc->heap_frames) * page));
        return CAPMEM_E_CORRUPT;
    }
    char sub[160];
    for (int i = 0; i < 2; i++) {
        if (svc->pages[i] != NULL &&
            capmem_alloc_check(svc->pages[i], sub, sizeof(sub)) != CAPMEM_OK) {
            broken(&w, "page allocator %d: %s", i, sub);
            return CAPMEM_E_CORRUPT;
        }
    }
    return CAPMEM_OK;
}
