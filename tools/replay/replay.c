/* SPDX-License-Identifier: MIT */
/*
 * capmem-replay: replay an allocation trace against placement policies and
 * report how each one fares: a CSV over time, a summary table, optionally
 * an SVG line chart of fragmentation. docs/alloc.md ("Test your own policy")
 * shows it in use; `capmem-replay --help` lists the options.
 *
 * Traces, detected from their first line (or --format):
 *  - text: `a ID SIZE [ALIGN]`, `f ID`, `at ID OFFSET SIZE`, `# comment`;
 *  - the JSON Lines trace the library records (capmem_trace_start(),
 *    docs/inspect.md): dataspace allocations and frees, session donations
 *    and their upgrades, and session closes become allocations and frees;
 *  - glibc's mtrace log (MALLOC_TRACE=file): `+ ADDR SIZE`, `- ADDR`,
 *    `< ADDR` `> ADDR SIZE` (realloc).
 * The whole trace is read and checked before any policy runs, so bad input
 * gets one message with its line number and exit status 1, never a crash.
 *
 * Policies: built-ins by name (watermark, range, buddy) and custom ones from
 * a shared object, `--policy ./libmine.so:symbol`, where symbol is a
 * capmem_alloc_ops_t with a create hook. Each is made over [0, span) at the
 * granule and driven through the generic calls, so every answer is checked;
 * a wrong answer counts as a failure and is reported.
 */
#define _POSIX_C_SOURCE 200809L
#include <ctype.h>
#include <dlfcn.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <capmem.h>

#include "svg.h" /* the library's SVG writer (src/svg.h, capmem_writer_dep) */

/* ---- the trace -------------------------------------------------------------------- */

typedef enum { T_ALLOC, T_ALLOC_AT, T_FREE } top_kind_t;

typedef struct top {
    top_kind_t kind;
    uint32_t id; /* index into the id table */
    uint64_t size;
    uint64_t align; /* alloc; offset for alloc_at */
    uint64_t line;
} top_t;

typedef struct trace {
    top_t *ops;
    size_t n;
    size_t cap;
    uint32_t nids;
    /* id table: open addressing over names */
    char **names;
    uint32_t *slots; /* index + 1, 0 empty */
    size_t nslots;
    uint8_t *state; /* per id while parsing: 0 never, 1 live, 2 freed */
    size_t state_cap;
    uint64_t span_hint;    /* from a JSON trace's header, else 0 */
    uint64_t granule_hint; /* likewise */
    const char *path;
} trace_t;

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("capmem-replay: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

static void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n == 0 ? 1 : n);
    if (q == NULL) {
        die("out of memory");
    }
    return q;
}

static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) {
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    }
    return h;
}

/* The id named @p name; made if @p make, else UINT32_MAX when unknown. */
static uint32_t id_of(trace_t *t, const char *name, int make)
{
    if (t->nslots == 0 || (uint64_t)t->nids * 2 >= t->nslots) {
        size_t ns = t->nslots == 0 ? 1024 : t->nslots * 2;
        uint32_t *slots = calloc(ns, sizeof(*slots));
        if (slots == NULL) {
            die("out of memory");
        }
        for (uint32_t i = 0; i < t->nids; i++) {
            size_t h = hash_str(t->names[i]) & (ns - 1);
            while (slots[h] != 0) {
                h = (h + 1) & (ns - 1);
            }
            slots[h] = i + 1;
        }
        free(t->slots);
        t->slots = slots;
        t->nslots = ns;
    }
    size_t h = hash_str(name) & (t->nslots - 1);
    while (t->slots[h] != 0) {
        if (strcmp(t->names[t->slots[h] - 1], name) == 0) {
            return t->slots[h] - 1;
        }
        h = (h + 1) & (t->nslots - 1);
    }
    if (!make) {
        return UINT32_MAX;
    }
    t->names = xrealloc(t->names, sizeof(char *) * (t->nids + 1));
    t->names[t->nids] = strdup(name);
    if (t->names[t->nids] == NULL) {
        die("out of memory");
    }
    if (t->nids >= t->state_cap) {
        t->state_cap = t->state_cap == 0 ? 1024 : t->state_cap * 2;
        t->state = xrealloc(t->state, t->state_cap);
    }
    t->state[t->nids] = 0;
    t->slots[h] = t->nids + 1;
    return t->nids++;
}

