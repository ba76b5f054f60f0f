/* SPDX-License-Identifier: MIT */
/*
 * Layer 1: the arena. One memfd, one MAP_SHARED mapping, RAM first and the
 * device window after it. Nothing here touches the pages: the kernel hands
 * them in on first access, so the size of an arena costs address space, not
 * memory.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "arena_internal.h"

static capmem_err_t validate_attr(const capmem_arena_attr_t *at)
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
    if (at->cap_slots < 16 || at->cap_slots > CAPMEM_CAP_SLOTS_MAX) {
        return capmem__fail_range(fn, 1, at->cap_slots, 16, CAPMEM_CAP_SLOTS_MAX,
                                  "capability slots");
    }
    if ((at->flags & ~(uint32_t)CAPMEM_ARENA_FORCE_ANON) != 0) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, fn, "unknown flags 0x%x", at->flags);
    }
    return CAPMEM_OK;
}

/* Map the backing. On failure nothing is left open. */
static capmem_err_t map_backing(capmem_arena_t *a, uint64_t total, uint32_t flags)
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

capmem_err_t capmem_arena_create(const capmem_arena_attr_t *attr, capmem_arena_t **out)
{
    static const capmem_arena_attr_t defaults = CAPMEM_ARENA_ATTR_INIT;
    const capmem_arena_attr_t *at = attr != NULL ? attr : &defaults;
    if (out == NULL) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, __func__, "out is NULL");
    }
    capmem_err_t err = validate_attr(at);
    if (err != CAPMEM_OK) {
        return err;
    }
    capmem_arena_t *a = capmem__calloc(1, sizeof(*a));
    if (a == NULL) {
        return capmem__fail(CAPMEM_E_HOST_NOMEM, __func__, "no host memory for the arena");
    }
    a->ram_size = at->ram_size;
    a->page_size = at->page_size;
    a->page_shift = capmem__log2(at->page_size);
    a->host_page = (uint64_t)sysconf(_SC_PAGESIZE);
    a->phys_base = at->phys_base;
    a->device_window = at->device_window;
    a->map_size = at->ram_size + at->device_window;
    a->next_device_id = 1;

    err = map_backing(a, a->map_size, at->flags);
    if (err != CAPMEM_OK) {
        capmem__free(a);
        return err;
    }
    uint32_t tag = 0;
    err = capmem__tag_take(&tag);
    if (err == CAPMEM_OK) {
        err = capmem__cspace_init(&a->cspace, at->cap_slots, tag);
        if (err != CAPMEM_OK) {
            capmem__tag_give(tag);
        }
    }
    if (err != CAPMEM_OK) {
        capmem__unmap(a->base, (size_t)a->map_size);
        if (a->fd >= 0) {
            close(a->fd);
        }
        capmem__free(a);
        return err;
    }
    capmem__machine_init(a);
    *out = a;
    return CAPMEM_OK;
}

void capmem_arena_destroy(capmem_arena_t *arena)
{
    if (arena == NULL) {
        return;
    }
    if (capmem__forked(arena)) {
        /*
         * A forked child: the records are the parent's (shared memory), and
         * tearing them down would destroy the parent's objects. The child's
         * copies of the mapping and host state go when it exits or execs.
         */
        return;
    }
    if (capmem__destroy_deferred(arena)) {
        return;
    }
    capmem__arena_destroy_now(arena);
}

void capmem__arena_destroy_now(capmem_arena_t *arena)
{
    capmem__lock(arena);
    arena->tearing_down = true;
    capmem__cspace_teardown(arena);
    for (int i = CAPMEM__EXT_COUNT - 1; i >= 0; i--) {
        if (arena->ext_fini[i] != NULL) {
            arena->ext_fini[i](arena);
        }
    }
    uint32_t tag = arena->cspace.tag;
    capmem__cspace_fini(&arena->cspace);
    capmem__user_obj_t *dead = arena->dead_users;
    arena->dead_users = NULL;
    capmem__unlock(arena);
    pthread_mutex_destroy(&arena->lock);
    capmem__unmap(arena->base, (size_t)arena->map_size);
    if (arena->fd >= 0) {
        close(arena->fd);
    }
    capmem__free(arena->evq.ring);
    capmem__free(arena);
    capmem__tag_give(tag);
    /* Last, as after any call: the hooks may do anything but use this arena. */
    capmem__run_user_destroys(dead);
}

