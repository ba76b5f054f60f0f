/* SPDX-License-Identifier: MIT */
/*
 * The arena proper: the backing memory that stands in for physical RAM.
 * One memfd (or the anonymous shared fallback) mapped once, RAM first and
 * the device window after it; the device ranges registered in the window;
 * zeroing. It knows nothing of locks, capabilities or objects: the machine
 * (machine_internal.h) wraps it for the public calls. Never installed.
 */
#ifndef CAPMEM_ARENA_INTERNAL_H
#define CAPMEM_ARENA_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "capmem/arena.h"
#include "internal.h"

typedef struct capmem__device {
    uint32_t id;   /* 0 = unused entry */
    uint32_t pins; /* untyped objects covering it; removal refused while > 0 */
    uint64_t phys;
    uint64_t size;
    uint64_t backing_offset;
} capmem__device_t;

typedef struct capmem__backing {
    uint8_t *base;     /* the one mapping: RAM then the device window */
    uint64_t map_size; /* ram_size + device_window */
    uint64_t ram_size;
    uint64_t page_size;
    unsigned page_shift;
    uint64_t host_page; /* the host's page size, for hole punching */
    uint64_t phys_base;
    uint64_t device_window;
    int fd; /* memfd, or -1 for the anonymous fallback */
    capmem_backing_t backing;
    /* Invariant: entries with id != 0 never overlap in phys or in backing. */
    capmem__device_t devices[CAPMEM_DEVICE_MAX];
    uint32_t next_device_id;
    /* Bytes capmem__backing_zero cleared, ever (capmem_stats reads it; the machine sits above). */
    uint64_t zeroed;
    /*
     * Bytes at the start of RAM the kernel-metadata layer took at its boot
     * (kernel image, heap, reserve): the boot untypeds start after them.
     * Set once, before ram_handed_out.
     */
    uint64_t kernel_reserved;
    /* The boot untypeds were made: RAM belongs to them, the kernel can no longer boot. */
    bool ram_handed_out;
} capmem__backing_t;

/* Check a creation request (everything but the capability slots). */
capmem_err_t capmem__backing_validate(const capmem_arena_attr_t *at);
/* Map the backing described by @p at (validated). On failure nothing is left open. */
capmem_err_t capmem__backing_init(capmem__backing_t *b, const capmem_arena_attr_t *at);
void capmem__backing_fini(capmem__backing_t *b);

/* Pointer to backing byte @p offset (RAM or device window). No checks. */
static inline uint8_t *capmem__bytes(const capmem__backing_t *b, uint64_t offset)
{
    return b->base + offset;
}

/*
 * Make backing bytes [off, off+size) read as zero. Whole host pages are
 * released (hole punched), so zeroing a large range also gives the memory
 * back to the host instead of touching it; the ragged edges are cleared.
 */
void capmem__backing_zero(capmem__backing_t *b, uint64_t off, uint64_t size);

/* Device entry covering backing offset range [off, off+size), or NULL. */
capmem__device_t *capmem__device_at_backing(capmem__backing_t *b, uint64_t off, uint64_t size);

/* Device ranges, without locking (the machine's public calls lock). */
capmem_err_t capmem__device_add(capmem__backing_t *b, uint64_t phys, uint64_t size,
                                capmem_device_info_t *out);
capmem_err_t capmem__device_remove(capmem__backing_t *b, uint32_t id);
/* Backing offset of device physical address @p phys; false if none covers it. */
bool capmem__device_phys_to_offset(const capmem__backing_t *b, uint64_t phys, uint64_t *offset);

#endif
