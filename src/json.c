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

void capmem__json_string(FILE *out, const char *s)
{
    if (s == NULL) {
        fputs("null", out);
        return;
    }
    const unsigned char *p = (const unsigned char *)s;
    fputc('"', out);
    while (*p != '\0') {
        const unsigned c = *p;
        if (c == '"' || c == '\\') {
            fputc('\\', out);
            fputc((int)c, out);
            p++;
        } else if (c < 0x20 || c == 0x7f) {
            switch (c) {
            case '\n':
                fputs("\\n", out);
                break;
            case '\t':
                fputs("\\t", out);
                break;
            case '\r':
                fputs("\\r", out);
                break;
            case '\b':
                fputs("\\b", out);
                break;
            case '\f':
                fputs("\\f", out);
                break;
            default:
                fprintf(out, "\\u%04x", c);
                break;
            }
            p++;
        } else if (c < 0x80) {
            fputc((int)c, out);
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
    fprintf(out, "%llu", (unsigned long long)v);
}

void capmem__json_hex(FILE *out, uint64_t v)
{
    fprintf(out, "\"0x%llx\"", (unsigned long long)v);
}

void capmem__json_bool(FILE *out, int v)
{
    fputs(v ? "true" : "false", out);
}
