# SPDX-License-Identifier: MIT
"""dump(): the JSON dump as dicts and lists, the other formats as text, and
the arena's picture for notebooks (_repr_svg_)."""
import json
import xml.etree.ElementTree as ET

import pytest

import capmem
from conftest import SOURCE_ROOT


@pytest.fixture
def scene(arena, root, app):
    ds = app.alloc(8192)
    ds.alias(app, size=4096, first_class=True)
    rm = app.region_map(1 << 20, label="space")
    rm.attach(ds)
    return arena, app, rm


def test_dump_is_the_json_dump_as_python_objects(scene):
    arena, app, rm = scene
    d = arena.dump()
    assert d["format"] == "capmem-dump" and d["version"] == capmem.lib.CAPMEM_DUMP_VERSION
    assert d["arena"]["ram_size"] == arena.ram_size
    for section in ("capabilities", "untyped", "ram", "physical", "region_maps", "stats"):
        assert section in d
    assert isinstance(d["capabilities"], list) and len(d["capabilities"]) == arena.cap_count
    assert json.loads(json.dumps(d)) == d


def test_dump_validates_against_the_schema(scene):
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads((SOURCE_ROOT / "docs" / "dump.schema.json").read_text())
    jsonschema.validate(scene[0].dump(), schema)


def test_dump_of_a_subtree_and_of_some_sections(scene):
    arena, app, rm = scene
    whole = arena.dump()
    sub = app.dump()
    assert len(sub["capabilities"]) < len(whole["capabilities"])
    assert sub["scope"]["root"] is not None
    only_ram = arena.dump(sections=["ram", "stats"])
    assert "ram" in only_ram and "capabilities" not in only_ram
    with pytest.raises(ValueError):
        arena.dump(sections=["everything"])


def test_text_dot_and_svg_formats(scene):
    arena, app, rm = scene
    text = arena.dump_as("text")
    assert text.startswith("capmem dump:") and "space" in text
    assert arena.dump_as("dot").lstrip().startswith("digraph")
    assert "space" in rm.dump_as("text")
    svg = arena._repr_svg_()
    root = ET.fromstring(svg)
    assert root.tag.endswith("svg")
    assert ET.fromstring(app._repr_svg_()).tag.endswith("svg")


def test_dump_errors_change_nothing(scene):
    arena, app, rm = scene
    before = arena.dump()
    with pytest.raises(KeyError):
        arena.dump_as("pdf")
    with pytest.raises(capmem.InvalidArgs):
        arena.dump_as(99)
    gone = app.alloc(4096)
    gone.free()
    with pytest.raises(capmem.InvalidCap):
        gone.dump()
    assert arena.dump()["capabilities"] == before["capabilities"]


def test_events_name_their_payer(arena, root, app):
    events = []
    arena.subscribe(events.append, kinds=[capmem.EventKind.ALIAS])
    ds = app.alloc(4096)
    other = root.open(label="payer")
    ds.alias(other)
    assert events[0].payer == other and events[0].other == ds
