/* SPDX-License-Identifier: MIT */
/*
 * iso9660_pager, after Genode's iso9660 server: a client reads a file
 * through a managed dataspace many times larger than the RAM cache behind
 * it. The pager (the managed map's fault handler) fills a cache page from
 * the file on each fault and, when the cache is full, evicts the least
 * recently filled page by detaching it. The "file" is generated
 * deterministically in memory. The bytes the client reads are checked
 * against the file; the example exits non-zero if they differ.
 */
#include <capmem.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EXAMPLE_NAME "iso9660_pager"
#include "example.h"

enum { PAGE = 4096, CACHE_PAGES = 8, FILE_PAGES = 256, READ_CHUNK = 3000, PASSES = 3 };

typedef struct cache {
    const uint8_t *file;
    capmem_cap_t ram;                /* CACHE_PAGES pages of RAM */
    uint64_t holds[CACHE_PAGES];     /* file page + 1 in each cache slot, 0 when empty */
    uint64_t last_fill[CACHE_PAGES]; /* when each slot was filled, for LRU */
    uint64_t clock;
    uint64_t faults;
    uint64_t evictions;
} cache_t;

static capmem_rm_fault_result_t pager(capmem_arena_t *arena, const capmem_rm_fault_t *f, void *ctx)
{
    cache_t *c = ctx;
    c->faults++;
    unsigned victim = 0;
    for (unsigned i = 0; i < CACHE_PAGES; i++) {
        if (c->holds[i] == 0) {
            victim = i;
            break;
        }
        if (c->last_fill[i] < c->last_fill[victim]) {
            victim = i;
        }
    }
    if (c->holds[victim] != 0) {
        TRY(capmem_rm_detach(arena, f->rm, (c->holds[victim] - 1) * PAGE));
        c->evictions++;
    }
    uint64_t page = f->address / PAGE;
    TRY(capmem_ds_write(arena, c->ram, (uint64_t)victim * PAGE, c->file + page * PAGE, PAGE));
    capmem_rm_attach_attr_t at = CAPMEM_RM_ATTACH_ATTR_INIT;
    at.at = page * PAGE;
    at.offset = (uint64_t)victim * PAGE;
    at.size = PAGE;
    at.writable = 0; /* a CD-ROM */
    uint64_t addr;
    TRY(capmem_rm_attach(arena, f->rm, c->ram, &at, &addr));
    c->holds[victim] = page + 1;
    c->last_fill[victim] = ++c->clock;
    return CAPMEM_RM_FAULT_RESOLVED;
}

int main(void)
{
    const size_t file_size = (size_t)FILE_PAGES * PAGE;
    uint8_t *file = malloc(file_size);
    uint8_t *got = malloc(file_size);
    if (file == NULL || got == NULL) {
        return 1;
    }
    uint64_t x = 0x9e3779b97f4a7c15ull;
    for (size_t i = 0; i < file_size; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        file[i] = (uint8_t)x;
    }

    capmem_arena_t *arena;
    TRY(capmem_arena_create(NULL, &arena));
    capmem_cap_t root;
    TRY(capmem_ram_boot(arena, NULL, &root));
    cache_t cache = {.file = file};
    TRY(capmem_ram_alloc(arena, root, CACHE_PAGES * PAGE, &cache.ram));

    /* The pager's map, as large as the file, handed out as a managed dataspace. */
    capmem_rm_open_attr_t ra = CAPMEM_RM_OPEN_ATTR_INIT;
    ra.size = file_size;
    ra.label = "iso9660";
    capmem_cap_t file_map;
    TRY(capmem_rm_open(arena, root, &ra, &file_map));
    TRY(capmem_rm_set_fault_handler(arena, file_map, pager, &cache));
    capmem_cap_t file_ds;
    TRY(capmem_rm_dataspace(arena, file_map, &file_ds));

    /* The client attaches it read-only into its own address space and reads. */
    ra.size = 4u << 20;
    ra.label = "client";
    capmem_cap_t client_rm;
    TRY(capmem_rm_open(arena, root, &ra, &client_rm));
    capmem_rm_attach_attr_t at = CAPMEM_RM_ATTACH_ATTR_INIT;
    at.writable = 0;
    uint64_t base;
    TRY(capmem_rm_attach(arena, client_rm, file_ds, &at, &base));

    uint64_t bytes = 0;
    for (int pass = 0; pass < PASSES; pass++) {
        memset(got, 0, file_size);
        for (size_t off = 0; off < file_size; off += READ_CHUNK) {
            size_t n = file_size - off < READ_CHUNK ? file_size - off : READ_CHUNK;
            TRY(capmem_rm_read(arena, client_rm, base + off, got + off, n));
            bytes += n;
        }
        if (memcmp(got, file, file_size) != 0) {
            fprintf(stderr, "iso9660_pager: pass %d read bytes that differ from the file\n", pass);
            return 1;
        }
    }
    /* Every read of READ_CHUNK bytes touches one or two pages; each touch is a hit or a fault. */
    uint64_t touches = 0;
    for (size_t off = 0; off < file_size; off += READ_CHUNK) {
        size_t n = file_size - off < READ_CHUNK ? file_size - off : READ_CHUNK;
        touches += (off + n - 1) / PAGE - off / PAGE + 1;
    }
    touches *= PASSES;
    uint64_t hits = touches - cache.faults;
    printf("file: %zu KiB, cache: %d KiB (%dx smaller), %d passes, %" PRIu64 " bytes read\n",
           file_size / 1024, CACHE_PAGES * PAGE / 1024, FILE_PAGES / CACHE_PAGES, PASSES, bytes);
    printf("faults: %" PRIu64 ", hits: %" PRIu64 ", evictions: %" PRIu64 "\n", cache.faults, hits,
           cache.evictions);
    printf("every byte read equals the file's\n");
    int ok = cache.faults == (uint64_t)PASSES * FILE_PAGES &&
             cache.evictions == cache.faults - CACHE_PAGES;
    capmem_rm_info_t in;
    TRY(capmem_rm_info(arena, file_map, &in));
    ok = ok && in.regions == CACHE_PAGES;
    char why[256];
    TRY(capmem_check(arena, why, sizeof(why)));
    capmem_arena_destroy(arena);
    free(file);
    free(got);
    if (!ok) {
        fprintf(stderr, "iso9660_pager: unexpected fault or eviction count\n");
        return 1;
    }
    printf("iso9660_pager: all expectations hold\n");
    return 0;
}
