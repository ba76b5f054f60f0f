/* SPDX-License-Identifier: MIT */
/*
 * The capability space: a table of slots, lazily committed, with the
 * derivation tree threaded through it by slot index.
 */
#ifndef CAPMEM_CAP_INTERNAL_H
#define CAPMEM_CAP_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "capmem/cap.h"
#include "internal.h"

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
 * Capability quota of an account (Genode's Cap_quota). The RAM layer embeds
 * one in every account; the cap layer charges and refunds it. NULL means
 * "charged to nobody" (objects created by the arena owner directly).
 */
typedef struct capmem__cap_quota {
    uint64_t limit;
    uint64_t used;
} capmem__cap_quota_t;

typedef struct capmem__object capmem__object_t;

/* What the cap layer needs to know of a type: how to tear an object down. */
typedef struct capmem__object_ops {
    capmem_obj_type_t type;
    const char *name;
    /*
     * Runs when the object's original capability is deleted, with the arena
     * lock held, before the slot is freed. It must not delete capabilities:
     * the derivation tree guarantees the object has no descendants left.
     */
    void (*destroy)(capmem_arena_t *arena, capmem__object_t *obj);
} capmem__object_ops_t;

/* Every object starts with this header. */
struct capmem__object {
    const capmem__object_ops_t *ops;
};

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
    void *obj; /* a capmem__object_t for host objects, a record for typed ones */
    capmem__cap_quota_t *quota;
} capmem__slot_t;

_Static_assert(sizeof(capmem__slot_t) <= 40, "a slot stays within 40 bytes");

typedef struct capmem__cspace {
    capmem__slot_t *slots; /* lazily committed mapping of `capacity` slots */
    uint32_t tag;          /* the arena's tag, part of every handle */
    uint32_t capacity;
    uint32_t high;      /* slots [1, high) have been used at least once */
    uint32_t free_head; /* free list of slots below high, linked by next_sib */
    uint64_t live;
} capmem__cspace_t;

capmem_err_t capmem__cspace_init(capmem__cspace_t *cs, uint32_t capacity, uint32_t tag);
void capmem__cspace_fini(capmem__cspace_t *cs);
/* Delete every capability, children before parents. */
void capmem__cspace_teardown(capmem_arena_t *arena);

/*
 * Validate a handle: live, generation and type bits match (else
 * INVALID_CAP), of @p type unless it is CAPMEM_OBJ_NONE (else WRONG_TYPE),
 * holding every right in @p rights (else DENIED). @p func names the public
 * call for the error detail. On success *slot points into the table (valid
 * until the next capability is created or deleted).
 */
capmem_err_t capmem__cap_lookup_slow(capmem_arena_t *arena, capmem_cap_t cap,
                                     capmem_obj_type_t type, unsigned rights, const char *func,
                                     capmem__slot_t **slot);
/* capmem__cap_lookup() itself is inline, in arena_internal.h: the success path is hot. */

/*
 * Create a capability for @p obj. With parent != 0 (a slot index) the new
 * capability becomes its last child. ORIGINAL in @p flags makes the new slot
 * own the object. The slot is charged to @p quota (may be NULL).
 * Errors: OUT_OF_CAPS (table full, or quota used up).
 */
capmem_err_t capmem__cap_create(capmem_arena_t *arena, capmem__object_t *obj, unsigned rights,
                                uint16_t flags, uint32_t parent, capmem__cap_quota_t *quota,
                                const char *func, capmem_cap_t *out);

/*
 * Same, for objects that carry no ops header (records carved from donated
 * metadata: accounts, dataspaces, region maps): the type says what they are
 * and capmem__object_destroy() dispatches on it, as seL4's finaliseCap does.
 */
capmem_err_t capmem__cap_create_typed(capmem_arena_t *arena, capmem_obj_type_t type, void *obj,
                                      unsigned rights, uint16_t flags, uint32_t parent,
                                      capmem__cap_quota_t *quota, const char *func,
                                      capmem_cap_t *out);

/* Teardown dispatch by type (src/objtype.c). */
void capmem__object_destroy(capmem_arena_t *arena, capmem_obj_type_t type, void *obj);
const char *capmem__object_name(capmem_obj_type_t type, const void *obj);

/* Can one more capability be charged to @p quota right now? (For decode phases.) */
capmem_err_t capmem__cap_reserve_check(capmem_arena_t *arena, const capmem__cap_quota_t *quota,
                                       uint32_t count, const char *func);

/* Delete a slot that has no children. Runs the destroy hook for originals. */
void capmem__cap_delete_leaf(capmem_arena_t *arena, uint32_t index);
/* Delete every descendant of @p index; returns how many were deleted. */
uint64_t capmem__cap_revoke_index(capmem_arena_t *arena, uint32_t index);

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

#endif
