/* SPDX-License-Identifier: MIT */
/*
 * The type registry (cspace_internal.h: capmem__type_ops_t, registered per
 * arena in arena->types): each object type's describe hook gives one line
 * that names what matters about an object, and capmem__object_name gives
 * its type's name, or a user type's own. The numbers in each line are
 * checked against the public *_info call of the same object, so a line that
 * drifts from what the library reports elsewhere fails here.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cap_internal.h"
#include "first_fit.h"
#include "machine_internal.h"
#include "ram_internal.h"
#include "rm_internal.h"
#include "support.h"
#include "untyped_internal.h"

typedef test_boot_world_t fixture_t;

static fixture_t fx;

static int setup(void **state)
{
    test_boot_world_open(&fx, 1u << 16, "described");
    *state = &fx;
    return 0;
}

static int teardown(void **state)
{
    test_boot_world_close(*state);
    return 0;
}

static capmem__slot_t *slot_of(capmem_arena_t *a, capmem_cap_t c)
{
    return &a->cspace.slots[capmem__cap_index(c)];
}

/*
 * The registered describe hook's line for the object @p c names, in @p buf.
 * The hook returns snprintf's count: the whole line's length, also when a
 * shorter buffer cuts it.
 */
static const char *describe(capmem_arena_t *a, capmem_cap_t c, char *buf, size_t len)
{
    const capmem__slot_t *s = slot_of(a, c);
    const capmem__type_ops_t *ops = a->types[s->type];
    assert_non_null(ops);
    assert_non_null(ops->describe);
    int n = ops->describe(a, s->obj, buf, len);
    assert_true(n > 0);
    assert_int_equal((size_t)n, strlen(buf));
    char tiny[8];
    assert_int_equal(ops->describe(a, s->obj, tiny, sizeof(tiny)), n);
    assert_int_equal(strlen(tiny), sizeof(tiny) - 1);
    return buf;
}

/* The number (decimal, or hex after "0x") right after the first @p key in @p line. */
static uint64_t number_after(const char *line, const char *key)
{
    const char *p = strstr(line, key);
    if (p == NULL) {
        fail_msg("\"%s\" does not mention \"%s\"", line, key);
    }
    p += strlen(key);
    char *end = NULL;
    uint64_t v = strtoull(p, &end, 0);
    if (end == p) {
        fail_msg("\"%s\": no number after \"%s\"", line, key);
    }
    return v;
}

static void assert_mentions(const char *line, const char *what)
{
    if (strstr(line, what) == NULL) {
        fail_msg("\"%s\" does not mention \"%s\"", line, what);
    }
}

/* "name" in double quotes, as the lines quote labels. */
static void assert_quotes(const char *line, const char *name)
{
    char q[64];
    snprintf(q, sizeof(q), "\"%s\"", name);
    assert_mentions(line, q);
}

/* ---- accounts ------------------------------------------------------------- */

static void test_registry_describes_account_by_label_quota_used_and_donation(void **state)
{
    fixture_t *f = *state;
    char line[256];
    capmem_cap_t accs[2] = {f->acc, f->root};
    for (int i = 0; i < 2; i++) {
        capmem_ram_info_t info;
        assert_ok(capmem_ram_info(f->arena, accs[i], &info));
        describe(f->arena, accs[i], line, sizeof(line));
        assert_quotes(line, info.label);
        assert_int_equal(number_after(line, "quota "), info.quota);
        assert_int_equal(number_after(line, "used "), info.used);
        assert_int_equal(number_after(line, "donation "), info.donation);
    }
    /* The line follows the account: allocate more, and it says so. */
    capmem_cap_t more;
    assert_ok(capmem_ram_alloc(f->arena, f->acc, 4096, &more));
    capmem_ram_info_t info;
    assert_ok(capmem_ram_info(f->arena, f->acc, &info));
    assert_int_equal(number_after(describe(f->arena, f->acc, line, sizeof(line)), "used "),
                     info.used);
    assert_int_equal(info.used, 4 * 4096);
    assert_string_equal(
        capmem__object_name(f->arena, CAPMEM_OBJ_RAM_SESSION, slot_of(f->arena, f->acc)->obj),
        "RAM session");
    CHECK_INVARIANTS(f->arena);
}

/* ---- dataspaces ----------------------------------------------------------- */

