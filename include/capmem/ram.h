/* SPDX-License-Identifier: MIT */
/**
 * @file capmem/ram.h
 * @brief Layer 5: the RAM service, its accounts (RAM sessions) and RAM
 *        dataspaces, after Genode's RAM service.
 *
 * **Accounts.** A RAM session is an account. It has a *quota* (its budget)
 * and what it *uses* (bytes of dataspaces charged to it); avail = quota -
 * used. Every account but the root has a *reference account*, the account
 * that opened it, and quota moves only between an account and its reference
 * account, by explicit transfer. The root account holds all RAM given to
 * the service at start.
 *
 * **Donations.** Opening a session costs a donation: quota moves from the
 * client to the service to pay for the service's bookkeeping for that
 * session. The bookkeeping is real: the session's own record, one record
 * per dataspace, alias and region, all carved in 64-byte slots from
 * physical memory reserved for the donation, inside the arena. When the
 * donation is used up the call fails with CAPMEM_E_OUT_OF_METADATA ("Could
 * not allocate metadata") and changes nothing. An upgrade moves more quota
 * into the donation; an *expanding* account upgrades itself in steps when
 * that happens, emitting an "upgrading quota donation" event.
 *
 * **What a donation pays for.** A donation of D bytes reserves D bytes of
 * RAM as one chunk. Its first 64-byte slot is the chunk header; the first
 * chunk of a session also holds the session's own record
 * (CAPMEM_RAM_SESSION_SLOTS slots); every other slot is one record. So the
 * default 64 KiB donation pays for 65536 / 64 - 1 - 3 = 1020 dataspaces
 * (CAPMEM_RAM_DEFAULT_DATASPACES), and each 8 KiB upgrade for 127 more.
 *
 * **Conservation.** At every moment, the sum over a RAM service's accounts
 * of quota + donation, plus the donations of other sessions (region maps),
 * equals the RAM the service was given. capmem_check() verifies it.
 *
 * **Capability quota.** Beside RAM quota each account has a capability
 * quota (Genode's Cap_quota): every capability created for the account's
 * objects (its dataspaces, aliases, sessions it opens) is charged to it;
 * CAPMEM_E_OUT_OF_CAPS when it is used up.
 */
#ifndef CAPMEM_RAM_H
#define CAPMEM_RAM_H

#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>

#include "capmem/alloc.h"
#include "capmem/arena.h"
#include "capmem/cap.h"
#include "capmem/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Bytes of one metadata record slot. */
#define CAPMEM_RAM_RECORD_SIZE 64u
/** Slots the session record of a RAM session takes in its first chunk. */
#define CAPMEM_RAM_SESSION_SLOTS 3u
/** Default donation of a RAM session (Genode: 64 KiB). */
#define CAPMEM_RAM_DEFAULT_DONATION (64u * 1024u)
/** Default upgrade step of an expanding client (Genode: 8 KiB). */
#define CAPMEM_RAM_DEFAULT_UPGRADE (8u * 1024u)
/**
 * Dataspaces the default donation pays for:
 * 65536 / 64 slots - 1 chunk header - 3 session-record slots.
 */
#define CAPMEM_RAM_DEFAULT_DATASPACES                                                              \
    (CAPMEM_RAM_DEFAULT_DONATION / CAPMEM_RAM_RECORD_SIZE - 1u - CAPMEM_RAM_SESSION_SLOTS)
/** Records one upgrade of @p bytes pays for (one slot is its chunk header). */
#define CAPMEM_RAM_RECORDS_PER_UPGRADE(bytes) ((bytes) / CAPMEM_RAM_RECORD_SIZE - 1u)

/** Account flags. */
enum {
    /** React to OUT_OF_METADATA by upgrading the donation from the account's own quota. */
    CAPMEM_RAM_EXPANDING = 1u << 0,
};

/** Attributes of a RAM service. Start from CAPMEM_RAM_ATTR_INIT. */
typedef struct capmem_ram_attr {
    uint64_t root_donation; /**< metadata donation of the root account, from the service's RAM */
    uint64_t root_caps;     /**< capability quota of the root account (0: every free slot) */
    uint32_t flags;         /**< CAPMEM_RAM_* flags of the root account */
    /**
     * Where new physical blocks (dataspaces, donations) go. DEFAULT: the
     * service's own best fit (a range allocator), as before. Any other
     * recipe, built-in or custom (capmem/alloc.h), is made over the span of
     * the pools at page granule and asked for every new block; every answer
     * is checked (inside the span, page-aligned, overlapping no live block)
     * and a wrong one fails the call with CAPMEM_E_POLICY, changing nothing.
     * The service still keeps its exact page map beside the policy (pages
     * kept by first-class aliases), and tells the policy a block is free
     * once none of its pages is in use. Host cost: the policy's own, plus
     * the wrapper's 40 bytes per live block.
     */
    capmem_alloc_policy_t policy;
} capmem_ram_attr_t;

