/* SPDX-License-Identifier: MIT */
/**
 * @file capmem/region_map.h
 * @brief Layer 7: region maps (RM sessions), after Genode's region-map
 *        service, in the simulated access mode (capmem/rm_real.h maps a
 *        map into the process for real loads and stores).
 *
 * A region map is a virtual address space of a given size into which
 * dataspaces are *attached*. Addresses are local to the map: 0 is its first
 * byte. Accesses go through the library (capmem_rm_read(),
 * capmem_rm_write(), capmem_rm_touch()), which translates each address to
 * the dataspace behind it and copies bytes to or from the arena.
 *
 * **Sessions and who pays.** A region map is a session opened by a client
 * account. Opening it costs a donation (CAPMEM_RM_DEFAULT_DONATION, 64 KiB)
 * taken from the client's RAM quota, and one capability of the client's
 * capability quota. The map's own record takes CAPMEM_RM_SESSION_SLOTS
 * 64-byte slots of the first donated chunk; every region record is one more
 * slot, so the default donation pays for CAPMEM_RM_DEFAULT_REGIONS regions
 * (65536 / 64 - 1 chunk header - 4 session slots = 1019). The map's managed
 * dataspace record (capmem_rm_dataspace()) takes one slot as well. When the
 * donation is used up, attach fails with CAPMEM_E_OUT_OF_METADATA; an
 * upgrade (capmem_ram_upgrade() with the map as session and the client as
 * payer) adds room, and an *expanding* map (CAPMEM_RM_EXPANDING) upgrades
 * itself from the client's quota in steps. Closing the map (or the client
 * account, which closes its maps) returns the whole donation to the client.
 *
 * **Faults.** An access that hits no region, writes a read-only region or
 * executes a non-executable one stops and delivers a fault to the map's
 * fault handler (capmem_rm_set_fault_handler()): the address, the access
 * type and the map. The fault is kept as the map's state
 * (capmem_rm_state()), as Genode's Region_map::state(). The handler may
 * attach something and report the fault resolved; the access is then
 * retried from the outermost map. Without a handler, or when the handler
 * does not resolve it, the access fails with CAPMEM_E_UNRESOLVED_FAULT
 * (address in the detail). A handler that keeps reporting success without
 * making progress is stopped after CAPMEM_RM_FAULT_RETRIES retries with
 * CAPMEM_E_FAULT_LOOP.
 *
 * The handler runs synchronously, during the access, with the arena lock
 * held. The lock is recursive for it, so the handler may call any library
 * function on the same arena (attach, allocate, detach, even close the map
 * or destroy the arena, which then happens when the access returns); the
 * access path looks everything up again after the handler returns. If the
 * handler reports the fault unresolved after one of its own calls failed,
 * the access's UNRESOLVED_FAULT message names that failure as the root
 * cause. Events raised by the handler's calls are delivered after the
 * access, like all events (capmem/inspect.h).
 *
 * **Managed dataspaces.** capmem_rm_dataspace() turns a map into a
 * dataspace that can be attached into another map. An access through the
 * outer map that lands in it continues in the inner map at the inner
 * address; a fault there goes to the inner map's handler, with the inner
 * address. Nesting depth is unlimited; an attachment that would make a
 * cycle is refused with CAPMEM_E_CYCLE.
 *
 * **Costs.** Finding the region under an address is O(log n) in the
 * number of regions (a balanced tree); so are attach (fixed address or
 * "anywhere", which takes the lowest fitting address) and detach.
 *
 * **Limits.** All attachments are page-aligned (the arena's page size). A
 * map holds at most CAPMEM_RM_MAX_PAGES pages (16 TiB with 4 KiB pages),
 * because a region record stores page numbers in 32 bits to fit 64 bytes.
 */
#ifndef CAPMEM_REGION_MAP_H
#define CAPMEM_REGION_MAP_H

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

