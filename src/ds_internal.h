/* SPDX-License-Identifier: MIT */
/*
 * Dataspaces: the record every kind of dataspace shares, the kinds' hooks,
 * and what the RAM service (their factory) and the region maps (their
 * users) call. Below the RAM service, as in Genode, where the dataspace is
 * the thing and the RAM service makes them. Never installed.
 */
#ifndef CAPMEM_DS_INTERNAL_H
#define CAPMEM_DS_INTERNAL_H

#include "account_internal.h"
#include "capmem/dataspace.h"

/* Kinds (the low bits of capmem__ds.flags), numbered as capmem_ds_kind_t. */
enum {
    CAPMEM__DS_RAM = CAPMEM_DS_RAM,
    CAPMEM__DS_ALIAS_DEP = CAPMEM_DS_ALIAS_DEPENDENT,
    CAPMEM__DS_ALIAS_FC = CAPMEM_DS_ALIAS_FIRST_CLASS,
    CAPMEM__DS_MANAGED = CAPMEM_DS_MANAGED,
    CAPMEM__DS_BANK_FRAME = CAPMEM_DS_BANK_FRAME,
    CAPMEM__DS_KINDS = 6, /* kinds are 1..5 */
    CAPMEM__DS_KIND_MASK = 0xf,
    CAPMEM__DS_WRITABLE = 1u << 4,
    CAPMEM__DS_LENT = 1u << 5, /* first-class alias in its lender's lent list */
};

/* The links every kind but MANAGED keeps first in its part of the record. */
typedef struct capmem__ds_link {
    capmem__ds_t *next;
    capmem__ds_t *prev;
} capmem__ds_link_t;

/*
 * A dataspace record: exactly one 64-byte slot, a tagged union by kind
 * (mimalloc's mi_memid_t pattern). Read the union through the accessors
 * below, which check the kind.
 * - RAM: [off, off+size) reserved at allocation; link rings the first-class
 *   aliases of it (the record is the ring's head); account pays its pages.
 * - dependent alias: a subrange; link is in the paying account's
 *   dependents list; base is the RAM dataspace or first-class alias whose
 *   pages it shows, which outlives it (it is the capability parent).
 * - first-class alias: a subrange that keeps its pages alive; link is in
 *   the original's ring, or in the lender's lent list once the original is
 *   freed (LENT); lender is the account charged for its pages.
 * - managed: a region map used as a dataspace; map is the map's record.
 */
struct capmem__ds {
    capmem__meta_t *meta; /* slab the record was carved from (its payer's) */
    uint64_t off;         /* backing offset of byte 0 (not for MANAGED) */
    uint64_t size;
    void *regions; /* attachments, kept by the region-map layer */
    uint32_t flags;
    uint32_t slot; /* original capability's slot */
    union {
        capmem__ds_link_t link; /* RAM, DEP, FC: the common initial member */
        struct {
            capmem__ds_link_t link;
            capmem__account_t *account;
        } ram;
        struct {
            capmem__ds_link_t link;
            capmem__ds_t *base;
        } dep;
        struct {
            capmem__ds_link_t link;
            capmem__account_t *lender;
        } fc;
        struct {
            void *map;
        } managed;
        struct {
            capmem__ds_link_t link; /* in its bank service's list of frames */
            void *bank;             /* the owning bank's record (bank_internal.h) */
        } bank;
    } u;
};

_Static_assert(sizeof(capmem__ds_t) == CAPMEM__REC, "a dataspace record is one slot");

static inline unsigned capmem__ds_kind(const capmem__ds_t *ds)
{
    return ds->flags & CAPMEM__DS_KIND_MASK;
}

static inline capmem__account_t *capmem__ds_account(const capmem__ds_t *ds)
{
    CAPMEM_ASSERT(capmem__ds_kind(ds) == CAPMEM__DS_RAM, "only RAM dataspaces have an account");
    return ds->u.ram.account;
}

static inline capmem__ds_t *capmem__ds_base(const capmem__ds_t *ds)
{
    CAPMEM_ASSERT(capmem__ds_kind(ds) == CAPMEM__DS_ALIAS_DEP,
                  "only dependent aliases have a base");
    return ds->u.dep.base;
}

static inline capmem__account_t *capmem__ds_lender(const capmem__ds_t *ds)
{
    CAPMEM_ASSERT(capmem__ds_kind(ds) == CAPMEM__DS_ALIAS_FC, "only first-class aliases lend");
    return ds->u.fc.lender;
}

