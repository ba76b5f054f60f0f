/* SPDX-License-Identifier: MIT */
/*
 * Buddy policy: power-of-two blocks, split on alloc, merged on free.
 *
 * Geometry. Every block of order j (2^j bytes) is naturally aligned: it
 * starts at a multiple of 2^j in absolute offsets. Its buddy is the other
 * half of the aligned 2^(j+1) block around it, found by flipping bit j of
 * its offset. The span [base, end) need not be a power of two, nor aligned
 * to the largest block: it is covered by its maximal naturally aligned
 * blocks of at most 2^max_order bytes (the "roots", greedy from base: at
 * each point the largest aligned block that still fits). Every naturally
 * aligned block inside the span lies inside exactly one root, so "may these
 * two buddies merge" is simply "does their parent lie inside the span and
 * is it at most 2^max_order bytes".
 *
 * Metadata, all fixed at creation (no host memory per operation): for each
 * order j two bitmaps indexed by (offset - origin_j) >> j, with origin_j the
 * base rounded down to 2^j:
 *   - free[j]: a hierarchical bitmap (hbm.h), bit set iff the
 *     block is a free block of the current tiling. Its summary levels find
 *     the lowest-address free block of an order in one word per level.
 *   - used[j]: plain bitmap, bit set iff the block was handed out whole.
 *     A free(offset, size) must hit a set bit at exactly the order of the
 *     rounded size, which refuses double frees, sub-ranges, ranges that
 *     span blocks and wrong sizes, all in O(1).
 * About 4 bits per 2^min_order bytes of span in total.
 *
 * Allocation picks the smallest order that has a suitable free block and,
 * in that order, the lowest address; it then splits, keeping the lower half
 * each time, so a fresh region fills from the bottom (the docs/alloc.md halving
 * scenario). O(orders) bit operations; with align > block size, orders
 * below log2(align) are searched for aligned free blocks by jumping from
 * one aligned index to the next free one (one hbm search per candidate).
 *
 * Invariants (checked by bd_check): the free and used blocks tile the span
 * exactly (walking down from the roots meets exactly one marked block on
 * every path, and no bit is set elsewhere); no two free buddies coexist
 * (they would have been merged); free_bytes is the sum of free blocks;
 * bit j of nonempty is set iff free[j] has a set bit.
 */
#include <string.h>

#include "alloc_internal.h"
#include "hbm.h"

#define BD_ORDERS 64

typedef struct buddy {
    uint64_t base;
    uint64_t end;
    unsigned min;
    unsigned max; /* clamped to the largest block that fits in the span */
    uint64_t free_bytes;
    uint64_t nonempty; /* bit j: free[j] is not empty */
    bool whole;        /* base and end are multiples of 2^max (see bd_free) */
    uint64_t origin[BD_ORDERS];
    uint64_t nblk[BD_ORDERS];
    capmem__hbm_t freem[BD_ORDERS];
    uint64_t *used[BD_ORDERS];
    uint64_t *map;
    size_t map_len;
} buddy_t;

static inline uint64_t bd_idx(const buddy_t *b, unsigned j, uint64_t a)
{
    return (a - b->origin[j]) >> j;
}

/* A naturally aligned block (a, j) is one the policy may hold. */
static inline bool bd_valid(const buddy_t *b, uint64_t a, unsigned j)
{
    return j <= b->max && a >= b->base && a < b->end && b->end - a >= (1ull << j);
}

static inline bool bd_is_free(const buddy_t *b, unsigned j, uint64_t a)
{
    return capmem__hbm_test(&b->freem[j], bd_idx(b, j, a));
}

static inline bool bd_is_used(const buddy_t *b, unsigned j, uint64_t a)
{
    uint64_t i = bd_idx(b, j, a);
    return (b->used[j][i >> 6] >> (i & 63)) & 1u;
}

static inline void bd_set_free(buddy_t *b, unsigned j, uint64_t a)
{
    capmem__hbm_set(&b->freem[j], bd_idx(b, j, a));
    b->nonempty |= 1ull << j;
}

/*
 * Clear bit i of free[j]. Same walk as capmem__hbm_clear, but a walk that
 * empties the one-word top level has just found the order empty, so
 * nonempty is updated without reading the top again.
 */
