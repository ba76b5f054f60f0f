/* SPDX-License-Identifier: MIT */
/* Layer 8: kernel metadata: boot sizing, per-frame records, the three strategies, hot-plug. */
#include <stddef.h>
#include <string.h>

#include "kernel_internal.h"
#include "support.h"

#define PAGE 4096ull
#define RAM_FRAMES 4096ull
#define DEV_A 0x100000000ull /* physical addresses of device ranges, far from RAM */
#define DEV_B 0x200000000ull

/* 4,096 frames of RAM and a 32 MiB device window, the kernel not booted yet. */
static capmem_arena_t *arena_new(void)
{
    capmem_arena_attr_t at = CAPMEM_ARENA_ATTR_INIT;
    at.ram_size = RAM_FRAMES * PAGE;
    at.device_window = 8192 * PAGE;
    capmem_arena_t *a = NULL;
    assert_ok(capmem_arena_create(&at, &a));
    return a;
}

static void boot(capmem_arena_t *a, capmem_kernel_strategy_t s, uint64_t device_frames)
{
    capmem_kernel_attr_t k = CAPMEM_KERNEL_ATTR_INIT;
    k.strategy = s;
    k.device_frames = device_frames;
    assert_ok(capmem_kernel_boot(a, &k));
    CHECK_INVARIANTS(a);
}

static capmem_kernel_info_t info_of(capmem_arena_t *a)
{
    capmem_kernel_info_t i;
    assert_ok(capmem_kernel_info(a, &i));
    return i;
}

static size_t devices(capmem_arena_t *a)
{
    size_t n = 0;
    assert_ok(capmem_arena_devices(a, NULL, 0, &n));
    return n;
}

/* A bank service over all RAM left to the root account, for the hybrid growth. */
static capmem_cap_t banks_open(capmem_arena_t *a, uint64_t frames)
{
    capmem_cap_t root = CAPMEM_CAP_NULL;
    assert_ok(capmem_ram_boot(a, NULL, &root));
    capmem_bank_service_attr_t at = CAPMEM_BANK_SERVICE_ATTR_INIT;
    at.frames = frames;
    capmem_cap_t prime = CAPMEM_CAP_NULL;
    assert_ok(capmem_bank_service_create(a, root, &at, &prime));
    CHECK_INVARIANTS(a);
    return prime;
}

/* Boot sizing: heap = ceil((RAM frames + device frames) * 48 / page), after a 64-frame image. */
static void test_kernel_boot_sizes_heap_from_frame_count(void **state)
{
    (void)state;
    capmem_arena_t *a = arena_new();
    boot(a, CAPMEM_KERNEL_FIXED, 2048);
    capmem_kernel_info_t i = info_of(a);
    assert_int_equal(i.strategy, CAPMEM_KERNEL_FIXED);
    assert_int_equal(i.record_size, 48);
    assert_int_equal(i.boot_heap_frames, 72); /* (4096 + 2048) * 48 / 4096 */
    assert_int_equal(i.heap_frames, 72);
    assert_int_equal(i.records_capacity, 6144);
    assert_int_equal(i.records_used, RAM_FRAMES);
    assert_int_equal(i.ram_records, RAM_FRAMES);
    assert_int_equal(i.device_reserve, 2048);
    assert_int_equal(i.kernel_frames, 136);
    /* The boot untypeds start after the kernel's frames. */
    capmem_untyped_info_t ut[16];
    size_t n = 0;
    assert_ok(capmem_untyped_boot(a, ut, 16, &n));
    uint64_t ram = 0;
    for (size_t k = 0; k < n && k < 16; k++) {
        assert_true(ut[k].phys >= 0x100000 + 136 * PAGE);
        ram += 1ull << ut[k].size_bits;
    }
    assert_int_equal(ram, (RAM_FRAMES - 136) * PAGE);
    /* Every RAM frame has its record; the kernel's are flagged. */
    capmem_kernel_frame_t f;
    assert_ok(capmem_kernel_frame(a, 0x100000, &f));
    assert_int_equal(f.type, CAPMEM_KERNEL_FRAME_RAM);
    assert_true(f.flags & CAPMEM_KERNEL_FLAG_KERNEL);
    assert_int_equal(f.record_phys, 0x100000 + 64 * PAGE);
    assert_ok(capmem_kernel_frame(a, 0x100000 + 200 * PAGE + 5, &f));
    assert_int_equal(f.phys, 0x100000 + 200 * PAGE);
    assert_int_equal(f.flags, 0);
    assert_int_equal(f.record_phys, 0x100000 + 64 * PAGE + 200 * 48);
    CHECK_INVARIANTS(a);
    capmem_arena_destroy(a);
}

static void test_kernel_record_size_is_a_parameter(void **state)
{
    (void)state;
    capmem_arena_t *a = arena_new();
    capmem_kernel_attr_t k = CAPMEM_KERNEL_ATTR_INIT;
    k.record_size = 64;
    assert_ok(capmem_kernel_boot(a, &k));
    capmem_kernel_info_t i = info_of(a);
    assert_int_equal(i.boot_heap_frames, 64); /* 4096 * 64 / 4096 */
    assert_int_equal(i.records_capacity, RAM_FRAMES);
    assert_int_equal(i.device_reserve, 0);
    CHECK_INVARIANTS(a);
    capmem_arena_destroy(a);
}