/** Slots the record of a region map takes in its first donated chunk. */
#define CAPMEM_RM_SESSION_SLOTS 4u
/** Default donation of a region map (Genode: 64 KiB). */
#define CAPMEM_RM_DEFAULT_DONATION (64u * 1024u)
/** Default upgrade step of an expanding region map. */
#define CAPMEM_RM_DEFAULT_UPGRADE (8u * 1024u)
/**
 * Regions the default donation pays for:
 * 65536 / 64 slots - 1 chunk header - 4 session-record slots = 1019
 * (one fewer once the map's managed dataspace exists).
 */
#define CAPMEM_RM_DEFAULT_REGIONS (CAPMEM_RM_DEFAULT_DONATION / 64u - 1u - CAPMEM_RM_SESSION_SLOTS)
/** Largest map size in pages (page numbers are stored in 32 bits). */
#define CAPMEM_RM_MAX_PAGES 0xffffffffull
/** Faults resolved without progress before an access gives up with CAPMEM_E_FAULT_LOOP. */
#define CAPMEM_RM_FAULT_RETRIES 8u
/** "Attach anywhere": the lowest free address that fits. */
#define CAPMEM_RM_ANYWHERE UINT64_MAX

/** Region-map flags. */
enum {
    /** React to OUT_OF_METADATA by upgrading the donation from the client's quota. */
    CAPMEM_RM_EXPANDING = 1u << 0,
};

/** Access types, of faults and of capmem_rm_touch(). */
typedef enum capmem_rm_access {
    CAPMEM_RM_READ = 0,  /**< a load */
    CAPMEM_RM_WRITE = 1, /**< a store */
    CAPMEM_RM_EXEC = 2,  /**< an instruction fetch */
} capmem_rm_access_t;

/** Name of an access type: "read", "write", "exec" or "unknown". */
CAPMEM_API CAPMEM_NODISCARD const char *capmem_rm_access_name(capmem_rm_access_t access);

/** Attributes of a new region map. Start from CAPMEM_RM_OPEN_ATTR_INIT and set size. */
typedef struct capmem_rm_open_attr {
    uint64_t size;         /**< bytes of address space; a non-zero page multiple */
    uint64_t donation;     /**< metadata donation paid by the client; a page multiple */
    uint64_t upgrade_step; /**< step of an expanding map; a page multiple */
    uint32_t flags;        /**< CAPMEM_RM_EXPANDING */
    const char *label;     /**< name for events and dumps (first 23 characters kept) */
    /**
     * Placement of "anywhere" attachments. DEFAULT: the lowest free range
     * that fits, as before. Any other recipe, built-in or custom
     * (capmem/alloc.h), is made over [0, size) at page granule when the map
     * opens, and every region of the map is a block of it: an attach
     * anywhere asks it for a block (alloc(size, page)), an attach at an
     * address reserves that block (alloc_at), a detach frees it. Every
     * answer is checked (inside the map, page-aligned, overlapping no
     * region); a wrong one fails the attach with CAPMEM_E_POLICY and
     * changes nothing. Host cost: the policy's own memory (and for a custom
     * one the wrapper's 40 bytes per region).
     */
    capmem_alloc_policy_t policy;
} capmem_rm_open_attr_t;

#define CAPMEM_RM_OPEN_ATTR_INIT                                                                   \
    {                                                                                              \
        .size = 0, .donation = CAPMEM_RM_DEFAULT_DONATION,                                         \
        .upgrade_step = CAPMEM_RM_DEFAULT_UPGRADE, .flags = 0, .label = NULL, .policy = {          \
            CAPMEM_ALLOC_DEFAULT,                                                                  \
            NULL,                                                                                  \
            NULL                                                                                   \
        }                                                                                          \
    }

