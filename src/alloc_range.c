/* SPDX-License-Identifier: MIT */
/*
 * Range policy: an offset allocator with alignment, allocation at an exact
 * offset and coalescing free, at the speed of an O(1) allocator (TLSF's
 * size classes) and with metadata proportional to what is live, not to the
 * span.
 *
 * The span is cut into granules (a power of two); every block, used or
 * free, is a whole number of granules. Three structures, all in one lazily
 * committed mapping reserved at creation, so no operation takes host memory:
 *
 *  1. Free ranges are 24-byte nodes (start, length, two class-list links,
 *     two treap links) from a pool with a free list.
 *
 *  2. Size classes (TLSF, Masmano et al.): a length of L granules belongs to
 *     class L for L < 16, else to one of 16 equal sub-ranges of
 *     [2^k, 2^(k+1)). Each class keeps its free ranges in a list (newest
 *     first); a first-level mask of non-empty powers and a 16-bit mask per
 *     power find the lowest non-empty class at or above any class with two
 *     ctz. Allocation of N granules (alignment a granules) looks first in
 *     the lowest class all of whose ranges are at least N + a - 1 long,
 *     where every range holds the aligned block whatever its start, and
 *     takes the newest range of the lowest non-empty such class ("good
 *     fit"). Only when there is none does it scan, range by range, the
 *     classes that may hold a fitting range (from N's own class up): so
 *     alloc never fails while a free range can hold the aligned block. The
 *     scan is linear, but it only runs where a plain TLSF would fail.
 *
 *  3. One open-addressing hash table (linear probing, 8-byte slots) keyed
 *     by granule: for a used block, its first granule maps to its length
 *     and a USED bit; for a free range, its first and last granules map to
 *     its node. That answers in O(1) "is there a used block of exactly this
 *     size here" (free's check) and "is the range just before (after) this
 *     block free" (coalescing), as TLSF's physical-neighbour links do
 *     without touching the managed memory. Fibonacci hashing, a power-of-
 *     two size, deletion by backward shift (no tombstones). It doubles when
 *     an operation could take it past half full and halves when it falls
 *     below a fifth (a rehash between two regions reserved at creation, so
 *     neither can fail), and never holds more than one key per granule.
 *
 *  4. A treap of the free ranges in address order (priorities are a hash of
 *     the node's index, so no field) answers alloc_at's "which free range
 *     holds granule g" in expected O(log F) when the block neither starts
 *     nor ends a free range (those the hash answers). Nothing else searches
 *     by address, so the treap is kept lazily: a new free range waits on a
 *     pending list (linked through its treap links) until such an alloc_at
 *     inserts every pending range (tr_flush), and a range that vanishes
 *     while pending (taken whole, or merged into a neighbour) never touches
 *     the treap. A range that shrinks from either end or grows by
 *     coalescing keeps its place, in the treap or on the list. Before the
 *     hash and the treap, alloc_at tries the free range the last free made
 *     or grew (a hint checked against the node's present range, so a stale
 *     one is harmless). Walks and the checker go through the span by the
 *     hash (each block's key gives the next block), not through the treap.
 *
 * Metadata (committed): 24 bytes per free range (node, up to the pool's
 * high-water mark) plus 8 bytes per hash slot, with 2 to 5 slots per key
 * (the table is 20-50% full): one key per used block, two per free range.
 * That is 16-40 bytes per live block and 56-104 per free range, whatever
 * the span (docs/performance.md has measured figures). Virtual
 * reservation: 32 bytes per granule of span, committed only as the tables
 * grow; the region a rehash leaves is given back to the host.
 */
#include <stddef.h>
#include <string.h>

#include "alloc_internal.h"

#define RANGE_MAX_GRANULES 0x7fffffffu /* lengths must fit beside RH_USED */
#define RH_USED 0x80000000u
#define SL_LOG2 4
#define SL_COUNT (1u << SL_LOG2)
#define FL_COUNT 28 /* lengths < 2^31: powers 4..30 give first levels 1..27 */
#define NCLASS (FL_COUNT * SL_COUNT)
#define HT_MIN 64

/* A free range; see the top of the file. Node 0 is nil. */
typedef struct rnode {
    uint32_t start; /* granule index relative to base */
    uint32_t len;   /* granules; 0 for a dead node */
    uint32_t prev;  /* class list; prev also links the node free list */
    uint32_t next;
    uint32_t left; /* address treap */
    uint32_t right;
} rnode_t;

_Static_assert(sizeof(rnode_t) == 24, "free-range nodes are 24 bytes, as documented");
_Static_assert(offsetof(rnode_t, right) == offsetof(rnode_t, left) + sizeof(uint32_t),
               "the treap indexes left and right as a pair");

/* A hash slot: key = granule + 1 (0: empty); val = len | RH_USED, or a node. */
typedef struct rslot {
    uint32_t key;
    uint32_t val;
} rslot_t;

/*
 * Invariants (checked by rg_check):
 * - every live node is either in the treap or on the pending list (left
 *   carries TR_PEND there), never both; the treap is in strict start order
 *   with heap-ordered priorities (prio(x) = hash of x); npend counts the
 *   list; free ranges are disjoint, inside the span and never adjacent
 *   (free coalesces both sides);
 * - every node is in the list of class_of(len) exactly once; bit sl of
 *   sl_map[fl] is set iff that class's list is not empty; bit fl of fl_map
 *   iff sl_map[fl] is not 0;
 * - the hash table holds exactly: for each free range, its first and last
 *   granule mapping to its node; for each used block, its first granule
 *   mapping to len | RH_USED; and the used blocks tile the gaps between the
 *   free ranges; count is the number of keys, and count <= cap * 4/5 + 3;
 * - free_granules, nfree, nused match; hw - (free list length) = nfree.
 */