/* Bad boots: each gets its error and leaves the arena without a kernel. */
static void test_kernel_bad_boot_changes_nothing(void **state)
{
    (void)state;
    capmem_arena_t *a = arena_new();
    capmem_kernel_attr_t k = CAPMEM_KERNEL_ATTR_INIT;
    assert_err(capmem_kernel_boot(NULL, &k), CAPMEM_E_INVALID_ARGS);
    assert_err(capmem_kernel_boot(a, NULL), CAPMEM_E_INVALID_ARGS);
    k.strategy = (capmem_kernel_strategy_t)7;
    assert_err(capmem_kernel_boot(a, &k), CAPMEM_E_INVALID_ARGS);
    k.strategy = CAPMEM_KERNEL_FIXED;
    k.record_size = 40;
    assert_err(capmem_kernel_boot(a, &k), CAPMEM_E_RANGE);
    k.record_size = 52;
    assert_err(capmem_kernel_boot(a, &k), CAPMEM_E_RANGE);
    k.record_size = PAGE + 8;
    assert_err(capmem_kernel_boot(a, &k), CAPMEM_E_RANGE);
    k.record_size = 48;
    k.image_frames = RAM_FRAMES;
    assert_err(capmem_kernel_boot(a, &k), CAPMEM_E_OUT_OF_RAM);
    k.image_frames = 64;
    k.device_frames = UINT64_MAX;
    assert_err(capmem_kernel_boot(a, &k), CAPMEM_E_OUT_OF_RAM);
    /* A device registered before boot needs records the boot does not plan. */
    capmem_device_info_t d;
    assert_ok(capmem_arena_device_add(a, DEV_A, 16 * PAGE, &d));
    k.device_frames = 8;
    assert_err(capmem_kernel_boot(a, &k), CAPMEM_E_OUT_OF_METADATA);
    assert_int_equal(capmem_last_error()->needed, 16);
    assert_int_equal(capmem_last_error()->available, 8);
    capmem_kernel_info_t i;
    assert_err(capmem_kernel_info(a, &i), CAPMEM_E_NOT_FOUND);
    assert_err(capmem_kernel_info(a, NULL), CAPMEM_E_INVALID_ARGS);
    capmem_kernel_frame_t f;
    assert_err(capmem_kernel_frame(a, 0x100000, &f), CAPMEM_E_NOT_FOUND);
    CHECK_INVARIANTS(a);
    /* No host memory for the layer's state: HOST_NOMEM, no kernel. */
    k.device_frames = 16;
    capmem__inject_reset();
    capmem__inject_fail(CAPMEM__HOST_MALLOC, 1);
    assert_err(capmem_kernel_boot(a, &k), CAPMEM_E_HOST_NOMEM);
    capmem__inject_reset();
    assert_err(capmem_kernel_info(a, &i), CAPMEM_E_NOT_FOUND);
    /* With room for it, the boot makes the present range's records. */
    assert_ok(capmem_kernel_boot(a, &k));
    assert_int_equal(info_of(a).device_records, 16);
    assert_err(capmem_kernel_boot(a, &k), CAPMEM_E_DENIED); /* once */
    CHECK_INVARIANTS(a);
    capmem_arena_destroy(a);

    /* After the boot untypeds, RAM is handed out: too late. */
    a = arena_new();
    size_t n = 0;
    assert_ok(capmem_untyped_boot(a, NULL, 0, &n));
    assert_err(capmem_kernel_boot(a, &k), CAPMEM_E_DENIED);
    assert_err(capmem_kernel_info(a, &i), CAPMEM_E_NOT_FOUND);
    CHECK_INVARIANTS(a);
    capmem_arena_destroy(a);
}

/* Fixed reserve: devices fit until the reserve is used; beyond it, refused with the numbers. */
static void test_kernel_fixed_reserve_refuses_beyond_it(void **state)
{
    (void)state;
    capmem_arena_t *a = arena_new();
    boot(a, CAPMEM_KERNEL_FIXED, 2048);
    capmem_device_info_t d1, d2;
    assert_ok(capmem_arena_device_add(a, DEV_A, 1024 * PAGE, &d1));
    CHECK_INVARIANTS(a);
    capmem_kernel_frame_t f;
    assert_ok(capmem_kernel_frame(a, DEV_A + 3 * PAGE, &f));
    assert_int_equal(f.type, CAPMEM_KERNEL_FRAME_DEVICE);
    assert_int_equal(f.flags, CAPMEM_KERNEL_FLAG_PINNED | CAPMEM_KERNEL_FLAG_NOZERO);
    assert_int_equal(f.device, d1.id);
    assert_int_equal(info_of(a).device_reserve, 1024);
    capmem_device_info_t before[4];
    size_t nb = 0;
    assert_ok(capmem_arena_devices(a, before, 4, &nb));
    assert_err(capmem_arena_device_add(a, DEV_B, 2048 * PAGE, &d2), CAPMEM_E_OUT_OF_METADATA);
    assert_int_equal(capmem_last_error()->needed, 2048);
    assert_int_equal(capmem_last_error()->available, 1024);
    assert_int_equal(devices(a), nb);
    assert_int_equal(info_of(a).records_used, RAM_FRAMES + 1024);
    CHECK_INVARIANTS(a);
    /* The refused range took no device id: the next one is the one it would have had. */
    assert_ok(capmem_arena_device_add(a, DEV_B, 1024 * PAGE, &d2));
    assert_int_equal(d2.id, d1.id + 1);
    assert_int_equal(info_of(a).device_reserve, 0);
    CHECK_INVARIANTS(a);
    /* Removing frees the record slots, never the heap frames. */
    assert_ok(capmem_arena_device_remove(a, d1.id));
    capmem_kernel_info_t i = info_of(a);
    assert_int_equal(i.device_reserve, 1024);
    assert_int_equal(i.heap_frames, 72);
    assert_err(capmem_kernel_frame(a, DEV_A, &f), CAPMEM_E_NOT_FOUND);
    CHECK_INVARIANTS(a);
    capmem_arena_destroy(a);
}

/* A device range with live frames handed out (a device untyped) cannot be removed. */
static void test_kernel_device_with_untyped_cannot_be_removed(void **state)
{
    (void)state;
    capmem_arena_t *a = arena_new();
    boot(a, CAPMEM_KERNEL_FIXED, 64);
    capmem_device_info_t d;
    assert_ok(capmem_arena_device_add(a, DEV_A, 64 * PAGE, &d));
    size_t n = 0;
    assert_ok(capmem_untyped_add_device(a, d.id, NULL, 0, &n));
    assert_err(capmem_arena_device_remove(a, d.id), CAPMEM_E_DELETE_FIRST);
    assert_int_equal(info_of(a).device_records, 64);
    CHECK_INVARIANTS(a);
    capmem_arena_destroy(a);
}

