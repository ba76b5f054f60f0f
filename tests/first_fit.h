/* SPDX-License-Identifier: MIT */
/*
 * A plain first-fit allocation policy written for the tests, plugged in
 * through the public vtable (capmem_alloc_create_custom_span): a sorted
 * array of used blocks, O(n) everything. Used by test_alloc (the generic
 * API) and test_untyped (the seL4 scenarios on a user policy).
 */
#ifndef CAPMEM_TEST_FIRST_FIT_H
#define CAPMEM_TEST_FIRST_FIT_H

#include <stddef.h>
#include <stdint.h>

#include "capmem.h"

#define TEST_FF_MAX 64

typedef struct test_ff {
    uint64_t base;
    uint64_t size;
    size_t n; /* used blocks, sorted by offset */
    uint64_t off[TEST_FF_MAX];
    uint64_t len[TEST_FF_MAX];
    int calls; /* hooks that changed or could change state */
    int destroyed;
} test_ff_t;

extern const capmem_alloc_ops_t test_ff_ops;

#endif
