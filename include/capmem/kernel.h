/* SPDX-License-Identifier: MIT */
/**
 * @file capmem/kernel.h
 * @brief Layer 8 (first half): kernel metadata after Coyotos, per-frame
 *        records in a kernel heap, and the three heap strategies.
 *
 * Coyotos keeps a record (its ObjectHeader, 48 bytes on i386) for every
 * frame of RAM and of device memory, in a kernel heap. The heap is a bump
 * allocator that grows by contiguous frames and never gives a frame back.
 * At boot the kernel sizes the heap from the number of frames and hands
 * every other frame to the space banks (capmem/bank.h). After boot the
 * heap grows only for the records of newly reported device memory, and
 * where those frames come from is the question the three strategies
 * answer:
 *
 * - CAPMEM_KERNEL_FIXED: records for a number of device frames are made at
 *   boot; device memory beyond them is refused (OUT_OF_METADATA, with the
 *   records needed and available in the detail).
 * - CAPMEM_KERNEL_HYBRID: a fixed part made at boot, then growth in which
 *   every heap frame is borrowed through the space banks (the kernel's
 *   bank, a child of the prime bank): the kernel never takes a frame from
 *   under the banks, and growth fails when they have nothing left to lend.
 * - CAPMEM_KERNEL_CONSERVATIVE: records for a whole device window are made
 *   at boot; capmem_kernel_end_boot() gives the frames of the part not kept
 *   to the prime bank, whose limit only ever grows.
 *
 * Booting the kernel is optional and happens once per arena, before the
 * boot untypeds are made (capmem_untyped_boot(), capmem_ram_boot()): the
 * kernel takes the first frames of RAM (its image, then its heap) and the
 * untypeds start after them. From then on capmem_arena_device_add() and
 * capmem_arena_device_remove() go through this layer: adding makes the
 * range's records (or fails, changing nothing); removing frees the record
 * slots, while the heap frames stay the heap's.
 */
#ifndef CAPMEM_KERNEL_H
#define CAPMEM_KERNEL_H

#include <stdbool.h>
#include <stdint.h>

#include "capmem/arena.h"
#include "capmem/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Where the kernel heap's frames come from after boot. */
typedef enum capmem_kernel_strategy {
    CAPMEM_KERNEL_FIXED = 1,        /**< a fixed reserve made at boot, nothing after */
    CAPMEM_KERNEL_HYBRID = 2,       /**< a fixed part, then frames borrowed from the banks */
    CAPMEM_KERNEL_CONSERVATIVE = 3, /**< the whole window at boot, the rest released at its end */
} capmem_kernel_strategy_t;

/** Name of a strategy: "fixed reserve", "hybrid", "conservative" or "unknown". */
CAPMEM_API CAPMEM_NODISCARD const char *capmem_kernel_strategy_name(capmem_kernel_strategy_t s);

/** What a CAPMEM_EVENT_KERNEL_HEAP event reports (its b field). */
typedef enum capmem_kernel_heap_op {
    CAPMEM_KERNEL_HEAP_BOOT = 1,    /**< the heap was carved at boot */
    CAPMEM_KERNEL_HEAP_GROW = 2,    /**< frames borrowed through the banks (hybrid) */
    CAPMEM_KERNEL_HEAP_RELEASE = 3, /**< frames given to the prime bank at the end of boot */
} capmem_kernel_heap_op_t;

/** The size of Coyotos' ObjectHeader on i386, the default record size. */
#define CAPMEM_KERNEL_RECORD_SIZE 48u
/** The smallest record: the fields the library keeps (capmem_kernel_frame_t). */
#define CAPMEM_KERNEL_RECORD_MIN 48u

/** Attributes of a kernel boot. Start from CAPMEM_KERNEL_ATTR_INIT. */
typedef struct capmem_kernel_attr {
    capmem_kernel_strategy_t strategy;
    uint64_t record_size;  /**< bytes per frame record: a multiple of 8, 48 .. page size */
    uint64_t image_frames; /**< frames of RAM the kernel image takes, before the heap */
    /**
     * Device frames the boot heap has records for: the reserve (FIXED), the
     * fixed part (HYBRID), or the whole device window (CONSERVATIVE).
     */
    uint64_t device_frames;
} capmem_kernel_attr_t;

#define CAPMEM_KERNEL_ATTR_INIT                                                                    \
    {                                                                                              \
        .strategy = CAPMEM_KERNEL_FIXED, .record_size = CAPMEM_KERNEL_RECORD_SIZE,                 \
        .image_frames = 64, .device_frames = 0                                                     \
    }

