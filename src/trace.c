/* SPDX-License-Identifier: MIT */
/*
 * Layer 9: the trace recorder. A subscriber like any other (machine.c)
 * that writes each event as one line of JSON (docs/inspect.md, "Traces"),
 * after a header line with the format version and the arena's
 * configuration. Its state is a layer's (one per arena, made on the first
 * capmem_trace_start()); the stream is the caller's and is never closed
 * here.
 */
#include "json.h"
#include "machine_internal.h"

typedef struct trace_state {
    FILE *out; /* NULL when no trace is being recorded */
    capmem_subscription_t sub;
} trace_state_t;

static const capmem__layer_t trace_layer = {.name = "trace"};

static void write_event(capmem_arena_t *arena, const capmem_event_t *ev, void *ctx)
{
    (void)arena;
    FILE *out = ctx;
    fputs("{\"seq\":", out);
    capmem__json_u64(out, ev->seq);
    fputs(",\"kind\":", out);
    capmem__json_string(out, capmem_event_kind_name(ev->kind));
    fputs(",\"kind_id\":", out);
    capmem__json_u64(out, (uint64_t)ev->kind);
    fputs(",\"cap\":", out);
    capmem__json_hex(out, ev->cap);
    fputs(",\"other\":", out);
    capmem__json_hex(out, ev->other);
    fputs(",\"payer\":", out);
    capmem__json_hex(out, ev->payer);
    fputs(",\"a\":", out);
    capmem__json_u64(out, ev->a);
    fputs(",\"b\":", out);
    capmem__json_u64(out, ev->b);
    fputs(",\"offset\":", out);
    capmem__json_u64(out, ev->offset);
    fputs(",\"size\":", out);
    capmem__json_u64(out, ev->size);
    fputs(",\"message\":", out);
    capmem__json_string(out, ev->message);
    fputs("}\n", out);
}

static void write_header(capmem_arena_t *arena, FILE *out, unsigned mask)
{
    const capmem__backing_t *m = &arena->mem;
    fputs("{\"format\":\"capmem-trace\",\"version\":", out);
    capmem__json_u64(out, CAPMEM_TRACE_VERSION);
    fputs(",\"arena\":{\"ram_size\":", out);
    capmem__json_u64(out, m->ram_size);
    fputs(",\"page_size\":", out);
    capmem__json_u64(out, m->page_size);
    fputs(",\"phys_base\":", out);
    capmem__json_u64(out, m->phys_base);
    fputs(",\"device_window\":", out);
    capmem__json_u64(out, m->device_window);
    fputs(",\"cap_slots\":", out);
    capmem__json_u64(out, arena->cspace.capacity);
    fputs(",\"backing\":", out);
    capmem__json_string(out, capmem_backing_name(m->backing));
    fputs("},\"mask\":", out);
    capmem__json_u64(out, mask);
    fputs(",\"first_seq\":", out);
    capmem__json_u64(out, arena->ev_seq);
    fputs("}\n", out);
}

capmem_err_t capmem_trace_start(capmem_arena_t *arena, FILE *out, unsigned mask)
{
    if (arena == NULL || out == NULL || mask == 0) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, __func__, "arena or out is NULL, or mask is 0");
    }
    CAPMEM__ENTER_OR_RETURN(arena);
    trace_state_t *st = capmem__layer_state(arena, &trace_layer);
    capmem_err_t err = CAPMEM_OK;
    if (st != NULL && st->out != NULL) {
        err = capmem__fail(CAPMEM_E_INVALID_ARGS, NULL,
                           "a trace is being recorded already: stop it first");
    }
    /* Every check before the layer's state is made, so a failure leaves none. */
    capmem_subscription_t sub = 0;
    if (err == CAPMEM_OK) {
        err = capmem__subscribe(arena, mask, write_event, out, &sub);
    }
    if (err == CAPMEM_OK && st == NULL) {
        void *p = NULL;
        err = capmem__layer_setup(arena, &trace_layer, sizeof(trace_state_t), &p);
        st = p;
        if (err != CAPMEM_OK) {
            (void)capmem__unsubscribe(arena, sub);
        }
    }
    if (err == CAPMEM_OK) {
        st->out = out;
        st->sub = sub;
        write_header(arena, out, mask);
    }
    CAPMEM__LEAVE(arena);
    return err;
}

capmem_err_t capmem_trace_stop(capmem_arena_t *arena)
{
    if (arena == NULL) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, __func__, "arena is NULL");
    }
    CAPMEM__ENTER_OR_RETURN(arena);
    trace_state_t *st = capmem__layer_state(arena, &trace_layer);
    capmem_err_t err = CAPMEM_OK;
    if (st == NULL || st->out == NULL) {
        err = capmem__fail(CAPMEM_E_NOT_FOUND, NULL, "no trace is being recorded");
    } else {
        (void)capmem__unsubscribe(arena, st->sub);
        FILE *out = st->out;
        st->out = NULL;
        st->sub = 0;
        if (fflush(out) != 0 || ferror(out)) {
            err = capmem__fail(CAPMEM_E_SYSTEM, NULL,
                               "writing the trace failed: some events may be missing");
        }
    }
    CAPMEM__LEAVE(arena);
    return err;
}
