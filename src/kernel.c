/* SPDX-License-Identifier: MIT */
/*
 * Layer 8, kernel metadata (Coyotos): the kernel heap and its per-frame
 * records, the three heap strategies, and device hot-plug.
 *
 * The heap is Coyotos' kern_malloc.c in miniature: a run of contiguous
 * frames carved at boot right after the kernel image, then (HYBRID only)
 * more runs borrowed through the space banks. A heap frame is never
 * returned: removing a device frees its record slots for the next device,
 * never the frames under them. The one exception is the end of boot of the
 * CONSERVATIVE strategy, which gives the frames of the unneeded tail of the
 * boot heap to the prime bank, before any record there was used.
 *
 * Device hot-plug reaches this file through the machine's device hooks
 * (capmem__device_hooks_set), which the boot registers: the machine's
 * device calls name no layer above them.
 */
#include <string.h>

#include "kernel_internal.h"

static const capmem__layer_t kernel_layer = {
    .name = "kernel metadata",
    .fini = NULL,
    .check = capmem__kernel_check,
};

const char *capmem_kernel_strategy_name(capmem_kernel_strategy_t s)
{
    switch (s) {
    case CAPMEM_KERNEL_FIXED:
        return "fixed reserve";
    case CAPMEM_KERNEL_HYBRID:
        return "hybrid";
    case CAPMEM_KERNEL_CONSERVATIVE:
        return "conservative";
    }
    return "unknown";
}

capmem__kernel_t *capmem__kernel_get(const capmem_arena_t *arena)
{
    capmem__kernel_t *k = capmem__layer_state(arena, &kernel_layer);
    return k != NULL && k->booted ? k : NULL;
}

uint64_t capmem__kernel_heap_frames(const capmem__kernel_t *k)
{
    uint64_t n = 0;
    for (unsigned i = 0; i < k->nchunks; i++) {
        n += k->chunks[i].frames;
    }
    return n;
}

capmem__frec_t *capmem__kernel_slot(const capmem_arena_t *arena, const capmem__kernel_t *k,
                                    uint64_t slot)
{
    for (unsigned i = 0; i < k->nchunks; i++) {
        const capmem__kchunk_t *c = &k->chunks[i];
        if (slot >= c->first_slot && slot - c->first_slot < c->slots) {
            return (capmem__frec_t *)(void *)capmem__bytes(
                &arena->mem, c->off + (slot - c->first_slot) * k->record_size);
        }
    }
    CAPMEM_ASSERT(0, "every slot below capacity is in a chunk");
    return NULL;
}

void capmem__kernel_frame_fill(const capmem_arena_t *arena, const capmem__frec_t *rec,
                               capmem_kernel_frame_t *out)
{
    memset(out, 0, sizeof(*out));
    out->phys = rec->frame << arena->mem.page_shift;
    out->type = rec->type;
    out->flags = rec->flags;
    out->alloc_count = rec->alloc_count;
    out->device = (uint32_t)rec->device;
    out->owned = rec->owner != 0;
    out->record_phys = arena->mem.phys_base + (uint64_t)((const uint8_t *)rec - arena->mem.base);
}

int capmem__kernel_walk_records(const capmem_arena_t *arena, const capmem__kernel_t *k,
                                int (*fn)(uint64_t slot, const capmem__frec_t *rec, void *ctx),
                                void *ctx)
{
    for (uint64_t s = 0; s < k->capacity; s++) {
        const capmem__frec_t *r = capmem__kernel_slot(arena, k, s);
        if (r->type != 0) {
            int rc = fn(s, r, ctx);
            if (rc != 0) {
                return rc;
            }
        }
    }
    return 0;
}

/* Frames of heap for @p records records, rounded up; false on overflow. */
static bool frames_for(const capmem_arena_t *arena, uint64_t records, uint64_t record_size,
                       uint64_t *out)
{
    uint64_t bytes;
    if (!capmem__mul_ok(records, record_size, &bytes) ||
        !capmem__align_up_ok(bytes, arena->mem.page_size, &bytes)) {
        return false;
    }
    *out = bytes >> arena->mem.page_shift;
    return true;
}

