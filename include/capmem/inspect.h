/* SPDX-License-Identifier: MIT */
/**
 * @file capmem/inspect.h
 * @brief Layer 9: events and inspection.
 *
 * Events: every state-changing operation raises an event carrying the
 * handles and numbers involved and a readable message; any number of
 * subscribers (up to CAPMEM_SUBSCRIBERS_MAX) each receive the kinds they
 * asked for. Events are queued during a call and delivered after it
 * (docs/threads.md, docs/inspect.md).
 *
 * Statistics: capmem_stats() returns a versioned snapshot with the
 * current, peak and total of each resource.
 *
 * Dumps: capmem_dump() and capmem_dump_ex() write what the arena holds
 * (capabilities, untyped, accounts and dataspaces, the physical map,
 * region maps) as text, JSON, Graphviz DOT or an SVG picture.
 */
#ifndef CAPMEM_INSPECT_H
#define CAPMEM_INSPECT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "capmem/arena.h"
#include "capmem/cap.h"
#include "capmem/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/**
 * What happened. Each kind names the fields of capmem_event_t it fills;
 * fields a kind does not name are 0. "cap" is the handle the event is
 * about, "other" a second handle, "offset" and "size" a byte range (an
 * arena offset for physical memory, an offset in the dataspace for an
 * attachment). Handles may be stale by the time a callback looks.
 */
