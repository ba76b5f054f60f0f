/* SPDX-License-Identifier: MIT */
/**
 * @file capmem/cap.h
 * @brief Layer 3: the capability space.
 *
 * A capability is an opaque 64-bit handle. It is never a pointer, so a
 * stale handle (its object destroyed), a forged one (random bits), one of
 * another arena or one of the wrong type is refused with an error, never a
 * crash. The layout, from the top bit down:
 *
 *     | type: 8 | arena tag: 10 | generation: 16 | slot index: 30 |
 *
 * The type is the capmem_obj_type_t (capmem_cap_type() reads it); the tag
 * is distinct for every live arena of the process, so a handle of arena A
 * presented to arena B is refused with CAPMEM_E_INVALID_CAP ("capability
 * of another arena"); the generation moves on each time a slot is reused,
 * so an old handle is refused as stale (a slot whose generation would wrap
 * is retired instead of reused); the index names the slot (never 0, so 0
 * is never a valid handle).
 *
 * Capabilities carry rights (read, write, grant) that can only shrink when a
 * capability is derived (minted) from another. Derivation forms a tree, as
 * seL4's capability derivation tree (CDT): every capability records its
 * parent; deleting destroys one capability (refused while it has children),
 * revoking destroys every descendant. Both are iterative: a chain a million
 * deep revokes without stack growth.
 *
 * Each object has one *original* capability, the one created with it;
 * deleting the original destroys the object (its type's teardown runs).
 * Minted copies name the same object and die with it, because they are its
 * descendants.
 *
 * Who pays: a capability slot is charged to the capability quota of the
 * account that caused it (see capmem/ram.h); capabilities created directly
 * with this header are charged to nobody and limited only by the arena's
 * slot count.
 */
#ifndef CAPMEM_CAP_H
#define CAPMEM_CAP_H

#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>

#include "capmem/arena.h"
#include "capmem/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/** An opaque capability handle. 0 (CAPMEM_CAP_NULL) is never valid. */
typedef uint64_t capmem_cap_t;

#define CAPMEM_CAP_NULL ((capmem_cap_t)0)

/** Object types. The number is part of every handle. */
typedef enum capmem_obj_type {
    CAPMEM_OBJ_NONE = 0,    /**< no object: an empty slot */
    CAPMEM_OBJ_UNTYPED,     /**< untyped memory (capmem/untyped.h) */
    CAPMEM_OBJ_FRAME,       /**< a frame retyped from untyped */
    CAPMEM_OBJ_KOBJ,        /**< a generic kernel object retyped from untyped */
    CAPMEM_OBJ_RAM_SESSION, /**< a RAM session / account (capmem/ram.h) */
    CAPMEM_OBJ_DATASPACE,   /**< a dataspace (capmem/dataspace.h) */
    CAPMEM_OBJ_REGION_MAP,  /**< a region map session (capmem/region_map.h) */
    CAPMEM_OBJ_USER,        /**< an object of a user-defined type */
    CAPMEM_OBJ_BANK,        /**< a space bank (capmem/bank.h) */
    CAPMEM_OBJ_BANK_NODE,   /**< a kernel object (node) from a space bank (capmem/bank.h) */
    CAPMEM_OBJ_TYPE_COUNT   /**< number of types; not a type */
} capmem_obj_type_t;

/** Rights. A derived capability has a subset of its parent's. */
enum capmem_rights {
    CAPMEM_RIGHT_READ = 1u << 0,  /**< read the object (e.g. dataspace bytes) */
    CAPMEM_RIGHT_WRITE = 1u << 1, /**< modify the object */
    CAPMEM_RIGHT_GRANT = 1u << 2, /**< derive new capabilities from this one */
    CAPMEM_RIGHTS_ALL = 0x7u,
    /**
     * Rights bits whose meaning the object's type gives: only space-bank
     * capabilities carry them (capmem/bank.h: may alloc, free, destroy,
     * remove). Reduced by capmem_cap_mint like the others.
     */
    CAPMEM_RIGHTS_TYPE = 0x78u,
};

/** The type encoded in a handle (no validation: the handle may be stale). */
static inline capmem_obj_type_t capmem_cap_type(capmem_cap_t cap)
{
    return (capmem_obj_type_t)(cap >> 56);
}

/** Name of an object type, e.g. "untyped"; "invalid" for unknown values. */
CAPMEM_API CAPMEM_NODISCARD const char *capmem_obj_type_name(capmem_obj_type_t type);

/** What capmem_cap_identify() reports. */
typedef struct capmem_cap_info {
    capmem_cap_t cap;       /**< the handle itself */
    capmem_obj_type_t type; /**< object type */
    unsigned rights;        /**< CAPMEM_RIGHT_* bits */
    bool original;          /**< 1 if this is the object's original capability */
    capmem_cap_t parent;    /**< parent in the derivation tree, CAPMEM_CAP_NULL for a root */
    size_t children;        /**< number of direct children */
    uint64_t object_id;     /**< identifies the object: equal for a capability and its copies */
    const char *name;       /**< the object's type name; a user type's own name for user objects */
} capmem_cap_info_t;

/**
 * A user-defined object type, so prototypes can put their own objects under
 * capability control. @ref destroy runs after the call that deleted the
 * object's original capability (directly or by a revoke of an ancestor),
 * outside the arena lock, like an event callback: it may call the library.
 * At arena destruction it runs after the arena is gone.
 */
typedef struct capmem_user_type {
    const char *name;                         /**< for dumps */
    void (*destroy)(void *object, void *ctx); /**< may be NULL */
    void *ctx;                                /**< passed to destroy */
} capmem_user_type_t;

