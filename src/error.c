/* SPDX-License-Identifier: MIT */
/* Error names, messages and the per-thread detail record. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static const char *const err_msgs[] = {
#define CAPMEM_ERR_MSG_(name, msg) [CAPMEM_E_##name] = msg,
    CAPMEM_ERRNO_MAP(CAPMEM_ERR_MSG_)
#undef CAPMEM_ERR_MSG_
};

static const char *const err_names[] = {
#define CAPMEM_ERR_NAME_(name, msg) [CAPMEM_E_##name] = #name,
    CAPMEM_ERRNO_MAP(CAPMEM_ERR_NAME_)
#undef CAPMEM_ERR_NAME_
};

_Static_assert(sizeof(err_msgs) / sizeof(err_msgs[0]) == CAPMEM_E__COUNT,
               "every error code has a message");

/* One record per thread: failures on one thread never clobber another's. */
static _Thread_local capmem_error_info_t tls_detail;

/*
 * The public call the calling thread is in, recorded once at entry
 * (capmem__enter) so internal functions need not pass their caller's name
 * down just to label an error; failures counts every failure recorded, so a
 * caller can tell whether a callback it ran failed (see capmem__failures).
 */
_Thread_local const char *capmem__tls_function;
static _Thread_local uint64_t tls_failures;

uint64_t capmem__failures(void)
{
    return tls_failures;
}

const char *capmem_strerror(capmem_err_t err)
{
    if ((unsigned)err >= CAPMEM_E__COUNT) {
        return "unknown error";
    }
    return err_msgs[err];
}

const char *capmem_err_name(capmem_err_t err)
{
    if ((unsigned)err >= CAPMEM_E__COUNT) {
        return "UNKNOWN";
    }
    return err_names[err];
}

const capmem_error_info_t *capmem_last_error(void)
{
    return &tls_detail;
}

void capmem_error_clear(void)
{
    memset(&tls_detail, 0, sizeof(tls_detail));
}

capmem_error_info_t *capmem__detail(void)
{
    return &tls_detail;
}

static capmem_err_t vfail(capmem_err_t err, const char *func, const char *fmt, va_list ap)
{
    memset(&tls_detail, 0, sizeof(tls_detail));
    tls_detail.code = err;
    tls_detail.function = func != NULL ? func : capmem__tls_function;
    tls_failures++;
    if (fmt != NULL) {
        vsnprintf(tls_detail.message, sizeof(tls_detail.message), fmt, ap);
    } else {
        snprintf(tls_detail.message, sizeof(tls_detail.message), "%s", capmem_strerror(err));
    }
    return err;
}

capmem_err_t capmem__fail(capmem_err_t err, const char *func, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfail(err, func, fmt, ap);
    va_end(ap);
    return err;
}

capmem_err_t capmem__fail_space(capmem_err_t err, const char *func, uint64_t needed,
                                uint64_t available, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfail(err, func, fmt, ap);
    va_end(ap);
    tls_detail.needed = needed;
    tls_detail.available = available;
    return err;
}

capmem_err_t capmem__fail_range(const char *func, int argument, uint64_t value, uint64_t min,
                                uint64_t max, const char *what)
{
    capmem__fail(CAPMEM_E_RANGE, func, "%s %llu outside the range [%llu, %llu]", what,
                 (unsigned long long)value, (unsigned long long)min, (unsigned long long)max);
    tls_detail.argument = argument;
    tls_detail.bound_min = min;
    tls_detail.bound_max = max;
    return CAPMEM_E_RANGE;
}

capmem_err_t capmem_error_set(capmem_err_t err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfail(err, NULL, fmt, ap);
    va_end(ap);
    return err;
}

void capmem_error_set_numbers(uint64_t needed, uint64_t available)
{
    tls_detail.needed = needed;
    tls_detail.available = available;
}

void capmem__assert_fail(const char *cond, const char *why, const char *file, int line)
{
    fprintf(stderr, "capmem: internal invariant broken at %s:%d: %s (%s)\n", file, line, cond, why);
    abort();
}

const char *capmem_version(void)
{
#define CAPMEM_STR2_(x) #x
#define CAPMEM_STR_(x) CAPMEM_STR2_(x)
    return CAPMEM_STR_(CAPMEM_VERSION_MAJOR) "." CAPMEM_STR_(CAPMEM_VERSION_MINOR) "." CAPMEM_STR_(
        CAPMEM_VERSION_PATCH);
}
