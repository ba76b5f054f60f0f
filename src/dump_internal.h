/* SPDX-License-Identifier: MIT */
/*
 * Dumps (capmem_dump, capmem_dump_ex): dump.c walks the model, section by
 * section, and hands each thing it finds, as one of the records below, to
 * a sink: one per format (dump_text.c, dump_json.c, dump_dot.c,
 * dump_svg.c). Records point into the walker's stack and are valid only
 * during the call. Nothing here allocates per object: the walks follow
 * the capability tree's links, the region trees and the slabs' chunk
 * lists, and the physical map is put in address order with one buffer of
 * bounded size (dump.c, "The physical map"). Never installed.
 */
#ifndef CAPMEM_DUMP_INTERNAL_H
#define CAPMEM_DUMP_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "capmem/dataspace.h"
#include "capmem/inspect.h"
#include "capmem/ram.h"
#include "capmem/region_map.h"
#include "capmem/untyped.h"

/* The sections, in the order they are written (capmem_dump_opts_t.sections bits). */
typedef enum capmem__dump_section {
    CAPMEM__SEC_CAPS = 0,
    CAPMEM__SEC_UNTYPED,
    CAPMEM__SEC_RAM,
    CAPMEM__SEC_PHYS,
    CAPMEM__SEC_RM,
    CAPMEM__SEC_KERNEL,
    CAPMEM__SEC_STATS,
    CAPMEM__SEC_COUNT
} capmem__dump_section_t;

/* The arena and what is being dumped. */
typedef struct capmem__dump_head {
    uint64_t ram_size;
    uint64_t page_size;
    uint64_t phys_base;
    uint64_t device_window;
    uint32_t cap_slots;
    const char *backing;
    capmem_cap_t root;     /* the subtree dumped, or 0 for the whole arena */
    const char *root_type; /* its type name, or NULL */
    unsigned sections;     /* CAPMEM_DUMP_* bits */
    uint64_t n_caps;       /* capabilities in scope */
    uint64_t n_accounts;   /* accounts in scope */
    uint64_t n_maps;       /* region maps in scope */
    uint64_t n_phys;       /* physical-map entries (leaves) in scope */
    uint64_t phys_lo;      /* backing range the physical map spans */
    uint64_t phys_hi;
    uint64_t devices;  /* device ranges registered */
    uint64_t phys_top; /* the highest physical address + 1, RAM and devices */
} capmem__dump_head_t;

/* One capability, in pre-order (parents first), with its depth in the dumped tree. */
typedef struct capmem__dump_cap {
    capmem_cap_t cap;
    capmem_cap_t parent; /* 0 for a root of the dump */
    const char *type;    /* capmem_obj_type_name() */
    const char *name;    /* the object's type name (a user type's own) */
    const char *label;   /* an account's or map's label, or NULL */
    char describe[160];  /* one line about the object, from its type's describe hook */
    unsigned rights;
    unsigned depth;
    uint32_t generation;
    uint32_t index;
    bool original;
} capmem__dump_cap_t;

typedef struct capmem__dump_untyped {
    capmem_untyped_info_t info;
    capmem_cap_t parent_untyped; /* the untyped it was retyped from, or 0 */
    capmem_cap_t copy_of;        /* the untyped it is a copy of, or 0 */
    bool range_policy;           /* free ranges follow (capmem__dump_sink_t.untyped_free) */
} capmem__dump_untyped_t;

typedef struct capmem__dump_account {
    capmem_cap_t cap;
    capmem_ram_info_t info;
    unsigned depth;    /* 0 for the top of the dumped account tree */
    uint64_t donated;  /* donations it pays for other sessions (region maps) */
    uint64_t sessions; /* child sessions open */
} capmem__dump_account_t;

typedef struct capmem__dump_ds {
    capmem_cap_t cap;
    capmem_ds_kind_t kind;
    uint64_t size;
    uint64_t offset;          /* backing offset (0 for managed) */
    uint64_t phys;            /* physical address (0 for managed) */
    bool writable;            /* the dataspace (not the capability) allows writes */
    bool lent;                /* a first-class alias whose original is freed */
    capmem_cap_t owner;       /* the account (RAM) or session (alias) it is a child of */
    capmem_cap_t source;      /* dependent alias: the dataspace it shows; else 0 */
    capmem_cap_t pays_pages;  /* the account charged for its pages (0 for aliases of live
                                 originals and managed ones: the original's account pays) */
    capmem_cap_t pays_record; /* the session whose donation holds its record */
    capmem_cap_t managed_map; /* managed: the map it shows */
    const char *pages_label;  /* the labels of those two accounts (or NULL) */
    const char *record_label;
    uint64_t attachments; /* regions it is attached as */
    unsigned depth;
} capmem__dump_ds_t;

/* What a physical range is. */
typedef enum capmem__phys_kind {
    CAPMEM__PH_DATASPACE = 0, /* a RAM dataspace's pages */
    CAPMEM__PH_LENT,          /* pages only first-class aliases keep */
    CAPMEM__PH_METADATA,      /* a donation chunk of a session */
    CAPMEM__PH_FRAME,         /* a frame retyped from untyped */
    CAPMEM__PH_KOBJ,          /* a kernel object retyped from untyped */
    CAPMEM__PH_FREE,          /* free: in a RAM service or in an untyped */
    CAPMEM__PH_LOST,          /* below a watermark untyped's free index */
    CAPMEM__PH_UNCLAIMED,     /* no untyped covers it */
    CAPMEM__PH_KERNEL,        /* the kernel heap (issue 13: kernel metadata) */
    CAPMEM__PH_KINDS
} capmem__phys_kind_t;