/**
 * Open a region map for the client account @p client.
 *
 * The client pays: attr->donation of its RAM quota (the map's metadata) and
 * one capability of its capability quota. The map's capability has all
 * rights and is a child of the client's capability, so closing the client
 * closes the map. Emits a DONATE event.
 *
 * @param attr  attributes; size must be set
 * @retval CAPMEM_E_INVALID_ARGS arena, attr or out NULL; size 0, not a page multiple or above
 *         CAPMEM_RM_MAX_PAGES pages; donation or upgrade_step not a page multiple or too small
 *         (the donation must hold the map's record and one region); unknown flags
 * @retval CAPMEM_E_INVALID_CAP  client is stale or forged
 * @retval CAPMEM_E_WRONG_TYPE   client is not a RAM session
 * @retval CAPMEM_E_DENIED       client lacks WRITE
 * @retval CAPMEM_E_OUT_OF_RAM   the client's avail is below the donation (needed, available)
 * @retval CAPMEM_E_OUT_OF_CAPS  the client's capability quota is used up
 * @retval CAPMEM_E_OUT_OF_PHYS  no contiguous physical range for the donation
 * @retval CAPMEM_E_HOST_NOMEM   the per-arena region-map state could not be allocated
 *         (or the placement policy's instance)
 * @retval CAPMEM_E_INVALID_ARGS attr->policy is not a recipe capmem_alloc_create_policy() takes
 * @retval other                 a custom policy's create hook failed: its code
 */
CAPMEM_API capmem_err_t capmem_rm_open(capmem_arena_t *arena, capmem_cap_t client,
                                       const capmem_rm_open_attr_t *attr, capmem_cap_t *out);

/**
 * Upgrade a region map's donation by @p bytes, paid from its client
 * account's quota (the map's records: regions, the map itself, its managed
 * dataspace). The bytes become a new metadata chunk. Emits an UPGRADE event.
 *
 * @retval CAPMEM_E_INVALID_ARGS arena NULL; bytes not a page multiple or below two records
 * @retval CAPMEM_E_INVALID_CAP, CAPMEM_E_WRONG_TYPE @p rm is not a region map or @p payer not
 *         an account; CAPMEM_E_DENIED payer lacks WRITE
 * @retval CAPMEM_E_DENIED       payer is not the map's client account
 * @retval CAPMEM_E_OUT_OF_RAM   the client's avail is below bytes
 * @retval CAPMEM_E_OUT_OF_PHYS  no contiguous physical range of bytes
 */
CAPMEM_API capmem_err_t capmem_rm_upgrade(capmem_arena_t *arena, capmem_cap_t rm,
                                          capmem_cap_t payer, uint64_t bytes);

/**
 * Close a region map: its managed dataspace is revoked (and detached from
 * every map it is attached to), every region is detached (the dataspaces
 * stay), and the donation, upgrades included, returns to the client.
 * Emits a SESSION_CLOSE event.
 *
 * @retval CAPMEM_E_INVALID_ARGS arena NULL, or @p rm is a copy, not the original capability
 * @retval CAPMEM_E_INVALID_CAP  stale or forged handle
 * @retval CAPMEM_E_WRONG_TYPE   not a region map
 * @retval CAPMEM_E_DENIED       the capability lacks WRITE
 */
CAPMEM_API capmem_err_t capmem_rm_close(capmem_arena_t *arena, capmem_cap_t rm);

/** What to attach and where. Start from CAPMEM_RM_ATTACH_ATTR_INIT. */
typedef struct capmem_rm_attach_attr {
    uint64_t size;   /**< bytes; page multiple; 0 means the dataspace from offset to its end */
    uint64_t offset; /**< page-aligned offset into the dataspace */
    uint64_t at;     /**< page-aligned local address, or CAPMEM_RM_ANYWHERE */
    bool writable;   /**< 1: writes allowed (needs a writable dataspace and WRITE) */
    bool executable; /**< 1: execute touches allowed */
} capmem_rm_attach_attr_t;