static inline void bd_clear_idx(buddy_t *b, unsigned j, uint64_t i)
{
    capmem__hbm_t *h = &b->freem[j];
    unsigned n = h->levels;
    for (unsigned l = 0;;) {
        uint64_t *w = &h->lvl[l][i >> 6];
        uint64_t v = *w & ~(1ull << (i & 63));
        *w = v;
        if (v != 0) {
            return;
        }
        if (++l == n) {
            break;
        }
        i >>= 6;
    }
    b->nonempty &= ~(1ull << j);
}

static inline void bd_clear_free(buddy_t *b, unsigned j, uint64_t a)
{
    bd_clear_idx(b, j, bd_idx(b, j, a));
}

/*
 * Take the lowest free block of order j (free[j] must not be empty): one
 * descent finds it, one climb clears it. Returns its offset.
 */
static inline uint64_t bd_pop_first(buddy_t *b, unsigned j)
{
    const capmem__hbm_t *h = &b->freem[j];
    unsigned l = h->levels - 1;
    uint64_t i = (uint64_t)__builtin_ctzll(h->lvl[l][0]);
    while (l > 0) {
        l--;
        i = (i << 6) + (uint64_t)__builtin_ctzll(h->lvl[l][i]);
    }
    bd_clear_idx(b, j, i);
    return b->origin[j] + (i << j);
}

static inline void bd_flip_used(buddy_t *b, unsigned j, uint64_t a)
{
    uint64_t i = bd_idx(b, j, a);
    b->used[j][i >> 6] ^= 1ull << (i & 63);
}

/* Largest order of a root block starting at p. */
static unsigned bd_root_order(const buddy_t *b, uint64_t p)
{
    unsigned j = b->max;
    while (j > b->min && (!capmem__is_aligned(p, 1ull << j) || b->end - p < (1ull << j))) {
        j--;
    }
    return j;
}

static void bd_reset(void *self)
{
    buddy_t *b = self;
    memset(b->map, 0, b->map_len);
    b->nonempty = 0;
    for (uint64_t p = b->base; p < b->end;) {
        unsigned j = bd_root_order(b, p);
        bd_set_free(b, j, p);
        p += 1ull << j;
    }
    b->free_bytes = b->end - b->base;
}

capmem_err_t capmem__buddy_new(uint64_t base, uint64_t size, unsigned min_order, unsigned max_order,
                               void **self)
{
    if ((size >> min_order) > (1ull << 36)) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, __func__,
                            "buddy: %llu blocks of 2^%u bytes exceed the limit of 2^36",
                            (unsigned long long)(size >> min_order), min_order);
    }
    buddy_t *b = capmem__calloc(1, sizeof(*b));
    if (b == NULL) {
        return capmem__fail(CAPMEM_E_HOST_NOMEM, __func__, "no host memory for the buddy");
    }
    b->base = base;
    b->end = base + size;
    b->min = min_order;
    b->max = max_order;
    if (capmem__log2(size) < b->max) {
        b->max = capmem__log2(size);
    }
    b->whole = capmem__is_aligned(base, 1ull << b->max) && capmem__is_aligned(size, 1ull << b->max);
    /* Lay out both bitmaps of every order in one lazily committed mapping. */
    uint64_t words = 0;
    for (unsigned j = b->min; j <= b->max; j++) {
        b->origin[j] = base & ~((1ull << j) - 1);
        b->nblk[j] = (b->end - b->origin[j]) >> j;
        words += capmem__hbm_words(b->nblk[j]) + (b->nblk[j] + 63) / 64;
    }
    b->map_len = (size_t)(words * sizeof(uint64_t));
    b->map = capmem__map_lazy(b->map_len);
    if (b->map == NULL) {
        capmem__free(b);
        return capmem__fail(CAPMEM_E_HOST_NOMEM, __func__, "buddy: cannot map %zu bytes of bitmaps",
                            (size_t)(words * 8));
    }
    uint64_t *w = b->map;
    for (unsigned j = b->min; j <= b->max; j++) {
        capmem__hbm_init(&b->freem[j], b->nblk[j], w);
        w += capmem__hbm_words(b->nblk[j]);
        b->used[j] = w;
        w += (b->nblk[j] + 63) / 64;
    }
    bd_reset(b);
    *self = b;
    return CAPMEM_OK;
}

static void bd_destroy(void *self)
{
    buddy_t *b = self;
    capmem__unmap(b->map, b->map_len);
    capmem__free(b);
}

static unsigned bd_order_of(const buddy_t *b, uint64_t size)
{
    unsigned k = size <= 1 ? 0 : 64u - (unsigned)__builtin_clzll(size - 1);
    return k < b->min ? b->min : k;
}

