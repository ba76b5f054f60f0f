/* SPDX-License-Identifier: MIT */
/*
 * The hierarchical bitmap (src/hbm.h) under the range and buddy policies:
 * every query compared with a plain array of bools while bits are set and
 * cleared at random, at sizes that give one to four summary levels and
 * lengths that are and are not multiples of 64; and its check, which must
 * find a stray bit beyond the length and a summary bit that disagrees with
 * the word below it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "hbm.h"

typedef struct model {
    capmem__hbm_t h;
    uint64_t *words;
    bool *bit;
    uint64_t n;
} model_t;

static void model_init(model_t *m, uint64_t n)
{
    m->n = n;
    m->words = calloc(capmem__hbm_words(n), sizeof(uint64_t));
    m->bit = calloc(n, sizeof(bool));
    assert_non_null(m->words);
    assert_non_null(m->bit);
    capmem__hbm_init(&m->h, n, m->words);
}

static void model_fini(model_t *m)
{
    free(m->words);
    free(m->bit);
}

static uint64_t model_next(const model_t *m, uint64_t i)
{
    for (; i < m->n; i++) {
        if (m->bit[i]) {
            return i;
        }
    }
    return CAPMEM__HBM_NONE;
}

static uint64_t model_prev(const model_t *m, uint64_t i)
{
    if (i >= m->n) {
        i = m->n - 1;
    }
    for (;; i--) {
        if (m->bit[i]) {
            return i;
        }
        if (i == 0) {
            return CAPMEM__HBM_NONE;
        }
    }
}

static uint64_t rng_state = 0x243f6a8885a308d3ull;

static uint64_t rnd(uint64_t bound)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state % bound;
}

/* Every query at a few positions, and the whole-map ones. */
static void compare(const model_t *m, uint64_t count)
{
    assert_true(capmem__hbm_check(&m->h));
    assert_int_equal(capmem__hbm_count(&m->h), count);
    assert_int_equal(capmem__hbm_empty(&m->h), count == 0);
    assert_int_equal(capmem__hbm_first(&m->h), model_next(m, 0));
    for (int k = 0; k < 8; k++) {
        uint64_t i = rnd(m->n);
        assert_int_equal(capmem__hbm_test(&m->h, i), m->bit[i]);
        assert_int_equal(capmem__hbm_next(&m->h, i), model_next(m, i));
        assert_int_equal(capmem__hbm_prev(&m->h, i), model_prev(m, i));
    }
    /* Past the end: next finds nothing, prev starts from the last bit. */
    assert_int_equal(capmem__hbm_next(&m->h, m->n), CAPMEM__HBM_NONE);
    assert_int_equal(capmem__hbm_next(&m->h, UINT64_MAX - 1), CAPMEM__HBM_NONE);
    assert_int_equal(capmem__hbm_prev(&m->h, m->n), model_prev(m, m->n - 1));
    assert_int_equal(capmem__hbm_prev(&m->h, UINT64_MAX - 1), model_prev(m, m->n - 1));
}

static void test_hbm_queries_match_a_plain_array(void **state)
{
    (void)state;
    const uint64_t sizes[] = {1, 63, 64, 65, 4097, 64 * 64 * 64 + 5};
    for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
        model_t m;
        model_init(&m, sizes[s]);
        uint64_t count = 0;
        compare(&m, count);
        /* Sparse, then dense, then sparse again: summaries turn on and off. */
        const int rounds = 400;
        for (int r = 0; r < rounds; r++) {
            const bool set = r < rounds / 2 ? rnd(4) != 0 : rnd(4) == 0;
            /* Clustered positions make whole words fill and empty. */
            uint64_t i =
                rnd(8) == 0 ? rnd(m.n) : (rnd(m.n < 200 ? m.n : 200) + (m.n - 1) / 2) % m.n;
            if (set && !m.bit[i]) {
                capmem__hbm_set(&m.h, i);
                m.bit[i] = true;
                count++;
            } else if (!set && m.bit[i]) {
                capmem__hbm_clear(&m.h, i);
                m.bit[i] = false;
                count--;
            }
            compare(&m, count);
        }
        /* The last bit and the first bit, alone. */
        for (uint64_t i = 0; i < m.n; i++) {
            if (m.bit[i]) {
                capmem__hbm_clear(&m.h, i);
                m.bit[i] = false;
            }
        }
        compare(&m, 0);
        capmem__hbm_set(&m.h, m.n - 1);
        m.bit[m.n - 1] = true;
        compare(&m, 1);
        assert_int_equal(capmem__hbm_prev(&m.h, m.n - 1), m.n - 1);
        assert_int_equal(capmem__hbm_next(&m.h, 0), m.n - 1);
        capmem__hbm_clear(&m.h, m.n - 1);
        m.bit[m.n - 1] = false;
        capmem__hbm_set(&m.h, 0);
        m.bit[0] = true;
        compare(&m, 1);
        assert_int_equal(capmem__hbm_prev(&m.h, m.n - 1), 0);
        model_fini(&m);
    }
}

/* The check finds a bit beyond the length and a summary that disagrees. */
static void test_hbm_check_finds_stray_bits_and_wrong_summaries(void **state)
{
    (void)state;
    model_t m;
    model_init(&m, 4097); /* levels of 4097, 65 and 2 bits */
    assert_int_equal(m.h.levels, 3);
    capmem__hbm_set(&m.h, 100);
    assert_true(capmem__hbm_check(&m.h));

    /* Bit 4097 of level 0 is beyond the length. */
    m.h.lvl[0][4097 / 64] |= 1ull << (4097 % 64);
    assert_false(capmem__hbm_check(&m.h));
    m.h.lvl[0][4097 / 64] &= ~(1ull << (4097 % 64));
    assert_true(capmem__hbm_check(&m.h));

    /* Word 1 of level 0 holds bit 100, but its summary bit is cleared. */
    m.h.lvl[1][0] &= ~(1ull << 1);
    assert_false(capmem__hbm_check(&m.h));
    m.h.lvl[1][0] |= 1ull << 1;
    /* A summary bit for an empty word. */
    m.h.lvl[1][0] |= 1ull << 5;
    assert_false(capmem__hbm_check(&m.h));
    m.h.lvl[1][0] &= ~(1ull << 5);
    assert_true(capmem__hbm_check(&m.h));
    model_fini(&m);
}

/* Zero bits is laid out like one bit, so the map is never without a word. */
static void test_hbm_zero_length_is_laid_out_as_one_bit(void **state)
{
    (void)state;
    assert_int_equal(capmem__hbm_words(0), capmem__hbm_words(1));
    assert_int_equal(capmem__hbm_words(64), 1);
    assert_int_equal(capmem__hbm_words(65), 2 + 1);
    uint64_t w[1] = {0};
    capmem__hbm_t h;
    capmem__hbm_init(&h, 0, w);
    assert_int_equal(h.levels, 1);
    assert_true(capmem__hbm_empty(&h));
    assert_int_equal(capmem__hbm_first(&h), CAPMEM__HBM_NONE);
    assert_true(capmem__hbm_check(&h));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hbm_queries_match_a_plain_array),
        cmocka_unit_test(test_hbm_check_finds_stray_bits_and_wrong_summaries),
        cmocka_unit_test(test_hbm_zero_length_is_laid_out_as_one_bit),
    };
    return cmocka_run_group_tests_name("hbm", tests, NULL, NULL);
}
