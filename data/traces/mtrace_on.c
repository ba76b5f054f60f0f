/* SPDX-License-Identifier: MIT */
/*
 * Turn glibc's malloc tracing on in a program that does not call mtrace()
 * itself: preload this with libc_malloc_debug.so.0 (glibc >= 2.34 keeps
 * mtrace there) and set MALLOC_TRACE. See record_mtrace.sh.
 */
#include <mcheck.h>

__attribute__((constructor)) static void capmem_mtrace_on(void)
{
    mtrace();
}
