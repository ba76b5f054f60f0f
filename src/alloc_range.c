/* SPDX-License-Identifier: MIT */
/*
 * Range policy: an offset allocator after Genode's Allocator_avl.
 *
 * The span is cut into granules (a power of two); every block, used or
 * free, is a whole number of granules, and together the blocks tile the
 * span. All metadata is laid out at creation in one lazily committed
 * mapping, so no operation takes host memory:
 *
 *  1. Boundary tags, kept beside the span instead of inside it (the policy
 *     never touches the memory it manages): tag[g].s describes the block
 *     that starts at granule g and tag[g].e the block that ends at g, each
 *     as its length in granules plus a USED bit; 0 means "no block starts
 *     (ends) here". Tags are kept exact: when blocks merge, the tags at the
 *     vanished boundary are cleared. They give O(1) answers to "is there a
 *     used block of exactly this size at this offset" (free's check) and
 *     "are my neighbours free, and how long are they" (coalescing), as
 *     TLSF's physical-neighbour links do, and they need no node per block.
 *     tag[g].s and tag[g - 1].e sit side by side, so free() reads both the
 *     block and its left neighbour from one cache line.
 *
 *  2. Indexes of the free blocks. Best fit is the smallest free block in
 *     (length, start) order that is >= (size, 0): the smallest range that
 *     fits and, among equal lengths, the lowest address. That order is kept
 *     in two parts, TLSF style, but both exact:
 *     - short blocks (1..RANGE_SMALL granules): one hierarchical bitmap of
 *       start granules per exact length, plus a mask of non-empty lengths.
 *       The lowest block of the smallest non-empty length >= size costs a
 *       ctz on the mask and one word per bitmap level. This is the common
 *       case: fragmentation makes most free blocks short.
 *     - longer blocks: a treap of 32-byte nodes keyed by (length, start),
 *       expected O(log n), nodes from a pool with a free list. A long free
 *       block needs at least RANGE_SMALL + 1 granules of its own, so the
 *       pool is sized n / (RANGE_SMALL + 1) + 1 and cannot run dry.
 *     rg_lower_bound() joins both parts into one ordered view. A bitmap of
 *     all free starts serves alloc_at: the free block that could contain
 *     granule g is the last free start <= g (one word per level).
 *
 * Alignment. With align <= granule every free block fits any request of
 * its length, so the lower bound is the exact best fit. With a larger
 * alignment a range of length >= size may still not hold an aligned block.
 * We test the first RANGE_CANDIDATES ranges in (length, start) order and
 * take the first that fits (exact best fit among them); otherwise we take
 * the smallest range of length >= size + align - granule, which always
 * fits; only when no such range exists do we continue scanning the shorter
 * ones (linear, but the alternative is failing). So: alloc never fails
 * while some free range can hold the aligned block, and the result is the
 * exact best fit whenever it lies among the first RANGE_CANDIDATES
 * candidates.
 *
 * Memory (virtual, lazily committed) per granule of span: 8 bytes of tags
 * and (RANGE_SMALL + 1) bits of bitmaps (about 2.2 bytes), plus 32 bytes per
 * long free block. Nothing per used block.
 */
#include <string.h>

#include "alloc_internal.h"
#include "hbm.h"

#define RANGE_CANDIDATES 8
#define RANGE_SMALL 16 /* free blocks of 1..RANGE_SMALL granules live in bitmaps */
#define RT_USED 0x80000000u
#define RANGE_MAX_GRANULES 0x7fffffffu /* lengths must fit beside RT_USED */

/* Boundary tags of one granule; see the top of the file. */
typedef struct rtag {
    uint32_t s; /* block starting here: len | RT_USED if used; 0 if none */
    uint32_t e; /* block ending here, same encoding */
} rtag_t;

/* A long free block in the treap. */
typedef struct rnode {
    uint64_t start; /* granule index relative to base */
    uint64_t len;   /* granules, > RANGE_SMALL */
    uint32_t left;  /* children; next in the node free list when dead */
    uint32_t right;
    uint32_t prio; /* a parent's priority is >= its children's */
    uint32_t pad;
} rnode_t;

_Static_assert(sizeof(rnode_t) == 32, "treap nodes are 32 bytes, as documented");

