/* SPDX-License-Identifier: MIT */
/*
 * Region-map internals, shared by the files of layer 7 and by the tests
 * that corrupt records on purpose to prove the checker notices. Never
 * installed. docs/region_map.md explains the layer for a reader new to it.
 *
 * The layer, one file per seam:
 *   rm_tree.c     the region tree (AVL, augmented with free gaps) and each
 *                 dataspace's list of attachments
 *   rm_session.c  the layer's set-up and registrations, open, close,
 *                 upgrade, the fault handler, state, info, lookup, the
 *                 managed dataspace
 *   rm_attach.c   attach and detach (cycle refusal, detach everywhere)
 *   rm_access.c   the access path: translate, deliver, read, write, touch
 *   rm_check.c    the invariant checker
 */
#ifndef CAPMEM_RM_INTERNAL_H
#define CAPMEM_RM_INTERNAL_H

#include "cap_internal.h"
#include "capmem/region_map.h"
#include "ram_internal.h"

typedef struct rm_region rm_region_t;
typedef struct capmem__rm capmem__rm_t;

/*
 * A region record: exactly one 64-byte metadata slot.
 *
 *   bytes  0..7   left child | AVL height in the low 6 bits
 *   bytes  8..15  right child | RG_WRITABLE, RG_EXEC in the low bits
 *   bytes 16..31  next/prev in the dataspace's list of attachments
 *   bytes 32..39  byte offset into the dataspace
 *   bytes 40..47  capability slots of the dataspace and of the map
 *   bytes 48..63  first page, pages, free pages before it, largest such gap in its subtree
 *
 * Records are 64-byte slots in page-aligned chunks, so the low 6 bits of a
 * record pointer are always zero and carry the height and the flags. The
 * tree has no parent pointers: insert and remove recurse from the root
 * (depth at most 1.44 log2 n). The dataspace and the map are named by the
 * capability slots of their original capabilities (stable for their
 * lifetime, 4 bytes each) rather than by pointers; that and storing page
 * numbers in 32 bits is what makes room for the gap augmentation.
 *
 * Invariants (checked by capmem__rm_check): regions do not overlap and lie in the
 * map; gap == base - end of the predecessor (0 for the first); max_gap is
 * the largest gap in the subtree; heights are exact and balanced; the
 * dataspace slot names a live dataspace original that covers
 * [off, off + pages * page_size); the record is in that dataspace's list.
 */
struct rm_region {
    uintptr_t left;
    uintptr_t right;
    rm_region_t *ds_next;
    rm_region_t *ds_prev;
    uint64_t off;
    uint32_t ds_slot;
    uint32_t rm_slot;
    uint32_t base;
    uint32_t pages;
    uint32_t gap;
    uint32_t max_gap;
};

_Static_assert(sizeof(rm_region_t) == CAPMEM__REC, "a region record is exactly one slot");

#define RG_LOW_MASK ((uintptr_t)(CAPMEM__REC - 1))
#define RG_HEIGHT_MASK ((uintptr_t)0x3f)
enum {
    RG_WRITABLE = 1u << 0,
    RG_EXEC = 1u << 1,
};

/* State bits of a map's last fault. */
enum {
    ST_FAULTED = 1u << 0,
    ST_PENDING = 1u << 1,
    ST_UNRESOLVED = 1u << 2,
};

/*
 * A region map session. Lives in slots 1..CAPMEM_RM_SESSION_SLOTS of its
 * first donated chunk. Invariants: regions == number of tree nodes;
 * meta.used == chunk headers + session slots + regions + (managed ? 1 : 0);
 * the client's sessions count includes this map.
 */