/* Conservative: the whole window at boot; the end of boot gives the rest to the prime bank. */
static void test_kernel_conservative_end_of_boot_releases_to_prime_bank(void **state)
{
    (void)state;
    capmem_arena_t *a = arena_new();
    boot(a, CAPMEM_KERNEL_CONSERVATIVE, 8192);
    assert_int_equal(info_of(a).boot_heap_frames, 144);
    capmem_cap_t prime = banks_open(a, 100);
    capmem_bank_info_t bi;
    assert_ok(capmem_bank_info(a, prime, &bi));
    assert_int_equal(bi.limit[CAPMEM_BANK_FRAME], 100);
    capmem_device_info_t d;
    assert_ok(capmem_arena_device_add(a, DEV_A, 1024 * PAGE, &d));
    /* Errors first: nothing changes. */
    assert_err(capmem_kernel_end_boot(NULL, 0), CAPMEM_E_INVALID_ARGS);
    assert_err(capmem_kernel_end_boot(a, 8193), CAPMEM_E_RANGE);
    assert_err(capmem_kernel_end_boot(a, 1000), CAPMEM_E_RANGE); /* below the 1024 in use */
    assert_int_equal(info_of(a).released_frames, 0);
    CHECK_INVARIANTS(a);
    /* Keep 4,096 device frames: (4096 + 4096) * 48 / 4096 = 96 frames stay, 48 go. */
    assert_ok(capmem_kernel_end_boot(a, 4096));
    capmem_kernel_info_t i = info_of(a);
    assert_int_equal(i.released_frames, 48);
    assert_int_equal(i.heap_frames, 96);
    assert_int_equal(i.records_capacity, 8192);
    assert_true(i.boot_ended);
    assert_ok(capmem_bank_info(a, prime, &bi));
    assert_int_equal(bi.limit[CAPMEM_BANK_FRAME], 148);
    CHECK_INVARIANTS(a);
    assert_err(capmem_kernel_end_boot(a, 4096), CAPMEM_E_DENIED);
    /* The released frames are really handed out. */
    capmem_bank_type_t t = CAPMEM_BANK_FRAME;
    capmem_cap_t fr[148];
    for (int k = 0; k < 148; k++) {
        assert_ok(capmem_bank_alloc(a, prime, &t, 1, &fr[k]));
    }
    assert_err(capmem_bank_alloc(a, prime, &t, 1, &fr[0]), CAPMEM_E_LIMIT_REACHED);
    CHECK_INVARIANTS(a);
    capmem_arena_destroy(a);

    /* Other strategies have no end of boot; an arena without a kernel neither. */
    a = arena_new();
    assert_err(capmem_kernel_end_boot(a, 0), CAPMEM_E_NOT_FOUND);
    boot(a, CAPMEM_KERNEL_FIXED, 0);
    assert_err(capmem_kernel_end_boot(a, 0), CAPMEM_E_UNSUPPORTED);
    capmem_arena_destroy(a);
}

/* End of boot before the banks exist: the first bank service takes the released frames. */
static void test_kernel_released_frames_wait_for_the_bank_service(void **state)
{
    (void)state;
    capmem_arena_t *a = arena_new();
    boot(a, CAPMEM_KERNEL_CONSERVATIVE, 8192);
    assert_ok(capmem_kernel_end_boot(a, 0));
    assert_int_equal(info_of(a).released_frames, 96); /* 144 - 4096 * 48 / 4096 */
    CHECK_INVARIANTS(a);
    capmem_cap_t prime = banks_open(a, 10);
    capmem_bank_info_t bi;
    assert_ok(capmem_bank_info(a, prime, &bi));
    assert_int_equal(bi.limit[CAPMEM_BANK_FRAME], 106);
    capmem_arena_destroy(a);
}

/* Hybrid: beyond the fixed part the heap grows by frames borrowed through the banks. */
static void test_kernel_hybrid_grows_through_the_banks(void **state)
{
    (void)state;
    capmem_arena_t *a = arena_new();
    boot(a, CAPMEM_KERNEL_HYBRID, 1024);
    capmem_device_info_t d;
    /* No bank service: nobody lends, the range is refused. */
    assert_err(capmem_arena_device_add(a, DEV_A, 2048 * PAGE, &d), CAPMEM_E_OUT_OF_METADATA);
    assert_int_equal(devices(a), 0);
    CHECK_INVARIANTS(a);
    capmem_cap_t prime = banks_open(a, 100);
    /* 2048 - 1024 records more: 1024 * 48 / 4096 = 12 frames borrowed. */
    assert_ok(capmem_arena_device_add(a, DEV_A, 2048 * PAGE, &d));
    capmem_kernel_info_t i = info_of(a);
    assert_int_equal(i.borrowed_frames, 12);
    assert_int_equal(i.heap_frames, 60 + 12);
    capmem_bank_info_t bi;
    assert_ok(capmem_bank_info(a, prime, &bi));
    assert_int_equal(bi.used[CAPMEM_BANK_FRAME], 12);
    assert_int_equal(bi.used[CAPMEM_BANK_NODE], 1); /* the kernel bank's record */
    CHECK_INVARIANTS(a);
    /* Unplugging keeps the heap frames; the bank service cannot close under the heap. */
    assert_ok(capmem_arena_device_remove(a, d.id));
    assert_int_equal(info_of(a).heap_frames, 72);
    assert_err(capmem_bank_service_destroy(a, prime), CAPMEM_E_DELETE_FIRST);
    CHECK_INVARIANTS(a);
    /* Growth fails when the banks have nothing left to lend. */
    capmem_cap_t fr[88];
    capmem_bank_type_t t = CAPMEM_BANK_FRAME;
    for (int k = 0; k < 88; k++) {
        assert_ok(capmem_bank_alloc(a, prime, &t, 1, &fr[k]));
    }
    assert_err(capmem_arena_device_add(a, DEV_B, 4096 * PAGE, &d), CAPMEM_E_OUT_OF_METADATA);
    assert_int_equal(info_of(a).borrowed_frames, 12);
    assert_int_equal(devices(a), 0);
    CHECK_INVARIANTS(a);
    capmem_arena_destroy(a);
}

