/* SPDX-License-Identifier: MIT */
/*
 * A physical map with a placement policy: what the RAM service uses when it
 * is created with a policy (capmem_ram_attr_t.policy).
 *
 * Two allocators work together. The *map* is an exact range allocator at
 * page granule: which pages are in use, as the RAM service has always kept
 * it (first-class aliases keep parts of a freed block reserved, so the map
 * must be able to free a block and re-reserve pieces of it). The *policy*
 * (built-in or custom, always behind the wrapper's shadow set) decides
 * where each new block goes, and sees blocks whole: it is asked for a block
 * (alloc), told of the holes between pools (alloc_at, at creation), and told
 * a block is free only when none of its pages is in use any more
 * (capmem__alloc_settle, called after every release).
 *
 * Invariant (checked by placed_check): every page in use in the map lies
 * inside a live block of the policy. So an answer the wrapper accepted
 * (inside the span, aligned, not overlapping a live block) is free in the
 * map, and reserving it there cannot fail; it is still checked, and a
 * conflict is refused as CAPMEM_E_POLICY.
 */
#include <stdio.h>

#include "alloc_internal.h"

typedef struct placed {
    capmem_alloc_t *map;    /* range, page granule: the pages in use */
    capmem_alloc_t *policy; /* kind CUSTOM: its shadow holds its live blocks */
} placed_t;

static capmem_err_t placed_alloc(void *self, uint64_t size, uint64_t align, uint64_t *offset)
{
    placed_t *p = self;
    uint64_t off = 0;
    capmem_err_t err = capmem_alloc_alloc(p->policy, size, align, &off);
    if (err != CAPMEM_OK) {
        return err;
    }
    err = capmem_alloc_alloc_at(p->map, off, size);
    if (err != CAPMEM_OK) {
        (void)capmem_alloc_free(p->policy, off, size);
        capmem__fail(CAPMEM_E_POLICY, NULL,
                     "policy '%s' answered alloc(size 0x%llx, align 0x%llx) with offset 0x%llx: "
                     "pages there are in use",
                     capmem_alloc_name(p->policy), (unsigned long long)size,
                     (unsigned long long)align, (unsigned long long)off);
        capmem__detail()->address = off;
        capmem__detail()->size = size;
        return CAPMEM_E_POLICY;
    }
    *offset = off;
    return CAPMEM_OK;
}

/*
 * Reserve exact pages: a re-reservation inside a block the policy still
 * holds goes to the map alone; pages outside every block (the holes between
 * pools) become a block of the policy too.
 */
static capmem_err_t placed_alloc_at(void *self, uint64_t offset, uint64_t size)
{
    placed_t *p = self;
    capmem_err_t err = capmem_alloc_alloc_at(p->map, offset, size);
    if (err != CAPMEM_OK || capmem__shadow_overlap(&p->policy->shadow, offset, size) != NULL) {
        return err;
    }
    err = capmem_alloc_alloc_at(p->policy, offset, size);
    if (err != CAPMEM_OK) {
        (void)capmem_alloc_free(p->map, offset, size);
    }
    return err;
}

/* The policy hears of it in capmem__alloc_settle(), once the whole block is free. */
static capmem_err_t placed_free(void *self, uint64_t offset, uint64_t size)
{
    placed_t *p = self;
    return capmem_alloc_free(p->map, offset, size);
}

static uint64_t placed_avail(const void *self)
{
    const placed_t *p = self;
    return capmem_alloc_avail(p->map);
}

static uint64_t placed_largest(const void *self)
{
    const placed_t *p = self;
    uint64_t m = capmem_alloc_largest(p->map);
    uint64_t q = capmem_alloc_largest(p->policy);
    return m < q ? m : q;
}

static void placed_reset(void *self)
{
    placed_t *p = self;
    capmem_alloc_reset(p->map);
    capmem_alloc_reset(p->policy);
}

static void placed_destroy(void *self)
{
    placed_t *p = self;
    capmem_alloc_destroy(p->map);
    capmem_alloc_destroy(p->policy);
    capmem__free(p);
}

typedef struct cover_walk {
    const capmem__shadow_t *sh;
    uint64_t bad;
    bool broken;
} cover_walk_t;