/*
 * Invariants (checked by rg_check):
 * - the tags tile [0, n): walking tag[].s from 0 by lengths reaches n; at
 *   each block's last granule tag[].e equals its tag[].s; every other s
 *   and e is 0;
 * - no two free blocks are adjacent (free coalesces both sides);
 * - a free block of len <= RANGE_SMALL has its start in cls[len] and
 *   nowhere else; a longer one is in the treap, in strict (len, start)
 *   order with heap-ordered priorities; bit c of cls_mask is set iff cls[c]
 *   is not empty; fstart has exactly the starts of all free blocks;
 * - free_granules, nfree and nblocks match the tiling; the treap's size is
 *   hw minus the length of the node free list. Node 0 is nil.
 */
typedef struct range {
    uint64_t base;
    uint64_t size;
    unsigned gshift; /* granule = 1 << gshift */
    uint64_t n;      /* granules in the span */
    rtag_t *tag;     /* n entries */
    rnode_t *nodes;  /* ncap entries, [0] is nil */
    uint32_t ncap;
    uint32_t hw;       /* nodes[1..hw] have been handed out at some point */
    uint32_t freelist; /* dead nodes below hw */
    uint32_t root;     /* treap of long free blocks */
    uint32_t rng;
    capmem__hbm_t fstart;
    capmem__hbm_t cls[RANGE_SMALL + 1]; /* [1..RANGE_SMALL] */
    uint64_t cls_mask;
    uint64_t *bm_words; /* fstart and every cls, contiguous */
    uint64_t bm_nwords;
    uint64_t free_granules;
    uint64_t nfree;
    uint64_t nblocks;
    void *map;
    size_t map_len;
} range_t;

/* ---- treap of long free blocks, keyed by (len, start) --------------------- */

static inline bool key_less(uint64_t len_a, uint64_t start_a, uint64_t len_b, uint64_t start_b)
{
    return len_a < len_b || (len_a == len_b && start_a < start_b);
}

static uint32_t tr_insert(rnode_t *N, uint32_t t, uint32_t x)
{
    if (t == 0) {
        return x;
    }
    if (key_less(N[x].len, N[x].start, N[t].len, N[t].start)) {
        N[t].left = tr_insert(N, N[t].left, x);
        uint32_t l = N[t].left;
        if (N[l].prio > N[t].prio) { /* rotate right */
            N[t].left = N[l].right;
            N[l].right = t;
            return l;
        }
    } else {
        N[t].right = tr_insert(N, N[t].right, x);
        uint32_t rr = N[t].right;
        if (N[rr].prio > N[t].prio) { /* rotate left */
            N[t].right = N[rr].left;
            N[rr].left = t;
            return rr;
        }
    }
    return t;
}

/* Join two treaps, every key of a below every key of b. */
static uint32_t tr_join(rnode_t *N, uint32_t a, uint32_t b)
{
    if (a == 0) {
        return b;
    }
    if (b == 0) {
        return a;
    }
    if (N[a].prio > N[b].prio) {
        N[a].right = tr_join(N, N[a].right, b);
        return a;
    }
    N[b].left = tr_join(N, a, N[b].left);
    return b;
}

/* Remove the node with key (len, start); it must be there. *gone names it. */
static uint32_t tr_delete(rnode_t *N, uint32_t t, uint64_t len, uint64_t start, uint32_t *gone)
{
    CAPMEM_ASSERT(t != 0, "deleting a key that is not in the treap");
    if (N[t].len == len && N[t].start == start) {
        *gone = t;
        return tr_join(N, N[t].left, N[t].right);
    }
    if (key_less(len, start, N[t].len, N[t].start)) {
        N[t].left = tr_delete(N, N[t].left, len, start, gone);
    } else {
        N[t].right = tr_delete(N, N[t].right, len, start, gone);
    }
    return t;
}

/* Smallest key >= (len, start), or 0. */
static uint32_t tr_lower_bound(const rnode_t *N, uint32_t t, uint64_t len, uint64_t start)
{
    uint32_t best = 0;
    while (t != 0) {
        if (!key_less(N[t].len, N[t].start, len, start)) {
            best = t;
            t = N[t].left;
        } else {
            t = N[t].right;
        }
    }
    return best;
}

/* ---- free-block index ------------------------------------------------------ */

