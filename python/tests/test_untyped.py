# SPDX-License-Identifier: MIT
"""Untyped memory from Python: seL4's reference scenarios."""
import pytest

import capmem


@pytest.fixture
def boot(arena):
    return arena.boot_untypeds()


def test_boot_untypeds_are_naturally_aligned_powers_of_two(arena, boot):
    assert boot and sum(u.size for u in boot) == arena.ram_size
    for u in boot:
        info = u.info()
        assert info.phys % info.size == 0 and not info.device
        assert info.policy == "watermark" and info.children == 0


def _place(ut, bits):
    out = []
    for b in bits:
        try:
            obj = ut.kobj(b)
            out.append(obj.info().offset - ut.info().offset)
        except capmem.NotEnoughMemory as e:
            out.append(e)
    return out


def test_watermark_loses_the_alignment_gap_with_sel4s_words(boot):
    ut = boot[0].untyped(13)
    placed = _place(ut, [10, 11, 12, 10])
    assert placed[:3] == [0, 0x800, 0x1000]
    err = placed[3]
    assert isinstance(err, capmem.NotEnoughMemory)
    assert err.needed == 1024 and err.available == 0
    assert "(1 * 1024 bytes needed, 0 bytes available)" in err.message
    assert ut.watermark == 0x2000 and ut.children == 3


@pytest.mark.parametrize("policy", ["range", "buddy", capmem.UntypedPolicy.RANGE])
def test_range_and_buddy_use_the_gap(boot, policy):
    ut = boot[0].untyped(13, policy=policy)
    placed = _place(ut, [10, 11, 12, 10])
    assert all(isinstance(p, int) for p in placed)
    assert sorted(placed) == [0, 0x400, 0x800, 0x1000]


def test_retype_several_and_explicit_offset(boot):
    ut = boot[0].untyped(14, policy="range")
    frames = ut.retype("frame", 12, count=2, offset=0x2000)
    assert [type(f) for f in frames] == [capmem.Frame, capmem.Frame]
    assert [f.info().offset - ut.info().offset for f in frames] == [0x2000, 0x3000]
    with pytest.raises(capmem.RangeError):
        ut.retype(capmem.ObjType.FRAME, 12, count=0)
    with pytest.raises(capmem.RangeError) as e:
        ut.retype(capmem.ObjType.FRAME, 12, count=300)
    assert e.value.bound_max == 256
    assert ut.children == 2
    with pytest.raises(ValueError):
        ut.untyped(8, policy="first-fit")


def test_frames_read_and_write(boot):
    frame = boot[0].frame()
    assert frame.size == 4096 and frame.phys == frame.info().phys
    frame.write(100, b"seL4")
    assert frame.read(100, 4) == b"seL4"
    with pytest.raises(capmem.InvalidArgs):
        frame.read(4095, 2)
    kobj = boot[0].kobj(11)
    assert kobj.info().type == capmem.ObjType.KOBJ and kobj.size == 2048


def test_copy_makes_the_original_full(boot):
    ut = boot[0].untyped(13)
    copy = ut.copy()
    assert ut.full and ut.free_bytes == 0
    assert copy.free_bytes == 0x2000
    with pytest.raises(capmem.RevokeFirst):
        ut.set_policy("range")
    copy.delete()
    assert not ut.full


def test_set_policy_builtin_and_revoke_resets(boot):
    ut = boot[0].untyped(13)
    ut.set_policy("buddy")
    assert ut.policy == "buddy"
    ut.kobj(10)
    with pytest.raises(capmem.RevokeFirst):
        ut.set_policy("range")
    ut.revoke()
    assert ut.children == 0 and ut.largest_free == 0x2000
    assert ut.size_bits == 13 and ut.phys == ut.info().phys and not ut.device
