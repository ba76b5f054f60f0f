/* SPDX-License-Identifier: MIT */
/*
 * Layer 4: the boot untypeds. As seL4 hands its first program all free
 * memory as untyped capabilities, capmem_untyped_boot() cuts the arena's
 * RAM, then each registered device range, into the largest naturally
 * aligned power-of-two pieces and makes one root untyped per piece;
 * capmem_untyped_add_device() does the same for a range plugged in later.
 * The list of what was made is this layer's per-arena state.
 *
 * Both calls decode first: count the pieces, check the capability slots,
 * and make every host record (untyped records and the longer list); the
 * invoke step then creates the capabilities and cannot fail.
 */
#include <string.h>

#include "untyped_internal.h"

/* Per-arena state: the boot list, in the order the untypeds were made. */
typedef struct ut_state {
    capmem_untyped_info_t *boot;
    size_t nboot;
    bool booted; /* RAM and the devices present at the first call are on the list */
} ut_state_t;

static void ut_fini(capmem_arena_t *arena, void *state)
{
    (void)arena;
    ut_state_t *st = state;
    capmem__free(st->boot);
}

static const capmem__layer_t untyped_layer = {
    .name = "untyped",
    .fini = ut_fini,
    .check = capmem__ut_check,
};

/* Set the layer up on first use: its state and the types of its objects. */
static capmem_err_t ut_state(capmem_arena_t *arena, ut_state_t **out)
{
    capmem_err_t err = capmem__layer_setup(arena, &untyped_layer, sizeof(ut_state_t), (void **)out);
    if (err == CAPMEM_OK) {
        capmem__ut_register_types(arena);
    }
    return err;
}

void capmem__ut_boot_forget(capmem_arena_t *arena, const capmem__untyped_t *ut)
{
    if (ut->boot_id == 0) {
        return;
    }
    ut_state_t *st = capmem__layer_state(arena, &untyped_layer);
    CAPMEM_ASSERT(st != NULL && ut->boot_id <= st->nboot, "a boot untyped is on the boot list");
    st->boot[ut->boot_id - 1].cap = CAPMEM_CAP_NULL;
}

/* ---- cutting ranges into pieces --------------------------------------------- */

/*
 * Take the first piece of [*phys, *phys + *left): the largest power of two
 * that *phys is aligned to, at most 2^47 bytes and at most *left, as seL4
 * cuts its boot untypeds. Moves *phys and *left past it and returns its
 * size in bits. Callers stop when *left is below 2^CAPMEM_UNTYPED_MIN_BITS:
 * a shorter tail is dropped.
 */
static unsigned take_piece(uint64_t *phys, uint64_t *left)
{
    unsigned bits = CAPMEM_UNTYPED_MAX_BITS;
    if (*phys != 0 && (unsigned)__builtin_ctzll(*phys) < bits) {
        bits = (unsigned)__builtin_ctzll(*phys);
    }
    while ((1ull << bits) > *left) {
        bits--;
    }
    *phys += 1ull << bits;
    *left -= 1ull << bits;
    return bits;
}

/* A range to cut: RAM (dev NULL) or a device range. */
typedef struct ut_range {
    uint64_t phys;
    uint64_t size;
    capmem__device_t *dev;
} ut_range_t;

static size_t count_pieces(const ut_range_t *r)
{
    size_t n = 0;
    uint64_t phys = r->phys;
    for (uint64_t left = r->size; left >= (1ull << CAPMEM_UNTYPED_MIN_BITS); n++) {
        (void)take_piece(&phys, &left);
    }
    return n;
}

/* ---- the plan -------------------------------------------------------------------- */

typedef struct boot_piece {
    capmem__untyped_t *ut; /* its record, made by decode */
    capmem__device_t *dev; /* the device range it covers, or NULL for RAM */
} boot_piece_t;

typedef struct boot_plan {
    ut_state_t *st;
    size_t from;                 /* the first new entry of the boot list */
    capmem_untyped_info_t *list; /* the longer boot list, made by decode */
    boot_piece_t *pieces;        /* in list order */
    size_t n;
} boot_plan_t;

static void plan_free(const boot_plan_t *plan, size_t made)
{
    while (made > 0) {
        capmem__ut_free(plan->pieces[--made].ut);
    }
    capmem__free(plan->pieces);
    capmem__free(plan->list);
}