#define CAPMEM_RAM_ATTR_INIT                                                                       \
    {                                                                                              \
        .root_donation = CAPMEM_RAM_DEFAULT_DONATION, .root_caps = 0, .flags = 0, .policy = {      \
            CAPMEM_ALLOC_DEFAULT,                                                                  \
            NULL,                                                                                  \
            NULL                                                                                   \
        }                                                                                          \
    }

/**
 * Create a RAM service over one or more untyped regions and return its root
 * account, which holds all their RAM minus its own donation.
 *
 * Each untyped (RAM, childless, needing WRITE) is retyped whole into one
 * "RAM pool" object, a child of the untyped in the derivation tree, so the
 * seL4 and Genode layers compose: the root account's capability is a child
 * of the first pool. Revoking the first untyped tears the whole service
 * down; revoking another one while the service lives closes the service
 * first (its memory is in use), then releases the pool.
 *
 * Host cost: one service record and one range allocator over the pools'
 * span (about 40 bytes per page of span, lazily committed).
 *
 * @retval CAPMEM_E_INVALID_ARGS arena, untypeds or root NULL; n 0 or above 64; an untyped is
 *         device memory or listed twice; root_donation not a page multiple or below two pages'
 *         worth of records
 * @retval CAPMEM_E_INVALID_CAP, CAPMEM_E_WRONG_TYPE, CAPMEM_E_DENIED an untyped capability
 * @retval CAPMEM_E_REVOKE_FIRST an untyped has children
 * @retval CAPMEM_E_OUT_OF_RAM   the untypeds hold less RAM than the root donation
 * @retval CAPMEM_E_OUT_OF_PHYS  no single untyped can hold the root donation (one chunk)
 * @retval CAPMEM_E_OUT_OF_CAPS, CAPMEM_E_HOST_NOMEM
 * @retval CAPMEM_E_INVALID_ARGS attr->policy is not a recipe capmem_alloc_create_policy() takes
 * @retval CAPMEM_E_POLICY       the placement policy answered the root donation or a hole
 *                               between pools wrongly, or refused a hole; nothing was made
 * @retval other                 a custom policy's create hook failed: its code
 */
CAPMEM_API capmem_err_t capmem_ram_create(capmem_arena_t *arena, const capmem_cap_t *untypeds,
                                          size_t n, const capmem_ram_attr_t *attr,
                                          capmem_cap_t *root);

/**
 * Convenience: a RAM service over all of the arena's RAM boot untypeds
 * (capmem_untyped_boot()), as Genode's core does at start.
 * @retval as capmem_untyped_boot() and capmem_ram_create()
 */
CAPMEM_API capmem_err_t capmem_ram_boot(capmem_arena_t *arena, const capmem_ram_attr_t *attr,
                                        capmem_cap_t *root);

/**
 * Destroy a RAM service, the counterpart of capmem_ram_create() and
 * capmem_ram_boot(): every session of the service is closed (as by closing
 * each account, children first), then each pool is given back to the
 * untyped it was retyped from, which is childless again and can be retyped
 * or given to a new service. Needs the root account's original capability
 * with WRITE. Raises the events of the closes and deletes.
 *
 * @retval CAPMEM_E_INVALID_ARGS arena NULL; @p root is a copy, or not a root account
 * @retval CAPMEM_E_INVALID_CAP, CAPMEM_E_WRONG_TYPE, CAPMEM_E_DENIED (needs WRITE)
 */
CAPMEM_API capmem_err_t capmem_ram_destroy(capmem_arena_t *arena, capmem_cap_t root);

/** Attributes of a new RAM session. Start from CAPMEM_RAM_OPEN_ATTR_INIT. */
typedef struct capmem_ram_open_attr {
    uint64_t donation;     /**< metadata donation paid by the parent; a page multiple */
    uint64_t quota;        /**< initial RAM quota moved from the parent */
    uint64_t caps;         /**< capability quota moved from the parent */
    uint64_t upgrade_step; /**< step of an expanding account; a page multiple */
    uint32_t flags;        /**< CAPMEM_RAM_EXPANDING */
    const char *label;     /**< name for events and dumps (first 23 characters kept) */
} capmem_ram_open_attr_t;

#define CAPMEM_RAM_OPEN_ATTR_INIT                                                                  \
    {                                                                                              \
        .donation = CAPMEM_RAM_DEFAULT_DONATION, .quota = 0, .caps = 1024,                         \
        .upgrade_step = CAPMEM_RAM_DEFAULT_UPGRADE, .flags = 0, .label = NULL                      \
    }

