/* SPDX-License-Identifier: MIT */
/*
 * Layer 9: dumps. capmem_dump() walks the model one section at a time and
 * hands what it finds to the sink of the format (dump_internal.h). Each
 * layer's section is one function below (caps_section, untyped_section,
 * ram_section, phys_section, rm_section, kernel_section, stats_section),
 * so a new layer adds its section in one place.
 *
 * Nothing is allocated per object. The capability tree is walked in
 * pre-order through its own links (parent, first child, next sibling),
 * which also gives the scope of a subtree dump; region trees are walked in
 * order with a stack of their height; the physical map, which no structure
 * keeps in address order across untypeds, pools, dataspaces and donation
 * chunks, is sorted in passes through one buffer of at most
 * PHYS_BATCH entries (see "The physical map").
 */
#define _POSIX_C_SOURCE 200809L /* flockfile */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dump_internal.h"
#include "rm_internal.h"

/* ---- the walk over the capability tree -------------------------------------------- */

typedef struct dump {
    capmem_arena_t *arena;
    const capmem__dump_sink_t *sink;
    void *ctx;
    uint32_t root; /* slot of opts.root, 0 for the whole arena */
    unsigned sections;
    capmem_stats_t stats;
    struct pentry *heap; /* the physical map's sorting buffer (phys_prepare) */
    size_t heap_cap;
    uint64_t *ends; /* the ends of the runs over a page (emit_sweep), ENDS_MAX of them */
} dump_t;

/*
 * A pre-order walk over the live slots in scope: the subtree of d->root,
 * or every tree of the table (roots in slot order). No memory but this.
 */
typedef struct walk {
    const capmem__cspace_t *cs;
    uint32_t top;  /* the root of the tree being walked */
    uint32_t cur;  /* the slot visited, 0 when done */
    uint32_t scan; /* whole arena: the next slot to look at for a root */
    unsigned depth;
    bool all;
} walk_t;

static uint32_t next_root(walk_t *w)
{
    for (; w->scan < w->cs->high; w->scan++) {
        const capmem__slot_t *s = &w->cs->slots[w->scan];
        if (s->type != CAPMEM_OBJ_NONE && s->parent == 0) {
            return w->scan++;
        }
    }
    return 0;
}

static void walk_begin(walk_t *w, const dump_t *d)
{
    memset(w, 0, sizeof(*w));
    w->cs = &d->arena->cspace;
    w->all = d->root == 0;
    w->scan = 1;
    w->top = w->all ? next_root(w) : d->root;
    w->cur = w->top;
}

static void walk_next(walk_t *w)
{
    const capmem__slot_t *s = &w->cs->slots[w->cur];
    if (s->first_child != 0) {
        w->cur = s->first_child;
        w->depth++;
        return;
    }
    while (w->cur != w->top) {
        s = &w->cs->slots[w->cur];
        if (s->next_sib != 0) {
            w->cur = s->next_sib;
            return;
        }
        w->cur = s->parent;
        w->depth--;
    }
    w->cur = w->all ? next_root(w) : 0;
    w->top = w->cur;
    w->depth = 0;
}

#define WALK(w, d) for (walk_begin(&(w), (d)); (w).cur != 0; walk_next(&(w)))

static const capmem__slot_t *slot_at(const dump_t *d, uint32_t i)
{
    return &d->arena->cspace.slots[i];
}

static capmem_cap_t handle_of(const dump_t *d, uint32_t i)
{
    return i != 0 ? capmem__slot_handle(&d->arena->cspace, i) : CAPMEM_CAP_NULL;
}

static bool is_original(const capmem__slot_t *s, capmem_obj_type_t type)
{
    return s->type == type && (s->flags & CAPMEM__SLOT_ORIGINAL) != 0;
}

/* The physical address of backing offset @p off (RAM, or a device range in the window). */
static uint64_t phys_of(capmem_arena_t *arena, uint64_t off)
{
    if (off < arena->mem.ram_size) {
        return arena->mem.phys_base + off;
    }
    const capmem__device_t *dev = capmem__device_at_backing(&arena->mem, off, 1);
    return dev != NULL ? dev->phys + (off - dev->backing_offset) : off;
}

static capmem_cap_t account_cap(const dump_t *d, const capmem__account_t *acc)
{
    return acc != NULL ? capmem__account_handle(d->arena, acc) : CAPMEM_CAP_NULL;
}

/* The account whose pages a dataspace shows (its RAM original's), or NULL (managed). */
static capmem__account_t *pages_account(const capmem__ds_t *ds)
{
    for (;;) {
        switch (capmem__ds_kind(ds)) {
        case CAPMEM__DS_RAM:
            return capmem__ds_account(ds);
        case CAPMEM__DS_ALIAS_DEP:
            ds = capmem__ds_base(ds);
            break;
        case CAPMEM__DS_ALIAS_FC:
            /* Its lender: the original's account, or who holds the charge once it is lent. */
            return capmem__ds_lender(ds);
        default:
            return NULL;
        }
    }
}

/* The session (account or region map) whose slab holds @p m. */
static capmem_cap_t slab_owner(const dump_t *d, capmem__meta_t *m)
{
    capmem__account_t *acc = capmem__account_of(m);
    if (acc != NULL) {
        return account_cap(d, acc);
    }
    if (m->kind == CAPMEM__META_RM) {
        return capmem__rm_handle(d->arena, (capmem__rm_t *)(void *)m);
    }
    return CAPMEM_CAP_NULL;
}

static const char *label_of(const capmem__slot_t *s)
{
    if (s->type == CAPMEM_OBJ_RAM_SESSION) {
        return ((const capmem__account_t *)s->obj)->label;
    }
    if (s->type == CAPMEM_OBJ_REGION_MAP) {
        return ((const capmem__rm_t *)s->obj)->label;
    }
    return NULL;
}

/* ---- capabilities ------------------------------------------------------------------- */