uint64_t capmem_arena_ram_size(const capmem_arena_t *arena)
{
    return arena ? arena->ram_size : 0;
}

uint64_t capmem_arena_page_size(const capmem_arena_t *arena)
{
    return arena ? arena->page_size : 0;
}

uint64_t capmem_arena_phys_base(const capmem_arena_t *arena)
{
    return arena ? arena->phys_base : 0;
}

capmem_backing_t capmem_arena_backing(const capmem_arena_t *arena)
{
    return arena ? arena->backing : (capmem_backing_t)0;
}

const char *capmem_backing_name(capmem_backing_t backing)
{
    switch (backing) {
    case CAPMEM_BACKING_MEMFD:
        return "memfd";
    case CAPMEM_BACKING_ANON_SHARED:
        return "anonymous shared";
    }
    return "unknown";
}

int capmem_arena_fd(const capmem_arena_t *arena)
{
    return arena ? arena->fd : -1;
}

capmem_err_t capmem_arena_offset_to_phys(const capmem_arena_t *arena, uint64_t offset,
                                         uint64_t *phys)
{
    if (arena == NULL || phys == NULL) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, __func__, "arena or phys is NULL");
    }
    if (offset >= arena->ram_size) {
        capmem__fail(CAPMEM_E_INVALID_ARGS, __func__, "offset 0x%llx is beyond RAM (0x%llx bytes)",
                     (unsigned long long)offset, (unsigned long long)arena->ram_size);
        capmem__detail()->address = offset;
        return CAPMEM_E_INVALID_ARGS;
    }
    *phys = arena->phys_base + offset;
    return CAPMEM_OK;
}

capmem_err_t capmem_arena_phys_to_offset(const capmem_arena_t *arena, uint64_t phys,
                                         uint64_t *offset)
{
    if (arena == NULL || offset == NULL) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, __func__, "arena or offset is NULL");
    }
    if (phys >= arena->phys_base && phys - arena->phys_base < arena->ram_size) {
        *offset = phys - arena->phys_base;
        return CAPMEM_OK;
    }
    capmem_arena_t *a = (capmem_arena_t *)arena;
    CAPMEM__ENTER_OR_RETURN(a);
    capmem_err_t err = CAPMEM_E_NOT_FOUND;
    for (int i = 0; i < CAPMEM_DEVICE_MAX; i++) {
        const capmem__device_t *d = &a->devices[i];
        if (d->id != 0 && phys >= d->phys && phys - d->phys < d->size) {
            *offset = d->backing_offset + (phys - d->phys);
            err = CAPMEM_OK;
            break;
        }
    }
    if (err != CAPMEM_OK) {
        capmem__fail(CAPMEM_E_NOT_FOUND, NULL,
                     "physical address 0x%llx is neither RAM nor device memory",
                     (unsigned long long)phys);
        capmem__detail()->address = phys;
    }
    CAPMEM__LEAVE(a);
    return err;
}

