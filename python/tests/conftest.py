# SPDX-License-Identifier: MIT
"""Shared fixtures: a small arena, its RAM service's root account, an app account.

Every fixture that makes an arena runs the invariant checker at teardown,
so each test ends with capmem_check() passing.
"""
import os
import pathlib

import pytest

import capmem

SOURCE_ROOT = pathlib.Path(
    os.environ.get("CAPMEM_SOURCE_ROOT", pathlib.Path(__file__).resolve().parents[2]))


@pytest.fixture
def arena():
    with capmem.Arena(ram_size=8 << 20, cap_slots=1 << 12) as a:
        yield a
        if not a.closed:
            a.check()


@pytest.fixture
def root(arena):
    return arena.ram_boot()


@pytest.fixture
def app(root):
    return root.open(quota=1 << 20, label="app")
