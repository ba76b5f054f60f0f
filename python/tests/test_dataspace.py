# SPDX-License-Identifier: MIT
"""Dataspaces and aliases: shared bytes, ROM, who pays when memory is shared."""
import pytest

import capmem


def test_read_write_and_info(app):
    ds = app.alloc(8192)
    info = ds.info()
    assert info.kind == capmem.DsKind.RAM and str(info.kind) == "RAM"
    assert info.size == 8192 == len(ds) and info.writable and info.rights == capmem.Rights.ALL
    assert ds.read(0, 4) == b"\0\0\0\0"
    ds.write(4096, b"page two")
    assert ds.read(4096, 8) == b"page two"
    assert len(ds.read()) == 8192
    with pytest.raises(capmem.InvalidArgs):
        ds.write(8190, b"xyz")
    assert ds.kind == capmem.DsKind.RAM and ds.phys and ds.offset >= 0 and ds.writable


def test_alias_shares_bytes_and_read_only_is_rom(root, app):
    ds = app.alloc(16384)
    ds.write(8192, b"shared page")
    ro = ds.alias(app, offset=8192, size=8192, writable=False)
    assert isinstance(ro, capmem.Alias) and not ro.first_class and not ro.writable
    assert ro.read(0, 11) == b"shared page"
    with pytest.raises(capmem.Denied):
        ro.write(0, b"x")
    ds.write(8192, b"S")
    assert ro.read(0, 1) == b"S"


def test_dependent_alias_dies_first_class_keeps_pages(arena, root):
    lender = root.open(quota=1 << 20, label="lender")
    borrower = root.open(label="borrower")
    ds = lender.alloc(16384)
    ds.write(8192, b"kept")
    dep = ds.alias(borrower, offset=8192, size=8192, writable=False)
    fc = ds.alias(borrower, offset=8192, size=8192, writable=False, first_class=True)
    assert fc.first_class and fc.kind == capmem.DsKind.ALIAS_FIRST_CLASS
    ds.free()
    assert not dep.alive and fc.alive
    assert fc.read(0, 4) == b"kept"
    assert lender.used == 8192 and lender.lent == 8192
    fc.free()
    assert lender.used == 0 and lender.lent == 0
    arena.check()


def test_alias_errors(app):
    ds = app.alloc(8192)
    with pytest.raises(capmem.InvalidArgs):
        ds.alias(app, offset=100)
    ro = ds.alias(app, writable=False)
    with pytest.raises(capmem.Denied):
        ro.alias(app, writable=True)
    with pytest.raises(TypeError):
        ds.alias(None)