void capmem__arena_zero(capmem_arena_t *arena, uint64_t off, uint64_t size)
{
    const uint64_t host_page = arena->host_page;
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

capmem__device_t *capmem__device_at_backing(capmem_arena_t *arena, uint64_t off, uint64_t size)
{
    for (int i = 0; i < CAPMEM_DEVICE_MAX; i++) {
        capmem__device_t *d = &arena->devices[i];
        if (d->id != 0 && off >= d->backing_offset && off - d->backing_offset + size <= d->size) {
            return d;
        }
    }
    return NULL;
}

/* First fit in the device window; the window is small and changes rarely. */
static bool device_window_fit(const capmem_arena_t *a, uint64_t size, uint64_t *out)
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

capmem_err_t capmem_arena_device_add(capmem_arena_t *arena, uint64_t phys, uint64_t size,
                                     capmem_device_info_t *out)
{
    if (arena == NULL || out == NULL) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, __func__, "arena or out is NULL");
    }
    uint64_t end;
    if (size == 0 || !capmem__is_aligned(phys, arena->page_size) ||
        !capmem__is_aligned(size, arena->page_size) || !capmem__add_ok(phys, size, &end)) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, __func__,
                            "device range 0x%llx+0x%llx is empty, misaligned or wraps",
                            (unsigned long long)phys, (unsigned long long)size);
    }
    CAPMEM__ENTER_OR_RETURN(arena);
    capmem_err_t err = CAPMEM_OK;
    if (overlaps(phys, size, arena->phys_base, arena->ram_size)) {
        err = capmem__fail(CAPMEM_E_REGION_CONFLICT, __func__,
                           "device range 0x%llx+0x%llx overlaps RAM", (unsigned long long)phys,
                           (unsigned long long)size);
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
            err = capmem__fail(CAPMEM_E_REGION_CONFLICT, __func__,
                               "device range 0x%llx+0x%llx overlaps device %u at 0x%llx+0x%llx",
                               (unsigned long long)phys, (unsigned long long)size, d->id,
                               (unsigned long long)d->phys, (unsigned long long)d->size);
            capmem__detail()->address = d->phys;
            capmem__detail()->size = d->size;
            goto out;
        }
    }
    if (free_idx < 0) {
        err = capmem__fail(CAPMEM_E_OUT_OF_CAPS, __func__, "%d device ranges registered already",
                           CAPMEM_DEVICE_MAX);
        goto out;
    }
    uint64_t boff;
    if (!device_window_fit(arena, size, &boff)) {
        err =
            capmem__fail_space(CAPMEM_E_NOT_ENOUGH_MEMORY, __func__, size, arena->device_window,
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
    /* A range used before (unplugged, then plugged again) must not leak old bytes. */
    memset(capmem__bytes(arena, boff), 0, (size_t)size);
    out->id = d->id;
    out->phys = phys;
    out->size = size;
    out->backing_offset = boff;
out:
    CAPMEM__LEAVE(arena);
    return err;
}

capmem_err_t capmem_arena_device_remove(capmem_arena_t *arena, uint32_t id)
{
    if (arena == NULL) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, __func__, "arena is NULL");
    }
    CAPMEM__ENTER_OR_RETURN(arena);
    capmem_err_t err = CAPMEM_OK;
    capmem__device_t *found = NULL;
    for (int i = 0; id != 0 && i < CAPMEM_DEVICE_MAX; i++) {
        if (arena->devices[i].id == id) {
            found = &arena->devices[i];
        }
    }
    if (found == NULL) {
        err = capmem__fail(CAPMEM_E_NOT_FOUND, __func__, "no device range with id %u", id);
    } else if (found->pins != 0) {
        err = capmem__fail(CAPMEM_E_DELETE_FIRST, __func__,
                           "device range %u is covered by %u untyped object(s)", id, found->pins);
    } else {
        memset(found, 0, sizeof(*found));
    }
    CAPMEM__LEAVE(arena);
    return err;
}

static int cmp_dev(const void *x, const void *y)
{
    const capmem_device_info_t *a = x;
    const capmem_device_info_t *b = y;
    return (a->phys > b->phys) - (a->phys < b->phys);
}

capmem_err_t capmem_arena_devices(const capmem_arena_t *arena, capmem_device_info_t *out,
                                  size_t max, size_t *count)
{
    if (arena == NULL || count == NULL || (out == NULL && max > 0)) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, __func__, "arena or count is NULL");
    }
    capmem_arena_t *a = (capmem_arena_t *)arena;
    capmem_device_info_t all[CAPMEM_DEVICE_MAX];
    size_t n = 0;
    CAPMEM__ENTER_OR_RETURN(a);
    for (int i = 0; i < CAPMEM_DEVICE_MAX; i++) {
        const capmem__device_t *d = &a->devices[i];
        if (d->id != 0) {
            all[n++] = (capmem_device_info_t){d->id, d->phys, d->size, d->backing_offset};
        }
    }
    CAPMEM__LEAVE(a);
    qsort(all, n, sizeof(all[0]), cmp_dev);
    for (size_t i = 0; i < n && i < max; i++) {
        out[i] = all[i];
    }
    *count = n;
    return CAPMEM_OK;
}