static void assert_ds_line(fixture_t *f, capmem_cap_t ds)
{
    char line[256];
    capmem_ds_info_t info;
    assert_ok(capmem_ds_info(f->arena, ds, &info));
    describe(f->arena, ds, line, sizeof(line));
    char kind[64];
    snprintf(kind, sizeof(kind), "%s dataspace", capmem_ds_kind_name(info.kind));
    assert_true(strncmp(line, kind, strlen(kind)) == 0);
    assert_int_equal(number_after(line, "dataspace of "), info.size);
    assert_int_equal(number_after(line, "at offset "), info.offset);
}

static void test_registry_describes_dataspace_by_kind_and_size(void **state)
{
    fixture_t *f = *state;
    capmem_alias_attr_t dep = CAPMEM_ALIAS_ATTR_INIT;
    dep.offset = 4096;
    dep.size = 4096;
    capmem_alias_attr_t fc = CAPMEM_ALIAS_ATTR_INIT;
    fc.lifetime = CAPMEM_ALIAS_FIRST_CLASS;
    fc.offset = 2 * 4096;
    capmem_cap_t a;
    capmem_cap_t b;
    assert_ok(capmem_ds_alias(f->arena, f->acc, f->ds, &dep, &a));
    assert_ok(capmem_ds_alias(f->arena, f->acc, f->ds, &fc, &b));
    CHECK_INVARIANTS(f->arena);
    assert_ds_line(f, f->ds);
    assert_ds_line(f, a);
    assert_ds_line(f, b);
    capmem_ds_info_t info;
    assert_ok(capmem_ds_info(f->arena, b, &info));
    assert_int_equal(info.kind, CAPMEM_DS_ALIAS_FIRST_CLASS);
    assert_string_equal(
        capmem__object_name(f->arena, CAPMEM_OBJ_DATASPACE, slot_of(f->arena, f->ds)->obj),
        "dataspace");
}

static void test_registry_describes_managed_dataspace_by_its_map(void **state)
{
    fixture_t *f = *state;
    capmem_rm_open_attr_t ra = CAPMEM_RM_OPEN_ATTR_INIT;
    ra.size = 8 * 4096;
    ra.label = "managed map";
    capmem_cap_t rm;
    assert_ok(capmem_rm_open(f->arena, f->acc, &ra, &rm));
    capmem_cap_t mds;
    assert_ok(capmem_rm_dataspace(f->arena, rm, &mds));
    CHECK_INVARIANTS(f->arena);
    capmem_rm_info_t ri;
    assert_ok(capmem_rm_info(f->arena, rm, &ri));
    capmem_ds_info_t di;
    assert_ok(capmem_ds_info(f->arena, mds, &di));
    assert_int_equal(di.kind, CAPMEM_DS_MANAGED);
    char line[256];
    describe(f->arena, mds, line, sizeof(line));
    assert_true(strncmp(line, "managed dataspace", strlen("managed dataspace")) == 0);
    assert_quotes(line, ri.label);
    assert_int_equal(number_after(line, "\" ("), ri.size);
    assert_int_equal(ri.size, di.size);
}

/* ---- region maps ------------------------------------------------------------ */

static void test_registry_describes_region_map_by_label_and_size(void **state)
{
    fixture_t *f = *state;
    capmem_rm_open_attr_t ra = CAPMEM_RM_OPEN_ATTR_INIT;
    ra.size = 8 * 4096;
    ra.label = "described map";
    capmem_cap_t rm;
    assert_ok(capmem_rm_open(f->arena, f->acc, &ra, &rm));
    assert_string_equal(
        capmem__object_name(f->arena, CAPMEM_OBJ_REGION_MAP, slot_of(f->arena, rm)->obj),
        "region map");
    capmem_rm_info_t ri;
    assert_ok(capmem_rm_info(f->arena, rm, &ri));
    char line[256];
    describe(f->arena, rm, line, sizeof(line));
    assert_quotes(line, ri.label);
    char size[32];
    snprintf(size, sizeof(size), "%llu", (unsigned long long)ri.size);
    assert_mentions(line, size);
}

/* ---- untypeds, frames and kernel objects ------------------------------------- */

static void assert_untyped_line(fixture_t *f, capmem_cap_t ut)
{
    char line[256];
    capmem_untyped_info_t info;
    assert_ok(capmem_untyped_info(f->arena, ut, &info));
    describe(f->arena, ut, line, sizeof(line));
    assert_true(strncmp(line, "untyped", strlen("untyped")) == 0);
    assert_int_equal(number_after(line, "of 2^"), info.size_bits);
    assert_int_equal(number_after(line, "at phys "), info.phys);
    char policy[64];
    snprintf(policy, sizeof(policy), ", %s, ", info.policy);
    assert_mentions(line, policy);
    assert_int_equal(number_after(line, policy), info.children);
    assert_int_equal(strstr(line, "device") != NULL, info.device);
}

