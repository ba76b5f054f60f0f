/* SPDX-License-Identifier: MIT */
/*
 * The RAM service: accounts, donated metadata, dataspace records. Shared
 * with the dataspace and region-map layers.
 *
 * Every record below lives in the arena, carved from some session's donated
 * metadata chunks, so the host heap does not grow with the number of
 * accounts, dataspaces, aliases or regions. Pointers between records are
 * plain pointers into the arena mapping, which never moves.
 */
#ifndef CAPMEM_RAM_INTERNAL_H
#define CAPMEM_RAM_INTERNAL_H

#include "capmem/dataspace.h"
#include "capmem/ram.h"
#include "untyped_internal.h"

typedef struct capmem__ram_service capmem__ram_service_t;
typedef struct capmem__account capmem__account_t;
typedef struct capmem__ds capmem__ds_t;

#define CAPMEM__REC CAPMEM_RAM_RECORD_SIZE

/*
 * A slab of 64-byte records over donated chunks. A chunk is a physically
 * contiguous range reserved from the service when the donation was made;
 * its first slot is a header linking the chunks. Records come from the free
 * list, else from the bump pointer of the current chunk (earlier chunks are
 * full: a new chunk always becomes current).
 *
 * Invariants: used <= capacity; capacity == donation / 64; used counts the
 * chunk headers and the session record; donation == sum of chunk sizes.
 */
typedef struct capmem__meta {
    capmem__account_t *account; /* whose quota stands behind it (NULL: a region map) */
    uint64_t donation;          /* bytes of chunks */
    uint8_t *chunks;            /* first chunk, NULL when none */
    uint8_t *cur;               /* chunk being bumped */
    uint64_t bump;              /* next unused offset in cur */
    void *free;                 /* free slots, linked through their first word */
    uint64_t used;              /* slots in use */
    uint64_t capacity;          /* slots in all chunks */
} capmem__meta_t;

_Static_assert(sizeof(capmem__meta_t) == 64, "meta header is one record's worth");

typedef struct capmem__chunk {
    uint8_t *next;
    uint64_t size;
} capmem__chunk_t;

/*
 * An account (RAM session). Lives in the first chunk of its own donation.
 * Invariants: used <= quota; lent <= used; the lent list holds exactly the
 * first-class aliases whose lender is this account and whose original is
 * freed; caps.used counts the capabilities charged to it.
 */
struct capmem__account {
    capmem__ram_service_t *svc;
    capmem__account_t *ref; /* reference account, NULL for the root */
    uint64_t quota;
    uint64_t used;
    uint64_t lent;
    capmem__quota_t caps;
    capmem__meta_t meta;
    uint64_t upgrade_step;
    uint64_t upgrades;
    capmem__ds_t *dependents; /* dependent aliases paid for here (list through next/prev) */
    capmem__ds_t *lent_list;  /* first-class aliases of freed originals lent by this account */
    uint32_t flags;
    uint32_t slot;     /* original capability's slot */
    uint32_t sessions; /* child sessions (accounts, region maps) open */
    char label[20];
};

_Static_assert(sizeof(capmem__account_t) <= CAPMEM_RAM_SESSION_SLOTS * CAPMEM__REC,
               "the account record fits its session slots");

/* Dataspace kinds (low bits of capmem__ds.flags). */
enum {
    CAPMEM__DS_RAM = 1,
    CAPMEM__DS_ALIAS_DEP = 2,
    CAPMEM__DS_ALIAS_FC = 3,
    CAPMEM__DS_MANAGED = 4,
    CAPMEM__DS_KIND_MASK = 0xf,
    CAPMEM__DS_WRITABLE = 1u << 4,
    CAPMEM__DS_LENT = 1u << 5, /* first-class alias in its lender's lent list */
};

/*
 * A dataspace record: exactly one 64-byte slot.
 * - RAM: [off, off+size) reserved at allocation; next/prev ring the
 *   first-class aliases of it (the record is the ring's head).
 * - dependent alias: a subrange; next/prev link the paying account's
 *   dependents list.
 * - first-class alias: a subrange that keeps its pages alive; next/prev link
 *   the original's ring, or the lender's lent list once the original is
 *   freed; lender is the account charged for its pages.
 * - managed: a region map used as a dataspace (owner points at it).
 */
struct capmem__ds {
    capmem__meta_t *meta; /* slab the record was carved from (its payer) */
    uint64_t off;         /* backing offset of byte 0 (RAM and aliases) */
    uint64_t size;
    capmem__ds_t *next;
    capmem__ds_t *prev;
    void *regions; /* attachments, kept by the region-map layer */
    void *owner;   /* RAM: the account; FC alias: lender account; managed: the map */
    uint32_t flags;
    uint32_t slot; /* original capability's slot */
};