/* Growth needs contiguous frames: free ones scattered by frees are not enough (OUT_OF_PHYS). */
static void test_kernel_hybrid_growth_needs_a_contiguous_run(void **state)
{
    (void)state;
    capmem_arena_t *a = arena_new();
    boot(a, CAPMEM_KERNEL_HYBRID, 0);
    capmem_cap_t prime = banks_open(a, 64);
    capmem_cap_t fr[64];
    const capmem_bank_type_t t = CAPMEM_BANK_FRAME;
    for (int i = 0; i < 64; i++) {
        assert_ok(capmem_bank_alloc(a, prime, &t, 1, &fr[i]));
    }
    for (int i = 0; i < 64; i += 2) {
        assert_ok(capmem_bank_free(a, prime, &fr[i], 1));
    }
    capmem_device_info_t d;
    assert_err(capmem_arena_device_add(a, DEV_A, 128 * PAGE, &d), CAPMEM_E_OUT_OF_METADATA);
    assert_non_null(strstr(capmem_last_error()->message, "OUT_OF_PHYS"));
    assert_int_equal(info_of(a).borrowed_frames, 0);
    /* One frame of growth fits in any free frame. */
    assert_ok(capmem_arena_device_add(a, DEV_A, 64 * PAGE, &d));
    assert_int_equal(info_of(a).borrowed_frames, 1);
    CHECK_INVARIANTS(a);
    capmem_arena_destroy(a);
}

/* The dataspace right under an account (the bank service's, in the test below). */
typedef struct svc_ds {
    capmem_cap_t cap;
} svc_ds_t;

static int find_svc_ds(const capmem_cap_info_t *ci, unsigned depth, void *ctx)
{
    svc_ds_t *sd = ctx;
    if (depth == 1 && ci->type == CAPMEM_OBJ_DATASPACE) {
        sd->cap = ci->cap;
    }
    return 0;
}

/*
 * Closing the account under a bank service that lent heap frames, or an
 * account it was opened from, is refused (DELETE_FIRST) before anything
 * changes: a heap frame is never returned. Once nothing is borrowed, the
 * close goes through.
 */
static void test_kernel_account_close_under_lent_heap_is_refused(void **state)
{
    (void)state;
    capmem_arena_t *a = arena_new();
    boot(a, CAPMEM_KERNEL_HYBRID, 0);
    capmem_cap_t root = CAPMEM_CAP_NULL;
    assert_ok(capmem_ram_boot(a, NULL, &root));
    capmem_ram_open_attr_t ro = CAPMEM_RAM_OPEN_ATTR_INIT;
    ro.quota = 2ull << 20;
    ro.caps = 4096;
    capmem_cap_t mid = CAPMEM_CAP_NULL;
    assert_ok(capmem_ram_open(a, root, &ro, &mid));
    ro.quota = 1ull << 20;
    ro.caps = 256;
    capmem_cap_t acc = CAPMEM_CAP_NULL;
    assert_ok(capmem_ram_open(a, mid, &ro, &acc));
    capmem_bank_service_attr_t sa = CAPMEM_BANK_SERVICE_ATTR_INIT;
    sa.frames = 64;
    capmem_cap_t prime = CAPMEM_CAP_NULL;
    assert_ok(capmem_bank_service_create(a, acc, &sa, &prime));
    /* Nothing borrowed yet: the hook lets other closes through. */
    capmem_cap_t other = CAPMEM_CAP_NULL;
    assert_ok(capmem_ram_open(a, root, &ro, &other));
    assert_ok(capmem_ram_close(a, other));
    capmem_device_info_t d;
    assert_ok(capmem_arena_device_add(a, DEV_A, 64 * PAGE, &d));
    CHECK_INVARIANTS(a);
    capmem_kernel_info_t before = info_of(a);
    capmem_ram_info_t ri0, ri1;
    assert_ok(capmem_ram_info(a, acc, &ri0));
    capmem_bank_info_t bi0, bi1;
    assert_ok(capmem_bank_info(a, prime, &bi0));
    assert_err(capmem_ram_close(a, acc), CAPMEM_E_DELETE_FIRST);
    assert_non_null(strstr(capmem_last_error()->message, "never returned"));
    assert_err(capmem_ram_close(a, mid), CAPMEM_E_DELETE_FIRST);
    /* Every other way to kill the service's capabilities asks too. */
    assert_err(capmem_cap_revoke(a, acc), CAPMEM_E_DELETE_FIRST);
    assert_err(capmem_cap_revoke(a, root), CAPMEM_E_DELETE_FIRST);
    assert_err(capmem_cap_delete(a, prime), CAPMEM_E_DELETE_FIRST);
    assert_err(capmem_ram_destroy(a, root), CAPMEM_E_DELETE_FIRST);
    /* So does freeing the service's dataspace (the prime bank derives from it). */
    svc_ds_t sd = {CAPMEM_CAP_NULL};
    assert_ok(capmem_cap_walk(a, acc, find_svc_ds, &sd));
    assert_true(sd.cap != CAPMEM_CAP_NULL);
    assert_err(capmem_ds_free(a, sd.cap), CAPMEM_E_DELETE_FIRST);
    capmem_kernel_info_t now = info_of(a);
    assert_memory_equal(&now, &before, sizeof(now));
    assert_ok(capmem_ram_info(a, acc, &ri1));
    assert_memory_equal(&ri0, &ri1, sizeof(ri0));
    assert_ok(capmem_bank_info(a, prime, &bi1));
    assert_memory_equal(&bi0, &bi1, sizeof(bi0));
    CHECK_INVARIANTS(a);
    /* The banks still work; revoking the prime bank's capability kills only its children. */
    const capmem_bank_type_t t = CAPMEM_BANK_FRAME;
    capmem_cap_t fr = CAPMEM_CAP_NULL;
    assert_ok(capmem_bank_alloc(a, prime, &t, 1, &fr));
    CHECK_INVARIANTS(a);
    assert_ok(capmem_cap_revoke(a, prime));
    assert_int_equal(info_of(a).borrowed_frames, 1);
    CHECK_INVARIANTS(a);
    capmem_arena_destroy(a);

    /* A service the heap borrowed nothing from closes with its account. */
    a = arena_new();
    boot(a, CAPMEM_KERNEL_HYBRID, 64);
    assert_ok(capmem_ram_boot(a, NULL, &root));
    assert_ok(capmem_ram_open(a, root, &ro, &acc));
    assert_ok(capmem_bank_service_create(a, acc, &sa, &prime));
    assert_ok(capmem_arena_device_add(a, DEV_A, 64 * PAGE, &d));
    assert_int_equal(info_of(a).borrowed_frames, 0);
    assert_ok(capmem_ram_close(a, acc));
    CHECK_INVARIANTS(a);
    capmem_arena_destroy(a);
}

