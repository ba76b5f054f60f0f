/* SPDX-License-Identifier: MIT */
/*
 * Layer 4: untyped memory: retype, copy, info, policies, frames. The boot
 * untypeds are made in untyped_boot.c, the layer's checker is
 * untyped_check.c.
 *
 * Every mutating call is split as seL4 splits decodeUntypedInvocation from
 * invokeUntyped_Retype: decode_x() checks everything in seL4's order and
 * reserves everything the call will consume (capability slots, host
 * records, the placement in the untyped's policy) into a plan; invoke_x()
 * then commits the plan and cannot fail. A failed call changes nothing.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc_internal.h"
#include "untyped_internal.h"

static void ut_destroy(capmem_arena_t *arena, void *obj, capmem_cap_t handle);
static void leaf_destroy(capmem_arena_t *arena, void *obj, capmem_cap_t handle);
static const char *leaf_name(const void *obj);
static int ut_describe(capmem_arena_t *arena, const void *obj, char *buf, size_t len);
static int leaf_describe(capmem_arena_t *arena, const void *obj, char *buf, size_t len);

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

void capmem__ut_register_types(capmem_arena_t *arena)
{
    capmem__type_register(arena, &untyped_type);
    capmem__type_register(arena, &frame_type);
    capmem__type_register(arena, &kobj_type);
}

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

/* ---- records ------------------------------------------------------------- */

static uint64_t ut_size(const capmem__untyped_t *ut)
{
    return 1ull << ut->base.size_bits;
}

static bool is_watermark(const capmem__untyped_t *ut)
{
    return ut->policy == CAPMEM_UNTYPED_WATERMARK && !ut->user_policy;
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
    return capmem__fail(CAPMEM_E_INVALID_ARGS, NULL, "unknown policy %d", (int)policy);
}