/*
 * Decode for boot and add_device: reserve everything needed to make one
 * root untyped per piece of each range in @p r[0 .. nr-1].
 */
static capmem_err_t decode_roots(capmem_arena_t *arena, ut_state_t *st, const ut_range_t *r,
                                 size_t nr, boot_plan_t *plan)
{
    size_t n = 0;
    for (size_t i = 0; i < nr; i++) {
        n += count_pieces(&r[i]);
    }
    /* Under 2 * 47 pieces per range (sizes rise, then fall), 1 + CAPMEM_DEVICE_MAX ranges. */
    capmem_err_t err = capmem__cap_reserve_check(arena, NULL, (uint32_t)n);
    if (err != CAPMEM_OK) {
        return err;
    }
    plan->st = st;
    plan->from = st->nboot;
    plan->n = n;
    plan->list = capmem__calloc(st->nboot + n, sizeof(*plan->list));
    plan->pieces = capmem__calloc(n, sizeof(*plan->pieces));
    if ((plan->list == NULL && st->nboot + n > 0) || (plan->pieces == NULL && n > 0)) {
        plan_free(plan, 0);
        return capmem__fail(CAPMEM_E_HOST_NOMEM, NULL, "no host memory for the boot list");
    }
    size_t k = 0;
    for (size_t i = 0; i < nr; i++) {
        uint64_t phys = r[i].phys;
        for (uint64_t left = r[i].size; left >= (1ull << CAPMEM_UNTYPED_MIN_BITS);) {
            const uint64_t at = phys;
            const unsigned bits = take_piece(&phys, &left);
            const uint64_t off = r[i].dev != NULL ? r[i].dev->backing_offset + (at - r[i].dev->phys)
                                                  : at - arena->mem.phys_base;
            err = capmem__ut_new(CAPMEM_UNTYPED_WATERMARK, off, bits, r[i].dev != NULL,
                                 &plan->pieces[k].ut);
            if (err != CAPMEM_OK) {
                plan_free(plan, k);
                return err;
            }
            plan->pieces[k++].dev = r[i].dev;
        }
    }
    return CAPMEM_OK;
}

/* Make the planned root untypeds and append them to the boot list; cannot fail. */
static void invoke_roots(capmem_arena_t *arena, const boot_plan_t *plan)
{
    ut_state_t *st = plan->st;
    if (st->nboot > 0) {
        memcpy(plan->list, st->boot, st->nboot * sizeof(*st->boot));
    }
    capmem__free(st->boot);
    st->boot = plan->list;
    for (size_t i = 0; i < plan->n; i++) {
        capmem__untyped_t *ut = plan->pieces[i].ut;
        const capmem_cap_t cap = capmem__cap_create(
            arena, CAPMEM_OBJ_UNTYPED, ut, CAPMEM_RIGHTS_ALL, CAPMEM__SLOT_ORIGINAL, 0, NULL);
        if (plan->pieces[i].dev != NULL) {
            ut->device = plan->pieces[i].dev;
            ut->device->pins++;
        }
        ut->boot_id = (uint32_t)(st->nboot + 1);
        capmem__ut_fill_info(arena, capmem__slot(&arena->cspace, capmem__cap_index(cap)),
                             &st->boot[st->nboot]);
        st->nboot++;
        if (capmem__event_wanted(arena, CAPMEM_EVENT_UNTYPED_NEW)) {
            const capmem_untyped_info_t *bi = &st->boot[st->nboot - 1];
            capmem__emit(arena,
                         &(capmem__ev_t){.kind = CAPMEM_EVENT_UNTYPED_NEW,
                                         .cap = cap,
                                         .a = bi->device ? 1u : 0u,
                                         .b = bi->size_bits,
                                         .offset = bi->offset,
                                         .size = 1ull << bi->size_bits},
                         "%s untyped of 2^%u bytes at phys 0x%llx", bi->device ? "device" : "boot",
                         bi->size_bits, (unsigned long long)bi->phys);
        }
    }
    capmem__free(plan->pieces);
}

