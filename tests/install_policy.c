/* SPDX-License-Identifier: MIT */
/*
 * Built by install_test.sh against the installed headers and library, and
 * linked with next fit (examples/next_fit.c) built the same way as a shared
 * object: the user's policy drives an untyped, the RAM service and a region
 * map, then passes the installed conformance suite.
 */
#include <capmem.h>
#include <stdio.h>

extern const capmem_alloc_ops_t next_fit_ops;

#define CHECK(call)                                                                                \
    do {                                                                                           \
        capmem_err_t e_ = (call);                                                                  \
        if (e_ != CAPMEM_OK) {                                                                     \
            fprintf(stderr, "%s: %s\n", #call, capmem_last_error()->message);                      \
            return 1;                                                                              \
        }                                                                                          \
    } while (0)

int main(void)
{
    const capmem_alloc_policy_t nf = CAPMEM_ALLOC_POLICY_CUSTOM(&next_fit_ops, NULL);
    capmem_arena_attr_t aa = CAPMEM_ARENA_ATTR_INIT;
    aa.ram_size = 8u << 20;
    capmem_arena_t *arena = NULL;
    CHECK(capmem_arena_create(&aa, &arena));
    /* The RAM service places with next fit (it takes half the boot untypeds' RAM). */
    capmem_ram_attr_t ra = CAPMEM_RAM_ATTR_INIT;
    ra.policy = nf;
    capmem_cap_t root;
    CHECK(capmem_ram_boot(arena, &ra, &root));
    capmem_cap_t ds;
    CHECK(capmem_ram_alloc(arena, root, 3 * 4096, &ds));
    /* A region map's "anywhere" too. */
    capmem_rm_open_attr_t oa = CAPMEM_RM_OPEN_ATTR_INIT;
    oa.size = 1u << 20;
    oa.policy = nf;
    capmem_cap_t rm;
    CHECK(capmem_rm_open(arena, root, &oa, &rm));
    capmem_rm_attach_attr_t at = CAPMEM_RM_ATTACH_ATTR_INIT;
    uint64_t addr = 0;
    CHECK(capmem_rm_attach(arena, rm, ds, &at, &addr));
    CHECK(capmem_rm_close(arena, rm));
    CHECK(capmem_ds_free(arena, ds));
    char why[256];
    CHECK(capmem_check(arena, why, sizeof(why)));
    capmem_arena_destroy(arena);
    /* An untyped of a fresh arena, with an instance over its size. */
    CHECK(capmem_arena_create(&aa, &arena));
    capmem_untyped_info_t boot[8];
    size_t n = 0;
    CHECK(capmem_untyped_boot(arena, boot, 8, &n));
    capmem_alloc_t *inst = NULL;
    CHECK(capmem_alloc_create_policy(&nf, 0, 1ull << boot[0].size_bits, 1024, &inst));
    CHECK(capmem_untyped_set_policy(arena, boot[0].cap, CAPMEM_UNTYPED_WATERMARK, inst));
    capmem_retype_attr_t rt = CAPMEM_RETYPE_ATTR_INIT;
    rt.type = CAPMEM_OBJ_KOBJ;
    rt.size_bits = 10;
    capmem_cap_t obj;
    CHECK(capmem_untyped_retype(arena, boot[0].cap, &rt, &obj, 1));
    CHECK(capmem_check(arena, why, sizeof(why)));
    capmem_arena_destroy(arena);
    /* The installed conformance suite. */
    capmem_conform_attr_t ca = CAPMEM_CONFORM_ATTR_INIT;
    ca.sequences = 20;
    static capmem_conform_result_t res;
    capmem_err_t err = capmem_conform_run(&nf, &ca, &res);
    fputs(res.report, stdout);
    return err == CAPMEM_OK ? 0 : 1;
}
