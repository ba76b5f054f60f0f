/* SPDX-License-Identifier: MIT */
/* The hierarchical bitmap (hbm.h): layout, searches, counting and its check. */
#include <string.h>

#include "hbm.h"

static unsigned hbm_layout(uint64_t n, uint64_t nbits[CAPMEM__HBM_MAX_LEVELS], uint64_t *words)
{
    unsigned levels = 0;
    uint64_t total = 0;
    for (;;) {
        uint64_t w = (n + 63) / 64;
        nbits[levels++] = n;
        total += w;
        if (w <= 1) {
            break;
        }
        n = w;
    }
    *words = total;
    return levels;
}

uint64_t capmem__hbm_words(uint64_t n)
{
    uint64_t nbits[CAPMEM__HBM_MAX_LEVELS];
    uint64_t words;
    (void)hbm_layout(n == 0 ? 1 : n, nbits, &words);
    return words;
}

void capmem__hbm_init(capmem__hbm_t *h, uint64_t n, uint64_t *words)
{
    uint64_t total;
    memset(h, 0, sizeof(*h));
    h->levels = hbm_layout(n == 0 ? 1 : n, h->nbits, &total);
    for (unsigned l = 0; l < h->levels; l++) {
        h->lvl[l] = words;
        words += (h->nbits[l] + 63) / 64;
    }
}

uint64_t capmem__hbm_next(const capmem__hbm_t *h, uint64_t i)
{
    unsigned l = 0;
    if (i >= h->nbits[0]) {
        return CAPMEM__HBM_NONE;
    }
    /* Climb while the rest of the current word is empty... */
    for (;;) {
        uint64_t w = i >> 6;
        if (i >= h->nbits[l]) {
            return CAPMEM__HBM_NONE;
        }
        uint64_t bits = h->lvl[l][w] & (~0ull << (i & 63));
        if (bits != 0) {
            i = (w << 6) + (uint64_t)__builtin_ctzll(bits);
            break;
        }
        if (l + 1 == h->levels) {
            return CAPMEM__HBM_NONE;
        }
        l++;
        i = w + 1;
    }
    /* ...then descend, always to the lowest set bit (summaries are exact). */
    while (l > 0) {
        l--;
        i = (i << 6) + (uint64_t)__builtin_ctzll(h->lvl[l][i]);
    }
    return i;
}

uint64_t capmem__hbm_prev(const capmem__hbm_t *h, uint64_t i)
{
    unsigned l = 0;
    if (i >= h->nbits[0]) {
        i = h->nbits[0] - 1;
    }
    for (;;) {
        uint64_t w = i >> 6;
        unsigned b = (unsigned)(i & 63);
        uint64_t mask = b == 63 ? ~0ull : ((2ull << b) - 1);
        uint64_t bits = h->lvl[l][w] & mask;
        if (bits != 0) {
            i = (w << 6) + 63u - (uint64_t)__builtin_clzll(bits);
            break;
        }
        if (w == 0 || l + 1 == h->levels) {
            return CAPMEM__HBM_NONE;
        }
        l++;
        i = w - 1;
    }
    while (l > 0) {
        l--;
        i = (i << 6) + 63u - (uint64_t)__builtin_clzll(h->lvl[l][i]);
    }
    return i;
}

uint64_t capmem__hbm_count(const capmem__hbm_t *h)
{
    uint64_t c = 0;
    for (uint64_t w = 0; w < (h->nbits[0] + 63) / 64; w++) {
        c += (uint64_t)__builtin_popcountll(h->lvl[0][w]);
    }
    return c;
}

bool capmem__hbm_check(const capmem__hbm_t *h)
{
    for (unsigned l = 0; l < h->levels; l++) {
        uint64_t nw = (h->nbits[l] + 63) / 64;
        /* No bit beyond the level's length. */
        if ((h->nbits[l] & 63) != 0 && (h->lvl[l][nw - 1] >> (h->nbits[l] & 63)) != 0) {
            return false;
        }
        if (l == 0) {
            continue;
        }
        for (uint64_t w = 0; w < h->nbits[l]; w++) {
            bool sum = (h->lvl[l][w >> 6] >> (w & 63)) & 1u;
            if (sum != (h->lvl[l - 1][w] != 0)) {
                return false;
            }
        }
    }
    return true;
}
