/* SPDX-License-Identifier: MIT */
/*
 * Layer 1: the arena, the backing memory. One memfd, one MAP_SHARED
 * mapping, RAM first and the device window after it. Nothing here touches
 * the pages: the kernel hands them in on first access, so the size of an
 * arena costs address space, not memory. Locking and the public calls are
 * the machine's (machine.c).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "arena_internal.h"

capmem_err_t capmem__backing_validate(const capmem_arena_attr_t *at)
{
    const char *fn = "capmem_arena_create";
    if (!capmem__is_pow2(at->page_size) || at->page_size < CAPMEM_PAGE_SIZE_MIN ||
        at->page_size > CAPMEM_PAGE_SIZE_MAX) {
        capmem__fail(CAPMEM_E_INVALID_ARGS, fn,
                     "page size %llu is not a power of two in [256 B, 1 GiB]",
                     (unsigned long long)at->page_size);
        capmem__detail()->bound_min = CAPMEM_PAGE_SIZE_MIN;
        capmem__detail()->bound_max = CAPMEM_PAGE_SIZE_MAX;
        return CAPMEM_E_INVALID_ARGS;
    }
    if (at->ram_size == 0 || !capmem__is_aligned(at->ram_size, at->page_size)) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, fn,
                            "RAM size %llu is zero or not a multiple of the page size %llu",
                            (unsigned long long)at->ram_size, (unsigned long long)at->page_size);
    }
    if (!capmem__is_aligned(at->device_window, at->page_size)) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, fn,
                            "device window %llu is not a multiple of the page size",
                            (unsigned long long)at->device_window);
    }
    uint64_t total;
    if (!capmem__add_ok(at->ram_size, at->device_window, &total) ||
        total > CAPMEM_ARENA_MAX_BYTES || total > (uint64_t)SIZE_MAX) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, fn, "RAM plus device window exceeds %llu bytes",
                            (unsigned long long)CAPMEM_ARENA_MAX_BYTES);
    }
    uint64_t end;
    if (!capmem__is_aligned(at->phys_base, at->page_size) ||
        !capmem__add_ok(at->phys_base, at->ram_size, &end)) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, fn,
                            "physical base 0x%llx is misaligned or RAM would wrap around",
                            (unsigned long long)at->phys_base);
    }
    if ((at->flags & ~(uint32_t)CAPMEM_ARENA_FORCE_ANON) != 0) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, fn, "unknown flags 0x%x", at->flags);
    }
    return CAPMEM_OK;
}

static capmem_err_t map_backing(capmem__backing_t *a, uint64_t total, uint32_t flags)
{
    const char *fn = "capmem_arena_create";
    a->fd = -1;
    if ((flags & CAPMEM_ARENA_FORCE_ANON) == 0) {
        int fd = capmem__memfd_create("capmem-arena", MFD_CLOEXEC);
        if (fd < 0 && errno != ENOSYS) {
            /* A real failure (out of fds, injected): report it, do not hide it. */
            int e = errno;
            capmem__fail(CAPMEM_E_SYSTEM, fn, "memfd_create failed: %s", strerror(e));
            capmem__detail()->sys_errno = e;
            return CAPMEM_E_SYSTEM;
        }
        if (fd >= 0) {
            if (capmem__ftruncate(fd, total) != 0) {
                int e = errno;
                close(fd);
                capmem__fail(CAPMEM_E_SYSTEM, fn, "ftruncate(%llu) failed: %s",
                             (unsigned long long)total, strerror(e));
                capmem__detail()->sys_errno = e;
                return CAPMEM_E_SYSTEM;
            }
            void *p = capmem__mmap(NULL, (size_t)total, PROT_READ | PROT_WRITE,
                                   MAP_SHARED | MAP_NORESERVE, fd, 0);
            if (p == MAP_FAILED) {
                int e = errno;
                close(fd);
                capmem__fail(CAPMEM_E_SYSTEM, fn, "mmap of %llu bytes failed: %s",
                             (unsigned long long)total, strerror(e));
                capmem__detail()->sys_errno = e;
                return CAPMEM_E_SYSTEM;
            }
            a->fd = fd;
            a->base = p;
            a->backing = CAPMEM_BACKING_MEMFD;
            return CAPMEM_OK;
        }
    }
    /* Fallback: no memfd on this host (or asked for): anonymous shared pages. */
    void *p = capmem__mmap(NULL, (size_t)total, PROT_READ | PROT_WRITE,
                           MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) {
        int e = errno;
        capmem__fail(CAPMEM_E_SYSTEM, fn, "anonymous mmap of %llu bytes failed: %s",
                     (unsigned long long)total, strerror(e));
        capmem__detail()->sys_errno = e;
        return CAPMEM_E_SYSTEM;
    }
    a->base = p;
    a->backing = CAPMEM_BACKING_ANON_SHARED;
    return CAPMEM_OK;
}

