/* SPDX-License-Identifier: MIT */
/**
 * @file capmem/alloc.h
 * @brief Allocation policies over an offset range (layer 2, "alloc").
 *
 * A policy hands out offsets inside [base, base + size); it never touches
 * the memory behind them, so it can be unit-tested and benchmarked alone.
 * Built-in policies:
 *
 * - **watermark**: seL4's FreeIndex, a bump index aligned up per request;
 *   gaps are lost and freed space is not reused until reset.
 * - **range**: free ranges in TLSF size classes with good fit (the lowest
 *   class all of whose ranges fit, newest range first; never failing while
 *   a fitting aligned range is free), allocation at an exact offset and
 *   coalescing free (after Genode's Allocator_avl).
 * - **buddy**: power-of-two blocks, split on alloc, merged on free.
 * - **custom**: your own ::capmem_alloc_ops_t, used through the same calls.
 *
 * Every generic call validates its arguments before it reaches the policy,
 * so a custom policy only ever sees validated input. A failed call changes
 * nothing and leaves out-parameters untouched. See docs/alloc.md.
 *
 * Every answer of a policy is checked before it is used. An alloc answer
 * must lie inside the span and be aligned as asked, for the block of the
 * size asked for; this costs two compares and a mask, for the built-in
 * policies too. A custom policy is untrusted code, so its wrapper also keeps
 * a shadow set of the blocks it handed out (host memory, O(log n) per call,
 * see capmem_alloc_create_custom()) and refuses an answer that overlaps a
 * live block. A wrong answer is refused with ::CAPMEM_E_POLICY: the message
 * names the policy (capmem_alloc_name()), the request and the answer, the
 * detail's address and size are the answer, the wrapper changes nothing,
 * and the policy is not called again for that request, not even to free
 * the bad block. A policy that answers wrongly owns the inconsistent state
 * it may have left behind. The built-in policies keep no shadow set: that
 * they never hand out overlapping blocks is established by their own check
 * functions (capmem_alloc_check()), which the tests run after every step.
 */
#ifndef CAPMEM_ALLOC_H
#define CAPMEM_ALLOC_H

#include <stddef.h>
#include <stdint.h>

#include "capmem/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/** An allocation policy instance (opaque). */
typedef struct capmem_alloc capmem_alloc_t;

/** State of a block reported by a walk. */
typedef enum { CAPMEM_BLOCK_FREE = 0, CAPMEM_BLOCK_USED = 1 } capmem_block_state_t;

/**
 * Walk visitor: called once per block with its absolute offset, size and
 * state. Return 0 to go on, non-zero to stop (the walk returns CAPMEM_OK
 * either way).
 */
typedef int (*capmem_alloc_walk_fn)(uint64_t offset, uint64_t size, capmem_block_state_t state,
                                    void *ctx);

typedef struct capmem_alloc_stats capmem_alloc_stats_t;

/**
 * The policy vtable. Offsets are absolute. The generic calls validate
 * arguments first (see each one), so these hooks see: size > 0, align a
 * power of two, [offset, offset + size) inside the span given at creation.
 * Hooks must not call back into the allocator they serve: alloc, alloc_at
 * and free are then refused with ::CAPMEM_E_REENTRANT, and reset and
 * destroy do nothing. A hook that fails must change nothing and report
 * through its return value. It may set the detail record with its own
 * message and numbers, with capmem_error_set() and
 * capmem_error_set_numbers() (capmem/error.h): the generic call then passes
 * that record on unchanged, except that its function is the public call's
 * and its code the one the hook returned. A hook that records nothing gets
 * a message naming the policy. What the wrapper checks about the answers of
 * alloc, alloc_at and free is said at the top of this file and at
 * capmem_alloc_create_custom().
 */
