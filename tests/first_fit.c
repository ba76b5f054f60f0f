/* SPDX-License-Identifier: MIT */
/* The tests' first-fit policy; see first_fit.h. */
#include <setjmp.h>
#include <stdarg.h>
#include <string.h>

#include <cmocka.h>

#include "first_fit.h"
#include "internal.h"

static capmem_err_t ff_insert(test_ff_t *f, size_t i, uint64_t off, uint64_t len)
{
    if (f->n == TEST_FF_MAX) {
        return capmem__fail(CAPMEM_E_OUT_OF_METADATA, "ff", "first-fit table full");
    }
    memmove(&f->off[i + 1], &f->off[i], (f->n - i) * sizeof(uint64_t));
    memmove(&f->len[i + 1], &f->len[i], (f->n - i) * sizeof(uint64_t));
    f->off[i] = off;
    f->len[i] = len;
    f->n++;
    return CAPMEM_OK;
}

static capmem_err_t ff_alloc(void *self, uint64_t size, uint64_t align, uint64_t *offset)
{
    test_ff_t *f = self;
    f->calls++;
    /* The generic layer promised validated input. */
    assert_true(size > 0 && align > 0 && (align & (align - 1)) == 0);
    uint64_t cur = f->base;
    for (size_t i = 0; i <= f->n; i++) {
        uint64_t gap_end = i < f->n ? f->off[i] : f->base + f->size;
        uint64_t at = (cur + align - 1) & ~(align - 1);
        if (at >= cur && at <= gap_end && gap_end - at >= size) {
            capmem_err_t err = ff_insert(f, i, at, size);
            if (err == CAPMEM_OK) {
                *offset = at;
            }
            return err;
        }
        if (i < f->n) {
            cur = f->off[i] + f->len[i];
        }
    }
    return capmem__fail_space(CAPMEM_E_NOT_ENOUGH_MEMORY, "ff", size, 0, "first fit: no gap");
}

static capmem_err_t ff_alloc_at(void *self, uint64_t offset, uint64_t size)
{
    test_ff_t *f = self;
    f->calls++;
    assert_true(size > 0 && offset >= f->base && offset + size <= f->base + f->size);
    size_t i = 0;
    while (i < f->n && f->off[i] < offset) {
        i++;
    }
    if ((i > 0 && f->off[i - 1] + f->len[i - 1] > offset) ||
        (i < f->n && offset + size > f->off[i])) {
        return capmem__fail_space(CAPMEM_E_NOT_ENOUGH_MEMORY, "ff", size, 0, "overlaps");
    }
    return ff_insert(f, i, offset, size);
}

static capmem_err_t ff_free(void *self, uint64_t offset, uint64_t size)
{
    test_ff_t *f = self;
    f->calls++;
    for (size_t i = 0; i < f->n; i++) {
        if (f->off[i] == offset && f->len[i] == size) {
            memmove(&f->off[i], &f->off[i + 1], (f->n - i - 1) * sizeof(uint64_t));
            memmove(&f->len[i], &f->len[i + 1], (f->n - i - 1) * sizeof(uint64_t));
            f->n--;
            return CAPMEM_OK;
        }
    }
    /* Deliberately no detail record: the generic layer must fill one in. */
    return CAPMEM_E_NOT_ALLOCATED;
}

static uint64_t ff_avail(const void *self)
{
    const test_ff_t *f = self;
    uint64_t used = 0;
    for (size_t i = 0; i < f->n; i++) {
        used += f->len[i];
    }
    return f->size - used;
}

static uint64_t ff_largest(const void *self)
{
    const test_ff_t *f = self;
    uint64_t best = 0;
    uint64_t cur = f->base;
    for (size_t i = 0; i <= f->n; i++) {
        uint64_t gap_end = i < f->n ? f->off[i] : f->base + f->size;
        best = gap_end - cur > best ? gap_end - cur : best;
        if (i < f->n) {
            cur = f->off[i] + f->len[i];
        }
    }
    return best;
}

static void ff_reset(void *self)
{
    test_ff_t *f = self;
    f->n = 0;
}

static void ff_destroy(void *self)
{
    test_ff_t *f = self;
    f->destroyed++;
}

static capmem_err_t ff_walk(const void *self, capmem_alloc_walk_fn fn, void *ctx)
{
    const test_ff_t *f = self;
    uint64_t cur = f->base;
    for (size_t i = 0; i <= f->n; i++) {
        uint64_t gap_end = i < f->n ? f->off[i] : f->base + f->size;
        if (gap_end > cur && fn(cur, gap_end - cur, CAPMEM_BLOCK_FREE, ctx) != 0) {
            return CAPMEM_OK;
        }
        if (i < f->n) {
            if (fn(f->off[i], f->len[i], CAPMEM_BLOCK_USED, ctx) != 0) {
                return CAPMEM_OK;
            }
            cur = f->off[i] + f->len[i];
        }
    }
    return CAPMEM_OK;
}

const capmem_alloc_ops_t test_ff_ops = {
    .name = "first-fit",
    .alloc = ff_alloc,
    .alloc_at = ff_alloc_at,
    .free = ff_free,
    .avail = ff_avail,
    .largest = ff_largest,
    .reset = ff_reset,
    .destroy = ff_destroy,
    .check = NULL,
    .walk = ff_walk,
};
