/* SPDX-License-Identifier: MIT */
/**
 * @file capmem/untyped.h
 * @brief Layer 4: untyped memory and retype, with seL4's rules.
 *
 * An untyped region owns a naturally aligned, power-of-two byte range of
 * the arena (RAM or device memory) and hands out children by *retype*:
 * smaller untyped regions, frames, or opaque kernel objects of 2^size_bits
 * bytes. The children's capabilities are children of the untyped's
 * capability in the derivation tree, so revoking the untyped destroys them.
 *
 * How an untyped places its children is its *policy*, chosen at creation:
 *
 * - WATERMARK (default, seL4 semantics): a free index that only moves up.
 *   Each object is naturally aligned, so the index is first aligned up to
 *   the object size and the gap is lost. Deleting children does not move
 *   the index back; only a retype on an untyped whose children are all
 *   gone starts again at 0 (and the reused memory reads as zeros).
 * - RANGE (the "retype at offset" variant): good fit among the free ranges,
 *   or an explicit offset; deleted children return their memory at once.
 * - BUDDY: power-of-two blocks, split on retype and merged on delete.
 * - a user policy (capmem/alloc.h vtable), for testing allocation policies.
 *
 * Errors follow seL4's decode order (type, size, count, then memory) and
 * its wording: "Untyped Retype: Insufficient memory (1 * 1024 bytes needed,
 * 0 bytes available)." seL4_RangeError is CAPMEM_E_RANGE,
 * seL4_InvalidArgument is CAPMEM_E_INVALID_ARGS, seL4_NotEnoughMemory is
 * CAPMEM_E_NOT_ENOUGH_MEMORY.
 *
 * Who pays: an untyped's memory is the arena's; children take it from their
 * parent. The small records that describe untyped objects, frames and kernel
 * objects are host memory (kernel metadata in seL4 terms); the capability
 * slots come from the arena's table.
 */
#ifndef CAPMEM_UNTYPED_H
#define CAPMEM_UNTYPED_H

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

/** seL4's bounds on untyped sizes: 2^4 to 2^47 bytes. */
#define CAPMEM_UNTYPED_MIN_BITS 4u
#define CAPMEM_UNTYPED_MAX_BITS 47u
/** seL4's CONFIG_RETYPE_FAN_OUT_LIMIT: objects per retype call. */
#define CAPMEM_RETYPE_MAX_COUNT 256u
/** The watermark counts in 16-byte units, as seL4's FreeIndex. */
#define CAPMEM_UNTYPED_INDEX_UNIT 16u

/** @name seL4 object sizes on x86_64 (log2 bytes), to model a real system. */
/** @{ */
#define CAPMEM_SEL4_X86_64_TCB_BITS 11u
#define CAPMEM_SEL4_X86_64_ENDPOINT_BITS 4u
#define CAPMEM_SEL4_X86_64_NOTIFICATION_BITS 5u
#define CAPMEM_SEL4_X86_64_SLOT_BITS 5u /**< one CNode slot; a CNode of 2^r slots is r + 5 */
#define CAPMEM_SEL4_X86_64_PAGE_TABLE_BITS 12u
#define CAPMEM_SEL4_X86_64_PAGE_DIR_BITS 12u
#define CAPMEM_SEL4_X86_64_PDPT_BITS 12u
#define CAPMEM_SEL4_X86_64_PML4_BITS 12u
#define CAPMEM_SEL4_X86_64_ASID_POOL_BITS 12u
#define CAPMEM_SEL4_X86_64_PAGE_BITS 12u
#define CAPMEM_SEL4_X86_64_LARGE_PAGE_BITS 21u
#define CAPMEM_SEL4_X86_64_HUGE_PAGE_BITS 30u
/** @} */

/** How an untyped places its children. */
typedef enum capmem_untyped_policy {
    CAPMEM_UNTYPED_WATERMARK = 0, /**< seL4's free index (default) */
    CAPMEM_UNTYPED_RANGE,         /**< good fit or explicit offset; frees at once */
    CAPMEM_UNTYPED_BUDDY,         /**< power-of-two split and merge */
    CAPMEM_UNTYPED_INHERIT,       /**< (child policy only) the parent's built-in policy */
} capmem_untyped_policy_t;

/** Name of a policy: "watermark", "range", "buddy", "inherit", or "user". */
CAPMEM_API CAPMEM_NODISCARD const char *capmem_untyped_policy_name(capmem_untyped_policy_t policy);

/** "Anywhere": let the policy choose the offset. */
#define CAPMEM_RETYPE_ANYWHERE UINT64_MAX

