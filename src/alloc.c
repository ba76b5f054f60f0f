/* SPDX-License-Identifier: MIT */
/*
 * The alloc layer's generic front: argument validation shared by every
 * policy (so a user policy only ever sees validated input), dispatch through
 * the vtable, and the check of every answer a policy gives.
 *
 * Validation order, the same for every call: handle and out-pointers, then
 * size, then alignment, then the span. Only then does the policy run, and
 * the policy itself checks everything before it changes anything.
 *
 * Answers. Every alloc answer of every policy must lie inside the span and
 * be aligned as asked (answer_fits: two compares and a mask, cheap enough
 * for the built-ins' hot path). A custom policy is untrusted code, so its
 * wrapper also keeps the shadow set of the blocks it handed out
 * (alloc_shadow.c): an answer that overlaps a live block is refused, and so
 * are, before the policy is asked, a free of a block that is not live and
 * an alloc_at over a live block. A refused answer is CAPMEM_E_POLICY and
 * leaves the wrapper as it was. The built-ins' overlap-freedom is proved by
 * their own check functions instead, which the tests run after every step.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "alloc_internal.h"

capmem_err_t capmem__alloc_broken(char *why, size_t len, const char *fmt, ...)
{
    if (why != NULL && len > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(why, len, fmt, ap);
        va_end(ap);
    }
    return CAPMEM_E_CORRUPT;
}

/* ---- creation ----------------------------------------------------------- */

static capmem_err_t wrap(const char *fn, const capmem_alloc_ops_t *ops, void *self, uint64_t base,
                         uint64_t size, capmem__alloc_kind_t kind, capmem_alloc_t **out)
{
    capmem_alloc_t *a = capmem__malloc(sizeof(*a));
    if (a == NULL) {
        return capmem__fail(CAPMEM_E_HOST_NOMEM, fn, "no host memory for the allocator handle");
    }
    a->ops = ops;
    a->self = self;
    a->base = base;
    a->size = size;
    a->kind = kind;
    a->busy = false;
    a->requested = 0;
    a->shadow = (capmem__shadow_t){0};
    *out = a;
    return CAPMEM_OK;
}

static capmem_err_t check_span(const char *fn, uint64_t base, uint64_t size)
{
    uint64_t end;
    if (size == 0) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, fn, "size is 0");
    }
    if (!capmem__add_ok(base, size, &end)) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, fn, "base 0x%llx + size 0x%llx overflows",
                            (unsigned long long)base, (unsigned long long)size);
    }
    return CAPMEM_OK;
}

/* Build the handle first: the policy is the bigger allocation, and undoing
 * it on a handle failure would need its destroy. */
static capmem_err_t create_builtin(const char *fn, capmem__alloc_kind_t kind, uint64_t base,
                                   uint64_t size, uint64_t p1, unsigned p2, capmem_alloc_t **out)
{
    capmem_alloc_t *a = NULL;
    capmem_err_t err = wrap(fn, NULL, NULL, base, size, kind, &a);
    if (err != CAPMEM_OK) {
        return err;
    }
    void *self = NULL;
    switch (kind) {
    case CAPMEM__ALLOC_WATERMARK:
        a->ops = &capmem__watermark_ops;
        err = capmem__watermark_new(base, size, &self);
        break;
    case CAPMEM__ALLOC_RANGE:
        a->ops = &capmem__range_ops;
        err = capmem__range_new(base, size, p1, &self);
        break;
    case CAPMEM__ALLOC_BUDDY:
    default:
        a->ops = &capmem__buddy_ops;
        err = capmem__buddy_new(base, size, (unsigned)p1, p2, &self);
        break;
    }
    if (err != CAPMEM_OK) {
        capmem__free(a);
        /* The policy set the detail record; name the public function. */
        capmem__detail()->function = fn;
        return err;
    }
    a->self = self;
    *out = a;
    return CAPMEM_OK;
}

capmem_err_t capmem_alloc_create_watermark(uint64_t base, uint64_t size, capmem_alloc_t **out)
{
    if (out == NULL) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, __func__, "out is NULL");
    }
    capmem_err_t err = check_span(__func__, base, size);
    if (err != CAPMEM_OK) {
        return err;
    }
    return create_builtin(__func__, CAPMEM__ALLOC_WATERMARK, base, size, 0, 0, out);
}