static void push(trace_t *t, top_t op)
{
    if (t->n == t->cap) {
        t->cap = t->cap == 0 ? 4096 : t->cap * 2;
        t->ops = xrealloc(t->ops, sizeof(top_t) * t->cap);
    }
    t->ops[t->n++] = op;
}

/* Record an allocation of @p name: it must not be live. */
static void add_alloc(trace_t *t, uint64_t line, const char *name, top_kind_t kind, uint64_t size,
                      uint64_t arg)
{
    if (size == 0) {
        die("%s:%llu: size 0 for '%s'", t->path, (unsigned long long)line, name);
    }
    uint32_t id = id_of(t, name, 1);
    if (t->state[id] == 1) {
        die("%s:%llu: '%s' is allocated again while it is live", t->path, (unsigned long long)line,
            name);
    }
    t->state[id] = 1;
    push(t, (top_t){.kind = kind, .id = id, .size = size, .align = arg, .line = line});
}

static void add_free(trace_t *t, uint64_t line, const char *name)
{
    uint32_t id = id_of(t, name, 0);
    if (id == UINT32_MAX) {
        die("%s:%llu: free of '%s', which was never allocated (unknown ID)", t->path,
            (unsigned long long)line, name);
    }
    if (t->state[id] != 1) {
        die("%s:%llu: free of '%s', which was freed already", t->path, (unsigned long long)line,
            name);
    }
    t->state[id] = 2;
    push(t, (top_t){.kind = T_FREE, .id = id, .line = line});
}

/* A number (decimal or 0x hex) that is all of @p s. */
static int parse_u64(const char *s, uint64_t *out)
{
    if (s == NULL || *s == '\0' || *s == '-' || *s == '+') {
        return 0;
    }
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 0);
    if (errno != 0 || *end != '\0') {
        return 0;
    }
    *out = v;
    return 1;
}

static void parse_text_line(trace_t *t, uint64_t line, char *s)
{
    char *hash = strchr(s, '#');
    if (hash != NULL) {
        *hash = '\0';
    }
    char *tok[5];
    int n = 0;
    for (char *p = strtok(s, " \t\r\n"); p != NULL; p = strtok(NULL, " \t\r\n")) {
        if (n == 5) {
            die("%s:%llu: too many fields", t->path, (unsigned long long)line);
        }
        tok[n++] = p;
    }
    if (n == 0) {
        return;
    }
    uint64_t a = 0;
    uint64_t b = 1;
    if (strcmp(tok[0], "a") == 0 && (n == 3 || n == 4) && parse_u64(tok[2], &a) &&
        (n == 3 || parse_u64(tok[3], &b))) {
        if (b == 0 || (b & (b - 1)) != 0) {
            die("%s:%llu: alignment %s is not a power of two", t->path, (unsigned long long)line,
                tok[3]);
        }
        add_alloc(t, line, tok[1], T_ALLOC, a, b);
    } else if (strcmp(tok[0], "f") == 0 && n == 2) {
        add_free(t, line, tok[1]);
    } else if (strcmp(tok[0], "at") == 0 && n == 4 && parse_u64(tok[2], &b) &&
               parse_u64(tok[3], &a)) {
        add_alloc(t, line, tok[1], T_ALLOC_AT, a, b);
    } else {
        die("%s:%llu: malformed line (expected `a ID SIZE [ALIGN]`, `f ID` or `at ID OFFSET "
            "SIZE`)",
            t->path, (unsigned long long)line);
    }
}

