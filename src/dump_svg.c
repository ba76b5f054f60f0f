/* SPDX-License-Identifier: MIT */
/*
 * The picture (CAPMEM_DUMP_SVG), for a projector: large type, a legend,
 * labels where they fit. From the top:
 *  - physical memory: one strip over the backing (RAM, then the device
 *    window), a rectangle per range coloured by owner: a dataspace in its
 *    account's colour, a session's records, lent pages, frames, kernel
 *    objects, free, lost below a watermark, unclaimed; ranges narrower than
 *    a pixel are merged (data-count says how many);
 *  - the account tree with a quota bar each: used, lent, avail, records
 *    (the donation);
 *  - each region map as an address strip of its attachments (nested maps
 *    indented under the map that holds them), its last fault marked.
 * Each range's rectangle carries data-offset, data-size, data-kind and
 * data-owner attributes and a tooltip, so a test can compare the picture
 * with the JSON dump's physical map. The layout is fixed by the counts the
 * dump gives at the start, so the picture streams like the other formats.
 */
#include <string.h>

#include "dump_internal.h"
#include "svg.h"

#define W 1600.0
#define MARGIN 40.0
#define STRIP_H 90.0
#define ACC_ROW 52.0
#define RM_ROW 100.0
#define ACC_MAX 40u
#define RM_MAX 24u
#define LEGEND_MAX 14u
#define FONT 20.0

typedef struct pending {
    double x0;
    double x1;
    uint64_t count;
    uint64_t offset;
    uint64_t phys;
    uint64_t size;
    uint64_t refs;
    capmem__phys_kind_t kind;
    capmem_cap_t owner;
    const char *colour;
    bool mixed;
} pending_t;

typedef struct svg {
    FILE *out;
    capmem__dump_head_t head;
    double y_phys;
    double y_acc;
    double y_rm;
    double height;
    double scale; /* pixels per byte of the strip */
    pending_t pend;
    /* The legend: kinds and accounts met in the strip. */
    bool kinds[CAPMEM__PH_KINDS];
    capmem_cap_t accounts[LEGEND_MAX];
    char labels[LEGEND_MAX][24];
    unsigned naccounts;
    unsigned acc_rows;
    unsigned rm_rows;
    double rm_y; /* the row being drawn */
    double rm_x;
    double rm_scale;
} svg_t;

_Static_assert(sizeof(svg_t) <= CAPMEM__DUMP_CTX_MAX, "the sink's state fits its buffer");

static const char *phys_colour(const capmem__dump_phys_t *p)
{
    switch (p->kind) {
    case CAPMEM__PH_DATASPACE:
        return capmem__dump_account_colour(p->account);
    case CAPMEM__PH_METADATA:
        return "#9e7bb5";
    case CAPMEM__PH_LENT:
        return "#e6550d";
    default:
        return capmem__dump_kind_colour(p->kind);
    }
}

static void s_begin(void *ctx, const capmem__dump_head_t *h)
{
    svg_t *s = ctx;
    s->head = *h;
    double y = 110;
    if (h->sections & CAPMEM_DUMP_PHYS) {
        s->y_phys = y;
        y += 40 + STRIP_H + 40 + 2 * 36 + 30;
    }
    if (h->sections & CAPMEM_DUMP_RAM) {
        s->y_acc = y;
        const uint64_t rows = h->n_accounts < ACC_MAX ? h->n_accounts : ACC_MAX + 1;
        y += 50 + (double)(rows > 0 ? rows : 1) * ACC_ROW + 30;
    }
    if (h->sections & CAPMEM_DUMP_RM) {
        s->y_rm = y;
        const uint64_t rows = h->n_maps < RM_MAX ? h->n_maps : RM_MAX + 1;
        y += 50 + (double)(rows > 0 ? rows : 1) * RM_ROW + 20;
    }
    s->height = y + MARGIN;
    const uint64_t span = h->phys_hi > h->phys_lo ? h->phys_hi - h->phys_lo : 1;
    s->scale = (W - 2 * MARGIN) / (double)span;
    char b[32];
    char title[160];
    snprintf(title, sizeof(title), "capmem: %s of RAM at 0x%llx",
             capmem__dump_bytes(h->ram_size, b, sizeof(b)), (unsigned long long)h->phys_base);
    capmem__svg_begin(s->out, W, s->height, title);
    capmem__svg_text(s->out, MARGIN, 60, 32, CAPMEM__SVG_START, NULL, 1, title);
    if (h->root != CAPMEM_CAP_NULL) {
        capmem__svg_textf(s->out, W - MARGIN, 60, FONT, CAPMEM__SVG_END, "#444444", 0,
                          "subtree of %s 0x%llx", h->root_type, (unsigned long long)h->root);
    }
}

