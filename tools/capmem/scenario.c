/* SPDX-License-Identifier: MIT */
/*
 * The scenario interpreter of `capmem run` (docs/scenarios.md).
 *
 * Each step is read by one function per action (step_retype, step_open,
 * ...), and that same function runs twice: first with r->dry set, when it
 * only reads and checks its keys and names and records what the step
 * defines or closes, then for real. So the file is checked whole before
 * anything runs, and the checks and the run cannot disagree about what a
 * key means. The list of keys a step accepts is gathered from the calls
 * that read them, so "unknown key" messages list exactly those.
 */
#define _POSIX_C_SOURCE 200809L
#include "scenario.h"

#include <capmem.h>
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "yamltree.h"

/*
 * The kernel layer (capmem/kernel.h, capmem/bank.h) is optional: meson
 * defines CAPMEM_TOOL_KERNEL when the library has it, and the kernel and
 * bank steps exist only then.
 */
#ifndef CAPMEM_TOOL_KERNEL
#define CAPMEM_TOOL_KERNEL 0
#endif
#if CAPMEM_TOOL_KERNEL
#define KERNEL_EVENTS CAPMEM_EVENT_MASK(CAPMEM_EVENT_KERNEL_HEAP)
#define MACHINE_KERNEL_KEY " or kernel"
#else
#define KERNEL_EVENTS 0u
#define MACHINE_KERNEL_KEY ""
#endif

/* ------------------------------------------------------------------------ */
/* Names the scenario defines */

typedef enum symkind {
    S_UNTYPED = 1,
    S_OBJECT, /* frame or kernel object */
    S_ACCOUNT,
    S_DS,
    S_MAP,
    S_DEVICE, /* a hot-plugged device range */
    S_KERNEL, /* the kernel heap (machine: kernel:) */
    S_BANK,   /* a space bank */
} symkind_t;

static const char *symkind_name(symkind_t k)
{
    switch (k) {
    case S_UNTYPED:
        return "an untyped region";
    case S_OBJECT:
        return "a retyped object";
    case S_ACCOUNT:
        return "an account";
    case S_DS:
        return "a dataspace";
    case S_MAP:
        return "a region map";
    case S_DEVICE:
        return "a device range";
    case S_KERNEL:
        return "the kernel";
    case S_BANK:
        return "a space bank";
    }
    return "an object";
}

typedef struct pager pager_t;

typedef struct sym {
    char *name;
    symkind_t kind;
    int parent;         /* the symbol whose end ends this one too, or -1 */
    int def_line;       /* line of the step that made it */
    int def_step;       /* number of that step */
    int dead_line;      /* line of the step that ended it (0: alive) */
    char dead_step[96]; /* that step's label */
    capmem_cap_t cap;
    capmem_cap_t caps_from; /* untyped or object: the untyped it was retyped from */
    int owner;              /* dataspace: the account that pays for it (default alias payer) */
    int dependent;          /* dataspace: a dependent alias (dies with parent) */
    int lender;             /* dataspace: the account charged for its pages */
    int count;              /* retype: objects made */
    pager_t *pager;         /* region map */
    uint32_t device_id;     /* device range */
    int bank;               /* an object of a space bank: its bank */
} sym_t;

/* ------------------------------------------------------------------------ */
/* Pagers: the fault handlers a region map can be given */

typedef enum pager_kind { PAGER_NONE = 0, PAGER_ZERO, PAGER_FILE } pager_kind_t;

struct pager {
    pager_kind_t kind;
    struct run *r;
    int map;    /* symbol of its map */
    int client; /* symbol of the account that pays */
    uint64_t page;
    uint64_t fills;
    uint64_t evictions;
    /* file cache */
    uint8_t *file;
    uint64_t file_size;
    capmem_cap_t cache;
    uint64_t slots;
    uint64_t *holds; /* file page + 1 per cache slot, 0 when empty */
    uint64_t *stamp; /* last use, for LRU */
    uint64_t clock;
    capmem_err_t failed; /* the first library error inside the handler */
};

/* ------------------------------------------------------------------------ */
/* One run */

#define MAX_KNOWN 40
#define MAX_RESULTS 12

typedef enum vtype { V_NUM = 'n', V_BOOL = 'b', V_TEXT = 't', V_SYM = 's' } vtype_t;

typedef struct result {
    const char *key;
    vtype_t type;
    uint64_t num;
    char text[240];
} result_t;

typedef struct run {
    const scen_opts_t *o;
    const char *file;
    int dry;
    int bad; /* a bad-input error was reported */
    sym_t *syms;
    size_t nsyms, capsyms;
    capmem_arena_t *arena;
    uint64_t page;
    capmem_untyped_info_t boot[64];
    size_t nboot;
    FILE *trace;
    int have_kernel;
#if CAPMEM_TOOL_KERNEL
    capmem_kernel_attr_t kattr;
#endif
    /* the step being read or run */
    ynode_t *step;
    int stepno;
    char label[96];
    const char *action;
    ynode_t *action_value;
    int subject;     /* symbol the step is about, for its values */
    int subject2;    /* a second one, asked when the first has no such value (e.g. the payer) */
    size_t next_sym; /* run pass: symbols defined so far (names resolve among these) */
    struct attrec {
        int map, sym;
        uint64_t address;
    } * atts; /* what the attach steps attached where, to follow managed dataspaces */
    size_t natts, capatts;
    const char *known[MAX_KNOWN];
    int nknown;
    ynode_t *expect;         /* the expect: node, or NULL */
    capmem_err_t want_error; /* CAPMEM_OK when no error is expected */
    int want_error_given;
    int repeating;      /* a repeat: step runs quietly */
    int dump_step_seen; /* --after names a step of the file */
    /* what happened in it */
    capmem_err_t got;
    capmem_error_info_t got_info;
    result_t results[MAX_RESULTS];
    int nresults;
    uint64_t faults;
    int fault_map;
    uint64_t fault_address;
    capmem_rm_access_t fault_access;
    uint64_t upgrades;
} run_t;

