/* SPDX-License-Identifier: MIT */
/*
 * The capability table: handles, slots, and the derivation tree threaded
 * through the slots by index. Pure data structure, below the machine that
 * owns one per arena; the capability layer (cap_internal.h) gives it its
 * meaning: lookups with errors, creation, deletion through the type
 * registry, revoke. Never installed.
 */
#ifndef CAPMEM_CSPACE_INTERNAL_H
#define CAPMEM_CSPACE_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "capmem/arena.h"
#include "capmem/cap.h"
#include "internal.h"
#include "quota.h"

/*
 * Handle layout, from the top: | type:8 | arena tag:10 | generation:16 | slot index:30 |.
 * The type stays in the top byte (capmem_cap_type() reads it without the
 * library); the tag tells the arena that issued the handle (capmem__tag_*),
 * so two arenas never issue the same handle; index 0 is never used, so 0
 * is never a valid handle. CAPMEM_CAP_SLOTS_MAX is 2^30: the index fits.
 */
#define CAPMEM__CAP_INDEX_BITS 30u
#define CAPMEM__CAP_GEN_BITS 16u
#define CAPMEM__CAP_TAG_BITS 10u
#define CAPMEM__CAP_INDEX_MASK ((1u << CAPMEM__CAP_INDEX_BITS) - 1u)
#define CAPMEM__CAP_GEN_MASK ((1u << CAPMEM__CAP_GEN_BITS) - 1u)
#define CAPMEM__CAP_TAG_MASK ((1u << CAPMEM__CAP_TAG_BITS) - 1u)
#define CAPMEM__CAP_GEN_SHIFT CAPMEM__CAP_INDEX_BITS
#define CAPMEM__CAP_TAG_SHIFT (CAPMEM__CAP_INDEX_BITS + CAPMEM__CAP_GEN_BITS)

_Static_assert(CAPMEM__CAP_TAG_SHIFT + CAPMEM__CAP_TAG_BITS == 56, "the type keeps the top byte");
_Static_assert(CAPMEM_CAP_SLOTS_MAX - 1u <= CAPMEM__CAP_INDEX_MASK, "every slot index fits");

static inline capmem_cap_t capmem__cap_make(uint32_t tag, uint32_t index, uint32_t gen,
                                            capmem_obj_type_t type)
{
    return ((uint64_t)type << 56) |
           ((uint64_t)(tag & CAPMEM__CAP_TAG_MASK) << CAPMEM__CAP_TAG_SHIFT) |
           ((uint64_t)(gen & CAPMEM__CAP_GEN_MASK) << CAPMEM__CAP_GEN_SHIFT) |
           (index & CAPMEM__CAP_INDEX_MASK);
}

static inline uint32_t capmem__cap_index(capmem_cap_t cap)
{
    return (uint32_t)cap & CAPMEM__CAP_INDEX_MASK;
}

static inline uint32_t capmem__cap_gen(capmem_cap_t cap)
{
    return (uint32_t)(cap >> CAPMEM__CAP_GEN_SHIFT) & CAPMEM__CAP_GEN_MASK;
}

static inline uint32_t capmem__cap_tag(capmem_cap_t cap)
{
    return (uint32_t)(cap >> CAPMEM__CAP_TAG_SHIFT) & CAPMEM__CAP_TAG_MASK;
}

/*
 * What the capability layer needs to know of an object type, registered by
 * the type's layer when it is set up on an arena (capmem__type_register),
 * as seL4's finaliseCap dispatches on the cap type, but by registration, so
 * the capability layer names no layer above it.
 */
typedef struct capmem__type_ops {
    capmem_obj_type_t type;
    const char *name; /* "untyped", "dataspace", ... */
    /*
     * Runs when the object's original capability is deleted, with the
     * arena lock held, after the slot is freed (so @p handle is stale). The
     * derivation tree guarantees the object has no descendants left. It may
     * delete capabilities elsewhere in the tree, never an ancestor.
     */
    void (*destroy)(capmem_arena_t *arena, void *obj, capmem_cap_t handle);
    /* Optional: this object's own type name (a user type's); else name. */
    const char *(*name_of)(const void *obj);
    /* Optional: one line about the object for dumps; returns snprintf's count. */
    int (*describe)(capmem_arena_t *arena, const void *obj, char *buf, size_t len);
} capmem__type_ops_t;