static void caps_section(dump_t *d)
{
    capmem_arena_t *arena = d->arena;
    walk_t w;
    WALK(w, d)
    {
        const capmem__slot_t *s = slot_at(d, w.cur);
        capmem__dump_cap_t c;
        memset(&c, 0, sizeof(c));
        c.cap = handle_of(d, w.cur);
        c.parent = w.cur != w.top ? handle_of(d, s->parent) : CAPMEM_CAP_NULL;
        c.type = capmem_obj_type_name((capmem_obj_type_t)s->type);
        c.name = capmem__object_name(arena, (capmem_obj_type_t)s->type, s->obj);
        c.label = label_of(s);
        const capmem__type_ops_t *ops = arena->types[s->type];
        if (ops != NULL && ops->describe != NULL) {
            ops->describe(arena, s->obj, c.describe, sizeof(c.describe));
        }
        c.rights = s->rights;
        c.depth = w.depth;
        c.generation = s->gen;
        c.index = w.cur;
        c.original = (s->flags & CAPMEM__SLOT_ORIGINAL) != 0;
        d->sink->cap(d->ctx, &c);
    }
}

/* ---- untyped ------------------------------------------------------------------------ */

typedef struct free_visit {
    dump_t *d;
    const capmem__dump_untyped_t *u;
} free_visit_t;

static int untyped_free_visit(uint64_t offset, uint64_t size, capmem_block_state_t state, void *ctx)
{
    free_visit_t *v = ctx;
    if (state == CAPMEM_BLOCK_FREE) {
        v->d->sink->untyped_free(v->d->ctx, v->u, v->u->info.offset + offset, size);
    }
    return 0;
}

static void untyped_section(dump_t *d)
{
    walk_t w;
    WALK(w, d)
    {
        const capmem__slot_t *s = slot_at(d, w.cur);
        if (!is_original(s, CAPMEM_OBJ_UNTYPED)) {
            continue;
        }
        const capmem__untyped_t *ut = s->obj;
        capmem__dump_untyped_t u;
        memset(&u, 0, sizeof(u));
        capmem__ut_fill_info(d->arena, s, &u.info);
        const capmem__slot_t *p = s->parent != 0 ? slot_at(d, s->parent) : NULL;
        if (ut->copy_of != NULL && p != NULL) {
            u.copy_of = handle_of(d, s->parent);
        } else if (p != NULL && p->type == CAPMEM_OBJ_UNTYPED) {
            u.parent_untyped = handle_of(d, s->parent);
        }
        /* Free ranges of an exact-placement policy; a watermark has its index instead. */
        u.range_policy = ut->user_policy || ut->policy != CAPMEM_UNTYPED_WATERMARK;
        if (d->sink->untyped != NULL) {
            d->sink->untyped(d->ctx, &u);
        }
        if (u.range_policy && d->sink->untyped_free != NULL && ut->copies == 0) {
            free_visit_t v = {d, &u};
            if (ut->policy == CAPMEM_UNTYPED_RANGE && !ut->user_policy) {
                (void)capmem_alloc_free_ranges(ut->alloc, untyped_free_visit, &v);
            } else {
                (void)capmem_alloc_walk(ut->alloc, untyped_free_visit, &v);
            }
        }
        if (d->sink->untyped_end != NULL) {
            d->sink->untyped_end(d->ctx, &u);
        }
    }
}

/* ---- RAM: accounts, then dataspaces ------------------------------------------------- */

static void fill_ds(dump_t *d, const walk_t *w, capmem__dump_ds_t *r)
{
    const capmem__slot_t *s = slot_at(d, w->cur);
    capmem__ds_t *ds = s->obj;
    memset(r, 0, sizeof(*r));
    const unsigned kind = capmem__ds_kind(ds);
    r->cap = handle_of(d, w->cur);
    r->kind = (capmem_ds_kind_t)kind;
    r->size = ds->size;
    if (kind != CAPMEM__DS_MANAGED) {
        r->offset = ds->off;
        r->phys = phys_of(d->arena, ds->off);
    } else {
        r->managed_map = capmem__rm_handle(d->arena, capmem__ds_map(ds));
    }
    r->writable = (ds->flags & CAPMEM__DS_WRITABLE) != 0;
    r->lent = (ds->flags & CAPMEM__DS_LENT) != 0;
    r->owner = handle_of(d, s->parent);
    if (kind == CAPMEM__DS_ALIAS_DEP) {
        r->source = handle_of(d, capmem__ds_base(ds)->slot);
    }
    const capmem__account_t *pages = pages_account(ds);
    r->pays_pages = account_cap(d, pages);
    r->pages_label = pages != NULL ? pages->label : NULL;
    r->pays_record = slab_owner(d, ds->meta);
    const capmem__account_t *rec_acc = capmem__account_of(ds->meta);
    r->record_label = rec_acc != NULL ? rec_acc->label
                      : ds->meta->kind == CAPMEM__META_RM
                          ? ((capmem__rm_t *)(void *)ds->meta)->label
                          : NULL;
    for (const rm_region_t *g = ds->regions; g != NULL; g = g->ds_next) {
        r->attachments++;
    }
    r->depth = w->depth;
}

/* An account's depth in the account tree (the root account's is 0). */
static unsigned account_depth(const capmem__account_t *acc)
{
    unsigned n = 0;
    for (const capmem__account_t *r = acc->ref; r != NULL; r = r->ref) {
        n++;
    }
    return n;
}

static void ram_section(dump_t *d)
{
    walk_t w;
    /* A subtree dump's top account is drawn at depth 0. */
    const capmem__slot_t *top = d->root != 0 ? slot_at(d, d->root) : NULL;
    const unsigned base =
        top != NULL && is_original(top, CAPMEM_OBJ_RAM_SESSION) ? account_depth(top->obj) : 0;
    if (d->sink->account != NULL) {
        WALK(w, d)
        {
            const capmem__slot_t *s = slot_at(d, w.cur);
            if (!is_original(s, CAPMEM_OBJ_RAM_SESSION)) {
                continue;
            }
            const capmem__account_t *acc = s->obj;
            capmem__dump_account_t a;
            memset(&a, 0, sizeof(a));
            a.cap = handle_of(d, w.cur);
            capmem__ram_fill_info(d->arena, acc, &a.info);
            a.depth = account_depth(acc) - base;
            a.donated = acc->donated;
            a.sessions = acc->sessions;
            d->sink->account(d->ctx, &a);
        }
    }
    if (d->sink->ds != NULL) {
        WALK(w, d)
        {
            if (is_original(slot_at(d, w.cur), CAPMEM_OBJ_DATASPACE)) {
                capmem__dump_ds_t r;
                fill_ds(d, &w, &r);
                d->sink->ds(d->ctx, &r);
            }
        }
    }
}

