/* SPDX-License-Identifier: MIT */
/*
 * capmem quiz: questions in the manner of OSTEP's homework simulators. A
 * seed picks the numbers (splitmix64, so every machine prints the same
 * questions for the same seed); -c prints the answers, each computed by
 * running the library on exactly the situation the question describes,
 * never by a formula kept beside it.
 */
#include "quiz.h"

#include <capmem.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "splitmix.h"

#ifndef CAPMEM_TOOL_KERNEL
#define CAPMEM_TOOL_KERNEL 0 /* meson defines it when the library has the kernel layer */
#endif

typedef struct quiz {
    splitmix_t rng;
    int answers;        /* -c */
    const char *policy; /* -p, or NULL for the topic's default */
    FILE *out;
    int failed; /* the library refused to set a question up: a bug, reported */
} quiz_t;

typedef struct topic {
    const char *name;
    const char *about;
    const char *const *policies; /* NULL: the topic has no -p */
    void (*ask)(quiz_t *q, int number, const char *policy);
} topic_t;

static uint64_t rnd(quiz_t *q, uint64_t lo, uint64_t hi)
{
    return splitmix_range(&q->rng, lo, hi);
}

#define QTRY(q, call)                                                                              \
    do {                                                                                           \
        capmem_err_t e_ = (call);                                                                  \
        if (e_ != CAPMEM_OK) {                                                                     \
            fprintf(stderr, "capmem quiz: %s failed: %s (%s)\n", #call, capmem_err_name(e_),       \
                    capmem_last_error()->message);                                                 \
            (q)->failed = 1;                                                                       \
            goto done;                                                                             \
        }                                                                                          \
    } while (0)

/* A small machine for one question: 64 MiB of RAM (touched only as used) in 4 KiB pages. */
static capmem_arena_t *machine(quiz_t *q)
{
    capmem_arena_attr_t a = CAPMEM_ARENA_ATTR_INIT;
    a.ram_size = 64ull << 20;
    a.cap_slots = 1u << 16;
    capmem_arena_t *arena = NULL;
    if (capmem_arena_create(&a, &arena) != CAPMEM_OK) {
        fprintf(stderr, "capmem quiz: cannot create an arena: %s\n", capmem_last_error()->message);
        q->failed = 1;
        return NULL;
    }
    return arena;
}

/* Without --answers a question ends with a blank line and nothing more: true then. */
static bool questions_only(quiz_t *q)
{
    if (q->answers) {
        return false;
    }
    fprintf(q->out, "\n");
    return true;
}

/* The arena an answer runs in (machine()), or NULL when only questions are asked. */
static capmem_arena_t *answer_machine(quiz_t *q)
{
    return questions_only(q) ? NULL : machine(q);
}

static const char *kib(uint64_t v, char buf[32])
{
    if (v % (1ull << 20) == 0 && v != 0) {
        snprintf(buf, 32, "%" PRIu64 " MiB", v >> 20);
    } else if (v % 1024 == 0) {
        snprintf(buf, 32, "%" PRIu64 " KiB", v >> 10);
    } else {
        snprintf(buf, 32, "%" PRIu64 " B", v);
    }
    return buf;
}

/* ------------------------------------------------------------------------ */
/* retype: seL4's watermark, and what range or buddy would do */

static const char *const retype_policies[] = {"watermark", "range", "buddy", NULL};

static int policy_index(const char *const *list, const char *p)
{
    for (int i = 0; list[i] != NULL; i++) {
        if (strcmp(list[i], p) == 0) {
            return i;
        }
    }
    return 0;
}

/* Retype the sequence under @p policy; print each placement or failure. */
static void retype_run(quiz_t *q, unsigned region_bits, const unsigned *bits, int n, int policy,
                       int verbose)
{
    capmem_arena_t *arena = machine(q);
    if (arena == NULL) {
        return;
    }
    capmem_untyped_info_t boot[8];
    size_t nboot = 0;
    QTRY(q, capmem_untyped_boot(arena, boot, 8, &nboot));
    capmem_retype_attr_t ra = CAPMEM_RETYPE_ATTR_INIT;
    ra.type = CAPMEM_OBJ_UNTYPED;
    ra.size_bits = region_bits;
    ra.child_policy = (capmem_untyped_policy_t)policy;
    capmem_cap_t ut;
    QTRY(q, capmem_untyped_retype(arena, boot[0].cap, &ra, &ut, 1));
    capmem_untyped_info_t ui;
    QTRY(q, capmem_untyped_info(arena, ut, &ui));
    if (verbose) {
        fprintf(q->out, "  %s:\n", retype_policies[policy]);
    } else {
        fprintf(q->out, "  %-9s:", retype_policies[policy]);
    }
    for (int i = 0; i < n; i++) {
        capmem_retype_attr_t ka = CAPMEM_RETYPE_ATTR_INIT;
        ka.type = CAPMEM_OBJ_KOBJ;
        ka.size_bits = bits[i];
        capmem_cap_t obj;
        capmem_err_t err = capmem_untyped_retype(arena, ut, &ka, &obj, 1);
        char name = (char)('a' + i);
        if (err == CAPMEM_OK) {
            capmem_object_info_t oi;
            QTRY(q, capmem_object_info(arena, obj, &oi));
            if (verbose) {
                fprintf(q->out, "    %c (0x%llx) at offset 0x%" PRIx64 "\n", name, 1ull << bits[i],
                        oi.offset - ui.offset);
            } else {
                fprintf(q->out, " %c@0x%" PRIx64, name, oi.offset - ui.offset);
            }
        } else if (verbose) {
            fprintf(q->out, "    %c (0x%llx) fails: %s\n      %s\n", name, 1ull << bits[i],
                    capmem_err_name(err), capmem_last_error()->message);
        } else {
            fprintf(q->out, " %c fails", name);
        }
    }
    if (!verbose) {
        fprintf(q->out, "\n");
    }
    if (verbose) {
        QTRY(q, capmem_untyped_info(arena, ut, &ui));
        if (policy == CAPMEM_UNTYPED_WATERMARK) {
            fprintf(q->out, "  free index (watermark) at the end: 0x%" PRIx64 "\n", ui.watermark);
        }
        fprintf(q->out, "  bytes free at the end: 0x%" PRIx64 ", largest block: 0x%" PRIx64 "\n",
                ui.free_bytes, ui.largest_free);
    }
done:
    capmem_arena_destroy(arena);
}