/**
 * Create the original capability of a user object, as a root of the
 * derivation tree.
 *
 * Costs one capability slot (the arena's slot table) and a small host record
 * that holds the object pointer.
 *
 * @retval CAPMEM_E_INVALID_ARGS arena, type or out NULL; rights has bits beyond CAPMEM_RIGHTS_ALL
 * @retval CAPMEM_E_OUT_OF_CAPS  the arena's slot table is full
 * @retval CAPMEM_E_HOST_NOMEM   the host record could not be allocated
 */
CAPMEM_API capmem_err_t capmem_cap_create_user(capmem_arena_t *arena,
                                               const capmem_user_type_t *type, void *object,
                                               unsigned rights, capmem_cap_t *out);

/**
 * Look up the object of a user capability, checking its type and rights.
 *
 * @retval CAPMEM_E_INVALID_ARGS arena, type or object NULL
 * @retval CAPMEM_E_INVALID_CAP  stale or forged handle
 * @retval CAPMEM_E_WRONG_TYPE   not a user object, or one of another user type
 * @retval CAPMEM_E_DENIED       the capability lacks one of @p rights
 */
CAPMEM_API capmem_err_t capmem_cap_user_object(capmem_arena_t *arena, capmem_cap_t cap,
                                               const capmem_user_type_t *type, unsigned rights,
                                               void **object);

/**
 * Derive a new capability from @p src with rights @p rights, which must be a
 * subset of src's. The new capability is a child of src in the derivation
 * tree, names the same object, and is charged to the same account as src.
 * Deriving needs CAPMEM_RIGHT_GRANT on src.
 *
 * @retval CAPMEM_E_INVALID_ARGS arena or out NULL, or rights has unknown bits
 * @retval CAPMEM_E_INVALID_CAP  src is stale or forged
 * @retval CAPMEM_E_DENIED       src lacks GRANT, or @p rights asks for a right src lacks
 * @retval CAPMEM_E_OUT_OF_CAPS  no free slot, or the account's capability quota is used up
 */
CAPMEM_API capmem_err_t capmem_cap_mint(capmem_arena_t *arena, capmem_cap_t src, unsigned rights,
                                        capmem_cap_t *out);

/**
 * Delete one capability. If it is the object's original, the object is
 * destroyed (its type's teardown runs: memory returns to whoever paid).
 * The slot's generation moves on, so every copy of the old handle is stale.
 *
 * @retval CAPMEM_E_INVALID_ARGS arena NULL
 * @retval CAPMEM_E_INVALID_CAP  stale or forged handle
 * @retval CAPMEM_E_REVOKE_FIRST the capability has children: revoke it first
 */
CAPMEM_API capmem_err_t capmem_cap_delete(capmem_arena_t *arena, capmem_cap_t cap);

/**
 * Revoke: delete every descendant of @p cap (children first, iteratively),
 * keeping @p cap itself. Each descendant that is an original destroys its
 * object. Revoking a capability without children is a no-op.
 *
 * @retval CAPMEM_E_INVALID_ARGS arena NULL
 * @retval CAPMEM_E_INVALID_CAP  stale or forged handle
 */
CAPMEM_API capmem_err_t capmem_cap_revoke(capmem_arena_t *arena, capmem_cap_t cap);

/**
 * Describe a capability.
 * @retval CAPMEM_E_INVALID_ARGS arena or info NULL
 * @retval CAPMEM_E_INVALID_CAP  stale or forged handle
 */
CAPMEM_API capmem_err_t capmem_cap_identify(capmem_arena_t *arena, capmem_cap_t cap,
                                            capmem_cap_info_t *info);

/**
 * Visitor for capmem_cap_walk(): @p depth is 0 for the walk's root.
 * Return 0 to continue, non-zero to stop the walk.
 */
typedef int (*capmem_cap_visit_fn)(const capmem_cap_info_t *info, unsigned depth, void *ctx);

/**
 * Visit @p root and its descendants in pre-order (parents before children,
 * children in creation order), or every capability of the arena when root
 * is CAPMEM_CAP_NULL. Iterative. The visitor runs with the arena lock held,
 * in the middle of the walk: a library call on this arena from inside it is
 * refused with CAPMEM_E_REENTRANT.
 *
 * @retval CAPMEM_E_INVALID_ARGS arena or fn NULL
 * @retval CAPMEM_E_INVALID_CAP  root is stale or forged
 */
CAPMEM_API capmem_err_t capmem_cap_walk(capmem_arena_t *arena, capmem_cap_t root,
                                        capmem_cap_visit_fn fn, void *ctx);

/** Number of live capabilities in the arena (0 for NULL). */
CAPMEM_API CAPMEM_NODISCARD size_t capmem_cap_count(capmem_arena_t *arena);

/**
 * Walk the whole capability space and return the first broken invariant as
 * text in @p why (if not NULL): every live slot's parent is live, sibling
 * links are consistent, child counts add up, the free list holds only free
 * slots, no cycle in the tree.
 *
 * @retval CAPMEM_OK              all invariants hold
 * @retval CAPMEM_E_INVALID_ARGS  arena NULL
 * @retval CAPMEM_E_CORRUPT       an invariant is broken (described in @p why)
 */
CAPMEM_API CAPMEM_NODISCARD capmem_err_t capmem_cap_check(capmem_arena_t *arena, char *why,
                                                          size_t len);

#ifdef __cplusplus
}
#endif

#endif /* CAPMEM_CAP_H */
