#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Count test cases in Meson's JSON test logs and print one closing line
"N passed, N failed" (TAP tests count each case; other tests count once)."""
import json
import re
import sys

OK_RESULTS = {"OK", "EXPECTEDFAIL"}
SKIP_RESULTS = {"SKIP"}
TAP_LINE = re.compile(r"^(not ok|ok)\b(.*)$")


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