static void ask_retype(quiz_t *q, int number, const char *policy)
{
    int p = policy_index(retype_policies, policy);
    unsigned region_bits = (unsigned)rnd(q, 12, 14);
    int n = (int)rnd(q, 4, 6);
    unsigned bits[6];
    for (int i = 0; i < n; i++) {
        bits[i] = (unsigned)rnd(q, 8, region_bits - 1);
    }
    fprintf(q->out, "Question %d.\n", number);
    fprintf(q->out,
            "An untyped region of 0x%llx bytes uses the %s policy. Kernel objects of these\n"
            "sizes are retyped from it, one per call, in this order:\n   ",
            1ull << region_bits, retype_policies[p]);
    for (int i = 0; i < n; i++) {
        fprintf(q->out, " %c: 0x%llx", 'a' + i, 1ull << bits[i]);
    }
    fprintf(q->out,
            "\n"
            "  (a) At which offset does each object go? If a call fails, which error is it,\n"
            "      with which numbers in seL4's message?\n");
    if (p == 0) {
        fprintf(q->out, "  (b) Where is the free index (the watermark) after the last call?\n"
                        "  (c) Where would the range and the buddy policies put each object?\n");
    } else {
        fprintf(q->out, "  (b) How many bytes are free at the end, and how large is the largest "
                        "block?\n"
                        "  (c) Where would seL4's watermark policy put each object?\n");
    }
    if (questions_only(q)) {
        return;
    }
    fprintf(q->out, "Answer %d.\n", number);
    retype_run(q, region_bits, bits, n, p, 1);
    fprintf(q->out, "  instead:\n");
    for (int other = 0; other < 3; other++) {
        if (other != p) {
            retype_run(q, region_bits, bits, n, other, 0);
        }
    }
    fprintf(q->out, "\n");
}

/* ------------------------------------------------------------------------ */
/* buddy: the pieces left */

static int print_free_block(uint64_t offset, uint64_t size, capmem_block_state_t state, void *ctx)
{
    quiz_t *q = ctx;
    if (state == CAPMEM_BLOCK_FREE) {
        fprintf(q->out, " 0x%" PRIx64 "@0x%" PRIx64, size, offset);
    }
    return 0;
}

static void ask_buddy(quiz_t *q, int number, const char *policy)
{
    (void)policy;
    unsigned region_bits = (unsigned)rnd(q, 12, 14);
    int n = (int)rnd(q, 4, 7);
    uint64_t size[7];
    int free_of[7]; /* step i frees the block of step free_of[i], or -1: allocates size[i] */
    int live[7] = {0};
    for (int i = 0; i < n; i++) {
        free_of[i] = -1;
        if (i >= 2 && rnd(q, 0, 3) == 0) {
            int pick = (int)rnd(q, 0, (uint64_t)i - 1);
            if (free_of[pick] < 0 && live[pick]) {
                free_of[i] = pick;
                live[pick] = 0;
                continue;
            }
        }
        size[i] = 1ull << rnd(q, 8, region_bits - 2);
        live[i] = 1;
    }
    fprintf(q->out, "Question %d.\n", number);
    fprintf(q->out,
            "A buddy allocator manages 0x%llx bytes in power-of-two blocks of at least 0x100.\n"
            "These requests arrive in order (each block is aligned to its size):\n",
            1ull << region_bits);
    for (int i = 0; i < n; i++) {
        if (free_of[i] >= 0) {
            fprintf(q->out, "    %c: free %c\n", 'a' + i, 'a' + free_of[i]);
        } else {
            fprintf(q->out, "    %c: allocate 0x%" PRIx64 "\n", 'a' + i, size[i]);
        }
    }
    fprintf(q->out, "  (a) At which offset does each allocation go?\n"
                    "  (b) Which free blocks (size@offset) are left at the end?\n");
    if (questions_only(q)) {
        return;
    }
    capmem_alloc_t *a = NULL;
    uint64_t off[7] = {0};
    int ok[7] = {0};
    QTRY(q, capmem_alloc_create_buddy(0, 1ull << region_bits, 8, region_bits, &a));
    fprintf(q->out, "Answer %d.\n ", number);
    for (int i = 0; i < n; i++) {
        if (free_of[i] >= 0) {
            int j = free_of[i];
            if (ok[j]) {
                QTRY(q, capmem_alloc_free(a, off[j], size[j]));
            }
            fprintf(q->out, " %c: freed", 'a' + i);
        } else if (capmem_alloc_alloc(a, size[i], size[i], &off[i]) == CAPMEM_OK) {
            ok[i] = 1;
            fprintf(q->out, " %c@0x%" PRIx64, 'a' + i, off[i]);
        } else {
            fprintf(q->out, " %c fails (%s)", 'a' + i, capmem_err_name(capmem_last_error()->code));
        }
    }
    fprintf(q->out, "\n  free blocks left:");
    QTRY(q, capmem_alloc_walk(a, print_free_block, q));
    fprintf(q->out, "\n\n");
done:
    capmem_alloc_destroy(a);
}

