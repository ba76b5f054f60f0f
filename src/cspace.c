/* SPDX-License-Identifier: MIT */
/*
 * The capability table (cspace_internal.h): slots in one lazily committed
 * mapping indexed by the handle's slot index, so a lookup is an index and
 * one compare, and no pointer is ever taken from the caller; the
 * derivation tree threaded through the slots by index.
 */
#include <stdio.h>
#include <string.h>

#include "cspace_internal.h"

static const char *const type_names[CAPMEM_OBJ_TYPE_COUNT] = {
    [CAPMEM_OBJ_NONE] = "none",
    [CAPMEM_OBJ_UNTYPED] = "untyped",
    [CAPMEM_OBJ_FRAME] = "frame",
    [CAPMEM_OBJ_KOBJ] = "kernel object",
    [CAPMEM_OBJ_RAM_SESSION] = "RAM session",
    [CAPMEM_OBJ_DATASPACE] = "dataspace",
    [CAPMEM_OBJ_REGION_MAP] = "region map",
    [CAPMEM_OBJ_USER] = "user object",
    [CAPMEM_OBJ_BANK] = "space bank",
    [CAPMEM_OBJ_BANK_NODE] = "bank node",
};

const char *capmem_obj_type_name(capmem_obj_type_t type)
{
    if ((unsigned)type >= CAPMEM_OBJ_TYPE_COUNT) {
        return "invalid";
    }
    return type_names[type];
}

capmem_err_t capmem__cspace_init(capmem__cspace_t *cs, uint32_t capacity, uint32_t tag)
{
    memset(cs, 0, sizeof(*cs));
    cs->tag = tag;
    size_t bytes = (size_t)capacity * sizeof(capmem__slot_t);
    cs->slots = capmem__map_lazy(bytes);
    if (cs->slots == NULL) {
        return capmem__fail(CAPMEM_E_SYSTEM, "capmem_arena_create",
                            "could not map a capability table of %u slots", capacity);
    }
    cs->capacity = capacity;
    cs->high = 1; /* slot 0 is never used, so handle 0 is never valid */
    return CAPMEM_OK;
}

void capmem__cspace_fini(capmem__cspace_t *cs)
{
    capmem__unmap(cs->slots, (size_t)cs->capacity * sizeof(capmem__slot_t));
    memset(cs, 0, sizeof(*cs));
}

uint64_t capmem__cspace_free_slots(const capmem__cspace_t *cs, uint64_t enough)
{
    /* Untouched slots above the high-water mark; the free list is walked only if needed. */
    uint64_t n = (uint64_t)(cs->capacity - cs->high);
    for (uint32_t i = cs->free_head; i != 0 && n < enough; i = cs->slots[i].next_sib) {
        n++;
    }
    return n;
}

static void link_child(capmem__cspace_t *cs, uint32_t parent, uint32_t idx)
{
    capmem__slot_t *s = capmem__slot(cs, idx);
    s->parent = parent;
    s->next_sib = 0;
    if (parent == 0) {
        s->prev_sib = 0;
        return;
    }
    capmem__slot_t *p = capmem__slot(cs, parent);
    if (p->first_child == 0) {
        p->first_child = idx;
        s->prev_sib = idx; /* the first child's prev is the last child: itself */
        return;
    }
    capmem__slot_t *first = capmem__slot(cs, p->first_child);
    uint32_t last = first->prev_sib;
    capmem__slot(cs, last)->next_sib = idx;
    s->prev_sib = last;
    first->prev_sib = idx;
}

static void unlink_child(capmem__cspace_t *cs, uint32_t idx)
{
    capmem__slot_t *s = capmem__slot(cs, idx);
    if (s->parent == 0) {
        return;
    }
    capmem__slot_t *p = capmem__slot(cs, s->parent);
    capmem__slot_t *first = capmem__slot(cs, p->first_child);
    if (p->first_child == idx) {
        p->first_child = s->next_sib;
        if (s->next_sib != 0) {
            /* The new first child inherits the pointer to the last child. */
            capmem__slot(cs, s->next_sib)->prev_sib = s->prev_sib;
        }
    } else {
        capmem__slot(cs, s->prev_sib)->next_sib = s->next_sib;
        if (s->next_sib != 0) {
            capmem__slot(cs, s->next_sib)->prev_sib = s->prev_sib;
        } else {
            first->prev_sib = s->prev_sib; /* s was the last child */
        }
    }
    s->parent = s->next_sib = s->prev_sib = 0;
}

uint32_t capmem__cspace_take(capmem__cspace_t *cs, uint32_t parent)
{
    uint32_t idx;
    if (cs->free_head != 0) {
        idx = cs->free_head;
        cs->free_head = cs->slots[idx].next_sib;
    } else {
        CAPMEM_ASSERT(cs->high < cs->capacity, "callers check for a free slot first");
        idx = cs->high++;
        cs->slots[idx].gen = 1; /* fresh slots start at generation 1 */
    }
    capmem__slot_t *s = capmem__slot(cs, idx);
    s->first_child = 0;
    link_child(cs, parent, idx);
    cs->live++;
    return idx;
}