#define CAPMEM_RM_ATTACH_ATTR_INIT                                                                 \
    {                                                                                              \
        .size = 0, .offset = 0, .at = CAPMEM_RM_ANYWHERE, .writable = 1, .executable = 0           \
    }

/**
 * Attach a dataspace (RAM, alias or another map's managed dataspace) into
 * a region map and return its local address in @p out.
 *
 * One region record is taken from the map's donation (an expanding map
 * upgrades from its client's quota first, emitting an UPGRADE event). No
 * capability is created. "Anywhere" takes the lowest free address with room.
 *
 * Checks, each leaving everything unchanged:
 * @retval CAPMEM_E_INVALID_ARGS arena, attr or out NULL; offset, size or at not page-aligned
 * @retval CAPMEM_E_INVALID_CAP  rm or ds is stale or forged (e.g. revoked)
 * @retval CAPMEM_E_WRONG_TYPE   rm is not a region map or ds not a dataspace
 * @retval CAPMEM_E_DENIED       rm lacks WRITE; ds lacks READ; writable attachment of a
 *         read-only dataspace or through a capability without WRITE
 * @retval CAPMEM_E_RANGE        offset + size beyond the dataspace, or nothing left after
 *         "to the end" (offset at or past its end) (detail argument 2, bounds 0..dataspace
 *         size), or the region beyond the map (argument 3, bounds 0..map size)
 * @retval CAPMEM_E_CYCLE        ds is the managed dataspace of @p rm or of a map that contains
 *         @p rm (directly or through further maps)
 * @retval CAPMEM_E_REGION_CONFLICT the range overlaps an attachment (detail: its address and
 *         size)
 * @retval CAPMEM_E_NOT_ENOUGH_MEMORY "anywhere" found no free range of size bytes (with a
 *         placement policy: the policy found none, or failed with its own code, passed on)
 * @retval CAPMEM_E_REGION_CONFLICT (placement policy) the policy refused the block at @p at
 * @retval CAPMEM_E_HOST_NOMEM   (custom placement policy) its wrapper could not record the block
 * @retval CAPMEM_E_POLICY       the placement policy answered with a block outside the map,
 *         misaligned or overlapping a region; nothing changed (detail: the answer)
 * @retval CAPMEM_E_OUT_OF_METADATA the donation has no free record (needed 64 bytes)
 * @retval CAPMEM_E_OUT_OF_RAM   (expanding map) the client's quota cannot pay the upgrade
 * @retval CAPMEM_E_OUT_OF_PHYS  (expanding map) no contiguous physical range for the upgrade
 */
CAPMEM_API capmem_err_t capmem_rm_attach(capmem_arena_t *arena, capmem_cap_t rm, capmem_cap_t ds,
                                         const capmem_rm_attach_attr_t *attr, uint64_t *out);

/**
 * Detach the region that contains local address @p address. Its record
 * returns to the map's donation; the dataspace stays.
 *
 * @retval CAPMEM_E_INVALID_ARGS arena NULL
 * @retval CAPMEM_E_INVALID_CAP, CAPMEM_E_WRONG_TYPE, CAPMEM_E_DENIED (needs WRITE) the map
 * @retval CAPMEM_E_NOT_FOUND    no region contains @p address (detail: address)
 */
CAPMEM_API capmem_err_t capmem_rm_detach(capmem_arena_t *arena, capmem_cap_t rm, uint64_t address);

/** A fault as the handler sees it. */
typedef struct capmem_rm_fault {
    capmem_cap_t rm;           /**< the map that faulted (its original capability) */
    uint64_t address;          /**< faulting local address in that map */
    capmem_rm_access_t access; /**< what the access tried */
} capmem_rm_fault_t;

/** What a fault handler reports. */
typedef enum capmem_rm_fault_result {
    CAPMEM_RM_FAULT_UNRESOLVED = 0, /**< give up: the access fails with UNRESOLVED_FAULT */
    CAPMEM_RM_FAULT_RESOLVED = 1,   /**< retry the access */
} capmem_rm_fault_result_t;