static int bad(run_t *r, const ynode_t *at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int bad(run_t *r, const ynode_t *at, const char *fmt, ...)
{
    if (r->bad) {
        return -1;
    }
    r->bad = 1;
    va_list ap;
    va_start(ap, fmt);
    if (at != NULL) {
        fprintf(r->o->err, "%s:%d:%d: ", r->file, at->line, at->column);
    } else if (r->arena == NULL) {
        fprintf(r->o->err, "%s:1:1: ", r->file);
    } else {
        fprintf(r->o->err, "%s: ", r->file);
    }
    vfprintf(r->o->err, fmt, ap);
    fputc('\n', r->o->err);
    va_end(ap);
    return -1;
}

static void say(run_t *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void say(run_t *r, const char *fmt, ...)
{
    if (r->dry || r->repeating > 1) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    vfprintf(r->o->out, fmt, ap);
    va_end(ap);
}

/* ------------------------------------------------------------------------ */
/* Reading values */

static const char *fmt_size(uint64_t v, char buf[32])
{
    if (v != 0 && v % (1ull << 30) == 0) {
        snprintf(buf, 32, "%" PRIu64 " GiB", v >> 30);
    } else if (v != 0 && v % (1ull << 20) == 0) {
        snprintf(buf, 32, "%" PRIu64 " MiB", v >> 20);
    } else if (v != 0 && v % 1024 == 0) {
        snprintf(buf, 32, "%" PRIu64 " KiB", v >> 10);
    } else {
        snprintf(buf, 32, "%" PRIu64 " B", v);
    }
    return buf;
}

/* A number: 4096, 0x1000, 64 KiB, 1M, 2 GiB. */
static int parse_number(const char *s, uint64_t *out)
{
    while (isspace((unsigned char)*s)) {
        s++;
    }
    if (strcmp(s, "unlimited") == 0) {
        *out = UINT64_MAX; /* a bank limit that never binds */
        return 0;
    }
    if (!isdigit((unsigned char)*s)) {
        return -1;
    }
    errno = 0;
    char *end = NULL;
    unsigned long long v = strtoull(s, &end, 0);
    if (errno != 0 || end == s) {
        return -1;
    }
    while (*end == ' ' || *end == '_') {
        end++;
    }
    unsigned shift = 0;
    if (*end != '\0') {
        char unit[8] = {0};
        size_t n = strlen(end);
        if (n >= sizeof(unit)) {
            return -1;
        }
        memcpy(unit, end, n);
        while (n > 0 && unit[n - 1] == ' ') {
            unit[--n] = '\0';
        }
        if (strcmp(unit, "B") == 0) {
            shift = 0;
        } else if (strcmp(unit, "K") == 0 || strcmp(unit, "KiB") == 0 || strcmp(unit, "KB") == 0) {
            shift = 10;
        } else if (strcmp(unit, "M") == 0 || strcmp(unit, "MiB") == 0 || strcmp(unit, "MB") == 0) {
            shift = 20;
        } else if (strcmp(unit, "G") == 0 || strcmp(unit, "GiB") == 0 || strcmp(unit, "GB") == 0) {
            shift = 30;
        } else {
            return -1;
        }
    }
    if (shift != 0 && v > (UINT64_MAX >> shift)) {
        return -1;
    }
    *out = (uint64_t)v << shift;
    return 0;
}

static int parse_bool(const char *s, int *out)
{
    static const char *yes[] = {"true", "yes", "on"};
    static const char *no[] = {"false", "no", "off"};
    for (int i = 0; i < 3; i++) {
        if (strcmp(s, yes[i]) == 0) {
            *out = 1;
            return 0;
        }
        if (strcmp(s, no[i]) == 0) {
            *out = 0;
            return 0;
        }
    }
    return -1;
}

static int err_by_name(const char *s, capmem_err_t *out)
{
    for (int e = 0; e < (int)CAPMEM_E__COUNT; e++) {
        if (strcmp(capmem_err_name((capmem_err_t)e), s) == 0) {
            *out = (capmem_err_t)e;
            return 0;
        }
    }
    return -1;
}

/* Remember that the current step accepts @p key (for the unknown-key message) and find it. */
static ynode_t *key(run_t *r, const char *k)
{
    int seen = 0;
    for (int i = 0; i < r->nknown; i++) {
        if (strcmp(r->known[i], k) == 0) {
            seen = 1;
        }
    }
    if (!seen && r->nknown < MAX_KNOWN) {
        r->known[r->nknown++] = k;
    }
    for (size_t i = 0; i < r->step->n; i++) {
        if (strcmp(r->step->keys[i]->value, k) == 0) {
            r->step->keys[i]->used = 1;
            return r->step->items[i];
        }
    }
    return NULL;
}

static int want_scalar(run_t *r, const ynode_t *v, const char *k, const char *what)
{
    if (v->kind != Y_SCALAR) {
        return bad(r, v, "'%s' takes %s, found %s", k, what, ytree_kind_name(v));
    }
    return 0;
}

/* A size or count under key @p k; @p def when absent (and not required). */
static uint64_t arg_num(run_t *r, const char *k, int required, uint64_t def)
{
    ynode_t *v = key(r, k);
    if (v == NULL) {
        if (required) {
            bad(r, r->action_value, "'%s' needs '%s:' (a number such as 4096, 0x1000 or 64 KiB)",
                r->action, k);
        }
        return def;
    }
    if (want_scalar(r, v, k, "a number") != 0) {
        return def;
    }
    uint64_t n;
    if (parse_number(v->value, &n) != 0) {
        bad(r, v, "'%s' takes a number such as 4096, 0x1000 or 64 KiB, found '%s'", k, v->value);
        return def;
    }
    return n;
}

static int arg_bool(run_t *r, const char *k, int def)
{
    ynode_t *v = key(r, k);
    if (v == NULL) {
        return def;
    }
    if (want_scalar(r, v, k, "true or false") != 0) {
        return def;
    }
    int b;
    if (parse_bool(v->value, &b) != 0) {
        bad(r, v, "'%s' takes true or false, found '%s'", k, v->value);
        return def;
    }
    return b;
}

/* One word of @p choices (NULL-terminated); returns its index or @p def. */
static int arg_choice(run_t *r, const char *k, const char *const *choices, int def)
{
    ynode_t *v = key(r, k);
    if (v == NULL) {
        return def;
    }
    char list[256] = "";
    for (int i = 0; choices[i] != NULL; i++) {
        if (v->kind == Y_SCALAR && strcmp(v->value, choices[i]) == 0) {
            return i;
        }
        size_t len = strlen(list);
        snprintf(list + len, sizeof(list) - len, "%s%s", i ? ", " : "", choices[i]);
    }
    if (v->kind != Y_SCALAR) {
        bad(r, v, "'%s' takes one of %s, found %s", k, list, ytree_kind_name(v));
    } else {
        bad(r, v, "'%s' takes one of %s, found '%s'", k, list, v->value);
    }
    return def;
}

static const char *arg_text(run_t *r, const char *k, const char *def)
{
    ynode_t *v = key(r, k);
    if (v == NULL) {
        return def;
    }
    if (want_scalar(r, v, k, "text") != 0) {
        return def;
    }
    return v->value;
}

static int sym_find(run_t *r, const char *name)
{
    for (size_t i = r->dry ? r->nsyms : r->next_sym; i-- > 0;) {
        if (strcmp(r->syms[i].name, name) == 0) {
            return (int)i;
        }
    }
    return -1;
}

static int kind_ok(symkind_t k, unsigned mask)
{
    return (mask & (1u << k)) != 0;
}

#define K(kind) (1u << (kind))

static void kinds_text(unsigned mask, char *buf, size_t len)
{
    buf[0] = '\0';
    const symkind_t all[] = {S_UNTYPED, S_OBJECT, S_ACCOUNT, S_DS,
                             S_MAP,     S_DEVICE, S_KERNEL,  S_BANK};
    int n = 0;
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
        if (kind_ok(all[i], mask)) {
            size_t l = strlen(buf);
            snprintf(buf + l, len - l, "%s%s", n++ ? " or " : "", symkind_name(all[i]));
        }
    }
}

/* Resolve the name in node @p v: defined earlier, of an allowed kind, not closed. */
static int resolve(run_t *r, const ynode_t *v, const char *k, unsigned mask)
{
    char kinds[160];
    kinds_text(mask, kinds, sizeof(kinds));
    if (v->kind != Y_SCALAR) {
        bad(r, v, "'%s' takes the name of %s, found %s", k, kinds, ytree_kind_name(v));
        return -1;
    }
    int s = sym_find(r, v->value);
    if (s < 0) {
        bad(r, v, "'%s' names '%s', which no earlier step defines (expected the name of %s)", k,
            v->value, kinds);
        return -1;
    }
    sym_t *sy = &r->syms[s];
    if (!kind_ok(sy->kind, mask)) {
        bad(r, v, "'%s' names '%s', which is %s (line %d); expected %s", k, v->value,
            symkind_name(sy->kind), sy->def_line, kinds);
        return -1;
    }
    if (sy->dead_line != 0 && r->dry && !r->want_error_given && strcmp(r->action, "show") != 0) {
        bad(r, v,
            "'%s' names '%s', which step \"%s\" (line %d) closed; a later step may use it only "
            "when it expects an error (expect: INVALID_CAP)",
            k, v->value, sy->dead_step, sy->dead_line);
        return -1;
    }
    return s;
}

static int arg_sym(run_t *r, const char *k, unsigned mask, int required)
{
    ynode_t *v = key(r, k);
    if (v == NULL) {
        if (required) {
            char kinds[160];
            kinds_text(mask, kinds, sizeof(kinds));
            bad(r, r->action_value, "'%s' needs '%s:' (the name of %s)", r->action, k, kinds);
        }
        return -1;
    }
    return resolve(r, v, k, mask);
}

/* The step's own value (retype: NAME) as a new name. */
static const char *new_name(run_t *r)
{
    ynode_t *v = r->action_value;
    if (v->kind != Y_SCALAR || v->value[0] == '\0') {
        bad(r, v, "'%s:' takes the name of the new object, found %s", r->action,
            ytree_kind_name(v));
        return NULL;
    }
    for (const char *p = v->value; *p; p++) {
        if (!isalnum((unsigned char)*p) && *p != '-' && *p != '_' && *p != '.') {
            bad(r, v, "'%s' is not a name: use letters, digits, '-', '_' and '.'", v->value);
            return NULL;
        }
    }
    int s = r->dry ? sym_find(r, v->value) : -1;
    if (s >= 0 && r->syms[s].dead_line == 0) {
        bad(r, v, "'%s' is already the name of %s (line %d); pick another", v->value,
            symkind_name(r->syms[s].kind), r->syms[s].def_line);
        return NULL;
    }
    return v->value;
}

/* The step's own value as an existing name. */
static int subject(run_t *r, unsigned mask)
{
    return resolve(r, r->action_value, r->action, mask);
}

/* ------------------------------------------------------------------------ */
/* Defining and ending names */

static int define(run_t *r, const char *name, symkind_t kind, int parent)
{
    if (!r->dry) {
        /* The dry pass defined it already, in the same order (a repeat finds it again). */
        size_t i = r->next_sym;
        if (i > 0 && strcmp(r->syms[i - 1].name, name) == 0 &&
            r->syms[i - 1].def_step == r->stepno) {
            return (int)(i - 1);
        }
        if (i < r->nsyms && strcmp(r->syms[i].name, name) == 0) {
            r->next_sym++;
            return (int)i;
        }
        bad(r, r->step, "internal error: the run defines '%s' out of order", name);
        return -1;
    }
    if (r->nsyms == r->capsyms) {
        size_t cap = r->capsyms ? r->capsyms * 2 : 16;
        sym_t *s = realloc(r->syms, cap * sizeof(*s));
        if (s == NULL) {
            bad(r, r->step, "out of memory");
            return -1;
        }
        r->syms = s;
        r->capsyms = cap;
    }
    sym_t *s = &r->syms[r->nsyms];
    memset(s, 0, sizeof(*s));
    s->name = strdup(name);
    if (s->name == NULL) {
        bad(r, r->step, "out of memory");
        return -1;
    }
    s->kind = kind;
    s->parent = parent;
    s->def_line = r->step->line;
    s->def_step = r->stepno;
    s->owner = -1;
    s->lender = -1;
    s->bank = -1;
    return (int)r->nsyms++;
}

static int descends(run_t *r, int s, int from)
{
    for (int p = r->syms[s].parent; p >= 0; p = r->syms[p].parent) {
        if (p == from) {
            return 1;
        }
    }
    return 0;
}

/* In the dry pass: the step ends @p s (and, with @p self 0, only what hangs below it). */
static void end_sym(run_t *r, int s, int self)
{
    if (!r->dry || s < 0 || r->want_error_given) {
        return;
    }
    for (size_t i = 0; i < r->nsyms; i++) {
        if (((int)i == s && self) || descends(r, (int)i, s)) {
            if (r->syms[i].dead_line == 0) {
                r->syms[i].dead_line = r->step->line;
                snprintf(r->syms[i].dead_step, sizeof(r->syms[i].dead_step), "%s", r->label);
            }
        }
    }
}

/* ------------------------------------------------------------------------ */
/* Results a step reports, for its expectations */

static result_t *result(run_t *r, const char *k, vtype_t t)
{
    for (int i = 0; i < r->nresults; i++) {
        if (strcmp(r->results[i].key, k) == 0) {
            return &r->results[i];
        }
    }
    if (r->nresults == MAX_RESULTS) {
        return NULL;
    }
    result_t *x = &r->results[r->nresults++];
    memset(x, 0, sizeof(*x));
    x->key = k;
    x->type = t;
    return x;
}

static void result_num(run_t *r, const char *k, uint64_t v)
{
    result_t *x = result(r, k, V_NUM);
    if (x != NULL) {
        x->num = v;
    }
}

static void result_text(run_t *r, const char *k, vtype_t t, const char *v)
{
    result_t *x = result(r, k, t);
    if (x != NULL) {
        snprintf(x->text, sizeof(x->text), "%s", v);
    }
}

/* ------------------------------------------------------------------------ */
/* Calling the library */

/* Record a call's outcome; returns 0 on success. */
static int call(run_t *r, capmem_err_t err)
{
    r->got = err;
    if (err != CAPMEM_OK) {
        r->got_info = *capmem_last_error();
        return -1;
    }
    return 0;
}

static void say_outcome_error(run_t *r)
{
    say(r, "    -> %s: %s\n", capmem_err_name(r->got), r->got_info.message);
}

/* ------------------------------------------------------------------------ */
/* The actions */

static const char *const policy_names[] = {"watermark", "range", "buddy", NULL};
static const char *const type_names[] = {"untyped", "frame", "kernel-object", "kobj", NULL};

static int size_bits_of(run_t *r, uint64_t size, const char *k, unsigned *bits)
{
    if (size == 0 || (size & (size - 1)) != 0) {
        ynode_t *v = key(r, k);
        return bad(r, v ? v : r->action_value,
                   "'%s' must be a power of two (such as 0x400), "
                   "found %" PRIu64,
                   k, size);
    }
    unsigned b = 0;
    while ((1ull << b) < size) {
        b++;
    }
    *bits = b;
    return 0;
}

static int boot_untypeds(run_t *r)
{
    if (r->nboot == 0) {
        size_t n = 0;
        if (call(r, capmem_untyped_boot(r->arena, r->boot, 64, &n)) != 0) {
            return -1;
        }
        r->nboot = n < 64 ? n : 64;
    }
    return 0;
}

static void object_offsets(run_t *r, int s, capmem_cap_t from)
{
    capmem_untyped_info_t ui;
    if (capmem_untyped_info(r->arena, from, &ui) != CAPMEM_OK) {
        return;
    }
    capmem_cap_t cap = r->syms[s].cap;
    uint64_t off = 0;
    if (r->syms[s].kind == S_UNTYPED) {
        capmem_untyped_info_t ci;
        if (capmem_untyped_info(r->arena, cap, &ci) == CAPMEM_OK) {
            off = ci.offset - ui.offset;
        }
    } else {
        capmem_object_info_t oi;
        if (capmem_object_info(r->arena, cap, &oi) == CAPMEM_OK) {
            off = oi.offset - ui.offset;
        }
    }
    result_num(r, "offset", off);
}

/* untyped: NAME  size, policy, device, from */
static int step_untyped(run_t *r)
{
    const char *name = new_name(r);
    uint64_t size = arg_num(r, "size", 1, 0);
    int policy = arg_choice(r, "policy", policy_names, 0);
    int device = arg_bool(r, "device", 0);
    int from = arg_sym(r, "from", K(S_UNTYPED), 0);
    unsigned bits = 0;
    if (r->bad || size_bits_of(r, size, "size", &bits) != 0) {
        return -1;
    }
    int s = define(r, name, S_UNTYPED, from);
    if (s < 0 || r->dry) {
        return 0;
    }
    r->subject = s;
    capmem_retype_attr_t at = CAPMEM_RETYPE_ATTR_INIT;
    at.type = CAPMEM_OBJ_UNTYPED;
    at.size_bits = bits;
    at.child_policy = (capmem_untyped_policy_t)policy;
    capmem_cap_t src = CAPMEM_CAP_NULL;
    capmem_err_t err = CAPMEM_E_NOT_ENOUGH_MEMORY;
    if (from >= 0) {
        src = r->syms[from].cap;
        err = capmem_untyped_retype(r->arena, src, &at, &r->syms[s].cap, 1);
    } else {
        if (boot_untypeds(r) != 0) {
            say_outcome_error(r);
            return 0;
        }
        /* The first boot untyped of the right kind that has room, as a root task would pick. */
        for (size_t i = 0; i < r->nboot; i++) {
            if ((int)r->boot[i].device != device) {
                continue;
            }
            src = r->boot[i].cap;
            err = capmem_untyped_retype(r->arena, src, &at, &r->syms[s].cap, 1);
            if (err != CAPMEM_E_NOT_ENOUGH_MEMORY) {
                break;
            }
        }
        if (src == CAPMEM_CAP_NULL) {
            err = capmem_error_set(CAPMEM_E_NOT_FOUND, "the machine has no %s boot untyped",
                                   device ? "device" : "RAM");
        }
    }
    if (call(r, err) != 0) {
        say_outcome_error(r);
        return 0;
    }
    r->syms[s].caps_from = src;
    object_offsets(r, s, src);
    capmem_untyped_info_t ui;
    if (capmem_untyped_info(r->arena, r->syms[s].cap, &ui) == CAPMEM_OK) {
        say(r, "    %s untyped of 0x%" PRIx64 " bytes at physical 0x%" PRIx64 ", policy %s\n",
            ui.device ? "device" : "RAM", size, ui.phys, ui.policy);
    }
    return 0;
}

/* retype: NAME  from, type, size, count, at, policy */
static int step_retype(run_t *r)
{
    const char *name = new_name(r);
    int from = arg_sym(r, "from", K(S_UNTYPED), 1);
    int type = arg_choice(r, "type", type_names, 2);
    uint64_t size = arg_num(r, "size", 1, 0);
    uint64_t count = arg_num(r, "count", 0, 1);
    uint64_t at = arg_num(r, "at", 0, CAPMEM_RETYPE_ANYWHERE);
    int policy = arg_choice(r, "policy", policy_names, 0);
    unsigned bits = 0;
    if (r->bad || size_bits_of(r, size, "size", &bits) != 0) {
        return -1;
    }
    if (count == 0 || count > CAPMEM_RETYPE_MAX_COUNT) {
        /* Out of range counts are the library's to refuse (RANGE): a lesson, not a typo. */
        count = count == 0 ? 0 : CAPMEM_RETYPE_MAX_COUNT + 1;
    }
    int s = define(r, name, type == 0 ? S_UNTYPED : S_OBJECT, from);
    if (s < 0 || r->dry) {
        return 0;
    }
    r->subject = s;
    r->subject2 = from;
    capmem_retype_attr_t a = CAPMEM_RETYPE_ATTR_INIT;
    a.type = type == 0 ? CAPMEM_OBJ_UNTYPED : type == 1 ? CAPMEM_OBJ_FRAME : CAPMEM_OBJ_KOBJ;
    a.size_bits = bits;
    a.count = (uint32_t)count;
    a.offset = at;
    a.child_policy = (capmem_untyped_policy_t)policy;
    capmem_cap_t caps[CAPMEM_RETYPE_MAX_COUNT];
    capmem_err_t err =
        capmem_untyped_retype(r->arena, r->syms[from].cap, &a, caps, CAPMEM_RETYPE_MAX_COUNT);
    if (call(r, err) != 0) {
        say_outcome_error(r);
        return 0;
    }
    r->syms[s].cap = caps[0];
    r->syms[s].caps_from = r->syms[from].cap;
    r->syms[s].count = (int)count;
    object_offsets(r, s, r->syms[from].cap);
    const result_t *off = result(r, "offset", V_NUM);
    say(r, "    %" PRIu64 " x %s of 0x%" PRIx64 " bytes at offset 0x%" PRIx64 " of %s\n", count,
        type_names[type], size, off ? off->num : 0, r->syms[from].name);
    return 0;
}

/* revoke: NAME / delete: NAME */
static int step_revoke(run_t *r)
{
    int revoke = strcmp(r->action, "revoke") == 0;
    int s = subject(r, K(S_UNTYPED) | K(S_OBJECT) | K(S_DS) | K(S_ACCOUNT) | K(S_MAP));
    if (r->bad) {
        return -1;
    }
    end_sym(r, s, !revoke);
    if (r->dry) {
        return 0;
    }
    r->subject = s;
    size_t before = capmem_cap_count(r->arena);
    capmem_err_t err = revoke ? capmem_cap_revoke(r->arena, r->syms[s].cap)
                              : capmem_cap_delete(r->arena, r->syms[s].cap);
    if (call(r, err) != 0) {
        say_outcome_error(r);
        return 0;
    }
    size_t gone = before - capmem_cap_count(r->arena);
    say(r, "    %zu capabilit%s gone\n", gone, gone == 1 ? "y" : "ies");
    return 0;
}

/* ram: NAME  from (untyped list), donation, caps, expanding */
static int step_ram(run_t *r)
{
    const char *name = new_name(r);
    ynode_t *fromv = key(r, "from");
    int from[64];
    size_t nfrom = 0;
    if (fromv != NULL) {
        if (fromv->kind == Y_SEQ) {
            for (size_t i = 0; i < fromv->n && nfrom < 64 && !r->bad; i++) {
                from[nfrom++] = resolve(r, fromv->items[i], "from", K(S_UNTYPED));
            }
            if (fromv->n == 0 || fromv->n > 64) {
                bad(r, fromv, "'from' lists 1 to 64 untyped regions");
            }
        } else {
            from[nfrom++] = resolve(r, fromv, "from", K(S_UNTYPED));
        }
    }
    uint64_t donation = arg_num(r, "donation", 0, CAPMEM_RAM_DEFAULT_DONATION);
    uint64_t caps = arg_num(r, "caps", 0, 0);
    int expanding = arg_bool(r, "expanding", 0);
    if (r->bad || name == NULL) {
        return -1;
    }
    int s = define(r, name, S_ACCOUNT, nfrom ? from[0] : -1);
    if (s < 0 || r->dry) {
        return 0;
    }
    r->subject = s;
    capmem_ram_attr_t a = CAPMEM_RAM_ATTR_INIT;
    a.root_donation = donation;
    a.root_caps = caps;
    a.flags = expanding ? CAPMEM_RAM_EXPANDING : 0;
    capmem_err_t err;
    if (nfrom == 0) {
        err = capmem_ram_boot(r->arena, &a, &r->syms[s].cap);
    } else {
        capmem_cap_t uts[64];
        for (size_t i = 0; i < nfrom; i++) {
            uts[i] = r->syms[from[i]].cap;
        }
        err = capmem_ram_create(r->arena, uts, nfrom, &a, &r->syms[s].cap);
    }
    if (call(r, err) != 0) {
        say_outcome_error(r);
        return 0;
    }
    capmem_ram_info_t in;
    if (capmem_ram_info(r->arena, r->syms[s].cap, &in) == CAPMEM_OK) {
        char b1[32], b2[32];
        say(r, "    RAM service up: root account '%s' holds %s (donation %s)\n", name,
            fmt_size(in.quota, b1), fmt_size(in.donation, b2));
    }
    return 0;
}

/* open: NAME  from, quota, donation, caps, expanding, upgrade-step, label */
static int step_open(run_t *r)
{
    const char *name = new_name(r);
    int from = arg_sym(r, "from", K(S_ACCOUNT), 1);
    capmem_ram_open_attr_t a = CAPMEM_RAM_OPEN_ATTR_INIT;
    a.quota = arg_num(r, "quota", 0, 0);
    a.donation = arg_num(r, "donation", 0, a.donation);
    int caps_given = key(r, "caps") != NULL;
    a.caps = arg_num(r, "caps", 0, 0);
    a.upgrade_step = arg_num(r, "upgrade-step", 0, a.upgrade_step);
    a.flags = arg_bool(r, "expanding", 0) ? CAPMEM_RAM_EXPANDING : 0;
    a.label = arg_text(r, "label", name);
    if (r->bad) {
        return -1;
    }
    int s = define(r, name, S_ACCOUNT, from);
    if (s < 0 || r->dry) {
        return 0;
    }
    r->subject = s;
    r->subject2 = from;
    if (!caps_given) {
        /*
         * A quarter of the capabilities the parent has left, not the library's
         * fixed 1024: so accounts opened with the defaults can open children
         * with the defaults too, to any depth a scenario needs.
         */
        capmem_ram_info_t pi;
        if (capmem_ram_info(r->arena, r->syms[from].cap, &pi) == CAPMEM_OK &&
            pi.caps_limit > pi.caps_used) {
            a.caps = (pi.caps_limit - pi.caps_used) / 4;
        }
    }
    if (call(r, capmem_ram_open(r->arena, r->syms[from].cap, &a, &r->syms[s].cap)) != 0) {
        say_outcome_error(r);
        return 0;
    }
    char b1[32], b2[32];
    say(r, "    %s opens '%s': quota %s, donation %s%s\n", r->syms[from].name, name,
        fmt_size(a.quota, b1), fmt_size(a.donation, b2),
        a.flags & CAPMEM_RAM_EXPANDING ? ", expanding" : "");
    return 0;
}

/* close: NAME (an account or a region map) */
static int step_close(run_t *r)
{
    int s = subject(r, K(S_ACCOUNT) | K(S_MAP));
    if (r->bad) {
        return -1;
    }
    end_sym(r, s, 1);
    if (r->dry) {
        return 0;
    }
    r->subject = s;
    capmem_err_t err = r->syms[s].kind == S_MAP ? capmem_rm_close(r->arena, r->syms[s].cap)
                                                : capmem_ram_close(r->arena, r->syms[s].cap);
    if (call(r, err) != 0) {
        say_outcome_error(r);
        return 0;
    }
    int to = r->syms[s].parent;
    say(r, "    %s closed; all it held returns to %s\n", r->syms[s].name,
        to >= 0 ? r->syms[to].name : "the service");
    return 0;
}

/* transfer: BYTES  from, to    /   transfer-caps: N  from, to */
static int step_transfer(run_t *r)
{
    int caps = strcmp(r->action, "transfer-caps") == 0;
    uint64_t amount = 0;
    if (want_scalar(r, r->action_value, r->action, "a number") == 0 &&
        parse_number(r->action_value->value, &amount) != 0) {
        bad(r, r->action_value, "'%s:' takes the amount to move (%s), found '%s'", r->action,
            caps ? "a count" : "a number such as 64 KiB", r->action_value->value);
    }
    int from = arg_sym(r, "from", K(S_ACCOUNT), 1);
    int to = arg_sym(r, "to", K(S_ACCOUNT), 1);
    if (r->bad) {
        return -1;
    }
    if (r->dry) {
        return 0;
    }
    r->subject = to;
    r->subject2 = from;
    capmem_err_t err =
        caps ? capmem_ram_transfer_caps(r->arena, r->syms[from].cap, r->syms[to].cap, amount)
             : capmem_ram_transfer(r->arena, r->syms[from].cap, r->syms[to].cap, amount);
    if (call(r, err) != 0) {
        say_outcome_error(r);
        return 0;
    }
    char b[32];
    say(r, "    %s moves %s from %s to %s\n", caps ? "capability quota" : "RAM quota",
        caps ? (snprintf(b, sizeof(b), "%" PRIu64, amount), b) : fmt_size(amount, b),
        r->syms[from].name, r->syms[to].name);
    return 0;
}

/* upgrade: SESSION  by, from */
static int step_upgrade(run_t *r)
{
    int s = subject(r, K(S_ACCOUNT) | K(S_MAP));
    uint64_t by = arg_num(r, "by", 0, CAPMEM_RAM_DEFAULT_UPGRADE);
    int payer = arg_sym(r, "from", K(S_ACCOUNT), 0);
    if (r->bad) {
        return -1;
    }
    if (r->dry) {
        return 0;
    }
    r->subject = s;
    capmem_cap_t pay = CAPMEM_CAP_NULL;
    if (payer >= 0) {
        pay = r->syms[payer].cap;
    } else if (r->syms[s].parent >= 0 && r->syms[r->syms[s].parent].kind == S_ACCOUNT) {
        pay = r->syms[r->syms[s].parent].cap; /* the reference account, or the map's client */
    } else {
        pay = r->syms[s].cap;
    }
    capmem_err_t err = r->syms[s].kind == S_MAP
                           ? capmem_rm_upgrade(r->arena, r->syms[s].cap, pay, by)
                           : capmem_ram_upgrade(r->arena, r->syms[s].cap, pay, by);
    if (call(r, err) != 0) {
        say_outcome_error(r);
        return 0;
    }
    char b[32];
    say(r, "    %s's donation grows by %s\n", r->syms[s].name, fmt_size(by, b));
    return 0;
}

/* alloc: NAME  from, size */
static int step_alloc(run_t *r)
{
    const char *name = new_name(r);
    int from = arg_sym(r, "from", K(S_ACCOUNT), 1);
    uint64_t size = arg_num(r, "size", 1, 0);
    if (r->bad) {
        return -1;
    }
    int s = define(r, name, S_DS, from);
    if (s < 0 || r->dry) {
        return 0;
    }
    r->subject = s;
    r->subject2 = from;
    r->syms[s].owner = from;
    r->syms[s].lender = from;
    if (call(r, capmem_ram_alloc(r->arena, r->syms[from].cap, size, &r->syms[s].cap)) != 0) {
        say_outcome_error(r);
        return 0;
    }
    capmem_ds_info_t in;
    if (capmem_ds_info(r->arena, r->syms[s].cap, &in) == CAPMEM_OK) {
        char b[32];
        say(r, "    %s allocates %s at physical 0x%" PRIx64 "\n", r->syms[from].name,
            fmt_size(in.size, b), in.phys);
    }
    return 0;
}

/* alias: NAME  of, offset, size, writable, lifetime, from */
static int step_alias(run_t *r)
{
    static const char *const lifetimes[] = {"dependent", "first-class", NULL};
    const char *name = new_name(r);
    int of = arg_sym(r, "of", K(S_DS), 1);
    capmem_alias_attr_t a = CAPMEM_ALIAS_ATTR_INIT;
    a.offset = arg_num(r, "offset", 0, 0);
    a.size = arg_num(r, "size", 0, 0);
    a.writable = arg_bool(r, "writable", 1);
    a.lifetime = (capmem_alias_lifetime_t)arg_choice(r, "lifetime", lifetimes, 0);
    int payer = arg_sym(r, "from", K(S_ACCOUNT), 0);
    if (r->bad) {
        return -1;
    }
    if (payer < 0) {
        payer = r->syms[of].owner;
    }
    int s = define(r, name, S_DS, a.lifetime == CAPMEM_ALIAS_DEPENDENT ? of : payer);
    if (s < 0) {
        return -1;
    }
    r->syms[s].owner = payer;
    r->syms[s].lender = r->syms[of].lender;
    r->syms[s].dependent = a.lifetime == CAPMEM_ALIAS_DEPENDENT;
    if (r->dry) {
        return 0;
    }
    r->subject = s;
    r->subject2 = payer;
    if (payer < 0) {
        call(r, capmem_error_set(CAPMEM_E_INVALID_ARGS,
                                 "say who pays for the alias record: 'from: ACCOUNT'"));
        say_outcome_error(r);
        return 0;
    }
    if (call(r, capmem_ds_alias(r->arena, r->syms[payer].cap, r->syms[of].cap, &a,
                                &r->syms[s].cap)) != 0) {
        say_outcome_error(r);
        return 0;
    }
    capmem_ds_info_t in;
    if (capmem_ds_info(r->arena, r->syms[s].cap, &in) == CAPMEM_OK) {
        char b[32];
        say(r, "    %s of %s at offset 0x%" PRIx64 ", %s, %s\n", capmem_ds_kind_name(in.kind),
            r->syms[of].name, a.offset, fmt_size(in.size, b),
            in.writable ? "writable" : "read-only");
    }
    return 0;
}

/* free: NAME */
static int step_free(run_t *r)
{
    int s = subject(r, K(S_DS));
    if (r->bad) {
        return -1;
    }
    end_sym(r, s, 1);
    if (r->dry) {
        return 0;
    }
    /* The values of a free are those of the account charged for the pages (the lender). */
    int lender = r->syms[s].lender;
    r->subject = lender >= 0 ? lender : s;
    if (call(r, capmem_ds_free(r->arena, r->syms[s].cap)) != 0) {
        say_outcome_error(r);
        return 0;
    }
    capmem_ram_info_t in;
    if (lender >= 0 && capmem_ram_info(r->arena, r->syms[lender].cap, &in) == CAPMEM_OK) {
        char b1[32], b2[32];
        say(r, "    %s freed; %s is charged %s (lent %s)\n", r->syms[s].name, r->syms[lender].name,
            fmt_size(in.used, b1), fmt_size(in.lent, b2));
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Region maps and their pagers */

static int map_of_cap(run_t *r, capmem_cap_t cap)
{
    for (size_t i = 0; i < r->nsyms; i++) {
        if (r->syms[i].kind == S_MAP && r->syms[i].cap == cap && r->syms[i].cap != 0) {
            return (int)i;
        }
    }
    return -1;
}

static capmem_rm_fault_result_t pager_fault(capmem_arena_t *arena, const capmem_rm_fault_t *f,
                                            void *ctx)
{
    pager_t *p = ctx;
    uint64_t page_addr = f->address - f->address % p->page;
    capmem_rm_attach_attr_t at = CAPMEM_RM_ATTACH_ATTR_INIT;
    at.at = page_addr;
    at.size = p->page;
    uint64_t got;
    capmem_err_t err;
    if (p->kind == PAGER_ZERO) {
        /* A fresh page of RAM, paid by the map's client, as an anonymous-memory pager does. */
        capmem_cap_t ds;
        err = capmem_ram_alloc(arena, p->r->syms[p->client].cap, p->page, &ds);
        if (err == CAPMEM_OK) {
            at.writable = 1;
            err = capmem_rm_attach(arena, f->rm, ds, &at, &got);
        }
    } else {
        /* LRU: the slot used longest ago (empty slots first). */
        uint64_t victim = 0;
        for (uint64_t i = 0; i < p->slots; i++) {
            if (p->holds[i] == 0) {
                victim = i;
                break;
            }
            if (p->stamp[i] < p->stamp[victim]) {
                victim = i;
            }
        }
        err = CAPMEM_OK;
        if (p->holds[victim] != 0) {
            err = capmem_rm_detach(arena, f->rm, (p->holds[victim] - 1) * p->page);
            p->holds[victim] = 0;
            p->evictions++;
        }
        uint64_t fpage = page_addr / p->page;
        if (err == CAPMEM_OK) {
            uint8_t *buf = calloc(1, p->page);
            if (buf == NULL) {
                return CAPMEM_RM_FAULT_UNRESOLVED;
            }
            uint64_t start = fpage * p->page;
            if (start < p->file_size) {
                uint64_t n = p->file_size - start < p->page ? p->file_size - start : p->page;
                memcpy(buf, p->file + start, n);
            }
            err = capmem_ds_write(arena, p->cache, victim * p->page, buf, p->page);
            free(buf);
        }
        if (err == CAPMEM_OK) {
            at.offset = victim * p->page;
            at.writable = 0; /* a read-only medium */
            err = capmem_rm_attach(arena, f->rm, p->cache, &at, &got);
        }
        if (err == CAPMEM_OK) {
            p->holds[victim] = fpage + 1;
            p->stamp[victim] = ++p->clock;
        }
    }
    if (err != CAPMEM_OK) {
        if (p->failed == CAPMEM_OK) {
            p->failed = err;
        }
        return CAPMEM_RM_FAULT_UNRESOLVED;
    }
    p->fills++;
    return CAPMEM_RM_FAULT_RESOLVED;
}

static void pager_free(pager_t *p)
{
    if (p != NULL) {
        free(p->file);
        free(p->holds);
        free(p->stamp);
        free(p);
    }
}

/*
 * Deterministic contents of a generated file: each page starts with
 * "page N" and goes on with "byte B" lines, so a read shows where it landed.
 */
static void generate_file(uint8_t *buf, uint64_t size, uint64_t page)
{
    uint64_t i = 0;
    while (i < size) {
        char line[64];
        int n = i % page == 0 ? snprintf(line, sizeof(line), "page %" PRIu64 "\n", i / page)
                              : snprintf(line, sizeof(line), "byte %" PRIu64 "\n", i % page);
        for (int k = 0; k < n && i < size; k++) {
            buf[i++] = (uint8_t)line[k];
            if (i % page == 0) {
                break;
            }
        }
    }
}

static uint8_t *load_file(run_t *r, const ynode_t *at, const char *name, uint64_t *size)
{
    char path[4096];
    if (name[0] == '/' || r->o->base_dir == NULL) {
        snprintf(path, sizeof(path), "%s", name);
    } else {
        snprintf(path, sizeof(path), "%s/%s", r->o->base_dir, name);
    }
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        bad(r, at, "cannot open the pager's file '%s': %s", path, strerror(errno));
        return NULL;
    }
    uint8_t *buf = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len == cap) {
            cap = cap ? cap * 2 : 65536;
            if (cap > (64u << 20)) {
                bad(r, at, "the pager's file '%s' is larger than 64 MiB", path);
                free(buf);
                fclose(f);
                return NULL;
            }
            uint8_t *nb = realloc(buf, cap);
            if (nb == NULL) {
                free(buf);
                fclose(f);
                bad(r, at, "out of memory");
                return NULL;
            }
            buf = nb;
        }
        size_t n = fread(buf + len, 1, cap - len, f);
        len += n;
        if (n == 0) {
            break;
        }
    }
    fclose(f);
    *size = len;
    return buf;
}