void capmem__cspace_release(capmem__cspace_t *cs, uint32_t idx)
{
    capmem__slot_t *s = capmem__slot(cs, idx);
    CAPMEM_ASSERT(s->type != CAPMEM_OBJ_NONE, "only live slots are released");
    CAPMEM_ASSERT(s->first_child == 0, "callers revoke before deleting");
    unlink_child(cs, idx);
    s->type = CAPMEM_OBJ_NONE;
    s->rights = 0;
    s->flags = 0;
    s->obj = NULL;
    s->quota = NULL;
    s->gen = (s->gen + 1) & CAPMEM__CAP_GEN_MASK;
    if (s->gen != 0) {
        s->next_sib = cs->free_head;
        cs->free_head = idx;
    }
    /*
     * else: the generation would wrap, and an ancient handle could alias a
     * new object. The slot is retired instead (it costs 40 bytes forever).
     */
    cs->live--;
}

static capmem_err_t broken(char *why, size_t len, const char *fmt, uint32_t a, uint32_t b)
{
    if (why != NULL && len > 0) {
        snprintf(why, len, fmt, a, b);
    }
    return CAPMEM_E_CORRUPT;
}

capmem_err_t capmem__cspace_check(const capmem__cspace_t *cs, char *why, size_t len)
{
    uint64_t live = 0;
    uint64_t linked_children = 0;
    for (uint32_t i = 1; i < cs->high; i++) {
        const capmem__slot_t *s = &cs->slots[i];
        if (s->type == CAPMEM_OBJ_NONE) {
            continue;
        }
        live++;
        if (s->type >= CAPMEM_OBJ_TYPE_COUNT || s->obj == NULL) {
            return broken(why, len, "slot %u: bad type %u or no object", i, s->type);
        }
        const unsigned known = s->type == CAPMEM_OBJ_BANK
                                   ? (unsigned)(CAPMEM_RIGHTS_ALL | CAPMEM_RIGHTS_TYPE)
                                   : (unsigned)CAPMEM_RIGHTS_ALL;
        if ((s->rights & ~known) != 0) {
            return broken(why, len, "slot %u: unknown rights 0x%x", i, s->rights);
        }
        if (s->parent != 0) {
            if (s->parent >= cs->high || cs->slots[s->parent].type == CAPMEM_OBJ_NONE) {
                return broken(why, len, "slot %u: parent %u is not alive", i, s->parent);
            }
        }
        /* Walk the child list: links agree, every child names us as parent. */
        uint32_t prev = 0;
        uint32_t last = 0;
        for (uint32_t c = s->first_child; c != 0; c = cs->slots[c].next_sib) {
            if (c >= cs->high || cs->slots[c].type == CAPMEM_OBJ_NONE) {
                return broken(why, len, "slot %u: child %u is not alive", i, c);
            }
            if (cs->slots[c].parent != i) {
                return broken(why, len, "slot %u: child %u names another parent", i, c);
            }
            if (prev != 0 && cs->slots[c].prev_sib != prev) {
                return broken(why, len, "slot %u: prev link broken at child %u", i, c);
            }
            prev = c;
            last = c;
            if (++linked_children > cs->live) {
                return broken(why, len, "slot %u: child list longer than the table (%u)", i, c);
            }
        }
        if (s->first_child != 0 && cs->slots[s->first_child].prev_sib != last) {
            return broken(why, len, "slot %u: first child does not point to last %u", i, last);
        }
    }
    if (live != cs->live) {
        return broken(why, len, "live count %u does not match the table (%u)", (uint32_t)cs->live,
                      (uint32_t)live);
    }
    uint64_t roots = 0;
    for (uint32_t i = 1; i < cs->high; i++) {
        const capmem__slot_t *s = &cs->slots[i];
        roots += s->type != CAPMEM_OBJ_NONE && s->parent == 0;
    }
    /*
     * Every live slot is either a root or in exactly one child list, so
     * linked children + roots == live; a cycle would show up as a node that
     * is in a list but unreachable, which makes the walk count below differ.
     */
    if (linked_children + roots != live) {
        return broken(why, len, "%u children + roots do not add up to %u live slots",
                      (uint32_t)(linked_children + roots), (uint32_t)live);
    }
    uint64_t reached = 0;
    for (uint32_t r = 1; r < cs->high; r++) {
        if (cs->slots[r].type == CAPMEM_OBJ_NONE || cs->slots[r].parent != 0) {
            continue;
        }
        reached++;
        uint32_t c = cs->slots[r].first_child;
        while (c != 0 && reached <= live) {
            reached++;
            if (cs->slots[c].first_child != 0) {
                c = cs->slots[c].first_child;
                continue;
            }
            while (c != r && cs->slots[c].next_sib == 0) {
                c = cs->slots[c].parent;
            }
            c = c == r ? 0 : cs->slots[c].next_sib;
        }
    }
    if (reached != live) {
        return broken(why, len, "%u slots reachable from roots, %u live (cycle?)",
                      (uint32_t)reached, (uint32_t)live);
    }
    uint64_t nfree = 0;
    for (uint32_t f = cs->free_head; f != 0; f = cs->slots[f].next_sib) {
        if (f >= cs->high || cs->slots[f].type != CAPMEM_OBJ_NONE) {
            return broken(why, len, "free list holds slot %u which is in use (%u)", f, 0);
        }
        if (++nfree > cs->high) {
            return broken(why, len, "free list has a cycle (%u, %u)", f, 0);
        }
    }
    if (nfree + live > (uint64_t)cs->high - 1) {
        return broken(why, len, "%u free + %u live exceed the slots in use", (uint32_t)nfree,
                      (uint32_t)live);
    }
    return CAPMEM_OK;
}
