/* SPDX-License-Identifier: MIT */
/*
 * Internal helpers shared by every layer: error reporting, overflow-checked
 * arithmetic, debug asserts, and the host-resource wrappers through which
 * every malloc, mmap, memfd_create and ftruncate goes (so tests can inject
 * failures). Never installed.
 */
#ifndef CAPMEM_INTERNAL_H
#define CAPMEM_INTERNAL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "capmem/error.h"

/* ---- debug asserts ------------------------------------------------------ */

/*
 * Internal invariants only. Bad input from a caller gets an error code,
 * never an assert. Compiled out with NDEBUG.
 */
#ifndef NDEBUG
#define CAPMEM_ASSERT(cond, why)                                                                   \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            capmem__assert_fail(#cond, (why), __FILE__, __LINE__);                                 \
        }                                                                                          \
    } while (0)
#else
#define CAPMEM_ASSERT(cond, why) ((void)0)
#endif

void capmem__assert_fail(const char *cond, const char *why, const char *file, int line);

/* ---- errors ------------------------------------------------------------- */

/*
 * Record a failure for the calling thread and return @p err, so call sites
 * read `return capmem__fail(CAPMEM_E_RANGE, __func__, "...", ...)`.
 * The numeric fields are cleared; set them with the capmem__detail_* calls
 * before or after (they write the same thread-local record). @p fmt must be
 * a string literal: the message is formatted from it when it is read
 * (capmem_last_error()), from the arguments captured now (strings copied).
 */
capmem_err_t capmem__fail(capmem_err_t err, const char *func, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/*
 * Record @p func as the public call the thread is in (errors recorded with
 * a NULL func are labelled with it); returns the previous one, which the
 * caller restores when the call returns, so nested calls label correctly.
 */
extern _Thread_local const char *capmem__tls_function;

static inline const char *capmem__set_function(const char *func)
{
    const char *old = capmem__tls_function;
    capmem__tls_function = func;
    return old;
}

/* Failures recorded on this thread so far: compare before and after a callback. */
uint64_t capmem__failures(void);

/* Mutable access to the calling thread's detail record. */
capmem_error_info_t *capmem__detail(void);

/* Shorthand: a failure with needed/available numbers. */
capmem_err_t capmem__fail_space(capmem_err_t err, const char *func, uint64_t needed,
                                uint64_t available, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* Shorthand: an argument outside [min, max]. */
capmem_err_t capmem__fail_range(const char *func, int argument, uint64_t value, uint64_t min,
                                uint64_t max, const char *what);

/* ---- arithmetic --------------------------------------------------------- */

static inline bool capmem__is_pow2(uint64_t x)
{
    return x != 0 && (x & (x - 1)) == 0;
}

/* Sum with overflow check: false on overflow, *out untouched then. */
static inline bool capmem__add_ok(uint64_t a, uint64_t b, uint64_t *out)
{
    uint64_t r;
    if (__builtin_add_overflow(a, b, &r)) {
        return false;
    }
    *out = r;
    return true;
}

static inline bool capmem__mul_ok(uint64_t a, uint64_t b, uint64_t *out)
{
    uint64_t r;
    if (__builtin_mul_overflow(a, b, &r)) {
        return false;
    }
    *out = r;
    return true;
}

/* Align up to a power of two; false on overflow. */
static inline bool capmem__align_up_ok(uint64_t x, uint64_t align, uint64_t *out)
{
    uint64_t r;
    if (__builtin_add_overflow(x, align - 1, &r)) {
        return false;
    }
    *out = r & ~(align - 1);
    return true;
}

static inline bool capmem__is_aligned(uint64_t x, uint64_t align)
{
    return (x & (align - 1)) == 0;
}

static inline unsigned capmem__log2(uint64_t x)
{
    return x ? 63u - (unsigned)__builtin_clzll(x) : 0u;
}

/* ---- host resources ----------------------------------------------------- */

/*
 * Every host resource the library takes goes through these, so the
 * fault-injection hook (capmem__inject_*) can make the n-th one fail and
 * tests can prove that each failure is a clean error with no leak.
 */
typedef enum capmem__host_kind {
    CAPMEM__HOST_MALLOC = 0,
    CAPMEM__HOST_MMAP,
    CAPMEM__HOST_MEMFD,
    CAPMEM__HOST_FTRUNCATE,
    CAPMEM__HOST_KIND_COUNT
} capmem__host_kind_t;

void *capmem__malloc(size_t size);
void *capmem__calloc(size_t n, size_t size);
void capmem__free(void *p);
/* Anonymous private, lazily committed mapping (MAP_NORESERVE); NULL on failure. */
void *capmem__map_lazy(size_t size);
void capmem__unmap(void *p, size_t size);
/*
 * Give the host back the memory behind a part of a private lazy mapping
 * (capmem__map_lazy): it reads as zeros afterwards and is committed again
 * when touched. Cannot fail (a refused madvise keeps the memory).
 */
void capmem__map_release(void *p, size_t size);
/* Counted wrappers around the syscalls, -1 with errno on (injected) failure. */
int capmem__memfd_create(const char *name, unsigned flags);
int capmem__ftruncate(int fd, uint64_t size);
void *capmem__mmap(void *addr, size_t len, int prot, int flags, int fd, uint64_t off);

/*
 * Test-only: make the @p nth (1-based) next host operation of @p kind fail;
 * 0 disarms. Counts are per process. capmem__inject_count returns how many
 * operations of that kind have been attempted since the last reset.
 */
void capmem__inject_fail(capmem__host_kind_t kind, uint64_t nth);
uint64_t capmem__inject_count(capmem__host_kind_t kind);
void capmem__inject_reset(void);

#endif /* CAPMEM_INTERNAL_H */