/* pager: none | zero-fill | {cache: N, file: PATH | file-size: N} */
static pager_t *read_pager(run_t *r, uint64_t *map_size)
{
    ynode_t *v = key(r, "pager");
    if (v == NULL) {
        return NULL;
    }
    pager_t *p = calloc(1, sizeof(*p));
    if (p == NULL) {
        bad(r, v, "out of memory");
        return NULL;
    }
    if (v->kind == Y_SCALAR) {
        if (strcmp(v->value, "none") == 0) {
            p->kind = PAGER_NONE;
        } else if (strcmp(v->value, "zero-fill") == 0) {
            p->kind = PAGER_ZERO;
        } else {
            bad(r, v,
                "'pager' takes none, zero-fill, or a file cache {cache: PAGES, file: PATH}, "
                "found '%s'",
                v->value);
        }
        return p;
    }
    if (v->kind != Y_MAP) {
        bad(r, v, "'pager' takes none, zero-fill, or a file cache {cache: PAGES, file: PATH}");
        return p;
    }
    p->kind = PAGER_FILE;
    ynode_t *cache = NULL, *file = NULL, *fsize = NULL;
    for (size_t i = 0; i < v->n; i++) {
        const char *k = v->keys[i]->value;
        ynode_t *x = v->items[i];
        if (strcmp(k, "cache") == 0) {
            cache = x;
        } else if (strcmp(k, "file") == 0) {
            file = x;
        } else if (strcmp(k, "file-size") == 0) {
            fsize = x;
        } else {
            bad(r, v->keys[i],
                "unknown key '%s' in a file pager; expected cache, file or "
                "file-size",
                k);
            return p;
        }
    }
    uint64_t n = 0;
    if (cache == NULL || cache->kind != Y_SCALAR || parse_number(cache->value, &n) != 0 || n == 0 ||
        n > 4096) {
        bad(r, cache ? cache : v, "a file pager needs 'cache:', its size in pages (1 to 4096)");
        return p;
    }
    p->slots = n;
    if ((file == NULL) == (fsize == NULL)) {
        bad(r, v,
            "a file pager needs either 'file: PATH' (read from disk, relative to the "
            "scenario) or 'file-size: SIZE' (a generated file)");
        return p;
    }
    if (fsize != NULL) {
        if (fsize->kind != Y_SCALAR || parse_number(fsize->value, &p->file_size) != 0 ||
            p->file_size == 0 || p->file_size > (64u << 20)) {
            bad(r, fsize, "'file-size' takes a size from 1 B to 64 MiB");
            return p;
        }
    } else if (file->kind != Y_SCALAR) {
        bad(r, file, "'file' takes a path, found %s", ytree_kind_name(file));
        return p;
    } else if (r->o->no_files) {
        bad(r, file, "pagers may not read files here; use 'file-size'");
        return p;
    } else if (r->dry) {
        /* Say now, with the place, if the file cannot be read; it is read when the step runs. */
        uint64_t size = 0;
        free(load_file(r, file, file->value, &size));
        if (r->bad) {
            return p;
        }
    }
    if (fsize != NULL && r->o->max_ram != 0 && p->file_size > r->o->max_ram) {
        bad(r, fsize, "'file-size' is limited to %" PRIu64 " bytes here", r->o->max_ram);
        return p;
    }
    if (!r->dry) {
        if (fsize != NULL) {
            p->file = malloc(p->file_size);
            if (p->file == NULL) {
                bad(r, fsize, "out of memory");
                return p;
            }
            generate_file(p->file, p->file_size, r->page);
        } else {
            p->file = load_file(r, file, file->value, &p->file_size);
        }
        p->holds = calloc(p->slots, sizeof(uint64_t));
        p->stamp = calloc(p->slots, sizeof(uint64_t));
        if (p->holds == NULL || p->stamp == NULL) {
            bad(r, v, "out of memory");
        }
        if (*map_size == 0 && r->page != 0) {
            *map_size = (p->file_size + r->page - 1) / r->page * r->page;
        }
    } else if (*map_size == 0) {
        *map_size = 1; /* checked against the file when it runs */
    }
    return p;
}

