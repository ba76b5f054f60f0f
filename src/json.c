/* SPDX-License-Identifier: MIT */
/* The JSON writer (json.h): string escaping and numbers. */
#include "json.h"

#include <stdbool.h>
#include <stddef.h>

/*
 * Overlong forms, surrogates and code points above U+10FFFF are refused,
 * as RFC 3629 says.
 */
size_t capmem__utf8_len(const unsigned char *s)
{
    const unsigned c = s[0];
    size_t n;
    unsigned min;
    unsigned cp;
    if (c >= 0xc2 && c <= 0xdf) {
        n = 2;
        min = 0x80;
        cp = c & 0x1fu;
    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        min = 0x800;
        cp = c & 0x0fu;
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        min = 0x10000;
        cp = c & 0x07u;
    } else {
        return 0;
    }
    for (size_t i = 1; i < n; i++) {
        /* A NUL terminator is not a continuation byte, so this never reads past it. */
        if ((s[i] & 0xc0u) != 0x80u) {
            return 0;
        }
        cp = (cp << 6) | (s[i] & 0x3fu);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
        return 0;
    }
    return n;
}

/* The short escape of a control character, or NULL for \u00XX. */
static const char *short_escape(unsigned c)
{
    switch (c) {
    case '\n':
        return "\\n";
    case '\t':
        return "\\t";
    case '\r':
        return "\\r";
    case '\b':
        return "\\b";
    case '\f':
        return "\\f";
    default:
        return NULL;
    }
}

void capmem__json_string(FILE *out, const char *s)
{
    if (s == NULL) {
        fputs("null", out);
        return;
    }
    const unsigned char *p = (const unsigned char *)s;
    fputc('"', out);
    while (*p != '\0') {
        /* A run of bytes that need nothing goes out in one write (dumps write many labels). */
        const unsigned char *run = p;
        while (*p >= 0x20 && *p < 0x7f && *p != '"' && *p != '\\') {
            p++;
        }
        if (p > run) {
            fwrite(run, 1, (size_t)(p - run), out);
        }
        const unsigned c = *p;
        if (c == '\0') {
            break;
        }
        if (c == '"' || c == '\\') {
            fputc('\\', out);
            fputc((int)c, out);
            p++;
        } else if (c < 0x20 || c == 0x7f) {
            const char *e = short_escape(c);
            if (e != NULL) {
                fputs(e, out);
            } else {
                fprintf(out, "\\u%04x", c);
            }
            p++;
        } else {
            const size_t n = capmem__utf8_len(p);
            if (n == 0) {
                fputs("\\ufffd", out);
                p++;
            } else {
                fwrite(p, 1, n, out);
                p += n;
            }
        }
    }
    fputc('"', out);
}

void capmem__json_u64(FILE *out, uint64_t v)
{
    char buf[24];
    char *e = buf + sizeof(buf);
    char *b = e;
    do {
        *--b = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    fwrite(b, 1, (size_t)(e - b), out);
}

void capmem__json_hex(FILE *out, uint64_t v)
{
    static const char digits[] = "0123456789abcdef";
    char buf[24];
    char *e = buf + sizeof(buf);
    char *b = e;
    *--b = '"';
    do {
        *--b = digits[v & 0xf];
        v >>= 4;
    } while (v != 0);
    *--b = 'x';
    *--b = '0';
    *--b = '"';
    fwrite(b, 1, (size_t)(e - b), out);
}

void capmem__json_bool(FILE *out, int v)
{
    fputs(v ? "true" : "false", out);
}