capmem_err_t capmem__ut_new(capmem_untyped_policy_t policy, uint64_t offset, unsigned size_bits,
                            bool device, capmem__untyped_t **out)
{
    capmem__untyped_t *ut = capmem__calloc(1, sizeof(*ut));
    if (ut == NULL) {
        return capmem__fail(CAPMEM_E_HOST_NOMEM, NULL, "no host memory for a record");
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

void capmem__ut_free(capmem__untyped_t *ut)
{
    capmem_alloc_destroy(ut->alloc);
    capmem__free(ut);
}

/* ---- destroy and describe hooks ------------------------------------------- */

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
    CAPMEM_ASSERT(ut->copies == 0, "a copy lies in its source's subtree and dies first");
    capmem__ut_child_release(arena, &ut->base);
    if (ut->copy_of != NULL) {
        CAPMEM_ASSERT(ut->copy_of->copies > 0, "a source counts each live copy");
        ut->copy_of->copies--;
    }
    if (ut->device != NULL) {
        CAPMEM_ASSERT(ut->device->pins > 0, "pinned once per covering untyped");
        ut->device->pins--;
    }
    capmem__ut_boot_forget(arena, ut);
    capmem__ut_free(ut);
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
    if (c->claim != NULL) {
        return c->claim->name;
    }
    return c->type == CAPMEM_OBJ_FRAME ? "frame" : "kernel object";
}

/* The physical address of a child's first byte: RAM, or the device range it lies in. */
static uint64_t child_phys(capmem_arena_t *arena, const capmem__ut_child_t *c)
{
    if (!c->device) {
        return arena->mem.phys_base + c->offset;
    }
    const capmem__device_t *d = capmem__device_at_backing(&arena->mem, c->offset, 1);
    return d != NULL ? d->phys + (c->offset - d->backing_offset) : 0;
}

static int ut_describe(capmem_arena_t *arena, const void *obj, char *buf, size_t len)
{
    const capmem__untyped_t *ut = obj;
    return snprintf(buf, len, "untyped of 2^%u bytes at phys 0x%llx, %s%s, %llu children",
                    ut->base.size_bits, (unsigned long long)child_phys(arena, &ut->base),
                    ut->base.device ? "device, " : "", capmem_alloc_name(ut->alloc),
                    (unsigned long long)ut->children);
}

static int leaf_describe(capmem_arena_t *arena, const void *obj, char *buf, size_t len)
{
    const capmem__ut_child_t *c = obj;
    return snprintf(buf, len, "%s of 2^%u bytes at phys 0x%llx", leaf_name(obj), c->size_bits,
                    (unsigned long long)child_phys(arena, c));
}

/* ---- lookup and info ----------------------------------------------------- */

static capmem_err_t lookup_ut(capmem_arena_t *arena, capmem_cap_t cap, unsigned rights,
                              capmem__slot_t **slot, capmem__untyped_t **ut)
{
    capmem_err_t err = capmem__cap_lookup(arena, cap, CAPMEM_OBJ_UNTYPED, rights, slot);
    if (err == CAPMEM_OK) {
        *ut = (capmem__untyped_t *)(*slot)->obj;
    }
    return err;
}

/*
 * seL4's reset condition, for the capability in slot @p s: nothing derived
 * from it (ensureNoChildren), no live child retyped through any capability
 * to the untyped, and no live copy (whose capability may hang below
 * another capability to the same untyped).
 */
static bool childless(const capmem__slot_t *s, const capmem__untyped_t *ut)
{
    return s->first_child == 0 && ut->children == 0 && ut->copies == 0;
}

bool capmem__ut_childless(const capmem__slot_t *s)
{
    return childless(s, (const capmem__untyped_t *)s->obj);
}

/*
 * What a retype through slot @p s can use: all of the untyped when it is
 * childless (the retype resets it first), nothing while a copy covers it
 * (seL4 marks the source full), else what its policy has left.
 */
static uint64_t ut_avail(const capmem__slot_t *s, const capmem__untyped_t *ut)
{
    if (childless(s, ut)) {
        return ut_size(ut);
    }
    return ut->copies > 0 ? 0 : capmem_alloc_avail(ut->alloc);
}

static uint64_t ut_largest(const capmem__slot_t *s, const capmem__untyped_t *ut)
{
    if (childless(s, ut)) {
        return ut_size(ut);
    }
    return ut->copies > 0 ? 0 : capmem_alloc_largest(ut->alloc);
}

void capmem__ut_fill_info(capmem_arena_t *arena, const capmem__slot_t *s,
                          capmem_untyped_info_t *info)
{
    const capmem__untyped_t *ut = s->obj;
    memset(info, 0, sizeof(*info));
    info->cap = capmem__slot_handle(&arena->cspace, capmem__slot_index(&arena->cspace, s));
    info->offset = ut->base.offset;
    info->phys = child_phys(arena, &ut->base);
    info->size_bits = ut->base.size_bits;
    info->device = ut->base.device;
    info->policy =
        ut->user_policy ? capmem_alloc_name(ut->alloc) : capmem_untyped_policy_name(ut->policy);
    info->free_bytes = ut_avail(s, ut);
    info->largest_free = ut_largest(s, ut);
    if (is_watermark(ut)) {
        info->watermark = ut_size(ut) - capmem_alloc_avail(ut->alloc);
    }
    info->children = ut->children;
    info->full = ut->copies > 0;
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
    capmem_err_t err = lookup_ut(arena, untyped, 0, &s, &ut);
    if (err == CAPMEM_OK) {
        capmem__ut_fill_info(arena, s, info);
    }
    CAPMEM__LEAVE(arena);
    return err;
}

/* ---- set_policy ---------------------------------------------------------- */

typedef struct policy_plan {
    capmem__untyped_t *ut;
    capmem_alloc_t *alloc; /* the new policy: the caller's, or a built-in one made by decode */
    capmem_untyped_policy_t policy;
    bool user;
} policy_plan_t;

static capmem_err_t decode_set_policy(capmem_arena_t *arena, capmem_cap_t untyped,
                                      capmem_untyped_policy_t policy, capmem_alloc_t *user,
                                      policy_plan_t *plan)
{
    capmem__slot_t *s = NULL;
    capmem__untyped_t *ut = NULL;
    capmem_err_t err = lookup_ut(arena, untyped, CAPMEM_RIGHT_WRITE, &s, &ut);
    if (err != CAPMEM_OK) {
        return err;
    }
    if (!childless(s, ut)) {
        return capmem__fail(CAPMEM_E_REVOKE_FIRST, NULL,
                            "untyped has %llu children, %u copies or derived capabilities: "
                            "revoke them first",
                            (unsigned long long)ut->children, ut->copies);
    }
    if (user != NULL && (capmem_alloc_base(user) != 0 || capmem_alloc_size(user) < ut_size(ut))) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, NULL,
                            "the user policy's span does not cover [0, 0x%llx)",
                            (unsigned long long)ut_size(ut));
    }
    plan->alloc = user;
    if (user == NULL) {
        err = make_policy(policy, ut->base.size_bits, &plan->alloc);
        if (err != CAPMEM_OK) {
            return err;
        }
    }
    plan->ut = ut;
    plan->user = user != NULL;
    plan->policy = user != NULL ? CAPMEM_UNTYPED_WATERMARK : policy;
    return CAPMEM_OK;
}

