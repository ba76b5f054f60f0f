/* SPDX-License-Identifier: MIT */
/* Layer 9: inspection. The invariant checker over every layer present; statistics. */
#include <stdio.h>
#include <string.h>

#include "capmem/region_map.h"
#include "machine_internal.h"

/* The statistics agree with the capability table, and current <= peak <= total. */
static capmem_err_t stats_check(const capmem_arena_t *arena, char *why, size_t len)
{
    const capmem__stats_t *st = &arena->stats;
    if (st->caps.current != arena->cspace.live) {
        snprintf(why, len, "statistics: %llu capabilities counted, %llu live",
                 (unsigned long long)st->caps.current, (unsigned long long)arena->cspace.live);
        return CAPMEM_E_CORRUPT;
    }
    const capmem_stat_t *const res[] = {&st->caps,           &st->records, &st->dataspaces,
                                        &st->aliases,        &st->regions, &st->lent,
                                        &st->kernel_records, &st->banks,   &st->bank_frames};
    for (size_t i = 0; i < sizeof(res) / sizeof(res[0]); i++) {
        if (res[i]->current > res[i]->peak || res[i]->peak > res[i]->total) {
            snprintf(why, len, "statistics: resource %zu has current %llu, peak %llu, total %llu",
                     i, (unsigned long long)res[i]->current, (unsigned long long)res[i]->peak,
                     (unsigned long long)res[i]->total);
            return CAPMEM_E_CORRUPT;
        }
    }
    return CAPMEM_OK;
}

capmem_err_t capmem_check(capmem_arena_t *arena, char *why, size_t len)
{
    if (arena == NULL) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, __func__, "arena is NULL");
    }
    /* The layer checkers write their finding somewhere even when the caller wants none. */
    char scratch[256];
    if (why == NULL || len == 0) {
        why = scratch;
        len = sizeof(scratch);
    }
    why[0] = '\0';
    CAPMEM__ENTER_OR_RETURN(arena);
    capmem_err_t err = capmem__cspace_check(&arena->cspace, why, len);
    if (err == CAPMEM_OK) {
        err = capmem__layers_check(arena, why, len);
    }
    if (err == CAPMEM_OK) {
        err = stats_check(arena, why, len);
    }
    CAPMEM__LEAVE(arena);
    return err;
}

capmem_err_t capmem_stats(capmem_arena_t *arena, capmem_stats_t *out)
{
    if (arena == NULL || out == NULL) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, __func__, "%s is NULL",
                            arena == NULL ? "arena" : "out");
    }
    if (out->size < CAPMEM_STATS_SIZE_MIN) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, __func__,
                            "out->size %llu is below the oldest supported size %llu "
                            "(set it to sizeof(capmem_stats_t))",
                            (unsigned long long)out->size,
                            (unsigned long long)CAPMEM_STATS_SIZE_MIN);
    }
    CAPMEM__ENTER_OR_RETURN(arena);
    const capmem__stats_t *st = &arena->stats;
    const capmem_stats_t snap = {
        .size = sizeof(capmem_stats_t),
        .version = CAPMEM_STATS_VERSION,
        .caps = st->caps,
        .records = st->records,
        .dataspaces = st->dataspaces,
        .aliases = st->aliases,
        .regions = st->regions,
        .bytes_lent = st->lent,
        .faults_read = st->faults[CAPMEM_RM_READ],
        .faults_write = st->faults[CAPMEM_RM_WRITE],
        .faults_exec = st->faults[CAPMEM_RM_EXEC],
        .faults_resolved = st->faults_resolved,
        .upgrades = st->upgrades,
        .retypes = st->retypes,
        .revokes = st->revokes,
        .bytes_zeroed = arena->mem.zeroed,
        .kernel_records = st->kernel_records,
        .banks = st->banks,
        .bank_frames = st->bank_frames,
    };
    CAPMEM__LEAVE(arena);
    /*
     * A caller built against an older header knows a prefix of the struct:
     * write that much and no more. A newer caller learns from size what we
     * filled.
     */
    const uint64_t n = out->size < sizeof(snap) ? out->size : sizeof(snap);
    memcpy(out, &snap, (size_t)n);
    out->size = n;
    return CAPMEM_OK;
}
