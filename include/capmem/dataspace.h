/* SPDX-License-Identifier: MIT */
/**
 * @file capmem/dataspace.h
 * @brief Layer 6: dataspaces, capabilities to ranges of memory, and their
 *        aliases.
 *
 * A dataspace is RAM (from capmem_ram_alloc()), an alias of a subrange of
 * another dataspace, or a managed dataspace (a region map used as memory,
 * capmem/region_map.h). Reading and writing a dataspace goes to the arena,
 * so data written through one alias is seen through every other.
 *
 * **Aliases.** capmem_ds_alias() makes a new dataspace for a
 * page-aligned subrange, optionally read-only: a read-only alias turns RAM
 * into ROM, and no path through the library writes through it. Its record
 * is paid from the creating session's donation.
 *
 * **Alias lifetime** is chosen per alias, settling the question Genode left
 * open:
 * - DEPENDENT: the alias is derived from the original in the capability
 *   tree. Freeing (or revoking) the original revokes every dependent alias
 *   and detaches it everywhere. The lender can always reclaim its memory.
 * - FIRST_CLASS: the alias keeps the pages it covers alive. Freeing the
 *   original releases only the pages no first-class alias covers.
 *
 * **Who pays for pages kept alive by first-class aliases:** the lender pays
 * until the last borrower lets go. Pages stay charged to the account that
 * allocated them; freeing the original refunds only the pages actually
 * released, and the rest stays charged to that account as *lent* memory
 * until the last alias covering them is freed, then is refunded. Closing the
 * lender passes its outstanding lent charge to its reference account (and
 * so on up), so the quota sum always equals the RAM and every page in use is
 * charged to exactly one account. The trade-off: a borrower holding a
 * first-class alias pins the lender's quota.
 *
 * Worked example: A allocates 16 KiB (A.used = 16 KiB) and B takes a
 * first-class alias of its last 8 KiB. A frees the original: 8 KiB are
 * released (A.used = 8 KiB, A.lent = 8 KiB). B frees the alias: the last
 * 8 KiB are released (A.used = 0). Had A closed first, A's 8 KiB lent charge
 * would have moved to A's reference account, refunded there when B lets go.
 *
 * Reference counts are kept per run of pages, not per byte: each
 * first-class alias record carries one run, and a page's count is the number
 * of live runs (the original's included) covering it.
 */
#ifndef CAPMEM_DATASPACE_H
#define CAPMEM_DATASPACE_H

#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>

#include "capmem/arena.h"
#include "capmem/cap.h"
#include "capmem/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/** What a dataspace is. */
typedef enum capmem_ds_kind {
    CAPMEM_DS_RAM = 1,               /**< RAM from a RAM session */
    CAPMEM_DS_ALIAS_DEPENDENT = 2,   /**< alias that dies with its original */
    CAPMEM_DS_ALIAS_FIRST_CLASS = 3, /**< alias that keeps its pages alive */
    CAPMEM_DS_MANAGED = 4,           /**< a region map used as a dataspace */
    CAPMEM_DS_BANK_FRAME = 5,        /**< a frame from a space bank (capmem/bank.h) */
} capmem_ds_kind_t;

/** Name of a kind: "RAM", "dependent alias", "first-class alias", "managed". */
CAPMEM_API CAPMEM_NODISCARD const char *capmem_ds_kind_name(capmem_ds_kind_t kind);

/** Lifetime policy of an alias. */
typedef enum capmem_alias_lifetime {
    CAPMEM_ALIAS_DEPENDENT = 0,   /**< dies with the original (default) */
    CAPMEM_ALIAS_FIRST_CLASS = 1, /**< keeps its pages alive */
} capmem_alias_lifetime_t;

/** Attributes of a new alias. Start from CAPMEM_ALIAS_ATTR_INIT. */
typedef struct capmem_alias_attr {
    bool writable;                    /**< 0 makes a read-only alias (ROM) */
    uint64_t offset;                  /**< page-aligned offset into the source */
    uint64_t size;                    /**< page-aligned size; 0 means "to the end" */
    capmem_alias_lifetime_t lifetime; /**< DEPENDENT or FIRST_CLASS */
} capmem_alias_attr_t;

#define CAPMEM_ALIAS_ATTR_INIT                                                                     \
    {                                                                                              \
        .writable = 1, .offset = 0, .size = 0, .lifetime = CAPMEM_ALIAS_DEPENDENT                  \
    }

