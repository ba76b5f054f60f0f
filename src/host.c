/* SPDX-License-Identifier: MIT */
/*
 * Host resources. Every allocation, mapping and file the library takes from
 * the host goes through here, for two reasons: the fault-injection hook can
 * make the n-th one fail, and a single place shows what the library costs
 * the host beyond the arena.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "internal.h"

/*
 * Attempt counters and the armed failure per kind. Atomics, so that the
 * thread stress tests can run with injection compiled in without races.
 */
static _Atomic uint64_t attempts[CAPMEM__HOST_KIND_COUNT];
static _Atomic uint64_t fail_at[CAPMEM__HOST_KIND_COUNT];

static bool injected(capmem__host_kind_t kind)
{
    uint64_t n = atomic_fetch_add(&attempts[kind], 1) + 1;
    uint64_t at = atomic_load(&fail_at[kind]);
    if (at != 0 && n == at) {
        return true;
    }
    return false;
}

void capmem__inject_fail(capmem__host_kind_t kind, uint64_t nth)
{
    if ((unsigned)kind >= CAPMEM__HOST_KIND_COUNT) {
        return;
    }
    /* nth counts from now on, so reset the counter with the arming. */
    atomic_store(&attempts[kind], 0);
    atomic_store(&fail_at[kind], nth);
}

uint64_t capmem__inject_count(capmem__host_kind_t kind)
{
    if ((unsigned)kind >= CAPMEM__HOST_KIND_COUNT) {
        return 0;
    }
    return atomic_load(&attempts[kind]);
}

void capmem__inject_reset(void)
{
    for (int k = 0; k < CAPMEM__HOST_KIND_COUNT; k++) {
        atomic_store(&attempts[k], 0);
        atomic_store(&fail_at[k], 0);
    }
}

void *capmem__malloc(size_t size)
{
    if (injected(CAPMEM__HOST_MALLOC)) {
        errno = ENOMEM;
        return NULL;
    }
    return malloc(size);
}

void *capmem__calloc(size_t n, size_t size)
{
    if (injected(CAPMEM__HOST_MALLOC)) {
        errno = ENOMEM;
        return NULL;
    }
    return calloc(n, size);
}

void capmem__free(void *p)
{
    free(p);
}

void *capmem__map_lazy(size_t size)
{
    void *p = capmem__mmap(NULL, size, PROT_READ | PROT_WRITE,
                           MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

void capmem__unmap(void *p, size_t size)
{
    if (p != NULL && size != 0) {
        munmap(p, size);
    }
}

void capmem__map_release(void *p, size_t size)
{
    /* Whole host pages inside [p, p + size) only; the rest stays as it is. */
    long sz = sysconf(_SC_PAGESIZE);
    const uintptr_t page = sz > 0 ? (uintptr_t)sz : 4096;
    uintptr_t lo = ((uintptr_t)p + page - 1) & ~(page - 1);
    uintptr_t hi = ((uintptr_t)p + size) & ~(page - 1);
    if (p != NULL && hi > lo) {
        (void)madvise((void *)lo, hi - lo, MADV_DONTNEED); /* a failure only keeps memory */
    }
}

int capmem__memfd_create(const char *name, unsigned flags)
{
    if (injected(CAPMEM__HOST_MEMFD)) {
        errno = EMFILE;
        return -1;
    }
    return memfd_create(name, flags);
}

int capmem__ftruncate(int fd, uint64_t size)
{
    if (injected(CAPMEM__HOST_FTRUNCATE)) {
        errno = ENOSPC;
        return -1;
    }
    return ftruncate(fd, (off_t)size);
}

void *capmem__mmap(void *addr, size_t len, int prot, int flags, int fd, uint64_t off)
{
    if (injected(CAPMEM__HOST_MMAP)) {
        errno = ENOMEM;
        return MAP_FAILED;
    }
    return mmap(addr, len, prot, flags, fd, (off_t)off);
}
