/* SPDX-License-Identifier: MIT */
/*
 * Layer 3: the capability space.
 *
 * Slots live in one lazily committed table indexed by the handle's slot
 * index, so a lookup is an index, a generation compare and a type compare:
 * no pointer is ever taken from the caller. The derivation tree is threaded
 * through the slots by index: parent, first child, siblings. The first
 * child's prev_sib points at the last child, so appending is O(1) and the
 * child list keeps creation order.
 */
#include <stdio.h>
#include <string.h>

#include "arena_internal.h"

static const char *const type_names[CAPMEM_OBJ_TYPE_COUNT] = {
    [CAPMEM_OBJ_NONE] = "none",
    [CAPMEM_OBJ_UNTYPED] = "untyped",
    [CAPMEM_OBJ_FRAME] = "frame",
    [CAPMEM_OBJ_KOBJ] = "kernel object",
    [CAPMEM_OBJ_RAM_SESSION] = "RAM session",
    [CAPMEM_OBJ_DATASPACE] = "dataspace",
    [CAPMEM_OBJ_REGION_MAP] = "region map",
    [CAPMEM_OBJ_USER] = "user object",
};

const char *capmem_obj_type_name(capmem_obj_type_t type)
{
    if ((unsigned)type >= CAPMEM_OBJ_TYPE_COUNT) {
        return "invalid";
    }
    return type_names[type];
}

/* ---- table ------------------------------------------------------------- */

capmem_err_t capmem__cspace_init(capmem__cspace_t *cs, uint32_t capacity, uint32_t tag)
{
    memset(cs, 0, sizeof(*cs));
    cs->tag = tag;
    size_t bytes = (size_t)capacity * sizeof(capmem__slot_t);
    cs->slots = capmem__map_lazy(bytes);
    if (cs->slots == NULL) {
        return capmem__fail(CAPMEM_E_SYSTEM, "capmem_arena_create",
                            "could not map a capability table of %u slots", capacity);
    }
    cs->capacity = capacity;
    cs->high = 1; /* slot 0 is never used, so handle 0 is never valid */
    return CAPMEM_OK;
}

void capmem__cspace_fini(capmem__cspace_t *cs)
{
    capmem__unmap(cs->slots, (size_t)cs->capacity * sizeof(capmem__slot_t));
    memset(cs, 0, sizeof(*cs));
}

static capmem__cspace_t *cspace(capmem_arena_t *arena)
{
    return &arena->cspace;
}

capmem_err_t capmem__cap_lookup_slow(capmem_arena_t *arena, capmem_cap_t cap,
                                     capmem_obj_type_t type, unsigned rights, const char *func,
                                     capmem__slot_t **slot)
{
    capmem__cspace_t *cs = cspace(arena);
    uint32_t idx = capmem__cap_index(cap);
    capmem_err_t err;
    if (capmem__cap_tag(cap) != cs->tag) {
        /* Checked first: another arena's handle says nothing about our slots. */
        if (capmem__tag_live(capmem__cap_tag(cap))) {
            err = capmem__fail(CAPMEM_E_INVALID_CAP, func,
                               "capability 0x%016llx of another arena (arena tag %u, this arena's "
                               "is %u)",
                               (unsigned long long)cap, capmem__cap_tag(cap), cs->tag);
        } else {
            err = capmem__fail(CAPMEM_E_INVALID_CAP, func,
                               "forged capability 0x%016llx: no live arena has tag %u",
                               (unsigned long long)cap, capmem__cap_tag(cap));
        }
        capmem__detail()->address = cap;
        return err;
    }
    if (idx == 0 || idx >= cs->high) {
        err = capmem__fail(CAPMEM_E_INVALID_CAP, func,
                           "forged capability 0x%016llx: slot %u does not exist",
                           (unsigned long long)cap, idx);
        capmem__detail()->address = cap;
        return err;
    }
    capmem__slot_t *s = capmem__slot(cs, idx);
    if (s->type == CAPMEM_OBJ_NONE || capmem__cap_gen(cap) != (s->gen & CAPMEM__CAP_GEN_MASK)) {
        /* A generation from the slot's past is stale; any other is forged. */
        bool stale = capmem__cap_gen(cap) < (s->gen & CAPMEM__CAP_GEN_MASK);
        err = capmem__fail(CAPMEM_E_INVALID_CAP, func,
                           "%s capability 0x%016llx: slot %u is at generation %u, handle has %u",
                           stale ? "stale" : "forged", (unsigned long long)cap, idx,
                           s->gen & CAPMEM__CAP_GEN_MASK, capmem__cap_gen(cap));
        capmem__detail()->address = cap;
        return err;
    }
    if (capmem_cap_type(cap) != (capmem_obj_type_t)s->type) {
        err = capmem__fail(CAPMEM_E_INVALID_CAP, func,
                           "forged capability 0x%016llx: type bits say %s, slot holds %s",
                           (unsigned long long)cap, capmem_obj_type_name(capmem_cap_type(cap)),
                           capmem_obj_type_name((capmem_obj_type_t)s->type));
        capmem__detail()->address = cap;
        return err;
    }
    if (type != CAPMEM_OBJ_NONE && (capmem_obj_type_t)s->type != type) {
        err = capmem__fail(CAPMEM_E_WRONG_TYPE, func, "capability names a %s, a %s is needed",
                           capmem_obj_type_name((capmem_obj_type_t)s->type),
                           capmem_obj_type_name(type));
        capmem__detail()->address = cap;
        return err;
    }
    if ((rights & ~(unsigned)s->rights) != 0) {
        err =
            capmem__fail(CAPMEM_E_DENIED, func,
                         "capability has rights 0x%x, the operation needs 0x%x", s->rights, rights);
        capmem__detail()->address = cap;
        return err;
    }
    *slot = s;
    return CAPMEM_OK;
}

