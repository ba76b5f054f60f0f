/* SPDX-License-Identifier: MIT */
/*
 * Layer 8, kernel metadata (Coyotos): the kernel heap, its per-frame
 * records, and the hooks through which the space banks (bank_internal.h,
 * above) lend the heap frames and receive the frames released at the end
 * of boot. Also the query and iteration functions the dump (capmem_dump)
 * walks. Never installed.
 */
#ifndef CAPMEM_KERNEL_INTERNAL_H
#define CAPMEM_KERNEL_INTERNAL_H

#include "cap_internal.h"
#include "capmem/kernel.h"

/*
 * One per-frame record, Coyotos' ObjectHeader cut to what the model
 * needs: 48 bytes, at a stride of the boot's record_size in the heap (a
 * larger record_size leaves the rest of each record unused, as Coyotos'
 * Page records do with their mapping lists). type 0 marks a free slot.
 */
typedef struct capmem__frec {
    uint64_t frame; /* physical frame number (phys >> page shift) */
    uint8_t type;   /* 0 free, CAPMEM_KERNEL_FRAME_RAM or _DEVICE */
    uint8_t flags;  /* CAPMEM_KERNEL_FLAG_* */
    uint16_t spare;
    uint32_t alloc_count; /* 20 bits used, as Coyotos' allocation count */
    uint64_t owner;       /* the owning bank's record (an address), 0 when none */
    uint64_t next;   /* device frames: slot + 1 of the next record of the range, 0 at the end */
    uint64_t device; /* device frames: the range's id */
    uint64_t spare2;
} capmem__frec_t;

_Static_assert(sizeof(capmem__frec_t) == CAPMEM_KERNEL_RECORD_MIN, "a record is 48 bytes");

/*
 * A run of contiguous heap frames. Chunk 0 is carved at boot right after
 * the kernel image and holds the RAM frames' records first (slot i is RAM
 * frame i); later chunks were borrowed through the banks (HYBRID).
 * Records never straddle chunks: a chunk holds floor(bytes / record_size).
 */
typedef struct capmem__kchunk {
    uint64_t off;        /* arena (backing) offset of its first frame */
    uint64_t frames;     /* heap frames in it */
    uint64_t first_slot; /* record slots [first_slot, first_slot + slots) */
    uint64_t slots;
    bool borrowed; /* lent by the banks (HYBRID growth) */
} capmem__kchunk_t;

#define CAPMEM__KCHUNKS 64u

/*
 * What the space banks offer the kernel, registered by the bank layer
 * while a bank service lives (capmem__kernel_set_lender):
 * - can_lend: could @p frames contiguous frames be lent now? The error
 *   (LIMIT_REACHED, OUT_OF_PHYS) says why not. Changes nothing.
 * - lend: lend them (after can_lend said yes: cannot fail); returns their
 *   arena offset. They are the kernel bank's for good.
 * - receive: @p frames frames at @p off were released to the prime bank.
 */
typedef struct capmem__kernel_lender {
    capmem_err_t (*can_lend)(capmem_arena_t *arena, void *ctx, uint64_t frames);
    uint64_t (*lend)(capmem_arena_t *arena, void *ctx, uint64_t frames);
    void (*receive)(capmem_arena_t *arena, void *ctx, uint64_t off, uint64_t frames);
    void *ctx;
} capmem__kernel_lender_t;

/*
 * The kernel-metadata layer's per-arena state (host memory, one per arena).
 *
 * Invariants (kernel_check.c): used == RAM frames + present device frames
 * <= capacity == sum of the chunks' slots; every present device range has
 * exactly its frames' records, on its list; heap_frames() + released never
 * falls; image + chunk 0 + released == the RAM the kernel took at boot.
 */