/**
 * A fault handler (Genode's pager). It runs on the accessing thread with the
 * arena lock held (recursive: it may call the library on the same arena).
 * A fault raised in a map while that map's own handler runs is not
 * delivered again: the access fails with UNRESOLVED_FAULT.
 */
typedef capmem_rm_fault_result_t (*capmem_rm_fault_fn)(capmem_arena_t *arena,
                                                       const capmem_rm_fault_t *fault, void *ctx);

/**
 * Install (or, with fn NULL, remove) the fault handler of a map.
 * @retval CAPMEM_E_INVALID_ARGS arena NULL
 * @retval CAPMEM_E_INVALID_CAP, CAPMEM_E_WRONG_TYPE, CAPMEM_E_DENIED (needs WRITE)
 */
CAPMEM_API capmem_err_t capmem_rm_set_fault_handler(capmem_arena_t *arena, capmem_cap_t rm,
                                                    capmem_rm_fault_fn fn, void *ctx);

/** A map's fault state (Genode's Region_map::State), with counters. */
typedef struct capmem_rm_state {
    bool faulted;              /**< 1 once any fault has been raised in this map */
    bool pending;              /**< 1 while the handler of the last fault runs */
    bool unresolved;           /**< 1 if the last fault was not resolved */
    capmem_rm_access_t access; /**< access type of the last fault */
    uint64_t address;          /**< local address of the last fault */
    capmem_cap_t rm;           /**< the map (its original capability) */
    uint64_t faults;           /**< faults raised in this map so far */
} capmem_rm_state_t;

/**
 * Read a map's fault state.
 * @retval CAPMEM_E_INVALID_ARGS arena or state NULL
 * @retval CAPMEM_E_INVALID_CAP, CAPMEM_E_WRONG_TYPE
 */
CAPMEM_API capmem_err_t capmem_rm_state(capmem_arena_t *arena, capmem_cap_t rm,
                                        capmem_rm_state_t *state);

/**
 * Read @p len bytes at local address @p address, across region boundaries
 * and through nested maps. A fault on the way is delivered and, once
 * resolved, the access continues; bytes before an unresolved fault have been
 * copied. Needs READ on the map.
 *
 * @retval CAPMEM_E_INVALID_ARGS arena or buf NULL
 * @retval CAPMEM_E_INVALID_CAP, CAPMEM_E_WRONG_TYPE, CAPMEM_E_DENIED the map (also INVALID_CAP
 *         when a handler closed the map during the access)
 * @retval CAPMEM_E_RANGE        address + len beyond the map
 * @retval CAPMEM_E_UNRESOLVED_FAULT a fault had no handler or was not resolved (detail: the
 *         faulting address in the map that faulted)
 * @retval CAPMEM_E_FAULT_LOOP   the handler reported CAPMEM_RM_FAULT_RETRIES resolutions in a row
 *         without the access making progress (detail: address)
 */
CAPMEM_API capmem_err_t capmem_rm_read(capmem_arena_t *arena, capmem_cap_t rm, uint64_t address,
                                       void *buf, size_t len);

/**
 * Write @p len bytes at local address @p address. Every region on the way
 * must be writable, else the write faults (WRITE): no byte ever reaches a
 * read-only dataspace. Needs WRITE on the map.
 * @retval as capmem_rm_read()
 */
CAPMEM_API capmem_err_t capmem_rm_write(capmem_arena_t *arena, capmem_cap_t rm, uint64_t address,
                                        const void *buf, size_t len);

/**
 * Touch @p len bytes at @p address for @p access without moving bytes
 * (an instruction fetch for CAPMEM_RM_EXEC, a probe otherwise): faults as
 * the access would. Needs READ on the map (WRITE for a write touch).
 * @retval CAPMEM_E_INVALID_ARGS arena NULL or unknown access type
 * @retval others as capmem_rm_read()
 */
