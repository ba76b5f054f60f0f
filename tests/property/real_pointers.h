/* SPDX-License-Identifier: MIT */
/*
 * Real mode in the property test (real_pointers.c): real-pointer loads and
 * stores compared with capmem_rm_read over seeded random sequences.
 */
#ifndef CAPMEM_TEST_REAL_POINTERS_H
#define CAPMEM_TEST_REAL_POINTERS_H

#include <stddef.h>
#include <stdint.h>

#include "capmem.h"

/*
 * Run @p steps random steps from @p seed on a fresh arena of its own.
 * 0 when every pointer access agreed with the library and every check
 * passed; 1 with the reason in @p why; -1 when the host has no memfd.
 */
int real_pointers_run(uint64_t seed, uint64_t steps, char *why, size_t len);

#endif
