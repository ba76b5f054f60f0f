/* SPDX-License-Identifier: MIT */
/*
 * The RAM service: the pools it manages, for the layers above it (region
 * maps open their sessions against an account of it). Accounts and
 * dataspaces, which it makes, are account_internal.h and ds_internal.h.
 * Never installed.
 */
#ifndef CAPMEM_RAM_INTERNAL_H
#define CAPMEM_RAM_INTERNAL_H

#include "ds_internal.h"
#include "untyped_internal.h"

/*
 * A RAM service: a range allocator over the span of its pools (untypeds
 * claimed whole), and the root account that holds all of it at start.
 * Host memory: one per service.
 *
 * Invariants (the RAM checker): over the accounts of a living service,
 * sum(ram.limit + meta.donation + donated) == total (conservation), and the
 * physical bytes reserved == sum(meta.donation + donated + RAM dataspaces
 * + lent pages) (exclusivity).
 */
typedef struct capmem__ram_service capmem__ram_service_t;
struct capmem__ram_service {
    /*
     * Over [lo, hi), page granule: a range allocator, or with a placement
     * policy (capmem_ram_attr_t.policy) a placed map (alloc_place.c).
     */
    capmem_alloc_t *phys;
    uint64_t lo;
    uint64_t hi;
    uint64_t total; /* bytes of RAM in the pools */
    capmem__account_t *root;
    uint32_t pools;         /* live pools */
    uint32_t pool_slot[64]; /* their capabilities' slots, 0 once a pool is gone */
    bool alive;             /* root account exists */
    capmem__ram_service_t *next_svc;
    uint64_t tally_quota; /* scratch for the checker */
    uint64_t tally_phys;
};

/* The smallest upgrade or step: a chunk header and one record, a page multiple. */
capmem_err_t capmem__ram_check_step(const capmem_arena_t *arena, uint64_t bytes, const char *what);

/* OUT_OF_PHYS with the largest free range of @p phys, for @p bytes of @p what. */
capmem_err_t capmem__ram_phys_fail(capmem_alloc_t *phys, uint64_t bytes, const char *what);

/* The smallest donation: a chunk header, the session record and one record. */
uint64_t capmem__ram_min_donation(const capmem_arena_t *arena);

/*
 * Lay out a new account in the first slots of a fresh chunk: [off, off +
 * donation) of @p phys, reserved by the caller's decode
 * (capmem__meta_reserve). Cannot fail.
 */
capmem__account_t *capmem__ram_account_init(capmem_arena_t *arena, capmem_alloc_t *phys,
                                            uint64_t off, uint64_t donation, const char *label);

/* OUT_OF_PHYS unless @p phys has a contiguous free range of @p bytes. */
capmem_err_t capmem__ram_phys_check(capmem_alloc_t *phys, uint64_t bytes, const char *what);

/* What capmem_ram_info() reports about @p acc (the dump writes the same numbers). */
void capmem__ram_fill_info(const capmem_arena_t *arena, const capmem__account_t *acc,
                           capmem_ram_info_t *info);

#endif