/** What a retype creates. Start from CAPMEM_RETYPE_ATTR_INIT. */
typedef struct capmem_retype_attr {
    capmem_obj_type_t type; /**< CAPMEM_OBJ_UNTYPED, CAPMEM_OBJ_FRAME or CAPMEM_OBJ_KOBJ */
    unsigned size_bits;     /**< each object is 2^size_bits bytes */
    uint32_t count;         /**< 1 .. CAPMEM_RETYPE_MAX_COUNT objects, placed contiguously */
    /**
     * Offset of the first object inside the untyped, or CAPMEM_RETYPE_ANYWHERE.
     * An explicit offset needs a policy with exact placement (range, buddy,
     * or a user policy); watermark refuses it.
     */
    uint64_t offset;
    /** Policy of untyped children; WATERMARK unless asked otherwise. */
    capmem_untyped_policy_t child_policy;
} capmem_retype_attr_t;

/** One 4 KiB frame, anywhere. */
#define CAPMEM_RETYPE_ATTR_INIT                                                                    \
    {                                                                                              \
        .type = CAPMEM_OBJ_FRAME, .size_bits = 12, .count = 1, .offset = CAPMEM_RETYPE_ANYWHERE,   \
        .child_policy = CAPMEM_UNTYPED_WATERMARK                                                   \
    }

/** Description of an untyped region. */
typedef struct capmem_untyped_info {
    capmem_cap_t cap;
    uint64_t phys;      /**< physical address of its first byte */
    uint64_t offset;    /**< backing offset of its first byte */
    unsigned size_bits; /**< its size is 2^size_bits bytes */
    bool device;        /**< 1 for device memory (never zeroed; frames and untyped only) */
    const char *policy; /**< policy name */
    /**
     * Bytes a retype through this capability can use: all of them when it
     * would reset the untyped (no children, no copy, no capability derived
     * from this one), 0 while the untyped is full, else what its policy has
     * left.
     */
    uint64_t free_bytes;
    uint64_t largest_free; /**< largest single block a retype can use, counted the same way */
    /** Watermark policy: bytes below the free index, until a retype resets it; else 0. */
    uint64_t watermark;
    uint64_t children; /**< live objects retyped from it */
    bool full;         /**< a copy of it (capmem_untyped_copy()) is alive: it retypes nothing */
} capmem_untyped_info_t;

/**
 * The arena's boot untypeds, as seL4's boot info lists them: RAM cut into
 * the largest naturally aligned power-of-two regions (by physical address,
 * at most 2^47 bytes each), followed by one device untyped per registered
 * device range (split the same way). Created on the first call, then the
 * same list is returned (the handles go stale if you delete them).
 *
 * @param out    receives up to @p max descriptions (may be NULL when max is 0)
 * @param count  receives the number of boot untypeds
 * @retval CAPMEM_E_INVALID_ARGS arena or count NULL, or out NULL with max > 0
 * @retval CAPMEM_E_OUT_OF_CAPS  the capability table is full
 * @retval CAPMEM_E_HOST_NOMEM   host memory for the records ran out
 */
CAPMEM_API capmem_err_t capmem_untyped_boot(capmem_arena_t *arena, capmem_untyped_info_t *out,
                                            size_t max, size_t *count);

/**
 * Create device untypeds for a device range registered after boot
 * (hot-plug). While they live, the range cannot be removed.
 *
 * @retval CAPMEM_E_INVALID_ARGS arena or count NULL, or out NULL with max > 0
 * @retval CAPMEM_E_NOT_FOUND    no device range with this id
 * @retval CAPMEM_E_DELETE_FIRST the range is covered by untypeds already
 * @retval CAPMEM_E_OUT_OF_CAPS, CAPMEM_E_HOST_NOMEM as for capmem_untyped_boot()
 */
CAPMEM_API capmem_err_t capmem_untyped_add_device(capmem_arena_t *arena, uint32_t device_id,
                                                  capmem_untyped_info_t *out, size_t max,
                                                  size_t *count);

/**
 * Change the placement policy of an untyped that has no children: a
 * built-in one, or (with @p user not NULL) a user policy from capmem/alloc.h
 * whose offsets are relative to the untyped's first byte. The untyped takes
 * ownership of @p user and destroys it with itself.
 *
 * @retval CAPMEM_E_INVALID_ARGS arena NULL; policy INHERIT or unknown; user's span does not
 *         cover [0, 2^size_bits)
 * @retval CAPMEM_E_INVALID_CAP, CAPMEM_E_WRONG_TYPE the capability
 * @retval CAPMEM_E_DENIED       the capability lacks WRITE
 * @retval CAPMEM_E_REVOKE_FIRST the untyped has children or a live copy, or a capability was
 *         derived from this one
 * @retval CAPMEM_E_HOST_NOMEM   the policy's metadata could not be allocated
 */
CAPMEM_API capmem_err_t capmem_untyped_set_policy(capmem_arena_t *arena, capmem_cap_t untyped,
                                                  capmem_untyped_policy_t policy,
                                                  capmem_alloc_t *user);