_Static_assert(sizeof(capmem__ds_t) == CAPMEM__REC, "a dataspace record is one slot");

struct capmem__ram_service {
    uint8_t *base;        /* the arena mapping, to turn chunk pointers into offsets */
    capmem_alloc_t *phys; /* range allocator over [lo, hi), page granule */
    uint64_t lo;
    uint64_t hi;
    uint64_t total; /* bytes of RAM in the pools */
    capmem__account_t *root;
    uint32_t pools;         /* live pools */
    uint32_t pool_slot[64]; /* their capabilities' slots, 0 once a pool is gone */
    bool alive;             /* root account exists */
    capmem__ram_service_t *next_svc;
};

/* Per-arena RAM state. */
typedef struct capmem__ram_state {
    capmem__ram_service_t *services;
} capmem__ram_state_t;

capmem__ram_state_t *capmem__ram_state(capmem_arena_t *arena);

/* ---- metadata slabs ---- */

/* Reserve @p bytes as a new chunk of @p m (physical allocation; OUT_OF_PHYS). */
capmem_err_t capmem__meta_add_chunk(capmem_arena_t *arena, capmem__ram_service_t *svc,
                                    capmem__meta_t *m, uint64_t bytes, const char *func);
/*
 * Lay out a session in the first chunk of a fresh slab: the @p slots after
 * the chunk header become its record (returned, zeroed); records follow.
 */
void *capmem__meta_session_record(capmem__meta_t *m, unsigned slots);
/* One record, or OUT_OF_METADATA with needed 64 and available 0. */
capmem_err_t capmem__meta_alloc(capmem__meta_t *m, const char *func, void **rec);
bool capmem__meta_has_room(const capmem__meta_t *m, uint64_t slots);
void capmem__meta_free(capmem__meta_t *m, void *rec);
/* Give every chunk back to the service's physical allocator. */
void capmem__meta_release(capmem__ram_service_t *svc, capmem__meta_t *m);

/*
 * Make room for @p slots records in @p m: if it lacks room and @p expander
 * is expanding, upgrade from its own quota in steps (emitting events)
 * until there is room; OUT_OF_METADATA otherwise, OUT_OF_RAM when the
 * expander's quota cannot pay. @p who labels the event.
 */
capmem_err_t capmem__meta_reserve(capmem_arena_t *arena, capmem__meta_t *m,
                                  capmem__account_t *expander, capmem_cap_t session_cap,
                                  const char *who, uint64_t slots, const char *func);

/* Upgrade @p m by @p bytes paid from @p payer's quota. */
capmem_err_t capmem__meta_upgrade(capmem_arena_t *arena, capmem__meta_t *m,
                                  capmem__account_t *payer, capmem_cap_t session_cap,
                                  const char *who, uint64_t bytes, const char *func);

/* ---- lookups ---- */

capmem_err_t capmem__account_lookup(capmem_arena_t *arena, capmem_cap_t cap, unsigned rights,
                                    const char *func, capmem__account_t **out);
capmem_err_t capmem__ds_lookup(capmem_arena_t *arena, capmem_cap_t cap, unsigned rights,
                               const char *func, capmem__slot_t **slot, capmem__ds_t **out);

/* The dataspace type's hooks (dataspace.c), registered by the RAM layer. */
extern const capmem__type_ops_t capmem__ds_type;

/* Dataspace kind and writability. */
static inline unsigned capmem__ds_kind(const capmem__ds_t *ds)
{
    return ds->flags & CAPMEM__DS_KIND_MASK;
}

/*
 * Check a slab: donation == its chunks, and used == chunk headers +
 * @p session_slots + @p records + the region-map records it holds.
 */
capmem_err_t capmem__meta_check(capmem_arena_t *arena, const capmem__meta_t *m, const char *who,
                                uint64_t records, uint64_t session_slots, char *why, size_t len);

/*
 * Live dataspace records (originals) carved from @p m; adds the sizes of
 * RAM dataspaces owned by m's account to *ram_bytes when not NULL.
 */
uint64_t capmem__ds_records_in(capmem_arena_t *arena, const capmem__meta_t *m, uint64_t *ram_bytes);

/*
 * A closing account passes its lent first-class aliases, and the charge for
 * their pages, to its reference account @p to.
 */
void capmem__pass_lent(capmem__account_t *from, capmem__account_t *to);

/* RAM checker (conservation, exclusivity, records), run by capmem_check(). */
capmem_err_t capmem__ram_check(capmem_arena_t *arena, char *why, size_t len);

#endif