/* ------------------------------------------------------------------------ */
/* donation: how many records a donation pays for */

static const char *const donation_policies[] = {"plain", "expanding", NULL};

static void ask_donation(quiz_t *q, int number, const char *policy)
{
    int expanding = policy_index(donation_policies, policy) == 1;
    uint64_t pages = rnd(q, 2, 16);
    uint64_t donation = pages * 4096;
    uint64_t step = rnd(q, 1, 4) * 4096;
    uint64_t ups = expanding ? 0 : rnd(q, 0, 3);
    uint64_t want = expanding ? rnd(q, 100, 1500) : 0;
    char b1[32], b2[32];
    fprintf(q->out, "Question %d.\n", number);
    fprintf(q->out,
            "A parent opens a RAM session with a donation of %s (pages of 4 KiB, records of\n"
            "64 bytes; the session's own record takes 3 slots, each donated chunk 1 header).\n",
            kib(donation, b1));
    if (expanding) {
        fprintf(q->out,
                "The client is expanding, with an upgrade step of %s. It allocates %" PRIu64
                " dataspaces\nof one page each.\n"
                "  (a) How many upgrades does it make?\n"
                "  (b) How much of its own quota went into its donation at the end?\n",
                kib(step, b2), want);
    } else {
        if (ups == 0) {
            fprintf(q->out, "The parent does not upgrade the session.\n");
        } else {
            fprintf(q->out, "Then the parent upgrades the session %" PRIu64 " time%s by %s.\n", ups,
                    ups == 1 ? "" : "s", kib(step, b2));
        }
        fprintf(q->out, "  (a) How many one-page dataspaces can the client allocate before\n"
                        "      OUT_OF_METADATA?\n"
                        "  (b) How much of the parent's quota did the session cost, donation and\n"
                        "      upgrades together?\n");
    }
    capmem_arena_t *arena = answer_machine(q);
    if (arena == NULL) {
        return;
    }
    capmem_cap_t root, s;
    QTRY(q, capmem_ram_boot(arena, NULL, &root));
    capmem_ram_info_t before, in;
    QTRY(q, capmem_ram_info(arena, root, &before));
    capmem_ram_open_attr_t oa = CAPMEM_RAM_OPEN_ATTR_INIT;
    oa.donation = donation;
    oa.quota = 8ull << 20;
    oa.caps = 4096;
    oa.upgrade_step = step;
    oa.flags = expanding ? CAPMEM_RAM_EXPANDING : 0;
    QTRY(q, capmem_ram_open(arena, root, &oa, &s));
    for (uint64_t i = 0; i < ups; i++) {
        QTRY(q, capmem_ram_upgrade(arena, s, root, step));
    }
    uint64_t count = 0;
    capmem_err_t err = CAPMEM_OK;
    for (;;) {
        if (expanding && count == want) {
            break;
        }
        capmem_cap_t ds;
        err = capmem_ram_alloc(arena, s, 4096, &ds);
        if (err != CAPMEM_OK) {
            break;
        }
        count++;
    }
    QTRY(q, capmem_ram_info(arena, s, &in));
    fprintf(q->out, "Answer %d.\n", number);
    if (expanding) {
        fprintf(q->out,
                "  (a) %" PRIu64 " upgrade%s (the records fill up at %" PRIu64
                " dataspaces; each step adds %" PRIu64 ")\n",
                in.upgrades, in.upgrades == 1 ? "" : "s",
                donation / CAPMEM_RAM_RECORD_SIZE - 1 - CAPMEM_RAM_SESSION_SLOTS,
                (uint64_t)CAPMEM_RAM_RECORDS_PER_UPGRADE(step));
        fprintf(q->out, "  (b) %s (its donation is now %s)\n", kib(in.upgrades * step, b1),
                kib(in.donation, b2));
    } else {
        capmem_ram_info_t after;
        QTRY(q, capmem_ram_info(arena, root, &after));
        fprintf(q->out, "  (a) %" PRIu64 " dataspaces, then %s\n", count, capmem_err_name(err));
        fprintf(q->out,
                "  (b) %s (the donation is now %s; the 8 MiB of quota it was given\n"
                "      come on top)\n",
                kib(before.avail - after.avail - oa.quota, b1), kib(in.donation, b2));
    }
    fprintf(q->out, "\n");
done:
    capmem_arena_destroy(arena);
}