/* Bank frames carry their owner and allocation count in their records. */
static void test_kernel_frame_records_follow_the_banks(void **state)
{
    (void)state;
    capmem_arena_t *a = arena_new();
    boot(a, CAPMEM_KERNEL_FIXED, 0);
    capmem_cap_t prime = banks_open(a, 4);
    capmem_bank_type_t t = CAPMEM_BANK_FRAME;
    capmem_cap_t fr;
    assert_ok(capmem_bank_alloc(a, prime, &t, 1, &fr));
    capmem_ds_info_t di;
    assert_ok(capmem_ds_info(a, fr, &di));
    capmem_kernel_frame_t f;
    assert_ok(capmem_kernel_frame(a, di.phys, &f));
    assert_true(f.owned);
    assert_true(f.flags & CAPMEM_KERNEL_FLAG_BANK);
    assert_int_equal(f.alloc_count, 1);
    assert_ok(capmem_bank_free(a, prime, &fr, 1));
    assert_ok(capmem_kernel_frame(a, di.phys, &f));
    assert_false(f.owned);
    assert_int_equal(f.alloc_count, 1);
    assert_ok(capmem_bank_alloc(a, prime, &t, 1, &fr));
    assert_ok(capmem_kernel_frame(a, di.phys, &f));
    assert_int_equal(f.alloc_count, 2); /* the same frame again: a new incarnation */
    /* A bank removed: its frame passes to the parent, the same incarnation (count unchanged). */
    capmem_cap_t sub = CAPMEM_CAP_NULL;
    assert_ok(capmem_bank_create(a, prime, NULL, &sub));
    capmem_cap_t sf = CAPMEM_CAP_NULL;
    assert_ok(capmem_bank_alloc(a, sub, &t, 1, &sf));
    assert_ok(capmem_ds_info(a, sf, &di));
    assert_ok(capmem_bank_remove(a, sub));
    assert_ok(capmem_kernel_frame(a, di.phys, &f));
    assert_true(f.owned);
    assert_int_equal(f.alloc_count, 1);
    assert_err(capmem_kernel_frame(a, 0x100000 + RAM_FRAMES * PAGE, &f), CAPMEM_E_NOT_FOUND);
    assert_err(capmem_kernel_frame(a, 0, NULL), CAPMEM_E_INVALID_ARGS);
    CHECK_INVARIANTS(a);
    capmem_arena_destroy(a);
}

/* capmem_check reports CORRUPT, naming the kernel heap, with @p why in its message. */
static void expect_corrupt(capmem_arena_t *a, const char *why)
{
    char buf[256];
    assert_int_equal(capmem_check(a, buf, sizeof(buf)), CAPMEM_E_CORRUPT);
    if (strstr(buf, why) == NULL) {
        fail_msg("checker said \"%s\", expected \"%s\"", buf, why);
    }
}

/* Each kernel-heap invariant is checked: break it by hand, the checker names it. */
static void test_kernel_checker_finds_each_broken_invariant(void **state)
{
    (void)state;
    capmem_arena_t *a = arena_new();
    boot(a, CAPMEM_KERNEL_FIXED, 64);
    capmem_device_info_t d;
    assert_ok(capmem_arena_device_add(a, DEV_A, 8 * PAGE, &d));
    capmem__kernel_t *k = capmem__kernel_get(a);
    k->used++;
    expect_corrupt(a, "records in use");
    k->used--;
    k->capacity++;
    expect_corrupt(a, "capacity");
    k->capacity--;
    capmem__frec_t *r = capmem__kernel_slot(a, k, 5);
    r->frame++;
    expect_corrupt(a, "not the record of RAM frame 5");
    r->frame--;
    capmem__frec_t *dr = capmem__kernel_slot(a, k, k->devs[0].first - 1);
    dr->frame++;
    expect_corrupt(a, "names another frame");
    dr->frame--;
    k->seen_heap++;
    expect_corrupt(a, "heap frames fell");
    k->seen_heap--;
    a->mem.kernel_reserved += PAGE;
    expect_corrupt(a, "do not add up");
    a->mem.kernel_reserved -= PAGE;
    CHECK_INVARIANTS(a);
    /* An untyped over the kernel's RAM. */
    size_t n = 0;
    assert_ok(capmem_untyped_boot(a, NULL, 0, &n));
    a->mem.kernel_reserved += 1024 * PAGE;
    k->image_frames += 1024;
    expect_corrupt(a, "covers the kernel's RAM");
    a->mem.kernel_reserved -= 1024 * PAGE;
    k->image_frames -= 1024;
    CHECK_INVARIANTS(a);
    capmem_arena_destroy(a);
}

