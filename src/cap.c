/* SPDX-License-Identifier: MIT */
/*
 * Layer 3: capabilities. Handles are looked up with an error that says
 * exactly what is wrong with them, created for objects and charged to a
 * capability quota, derived (mint), deleted and revoked, inspected; user
 * object types. The table itself is cspace.c; deletion dispatches through
 * the machine's type registry (machine.c).
 */
#include <stdio.h>
#include <string.h>

#include "cap_internal.h"

/* ---- table ------------------------------------------------------------- */

capmem_err_t capmem__cap_lookup_slow(capmem_arena_t *arena, capmem_cap_t cap,
                                     capmem_obj_type_t type, unsigned rights, capmem__slot_t **slot)
{
    capmem__cspace_t *cs = &arena->cspace;
    uint32_t idx = capmem__cap_index(cap);
    capmem_err_t err;
    if (capmem__cap_tag(cap) != cs->tag) {
        /* Checked first: another arena's handle says nothing about our slots. */
        if (capmem__tag_live(capmem__cap_tag(cap))) {
            err = capmem__fail(CAPMEM_E_INVALID_CAP, NULL,
                               "capability 0x%016llx of another arena (arena tag %u, this arena's "
                               "is %u)",
                               (unsigned long long)cap, capmem__cap_tag(cap), cs->tag);
        } else {
            err = capmem__fail(CAPMEM_E_INVALID_CAP, NULL,
                               "forged capability 0x%016llx: no live arena has tag %u",
                               (unsigned long long)cap, capmem__cap_tag(cap));
        }
        capmem__detail()->address = cap;
        return err;
    }
    if (idx == 0 || idx >= cs->high) {
        err = capmem__fail(CAPMEM_E_INVALID_CAP, NULL,
                           "forged capability 0x%016llx: slot %u does not exist",
                           (unsigned long long)cap, idx);
        capmem__detail()->address = cap;
        return err;
    }
    capmem__slot_t *s = capmem__slot(cs, idx);
    if (s->type == CAPMEM_OBJ_NONE || capmem__cap_gen(cap) != (s->gen & CAPMEM__CAP_GEN_MASK)) {
        /* A generation from the slot's past is stale; any other is forged. */
        bool stale = capmem__cap_gen(cap) < (s->gen & CAPMEM__CAP_GEN_MASK);
        err = capmem__fail(CAPMEM_E_INVALID_CAP, NULL,
                           "%s capability 0x%016llx: slot %u is at generation %u, handle has %u",
                           stale ? "stale" : "forged", (unsigned long long)cap, idx,
                           s->gen & CAPMEM__CAP_GEN_MASK, capmem__cap_gen(cap));
        capmem__detail()->address = cap;
        return err;
    }
    if (capmem_cap_type(cap) != (capmem_obj_type_t)s->type) {
        err = capmem__fail(CAPMEM_E_INVALID_CAP, NULL,
                           "forged capability 0x%016llx: type bits say %s, slot holds %s",
                           (unsigned long long)cap, capmem_obj_type_name(capmem_cap_type(cap)),
                           capmem_obj_type_name((capmem_obj_type_t)s->type));
        capmem__detail()->address = cap;
        return err;
    }
    if (type != CAPMEM_OBJ_NONE && (capmem_obj_type_t)s->type != type) {
        err = capmem__fail(CAPMEM_E_WRONG_TYPE, NULL, "capability names a %s, a %s is needed",
                           capmem_obj_type_name((capmem_obj_type_t)s->type),
                           capmem_obj_type_name(type));
        capmem__detail()->address = cap;
        return err;
    }
    if ((rights & ~(unsigned)s->rights) != 0) {
        err =
            capmem__fail(CAPMEM_E_DENIED, NULL,
                         "capability has rights 0x%x, the operation needs 0x%x", s->rights, rights);
        capmem__detail()->address = cap;
        return err;
    }
    *slot = s;
    return CAPMEM_OK;
}

capmem_err_t capmem__cap_require_original(const capmem__slot_t *s, const char *verb,
                                          const char *what)
{
    if (s->flags & CAPMEM__SLOT_ORIGINAL) {
        return CAPMEM_OK;
    }
    return capmem__fail(CAPMEM_E_INVALID_ARGS, NULL,
                        "%s needs the %s's original capability, not a copy", verb, what);
}

capmem_err_t capmem__cap_reserve_check(capmem_arena_t *arena, const capmem__quota_t *quota,
                                       uint32_t count)
{
    const capmem__cspace_t *cs = &arena->cspace;
    const uint64_t free_slots = capmem__cspace_free_slots(cs, count);
    if (free_slots < count) {
        return capmem__fail_space(CAPMEM_E_OUT_OF_CAPS, NULL, count, free_slots,
                                  "capability table full (%u slots)", cs->capacity);
    }
    if (quota != NULL && !capmem__quota_can(quota, count)) {
        return capmem__fail_space(CAPMEM_E_OUT_OF_CAPS, NULL, count, capmem__quota_avail(quota),
                                  "capability quota exhausted (%llu of %llu used)",
                                  (unsigned long long)quota->used,
                                  (unsigned long long)quota->limit);
    }
    return CAPMEM_OK;
}