/* ---- the physical map ---------------------------------------------------------------- */

/*
 * Every range of the map comes from some object: a box (the RAM, a device
 * range, an untyped, a RAM pool) or a leaf (a RAM dataspace, the pages of a
 * lent first-class alias, a donation chunk, a frame, a kernel object). No
 * structure holds them in address order, so they are sorted in passes: each
 * pass enumerates every object in scope and keeps, in a max-heap of at most
 * PHYS_BATCH entries, the smallest keys above the last one emitted; then the
 * batch is sorted and emitted. n objects take ceil(n / PHYS_BATCH) passes of
 * O(n log PHYS_BATCH), with a buffer that does not grow with the arena.
 * Boxes sort before what they contain (same start: larger first), so the
 * emitter keeps a stack of open boxes and fills the gaps between leaves
 * with the box's free space.
 */
#define PHYS_BATCH 65536u
#define BOX_DEPTH_MAX 64u

enum {
    E_RAM = 0,
    E_DEVICE,
    E_UNTYPED,
    E_POOL,
    E_FRAME,
    E_KOBJ,
    E_CHUNK,
    E_DS,
    E_LENT,
};

typedef struct pentry {
    uint64_t start;
    uint64_t size;
    uint8_t kind;
    uint8_t rank; /* same start and size: a box before its copy, before a pool, before leaves */
    uint32_t id;  /* a slot, or a device index */
} pentry_t;

static int key_cmp(const pentry_t *a, const pentry_t *b)
{
    if (a->start != b->start) {
        return a->start < b->start ? -1 : 1;
    }
    if (a->size != b->size) {
        return a->size > b->size ? -1 : 1;
    }
    if (a->rank != b->rank) {
        return a->rank < b->rank ? -1 : 1;
    }
    if (a->id != b->id) {
        return a->id < b->id ? -1 : 1;
    }
    return a->kind < b->kind ? -1 : a->kind > b->kind;
}

typedef struct box {
    pentry_t e;
    capmem__dump_container_t rec;
    uint64_t lost_end; /* watermark untyped with children: [start, lost_end) is lost */
} box_t;

typedef struct phys {
    dump_t *d;
    pentry_t *heap;
    size_t cap;
    size_t n;
    pentry_t last;
    bool have_last;
    uint64_t counted;
    /* the emitter */
    box_t boxes[BOX_DEPTH_MAX];
    unsigned nbox;
    uint64_t cur; /* everything below has been emitted */
    /* Out-of-scope lenders whose lent list this dump sorted (a few, reused round-robin). */
    capmem__account_t *sorted[8];
    unsigned next_sorted;
} phys_t;

static void heap_down(pentry_t *h, size_t n, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1;
        size_t r = l + 1;
        size_t m = i;
        if (l < n && key_cmp(&h[l], &h[m]) > 0) {
            m = l;
        }
        if (r < n && key_cmp(&h[r], &h[m]) > 0) {
            m = r;
        }
        if (m == i) {
            return;
        }
        pentry_t t = h[i];
        h[i] = h[m];
        h[m] = t;
        i = m;
    }
}

static void heap_up(pentry_t *h, size_t i)
{
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (key_cmp(&h[i], &h[p]) <= 0) {
            return;
        }
        pentry_t t = h[i];
        h[i] = h[p];
        h[p] = t;
        i = p;
    }
}

/* One object of the enumeration: count it, or keep it if it belongs to this batch. */
static void consider(phys_t *p, uint64_t start, uint64_t size, unsigned kind, unsigned rank,
                     uint32_t id)
{
    const pentry_t e = {
        .start = start, .size = size, .kind = (uint8_t)kind, .rank = (uint8_t)rank, .id = id};
    if (p->heap == NULL) {
        p->counted++;
        return;
    }
    if (p->have_last && key_cmp(&e, &p->last) <= 0) {
        return;
    }
    if (p->n < p->cap) {
        p->heap[p->n] = e;
        heap_up(p->heap, p->n);
        p->n++;
    } else if (key_cmp(&e, &p->heap[0]) < 0) {
        p->heap[0] = e;
        heap_down(p->heap, p->n, 0);
    }
}

static void consider_chunks(phys_t *p, const capmem__meta_t *m, uint32_t owner)
{
    const uint8_t *base = p->d->arena->mem.base;
    for (const uint8_t *c = m->chunks; c != NULL; c = ((const capmem__chunk_t *)c)->next) {
        consider(p, (uint64_t)(c - base), ((const capmem__chunk_t *)c)->size, E_CHUNK, 4, owner);
    }
}

/* Enumerate every range-holding object in scope. */
static void enumerate(phys_t *p)
{
    dump_t *d = p->d;
    capmem_arena_t *arena = d->arena;
    if (d->root == 0) {
        consider(p, 0, arena->mem.ram_size, E_RAM, 0, 0);
        for (uint32_t i = 0; i < CAPMEM_DEVICE_MAX; i++) {
            const capmem__device_t *dev = &arena->mem.devices[i];
            if (dev->id != 0) {
                consider(p, dev->backing_offset, dev->size, E_DEVICE, 0, i);
            }
        }
    }
    walk_t w;
    WALK(w, d)
    {
        const capmem__slot_t *s = slot_at(d, w.cur);
        if (!(s->flags & CAPMEM__SLOT_ORIGINAL)) {
            continue;
        }
        switch (s->type) {
        case CAPMEM_OBJ_UNTYPED: {
            const capmem__untyped_t *ut = s->obj;
            consider(p, ut->base.offset, 1ull << ut->base.size_bits, E_UNTYPED,
                     ut->copy_of != NULL ? 2 : 1, w.cur);
            break;
        }
        case CAPMEM_OBJ_FRAME:
        case CAPMEM_OBJ_KOBJ: {
            const capmem__ut_child_t *c = s->obj;
            const bool pool = c->claim != NULL;
            consider(p, c->offset, 1ull << c->size_bits,
                     pool ? E_POOL : (s->type == CAPMEM_OBJ_FRAME ? E_FRAME : E_KOBJ), pool ? 3 : 4,
                     w.cur);
            break;
        }
        case CAPMEM_OBJ_RAM_SESSION:
            consider_chunks(p, &((const capmem__account_t *)s->obj)->meta, w.cur);
            break;
        case CAPMEM_OBJ_REGION_MAP:
            consider_chunks(p, &((const capmem__rm_t *)s->obj)->meta, w.cur);
            break;
        case CAPMEM_OBJ_DATASPACE: {
            const capmem__ds_t *ds = s->obj;
            if (capmem__ds_kind(ds) == CAPMEM__DS_RAM) {
                consider(p, ds->off, ds->size, E_DS, 4, w.cur);
            } else if (ds->flags & CAPMEM__DS_LENT) {
                consider(p, ds->off, ds->size, E_LENT, 5, w.cur);
            }
            break;
        }
        default:
            break;
        }
    }
}