/**
 * Open a RAM session (a child account) whose reference account is
 * @p parent. The parent pays: donation + quota of its RAM quota, and
 * attr->caps + 1 of its capability quota (the one for the new session's own
 * capability). The new account's capability is a child of the parent's.
 *
 * @retval CAPMEM_E_INVALID_ARGS arena or out NULL; donation or upgrade_step not a page
 *         multiple, donation too small for the session record; unknown flags; sums overflow
 * @retval CAPMEM_E_INVALID_CAP, CAPMEM_E_WRONG_TYPE, CAPMEM_E_DENIED (needs WRITE) the parent
 * @retval CAPMEM_E_OUT_OF_RAM   the parent's avail is below donation + quota (detail: needed,
 *         available)
 * @retval CAPMEM_E_OUT_OF_CAPS  the parent's capability quota is below caps + 1
 * @retval CAPMEM_E_OUT_OF_PHYS  no contiguous physical range for the donation
 */
CAPMEM_API capmem_err_t capmem_ram_open(capmem_arena_t *arena, capmem_cap_t parent,
                                        const capmem_ram_open_attr_t *attr, capmem_cap_t *out);

/**
 * Close an account: every session it opened is closed first, every
 * dataspace it holds is freed (first-class aliases it lent keep their pages,
 * and the charge for them passes to the reference account), and all its
 * quota, donation included, returns to its reference account. Closing the
 * root account is refused while it has child sessions (capmem_ram_destroy()
 * closes everything and gives the memory back to the untypeds).
 *
 * @retval CAPMEM_E_INVALID_ARGS arena NULL, or @p account is a copy, not the original
 * @retval CAPMEM_E_INVALID_CAP, CAPMEM_E_WRONG_TYPE, CAPMEM_E_DENIED (needs WRITE)
 * @retval CAPMEM_E_DELETE_FIRST root account with child sessions
 */
CAPMEM_API capmem_err_t capmem_ram_close(capmem_arena_t *arena, capmem_cap_t account);

/**
 * Move @p bytes of RAM quota from @p from to @p to. One must be the other's
 * reference account; any other pair is refused. The giver can give at most
 * its avail (quota it has not used); its donation is never transferable.
 * Needs WRITE on @p from. Emits a TRANSFER event.
 *
 * @retval CAPMEM_E_INVALID_ARGS arena NULL, bytes 0, from == to
 * @retval CAPMEM_E_INVALID_CAP, CAPMEM_E_WRONG_TYPE, CAPMEM_E_DENIED either capability
 * @retval CAPMEM_E_DENIED       the accounts are not account and reference account
 * @retval CAPMEM_E_OUT_OF_RAM   bytes > the giver's avail (detail: needed, available)
 */
CAPMEM_API capmem_err_t capmem_ram_transfer(capmem_arena_t *arena, capmem_cap_t from,
                                            capmem_cap_t to, uint64_t bytes);

/**
 * Move capability quota, with the same rules as capmem_ram_transfer().
 * @retval CAPMEM_E_OUT_OF_CAPS  count > the giver's unused capability quota
 * @retval others as capmem_ram_transfer()
 */
CAPMEM_API capmem_err_t capmem_ram_transfer_caps(capmem_arena_t *arena, capmem_cap_t from,
                                                 capmem_cap_t to, uint64_t count);

/**
 * Upgrade a RAM session's donation by @p bytes, paid from account
 * @p payer's quota. The payer must be the session itself (its own quota:
 * the expanding client's way) or its reference account. The bytes become a
 * new metadata chunk. Emits an UPGRADE event. (A region map's donation is
 * upgraded with capmem_rm_upgrade().)
 *
 * @param session a RAM session (account) capability
 * @retval CAPMEM_E_INVALID_ARGS arena NULL; bytes 0, not a page multiple, or too small for a
 *         chunk (two records)
 * @retval CAPMEM_E_INVALID_CAP, CAPMEM_E_WRONG_TYPE (session or payer is not an account),
 *         CAPMEM_E_DENIED (WRITE on payer)
 * @retval CAPMEM_E_DENIED       payer is neither the session nor its reference account
 * @retval CAPMEM_E_OUT_OF_RAM   the payer's avail is below bytes
 * @retval CAPMEM_E_OUT_OF_PHYS  no contiguous physical range of bytes
 */
CAPMEM_API capmem_err_t capmem_ram_upgrade(capmem_arena_t *arena, capmem_cap_t session,
                                           capmem_cap_t payer, uint64_t bytes);

/**
 * Make an account expanding (or not), with upgrade step @p step bytes (0
 * keeps the current step).
 * @retval CAPMEM_E_INVALID_ARGS arena NULL, step not a page multiple or too small
 * @retval CAPMEM_E_INVALID_CAP, CAPMEM_E_WRONG_TYPE, CAPMEM_E_DENIED (needs WRITE)
 */