capmem_err_t capmem_alloc_create_range(uint64_t base, uint64_t size, uint64_t granule,
                                       capmem_alloc_t **out)
{
    if (out == NULL) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, __func__, "out is NULL");
    }
    capmem_err_t err = check_span(__func__, base, size);
    if (err != CAPMEM_OK) {
        return err;
    }
    if (!capmem__is_pow2(granule)) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, __func__, "granule %llu is not a power of two",
                            (unsigned long long)granule);
    }
    if (!capmem__is_aligned(base, granule) || !capmem__is_aligned(size, granule)) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, __func__,
                            "base 0x%llx and size 0x%llx must be multiples of the granule %llu",
                            (unsigned long long)base, (unsigned long long)size,
                            (unsigned long long)granule);
    }
    return create_builtin(__func__, CAPMEM__ALLOC_RANGE, base, size, granule, 0, out);
}

capmem_err_t capmem_alloc_create_buddy(uint64_t base, uint64_t size, unsigned min_order,
                                       unsigned max_order, capmem_alloc_t **out)
{
    if (out == NULL) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, __func__, "out is NULL");
    }
    capmem_err_t err = check_span(__func__, base, size);
    if (err != CAPMEM_OK) {
        return err;
    }
    if (max_order > 62 || min_order > max_order) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, __func__,
                            "orders must satisfy min_order (%u) <= max_order (%u) <= 62", min_order,
                            max_order);
    }
    uint64_t minb = 1ull << min_order;
    if (!capmem__is_aligned(base, minb) || !capmem__is_aligned(size, minb)) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, __func__,
                            "base 0x%llx and size 0x%llx must be multiples of 2^%u",
                            (unsigned long long)base, (unsigned long long)size, min_order);
    }
    return create_builtin(__func__, CAPMEM__ALLOC_BUDDY, base, size, min_order, max_order, out);
}

capmem_err_t capmem_alloc_create_custom_span(const capmem_alloc_ops_t *ops, void *self,
                                             uint64_t base, uint64_t size, capmem_alloc_t **out)
{
    if (ops == NULL || out == NULL) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, __func__, "%s is NULL",
                            ops == NULL ? "ops" : "out");
    }
    if (ops->alloc == NULL || ops->alloc_at == NULL || ops->free == NULL || ops->avail == NULL ||
        ops->largest == NULL || ops->reset == NULL) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, __func__,
                            "ops lacks a mandatory hook (alloc, alloc_at, free, avail, largest, "
                            "reset)");
    }
    capmem_err_t err = check_span(__func__, base, size);
    if (err != CAPMEM_OK) {
        return err;
    }
    return wrap(__func__, ops, self, base, size, CAPMEM__ALLOC_CUSTOM, out);
}

capmem_err_t capmem_alloc_create_custom(const capmem_alloc_ops_t *ops, void *self,
                                        capmem_alloc_t **out)
{
    capmem_err_t err = capmem_alloc_create_custom_span(ops, self, 0, UINT64_MAX, out);
    if (err != CAPMEM_OK) {
        capmem__detail()->function = __func__;
    }
    return err;
}

void capmem__alloc_narrow(capmem_alloc_t *a, uint64_t base, uint64_t size)
{
    CAPMEM_ASSERT(base >= a->base && size <= a->size && base - a->base <= a->size - size,
                  "narrowing stays inside the span");
    a->base = base;
    a->size = size;
}

/* ---- operations --------------------------------------------------------- */

/* The block [offset, offset + size) must lie inside the span. */
static capmem_err_t check_block(const char *fn, const capmem_alloc_t *a, uint64_t offset,
                                uint64_t size)
{
    uint64_t end;
    if (a == NULL) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, fn, "allocator is NULL");
    }
    if (size == 0) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, fn, "size is 0");
    }
    if (!capmem__add_ok(offset, size, &end)) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, fn, "offset 0x%llx + size 0x%llx overflows",
                            (unsigned long long)offset, (unsigned long long)size);
    }
    if (offset < a->base || end > a->base + a->size) {
        capmem__fail(CAPMEM_E_INVALID_ARGS, fn,
                     "block [0x%llx, 0x%llx) leaves the span [0x%llx, 0x%llx)",
                     (unsigned long long)offset, (unsigned long long)end,
                     (unsigned long long)a->base, (unsigned long long)(a->base + a->size));
        capmem__detail()->address = offset;
        capmem__detail()->size = size;
        capmem__detail()->bound_min = a->base;
        capmem__detail()->bound_max = a->base + a->size;
        return CAPMEM_E_INVALID_ARGS;
    }
    return CAPMEM_OK;
}

/*
 * A hook failed: pass its own detail on. A hook that recorded the failure
 * (with capmem_error_set(), or through a library call of its own that
 * failed) keeps its message and numbers; only the function label becomes
 * the public call's, and the code the one the hook returned. A hook that
 * recorded nothing gets a message naming the policy. Whether the hook
 * recorded anything is asked of the failure counter, not of the record's
 * code: the record survives successful calls, so a stale record with the
 * same code may be lying there.
 */