static void emit_heap(capmem_arena_t *arena, capmem_kernel_heap_op_t op, uint64_t off,
                      uint64_t frames, const char *what)
{
    if (capmem__event_wanted(arena, CAPMEM_EVENT_KERNEL_HEAP)) {
        capmem__emit(arena,
                     &(capmem__ev_t){.kind = CAPMEM_EVENT_KERNEL_HEAP,
                                     .a = frames,
                                     .b = op,
                                     .offset = off,
                                     .size = frames << arena->mem.page_shift},
                     "kernel heap: %s %llu frames at offset 0x%llx", what,
                     (unsigned long long)frames, (unsigned long long)off);
    }
}

/* ---- device hot-plug ---------------------------------------------------------------- */

static uint64_t free_slots(const capmem__kernel_t *k)
{
    return k->capacity - k->used;
}

/*
 * Lay out @p dev's records in the lowest free slots (the capacity was
 * checked) and list them under its entry. Lowest first keeps the tail of
 * the boot heap free for a conservative end of boot.
 */
static void make_device_records(capmem_arena_t *arena, capmem__kernel_t *k,
                                const capmem__device_t *dev)
{
    const uint64_t n = dev->size >> arena->mem.page_shift;
    unsigned e = 0;
    while (k->devs[e].id != 0) {
        e++;
    }
    CAPMEM_ASSERT(e < CAPMEM_DEVICE_MAX, "one entry per device range");
    k->devs[e].id = dev->id;
    uint64_t *link = &k->devs[e].first;
    uint64_t s = k->ram_frames;
    for (uint64_t i = 0; i < n; i++, s++) {
        capmem__frec_t *r = capmem__kernel_slot(arena, k, s);
        while (r->type != 0) {
            r = capmem__kernel_slot(arena, k, ++s);
        }
        memset(r, 0, sizeof(*r));
        r->frame = (dev->phys >> arena->mem.page_shift) + i;
        r->type = CAPMEM_KERNEL_FRAME_DEVICE;
        r->flags = CAPMEM_KERNEL_FLAG_PINNED | CAPMEM_KERNEL_FLAG_NOZERO;
        r->device = dev->id;
        *link = s + 1;
        link = &r->next;
    }
    *link = 0;
    k->used += n;
    k->device_used += n;
    capmem__stat_add(&arena->stats.kernel_records, n);
}

static capmem_err_t device_add(capmem_arena_t *arena, const capmem__device_t *dev)
{
    capmem__kernel_t *k = capmem__kernel_get(arena);
    const uint64_t n = dev->size >> arena->mem.page_shift;
    const uint64_t avail = free_slots(k);
    uint64_t grow = 0;
    if (n > avail) {
        const char *why = k->strategy == CAPMEM_KERNEL_FIXED
                              ? "the fixed reserve is used up (boot with a larger reserve)"
                          : k->strategy == CAPMEM_KERNEL_CONSERVATIVE
                              ? "the window kept at the end of boot is used up"
                              : NULL;
        if (why == NULL && k->lender == NULL) {
            why = "the heap must grow and no bank service lends frames";
        }
        if (why == NULL && k->nchunks == CAPMEM__KCHUNKS) {
            why = "the heap has grown as many times as it can";
        }
        if (why == NULL && !frames_for(arena, n - avail, k->record_size, &grow)) {
            why = "the growth overflows";
        }
        if (why == NULL) {
            capmem_err_t lerr = k->lender->can_lend(arena, k->lender->ctx, grow);
            if (lerr != CAPMEM_OK) {
                char msg[256];
                snprintf(msg, sizeof(msg), "%s", capmem_last_error()->message);
                capmem__fail_space(CAPMEM_E_OUT_OF_METADATA, NULL, n, avail,
                                   "%llu records needed, %llu free, and the banks cannot lend "
                                   "the %llu heap frames to grow (%s: %s)",
                                   (unsigned long long)n, (unsigned long long)avail,
                                   (unsigned long long)grow, capmem_err_name(lerr), msg);
                return CAPMEM_E_OUT_OF_METADATA;
            }
        } else {
            return capmem__fail_space(CAPMEM_E_OUT_OF_METADATA, NULL, n, avail,
                                      "device range %u needs %llu frame records, the kernel heap "
                                      "has %llu free: %s",
                                      dev->id, (unsigned long long)n, (unsigned long long)avail,
                                      why);
        }
    }
    /* Commit: nothing below fails. */
    if (grow > 0) {
        const uint64_t off = k->lender->lend(arena, k->lender->ctx, grow);
        capmem__kchunk_t *c = &k->chunks[k->nchunks++];
        c->off = off;
        c->frames = grow;
        c->first_slot = k->capacity;
        c->slots = (grow << arena->mem.page_shift) / k->record_size;
        c->borrowed = true;
        /* The frames' own records say they are the kernel's now. */
        for (uint64_t f = off >> arena->mem.page_shift; f < (off >> arena->mem.page_shift) + grow;
             f++) {
            capmem__kernel_slot(arena, k, f)->flags |= CAPMEM_KERNEL_FLAG_KERNEL;
        }
        /* Borrowed frames held a bank's bytes: the records start from zero (free slots). */
        memset(capmem__bytes(&arena->mem, off), 0, (size_t)(grow << arena->mem.page_shift));
        k->capacity += c->slots;
        k->borrowed_frames += grow;
        emit_heap(arena, CAPMEM_KERNEL_HEAP_GROW, off, grow, "grew by");
    }
    make_device_records(arena, k, dev);
    return CAPMEM_OK;
}