struct capmem__rm {
    capmem__meta_t meta;       /* meta.account is NULL: it marks a region map's slab */
    capmem__account_t *client; /* pays the donation and upgrades */
    rm_region_t *root;
    capmem__ds_t *managed; /* its managed dataspace, NULL until asked for */
    capmem__rm_t *next;    /* per-arena list of maps */
    capmem__rm_t *prev;
    capmem_rm_fault_fn handler;
    void *handler_ctx;
    capmem_alloc_t *place; /* placement policy (capmem_rm_open_attr_t.policy), NULL: lowest fit */
    uint64_t size;         /* bytes */
    uint64_t regions;
    uint64_t upgrade_step;
    uint64_t faults;
    uint64_t fault_addr;
    uint32_t pages;
    uint32_t slot; /* original capability's slot */
    uint32_t flags;
    uint32_t stamp; /* cycle-search visit mark */
    uint16_t in_handler;
    uint8_t fault_access;
    uint8_t state;
    char label[24]; /* NUL-terminated: the first 23 characters of the label given at open */
};

_Static_assert(sizeof(capmem__rm_t) <= CAPMEM_RM_SESSION_SLOTS * CAPMEM__REC,
               "the region-map record fits its session slots");
_Static_assert(CAPMEM_RAM_RECORD_SIZE == 64, "records are 64-byte slots");
_Static_assert(sizeof(((capmem__rm_t *)0)->label) == sizeof(((capmem_rm_info_t *)0)->label),
               "capmem_rm_info() reports the label as kept, neither cut further nor padded");

/*
 * The layer's per-arena state (host memory, set up by the first open):
 * every open map, for the checker and for the cycle search's visit marks.
 * Invariant: a map is in the list from open until its capability dies.
 */
typedef struct capmem__rm_real_hooks capmem__rm_real_hooks_t;

typedef struct capmem__rm_arena {
    capmem__rm_t *maps;
    uint32_t stamp;                      /* the last visit mark handed out */
    const capmem__rm_real_hooks_t *real; /* the real-mode layer's hooks, NULL until it is set up */
} capmem__rm_arena_t;

static inline rm_region_t *rg_left(const rm_region_t *n)
{
    return (rm_region_t *)(n->left & ~RG_LOW_MASK);
}

static inline rm_region_t *rg_right(const rm_region_t *n)
{
    return (rm_region_t *)(n->right & ~RG_LOW_MASK);
}

static inline unsigned rg_height(const rm_region_t *n)
{
    return n != NULL ? (unsigned)(n->left & RG_HEIGHT_MASK) : 0u;
}

static inline unsigned rg_flags(const rm_region_t *n)
{
    return (unsigned)(n->right & RG_LOW_MASK);
}

static inline void rg_set_left(rm_region_t *n, rm_region_t *c)
{
    n->left = (uintptr_t)c | (n->left & RG_LOW_MASK);
}

static inline void rg_set_right(rm_region_t *n, rm_region_t *c)
{
    n->right = (uintptr_t)c | (n->right & RG_LOW_MASK);
}

static inline uint64_t rg_end(const rm_region_t *n)
{
    return (uint64_t)n->base + n->pages;
}

static inline uint32_t gap_of(const rm_region_t *n)
{
    return n != NULL ? n->max_gap : 0u;
}

static inline capmem__ds_t *rg_ds(const capmem_arena_t *arena, const rm_region_t *r)
{
    return arena->cspace.slots[r->ds_slot].obj;
}

static inline capmem__rm_t *rg_rm(const capmem_arena_t *arena, const rm_region_t *r)
{
    return arena->cspace.slots[r->rm_slot].obj;
}

/*
 * The region of @p rm containing local address @p address, or NULL (also
 * beyond the map), in O(log n). Inline, unlike the rest of the tree
 * (rm_tree.c), because the access path runs it on every access and every
 * level of nesting.
 */
static inline rm_region_t *capmem__rm_region_at(const capmem_arena_t *arena, const capmem__rm_t *rm,
                                                uint64_t address)
{
    if (address >= rm->size) {
        return NULL;
    }
    const uint64_t pg = address >> arena->mem.page_shift;
    rm_region_t *n = rm->root;
    while (n != NULL) {
        if (pg < n->base) {
            n = rg_left(n);
        } else if (pg >= rg_end(n)) {
            n = rg_right(n);
        } else {
            return n;
        }
    }
    return NULL;
}

