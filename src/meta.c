/* SPDX-License-Identifier: MIT */
/*
 * The donated-record slab (meta_internal.h): where every per-object record
 * of the services lives, paid for by the client's donation.
 */
#include <stdio.h>
#include <string.h>

#include "alloc_internal.h"
#include "machine_internal.h"
#include "meta_internal.h"

/*
 * Records are announced to Valgrind as blocks of a mempool per slab
 * (anchored at its first chunk), and unallocated slots are kept
 * inaccessible, so a simulated use-after-free of a record, or a read of a
 * slot never handed out, is a memcheck error like a heap bug. Outside
 * Valgrind the client requests cost a few instructions.
 */
#ifdef CAPMEM_HAVE_VALGRIND
#include <valgrind/memcheck.h>
#else
#define VALGRIND_MAKE_MEM_NOACCESS(a, n) ((void)(a), (void)(n))
#define VALGRIND_MAKE_MEM_UNDEFINED(a, n) ((void)(a), (void)(n))
#define VALGRIND_MAKE_MEM_DEFINED(a, n) ((void)(a), (void)(n))
#define VALGRIND_CREATE_MEMPOOL(pool, rz, zeroed) ((void)(pool))
#define VALGRIND_DESTROY_MEMPOOL(pool) ((void)(pool))
#define VALGRIND_MEMPOOL_ALLOC(pool, a, n) ((void)(pool), (void)(a), (void)(n))
#define VALGRIND_MEMPOOL_FREE(pool, a) ((void)(pool), (void)(a))
#endif

/* Push a slot that is not a live record onto the free list (its link word only is accessible). */
static void push_free_slot(capmem__meta_t *m, void *slot)
{
    VALGRIND_MAKE_MEM_UNDEFINED(slot, sizeof(void *));
    *(void **)slot = m->free;
    m->free = slot;
}

capmem_err_t capmem__meta_reserve(capmem_alloc_t *phys, uint64_t bytes, uint64_t page,
                                  const char *what, uint64_t *off)
{
    capmem_err_t err = capmem_alloc_alloc(phys, bytes, page, off);
    if (err == CAPMEM_E_POLICY || err == CAPMEM_E_HOST_NOMEM || err == CAPMEM_E_REENTRANT) {
        /* A placement policy's wrong answer, or its wrapper's: the detail says which. */
        capmem__detail()->function = capmem__tls_function;
        return err;
    }
    if (err != CAPMEM_OK) {
        uint64_t largest = capmem_alloc_largest(phys);
        return capmem__fail_space(CAPMEM_E_OUT_OF_PHYS, NULL, bytes, largest,
                                  "no contiguous physical range of %llu bytes for %s "
                                  "(largest free range: %llu bytes)",
                                  (unsigned long long)bytes, what, (unsigned long long)largest);
    }
    return CAPMEM_OK;
}

void capmem__meta_unreserve(capmem_alloc_t *phys, uint64_t off, uint64_t bytes)
{
    capmem_err_t err = capmem_alloc_free(phys, off, bytes);
    CAPMEM_ASSERT(err == CAPMEM_OK, "the range was reserved by capmem__meta_reserve");
    (void)err;
    capmem__alloc_settle(phys, off, off + bytes);
}

capmem_err_t capmem__meta_add_chunk(capmem_arena_t *arena, capmem_alloc_t *phys, capmem__meta_t *m,
                                    uint64_t bytes)
{
    uint64_t off;
    capmem_err_t err = capmem__meta_reserve(phys, bytes, arena->mem.page_size, "metadata", &off);
    if (err != CAPMEM_OK) {
        return err;
    }
    capmem__meta_add_chunk_at(arena, m, off, bytes);
    return CAPMEM_OK;
}

void capmem__meta_add_chunk_at(capmem_arena_t *arena, capmem__meta_t *m, uint64_t off,
                               uint64_t bytes)
{
    capmem__backing_t *mem = &arena->mem;
    uint8_t *chunk = capmem__bytes(mem, off);
    capmem__backing_zero(mem, off, bytes);
    capmem__chunk_t *hdr = (capmem__chunk_t *)chunk;
    hdr->size = bytes;
    hdr->next = NULL;
    /* Every slot after the header is inaccessible until it is handed out. */
    VALGRIND_MAKE_MEM_NOACCESS(chunk + CAPMEM__REC, bytes - CAPMEM__REC);
    /* Append, so the first chunk (holding the session record) stays first. */
    if (m->chunks == NULL) {
        m->chunks = chunk;
        VALGRIND_CREATE_MEMPOOL(chunk, 0, 0);
    } else {
        uint8_t *c = m->chunks;
        while (((capmem__chunk_t *)c)->next != NULL) {
            c = ((capmem__chunk_t *)c)->next;
        }
        ((capmem__chunk_t *)c)->next = chunk;
    }
    /* The rest of the current chunk joins the free list before we move on. */
    if (m->cur != NULL) {
        uint64_t cur_size = ((capmem__chunk_t *)m->cur)->size;
        for (; m->bump + CAPMEM__REC <= cur_size; m->bump += CAPMEM__REC) {
            push_free_slot(m, m->cur + m->bump);
        }
    }
    m->cur = chunk;
    m->bump = CAPMEM__REC; /* slot 0 is the header */
    m->used += 1;
    m->donation += bytes;
    capmem__stat_add(&arena->stats.records, 1); /* the chunk header */
}