static void invoke_set_policy(const policy_plan_t *plan)
{
    capmem__untyped_t *ut = plan->ut;
    capmem_alloc_destroy(ut->alloc);
    ut->alloc = plan->alloc;
    if (plan->user) {
        /*
         * A user policy's span may be wider than the untyped (a custom
         * policy without a span has [0, 2^64)): the wrapper checks every
         * answer against the untyped's own span from now on, so an answer
         * past its end is POLICY like any other wrong answer.
         */
        capmem__alloc_narrow(ut->alloc, 0, ut_size(ut));
    }
    ut->user_policy = plan->user;
    ut->policy = plan->policy;
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
    policy_plan_t plan = {0};
    capmem_err_t err = decode_set_policy(arena, untyped, policy, user, &plan);
    if (err == CAPMEM_OK) {
        invoke_set_policy(&plan);
        if (capmem__event_wanted(arena, CAPMEM_EVENT_SET_POLICY)) {
            const uint64_t which =
                plan.user ? (uint64_t)CAPMEM_UNTYPED_INHERIT + 1 : (uint64_t)plan.policy;
            capmem__emit(
                arena, &(capmem__ev_t){.kind = CAPMEM_EVENT_SET_POLICY, .cap = untyped, .a = which},
                "untyped places its children with the %s policy",
                plan.user ? capmem_alloc_name(plan.alloc)
                          : capmem_untyped_policy_name(plan.policy));
        }
    }
    CAPMEM__LEAVE(arena);
    return err;
}

/* ---- retype -------------------------------------------------------------- */

/* Step 1 of decode, without the capability: type, size and count, in seL4's order. */
static capmem_err_t decode_args(capmem_arena_t *arena, const capmem_retype_attr_t *attr,
                                size_t dest_len)
{
    const capmem_obj_type_t t = attr->type;
    if (t != CAPMEM_OBJ_UNTYPED && t != CAPMEM_OBJ_FRAME && t != CAPMEM_OBJ_KOBJ) {
        capmem__fail(CAPMEM_E_INVALID_ARGS, NULL,
                     "Untyped Retype: object type %d (%s) cannot be retyped from untyped", (int)t,
                     capmem_obj_type_name(t));
        capmem__detail()->argument = 1;
        return CAPMEM_E_INVALID_ARGS;
    }
    if (attr->size_bits > CAPMEM_UNTYPED_MAX_BITS) {
        return capmem__fail_range(NULL, 2, attr->size_bits, 0, CAPMEM_UNTYPED_MAX_BITS,
                                  "Untyped Retype: object size bits");
    }
    if (t == CAPMEM_OBJ_UNTYPED && attr->size_bits < CAPMEM_UNTYPED_MIN_BITS) {
        capmem__fail(CAPMEM_E_INVALID_ARGS, NULL,
                     "Untyped Retype: requested untyped size %u bits is below the minimum of %u",
                     attr->size_bits, CAPMEM_UNTYPED_MIN_BITS);
        capmem__detail()->argument = 2;
        return CAPMEM_E_INVALID_ARGS;
    }
    if (t == CAPMEM_OBJ_FRAME && attr->size_bits < arena->mem.page_shift) {
        return capmem__fail_range(NULL, 2, attr->size_bits, arena->mem.page_shift,
                                  CAPMEM_UNTYPED_MAX_BITS, "Untyped Retype: frame size bits");
    }
    if (t == CAPMEM_OBJ_KOBJ && attr->size_bits < CAPMEM_UNTYPED_MIN_BITS) {
        return capmem__fail_range(NULL, 2, attr->size_bits, CAPMEM_UNTYPED_MIN_BITS,
                                  CAPMEM_UNTYPED_MAX_BITS, "Untyped Retype: object size bits");
    }
    if (attr->count < 1 || attr->count > CAPMEM_RETYPE_MAX_COUNT) {
        return capmem__fail_range(NULL, 3, attr->count, 1, CAPMEM_RETYPE_MAX_COUNT,
                                  "Untyped Retype: number of objects");
    }
    if (dest_len < attr->count) {
        capmem__fail(CAPMEM_E_INVALID_ARGS, NULL,
                     "Untyped Retype: %zu destination slots for %u objects", dest_len, attr->count);
        capmem__detail()->argument = 4;
        return CAPMEM_E_INVALID_ARGS;
    }
    if (attr->type == CAPMEM_OBJ_UNTYPED && attr->child_policy != CAPMEM_UNTYPED_INHERIT &&
        (unsigned)attr->child_policy > CAPMEM_UNTYPED_BUDDY) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, NULL, "unknown child policy %d",
                            (int)attr->child_policy);
    }
    return CAPMEM_OK;
}