static void s_end(void *ctx)
{
    svg_t *s = ctx;
    capmem__svg_end(s->out);
}

/* ---- physical memory ------------------------------------------------------------------ */

static void flush(svg_t *s)
{
    pending_t *p = &s->pend;
    if (p->count == 0) {
        return;
    }
    const double y = s->y_phys + 40;
    const double w = p->x1 - p->x0;
    /* A hairline in white between neighbours of one colour, where there is room for it. */
    capmem__svg_rect_open(s->out, p->x0, y, w < 0.5 ? 0.5 : w, STRIP_H,
                          p->mixed ? "#777777" : p->colour, w >= 4 ? "#ffffff" : NULL);
    char tip[160];
    if (p->count == 1) {
        capmem__svg_attr_u64(s->out, "data-offset", p->offset);
        capmem__svg_attr_u64(s->out, "data-size", p->size);
        capmem__svg_attr(s->out, "data-kind", capmem__phys_kind_names[p->kind]);
        if (p->owner != CAPMEM_CAP_NULL) {
            capmem__svg_attr_hex(s->out, "data-owner", p->owner);
        }
        snprintf(tip, sizeof(tip), "%s at 0x%llx, %llu bytes%s", capmem__phys_kind_names[p->kind],
                 (unsigned long long)p->phys, (unsigned long long)p->size,
                 p->refs > 1 ? ", shared by aliases" : "");
        if (p->refs > 1) {
            capmem__svg_attr_u64(s->out, "data-refs", p->refs);
        }
    } else {
        capmem__svg_attr_u64(s->out, "data-offset", p->offset);
        capmem__svg_attr_u64(s->out, "data-count", p->count);
        snprintf(tip, sizeof(tip), "%llu ranges, each narrower than a pixel",
                 (unsigned long long)p->count);
    }
    capmem__svg_end_start(s->out);
    capmem__svg_title(s->out, tip);
    capmem__svg_close(s->out, "rect");
    p->count = 0;
}

static void remember_account(svg_t *s, capmem_cap_t acc, const char *label)
{
    for (unsigned i = 0; i < s->naccounts; i++) {
        if (s->accounts[i] == acc) {
            return;
        }
    }
    if (s->naccounts < LEGEND_MAX) {
        s->accounts[s->naccounts] = acc;
        snprintf(s->labels[s->naccounts], sizeof(s->labels[0]), "%s", label != NULL ? label : "?");
        s->naccounts++;
    }
}

