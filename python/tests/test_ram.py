# SPDX-License-Identifier: MIT
"""Accounts of the RAM service: quota, donations, transfers, upgrades."""
import pytest

import capmem


def _conserved(arena, root):
    """Quota plus donation of every account, plus region-map donations, is all RAM."""
    total = 0
    for info in arena.caps():
        if info.type == capmem.ObjType.RAM_SESSION and info.original:
            a = info.cap.info()
            total += a.quota + a.donation
        elif info.type == capmem.ObjType.REGION_MAP and info.original:
            total += info.cap.donation
    return total


def test_root_holds_everything_and_the_sum_is_conserved(arena, root):
    everything = _conserved(arena, root)
    info = root.info()
    assert info.is_root and info.ref is None and info.label == "root"
    assert info.quota + info.donation == everything
    app = root.open(quota=1 << 20, label="app")
    assert app.ref == root and app.label == "app" and app.quota == 1 << 20
    assert root.quota == info.quota - (1 << 20) - capmem.RAM_DEFAULT_DONATION
    assert _conserved(arena, root) == everything
    app.close()
    assert root.quota == info.quota and _conserved(arena, root) == everything


def test_properties_read_fresh_numbers(app):
    assert (app.used, app.avail, app.lent) == (0, 1 << 20, 0)
    ds = app.alloc(5000)  # rounded up to two pages
    assert ds.size == 8192 and app.used == 8192 and app.avail == (1 << 20) - 8192
    assert app.donation == capmem.RAM_DEFAULT_DONATION
    assert app.records_used == 5 and app.records_capacity == 1024
    assert app.caps_limit == 1024 and app.caps_used == 1
    assert app.upgrade_step == capmem.RAM_DEFAULT_UPGRADE and app.upgrades == 0
    assert not app.expanding and not app.is_root
    ds.free()
    assert app.used == 0 and app.caps_used == 0


def test_transfer_moves_quota_between_account_and_reference(root, app):
    before = root.quota
    app.transfer(root, 4096)
    assert app.quota == (1 << 20) - 4096 and root.quota == before + 4096
    root.transfer(app, 4096)
    assert app.quota == 1 << 20
    sibling = root.open(label="sibling")
    with pytest.raises(capmem.Denied):
        app.transfer(sibling, 4096)
    with pytest.raises(capmem.OutOfRam) as e:
        app.transfer(root, 2 << 20)
    assert e.value.available == 1 << 20
    app.transfer_caps(root, 24)
    assert app.caps_limit == 1000
    with pytest.raises(capmem.OutOfCaps):
        app.transfer_caps(root, 5000)


def test_upgrade_and_expanding_client(arena, root):
    small = root.open(quota=4 << 20, donation=4096, label="small")
    small.upgrade(8192)
    assert small.donation == 4096 + 8192 and small.upgrades == 1
    small.upgrade(8192, payer=root)
    assert small.donation == 4096 + 2 * 8192
    with pytest.raises(capmem.InvalidArgs):
        small.upgrade(100)
    capacity = small.records_capacity
    for _ in range(capacity - small.records_used):
        small.alloc(4096)
    with pytest.raises(capmem.OutOfMetadata):
        small.alloc(4096)
    small.expanding = True
    assert small.expanding
    small.alloc(4096)
    assert small.upgrades == 3
    small.set_expanding(False)
    assert not small.expanding
    arena.check()


def test_account_as_context_manager_closes(root):
    quota = root.quota
    with root.open(quota=8192, label="tmp") as tmp:
        tmp.alloc(4096)
    assert not tmp.alive and root.quota == quota


def test_open_errors_change_nothing(root, app):
    before = app.info()
    with pytest.raises(capmem.OutOfRam):
        app.open(quota=2 << 20)
    with pytest.raises(capmem.InvalidArgs):
        app.open(donation=100)
    assert app.info() == before


def test_physical_map_covers_the_service(arena, root, app):
    ds = app.alloc(4096)
    blocks = root.physical_map()
    assert blocks and all(size > 0 for _, size, _ in blocks)
    assert any(phys == ds.phys and used for phys, _, used in blocks)
    starts = [p for p, _, _ in blocks]
    assert starts == sorted(starts)


def test_ram_create_and_destroy_service(arena):
    boot = arena.boot_untypeds()
    root = arena.ram_create([boot[0]], root_caps=64)
    assert root.is_root and root.caps_limit <= 64
    root.open(quota=4096, caps=8, label="x")
    root.destroy_service()
    assert not root.alive and boot[0].children == 0
    with pytest.raises(capmem.InvalidArgs):
        arena.ram_create([])
