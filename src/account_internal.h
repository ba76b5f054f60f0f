/* SPDX-License-Identifier: MIT */
/*
 * Accounts: a RAM session's record, with its RAM quota and capability
 * quota, its reference account, and the slab of its own donation. The RAM
 * service (ram.c) opens and closes them; dataspaces (ds_internal.h) are
 * charged to them. Never installed.
 */
#ifndef CAPMEM_ACCOUNT_INTERNAL_H
#define CAPMEM_ACCOUNT_INTERNAL_H

#include "cap_internal.h"
#include "meta_internal.h"

typedef struct capmem__account capmem__account_t;
typedef struct capmem__ds capmem__ds_t;

/*
 * An account (RAM session). Lives in the first chunk of its own donation,
 * in CAPMEM_RAM_SESSION_SLOTS records.
 *
 * Invariants (the RAM checker): ram.used <= ram.limit; lent <= ram.used;
 * ram.used == bytes of its RAM dataspaces + lent; the lent list holds
 * exactly the first-class aliases whose lender is this account and whose
 * original is freed, and lent is the union of their pages; caps.used counts
 * the capabilities charged to it; donated is the sum of the donations of
 * the non-RAM sessions it pays for (region maps). Over a service, the sum
 * of ram.limit + meta.donation + donated is the service's RAM.
 */
struct capmem__account {
    capmem_alloc_t *phys;   /* the service's physical allocator */
    capmem__account_t *ref; /* reference account, NULL for the root */
    capmem__quota_t ram;    /* bytes: limit is the quota */
    uint64_t lent;          /* bytes of ram.used kept alive by first-class aliases */
    capmem__quota_t caps;   /* capabilities */
    capmem__meta_t meta;    /* its own donation, which holds this record */
    uint64_t upgrade_step;
    uint64_t donated;         /* donations to other services' sessions (region maps) */
    capmem__ds_t *dependents; /* dependent aliases paid for here (dep links) */
    capmem__ds_t *lent_list;  /* first-class aliases of freed originals lent by this account */
    uint32_t flags;           /* CAPMEM_RAM_EXPANDING */
    uint32_t slot;            /* original capability's slot */
    uint32_t sessions;        /* child sessions (accounts, region maps) open */
    uint32_t upgrades;
    char label[24];
};

_Static_assert(sizeof(capmem__account_t) <= CAPMEM_RAM_SESSION_SLOTS * CAPMEM__REC,
               "the account record fits its session slots");

/* Look an account up (RAM_SESSION capability with @p rights). */
capmem_err_t capmem__account_lookup(capmem_arena_t *arena, capmem_cap_t cap, unsigned rights,
                                    capmem__account_t **out);

/* The account whose own slab @p m is, or NULL for another session's slab. */
static inline capmem__account_t *capmem__account_of(capmem__meta_t *m)
{
    if (m->kind != CAPMEM__META_ACCOUNT) {
        return NULL;
    }
    return (capmem__account_t *)(void *)((uint8_t *)m - offsetof(capmem__account_t, meta));
}

static inline capmem_cap_t capmem__account_handle(const capmem_arena_t *arena,
                                                  const capmem__account_t *acc)
{
    return capmem__slot_handle(&arena->cspace, acc->slot);
}

/* OUT_OF_RAM unless @p acc can pay @p bytes more; @p what names the purpose. */
capmem_err_t capmem__account_can_pay(const capmem__account_t *acc, uint64_t bytes,
                                     const char *what);

/*
 * Upgrade slab @p m by @p bytes paid from @p payer's quota: a new chunk of
 * the payer's service, an UPGRADE event about @p session (named @p who).
 * A slab that is not an account's own counts as the payer's donation.
 * OUT_OF_RAM, OUT_OF_PHYS.
 */
capmem_err_t capmem__account_upgrade(capmem_arena_t *arena, capmem__meta_t *m,
                                     capmem__account_t *payer, capmem_cap_t session,
                                     const char *who, uint64_t bytes);

/*
 * Make room for @p slots records in @p m, paid by @p payer: if it lacks
 * room and @p payer is expanding (@p expanding), upgrade in steps of
 * @p step (each an UPGRADE event, a completed step of its own) until there
 * is room; OUT_OF_METADATA otherwise, OUT_OF_RAM when the payer cannot pay.
 */
capmem_err_t capmem__account_make_room(capmem_arena_t *arena, capmem__meta_t *m,
                                       capmem__account_t *payer, bool expanding, uint64_t step,
                                       capmem_cap_t session, const char *who, uint64_t slots);

#endif
