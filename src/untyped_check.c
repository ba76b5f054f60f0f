/* SPDX-License-Identifier: MIT */
/*
 * The untyped layer's checker: every object retyped from an untyped lies
 * inside it, no two overlap, each untyped counts its live children and
 * copies, and each policy passes its own check. One pass over the
 * capability table and a sort: O(n log n).
 */
#include <stdio.h>
#include <stdlib.h>

#include "untyped_internal.h"

/* ---- checker ------------------------------------------------------------- */

/*
 * One fact per live object, sorted by `who`: a child's span in its parent
 * (kind SPAN), an untyped's own counts (kind SELF), or a copy naming its
 * source (kind COPY). Sorting by (who, kind, off) puts each untyped's
 * record first in its group, its children's spans in address order next.
 */
enum { FACT_SELF = 0, FACT_SPAN = 1, FACT_COPY = 2 };

typedef struct fact {
    const capmem__untyped_t *who;
    int kind;
    uint64_t off;
    uint64_t size;
} fact_t;

static int cmp_fact(const void *x, const void *y)
{
    const fact_t *a = x;
    const fact_t *b = y;
    if (a->who != b->who) {
        return ((uintptr_t)a->who > (uintptr_t)b->who) - ((uintptr_t)a->who < (uintptr_t)b->who);
    }
    if (a->kind != b->kind) {
        return a->kind - b->kind;
    }
    return (a->off > b->off) - (a->off < b->off);
}

static bool is_ut_object(const capmem__slot_t *s)
{
    return (s->flags & CAPMEM__SLOT_ORIGINAL) &&
           (s->type == CAPMEM_OBJ_UNTYPED || s->type == CAPMEM_OBJ_FRAME ||
            s->type == CAPMEM_OBJ_KOBJ);
}

/* Check one untyped's group of facts [f, end): its children and its copies. */
static capmem_err_t check_group(const fact_t *f, const fact_t *end, char *why, size_t len)
{
    const capmem__untyped_t *p = f->who;
    if (f->kind != FACT_SELF) {
        snprintf(why, len, "an object names a parent or source untyped that is not alive");
        return CAPMEM_E_CORRUPT;
    }
    uint64_t spans = 0;
    uint64_t copies = 0;
    for (const fact_t *g = f + 1; g < end; g++) {
        if (g->kind == FACT_COPY) {
            copies++;
            continue;
        }
        spans++;
        if (g->off < p->base.offset ||
            g->off + g->size > p->base.offset + (1ull << p->base.size_bits)) {
            snprintf(why, len, "untyped at 0x%llx: child at 0x%llx lies outside it",
                     (unsigned long long)p->base.offset, (unsigned long long)g->off);
            return CAPMEM_E_CORRUPT;
        }
        if (g - 1 > f && g[-1].off + g[-1].size > g->off) {
            snprintf(why, len, "untyped at 0x%llx: children at 0x%llx and 0x%llx overlap",
                     (unsigned long long)p->base.offset, (unsigned long long)g[-1].off,
                     (unsigned long long)g->off);
            return CAPMEM_E_CORRUPT;
        }
    }
    if (spans != p->children) {
        snprintf(why, len, "untyped at 0x%llx counts %llu children, %llu are alive",
                 (unsigned long long)p->base.offset, (unsigned long long)p->children,
                 (unsigned long long)spans);
        return CAPMEM_E_CORRUPT;
    }
    if (copies != p->copies) {
        snprintf(why, len, "untyped at 0x%llx counts %u copies, %llu are alive",
                 (unsigned long long)p->base.offset, p->copies, (unsigned long long)copies);
        return CAPMEM_E_CORRUPT;
    }
    if (copies > 0 && spans > 0) {
        snprintf(why, len, "untyped at 0x%llx has a copy and children of its own",
                 (unsigned long long)p->base.offset);
        return CAPMEM_E_CORRUPT;
    }
    return CAPMEM_OK;
}

/*
 * Every live object retyped from an untyped lies inside its parent, no two
 * children of one parent overlap, each untyped's children and copies
 * counts are the numbers of its live children and copies, an untyped with
 * a copy has no children, and each policy's own check passes.
 * O(n log n) in the number of capabilities.
 */
capmem_err_t capmem__ut_check(capmem_arena_t *arena, void *state, char *why, size_t len)
{
    (void)state;
    capmem__cspace_t *cs = &arena->cspace;
    size_t n = 0;
    for (uint32_t i = 1; i < cs->high; i++) {
        n += is_ut_object(&cs->slots[i]) ? 2 : 0; /* at most SELF and SPAN or COPY */
    }
    fact_t *facts = capmem__malloc((n + 1) * sizeof(*facts));
    if (facts == NULL) {
        snprintf(why, len, "untyped check: no host memory");
        return CAPMEM_E_HOST_NOMEM;
    }
    size_t k = 0;
    capmem_err_t err = CAPMEM_OK;
    for (uint32_t i = 1; i < cs->high && err == CAPMEM_OK; i++) {
        const capmem__slot_t *s = &cs->slots[i];
        if (!is_ut_object(s)) {
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
            facts[k++] = (fact_t){ut, FACT_SELF, 0, 0};
            if (ut->copy_of != NULL) {
                facts[k++] = (fact_t){ut->copy_of, FACT_COPY, 0, 0};
            }
        }
        if (c->parent != NULL) {
            facts[k++] = (fact_t){c->parent, FACT_SPAN, c->offset, 1ull << c->size_bits};
        }
    }
    qsort(facts, k, sizeof(*facts), cmp_fact);
    for (size_t i = 0; i < k && err == CAPMEM_OK;) {
        size_t j = i + 1;
        while (j < k && facts[j].who == facts[i].who) {
            j++;
        }
        err = check_group(&facts[i], &facts[j], why, len);
        i = j;
    }
    capmem__free(facts);
    return err;
}