/* The value of "key": in a JSON object line: a number, or a string's contents. */
static int json_field(const char *s, const char *key, char *out, size_t len)
{
    char pat[64];
    snprintf(pat, sizeof(pat), "\"%s\":", key);
    const char *p = strstr(s, pat);
    if (p == NULL) {
        return 0;
    }
    p += strlen(pat);
    size_t k = 0;
    if (*p == '"') {
        for (p++; *p != '\0' && *p != '"' && k + 1 < len; p++) {
            if (*p == '\\' && p[1] != '\0') {
                p++;
            }
            out[k++] = *p;
        }
        if (*p != '"') {
            return 0;
        }
    } else {
        for (; isdigit((unsigned char)*p) && k + 1 < len; p++) {
            out[k++] = *p;
        }
        if (k == 0) {
            return 0;
        }
    }
    out[k] = '\0';
    return 1;
}

static uint64_t json_u64(trace_t *t, uint64_t line, const char *s, const char *key)
{
    char v[32];
    uint64_t x = 0;
    if (!json_field(s, key, v, sizeof(v)) || !parse_u64(v, &x)) {
        die("%s:%llu: event without a numeric \"%s\"", t->path, (unsigned long long)line, key);
    }
    return x;
}

static void parse_json_line(trace_t *t, uint64_t line, const char *s)
{
    const char *p = s;
    while (isspace((unsigned char)*p)) {
        p++;
    }
    if (*p == '\0') {
        return;
    }
    size_t n = strlen(p);
    while (n > 0 && isspace((unsigned char)p[n - 1])) {
        n--;
    }
    if (*p != '{' || p[n - 1] != '}') {
        die("%s:%llu: not a JSON object", t->path, (unsigned long long)line);
    }
    char v[96];
    if (t->granule_hint == 0) {
        /* The first object is the header. */
        if (!json_field(p, "format", v, sizeof(v)) || strcmp(v, "capmem-trace") != 0) {
            die("%s:%llu: not a capmem trace header", t->path, (unsigned long long)line);
        }
        if (json_u64(t, line, p, "version") != 1) {
            die("%s:%llu: trace version %llu is not known (1 is)", t->path,
                (unsigned long long)line, (unsigned long long)json_u64(t, line, p, "version"));
        }
        t->span_hint = json_u64(t, line, p, "ram_size");
        t->granule_hint = json_u64(t, line, p, "page_size");
        if (t->granule_hint == 0) {
            die("%s:%llu: page_size 0 in the header", t->path, (unsigned long long)line);
        }
        return;
    }
    char kind[64];
    char cap[32];
    if (!json_field(p, "kind", kind, sizeof(kind)) || !json_field(p, "cap", cap, sizeof(cap))) {
        die("%s:%llu: event without \"kind\" or \"cap\"", t->path, (unsigned long long)line);
    }
    char name[48];
    if (strcmp(kind, "dataspace alloc") == 0) {
        snprintf(name, sizeof(name), "ds:%s", cap);
        add_alloc(t, line, name, T_ALLOC, json_u64(t, line, p, "size"), t->granule_hint);
    } else if (strcmp(kind, "dataspace free") == 0) {
        snprintf(name, sizeof(name), "ds:%s", cap);
        if (json_u64(t, line, p, "b") == CAPMEM_DS_RAM) {
            add_free(t, line, name);
        }
    } else if (strcmp(kind, "donate") == 0) {
        snprintf(name, sizeof(name), "session:%s", cap);
        add_alloc(t, line, name, T_ALLOC, json_u64(t, line, p, "a"), t->granule_hint);
    } else if (strcmp(kind, "upgrade") == 0) {
        /* A new chunk of the session's donation: upgrade:CAP:1, :2, ... */
        for (unsigned k = 1;; k++) {
            snprintf(name, sizeof(name), "upgrade:%s:%u", cap, k);
            if (id_of(t, name, 0) == UINT32_MAX) {
                break;
            }
        }
        add_alloc(t, line, name, T_ALLOC, json_u64(t, line, p, "a"), t->granule_hint);
    } else if (strcmp(kind, "session close") == 0) {
        /* The donation and every upgrade go back. */
        snprintf(name, sizeof(name), "session:%s", cap);
        if (id_of(t, name, 0) != UINT32_MAX) {
            add_free(t, line, name);
        }
        for (unsigned k = 1;; k++) {
            snprintf(name, sizeof(name), "upgrade:%s:%u", cap, k);
            uint32_t id = id_of(t, name, 0);
            if (id == UINT32_MAX) {
                break;
            }
            if (t->state[id] == 1) {
                add_free(t, line, name);
            }
        }
    }
    /* Other kinds place nothing in physical memory this replay models. */
}

