/* SPDX-License-Identifier: MIT */
/*
 * The quiz generator is splitmix64 exactly: the first outputs for seed 0
 * are the reference values of the published algorithm, so a quiz seed means
 * the same questions on every machine.
 */
#include <inttypes.h>
#include <stdio.h>

#include "../splitmix.h"

int main(void)
{
    static const uint64_t want[] = {0xe220a8397b1dcdafull, 0x6e789e6aa1b965f4ull,
                                    0x06c45d188009454full};
    splitmix_t s = {0};
    for (int i = 0; i < 3; i++) {
        uint64_t got = splitmix_next(&s);
        if (got != want[i]) {
            fprintf(stderr, "splitmix64 output %d: 0x%016" PRIx64 ", expected 0x%016" PRIx64 "\n",
                    i, got, want[i]);
            return 1;
        }
    }
    splitmix_t r = {42};
    for (int i = 0; i < 1000; i++) {
        uint64_t v = splitmix_range(&r, 3, 9);
        if (v < 3 || v > 9) {
            fprintf(stderr, "splitmix_range left [3, 9]: %" PRIu64 "\n", v);
            return 1;
        }
    }
    printf("splitmix64: reference outputs match\n");
    return 0;
}
