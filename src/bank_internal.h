/* SPDX-License-Identifier: MIT */
/*
 * Layer 8, space banks: the service, the bank tree, nodes, and what the
 * checker and the dump (capmem_dump) read. Frames are dataspace records of
 * kind BANK_FRAME (ds_internal.h). Never installed.
 */
#ifndef CAPMEM_BANK_INTERNAL_H
#define CAPMEM_BANK_INTERNAL_H

#include "capmem/bank.h"
#include "kernel_internal.h"
#include "ram_internal.h"

typedef struct capmem__bank capmem__bank_t;
typedef struct capmem__bank_svc capmem__bank_svc_t;

enum {
    CAPMEM__BANK_PRIME = 1u << 0,
    CAPMEM__BANK_KERNEL = 1u << 1, /* the kernel heap's bank: no capability */
};

/*
 * A bank: one 64-byte record of its service's donation (the prime bank's
 * is part of the service record).
 *
 * Invariants (bank_check.c): used[t] == own[t] + sum of the children's
 * used[t], where own counts the bank's frames and nodes, its children's
 * records (one node each) and, for the kernel bank, the heap frames it
 * lent; used[t] <= limit[t]; the prime bank's frame limit is the service's
 * frames plus those the kernel released, and never falls.
 */
struct capmem__bank {
    capmem__bank_t *parent;  /* NULL for the prime bank */
    capmem__bank_t *child;   /* first sub-bank */
    capmem__bank_t *sibling; /* next sub-bank of the parent */
    uint64_t limit[CAPMEM_BANK_TYPES];
    uint64_t used[CAPMEM_BANK_TYPES];
    uint32_t slot; /* original capability (0 for the kernel bank) */
    uint16_t flags;
    uint16_t depth;
};

_Static_assert(sizeof(capmem__bank_t) == CAPMEM__REC, "a bank record is one slot");

/* A node: its record is its storage. Linked in the service's list of nodes. */
typedef struct capmem__bnode {
    struct capmem__bnode *next;
    struct capmem__bnode *prev;
    capmem__bank_t *bank;
    uint32_t slot;
    uint32_t spare;
    uint64_t words[4]; /* the node's contents */
} capmem__bnode_t;

_Static_assert(sizeof(capmem__bnode_t) == CAPMEM__REC, "a node is one record");

/*
 * The service: its record fills the first CAPMEM_BANK_SERVICE_SLOTS slots
 * of its slab's first chunk, the prime bank first. Its memory is one RAM
 * dataspace of the account (ds_slot): the slab's chunk, then the frames
 * (pages[0]); frames the kernel released at the end of boot are pages[1].
 * Host memory: the two page allocators.
 */
struct capmem__bank_svc {
    capmem__bank_t prime;
    capmem__meta_t meta;
    capmem__account_t *acc;
    capmem_alloc_t *pages[2];
    uint64_t page_off; /* the dataspace: [page_off, page_off + page_bytes) */
    uint64_t page_bytes;
    uint64_t frames;          /* the attr's frames: the prime limit before releases */
    uint64_t released_frames; /* frames the kernel released into pages[1] */
    capmem__ds_t *frame_list; /* every bank's frames (u.bank.link) */
    capmem__bnode_t *node_list;
    capmem__bank_t *kernel; /* the kernel heap's bank, or NULL */
    uint64_t heap_frames;   /* frames lent to the kernel heap: the kernel bank's own */
    uint64_t seen_prime;    /* the checker's: the largest prime frame limit seen */
    uint32_t ds_slot;
    uint32_t banks; /* sub-banks alive (the prime bank not counted) */
    capmem__kernel_lender_t lender;
};

_Static_assert(sizeof(capmem__bank_svc_t) <= CAPMEM_BANK_SERVICE_SLOTS * CAPMEM__REC,
               "the service record fits its slots");

/* ---- queries for the dump and the checker (the arena lock held) ----------------------- */

/* The arena's bank service, or NULL. */
capmem__bank_svc_t *capmem__bank_service(const capmem_arena_t *arena);

/* The service a bank belongs to (walks up to the prime bank). */
capmem__bank_svc_t *capmem__bank_svc_of(capmem__bank_t *b);

/* A bank's own objects of each type (frames, nodes, sub-bank records, lent heap frames). */
void capmem__bank_own(const capmem__bank_svc_t *svc, const capmem__bank_t *b,
                      uint64_t own[CAPMEM_BANK_TYPES]);

/*
 * Visit the bank tree in pre-order (parents first, children in order),
 * with each bank's depth; stop when @p fn returns non-zero (returned).
 * A bank's frames are the records of svc->frame_list whose u.bank.bank is
 * it, its nodes those of svc->node_list.
 */
int capmem__bank_walk(capmem__bank_svc_t *svc, int (*fn)(capmem__bank_t *b, void *ctx), void *ctx);

/* The handle of a bank's original capability (CAPMEM_CAP_NULL for the kernel bank). */
capmem_cap_t capmem__bank_handle(const capmem_arena_t *arena, const capmem__bank_t *b);

/* ---- between bank.c and bank_check.c --------------------------------------------------- */

capmem_err_t capmem__bank_check(capmem_arena_t *arena, void *state, char *why, size_t len);

#endif
