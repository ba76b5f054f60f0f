/* SPDX-License-Identifier: MIT */
/*
 * The hierarchical bitmap shared by the range and buddy policies. It depends
 * only on internal.h, so neither the policies nor the generic alloc front
 * import each other for it. Never installed.
 */
#ifndef CAPMEM_HBM_H
#define CAPMEM_HBM_H

#include <stdbool.h>
#include <stdint.h>

#include "internal.h"

/*
 * A bitmap of n bits with summary levels on top: bit i of level L+1 is set
 * iff word i of level L is non-zero. Finding the next (or previous) set bit
 * from any position therefore costs one word per level (ceil(log64 n)
 * levels: 3 for 2^18 bits, 6 for 2^36), instead of a scan. The words live
 * in memory the owner provides (a lazily committed mapping), all zero at
 * start.
 *
 * Invariant (checked by capmem__hbm_check): for every level L > 0 and every
 * word w of level L-1, bit w of level L == (word w != 0); no bit at or
 * beyond a level's length is set.
 */
#define CAPMEM__HBM_MAX_LEVELS 8
#define CAPMEM__HBM_NONE UINT64_MAX

typedef struct capmem__hbm {
    uint64_t *lvl[CAPMEM__HBM_MAX_LEVELS]; /* lvl[0] is the bitmap itself */
    uint64_t nbits[CAPMEM__HBM_MAX_LEVELS];
    unsigned levels;
} capmem__hbm_t;

/* Words needed for an n-bit hierarchical bitmap (n >= 1). */
uint64_t capmem__hbm_words(uint64_t n);
/* Lay the bitmap out over words (capmem__hbm_words(n) of them, zeroed). */
void capmem__hbm_init(capmem__hbm_t *h, uint64_t n, uint64_t *words);
uint64_t capmem__hbm_next(const capmem__hbm_t *h, uint64_t i); /* first set >= i */
uint64_t capmem__hbm_prev(const capmem__hbm_t *h, uint64_t i); /* last set <= i */
uint64_t capmem__hbm_count(const capmem__hbm_t *h);            /* level-0 popcount */
bool capmem__hbm_check(const capmem__hbm_t *h);

/* First set bit, or CAPMEM__HBM_NONE: one word per level, from the top down. */
static inline uint64_t capmem__hbm_first(const capmem__hbm_t *h)
{
    unsigned l = h->levels - 1;
    uint64_t w = h->lvl[l][0];
    if (w == 0) {
        return CAPMEM__HBM_NONE;
    }
    uint64_t i = (uint64_t)__builtin_ctzll(w);
    while (l > 0) {
        l--;
        i = (i << 6) + (uint64_t)__builtin_ctzll(h->lvl[l][i]);
    }
    return i;
}

/* True when no bit is set (the top word summarizes everything). */
static inline bool capmem__hbm_empty(const capmem__hbm_t *h)
{
    return h->lvl[h->levels - 1][0] == 0;
}

static inline bool capmem__hbm_test(const capmem__hbm_t *h, uint64_t i)
{
    return (h->lvl[0][i >> 6] >> (i & 63)) & 1u;
}

static inline void capmem__hbm_set(capmem__hbm_t *h, uint64_t i)
{
    /* Go up only while a word turns from empty to non-empty. */
    for (unsigned l = 0; l < h->levels; l++) {
        uint64_t *w = &h->lvl[l][i >> 6];
        uint64_t old = *w;
        *w = old | (1ull << (i & 63));
        if (old != 0) {
            return;
        }
        i >>= 6;
    }
}

static inline void capmem__hbm_clear(capmem__hbm_t *h, uint64_t i)
{
    /* Go up only while a word turns from non-empty to empty. */
    for (unsigned l = 0; l < h->levels; l++) {
        uint64_t *w = &h->lvl[l][i >> 6];
        *w &= ~(1ull << (i & 63));
        if (*w != 0) {
            return;
        }
        i >>= 6;
    }
}

#endif /* CAPMEM_HBM_H */