static void s_phys(void *ctx, const capmem__dump_phys_t *p)
{
    svg_t *s = ctx;
    const double x0 = MARGIN + (double)(p->offset - s->head.phys_lo) * s->scale;
    const double x1 = x0 + (double)p->size * s->scale;
    const char *colour = phys_colour(p);
    if (p->kind == CAPMEM__PH_DATASPACE) {
        remember_account(s, p->account, p->label);
    } else {
        s->kinds[p->kind] = true;
    }
    pending_t *q = &s->pend;
    const bool narrow = x1 - x0 < 1.5;
    if (q->count > 0 && narrow && x0 - q->x1 < 0.5 && q->x1 - q->x0 < 1.5) {
        q->x1 = x1;
        q->count++;
        q->mixed = q->mixed || strcmp(q->colour, colour) != 0;
        return;
    }
    flush(s);
    *q = (pending_t){.x0 = x0,
                     .x1 = x1,
                     .count = 1,
                     .offset = p->offset,
                     .phys = p->phys,
                     .size = p->size,
                     .refs = p->refs,
                     .kind = p->kind,
                     .owner = p->owner,
                     .colour = colour};
    if (narrow) {
        return; /* may merge with the next */
    }
    flush(s);
    /* A label where it fits: whose it is, or what it is. */
    const char *text = p->kind == CAPMEM__PH_DATASPACE || p->kind == CAPMEM__PH_METADATA
                           ? p->label
                           : capmem__phys_kind_names[p->kind];
    /* Pages shared by aliases say by how many runs ("x3"). */
    char shared[48];
    if (text != NULL && p->refs > 1) {
        snprintf(shared, sizeof(shared), "%s \xc3\x97%llu", text, (unsigned long long)p->refs);
        text = shared;
        if (capmem__svg_text_width(text, 18) + 8 >= x1 - x0) {
            snprintf(shared, sizeof(shared), "\xc3\x97%llu", (unsigned long long)p->refs);
        }
    }
    if (text != NULL && capmem__svg_text_width(text, 18) + 8 < x1 - x0) {
        capmem__svg_text(s->out, (x0 + x1) / 2, s->y_phys + 40 + STRIP_H / 2 + 7, 18,
                         CAPMEM__SVG_MIDDLE, NULL, 0, text);
    }
}

/*
 * An untyped inside another one (a split of a boot untyped): outlined over
 * its children once they are drawn, its policy written in it where it fits.
 */
static void s_box_end(void *ctx, const capmem__dump_container_t *b)
{
    svg_t *s = ctx;
    if (b->box != CAPMEM__BOX_UNTYPED || b->depth < 2) {
        return;
    }
    flush(s);
    const double x0 = MARGIN + (double)(b->offset - s->head.phys_lo) * s->scale;
    const double w = (double)b->size * s->scale;
    const double y = s->y_phys + 40;
    capmem__svg_open(s->out, "rect");
    capmem__svg_attr_num(s->out, "x", x0);
    capmem__svg_attr_num(s->out, "y", y + 1.5);
    capmem__svg_attr_num(s->out, "width", w);
    capmem__svg_attr_num(s->out, "height", STRIP_H - 3);
    capmem__svg_attr(s->out, "fill", "none");
    capmem__svg_attr(s->out, "stroke", "#000000");
    capmem__svg_attr_num(s->out, "stroke-width", 3);
    capmem__svg_end_start(s->out);
    char tip[96];
    snprintf(tip, sizeof(tip), "untyped 0x%llx (%s)", (unsigned long long)b->cap, b->policy);
    capmem__svg_title(s->out, tip);
    capmem__svg_close(s->out, "rect");
    if (b->policy != NULL && capmem__svg_text_width(b->policy, 15) + 8 < w) {
        capmem__svg_text(s->out, x0 + 5, y + 18, 15, CAPMEM__SVG_START, NULL, 1, b->policy);
    }
}

static void phys_begin(svg_t *s)
{
    capmem__svg_text(s->out, MARGIN, s->y_phys + 28, 26, CAPMEM__SVG_START, NULL, 1,
                     "physical memory, by owner");
    capmem__svg_rect(s->out, MARGIN, s->y_phys + 40, W - 2 * MARGIN, STRIP_H, "#e0e0e0", NULL);
    capmem__svg_group_begin(s->out, "physical", 0, 0);
}

