#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Count test cases in Meson's JSON test logs and print one closing line
"N passed, N failed" (TAP tests count each case; a pytest run that writes
JUnit XML (--junitxml=PATH in its command) counts each of its cases; other
tests count once)."""
import json
import os
import re
import sys
import xml.etree.ElementTree as ET

OK_RESULTS = {"OK", "EXPECTEDFAIL"}
SKIP_RESULTS = {"SKIP"}
TAP_LINE = re.compile(r"^(not ok|ok)\b(.*)$")


def junit_path(entry):
    """The --junitxml=PATH of a test's command, if it has one."""
    for arg in entry.get("command") or []:
        if isinstance(arg, str) and arg.startswith("--junitxml="):
            return arg[len("--junitxml="):]
    return None


def count_junit(path, entry):
    """(passed, failed, skipped) of a pytest JUnit XML written by this run, or None."""
    try:
        # A file older than the test's start was left by an earlier run.
        if os.path.getmtime(path) + 1 < float(entry.get("starttime", 0)):
            return None
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError, ValueError):
        return None
    passed = failed = skipped = 0
    for case in root.iter("testcase"):
        tags = {child.tag for child in case}
        if tags & {"failure", "error"}:
            failed += 1
        elif "skipped" in tags:
            skipped += 1
        else:
            passed += 1
    if passed + failed + skipped == 0:
        return None
    return passed, failed, skipped


def count(path):
    passed = failed = skipped = 0
    try:
        lines = open(path, encoding="utf-8").read().splitlines()
    except OSError:
        print(f"summary: {path} is missing: the run did not happen", file=sys.stderr)
        return 0, 1, 0
    for line in lines:
        if not line.strip():
            continue
        entry = json.loads(line)
        result = entry.get("result", "")
        junit = junit_path(entry)
        counts = count_junit(junit, entry) if junit else None
        if counts is not None:
            passed += counts[0]
            failed += counts[1]
            skipped += counts[2]
            if result not in OK_RESULTS | SKIP_RESULTS and counts[1] == 0:
                failed += 1  # pytest itself failed (a crash, an error at collection)
            continue
        cases = [TAP_LINE.match(l) for l in entry.get("stdout", "").splitlines()]
        cases = [m for m in cases if m]
        if cases and result not in ("TIMEOUT", "ERROR"):
            for m in cases:
                if "# SKIP" in m.group(2):
                    skipped += 1
                elif m.group(1) == "ok":
                    passed += 1
                else:
                    failed += 1
            if result not in OK_RESULTS | SKIP_RESULTS and not any(
                    m.group(1) == "not ok" for m in cases):
                failed += 1  # the binary itself failed (crash, leak, exit code)
        elif result in OK_RESULTS:
            passed += 1
        elif result in SKIP_RESULTS:
            skipped += 1
        else:
            failed += 1
    return passed, failed, skipped


def main():
    total = [0, 0, 0]
    for path in sys.argv[1:]:
        p, f, s = count(path)
        print(f"{path}: {p} passed, {f} failed, {s} skipped")
        total = [total[0] + p, total[1] + f, total[2] + s]
    print(f"{total[0]} passed, {total[1]} failed, {total[2]} skipped")
    return 1 if total[1] else 0


if __name__ == "__main__":
    sys.exit(main())