typedef struct capmem_alloc_ops {
    const char *name; /**< short policy name, e.g. "first-fit" */
    /** Allocate @p size bytes aligned to @p align; store the offset. */
    capmem_err_t (*alloc)(void *self, uint64_t size, uint64_t align, uint64_t *offset);
    /** Allocate exactly [offset, offset + size). */
    capmem_err_t (*alloc_at)(void *self, uint64_t offset, uint64_t size);
    /** Free a block previously handed out, with the size it was requested with. */
    capmem_err_t (*free)(void *self, uint64_t offset, uint64_t size);
    uint64_t (*avail)(const void *self);   /**< total free bytes */
    uint64_t (*largest)(const void *self); /**< largest block alloc(size, 1) could return */
    void (*reset)(void *self);             /**< everything free again */
    void (*destroy)(void *self);           /**< release self (may be NULL for user policies) */
    /** Optional (may be NULL): first broken invariant as text into @p why. */
    capmem_err_t (*check)(const void *self, char *why, size_t len);
    /** Optional (may be NULL): visit every block in address order. */
    capmem_err_t (*walk)(const void *self, capmem_alloc_walk_fn fn, void *ctx);
    /*
     * Hooks below were appended in 0.1.0, after the ten above. They are
     * optional, and only ever appended: a table written for the shorter
     * struct, positionally ({"name", alloc, ...}) or with designated
     * initialisers, leaves them NULL and keeps working unchanged.
     */
    /**
     * Optional (may be NULL): fill out->free_bytes, out->largest_free,
     * out->free_blocks and out->used_blocks from the policy's own counters
     * (capmem_alloc_stats() computes them from a walk when this is NULL and
     * fills the other fields itself). Must not change anything.
     */
    capmem_err_t (*stats)(const void *self, capmem_alloc_stats_t *out);
    /**
     * Optional (may be NULL): make a new, empty instance over
     * [base, base + size), with offsets that are multiples of @p granule
     * (a power of two) suiting the caller, and store it in *self. This is
     * what lets a layer that makes its own instances use the policy: the
     * RAM service and region maps (capmem_alloc_policy_t), the conformance
     * suite (capmem/conform.h) and capmem-replay. @p ctx is the one given
     * in capmem_alloc_policy_t. destroy is its inverse.
     */
    capmem_err_t (*create)(void *ctx, uint64_t base, uint64_t size, uint64_t granule, void **self);
} capmem_alloc_ops_t;

/** The layout of capmem_alloc_stats_t this header describes (its @c version). */
#define CAPMEM_ALLOC_STATS_VERSION 1u

/** Where the numbers of capmem_alloc_stats() came from. */
typedef enum capmem_alloc_stats_source {
    CAPMEM_ALLOC_STATS_POLICY = 0, /**< the policy's stats hook (built-ins: their counters) */
    CAPMEM_ALLOC_STATS_WALK = 1,   /**< a walk over every block */
    CAPMEM_ALLOC_STATS_COUNTS = 2, /**< no walk hook: avail and largest only (blocks unknown) */
} capmem_alloc_stats_source_t;

/**
 * Fragmentation metrics of a policy, as capmem_alloc_stats() writes them.
 * Versioned as capmem_stats_t is: set @c size to sizeof(capmem_alloc_stats_t)
 * as your header knows it; fields are only ever appended.
 */
struct capmem_alloc_stats {
    uint32_t size;         /**< in: sizeof as the caller knows it; out: bytes written */
    uint32_t version;      /**< out: CAPMEM_ALLOC_STATS_VERSION */
    uint64_t span;         /**< bytes in the span (capmem_alloc_size()) */
    uint64_t free_bytes;   /**< capmem_alloc_avail() */
    uint64_t used_bytes;   /**< span - free_bytes: held by blocks, or lost */
    uint64_t largest_free; /**< capmem_alloc_largest(): the largest alloc(size, 1) */
    uint64_t free_blocks;  /**< maximal runs of free bytes (0 when unknown, see source) */
    uint64_t used_blocks;  /**< live blocks */
    uint64_t requested;    /**< bytes the live blocks were asked for (sizes as requested) */
    /**
     * Bytes held but never asked for: used_bytes - requested. Rounding up
     * to a granule or to a power of two; for watermark also the gaps
     * skipped to align the free index and freed blocks below it, which it
     * cannot reuse until reset.
     */
    uint64_t align_loss;
    /** External fragmentation, 1 - largest_free / free_bytes (0 when nothing is free). */
    double fragmentation;
    uint32_t source;   /**< a capmem_alloc_stats_source_t */
    uint32_t reserved; /**< 0 */
};

/** The smallest @c size capmem_alloc_stats() accepts: version 1's layout. */
#define CAPMEM_ALLOC_STATS_SIZE_MIN ((uint32_t)sizeof(capmem_alloc_stats_t))

/**
 * A policy as a recipe: what a layer needs to make its own instance over a
 * span it chooses. A built-in by kind, or a custom ops table that has a
 * create hook. Used by capmem_ram_attr_t, capmem_rm_open_attr_t, the
 * conformance suite and capmem-replay.
 */