typedef struct range {
    uint64_t base;
    uint64_t size;
    unsigned gshift; /* granule = 1 << gshift */
    uint64_t n;      /* granules in the span */
    uint64_t base_g; /* base >> gshift, for alignment */
    rnode_t *nodes;  /* ncap entries, [0] is nil */
    uint32_t ncap;
    uint32_t hw;       /* nodes[1..hw] have been handed out at some point */
    uint32_t freelist; /* dead nodes below hw */
    uint32_t root;     /* address treap */
    uint32_t pend;     /* free ranges not yet in the treap (see tr_flush) */
    uint64_t npend;
    uint32_t hint; /* the free range the last free made or grew (alloc_at tries it first) */
    rslot_t *ht;   /* the live table: region[cur] */
    rslot_t *region[2];
    unsigned cur;
    uint64_t cap;          /* slots in the live table, a power of two */
    unsigned shift;        /* 64 - log2(cap) */
    uint64_t cap_max;      /* slots each region can hold */
    uint64_t count;        /* keys in the table */
    uint64_t grow_above;   /* ht_reserve grows past this many keys (ht_limits) */
    uint64_t shrink_below; /* ht_trim shrinks below this many keys */
    uint32_t fl_map;
    uint16_t sl_map[FL_COUNT];
    uint32_t head[NCLASS];
    uint64_t free_granules;
    uint64_t nfree; /* free ranges */
    uint64_t nused; /* used blocks */
    void *map;
    size_t map_len;
} range_t;

/* ---- size classes ---------------------------------------------------------- */

static inline unsigned class_of(uint64_t len)
{
    /*
     * Branch-free: with k = log2(max(len, 16)), the class is
     * (k - 4) * 16 + (len >> (k - 4)), which is len itself below 32 (so
     * lengths below 16 get their own class) and (k - 3) * 16 + the next four
     * bits of len above. A branch here mispredicted on every other call.
     */
    unsigned k = capmem__log2(len | SL_COUNT);
    return ((k - SL_LOG2) << SL_LOG2) + (unsigned)(len >> (k - SL_LOG2));
}

/* The lowest class whose every length is >= len (len < 2^31). */
static inline unsigned class_up(uint64_t len)
{
    unsigned k = capmem__log2(len | SL_COUNT);
    return class_of(len + (1ull << (k - SL_LOG2)) - 1);
}

/* The lowest non-empty class >= c, or NCLASS. */
static inline unsigned class_find(const range_t *r, unsigned c)
{
    if (c >= NCLASS) {
        return NCLASS;
    }
    unsigned fl = c >> SL_LOG2;
    uint32_t sl = r->sl_map[fl] & (0xffffu << (c & (SL_COUNT - 1)));
    if (sl == 0) {
        uint32_t f = fl + 1 < 32 ? r->fl_map & (~0u << (fl + 1)) : 0;
        if (f == 0) {
            return NCLASS;
        }
        fl = (unsigned)__builtin_ctz(f);
        sl = r->sl_map[fl];
    }
    return (fl << SL_LOG2) | (unsigned)__builtin_ctz(sl);
}

static inline void class_insert_c(range_t *r, uint32_t x, unsigned c)
{
    rnode_t *N = r->nodes;
    uint32_t h = r->head[c];
    N[x].prev = 0;
    N[x].next = h;
    if (h != 0) {
        N[h].prev = x;
    }
    r->head[c] = x;
    r->sl_map[c >> SL_LOG2] |= (uint16_t)(1u << (c & (SL_COUNT - 1)));
    r->fl_map |= 1u << (c >> SL_LOG2);
}

static inline void class_remove_c(range_t *r, uint32_t x, unsigned c)
{
    rnode_t *N = r->nodes;
    uint32_t p = N[x].prev;
    uint32_t nx = N[x].next;
    if (p != 0) {
        N[p].next = nx;
    } else {
        r->head[c] = nx;
        if (nx == 0) {
            unsigned fl = c >> SL_LOG2;
            r->sl_map[fl] &= (uint16_t) ~(1u << (c & (SL_COUNT - 1)));
            if (r->sl_map[fl] == 0) {
                r->fl_map &= ~(1u << fl);
            }
        }
    }
    if (nx != 0) {
        N[nx].prev = p;
    }
}

static inline void class_insert(range_t *r, uint32_t x)
{
    class_insert_c(r, x, class_of(r->nodes[x].len));
}

static inline void class_remove(range_t *r, uint32_t x)
{
    class_remove_c(r, x, class_of(r->nodes[x].len));
}

/* ---- hash table ---------------------------------------------------------------- */

static inline uint64_t ht_home(const range_t *r, uint32_t key)
{
    return ((uint64_t)key * 0x9e3779b97f4a7c15ull) >> r->shift; /* Fibonacci hashing */
}

/* The slot holding granule g, or NULL. */
static inline rslot_t *ht_find(const range_t *r, uint64_t g)
{
    uint32_t key = (uint32_t)g + 1;
    uint64_t i = ht_home(r, key);
    for (;;) {
        rslot_t *s = &r->ht[i];
        if (s->key == key) {
            return s;
        }
        if (s->key == 0) {
            return NULL;
        }
        i = (i + 1) & (r->cap - 1);
    }
}

static inline void ht_put_raw(rslot_t *t, const range_t *r, uint32_t key, uint32_t val)
{
    uint64_t i = ht_home(r, key);
    while (t[i].key != 0) {
        i = (i + 1) & (r->cap - 1);
    }
    t[i].key = key;
    t[i].val = val;
}

/* Add granule g (not in the table). */
static inline void ht_put(range_t *r, uint64_t g, uint32_t val)
{
    ht_put_raw(r->ht, r, (uint32_t)g + 1, val);
    r->count++;
}