capmem_err_t capmem__cap_reserve_check(capmem_arena_t *arena, const capmem__cap_quota_t *quota,
                                       uint32_t count, const char *func)
{
    capmem__cspace_t *cs = cspace(arena);
    /* Untouched slots above the high-water mark; the free list is counted only if needed. */
    uint64_t free_slots = (uint64_t)(cs->capacity - cs->high);
    if (cs->free_head == 0 && free_slots < count) {
        return capmem__fail_space(CAPMEM_E_OUT_OF_CAPS, func, count, free_slots,
                                  "capability table full (%u slots)", cs->capacity);
    }
    if (cs->free_head != 0 && count > 1) {
        /* Count precisely only when it matters (multi-object retype). */
        uint64_t n = free_slots;
        for (uint32_t i = cs->free_head; i != 0 && n < count; i = cs->slots[i].next_sib) {
            n++;
        }
        if (n < count) {
            return capmem__fail_space(CAPMEM_E_OUT_OF_CAPS, func, count, n,
                                      "capability table full (%u slots)", cs->capacity);
        }
    }
    if (quota != NULL && (quota->used > quota->limit || quota->limit - quota->used < count)) {
        return capmem__fail_space(CAPMEM_E_OUT_OF_CAPS, func, count,
                                  quota->used > quota->limit ? 0 : quota->limit - quota->used,
                                  "capability quota exhausted (%llu of %llu used)",
                                  (unsigned long long)quota->used,
                                  (unsigned long long)quota->limit);
    }
    return CAPMEM_OK;
}

static void link_child(capmem__cspace_t *cs, uint32_t parent, uint32_t idx)
{
    capmem__slot_t *s = capmem__slot(cs, idx);
    s->parent = parent;
    s->next_sib = 0;
    if (parent == 0) {
        s->prev_sib = 0;
        return;
    }
    capmem__slot_t *p = capmem__slot(cs, parent);
    if (p->first_child == 0) {
        p->first_child = idx;
        s->prev_sib = idx; /* the first child's prev is the last child: itself */
        return;
    }
    capmem__slot_t *first = capmem__slot(cs, p->first_child);
    uint32_t last = first->prev_sib;
    capmem__slot(cs, last)->next_sib = idx;
    s->prev_sib = last;
    first->prev_sib = idx;
}

