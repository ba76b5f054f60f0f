/* SPDX-License-Identifier: MIT */
/*
 * splitmix64 (Steele, Lea and Flood), the generator behind every quiz: the
 * same seed gives the same numbers on every machine and C library, which
 * rand() does not promise.
 */
#ifndef CAPMEM_TOOL_SPLITMIX_H
#define CAPMEM_TOOL_SPLITMIX_H

#include <stdint.h>

typedef struct splitmix {
    uint64_t state;
} splitmix_t;

static inline uint64_t splitmix_next(splitmix_t *s)
{
    uint64_t z = (s->state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* A number in [lo, hi], both included. The modulo bias is irrelevant here and portable. */
static inline uint64_t splitmix_range(splitmix_t *s, uint64_t lo, uint64_t hi)
{
    return lo + splitmix_next(s) % (hi - lo + 1);
}

#endif