static void emit_leaf(phys_t *p, capmem__phys_kind_t kind, uint64_t start, uint64_t end,
                      capmem_cap_t owner, capmem_cap_t account, const char *label, uint64_t refs)
{
    if (end <= start) {
        return;
    }
    dump_t *d = p->d;
    capmem__dump_phys_t r;
    memset(&r, 0, sizeof(r));
    r.kind = kind;
    r.offset = start;
    r.phys = phys_of(d->arena, start);
    r.size = end - start;
    r.owner = owner;
    r.account = account;
    r.in = p->nbox > 0 ? p->boxes[p->nbox - 1].rec.cap : CAPMEM_CAP_NULL;
    r.label = label;
    r.refs = refs;
    r.depth = p->nbox;
    d->sink->phys(d->ctx, &r);
    p->cur = end;
}

/* The free space of the innermost box from the cursor up to @p end. */
static void emit_gap(phys_t *p, uint64_t end)
{
    if (p->nbox == 0 || end <= p->cur) {
        if (p->nbox == 0 && end > p->cur) {
            p->cur = end; /* a subtree dump shows what its objects hold, not the space between */
        }
        return;
    }
    const box_t *b = &p->boxes[p->nbox - 1];
    switch (b->rec.box) {
    case CAPMEM__BOX_RAM:
    case CAPMEM__BOX_DEVICE:
        emit_leaf(p, CAPMEM__PH_UNCLAIMED, p->cur, end, CAPMEM_CAP_NULL, CAPMEM_CAP_NULL, NULL, 0);
        break;
    case CAPMEM__BOX_UNTYPED:
        if (p->cur < b->lost_end) {
            emit_leaf(p, CAPMEM__PH_LOST, p->cur, end < b->lost_end ? end : b->lost_end, b->rec.cap,
                      CAPMEM_CAP_NULL, NULL, 0);
        }
        emit_leaf(p, CAPMEM__PH_FREE, p->cur, end, b->rec.cap, CAPMEM_CAP_NULL, NULL, 0);
        break;
    case CAPMEM__BOX_POOL:
        emit_leaf(p, CAPMEM__PH_FREE, p->cur, end, b->rec.cap, CAPMEM_CAP_NULL, "RAM service", 0);
        break;
    }
}

static void box_close(phys_t *p)
{
    box_t *b = &p->boxes[p->nbox - 1];
    emit_gap(p, b->e.start + b->e.size);
    if (p->d->sink->phys_box_end != NULL) {
        p->d->sink->phys_box_end(p->d->ctx, &b->rec);
    }
    p->nbox--;
}

static void box_open(phys_t *p, const pentry_t *e)
{
    dump_t *d = p->d;
    if (p->nbox == BOX_DEPTH_MAX) {
        return; /* untyped nest at most 44 deep (2^47 down to 2^4): never reached */
    }
    box_t *b = &p->boxes[p->nbox];
    memset(b, 0, sizeof(*b));
    b->e = *e;
    b->rec.offset = e->start;
    b->rec.phys = phys_of(d->arena, e->start);
    b->rec.size = e->size;
    b->rec.depth = p->nbox;
    switch (e->kind) {
    case E_RAM:
        b->rec.box = CAPMEM__BOX_RAM;
        break;
    case E_DEVICE:
        b->rec.box = CAPMEM__BOX_DEVICE;
        b->rec.device = d->arena->mem.devices[e->id].id;
        b->rec.phys = d->arena->mem.devices[e->id].phys;
        break;
    case E_UNTYPED: {
        const capmem__slot_t *s = slot_at(d, e->id);
        const capmem__untyped_t *ut = s->obj;
        capmem_untyped_info_t info;
        capmem__ut_fill_info(d->arena, s, &info);
        b->rec.box = CAPMEM__BOX_UNTYPED;
        b->rec.cap = handle_of(d, e->id);
        b->rec.policy = info.policy;
        /* Below a watermark's index is lost until the untyped is childless again. */
        if (!ut->user_policy && ut->policy == CAPMEM_UNTYPED_WATERMARK && ut->children > 0) {
            b->lost_end = e->start + info.watermark;
        }
        break;
    }
    default:
        b->rec.box = CAPMEM__BOX_POOL;
        b->rec.cap = handle_of(d, e->id);
        b->rec.policy = "range";
        break;
    }
    p->nbox++;
    if (d->sink->phys_box_begin != NULL) {
        d->sink->phys_box_begin(d->ctx, &b->rec);
    }
    p->cur = e->start;
}

/*
 * Pages kept by runs (a RAM dataspace and the first-class aliases over it;
 * or the lent runs of one account), cut where runs begin and end, each
 * piece with its count of runs. The slow form scans the list for every
 * piece: O(k^2) in k runs, no memory; emit_sweep() is the usual one.
 */