static void unlink_child(capmem__cspace_t *cs, uint32_t idx)
{
    capmem__slot_t *s = capmem__slot(cs, idx);
    if (s->parent == 0) {
        return;
    }
    capmem__slot_t *p = capmem__slot(cs, s->parent);
    capmem__slot_t *first = capmem__slot(cs, p->first_child);
    if (p->first_child == idx) {
        p->first_child = s->next_sib;
        if (s->next_sib != 0) {
            /* The new first child inherits the pointer to the last child. */
            capmem__slot(cs, s->next_sib)->prev_sib = s->prev_sib;
        }
    } else {
        capmem__slot(cs, s->prev_sib)->next_sib = s->next_sib;
        if (s->next_sib != 0) {
            capmem__slot(cs, s->next_sib)->prev_sib = s->prev_sib;
        } else {
            first->prev_sib = s->prev_sib; /* s was the last child */
        }
    }
    s->parent = s->next_sib = s->prev_sib = 0;
}

capmem_err_t capmem__cap_create(capmem_arena_t *arena, capmem__object_t *obj, unsigned rights,
                                uint16_t flags, uint32_t parent, capmem__cap_quota_t *quota,
                                const char *func, capmem_cap_t *out)
{
    return capmem__cap_create_typed(arena, obj->ops->type, obj, rights, flags, parent, quota, func,
                                    out);
}

capmem_err_t capmem__cap_create_typed(capmem_arena_t *arena, capmem_obj_type_t type, void *obj,
                                      unsigned rights, uint16_t flags, uint32_t parent,
                                      capmem__cap_quota_t *quota, const char *func,
                                      capmem_cap_t *out)
{
    capmem__cspace_t *cs = cspace(arena);
    capmem_err_t err = capmem__cap_reserve_check(arena, quota, 1, func);
    if (err != CAPMEM_OK) {
        return err;
    }
    uint32_t idx;
    if (cs->free_head != 0) {
        idx = cs->free_head;
        cs->free_head = cs->slots[idx].next_sib;
    } else {
        idx = cs->high++;
        cs->slots[idx].gen = 1; /* fresh slots start at generation 1 */
    }
    capmem__slot_t *s = capmem__slot(cs, idx);
    s->type = (uint8_t)type;
    s->rights = (uint8_t)rights;
    s->flags = flags;
    s->first_child = 0;
    s->obj = obj;
    s->quota = quota;
    link_child(cs, parent, idx);
    if (quota != NULL) {
        quota->used++;
    }
    cs->live++;
    *out = capmem__slot_handle(cs, idx);
    return CAPMEM_OK;
}

void capmem__cap_delete_leaf(capmem_arena_t *arena, uint32_t idx)
{
    capmem__cspace_t *cs = cspace(arena);
    capmem__slot_t *s = capmem__slot(cs, idx);
    CAPMEM_ASSERT(s->type != CAPMEM_OBJ_NONE, "only live slots are deleted");
    CAPMEM_ASSERT(s->first_child == 0, "callers revoke before deleting");
    capmem_cap_t handle = capmem__slot_handle(cs, idx);
    void *obj = s->obj;
    capmem_obj_type_t type = (capmem_obj_type_t)s->type;
    bool original = (s->flags & CAPMEM__SLOT_ORIGINAL) != 0;
    unlink_child(cs, idx);
    if (s->quota != NULL) {
        CAPMEM_ASSERT(s->quota->used > 0, "every charged slot was counted");
        s->quota->used--;
    }
    /*
     * Free the slot before the teardown runs, so the teardown sees a
     * consistent table; the object pointer was saved above.
     */
    s->type = CAPMEM_OBJ_NONE;
    s->rights = 0;
    s->flags = 0;
    s->obj = NULL;
    s->quota = NULL;
    s->gen = (s->gen + 1) & CAPMEM__CAP_GEN_MASK;
    if (s->gen != 0) {
        s->next_sib = cs->free_head;
        cs->free_head = idx;
    }
    /*
     * else: the generation would wrap, and an ancient handle could alias a
     * new object. The slot is retired instead (it costs 40 bytes forever).
     */
    cs->live--;
    /* The teardown may free obj: take what the event needs first. */
    const char *type_name = capmem__object_name(type, obj);
    if (original && obj != NULL) {
        arena->dying = handle;
        capmem__object_destroy(arena, type, obj);
    }
    if (capmem__events_on(arena)) {
        capmem__emitf(arena, CAPMEM_EVENT_CAP_DELETE, handle, 0, 0, "delete %s capability",
                      type_name);
    }
}

