/* SPDX-License-Identifier: MIT */
/*
 * Region maps, the access path (rm_internal.h): reads, writes and touches
 * at a map's local addresses, in the simulated mode, and the bytes of a
 * managed dataspace. docs/region_map.md explains the layer.
 *
 * The path is split in two so that a real (mmap) mode can reuse it:
 * capmem__rm_translate() is a pure function from (map, address, access) to
 * either a backing offset with the number of contiguous bytes behind it, or
 * a fault (which map, which address); rm_access() moves bytes and, on a
 * fault, calls capmem__rm_deliver(), which records the state, queues the
 * event and runs the handler. After a handler has run nothing is trusted:
 * the access looks its top-level capability up again and retranslates,
 * because the handler may have attached, detached or closed anything.
 */
#include <string.h>

#include "rm_internal.h"

const char *capmem_rm_access_name(capmem_rm_access_t access)
{
    switch (access) {
    case CAPMEM_RM_READ:
        return "read";
    case CAPMEM_RM_WRITE:
        return "write";
    case CAPMEM_RM_EXEC:
        return "exec";
    }
    return "unknown";
}

/* ---- translate and deliver --------------------------------------------------------- */

/*
 * Cycles are refused at attach, so the walk ends after at most as many
 * levels as maps exist. Inline for the simulated accesses, which run it for
 * every piece they copy; capmem__rm_translate is the same for other callers.
 */
static inline void translate(const capmem_arena_t *arena, capmem__rm_t *rm, uint64_t addr,
                             capmem_rm_access_t access, capmem__rm_xlate_t *x)
{
    const unsigned shift = arena->mem.page_shift;
    uint64_t avail = UINT64_MAX;
    for (;;) {
        const rm_region_t *r = capmem__rm_region_at(arena, rm, addr);
        if (r == NULL || (access == CAPMEM_RM_WRITE && !(rg_flags(r) & RG_WRITABLE)) ||
            (access == CAPMEM_RM_EXEC && !(rg_flags(r) & RG_EXEC))) {
            x->fault_rm = rm;
            x->fault_addr = addr;
            return;
        }
        const uint64_t rstart = (uint64_t)r->base << shift;
        const uint64_t left = (rg_end(r) << shift) - addr;
        avail = left < avail ? left : avail;
        const capmem__ds_t *d = rg_ds(arena, r);
        const uint64_t dsoff = addr - rstart + r->off;
        if (capmem__ds_kind(d) == CAPMEM__DS_MANAGED) {
            rm = capmem__ds_map(d);
            addr = dsoff;
            continue;
        }
        x->fault_rm = NULL;
        x->boff = d->off + dsoff;
        x->avail = avail;
        return;
    }
}

void capmem__rm_translate(const capmem_arena_t *arena, capmem__rm_t *rm, uint64_t addr,
                          capmem_rm_access_t access, capmem__rm_xlate_t *x)
{
    translate(arena, rm, addr, access, x);
}

/* The map a handle names, without touching the error record; NULL if gone. */
static capmem__rm_t *rm_by_handle(capmem_arena_t *arena, capmem_cap_t h)
{
    const capmem__slot_t *s = capmem__cspace_get(&arena->cspace, h);
    return s != NULL && s->type == CAPMEM_OBJ_REGION_MAP ? s->obj : NULL;
}

/* UNRESOLVED_FAULT, with the handler's own failure as the root cause if it had one. */
static capmem_err_t unresolved(uint64_t addr, capmem_rm_access_t access, const char *why,
                               const capmem_error_info_t *cause)
{
    capmem_err_t err;
    if (cause->code != CAPMEM_OK) {
        err = capmem__fail(CAPMEM_E_UNRESOLVED_FAULT, NULL,
                           "%s fault at 0x%llx not resolved: the handler's %s failed: %s: %s",
                           capmem_rm_access_name(access), (unsigned long long)addr,
                           cause->function != NULL ? cause->function : "call",
                           capmem_err_name(cause->code), cause->message);
        capmem__detail()->needed = cause->needed;
        capmem__detail()->available = cause->available;
    } else {
        err = capmem__fail(CAPMEM_E_UNRESOLVED_FAULT, NULL, "unresolved %s fault at 0x%llx: %s",
                           capmem_rm_access_name(access), (unsigned long long)addr, why);
    }
    capmem__detail()->address = addr;
    return err;
}