static void fb_add(range_t *r, uint64_t start, uint64_t len)
{
    if (len <= RANGE_SMALL) {
        capmem__hbm_set(&r->cls[len], start);
        r->cls_mask |= 1ull << len;
    } else {
        uint32_t x = r->freelist;
        if (x != 0) {
            r->freelist = r->nodes[x].left;
        } else {
            CAPMEM_ASSERT(r->hw + 1 < r->ncap, "a long free block needs its own granules");
            x = ++r->hw;
        }
        /* xorshift32: treap priorities only need to look random. */
        r->rng ^= r->rng << 13;
        r->rng ^= r->rng >> 17;
        r->rng ^= r->rng << 5;
        r->nodes[x] = (rnode_t){.start = start, .len = len, .prio = r->rng};
        r->root = tr_insert(r->nodes, r->root, x);
    }
    capmem__hbm_set(&r->fstart, start);
    r->nfree++;
}

static void fb_remove(range_t *r, uint64_t start, uint64_t len)
{
    if (len <= RANGE_SMALL) {
        capmem__hbm_clear(&r->cls[len], start);
        if (capmem__hbm_empty(&r->cls[len])) {
            r->cls_mask &= ~(1ull << len);
        }
    } else {
        uint32_t x = 0;
        r->root = tr_delete(r->nodes, r->root, len, start, &x);
        r->nodes[x].left = r->freelist;
        r->nodes[x].len = 0; /* dead */
        r->freelist = x;
    }
    capmem__hbm_clear(&r->fstart, start);
    r->nfree--;
}

/*
 * The free block with the smallest (len, start) >= (len, start): the
 * bitmaps of short lengths first, then the treap. Used for best fit
 * (start 0) and to step to the next candidate (start + 1).
 */
static bool rg_lower_bound(const range_t *r, uint64_t len, uint64_t start, uint64_t *olen,
                           uint64_t *ostart)
{
    if (len <= RANGE_SMALL) {
        uint64_t g = start < r->n ? capmem__hbm_next(&r->cls[len], start) : CAPMEM__HBM_NONE;
        if (g != CAPMEM__HBM_NONE) {
            *olen = len;
            *ostart = g;
            return true;
        }
        uint64_t longer = r->cls_mask & ~((2ull << len) - 1);
        if (longer != 0) {
            unsigned c = (unsigned)__builtin_ctzll(longer);
            *olen = c;
            *ostart = capmem__hbm_first(&r->cls[c]);
            return true;
        }
        len = RANGE_SMALL + 1;
        start = 0;
    }
    uint32_t t = tr_lower_bound(r->nodes, r->root, len, start);
    if (t == 0) {
        return false;
    }
    *olen = r->nodes[t].len;
    *ostart = r->nodes[t].start;
    return true;
}

/* ---- tags -------------------------------------------------------------------- */

static inline void tag_set(range_t *r, uint64_t start, uint64_t len, uint32_t used)
{
    r->tag[start].s = (uint32_t)len | used;
    r->tag[start + len - 1].e = (uint32_t)len | used;
}

static inline void tag_clear(range_t *r, uint64_t start, uint64_t len)
{
    r->tag[start].s = 0;
    r->tag[start + len - 1].e = 0;
}

/*
 * Allocate [pos, pos + len) out of the free block [s, s + l), which holds
 * it. The pieces left on either side stay free; they cannot have free
 * neighbours (the block had none), so the tiling stays coalesced. Cannot
 * fail.
 */
static void rg_carve(range_t *r, uint64_t s, uint64_t l, uint64_t pos, uint64_t len)
{
    uint64_t e = s + l;
    fb_remove(r, s, l);
    tag_clear(r, s, l);
    if (pos > s) {
        tag_set(r, s, pos - s, 0);
        fb_add(r, s, pos - s);
        r->nblocks++;
    }
    tag_set(r, pos, len, RT_USED);
    if (pos + len < e) {
        tag_set(r, pos + len, e - (pos + len), 0);
        fb_add(r, pos + len, e - (pos + len));
        r->nblocks++;
    }
    r->free_granules -= len;
}

/* ---- creation ------------------------------------------------------------------ */

static void rg_reset(void *self)
{
    range_t *r = self;
    /* Clear the tags block by block: O(blocks), and commits no new pages. */
    for (uint64_t g = 0; g < r->n && r->tag[g].s != 0;) {
        uint64_t len = r->tag[g].s & ~RT_USED;
        tag_clear(r, g, len);
        g += len;
    }
    memset(r->bm_words, 0, r->bm_nwords * sizeof(uint64_t));
    r->cls_mask = 0;
    r->hw = 0;
    r->freelist = 0;
    r->root = 0;
    r->rng = 0x9e3779b9u;
    r->nfree = 0;
    tag_set(r, 0, r->n, 0);
    fb_add(r, 0, r->n);
    r->free_granules = r->n;
    r->nblocks = 1;
}