/* Each invariant of the chunks and the device records is checked: break it, the checker says. */
static void test_kernel_checker_finds_each_broken_chunk_and_device_record(void **state)
{
    (void)state;
    capmem_arena_t *a = arena_new();
    boot(a, CAPMEM_KERNEL_FIXED, 64);
    capmem_device_info_t d;
    assert_ok(capmem_arena_device_add(a, DEV_A, 8 * PAGE, &d));
    CHECK_INVARIANTS(a);
    capmem__kernel_t *k = capmem__kernel_get(a);
    k->chunks[0].first_slot++;
    expect_corrupt(a, "chunk 0 does not hold the slots it says");
    k->chunks[0].first_slot--;
    /* The device's records are filed under another id: the range has none. */
    const uint32_t id = k->devs[0].id;
    k->devs[0].id = id + 1;
    expect_corrupt(a, "has no records");
    k->devs[0].id = id;
    const uint64_t first = k->devs[0].first;
    k->devs[0].first = k->capacity + 1;
    expect_corrupt(a, "its record list is broken");
    k->devs[0].first = first;
    /* The list cut after its first record. */
    capmem__frec_t *r = capmem__kernel_slot(a, k, first - 1);
    const uint64_t next = r->next;
    r->next = 0;
    expect_corrupt(a, "has 8 frames and 1 records");
    r->next = next;
    /* Records of a range the arena no longer has. */
    assert_int_equal(k->devs[1].id, 0);
    k->devs[1].id = id + 7;
    expect_corrupt(a, "outlive it");
    k->devs[1].id = 0;
    /* One RAM frame counted as a device frame: the totals agree, the device count does not. */
    k->ram_frames--;
    k->device_used++;
    expect_corrupt(a, "9 device records in use, 8 device frames present");
    k->ram_frames++;
    k->device_used--;
    CHECK_INVARIANTS(a);
    capmem_arena_destroy(a);
}

typedef struct heap_events {
    unsigned n[4]; /* by capmem_kernel_heap_op_t */
    uint64_t frames[4];
} heap_events_t;

static void on_heap(capmem_arena_t *arena, const capmem_event_t *ev, void *ctx)
{
    (void)arena;
    heap_events_t *h = ctx;
    h->n[ev->b]++;
    h->frames[ev->b] += ev->a;
}

static int count_device(uint64_t slot, const capmem__frec_t *rec, void *ctx)
{
    (void)slot;
    *(uint64_t *)ctx += rec->type == CAPMEM_KERNEL_FRAME_DEVICE;
    return 0;
}

static int stop_at_first(uint64_t slot, const capmem__frec_t *rec, void *ctx)
{
    (void)rec;
    *(uint64_t *)ctx = slot;
    return 7;
}

/* The heap's events (boot, growth, release) and the dump's walk over the records. */
static void test_kernel_heap_events_and_walk(void **state)
{
    (void)state;
    capmem_arena_t *a = arena_new();
    heap_events_t h = {{0}, {0}};
    capmem_subscription_t sub = 0;
    assert_ok(capmem_subscribe(a, CAPMEM_EVENT_MASK(CAPMEM_EVENT_KERNEL_HEAP), on_heap, &h, &sub));
    boot(a, CAPMEM_KERNEL_HYBRID, 0);
    capmem_cap_t prime = banks_open(a, 64);
    (void)prime;
    capmem_device_info_t d;
    assert_ok(capmem_arena_device_add(a, DEV_A, 128 * PAGE, &d));
    assert_int_equal(h.n[CAPMEM_KERNEL_HEAP_BOOT], 1);
    assert_int_equal(h.frames[CAPMEM_KERNEL_HEAP_BOOT], 48);
    assert_int_equal(h.n[CAPMEM_KERNEL_HEAP_GROW], 1);
    assert_int_equal(h.frames[CAPMEM_KERNEL_HEAP_GROW], 2); /* 128 * 48 / 4096, rounded up */
    uint64_t dev = 0;
    capmem__kernel_t *k = capmem__kernel_get(a);
    assert_int_equal(capmem__kernel_walk_records(a, k, count_device, &dev), 0);
    assert_int_equal(dev, 128);
    capmem_stats_t st;
    memset(&st, 0, sizeof(st));
    st.size = sizeof(st);
    assert_ok(capmem_stats(a, &st));
    assert_int_equal(st.kernel_records.current, RAM_FRAMES + 128);
    assert_int_equal(st.kernel_records.current, info_of(a).records_used);
    uint64_t first = 99;
    assert_int_equal(capmem__kernel_walk_records(a, k, stop_at_first, &first), 7);
    assert_int_equal(first, 0);
    /* A second device, the first removed: the other's records stay. */
    capmem_device_info_t d2;
    assert_ok(capmem_arena_device_add(a, DEV_B, 16 * PAGE, &d2));
    assert_ok(capmem_arena_device_remove(a, d.id));
    CHECK_INVARIANTS(a);
    assert_ok(capmem_unsubscribe(a, sub));
    capmem_arena_destroy(a);

    a = arena_new();
    h = (heap_events_t){{0}, {0}};
    assert_ok(capmem_subscribe(a, CAPMEM_EVENT_MASK(CAPMEM_EVENT_KERNEL_HEAP), on_heap, &h, &sub));
    boot(a, CAPMEM_KERNEL_CONSERVATIVE, 8192);
    assert_ok(capmem_kernel_end_boot(a, 0));
    assert_int_equal(h.n[CAPMEM_KERNEL_HEAP_RELEASE], 1);
    assert_int_equal(h.frames[CAPMEM_KERNEL_HEAP_RELEASE], 96);
    capmem_arena_destroy(a);
}

static void test_kernel_strategy_names(void **state)
{
    (void)state;
    assert_string_equal(capmem_kernel_strategy_name(CAPMEM_KERNEL_FIXED), "fixed reserve");
    assert_string_equal(capmem_kernel_strategy_name(CAPMEM_KERNEL_HYBRID), "hybrid");
    assert_string_equal(capmem_kernel_strategy_name(CAPMEM_KERNEL_CONSERVATIVE), "conservative");
    assert_string_equal(capmem_kernel_strategy_name((capmem_kernel_strategy_t)0), "unknown");
    assert_string_equal(capmem_err_name(CAPMEM_E_LIMIT_REACHED), "LIMIT_REACHED");
    assert_string_equal(capmem_event_kind_name(CAPMEM_EVENT_KERNEL_HEAP), "kernel heap");
    assert_true(CAPMEM_EVENT_KIND_COUNT <= 32);
}