static void parse_mtrace_line(trace_t *t, uint64_t line, char *s)
{
    char *tok[8];
    int n = 0;
    for (char *p = strtok(s, " \t\r\n"); p != NULL && n < 8; p = strtok(NULL, " \t\r\n")) {
        tok[n++] = p;
    }
    if (n == 0 || tok[0][0] == '=') {
        return; /* "= Start", "= End" */
    }
    /* "@ caller" comes first when the caller is known. */
    int i = 0;
    if (strcmp(tok[0], "@") == 0) {
        i = 2;
    }
    if (i >= n) {
        die("%s:%llu: malformed mtrace line", t->path, (unsigned long long)line);
    }
    uint64_t size = 0;
    uint64_t addr = 0;
    if ((strcmp(tok[i], "+") == 0 || strcmp(tok[i], ">") == 0) && n == i + 3 &&
        parse_u64(tok[i + 1], &addr) && parse_u64(tok[i + 2], &size)) {
        if (size == 0) {
            return; /* malloc(0): nothing to place */
        }
        add_alloc(t, line, tok[i + 1], T_ALLOC, size, 16);
    } else if ((strcmp(tok[i], "-") == 0 || strcmp(tok[i], "<") == 0) && n == i + 2 &&
               parse_u64(tok[i + 1], &addr)) {
        uint32_t id = id_of(t, tok[i + 1], 0);
        if (id == UINT32_MAX && strcmp(tok[i], "-") == 0) {
            /* glibc logs frees of blocks allocated before tracing began: skip them. */
            return;
        }
        if (id != UINT32_MAX && t->state[id] == 1) {
            add_free(t, line, tok[i + 1]);
        }
    } else {
        die("%s:%llu: malformed mtrace line", t->path, (unsigned long long)line);
    }
}

typedef enum { F_AUTO, F_TEXT, F_JSON, F_MTRACE } format_t;

static void read_trace(trace_t *t, const char *path, format_t fmt)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "r");
    if (f == NULL) {
        die("%s: %s", path, strerror(errno));
    }
    t->path = path;
    char *buf = NULL;
    size_t cap = 0;
    uint64_t line = 0;
    ssize_t len;
    while ((len = getline(&buf, &cap, f)) >= 0) {
        line++;
        if ((size_t)len != strlen(buf)) {
            die("%s:%llu: a NUL byte in the line", path, (unsigned long long)line);
        }
        if (fmt == F_AUTO) {
            const char *p = buf;
            while (isspace((unsigned char)*p)) {
                p++;
            }
            if (*p == '\0') {
                continue; /* the format is told by the first line that is not blank */
            }
            fmt = *p == '{' ? F_JSON : (*p == '=' || *p == '@') ? F_MTRACE : F_TEXT;
        }
        switch (fmt) {
        case F_JSON:
            parse_json_line(t, line, buf);
            break;
        case F_MTRACE:
            parse_mtrace_line(t, line, buf);
            break;
        default:
            parse_text_line(t, line, buf);
            break;
        }
    }
    free(buf);
    if (ferror(f)) {
        die("%s: read error", path);
    }
    if (f != stdin) {
        fclose(f);
    }
}

/* ---- policies --------------------------------------------------------------------- */

typedef struct pol {
    char label[128];
    capmem_alloc_policy_t recipe;
    void *dl;
} pol_t;