typedef enum capmem_alloc_kind {
    CAPMEM_ALLOC_DEFAULT = 0, /**< the layer's own default placement */
    CAPMEM_ALLOC_WATERMARK,   /**< capmem_alloc_create_watermark() */
    CAPMEM_ALLOC_RANGE,       /**< capmem_alloc_create_range(), at the layer's granule */
    CAPMEM_ALLOC_BUDDY,       /**< capmem_alloc_create_buddy(), blocks from the granule up */
    CAPMEM_ALLOC_CUSTOM,      /**< ops (with a create hook) and ctx */
} capmem_alloc_kind_t;

/** A policy recipe; see capmem_alloc_kind_t. */
typedef struct capmem_alloc_policy {
    capmem_alloc_kind_t kind;
    const capmem_alloc_ops_t *ops; /**< CAPMEM_ALLOC_CUSTOM: the table (create must be set) */
    void *ctx;                     /**< CAPMEM_ALLOC_CUSTOM: passed to ops->create */
} capmem_alloc_policy_t;

/** A recipe for a built-in kind: `CAPMEM_ALLOC_POLICY(CAPMEM_ALLOC_BUDDY)`. */
#define CAPMEM_ALLOC_POLICY(k) ((capmem_alloc_policy_t){.kind = (k), .ops = NULL, .ctx = NULL})

/** A recipe for a custom ops table: `CAPMEM_ALLOC_POLICY_CUSTOM(&my_ops, NULL)`. */
#define CAPMEM_ALLOC_POLICY_CUSTOM(o, c)                                                           \
    ((capmem_alloc_policy_t){.kind = CAPMEM_ALLOC_CUSTOM, .ops = (o), .ctx = (c)})

/**
 * Create a watermark (bump) policy over [base, base + size).
 *
 * Each allocation aligns the free index up to the requested alignment; the
 * gap is lost. Frees are checked (double and foreign frees are refused) but
 * never make space reusable; capmem_alloc_reset() does. Host cost: one
 * small struct plus a table of live blocks (16 bytes each) that doubles on
 * demand, so an allocation may return CAPMEM_E_HOST_NOMEM when it grows.
 *
 * @retval CAPMEM_OK              *out holds the new policy.
 * @retval CAPMEM_E_INVALID_ARGS  out is NULL, size is 0 or base + size overflows.
 * @retval CAPMEM_E_HOST_NOMEM    a host allocation failed.
 */
CAPMEM_API capmem_err_t capmem_alloc_create_watermark(uint64_t base, uint64_t size,
                                                      capmem_alloc_t **out);

/**
 * Create a range (offset) policy over [base, base + size) in units of
 * @p granule bytes.
 *
 * Good fit: free ranges are kept in size classes (the exact length below 16
 * granules, else 16 classes per power of two); an allocation takes the
 * newest range of the lowest class all of whose ranges hold the aligned
 * block, and only when there is none looks at the ranges that may hold it,
 * so it never fails while a fitting aligned range is free. Exact-offset
 * allocation; free coalesces with both neighbours. Sizes are rounded up to
 * the granule; offsets given to alloc_at and free must be granule-aligned.
 *
 * Cost: alloc and free O(1) expected (class bitmaps, a hash table of block
 * boundaries). alloc_at is O(1) expected when the block starts or ends a
 * free range or lies in the one the last free made or grew; else it
 * searches an address-ordered treap of the F free ranges, O(log F)
 * expected, which first takes in the ranges that appeared since the last
 * such search (O(log F) each, once per range: amortized over the calls that
 * made them). Walks are O(blocks). Metadata follows what is live,
 * not the span: 24 bytes per free range (up to the peak number) plus a hash
 * table of 8-byte slots kept 20-50% full, with one key per live block and
 * two per free range. Room for the largest tables is reserved at creation in
 * one lazily committed mapping (32 bytes of address space per granule,
 * committed only as the tables grow), so no operation takes host memory.
 *
 * @retval CAPMEM_OK              *out holds the new policy.
 * @retval CAPMEM_E_INVALID_ARGS  out is NULL; size is 0; granule not a power
 *                                of two; base or size not granule multiples;
 *                                base + size overflows; more than 2^31 - 1
 *                                granules.
 * @retval CAPMEM_E_HOST_NOMEM    a host allocation or mapping failed.
 */
