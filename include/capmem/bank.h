/* SPDX-License-Identifier: MIT */
/**
 * @file capmem/bank.h
 * @brief Layer 8 (second half): space banks, after Coyotos, EROS and KeyKOS.
 *
 * A space bank hands out frames and kernel objects ("nodes", KeyKOS' name)
 * and must know, without surprises, how many it may still give. Banks form
 * a tree under the *prime bank*. Each bank has a limit and a usage per
 * object type; its usage is its own objects plus its sub-banks' usage.
 * An allocation is charged to the bank and, in parallel, to every ancestor
 * up to the prime bank, so the limit that binds is the most constraining
 * one on the way up: if any would be exceeded nothing is charged and the
 * call fails with CAPMEM_E_LIMIT_REACHED (EROS' LimitReached, distinct
 * from running out of memory, CAPMEM_E_OUT_OF_PHYS).
 *
 * **The service.** A bank service is opened on an account of the RAM
 * service (capmem/ram.h): it takes one RAM dataspace of the account, of
 * donation + frames pages. The donation holds every bank, node and frame
 * record, 64 bytes each, as for every other service; the frames are what
 * the prime bank may hand out (its frame limit). When the kernel is booted
 * (capmem/kernel.h) the frames it releases at the end of boot join the
 * prime bank, whose limit only grows, and with the hybrid strategy the
 * kernel's own bank (a child of the prime bank) lends the kernel heap its
 * frames.
 *
 * **Objects.** A frame is a dataspace of one page (CAPMEM_DS_BANK_FRAME):
 * it can be read, written and attached to region maps like any other, but
 * only its bank frees it (capmem_ds_free() refuses it, and it cannot be
 * aliased). A node is an object of type CAPMEM_OBJ_BANK_NODE whose storage
 * is its 64-byte record. Deleting an object's original capability frees it
 * as its bank would.
 *
 * **Rights.** A bank capability's rights are its restrictions turned
 * around: CAPMEM_BANK_RIGHT_QUERY (READ) to read limits and usage,
 * CAPMEM_BANK_RIGHT_LIMITS (WRITE) to change them, GRANT to derive, and
 * the type rights ALLOC, FREE, DESTROY and REMOVE. Restricting a
 * capability (capmem_bank_restrict(), or capmem_cap_mint()) derives one
 * with fewer rights; noRemove keeps a subsystem from escaping destruction
 * by pushing its storage up to the parent.
 */
#ifndef CAPMEM_BANK_H
#define CAPMEM_BANK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "capmem/arena.h"
#include "capmem/cap.h"
#include "capmem/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Object types a bank hands out, each with its own limit. */
typedef enum capmem_bank_type {
    CAPMEM_BANK_FRAME = 0, /**< a page of memory, as a dataspace */
    CAPMEM_BANK_NODE = 1,  /**< a kernel object (KeyKOS' node), one 64-byte record */
} capmem_bank_type_t;

#define CAPMEM_BANK_TYPES 2
/** A limit that never binds. */
#define CAPMEM_BANK_UNLIMITED UINT64_MAX
/** Most objects one alloc or free takes, as in Coyotos' SpaceBank. */
#define CAPMEM_BANK_MAX_OBJECTS 3
/** Slots of the service's record in its first chunk (the prime bank is one of them). */
#define CAPMEM_BANK_SERVICE_SLOTS 5u

/** Rights of bank capabilities (their restrictions, turned around). */
enum capmem_bank_rights {
    CAPMEM_BANK_RIGHT_QUERY = CAPMEM_RIGHT_READ,   /**< read limits and usage */
    CAPMEM_BANK_RIGHT_LIMITS = CAPMEM_RIGHT_WRITE, /**< change limits */
    CAPMEM_BANK_RIGHT_ALLOC = 1u << 3,             /**< allocate objects, create sub-banks */
    CAPMEM_BANK_RIGHT_FREE = 1u << 4,              /**< free objects */
    CAPMEM_BANK_RIGHT_DESTROY = 1u << 5,           /**< destroy the bank */
    CAPMEM_BANK_RIGHT_REMOVE = 1u << 6,            /**< remove the bank (objects to the parent) */
    CAPMEM_BANK_RIGHTS_ALL = 0x7fu,
};

