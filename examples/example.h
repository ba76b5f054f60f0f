/* SPDX-License-Identifier: MIT */
/*
 * What every example needs to stop loudly: TRY(call) exits with the
 * library's detail message when a call fails, EXPECT(cond) when something
 * the example shows does not hold. Define EXAMPLE_NAME before including it.
 */
#ifndef CAPMEM_EXAMPLE_H
#define CAPMEM_EXAMPLE_H

#include <capmem.h>
#include <stdio.h>
#include <stdlib.h>

#ifndef EXAMPLE_NAME
#error "define EXAMPLE_NAME before including example.h"
#endif

#define TRY(call)                                                                                  \
    do {                                                                                           \
        capmem_err_t err_ = (call);                                                                \
        if (err_ != CAPMEM_OK) {                                                                   \
            fprintf(stderr, "%s: %s failed: %s (%s)\n", EXAMPLE_NAME, #call,                       \
                    capmem_err_name(err_), capmem_last_error()->message);                          \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

#ifndef EXPECT
#define EXPECT(cond)                                                                               \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s: expectation failed at line %d: %s\n", EXAMPLE_NAME, __LINE__,     \
                    #cond);                                                                        \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)
#endif

#endif
