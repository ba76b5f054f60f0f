# SPDX-License-Identifier: MIT
"""Checks of the dumps of the seed scenarios (tests/dump_scenarios.c).

usage: dump_check.py json|dot|svg DUMP_SCENARIOS SCHEMA

json: every JSON dump (whole arena and subtree) validates against
      docs/dump.schema.json; each account's numbers equal capmem_ram_info's;
      every live capability appears exactly once; the physical map tiles RAM.
dot:  `dot -Tsvg` renders every DOT dump (skipped when Graphviz is missing).
svg:  every SVG is well-formed (xmllint --noout) and renders to PNG
      (rsvg-convert); the owners drawn in the strip match the physical map.
Run with /usr/bin/python3 (Debian's jsonschema is installed for it).
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET

SCENARIOS = ["sel4_fragmentation", "genode_metadata", "alias_split", "alias_lent",
             "rm_fault", "rm_nested", "kernel_banks"]


def fail(msg):
    print("FAIL: " + msg)
    sys.exit(1)


def load(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def check_json(out, schema_path):
    try:
        import jsonschema
    except ImportError:
        print("SKIP: python3-jsonschema is not installed (scripts/check installs it)")
        sys.exit(77)
    schema = load(schema_path)
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    for name in SCENARIOS:
        for suffix in ["json", "sub.json"]:
            path = os.path.join(out, name + "." + suffix)
            if not os.path.exists(path):
                continue
            doc = load(path)
            errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.path))
            if errors:
                fail("%s: %s at %s" % (path, errors[0].message, list(errors[0].path)))
        doc = load(os.path.join(out, name + ".json"))
        expect = load(os.path.join(out, name + ".expect.json"))
        # Every live capability exactly once.
        caps = [c["cap"] for c in doc["capabilities"]]
        if len(caps) != len(set(caps)):
            fail("%s: a capability appears twice" % name)
        if sorted(caps) != sorted(expect["caps"]):
            fail("%s: capabilities %s, the walk says %s" % (name, sorted(caps),
                                                           sorted(expect["caps"])))
        # Each account's numbers are capmem_ram_info's.
        accounts = {a["cap"]: a for a in doc["ram"]["accounts"]}
        for cap, info in expect["accounts"].items():
            if cap not in accounts:
                fail("%s: account %s missing" % (name, cap))
            for k, v in info.items():
                if accounts[cap][k] != v:
                    fail("%s: account %s: %s is %s, capmem_ram_info says %s"
                         % (name, cap, k, accounts[cap][k], v))
        # The physical map tiles RAM (the whole arena's dump), in order, without overlap.
        pos = 0
        for p in doc["physical"]:
            if p["offset"] != pos:
                fail("%s: physical map jumps from %d to %d" % (name, pos, p["offset"]))
            pos = p["offset"] + p["size"]
        if pos != doc["arena"]["ram_size"] + doc["arena"]["device_window"]:
            fail("%s: physical map ends at %d" % (name, pos))
        # Each dataspace's pages are in the map, as its account's.
        for d in doc["ram"]["dataspaces"]:
            if d["kind"] != "RAM":
                continue
            covered = sum(p["size"] for p in doc["physical"]
                          if p["kind"] == "dataspace" and p["owner"] == d["cap"])
            if covered != d["size"]:
                fail("%s: dataspace %s has %d bytes in the map, %d in the list"
                     % (name, d["cap"], covered, d["size"]))
        check_kernel(out, name, doc)
    print("json: %d scenarios valid and consistent" % len(SCENARIOS))


def check_kernel(out, name, doc):
    """The kernel section against capmem_kernel_info and capmem_bank_info (NAME.banks.json)."""
    path = os.path.join(out, name + ".banks.json")
    if not os.path.exists(path):
        if doc["kernel"]["heap"] is not None or doc["kernel"]["banks"]:
            fail("%s: a kernel section without a booted kernel or banks" % name)
        return
    expect = load(path)
    heap = doc["kernel"]["heap"]
    k = expect["kernel"]
    for key in ["records_used", "records_capacity", "ram_records", "device_records",
                "heap_frames", "borrowed_frames", "image_frames", "device_reserve"]:
        if heap[key] != k[key]:
            fail("%s: kernel %s is %s, capmem_kernel_info says %s" % (name, key, heap[key], k[key]))
    # Records in use: one per RAM frame and one per present device frame.
    if heap["records_used"] != k["ram_frames"] + k["device_frames"]:
        fail("%s: %d records used for %d RAM + %d device frames"
             % (name, heap["records_used"], k["ram_frames"], k["device_frames"]))
    if sum(c["slots"] for c in heap["chunks"]) != heap["records_capacity"]:
        fail("%s: the chunks' slots are not the capacity" % name)
    if sum(c["frames"] for c in heap["chunks"]) != heap["heap_frames"]:
        fail("%s: the chunks' frames are not the heap's" % name)
    if sum(c["frames"] for c in heap["chunks"] if c["borrowed"]) != heap["borrowed_frames"]:
        fail("%s: the borrowed chunks are not the borrowed frames" % name)
    # The physical map shows the image and the heap carved at boot.
    page = doc["arena"]["page_size"]
    kinds = {}
    for p in doc["physical"]:
        kinds[p["kind"]] = kinds.get(p["kind"], 0) + p["size"]
    if kinds.get("kernel image", 0) != heap["image_frames"] * page:
        fail("%s: the map's kernel image is %s bytes" % (name, kinds.get("kernel image")))
    if kinds.get("released by the kernel", 0) != heap["released_frames"] * page:
        fail("%s: the map's released frames are %s bytes" % (name, kinds.get("released by the kernel")))
    carved = sum(c["size"] for c in heap["chunks"] if not c["borrowed"])
    if kinds.get("kernel heap", 0) != carved:
        fail("%s: the map's kernel heap is %s bytes, the chunks carved at boot %d"
             % (name, kinds.get("kernel heap"), carved))
    # Each bank's numbers are capmem_bank_info's (an unlimited chain: null in the dump).
    banks = {b["cap"]: b for b in doc["kernel"]["banks"]}
    for cap, info in expect["banks"].items():
        if cap not in banks:
            fail("%s: bank %s missing" % (name, cap))
        b = banks[cap]
        for t in ["frames", "nodes"]:
            for key in ["used", "own", "limit", "effective"]:
                got, want = b[t][key], info[t][key]
                if got is None:
                    ok = want == 2 ** 64 - 1  # CAPMEM_BANK_UNLIMITED
                else:
                    ok = got == want
                if not ok:
                    fail("%s: bank %s %s %s is %s, capmem_bank_info says %s"
                         % (name, cap, t, key, got, want))
        if b["depth"] != info["depth"] or b["children"] != info["children"]:
            fail("%s: bank %s depth or children differ from capmem_bank_info" % (name, cap))
    # Usage adds up: each bank's used = own + its children's used; one kernel bank at most.
    for b in doc["kernel"]["banks"]:
        for t in ["frames", "nodes"]:
            kids = [c for c in doc["kernel"]["banks"] if c["parent"] == b["cap"]
                    and c["depth"] == b["depth"] + 1 and b["cap"] is not None]
            if b["cap"] is not None and b[t]["used"] != b[t]["own"] + sum(c[t]["used"] for c in kids):
                fail("%s: bank %s: %s used is not own + children's" % (name, b["cap"], t))
    kernel_banks = [b for b in doc["kernel"]["banks"] if b["kernel"]]
    if len(kernel_banks) > 1 or (kernel_banks and
                                 kernel_banks[0]["heap_frames"] != heap["borrowed_frames"]):
        fail("%s: the kernel's bank does not hold the borrowed heap frames" % name)
    # The subtree dump (rooted at a bank) shows that bank's subtree only.
    sub = load(os.path.join(out, name + ".sub.json"))
    if sub["scope"]["root_type"] == "space bank":
        top = sub["kernel"]["banks"][0]
        if top["cap"] != sub["scope"]["root"] or top["depth"] != 0 or sub["kernel"]["heap"]:
            fail("%s: the bank subtree does not start at its root" % name)
        whole = [b["cap"] for b in doc["kernel"]["banks"]]
        i = whole.index(top["cap"])
        below = [b["cap"] for b in doc["kernel"]["banks"][i + 1:]]
        below = below[:next((j for j, b in enumerate(doc["kernel"]["banks"][i + 1:])
                             if b["depth"] <= doc["kernel"]["banks"][i]["depth"]), len(below))]
        if [b["cap"] for b in sub["kernel"]["banks"]] != [top["cap"]] + below:
            fail("%s: the bank subtree is not the bank and its descendants" % name)


def check_dot(out):
    dot = shutil.which("dot")
    if dot is None:
        print("SKIP: Graphviz's dot is not installed")
        sys.exit(77)
    for name in SCENARIOS:
        path = os.path.join(out, name + ".dot")
        r = subprocess.run([dot, "-Tsvg", path, "-o", os.devnull], capture_output=True,
                           text=True)
        if r.returncode != 0 or r.stderr.strip():
            fail("%s: dot: %s" % (path, r.stderr))
        # Every live capability is one node of the capability tree.
        expect = load(os.path.join(out, name + ".expect.json"))
        with open(path, encoding="utf-8") as f:
            nodes = ["0x" + n for n in re.findall(r"^\s+c([0-9a-f]+) \[label=", f.read(), re.M)]
        if sorted(nodes) != sorted(expect["caps"]):
            fail("%s: the capability nodes are not the live capabilities" % path)
        # Every bank is a node, with an edge toward its parent (the banks' graph).
        with open(path, encoding="utf-8") as f:
            text = f.read()
        for b in load(os.path.join(out, name + ".json"))["kernel"]["banks"]:
            node = "bkernel" if b["kernel"] else "b" + b["cap"][2:]
            if not re.search(r"^\s+%s \[label=" % node, text, re.M):
                fail("%s: bank %s is not a node" % (path, node))
            if b["parent"] is not None and not re.search(
                    r"^\s+%s -> b%s \[label=" % (node, b["parent"][2:]), text, re.M):
                fail("%s: bank %s has no edge to its parent" % (path, node))
    print("dot: %d scenarios render, every capability a node" % len(SCENARIOS))


def check_svg(out):
    xmllint = shutil.which("xmllint")
    rsvg = shutil.which("rsvg-convert")
    for name in SCENARIOS:
        for suffix in ["svg", "sub.svg"]:
            path = os.path.join(out, name + "." + suffix)
            if not os.path.exists(path):
                continue
            if xmllint is not None:
                r = subprocess.run([xmllint, "--noout", path], capture_output=True, text=True)
                if r.returncode != 0:
                    fail("%s: xmllint: %s" % (path, r.stderr))
            if rsvg is not None:
                png = os.path.join(out, name + "." + suffix + ".png")
                r = subprocess.run([rsvg, "-o", png, path], capture_output=True, text=True)
                if r.returncode != 0 or os.path.getsize(png) == 0:
                    fail("%s: rsvg-convert: %s" % (path, r.stderr))
        # The strip's owners are the physical map's.
        doc = load(os.path.join(out, name + ".json"))
        phys = {p["offset"]: p for p in doc["physical"]}
        root = ET.parse(os.path.join(out, name + ".svg")).getroot()
        drawn = 0
        for rect in root.iter("{http://www.w3.org/2000/svg}rect"):
            if "data-kind" not in rect.attrib:
                continue
            off = int(rect.attrib["data-offset"])
            p = phys.get(off)
            if p is None:
                fail("%s: the picture shows a range at %d the map does not have" % (name, off))
            if int(rect.attrib["data-size"]) != p["size"] or rect.attrib["data-kind"] != p["kind"]:
                fail("%s: at %d the picture shows %s, the map %s" % (name, off,
                                                                     rect.attrib, p))
            if rect.attrib.get("data-owner") != p["owner"]:
                fail("%s: at %d the picture's owner is %s, the map's %s"
                     % (name, off, rect.attrib.get("data-owner"), p["owner"]))
            drawn += 1
        if drawn != len(doc["physical"]):
            fail("%s: %d ranges drawn, the map has %d" % (name, drawn, len(doc["physical"])))
        # Each account's bar is its numbers: used (own), lent, avail, records.
        groups = [g for g in root.iter("{http://www.w3.org/2000/svg}g")
                  if g.attrib.get("class") == "account"]
        accounts = doc["ram"]["accounts"]
        if len(groups) != len(accounts):
            fail("%s: %d quota bars, %d accounts" % (name, len(groups), len(accounts)))
        for g, a in zip(groups, accounts):
            parts = {r.attrib["data-part"]: int(r.attrib["data-bytes"]) for r in g}
            want = {"used": a["used"] - a["lent"], "lent": a["lent"], "avail": a["avail"],
                    "records": a["donation"]}
            want = {k: v for k, v in want.items() if v != 0}
            if parts != want:
                fail("%s: the bar of %s shows %s, the account %s" % (name, a["label"], parts, want))
        # Each bank's bar is its frames: own, sub-banks', room to the effective limit.
        groups = [g for g in root.iter("{http://www.w3.org/2000/svg}g")
                  if g.attrib.get("class") == "bank"]
        banks = doc["kernel"]["banks"]
        if len(groups) != min(len(banks), 24):
            fail("%s: %d bank bars, %d banks" % (name, len(groups), len(banks)))
        for g, b in zip(groups, banks):
            parts = {r.attrib["data-part"]: int(r.attrib["data-count"]) for r in g}
            f = b["frames"]
            room = f["effective"] - f["used"] if f["effective"] is not None else 0
            want = {"own": f["own"], "children": f["used"] - f["own"], "room": room}
            want = {k: v for k, v in want.items() if v != 0}
            if parts != want and not (parts.get("room") is None and
                                      {k: v for k, v in want.items() if k != "room"} == parts):
                fail("%s: the bar of bank %s shows %s, the bank %s" % (name, b["cap"], parts, want))
        heap = doc["kernel"]["heap"]
        groups = [g for g in root.iter("{http://www.w3.org/2000/svg}g")
                  if g.attrib.get("class") == "kernel-heap"]
        if heap is not None:
            parts = {r.attrib["data-part"]: int(r.attrib["data-count"]) for g in groups for r in g}
            want = {"ram": heap["ram_records"], "device": heap["device_records"],
                    "reserve": heap["device_reserve"]}
            if parts != {k: v for k, v in want.items() if v != 0}:
                fail("%s: the kernel heap's bar shows %s, the heap %s" % (name, parts, want))
        elif groups:
            fail("%s: a kernel heap bar without a kernel" % name)
    if xmllint is None or rsvg is None:
        print("note: xmllint or rsvg-convert missing, that part was skipped")
    print("svg: %d scenarios well-formed, rendered, owners match" % len(SCENARIOS))


def main():
    if len(sys.argv) != 4:
        fail(__doc__)
    what, exe, schema = sys.argv[1:]
    with tempfile.TemporaryDirectory(prefix="capmem-dump-") as out:
        subprocess.run([exe, out], check=True)
        if what == "json":
            check_json(out, schema)
        elif what == "dot":
            check_dot(out)
        elif what == "svg":
            check_svg(out)
        else:
            fail("unknown check " + what)


if __name__ == "__main__":
    main()