typedef enum capmem_event_kind {
    /** a capability was deleted; cap = the old handle */
    CAPMEM_EVENT_CAP_DELETE = 1,
    /** a revoke ran; cap = the capability revoked, a = number of capabilities deleted */
    CAPMEM_EVENT_REVOKE,
    /**
     * untyped retyped; cap = the untyped, other = the first new capability,
     * a = bytes per object, b = count, offset = arena offset of the first
     * object, size = a * b
     */
    CAPMEM_EVENT_RETYPE,
    /** RAM quota moved; cap = from, other = to, a = bytes */
    CAPMEM_EVENT_TRANSFER,
    /**
     * a session was opened with a donation (a RAM session: an account; or a
     * region map); cap = the new session, other = the account that opened and
     * paid it, a = donation bytes, b = the RAM session's quota or the region
     * map's size
     */
    CAPMEM_EVENT_DONATE,
    /** "upgrading quota donation"; cap = the session, a = bytes, b = its donation after */
    CAPMEM_EVENT_UPGRADE,
    /**
     * a region-map fault was delivered (raised before its handler runs);
     * cap = the map, a = address, b = access type (capmem_rm_access_t)
     */
    CAPMEM_EVENT_FAULT,
    /**
     * a session closed (RAM session or region map); cap = the old handle,
     * other = the account its quota returned to (0 for a root account),
     * a = bytes returned
     */
    CAPMEM_EVENT_SESSION_CLOSE,
    /** the queue was full; a = events dropped at this point (every subscriber gets it) */
    CAPMEM_EVENT_LOST,
    /** capability quota moved; cap = from, other = to, a = count */
    CAPMEM_EVENT_TRANSFER_CAPS,
    /**
     * a RAM dataspace was allocated; cap = the dataspace, other = the
     * account that pays, a = bytes, offset = its arena offset, size = bytes
     */
    CAPMEM_EVENT_DS_ALLOC,
    /**
     * a dataspace or alias was destroyed (freed, revoked, or closed with its
     * session); cap = the old handle, a = bytes, b = its kind
     * (capmem_ds_kind_t), offset = its arena offset (0 for a managed
     * dataspace), size = bytes. Pages a first-class alias still shows stay
     * allocated.
     */
    CAPMEM_EVENT_DS_FREE,
    /**
     * an alias was made; cap = the alias, other = the dataspace it shows,
     * payer = the session whose donation holds its record (and whose
     * capability quota its capability), a = offset in that dataspace,
     * b = 1 if writable, +2 if first-class, offset = its arena offset,
     * size = bytes
     */
    CAPMEM_EVENT_ALIAS,
    /**
     * a dataspace was attached to a region map; cap = the map, other = the
     * dataspace, a = address, b = 1 if writable (+2 if executable),
     * offset = offset in the dataspace, size = bytes
     */
    CAPMEM_EVENT_ATTACH,
    /**
     * a region was detached (by capmem_rm_detach, or because its dataspace
     * went away); cap = the map, other = the dataspace (maybe stale),
     * a = address, offset = offset in the dataspace, size = bytes
     */
    CAPMEM_EVENT_DETACH,
    /** a fault's handler reported it resolved; cap = the map, a = address, b = access type */
    CAPMEM_EVENT_FAULT_RESOLVED,
    /** device memory was added; a = device id, offset = physical address, size = bytes */
    CAPMEM_EVENT_DEVICE_ADD,
    /** device memory was removed; a = device id, offset = physical address, size = bytes */
    CAPMEM_EVENT_DEVICE_REMOVE,
    /** a capability was derived (mint); cap = the new one, other = its source, a = rights */
    CAPMEM_EVENT_MINT,
    /**
     * an untyped was made by capmem_untyped_boot() or capmem_untyped_add_device()
     * (a root of the capability tree); cap = it, a = 1 for device memory,
     * b = its size_bits, offset = its arena offset, size = bytes
     */
    CAPMEM_EVENT_UNTYPED_NEW,
    /**
     * a RAM service was made (capmem_ram_create(), capmem_ram_boot()); cap = its
     * root account, other = its first pool, payer = the root account (it pays its
     * own records), a = bytes of RAM of the service, b = the root's donation,
     * offset = the lowest arena offset of its pools, size = the span of its pools
     */
    CAPMEM_EVENT_SERVICE_NEW,
    /**
     * an untyped's placement policy changed (capmem_untyped_set_policy()); cap =
     * the untyped, a = the capmem_untyped_policy_t (CAPMEM_UNTYPED_INHERIT + 1
     * for a user policy)
     */
    CAPMEM_EVENT_SET_POLICY,
    /** capmem_ram_set_expanding(); cap = the account, a = 1 if expanding, b = its upgrade step */
    CAPMEM_EVENT_SET_EXPANDING,
    /** capmem_rm_set_fault_handler(); cap = the map, a = 1 if a handler is installed */
    CAPMEM_EVENT_SET_FAULT_HANDLER,
    /** capmem_cap_create_user(); cap = the new capability, a = its rights */
    CAPMEM_EVENT_USER_NEW,
    /**
     * a map's managed dataspace was made (the first capmem_rm_dataspace());
     * cap = the dataspace, other = the map, payer = the map's client, size = bytes
     */
    CAPMEM_EVENT_MANAGED_NEW,
    /**
     * the kernel heap changed (capmem/kernel.h); a = frames added (boot,
     * growth) or released (end of boot), b = capmem_kernel_heap_op_t,
     * offset = arena offset of the frames, size = bytes
     */
    CAPMEM_EVENT_KERNEL_HEAP,
    /**
     * a space bank was created, destroyed, removed or got new limits
     * (capmem/bank.h); cap = the bank, other = its parent (0 for the prime
     * bank), b = capmem_bank_op_t, a = frames charged to it after the change
     */
    CAPMEM_EVENT_BANK,
    /**
     * objects were allocated from a space bank; cap = the bank, other = the
     * first object's capability, a = frames, b = kernel objects (nodes)
     */
    CAPMEM_EVENT_BANK_ALLOC,
    /**
     * an object of a space bank was freed (by capmem_bank_free, a destroy,
     * or its capability's deletion); cap = a node's old handle (0 for a
     * frame: the DS_FREE event just before names it), a = 1 for a frame,
     * 0 for a node, offset = a frame's arena offset
     */
    CAPMEM_EVENT_BANK_FREE,
    /** one more than the last kind */
    CAPMEM_EVENT_KIND_COUNT
} capmem_event_kind_t;