static capmem_err_t hook_failed(const capmem_alloc_t *a, capmem_err_t err, uint64_t failures,
                                const char *fn)
{
    if (capmem__failures() == failures) {
        return capmem__fail(err, fn, "policy '%s' failed: %s", capmem_alloc_name(a),
                            capmem_strerror(err));
    }
    capmem_error_info_t *d = capmem__detail();
    d->code = err;
    d->function = fn;
    return err;
}

/*
 * A built-in policy failed. Built-in policies always record their failure
 * (capmem__fail), so unlike hook_failed no failure counter needs to be read
 * before the call: only the function label becomes the public call's.
 */
static capmem_err_t builtin_failed(capmem_err_t err, const char *fn)
{
    capmem_error_info_t *d = capmem__detail();
    d->code = err;
    d->function = fn;
    return err;
}

/*
 * Is an answer of alloc(size, align) inside the span and aligned? Two
 * compares and a mask, on every answer of every policy. off - base wraps to
 * a value above a->size when off < base, so one compare covers both ends.
 */
static inline bool answer_fits(const capmem_alloc_t *a, uint64_t size, uint64_t align, uint64_t off)
{
    uint64_t rel = off - a->base;
    return rel <= a->size && size <= a->size - rel && capmem__is_aligned(off, align);
}

/*
 * Refuse a wrong answer of alloc(size, align): out of span, misaligned, or
 * (live != NULL) overlapping that live block. POLICY, with the policy, the
 * request and the answer in the message and the answer in address and
 * size. The wrapper has changed nothing, and the policy is not called again
 * for this request, not even to free the bad block (it may not be one the
 * policy could free): a policy that answers wrongly owns its inconsistent
 * state.
 */
static capmem_err_t bad_answer(const capmem_alloc_t *a, const char *fn, uint64_t size,
                               uint64_t align, uint64_t off, const capmem__shadow_node_t *live)
{
    const char *name = capmem_alloc_name(a);
    uint64_t rel = off - a->base;
    capmem_error_info_t *d = capmem__detail();
    if (rel > a->size || size > a->size - rel) {
        capmem__fail(CAPMEM_E_POLICY, fn,
                     "policy '%s' answered alloc(size 0x%llx, align 0x%llx) with offset 0x%llx%s: "
                     "the block leaves the span [0x%llx, 0x%llx)",
                     name, (unsigned long long)size, (unsigned long long)align,
                     (unsigned long long)off, off == UINT64_MAX ? " (none stored?)" : "",
                     (unsigned long long)a->base, (unsigned long long)(a->base + a->size));
        d->bound_min = a->base;
        d->bound_max = a->base + a->size;
    } else if (live == NULL) {
        capmem__fail(CAPMEM_E_POLICY, fn,
                     "policy '%s' answered alloc(size 0x%llx, align 0x%llx) with offset 0x%llx: "
                     "not a multiple of the alignment",
                     name, (unsigned long long)size, (unsigned long long)align,
                     (unsigned long long)off);
    } else {
        capmem__fail(CAPMEM_E_POLICY, fn,
                     "policy '%s' answered alloc(size 0x%llx, align 0x%llx) with offset 0x%llx: "
                     "overlaps the live block [0x%llx, +0x%llx)",
                     name, (unsigned long long)size, (unsigned long long)align,
                     (unsigned long long)off, (unsigned long long)live->offset,
                     (unsigned long long)live->size);
    }
    d->address = off;
    d->size = size;
    return CAPMEM_E_POLICY;
}

/*
 * A hook of a custom policy called back into the allocator it serves. The
 * wrapper would then change its live set under its own feet (a check done
 * before the hook no longer holding after it), so such calls are refused.
 */
static capmem_err_t reentered(const capmem_alloc_t *a, const char *fn)
{
    return capmem__fail(CAPMEM_E_REENTRANT, fn,
                        "policy '%s': %s was called from inside one of the policy's own hooks",
                        capmem_alloc_name(a), fn);
}

static capmem_err_t no_node(const capmem_alloc_t *a, const char *fn)
{
    return capmem__fail(CAPMEM_E_HOST_NOMEM, fn,
                        "policy '%s': no host memory to record a live block; the policy was not "
                        "asked",
                        capmem_alloc_name(a));
}

/*
 * Custom alloc: the node that will record the answer is reserved first, so
 * that once the policy has answered nothing can fail but the answer itself.
 */