CAPMEM_API capmem_err_t capmem_alloc_create_range(uint64_t base, uint64_t size, uint64_t granule,
                                                  capmem_alloc_t **out);

/**
 * Create a buddy policy over [base, base + size) with blocks of
 * 2^min_order .. 2^max_order bytes.
 *
 * Every block is naturally aligned (a block of 2^k bytes starts at a
 * multiple of 2^k), so base need only be aligned to 2^min_order: the span is
 * covered by the largest naturally aligned blocks that fit (at most
 * 2^max_order), smaller ones at unaligned heads and tails. Metadata: two
 * bits per block per order (about 4 bits per 2^min_order bytes), in one
 * lazily committed mapping made at creation.
 *
 * @retval CAPMEM_OK              *out holds the new policy.
 * @retval CAPMEM_E_INVALID_ARGS  out is NULL; size is 0; min_order > max_order;
 *                                max_order > 62; base or size not multiples
 *                                of 2^min_order; base + size overflows; more
 *                                than 2^36 minimum blocks.
 * @retval CAPMEM_E_HOST_NOMEM    a host allocation or mapping failed.
 */
CAPMEM_API capmem_err_t capmem_alloc_create_buddy(uint64_t base, uint64_t size, unsigned min_order,
                                                  unsigned max_order, capmem_alloc_t **out);

/**
 * Wrap a user policy. The span is [0, UINT64_MAX): the generic calls check
 * only for overflow. Use capmem_alloc_create_custom_span() to have offsets
 * checked against a span. capmem_alloc_destroy() calls ops->destroy(self)
 * when it is not NULL. @p ops must outlive the policy.
 *
 * The wrapper checks the policy's answers against a shadow set of the
 * blocks it handed out and has not taken back, with the sizes the callers
 * asked for. Through it the wrapper also refuses, before the policy is
 * asked, a free of a block that is not live (or with another size than it
 * was asked for) and an alloc_at overlapping a live block. Cost, the price
 * of checking untrusted code: one 40-byte host node per live block (plus up
 * to 16 spare ones kept after frees), O(log n) per alloc, alloc_at and free
 * for n live blocks (an AA tree), O(n) per reset, check and destroy. A node
 * is taken before the policy is asked, so an alloc or alloc_at may fail
 * with CAPMEM_E_HOST_NOMEM without the policy having run.
 *
 * @retval CAPMEM_OK              *out holds the new policy.
 * @retval CAPMEM_E_INVALID_ARGS  ops or out is NULL, or a mandatory hook
 *                                (alloc, alloc_at, free, avail, largest,
 *                                reset) is NULL.
 * @retval CAPMEM_E_HOST_NOMEM    a host allocation failed.
 */
CAPMEM_API capmem_err_t capmem_alloc_create_custom(const capmem_alloc_ops_t *ops, void *self,
                                                   capmem_alloc_t **out);

/**
 * Like capmem_alloc_create_custom(), with the span [base, base + size) the
 * generic calls check offsets against (and capmem_alloc_base()/size() return).
 *
 * @retval CAPMEM_OK              *out holds the new policy.
 * @retval CAPMEM_E_INVALID_ARGS  as capmem_alloc_create_custom(), or size is 0
 *                                or base + size overflows.
 * @retval CAPMEM_E_HOST_NOMEM    a host allocation failed.
 */
CAPMEM_API capmem_err_t capmem_alloc_create_custom_span(const capmem_alloc_ops_t *ops, void *self,
                                                        uint64_t base, uint64_t size,
                                                        capmem_alloc_t **out);

/**
 * Make an instance of a policy recipe over [base, base + size), offsets in
 * multiples of @p granule (a power of two; base and size its multiples):
 * watermark(base, size), range(base, size, granule), buddy(base, size,
 * log2 granule, up to the largest power of two in size, at most 2^62), or
 * for a custom recipe ops->create(ctx, base, size, granule) wrapped as by
 * capmem_alloc_create_custom_span(). CAPMEM_ALLOC_DEFAULT makes a range
 * policy. If the wrapper cannot be made, ops->destroy (if any) gets the new
 * instance back.
 *
 * @retval CAPMEM_OK              *out holds the new policy.
 * @retval CAPMEM_E_INVALID_ARGS  policy or out NULL; unknown kind; a custom
 *                                recipe without ops, a mandatory hook or a
 *                                create hook; granule not a power of two;
 *                                the span as for the built-in constructors.
 * @retval CAPMEM_E_HOST_NOMEM    a host allocation failed.
 * @retval other                  the create hook's code, passed on.
 */
