/* SPDX-License-Identifier: MIT */
/*
 * A small JSON writer over a stdio stream, for traces and dumps. It keeps
 * no state but the stream: callers write the structure ({, "key":, ,) and
 * use these for the parts that need care. Output is always valid JSON in
 * valid UTF-8, whatever bytes a label holds. Never installed.
 */
#ifndef CAPMEM_JSON_H
#define CAPMEM_JSON_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/*
 * Write @p s as a JSON string, quotes included: '"' and '\\' are escaped,
 * control characters (below 0x20, and 0x7f) become \n, \t... or \u00XX,
 * valid UTF-8 sequences are copied, and every byte that is not part of
 * one becomes \ufffd (the replacement character). NULL writes null.
 */
void capmem__json_string(FILE *out, const char *s);
/* An unsigned number, exact (JSON numbers have no size limit; readers may). */
void capmem__json_u64(FILE *out, uint64_t v);
/* A handle or address as the string "0x..." (exact in every reader). */
void capmem__json_hex(FILE *out, uint64_t v);
/* true or false. */
void capmem__json_bool(FILE *out, int v);

/*
 * Length of the valid multi-byte UTF-8 sequence at @p s (2..4), or 0 when
 * the bytes there are not one: an ASCII byte (callers handle those first),
 * overlong forms, surrogates, code points above U+10FFFF, stray or missing
 * continuation bytes. Shared with svg.c.
 */
size_t capmem__utf8_len(const unsigned char *s);

#endif
