/* SPDX-License-Identifier: MIT */
/**
 * @file capmem/arena.h
 * @brief Layer 1: the arena, the stand-in for physical RAM.
 *
 * An arena is one memfd (memfd_create + ftruncate) mapped once with
 * mmap(MAP_SHARED). A byte's simulated physical address is
 * `phys_base + offset`. Pages are touched lazily, so a 64 GiB arena costs
 * nothing until used. Where memfd is missing the arena falls back to an
 * anonymous shared mapping; then it has no file descriptor and real
 * (mmap-based) region-map views are unavailable.
 *
 * Device-memory ranges (not RAM, hot-pluggable) can be registered beside
 * RAM. They live in a separate window of the same backing, have their own
 * physical addresses, and are never handed out as RAM.
 *
 * The arena is also the "machine": it owns the capability space, the
 * event queue and the lock that serialises every public call on it (see
 * docs/threads.md). Every call on an arena from a forked child of the
 * process that created it is refused with CAPMEM_E_UNSUPPORTED.
 */
#ifndef CAPMEM_ARENA_H
#define CAPMEM_ARENA_H

#include <stdint.h>

#include "capmem/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Opaque arena handle. */
typedef struct capmem_arena capmem_arena_t;

/** What backs the arena's bytes. */
typedef enum capmem_backing {
    CAPMEM_BACKING_MEMFD = 1,       /**< memfd_create + mmap(MAP_SHARED): can be mapped again */
    CAPMEM_BACKING_ANON_SHARED = 2, /**< fallback: anonymous shared mapping, no fd */
} capmem_backing_t;

/** Arena creation flags. */
enum {
    /** Skip memfd and use the anonymous shared fallback (tests, portability). */
    CAPMEM_ARENA_FORCE_ANON = 1u << 0,
};

/** Smallest and largest page size an arena accepts. */
#define CAPMEM_PAGE_SIZE_MIN 256ull
#define CAPMEM_PAGE_SIZE_MAX (1ull << 30)
/** Largest total backing (RAM plus device window): 2^47 bytes, seL4's largest untyped. */
#define CAPMEM_ARENA_MAX_BYTES (1ull << 47)
/** Largest capability space. */
#define CAPMEM_CAP_SLOTS_MAX (1u << 30)

/** Attributes of a new arena. Start from CAPMEM_ARENA_ATTR_INIT. */
typedef struct capmem_arena_attr {
    uint64_t ram_size;  /**< bytes of RAM; a non-zero multiple of page_size */
    uint64_t page_size; /**< power of two in [256 B, 1 GiB] */
    uint64_t phys_base; /**< physical address of RAM offset 0; page-aligned */
    uint64_t
        device_window;  /**< bytes of backing reserved for device ranges; multiple of page_size */
    uint32_t cap_slots; /**< capacity of the capability space: 16 to CAPMEM_CAP_SLOTS_MAX */
    uint32_t flags;     /**< CAPMEM_ARENA_* flags */
} capmem_arena_attr_t;

/** Defaults: 64 MiB of RAM, 4 KiB pages, RAM at 0x100000, no device window, 4 Mi slots. */
#define CAPMEM_ARENA_ATTR_INIT                                                                     \
    {                                                                                              \
        .ram_size = 64ull << 20, .page_size = 4096, .phys_base = 0x100000, .device_window = 0,     \
        .cap_slots = 1u << 22, .flags = 0                                                          \
    }

/**
 * Create an arena.
 *
 * Costs the host one memfd (or none with the fallback), one shared mapping of
 * ram_size + device_window bytes (virtual only until touched), and a lazily
 * committed capability table of cap_slots slots.
 *
 * @param attr  attributes (NULL means CAPMEM_ARENA_ATTR_INIT)
 * @param out   receives the arena; untouched on failure
 * @retval CAPMEM_OK           created
 * @retval CAPMEM_E_INVALID_ARGS out is NULL; ram_size 0 or not a multiple of the page size;
 *         page_size not a power of two in range; phys_base misaligned; sizes overflow or exceed
 *         CAPMEM_ARENA_MAX_BYTES; unknown flags
 * @retval CAPMEM_E_RANGE      cap_slots outside [16, CAPMEM_CAP_SLOTS_MAX] (the detail gives the
 *         bounds)
 * @retval CAPMEM_E_SYSTEM     memfd_create, ftruncate or mmap failed (errno in the detail)
 * @retval CAPMEM_E_HOST_NOMEM the host could not allocate the arena record
 * @retval CAPMEM_E_OUT_OF_CAPS 1023 arenas are alive in this process already (each has a
 *         distinct tag in its handles)
 */
CAPMEM_API capmem_err_t capmem_arena_create(const capmem_arena_attr_t *attr, capmem_arena_t **out);

