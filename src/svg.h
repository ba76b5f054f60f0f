/* SPDX-License-Identifier: MIT */
/*
 * A small SVG writer over a stdio stream, for the arena's picture
 * (dump_svg.c) and for the charts of the tools (linked through
 * capmem_writer_dep, src/meson.build). Like json.h it keeps no state but
 * the stream: an element is opened (capmem__svg_open), given attributes,
 * and ended empty (capmem__svg_end_empty) or with content
 * (capmem__svg_end_start ... capmem__svg_close). The shapes below write
 * whole elements, or leave one open (the _open forms) for more attributes
 * and a <title> tooltip.
 *
 * Output is well-formed XML 1.0 in valid UTF-8 whatever bytes a string
 * holds: & < > " ' are written as entities; tab, newline and carriage
 * return as character references; every other control character (which
 * XML 1.0 cannot carry at all), the non-characters U+FFFE and U+FFFF and
 * every byte that is not part of a valid UTF-8 sequence become U+FFFD.
 * Backslashes need no escaping in XML and are copied. Numbers are written
 * without the C locale's help (a comma locale cannot break them), with at
 * most two decimals; NaN and infinities are written as 0. Never installed.
 */
#ifndef CAPMEM_SVG_H
#define CAPMEM_SVG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* ---- the document --------------------------------------------------------------- */

/*
 * The XML declaration and the <svg> root of @p width x @p height user units
 * (viewBox 0 0 width height), with a default sans-serif font, then a
 * <title> of @p title (may be NULL) and a white background.
 */
void capmem__svg_begin(FILE *out, double width, double height, const char *title);
/* Close the root element. */
void capmem__svg_end(FILE *out);

/* ---- elements, attributes, text ---------------------------------------------------- */

/* "<tag": an element to which attributes may be added. */
void capmem__svg_open(FILE *out, const char *tag);
/* ` name="value"`, the value escaped (NULL writes nothing). */
void capmem__svg_attr(FILE *out, const char *name, const char *value);
/* ` name="number"`. */
void capmem__svg_attr_num(FILE *out, const char *name, double v);
/* ` name="integer"`, exact. */
void capmem__svg_attr_u64(FILE *out, const char *name, uint64_t v);
/* ` name="0x..."`. */
void capmem__svg_attr_hex(FILE *out, const char *name, uint64_t v);
/* "/>": end an element without content. */
void capmem__svg_end_empty(FILE *out);
/* ">": end the start tag; content and capmem__svg_close follow. */
void capmem__svg_end_start(FILE *out);
/* "</tag>". */
void capmem__svg_close(FILE *out, const char *tag);
/* Character data, escaped. NULL writes nothing. */
void capmem__svg_escape(FILE *out, const char *s);
/* A number as in an attribute: at most two decimals, no exponent. */
void capmem__svg_num(FILE *out, double v);
/* A <title> element (a tooltip for the element it is in), escaped. */
void capmem__svg_title(FILE *out, const char *text);

/* ---- shapes ------------------------------------------------------------------------ */

/* A group, shifted by (tx, ty), with an optional class; end with capmem__svg_group_end. */
void capmem__svg_group_begin(FILE *out, const char *cls, double tx, double ty);
void capmem__svg_group_end(FILE *out);

/* A rectangle; fill and stroke may be NULL ("none" and no stroke). */
void capmem__svg_rect(FILE *out, double x, double y, double w, double h, const char *fill,
                      const char *stroke);
/* The same, left open: add attributes, then capmem__svg_end_empty (or a title and a close). */
void capmem__svg_rect_open(FILE *out, double x, double y, double w, double h, const char *fill,
                           const char *stroke);

/* A line of @p width in @p stroke; @p dash (e.g. "6 4") may be NULL for a solid line. */
void capmem__svg_line(FILE *out, double x1, double y1, double x2, double y2, const char *stroke,
                      double width, const char *dash);

/* A circle (a chart's data point); fill and stroke may be NULL. */
void capmem__svg_circle(FILE *out, double cx, double cy, double r, const char *fill,
                        const char *stroke);

/* A polyline through @p n points (xy holds x0, y0, x1, y1, ...), not filled. */
void capmem__svg_polyline(FILE *out, const double *xy, size_t n, const char *stroke, double width);
/* The same, streamed: begin, one point at a time, end (for series of unknown length). */
void capmem__svg_polyline_begin(FILE *out, const char *stroke, double width);
void capmem__svg_polyline_point(FILE *out, double x, double y);
void capmem__svg_polyline_end(FILE *out);

/* Text anchors. */
typedef enum capmem__svg_anchor {
    CAPMEM__SVG_START = 0,
    CAPMEM__SVG_MIDDLE = 1,
    CAPMEM__SVG_END = 2,
} capmem__svg_anchor_t;

/*
 * Text at (x, y) (the baseline), @p size user units high, in @p fill (NULL:
 * black), escaped. @p bold selects a bold weight.
 */
void capmem__svg_text(FILE *out, double x, double y, double size, capmem__svg_anchor_t anchor,
                      const char *fill, int bold, const char *text);
/* The same with a printf format (the formatted text is cut at 511 bytes). */
void capmem__svg_textf(FILE *out, double x, double y, double size, capmem__svg_anchor_t anchor,
                       const char *fill, int bold, const char *fmt, ...)
    __attribute__((format(printf, 8, 9)));

/*
 * One legend entry: a swatch of @p fill, @p size high, at (x, y) (its top
 * left), and @p label beside it. Returns the x just past the label, by an
 * estimate of the text's width (0.6 em per character), for the next entry.
 */
double capmem__svg_legend_entry(FILE *out, double x, double y, double size, const char *fill,
                                const char *label);

/* An estimate of the width of @p text at @p size (0.6 em per character, UTF-8 aware). */
double capmem__svg_text_width(const char *text, double size);

#endif