/* ------------------------------------------------------------------------ */
/* quota: who holds what after opens, transfers and closes */

static void ask_quota(quiz_t *q, int number, const char *policy)
{
    (void)policy;
    static const char *const names[] = {"timer", "fs", "gui"};
    uint64_t init_quota = rnd(q, 8, 16) << 20;
    uint64_t quota[3], donation[3];
    for (int i = 0; i < 3; i++) {
        quota[i] = rnd(q, 1, 8) * (256u << 10);
        donation[i] = rnd(q, 1, 4) * (16u << 10);
    }
    int to = (int)rnd(q, 0, 2);
    uint64_t give = rnd(q, 1, 4) * (128u << 10);
    int back = (int)rnd(q, 0, 2);
    uint64_t back_bytes = rnd(q, 1, 2) * (64u << 10);
    int closed = (int)rnd(q, 0, 2);
    char b1[32], b2[32];
    fprintf(q->out, "Question %d.\n", number);
    fprintf(q->out, "init has a quota of %s (its own donation is paid already). It opens:\n",
            kib(init_quota, b1));
    for (int i = 0; i < 3; i++) {
        fprintf(q->out, "    %-5s quota %-8s donation %s\n", names[i], kib(quota[i], b1),
                kib(donation[i], b2));
    }
    fprintf(q->out, "then transfers %s to %s, %s transfers %s back to init,\n", kib(give, b1),
            names[to], names[back], kib(back_bytes, b2));
    fprintf(q->out,
            "and %s closes.\n"
            "  What is the quota of init and of each child still open at the end?\n",
            names[closed]);
    capmem_arena_t *arena = answer_machine(q);
    if (arena == NULL) {
        return;
    }
    capmem_cap_t root, init, child[3];
    QTRY(q, capmem_ram_boot(arena, NULL, &root));
    capmem_ram_open_attr_t oa = CAPMEM_RAM_OPEN_ATTR_INIT;
    oa.quota = init_quota;
    oa.caps = 2048;
    oa.label = "init";
    QTRY(q, capmem_ram_open(arena, root, &oa, &init));
    for (int i = 0; i < 3; i++) {
        capmem_ram_open_attr_t ca = CAPMEM_RAM_OPEN_ATTR_INIT;
        ca.quota = quota[i];
        ca.donation = donation[i];
        ca.caps = 64;
        ca.label = names[i];
        QTRY(q, capmem_ram_open(arena, init, &ca, &child[i]));
    }
    QTRY(q, capmem_ram_transfer(arena, init, child[to], give));
    capmem_err_t err = capmem_ram_transfer(arena, child[back], init, back_bytes);
    QTRY(q, capmem_ram_close(arena, child[closed]));
    fprintf(q->out, "Answer %d.\n", number);
    capmem_ram_info_t in;
    QTRY(q, capmem_ram_info(arena, init, &in));
    fprintf(q->out, "  init   quota %s\n", kib(in.quota, b1));
    for (int i = 0; i < 3; i++) {
        if (i == closed) {
            continue;
        }
        QTRY(q, capmem_ram_info(arena, child[i], &in));
        fprintf(q->out, "  %-5s  quota %s\n", names[i], kib(in.quota, b1));
    }
    if (err != CAPMEM_OK) {
        fprintf(q->out, "  (%s could not give %s back: %s)\n", names[back], kib(back_bytes, b1),
                capmem_err_name(err));
    }
    fprintf(q->out, "\n");
done:
    capmem_arena_destroy(arena);
}

/* ------------------------------------------------------------------------ */
/* alias: who is charged for which pages after frees */

static const char *const alias_policies[] = {"mixed", "dependent", "first-class", NULL};

