# SPDX-License-Identifier: MIT
"""Placement policies written in Python: plugged into untyped and into a
standalone Allocator, with the library checking every answer."""
import pytest

import capmem


class FirstFit(capmem.Policy):
    """Free ranges in a sorted list; the first that fits, aligned."""

    name = "py-first-fit"

    def __init__(self, size, base=0):
        self.size = size
        self.base = base
        self.reset()

    def reset(self):
        self.free_list = [(self.base, self.size)]

    def alloc(self, size, align):
        for i, (start, length) in enumerate(self.free_list):
            at = -(-start // align) * align
            if at + size <= start + length:
                self._take(i, at, size)
                return at
        return None

    def _take(self, i, at, size):
        start, length = self.free_list.pop(i)
        pieces = [(start, at - start), (at + size, start + length - at - size)]
        for piece in reversed(pieces):
            if piece[1]:
                self.free_list.insert(i, piece)

    def alloc_at(self, offset, size):
        for i, (start, length) in enumerate(self.free_list):
            if start <= offset and offset + size <= start + length:
                self._take(i, offset, size)
                return
        raise capmem.NotEnoughMemory("taken")

    def free(self, offset, size):
        self.free_list.append((offset, size))
        self.free_list.sort()
        merged = []
        for start, length in self.free_list:
            if merged and merged[-1][0] + merged[-1][1] == start:
                merged[-1] = (merged[-1][0], merged[-1][1] + length)
            else:
                merged.append((start, length))
        self.free_list = merged

    def avail(self):
        return sum(length for _, length in self.free_list)

    def largest(self):
        return max((length for _, length in self.free_list), default=0)

    def check(self):
        ends = [s + n for s, n in self.free_list]
        if any(e > s for e, (s, _) in zip(ends, self.free_list[1:])):
            return "free ranges overlap"
        return None

    def walk(self):
        return [(s, n, False) for s, n in self.free_list]


@pytest.fixture
def ut(arena):
    return arena.boot_untypeds()[0].untyped(13)


def test_python_policy_places_untyped_children(arena, ut):
    policy = FirstFit(0x2000)
    ut.set_policy(policy)
    assert ut.policy == "py-first-fit"
    offsets = [k.info().offset - ut.info().offset for k in
               (ut.kobj(10), ut.kobj(11), ut.kobj(12), ut.kobj(10))]
    assert offsets == [0, 0x800, 0x1000, 0x400]  # first fit reuses the gap
    assert policy.avail() == 0
    with pytest.raises(capmem.NotEnoughMemory):
        ut.kobj(4)
    ut.revoke()
    assert policy.avail() == 0x2000
    arena.check()


class Garbage(FirstFit):
    """Answers what it is told to answer, whatever was asked."""

    name = "garbage"

    def __init__(self, size, answer):
        super().__init__(size)
        self.answer = answer

    def alloc(self, size, align):
        return self.answer


@pytest.mark.parametrize("answer", [0x2000, 0x1FFF0, 1, 2**64 - 1])
def test_garbage_answers_are_refused_by_the_library(arena, ut, answer):
    ut.set_policy(Garbage(0x2000, answer))
    before = ut.info()
    caps = arena.cap_count
    with pytest.raises(capmem.PolicyError) as e:
        ut.kobj(10)
    assert "garbage" in e.value.message
    assert ut.info() == before and arena.cap_count == caps
    arena.check()


def test_overlapping_answer_is_refused(arena, ut):
    ut.set_policy(Garbage(0x2000, 0))
    ut.kobj(10)
    with pytest.raises(capmem.PolicyError) as e:
        ut.kobj(10)  # 0 again: overlaps the live block
    assert e.value.address == 0 and e.value.size == 1024
    assert ut.children == 1
    arena.check()


class Raising(FirstFit):
    name = "raising"

    def alloc(self, size, align):
        raise ZeroDivisionError("policy bug")


def test_policy_that_raises_is_a_policy_error_with_the_traceback(arena, ut):
    ut.set_policy(Raising(0x2000))
    with pytest.raises(capmem.PolicyError) as e:
        ut.kobj(10)
    assert isinstance(e.value.__cause__, ZeroDivisionError)
    assert "ZeroDivisionError" in e.value.message
    assert "policy bug" in e.value.callback_traceback
    assert ut.children == 0
    arena.check()


class Refusing(FirstFit):
    name = "refusing"

    def alloc(self, size, align):
        raise capmem.NotEnoughMemory("nothing for you", needed=size, available=7)


def test_policy_refusal_passes_its_code_message_and_numbers(ut):
    with capmem.Allocator.custom(Refusing(0x2000), 0, 0x2000) as a:
        with pytest.raises(capmem.NotEnoughMemory) as e:
            a.alloc(1024)
        assert e.value.message == "nothing for you"
        assert e.value.needed == 1024 and e.value.available == 7
    # An untyped words its refusal as seL4 does, with the policy's numbers.
    ut.set_policy(Refusing(0x2000))
    with pytest.raises(capmem.NotEnoughMemory) as e:
        ut.kobj(10)
    assert e.value.needed == 1024 and "Insufficient memory" in e.value.message


def test_policy_span_must_cover_the_untyped(ut):
    class Small(FirstFit):
        pass

    ut.set_policy(Small(0x2000))  # the span given is the untyped's own
    ut.revoke()


@pytest.mark.parametrize("make", [
    lambda: capmem.Allocator.watermark(0x1000, 0x4000),
    lambda: capmem.Allocator.range(0x1000, 0x4000, 0x100),
    lambda: capmem.Allocator.buddy(0x1000, 0x4000, 8, 14),
    lambda: capmem.Allocator.custom(FirstFit(0x4000, 0x1000), 0x1000, 0x4000),
])
def test_allocator_policies_alloc_free_walk_check(make):
    with make() as a:
        assert a.base == 0x1000 and a.size == 0x4000 and a.avail == 0x4000
        off = a.alloc(0x400, 0x400)
        assert off % 0x400 == 0 and 0x1000 <= off < 0x5000
        assert a.avail == 0x4000 - 0x400 and a.largest <= a.avail
        a.check()
        a.free(off, 0x400)
        with pytest.raises(capmem.NotAllocated):
            a.free(off, 0x400)
        with pytest.raises(capmem.InvalidArgs):
            a.alloc(0)
        a.reset()
        assert a.avail == 0x4000 and a.name
        assert "avail" in repr(a)
        if a.name != "watermark":
            a.alloc_at(0x2000, 0x400)
            assert any(used for _, _, used in a.walk()) or a.name == "py-first-fit"
    assert "closed" in repr(a)
    with pytest.raises(ValueError):
        a.alloc(16)


def test_custom_allocator_refuses_wrong_answers():
    with capmem.Allocator.custom(Garbage(0x4000, 0x10), 0, 0x4000) as a:
        with pytest.raises(capmem.PolicyError):
            a.alloc(0x100, 0x100)  # misaligned
        assert a.alloc(0x10, 0x10) == 0x10
        with pytest.raises(capmem.PolicyError):
            a.alloc(0x10, 0x10)  # overlaps


def test_range_free_ranges_and_check_hook():
    with capmem.Allocator.range(0, 0x1000, 0x100) as a:
        a.alloc_at(0x400, 0x100)
        assert a.free_ranges() == [(0, 0x400, False), (0x500, 0xB00, False)]

    class Broken(FirstFit):
        def check(self):
            return "broken on purpose"

    with capmem.Allocator.custom(Broken(0x1000), 0, 0x1000) as a:
        with pytest.raises(capmem.Corrupt, match="broken on purpose"):
            a.check()


def test_policy_base_class_hooks_must_be_written():
    base = capmem.Policy()
    for call in (lambda: base.alloc(16, 16), lambda: base.free(0, 16), base.avail,
                 base.largest, base.reset):
        with pytest.raises(NotImplementedError):
            call()
    with pytest.raises(capmem.NotEnoughMemory):
        base.alloc_at(0, 16)  # no exact placement unless the policy has it


def test_kernel_objects_have_no_bytes(arena):
    obj = arena.boot_untypeds()[0].kobj(10)
    assert obj.read is None and obj.write is None and obj.size == 1024


class Faulty(FirstFit):
    """Every hook raises (what it raises is asked per test)."""

    name = "faulty"
    exc = RuntimeError("hook bug")

    def __init__(self, size):
        self.size, self.base = size, 0
        FirstFit.reset(self)

    def alloc_at(self, offset, size):
        raise self.exc

    def free(self, offset, size):
        raise self.exc

    def avail(self):
        raise self.exc

    def largest(self):
        raise self.exc

    def reset(self):
        raise self.exc

    def check(self):
        raise self.exc

    def walk(self):
        raise self.exc

    def destroy(self):
        raise self.exc


def test_every_hook_that_raises_is_caught(monkeypatch):
    reported = []
    monkeypatch.setattr("sys.unraisablehook", reported.append)
    policy = Faulty(0x1000)
    a = capmem.Allocator.custom(policy, 0, 0x1000)
    off = a.alloc(0x10, 0x10)  # alloc itself works
    with pytest.raises(capmem.PolicyError) as e:
        a.alloc_at(0x800, 0x10)
    assert isinstance(e.value.__cause__, RuntimeError)
    with pytest.raises(capmem.PolicyError):
        a.free(off, 0x10)
    with pytest.raises(capmem.PolicyError):
        a.check()
    with pytest.raises(capmem.PolicyError):
        a.walk()
    assert a.avail == 0 and a.largest == 0  # no way to fail: reported, answered 0
    a.reset()
    assert len(reported) == 3
    a.close()  # the destroy hook raises too: reported
    assert len(reported) == 4 and all("Python policy" in r.err_msg for r in reported)


def test_walk_visitor_can_stop_and_stale_owner_is_harmless():
    class Walker(FirstFit):
        pass

    with capmem.Allocator.custom(Walker(0x1000), 0, 0x1000) as a:
        a.alloc_at(0x100, 0x100)
        assert [b for b in a.walk()] == [(0, 0x100, False), (0x200, 0xE00, False)]


def test_none_from_alloc_is_not_enough_memory_with_numbers():
    class Full(FirstFit):
        def alloc(self, size, align):
            return None

    with capmem.Allocator.custom(Full(0x1000), 0, 0x1000) as a:
        with pytest.raises(capmem.NotEnoughMemory) as e:
            a.alloc(0x10)
        assert e.value.needed == 0x10 and e.value.available == 0x1000


def test_interrupt_in_an_allocator_policy_is_raised_as_it_is():
    """Ctrl-C inside a policy is the user's, not a policy error (as in a fault handler)."""

    class Interrupted(FirstFit):
        def alloc(self, size, align):
            raise KeyboardInterrupt

    with capmem.Allocator.custom(Interrupted(0x1000), 0, 0x1000) as a:
        with pytest.raises(KeyboardInterrupt):
            a.alloc(0x10, 0x10)
        assert a.stats()["used_blocks"] == 0  # refused: nothing was placed
