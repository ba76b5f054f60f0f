/* SPDX-License-Identifier: MIT */
/*
 * The JSON dump: one object, streamed, described by docs/dump.schema.json
 * (version CAPMEM_DUMP_VERSION). Handles and addresses that are names are
 * "0x..." strings; sizes and counts are exact integers.
 */
#include <string.h>

#include "dump_internal.h"
#include "json.h"

typedef struct jsink {
    FILE *out;
    bool first;      /* no element written yet in the array being written */
    bool in_free;    /* an untyped's "free_ranges" array is open */
    bool rm_first;   /* no region written yet in the innermost open map */
    bool ds_started; /* the RAM section's "dataspaces" array is open */
} jsink_t;

_Static_assert(sizeof(jsink_t) <= CAPMEM__DUMP_CTX_MAX, "the sink's state fits its buffer");

static void key(jsink_t *j, const char *k)
{
    capmem__json_string(j->out, k);
    fputc(':', j->out);
}

static void kv_u64(jsink_t *j, const char *k, uint64_t v)
{
    fputc(',', j->out);
    key(j, k);
    capmem__json_u64(j->out, v);
}

static void kv_hex(jsink_t *j, const char *k, uint64_t v)
{
    fputc(',', j->out);
    key(j, k);
    capmem__json_hex(j->out, v);
}

/* A handle, or null for none. */
static void kv_cap(jsink_t *j, const char *k, capmem_cap_t v)
{
    fputc(',', j->out);
    key(j, k);
    if (v == CAPMEM_CAP_NULL) {
        fputs("null", j->out);
    } else {
        capmem__json_hex(j->out, v);
    }
}

static void kv_str(jsink_t *j, const char *k, const char *v)
{
    fputc(',', j->out);
    key(j, k);
    capmem__json_string(j->out, v);
}

static void kv_bool(jsink_t *j, const char *k, bool v)
{
    fputc(',', j->out);
    key(j, k);
    capmem__json_bool(j->out, v);
}

/* Start an element of the array being written. */
static void element(jsink_t *j)
{
    fputs(j->first ? "\n" : ",\n", j->out);
    j->first = false;
}

static void j_begin(void *ctx, const capmem__dump_head_t *h)
{
    jsink_t *j = ctx;
    fputs("{\"format\":\"capmem-dump\"", j->out);
    kv_u64(j, "version", CAPMEM_DUMP_VERSION);
    fputs(",\"arena\":{", j->out);
    key(j, "ram_size");
    capmem__json_u64(j->out, h->ram_size);
    kv_u64(j, "page_size", h->page_size);
    kv_hex(j, "phys_base", h->phys_base);
    kv_u64(j, "device_window", h->device_window);
    kv_u64(j, "cap_slots", h->cap_slots);
    kv_str(j, "backing", h->backing);
    fputs("},\"scope\":{", j->out);
    key(j, "root");
    if (h->root == CAPMEM_CAP_NULL) {
        fputs("null", j->out);
    } else {
        capmem__json_hex(j->out, h->root);
    }
    kv_str(j, "root_type", h->root_type);
    kv_u64(j, "sections", h->sections);
    fputc('}', j->out);
}

static void j_end(void *ctx)
{
    jsink_t *j = ctx;
    fputs("}\n", j->out);
}

static const char *const names[CAPMEM__SEC_COUNT] = {
    "capabilities", "untyped", "ram", "physical", "region_maps", "kernel", "stats",
};

static void j_section_begin(void *ctx, capmem__dump_section_t s)
{
    jsink_t *j = ctx;
    fputs(",\n", j->out);
    key(j, names[s]);
    j->first = true;
    switch (s) {
    case CAPMEM__SEC_RAM:
        fputs("{\"accounts\":[", j->out);
        break;
    case CAPMEM__SEC_KERNEL:
        /* Issue 13's layer writes an object here; null while it is not booted. */
        fputs("null", j->out);
        break;
    case CAPMEM__SEC_STATS:
        break;
    default:
        fputc('[', j->out);
        break;
    }
}

static void j_section_end(void *ctx, capmem__dump_section_t s)
{
    jsink_t *j = ctx;
    switch (s) {
    case CAPMEM__SEC_KERNEL:
    case CAPMEM__SEC_STATS:
        break;
    case CAPMEM__SEC_RAM:
        if (!j->ds_started) {
            /* No dataspace arrived: close the accounts and write an empty list. */
            fputs("\n],\"dataspaces\":[", j->out);
        }
        fputs("\n]}", j->out);
        break;
    default:
        fputs("\n]", j->out);
        break;
    }
}

static void j_cap(void *ctx, const capmem__dump_cap_t *c)
{
    jsink_t *j = ctx;
    char r[4];
    element(j);
    fputc('{', j->out);
    key(j, "cap");
    capmem__json_hex(j->out, c->cap);
    kv_cap(j, "parent", c->parent);
    kv_u64(j, "depth", c->depth);
    kv_str(j, "type", c->type);
    kv_str(j, "name", c->name);
    kv_str(j, "rights", capmem__dump_rights(c->rights, r));
    kv_bool(j, "original", c->original);
    kv_u64(j, "generation", c->generation);
    kv_u64(j, "slot", c->index);
    kv_str(j, "label", c->label);
    kv_str(j, "describe", c->describe);
    fputc('}', j->out);
}