static void emit_runs_slow(phys_t *p, uint64_t start, uint64_t end, const capmem__ds_t *ring,
                           capmem__phys_kind_t kind, capmem_cap_t owner, capmem_cap_t account,
                           const char *label, uint64_t base_refs)
{
    uint64_t c = start < p->cur ? p->cur : start;
    while (c < end) {
        uint64_t b = end;
        uint64_t refs = base_refs;
        for (const capmem__ds_t *a = ring; a != NULL; a = a->u.link.next) {
            const uint64_t ae = a->off + a->size;
            if (a->off > c && a->off < b) {
                b = a->off;
            }
            if (ae > c && ae < b) {
                b = ae;
            }
            refs += a->off <= c && ae > c;
        }
        emit_leaf(p, kind, c, b, owner, account, label, refs);
        c = b;
    }
}

/* A min-heap of run ends. */
static void ends_push(uint64_t *h, size_t *n, uint64_t v)
{
    size_t i = (*n)++;
    h[i] = v;
    while (i > 0 && h[(i - 1) / 2] > h[i]) {
        const uint64_t t = h[i];
        h[i] = h[(i - 1) / 2];
        h[(i - 1) / 2] = t;
        i = (i - 1) / 2;
    }
}

static void ends_pop(uint64_t *h, size_t *n)
{
    h[0] = h[--*n];
    for (size_t i = 0;;) {
        size_t l = 2 * i + 1;
        size_t m = i;
        if (l < *n && h[l] < h[m]) {
            m = l;
        }
        if (l + 1 < *n && h[l + 1] < h[m]) {
            m = l + 1;
        }
        if (m == i) {
            return;
        }
        const uint64_t t = h[i];
        h[i] = h[m];
        h[m] = t;
        i = m;
    }
}

/*
 * The same as a sweep over @p runs, sorted by offset: the ends of the runs
 * over the cursor wait in a min-heap, so each run is touched twice and the
 * whole is O(k log k). Stops at @p end, or, with @p component, where no
 * run covers the cursor and the next begins later (a lent component ends).
 * Returns false, having emitted nothing, when more than ENDS_MAX runs
 * overlap: the caller takes the slow path.
 */
#define ENDS_MAX 4096u

static bool emit_sweep(phys_t *p, uint64_t start, uint64_t end, const capmem__ds_t *runs,
                       bool component, capmem__phys_kind_t kind, capmem_cap_t owner,
                       capmem_cap_t account, const char *label, uint64_t base_refs)
{
    uint64_t *h = p->d->ends;
    /* Count first, so that an overflow is known before anything is written. */
    size_t n = 0;
    uint64_t c = start < p->cur ? p->cur : start;
    const capmem__ds_t *it = runs;
    for (int pass = 0; pass < 2; pass++) {
        n = 0;
        c = start < p->cur ? p->cur : start;
        it = runs;
        while (c < end) {
            while (it != NULL && it->off <= c) {
                const uint64_t e = it->off + it->size;
                if (e > c) {
                    if (n == ENDS_MAX) {
                        return false;
                    }
                    ends_push(h, &n, e);
                }
                it = it->u.link.next;
            }
            while (n > 0 && h[0] <= c) {
                ends_pop(h, &n);
            }
            if (component && n == 0) {
                break;
            }
            uint64_t b = end;
            if (it != NULL && it->off < b) {
                b = it->off;
            }
            if (n > 0 && h[0] < b) {
                b = h[0];
            }
            if (pass == 1) {
                emit_leaf(p, kind, c, b, owner, account, label, base_refs + n);
            }
            c = b;
        }
    }
    return true;
}

/* Lenders whose lent list was sorted for this dump, when they lie outside its scope. */
static bool lent_sorted(phys_t *p, capmem__account_t *lender)
{
    for (unsigned i = 0; i < sizeof(p->sorted) / sizeof(p->sorted[0]); i++) {
        if (p->sorted[i] == lender) {
            return true;
        }
    }
    p->sorted[p->next_sorted++ % (sizeof(p->sorted) / sizeof(p->sorted[0]))] = lender;
    return false;
}

static void emit_entry(phys_t *p, const pentry_t *e)
{
    dump_t *d = p->d;
    while (p->nbox > 0 &&
           p->boxes[p->nbox - 1].e.start + p->boxes[p->nbox - 1].e.size <= e->start) {
        box_close(p);
    }
    emit_gap(p, e->start);
    if (e->kind <= E_POOL) {
        box_open(p, e);
        return;
    }
    const capmem__slot_t *s = slot_at(d, e->id);
    const capmem_cap_t h = handle_of(d, e->id);
    const uint64_t end = e->start + e->size;
    switch (e->kind) {
    case E_FRAME:
    case E_KOBJ:
        emit_leaf(p, e->kind == E_FRAME ? CAPMEM__PH_FRAME : CAPMEM__PH_KOBJ, e->start, end, h,
                  CAPMEM_CAP_NULL, NULL, 1);
        break;
    case E_CHUNK:
        if (s->type == CAPMEM_OBJ_RAM_SESSION) {
            const capmem__account_t *acc = s->obj;
            emit_leaf(p, CAPMEM__PH_METADATA, e->start, end, h, h, acc->label, 1);
        } else {
            const capmem__rm_t *m = s->obj;
            emit_leaf(p, CAPMEM__PH_METADATA, e->start, end, h, account_cap(d, m->client), m->label,
                      1);
        }
        break;
    case E_DS: {
        capmem__ds_t *ds = s->obj;
        const capmem__account_t *acc = capmem__ds_account(ds);
        /* Each ring is met once per dump: sort it, and sweep. */
        capmem__ds_sort_ring(ds);
        if (!emit_sweep(p, e->start, end, ds->u.link.next, false, CAPMEM__PH_DATASPACE, h,
                        account_cap(d, acc), acc->label, 1)) {
            emit_runs_slow(p, e->start, end, ds->u.link.next, CAPMEM__PH_DATASPACE, h,
                           account_cap(d, acc), acc->label, 1);
        }
        break;
    }
    case E_LENT: {
        const capmem__ds_t *ds = s->obj;
        capmem__account_t *lender = capmem__ds_lender(ds);
        if (e->start < p->cur) {
            break; /* inside a component already shown (from its first run, below) */
        }
        /*
         * The first run of a component of the lender's lent runs (they may
         * overlap): show the whole component, from this run's place in the
         * sorted list (back over runs that begin at the same offset).
         */
        if (d->root != 0 && !lent_sorted(p, lender)) {
            capmem__ds_sort_lent(lender); /* the lender is outside the scope: not sorted yet */
        }
        const capmem__ds_t *first = ds;
        while (first->u.link.prev != NULL && first->u.link.prev->off == ds->off) {
            first = first->u.link.prev;
        }
        if (d->root != 0) {
            /* Runs outside the scope were never met: one may cover this run's start. */
            first = lender->lent_list;
        }
        if (!emit_sweep(p, e->start, UINT64_MAX, first, true, CAPMEM__PH_LENT, h,
                        account_cap(d, lender), lender->label, 0)) {
            emit_runs_slow(p, e->start, end, lender->lent_list, CAPMEM__PH_LENT, h,
                           account_cap(d, lender), lender->label, 0);
        }
        break;
    }
    default:
        break;
    }
}