/** The mask bit of one event kind, for capmem_subscribe() and capmem_trace_start(). */
#define CAPMEM_EVENT_MASK(kind) (1u << (unsigned)(kind))
/** Every kind, including kinds added in later versions. */
#define CAPMEM_EVENT_ALL (~0u)

/**
 * One event; the struct and its message are valid only during the callback.
 * Fields after @c message were added in version 0.5 (@c payer last); see
 * each kind for which fields it fills.
 */
typedef struct capmem_event {
    capmem_event_kind_t kind;
    capmem_cap_t cap;    /**< the capability concerned (may be stale by the time you look) */
    uint64_t a;          /**< kind-specific number */
    uint64_t b;          /**< kind-specific number */
    const char *message; /**< readable text, e.g. "upgrading quota donation for child" */
    capmem_cap_t other;  /**< a second handle (kind-specific), or 0 */
    uint64_t offset;     /**< start of the byte range concerned (kind-specific), or 0 */
    uint64_t size;       /**< length of the byte range concerned (kind-specific), or 0 */
    uint64_t seq;        /**< the event's number on this arena, from 0, in delivery order */
    /** the account or session that pays for what the event made (kind-specific), or 0 */
    capmem_cap_t payer;
} capmem_event_t;

/**
 * Event callback.
 *
 * Events raised during a public call are queued and delivered after the
 * outermost call has committed and released the arena lock, on the thread
 * that made the call and before the call returns, in the order that thread
 * raised them (threads sharing an arena each deliver their own, at the same
 * time: events of different threads are not ordered against each other).
 * The callback therefore sees the state after the call, and may
 * call any library function on the arena, including closing, revoking or
 * destroying the object the event is about, or destroying the arena (which
 * then happens when the callback returns). Events raised by the callback's
 * own calls are delivered after it returns. A call that fails raises no
 * event except those of steps that completed (an expanding client's
 * upgrade). The queue holds 1024 events; beyond that a call's events are
 * counted and reported by one CAPMEM_EVENT_LOST event.
 */
typedef void (*capmem_event_fn)(capmem_arena_t *arena, const capmem_event_t *event, void *ctx);

/** A subscription, as returned by capmem_subscribe(); never 0. */
typedef uint64_t capmem_subscription_t;

/** Most subscriptions an arena has at once, besides capmem_arena_set_event_handler's callback. */
#define CAPMEM_SUBSCRIBERS_MAX 15u

/**
 * Subscribe @p fn to the events of the kinds in @p mask (CAPMEM_EVENT_MASK
 * bits, or CAPMEM_EVENT_ALL). Every subscriber receives the events of its
 * kinds in the order they were raised; for each event, subscribers are
 * called in the order of their places (capmem_arena_set_event_handler's
 * first, then by subscription). CAPMEM_EVENT_LOST goes to every subscriber.
 * A subscriber added while events are being delivered (from a callback)
 * receives the events delivered after the one in progress; see
 * capmem_unsubscribe() for removal. The first subscriber allocates the
 * event queue (about 220 KiB of host memory); an arena nobody subscribes to
 * queues nothing, and an event of a kind no subscriber wants when it is
 * raised is not queued. The caller pays nothing in arena quota.
 * @param out receives the subscription, for capmem_unsubscribe()
 * @retval CAPMEM_E_INVALID_ARGS arena, fn or out NULL, or mask 0
 * @retval CAPMEM_E_OUT_OF_CAPS  CAPMEM_SUBSCRIBERS_MAX subscriptions exist already
 * @retval CAPMEM_E_HOST_NOMEM   the queue could not be allocated
 * @retval CAPMEM_E_UNSUPPORTED  called from a forked child
 * @retval CAPMEM_E_REENTRANT    called from an allocation policy hook or a walk visitor
 */