/* Remove the slot s (in the table): backward-shift deletion, no tombstones. */
static void ht_remove(range_t *r, rslot_t *s)
{
    rslot_t *t = r->ht;
    /* In locals: the slot stores below may alias r's 32-bit fields. */
    const uint64_t mask = r->cap - 1;
    const unsigned shift = r->shift;
    uint64_t i = (uint64_t)(s - t);
    uint64_t j = i;
    for (;;) {
        j = (j + 1) & mask;
        rslot_t e = t[j];
        if (e.key == 0) {
            break;
        }
        uint64_t h = ((uint64_t)e.key * 0x9e3779b97f4a7c15ull) >> shift; /* ht_home */
        /* May the entry at j move back to i? Only if i lies cyclically in
         * [h, j): its distance back from j is at most h's. */
        if (((j - i) & mask) <= ((j - h) & mask)) {
            t[i] = e;
            i = j;
        }
    }
    t[i] = (rslot_t){0, 0};
    r->count--;
}

/* The slot p held granule g's key before some removals: where that key is now. */
static inline rslot_t *ht_still(const range_t *r, rslot_t *p, uint64_t g)
{
    return p->key == (uint32_t)g + 1 ? p : ht_find(r, g);
}

static inline void ht_del(range_t *r, uint64_t g)
{
    rslot_t *s = ht_find(r, g);
    CAPMEM_ASSERT(s != NULL, "deleting a key that is in the table");
    ht_remove(r, s);
}

/*
 * Make room for @p more keys: grow the table by half (into the other
 * region, reserved at creation) when it would pass 80% full. Cannot fail.
 */
/*
 * The counts at which the table grows (past half full, unless it is as
 * large as its region) and shrinks (below a fifth full, unless it is at its
 * minimum), so that each operation compares once: count * 2 > cap and
 * count * 5 < cap, precomputed for the present cap.
 */
static void ht_limits(range_t *r)
{
    r->grow_above = r->cap < r->cap_max ? r->cap / 2 : UINT64_MAX;
    r->shrink_below = r->cap > HT_MIN ? (r->cap + 4) / 5 : 0;
}

/* Rehash into the other region with twice (grow) or half the slots. */
static void ht_rehash(range_t *r, bool grow)
{
    uint64_t ncap = grow ? r->cap * 2 : r->cap / 2;
    rslot_t *old = r->ht;
    uint64_t ocap = r->cap;
    rslot_t *t = r->region[r->cur ^ 1];
    memset(t, 0, ncap * sizeof(rslot_t));
    r->cap = ncap;
    r->shift = grow ? r->shift - 1 : r->shift + 1;
    ht_limits(r);
    for (uint64_t i = 0; i < ocap; i++) {
        if (old[i].key != 0) {
            ht_put_raw(t, r, old[i].key, old[i].val);
        }
    }
    r->cur ^= 1;
    r->ht = t;
    capmem__map_release(old, ocap * sizeof(rslot_t)); /* committed memory follows the table */
}

/* Returns true when it rehashed (slot pointers taken before are stale). */
static inline bool ht_reserve(range_t *r, uint64_t more)
{
    if (r->count + more > r->grow_above) {
        ht_rehash(r, true);
        return true;
    }
    return false;
}

/* After a free: halve the table when less than a fifth full (it is then 40% full). */
static inline void ht_trim(range_t *r)
{
    if (r->count < r->shrink_below) {
        ht_rehash(r, false);
    }
}

/* ---- address treap ------------------------------------------------------------- */

static inline uint32_t prio(uint32_t x)
{
    return x * 0x9e3779b1u; /* a bijection: priorities distinct and look random */
}

/*
 * Insert node x, top-down: walk down while the nodes' priorities are
 * higher than x's, then split the rest of the path around x's start into
 * x's two subtrees. No recursion, no rotations.
 */
static void tr_insert(range_t *r, uint32_t x)
{
    rnode_t *N = r->nodes;
    uint32_t key = N[x].start;
    uint32_t px = prio(x);
    uint32_t *link = &r->root;
    while (*link != 0 && prio(*link) > px) {
        uint32_t t = *link;
        link = &(&N[t].left)[key >= N[t].start]; /* left and right are adjacent */
    }
    uint32_t t = *link;
    uint32_t *l = &N[x].left;
    uint32_t *rr = &N[x].right;
    while (t != 0) {
        if (N[t].start < key) {
            *l = t;
            l = &N[t].right;
            t = N[t].right;
        } else {
            *rr = t;
            rr = &N[t].left;
            t = N[t].left;
        }
    }
    *l = 0;
    *rr = 0;
    *link = x;
}

/* Remove node x (it is in the treap, under its present start): find its link, then zip its
 * two subtrees together by priority. */
static void tr_delete(range_t *r, uint32_t x)
{
    rnode_t *N = r->nodes;
    uint32_t key = N[x].start;
    uint32_t *link = &r->root;
    while (*link != x) {
        uint32_t t = *link;
        CAPMEM_ASSERT(t != 0, "deleting a node that is not in the treap");
        link = &(&N[t].left)[key >= N[t].start]; /* left and right are adjacent */
    }
    uint32_t a = N[x].left;
    uint32_t b = N[x].right;
    while (a != 0 && b != 0) {
        if (prio(a) > prio(b)) {
            *link = a;
            link = &N[a].right;
            a = N[a].right;
        } else {
            *link = b;
            link = &N[b].left;
            b = N[b].left;
        }
    }
    *link = a != 0 ? a : b;
}

