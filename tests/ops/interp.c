/* SPDX-License-Identifier: MIT */
/*
 * The operation interpreter and its reference model (see interp.h).
 *
 * The world: an arena of 3 MiB + 64 KiB at phys 0x100000, so the boot
 * untypeds are a 1 MiB piece (the untyped world: retype, mint, delete,
 * revoke), a 2 MiB piece that becomes a RAM service (accounts, dataspaces,
 * aliases, region maps) and a 64 KiB piece whose placement policy is the
 * liar, a custom policy that sometimes answers garbage (see liar_t).
 *
 * The model keeps one entry per capability the test created. Quantities
 * that follow from the set of live objects (used, lent, records, capability
 * use) are derived from it on every comparison rather than updated in
 * place, so the model states the rules once:
 * - used(A) = bytes of live RAM dataspaces A allocated + lent(A);
 * - lent(A) = the union of pages covered by live first-class aliases whose
 *   RAM original is gone and whose lender is A;
 * - records(A) = chunk headers + 3 session slots + live dataspace and alias
 *   records carved from A's donation;
 * - caps_used(A) = live capabilities charged to A.
 * Quota, donation and capability limits move only by explicit operations.
 *
 * Expected results follow each call's documented check order. Where the
 * model cannot know the outcome it accepts a documented set:
 * - OUT_OF_PHYS: predicted exactly from the largest free physical block
 *   (walked with capmem_ram_map), except after an expanding client's
 *   automatic upgrade, where the dataspace may then not fit: there both OK
 *   and OUT_OF_PHYS are accepted, and the upgrade (a visible action of its
 *   own, per ram.c) is applied to the model in both cases;
 * - retype in range and buddy untypeds: OK or NOT_ENOUGH_MEMORY once seL4's
 *   "free >> bits >= count" check passes (watermark is predicted exactly);
 *   the untyped's free bytes are then checked against its live children.
 * Every failure must leave all numbers equal to the (unchanged) model.
 *
 * Region maps are modelled too: the regions of every map (one record each
 * from the map's donation, plus the map's record and its managed dataspace's,
 * see CAPMEM_RM_SESSION_SLOTS), the donation as part of the client's side of
 * conservation, faults and the map's state. An access is simulated on the
 * model before the call (simulate()): where each byte goes, which faults the
 * handler sees, and what the handler does about each. The handler (on_fault)
 * draws nothing itself: it replays the model's script, so the library and
 * the model see the same attachments. Predictions are exact; the accesses'
 * bytes are checked against capmem_ds_read() of the backing
 * dataspace at the model's translated offset.
 *
 * Event callbacks call back in (on_event). Events are delivered after a
 * call has committed but before it returns, so each op describes its
 * effects in a pend_t before calling, and they are applied to the model
 * (settled) at the call's first event, with the result the model presumes,
 * or after the call returns when it raised none; finish() then checks the
 * returned code against the model and against the presumed one. At the
 * first event the callback also checks that a call the model expects to
 * fail raised only the events of completed steps (faults, upgrades). Then,
 * drawn from the same source (so a seed or a fuzzer input replays it), it
 * runs up to NEST_PER_EVENT nested ops per event and NEST_PER_STEP per
 * step, mostly aimed at the object the event names or the account that
 * pays for it (closed, freed, deleted, revoked; a stale handle when it is
 * gone already), each checked like any op and followed by the comparison
 * and capmem_check(). Events of nested ops arrive after the callback
 * returns; one arriving inside it is a failure.
 *
 * A second arena, built once with an object of every kind, never changes:
 * pick_handle() sometimes passes one of its live handles, which the model
 * treats like a forged one (INVALID_CAP at the handle's place in the check
 * order), and after such a step the second arena's numbers are compared
 * with a snapshot and its checker runs.
 *
 * The liar's untyped is retyped by op_liar_retype() only. Before each
 * retype the op tells the liar how to answer the request's first alloc:
 * honestly or with garbage, which must be refused with POLICY (or, for a
 * failure code no policy should return, the untyped's NOT_ENOUGH_MEMORY)
 * with nothing changed and no handle written. The model predicts on a copy
 * of the liar, with its own emulation of the wrapper's checks and the
 * untyped's placement, and after the call the real liar (blocks, and the
 * hook calls counted) must equal the copy: the library asked exactly what
 * the model says, and never freed a refused block. compare() checks that
 * every live object of the untyped is a block the liar handed out and that
 * its hooks saw their calls into the library refused as REENTRANT.
 */
#include "interp.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "capmem.h"

#define MAX_ENT 160
#define MAX_ACC 8
#define GRAVE 32
#define PAGE ((uint64_t)4096)

#define MAX_RM 6
#define MAX_REG 384
#define MAX_SEG 32
#define MAX_PLAN 128
#define MAX_LEN (3 * PAGE + 64)

/* K_LUT: the untyped whose placement policy is the liar (below). */
enum kind { K_NONE = 0, K_ACC, K_DS, K_DEP, K_FC, K_UT, K_FRAME, K_KOBJ, K_RM, K_MDS, K_LUT };

typedef struct ent {
    int alive;
    int kind;
    capmem_cap_t h;
    int obj;    /* entry of the original (itself for originals) */
    int parent; /* capability parent entry, -1 when outside the model */
    int payer;  /* account charged for the capability, -1 for nobody */
    unsigned rights;
    /* accounts (originals) */
    int ref;
    uint64_t quota, donation, caps_limit, step, chunks, upgrades;
    int expanding;
    /* dataspaces and aliases (originals) */
    uint64_t off, size;
    int writable;
    int meta;          /* account whose donation holds the record */
    int root;          /* RAM original at the root of an alias chain, -1 for none */
    uint64_t root_uid; /* entries are reused: root names that one only while uids match */
    uint64_t uid;
    int lender; /* first-class aliases: the account charged for its pages */
    /* untyped world (originals) */
    int policy;
    unsigned bits;
    uint64_t base; /* backing offset */
    uint64_t wm;   /* watermark model */
    uint64_t children;
    int ut; /* retyped objects: the untyped they came from */
    /* region maps (originals): size, donation, chunks, upgrades, step, expanding as above */
    int client;      /* the account that opened the map and pays for it */
    int has_handler; /* the interpreter's fault handler is installed */
    uint64_t faults; /* faults raised in the map */
    int f_faulted, f_unres, f_access;
    uint64_t f_addr; /* the map's state: its last fault */
    /* managed dataspaces (originals): the map they show */
    int owner;
} ent_t;

/* One attachment of the model: pages [base, base + pages) of map entry @c map show ds entry @c ds.
 */
typedef struct region {
    int alive;
    int map; /* original entry of the map */
    int ds;  /* original entry of the dataspace */
    uint64_t base, pages;
    uint64_t off; /* byte offset into the dataspace */
    int w, x;
} region_t;

/* A piece of a simulated access: @c n bytes of buffer at @c at went to ds entry @c ds at @c off. */
typedef struct seg {
    int ds;
    uint64_t off;
    size_t at, n;
} seg_t;

/* What the fault handler must see and do at its next call (precomputed by the model). */
enum { ACT_UNRESOLVED, ACT_RESOLVE, ACT_ATTACH };

typedef struct plan {
    capmem_cap_t rm;
    uint64_t addr;
    int access;
    int action;
    capmem_cap_t ds;
    capmem_rm_attach_attr_t attr;
    capmem_err_t code; /* expected result of the handler's attach */
    uint64_t at;       /* its expected address */
} plan_t;

/*
 * The liar: a custom placement policy (capmem/alloc.h vtable) of one
 * untyped of the world, LIAR_SIZE bytes, first fit over the blocks it
 * handed out. Before each retype, op_liar_retype() tells it how to answer
 * the first alloc of the request: honestly, or with garbage the library
 * must refuse with CAPMEM_E_POLICY (a block leaving the untyped, a
 * misaligned offset, an offset overlapping a live block, OK without an
 * offset) or a failure code no policy should return. It may also refuse
 * frees (deletions still succeed; the block stays its own). Each hook
 * checks that a call into the library from it is refused as REENTRANT.
 * The model predicts with a copy of the liar and an emulation of the
 * wrapper's checks, then compares the two liars.
 */
#define LIAR_BITS 16
/*
 * 0: the liar is made with capmem_alloc_create_custom_span() over the
 * untyped's own span. 1: with capmem_alloc_create_custom() (span [0, 2^64)),
 * as capmem_untyped_set_policy() accepts too; then only the untyped can
 * refuse answers past its end, which it does (POLICY).
 */
#define LIAR_UNBOUNDED 1
#define LIAR_SIZE (1ull << LIAR_BITS)
#define LIAR_MAX 96

enum { L_HONEST, L_SPAN, L_FAR, L_ALIGN, L_OVERLAP, L_UNSET, L_CODE, L_MODES };

typedef struct liar {
    uint64_t off[LIAR_MAX], size[LIAR_MAX];
    int leaked[LIAR_MAX]; /* a free it refused */
    unsigned n;
    int mode;        /* how to answer the next alloc */
    int refuse_free; /* refuse frees outside the liar's own retypes */
    int in_retype;   /* a retype of its untyped is in progress (its run frees are honest) */
    uint64_t allocs, alloc_ats, frees, resets, lies;
    /* The real one only: probe reentry through this arena and handle. */
    capmem_arena_t *probe;
    capmem_cap_t h;
    int bad;
    char why[200];
} liar_t;

/*
 * A library call in progress. Events are delivered before the call returns
 * (docs/threads.md), and the event callback may run nested operations, so
 * the model must know the call's effects by then: the op describes them
 * here, and settle() applies them (and checks what must be checked right
 * after the call) either at the first event, with the result the model
 * presumes, or after the call returns, with its real result. finish()
 * then checks the result code against the model and against the presumed
 * one.
 */
typedef struct pend pend_t;
typedef int (*settle_fn)(interp_t *in, pend_t *p, capmem_err_t got);

struct pend {
    pend_t *prev; /* the call this one is nested in (a callback's op), or NULL */
    settle_fn settle;
    capmem_err_t e, alt; /* the result the model expects */
    /* When e != alt: an out-parameter the library writes only on success, which decides. */
    const capmem_cap_t *out;
    unsigned fail_events; /* event kinds a failing call may still raise (completed steps) */
    int settled;
    capmem_err_t presumed; /* the result settle() was given */
    /* What settle() needs: model entries, numbers, the op's attributes and out-parameters. */
    int x, y, z;
    int upgrade;
    uint64_t n, pg, pages;
    const void *attr;
    capmem_cap_t *outs;
    const uint64_t *addr;
    int access;
};

#define MAX_OTHER 16
#define MAX_SNAP 64

struct interp {
    capmem_arena_t *arena;
    ent_t e[MAX_ENT];
    int root; /* entry of the root account */
    size_t base_caps;
    capmem_cap_t grave[GRAVE];
    unsigned ngrave;
    uint64_t next_uid;
    uint64_t ops;
    uint64_t refused;
    char why[1024];
    char op[1024];
    region_t rg[MAX_REG];
    seg_t seg[MAX_SEG];
    unsigned nseg;
    plan_t plan[MAX_PLAN];
    unsigned nplan;
    unsigned plan_pos;
    int plan_bad;
    char plan_why[256];
    uint8_t buf[MAX_LEN];
    uint8_t back[MAX_LEN];
    /* Calls in progress and the event callback's nested operations. */
    interp_src_t *src; /* the step's source, which the callback draws from; NULL between steps */
    pend_t *pend;      /* the innermost call in progress */
    int failed;        /* fail() ran in this step: why holds the first reason */
    int in_cb;         /* inside the event callback */
    int cb_kind;       /* the event it is called for */
    int at_event;      /* settling the step's call at this event */
    int outer_only;    /* no nested op ran since the step's call began: events are its own */
    unsigned nested;   /* nested ops run in this step */
    uint64_t events;   /* events delivered in all */
    uint64_t nested_total;
    uint64_t aimed, aimed_done; /* nested ops aimed at the event's object, and those that acted */
    /* The next pick_handle() returns this (a nested op aimed at an event's object). */
    int force;
    capmem_cap_t force_h;
    int force_ent;
    /* The second arena: live handles of it are mixed into handle arguments. */
    capmem_arena_t *other;
    capmem_cap_t other_h[MAX_OTHER];
    unsigned nother;
    uint64_t other_snap[MAX_SNAP];
    unsigned nsnap;
    liar_t liar; /* the policy of the untyped entry liar_ent */
    int liar_ent;
    int used_other; /* a handle of the second arena went to a call in this step */
    uint64_t other_uses;
};

/* ---- argument sources ---------------------------------------------------- */

void interp_src_seed(interp_src_t *src, uint64_t seed)
{
    memset(src, 0, sizeof(*src));
    src->rng = seed;
}

void interp_src_bytes(interp_src_t *src, const uint8_t *data, size_t len)
{
    memset(src, 0, sizeof(*src));
    src->data = data;
    src->len = len;
}

int interp_src_done(const interp_src_t *src)
{
    return src->data != NULL && src->pos >= src->len;
}