CAPMEM_API CAPMEM_NODISCARD capmem_err_t capmem_subscribe(capmem_arena_t *arena, unsigned mask,
                                                          capmem_event_fn fn, void *ctx,
                                                          capmem_subscription_t *out);

/**
 * End a subscription. Its callback is not called again once this returns,
 * not even for an event being delivered at that moment (so a callback may
 * unsubscribe itself or another one, and free the context). This holds on
 * the calling thread; another thread delivering its own events on the arena
 * may still be running a call of the callback it had already begun when
 * this returns. Events already
 * queued are kept for the other subscribers. The queue stays allocated
 * until the arena is destroyed.
 * @retval CAPMEM_E_INVALID_ARGS arena NULL
 * @retval CAPMEM_E_NOT_FOUND    @p sub is not a live subscription of this arena
 * @retval CAPMEM_E_UNSUPPORTED  called from a forked child
 * @retval CAPMEM_E_REENTRANT    called from an allocation policy hook or a walk visitor
 */
CAPMEM_API capmem_err_t capmem_unsubscribe(capmem_arena_t *arena, capmem_subscription_t sub);

/**
 * Install (or, with fn NULL, remove) the arena's event callback: a
 * subscriber to every kind (CAPMEM_EVENT_ALL) kept in a place of its own,
 * so a second call replaces the first callback instead of adding one.
 * Events already queued go to the callback installed when they are
 * delivered. The first subscriber allocates the event queue.
 * @retval CAPMEM_E_INVALID_ARGS arena NULL
 * @retval CAPMEM_E_HOST_NOMEM   the queue could not be allocated (nothing changed)
 * @retval CAPMEM_E_UNSUPPORTED  called from a forked child
 * @retval CAPMEM_E_REENTRANT    called from an allocation policy hook or a walk visitor
 */
CAPMEM_API capmem_err_t capmem_arena_set_event_handler(capmem_arena_t *arena, capmem_event_fn fn,
                                                       void *ctx);

/** Version of the trace format written by capmem_trace_start() (docs/inspect.md). */
#define CAPMEM_TRACE_VERSION 1

/**
 * Record the events of the kinds in @p mask to @p out as JSON Lines: a
 * header line (format "capmem-trace", its version, the arena's
 * configuration, the mask, the number of the first event), then one
 * object per event as it is delivered (docs/inspect.md, "Traces"). The
 * recorder is a subscription (it takes one of CAPMEM_SUBSCRIBERS_MAX
 * places) and writes from the delivering thread; @p out stays yours and
 * must stay open until capmem_trace_stop(). The header is written before
 * this returns. Costs host memory only (the event queue, and a few bytes
 * of state made with the first trace).
 * @retval CAPMEM_E_INVALID_ARGS arena or out NULL, mask 0, or a trace is being recorded already
 * @retval CAPMEM_E_OUT_OF_CAPS  CAPMEM_SUBSCRIBERS_MAX subscriptions exist already, or the
 *                               arena has no room for the recorder's state
 * @retval CAPMEM_E_HOST_NOMEM   the queue or the recorder's state could not be allocated
 * @retval CAPMEM_E_UNSUPPORTED  called from a forked child
 * @retval CAPMEM_E_REENTRANT    called from an allocation policy hook or a walk visitor
 */
CAPMEM_API CAPMEM_NODISCARD capmem_err_t capmem_trace_start(capmem_arena_t *arena, FILE *out,
                                                            unsigned mask);

/**
 * Stop recording: no event is written after this returns; the stream is
 * flushed, not closed.
 * @retval CAPMEM_E_INVALID_ARGS arena NULL
 * @retval CAPMEM_E_NOT_FOUND    no trace is being recorded
 * @retval CAPMEM_E_SYSTEM       the stream reported a write error (the trace stops all the same)
 * @retval CAPMEM_E_UNSUPPORTED  called from a forked child
 * @retval CAPMEM_E_REENTRANT    called from an allocation policy hook or a walk visitor
 */