static size_t round8(size_t x)
{
    return (x + 7) & ~(size_t)7;
}

capmem_err_t capmem__range_new(uint64_t base, uint64_t size, uint64_t granule, void **self)
{
    unsigned gshift = capmem__log2(granule);
    uint64_t n = size >> gshift;
    if (n > RANGE_MAX_GRANULES) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, __func__,
                            "range: %llu granules exceed the limit of 2^31 - 1",
                            (unsigned long long)n);
    }
    range_t *r = capmem__calloc(1, sizeof(*r));
    if (r == NULL) {
        return capmem__fail(CAPMEM_E_HOST_NOMEM, __func__, "no host memory for the range");
    }
    r->base = base;
    r->size = size;
    r->gshift = gshift;
    r->n = n;
    r->ncap = (uint32_t)(n / (RANGE_SMALL + 1) + 2);
    uint64_t hw = capmem__hbm_words(n);
    r->bm_nwords = hw * (RANGE_SMALL + 1);
    size_t tags_len = round8((size_t)n * sizeof(rtag_t));
    size_t nodes_len = (size_t)r->ncap * sizeof(rnode_t);
    r->map_len = tags_len + nodes_len + (size_t)r->bm_nwords * sizeof(uint64_t);
    r->map = capmem__map_lazy(r->map_len);
    if (r->map == NULL) {
        size_t want = r->map_len;
        capmem__free(r);
        return capmem__fail(CAPMEM_E_HOST_NOMEM, __func__, "range: cannot map %zu bytes", want);
    }
    char *p = r->map;
    r->tag = (rtag_t *)(void *)p;
    r->nodes = (rnode_t *)(void *)(p + tags_len);
    r->bm_words = (uint64_t *)(void *)(p + tags_len + nodes_len);
    capmem__hbm_init(&r->fstart, n, r->bm_words);
    for (unsigned c = 1; c <= RANGE_SMALL; c++) {
        capmem__hbm_init(&r->cls[c], n, r->bm_words + hw * c);
    }
    rg_reset(r);
    *self = r;
    return CAPMEM_OK;
}

static void rg_destroy(void *self)
{
    range_t *r = self;
    capmem__unmap(r->map, r->map_len);
    capmem__free(r);
}

/* ---- operations ------------------------------------------------------------------ */

static uint64_t rg_largest(const void *self)
{
    const range_t *r = self;
    uint32_t t = r->root;
    if (t == 0) {
        return (uint64_t)capmem__log2(r->cls_mask) << r->gshift; /* 0 when empty */
    }
    while (r->nodes[t].right != 0) {
        t = r->nodes[t].right;
    }
    return r->nodes[t].len << r->gshift;
}

static uint64_t rg_avail(const void *self)
{
    const range_t *r = self;
    return r->free_granules << r->gshift;
}

/* Where an aligned block of len granules starts inside free block [s, s + l), if it fits. */
static bool rg_fits(const range_t *r, uint64_t s, uint64_t l, uint64_t len, uint64_t galign,
                    uint64_t *pos)
{
    uint64_t abs = (r->base >> r->gshift) + s;
    uint64_t al;
    if (!capmem__align_up_ok(abs, galign, &al)) {
        return false;
    }
    uint64_t p = al - (r->base >> r->gshift);
    if (p - s >= l || len > l - (p - s)) {
        return false;
    }
    *pos = p;
    return true;
}

