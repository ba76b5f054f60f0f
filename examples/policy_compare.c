/* SPDX-License-Identifier: MIT */
/*
 * policy_compare: a trace against the policies named on the command line,
 * printed as a table: requests served, failures, bytes lost to alignment,
 * largest free block and external fragmentation at the end, and the first
 * failure with the library's message.
 *
 *   policy_compare [--span BYTES] [--granule BYTES] TRACE POLICY...
 *
 * TRACE is the plain text format of capmem-replay (`a ID SIZE [ALIGN]`,
 * `f ID`, `at ID OFFSET SIZE`, # comments); POLICY is watermark, range,
 * buddy or next-fit (examples/next_fit.c, linked in: a policy written
 * against the installed headers only). The default span is 0x2000 bytes
 * and the granule 0x400, the seL4 fragmentation case of docs/untyped.md:
 *
 *   policy_compare data/traces/sel4_fragmentation.txt watermark range buddy next-fit
 *
 * Every answer goes through the generic calls (checked), and each policy's
 * check runs after every operation; the example exits non-zero if one
 * fails. capmem-replay is the full tool (JSON and mtrace traces, CSV, plots,
 * policies from shared objects); this is the library API at its plainest.
 */
#include <capmem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern const capmem_alloc_ops_t next_fit_ops;

#define MAX_IDS 4096

typedef struct block {
    char id[32];
    uint64_t off;
    uint64_t size;
    int live;
} block_t;

static block_t blocks[MAX_IDS];
static int nblocks;

static block_t *find(const char *id)
{
    for (int i = 0; i < nblocks; i++) {
        if (strcmp(blocks[i].id, id) == 0) {
            return &blocks[i];
        }
    }
    return NULL;
}

static int make_policy(const char *name, uint64_t span, uint64_t granule, capmem_alloc_t **out)
{
    capmem_alloc_policy_t p;
    if (strcmp(name, "next-fit") == 0) {
        p = CAPMEM_ALLOC_POLICY_CUSTOM(&next_fit_ops, NULL);
    } else if (capmem_alloc_policy_by_name(name, &p) != CAPMEM_OK) {
        fprintf(stderr, "policy_compare: unknown policy '%s' (watermark, range, buddy, next-fit)\n",
                name);
        return 0;
    }
    if (capmem_alloc_create_policy(&p, 0, span, granule, out) != CAPMEM_OK) {
        fprintf(stderr, "policy_compare: %s: %s\n", name, capmem_last_error()->message);
        return 0;
    }
    return 1;
}

/* Replay the trace on one policy; 0 on a broken invariant or bad input. */
static int run(FILE *f, const char *trace, const char *name, uint64_t span, uint64_t granule)
{
    capmem_alloc_t *a = NULL;
    if (!make_policy(name, span, granule, &a)) {
        return 0;
    }
    rewind(f);
    nblocks = 0;
    unsigned served = 0;
    unsigned failed = 0;
    char first[300] = "-";
    char line[256];
    unsigned lineno = 0;
    int ok = 1;
    while (ok && fgets(line, sizeof(line), f) != NULL) {
        lineno++;
        char *hash = strchr(line, '#');
        if (hash != NULL) {
            *hash = '\0';
        }
        char op[8];
        char id[32];
        long long sx = 0;
        long long sy = 1;
        int n = sscanf(line, "%7s %31s %lli %lli", op, id, &sx, &sy);
        const uint64_t x = (uint64_t)sx;
        const uint64_t y = (uint64_t)sy;
        if (n <= 0) {
            continue;
        }
        block_t *b = n >= 2 ? find(id) : NULL;
        capmem_err_t err = CAPMEM_OK;
        if ((strcmp(op, "a") == 0 && n >= 3) || (strcmp(op, "at") == 0 && n == 4)) {
            if (b == NULL && nblocks == MAX_IDS) {
                fprintf(stderr, "%s:%u: too many IDs for this example\n", trace, lineno);
                ok = 0;
                break;
            }
            if (b == NULL) {
                b = &blocks[nblocks++];
                snprintf(b->id, sizeof(b->id), "%s", id);
            } else if (b->live) {
                fprintf(stderr, "%s:%u: '%s' is live already\n", trace, lineno, id);
                ok = 0;
                break;
            }
            if (op[1] == 't') {
                b->off = x;
                b->size = y;
                err = capmem_alloc_alloc_at(a, x, y);
            } else {
                b->size = x;
                err = capmem_alloc_alloc(a, x, n == 4 ? y : 1, &b->off);
            }
            if (err == CAPMEM_OK) {
                b->live = 1;
                served++;
            } else {
                failed++;
                if (failed == 1) {
                    snprintf(first, sizeof(first), "line %u: %s", lineno,
                             capmem_last_error()->message);
                }
            }
        } else if (strcmp(op, "f") == 0 && n == 2) {
            if (b == NULL) {
                fprintf(stderr, "%s:%u: free of unknown ID '%s'\n", trace, lineno, id);
                ok = 0;
                break;
            }
            if (b->live && capmem_alloc_free(a, b->off, b->size) != CAPMEM_OK) {
                fprintf(stderr, "%s:%u: %s\n", trace, lineno, capmem_last_error()->message);
                ok = 0;
            }
            b->live = 0;
        } else {
            fprintf(stderr, "%s:%u: malformed line\n", trace, lineno);
            ok = 0;
            break;
        }
        char why[200];
        if (capmem_alloc_check(a, why, sizeof(why)) != CAPMEM_OK) {
            fprintf(stderr, "%s:%u: policy %s: invariant broken: %s\n", trace, lineno, name, why);
            ok = 0;
        }
    }
    capmem_alloc_stats_t st = {.size = sizeof(st)};
    if (ok && capmem_alloc_stats(a, &st) == CAPMEM_OK) {
        printf("%-10s %7u %9u %11llu %9llu %6.3f  %s\n", name, served, failed,
               (unsigned long long)st.align_loss, (unsigned long long)st.largest_free,
               st.fragmentation, first);
    }
    capmem_alloc_destroy(a);
    return ok;
}

int main(int argc, char **argv)
{
    uint64_t span = 0x2000;
    uint64_t granule = 0x400;
    int i = 1;
    for (; i + 1 < argc && strncmp(argv[i], "--", 2) == 0; i += 2) {
        uint64_t *v = strcmp(argv[i], "--span") == 0      ? &span
                      : strcmp(argv[i], "--granule") == 0 ? &granule
                                                          : NULL;
        if (v == NULL) {
            break;
        }
        *v = strtoull(argv[i + 1], NULL, 0);
    }
    if (argc - i < 2) {
        fprintf(stderr, "usage: policy_compare [--span BYTES] [--granule BYTES] TRACE POLICY...\n"
                        "  POLICY: watermark, range, buddy, next-fit\n");
        return 2;
    }
    FILE *f = fopen(argv[i], "r");
    if (f == NULL) {
        perror(argv[i]);
        return 1;
    }
    printf("%s over [0, 0x%llx), granule 0x%llx\n", argv[i], (unsigned long long)span,
           (unsigned long long)granule);
    printf("%-10s %7s %9s %11s %9s %6s  %s\n", "policy", "served", "failures", "align loss",
           "largest", "frag", "first failure");
    int ok = 1;
    for (int p = i + 1; p < argc; p++) {
        ok = run(f, argv[i], argv[p], span, granule) && ok;
    }
    fclose(f);
    return ok ? 0 : 1;
}