/*
 * Count what the physical map will sort and take its buffer, before
 * anything is written: a dump that cannot have it writes nothing.
 */
static capmem_err_t phys_prepare(dump_t *d)
{
    phys_t p;
    memset(&p, 0, sizeof(p));
    p.d = d;
    enumerate(&p); /* with no heap, it counts */
    if (p.counted == 0) {
        return CAPMEM_OK;
    }
    d->heap_cap = p.counted < PHYS_BATCH ? (size_t)p.counted : PHYS_BATCH;
    d->heap = capmem__malloc(d->heap_cap * sizeof(pentry_t));
    d->ends = d->heap != NULL ? capmem__malloc(ENDS_MAX * sizeof(uint64_t)) : NULL;
    if (d->ends == NULL) {
        capmem__free(d->heap);
        d->heap = NULL;
        return capmem__fail(CAPMEM_E_HOST_NOMEM, NULL,
                            "no host memory for the physical map's sorting buffer (%zu bytes)",
                            d->heap_cap * sizeof(pentry_t) + ENDS_MAX * sizeof(uint64_t));
    }
    /* The lent lists in scope, in address order, for the sweep (emit_entry, E_LENT). */
    walk_t w;
    WALK(w, d)
    {
        if (is_original(slot_at(d, w.cur), CAPMEM_OBJ_RAM_SESSION)) {
            capmem__ds_sort_lent(slot_at(d, w.cur)->obj);
        }
    }
    return CAPMEM_OK;
}

static void phys_section(dump_t *d)
{
    if (d->heap == NULL || d->sink->phys == NULL) {
        return;
    }
    phys_t p;
    memset(&p, 0, sizeof(p));
    p.d = d;
    p.heap = d->heap;
    p.cap = d->heap_cap;
    for (;;) {
        p.n = 0;
        enumerate(&p);
        /* Heapsort in place: the max-heap becomes ascending. */
        for (size_t k = p.n; k > 1; k--) {
            pentry_t t = p.heap[0];
            p.heap[0] = p.heap[k - 1];
            p.heap[k - 1] = t;
            heap_down(p.heap, k - 1, 0);
        }
        for (size_t i = 0; i < p.n; i++) {
            emit_entry(&p, &p.heap[i]);
        }
        if (p.n < p.cap) {
            break;
        }
        p.last = p.heap[p.n - 1];
        p.have_last = true;
    }
    while (p.nbox > 0) {
        box_close(&p);
    }
}

/* ---- region maps --------------------------------------------------------------------- */

/* Nested maps followed below a region (a subtree dump of a map), at most this deep. */
#define RM_NEST_MAX 8u

static void rm_one(dump_t *d, const capmem__rm_t *m, unsigned depth, bool follow)
{
    capmem_arena_t *arena = d->arena;
    capmem__dump_rm_t r;
    memset(&r, 0, sizeof(r));
    r.cap = capmem__rm_handle(arena, m);
    capmem__rm_fill_info(arena, m, &r.info);
    capmem__rm_fill_state(arena, m, &r.state);
    r.managed = m->managed != NULL ? handle_of(d, m->managed->slot) : CAPMEM_CAP_NULL;
    r.depth = depth;
    if (d->sink->rm_begin != NULL) {
        d->sink->rm_begin(d->ctx, &r);
    }
    /* In order, with a stack of the tree's height (AVL: at most 1.44 log2 2^32 < 64). */
    const rm_region_t *stack[64];
    unsigned sp = 0;
    const rm_region_t *n = m->root;
    const unsigned shift = arena->mem.page_shift;
    while (n != NULL || sp > 0) {
        while (n != NULL && sp < 64) {
            stack[sp++] = n;
            n = rg_left(n);
        }
        n = stack[--sp];
        const capmem__ds_t *ds = rg_ds(arena, n);
        capmem__dump_region_t g;
        memset(&g, 0, sizeof(g));
        g.map = r.cap;
        g.address = (uint64_t)n->base << shift;
        g.size = (uint64_t)n->pages << shift;
        g.ds = handle_of(d, n->ds_slot);
        g.ds_kind = (capmem_ds_kind_t)capmem__ds_kind(ds);
        g.offset = n->off;
        g.writable = (rg_flags(n) & RG_WRITABLE) != 0;
        g.executable = (rg_flags(n) & RG_EXEC) != 0;
        g.depth = depth;
        const capmem__rm_t *inner = NULL;
        if (g.ds_kind == CAPMEM_DS_MANAGED) {
            inner = capmem__ds_map(ds);
            g.inner = capmem__rm_handle(arena, inner);
            g.ds_label = inner->label;
        } else {
            const capmem__account_t *acc = pages_account(ds);
            g.account = account_cap(d, acc);
            g.ds_label = acc != NULL ? acc->label : NULL;
        }
        if (d->sink->region != NULL) {
            d->sink->region(d->ctx, &g);
        }
        if (inner != NULL && follow && depth + 1 < RM_NEST_MAX) {
            rm_one(d, inner, depth + 1, follow);
        }
        n = rg_right(n);
    }
    if (d->sink->rm_end != NULL) {
        d->sink->rm_end(d->ctx, &r);
    }
}