static capmem_err_t rg_alloc(void *self, uint64_t size, uint64_t align, uint64_t *offset)
{
    range_t *r = self;
    uint64_t g = 1ull << r->gshift;
    uint64_t len = 0;
    uint64_t galign = 1;
    uint64_t cl = 0;
    uint64_t cs = 0;
    uint64_t pos = 0;
    bool have = false;
    if (size <= r->size) {
        len = (size + g - 1) >> r->gshift; /* size <= r->size: no overflow */
        galign = align <= g ? 1 : align >> r->gshift;
        have = rg_lower_bound(r, len, 0, &cl, &cs);
    }
    for (unsigned k = 0; have && k < RANGE_CANDIDATES; k++) {
        if (rg_fits(r, cs, cl, len, galign, &pos)) {
            goto found;
        }
        have = rg_lower_bound(r, cl, cs + 1, &cl, &cs);
    }
    if (have) {
        /* A range this long holds an aligned block wherever it starts. */
        uint64_t sure;
        uint64_t sl;
        uint64_t ss;
        if (capmem__add_ok(len, galign - 1, &sure) && rg_lower_bound(r, sure, 0, &sl, &ss) &&
            rg_fits(r, ss, sl, len, galign, &pos)) {
            cs = ss;
            cl = sl;
            goto found;
        }
        for (; have; have = rg_lower_bound(r, cl, cs + 1, &cl, &cs)) {
            if (rg_fits(r, cs, cl, len, galign, &pos)) {
                goto found;
            }
        }
    }
    return capmem__fail_space(CAPMEM_E_NOT_ENOUGH_MEMORY, __func__, size, rg_largest(r),
                              "range: insufficient memory (%llu bytes needed at alignment %llu, "
                              "largest free range %llu bytes)",
                              (unsigned long long)size, (unsigned long long)align,
                              (unsigned long long)rg_largest(r));
found:
    rg_carve(r, cs, cl, pos, len);
    *offset = r->base + (pos << r->gshift);
    return CAPMEM_OK;
}

/*
 * The granules of [offset, offset + size): first index and count, the size
 * rounded up to the granule. INVALID_ARGS if offset is off the granule.
 */
static capmem_err_t rg_span(const range_t *r, uint64_t offset, uint64_t size, const char *func,
                            uint64_t *g0, uint64_t *len)
{
    uint64_t g = 1ull << r->gshift;
    if (!capmem__is_aligned(offset, g)) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, func,
                            "range: offset 0x%llx is not a multiple of the granule %llu",
                            (unsigned long long)offset, (unsigned long long)g);
    }
    *g0 = (offset - r->base) >> r->gshift;
    *len = (size + g - 1) >> r->gshift;
    return CAPMEM_OK;
}

static capmem_err_t rg_alloc_at(void *self, uint64_t offset, uint64_t size)
{
    range_t *r = self;
    uint64_t g0 = 0;
    uint64_t len = 0;
    capmem_err_t err = rg_span(r, offset, size, __func__, &g0, &len);
    if (err != CAPMEM_OK) {
        return err;
    }
    uint64_t s = capmem__hbm_prev(&r->fstart, g0);
    uint64_t l = s == CAPMEM__HBM_NONE ? 0 : r->tag[s].s;
    if (s == CAPMEM__HBM_NONE || s + l < g0 + len) {
        capmem__fail_space(CAPMEM_E_NOT_ENOUGH_MEMORY, __func__, size, rg_largest(r),
                           "range: [0x%llx, +0x%llx) overlaps an allocated block",
                           (unsigned long long)offset, (unsigned long long)size);
        capmem__detail()->address = offset;
        capmem__detail()->size = size;
        return CAPMEM_E_NOT_ENOUGH_MEMORY;
    }
    rg_carve(r, s, l, g0, len);
    return CAPMEM_OK;
}

static capmem_err_t rg_free(void *self, uint64_t offset, uint64_t size)
{
    range_t *r = self;
    uint64_t g0 = 0;
    uint64_t len = 0;
    capmem_err_t err = rg_span(r, offset, size, __func__, &g0, &len);
    if (err != CAPMEM_OK) {
        return err;
    }
    uint32_t t = r->tag[g0].s;
    if (t != ((uint32_t)len | RT_USED)) {
        capmem__fail(CAPMEM_E_NOT_ALLOCATED, __func__,
                     "range: [0x%llx, +0x%llx) is not an allocated block (%s)",
                     (unsigned long long)offset, (unsigned long long)size,
                     t == 0               ? "no block starts there"
                     : (t & RT_USED) == 0 ? "it is free: double free?"
                                          : "the block there has another size");
        capmem__detail()->address = offset;
        capmem__detail()->size = size;
        return CAPMEM_E_NOT_ALLOCATED;
    }
    uint64_t start = g0;
    uint64_t end = g0 + len;
    tag_clear(r, g0, len);
    if (g0 > 0) {
        uint32_t pe = r->tag[g0 - 1].e;
        CAPMEM_ASSERT(pe != 0, "every granule belongs to a block");
        if ((pe & RT_USED) == 0) {
            start = g0 - pe;
            fb_remove(r, start, pe);
            tag_clear(r, start, pe);
            r->nblocks--;
        }
    }
    if (end < r->n) {
        uint32_t ns = r->tag[end].s;
        CAPMEM_ASSERT(ns != 0, "every granule belongs to a block");
        if ((ns & RT_USED) == 0) {
            fb_remove(r, end, ns);
            tag_clear(r, end, ns);
            end += ns;
            r->nblocks--;
        }
    }
    tag_set(r, start, end - start, 0);
    fb_add(r, start, end - start);
    r->free_granules += len;
    return CAPMEM_OK;
}