capmem_cap_t capmem__cap_create(capmem_arena_t *arena, capmem_obj_type_t type, void *obj,
                                unsigned rights, uint16_t flags, uint32_t parent,
                                capmem__quota_t *quota)
{
    capmem__cspace_t *cs = &arena->cspace;
    CAPMEM_ASSERT(arena->types[type] != NULL, "a type's layer registers it before making objects");
    const uint32_t idx = capmem__cspace_take(cs, parent);
    capmem__slot_t *s = capmem__slot(cs, idx);
    s->type = (uint8_t)type;
    s->rights = (uint8_t)rights;
    s->flags = flags;
    s->obj = obj;
    s->quota = quota;
    if (quota != NULL) {
        capmem__quota_withdraw(quota, 1);
    }
    capmem__stat_add(&arena->stats.caps, 1);
    return capmem__slot_handle(cs, idx);
}

/* ---- user objects ------------------------------------------------------ */

/*
 * A user object's host record. When its original capability dies the
 * record is queued (node), and the type's destroy hook runs after the
 * call, outside the lock, like an event: it is the user's code, and may
 * call the library.
 */
typedef struct user_obj {
    capmem__deferred_t node;
    const capmem_user_type_t *utype;
    void *object;
} user_obj_t;

static void user_run_destroy(capmem__deferred_t *d)
{
    user_obj_t *u = (user_obj_t *)d;
    if (u->utype->destroy != NULL) {
        u->utype->destroy(u->object, u->utype->ctx);
    }
    capmem__free(u);
}

static void user_destroy(capmem_arena_t *arena, void *obj, capmem_cap_t handle)
{
    (void)handle;
    user_obj_t *u = obj;
    u->node.run = user_run_destroy;
    capmem__defer(arena, &u->node);
}

static const char *user_name(const void *obj)
{
    const user_obj_t *u = obj;
    return u->utype->name != NULL ? u->utype->name : "user object";
}

static int user_describe(capmem_arena_t *arena, const void *obj, char *buf, size_t len)
{
    (void)arena;
    const user_obj_t *u = obj;
    return snprintf(buf, len, "user object of type \"%s\" at %p", user_name(obj), u->object);
}

