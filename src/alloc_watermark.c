/* SPDX-License-Identifier: MIT */
/*
 * Watermark policy: seL4's FreeIndex.
 *
 * One index moves only upwards: an allocation aligns it up to the requested
 * alignment (the gap below is lost) and bumps it past the block. Freeing a
 * block never lowers the index, so its space is not reused until reset. This
 * is what makes seL4's retype cheap and predictable, and why fragmentation
 * in an untyped region is permanent until the region is childless.
 *
 * The policy still knows which blocks are live, so that it can refuse double
 * and foreign frees. Because blocks are handed out at increasing offsets,
 * appending to a plain array keeps it sorted by offset for free: lookup is a
 * binary search (O(log n)). A freed entry becomes a tombstone (size 0) and
 * the array is compacted when tombstones outnumber live entries, so it stays
 * within twice the live count (16 bytes per entry).
 */
#include <string.h>

#include "alloc_internal.h"

typedef struct wm_block {
    uint64_t offset; /* absolute */
    uint64_t size;   /* 0: tombstone of a freed block */
} wm_block_t;

/*
 * Invariants (checked by wm_check):
 * - index <= size;
 * - blocks[0..count) sorted by offset, strictly increasing; every live
 *   entry lies in [base, base + index) and does not reach into the next one;
 * - live == number of entries with size != 0; count <= cap.
 */
typedef struct wm {
    uint64_t base;
    uint64_t size;
    uint64_t index; /* relative free index: [base + index, base + size) is free */
    wm_block_t *blocks;
    size_t count;
    size_t cap;
    size_t live;
} wm_t;

#define WM_INITIAL_CAP 16

capmem_err_t capmem__watermark_new(uint64_t base, uint64_t size, void **self)
{
    wm_t *w = capmem__calloc(1, sizeof(*w));
    if (w == NULL) {
        return capmem__fail(CAPMEM_E_HOST_NOMEM, __func__, "no host memory for the watermark");
    }
    w->blocks = capmem__malloc(WM_INITIAL_CAP * sizeof(wm_block_t));
    if (w->blocks == NULL) {
        capmem__free(w);
        return capmem__fail(CAPMEM_E_HOST_NOMEM, __func__,
                            "no host memory for the live-block table");
    }
    w->base = base;
    w->size = size;
    w->cap = WM_INITIAL_CAP;
    *self = w;
    return CAPMEM_OK;
}

/* Drop tombstones; keeps the order. */
static void wm_compact(wm_t *w)
{
    size_t j = 0;
    for (size_t i = 0; i < w->count; i++) {
        if (w->blocks[i].size != 0) {
            w->blocks[j++] = w->blocks[i];
        }
    }
    w->count = j;
}

/*
 * Make room for one more entry. This is the only step that can fail, so it
 * runs before anything changes; a compaction alone does not change what the
 * allocator reports.
 */
static capmem_err_t wm_reserve(wm_t *w, const char *fn)
{
    if (w->count < w->cap) {
        return CAPMEM_OK;
    }
    if (w->live <= w->count / 2) {
        wm_compact(w);
        return CAPMEM_OK;
    }
    size_t ncap = w->cap * 2;
    if (ncap < w->cap || ncap > SIZE_MAX / sizeof(wm_block_t)) {
        return capmem__fail(CAPMEM_E_HOST_NOMEM, fn, "live-block table cannot grow further");
    }
    wm_block_t *nb = capmem__malloc(ncap * sizeof(wm_block_t));
    if (nb == NULL) {
        return capmem__fail(CAPMEM_E_HOST_NOMEM, fn,
                            "no host memory to grow the live-block table to %zu entries", ncap);
    }
    memcpy(nb, w->blocks, w->count * sizeof(wm_block_t));
    capmem__free(w->blocks);
    w->blocks = nb;
    w->cap = ncap;
    return CAPMEM_OK;
}

static void wm_push(wm_t *w, uint64_t offset, uint64_t size, uint64_t new_index)
{
    w->blocks[w->count].offset = offset;
    w->blocks[w->count].size = size;
    w->count++;
    w->live++;
    w->index = new_index;
}

static capmem_err_t wm_alloc(void *self, uint64_t size, uint64_t align, uint64_t *offset)
{
    wm_t *w = self;
    uint64_t cur = w->base + w->index;
    uint64_t end = w->base + w->size;
    uint64_t at = 0;
    /* Space available at this alignment: what is left above the aligned index. */
    uint64_t avail = 0;
    if (capmem__align_up_ok(cur, align, &at) && at <= end) {
        avail = end - at;
    }
    if (size > avail) {
        return capmem__fail_space(CAPMEM_E_NOT_ENOUGH_MEMORY, __func__, size, avail,
                                  "watermark: insufficient memory (%llu bytes needed, %llu bytes "
                                  "available at alignment %llu)",
                                  (unsigned long long)size, (unsigned long long)avail,
                                  (unsigned long long)align);
    }
    capmem_err_t err = wm_reserve(w, __func__);
    if (err != CAPMEM_OK) {
        return err;
    }
    wm_push(w, at, size, at + size - w->base);
    *offset = at;
    return CAPMEM_OK;
}