static void load_policy(pol_t *p, const char *spec)
{
    snprintf(p->label, sizeof(p->label), "%s", spec);
    const char *colon = strrchr(spec, ':');
    if (colon == NULL) {
        if (capmem_alloc_policy_by_name(spec, &p->recipe) != CAPMEM_OK) {
            die("no built-in policy named '%s' (watermark, range, buddy; or FILE.so:SYMBOL)", spec);
        }
        return;
    }
    char file[1024];
    snprintf(file, sizeof(file), "%.*s", (int)(colon - spec), spec);
    p->dl = dlopen(file, RTLD_NOW | RTLD_LOCAL);
    if (p->dl == NULL) {
        die("cannot load '%s': %s", file, dlerror());
    }
    const capmem_alloc_ops_t *ops = dlsym(p->dl, colon + 1);
    if (ops == NULL) {
        die("'%s' has no symbol '%s'", file, colon + 1);
    }
    if (ops->create == NULL || ops->alloc == NULL || ops->free == NULL || ops->alloc_at == NULL ||
        ops->avail == NULL || ops->largest == NULL || ops->reset == NULL) {
        die("'%s' in '%s' is not a policy with a create hook (capmem_alloc_ops_t, capmem/alloc.h)",
            colon + 1, file);
    }
    p->recipe = CAPMEM_ALLOC_POLICY_CUSTOM(ops, NULL);
    if (ops->name != NULL && ops->name[0] != '\0') {
        snprintf(p->label, sizeof(p->label), "%s", ops->name);
    }
}

/* ---- running ---------------------------------------------------------------------- */

typedef struct result {
    uint64_t served;
    uint64_t failed;
    uint64_t wrong; /* answers refused as POLICY */
    double peak_frag;
    double frag_sum;
    uint64_t samples;
    double ns_per_op;
    double *frag; /* per sample, for the chart */
} result_t;

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static void run_policy(const trace_t *t, const pol_t *p, uint64_t span, uint64_t granule,
                       uint64_t every, FILE *csv, result_t *r)
{
    capmem_alloc_t *a = NULL;
    if (capmem_alloc_create_policy(&p->recipe, 0, span, granule, &a) != CAPMEM_OK) {
        die("policy '%s': %s", p->label, capmem_last_error()->message);
    }
    uint64_t *off = calloc(t->nids > 0 ? t->nids : 1, sizeof(uint64_t));
    uint8_t *live = calloc(t->nids > 0 ? t->nids : 1, 1);
    r->frag = calloc(t->n / every + 2, sizeof(double));
    if (off == NULL || live == NULL || r->frag == NULL) {
        die("out of memory");
    }
    uint64_t nlive = 0;
    double spent = 0;
    for (size_t i = 0; i < t->n; i++) {
        const top_t *o = &t->ops[i];
        double t0 = now_ns();
        capmem_err_t err = CAPMEM_OK;
        switch (o->kind) {
        case T_ALLOC:
            err = capmem_alloc_alloc(a, o->size, o->align, &off[o->id]);
            break;
        case T_ALLOC_AT:
            err = capmem_alloc_alloc_at(a, o->align, o->size);
            off[o->id] = o->align;
            break;
        case T_FREE:
        default: {
            /* The size of the block: that of its allocation, the last op with its id before. */
            if (live[o->id]) {
                err = capmem_alloc_free(a, off[o->id], o->size);
            }
            break;
        }
        }
        spent += now_ns() - t0;
        if (o->kind != T_FREE) {
            if (err == CAPMEM_OK) {
                r->served++;
                live[o->id] = 1;
                nlive++;
            } else {
                r->failed++;
                if (err == CAPMEM_E_POLICY) {
                    r->wrong++;
                    if (r->wrong <= 3) {
                        fprintf(stderr, "capmem-replay: %s:%llu: %s\n", t->path,
                                (unsigned long long)o->line, capmem_last_error()->message);
                    }
                }
            }
        } else if (live[o->id]) {
            if (err != CAPMEM_OK) {
                fprintf(stderr, "capmem-replay: %s:%llu: policy '%s' refused a free: %s\n", t->path,
                        (unsigned long long)o->line, p->label, capmem_last_error()->message);
            }
            live[o->id] = 0;
            nlive--;
        }
        if ((i + 1) % every == 0 || i + 1 == t->n) {
            capmem_alloc_stats_t st = {.size = sizeof(st)};
            if (capmem_alloc_stats(a, &st) != CAPMEM_OK) {
                die("policy '%s': stats: %s", p->label, capmem_last_error()->message);
            }
            r->peak_frag = st.fragmentation > r->peak_frag ? st.fragmentation : r->peak_frag;
            r->frag_sum += st.fragmentation;
            r->frag[r->samples++] = st.fragmentation;
            if (csv != NULL) {
                fprintf(csv, "%s,%zu,%llu,%llu,%llu,%llu,%llu,%.6f,%llu\n", p->label, i + 1,
                        (unsigned long long)nlive, (unsigned long long)r->served,
                        (unsigned long long)r->failed, (unsigned long long)st.free_bytes,
                        (unsigned long long)st.largest_free, st.fragmentation,
                        (unsigned long long)st.align_loss);
            }
        }
    }
    r->ns_per_op = t->n > 0 ? spent / (double)t->n : 0;
    capmem_alloc_destroy(a);
    free(off);
    free(live);
}

