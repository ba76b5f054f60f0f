/* SPDX-License-Identifier: MIT */
/*
 * The three kernel-heap strategies of the Coyotos discussion, side by side.
 *
 * 4,096 RAM frames of 4 KiB, 48-byte frame records, a 64-frame kernel
 * image, a device window of 4,096 frames. Each strategy boots, a bank
 * service takes all RAM left, then: plug device A (1,024 frames) and B
 * (2,048); fill the banks with user frames (a users' bank limited to 1,000,
 * the rest straight from the prime bank); unplug B; hot-plug C (3,072
 * frames); destroy the users' bank and plug C again. The table shows the
 * frames reserved at boot, the prime bank's limit, and which step fails
 * and why. tests/kernel_heap.expected holds the output the test suite
 * compares it with, number for number.
 */
#define EXAMPLE_NAME "kernel_heap"
#include <string.h>

#include "example.h"

#define PAGE 4096ull
#define DEV_A 0x100000000ull
#define DEV_B 0x140000000ull
#define DEV_C 0x180000000ull

enum { ROWS = 12, COLS = 3 };

static char cell[ROWS][COLS][40];
static char why[COLS][4][320];
static int nwhy[COLS];

static const char *const rows[ROWS] = {
    "boot: heap frames reserved",   "boot: kernel frames (image + heap)",
    "end of boot: frames released", "prime bank's frame limit",
    "plug A (1,024 frames)",        "plug B (2,048 frames)",
    "fill the banks: user frames",  "unplug B",
    "hot-plug C (3,072 frames)",    "destroy users' bank, plug C again",
    "heap frames at the end",       "records in use at the end",
};

static void setf(int row, int col, const char *fmt, unsigned long long v)
{
    snprintf(cell[row][col], sizeof(cell[row][col]), fmt, v);
}

/* A step that may fail: "ok", or the error's name with its reason kept for below the table. */
static void step(int row, int col, capmem_err_t err, const char *extra)
{
    if (err == CAPMEM_OK) {
        snprintf(cell[row][col], sizeof(cell[row][col]), "ok%s", extra);
        return;
    }
    snprintf(cell[row][col], sizeof(cell[row][col]), "%s", capmem_err_name(err));
    snprintf(why[col][nwhy[col]++], sizeof(why[col][0]), "%s: %s", rows[row],
             capmem_last_error()->message);
}

static uint64_t borrowed(capmem_arena_t *a)
{
    capmem_kernel_info_t k;
    TRY(capmem_kernel_info(a, &k));
    return k.borrowed_frames;
}

