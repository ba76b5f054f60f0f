/* SPDX-License-Identifier: MIT */
/*
 * The operation interpreter shared by the property test (PRNG-driven) and
 * the libFuzzer harness (byte-driven): it applies one decoded operation to
 * the library and to a small reference model, compares the result code and
 * every account's numbers with the model, and runs capmem_check().
 *
 * Operations draw their arguments from an interp_src_t: a PRNG stream or a
 * byte string (zeros once the bytes run out), so the same sequence is
 * replayed exactly from a seed or from a fuzzer input.
 */
#ifndef CAPMEM_TEST_INTERP_H
#define CAPMEM_TEST_INTERP_H

#include <stddef.h>
#include <stdint.h>

#include "capmem.h"

/* Where arguments come from. */
typedef struct interp_src {
    const uint8_t *data; /* byte mode when not NULL */
    size_t len;
    size_t pos;
    uint64_t rng; /* PRNG mode: splitmix64 state */
} interp_src_t;

void interp_src_seed(interp_src_t *src, uint64_t seed);
void interp_src_bytes(interp_src_t *src, const uint8_t *data, size_t len);
/* 1 once a byte source is used up (never for a PRNG). */
int interp_src_done(const interp_src_t *src);
/* A number in [0, n) from the source (0 when n <= 1); for drivers beside the interpreter. */
uint64_t interp_take(interp_src_t *src, uint64_t n);

typedef struct interp interp_t;

/* A fresh arena, RAM service and model. NULL if the host refused (message on stderr). */
interp_t *interp_new(void);
void interp_free(interp_t *in);

/*
 * Apply one operation. Returns 0 when the library agreed with the model and
 * every invariant held; otherwise non-zero, with the reason in interp_why().
 */
int interp_step(interp_t *in, interp_src_t *src);
const char *interp_why(const interp_t *in);
/* Text of the last operation applied (for failure reports). */
const char *interp_last_op(const interp_t *in);
/* Operations applied so far, and how many of them the library refused. */
uint64_t interp_ops(const interp_t *in);
uint64_t interp_refused(const interp_t *in);

/* The interpreter's arena (for tests that act on the state it built). */
capmem_arena_t *interp_arena(const interp_t *in);

/* Kinds of objects the model holds. */
typedef enum interp_kind {
    INTERP_ACCOUNT, /* the root account first */
    INTERP_DATASPACE,
    INTERP_DEPENDENT_ALIAS,
    INTERP_FIRST_CLASS_ALIAS,
    INTERP_UNTYPED, /* the world's untyped first */
    INTERP_FRAME,
    INTERP_KOBJ,
    INTERP_MAP,
    INTERP_MANAGED, /* a map's managed dataspace */
    INTERP_KINDS
} interp_kind_t;

/* Up to @p max live handles of originals of @p kind, in entry order; returns how many exist. */
size_t interp_handles(const interp_t *in, interp_kind_t kind, capmem_cap_t *out, size_t max);

/* What the steps exercised beyond their own op, for the test's summary line. */
typedef struct interp_stats {
    uint64_t events;     /* events delivered to the interpreter's callback */
    uint64_t nested;     /* ops the callback ran from inside event deliveries */
    uint64_t aimed;      /* nested ops aimed at the event's object or its account */
    uint64_t aimed_done; /* of those, the ones that closed, freed, deleted or revoked it */
    uint64_t other_uses; /* handle arguments replaced by a live handle of the second arena */
    uint64_t lies;       /* garbage answers of the custom policy the library had to refuse */
} interp_stats_t;
void interp_stats(const interp_t *in, interp_stats_t *out);

#endif