static void j_untyped(void *ctx, const capmem__dump_untyped_t *u)
{
    jsink_t *j = ctx;
    element(j);
    fputc('{', j->out);
    key(j, "cap");
    capmem__json_hex(j->out, u->info.cap);
    kv_hex(j, "phys", u->info.phys);
    kv_u64(j, "offset", u->info.offset);
    kv_u64(j, "size", 1ull << u->info.size_bits);
    kv_u64(j, "size_bits", u->info.size_bits);
    kv_bool(j, "device", u->info.device);
    kv_str(j, "policy", u->info.policy);
    kv_cap(j, "parent", u->parent_untyped);
    kv_cap(j, "copy_of", u->copy_of);
    kv_u64(j, "free_bytes", u->info.free_bytes);
    kv_u64(j, "largest_free", u->info.largest_free);
    kv_u64(j, "watermark", u->info.watermark);
    kv_u64(j, "children", u->info.children);
    kv_bool(j, "full", u->info.full);
    fputc(',', j->out);
    key(j, "free_ranges");
    if (u->range_policy) {
        fputc('[', j->out);
        j->in_free = true;
        j->first = true;
    } else {
        fputs("null", j->out);
        j->in_free = false;
    }
}

static void j_untyped_free(void *ctx, const capmem__dump_untyped_t *u, uint64_t offset,
                           uint64_t size)
{
    jsink_t *j = ctx;
    if (!j->first) {
        fputc(',', j->out);
    }
    j->first = false;
    fputc('{', j->out);
    key(j, "phys");
    capmem__json_hex(j->out, u->info.phys + (offset - u->info.offset));
    kv_u64(j, "offset", offset);
    kv_u64(j, "size", size);
    fputc('}', j->out);
}

static void j_untyped_end(void *ctx, const capmem__dump_untyped_t *u)
{
    jsink_t *j = ctx;
    (void)u;
    if (j->in_free) {
        fputc(']', j->out);
    }
    j->in_free = false;
    j->first = false; /* the next untyped follows this one */
    fputc('}', j->out);
}

static void j_account(void *ctx, const capmem__dump_account_t *a)
{
    jsink_t *j = ctx;
    element(j);
    fputc('{', j->out);
    key(j, "cap");
    capmem__json_hex(j->out, a->cap);
    kv_str(j, "label", a->info.label);
    kv_cap(j, "ref", a->info.ref);
    kv_u64(j, "depth", a->depth);
    kv_u64(j, "quota", a->info.quota);
    kv_u64(j, "used", a->info.used);
    kv_u64(j, "avail", a->info.avail);
    kv_u64(j, "lent", a->info.lent);
    kv_u64(j, "donation", a->info.donation);
    kv_u64(j, "records_used", a->info.records_used);
    kv_u64(j, "records_free", a->info.records_capacity - a->info.records_used);
    kv_u64(j, "records_capacity", a->info.records_capacity);
    kv_u64(j, "caps_limit", a->info.caps_limit);
    kv_u64(j, "caps_used", a->info.caps_used);
    kv_u64(j, "donated", a->donated);
    kv_u64(j, "sessions", a->sessions);
    kv_u64(j, "upgrade_step", a->info.upgrade_step);
    kv_u64(j, "upgrades", a->info.upgrades);
    kv_bool(j, "expanding", a->info.expanding);
    kv_bool(j, "is_root", a->info.is_root);
    fputc('}', j->out);
}

static void j_ds(void *ctx, const capmem__dump_ds_t *d)
{
    jsink_t *j = ctx;
    if (!j->ds_started) {
        /* The first dataspace closes the accounts. */
        fputs("\n],\"dataspaces\":[", j->out);
        j->ds_started = true;
        j->first = true;
    }
    element(j);
    fputc('{', j->out);
    key(j, "cap");
    capmem__json_hex(j->out, d->cap);
    kv_str(j, "kind", capmem_ds_kind_name(d->kind));
    kv_u64(j, "size", d->size);
    kv_hex(j, "phys", d->phys);
    kv_u64(j, "offset", d->offset);
    kv_bool(j, "writable", d->writable);
    kv_bool(j, "lent", d->lent);
    kv_cap(j, "owner", d->owner);
    kv_cap(j, "source", d->source);
    kv_cap(j, "pays_pages", d->pays_pages);
    kv_cap(j, "pays_record", d->pays_record);
    kv_cap(j, "map", d->managed_map);
    kv_u64(j, "attachments", d->attachments);
    fputc('}', j->out);
}

static void j_phys(void *ctx, const capmem__dump_phys_t *p)
{
    jsink_t *j = ctx;
    element(j);
    fputc('{', j->out);
    key(j, "phys");
    capmem__json_hex(j->out, p->phys);
    kv_u64(j, "offset", p->offset);
    kv_u64(j, "size", p->size);
    kv_str(j, "kind", capmem__phys_kind_names[p->kind]);
    kv_cap(j, "owner", p->owner);
    kv_cap(j, "account", p->account);
    kv_cap(j, "in", p->in);
    kv_str(j, "label", p->label);
    kv_u64(j, "refs", p->refs);
    kv_u64(j, "depth", p->depth);
    fputc('}', j->out);
}

