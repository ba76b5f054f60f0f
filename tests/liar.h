/* SPDX-License-Identifier: MIT */
/*
 * A policy that lies on request, for the tests of the layers that check a
 * placement policy's answers: next fit (examples/next_fit.c) underneath,
 * and before each alloc the test says how to answer. A recipe for it is
 * CAPMEM_ALLOC_POLICY_CUSTOM(&liar_ops, &ctl).
 */
#ifndef CAPMEM_TEST_LIAR_H
#define CAPMEM_TEST_LIAR_H

#include "capmem.h"

typedef enum liar_mode {
    LIAR_HONEST = 0,
    LIAR_OUT_OF_SPAN, /* the end of the span: the block leaves it */
    LIAR_MISALIGNED,  /* the honest answer + 1 */
    LIAR_OVERLAP,     /* the first block it handed out (which must still be live) */
    LIAR_NO_OFFSET,   /* OK without storing an offset */
} liar_mode_t;

typedef struct liar_ctl {
    liar_mode_t mode; /* for the next alloc; reset to HONEST after it */
    uint64_t first;   /* the answer to the first alloc */
    int allocs;       /* alloc hook calls */
} liar_ctl_t;

extern const capmem_alloc_ops_t liar_ops;
extern const capmem_alloc_ops_t next_fit_ops;

#endif
