/* SPDX-License-Identifier: MIT */
/*
 * Accounts (account_internal.h): lookups, what an account can pay, and
 * upgrades of a slab paid from an account's quota, the expanding client's
 * loop included.
 */
#include <stdio.h>

#include "account_internal.h"

capmem_err_t capmem__account_lookup(capmem_arena_t *arena, capmem_cap_t cap, unsigned rights,
                                    capmem__account_t **out)
{
    capmem__slot_t *s = NULL;
    capmem_err_t err = capmem__cap_lookup(arena, cap, CAPMEM_OBJ_RAM_SESSION, rights, &s);
    if (err == CAPMEM_OK) {
        *out = s->obj;
    }
    return err;
}

capmem_err_t capmem__account_can_pay(const capmem__account_t *acc, uint64_t bytes, const char *what)
{
    if (capmem__quota_can(&acc->ram, bytes)) {
        return CAPMEM_OK;
    }
    const uint64_t avail = capmem__quota_avail(&acc->ram);
    return capmem__fail_space(CAPMEM_E_OUT_OF_RAM, NULL, bytes, avail,
                              "RAM quota of \"%s\" exceeded: %s needs %llu bytes, %llu available",
                              acc->label, what, (unsigned long long)bytes,
                              (unsigned long long)avail);
}

capmem_err_t capmem__account_upgrade(capmem_arena_t *arena, capmem__meta_t *m,
                                     capmem__account_t *payer, capmem_cap_t session,
                                     const char *who, uint64_t bytes)
{
    capmem_err_t err = capmem__account_can_pay(payer, bytes, "the upgrade");
    if (err != CAPMEM_OK) {
        return err;
    }
    err = capmem__meta_add_chunk(arena, payer->phys, m, bytes);
    if (err != CAPMEM_OK) {
        return err;
    }
    /* Quota moves from the payer's budget into the slab: limit, not use. */
    payer->ram.limit -= bytes;
    capmem__account_t *owner = capmem__account_of(m);
    if (owner != NULL) {
        owner->upgrades++;
    } else {
        payer->donated += bytes;
    }
    arena->stats.upgrades++;
    if (capmem__events_on(arena)) {
        capmem__emitf(arena, CAPMEM_EVENT_UPGRADE, session, bytes, m->donation,
                      "upgrading quota donation for %s by %llu bytes", who,
                      (unsigned long long)bytes);
    }
    return CAPMEM_OK;
}

capmem_err_t capmem__account_make_room(capmem_arena_t *arena, capmem__meta_t *m,
                                       capmem__account_t *payer, bool expanding, uint64_t step,
                                       capmem_cap_t session, const char *who, uint64_t slots)
{
    if (capmem__meta_has_room(m, slots)) {
        return CAPMEM_OK;
    }
    if (!expanding) {
        return capmem__meta_full(m, slots);
    }
    /*
     * Genode's Expanding_parent_client: upgrade by a step and retry. Each
     * upgrade is a completed action of its own, with its event, even if the
     * call that needed it fails later.
     */
    while (!capmem__meta_has_room(m, slots)) {
        capmem_err_t err = capmem__account_upgrade(arena, m, payer, session, who, step);
        if (err != CAPMEM_OK) {
            return err;
        }
    }
    return CAPMEM_OK;
}