/* ---- walk and check ---------------------------------------------------------- */

static capmem_err_t rg_walk(const void *self, capmem_alloc_walk_fn fn, void *ctx)
{
    const range_t *r = self;
    for (uint64_t g = 0; g < r->n;) {
        uint32_t t = r->tag[g].s;
        if (t == 0) {
            break; /* broken tiling: rg_check reports it */
        }
        uint64_t len = t & ~RT_USED;
        capmem_block_state_t st = (t & RT_USED) ? CAPMEM_BLOCK_USED : CAPMEM_BLOCK_FREE;
        if (fn(r->base + (g << r->gshift), len << r->gshift, st, ctx) != 0) {
            break;
        }
        g += len;
    }
    return CAPMEM_OK;
}

capmem_err_t capmem__range_free_ranges(const void *self, capmem_alloc_walk_fn fn, void *ctx)
{
    const range_t *r = self;
    for (uint64_t g = capmem__hbm_next(&r->fstart, 0); g != CAPMEM__HBM_NONE;
         g = capmem__hbm_next(&r->fstart, g + 1)) {
        uint64_t len = r->tag[g].s & ~RT_USED;
        if (fn(r->base + (g << r->gshift), len << r->gshift, CAPMEM_BLOCK_FREE, ctx) != 0) {
            break;
        }
    }
    return CAPMEM_OK;
}

typedef struct tr_stats {
    uint64_t count;
    const char *problem;
    uint32_t where;
    uint32_t prev; /* last node in order, for strict ordering */
} tr_stats_t;

static void tr_check(const range_t *r, uint32_t t, unsigned depth, tr_stats_t *st)
{
    const rnode_t *N = r->nodes;
    if (t == 0 || st->problem != NULL) {
        return;
    }
    if (t > r->hw || depth > 200) {
        st->problem = t > r->hw ? "treap link beyond the pool" : "treap deeper than 200";
        st->where = t;
        return;
    }
    uint32_t kids[2] = {N[t].left, N[t].right};
    for (int i = 0; i < 2; i++) {
        if (kids[i] != 0 && kids[i] <= r->hw && N[kids[i]].prio > N[t].prio) {
            st->problem = "treap priority above its parent's";
            st->where = t;
            return;
        }
    }
    tr_check(r, N[t].left, depth + 1, st);
    if (st->problem != NULL) {
        return;
    }
    if (N[t].len <= RANGE_SMALL || N[t].start >= r->n || r->tag[N[t].start].s != N[t].len) {
        st->problem = "treap holds a node that is not a long free block";
        st->where = t;
        return;
    }
    if (st->prev != 0 && !key_less(N[st->prev].len, N[st->prev].start, N[t].len, N[t].start)) {
        st->problem = "treap out of (length, start) order";
        st->where = t;
        return;
    }
    st->prev = t;
    st->count++;
    tr_check(r, N[t].right, depth + 1, st);
}

