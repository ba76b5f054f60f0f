/* SPDX-License-Identifier: MIT */
/**
 * @file capmem/error.h
 * @brief One error enum for the whole library, its names and messages, and
 *        the per-thread detail record that carries the numbers behind a
 *        failure.
 *
 * Every call that can fail returns a ::capmem_err_t; ::CAPMEM_OK is 0. On
 * failure the library also fills a ::capmem_error_info_t for the calling
 * thread (read it with capmem_last_error()), in the spirit of errno but with
 * the numbers seL4 prints: bytes needed and available, the conflicting
 * address, the offending argument and its bounds.
 */
#ifndef CAPMEM_ERROR_H
#define CAPMEM_ERROR_H

#include <stddef.h>
#include <stdint.h>

#include "capmem/version.h"

#ifdef __cplusplus
extern "C" {
#endif

/**
 * The error list, one X(name, message) entry per code. The enum,
 * capmem_strerror() and capmem_err_name() are all generated from it, so they
 * cannot drift apart. Append new codes at the end: the numbers are ABI.
 */
#define CAPMEM_ERRNO_MAP(X)                                                                        \
    X(OK, "success")                                                                               \
    X(INVALID_ARGS, "invalid argument")                                                            \
    X(INVALID_CAP, "invalid capability (stale or forged handle)")                                  \
    X(WRONG_TYPE, "capability names an object of another type")                                    \
    X(DENIED, "capability lacks the right for this operation")                                     \
    X(OUT_OF_RAM, "RAM quota exhausted")                                                           \
    X(OUT_OF_METADATA, "Could not allocate metadata")                                              \
    X(OUT_OF_PHYS, "no contiguous physical range large enough")                                    \
    X(OUT_OF_CAPS, "capability quota or capability slots exhausted")                               \
    X(REGION_CONFLICT, "region conflicts with an existing attachment")                             \
    X(UNRESOLVED_FAULT, "page fault was not resolved")                                             \
    X(REVOKE_FIRST, "object has children: revoke them first")                                      \
    X(DELETE_FIRST, "object is still in use: delete its dependents first")                         \
    X(RANGE, "argument outside its permitted range")                                               \
    X(NOT_ENOUGH_MEMORY, "not enough free memory in the region")                                   \
    X(NOT_ALLOCATED, "range was not allocated (double free or foreign range)")                     \
    X(NOT_FOUND, "no such object, region or range")                                                \
    X(CYCLE, "operation would create a cycle")                                                     \
    X(FAULT_LOOP, "fault handler reported success without making progress")                        \
    X(UNSUPPORTED, "operation not supported by this arena or host")                                \
    X(SYSTEM, "a host system call failed")                                                         \
    X(HOST_NOMEM, "host memory allocation failed")                                                 \
    X(CORRUPT, "an internal invariant is broken (reported by a check function)")                   \
    X(POLICY, "allocation policy returned an invalid block")                                       \
    X(REENTRANT, "the library was called from a callback that may not call it")                    \
    X(LIMIT_REACHED, "a space bank's limit (its own or an ancestor's) would be exceeded")

/** Error codes. 0 is success; every other value names one failure. */
typedef enum capmem_err {
#define CAPMEM_ERR_ENUM_(name, msg) CAPMEM_E_##name,
    CAPMEM_ERRNO_MAP(CAPMEM_ERR_ENUM_)
#undef CAPMEM_ERR_ENUM_
        CAPMEM_E__COUNT /**< number of codes; not an error */
} capmem_err_t;

/** Alias of CAPMEM_E_OK for readability at call sites. */
#define CAPMEM_OK CAPMEM_E_OK

/**
 * The numbers behind the last failure on the calling thread.
 *
 * Only the fields that make sense for @ref code are set; the others are 0.
 * The record is written only when a call fails, so it survives successful
 * calls, like errno.
 */
typedef struct capmem_error_info {
    capmem_err_t code;    /**< the error that was returned */
    const char *function; /**< public function that failed */
    uint64_t needed;      /**< bytes (or objects) the call needed */
    uint64_t available;   /**< bytes (or objects) that were available */
    uint64_t address;     /**< conflicting or faulting address / offset */
    uint64_t size;        /**< size of the conflicting region */
    uint64_t bound_min;   /**< lowest permitted value (RANGE errors) */
    uint64_t bound_max;   /**< highest permitted value (RANGE errors) */
    int argument;         /**< 1-based index of the offending argument, 0 if none */
    int sys_errno;        /**< errno of a failed host call (SYSTEM errors) */
    char message[224];    /**< readable message with the numbers filled in */
} capmem_error_info_t;

/**
 * Return the static, human-readable message of @p err.
 * Unknown values give "unknown error"; never NULL.
 */
CAPMEM_API CAPMEM_NODISCARD const char *capmem_strerror(capmem_err_t err);

/**
 * Return the symbolic name of @p err without prefix, e.g. "OUT_OF_RAM".
 * Unknown values give "UNKNOWN"; never NULL.
 */
CAPMEM_API CAPMEM_NODISCARD const char *capmem_err_name(capmem_err_t err);

/**
 * Return the detail record of the last failure on the calling thread.
 * The pointer stays valid for the thread's lifetime; never NULL. Before any
 * failure, code is CAPMEM_OK and message is empty.
 */
CAPMEM_API CAPMEM_NODISCARD const capmem_error_info_t *capmem_last_error(void);

/** Reset the calling thread's detail record to "no error". */
CAPMEM_API void capmem_error_clear(void);

/**
 * Record a failure as the calling thread's last error and return @p err.
 *
 * For code that fails on the library's behalf, above all the hooks of a
 * custom allocation policy (capmem/alloc.h): a hook that refuses a request
 * says why in its own words, and the library passes the record on to its
 * caller unchanged, so a hook reads
 * `return capmem_error_set(CAPMEM_E_NOT_ENOUGH_MEMORY, "no run of %llu", n);`.
 * The numeric fields are cleared; set them with capmem_error_set_numbers().
 * @p fmt may be NULL (the message is then capmem_strerror(err)).
 * Returns @p err; an @p err outside the enum is recorded as-is.
 */
CAPMEM_API capmem_err_t capmem_error_set(capmem_err_t err, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/**
 * Set the numbers behind the calling thread's last error (bytes or objects
 * needed and available), after capmem_error_set().
 */
CAPMEM_API void capmem_error_set_numbers(uint64_t needed, uint64_t available);

#ifdef __cplusplus
}
#endif

#endif /* CAPMEM_ERROR_H */
