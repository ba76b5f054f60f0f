/* SPDX-License-Identifier: MIT */
/* Event delivery: one callback per arena, called synchronously. */
#include <stdarg.h>
#include <stdio.h>

#include "arena_internal.h"

static const char *const kind_names[] = {
    [CAPMEM_EVENT_CAP_DELETE] = "delete", [CAPMEM_EVENT_REVOKE] = "revoke",
    [CAPMEM_EVENT_RETYPE] = "retype",     [CAPMEM_EVENT_TRANSFER] = "transfer",
    [CAPMEM_EVENT_DONATE] = "donate",     [CAPMEM_EVENT_UPGRADE] = "upgrade",
    [CAPMEM_EVENT_FAULT] = "fault",       [CAPMEM_EVENT_SESSION_CLOSE] = "session close",
};

const char *capmem_event_kind_name(capmem_event_kind_t kind)
{
    if ((unsigned)kind >= sizeof(kind_names) / sizeof(kind_names[0]) || kind_names[kind] == NULL) {
        return "unknown";
    }
    return kind_names[kind];
}

capmem_err_t capmem_arena_set_event_handler(capmem_arena_t *arena, capmem_event_fn fn, void *ctx)
{
    if (arena == NULL) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, __func__, "arena is NULL");
    }
    capmem__lock(arena);
    arena->on_event = fn;
    arena->event_ctx = ctx;
    capmem__unlock(arena);
    return CAPMEM_OK;
}

void capmem__emit(capmem_arena_t *arena, const capmem_event_t *ev)
{
    if (arena->on_event != NULL && !arena->tearing_down) {
        arena->on_event(arena, ev, arena->event_ctx);
    }
}

void capmem__emitf(capmem_arena_t *arena, capmem_event_kind_t kind, capmem_cap_t cap, uint64_t a,
                   uint64_t b, const char *fmt, ...)
{
    if (arena->on_event == NULL || arena->tearing_down) {
        return;
    }
    char msg[192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    capmem_event_t ev = {.kind = kind, .cap = cap, .a = a, .b = b, .message = msg};
    capmem__emit(arena, &ev);
}
