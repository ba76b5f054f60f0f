/* SPDX-License-Identifier: MIT */
/*
 * policy_compare: one request sequence against every placement policy of
 * an untyped region (seL4's watermark, range, buddy, and a first-fit policy
 * written right here through the public vtable), printed as a table:
 * requests served, bytes wasted to alignment, largest free block, and the
 * first failure with its message.
 *
 * The sequence starts with the seL4 fragmentation case of docs/untyped.md
 * (0x400, 0x800, 0x1000, 0x400 in 0x2000 bytes), then deletes the first
 * object and keeps asking: watermark reuses nothing until the region is
 * childless, the others reuse at once.
 */
#include <capmem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- a user policy: first fit over a sorted array of used blocks ---------- */

#define FF_MAX 64

typedef struct first_fit {
    uint64_t size;
    uint64_t off[FF_MAX];
    uint64_t len[FF_MAX];
    int n;
} first_fit_t;

static capmem_err_t ff_alloc_at(void *self, uint64_t off, uint64_t size)
{
    first_fit_t *ff = self;
    int i = 0;
    while (i < ff->n && ff->off[i] + ff->len[i] <= off) {
        i++;
    }
    if (ff->n == FF_MAX || off + size > ff->size || (i < ff->n && ff->off[i] < off + size)) {
        return CAPMEM_E_NOT_ENOUGH_MEMORY;
    }
    memmove(&ff->off[i + 1], &ff->off[i], (size_t)(ff->n - i) * sizeof(uint64_t));
    memmove(&ff->len[i + 1], &ff->len[i], (size_t)(ff->n - i) * sizeof(uint64_t));
    ff->off[i] = off;
    ff->len[i] = size;
    ff->n++;
    return CAPMEM_OK;
}

static capmem_err_t ff_alloc(void *self, uint64_t size, uint64_t align, uint64_t *out)
{
    first_fit_t *ff = self;
    uint64_t cand = 0;
    for (int i = 0; i <= ff->n; i++) {
        uint64_t at = (cand + align - 1) & ~(align - 1);
        uint64_t limit = i < ff->n ? ff->off[i] : ff->size;
        if (at + size <= limit) {
            *out = at;
            return ff_alloc_at(self, at, size);
        }
        if (i < ff->n) {
            cand = ff->off[i] + ff->len[i];
        }
    }
    return CAPMEM_E_NOT_ENOUGH_MEMORY;
}

static capmem_err_t ff_free(void *self, uint64_t off, uint64_t size)
{
    first_fit_t *ff = self;
    for (int i = 0; i < ff->n; i++) {
        if (ff->off[i] == off && ff->len[i] == size) {
            memmove(&ff->off[i], &ff->off[i + 1], (size_t)(ff->n - i - 1) * sizeof(uint64_t));
            memmove(&ff->len[i], &ff->len[i + 1], (size_t)(ff->n - i - 1) * sizeof(uint64_t));
            ff->n--;
            return CAPMEM_OK;
        }
    }
    return CAPMEM_E_NOT_ALLOCATED;
}

static uint64_t ff_avail(const void *self)
{
    const first_fit_t *ff = self;
    uint64_t used = 0;
    for (int i = 0; i < ff->n; i++) {
        used += ff->len[i];
    }
    return ff->size - used;
}

static uint64_t ff_largest(const void *self)
{
    const first_fit_t *ff = self;
    uint64_t best = 0;
    uint64_t cand = 0;
    for (int i = 0; i <= ff->n; i++) {
        uint64_t limit = i < ff->n ? ff->off[i] : ff->size;
        best = limit - cand > best ? limit - cand : best;
        cand = i < ff->n ? ff->off[i] + ff->len[i] : cand;
    }
    return best;
}

static void ff_reset(void *self)
{
    ((first_fit_t *)self)->n = 0;
}

static const capmem_alloc_ops_t first_fit_ops = {
    .name = "first-fit (user)",
    .alloc = ff_alloc,
    .alloc_at = ff_alloc_at,
    .free = ff_free,
    .avail = ff_avail,
    .largest = ff_largest,
    .reset = ff_reset,
};

/* ---- the comparison --------------------------------------------------------- */

#define UT_BITS 13 /* a 0x2000-byte untyped, as in the seL4 discussion */

/* Requests in log2 bytes; 0 means "delete the first object". */
static const unsigned sequence[] = {10, 11, 12, 10, 0, 9, 9, 10};
#define NREQ (sizeof(sequence) / sizeof(sequence[0]))

typedef struct result {
    const char *policy;
    unsigned served;
    uint64_t used;
    uint64_t wasted;
    uint64_t largest;
    char failure[320];
} result_t;

static void die(const char *what)
{
    fprintf(stderr, "policy_compare: %s: %s\n", what, capmem_last_error()->message);
    exit(1);
}

