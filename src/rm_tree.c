/* SPDX-License-Identifier: MIT */
/*
 * Region maps, the region tree (rm_internal.h): the regions of a map form
 * an AVL tree ordered by address, augmented with the largest free gap in
 * each subtree, so the region under an address, a conflict, and the lowest
 * free range of a given size are all found in O(log n). Each region is also
 * linked into its dataspace's list of attachments, so a dataspace that goes
 * away is detached everywhere in O(its attachments).
 *
 * Nothing here fails or allocates: the callers reserve the records
 * (decode), then link and unlink them (invoke). The record layout and the
 * invariants are at rm_region_t; docs/region_map.md explains the layer.
 */
#include "rm_internal.h"

/* ---- AVL with gaps ---------------------------------------------------------- */

/* Recompute @p n's height and max_gap from its children. */
static void rg_fix(rm_region_t *n)
{
    rm_region_t *l = rg_left(n);
    rm_region_t *r = rg_right(n);
    unsigned hl = rg_height(l);
    unsigned hr = rg_height(r);
    n->left = (uintptr_t)l | (uintptr_t)(1u + (hl > hr ? hl : hr));
    uint32_t g = n->gap;
    g = gap_of(l) > g ? gap_of(l) : g;
    g = gap_of(r) > g ? gap_of(r) : g;
    n->max_gap = g;
}

static rm_region_t *rg_rot_right(rm_region_t *y)
{
    rm_region_t *x = rg_left(y);
    rg_set_left(y, rg_right(x));
    rg_set_right(x, y);
    rg_fix(y);
    rg_fix(x);
    return x;
}

static rm_region_t *rg_rot_left(rm_region_t *x)
{
    rm_region_t *y = rg_right(x);
    rg_set_right(x, rg_left(y));
    rg_set_left(y, x);
    rg_fix(x);
    rg_fix(y);
    return y;
}

static rm_region_t *rg_balance(rm_region_t *n)
{
    rg_fix(n);
    int bf = (int)rg_height(rg_left(n)) - (int)rg_height(rg_right(n));
    if (bf > 1) {
        rm_region_t *l = rg_left(n);
        if (rg_height(rg_left(l)) < rg_height(rg_right(l))) {
            rg_set_left(n, rg_rot_left(l));
        }
        return rg_rot_right(n);
    }
    if (bf < -1) {
        rm_region_t *r = rg_right(n);
        if (rg_height(rg_right(r)) < rg_height(rg_left(r))) {
            rg_set_right(n, rg_rot_right(r));
        }
        return rg_rot_left(n);
    }
    return n;
}

static rm_region_t *rg_remove_min(rm_region_t *n, rm_region_t **min)
{
    if (rg_left(n) == NULL) {
        *min = n;
        return rg_right(n);
    }
    rg_set_left(n, rg_remove_min(rg_left(n), min));
    return rg_balance(n);
}

static rm_region_t *rg_remove_at(rm_region_t *n, const rm_region_t *x)
{
    if (x->base < n->base) {
        rg_set_left(n, rg_remove_at(rg_left(n), x));
    } else if (x->base > n->base) {
        rg_set_right(n, rg_remove_at(rg_right(n), x));
    } else {
        rm_region_t *l = rg_left(n);
        rm_region_t *r = rg_right(n);
        if (r == NULL) {
            return l;
        }
        rm_region_t *m = NULL;
        r = rg_remove_min(r, &m);
        rg_set_left(m, l);
        rg_set_right(m, r);
        return rg_balance(m);
    }
    return rg_balance(n);
}

/* ---- the tree's interface ------------------------------------------------------ */

/* Regions are disjoint, so their ends are sorted like their bases: one descent finds it. */
rm_region_t *capmem__rm_tree_overlap(const capmem__rm_t *rm, uint64_t b, uint64_t e)
{
    rm_region_t *n = rm->root;
    while (n != NULL) {
        if (e <= n->base) {
            n = rg_left(n);
        } else if (b >= rg_end(n)) {
            n = rg_right(n);
        } else {
            return n;
        }
    }
    return NULL;
}

/*
 * The new region's own gap comes from its predecessor, and its successor's
 * gap shrinks; both lie on the search path. The insert is iterative: it
 * links x as a leaf, then rebalances bottom-up and stops at the first
 * ancestor whose height and max_gap come out unchanged, once the successor
 * (whose gap changed) is behind it: nothing above can change then.
 * Attaches in address order (a map filled by faults) used to refresh the
 * whole path every time; now they stop after O(1) levels amortized.
 */
#define RG_MAX_DEPTH 64 /* an AVL tree of 2^32 nodes is at most 46 high */

