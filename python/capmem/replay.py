# SPDX-License-Identifier: MIT
"""capmem-replay from Python, and traces read in Python.

``replay()`` runs the ``capmem-replay`` tool (tools/replay, installed with
the library) on a trace against built-in policies and policies in shared
objects, and returns its summary and its CSV over time. ``read_trace()``
reads the same trace formats (text, the library's JSON Lines trace, glibc
mtrace; gzip-compressed too) into a list of operations, which
``replay_allocator()`` replays against any Allocator, Python policies
included (the tool cannot load those).
"""
import csv
import dataclasses
import gzip
import io
import json
import os
import shutil
import subprocess
import tempfile

from . import errors
from ._ffi import lib


def replay_tool():
    """The capmem-replay program: $CAPMEM_REPLAY, the installed one, or the PATH's."""
    env = os.environ.get("CAPMEM_REPLAY")
    if env:
        return env
    try:
        from . import _config

        here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        site = os.path.normpath(_config.PYTHON_DIR)
        root = here[: len(here) - len(site)] if here.endswith(site) else ""
        for path in (root + _config.BINDIR, _config.BINDIR):
            tool = os.path.join(path, "capmem-replay")
            if os.access(tool, os.X_OK):
                return tool
    except (ImportError, AttributeError):
        pass
    tool = shutil.which("capmem-replay")
    if tool is None:
        raise FileNotFoundError("capmem-replay not found: set CAPMEM_REPLAY, install libcapmem, "
                                "or run inside `meson devenv -C BUILD`")
    return tool


@dataclasses.dataclass(frozen=True)
class ReplayResult:
    summary: str  # the tool's table: served, failures, fragmentation per policy
    rows: list  # the CSV over time, one dict per row (numbers as int or float)

    def policies(self):
        """The last row of each policy (its state at the end of the trace)."""
        last = {}
        for row in self.rows:
            last[row["policy"]] = row
        return last


def replay(trace, policies=None, span=None, granule=None, format=None, every=None, svg=None):
    """Run capmem-replay on ``trace`` (a path, or the trace's text).

    ``policies`` are built-in names or "FILE.so:SYMBOL" (default: watermark,
    range and buddy). Raises InvalidArgs with the tool's message (and the
    line number of bad input) when it refuses the trace or the options.
    """
    with tempfile.TemporaryDirectory() as tmp:
        if not os.path.exists(str(trace)):
            path = os.path.join(tmp, "trace")
            with open(path, "w", encoding="utf-8") as f:
                f.write(str(trace))
            trace = path
        elif str(trace).endswith(".gz"):  # the tool reads plain text
            path = os.path.join(tmp, os.path.basename(str(trace))[:-3])
            with gzip.open(trace) as src, open(path, "wb") as dst:
                shutil.copyfileobj(src, dst)
            trace = path
        csv_path = os.path.join(tmp, "rows.csv")
        cmd = [replay_tool(), "--csv", csv_path]
        for p in policies or []:
            cmd += ["--policy", p]
        for flag, value in (("--span", span), ("--granule", granule), ("--format", format),
                            ("--every", every), ("--svg", svg)):
            if value is not None:
                cmd += [flag, str(value)]
        cmd.append(str(trace))
        # A sanitizer runtime preloaded into the interpreter (the test suite
        # does that in an ASan build) is not for the tool, which has its own.
        env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
        out = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if out.returncode != 0:
            raise errors.InvalidArgs(out.stderr.strip() or f"capmem-replay exited {out.returncode}",
                                     code=lib.CAPMEM_E_INVALID_ARGS)
        with open(csv_path, encoding="utf-8") as f:
            rows = [{k: _number(v) for k, v in row.items()} for row in csv.DictReader(f)]
    return ReplayResult(out.stdout, rows)


def _number(text):
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _open(path):
    if str(path).endswith(".gz"):
        return io.TextIOWrapper(gzip.open(path), encoding="utf-8", errors="replace")
    return open(path, encoding="utf-8", errors="replace")


def read_trace(path):
    """The operations of a trace file: ("a", id, size, align), ("f", id), ("at", id, offset, size).

    Formats as capmem-replay reads them: text (``a ID SIZE [ALIGN]``,
    ``f ID``, ``at ID OFFSET SIZE``), the library's JSON Lines trace (its
    dataspace allocs and frees) and glibc mtrace logs; ``.gz`` files are
    decompressed.
    """
    ops = []
    with _open(path) as f:
        lines = f.read().splitlines()
    first = next((line for line in lines if line.strip()), "")
    if first.startswith("{"):
        for line in lines[1:]:
            ev = json.loads(line)
            if ev["kind_id"] == lib.CAPMEM_EVENT_DS_ALLOC:
                ops.append(("a", ev["cap"], ev["size"], 1))
            elif ev["kind_id"] == lib.CAPMEM_EVENT_DS_FREE and ev["b"] == lib.CAPMEM_DS_RAM:
                ops.append(("f", ev["cap"]))
    elif first.startswith("= Start") or first.startswith("@ "):
        for line in lines:
            parts = line.split()
            if len(parts) >= 4 and parts[0] == "@" and parts[-3] == "+":
                ops.append(("a", parts[-2], int(parts[-1], 16), 16))
            elif len(parts) >= 3 and parts[0] == "@" and parts[-2] == "-":
                ops.append(("f", parts[-1]))
            elif len(parts) >= 3 and parts[0] == "@" and parts[-2] == "<":
                ops.append(("f", parts[-1]))  # realloc: the old block goes...
            elif len(parts) >= 4 and parts[0] == "@" and parts[-3] == ">":
                ops.append(("a", parts[-2], int(parts[-1], 16), 16))  # ...and the new one comes
    else:
        for line in lines:
            parts = line.split("#", 1)[0].split()
            if not parts:
                continue
            if parts[0] == "a":
                ops.append(("a", parts[1], int(parts[2], 0),
                            int(parts[3], 0) if len(parts) > 3 else 1))
            elif parts[0] == "f":
                ops.append(("f", parts[1]))
            elif parts[0] == "at":
                ops.append(("at", parts[1], int(parts[2], 0), int(parts[3], 0)))
    return ops


def replay_allocator(alloc, ops):
    """Replay operations (read_trace) against an Allocator; return its figures."""
    placed = {}
    served = failures = 0
    for op in ops:
        if op[0] in ("a", "at"):
            try:
                if op[0] == "a":
                    offset, size = alloc.alloc(op[2], op[3]), op[2]
                else:
                    alloc.alloc_at(op[2], op[3])
                    offset, size = op[2], op[3]
                placed[op[1]] = (offset, size)
                served += 1
            except (errors.NotEnoughMemory, errors.RegionConflict):
                failures += 1
        elif op[1] in placed:
            alloc.free(*placed.pop(op[1]))
    alloc.check()
    stats = alloc.stats()
    return {"policy": alloc.name, "served": served, "failures": failures,
            "free": stats["free_bytes"], "largest": stats["largest_free"],
            "fragmentation": stats["fragmentation"]}