/* region-map: NAME  from, size, donation, expanding, upgrade-step, pager */
static int step_region_map(run_t *r)
{
    const char *name = new_name(r);
    int from = arg_sym(r, "from", K(S_ACCOUNT), 1);
    capmem_rm_open_attr_t a = CAPMEM_RM_OPEN_ATTR_INIT;
    a.size = arg_num(r, "size", 0, 0);
    a.donation = arg_num(r, "donation", 0, a.donation);
    a.upgrade_step = arg_num(r, "upgrade-step", 0, a.upgrade_step);
    a.flags = arg_bool(r, "expanding", 0) ? CAPMEM_RM_EXPANDING : 0;
    a.label = name;
    pager_t *p = read_pager(r, &a.size);
    if (!r->bad && a.size == 0) {
        bad(r, r->action_value,
            "'region-map' needs 'size:' (bytes of address space), "
            "unless its pager is a file cache");
    }
    if (r->bad || r->dry) {
        int s = r->bad ? -1 : define(r, name, S_MAP, from);
        (void)s;
        pager_free(p);
        return r->bad ? -1 : 0;
    }
    int s = define(r, name, S_MAP, from);
    if (s < 0) {
        pager_free(p);
        return -1;
    }
    r->subject = s;
    r->subject2 = from;
    if (call(r, capmem_rm_open(r->arena, r->syms[from].cap, &a, &r->syms[s].cap)) != 0) {
        pager_free(p);
        say_outcome_error(r);
        return 0;
    }
    if (p != NULL) {
        p->r = r;
        p->map = s;
        p->client = from;
        p->page = r->page;
        r->syms[s].pager = p;
        if (p->kind == PAGER_FILE &&
            call(r, capmem_ram_alloc(r->arena, r->syms[from].cap, p->slots * r->page, &p->cache)) !=
                0) {
            say_outcome_error(r);
            return 0;
        }
        if (p->kind != PAGER_NONE &&
            call(r, capmem_rm_set_fault_handler(r->arena, r->syms[s].cap, pager_fault, p)) != 0) {
            say_outcome_error(r);
            return 0;
        }
    }
    char b1[32], b2[32];
    say(r, "    %s opens region map '%s' of %s (donation %s), pager: %s\n", r->syms[from].name,
        name, fmt_size(a.size, b1), fmt_size(a.donation, b2),
        p == NULL || p->kind == PAGER_NONE ? "none"
        : p->kind == PAGER_ZERO            ? "zero-fill"
                                           : "file cache");
    if (p != NULL && p->kind == PAGER_FILE) {
        say(r, "    file of %s behind a cache of %" PRIu64 " pages (LRU)\n",
            fmt_size(p->file_size, b1), p->slots);
    }
    return 0;
}

/* The capability to attach for symbol @p s: a dataspace, or a map's managed dataspace. */
static capmem_err_t ds_cap_of(run_t *r, int s, capmem_cap_t *out)
{
    if (r->syms[s].kind == S_MAP) {
        return capmem_rm_dataspace(r->arena, r->syms[s].cap, out);
    }
    *out = r->syms[s].cap;
    return CAPMEM_OK;
}

/* attach: DS-or-MAP  into, at, offset, size, writable, executable */
static int step_attach(run_t *r)
{
    int s = subject(r, K(S_DS) | K(S_MAP));
    int into = arg_sym(r, "into", K(S_MAP), 1);
    capmem_rm_attach_attr_t a = CAPMEM_RM_ATTACH_ATTR_INIT;
    a.at = arg_num(r, "at", 0, CAPMEM_RM_ANYWHERE);
    a.offset = arg_num(r, "offset", 0, 0);
    a.size = arg_num(r, "size", 0, 0);
    a.writable = arg_bool(r, "writable", 1);
    a.executable = arg_bool(r, "executable", 0);
    if (r->bad) {
        return -1;
    }
    if (r->dry) {
        return 0;
    }
    r->subject = into;
    r->subject2 = s;
    capmem_cap_t ds;
    uint64_t addr = 0;
    if (call(r, ds_cap_of(r, s, &ds)) != 0 ||
        call(r, capmem_rm_attach(r->arena, r->syms[into].cap, ds, &a, &addr)) != 0) {
        say_outcome_error(r);
        return 0;
    }
    result_num(r, "address", addr);
    if (r->natts == r->capatts) {
        size_t cap = r->capatts ? r->capatts * 2 : 16;
        struct attrec *na = realloc(r->atts, cap * sizeof(*na));
        if (na == NULL) {
            return bad(r, r->step, "out of memory");
        }
        r->atts = na;
        r->capatts = cap;
    }
    r->atts[r->natts].map = into;
    r->atts[r->natts].sym = s;
    r->atts[r->natts].address = addr;
    r->natts++;
    say(r, "    %s attached into %s at 0x%" PRIx64 "%s\n", r->syms[s].name, r->syms[into].name,
        addr, a.writable ? "" : " (read-only)");
    return 0;
}

/* detach: MAP  at */
static int step_detach(run_t *r)
{
    int s = subject(r, K(S_MAP));
    uint64_t at = arg_num(r, "at", 1, 0);
    if (r->bad || r->dry) {
        return r->bad ? -1 : 0;
    }
    r->subject = s;
    if (call(r, capmem_rm_detach(r->arena, r->syms[s].cap, at)) != 0) {
        say_outcome_error(r);
    }
    return 0;
}

/*
 * The file pagers only see faults; the accesses that hit a cached page are
 * seen here, where the tool makes them, so that eviction is least recently
 * *used*. Follow @p address of map @p m through managed dataspaces to the
 * map that holds it, and refresh that page's stamp if a cache holds it.
 */
static void touch_lru(run_t *r, int m, uint64_t address, int depth)
{
    if (m < 0 || depth > 16) {
        return;
    }
    pager_t *p = r->syms[m].pager;
    if (p != NULL && p->kind == PAGER_FILE) {
        uint64_t fpage = address / p->page;
        for (uint64_t i = 0; i < p->slots; i++) {
            if (p->holds[i] == fpage + 1) {
                p->stamp[i] = ++p->clock;
            }
        }
    }
    capmem_rm_region_t reg;
    if (capmem_rm_lookup(r->arena, r->syms[m].cap, address, &reg) != CAPMEM_OK || !reg.managed) {
        return;
    }
    /* Which map's dataspace is attached there: the latest attach step that put one there. */
    for (size_t i = r->natts; i-- > 0;) {
        const struct attrec *a = &r->atts[i];
        if (a->map == m && a->address == reg.address && r->syms[a->sym].kind == S_MAP) {
            touch_lru(r, a->sym, address - reg.address + reg.offset, depth + 1);
            return;
        }
    }
}

static const char *const access_names[] = {"read", "write", "exec", NULL};

static void escape_text(const uint8_t *buf, size_t len, char *out, size_t outlen)
{
    size_t o = 0;
    for (size_t i = 0; i < len && o + 5 < outlen; i++) {
        unsigned char c = buf[i];
        if (c == '\n') {
            o += (size_t)snprintf(out + o, outlen - o, "\\n");
        } else if (c >= 32 && c < 127 && c != '\\') {
            out[o++] = (char)c;
        } else {
            o += (size_t)snprintf(out + o, outlen - o, "\\x%02x", c);
        }
    }
    out[o] = '\0';
}