/* seL4's NotEnoughMemory, word for word (with its closing period). */
static capmem_err_t insufficient(uint32_t count, unsigned bits, uint64_t available)
{
    return capmem__fail_space(
        CAPMEM_E_NOT_ENOUGH_MEMORY, NULL, (uint64_t)count << bits, available,
        "Untyped Retype: Insufficient memory (%u * %llu bytes needed, %llu bytes available).",
        count, (unsigned long long)(1ull << bits), (unsigned long long)available);
}

/* An explicit offset: only with exact placement, aligned, and inside the untyped. */
static capmem_err_t decode_offset(const capmem__untyped_t *ut, const capmem_retype_attr_t *attr)
{
    const uint64_t sz = 1ull << attr->size_bits;
    uint64_t end;
    if (attr->offset == CAPMEM_RETYPE_ANYWHERE) {
        return CAPMEM_OK;
    }
    if (is_watermark(ut)) {
        capmem__fail(CAPMEM_E_INVALID_ARGS, NULL,
                     "a watermark untyped places objects itself: no offset");
        capmem__detail()->address = attr->offset;
        return CAPMEM_E_INVALID_ARGS;
    }
    if (!capmem__is_aligned(attr->offset, sz) ||
        !capmem__add_ok(attr->offset, (uint64_t)attr->count * sz, &end) || end > ut_size(ut)) {
        capmem__fail(CAPMEM_E_INVALID_ARGS, NULL,
                     "offset 0x%llx is misaligned for 2^%u-byte objects or outside the untyped "
                     "(0x%llx bytes)",
                     (unsigned long long)attr->offset, attr->size_bits,
                     (unsigned long long)ut_size(ut));
        capmem__detail()->address = attr->offset;
        return CAPMEM_E_INVALID_ARGS;
    }
    return CAPMEM_OK;
}

static void free_records(capmem__ut_child_t **recs, uint32_t n)
{
    while (n > 0) {
        n--;
        if (recs[n]->type == CAPMEM_OBJ_UNTYPED) {
            capmem__ut_free((capmem__untyped_t *)recs[n]);
        } else {
            capmem__free(recs[n]);
        }
    }
}

/* Host records for the new objects, all or none. */
static capmem_err_t make_records(const capmem__untyped_t *ut, const capmem_retype_attr_t *attr,
                                 capmem__ut_child_t **recs)
{
    for (uint32_t i = 0; i < attr->count; i++) {
        capmem_err_t err = CAPMEM_OK;
        if (attr->type == CAPMEM_OBJ_UNTYPED) {
            capmem_untyped_policy_t cp = attr->child_policy;
            if (cp == CAPMEM_UNTYPED_INHERIT) {
                cp = ut->user_policy ? CAPMEM_UNTYPED_WATERMARK : ut->policy;
            }
            capmem__untyped_t *cu = NULL;
            err = capmem__ut_new(cp, 0, attr->size_bits, ut->base.device, &cu);
            recs[i] = cu != NULL ? &cu->base : NULL;
        } else {
            recs[i] = capmem__calloc(1, sizeof(*recs[i]));
            if (recs[i] == NULL) {
                err = capmem__fail(CAPMEM_E_HOST_NOMEM, NULL, "no host memory for a record");
            } else {
                recs[i]->type = attr->type;
            }
        }
        if (err != CAPMEM_OK) {
            free_records(recs, i);
            return err;
        }
    }
    return CAPMEM_OK;
}

