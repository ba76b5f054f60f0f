/* SPDX-License-Identifier: MIT */
/*
 * swap_pager: over-provisioning with real mode, the use Genode's managed
 * dataspaces were meant for in a UNIX emulation. An ordinary C routine,
 * qsort(), sorts an array of integers that lives in a region map four
 * times larger than the RAM cache behind it. The program sees plain
 * pointers; every page it touches is paged by the map's fault handler:
 *
 *   - a first touch gets a zero-filled cache page;
 *   - when the cache is full, the page paged in longest ago is written to
 *     a swap file and detached (its view drops back to PROT_NONE);
 *   - a touch of a swapped-out page reads it back from the file.
 *
 * A pager sees faults, not accesses (there are no accessed bits in user
 * space), so "least recently used" is least recently paged in, as in
 * examples/iso9660_pager.c. The example checks that the array is sorted
 * and holds the same multiset of values (a sum and an xor), prints the
 * faults, evictions and cache size, and exits non-zero if anything is
 * off.
 *
 * Size: argv[1] (or CAPMEM_SWAP_INTS) integers, default 4,194,304 (16 MiB
 * of array, a 4 MiB cache). The test suite passes a smaller count.
 */
#define _GNU_SOURCE
#include <capmem.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define EXAMPLE_NAME "swap_pager"
#include "example.h"

enum { PAGE = 4096 };

typedef struct swap {
    capmem_cap_t cache; /* one RAM dataspace: the cache's frames */
    uint64_t frames;    /* cache pages */
    uint64_t used;      /* frames handed out so far (then every one is in use) */
    uint64_t *frame_of; /* per map page: frame + 1, or 0 when not resident */
    uint64_t *page_in;  /* per frame: the map page it holds */
    uint64_t *fifo;     /* frames in the order they were paged in (a ring) */
    uint64_t head;      /* the oldest */
    uint64_t count;     /* frames in the ring */
    uint8_t *swapped;   /* per map page: 1 once written to the swap file */
    int fd;             /* the swap file */
    uint64_t faults;
    uint64_t evictions;
    uint64_t swap_ins;
    uint8_t buf[PAGE];
} swap_t;

static capmem_rm_fault_result_t pager(capmem_arena_t *arena, const capmem_rm_fault_t *f, void *ctx)
{
    swap_t *s = ctx;
    s->faults++;
    const uint64_t page = f->address / PAGE;
    uint64_t frame;
    if (s->used < s->frames) {
        frame = s->used++;
    } else {
        /* Evict the page paged in longest ago: to the swap file, then detach it. */
        frame = s->fifo[s->head];
        s->head = (s->head + 1) % s->frames;
        s->count--;
        const uint64_t victim = s->page_in[frame];
        if (capmem_ds_read(arena, s->cache, frame * PAGE, s->buf, PAGE) != CAPMEM_OK ||
            pwrite(s->fd, s->buf, PAGE, (off_t)(victim * PAGE)) != PAGE ||
            capmem_rm_detach(arena, f->rm, victim * PAGE) != CAPMEM_OK) {
            return CAPMEM_RM_FAULT_UNRESOLVED;
        }
        s->frame_of[victim] = 0;
        s->swapped[victim] = 1;
        s->evictions++;
    }
    if (s->swapped[page]) {
        if (pread(s->fd, s->buf, PAGE, (off_t)(page * PAGE)) != PAGE) {
            return CAPMEM_RM_FAULT_UNRESOLVED;
        }
        s->swap_ins++;
    } else {
        memset(s->buf, 0, PAGE); /* a first touch: a zero-filled page */
    }
    capmem_rm_attach_attr_t at = CAPMEM_RM_ATTACH_ATTR_INIT;
    at.at = page * PAGE;
    at.offset = frame * PAGE;
    at.size = PAGE;
    uint64_t addr;
    if (capmem_ds_write(arena, s->cache, frame * PAGE, s->buf, PAGE) != CAPMEM_OK ||
        capmem_rm_attach(arena, f->rm, s->cache, &at, &addr) != CAPMEM_OK) {
        return CAPMEM_RM_FAULT_UNRESOLVED;
    }
    s->frame_of[page] = frame + 1;
    s->page_in[frame] = page;
    s->fifo[(s->head + s->count++) % s->frames] = frame; /* the newest */
    return CAPMEM_RM_FAULT_RESOLVED;
}