static void j_rm_begin(void *ctx, const capmem__dump_rm_t *m)
{
    jsink_t *j = ctx;
    if (m->depth > 0) {
        /* Nested under the region that holds it: "inner_map" of that region. */
        fputs(",\"inner_map\":", j->out);
    } else {
        element(j);
    }
    fputc('{', j->out);
    key(j, "cap");
    capmem__json_hex(j->out, m->cap);
    kv_str(j, "label", m->info.label);
    kv_cap(j, "client", m->info.client);
    kv_u64(j, "size", m->info.size);
    kv_u64(j, "donation", m->info.donation);
    kv_u64(j, "records_used", m->info.records_used);
    kv_u64(j, "records_capacity", m->info.records_capacity);
    kv_u64(j, "upgrades", m->info.upgrades);
    kv_bool(j, "expanding", m->info.expanding);
    kv_bool(j, "has_handler", m->info.has_handler);
    kv_cap(j, "managed", m->managed);
    fputs(",\"state\":{", j->out);
    key(j, "faulted");
    capmem__json_bool(j->out, m->state.faulted);
    kv_bool(j, "pending", m->state.pending);
    kv_bool(j, "unresolved", m->state.unresolved);
    kv_str(j, "access", capmem_rm_access_name(m->state.access));
    kv_hex(j, "address", m->state.address);
    kv_u64(j, "faults", m->state.faults);
    fputs("},\"regions\":[", j->out);
    j->rm_first = true;
}

static void j_region(void *ctx, const capmem__dump_region_t *r)
{
    jsink_t *j = ctx;
    if (!j->rm_first) {
        fputs("},", j->out); /* close the previous region: an inner map may have followed it */
    }
    j->rm_first = false;
    fputs("\n {", j->out);
    key(j, "address");
    capmem__json_hex(j->out, r->address);
    kv_u64(j, "size", r->size);
    kv_cap(j, "ds", r->ds);
    kv_str(j, "ds_kind", capmem_ds_kind_name(r->ds_kind));
    kv_u64(j, "offset", r->offset);
    kv_bool(j, "writable", r->writable);
    kv_bool(j, "executable", r->executable);
    kv_cap(j, "inner", r->inner);
    kv_cap(j, "account", r->account);
}

static void j_rm_end(void *ctx, const capmem__dump_rm_t *m)
{
    jsink_t *j = ctx;
    if (!j->rm_first) {
        fputc('}', j->out);
    }
    fputs("]}", j->out);
    /* Back in the enclosing map (nested) or the list of maps: a region (or map) is open. */
    j->rm_first = m->depth == 0;
    if (m->depth == 0) {
        j->first = false;
    }
}

static void stat(jsink_t *j, const char *k, const capmem_stat_t *s)
{
    fputc(',', j->out);
    key(j, k);
    fputs("{\"current\":", j->out);
    capmem__json_u64(j->out, s->current);
    kv_u64(j, "peak", s->peak);
    kv_u64(j, "total", s->total);
    fputc('}', j->out);
}

static void j_stats(void *ctx, const capmem_stats_t *st)
{
    jsink_t *j = ctx;
    fputs("{\"version\":", j->out);
    capmem__json_u64(j->out, st->version);
    stat(j, "caps", &st->caps);
    stat(j, "records", &st->records);
    stat(j, "dataspaces", &st->dataspaces);
    stat(j, "aliases", &st->aliases);
    stat(j, "regions", &st->regions);
    stat(j, "bytes_lent", &st->bytes_lent);
    kv_u64(j, "faults_read", st->faults_read);
    kv_u64(j, "faults_write", st->faults_write);
    kv_u64(j, "faults_exec", st->faults_exec);
    kv_u64(j, "faults_resolved", st->faults_resolved);
    kv_u64(j, "upgrades", st->upgrades);
    kv_u64(j, "retypes", st->retypes);
    kv_u64(j, "revokes", st->revokes);
    kv_u64(j, "bytes_zeroed", st->bytes_zeroed);
    fputc('}', j->out);
}

static const capmem__dump_sink_t json_sink = {
    .begin = j_begin,
    .end = j_end,
    .section_begin = j_section_begin,
    .section_end = j_section_end,
    .cap = j_cap,
    .untyped = j_untyped,
    .untyped_free = j_untyped_free,
    .untyped_end = j_untyped_end,
    .account = j_account,
    .ds = j_ds,
    .phys = j_phys,
    .rm_begin = j_rm_begin,
    .region = j_region,
    .rm_end = j_rm_end,
    .stats = j_stats,
};

const capmem__dump_sink_t *capmem__dump_json(FILE *out, void *ctx_buf)
{
    jsink_t *j = ctx_buf;
    memset(j, 0, sizeof(*j));
    j->out = out;
    return &json_sink;
}