static capmem_err_t custom_alloc(capmem_alloc_t *a, uint64_t size, uint64_t align, uint64_t *offset,
                                 const char *fn)
{
    if (a->busy) {
        return reentered(a, fn);
    }
    capmem__shadow_node_t *n = capmem__shadow_reserve(&a->shadow);
    if (n == NULL) {
        return no_node(a, fn);
    }
    uint64_t off = UINT64_MAX;
    uint64_t failures = capmem__failures();
    a->busy = true;
    capmem_err_t err = a->ops->alloc(a->self, size, align, &off);
    a->busy = false;
    if (err != CAPMEM_OK) {
        err = hook_failed(a, err, failures, fn);
    } else if (!answer_fits(a, size, align, off)) {
        err = bad_answer(a, fn, size, align, off, NULL);
    } else {
        const capmem__shadow_node_t *live = capmem__shadow_overlap(&a->shadow, off, size);
        if (live != NULL) {
            err = bad_answer(a, fn, size, align, off, live);
        }
    }
    if (err != CAPMEM_OK) {
        capmem__shadow_release(&a->shadow, n);
        return err;
    }
    capmem__shadow_insert(&a->shadow, n, off, size);
    *offset = off;
    return CAPMEM_OK;
}

/*
 * Custom alloc_at: a block overlapping a live one is refused before the
 * policy is asked, so the policy cannot OK it; and the live set cannot change
 * while the hook runs (reentry is refused), so an OK needs no second look.
 */
static capmem_err_t custom_alloc_at(capmem_alloc_t *a, uint64_t offset, uint64_t size,
                                    const char *fn)
{
    if (a->busy) {
        return reentered(a, fn);
    }
    const capmem__shadow_node_t *live = capmem__shadow_overlap(&a->shadow, offset, size);
    if (live != NULL) {
        capmem__fail(CAPMEM_E_NOT_ENOUGH_MEMORY, fn,
                     "policy '%s': [0x%llx, +0x%llx) overlaps the live block [0x%llx, +0x%llx)",
                     capmem_alloc_name(a), (unsigned long long)offset, (unsigned long long)size,
                     (unsigned long long)live->offset, (unsigned long long)live->size);
        capmem__detail()->address = offset;
        capmem__detail()->size = size;
        return CAPMEM_E_NOT_ENOUGH_MEMORY;
    }
    capmem__shadow_node_t *n = capmem__shadow_reserve(&a->shadow);
    if (n == NULL) {
        return no_node(a, fn);
    }
    uint64_t failures = capmem__failures();
    a->busy = true;
    capmem_err_t err = a->ops->alloc_at(a->self, offset, size);
    a->busy = false;
    if (err != CAPMEM_OK) {
        capmem__shadow_release(&a->shadow, n);
        return hook_failed(a, err, failures, fn);
    }
    capmem__shadow_insert(&a->shadow, n, offset, size);
    return CAPMEM_OK;
}

/* Custom free: only a live block, with the size it was asked for, reaches the policy. */
static capmem_err_t custom_free(capmem_alloc_t *a, uint64_t offset, uint64_t size, const char *fn)
{
    if (a->busy) {
        return reentered(a, fn);
    }
    const capmem__shadow_node_t *live = capmem__shadow_find(&a->shadow, offset);
    if (live == NULL || live->size != size) {
        const char *name = capmem_alloc_name(a);
        const capmem__shadow_node_t *in = capmem__shadow_overlap(&a->shadow, offset, size);
        if (live != NULL) {
            capmem__fail(CAPMEM_E_NOT_ALLOCATED, fn,
                         "policy '%s': [0x%llx, +0x%llx) is not a live block: the one at 0x%llx "
                         "was asked for with size 0x%llx",
                         name, (unsigned long long)offset, (unsigned long long)size,
                         (unsigned long long)live->offset, (unsigned long long)live->size);
        } else if (in != NULL) {
            capmem__fail(CAPMEM_E_NOT_ALLOCATED, fn,
                         "policy '%s': [0x%llx, +0x%llx) is not a live block: it overlaps the "
                         "live block [0x%llx, +0x%llx)",
                         name, (unsigned long long)offset, (unsigned long long)size,
                         (unsigned long long)in->offset, (unsigned long long)in->size);
        } else {
            capmem__fail(CAPMEM_E_NOT_ALLOCATED, fn,
                         "policy '%s': [0x%llx, +0x%llx) is not a live block (never handed out, "
                         "or already freed)",
                         name, (unsigned long long)offset, (unsigned long long)size);
        }
        capmem__detail()->address = offset;
        capmem__detail()->size = size;
        return CAPMEM_E_NOT_ALLOCATED;
    }
    uint64_t failures = capmem__failures();
    a->busy = true;
    capmem_err_t err = a->ops->free(a->self, offset, size);
    a->busy = false;
    if (err != CAPMEM_OK) {
        return hook_failed(a, err, failures, fn);
    }
    capmem__shadow_remove(&a->shadow, offset);
    return CAPMEM_OK;
}