static uint64_t bd_largest(const void *self)
{
    const buddy_t *b = self;
    return b->nonempty == 0 ? 0 : 1ull << capmem__log2(b->nonempty);
}

static uint64_t bd_avail(const void *self)
{
    const buddy_t *b = self;
    return b->free_bytes;
}

/*
 * Lowest free block of order j whose offset is a multiple of align
 * (align > 2^j). Aligned indices are those with (origin/2^j + i) a multiple
 * of stride = align / 2^j; jump from each free candidate to the next aligned
 * index instead of testing indices one by one.
 */
static bool bd_find_aligned(const buddy_t *b, unsigned j, uint64_t align, uint64_t *out)
{
    uint64_t stride = align >> j;
    uint64_t r = (b->origin[j] >> j) & (stride - 1);
    uint64_t i = (stride - r) & (stride - 1);
    while (i < b->nblk[j]) {
        i = capmem__hbm_next(&b->freem[j], i);
        if (i == CAPMEM__HBM_NONE) {
            return false;
        }
        uint64_t miss = (i + r) & (stride - 1);
        if (miss == 0) {
            *out = b->origin[j] + (i << j);
            return true;
        }
        i += stride - miss;
    }
    return false;
}

/* Split block (a, j), already taken off free[j], down to order k toward
 * `toward`, and mark the order-k block that holds it used. */
static inline __attribute__((always_inline)) void bd_split(buddy_t *b, uint64_t a, unsigned j,
                                                           unsigned k, uint64_t toward)
{
    while (j > k) {
        j--;
        uint64_t half = 1ull << j;
        /* Keep the half that holds `toward`, free the other (its buddy). */
        if (toward - a >= half) {
            bd_set_free(b, j, a);
            a += half;
        } else {
            bd_set_free(b, j, a + half);
        }
    }
    bd_flip_used(b, k, a);
    b->free_bytes -= 1ull << k;
}

/* Take free block (a, j) and split it down to order k toward `toward`. */
static inline __attribute__((always_inline)) void bd_take(buddy_t *b, uint64_t a, unsigned j,
                                                          unsigned k, uint64_t toward)
{
    bd_clear_free(b, j, a);
    bd_split(b, a, j, k, toward);
}

/*
 * bd_alloc's search beyond its common case: orders below log2(align), whose
 * blocks must be searched for an aligned one, and the failure. Out of line,
 * so that the common path saves fewer registers.
 */
static __attribute__((noinline)) capmem_err_t
bd_alloc_search(buddy_t *b, uint64_t size, uint64_t align, unsigned k, uint64_t *offset)
{
    static const char fn[] = "bd_alloc";
    unsigned la = capmem__log2(align);
    /* Orders with a free block, from k up. */
    uint64_t orders = b->nonempty & ~((1ull << k) - 1);
    while (orders != 0) {
        unsigned j = (unsigned)__builtin_ctzll(orders);
        orders &= orders - 1;
        uint64_t a;
        if (j >= la) {
            /* Natural alignment covers the request: the lowest block will do. */
            a = bd_pop_first(b, j);
            bd_split(b, a, j, k, a);
            *offset = a;
            return CAPMEM_OK;
        }
        if (!bd_find_aligned(b, j, align, &a)) {
            continue;
        }
        bd_take(b, a, j, k, a);
        *offset = a;
        return CAPMEM_OK;
    }
    return capmem__fail_space(CAPMEM_E_NOT_ENOUGH_MEMORY, fn, size, bd_largest(b),
                              "buddy: insufficient memory (%llu bytes needed as a 2^%u block "
                              "aligned to %llu, largest free block %llu bytes)",
                              (unsigned long long)size, k, (unsigned long long)align,
                              (unsigned long long)bd_largest(b));
}

static capmem_err_t bd_alloc(void *self, uint64_t size, uint64_t align, uint64_t *offset)
{
    buddy_t *b = self;
    if (size > (1ull << b->max)) {
        return capmem__fail_space(CAPMEM_E_NOT_ENOUGH_MEMORY, __func__, size, bd_largest(b),
                                  "buddy: %llu bytes needed, larger than the largest block "
                                  "(%llu bytes)",
                                  (unsigned long long)size, (unsigned long long)(1ull << b->max));
    }
    unsigned k = bd_order_of(b, size);
    /* The common case: the lowest order with a free block is naturally
     * aligned enough, and its lowest block is the answer. */
    uint64_t orders = b->nonempty & ~((1ull << k) - 1);
    if (orders != 0) {
        unsigned j = (unsigned)__builtin_ctzll(orders);
        if ((1ull << j) >= align) {
            uint64_t a = bd_pop_first(b, j);
            bd_split(b, a, j, k, a);
            *offset = a;
            return CAPMEM_OK;
        }
    }
    return bd_alloc_search(b, size, align, k, offset);
}