/* ---- maps (inline, but the visit stamp: rm_session.c) ------------------------- */

/* The map's original capability. */
static inline capmem_cap_t capmem__rm_handle(const capmem_arena_t *arena, const capmem__rm_t *rm)
{
    return capmem__slot_handle(&arena->cspace, rm->slot);
}

/* Look a map up (REGION_MAP capability with @p rights); errors as capmem__cap_lookup. */
static inline capmem_err_t capmem__rm_lookup(capmem_arena_t *arena, capmem_cap_t cap,
                                             unsigned rights, capmem__rm_t **out)
{
    capmem__slot_t *s = NULL;
    capmem_err_t err = capmem__cap_lookup(arena, cap, CAPMEM_OBJ_REGION_MAP, rights, &s);
    if (err == CAPMEM_OK) {
        *out = s->obj;
    }
    return err;
}

/*
 * Make room for one record in the map's slab, for a decode phase: an
 * expanding map upgrades from its client's quota in steps (each a completed
 * action with its UPGRADE event, as the expanding RAM client's); otherwise
 * OUT_OF_METADATA. Afterwards capmem__meta_alloc cannot fail.
 */
static inline capmem_err_t capmem__rm_make_room(capmem_arena_t *arena, capmem__rm_t *rm)
{
    return capmem__account_make_room(arena, &rm->meta, rm->client,
                                     (rm->flags & CAPMEM_RM_EXPANDING) != 0, rm->upgrade_step,
                                     capmem__rm_handle(arena, rm), rm->label, 1);
}

/*
 * A fresh visit mark for a walk over the maps (the cycle search): no map
 * carries it yet. When the counter wraps, every map's mark is cleared.
 */
uint32_t capmem__rm_visit_stamp(capmem_arena_t *arena);

/* ---- the region tree and the attachment lists (rm_tree.c) ------------------------ */

/* The region of @p rm overlapping pages [b, e), or NULL, in O(log n). */
rm_region_t *capmem__rm_tree_overlap(const capmem__rm_t *rm, uint64_t b, uint64_t e);

/*
 * Link region @p x (base, pages, flags set) into @p rm's tree, keeping the
 * gaps exact. The caller checked that [base, base + pages) is free.
 */
void capmem__rm_tree_insert(capmem__rm_t *rm, rm_region_t *x);

/* Unlink region @p x from @p rm's tree; its pages become free space. */
void capmem__rm_tree_remove(capmem__rm_t *rm, rm_region_t *x);

/* The lowest first page of a free run of @p need pages of @p rm, in O(log n); false if none. */
bool capmem__rm_tree_find_free(const capmem__rm_t *rm, uint64_t need, uint64_t *at);

/* Add @p r to, or remove it from, the list of attachments of dataspace @p ds. */
void capmem__rm_ds_link(capmem__ds_t *ds, rm_region_t *r);
void capmem__rm_ds_unlink(capmem__ds_t *ds, rm_region_t *r);

/*
 * A map is going away: every region of it leaves its dataspace's list. The
 * tree is left as it is; its records go with the map's chunks.
 */
void capmem__rm_ds_unlink_all(capmem_arena_t *arena, capmem__rm_t *rm);

/* ---- attach and detach (rm_attach.c) ----------------------------------------------- */

/*
 * The dataspace layer's detach hook (Genode's Region_map_detach): @p ds is
 * going away, so each of its attachments is detached from its map.
 */
void capmem__rm_detach_all(capmem_arena_t *arena, capmem__ds_t *ds, capmem_cap_t handle);

/* ---- the access path (rm_access.c) ---------------------------------------------- */

/*
 * Where an access lands: the backing bytes, or a fault to deliver. The
 * simulated mode copies the bytes; a real (mmap) mode would map
 * [boff, boff + avail) of the arena's memory at the faulting address.
 */