/*
 * Everything but a built-in policy's call with valid arguments: the
 * argument errors and custom policies. Out of line, so that the common path
 * below saves few registers.
 */
static __attribute__((noinline, cold)) capmem_err_t alloc_slow(capmem_alloc_t *a, uint64_t size,
                                                               uint64_t align, uint64_t *offset)
{
    static const char fn[] = "capmem_alloc_alloc";
    if (a == NULL || offset == NULL) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, fn, "%s is NULL",
                            a == NULL ? "allocator" : "offset");
    }
    if (size == 0) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, fn, "size is 0");
    }
    if (!capmem__is_pow2(align)) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, fn, "alignment %llu is not a power of two",
                            (unsigned long long)align);
    }
    capmem_err_t cerr = custom_alloc(a, size, align, offset, fn);
    a->requested += cerr == CAPMEM_OK ? size : 0;
    return cerr;
}

/* A built-in policy's failure or wrong answer (out of line, see alloc_slow). */
static __attribute__((noinline, cold)) capmem_err_t
alloc_refused(capmem_alloc_t *a, capmem_err_t err, uint64_t size, uint64_t align, uint64_t off)
{
    static const char fn[] = "capmem_alloc_alloc";
    if (err != CAPMEM_OK) {
        return builtin_failed(err, fn);
    }
    return bad_answer(a, fn, size, align, off, NULL);
}

capmem_err_t capmem_alloc_alloc(capmem_alloc_t *a, uint64_t size, uint64_t align, uint64_t *offset)
{
    /* One test for every argument error and for custom policies: a power of
     * two has no bit in common with itself minus one, and 0 is not one. */
    if (__builtin_expect(a == NULL || offset == NULL || size == 0 || align == 0 ||
                             (align & (align - 1)) != 0 || a->kind == CAPMEM__ALLOC_CUSTOM,
                         0)) {
        return alloc_slow(a, size, align, offset);
    }
    /* UINT64_MAX is never a valid answer: a hook that says OK without
     * storing an offset is caught as out of span. */
    uint64_t off = UINT64_MAX;
    capmem_err_t err = a->ops->alloc(a->self, size, align, &off);
    if (__builtin_expect(err != CAPMEM_OK || !answer_fits(a, size, align, off), 0)) {
        return alloc_refused(a, err, size, align, off);
    }
    a->requested += size;
    *offset = off;
    return CAPMEM_OK;
}

/*
 * Is [offset, offset + size) a non-empty block inside the span of a
 * built-in policy? The common case of check_block in two compares: offset -
 * base wraps above a->size when offset < base, and base + size cannot
 * overflow (the handle's invariant), so neither can offset + size here.
 */
static inline bool builtin_block_ok(const capmem_alloc_t *a, uint64_t offset, uint64_t size)
{
    uint64_t rel = offset - a->base;
    return size != 0 && rel <= a->size && size <= a->size - rel && a->kind != CAPMEM__ALLOC_CUSTOM;
}

/* alloc_at and free of a custom policy, and every argument error (out of line). */
static __attribute__((noinline, cold)) capmem_err_t block_slow(capmem_alloc_t *a, uint64_t offset,
                                                               uint64_t size, bool at)
{
    const char *fn = at ? "capmem_alloc_alloc_at" : "capmem_alloc_free";
    capmem_err_t err = check_block(fn, a, offset, size);
    if (err != CAPMEM_OK) {
        return err;
    }
    if (at) {
        err = custom_alloc_at(a, offset, size, fn);
        a->requested += err == CAPMEM_OK ? size : 0;
        return err;
    }
    err = custom_free(a, offset, size, fn);
    /* A free of a block handed out by an earlier reset's era cannot pass the
     * policy's own check, so requested never goes below 0; clamp anyway. */
    if (err == CAPMEM_OK) {
        a->requested = a->requested >= size ? a->requested - size : 0;
    }
    return err;
}

static __attribute__((noinline, cold)) capmem_err_t block_refused(capmem_err_t err, bool at)
{
    return builtin_failed(err, at ? "capmem_alloc_alloc_at" : "capmem_alloc_free");
}