void *capmem__meta_session_record(capmem_arena_t *arena, capmem__meta_t *m, unsigned slots)
{
    CAPMEM_ASSERT(m->chunks != NULL && m->cur == m->chunks && m->bump == CAPMEM__REC,
                  "a fresh slab with one chunk");
    uint8_t *rec = m->chunks + CAPMEM__REC;
    VALGRIND_MAKE_MEM_UNDEFINED(rec, (size_t)CAPMEM__REC * slots);
    memset(rec, 0, (size_t)CAPMEM__REC * slots);
    m->bump = CAPMEM__REC * (1u + slots);
    m->used += slots;
    capmem__stat_add(&arena->stats.records, slots);
    return rec;
}

capmem_err_t capmem__meta_alloc(capmem_arena_t *arena, capmem__meta_t *m, void **rec)
{
    void *r = NULL;
    if (m->free != NULL) {
        r = m->free;
        m->free = *(void **)r;
    } else if (m->cur != NULL && m->bump + CAPMEM__REC <= ((capmem__chunk_t *)m->cur)->size) {
        r = m->cur + m->bump;
        m->bump += CAPMEM__REC;
    } else {
        return capmem__meta_full(m, 1);
    }
    VALGRIND_MEMPOOL_ALLOC(m->chunks, r, CAPMEM__REC);
    memset(r, 0, CAPMEM__REC);
    m->used++;
    capmem__stat_add(&arena->stats.records, 1);
    *rec = r;
    return CAPMEM_OK;
}

void capmem__meta_free(capmem_arena_t *arena, capmem__meta_t *m, void *rec)
{
    CAPMEM_ASSERT(m->used > 0, "freeing a record that was allocated");
    /* From here a stale pointer into the record is a Valgrind error. */
    VALGRIND_MEMPOOL_FREE(m->chunks, rec);
    push_free_slot(m, rec);
    m->used--;
    capmem__stat_sub(&arena->stats.records, 1);
}

void capmem__meta_release(capmem_arena_t *arena, capmem_alloc_t *phys, capmem__meta_t *m)
{
    const capmem__backing_t *mem = &arena->mem;
    /* The chunk headers, the session record and any record left go with the chunks. */
    capmem__stat_sub(&arena->stats.records, m->used);
    uint8_t *c = m->chunks;
    if (c != NULL) {
        VALGRIND_DESTROY_MEMPOOL(c);
    }
    while (c != NULL) {
        capmem__chunk_t *hdr = (capmem__chunk_t *)c;
        uint8_t *next = hdr->next;
        uint64_t size = hdr->size;
        VALGRIND_MAKE_MEM_DEFINED(c, size);
        const uint64_t off = (uint64_t)(c - mem->base);
        capmem_err_t err = capmem_alloc_free(phys, off, size);
        CAPMEM_ASSERT(err == CAPMEM_OK, "a chunk was allocated from this service");
        (void)err;
        capmem__alloc_settle(phys, off, off + size);
        c = next;
    }
    m->chunks = NULL;
    m->cur = NULL;
    m->free = NULL;
}

capmem_err_t capmem__meta_full(const capmem__meta_t *m, uint64_t slots)
{
    return capmem__fail_space(CAPMEM_E_OUT_OF_METADATA, NULL, slots * CAPMEM__REC,
                              (capmem__meta_capacity(m) - m->used) * CAPMEM__REC,
                              "Could not allocate metadata (%llu-byte record; the donation of "
                              "%llu bytes is used up)",
                              (unsigned long long)(slots * CAPMEM__REC),
                              (unsigned long long)m->donation);
}

static uint64_t chunk_count(const capmem__meta_t *m)
{
    uint64_t n = 0;
    for (const uint8_t *c = m->chunks; c != NULL; c = ((const capmem__chunk_t *)c)->next) {
        n++;
    }
    return n;
}

capmem_err_t capmem__meta_check(const capmem__meta_t *m, const char *who, uint64_t records,
                                uint64_t session_slots, char *why, size_t len)
{
    uint64_t bytes = 0;
    for (const uint8_t *c = m->chunks; c != NULL; c = ((const capmem__chunk_t *)c)->next) {
        bytes += ((const capmem__chunk_t *)c)->size;
    }
    if (bytes != m->donation || m->donation % CAPMEM__REC != 0) {
        snprintf(why, len, "%s: donation %llu does not match its chunks (%llu bytes, %llu slots)",
                 who, (unsigned long long)m->donation, (unsigned long long)bytes,
                 (unsigned long long)capmem__meta_capacity(m));
        return CAPMEM_E_CORRUPT;
    }
    uint64_t expect = chunk_count(m) + session_slots + records;
    if (m->used != expect || m->used > capmem__meta_capacity(m)) {
        snprintf(why, len,
                 "%s: %llu metadata slots in use, but %llu chunk headers + %llu session slots "
                 "+ %llu live records exist (capacity %llu)",
                 who, (unsigned long long)m->used, (unsigned long long)chunk_count(m),
                 (unsigned long long)session_slots, (unsigned long long)(expect - session_slots),
                 (unsigned long long)capmem__meta_capacity(m));
        return CAPMEM_E_CORRUPT;
    }
    return CAPMEM_OK;
}