CAPMEM_API capmem_err_t capmem_alloc_create_policy(const capmem_alloc_policy_t *policy,
                                                   uint64_t base, uint64_t size, uint64_t granule,
                                                   capmem_alloc_t **out);

/**
 * The recipe of a built-in policy by name: "watermark", "range" or "buddy"
 * (and "default", which is range).
 *
 * @retval CAPMEM_OK              *out holds the recipe.
 * @retval CAPMEM_E_INVALID_ARGS  name or out NULL.
 * @retval CAPMEM_E_NOT_FOUND     no built-in policy of that name.
 */
CAPMEM_API capmem_err_t capmem_alloc_policy_by_name(const char *name, capmem_alloc_policy_t *out);

/**
 * Fragmentation metrics: free and used bytes, the largest free block, the
 * number of free runs and of live blocks, the bytes lost to alignment and
 * external fragmentation (1 - largest/free). Computed by the policy's stats
 * hook when it has one (watermark has; range and buddy are walked for now),
 * else from a walk (merging
 * adjacent free blocks into one run), else from avail and largest alone
 * (free_blocks and used_blocks 0, source COUNTS). The bytes asked for are
 * counted by the generic calls, for every policy. Set out->size first; the
 * library writes that many bytes at most and sets out->size to how many.
 * Changes nothing; O(1) with a hook, O(blocks) with a walk.
 *
 * @retval CAPMEM_OK              *out filled.
 * @retval CAPMEM_E_INVALID_ARGS  a or out NULL, or out->size below
 *                                CAPMEM_ALLOC_STATS_SIZE_MIN (*out unchanged).
 * @retval CAPMEM_E_REENTRANT     called from a hook of a's own policy.
 * @retval other                  the policy's stats or walk hook failed: its
 *                                code and detail, passed on (*out unchanged).
 */
CAPMEM_API capmem_err_t capmem_alloc_stats(const capmem_alloc_t *a, capmem_alloc_stats_t *out);

/**
 * Allocate @p size bytes aligned to @p align (absolute offsets) and store
 * the block's offset in *offset.
 *
 * @retval CAPMEM_OK                   *offset holds the block's offset.
 * @retval CAPMEM_E_INVALID_ARGS       a or offset is NULL, size is 0, or align
 *                                     is not a power of two.
 * @retval CAPMEM_E_NOT_ENOUGH_MEMORY  no free block fits; the detail record
 *                                     has needed (size) and available.
 * @retval CAPMEM_E_HOST_NOMEM         the watermark's live-block table, or a
 *                                     custom policy's shadow set, could not
 *                                     grow (then the policy was not asked).
 * @retval CAPMEM_E_POLICY             the policy answered with a block that
 *                                     leaves the span, is not aligned to
 *                                     @p align or (custom) overlaps a live
 *                                     block; the detail's address and size
 *                                     are the answer. Nothing changed.
 * @retval CAPMEM_E_REENTRANT          called from a hook of a's own policy.
 * @retval other                       a custom policy's hook failed: its code
 *                                     and detail record, passed on.
 */
CAPMEM_API capmem_err_t capmem_alloc_alloc(capmem_alloc_t *a, uint64_t size, uint64_t align,
                                           uint64_t *offset);

/**
 * Allocate exactly [offset, offset + size).
 *
 * @retval CAPMEM_OK                   the block is allocated.
 * @retval CAPMEM_E_INVALID_ARGS       a is NULL, size is 0, offset + size
 *                                     overflows or leaves the span, or the
 *                                     offset is misaligned for the policy.
 * @retval CAPMEM_E_NOT_ENOUGH_MEMORY  the block overlaps an allocated block
 *                                     (or, watermark, lies below the index).
 *                                     A custom policy is not asked when its
 *                                     shadow set shows the overlap, so it
 *                                     never gets to OK such a block.
 * @retval CAPMEM_E_HOST_NOMEM         the watermark's table or a custom
 *                                     policy's shadow set could not grow.
 * @retval CAPMEM_E_REENTRANT          called from a hook of a's own policy.
 * @retval other                       a custom policy's hook failed: its code
 *                                     and detail record, passed on.
 */
CAPMEM_API capmem_err_t capmem_alloc_alloc_at(capmem_alloc_t *a, uint64_t offset, uint64_t size);

