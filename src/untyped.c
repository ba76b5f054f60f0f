/* SPDX-License-Identifier: MIT */
/*
 * Layer 4: untyped memory and retype.
 *
 * The decode phase checks everything in seL4's order (type, size, count,
 * then memory) and reserves what can run out (capability slots, host
 * records); only then does the invoke phase place the objects, which
 * cannot fail for watermark untypeds. For range, buddy and user policies
 * placement is transactional: a later object that does not fit frees the
 * earlier ones, so a failed retype changes nothing either way.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "untyped_internal.h"

/* Per-arena state: the boot list. */
typedef struct ut_state {
    capmem_untyped_info_t *boot;
    size_t nboot;
    bool booted;
} ut_state_t;

static void ut_destroy(capmem_arena_t *arena, void *obj, capmem_cap_t handle);
static void leaf_destroy(capmem_arena_t *arena, void *obj, capmem_cap_t handle);
static const char *leaf_name(const void *obj);
static int ut_describe(capmem_arena_t *arena, const void *obj, char *buf, size_t len);
static int leaf_describe(capmem_arena_t *arena, const void *obj, char *buf, size_t len);

static const capmem__layer_t untyped_layer;

static const capmem__type_ops_t untyped_type = {
    .type = CAPMEM_OBJ_UNTYPED,
    .name = "untyped",
    .destroy = ut_destroy,
    .describe = ut_describe,
};
static const capmem__type_ops_t frame_type = {
    .type = CAPMEM_OBJ_FRAME,
    .name = "frame",
    .destroy = leaf_destroy,
    .describe = leaf_describe,
};
static const capmem__type_ops_t kobj_type = {
    .type = CAPMEM_OBJ_KOBJ,
    .name = "kernel object",
    .destroy = leaf_destroy,
    .name_of = leaf_name,
    .describe = leaf_describe,
};

const char *capmem_untyped_policy_name(capmem_untyped_policy_t policy)
{
    switch (policy) {
    case CAPMEM_UNTYPED_WATERMARK:
        return "watermark";
    case CAPMEM_UNTYPED_RANGE:
        return "range";
    case CAPMEM_UNTYPED_BUDDY:
        return "buddy";
    case CAPMEM_UNTYPED_INHERIT:
        return "inherit";
    }
    return "unknown";
}

static uint64_t ut_size(const capmem__untyped_t *ut)
{
    return 1ull << ut->base.size_bits;
}

/* A built-in policy over [0, 2^size_bits). */
static capmem_err_t make_policy(capmem_untyped_policy_t policy, unsigned size_bits,
                                capmem_alloc_t **out)
{
    uint64_t size = 1ull << size_bits;
    switch (policy) {
    case CAPMEM_UNTYPED_WATERMARK:
        return capmem_alloc_create_watermark(0, size, out);
    case CAPMEM_UNTYPED_RANGE: {
        /*
         * Granule: seL4's 16 bytes, coarser for huge untypeds so the node
         * pool stays within 2^20 granules (objects below the granule are
         * rounded up to it).
         */
        unsigned g = size_bits > 24 ? size_bits - 20 : CAPMEM_UNTYPED_MIN_BITS;
        return capmem_alloc_create_range(0, size, 1ull << g, out);
    }
    case CAPMEM_UNTYPED_BUDDY: {
        unsigned min = size_bits > 24 ? size_bits - 20 : CAPMEM_UNTYPED_MIN_BITS;
        return capmem_alloc_create_buddy(0, size, min, size_bits, out);
    }
    case CAPMEM_UNTYPED_INHERIT:
        break;
    }
    return capmem__fail(CAPMEM_E_INVALID_ARGS, "capmem_untyped", "unknown policy %d", (int)policy);
}

static capmem_err_t ut_new(capmem_untyped_policy_t policy, uint64_t offset, unsigned size_bits,
                           bool device, capmem__untyped_t **out)
{
    capmem__untyped_t *ut = capmem__calloc(1, sizeof(*ut));
    if (ut == NULL) {
        return capmem__fail(CAPMEM_E_HOST_NOMEM, "capmem_untyped", "no host memory for a record");
    }
    capmem_err_t err = make_policy(policy, size_bits, &ut->alloc);
    if (err != CAPMEM_OK) {
        capmem__free(ut);
        return err;
    }
    ut->base.type = CAPMEM_OBJ_UNTYPED;
    ut->base.offset = offset;
    ut->base.size_bits = size_bits;
    ut->base.device = device;
    ut->policy = policy;
    *out = ut;
    return CAPMEM_OK;
}

static void ut_free(capmem__untyped_t *ut)
{
    capmem_alloc_destroy(ut->alloc);
    capmem__free(ut);
}

void capmem__ut_child_release(capmem_arena_t *arena, capmem__ut_child_t *child)
{
    capmem__untyped_t *p = child->parent;
    (void)arena;
    if (p == NULL) {
        return;
    }
    CAPMEM_ASSERT(p->children > 0, "a parent counts each live child");
    p->children--;
    /*
     * Range and buddy reuse the memory at once. Watermark records the free
     * (so double frees stay detectable) but reuses nothing until reset.
     */
    /*
     * Deletion cannot fail. A built-in policy takes every child's block
     * back; a user policy that refuses keeps the block reserved (its own
     * inconsistency, visible in its avail) and nothing else changes.
     */
    (void)capmem_alloc_free(p->alloc, child->offset - p->base.offset, 1ull << child->size_bits);
}

static void ut_destroy(capmem_arena_t *arena, void *obj, capmem_cap_t handle)
{
    (void)handle;
    capmem__untyped_t *ut = obj;
    CAPMEM_ASSERT(ut->children == 0, "the derivation tree destroys children first");
    capmem__ut_child_release(arena, &ut->base);
    if (ut->device != NULL) {
        CAPMEM_ASSERT(ut->device->pins > 0, "pinned once per covering untyped");
        ut->device->pins--;
    }
    ut_state_t *st = capmem__layer_state(arena, &untyped_layer);
    if (ut->boot_id != 0 && st != NULL) {
        st->boot[ut->boot_id - 1].cap = CAPMEM_CAP_NULL;
    }
    ut_free(ut);
}