/* Nothing changed: the kernel's info, and the prime bank's when there is one. */
static void same_kernel(capmem_arena_t *a, const capmem_kernel_info_t *before)
{
    capmem_kernel_info_t now = info_of(a);
    assert_memory_equal(&now, before, sizeof(now));
}

static capmem_bank_info_t bank_of(capmem_arena_t *a, capmem_cap_t b)
{
    capmem_bank_info_t i;
    assert_ok(capmem_bank_info(a, b, &i));
    return i;
}

/* Before RAM is handed out, a larger reserve grows the boot heap in place, as a larger boot. */
static void test_kernel_set_reserve_grows_the_boot_heap_while_booting(void **state)
{
    (void)state;
    capmem_arena_t *a = arena_new();
    boot(a, CAPMEM_KERNEL_FIXED, 1024);
    assert_int_equal(info_of(a).boot_heap_frames, 60);
    capmem_kernel_info_t before = info_of(a);
    /* Shrinking is refused (a heap frame is never returned); the same reserve changes nothing. */
    assert_err(capmem_kernel_set_reserve(a, 1000), CAPMEM_E_DENIED);
    assert_int_equal(capmem_last_error()->needed, 1000);
    assert_int_equal(capmem_last_error()->available, 1024);
    same_kernel(a, &before);
    assert_ok(capmem_kernel_set_reserve(a, 1024));
    same_kernel(a, &before);
    /* More than RAM can hold with a frame to spare, or an overflow: OUT_OF_RAM. */
    assert_err(capmem_kernel_set_reserve(a, 400000), CAPMEM_E_OUT_OF_RAM);
    same_kernel(a, &before);
    assert_err(capmem_kernel_set_reserve(a, UINT64_MAX), CAPMEM_E_OUT_OF_RAM);
    same_kernel(a, &before);
    CHECK_INVARIANTS(a);
    /* 2,048: the boot heap is 72 frames, as if booted with it; the records are there. */
    heap_events_t h = {{0}, {0}};
    capmem_subscription_t sub = 0;
    assert_ok(capmem_subscribe(a, CAPMEM_EVENT_MASK(CAPMEM_EVENT_KERNEL_HEAP), on_heap, &h, &sub));
    assert_ok(capmem_kernel_set_reserve(a, 2048));
    assert_int_equal(h.n[CAPMEM_KERNEL_HEAP_BOOT], 1);
    assert_int_equal(h.frames[CAPMEM_KERNEL_HEAP_BOOT], 12);
    capmem_kernel_info_t i = info_of(a);
    assert_int_equal(i.boot_heap_frames, 72);
    assert_int_equal(i.heap_frames, 72);
    assert_int_equal(i.borrowed_frames, 0);
    assert_int_equal(i.records_capacity, 6144);
    assert_int_equal(i.device_reserve, 2048);
    assert_int_equal(i.kernel_frames, 136);
    capmem_kernel_frame_t f;
    assert_ok(capmem_kernel_frame(a, 0x100000 + 130 * PAGE, &f));
    assert_true(f.flags & CAPMEM_KERNEL_FLAG_KERNEL); /* now a heap frame */
    CHECK_INVARIANTS(a);
    capmem_device_info_t d;
    assert_ok(capmem_arena_device_add(a, DEV_A, 2048 * PAGE, &d));
    CHECK_INVARIANTS(a);
    /* The boot untypeds start after the grown heap. */
    capmem_untyped_info_t ut[16];
    size_t n = 0;
    assert_ok(capmem_untyped_boot(a, ut, 16, &n));
    for (size_t k = 0; k < n && k < 16; k++) {
        assert_true(ut[k].device || ut[k].phys >= 0x100000 + 136 * PAGE);
    }
    CHECK_INVARIANTS(a);
    capmem_arena_destroy(a);
}

/*
 * After RAM is handed out the reserve grows only by frames the banks lend:
 * charged to the kernel's bank (made now under FIXED), the prime bank's
 * limit unchanged. Each refusal changes nothing.
 */