typedef struct capmem__kernel {
    bool booted;
    bool boot_ended;
    bool released_claimed; /* a bank service took the released frames */
    capmem_kernel_strategy_t strategy;
    uint64_t record_size;
    uint64_t image_frames;
    uint64_t ram_frames;
    uint64_t device_frames;    /* the boot's attr: reserve, fixed part or window */
    uint64_t boot_heap_frames; /* chunk 0 as carved (before a release) */
    uint64_t borrowed_frames;
    uint64_t released_off; /* arena offset of the released frames */
    uint64_t released_frames;
    uint64_t capacity;    /* record slots */
    uint64_t used;        /* record slots in use */
    uint64_t device_used; /* of which device frames */
    capmem__kchunk_t chunks[CAPMEM__KCHUNKS];
    unsigned nchunks;
    struct {
        uint32_t id;    /* 0: unused entry */
        uint64_t first; /* slot + 1 of its first record */
    } devs[CAPMEM_DEVICE_MAX];
    const capmem__kernel_lender_t *lender;
    uint64_t seen_heap; /* the checker's: the largest heap + released seen */
} capmem__kernel_t;

/* ---- for the layers above (the banks) ------------------------------------------ */

/* The kernel's state, or NULL when it is not booted on this arena. */
capmem__kernel_t *capmem__kernel_get(const capmem_arena_t *arena);

/* Register (or, with NULL, drop) the banks' lender; no-op if the kernel is not booted. */
void capmem__kernel_set_lender(capmem_arena_t *arena, const capmem__kernel_lender_t *lender);

/*
 * The frames released at the end of boot that no bank service has taken
 * yet: true once, with their offset and count; the caller (a new bank
 * service) adds them to its prime bank.
 */
bool capmem__kernel_claim_released(capmem_arena_t *arena, uint64_t *off, uint64_t *frames);

/* The service that claimed them closed: the next one claims them again. */
void capmem__kernel_unclaim_released(capmem_arena_t *arena);

/*
 * The frames a bank service may receive from the kernel: the tail of the
 * boot heap an end of boot could release (CONSERVATIVE, before it), or
 * the frames it released that no service holds. False when none.
 */
bool capmem__kernel_release_span(const capmem_arena_t *arena, uint64_t *off, uint64_t *frames);

/*
 * A bank handed out (owner != 0) or took back (owner 0) the RAM frames
 * [off, off + frames pages): their records say so. A new incarnation
 * (@p fresh: an allocation) bumps the allocation count; a change of owner
 * (a bank removed, its frames passed to its parent) does not. No-op when
 * the kernel is not booted.
 */
void capmem__kernel_frames_owned(capmem_arena_t *arena, uint64_t off, uint64_t frames,
                                 uint64_t owner, bool fresh);

/* ---- queries for the dump (read-only; the arena lock held) ---------------------------- */

/* Heap frames now: the chunks' frames. */
uint64_t capmem__kernel_heap_frames(const capmem__kernel_t *k);

/* The record in slot @p slot (< capacity). */
capmem__frec_t *capmem__kernel_slot(const capmem_arena_t *arena, const capmem__kernel_t *k,
                                    uint64_t slot);

/* A record as the public capmem_kernel_frame_t (record_phys from @p rec's address). */
void capmem__kernel_frame_fill(const capmem_arena_t *arena, const capmem__frec_t *rec,
                               capmem_kernel_frame_t *out);

/*
 * Visit every record in use, in slot order (RAM frames first, by frame),
 * with its slot; stop when @p fn returns non-zero (returned). The heap's
 * chunks are k->chunks[0 .. k->nchunks - 1], read directly.
 */
int capmem__kernel_walk_records(const capmem_arena_t *arena, const capmem__kernel_t *k,
                                int (*fn)(uint64_t slot, const capmem__frec_t *rec, void *ctx),
                                void *ctx);

/* ---- between kernel.c and kernel_check.c --------------------------------------------------- */

capmem_err_t capmem__kernel_check(capmem_arena_t *arena, void *state, char *why, size_t len);

#endif