static void leaf_destroy(capmem_arena_t *arena, void *obj, capmem_cap_t handle)
{
    capmem__ut_child_t *c = obj;
    if (c->claim != NULL) {
        c->claim->destroy(arena, c, handle); /* a claimed object goes the claimer's way */
        return;
    }
    capmem__ut_child_release(arena, c);
    capmem__free(c);
}

static const char *leaf_name(const void *obj)
{
    const capmem__ut_child_t *c = obj;
    return c->claim != NULL ? c->claim->name : "kernel object";
}

static int ut_describe(capmem_arena_t *arena, const void *obj, char *buf, size_t len)
{
    const capmem__untyped_t *ut = obj;
    return snprintf(buf, len, "untyped of 2^%u bytes at phys 0x%llx, %s%s, %llu children",
                    ut->base.size_bits,
                    (unsigned long long)(arena->mem.phys_base + ut->base.offset),
                    ut->base.device ? "device, " : "", capmem_alloc_name(ut->alloc),
                    (unsigned long long)ut->children);
}

static int leaf_describe(capmem_arena_t *arena, const void *obj, char *buf, size_t len)
{
    const capmem__ut_child_t *c = obj;
    return snprintf(buf, len, "%s of 2^%u bytes at phys 0x%llx", leaf_name(obj), c->size_bits,
                    (unsigned long long)(arena->mem.phys_base + c->offset));
}

/* ---- boot ---------------------------------------------------------------- */

static void ut_fini(capmem_arena_t *arena, void *state)
{
    (void)arena;
    ut_state_t *st = state;
    capmem__free(st->boot);
}

static capmem_err_t ut_check(capmem_arena_t *arena, void *state, char *why, size_t len);

static const capmem__layer_t untyped_layer = {
    .name = "untyped",
    .fini = ut_fini,
    .check = ut_check,
};

static capmem_err_t ut_state(capmem_arena_t *arena, ut_state_t **out)
{
    capmem_err_t err = capmem__layer_setup(arena, &untyped_layer, sizeof(ut_state_t), (void **)out);
    if (err == CAPMEM_OK) {
        capmem__type_register(arena, &untyped_type);
        capmem__type_register(arena, &frame_type);
        capmem__type_register(arena, &kobj_type);
    }
    return err;
}

/*
 * Cut [phys, phys+size) into the largest naturally aligned power-of-two
 * pieces (by physical address), as seL4 does for its boot untypeds.
 * Calls fn for each; returns the number of pieces.
 */
static size_t cut_aligned(uint64_t phys, uint64_t size, unsigned min_bits,
                          void (*fn)(uint64_t phys, unsigned bits, void *ctx), void *ctx)
{
    size_t n = 0;
    while (size >= (1ull << min_bits)) {
        unsigned bits = CAPMEM_UNTYPED_MAX_BITS;
        if (phys != 0 && (unsigned)__builtin_ctzll(phys) < bits) {
            bits = (unsigned)__builtin_ctzll(phys);
        }
        while ((1ull << bits) > size) {
            bits--;
        }
        if (fn != NULL) {
            fn(phys, bits, ctx);
        }
        n++;
        phys += 1ull << bits;
        size -= 1ull << bits;
    }
    return n;
}

typedef struct piece_list {
    uint64_t phys[160];
    unsigned bits[160];
    size_t n;
} piece_list_t;

static void add_piece(uint64_t phys, unsigned bits, void *ctx)
{
    piece_list_t *l = ctx;
    if (l->n < sizeof(l->phys) / sizeof(l->phys[0])) {
        l->phys[l->n] = phys;
        l->bits[l->n] = bits;
        l->n++;
    }
}

static capmem_err_t fill_info(capmem_arena_t *arena, capmem_cap_t cap, capmem__untyped_t *ut,
                              capmem_untyped_info_t *info);

/*
 * Create root untypeds for the pieces; all or nothing. @p dev is the
 * device range they cover (pinned once per untyped) or NULL for RAM.
 */
static capmem_err_t make_roots(capmem_arena_t *arena, const piece_list_t *pl, capmem__device_t *dev,
                               capmem_cap_t *caps, capmem__untyped_t **uts, const char *func)
{
    capmem_err_t err = capmem__cap_reserve_check(arena, NULL, (uint32_t)pl->n);
    if (err != CAPMEM_OK) {
        return err;
    }
    for (size_t i = 0; i < pl->n; i++) {
        uint64_t off = dev != NULL ? dev->backing_offset + (pl->phys[i] - dev->phys)
                                   : pl->phys[i] - arena->mem.phys_base;
        err = ut_new(CAPMEM_UNTYPED_WATERMARK, off, pl->bits[i], dev != NULL, &uts[i]);
        if (err != CAPMEM_OK) {
            while (i-- > 0) {
                ut_free(uts[i]);
            }
            return err;
        }
    }
    for (size_t i = 0; i < pl->n; i++) {
        caps[i] = capmem__cap_create(arena, CAPMEM_OBJ_UNTYPED, uts[i], CAPMEM_RIGHTS_ALL,
                                     CAPMEM__SLOT_ORIGINAL, 0, NULL);
        if (dev != NULL) {
            uts[i]->device = dev;
            dev->pins++;
        }
    }
    return CAPMEM_OK;
}

static capmem_err_t append_boot(ut_state_t *st, size_t n)
{
    capmem_untyped_info_t *nb = capmem__calloc(st->nboot + n, sizeof(*nb));
    if (nb == NULL) {
        return capmem__fail(CAPMEM_E_HOST_NOMEM, "capmem_untyped_boot", "no host memory");
    }
    if (st->nboot > 0) {
        memcpy(nb, st->boot, st->nboot * sizeof(*nb));
    }
    capmem__free(st->boot);
    st->boot = nb;
    return CAPMEM_OK;
}

