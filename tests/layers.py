#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Data flows one way: no file of src/ includes the internal header of a
layer above its own (the order is src/layers.txt), every file of src/ has a
layer, and the include graph of src/ has no cycle.

Usage: layers.py SOURCE_ROOT. Prints what is wrong with file and line, and
exits 1; prints the layer map and exits 0 when all is well.
"""
import re
import sys
from pathlib import Path


def main(root):
    src = Path(root) / "src"
    order, layer_of, problems = [], {}, []
    for n, line in enumerate((src / "layers.txt").read_text().splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        name, _, files = line.partition(":")
        order.append(name.strip())
        for f in files.split():
            if f in layer_of:
                problems.append(f"src/layers.txt:{n}: {f} is listed twice")
            layer_of[f] = len(order) - 1
    present = sorted(p.name for p in src.iterdir() if p.suffix in (".c", ".h"))
    for f in present:
        if f not in layer_of:
            problems.append(f"src/{f}:1: not in any layer of src/layers.txt")
    for f in sorted(layer_of):
        if f not in present:
            problems.append(f"src/layers.txt: {f} is listed but does not exist")
    include = re.compile(r'^\s*#\s*include\s+"([^"]+)"')
    graph = {}
    for f in present:
        graph[f] = []
        for n, line in enumerate((src / f).read_text().splitlines(), 1):
            m = include.match(line)
            if not m or "/" in m.group(1):
                continue  # public headers (capmem/...) are the API, open to every layer
            dep = m.group(1)
            graph[f].append(dep)
            if f in layer_of and dep in layer_of and layer_of[dep] > layer_of[f]:
                problems.append(
                    f"src/{f}:{n}: includes {dep} of layer '{order[layer_of[dep]]}', "
                    f"above its own layer '{order[layer_of[f]]}'"
                )
    # No cycle, within a layer either: depth-first search with colours.
    colour = {}

    def visit(f, path):
        colour[f] = 1
        for d in graph.get(f, []):
            if colour.get(d) == 1:
                cyc = path[path.index(d):] + [d] if d in path else [f, d]
                problems.append("src/: include cycle " + " -> ".join(cyc))
            elif colour.get(d) is None and d in graph:
                visit(d, path + [d])
        colour[f] = 2

    for f in present:
        if colour.get(f) is None:
            visit(f, [f])
    if problems:
        print("\n".join(problems))
        return 1
    for i, name in enumerate(order):
        files = sorted(f for f, l in layer_of.items() if l == i)
        print(f"{i:2} {name:<11} {' '.join(files)}")
    print(f"layers: {len(present)} files in {len(order)} layers, every include points down")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "."))