/**
 * Boot the kernel: take the first image_frames + heap frames of RAM, where
 * heap frames = ceil((RAM frames + device_frames) * record_size / page),
 * and write a record for every RAM frame (and for each device range
 * registered already) into the heap. The rest of RAM is left to the boot
 * untypeds. Raises a KERNEL_HEAP event (BOOT).
 *
 * @retval CAPMEM_E_INVALID_ARGS arena or attr NULL; unknown strategy
 * @retval CAPMEM_E_RANGE       record_size not a multiple of 8 or outside [48, page size] (detail:
 *         the bounds)
 * @retval CAPMEM_E_DENIED      the kernel is booted already, or the boot untypeds were made
 *         (RAM is handed out: boot the kernel first)
 * @retval CAPMEM_E_OUT_OF_RAM  image and heap do not fit in RAM with a frame to spare (detail:
 *         needed and available frames)
 * @retval CAPMEM_E_OUT_OF_METADATA the device ranges registered already need more records than
 *         device_frames
 * @retval CAPMEM_E_HOST_NOMEM
 */
CAPMEM_API capmem_err_t capmem_kernel_boot(capmem_arena_t *arena, const capmem_kernel_attr_t *attr);

/**
 * The end of boot, for CAPMEM_KERNEL_CONSERVATIVE: keep records for
 * @p keep_device_frames device frames (the window the platform turned out
 * to have) and give the heap frames of the rest to the prime bank: they
 * raise its frame limit as soon as a bank service exists (capmem/bank.h).
 * Once per boot. Raises a KERNEL_HEAP event (RELEASE).
 *
 * @retval CAPMEM_E_INVALID_ARGS arena NULL
 * @retval CAPMEM_E_NOT_FOUND   the kernel is not booted
 * @retval CAPMEM_E_UNSUPPORTED the strategy is not CONSERVATIVE
 * @retval CAPMEM_E_DENIED      the end of boot happened already
 * @retval CAPMEM_E_RANGE       keep_device_frames above the window reserved at boot, or below
 *         the device frames present (detail: the bounds)
 */
CAPMEM_API capmem_err_t capmem_kernel_end_boot(capmem_arena_t *arena, uint64_t keep_device_frames);

/** A snapshot of the kernel heap. Frame counts are in pages of the arena. */
typedef struct capmem_kernel_info {
    capmem_kernel_strategy_t strategy;
    uint64_t record_size;
    uint64_t image_frames;     /**< RAM frames of the kernel image */
    uint64_t boot_heap_frames; /**< heap frames carved at boot */
    /** heap frames now (boot - released + borrowed); falls only at the end of boot */
    uint64_t heap_frames;
    uint64_t borrowed_frames;  /**< heap frames borrowed through the banks (HYBRID) */
    uint64_t released_frames;  /**< heap frames given to the prime bank (end of boot) */
    uint64_t records_capacity; /**< records the heap holds */
    uint64_t records_used;     /**< RAM frames + present device frames */
    uint64_t ram_records;      /**< one per RAM frame */
    uint64_t device_records;   /**< one per present device frame */
    uint64_t device_reserve;   /**< device frames that can still be added without growth */
    uint64_t kernel_frames;    /**< RAM kept by the kernel: image + boot heap - released */
    bool boot_ended;
} capmem_kernel_info_t;

/**
 * Describe the kernel heap.
 * @retval CAPMEM_E_INVALID_ARGS arena or info NULL
 * @retval CAPMEM_E_NOT_FOUND   the kernel is not booted
 */
CAPMEM_API capmem_err_t capmem_kernel_info(capmem_arena_t *arena, capmem_kernel_info_t *info);

/** Frame record types and flags (capmem_kernel_frame_t). */
enum {
    CAPMEM_KERNEL_FRAME_RAM = 1,
    CAPMEM_KERNEL_FRAME_DEVICE = 2,
    CAPMEM_KERNEL_FLAG_KERNEL = 1u << 0, /**< the kernel's own: image or heap */
    CAPMEM_KERNEL_FLAG_PINNED = 1u << 1, /**< never paged out (device frames) */
    CAPMEM_KERNEL_FLAG_NOZERO = 1u << 2, /**< never zeroed (device frames) */
    CAPMEM_KERNEL_FLAG_BANK = 1u << 3,   /**< handed out by a space bank */
};

/** One per-frame record, as the kernel keeps it in its heap. */
typedef struct capmem_kernel_frame {
    uint64_t phys;        /**< physical address of the frame */
    uint32_t type;        /**< CAPMEM_KERNEL_FRAME_RAM or _DEVICE */
    uint32_t flags;       /**< CAPMEM_KERNEL_FLAG_* */
    uint32_t alloc_count; /**< times a bank handed the frame out (20 bits, wraps) */
    uint32_t device;      /**< the device range's id, 0 for RAM */
    uint64_t record_phys; /**< where the record itself lives (in the heap) */
    bool owned;           /**< a bank owns it now */
} capmem_kernel_frame_t;

/**
 * Read the record of the frame at physical address @p phys (any address
 * inside the frame).
 * @retval CAPMEM_E_INVALID_ARGS arena or out NULL
 * @retval CAPMEM_E_NOT_FOUND   the kernel is not booted, or no record covers @p phys
 */
CAPMEM_API capmem_err_t capmem_kernel_frame(capmem_arena_t *arena, uint64_t phys,
                                            capmem_kernel_frame_t *out);

#ifdef __cplusplus
}
#endif

#endif /* CAPMEM_KERNEL_H */