capmem_err_t capmem__backing_init(capmem__backing_t *b, const capmem_arena_attr_t *at)
{
    memset(b, 0, sizeof(*b));
    b->ram_size = at->ram_size;
    b->page_size = at->page_size;
    b->page_shift = capmem__log2(at->page_size);
    b->host_page = (uint64_t)sysconf(_SC_PAGESIZE);
    b->phys_base = at->phys_base;
    b->device_window = at->device_window;
    b->map_size = at->ram_size + at->device_window;
    b->next_device_id = 1;
    return map_backing(b, b->map_size, at->flags);
}

void capmem__backing_fini(capmem__backing_t *b)
{
    capmem__unmap(b->base, (size_t)b->map_size);
    if (b->fd >= 0) {
        close(b->fd);
    }
    b->base = NULL;
    b->fd = -1;
}

void capmem__backing_zero(capmem__backing_t *arena, uint64_t off, uint64_t size)
{
    const uint64_t host_page = arena->host_page;
    arena->zeroed += size;
    uint64_t lo = (off + host_page - 1) & ~(host_page - 1);
    uint64_t hi = (off + size) & ~(host_page - 1);
    /* Small ranges: a memset is cheaper than a syscall. */
    if (size < 4 * host_page || lo >= hi) {
        memset(capmem__bytes(arena, off), 0, (size_t)size);
        return;
    }
    memset(capmem__bytes(arena, off), 0, (size_t)(lo - off));
    /*
     * MADV_REMOVE punches a hole in the memfd (or the shmem object behind
     * the anonymous shared fallback): the pages read as zero afterwards and
     * their memory goes back to the host. If it is refused, clear by hand.
     */
    if (madvise(capmem__bytes(arena, lo), (size_t)(hi - lo), MADV_REMOVE) != 0) {
        memset(capmem__bytes(arena, lo), 0, (size_t)(hi - lo));
    }
    memset(capmem__bytes(arena, hi), 0, (size_t)(off + size - hi));
}

static bool overlaps(uint64_t a, uint64_t asz, uint64_t b, uint64_t bsz)
{
    return a < b + bsz && b < a + asz;
}

capmem__device_t *capmem__device_at_backing(capmem__backing_t *arena, uint64_t off, uint64_t size)
{
    for (int i = 0; i < CAPMEM_DEVICE_MAX; i++) {
        capmem__device_t *d = &arena->devices[i];
        if (d->id != 0 && off >= d->backing_offset && off - d->backing_offset + size <= d->size) {
            return d;
        }
    }
    return NULL;
}

static bool device_window_fit(const capmem__backing_t *a, uint64_t size, uint64_t *out)
{
    uint64_t cand = a->ram_size;
    const uint64_t end = a->ram_size + a->device_window;
    for (;;) {
        if (cand + size > end || cand + size < cand) {
            return false;
        }
        bool moved = false;
        for (int i = 0; i < CAPMEM_DEVICE_MAX; i++) {
            const capmem__device_t *d = &a->devices[i];
            if (d->id != 0 && overlaps(cand, size, d->backing_offset, d->size)) {
                cand = d->backing_offset + d->size;
                moved = true;
            }
        }
        if (!moved) {
            *out = cand;
            return true;
        }
    }
}