/* read: MAP-or-DS  at, size / write: ... at, text | byte+size / touch: MAP at, size, access */
static int step_access(run_t *r)
{
    int is_read = strcmp(r->action, "read") == 0;
    int is_touch = strcmp(r->action, "touch") == 0;
    int s = subject(r, is_touch ? K(S_MAP) : K(S_MAP) | K(S_DS));
    uint64_t at = arg_num(r, "at", 0, 0);
    const char *text = NULL;
    uint64_t byte = 0;
    uint64_t size = 1;
    int access = CAPMEM_RM_READ;
    if (is_read) {
        const char *want = NULL;
        if (r->expect != NULL && r->expect->kind == Y_MAP) {
            ynode_t *t = ytree_get(r->expect, "text");
            if (t != NULL && t->kind == Y_SCALAR) {
                want = t->value;
            }
        }
        size = arg_num(r, "size", 0, want != NULL && want[0] ? strlen(want) : 1);
    } else if (is_touch) {
        size = arg_num(r, "size", 0, 1);
        access = arg_choice(r, "access", access_names, 0);
    } else {
        text = arg_text(r, "text", NULL);
        ynode_t *bv = key(r, "byte");
        byte = arg_num(r, "byte", 0, 0);
        size = arg_num(r, "size", 0, text ? strlen(text) : 1);
        if (!r->bad && text == NULL && bv == NULL) {
            bad(r, r->action_value,
                "'write' needs 'text: \"...\"' or 'byte: N' (with "
                "'size:')");
        }
        if (!r->bad && text != NULL && size != strlen(text)) {
            bad(r, r->action_value, "'size' differs from the length of 'text'");
        }
        if (!r->bad && bv != NULL && byte > 255) {
            bad(r, bv, "'byte' takes a number from 0 to 255");
        }
        access = CAPMEM_RM_WRITE;
    }
    if (!r->bad && (size == 0 || size > (16u << 20))) {
        bad(r, r->action_value, "an access moves 1 B to 16 MiB ('size:')");
    }
    if (r->bad || r->dry) {
        return r->bad ? -1 : 0;
    }
    r->subject = s;
    uint8_t *buf = calloc(1, size);
    if (buf == NULL) {
        return bad(r, r->step, "out of memory");
    }
    if (text != NULL) {
        memcpy(buf, text, size);
    } else if (!is_read && !is_touch) {
        memset(buf, (int)byte, size);
    }
    capmem_err_t err = CAPMEM_OK;
    if (r->syms[s].kind == S_DS) {
        err = is_read ? capmem_ds_read(r->arena, r->syms[s].cap, at, buf, size)
                      : capmem_ds_write(r->arena, r->syms[s].cap, at, buf, size);
    } else {
        /* Page by page, so a file cache learns which pages were used and in what order. */
        uint64_t done = 0;
        while (done < size && err == CAPMEM_OK) {
            uint64_t a = at + done;
            uint64_t chunk = r->page - a % r->page;
            if (chunk > size - done) {
                chunk = size - done;
            }
            touch_lru(r, s, a, 0);
            if (is_touch) {
                err =
                    capmem_rm_touch(r->arena, r->syms[s].cap, a, chunk, (capmem_rm_access_t)access);
            } else if (is_read) {
                err = capmem_rm_read(r->arena, r->syms[s].cap, a, buf + done, chunk);
            } else {
                err = capmem_rm_write(r->arena, r->syms[s].cap, a, buf + done, chunk);
            }
            done += chunk;
        }
    }
    if (call(r, err) != 0) {
        free(buf);
        say_outcome_error(r);
        return 0;
    }
    if (is_read) {
        char shown[160];
        escape_text(buf, size, shown, sizeof(shown));
        result_text(r, "text", V_TEXT, shown);
        say(r, "    read %" PRIu64 " byte%s at 0x%" PRIx64 ": \"%.60s%s\"\n", size,
            size == 1 ? "" : "s", at, shown, strlen(shown) > 60 ? "..." : "");
    } else if (is_touch) {
        say(r, "    %s touch of %" PRIu64 " bytes at 0x%" PRIx64 ": ok\n", access_names[access],
            size, at);
    } else {
        say(r, "    wrote %" PRIu64 " byte%s at 0x%" PRIx64 "\n", size, size == 1 ? "" : "s", at);
    }
    free(buf);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Device hot-plug; with the kernel layer, the kernel makes each frame's record */

/* plug: NAME  at, size: hot-plug a device range (its records go into the kernel heap) */
static int step_plug(run_t *r)
{
    const char *name = new_name(r);
    uint64_t at = arg_num(r, "at", 1, 0);
    uint64_t size = arg_num(r, "size", 1, 0);
    if (r->bad) {
        return -1;
    }
    int s = define(r, name, S_DEVICE, -1);
    if (s < 0 || r->dry) {
        return 0;
    }
    r->subject = r->have_kernel ? sym_find(r, "kernel") : -1;
    capmem_device_info_t info;
    if (call(r, capmem_arena_device_add(r->arena, at, size, &info)) != 0) {
        say_outcome_error(r);
        return 0;
    }
    r->syms[s].device_id = info.id;
    char b[32];
    say(r, "    device '%s' plugged at 0x%" PRIx64 ", %s (%" PRIu64 " frames)\n", name, at,
        fmt_size(size, b), r->page ? size / r->page : 0);
    return 0;
}

/* unplug: NAME */
static int step_unplug(run_t *r)
{
    int s = subject(r, K(S_DEVICE));
    if (r->bad) {
        return -1;
    }
    end_sym(r, s, 1);
    if (r->dry) {
        return 0;
    }
    r->subject = r->have_kernel ? sym_find(r, "kernel") : -1;
    if (call(r, capmem_arena_device_remove(r->arena, r->syms[s].device_id)) != 0) {
        say_outcome_error(r);
        return 0;
    }
    say(r, "    device '%s' unplugged\n", r->syms[s].name);
    return 0;
}

#if CAPMEM_TOOL_KERNEL
/* ------------------------------------------------------------------------ */
/* The kernel layer (Coyotos): device hot-plug, the end of boot, space banks */

/* end-boot: FRAMES (device frames whose records are kept) */
static int step_end_boot(run_t *r)
{
    uint64_t keep = 0;
    if (want_scalar(r, r->action_value, r->action, "a number") == 0 &&
        parse_number(r->action_value->value, &keep) != 0) {
        bad(r, r->action_value,
            "'end-boot:' takes the number of device frames whose records are kept, found '%s'",
            r->action_value->value);
    }
    if (!r->bad && !r->have_kernel) {
        bad(r, r->action_value, "'end-boot' needs a kernel: add 'kernel:' to 'machine'");
    }
    if (r->bad || r->dry) {
        return r->bad ? -1 : 0;
    }
    r->subject = sym_find(r, "kernel");
    if (call(r, capmem_kernel_end_boot(r->arena, keep)) != 0) {
        say_outcome_error(r);
        return 0;
    }
    capmem_kernel_info_t k;
    if (capmem_kernel_info(r->arena, &k) == CAPMEM_OK) {
        say(r,
            "    boot ends: records kept for %" PRIu64 " device frames, %" PRIu64
            " heap frames released to the prime bank\n",
            keep, k.released_frames);
    }
    return 0;
}

/* bank-service: NAME  from (account), donation, frames: the prime bank */
static int step_bank_service(run_t *r)
{
    const char *name = new_name(r);
    int from = arg_sym(r, "from", K(S_ACCOUNT), 1);
    capmem_bank_service_attr_t a = CAPMEM_BANK_SERVICE_ATTR_INIT;
    a.donation = arg_num(r, "donation", 0, a.donation);
    a.frames = arg_num(r, "frames", 0, 0);
    if (r->bad) {
        return -1;
    }
    int s = define(r, name, S_BANK, from);
    if (s < 0 || r->dry) {
        return 0;
    }
    r->subject = s;
    r->subject2 = from;
    if (call(r, capmem_bank_service_create(r->arena, r->syms[from].cap, &a, &r->syms[s].cap)) !=
        0) {
        say_outcome_error(r);
        return 0;
    }
    capmem_bank_info_t bi;
    if (capmem_bank_info(r->arena, r->syms[s].cap, &bi) == CAPMEM_OK) {
        say(r, "    bank service on '%s': prime bank '%s' may hand out %" PRIu64 " frames\n",
            r->syms[from].name, name, bi.limit[CAPMEM_BANK_FRAME]);
    }
    return 0;
}

static void read_limits(run_t *r, capmem_bank_limits_t *l)
{
    l->limit[CAPMEM_BANK_FRAME] = arg_num(r, "frames", 0, CAPMEM_BANK_UNLIMITED);
    l->limit[CAPMEM_BANK_NODE] = arg_num(r, "nodes", 0, CAPMEM_BANK_UNLIMITED);
}

static const char *limit_text(uint64_t v, char buf[32])
{
    if (v == CAPMEM_BANK_UNLIMITED) {
        return "unlimited";
    }
    snprintf(buf, 32, "%" PRIu64, v);
    return buf;
}

/* bank: NAME  from (parent bank), frames, nodes (limits) */
static int step_bank(run_t *r)
{
    const char *name = new_name(r);
    int from = arg_sym(r, "from", K(S_BANK), 1);
    capmem_bank_limits_t l;
    read_limits(r, &l);
    if (r->bad) {
        return -1;
    }
    int s = define(r, name, S_BANK, from);
    if (s < 0 || r->dry) {
        return 0;
    }
    r->subject = s;
    r->subject2 = from;
    if (call(r, capmem_bank_create(r->arena, r->syms[from].cap, &l, &r->syms[s].cap)) != 0) {
        say_outcome_error(r);
        return 0;
    }
    char b1[32], b2[32];
    say(r, "    bank '%s' under '%s': frames %s, nodes %s\n", name, r->syms[from].name,
        limit_text(l.limit[CAPMEM_BANK_FRAME], b1), limit_text(l.limit[CAPMEM_BANK_NODE], b2));
    return 0;
}

/* limits: BANK  frames, nodes */
static int step_limits(run_t *r)
{
    int s = subject(r, K(S_BANK));
    capmem_bank_limits_t l;
    read_limits(r, &l);
    if (r->bad || r->dry) {
        return r->bad ? -1 : 0;
    }
    r->subject = s;
    if (call(r, capmem_bank_set_limits(r->arena, r->syms[s].cap, &l)) != 0) {
        say_outcome_error(r);
        return 0;
    }
    char b1[32], b2[32];
    say(r, "    bank '%s' limits: frames %s, nodes %s\n", r->syms[s].name,
        limit_text(l.limit[CAPMEM_BANK_FRAME], b1), limit_text(l.limit[CAPMEM_BANK_NODE], b2));
    return 0;
}

/* bank-alloc: NAME  from (bank), type (frame, node) */
static int step_bank_alloc(run_t *r)
{
    static const char *const kinds[] = {"frame", "node", NULL};
    const char *name = new_name(r);
    int from = arg_sym(r, "from", K(S_BANK), 1);
    int type = arg_choice(r, "type", kinds, 0);
    if (r->bad) {
        return -1;
    }
    /* A frame is a dataspace (it can be attached and read); a node an object. */
    int s = define(r, name, type == 0 ? S_DS : S_OBJECT, from);
    if (s < 0) {
        return -1;
    }
    r->syms[s].bank = from;
    if (r->dry) {
        return 0;
    }
    r->subject = s;
    r->subject2 = from;
    capmem_bank_type_t t = type == 0 ? CAPMEM_BANK_FRAME : CAPMEM_BANK_NODE;
    if (call(r, capmem_bank_alloc(r->arena, r->syms[from].cap, &t, 1, &r->syms[s].cap)) != 0) {
        say_outcome_error(r);
        return 0;
    }
    say(r, "    a %s from bank '%s'\n", kinds[type], r->syms[from].name);
    return 0;
}

/* bank-free: NAME (an object of a bank) */
static int step_bank_free(run_t *r)
{
    int s = subject(r, K(S_DS) | K(S_OBJECT));
    if (r->bad) {
        return -1;
    }
    if (r->syms[s].bank < 0) {
        return bad(r, r->action_value, "'%s' is not an object of a space bank (see bank-alloc)",
                   r->syms[s].name);
    }
    end_sym(r, s, 1);
    if (r->dry) {
        return 0;
    }
    int b = r->syms[s].bank;
    r->subject = b;
    if (call(r, capmem_bank_free(r->arena, r->syms[b].cap, &r->syms[s].cap, 1)) != 0) {
        say_outcome_error(r);
        return 0;
    }
    say(r, "    '%s' returned to bank '%s'\n", r->syms[s].name, r->syms[b].name);
    return 0;
}

/* destroy-bank: BANK (with its objects) / remove-bank: BANK (objects to the parent) */
static int step_bank_destroy(run_t *r)
{
    int destroy = strcmp(r->action, "destroy-bank") == 0;
    int s = subject(r, K(S_BANK));
    if (r->bad) {
        return -1;
    }
    int parent = r->syms[s].parent;
    if (!destroy && (r->dry ? !r->want_error_given : 1)) {
        /*
         * Its objects and sub-banks pass to its parent: only the bank itself
         * ends. (The run pass repeats the hand-over for its own bookkeeping,
         * once the library has done it.)
         */
        if (!r->dry) {
            /* done after the call below */
        } else {
            for (size_t i = 0; i < r->nsyms; i++) {
                if (r->syms[i].parent == s) {
                    r->syms[i].parent = parent;
                }
            }
        }
    }
    end_sym(r, s, 1);
    if (r->dry) {
        return 0;
    }
    r->subject = parent >= 0 && r->syms[parent].kind == S_BANK ? parent : s;
    capmem_err_t err = destroy ? capmem_bank_destroy(r->arena, r->syms[s].cap)
                               : capmem_bank_remove(r->arena, r->syms[s].cap);
    if (call(r, err) != 0) {
        say_outcome_error(r);
        return 0;
    }
    if (!destroy) {
        for (size_t i = 0; i < r->nsyms; i++) {
            if (r->syms[i].bank == s) {
                r->syms[i].bank = parent;
            }
        }
    }
    say(r, "    bank '%s' %s\n", r->syms[s].name,
        destroy ? "destroyed with all its objects" : "removed; its objects are its parent's");
    return 0;
}

#endif
static void describe(run_t *r, int s);

/* show: NAME: print it; its values can be expected (also of an object that is gone: alive). */
static int step_show(run_t *r)
{
    int s = subject(r, K(S_UNTYPED) | K(S_OBJECT) | K(S_ACCOUNT) | K(S_DS) | K(S_MAP) |
                           K(S_KERNEL) | K(S_BANK) | K(S_DEVICE));
    if (r->bad || r->dry) {
        return r->bad ? -1 : 0;
    }
    r->subject = s;
    describe(r, s);
    return 0;
}

typedef struct action {
    const char *name;
    int (*fn)(run_t *r);
    const char *summary;
} action_t;

static const action_t actions[] = {
    {"untyped", step_untyped, "carve an untyped region from a boot untyped (seL4)"},
    {"retype", step_retype, "retype objects from an untyped region"},
    {"revoke", step_revoke, "revoke everything derived from a capability"},
    {"delete", step_revoke, "delete one capability (and its object)"},
    {"ram", step_ram, "start the RAM service; names its root account"},
    {"open", step_open, "open an account (a RAM session) from a parent account"},
    {"transfer", step_transfer, "move RAM quota between an account and its parent"},
    {"transfer-caps", step_transfer, "move capability quota"},
    {"upgrade", step_upgrade, "grow a session's donation"},
    {"close", step_close, "close an account or a region map"},
    {"alloc", step_alloc, "allocate a RAM dataspace"},
    {"alias", step_alias, "make an alias of a dataspace"},
    {"free", step_free, "free a dataspace or an alias"},
    {"region-map", step_region_map, "open a region map, with a pager"},
    {"attach", step_attach, "attach a dataspace (or a region map) into a region map"},
    {"detach", step_detach, "detach the region at an address"},
    {"read", step_access, "read bytes through a region map or a dataspace"},
    {"write", step_access, "write bytes through a region map or a dataspace"},
    {"touch", step_access, "touch an address for read, write or exec"},
    {"plug", step_plug, "hot-plug a device range (the kernel makes its records)"},
    {"unplug", step_unplug, "remove a device range"},
#if CAPMEM_TOOL_KERNEL
    {"end-boot", step_end_boot, "end of boot: keep records for N device frames"},
    {"bank-service", step_bank_service, "open the space-bank service; names its prime bank"},
    {"bank", step_bank, "create a sub-bank with limits"},
    {"limits", step_limits, "change a bank's limits"},
    {"bank-alloc", step_bank_alloc, "allocate a frame or a node from a bank"},
    {"bank-free", step_bank_free, "free an object back to its bank"},
    {"destroy-bank", step_bank_destroy, "destroy a bank and everything in it"},
    {"remove-bank", step_bank_destroy, "remove a bank; its objects pass to its parent"},
#endif
    {"show", step_show, "print an object; its values can be expected"},
};

#define NACTIONS (sizeof(actions) / sizeof(actions[0]))

/* Keys every step may carry besides its action. */
static const char *const common_keys[] = {"step", "expect", "note", "repeat"};

/* ------------------------------------------------------------------------ */
/* Values of objects, for expectations */

typedef struct vdef {
    const char *key;
    vtype_t type;
    unsigned kinds; /* which subjects have it; 0: a result of the step */
} vdef_t;

static const vdef_t vdefs[] = {
    {"quota", V_NUM, K(S_ACCOUNT)},
    {"used", V_NUM, K(S_ACCOUNT)},
    {"avail", V_NUM, K(S_ACCOUNT)},
    {"lent", V_NUM, K(S_ACCOUNT)},
    {"donation", V_NUM, K(S_ACCOUNT) | K(S_MAP)},
    {"records", V_NUM, K(S_ACCOUNT) | K(S_MAP) | K(S_KERNEL)},
    {"capacity", V_NUM, K(S_ACCOUNT) | K(S_MAP) | K(S_KERNEL)},
    {"caps", V_NUM, K(S_ACCOUNT)},
    {"caps-limit", V_NUM, K(S_ACCOUNT)},
    {"upgrades", V_NUM, K(S_ACCOUNT) | K(S_MAP)},
    {"expanding", V_BOOL, K(S_ACCOUNT) | K(S_MAP)},
    {"size", V_NUM, K(S_UNTYPED) | K(S_OBJECT) | K(S_DS) | K(S_MAP)},
    {"free", V_NUM, K(S_UNTYPED)},
    {"largest", V_NUM, K(S_UNTYPED)},
    {"watermark", V_NUM, K(S_UNTYPED)},
    {"children", V_NUM, K(S_UNTYPED) | K(S_BANK)},
    {"phys", V_NUM, K(S_UNTYPED) | K(S_OBJECT) | K(S_DS)},
    {"writable", V_BOOL, K(S_DS)},
    {"kind", V_TEXT, K(S_DS)},
    {"regions", V_NUM, K(S_MAP)},
    {"faults", V_NUM, K(S_MAP)},
    {"fills", V_NUM, K(S_MAP)},
    {"evictions", V_NUM, K(S_MAP)},
    {"cached", V_TEXT, K(S_MAP)},
    {"alive", V_BOOL, K(S_UNTYPED) | K(S_OBJECT) | K(S_ACCOUNT) | K(S_DS) | K(S_MAP) | K(S_BANK)},
    /* the kernel heap */
    {"strategy", V_TEXT, K(S_KERNEL)},
    {"heap-frames", V_NUM, K(S_KERNEL)},
    {"boot-heap-frames", V_NUM, K(S_KERNEL)},
    {"kernel-frames", V_NUM, K(S_KERNEL)},
    {"borrowed-frames", V_NUM, K(S_KERNEL)},
    {"released-frames", V_NUM, K(S_KERNEL)},
    {"device-records", V_NUM, K(S_KERNEL)},
    {"device-reserve", V_NUM, K(S_KERNEL)},
    /* space banks */
    {"frames-limit", V_NUM, K(S_BANK)},
    {"frames-used", V_NUM, K(S_BANK)},
    {"frames-avail", V_NUM, K(S_BANK)},
    {"nodes-limit", V_NUM, K(S_BANK)},
    {"nodes-used", V_NUM, K(S_BANK)},
    {"nodes-avail", V_NUM, K(S_BANK)},
    {"depth", V_NUM, K(S_BANK)},
    /* results of the step itself */
    {"offset", V_NUM, 0},
    {"address", V_NUM, 0},
    {"text", V_TEXT, 0},
    {"done", V_NUM, 0},
    {"needed", V_NUM, 0},
    {"available", V_NUM, 0},
    {"message", V_TEXT, 0},
    {"step-faults", V_NUM, 0},
    {"fault-map", V_SYM, 0},
    {"fault-address", V_NUM, 0},
    {"fault-access", V_TEXT, 0},
};

#define NVDEFS (sizeof(vdefs) / sizeof(vdefs[0]))

static const vdef_t *vdef_find(const char *k)
{
    for (size_t i = 0; i < NVDEFS; i++) {
        if (strcmp(vdefs[i].key, k) == 0) {
            return &vdefs[i];
        }
    }
    return NULL;
}

static void subject_value(run_t *r, sym_t *s, const vdef_t *d, result_t *out, int *have);

/* The actual value of @p d after the step; 0 when it has none (then *have is 0). */
static void actual_value(run_t *r, const vdef_t *d, result_t *out, int *have)
{
    *have = 0;
    memset(out, 0, sizeof(*out));
    out->type = d->type;
    out->key = d->key;
    for (int i = 0; i < r->nresults; i++) {
        if (strcmp(r->results[i].key, d->key) == 0) {
            *out = r->results[i];
            *have = 1;
            return;
        }
    }
    if (strcmp(d->key, "needed") == 0 || strcmp(d->key, "available") == 0) {
        out->num = d->key[0] == 'n' ? r->got_info.needed : r->got_info.available;
        *have = r->got != CAPMEM_OK;
        return;
    }
    if (strcmp(d->key, "message") == 0) {
        snprintf(out->text, sizeof(out->text), "%s",
                 r->got != CAPMEM_OK ? r->got_info.message : "");
        *have = 1;
        return;
    }
    if (strcmp(d->key, "step-faults") == 0) {
        out->num = r->faults;
        *have = 1;
        return;
    }
    if (strcmp(d->key, "fault-map") == 0 || strcmp(d->key, "fault-address") == 0 ||
        strcmp(d->key, "fault-access") == 0) {
        if (r->faults == 0) {
            snprintf(out->text, sizeof(out->text), "(no fault)");
            *have = 1;
            return;
        }
        if (d->key[6] == 'm') {
            snprintf(out->text, sizeof(out->text), "%s",
                     r->fault_map >= 0 ? r->syms[r->fault_map].name : "?");
        } else if (d->key[6] == 'a' && d->key[7] == 'd') {
            out->num = r->fault_address;
        } else {
            snprintf(out->text, sizeof(out->text), "%s", capmem_rm_access_name(r->fault_access));
        }
        *have = 1;
        return;
    }
    if (d->kinds == 0) {
        return;
    }
    int subjects[2] = {r->subject, r->subject2};
    for (int k = 0; k < 2 && !*have; k++) {
        if (subjects[k] >= 0) {
            subject_value(r, &r->syms[subjects[k]], d, out, have);
        }
    }
}

/* One named number of an object's info, for subject_value's tables. */
typedef struct named_value {
    const char *k;
    uint64_t v;
} named_value_t;

/* If @p key names one of the @p n values in @p t, that value is the result. */
static void pick_value(const named_value_t *t, size_t n, const char *key, result_t *out, int *have)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(t[i].k, key) == 0) {
            out->num = t[i].v;
            *have = 1;
        }
    }
}

