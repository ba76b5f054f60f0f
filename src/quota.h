/* SPDX-License-Identifier: MIT */
/*
 * One quota type for every budget the library keeps: an account's RAM
 * quota (bytes) and its capability quota (capabilities). The words are the
 * ones used everywhere: limit, used, avail; withdraw and replenish move
 * what is used, transfer moves limit between two quotas. Never installed.
 *
 * Invariant: used <= limit, except for a root account's capability quota,
 * which may be charged past a limit given at creation (see ram.c).
 */
#ifndef CAPMEM_QUOTA_H
#define CAPMEM_QUOTA_H

#include <stdbool.h>
#include <stdint.h>

typedef struct capmem__quota {
    uint64_t limit;
    uint64_t used;
} capmem__quota_t;

/* What can still be withdrawn (0 when used has run past limit). */
static inline uint64_t capmem__quota_avail(const capmem__quota_t *q)
{
    return q->used < q->limit ? q->limit - q->used : 0;
}

static inline bool capmem__quota_can(const capmem__quota_t *q, uint64_t n)
{
    return capmem__quota_avail(q) >= n;
}

/* Charge @p n (the caller checked capmem__quota_can). */
static inline void capmem__quota_withdraw(capmem__quota_t *q, uint64_t n)
{
    q->used += n;
}

/* Give back @p n of what was charged. */
static inline void capmem__quota_replenish(capmem__quota_t *q, uint64_t n)
{
    q->used -= n;
}

/* Move @p n of limit from @p from to @p to (the caller checked from's avail). */
static inline void capmem__quota_transfer(capmem__quota_t *from, capmem__quota_t *to, uint64_t n)
{
    from->limit -= n;
    to->limit += n;
}

#endif
