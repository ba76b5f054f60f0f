/* SPDX-License-Identifier: MIT */
/* Error names, messages and the per-thread detail record. */
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
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

/*
 * Lazy messages. A failure records its code and numbers at once but only
 * captures the message's format and arguments; the text is formatted when
 * someone reads the record (capmem_last_error()). Most failures are never
 * read (a caller tries, fails, tries something else), and vsnprintf was by
 * far the dearest part of failing: a refused forged handle cost 15 times a
 * successful lookup.
 *
 * Capture stores each argument as 64 bits, by the kinds of the format's
 * arguments, found by walking the format once (strchr to each '%') and
 * cached per thread by the format's address: the library's formats are
 * string literals. capmem_error_set(), whose format is the caller's and may
 * not outlive the call, formats at once. A %s argument is copied into the record's string
 * buffer, because the caller's string may not live until the message is
 * read (a stack copy of an earlier record, an object's name). Only the
 * first MSG_LEN - 1 characters of a string can ever reach the message, so
 * longer strings are cut there without changing the text. A format the
 * capture does not know (a '*' width, a conversion outside d i u x X o c s
 * p %, more than PEND_ARGS arguments, strings that overflow the buffer) is
 * formatted at once with vsnprintf, as before: the text is the same either
 * way, only its cost moves.
 */
#define MSG_LEN ((int)sizeof(((capmem_error_info_t *)0)->message))
#define PEND_ARGS 12
#define PEND_STRS 512

typedef struct pending {
    const char *fmt; /* NULL: the message is formatted (or empty) */
    unsigned nargs;
    uint64_t args[PEND_ARGS]; /* integers (sign-extended), pointers; strings: offset in strs */
    char strs[PEND_STRS];
} pending_t;

/*
 * One record per thread: failures on one thread never clobber another's.
 * The record, its pending message and the failure count sit in one
 * thread-local struct, so a failure finds them with one TLS address lookup
 * (in a shared library each distinct variable can cost a __tls_get_addr).
 */
/* Argument kinds of a captured format, two bits each. */
enum { K_I32 = 0, K_I64 = 1, K_PTR = 2, K_STR = 3 };

/* A format's signature, cached by the format's address. */
typedef struct fmt_sig {
    const char *fmt;
    uint32_t kinds; /* kind of argument i in bits 2i, 2i + 1 */
    uint8_t n;      /* arguments */
    bool ok;        /* false: the format is formatted at once */
} fmt_sig_t;

#define SIG_CACHE 64

typedef struct err_tls {
    capmem_error_info_t d;
    uint64_t failures;
    pending_t p;
    fmt_sig_t sigs[SIG_CACHE];
} err_tls_t;

static _Thread_local err_tls_t tls_err;

/*
 * The calling thread's record. Not inlined on purpose: GCC recomputes a
 * TLS address (a __tls_get_addr call in a shared library) wherever it is
 * cheaper than keeping it in a register, six times in one failure; an
 * opaque call's result is kept.
 */
__attribute__((noinline)) static err_tls_t *err_tls(void)
{
    return &tls_err;
}

/*
 * The calling thread's failure count and current public call, recorded
 * once at entry (capmem__enter) so internal functions need not pass their
 * caller's name down just to label an error; failures counts every failure
 * recorded, so a caller can tell whether a callback it ran failed (see
 * capmem__failures).
 */
_Thread_local const char *capmem__tls_function;