CAPMEM_API capmem_err_t capmem_trace_stop(capmem_arena_t *arena);

/** Name of an event kind, e.g. "upgrade"; "unknown" otherwise. */
CAPMEM_API CAPMEM_NODISCARD const char *capmem_event_kind_name(capmem_event_kind_t kind);

/** One resource in a statistics snapshot. */
typedef struct capmem_stat {
    uint64_t current; /**< how many exist now (bytes, for a byte resource) */
    uint64_t peak;    /**< the most that existed at once since the arena was made */
    uint64_t total;   /**< how many were ever made (bytes ever used, for a byte resource) */
} capmem_stat_t;

/** The layout of capmem_stats_t this header describes (capmem_stats_t.version). */
#define CAPMEM_STATS_VERSION 2u

/**
 * A snapshot of an arena's statistics, as capmem_stats() writes it.
 * Versioned as mimalloc's stats are: the caller sets @c size to
 * sizeof(capmem_stats_t) as its header knows it, and the library writes
 * only that many bytes. Fields are only ever added at the end, so a caller
 * compiled against an older, smaller header gets exactly the fields it
 * knows, and a newer caller learns from @c size and @c version what an
 * older library filled.
 *
 * Resources that exist have a capmem_stat_t; things that happen (faults,
 * upgrades, retypes, revokes, zeroing) only add up, so they have a count.
 * Every number is counted when the operation commits: a call that fails
 * changes none, except for steps that completed before it failed (an
 * expanding client's upgrade, a fault delivered to a map).
 */
typedef struct capmem_stats {
    /**
     * In: sizeof(capmem_stats_t) as the caller knows it (at least
     * CAPMEM_STATS_SIZE_MIN). Out: the bytes written, the smaller of that
     * and the library's own size.
     */
    uint64_t size;
    uint32_t version;   /**< out: CAPMEM_STATS_VERSION of the library */
    uint32_t reserved;  /**< out: 0 */
    capmem_stat_t caps; /**< capabilities (live ones: capmem_cap_count()) */
    /**
     * metadata records of donations in use, counted as capmem_ram_info's
     * and capmem_rm_info's records_used are (chunk headers and session
     * records included): current is their sum over every account and map
     */
    capmem_stat_t records;
    capmem_stat_t dataspaces; /**< RAM dataspaces (not aliases, not managed ones) */
    capmem_stat_t aliases;    /**< aliases, dependent and first-class */
    capmem_stat_t regions;    /**< attachments in region maps */
    capmem_stat_t bytes_lent; /**< bytes lent: kept alive by first-class aliases only */
    uint64_t faults_read;     /**< read faults delivered to a region map */
    uint64_t faults_write;    /**< write faults delivered */
    uint64_t faults_exec;     /**< execute faults delivered */
    uint64_t faults_resolved; /**< faults a handler reported resolved */
    uint64_t upgrades;        /**< donation upgrades (RAM sessions and region maps) */
    uint64_t retypes;         /**< successful capmem_untyped_retype() calls */
    uint64_t revokes;         /**< successful capmem_cap_revoke() calls */
    /** bytes of backing memory cleared for new objects, records and device ranges */
    uint64_t bytes_zeroed;
    /* Version 2 (issue 13): kernel metadata and space banks. */
    capmem_stat_t
        kernel_records;        /**< per-frame records in use (capmem_kernel_info's records_used) */
    capmem_stat_t banks;       /**< sub-banks alive (the prime and the kernel's bank not counted) */
    capmem_stat_t bank_frames; /**< frames handed out by space banks (heap frames not counted) */
} capmem_stats_t;

/** The smallest @c size capmem_stats() accepts: the header and the capabilities. */
#define CAPMEM_STATS_SIZE_MIN (offsetof(capmem_stats_t, caps) + sizeof(capmem_stat_t))