/* The value @p d of object @p s, if it has one now. */
static void subject_value(run_t *r, sym_t *s, const vdef_t *d, result_t *out, int *have)
{
#if CAPMEM_TOOL_KERNEL
    if (s->kind == S_KERNEL) {
        capmem_kernel_info_t k;
        if (!kind_ok(S_KERNEL, d->kinds) || capmem_kernel_info(r->arena, &k) != CAPMEM_OK) {
            return;
        }
        if (strcmp(d->key, "strategy") == 0) {
            snprintf(out->text, sizeof(out->text), "%s", capmem_kernel_strategy_name(k.strategy));
            *have = 1;
            return;
        }
        const named_value_t t[] = {{"records", k.records_used},
                                   {"capacity", k.records_capacity},
                                   {"heap-frames", k.heap_frames},
                                   {"boot-heap-frames", k.boot_heap_frames},
                                   {"kernel-frames", k.kernel_frames},
                                   {"borrowed-frames", k.borrowed_frames},
                                   {"released-frames", k.released_frames},
                                   {"device-records", k.device_records},
                                   {"device-reserve", k.device_reserve}};
        pick_value(t, sizeof(t) / sizeof(t[0]), d->key, out, have);
        return;
    }
    if (s->kind == S_BANK && strcmp(d->key, "alive") != 0) {
        capmem_bank_info_t b;
        if (!kind_ok(S_BANK, d->kinds) || capmem_bank_info(r->arena, s->cap, &b) != CAPMEM_OK) {
            return;
        }
        const named_value_t t[] = {{"frames-limit", b.limit[CAPMEM_BANK_FRAME]},
                                   {"frames-used", b.used[CAPMEM_BANK_FRAME]},
                                   {"frames-avail", b.avail[CAPMEM_BANK_FRAME]},
                                   {"nodes-limit", b.limit[CAPMEM_BANK_NODE]},
                                   {"nodes-used", b.used[CAPMEM_BANK_NODE]},
                                   {"nodes-avail", b.avail[CAPMEM_BANK_NODE]},
                                   {"children", b.children},
                                   {"depth", b.depth}};
        pick_value(t, sizeof(t) / sizeof(t[0]), d->key, out, have);
        return;
    }
#endif
    if (strcmp(d->key, "alive") == 0) {
        capmem_cap_info_t ci;
        out->num = s->cap != 0 && capmem_cap_identify(r->arena, s->cap, &ci) == CAPMEM_OK;
        *have = 1;
        return;
    }
    if (!kind_ok(s->kind, d->kinds)) {
        return;
    }
    if (s->kind == S_ACCOUNT) {
        capmem_ram_info_t in;
        if (capmem_ram_info(r->arena, s->cap, &in) != CAPMEM_OK) {
            return;
        }
        const named_value_t t[] = {{"quota", in.quota},
                                   {"used", in.used},
                                   {"avail", in.avail},
                                   {"lent", in.lent},
                                   {"donation", in.donation},
                                   {"records", in.records_used},
                                   {"capacity", in.records_capacity},
                                   {"caps", in.caps_used},
                                   {"caps-limit", in.caps_limit},
                                   {"upgrades", in.upgrades},
                                   {"expanding", in.expanding}};
        pick_value(t, sizeof(t) / sizeof(t[0]), d->key, out, have);
    } else if (s->kind == S_UNTYPED) {
        capmem_untyped_info_t in;
        if (capmem_untyped_info(r->arena, s->cap, &in) != CAPMEM_OK) {
            return;
        }
        const named_value_t t[] = {{"size", 1ull << in.size_bits}, {"free", in.free_bytes},
                                   {"largest", in.largest_free},   {"watermark", in.watermark},
                                   {"children", in.children},      {"phys", in.phys}};
        pick_value(t, sizeof(t) / sizeof(t[0]), d->key, out, have);
    } else if (s->kind == S_OBJECT) {
        capmem_object_info_t in;
        if (capmem_object_info(r->arena, s->cap, &in) != CAPMEM_OK) {
            return;
        }
        out->num = strcmp(d->key, "size") == 0 ? 1ull << in.size_bits : in.phys;
        *have = 1;
    } else if (s->kind == S_DS) {
        capmem_ds_info_t in;
        if (capmem_ds_info(r->arena, s->cap, &in) != CAPMEM_OK) {
            return;
        }
        if (strcmp(d->key, "kind") == 0) {
            snprintf(out->text, sizeof(out->text), "%s", capmem_ds_kind_name(in.kind));
        }
        out->num = strcmp(d->key, "size") == 0   ? in.size
                   : strcmp(d->key, "phys") == 0 ? in.phys
                                                 : in.writable;
        *have = 1;
    } else if (s->kind == S_MAP) {
        capmem_rm_info_t in;
        if (capmem_rm_info(r->arena, s->cap, &in) != CAPMEM_OK) {
            return;
        }
        pager_t *p = s->pager;
        if (strcmp(d->key, "cached") == 0) {
            /* The file pages the cache holds, in cache-slot order, e.g. "0 1 7". */
            size_t o = 0;
            out->text[0] = '\0';
            for (uint64_t i = 0; p != NULL && p->kind == PAGER_FILE && i < p->slots; i++) {
                if (p->holds[i] != 0 && o + 24 < sizeof(out->text)) {
                    o += (size_t)snprintf(out->text + o, sizeof(out->text) - o, "%s%" PRIu64,
                                          o ? " " : "", p->holds[i] - 1);
                }
            }
            *have = 1;
            return;
        }
        const named_value_t t[] = {{"size", in.size},
                                   {"regions", in.regions},
                                   {"faults", in.faults},
                                   {"donation", in.donation},
                                   {"records", in.records_used},
                                   {"capacity", in.records_capacity},
                                   {"upgrades", in.upgrades},
                                   {"expanding", in.expanding},
                                   {"fills", p ? p->fills : 0},
                                   {"evictions", p ? p->evictions : 0}};
        pick_value(t, sizeof(t) / sizeof(t[0]), d->key, out, have);
    }
}

static int is_count(const char *k)
{
    static const char *const counts[] = {"records",
                                         "capacity",
                                         "caps",
                                         "caps-limit",
                                         "upgrades",
                                         "children",
                                         "regions",
                                         "faults",
                                         "fills",
                                         "evictions",
                                         "done",
                                         "step-faults",
                                         "needed",
                                         "available",
                                         "heap-frames",
                                         "boot-heap-frames",
                                         "kernel-frames",
                                         "borrowed-frames",
                                         "released-frames",
                                         "device-records",
                                         "device-reserve",
                                         "frames-limit",
                                         "frames-used",
                                         "frames-avail",
                                         "nodes-limit",
                                         "nodes-used",
                                         "nodes-avail",
                                         "depth"};
    for (size_t i = 0; i < sizeof(counts) / sizeof(counts[0]); i++) {
        if (strcmp(k, counts[i]) == 0) {
            return 1;
        }
    }
    return 0;
}

/* Addresses and offsets read best in hexadecimal alone. */
static int is_address(const char *k)
{
    return strcmp(k, "phys") == 0 || strcmp(k, "address") == 0 || strcmp(k, "offset") == 0 ||
           strcmp(k, "fault-address") == 0;
}

static void value_text(const result_t *v, char *buf, size_t len)
{
    switch (v->type) {
    case V_NUM:
        if (v->num == UINT64_MAX) {
            snprintf(buf, len, "unlimited");
        } else if (v->key != NULL && is_address(v->key)) {
            snprintf(buf, len, "0x%" PRIx64, v->num);
        } else if (v->key != NULL && is_count(v->key)) {
            snprintf(buf, len, "%" PRIu64, v->num);
        } else if (v->num >= 1024 && (v->num % 1024) == 0) {
            char b[32];
            snprintf(buf, len, "%s (0x%" PRIx64 ")", fmt_size(v->num, b), v->num);
        } else if (v->num >= 16) {
            snprintf(buf, len, "%" PRIu64 " (0x%" PRIx64 ")", v->num, v->num);
        } else {
            snprintf(buf, len, "%" PRIu64, v->num);
        }
        break;
    case V_BOOL:
        snprintf(buf, len, "%s", v->num ? "true" : "false");
        break;
    default:
        snprintf(buf, len, "\"%.180s\"", v->text);
        break;
    }
}

/* Print every value object @p s has now, for a show step. */
static void describe(run_t *r, int s)
{
    char line[1024];
    size_t len = 0;
    line[0] = '\0';
    for (size_t i = 0; i < NVDEFS; i++) {
        if (vdefs[i].kinds == 0 || !kind_ok(r->syms[s].kind, vdefs[i].kinds)) {
            continue;
        }
        result_t v;
        memset(&v, 0, sizeof(v));
        v.type = vdefs[i].type;
        v.key = vdefs[i].key;
        int have = 0;
        subject_value(r, &r->syms[s], &vdefs[i], &v, &have);
        if (strcmp(vdefs[i].key, "alive") == 0 || !have) {
            continue;
        }
        if ((strcmp(vdefs[i].key, "fills") == 0 || strcmp(vdefs[i].key, "evictions") == 0 ||
             strcmp(vdefs[i].key, "cached") == 0) &&
            (r->syms[s].pager == NULL || r->syms[s].pager->kind != PAGER_FILE)) {
            continue;
        }
        char vt[200];
        value_text(&v, vt, sizeof(vt));
        if (len > 60) {
            say(r, "    %s\n", line);
            len = 0;
            line[0] = '\0';
        }
        len += (size_t)snprintf(line + len, sizeof(line) - len, "%s%s %s", len ? ", " : "",
                                vdefs[i].key, vt);
    }
    if (len == 0 && r->syms[s].cap != 0) {
        capmem_cap_info_t ci;
        if (capmem_cap_identify(r->arena, r->syms[s].cap, &ci) != CAPMEM_OK) {
            snprintf(line, sizeof(line), "%s is gone", r->syms[s].name);
            len = 1;
        }
    }
    if (len > 0) {
        say(r, "    %s\n", line);
    }
}