static void device_removed(capmem_arena_t *arena, const capmem__device_t *dev)
{
    capmem__kernel_t *k = capmem__kernel_get(arena);
    for (unsigned e = 0; e < CAPMEM_DEVICE_MAX; e++) {
        if (k->devs[e].id != dev->id) {
            continue;
        }
        uint64_t n = 0;
        for (uint64_t link = k->devs[e].first; link != 0;) {
            capmem__frec_t *r = capmem__kernel_slot(arena, k, link - 1);
            link = r->next;
            memset(r, 0, sizeof(*r)); /* the slot is free; the heap frame stays the heap's */
            n++;
        }
        k->used -= n;
        k->device_used -= n;
        capmem__stat_sub(&arena->stats.kernel_records, n);
        k->devs[e].id = 0;
        k->devs[e].first = 0;
        return;
    }
    CAPMEM_ASSERT(0, "every present device range has its records");
}

static const capmem__device_hooks_t device_hooks = {.add = device_add, .removed = device_removed};

/* ---- boot ------------------------------------------------------------------------- */

typedef struct boot_plan {
    capmem__kernel_t *k;
    uint64_t heap_frames;
    uint64_t slots;
    uint64_t present; /* device frames registered already */
} boot_plan_t;

static capmem_err_t decode_boot(capmem_arena_t *arena, const capmem_kernel_attr_t *at,
                                boot_plan_t *p)
{
    const uint64_t page = arena->mem.page_size;
    if (at->strategy < CAPMEM_KERNEL_FIXED || at->strategy > CAPMEM_KERNEL_CONSERVATIVE) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, NULL, "unknown kernel heap strategy %d",
                            (int)at->strategy);
    }
    if (at->record_size % 8 != 0 || at->record_size < CAPMEM_KERNEL_RECORD_MIN ||
        at->record_size > page) {
        return capmem__fail_range(NULL, 1, at->record_size, CAPMEM_KERNEL_RECORD_MIN, page,
                                  "record size (a multiple of 8)");
    }
    capmem__kernel_t *k = capmem__layer_state(arena, &kernel_layer);
    if (k != NULL && k->booted) {
        return capmem__fail(CAPMEM_E_DENIED, NULL, "the kernel is booted already on this arena");
    }
    if (arena->mem.ram_handed_out) {
        return capmem__fail(CAPMEM_E_DENIED, NULL,
                            "the boot untypeds hold RAM already: boot the kernel before "
                            "capmem_untyped_boot() and capmem_ram_boot()");
    }
    const uint64_t ram_frames = arena->mem.ram_size >> arena->mem.page_shift;
    for (int i = 0; i < CAPMEM_DEVICE_MAX; i++) {
        if (arena->mem.devices[i].id != 0) {
            p->present += arena->mem.devices[i].size >> arena->mem.page_shift;
        }
    }
    uint64_t records;
    uint64_t heap = 0;
    uint64_t need = 0;
    if (!capmem__add_ok(ram_frames, at->device_frames, &records) ||
        !frames_for(arena, records, at->record_size, &heap) ||
        !capmem__add_ok(heap, at->image_frames, &need) || need >= ram_frames) {
        return capmem__fail_space(
            CAPMEM_E_OUT_OF_RAM, NULL, need, ram_frames,
            "a kernel image of %llu frames and a heap for %llu + %llu "
            "records do not fit in %llu frames of RAM with one to spare",
            (unsigned long long)at->image_frames, (unsigned long long)ram_frames,
            (unsigned long long)at->device_frames, (unsigned long long)ram_frames);
    }
    if (p->present > at->device_frames) {
        return capmem__fail_space(CAPMEM_E_OUT_OF_METADATA, NULL, p->present, at->device_frames,
                                  "device memory registered before boot has %llu frames, the "
                                  "boot heap has records for %llu",
                                  (unsigned long long)p->present,
                                  (unsigned long long)at->device_frames);
    }
    capmem_err_t err =
        capmem__layer_setup(arena, &kernel_layer, sizeof(capmem__kernel_t), (void **)&p->k);
    if (err != CAPMEM_OK) {
        return err;
    }
    p->heap_frames = heap;
    p->slots = (heap << arena->mem.page_shift) / at->record_size;
    return CAPMEM_OK;
}