/**
 * Take a snapshot of the arena's statistics. Set @c out->size to
 * sizeof(*out) first; the library writes the first out->size bytes it
 * knows (see capmem_stats_t) and sets out->size to how many that was.
 * Costs nothing in quota; O(1).
 * @retval CAPMEM_E_INVALID_ARGS arena or out NULL, or out->size below CAPMEM_STATS_SIZE_MIN
 *                               (*out unchanged)
 * @retval CAPMEM_E_UNSUPPORTED  called from a forked child
 * @retval CAPMEM_E_REENTRANT    called from an allocation policy hook or a walk visitor
 */
CAPMEM_API CAPMEM_NODISCARD capmem_err_t capmem_stats(capmem_arena_t *arena, capmem_stats_t *out);

/* ---- dumps ------------------------------------------------------------------------- */

/** How capmem_dump() writes (docs/inspect.md, "Dumps", shows each on the same scenarios). */
typedef enum capmem_dump_format {
    /** indented trees and aligned columns, for people (reads like the tour) */
    CAPMEM_DUMP_TEXT,
    /** one JSON object, described by docs/dump.schema.json (version CAPMEM_DUMP_VERSION) */
    CAPMEM_DUMP_JSON,
    /** a Graphviz digraph: the capability tree, the account tree, region-map nesting */
    CAPMEM_DUMP_DOT,
    /**
     * an SVG picture for the classroom: the physical memory as an address
     * strip coloured by owner with a legend, the account tree with quota bars
     * (used, records, lent, free), and each region map as an address strip of
     * its attachments
     */
    CAPMEM_DUMP_SVG
} capmem_dump_format_t;

/** Version of the JSON dump's layout ("version" in the dump, docs/dump.schema.json). */
#define CAPMEM_DUMP_VERSION 1

/** The sections of a dump (capmem_dump_opts_t.sections). A section whose layer is absent is empty.
 */
enum capmem_dump_sections {
    CAPMEM_DUMP_CAPS = 1u << 0,     /**< the capability tree */
    CAPMEM_DUMP_UNTYPED = 1u << 1,  /**< untyped regions: policy, free index or ranges, children */
    CAPMEM_DUMP_RAM = 1u << 2,      /**< accounts and dataspaces */
    CAPMEM_DUMP_PHYS = 1u << 3,     /**< the physical map: every range with its owner */
    CAPMEM_DUMP_RM = 1u << 4,       /**< region maps, their regions and fault state */
    CAPMEM_DUMP_KERNEL = 1u << 5,   /**< kernel heap and space banks, when that layer is booted */
    CAPMEM_DUMP_STATS = 1u << 6,    /**< the capmem_stats() snapshot */
    CAPMEM_DUMP_ALL = (1u << 7) - 1 /**< every section */
};

/**
 * Options of capmem_dump_ex(). Versioned like capmem_stats_t: the caller
 * sets @c size to sizeof(capmem_dump_opts_t) as its header knows it (use
 * CAPMEM_DUMP_OPTS_INIT); fields are only added at the end, and a field
 * the caller's size does not reach takes its default.
 */
typedef struct capmem_dump_opts {
    uint64_t size; /**< sizeof(capmem_dump_opts_t), at least CAPMEM_DUMP_OPTS_SIZE_MIN */
    capmem_dump_format_t format; /**< CAPMEM_DUMP_TEXT, _JSON, _DOT or _SVG */
    uint32_t sections;           /**< CAPMEM_DUMP_* bits; 0 means CAPMEM_DUMP_ALL */
    /**
     * CAPMEM_CAP_NULL: the whole arena. Otherwise a capability whose
     * subtree is dumped: every section shows only objects whose original
     * capability lies in the subtree of @c root in the derivation tree
     * (@c root included). So an account shows itself, the accounts it
     * opened, their dataspaces, aliases and region maps, and the physical
     * ranges they hold (without free space); an untyped shows its region,
     * free and lost space included; a region map shows itself and every map
     * nested in it through managed dataspaces, wherever those live.
     */
    capmem_cap_t root;
} capmem_dump_opts_t;