capmem_err_t capmem_alloc_alloc_at(capmem_alloc_t *a, uint64_t offset, uint64_t size)
{
    if (__builtin_expect(a == NULL || !builtin_block_ok(a, offset, size), 0)) {
        return block_slow(a, offset, size, true);
    }
    capmem_err_t err = a->ops->alloc_at(a->self, offset, size);
    if (__builtin_expect(err != CAPMEM_OK, 0)) {
        return block_refused(err, true);
    }
    a->requested += size;
    return CAPMEM_OK;
}

capmem_err_t capmem_alloc_free(capmem_alloc_t *a, uint64_t offset, uint64_t size)
{
    if (__builtin_expect(a == NULL || !builtin_block_ok(a, offset, size), 0)) {
        return block_slow(a, offset, size, false);
    }
    capmem_err_t err = a->ops->free(a->self, offset, size);
    if (__builtin_expect(err != CAPMEM_OK, 0)) {
        return block_refused(err, false);
    }
    /* See block_slow: clamp at 0 anyway. */
    a->requested = a->requested >= size ? a->requested - size : 0;
    return CAPMEM_OK;
}

uint64_t capmem_alloc_avail(const capmem_alloc_t *a)
{
    return a == NULL ? 0 : a->ops->avail(a->self);
}

uint64_t capmem_alloc_largest(const capmem_alloc_t *a)
{
    return a == NULL ? 0 : a->ops->largest(a->self);
}

uint64_t capmem_alloc_base(const capmem_alloc_t *a)
{
    return a == NULL ? 0 : a->base;
}

uint64_t capmem_alloc_size(const capmem_alloc_t *a)
{
    return a == NULL ? 0 : a->size;
}

const char *capmem_alloc_name(const capmem_alloc_t *a)
{
    if (a == NULL || a->ops->name == NULL) {
        return "";
    }
    return a->ops->name;
}

/* From inside one of the policy's own hooks (busy), reset and destroy do nothing: see alloc.h. */
void capmem_alloc_reset(capmem_alloc_t *a)
{
    if (a == NULL || a->busy) {
        return;
    }
    a->busy = true;
    a->ops->reset(a->self);
    a->busy = false;
    a->requested = 0;
    capmem__shadow_clear(&a->shadow);
}

void capmem_alloc_destroy(capmem_alloc_t *a)
{
    if (a == NULL || a->busy) {
        return;
    }
    a->busy = true; /* a destroy hook that calls back is refused */
    if (a->ops->destroy != NULL) {
        a->ops->destroy(a->self);
    }
    capmem__shadow_destroy(&a->shadow);
    capmem__free(a);
}

capmem_err_t capmem_alloc_check(const capmem_alloc_t *a, char *why, size_t len)
{
    if (a == NULL || (why == NULL && len > 0)) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, __func__, "%s is NULL",
                            a == NULL ? "allocator" : "why");
    }
    if (why != NULL && len > 0) {
        why[0] = '\0';
    }
    capmem_err_t err = CAPMEM_OK;
    if (a->ops->check != NULL) {
        err = a->ops->check(a->self, why, len);
    }
    if (err == CAPMEM_OK && a->kind == CAPMEM__ALLOC_CUSTOM) {
        err = capmem__shadow_check(&a->shadow, a->base, a->size, why, len);
    }
    if (err != CAPMEM_OK) {
        return capmem__fail(err, __func__, "%s: invariant broken: %s", capmem_alloc_name(a),
                            why != NULL && len > 0 ? why : "(no buffer)");
    }
    return CAPMEM_OK;
}

capmem_err_t capmem_alloc_walk(const capmem_alloc_t *a, capmem_alloc_walk_fn fn, void *ctx)
{
    if (a == NULL || fn == NULL) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, __func__, "%s is NULL",
                            a == NULL ? "allocator" : "fn");
    }
    if (a->ops->walk == NULL) {
        return capmem__fail(CAPMEM_E_UNSUPPORTED, __func__, "policy '%s' has no walk hook",
                            capmem_alloc_name(a));
    }
    uint64_t failures = capmem__failures();
    capmem_err_t err = a->ops->walk(a->self, fn, ctx);
    return err == CAPMEM_OK ? CAPMEM_OK : hook_failed(a, err, failures, __func__);
}

capmem_err_t capmem_alloc_free_ranges(const capmem_alloc_t *a, capmem_alloc_walk_fn fn, void *ctx)
{
    if (a == NULL || fn == NULL) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, __func__, "%s is NULL",
                            a == NULL ? "allocator" : "fn");
    }
    if (a->kind != CAPMEM__ALLOC_RANGE) {
        return capmem__fail(CAPMEM_E_WRONG_TYPE, __func__,
                            "free-range iteration needs a range policy, not '%s'",
                            capmem_alloc_name(a));
    }
    return capmem__range_free_ranges(a->self, fn, ctx);
}

