# SPDX-License-Identifier: MIT
"""The Arena: attributes, devices, capabilities, user objects, stats, check."""
import pytest

import capmem


def test_arena_is_a_context_manager_with_its_attributes():
    with capmem.Arena(ram_size=4 << 20, page_size=1024, phys_base=0x40000000) as a:
        assert a.ram_size == 4 << 20 and a.page_size == 1024 and a.phys_base == 0x40000000
        assert a.backing == capmem.Backing.MEMFD and a.backing_name == "memfd"
        assert a.fd >= 0
        assert a.offset_to_phys(0x1000) == 0x40001000
        assert a.phys_to_offset(0x40001000) == 0x1000
        assert "4 MiB" in repr(a) and not a.closed
        assert a.ptr is not None
    assert a.closed


def test_anonymous_backing_has_no_fd():
    with capmem.Arena(ram_size=1 << 20, force_anon=True) as a:
        assert a.backing == capmem.Backing.ANON_SHARED and a.fd == -1


def test_translation_errors(arena):
    with pytest.raises(capmem.InvalidArgs):
        arena.offset_to_phys(arena.ram_size)
    with pytest.raises(capmem.NotFound):
        arena.phys_to_offset(0x10)


def test_devices_are_added_listed_and_removed():
    with capmem.Arena(ram_size=1 << 20, device_window=1 << 20) as a:
        dev = a.add_device(0xFEE00000, 0x10000)
        assert dev.phys == 0xFEE00000 and dev.size == 0x10000 and dev.id
        assert a.devices == [dev]
        with pytest.raises(capmem.RegionConflict):
            a.add_device(a.phys_base, 0x1000)
        uts = a.add_device_untypeds(dev)
        assert uts and all(u.device for u in uts)
        with pytest.raises(capmem.DeleteFirst):
            a.remove_device(dev)
        for u in uts:
            u.delete()
        a.remove_device(dev)
        assert a.devices == []
        with pytest.raises(capmem.NotFound):
            a.remove_device(dev.id)
        a.check()


def test_caps_walk_parents_first_with_depth(arena, root, app):
    infos = arena.caps()
    assert infos[0].depth == 0 and infos[0].type == capmem.ObjType.UNTYPED
    assert arena.cap_count == len(infos)
    sub = app.tree()
    assert sub[0].cap == app and sub[0].depth == 0 and sub[0].original
    assert sub[0].parent == root


def test_caps_mint_rights_and_revoke(arena, app):
    ds = app.alloc(4096)
    ro = ds.mint(capmem.Rights.READ | capmem.Rights.GRANT)
    assert isinstance(ro, capmem.Dataspace) and ro.rights == capmem.Rights.READ | capmem.Rights.GRANT
    assert ro.parent == ds and ro.identify().object_id == ds.identify().object_id
    assert not ro.identify().original
    ro2 = ro.mint(capmem.Rights.READ)
    with pytest.raises(capmem.Denied):
        ro.mint(capmem.Rights.ALL)
    ds.revoke()
    assert not ro.alive and not ro2.alive and ds.alive
    assert ds.type == capmem.ObjType.DATASPACE
    assert ds == capmem.Dataspace(arena, ds.handle) and hash(ds) == hash(capmem.Dataspace(arena, ds.handle))
    assert "Dataspace 0x" in repr(ds)


def test_user_objects_are_under_capability_control(arena):
    closed = []
    notes = {"name": "notes.txt"}
    f = arena.user_object(notes, "file", on_destroy=closed.append)
    assert f.object is notes and f.identify().name == "file"
    reader = f.mint(capmem.Rights.READ)
    assert reader.object is notes
    f.revoke()
    f.delete()
    assert closed == [notes] and not f.alive
    other = arena.user_object("kept", "file")
    arena.close()  # the destroy hook of a user object still alive runs at destroy
    assert not other.arena._keep


def test_wrap_picks_the_class_from_the_handle(arena, app):
    ds = app.alloc(4096)
    al = ds.alias(app)
    rm = app.region_map(1 << 20)
    assert type(arena.wrap(ds.handle)) is capmem.Dataspace
    assert type(arena.wrap(al.handle)) is capmem.Alias
    assert type(arena.wrap(rm.dataspace().handle)) is capmem.ManagedDataspace
    assert type(arena.wrap(rm.handle)) is capmem.RegionMap
    assert arena.wrap(0) is None


def test_stats_is_a_dict_of_numbers(arena, app):
    app.alloc(8192)
    s = arena.stats()
    assert s["version"] == capmem.lib.CAPMEM_STATS_VERSION
    assert s["dataspaces"]["current"] == 1 and s["dataspaces"]["total"] == 1
    assert s["caps"]["current"] == arena.cap_count
    assert isinstance(s["bytes_zeroed"], int)


def test_check_passes_and_validate_is_true(arena, app):
    arena.check()
    assert arena.validate()


def test_library_version():
    assert capmem.library_version() == capmem.__version__
    assert capmem.LIBRARY_PATH


def test_reprs_describe_the_object_and_survive_stale_handles(arena, root, app):
    ds = app.alloc(4096)
    rm = app.region_map(1 << 20, label="space")
    assert "'app' quota" in repr(app)
    assert "RAM of 4096 bytes" in repr(ds)
    assert "'space' of 1048576 bytes, 0 regions" in repr(rm)
    ut = capmem.Untyped(arena, arena.caps()[0].cap.handle)
    assert "watermark" in repr(ut) or "range" in repr(ut)
    ds.free()
    assert repr(ds).endswith("(stale)>")
    arena.close()
    assert repr(app).endswith(f"{app.handle:#018x}>")


def test_user_destroy_hook_that_raises_is_reported(arena, monkeypatch):
    reported = []
    monkeypatch.setattr("sys.unraisablehook", reported.append)

    def bad_close(obj):
        raise OSError("disk gone")

    f = arena.user_object("x", "file", on_destroy=bad_close)
    f.delete()
    assert reported and "destroy hook" in reported[0].err_msg and not arena._keep