/** Restrictions for capmem_bank_restrict(), by Coyotos' names. */
enum capmem_bank_restriction {
    CAPMEM_BANK_NO_ALLOC = CAPMEM_BANK_RIGHT_ALLOC,
    CAPMEM_BANK_NO_FREE = CAPMEM_BANK_RIGHT_FREE,
    CAPMEM_BANK_NO_DESTROY = CAPMEM_BANK_RIGHT_DESTROY,
    CAPMEM_BANK_NO_QUERY_LIMITS = CAPMEM_BANK_RIGHT_QUERY,
    CAPMEM_BANK_NO_CHANGE_LIMITS = CAPMEM_BANK_RIGHT_LIMITS,
    CAPMEM_BANK_NO_REMOVE = CAPMEM_BANK_RIGHT_REMOVE,
};

/** What a CAPMEM_EVENT_BANK event reports (its b field). */
typedef enum capmem_bank_op {
    CAPMEM_BANK_OP_SERVICE = 1, /**< a service and its prime bank were made */
    CAPMEM_BANK_OP_CREATE = 2,  /**< a sub-bank was made */
    CAPMEM_BANK_OP_DESTROY = 3, /**< a bank was destroyed with its objects */
    CAPMEM_BANK_OP_REMOVE = 4,  /**< a bank was removed, its objects to its parent */
    CAPMEM_BANK_OP_LIMITS = 5,  /**< a bank's limits changed */
    CAPMEM_BANK_OP_GROW = 6, /**< the prime bank's frame limit grew (the kernel released frames) */
} capmem_bank_op_t;

/** Attributes of a bank service. Start from CAPMEM_BANK_SERVICE_ATTR_INIT. */
typedef struct capmem_bank_service_attr {
    uint64_t donation; /**< bytes for the records (a page multiple) */
    uint64_t frames;   /**< frames the prime bank may hand out; 0: all the account can pay */
} capmem_bank_service_attr_t;

#define CAPMEM_BANK_SERVICE_ATTR_INIT                                                              \
    {                                                                                              \
        .donation = 64u * 1024u, .frames = 0                                                       \
    }

/**
 * Open a bank service on @p account and return its prime bank. The account
 * pays one RAM dataspace of donation + frames pages, one record of its own
 * donation, and two capabilities (the dataspace's and the prime bank's;
 * a hybrid kernel's bank has none: no one may destroy it, and its record
 * is one node charged to the prime bank). The prime bank's frame
 * limit is @p frames (plus frames the kernel released at its end of boot),
 * its node limit is unlimited (records run out first); it cannot be
 * changed. One service per arena.
 *
 * @retval CAPMEM_E_INVALID_ARGS arena, attr or prime NULL; donation not a page multiple or too
 *         small for the service record and one more; sizes overflow
 * @retval CAPMEM_E_INVALID_CAP, CAPMEM_E_WRONG_TYPE, CAPMEM_E_DENIED (needs WRITE) the account
 * @retval CAPMEM_E_DENIED       a bank service exists on this arena already
 * @retval CAPMEM_E_OUT_OF_RAM   the account cannot pay donation + frames (detail: bytes)
 * @retval CAPMEM_E_OUT_OF_CAPS  its capability quota
 * @retval CAPMEM_E_OUT_OF_METADATA its own donation has no record for the dataspace
 * @retval CAPMEM_E_OUT_OF_PHYS  no contiguous physical range of donation + frames pages
 * @retval CAPMEM_E_HOST_NOMEM
 */
CAPMEM_API capmem_err_t capmem_bank_service_create(capmem_arena_t *arena, capmem_cap_t account,
                                                   const capmem_bank_service_attr_t *attr,
                                                   capmem_cap_t *prime);

/**
 * Close a bank service: every bank is destroyed with its objects, and the
 * dataspace returns to the account. Needs the prime bank's original.
 *
 * @retval CAPMEM_E_INVALID_ARGS arena NULL, or @p prime is a copy or not a prime bank
 * @retval CAPMEM_E_INVALID_CAP, CAPMEM_E_WRONG_TYPE, CAPMEM_E_DENIED (needs DESTROY)
 * @retval CAPMEM_E_DELETE_FIRST the kernel heap has borrowed frames of it (never returned)
 */
