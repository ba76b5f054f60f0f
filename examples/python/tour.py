#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The guided tour of libcapmem, in Python: examples/tour.c step by step.

Run it from a build tree with
    meson devenv -C build /usr/bin/python3 $PWD/examples/python/tour.py
or, after `meson install`, with /usr/bin/python3 alone. Every step checks
what it shows; the tour exits non-zero if something does not hold, so the
test suite runs it too.
"""
import os
import sys

import capmem

failures = 0


def expect(cond, what):
    global failures
    if not cond:
        print(f"tour.py: expectation failed: {what}", file=sys.stderr)
        failures += 1


def heading(title):
    print(f"\n== {title} ==\n")


def rights_str(r):
    return "".join(c if r & bit else "-" for c, bit in
                   (("r", capmem.Rights.READ), ("w", capmem.Rights.WRITE),
                    ("g", capmem.Rights.GRANT)))


def print_tree(cap):
    for info in cap.tree():
        print(f"    {' ' * 4 * info.depth}{'`-' if info.depth else '*'} {info.name:<12} "
              f"rights {rights_str(info.rights)}  handle {info.cap.handle:#018x}")


# Which events the current section narrates.
narrate = capmem.EventKind.REVOKE


def on_event(event):
    if event.kind == narrate:
        print(f"    [event: {event.kind}] {event.message}")


def tour_arena():
    heading("1. The arena: simulated physical RAM")
    arena = capmem.Arena(ram_size=16 << 20, phys_base=0x40000000, device_window=1 << 20)
    print(f"An arena stands in for the machine's RAM: {arena.ram_size >> 20} MiB in "
          f"{arena.page_size}-byte pages,\nbacked by a {arena.backing_name} mapping "
          "(pages are only real once touched).")
    phys = arena.offset_to_phys(0x1000)
    print(f"RAM offset 0x1000 is physical address {phys:#x}.")
    expect(phys == 0x40001000, "offset 0x1000 is at 0x40001000")
    dev = arena.add_device(0xFEE00000, 0x10000)
    print(f"A device range (say, a frame buffer) is registered at {dev.phys:#x} "
          f"(+{dev.size:#x}):\nit lives beside RAM and is never handed out as RAM.")
    try:
        arena.add_device(0x40002000, 0x1000)
        expect(False, "a device on top of RAM is refused")
    except capmem.RegionConflict as e:
        print(f"Registering a device on top of RAM is refused: {e.name} ({e.message}).")
    return arena


def tour_caps(arena):
    heading("2. Capabilities: handles with rights, in a derivation tree")
    closed = []

    def close_file(name):
        print(f'    (teardown: file "{name}" closed)')
        closed.append(name)

    file = arena.user_object("notes.txt", "file", on_destroy=close_file)
    print("A capability is an opaque 64-bit handle (slot, generation, type), never a pointer.\n"
          "We create one for a file object with all rights (read, write, grant).\n")
    R = capmem.Rights
    lender = file.mint(R.READ | R.GRANT)
    reader = lender.mint(R.READ)
    file.mint(R.READ | R.WRITE)
    print("Minting derives children with fewer rights. The tree now reads:")
    print_tree(file)
    print()
    for what, call, error in (
        ("Asking a read+grant capability for write access", lambda: lender.mint(R.ALL),
         capmem.Denied),
        ("Deriving from a capability without the grant right", lambda: reader.mint(R.READ),
         capmem.Denied),
        ("Deleting the original while it has children", file.delete, capmem.RevokeFirst),
    ):
        try:
            call()
            expect(False, what)
        except error as e:
            print(f"{what}: {e.name}.")
    print("\nRevoking the original destroys every capability derived from it:")
    file.revoke()
    print_tree(file)
    try:
        reader.identify()
        expect(False, "the old reader is stale")
    except capmem.InvalidCap as e:
        print(f"The old reader handle is now stale: {e.name} ({e.message}).")
    try:
        capmem.UserCap(arena, 0x0123456789ABCDEF).identify()
        expect(False, "a forged handle is refused")
    except capmem.InvalidCap as e:
        print(f"A forged handle is refused the same way, never a crash: {e.name}.")
    print("Deleting the original destroys the object itself:")
    file.delete()
    expect(closed == ["notes.txt"], "the file was closed once")


def tour_untyped(arena):
    heading("3. Untyped memory: seL4's retype")
    boot = arena.boot_untypeds()
    print("At boot, RAM is offered as untyped regions, each a naturally aligned power of two:")
    for u in boot:
        info = u.info()
        print(f"    {'device' if info.device else 'RAM   '} untyped at {info.phys:#010x}, "
              f"2^{info.size_bits} bytes")
    print("\nRetype cuts objects out of an untyped. The watermark policy (seL4's) aligns\n"
          "each object to its size and never goes back, so a gap can be lost forever:")
    for policy in ("watermark", "range", "buddy"):
        ut = boot[0].untyped(13, policy=policy)  # 0x2000
        line = f"    {policy:<9} 0x2000 untyped:"
        for i, bits in enumerate((10, 11, 12, 10)):
            try:
                obj = ut.kobj(bits)
                line += f" {1 << bits:#x}@{obj.info().offset - ut.info().offset:#x}"
            except capmem.NotEnoughMemory as e:
                line += f"\n        -> {e.message}"
                expect(policy == "watermark" and i == 3, "only watermark fails, at the 4th")
        print(line)
        ut.revoke()
        ut.delete()
    print("Range and buddy put the fourth object in the gap; watermark fails with seL4's words.")


def tour_ram(arena):
    heading("4. The RAM service: quota, donations, upgrades (Genode)")
    root = arena.ram_boot()
    print(f"The RAM service takes the remaining untyped RAM: its root account holds "
          f"{root.quota >> 10} KiB\n(plus a {root.donation >> 10} KiB donation that pays for "
          "its own bookkeeping).")
    app = root.open(quota=2 << 20, donation=4096, label="app")  # a deliberately small donation
    print('\nThe root opens a session "app" with 2 MiB of quota and a 4 KiB donation.\n'
          "Each dataspace costs a 64-byte record carved from that donation:")
    count = 0
    try:
        while True:
            app.alloc(4096)
            count += 1
    except capmem.OutOfMetadata as e:
        print(f"    {count} dataspaces, then: {e.name} ({e.message})")
        expect(count == 4096 // 64 - 1 - 3, "60 dataspaces fit")
    print("An expanding client reacts by upgrading its donation from its own quota:")
    app.set_expanding(True, 8192)
    for _ in range(200):
        app.alloc(4096)
    a, r = app.info(), root.info()
    print(f"    app: quota {a.quota >> 10} KiB, used {a.used >> 10} KiB, donation "
          f"{a.donation >> 10} KiB after {a.upgrades} upgrades")
    total = r.quota + r.donation + a.quota + a.donation
    print(f"    root quota + donation + app quota + donation = {total >> 10} KiB = all the RAM "
          "the service has")
    try:
        app.alloc(4 << 20)
        expect(False, "4 MiB is beyond app's quota")
    except capmem.OutOfRam as e:
        print(f"A 4 MiB dataspace is beyond app's quota: {e.name} "
              f"(needed {e.needed >> 10} KiB, available {e.available >> 10} KiB).")
    app.close()
    print(f"Closing app frees its dataspaces and returns everything: root holds "
          f"{root.quota >> 10} KiB again.")
    return root


def tour_alias(root):
    heading("5. Dataspaces and aliases: who pays when memory is shared")
    lender = root.open(quota=1 << 20, label="lender")
    borrower = root.open(label="borrower")
    ds = lender.alloc(16384)
    ds.write(8192, b"shared page\0")
    dep = ds.alias(borrower, offset=8192, size=8192, writable=False)
    fc = ds.alias(borrower, offset=8192, size=8192, writable=False, first_class=True)
    text = fc.read(0, 11).decode()
    print("The lender allocates 16 KiB; the borrower takes two read-only aliases of its\n"
          f'last 8 KiB, one dependent and one first-class. Both read "{text}".')
    try:
        fc.write(0, b"x")
        expect(False, "a read-only alias is ROM")
    except capmem.Denied as e:
        print(f"Writing through a read-only alias: {e.name} (it is ROM).")
    ds.free()
    print(f"\nThe lender frees the original:\n    dependent alias: "
          f"{'alive' if dep.alive else 'revoked with it'}")
    info = lender.info()
    print(f'    first-class alias: alive, still reads "{fc.read(0, 11).decode()}"\n'
          f"    lender: used {info.used >> 10} KiB, of which lent {info.lent >> 10} KiB "
          "(only the unshared 8 KiB came back)")
    expect(info.used == 8192 and info.lent == 8192, "8 KiB lent")
    fc.free()
    print(f"The borrower lets go: lender used {lender.used >> 10} KiB. The lender pays until "
          "the last\nborrower lets go.")
    borrower.close()
    lender.close()


class PageIn:
    """The tour's pager: a fault in the heap map gets a fresh zeroed page."""

    def __init__(self, account):
        self.account = account
        self.faults = 0

    def __call__(self, fault):
        self.faults += 1
        print(f"    [fault] {fault.access} at {fault.address:#x}: the handler attaches a fresh "
              "page there")
        fault.rm.attach(self.account.alloc(4096), at=fault.address & ~0xFFF)
        return True


