/* SPDX-License-Identifier: MIT */
/* The SVG writer (svg.h): escaping, numbers and a few shapes. */
#include "svg.h"

#include <math.h>
#include <stdarg.h>
#include <string.h>

#include "json.h"

/* ---- text ------------------------------------------------------------------------- */

void capmem__svg_escape(FILE *out, const char *s)
{
    if (s == NULL) {
        return;
    }
    const unsigned char *p = (const unsigned char *)s;
    while (*p != '\0') {
        const unsigned c = *p;
        if (c >= 0x80) {
            const size_t n = capmem__utf8_len(p);
            /* U+FFFE and U+FFFF (EF BF BE, EF BF BF) are not XML characters either. */
            if (n == 0 || (n == 3 && p[0] == 0xef && p[1] == 0xbf && p[2] >= 0xbe)) {
                fputs("\xef\xbf\xbd", out);
                p++;
            } else {
                fwrite(p, 1, n, out);
                p += n;
            }
            continue;
        }
        switch (c) {
        case '&':
            fputs("&amp;", out);
            break;
        case '<':
            fputs("&lt;", out);
            break;
        case '>':
            fputs("&gt;", out);
            break;
        case '"':
            fputs("&quot;", out);
            break;
        case '\'':
            fputs("&apos;", out);
            break;
        case '\t':
            fputs("&#9;", out);
            break;
        case '\n':
            fputs("&#10;", out);
            break;
        case '\r':
            fputs("&#13;", out);
            break;
        default:
            if (c < 0x20 || c == 0x7f) {
                /* XML 1.0 has no way to carry these, not even as a reference. */
                fputs("\xef\xbf\xbd", out);
            } else {
                fputc((int)c, out);
            }
            break;
        }
        p++;
    }
}

void capmem__svg_num(FILE *out, double v)
{
    if (isnan(v) || isinf(v)) {
        v = 0;
    }
    /* Hundredths, rounded half away from zero, printed as integers: no locale involved. */
    const int neg = v < 0;
    double a = neg ? -v : v;
    if (a > 1e15) {
        a = 1e15;
    }
    const unsigned long long h = (unsigned long long)(a * 100.0 + 0.5);
    const unsigned long long ip = h / 100;
    const unsigned frac = (unsigned)(h % 100);
    if (neg && h != 0) {
        fputc('-', out);
    }
    fprintf(out, "%llu", ip);
    if (frac != 0) {
        if (frac % 10 == 0) {
            fprintf(out, ".%u", frac / 10);
        } else {
            fprintf(out, ".%02u", frac);
        }
    }
}

/* ---- elements --------------------------------------------------------------------- */

void capmem__svg_open(FILE *out, const char *tag)
{
    fputc('<', out);
    fputs(tag, out);
}

void capmem__svg_attr(FILE *out, const char *name, const char *value)
{
    if (value == NULL) {
        return;
    }
    fprintf(out, " %s=\"", name);
    capmem__svg_escape(out, value);
    fputc('"', out);
}

void capmem__svg_attr_num(FILE *out, const char *name, double v)
{
    fprintf(out, " %s=\"", name);
    capmem__svg_num(out, v);
    fputc('"', out);
}

void capmem__svg_attr_u64(FILE *out, const char *name, uint64_t v)
{
    fprintf(out, " %s=\"%llu\"", name, (unsigned long long)v);
}

void capmem__svg_attr_hex(FILE *out, const char *name, uint64_t v)
{
    fprintf(out, " %s=\"0x%llx\"", name, (unsigned long long)v);
}

void capmem__svg_end_empty(FILE *out)
{
    fputs("/>\n", out);
}

void capmem__svg_end_start(FILE *out)
{
    fputc('>', out);
}

void capmem__svg_close(FILE *out, const char *tag)
{
    fprintf(out, "</%s>\n", tag);
}

void capmem__svg_title(FILE *out, const char *text)
{
    fputs("<title>", out);
    capmem__svg_escape(out, text);
    fputs("</title>", out);
}

/* ---- the document ------------------------------------------------------------------ */

void capmem__svg_begin(FILE *out, double width, double height, const char *title)
{
    fputs("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n", out);
    capmem__svg_open(out, "svg");
    capmem__svg_attr(out, "xmlns", "http://www.w3.org/2000/svg");
    capmem__svg_attr_num(out, "width", width);
    capmem__svg_attr_num(out, "height", height);
    fputs(" viewBox=\"0 0 ", out);
    capmem__svg_num(out, width);
    fputc(' ', out);
    capmem__svg_num(out, height);
    fputc('"', out);
    capmem__svg_attr(out, "font-family", "DejaVu Sans, Verdana, Arial, sans-serif");
    capmem__svg_end_start(out);
    fputc('\n', out);
    if (title != NULL) {
        capmem__svg_title(out, title);
        fputc('\n', out);
    }
    capmem__svg_rect(out, 0, 0, width, height, "#ffffff", NULL);
}

void capmem__svg_end(FILE *out)
{
    capmem__svg_close(out, "svg");
}

/* ---- shapes ------------------------------------------------------------------------- */

void capmem__svg_group_begin(FILE *out, const char *cls, double tx, double ty)
{
    capmem__svg_open(out, "g");
    capmem__svg_attr(out, "class", cls);
    if (tx != 0 || ty != 0) {
        fputs(" transform=\"translate(", out);
        capmem__svg_num(out, tx);
        fputc(' ', out);
        capmem__svg_num(out, ty);
        fputs(")\"", out);
    }
    capmem__svg_end_start(out);
    fputc('\n', out);
}

