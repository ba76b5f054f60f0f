/* SPDX-License-Identifier: MIT */
/*
 * capmem quiz: OSTEP-style generated questions. The numbers come from a
 * seed through splitmix64, so the same seed prints the same questions on
 * every machine; with -c the answers are computed by running the library.
 */
#ifndef CAPMEM_TOOL_QUIZ_H
#define CAPMEM_TOOL_QUIZ_H

#include <stdio.h>

void quiz_usage(FILE *out);
int quiz_main(int argc, char **argv);

#endif