static capmem_err_t bd_alloc_at(void *self, uint64_t offset, uint64_t size)
{
    buddy_t *b = self;
    if (size > (1ull << b->max)) {
        return capmem__fail_space(CAPMEM_E_NOT_ENOUGH_MEMORY, __func__, size, bd_largest(b),
                                  "buddy: %llu bytes is larger than the largest block",
                                  (unsigned long long)size);
    }
    unsigned k = bd_order_of(b, size);
    if (!capmem__is_aligned(offset, 1ull << k)) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, __func__,
                            "buddy: offset 0x%llx is not aligned to its block size 0x%llx",
                            (unsigned long long)offset, (unsigned long long)(1ull << k));
    }
    if (!bd_valid(b, offset, k)) {
        return capmem__fail_space(CAPMEM_E_NOT_ENOUGH_MEMORY, __func__, 1ull << k, b->end - offset,
                                  "buddy: the 0x%llx-byte block at 0x%llx reaches past the end",
                                  (unsigned long long)(1ull << k), (unsigned long long)offset);
    }
    /* The free block containing it, if any, is one of its ancestors. */
    for (unsigned j = k; j <= b->max && j < BD_ORDERS; j++) {
        uint64_t a = offset & ~((1ull << j) - 1);
        if (!bd_valid(b, a, j)) {
            break;
        }
        if (bd_is_free(b, j, a)) {
            bd_take(b, a, j, k, offset);
            return CAPMEM_OK;
        }
        if (bd_is_used(b, j, a)) {
            break;
        }
    }
    capmem__fail_space(CAPMEM_E_NOT_ENOUGH_MEMORY, __func__, 1ull << k, bd_largest(b),
                       "buddy: [0x%llx, +0x%llx) overlaps an allocated block",
                       (unsigned long long)offset, (unsigned long long)(1ull << k));
    capmem__detail()->address = offset;
    return CAPMEM_E_NOT_ENOUGH_MEMORY;
}

/* bd_free's refusal (out of line: the common path saves fewer registers). */
static __attribute__((noinline, cold)) capmem_err_t bd_free_refused(uint64_t offset, uint64_t size)
{
    capmem__fail(CAPMEM_E_NOT_ALLOCATED, "bd_free",
                 "buddy: no allocated block at 0x%llx of size %llu (double free, foreign "
                 "range or wrong size)",
                 (unsigned long long)offset, (unsigned long long)size);
    capmem__detail()->address = offset;
    capmem__detail()->size = size;
    return CAPMEM_E_NOT_ALLOCATED;
}

static capmem_err_t bd_free(void *self, uint64_t offset, uint64_t size)
{
    buddy_t *b = self;
    unsigned k = size > (1ull << b->max) ? b->max + 1 : bd_order_of(b, size);
    if (k > b->max || !capmem__is_aligned(offset, 1ull << k) || !bd_valid(b, offset, k) ||
        !bd_is_used(b, k, offset)) {
        return bd_free_refused(offset, size);
    }
    bd_flip_used(b, k, offset);
    b->free_bytes += 1ull << k;
    /* Merge upwards while the buddy is free and the parent is a legal block. */
    uint64_t a = offset;
    unsigned j = k;
    while (j < b->max) {
        uint64_t parent = a & ~((2ull << j) - 1);
        uint64_t buddy = a ^ (1ull << j);
        /* When the span is whole 2^max blocks, every parent up to order max
         * of a block inside it lies inside it too: no bounds to test. */
        if (!b->whole && !bd_valid(b, parent, j + 1)) {
            break;
        }
        uint64_t bi = bd_idx(b, j, buddy);
        if (!capmem__hbm_test(&b->freem[j], bi)) {
            break;
        }
        bd_clear_idx(b, j, bi);
        a = parent;
        j++;
    }
    bd_set_free(b, j, a);
    return CAPMEM_OK;
}

/* ---- walk and check ----------------------------------------------------- */

typedef struct bd_visit {
    capmem_alloc_walk_fn fn;
    void *ctx;
    /* check mode (fn == NULL): counters and the first problem */
    uint64_t nfree;
    uint64_t nused;
    uint64_t free_bytes;
    const char *problem;
    uint64_t where;
} bd_visit_t;