static capmem_err_t boot_pieces(capmem_arena_t *arena, ut_state_t *st, const piece_list_t *pl,
                                capmem__device_t *dev, const char *func)
{
    capmem_cap_t caps[160];
    capmem__untyped_t *uts[160];
    capmem_err_t err = append_boot(st, pl->n);
    if (err != CAPMEM_OK) {
        return err;
    }
    err = make_roots(arena, pl, dev, caps, uts, func);
    if (err != CAPMEM_OK) {
        return err;
    }
    for (size_t i = 0; i < pl->n; i++) {
        uts[i]->boot_id = (uint32_t)(st->nboot + 1);
        fill_info(arena, caps[i], uts[i], &st->boot[st->nboot]);
        st->nboot++;
    }
    return CAPMEM_OK;
}

static void copy_out(capmem_arena_t *arena, ut_state_t *st, size_t from, capmem_untyped_info_t *out,
                     size_t max, size_t *count)
{
    size_t n = 0;
    for (size_t i = from; i < st->nboot; i++, n++) {
        if (n < max) {
            out[n] = st->boot[i];
            /* Refresh the numbers of untypeds that still exist. */
            const capmem__slot_t *s = capmem__cspace_get(&arena->cspace, st->boot[i].cap);
            if (st->boot[i].cap != CAPMEM_CAP_NULL && s != NULL) {
                fill_info(arena, st->boot[i].cap, (capmem__untyped_t *)s->obj, &out[n]);
            }
        }
    }
    *count = n;
}

capmem_err_t capmem_untyped_boot(capmem_arena_t *arena, capmem_untyped_info_t *out, size_t max,
                                 size_t *count)
{
    if (arena == NULL || count == NULL || (out == NULL && max > 0)) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, __func__, "arena or count is NULL");
    }
    CAPMEM__ENTER_OR_RETURN(arena);
    ut_state_t *st = NULL;
    capmem_err_t err = ut_state(arena, &st);
    if (err == CAPMEM_OK && !st->booted) {
        piece_list_t pl = {.n = 0};
        cut_aligned(arena->mem.phys_base, arena->mem.ram_size, CAPMEM_UNTYPED_MIN_BITS, add_piece,
                    &pl);
        err = boot_pieces(arena, st, &pl, NULL, __func__);
        for (int i = 0; err == CAPMEM_OK && i < CAPMEM_DEVICE_MAX; i++) {
            capmem__device_t *d = &arena->mem.devices[i];
            if (d->id != 0 && d->pins == 0) {
                pl.n = 0;
                cut_aligned(d->phys, d->size, CAPMEM_UNTYPED_MIN_BITS, add_piece, &pl);
                err = boot_pieces(arena, st, &pl, d, __func__);
            }
        }
        st->booted = err == CAPMEM_OK;
        if (err != CAPMEM_OK) {
            /* All or nothing: undo the pieces made so far. */
            for (size_t i = 0; i < st->nboot; i++) {
                if (capmem__cspace_get(&arena->cspace, st->boot[i].cap) != NULL) {
                    capmem__cap_delete_leaf(arena, capmem__cap_index(st->boot[i].cap));
                }
            }
            st->nboot = 0;
        }
    }
    if (err == CAPMEM_OK) {
        copy_out(arena, st, 0, out, max, count);
    }
    CAPMEM__LEAVE(arena);
    return err;
}

capmem_err_t capmem_untyped_add_device(capmem_arena_t *arena, uint32_t device_id,
                                       capmem_untyped_info_t *out, size_t max, size_t *count)
{
    if (arena == NULL || count == NULL || (out == NULL && max > 0)) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, __func__, "arena or count is NULL");
    }
    CAPMEM__ENTER_OR_RETURN(arena);
    capmem__device_t *dev = NULL;
    for (int i = 0; device_id != 0 && i < CAPMEM_DEVICE_MAX; i++) {
        if (arena->mem.devices[i].id == device_id) {
            dev = &arena->mem.devices[i];
        }
    }
    ut_state_t *st = NULL;
    capmem_err_t err = ut_state(arena, &st);
    if (err == CAPMEM_OK && dev == NULL) {
        err = capmem__fail(CAPMEM_E_NOT_FOUND, __func__, "no device range with id %u", device_id);
    } else if (err == CAPMEM_OK && dev->pins != 0) {
        err = capmem__fail(CAPMEM_E_DELETE_FIRST, __func__,
                           "device range %u is covered by untypeds already", device_id);
    }
    if (err == CAPMEM_OK) {
        size_t from = st->nboot;
        piece_list_t pl = {.n = 0};
        cut_aligned(dev->phys, dev->size, CAPMEM_UNTYPED_MIN_BITS, add_piece, &pl);
        err = boot_pieces(arena, st, &pl, dev, __func__);
        if (err == CAPMEM_OK) {
            copy_out(arena, st, from, out, max, count);
        }
    }
    CAPMEM__LEAVE(arena);
    return err;
}

/* ---- lookup and info ----------------------------------------------------- */

static capmem_err_t lookup_ut(capmem_arena_t *arena, capmem_cap_t cap, unsigned rights,
                              const char *func, capmem__slot_t **slot, capmem__untyped_t **ut)
{
    capmem_err_t err = capmem__cap_lookup(arena, cap, CAPMEM_OBJ_UNTYPED, rights, slot);
    if (err == CAPMEM_OK) {
        *ut = (capmem__untyped_t *)(*slot)->obj;
    }
    return err;
}

/* seL4's reset condition: nothing derived from the invoked capability, no live child. */
static bool childless(const capmem__slot_t *s, const capmem__untyped_t *ut)
{
    return s->first_child == 0 && ut->children == 0;
}

static uint64_t ut_free_bytes(const capmem__untyped_t *ut)
{
    return ut->full ? 0 : capmem_alloc_avail(ut->alloc);
}

