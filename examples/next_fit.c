/* SPDX-License-Identifier: MIT */
/*
 * Next fit: a placement policy written only against the installed headers,
 * the one docs/alloc.md builds step by step ("test your own policy").
 *
 * Like first fit, it takes the first gap big enough, but it starts looking
 * where the last search stopped (the rover) instead of at the bottom, and
 * wraps around once. Blocks are kept in an array sorted by offset; sizes are
 * rounded up to the granule the caller made the instance with, and every
 * block starts on a granule. O(log n) to find a block, O(n) to insert,
 * remove or search: plain and readable, not fast.
 *
 * It exports `next_fit_ops` (a capmem_alloc_ops_t with a create hook), so
 * the RAM service, region maps, the conformance suite and capmem-replay can
 * all make instances of it:
 *
 *   capmem-replay --policy ./libnext_fit.so:next_fit_ops trace.txt
 */
#include <stdlib.h>
#include <string.h>

#include <capmem.h>

#if defined(__GNUC__)
#define NF_EXPORT __attribute__((visibility("default")))
#else
#define NF_EXPORT
#endif

typedef struct nf {
    uint64_t base;
    uint64_t size;
    uint64_t granule;
    size_t n;   /* live blocks, sorted by offset */
    size_t cap; /* entries in off[] and len[] */
    uint64_t *off;
    uint64_t *len; /* rounded up to the granule */
    size_t rover;  /* the gap to look at first: the one before block rover */
    uint64_t used; /* sum of len[] */
} nf_t;

static uint64_t round_up(uint64_t v, uint64_t a)
{
    return (v + a - 1) & ~(a - 1);
}

/* Start and end of gap i: the free bytes before block i (i == n: after the last). */
static uint64_t gap_start(const nf_t *f, size_t i)
{
    return i == 0 ? f->base : f->off[i - 1] + f->len[i - 1];
}

static uint64_t gap_end(const nf_t *f, size_t i)
{
    return i == f->n ? f->base + f->size : f->off[i];
}

/* The first block whose offset is >= off (binary search). */
static size_t lower_bound(const nf_t *f, uint64_t off)
{
    size_t lo = 0;
    size_t hi = f->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (f->off[mid] < off) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo;
}

static capmem_err_t insert(nf_t *f, size_t i, uint64_t off, uint64_t len)
{
    if (f->n == f->cap) {
        size_t cap = f->cap == 0 ? 16 : f->cap * 2;
        uint64_t *o = realloc(f->off, cap * sizeof(*o));
        if (o == NULL) {
            return CAPMEM_E_HOST_NOMEM;
        }
        f->off = o;
        uint64_t *l = realloc(f->len, cap * sizeof(*l));
        if (l == NULL) {
            return CAPMEM_E_HOST_NOMEM;
        }
        f->len = l;
        f->cap = cap;
    }
    memmove(&f->off[i + 1], &f->off[i], (f->n - i) * sizeof(uint64_t));
    memmove(&f->len[i + 1], &f->len[i], (f->n - i) * sizeof(uint64_t));
    f->off[i] = off;
    f->len[i] = len;
    f->n++;
    f->used += len;
    return CAPMEM_OK;
}

static capmem_err_t nf_alloc(void *self, uint64_t size, uint64_t align, uint64_t *offset)
{
    nf_t *f = self;
    if (size > f->size) {
        return CAPMEM_E_NOT_ENOUGH_MEMORY;
    }
    const uint64_t len = round_up(size, f->granule);
    const uint64_t a = align > f->granule ? align : f->granule;
    /* Gaps rover, rover + 1, ..., n, then 0, ..., rover - 1: each once. */
    for (size_t k = 0; k <= f->n; k++) {
        size_t i = (f->rover + k) % (f->n + 1);
        uint64_t start = gap_start(f, i);
        uint64_t end = gap_end(f, i);
        uint64_t at = round_up(start, a);
        if (at >= start && at < end && end - at >= len) {
            capmem_err_t err = insert(f, i, at, len);
            if (err != CAPMEM_OK) {
                return err;
            }
            f->rover = i + 1; /* the gap right after the new block */
            *offset = at;
            return CAPMEM_OK;
        }
    }
    return CAPMEM_E_NOT_ENOUGH_MEMORY;
}