static void phys_end(svg_t *s)
{
    flush(s);
    capmem__svg_group_end(s->out);
    const double y = s->y_phys + 40;
    capmem__svg_rect(s->out, MARGIN, y, W - 2 * MARGIN, STRIP_H, NULL, "#000000");
    /* Addresses at both ends, and where RAM ends when a device window follows. */
    const double ty = y + STRIP_H + 26;
    capmem__svg_textf(s->out, MARGIN, ty, 18, CAPMEM__SVG_START, NULL, 0, "0x%llx",
                      (unsigned long long)s->head.phys_base);
    const double ram_end = MARGIN + (double)s->head.ram_size * s->scale;
    capmem__svg_textf(s->out, ram_end, ty, 18, CAPMEM__SVG_END, NULL, 0, "0x%llx",
                      (unsigned long long)(s->head.phys_base + s->head.ram_size));
    if (s->head.device_window > 0) {
        /* The window holds the device ranges; what no range uses is not memory at all. */
        capmem__svg_line(s->out, ram_end, y - 6, ram_end, y + STRIP_H + 6, "#000000", 3, NULL);
        const char *dw = "device window";
        if (capmem__svg_text_width(dw, 18) + 8 < W - MARGIN - ram_end) {
            capmem__svg_text(s->out, (ram_end + W - MARGIN) / 2, y + 24, 18, CAPMEM__SVG_MIDDLE,
                             "#444444", 0, dw);
        }
    }
    /* The legend: accounts first (their dataspaces), then the other kinds met. */
    double lx = MARGIN;
    double ly = ty + 18;
    const double sz = 22;
    for (unsigned i = 0; i < s->naccounts; i++) {
        char label[48];
        snprintf(label, sizeof(label), "\"%s\"", s->labels[i]);
        if (lx + capmem__svg_text_width(label, sz) + 3 * sz > W - MARGIN) {
            lx = MARGIN;
            ly += 36;
        }
        lx = capmem__svg_legend_entry(s->out, lx, ly, sz,
                                      capmem__dump_account_colour(s->accounts[i]), label);
    }
    static const char *const kind_labels[CAPMEM__PH_KINDS] = {
        [CAPMEM__PH_LENT] = "lent pages",
        [CAPMEM__PH_METADATA] = "records (donations)",
        [CAPMEM__PH_FRAME] = "frame",
        [CAPMEM__PH_KOBJ] = "kernel object",
        [CAPMEM__PH_FREE] = "free",
        [CAPMEM__PH_LOST] = "lost (below a watermark)",
        [CAPMEM__PH_UNCLAIMED] = "no untyped",
        [CAPMEM__PH_KERNEL] = "kernel heap",
    };
    for (unsigned k = 0; k < CAPMEM__PH_KINDS; k++) {
        if (!s->kinds[k] || kind_labels[k] == NULL) {
            continue;
        }
        if (lx + capmem__svg_text_width(kind_labels[k], sz) + 3 * sz > W - MARGIN) {
            lx = MARGIN;
            ly += 36;
        }
        const capmem__dump_phys_t probe = {.kind = (capmem__phys_kind_t)k};
        lx = capmem__svg_legend_entry(s->out, lx, ly, sz, phys_colour(&probe), kind_labels[k]);
    }
}

/* ---- accounts -------------------------------------------------------------------------- */

