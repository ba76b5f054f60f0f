/* SPDX-License-Identifier: MIT */
#include "quiz.h"

void quiz_usage(FILE *out)
{
    fputs("usage: capmem quiz TOPIC [-s SEED] [-n N] [-c] [-p POLICY]\n", out);
}

int quiz_main(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    quiz_usage(stderr);
    return 2;
}