uint64_t capmem__cap_revoke_index(capmem_arena_t *arena, uint32_t root)
{
    capmem__cspace_t *cs = cspace(arena);
    uint64_t n = 0;
    uint32_t c = root;
    /*
     * Post-order without a stack: descend to a leaf, delete it, continue
     * from its parent. Each edge is descended once, so the whole revoke is
     * O(descendants) however deep or wide the tree is.
     */
    for (;;) {
        while (cs->slots[c].first_child != 0) {
            c = cs->slots[c].first_child;
        }
        if (c == root) {
            break;
        }
        uint32_t p = cs->slots[c].parent;
        capmem__cap_delete_leaf(arena, c);
        n++;
        c = p;
    }
    return n;
}

void capmem__cspace_teardown(capmem_arena_t *arena)
{
    capmem__cspace_t *cs = cspace(arena);
    for (uint32_t i = 1; i < cs->high; i++) {
        capmem__slot_t *s = capmem__slot(cs, i);
        if (s->type != CAPMEM_OBJ_NONE && s->parent == 0) {
            capmem__cap_revoke_index(arena, i);
            capmem__cap_delete_leaf(arena, i);
        }
    }
}

/* ---- user objects ------------------------------------------------------ */

static void user_destroy(capmem_arena_t *arena, capmem__object_t *obj)
{
    /*
     * The hook may call the library (it is the user's code): it runs after
     * the call, outside the lock, with the events (see machine.c).
     */
    capmem__defer_user_destroy(arena, (capmem__user_obj_t *)obj);
}

static const capmem__object_ops_t user_ops = {
    .type = CAPMEM_OBJ_USER,
    .name = "user object",
    .destroy = user_destroy,
};

capmem_err_t capmem_cap_create_user(capmem_arena_t *arena, const capmem_user_type_t *type,
                                    void *object, unsigned rights, capmem_cap_t *out)
{
    if (arena == NULL || type == NULL || out == NULL) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, __func__, "arena, type or out is NULL");
    }
    if ((rights & ~(unsigned)CAPMEM_RIGHTS_ALL) != 0) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, __func__, "unknown rights bits 0x%x", rights);
    }
    CAPMEM__ENTER_OR_RETURN(arena);
    capmem_err_t err = capmem__cap_reserve_check(arena, NULL, 1, __func__);
    if (err == CAPMEM_OK) {
        capmem__user_obj_t *u = capmem__malloc(sizeof(*u));
        if (u == NULL) {
            err = capmem__fail(CAPMEM_E_HOST_NOMEM, __func__, "no host memory for the record");
        } else {
            u->hdr.ops = &user_ops;
            u->utype = type;
            u->object = object;
            err = capmem__cap_create(arena, &u->hdr, rights, CAPMEM__SLOT_ORIGINAL, 0, NULL,
                                     __func__, out);
            CAPMEM_ASSERT(err == CAPMEM_OK, "the slot was reserved above");
        }
    }
    CAPMEM__LEAVE(arena);
    return err;
}

capmem_err_t capmem_cap_user_object(capmem_arena_t *arena, capmem_cap_t cap,
                                    const capmem_user_type_t *type, unsigned rights, void **object)
{
    if (arena == NULL || type == NULL || object == NULL) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, __func__, "arena, type or object is NULL");
    }
    CAPMEM__ENTER_OR_RETURN(arena);
    capmem__slot_t *s = NULL;
    capmem_err_t err = capmem__cap_lookup(arena, cap, CAPMEM_OBJ_USER, 0, __func__, &s);
    if (err == CAPMEM_OK) {
        const capmem__user_obj_t *u = s->obj;
        if (u->utype != type) {
            err =
                capmem__fail(CAPMEM_E_WRONG_TYPE, __func__,
                             "capability names a user object of type \"%s\", not \"%s\"",
                             u->utype->name ? u->utype->name : "?", type->name ? type->name : "?");
        } else if ((rights & ~(unsigned)s->rights) != 0) {
            err = capmem__fail(CAPMEM_E_DENIED, __func__,
                               "capability has rights 0x%x, the operation needs 0x%x", s->rights,
                               rights);
        } else {
            *object = u->object;
        }
    }
    CAPMEM__LEAVE(arena);
    return err;
}