/*
 * Place count objects; relative offsets into rel[]. Transactional: on
 * failure every object placed so far is freed again.
 */
static capmem_err_t place(capmem__untyped_t *ut, const capmem_retype_attr_t *attr, uint64_t *rel)
{
    const uint64_t sz = 1ull << attr->size_bits;
    const uint32_t n = attr->count;
    capmem_err_t err = CAPMEM_OK;
    uint32_t i;
    for (i = 0; i < n; i++) {
        if (attr->offset != CAPMEM_RETYPE_ANYWHERE) {
            rel[i] = attr->offset + i * sz;
            err = capmem_alloc_alloc_at(ut->alloc, rel[i], sz);
        } else if (i > 0) {
            /* Contiguous: the next object goes right after the previous one. */
            rel[i] = rel[i - 1] + sz;
            err = capmem_alloc_alloc_at(ut->alloc, rel[i], sz);
            if (err != CAPMEM_OK && is_watermark(ut)) {
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
    const capmem_err_t place_err = err;
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
    return insufficient(n, attr->size_bits, capmem_alloc_avail(ut->alloc));
}

/*
 * Contiguous placement for range, buddy and user policies when the first
 * block is placed by the policy: find a run for all objects (allocate it
 * whole, free it), then claim it object by object.
 */
static capmem_err_t place_run(capmem__untyped_t *ut, const capmem_retype_attr_t *attr,
                              uint64_t *rel)
{
    const uint64_t sz = 1ull << attr->size_bits;
    if (attr->count == 1 || attr->offset != CAPMEM_RETYPE_ANYWHERE || is_watermark(ut)) {
        return place(ut, attr, rel);
    }
    const uint64_t run = (uint64_t)attr->count * sz;
    uint64_t at;
    capmem_err_t err = capmem_alloc_alloc(ut->alloc, run, sz, &at);
    if (err == CAPMEM_E_HOST_NOMEM || err == CAPMEM_E_POLICY) {
        return err;
    }
    if (err != CAPMEM_OK) {
        return insufficient(attr->count, attr->size_bits, capmem_alloc_avail(ut->alloc));
    }
    err = capmem_alloc_free(ut->alloc, at, run);
    if (err != CAPMEM_OK) {
        return err; /* a user policy refused the run it just gave: its detail says why */
    }
    capmem_retype_attr_t exact = *attr;
    exact.offset = at;
    return place(ut, &exact, rel);
}

typedef struct retype_plan {
    capmem__untyped_t *ut;
    capmem_cap_t untyped; /* the invoked capability, for the event */
    uint32_t slot;        /* its slot: the new capabilities become its children */
    capmem_obj_type_t type;
    unsigned size_bits;
    uint32_t count;
    capmem__ut_child_t *recs[CAPMEM_RETYPE_MAX_COUNT]; /* host records, made by decode */
    uint64_t rel[CAPMEM_RETYPE_MAX_COUNT];             /* placed offsets, relative to ut */
} retype_plan_t;

/*
 * seL4's decodeUntypedInvocation: arguments, capability, memory (as seL4
 * counts it: free bytes >> object size >= count), device rules, offset,
 * then the reservations: slots, host records, and last the placement, so
 * a failed placement has only host records to give back.
 */
static capmem_err_t decode_retype(capmem_arena_t *arena, capmem_cap_t untyped,
                                  const capmem_retype_attr_t *attr, size_t dest_len,
                                  retype_plan_t *plan)
{
    capmem_err_t err = decode_args(arena, attr, dest_len);
    if (err != CAPMEM_OK) {
        return err;
    }
    capmem__slot_t *s = NULL;
    capmem__untyped_t *ut = NULL;
    err = lookup_ut(arena, untyped, CAPMEM_RIGHT_WRITE, &s, &ut);
    if (err != CAPMEM_OK) {
        return err;
    }
    const uint64_t avail = ut_avail(s, ut);
    if ((avail >> attr->size_bits) < attr->count) {
        return insufficient(attr->count, attr->size_bits, avail);
    }
    if (ut->base.device && attr->type == CAPMEM_OBJ_KOBJ) {
        capmem__fail(CAPMEM_E_INVALID_ARGS, NULL,
                     "Untyped Retype: Creating kernel objects with device untyped");
        capmem__detail()->argument = 1;
        return CAPMEM_E_INVALID_ARGS;
    }
    err = decode_offset(ut, attr);
    if (err != CAPMEM_OK) {
        return err;
    }
    err = capmem__cap_reserve_check(arena, NULL, attr->count);
    if (err != CAPMEM_OK) {
        return err;
    }
    err = make_records(ut, attr, plan->recs);
    if (err != CAPMEM_OK) {
        return err;
    }
    /*
     * seL4's reset: a childless untyped starts again at 0. Range and buddy
     * got every child's memory back when it was deleted, so for them a
     * reset would only cost time; watermark and user policies are reset.
     * If the placement then fails the reset stays, and nobody can tell: a
     * childless untyped has nothing in use and info reports it all free
     * already (ut_avail). A watermark placement after a reset cannot fail
     * anyway; only a user policy's own state shows that it was reset.
     */
    if (childless(s, ut) && (ut->user_policy || ut->policy == CAPMEM_UNTYPED_WATERMARK)) {
        capmem_alloc_reset(ut->alloc);
    }
    err = place_run(ut, attr, plan->rel);
    if (err != CAPMEM_OK) {
        free_records(plan->recs, attr->count);
        return err;
    }
    plan->ut = ut;
    plan->untyped = untyped;
    plan->slot = capmem__slot_index(&arena->cspace, s);
    plan->type = attr->type;
    plan->size_bits = attr->size_bits;
    plan->count = attr->count;
    return CAPMEM_OK;
}

/* seL4's invokeUntyped_Retype: make the planned objects; cannot fail. */
static void invoke_retype(capmem_arena_t *arena, const retype_plan_t *plan, capmem_cap_t *dest)
{
    capmem__untyped_t *ut = plan->ut;
    const uint64_t sz = 1ull << plan->size_bits;
    for (uint32_t i = 0; i < plan->count; i++) {
        capmem__ut_child_t *r = plan->recs[i];
        r->parent = ut;
        r->offset = ut->base.offset + plan->rel[i];
        r->size_bits = plan->size_bits;
        r->device = ut->base.device;
        ut->children++;
        if (!ut->base.device) {
            capmem__backing_zero(&arena->mem, r->offset, sz);
        }
        dest[i] = capmem__cap_create(arena, r->type, r, CAPMEM_RIGHTS_ALL, CAPMEM__SLOT_ORIGINAL,
                                     plan->slot, NULL);
    }
    arena->stats.retypes++;
    if (capmem__event_wanted(arena, CAPMEM_EVENT_RETYPE)) {
        capmem__emit(arena,
                     &(capmem__ev_t){.kind = CAPMEM_EVENT_RETYPE,
                                     .cap = plan->untyped,
                                     .other = dest[0],
                                     .a = sz,
                                     .b = plan->count,
                                     .offset = ut->base.offset + plan->rel[0],
                                     .size = sz * plan->count},
                     "retype %u %s of %llu bytes at offset 0x%llx", plan->count,
                     capmem_obj_type_name(plan->type), (unsigned long long)sz,
                     (unsigned long long)plan->rel[0]);
    }
}

capmem_err_t capmem_untyped_retype(capmem_arena_t *arena, capmem_cap_t untyped,
                                   const capmem_retype_attr_t *attr, capmem_cap_t *dest,
                                   size_t dest_len)
{
    if (arena == NULL || attr == NULL || dest == NULL) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, __func__, "arena, attr or dest is NULL");
    }
    CAPMEM__ENTER_OR_RETURN(arena);
    retype_plan_t plan;
    capmem_err_t err = decode_retype(arena, untyped, attr, dest_len, &plan);
    if (err == CAPMEM_OK) {
        invoke_retype(arena, &plan, dest);
    }
    CAPMEM__LEAVE(arena);
    return err;
}

/* ---- copy ---------------------------------------------------------------- */

typedef struct copy_plan {
    capmem__untyped_t *ut;
    uint32_t slot; /* the copied capability: the copy becomes its child */
    unsigned rights;
    capmem__untyped_t *copy; /* the copy's record, made by decode */
} copy_plan_t;

static capmem_err_t decode_copy(capmem_arena_t *arena, capmem_cap_t untyped, copy_plan_t *plan)
{
    capmem__slot_t *s = NULL;
    capmem__untyped_t *ut = NULL;
    capmem_err_t err = lookup_ut(arena, untyped, CAPMEM_RIGHT_GRANT, &s, &ut);
    if (err != CAPMEM_OK) {
        return err;
    }
    if (!childless(s, ut)) {
        return capmem__fail(CAPMEM_E_REVOKE_FIRST, NULL,
                            "untyped has children: revoke before copying");
    }
    err = capmem__cap_reserve_check(arena, NULL, 1);
    if (err != CAPMEM_OK) {
        return err;
    }
    err = capmem__ut_new(ut->user_policy ? CAPMEM_UNTYPED_WATERMARK : ut->policy, ut->base.offset,
                         ut->base.size_bits, ut->base.device, &plan->copy);
    if (err != CAPMEM_OK) {
        return err;
    }
    plan->ut = ut;
    plan->slot = capmem__slot_index(&arena->cspace, s);
    plan->rights = s->rights;
    return CAPMEM_OK;
}

static capmem_cap_t invoke_copy(capmem_arena_t *arena, const copy_plan_t *plan)
{
    /*
     * The copy covers the same memory, so it is no child that takes memory
     * from the source's policy: its parent stays NULL. Instead the source
     * counts it and is full while it lives, as seL4 sets the source's free
     * index to the end (setUntypedCapAsFull).
     */
    plan->copy->copy_of = plan->ut;
    plan->ut->copies++;
    const capmem_cap_t h = capmem__cap_create(arena, CAPMEM_OBJ_UNTYPED, plan->copy, plan->rights,
                                              CAPMEM__SLOT_ORIGINAL, plan->slot, NULL);
    if (capmem__event_wanted(arena, CAPMEM_EVENT_MINT)) {
        capmem__emit(arena,
                     &(capmem__ev_t){.kind = CAPMEM_EVENT_MINT,
                                     .cap = h,
                                     .other = capmem__slot_handle(&arena->cspace, plan->slot),
                                     .a = plan->rights},
                     "copy an untyped capability");
    }
    return h;
}

capmem_err_t capmem_untyped_copy(capmem_arena_t *arena, capmem_cap_t untyped, capmem_cap_t *out)
{
    if (arena == NULL || out == NULL) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, __func__, "arena or out is NULL");
    }
    CAPMEM__ENTER_OR_RETURN(arena);
    copy_plan_t plan = {0};
    capmem_err_t err = decode_copy(arena, untyped, &plan);
    if (err == CAPMEM_OK) {
        *out = invoke_copy(arena, &plan);
    }
    CAPMEM__LEAVE(arena);
    return err;
}

