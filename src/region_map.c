/* SPDX-License-Identifier: MIT */
/* Layer 7: region maps. (Placeholder until the layer lands: no objects exist.) */
#include "internal.h"
#include "rm_hooks.h"

void capmem__rm_destroy(capmem_arena_t *arena, void *rm)
{
    (void)arena;
    (void)rm;
    CAPMEM_ASSERT(0, "no region map objects exist yet");
}

capmem_err_t capmem__rm_meta(capmem_arena_t *arena, void *rm, struct capmem__account *payer,
                             const char *func, struct capmem__meta **m, const char **who)
{
    (void)arena;
    (void)rm;
    (void)payer;
    (void)m;
    (void)who;
    return capmem__fail(CAPMEM_E_WRONG_TYPE, func, "no region maps yet");
}

void capmem__rm_detach_all(capmem_arena_t *arena, struct capmem__ds *ds)
{
    (void)arena;
    (void)ds;
}

void capmem__rm_managed_destroy(capmem_arena_t *arena, struct capmem__ds *ds)
{
    (void)arena;
    (void)ds;
    CAPMEM_ASSERT(0, "no managed dataspaces exist yet");
}

capmem_err_t capmem__rm_managed_access(capmem_arena_t *arena, struct capmem__ds *ds,
                                       uint64_t offset, void *buf, size_t len, int write,
                                       const char *func)
{
    (void)arena;
    (void)ds;
    (void)offset;
    (void)buf;
    (void)len;
    (void)write;
    return capmem__fail(CAPMEM_E_WRONG_TYPE, func, "no managed dataspaces yet");
}

uint64_t capmem__rm_donations(capmem_arena_t *arena, const struct capmem__ram_service *svc)
{
    (void)arena;
    (void)svc;
    return 0;
}

uint64_t capmem__rm_records_in(capmem_arena_t *arena, const struct capmem__meta *m)
{
    (void)arena;
    (void)m;
    return 0;
}