static void test_registry_describes_untyped_by_size_policy_and_children(void **state)
{
    fixture_t *f = *state;
    assert_untyped_line(f, f->ut);
    capmem_untyped_info_t info;
    assert_ok(capmem_untyped_info(f->arena, f->ut, &info));
    assert_int_equal(info.children, 2);
    /* Children of each built-in policy, and one with a user policy. */
    capmem_retype_attr_t ra = CAPMEM_RETYPE_ATTR_INIT;
    ra.type = CAPMEM_OBJ_UNTYPED;
    ra.size_bits = 16;
    ra.count = 3;
    capmem_cap_t sub[3];
    assert_ok(capmem_untyped_retype(f->arena, f->ut, &ra, sub, 3));
    assert_ok(capmem_untyped_set_policy(f->arena, sub[0], CAPMEM_UNTYPED_RANGE, NULL));
    assert_ok(capmem_untyped_set_policy(f->arena, sub[1], CAPMEM_UNTYPED_BUDDY, NULL));
    static test_ff_t ff;
    memset(&ff, 0, sizeof(ff));
    ff.size = 1u << 16;
    capmem_alloc_t *pol = NULL;
    assert_ok(capmem_alloc_create_custom_span(&test_ff_ops, &ff, 0, ff.size, &pol));
    assert_ok(capmem_untyped_set_policy(f->arena, sub[2], CAPMEM_UNTYPED_WATERMARK, pol));
    capmem_retype_attr_t ka = CAPMEM_RETYPE_ATTR_INIT;
    ka.type = CAPMEM_OBJ_KOBJ;
    ka.size_bits = 10;
    capmem_cap_t k;
    assert_ok(capmem_untyped_retype(f->arena, sub[1], &ka, &k, 1));
    CHECK_INVARIANTS(f->arena);
    for (int i = 0; i < 3; i++) {
        assert_untyped_line(f, sub[i]);
    }
    assert_untyped_line(f, f->ut);
    assert_ok(capmem_untyped_info(f->arena, sub[2], &info));
    assert_string_equal(info.policy, "first-fit");
    assert_string_equal(
        capmem__object_name(f->arena, CAPMEM_OBJ_UNTYPED, slot_of(f->arena, f->ut)->obj),
        "untyped");
}

static void test_registry_describes_device_untyped_at_its_device_address(void **state)
{
    fixture_t *f = *state;
    capmem_device_info_t dev;
    assert_ok(capmem_arena_device_add(f->arena, 0xf0000000, 0x4000, &dev));
    capmem_untyped_info_t ui[4];
    size_t n = 0;
    assert_ok(capmem_untyped_add_device(f->arena, dev.id, ui, 4, &n));
    assert_int_equal(n, 1);
    assert_true(ui[0].device);
    assert_int_equal(ui[0].phys, 0xf0000000);
    CHECK_INVARIANTS(f->arena);
    char line[256];
    describe(f->arena, ui[0].cap, line, sizeof(line));
    assert_mentions(line, "device");
    /* A device untyped lies at its device's address, not at RAM's base plus its offset. */
    assert_untyped_line(f, ui[0].cap);
    assert_ok(capmem_cap_delete(f->arena, ui[0].cap));
    assert_ok(capmem_arena_device_remove(f->arena, dev.id));
}

static void assert_leaf_line(fixture_t *f, capmem_cap_t c, const char *name)
{
    char line[256];
    capmem_object_info_t info;
    assert_ok(capmem_object_info(f->arena, c, &info));
    describe(f->arena, c, line, sizeof(line));
    char head[64];
    snprintf(head, sizeof(head), "%s of 2^", name);
    if (strncmp(line, head, strlen(head)) != 0) {
        fail_msg("\"%s\" does not start with \"%s\"", line, head);
    }
    assert_int_equal(number_after(line, "of 2^"), info.size_bits);
    assert_int_equal(number_after(line, "at phys "), info.phys);
}