enum {
    CAPMEM__SLOT_ORIGINAL = 1u << 0, /* deleting this slot destroys the object */
};

/*
 * One slot: 40 bytes. Invariants (checked by capmem_cap_check):
 * - type == NONE  <=> the slot is free (then next_sib links the free list);
 * - parent, first_child, next_sib, prev_sib are 0 or indices of live slots;
 * - a live slot is in its parent's child list exactly once (roots have
 *   parent 0 and are linked in no list);
 * - an original slot's object is named by no slot outside its subtree.
 */
typedef struct capmem__slot {
    uint32_t gen;
    uint8_t type;
    uint8_t rights;
    uint16_t flags;
    uint32_t parent;
    uint32_t first_child;
    uint32_t next_sib;
    uint32_t prev_sib;
    void *obj;              /* the object's record (host or arena memory) */
    capmem__quota_t *quota; /* capability quota charged for the slot, or NULL */
} capmem__slot_t;

_Static_assert(sizeof(capmem__slot_t) <= 40, "a slot stays within 40 bytes");

/*
 * The table: a lazily committed mapping of `capacity` slots. The first
 * child's prev_sib points at the last child, so appending is O(1) and the
 * child list keeps creation order.
 */
typedef struct capmem__cspace {
    capmem__slot_t *slots;
    uint32_t tag; /* the arena's tag, part of every handle */
    uint32_t capacity;
    uint32_t high;      /* slots [1, high) have been used at least once */
    uint32_t free_head; /* free list of slots below high, linked by next_sib */
    uint64_t live;
} capmem__cspace_t;

capmem_err_t capmem__cspace_init(capmem__cspace_t *cs, uint32_t capacity, uint32_t tag);
void capmem__cspace_fini(capmem__cspace_t *cs);

/* Slots that could be taken now, counted up to @p enough. */
uint64_t capmem__cspace_free_slots(const capmem__cspace_t *cs, uint64_t enough);
/* Take a free slot and link it as the last child of @p parent (0: a root). Needs a free slot. */
uint32_t capmem__cspace_take(capmem__cspace_t *cs, uint32_t parent);
/* Unlink a childless live slot, free it and move its generation on. */
void capmem__cspace_release(capmem__cspace_t *cs, uint32_t idx);
/* The table's structural checker (links, counts, free list, no cycle). */
capmem_err_t capmem__cspace_check(const capmem__cspace_t *cs, char *why, size_t len);

static inline capmem__slot_t *capmem__slot(capmem__cspace_t *cs, uint32_t index)
{
    return &cs->slots[index];
}

/* The current handle of a live slot. */
static inline capmem_cap_t capmem__slot_handle(const capmem__cspace_t *cs, uint32_t index)
{
    const capmem__slot_t *s = &cs->slots[index];
    return capmem__cap_make(cs->tag, index, s->gen, (capmem_obj_type_t)s->type);
}

static inline uint32_t capmem__slot_index(const capmem__cspace_t *cs, const capmem__slot_t *s)
{
    return (uint32_t)(s - cs->slots);
}

/* The live slot a handle names exactly, or NULL; no error is recorded. */
static inline capmem__slot_t *capmem__cspace_get(capmem__cspace_t *cs, capmem_cap_t cap)
{
    const uint32_t idx = capmem__cap_index(cap);
    if (idx == 0 || idx >= cs->high) {
        return NULL;
    }
    capmem__slot_t *s = &cs->slots[idx];
    return s->type != CAPMEM_OBJ_NONE && cap == capmem__slot_handle(cs, idx) ? s : NULL;
}

#endif
