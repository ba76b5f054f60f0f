/* SPDX-License-Identifier: MIT */
/*
 * The guided tour of libcapmem: one pass through the whole model, layer by
 * layer, printing what happens and why. Run it with ./scripts/demo.
 *
 * Every step checks its result; the tour exits non-zero if anything it
 * shows does not hold, so the test suite runs it too.
 */
#include <capmem.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures;

#define EXPECT(cond)                                                                               \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "tour: expectation failed at line %d: %s\n", __LINE__, #cond);         \
            failures++;                                                                            \
        }                                                                                          \
    } while (0)

#define TRY(call)                                                                                  \
    do {                                                                                           \
        capmem_err_t err_ = (call);                                                                \
        if (err_ != CAPMEM_OK) {                                                                   \
            fprintf(stderr, "tour: %s failed: %s (%s)\n", #call, capmem_err_name(err_),            \
                    capmem_last_error()->message);                                                 \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

static void heading(const char *title)
{
    printf("\n== %s ==\n\n", title);
}

static const char *rights_str(unsigned r, char buf[4])
{
    buf[0] = (r & CAPMEM_RIGHT_READ) ? 'r' : '-';
    buf[1] = (r & CAPMEM_RIGHT_WRITE) ? 'w' : '-';
    buf[2] = (r & CAPMEM_RIGHT_GRANT) ? 'g' : '-';
    buf[3] = '\0';
    return buf;
}

static int print_cap(const capmem_cap_info_t *info, unsigned depth, void *ctx)
{
    (void)ctx;
    char r[4];
    printf("    %*s%s %-12s rights %s  handle 0x%016" PRIx64 "\n", (int)depth * 4, "",
           depth ? "`-" : "*", capmem_obj_type_name(info->type), rights_str(info->rights, r),
           info->cap);
    return 0;
}

static void on_event(capmem_arena_t *arena, const capmem_event_t *ev, void *ctx)
{
    (void)arena;
    (void)ctx;
    if (ev->kind == CAPMEM_EVENT_REVOKE || ev->kind == CAPMEM_EVENT_UPGRADE ||
        ev->kind == CAPMEM_EVENT_TRANSFER || ev->kind == CAPMEM_EVENT_RETYPE) {
        printf("    [event: %s] %s\n", capmem_event_kind_name(ev->kind), ev->message);
    }
}

/* A user object: the tour's own "file" type, to show the capability layer alone. */
static int files_closed;
static void close_file(void *object, void *ctx)
{
    (void)ctx;
    printf("    (teardown: file \"%s\" closed)\n", (const char *)object);
    files_closed++;
}
static const capmem_user_type_t file_type = {.name = "file", .destroy = close_file};

static void tour_arena(capmem_arena_t **out)
{
    heading("1. The arena: simulated physical RAM");
    capmem_arena_attr_t attr = CAPMEM_ARENA_ATTR_INIT;
    attr.ram_size = 16ull << 20;
    attr.phys_base = 0x40000000;
    attr.device_window = 1ull << 20;
    capmem_arena_t *arena = NULL;
    TRY(capmem_arena_create(&attr, &arena));
    printf("An arena stands in for the machine's RAM: %" PRIu64 " MiB in %" PRIu64
           "-byte pages,\nbacked by a %s mapping (pages are only real once touched).\n",
           capmem_arena_ram_size(arena) >> 20, capmem_arena_page_size(arena),
           capmem_backing_name(capmem_arena_backing(arena)));
    uint64_t phys = 0;
    TRY(capmem_arena_offset_to_phys(arena, 0x1000, &phys));
    printf("RAM offset 0x1000 is physical address 0x%" PRIx64 ".\n", phys);
    EXPECT(phys == 0x40001000);

    capmem_device_info_t dev;
    TRY(capmem_arena_device_add(arena, 0xfee00000, 0x10000, &dev));
    printf("A device range (say, a frame buffer) is registered at 0x%" PRIx64 " (+0x%" PRIx64
           "):\nit lives beside RAM and is never handed out as RAM.\n",
           dev.phys, dev.size);
    capmem_device_info_t bad;
    capmem_err_t err = capmem_arena_device_add(arena, 0x40002000, 0x1000, &bad);
    printf("Registering a device on top of RAM is refused: %s (%s).\n", capmem_err_name(err),
           capmem_last_error()->message);
    EXPECT(err == CAPMEM_E_REGION_CONFLICT);
    *out = arena;
}

static void tour_caps(capmem_arena_t *arena)
{
    heading("2. Capabilities: handles with rights, in a derivation tree");
    static char name[] = "notes.txt";
    capmem_cap_t file = CAPMEM_CAP_NULL;
    TRY(capmem_cap_create_user(arena, &file_type, name, CAPMEM_RIGHTS_ALL, &file));
    printf("A capability is an opaque 64-bit handle (slot, generation, type), never a pointer.\n"
           "We create one for a file object with all rights (read, write, grant).\n\n");
    capmem_cap_t reader = CAPMEM_CAP_NULL;
    capmem_cap_t lender = CAPMEM_CAP_NULL;
    capmem_cap_t reader2 = CAPMEM_CAP_NULL;
    TRY(capmem_cap_mint(arena, file, CAPMEM_RIGHT_READ | CAPMEM_RIGHT_GRANT, &lender));
    TRY(capmem_cap_mint(arena, lender, CAPMEM_RIGHT_READ, &reader));
    TRY(capmem_cap_mint(arena, file, CAPMEM_RIGHT_READ | CAPMEM_RIGHT_WRITE, &reader2));
    printf("Minting derives children with fewer rights. The tree now reads:\n");
    TRY(capmem_cap_walk(arena, file, print_cap, NULL));

    capmem_cap_t sneaky = CAPMEM_CAP_NULL;
    capmem_err_t err = capmem_cap_mint(arena, lender, CAPMEM_RIGHTS_ALL, &sneaky);
    printf("\nAsking a read+grant capability for write access: %s.\n", capmem_err_name(err));
    EXPECT(err == CAPMEM_E_DENIED);
    err = capmem_cap_mint(arena, reader, CAPMEM_RIGHT_READ, &sneaky);
    printf("Deriving from a capability without the grant right: %s.\n", capmem_err_name(err));
    EXPECT(err == CAPMEM_E_DENIED);
    err = capmem_cap_delete(arena, file);
    printf("Deleting the original while it has children: %s.\n", capmem_err_name(err));
    EXPECT(err == CAPMEM_E_REVOKE_FIRST);

    printf("\nRevoking the original destroys every capability derived from it:\n");
    TRY(capmem_cap_revoke(arena, file));
    TRY(capmem_cap_walk(arena, file, print_cap, NULL));
    capmem_cap_info_t info;
    err = capmem_cap_identify(arena, reader, &info);
    printf("The old reader handle is now stale: %s (%s).\n", capmem_err_name(err),
           capmem_last_error()->message);
    EXPECT(err == CAPMEM_E_INVALID_CAP);
    err = capmem_cap_identify(arena, 0x0123456789abcdefull, &info);
    printf("A forged handle is refused the same way, never a crash: %s.\n", capmem_err_name(err));
    EXPECT(err == CAPMEM_E_INVALID_CAP);
    printf("Deleting the original destroys the object itself:\n");
    TRY(capmem_cap_delete(arena, file));
    EXPECT(files_closed == 1);
}

int main(void)
{
    printf("libcapmem %s: a guided tour of capability-based memory accounting\n", capmem_version());
    capmem_arena_t *arena = NULL;
    tour_arena(&arena);
    TRY(capmem_arena_set_event_handler(arena, on_event, NULL));
    tour_caps(arena);

    char why[256];
    TRY(capmem_check(arena, why, sizeof(why)));
    printf("\nAll invariants hold (capmem_check). %s\n", failures ? "" : "End of the tour.");
    capmem_arena_destroy(arena);
    return failures ? 1 : 0;
}