static void s_account(void *ctx, const capmem__dump_account_t *a)
{
    svg_t *s = ctx;
    const unsigned row = s->acc_rows++;
    if (row > ACC_MAX) {
        return;
    }
    const double y = s->y_acc + 50 + row * ACC_ROW;
    if (row == ACC_MAX) {
        capmem__svg_textf(s->out, MARGIN, y + 30, FONT, CAPMEM__SVG_START, "#444444", 0,
                          "... %llu more accounts",
                          (unsigned long long)(s->head.n_accounts - ACC_MAX));
        return;
    }
    const double x = MARGIN + 28.0 * a->depth;
    capmem__svg_rect(s->out, x, y + 8, 22, 22, capmem__dump_account_colour(a->cap), "#333333");
    char name[48];
    snprintf(name, sizeof(name), "\"%s\"%s", a->info.label,
             a->info.expanding ? " (expanding)" : "");
    capmem__svg_text(s->out, x + 30, y + 27, FONT, CAPMEM__SVG_START, NULL, 1, name);
    /* The bar: used (own), lent, avail, records; its whole length is quota + donation. */
    const double bx = 500;
    const double bw = 640;
    const double total = (double)(a->info.quota + a->info.donation);
    const double k = total > 0 ? bw / total : 0;
    double cx = bx;
    const struct {
        uint64_t v;
        const char *fill;
        const char *what;
    } parts[] = {
        {a->info.used - a->info.lent, capmem__dump_account_colour(a->cap), "used"},
        {a->info.lent, "#e6550d", "lent"},
        {a->info.avail, "#ffffff", "avail"},
        {a->info.donation, "#9e7bb5", "records"},
    };
    capmem__svg_group_begin(s->out, "account", 0, 0);
    for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++) {
        const double w = (double)parts[i].v * k;
        if (parts[i].v == 0) {
            continue;
        }
        capmem__svg_rect_open(s->out, cx, y + 4, w, 30, parts[i].fill, NULL);
        capmem__svg_attr(s->out, "data-part", parts[i].what);
        capmem__svg_attr_u64(s->out, "data-bytes", parts[i].v);
        capmem__svg_end_empty(s->out);
        cx += w;
    }
    capmem__svg_group_end(s->out);
    capmem__svg_rect(s->out, bx, y + 4, bw, 30, NULL, "#000000");
    char u[32], q[32], dn[32];
    capmem__svg_textf(s->out, bx + bw + 16, y + 27, 18, CAPMEM__SVG_START, NULL, 0,
                      "used %s of %s, records %s", capmem__dump_bytes(a->info.used, u, sizeof(u)),
                      capmem__dump_bytes(a->info.quota, q, sizeof(q)),
                      capmem__dump_bytes(a->info.donation, dn, sizeof(dn)));
}

static void accounts_begin(svg_t *s)
{
    capmem__svg_text(s->out, MARGIN, s->y_acc + 28, 26, CAPMEM__SVG_START, NULL, 1,
                     "accounts: used, lent, avail, records");
    if (s->head.n_accounts == 0) {
        capmem__svg_text(s->out, MARGIN, s->y_acc + 80, FONT, CAPMEM__SVG_START, "#444444", 0,
                         "(no RAM service)");
    }
}

/* ---- region maps ----------------------------------------------------------------------- */

static void s_rm_begin(void *ctx, const capmem__dump_rm_t *m)
{
    svg_t *s = ctx;
    const unsigned row = s->rm_rows++;
    s->rm_y = -1;
    if (row > RM_MAX) {
        return;
    }
    const double y = s->y_rm + 50 + row * RM_ROW;
    if (row == RM_MAX) {
        capmem__svg_text(s->out, MARGIN, y + 30, FONT, CAPMEM__SVG_START, "#444444", 0,
                         "... more maps");
        return;
    }
    s->rm_y = y;
    s->rm_x = MARGIN + 40.0 * m->depth;
    const double w = W - MARGIN - s->rm_x;
    s->rm_scale = m->info.size > 0 ? w / (double)m->info.size : 0;
    char sz[32];
    capmem__svg_textf(s->out, s->rm_x, y + 24, FONT, CAPMEM__SVG_START, NULL, 1, "%smap \"%s\", %s",
                      m->depth > 0 ? "nested " : "", m->info.label,
                      capmem__dump_bytes(m->info.size, sz, sizeof(sz)));
    capmem__svg_rect(s->out, s->rm_x, y + 34, w, 44, "#f4f4f4", NULL);
    if (m->state.faulted) {
        const double fx = s->rm_x + (double)m->state.address * s->rm_scale;
        capmem__svg_line(s->out, fx, y + 30, fx, y + 82, "#e41a1c", 4, NULL);
        capmem__svg_textf(s->out, W - MARGIN, y + 24, 18, CAPMEM__SVG_END, "#e41a1c", 0,
                          "last fault: %s at 0x%llx, %s", capmem_rm_access_name(m->state.access),
                          (unsigned long long)m->state.address,
                          m->state.pending ? "being handled"
                                           : (m->state.unresolved ? "unresolved" : "resolved"));
    }
}