capmem_err_t capmem__device_add(capmem__backing_t *arena, uint64_t phys, uint64_t size,
                                capmem_device_info_t *out)
{
    uint64_t end;
    if (size == 0 || !capmem__is_aligned(phys, arena->page_size) ||
        !capmem__is_aligned(size, arena->page_size) || !capmem__add_ok(phys, size, &end)) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, NULL,
                            "device range 0x%llx+0x%llx is empty, misaligned or wraps",
                            (unsigned long long)phys, (unsigned long long)size);
    }
    capmem_err_t err = CAPMEM_OK;
    if (overlaps(phys, size, arena->phys_base, arena->ram_size)) {
        err =
            capmem__fail(CAPMEM_E_REGION_CONFLICT, NULL, "device range 0x%llx+0x%llx overlaps RAM",
                         (unsigned long long)phys, (unsigned long long)size);
        capmem__detail()->address = arena->phys_base;
        capmem__detail()->size = arena->ram_size;
        goto out;
    }
    int free_idx = -1;
    for (int i = 0; i < CAPMEM_DEVICE_MAX; i++) {
        capmem__device_t *d = &arena->devices[i];
        if (d->id == 0) {
            if (free_idx < 0) {
                free_idx = i;
            }
        } else if (overlaps(phys, size, d->phys, d->size)) {
            err = capmem__fail(CAPMEM_E_REGION_CONFLICT, NULL,
                               "device range 0x%llx+0x%llx overlaps device %u at 0x%llx+0x%llx",
                               (unsigned long long)phys, (unsigned long long)size, d->id,
                               (unsigned long long)d->phys, (unsigned long long)d->size);
            capmem__detail()->address = d->phys;
            capmem__detail()->size = d->size;
            goto out;
        }
    }
    if (free_idx < 0) {
        err = capmem__fail(CAPMEM_E_OUT_OF_CAPS, NULL, "%d device ranges registered already",
                           CAPMEM_DEVICE_MAX);
        goto out;
    }
    uint64_t boff;
    if (!device_window_fit(arena, size, &boff)) {
        err =
            capmem__fail_space(CAPMEM_E_NOT_ENOUGH_MEMORY, NULL, size, arena->device_window,
                               "device window (%llu bytes) has no free run of %llu bytes",
                               (unsigned long long)arena->device_window, (unsigned long long)size);
        goto out;
    }
    capmem__device_t *d = &arena->devices[free_idx];
    d->id = arena->next_device_id++;
    d->pins = 0;
    d->phys = phys;
    d->size = size;
    d->backing_offset = boff;
    /*
     * A range used before (unplugged, then plugged again) must not leak old
     * bytes. Cleared like any other backing, so it counts as bytes zeroed.
     */
    capmem__backing_zero(arena, boff, size);
    out->id = d->id;
    out->phys = phys;
    out->size = size;
    out->backing_offset = boff;
out:
    return err;
}

capmem_err_t capmem__device_remove(capmem__backing_t *arena, uint32_t id)
{
    capmem_err_t err = CAPMEM_OK;
    capmem__device_t *found = NULL;
    for (int i = 0; id != 0 && i < CAPMEM_DEVICE_MAX; i++) {
        if (arena->devices[i].id == id) {
            found = &arena->devices[i];
        }
    }
    if (found == NULL) {
        err = capmem__fail(CAPMEM_E_NOT_FOUND, NULL, "no device range with id %u", id);
    } else if (found->pins != 0) {
        err = capmem__fail(CAPMEM_E_DELETE_FIRST, NULL,
                           "device range %u is covered by %u untyped object(s)", id, found->pins);
    } else {
        memset(found, 0, sizeof(*found));
    }
    return err;
}

bool capmem__device_phys_to_offset(const capmem__backing_t *b, uint64_t phys, uint64_t *offset)
{
    for (int i = 0; i < CAPMEM_DEVICE_MAX; i++) {
        const capmem__device_t *d = &b->devices[i];
        if (d->id != 0 && phys >= d->phys && phys - d->phys < d->size) {
            *offset = d->backing_offset + (phys - d->phys);
            return true;
        }
    }
    return false;
}
