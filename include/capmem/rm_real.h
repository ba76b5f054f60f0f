/* SPDX-License-Identifier: MIT */
/**
 * @file capmem/rm_real.h
 * @brief Layer 7, second half: real mode. A region map mapped into the
 *        process as a real virtual range, reached with plain pointers; real
 *        page faults go to the same fault handlers as simulated accesses.
 *        Linux only.
 *
 * capmem_rm_real_map() reserves an address range of the map's size
 * (mmap(PROT_NONE)) and registers it. A load, store or instruction fetch in
 * the range raises SIGSEGV; the library's handler, on the faulting thread,
 * takes the arena lock and runs the same translate/deliver path as
 * capmem_rm_read(): a missing region, a write to a read-only region or an
 * instruction fetch from a non-executable one is a fault of the map (or of
 * the innermost nested map) and goes to its fault handler, with the same
 * arguments, state and events. Once the address is backed, the handler maps
 * the whole attached piece behind it with mmap(MAP_FIXED|MAP_SHARED) of the
 * arena's memfd, with the attachment's protection (the AND of the rights
 * along a nested path), and the instruction runs again. Loads and stores
 * then run at the speed of plain memory and are the arena's bytes: every
 * alias, capmem_rm_read() and capmem_dataspace_read() see them at once.
 *
 * The views are a cache of the model: a detach, a dataspace free, an alias
 * revoke, a map close or any change inside a nested map drops the affected
 * range back to PROT_NONE in every view that shows it.
 *
 * **Limits** (docs/region_map.md has them all, with reasons):
 * - The kernel's own accesses (a read(2) into an unmapped page of a view)
 *   fail with EFAULT and never reach a handler: capmem_rm_real_prefault()
 *   the range first.
 * - An unresolved fault outside capmem_rm_real_guard() goes to the previous
 *   SIGSEGV disposition (by default the process ends with SIGSEGV).
 * - A thread that blocks SIGSEGV is killed by the kernel on a fault in a view.
 * - After fork() the child inherits the views and the handler but must not
 *   use the arena; a fault there ends it with SIGSEGV.
 * - Mapped pieces are kept within a budget (capmem_rm_real_set_budget(),
 *   default CAPMEM_RM_REAL_DEFAULT_BUDGET) below the kernel's limit of
 *   mappings; past it the least recently mapped pieces are dropped (they
 *   fault again on the next access; the model is untouched).
 * - At most CAPMEM_RM_REAL_MAX_VIEWS maps are mapped in the process at once.
 */
#ifndef CAPMEM_RM_REAL_H
#define CAPMEM_RM_REAL_H

#include <stddef.h>
#include <stdint.h>

#include "capmem/region_map.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Maps mapped at once in the process (the registry the signal handler reads). */
#define CAPMEM_RM_REAL_MAX_VIEWS 64u

/** Mapped pieces an arena keeps by default; each costs the kernel up to two mappings. */
#define CAPMEM_RM_REAL_DEFAULT_BUDGET 16384u

/** Flags of capmem_rm_real_map(). */
enum {
    /** Map without write access: stores fault and are never resolved (needs only READ). */
    CAPMEM_RM_REAL_READONLY = 1u << 0,
};

/**
 * Map region map @p rm into the process: reserve an address range of the
 * map's size (PROT_NONE, no memory) and register it, so that accesses to it
 * fault into the library. Nothing is mapped until an access faults (or
 * capmem_rm_real_prefault()). The first call installs the SIGSEGV handler
 * (SA_SIGINFO | SA_NODEFER), keeping the previous disposition for the
 * faults that are not the library's. Costs host address space only.
 *
 * @param flags 0 or CAPMEM_RM_REAL_READONLY
 * @param base  receives the address of the map's byte 0
 * @retval CAPMEM_E_INVALID_ARGS arena or base NULL; unknown flags; the map is mapped already
 * @retval CAPMEM_E_INVALID_CAP, CAPMEM_E_WRONG_TYPE the map
 * @retval CAPMEM_E_DENIED       the capability lacks READ, or WRITE without
 *         CAPMEM_RM_REAL_READONLY
 * @retval CAPMEM_E_UNSUPPORTED  the arena has no memfd backing (anonymous fallback), or its
 *         page is smaller than the host's (the detail says which)
 * @retval CAPMEM_E_OUT_OF_CAPS  CAPMEM_RM_REAL_MAX_VIEWS maps are mapped in the process
 * @retval CAPMEM_E_SYSTEM       the reservation or the handler could not be set up (errno in
 *         the detail)
 * @retval CAPMEM_E_HOST_NOMEM   no host memory for the arena's real-mode state
 */
CAPMEM_API capmem_err_t capmem_rm_real_map(capmem_arena_t *arena, capmem_cap_t rm, unsigned flags,
                                           void **base);

/**
 * Unmap a map mapped with capmem_rm_real_map(): its range is unmapped and
 * unregistered (an access there afterwards is an ordinary segmentation
 * fault). Closing the map, or destroying the arena, does the same.
 *
 * @retval CAPMEM_E_INVALID_ARGS arena NULL, or the map is not mapped
 * @retval CAPMEM_E_INVALID_CAP, CAPMEM_E_WRONG_TYPE the map
 */