static void invoke_boot(capmem_arena_t *arena, const capmem_kernel_attr_t *at, const boot_plan_t *p)
{
    capmem__kernel_t *k = p->k;
    memset(k, 0, sizeof(*k));
    k->booted = true;
    k->strategy = at->strategy;
    k->record_size = at->record_size;
    k->image_frames = at->image_frames;
    k->ram_frames = arena->mem.ram_size >> arena->mem.page_shift;
    k->device_frames = at->device_frames;
    k->boot_heap_frames = p->heap_frames;
    k->chunks[0] = (capmem__kchunk_t){.off = at->image_frames << arena->mem.page_shift,
                                      .frames = p->heap_frames,
                                      .first_slot = 0,
                                      .slots = p->slots};
    k->nchunks = 1;
    k->capacity = p->slots;
    const uint64_t kernel_frames = at->image_frames + p->heap_frames;
    arena->mem.kernel_reserved = kernel_frames << arena->mem.page_shift;
    /* The heap starts zeroed: every slot free. Then one record per RAM frame. */
    capmem__backing_zero(&arena->mem, k->chunks[0].off, p->heap_frames << arena->mem.page_shift);
    const uint64_t base_frame = arena->mem.phys_base >> arena->mem.page_shift;
    for (uint64_t f = 0; f < k->ram_frames; f++) {
        capmem__frec_t *r = capmem__kernel_slot(arena, k, f);
        r->frame = base_frame + f;
        r->type = CAPMEM_KERNEL_FRAME_RAM;
        r->flags = f < kernel_frames ? CAPMEM_KERNEL_FLAG_KERNEL : 0;
    }
    k->used = k->ram_frames;
    capmem__stat_add(&arena->stats.kernel_records, k->ram_frames);
    for (int i = 0; i < CAPMEM_DEVICE_MAX; i++) {
        if (arena->mem.devices[i].id != 0) {
            make_device_records(arena, k, &arena->mem.devices[i]);
        }
    }
    k->seen_heap = p->heap_frames;
    capmem__device_hooks_set(arena, &device_hooks);
    emit_heap(arena, CAPMEM_KERNEL_HEAP_BOOT, k->chunks[0].off, p->heap_frames, "boot carved");
}

capmem_err_t capmem_kernel_boot(capmem_arena_t *arena, const capmem_kernel_attr_t *attr)
{
    if (arena == NULL || attr == NULL) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, __func__, "arena or attr is NULL");
    }
    CAPMEM__ENTER_OR_RETURN(arena);
    boot_plan_t plan = {0};
    capmem_err_t err = decode_boot(arena, attr, &plan);
    if (err == CAPMEM_OK) {
        invoke_boot(arena, attr, &plan);
    }
    CAPMEM__LEAVE(arena);
    return err;
}

/* ---- end of boot ---------------------------------------------------------------------- */