/* ---- derivation -------------------------------------------------------- */

capmem_err_t capmem_cap_mint(capmem_arena_t *arena, capmem_cap_t src, unsigned rights,
                             capmem_cap_t *out)
{
    if (arena == NULL || out == NULL) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, __func__, "arena or out is NULL");
    }
    if ((rights & ~(unsigned)CAPMEM_RIGHTS_ALL) != 0) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, __func__, "unknown rights bits 0x%x", rights);
    }
    CAPMEM__ENTER_OR_RETURN(arena);
    capmem__slot_t *s = NULL;
    capmem_err_t err =
        capmem__cap_lookup(arena, src, CAPMEM_OBJ_NONE, CAPMEM_RIGHT_GRANT, __func__, &s);
    if (err == CAPMEM_OK && (rights & ~(unsigned)s->rights) != 0) {
        /* Rights never grow by derivation: asking for more is an error, not a mask. */
        err = capmem__fail(CAPMEM_E_DENIED, __func__,
                           "cannot derive rights 0x%x from a capability with rights 0x%x", rights,
                           s->rights);
    }
    if (err == CAPMEM_OK) {
        capmem__cspace_t *cs = cspace(arena);
        err = capmem__cap_create_typed(arena, (capmem_obj_type_t)s->type, s->obj, rights, 0,
                                       capmem__slot_index(cs, s), s->quota, __func__, out);
    }
    CAPMEM__LEAVE(arena);
    return err;
}

capmem_err_t capmem_cap_delete(capmem_arena_t *arena, capmem_cap_t cap)
{
    if (arena == NULL) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, __func__, "arena is NULL");
    }
    CAPMEM__ENTER_OR_RETURN(arena);
    capmem__slot_t *s = NULL;
    capmem_err_t err = capmem__cap_lookup(arena, cap, CAPMEM_OBJ_NONE, 0, __func__, &s);
    if (err == CAPMEM_OK && s->first_child != 0) {
        err = capmem__fail(CAPMEM_E_REVOKE_FIRST, __func__,
                           "%s capability has children: revoke it first",
                           capmem_obj_type_name((capmem_obj_type_t)s->type));
    }
    if (err == CAPMEM_OK) {
        capmem__cap_delete_leaf(arena, capmem__cap_index(cap));
    }
    CAPMEM__LEAVE(arena);
    return err;
}

capmem_err_t capmem_cap_revoke(capmem_arena_t *arena, capmem_cap_t cap)
{
    if (arena == NULL) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, __func__, "arena is NULL");
    }
    CAPMEM__ENTER_OR_RETURN(arena);
    capmem__slot_t *s = NULL;
    capmem_err_t err = capmem__cap_lookup(arena, cap, CAPMEM_OBJ_NONE, 0, __func__, &s);
    if (err == CAPMEM_OK) {
        uint64_t n = capmem__cap_revoke_index(arena, capmem__cap_index(cap));
        if (capmem__events_on(arena)) {
            capmem__emitf(arena, CAPMEM_EVENT_REVOKE, cap, n, 0,
                          "revoke: %llu capabilities deleted", (unsigned long long)n);
        }
    }
    CAPMEM__LEAVE(arena);
    return err;
}

/* ---- inspection -------------------------------------------------------- */

static void fill_info(capmem__cspace_t *cs, uint32_t idx, capmem_cap_info_t *info)
{
    const capmem__slot_t *s = capmem__slot(cs, idx);
    info->cap = capmem__slot_handle(cs, idx);
    info->type = (capmem_obj_type_t)s->type;
    info->rights = s->rights;
    info->original = (s->flags & CAPMEM__SLOT_ORIGINAL) != 0;
    info->parent = s->parent ? capmem__slot_handle(cs, s->parent) : CAPMEM_CAP_NULL;
    size_t n = 0;
    for (uint32_t c = s->first_child; c != 0; c = cs->slots[c].next_sib) {
        n++;
    }
    info->children = n;
    info->object_id = (uint64_t)(uintptr_t)s->obj;
}