def tour_region_map(root):
    heading("6. Region maps: address spaces, page faults, nesting")
    prog = root.open(quota=1 << 20, label="prog")
    space = prog.region_map(1 << 20, label="address space")
    print('"prog" opens a 1 MiB region map (an address space); the map\'s records are\n'
          f"paid by a 64 KiB donation from prog's quota ({prog.avail >> 10} KiB left).")
    code = prog.alloc(8192)
    code.write(0, b"\x90\x90\xc3")
    code_addr = space.attach(code, writable=False, executable=True)
    print(f"An 8 KiB dataspace is attached read-only and executable at {code_addr:#x}.")
    try:
        space.write(code_addr, b"x")
        expect(False, "writing code faults")
    except capmem.UnresolvedFault as e:
        st = space.state
        print(f"Writing to it is a {st.access} fault at {st.address:#x} that no handler "
              f"resolves: {e.name}.")
        expect(st.access == capmem.Access.WRITE, "a write fault")

    print("\nNow a second map, a heap whose pages appear on demand, is nested into the\n"
          "address space as a managed dataspace:")
    heap = prog.region_map(64 << 10, label="heap")
    pager = PageIn(prog)
    heap.fault_handler = pager
    heap_ds = heap.dataspace()
    heap_addr = space.attach(heap_ds, at=0x80000)
    space.write(heap_addr + 0x2010, b"hello")
    text = space.read(heap_addr + 0x2010, 5).decode()
    print(f'Writing "{text}" at {heap_addr + 0x2010:#x} faulted in the inner map (at its own '
          "address)\nand was retried once the handler attached a page: "
          f"{pager.faults} fault(s).")
    expect(pager.faults == 1 and text == "hello", "one fault, the bytes are there")
    print(f"The heap map now holds {heap.regions} region(s).")
    try:
        heap.attach(heap_ds, size=4096)
        expect(False, "a map inside itself is a cycle")
    except capmem.Cycle as e:
        print(f"Attaching the heap into itself would make a cycle: {e.name}.")
    prog.close()
    print("Closing prog closes both maps and frees every page they held.")