uint64_t capmem__alloc_metadata_bytes(const capmem_alloc_t *a)
{
    switch (a->kind) {
    case CAPMEM__ALLOC_WATERMARK:
        return capmem__watermark_metadata(a->self);
    case CAPMEM__ALLOC_RANGE:
        return capmem__range_metadata(a->self);
    case CAPMEM__ALLOC_BUDDY:
        return capmem__buddy_metadata(a->self);
    case CAPMEM__ALLOC_CUSTOM:
    default:
        return capmem__shadow_bytes(&a->shadow);
    }
}

/* ---- recipes ------------------------------------------------------------ */

static unsigned log2_floor(uint64_t v)
{
    return 63u - (unsigned)__builtin_clzll(v);
}

capmem_err_t capmem_alloc_create_policy(const capmem_alloc_policy_t *policy, uint64_t base,
                                        uint64_t size, uint64_t granule, capmem_alloc_t **out)
{
    if (policy == NULL || out == NULL) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, __func__, "%s is NULL",
                            policy == NULL ? "policy" : "out");
    }
    if (!capmem__is_pow2(granule)) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, __func__, "granule %llu is not a power of two",
                            (unsigned long long)granule);
    }
    capmem_err_t err = CAPMEM_OK;
    switch (policy->kind) {
    case CAPMEM_ALLOC_WATERMARK:
        err = capmem_alloc_create_watermark(base, size, out);
        break;
    case CAPMEM_ALLOC_DEFAULT:
    case CAPMEM_ALLOC_RANGE:
        err = capmem_alloc_create_range(base, size, granule, out);
        break;
    case CAPMEM_ALLOC_BUDDY: {
        unsigned min = log2_floor(granule);
        unsigned max = size == 0 ? min : log2_floor(size);
        max = max > 62 ? 62 : max;
        err = capmem_alloc_create_buddy(base, size, min, max < min ? min : max, out);
        break;
    }
    case CAPMEM_ALLOC_CUSTOM: {
        const capmem_alloc_ops_t *ops = policy->ops;
        if (ops == NULL || ops->create == NULL) {
            return capmem__fail(CAPMEM_E_INVALID_ARGS, __func__,
                                "a custom policy recipe needs an ops table with a create hook");
        }
        if (ops->alloc == NULL || ops->alloc_at == NULL || ops->free == NULL ||
            ops->avail == NULL || ops->largest == NULL || ops->reset == NULL) {
            return capmem__fail(CAPMEM_E_INVALID_ARGS, __func__,
                                "ops lacks a mandatory hook (alloc, alloc_at, free, avail, "
                                "largest, reset)");
        }
        err = check_span(__func__, base, size);
        if (err != CAPMEM_OK) {
            return err;
        }
        if (!capmem__is_aligned(base, granule) || !capmem__is_aligned(size, granule)) {
            return capmem__fail(CAPMEM_E_INVALID_ARGS, __func__,
                                "base 0x%llx and size 0x%llx must be multiples of the granule "
                                "%llu",
                                (unsigned long long)base, (unsigned long long)size,
                                (unsigned long long)granule);
        }
        void *self = NULL;
        uint64_t failures = capmem__failures();
        err = ops->create(policy->ctx, base, size, granule, &self);
        if (err != CAPMEM_OK) {
            if (capmem__failures() == failures) {
                return capmem__fail(err, __func__, "policy '%s': create failed: %s",
                                    ops->name != NULL ? ops->name : "", capmem_strerror(err));
            }
            capmem__detail()->function = __func__;
            return err;
        }
        err = wrap(__func__, ops, self, base, size, CAPMEM__ALLOC_CUSTOM, out);
        if (err != CAPMEM_OK && ops->destroy != NULL) {
            ops->destroy(self);
        }
        return err;
    }
    default:
        return capmem__fail(CAPMEM_E_INVALID_ARGS, __func__, "unknown policy kind %d",
                            (int)policy->kind);
    }
    if (err != CAPMEM_OK) {
        capmem__detail()->function = __func__;
    }
    return err;
}

capmem_err_t capmem_alloc_policy_by_name(const char *name, capmem_alloc_policy_t *out)
{
    static const struct {
        const char *name;
        capmem_alloc_kind_t kind;
    } names[] = {
        {"default", CAPMEM_ALLOC_DEFAULT},
        {"watermark", CAPMEM_ALLOC_WATERMARK},
        {"range", CAPMEM_ALLOC_RANGE},
        {"buddy", CAPMEM_ALLOC_BUDDY},
    };
    if (name == NULL || out == NULL) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, __func__, "%s is NULL",
                            name == NULL ? "name" : "out");
    }
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (strcmp(name, names[i].name) == 0) {
            *out = CAPMEM_ALLOC_POLICY(names[i].kind);
            return CAPMEM_OK;
        }
    }
    return capmem__fail(CAPMEM_E_NOT_FOUND, __func__,
                        "no built-in policy named '%s' (watermark, range, buddy)", name);
}