CAPMEM_API capmem_err_t capmem_rm_touch(capmem_arena_t *arena, capmem_cap_t rm, uint64_t address,
                                        size_t len, capmem_rm_access_t access);

/** One attachment, as capmem_rm_lookup() reports it. */
typedef struct capmem_rm_region {
    uint64_t address; /**< local address of its first byte */
    uint64_t size;    /**< bytes */
    uint64_t offset;  /**< offset into the dataspace */
    bool writable;    /**< writes allowed */
    bool executable;  /**< execute touches allowed */
    bool managed;     /**< the dataspace is another map's managed dataspace */
} capmem_rm_region_t;

/**
 * Find the region that contains @p address, in O(log n).
 * @retval CAPMEM_E_INVALID_ARGS arena or out NULL
 * @retval CAPMEM_E_INVALID_CAP, CAPMEM_E_WRONG_TYPE the map
 * @retval CAPMEM_E_NOT_FOUND    no region contains @p address
 */
CAPMEM_API capmem_err_t capmem_rm_lookup(capmem_arena_t *arena, capmem_cap_t rm, uint64_t address,
                                         capmem_rm_region_t *out);

/** A snapshot of a region map. */
typedef struct capmem_rm_info {
    capmem_cap_t client;       /**< the account that opened it and pays for it */
    uint64_t size;             /**< bytes of address space */
    uint64_t regions;          /**< attachments */
    uint64_t donation;         /**< bytes donated for its metadata (upgrades included) */
    uint64_t records_used;     /**< metadata slots in use (chunk headers and its record too) */
    uint64_t records_capacity; /**< metadata slots the donation pays for */
    uint64_t upgrade_step;     /**< step of the expanding map */
    uint64_t upgrades;         /**< upgrades done so far */
    uint64_t faults;           /**< faults raised in it */
    bool expanding;            /**< 1 if it upgrades itself on OUT_OF_METADATA */
    bool has_handler;          /**< 1 if a fault handler is installed */
    char label[24];            /**< the label given at open: its first 23 characters */
    void *real_base; /**< where the map is mapped in real mode (capmem/rm_real.h), or NULL */
} capmem_rm_info_t;

/**
 * Describe a region map.
 * @retval CAPMEM_E_INVALID_ARGS arena or info NULL
 * @retval CAPMEM_E_INVALID_CAP, CAPMEM_E_WRONG_TYPE
 */
CAPMEM_API capmem_err_t capmem_rm_info(capmem_arena_t *arena, capmem_cap_t rm,
                                       capmem_rm_info_t *info);

/**
 * Return the map's managed dataspace, the map used as a dataspace of its
 * size, to attach into other maps or to read and write with
 * capmem/dataspace.h. It is created on the first call: one metadata record
 * of the map's donation and one capability of the client's capability
 * quota; its capability (all rights) is a child of the map's. Later calls
 * return the same handle at no cost. It cannot be freed on its own: it goes
 * when the map closes, or when the map's capability is revoked.
 *
 * @retval CAPMEM_E_INVALID_ARGS arena or ds NULL
 * @retval CAPMEM_E_INVALID_CAP, CAPMEM_E_WRONG_TYPE, CAPMEM_E_DENIED (needs WRITE and GRANT)
 * @retval CAPMEM_E_OUT_OF_CAPS  the client's capability quota is used up
 * @retval CAPMEM_E_OUT_OF_METADATA, CAPMEM_E_OUT_OF_RAM, CAPMEM_E_OUT_OF_PHYS as for attach
 */
CAPMEM_API capmem_err_t capmem_rm_dataspace(capmem_arena_t *arena, capmem_cap_t rm,
                                            capmem_cap_t *ds);

#ifdef __cplusplus
}
#endif

#endif /* CAPMEM_REGION_MAP_H */
