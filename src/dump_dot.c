/* SPDX-License-Identifier: MIT */
/*
 * The Graphviz dump: one digraph with a cluster per graph the model holds:
 * the capability (derivation) tree, the account tree (each edge is the
 * quota and donation that moved from the reference account), and the
 * nesting of region maps through managed dataspaces. Render it with
 * `dot -Tsvg`. The other sections are not graphs and are left out.
 */
#include <string.h>

#include "dump_internal.h"
#include "json.h"

typedef struct dot {
    FILE *out;
    bool open; /* a cluster is open */
} dot_t;

_Static_assert(sizeof(dot_t) <= CAPMEM__DUMP_CTX_MAX, "the sink's state fits its buffer");

/*
 * A DOT quoted string: '"' and '\\' escaped, a newline as \n (a centred
 * line break), other control characters as a space, bytes that are not
 * UTF-8 as U+FFFD. Graphviz reads UTF-8 by default.
 */
static void dot_chars(FILE *out, const char *s)
{
    const unsigned char *p = (const unsigned char *)(s != NULL ? s : "");
    while (*p != '\0') {
        const unsigned c = *p;
        if (c >= 0x80) {
            const size_t n = capmem__utf8_len(p);
            if (n == 0) {
                fputs("\xef\xbf\xbd", out);
                p++;
            } else {
                fwrite(p, 1, n, out);
                p += n;
            }
            continue;
        }
        if (c == '"' || c == '\\') {
            fputc('\\', out);
            fputc((int)c, out);
        } else if (c == '\n') {
            fputs("\\n", out);
        } else if (c < 0x20 || c == 0x7f) {
            fputc(' ', out);
        } else {
            fputc((int)c, out);
        }
        p++;
    }
}

static void dot_string(FILE *out, const char *s)
{
    fputc('"', out);
    dot_chars(out, s);
    fputc('"', out);
}

static void d_begin(void *ctx, const capmem__dump_head_t *h)
{
    dot_t *d = ctx;
    char b[32];
    char title[128];
    snprintf(title, sizeof(title), "capmem: %s of RAM at 0x%llx",
             capmem__dump_bytes(h->ram_size, b, sizeof(b)), (unsigned long long)h->phys_base);
    fputs("digraph capmem {\n  graph [rankdir=LR, fontname=\"sans-serif\", fontsize=24, label=",
          d->out);
    dot_string(d->out, title);
    fputs(", labelloc=t];\n  node [shape=box, style=\"rounded,filled\", fillcolor=\"#ffffff\", "
          "fontname=\"sans-serif\", fontsize=16];\n  edge [fontname=\"sans-serif\", "
          "fontsize=14];\n",
          d->out);
}

static void d_end(void *ctx)
{
    dot_t *d = ctx;
    fputs("}\n", d->out);
}

static void d_section_begin(void *ctx, capmem__dump_section_t s)
{
    dot_t *d = ctx;
    static const char *const labels[CAPMEM__SEC_COUNT] = {
        [CAPMEM__SEC_CAPS] = "capability derivation tree",
        [CAPMEM__SEC_RAM] = "accounts (edge: quota and donation from the reference account)",
        [CAPMEM__SEC_RM] = "region maps (edge: a managed dataspace attached)",
    };
    if (labels[s] == NULL) {
        return;
    }
    fprintf(d->out, "  subgraph cluster_%u {\n    label=", (unsigned)s);
    dot_string(d->out, labels[s]);
    fputs(";\n", d->out);
    d->open = true;
}

static void d_section_end(void *ctx, capmem__dump_section_t s)
{
    dot_t *d = ctx;
    (void)s;
    if (d->open) {
        fputs("  }\n", d->out);
    }
    d->open = false;
}

