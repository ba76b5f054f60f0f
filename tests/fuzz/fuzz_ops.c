/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer harness: the input bytes are an operation sequence for the
 * interpreter of tests/ops (the same one the property test drives from a
 * PRNG). Any model mismatch or invariant violation aborts, so libFuzzer
 * reports it as a crash and saves the input; ASan/UBSan and LeakSanitizer
 * catch memory errors and leaks.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "../ops/bank_ops.h"
#include "../ops/interp.h"

/* Bound the work per input so the fuzzer explores breadth. */
#define MAX_OPS 2000

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    interp_t *in = interp_new();
    if (in == NULL) {
        abort();
    }
    interp_src_t src;
    interp_src_bytes(&src, data, size);
    for (int i = 0; i < MAX_OPS && !interp_src_done(&src); i++) {
        if (interp_step(in, &src) != 0) {
            fprintf(stderr, "fuzz_ops: op %d: %s\n  %s\n", i + 1, interp_last_op(in),
                    interp_why(in));
            abort();
        }
    }
    interp_free(in);
    /* The same bytes again, as space-bank and hot-plug operations (tests/ops/bank_ops.c). */
    interp_src_bytes(&src, data, size);
    bank_ops_t *b = bank_ops_new(&src);
    if (b == NULL) {
        abort();
    }
    for (int i = 0; i < MAX_OPS && !interp_src_done(&src); i++) {
        if (bank_ops_step(b, &src) != 0) {
            fprintf(stderr, "fuzz_ops: bank op %d: %s\n", i + 1, bank_ops_why(b));
            abort();
        }
    }
    bank_ops_free(b);
    return 0;
}
