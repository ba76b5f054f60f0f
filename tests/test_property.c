/* SPDX-License-Identifier: MIT */
/*
 * Model-based property test: seeded random sequences of every public
 * operation (tests/ops/interp.c), each checked against the reference model
 * and the invariant checker; event callbacks call back in with nested ops,
 * and handles of a second arena are mixed into the arguments.
 *
 * CAPMEM_SEED=<n> picks the first seed, CAPMEM_OPS=<count> the number of
 * operations in all. A failure prints the seed, the shortest failing prefix
 * (found by bisection: a seed's sequence is deterministic) and the command
 * that replays it.
 */
#define _POSIX_C_SOURCE 200809L
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "ops/bank_ops.h"
#include "ops/interp.h"
#include "property/real_pointers.h"
#include "support.h"

/*
 * Sanitizer builds run slower: a smaller default there (CAPMEM_OPS overrides).
 * The counts are of steps. Since the event callback runs about one nested op
 * per ten steps on top, and the liar and the second arena are checked too,
 * the counts were cut (from 1,000,000 and 200,000) to keep the run times.
 */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define DEFAULT_OPS 160000u
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define DEFAULT_OPS 160000u
#endif
#endif
#ifndef DEFAULT_OPS
#define DEFAULT_OPS 900000u
#endif

/* Operations per seed: long enough to build up state, short enough to bisect. */
#define OPS_PER_SEED 20000u

static uint64_t env_u64(const char *name, uint64_t dflt)
{
    const char *v = getenv(name);
    return v != NULL && *v != '\0' ? strtoull(v, NULL, 0) : dflt;
}

static interp_stats_t totals;

/* Run @p ops operations of @p seed; returns the 1-based index of the first failure, or 0. */
static uint64_t run_seed(uint64_t seed, uint64_t ops, int verbose)
{
    interp_t *in = interp_new();
    assert_non_null(in);
    interp_src_t src;
    interp_src_seed(&src, seed);
    uint64_t failed_at = 0;
    for (uint64_t i = 1; i <= ops; i++) {
        if (interp_step(in, &src) != 0) {
            failed_at = i;
            if (verbose) {
                fprintf(stderr, "op %" PRIu64 ": %s\n  %s\n", i, interp_last_op(in),
                        interp_why(in));
            }
            break;
        }
    }
    if (verbose) {
        interp_stats_t st;
        interp_stats(in, &st);
        totals.events += st.events;
        totals.nested += st.nested;
        totals.other_uses += st.other_uses;
        totals.aimed += st.aimed;
        totals.aimed_done += st.aimed_done;
        totals.lies += st.lies;
    }
    interp_free(in);
    return failed_at;
}

static void report(uint64_t seed, uint64_t failed_at)
{
    /* The failure is at op failed_at; print the prefix's tail for the reader. */
    fprintf(stderr,
            "seed=%" PRIu64 " ops=%" PRIu64 ": replay with CAPMEM_SEED=%" PRIu64
            " CAPMEM_OPS=%" PRIu64 " ./build-test/tests/test_property\n",
            seed, failed_at, seed, failed_at);
    interp_t *in = interp_new();
    interp_src_t src;
    interp_src_seed(&src, seed);
    uint64_t from = failed_at > 12 ? failed_at - 12 : 1;
    fprintf(stderr, "shortest failing prefix: %" PRIu64 " ops; its last ones:\n", failed_at);
    for (uint64_t i = 1; in != NULL && i <= failed_at; i++) {
        int bad = interp_step(in, &src);
        if (i >= from) {
            fprintf(stderr, "  %6" PRIu64 " %s%s\n", i, interp_last_op(in),
                    bad ? "  <-- fails" : "");
        }
        if (bad) {
            fprintf(stderr, "  %s\n", interp_why(in));
            break;
        }
    }
    interp_free(in);
}

/*
 * Shortest failing prefix. The first failing op of a deterministic sequence
 * already is the shortest prefix, but bisection over prefix lengths proves
 * it (a prefix fails iff it reaches that op) and would also catch a failure
 * that shows only at teardown.
 */
