/* SPDX-License-Identifier: MIT */
/**
 * @file capmem/conform.h
 * @brief The conformance suite for allocation policies (layer "conform",
 * above alloc): the library's own contract for policies, run against your
 * ops table.
 *
 * capmem_conform_run() makes fresh instances of a policy recipe
 * (capmem/alloc.h: a built-in, or your capmem_alloc_ops_t with a create
 * hook) and drives its hooks directly, not through the checking wrapper, with
 * random operation sequences: allocations of many sizes and alignments,
 * allocations at exact offsets, frees of live blocks, double frees and frees
 * of ranges never handed out, allocations of exactly the largest block,
 * resets. After every operation it compares the policy with a model of the
 * blocks it handed out. Each property of the contract that a sequence breaks
 * is reported once, with the shortest sequence the suite could shrink the
 * failing one to (it removes operations while the same property still
 * fails), the seed that replays it, and every operation with its answer.
 *
 * The hooks only ever get what the generic calls promise (size > 0, align a
 * power of two, blocks inside the span), and sizes that are not multiples
 * of the granule, so a policy that rounds is exercised.
 *
 * Usable from any test framework: the return value says pass or fail, the
 * report is text (attr.report, or capmem_conform_result_t.report).
 *
 *     capmem_conform_attr_t at = CAPMEM_CONFORM_ATTR_INIT;
 *     capmem_conform_result_t res;
 *     capmem_alloc_policy_t p = CAPMEM_ALLOC_POLICY_CUSTOM(&next_fit_ops, NULL);
 *     assert(capmem_conform_run(&p, &at, &res) == CAPMEM_OK);
 */
#ifndef CAPMEM_CONFORM_H
#define CAPMEM_CONFORM_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "capmem/alloc.h"
#include "capmem/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/** The properties of the contract, one bit each in capmem_conform_result_t.violated. */
typedef enum capmem_conform_property {
    /** Every alloc answer lies inside the span and is aligned as asked. */
    CAPMEM_CONFORM_INSIDE_ALIGNED = 0,
    /** No answer overlaps a live block. */
    CAPMEM_CONFORM_NO_OVERLAP,
    /** A free of a live block succeeds; a double free or a free of a range never handed out is
     *  refused and changes nothing. */
    CAPMEM_CONFORM_FREE,
    /** avail equals the free bytes of a walk, largest is at most avail, avail never exceeds
     *  the span. (A largest above what can be served is CAPMEM_CONFORM_LARGEST.) */
    CAPMEM_CONFORM_COUNTS,
    /** If largest >= size, then alloc(size, 1) succeeds. */
    CAPMEM_CONFORM_LARGEST,
    /** After reset everything is free: avail is the span and a walk shows no used block. */
    CAPMEM_CONFORM_RESET,
    /** The check hook passes after every operation. */
    CAPMEM_CONFORM_CHECK,
    /** alloc_at succeeds only on free bytes, and a refused alloc_at changes nothing. */
    CAPMEM_CONFORM_ALLOC_AT,
    CAPMEM_CONFORM_PROPERTIES /**< the number of properties */
} capmem_conform_property_t;

/** Short name of a property ("inside-aligned", "no-overlap", ...); "" if unknown. */
CAPMEM_API CAPMEM_NODISCARD const char *
capmem_conform_property_name(capmem_conform_property_t property);

/** How to run the suite. Start from CAPMEM_CONFORM_ATTR_INIT. */
typedef struct capmem_conform_attr {
    /**
     * First seed; sequence i runs with seed + i, and each violation names
     * its sequence's seed, so `seed = that, sequences = 1` replays it.
     * 0: the environment variable CAPMEM_CONFORM_SEED if set, else 1.
     */
    uint64_t seed;
    uint32_t sequences; /**< random sequences (0: 100) */
    uint32_t ops;       /**< operations per sequence (0: 200; at most 100000) */
    uint64_t base;      /**< first offset of the span */
    uint64_t size;      /**< bytes in the span (0: 1 MiB) */
    uint64_t granule;   /**< granule passed to create (0: 16) */
    FILE *report;       /**< where to print the report as it runs (NULL: nowhere) */
} capmem_conform_attr_t;

#define CAPMEM_CONFORM_ATTR_INIT                                                                   \
    {                                                                                              \
        .seed = 0, .sequences = 0, .ops = 0, .base = 0x100000, .size = 0, .granule = 0,            \
        .report = NULL                                                                             \
    }

/** One violated property: the shortest sequence found. */
typedef struct capmem_conform_violation {
    uint64_t seed;     /**< the sequence's seed: replays it */
    uint32_t length;   /**< operations in the shrunk sequence */
    uint32_t original; /**< operations up to the failure before shrinking */
    char what[200];    /**< what went wrong, at the last operation */
} capmem_conform_violation_t;

/** The result of a run. */
typedef struct capmem_conform_result {
    uint32_t violated;  /**< bit (1u << property) per violated property */
    uint32_t sequences; /**< sequences run */
    uint64_t ops;       /**< operations run (shrinking not counted) */
    uint64_t seed;      /**< the first seed used */
    capmem_conform_violation_t violation[CAPMEM_CONFORM_PROPERTIES]; /**< where violated */
    char report[8192]; /**< the whole report, as printed to attr.report (cut if longer) */
} capmem_conform_result_t;

/**
 * Run the suite against @p policy. Host memory: a few small tables per
 * sequence, the policy's own. Runs single-threaded; the policy's hooks are
 * called from the calling thread only.
 *
 * @param attr  NULL means CAPMEM_CONFORM_ATTR_INIT
 * @retval CAPMEM_OK              every property held on every sequence.
 * @retval CAPMEM_E_POLICY        at least one property was violated: see
 *                                out->violated and out->report.
 * @retval CAPMEM_E_INVALID_ARGS  policy or out NULL; a recipe
 *                                capmem_alloc_create_policy() refuses for
 *                                the span; ops above 100000.
 * @retval CAPMEM_E_HOST_NOMEM    the suite's tables could not be allocated.
 * @retval other                  the policy's create hook failed: its code.
 */
CAPMEM_API capmem_err_t capmem_conform_run(const capmem_alloc_policy_t *policy,
                                           const capmem_conform_attr_t *attr,
                                           capmem_conform_result_t *out);

#ifdef __cplusplus
}
#endif

#endif /* CAPMEM_CONFORM_H */