static capmem_err_t fill_info(capmem_arena_t *arena, capmem_cap_t cap, capmem__untyped_t *ut,
                              capmem_untyped_info_t *info)
{
    memset(info, 0, sizeof(*info));
    info->cap = cap;
    info->offset = ut->base.offset;
    info->phys = ut->device != NULL
                     ? ut->device->phys + (ut->base.offset - ut->device->backing_offset)
                     : arena->mem.phys_base + ut->base.offset;
    if (ut->base.device && ut->device == NULL) {
        /* A device child: find its range by backing offset. */
        capmem__device_t *d = capmem__device_at_backing(&arena->mem, ut->base.offset, 1);
        info->phys = d != NULL ? d->phys + (ut->base.offset - d->backing_offset) : 0;
    }
    info->size_bits = ut->base.size_bits;
    info->device = ut->base.device;
    info->policy =
        ut->user_policy ? capmem_alloc_name(ut->alloc) : capmem_untyped_policy_name(ut->policy);
    info->free_bytes = ut_free_bytes(ut);
    info->largest_free = ut->full ? 0 : capmem_alloc_largest(ut->alloc);
    if (ut->policy == CAPMEM_UNTYPED_WATERMARK && !ut->user_policy) {
        info->watermark = ut_size(ut) - capmem_alloc_avail(ut->alloc);
    }
    info->children = ut->children;
    info->full = ut->full;
    return CAPMEM_OK;
}

capmem_err_t capmem_untyped_info(capmem_arena_t *arena, capmem_cap_t untyped,
                                 capmem_untyped_info_t *info)
{
    if (arena == NULL || info == NULL) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, __func__, "arena or info is NULL");
    }
    CAPMEM__ENTER_OR_RETURN(arena);
    capmem__slot_t *s = NULL;
    capmem__untyped_t *ut = NULL;
    capmem_err_t err = lookup_ut(arena, untyped, 0, __func__, &s, &ut);
    if (err == CAPMEM_OK) {
        fill_info(arena, untyped, ut, info);
    }
    CAPMEM__LEAVE(arena);
    return err;
}

capmem_err_t capmem_untyped_set_policy(capmem_arena_t *arena, capmem_cap_t untyped,
                                       capmem_untyped_policy_t policy, capmem_alloc_t *user)
{
    if (arena == NULL) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, __func__, "arena is NULL");
    }
    if (user == NULL && (unsigned)policy > CAPMEM_UNTYPED_BUDDY) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, __func__, "policy %d cannot be set",
                            (int)policy);
    }
    CAPMEM__ENTER_OR_RETURN(arena);
    capmem__slot_t *s = NULL;
    capmem__untyped_t *ut = NULL;
    capmem_err_t err = lookup_ut(arena, untyped, CAPMEM_RIGHT_WRITE, __func__, &s, &ut);
    if (err == CAPMEM_OK && !childless(s, ut)) {
        err = capmem__fail(CAPMEM_E_REVOKE_FIRST, __func__,
                           "untyped has %llu children: revoke them first",
                           (unsigned long long)ut->children);
    }
    if (err == CAPMEM_OK && user != NULL &&
        (capmem_alloc_base(user) != 0 || capmem_alloc_size(user) < ut_size(ut))) {
        err = capmem__fail(CAPMEM_E_INVALID_ARGS, __func__,
                           "the user policy's span does not cover [0, 0x%llx)",
                           (unsigned long long)ut_size(ut));
    }
    capmem_alloc_t *na = user;
    if (err == CAPMEM_OK && user == NULL) {
        err = make_policy(policy, ut->base.size_bits, &na);
    }
    if (err == CAPMEM_OK) {
        capmem_alloc_destroy(ut->alloc);
        ut->alloc = na;
        ut->user_policy = user != NULL;
        ut->policy = user != NULL ? CAPMEM_UNTYPED_WATERMARK : policy;
        ut->full = false;
    }
    CAPMEM__LEAVE(arena);
    return err;
}

/* ---- retype -------------------------------------------------------------- */

/* Step 1 of decode, without the capability: type, size and count, in seL4's order. */
static capmem_err_t decode_args(capmem_arena_t *arena, const capmem_retype_attr_t *attr,
                                size_t dest_len, const char *func)
{
    const capmem_obj_type_t t = attr->type;
    if (t != CAPMEM_OBJ_UNTYPED && t != CAPMEM_OBJ_FRAME && t != CAPMEM_OBJ_KOBJ) {
        capmem__fail(CAPMEM_E_INVALID_ARGS, func,
                     "Untyped Retype: object type %d (%s) cannot be retyped from untyped", (int)t,
                     capmem_obj_type_name(t));
        capmem__detail()->argument = 1;
        return CAPMEM_E_INVALID_ARGS;
    }
    if (attr->size_bits > CAPMEM_UNTYPED_MAX_BITS) {
        return capmem__fail_range(func, 2, attr->size_bits, 0, CAPMEM_UNTYPED_MAX_BITS,
                                  "Untyped Retype: object size bits");
    }
    if (t == CAPMEM_OBJ_UNTYPED && attr->size_bits < CAPMEM_UNTYPED_MIN_BITS) {
        capmem__fail(CAPMEM_E_INVALID_ARGS, func,
                     "Untyped Retype: requested untyped size %u bits is below the minimum of %u",
                     attr->size_bits, CAPMEM_UNTYPED_MIN_BITS);
        capmem__detail()->argument = 2;
        return CAPMEM_E_INVALID_ARGS;
    }
    if (t == CAPMEM_OBJ_FRAME && attr->size_bits < arena->mem.page_shift) {
        return capmem__fail_range(func, 2, attr->size_bits, arena->mem.page_shift,
                                  CAPMEM_UNTYPED_MAX_BITS, "Untyped Retype: frame size bits");
    }
    if (t == CAPMEM_OBJ_KOBJ && attr->size_bits < CAPMEM_UNTYPED_MIN_BITS) {
        return capmem__fail_range(func, 2, attr->size_bits, CAPMEM_UNTYPED_MIN_BITS,
                                  CAPMEM_UNTYPED_MAX_BITS, "Untyped Retype: object size bits");
    }
    if (attr->count < 1 || attr->count > CAPMEM_RETYPE_MAX_COUNT) {
        return capmem__fail_range(func, 3, attr->count, 1, CAPMEM_RETYPE_MAX_COUNT,
                                  "Untyped Retype: number of objects");
    }
    if (dest_len < attr->count) {
        capmem__fail(CAPMEM_E_INVALID_ARGS, func,
                     "Untyped Retype: %zu destination slots for %u objects", dest_len, attr->count);
        capmem__detail()->argument = 4;
        return CAPMEM_E_INVALID_ARGS;
    }
    if (attr->type == CAPMEM_OBJ_UNTYPED && attr->child_policy != CAPMEM_UNTYPED_INHERIT &&
        (unsigned)attr->child_policy > CAPMEM_UNTYPED_BUDDY) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, func, "unknown child policy %d",
                            (int)attr->child_policy);
    }
    return CAPMEM_OK;
}

