/* SPDX-License-Identifier: MIT */
/* The lying policy of the tests; see liar.h. */
#include <stdlib.h>

#include "liar.h"

typedef struct liar {
    void *inner; /* a next-fit instance */
    liar_ctl_t *ctl;
    uint64_t base;
    uint64_t size;
} liar_t;

static capmem_err_t liar_alloc(void *self, uint64_t size, uint64_t align, uint64_t *offset)
{
    liar_t *l = self;
    liar_mode_t mode = l->ctl->mode;
    l->ctl->mode = LIAR_HONEST;
    l->ctl->allocs++;
    switch (mode) {
    case LIAR_OUT_OF_SPAN:
        *offset = l->base + l->size; /* aligned, but the block starts at the end */
        return CAPMEM_OK;
    case LIAR_OVERLAP:
        *offset = l->ctl->first;
        return CAPMEM_OK;
    case LIAR_NO_OFFSET:
        return CAPMEM_OK;
    case LIAR_MISALIGNED:
    case LIAR_HONEST:
    default:
        break;
    }
    uint64_t off = 0;
    capmem_err_t err = next_fit_ops.alloc(l->inner, size, align, &off);
    if (err == CAPMEM_OK) {
        if (l->ctl->allocs == 1) {
            l->ctl->first = off;
        }
        /* A misaligned lie keeps the honest block in the policy: its own mess. */
        *offset = mode == LIAR_MISALIGNED ? off + 1 : off;
    }
    return err;
}

static capmem_err_t liar_alloc_at(void *self, uint64_t offset, uint64_t size)
{
    liar_t *l = self;
    return next_fit_ops.alloc_at(l->inner, offset, size);
}

static capmem_err_t liar_free(void *self, uint64_t offset, uint64_t size)
{
    liar_t *l = self;
    return next_fit_ops.free(l->inner, offset, size);
}

static uint64_t liar_avail(const void *self)
{
    const liar_t *l = self;
    return next_fit_ops.avail(l->inner);
}

static uint64_t liar_largest(const void *self)
{
    const liar_t *l = self;
    return next_fit_ops.largest(l->inner);
}

static void liar_reset(void *self)
{
    liar_t *l = self;
    next_fit_ops.reset(l->inner);
}

static void liar_destroy(void *self)
{
    liar_t *l = self;
    next_fit_ops.destroy(l->inner);
    free(l);
}

static capmem_err_t liar_walk(const void *self, capmem_alloc_walk_fn fn, void *ctx)
{
    const liar_t *l = self;
    return next_fit_ops.walk(l->inner, fn, ctx);
}

static capmem_err_t liar_create(void *ctx, uint64_t base, uint64_t size, uint64_t granule,
                                void **self)
{
    liar_t *l = calloc(1, sizeof(*l));
    if (l == NULL) {
        return CAPMEM_E_HOST_NOMEM;
    }
    capmem_err_t err = next_fit_ops.create(NULL, base, size, granule, &l->inner);
    if (err != CAPMEM_OK) {
        free(l);
        return err;
    }
    l->ctl = ctx;
    l->base = base;
    l->size = size;
    *self = l;
    return CAPMEM_OK;
}

const capmem_alloc_ops_t liar_ops = {
    .name = "liar",
    .alloc = liar_alloc,
    .alloc_at = liar_alloc_at,
    .free = liar_free,
    .avail = liar_avail,
    .largest = liar_largest,
    .reset = liar_reset,
    .destroy = liar_destroy,
    .walk = liar_walk,
    .create = liar_create,
};
