/* SPDX-License-Identifier: MIT */
/**
 * @file capmem/inspect.h
 * @brief Layer 9: events and inspection.
 *
 * Events: one callback per arena receives every quota transfer, upgrade,
 * fault, retype, revoke and delete, with a readable message. Events are
 * queued during a call and delivered after it (docs/threads.md).
 */
#ifndef CAPMEM_INSPECT_H
#define CAPMEM_INSPECT_H

#include <stddef.h>
#include <stdint.h>

#include "capmem/arena.h"
#include "capmem/cap.h"
#include "capmem/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/** What happened. The meaning of an event's a and b depends on the kind. */
typedef enum capmem_event_kind {
    CAPMEM_EVENT_CAP_DELETE = 1, /**< a capability was deleted; cap = the old handle */
    CAPMEM_EVENT_REVOKE,         /**< a revoke ran; a = number of capabilities deleted */
    CAPMEM_EVENT_RETYPE,         /**< untyped retyped; a = bytes per object, b = count */
    CAPMEM_EVENT_TRANSFER,       /**< quota moved; a = bytes */
    CAPMEM_EVENT_DONATE,         /**< a session was opened with a donation; a = bytes */
    CAPMEM_EVENT_UPGRADE,        /**< "upgrading quota donation"; a = bytes */
    CAPMEM_EVENT_FAULT,          /**< a region-map fault; a = address, b = access type */
    CAPMEM_EVENT_SESSION_CLOSE,  /**< a session closed; a = bytes returned */
    CAPMEM_EVENT_LOST,           /**< the queue was full; a = events dropped at this point */
} capmem_event_kind_t;

/** One event; the struct and its message are valid only during the callback. */
typedef struct capmem_event {
    capmem_event_kind_t kind;
    capmem_cap_t cap;    /**< the capability concerned (may be stale by the time you look) */
    uint64_t a;          /**< kind-specific number */
    uint64_t b;          /**< kind-specific number */
    const char *message; /**< readable text, e.g. "upgrading quota donation for child" */
} capmem_event_t;

/**
 * Event callback.
 *
 * Events raised during a public call are queued and delivered after the
 * outermost call has committed and released the arena lock, in the order
 * they were raised, on the thread that made the call (or, if another thread
 * is delivering events on the arena at that moment, by that thread, in
 * order). The callback therefore sees the state after the call, and may
 * call any library function on the arena, including closing, revoking or
 * destroying the object the event is about, or destroying the arena (which
 * then happens when the callback returns). Events raised by the callback's
 * own calls are delivered after it returns. A call that fails raises no
 * event except those of steps that completed (an expanding client's
 * upgrade). The queue holds 1024 events; beyond that a call's events are
 * counted and reported by one CAPMEM_EVENT_LOST event.
 */
typedef void (*capmem_event_fn)(capmem_arena_t *arena, const capmem_event_t *event, void *ctx);

/**
 * Install (or, with fn NULL, remove) the arena's event callback. The first
 * installation allocates the event queue (about 180 KiB of host memory);
 * an arena without a callback queues nothing. Events already queued go to
 * the callback installed when they are delivered.
 * @retval CAPMEM_E_INVALID_ARGS arena NULL
 * @retval CAPMEM_E_HOST_NOMEM   the queue could not be allocated (nothing changed)
 * @retval CAPMEM_E_UNSUPPORTED  called from a forked child
 * @retval CAPMEM_E_REENTRANT    called from an allocation policy hook or a walk visitor
 */
CAPMEM_API capmem_err_t capmem_arena_set_event_handler(capmem_arena_t *arena, capmem_event_fn fn,
                                                       void *ctx);

/** Name of an event kind, e.g. "upgrade"; "unknown" otherwise. */
CAPMEM_API CAPMEM_NODISCARD const char *capmem_event_kind_name(capmem_event_kind_t kind);

/**
 * The invariant checker: walk every layer of the arena and return the first
 * broken invariant as text. Checks the capability space (every parent
 * alive, links consistent, no cycle) and each higher layer present: quota
 * conservation, every allocated physical page owned exactly once (aliases
 * by reference), no overlap between live untyped children or regions,
 * reference counts equal to the references that exist, donations covering
 * their records. Tests call it after every step; it is O(objects).
 *
 * @param why  receives the first violation as text (may be NULL)
 * @retval CAPMEM_OK             every invariant holds; @p why is set to ""
 * @retval CAPMEM_E_INVALID_ARGS arena NULL
 * @retval CAPMEM_E_CORRUPT      an invariant is broken; @p why says which
 * @retval CAPMEM_E_HOST_NOMEM   the checker's scratch memory (host, O(slots)) could not be
 *         allocated; nothing was checked past that point
 */
CAPMEM_API CAPMEM_NODISCARD capmem_err_t capmem_check(capmem_arena_t *arena, char *why, size_t len);

#ifdef __cplusplus
}
#endif

#endif /* CAPMEM_INSPECT_H */