static capmem_err_t insufficient(const char *func, uint32_t count, unsigned bits,
                                 uint64_t available)
{
    return capmem__fail_space(
        CAPMEM_E_NOT_ENOUGH_MEMORY, func, (uint64_t)count << bits, available,
        "Untyped Retype: Insufficient memory (%u * %llu bytes needed, %llu bytes available)", count,
        (unsigned long long)(1ull << bits), (unsigned long long)available);
}

/*
 * Place count objects; relative offsets into rel[]. Transactional: on
 * failure every object placed so far is freed again.
 */
static capmem_err_t place(capmem__untyped_t *ut, const capmem_retype_attr_t *attr, uint64_t *rel,
                          const char *func)
{
    const uint64_t sz = 1ull << attr->size_bits;
    const uint32_t n = attr->count;
    capmem_err_t err = CAPMEM_OK;
    uint32_t i;
    for (i = 0; i < n; i++) {
        if (attr->offset != CAPMEM_RETYPE_ANYWHERE) {
            rel[i] = attr->offset + i * sz;
            err = capmem_alloc_alloc_at(ut->alloc, rel[i], sz);
        } else if (i > 0 && n > 1) {
            /* Contiguous: the next object goes right after the previous one. */
            rel[i] = rel[i - 1] + sz;
            err = capmem_alloc_alloc_at(ut->alloc, rel[i], sz);
            if (err != CAPMEM_OK && ut->policy == CAPMEM_UNTYPED_WATERMARK && !ut->user_policy) {
                /* Watermark cannot allocate at an offset: bump instead (same place). */
                err = capmem_alloc_alloc(ut->alloc, sz, sz, &rel[i]);
            }
        } else {
            err = capmem_alloc_alloc(ut->alloc, sz, sz, &rel[i]);
        }
        if (err != CAPMEM_OK) {
            break;
        }
    }
    if (err == CAPMEM_OK) {
        return CAPMEM_OK;
    }
    capmem_err_t place_err = err;
    while (i-- > 0) {
        /*
         * Undo. A built-in policy always takes its own block back; a user
         * policy that refuses keeps it reserved, its own inconsistency, and
         * the retype still fails cleanly.
         */
        (void)capmem_alloc_free(ut->alloc, rel[i], sz);
    }
    if (place_err == CAPMEM_E_HOST_NOMEM || place_err == CAPMEM_E_POLICY) {
        return place_err; /* the policy's own detail explains it */
    }
    return insufficient(func, n, attr->size_bits, ut_free_bytes(ut));
}

/*
 * Contiguous placement for range/buddy when the first block was placed by
 * best fit: if the run after it is taken, retry the whole run as one
 * aligned block found by the policy, then split it into objects.
 */
static capmem_err_t place_run(capmem__untyped_t *ut, const capmem_retype_attr_t *attr,
                              uint64_t *rel, const char *func)
{
    const uint64_t sz = 1ull << attr->size_bits;
    if (attr->count == 1 || attr->offset != CAPMEM_RETYPE_ANYWHERE ||
        (ut->policy == CAPMEM_UNTYPED_WATERMARK && !ut->user_policy)) {
        return place(ut, attr, rel, func);
    }
    /* Find a run: allocate it whole, free it, then claim it object by object. */
    uint64_t run = (uint64_t)attr->count * sz;
    uint64_t at;
    capmem_err_t err = capmem_alloc_alloc(ut->alloc, run, sz, &at);
    if (err != CAPMEM_OK) {
        if (err == CAPMEM_E_HOST_NOMEM || err == CAPMEM_E_POLICY) {
            return err;
        }
        return insufficient(func, attr->count, attr->size_bits, ut_free_bytes(ut));
    }
    err = capmem_alloc_free(ut->alloc, at, run);
    if (err != CAPMEM_OK) {
        return err; /* a user policy refused the run it just gave: its detail says why */
    }
    capmem_retype_attr_t exact = *attr;
    exact.offset = at;
    return place(ut, &exact, rel, func);
}

