/* SPDX-License-Identifier: MIT */
/*
 * Region-map records, shared by src/region_map.c and the tests that
 * corrupt them on purpose to prove the checker notices.
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
 * Invariants (checked by rm_check): regions do not overlap and lie in the
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
    uint64_t size; /* bytes */
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
    char label[24];
};

_Static_assert(sizeof(capmem__rm_t) <= CAPMEM_RM_SESSION_SLOTS * CAPMEM__REC,
               "the region-map record fits its session slots");
_Static_assert(CAPMEM_RAM_RECORD_SIZE == 64, "records are 64-byte slots");

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

#endif