/* Give every free the size of its allocation (the policy's free takes it). */
static void resolve_sizes(trace_t *t)
{
    uint64_t *size = calloc(t->nids > 0 ? t->nids : 1, sizeof(uint64_t));
    if (size == NULL) {
        die("out of memory");
    }
    for (size_t i = 0; i < t->n; i++) {
        top_t *o = &t->ops[i];
        if (o->kind == T_FREE) {
            o->size = size[o->id];
        } else {
            size[o->id] = o->size;
        }
    }
    free(size);
}

/* ---- the chart -------------------------------------------------------------------- */

/* Line colours, told apart in colour and in grey (Okabe and Ito's palette). */
static const char *const palette[] = {"#0072b2", "#d55e00", "#009e73", "#cc79a7",
                                      "#e69f00", "#56b4e9", "#000000", "#f0e442"};

/*
 * Fragmentation over time, one line per policy: x is the operation index
 * (0 .. ops), y the external fragmentation (0 .. 1), with axes, ticks, grid
 * lines, labels, a title and a legend. Drawn with the library's SVG writer.
 */
static void write_chart(const char *path, const char *title, uint64_t every, size_t nops,
                        const pol_t *pols, const result_t *res, size_t npol)
{
    FILE *f = fopen(path, "w");
    if (f == NULL) {
        die("%s: %s", path, strerror(errno));
    }
    const double W = 760;
    const double H = 440;
    const double L = 70; /* plot area: left, top, right, bottom margins */
    const double T = 50;
    const double R = 20;
    const double B = 90;
    const double pw = W - L - R;
    const double ph = H - T - B;
    const double xmax = nops > 0 ? (double)nops : 1;
    char head[512];
    snprintf(head, sizeof(head), "External fragmentation over time: %s", title);
    capmem__svg_begin(f, W, H, head);
    capmem__svg_text(f, W / 2, 28, 15, CAPMEM__SVG_MIDDLE, NULL, 1, head);
    /* Grid and y ticks: 0, 0.25, ..., 1. */
    for (int k = 0; k <= 4; k++) {
        double y = T + ph - ph * k / 4.0;
        capmem__svg_line(f, L, y, L + pw, y, "#dddddd", 1, k == 0 ? NULL : "3 3");
        capmem__svg_textf(f, L - 8, y + 4, 11, CAPMEM__SVG_END, NULL, 0, "%.2f", k / 4.0);
    }
    /* x ticks: five steps of the operation index. */
    for (int k = 0; k <= 5; k++) {
        double x = L + pw * k / 5.0;
        capmem__svg_line(f, x, T + ph, x, T + ph + 5, "#000000", 1, NULL);
        capmem__svg_textf(f, x, T + ph + 18, 11, CAPMEM__SVG_MIDDLE, NULL, 0, "%llu",
                          (unsigned long long)(xmax * k / 5.0 + 0.5));
    }
    capmem__svg_line(f, L, T, L, T + ph, "#000000", 1.5, NULL);
    capmem__svg_line(f, L, T + ph, L + pw, T + ph, "#000000", 1.5, NULL);
    capmem__svg_text(f, L + pw / 2, T + ph + 38, 12, CAPMEM__SVG_MIDDLE, NULL, 0, "operation");
    /* The y label, turned: a group rotated about its anchor. */
    capmem__svg_open(f, "text");
    capmem__svg_attr_num(f, "x", 18);
    capmem__svg_attr_num(f, "y", T + ph / 2);
    capmem__svg_attr(f, "font-size", "12");
    capmem__svg_attr(f, "text-anchor", "middle");
    char rot[64];
    snprintf(rot, sizeof(rot), "rotate(-90 18 %d)", (int)(T + ph / 2));
    capmem__svg_attr(f, "transform", rot);
    capmem__svg_end_start(f);
    capmem__svg_escape(f, "fragmentation (1 - largest / free)");
    capmem__svg_close(f, "text");
    for (size_t i = 0; i < npol; i++) {
        const char *c = palette[i % (sizeof(palette) / sizeof(palette[0]))];
        capmem__svg_polyline_begin(f, c, 2);
        for (uint64_t k = 0; k < res[i].samples; k++) {
            uint64_t op = (k + 1) * every < nops ? (k + 1) * every : nops;
            double v = res[i].frag[k];
            v = v < 0 ? 0 : v > 1 ? 1 : v;
            capmem__svg_polyline_point(f, L + pw * (double)op / xmax, T + ph - ph * v);
        }
        capmem__svg_polyline_end(f);
    }
    /* The legend, in a row under the axis label. */
    double x = L;
    for (size_t i = 0; i < npol; i++) {
        const char *c = palette[i % (sizeof(palette) / sizeof(palette[0]))];
        x = capmem__svg_legend_entry(f, x, H - 30, 12, c, pols[i].label) + 18;
    }
    capmem__svg_end(f);
    if (ferror(f) || fclose(f) != 0) {
        die("%s: write error", path);
    }
}

