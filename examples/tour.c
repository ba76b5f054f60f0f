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

#define EXAMPLE_NAME "tour"
#include "example.h"

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
           depth ? "`-" : "*", info->name, rights_str(info->rights, r), info->cap);
    return 0;
}

/* Which events the current section narrates. */
static capmem_event_kind_t narrate = CAPMEM_EVENT_REVOKE;

static void on_event(capmem_arena_t *arena, const capmem_event_t *ev, void *ctx)
{
    (void)arena;
    (void)ctx;
    if (ev->kind == narrate) {
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

static void tour_untyped(capmem_arena_t *arena)
{
    heading("3. Untyped memory: seL4's retype");
    capmem_untyped_info_t boot[16];
    size_t n = 0;
    TRY(capmem_untyped_boot(arena, boot, 16, &n));
    printf("At boot, RAM is offered as untyped regions, each a naturally aligned power of two:\n");
    for (size_t i = 0; i < n; i++) {
        printf("    %s untyped at 0x%08" PRIx64 ", 2^%u bytes\n",
               boot[i].device ? "device" : "RAM   ", boot[i].phys, boot[i].size_bits);
    }
    printf("\nRetype cuts objects out of an untyped. The watermark policy (seL4's) aligns\n"
           "each object to its size and never goes back, so a gap can be lost forever:\n");
    const char *names[] = {"watermark", "range", "buddy"};
    for (int p = 0; p < 3; p++) {
        capmem_retype_attr_t at = CAPMEM_RETYPE_ATTR_INIT;
        at.type = CAPMEM_OBJ_UNTYPED;
        at.size_bits = 13; /* 0x2000 */
        at.child_policy = (capmem_untyped_policy_t)p;
        capmem_cap_t ut;
        TRY(capmem_untyped_retype(arena, boot[0].cap, &at, &ut, 1));
        const unsigned bits[] = {10, 11, 12, 10};
        printf("    %-9s 0x2000 untyped:", names[p]);
        for (int i = 0; i < 4; i++) {
            capmem_retype_attr_t kt = CAPMEM_RETYPE_ATTR_INIT;
            kt.type = CAPMEM_OBJ_KOBJ;
            kt.size_bits = bits[i];
            capmem_cap_t obj;
            capmem_err_t err = capmem_untyped_retype(arena, ut, &kt, &obj, 1);
            if (err == CAPMEM_OK) {
                capmem_object_info_t oi;
                capmem_untyped_info_t ui;
                TRY(capmem_object_info(arena, obj, &oi));
                TRY(capmem_untyped_info(arena, ut, &ui));
                printf(" 0x%x@0x%" PRIx64, 1u << bits[i], oi.offset - ui.offset);
            } else {
                printf("\n        -> %s", capmem_last_error()->message);
                EXPECT(p == 0 && i == 3);
            }
        }
        printf("\n");
        TRY(capmem_cap_revoke(arena, ut));
        TRY(capmem_cap_delete(arena, ut));
    }
    printf(
        "Range and buddy put the fourth object in the gap; watermark fails with seL4's words.\n");
}

static void tour_ram(capmem_arena_t *arena, capmem_cap_t *root_out)
{
    heading("4. The RAM service: quota, donations, upgrades (Genode)");
    capmem_cap_t root;
    TRY(capmem_ram_boot(arena, NULL, &root));
    capmem_ram_info_t ri;
    TRY(capmem_ram_info(arena, root, &ri));
    printf("The RAM service takes the remaining untyped RAM: its root account holds %" PRIu64
           " KiB\n(plus a %" PRIu64 " KiB donation that pays for its own bookkeeping).\n",
           ri.quota >> 10, ri.donation >> 10);
    capmem_ram_open_attr_t at = CAPMEM_RAM_OPEN_ATTR_INIT;
    at.quota = 2 << 20;
    at.donation = 4096; /* a deliberately small donation: 60 records */
    at.label = "app";
    capmem_cap_t app;
    TRY(capmem_ram_open(arena, root, &at, &app));
    printf("\nThe root opens a session \"app\" with 2 MiB of quota and a 4 KiB donation.\n"
           "Each dataspace costs a 64-byte record carved from that donation:\n");
    unsigned count = 0;
    capmem_cap_t ds;
    capmem_err_t err;
    while ((err = capmem_ram_alloc(arena, app, 4096, &ds)) == CAPMEM_OK) {
        count++;
    }
    printf("    %u dataspaces, then: %s (%s)\n", count, capmem_err_name(err),
           capmem_last_error()->message);
    EXPECT(err == CAPMEM_E_OUT_OF_METADATA && count == 4096 / 64 - 1 - 3);
    printf("An expanding client reacts by upgrading its donation from its own quota:\n");
    TRY(capmem_ram_set_expanding(arena, app, 1, 8192));
    for (int i = 0; i < 200; i++) {
        TRY(capmem_ram_alloc(arena, app, 4096, &ds));
    }
    capmem_ram_info_t ai;
    TRY(capmem_ram_info(arena, app, &ai));
    TRY(capmem_ram_info(arena, root, &ri));
    printf("    app: quota %" PRIu64 " KiB, used %" PRIu64 " KiB, donation %" PRIu64
           " KiB after %" PRIu64 " upgrades\n",
           ai.quota >> 10, ai.used >> 10, ai.donation >> 10, ai.upgrades);
    uint64_t sum = ri.quota + ri.donation + ai.quota + ai.donation;
    printf("    root quota + donation + app quota + donation = %" PRIu64
           " KiB = all the RAM the service has\n",
           sum >> 10);
    capmem_cap_t none;
    err = capmem_ram_alloc(arena, app, 4ull << 20, &none);
    printf("A 4 MiB dataspace is beyond app's quota: %s.\n", capmem_err_name(err));
    EXPECT(err == CAPMEM_E_OUT_OF_RAM);
    TRY(capmem_ram_close(arena, app));
    TRY(capmem_ram_info(arena, root, &ri));
    printf("Closing app frees its dataspaces and returns everything: root holds %" PRIu64
           " KiB again.\n",
           ri.quota >> 10);
    *root_out = root;
}

static void tour_alias(capmem_arena_t *arena, capmem_cap_t root)
{
    heading("5. Dataspaces and aliases: who pays when memory is shared");
    capmem_ram_open_attr_t at = CAPMEM_RAM_OPEN_ATTR_INIT;
    at.quota = 1 << 20;
    at.label = "lender";
    capmem_cap_t lender;
    capmem_cap_t borrower;
    TRY(capmem_ram_open(arena, root, &at, &lender));
    at.quota = 0;
    at.label = "borrower";
    TRY(capmem_ram_open(arena, root, &at, &borrower));
    capmem_cap_t ds;
    TRY(capmem_ram_alloc(arena, lender, 16384, &ds));
    TRY(capmem_ds_write(arena, ds, 8192, "shared page", 12));
    capmem_alias_attr_t aa = CAPMEM_ALIAS_ATTR_INIT;
    aa.offset = 8192;
    aa.size = 8192;
    aa.writable = 0;
    capmem_cap_t dep;
    TRY(capmem_ds_alias(arena, borrower, ds, &aa, &dep));
    aa.lifetime = CAPMEM_ALIAS_FIRST_CLASS;
    capmem_cap_t fc;
    TRY(capmem_ds_alias(arena, borrower, ds, &aa, &fc));
    char buf[12];
    TRY(capmem_ds_read(arena, fc, 0, buf, 12));
    printf("The lender allocates 16 KiB; the borrower takes two read-only aliases of its\n"
           "last 8 KiB, one dependent and one first-class. Both read \"%s\".\n",
           buf);
    capmem_err_t err = capmem_ds_write(arena, fc, 0, "x", 1);
    printf("Writing through a read-only alias: %s (it is ROM).\n", capmem_err_name(err));
    EXPECT(err == CAPMEM_E_DENIED);
    TRY(capmem_ds_free(arena, ds));
    capmem_ds_info_t di;
    printf("\nThe lender frees the original:\n    dependent alias: %s\n",
           capmem_ds_info(arena, dep, &di) == CAPMEM_OK ? "alive" : "revoked with it");
    TRY(capmem_ds_read(arena, fc, 0, buf, 12));
    capmem_ram_info_t li;
    TRY(capmem_ram_info(arena, lender, &li));
    printf("    first-class alias: alive, still reads \"%s\"\n"
           "    lender: used %" PRIu64 " KiB, of which lent %" PRIu64
           " KiB (only the unshared 8 KiB came back)\n",
           buf, li.used >> 10, li.lent >> 10);
    EXPECT(li.used == 8192 && li.lent == 8192);
    TRY(capmem_ds_free(arena, fc));
    TRY(capmem_ram_info(arena, lender, &li));
    printf("The borrower lets go: lender used %" PRIu64 " KiB. The lender pays until the last\n"
           "borrower lets go.\n",
           li.used >> 10);
    TRY(capmem_ram_close(arena, borrower));
    TRY(capmem_ram_close(arena, lender));
}

/* The tour's pager: a fault in the heap map gets a fresh zeroed page. */
typedef struct pager {
    capmem_cap_t account;
    unsigned faults;
} pager_t;

static capmem_rm_fault_result_t page_in(capmem_arena_t *arena, const capmem_rm_fault_t *f,
                                        void *ctx)
{
    pager_t *p = ctx;
    p->faults++;
    printf("    [fault] %s at 0x%" PRIx64 ": the handler attaches a fresh page there\n",
           capmem_rm_access_name(f->access), f->address);
    capmem_cap_t page;
    capmem_rm_attach_attr_t at = CAPMEM_RM_ATTACH_ATTR_INIT;
    at.at = f->address & ~0xfffull;
    if (capmem_ram_alloc(arena, p->account, 4096, &page) != CAPMEM_OK ||
        capmem_rm_attach(arena, f->rm, page, &at, &at.at) != CAPMEM_OK) {
        return CAPMEM_RM_FAULT_UNRESOLVED;
    }
    return CAPMEM_RM_FAULT_RESOLVED;
}

static void tour_region_map(capmem_arena_t *arena, capmem_cap_t root)
{
    heading("6. Region maps: address spaces, page faults, nesting");
    capmem_ram_open_attr_t ra = CAPMEM_RAM_OPEN_ATTR_INIT;
    ra.quota = 1 << 20;
    ra.label = "prog";
    capmem_cap_t prog;
    TRY(capmem_ram_open(arena, root, &ra, &prog));
    capmem_rm_open_attr_t ma = CAPMEM_RM_OPEN_ATTR_INIT;
    ma.size = 1 << 20;
    ma.label = "address space";
    capmem_cap_t space;
    TRY(capmem_rm_open(arena, prog, &ma, &space));
    capmem_ram_info_t pi;
    TRY(capmem_ram_info(arena, prog, &pi));
    printf("\"prog\" opens a 1 MiB region map (an address space); the map's records are\n"
           "paid by a 64 KiB donation from prog's quota (%" PRIu64 " KiB left).\n",
           pi.avail >> 10);
    capmem_cap_t code;
    TRY(capmem_ram_alloc(arena, prog, 8192, &code));
    TRY(capmem_ds_write(arena, code, 0, "\x90\x90\xc3", 3));
    capmem_rm_attach_attr_t at = CAPMEM_RM_ATTACH_ATTR_INIT;
    at.writable = 0;
    at.executable = 1;
    uint64_t code_addr;
    TRY(capmem_rm_attach(arena, space, code, &at, &code_addr));
    printf("An 8 KiB dataspace is attached read-only and executable at 0x%" PRIx64 ".\n",
           code_addr);
    capmem_err_t err = capmem_rm_write(arena, space, code_addr, "x", 1);
    capmem_rm_state_t st;
    TRY(capmem_rm_state(arena, space, &st));
    printf("Writing to it is a %s fault at 0x%" PRIx64 " that no handler resolves: %s.\n",
           capmem_rm_access_name(st.access), st.address, capmem_err_name(err));
    EXPECT(err == CAPMEM_E_UNRESOLVED_FAULT && st.access == CAPMEM_RM_WRITE);

    printf("\nNow a second map, a heap whose pages appear on demand, is nested into the\n"
           "address space as a managed dataspace:\n");
    ma.size = 64 << 10;
    ma.label = "heap";
    capmem_cap_t heap;
    TRY(capmem_rm_open(arena, prog, &ma, &heap));
    pager_t pager = {.account = prog, .faults = 0};
    TRY(capmem_rm_set_fault_handler(arena, heap, page_in, &pager));
    capmem_cap_t heap_ds;
    TRY(capmem_rm_dataspace(arena, heap, &heap_ds));
    at = (capmem_rm_attach_attr_t)CAPMEM_RM_ATTACH_ATTR_INIT;
    at.at = 0x80000;
    uint64_t heap_addr;
    TRY(capmem_rm_attach(arena, space, heap_ds, &at, &heap_addr));
    TRY(capmem_rm_write(arena, space, heap_addr + 0x2010, "hello", 6));
    char buf[6];
    TRY(capmem_rm_read(arena, space, heap_addr + 0x2010, buf, 6));
    printf("Writing \"%s\" at 0x%" PRIx64 " faulted in the inner map (at its own address)\n"
           "and was retried once the handler attached a page: %u fault(s).\n",
           buf, heap_addr + 0x2010, pager.faults);
    EXPECT(pager.faults == 1 && strcmp(buf, "hello") == 0);
    capmem_rm_info_t hi;
    TRY(capmem_rm_info(arena, heap, &hi));
    printf("The heap map now holds %" PRIu64 " region(s).\n", hi.regions);
    at.at = CAPMEM_RM_ANYWHERE;
    at.size = 4096;
    err = capmem_rm_attach(arena, heap, heap_ds, &at, &heap_addr);
    printf("Attaching the heap into itself would make a cycle: %s.\n", capmem_err_name(err));
    EXPECT(err == CAPMEM_E_CYCLE);
    TRY(capmem_ram_close(arena, prog));
    printf("Closing prog closes both maps and frees every page they held.\n");
}

/* ---- 7. real mode (capmem/rm_real.h) -------------------------------------------------- */

typedef struct poke {
    volatile char *p;
} poke_t;

static void poke(void *ctx)
{
    ((poke_t *)ctx)->p[0] = '!';
}

static void tour_real(capmem_arena_t *arena, capmem_cap_t root)
{
    heading("7. Real mode: plain pointers, real page faults, the same pager");
    capmem_ram_open_attr_t ra = CAPMEM_RAM_OPEN_ATTR_INIT;
    ra.quota = 1 << 20;
    ra.label = "native";
    capmem_cap_t app;
    TRY(capmem_ram_open(arena, root, &ra, &app));
    capmem_rm_open_attr_t ma = CAPMEM_RM_OPEN_ATTR_INIT;
    ma.size = 64 << 10;
    ma.label = "native heap";
    capmem_cap_t heap;
    TRY(capmem_rm_open(arena, app, &ma, &heap));
    pager_t pager = {.account = app, .faults = 0};
    TRY(capmem_rm_set_fault_handler(arena, heap, page_in, &pager));
    void *base = NULL;
    capmem_err_t err = capmem_rm_real_map(arena, heap, 0, &base);
    if (err == CAPMEM_E_UNSUPPORTED) {
        printf("This host cannot map region maps: %s.\n", capmem_last_error()->message);
        TRY(capmem_ram_close(arena, app));
        return;
    }
    TRY(err);
    char *heap_mem = base;
    printf("The 64 KiB map is now a real address range at %p, all PROT_NONE: nothing is\n"
           "mapped until it is touched. A plain C store into it:\n",
           base);
    strcpy(heap_mem + 0x3010, "plain pointers");
    char buf[16];
    TRY(capmem_rm_read(arena, heap, 0x3010, buf, sizeof("plain pointers")));
    printf("raised a real page fault; the library's SIGSEGV handler ran the same pager as\n"
           "in section 6, mapped the attached page from the arena, and the store ran again.\n"
           "capmem_rm_read() sees \"%s\": the view is the arena's bytes (%u fault).\n",
           buf, pager.faults);
    EXPECT(pager.faults == 1 && strcmp(buf, "plain pointers") == 0);
    printf("More stores to the same page cost nothing: ");
    for (int i = 0; i < 100; i++) {
        heap_mem[0x3100 + i] = (char)i;
    }
    printf("%u fault after 100 stores.\n", pager.faults);
    EXPECT(pager.faults == 1);

    capmem_cap_t rom;
    TRY(capmem_ram_alloc(arena, app, 4096, &rom));
    TRY(capmem_ds_write(arena, rom, 0, "read-only", 10));
    capmem_rm_attach_attr_t at = CAPMEM_RM_ATTACH_ATTR_INIT;
    at.at = 0x8000;
    at.writable = 0;
    uint64_t addr;
    TRY(capmem_rm_attach(arena, heap, rom, &at, &addr));
    printf("\nA page attached read-only reads \"%s\" through its pointer, but a store\n",
           heap_mem + 0x8000);
    poke_t pk = {.p = heap_mem + 0x8000};
    err = capmem_rm_real_guard(arena, poke, &pk);
    printf("is a WRITE fault: the pager cannot attach a page where one is attached\n"
           "(REGION_CONFLICT), so it stays unresolved; under capmem_rm_real_guard() that\n"
           "returns %s instead of killing the process.\n",
           capmem_err_name(err));
    EXPECT(err == CAPMEM_E_UNRESOLVED_FAULT && pager.faults == 2);
    TRY(capmem_rm_detach(arena, heap, 0x3000));
    printf("\nDetaching the first page drops it from the view (the view is a cache of the\n"
           "model): the next load faults again and the pager attaches a fresh zeroed page,\n");
    const char first = heap_mem[0x3010];
    printf("so the old text is gone: its first byte reads %d (%u faults).\n", first, pager.faults);
    EXPECT(first == 0 && pager.faults == 3);
    TRY(capmem_ram_close(arena, app));
    printf("Closing the account closes the map, which unmaps its range.\n");
}

/*
 * The picture (issue 14): what the arena holds now, as a text dump of one
 * account's subtree and as an SVG picture of the whole arena, written to
 * tour.svg in the current directory (or to $CAPMEM_TOUR_SVG).
 */
static void tour_picture(capmem_arena_t *arena, capmem_cap_t root)
{
    heading("10. Seeing the state: dumps and the picture");
    capmem_ram_open_attr_t oa = CAPMEM_RAM_OPEN_ATTR_INIT;
    oa.quota = 2 << 20;
    oa.label = "editor";
    capmem_cap_t editor;
    TRY(capmem_ram_open(arena, root, &oa, &editor));
    capmem_cap_t text, buffer, view;
    TRY(capmem_ram_alloc(arena, editor, 512 << 10, &text));
    TRY(capmem_ram_alloc(arena, editor, 256 << 10, &buffer));
    capmem_alias_attr_t aa = CAPMEM_ALIAS_ATTR_INIT;
    aa.writable = 0;
    aa.size = 128 << 10;
    TRY(capmem_ds_alias(arena, editor, text, &aa, &view));
    capmem_rm_open_attr_t ma = CAPMEM_RM_OPEN_ATTR_INIT;
    ma.size = 2 << 20;
    ma.label = "editor space";
    capmem_cap_t space;
    TRY(capmem_rm_open(arena, editor, &ma, &space));
    capmem_rm_attach_attr_t at = CAPMEM_RM_ATTACH_ATTR_INIT;
    uint64_t addr;
    TRY(capmem_rm_attach(arena, space, text, &at, &addr));
    at.writable = 0;
    TRY(capmem_rm_attach(arena, space, view, &at, &addr));
    at.writable = 1;
    TRY(capmem_rm_attach(arena, space, buffer, &at, &addr));
    printf("An account \"editor\" with two dataspaces, a read-only alias and a map.\n"
           "capmem_dump_ex() of its subtree, the RAM and region-map sections, as text:\n\n");
    capmem_dump_opts_t o = CAPMEM_DUMP_OPTS_INIT;
    o.root = editor;
    o.sections = CAPMEM_DUMP_RAM | CAPMEM_DUMP_RM;
    TRY(capmem_dump_ex(arena, stdout, &o));
    const char *path = getenv("CAPMEM_TOUR_SVG");
    if (path == NULL || path[0] == '\0') {
        path = "tour.svg";
    }
    FILE *svg = fopen(path, "w");
    if (svg == NULL) {
        printf("\n(could not write %s; the picture is skipped)\n", path);
        return;
    }
    TRY(capmem_dump(arena, svg, CAPMEM_DUMP_SVG));
    fclose(svg);
    printf("\nThe whole arena as a picture (capmem_dump(..., CAPMEM_DUMP_SVG)): %s\n"
           "Open it in a browser, or: rsvg-convert -o tour.png %s\n",
           path, path);
}

/* ---- 8. Placement policies (issue 15) ------------------------------------------- */

static void tour_policies(capmem_arena_t *arena, capmem_cap_t root)
{
    heading("8. Placement policies: where blocks go, and fragmentation measured");
    printf("The seL4 requests 0x400, 0x800, 0x1000, 0x400 (naturally aligned) in 0x2000\n"
           "bytes, under each built-in policy (capmem_alloc_create_policy), then\n"
           "capmem_alloc_stats():\n\n");
    static const char *const names[] = {"watermark", "range", "buddy"};
    for (int i = 0; i < 3; i++) {
        capmem_alloc_policy_t p;
        TRY(capmem_alloc_policy_by_name(names[i], &p));
        capmem_alloc_t *a = NULL;
        TRY(capmem_alloc_create_policy(&p, 0, 0x2000, 0x400, &a));
        static const uint64_t req[] = {0x400, 0x800, 0x1000, 0x400};
        int served = 0;
        for (int k = 0; k < 4; k++) {
            uint64_t off = 0;
            served += capmem_alloc_alloc(a, req[k], req[k], &off) == CAPMEM_OK;
        }
        capmem_alloc_stats_t st = {.size = sizeof(st)};
        TRY(capmem_alloc_stats(a, &st));
        printf("    %-10s served %d of 4, free %5llu bytes, lost to alignment %5llu\n", names[i],
               served, (unsigned long long)st.free_bytes, (unsigned long long)st.align_loss);
        EXPECT(served == (i == 0 ? 3 : 4));
        capmem_alloc_destroy(a);
    }
    printf("\nA region map can place its \"anywhere\" attachments with a policy too\n"
           "(capmem_rm_open_attr_t.policy; the RAM service: capmem_ram_attr_t.policy).\n"
           "With buddy, a 3-page attachment takes a 4-page block:\n\n");
    capmem_cap_t ds;
    TRY(capmem_ram_alloc(arena, root, 3 * 4096, &ds));
    capmem_rm_open_attr_t oa = CAPMEM_RM_OPEN_ATTR_INIT;
    oa.size = 64 * 4096;
    oa.label = "buddy-placed";
    oa.policy = CAPMEM_ALLOC_POLICY(CAPMEM_ALLOC_BUDDY);
    capmem_cap_t rm;
    TRY(capmem_rm_open(arena, root, &oa, &rm));
    capmem_rm_attach_attr_t at = CAPMEM_RM_ATTACH_ATTR_INIT;
    uint64_t first = 0;
    uint64_t second = 0;
    TRY(capmem_rm_attach(arena, rm, ds, &at, &first));
    TRY(capmem_rm_attach(arena, rm, ds, &at, &second));
    printf("    attach 3 pages anywhere: 0x%llx, and again: 0x%llx\n", (unsigned long long)first,
           (unsigned long long)second);
    EXPECT(first == 0 && second == 4 * 4096);
    TRY(capmem_rm_close(arena, rm));
    TRY(capmem_ds_free(arena, ds));
    printf("\nYour own policy plugs in the same way; docs/alloc.md, \"Test your own\n"
           "policy\", checks it with the conformance suite and replays traces with\n"
           "capmem-replay.\n");
}

/* Section 9 (issue 13): Coyotos' answer, on an arena of its own (the kernel boots first). */
static void tour_kernel_banks(void)
{
    heading("9. Kernel metadata and space banks: Coyotos' answer");
    capmem_arena_attr_t aa = CAPMEM_ARENA_ATTR_INIT;
    aa.ram_size = 16ull << 20;
    aa.device_window = 1ull << 20;
    capmem_arena_t *a = NULL;
    TRY(capmem_arena_create(&aa, &a));
    capmem_kernel_attr_t ka = CAPMEM_KERNEL_ATTR_INIT;
    ka.strategy = CAPMEM_KERNEL_HYBRID; /* no fixed part: every device record is borrowed */
    TRY(capmem_kernel_boot(a, &ka));
    capmem_kernel_info_t ki;
    TRY(capmem_kernel_info(a, &ki));
    printf("Coyotos keeps a %" PRIu64 "-byte record for every frame: %" PRIu64
           " frames of RAM need a heap of %" PRIu64 " frames,\n"
           "carved at boot after a %" PRIu64 "-frame kernel image. The rest goes to the banks.\n",
           ki.record_size, ki.ram_records, ki.boot_heap_frames, ki.image_frames);
    EXPECT(ki.boot_heap_frames == 48);
    capmem_cap_t root = CAPMEM_CAP_NULL;
    TRY(capmem_ram_boot(a, NULL, &root));
    capmem_bank_service_attr_t sa = CAPMEM_BANK_SERVICE_ATTR_INIT;
    sa.frames = 256;
    capmem_cap_t prime = CAPMEM_CAP_NULL;
    TRY(capmem_bank_service_create(a, root, &sa, &prime));
    capmem_bank_limits_t lim = {.limit = {2, CAPMEM_BANK_UNLIMITED}};
    capmem_cap_t users = CAPMEM_CAP_NULL;
    TRY(capmem_bank_create(a, prime, &lim, &users));
    const capmem_bank_type_t two[2] = {CAPMEM_BANK_FRAME, CAPMEM_BANK_FRAME};
    capmem_cap_t fr[2];
    TRY(capmem_bank_alloc(a, users, two, 2, fr));
    capmem_err_t err = capmem_bank_alloc(a, users, two, 1, fr);
    printf("A bank limited to 2 frames gives 2; the third is %s (%s).\n", capmem_err_name(err),
           capmem_last_error()->message);
    EXPECT(err == CAPMEM_E_LIMIT_REACHED);
    capmem_device_info_t dev;
    TRY(capmem_arena_device_add(a, 0x100000000ull, 64 * 4096, &dev));
    TRY(capmem_kernel_info(a, &ki));
    capmem_bank_info_t pi;
    TRY(capmem_bank_info(a, prime, &pi));
    printf("Hot-plugging 64 device frames needs 64 records: the heap borrowed %" PRIu64
           " frame through the banks,\n"
           "so the prime bank now has %" PRIu64 " of its %" PRIu64
           " frames charged (2 users' frames + 1 heap frame).\n",
           ki.borrowed_frames, pi.used[CAPMEM_BANK_FRAME], pi.limit[CAPMEM_BANK_FRAME]);
    EXPECT(ki.borrowed_frames == 1 && pi.used[CAPMEM_BANK_FRAME] == 3);
    TRY(capmem_bank_destroy(a, users));
    TRY(capmem_bank_info(a, prime, &pi));
    printf("Destroying the users' bank frees its frames: the prime bank is charged %" PRIu64
           " (the heap frame is never returned).\n",
           pi.used[CAPMEM_BANK_FRAME]);
    EXPECT(pi.used[CAPMEM_BANK_FRAME] == 1);
    TRY(capmem_check(a, NULL, 0));
    printf("See docs/kernel_metadata.md and examples/kernel_heap.c for the three strategies.\n");
    capmem_arena_destroy(a);
}

int main(void)
{
    printf("libcapmem %s: a guided tour of capability-based memory accounting\n", capmem_version());
    capmem_arena_t *arena = NULL;
    tour_arena(&arena);
    TRY(capmem_arena_set_event_handler(arena, on_event, NULL));
    tour_caps(arena);
    narrate = CAPMEM_EVENT_UPGRADE;
    tour_untyped(arena);
    capmem_cap_t root;
    tour_ram(arena, &root);
    tour_alias(arena, root);
    tour_region_map(arena, root);
    tour_real(arena, root);
    tour_policies(arena, root);
    tour_kernel_banks();
    tour_picture(arena, root);

    char why[256];
    TRY(capmem_check(arena, why, sizeof(why)));
    printf("\nAll invariants hold (capmem_check). %s\n", failures ? "" : "End of the tour.");
    capmem_arena_destroy(arena);
    return failures ? 1 : 0;
}