static void s_region(void *ctx, const capmem__dump_region_t *r)
{
    svg_t *s = ctx;
    if (s->rm_y < 0) {
        return;
    }
    const double x0 = s->rm_x + (double)r->address * s->rm_scale;
    const double w = (double)r->size * s->rm_scale;
    const char *fill =
        r->inner != CAPMEM_CAP_NULL ? "#a6bddb" : capmem__dump_account_colour(r->account);
    capmem__svg_rect_open(s->out, x0, s->rm_y + 34, w < 1 ? 1 : w, 44, fill, "#333333");
    capmem__svg_attr_hex(s->out, "data-address", r->address);
    capmem__svg_attr_u64(s->out, "data-size", r->size);
    capmem__svg_attr_hex(s->out, "data-ds", r->ds);
    capmem__svg_end_start(s->out);
    char tip[128];
    snprintf(tip, sizeof(tip), "0x%llx: %s dataspace 0x%llx +0x%llx %s%s",
             (unsigned long long)r->address, capmem_ds_kind_name(r->ds_kind),
             (unsigned long long)r->ds, (unsigned long long)r->offset, r->writable ? "w" : "-",
             r->executable ? "x" : "-");
    capmem__svg_title(s->out, tip);
    capmem__svg_close(s->out, "rect");
    char text[64];
    if (r->inner != CAPMEM_CAP_NULL) {
        snprintf(text, sizeof(text), "0x%llx -> \"%s\"", (unsigned long long)r->address,
                 r->ds_label != NULL ? r->ds_label : "");
    } else {
        snprintf(text, sizeof(text), "0x%llx %s%s", (unsigned long long)r->address,
                 r->ds_label != NULL ? r->ds_label : "", r->writable ? "" : " (ro)");
    }
    if (capmem__svg_text_width(text, 17) + 8 < w) {
        capmem__svg_text(s->out, x0 + 4, s->rm_y + 62, 17, CAPMEM__SVG_START, NULL, 0, text);
    }
}

static void rm_section_begin(svg_t *s)
{
    capmem__svg_text(s->out, MARGIN, s->y_rm + 28, 26, CAPMEM__SVG_START, NULL, 1,
                     "region maps: attachments by address");
    if (s->head.n_maps == 0) {
        capmem__svg_text(s->out, MARGIN, s->y_rm + 80, FONT, CAPMEM__SVG_START, "#444444", 0,
                         "(no region maps)");
    }
}

static void s_section_begin(void *ctx, capmem__dump_section_t sec)
{
    svg_t *s = ctx;
    switch (sec) {
    case CAPMEM__SEC_PHYS:
        phys_begin(s);
        break;
    case CAPMEM__SEC_RAM:
        accounts_begin(s);
        break;
    case CAPMEM__SEC_RM:
        rm_section_begin(s);
        break;
    default:
        break;
    }
}

static void s_section_end(void *ctx, capmem__dump_section_t sec)
{
    svg_t *s = ctx;
    if (sec == CAPMEM__SEC_PHYS) {
        phys_end(s);
    }
}

static const capmem__dump_sink_t svg_sink = {
    .begin = s_begin,
    .end = s_end,
    .section_begin = s_section_begin,
    .section_end = s_section_end,
    .account = s_account,
    .phys = s_phys,
    .phys_box_end = s_box_end,
    .rm_begin = s_rm_begin,
    .region = s_region,
};

const capmem__dump_sink_t *capmem__dump_svg(FILE *out, void *ctx_buf)
{
    svg_t *s = ctx_buf;
    memset(s, 0, sizeof(*s));
    s->out = out;
    return &svg_sink;
}