void capmem__rm_tree_insert(capmem__rm_t *rm, rm_region_t *x)
{
    rm_region_t *path[RG_MAX_DEPTH];
    unsigned depth = 0;
    unsigned succ_at = RG_MAX_DEPTH; /* index of the successor in path; none */
    rm_region_t *pred = NULL;
    rm_region_t *succ = NULL;
    for (rm_region_t *n = rm->root; n != NULL;) {
        CAPMEM_ASSERT(depth < RG_MAX_DEPTH, "an AVL tree is at most 46 high");
        path[depth++] = n;
        if (x->base < n->base) {
            succ = n;
            succ_at = depth - 1;
            n = rg_left(n);
        } else {
            pred = n;
            n = rg_right(n);
        }
    }
    x->gap = (uint32_t)(x->base - (pred != NULL ? rg_end(pred) : 0));
    if (succ != NULL) {
        succ->gap = (uint32_t)(succ->base - rg_end(x));
    }
    x->left = 1; /* a leaf of height 1 */
    x->right &= RG_LOW_MASK;
    x->max_gap = x->gap;
    if (depth == 0) {
        rm->root = x;
        return;
    }
    rm_region_t *parent = path[depth - 1];
    if (x->base < parent->base) {
        rg_set_left(parent, x);
    } else {
        rg_set_right(parent, x);
    }
    for (unsigned i = depth; i-- > 0;) {
        rm_region_t *n = path[i];
        unsigned old_h = rg_height(n);
        uint32_t old_gap = n->max_gap;
        rm_region_t *m = rg_balance(n);
        if (i == 0) {
            rm->root = m;
        } else if (rg_left(path[i - 1]) == n) {
            rg_set_left(path[i - 1], m);
        } else {
            rg_set_right(path[i - 1], m);
        }
        if (m == n && rg_height(n) == old_h && n->max_gap == old_gap &&
            (succ == NULL || i <= succ_at)) {
            break;
        }
    }
}

/*
 * The successor inherits x's gap and pages as free space; it is either on
 * the path to x or the minimum of x's right subtree, which the removal
 * walks, so every affected max_gap is refreshed.
 */
void capmem__rm_tree_remove(capmem__rm_t *rm, rm_region_t *x)
{
    rm_region_t *succ = NULL;
    if (rg_right(x) != NULL) {
        succ = rg_right(x);
        while (rg_left(succ) != NULL) {
            succ = rg_left(succ);
        }
    } else {
        for (rm_region_t *n = rm->root; n != x;) {
            if (x->base < n->base) {
                succ = n;
                n = rg_left(n);
            } else {
                n = rg_right(n);
            }
        }
    }
    if (succ != NULL) {
        succ->gap += x->gap + x->pages;
    }
    rm->root = rg_remove_at(rm->root, x);
}

/*
 * A gap lies before each region; the space after the last region is not a
 * gap of any node, so it is tried last, after max_gap has ruled out every
 * gap in the tree.
 */
bool capmem__rm_tree_find_free(const capmem__rm_t *rm, uint64_t need, uint64_t *at)
{
    rm_region_t *n = rm->root;
    if (n != NULL && n->max_gap >= need) {
        while (n != NULL) {
            rm_region_t *l = rg_left(n);
            if (l != NULL && l->max_gap >= need) {
                n = l;
            } else if (n->gap >= need) {
                *at = n->base - n->gap;
                return true;
            } else {
                n = rg_right(n);
            }
        }
        CAPMEM_ASSERT(0, "max_gap promised a gap in this subtree");
    }
    uint64_t tail = 0;
    for (n = rm->root; n != NULL; n = rg_right(n)) {
        tail = rg_end(n);
    }
    if (rm->pages - tail >= need) {
        *at = tail;
        return true;
    }
    return false;
}

/* ---- dataspace attachment lists --------------------------------------------------- */

void capmem__rm_ds_link(capmem__ds_t *ds, rm_region_t *r)
{
    rm_region_t *head = ds->regions;
    r->ds_prev = NULL;
    r->ds_next = head;
    if (head != NULL) {
        head->ds_prev = r;
    }
    ds->regions = r;
}

void capmem__rm_ds_unlink(capmem__ds_t *ds, rm_region_t *r)
{
    if (r->ds_prev != NULL) {
        r->ds_prev->ds_next = r->ds_next;
    } else {
        ds->regions = r->ds_next;
    }
    if (r->ds_next != NULL) {
        r->ds_next->ds_prev = r->ds_prev;
    }
    r->ds_next = r->ds_prev = NULL;
}

/* A walk with an explicit stack: no host memory, and the tree is at most 46 high. */
void capmem__rm_ds_unlink_all(capmem_arena_t *arena, capmem__rm_t *rm)
{
    rm_region_t *stack[128];
    unsigned top = 0;
    if (rm->root != NULL) {
        stack[top++] = rm->root;
    }
    while (top > 0) {
        rm_region_t *r = stack[--top];
        if (rg_left(r) != NULL) {
            stack[top++] = rg_left(r);
        }
        if (rg_right(r) != NULL) {
            stack[top++] = rg_right(r);
        }
        CAPMEM_ASSERT(top < 128, "an AVL tree of 2^32 nodes is at most 46 high");
        capmem__rm_ds_unlink(rg_ds(arena, r), r);
    }
}