/* Returns non-zero to stop. */
static int bd_visit(const buddy_t *b, uint64_t a, unsigned j, bd_visit_t *v)
{
    bool f = bd_is_free(b, j, a);
    bool u = bd_is_used(b, j, a);
    if (f || u) {
        if (v->fn != NULL) {
            return v->fn(a, 1ull << j, f ? CAPMEM_BLOCK_FREE : CAPMEM_BLOCK_USED, v->ctx);
        }
        if (f && u) {
            v->problem = "block marked both free and used";
            v->where = a;
            return 1;
        }
        v->nfree += f;
        v->nused += u;
        v->free_bytes += f ? 1ull << j : 0;
        return 0;
    }
    if (j == b->min) {
        if (v->fn == NULL) {
            v->problem = "minimum block neither free nor used (hole in the tiling)";
            v->where = a;
            return 1;
        }
        return 0;
    }
    uint64_t half = 1ull << (j - 1);
    if (v->fn == NULL && bd_is_free(b, j - 1, a) && bd_is_free(b, j - 1, a + half)) {
        v->problem = "two free buddies not merged";
        v->where = a;
        return 1;
    }
    if (bd_visit(b, a, j - 1, v) != 0) {
        return 1;
    }
    return bd_visit(b, a + half, j - 1, v);
}

static int bd_visit_roots(const buddy_t *b, bd_visit_t *v)
{
    for (uint64_t p = b->base; p < b->end;) {
        unsigned j = bd_root_order(b, p);
        if (bd_visit(b, p, j, v) != 0) {
            return 1;
        }
        p += 1ull << j;
    }
    return 0;
}

static capmem_err_t bd_walk(const void *self, capmem_alloc_walk_fn fn, void *ctx)
{
    bd_visit_t v = {.fn = fn, .ctx = ctx};
    (void)bd_visit_roots(self, &v);
    return CAPMEM_OK;
}

static capmem_err_t bd_check(const void *self, char *why, size_t len)
{
    const buddy_t *b = self;
    bd_visit_t v = {0};
    if (bd_visit_roots(b, &v) != 0) {
        return capmem__alloc_broken(why, len, "%s at 0x%llx", v.problem,
                                    (unsigned long long)v.where);
    }
    uint64_t bits_free = 0;
    uint64_t bits_used = 0;
    for (unsigned j = b->min; j <= b->max; j++) {
        const capmem__hbm_t *h = &b->freem[j];
        if (!capmem__hbm_check(h)) {
            return capmem__alloc_broken(why, len, "free bitmap of order %u: summary mismatch", j);
        }
        uint64_t c = capmem__hbm_count(h);
        if ((c != 0) != (((b->nonempty >> j) & 1u) != 0)) {
            return capmem__alloc_broken(why, len, "nonempty mask disagrees at order %u", j);
        }
        bits_free += c;
        for (uint64_t w = 0; w < (b->nblk[j] + 63) / 64; w++) {
            bits_used += (uint64_t)__builtin_popcountll(b->used[j][w]);
        }
    }
    if ((b->nonempty & ~(((2ull << b->max) - 1) & ~((1ull << b->min) - 1))) != 0) {
        return capmem__alloc_broken(why, len, "nonempty mask has bits outside the orders");
    }
    /* Bits the tiling walk did not meet are stale marks under a block. */
    if (bits_free != v.nfree || bits_used != v.nused) {
        return capmem__alloc_broken(why, len,
                                    "%llu free / %llu used bits set, but the tiling has %llu free "
                                    "/ %llu used blocks",
                                    (unsigned long long)bits_free, (unsigned long long)bits_used,
                                    (unsigned long long)v.nfree, (unsigned long long)v.nused);
    }
    if (v.free_bytes != b->free_bytes) {
        return capmem__alloc_broken(why, len, "free_bytes %llu, but free blocks sum to %llu",
                                    (unsigned long long)b->free_bytes,
                                    (unsigned long long)v.free_bytes);
    }
    return CAPMEM_OK;
}

uint64_t capmem__buddy_metadata(const void *self)
{
    const buddy_t *b = self;
    return b->map_len;
}

const capmem_alloc_ops_t capmem__buddy_ops = {
    .name = "buddy",
    .alloc = bd_alloc,
    .alloc_at = bd_alloc_at,
    .free = bd_free,
    .avail = bd_avail,
    .largest = bd_largest,
    .reset = bd_reset,
    .destroy = bd_destroy,
    .check = bd_check,
    .walk = bd_walk,
};
