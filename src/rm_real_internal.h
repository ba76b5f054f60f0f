/* SPDX-License-Identifier: MIT */
/*
 * Real mode (layer 7, second half), shared by its two files. Never
 * installed. docs/region_map.md ("Real mode") explains it.
 *
 *   rm_real.c         the views and their pieces, resolving a fault (the
 *                     same translate/deliver path as the simulated mode,
 *                     then mmap of the arena's memfd), the invalidation
 *                     hooks the region-map layer calls, the public calls
 *                     but the guard, the checker
 *   rm_real_signal.c  the process-wide registry the signal handler reads
 *                     without a lock, the SIGSEGV handler, the guard
 *
 * A view is a registry slot: the registry is a fixed table of
 * CAPMEM_RM_REAL_MAX_VIEWS slots that live as long as the process, so the
 * handler never follows a pointer to freed memory while it looks an address
 * up. base, size, arena and gen are published with the registry's sequence
 * counter; the rest is written and read with the arena lock held.
 */
#ifndef CAPMEM_RM_REAL_INTERNAL_H
#define CAPMEM_RM_REAL_INTERNAL_H

#include <signal.h>
#include <stdatomic.h>

#include "capmem/rm_real.h"
#include "rm_internal.h"

typedef struct real_view {
    /* Published for the lock-free lookup (rm_real_signal.c). size 0: no view. */
    _Atomic uintptr_t base;
    _Atomic uintptr_t size;
    _Atomic(capmem_arena_t *) arena;
    _Atomic uint32_t gen; /* bumped when the slot is released */
    /* With the arena lock held. */
    bool taken; /* the slot belongs to a view (set and cleared with the registry's mutex) */
    capmem__rm_t *rm;
    uint32_t *table;        /* per page of the map: index + 1 of the piece mapped there, or 0 */
    uint64_t pages;         /* pages of the map */
    uint32_t npieces;       /* pieces mapped in this view */
    unsigned flags;         /* CAPMEM_RM_REAL_READONLY */
    struct real_view *next; /* the arena's views */
} real_view_t;

/* ---- the registry (rm_real_signal.c) ----------------------------------------------- */

/* A free slot, taken (NULL when all are: OUT_OF_CAPS). Not yet visible to the handler. */
real_view_t *capmem__real_slot_take(void);
/* Make @p v visible to the handler at [base, base + size). */
void capmem__real_slot_publish(real_view_t *v, uintptr_t base, uintptr_t size,
                               capmem_arena_t *arena);
/* Hide @p v from the handler and give the slot back (its gen changes). */
void capmem__real_slot_release(real_view_t *v);
/* The registry slot with index @p i, and a view's index. */
real_view_t *capmem__real_slot(unsigned i);
unsigned capmem__real_slot_index(const real_view_t *v);

/* Install the SIGSEGV handler once per process (SYSTEM with errno if sigaction fails). */
capmem_err_t capmem__real_install_handler(void);

/*
 * Test-only: install the library's handler now, as if for the first time,
 * with @p prev as the disposition it hands foreign faults to (a test
 * framework replaces SIGSEGV's handler around every test).
 */
void capmem__real_reinstall(const struct sigaction *prev);

/* ---- views and pieces (rm_real.c) -------------------------------------------------- */

/*
 * Resolve an access at byte @p off of view @p v for @p access, with the
 * arena lock held: the same loop as a simulated access (translate, deliver
 * a fault to the pager, translate again, FAULT_LOOP after
 * CAPMEM_RM_FAULT_RETRIES), then map the piece behind it. @p exact: the
 * access type is known (x86-64's error code, a prefault); otherwise a fault
 * on a page mapped already is promoted READ -> WRITE -> EXEC. OK when the
 * page is mapped for the access (a duplicate fault of another thread is
 * just OK); else the error, recorded with the local address in the detail.
 * @p fault: a real fault (counted), not a prefault.
 */
capmem_err_t capmem__real_resolve(capmem_arena_t *arena, real_view_t *v, uint64_t off,
                                  capmem_rm_access_t access, bool exact, bool fault);

/*
 * Test-only: make the @p nth next view mapping of a kind fail with ENOMEM
 * (0 disarms): 0 a piece's mmap, 1 the PROT_NONE mmap that drops a piece,
 * 2 the mprotect fallback of a drop, 3 host memory (a view's reservation
 * or table, the pool of piece records).
 */
void capmem__real_inject(unsigned kind, uint64_t nth);

#endif