/* Names of the kinds, as the JSON and the text write them ("dataspace", "free"...). */
extern const char *const capmem__phys_kind_names[CAPMEM__PH_KINDS];

/* What contains a physical range (the text format indents by it). */
typedef enum capmem__phys_box {
    CAPMEM__BOX_RAM = 0, /* the arena's RAM */
    CAPMEM__BOX_DEVICE,  /* a registered device range */
    CAPMEM__BOX_UNTYPED, /* an untyped region */
    CAPMEM__BOX_POOL,    /* a RAM service's pool (an untyped claimed whole) */
} capmem__phys_box_t;

typedef struct capmem__dump_container {
    capmem__phys_box_t box;
    uint64_t offset; /* backing offset */
    uint64_t phys;
    uint64_t size;
    capmem_cap_t cap; /* the untyped or pool, else 0 */
    uint32_t device;  /* BOX_DEVICE: the device id */
    const char *policy;
    unsigned depth;
} capmem__dump_container_t;

typedef struct capmem__dump_phys {
    capmem__phys_kind_t kind;
    uint64_t offset; /* backing offset */
    uint64_t phys;
    uint64_t size;
    capmem_cap_t owner;   /* the object that holds it (dataspace, alias, session, frame,
                             untyped for its free or lost space), or 0 */
    capmem_cap_t account; /* the account charged for it, or 0 */
    capmem_cap_t in;      /* the innermost untyped or pool around it, or 0 */
    const char *label;    /* the account's or session's label, or NULL */
    uint64_t refs;        /* runs covering each page: the original and first-class aliases */
    unsigned depth;       /* containers around it */
} capmem__dump_phys_t;

typedef struct capmem__dump_rm {
    capmem_cap_t cap;
    capmem_rm_info_t info;
    capmem_rm_state_t state;
    capmem_cap_t managed; /* its managed dataspace, or 0 */
    unsigned depth;       /* nesting: 0 for a map dumped at the top */
} capmem__dump_rm_t;

typedef struct capmem__dump_region {
    capmem_cap_t map;
    uint64_t address;
    uint64_t size;
    capmem_cap_t ds;
    capmem_ds_kind_t ds_kind;
    uint64_t offset; /* in the dataspace */
    bool writable;
    bool executable;
    capmem_cap_t inner;   /* a managed dataspace's map, or 0 */
    capmem_cap_t account; /* the account whose pages it shows (for colours), or 0 */
    const char *ds_label; /* that account's label, or the inner map's */
    unsigned depth;
} capmem__dump_region_t;

/*
 * A format. Every hook may be NULL (nothing to write). Sections are
 * bracketed by section_begin/section_end, in capmem__dump_section_t order,
 * only for the sections asked for; the physical map's containers by
 * phys_box_begin/phys_box_end; a map's regions by rm_begin/rm_end (a
 * managed region's inner map follows it as a nested rm_begin when the
 * dump follows nesting).
 */
typedef struct capmem__dump_sink {
    void (*begin)(void *ctx, const capmem__dump_head_t *head);
    void (*end)(void *ctx);
    void (*section_begin)(void *ctx, capmem__dump_section_t s);
    void (*section_end)(void *ctx, capmem__dump_section_t s);
    void (*cap)(void *ctx, const capmem__dump_cap_t *c);
    void (*untyped)(void *ctx, const capmem__dump_untyped_t *u);
    void (*untyped_free)(void *ctx, const capmem__dump_untyped_t *u, uint64_t offset,
                         uint64_t size);
    void (*untyped_end)(void *ctx, const capmem__dump_untyped_t *u);
    void (*account)(void *ctx, const capmem__dump_account_t *a);
    void (*ds)(void *ctx, const capmem__dump_ds_t *d);
    void (*phys_box_begin)(void *ctx, const capmem__dump_container_t *b);
    void (*phys_box_end)(void *ctx, const capmem__dump_container_t *b);
    void (*phys)(void *ctx, const capmem__dump_phys_t *p);
    void (*rm_begin)(void *ctx, const capmem__dump_rm_t *m);
    void (*region)(void *ctx, const capmem__dump_region_t *r);
    void (*rm_end)(void *ctx, const capmem__dump_rm_t *m);
    /* Issue 13 (kernel heap, space banks) adds its hooks here. */
    void (*stats)(void *ctx, const capmem_stats_t *st);
} capmem__dump_sink_t;

/*
 * The sinks. Each makes its state in @p ctx_buf (at most
 * CAPMEM__DUMP_CTX_MAX bytes) writing to @p out, and returns its hooks.
 */
#define CAPMEM__DUMP_CTX_MAX 2048u
const capmem__dump_sink_t *capmem__dump_text(FILE *out, void *ctx_buf);
const capmem__dump_sink_t *capmem__dump_json(FILE *out, void *ctx_buf);
const capmem__dump_sink_t *capmem__dump_dot(FILE *out, void *ctx_buf);
const capmem__dump_sink_t *capmem__dump_svg(FILE *out, void *ctx_buf);

/* Shared by the formats: "64 KiB", "1.5 MiB", or bytes below 1 KiB, into @p buf. */
const char *capmem__dump_bytes(uint64_t v, char *buf, size_t len);
/* "rwg" style rights into a 4-byte buffer. */
const char *capmem__dump_rights(unsigned rights, char buf[4]);
/* A colour for an account (by its handle): one of a palette readable on a projector. */
const char *capmem__dump_account_colour(capmem_cap_t account);
/* The colour of a physical kind that has no account. */
const char *capmem__dump_kind_colour(capmem__phys_kind_t kind);

#endif
