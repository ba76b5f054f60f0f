/* SPDX-License-Identifier: MIT */
/*
 * A model-checked driver of layer 8 (space banks and device hot-plug),
 * self-contained beside the interpreter: its own arena with a booted
 * kernel (strategy from the source), a bank service, and a small reference
 * model of the bank tree (limits, usage, owners). Each step draws one
 * operation, good or bad (counts outside 1..3, frees by the wrong bank or
 * of foreign objects, limits below usage, restricted capabilities, devices
 * beyond the reserve), predicts its error from the model, runs it, and
 * checks the answer, every bank's usage against the model, and
 * capmem_check. The property test drives it from seeds, the fuzzer from
 * bytes, through the interpreter's source (interp.h).
 */
#ifndef CAPMEM_TEST_BANK_OPS_H
#define CAPMEM_TEST_BANK_OPS_H

#include "interp.h"

typedef struct bank_ops bank_ops_t;

/* A world whose kernel strategy comes from @p src; NULL if host memory runs out. */
bank_ops_t *bank_ops_new(interp_src_t *src);
void bank_ops_free(bank_ops_t *b);
/* One operation: 0 when the library and the model agree, else 1 (bank_ops_why says how). */
int bank_ops_step(bank_ops_t *b, interp_src_t *src);
const char *bank_ops_why(const bank_ops_t *b);
/* Operations run, and of those the ones refused with the error the model predicted. */
uint64_t bank_ops_count(const bank_ops_t *b);
uint64_t bank_ops_refused(const bank_ops_t *b);

#endif