static void test_kernel_set_reserve_after_boot_borrows_from_the_banks(void **state)
{
    (void)state;
    capmem_arena_t *a = arena_new();
    boot(a, CAPMEM_KERNEL_FIXED, 1024);
    capmem_cap_t root = CAPMEM_CAP_NULL;
    assert_ok(capmem_ram_boot(a, NULL, &root));
    capmem_kernel_info_t before = info_of(a);
    /* No bank service: nobody may lend, and the kernel takes nothing from under the RAM service. */
    assert_err(capmem_kernel_set_reserve(a, 2048), CAPMEM_E_DENIED);
    same_kernel(a, &before);
    capmem_bank_service_attr_t at = CAPMEM_BANK_SERVICE_ATTR_INIT;
    at.frames = 100;
    capmem_cap_t prime = CAPMEM_CAP_NULL;
    assert_ok(capmem_bank_service_create(a, root, &at, &prime));
    CHECK_INVARIANTS(a);
    assert_int_equal(bank_of(a, prime).children, 0); /* FIXED: no kernel bank yet */
    capmem_device_info_t d;
    assert_err(capmem_arena_device_add(a, DEV_A, 2048 * PAGE, &d), CAPMEM_E_OUT_OF_METADATA);
    /* 1,024 records more: 12 frames borrowed, charged to the kernel bank under the prime bank. */
    assert_ok(capmem_kernel_set_reserve(a, 2048));
    capmem_kernel_info_t i = info_of(a);
    assert_int_equal(i.borrowed_frames, 12);
    assert_int_equal(i.heap_frames, 60 + 12);
    assert_int_equal(i.boot_heap_frames, 60);
    assert_true(i.device_reserve >= 2048);
    capmem_bank_info_t pi = bank_of(a, prime);
    assert_int_equal(pi.limit[CAPMEM_BANK_FRAME], 100); /* the prime limit never falls */
    assert_int_equal(pi.used[CAPMEM_BANK_FRAME], 12);
    assert_int_equal(pi.used[CAPMEM_BANK_NODE], 1); /* the kernel bank's record */
    assert_int_equal(pi.children, 1);
    CHECK_INVARIANTS(a);
    assert_ok(capmem_arena_device_add(a, DEV_A, 2048 * PAGE, &d));
    CHECK_INVARIANTS(a);
    /* Below what the heap holds now: refused; a growth that overflows: RANGE. */
    before = info_of(a);
    assert_err(capmem_kernel_set_reserve(a, 1024), CAPMEM_E_DENIED);
    same_kernel(a, &before);
    assert_err(capmem_kernel_set_reserve(a, UINT64_MAX), CAPMEM_E_RANGE);
    same_kernel(a, &before);
    /* The banks lend what their limits allow: 88 frames left, 24 + 12 asked. */
    capmem_cap_t fr[80];
    const capmem_bank_type_t t = CAPMEM_BANK_FRAME;
    for (int k = 0; k < 80; k++) {
        assert_ok(capmem_bank_alloc(a, prime, &t, 1, &fr[k]));
    }
    pi = bank_of(a, prime);
    assert_err(capmem_kernel_set_reserve(a, 2048 + 9 * 85 + 1), CAPMEM_E_LIMIT_REACHED);
    assert_int_equal(capmem_last_error()->needed, 9);
    assert_int_equal(capmem_last_error()->available, 8);
    same_kernel(a, &before);
    capmem_bank_info_t pj = bank_of(a, prime);
    assert_memory_equal(&pi, &pj, sizeof(pi));
    /* Free frames scattered: no contiguous run (OUT_OF_PHYS). */
    for (int k = 0; k < 80; k += 2) {
        assert_ok(capmem_bank_free(a, prime, &fr[k], 1));
    }
    pi = bank_of(a, prime);
    assert_err(capmem_kernel_set_reserve(a, 2048 + 9 * 85 + 1), CAPMEM_E_OUT_OF_PHYS);
    same_kernel(a, &before);
    pj = bank_of(a, prime);
    assert_memory_equal(&pi, &pj, sizeof(pi));
    CHECK_INVARIANTS(a);
    /* The service cannot close under the heap's borrowed frames. */
    assert_err(capmem_bank_service_destroy(a, prime), CAPMEM_E_DELETE_FIRST);
    CHECK_INVARIANTS(a);
    capmem_arena_destroy(a);
}

/* The heap grows at most 63 times after boot (64 chunks); the strategy and boot are checked. */
static void test_kernel_set_reserve_limits(void **state)
{
    (void)state;
    assert_err(capmem_kernel_set_reserve(NULL, 1), CAPMEM_E_INVALID_ARGS);
    capmem_arena_t *a = arena_new();
    assert_err(capmem_kernel_set_reserve(a, 1), CAPMEM_E_NOT_FOUND);
    boot(a, CAPMEM_KERNEL_HYBRID, 0);
    capmem_cap_t prime = banks_open(a, 200);
    uint64_t reserve = info_of(a).records_capacity - RAM_FRAMES;
    for (int k = 1; k < 64; k++) {
        reserve += 85; /* one frame of 48-byte records */
        assert_ok(capmem_kernel_set_reserve(a, reserve));
    }
    CHECK_INVARIANTS(a);
    capmem_kernel_info_t before = info_of(a);
    assert_int_equal(before.borrowed_frames, 63);
    assert_int_equal(bank_of(a, prime).used[CAPMEM_BANK_NODE], 1); /* HYBRID's kernel bank */
    assert_err(capmem_kernel_set_reserve(a, reserve + 1), CAPMEM_E_OUT_OF_METADATA);
    same_kernel(a, &before);
    capmem_arena_destroy(a);
    /* CONSERVATIVE reserved its window at boot: no reconfiguration. */
    a = arena_new();
    boot(a, CAPMEM_KERNEL_CONSERVATIVE, 1024);
    before = info_of(a);
    assert_err(capmem_kernel_set_reserve(a, 2048), CAPMEM_E_UNSUPPORTED);
    same_kernel(a, &before);
    CHECK_INVARIANTS(a);
    capmem_arena_destroy(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kernel_boot_sizes_heap_from_frame_count),
        cmocka_unit_test(test_kernel_record_size_is_a_parameter),
        cmocka_unit_test(test_kernel_bad_boot_changes_nothing),
        cmocka_unit_test(test_kernel_fixed_reserve_refuses_beyond_it),
        cmocka_unit_test(test_kernel_device_with_untyped_cannot_be_removed),
        cmocka_unit_test(test_kernel_conservative_end_of_boot_releases_to_prime_bank),
        cmocka_unit_test(test_kernel_released_frames_wait_for_the_bank_service),
        cmocka_unit_test(test_kernel_hybrid_grows_through_the_banks),
        cmocka_unit_test(test_kernel_hybrid_growth_needs_a_contiguous_run),
        cmocka_unit_test(test_kernel_account_close_under_lent_heap_is_refused),
        cmocka_unit_test(test_kernel_frame_records_follow_the_banks),
        cmocka_unit_test(test_kernel_checker_finds_each_broken_invariant),
        cmocka_unit_test(test_kernel_checker_finds_each_broken_chunk_and_device_record),
        cmocka_unit_test(test_kernel_heap_events_and_walk),
        cmocka_unit_test(test_kernel_strategy_names),
        cmocka_unit_test(test_kernel_set_reserve_grows_the_boot_heap_while_booting),
        cmocka_unit_test(test_kernel_set_reserve_after_boot_borrows_from_the_banks),
        cmocka_unit_test(test_kernel_set_reserve_limits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