CAPMEM_API capmem_err_t capmem_bank_service_destroy(capmem_arena_t *arena, capmem_cap_t prime);

/** Limits of a new bank, or for capmem_bank_set_limits(). */
typedef struct capmem_bank_limits {
    uint64_t limit[CAPMEM_BANK_TYPES]; /**< per capmem_bank_type_t; CAPMEM_BANK_UNLIMITED */
} capmem_bank_limits_t;

/**
 * Create a sub-bank of @p parent. Its record is one node charged to the
 * parent (and every ancestor). Its capability has CAPMEM_BANK_RIGHTS_ALL.
 *
 * @param limits its limits (NULL: unlimited, bounded by its ancestors')
 * @retval CAPMEM_E_INVALID_ARGS arena or out NULL
 * @retval CAPMEM_E_INVALID_CAP, CAPMEM_E_WRONG_TYPE, CAPMEM_E_DENIED (needs ALLOC) the parent
 * @retval CAPMEM_E_LIMIT_REACHED the parent or an ancestor has no node left (detail: needed,
 *         available)
 * @retval CAPMEM_E_OUT_OF_METADATA the service's donation has no free record
 * @retval CAPMEM_E_OUT_OF_CAPS  the account's capability quota
 */
CAPMEM_API capmem_err_t capmem_bank_create(capmem_arena_t *arena, capmem_cap_t parent,
                                           const capmem_bank_limits_t *limits, capmem_cap_t *out);

/**
 * Allocate @p count (1 to 3) objects of the given types, all or nothing,
 * charged to @p bank and every ancestor. Frames come zeroed; out[i]
 * receives the original capability of object i (a DATASPACE for a frame,
 * a BANK_NODE for a node), a child of the prime bank's capability.
 *
 * @retval CAPMEM_E_INVALID_ARGS arena, types or out NULL; a type unknown
 * @retval CAPMEM_E_RANGE        count outside 1..3
 * @retval CAPMEM_E_INVALID_CAP, CAPMEM_E_WRONG_TYPE, CAPMEM_E_DENIED (needs ALLOC)
 * @retval CAPMEM_E_LIMIT_REACHED the bank or an ancestor would pass its limit: nothing is
 *         charged (detail: needed, available on the tightest bank)
 * @retval CAPMEM_E_OUT_OF_METADATA the service's donation has too few free records
 * @retval CAPMEM_E_OUT_OF_CAPS  the account's capability quota
 * @retval CAPMEM_E_OUT_OF_PHYS  the limits allow it but no free frame is left
 */
CAPMEM_API capmem_err_t capmem_bank_alloc(capmem_arena_t *arena, capmem_cap_t bank,
                                          const capmem_bank_type_t *types, size_t count,
                                          capmem_cap_t *out);

/**
 * Free @p count (1 to 3) objects that @p bank owns, all or nothing: each
 * object's capabilities die, and every ancestor's usage falls.
 *
 * @retval CAPMEM_E_INVALID_ARGS arena or objs NULL; an object listed twice
 * @retval CAPMEM_E_RANGE        count outside 1..3
 * @retval CAPMEM_E_INVALID_CAP, CAPMEM_E_WRONG_TYPE, CAPMEM_E_DENIED (needs FREE) the bank
 * @retval CAPMEM_E_INVALID_CAP  an object handle is stale or forged
 * @retval CAPMEM_E_WRONG_TYPE   an object is not from a space bank (a foreign free)
 * @retval CAPMEM_E_DENIED       an object belongs to another bank
 */
CAPMEM_API capmem_err_t capmem_bank_free(capmem_arena_t *arena, capmem_cap_t bank,
                                         const capmem_cap_t *objs, size_t count);

/**
 * Destroy a bank: every object of it and of its sub-banks is freed (sub-banks
 * first), every capability of them dies, and every ancestor's usage falls
 * by the bank's usage plus its own record.
 *
 * @retval CAPMEM_E_INVALID_ARGS arena NULL
 * @retval CAPMEM_E_INVALID_CAP, CAPMEM_E_WRONG_TYPE, CAPMEM_E_DENIED (needs DESTROY)
 * @retval CAPMEM_E_DENIED       the prime bank (close the service instead)
 */