static void usage(FILE *f)
{
    fputs("usage: capmem-replay [options] TRACE\n"
          "  --policy P      a built-in (watermark, range, buddy) or FILE.so:SYMBOL; repeatable\n"
          "                  (default: watermark, range and buddy)\n"
          "  --format F      text, json or mtrace (default: from the first line)\n"
          "  --span BYTES    the span the policies manage (default: the JSON trace's RAM,\n"
          "                  else 1 GiB)\n"
          "  --granule BYTES a power of two (default: the JSON trace's page, else 16)\n"
          "  --csv FILE      write the CSV over time ('-': standard output)\n"
          "  --every N       a CSV row (and chart point) every N operations (default: about\n"
          "                  1000 rows)\n"
          "  --svg FILE      a line chart of fragmentation over time, one line per policy\n"
          "  --help          this text\n"
          "Trace formats: text (`a ID SIZE [ALIGN]`, `f ID`, `at ID OFFSET SIZE`, # comments),\n"
          "the library's JSON Lines trace, glibc mtrace logs. Exit status: 0 done, 1 bad input,\n"
          "2 bad usage.\n",
          f);
}

int main(int argc, char **argv)
{
    pol_t pols[32];
    size_t npol = 0;
    const char *trace_path = NULL;
    const char *csv_path = NULL;
    const char *svg_path = NULL;
    format_t fmt = F_AUTO;
    uint64_t span = 0;
    uint64_t granule = 0;
    uint64_t every = 0;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            usage(stdout);
            return 0;
        }
        if (arg[0] == '-' && arg[1] == '-') {
            if (val == NULL) {
                fprintf(stderr, "capmem-replay: %s needs a value\n", arg);
                usage(stderr);
                return 2;
            }
            i++;
            if (strcmp(arg, "--policy") == 0) {
                if (npol == 32) {
                    die("at most 32 policies");
                }
                load_policy(&pols[npol++], val);
            } else if (strcmp(arg, "--csv") == 0) {
                csv_path = val;
            } else if (strcmp(arg, "--svg") == 0) {
                svg_path = val;
            } else if (strcmp(arg, "--format") == 0) {
                fmt = strcmp(val, "text") == 0     ? F_TEXT
                      : strcmp(val, "json") == 0   ? F_JSON
                      : strcmp(val, "mtrace") == 0 ? F_MTRACE
                                                   : (die("unknown format '%s'", val), F_AUTO);
            } else if (strcmp(arg, "--span") == 0 && parse_u64(val, &span) && span > 0) {
            } else if (strcmp(arg, "--granule") == 0 && parse_u64(val, &granule) && granule > 0 &&
                       (granule & (granule - 1)) == 0) {
            } else if (strcmp(arg, "--every") == 0 && parse_u64(val, &every) && every > 0) {
            } else {
                fprintf(stderr, "capmem-replay: bad option or value: %s %s\n", arg, val);
                usage(stderr);
                return 2;
            }
        } else if (trace_path == NULL) {
            trace_path = arg;
        } else {
            fprintf(stderr, "capmem-replay: one trace at a time (got '%s' and '%s')\n", trace_path,
                    arg);
            return 2;
        }
    }
    if (trace_path == NULL) {
        usage(stderr);
        return 2;
    }
    if (npol == 0) {
        static const char *const builtin[] = {"watermark", "range", "buddy"};
        for (size_t i = 0; i < 3; i++) {
            load_policy(&pols[npol++], builtin[i]);
        }
    }
    trace_t t = {0};
    read_trace(&t, trace_path, fmt);
    resolve_sizes(&t);
    if (span == 0) {
        span = t.span_hint != 0 ? t.span_hint : 1ull << 30;
    }
    if (granule == 0) {
        granule = t.granule_hint != 0 ? t.granule_hint : 16;
    }
    if (span % granule != 0) {
        die("the span %llu is not a multiple of the granule %llu", (unsigned long long)span,
            (unsigned long long)granule);
    }
    if (every == 0) {
        every = t.n / 1000 > 0 ? t.n / 1000 : 1;
    }
    FILE *csv = NULL;
    if (csv_path != NULL) {
        csv = strcmp(csv_path, "-") == 0 ? stdout : fopen(csv_path, "w");
        if (csv == NULL) {
            die("%s: %s", csv_path, strerror(errno));
        }
        fputs("policy,op,live,served,failed,free,largest,fragmentation,align_loss\n", csv);
    }
    result_t res[32];
    memset(res, 0, sizeof(res));
    for (size_t i = 0; i < npol; i++) {
        run_policy(&t, &pols[i], span, granule, every, csv, &res[i]);
    }
    if (csv != NULL && csv != stdout && fclose(csv) != 0) {
        die("%s: write error", csv_path);
    }
    FILE *out = csv == stdout ? stderr : stdout;
    fprintf(out, "%s: %zu operations, span %llu bytes, granule %llu\n", trace_path, t.n,
            (unsigned long long)span, (unsigned long long)granule);
    fprintf(out, "%-20s %10s %10s %10s %10s %10s\n", "policy", "served", "failures", "peak frag",
            "mean frag", "ns/op");
    for (size_t i = 0; i < npol; i++) {
        const result_t *r = &res[i];
        fprintf(out, "%-20s %10llu %10llu %10.4f %10.4f %10.1f\n", pols[i].label,
                (unsigned long long)r->served, (unsigned long long)r->failed, r->peak_frag,
                r->samples > 0 ? r->frag_sum / (double)r->samples : 0.0, r->ns_per_op);
        if (r->wrong > 0) {
            fprintf(out, "  (%llu of its answers were wrong and refused as POLICY)\n",
                    (unsigned long long)r->wrong);
        }
    }
    if (svg_path != NULL) {
        write_chart(svg_path, trace_path, every, t.n, pols, res, npol);
    }
    for (size_t i = 0; i < npol; i++) {
        free(res[i].frag);
    }
    for (uint32_t i = 0; i < t.nids; i++) {
        free(t.names[i]);
    }
    free(t.names);
    free(t.slots);
    free(t.state);
    free(t.ops);
    return 0;
}