static uint64_t raw64(interp_src_t *s)
{
    if (s->data != NULL) {
        uint64_t v = 0;
        for (int i = 0; i < 8 && s->pos < s->len; i++) {
            v |= (uint64_t)s->data[s->pos++] << (8 * i);
        }
        return v;
    }
    uint64_t z = (s->rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* A number in [0, n): one byte in byte mode (two when n > 256), so inputs stay short. */
static uint64_t take(interp_src_t *s, uint64_t n)
{
    if (n <= 1) {
        return 0;
    }
    if (s->data != NULL) {
        uint64_t v = 0;
        int bytes = n > 256 ? 2 : 1;
        for (int i = 0; i < bytes && s->pos < s->len; i++) {
            v |= (uint64_t)s->data[s->pos++] << (8 * i);
        }
        return v % n;
    }
    return raw64(s) % n;
}

uint64_t interp_take(interp_src_t *src, uint64_t n)
{
    return take(src, n);
}

/* ---- helpers ---------------------------------------------------------------- */

static int fail(interp_t *in, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Record a mismatch. The first one of a step stands: a callback's failure is not overwritten. */
static int fail(interp_t *in, const char *fmt, ...)
{
    if (in->failed) {
        return 1;
    }
    in->failed = 1;
    int n = 0;
    if (in->in_cb) {
        n = snprintf(in->why, sizeof(in->why), "in the callback on event %s: ",
                     capmem_event_kind_name((capmem_event_kind_t)in->cb_kind));
    } else if (in->at_event) {
        n = snprintf(in->why, sizeof(in->why), "at event %s, before the call returned: ",
                     capmem_event_kind_name((capmem_event_kind_t)in->at_event));
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(in->why + n, sizeof(in->why) - (size_t)n, fmt, ap);
    va_end(ap);
    return 1;
}

static void opf(interp_t *in, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The op's text; a nested op's is appended to the step's, after the event that ran it. */
static void opf(interp_t *in, const char *fmt, ...)
{
    char text[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    if (!in->in_cb) {
        snprintf(in->op, sizeof(in->op), "%s", text);
        return;
    }
    size_t n = strlen(in->op);
    snprintf(in->op + n, sizeof(in->op) - n, " {on %s: %s}",
             capmem_event_kind_name((capmem_event_kind_t)in->cb_kind), text);
}

static int new_ent(interp_t *in)
{
    for (int i = 0; i < MAX_ENT; i++) {
        if (!in->e[i].alive) {
            memset(&in->e[i], 0, sizeof(in->e[i]));
            in->e[i].obj = i;
            in->e[i].parent = -1;
            in->e[i].payer = -1;
            in->e[i].ref = -1;
            in->e[i].root = -1;
            in->e[i].lender = -1;
            in->e[i].ut = -1;
            in->e[i].meta = -1;
            in->e[i].client = -1;
            in->e[i].owner = -1;
            in->e[i].uid = ++in->next_uid;
            return i;
        }
    }
    return -1;
}

static int count_alive(const interp_t *in)
{
    int n = 0;
    for (int i = 0; i < MAX_ENT; i++) {
        n += in->e[i].alive;
    }
    return n;
}

static int count_kind(const interp_t *in, int kind, int originals_only)
{
    int n = 0;
    for (int i = 0; i < MAX_ENT; i++) {
        const ent_t *x = &in->e[i];
        n += x->alive && x->kind == kind && (!originals_only || x->obj == i);
    }
    return n;
}

/* A random live entry whose kind is in @p mask (bit per kind), or -1. */
static int pick(interp_t *in, interp_src_t *s, unsigned mask)
{
    int idx[MAX_ENT];
    int n = 0;
    for (int i = 0; i < MAX_ENT; i++) {
        if (in->e[i].alive && (mask & (1u << in->e[i].kind))) {
            idx[n++] = i;
        }
    }
    return n == 0 ? -1 : idx[take(s, (uint64_t)n)];
}

#define M(k) (1u << (k))
#define M_DSALL (M(K_DS) | M(K_DEP) | M(K_FC))
#define M_UTW (M(K_UT) | M(K_FRAME) | M(K_KOBJ))
#define M_RMALL (M(K_RM) | M(K_MDS))
#define M_ALL (M(K_ACC) | M_DSALL | M_UTW | M_RMALL | M(K_LUT))

/*
 * A handle argument: usually a live entry of the wanted kinds, sometimes a
 * bad one (random bits, a stale handle, or a live handle of any kind).
 * *ent receives the entry or -1.
 */
static capmem_cap_t pick_handle(interp_t *in, interp_src_t *s, unsigned mask, int *ent)
{
    if (in->force) {
        in->force = 0;
        *ent = in->force_ent;
        return in->force_h;
    }
    uint64_t r = take(s, 16);
    *ent = -1;
    if (r == 3 && in->nother > 0) {
        /* A live handle of the second arena: refused as INVALID_CAP, like a forged one. */
        in->used_other = 1;
        in->other_uses++;
        return in->other_h[take(s, in->nother)];
    }
    if (r == 0) {
        capmem_cap_t h = raw64(s);
        for (int i = 0; i < MAX_ENT; i++) {
            if (in->e[i].alive && in->e[i].h == h) {
                *ent = i;
            }
        }
        return h;
    }
    if (r == 1 && in->ngrave > 0) {
        return in->grave[take(s, in->ngrave < GRAVE ? in->ngrave : GRAVE)];
    }
    int i = pick(in, s, r == 2 ? M_ALL : mask);
    if (i < 0) {
        return CAPMEM_CAP_NULL;
    }
    *ent = i;
    return in->e[i].h;
}

/* The model's lookup: the error the library must report for this handle. */
static capmem_err_t lookup(const interp_t *in, int ent, int kind, unsigned rights)
{
    if (ent < 0 || !in->e[ent].alive) {
        return CAPMEM_E_INVALID_CAP;
    }
    const ent_t *x = &in->e[ent];
    int k = x->kind;
    /* Frames, kernel objects and untypeds have their own handle types; all aliases are ds. */
    int same = kind == K_NONE || k == kind ||
               (kind == K_DS && (k == K_DS || k == K_DEP || k == K_FC || k == K_MDS)) ||
               (kind == K_UT && k == K_LUT);
    if (!same) {
        return CAPMEM_E_WRONG_TYPE;
    }
    if ((x->rights & rights) != rights) {
        return CAPMEM_E_DENIED;
    }
    return CAPMEM_OK;
}

static int is_desc(const interp_t *in, int i, int anc)
{
    for (int p = in->e[i].parent; p >= 0; p = in->e[p].parent) {
        if (p == anc) {
            return 1;
        }
    }
    return 0;
}

static int has_children(const interp_t *in, int x)
{
    for (int i = 0; i < MAX_ENT; i++) {
        if (in->e[i].alive && in->e[i].parent == x) {
            return 1;
        }
    }
    return 0;
}

static int acc_depth(const interp_t *in, int a)
{
    int d = 0;
    for (int r = in->e[a].ref; r >= 0; r = in->e[r].ref) {
        d++;
    }
    return d;
}

/* ---- derived numbers ----------------------------------------------------------- */

typedef struct run {
    uint64_t off, end;
} run_t;

static int cmp_run(const void *x, const void *y)
{
    const run_t *a = x;
    const run_t *b = y;
    return (a->off > b->off) - (a->off < b->off);
}

static int root_alive(const interp_t *in, const ent_t *x)
{
    return x->root >= 0 && in->e[x->root].alive && in->e[x->root].uid == x->root_uid;
}

static int fc_is_lent(const interp_t *in, const ent_t *x)
{
    return !root_alive(in, x);
}

static uint64_t lent_of(const interp_t *in, int a)
{
    run_t runs[MAX_ENT];
    size_t k = 0;
    for (int i = 0; i < MAX_ENT; i++) {
        const ent_t *x = &in->e[i];
        if (x->alive && x->kind == K_FC && x->obj == i && x->lender == a && fc_is_lent(in, x)) {
            runs[k++] = (run_t){x->off, x->off + x->size};
        }
    }
    qsort(runs, k, sizeof(runs[0]), cmp_run);
    uint64_t total = 0;
    for (size_t i = 0; i < k;) {
        uint64_t s = runs[i].off;
        uint64_t e = runs[i].end;
        for (i++; i < k && runs[i].off < e; i++) {
            e = runs[i].end > e ? runs[i].end : e;
        }
        total += e - s;
    }
    return total;
}

static uint64_t used_of(const interp_t *in, int a)
{
    uint64_t u = lent_of(in, a);
    for (int i = 0; i < MAX_ENT; i++) {
        const ent_t *x = &in->e[i];
        if (x->alive && x->kind == K_DS && x->obj == i && x->meta == a) {
            u += x->size;
        }
    }
    return u;
}

static uint64_t avail_of(const interp_t *in, int a)
{
    return in->e[a].quota - used_of(in, a);
}

static uint64_t records_of(const interp_t *in, int a)
{
    uint64_t n = in->e[a].chunks + CAPMEM_RAM_SESSION_SLOTS;
    for (int i = 0; i < MAX_ENT; i++) {
        const ent_t *x = &in->e[i];
        n += x->alive && x->obj == i && (x->kind == K_DS || x->kind == K_DEP || x->kind == K_FC) &&
             x->meta == a;
    }
    return n;
}

static uint64_t caps_used_of(const interp_t *in, int a)
{
    uint64_t n = 0;
    for (int i = 0; i < MAX_ENT; i++) {
        n += in->e[i].alive && in->e[i].payer == a;
    }
    return n;
}

static int sessions_of(const interp_t *in, int a)
{
    int n = 0;
    for (int i = 0; i < MAX_ENT; i++) {
        n += in->e[i].alive && in->e[i].kind == K_ACC && in->e[i].obj == i && in->e[i].ref == a;
        /* A region map is a session of its client too. */
        n += in->e[i].alive && in->e[i].kind == K_RM && in->e[i].obj == i && in->e[i].client == a;
    }
    return n;
}

typedef struct largest_ctx {
    uint64_t run, best;
} largest_ctx_t;

static int largest_visit(uint64_t phys, uint64_t size, bool used, void *ctx)
{
    largest_ctx_t *c = ctx;
    (void)phys;
    if (used) {
        c->run = 0;
    } else {
        c->run += size;
        c->best = c->run > c->best ? c->run : c->best;
    }
    return 0;
}

/* The largest free physical block of the RAM service. */
static uint64_t largest_free(interp_t *in)
{
    largest_ctx_t c = {0, 0};
    if (capmem_ram_map(in->arena, in->e[in->root].h, largest_visit, &c) != CAPMEM_OK) {
        return 0;
    }
    return c.best;
}

/* ---- region-map model ---------------------------------------------------------- */

static uint64_t regions_of(const interp_t *in, int m)
{
    uint64_t n = 0;
    for (int r = 0; r < MAX_REG; r++) {
        n += in->rg[r].alive && in->rg[r].map == m;
    }
    return n;
}

static int regions_total(const interp_t *in)
{
    int n = 0;
    for (int r = 0; r < MAX_REG; r++) {
        n += in->rg[r].alive;
    }
    return n;
}

/* The managed dataspace of map @p m (its original entry), or -1 before capmem_rm_dataspace(). */
static int managed_of(const interp_t *in, int m)
{
    for (int i = 0; i < MAX_ENT; i++) {
        const ent_t *x = &in->e[i];
        if (x->alive && x->kind == K_MDS && x->obj == i && x->owner == m) {
            return i;
        }
    }
    return -1;
}

/* Records of a map's donation: chunk headers, its record, its regions, its managed dataspace. */
static uint64_t rm_records(const interp_t *in, int m)
{
    return in->e[m].chunks + CAPMEM_RM_SESSION_SLOTS + regions_of(in, m) +
           (managed_of(in, m) >= 0 ? 1 : 0);
}

/* The region of map @p m that holds page @p pg, or -1. */
static int region_at(const interp_t *in, int m, uint64_t pg)
{
    for (int r = 0; r < MAX_REG; r++) {
        const region_t *g = &in->rg[r];
        if (g->alive && g->map == m && pg >= g->base && pg < g->base + g->pages) {
            return r;
        }
    }
    return -1;
}

static int overlaps(const interp_t *in, int m, uint64_t b, uint64_t e)
{
    for (int r = 0; r < MAX_REG; r++) {
        const region_t *g = &in->rg[r];
        if (g->alive && g->map == m && b < g->base + g->pages && g->base < e) {
            return 1;
        }
    }
    return 0;
}

/* "Anywhere": the lowest first page of a free run of @p need pages, as the library promises. */
static int find_free(const interp_t *in, int m, uint64_t need, uint64_t *at)
{
    run_t runs[MAX_REG];
    size_t k = 0;
    for (int r = 0; r < MAX_REG; r++) {
        const region_t *g = &in->rg[r];
        if (g->alive && g->map == m) {
            runs[k++] = (run_t){g->base, g->base + g->pages};
        }
    }
    qsort(runs, k, sizeof(runs[0]), cmp_run);
    uint64_t pos = 0;
    for (size_t i = 0; i < k; i++) {
        if (runs[i].off - pos >= need) {
            *at = pos;
            return 1;
        }
        pos = runs[i].end;
    }
    if (in->e[m].size / PAGE - pos >= need) {
        *at = pos;
        return 1;
    }
    return 0;
}

/*
 * Would attaching the managed dataspace of @p inner into @p outer make a
 * cycle? When inner is outer or contains it: walk up from outer through the
 * maps its managed dataspace is attached into.
 */
static int contains_up(const interp_t *in, int m, int target, char *seen)
{
    if (m == target) {
        return 1;
    }
    if (seen[m]) {
        return 0;
    }
    seen[m] = 1;
    int md = managed_of(in, m);
    if (md < 0) {
        return 0;
    }
    for (int r = 0; r < MAX_REG; r++) {
        const region_t *g = &in->rg[r];
        if (g->alive && g->ds == md && contains_up(in, g->map, target, seen)) {
            return 1;
        }
    }
    return 0;
}

static int would_cycle(const interp_t *in, int outer, int inner)
{
    char seen[MAX_ENT] = {0};
    return contains_up(in, outer, inner, seen);
}

/* ---- destruction with the library's closure rules ---------------------------- */

static void bury(interp_t *in, capmem_cap_t h)
{
    in->grave[in->ngrave % GRAVE] = h;
    in->ngrave++;
}

/*
 * Destroy @p n entries and everything that goes with them: capability
 * subtrees, and the dependent aliases a dying account paid for. Then the
 * accounts settle, deepest first: lent aliases pass to the reference
 * account, quota and donation and capability quota return to it.
 */
static void kill(interp_t *in, const int *start, int n)
{
    char dying[MAX_ENT] = {0};
    for (int i = 0; i < n; i++) {
        dying[start[i]] = 1;
    }
    for (int changed = 1; changed;) {
        changed = 0;
        for (int i = 0; i < MAX_ENT; i++) {
            const ent_t *x = &in->e[i];
            if (!x->alive || dying[i]) {
                continue;
            }
            int go = x->parent >= 0 && dying[x->parent];
            /* A copy dies with its object's original. */
            go = go || (x->obj != i && dying[x->obj]);
            /* Dependent aliases paid by a dying account. */
            go = go || (x->kind == K_DEP && x->obj == i && x->meta >= 0 && dying[x->meta]);
            if (go) {
                dying[i] = 1;
                changed = 1;
            }
        }
    }
    /* A dying map returns its donation to its client, before the client itself settles. */
    for (int i = 0; i < MAX_ENT; i++) {
        const ent_t *x = &in->e[i];
        if (dying[i] && x->kind == K_RM && x->obj == i) {
            in->e[x->client].quota += x->donation;
        }
    }
    /* Regions of dying maps go; so do attachments of dying dataspaces, in every map. */
    for (int r = 0; r < MAX_REG; r++) {
        region_t *g = &in->rg[r];
        if (g->alive && (dying[g->map] || dying[g->ds])) {
            g->alive = 0;
        }
    }
    /* Accounts settle deepest first, so lent charge climbs as far as it must. */
    int deepest = -1;
    for (int a = 0; a < MAX_ENT; a++) {
        const ent_t *x = &in->e[a];
        if (dying[a] && x->kind == K_ACC && x->obj == a && acc_depth(in, a) > deepest) {
            deepest = acc_depth(in, a);
        }
    }
    for (int depth = deepest; depth >= 0; depth--) {
        for (int a = 0; a < MAX_ENT; a++) {
            ent_t *x = &in->e[a];
            if (!dying[a] || x->kind != K_ACC || x->obj != a || acc_depth(in, a) != depth) {
                continue;
            }
            for (int i = 0; i < MAX_ENT; i++) {
                ent_t *f = &in->e[i];
                /*
                 * Dependent aliases carry their base's lender too: a first-class
                 * alias made from one is lent by whoever lends the base now.
                 */
                if (f->alive && !dying[i] && (f->kind == K_FC || f->kind == K_DEP) && f->obj == i &&
                    f->lender == a) {
                    f->lender = x->ref;
                }
            }
            if (x->ref >= 0) {
                ent_t *r = &in->e[x->ref];
                r->quota += x->quota + x->donation;
                r->caps_limit += x->caps_limit;
            }
        }
    }
    for (int i = 0; i < MAX_ENT; i++) {
        if (dying[i]) {
            ent_t *x = &in->e[i];
            if (x->obj == i && x->ut >= 0 && in->e[x->ut].alive && !dying[x->ut]) {
                in->e[x->ut].children--;
            }
            x->alive = 0;
            bury(in, x->h);
        }
    }
}

/* ---- comparison ------------------------------------------------------------------ */

static int compare_liar(interp_t *in);

static int compare(interp_t *in)
{
    size_t caps = capmem_cap_count(in->arena);
    size_t want = in->base_caps + (size_t)count_alive(in);
    if (caps != want) {
        return fail(in, "capability count %zu, model %zu", caps, want);
    }
    /*
     * The derived numbers of every account and untyped in one pass (the same
     * rules as used_of, records_of, caps_used_of): this runs after every op.
     */
    uint64_t ds_bytes[MAX_ENT] = {0};
    uint64_t ds_recs[MAX_ENT] = {0};
    uint64_t caps_u[MAX_ENT] = {0};
    uint64_t held_by[MAX_ENT] = {0};
    for (int i = 0; i < MAX_ENT; i++) {
        const ent_t *x = &in->e[i];
        if (!x->alive) {
            continue;
        }
        if (x->payer >= 0) {
            caps_u[x->payer]++;
        }
        if (x->obj == i && x->meta >= 0 &&
            (x->kind == K_DS || x->kind == K_DEP || x->kind == K_FC)) {
            ds_recs[x->meta]++;
            ds_bytes[x->meta] += x->kind == K_DS ? x->size : 0;
        }
        if (x->obj == i && x->ut >= 0) {
            held_by[x->ut] += 1ull << x->bits;
        }
    }
    for (int a = 0; a < MAX_ENT; a++) {
        const ent_t *x = &in->e[a];
        if (!x->alive || x->kind != K_ACC || x->obj != a) {
            continue;
        }
        capmem_ram_info_t ri;
        if (capmem_ram_info(in->arena, x->h, &ri) != CAPMEM_OK) {
            return fail(in, "account %d: info failed: %s", a, capmem_last_error()->message);
        }
        uint64_t lent = lent_of(in, a);
        uint64_t used = ds_bytes[a] + lent;
        uint64_t recs = x->chunks + CAPMEM_RAM_SESSION_SLOTS + ds_recs[a];
        uint64_t cu = caps_u[a];
        if (ri.quota != x->quota || ri.used != used || ri.lent != lent ||
            ri.donation != x->donation || ri.records_used != recs ||
            ri.records_capacity != x->donation / CAPMEM_RAM_RECORD_SIZE ||
            ri.caps_limit != x->caps_limit || ri.caps_used != cu || ri.expanding != x->expanding ||
            ri.upgrades != x->upgrades) {
            return fail(in,
                        "account %d \"%s\": library quota %" PRIu64 " used %" PRIu64
                        " lent %" PRIu64 " donation %" PRIu64 " records %" PRIu64 "/%" PRIu64
                        " caps %" PRIu64 "/%" PRIu64 " expanding %d upgrades %" PRIu64
                        "; model quota %" PRIu64 " used %" PRIu64 " lent %" PRIu64
                        " donation %" PRIu64 " records %" PRIu64 " caps %" PRIu64 "/%" PRIu64
                        " expanding %d upgrades %" PRIu64,
                        a, ri.label, ri.quota, ri.used, ri.lent, ri.donation, ri.records_used,
                        ri.records_capacity, ri.caps_used, ri.caps_limit, ri.expanding, ri.upgrades,
                        x->quota, used, lent, x->donation, recs, cu, x->caps_limit, x->expanding,
                        x->upgrades);
        }
    }
    for (int u = 0; u < MAX_ENT; u++) {
        const ent_t *x = &in->e[u];
        if (!x->alive || x->kind != K_UT || x->obj != u) {
            continue;
        }
        capmem_untyped_info_t ui;
        if (capmem_untyped_info(in->arena, x->h, &ui) != CAPMEM_OK) {
            return fail(in, "untyped %d: info failed: %s", u, capmem_last_error()->message);
        }
        uint64_t size = 1ull << x->bits;
        uint64_t held = held_by[u];
        uint64_t want_free = x->policy == CAPMEM_UNTYPED_WATERMARK ? size - x->wm : size - held;
        if (x->children == 0 && !has_children(in, u)) {
            want_free = size; /* childless: a retype through this handle resets it first */
        }
        if (ui.children != x->children || ui.free_bytes != want_free) {
            return fail(in,
                        "untyped %d (%s, 2^%u): library children %" PRIu64 " free %" PRIu64
                        "; model children %" PRIu64 " free %" PRIu64,
                        u, ui.policy, x->bits, ui.children, ui.free_bytes, x->children, want_free);
        }
    }
    /* Regions and managed dataspaces per map, in one pass each: this runs after every op. */
    uint64_t nreg[MAX_ENT] = {0};
    uint64_t nmds[MAX_ENT] = {0};
    for (int r = 0; r < MAX_REG; r++) {
        nreg[in->rg[r].map] += in->rg[r].alive;
    }
    for (int i = 0; i < MAX_ENT; i++) {
        const ent_t *x = &in->e[i];
        if (x->alive && x->kind == K_MDS && x->obj == i) {
            nmds[x->owner]++;
        }
    }
    for (int m = 0; m < MAX_ENT; m++) {
        const ent_t *x = &in->e[m];
        if (!x->alive || x->kind != K_RM || x->obj != m) {
            continue;
        }
        capmem_rm_info_t mi;
        capmem_rm_state_t st;
        if (capmem_rm_info(in->arena, x->h, &mi) != CAPMEM_OK ||
            capmem_rm_state(in->arena, x->h, &st) != CAPMEM_OK) {
            return fail(in, "map %d: info failed: %s", m, capmem_last_error()->message);
        }
        uint64_t regs = nreg[m];
        uint64_t recs = x->chunks + CAPMEM_RM_SESSION_SLOTS + regs + nmds[m];
        if (mi.client != in->e[x->client].h || mi.size != x->size || mi.regions != regs ||
            mi.donation != x->donation || mi.records_used != recs ||
            mi.records_capacity != x->donation / CAPMEM_RAM_RECORD_SIZE ||
            mi.upgrades != x->chunks - 1 || mi.faults != x->faults ||
            mi.expanding != x->expanding || mi.has_handler != x->has_handler) {
            return fail(in,
                        "map %d: library size %" PRIu64 " regions %" PRIu64 " donation %" PRIu64
                        " records %" PRIu64 "/%" PRIu64 " upgrades %" PRIu64 " faults %" PRIu64
                        " expanding %d handler %d; model size %" PRIu64 " regions %" PRIu64
                        " donation %" PRIu64 " records %" PRIu64 " upgrades %" PRIu64
                        " faults %" PRIu64 " expanding %d handler %d",
                        m, mi.size, mi.regions, mi.donation, mi.records_used, mi.records_capacity,
                        mi.upgrades, mi.faults, mi.expanding, mi.has_handler, x->size, regs,
                        x->donation, recs, x->chunks - 1, x->faults, x->expanding, x->has_handler);
        }
        if (st.faulted != x->f_faulted || st.pending != 0 || st.faults != x->faults ||
            (x->f_faulted && (st.unresolved != x->f_unres || st.address != x->f_addr ||
                              (int)st.access != x->f_access))) {
            return fail(in,
                        "map %d state: library faulted %d unresolved %d address 0x%" PRIx64
                        " access %d; model faulted %d unresolved %d address 0x%" PRIx64
                        " access %d",
                        m, st.faulted, st.unresolved, st.address, (int)st.access, x->f_faulted,
                        x->f_unres, x->f_addr, x->f_access);
        }
    }
    if (compare_liar(in)) {
        return 1;
    }
    char why[512];
    if (capmem_check(in->arena, why, sizeof(why)) != CAPMEM_OK) {
        return fail(in, "capmem_check: %s", why);
    }
    return 0;
}

/* The result is one of the expected codes; record a refusal. */
static int expect(interp_t *in, capmem_err_t got, capmem_err_t want, capmem_err_t alt)
{
    if (got != CAPMEM_OK) {
        in->refused++;
    }
    if (got == want || got == alt) {
        return 0;
    }
    return fail(in, "returned %s (%s), model expected %s%s%s", capmem_err_name(got),
                got != CAPMEM_OK ? capmem_last_error()->message : "-", capmem_err_name(want),
                alt != want ? " or " : "", alt != want ? capmem_err_name(alt) : "");
}

/* A call begins: its effects are described in @p p (zeroed by the caller, then filled in). */
static void begin(interp_t *in, pend_t *p, settle_fn settle, capmem_err_t e, capmem_err_t alt)
{
    p->prev = in->pend;
    p->settle = settle;
    p->e = e;
    p->alt = alt;
    in->pend = p;
    if (!in->in_cb) {
        in->outer_only = 1;
    }
}

/* The result settle() is given at the first event, before the call has returned. */
static capmem_err_t presume(const pend_t *p)
{
    if (p->e == p->alt || p->out == NULL) {
        return p->e;
    }
    return *p->out != CAPMEM_CAP_NULL ? CAPMEM_OK : p->e != CAPMEM_OK ? p->e : p->alt;
}

static int settle_now(interp_t *in, pend_t *p, capmem_err_t got)
{
    p->settled = 1;
    p->presumed = got;
    return p->settle != NULL ? p->settle(in, p, got) : 0;
}

/* The call returned @p got: check it, and apply its effects unless a callback did already. */
static int finish(interp_t *in, pend_t *p, capmem_err_t got)
{
    in->pend = p->prev;
    if (in->failed) {
        return 1;
    }
    if (expect(in, got, p->e, p->alt)) {
        return 1;
    }
    if (p->settled) {
        if (got != p->presumed) {
            return fail(in,
                        "returned %s, but its events, delivered before it returned, were "
                        "consistent with %s",
                        capmem_err_name(got), capmem_err_name(p->presumed));
        }
        return 0;
    }
    return settle_now(in, p, got);
}

#define FIRST(e, cond, code)                                                                       \
    do {                                                                                           \
        if ((e) == CAPMEM_OK && (cond)) {                                                          \
            (e) = (code);                                                                          \
        }                                                                                          \
    } while (0)

static int step_ok(uint64_t bytes)
{
    return bytes != 0 && bytes % PAGE == 0 && bytes >= 2 * CAPMEM_RAM_RECORD_SIZE;
}

/* ---- operations ---------------------------------------------------------------------- */

static const uint64_t sizes[] = {0,         1,          PAGE,          PAGE + 1,
                                 2 * PAGE,  3 * PAGE,   8 * PAGE,      16 * PAGE,
                                 64 * PAGE, 200 * PAGE, UINT64_MAX - 5};

static uint64_t pick_size(interp_src_t *s)
{
    uint64_t r = take(s, 16);
    if (r < sizeof(sizes) / sizeof(sizes[0])) {
        return sizes[r];
    }
    return (take(s, 32) + 1) * PAGE - take(s, 2) * 100;
}

static uint64_t pick_donation(interp_src_t *s)
{
    static const uint64_t d[] = {
        CAPMEM_RAM_DEFAULT_DONATION, PAGE, 2 * PAGE, 8 * PAGE, 0, 100, 64 * PAGE + 64};
    return d[take(s, sizeof(d) / sizeof(d[0]))];
}

static int settle_open(interp_t *in, pend_t *p, capmem_err_t got)
{
    if (got != CAPMEM_OK) {
        return 0;
    }
    const capmem_ram_open_attr_t *at = p->attr;
    int po = p->x;
    int n = new_ent(in);
    ent_t *x = &in->e[n];
    x->alive = 1;
    x->kind = K_ACC;
    x->h = *p->outs;
    x->parent = po; /* a child of the parent's original, whichever handle was used */
    x->payer = po;
    x->rights = CAPMEM_RIGHTS_ALL;
    x->ref = po;
    x->quota = at->quota;
    x->donation = at->donation;
    x->caps_limit = at->caps;
    x->step = at->upgrade_step;
    x->chunks = 1;
    x->expanding = (at->flags & CAPMEM_RAM_EXPANDING) != 0;
    in->e[po].quota -= at->donation + at->quota;
    in->e[po].caps_limit -= at->caps;
    return 0;
}

static int op_open(interp_t *in, interp_src_t *s)
{
    int p;
    capmem_cap_t ph = pick_handle(in, s, M(K_ACC), &p);
    capmem_ram_open_attr_t at = CAPMEM_RAM_OPEN_ATTR_INIT;
    at.donation = pick_donation(s);
    at.quota = take(s, 4) == 0 ? pick_size(s) : take(s, 64) * PAGE;
    at.caps = take(s, 8) == 0 ? UINT64_MAX : take(s, 40);
    at.upgrade_step = take(s, 8) == 0 ? 100 : (take(s, 3) + 1) * PAGE;
    at.flags = take(s, 2) ? CAPMEM_RAM_EXPANDING : 0;
    at.label = "acc";
    opf(in, "open(parent=%d, donation=%" PRIu64 ", quota=%" PRIu64 ", caps=%" PRIu64 ")", p,
        at.donation, at.quota, at.caps);
    if (count_kind(in, K_ACC, 1) >= MAX_ACC || count_alive(in) >= MAX_ENT - 1) {
        return 0;
    }
    capmem_err_t e = CAPMEM_OK;
    uint64_t need = 0;
    FIRST(e, !step_ok(at.donation) || at.donation < PAGE, CAPMEM_E_INVALID_ARGS);
    FIRST(e, !step_ok(at.upgrade_step), CAPMEM_E_INVALID_ARGS);
    FIRST(e, __builtin_add_overflow(at.donation, at.quota, &need), CAPMEM_E_INVALID_ARGS);
    if (e == CAPMEM_OK) {
        e = lookup(in, p, K_ACC, CAPMEM_RIGHT_WRITE);
    }
    int po = p >= 0 ? in->e[p].obj : -1;
    FIRST(e, avail_of(in, po) < need, CAPMEM_E_OUT_OF_RAM);
    FIRST(e, at.caps == UINT64_MAX || in->e[po].caps_limit - caps_used_of(in, po) < at.caps + 1,
          CAPMEM_E_OUT_OF_CAPS);
    FIRST(e, largest_free(in) < at.donation, CAPMEM_E_OUT_OF_PHYS);
    capmem_cap_t out = CAPMEM_CAP_NULL;
    pend_t pc = {.x = po, .attr = &at, .outs = &out};
    begin(in, &pc, settle_open, e, e);
    return finish(in, &pc, capmem_ram_open(in->arena, ph, &at, &out));
}

/* Calls that destroy entry x (and what goes with it), or the entries below x for a revoke. */
static int settle_kill(interp_t *in, pend_t *p, capmem_err_t got)
{
    if (got == CAPMEM_OK) {
        kill(in, &p->x, 1);
    }
    return 0;
}

static int op_close(interp_t *in, interp_src_t *s)
{
    int a;
    capmem_cap_t h = pick_handle(in, s, M(K_ACC), &a);
    opf(in, "close(%d)", a);
    capmem_err_t e = lookup(in, a, K_ACC, CAPMEM_RIGHT_WRITE);
    FIRST(e, in->e[a].obj != a, CAPMEM_E_INVALID_ARGS);
    FIRST(e, a == in->root && sessions_of(in, a) != 0, CAPMEM_E_DELETE_FIRST);
    if (e == CAPMEM_OK && a == in->root) {
        return 0; /* closing the childless root ends the service: not part of the sequence */
    }
    pend_t p = {.x = a};
    begin(in, &p, settle_kill, e, e);
    return finish(in, &p, capmem_ram_close(in->arena, h));
}

static int settle_transfer(interp_t *in, pend_t *p, capmem_err_t got)
{
    if (got == CAPMEM_OK) {
        if (p->z) {
            in->e[p->x].caps_limit -= p->n;
            in->e[p->y].caps_limit += p->n;
        } else {
            in->e[p->x].quota -= p->n;
            in->e[p->y].quota += p->n;
        }
    }
    return 0;
}

static int op_transfer(interp_t *in, interp_src_t *s, int caps)
{
    int a;
    int b;
    capmem_cap_t ha = pick_handle(in, s, M(K_ACC), &a);
    capmem_cap_t hb = pick_handle(in, s, M(K_ACC), &b);
    /* Mostly between an account and its reference account. */
    if (take(s, 4) != 0 && a >= 0 && in->e[a].kind == K_ACC && in->e[in->e[a].obj].ref >= 0) {
        b = in->e[in->e[a].obj].ref;
        hb = in->e[b].h;
        if (take(s, 2)) {
            int t = a;
            a = b;
            b = t;
            capmem_cap_t th = ha;
            ha = hb;
            hb = th;
        }
    }
    uint64_t n = caps ? take(s, 40) : (take(s, 8) == 0 ? pick_size(s) : take(s, 32) * PAGE);
    opf(in, "transfer%s(%d -> %d, %" PRIu64 ")", caps ? "_caps" : "", a, b, n);
    capmem_err_t e = CAPMEM_OK;
    FIRST(e, n == 0, CAPMEM_E_INVALID_ARGS);
    if (e == CAPMEM_OK) {
        e = lookup(in, a, K_ACC, CAPMEM_RIGHT_WRITE);
    }
    if (e == CAPMEM_OK) {
        e = lookup(in, b, K_ACC, 0);
    }
    int ao = a >= 0 ? in->e[a].obj : -1;
    int bo = b >= 0 ? in->e[b].obj : -1;
    FIRST(e, ao == bo, CAPMEM_E_INVALID_ARGS);
    FIRST(e, in->e[ao].ref != bo && in->e[bo].ref != ao, CAPMEM_E_DENIED);
    if (caps) {
        FIRST(e, in->e[ao].caps_limit - caps_used_of(in, ao) < n, CAPMEM_E_OUT_OF_CAPS);
    } else {
        FIRST(e, avail_of(in, ao) < n, CAPMEM_E_OUT_OF_RAM);
    }
    pend_t p = {.x = ao, .y = bo, .z = caps, .n = n};
    begin(in, &p, settle_transfer, e, e);
    return finish(in, &p,
                  caps ? capmem_ram_transfer_caps(in->arena, ha, hb, n)
                       : capmem_ram_transfer(in->arena, ha, hb, n));
}

static void apply_upgrade(interp_t *in, int session, int payer, uint64_t bytes)
{
    in->e[payer].quota -= bytes;
    in->e[session].donation += bytes;
    in->e[session].chunks++;
    in->e[session].upgrades++;
}

static int settle_upgrade(interp_t *in, pend_t *p, capmem_err_t got)
{
    if (got == CAPMEM_OK) {
        apply_upgrade(in, p->x, p->y, p->n);
    }
    return 0;
}

static int op_upgrade(interp_t *in, interp_src_t *s)
{
    int se;
    int pa;
    /* A map is upgraded with capmem_rm_upgrade, an account with capmem_ram_upgrade. */
    const int as_map = take(s, 4) == 0;
    capmem_cap_t hs = pick_handle(in, s, as_map ? M(K_RM) : M(K_ACC), &se);
    capmem_cap_t hp = pick_handle(in, s, M(K_ACC), &pa);
    if (take(s, 2) && se >= 0 && in->e[se].kind == K_ACC) {
        pa = in->e[in->e[se].obj].ref >= 0 && take(s, 2) ? in->e[in->e[se].obj].ref : se;
        hp = in->e[pa].h;
    } else if (se >= 0 && in->e[se].kind == K_RM && take(s, 4) != 0) {
        pa = in->e[in->e[se].obj].client; /* a map is upgraded by its client */
        hp = in->e[pa].h;
    }
    uint64_t bytes = take(s, 8) == 0 ? pick_size(s) : (take(s, 4) + 1) * PAGE;
    opf(in, "%s_upgrade(session=%d, payer=%d, %" PRIu64 ")", as_map ? "rm" : "ram", se, pa, bytes);
    capmem_err_t e = CAPMEM_OK;
    FIRST(e, !step_ok(bytes), CAPMEM_E_INVALID_ARGS);
    if (e == CAPMEM_OK) {
        e = lookup(in, pa, K_ACC, CAPMEM_RIGHT_WRITE);
    }
    if (e == CAPMEM_OK) {
        e = lookup(in, se, as_map ? K_RM : K_ACC, 0);
    }
    int so = se >= 0 ? in->e[se].obj : -1;
    int po = pa >= 0 ? in->e[pa].obj : -1;
    if (e == CAPMEM_OK && in->e[so].kind == K_RM) {
        FIRST(e, in->e[so].client != po, CAPMEM_E_DENIED);
    }
    FIRST(e, in->e[so].kind == K_ACC && so != po && in->e[so].ref != po, CAPMEM_E_DENIED);
    FIRST(e, avail_of(in, po) < bytes, CAPMEM_E_OUT_OF_RAM);
    FIRST(e, largest_free(in) < bytes, CAPMEM_E_OUT_OF_PHYS);
    pend_t p = {.x = so, .y = po, .n = bytes};
    begin(in, &p, settle_upgrade, e, e);
    return finish(in, &p,
                  as_map ? capmem_rm_upgrade(in->arena, hs, hp, bytes)
                         : capmem_ram_upgrade(in->arena, hs, hp, bytes));
}

static int settle_expanding(interp_t *in, pend_t *p, capmem_err_t got)
{
    if (got == CAPMEM_OK) {
        in->e[p->x].expanding = p->z;
        if (p->n != 0) {
            in->e[p->x].step = p->n;
        }
    }
    return 0;
}

static int op_expanding(interp_t *in, interp_src_t *s)
{
    int a;
    capmem_cap_t h = pick_handle(in, s, M(K_ACC), &a);
    int on = (int)take(s, 2);
    uint64_t step = take(s, 8) == 0 ? 100 : take(s, 3) * PAGE;
    opf(in, "set_expanding(%d, %d, %" PRIu64 ")", a, on, step);
    capmem_err_t e = CAPMEM_OK;
    FIRST(e, step != 0 && !step_ok(step), CAPMEM_E_INVALID_ARGS);
    if (e == CAPMEM_OK) {
        e = lookup(in, a, K_ACC, CAPMEM_RIGHT_WRITE);
    }
    pend_t p = {.x = e == CAPMEM_OK ? in->e[a].obj : -1, .z = on, .n = step};
    begin(in, &p, settle_expanding, e, e);
    return finish(in, &p, capmem_ram_set_expanding(in->arena, h, on, step));
}

static int settle_alloc(interp_t *in, pend_t *p, capmem_err_t got)
{
    int ao = p->x;
    uint64_t bytes = p->n;
    if (p->upgrade) {
        /* The upgrade is a completed step, whatever happens to the dataspace. */
        apply_upgrade(in, ao, ao, in->e[ao].step);
    }
    if (got != CAPMEM_OK) {
        return 0;
    }
    capmem_cap_t out = *p->outs;
    capmem_ds_info_t di;
    if (capmem_ds_info(in->arena, out, &di) != CAPMEM_OK || di.size != bytes) {
        return fail(in, "new dataspace: info failed or size %" PRIu64 " != %" PRIu64, di.size,
                    bytes);
    }
    int n = new_ent(in);
    ent_t *x = &in->e[n];
    x->alive = 1;
    x->kind = K_DS;
    x->h = out;
    x->parent = ao;
    x->payer = ao;
    x->rights = CAPMEM_RIGHTS_ALL;
    x->off = di.offset;
    x->size = bytes;
    x->writable = 1;
    x->meta = ao;
    x->root = n;
    x->root_uid = x->uid;
    /* No overcommit, and the memory reads as zeros. */
    uint8_t b[8] = {1};
    if (capmem_ds_read(in->arena, out, bytes - sizeof(b), b, sizeof(b)) != CAPMEM_OK ||
        memcmp(b, "\0\0\0\0\0\0\0\0", sizeof(b)) != 0) {
        return fail(in, "new dataspace does not read as zeros");
    }
    return 0;
}

static int op_alloc(interp_t *in, interp_src_t *s)
{
    int a;
    capmem_cap_t h = pick_handle(in, s, M(K_ACC), &a);
    uint64_t size = pick_size(s);
    opf(in, "alloc(%d, %" PRIu64 ")", a, size);
    if (count_alive(in) >= MAX_ENT - 1) {
        return 0;
    }
    capmem_err_t e = CAPMEM_OK;
    uint64_t bytes = 0;
    FIRST(e, size == 0, CAPMEM_E_INVALID_ARGS);
    FIRST(e, size > UINT64_MAX - (PAGE - 1), CAPMEM_E_INVALID_ARGS);
    if (e == CAPMEM_OK) {
        bytes = (size + PAGE - 1) & ~(PAGE - 1);
        e = lookup(in, a, K_ACC, CAPMEM_RIGHT_WRITE);
    }
    int ao = a >= 0 ? in->e[a].obj : -1;
    ent_t *acc = ao >= 0 ? &in->e[ao] : NULL;
    FIRST(e, avail_of(in, ao) < bytes, CAPMEM_E_OUT_OF_RAM);
    FIRST(e, acc->caps_limit - caps_used_of(in, ao) < 1, CAPMEM_E_OUT_OF_CAPS);
    uint64_t largest = e == CAPMEM_OK ? largest_free(in) : 0;
    FIRST(e, largest < bytes, CAPMEM_E_OUT_OF_PHYS);
    int upgrade = 0;
    capmem_err_t alt = e;
    if (e == CAPMEM_OK && acc->donation / CAPMEM_RAM_RECORD_SIZE - records_of(in, ao) < 1) {
        if (!acc->expanding) {
            e = alt = CAPMEM_E_OUT_OF_METADATA;
        } else if (avail_of(in, ao) < bytes + acc->step) {
            e = alt = CAPMEM_E_OUT_OF_RAM;
        } else if (largest < acc->step) {
            e = alt = CAPMEM_E_OUT_OF_PHYS;
        } else {
            /* The upgrade happens; the dataspace may then no longer fit. */
            upgrade = 1;
            alt = largest >= bytes + acc->step ? CAPMEM_OK : CAPMEM_E_OUT_OF_PHYS;
        }
    }
    capmem_cap_t out = CAPMEM_CAP_NULL;
    pend_t p = {.x = ao, .n = bytes, .upgrade = upgrade, .outs = &out, .out = &out};
    p.fail_events = upgrade ? 1u << CAPMEM_EVENT_UPGRADE : 0;
    begin(in, &p, settle_alloc, e, alt);
    return finish(in, &p, capmem_ram_alloc(in->arena, h, size, &out));
}

static int op_free(interp_t *in, interp_src_t *s)
{
    int d;
    capmem_cap_t h = pick_handle(in, s, M_DSALL, &d);
    opf(in, "free(%d)", d);
    capmem_err_t e = lookup(in, d, K_DS, 0);
    FIRST(e, in->e[d].obj != d, CAPMEM_E_INVALID_ARGS);
    FIRST(e, in->e[d].kind == K_MDS, CAPMEM_E_WRONG_TYPE);
    pend_t p = {.x = d};
    begin(in, &p, settle_kill, e, e);
    return finish(in, &p, capmem_ds_free(in->arena, h));
}

static int settle_alias(interp_t *in, pend_t *p, capmem_err_t got)
{
    if (got != CAPMEM_OK) {
        return 0;
    }
    const capmem_alias_attr_t *at = p->attr;
    int so = p->x;
    int d = p->y;
    const ent_t *src = &in->e[p->z];
    if (p->upgrade) {
        apply_upgrade(in, so, so, in->e[so].step);
    }
    int n = new_ent(in);
    ent_t *x = &in->e[n];
    x->alive = 1;
    x->h = *p->outs;
    x->payer = so;
    x->rights = in->e[d].rights & (at->writable ? CAPMEM_RIGHTS_ALL : ~CAPMEM_RIGHT_WRITE);
    x->off = src->off + at->offset;
    x->size = p->n;
    x->writable = at->writable;
    x->meta = so;
    if (at->lifetime == CAPMEM_ALIAS_DEPENDENT) {
        x->kind = K_DEP;
        x->parent = d;
        /* It shows its base's pages: a RAM dataspace's, or a first-class alias's. */
        x->root = src->kind == K_DS ? p->z : src->root;
        x->root_uid = src->root_uid;
        x->lender = src->lender;
    } else {
        x->kind = K_FC;
        x->parent = so;
        x->root = src->root;
        x->root_uid = src->root_uid;
        x->lender = root_alive(in, src) ? in->e[src->root].meta : src->lender;
    }
    return 0;
}

static int op_alias(interp_t *in, interp_src_t *s)
{
    int se;
    int d;
    capmem_cap_t hs = pick_handle(in, s, M(K_ACC), &se);
    capmem_cap_t hd = pick_handle(in, s, M_DSALL, &d);
    capmem_alias_attr_t at = CAPMEM_ALIAS_ATTR_INIT;
    at.writable = (int)take(s, 2);
    at.lifetime = take(s, 2) ? CAPMEM_ALIAS_FIRST_CLASS : CAPMEM_ALIAS_DEPENDENT;
    if (take(s, 16) == 0) {
        at.lifetime = (capmem_alias_lifetime_t)7;
    }
    at.offset = take(s, 8) == 0 ? pick_size(s) : take(s, 4) * PAGE;
    at.size = take(s, 8) == 0 ? pick_size(s) : take(s, 3) * PAGE;
    opf(in,
        "alias(session=%d, ds=%d[kind %d root %d], w=%d, %s, off=%" PRIu64 ", size=%" PRIu64 ")",
        se, d, d >= 0 ? in->e[d].kind : -1, d >= 0 ? in->e[in->e[d].obj].root : -1, at.writable,
        at.lifetime == CAPMEM_ALIAS_FIRST_CLASS ? "first-class" : "dependent", at.offset, at.size);
    if (count_alive(in) >= MAX_ENT - 1) {
        return 0;
    }
    capmem_err_t e = CAPMEM_OK;
    FIRST(e, at.lifetime != CAPMEM_ALIAS_DEPENDENT && at.lifetime != CAPMEM_ALIAS_FIRST_CLASS,
          CAPMEM_E_INVALID_ARGS);
    if (e == CAPMEM_OK) {
        e = lookup(in, se, K_ACC, CAPMEM_RIGHT_WRITE);
    }
    if (e == CAPMEM_OK) {
        e = lookup(in, d, K_DS, CAPMEM_RIGHT_GRANT);
    }
    FIRST(e, in->e[d].kind == K_MDS, CAPMEM_E_WRONG_TYPE);
    int so = se >= 0 ? in->e[se].obj : -1;
    int dobj = d >= 0 ? in->e[d].obj : -1;
    const ent_t *src = dobj >= 0 ? &in->e[dobj] : NULL;
    uint64_t size = at.size;
    uint64_t end = 0;
    if (e == CAPMEM_OK && size == 0 && at.offset < src->size) {
        size = src->size - at.offset;
    }
    FIRST(e,
          size == 0 || at.offset % PAGE != 0 || size % PAGE != 0 ||
              __builtin_add_overflow(at.offset, size, &end) || end > src->size,
          CAPMEM_E_INVALID_ARGS);
    FIRST(e, at.writable && !((in->e[d].rights & CAPMEM_RIGHT_WRITE) && src->writable),
          CAPMEM_E_DENIED);
    FIRST(e, in->e[so].caps_limit - caps_used_of(in, so) < 1, CAPMEM_E_OUT_OF_CAPS);
    int upgrade = 0;
    if (e == CAPMEM_OK && in->e[so].donation / CAPMEM_RAM_RECORD_SIZE - records_of(in, so) < 1) {
        if (!in->e[so].expanding) {
            e = CAPMEM_E_OUT_OF_METADATA;
        } else if (avail_of(in, so) < in->e[so].step) {
            e = CAPMEM_E_OUT_OF_RAM;
        } else if (largest_free(in) < in->e[so].step) {
            e = CAPMEM_E_OUT_OF_PHYS;
        } else {
            upgrade = 1;
        }
    }
    capmem_cap_t out = CAPMEM_CAP_NULL;
    pend_t p = {.x = so, .y = d, .z = dobj, .n = size, .upgrade = upgrade, .attr = &at};
    p.outs = &out;
    begin(in, &p, settle_alias, e, e);
    return finish(in, &p, capmem_ds_alias(in->arena, hs, hd, &at, &out));
}

static capmem_err_t simulate(interp_t *in, interp_src_t *s, int top, uint64_t addr, size_t len,
                             int access);
static int access_call(interp_t *in, int access, capmem_err_t e, capmem_cap_t h, int kind,
                       uint64_t addr, size_t len);

static int op_rw(interp_t *in, interp_src_t *s)
{
    int d;
    capmem_cap_t h = pick_handle(in, s, take(s, 8) == 0 ? M(K_MDS) : M_DSALL, &d);
    int write = (int)take(s, 2);
    uint64_t off = take(s, 8) == 0 ? pick_size(s) : take(s, 8) * 1000;
    size_t len = (size_t)take(s, 64) + 1;
    opf(in, "%s(%d, off=%" PRIu64 ", len=%zu)", write ? "write" : "read", d, off, len);
    capmem_err_t e = lookup(in, d, K_DS, write ? CAPMEM_RIGHT_WRITE : CAPMEM_RIGHT_READ);
    const ent_t *o = d >= 0 ? &in->e[in->e[d].obj] : NULL;
    uint64_t end = 0;
    FIRST(e, write && !o->writable, CAPMEM_E_DENIED);
    FIRST(e, __builtin_add_overflow(off, (uint64_t)len, &end) || end > o->size,
          CAPMEM_E_INVALID_ARGS);
    if (o != NULL && o->kind == K_MDS) {
        /* A managed dataspace: the access goes through its map, faults and all. */
        in->nseg = 0;
        in->nplan = 0;
        in->plan_pos = 0;
        in->plan_bad = 0;
        if (e == CAPMEM_OK) {
            e = simulate(in, s, o->owner, off, len, write ? CAPMEM_RM_WRITE : CAPMEM_RM_READ);
        }
        for (size_t i = 0; i < len; i++) {
            in->buf[i] = (uint8_t)(in->ops * 5u + i * 11u + 3u);
        }
        return access_call(in, write ? CAPMEM_RM_WRITE : CAPMEM_RM_READ, e, h, write ? 4 : 3, off,
                           len);
    }
    uint8_t buf[64];
    uint8_t back[64];
    memset(buf, (int)(in->ops & 0xff) | 1, sizeof(buf));
    capmem_err_t got = write ? capmem_ds_write(in->arena, h, off, buf, len)
                             : capmem_ds_read(in->arena, h, off, buf, len);
    if (expect(in, got, e, e)) {
        return 1;
    }
    if (got == CAPMEM_OK && write && (in->e[d].rights & CAPMEM_RIGHT_READ)) {
        if (capmem_ds_read(in->arena, h, off, back, len) != CAPMEM_OK ||
            memcmp(buf, back, len) != 0) {
            return fail(in, "bytes written through a dataspace do not read back");
        }
    }
    return 0;
}

static int settle_mint(interp_t *in, pend_t *p, capmem_err_t got)
{
    if (got == CAPMEM_OK) {
        int n = new_ent(in);
        ent_t *c = &in->e[n];
        c->alive = 1;
        c->kind = in->e[p->x].kind;
        c->h = *p->outs;
        c->obj = in->e[p->x].obj;
        c->parent = p->x;
        c->payer = p->y;
        c->rights = (unsigned)p->n;
    }
    return 0;
}

static int op_mint(interp_t *in, interp_src_t *s)
{
    int x;
    capmem_cap_t h = pick_handle(in, s, M_ALL, &x);
    unsigned rights = (unsigned)take(s, 9);
    opf(in, "mint(%d, rights=0x%x)", x, rights);
    if (count_alive(in) >= MAX_ENT - 1) {
        return 0;
    }
    capmem_err_t e = CAPMEM_OK;
    FIRST(e, (rights & ~(unsigned)(CAPMEM_RIGHTS_ALL | CAPMEM_RIGHTS_TYPE)) != 0,
          CAPMEM_E_INVALID_ARGS);
    if (e == CAPMEM_OK) {
        e = lookup(in, x, K_NONE, CAPMEM_RIGHT_GRANT);
    }
    FIRST(e, (rights & ~in->e[x].rights) != 0, CAPMEM_E_DENIED);
    int payer = x >= 0 ? in->e[x].payer : -1;
    FIRST(e, payer >= 0 && in->e[payer].caps_limit - caps_used_of(in, payer) < 1,
          CAPMEM_E_OUT_OF_CAPS);
    capmem_cap_t out = CAPMEM_CAP_NULL;
    pend_t p = {.x = x, .y = payer, .n = rights, .outs = &out};
    begin(in, &p, settle_mint, e, e);
    return finish(in, &p, capmem_cap_mint(in->arena, h, rights, &out));
}

static int settle_revoke(interp_t *in, pend_t *p, capmem_err_t got)
{
    if (got == CAPMEM_OK) {
        int kids[MAX_ENT];
        int n = 0;
        for (int i = 0; i < MAX_ENT; i++) {
            if (in->e[i].alive && is_desc(in, i, p->x)) {
                kids[n++] = i;
            }
        }
        kill(in, kids, n);
    }
    return 0;
}

static int op_delete(interp_t *in, interp_src_t *s, int revoke)
{
    int x;
    capmem_cap_t h = pick_handle(in, s, M_ALL, &x);
    opf(in, "%s(%d)", revoke ? "revoke" : "delete", x);
    capmem_err_t e = lookup(in, x, K_NONE, 0);
    if (!revoke) {
        FIRST(e, has_children(in, x), CAPMEM_E_REVOKE_FIRST);
        if (e == CAPMEM_OK &&
            (x == in->root || ((in->e[x].kind == K_UT || in->e[x].kind == K_LUT) &&
                               in->e[x].ut < 0 && in->e[x].obj == x))) {
            return 0; /* deleting the root account or the world's untyped ends the sequence */
        }
    }
    pend_t p = {.x = x};
    begin(in, &p, revoke ? settle_revoke : settle_kill, e, e);
    return finish(in, &p,
                  revoke ? capmem_cap_revoke(in->arena, h) : capmem_cap_delete(in->arena, h));
}

static int settle_retype(interp_t *in, pend_t *p, capmem_err_t got)
{
    if (got != CAPMEM_OK) {
        return 0;
    }
    const capmem_retype_attr_t *at = p->attr;
    int u = p->y;
    int uo = p->x;
    ent_t *ut = &in->e[uo];
    if (ut->policy == CAPMEM_UNTYPED_WATERMARK) {
        ut->wm = p->n;
    } else if (p->upgrade) {
        ut->wm = 0; /* (a reset: p->upgrade says the untyped was childless) */
    }
    int t = at->type;
    for (uint32_t i = 0; i < at->count; i++) {
        int n = new_ent(in);
        ent_t *c = &in->e[n];
        c->alive = 1;
        c->kind = t == CAPMEM_OBJ_FRAME ? K_FRAME : t == CAPMEM_OBJ_KOBJ ? K_KOBJ : K_UT;
        c->h = p->outs[i];
        c->parent = u;
        c->rights = CAPMEM_RIGHTS_ALL;
        c->bits = at->size_bits;
        c->ut = uo;
        c->policy = at->child_policy == CAPMEM_UNTYPED_INHERIT ? ut->policy : (int)at->child_policy;
        ut->children++;
    }
    return 0;
}

static int op_retype(interp_t *in, interp_src_t *s)
{
    int u;
    capmem_cap_t h = pick_handle(in, s, M(K_UT), &u);
    if (u >= 0 && in->e[u].kind == K_LUT) {
        return 0; /* the liar's untyped is op_liar_retype's: its placement is the liar's */
    }
    capmem_retype_attr_t at = CAPMEM_RETYPE_ATTR_INIT;
    static const capmem_obj_type_t types[] = {CAPMEM_OBJ_FRAME, CAPMEM_OBJ_KOBJ, CAPMEM_OBJ_UNTYPED,
                                              CAPMEM_OBJ_DATASPACE};
    at.type = types[take(s, 8) == 0 ? 3 : take(s, 3)];
    at.size_bits = take(s, 16) == 0 ? (unsigned)take(s, 64) : 4 + (unsigned)take(s, 15);
    at.count = take(s, 16) == 0 ? (uint32_t)take(s, 400) : 1 + (uint32_t)take(s, 3);
    at.child_policy = (capmem_untyped_policy_t)take(s, 4);
    at.offset = CAPMEM_RETYPE_ANYWHERE;
    if (take(s, 4) == 0) {
        at.offset = take(s, 64) << (at.size_bits & 31);
    }
    opf(in, "retype(%d, type=%d, bits=%u, count=%u, offset=%" PRIx64 ", policy=%d)", u,
        (int)at.type, at.size_bits, at.count, at.offset, (int)at.child_policy);
    if (count_alive(in) + 4 >= MAX_ENT ||
        (at.count <= CAPMEM_RETYPE_MAX_COUNT && count_alive(in) + (int)at.count + 1 >= MAX_ENT)) {
        return 0;
    }
    capmem_err_t e = CAPMEM_OK;
    int t = at.type;
    FIRST(e, t != CAPMEM_OBJ_UNTYPED && t != CAPMEM_OBJ_FRAME && t != CAPMEM_OBJ_KOBJ,
          CAPMEM_E_INVALID_ARGS);
    FIRST(e, at.size_bits > CAPMEM_UNTYPED_MAX_BITS, CAPMEM_E_RANGE);
    FIRST(e, t == CAPMEM_OBJ_UNTYPED && at.size_bits < 4, CAPMEM_E_INVALID_ARGS);
    FIRST(e, t == CAPMEM_OBJ_FRAME && at.size_bits < 12, CAPMEM_E_RANGE);
    FIRST(e, t == CAPMEM_OBJ_KOBJ && at.size_bits < 4, CAPMEM_E_RANGE);
    FIRST(e, at.count < 1 || at.count > CAPMEM_RETYPE_MAX_COUNT, CAPMEM_E_RANGE);
    if (e == CAPMEM_OK) {
        e = lookup(in, u, K_UT, CAPMEM_RIGHT_WRITE);
    }
    int uo = u >= 0 ? in->e[u].obj : -1;
    ent_t *ut = uo >= 0 ? &in->e[uo] : NULL;
    uint64_t sz = 1ull << (at.size_bits & 63);
    int reset = e == CAPMEM_OK && ut->children == 0 && !has_children(in, u);
    capmem_untyped_info_t ui = {0};
    if (e == CAPMEM_OK && capmem_untyped_info(in->arena, h, &ui) != CAPMEM_OK) {
        return fail(in, "untyped info failed");
    }
    uint64_t free_now = reset ? (1ull << ut->bits) : ui.free_bytes;
    FIRST(e, (free_now >> at.size_bits) < at.count, CAPMEM_E_NOT_ENOUGH_MEMORY);
    int wm = e == CAPMEM_OK && ut->policy == CAPMEM_UNTYPED_WATERMARK;
    uint64_t end = 0;
    if (e == CAPMEM_OK && at.offset != CAPMEM_RETYPE_ANYWHERE) {
        FIRST(e, wm, CAPMEM_E_INVALID_ARGS);
        FIRST(e,
              at.offset % sz != 0 || __builtin_add_overflow(at.offset, at.count * sz, &end) ||
                  end > (1ull << ut->bits),
              CAPMEM_E_INVALID_ARGS);
    }
    capmem_err_t alt = e;
    uint64_t wm_new = 0;
    if (e == CAPMEM_OK) {
        if (wm) {
            uint64_t base = reset ? 0 : ut->wm;
            uint64_t aligned = (base + sz - 1) & ~(sz - 1);
            wm_new = aligned + at.count * sz;
            FIRST(e, wm_new > (1ull << ut->bits), CAPMEM_E_NOT_ENOUGH_MEMORY);
            alt = e;
        } else {
            alt = CAPMEM_E_NOT_ENOUGH_MEMORY;
        }
    }
    capmem_cap_t dest[CAPMEM_RETYPE_MAX_COUNT];
    dest[0] = CAPMEM_CAP_NULL;
    pend_t p = {.x = uo, .y = u, .n = wm_new, .upgrade = reset, .attr = &at, .outs = dest};
    p.out = dest;
    begin(in, &p, settle_retype, e, alt);
    return finish(in, &p, capmem_untyped_retype(in->arena, h, &at, dest, CAPMEM_RETYPE_MAX_COUNT));
}

static int op_frame_rw(interp_t *in, interp_src_t *s)
{
    int f;
    capmem_cap_t h = pick_handle(in, s, M(K_FRAME), &f);
    int write = (int)take(s, 2);
    uint64_t off = take(s, 8) == 0 ? pick_size(s) : take(s, 16) * 256;
    size_t len = (size_t)take(s, 64) + 1;
    opf(in, "frame_%s(%d, off=%" PRIu64 ", len=%zu)", write ? "write" : "read", f, off, len);
    /* Frames and kernel objects share one lookup: type, then rights, then "not a frame". */
    capmem_err_t e = lookup(in, f, K_NONE, 0);
    FIRST(e, in->e[f].kind != K_FRAME && in->e[f].kind != K_KOBJ, CAPMEM_E_WRONG_TYPE);
    FIRST(e, !(in->e[f].rights & (write ? CAPMEM_RIGHT_WRITE : CAPMEM_RIGHT_READ)),
          CAPMEM_E_DENIED);
    FIRST(e, in->e[f].kind != K_FRAME, CAPMEM_E_WRONG_TYPE);
    uint64_t end = 0;
    FIRST(e,
          __builtin_add_overflow(off, (uint64_t)len, &end) ||
              end > (1ull << in->e[in->e[f].obj].bits),
          CAPMEM_E_INVALID_ARGS);
    uint8_t buf[64];
    uint8_t back[64];
    memset(buf, 0x5a, sizeof(buf));
    capmem_err_t got = write ? capmem_frame_write(in->arena, h, off, buf, len)
                             : capmem_frame_read(in->arena, h, off, buf, len);
    if (expect(in, got, e, e)) {
        return 1;
    }
    if (got == CAPMEM_OK && write && (in->e[f].rights & CAPMEM_RIGHT_READ)) {
        if (capmem_frame_read(in->arena, h, off, back, len) != CAPMEM_OK ||
            memcmp(buf, back, len) != 0) {
            return fail(in, "bytes written to a frame do not read back");
        }
    }
    return 0;
}

/* ---- region maps ------------------------------------------------------------------- */

static uint64_t pick_map_size(interp_t *in, interp_src_t *s)
{
    (void)in;
    uint64_t r = take(s, 16);
    if (r == 0) {
        return pick_size(s);
    }
    if (r == 1) {
        return (CAPMEM_RM_MAX_PAGES + 1) * PAGE; /* one page too many */
    }
    if (r < 5) {
        return (64 + take(s, 1024)) * PAGE; /* room for more regions than a small donation pays */
    }
    return (1 + take(s, 64)) * PAGE;
}

static int settle_rm_create(interp_t *in, pend_t *p, capmem_err_t got)
{
    if (got != CAPMEM_OK) {
        return 0;
    }
    const capmem_rm_open_attr_t *at = p->attr;
    int co = p->x;
    int n = new_ent(in);
    ent_t *x = &in->e[n];
    x->alive = 1;
    x->kind = K_RM;
    x->h = *p->outs;
    x->parent = co;
    x->payer = co;
    x->client = co;
    x->rights = CAPMEM_RIGHTS_ALL;
    x->size = at->size;
    x->donation = at->donation;
    x->step = at->upgrade_step;
    x->chunks = 1;
    x->expanding = (at->flags & CAPMEM_RM_EXPANDING) != 0;
    in->e[co].quota -= at->donation;
    return 0;
}

static int op_rm_create(interp_t *in, interp_src_t *s)
{
    int c;
    capmem_cap_t hc = pick_handle(in, s, M(K_ACC), &c);
    static const uint64_t dons[] = {
        PAGE, 2 * PAGE, CAPMEM_RM_DEFAULT_DONATION, PAGE, PAGE, 0, PAGE + 64, 3 * PAGE, PAGE, 300};
    capmem_rm_open_attr_t at = CAPMEM_RM_OPEN_ATTR_INIT;
    at.size = pick_map_size(in, s);
    at.donation = dons[take(s, sizeof(dons) / sizeof(dons[0]))];
    at.upgrade_step = take(s, 8) == 0 ? 100 : (take(s, 3) + 1) * PAGE;
    at.flags = take(s, 2) ? CAPMEM_RM_EXPANDING : 0;
    if (take(s, 32) == 0) {
        at.flags |= 1u << (1 + take(s, 31));
    }
    at.label = "map";
    opf(in,
        "rm_create(client=%d, size=%" PRIu64 ", donation=%" PRIu64 ", step=%" PRIu64
        ", flags=0x%x)",
        c, at.size, at.donation, at.upgrade_step, at.flags);
    if (count_kind(in, K_RM, 1) >= MAX_RM || count_alive(in) >= MAX_ENT - 1) {
        return 0;
    }
    capmem_err_t e = CAPMEM_OK;
    FIRST(e, (at.flags & ~(uint32_t)CAPMEM_RM_EXPANDING) != 0, CAPMEM_E_INVALID_ARGS);
    FIRST(e, at.size == 0 || at.size % PAGE != 0 || at.size / PAGE > CAPMEM_RM_MAX_PAGES,
          CAPMEM_E_INVALID_ARGS);
    FIRST(e,
          at.donation % PAGE != 0 ||
              at.donation < CAPMEM_RAM_RECORD_SIZE * (2u + CAPMEM_RM_SESSION_SLOTS),
          CAPMEM_E_INVALID_ARGS);
    FIRST(e, !step_ok(at.upgrade_step), CAPMEM_E_INVALID_ARGS);
    if (e == CAPMEM_OK) {
        e = lookup(in, c, K_ACC, CAPMEM_RIGHT_WRITE);
    }
    int co = c >= 0 ? in->e[c].obj : -1;
    FIRST(e, avail_of(in, co) < at.donation, CAPMEM_E_OUT_OF_RAM);
    FIRST(e, in->e[co].caps_limit - caps_used_of(in, co) < 1, CAPMEM_E_OUT_OF_CAPS);
    FIRST(e, largest_free(in) < at.donation, CAPMEM_E_OUT_OF_PHYS);
    capmem_cap_t out = CAPMEM_CAP_NULL;
    pend_t p = {.x = co, .attr = &at, .outs = &out};
    begin(in, &p, settle_rm_create, e, e);
    return finish(in, &p, capmem_rm_open(in->arena, hc, &at, &out));
}

static int op_rm_close(interp_t *in, interp_src_t *s)
{
    int m;
    capmem_cap_t h = pick_handle(in, s, M(K_RM), &m);
    opf(in, "rm_close(%d)", m);
    capmem_err_t e = lookup(in, m, K_RM, CAPMEM_RIGHT_WRITE);
    FIRST(e, in->e[m].obj != m, CAPMEM_E_INVALID_ARGS);
    pend_t p = {.x = m};
    begin(in, &p, settle_kill, e, e);
    return finish(in, &p, capmem_rm_close(in->arena, h));
}

/*
 * The expected result of capmem_rm_attach(map entry m, ds entry d, *at), in
 * the library's check order (decode_attach in src/rm_attach.c). On OK, *pg and *pages say
 * where the region goes and *upgrade whether an expanding map upgrades first.
 */
static capmem_err_t predict_attach(interp_t *in, int m, int d, const capmem_rm_attach_attr_t *at,
                                   uint64_t *pg, uint64_t *pages, int *upgrade)
{
    *upgrade = 0;
    capmem_err_t e = lookup(in, m, K_RM, CAPMEM_RIGHT_WRITE);
    if (e == CAPMEM_OK) {
        e = lookup(in, d, K_DS, CAPMEM_RIGHT_READ);
    }
    if (e != CAPMEM_OK) {
        return e;
    }
    const ent_t *map = &in->e[in->e[m].obj];
    const ent_t *src = &in->e[in->e[d].obj];
    uint64_t size = at->size;
    uint64_t end = 0;
    FIRST(e,
          at->offset % PAGE != 0 || size % PAGE != 0 ||
              (at->at != CAPMEM_RM_ANYWHERE && at->at % PAGE != 0),
          CAPMEM_E_INVALID_ARGS);
    if (e == CAPMEM_OK && size == 0 && at->offset < src->size) {
        size = src->size - at->offset;
    }
    FIRST(e, size == 0 || __builtin_add_overflow(at->offset, size, &end) || end > src->size,
          CAPMEM_E_RANGE);
    FIRST(e, at->writable && !((in->e[d].rights & CAPMEM_RIGHT_WRITE) && src->writable),
          CAPMEM_E_DENIED);
    FIRST(e,
          at->at != CAPMEM_RM_ANYWHERE &&
              (__builtin_add_overflow(at->at, size, &end) || end > map->size),
          CAPMEM_E_RANGE);
    FIRST(e, at->at == CAPMEM_RM_ANYWHERE && size > map->size, CAPMEM_E_RANGE);
    FIRST(e, src->kind == K_MDS && would_cycle(in, in->e[m].obj, src->owner), CAPMEM_E_CYCLE);
    *pages = size / PAGE;
    if (e == CAPMEM_OK && at->at != CAPMEM_RM_ANYWHERE) {
        *pg = at->at / PAGE;
        FIRST(e, overlaps(in, in->e[m].obj, *pg, *pg + *pages), CAPMEM_E_REGION_CONFLICT);
    } else if (e == CAPMEM_OK) {
        FIRST(e, !find_free(in, in->e[m].obj, *pages, pg), CAPMEM_E_NOT_ENOUGH_MEMORY);
    }
    if (e == CAPMEM_OK &&
        map->donation / CAPMEM_RAM_RECORD_SIZE - rm_records(in, in->e[m].obj) < 1) {
        if (!map->expanding) {
            e = CAPMEM_E_OUT_OF_METADATA;
        } else if (avail_of(in, map->client) < map->step) {
            e = CAPMEM_E_OUT_OF_RAM;
        } else if (largest_free(in) < map->step) {
            e = CAPMEM_E_OUT_OF_PHYS;
        } else {
            *upgrade = 1;
        }
    }
    return e;
}

static void apply_attach(interp_t *in, int m, int d, const capmem_rm_attach_attr_t *at, uint64_t pg,
                         uint64_t pages, int upgrade)
{
    int mo = in->e[m].obj;
    if (upgrade) {
        apply_upgrade(in, mo, in->e[mo].client, in->e[mo].step);
    }
    for (int r = 0; r < MAX_REG; r++) {
        region_t *g = &in->rg[r];
        if (!g->alive) {
            *g = (region_t){1,     mo,         in->e[d].obj,      pg,
                            pages, at->offset, at->writable != 0, at->executable != 0};
            return;
        }
    }
}

/* Every region the model holds for map @p m is in the library, with its attributes. */
static int check_regions(interp_t *in, int m)
{
    for (int r = 0; r < MAX_REG; r++) {
        const region_t *g = &in->rg[r];
        if (!g->alive || g->map != m) {
            continue;
        }
        capmem_rm_region_t lr;
        uint64_t addr = g->base * PAGE + (g->pages * PAGE) / 2;
        if (capmem_rm_lookup(in->arena, in->e[m].h, addr, &lr) != CAPMEM_OK ||
            lr.address != g->base * PAGE || lr.size != g->pages * PAGE || lr.offset != g->off ||
            lr.writable != g->w || lr.executable != g->x ||
            lr.managed != (in->e[g->ds].kind == K_MDS)) {
            return fail(in,
                        "map %d: the model's region 0x%" PRIx64 "+0x%" PRIx64
                        " (ds %d off 0x%" PRIx64 " w %d x %d) is not in the library as such",
                        m, g->base * PAGE, g->pages * PAGE, g->ds, g->off, g->w, g->x);
        }
    }
    return 0;
}

static int settle_attach(interp_t *in, pend_t *p, capmem_err_t got)
{
    if (got != CAPMEM_OK) {
        return 0;
    }
    if (*p->addr != p->pg * PAGE) {
        return fail(in, "attached at 0x%" PRIx64 ", model 0x%" PRIx64, *p->addr, p->pg * PAGE);
    }
    apply_attach(in, p->x, p->y, p->attr, p->pg, p->pages, p->upgrade);
    return check_regions(in, in->e[p->x].obj);
}

/* Entry @p i if it still holds the object it held when its uid was @p uid, else -1. */
static int still(const interp_t *in, int i, uint64_t uid)
{
    return i >= 0 && in->e[i].alive && in->e[i].uid == uid ? i : -1;
}

static int op_rm_attach(interp_t *in, interp_src_t *s)
{
    int m;
    int d;
    capmem_cap_t hm = pick_handle(in, s, M(K_RM), &m);
    capmem_cap_t hd = pick_handle(in, s, take(s, 4) == 0 ? M(K_MDS) : M_DSALL, &d);
    uint64_t mpages = m >= 0 && in->e[m].kind == K_RM ? in->e[in->e[m].obj].size / PAGE : 16;
    capmem_rm_attach_attr_t at = CAPMEM_RM_ATTACH_ATTR_INIT;
    at.offset = take(s, 8) == 0 ? pick_size(s) : take(s, 4) * PAGE;
    at.size = take(s, 8) == 0 ? pick_size(s) : take(s, 4) * PAGE;
    uint64_t r = take(s, 8);
    at.at = r < 4 ? CAPMEM_RM_ANYWHERE : r < 7 ? take(s, mpages + 2) * PAGE : pick_size(s);
    at.writable = (int)take(s, 2);
    at.executable = take(s, 4) == 0;
    /* Sometimes a burst of one-page attachments, to fill a map or its donation. */
    unsigned times = 1;
    if (take(s, 6) == 0) {
        times = 1 + (unsigned)take(s, 96);
        at.size = PAGE;
        at.at = CAPMEM_RM_ANYWHERE;
    }
    opf(in,
        "rm_attach(map=%d, ds=%d[kind %d], off=0x%" PRIx64 ", size=0x%" PRIx64 ", at=0x%" PRIx64
        ", w=%d, x=%d) x%u",
        m, d, d >= 0 ? in->e[d].kind : -1, at.offset, at.size, at.at, at.writable, at.executable,
        times);
    const uint64_t muid = m >= 0 ? in->e[m].uid : 0;
    const uint64_t duid = d >= 0 ? in->e[d].uid : 0;
    for (unsigned t = 0; t < times; t++) {
        if (regions_total(in) >= MAX_REG) {
            return 0;
        }
        /* A callback may have closed the map or freed the dataspace since the last attach. */
        m = still(in, m, muid);
        d = still(in, d, duid);
        uint64_t pg = 0;
        uint64_t pages = 0;
        int upgrade = 0;
        capmem_err_t e = predict_attach(in, m, d, &at, &pg, &pages, &upgrade);
        uint64_t out = 0;
        pend_t p = {.x = m, .y = d, .pg = pg, .pages = pages, .upgrade = upgrade, .attr = &at};
        p.addr = &out;
        begin(in, &p, settle_attach, e, e);
        capmem_err_t got = capmem_rm_attach(in->arena, hm, hd, &at, &out);
        if (finish(in, &p, got)) {
            return 1;
        }
        if (got != CAPMEM_OK) {
            break;
        }
    }
    return 0;
}

static int settle_detach(interp_t *in, pend_t *p, capmem_err_t got)
{
    if (got != CAPMEM_OK) {
        return 0;
    }
    in->rg[p->y].alive = 0;
    return check_regions(in, p->x);
}

static int op_rm_detach(interp_t *in, interp_src_t *s)
{
    int m;
    capmem_cap_t h = pick_handle(in, s, M(K_RM), &m);
    int mo = m >= 0 ? in->e[m].obj : -1;
    uint64_t addr = take(s, 1u << 20) * 16;
    if (take(s, 4) != 0 && mo >= 0) {
        /* Mostly inside a region of that map. */
        int idx[MAX_REG];
        int n = 0;
        for (int r = 0; r < MAX_REG; r++) {
            if (in->rg[r].alive && in->rg[r].map == mo) {
                idx[n++] = r;
            }
        }
        if (n > 0) {
            const region_t *g = &in->rg[idx[take(s, (uint64_t)n)]];
            addr = g->base * PAGE + take(s, g->pages * PAGE);
        }
    }
    opf(in, "rm_detach(%d, 0x%" PRIx64 ")", m, addr);
    capmem_err_t e = lookup(in, m, K_RM, CAPMEM_RIGHT_WRITE);
    int r = e == CAPMEM_OK && addr < in->e[mo].size ? region_at(in, mo, addr / PAGE) : -1;
    FIRST(e, r < 0, CAPMEM_E_NOT_FOUND);
    pend_t p = {.x = mo, .y = r};
    begin(in, &p, settle_detach, e, e);
    return finish(in, &p, capmem_rm_detach(in->arena, h, addr));
}

static int settle_rm_dataspace(interp_t *in, pend_t *p, capmem_err_t got)
{
    int mo = p->x;
    int have = p->y;
    if (got == CAPMEM_OK && have >= 0 && *p->outs != in->e[have].h) {
        return fail(in, "a second capmem_rm_dataspace returned another handle");
    }
    if (got == CAPMEM_OK && have < 0) {
        if (p->upgrade) {
            apply_upgrade(in, mo, in->e[mo].client, in->e[mo].step);
        }
        int n = new_ent(in);
        ent_t *x = &in->e[n];
        x->alive = 1;
        x->kind = K_MDS;
        x->h = *p->outs;
        x->parent = mo;
        x->payer = in->e[mo].client;
        x->rights = CAPMEM_RIGHTS_ALL;
        x->owner = mo;
        x->size = in->e[mo].size;
        x->writable = 1;
    }
    return 0;
}

static int op_rm_dataspace(interp_t *in, interp_src_t *s)
{
    int m;
    capmem_cap_t h = pick_handle(in, s, M(K_RM), &m);
    opf(in, "rm_dataspace(%d)", m);
    if (count_alive(in) >= MAX_ENT - 1) {
        return 0;
    }
    capmem_err_t e = lookup(in, m, K_RM, CAPMEM_RIGHT_WRITE | CAPMEM_RIGHT_GRANT);
    int mo = m >= 0 ? in->e[m].obj : -1;
    int have = e == CAPMEM_OK ? managed_of(in, mo) : -1;
    int upgrade = 0;
    if (have < 0) {
        const ent_t *map = mo >= 0 ? &in->e[mo] : NULL;
        FIRST(e, in->e[map->client].caps_limit - caps_used_of(in, map->client) < 1,
              CAPMEM_E_OUT_OF_CAPS);
        if (e == CAPMEM_OK && map->donation / CAPMEM_RAM_RECORD_SIZE - rm_records(in, mo) < 1) {
            if (!map->expanding) {
                e = CAPMEM_E_OUT_OF_METADATA;
            } else if (avail_of(in, map->client) < map->step) {
                e = CAPMEM_E_OUT_OF_RAM;
            } else if (largest_free(in) < map->step) {
                e = CAPMEM_E_OUT_OF_PHYS;
            } else {
                upgrade = 1;
            }
        }
    }
    capmem_cap_t out = CAPMEM_CAP_NULL;
    pend_t p = {.x = mo, .y = have, .upgrade = upgrade, .outs = &out};
    begin(in, &p, settle_rm_dataspace, e, e);
    return finish(in, &p, capmem_rm_dataspace(in->arena, h, &out));
}

static capmem_rm_fault_result_t on_fault(capmem_arena_t *arena, const capmem_rm_fault_t *f,
                                         void *ctx);

static int settle_rm_handler(interp_t *in, pend_t *p, capmem_err_t got)
{
    if (got == CAPMEM_OK) {
        in->e[p->x].has_handler = p->z;
    }
    return 0;
}

static int op_rm_handler(interp_t *in, interp_src_t *s)
{
    int m;
    capmem_cap_t h = pick_handle(in, s, M(K_RM), &m);
    int on = take(s, 4) != 0;
    opf(in, "rm_set_fault_handler(%d, %s)", m, on ? "on" : "off");
    capmem_err_t e = lookup(in, m, K_RM, CAPMEM_RIGHT_WRITE);
    pend_t p = {.x = e == CAPMEM_OK ? in->e[m].obj : -1, .z = on};
    begin(in, &p, settle_rm_handler, e, e);
    return finish(in, &p, capmem_rm_set_fault_handler(in->arena, h, on ? on_fault : NULL, in));
}

/*
 * The interpreter's fault handler (a pager): it checks that the fault is the
 * one the model predicted next and does what the model decided: attach a
 * page of a RAM dataspace or alias at the fault and resolve, resolve without
 * attaching anything (FAULT_LOOP after CAPMEM_RM_FAULT_RETRIES), or give up.
 */
static capmem_rm_fault_result_t on_fault(capmem_arena_t *arena, const capmem_rm_fault_t *f,
                                         void *ctx)
{
    interp_t *in = ctx;
    if (in->plan_bad) {
        return CAPMEM_RM_FAULT_UNRESOLVED;
    }
    if (in->plan_pos >= in->nplan) {
        in->plan_bad = 1;
        snprintf(in->plan_why, sizeof(in->plan_why),
                 "unexpected fault %u (%s at 0x%" PRIx64 "): the model predicted %u", in->plan_pos,
                 capmem_rm_access_name(f->access), f->address, in->nplan);
        return CAPMEM_RM_FAULT_UNRESOLVED;
    }
    const plan_t *p = &in->plan[in->plan_pos++];
    if (f->rm != p->rm || f->address != p->addr || (int)f->access != p->access) {
        in->plan_bad = 1;
        snprintf(in->plan_why, sizeof(in->plan_why),
                 "fault %u: %s at 0x%" PRIx64 " of map 0x%" PRIx64 ", model %s at 0x%" PRIx64
                 " of map 0x%" PRIx64,
                 in->plan_pos - 1, capmem_rm_access_name(f->access), f->address, f->rm,
                 capmem_rm_access_name((capmem_rm_access_t)p->access), p->addr, p->rm);
        return CAPMEM_RM_FAULT_UNRESOLVED;
    }
    if (p->action == ACT_UNRESOLVED) {
        return CAPMEM_RM_FAULT_UNRESOLVED;
    }
    if (p->action == ACT_RESOLVE) {
        return CAPMEM_RM_FAULT_RESOLVED;
    }
    uint64_t out = 0;
    capmem_err_t got = capmem_rm_attach(arena, f->rm, p->ds, &p->attr, &out);
    if (got != p->code || (got == CAPMEM_OK && out != p->at)) {
        in->plan_bad = 1;
        snprintf(in->plan_why, sizeof(in->plan_why),
                 "fault %u: the handler's attach returned %s at 0x%" PRIx64
                 ", model %s at 0x%" PRIx64,
                 in->plan_pos - 1, capmem_err_name(got), out, capmem_err_name(p->code), p->at);
        return CAPMEM_RM_FAULT_UNRESOLVED;
    }
    return got == CAPMEM_OK ? CAPMEM_RM_FAULT_RESOLVED : CAPMEM_RM_FAULT_UNRESOLVED;
}

/* Where an access of map entry @p m at @p addr lands: a fault (*fm, *fa) or backing bytes. */
static void translate(const interp_t *in, int m, uint64_t addr, int access, int *fm, uint64_t *fa,
                      seg_t *sg, uint64_t *avail)
{
    *avail = UINT64_MAX;
    for (int depth = 0; depth <= MAX_ENT; depth++) {
        int r = region_at(in, m, addr / PAGE);
        const region_t *g = r >= 0 ? &in->rg[r] : NULL;
        if (g == NULL || (access == CAPMEM_RM_WRITE && !g->w) ||
            (access == CAPMEM_RM_EXEC && !g->x)) {
            *fm = m;
            *fa = addr;
            return;
        }
        uint64_t left = (g->base + g->pages) * PAGE - addr;
        *avail = left < *avail ? left : *avail;
        uint64_t dsoff = addr - g->base * PAGE + g->off;
        if (in->e[g->ds].kind == K_MDS) {
            m = in->e[g->ds].owner;
            addr = dsoff;
            continue;
        }
        *fm = -1;
        sg->ds = g->ds;
        sg->off = dsoff;
        return;
    }
    *fm = -2; /* deeper than the number of maps: a cycle the library should have refused */
}

/*
 * Simulate an access of @p len bytes at @p addr of map entry @p top (rights
 * and range already checked) on the model, as rm_access() does: translate,
 * deliver faults to the handler (deciding here, from the source, what the
 * handler will do, and applying its attachments to the model), retry from
 * the top, stop after CAPMEM_RM_FAULT_RETRIES resolutions without progress.
 * Fills in->seg (where bytes went) and in->plan (the handler's script).
 */
static capmem_err_t simulate(interp_t *in, interp_src_t *s, int top, uint64_t addr, size_t len,
                             int access)
{
    in->nseg = 0;
    in->nplan = 0;
    in->plan_pos = 0;
    in->plan_bad = 0;
    /* The handler's temper for this access: pager, quitter, liar, or moody. */
    int mode = (int)take(s, 4);
    size_t done = 0;
    unsigned retries = 0;
    while (done < len) {
        int fm;
        uint64_t fa;
        uint64_t avail;
        seg_t sg = {0};
        translate(in, top, addr + done, access, &fm, &fa, &sg, &avail);
        if (fm == -2) {
            return CAPMEM_E__COUNT;
        }
        if (fm >= 0) {
            ent_t *f = &in->e[fm];
            f->faults++;
            f->f_faulted = 1;
            f->f_unres = 0;
            f->f_addr = fa;
            f->f_access = access;
            int resolved = 0;
            if (f->has_handler) {
                if (in->nplan >= MAX_PLAN) {
                    return CAPMEM_E__COUNT;
                }
                plan_t *p = &in->plan[in->nplan++];
                memset(p, 0, sizeof(*p));
                p->rm = f->h;
                p->addr = fa;
                p->access = access;
                int act = mode == 0   ? ACT_ATTACH
                          : mode == 1 ? ACT_UNRESOLVED
                          : mode == 2 ? ACT_RESOLVE
                                      : (int)take(s, 3);
                int d = act == ACT_ATTACH ? pick(in, s, M_DSALL) : -1;
                if (act == ACT_ATTACH && (d < 0 || regions_total(in) >= MAX_REG)) {
                    act = ACT_UNRESOLVED;
                }
                p->action = act;
                if (act == ACT_RESOLVE) {
                    resolved = 1;
                } else if (act == ACT_ATTACH) {
                    d = in->e[d].obj;
                    p->ds = in->e[d].h;
                    p->attr = (capmem_rm_attach_attr_t)CAPMEM_RM_ATTACH_ATTR_INIT;
                    p->attr.size = PAGE;
                    p->attr.offset = take(s, in->e[d].size / PAGE) * PAGE;
                    p->attr.at = fa & ~(PAGE - 1);
                    p->attr.writable = access == CAPMEM_RM_WRITE || take(s, 2);
                    p->attr.executable = access == CAPMEM_RM_EXEC;
                    uint64_t pg = 0;
                    uint64_t pages = 0;
                    int upgrade = 0;
                    p->code = predict_attach(in, fm, d, &p->attr, &pg, &pages, &upgrade);
                    p->at = pg * PAGE;
                    if (p->code == CAPMEM_OK) {
                        apply_attach(in, fm, d, &p->attr, pg, pages, upgrade);
                        resolved = 1;
                    }
                }
            }
            if (!resolved) {
                f->f_unres = 1;
                return CAPMEM_E_UNRESOLVED_FAULT;
            }
            if (++retries >= CAPMEM_RM_FAULT_RETRIES) {
                return CAPMEM_E_FAULT_LOOP;
            }
            continue;
        }
        size_t n = len - done;
        if (avail < n) {
            n = (size_t)avail;
        }
        if (in->nseg >= MAX_SEG) {
            return CAPMEM_E__COUNT;
        }
        sg.at = done;
        sg.n = n;
        in->seg[in->nseg++] = sg;
        done += n;
        retries = 0;
    }
    return CAPMEM_OK;
}

/*
 * After an access: the handler ran as planned, and the bytes are where the
 * model says. The model applied the access (faults, the handler's
 * attachments) in simulate(), before the call; this runs at the access's
 * first event (a fault), before a callback may change anything, or after
 * the call when it raised none.
 */
static int settle_access(interp_t *in, pend_t *p, capmem_err_t got)
{
    (void)got;
    const int access = p->access;
    if (in->plan_bad) {
        return fail(in, "fault handler: %s", in->plan_why);
    }
    if (in->plan_pos != in->nplan) {
        return fail(in, "the handler ran %u times, the model predicted %u", in->plan_pos,
                    in->nplan);
    }
    for (unsigned i = 0; i < in->nseg; i++) {
        const seg_t *g = &in->seg[i];
        if (capmem_ds_read(in->arena, in->e[g->ds].h, g->off, in->back, g->n) != CAPMEM_OK) {
            return fail(in, "backing dataspace %d of segment %u does not read", g->ds, i);
        }
        if (access == CAPMEM_RM_READ && memcmp(in->back, in->buf + g->at, g->n) != 0) {
            return fail(
                in, "bytes read through the map differ from the backing dataspace %d at 0x%" PRIx64,
                g->ds, g->off);
        }
        if (access != CAPMEM_RM_WRITE) {
            continue;
        }
        /* The last write to each physical byte wins (two regions may show the same page). */
        for (size_t j = 0; j < g->n; j++) {
            uint64_t phys = in->e[g->ds].off + g->off + j;
            uint8_t want = 0;
            for (unsigned k = i; k < in->nseg; k++) {
                const seg_t *h = &in->seg[k];
                uint64_t p0 = in->e[h->ds].off + h->off;
                if (phys >= p0 && phys < p0 + h->n) {
                    want = in->buf[h->at + (phys - p0)];
                }
            }
            if (in->back[j] != want) {
                return fail(in, "byte %zu written through the map reads back 0x%02x, want 0x%02x",
                            g->at + j, in->back[j], want);
            }
        }
    }
    return 0;
}

/*
 * Make an access whose outcome simulate() predicted (@p e) and check it:
 * kind 0-2 is capmem_rm_read/write/touch of map @p h (@p access is the touch's access
 * type), 3-4 capmem_ds_read/write of a managed dataspace @p h.
 */
static int access_call(interp_t *in, int access, capmem_err_t e, capmem_cap_t h, int kind,
                       uint64_t addr, size_t len)
{
    if (e == CAPMEM_E__COUNT) {
        return fail(in, "the model's access simulation overflowed (segments, plan or depth)");
    }
    pend_t p = {.access = kind == 2 ? -1 : access};
    /*
     * A failing access still raises its faults, the handler's resolutions
     * (a fault loop is resolved and faults again), and the events of the
     * handler's own calls: attachments and their upgrades.
     */
    p.fail_events = 1u << CAPMEM_EVENT_FAULT | 1u << CAPMEM_EVENT_FAULT_RESOLVED |
                    1u << CAPMEM_EVENT_ATTACH | 1u << CAPMEM_EVENT_UPGRADE;
    begin(in, &p, settle_access, e, e);
    capmem_err_t got;
    switch (kind) {
    case 0:
        got = capmem_rm_read(in->arena, h, addr, in->buf, len);
        break;
    case 1:
        got = capmem_rm_write(in->arena, h, addr, in->buf, len);
        break;
    case 2:
        got = capmem_rm_touch(in->arena, h, addr, len, (capmem_rm_access_t)access);
        break;
    case 3:
        got = capmem_ds_read(in->arena, h, addr, in->buf, len);
        break;
    default:
        got = capmem_ds_write(in->arena, h, addr, in->buf, len);
        break;
    }
    if (in->plan_bad && !p.settled) {
        /* The handler saw something else than the model predicted: that is the first cause. */
        in->pend = p.prev;
        return fail(in, "fault handler: %s", in->plan_why);
    }
    return finish(in, &p, got);
}

static int op_rm_access(interp_t *in, interp_src_t *s)
{
    int m;
    capmem_cap_t h = pick_handle(in, s, M(K_RM), &m);
    int mo = m >= 0 && in->e[m].kind == K_RM ? in->e[m].obj : -1;
    int kind = (int)take(s, 3); /* read, write, touch */
    int access = kind == 2 ? (int)take(s, 3) : kind;
    if (kind == 2 && take(s, 32) == 0) {
        access = 5; /* unknown access type */
    }
    uint64_t msize = mo >= 0 ? in->e[mo].size : 16 * PAGE;
    size_t len = take(s, 4) == 0 ? (size_t)take(s, 3 * PAGE + 1) : (size_t)take(s, 64) + 1;
    uint64_t addr = take(s, msize + 1);
    uint64_t r = take(s, 8);
    if (r == 0) {
        addr = pick_size(s);
    } else if (r < 5 && mo >= 0) {
        int idx[MAX_REG];
        int n = 0;
        for (int i = 0; i < MAX_REG; i++) {
            if (in->rg[i].alive && in->rg[i].map == mo) {
                idx[n++] = i;
            }
        }
        if (n > 0) {
            const region_t *g = &in->rg[idx[take(s, (uint64_t)n)]];
            addr = g->base * PAGE + take(s, g->pages * PAGE);
        }
    }
    static const char *const kinds[] = {"rm_read", "rm_write", "rm_touch"};
    opf(in, "%s(%d, 0x%" PRIx64 ", len=%zu, access=%d)", kinds[kind], m, addr, len, access);
    capmem_err_t e = CAPMEM_OK;
    FIRST(e, access > CAPMEM_RM_EXEC, CAPMEM_E_INVALID_ARGS);
    if (e == CAPMEM_OK) {
        e = lookup(in, m, K_RM, access == CAPMEM_RM_WRITE ? CAPMEM_RIGHT_WRITE : CAPMEM_RIGHT_READ);
    }
    uint64_t end = 0;
    FIRST(e, __builtin_add_overflow(addr, (uint64_t)len, &end) || end > in->e[mo].size,
          CAPMEM_E_RANGE);
    in->nseg = 0;
    in->nplan = 0;
    in->plan_pos = 0;
    in->plan_bad = 0;
    if (e == CAPMEM_OK) {
        e = simulate(in, s, mo, addr, len, access);
    }
    for (size_t i = 0; i < len; i++) {
        in->buf[i] = (uint8_t)(in->ops * 7u + i * 13u + 1u);
    }
    return access_call(in, access, e, h, kind, addr, len);
}

/* Free (or delete) a dataspace that some map has attached: it leaves every map. */
static int op_free_attached(interp_t *in, interp_src_t *s)
{
    int idx[MAX_REG];
    int n = 0;
    for (int i = 0; i < MAX_REG; i++) {
        if (in->rg[i].alive) {
            idx[n++] = i;
        }
    }
    if (n == 0) {
        return 0;
    }
    int d = in->rg[idx[take(s, (uint64_t)n)]].ds;
    capmem_cap_t h = in->e[d].h;
    int managed = in->e[d].kind == K_MDS;
    opf(in, "free_attached(%d%s)", d, managed ? ", managed: cap_delete" : "");
    capmem_err_t e = CAPMEM_OK;
    if (managed) {
        /* A managed dataspace cannot be freed; deleting its capability is how it goes alone. */
        pend_t p = {.x = d};
        begin(in, &p, NULL, CAPMEM_E_WRONG_TYPE, CAPMEM_E_WRONG_TYPE);
        if (finish(in, &p, capmem_ds_free(in->arena, h))) {
            return 1;
        }
        FIRST(e, has_children(in, d), CAPMEM_E_REVOKE_FIRST);
    }
    pend_t p = {.x = d};
    begin(in, &p, settle_kill, e, e);
    return finish(in, &p, managed ? capmem_cap_delete(in->arena, h) : capmem_ds_free(in->arena, h));
}

/* ---- the liar: a custom policy that answers garbage --------------------------------- */

static void liar_broke(liar_t *l, const char *what)
{
    if (!l->bad) {
        l->bad = 1;
        snprintf(l->why, sizeof(l->why), "%s", what);
    }
}

/* A hook runs in the middle of a library call: calling in must be refused. */
static void liar_probe(liar_t *l, const char *hook)
{
    if (l->probe == NULL) {
        return;
    }
    capmem_untyped_info_t ui;
    capmem_err_t e = capmem_untyped_info(l->probe, l->h, &ui);
    if (e != CAPMEM_E_REENTRANT) {
        char why[120];
        snprintf(why, sizeof(why), "the liar's %s hook called in and got %s, not REENTRANT", hook,
                 capmem_err_name(e));
        liar_broke(l, why);
    }
}

static int liar_overlap(const liar_t *l, uint64_t off, uint64_t size)
{
    for (unsigned i = 0; i < l->n; i++) {
        if (off < l->off[i] + l->size[i] && l->off[i] < off + size) {
            return (int)i;
        }
    }
    return -1;
}

/* First fit: the lowest aligned offset where the block fits, or 0 for none. */
static int liar_fit(const liar_t *l, uint64_t size, uint64_t align, uint64_t *at)
{
    uint64_t pos = 0;
    for (;;) {
        pos = (pos + align - 1) & ~(align - 1);
        if (pos > LIAR_SIZE || size > LIAR_SIZE - pos) {
            return 0;
        }
        int o = liar_overlap(l, pos, size);
        if (o < 0) {
            *at = pos;
            return 1;
        }
        pos = l->off[o] + l->size[o];
    }
}

static void liar_add(liar_t *l, uint64_t off, uint64_t size)
{
    l->off[l->n] = off;
    l->size[l->n] = size;
    l->leaked[l->n] = 0;
    l->n++;
}

static capmem_err_t liar_alloc(void *self, uint64_t size, uint64_t align, uint64_t *offset)
{
    liar_t *l = self;
    liar_probe(l, "alloc");
    l->allocs++;
    const int mode = l->mode;
    l->mode = L_HONEST; /* one lie per request */
    uint64_t at = 0;
    const int fits = l->n < LIAR_MAX && liar_fit(l, size, align, &at);
    if (mode != L_HONEST) {
        l->lies++;
    }
    switch (mode) {
    case L_SPAN: /* the block ends past the untyped */
        *offset = LIAR_SIZE - (size > align ? align : 0);
        if (*offset + size <= LIAR_SIZE) {
            *offset = LIAR_SIZE;
        }
        return CAPMEM_OK;
    case L_FAR: /* far beyond it, aligned */
        *offset = (UINT64_MAX / 2) & ~(align - 1);
        return CAPMEM_OK;
    case L_ALIGN:
        *offset = (fits ? at : 0) + align / 2;
        return CAPMEM_OK;
    case L_OVERLAP:
        if (l->n > 0) {
            *offset = l->off[l->n - 1] & ~(align - 1);
            return CAPMEM_OK;
        }
        *offset = LIAR_SIZE; /* nothing to overlap: out of the untyped instead */
        return CAPMEM_OK;
    case L_UNSET:
        return CAPMEM_OK; /* "OK" without an offset */
    case L_CODE:
        return (capmem_err_t)999;
    default:
        break;
    }
    if (!fits) {
        return CAPMEM_E_NOT_ENOUGH_MEMORY;
    }
    liar_add(l, at, size);
    *offset = at;
    return CAPMEM_OK;
}

static capmem_err_t liar_alloc_at(void *self, uint64_t offset, uint64_t size)
{
    liar_t *l = self;
    liar_probe(l, "alloc_at");
    l->alloc_ats++;
    if (offset > LIAR_SIZE || size > LIAR_SIZE - offset || liar_overlap(l, offset, size) >= 0 ||
        l->n >= LIAR_MAX) {
        return CAPMEM_E_NOT_ENOUGH_MEMORY;
    }
    liar_add(l, offset, size);
    return CAPMEM_OK;
}

static capmem_err_t liar_free(void *self, uint64_t offset, uint64_t size)
{
    liar_t *l = self;
    liar_probe(l, "free");
    l->frees++;
    for (unsigned i = 0; i < l->n; i++) {
        if (l->off[i] == offset && !l->leaked[i]) {
            if (l->size[i] != size) {
                liar_broke(l, "the library freed a block with another size than it was given");
                return CAPMEM_E_INVALID_ARGS;
            }
            if (l->refuse_free && !l->in_retype) {
                l->leaked[i] = 1;
                return CAPMEM_E_DENIED;
            }
            l->n--;
            l->off[i] = l->off[l->n];
            l->size[i] = l->size[l->n];
            l->leaked[i] = l->leaked[l->n];
            return CAPMEM_OK;
        }
    }
    liar_broke(l, "the library freed a block the liar never handed out (or a refused one)");
    return CAPMEM_E_NOT_ALLOCATED;
}

static uint64_t liar_avail(const void *self)
{
    const liar_t *l = self;
    uint64_t used = 0;
    for (unsigned i = 0; i < l->n; i++) {
        used += l->size[i];
    }
    return LIAR_SIZE - used;
}

static uint64_t liar_largest(const void *self)
{
    const liar_t *l = self;
    run_t runs[LIAR_MAX];
    for (unsigned i = 0; i < l->n; i++) {
        runs[i] = (run_t){l->off[i], l->off[i] + l->size[i]};
    }
    qsort(runs, l->n, sizeof(runs[0]), cmp_run);
    uint64_t pos = 0;
    uint64_t best = 0;
    for (unsigned i = 0; i < l->n; i++) {
        best = runs[i].off - pos > best ? runs[i].off - pos : best;
        pos = runs[i].end;
    }
    return LIAR_SIZE - pos > best ? LIAR_SIZE - pos : best;
}

static void liar_reset(void *self)
{
    liar_t *l = self;
    l->n = 0;
    l->resets++;
}

static const capmem_alloc_ops_t liar_ops = {
    .name = "liar",
    .alloc = liar_alloc,
    .alloc_at = liar_alloc_at,
    .free = liar_free,
    .avail = liar_avail,
    .largest = liar_largest,
    .reset = liar_reset,
};

/*
 * The model of the library's side: the wrapper's checks (capmem/alloc.h:
 * an answer inside the untyped, aligned, not over a live block, else
 * POLICY; an alloc_at over a live block refused before the policy is asked)
 * and the untyped's placement (one alloc for one object; for a run, one
 * alloc of the whole run, its free, then an alloc_at per object; an
 * explicit offset, an alloc_at per object), applied to a copy of the liar.
 */
static capmem_err_t model_alloc(liar_t *l, uint64_t size, uint64_t align, uint64_t *off)
{
    const unsigned before = l->n;
    *off = UINT64_MAX;
    capmem_err_t e = liar_alloc(l, size, align, off);
    if (e != CAPMEM_OK) {
        return e;
    }
    int fits = *off <= LIAR_SIZE && size <= LIAR_SIZE - *off && *off % align == 0;
    for (unsigned i = 0; fits && i < before; i++) {
        fits = !(*off < l->off[i] + l->size[i] && l->off[i] < *off + size);
    }
    if (!fits) {
        l->n = before;
        return CAPMEM_E_POLICY;
    }
    return CAPMEM_OK;
}

static capmem_err_t model_alloc_at(liar_t *l, uint64_t off, uint64_t size)
{
    if (liar_overlap(l, off, size) >= 0) {
        return CAPMEM_E_NOT_ENOUGH_MEMORY; /* the wrapper refuses; the liar is not asked */
    }
    return liar_alloc_at(l, off, size);
}

static capmem_err_t model_place(liar_t *l, const capmem_retype_attr_t *at, uint64_t *rel)
{
    const uint64_t sz = 1ull << at->size_bits;
    uint64_t base = at->offset;
    if (at->offset == CAPMEM_RETYPE_ANYWHERE) {
        uint64_t run = at->count * sz;
        capmem_err_t e = model_alloc(l, run, sz, &base);
        if (e == CAPMEM_E_POLICY) {
            return e;
        }
        if (e != CAPMEM_OK) {
            return CAPMEM_E_NOT_ENOUGH_MEMORY; /* the untyped's own "Insufficient memory" */
        }
        if (at->count == 1) {
            rel[0] = base;
            return CAPMEM_OK;
        }
        (void)liar_free(l, base, run);
    }
    for (uint32_t i = 0; i < at->count; i++) {
        rel[i] = base + i * sz;
        if (model_alloc_at(l, rel[i], sz) != CAPMEM_OK) {
            while (i-- > 0) {
                (void)liar_free(l, rel[i], sz);
            }
            return CAPMEM_E_NOT_ENOUGH_MEMORY;
        }
    }
    return CAPMEM_OK;
}

static int same_liar(const liar_t *a, const liar_t *b)
{
    if (a->n != b->n || a->allocs != b->allocs || a->alloc_ats != b->alloc_ats ||
        a->frees != b->frees || a->resets != b->resets) {
        return 0;
    }
    for (unsigned i = 0; i < a->n; i++) {
        if (a->off[i] != b->off[i] || a->size[i] != b->size[i] || a->leaked[i] != b->leaked[i]) {
            return 0;
        }
    }
    return 1;
}

/* The liar's model and its untyped's retype, built on the pieces above. */
typedef struct liar_call {
    liar_t want; /* the liar as the model expects it after the call */
    capmem_retype_attr_t at;
    uint64_t rel[4];
    capmem_cap_t dest[4];
    int u, uo;
} liar_call_t;

static int settle_liar(interp_t *in, pend_t *p, capmem_err_t got)
{
    liar_t *l = &in->liar;
    const liar_call_t *c = p->attr;
    l->in_retype = 0;
    if (!same_liar(l, &c->want)) {
        return fail(
            in,
            "the liar's hooks were not called as the model predicts: blocks %u, allocs %" PRIu64
            ", alloc_ats %" PRIu64 ", frees %" PRIu64 ", resets %" PRIu64
            "; model blocks %u, allocs %" PRIu64 ", alloc_ats %" PRIu64 ", frees %" PRIu64
            ", resets %" PRIu64,
            l->n, l->allocs, l->alloc_ats, l->frees, l->resets, c->want.n, c->want.allocs,
            c->want.alloc_ats, c->want.frees, c->want.resets);
    }
    if (got != CAPMEM_OK) {
        if (c->dest[0] != CAPMEM_CAP_NULL) {
            return fail(in, "a refused retype wrote a handle");
        }
        return 0;
    }
    const uint64_t base = in->e[c->uo].base;
    for (uint32_t i = 0; i < c->at.count; i++) {
        capmem_object_info_t oi;
        if (capmem_object_info(in->arena, c->dest[i], &oi) != CAPMEM_OK ||
            oi.offset != base + c->rel[i] || oi.size_bits != c->at.size_bits) {
            return fail(in, "object %u of the liar's retype is not at 0x%" PRIx64, i,
                        base + c->rel[i]);
        }
        int n = new_ent(in);
        ent_t *x = &in->e[n];
        x->alive = 1;
        x->kind = c->at.type == CAPMEM_OBJ_FRAME ? K_FRAME : K_KOBJ;
        x->h = c->dest[i];
        x->parent = c->u;
        x->rights = CAPMEM_RIGHTS_ALL;
        x->bits = c->at.size_bits;
        x->ut = c->uo;
        in->e[c->uo].children++;
    }
    return 0;
}

static int op_liar_retype(interp_t *in, interp_src_t *s)
{
    liar_t *l = &in->liar;
    liar_call_t c;
    memset(&c, 0, sizeof(c));
    capmem_cap_t h = pick_handle(in, s, M(K_LUT), &c.u);
    c.at = (capmem_retype_attr_t)CAPMEM_RETYPE_ATTR_INIT;
    c.at.type = take(s, 2) ? CAPMEM_OBJ_KOBJ : CAPMEM_OBJ_FRAME;
    c.at.size_bits =
        c.at.type == CAPMEM_OBJ_FRAME ? 12 + (unsigned)take(s, 3) : 4 + (unsigned)take(s, 11);
    c.at.count = 1 + (uint32_t)take(s, 3);
    if (take(s, 6) == 0) {
        c.at.offset = take(s, 20) << c.at.size_bits; /* sometimes outside the untyped */
    }
    l->mode = take(s, 2) ? L_HONEST : 1 + (int)take(s, L_MODES - 1);
    l->refuse_free = take(s, 4) == 0;
    static const char *const modes[] = {"honest",      "past the end", "far",     "misaligned",
                                        "overlapping", "unset",        "code 999"};
    opf(in, "liar_retype(%d, type=%d, bits=%u, count=%u, offset=0x%" PRIx64 ", answer %s%s)", c.u,
        (int)c.at.type, c.at.size_bits, c.at.count, c.at.offset, modes[l->mode],
        l->refuse_free ? ", refusing frees" : "");
    if (count_alive(in) + (int)c.at.count + 1 >= MAX_ENT || (c.u >= 0 && in->e[c.u].kind == K_UT)) {
        l->mode = L_HONEST; /* another untyped (a bad-kind pick) is op_retype's */
        return 0;
    }
    capmem_err_t e = lookup(in, c.u, K_UT, CAPMEM_RIGHT_WRITE);
    c.uo = c.u >= 0 ? in->e[c.u].obj : -1;
    c.want = *l;
    c.want.probe = NULL;
    const uint64_t sz = 1ull << c.at.size_bits;
    const int reset = e == CAPMEM_OK && in->e[c.uo].children == 0 && !has_children(in, c.u);
    FIRST(e, ((reset ? LIAR_SIZE : liar_avail(l)) >> c.at.size_bits) < c.at.count,
          CAPMEM_E_NOT_ENOUGH_MEMORY);
    FIRST(e,
          c.at.offset != CAPMEM_RETYPE_ANYWHERE &&
              (c.at.offset % sz != 0 || c.at.offset + c.at.count * sz > LIAR_SIZE),
          CAPMEM_E_INVALID_ARGS);
    if (e == CAPMEM_OK) {
        if (reset) {
            liar_reset(&c.want);
        }
        c.want.in_retype = 1;
        e = model_place(&c.want, &c.at, c.rel);
        c.want.in_retype = 0;
    }
    /* The lie is told only when the request reaches the policy's alloc. */
    c.want.mode = L_HONEST;
    pend_t p = {.attr = &c};
    begin(in, &p, settle_liar, e, e);
    l->in_retype = 1;
    capmem_err_t got = capmem_untyped_retype(in->arena, h, &c.at, c.dest, 4);
    l->in_retype = 0;
    l->mode = L_HONEST;
    return finish(in, &p, got);
}

/* The liar's untyped in the library agrees with the model and the liar's own blocks. */
static int compare_liar(interp_t *in)
{
    liar_t *l = &in->liar;
    if (l->bad) {
        return fail(in, "liar: %s", l->why);
    }
    const ent_t *x = &in->e[in->liar_ent];
    capmem_untyped_info_t ui;
    if (capmem_untyped_info(in->arena, x->h, &ui) != CAPMEM_OK) {
        return fail(in, "liar's untyped: info failed: %s", capmem_last_error()->message);
    }
    /* Childless, a retype through it resets the liar first: all of it is free to use. */
    const uint64_t want_free =
        x->children == 0 && !has_children(in, in->liar_ent) ? LIAR_SIZE : liar_avail(l);
    if (ui.children != x->children || ui.free_bytes != want_free) {
        return fail(in,
                    "liar's untyped: library children %" PRIu64 " free %" PRIu64
                    "; model children %" PRIu64 " free %" PRIu64 " (the liar's own: %" PRIu64 ")",
                    ui.children, ui.free_bytes, x->children, want_free, liar_avail(l));
    }
    /* Every live object of it is a block the liar handed out, and every block is one. */
    uint64_t live = 0;
    for (int i = 0; i < MAX_ENT; i++) {
        const ent_t *c = &in->e[i];
        if (!c->alive || c->ut != in->liar_ent || c->obj != i) {
            continue;
        }
        capmem_object_info_t oi;
        if (capmem_object_info(in->arena, c->h, &oi) != CAPMEM_OK) {
            return fail(in, "liar's object %d: info failed", i);
        }
        int b = liar_overlap(l, oi.offset - x->base, 1ull << c->bits);
        if (b < 0 || l->off[b] != oi.offset - x->base || l->size[b] != 1ull << c->bits ||
            l->leaked[b]) {
            return fail(in, "liar's object %d at 0x%" PRIx64 " is not a block the liar handed out",
                        i, oi.offset);
        }
        live++;
    }
    uint64_t blocks = 0;
    for (unsigned i = 0; i < l->n; i++) {
        blocks += !l->leaked[i];
    }
    if (blocks != live) {
        return fail(in, "the liar holds %" PRIu64 " blocks for %" PRIu64 " live objects", blocks,
                    live);
    }
    return 0;
}

/* The op table: weight and function. */
typedef struct op_row {
    const char *name;
    unsigned weight;
    int (*fn)(interp_t *in, interp_src_t *s);
} op_row_t;

static int op_transfer_ram(interp_t *in, interp_src_t *s)
{
    return op_transfer(in, s, 0);
}

static int op_transfer_caps(interp_t *in, interp_src_t *s)
{
    return op_transfer(in, s, 1);
}

static int op_cap_delete(interp_t *in, interp_src_t *s)
{
    return op_delete(in, s, 0);
}

static int op_cap_revoke(interp_t *in, interp_src_t *s)
{
    return op_delete(in, s, 1);
}

static const op_row_t ops[] = {
    {"open", 6, op_open},
    {"close", 2, op_close},
    {"transfer", 5, op_transfer_ram},
    {"transfer_caps", 2, op_transfer_caps},
    {"upgrade", 3, op_upgrade},
    {"set_expanding", 2, op_expanding},
    {"alloc", 12, op_alloc},
    {"free", 6, op_free},
    {"alias", 10, op_alias},
    {"rw", 5, op_rw},
    {"mint", 5, op_mint},
    {"delete", 4, op_cap_delete},
    {"revoke", 2, op_cap_revoke},
    {"retype", 10, op_retype},
    {"frame_rw", 3, op_frame_rw},
    {"rm_create", 4, op_rm_create},
    {"rm_close", 1, op_rm_close},
    {"rm_attach", 10, op_rm_attach},
    {"rm_detach", 4, op_rm_detach},
    {"rm_dataspace", 2, op_rm_dataspace},
    {"rm_handler", 2, op_rm_handler},
    {"rm_access", 10, op_rm_access},
    {"free_attached", 2, op_free_attached},
    {"liar_retype", 4, op_liar_retype},
};

static unsigned ops_total(void)
{
    unsigned total = 0;
    for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
        total += ops[i].weight;
    }
    return total;
}

/* One op of the table, drawn by weight. */
static int random_op(interp_t *in, interp_src_t *src)
{
    uint64_t r = take(src, ops_total());
    size_t k = 0;
    while (r >= ops[k].weight) {
        r -= ops[k].weight;
        k++;
    }
    return ops[k].fn(in, src);
}

/* ---- event callbacks that call back in ------------------------------------------------ */

/* Nested ops: at most this many per event, and per step (events of nested ops included). */
#define NEST_PER_EVENT 2
#define NEST_PER_STEP 4

/* The account that pays for entry @p i (its reference account for an account), or -1. */
static int account_of(const interp_t *in, int i)
{
    const ent_t *o = &in->e[in->e[i].obj];
    switch (o->kind) {
    case K_ACC:
        return o->ref;
    case K_DS:
    case K_DEP:
    case K_FC:
        return o->meta;
    case K_RM:
        return o->client;
    case K_MDS:
        return in->e[o->owner].client;
    default:
        return -1;
    }
}

typedef int (*op_fn)(interp_t *in, interp_src_t *s);

/* The op that closes (frees, deletes) an object of entry @p i's kind. */
static op_fn closer(const interp_t *in, int i, int ev_kind)
{
    int k = i >= 0 ? in->e[i].kind : K_NONE;
    if (k == K_ACC || (k == K_NONE && ev_kind == CAPMEM_EVENT_SESSION_CLOSE)) {
        return op_close;
    }
    if (k == K_DS || k == K_DEP || k == K_FC) {
        return op_free;
    }
    if (k == K_RM) {
        return op_rm_close;
    }
    return op_cap_delete;
}

/*
 * One nested op, run from the event callback: mostly aimed at the object
 * the event names or at the account that pays for it (closed, freed,
 * deleted or revoked; a stale handle when the object is gone already),
 * otherwise any op of the table. Its result is checked against the model
 * like every other op's.
 */
static int nested_op(interp_t *in, interp_src_t *s, const capmem_event_t *ev)
{
    int t = -1;
    for (int i = 0; i < MAX_ENT; i++) {
        if (in->e[i].alive && in->e[i].h == ev->cap) {
            t = i;
        }
    }
    uint64_t r = take(s, 8);
    if (r >= 5) {
        return random_op(in, s);
    }
    capmem_cap_t h = ev->cap;
    if (r >= 3 && t >= 0 && account_of(in, t) >= 0) {
        t = account_of(in, t);
        h = in->e[t].h;
    }
    in->force = 1;
    in->force_h = h;
    in->force_ent = t;
    const uint64_t refused = in->refused;
    int rc = (r == 2 || r == 4) ? op_cap_revoke(in, s) : closer(in, t, ev->kind)(in, s);
    in->force = 0;
    in->aimed++;
    in->aimed_done += in->refused == refused && t >= 0;
    return rc;
}

/*
 * The arena's event callback. Events arrive after the call that raised them
 * has committed and released the lock, before it returns: the first one
 * settles that call in the model (the state the callback sees is the state
 * after the call), checks that a call the model expects to fail raised only
 * the events of its completed steps, and then, drawn from the step's
 * source, up to NEST_PER_EVENT nested ops run, each checked against the
 * model and followed by the invariant checker.
 */
static void on_event(capmem_arena_t *arena, const capmem_event_t *ev, void *ctx)
{
    interp_t *in = ctx;
    (void)arena;
    in->events++;
    if (in->failed) {
        return;
    }
    if (in->in_cb) {
        fail(in, "event %s was delivered inside the callback, not after it returned",
             capmem_event_kind_name(ev->kind));
        return;
    }
    pend_t *p = in->pend;
    if (p == NULL) {
        fail(in, "event %s (\"%s\") was delivered during a call that raises none",
             capmem_event_kind_name(ev->kind), ev->message);
        return;
    }
    if (in->outer_only) {
        /* No nested op ran yet: the event is the call's own, delivered before it returned. */
        in->at_event = ev->kind;
        const capmem_err_t presumed = p->settled ? p->presumed : presume(p);
        if (presumed != CAPMEM_OK && !(p->fail_events & (1u << ev->kind))) {
            fail(in, "a call the model expects to fail with %s raised event %s (\"%s\")",
                 capmem_err_name(presumed), capmem_event_kind_name(ev->kind), ev->message);
        } else if (!p->settled) {
            (void)settle_now(in, p, presumed);
        }
        in->at_event = 0;
        if (in->failed) {
            return;
        }
    }
    if (in->src == NULL || in->nested >= NEST_PER_STEP) {
        return;
    }
    uint64_t r = take(in->src, 8);
    unsigned n = r < 4 ? 0 : r < 7 ? 1 : NEST_PER_EVENT;
    if (n == 0) {
        return;
    }
    in->in_cb = 1;
    in->cb_kind = ev->kind;
    /* The callback sees the state after the call, as the model has it now. */
    if (!in->outer_only || compare(in) == 0) {
        in->outer_only = 0;
        for (unsigned k = 0; k < n && in->nested < NEST_PER_STEP; k++) {
            in->nested++;
            in->nested_total++;
            if (nested_op(in, in->src, ev) != 0 || compare(in) != 0) {
                break;
            }
        }
    }
    in->in_cb = 0;
    in->cb_kind = 0;
}

/* ---- the second arena --------------------------------------------------------------- */

/* The second arena's numbers, in a fixed order (0xdead for a handle no query accepts). */
static unsigned other_state(interp_t *in, uint64_t *out)
{
    uint64_t tmp[MAX_SNAP];
    uint64_t *v = tmp;
    capmem_arena_t *b = in->other;
    v[0] = capmem_cap_count(b);
    v++;
    for (unsigned i = 0; i < in->nother && v + 12 <= tmp + MAX_SNAP; i++) {
        capmem_cap_t h = in->other_h[i];
        capmem_ram_info_t ri;
        capmem_untyped_info_t ui;
        capmem_rm_info_t mi;
        capmem_ds_info_t di;
        if (capmem_ram_info(b, h, &ri) == CAPMEM_OK) {
            *v++ = ri.quota;
            *v++ = ri.used;
            *v++ = ri.donation;
            *v++ = ri.records_used;
            *v++ = ri.caps_used;
            *v++ = ri.caps_limit;
        } else if (capmem_untyped_info(b, h, &ui) == CAPMEM_OK) {
            *v++ = ui.free_bytes;
            *v++ = ui.children;
        } else if (capmem_rm_info(b, h, &mi) == CAPMEM_OK) {
            *v++ = mi.regions;
            *v++ = mi.records_used;
            *v++ = mi.faults;
            *v++ = mi.has_handler;
        } else if (capmem_ds_info(b, h, &di) == CAPMEM_OK) {
            uint64_t bytes = 0;
            if (capmem_ds_read(b, h, 0, &bytes, sizeof(bytes)) != CAPMEM_OK) {
                bytes = 1;
            }
            *v++ = di.size;
            *v++ = bytes;
        } else {
            *v++ = 0xdead; /* every handle of the second arena stays valid */
        }
    }
    unsigned n = (unsigned)(v - tmp);
    memcpy(out, tmp, n * sizeof(*out));
    return n;
}

/*
 * A second arena with one object of each kind: an account with a dataspace
 * (bytes written), a dependent and a first-class alias, a minted copy, a
 * region map with the dataspace attached and its managed dataspace, and an
 * untyped child with a frame and a kernel object. Its handles are mixed
 * into handle arguments; nothing may ever change in it.
 */
static int other_new(interp_t *in)
{
    capmem_arena_attr_t at = CAPMEM_ARENA_ATTR_INIT;
    at.ram_size = 3ull << 20;
    at.phys_base = 0x100000; /* the same addresses as the first: only the tag tells them apart */
    capmem_untyped_info_t boot[8];
    size_t nboot = 0;
    capmem_cap_t root;
    capmem_cap_t acc;
    capmem_cap_t ds;
    capmem_cap_t dep;
    capmem_cap_t fc;
    capmem_cap_t copy;
    capmem_cap_t rm;
    capmem_cap_t mds;
    capmem_cap_t ut;
    capmem_cap_t frame;
    capmem_cap_t kobj;
    capmem_ram_open_attr_t oa = CAPMEM_RAM_OPEN_ATTR_INIT;
    oa.quota = 256 * 1024;
    oa.caps = 64;
    oa.label = "other";
    capmem_alias_attr_t dal = CAPMEM_ALIAS_ATTR_INIT;
    dal.size = PAGE;
    capmem_alias_attr_t fal = CAPMEM_ALIAS_ATTR_INIT;
    fal.lifetime = CAPMEM_ALIAS_FIRST_CLASS;
    fal.offset = PAGE;
    fal.size = PAGE;
    capmem_rm_open_attr_t ra = CAPMEM_RM_OPEN_ATTR_INIT;
    ra.size = 16 * PAGE;
    capmem_rm_attach_attr_t aa = CAPMEM_RM_ATTACH_ATTR_INIT;
    uint64_t addr;
    capmem_retype_attr_t ut_at = CAPMEM_RETYPE_ATTR_INIT;
    ut_at.type = CAPMEM_OBJ_UNTYPED;
    ut_at.size_bits = 16;
    capmem_retype_attr_t fr_at = CAPMEM_RETYPE_ATTR_INIT;
    capmem_retype_attr_t ko_at = CAPMEM_RETYPE_ATTR_INIT;
    ko_at.type = CAPMEM_OBJ_KOBJ;
    ko_at.size_bits = 8;
    const uint64_t pattern = 0x0123456789abcdefull;
    if (capmem_arena_create(&at, &in->other) != CAPMEM_OK ||
        capmem_untyped_boot(in->other, boot, 8, &nboot) != CAPMEM_OK || nboot != 2 ||
        capmem_ram_create(in->other, &boot[1].cap, 1, NULL, &root) != CAPMEM_OK ||
        capmem_ram_open(in->other, root, &oa, &acc) != CAPMEM_OK ||
        capmem_ram_alloc(in->other, acc, 4 * PAGE, &ds) != CAPMEM_OK ||
        capmem_ds_write(in->other, ds, 0, &pattern, sizeof(pattern)) != CAPMEM_OK ||
        capmem_ds_alias(in->other, acc, ds, &dal, &dep) != CAPMEM_OK ||
        capmem_ds_alias(in->other, acc, ds, &fal, &fc) != CAPMEM_OK ||
        capmem_cap_mint(in->other, ds, CAPMEM_RIGHT_READ, &copy) != CAPMEM_OK ||
        capmem_rm_open(in->other, acc, &ra, &rm) != CAPMEM_OK ||
        capmem_rm_attach(in->other, rm, ds, &aa, &addr) != CAPMEM_OK ||
        capmem_rm_dataspace(in->other, rm, &mds) != CAPMEM_OK ||
        capmem_untyped_retype(in->other, boot[0].cap, &ut_at, &ut, 1) != CAPMEM_OK ||
        capmem_untyped_retype(in->other, ut, &fr_at, &frame, 1) != CAPMEM_OK ||
        capmem_untyped_retype(in->other, ut, &ko_at, &kobj, 1) != CAPMEM_OK) {
        fprintf(stderr, "interp: second arena: %s\n", capmem_last_error()->message);
        return 1;
    }
    const capmem_cap_t hs[] = {root, acc, ds, dep, fc, copy, rm, mds, boot[0].cap, ut, frame, kobj};
    in->nother = sizeof(hs) / sizeof(hs[0]);
    memcpy(in->other_h, hs, sizeof(hs));
    in->nsnap = other_state(in, in->other_snap);
    return 0;
}

/* Nothing changed in the second arena, and its checker passes. */
static int other_compare(interp_t *in)
{
    uint64_t now[MAX_SNAP];
    unsigned n = other_state(in, now);
    if (n != in->nsnap || memcmp(now, in->other_snap, n * sizeof(now[0])) != 0) {
        for (unsigned i = 0; i < n && i < in->nsnap; i++) {
            if (now[i] != in->other_snap[i]) {
                return fail(in, "the second arena changed: number %u is %" PRIu64 ", was %" PRIu64,
                            i, now[i], in->other_snap[i]);
            }
        }
        return fail(in, "the second arena changed: %u numbers, were %u", n, in->nsnap);
    }
    char why[512];
    if (capmem_check(in->other, why, sizeof(why)) != CAPMEM_OK) {
        return fail(in, "capmem_check of the second arena: %s", why);
    }
    return 0;
}

/* ---- setup ---------------------------------------------------------------------------- */

interp_t *interp_new(void)
{
    interp_t *in = calloc(1, sizeof(*in));
    if (in == NULL) {
        return NULL;
    }
    capmem_arena_attr_t at = CAPMEM_ARENA_ATTR_INIT;
    at.ram_size = (3ull << 20) + LIAR_SIZE; /* boot untypeds: 1 MiB, 2 MiB and the liar's */
    at.phys_base = 0x100000;
    at.cap_slots = 1u << 14;
    capmem_untyped_info_t boot[8];
    size_t nboot = 0;
    capmem_cap_t root = CAPMEM_CAP_NULL;
    capmem_alloc_t *liar = NULL;
    if (capmem_arena_create(&at, &in->arena) != CAPMEM_OK ||
        capmem_untyped_boot(in->arena, boot, 8, &nboot) != CAPMEM_OK || nboot != 3 ||
        boot[0].size_bits != 20 || boot[1].size_bits != 21 || boot[2].size_bits != LIAR_BITS ||
        (LIAR_UNBOUNDED ? capmem_alloc_create_custom(&liar_ops, &in->liar, &liar)
                        : capmem_alloc_create_custom_span(&liar_ops, &in->liar, 0, LIAR_SIZE,
                                                          &liar)) != CAPMEM_OK ||
        capmem_untyped_set_policy(in->arena, boot[2].cap, CAPMEM_UNTYPED_WATERMARK, liar) !=
            CAPMEM_OK) {
        capmem_alloc_destroy(liar);
        fprintf(stderr, "interp: setup failed: %s\n", capmem_last_error()->message);
        interp_free(in);
        return NULL;
    }
    if (capmem_ram_create(in->arena, &boot[1].cap, 1, NULL, &root) != CAPMEM_OK) {
        fprintf(stderr, "interp: RAM service failed: %s\n", capmem_last_error()->message);
        interp_free(in);
        return NULL;
    }
    capmem_ram_info_t ri;
    if (capmem_ram_info(in->arena, root, &ri) != CAPMEM_OK) {
        interp_free(in);
        return NULL;
    }
    int r = new_ent(in);
    ent_t *x = &in->e[r];
    x->alive = 1;
    x->kind = K_ACC;
    x->h = root;
    x->rights = CAPMEM_RIGHTS_ALL;
    x->quota = ri.quota;
    x->donation = ri.donation;
    x->caps_limit = ri.caps_limit;
    x->step = ri.upgrade_step;
    x->chunks = 1;
    in->root = r;
    int u = new_ent(in);
    x = &in->e[u];
    x->alive = 1;
    x->kind = K_UT;
    x->h = boot[0].cap;
    x->rights = CAPMEM_RIGHTS_ALL;
    x->bits = 20;
    x->policy = CAPMEM_UNTYPED_WATERMARK;
    in->liar_ent = new_ent(in);
    x = &in->e[in->liar_ent];
    x->alive = 1;
    x->kind = K_LUT;
    x->h = boot[2].cap;
    x->rights = CAPMEM_RIGHTS_ALL;
    x->bits = LIAR_BITS;
    x->base = boot[2].offset;
    in->liar.probe = in->arena;
    in->liar.h = boot[2].cap;
    in->base_caps = capmem_cap_count(in->arena) - 3;
    if (capmem_arena_set_event_handler(in->arena, on_event, in) != CAPMEM_OK || other_new(in)) {
        fprintf(stderr, "interp: setup failed: %s\n", capmem_last_error()->message);
        interp_free(in);
        return NULL;
    }
    return in;
}

void interp_free(interp_t *in)
{
    if (in != NULL) {
        in->liar.probe = NULL; /* its hooks may run while the arena goes */
        capmem_arena_destroy(in->arena);
        if (in->other != NULL) {
            capmem_arena_destroy(in->other);
        }
        free(in);
    }
}

int interp_step(interp_t *in, interp_src_t *src)
{
    in->ops++;
    in->op[0] = '\0';
    in->why[0] = '\0';
    in->failed = 0;
    in->nested = 0;
    in->used_other = 0;
    in->src = src;
    int rc = random_op(in, src);
    in->src = NULL;
    if (rc != 0 || in->failed) {
        return 1;
    }
    if (compare(in) != 0) {
        return 1;
    }
    return in->used_other ? other_compare(in) : 0;
}

const char *interp_why(const interp_t *in)
{
    return in->why;
}

const char *interp_last_op(const interp_t *in)
{
    return in->op;
}

uint64_t interp_ops(const interp_t *in)
{
    return in->ops;
}

uint64_t interp_refused(const interp_t *in)
{
    return in->refused;
}

void interp_stats(const interp_t *in, interp_stats_t *out)
{
    out->events = in->events;
    out->nested = in->nested_total;
    out->other_uses = in->other_uses;
    out->aimed = in->aimed;
    out->aimed_done = in->aimed_done;
    out->lies = in->liar.lies;
}

capmem_arena_t *interp_arena(const interp_t *in)
{
    return in->arena;
}

size_t interp_handles(const interp_t *in, interp_kind_t kind, capmem_cap_t *out, size_t max)
{
    static const int kinds[INTERP_KINDS] = {K_ACC,   K_DS,   K_DEP, K_FC, K_UT,
                                            K_FRAME, K_KOBJ, K_RM,  K_MDS};
    size_t n = 0;
    for (int i = 0; i < MAX_ENT; i++) {
        const ent_t *x = &in->e[i];
        if (x->alive && x->obj == i && x->kind == kinds[kind]) {
            if (n < max) {
                out[n] = x->h;
            }
            n++;
        }
    }
    return n;
}
