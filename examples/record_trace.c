/* SPDX-License-Identifier: MIT */
/*
 * record_trace: Genode's metadata story, recorded as the library's JSON
 * Lines trace (docs/inspect.md), the way data/traces/genode_metadata.jsonl
 * was made: `record_trace data/traces/genode_metadata.jsonl`.
 *
 * A RAM session with the default 64 KiB donation allocates one-page
 * dataspaces until its metadata runs out (OUT_OF_METADATA), turns into an
 * expanding client (upgrades in 8 KiB steps), allocates 256 more of one to
 * four pages, and
 * frees every other one, then the rest, and closes. capmem-replay turns the
 * dataspace allocations and frees, and the session's donation, into a
 * placement trace. Without an argument the trace goes to standard output.
 */
#define EXAMPLE_NAME "record_trace"
#include "example.h"

#define MAX_DS 4096

int main(int argc, char **argv)
{
    FILE *out = argc > 1 ? fopen(argv[1], "w") : stdout;
    if (out == NULL) {
        perror(argv[1]);
        return 1;
    }
    capmem_arena_attr_t aa = CAPMEM_ARENA_ATTR_INIT;
    aa.ram_size = 16u << 20;
    capmem_arena_t *arena = NULL;
    TRY(capmem_arena_create(&aa, &arena));
    capmem_cap_t root;
    TRY(capmem_ram_boot(arena, NULL, &root));
    /* The kinds capmem-replay places: donations, upgrades, dataspaces, closes. */
    const unsigned mask =
        CAPMEM_EVENT_MASK(CAPMEM_EVENT_DONATE) | CAPMEM_EVENT_MASK(CAPMEM_EVENT_UPGRADE) |
        CAPMEM_EVENT_MASK(CAPMEM_EVENT_DS_ALLOC) | CAPMEM_EVENT_MASK(CAPMEM_EVENT_DS_FREE) |
        CAPMEM_EVENT_MASK(CAPMEM_EVENT_SESSION_CLOSE);
    TRY(capmem_trace_start(arena, out, mask));
    capmem_ram_open_attr_t oa = CAPMEM_RAM_OPEN_ATTR_INIT;
    oa.quota = 8u << 20;
    oa.caps = 4 * MAX_DS;
    oa.label = "genode";
    capmem_cap_t s;
    TRY(capmem_ram_open(arena, root, &oa, &s));
    static capmem_cap_t ds[MAX_DS];
    size_t n = 0;
    capmem_err_t err = CAPMEM_OK;
    while (n < MAX_DS && (err = capmem_ram_alloc(arena, s, 4096, &ds[n])) == CAPMEM_OK) {
        n++;
    }
    EXPECT(err == CAPMEM_E_OUT_OF_METADATA);
    const size_t first = n;
    TRY(capmem_ram_set_expanding(arena, s, true, 0));
    for (size_t i = 0; i < 256 && n < MAX_DS; i++) {
        TRY(capmem_ram_alloc(arena, s, 4096 * (1 + i % 4), &ds[n++]));
    }
    for (size_t i = 0; i < n; i += 2) {
        TRY(capmem_ds_free(arena, ds[i]));
    }
    for (size_t i = 1; i < n; i += 2) {
        TRY(capmem_ds_free(arena, ds[i]));
    }
    TRY(capmem_ram_close(arena, s));
    TRY(capmem_trace_stop(arena));
    capmem_arena_destroy(arena);
    if (out != stdout && fclose(out) != 0) {
        return 1;
    }
    fprintf(stderr, "record_trace: %zu dataspaces before the donation ran out, %zu in all\n", first,
            n);
    return 0;
}