/* Copy the boot list from entry @p from on, with fresh numbers for untypeds still alive. */
static void copy_out(capmem_arena_t *arena, const ut_state_t *st, size_t from,
                     capmem_untyped_info_t *out, size_t max, size_t *count)
{
    size_t n = 0;
    for (size_t i = from; i < st->nboot; i++, n++) {
        if (n < max) {
            out[n] = st->boot[i];
            const capmem__slot_t *s = capmem__cspace_get(&arena->cspace, st->boot[i].cap);
            if (st->boot[i].cap != CAPMEM_CAP_NULL && s != NULL) {
                capmem__ut_fill_info(arena, s, &out[n]);
            }
        }
    }
    *count = n;
}

/* ---- the public calls ------------------------------------------------------------ */

/*
 * On the first call: RAM, then every registered device range not covered
 * yet. Later calls plan nothing and only report the list.
 */
static capmem_err_t decode_boot(capmem_arena_t *arena, boot_plan_t *plan)
{
    memset(plan, 0, sizeof(*plan));
    capmem_err_t err = ut_state(arena, &plan->st);
    if (err != CAPMEM_OK || plan->st->booted) {
        return err;
    }
    ut_range_t r[1 + CAPMEM_DEVICE_MAX];
    size_t nr = 0;
    /* RAM the kernel-metadata layer took at its boot is not handed out (capmem/kernel.h). */
    const uint64_t kres = arena->mem.kernel_reserved;
    r[nr++] = (ut_range_t){arena->mem.phys_base + kres, arena->mem.ram_size - kres, NULL};
    for (int i = 0; i < CAPMEM_DEVICE_MAX; i++) {
        capmem__device_t *d = &arena->mem.devices[i];
        if (d->id != 0 && d->pins == 0) {
            r[nr++] = (ut_range_t){d->phys, d->size, d};
        }
    }
    return decode_roots(arena, plan->st, r, nr, plan);
}

static void invoke_boot(capmem_arena_t *arena, const boot_plan_t *plan)
{
    if (!plan->st->booted) {
        invoke_roots(arena, plan);
        plan->st->booted = true;
        arena->mem.ram_handed_out = true;
    }
}

capmem_err_t capmem_untyped_boot(capmem_arena_t *arena, capmem_untyped_info_t *out, size_t max,
                                 size_t *count)
{
    if (arena == NULL || count == NULL || (out == NULL && max > 0)) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, __func__, "arena or count is NULL");
    }
    CAPMEM__ENTER_OR_RETURN(arena);
    boot_plan_t plan;
    capmem_err_t err = decode_boot(arena, &plan);
    if (err == CAPMEM_OK) {
        invoke_boot(arena, &plan);
        copy_out(arena, plan.st, 0, out, max, count);
    }
    CAPMEM__LEAVE(arena);
    return err;
}

static capmem_err_t decode_add_device(capmem_arena_t *arena, uint32_t device_id, boot_plan_t *plan)
{
    memset(plan, 0, sizeof(*plan));
    capmem_err_t err = ut_state(arena, &plan->st);
    if (err != CAPMEM_OK) {
        return err;
    }
    capmem__device_t *dev = NULL;
    for (int i = 0; device_id != 0 && i < CAPMEM_DEVICE_MAX; i++) {
        if (arena->mem.devices[i].id == device_id) {
            dev = &arena->mem.devices[i];
        }
    }
    if (dev == NULL) {
        return capmem__fail(CAPMEM_E_NOT_FOUND, NULL, "no device range with id %u", device_id);
    }
    if (dev->pins != 0) {
        return capmem__fail(CAPMEM_E_DELETE_FIRST, NULL,
                            "device range %u is covered by untypeds already", device_id);
    }
    const ut_range_t r = {dev->phys, dev->size, dev};
    return decode_roots(arena, plan->st, &r, 1, plan);
}

capmem_err_t capmem_untyped_add_device(capmem_arena_t *arena, uint32_t device_id,
                                       capmem_untyped_info_t *out, size_t max, size_t *count)
{
    if (arena == NULL || count == NULL || (out == NULL && max > 0)) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, __func__, "arena or count is NULL");
    }
    CAPMEM__ENTER_OR_RETURN(arena);
    boot_plan_t plan;
    capmem_err_t err = decode_add_device(arena, device_id, &plan);
    if (err == CAPMEM_OK) {
        invoke_roots(arena, &plan);
        copy_out(arena, plan.st, plan.from, out, max, count);
    }
    CAPMEM__LEAVE(arena);
    return err;
}