/* ---- claim (for the RAM service) ---------------------------------------- */

typedef struct claim_plan {
    capmem__untyped_t *ut;
    uint32_t slot;
    uint64_t rel; /* where the policy placed the whole span */
} claim_plan_t;

static capmem_err_t decode_claim(capmem_arena_t *arena, capmem_cap_t untyped, claim_plan_t *plan)
{
    capmem__slot_t *s = NULL;
    capmem__untyped_t *ut = NULL;
    capmem_err_t err = lookup_ut(arena, untyped, CAPMEM_RIGHT_WRITE, &s, &ut);
    if (err != CAPMEM_OK) {
        return err;
    }
    if (ut->base.device) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, NULL, "device untyped is not RAM");
    }
    if (!childless(s, ut)) {
        return capmem__fail(CAPMEM_E_REVOKE_FIRST, NULL,
                            "untyped has children: revoke it before giving it away");
    }
    err = capmem__cap_reserve_check(arena, NULL, 1);
    if (err != CAPMEM_OK) {
        return err;
    }
    /* The placement, last. The reset of a childless untyped leaves no trace (decode_retype). */
    capmem_alloc_reset(ut->alloc);
    err = capmem_alloc_alloc(ut->alloc, ut_size(ut), ut_size(ut), &plan->rel);
    if (err != CAPMEM_OK) {
        return err; /* a user policy that cannot hand out its whole span */
    }
    plan->ut = ut;
    plan->slot = capmem__slot_index(&arena->cspace, s);
    return CAPMEM_OK;
}