static void ask_alias(quiz_t *q, int number, const char *policy)
{
    int mode = policy_index(alias_policies, policy);
    uint64_t pages = rnd(q, 4, 8);
    int n = (int)rnd(q, 2, 3);
    uint64_t first[3], count[3];
    int fc[3];
    for (int i = 0; i < n; i++) {
        first[i] = rnd(q, 0, pages - 1);
        count[i] = rnd(q, 1, pages - first[i]);
        fc[i] = mode == 0 ? (int)rnd(q, 0, 1) : mode == 2;
    }
    /* The order of the frees: the original (index n) and the aliases, shuffled. */
    int order[4];
    for (int i = 0; i <= n; i++) {
        order[i] = i;
    }
    for (int i = n; i > 0; i--) {
        int j = (int)rnd(q, 0, (uint64_t)i);
        int t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    fprintf(q->out, "Question %d.\n", number);
    fprintf(q->out,
            "Account A allocates a dataspace D of %" PRIu64 " pages (4 KiB each). Account B makes\n"
            "these aliases of D (B pays for their records):\n",
            pages);
    for (int i = 0; i < n; i++) {
        fprintf(q->out, "    %c: pages %" PRIu64 "..%" PRIu64 ", %s\n", 'x' + i, first[i],
                first[i] + count[i] - 1, fc[i] ? "first-class" : "dependent");
    }
    fprintf(q->out, "Then these are freed in this order:");
    for (int i = 0; i <= n; i++) {
        fprintf(q->out, " %c", order[i] == n ? 'D' : 'x' + order[i]);
    }
    fprintf(q->out, "\n  After each free: how many bytes is A charged for (used), and how many of\n"
                    "  them only first-class aliases keep alive (lent)? Which frees fail?\n");
    capmem_arena_t *arena = answer_machine(q);
    if (arena == NULL) {
        return;
    }
    capmem_cap_t root, A, B, D, al[3];
    QTRY(q, capmem_ram_boot(arena, NULL, &root));
    capmem_ram_open_attr_t oa = CAPMEM_RAM_OPEN_ATTR_INIT;
    oa.quota = 1u << 20;
    QTRY(q, capmem_ram_open(arena, root, &oa, &A));
    QTRY(q, capmem_ram_open(arena, root, &oa, &B));
    QTRY(q, capmem_ram_alloc(arena, A, pages * 4096, &D));
    for (int i = 0; i < n; i++) {
        capmem_alias_attr_t aa = CAPMEM_ALIAS_ATTR_INIT;
        aa.offset = first[i] * 4096;
        aa.size = count[i] * 4096;
        aa.lifetime = fc[i] ? CAPMEM_ALIAS_FIRST_CLASS : CAPMEM_ALIAS_DEPENDENT;
        QTRY(q, capmem_ds_alias(arena, B, D, &aa, &al[i]));
    }
    fprintf(q->out, "Answer %d.\n", number);
    char b1[32], b2[32];
    for (int i = 0; i <= n; i++) {
        int k = order[i];
        capmem_err_t err = capmem_ds_free(arena, k == n ? D : al[k]);
        capmem_ram_info_t in;
        QTRY(q, capmem_ram_info(arena, A, &in));
        fprintf(q->out, "  free %c: %-12s A used %-7s lent %s\n", k == n ? 'D' : 'x' + k,
                err == CAPMEM_OK ? "ok" : capmem_err_name(err), kib(in.used, b1), kib(in.lent, b2));
    }
    fprintf(q->out, "  (a dependent alias dies with D: freeing it afterwards is INVALID_CAP)\n\n");
done:
    capmem_arena_destroy(arena);
}

/* ------------------------------------------------------------------------ */
/* fault: which handler sees which address in nested maps */

typedef struct fault_log {
    quiz_t *q;
    const char *name;
    uint64_t faults;
    char seen[256];
} fault_log_t;

static capmem_rm_fault_result_t quiz_pager(capmem_arena_t *arena, const capmem_rm_fault_t *f,
                                           void *ctx)
{
    fault_log_t *log = ctx;
    log->faults++;
    size_t len = strlen(log->seen);
    snprintf(log->seen + len, sizeof(log->seen) - len, "%s%s at 0x%" PRIx64, len ? ", " : "",
             log->name, f->address);
    capmem_rm_info_t info;
    capmem_cap_t ds;
    if (capmem_rm_info(arena, f->rm, &info) != CAPMEM_OK ||
        capmem_ram_alloc(arena, info.client, 4096, &ds) != CAPMEM_OK) {
        return CAPMEM_RM_FAULT_UNRESOLVED;
    }
    capmem_rm_attach_attr_t at = CAPMEM_RM_ATTACH_ATTR_INIT;
    at.at = f->address & ~(uint64_t)4095;
    at.size = 4096;
    uint64_t got;
    return capmem_rm_attach(arena, f->rm, ds, &at, &got) == CAPMEM_OK ? CAPMEM_RM_FAULT_RESOLVED
                                                                      : CAPMEM_RM_FAULT_UNRESOLVED;
}

static void ask_fault(quiz_t *q, int number, const char *policy)
{
    (void)policy;
    /* An outer map of 64 pages; inner maps of 8 pages at two places; pagers in all three. */
    uint64_t at1 = rnd(q, 0, 3) * 8 * 4096;
    uint64_t at2 = (rnd(q, 0, 3) + 4) * 8 * 4096;
    int n = (int)rnd(q, 4, 6);
    uint64_t addr[6];
    for (int i = 0; i < n; i++) {
        /* A quarter on a page read before, most of the rest inside an inner map. */
        uint64_t where = rnd(q, 0, 7);
        if (i > 0 && where < 2) {
            addr[i] = (addr[rnd(q, 0, (uint64_t)i - 1)] & ~(uint64_t)4095) + rnd(q, 0, 255) * 16;
        } else if (where < 5) {
            addr[i] = (where == 2 || where == 3 ? at1 : at2) + rnd(q, 0, 0x7f) * 0x100;
        } else {
            addr[i] = rnd(q, 0, 0x3ff) * 0x100;
        }
    }
    fprintf(q->out, "Question %d.\n", number);
    fprintf(q->out,
            "A region map 'outer' of 0x40000 bytes (4 KiB pages) has two managed dataspaces\n"
            "attached: region map 'left' (0x8000 bytes) at 0x%" PRIx64
            " and 'right' (0x8000 bytes) at 0x%" PRIx64 ".\n"
            "Each of the three maps has a pager that attaches one fresh page at the faulting\n"
            "page. These one-byte reads go through 'outer', in order:\n   ",
            at1, at2);
    for (int i = 0; i < n; i++) {
        fprintf(q->out, " 0x%" PRIx64, addr[i]);
    }
    fprintf(q->out, "\n  For each read: does it fault, and if so, which map's pager sees it, at "
                    "which\n  address? How many faults does each pager see in all?\n");
    capmem_arena_t *arena = answer_machine(q);
    if (arena == NULL) {
        return;
    }
    fault_log_t logs[3] = {{q, "outer", 0, ""}, {q, "left", 0, ""}, {q, "right", 0, ""}};
    capmem_cap_t root, app, maps[3];
    QTRY(q, capmem_ram_boot(arena, NULL, &root));
    capmem_ram_open_attr_t oa = CAPMEM_RAM_OPEN_ATTR_INIT;
    oa.quota = 4u << 20;
    QTRY(q, capmem_ram_open(arena, root, &oa, &app));
    for (int i = 0; i < 3; i++) {
        capmem_rm_open_attr_t ra = CAPMEM_RM_OPEN_ATTR_INIT;
        ra.size = i == 0 ? 0x40000 : 0x8000;
        ra.label = logs[i].name;
        QTRY(q, capmem_rm_open(arena, app, &ra, &maps[i]));
        QTRY(q, capmem_rm_set_fault_handler(arena, maps[i], quiz_pager, &logs[i]));
    }
    for (int i = 1; i < 3; i++) {
        capmem_cap_t ds;
        QTRY(q, capmem_rm_dataspace(arena, maps[i], &ds));
        capmem_rm_attach_attr_t at = CAPMEM_RM_ATTACH_ATTR_INIT;
        at.at = i == 1 ? at1 : at2;
        uint64_t got;
        QTRY(q, capmem_rm_attach(arena, maps[0], ds, &at, &got));
    }
    fprintf(q->out, "Answer %d.\n", number);
    for (int i = 0; i < n; i++) {
        for (int k = 0; k < 3; k++) {
            logs[k].seen[0] = '\0';
        }
        uint8_t byte;
        QTRY(q, capmem_rm_read(arena, maps[0], addr[i], &byte, 1));
        const char *seen = logs[0].seen[0]   ? logs[0].seen
                           : logs[1].seen[0] ? logs[1].seen
                           : logs[2].seen[0] ? logs[2].seen
                                             : "no fault";
        fprintf(q->out, "  read 0x%05" PRIx64 ": %s\n", addr[i], seen);
    }
    fprintf(q->out, "  faults seen: outer %" PRIu64 ", left %" PRIu64 ", right %" PRIu64 "\n\n",
            logs[0].faults, logs[1].faults, logs[2].faults);
done:
    capmem_arena_destroy(arena);
}

#if CAPMEM_TOOL_KERNEL
/* ------------------------------------------------------------------------ */
/* kernel: the kernel-heap strategies (Coyotos) */

static const char *const kernel_policies[] = {"fixed", "hybrid", "conservative", NULL};

static void ask_kernel(quiz_t *q, int number, const char *policy)
{
    int p = policy_index(kernel_policies, policy);
    uint64_t ram_frames = 1024ull << rnd(q, 0, 2);
    uint64_t record = rnd(q, 0, 1) ? 64 : 48;
    uint64_t image = rnd(q, 1, 4) * 16;
    uint64_t reserve = 256ull << rnd(q, 0, 2);
    uint64_t keep = rnd(q, 2, 8) * 256;
    uint64_t plug[3];
    uint64_t window = 0;
    for (int i = 0; i < 3; i++) {
        plug[i] = 256ull << rnd(q, 0, 3);
        window += plug[i];
    }
    const uint64_t conservative_window = 4096;
    fprintf(q->out, "Question %d.\n", number);
    fprintf(q->out,
            "A machine has %" PRIu64
            " frames of RAM (4 KiB pages). The kernel keeps a record of %" PRIu64
            " bytes\nfor every RAM and device frame in its heap, after an image of %" PRIu64
            " frames.\n",
            ram_frames, record, image);
    if (p == 0) {
        fprintf(q->out, "Strategy: a fixed reserve of records for %" PRIu64 " device frames.\n",
                reserve);
    } else if (p == 1) {
        fprintf(q->out,
                "Strategy: hybrid, a fixed part for %" PRIu64
                " device frames, then heap frames borrowed\nthrough the space banks.\n",
                reserve);
    } else {
        fprintf(q->out,
                "Strategy: conservative, records for a window of %" PRIu64
                " device frames at boot; at\nthe end of boot the kernel keeps records for %" PRIu64
                " and releases the rest.\n",
                conservative_window, keep);
    }
    fprintf(q->out,
            "A bank service then takes all the RAM it can. Devices of %" PRIu64 ", %" PRIu64
            " and %" PRIu64 " frames are\nplugged in, in that order.\n",
            plug[0], plug[1], plug[2]);
    fprintf(q->out, "  (a) How many heap frames does the kernel carve at boot?\n");
    if (p == 2) {
        fprintf(q->out, "  (b) How many heap frames does it release at the end of boot?\n");
    }
    fprintf(q->out,
            "  (%c) Which plugs succeed, and how many heap frames does the kernel have "
            "at the end%s?\n",
            p == 2 ? 'c' : 'b', p == 1 ? ",\n      and how many of them are borrowed" : "");
    if (questions_only(q)) {
        return;
    }
    capmem_arena_attr_t aa = CAPMEM_ARENA_ATTR_INIT;
    aa.ram_size = ram_frames * 4096;
    aa.device_window = window * 4096;
    aa.cap_slots = 1u << 16;
    capmem_arena_t *arena = NULL;
    QTRY(q, capmem_arena_create(&aa, &arena));
    capmem_kernel_attr_t ka = CAPMEM_KERNEL_ATTR_INIT;
    ka.strategy = p == 0   ? CAPMEM_KERNEL_FIXED
                  : p == 1 ? CAPMEM_KERNEL_HYBRID
                           : CAPMEM_KERNEL_CONSERVATIVE;
    ka.record_size = record;
    ka.image_frames = image;
    ka.device_frames = p == 2 ? conservative_window : reserve;
    QTRY(q, capmem_kernel_boot(arena, &ka));
    capmem_kernel_info_t k;
    QTRY(q, capmem_kernel_info(arena, &k));
    fprintf(q->out, "Answer %d.\n", number);
    fprintf(q->out,
            "  (a) %" PRIu64 " heap frames: ceil((%" PRIu64 " + %" PRIu64 ") * %" PRIu64
            " / 4096)\n",
            k.boot_heap_frames, ram_frames, ka.device_frames, record);
    if (p == 2) {
        QTRY(q, capmem_kernel_end_boot(arena, keep));
        QTRY(q, capmem_kernel_info(arena, &k));
        fprintf(q->out, "  (b) %" PRIu64 " frames go to the prime bank\n", k.released_frames);
    }
    capmem_cap_t root, prime;
    QTRY(q, capmem_ram_boot(arena, NULL, &root));
    capmem_bank_service_attr_t sa = CAPMEM_BANK_SERVICE_ATTR_INIT;
    sa.donation = 256 * 1024;
    QTRY(q, capmem_bank_service_create(arena, root, &sa, &prime));
    fprintf(q->out, "  (%c)", p == 2 ? 'c' : 'b');
    uint64_t at = 0x100000000ull;
    for (int i = 0; i < 3; i++) {
        capmem_device_info_t di;
        capmem_err_t err = capmem_arena_device_add(arena, at, plug[i] * 4096, &di);
        at += plug[i] * 4096;
        fprintf(q->out, " %" PRIu64 ": %s;", plug[i],
                err == CAPMEM_OK ? "ok" : capmem_err_name(err));
    }
    QTRY(q, capmem_kernel_info(arena, &k));
    fprintf(q->out, " heap frames at the end: %" PRIu64, k.heap_frames);
    if (p == 1) {
        fprintf(q->out, ", %" PRIu64 " borrowed", k.borrowed_frames);
    }
    fprintf(q->out, "\n\n");
done:
    capmem_arena_destroy(arena);
}

#endif

/* ------------------------------------------------------------------------ */

static const topic_t topics[] = {
    {"retype", "seL4 retype: offsets, the watermark, failures; range and buddy instead",
     retype_policies, ask_retype},
    {"buddy", "a buddy allocator: offsets and the free blocks left", NULL, ask_buddy},
    {"donation", "Genode donations: how many records a donation and its upgrades pay for",
     donation_policies, ask_donation},
    {"quota", "Genode quota: what each account holds after opens, transfers and a close", NULL,
     ask_quota},
    {"alias", "aliases: who is charged for which pages after frees in a given order",
     alias_policies, ask_alias},
    {"fault", "nested region maps: which pager sees which fault, and how many", NULL, ask_fault},
#if CAPMEM_TOOL_KERNEL
    {"kernel", "the kernel-heap strategies: heap frames at boot, which device plugs succeed",
     kernel_policies, ask_kernel},
#endif
};

#define NTOPICS (sizeof(topics) / sizeof(topics[0]))

void quiz_usage(FILE *out)
{
    fputs("usage: capmem quiz TOPIC [-s SEED] [-n N] [-c] [-p POLICY]\n"
          "\n"
          "Print N generated questions about TOPIC (3 by default). The same seed prints\n"
          "the same questions on every machine. Work them out, then run the same command\n"
          "with -c: the answers are computed by running libcapmem.\n"
          "\n"
          "options:\n"
          "  -s, --seed SEED     the seed (default 0)\n"
          "  -n, --number N      how many questions (1 to 100; default 3)\n"
          "  -c, --compute       print the answers too\n"
          "  -p, --policy NAME   the topic's policy, where it has one (listed below)\n"
          "  -h, --help          this text\n"
          "\n"
          "topics:\n",
          out);
    for (size_t i = 0; i < NTOPICS; i++) {
        fprintf(out, "  %-9s %s\n", topics[i].name, topics[i].about);
        if (topics[i].policies != NULL) {
            fprintf(out, "            -p:");
            for (int k = 0; topics[i].policies[k] != NULL; k++) {
                fprintf(out, " %s%s", topics[i].policies[k], k == 0 ? " (default)" : "");
            }
            fprintf(out, "\n");
        }
    }
}

static int parse_u64(const char *s, uint64_t *out)
{
    if (s == NULL || *s == '\0' || *s == '-') {
        return -1;
    }
    char *end = NULL;
    unsigned long long v = strtoull(s, &end, 0);
    if (*end != '\0') {
        return -1;
    }
    *out = v;
    return 0;
}

int quiz_main(int argc, char **argv)
{
    quiz_t q;
    memset(&q, 0, sizeof(q));
    q.out = stdout;
    uint64_t seed = 0, n = 3;
    const topic_t *topic = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            quiz_usage(stdout);
            return 0;
        } else if (strcmp(a, "-c") == 0 || strcmp(a, "--compute") == 0) {
            q.answers = 1;
        } else if (strcmp(a, "-s") == 0 || strcmp(a, "--seed") == 0) {
            if (++i >= argc || parse_u64(argv[i], &seed) != 0) {
                fprintf(stderr, "capmem quiz: -s takes a number (the seed)\n");
                return 2;
            }
        } else if (strcmp(a, "-n") == 0 || strcmp(a, "--number") == 0) {
            if (++i >= argc || parse_u64(argv[i], &n) != 0 || n == 0 || n > 100) {
                fprintf(stderr, "capmem quiz: -n takes a number from 1 to 100\n");
                return 2;
            }
        } else if (strcmp(a, "-p") == 0 || strcmp(a, "--policy") == 0) {
            if (++i >= argc) {
                fprintf(stderr, "capmem quiz: -p takes a policy name\n");
                return 2;
            }
            q.policy = argv[i];
        } else if (a[0] == '-') {
            fprintf(stderr, "capmem quiz: unknown option %s\n\n", a);
            quiz_usage(stderr);
            return 2;
        } else if (topic == NULL) {
            for (size_t t = 0; t < NTOPICS; t++) {
                if (strcmp(topics[t].name, a) == 0) {
                    topic = &topics[t];
                }
            }
            if (topic == NULL) {
                fprintf(stderr, "capmem quiz: no topic '%s'\n\n", a);
                quiz_usage(stderr);
                return 2;
            }
        } else {
            fprintf(stderr, "capmem quiz: one topic at a time\n");
            return 2;
        }
    }
    if (topic == NULL) {
        fprintf(stderr, "capmem quiz: which topic?\n\n");
        quiz_usage(stderr);
        return 2;
    }
    const char *policy = topic->policies ? topic->policies[0] : "";
    if (q.policy != NULL) {
        if (topic->policies == NULL) {
            fprintf(stderr, "capmem quiz: the %s topic has no policy to choose\n", topic->name);
            return 2;
        }
        int found = 0;
        for (int k = 0; topic->policies[k] != NULL; k++) {
            found |= strcmp(topic->policies[k], q.policy) == 0;
        }
        if (!found) {
            fprintf(stderr, "capmem quiz: the %s topic's policies are:", topic->name);
            for (int k = 0; topic->policies[k] != NULL; k++) {
                fprintf(stderr, " %s", topic->policies[k]);
            }
            fprintf(stderr, "\n");
            return 2;
        }
        policy = q.policy;
    }
    /* The topic's name is mixed in, so that seed 1 of two topics differ. */
    q.rng.state = seed;
    for (const char *c = topic->name; *c; c++) {
        q.rng.state = q.rng.state * 31 + (unsigned char)*c;
    }
    fprintf(q.out, "capmem quiz %s -s %" PRIu64 " -n %" PRIu64 "%s%s%s\n\n", topic->name, seed, n,
            policy[0] ? " -p " : "", policy, q.answers ? " -c" : "");
    for (uint64_t i = 0; i < n && !q.failed; i++) {
        topic->ask(&q, (int)i + 1, policy);
    }
    if (!q.answers && !q.failed) {
        fprintf(q.out, "Work out the answers, then check them with -c.\n");
    }
    return q.failed ? 1 : 0;
}