static capmem_err_t wm_alloc_at(void *self, uint64_t offset, uint64_t size)
{
    wm_t *w = self;
    uint64_t cur = w->base + w->index;
    if (offset < cur) {
        capmem__fail_space(CAPMEM_E_NOT_ENOUGH_MEMORY, __func__, size, w->size - w->index,
                           "watermark: block at 0x%llx overlaps space below the free index "
                           "0x%llx (allocated or lost until reset)",
                           (unsigned long long)offset, (unsigned long long)cur);
        capmem__detail()->address = offset;
        return CAPMEM_E_NOT_ENOUGH_MEMORY;
    }
    capmem_err_t err = wm_reserve(w, __func__);
    if (err != CAPMEM_OK) {
        return err;
    }
    wm_push(w, offset, size, offset + size - w->base);
    return CAPMEM_OK;
}

/* Index of the entry with exactly this offset (live or tombstone), or count. */
static size_t wm_find(const wm_t *w, uint64_t offset)
{
    size_t lo = 0;
    size_t hi = w->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (w->blocks[mid].offset < offset) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo < w->count && w->blocks[lo].offset == offset ? lo : w->count;
}

static capmem_err_t wm_free(void *self, uint64_t offset, uint64_t size)
{
    wm_t *w = self;
    size_t i = wm_find(w, offset);
    if (i == w->count || w->blocks[i].size != size) {
        capmem__fail(CAPMEM_E_NOT_ALLOCATED, __func__,
                     "watermark: [0x%llx, +0x%llx) is not a live block (double free, foreign "
                     "range or wrong size%s)",
                     (unsigned long long)offset, (unsigned long long)size,
                     i < w->count && w->blocks[i].size != 0 ? ": the block there differs" : "");
        capmem__detail()->address = offset;
        capmem__detail()->size = size;
        return CAPMEM_E_NOT_ALLOCATED;
    }
    w->blocks[i].size = 0;
    w->live--;
    /* Trailing tombstones carry no information: drop them at once. */
    while (w->count > 0 && w->blocks[w->count - 1].size == 0) {
        w->count--;
    }
    return CAPMEM_OK;
}

static uint64_t wm_avail(const void *self)
{
    const wm_t *w = self;
    return w->size - w->index;
}

static void wm_reset(void *self)
{
    wm_t *w = self;
    w->index = 0;
    w->count = 0;
    w->live = 0;
}

static void wm_destroy(void *self)
{
    wm_t *w = self;
    capmem__free(w->blocks);
    capmem__free(w);
}

static capmem_err_t wm_check(const void *self, char *why, size_t len)
{
    const wm_t *w = self;
    if (w->index > w->size) {
        return capmem__alloc_broken(why, len, "index 0x%llx beyond size 0x%llx",
                                    (unsigned long long)w->index, (unsigned long long)w->size);
    }
    if (w->count > w->cap) {
        return capmem__alloc_broken(why, len, "count %zu beyond capacity %zu", w->count, w->cap);
    }
    size_t live = 0;
    uint64_t prev_end = w->base;
    for (size_t i = 0; i < w->count; i++) {
        const wm_block_t *b = &w->blocks[i];
        if (i > 0 && b->offset <= w->blocks[i - 1].offset) {
            return capmem__alloc_broken(why, len, "entry %zu (0x%llx) out of order", i,
                                        (unsigned long long)b->offset);
        }
        if (b->size == 0) {
            continue;
        }
        live++;
        if (b->offset < prev_end) {
            return capmem__alloc_broken(why, len, "block at 0x%llx overlaps the previous one",
                                        (unsigned long long)b->offset);
        }
        if (b->offset - w->base > w->index || b->size > w->index - (b->offset - w->base)) {
            return capmem__alloc_broken(why, len, "block at 0x%llx reaches above the index",
                                        (unsigned long long)b->offset);
        }
        prev_end = b->offset + b->size;
    }
    if (live != w->live) {
        return capmem__alloc_broken(why, len, "live count %zu, but %zu live entries", w->live,
                                    live);
    }
    return CAPMEM_OK;
}

static capmem_err_t wm_walk(const void *self, capmem_alloc_walk_fn fn, void *ctx)
{
    const wm_t *w = self;
    for (size_t i = 0; i < w->count; i++) {
        if (w->blocks[i].size != 0 &&
            fn(w->blocks[i].offset, w->blocks[i].size, CAPMEM_BLOCK_USED, ctx) != 0) {
            return CAPMEM_OK;
        }
    }
    if (w->index < w->size) {
        (void)fn(w->base + w->index, w->size - w->index, CAPMEM_BLOCK_FREE, ctx);
    }
    return CAPMEM_OK;
}

/* The counters are at hand: one free run (the tail) or none, and the live blocks. */
static capmem_err_t wm_stats(const void *self, capmem_alloc_stats_t *out)
{
    const wm_t *w = self;
    out->free_blocks = w->index < w->size ? 1 : 0;
    out->used_blocks = w->live;
    return CAPMEM_OK;
}

uint64_t capmem__watermark_metadata(const void *self)
{
    const wm_t *w = self;
    return (uint64_t)w->cap * sizeof(wm_block_t);
}

const capmem_alloc_ops_t capmem__watermark_ops = {
    .name = "watermark",
    .alloc = wm_alloc,
    .alloc_at = wm_alloc_at,
    .free = wm_free,
    .avail = wm_avail,
    .largest = wm_avail,
    .reset = wm_reset,
    .destroy = wm_destroy,
    .check = wm_check,
    .walk = wm_walk,
    .stats = wm_stats,
};