static const capmem__type_ops_t user_type = {
    .type = CAPMEM_OBJ_USER,
    .name = "user object",
    .destroy = user_destroy,
    .name_of = user_name,
    .describe = user_describe,
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
    user_obj_t *u = NULL;
    capmem_err_t err = capmem__cap_reserve_check(arena, NULL, 1);
    if (err == CAPMEM_OK) {
        u = capmem__malloc(sizeof(*u));
        if (u == NULL) {
            err = capmem__fail(CAPMEM_E_HOST_NOMEM, NULL, "no host memory for the record");
        }
    }
    if (err == CAPMEM_OK) {
        capmem__type_register(arena, &user_type);
        u->utype = type;
        u->object = object;
        *out =
            capmem__cap_create(arena, CAPMEM_OBJ_USER, u, rights, CAPMEM__SLOT_ORIGINAL, 0, NULL);
        if (capmem__event_wanted(arena, CAPMEM_EVENT_USER_NEW)) {
            capmem__emit(arena,
                         &(capmem__ev_t){.kind = CAPMEM_EVENT_USER_NEW, .cap = *out, .a = rights},
                         "user object of type \"%s\"", type->name != NULL ? type->name : "");
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
    capmem_err_t err = capmem__cap_lookup(arena, cap, CAPMEM_OBJ_USER, 0, &s);
    if (err == CAPMEM_OK) {
        const user_obj_t *u = s->obj;
        if (u->utype != type) {
            err =
                capmem__fail(CAPMEM_E_WRONG_TYPE, NULL,
                             "capability names a user object of type \"%s\", not \"%s\"",
                             u->utype->name ? u->utype->name : "?", type->name ? type->name : "?");
        } else if ((rights & ~(unsigned)s->rights) != 0) {
            err = capmem__fail(CAPMEM_E_DENIED, NULL,
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
    if ((rights & ~(unsigned)(CAPMEM_RIGHTS_ALL | CAPMEM_RIGHTS_TYPE)) != 0) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, __func__, "unknown rights bits 0x%x", rights);
    }
    CAPMEM__ENTER_OR_RETURN(arena);
    capmem__slot_t *s = NULL;
    capmem_err_t err = capmem__cap_lookup(arena, src, CAPMEM_OBJ_NONE, CAPMEM_RIGHT_GRANT, &s);
    if (err == CAPMEM_OK && (rights & ~(unsigned)s->rights) != 0) {
        /* Rights never grow by derivation: asking for more is an error, not a mask. */
        err = capmem__fail(CAPMEM_E_DENIED, NULL,
                           "cannot derive rights 0x%x from a capability with rights 0x%x", rights,
                           s->rights);
    }
    if (err == CAPMEM_OK) {
        /* A copy is charged to whoever paid for its parent. */
        err = capmem__cap_reserve_check(arena, s->quota, 1);
    }
    if (err == CAPMEM_OK) {
        capmem__cspace_t *cs = &arena->cspace;
        *out = capmem__cap_create(arena, (capmem_obj_type_t)s->type, s->obj, rights, 0,
                                  capmem__slot_index(cs, s), s->quota);
        if (capmem__event_wanted(arena, CAPMEM_EVENT_MINT)) {
            capmem__emit(
                arena,
                &(capmem__ev_t){.kind = CAPMEM_EVENT_MINT, .cap = *out, .other = src, .a = rights},
                "mint a %s capability with rights 0x%x",
                capmem__object_name(arena, (capmem_obj_type_t)s->type, s->obj), rights);
        }
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
    capmem_err_t err = capmem__cap_lookup(arena, cap, CAPMEM_OBJ_NONE, 0, &s);
    if (err == CAPMEM_OK && s->first_child != 0) {
        err =
            capmem__fail(CAPMEM_E_REVOKE_FIRST, NULL, "%s capability has children: revoke it first",
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
    capmem_err_t err = capmem__cap_lookup(arena, cap, CAPMEM_OBJ_NONE, 0, &s);
    if (err == CAPMEM_OK) {
        uint64_t n = capmem__cap_revoke_index(arena, capmem__cap_index(cap));
        arena->stats.revokes++;
        if (capmem__events_on(arena)) {
            capmem__emitf(arena, CAPMEM_EVENT_REVOKE, cap, n, 0,
                          "revoke: %llu capabilities deleted", (unsigned long long)n);
        }
    }
    CAPMEM__LEAVE(arena);
    return err;
}

/* ---- inspection -------------------------------------------------------- */

static void fill_info(const capmem_arena_t *arena, uint32_t idx, capmem_cap_info_t *info)
{
    const capmem__cspace_t *cs = &arena->cspace;
    const capmem__slot_t *s = &cs->slots[idx];
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
    info->name = capmem__object_name(arena, info->type, s->obj);
}

capmem_err_t capmem_cap_identify(capmem_arena_t *arena, capmem_cap_t cap, capmem_cap_info_t *info)
{
    if (arena == NULL || info == NULL) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, __func__, "arena or info is NULL");
    }
    CAPMEM__ENTER_OR_RETURN(arena);
    capmem__slot_t *s = NULL;
    capmem_err_t err = capmem__cap_lookup(arena, cap, CAPMEM_OBJ_NONE, 0, &s);
    if (err == CAPMEM_OK) {
        fill_info(arena, capmem__cap_index(cap), info);
    }
    CAPMEM__LEAVE(arena);
    return err;
}

/* Pre-order walk of one subtree without recursion. Returns non-zero if stopped. */
static int walk_subtree(const capmem_arena_t *arena, uint32_t root, capmem_cap_visit_fn fn,
                        void *ctx)
{
    const capmem__cspace_t *cs = &arena->cspace;
    capmem_cap_info_t info;
    fill_info(arena, root, &info);
    if (fn(&info, 0, ctx) != 0) {
        return 1;
    }
    uint32_t c = cs->slots[root].first_child;
    unsigned depth = 1;
    while (c != 0) {
        fill_info(arena, c, &info);
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
    capmem__cspace_t *cs = &arena->cspace;
    capmem_err_t err = CAPMEM_OK;
    if (root != CAPMEM_CAP_NULL) {
        capmem__slot_t *s = NULL;
        err = capmem__cap_lookup(arena, root, CAPMEM_OBJ_NONE, 0, &s);
        if (err == CAPMEM_OK) {
            walk_subtree(arena, capmem__cap_index(root), fn, ctx);
        }
    } else {
        for (uint32_t i = 1; i < cs->high; i++) {
            const capmem__slot_t *s = capmem__slot(cs, i);
            if (s->type != CAPMEM_OBJ_NONE && s->parent == 0 &&
                walk_subtree(arena, i, fn, ctx) != 0) {
                break;
            }
        }
    }
    CAPMEM__LEAVE(arena);
    return err;
}

size_t capmem_cap_count(capmem_arena_t *arena)
{
    const char *prev = NULL;
    if (arena == NULL || capmem__enter(arena, __func__, &prev) != CAPMEM_OK) {
        return 0;
    }
    size_t n = (size_t)arena->cspace.live;
    capmem__leave(arena, prev);
    return n;
}

capmem_err_t capmem_cap_check(capmem_arena_t *arena, char *why, size_t len)
{
    if (arena == NULL) {
        return capmem__fail(CAPMEM_E_INVALID_ARGS, __func__, "arena is NULL");
    }
    CAPMEM__ENTER_OR_RETURN(arena);
    capmem_err_t err = capmem__cspace_check(&arena->cspace, why, len);
    CAPMEM__LEAVE(arena);
    return err;
}