static capmem_err_t rg_check(const void *self, char *why, size_t len)
{
    const range_t *r = self;
    uint64_t nblocks = 0;
    uint64_t nfree = 0;
    uint64_t nlong = 0;
    uint64_t fg = 0;
    bool prev_free = false;
    for (uint64_t g = 0; g < r->n;) {
        uint32_t t = r->tag[g].s;
        uint64_t l = t & ~RT_USED;
        if (t == 0 || l > r->n - g) {
            return capmem__alloc_broken(why, len, "no valid block starts at granule %llu",
                                        (unsigned long long)g);
        }
        if (r->tag[g + l - 1].e != t) {
            return capmem__alloc_broken(why, len, "end tag of block at granule %llu is wrong",
                                        (unsigned long long)g);
        }
        for (uint64_t h = g; h < g + l; h++) {
            if ((h > g && r->tag[h].s != 0) || (h < g + l - 1 && r->tag[h].e != 0)) {
                return capmem__alloc_broken(why, len, "stale tag inside the block at granule %llu",
                                            (unsigned long long)g);
            }
        }
        bool is_free = (t & RT_USED) == 0;
        if (is_free && prev_free) {
            return capmem__alloc_broken(why, len, "free blocks not coalesced at granule %llu",
                                        (unsigned long long)g);
        }
        if (is_free != capmem__hbm_test(&r->fstart, g)) {
            return capmem__alloc_broken(why, len, "free-start bitmap wrong at granule %llu",
                                        (unsigned long long)g);
        }
        if (is_free && l <= RANGE_SMALL && !capmem__hbm_test(&r->cls[l], g)) {
            return capmem__alloc_broken(why, len, "short free block at granule %llu not indexed",
                                        (unsigned long long)g);
        }
        nblocks++;
        nfree += is_free;
        nlong += is_free && l > RANGE_SMALL;
        fg += is_free ? l : 0;
        prev_free = is_free;
        g += l;
    }
    if (nblocks != r->nblocks || nfree != r->nfree || fg != r->free_granules) {
        return capmem__alloc_broken(why, len,
                                    "counters (blocks %llu, free %llu, free granules %llu) differ "
                                    "from the tiling (%llu, %llu, %llu)",
                                    (unsigned long long)r->nblocks, (unsigned long long)r->nfree,
                                    (unsigned long long)r->free_granules,
                                    (unsigned long long)nblocks, (unsigned long long)nfree,
                                    (unsigned long long)fg);
    }
    if (!capmem__hbm_check(&r->fstart) || capmem__hbm_count(&r->fstart) != nfree) {
        return capmem__alloc_broken(why, len, "free-start bitmap has stray bits or summaries");
    }
    uint64_t nsmall = 0;
    for (unsigned c = 1; c <= RANGE_SMALL; c++) {
        const capmem__hbm_t *h = &r->cls[c];
        if (!capmem__hbm_check(h)) {
            return capmem__alloc_broken(why, len, "bitmap of length %u: summary mismatch", c);
        }
        if (capmem__hbm_empty(h) != !((r->cls_mask >> c) & 1u)) {
            return capmem__alloc_broken(why, len, "length mask disagrees at length %u", c);
        }
        nsmall += capmem__hbm_count(h);
    }
    if ((r->cls_mask & ~(((2ull << RANGE_SMALL) - 1) & ~1ull)) != 0) {
        return capmem__alloc_broken(why, len, "length mask has bits outside 1..%d", RANGE_SMALL);
    }
    /* Every short free block is indexed (above), so equal counts mean no stray bits. */
    if (nsmall != nfree - nlong) {
        return capmem__alloc_broken(
            why, len, "length bitmaps hold %llu blocks, %llu short free blocks",
            (unsigned long long)nsmall, (unsigned long long)(nfree - nlong));
    }
    tr_stats_t st = {0};
    tr_check(r, r->root, 0, &st);
    if (st.problem != NULL) {
        return capmem__alloc_broken(why, len, "%s (node %u)", st.problem, st.where);
    }
    if (st.count != nlong) {
        return capmem__alloc_broken(why, len, "treap has %llu nodes, %llu long free blocks",
                                    (unsigned long long)st.count, (unsigned long long)nlong);
    }
    uint64_t dead = 0;
    for (uint32_t x = r->freelist; x != 0; x = r->nodes[x].left) {
        if (x > r->hw || r->nodes[x].len != 0 || ++dead > r->hw) {
            return capmem__alloc_broken(why, len, "node free list is corrupt at node %u", x);
        }
    }
    if (r->hw - dead != nlong) {
        return capmem__alloc_broken(why, len, "%llu live nodes for %llu long free blocks",
                                    (unsigned long long)(r->hw - dead), (unsigned long long)nlong);
    }
    return CAPMEM_OK;
}

uint64_t capmem__range_metadata(const void *self)
{
    const range_t *r = self;
    /* All tags and bitmaps, nodes up to the high-water mark. */
    return r->n * sizeof(rtag_t) + r->bm_nwords * sizeof(uint64_t) +
           (uint64_t)r->hw * sizeof(rnode_t);
}

const capmem_alloc_ops_t capmem__range_ops = {
    .name = "range",
    .alloc = rg_alloc,
    .alloc_at = rg_alloc_at,
    .free = rg_free,
    .avail = rg_avail,
    .largest = rg_largest,
    .reset = rg_reset,
    .destroy = rg_destroy,
    .check = rg_check,
    .walk = rg_walk,
};