/** A snapshot of a dataspace. */
typedef struct capmem_ds_info {
    capmem_ds_kind_t kind;
    uint64_t size;   /**< bytes */
    uint64_t phys;   /**< physical address of byte 0 (0 for managed dataspaces) */
    uint64_t offset; /**< backing offset of byte 0 (0 for managed dataspaces) */
    bool writable;   /**< 1 if writes are possible through this capability */
    unsigned rights; /**< the capability's rights */
} capmem_ds_info_t;

/**
 * Describe a dataspace.
 * @retval CAPMEM_E_INVALID_ARGS arena or info NULL
 * @retval CAPMEM_E_INVALID_CAP, CAPMEM_E_WRONG_TYPE
 */
CAPMEM_API capmem_err_t capmem_ds_info(capmem_arena_t *arena, capmem_cap_t ds,
                                       capmem_ds_info_t *info);

/**
 * Read @p len bytes at @p offset (needs READ). Managed dataspaces are read
 * through their region map (faults may be raised, see capmem/region_map.h).
 * @retval CAPMEM_E_INVALID_ARGS arena or buf NULL; offset + len beyond the dataspace or
 *         overflowing
 * @retval CAPMEM_E_INVALID_CAP, CAPMEM_E_WRONG_TYPE, CAPMEM_E_DENIED
 * @retval CAPMEM_E_UNRESOLVED_FAULT (managed only) an access faulted and was not resolved
 */
CAPMEM_API capmem_err_t capmem_ds_read(capmem_arena_t *arena, capmem_cap_t ds, uint64_t offset,
                                       void *buf, size_t len);

/**
 * Write @p len bytes at @p offset. Needs WRITE on the capability and a
 * writable dataspace: a read-only alias refuses every write with DENIED.
 * @retval as capmem_ds_read(); CAPMEM_E_DENIED for read-only dataspaces
 */
CAPMEM_API capmem_err_t capmem_ds_write(capmem_arena_t *arena, capmem_cap_t ds, uint64_t offset,
                                        const void *buf, size_t len);

/**
 * Make an alias of a page-aligned subrange of a RAM dataspace or of another
 * alias. writable can only stay or go down. The record is paid from
 * @p session's donation (OUT_OF_METADATA when used up; an expanding session
 * upgrades) and the capability from its capability quota. A dependent
 * alias's capability is a child of @p ds; a first-class alias's is a child
 * of @p session and it lends from the RAM dataspace at the root of @p ds.
 *
 * @retval CAPMEM_E_INVALID_ARGS arena, attr or out NULL; offset or size misaligned, zero
 *         (after "to the end"), overflowing or beyond the source; unknown lifetime
 * @retval CAPMEM_E_INVALID_CAP, CAPMEM_E_WRONG_TYPE session or ds (a managed dataspace cannot
 *         be aliased: WRONG_TYPE)
 * @retval CAPMEM_E_DENIED       writable asked of a read-only source or capability; ds lacks
 *         GRANT; session lacks WRITE
 * @retval CAPMEM_E_OUT_OF_CAPS, CAPMEM_E_OUT_OF_METADATA, CAPMEM_E_OUT_OF_RAM
 */
CAPMEM_API capmem_err_t capmem_ds_alias(capmem_arena_t *arena, capmem_cap_t session,
                                        capmem_cap_t ds, const capmem_alias_attr_t *attr,
                                        capmem_cap_t *out);

/**
 * Free a dataspace: the one way to free a RAM dataspace (from
 * capmem_ram_alloc()) or an alias. Copies and dependent aliases are
 * revoked, the dataspace is detached from every region map, and its quota,
 * record and capability are refunded. Pages a first-class alias still
 * covers stay allocated, charged to the RAM dataspace's account as lent
 * memory; freeing a first-class alias releases the pages no one else
 * covers. Needs the original capability (no particular right:
 * a read-only alias can be freed by whoever made it); copies are refused.
 *
 * @retval CAPMEM_E_INVALID_ARGS arena NULL, or a copy instead of the original
 * @retval CAPMEM_E_INVALID_CAP, CAPMEM_E_WRONG_TYPE (managed dataspaces go with their map;
 *         a space bank's frames go through their bank)
 * @retval CAPMEM_E_DELETE_FIRST the dataspace holds a space-bank service's records (an
 *         upgrade's, or the service's own while the kernel heap has borrowed frames from
 *         it): it goes with the service (capmem/bank.h)
 */
CAPMEM_API capmem_err_t capmem_ds_free(capmem_arena_t *arena, capmem_cap_t ds);

#ifdef __cplusplus
}
#endif

#endif /* CAPMEM_DATASPACE_H */