static result_t run(capmem_arena_t *arena, capmem_cap_t parent, capmem_untyped_policy_t policy,
                    capmem_alloc_t *user)
{
    result_t r = {0};
    capmem_retype_attr_t at = CAPMEM_RETYPE_ATTR_INIT;
    at.type = CAPMEM_OBJ_UNTYPED;
    at.size_bits = UT_BITS;
    at.child_policy = policy;
    capmem_cap_t ut;
    if (capmem_untyped_retype(arena, parent, &at, &ut, 1) != CAPMEM_OK) {
        die("untyped");
    }
    if (user != NULL && capmem_untyped_set_policy(arena, ut, policy, user) != CAPMEM_OK) {
        die("user policy");
    }
    capmem_cap_t objs[NREQ];
    uint64_t sizes[NREQ];
    unsigned live = 0;
    for (size_t i = 0; i < NREQ; i++) {
        if (sequence[i] == 0) {
            if (live > 0 && capmem_cap_delete(arena, objs[0]) == CAPMEM_OK) {
                r.used -= sizes[0];
            }
            continue;
        }
        capmem_retype_attr_t kt = CAPMEM_RETYPE_ATTR_INIT;
        kt.type = CAPMEM_OBJ_KOBJ;
        kt.size_bits = sequence[i];
        capmem_err_t err = capmem_untyped_retype(arena, ut, &kt, &objs[live], 1);
        if (err == CAPMEM_OK) {
            sizes[live++] = 1ull << sequence[i];
            r.served++;
            r.used += 1ull << sequence[i];
        } else if (r.failure[0] == '\0') {
            snprintf(r.failure, sizeof(r.failure), "#%zu (0x%llx): %s", i + 1,
                     (unsigned long long)(1ull << sequence[i]), capmem_last_error()->message);
        }
    }
    capmem_untyped_info_t ui;
    if (capmem_untyped_info(arena, ut, &ui) != CAPMEM_OK) {
        die("info");
    }
    r.policy = ui.policy;
    /* Neither free nor in use: lost to alignment (watermark gaps, reclaimed nothing). */
    r.wasted = (1ull << UT_BITS) - ui.free_bytes - r.used;
    r.largest = ui.largest_free;
    char why[256];
    if (capmem_check(arena, why, sizeof(why)) != CAPMEM_OK) {
        fprintf(stderr, "policy_compare: invariant broken: %s\n", why);
        exit(1);
    }
    return r;
}

int main(void)
{
    capmem_arena_t *arena = NULL;
    capmem_arena_attr_t attr = CAPMEM_ARENA_ATTR_INIT;
    attr.ram_size = 1 << 20;
    attr.phys_base = 0;
    if (capmem_arena_create(&attr, &arena) != CAPMEM_OK) {
        die("arena");
    }
    capmem_untyped_info_t boot[4];
    size_t n = 0;
    if (capmem_untyped_boot(arena, boot, 4, &n) != CAPMEM_OK) {
        die("boot");
    }
    static first_fit_t ff = {.size = 1u << UT_BITS};
    capmem_alloc_t *user = NULL;
    if (capmem_alloc_create_custom_span(&first_fit_ops, &ff, 0, 1u << UT_BITS, &user) !=
        CAPMEM_OK) {
        die("custom policy");
    }
    result_t res[4] = {
        run(arena, boot[0].cap, CAPMEM_UNTYPED_WATERMARK, NULL),
        run(arena, boot[0].cap, CAPMEM_UNTYPED_RANGE, NULL),
        run(arena, boot[0].cap, CAPMEM_UNTYPED_BUDDY, NULL),
        run(arena, boot[0].cap, CAPMEM_UNTYPED_WATERMARK, user),
    };
    printf("Requests (bytes) in a 0x%x-byte untyped; \"del\" deletes the first object:\n  ",
           1u << UT_BITS);
    for (size_t i = 0; i < NREQ; i++) {
        if (sequence[i] == 0) {
            printf(" del");
        } else {
            printf(" 0x%llx", (unsigned long long)(1ull << sequence[i]));
        }
    }
    printf("\n\n%-18s %7s %10s %10s %10s  %s\n", "policy", "served", "in use", "wasted", "largest",
           "first failure");
    for (int i = 0; i < 4; i++) {
        printf("%-18s %4u/%-2u %#10llx %#10llx %#10llx  %s\n", res[i].policy, res[i].served,
               (unsigned)(NREQ - 1), (unsigned long long)res[i].used,
               (unsigned long long)res[i].wasted, (unsigned long long)res[i].largest,
               res[i].failure[0] ? res[i].failure : "-");
    }
    /* What the table must show, checked, so the example cannot rot. */
    int ok = 1;
    ok &= strstr(res[0].failure, "#4 (0x400): Untyped Retype: Insufficient memory (1 * 1024 "
                                 "bytes needed, 0 bytes available)") == NULL
              ? 0
              : 1;
    ok &= res[0].wasted > 0;  /* the watermark lost its alignment gap */
    ok &= res[1].wasted == 0; /* range loses nothing */
    ok &= res[2].wasted == 0; /* nor does buddy */
    ok &= res[1].served > res[0].served && res[3].served > res[0].served;
    capmem_arena_destroy(arena);
    if (!ok) {
        fprintf(stderr, "policy_compare: the table does not show what it should\n");
        return 1;
    }
    return 0;
}