capmem_err_t capmem_untyped_retype(capmem_arena_t *arena, capmem_cap_t untyped,
                                   const capmem_retype_attr_t *attr, capmem_cap_t *dest,
                                   size_t dest_len)
{
    const char *fn = __func__;
    if (arena == NULL || attr == NULL || dest == NULL) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, fn, "arena, attr or dest is NULL");
    }
    CAPMEM__ENTER_OR_RETURN(arena);
    capmem__slot_t *s = NULL;
    capmem__untyped_t *ut = NULL;
    capmem__ut_child_t *recs[CAPMEM_RETYPE_MAX_COUNT];
    uint64_t rel[CAPMEM_RETYPE_MAX_COUNT];
    uint32_t nrec = 0;
    const uint64_t sz = 1ull << (attr->size_bits & 63u);

    /* Decode: arguments in seL4's order, then the capability and the memory. */
    capmem_err_t err = decode_args(arena, attr, dest_len, fn);
    if (err == CAPMEM_OK) {
        err = lookup_ut(arena, untyped, CAPMEM_RIGHT_WRITE, fn, &s, &ut);
    }
    if (err != CAPMEM_OK) {
        goto out;
    }
    const bool reset = childless(s, ut);
    /* Memory, as seL4 counts it: free bytes >> object size >= count. */
    uint64_t free_now = ut->full && !reset ? 0
                        : reset            ? ut_size(ut)
                                           : capmem_alloc_avail(ut->alloc);
    if ((free_now >> attr->size_bits) < attr->count) {
        err = insufficient(fn, attr->count, attr->size_bits, free_now);
        goto out;
    }
    if (ut->base.device && attr->type == CAPMEM_OBJ_KOBJ) {
        capmem__fail(CAPMEM_E_INVALID_ARGS, fn,
                     "Untyped Retype: Creating kernel objects with device untyped");
        capmem__detail()->argument = 1;
        err = CAPMEM_E_INVALID_ARGS;
        goto out;
    }
    if (attr->offset != CAPMEM_RETYPE_ANYWHERE) {
        uint64_t end;
        if (ut->policy == CAPMEM_UNTYPED_WATERMARK && !ut->user_policy) {
            err = capmem__fail(CAPMEM_E_INVALID_ARGS, fn,
                               "a watermark untyped places objects itself: no offset");
        } else if (!capmem__is_aligned(attr->offset, sz) ||
                   !capmem__add_ok(attr->offset, (uint64_t)attr->count * sz, &end) ||
                   end > ut_size(ut)) {
            err = capmem__fail(CAPMEM_E_INVALID_ARGS, fn,
                               "offset 0x%llx is misaligned for 2^%u-byte objects or outside "
                               "the untyped (0x%llx bytes)",
                               (unsigned long long)attr->offset, attr->size_bits,
                               (unsigned long long)ut_size(ut));
        }
        if (err != CAPMEM_OK) {
            capmem__detail()->address = attr->offset;
            goto out;
        }
    }
    err = capmem__cap_reserve_check(arena, NULL, attr->count);
    if (err != CAPMEM_OK) {
        goto out;
    }
    /* Host records for the new objects (may fail: nothing placed yet). */
    for (nrec = 0; nrec < attr->count; nrec++) {
        capmem__ut_child_t *r = NULL;
        if (attr->type == CAPMEM_OBJ_UNTYPED) {
            capmem_untyped_policy_t cp =
                attr->child_policy == CAPMEM_UNTYPED_INHERIT
                    ? (ut->user_policy ? CAPMEM_UNTYPED_WATERMARK : ut->policy)
                    : attr->child_policy;
            capmem__untyped_t *cu = NULL;
            err = ut_new(cp, 0, attr->size_bits, ut->base.device, &cu);
            r = cu != NULL ? &cu->base : NULL;
        } else {
            r = capmem__calloc(1, sizeof(*r));
            if (r == NULL) {
                err = capmem__fail(CAPMEM_E_HOST_NOMEM, fn, "no host memory for a record");
            } else {
                r->type = attr->type;
            }
        }
        if (err != CAPMEM_OK) {
            goto out;
        }
        recs[nrec] = r;
    }
    /*
     * seL4's reset: a childless untyped starts again at 0. Range and buddy
     * got every child's memory back when it was deleted, so for them a
     * reset would only cost time (clearing their maps); watermark and user
     * policies are reset, as seL4 resets its free index.
     */
    bool was_full = ut->full;
    if (reset) {
        if (ut->user_policy || ut->policy == CAPMEM_UNTYPED_WATERMARK) {
            capmem_alloc_reset(ut->alloc);
        }
        ut->full = false;
    }
    err = place_run(ut, attr, rel, fn);
    if (err != CAPMEM_OK) {
        /*
         * A reset of a childless untyped is invisible (no child, no
         * memory in use), except for the full flag, which we restore.
         */
        ut->full = was_full;
        goto out;
    }

    /* Invoke: nothing below can fail. */
    for (uint32_t i = 0; i < attr->count; i++) {
        capmem__ut_child_t *r = recs[i];
        r->parent = ut;
        r->offset = ut->base.offset + rel[i];
        r->size_bits = attr->size_bits;
        r->device = ut->base.device;
        ut->children++;
        if (!ut->base.device) {
            capmem__backing_zero(&arena->mem, r->offset, sz);
        }
        dest[i] = capmem__cap_create(arena, r->type, r, CAPMEM_RIGHTS_ALL, CAPMEM__SLOT_ORIGINAL,
                                     capmem__slot_index(&arena->cspace, s), NULL);
        /* Creating a slot may not move the table (it is one fixed mapping). */
    }
    nrec = 0;
    if (capmem__events_on(arena)) {
        capmem__emitf(arena, CAPMEM_EVENT_RETYPE, untyped, sz, attr->count,
                      "retype %u %s of %llu bytes at offset 0x%llx", attr->count,
                      capmem_obj_type_name(attr->type), (unsigned long long)sz,
                      (unsigned long long)rel[0]);
    }
out:
    while (nrec > 0) {
        nrec--;
        if (recs[nrec]->type == CAPMEM_OBJ_UNTYPED) {
            ut_free((capmem__untyped_t *)recs[nrec]);
        } else {
            capmem__free(recs[nrec]);
        }
    }
    CAPMEM__LEAVE(arena);
    return err;
}