static void rm_section(dump_t *d)
{
    const capmem__slot_t *root = d->root != 0 ? slot_at(d, d->root) : NULL;
    if (root != NULL && root->type == CAPMEM_OBJ_REGION_MAP) {
        /* A map's dump follows its managed regions into the maps nested there. */
        rm_one(d, root->obj, 0, true);
        return;
    }
    walk_t w;
    WALK(w, d)
    {
        if (is_original(slot_at(d, w.cur), CAPMEM_OBJ_REGION_MAP)) {
            rm_one(d, slot_at(d, w.cur)->obj, 0, false);
        }
    }
}

/* ---- kernel heap and space banks ------------------------------------------------------ */

/*
 * Issue 13 (kernel metadata, space banks) writes its section here: the
 * kernel heap's frames (and its ranges in the physical map, as
 * CAPMEM__PH_KERNEL leaves from enumerate()), then the bank tree with
 * per-type limits. Until that layer exists the section is empty.
 */
static void kernel_section(dump_t *d)
{
    (void)d;
}

/* ---- statistics ---------------------------------------------------------------------- */

static void stats_section(dump_t *d)
{
    if (d->sink->stats != NULL) {
        d->sink->stats(d->ctx, &d->stats);
    }
}

/* ---- the dump ------------------------------------------------------------------------ */

/* The maps rm_one() shows when it follows nesting from @p m. */
static uint64_t count_nested(capmem_arena_t *arena, const capmem__rm_t *m, unsigned depth)
{
    uint64_t n = 1;
    const rm_region_t *stack[64];
    unsigned sp = 0;
    const rm_region_t *g = m->root;
    while (g != NULL || sp > 0) {
        while (g != NULL && sp < 64) {
            stack[sp++] = g;
            g = rg_left(g);
        }
        g = stack[--sp];
        const capmem__ds_t *ds = rg_ds(arena, g);
        if (capmem__ds_kind(ds) == CAPMEM__DS_MANAGED && depth + 1 < RM_NEST_MAX) {
            n += count_nested(arena, capmem__ds_map(ds), depth + 1);
        }
        g = rg_right(g);
    }
    return n;
}

static void count_scope(dump_t *d, capmem__dump_head_t *h)
{
    walk_t w;
    WALK(w, d)
    {
        const capmem__slot_t *s = slot_at(d, w.cur);
        h->n_caps++;
        h->n_accounts += is_original(s, CAPMEM_OBJ_RAM_SESSION);
        h->n_maps += is_original(s, CAPMEM_OBJ_REGION_MAP);
    }
    h->phys_top = d->arena->mem.phys_base + d->arena->mem.ram_size;
    for (uint32_t i = 0; i < CAPMEM_DEVICE_MAX; i++) {
        const capmem__device_t *dev = &d->arena->mem.devices[i];
        h->devices += dev->id != 0;
        if (dev->id != 0 && dev->phys + dev->size > h->phys_top) {
            h->phys_top = dev->phys + dev->size;
        }
    }
}

static capmem_err_t run(dump_t *d, capmem_cap_t root)
{
    capmem_arena_t *arena = d->arena;
    capmem__dump_head_t h;
    memset(&h, 0, sizeof(h));
    h.ram_size = arena->mem.ram_size;
    h.page_size = arena->mem.page_size;
    h.phys_base = arena->mem.phys_base;
    h.device_window = arena->mem.device_window;
    h.cap_slots = arena->cspace.capacity;
    h.backing = capmem_backing_name(arena->mem.backing);
    h.root = root;
    h.root_type =
        d->root != 0 ? capmem_obj_type_name((capmem_obj_type_t)slot_at(d, d->root)->type) : NULL;
    h.sections = d->sections;
    h.phys_lo = 0;
    h.phys_hi = arena->mem.ram_size + arena->mem.device_window;
    count_scope(d, &h);
    capmem_err_t err = CAPMEM_OK;
    if (d->sections & CAPMEM_DUMP_PHYS) {
        err = phys_prepare(d);
        if (err != CAPMEM_OK) {
            return err;
        }
    }
    if (d->root != 0 && slot_at(d, d->root)->type == CAPMEM_OBJ_REGION_MAP) {
        /* The map and the maps nested in it, each time it is reached. */
        h.n_maps = count_nested(d->arena, slot_at(d, d->root)->obj, 0);
    }
    if (d->sink->begin != NULL) {
        d->sink->begin(d->ctx, &h);
    }
    for (unsigned sec = 0; sec < CAPMEM__SEC_COUNT && err == CAPMEM_OK; sec++) {
        if (!(d->sections & (1u << sec))) {
            continue;
        }
        if (d->sink->section_begin != NULL) {
            d->sink->section_begin(d->ctx, (capmem__dump_section_t)sec);
        }
        switch ((capmem__dump_section_t)sec) {
        case CAPMEM__SEC_CAPS:
            if (d->sink->cap != NULL) {
                caps_section(d);
            }
            break;
        case CAPMEM__SEC_UNTYPED:
            untyped_section(d);
            break;
        case CAPMEM__SEC_RAM:
            ram_section(d);
            break;
        case CAPMEM__SEC_PHYS:
            phys_section(d);
            break;
        case CAPMEM__SEC_RM:
            rm_section(d);
            break;
        case CAPMEM__SEC_KERNEL:
            kernel_section(d);
            break;
        default:
            stats_section(d);
            break;
        }
        if (d->sink->section_end != NULL) {
            d->sink->section_end(d->ctx, (capmem__dump_section_t)sec);
        }
    }
    if (d->sink->end != NULL) {
        d->sink->end(d->ctx);
    }
    capmem__free(d->heap);
    capmem__free(d->ends);
    d->heap = NULL;
    d->ends = NULL;
    return err;
}