static capmem_cap_t invoke_claim(capmem_arena_t *arena, const claim_plan_t *plan,
                                 capmem__ut_child_t *child, const capmem__ut_claim_t *claim)
{
    capmem__untyped_t *ut = plan->ut;
    child->type = CAPMEM_OBJ_KOBJ;
    child->claim = claim;
    child->parent = ut;
    child->offset = ut->base.offset + plan->rel;
    child->size_bits = ut->base.size_bits;
    child->device = false;
    ut->children++;
    capmem__backing_zero(&arena->mem, child->offset, ut_size(ut));
    return capmem__cap_create(arena, CAPMEM_OBJ_KOBJ, child, CAPMEM_RIGHTS_ALL,
                              CAPMEM__SLOT_ORIGINAL, plan->slot, NULL);
}

capmem_err_t capmem__untyped_claim(capmem_arena_t *arena, capmem_cap_t untyped,
                                   capmem__ut_child_t *child, const capmem__ut_claim_t *claim,
                                   capmem_cap_t *child_cap)
{
    claim_plan_t plan = {0};
    capmem_err_t err = decode_claim(arena, untyped, &plan);
    if (err == CAPMEM_OK) {
        *child_cap = invoke_claim(arena, &plan, child, claim);
    }
    return err;
}

/* ---- frames and kernel objects ------------------------------------------ */

