/* SPDX-License-Identifier: MIT */
/* The text dump: indented trees and aligned columns, for people (docs/inspect.md). */
#include <string.h>

#include "dump_internal.h"

typedef struct text {
    FILE *out;
    int width;    /* hex digits of the highest physical address */
    bool any;     /* the section wrote something */
    bool header;  /* the account table's header is written */
    bool subtree; /* the dump is of a subtree */
} text_t;

_Static_assert(sizeof(text_t) <= CAPMEM__DUMP_CTX_MAX, "the sink's state fits its buffer");

/*
 * A label as the text shows it: a control character (a newline in a label
 * would break the layout) becomes '?'. Labels are at most 23 bytes and
 * descriptions 160, so the buffers below always hold them.
 */
static const char *clean(const char *s, char *buf, size_t len)
{
    size_t i = 0;
    for (; s != NULL && s[i] != '\0' && i + 1 < len; i++) {
        const unsigned char c = (unsigned char)s[i];
        buf[i] = c < 0x20 || c == 0x7f ? '?' : (char)c;
    }
    buf[i] = '\0';
    return buf;
}

#define CLEAN(s) clean((s), (char[192]){0}, 192)

static void indent(FILE *out, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        fputs("  ", out);
    }
}

static void t_begin(void *ctx, const capmem__dump_head_t *h)
{
    text_t *t = ctx;
    char b[32];
    char pg[32];
    fprintf(t->out, "capmem dump: %s of RAM at 0x%llx, %s pages, %s backing, %u capability slots",
            capmem__dump_bytes(h->ram_size, b, sizeof(b)), (unsigned long long)h->phys_base,
            capmem__dump_bytes(h->page_size, pg, sizeof(pg)), h->backing, h->cap_slots);
    if (h->devices > 0) {
        fprintf(t->out, ", %llu device range%s", (unsigned long long)h->devices,
                h->devices == 1 ? "" : "s");
    }
    fputc('\n', t->out);
    uint64_t top = h->phys_top - 1;
    for (t->width = 1; top >= 16; top >>= 4) {
        t->width++;
    }
    t->subtree = h->root != CAPMEM_CAP_NULL;
    if (h->root != CAPMEM_CAP_NULL) {
        fprintf(t->out, "subtree of %s 0x%llx\n", h->root_type, (unsigned long long)h->root);
    }
}

static const char *const titles[CAPMEM__SEC_COUNT] = {
    "capabilities",    "untyped memory", "RAM service: accounts and dataspaces",
    "physical memory", "region maps",    "kernel heap and space banks",
    "statistics",
};

static void t_section_begin(void *ctx, capmem__dump_section_t s)
{
    text_t *t = ctx;
    fprintf(t->out, "\n== %s ==\n", titles[s]);
    t->any = false;
    t->header = false;
}

static void t_section_end(void *ctx, capmem__dump_section_t s)
{
    text_t *t = ctx;
    if (!t->any) {
        fputs(s != CAPMEM__SEC_KERNEL ? "  (none)\n"
              : t->subtree            ? "  (no space bank in this subtree)\n"
                                      : "  (the kernel-metadata layer is not booted)\n",
              t->out);
    }
}

static void t_cap(void *ctx, const capmem__dump_cap_t *c)
{
    text_t *t = ctx;
    char r[4];
    t->any = true;
    indent(t->out, c->depth + 1);
    fprintf(t->out, "0x%llx %s %s %s gen %u", (unsigned long long)c->cap, c->name,
            capmem__dump_rights(c->rights, r), c->original ? "original" : "copy", c->generation);
    if (c->label != NULL) {
        fprintf(t->out, " \"%s\"", CLEAN(c->label));
    }
    if (c->describe[0] != '\0') {
        fprintf(t->out, ": %s", CLEAN(c->describe));
    }
    fputc('\n', t->out);
}

static void t_untyped(void *ctx, const capmem__dump_untyped_t *u)
{
    text_t *t = ctx;
    char b[32];
    char f[32];
    t->any = true;
    const uint64_t size = 1ull << u->info.size_bits;
    fprintf(t->out, "  0x%llx %suntyped 0x%llx..0x%llx (%s), %s: %s free",
            (unsigned long long)u->info.cap, u->info.device ? "device " : "",
            (unsigned long long)u->info.phys, (unsigned long long)(u->info.phys + size - 1),
            capmem__dump_bytes(size, b, sizeof(b)), u->info.policy,
            capmem__dump_bytes(u->info.free_bytes, f, sizeof(f)));
    if (!u->range_policy) {
        fprintf(t->out, ", free index at +0x%llx", (unsigned long long)u->info.watermark);
    }
    fprintf(t->out, ", %llu child%s", (unsigned long long)u->info.children,
            u->info.children == 1 ? "" : "ren");
    if (u->copy_of != CAPMEM_CAP_NULL) {
        fprintf(t->out, ", a copy of 0x%llx", (unsigned long long)u->copy_of);
    }
    fputs(u->info.full ? ", full (a copy of it is alive)\n" : "\n", t->out);
}