static int cmp_int(const void *a, const void *b)
{
    const int x = *(const int *)a;
    const int y = *(const int *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    const char *n_arg = argc > 1 ? argv[1] : getenv("CAPMEM_SWAP_INTS");
    uint64_t n = n_arg != NULL ? strtoull(n_arg, NULL, 0) : 4194304u;
    if (n < 4096) {
        n = 4096;
    }
    const uint64_t map_pages = (n * sizeof(int) + PAGE - 1) / PAGE;
    const uint64_t frames = map_pages / 4; /* the map is four times the cache */

    capmem_arena_attr_t aa = CAPMEM_ARENA_ATTR_INIT;
    aa.ram_size = frames * PAGE + (4u << 20);
    capmem_arena_t *arena;
    capmem_cap_t root;
    TRY(capmem_arena_create(&aa, &arena));
    TRY(capmem_ram_boot(arena, NULL, &root));

    swap_t s = {.frames = frames};
    TRY(capmem_ram_alloc(arena, root, frames * PAGE, &s.cache));
    s.frame_of = calloc(map_pages, sizeof(uint64_t));
    s.swapped = calloc(map_pages, 1);
    s.page_in = calloc(frames, sizeof(uint64_t));
    s.fifo = calloc(frames, sizeof(uint64_t));
    FILE *swapfile = tmpfile();
    EXPECT(s.frame_of != NULL && s.swapped != NULL && s.page_in != NULL && s.fifo != NULL);
    EXPECT(swapfile != NULL);
    s.fd = fileno(swapfile);

    /* One region record per resident page, and a few to spare. */
    capmem_rm_open_attr_t oa = CAPMEM_RM_OPEN_ATTR_INIT;
    oa.size = map_pages * PAGE;
    oa.donation = ((frames + 16) * 64 + 2 * PAGE - 1) / PAGE * PAGE;
    oa.label = "swapped array";
    capmem_cap_t rm;
    TRY(capmem_rm_open(arena, root, &oa, &rm));
    TRY(capmem_rm_set_fault_handler(arena, rm, pager, &s));
    void *base;
    TRY(capmem_rm_real_map(arena, rm, 0, &base));

    /* Ordinary C from here on: fill, sort, check. */
    int *a = base;
    uint64_t x = 88172645463325252ull;
    uint64_t sum = 0;
    uint64_t xr = 0;
    for (uint64_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        a[i] = (int)(x % 1000000007u);
        sum += (uint64_t)a[i];
        xr ^= (uint64_t)a[i];
    }
    qsort(a, n, sizeof(int), cmp_int);
    uint64_t sum2 = 0;
    uint64_t xr2 = 0;
    for (uint64_t i = 0; i < n; i++) {
        EXPECT(i == 0 || a[i - 1] <= a[i]);
        sum2 += (uint64_t)a[i];
        xr2 ^= (uint64_t)a[i];
    }
    EXPECT(sum == sum2 && xr == xr2);
    EXPECT(s.evictions > 0 && s.swap_ins > 0);

    capmem_rm_real_stats_t rs;
    TRY(capmem_rm_real_stats(arena, &rs));
    printf("sorted %" PRIu64 " integers (%" PRIu64 " KiB) in a region map of %" PRIu64
           " pages backed by a cache of %" PRIu64 " pages (%" PRIu64 " KiB)\n",
           n, n * sizeof(int) / 1024, map_pages, frames, frames * PAGE / 1024);
    printf("faults %" PRIu64 ", evictions %" PRIu64 ", swap-ins %" PRIu64 "; pieces mapped %" PRIu64
           ", dropped %" PRIu64 "\n",
           s.faults, s.evictions, s.swap_ins, rs.mapped, rs.dropped);

    TRY(capmem_check(arena, NULL, 0));
    capmem_arena_destroy(arena);
    fclose(swapfile);
    free(s.frame_of);
    free(s.swapped);
    free(s.page_in);
    free(s.fifo);
    return 0;
}
