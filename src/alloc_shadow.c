/* SPDX-License-Identifier: MIT */
/*
 * The shadow set: the live blocks of a custom policy as the generic wrapper
 * saw them handed out, so that every answer of untrusted policy code can be
 * checked against them (alloc.c).
 *
 * An AA tree (Andersson's simplification of the red-black tree) keyed by
 * offset. Blocks in the set never overlap, because the wrapper admits a
 * block only after checking it against the set; so the one block that can
 * overlap [off, end) is the last one starting below end, and an overlap
 * query is a single floor search. Every operation is O(log n) worst case:
 * an AA tree of n nodes is at most 2 log2(n + 1) deep.
 *
 * Nodes come from the host heap (capmem__malloc), one per live block. The
 * wrapper reserves a node before it asks the policy, so that recording an
 * accepted answer cannot fail; a few released nodes are kept on a spare
 * list, so steady alloc/free traffic does not go to malloc every time.
 */
#include "alloc_internal.h"

_Static_assert(sizeof(capmem__shadow_node_t) <= 40, "alloc.h documents 40 bytes per live block");

/* Spare nodes kept after a free; beyond this they go back to the host (alloc.h says 16). */
#define SHADOW_SPARE_MAX 16

static unsigned level_of(const capmem__shadow_node_t *t)
{
    return t == NULL ? 0 : t->level;
}

/* A left child on the same level is a left horizontal link: rotate right. */
static capmem__shadow_node_t *skew(capmem__shadow_node_t *t)
{
    if (t != NULL && t->left != NULL && t->left->level == t->level) {
        capmem__shadow_node_t *l = t->left;
        t->left = l->right;
        l->right = t;
        return l;
    }
    return t;
}

/* Two right horizontal links in a row: rotate left and raise the middle. */
static capmem__shadow_node_t *split(capmem__shadow_node_t *t)
{
    if (t != NULL && t->right != NULL && t->right->right != NULL &&
        t->right->right->level == t->level) {
        capmem__shadow_node_t *r = t->right;
        t->right = r->left;
        r->left = t;
        r->level++;
        return r;
    }
    return t;
}

static capmem__shadow_node_t *insert(capmem__shadow_node_t *t, capmem__shadow_node_t *x)
{
    if (t == NULL) {
        return x;
    }
    if (x->offset < t->offset) {
        t->left = insert(t->left, x);
    } else {
        t->right = insert(t->right, x);
    }
    return split(skew(t));
}

/*
 * Remove the node keyed offset (it must be there). Inner nodes take over
 * their neighbour's key, so the node object that leaves the tree is a leaf
 * one; it is returned in *gone. Nodes are interchangeable records: nobody
 * outside the tree holds a pointer to one across calls.
 */
static capmem__shadow_node_t *erase(capmem__shadow_node_t *t, uint64_t offset,
                                    capmem__shadow_node_t **gone)
{
    if (t == NULL) {
        return NULL;
    }
    if (offset > t->offset) {
        t->right = erase(t->right, offset, gone);
    } else if (offset < t->offset) {
        t->left = erase(t->left, offset, gone);
    } else if (t->left == NULL && t->right == NULL) {
        *gone = t;
        return NULL;
    } else if (t->left == NULL) {
        capmem__shadow_node_t *s = t->right;
        while (s->left != NULL) {
            s = s->left;
        }
        uint64_t so = s->offset;
        uint64_t ss = s->size;
        t->right = erase(t->right, so, gone);
        t->offset = so;
        t->size = ss;
    } else {
        capmem__shadow_node_t *p = t->left;
        while (p->right != NULL) {
            p = p->right;
        }
        uint64_t po = p->offset;
        uint64_t ps = p->size;
        t->left = erase(t->left, po, gone);
        t->offset = po;
        t->size = ps;
    }
    /* Rebalance on the way up: lower the level where a child got shorter. */
    unsigned should =
        (level_of(t->left) < level_of(t->right) ? level_of(t->left) : level_of(t->right)) + 1;
    if (should < t->level) {
        t->level = should;
        if (t->right != NULL && should < t->right->level) {
            t->right->level = should;
        }
    }
    t = skew(t);
    t->right = skew(t->right);
    if (t->right != NULL) {
        t->right->right = skew(t->right->right);
    }
    t = split(t);
    t->right = split(t->right);
    return t;
}

/* The node with the largest offset <= key, or NULL. */
static const capmem__shadow_node_t *floor_node(const capmem__shadow_t *sh, uint64_t key)
{
    const capmem__shadow_node_t *t = sh->root;
    const capmem__shadow_node_t *best = NULL;
    while (t != NULL) {
        if (t->offset <= key) {
            best = t;
            t = t->right;
        } else {
            t = t->left;
        }
    }
    return best;
}

const capmem__shadow_node_t *capmem__shadow_overlap(const capmem__shadow_t *sh, uint64_t offset,
                                                    uint64_t size)
{
    /* The caller checked size > 0 and that offset + size does not overflow. */
    const capmem__shadow_node_t *t = floor_node(sh, offset + size - 1);
    /* t starts at or below the block's last byte: it overlaps iff it ends above offset. */
    return t != NULL && t->offset + t->size > offset ? t : NULL;
}

