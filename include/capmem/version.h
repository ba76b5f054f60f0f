/* SPDX-License-Identifier: MIT */
/**
 * @file capmem/version.h
 * @brief Library version and the export / attribute macros every header uses.
 */
#ifndef CAPMEM_VERSION_H
#define CAPMEM_VERSION_H

#ifdef __cplusplus
extern "C" {
#endif

#define CAPMEM_VERSION_MAJOR 0
#define CAPMEM_VERSION_MINOR 1
#define CAPMEM_VERSION_PATCH 0
/** The version as one comparable number: major * 10000 + minor * 100 + patch. */
#define CAPMEM_VERSION_HEX                                                                         \
    (CAPMEM_VERSION_MAJOR * 10000 + CAPMEM_VERSION_MINOR * 100 + CAPMEM_VERSION_PATCH)

#if defined(CAPMEM_BUILDING) && defined(__GNUC__)
#define CAPMEM_API __attribute__((visibility("default")))
#else
#define CAPMEM_API
#endif

#if defined(__GNUC__)
/**
 * Marks calls made only for their result (queries, names, check functions):
 * discarding it means the call did nothing. Calls that act and return an
 * error code are not marked, so code may ignore an error it cannot handle
 * (GCC offers no cast that silences warn_unused_result).
 */
#define CAPMEM_NODISCARD __attribute__((warn_unused_result))
#else
#define CAPMEM_NODISCARD
#endif

/** Return the run-time library version as "major.minor.patch". */
CAPMEM_API CAPMEM_NODISCARD const char *capmem_version(void);

#ifdef __cplusplus
}
#endif

#endif /* CAPMEM_VERSION_H */
