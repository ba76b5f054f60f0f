/* SPDX-License-Identifier: MIT */
/* What the capability layer needs from the region-map layer. */
#ifndef CAPMEM_RM_HOOKS_H
#define CAPMEM_RM_HOOKS_H

#include "capmem/arena.h"
#include "capmem/error.h"

struct capmem__account;
struct capmem__meta;
struct capmem__ds;
struct capmem__ram_service;

/* Detach every attachment of a dataspace that is going away. */
void capmem__rm_detach_all(capmem_arena_t *arena, struct capmem__ds *ds);

/*
 * A managed dataspace's record is going away (its region map's capability
 * subtree is being revoked): drop the map's pointer to it. The caller frees
 * the record.
 */
void capmem__rm_managed_destroy(capmem_arena_t *arena, struct capmem__ds *ds);

/* Access bytes of a managed dataspace through its region map (simulated mode). */
capmem_err_t capmem__rm_managed_access(capmem_arena_t *arena, struct capmem__ds *ds,
                                       uint64_t offset, void *buf, size_t len, int write,
                                       const char *func);

/*
 * For the RAM checker: bytes of donation held by region maps of @p svc
 * (their chunks), and how many records each slab holds for regions.
 */
uint64_t capmem__rm_donations(capmem_arena_t *arena, const struct capmem__ram_service *svc);
uint64_t capmem__rm_records_in(capmem_arena_t *arena, const struct capmem__meta *m);

#endif
