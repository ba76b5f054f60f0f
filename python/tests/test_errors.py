# SPDX-License-Identifier: MIT
"""Every error surfaces as its own exception class under capmem.Error, with
the numbers of the library's detail record, and changes nothing."""
import pytest

import capmem


def test_every_class_is_under_error_and_has_a_distinct_code():
    codes = set()
    for code, cls in capmem.ERRORS.items():
        assert issubclass(cls, capmem.Error)
        assert cls.code == code
        codes.add(code)
    assert len(codes) == len(capmem.ERRORS) == capmem.lib.CAPMEM_E__COUNT - 1
    assert capmem.strerror(capmem.OutOfMetadata.code) == "Could not allocate metadata"


def test_python_base_classes_are_kept_for_the_obvious_cases():
    assert issubclass(capmem.InvalidArgs, ValueError)
    assert issubclass(capmem.NotFound, LookupError)
    assert issubclass(capmem.Denied, PermissionError)
    assert issubclass(capmem.HostNoMem, MemoryError)


def test_forged_handle_is_invalid_cap(arena, root):
    forged = capmem.Account(arena, 0x0400123456789ABC)
    with pytest.raises(capmem.InvalidCap) as e:
        forged.info()
    assert e.value.function == "capmem_ram_info"
    assert "capmem_ram_info" not in e.value.message or e.value.message


def test_stale_handle_is_invalid_cap_and_changes_nothing(arena, root, app):
    ds = app.alloc(4096)
    ds.free()
    before = app.info()
    with pytest.raises(capmem.InvalidCap):
        ds.write(0, b"x")
    with pytest.raises(capmem.InvalidCap):
        ds.free()
    assert app.info() == before
    assert not ds.alive


def test_wrong_type_is_refused(arena, root, app):
    ds = app.alloc(4096)
    as_account = capmem.Account(arena, ds.handle)
    with pytest.raises(capmem.WrongType):
        as_account.alloc(4096)
    with pytest.raises(TypeError):
        app.transfer(12345, 4096)  # raw integers are not capabilities


def test_quota_exhausted_carries_needed_and_available(root, app):
    before = app.info()
    with pytest.raises(capmem.OutOfRam) as e:
        app.alloc(2 << 20)
    assert e.value.needed == 2 << 20
    assert e.value.available == before.avail
    assert e.value.code == capmem.OutOfRam.code and e.value.name == "OUT_OF_RAM"
    assert app.info() == before


def test_out_of_metadata_carries_its_numbers(arena, root):
    small = root.open(quota=1 << 20, donation=4096, label="small")
    made = []
    with pytest.raises(capmem.OutOfMetadata) as e:
        while True:
            made.append(small.alloc(4096))
    assert len(made) == 4096 // 64 - 1 - 3
    assert e.value.needed == 64 and e.value.available == 0
    assert "Could not allocate metadata" in str(e.value)
    arena.check()


def test_region_conflict_names_the_conflicting_region(arena, app):
    rm = app.region_map(1 << 20)
    ds = app.alloc(8192)
    rm.attach(ds, at=0x4000)
    regions = rm.regions
    with pytest.raises(capmem.RegionConflict) as e:
        rm.attach(ds, at=0x5000)
    assert e.value.address == 0x4000 and e.value.size == 8192
    assert rm.regions == regions


def test_range_error_carries_bounds(arena, app):
    rm = app.region_map(1 << 20)
    ds = app.alloc(4096)
    with pytest.raises(capmem.RangeError) as e:
        rm.attach(ds, at=1 << 20)
    assert e.value.bound_max == 1 << 20 and e.value.argument == 3


def test_invalid_args_not_found_denied_revoke_first_delete_first(arena, root, app):
    with pytest.raises(capmem.InvalidArgs):
        app.alloc(0)
    rm = app.region_map(1 << 20)
    with pytest.raises(capmem.NotFound) as e:
        rm.detach(0x8000)
    assert e.value.address == 0x8000
    ds = app.alloc(4096)
    ro = ds.alias(app, writable=False)
    with pytest.raises(capmem.Denied):
        ro.write(0, b"x")
    reader = ds.mint(capmem.Rights.READ)
    with pytest.raises(capmem.Denied):
        reader.mint(capmem.Rights.READ)  # no GRANT
    with pytest.raises(capmem.RevokeFirst):
        ds.delete()
    with pytest.raises(capmem.DeleteFirst):
        root.close()  # the root account has child sessions
    arena.check()


def test_cycle_is_refused(app):
    rm = app.region_map(1 << 20)
    with pytest.raises(capmem.Cycle):
        rm.attach(rm.dataspace(), size=4096)


def test_arena_attribute_errors():
    with pytest.raises(capmem.InvalidArgs):
        capmem.Arena(ram_size=4097)
    with pytest.raises(capmem.RangeError) as e:
        capmem.Arena(ram_size=1 << 20, cap_slots=4)
    assert e.value.bound_min == 16


def test_closed_arena_refuses_every_call(app):
    arena = app.arena
    arena.close()
    with pytest.raises(ValueError, match="closed"):
        app.info()
    with pytest.raises(ValueError, match="closed"):
        arena.stats()
    arena.close()  # twice is a no-op
    assert "closed" in repr(arena)


def test_last_error_and_error_text():
    with pytest.raises(capmem.InvalidArgs):
        capmem.Arena(ram_size=0)
    err = capmem.last_error()
    assert isinstance(err, capmem.InvalidArgs) and err.function == "capmem_arena_create"
    assert str(err).startswith("INVALID_ARGS: ")
    plain = capmem.Error("")
    assert str(plain) == "UNKNOWN"
    assert capmem.error_class(999) is capmem.Error
