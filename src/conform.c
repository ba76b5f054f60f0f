/* SPDX-License-Identifier: MIT */
/*
 * The conformance suite for allocation policies (capmem/conform.h).
 *
 * A sequence is generated and run at the same time: each operation is drawn
 * from a splitmix64 stream (seeded per sequence) with the model of live
 * blocks at hand, so frees name live blocks, double frees name dead ones and
 * foreign frees name ranges no block covers. Operations are recorded with
 * concrete arguments, and a free names the operation whose block it frees;
 * every expectation is computed when the operation runs, from the model at
 * that moment, so any subsequence of a recorded sequence is itself a valid
 * sequence. That is what makes shrinking simple: remove chunks of
 * operations (halves, quarters, ... single ones) while the same property
 * still fails, then replay the survivor once more to print it.
 *
 * The hooks are driven directly (a->ops, a->self of an instance made by
 * capmem_alloc_create_policy), not through the generic calls: the wrapper
 * would refuse bad frees and overlaps before the policy saw them, and the
 * point is to see what the policy itself does.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc_internal.h"
#include "capmem/conform.h"

#define MAX_OPS 100000u
#define SHRINK_BUDGET 4000u /* replays per violation at most */

typedef enum op_kind {
    OP_ALLOC,         /* a: size, b: align */
    OP_ALLOC_AT,      /* a: offset, b: size */
    OP_FREE,          /* ref: the op whose block to free (live: must succeed; dead: must fail) */
    OP_FREE_FOREIGN,  /* a: offset, b: size: a range that no live block touches */
    OP_ALLOC_LARGEST, /* alloc(largest, 1) */
    OP_RESET,
} op_kind_t;

typedef struct op {
    op_kind_t kind;
    uint32_t ref;
    uint64_t a;
    uint64_t b;
} op_t;

/* What the policy did with an operation's block, for the ops that make one. */
typedef struct block {
    uint64_t off;
    uint64_t size;
    uint8_t made; /* the policy handed it out at some point */
    uint8_t live;
} block_t;

typedef struct run {
    const capmem_alloc_policy_t *policy;
    uint64_t base;
    uint64_t size;
    uint64_t granule;
    const op_t *ops;
    uint32_t n;
    const uint8_t *keep; /* NULL: every op */
    block_t *blk;        /* per op */
    /* the outcome */
    int failed_at; /* op index, -1: none */
    capmem_conform_property_t property;
    char what[200];
    /* printing */
    char *text;
    size_t text_len;
    size_t text_cap;
    uint32_t printed;
} run_t;

static uint64_t splitmix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

const char *capmem_conform_property_name(capmem_conform_property_t property)
{
    static const char *const names[CAPMEM_CONFORM_PROPERTIES] = {
        "inside-aligned", "no-overlap", "free", "counts", "largest", "reset", "check", "alloc-at",
    };
    return (unsigned)property < CAPMEM_CONFORM_PROPERTIES ? names[property] : "";
}