/* ---- stats -------------------------------------------------------------- */

typedef struct stats_walk {
    capmem_alloc_stats_t *st;
    bool in_free; /* the last block visited was free and ended at prev_end */
    uint64_t prev_end;
} stats_walk_t;

static int stats_visit(uint64_t offset, uint64_t size, capmem_block_state_t state, void *ctx)
{
    stats_walk_t *w = ctx;
    if (state == CAPMEM_BLOCK_FREE) {
        /* Adjacent free blocks (buddies that cannot merge) are one run of free bytes. */
        if (!(w->in_free && w->prev_end == offset)) {
            w->st->free_blocks++;
        }
        w->in_free = true;
    } else {
        w->st->used_blocks++;
        w->in_free = false;
    }
    w->prev_end = offset + size;
    return 0;
}

capmem_err_t capmem_alloc_stats(const capmem_alloc_t *a, capmem_alloc_stats_t *out)
{
    if (a == NULL || out == NULL) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, __func__, "%s is NULL",
                            a == NULL ? "allocator" : "out");
    }
    if (out->size < CAPMEM_ALLOC_STATS_SIZE_MIN) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, __func__,
                            "out->size %u is below the oldest supported size %u (set it to "
                            "sizeof(capmem_alloc_stats_t))",
                            out->size, CAPMEM_ALLOC_STATS_SIZE_MIN);
    }
    if (a->busy) {
        return reentered(a, __func__);
    }
    capmem_alloc_stats_t st = {0};
    st.span = a->size;
    uint64_t failures = capmem__failures();
    capmem_err_t err = CAPMEM_OK;
    if (a->ops->stats != NULL) {
        st.source = CAPMEM_ALLOC_STATS_POLICY;
        err = a->ops->stats(a->self, &st);
    } else if (a->ops->walk != NULL) {
        st.source = CAPMEM_ALLOC_STATS_WALK;
        stats_walk_t w = {.st = &st};
        err = a->ops->walk(a->self, stats_visit, &w);
    } else {
        st.source = CAPMEM_ALLOC_STATS_COUNTS;
    }
    if (err != CAPMEM_OK) {
        return hook_failed(a, err, failures, __func__);
    }
    /* The generic numbers, the same for every source. */
    st.size = (uint32_t)sizeof(st);
    st.version = CAPMEM_ALLOC_STATS_VERSION;
    st.span = a->size;
    st.free_bytes = a->ops->avail(a->self);
    st.largest_free = a->ops->largest(a->self);
    st.used_bytes = st.free_bytes <= a->size ? a->size - st.free_bytes : 0;
    st.requested = a->requested;
    st.align_loss = st.used_bytes >= st.requested ? st.used_bytes - st.requested : 0;
    st.fragmentation =
        st.free_bytes == 0 ? 0.0 : 1.0 - (double)st.largest_free / (double)st.free_bytes;
    if (st.fragmentation < 0.0) {
        st.fragmentation = 0.0; /* a policy whose largest exceeds its avail: say 0, not < 0 */
    }
    st.reserved = 0;
    const uint32_t n = out->size < st.size ? out->size : st.size;
    memcpy(out, &st, n);
    out->size = n;
    return CAPMEM_OK;
}

capmem_err_t capmem__alloc_wrap(const capmem_alloc_ops_t *ops, void *self, uint64_t base,
                                uint64_t size, capmem__alloc_kind_t kind, capmem_alloc_t **out)
{
    return wrap(NULL, ops, self, base, size, kind, out);
}

capmem_err_t capmem__alloc_create_shadowed(const capmem_alloc_policy_t *policy, uint64_t base,
                                           uint64_t size, uint64_t granule, capmem_alloc_t **out)
{
    capmem_alloc_t *a = NULL;
    capmem_err_t err = capmem_alloc_create_policy(policy, base, size, granule, &a);
    if (err != CAPMEM_OK) {
        return err;
    }
    /*
     * A built-in behind the custom wrapper: its hooks are plain vtable
     * entries, so the custom paths drive it, with the shadow set kept.
     */
    a->kind = CAPMEM__ALLOC_CUSTOM;
    *out = a;
    return CAPMEM_OK;
}
