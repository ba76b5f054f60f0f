# SPDX-License-Identifier: MIT
"""Kernel metadata and space banks (capmem/kernel.h, capmem/bank.h)."""
import pytest

import capmem


@pytest.fixture
def booted():
    with capmem.Arena(ram_size=16 << 20, device_window=1 << 20, cap_slots=1 << 12) as a:
        a.kernel_boot("hybrid")
        yield a
        a.check()


def test_kernel_heap_has_a_record_per_frame(booted):
    ki = booted.kernel_info()
    assert ki.strategy == "hybrid" and ki.record_size == 48
    assert ki.ram_records == booted.ram_size // booted.page_size
    frame = booted.kernel_frame(booted.phys_base)
    assert frame.type == capmem.lib.CAPMEM_KERNEL_FRAME_RAM and frame.flags & 1  # the image
    with pytest.raises(capmem.Error):
        booted.kernel_boot()  # once per arena


def test_banks_limits_are_charged_to_every_ancestor(booted):
    prime = booted.ram_boot().bank_service(frames=16)
    assert prime.info().is_prime and prime.info().depth == 0
    users = prime.create(frames=4)
    team = users.create(frames=None, nodes=2)
    objs = team.alloc("frame", "node", "frame")
    assert [type(o) for o in objs] == [capmem.Dataspace, capmem.BankNode, capmem.Dataspace]
    assert objs[0].kind == capmem.DsKind.BANK_FRAME and team.owns(objs[0])
    assert users.used["frame"] == 2 and prime.used["frame"] >= 2
    assert team.info().avail["frame"] == 2  # the parent's limit binds
    before = users.info()
    with pytest.raises(capmem.LimitReached):
        team.alloc("frame", "frame", "frame")  # all or nothing
    assert users.info() == before
    team.free(objs[0])
    assert not objs[0].alive and team.owns(objs[1])
    team.set_limits(frames=1, nodes=2)
    assert team.limit == {"frame": 1, "node": 2}
    ro = users.restrict(capmem.lib.CAPMEM_BANK_NO_ALLOC)
    with pytest.raises(capmem.Denied):
        ro.alloc("frame")
    team.remove()  # its objects go to users
    assert users.owns(objs[2])
    users.destroy()
    assert not objs[2].alive and "depth 0" in repr(prime)
    prime.destroy_service()
    assert not prime.alive