capmem_err_t capmem__rm_deliver(capmem_arena_t *arena, capmem__rm_t *rm, uint64_t addr,
                                capmem_rm_access_t access)
{
    const capmem_cap_t h = capmem__rm_handle(arena, rm);
    rm->state = ST_FAULTED | ST_PENDING;
    rm->fault_addr = addr;
    rm->fault_access = (uint8_t)access;
    rm->faults++;
    arena->stats.faults[access]++;
    if (capmem__events_on(arena)) {
        capmem__emitf(arena, CAPMEM_EVENT_FAULT, h, addr, (uint64_t)access,
                      "%s fault at 0x%llx in region map \"%s\"", capmem_rm_access_name(access),
                      (unsigned long long)addr, rm->label);
    }
    capmem_rm_fault_result_t res = CAPMEM_RM_FAULT_UNRESOLVED;
    const char *why = "no fault handler";
    /* The handler's own failure, if it had one: the root cause of an unresolved fault. */
    capmem_error_info_t cause = {.code = CAPMEM_OK};
    if (rm->handler != NULL && rm->in_handler == 0) {
        capmem_rm_fault_fn fn = rm->handler;
        void *ctx = rm->handler_ctx;
        capmem_rm_fault_t f = {.rm = h, .address = addr, .access = access};
        rm->in_handler++;
        const uint64_t failures = capmem__failures();
        const unsigned saved = capmem__reentry_allow(arena);
        res = fn(arena, &f, ctx);
        capmem__reentry_restore(arena, saved);
        if (capmem__failures() != failures) {
            cause = *capmem_last_error();
        }
        rm = rm_by_handle(arena, h); /* the handler may have closed the map */
        if (rm != NULL) {
            rm->in_handler--;
        }
        why = "the handler did not resolve it";
    } else if (rm->in_handler != 0) {
        why = "it was raised while the map's own handler runs";
    }
    if (rm != NULL) {
        rm->state &= (uint8_t)~ST_PENDING;
        if (res != CAPMEM_RM_FAULT_RESOLVED) {
            rm->state |= ST_UNRESOLVED;
        }
    }
    if (res == CAPMEM_RM_FAULT_RESOLVED) {
        arena->stats.faults_resolved++;
    }
    if (res == CAPMEM_RM_FAULT_RESOLVED &&
        capmem__event_wanted(arena, CAPMEM_EVENT_FAULT_RESOLVED)) {
        capmem__emit(
            arena,
            &(capmem__ev_t){
                .kind = CAPMEM_EVENT_FAULT_RESOLVED, .cap = h, .a = addr, .b = (uint64_t)access},
            "%s fault at 0x%llx resolved", capmem_rm_access_name(access), (unsigned long long)addr);
    }
    return res == CAPMEM_RM_FAULT_RESOLVED ? CAPMEM_OK : unresolved(addr, access, why, &cause);
}

/* ---- moving bytes ---------------------------------------------------------------------- */

/* The map at the top of an access: a map capability or a managed dataspace's. */
static capmem_err_t top_lookup(capmem_arena_t *arena, capmem_cap_t top, unsigned rights,
                               capmem__rm_t **out)
{
    if (capmem_cap_type(top) != CAPMEM_OBJ_DATASPACE) {
        return capmem__rm_lookup(arena, top, rights, out);
    }
    capmem__slot_t *s;
    capmem__ds_t *d;
    capmem_err_t err = capmem__ds_lookup(arena, top, rights, &s, &d);
    if (err == CAPMEM_OK) {
        CAPMEM_ASSERT(capmem__ds_kind(d) == CAPMEM__DS_MANAGED, "accesses start at a map");
        *out = capmem__ds_map(d);
    }
    return err;
}

/*
 * Move @p len bytes at @p addr of the map named by @p top (rights and range
 * already checked), or only touch them when @p buf is NULL. The lock is held.
 * @p first, if not NULL, is the translation of @p addr in @p rm.
 */
static capmem_err_t rm_access(capmem_arena_t *arena, capmem_cap_t top, capmem__rm_t *rm,
                              uint64_t addr, uint8_t *buf, size_t len, capmem_rm_access_t access,
                              const capmem__rm_xlate_t *first)
{
    size_t done = 0;
    unsigned retries = 0;
    while (done < len) {
        capmem__rm_xlate_t x;
        if (first != NULL) {
            x = *first; /* the caller translated addr already */
            first = NULL;
        } else {
            translate(arena, rm, addr + done, access, &x);
        }
        if (x.fault_rm != NULL) {
            capmem_err_t err = capmem__rm_deliver(arena, x.fault_rm, x.fault_addr, access);
            if (err != CAPMEM_OK) {
                return err;
            }
            if (++retries >= CAPMEM_RM_FAULT_RETRIES) {
                err = capmem__fail(CAPMEM_E_FAULT_LOOP, NULL,
                                   "%s fault at 0x%llx reported resolved %u times without "
                                   "progress",
                                   capmem_rm_access_name(access), (unsigned long long)x.fault_addr,
                                   retries);
                capmem__detail()->address = x.fault_addr;
                return err;
            }
            /* The handler may have changed anything: start again from the top capability. */
            err = top_lookup(arena, top, 0, &rm);
            if (err != CAPMEM_OK) {
                return err;
            }
            continue;
        }
        size_t n = len - done;
        if (x.avail < n) {
            n = (size_t)x.avail;
        }
        if (buf != NULL) {
            if (access == CAPMEM_RM_WRITE) {
                memcpy(capmem__bytes(&arena->mem, x.boff), buf + done, n);
            } else {
                memcpy(buf + done, capmem__bytes(&arena->mem, x.boff), n);
            }
        }
        done += n;
        retries = 0;
    }
    return CAPMEM_OK;
}

