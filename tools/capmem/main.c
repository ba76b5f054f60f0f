/* SPDX-License-Identifier: MIT */
/*
 * capmem: the libcapmem command for the classroom.
 *
 *   capmem run SCENARIO.yaml      run a scenario file and check its expectations
 *   capmem quiz TOPIC [-s SEED]   generated questions, answers computed with -c
 *   capmem help [COMMAND]
 *
 * Exit status: 0 when everything holds, 1 when a step's outcome differs from
 * its expectation, 2 for bad input (a malformed file, an unknown option).
 */
#include <capmem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "quiz.h"
#include "scenario.h"

static const char usage_main[] =
    "usage: capmem COMMAND [ARGS]\n"
    "\n"
    "Teach and learn how capability microkernels account for memory.\n"
    "\n"
    "commands:\n"
    "  run SCENARIO.yaml    run a scenario file step by step and check its expectations\n"
    "  quiz TOPIC           print generated questions; -c computes the answers\n"
    "  help [COMMAND]       this text, or the help of one command\n"
    "\n"
    "Each command takes --help. Scenario files: docs/scenarios.md.\n"
    "Exit status: 0 all holds, 1 an expectation differs, 2 bad input.\n";

static const char usage_run[] =
    "usage: capmem run [OPTIONS] SCENARIO.yaml\n"
    "\n"
    "Run a scenario file: a machine, then named steps, each optionally with an\n"
    "expectation (an error name, or values such as quota, used, offset, faults).\n"
    "Prints each step and its outcome; stops at the first step whose outcome\n"
    "differs from its expectation and shows expected and actual side by side.\n"
    "\n"
    "options:\n"
    "  --check              only read and check the file (keys, types, names); run nothing\n"
    "  --step               print the text dump of the whole state after every step\n"
    "  --dump FORMAT FILE   write the state at the end as text, json, dot or svg\n"
    "  --after STEP         with --dump: write it after the step of that name instead\n"
    "  --trace FILE         record every event as JSON Lines (docs/inspect.md, Traces)\n"
    "  -h, --help           this text\n"
    "\n"
    "Exit status: 0 every expectation holds, 1 a step differs (or an invariant\n"
    "broke), 2 the file is malformed (FILE:LINE:COLUMN: what was expected).\n"
    "The schema, with a complete example: docs/scenarios.md.\n";

static int cmd_run(int argc, char **argv)
{
    scen_opts_t o;
    memset(&o, 0, sizeof(o));
    o.out = stdout;
    o.err = stderr;
    const char *path = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            fputs(usage_run, stdout);
            return 0;
        } else if (strcmp(a, "--check") == 0) {
            o.check_only = 1;
        } else if (strcmp(a, "--step") == 0) {
            o.step_dump = 1;
        } else if (strcmp(a, "--trace") == 0 && i + 1 < argc) {
            o.trace_path = argv[++i];
        } else if (strcmp(a, "--after") == 0 && i + 1 < argc) {
            o.dump_after = argv[++i];
        } else if (strcmp(a, "--dump") == 0 && i + 2 < argc) {
            const char *fmt = argv[++i];
            static const struct {
                const char *name;
                capmem_dump_format_t format;
            } formats[] = {{"text", CAPMEM_DUMP_TEXT},
                           {"json", CAPMEM_DUMP_JSON},
                           {"dot", CAPMEM_DUMP_DOT},
                           {"svg", CAPMEM_DUMP_SVG}};
            o.dump_format = -1;
            for (int k = 0; k < 4; k++) {
                if (strcmp(fmt, formats[k].name) == 0) {
                    o.dump_format = (int)formats[k].format;
                }
            }
            if (o.dump_format < 0) {
                fprintf(stderr, "capmem run: --dump takes text, json, dot or svg, not '%s'\n", fmt);
                return 2;
            }
            o.dump_path = argv[++i];
        } else if (a[0] == '-' && a[1] != '\0') {
            fprintf(stderr, "capmem run: unknown option or missing argument: %s\n%s", a, usage_run);
            return 2;
        } else if (path == NULL) {
            path = a;
        } else {
            fprintf(stderr, "capmem run: one scenario at a time (got %s and %s)\n", path, a);
            return 2;
        }
    }
    if (path == NULL) {
        fprintf(stderr, "capmem run: which scenario?\n%s", usage_run);
        return 2;
    }
    if (o.dump_after != NULL && o.dump_path == NULL) {
        fprintf(stderr, "capmem run: --after goes with --dump FORMAT FILE\n");
        return 2;
    }
    /* Files the scenario names (a pager's file) are found beside it. */
    char dir[4096];
    snprintf(dir, sizeof(dir), "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash != NULL) {
        *slash = '\0';
        o.base_dir = dir;
    } else {
        o.base_dir = ".";
    }
    return scenario_run_file(path, &o);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fputs(usage_main, stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0) {
        fputs(usage_main, stdout);
        return 0;
    }
    if (strcmp(cmd, "--version") == 0) {
        printf("capmem %d.%d.%d\n", CAPMEM_VERSION_MAJOR, CAPMEM_VERSION_MINOR,
               CAPMEM_VERSION_PATCH);
        return 0;
    }
    if (strcmp(cmd, "help") == 0) {
        if (argc > 2 && strcmp(argv[2], "run") == 0) {
            fputs(usage_run, stdout);
        } else if (argc > 2 && strcmp(argv[2], "quiz") == 0) {
            quiz_usage(stdout);
        } else {
            fputs(usage_main, stdout);
        }
        return 0;
    }
    if (strcmp(cmd, "run") == 0) {
        return cmd_run(argc - 1, argv + 1);
    }
    if (strcmp(cmd, "quiz") == 0) {
        return quiz_main(argc - 1, argv + 1);
    }
    fprintf(stderr, "capmem: unknown command '%s'\n\n%s", cmd, usage_main);
    return 2;
}
