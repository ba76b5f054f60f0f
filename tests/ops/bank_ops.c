/* SPDX-License-Identifier: MIT */
/*
 * Layer 8 driven against a reference model: space banks and device
 * hot-plug. See bank_ops.h.
 */
#include "bank_ops.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PAGE 4096ull
#define MB 12 /* banks, the prime bank at 0 */
#define MO 48 /* objects */
#define MD 4  /* device ranges */

typedef struct mbank {
    int alive;
    int parent;
    uint64_t limit[2];
    capmem_cap_t cap;  /* the original: all rights */
    capmem_cap_t weak; /* a restricted copy, or 0 */
    unsigned weak_rights;
} mbank_t;

typedef struct mobj {
    int alive;
    int bank;
    int type;
    capmem_cap_t cap;
} mobj_t;

struct bank_ops {
    capmem_arena_t *arena;
    capmem_cap_t root;
    capmem_cap_t foreign; /* a RAM dataspace: not a bank's object */
    capmem_kernel_strategy_t strategy;
    mbank_t b[MB];
    mobj_t o[MO];
    uint32_t dev[MD];
    uint64_t ops;
    uint64_t refused;
    char why[320];
};

static int fail(bank_ops_t *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int fail(bank_ops_t *m, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(m->why, sizeof(m->why), fmt, ap);
    va_end(ap);
    return 1;
}

bank_ops_t *bank_ops_new(interp_src_t *src)
{
    bank_ops_t *m = calloc(1, sizeof(*m));
    if (m == NULL) {
        return NULL;
    }
    capmem_arena_attr_t at = CAPMEM_ARENA_ATTR_INIT;
    at.ram_size = 1024 * PAGE;
    at.device_window = 512 * PAGE;
    at.cap_slots = 4096;
    capmem_kernel_attr_t ka = CAPMEM_KERNEL_ATTR_INIT;
    m->strategy = (capmem_kernel_strategy_t)(1 + interp_take(src, 3));
    ka.strategy = m->strategy;
    ka.image_frames = 16;
    ka.device_frames = m->strategy == CAPMEM_KERNEL_FIXED    ? 96
                       : m->strategy == CAPMEM_KERNEL_HYBRID ? 32
                                                             : 512;
    capmem_bank_service_attr_t sa = CAPMEM_BANK_SERVICE_ATTR_INIT;
    sa.donation = 16 * 1024;
    sa.frames = 64;
    if (capmem_arena_create(&at, &m->arena) != CAPMEM_OK ||
        capmem_kernel_boot(m->arena, &ka) != CAPMEM_OK ||
        capmem_ram_boot(m->arena, NULL, &m->root) != CAPMEM_OK ||
        capmem_bank_service_create(m->arena, m->root, &sa, &m->b[0].cap) != CAPMEM_OK ||
        capmem_ram_alloc(m->arena, m->root, PAGE, &m->foreign) != CAPMEM_OK ||
        (m->strategy == CAPMEM_KERNEL_CONSERVATIVE &&
         capmem_kernel_end_boot(m->arena, 128) != CAPMEM_OK)) {
        bank_ops_free(m);
        return NULL;
    }
    m->b[0].alive = 1;
    m->b[0].parent = -1;
    capmem_bank_info_t bi;
    if (capmem_bank_info(m->arena, m->b[0].cap, &bi) != CAPMEM_OK) {
        bank_ops_free(m);
        return NULL;
    }
    m->b[0].limit[0] = bi.limit[0];
    m->b[0].limit[1] = bi.limit[1];
    return m;
}

void bank_ops_free(bank_ops_t *m)
{
    if (m != NULL) {
        capmem_arena_destroy(m->arena);
        free(m);
    }
}

const char *bank_ops_why(const bank_ops_t *m)
{
    return m->why;
}

uint64_t bank_ops_count(const bank_ops_t *m)
{
    return m->ops;
}

uint64_t bank_ops_refused(const bank_ops_t *m)
{
    return m->refused;
}

/* ---- the model ---------------------------------------------------------------------- */

static uint64_t borrowed(const bank_ops_t *m)
{
    capmem_kernel_info_t k;
    return capmem_kernel_info(m->arena, &k) == CAPMEM_OK ? k.borrowed_frames : 0;
}

static uint64_t used(const bank_ops_t *m, int i, int t)
{
    uint64_t n = 0;
    for (int k = 0; k < MO; k++) {
        n += m->o[k].alive && m->o[k].bank == i && m->o[k].type == t;
    }
    for (int c = 0; c < MB; c++) {
        if (m->b[c].alive && m->b[c].parent == i) {
            n += used(m, c, t) + (t == CAPMEM_BANK_NODE);
        }
    }
    if (i == 0 && m->strategy == CAPMEM_KERNEL_HYBRID) {
        n += t == CAPMEM_BANK_NODE ? 1 : borrowed(m); /* the kernel's bank */
    }
    return n;
}

/* LIMIT_REACHED unless bank i and its ancestors take n[t] more. */
static capmem_err_t can_charge(const bank_ops_t *m, int i, const uint64_t n[2])
{
    for (int a = i; a >= 0; a = m->b[a].parent) {
        for (int t = 0; t < 2; t++) {
            if (n[t] > 0 && used(m, a, t) + n[t] > m->b[a].limit[t]) {
                return CAPMEM_E_LIMIT_REACHED;
            }
        }
    }
    return CAPMEM_OK;
}

/* A bank handle to use: the original, a restricted copy, or a dead one; its rights. */
static int pick_bank(bank_ops_t *m, interp_src_t *src, capmem_cap_t *cap, unsigned *rights)
{
    int i = (int)interp_take(src, MB);
    if (interp_take(src, 4) != 0) {
        /* Mostly a live bank: the i-th one alive, counting round. */
        int alive[MB];
        int n = 0;
        for (int k = 0; k < MB; k++) {
            if (m->b[k].alive) {
                alive[n++] = k;
            }
        }
        i = alive[i % n];
    }
    const int weak = interp_take(src, 3) == 0 && m->b[i].weak != 0;
    *cap = weak ? m->b[i].weak : m->b[i].cap;
    *rights = weak ? m->b[i].weak_rights : CAPMEM_BANK_RIGHTS_ALL;
    return i;
}

/* The error a lookup of bank i with @p need predicts. */
static capmem_err_t lookup(const bank_ops_t *m, int i, capmem_cap_t cap, unsigned rights,
                           unsigned need)
{
    if (cap == 0 || !m->b[i].alive) {
        return CAPMEM_E_INVALID_CAP;
    }
    return (rights & need) == need ? CAPMEM_OK : CAPMEM_E_DENIED;
}

static int free_slot_bank(const bank_ops_t *m)
{
    for (int i = 1; i < MB; i++) {
        if (!m->b[i].alive) {
            return i;
        }
    }
    return -1;
}

/* Bank i and its subtree die (destroy): objects too. */
static void kill_bank(bank_ops_t *m, int i)
{
    for (int c = 0; c < MB; c++) {
        if (m->b[c].alive && m->b[c].parent == i) {
            kill_bank(m, c);
        }
    }
    for (int k = 0; k < MO; k++) {
        if (m->o[k].alive && m->o[k].bank == i) {
            m->o[k].alive = 0;
        }
    }
    m->b[i].alive = 0;
    m->b[i].weak = 0;
}

static int compare(bank_ops_t *m, capmem_err_t got, capmem_err_t want, const char *op)
{
    m->ops++;
    if (got != want) {
        return fail(m, "%s: returned %s (%s), the model expected %s", op, capmem_err_name(got),
                    got != CAPMEM_OK ? capmem_last_error()->message : "", capmem_err_name(want));
    }
    m->refused += got != CAPMEM_OK;
    return 0;
}

/* ---- the operations ------------------------------------------------------------------ */

static int op_create(bank_ops_t *m, interp_src_t *src)
{
    capmem_cap_t cap;
    unsigned rights;
    const int p = pick_bank(m, src, &cap, &rights);
    const int c = free_slot_bank(m);
    if (c < 0) {
        return 0;
    }
    capmem_bank_limits_t l = {
        .limit = {interp_take(src, 2) ? CAPMEM_BANK_UNLIMITED : interp_take(src, 24),
                  interp_take(src, 2) ? CAPMEM_BANK_UNLIMITED : interp_take(src, 6)}};
    capmem_err_t want = lookup(m, p, cap, rights, CAPMEM_BANK_RIGHT_ALLOC);
    const uint64_t n[2] = {0, 1};
    if (want == CAPMEM_OK) {
        want = can_charge(m, p, n);
    }
    capmem_cap_t out = 0;
    capmem_err_t got = capmem_bank_create(m->arena, cap, &l, &out);
    if (got == CAPMEM_OK) {
        m->b[c] = (mbank_t){.alive = 1, .parent = p, .limit = {l.limit[0], l.limit[1]}, .cap = out};
    }
    return compare(m, got, want, "bank_create");
}

static int op_alloc(bank_ops_t *m, interp_src_t *src)
{
    capmem_cap_t cap;
    unsigned rights;
    const int i = pick_bank(m, src, &cap, &rights);
    const uint64_t c8 = interp_take(src, 8);
    const size_t count = c8 == 0 ? 0 : c8 == 7 ? 4 : (size_t)((c8 - 1) % 3 + 1); /* 0, 4 refused */
    capmem_bank_type_t types[4];
    uint64_t n[2] = {0, 0};
    for (size_t k = 0; k < 4; k++) {
        types[k] = (capmem_bank_type_t)interp_take(src, 2);
        n[types[k]] += k < count;
    }
    int slots[3];
    int free_objs = 0;
    for (int k = 0; k < MO && free_objs < 3; k++) {
        if (!m->o[k].alive) {
            slots[free_objs++] = k;
        }
    }
    if (free_objs < 3) {
        return 0;
    }
    capmem_err_t want = count < 1 || count > 3 ? CAPMEM_E_RANGE : CAPMEM_OK;
    if (want == CAPMEM_OK) {
        want = lookup(m, i, cap, rights, CAPMEM_BANK_RIGHT_ALLOC);
    }
    if (want == CAPMEM_OK) {
        want = can_charge(m, i, n);
    }
    capmem_cap_t out[4] = {0};
    capmem_err_t got = capmem_bank_alloc(m->arena, cap, types, count, out);
    for (size_t k = 0; got == CAPMEM_OK && k < count; k++) {
        m->o[slots[k]] = (mobj_t){.alive = 1, .bank = i, .type = (int)types[k], .cap = out[k]};
    }
    return compare(m, got, want, "bank_alloc");
}

static int op_free(bank_ops_t *m, interp_src_t *src)
{
    capmem_cap_t cap;
    unsigned rights;
    const int i = pick_bank(m, src, &cap, &rights);
    const size_t count = (size_t)interp_take(src, 4); /* 0 is refused */
    capmem_cap_t objs[3] = {0};
    int idx[3] = {-1, -1, -1};
    for (size_t k = 0; k < count; k++) {
        if (interp_take(src, 8) == 0) {
            objs[k] = m->foreign;
        } else {
            idx[k] = (int)interp_take(src, MO);
            for (int t = 0; t < MO && interp_take(src, 4) != 0; t++) {
                /* Mostly one of the bank's own. */
                const int c = (idx[k] + t) % MO;
                if (m->o[c].alive && m->o[c].bank == i) {
                    idx[k] = c;
                    break;
                }
            }
            objs[k] = m->o[idx[k]].cap;
        }
    }
    capmem_err_t want =
        count < 1 ? CAPMEM_E_RANGE : lookup(m, i, cap, rights, CAPMEM_BANK_RIGHT_FREE);
    for (size_t k = 0; want == CAPMEM_OK && k < count; k++) {
        if (idx[k] < 0) {
            want = CAPMEM_E_WRONG_TYPE;
        } else if (!m->o[idx[k]].alive) {
            want = CAPMEM_E_INVALID_CAP;
        } else if (m->o[idx[k]].bank != i) {
            want = CAPMEM_E_DENIED;
        }
        for (size_t j = 0; want == CAPMEM_OK && j < k; j++) {
            if (idx[j] == idx[k]) {
                want = CAPMEM_E_INVALID_ARGS;
            }
        }
    }
    capmem_err_t got = capmem_bank_free(m->arena, cap, objs, count);
    for (size_t k = 0; got == CAPMEM_OK && k < count; k++) {
        m->o[idx[k]].alive = 0;
    }
    return compare(m, got, want, "bank_free");
}

static int op_destroy_or_remove(bank_ops_t *m, interp_src_t *src, int remove)
{
    capmem_cap_t cap;
    unsigned rights;
    const int i = pick_bank(m, src, &cap, &rights);
    capmem_err_t want =
        lookup(m, i, cap, rights, remove ? CAPMEM_BANK_RIGHT_REMOVE : CAPMEM_BANK_RIGHT_DESTROY);
    if (want == CAPMEM_OK && i == 0) {
        want = CAPMEM_E_DENIED;
    }
    capmem_err_t got =
        remove ? capmem_bank_remove(m->arena, cap) : capmem_bank_destroy(m->arena, cap);
    if (got == CAPMEM_OK && remove) {
        const int p = m->b[i].parent;
        for (int k = 0; k < MO; k++) {
            if (m->o[k].alive && m->o[k].bank == i) {
                m->o[k].bank = p;
            }
        }
        for (int c = 0; c < MB; c++) {
            if (m->b[c].alive && m->b[c].parent == i) {
                m->b[c].parent = p;
            }
        }
        m->b[i].alive = 0;
        m->b[i].weak = 0;
    } else if (got == CAPMEM_OK) {
        kill_bank(m, i);
    }
    return compare(m, got, want, remove ? "bank_remove" : "bank_destroy");
}

static int op_limits(bank_ops_t *m, interp_src_t *src)
{
    capmem_cap_t cap;
    unsigned rights;
    const int i = pick_bank(m, src, &cap, &rights);
    capmem_bank_limits_t l = {.limit = {interp_take(src, 24), interp_take(src, 8)}};
    capmem_err_t want = lookup(m, i, cap, rights, CAPMEM_BANK_RIGHT_LIMITS);
    if (want == CAPMEM_OK && i == 0) {
        want = CAPMEM_E_DENIED;
    }
    for (int t = 0; want == CAPMEM_OK && t < 2; t++) {
        if (l.limit[t] < used(m, i, t)) {
            want = CAPMEM_E_RANGE;
        }
    }
    capmem_err_t got = capmem_bank_set_limits(m->arena, cap, &l);
    if (got == CAPMEM_OK) {
        m->b[i].limit[0] = l.limit[0];
        m->b[i].limit[1] = l.limit[1];
    }
    return compare(m, got, want, "bank_set_limits");
}

static int op_restrict(bank_ops_t *m, interp_src_t *src)
{
    const int i = (int)interp_take(src, MB);
    static const unsigned bits[6] = {CAPMEM_BANK_NO_ALLOC,         CAPMEM_BANK_NO_FREE,
                                     CAPMEM_BANK_NO_DESTROY,       CAPMEM_BANK_NO_QUERY_LIMITS,
                                     CAPMEM_BANK_NO_CHANGE_LIMITS, CAPMEM_BANK_NO_REMOVE};
    const unsigned r = bits[interp_take(src, 6)] | bits[interp_take(src, 6)];
    capmem_err_t want = m->b[i].alive && m->b[i].cap != 0 ? CAPMEM_OK : CAPMEM_E_INVALID_CAP;
    capmem_cap_t out = 0;
    capmem_err_t got = capmem_bank_restrict(m->arena, m->b[i].cap, r, &out);
    if (got == CAPMEM_OK) {
        m->b[i].weak = out;
        m->b[i].weak_rights = CAPMEM_BANK_RIGHTS_ALL & ~r;
    }
    return compare(m, got, want, "bank_restrict");
}

static int op_device(bank_ops_t *m, interp_src_t *src)
{
    const int d = (int)interp_take(src, MD);
    capmem_kernel_info_t before;
    if (capmem_kernel_info(m->arena, &before) != CAPMEM_OK) {
        return fail(m, "kernel_info failed");
    }
    size_t ndev = 0;
    if (capmem_arena_devices(m->arena, NULL, 0, &ndev) != CAPMEM_OK) {
        return fail(m, "arena_devices failed");
    }
    if (m->dev[d] != 0) {
        capmem_err_t got = capmem_arena_device_remove(m->arena, m->dev[d]);
        m->dev[d] = 0;
        return compare(m, got, CAPMEM_OK, "device_remove");
    }
    const uint64_t frames = 16 * (1 + interp_take(src, 5));
    capmem_device_info_t info;
    capmem_err_t got = capmem_arena_device_add(
        m->arena, 0x100000000ull + (uint64_t)d * 0x10000000ull, frames * PAGE, &info);
    capmem_err_t want = before.device_reserve >= frames ? CAPMEM_OK : CAPMEM_E_OUT_OF_METADATA;
    if (got == CAPMEM_E_NOT_ENOUGH_MEMORY ||
        (m->strategy == CAPMEM_KERNEL_HYBRID && want != CAPMEM_OK)) {
        want = got; /* the window's fragmentation, or whether the banks can lend */
    }
    if (got == CAPMEM_OK) {
        m->dev[d] = info.id;
    } else {
        size_t after = 0;
        capmem_kernel_info_t k;
        if (capmem_arena_devices(m->arena, NULL, 0, &after) != CAPMEM_OK || after != ndev ||
            capmem_kernel_info(m->arena, &k) != CAPMEM_OK ||
            k.records_used != before.records_used || k.heap_frames != before.heap_frames) {
            return fail(m, "a refused device add changed the devices or the heap");
        }
    }
    return compare(m, got, want, "device_add");
}

/* Free an object by deleting its original capability: its bank's usage falls as by a free. */
static int op_delete(bank_ops_t *m, interp_src_t *src)
{
    const int k = (int)interp_take(src, MO);
    if (!m->o[k].alive) {
        return 0;
    }
    capmem_err_t got = capmem_cap_delete(m->arena, m->o[k].cap);
    if (got == CAPMEM_OK) {
        m->o[k].alive = 0;
    }
    return compare(m, got, CAPMEM_OK, "cap_delete(object)");
}

int bank_ops_step(bank_ops_t *m, interp_src_t *src)
{
    int rc = 0;
    switch (interp_take(src, 11)) {
    case 0:
        rc = op_create(m, src);
        break;
    case 1:
    case 2:
        rc = op_alloc(m, src);
        break;
    case 3:
        rc = op_free(m, src);
        break;
    case 4:
        rc = op_destroy_or_remove(m, src, 0);
        break;
    case 5:
        rc = op_destroy_or_remove(m, src, 1);
        break;
    case 6:
        rc = op_limits(m, src);
        break;
    case 7:
        rc = op_restrict(m, src);
        break;
    case 8:
    case 9:
        rc = op_device(m, src);
        break;
    default:
        rc = op_delete(m, src);
        break;
    }
    if (rc != 0) {
        return rc;
    }
    for (int i = 0; i < MB; i++) {
        if (!m->b[i].alive) {
            continue;
        }
        capmem_bank_info_t bi;
        if (capmem_bank_info(m->arena, m->b[i].cap, &bi) != CAPMEM_OK) {
            return fail(m, "bank %d: info refused: %s", i, capmem_last_error()->message);
        }
        for (int t = 0; t < 2; t++) {
            if (bi.used[t] != used(m, i, t) || bi.limit[t] != m->b[i].limit[t]) {
                return fail(
                    m, "bank %d: usage %llu limit %llu of type %d, the model has %llu, %llu", i,
                    (unsigned long long)bi.used[t], (unsigned long long)bi.limit[t], t,
                    (unsigned long long)used(m, i, t), (unsigned long long)m->b[i].limit[t]);
            }
        }
    }
    char why[256];
    if (capmem_check(m->arena, why, sizeof(why)) != CAPMEM_OK) {
        return fail(m, "capmem_check: %s", why);
    }
    return 0;
}
