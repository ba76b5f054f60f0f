/* SPDX-License-Identifier: MIT */
/*
 * The donated-record slab: 64-byte records carved from the memory a client
 * donated to a service (Genode's session quota paying for the service's
 * bookkeeping). Every account, dataspace, alias, region map and region
 * record lives in one, in the arena, so the host heap does not grow with
 * the number of objects. Who donated, and what the records are, is the
 * business of the layers above. Never installed.
 */
#ifndef CAPMEM_META_INTERNAL_H
#define CAPMEM_META_INTERNAL_H

#include "arena_internal.h"
#include "capmem/alloc.h"
#include "capmem/ram.h"

#define CAPMEM__REC CAPMEM_RAM_RECORD_SIZE

/* Who embeds a slab: told apart by the checkers (a slab does not care). */
typedef enum capmem__meta_kind {
    CAPMEM__META_ACCOUNT = 1, /* a RAM session's own records */
    CAPMEM__META_RM = 2,      /* a region map's records */
    CAPMEM__META_BANK = 3,    /* a space-bank service's records */
} capmem__meta_kind_t;

/*
 * A slab of 64-byte records over donated chunks. A chunk is a physically
 * contiguous range reserved from the service when the donation was made;
 * its first slot is a header linking the chunks. Records come from the free
 * list, else from the bump pointer of the current chunk (earlier chunks are
 * full: a new chunk always becomes current). The session record itself is
 * carved from the first chunk (capmem__meta_session_record).
 *
 * Invariants (capmem__meta_check): used <= capacity = donation / 64;
 * donation == sum of chunk sizes; used == chunk headers + session slots +
 * live records.
 */
typedef struct capmem__meta {
    uint32_t kind; /* capmem__meta_kind_t */
    uint32_t spare;
    uint64_t donation; /* bytes of chunks */
    uint8_t *chunks;   /* first chunk, NULL when none */
    uint8_t *cur;      /* chunk being bumped */
    uint64_t bump;     /* next unused offset in cur */
    void *free;        /* free slots, linked through their first word */
    uint64_t used;     /* slots in use */
    uint64_t tally;    /* scratch for the checkers: records counted in one pass */
} capmem__meta_t;

_Static_assert(sizeof(capmem__meta_t) == 64, "a slab header is one record's worth");

typedef struct capmem__chunk {
    uint8_t *next;
    uint64_t size;
} capmem__chunk_t;

static inline uint64_t capmem__meta_capacity(const capmem__meta_t *m)
{
    return m->donation / CAPMEM__REC;
}

static inline bool capmem__meta_has_room(const capmem__meta_t *m, uint64_t slots)
{
    return capmem__meta_capacity(m) - m->used >= slots;
}

/*
 * Reserve @p bytes of @p phys (page-aligned) as a new chunk of @p m;
 * OUT_OF_PHYS with the largest free range as available when there is none,
 * POLICY when the service's placement policy answered wrongly, HOST_NOMEM
 * when its wrapper could not record the block.
 */
capmem_err_t capmem__meta_add_chunk(capmem_arena_t *arena, capmem_alloc_t *phys, capmem__meta_t *m,
                                    uint64_t bytes);
/*
 * The two halves of capmem__meta_add_chunk, for a decode that must take the
 * physical range before an invoke that cannot fail: reserve (errors as
 * above), then make the reserved [off, off + bytes) a chunk of @p m.
 */
capmem_err_t capmem__meta_reserve(capmem_alloc_t *phys, uint64_t bytes, uint64_t page,
                                  const char *what, uint64_t *off);
void capmem__meta_add_chunk_at(capmem_arena_t *arena, capmem__meta_t *m, uint64_t off,
                               uint64_t bytes);
/* Give back a range reserved with capmem__meta_reserve() that never became a chunk. */
void capmem__meta_unreserve(capmem_alloc_t *phys, uint64_t off, uint64_t bytes);
/*
 * Lay out a session in the first chunk of a fresh slab: the @p slots after
 * the chunk header become its record (returned, zeroed); records follow.
 */
void *capmem__meta_session_record(capmem_arena_t *arena, capmem__meta_t *m, unsigned slots);
/* One zeroed record; OUT_OF_METADATA (needed 64, available 0) when the slab is full. */
capmem_err_t capmem__meta_alloc(capmem_arena_t *arena, capmem__meta_t *m, void **rec);
void capmem__meta_free(capmem_arena_t *arena, capmem__meta_t *m, void *rec);
/* Give every chunk back to @p phys. The slab (and the session record in it) is gone. */
void capmem__meta_release(capmem_arena_t *arena, capmem_alloc_t *phys, capmem__meta_t *m);

/* OUT_OF_METADATA for @p slots records of @p m, with the numbers. */
capmem_err_t capmem__meta_full(const capmem__meta_t *m, uint64_t slots);

/*
 * Check a slab: donation == its chunks, and used == chunk headers +
 * @p session_slots + @p records. @p who names it in the message.
 */
capmem_err_t capmem__meta_check(const capmem__meta_t *m, const char *who, uint64_t records,
                                uint64_t session_slots, char *why, size_t len);

#endif