capmem_err_t capmem_untyped_copy(capmem_arena_t *arena, capmem_cap_t untyped, capmem_cap_t *out)
{
    if (arena == NULL || out == NULL) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, __func__, "arena or out is NULL");
    }
    CAPMEM__ENTER_OR_RETURN(arena);
    capmem__slot_t *s = NULL;
    capmem__untyped_t *ut = NULL;
    capmem__untyped_t *cp = NULL;
    capmem_err_t err = lookup_ut(arena, untyped, CAPMEM_RIGHT_GRANT, __func__, &s, &ut);
    if (err == CAPMEM_OK && !childless(s, ut)) {
        err = capmem__fail(CAPMEM_E_REVOKE_FIRST, __func__,
                           "untyped has children: revoke before copying");
    }
    if (err == CAPMEM_OK) {
        err = capmem__cap_reserve_check(arena, NULL, 1);
    }
    if (err == CAPMEM_OK) {
        err = ut_new(ut->user_policy ? CAPMEM_UNTYPED_WATERMARK : ut->policy, ut->base.offset,
                     ut->base.size_bits, ut->base.device, &cp);
    }
    if (err == CAPMEM_OK) {
        /*
         * The copy covers the same memory, so it is not a child that takes
         * memory from the original's allocator: parent stays NULL and the
         * original is marked full instead, as seL4 sets its free index to
         * the end.
         */
        *out = capmem__cap_create(arena, CAPMEM_OBJ_UNTYPED, cp, s->rights, CAPMEM__SLOT_ORIGINAL,
                                  capmem__slot_index(&arena->cspace, s), NULL);
        ut->full = true;
    }
    CAPMEM__LEAVE(arena);
    return err;
}

/* ---- claim (for the RAM service) ---------------------------------------- */

capmem_err_t capmem__untyped_claim(capmem_arena_t *arena, capmem_cap_t untyped,
                                   capmem__ut_child_t *child, const capmem__ut_claim_t *claim,
                                   capmem_cap_t *child_cap)
{
    const char *func = NULL;
    capmem__slot_t *s = NULL;
    capmem__untyped_t *ut = NULL;
    capmem_err_t err = lookup_ut(arena, untyped, CAPMEM_RIGHT_WRITE, func, &s, &ut);
    if (err != CAPMEM_OK) {
        return err;
    }
    if (ut->base.device) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, func, "device untyped is not RAM");
    }
    if (!childless(s, ut)) {
        return capmem__fail(CAPMEM_E_REVOKE_FIRST, func,
                            "untyped has children: revoke it before giving it away");
    }
    err = capmem__cap_reserve_check(arena, NULL, 1);
    if (err != CAPMEM_OK) {
        return err;
    }
    capmem_alloc_reset(ut->alloc);
    ut->full = false;
    uint64_t rel = 0;
    err = capmem_alloc_alloc(ut->alloc, ut_size(ut), ut_size(ut), &rel);
    if (err != CAPMEM_OK) {
        return err; /* a user policy that cannot hand out its whole span */
    }
    child->type = CAPMEM_OBJ_KOBJ;
    child->claim = claim;
    child->parent = ut;
    child->offset = ut->base.offset + rel;
    child->size_bits = ut->base.size_bits;
    child->device = false;
    ut->children++;
    capmem__backing_zero(&arena->mem, child->offset, ut_size(ut));
    *child_cap =
        capmem__cap_create(arena, CAPMEM_OBJ_KOBJ, child, CAPMEM_RIGHTS_ALL, CAPMEM__SLOT_ORIGINAL,
                           capmem__slot_index(&arena->cspace, s), NULL);
    return CAPMEM_OK;
}

/* ---- frames and kernel objects ------------------------------------------ */

static capmem_err_t lookup_leaf(capmem_arena_t *arena, capmem_cap_t cap, unsigned rights,
                                const char *func, capmem__ut_child_t **out)
{
    capmem__slot_t *s = NULL;
    capmem_err_t err = capmem__cap_lookup(arena, cap, CAPMEM_OBJ_NONE, 0, &s);
    if (err != CAPMEM_OK) {
        return err;
    }
    if (s->type != CAPMEM_OBJ_FRAME && s->type != CAPMEM_OBJ_KOBJ) {
        return capmem__fail(CAPMEM_E_WRONG_TYPE, func,
                            "capability names a %s, a frame or kernel object is needed",
                            capmem_obj_type_name((capmem_obj_type_t)s->type));
    }
    if ((rights & ~(unsigned)s->rights) != 0) {
        return capmem__fail(CAPMEM_E_DENIED, func,
                            "capability has rights 0x%x, the operation needs 0x%x", s->rights,
                            rights);
    }
    *out = (capmem__ut_child_t *)s->obj;
    return CAPMEM_OK;
}

capmem_err_t capmem_object_info(capmem_arena_t *arena, capmem_cap_t obj, capmem_object_info_t *info)
{
    if (arena == NULL || info == NULL) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, __func__, "arena or info is NULL");
    }
    CAPMEM__ENTER_OR_RETURN(arena);
    capmem__ut_child_t *c = NULL;
    capmem_err_t err = lookup_leaf(arena, obj, 0, __func__, &c);
    if (err == CAPMEM_OK) {
        info->type = c->type;
        info->offset = c->offset;
        info->size_bits = c->size_bits;
        info->device = c->device;
        info->phys = arena->mem.phys_base + c->offset;
        if (c->device) {
            capmem__device_t *d = capmem__device_at_backing(&arena->mem, c->offset, 1);
            info->phys = d != NULL ? d->phys + (c->offset - d->backing_offset) : 0;
        }
    }
    CAPMEM__LEAVE(arena);
    return err;
}

static capmem_err_t frame_access(capmem_arena_t *arena, capmem_cap_t frame, uint64_t offset,
                                 size_t len, unsigned right, const char *func, uint8_t **where)
{
    capmem__ut_child_t *c = NULL;
    capmem_err_t err = lookup_leaf(arena, frame, right, func, &c);
    if (err != CAPMEM_OK) {
        return err;
    }
    if (c->type != CAPMEM_OBJ_FRAME) {
        return capmem__fail(CAPMEM_E_WRONG_TYPE, func, "a kernel object has no readable bytes");
    }
    uint64_t end;
    if (!capmem__add_ok(offset, len, &end) || end > (1ull << c->size_bits)) {
        capmem__fail(CAPMEM_E_INVALID_ARGS, func,
                     "access 0x%llx+0x%zx is outside the 0x%llx-byte frame",
                     (unsigned long long)offset, len, (unsigned long long)(1ull << c->size_bits));
        capmem__detail()->address = offset;
        return CAPMEM_E_INVALID_ARGS;
    }
    *where = capmem__bytes(&arena->mem, c->offset + offset);
    return CAPMEM_OK;
}

