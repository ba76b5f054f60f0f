# SPDX-License-Identifier: MIT
"""The binding cannot drift from the C headers.

capmem_layout (built by meson from python/capmem/_cdef.py by
tools/gen_layout.py) prints what the C compiler says about every struct the
binding mirrors (size, each field's offset) and every constant it names;
here cffi's view of the same declarations must agree exactly. Then the
headers are read the other way round: every public struct, each of its
fields, and every enum constant must be mirrored, so a field or code added
to a header without the binding fails this test.
"""
import os
import re
import subprocess

import pytest

import capmem
from capmem import _cdef, ffi, lib
from conftest import SOURCE_ROOT

LAYOUT_EXE = os.environ.get("CAPMEM_LAYOUT_EXE")


@pytest.fixture(scope="module")
def c_layout():
    if not LAYOUT_EXE:
        pytest.skip("CAPMEM_LAYOUT_EXE is not set (run through meson test)")
    # A sanitizer runtime preloaded for the interpreter (python/meson.build)
    # is not for this program, which has its own.
    env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
    out = subprocess.run([LAYOUT_EXE], check=True, capture_output=True, text=True,
                         env=env).stdout
    sizes, offsets, consts = {}, {}, {}
    for line in out.splitlines():
        what, *rest = line.split("|")
        if what == "sizeof":
            sizes[rest[0]] = int(rest[1])
        elif what == "offsetof":
            offsets[(rest[0], rest[1])] = int(rest[2])
        elif what == "const":
            consts[rest[0]] = int(rest[1])
    return sizes, offsets, consts


@pytest.mark.parametrize("struct", _cdef.STRUCTS)
def test_struct_size_and_offsets_match_c(c_layout, struct):
    sizes, offsets, _ = c_layout
    assert ffi.sizeof(struct) == sizes[struct]
    assert ffi.alignof(struct) <= sizes[struct]
    for name, field in ffi.typeof(struct).fields:
        assert field.offset == offsets[(struct, name)], f"{struct}.{name}"


def test_every_constant_matches_c(c_layout):
    _, _, consts = c_layout
    assert len(consts) > 100
    for name, value in consts.items():
        assert getattr(lib, name) % 2**64 == value, name


def test_every_error_code_has_its_class_and_name():
    for code in range(lib.CAPMEM_E__COUNT):
        name = ffi.string(lib.capmem_err_name(code)).decode()
        assert name == _cdef.ERROR_NAMES[code]
        if code:
            cls = capmem.error_class(code)
            assert issubclass(cls, capmem.Error) and cls is not capmem.Error
            assert cls.code == code and cls.name == name
    assert ffi.string(lib.capmem_err_name(lib.CAPMEM_E__COUNT)) == b"UNKNOWN"


def _header_blocks(kind):
    """(name, body) of every `typedef struct|enum ... { body } name;` in the headers,
    and of every `struct name { body };` (named "struct name")."""
    found = []
    for header in sorted((SOURCE_ROOT / "include" / "capmem").glob("*.h")):
        text = re.sub(r"/\*.*?\*/", "", header.read_text(), flags=re.S)
        for m in re.finditer(r"typedef\s+" + kind + r"\b[^{;]*\{(.*?)\}\s*(\w+)\s*;", text,
                             re.S):
            found.append((m.group(2), m.group(1)))
        for m in re.finditer(r"^" + kind + r"\s+(\w+)\s*\{(.*?)\}\s*;", text, re.S | re.M):
            found.append((f"{kind} {m.group(1)}", m.group(2)))
    return found


def _field_names(body):
    names = []
    for decl in body.split(";"):
        decl = " ".join(decl.split())
        if not decl:
            continue
        m = re.search(r"\(\s*\*\s*(\w+)\s*\)\s*\(", decl)  # a function pointer
        if m is None:
            m = re.search(r"(\w+)\s*(\[[^\]]*\])?\s*$", decl)
        names.append(m.group(1))
    return names


def test_every_public_struct_and_field_is_mirrored():
    structs = _header_blocks("struct")
    assert len(structs) >= len(_cdef.STRUCTS)
    for name, body in structs:
        assert name in _cdef.STRUCTS, f"{name} is in the headers but not in the binding"
        mirrored = [f for f, _ in ffi.typeof(name).fields]
        assert _field_names(body) == mirrored, name


def test_every_enum_constant_is_mirrored():
    enums = _header_blocks("enum")
    assert enums
    for name, body in enums:
        for const in re.findall(r"\b(CAPMEM_\w+)\s*(?:=|,|$)", body):
            assert hasattr(lib, const), f"{const} of {name} is not in the binding"
            ffi.typeof(name)  # the typedef is mirrored too
    # The error codes come from an X-macro, not an enum body.
    header = (SOURCE_ROOT / "include" / "capmem" / "error.h").read_text()
    assert tuple(re.findall(r"^\s*X\((\w+),", header, re.M)) == _cdef.ERROR_NAMES