capmem_err_t capmem_dump_ex(capmem_arena_t *arena, FILE *out, const capmem_dump_opts_t *opts)
{
    if (arena == NULL || out == NULL || opts == NULL) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, __func__, "arena, out or opts is NULL");
    }
    /* A caller's older, smaller struct: the fields it does not reach keep their defaults. */
    capmem_dump_opts_t o = CAPMEM_DUMP_OPTS_INIT;
    if (opts->size >= CAPMEM_DUMP_OPTS_SIZE_MIN) {
        memcpy(&o, opts, opts->size < sizeof(o) ? (size_t)opts->size : sizeof(o));
        opts = &o;
    }
    if (opts->size < CAPMEM_DUMP_OPTS_SIZE_MIN) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, __func__,
                            "opts->size %llu is below %llu (start from CAPMEM_DUMP_OPTS_INIT)",
                            (unsigned long long)opts->size,
                            (unsigned long long)CAPMEM_DUMP_OPTS_SIZE_MIN);
    }
    if ((unsigned)opts->format > (unsigned)CAPMEM_DUMP_SVG) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, __func__, "unknown dump format %u",
                            (unsigned)opts->format);
    }
    if ((opts->sections & ~(uint32_t)CAPMEM_DUMP_ALL) != 0) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, __func__, "unknown section bits 0x%x",
                            (unsigned)(opts->sections & ~(uint32_t)CAPMEM_DUMP_ALL));
    }
    /* The statistics first: capmem_stats() is a public call of its own. */
    dump_t d;
    memset(&d, 0, sizeof(d));
    d.arena = arena;
    d.sections = opts->sections != 0 ? opts->sections : CAPMEM_DUMP_ALL;
    d.stats.size = sizeof(d.stats);
    capmem_err_t err = capmem_stats(arena, &d.stats);
    if (err != CAPMEM_OK) {
        return err;
    }
    CAPMEM__ENTER_OR_RETURN(arena);
    if (opts->root != CAPMEM_CAP_NULL) {
        capmem__slot_t *s = NULL;
        err = capmem__cap_lookup(arena, opts->root, CAPMEM_OBJ_NONE, 0, &s);
        if (err == CAPMEM_OK) {
            d.root = capmem__cap_index(opts->root);
        }
    }
    if (err == CAPMEM_OK) {
        _Alignas(max_align_t) unsigned char ctx[CAPMEM__DUMP_CTX_MAX];
        switch (opts->format) {
        case CAPMEM_DUMP_JSON:
            d.sink = capmem__dump_json(out, ctx);
            break;
        case CAPMEM_DUMP_DOT:
            d.sink = capmem__dump_dot(out, ctx);
            break;
        case CAPMEM_DUMP_SVG:
            d.sink = capmem__dump_svg(out, ctx);
            break;
        default:
            d.sink = capmem__dump_text(out, ctx);
            break;
        }
        d.ctx = ctx;
        /* One lock of the stream for the whole dump, instead of one per write. */
        flockfile(out);
        err = run(&d, opts->root);
        funlockfile(out);
    }
    CAPMEM__LEAVE(arena);
    if (err == CAPMEM_OK && (fflush(out) != 0 || ferror(out))) {
        err = capmem__fail(CAPMEM_E_SYSTEM, __func__, "writing the dump failed");
    }
    return err;
}

capmem_err_t capmem_dump(capmem_arena_t *arena, FILE *out, capmem_dump_format_t format)
{
    capmem_dump_opts_t opts = CAPMEM_DUMP_OPTS_INIT;
    opts.format = format;
    return capmem_dump_ex(arena, out, &opts);
}

/* ---- shared by the formats --------------------------------------------------------- */

const char *const capmem__phys_kind_names[CAPMEM__PH_KINDS] = {
    "dataspace", "lent", "records",   "frame",       "kernel object",
    "free",      "lost", "unclaimed", "kernel heap",
};

const char *capmem__dump_bytes(uint64_t v, char *buf, size_t len)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
    unsigned u = 0;
    uint64_t whole = v;
    while (whole >= 1024 && u < 6) {
        whole /= 1024;
        u++;
    }
    if (u == 0) {
        snprintf(buf, len, "%llu B", (unsigned long long)v);
        return buf;
    }
    const uint64_t unit = 1ull << (10 * u);
    if (v % unit == 0) {
        snprintf(buf, len, "%llu %s", (unsigned long long)(v / unit), units[u]);
    } else {
        /* One decimal, truncated: exact for the common halves and quarters' first digit. */
        const uint64_t tenth = (v % unit) / (unit / 10);
        snprintf(buf, len, "%llu.%llu %s", (unsigned long long)(v / unit),
                 (unsigned long long)tenth, units[u]);
    }
    return buf;
}

const char *capmem__dump_rights(unsigned rights, char buf[4])
{
    buf[0] = (rights & CAPMEM_RIGHT_READ) ? 'r' : '-';
    buf[1] = (rights & CAPMEM_RIGHT_WRITE) ? 'w' : '-';
    buf[2] = (rights & CAPMEM_RIGHT_GRANT) ? 'g' : '-';
    buf[3] = '\0';
    return buf;
}

/*
 * Colours that stay apart on a projector and carry black text (from
 * ColorBrewer's Set3 and Paired), none of them the purple of records, the
 * orange of lent pages or the greys of lost and unclaimed space.
 */
static const char *const palette[] = {
    "#8dd3c7", "#80b1d3", "#b3de69", "#fccde5", "#ffed6f", "#fb8072",
    "#a6cee3", "#ccebc5", "#b2df8a", "#e5c494", "#66c2a5",
};

const char *capmem__dump_account_colour(capmem_cap_t account)
{
    if (account == CAPMEM_CAP_NULL) {
        return "#cccccc";
    }
    const uint32_t idx = capmem__cap_index(account);
    return palette[idx % (sizeof(palette) / sizeof(palette[0]))];
}

const char *capmem__dump_kind_colour(capmem__phys_kind_t kind)
{
    switch (kind) {
    case CAPMEM__PH_FRAME:
        return "#4daf4a";
    case CAPMEM__PH_KOBJ:
        return "#377eb8";
    case CAPMEM__PH_FREE:
        return "#ffffff";
    case CAPMEM__PH_LOST:
        return "#999999";
    case CAPMEM__PH_UNCLAIMED:
        return "#e0e0e0";
    case CAPMEM__PH_KERNEL:
        return "#e41a1c";
    default:
        return "#cccccc";
    }
}