static void run(int col, capmem_kernel_strategy_t strategy, uint64_t device_frames)
{
    capmem_arena_attr_t at = CAPMEM_ARENA_ATTR_INIT;
    at.ram_size = 4096 * PAGE;
    at.device_window = 4096 * PAGE;
    capmem_arena_t *a = NULL;
    TRY(capmem_arena_create(&at, &a));
    capmem_kernel_attr_t ka = CAPMEM_KERNEL_ATTR_INIT;
    ka.strategy = strategy;
    ka.device_frames = device_frames;
    TRY(capmem_kernel_boot(a, &ka));
    capmem_kernel_info_t k;
    TRY(capmem_kernel_info(a, &k));
    setf(0, col, "%llu", (unsigned long long)k.boot_heap_frames);
    setf(1, col, "%llu", (unsigned long long)k.kernel_frames);
    if (strategy == CAPMEM_KERNEL_CONSERVATIVE) {
        /* Enumeration found a 4,096-frame window: keep its records, release the rest. */
        TRY(capmem_kernel_end_boot(a, 4096));
        TRY(capmem_kernel_info(a, &k));
        setf(2, col, "%llu", (unsigned long long)k.released_frames);
    } else {
        snprintf(cell[2][col], sizeof(cell[2][col]), "-");
    }

    capmem_cap_t root = CAPMEM_CAP_NULL;
    TRY(capmem_ram_boot(a, NULL, &root));
    capmem_bank_service_attr_t sa = CAPMEM_BANK_SERVICE_ATTR_INIT;
    sa.donation = 256 * 1024; /* records for every frame the banks can hand out */
    capmem_cap_t prime = CAPMEM_CAP_NULL;
    TRY(capmem_bank_service_create(a, root, &sa, &prime));
    capmem_bank_info_t bi;
    TRY(capmem_bank_info(a, prime, &bi));
    setf(3, col, "%llu", (unsigned long long)bi.limit[CAPMEM_BANK_FRAME]);
    TRY(capmem_check(a, NULL, 0));

    capmem_device_info_t da, db = {0}, dc;
    step(4, col, capmem_arena_device_add(a, DEV_A, 1024 * PAGE, &da), "");
    uint64_t b0 = borrowed(a);
    capmem_err_t err = capmem_arena_device_add(a, DEV_B, 2048 * PAGE, &db);
    char extra[40] = "";
    if (borrowed(a) > b0) {
        snprintf(extra, sizeof(extra), " (+%llu borrowed)", (unsigned long long)(borrowed(a) - b0));
    }
    step(5, col, err, extra);
    TRY(capmem_check(a, NULL, 0));

    /* The users' bank takes its 1,000 frames, the prime bank the rest: the banks are full. */
    capmem_bank_limits_t lim = {.limit = {1000, CAPMEM_BANK_UNLIMITED}};
    capmem_cap_t users = CAPMEM_CAP_NULL;
    TRY(capmem_bank_create(a, prime, &lim, &users));
    const capmem_bank_type_t t = CAPMEM_BANK_FRAME;
    capmem_cap_t fr = CAPMEM_CAP_NULL;
    unsigned long long n = 0;
    while (capmem_bank_alloc(a, users, &t, 1, &fr) == CAPMEM_OK) {
        n++;
    }
    EXPECT(n == 1000 && capmem_last_error()->code == CAPMEM_E_LIMIT_REACHED);
    while (capmem_bank_alloc(a, prime, &t, 1, &fr) == CAPMEM_OK) {
        n++;
    }
    EXPECT(capmem_last_error()->code == CAPMEM_E_LIMIT_REACHED);
    setf(6, col, "%llu", n);
    TRY(capmem_check(a, NULL, 0));

    if (err == CAPMEM_OK) {
        step(7, col, capmem_arena_device_remove(a, db.id), "");
    } else {
        snprintf(cell[7][col], sizeof(cell[7][col]), "(not plugged)");
    }
    b0 = borrowed(a);
    err = capmem_arena_device_add(a, DEV_C, 3072 * PAGE, &dc);
    const bool c_in = err == CAPMEM_OK;
    step(8, col, err, "");
    TRY(capmem_check(a, NULL, 0));

    TRY(capmem_bank_destroy(a, users));
    if (c_in) {
        snprintf(cell[9][col], sizeof(cell[9][col]), "(plugged already)");
    } else {
        b0 = borrowed(a);
        err = capmem_arena_device_add(a, DEV_C, 3072 * PAGE, &dc);
        extra[0] = '\0';
        if (borrowed(a) > b0) {
            snprintf(extra, sizeof(extra), " (+%llu borrowed)",
                     (unsigned long long)(borrowed(a) - b0));
        }
        step(9, col, err, extra);
    }
    TRY(capmem_check(a, NULL, 0));
    TRY(capmem_kernel_info(a, &k));
    setf(10, col, "%llu", (unsigned long long)k.heap_frames);
    setf(11, col, "%llu", (unsigned long long)k.records_used);
    capmem_arena_destroy(a);
}

int main(void)
{
    run(0, CAPMEM_KERNEL_FIXED, 2048);
    run(1, CAPMEM_KERNEL_HYBRID, 1024);
    run(2, CAPMEM_KERNEL_CONSERVATIVE, 8192);
    printf("%-36s %-18s %-18s %-18s\n", "", "fixed reserve", "hybrid", "conservative");
    printf("%-36s %-18s %-18s %-18s\n", "", "(2,048 reserved)", "(1,024 fixed)", "(8,192 window)");
    for (int r = 0; r < ROWS; r++) {
        printf("%-36s %-18s %-18s %-18s\n", rows[r], cell[r][0], cell[r][1], cell[r][2]);
    }
    static const char *const names[COLS] = {"fixed reserve", "hybrid", "conservative"};
    for (int c = 0; c < COLS; c++) {
        printf("\n%s:%s\n", names[c], nwhy[c] == 0 ? " no step failed" : "");
        for (int i = 0; i < nwhy[c]; i++) {
            printf("  %s\n", why[c][i]);
        }
    }
    return 0;
}