static void test_registry_describes_kernel_object_by_size(void **state)
{
    fixture_t *f = *state;
    capmem_retype_attr_t ka = CAPMEM_RETYPE_ATTR_INIT;
    ka.type = CAPMEM_OBJ_KOBJ;
    ka.size_bits = 9;
    capmem_cap_t k;
    assert_ok(capmem_untyped_retype(f->arena, f->ut, &ka, &k, 1));
    const void *obj = slot_of(f->arena, k)->obj;
    const char *name = capmem__object_name(f->arena, CAPMEM_OBJ_KOBJ, obj);
    assert_string_equal(name, "kernel object");
    assert_leaf_line(f, k, name);
    /* The RAM service's claim on the second boot untyped names itself. */
    capmem__slot_t *pool = slot_of(f->arena, f->pool);
    assert_int_not_equal(pool->first_child, 0);
    capmem__slot_t *claimed = &f->arena->cspace.slots[pool->first_child];
    assert_int_equal(claimed->type, CAPMEM_OBJ_KOBJ);
    name = capmem__object_name(f->arena, CAPMEM_OBJ_KOBJ, claimed->obj);
    assert_string_equal(name, "RAM pool");
    assert_leaf_line(f, capmem__slot_handle(&f->arena->cspace, pool->first_child), name);
    /* Without an object, the type's own name. */
    assert_string_equal(capmem__object_name(f->arena, CAPMEM_OBJ_KOBJ, NULL), "kernel object");
}

static void test_registry_describes_frame_by_size(void **state)
{
    fixture_t *f = *state;
    const void *obj = slot_of(f->arena, f->frames[0])->obj;
    const char *name = capmem__object_name(f->arena, CAPMEM_OBJ_FRAME, obj);
    assert_string_equal(name, "frame");
    char line[256];
    describe(f->arena, f->frames[1], line, sizeof(line));
    /* A frame is described as a frame, as capmem_cap_identify names it. */
    assert_mentions(line, "frame");
    assert_leaf_line(f, f->frames[0], name);
    assert_leaf_line(f, f->frames[1], name);
}

/* ---- user objects ------------------------------------------------------------ */

static void test_registry_names_user_object_by_its_type(void **state)
{
    fixture_t *f = *state;
    static int object;
    static const capmem_user_type_t named = {.name = "widget"};
    static const capmem_user_type_t unnamed = {.name = NULL};
    capmem_cap_t a;
    capmem_cap_t b;
    assert_ok(capmem_cap_create_user(f->arena, &named, &object, CAPMEM_RIGHTS_ALL, &a));
    assert_ok(capmem_cap_create_user(f->arena, &unnamed, &object, CAPMEM_RIGHTS_ALL, &b));
    const void *oa = slot_of(f->arena, a)->obj;
    const void *ob = slot_of(f->arena, b)->obj;
    assert_string_equal(capmem__object_name(f->arena, CAPMEM_OBJ_USER, oa), "widget");
    assert_string_equal(capmem__object_name(f->arena, CAPMEM_OBJ_USER, ob), "user object");
    capmem_cap_info_t ci;
    assert_ok(capmem_cap_identify(f->arena, a, &ci));
    assert_string_equal(ci.name, "widget");
    char line[256];
    describe(f->arena, a, line, sizeof(line));
    assert_quotes(line, ci.name);
    char at[64];
    snprintf(at, sizeof(at), "at %p", (void *)&object);
    assert_mentions(line, at);
    describe(f->arena, b, line, sizeof(line));
    assert_quotes(line, "user object");
    assert_ok(capmem_cap_delete(f->arena, a));
    assert_ok(capmem_cap_delete(f->arena, b));
}

static void test_registry_names_unregistered_type_by_its_enum_name(void **state)
{
    fixture_t *f = *state;
    /* A type no layer registered, and a number past the table. */
    capmem_arena_t *fresh = test_arena(1u << 20, 4096);
    assert_null(fresh->types[CAPMEM_OBJ_REGION_MAP]);
    assert_string_equal(capmem__object_name(fresh, CAPMEM_OBJ_REGION_MAP, NULL),
                        capmem_obj_type_name(CAPMEM_OBJ_REGION_MAP));
    assert_string_equal(
        capmem__object_name(f->arena, (capmem_obj_type_t)CAPMEM_OBJ_TYPE_COUNT, NULL),
        capmem_obj_type_name((capmem_obj_type_t)CAPMEM_OBJ_TYPE_COUNT));
    CHECK_INVARIANTS(fresh);
    capmem_arena_destroy(fresh);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(
            test_registry_describes_account_by_label_quota_used_and_donation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_registry_describes_dataspace_by_kind_and_size, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_registry_describes_managed_dataspace_by_its_map, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_registry_describes_untyped_by_size_policy_and_children,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_registry_describes_kernel_object_by_size, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_registry_names_user_object_by_its_type, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_registry_names_unregistered_type_by_its_enum_name,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_registry_describes_region_map_by_label_and_size, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            test_registry_describes_device_untyped_at_its_device_address, setup, teardown),
        cmocka_unit_test_setup_teardown(test_registry_describes_frame_by_size, setup, teardown),
    };
    return cmocka_run_group_tests_name("registry", tests, NULL, NULL);
}