/**
 * Retype: create attr->count objects of 2^attr->size_bits bytes from the
 * untyped and store their capabilities in dest[0 .. count-1]. Needs WRITE on
 * the untyped. The new capabilities have all rights and are children of
 * @p untyped. If the untyped has no children left (and no copy, and no
 * capability derived from @p untyped), a watermark untyped starts again at
 * 0 (seL4's reset). New objects in RAM read as zeros; device memory is
 * never zeroed.
 *
 * Checks run in seL4's order and nothing changes on failure:
 * @retval CAPMEM_E_INVALID_ARGS arena, attr or dest NULL; type not retypable; device
 *         untyped asked for a kernel object; untyped size_bits below 4; explicit offset
 *         misaligned, outside the untyped, or given to a watermark untyped; dest_len < count
 * @retval CAPMEM_E_RANGE        size_bits above 47 (or below the page size for frames);
 *         count 0 or above 256 (detail: the bounds)
 * @retval CAPMEM_E_INVALID_CAP, CAPMEM_E_WRONG_TYPE, CAPMEM_E_DENIED  the capability
 * @retval CAPMEM_E_NOT_ENOUGH_MEMORY "Untyped Retype: Insufficient memory (N * S bytes
 *         needed, A bytes available)." with needed and available in the detail
 * @retval CAPMEM_E_OUT_OF_CAPS  not enough free capability slots
 * @retval CAPMEM_E_HOST_NOMEM   host memory for the records ran out
 */
CAPMEM_API capmem_err_t capmem_untyped_retype(capmem_arena_t *arena, capmem_cap_t untyped,
                                              const capmem_retype_attr_t *attr, capmem_cap_t *dest,
                                              size_t dest_len);

/**
 * seL4's copy of an untyped capability: refused while the untyped has
 * children (REVOKE_FIRST); otherwise the copy becomes a child of the
 * original's capability, can retype the whole region, and the original is
 * *full* for as long as the copy lives: info says full with 0 bytes free,
 * and a retype through any capability to it fails. Once the copy is
 * deleted the original is childless again and its next retype starts at 0.
 * The copy has the original's built-in policy (watermark for a user policy).
 *
 * @retval CAPMEM_E_INVALID_ARGS arena or out NULL
 * @retval CAPMEM_E_INVALID_CAP, CAPMEM_E_WRONG_TYPE, CAPMEM_E_DENIED (needs GRANT)
 * @retval CAPMEM_E_REVOKE_FIRST the untyped has children or a live copy, or a capability was
 *         derived from this one
 * @retval CAPMEM_E_OUT_OF_CAPS, CAPMEM_E_HOST_NOMEM
 */
CAPMEM_API capmem_err_t capmem_untyped_copy(capmem_arena_t *arena, capmem_cap_t untyped,
                                            capmem_cap_t *out);

/**
 * Describe an untyped; the free numbers are what a retype through @p untyped
 * can use (see ::capmem_untyped_info_t).
 * @retval CAPMEM_E_INVALID_ARGS arena or info NULL
 * @retval CAPMEM_E_INVALID_CAP, CAPMEM_E_WRONG_TYPE the capability
 */
CAPMEM_API capmem_err_t capmem_untyped_info(capmem_arena_t *arena, capmem_cap_t untyped,
                                            capmem_untyped_info_t *info);

/** Description of a frame or kernel object retyped from untyped. */
typedef struct capmem_object_info {
    capmem_obj_type_t type;
    uint64_t phys;      /**< physical address */
    uint64_t offset;    /**< backing offset */
    unsigned size_bits; /**< size is 2^size_bits bytes */
    bool device;        /**< 1 if it lies in device memory */
} capmem_object_info_t;

/**
 * Describe a frame or kernel object.
 * @retval CAPMEM_E_INVALID_ARGS arena or info NULL
 * @retval CAPMEM_E_INVALID_CAP  stale or forged
 * @retval CAPMEM_E_WRONG_TYPE   neither a frame nor a kernel object
 */
CAPMEM_API capmem_err_t capmem_object_info(capmem_arena_t *arena, capmem_cap_t obj,
                                           capmem_object_info_t *info);

/**
 * Read @p len bytes at @p offset of a frame (needs READ).
 * @retval CAPMEM_E_INVALID_ARGS arena or buf NULL; offset + len beyond the frame or overflowing
 * @retval CAPMEM_E_INVALID_CAP, CAPMEM_E_WRONG_TYPE (not a frame), CAPMEM_E_DENIED
 */
CAPMEM_API capmem_err_t capmem_frame_read(capmem_arena_t *arena, capmem_cap_t frame,
                                          uint64_t offset, void *buf, size_t len);

/**
 * Write @p len bytes at @p offset of a frame (needs WRITE).
 * @retval as capmem_frame_read()
 */
CAPMEM_API capmem_err_t capmem_frame_write(capmem_arena_t *arena, capmem_cap_t frame,
                                           uint64_t offset, const void *buf, size_t len);

#ifdef __cplusplus
}
#endif

#endif /* CAPMEM_UNTYPED_H */