uint64_t capmem__failures(void)
{
    return tls_err.failures;
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

/* Length modifiers, as far as the capture needs to tell argument types apart. */
typedef enum { LEN_INT, LEN_LONG, LEN_LLONG, LEN_SIZE, LEN_INTMAX, LEN_PTRDIFF } len_t;

typedef struct spec {
    const char *end; /* one past the conversion character */
    char conv;       /* the conversion character; 0: not one we capture */
    len_t len;
} spec_t;

/* Parse the conversion that starts at p ('%'). */
static spec_t parse_spec(const char *p)
{
    spec_t s = {.conv = 0, .len = LEN_INT};
    p++;
    /* The library's formats are mostly %s, %u, %d, %x, %llu, %llx. */
    if (*p == 's' || *p == 'u' || *p == 'd' || *p == 'x') {
        s.conv = *p;
        s.end = p + 1;
        return s;
    }
    if (p[0] == 'l' && p[1] == 'l' && (p[2] == 'u' || p[2] == 'x')) {
        s.conv = p[2];
        s.len = LEN_LLONG;
        s.end = p + 3;
        return s;
    }
    while (*p == '-' || *p == '+' || *p == ' ' || *p == '#' || *p == '0') {
        p++;
    }
    while (*p >= '0' && *p <= '9') {
        p++;
    }
    if (*p == '.') {
        p++;
        while (*p >= '0' && *p <= '9') {
            p++;
        }
    }
    switch (*p) {
    case 'h':
        p += p[1] == 'h' ? 2 : 1; /* promoted to int */
        break;
    case 'l':
        s.len = p[1] == 'l' ? LEN_LLONG : LEN_LONG;
        p += p[1] == 'l' ? 2 : 1;
        break;
    case 'z':
        s.len = LEN_SIZE;
        p++;
        break;
    case 'j':
        s.len = LEN_INTMAX;
        p++;
        break;
    case 't':
        s.len = LEN_PTRDIFF;
        p++;
        break;
    default:
        break;
    }
    switch (*p) {
    case 'd':
    case 'i':
    case 'u':
    case 'x':
    case 'X':
    case 'o':
    case 'c':
    case 'p':
    case 's':
    case '%':
        s.conv = *p;
        s.end = p + 1;
        break;
    default:
        s.end = p;
        break;
    }
    return s;
}

static bool conv_signed(char c)
{
    return c == 'd' || c == 'i';
}

/* Capture fmt's arguments into tls_err.p; false if the format needs vsnprintf now. */
/* Build the signature of fmt: the kind of each argument; ok false if capture cannot take it. */
static void make_sig(const char *fmt, fmt_sig_t *sg)
{
    unsigned n = 0;
    uint32_t kinds = 0;
    sg->ok = false;
    for (const char *p = strchr(fmt, '%'); p != NULL; p = strchr(p, '%')) {
        spec_t s = parse_spec(p);
        if (s.conv == 0 || ((s.conv == 'p' || s.conv == 's') && s.len != LEN_INT)) {
            return;
        }
        p = s.end;
        if (s.conv == '%') {
            continue;
        }
        if (n == PEND_ARGS) {
            return;
        }
        unsigned k = s.conv == 's'      ? K_STR
                     : s.conv == 'p'    ? K_PTR
                     : s.len == LEN_INT ? K_I32
                                        : K_I64;
        kinds |= (uint32_t)k << (2 * n);
        n++;
    }
    sg->kinds = kinds;
    sg->n = (uint8_t)n;
    sg->ok = true;
}

/*
 * Capture fmt's arguments into t->p; false if the format needs vsnprintf
 * now. fmt must be a string literal (the library's own formats are): it is
 * read again when the message is, and its signature is cached by address.
 */
static bool capture(err_tls_t *t, const char *fmt, va_list ap)
{
    uintptr_t h = (uintptr_t)fmt;
    fmt_sig_t *sg = &t->sigs[(h ^ (h >> 6) ^ (h >> 12)) & (SIG_CACHE - 1)];
    if (sg->fmt != fmt) {
        make_sig(fmt, sg);
        sg->fmt = fmt;
    }
    if (!sg->ok) {
        return false;
    }
    pending_t *pd = &t->p;
    unsigned used = 0;
    uint32_t kinds = sg->kinds;
    for (unsigned i = 0; i < sg->n; i++, kinds >>= 2) {
        uint64_t v;
        switch (kinds & 3u) {
        case K_I32:
            v = va_arg(ap, unsigned); /* the low 32 bits, rendered as the spec says */
            break;
        case K_I64:
            v = va_arg(ap, unsigned long long);
            break;
        case K_PTR:
            v = (uint64_t)(uintptr_t)va_arg(ap, void *);
            break;
        case K_STR:
        default: {
            const char *str = va_arg(ap, const char *);
            if (str == NULL) {
                v = UINT64_MAX; /* printed as glibc prints NULL */
                break;
            }
            size_t l = 0;
            while (l < (size_t)MSG_LEN - 1 && str[l] != '\0') {
                l++;
            }
            if (l + 1 > PEND_STRS - used) {
                return false;
            }
            memcpy(pd->strs + used, str, l);
            pd->strs[used + l] = '\0';
            v = used;
            used += (unsigned)l + 1;
            break;
        }
        }
        pd->args[i] = v;
    }
    pd->nargs = sg->n;
    pd->fmt = fmt;
    return true;
}

/* Append one formatted argument at *pos; the text is cut at the message's end, as vsnprintf does.
 */
static void put_arg(char *msg, int *pos, const char *spec, size_t speclen, const spec_t *s,
                    uint64_t v)
{
    char sp[32];
    if (speclen >= sizeof(sp)) {
        speclen = sizeof(sp) - 1; /* cannot happen with the library's formats */
    }
    memcpy(sp, spec, speclen);
    sp[speclen] = '\0';
    int room = MSG_LEN - *pos;
    char *dst = msg + *pos;
    int w;
    bool sg = conv_signed(s->conv);
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
    if (s->conv == 's') {
        w = snprintf(dst, (size_t)room, sp, v == UINT64_MAX ? NULL : tls_err.p.strs + v);
    } else if (s->conv == 'p') {
        w = snprintf(dst, (size_t)room, sp, (void *)(uintptr_t)v);
    } else {
        switch (s->len) {
        case LEN_LONG:
            w = sg ? snprintf(dst, (size_t)room, sp, (long)v)
                   : snprintf(dst, (size_t)room, sp, (unsigned long)v);
            break;
        case LEN_LLONG:
            w = sg ? snprintf(dst, (size_t)room, sp, (long long)v)
                   : snprintf(dst, (size_t)room, sp, (unsigned long long)v);
            break;
        case LEN_SIZE:
            w = snprintf(dst, (size_t)room, sp, (size_t)v);
            break;
        case LEN_INTMAX:
            w = snprintf(dst, (size_t)room, sp, (intmax_t)v);
            break;
        case LEN_PTRDIFF:
            w = snprintf(dst, (size_t)room, sp, (ptrdiff_t)v);
            break;
        case LEN_INT:
        default:
            w = sg ? snprintf(dst, (size_t)room, sp, (int)v)
                   : snprintf(dst, (size_t)room, sp, (unsigned)v);
            break;
        }
    }
#pragma GCC diagnostic pop
    if (w > 0) {
        *pos += w < room ? w : room - 1;
    }
}

/* Format a captured message into the record (the same text vsnprintf would give). */
static void render(void)
{
    pending_t *pd = &tls_err.p;
    const char *fmt = pd->fmt;
    char *msg = tls_err.d.message;
    int pos = 0;
    unsigned k = 0;
    pd->fmt = NULL;
    for (const char *p = fmt; *p != '\0' && pos < MSG_LEN - 1;) {
        if (*p != '%') {
            const char *q = strchr(p, '%');
            size_t l = q != NULL ? (size_t)(q - p) : strlen(p);
            size_t room = (size_t)(MSG_LEN - 1 - pos);
            size_t c = l < room ? l : room;
            memcpy(msg + pos, p, c);
            pos += (int)c;
            p += l;
            continue;
        }
        spec_t s = parse_spec(p);
        if (s.conv == '%') {
            msg[pos++] = '%';
        } else {
            put_arg(msg, &pos, p, (size_t)(s.end - p), &s, pd->args[k++]);
        }
        p = s.end;
    }
    msg[pos] = '\0';
}

const capmem_error_info_t *capmem_last_error(void)
{
    if (tls_err.p.fmt != NULL) {
        render();
    }
    return &tls_err.d;
}

void capmem_error_clear(void)
{
    tls_err.p.fmt = NULL;
    memset(&tls_err.d, 0, sizeof(tls_err.d));
}

capmem_error_info_t *capmem__detail(void)
{
    return &tls_err.d;
}

static capmem_err_t vfail(capmem_err_t err, const char *func, bool eager, const char *fmt,
                          va_list ap)
{
    err_tls_t *t = err_tls();
    /* Capture first: an argument may point into the record being replaced. */
    bool lazy = true;
    if (fmt == NULL) {
        t->p.fmt = capmem_strerror(err); /* no message has a '%' */
        t->p.nargs = 0;
    } else if (eager) {
        lazy = false;
    } else {
        va_list cp;
        va_copy(cp, ap);
        lazy = capture(t, fmt, cp);
        va_end(cp);
    }
    /* Every field but the message is cleared here; the message is written
     * now (unusual formats) or when the record is read. */
    capmem_error_info_t *d = &t->d;
    d->code = err;
    d->function = func != NULL ? func : capmem__tls_function;
    d->needed = 0;
    d->available = 0;
    d->address = 0;
    d->size = 0;
    d->bound_min = 0;
    d->bound_max = 0;
    d->argument = 0;
    d->sys_errno = 0;
    t->failures++;
    if (!lazy) {
        t->p.fmt = NULL;
        d->message[0] = '\0'; /* as before: an argument pointing here reads empty */
        vsnprintf(d->message, sizeof(d->message), fmt, ap);
    } else {
        d->message[0] = '\0';
    }
    return err;
}

capmem_err_t capmem__fail(capmem_err_t err, const char *func, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfail(err, func, false, fmt, ap);
    va_end(ap);
    return err;
}

capmem_err_t capmem__fail_space(capmem_err_t err, const char *func, uint64_t needed,
                                uint64_t available, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfail(err, func, false, fmt, ap);
    va_end(ap);
    tls_err.d.needed = needed;
    tls_err.d.available = available;
    return err;
}

capmem_err_t capmem__fail_range(const char *func, int argument, uint64_t value, uint64_t min,
                                uint64_t max, const char *what)
{
    capmem__fail(CAPMEM_E_RANGE, func, "%s %llu outside the range [%llu, %llu]", what,
                 (unsigned long long)value, (unsigned long long)min, (unsigned long long)max);
    tls_err.d.argument = argument;
    tls_err.d.bound_min = min;
    tls_err.d.bound_max = max;
    return CAPMEM_E_RANGE;
}

capmem_err_t capmem_error_set(capmem_err_t err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfail(err, NULL, true, fmt, ap);
    va_end(ap);
    return err;
}

void capmem_error_set_numbers(uint64_t needed, uint64_t available)
{
    tls_err.d.needed = needed;
    tls_err.d.available = available;
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