CAPMEM_API capmem_err_t capmem_rm_real_unmap(capmem_arena_t *arena, capmem_cap_t rm);

/**
 * Resolve and map [@p address, @p address + @p len) (local addresses of the
 * map) for @p access, as faults there would, before a system call uses the
 * range: the kernel's own accesses to an unmapped page of a view fail with
 * EFAULT and never reach a handler. Pieces stay mapped until the model
 * changes or the budget drops them.
 *
 * @retval CAPMEM_E_INVALID_ARGS arena NULL, unknown access type, or the map is not mapped
 * @retval CAPMEM_E_INVALID_CAP, CAPMEM_E_WRONG_TYPE, CAPMEM_E_DENIED the map (READ; WRITE for a
 *         write)
 * @retval CAPMEM_E_DENIED       a write through a view mapped read-only
 * @retval CAPMEM_E_RANGE        the range is beyond the map
 * @retval CAPMEM_E_UNRESOLVED_FAULT, CAPMEM_E_FAULT_LOOP as capmem_rm_touch()
 * @retval CAPMEM_E_SYSTEM       mmap failed (errno in the detail)
 */
CAPMEM_API capmem_err_t capmem_rm_real_prefault(capmem_arena_t *arena, capmem_cap_t rm,
                                                uint64_t address, size_t len,
                                                capmem_rm_access_t access);

/** A function run under capmem_rm_real_guard(). */
typedef void (*capmem_rm_real_fn)(void *ctx);

/**
 * Run @p fn(@p ctx) on the calling thread. If an access inside it faults in
 * a view and the fault is not resolved (no handler, the handler gave up, a
 * fault loop, a store through a read-only view), @p fn is abandoned at the
 * faulting instruction and this call returns the error, with the local
 * address in the detail, instead of the default (the previous SIGSEGV
 * disposition). Guards nest; the innermost one catches. Library calls on
 * @p arena that @p fn made and that the fault interrupted are unwound (the
 * lock is released); calls on other arenas are not, so keep those out of a
 * guard.
 *
 * @retval CAPMEM_E_INVALID_ARGS arena or fn NULL
 * @retval CAPMEM_E_UNRESOLVED_FAULT, CAPMEM_E_FAULT_LOOP a fault inside @p fn (detail: address)
 * @retval CAPMEM_E_DENIED       a store through a view mapped read-only
 * @retval CAPMEM_E_INVALID_CAP  the view went away while its fault was handled
 * @retval CAPMEM_E_SYSTEM       a piece could not be mapped (errno in the detail)
 */
CAPMEM_API capmem_err_t capmem_rm_real_guard(capmem_arena_t *arena, capmem_rm_real_fn fn,
                                             void *ctx);

/**
 * The library's fault handling, for an application that owns SIGSEGV: call
 * it first from your handler (installed with SA_SIGINFO, and SA_NODEFER if
 * pagers may fault in their turn). Returns 1 if the fault was in a view and
 * was resolved (return from your handler: the instruction runs again), 0 if
 * it is not the library's (or was not resolved outside a guard): handle it
 * as your own.
 */
#if defined(__siginfo_t_defined) || defined(_SIGINFO_T_DECLARED)
CAPMEM_API int capmem_rm_real_handle_signal(int sig, siginfo_t *si, void *uctx);
#else
/*
 * The same function where siginfo_t is not declared (this header does not
 * include <signal.h>, to keep kill() and friends out of the including file;
 * include it first to get the typed declaration).
 */
CAPMEM_API int capmem_rm_real_handle_signal(int sig, void *si, void *uctx);
#endif

/**
 * Set how many pieces the arena keeps mapped in its views (default
 * CAPMEM_RM_REAL_DEFAULT_BUDGET). Each piece costs the kernel up to two of
 * the process's memory mappings (vm.max_map_count, often 65,530). Pieces
 * over the new budget are dropped at once, the least recently mapped first.
 *
 * @retval CAPMEM_E_INVALID_ARGS arena NULL or pieces 0
 * @retval CAPMEM_E_HOST_NOMEM   no host memory for the pieces' records
 */
CAPMEM_API capmem_err_t capmem_rm_real_set_budget(capmem_arena_t *arena, uint32_t pieces);

/** Counters of an arena's real mode (capmem_rm_real_stats()). */
typedef struct capmem_rm_real_stats {
    uint32_t views;    /**< maps of the arena mapped now */
    uint32_t budget;   /**< pieces it may keep mapped */
    uint32_t pieces;   /**< pieces mapped now */
    uint64_t faults;   /**< real faults handled (resolved or not) */
    uint64_t spurious; /**< of those, found mapped already (another thread was first) */
    uint64_t mapped;   /**< pieces mapped so far (faults and prefaults) */
    uint64_t dropped;  /**< pieces dropped because the model changed */
    uint64_t evicted;  /**< pieces dropped to stay within the budget */
} capmem_rm_real_stats_t;

/**
 * Read the arena's real-mode counters (all 0 before the first map).
 * @retval CAPMEM_E_INVALID_ARGS arena or out NULL
 */
CAPMEM_API capmem_err_t capmem_rm_real_stats(capmem_arena_t *arena, capmem_rm_real_stats_t *out);

#ifdef __cplusplus
}
#endif

#endif /* CAPMEM_RM_REAL_H */