void capmem__svg_group_end(FILE *out)
{
    capmem__svg_close(out, "g");
}

void capmem__svg_rect_open(FILE *out, double x, double y, double w, double h, const char *fill,
                           const char *stroke)
{
    capmem__svg_open(out, "rect");
    capmem__svg_attr_num(out, "x", x);
    capmem__svg_attr_num(out, "y", y);
    capmem__svg_attr_num(out, "width", w < 0 ? 0 : w);
    capmem__svg_attr_num(out, "height", h < 0 ? 0 : h);
    capmem__svg_attr(out, "fill", fill != NULL ? fill : "none");
    capmem__svg_attr(out, "stroke", stroke);
}

void capmem__svg_rect(FILE *out, double x, double y, double w, double h, const char *fill,
                      const char *stroke)
{
    capmem__svg_rect_open(out, x, y, w, h, fill, stroke);
    capmem__svg_end_empty(out);
}

void capmem__svg_line(FILE *out, double x1, double y1, double x2, double y2, const char *stroke,
                      double width, const char *dash)
{
    capmem__svg_open(out, "line");
    capmem__svg_attr_num(out, "x1", x1);
    capmem__svg_attr_num(out, "y1", y1);
    capmem__svg_attr_num(out, "x2", x2);
    capmem__svg_attr_num(out, "y2", y2);
    capmem__svg_attr(out, "stroke", stroke != NULL ? stroke : "#000000");
    capmem__svg_attr_num(out, "stroke-width", width);
    capmem__svg_attr(out, "stroke-dasharray", dash);
    capmem__svg_end_empty(out);
}

void capmem__svg_circle(FILE *out, double cx, double cy, double r, const char *fill,
                        const char *stroke)
{
    capmem__svg_open(out, "circle");
    capmem__svg_attr_num(out, "cx", cx);
    capmem__svg_attr_num(out, "cy", cy);
    capmem__svg_attr_num(out, "r", r < 0 ? 0 : r);
    capmem__svg_attr(out, "fill", fill != NULL ? fill : "none");
    capmem__svg_attr(out, "stroke", stroke);
    capmem__svg_end_empty(out);
}

void capmem__svg_polyline_begin(FILE *out, const char *stroke, double width)
{
    capmem__svg_open(out, "polyline");
    capmem__svg_attr(out, "fill", "none");
    capmem__svg_attr(out, "stroke", stroke != NULL ? stroke : "#000000");
    capmem__svg_attr_num(out, "stroke-width", width);
    capmem__svg_attr(out, "stroke-linejoin", "round");
    fputs(" points=\"", out);
}

void capmem__svg_polyline_point(FILE *out, double x, double y)
{
    capmem__svg_num(out, x);
    fputc(',', out);
    capmem__svg_num(out, y);
    fputc(' ', out);
}

void capmem__svg_polyline_end(FILE *out)
{
    fputc('"', out);
    capmem__svg_end_empty(out);
}

void capmem__svg_polyline(FILE *out, const double *xy, size_t n, const char *stroke, double width)
{
    capmem__svg_polyline_begin(out, stroke, width);
    for (size_t i = 0; xy != NULL && i < n; i++) {
        capmem__svg_polyline_point(out, xy[2 * i], xy[2 * i + 1]);
    }
    capmem__svg_polyline_end(out);
}

static const char *const anchors[] = {"start", "middle", "end"};

void capmem__svg_text(FILE *out, double x, double y, double size, capmem__svg_anchor_t anchor,
                      const char *fill, int bold, const char *text)
{
    capmem__svg_open(out, "text");
    capmem__svg_attr_num(out, "x", x);
    capmem__svg_attr_num(out, "y", y);
    capmem__svg_attr_num(out, "font-size", size);
    if (anchor != CAPMEM__SVG_START) {
        capmem__svg_attr(out, "text-anchor", anchors[anchor <= CAPMEM__SVG_END ? anchor : 0]);
    }
    capmem__svg_attr(out, "fill", fill);
    if (bold) {
        capmem__svg_attr(out, "font-weight", "bold");
    }
    capmem__svg_end_start(out);
    capmem__svg_escape(out, text);
    capmem__svg_close(out, "text");
}

void capmem__svg_textf(FILE *out, double x, double y, double size, capmem__svg_anchor_t anchor,
                       const char *fill, int bold, const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    capmem__svg_text(out, x, y, size, anchor, fill, bold, buf);
}

double capmem__svg_text_width(const char *text, double size)
{
    size_t chars = 0;
    for (const unsigned char *p = (const unsigned char *)text; p != NULL && *p != '\0'; p++) {
        chars += (*p & 0xc0u) != 0x80u; /* count lead bytes, not continuation bytes */
    }
    return (double)chars * size * 0.6;
}

double capmem__svg_legend_entry(FILE *out, double x, double y, double size, const char *fill,
                                const char *label)
{
    capmem__svg_rect(out, x, y, size, size, fill, "#333333");
    const double tx = x + size * 1.4;
    capmem__svg_text(out, tx, y + size * 0.85, size, CAPMEM__SVG_START, NULL, 0, label);
    return tx + capmem__svg_text_width(label, size) + size * 1.5;
}