CAPMEM_API capmem_err_t capmem_ram_set_expanding(capmem_arena_t *arena, capmem_cap_t account,
                                                 bool on, uint64_t step);

/** A snapshot of an account. */
typedef struct capmem_ram_info {
    capmem_cap_t ref;          /**< reference account (CAPMEM_CAP_NULL for the root) */
    uint64_t quota;            /**< RAM quota (budget), donation not included */
    uint64_t used;             /**< bytes of dataspaces charged, lent pages included */
    uint64_t avail;            /**< quota - used */
    uint64_t lent;             /**< part of used that only first-class aliases keep alive */
    uint64_t donation;         /**< bytes donated for its metadata */
    uint64_t records_used;     /**< metadata slots in use (its own record and chunk headers too) */
    uint64_t records_capacity; /**< metadata slots its donation pays for */
    uint64_t caps_limit;       /**< capability quota */
    uint64_t caps_used;        /**< capabilities charged to it */
    uint64_t upgrade_step;     /**< step of the expanding client */
    uint64_t upgrades;         /**< upgrades done so far */
    bool expanding;            /**< 1 if it upgrades itself on OUT_OF_METADATA */
    bool is_root;              /**< 1 for the service's root account */
    char label[24];            /**< the label given at open ("root" for the root) */
} capmem_ram_info_t;

/**
 * Describe an account.
 * @retval CAPMEM_E_INVALID_ARGS arena or info NULL
 * @retval CAPMEM_E_INVALID_CAP, CAPMEM_E_WRONG_TYPE
 */
CAPMEM_API capmem_err_t capmem_ram_info(capmem_arena_t *arena, capmem_cap_t account,
                                        capmem_ram_info_t *info);

/**
 * Allocate a RAM dataspace of @p size bytes, rounded up to whole pages.
 * The account pays: size of its quota, one metadata record of its donation,
 * one capability of its capability quota. The physical range is reserved at
 * once (no overcommit) and zeroed. The dataspace capability has all rights
 * and is a child of the account's capability. Free it with capmem_ds_free()
 * (capmem/dataspace.h), which refunds the quota, the record and the
 * capability.
 *
 * Checks, in order, each leaving everything unchanged (an expanding
 * account's upgrade is the one step that stays done: it is reported with an
 * UPGRADE event):
 * @retval CAPMEM_E_INVALID_ARGS   arena or ds NULL, size 0 or overflowing when rounded
 * @retval CAPMEM_E_INVALID_CAP, CAPMEM_E_WRONG_TYPE, CAPMEM_E_DENIED (needs WRITE)
 * @retval CAPMEM_E_OUT_OF_RAM     quota: needed and available in the detail
 * @retval CAPMEM_E_OUT_OF_CAPS    capability quota
 * @retval CAPMEM_E_OUT_OF_PHYS    when the donation has no free record, the physical range is
 *         checked before anything is upgraded: no contiguous range of the size (the detail
 *         gives the largest free range as available)
 * @retval CAPMEM_E_OUT_OF_RAM     an expanding account cannot pay both an upgrade step and
 *         the dataspace
 * @retval CAPMEM_E_OUT_OF_METADATA "Could not allocate metadata": the donation has no free
 *         record (needed 64 bytes) and the account is not expanding
 * @retval CAPMEM_E_OUT_OF_PHYS    quota and records are there but no contiguous physical
 *         range: the detail gives the largest free range as available
 */
CAPMEM_API capmem_err_t capmem_ram_alloc(capmem_arena_t *arena, capmem_cap_t account, uint64_t size,
                                         capmem_cap_t *ds);

/**
 * Visitor for capmem_ram_map(): one physical block of the service, in
 * address order. @p used is true for reserved memory (dataspaces, pages kept
 * by first-class aliases, metadata chunks, gaps between pools), false for free.
 * Return 0 to continue, non-zero to stop.
 */
typedef int (*capmem_ram_map_fn)(uint64_t phys, uint64_t size, bool used, void *ctx);

/**
 * Walk the physical map of the RAM service that @p account belongs to: the
 * arena map as the service sees it, block by block. The visitor runs with
 * the arena lock held, in the middle of the walk: a library call on this
 * arena from inside it is refused with CAPMEM_E_REENTRANT.
 *
 * @retval CAPMEM_E_INVALID_ARGS arena or fn NULL
 * @retval CAPMEM_E_INVALID_CAP, CAPMEM_E_WRONG_TYPE the account
 */
CAPMEM_API capmem_err_t capmem_ram_map(capmem_arena_t *arena, capmem_cap_t account,
                                       capmem_ram_map_fn fn, void *ctx);

#ifdef __cplusplus
}
#endif

#endif /* CAPMEM_RAM_H */