capmem_err_t capmem_cap_identify(capmem_arena_t *arena, capmem_cap_t cap, capmem_cap_info_t *info)
{
    if (arena == NULL || info == NULL) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, __func__, "arena or info is NULL");
    }
    CAPMEM__ENTER_OR_RETURN(arena);
    capmem__slot_t *s = NULL;
    capmem_err_t err = capmem__cap_lookup(arena, cap, CAPMEM_OBJ_NONE, 0, __func__, &s);
    if (err == CAPMEM_OK) {
        fill_info(cspace(arena), capmem__cap_index(cap), info);
    }
    CAPMEM__LEAVE(arena);
    return err;
}

/* Pre-order walk of one subtree without recursion. Returns non-zero if stopped. */
static int walk_subtree(capmem__cspace_t *cs, uint32_t root, capmem_cap_visit_fn fn, void *ctx)
{
    capmem_cap_info_t info;
    fill_info(cs, root, &info);
    if (fn(&info, 0, ctx) != 0) {
        return 1;
    }
    uint32_t c = cs->slots[root].first_child;
    unsigned depth = 1;
    while (c != 0) {
        fill_info(cs, c, &info);
        if (fn(&info, depth, ctx) != 0) {
            return 1;
        }
        if (cs->slots[c].first_child != 0) {
            c = cs->slots[c].first_child;
            depth++;
            continue;
        }
        while (c != root && cs->slots[c].next_sib == 0) {
            c = cs->slots[c].parent;
            depth--;
        }
        if (c == root) {
            break;
        }
        c = cs->slots[c].next_sib;
    }
    return 0;
}

capmem_err_t capmem_cap_walk(capmem_arena_t *arena, capmem_cap_t root, capmem_cap_visit_fn fn,
                             void *ctx)
{
    if (arena == NULL || fn == NULL) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, __func__, "arena or fn is NULL");
    }
    CAPMEM__ENTER_OR_RETURN(arena);
    capmem__cspace_t *cs = cspace(arena);
    capmem_err_t err = CAPMEM_OK;
    if (root != CAPMEM_CAP_NULL) {
        capmem__slot_t *s = NULL;
        err = capmem__cap_lookup(arena, root, CAPMEM_OBJ_NONE, 0, __func__, &s);
        if (err == CAPMEM_OK) {
            walk_subtree(cs, capmem__cap_index(root), fn, ctx);
        }
    } else {
        for (uint32_t i = 1; i < cs->high; i++) {
            const capmem__slot_t *s = capmem__slot(cs, i);
            if (s->type != CAPMEM_OBJ_NONE && s->parent == 0 && walk_subtree(cs, i, fn, ctx) != 0) {
                break;
            }
        }
    }
    CAPMEM__LEAVE(arena);
    return err;
}

size_t capmem_cap_count(capmem_arena_t *arena)
{
    const char *prev;
    if (arena == NULL || capmem__enter(arena, __func__, &prev) != CAPMEM_OK) {
        return 0;
    }
    size_t n = (size_t)arena->cspace.live;
    capmem__leave(arena, prev);
    return n;
}

static capmem_err_t broken(char *why, size_t len, const char *fmt, uint32_t a, uint32_t b)
{
    if (why != NULL && len > 0) {
        snprintf(why, len, fmt, a, b);
    }
    return CAPMEM_E_CORRUPT;
}