static uint64_t shortest_prefix(uint64_t seed, uint64_t ops)
{
    uint64_t lo = 0;
    uint64_t hi = ops;
    while (hi - lo > 1) {
        uint64_t mid = lo + (hi - lo) / 2;
        if (run_seed(seed, mid, 0) != 0) {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    return hi;
}

static void test_property_random_sequences_match_the_model(void **state)
{
    (void)state;
    uint64_t seed = env_u64("CAPMEM_SEED", 1);
    uint64_t total = env_u64("CAPMEM_OPS", test_under_valgrind() ? 18000 : DEFAULT_OPS);
    uint64_t done = 0;
    struct timespec t0;
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (; done < total; seed++) {
        uint64_t n = total - done < OPS_PER_SEED ? total - done : OPS_PER_SEED;
        uint64_t at = run_seed(seed, n, 1);
        if (at != 0) {
            uint64_t shortest = shortest_prefix(seed, at);
            report(seed, shortest);
            fail_msg("model mismatch: seed=%" PRIu64 " ops=%" PRIu64, seed, shortest);
        }
        done += n;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    printf("# %" PRIu64 " operations in %.2f s (%.0f ops/s), seeds %" PRIu64 "..%" PRIu64 "\n",
           done, s, (double)done / s, env_u64("CAPMEM_SEED", 1), seed - 1);
    printf("# %" PRIu64 " events delivered, %" PRIu64 " ops nested in event callbacks (%" PRIu64
           " aimed at the event's object or its account, %" PRIu64 " of them acted), %" PRIu64
           " handles of a second arena, %" PRIu64 " garbage answers of a custom policy\n",
           totals.events, totals.nested, totals.aimed, totals.aimed_done, totals.other_uses,
           totals.lies);
    /* The contracts are exercised, not just present. */
    assert_true(totals.nested > done / 100);
    assert_true(totals.aimed_done > done / 1000);
    assert_true(totals.other_uses > done / 1000);
    assert_true(totals.lies > done / 10000);
}

static void test_property_byte_inputs_replay_the_seed_corpus_style(void **state)
{
    (void)state;
    /* The fuzzer's byte decoding: all-zero, all-ones and counting inputs stay consistent. */
    uint8_t buf[4096];
    for (int pattern = 0; pattern < 3; pattern++) {
        for (size_t i = 0; i < sizeof(buf); i++) {
            buf[i] = pattern == 0 ? 0 : pattern == 1 ? 0xff : (uint8_t)(i * 37u);
        }
        interp_t *in = interp_new();
        assert_non_null(in);
        interp_src_t src;
        interp_src_bytes(&src, buf, sizeof(buf));
        while (!interp_src_done(&src)) {
            if (interp_step(in, &src) != 0) {
                fail_msg("pattern %d: %s: %s", pattern, interp_last_op(in), interp_why(in));
            }
        }
        interp_free(in);
    }
}

/* Real mode: pointer loads and stores agree with capmem_rm_read (tests/property/real_pointers.c).
 */
static void test_property_real_pointers_match_rm_read(void **state)
{
    (void)state;
    const uint64_t seeds = test_under_valgrind() ? 2 : 20;
    for (uint64_t seed = 1; seed <= seeds; seed++) {
        char why[512];
        const int r = real_pointers_run(seed, 2000, why, sizeof(why));
        if (r < 0) {
            skip();
        }
        if (r != 0) {
            fail_msg("real pointers, seed %" PRIu64 ": %s", seed, why);
        }
    }
}

/*
 * Layer 8 against its own model (tests/ops/bank_ops.c): seeded sequences
 * of bank and hot-plug operations, good and bad, under each kernel
 * strategy (the seed picks it). Every answer, every bank's usage and
 * capmem_check agree after every step.
 */
static void test_property_banks_and_hotplug_match_the_model(void **state)
{
    (void)state;
    const uint64_t seeds = test_under_valgrind() ? 6 : 60;
    const uint64_t steps = 400;
    uint64_t ops = 0;
    uint64_t refused = 0;
    for (uint64_t seed = env_u64("CAPMEM_SEED", 1), n = 0; n < seeds; seed++, n++) {
        interp_src_t src;
        interp_src_seed(&src, seed);
        bank_ops_t *b = bank_ops_new(&src);
        assert_non_null(b);
        for (uint64_t i = 1; i <= steps; i++) {
            if (bank_ops_step(b, &src) != 0) {
                fail_msg("banks: seed=%" PRIu64 " step %" PRIu64 ": %s", seed, i, bank_ops_why(b));
            }
        }
        ops += bank_ops_count(b);
        refused += bank_ops_refused(b);
        bank_ops_free(b);
    }
    printf("# banks: %" PRIu64 " operations, %" PRIu64 " refused as the model predicted\n", ops,
           refused);
    assert_true(refused > ops / 10); /* bad input is exercised, not just present */
    assert_true(ops - refused > ops / 4);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_property_random_sequences_match_the_model),
        cmocka_unit_test(test_property_byte_inputs_replay_the_seed_corpus_style),
        cmocka_unit_test(test_property_real_pointers_match_rm_read),
        cmocka_unit_test(test_property_banks_and_hotplug_match_the_model),
    };
    return cmocka_run_group_tests_name("property", tests, NULL, NULL);
}