def tour_kernel_banks():
    heading("9. Kernel metadata and space banks: Coyotos' answer")
    with capmem.Arena(ram_size=16 << 20, device_window=1 << 20) as a:
        a.kernel_boot("hybrid")  # no fixed part: every device record is borrowed
        ki = a.kernel_info()
        print(f"Coyotos keeps a {ki.record_size}-byte record for every frame: {ki.ram_records} "
              f"frames of RAM need a heap of {ki.boot_heap_frames} frames,\n"
              f"carved at boot after a {ki.image_frames}-frame kernel image. The rest goes to "
              "the banks.")
        expect(ki.boot_heap_frames == 48, "48 heap frames")
        prime = a.ram_boot().bank_service(frames=256)
        users = prime.create(frames=2)
        users.alloc("frame", "frame")
        try:
            users.alloc("frame")
            expect(False, "the third frame passes the limit")
        except capmem.LimitReached as e:
            print(f"A bank limited to 2 frames gives 2; the third is {e.name} ({e.message}).")
        a.add_device(0x100000000, 64 * 4096)
        ki, pi = a.kernel_info(), prime.info()
        print(f"Hot-plugging 64 device frames needs 64 records: the heap borrowed "
              f"{ki.borrowed_frames} frame through the banks,\n"
              f"so the prime bank now has {pi.used['frame']} of its {pi.limit['frame']} "
              "frames charged (2 users' frames + 1 heap frame).")
        expect(ki.borrowed_frames == 1 and pi.used["frame"] == 3, "one heap frame borrowed")
        users.destroy()
        used = prime.used["frame"]
        print("Destroying the users' bank frees its frames: the prime bank is charged "
              f"{used} (the heap frame is never returned).")
        expect(used == 1, "the heap frame stays")
        a.check()
        print("See docs/kernel_metadata.md and examples/kernel_heap.c for the three strategies.")