/* The free range with the largest start <= g, or 0. */
static uint32_t tr_floor(const rnode_t *N, uint32_t t, uint64_t g)
{
    uint32_t best = 0;
    while (t != 0) {
        if (N[t].start <= g) {
            best = t;
            t = N[t].right;
        } else {
            t = N[t].left;
        }
    }
    return best;
}

/*
 * Pending ranges. A new free range is not inserted into the treap at once:
 * it goes on a list (linked through its treap links, left carrying
 * TR_PEND), and the treap gets it only when alloc_at needs an address
 * search (tr_flush). A range that vanishes before that (taken whole by an
 * alloc, or merged into a neighbour) never costs a treap insert nor a
 * delete, which is most of them: alloc, free and alloc_at at a range's
 * start or end never search by address. Flushing inserts each pending
 * range once, so the treap's cost per range stays O(log F) amortized.
 */
#define TR_PEND 0x80000000u

static inline bool tr_pending(const range_t *r, uint32_t x)
{
    return (r->nodes[x].left & TR_PEND) != 0;
}

static inline void pend_add(range_t *r, uint32_t x)
{
    rnode_t *N = r->nodes;
    uint32_t h = r->pend;
    N[x].left = TR_PEND;
    N[x].right = h;
    if (h != 0) {
        N[h].left = TR_PEND | x;
    }
    r->pend = x;
    r->npend++;
}

static inline void pend_del(range_t *r, uint32_t x)
{
    rnode_t *N = r->nodes;
    uint32_t p = N[x].left & ~TR_PEND;
    uint32_t nx = N[x].right;
    if (p != 0) {
        N[p].right = nx;
    } else {
        r->pend = nx;
    }
    if (nx != 0) {
        N[nx].left = TR_PEND | p;
    }
    r->npend--;
}

/* Insert every pending range into the treap. */
static void tr_flush(range_t *r)
{
    uint32_t x = r->pend;
    while (x != 0) {
        uint32_t nx = r->nodes[x].right;
        tr_insert(r, x); /* overwrites left and right */
        x = nx;
    }
    r->pend = 0;
    r->npend = 0;
}

/* ---- free ranges ------------------------------------------------------------------ */

/* A node for the free range [start, start + len), in its class and pending; no hash keys. */
static inline __attribute__((always_inline)) uint32_t node_new(range_t *r, uint64_t start,
                                                               uint64_t len)
{
    uint32_t x = r->freelist;
    if (x != 0) {
        r->freelist = r->nodes[x].prev;
    } else {
        CAPMEM_ASSERT(r->hw + 1 < r->ncap, "free ranges are separated by used granules");
        x = ++r->hw;
    }
    r->nodes[x] = (rnode_t){.start = (uint32_t)start, .len = (uint32_t)len};
    class_insert(r, x);
    pend_add(r, x);
    r->nfree++;
    return x;
}

/* A new free range with its boundary keys. */
static uint32_t fr_new(range_t *r, uint64_t start, uint64_t len)
{
    uint32_t x = node_new(r, start, len);
    ht_put(r, start, x);
    if (len > 1) {
        ht_put(r, start + len - 1, x);
    }
    return x;
}

/* Give node x the length len, moving it to its new class if that changes. */
static inline __attribute__((always_inline)) void node_resize(range_t *r, uint32_t x,
                                                              uint64_t start, uint64_t len)
{
    rnode_t *n = &r->nodes[x];
    unsigned oc = class_of(n->len);
    unsigned nc = class_of(len);
    if (oc != nc) {
        class_remove_c(r, x, oc);
        n->start = (uint32_t)start;
        n->len = (uint32_t)len;
        class_insert_c(r, x, nc);
    } else {
        n->start = (uint32_t)start;
        n->len = (uint32_t)len;
    }
}

/* Unlink node x from the class lists and the treap, and free it; its keys are the caller's. */
static inline __attribute__((always_inline)) void node_drop(range_t *r, uint32_t x)
{
    class_remove(r, x);
    if (tr_pending(r, x)) {
        pend_del(r, x);
    } else {
        tr_delete(r, x);
    }
    r->nodes[x].len = 0;
    r->nodes[x].prev = r->freelist;
    r->freelist = x;
    r->nfree--;
}

/*
 * Allocate [pos, pos + len) out of free range x, which holds it. The
 * pieces left on either side stay free; they cannot have free neighbours
 * (the range had none), so the ranges stay coalesced. Cannot fail.
 *
 * The common case takes the front of the range: the range's start key
 * becomes the used block's key in place (one slot written, no hash
 * insertion or deletion), and the range keeps its node and its place in
 * the treap.
 */
static inline __attribute__((always_inline)) void rg_carve(range_t *r, uint32_t x, uint64_t pos,
                                                           uint64_t len)
{
    ht_reserve(r, 3);
    uint64_t s = r->nodes[x].start;
    uint64_t l = r->nodes[x].len;
    uint64_t e = s + l;
    uint64_t end = pos + len;
    if (pos == s) {
        rslot_t *k = ht_find(r, s);
        k->val = (uint32_t)len | RH_USED;
        if (end == e) {
            node_drop(r, x);
            if (l > 1) {
                ht_del(r, e - 1);
            }
        } else {
            node_resize(r, x, end, e - end);
            if (end != e - 1) {
                ht_put(r, end, x); /* the new start; the end key stays */
            }
        }
    } else {
        /*
         * The block starts inside the range: x keeps the head [s, pos) (its
         * start, so its place in address order); its old end key e - 1 is
         * handed on in place, to the tail's node or, for a one-granule block
         * at the very end, to the block, so no key is removed but there.
         */
        node_resize(r, x, s, pos - s);
        if (end < e) {
            uint32_t y = node_new(r, end, e - end);
            ht_find(r, e - 1)->val = y;
            if (end != e - 1) {
                ht_put(r, end, y);
            }
            ht_put(r, pos, (uint32_t)len | RH_USED);
        } else if (len == 1) {
            ht_find(r, e - 1)->val = (uint32_t)len | RH_USED; /* pos == e - 1 */
        } else {
            ht_del(r, e - 1);
            ht_put(r, pos, (uint32_t)len | RH_USED);
        }
        if (pos - 1 != s) {
            ht_put(r, pos - 1, x); /* the head's new end */
        }
    }
    r->nused++;
    r->free_granules -= len;
    ht_trim(r);
}