/* A public access, inside the call: the map with the rights the access needs, the range, the bytes.
 */
static capmem_err_t access_map(capmem_arena_t *arena, capmem_cap_t rm, uint64_t addr, uint8_t *buf,
                               size_t len, capmem_rm_access_t access)
{
    const unsigned rights = access == CAPMEM_RM_WRITE ? CAPMEM_RIGHT_WRITE : CAPMEM_RIGHT_READ;
    capmem__rm_t *m = NULL;
    capmem_err_t err = capmem__rm_lookup(arena, rm, rights, &m);
    if (err != CAPMEM_OK) {
        return err;
    }
    uint64_t end;
    if (!capmem__add_ok(addr, len, &end) || end > m->size) {
        err = capmem__fail_range(NULL, 3, addr, 0, m->size, "access beyond the region map");
        capmem__detail()->size = len;
        return err;
    }
    /*
     * The common case first: one region of a plain dataspace holds the
     * whole range, so the bytes move at once; anything else (a fault, a
     * range over several regions) takes the general path, which starts
     * from this translation.
     */
    capmem__rm_xlate_t x;
    translate(arena, m, addr, access, &x);
    if (x.fault_rm == NULL && x.avail >= len) {
        if (buf != NULL) {
            if (access == CAPMEM_RM_WRITE) {
                memcpy(capmem__bytes(&arena->mem, x.boff), buf, len);
            } else {
                memcpy(buf, capmem__bytes(&arena->mem, x.boff), len);
            }
        }
        return CAPMEM_OK;
    }
    return rm_access(arena, rm, m, addr, buf, len, access, &x);
}

capmem_err_t capmem_rm_read(capmem_arena_t *arena, capmem_cap_t rm, uint64_t address, void *buf,
                            size_t len)
{
    if (arena == NULL || buf == NULL) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, __func__, "arena or buf is NULL");
    }
    CAPMEM__ENTER_OR_RETURN(arena);
    capmem_err_t err = access_map(arena, rm, address, buf, len, CAPMEM_RM_READ);
    CAPMEM__LEAVE(arena);
    return err;
}

capmem_err_t capmem_rm_write(capmem_arena_t *arena, capmem_cap_t rm, uint64_t address,
                             const void *buf, size_t len)
{
    if (arena == NULL || buf == NULL) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, __func__, "arena or buf is NULL");
    }
    CAPMEM__ENTER_OR_RETURN(arena);
    /* The bytes are only read: rm_access copies from buf for a write. */
    capmem_err_t err =
        access_map(arena, rm, address, (uint8_t *)(uintptr_t)buf, len, CAPMEM_RM_WRITE);
    CAPMEM__LEAVE(arena);
    return err;
}

capmem_err_t capmem_rm_touch(capmem_arena_t *arena, capmem_cap_t rm, uint64_t address, size_t len,
                             capmem_rm_access_t access)
{
    if (arena == NULL ||
        (access != CAPMEM_RM_READ && access != CAPMEM_RM_WRITE && access != CAPMEM_RM_EXEC)) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, __func__,
                            "arena is NULL or access type %d is unknown", (int)access);
    }
    CAPMEM__ENTER_OR_RETURN(arena);
    capmem_err_t err = access_map(arena, rm, address, NULL, len, access);
    CAPMEM__LEAVE(arena);
    return err;
}

/* The dataspace layer checked the range against the dataspace, which is the map's size. */
capmem_err_t capmem__rm_managed_access(capmem_arena_t *arena, capmem__ds_t *ds, uint64_t offset,
                                       void *buf, size_t len, bool write)
{
    const capmem_cap_t top = capmem__slot_handle(&arena->cspace, ds->slot);
    return rm_access(arena, top, capmem__ds_map(ds), offset, buf, len,
                     write ? CAPMEM_RM_WRITE : CAPMEM_RM_READ, NULL);
}