/* Checks without locking; the public wrapper and the arena checker lock. */
static capmem_err_t cspace_check(capmem__cspace_t *cs, char *why, size_t len)
{
    uint64_t live = 0;
    uint64_t linked_children = 0;
    for (uint32_t i = 1; i < cs->high; i++) {
        const capmem__slot_t *s = capmem__slot(cs, i);
        if (s->type == CAPMEM_OBJ_NONE) {
            continue;
        }
        live++;
        if (s->type >= CAPMEM_OBJ_TYPE_COUNT || s->obj == NULL) {
            return broken(why, len, "slot %u: bad type %u or no object", i, s->type);
        }
        if ((s->rights & ~(unsigned)CAPMEM_RIGHTS_ALL) != 0) {
            return broken(why, len, "slot %u: unknown rights 0x%x", i, s->rights);
        }
        if (s->parent != 0) {
            if (s->parent >= cs->high || cs->slots[s->parent].type == CAPMEM_OBJ_NONE) {
                return broken(why, len, "slot %u: parent %u is not alive", i, s->parent);
            }
        }
        /* Walk the child list: links agree, every child names us as parent. */
        uint32_t prev = 0;
        uint32_t last = 0;
        for (uint32_t c = s->first_child; c != 0; c = cs->slots[c].next_sib) {
            if (c >= cs->high || cs->slots[c].type == CAPMEM_OBJ_NONE) {
                return broken(why, len, "slot %u: child %u is not alive", i, c);
            }
            if (cs->slots[c].parent != i) {
                return broken(why, len, "slot %u: child %u names another parent", i, c);
            }
            if (prev != 0 && cs->slots[c].prev_sib != prev) {
                return broken(why, len, "slot %u: prev link broken at child %u", i, c);
            }
            prev = c;
            last = c;
            if (++linked_children > cs->live) {
                return broken(why, len, "slot %u: child list longer than the table (%u)", i, c);
            }
        }
        if (s->first_child != 0 && cs->slots[s->first_child].prev_sib != last) {
            return broken(why, len, "slot %u: first child does not point to last %u", i, last);
        }
    }
    if (live != cs->live) {
        return broken(why, len, "live count %u does not match the table (%u)", (uint32_t)cs->live,
                      (uint32_t)live);
    }
    uint64_t roots = 0;
    for (uint32_t i = 1; i < cs->high; i++) {
        const capmem__slot_t *s = capmem__slot(cs, i);
        roots += s->type != CAPMEM_OBJ_NONE && s->parent == 0;
    }
    /*
     * Every live slot is either a root or in exactly one child list, so
     * linked children + roots == live; a cycle would show up as a node that
     * is in a list but unreachable, which makes the walk count below differ.
     */
    if (linked_children + roots != live) {
        return broken(why, len, "%u children + roots do not add up to %u live slots",
                      (uint32_t)(linked_children + roots), (uint32_t)live);
    }
    uint64_t reached = 0;
    for (uint32_t r = 1; r < cs->high; r++) {
        if (cs->slots[r].type == CAPMEM_OBJ_NONE || cs->slots[r].parent != 0) {
            continue;
        }
        reached++;
        uint32_t c = cs->slots[r].first_child;
        while (c != 0 && reached <= live) {
            reached++;
            if (cs->slots[c].first_child != 0) {
                c = cs->slots[c].first_child;
                continue;
            }
            while (c != r && cs->slots[c].next_sib == 0) {
                c = cs->slots[c].parent;
            }
            c = c == r ? 0 : cs->slots[c].next_sib;
        }
    }
    if (reached != live) {
        return broken(why, len, "%u slots reachable from roots, %u live (cycle?)",
                      (uint32_t)reached, (uint32_t)live);
    }
    uint64_t nfree = 0;
    for (uint32_t f = cs->free_head; f != 0; f = cs->slots[f].next_sib) {
        if (f >= cs->high || cs->slots[f].type != CAPMEM_OBJ_NONE) {
            return broken(why, len, "free list holds slot %u which is in use (%u)", f, 0);
        }
        if (++nfree > cs->high) {
            return broken(why, len, "free list has a cycle (%u, %u)", f, 0);
        }
    }
    if (nfree + live > (uint64_t)cs->high - 1) {
        return broken(why, len, "%u free + %u live exceed the slots in use", (uint32_t)nfree,
                      (uint32_t)live);
    }
    return CAPMEM_OK;
}

capmem_err_t capmem__cspace_check(capmem_arena_t *arena, char *why, size_t len)
{
    return cspace_check(cspace(arena), why, len);
}

capmem_err_t capmem_cap_check(capmem_arena_t *arena, char *why, size_t len)
{
    if (arena == NULL) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, __func__, "arena is NULL");
    }
    CAPMEM__ENTER_OR_RETURN(arena);
    capmem_err_t err = cspace_check(cspace(arena), why, len);
    CAPMEM__LEAVE(arena);
    return err;
}