static int cover_visit(uint64_t offset, uint64_t size, capmem_block_state_t state, void *ctx)
{
    cover_walk_t *w = ctx;
    if (state != CAPMEM_BLOCK_USED) {
        return 0;
    }
    /* Blocks of the policy are disjoint: walk them from the top of this run down. */
    uint64_t end = offset + size;
    while (end > offset) {
        const capmem__shadow_node_t *n = capmem__shadow_overlap(w->sh, end - 1, 1);
        if (n == NULL || n->offset + n->size < end) {
            w->bad = end - 1;
            w->broken = true;
            return 1;
        }
        end = n->offset > offset ? n->offset : offset;
    }
    return 0;
}

static capmem_err_t placed_check(const void *self, char *why, size_t len)
{
    const placed_t *p = self;
    char sub[160] = "";
    if (capmem_alloc_check(p->map, sub, sizeof(sub)) != CAPMEM_OK) {
        return capmem__alloc_broken(why, len, "page map: %s", sub);
    }
    if (capmem_alloc_check(p->policy, sub, sizeof(sub)) != CAPMEM_OK) {
        return capmem__alloc_broken(why, len, "placement policy: %s", sub);
    }
    cover_walk_t w = {.sh = &p->policy->shadow};
    (void)capmem_alloc_walk(p->map, cover_visit, &w);
    if (w.broken) {
        return capmem__alloc_broken(why, len,
                                    "page 0x%llx is in use but in no live block of policy '%s'",
                                    (unsigned long long)w.bad, capmem_alloc_name(p->policy));
    }
    return CAPMEM_OK;
}

static capmem_err_t placed_walk(const void *self, capmem_alloc_walk_fn fn, void *ctx)
{
    const placed_t *p = self;
    return capmem_alloc_walk(p->map, fn, ctx);
}

static const capmem_alloc_ops_t placed_ops = {
    .name = "placed",
    .alloc = placed_alloc,
    .alloc_at = placed_alloc_at,
    .free = placed_free,
    .avail = placed_avail,
    .largest = placed_largest,
    .reset = placed_reset,
    .destroy = placed_destroy,
    .check = placed_check,
    .walk = placed_walk,
};

capmem_err_t capmem__alloc_create_placed(const capmem_alloc_policy_t *policy, uint64_t base,
                                         uint64_t size, uint64_t granule, capmem_alloc_t **out)
{
    placed_t *p = capmem__calloc(1, sizeof(*p));
    if (p == NULL) {
        return capmem__fail(CAPMEM_E_HOST_NOMEM, NULL, "no host memory for the placed map");
    }
    capmem_err_t err = capmem_alloc_create_range(base, size, granule, &p->map);
    if (err == CAPMEM_OK) {
        err = capmem__alloc_create_shadowed(policy, base, size, granule, &p->policy);
    }
    if (err == CAPMEM_OK) {
        err = capmem__alloc_wrap(&placed_ops, p, base, size, CAPMEM__ALLOC_PLACED, out);
    }
    if (err != CAPMEM_OK) {
        capmem_alloc_destroy(p->map);
        capmem_alloc_destroy(p->policy);
        capmem__free(p);
    }
    return err;
}

void capmem__alloc_settle(capmem_alloc_t *a, uint64_t lo, uint64_t hi)
{
    if (a->kind != CAPMEM__ALLOC_PLACED || hi <= lo) {
        return;
    }
    placed_t *p = a->self;
    /* The live blocks of the policy that overlap [lo, hi), from the top down. */
    while (hi > lo) {
        const capmem__shadow_node_t *n = capmem__shadow_overlap(&p->policy->shadow, lo, hi - lo);
        if (n == NULL) {
            return;
        }
        const uint64_t off = n->offset;
        const uint64_t sz = n->size;
        /* Free in the map as a whole: then no page of it is in use. */
        if (capmem_alloc_alloc_at(p->map, off, sz) == CAPMEM_OK) {
            (void)capmem_alloc_free(p->map, off, sz);
            /*
             * A policy that refuses to free its own block keeps it (and its
             * inconsistent state): the wrapper still holds it as live, so
             * nothing is ever placed over it.
             */
            (void)capmem_alloc_free(p->policy, off, sz);
        }
        hi = off;
    }
}