static void t_untyped_free(void *ctx, const capmem__dump_untyped_t *u, uint64_t offset,
                           uint64_t size)
{
    text_t *t = ctx;
    char b[32];
    const uint64_t phys = u->info.phys + (offset - u->info.offset);
    fprintf(t->out, "      free 0x%llx..0x%llx (%s)\n", (unsigned long long)phys,
            (unsigned long long)(phys + size - 1), capmem__dump_bytes(size, b, sizeof(b)));
}

static void t_account(void *ctx, const capmem__dump_account_t *a)
{
    text_t *t = ctx;
    char q[32], u[32], av[32], l[32], dn[32], name[64], rec[32], caps[32];
    t->any = true;
    if (!t->header) {
        fprintf(t->out, "  %-24s %10s %10s %10s %10s %10s %13s %11s\n", "account", "quota", "used",
                "avail", "lent", "donation", "records u/f", "caps u/lim");
        t->header = true;
    }
    snprintf(name, sizeof(name), "%*s\"%s\"%s", (int)(2 * a->depth), "", CLEAN(a->info.label),
             a->info.expanding ? " +" : "");
    snprintf(rec, sizeof(rec), "%llu/%llu", (unsigned long long)a->info.records_used,
             (unsigned long long)(a->info.records_capacity - a->info.records_used));
    snprintf(caps, sizeof(caps), "%llu/%llu", (unsigned long long)a->info.caps_used,
             (unsigned long long)a->info.caps_limit);
    fprintf(t->out, "  %-24s %10s %10s %10s %10s %10s %13s %11s\n", name,
            capmem__dump_bytes(a->info.quota, q, sizeof(q)),
            capmem__dump_bytes(a->info.used, u, sizeof(u)),
            capmem__dump_bytes(a->info.avail, av, sizeof(av)),
            capmem__dump_bytes(a->info.lent, l, sizeof(l)),
            capmem__dump_bytes(a->info.donation, dn, sizeof(dn)), rec, caps);
}

static void t_ds(void *ctx, const capmem__dump_ds_t *d)
{
    text_t *t = ctx;
    char b[32];
    char where[64];
    if (!t->any || t->header) {
        fprintf(t->out, "  %-20s %-18s %10s  %-*s  %-2s  %s\n", "dataspace", "kind", "size",
                2 * t->width + 6, "physical", "rw", "pages paid by, record paid by");
        t->header = false;
    }
    t->any = true;
    if (d->kind == CAPMEM_DS_MANAGED) {
        snprintf(where, sizeof(where), "map 0x%llx", (unsigned long long)d->managed_map);
    } else {
        snprintf(where, sizeof(where), "0x%0*llx..0x%0*llx", t->width, (unsigned long long)d->phys,
                 t->width, (unsigned long long)(d->phys + d->size - 1));
    }
    char handle[24];
    snprintf(handle, sizeof(handle), "0x%llx", (unsigned long long)d->cap);
    char kind[32];
    snprintf(kind, sizeof(kind), "%s%s", capmem_ds_kind_name(d->kind), d->lent ? ", lent" : "");
    fprintf(t->out, "  %-20s %-18s %10s  %-*s  %c%c  ", handle, kind,
            capmem__dump_bytes(d->size, b, sizeof(b)), 2 * t->width + 6, where, 'r',
            d->writable ? 'w' : '-');
    if (d->pays_pages != CAPMEM_CAP_NULL) {
        fprintf(t->out, "\"%s\"", d->pages_label != NULL ? CLEAN(d->pages_label) : "?");
    } else {
        fputs("-", t->out);
    }
    fprintf(t->out, ", \"%s\"", d->record_label != NULL ? CLEAN(d->record_label) : "?");
    if (d->source != CAPMEM_CAP_NULL) {
        fprintf(t->out, "; shows 0x%llx", (unsigned long long)d->source);
    }
    if (d->attachments > 0) {
        fprintf(t->out, "; attached %llu time%s", (unsigned long long)d->attachments,
                d->attachments == 1 ? "" : "s");
    }
    fputc('\n', t->out);
}