static capmem_err_t lookup_leaf(capmem_arena_t *arena, capmem_cap_t cap, unsigned rights,
                                capmem__ut_child_t **out)
{
    capmem__slot_t *s = NULL;
    capmem_err_t err = capmem__cap_lookup(arena, cap, CAPMEM_OBJ_NONE, 0, &s);
    if (err != CAPMEM_OK) {
        return err;
    }
    if (s->type != CAPMEM_OBJ_FRAME && s->type != CAPMEM_OBJ_KOBJ) {
        return capmem__fail(CAPMEM_E_WRONG_TYPE, NULL,
                            "capability names a %s, a frame or kernel object is needed",
                            capmem_obj_type_name((capmem_obj_type_t)s->type));
    }
    if ((rights & ~(unsigned)s->rights) != 0) {
        return capmem__fail(CAPMEM_E_DENIED, NULL,
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
    capmem_err_t err = lookup_leaf(arena, obj, 0, &c);
    if (err == CAPMEM_OK) {
        info->type = c->type;
        info->offset = c->offset;
        info->size_bits = c->size_bits;
        info->device = c->device;
        info->phys = child_phys(arena, c);
    }
    CAPMEM__LEAVE(arena);
    return err;
}

static capmem_err_t frame_access(capmem_arena_t *arena, capmem_cap_t frame, uint64_t offset,
                                 size_t len, unsigned right, uint8_t **where)
{
    capmem__ut_child_t *c = NULL;
    capmem_err_t err = lookup_leaf(arena, frame, right, &c);
    if (err != CAPMEM_OK) {
        return err;
    }
    if (c->type != CAPMEM_OBJ_FRAME) {
        return capmem__fail(CAPMEM_E_WRONG_TYPE, NULL, "a kernel object has no readable bytes");
    }
    uint64_t end;
    if (!capmem__add_ok(offset, len, &end) || end > (1ull << c->size_bits)) {
        capmem__fail(CAPMEM_E_INVALID_ARGS, NULL,
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
    capmem_err_t err = frame_access(arena, frame, offset, len, CAPMEM_RIGHT_READ, &p);
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
    capmem_err_t err = frame_access(arena, frame, offset, len, CAPMEM_RIGHT_WRITE, &p);
    if (err == CAPMEM_OK) {
        memcpy(p, buf, len);
    }
    CAPMEM__LEAVE(arena);
    return err;
}
