/* SPDX-License-Identifier: MIT */
/*
 * Untyped objects and their children: shared by untyped.c (retype, copy,
 * info, policies, frames), untyped_boot.c (the boot untypeds) and the RAM
 * layer, which claims whole untypeds. Never installed.
 */
#ifndef CAPMEM_UNTYPED_INTERNAL_H
#define CAPMEM_UNTYPED_INTERNAL_H

#include "cap_internal.h"
#include "capmem/untyped.h"

typedef struct capmem__untyped capmem__untyped_t;
typedef struct capmem__ut_child capmem__ut_child_t;

/*
 * A layer built on untyped memory (the RAM service) claims a whole untyped
 * as one kernel object of its own (capmem__untyped_claim) and says how it
 * is destroyed and named: registration, so this layer names none above it.
 */
typedef struct capmem__ut_claim {
    const char *name; /* e.g. "RAM pool" */
    /* The claimed object's capability was deleted; call capmem__ut_child_release. */
    void (*destroy)(capmem_arena_t *arena, capmem__ut_child_t *child, capmem_cap_t handle);
} capmem__ut_claim_t;

/*
 * Every object retyped from an untyped starts with this: where its memory
 * is and which untyped it came from. Deleting the child gives the memory
 * back through capmem__ut_child_release().
 */
struct capmem__ut_child {
    capmem_obj_type_t type;          /* UNTYPED, FRAME or KOBJ */
    const capmem__ut_claim_t *claim; /* a claimed object's hooks, else NULL */
    capmem__untyped_t *parent;       /* NULL for boot untypeds and copies */
    uint64_t offset;                 /* backing offset */
    unsigned size_bits;
    bool device;
};

/*
 * Invariants (checked by the untyped layer's checker):
 * - children counts the live objects retyped from this untyped (through
 *   any of its capabilities); every one lies inside
 *   [offset, offset + 2^size_bits) and none overlap; alloc hands out
 *   offsets relative to `offset`;
 * - copies counts the live untypeds whose copy_of is this one. A copy
 *   covers the same memory without taking it from alloc, so while
 *   copies > 0 this untyped is full: it has no children and retypes none.
 *   A copy lives in its source's capability subtree, so it dies first.
 */
struct capmem__untyped {
    capmem__ut_child_t base;
    capmem_untyped_policy_t policy; /* built-in policy, or WATERMARK when user-supplied */
    bool user_policy;
    capmem_alloc_t *alloc; /* relative offsets */
    uint64_t children;
    uint32_t copies;            /* live copies of this untyped (capmem_untyped_copy) */
    capmem__untyped_t *copy_of; /* the untyped this one is a copy of, or NULL */
    capmem__device_t *device;   /* pinned device range, or NULL */
    uint32_t boot_id;           /* 1-based position in the boot list, 0 otherwise */
};

/*
 * For layers built on untyped (the RAM service): retype the whole of a
 * childless RAM untyped into one kernel object @p child with the caller's
 * hooks @p claim. On success child->offset/size_bits/parent are filled and
 * *child_cap is the new capability (a child of @p untyped, charged to
 * nobody). On failure nothing changed.
 */
capmem_err_t capmem__untyped_claim(capmem_arena_t *arena, capmem_cap_t untyped,
                                   capmem__ut_child_t *child, const capmem__ut_claim_t *claim,
                                   capmem_cap_t *child_cap);

/*
 * seL4's reset condition for the untyped capability in slot @p s: no
 * capability derived from it, no live child, no live copy. A layer that
 * claims untypeds checks it in its decode step, so the claim cannot fail.
 */
bool capmem__ut_childless(const capmem__slot_t *s);

/* Give a child's memory back to its parent (call from the child's destroy hook). */
void capmem__ut_child_release(capmem_arena_t *arena, capmem__ut_child_t *child);

/* ---- between untyped.c and untyped_boot.c -------------------------------- */

/* A new untyped record (host memory) with a built-in policy; no capability yet. */
capmem_err_t capmem__ut_new(capmem_untyped_policy_t policy, uint64_t offset, unsigned size_bits,
                            bool device, capmem__untyped_t **out);
/* Free a record that never got a capability. */
void capmem__ut_free(capmem__untyped_t *ut);
/* Describe the untyped that live slot @p s names, as a retype through @p s sees it. */
void capmem__ut_fill_info(capmem_arena_t *arena, const capmem__slot_t *s,
                          capmem_untyped_info_t *info);
/* Register the untyped, frame and kernel-object types (idempotent). */
void capmem__ut_register_types(capmem_arena_t *arena);
/* The layer's checker: children inside and apart, counts of children and copies. */
capmem_err_t capmem__ut_check(capmem_arena_t *arena, void *state, char *why, size_t len);
/* An untyped is destroyed: if it is on the boot list, its entry's capability becomes NULL. */
void capmem__ut_boot_forget(capmem_arena_t *arena, const capmem__untyped_t *ut);

#endif