static void t_box_begin(void *ctx, const capmem__dump_container_t *b)
{
    text_t *t = ctx;
    char s[32];
    t->any = true;
    indent(t->out, b->depth + 1);
    switch (b->box) {
    case CAPMEM__BOX_RAM:
        fprintf(t->out, "RAM 0x%llx..0x%llx (%s)\n", (unsigned long long)b->phys,
                (unsigned long long)(b->phys + b->size - 1),
                capmem__dump_bytes(b->size, s, sizeof(s)));
        break;
    case CAPMEM__BOX_DEVICE:
        fprintf(t->out, "device memory %u 0x%llx..0x%llx (%s)\n", b->device,
                (unsigned long long)b->phys, (unsigned long long)(b->phys + b->size - 1),
                capmem__dump_bytes(b->size, s, sizeof(s)));
        break;
    case CAPMEM__BOX_UNTYPED:
        fprintf(t->out, "untyped 0x%llx 0x%llx..0x%llx (%s, %s)\n", (unsigned long long)b->cap,
                (unsigned long long)b->phys, (unsigned long long)(b->phys + b->size - 1),
                capmem__dump_bytes(b->size, s, sizeof(s)), b->policy);
        break;
    case CAPMEM__BOX_POOL:
        fprintf(t->out, "RAM pool 0x%llx 0x%llx..0x%llx (%s)\n", (unsigned long long)b->cap,
                (unsigned long long)b->phys, (unsigned long long)(b->phys + b->size - 1),
                capmem__dump_bytes(b->size, s, sizeof(s)));
        break;
    }
}

static void t_phys(void *ctx, const capmem__dump_phys_t *p)
{
    text_t *t = ctx;
    char s[32];
    t->any = true;
    indent(t->out, p->depth + 1);
    fprintf(t->out, "0x%0*llx..0x%0*llx %10s  %-13s", t->width, (unsigned long long)p->phys,
            t->width, (unsigned long long)(p->phys + p->size - 1),
            capmem__dump_bytes(p->size, s, sizeof(s)), capmem__phys_kind_names[p->kind]);
    if (p->owner != CAPMEM_CAP_NULL && p->kind != CAPMEM__PH_FREE && p->kind != CAPMEM__PH_LOST) {
        fprintf(t->out, " 0x%llx", (unsigned long long)p->owner);
    }
    if (p->label != NULL && p->kind != CAPMEM__PH_FREE) {
        fprintf(t->out, " \"%s\"", CLEAN(p->label));
    }
    if (p->refs > 1) {
        fprintf(t->out, " refs %llu", (unsigned long long)p->refs);
    }
    fputc('\n', t->out);
}

static void t_rm_begin(void *ctx, const capmem__dump_rm_t *m)
{
    text_t *t = ctx;
    char s[32];
    char dn[32];
    t->any = true;
    indent(t->out, 2 * m->depth + 1);
    fprintf(t->out, "map 0x%llx \"%s\" of %s, client 0x%llx, donation %s, records %llu/%llu, %s",
            (unsigned long long)m->cap, CLEAN(m->info.label),
            capmem__dump_bytes(m->info.size, s, sizeof(s)), (unsigned long long)m->info.client,
            capmem__dump_bytes(m->info.donation, dn, sizeof(dn)),
            (unsigned long long)m->info.records_used, (unsigned long long)m->info.records_capacity,
            m->info.has_handler ? "fault handler" : "no fault handler");
    if (m->state.faulted) {
        fprintf(t->out, "; %llu fault%s, last: %s at 0x%llx %s",
                (unsigned long long)m->state.faults, m->state.faults == 1 ? "" : "s",
                capmem_rm_access_name(m->state.access), (unsigned long long)m->state.address,
                m->state.pending ? "(being handled)"
                                 : (m->state.unresolved ? "(unresolved)" : "(resolved)"));
    }
    fputc('\n', t->out);
    if (m->info.regions == 0) {
        indent(t->out, 2 * m->depth + 2);
        fputs("(no regions)\n", t->out);
    }
}