const capmem__shadow_node_t *capmem__shadow_find(const capmem__shadow_t *sh, uint64_t offset)
{
    const capmem__shadow_node_t *t = floor_node(sh, offset);
    return t != NULL && t->offset == offset ? t : NULL;
}

capmem__shadow_node_t *capmem__shadow_reserve(capmem__shadow_t *sh)
{
    capmem__shadow_node_t *n = sh->spare;
    if (n != NULL) {
        sh->spare = n->left;
        sh->nspare--;
    } else {
        n = capmem__malloc(sizeof(*n));
        if (n == NULL) {
            return NULL;
        }
    }
    *n = (capmem__shadow_node_t){0};
    return n;
}

void capmem__shadow_release(capmem__shadow_t *sh, capmem__shadow_node_t *n)
{
    if (sh->nspare >= SHADOW_SPARE_MAX) {
        capmem__free(n);
        return;
    }
    n->left = sh->spare;
    sh->spare = n;
    sh->nspare++;
}

void capmem__shadow_insert(capmem__shadow_t *sh, capmem__shadow_node_t *n, uint64_t offset,
                           uint64_t size)
{
    n->offset = offset;
    n->size = size;
    n->left = NULL;
    n->right = NULL;
    n->level = 1;
    sh->root = insert(sh->root, n);
    sh->count++;
}

void capmem__shadow_remove(capmem__shadow_t *sh, uint64_t offset)
{
    capmem__shadow_node_t *gone = NULL;
    sh->root = erase(sh->root, offset, &gone);
    CAPMEM_ASSERT(gone != NULL, "the wrapper removes only blocks it found in the set");
    if (gone != NULL) {
        sh->count--;
        capmem__shadow_release(sh, gone);
    }
}

static void free_tree(capmem__shadow_node_t *t)
{
    if (t != NULL) {
        free_tree(t->left);
        free_tree(t->right);
        capmem__free(t);
    }
}

void capmem__shadow_clear(capmem__shadow_t *sh)
{
    free_tree(sh->root);
    sh->root = NULL;
    sh->count = 0;
}

void capmem__shadow_destroy(capmem__shadow_t *sh)
{
    capmem__shadow_clear(sh);
    while (sh->spare != NULL) {
        capmem__shadow_node_t *n = sh->spare;
        sh->spare = n->left;
        capmem__free(n);
    }
    sh->nspare = 0;
}

uint64_t capmem__shadow_bytes(const capmem__shadow_t *sh)
{
    return (uint64_t)(sh->count + sh->nspare) * sizeof(capmem__shadow_node_t);
}

/* ---- check ---------------------------------------------------------------- */

typedef struct shadow_walk {
    uint64_t base;
    uint64_t end; /* of the span */
    size_t count;
    bool have_prev;
    uint64_t prev_end;
    const char *problem;
    uint64_t where;
} shadow_walk_t;

/* In order: AA levels, key order, disjoint blocks inside the span. */
static void check_node(const capmem__shadow_node_t *t, unsigned depth, shadow_walk_t *w)
{
    if (t == NULL || w->problem != NULL) {
        return;
    }
    if (depth > 128) {
        w->problem = "deeper than an AA tree can be";
        w->where = t->offset;
        return;
    }
    if (t->level == 0 || level_of(t->left) + 1 != t->level ||
        (t->right == NULL ? t->level != 1
                          : t->right->level != t->level && t->right->level + 1 != t->level) ||
        (t->right != NULL && level_of(t->right->right) >= t->level)) {
        w->problem = "AA tree levels broken";
        w->where = t->offset;
        return;
    }
    check_node(t->left, depth + 1, w);
    if (w->problem != NULL) {
        return;
    }
    uint64_t end = 0;
    if (t->size == 0 || t->offset < w->base || !capmem__add_ok(t->offset, t->size, &end) ||
        end > w->end) {
        w->problem = "block empty or outside the span";
        w->where = t->offset;
        return;
    }
    if (w->have_prev && t->offset < w->prev_end) {
        w->problem = "blocks out of order or overlapping";
        w->where = t->offset;
        return;
    }
    w->have_prev = true;
    w->prev_end = end;
    w->count++;
    check_node(t->right, depth + 1, w);
}

capmem_err_t capmem__shadow_check(const capmem__shadow_t *sh, uint64_t base, uint64_t size,
                                  char *why, size_t len)
{
    shadow_walk_t w = {.base = base, .end = base + size};
    check_node(sh->root, 0, &w);
    if (w.problem != NULL) {
        return capmem__alloc_broken(why, len, "shadow set: %s at 0x%llx", w.problem,
                                    (unsigned long long)w.where);
    }
    if (w.count != sh->count) {
        return capmem__alloc_broken(why, len, "shadow set: %zu blocks counted, %zu in the tree",
                                    sh->count, w.count);
    }
    size_t spare = 0;
    for (const capmem__shadow_node_t *n = sh->spare; n != NULL; n = n->left) {
        if (++spare > SHADOW_SPARE_MAX) {
            break;
        }
    }
    if (spare != sh->nspare) {
        return capmem__alloc_broken(why, len, "shadow set: %zu spare nodes counted, %zu listed",
                                    sh->nspare, spare);
    }
    return CAPMEM_OK;
}