capmem_err_t capmem_kernel_end_boot(capmem_arena_t *arena, uint64_t keep_device_frames)
{
    if (arena == NULL) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, __func__, "arena is NULL");
    }
    CAPMEM__ENTER_OR_RETURN(arena);
    capmem__kernel_t *k = capmem__kernel_get(arena);
    capmem_err_t err = CAPMEM_OK;
    uint64_t highest = 0; /* device slots in use reach up to ram_frames + highest */
    if (k == NULL) {
        err = capmem__fail(CAPMEM_E_NOT_FOUND, NULL, "the kernel is not booted on this arena");
    } else if (k->strategy != CAPMEM_KERNEL_CONSERVATIVE) {
        err = capmem__fail(CAPMEM_E_UNSUPPORTED, NULL,
                           "only the conservative strategy releases at the end of boot (this "
                           "kernel's is \"%s\")",
                           capmem_kernel_strategy_name(k->strategy));
    } else if (k->boot_ended) {
        err = capmem__fail(CAPMEM_E_DENIED, NULL, "the end of boot happened already");
    } else {
        for (uint64_t s = k->ram_frames; s < k->capacity; s++) {
            if (capmem__kernel_slot(arena, k, s)->type != 0) {
                highest = s - k->ram_frames + 1;
            }
        }
        if (keep_device_frames > k->device_frames || keep_device_frames < highest) {
            err = capmem__fail_range(NULL, 1, keep_device_frames, highest, k->device_frames,
                                     "device frames kept (the records in use up to the window)");
        }
    }
    if (err == CAPMEM_OK) {
        uint64_t keep = 0;
        const bool ok =
            frames_for(arena, k->ram_frames + keep_device_frames, k->record_size, &keep);
        CAPMEM_ASSERT(ok && keep <= k->boot_heap_frames, "the kept part is part of the boot heap");
        (void)ok;
        capmem__kchunk_t *c = &k->chunks[0];
        const uint64_t rel = c->frames - keep;
        k->boot_ended = true;
        if (rel > 0) {
            c->frames = keep;
            c->slots = (keep << arena->mem.page_shift) / k->record_size;
            k->capacity = c->slots;
            k->released_off = c->off + (keep << arena->mem.page_shift);
            k->released_frames = rel;
            /* Their RAM records lose the kernel flag: the frames are the banks' now. */
            const uint64_t first = k->released_off >> arena->mem.page_shift;
            for (uint64_t f = first; f < first + rel; f++) {
                capmem__kernel_slot(arena, k, f)->flags &= (uint8_t)~CAPMEM_KERNEL_FLAG_KERNEL;
            }
            emit_heap(arena, CAPMEM_KERNEL_HEAP_RELEASE, k->released_off, rel,
                      "end of boot released");
            if (k->lender != NULL && k->lender->receive != NULL) {
                k->released_claimed = true;
                k->lender->receive(arena, k->lender->ctx, k->released_off, rel);
            }
        }
    }
    CAPMEM__LEAVE(arena);
    return err;
}

/* ---- for the banks ------------------------------------------------------------------ */

void capmem__kernel_set_lender(capmem_arena_t *arena, const capmem__kernel_lender_t *lender)
{
    capmem__kernel_t *k = capmem__kernel_get(arena);
    if (k != NULL) {
        k->lender = lender;
    }
}

bool capmem__kernel_claim_released(capmem_arena_t *arena, uint64_t *off, uint64_t *frames)
{
    capmem__kernel_t *k = capmem__kernel_get(arena);
    if (k == NULL || k->released_frames == 0 || k->released_claimed) {
        return false;
    }
    k->released_claimed = true;
    *off = k->released_off;
    *frames = k->released_frames;
    return true;
}

void capmem__kernel_unclaim_released(capmem_arena_t *arena)
{
    capmem__kernel_t *k = capmem__kernel_get(arena);
    if (k != NULL) {
        k->released_claimed = false;
    }
}

bool capmem__kernel_release_span(const capmem_arena_t *arena, uint64_t *off, uint64_t *frames)
{
    const capmem__kernel_t *k = capmem__kernel_get(arena);
    if (k == NULL || k->strategy != CAPMEM_KERNEL_CONSERVATIVE) {
        return false;
    }
    if (k->boot_ended) {
        *off = k->released_off;
        *frames = k->released_frames;
        return k->released_frames > 0 && !k->released_claimed;
    }
    uint64_t min = 0;
    const bool ok = frames_for(arena, k->ram_frames, k->record_size, &min);
    CAPMEM_ASSERT(ok && min <= k->boot_heap_frames, "the boot heap holds the RAM records");
    (void)ok;
    *off = k->chunks[0].off + (min << arena->mem.page_shift);
    *frames = k->boot_heap_frames - min;
    return *frames > 0;
}