static inline void *capmem__ds_map(const capmem__ds_t *ds)
{
    CAPMEM_ASSERT(capmem__ds_kind(ds) == CAPMEM__DS_MANAGED, "only managed dataspaces show a map");
    return ds->u.managed.map;
}

/*
 * What a kind of dataspace does. RAM and the aliases are this layer's own;
 * the region-map layer registers MANAGED (capmem__ds_kind_register).
 */
typedef struct capmem__ds_kind_ops {
    /*
     * Move @p len bytes at @p offset (inside the dataspace) to or from
     * @p buf. May run fault handlers, which may free @p ds itself: @p ds is
     * not touched after the call.
     */
    capmem_err_t (*access)(capmem_arena_t *arena, capmem__ds_t *ds, uint64_t offset, void *buf,
                           size_t len, bool write);
    /* The record is going away (its capability died): undo what the kind links to it. */
    void (*destroy)(capmem_arena_t *arena, capmem__ds_t *ds);
    int (*describe)(capmem_arena_t *arena, const capmem__ds_t *ds, char *buf, size_t len);
} capmem__ds_kind_ops_t;

/*
 * Set the dataspace layer up on an arena (idempotent): registers the
 * DATASPACE type and the RAM and alias kinds. HOST_NOMEM.
 */
capmem_err_t capmem__ds_setup(capmem_arena_t *arena);
/* Register a kind's hooks (the region-map layer: MANAGED). */
void capmem__ds_kind_register(capmem_arena_t *arena, unsigned kind,
                              const capmem__ds_kind_ops_t *ops);
/*
 * Register the hook that detaches a dataspace that is going away from every
 * region map (Genode's Region_map_detach): the region-map layer's.
 */
void capmem__ds_set_detach(capmem_arena_t *arena,
                           void (*detach_all)(capmem_arena_t *, capmem__ds_t *, capmem_cap_t));

/* Look a dataspace up (DATASPACE capability with @p rights); *slot may be NULL. */
capmem_err_t capmem__ds_lookup(capmem_arena_t *arena, capmem_cap_t cap, unsigned rights,
                               capmem__slot_t **slot, capmem__ds_t **out);

/* Writes are possible through this slot's capability of this dataspace. */
static inline bool capmem__ds_writable(const capmem__slot_t *s, const capmem__ds_t *ds)
{
    return (s->rights & CAPMEM_RIGHT_WRITE) && (ds->flags & CAPMEM__DS_WRITABLE);
}

/*
 * The factory's last step (cannot fail): make record @p rec, carved from
 * @p acc's slab, the RAM dataspace over reserved and zeroed [off, off+size),
 * charge it, and create its capability (reserved by the caller) as a child
 * of the account's. Returns the handle.
 */
capmem_cap_t capmem__ds_make_ram(capmem_arena_t *arena, capmem__account_t *acc, capmem__ds_t *rec,
                                 uint64_t off, uint64_t size);

/*
 * Make @p rec (carved from @p m) the managed dataspace of @p map, of
 * @p size bytes, with a capability (reserved by the caller) that is a child
 * of slot @p parent charged to @p quota. Returns the handle.
 */
capmem_cap_t capmem__ds_make_managed(capmem_arena_t *arena, capmem__meta_t *m, capmem__ds_t *rec,
                                     void *map, uint64_t size, uint32_t parent,
                                     capmem__quota_t *quota);

/*
 * A closing account passes its lent first-class aliases, and the charge for
 * their pages, to its reference account @p to.
 */
void capmem__ds_pass_lent(capmem__account_t *from, capmem__account_t *to);

/*
 * Sort a RAM dataspace's ring of first-class aliases, or an account's lent
 * list, by offset, in place and without memory (O(k log k)). Only the
 * order changes, which nothing depends on; the dump walks them in order.
 */
void capmem__ds_sort_ring(capmem__ds_t *original);
void capmem__ds_sort_lent(capmem__account_t *acc);

/*
 * For the RAM checker: is @p acc's dependents list sound, and how many
 * bytes does the union of its lent runs cover? CORRUPT (why) otherwise.
 */
capmem_err_t capmem__ds_check_account(const capmem__account_t *acc, uint64_t *lent_bytes, char *why,
                                      size_t len);

#endif