capmem_err_t capmem_frame_read(capmem_arena_t *arena, capmem_cap_t frame, uint64_t offset,
                               void *buf, size_t len)
{
    if (arena == NULL || buf == NULL) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, __func__, "arena or buf is NULL");
    }
    CAPMEM__ENTER_OR_RETURN(arena);
    uint8_t *p = NULL;
    capmem_err_t err = frame_access(arena, frame, offset, len, CAPMEM_RIGHT_READ, __func__, &p);
    if (err == CAPMEM_OK) {
        memcpy(buf, p, len);
    }
    CAPMEM__LEAVE(arena);
    return err;
}

capmem_err_t capmem_frame_write(capmem_arena_t *arena, capmem_cap_t frame, uint64_t offset,
                                const void *buf, size_t len)
{
    if (arena == NULL || buf == NULL) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, __func__, "arena or buf is NULL");
    }
    CAPMEM__ENTER_OR_RETURN(arena);
    uint8_t *p = NULL;
    capmem_err_t err = frame_access(arena, frame, offset, len, CAPMEM_RIGHT_WRITE, __func__, &p);
    if (err == CAPMEM_OK) {
        memcpy(p, buf, len);
    }
    CAPMEM__LEAVE(arena);
    return err;
}

/* ---- checker ------------------------------------------------------------- */

typedef struct span {
    const capmem__untyped_t *parent;
    uint64_t off;
    uint64_t size;
} span_t;

static int cmp_span(const void *x, const void *y)
{
    const span_t *a = x;
    const span_t *b = y;
    if (a->parent != b->parent) {
        return ((uintptr_t)a->parent > (uintptr_t)b->parent) -
               ((uintptr_t)a->parent < (uintptr_t)b->parent);
    }
    return (a->off > b->off) - (a->off < b->off);
}

static bool is_ut_child(const capmem__slot_t *s)
{
    return (s->flags & CAPMEM__SLOT_ORIGINAL) &&
           (s->type == CAPMEM_OBJ_UNTYPED || s->type == CAPMEM_OBJ_FRAME ||
            s->type == CAPMEM_OBJ_KOBJ);
}

/*
 * Every live object retyped from an untyped lies inside its parent, no two
 * children of one parent overlap, each parent's children count is the
 * number of its live children, and each policy's own check passes.
 * O(n log n) in the number of capabilities.
 */
static capmem_err_t ut_check(capmem_arena_t *arena, void *state, char *why, size_t len)
{
    (void)state;
    capmem__cspace_t *cs = &arena->cspace;
    size_t n = 0;
    for (uint32_t i = 1; i < cs->high; i++) {
        const capmem__slot_t *s = &cs->slots[i];
        n += is_ut_child(s) && ((capmem__ut_child_t *)s->obj)->parent != NULL;
    }
    span_t *spans = capmem__malloc((n + 1) * sizeof(*spans));
    if (spans == NULL) {
        snprintf(why, len, "untyped check: no host memory");
        return CAPMEM_E_HOST_NOMEM;
    }
    size_t k = 0;
    capmem_err_t err = CAPMEM_OK;
    for (uint32_t i = 1; i < cs->high && err == CAPMEM_OK; i++) {
        const capmem__slot_t *s = &cs->slots[i];
        if (!is_ut_child(s)) {
            continue;
        }
        const capmem__ut_child_t *c = (const capmem__ut_child_t *)s->obj;
        if (s->type == CAPMEM_OBJ_UNTYPED) {
            const capmem__untyped_t *ut = (const capmem__untyped_t *)c;
            char sub[160];
            if (capmem_alloc_check(ut->alloc, sub, sizeof(sub)) != CAPMEM_OK) {
                snprintf(why, len, "untyped at 0x%llx: policy check: %s",
                         (unsigned long long)c->offset, sub);
                err = CAPMEM_E_CORRUPT;
            }
        }
        if (c->parent != NULL) {
            spans[k++] = (span_t){c->parent, c->offset, 1ull << c->size_bits};
        }
    }
    qsort(spans, k, sizeof(*spans), cmp_span);
    for (size_t i = 0; i < k && err == CAPMEM_OK;) {
        const capmem__untyped_t *p = spans[i].parent;
        size_t j = i;
        for (; j < k && spans[j].parent == p; j++) {
            if (spans[j].off < p->base.offset ||
                spans[j].off + spans[j].size > p->base.offset + ut_size(p)) {
                snprintf(why, len, "untyped at 0x%llx: child at 0x%llx lies outside it",
                         (unsigned long long)p->base.offset, (unsigned long long)spans[j].off);
                err = CAPMEM_E_CORRUPT;
                break;
            }
            if (j > i && spans[j - 1].off + spans[j - 1].size > spans[j].off) {
                snprintf(why, len, "untyped at 0x%llx: children at 0x%llx and 0x%llx overlap",
                         (unsigned long long)p->base.offset, (unsigned long long)spans[j - 1].off,
                         (unsigned long long)spans[j].off);
                err = CAPMEM_E_CORRUPT;
                break;
            }
        }
        if (err == CAPMEM_OK && j - i != p->children) {
            snprintf(why, len, "untyped at 0x%llx counts %llu children, %zu are alive",
                     (unsigned long long)p->base.offset, (unsigned long long)p->children, j - i);
            err = CAPMEM_E_CORRUPT;
        }
        i = j;
    }
    capmem__free(spans);
    return err;
}