/**
 * Destroy an arena: every capability is deleted (children first, each
 * object's teardown runs), the mapping and the memfd are released, and
 * then the destroy hooks of remaining user objects run. No events are
 * raised. NULL is a no-op. No call on this arena may be in progress on
 * another thread, or follow.
 *
 * Called from an event callback, a user destroy hook or a fault handler on
 * this arena, the destroy happens when the call in progress (or the
 * delivery of events) is done, before control returns to the code that
 * made the outermost call. In a forked child it does nothing: the arena
 * belongs to the parent (docs/threads.md).
 */
CAPMEM_API void capmem_arena_destroy(capmem_arena_t *arena);

/** Bytes of RAM (0 for NULL). */
CAPMEM_API CAPMEM_NODISCARD uint64_t capmem_arena_ram_size(const capmem_arena_t *arena);
/** Page size in bytes (0 for NULL). */
CAPMEM_API CAPMEM_NODISCARD uint64_t capmem_arena_page_size(const capmem_arena_t *arena);
/** Physical address of RAM offset 0 (0 for NULL). */
CAPMEM_API CAPMEM_NODISCARD uint64_t capmem_arena_phys_base(const capmem_arena_t *arena);
/** What backs the arena (0 for NULL). */
CAPMEM_API CAPMEM_NODISCARD capmem_backing_t capmem_arena_backing(const capmem_arena_t *arena);
/** Name of a backing kind: "memfd", "anonymous shared" or "unknown". */
CAPMEM_API CAPMEM_NODISCARD const char *capmem_backing_name(capmem_backing_t backing);
/**
 * File descriptor of the memfd, for real mappings of arena pages; -1 for the
 * anonymous fallback or NULL. The arena keeps ownership: do not close it.
 */
CAPMEM_API CAPMEM_NODISCARD int capmem_arena_fd(const capmem_arena_t *arena);

/**
 * Translate a RAM offset to its physical address.
 * @retval CAPMEM_E_INVALID_ARGS arena or phys NULL, or offset >= ram_size
 */
CAPMEM_API capmem_err_t capmem_arena_offset_to_phys(const capmem_arena_t *arena, uint64_t offset,
                                                    uint64_t *phys);
/**
 * Translate a physical address (RAM or a registered device range) to its
 * backing offset (RAM offsets are 0..ram_size-1; device ranges follow in the
 * device window).
 * @retval CAPMEM_E_INVALID_ARGS arena or offset NULL
 * @retval CAPMEM_E_NOT_FOUND    the address is neither RAM nor a registered device range
 */
CAPMEM_API capmem_err_t capmem_arena_phys_to_offset(const capmem_arena_t *arena, uint64_t phys,
                                                    uint64_t *offset);

/** A registered device-memory range. */
typedef struct capmem_device_info {
    uint32_t id;             /**< handle for removal (never 0) */
    uint64_t phys;           /**< physical address */
    uint64_t size;           /**< bytes */
    uint64_t backing_offset; /**< where its bytes live in the backing (device window) */
} capmem_device_info_t;

/** Most device ranges one arena registers at once. */
#define CAPMEM_DEVICE_MAX 64

/**
 * Register a device-memory range at physical address @p phys (hot-plug).
 * Its bytes are carved from the device window (first fit); it is never RAM.
 *
 * @retval CAPMEM_E_INVALID_ARGS arena or out NULL; size 0; phys or size not page-aligned;
 *         phys + size overflows
 * @retval CAPMEM_E_REGION_CONFLICT the range overlaps RAM or another device range (detail:
 *         address and size of the conflicting range)
 * @retval CAPMEM_E_NOT_ENOUGH_MEMORY the device window has no free run of @p size bytes
 * @retval CAPMEM_E_OUT_OF_CAPS   CAPMEM_DEVICE_MAX ranges are registered already
 */
CAPMEM_API capmem_err_t capmem_arena_device_add(capmem_arena_t *arena, uint64_t phys, uint64_t size,
                                                capmem_device_info_t *out);

/**
 * Remove a device range (hot-unplug).
 * @retval CAPMEM_E_INVALID_ARGS arena NULL
 * @retval CAPMEM_E_NOT_FOUND    no range with this id
 * @retval CAPMEM_E_DELETE_FIRST the range is still in use (an untyped covers it)
 */
CAPMEM_API capmem_err_t capmem_arena_device_remove(capmem_arena_t *arena, uint32_t id);

/**
 * Copy the registered device ranges into @p out (up to @p max) in
 * physical-address order; *count receives how many there are in all.
 * @retval CAPMEM_E_INVALID_ARGS arena or count NULL, or out NULL with max > 0
 */
CAPMEM_API capmem_err_t capmem_arena_devices(const capmem_arena_t *arena, capmem_device_info_t *out,
                                             size_t max, size_t *count);

#ifdef __cplusplus
}
#endif

#endif /* CAPMEM_ARENA_H */