/**
 * Free the block at @p offset that was allocated with @p size.
 *
 * @retval CAPMEM_OK              the block is free (coalesced where the
 *                                policy does so).
 * @retval CAPMEM_E_INVALID_ARGS  a is NULL, size is 0, or offset + size
 *                                overflows or leaves the span.
 * @retval CAPMEM_E_NOT_ALLOCATED no block was handed out exactly there with
 *                                that size (double free, sub-range, range
 *                                spanning blocks, wrong size). A custom
 *                                policy is not asked when its shadow set
 *                                shows no such live block.
 * @retval CAPMEM_E_REENTRANT     called from a hook of a's own policy.
 * @retval other                  a custom policy's hook failed: its code and
 *                                detail record, passed on.
 */
CAPMEM_API capmem_err_t capmem_alloc_free(capmem_alloc_t *a, uint64_t offset, uint64_t size);

/** Total free bytes; 0 for NULL. */
CAPMEM_API CAPMEM_NODISCARD uint64_t capmem_alloc_avail(const capmem_alloc_t *a);

/** Largest block alloc(size, 1) could return now; 0 for NULL. */
CAPMEM_API CAPMEM_NODISCARD uint64_t capmem_alloc_largest(const capmem_alloc_t *a);

/** First offset of the span; 0 for NULL. */
CAPMEM_API CAPMEM_NODISCARD uint64_t capmem_alloc_base(const capmem_alloc_t *a);

/** Size of the span in bytes; 0 for NULL. */
CAPMEM_API CAPMEM_NODISCARD uint64_t capmem_alloc_size(const capmem_alloc_t *a);

/** Policy name ("watermark", "range", "buddy" or the custom ops' name); "" for NULL. */
CAPMEM_API CAPMEM_NODISCARD const char *capmem_alloc_name(const capmem_alloc_t *a);

/**
 * Make everything free again (forgets every allocation). NULL is a no-op,
 * and so is a call from a hook of a's own policy.
 */
CAPMEM_API void capmem_alloc_reset(capmem_alloc_t *a);

/**
 * Destroy the policy and its metadata. NULL is a no-op, and so is a call
 * from a hook of a's own policy.
 */
CAPMEM_API void capmem_alloc_destroy(capmem_alloc_t *a);

/**
 * Walk the policy's structures and report the first broken invariant.
 * For a custom policy: its check hook, if any, then the wrapper's shadow
 * set (order, balance, blocks disjoint and inside the span).
 *
 * @param why  buffer for the reason (may be NULL when len is 0)
 * @retval CAPMEM_OK              all invariants hold.
 * @retval CAPMEM_E_INVALID_ARGS  a is NULL, or why is NULL with len > 0.
 * @retval CAPMEM_E_CORRUPT       an invariant is broken; why says which.
 * @retval other                  a custom policy's check hook returned it.
 */
CAPMEM_API CAPMEM_NODISCARD capmem_err_t capmem_alloc_check(const capmem_alloc_t *a, char *why,
                                                            size_t len);

/**
 * Visit every block, used and free, in address order. The watermark policy
 * visits its live blocks and the free tail above the index; space lost
 * below the index is not a block and is not visited.
 *
 * @retval CAPMEM_OK              the walk ran (or was stopped by fn).
 * @retval CAPMEM_E_INVALID_ARGS  a or fn is NULL.
 * @retval CAPMEM_E_UNSUPPORTED   a custom policy without a walk hook.
 * @retval other                  a custom policy's walk hook failed: its code
 *                                and detail record, passed on.
 */
CAPMEM_API capmem_err_t capmem_alloc_walk(const capmem_alloc_t *a, capmem_alloc_walk_fn fn,
                                          void *ctx);

/**
 * Range policy only: visit the free ranges in address order (state is
 * always CAPMEM_BLOCK_FREE).
 *
 * @retval CAPMEM_OK              the walk ran (or was stopped by fn).
 * @retval CAPMEM_E_INVALID_ARGS  a or fn is NULL.
 * @retval CAPMEM_E_WRONG_TYPE    a is not a range policy.
 */
CAPMEM_API capmem_err_t capmem_alloc_free_ranges(const capmem_alloc_t *a, capmem_alloc_walk_fn fn,
                                                 void *ctx);

#ifdef __cplusplus
}
#endif

#endif /* CAPMEM_ALLOC_H */