def tour_picture(arena, root):
    """What the arena holds now: a text dump of one account's subtree, and
    an SVG picture of the whole arena, written to tour.svg in the current
    directory (or to $CAPMEM_TOUR_SVG). In a notebook, `arena` alone shows
    that picture (Arena._repr_svg_)."""
    heading("10. Seeing the state: dumps and the picture")
    editor = root.open(quota=2 << 20, label="editor")
    text = editor.alloc(512 << 10)
    buffer = editor.alloc(256 << 10)
    view = text.alias(editor, size=128 << 10, writable=False)
    space = editor.region_map(2 << 20, label="editor space")
    space.attach(text)
    space.attach(view, writable=False)
    space.attach(buffer)
    print('An account "editor" with two dataspaces, a read-only alias and a map.\n'
          "capmem_dump_ex() of its subtree, the RAM and region-map sections, as text:\n")
    sys.stdout.write(editor.dump_as("text", sections=["ram", "rm"]))
    sys.stdout.flush()
    d = editor.dump(sections=["ram"])
    expect([a["label"] for a in d["ram"]["accounts"]] == ["editor"], "the subtree's account")
    path = os.environ.get("CAPMEM_TOUR_SVG") or "tour.svg"
    try:
        with open(path, "w", encoding="utf-8") as f:
            f.write(arena._repr_svg_())
    except OSError:
        print(f"\n(could not write {path}; the picture is skipped)")
        return
    print(f"\nThe whole arena as a picture (capmem_dump(..., CAPMEM_DUMP_SVG)): {path}\n"
          f"Open it in a browser, or: rsvg-convert -o tour.png {path}")


def tour_policies(root):
    heading("8. Placement policies: where blocks go, and fragmentation measured")
    print("The seL4 requests 0x400, 0x800, 0x1000, 0x400 (naturally aligned) in 0x2000\n"
          "bytes, under each built-in policy (capmem_alloc_create_policy), then\n"
          "capmem_alloc_stats():\n")
    for i, name in enumerate(("watermark", "range", "buddy")):
        with capmem.Allocator.from_policy(name, 0, 0x2000, 0x400) as a:
            served = 0
            for req in (0x400, 0x800, 0x1000, 0x400):
                try:
                    a.alloc(req, req)
                    served += 1
                except capmem.NotEnoughMemory:
                    pass
            st = a.stats()
            print(f"    {name:<10} served {served} of 4, free {st['free_bytes']:5} bytes, "
                  f"lost to alignment {st['align_loss']:5}")
            expect(served == (3 if i == 0 else 4), f"{name} serves its share")
    print('\nA region map can place its "anywhere" attachments with a policy too\n'
          "(capmem_rm_open_attr_t.policy; the RAM service: capmem_ram_attr_t.policy).\n"
          "With buddy, a 3-page attachment takes a 4-page block:\n")
    ds = root.alloc(3 * 4096)
    rm = root.region_map(64 * 4096, label="buddy-placed", policy="buddy")
    first, second = rm.attach(ds), rm.attach(ds)
    print(f"    attach 3 pages anywhere: {first:#x}, and again: {second:#x}")
    expect(first == 0 and second == 4 * 4096, "buddy rounds 3 pages up to 4")
    rm.close()
    ds.free()
    print('\nYour own policy plugs in the same way; docs/alloc.md, "Test your own\n'
          'policy", checks it with the conformance suite and replays traces with\n'
          "capmem-replay.")


def main():
    global narrate
    print(f"libcapmem {capmem.library_version()}: a guided tour of capability-based memory "
          "accounting (Python)")
    with tour_arena() as arena:
        arena.event_handler = on_event
        tour_caps(arena)
        narrate = capmem.EventKind.UPGRADE
        tour_untyped(arena)
        root = tour_ram(arena)
        tour_alias(root)
        tour_region_map(root)
        # Section 7 of the C tour (real mode: plain pointers and real page
        # faults, which would run Python inside a SIGSEGV handler) has no
        # Python version.
        tour_policies(root)
        tour_kernel_banks()
        tour_picture(arena, root)
        arena.check()
        print(f"\nAll invariants hold (capmem_check). {'' if failures else 'End of the tour.'}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