/* Read the expect: node in the dry pass (types, known keys); sets want_error. */
static int read_expect(run_t *r)
{
    ynode_t *e = r->expect;
    r->want_error = CAPMEM_OK;
    r->want_error_given = 0;
    if (e == NULL) {
        return 0;
    }
    ynode_t *errv = NULL;
    if (e->kind == Y_SCALAR) {
        errv = e;
    } else if (e->kind == Y_MAP) {
        errv = ytree_get(e, "error");
    } else {
        return bad(r, e,
                   "'expect' takes an error name (expect: OUT_OF_RAM) or values "
                   "(expect: {quota: 1 MiB, used: 0})");
    }
    if (errv != NULL) {
        if (errv->kind != Y_SCALAR || err_by_name(errv->value, &r->want_error) != 0) {
            return bad(r, errv,
                       "'%s' is not an error name; expected OK or one of INVALID_ARGS, "
                       "OUT_OF_RAM, OUT_OF_METADATA, NOT_ENOUGH_MEMORY, ... (docs/errors.md)",
                       errv->kind == Y_SCALAR ? errv->value : "(not a word)");
        }
        r->want_error_given = r->want_error != CAPMEM_OK;
    }
    if (e->kind != Y_MAP) {
        return 0;
    }
    for (size_t i = 0; i < e->n; i++) {
        const char *k = e->keys[i]->value;
        if (strcmp(k, "error") == 0) {
            continue;
        }
        const vdef_t *d = vdef_find(k);
        if (d == NULL) {
            char list[768] = "";
            for (size_t j = 0; j < NVDEFS; j++) {
                size_t l = strlen(list);
                snprintf(list + l, sizeof(list) - l, "%s%s", j ? ", " : "", vdefs[j].key);
            }
            return bad(r, e->keys[i],
                       "unknown value '%s' in 'expect'; expected error or one of: %s", k, list);
        }
        ynode_t *v = e->items[i];
        if (v->kind != Y_SCALAR) {
            return bad(r, v, "expected value of '%s' must be a single value, found %s", k,
                       ytree_kind_name(v));
        }
        uint64_t n;
        int b;
        if (d->type == V_NUM && parse_number(v->value, &n) != 0) {
            return bad(r, v, "'%s' is a number (such as 4096, 0x1000 or 64 KiB), found '%s'", k,
                       v->value);
        }
        if (d->type == V_BOOL && parse_bool(v->value, &b) != 0) {
            return bad(r, v, "'%s' is true or false, found '%s'", k, v->value);
        }
        if (d->type == V_SYM && sym_find(r, v->value) < 0) {
            return bad(r, v, "'%s' names '%s', which no step defines", k, v->value);
        }
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Events during a step */

static void on_event(capmem_arena_t *arena, const capmem_event_t *ev, void *ctx)
{
    (void)arena;
    run_t *r = ctx;
    if (ev->kind == CAPMEM_EVENT_FAULT) {
        r->faults++;
        r->fault_map = map_of_cap(r, ev->cap);
        r->fault_address = ev->a;
        r->fault_access = (capmem_rm_access_t)ev->b;
        say(r, "    [fault] %s of 0x%" PRIx64 " in %s\n",
            capmem_rm_access_name((capmem_rm_access_t)ev->b), ev->a,
            r->fault_map >= 0 ? r->syms[r->fault_map].name : "?");
#if CAPMEM_TOOL_KERNEL
    } else if (ev->kind == CAPMEM_EVENT_KERNEL_HEAP) {
        say(r, "    [event: kernel heap] %s\n", ev->message);
#endif
    } else if (ev->kind == CAPMEM_EVENT_UPGRADE) {
        r->upgrades++;
        say(r, "    [event: upgrade] %s\n", ev->message);
    }
}

/* ------------------------------------------------------------------------ */
/* The machine and the whole file */

#if CAPMEM_TOOL_KERNEL
/* machine: kernel: {strategy, record-size, image-frames, device-frames} */
static int read_kernel(run_t *r, ynode_t *v)
{
    static const char *const strategies[] = {"fixed", "hybrid", "conservative", NULL};
    capmem_kernel_attr_t ka = CAPMEM_KERNEL_ATTR_INIT;
    if (v->kind != Y_MAP) {
        return bad(r, v,
                   "'kernel' takes strategy, record-size, image-frames and device-frames, "
                   "found %s",
                   ytree_kind_name(v));
    }
    for (size_t i = 0; i < v->n; i++) {
        const char *k = v->keys[i]->value;
        ynode_t *x = v->items[i];
        if (strcmp(k, "strategy") == 0) {
            int found = -1;
            for (int j = 0; strategies[j] != NULL; j++) {
                if (x->kind == Y_SCALAR && strcmp(x->value, strategies[j]) == 0) {
                    found = j;
                }
            }
            if (found < 0) {
                return bad(r, x, "'strategy' takes fixed, hybrid or conservative");
            }
            ka.strategy = found == 0   ? CAPMEM_KERNEL_FIXED
                          : found == 1 ? CAPMEM_KERNEL_HYBRID
                                       : CAPMEM_KERNEL_CONSERVATIVE;
            continue;
        }
        uint64_t n = 0;
        if (strcmp(k, "record-size") != 0 && strcmp(k, "image-frames") != 0 &&
            strcmp(k, "device-frames") != 0) {
            return bad(r, v->keys[i],
                       "unknown key '%s' in 'kernel'; expected strategy, record-size, "
                       "image-frames or device-frames",
                       k);
        }
        if (x->kind != Y_SCALAR || parse_number(x->value, &n) != 0) {
            return bad(r, x, "'%s' takes a number", k);
        }
        if (strcmp(k, "record-size") == 0) {
            ka.record_size = n;
        } else if (strcmp(k, "image-frames") == 0) {
            ka.image_frames = n;
        } else {
            ka.device_frames = n;
        }
    }
    r->have_kernel = 1;
    r->kattr = ka;
    return 0;
}

#endif
static int read_machine(run_t *r, ynode_t *m, capmem_arena_attr_t *a)
{
    a->ram_size = 16ull << 20;
    a->page_size = 4096;
    a->phys_base = 0x100000;
    a->cap_slots = 1u << 16;
    a->device_window = 0;
    if (m == NULL) {
        return 0;
    }
    if (m->kind != Y_MAP) {
        return bad(r, m, "'machine' takes keys ram, page, phys-base, caps and devices, found %s",
                   ytree_kind_name(m));
    }
    ynode_t *devices = NULL;
    uint64_t extra_window = 0;
    for (size_t i = 0; i < m->n; i++) {
        const char *k = m->keys[i]->value;
        ynode_t *v = m->items[i];
        uint64_t n = 0;
        if (strcmp(k, "devices") == 0) {
            devices = v;
            continue;
        }
#if CAPMEM_TOOL_KERNEL
        if (strcmp(k, "kernel") == 0) {
            if (read_kernel(r, v) != 0) {
                return -1;
            }
            continue;
        }
#endif
        if (strcmp(k, "ram") != 0 && strcmp(k, "page") != 0 && strcmp(k, "phys-base") != 0 &&
            strcmp(k, "caps") != 0 && strcmp(k, "device-window") != 0) {
            return bad(r, m->keys[i],
                       "unknown key '%s' in 'machine'; expected ram, page, phys-base, caps, "
                       "devices, device-window" MACHINE_KERNEL_KEY,
                       k);
        }
        if (v->kind != Y_SCALAR || parse_number(v->value, &n) != 0) {
            return bad(r, v, "'%s' takes a number such as 4096, 0x1000 or 16 MiB", k);
        }
        if (strcmp(k, "ram") == 0) {
            a->ram_size = n;
            if (r->o->max_ram != 0 && n > r->o->max_ram) {
                return bad(r, v, "'ram' is limited to %" PRIu64 " bytes here", r->o->max_ram);
            }
        } else if (strcmp(k, "page") == 0) {
            a->page_size = n;
        } else if (strcmp(k, "phys-base") == 0) {
            a->phys_base = n;
        } else if (strcmp(k, "device-window") == 0) {
            if (r->o->max_ram != 0 && n > r->o->max_ram) {
                return bad(r, v, "'device-window' is limited to %" PRIu64 " bytes here",
                           r->o->max_ram);
            }
            extra_window = n;
        } else {
            a->cap_slots = n > UINT32_MAX ? UINT32_MAX : (uint32_t)n;
        }
    }
    if (devices != NULL) {
        if (devices->kind != Y_SEQ) {
            return bad(r, devices, "'devices' takes a list of {at: ADDRESS, size: SIZE}");
        }
        for (size_t i = 0; i < devices->n; i++) {
            ynode_t *d = devices->items[i];
            ynode_t *at = ytree_get(d, "at");
            ynode_t *sz = ytree_get(d, "size");
            uint64_t n = 0, x = 0;
            if (d->kind != Y_MAP || at == NULL || sz == NULL || d->n != 2) {
                return bad(r, d, "a device is {at: ADDRESS, size: SIZE}, nothing else");
            }
            if (at->kind != Y_SCALAR || parse_number(at->value, &x) != 0) {
                return bad(r, at, "'at' takes a physical address such as 0xfee00000");
            }
            if (sz->kind != Y_SCALAR || parse_number(sz->value, &n) != 0) {
                return bad(r, sz, "'size' takes a number such as 64 KiB");
            }
            if (a->device_window + n < n ||
                (r->o->max_ram && a->device_window + n > r->o->max_ram)) {
                return bad(r, sz, "devices too large");
            }
            a->device_window += n;
        }
    }
    if (extra_window > a->device_window) {
        a->device_window = extra_window;
    }
    return 0;
}

static int add_devices(run_t *r, ynode_t *m)
{
    ynode_t *devices = ytree_get(m, "devices");
    for (size_t i = 0; devices != NULL && i < devices->n; i++) {
        uint64_t at = 0, size = 0;
        (void)parse_number(ytree_get(devices->items[i], "at")->value, &at);
        (void)parse_number(ytree_get(devices->items[i], "size")->value, &size);
        capmem_device_info_t info;
        capmem_err_t err = capmem_arena_device_add(r->arena, at, size, &info);
        if (err != CAPMEM_OK) {
            return bad(r, devices->items[i], "the machine refuses this device: %s (%s)",
                       capmem_err_name(err), capmem_last_error()->message);
        }
    }
    return 0;
}

/* Read step @p st's shape: which action, its label, its expectation. */
static int read_step_shape(run_t *r, ynode_t *st, const action_t **act)
{
    r->step = st;
    r->nknown = 0;
    r->expect = NULL;
    *act = NULL;
    if (st->kind != Y_MAP) {
        return bad(r, st, "a step is a map such as '- alloc: buf' with its keys below, found %s",
                   ytree_kind_name(st));
    }
    for (size_t i = 0; i < st->n; i++) {
        st->keys[i]->used = 0;
    }
    for (size_t i = 0; i < st->n; i++) {
        for (size_t a = 0; a < NACTIONS; a++) {
            if (strcmp(st->keys[i]->value, actions[a].name) == 0) {
                if (*act != NULL) {
                    return bad(r, st->keys[i],
                               "a step does one thing: '%s' and '%s' are both "
                               "actions; split them into two steps",
                               (*act)->name, actions[a].name);
                }
                *act = &actions[a];
                r->action_value = st->items[i];
                st->keys[i]->used = 1;
            }
        }
    }
    if (*act == NULL) {
        char list[512] = "";
        for (size_t a = 0; a < NACTIONS; a++) {
            size_t l = strlen(list);
            snprintf(list + l, sizeof(list) - l, "%s%s", a ? ", " : "", actions[a].name);
        }
        return bad(r, st, "this step has no action; expected one of: %s", list);
    }
    r->action = (*act)->name;
    for (size_t i = 0; i < sizeof(common_keys) / sizeof(common_keys[0]); i++) {
        for (size_t k = 0; k < st->n; k++) {
            if (strcmp(st->keys[k]->value, common_keys[i]) == 0) {
                st->keys[k]->used = 1;
            }
        }
    }
    ynode_t *label = ytree_get(st, "step");
    if (label != NULL && label->kind != Y_SCALAR) {
        return bad(r, label, "'step' takes the step's name, found %s", ytree_kind_name(label));
    }
    ynode_t *note = ytree_get(st, "note");
    if (note != NULL && note->kind != Y_SCALAR) {
        return bad(r, note, "'note' takes text, found %s", ytree_kind_name(note));
    }
    if (label != NULL) {
        snprintf(r->label, sizeof(r->label), "%s", label->value);
    } else {
        snprintf(r->label, sizeof(r->label), "%s %s", r->action,
                 r->action_value->kind == Y_SCALAR ? r->action_value->value : "");
    }
    r->expect = ytree_get(st, "expect");
    return 0;
}

static int unknown_keys(run_t *r)
{
    for (size_t i = 0; i < sizeof(common_keys) / sizeof(common_keys[0]); i++) {
        (void)key(r, common_keys[i]);
    }
    for (size_t i = 0; i < r->step->n; i++) {
        if (!r->step->keys[i]->used) {
            char list[512] = "";
            for (int k = 0; k < r->nknown; k++) {
                size_t l = strlen(list);
                snprintf(list + l, sizeof(list) - l, "%s%s", k ? ", " : "", r->known[k]);
            }
            return bad(r, r->step->keys[i], "unknown key '%s' for '%s'; expected %s",
                       r->step->keys[i]->value, r->action, list);
        }
    }
    return 0;
}

/* Compare the outcome with the expectation; print; 0 when it holds. */
static int judge(run_t *r, ynode_t *st)
{
    ynode_t *e = r->expect;
    int ok = 1;
    char rows[2048] = "";
    size_t len = 0;
    /* The error: named, or success when nothing else is said. */
    if (r->want_error != r->got || (e == NULL && r->got != CAPMEM_OK)) {
        ok = 0;
        len += (size_t)snprintf(rows + len, sizeof(rows) - len, "    %-14s %-30s %s\n", "error",
                                capmem_err_name(r->want_error), capmem_err_name(r->got));
    } else if (r->want_error_given) {
        say(r, "    expected %s: ok\n", capmem_err_name(r->want_error));
    }
    if (e != NULL && e->kind == Y_MAP) {
        for (size_t i = 0; i < e->n && len < sizeof(rows) - 200; i++) {
            const char *k = e->keys[i]->value;
            if (strcmp(k, "error") == 0) {
                continue;
            }
            const vdef_t *d = vdef_find(k);
            result_t want = {.key = k, .type = d->type};
            if (d->type == V_NUM || d->type == V_BOOL) {
                int b = 0;
                if (d->type == V_NUM) {
                    (void)parse_number(e->items[i]->value, &want.num);
                } else {
                    (void)parse_bool(e->items[i]->value, &b);
                    want.num = (uint64_t)b;
                }
            } else {
                snprintf(want.text, sizeof(want.text), "%s", e->items[i]->value);
            }
            result_t got;
            int have = 0;
            actual_value(r, d, &got, &have);
            int same = have && (d->type == V_NUM || d->type == V_BOOL ? got.num == want.num
                                : strcmp(k, "message") == 0 ? strstr(got.text, want.text) != NULL
                                                            : strcmp(got.text, want.text) == 0);
            char ws[200], gs[200];
            value_text(&want, ws, sizeof(ws));
            if (have) {
                value_text(&got, gs, sizeof(gs));
            } else {
                snprintf(gs, sizeof(gs), "(none: %s has no '%s' here)",
                         r->subject >= 0 ? r->syms[r->subject].name : "this step", k);
            }
            if (!same) {
                ok = 0;
                len += (size_t)snprintf(rows + len, sizeof(rows) - len, "    %-14s %-30s %s\n", k,
                                        ws, gs);
            } else {
                say(r, "    expected %s = %s: ok\n", k, gs);
            }
        }
    }
    if (!ok) {
        fprintf(r->o->out, "\n");
        fflush(r->o->out);
        fprintf(r->o->err,
                "capmem: %s:%d: step %d \"%s\" differs from its expectation\n"
                "    %-14s %-30s %s\n%s",
                r->file, st->line, r->stepno, r->label, "", "expected", "actual", rows);
        if (r->got != CAPMEM_OK) {
            fprintf(r->o->err, "    the library said: %s: %s\n", capmem_err_name(r->got),
                    r->got_info.message);
        }
        return -1;
    }
    return 0;
}

static void run_destroy(run_t *r)
{
    for (size_t i = 0; i < r->nsyms; i++) {
        free(r->syms[i].name);
        pager_free(r->syms[i].pager);
    }
    free(r->syms);
    free(r->atts);
}

/* --dump FORMAT FILE: write the state now; 0 on success. */
static int write_dump(run_t *r)
{
    FILE *f = fopen(r->o->dump_path, "w");
    if (f == NULL) {
        fprintf(r->o->err, "capmem: cannot write the dump to %s: %s\n", r->o->dump_path,
                strerror(errno));
        return -1;
    }
    capmem_err_t err = capmem_dump(r->arena, f, (capmem_dump_format_t)r->o->dump_format);
    if (fclose(f) != 0 && err == CAPMEM_OK) {
        err = CAPMEM_E_SYSTEM;
    }
    if (err != CAPMEM_OK) {
        fprintf(r->o->err, "capmem: cannot write the dump to %s: %s (%s)\n", r->o->dump_path,
                capmem_err_name(err), capmem_last_error()->message);
        return -1;
    }
    fprintf(r->o->out, "    (state written to %s)\n", r->o->dump_path);
    return 0;
}

static int run_steps(run_t *r, ynode_t *steps)
{
    for (size_t i = 0; i < steps->n; i++) {
        ynode_t *st = steps->items[i];
        const action_t *act = NULL;
        r->stepno = (int)i + 1;
        if (read_step_shape(r, st, &act) != 0) {
            return SCEN_BAD_INPUT;
        }
        r->subject = -1;
        r->subject2 = -1;
        r->nresults = 0;
        r->got = CAPMEM_OK;
        r->faults = 0;
        r->fault_map = -1;
        r->upgrades = 0;
        uint64_t repeat = 1;
        ynode_t *rv = ytree_get(st, "repeat");
        if (rv != NULL &&
            (rv->kind != Y_SCALAR || parse_number(rv->value, &repeat) != 0 || repeat == 0 ||
             repeat > 1000000 || (r->o->max_repeat && repeat > r->o->max_repeat))) {
            bad(r, rv, "'repeat' takes a count from 1 to %" PRIu64,
                r->o->max_repeat ? r->o->max_repeat : 1000000);
            return SCEN_BAD_INPUT;
        }
        if (r->dry) {
            if (r->o->dump_after != NULL && strcmp(r->o->dump_after, r->label) == 0) {
                r->dump_step_seen = 1;
            }
            if (read_expect(r) != 0) {
                return SCEN_BAD_INPUT;
            }
            if (act->fn(r) != 0 || r->bad || unknown_keys(r) != 0) {
                return SCEN_BAD_INPUT;
            }
            continue;
        }
        (void)read_expect(r);
        fprintf(r->o->out, "[%d] %s\n", r->stepno, r->label);
        ynode_t *note = ytree_get(st, "note");
        if (note != NULL) {
            fprintf(r->o->out, "    (%s)\n", note->value);
        }
        uint64_t done = 0;
        for (uint64_t k = 0; k < repeat; k++) {
            r->repeating = repeat > 1 ? (int)(k > 0) + 1 : 0;
            if (k > 0 && repeat > 1) {
                r->repeating = 2;
            }
            r->got = CAPMEM_OK;
            if (act->fn(r) != 0) {
                return SCEN_BAD_INPUT; /* e.g. a pager's file that cannot be read */
            }
            if (r->got != CAPMEM_OK) {
                break;
            }
            done++;
        }
        r->repeating = 0;
        if (repeat > 1) {
            result_num(r, "done", done);
            fprintf(r->o->out, "    %" PRIu64 " of %" PRIu64 " done%s%s\n", done, repeat,
                    r->got != CAPMEM_OK ? ", then " : "",
                    r->got != CAPMEM_OK ? capmem_err_name(r->got) : "");
            if (r->got != CAPMEM_OK && done > 0) {
                say_outcome_error(r);
            }
            if (r->upgrades > 0) {
                fprintf(r->o->out, "    %" PRIu64 " upgrades of the donation on the way\n",
                        r->upgrades);
            }
        } else {
            result_num(r, "done", done);
        }
        /* The pager's own failure is the cause of an unresolved fault: say so. */
        for (size_t m = 0; m < r->nsyms; m++) {
            pager_t *p = r->syms[m].pager;
            if (p != NULL && p->failed != CAPMEM_OK) {
                fprintf(r->o->out, "    (the pager of %s failed: %s)\n", r->syms[m].name,
                        capmem_err_name(p->failed));
                p->failed = CAPMEM_OK;
            }
        }
        char why[256];
        if (capmem_check(r->arena, why, sizeof(why)) != CAPMEM_OK) {
            fprintf(r->o->err, "capmem: %s:%d: after step %d \"%s\" an invariant is broken: %s\n",
                    r->file, st->line, r->stepno, r->label, why);
            return SCEN_DIFFERS;
        }
        if (judge(r, st) != 0) {
            return SCEN_DIFFERS;
        }
        if (r->o->step_dump) {
            fprintf(r->o->out, "    --- the state after step %d ---\n", r->stepno);
            capmem_err_t derr = capmem_dump(r->arena, r->o->out, CAPMEM_DUMP_TEXT);
            fprintf(r->o->out, "    ---\n");
            if (derr != CAPMEM_OK) {
                fprintf(r->o->err, "capmem: the dump failed: %s\n", capmem_err_name(derr));
                return SCEN_BAD_INPUT;
            }
        }
        if (r->o->dump_path != NULL && r->o->dump_after != NULL &&
            strcmp(r->o->dump_after, r->label) == 0 && write_dump(r) != 0) {
            return SCEN_BAD_INPUT;
        }
    }
    if (r->dry && r->o->dump_after != NULL && !r->dump_step_seen) {
        return bad(r, NULL,
                   "--after '%s': no step has that name (a step's name is its 'step:' "
                   "text, or its action and value, such as \"alloc buf\")",
                   r->o->dump_after),
               SCEN_BAD_INPUT;
    }
    return SCEN_OK;
}

static int check_top(run_t *r, ynode_t *root, ynode_t **machine, ynode_t **steps)
{
    if (root == NULL || root->kind != Y_MAP) {
        return bad(r, root, "a scenario is a map with 'title', 'machine' and 'steps', found %s",
                   ytree_kind_name(root));
    }
    for (size_t i = 0; i < root->n; i++) {
        const char *k = root->keys[i]->value;
        if (strcmp(k, "title") != 0 && strcmp(k, "about") != 0 && strcmp(k, "machine") != 0 &&
            strcmp(k, "steps") != 0) {
            return bad(r, root->keys[i],
                       "unknown key '%s' at the top; expected title, about, machine or steps", k);
        }
        if ((strcmp(k, "title") == 0 || strcmp(k, "about") == 0) &&
            root->items[i]->kind != Y_SCALAR) {
            return bad(r, root->items[i], "'%s' takes text, found %s", k,
                       ytree_kind_name(root->items[i]));
        }
    }
    *machine = ytree_get(root, "machine");
    *steps = ytree_get(root, "steps");
    if (*steps == NULL) {
        return bad(r, root, "a scenario needs 'steps:', a list of steps");
    }
    if ((*steps)->kind != Y_SEQ) {
        return bad(r, *steps, "'steps' takes a list of steps ('- alloc: buf' ...), found %s",
                   ytree_kind_name(*steps));
    }
    return 0;
}

int scenario_run_buffer(const char *file, const char *buf, size_t len, const scen_opts_t *opts)
{
    run_t r;
    memset(&r, 0, sizeof(r));
    r.o = opts;
    r.file = file;
    char err[512];
    ynode_t *root = NULL;
    if (ytree_parse(buf, len, &root, err, sizeof(err)) != 0) {
        fprintf(opts->err, "%s:%s\n", file, err);
        return SCEN_BAD_INPUT;
    }
    int status = SCEN_BAD_INPUT;
    ynode_t *machine = NULL, *steps = NULL;
    capmem_arena_attr_t attr = CAPMEM_ARENA_ATTR_INIT;
    if (check_top(&r, root, &machine, &steps) != 0 || read_machine(&r, machine, &attr) != 0) {
        goto out;
    }
    r.page = attr.page_size;
    /* Pass 1: read and check every step; nothing runs. */
    r.dry = 1;
    if (r.have_kernel) {
        r.step = machine;
        (void)define(&r, "kernel", S_KERNEL, -1);
    }
    status = run_steps(&r, steps);
    if (status != SCEN_OK || opts->check_only) {
        if (status == SCEN_OK) {
            fprintf(opts->out, "%s: %zu steps, well formed\n", file, steps->n);
        }
        goto out;
    }
    /* Pass 2: run. */
    r.dry = 0;
    r.bad = 0;
    capmem_err_t aerr = capmem_arena_create(&attr, &r.arena);
    if (aerr != CAPMEM_OK) {
        bad(&r, machine, "the machine cannot be made: %s (%s)", capmem_err_name(aerr),
            capmem_last_error()->message);
        status = SCEN_BAD_INPUT;
        goto out;
    }
#if CAPMEM_TOOL_KERNEL
    if (r.have_kernel) {
        /* The kernel boots first: it takes its image and heap from the start of RAM. */
        r.step = machine;
        r.stepno = 0;
        (void)define(&r, "kernel", S_KERNEL, -1);
        capmem_err_t kerr = capmem_kernel_boot(r.arena, &r.kattr);
        if (kerr != CAPMEM_OK) {
            bad(&r, ytree_get(machine, "kernel"), "the kernel cannot boot: %s (%s)",
                capmem_err_name(kerr), capmem_last_error()->message);
            status = SCEN_BAD_INPUT;
            goto out;
        }
    }
#endif
    if (add_devices(&r, machine) != 0) {
        status = SCEN_BAD_INPUT;
        goto out;
    }
    capmem_subscription_t sub;
    if (capmem_subscribe(r.arena,
                         CAPMEM_EVENT_MASK(CAPMEM_EVENT_FAULT) |
                             CAPMEM_EVENT_MASK(CAPMEM_EVENT_UPGRADE) | KERNEL_EVENTS,
                         on_event, &r, &sub) != CAPMEM_OK) {
        bad(&r, NULL, "cannot subscribe to events");
        status = SCEN_BAD_INPUT;
        goto out;
    }
    if (opts->trace_path != NULL) {
        r.trace = fopen(opts->trace_path, "w");
        if (r.trace == NULL || capmem_trace_start(r.arena, r.trace, CAPMEM_EVENT_ALL) != 0) {
            bad(&r, NULL, "cannot record the trace to %s: %s", opts->trace_path, strerror(errno));
            status = SCEN_BAD_INPUT;
            goto out;
        }
    }
    ynode_t *title = ytree_get(root, "title");
    char b1[32], b2[32];
    fprintf(opts->out, "== %s ==\n", title ? title->value : file);
    fprintf(opts->out, "machine: %s of RAM in %s pages at physical 0x%" PRIx64 "\n\n",
            fmt_size(attr.ram_size, b1), fmt_size(attr.page_size, b2), attr.phys_base);
    status = run_steps(&r, steps);
    if (r.bad) {
        status = SCEN_BAD_INPUT;
    }
    if (status == SCEN_OK && opts->dump_path != NULL && opts->dump_after == NULL &&
        write_dump(&r) != 0) {
        status = SCEN_BAD_INPUT;
    }
    if (status == SCEN_OK) {
        fprintf(opts->out, "\n%s: all %zu steps ran as expected\n", file, steps->n);
    }
out:
    if (r.trace != NULL) {
        if (r.arena != NULL) {
            (void)capmem_trace_stop(r.arena);
        }
        fclose(r.trace);
    }
    capmem_arena_destroy(r.arena);
    run_destroy(&r);
    ytree_free(root);
    return status;
}

int scenario_run_file(const char *path, const scen_opts_t *opts)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    if (f == NULL) {
        fprintf(opts->err, "capmem: cannot open %s: %s\n", path, strerror(errno));
        return SCEN_BAD_INPUT;
    }
    char *buf = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len == cap) {
            cap = cap ? cap * 2 : 16384;
            if (cap > (16u << 20)) {
                fprintf(opts->err, "capmem: %s is larger than 16 MiB\n", path);
                free(buf);
                if (f != stdin) {
                    fclose(f);
                }
                return SCEN_BAD_INPUT;
            }
            char *nb = realloc(buf, cap);
            if (nb == NULL) {
                free(buf);
                if (f != stdin) {
                    fclose(f);
                }
                return SCEN_BAD_INPUT;
            }
            buf = nb;
        }
        size_t n = fread(buf + len, 1, cap - len, f);
        len += n;
        if (n == 0) {
            break;
        }
    }
    if (f != stdin) {
        fclose(f);
    }
    int rc = scenario_run_buffer(path, buf, len, opts);
    free(buf);
    return rc;
}