void capmem__kernel_frames_owned(capmem_arena_t *arena, uint64_t off, uint64_t frames,
                                 uint64_t owner, bool fresh)
{
    capmem__kernel_t *k = capmem__kernel_get(arena);
    if (k == NULL) {
        return;
    }
    const uint64_t first = off >> arena->mem.page_shift;
    for (uint64_t f = first; f < first + frames && f < k->ram_frames; f++) {
        capmem__frec_t *r = capmem__kernel_slot(arena, k, f);
        r->owner = owner;
        if (owner != 0) {
            r->flags |= CAPMEM_KERNEL_FLAG_BANK;
            r->alloc_count = fresh ? (r->alloc_count + 1) & 0xfffffu : r->alloc_count;
        } else {
            r->flags &= (uint8_t)~CAPMEM_KERNEL_FLAG_BANK;
        }
    }
}

/* ---- queries ---------------------------------------------------------------------------- */

capmem_err_t capmem_kernel_info(capmem_arena_t *arena, capmem_kernel_info_t *info)
{
    if (arena == NULL || info == NULL) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, __func__, "arena or info is NULL");
    }
    CAPMEM__ENTER_OR_RETURN(arena);
    const capmem__kernel_t *k = capmem__kernel_get(arena);
    capmem_err_t err = CAPMEM_OK;
    if (k == NULL) {
        err = capmem__fail(CAPMEM_E_NOT_FOUND, NULL, "the kernel is not booted on this arena");
    } else {
        memset(info, 0, sizeof(*info));
        info->strategy = k->strategy;
        info->record_size = k->record_size;
        info->image_frames = k->image_frames;
        info->boot_heap_frames = k->boot_heap_frames;
        info->heap_frames = capmem__kernel_heap_frames(k);
        info->borrowed_frames = k->borrowed_frames;
        info->released_frames = k->released_frames;
        info->records_capacity = k->capacity;
        info->records_used = k->used;
        info->ram_records = k->ram_frames;
        info->device_records = k->device_used;
        info->device_reserve = k->capacity - k->used;
        info->kernel_frames = k->image_frames + k->boot_heap_frames - k->released_frames;
        info->boot_ended = k->boot_ended;
    }
    CAPMEM__LEAVE(arena);
    return err;
}

capmem_err_t capmem_kernel_frame(capmem_arena_t *arena, uint64_t phys, capmem_kernel_frame_t *out)
{
    if (arena == NULL || out == NULL) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, __func__, "arena or out is NULL");
    }
    CAPMEM__ENTER_OR_RETURN(arena);
    const capmem__kernel_t *k = capmem__kernel_get(arena);
    const capmem__frec_t *found = NULL;
    if (k != NULL) {
        const uint64_t frame = phys >> arena->mem.page_shift;
        const uint64_t base = arena->mem.phys_base >> arena->mem.page_shift;
        if (frame >= base && frame - base < k->ram_frames) {
            found = capmem__kernel_slot(arena, k, frame - base);
        }
        for (unsigned e = 0; found == NULL && e < CAPMEM_DEVICE_MAX; e++) {
            for (uint64_t l = k->devs[e].id != 0 ? k->devs[e].first : 0; l != 0;) {
                const capmem__frec_t *r = capmem__kernel_slot(arena, k, l - 1);
                if (r->frame == frame) {
                    found = r;
                    break;
                }
                l = r->next;
            }
        }
    }
    capmem_err_t err = CAPMEM_OK;
    if (found == NULL) {
        err = capmem__fail(
            CAPMEM_E_NOT_FOUND, NULL, "no frame record covers physical address 0x%llx%s",
            (unsigned long long)phys, k == NULL ? " (the kernel is not booted on this arena)" : "");
        capmem__detail()->address = phys;
    } else {
        capmem__kernel_frame_fill(arena, found, out);
    }
    CAPMEM__LEAVE(arena);
    return err;
}