/** The smallest @c size capmem_dump_ex() accepts: size, format and sections (root takes its
 * default). */
#define CAPMEM_DUMP_OPTS_SIZE_MIN (offsetof(capmem_dump_opts_t, root))

/** The whole arena, every section, as text. */
#define CAPMEM_DUMP_OPTS_INIT                                                                      \
    {                                                                                              \
        .size = sizeof(capmem_dump_opts_t), .format = CAPMEM_DUMP_TEXT,                            \
        .sections = CAPMEM_DUMP_ALL, .root = CAPMEM_CAP_NULL                                       \
    }

/**
 * Write what the arena holds to @p out in @p format: every section
 * (CAPMEM_DUMP_ALL) for every layer present. Same as capmem_dump_ex() with
 * CAPMEM_DUMP_OPTS_INIT and @p format.
 *
 * What each section shows:
 * - capabilities: every live capability once, in pre-order (parents
 *   first): handle, type, the object's own type name (a user type's),
 *   rights, original or copy, generation, parent, a one-line description;
 * - untyped: each untyped region: physical range, policy, free bytes, the
 *   watermark (free index) or the free ranges (range policy), children;
 * - RAM: the account tree (quota, used, avail, lent, donation, records
 *   used and free, capability quota) and every dataspace and alias: kind,
 *   size, physical range, owner, the account charged for its pages and the
 *   session whose donation holds its record;
 * - physical: the RAM and device ranges in address order, nested in the
 *   untypeds and RAM pools that contain them, each with its owner
 *   (dataspace, pages lent, a session's records, frame, kernel object,
 *   free, lost below a watermark, unclaimed) and, for pages, the number of
 *   runs (the original and first-class aliases) that keep them;
 * - region maps: size, donation, the last fault (state), and each region
 *   in address order: address, size, dataspace, offset, rights; a managed
 *   region's inner map is shown nested under it;
 * - kernel: the kernel heap and space banks (when that layer exists);
 * - stats: the capmem_stats() snapshot.
 *
 * The dump is streamed while the model is walked, with the arena lock
 * held: it allocates no host memory per object (a buffer of bounded size
 * sorts the physical map, at most about 1.5 MiB whatever the arena holds)
 * and costs no quota. A million dataspaces dump in seconds (bench/). The
 * stream stays the caller's; it is flushed, not closed.
 *
 * @retval CAPMEM_E_INVALID_ARGS arena or out NULL, or an unknown format
 * @retval CAPMEM_E_HOST_NOMEM   the sorting buffer could not be allocated (nothing written)
 * @retval CAPMEM_E_SYSTEM       the stream reported a write error
 * @retval CAPMEM_E_UNSUPPORTED  called from a forked child
 * @retval CAPMEM_E_REENTRANT    called from an allocation policy hook or a walk visitor
 */
CAPMEM_API capmem_err_t capmem_dump(capmem_arena_t *arena, FILE *out, capmem_dump_format_t format);

/**
 * Write a dump with options: a format, a set of sections, and a subtree
 * (see capmem_dump_opts_t) to limit it to one account, capability, untyped
 * or region map. Otherwise as capmem_dump().
 * @retval CAPMEM_E_INVALID_ARGS arena, out or opts NULL; opts->size below
 *                               CAPMEM_DUMP_OPTS_SIZE_MIN; unknown format or section bits
 * @retval CAPMEM_E_INVALID_CAP  opts->root is stale, forged or of another arena
 * @retval CAPMEM_E_HOST_NOMEM, CAPMEM_E_SYSTEM, CAPMEM_E_UNSUPPORTED, CAPMEM_E_REENTRANT
 *                               as for capmem_dump()
 */
CAPMEM_API CAPMEM_NODISCARD capmem_err_t capmem_dump_ex(capmem_arena_t *arena, FILE *out,
                                                        const capmem_dump_opts_t *opts);

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