static void d_cap(void *ctx, const capmem__dump_cap_t *c)
{
    dot_t *d = ctx;
    char r[4];
    char label[256];
    snprintf(label, sizeof(label), "%s%s%s%s\n0x%llx %s%s", c->name, c->label != NULL ? " \"" : "",
             c->label != NULL ? c->label : "", c->label != NULL ? "\"" : "",
             (unsigned long long)c->cap, capmem__dump_rights(c->rights, r),
             c->original ? "" : " (copy)");
    fprintf(d->out, "    c%llx [label=", (unsigned long long)c->cap);
    dot_string(d->out, label);
    fputs(c->original ? "];\n" : ", style=\"rounded,dashed\"];\n", d->out);
    if (c->parent != CAPMEM_CAP_NULL) {
        fprintf(d->out, "    c%llx -> c%llx;\n", (unsigned long long)c->parent,
                (unsigned long long)c->cap);
    }
}

static void d_account(void *ctx, const capmem__dump_account_t *a)
{
    dot_t *d = ctx;
    char q[32], u[32], dn[32], l[32];
    char label[256];
    snprintf(label, sizeof(label), "\"%s\"\nquota %s, used %s\nrecords %llu/%llu%s%s",
             a->info.label, capmem__dump_bytes(a->info.quota, q, sizeof(q)),
             capmem__dump_bytes(a->info.used, u, sizeof(u)),
             (unsigned long long)a->info.records_used, (unsigned long long)a->info.records_capacity,
             a->info.lent ? ", lent " : "",
             a->info.lent ? capmem__dump_bytes(a->info.lent, l, sizeof(l)) : "");
    fprintf(d->out, "    a%llx [label=", (unsigned long long)a->cap);
    dot_string(d->out, label);
    fprintf(d->out, ", fillcolor=\"%s\"];\n", capmem__dump_account_colour(a->cap));
    if (a->info.ref != CAPMEM_CAP_NULL && a->depth > 0) {
        snprintf(label, sizeof(label), "quota %s\ndonation %s",
                 capmem__dump_bytes(a->info.quota, q, sizeof(q)),
                 capmem__dump_bytes(a->info.donation, dn, sizeof(dn)));
        fprintf(d->out, "    a%llx -> a%llx [label=", (unsigned long long)a->info.ref,
                (unsigned long long)a->cap);
        dot_string(d->out, label);
        fputs("];\n", d->out);
    }
}

static void d_rm_begin(void *ctx, const capmem__dump_rm_t *m)
{
    dot_t *d = ctx;
    char s[32];
    char label[160];
    snprintf(label, sizeof(label), "map \"%s\"\n%s, %llu region%s%s", m->info.label,
             capmem__dump_bytes(m->info.size, s, sizeof(s)), (unsigned long long)m->info.regions,
             m->info.regions == 1 ? "" : "s", m->state.faulted ? "\nfaulted" : "");
    fprintf(d->out, "    m%llx [label=", (unsigned long long)m->cap);
    dot_string(d->out, label);
    fputs(", shape=folder];\n", d->out);
}

static void d_region(void *ctx, const capmem__dump_region_t *r)
{
    dot_t *d = ctx;
    if (r->inner == CAPMEM_CAP_NULL) {
        return;
    }
    char label[64];
    snprintf(label, sizeof(label), "at 0x%llx", (unsigned long long)r->address);
    fprintf(d->out, "    m%llx -> m%llx [label=", (unsigned long long)r->map,
            (unsigned long long)r->inner);
    dot_string(d->out, label);
    fputs("];\n", d->out);
}

static const capmem__dump_sink_t dot_sink = {
    .begin = d_begin,
    .end = d_end,
    .section_begin = d_section_begin,
    .section_end = d_section_end,
    .cap = d_cap,
    .account = d_account,
    .rm_begin = d_rm_begin,
    .region = d_region,
};

const capmem__dump_sink_t *capmem__dump_dot(FILE *out, void *ctx_buf)
{
    dot_t *d = ctx_buf;
    memset(d, 0, sizeof(*d));
    d->out = out;
    return &dot_sink;
}