CAPMEM_API capmem_err_t capmem_bank_destroy(capmem_arena_t *arena, capmem_cap_t bank);

/**
 * Remove a bank: its objects and sub-banks pass to its parent with no
 * re-accounting (no ancestor's usage changes but for the bank's own
 * record, one node, which is freed), and its capabilities die.
 *
 * @retval as capmem_bank_destroy(), with REMOVE instead of DESTROY
 */
CAPMEM_API capmem_err_t capmem_bank_remove(capmem_arena_t *arena, capmem_cap_t bank);

/**
 * Set a bank's limits.
 * @retval CAPMEM_E_INVALID_ARGS arena or limits NULL
 * @retval CAPMEM_E_INVALID_CAP, CAPMEM_E_WRONG_TYPE, CAPMEM_E_DENIED (needs LIMITS)
 * @retval CAPMEM_E_DENIED       the prime bank (its limits come from the frame count)
 * @retval CAPMEM_E_RANGE        a limit below the bank's usage (detail: argument = the type,
 *         bound_min = the usage)
 */
CAPMEM_API capmem_err_t capmem_bank_set_limits(capmem_arena_t *arena, capmem_cap_t bank,
                                               const capmem_bank_limits_t *limits);

/** A snapshot of a bank. */
typedef struct capmem_bank_info {
    uint64_t limit[CAPMEM_BANK_TYPES];     /**< its own limits */
    uint64_t used[CAPMEM_BANK_TYPES];      /**< its objects + its sub-banks' usage */
    uint64_t own[CAPMEM_BANK_TYPES];       /**< its own objects (sub-banks' records are nodes) */
    uint64_t avail[CAPMEM_BANK_TYPES];     /**< what it can still allocate: min over ancestors */
    uint64_t effective[CAPMEM_BANK_TYPES]; /**< used + avail: the limit that binds */
    uint32_t depth;                        /**< 0 for the prime bank */
    uint32_t children;                     /**< sub-banks */
    unsigned rights;                       /**< of the capability asked about */
    bool is_prime;
    bool is_kernel; /**< the kernel heap's bank (hybrid) */
} capmem_bank_info_t;

/**
 * Describe a bank: limits, usage and effective limits.
 * @retval CAPMEM_E_INVALID_ARGS arena or info NULL
 * @retval CAPMEM_E_INVALID_CAP, CAPMEM_E_WRONG_TYPE, CAPMEM_E_DENIED (needs QUERY)
 */
CAPMEM_API capmem_err_t capmem_bank_info(capmem_arena_t *arena, capmem_cap_t bank,
                                         capmem_bank_info_t *info);

/**
 * Derive a capability to @p bank without the rights in @p restrictions
 * (CAPMEM_BANK_NO_* bits): a mint, charged like the capability it derives
 * from. Raises a MINT event.
 * @retval CAPMEM_E_INVALID_ARGS arena or out NULL; unknown restriction bits
 * @retval CAPMEM_E_INVALID_CAP, CAPMEM_E_WRONG_TYPE, CAPMEM_E_DENIED (needs GRANT)
 * @retval CAPMEM_E_OUT_OF_CAPS
 */
CAPMEM_API capmem_err_t capmem_bank_restrict(capmem_arena_t *arena, capmem_cap_t bank,
                                             unsigned restrictions, capmem_cap_t *out);

/**
 * Does @p bank own @p obj (a frame dataspace or a node)? Needs QUERY.
 * @retval CAPMEM_E_INVALID_ARGS arena or owns NULL
 * @retval CAPMEM_E_INVALID_CAP, CAPMEM_E_WRONG_TYPE, CAPMEM_E_DENIED either handle (WRONG_TYPE:
 *         @p obj is not from a space bank)
 */
CAPMEM_API capmem_err_t capmem_bank_owns(capmem_arena_t *arena, capmem_cap_t bank, capmem_cap_t obj,
                                         bool *owns);

#ifdef __cplusplus
}
#endif

#endif /* CAPMEM_BANK_H */