/* ---- creation ------------------------------------------------------------------ */

static void rg_reset(void *self)
{
    range_t *r = self;
    memset(r->ht, 0, r->cap * sizeof(rslot_t));
    r->cap = HT_MIN;
    r->shift = 64 - 6;
    ht_limits(r);
    r->cur = 0;
    r->ht = r->region[0];
    memset(r->ht, 0, r->cap * sizeof(rslot_t));
    r->count = 0;
    r->fl_map = 0;
    memset(r->sl_map, 0, sizeof(r->sl_map));
    memset(r->head, 0, sizeof(r->head));
    r->hw = 0;
    r->freelist = 0;
    r->root = 0;
    r->pend = 0;
    r->npend = 0;
    r->hint = 0;
    r->nfree = 0;
    r->nused = 0;
    fr_new(r, 0, r->n);
    r->free_granules = r->n;
}

static size_t round64(size_t x)
{
    return (x + 63) & ~(size_t)63;
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
    r->base_g = base >> gshift;
    /* Free ranges are separated by used granules: at most (n + 1) / 2 of them. */
    r->ncap = (uint32_t)((n + 1) / 2 + 2);
    /* At most one key per granule, at most half full: a power of two >= 2n. */
    r->cap_max = HT_MIN;
    while (r->cap_max < 2 * n + 8) {
        r->cap_max *= 2;
    }
    size_t nodes_len = round64((size_t)r->ncap * sizeof(rnode_t));
    size_t region_len = round64((size_t)r->cap_max * sizeof(rslot_t));
    r->map_len = nodes_len + 2 * region_len;
    r->map = capmem__map_lazy(r->map_len);
    if (r->map == NULL) {
        size_t want = r->map_len;
        capmem__free(r);
        return capmem__fail(CAPMEM_E_HOST_NOMEM, __func__, "range: cannot map %zu bytes", want);
    }
    char *p = r->map;
    r->nodes = (rnode_t *)(void *)p;
    r->region[0] = (rslot_t *)(void *)(p + nodes_len);
    r->region[1] = (rslot_t *)(void *)(p + nodes_len + region_len);
    r->ht = r->region[0];
    r->cap = HT_MIN;
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

/* The longest free range: the longest in the highest non-empty class. */
static uint64_t rg_largest(const void *self)
{
    const range_t *r = self;
    if (r->fl_map == 0) {
        return 0;
    }
    unsigned fl = capmem__log2(r->fl_map);
    unsigned c = (fl << SL_LOG2) | capmem__log2(r->sl_map[fl]);
    uint64_t best = 0;
    for (uint32_t x = r->head[c]; x != 0; x = r->nodes[x].next) {
        best = r->nodes[x].len > best ? r->nodes[x].len : best;
    }
    return best << r->gshift;
}

static uint64_t rg_avail(const void *self)
{
    const range_t *r = self;
    return r->free_granules << r->gshift;
}

/* Where an aligned block of len granules starts inside free range x, if it fits. */
static inline bool rg_fits(const range_t *r, uint32_t x, uint64_t len, uint64_t galign,
                           uint64_t *pos)
{
    uint64_t s = r->nodes[x].start;
    uint64_t l = r->nodes[x].len;
    if (galign == 1) {
        *pos = s;
        return len <= l;
    }
    uint64_t abs = r->base_g + s;
    uint64_t al;
    if (!capmem__align_up_ok(abs, galign, &al)) {
        return false;
    }
    uint64_t p = al - r->base_g;
    if (p - s >= l || len > l - (p - s)) {
        return false;
    }
    *pos = p;
    return true;
}

/*
 * The exact fallback of rg_alloc: every range of the classes below top
 * that may hold the aligned block (out of line: the common path keeps
 * fewer registers).
 */
static __attribute__((noinline, cold)) bool rg_alloc_scan(range_t *r, uint64_t len, uint64_t galign,
                                                          unsigned top, uint64_t *offset)
{
    uint64_t pos = 0;
    for (unsigned c = class_find(r, class_of(len)); c < top; c = class_find(r, c + 1)) {
        for (uint32_t x = r->head[c]; x != 0; x = r->nodes[x].next) {
            if (rg_fits(r, x, len, galign, &pos)) {
                rg_carve(r, x, pos, len);
                *offset = r->base + (pos << r->gshift);
                return true;
            }
        }
    }
    return false;
}

static capmem_err_t rg_alloc(void *self, uint64_t size, uint64_t align, uint64_t *offset)
{
    range_t *r = self;
    uint64_t g = 1ull << r->gshift;
    uint64_t pos = 0;
    if (size <= r->size) {
        uint64_t len = (size + g - 1) >> r->gshift; /* size <= r->size: no overflow */
        uint64_t galign = align <= g ? 1 : align >> r->gshift;
        uint64_t sure = len + galign - 1; /* a range this long holds the block anywhere */
        unsigned top = sure <= RANGE_MAX_GRANULES ? class_up(sure) : NCLASS;
        unsigned c = class_find(r, top);
        if (c < NCLASS) {
            uint32_t x = r->head[c];
            bool ok = rg_fits(r, x, len, galign, &pos);
            CAPMEM_ASSERT(ok, "every range of a class at or above the sure one fits");
            (void)ok;
            rg_carve(r, x, pos, len);
            *offset = r->base + (pos << r->gshift);
            return CAPMEM_OK;
        }
        if (rg_alloc_scan(r, len, galign, top, offset)) {
            return CAPMEM_OK;
        }
    }
    return capmem__fail_space(CAPMEM_E_NOT_ENOUGH_MEMORY, __func__, size, rg_largest(r),
                              "range: insufficient memory (%llu bytes needed at alignment %llu, "
                              "largest free range %llu bytes)",
                              (unsigned long long)size, (unsigned long long)align,
                              (unsigned long long)rg_largest(r));
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

/* Is the slot a free range's boundary (not a used block)? Its node then. */
static inline uint32_t slot_free_node(const rslot_t *s)
{
    return s != NULL && (s->val & RH_USED) == 0 ? s->val : 0;
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
    /*
     * The free range the last free made or grew holds the block when a
     * caller frees and takes back the same place (the hint may be stale: a
     * dead node has length 0, and any live node that holds the block is
     * the one free range that does). A block at a free range's start or end
     * needs no tree walk either: the hash has the range's boundary keys.
     * Only a block strictly inside another free range walks the treap.
     */
    uint32_t x = r->hint;
    const rnode_t *h = &r->nodes[x];
    if (x != 0 && h->start <= g0 && (uint64_t)h->start + h->len >= g0 + len) {
        rg_carve(r, x, g0, len);
        return CAPMEM_OK;
    }
    x = slot_free_node(ht_find(r, g0));
    if (x == 0 || r->nodes[x].start != g0) {
        x = slot_free_node(ht_find(r, g0 + len - 1));
        if (x == 0 || r->nodes[x].start > g0 ||
            (uint64_t)r->nodes[x].start + r->nodes[x].len != g0 + len) {
            tr_flush(r);
            x = tr_floor(r->nodes, r->root, g0);
        }
    }
    if (x == 0 || (uint64_t)r->nodes[x].start + r->nodes[x].len < g0 + len) {
        capmem__fail_space(CAPMEM_E_NOT_ENOUGH_MEMORY, __func__, size, rg_largest(r),
                           "range: [0x%llx, +0x%llx) overlaps an allocated block",
                           (unsigned long long)offset, (unsigned long long)size);
        capmem__detail()->address = offset;
        capmem__detail()->size = size;
        return CAPMEM_E_NOT_ENOUGH_MEMORY;
    }
    rg_carve(r, x, g0, len);
    return CAPMEM_OK;
}

/* rg_free's refusal; s is the slot found at g0 (out of line: the common
 * path saves fewer registers). */
static __attribute__((noinline, cold)) capmem_err_t
rg_free_refused(const range_t *r, const rslot_t *s, uint64_t g0, uint64_t offset, uint64_t size)
{
    uint32_t fx = slot_free_node(s);
    capmem__fail(CAPMEM_E_NOT_ALLOCATED, "rg_free",
                 "range: [0x%llx, +0x%llx) is not an allocated block (%s)",
                 (unsigned long long)offset, (unsigned long long)size,
                 s == NULL || (fx != 0 && r->nodes[fx].start != g0) ? "no block starts there"
                 : fx != 0                                          ? "it is free: double free?"
                           : "the block there has another size");
    capmem__detail()->address = offset;
    capmem__detail()->size = size;
    return CAPMEM_E_NOT_ALLOCATED;
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
    rslot_t *s = ht_find(r, g0);
    if (s == NULL || s->val != ((uint32_t)len | RH_USED)) {
        return rg_free_refused(r, s, g0, offset, size);
    }
    if (ht_reserve(r, 2)) {
        s = ht_find(r, g0); /* the rehash moved the slots */
    }
    r->nused--;
    r->free_granules += len;
    uint64_t end = g0 + len;
    rslot_t *lslot = g0 > 0 ? ht_find(r, g0 - 1) : NULL;
    rslot_t *rslot = end < r->n ? ht_find(r, end) : NULL;
    uint32_t lx = slot_free_node(lslot);
    uint32_t rx = slot_free_node(rslot);
    /*
     * The block's own key (g0) is reused in place where the merged range
     * starts or ends there; slots are written before any key is removed,
     * and a slot found before a removal is checked again after it (a
     * removal moves slots back: ht_still).
     */
    if (lx == 0 && rx == 0) {
        uint32_t x = r->freelist;
        if (x != 0) {
            r->freelist = r->nodes[x].prev;
        } else {
            CAPMEM_ASSERT(r->hw + 1 < r->ncap, "free ranges are separated by used granules");
            x = ++r->hw;
        }
        r->nodes[x] = (rnode_t){.start = (uint32_t)g0, .len = (uint32_t)len};
        class_insert(r, x);
        pend_add(r, x);
        r->nfree++;
        s->val = x;
        r->hint = x;
        if (len > 1) {
            ht_put(r, end - 1, x);
        }
    } else if (lx == 0) {
        uint64_t rl = r->nodes[rx].len;
        s->val = rx; /* the merged range's start */
        r->hint = rx;
        node_resize(r, rx, g0, len + rl);
        if (rl > 1) {
            ht_remove(r, rslot); /* rx's old start; its end key stays */
        }
    } else {
        uint64_t ls = r->nodes[lx].start;
        uint64_t ll = r->nodes[lx].len;
        uint64_t re = end;
        if (rx != 0) {
            uint64_t rl = r->nodes[rx].len;
            re = end + rl;
            (rl > 1 ? ht_find(r, re - 1) : rslot)->val = lx; /* the merged range's end */
            node_drop(r, rx);
            ht_remove(r, s); /* the first removal: s still points at g0 */
            if (rl > 1) {
                ht_remove(r, ht_still(r, rslot, end));
            }
        } else if (len == 1) {
            s->val = lx; /* the block's key is the merged range's end */
        } else {
            ht_put(r, end - 1, lx); /* a put moves no slot: s stays */
            ht_remove(r, s);
        }
        if (ll > 1) {
            ht_remove(r, ht_still(r, lslot, g0 - 1)); /* lx's old end */
        }
        node_resize(r, lx, ls, re - ls);
        r->hint = lx;
    }
    ht_trim(r);
    return CAPMEM_OK;
}

/* ---- walk and check ---------------------------------------------------------- */

/*
 * The span's blocks in address order come from the hash alone: the key at
 * granule g is either a used block (its length) or a free range starting
 * at g (its node), and the next block starts right after it. O(blocks),
 * no treap needed (pending ranges are not in it), nothing changed.
 */
typedef struct span_step {
    uint64_t len;  /* granules; 0 if the tiling is broken at g */
    uint32_t node; /* the free range's node, 0 for a used block */
} span_step_t;

static span_step_t span_at(const range_t *r, uint64_t g)
{
    span_step_t st = {0, 0};
    const rslot_t *s = ht_find(r, g);
    if (s == NULL) {
        return st;
    }
    uint64_t len;
    if ((s->val & RH_USED) != 0) {
        len = s->val & ~RH_USED;
    } else {
        uint32_t x = s->val;
        if (x == 0 || x > r->hw || r->nodes[x].start != g) {
            return st; /* an end key, or a stray one: not a block start */
        }
        len = r->nodes[x].len;
        st.node = x;
    }
    if (len == 0 || len > r->n - g) {
        return st;
    }
    st.len = len;
    return st;
}

static void span_walk(const range_t *r, capmem_alloc_walk_fn fn, void *ctx, bool used_too)
{
    for (uint64_t g = 0; g < r->n;) {
        span_step_t st = span_at(r, g);
        if (st.len == 0) {
            return; /* broken tiling: rg_check reports it */
        }
        if ((used_too || st.node != 0) &&
            fn(r->base + (g << r->gshift), st.len << r->gshift,
               st.node != 0 ? CAPMEM_BLOCK_FREE : CAPMEM_BLOCK_USED, ctx) != 0) {
            return;
        }
        g += st.len;
    }
}

static capmem_err_t rg_walk(const void *self, capmem_alloc_walk_fn fn, void *ctx)
{
    span_walk(self, fn, ctx, true);
    return CAPMEM_OK;
}

capmem_err_t capmem__range_free_ranges(const void *self, capmem_alloc_walk_fn fn, void *ctx)
{
    span_walk(self, fn, ctx, false);
    return CAPMEM_OK;
}

/*
 * The treap in address order (in-order walk with an explicit stack), for
 * the checker: its depth is O(log F) expected; a deeper one is reported.
 */
#define WALK_DEPTH 256

typedef struct tree_ctx {
    const char *problem;
    uint32_t where;
    uint64_t count;
    uint64_t last; /* start of the previous node + 1, 0 before the first */
} tree_ctx_t;

static bool tree_check(const range_t *r, tree_ctx_t *c)
{
    uint32_t stack[WALK_DEPTH];
    unsigned sp = 0;
    uint32_t t = r->root;
    while (t != 0 || sp > 0) {
        while (t != 0) {
            if (sp == WALK_DEPTH || t > r->hw) {
                return false;
            }
            stack[sp++] = t;
            t = r->nodes[t].left;
        }
        t = stack[--sp];
        const rnode_t *n = &r->nodes[t];
        c->where = t;
        if (n->len == 0 || (n->left & TR_PEND) != 0) {
            c->problem = "treap holds a dead or pending node";
            return true;
        }
        if ((uint64_t)n->start + 1 <= c->last) {
            c->problem = "treap out of address order";
            return true;
        }
        if (slot_free_node(ht_find(r, n->start)) != t) {
            c->problem = "a treap node is not the free range at its start";
            return true;
        }
        if (++c->count > r->nfree) {
            c->problem = "treap holds more nodes than there are free ranges";
            return true;
        }
        c->last = (uint64_t)n->start + 1;
        t = n->right;
    }
    return true;
}

/* Heap order of priorities and the treap's depth. */
static bool tr_heap_ok(const range_t *r, uint32_t t, unsigned depth)
{
    if (t == 0) {
        return true;
    }
    if (depth > WALK_DEPTH || t > r->hw) {
        return false;
    }
    uint32_t l = r->nodes[t].left;
    uint32_t rr = r->nodes[t].right;
    if ((l & TR_PEND) != 0 || (rr & TR_PEND) != 0) {
        return false;
    }
    if ((l != 0 && prio(l) > prio(t)) || (rr != 0 && prio(rr) > prio(t))) {
        return false;
    }
    return tr_heap_ok(r, l, depth + 1) && tr_heap_ok(r, rr, depth + 1);
}

static bool in_class_list(const range_t *r, uint32_t x)
{
    uint32_t y = r->head[class_of(r->nodes[x].len)];
    for (uint64_t i = 0; y != 0 && y != x && i <= r->nfree; i++) {
        y = r->nodes[y].next;
    }
    return y == x;
}

static capmem_err_t rg_check(const void *self, char *why, size_t len)
{
    const range_t *r = self;
    if (!tr_heap_ok(r, r->root, 0)) {
        return capmem__alloc_broken(
            why, len, "treap priorities out of heap order, or deeper than %d", WALK_DEPTH);
    }
    /* The span: used blocks and free ranges tile it, free ranges never adjacent. */
    uint64_t nfree = 0;
    uint64_t nused = 0;
    uint64_t fg = 0;
    bool prev_free = false;
    for (uint64_t g = 0; g < r->n;) {
        span_step_t st = span_at(r, g);
        if (st.len == 0) {
            return capmem__alloc_broken(why, len, "blocks do not tile the span at granule %llu",
                                        (unsigned long long)g);
        }
        if (st.node != 0) {
            uint32_t x = st.node;
            const char *problem = NULL;
            if (prev_free) {
                problem = "free ranges not coalesced";
            } else if (slot_free_node(ht_find(r, g + st.len - 1)) != x) {
                problem = "a free range's boundary keys are missing from the table";
            } else if (!in_class_list(r, x)) {
                problem = "a free range is not in its class list";
            }
            if (problem != NULL) {
                return capmem__alloc_broken(why, len, "%s (granule %llu)", problem,
                                            (unsigned long long)g);
            }
            nfree++;
            fg += st.len;
        } else {
            nused++;
        }
        prev_free = st.node != 0;
        g += st.len;
    }
    if (nfree != r->nfree || nused != r->nused || fg != r->free_granules) {
        return capmem__alloc_broken(why, len,
                                    "counters (free ranges %llu, used %llu, free granules %llu) "
                                    "differ from the blocks (%llu, %llu, %llu)",
                                    (unsigned long long)r->nfree, (unsigned long long)r->nused,
                                    (unsigned long long)r->free_granules, (unsigned long long)nfree,
                                    (unsigned long long)nused, (unsigned long long)fg);
    }
    /* Every free range is in the treap or pending, once. */
    tree_ctx_t tc = {0};
    if (!tree_check(r, &tc)) {
        return capmem__alloc_broken(why, len, "treap deeper than %d or holds node %u beyond %u",
                                    WALK_DEPTH, tc.where, r->hw);
    }
    if (tc.problem != NULL) {
        return capmem__alloc_broken(why, len, "%s (node %u)", tc.problem, tc.where);
    }
    uint64_t npend = 0;
    uint32_t prevp = 0;
    for (uint32_t x = r->pend; x != 0; x = r->nodes[x].right) {
        if (x > r->hw || r->nodes[x].len == 0 || r->nodes[x].left != (TR_PEND | prevp) ||
            slot_free_node(ht_find(r, r->nodes[x].start)) != x || ++npend > r->nfree) {
            return capmem__alloc_broken(why, len, "pending list is corrupt at node %u", x);
        }
        prevp = x;
    }
    if (npend != r->npend || tc.count + npend != r->nfree) {
        return capmem__alloc_broken(why, len,
                                    "%llu ranges in the treap and %llu pending (count %llu) for "
                                    "%llu free ranges",
                                    (unsigned long long)tc.count, (unsigned long long)npend,
                                    (unsigned long long)r->npend, (unsigned long long)r->nfree);
    }
    /* Every key found above is in the table, so an equal count means no stray key. */
    uint64_t keys = 0;
    uint64_t nkeys = r->nused;
    for (uint64_t i = 0; i < r->cap; i++) {
        keys += r->ht[i].key != 0;
    }
    (void)nkeys;
    uint64_t want = r->nused;
    uint64_t listed = 0;
    for (unsigned cl = 0; cl < NCLASS; cl++) {
        bool bit = (r->sl_map[cl >> SL_LOG2] >> (cl & (SL_COUNT - 1))) & 1u;
        if (bit != (r->head[cl] != 0)) {
            return capmem__alloc_broken(why, len, "class bitmap disagrees at class %u", cl);
        }
        uint32_t prev = 0;
        for (uint32_t x = r->head[cl]; x != 0; x = r->nodes[x].next) {
            if (x > r->hw || r->nodes[x].len == 0 || class_of(r->nodes[x].len) != cl ||
                r->nodes[x].prev != prev || ++listed > r->nfree) {
                return capmem__alloc_broken(why, len, "class list %u is corrupt at node %u", cl, x);
            }
            want += r->nodes[x].len > 1 ? 2 : 1;
            prev = x;
        }
    }
    for (unsigned fl = 0; fl < FL_COUNT; fl++) {
        if (((r->fl_map >> fl) & 1u) != (r->sl_map[fl] != 0)) {
            return capmem__alloc_broken(why, len, "first-level bitmap disagrees at %u", fl);
        }
    }
    if (listed != r->nfree) {
        return capmem__alloc_broken(why, len, "class lists hold %llu ranges, %llu are free",
                                    (unsigned long long)listed, (unsigned long long)r->nfree);
    }
    if (keys != want || keys != r->count || r->count * 2 > r->cap + 6 ||
        (r->count * 5 < r->cap && r->cap > HT_MIN && r->nused > 0)) {
        return capmem__alloc_broken(why, len,
                                    "hash table has %llu keys (count %llu, %llu expected) in %llu "
                                    "slots",
                                    (unsigned long long)keys, (unsigned long long)r->count,
                                    (unsigned long long)want, (unsigned long long)r->cap);
    }
    uint64_t dead = 0;
    for (uint32_t x = r->freelist; x != 0; x = r->nodes[x].prev) {
        if (x > r->hw || r->nodes[x].len != 0 || ++dead > r->hw) {
            return capmem__alloc_broken(why, len, "node free list is corrupt at node %u", x);
        }
    }
    if (r->hw - dead != r->nfree) {
        return capmem__alloc_broken(why, len, "%llu live nodes for %llu free ranges",
                                    (unsigned long long)(r->hw - dead),
                                    (unsigned long long)r->nfree);
    }
    return CAPMEM_OK;
}

uint64_t capmem__range_metadata(const void *self)
{
    const range_t *r = self;
    /* Nodes up to the high-water mark and the live hash table. */
    return (uint64_t)r->hw * sizeof(rnode_t) + r->cap * sizeof(rslot_t);
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
