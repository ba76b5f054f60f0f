/* SPDX-License-Identifier: MIT */
/*
 * Layer 8, kernel metadata: the invariants of the kernel heap, run by
 * capmem_check() (the layer's checker):
 * - records in use = RAM frames + present device frames, never more than
 *   the heap holds; capacity = the chunks' slots;
 * - every RAM frame has its record in slot = its frame index; every present
 *   device range has exactly its frames' records, on its list, and no
 *   record belongs to a range that is gone;
 * - heap frames (plus those released at the end of boot) never decrease;
 * - RAM: kernel image + boot heap (what stayed) + released = the RAM the
 *   kernel took at boot, and no untyped covers any of it: the boot
 *   untypeds (and so the RAM service, its accounts and the banks) hold
 *   the rest.
 */
#include <stdarg.h>
#include <stdio.h>

#include "kernel_internal.h"
#include "untyped_internal.h"

static capmem_err_t broken(char *why, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static capmem_err_t broken(char *why, size_t len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = snprintf(why, len, "kernel heap: ");
    if (n > 0 && (size_t)n < len) {
        vsnprintf(why + n, len - (size_t)n, fmt, ap);
    }
    va_end(ap);
    return CAPMEM_E_CORRUPT;
}

static capmem_err_t check_devices(capmem_arena_t *arena, const capmem__kernel_t *k, char *why,
                                  size_t len)
{
    uint64_t present = 0;
    for (int i = 0; i < CAPMEM_DEVICE_MAX; i++) {
        const capmem__device_t *d = &arena->mem.devices[i];
        if (d->id == 0) {
            continue;
        }
        const uint64_t frames = d->size >> arena->mem.page_shift;
        present += frames;
        unsigned e = 0;
        while (e < CAPMEM_DEVICE_MAX && k->devs[e].id != d->id) {
            e++;
        }
        if (e == CAPMEM_DEVICE_MAX) {
            return broken(why, len, "device range %u has no records", d->id);
        }
        uint64_t n = 0;
        for (uint64_t l = k->devs[e].first; l != 0; n++) {
            if (l - 1 >= k->capacity || n >= frames) {
                return broken(why, len, "device range %u: its record list is broken", d->id);
            }
            const capmem__frec_t *r = capmem__kernel_slot(arena, k, l - 1);
            const uint64_t f0 = d->phys >> arena->mem.page_shift;
            if (r->type != CAPMEM_KERNEL_FRAME_DEVICE || r->device != d->id || r->frame != f0 + n) {
                return broken(why, len, "device range %u: record %llu names another frame", d->id,
                              (unsigned long long)n);
            }
            l = r->next;
        }
        if (n != frames) {
            return broken(why, len, "device range %u has %llu frames and %llu records", d->id,
                          (unsigned long long)frames, (unsigned long long)n);
        }
    }
    for (unsigned e = 0; e < CAPMEM_DEVICE_MAX; e++) {
        if (k->devs[e].id != 0) {
            bool live = false;
            for (int i = 0; i < CAPMEM_DEVICE_MAX; i++) {
                live = live || arena->mem.devices[i].id == k->devs[e].id;
            }
            if (!live) {
                return broken(why, len, "records of device range %u outlive it", k->devs[e].id);
            }
        }
    }
    if (k->device_used != present) {
        return broken(why, len, "%llu device records in use, %llu device frames present",
                      (unsigned long long)k->device_used, (unsigned long long)present);
    }
    return CAPMEM_OK;
}

capmem_err_t capmem__kernel_check(capmem_arena_t *arena, void *state, char *why, size_t len)
{
    capmem__kernel_t *k = state;
    if (!k->booted) {
        return CAPMEM_OK;
    }
    uint64_t slots = 0;
    for (unsigned i = 0; i < k->nchunks; i++) {
        const capmem__kchunk_t *c = &k->chunks[i];
        if (c->first_slot != slots ||
            c->slots != (c->frames << arena->mem.page_shift) / k->record_size) {
            return broken(why, len, "chunk %u does not hold the slots it says", i);
        }
        slots += c->slots;
    }
    if (slots != k->capacity) {
        return broken(why, len, "capacity %llu, the chunks hold %llu records",
                      (unsigned long long)k->capacity, (unsigned long long)slots);
    }
    uint64_t used = 0;
    for (uint64_t s = 0; s < k->capacity; s++) {
        const capmem__frec_t *r = capmem__kernel_slot(arena, k, s);
        if (s < k->ram_frames &&
            (r->type != CAPMEM_KERNEL_FRAME_RAM ||
             r->frame != (arena->mem.phys_base >> arena->mem.page_shift) + s)) {
            return broken(why, len, "slot %llu is not the record of RAM frame %llu",
                          (unsigned long long)s, (unsigned long long)s);
        }
        used += r->type != 0;
    }
    if (used != k->used || used != k->ram_frames + k->device_used ||
        used != arena->stats.kernel_records.current) {
        return broken(why, len,
                      "%llu records in use, counted %llu, RAM frames + device frames = %llu",
                      (unsigned long long)used, (unsigned long long)k->used,
                      (unsigned long long)(k->ram_frames + k->device_used));
    }
    if (used > k->capacity) {
        return broken(why, len, "more records in use than the heap holds");
    }
    capmem_err_t err = check_devices(arena, k, why, len);
    if (err != CAPMEM_OK) {
        return err;
    }
    const uint64_t heap = capmem__kernel_heap_frames(k);
    if (heap + k->released_frames < k->seen_heap) {
        return broken(why, len, "heap frames fell from %llu to %llu",
                      (unsigned long long)k->seen_heap,
                      (unsigned long long)(heap + k->released_frames));
    }
    k->seen_heap = heap + k->released_frames;
    if (k->borrowed_frames > 0 && k->lender == NULL) {
        /*
         * The bank service that lent them is gone: the frames went back
         * to the RAM service while the heap still holds records there.
         * The bank layer's veto (kill_check in bank.c) refuses the calls
         * that would take the service with it; should it go some other
         * way (docs/space_banks.md names what the veto does not cover),
         * this reports it.
         */
        return broken(why, len, "%llu borrowed heap frames lost their bank service",
                      (unsigned long long)k->borrowed_frames);
    }
    if (k->chunks[0].frames + k->released_frames != k->boot_heap_frames ||
        (k->image_frames + k->boot_heap_frames) << arena->mem.page_shift !=
            arena->mem.kernel_reserved ||
        heap != k->chunks[0].frames + k->borrowed_frames) {
        return broken(why, len,
                      "image %llu + boot heap %llu + released %llu frames do not add up to the "
                      "%llu bytes the kernel took",
                      (unsigned long long)k->image_frames, (unsigned long long)k->chunks[0].frames,
                      (unsigned long long)k->released_frames,
                      (unsigned long long)arena->mem.kernel_reserved);
    }
    const capmem__cspace_t *cs = &arena->cspace;
    for (uint32_t i = 1; i < cs->high; i++) {
        const capmem__slot_t *s = &cs->slots[i];
        if (s->type == CAPMEM_OBJ_UNTYPED && (s->flags & CAPMEM__SLOT_ORIGINAL)) {
            const capmem__untyped_t *ut = s->obj;
            if (!ut->base.device && ut->base.offset < arena->mem.kernel_reserved) {
                return broken(why, len, "an untyped at offset 0x%llx covers the kernel's RAM",
                              (unsigned long long)ut->base.offset);
            }
        }
    }
    return CAPMEM_OK;
}
