/* SPDX-License-Identifier: MIT */
/*
 * Internals of the alloc layer: the generic handle and the built-in
 * policies' constructors and vtables. Never installed.
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
} capmem__alloc_kind_t;

/*
 * The generic handle. Invariant: ops and its mandatory hooks are not NULL;
 * [base, base + size) does not overflow (size may be UINT64_MAX - base for
 * custom policies without a span).
 */
struct capmem_alloc {
    const capmem_alloc_ops_t *ops;
    void *self;
    uint64_t base;
    uint64_t size;
    capmem__alloc_kind_t kind;
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

/* Write a check failure into why (if any room) and return CAPMEM_E_CORRUPT. */
capmem_err_t capmem__alloc_broken(char *why, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif /* CAPMEM_ALLOC_INTERNAL_H */