static void t_region(void *ctx, const capmem__dump_region_t *r)
{
    text_t *t = ctx;
    char s[32];
    indent(t->out, 2 * r->depth + 2);
    fprintf(t->out, "0x%08llx..0x%08llx %10s  r%c%c  %s 0x%llx +0x%llx",
            (unsigned long long)r->address, (unsigned long long)(r->address + r->size - 1),
            capmem__dump_bytes(r->size, s, sizeof(s)), r->writable ? 'w' : '-',
            r->executable ? 'x' : '-', capmem_ds_kind_name(r->ds_kind), (unsigned long long)r->ds,
            (unsigned long long)r->offset);
    if (r->inner != CAPMEM_CAP_NULL) {
        fprintf(t->out, " -> map 0x%llx \"%s\"", (unsigned long long)r->inner, CLEAN(r->ds_label));
    } else if (r->ds_label != NULL) {
        fprintf(t->out, " (\"%s\")", CLEAN(r->ds_label));
    }
    fputc('\n', t->out);
}

static void t_kernel(void *ctx, const capmem__dump_kernel_t *k)
{
    text_t *t = ctx;
    const capmem_kernel_info_t *i = &k->info;
    t->any = true;
    fprintf(t->out,
            "  kernel heap: %s strategy, %llu-byte records; image %llu frame%s at 0x%llx; heap "
            "%llu frames (carved at boot %llu, borrowed %llu, released %llu); %s\n",
            capmem_kernel_strategy_name(i->strategy), (unsigned long long)i->record_size,
            (unsigned long long)i->image_frames, i->image_frames == 1 ? "" : "s",
            (unsigned long long)k->image_phys, (unsigned long long)i->heap_frames,
            (unsigned long long)i->boot_heap_frames, (unsigned long long)i->borrowed_frames,
            (unsigned long long)i->released_frames, i->boot_ended ? "boot ended" : "booting");
    fprintf(t->out,
            "  records: %llu used of %llu (%llu RAM + %llu device frames), reserve for "
            "devices %llu\n",
            (unsigned long long)i->records_used, (unsigned long long)i->records_capacity,
            (unsigned long long)i->ram_records, (unsigned long long)i->device_records,
            (unsigned long long)i->device_reserve);
    if (i->released_frames > 0) {
        fprintf(t->out, "  released 0x%0*llx..0x%0*llx (%llu frames) to ", t->width,
                (unsigned long long)k->released_phys, t->width,
                (unsigned long long)(k->released_phys + k->released_bytes - 1),
                (unsigned long long)i->released_frames);
        if (k->released_to != CAPMEM_CAP_NULL) {
            fprintf(t->out, "the prime bank 0x%llx\n", (unsigned long long)k->released_to);
        } else {
            fputs("no bank service yet\n", t->out);
        }
    }
}

static void t_kernel_chunk(void *ctx, const capmem__dump_kchunk_t *c)
{
    text_t *t = ctx;
    char s[32];
    fprintf(
        t->out, "    chunk %u 0x%0*llx..0x%0*llx %10s  %llu frame%s, record slots %llu..%llu, %s\n",
        c->index, t->width, (unsigned long long)c->phys, t->width,
        (unsigned long long)(c->phys + c->bytes - 1), capmem__dump_bytes(c->bytes, s, sizeof(s)),
        (unsigned long long)c->frames, c->frames == 1 ? "" : "s", (unsigned long long)c->first_slot,
        (unsigned long long)(c->first_slot + c->slots - 1),
        c->borrowed ? "borrowed through the banks" : "carved at boot");
}

/* A bank's rights: q(uery) l(imits) a(lloc) f(ree) d(estroy) r(emove) g(rant), '-' if restricted.
 */
static const char *bank_rights(unsigned rights, char buf[8])
{
    static const struct {
        unsigned bit;
        char c;
    } bits[] = {{CAPMEM_BANK_RIGHT_QUERY, 'q'},   {CAPMEM_BANK_RIGHT_LIMITS, 'l'},
                {CAPMEM_BANK_RIGHT_ALLOC, 'a'},   {CAPMEM_BANK_RIGHT_FREE, 'f'},
                {CAPMEM_BANK_RIGHT_DESTROY, 'd'}, {CAPMEM_BANK_RIGHT_REMOVE, 'r'},
                {CAPMEM_RIGHT_GRANT, 'g'}};
    for (unsigned i = 0; i < 7; i++) {
        buf[i] = (rights & bits[i].bit) ? bits[i].c : '-';
    }
    buf[7] = '\0';
    return buf;
}

static const char *count_or_unlimited(uint64_t v, char *buf, size_t len)
{
    if (v == CAPMEM_BANK_UNLIMITED) {
        return "-";
    }
    snprintf(buf, len, "%llu", (unsigned long long)v);
    return buf;
}

