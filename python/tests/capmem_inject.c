/* SPDX-License-Identifier: MIT */
/*
 * A test-only copy of libcapmem (the static library linked whole) that
 * exports the host fault-injection hooks of src/host.c, which the real
 * library keeps hidden, so that python/tests/test_faultinject.py can make
 * the n-th malloc or mmap of the library fail. Never installed.
 */
#include <stdint.h>

#include "internal.h"

CAPMEM_API void capmem_test_inject_fail(int kind, uint64_t nth);
CAPMEM_API uint64_t capmem_test_inject_count(int kind);
CAPMEM_API void capmem_test_inject_reset(void);

void capmem_test_inject_fail(int kind, uint64_t nth)
{
    capmem__inject_fail((capmem__host_kind_t)kind, nth);
}

uint64_t capmem_test_inject_count(int kind)
{
    return capmem__inject_count((capmem__host_kind_t)kind);
}

void capmem_test_inject_reset(void)
{
    capmem__inject_reset();
}