static capmem_err_t nf_alloc_at(void *self, uint64_t offset, uint64_t size)
{
    nf_t *f = self;
    const uint64_t len = round_up(size, f->granule);
    if (offset % f->granule != 0 || len > f->base + f->size - offset) {
        return CAPMEM_E_INVALID_ARGS;
    }
    size_t i = lower_bound(f, offset);
    if (gap_start(f, i) > offset || gap_end(f, i) - offset < len) {
        return CAPMEM_E_NOT_ENOUGH_MEMORY; /* overlaps a block */
    }
    capmem_err_t err = insert(f, i, offset, len);
    if (err == CAPMEM_OK && f->rover > i) {
        f->rover++;
    }
    return err;
}

static capmem_err_t nf_free(void *self, uint64_t offset, uint64_t size)
{
    nf_t *f = self;
    size_t i = lower_bound(f, offset);
    if (i == f->n || f->off[i] != offset || f->len[i] != round_up(size, f->granule)) {
        return CAPMEM_E_NOT_ALLOCATED;
    }
    f->used -= f->len[i];
    memmove(&f->off[i], &f->off[i + 1], (f->n - i - 1) * sizeof(uint64_t));
    memmove(&f->len[i], &f->len[i + 1], (f->n - i - 1) * sizeof(uint64_t));
    f->n--;
    if (f->rover > i) {
        f->rover--;
    }
    return CAPMEM_OK;
}

static uint64_t nf_avail(const void *self)
{
    const nf_t *f = self;
    return f->size - f->used;
}

static uint64_t nf_largest(const void *self)
{
    const nf_t *f = self;
    uint64_t best = 0;
    for (size_t i = 0; i <= f->n; i++) {
        uint64_t g = gap_end(f, i) - gap_start(f, i);
        best = g > best ? g : best;
    }
    return best;
}

static void nf_reset(void *self)
{
    nf_t *f = self;
    f->n = 0;
    f->rover = 0;
    f->used = 0;
}

static void nf_destroy(void *self)
{
    nf_t *f = self;
    free(f->off);
    free(f->len);
    free(f);
}

static capmem_err_t nf_check(const void *self, char *why, size_t len)
{
    const nf_t *f = self;
    uint64_t used = 0;
    for (size_t i = 0; i < f->n; i++) {
        if (f->off[i] < gap_start(f, i) || f->len[i] == 0 || f->off[i] % f->granule != 0 ||
            f->len[i] > f->base + f->size - f->off[i]) {
            if (why != NULL && len > 0) {
                strncpy(why, "next-fit: blocks out of order, overlapping or outside the span",
                        len - 1);
                why[len - 1] = '\0';
            }
            return CAPMEM_E_CORRUPT;
        }
        used += f->len[i];
    }
    if (used != f->used || f->rover > f->n) {
        if (why != NULL && len > 0) {
            strncpy(why, "next-fit: used bytes or rover wrong", len - 1);
            why[len - 1] = '\0';
        }
        return CAPMEM_E_CORRUPT;
    }
    return CAPMEM_OK;
}

static capmem_err_t nf_walk(const void *self, capmem_alloc_walk_fn fn, void *ctx)
{
    const nf_t *f = self;
    for (size_t i = 0; i <= f->n; i++) {
        uint64_t s = gap_start(f, i);
        uint64_t e = gap_end(f, i);
        if (e > s && fn(s, e - s, CAPMEM_BLOCK_FREE, ctx) != 0) {
            return CAPMEM_OK;
        }
        if (i < f->n && fn(f->off[i], f->len[i], CAPMEM_BLOCK_USED, ctx) != 0) {
            return CAPMEM_OK;
        }
    }
    return CAPMEM_OK;
}

static capmem_err_t nf_create(void *ctx, uint64_t base, uint64_t size, uint64_t granule,
                              void **self)
{
    (void)ctx;
    nf_t *f = calloc(1, sizeof(*f));
    if (f == NULL) {
        return CAPMEM_E_HOST_NOMEM;
    }
    f->base = base;
    f->size = size;
    f->granule = granule;
    *self = f;
    return CAPMEM_OK;
}

NF_EXPORT const capmem_alloc_ops_t next_fit_ops = {
    .name = "next-fit",
    .alloc = nf_alloc,
    .alloc_at = nf_alloc_at,
    .free = nf_free,
    .avail = nf_avail,
    .largest = nf_largest,
    .reset = nf_reset,
    .destroy = nf_destroy,
    .check = nf_check,
    .walk = nf_walk,
    .create = nf_create,
};
