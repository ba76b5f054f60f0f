/* SPDX-License-Identifier: MIT */
/*
 * Internals of the alloc layer: the generic handle, the shadow set through
 * which it checks a custom policy's answers, and the built-in policies'
 * constructors and vtables. Never installed.
 */
#ifndef CAPMEM_ALLOC_INTERNAL_H
#define CAPMEM_ALLOC_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "capmem/alloc.h"
#include "internal.h"

typedef enum capmem__alloc_kind {
    CAPMEM__ALLOC_WATERMARK = 0,
    CAPMEM__ALLOC_RANGE,
    CAPMEM__ALLOC_BUDDY,
    CAPMEM__ALLOC_CUSTOM,
    CAPMEM__ALLOC_PLACED, /* alloc_place.c: a page map with a placement policy */
} capmem__alloc_kind_t;

/*
 * Narrow the span of @p a to [base, base + size), inside its present one,
 * so every later answer is checked against it: for a layer that owns a
 * user policy wider than what it manages (an untyped). No block may be
 * live outside the new span.
 */
void capmem__alloc_narrow(capmem_alloc_t *a, uint64_t base, uint64_t size);

/* ---- shadow set of a custom policy's live blocks (alloc_shadow.c) --------- */

typedef struct capmem__shadow_node {
    uint64_t offset; /* absolute; the key */
    uint64_t size;   /* as the caller asked for it */
    struct capmem__shadow_node *left;
    struct capmem__shadow_node *right; /* left also links the spare list */
    unsigned level;                    /* AA tree level, 1 for leaves */
} capmem__shadow_node_t;

/*
 * Invariants (checked by capmem__shadow_check): an AA tree in strict offset
 * order (a left child one level below its parent, a right child on the same
 * level or one below, never two right links on one level); blocks non-empty,
 * pairwise disjoint and inside the span; count nodes in the tree, nspare
 * (at most a small constant) on the spare list.
 */
typedef struct capmem__shadow {
    capmem__shadow_node_t *root;
    capmem__shadow_node_t *spare;
    size_t count;
    size_t nspare;
} capmem__shadow_t;

/* A node for the next insert: from the spare list or the host; NULL if none. */
capmem__shadow_node_t *capmem__shadow_reserve(capmem__shadow_t *sh);
/* Give back a reserved node that was not inserted. */
void capmem__shadow_release(capmem__shadow_t *sh, capmem__shadow_node_t *n);
/* Record [offset, offset + size) in a reserved node; cannot fail. */
void capmem__shadow_insert(capmem__shadow_t *sh, capmem__shadow_node_t *n, uint64_t offset,
                           uint64_t size);
/* Forget the block starting at offset (it must be in the set). */
void capmem__shadow_remove(capmem__shadow_t *sh, uint64_t offset);
/* The last live block overlapping [offset, offset + size), or NULL. O(log n). */
const capmem__shadow_node_t *capmem__shadow_overlap(const capmem__shadow_t *sh, uint64_t offset,
                                                    uint64_t size);
/* The live block starting exactly at offset, or NULL. O(log n). */
const capmem__shadow_node_t *capmem__shadow_find(const capmem__shadow_t *sh, uint64_t offset);
/* Forget every block (spare nodes are kept); destroy also frees the spares. */
void capmem__shadow_clear(capmem__shadow_t *sh);
void capmem__shadow_destroy(capmem__shadow_t *sh);
uint64_t capmem__shadow_bytes(const capmem__shadow_t *sh);
capmem_err_t capmem__shadow_check(const capmem__shadow_t *sh, uint64_t base, uint64_t size,
                                  char *why, size_t len);

/* ---- the generic handle ------------------------------------------------- */

/*
 * The generic handle. Invariant: ops and its mandatory hooks are not NULL;
 * [base, base + size) does not overflow (size may be UINT64_MAX - base for
 * custom policies without a span). For a custom policy, shadow holds
 * exactly the blocks its hooks handed out and have not taken back (as the
 * callers asked for them), and busy is set while one of its mutating hooks
 * runs; built-in policies use neither.
 */
struct capmem_alloc {
    const capmem_alloc_ops_t *ops;
    void *self;
    uint64_t base;
    uint64_t size;
    capmem__alloc_kind_t kind;
    bool busy;
    uint64_t requested; /* bytes the live blocks were asked for (capmem_alloc_stats) */
    capmem__shadow_t shadow;
};

/* Built-in policies: constructors (arguments already validated by alloc.c
 * where generic; policy-specific checks are theirs) and vtables. */
capmem_err_t capmem__watermark_new(uint64_t base, uint64_t size, void **self);
extern const capmem_alloc_ops_t capmem__watermark_ops;

capmem_err_t capmem__range_new(uint64_t base, uint64_t size, uint64_t granule, void **self);
capmem_err_t capmem__range_free_ranges(const void *self, capmem_alloc_walk_fn fn, void *ctx);
extern const capmem_alloc_ops_t capmem__range_ops;

capmem_err_t capmem__buddy_new(uint64_t base, uint64_t size, unsigned min_order, unsigned max_order,
                               void **self);
extern const capmem_alloc_ops_t capmem__buddy_ops;

/*
 * Bytes of metadata the policy holds beyond its fixed struct, counting the
 * parts of lazy mappings that its blocks can have touched (for the
 * benchmark's bytes-per-block column; an upper bound of what is committed).
 */
uint64_t capmem__alloc_metadata_bytes(const capmem_alloc_t *a);
uint64_t capmem__watermark_metadata(const void *self);
uint64_t capmem__range_metadata(const void *self);
uint64_t capmem__buddy_metadata(const void *self);

/* Wrap a policy instance in a generic handle (no checks). HOST_NOMEM. */
capmem_err_t capmem__alloc_wrap(const capmem_alloc_ops_t *ops, void *self, uint64_t base,
                                uint64_t size, capmem__alloc_kind_t kind, capmem_alloc_t **out);

/*
 * Make an instance of @p policy (capmem_alloc_create_policy) whose answers
 * the wrapper always checks against a shadow set, built-ins too: a layer
 * that needs to know the policy's live blocks (alloc_place.c) uses it.
 */
capmem_err_t capmem__alloc_create_shadowed(const capmem_alloc_policy_t *policy, uint64_t base,
                                           uint64_t size, uint64_t granule, capmem_alloc_t **out);

/*
 * A page map over [base, base + size) at @p granule whose new blocks are
 * placed by @p policy (alloc_place.c explains the pair). alloc asks the
 * policy; alloc_at and free act on exact pages; after freeing, a caller
 * calls capmem__alloc_settle() on the range it freed, so that the policy
 * hears of every block of it that is now wholly free.
 */
capmem_err_t capmem__alloc_create_placed(const capmem_alloc_policy_t *policy, uint64_t base,
                                         uint64_t size, uint64_t granule, capmem_alloc_t **out);
/* No-op for any other allocator: callers need not know whether there is a policy. */
void capmem__alloc_settle(capmem_alloc_t *a, uint64_t lo, uint64_t hi);

/* Write a check failure into why (if any room) and return CAPMEM_E_CORRUPT. */
capmem_err_t capmem__alloc_broken(char *why, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif /* CAPMEM_ALLOC_INTERNAL_H */