typedef struct capmem__rm_xlate {
    capmem__rm_t *fault_rm; /* NULL: backed; else the map the fault belongs to */
    uint64_t fault_addr;    /* local address in fault_rm */
    uint64_t boff;          /* backed: arena offset of the byte at the address */
    uint64_t avail;         /* backed: contiguous bytes from there with the same translation */
} capmem__rm_xlate_t;

/*
 * Translate local address @p addr of @p rm for @p access, through nested
 * maps, into *x. Pure: it changes nothing and runs nothing, so any caller
 * holding the lock may use it (the simulated accesses, a future SIGSEGV
 * path). A fault is a missing region, a write to a region that is not
 * writable, or an exec of one that is not executable, in the innermost map
 * reached; its address is local to that map. The caller keeps @p addr
 * below the map's size.
 */
void capmem__rm_translate(const capmem_arena_t *arena, capmem__rm_t *rm, uint64_t addr,
                          capmem_rm_access_t access, capmem__rm_xlate_t *x);

/*
 * Deliver a fault of @p rm at @p addr (as translate reported it): record it
 * as the map's state, queue the FAULT event, run the map's handler
 * synchronously with nested calls allowed. OK only when the handler reports
 * the fault resolved; otherwise UNRESOLVED_FAULT (detail: address), naming
 * the handler's own failed call as the root cause if it had one. The
 * handler may change anything, even close @p rm: afterwards the caller
 * trusts no pointer and looks its top-level capability up again.
 */
capmem_err_t capmem__rm_deliver(capmem_arena_t *arena, capmem__rm_t *rm, uint64_t addr,
                                capmem_rm_access_t access);

/* The MANAGED kind's access hook: bytes of a managed dataspace go through its map. */
capmem_err_t capmem__rm_managed_access(capmem_arena_t *arena, capmem__ds_t *ds, uint64_t offset,
                                       void *buf, size_t len, bool write);

/* What capmem_rm_info() and capmem_rm_state() report about @p m (the dump writes the same). */
void capmem__rm_fill_info(capmem_arena_t *arena, const capmem__rm_t *m, capmem_rm_info_t *info);
void capmem__rm_fill_state(const capmem_arena_t *arena, const capmem__rm_t *m,
                           capmem_rm_state_t *state);
/* ---- real mode's hooks (rm_session.c calls them; rm_real.c registers them) ------- */

/*
 * What the real-mode layer (rm_real, above this one) learns by
 * registration, as the dataspace layer learns of detaches: its views are a
 * cache of the model, so every range that stops translating as before is
 * reported, and a closing map is unmapped.
 */
struct capmem__rm_real_hooks {
    /* Pages [first, first + pages) of @p rm no longer translate as they did (a region left). */
    void (*drop)(capmem_arena_t *arena, capmem__rm_t *rm, uint64_t first, uint64_t pages);
    /* @p rm is going away (its regions are still in its tree). */
    void (*close)(capmem_arena_t *arena, capmem__rm_t *rm);
    /* The address @p rm is mapped at, or NULL (capmem_rm_info). */
    void *(*base)(capmem_arena_t *arena, const capmem__rm_t *rm);
};

/* Register the hooks (the region-map layer is set up: a map exists). */
void capmem__rm_real_register(capmem_arena_t *arena, const capmem__rm_real_hooks_t *hooks);

/* Call the drop hook, if any: a region of @p rm over [first, first + pages) is going away. */
void capmem__rm_real_drop(capmem_arena_t *arena, capmem__rm_t *rm, uint64_t first, uint64_t pages);

/*
 * A guard (rm_real_signal.c) abandoned every fault handler this thread was
 * running on @p arena, with the lock held and no other thread inside one:
 * the maps' handler counts and pending states are reset as the handlers'
 * returns would have left them (unresolved).
 */
void capmem__rm_abandon_handlers(capmem_arena_t *arena);

/* ---- the checker (rm_check.c) -------------------------------------------------- */

/* The layer's checker (capmem__layer_t.check); @p state is the capmem__rm_arena_t. */
capmem_err_t capmem__rm_check(capmem_arena_t *arena, void *state, char *why, size_t len);

#endif