static void appendf(char *buf, size_t cap, size_t *len, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void appendf(char *buf, size_t cap, size_t *len, const char *fmt, ...)
{
    if (buf == NULL || *len + 1 >= cap) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(buf + *len, cap - *len, fmt, ap);
    va_end(ap);
    if (k > 0) {
        *len += (size_t)k < cap - *len ? (size_t)k : cap - *len - 1;
    }
}

static void violate(run_t *r, uint32_t i, capmem_conform_property_t p, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void violate(run_t *r, uint32_t i, capmem_conform_property_t p, const char *fmt, ...)
{
    if (r->failed_at >= 0) {
        return;
    }
    r->failed_at = (int)i;
    r->property = p;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->what, sizeof(r->what), fmt, ap);
    va_end(ap);
}

/* The live block of the model overlapping [off, off + size), or -1. */
static long overlapping(const run_t *r, uint32_t upto, uint64_t off, uint64_t size)
{
    for (uint32_t j = 0; j < upto; j++) {
        const block_t *b = &r->blk[j];
        if (b->live && off < b->off + b->size && b->off < off + size) {
            return (long)j;
        }
    }
    return -1;
}

typedef struct walk_sum {
    uint64_t free_bytes;
    uint64_t max_run;
    uint64_t run;
    uint64_t prev_end;
    uint64_t used;
    int prev_free;
} walk_sum_t;

static int sum_visit(uint64_t off, uint64_t size, capmem_block_state_t st, void *ctx)
{
    walk_sum_t *w = ctx;
    if (st == CAPMEM_BLOCK_FREE) {
        w->free_bytes += size;
        w->run = (w->prev_free && w->prev_end == off) ? w->run + size : size;
        w->max_run = w->run > w->max_run ? w->run : w->max_run;
    } else {
        w->used++;
    }
    w->prev_free = st == CAPMEM_BLOCK_FREE;
    w->prev_end = off + size;
    return 0;
}

static const char *kind_name(op_kind_t k)
{
    switch (k) {
    case OP_ALLOC:
        return "alloc";
    case OP_ALLOC_AT:
        return "alloc_at";
    case OP_FREE:
        return "free";
    case OP_FREE_FOREIGN:
        return "free (never handed out)";
    case OP_ALLOC_LARGEST:
        return "alloc (largest)";
    case OP_RESET:
    default:
        return "reset";
    }
}

/* Print op i as it ran: its arguments and the policy's answer. */
static void print_op(run_t *r, uint32_t i, uint64_t x, uint64_t y, capmem_err_t err, uint64_t off)
{
    if (r->text == NULL) {
        return;
    }
    const op_t *o = &r->ops[i];
    r->printed++;
    appendf(r->text, r->text_cap, &r->text_len, "    %3u. %s", r->printed, kind_name(o->kind));
    switch (o->kind) {
    case OP_ALLOC:
    case OP_ALLOC_LARGEST:
        appendf(r->text, r->text_cap, &r->text_len, "(size 0x%llx, align 0x%llx)",
                (unsigned long long)x, (unsigned long long)y);
        break;
    case OP_RESET:
        break;
    default:
        appendf(r->text, r->text_cap, &r->text_len, "(0x%llx, size 0x%llx)", (unsigned long long)x,
                (unsigned long long)y);
        break;
    }
    if (o->kind == OP_RESET) {
        appendf(r->text, r->text_cap, &r->text_len, "\n");
    } else if (err == CAPMEM_OK && (o->kind == OP_ALLOC || o->kind == OP_ALLOC_LARGEST)) {
        appendf(r->text, r->text_cap, &r->text_len, " = OK, 0x%llx\n", (unsigned long long)off);
    } else {
        appendf(r->text, r->text_cap, &r->text_len, " = %s\n", capmem_err_name(err));
    }
}

/* The checks every operation ends with: counts against a walk, and the check hook. */
static void after_op(run_t *r, uint32_t i, const capmem_alloc_ops_t *ops, void *self)
{
    if (r->failed_at >= 0) {
        return;
    }
    uint64_t avail = ops->avail(self);
    uint64_t largest = ops->largest(self);
    if (avail > r->size || largest > avail) {
        violate(r, i, CAPMEM_CONFORM_COUNTS, "avail 0x%llx, largest 0x%llx (span 0x%llx)",
                (unsigned long long)avail, (unsigned long long)largest,
                (unsigned long long)r->size);
        return;
    }
    if (ops->walk != NULL) {
        walk_sum_t w = {0};
        if (ops->walk(self, sum_visit, &w) == CAPMEM_OK && w.free_bytes != avail) {
            violate(r, i, CAPMEM_CONFORM_COUNTS,
                    "avail 0x%llx and largest 0x%llx, but a walk finds 0x%llx free bytes, the "
                    "largest run 0x%llx",
                    (unsigned long long)avail, (unsigned long long)largest,
                    (unsigned long long)w.free_bytes, (unsigned long long)w.max_run);
            return;
        }
    }
    if (ops->check != NULL) {
        char why[160] = "";
        if (ops->check(self, why, sizeof(why)) != CAPMEM_OK) {
            violate(r, i, CAPMEM_CONFORM_CHECK, "check failed: %s", why);
        }
    }
}

/* An alloc answer: inside, aligned, not overlapping; then it is live. */
static void took(run_t *r, uint32_t i, uint64_t off, uint64_t size, uint64_t align)
{
    uint64_t rel = off - r->base;
    if (off < r->base || rel > r->size || size > r->size - rel || off % align != 0) {
        violate(r, i, CAPMEM_CONFORM_INSIDE_ALIGNED,
                "answered 0x%llx for size 0x%llx, align 0x%llx: outside [0x%llx, 0x%llx) or "
                "misaligned",
                (unsigned long long)off, (unsigned long long)size, (unsigned long long)align,
                (unsigned long long)r->base, (unsigned long long)(r->base + r->size));
        return;
    }
    long j = overlapping(r, i, off, size);
    if (j >= 0) {
        violate(r, i, CAPMEM_CONFORM_NO_OVERLAP,
                "answered [0x%llx, +0x%llx), which overlaps the live block [0x%llx, +0x%llx)",
                (unsigned long long)off, (unsigned long long)size,
                (unsigned long long)r->blk[j].off, (unsigned long long)r->blk[j].size);
        return;
    }
    r->blk[i] = (block_t){.off = off, .size = size, .made = 1, .live = 1};
}

static void run_one(run_t *r, uint32_t i, const capmem_alloc_ops_t *ops, void *self)
{
    const op_t *o = &r->ops[i];
    uint64_t off = UINT64_MAX;
    capmem_err_t err = CAPMEM_OK;
    switch (o->kind) {
    case OP_ALLOC: {
        uint64_t largest = ops->largest(self);
        err = ops->alloc(self, o->a, o->b, &off);
        print_op(r, i, o->a, o->b, err, off);
        if (err == CAPMEM_OK) {
            took(r, i, off, o->a, o->b);
        } else if (o->b == 1 && largest >= o->a) {
            violate(r, i, CAPMEM_CONFORM_LARGEST,
                    "largest was 0x%llx, but alloc(0x%llx, 1) failed with %s",
                    (unsigned long long)largest, (unsigned long long)o->a, capmem_err_name(err));
        }
        break;
    }
    case OP_ALLOC_LARGEST: {
        uint64_t largest = ops->largest(self);
        if (largest == 0 || largest > r->size) {
            return; /* nothing to ask for (or a counts violation, found below) */
        }
        err = ops->alloc(self, largest, 1, &off);
        print_op(r, i, largest, 1, err, off);
        if (err == CAPMEM_OK) {
            took(r, i, off, largest, 1);
        } else {
            violate(r, i, CAPMEM_CONFORM_LARGEST,
                    "largest was 0x%llx, but alloc(0x%llx, 1) failed with %s",
                    (unsigned long long)largest, (unsigned long long)largest, capmem_err_name(err));
        }
        break;
    }
    case OP_ALLOC_AT: {
        long j = overlapping(r, i, o->a, o->b);
        uint64_t avail = ops->avail(self);
        err = ops->alloc_at(self, o->a, o->b);
        print_op(r, i, o->a, o->b, err, 0);
        if (err == CAPMEM_OK && j >= 0) {
            violate(r, i, CAPMEM_CONFORM_ALLOC_AT,
                    "alloc_at(0x%llx, 0x%llx) succeeded over the live block [0x%llx, +0x%llx)",
                    (unsigned long long)o->a, (unsigned long long)o->b,
                    (unsigned long long)r->blk[j].off, (unsigned long long)r->blk[j].size);
        } else if (err == CAPMEM_OK) {
            r->blk[i] = (block_t){.off = o->a, .size = o->b, .made = 1, .live = 1};
        } else if (ops->avail(self) != avail) {
            violate(r, i, CAPMEM_CONFORM_ALLOC_AT,
                    "a refused alloc_at changed avail from 0x%llx to 0x%llx",
                    (unsigned long long)avail, (unsigned long long)ops->avail(self));
        }
        break;
    }
    case OP_FREE: {
        block_t *b = &r->blk[o->ref];
        if (!b->made || (r->keep != NULL && !r->keep[o->ref])) {
            return;
        }
        if (!b->live && overlapping(r, i, b->off, b->size) >= 0) {
            /*
             * A double free where a new block now lies: a policy that rounds
             * sizes cannot tell it from a free of that block. No expectation.
             */
            return;
        }
        uint64_t avail = ops->avail(self);
        err = ops->free(self, b->off, b->size);
        print_op(r, i, b->off, b->size, err, 0);
        if (b->live && err != CAPMEM_OK) {
            violate(r, i, CAPMEM_CONFORM_FREE, "free of the live block [0x%llx, +0x%llx): %s",
                    (unsigned long long)b->off, (unsigned long long)b->size, capmem_err_name(err));
        } else if (!b->live && err == CAPMEM_OK) {
            violate(r, i, CAPMEM_CONFORM_FREE, "double free of [0x%llx, +0x%llx) succeeded",
                    (unsigned long long)b->off, (unsigned long long)b->size);
        } else if (!b->live && ops->avail(self) != avail) {
            violate(r, i, CAPMEM_CONFORM_FREE, "a refused double free changed avail");
        }
        b->live = 0;
        break;
    }
    case OP_FREE_FOREIGN: {
        if (overlapping(r, i, o->a, o->b) >= 0) {
            return; /* after shrinking it may touch a block: no expectation then */
        }
        uint64_t avail = ops->avail(self);
        err = ops->free(self, o->a, o->b);
        print_op(r, i, o->a, o->b, err, 0);
        if (err == CAPMEM_OK) {
            violate(r, i, CAPMEM_CONFORM_FREE,
                    "free of [0x%llx, +0x%llx), never handed out, succeeded",
                    (unsigned long long)o->a, (unsigned long long)o->b);
        } else if (ops->avail(self) != avail) {
            violate(r, i, CAPMEM_CONFORM_FREE, "a refused free changed avail");
        }
        break;
    }
    case OP_RESET:
    default: {
        ops->reset(self);
        print_op(r, i, 0, 0, CAPMEM_OK, 0);
        for (uint32_t j = 0; j < i; j++) {
            r->blk[j].live = 0;
            r->blk[j].made = 0; /* a free after reset has no expectation */
        }
        walk_sum_t w = {0};
        if (ops->walk != NULL) {
            (void)ops->walk(self, sum_visit, &w);
        }
        if (ops->avail(self) != r->size || w.used != 0) {
            violate(r, i, CAPMEM_CONFORM_RESET,
                    "after reset avail is 0x%llx of 0x%llx and a walk finds %llu used blocks",
                    (unsigned long long)ops->avail(self), (unsigned long long)r->size,
                    (unsigned long long)w.used);
        }
        break;
    }
    }
    after_op(r, i, ops, self);
}

/* Run the recorded ops (those kept) on a fresh instance. */
static capmem_err_t replay(run_t *r)
{
    capmem_alloc_t *a = NULL;
    capmem_err_t err = capmem_alloc_create_policy(r->policy, r->base, r->size, r->granule, &a);
    if (err != CAPMEM_OK) {
        return err;
    }
    memset(r->blk, 0, sizeof(block_t) * r->n);
    r->failed_at = -1;
    r->printed = 0;
    for (uint32_t i = 0; i < r->n && r->failed_at < 0; i++) {
        if (r->keep == NULL || r->keep[i]) {
            run_one(r, i, a->ops, a->self);
        }
    }
    capmem_alloc_destroy(a);
    return CAPMEM_OK;
}

static uint64_t gen_size(uint64_t *s, const run_t *r)
{
    uint64_t x = splitmix64(s);
    uint64_t k = x % 100;
    uint64_t v = splitmix64(s);
    if (k < 50) {
        return 1 + v % (4 * r->granule);
    }
    if (k < 85) {
        uint64_t units = r->size / r->granule / 32;
        return r->granule * (1 + v % (units > 0 ? units : 1));
    }
    return 1 + v % (r->size / 4 > 0 ? r->size / 4 : 1);
}

/* Draw op i from the stream, with the model (r->blk after ops 0..i-1) at hand. */
static void gen_op(run_t *r, op_t *ops, uint32_t i, uint64_t *s)
{
    op_t *o = &ops[i];
    uint64_t k = splitmix64(s) % 100;
    uint32_t live[64];
    uint32_t dead[64];
    uint32_t nl = 0;
    uint32_t nd = 0;
    for (uint32_t j = i; j-- > 0 && (nl < 64 || nd < 64);) {
        if (r->blk[j].live && nl < 64) {
            live[nl++] = j;
        } else if (r->blk[j].made && !r->blk[j].live && nd < 64) {
            dead[nd++] = j;
        }
    }
    if (k >= 45 && k < 75 && nl > 0) {
        *o = (op_t){.kind = OP_FREE, .ref = live[splitmix64(s) % nl]};
    } else if (k >= 75 && k < 81 && nd > 0) {
        *o = (op_t){.kind = OP_FREE, .ref = dead[splitmix64(s) % nd]};
    } else if (k >= 35 && k < 45) {
        uint64_t units = r->size / r->granule;
        uint64_t len = r->granule * (1 + splitmix64(s) % 8);
        uint64_t at = r->granule * (splitmix64(s) % units);
        if (len > r->size - at) {
            len = r->size - at;
        }
        *o = (op_t){.kind = OP_ALLOC_AT, .a = r->base + at, .b = len};
    } else if (k >= 81 && k < 88) {
        uint64_t units = r->size / r->granule;
        uint64_t at = r->granule * (splitmix64(s) % units);
        uint64_t len = r->granule * (1 + splitmix64(s) % 4);
        if (len > r->size - at) {
            len = r->size - at;
        }
        *o = (op_t){.kind = OP_FREE_FOREIGN, .a = r->base + at, .b = len};
    } else if (k >= 88 && k < 97) {
        *o = (op_t){.kind = OP_ALLOC_LARGEST};
    } else if (k >= 97 && k < 99) {
        *o = (op_t){.kind = OP_RESET};
    } else {
        uint64_t align = 1ull << (splitmix64(s) % 9);
        *o = (op_t){.kind = OP_ALLOC, .a = gen_size(s, r), .b = align};
    }
}

/* Generate and run one sequence; on a violation, r->failed_at and r->n = failed_at + 1. */
static capmem_err_t generate(run_t *r, op_t *ops, uint32_t nops, uint64_t seed)
{
    capmem_alloc_t *a = NULL;
    capmem_err_t err = capmem_alloc_create_policy(r->policy, r->base, r->size, r->granule, &a);
    if (err != CAPMEM_OK) {
        return err;
    }
    uint64_t s = seed;
    memset(r->blk, 0, sizeof(block_t) * nops);
    r->ops = ops;
    r->keep = NULL;
    r->failed_at = -1;
    r->text = NULL;
    uint32_t i = 0;
    for (; i < nops && r->failed_at < 0; i++) {
        gen_op(r, ops, i, &s);
        r->n = i + 1;
        run_one(r, i, a->ops, a->self);
    }
    r->n = i;
    capmem_alloc_destroy(a);
    return CAPMEM_OK;
}

/* Remove chunks of ops while property p still fails first. */
static void shrink(run_t *r, uint8_t *keep, capmem_conform_property_t p)
{
    uint32_t budget = SHRINK_BUDGET;
    memset(keep, 1, r->n);
    r->keep = keep;
    for (uint32_t chunk = r->n / 2 > 0 ? r->n / 2 : 1; chunk >= 1 && budget > 0;) {
        bool removed = false;
        for (uint32_t start = 0; start < r->n && budget > 0; start += chunk) {
            uint32_t end = start + chunk < r->n ? start + chunk : r->n;
            bool any = false;
            for (uint32_t j = start; j < end; j++) {
                any = any || keep[j];
            }
            if (!any) {
                continue;
            }
            uint8_t saved[64];
            uint32_t len = end - start;
            bool fits = len <= sizeof(saved);
            uint8_t *copy = fits ? saved : capmem__malloc(len);
            if (copy == NULL) {
                return;
            }
            memcpy(copy, keep + start, len);
            memset(keep + start, 0, len);
            budget--;
            if (replay(r) == CAPMEM_OK && r->failed_at >= 0 && r->property == p) {
                removed = true;
            } else {
                memcpy(keep + start, copy, len);
            }
            if (!fits) {
                capmem__free(copy);
            }
        }
        if (!removed) {
            if (chunk == 1) {
                break;
            }
            chunk /= 2;
        }
    }
}

static void report(capmem_conform_result_t *out, FILE *f, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Append @p text as it is (the printed sequence, which may be long). */
static void report_text(capmem_conform_result_t *out, FILE *f, const char *text)
{
    size_t len = strlen(out->report);
    appendf(out->report, sizeof(out->report), &len, "%s", text);
    if (f != NULL) {
        fputs(text, f);
        fflush(f);
    }
}

static void report(capmem_conform_result_t *out, FILE *f, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    size_t len = strlen(out->report);
    appendf(out->report, sizeof(out->report), &len, "%s", line);
    if (f != NULL) {
        fputs(line, f);
        fflush(f);
    }
}

capmem_err_t capmem_conform_run(const capmem_alloc_policy_t *policy,
                                const capmem_conform_attr_t *attr, capmem_conform_result_t *out)
{
    static const capmem_conform_attr_t defaults = CAPMEM_CONFORM_ATTR_INIT;
    const capmem_conform_attr_t *at = attr != NULL ? attr : &defaults;
    if (policy == NULL || out == NULL) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, __func__, "%s is NULL",
                            policy == NULL ? "policy" : "out");
    }
    if (at->ops > MAX_OPS) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, __func__,
                            "%u operations per sequence (at most %u)", at->ops, MAX_OPS);
    }
    run_t r = {.policy = policy,
               .base = at->base,
               .size = at->size != 0 ? at->size : 1ull << 20,
               .granule = at->granule != 0 ? at->granule : 16};
    const uint32_t nops = at->ops != 0 ? at->ops : 200;
    const uint32_t nseq = at->sequences != 0 ? at->sequences : 100;
    uint64_t seed = at->seed;
    if (seed == 0) {
        const char *env = getenv("CAPMEM_CONFORM_SEED");
        seed = env != NULL ? strtoull(env, NULL, 0) : 1;
    }
    /* The recipe must make an instance for this span before anything else. */
    capmem_alloc_t *probe = NULL;
    capmem_err_t err = capmem_alloc_create_policy(policy, r.base, r.size, r.granule, &probe);
    if (err != CAPMEM_OK) {
        capmem__detail()->function = __func__;
        return err;
    }
    const char *name = capmem_alloc_name(probe);
    char pname[64];
    snprintf(pname, sizeof(pname), "%s", name);
    capmem_alloc_destroy(probe);

    op_t *ops = capmem__calloc(nops, sizeof(op_t));
    r.blk = capmem__calloc(nops, sizeof(block_t));
    uint8_t *keep = capmem__calloc(nops, 1);
    r.text_cap = 4096;
    char *text = capmem__calloc(r.text_cap, 1);
    if (ops == NULL || r.blk == NULL || keep == NULL || text == NULL) {
        capmem__free(ops);
        capmem__free(r.blk);
        capmem__free(keep);
        capmem__free(text);
        return capmem__fail(CAPMEM_E_HOST_NOMEM, __func__, "no host memory for the suite");
    }
    memset(out, 0, sizeof(*out));
    out->seed = seed;
    report(out, at->report,
           "conformance of policy '%s' over [0x%llx, 0x%llx), granule 0x%llx: %u sequences of "
           "%u operations, seeds %llu..%llu\n",
           pname, (unsigned long long)r.base, (unsigned long long)(r.base + r.size),
           (unsigned long long)r.granule, nseq, nops, (unsigned long long)seed,
           (unsigned long long)(seed + nseq - 1));
    for (uint32_t q = 0; q < nseq && err == CAPMEM_OK; q++) {
        const uint64_t sseed = seed + q;
        uint64_t mixed = sseed;
        (void)splitmix64(&mixed); /* neighbouring seeds give unrelated streams */
        err = generate(&r, ops, nops, mixed);
        out->sequences++;
        out->ops += r.n;
        if (err != CAPMEM_OK || r.failed_at < 0) {
            continue;
        }
        const capmem_conform_property_t p = r.property;
        if (out->violated & (1u << p)) {
            continue; /* reported already */
        }
        const uint32_t original = r.n;
        shrink(&r, keep, p);
        /* Print the survivor: replay it once more with the text on. */
        r.text = text;
        r.text_len = 0;
        text[0] = '\0';
        err = replay(&r);
        r.text = NULL;
        if (err != CAPMEM_OK) {
            break;
        }
        if (r.failed_at < 0 || r.property != p) {
            /* A policy that is not deterministic: report the unshrunk failure's words. */
            memset(keep, 1, original);
        }
        capmem_conform_violation_t *v = &out->violation[p];
        out->violated |= 1u << p;
        v->seed = sseed;
        v->original = original;
        v->length = r.printed;
        snprintf(v->what, sizeof(v->what), "%s", r.what);
        report(out, at->report,
               "FAIL %s: %s\n  seed %llu (replay: attr.seed = %llu, attr.sequences = 1, attr.ops = "
               "%u); shortest sequence found, %u of the %u operations:\n",
               capmem_conform_property_name(p), r.what, (unsigned long long)sseed,
               (unsigned long long)sseed, nops, r.printed, original);
        report_text(out, at->report, text);
    }
    capmem__free(ops);
    capmem__free(r.blk);
    capmem__free(keep);
    capmem__free(text);
    if (err != CAPMEM_OK) {
        capmem__detail()->function = __func__;
        return err;
    }
    for (unsigned p = 0; p < CAPMEM_CONFORM_PROPERTIES; p++) {
        if (!(out->violated & (1u << p))) {
            report(out, at->report, "pass %s\n",
                   capmem_conform_property_name((capmem_conform_property_t)p));
        }
    }
    report(out, at->report, "%s: %u of %u properties violated (%llu operations in %u sequences)\n",
           out->violated == 0 ? "PASS" : "FAIL", (unsigned)__builtin_popcount(out->violated),
           (unsigned)CAPMEM_CONFORM_PROPERTIES, (unsigned long long)out->ops, out->sequences);
    if (out->violated != 0) {
        return capmem__fail(CAPMEM_E_POLICY, __func__,
                            "policy '%s' violates %u properties of the contract (see the report)",
                            pname, (unsigned)__builtin_popcount(out->violated));
    }
    return CAPMEM_OK;
}
