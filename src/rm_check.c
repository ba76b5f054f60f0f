/* SPDX-License-Identifier: MIT */
/*
 * Region maps, the checker (rm_internal.h): capmem_check() runs it after
 * every layer below. It walks every open map, its region tree in address
 * order and its slab, then every dataspace's list of attachments, and
 * returns the first broken invariant (the invariants are stated at
 * rm_region_t and capmem__rm_t). It changes nothing but the accounts'
 * scratch tallies, and uses no host memory.
 * docs/region_map.md explains the layer.
 */
#include <stdio.h>

#include "rm_internal.h"

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

capmem_err_t capmem__rm_check(capmem_arena_t *arena, void *state, char *why, size_t len)
{
    const capmem__rm_arena_t *st = state;
    char scratch[8];
    if (why == NULL || len == 0) {
        why = scratch;
        len = sizeof(scratch);
    }
    uint64_t total = 0;
    for (const capmem__rm_t *rm = st->maps; rm != NULL; rm = rm->next) {
        if (!slot_is(arena, rm->slot, CAPMEM_OBJ_REGION_MAP, rm) ||
            !slot_is(arena, rm->client->slot, CAPMEM_OBJ_RAM_SESSION, rm->client) ||
            (rm->next != NULL && rm->next->prev != rm) || rm->meta.kind != CAPMEM__META_RM) {
            snprintf(why, len,
                     "region map \"%s\": its capability, client or list links are "
                     "broken",
                     rm->label);
            return CAPMEM_E_CORRUPT;
        }
        if (rm->managed != NULL &&
            (!slot_is(arena, rm->managed->slot, CAPMEM_OBJ_DATASPACE, rm->managed) ||
             capmem__ds_kind(rm->managed) != CAPMEM__DS_MANAGED ||
             rm->managed->u.managed.map != rm || rm->managed->meta != &rm->meta ||
             rm->managed->size != rm->size)) {
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
            capmem__meta_check(&rm->meta, rm->label, rm->regions + (rm->managed != NULL ? 1 : 0),
                               CAPMEM_RM_SESSION_SLOTS, why, len);
        if (err != CAPMEM_OK) {
            return err;
        }
        rm->client->meta.tally = 0; /* reset for the donation sums below */
        if (rm->place != NULL) {
            /* The placement policy's own invariants (a custom one's shadow set included). */
            char sub[160] = "";
            if (capmem_alloc_check(rm->place, sub, sizeof(sub)) != CAPMEM_OK) {
                snprintf(why, len, "region map \"%s\": placement policy: %s", rm->label, sub);
                return CAPMEM_E_CORRUPT;
            }
        }
    }
    /* Each client's donated bytes are its maps' donations: the RAM side of conservation. */
    for (const capmem__rm_t *rm = st->maps; rm != NULL; rm = rm->next) {
        rm->client->meta.tally += rm->meta.donation;
    }
    for (const capmem__rm_t *rm = st->maps; rm != NULL; rm = rm->next) {
        if (rm->client->meta.tally != rm->client->donated) {
            snprintf(why, len,
                     "account \"%s\": it has donated %llu bytes to region maps, but its maps "
                     "hold %llu",
                     rm->client->label, (unsigned long long)rm->client->donated,
                     (unsigned long long)rm->client->meta.tally);
            return CAPMEM_E_CORRUPT;
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
