/* SPDX-License-Identifier: MIT */
/* Untyped objects and their children, shared with the RAM layer. */
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
    capmem__untyped_t *parent;       /* NULL for boot untypeds */
    uint64_t offset;                 /* backing offset */
    unsigned size_bits;
    bool device;
};

/*
 * Invariants: children counts the live objects retyped from this untyped
 * (through any of its capabilities); every one lies inside
 * [offset, offset + 2^size_bits) and none overlap; alloc hands out offsets
 * relative to `offset`.
 */
struct capmem__untyped {
    capmem__ut_child_t base;
    capmem_untyped_policy_t policy; /* built-in policy, or WATERMARK when user-supplied */
    bool user_policy;
    bool full;             /* marked full by a copy (seL4): 0 bytes available */
    capmem_alloc_t *alloc; /* relative offsets */
    uint64_t children;
    capmem__device_t *device; /* pinned device range, or NULL */
    uint32_t boot_id;         /* 1-based position in the boot list, 0 otherwise */
};

/*
 * For layers built on untyped (the RAM service): retype the whole of a
 * childless RAM untyped into one kernel object @p child with the caller's
 * hooks @p claim. On success child->offset/size_bits/parent are filled and
 * *child_cap is the new capability (a child of @p untyped, charged to
 * nobody).
 */
capmem_err_t capmem__untyped_claim(capmem_arena_t *arena, capmem_cap_t untyped,
                                   capmem__ut_child_t *child, const capmem__ut_claim_t *claim,
                                   capmem_cap_t *child_cap);

/* Give a child's memory back to its parent (call from the child's destroy hook). */
void capmem__ut_child_release(capmem_arena_t *arena, capmem__ut_child_t *child);

#endif