static void t_bank(void *ctx, const capmem__dump_bank_t *b)
{
    text_t *t = ctx;
    char name[64], r[8], c[4][24];
    if (!t->header) {
        fprintf(t->out, "  %-26s %-7s  %-27s  %s\n", "bank", "rights", "frames used/own/limit/eff",
                "nodes used/own/limit/eff");
        t->header = true;
    }
    t->any = true;
    if (b->kernel) {
        snprintf(name, sizeof(name), "%*s(kernel heap's bank)", (int)(2 * b->depth), "");
    } else {
        snprintf(name, sizeof(name), "%*s0x%llx%s", (int)(2 * b->depth), "",
                 (unsigned long long)b->cap, b->prime ? " prime" : "");
    }
    fprintf(t->out, "  %-26s %-7s ", name, b->kernel ? "-------" : bank_rights(b->rights, r));
    for (int ty = 0; ty < CAPMEM_BANK_TYPES; ty++) {
        char cell[64];
        snprintf(cell, sizeof(cell), "%llu/%llu/%s/%s", (unsigned long long)b->used[ty],
                 (unsigned long long)b->own[ty], count_or_unlimited(b->limit[ty], c[0], 24),
                 count_or_unlimited(b->effective[ty], c[1], 24));
        /* The last cell is not padded (no trailing blanks), unless a note follows. */
        if (ty + 1 < CAPMEM_BANK_TYPES || b->kernel) {
            fprintf(t->out, " %-27s ", cell);
        } else {
            fprintf(t->out, " %s", cell);
        }
    }
    if (b->kernel) {
        fprintf(t->out, " %llu heap frame%s lent", (unsigned long long)b->heap_frames,
                b->heap_frames == 1 ? "" : "s");
    }
    fputc('\n', t->out);
    for (unsigned i = 0; i < b->copies && i < CAPMEM__DUMP_BANK_COPIES; i++) {
        snprintf(name, sizeof(name), "%*scopy 0x%llx", (int)(2 * b->depth + 2), "",
                 (unsigned long long)b->copy[i]);
        fprintf(t->out, "  %-26s %s\n", name, bank_rights(b->copy_rights[i], r));
    }
    if (b->copies > CAPMEM__DUMP_BANK_COPIES) {
        fprintf(t->out, "  %*s(%u more copies)\n", (int)(2 * b->depth + 2), "",
                b->copies - CAPMEM__DUMP_BANK_COPIES);
    }
}

static void stat_line(FILE *out, const char *name, const capmem_stat_t *s)
{
    fprintf(out, "  %-14s now %10llu  peak %10llu  total %10llu\n", name,
            (unsigned long long)s->current, (unsigned long long)s->peak,
            (unsigned long long)s->total);
}

static void t_stats(void *ctx, const capmem_stats_t *st)
{
    text_t *t = ctx;
    t->any = true;
    stat_line(t->out, "capabilities", &st->caps);
    stat_line(t->out, "records", &st->records);
    stat_line(t->out, "dataspaces", &st->dataspaces);
    stat_line(t->out, "aliases", &st->aliases);
    stat_line(t->out, "regions", &st->regions);
    stat_line(t->out, "bytes lent", &st->bytes_lent);
    if (st->version >= 2) {
        stat_line(t->out, "kernel records", &st->kernel_records);
        stat_line(t->out, "banks", &st->banks);
        stat_line(t->out, "bank frames", &st->bank_frames);
    }
    fprintf(t->out,
            "  faults read %llu, write %llu, exec %llu, resolved %llu; upgrades %llu, retypes "
            "%llu, revokes %llu, bytes zeroed %llu\n",
            (unsigned long long)st->faults_read, (unsigned long long)st->faults_write,
            (unsigned long long)st->faults_exec, (unsigned long long)st->faults_resolved,
            (unsigned long long)st->upgrades, (unsigned long long)st->retypes,
            (unsigned long long)st->revokes, (unsigned long long)st->bytes_zeroed);
}

static const capmem__dump_sink_t text_sink = {
    .begin = t_begin,
    .section_begin = t_section_begin,
    .section_end = t_section_end,
    .cap = t_cap,
    .untyped = t_untyped,
    .untyped_free = t_untyped_free,
    .account = t_account,
    .ds = t_ds,
    .phys_box_begin = t_box_begin,
    .phys = t_phys,
    .rm_begin = t_rm_begin,
    .region = t_region,
    .kernel = t_kernel,
    .kernel_chunk = t_kernel_chunk,
    .bank = t_bank,
    .stats = t_stats,
};

const capmem__dump_sink_t *capmem__dump_text(FILE *out, void *ctx_buf)
{
    text_t *t = ctx_buf;
    memset(t, 0, sizeof(*t));
    t->out = out;
    return &text_sink;
}
