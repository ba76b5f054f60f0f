# SPDX-License-Identifier: MIT
"""The Python tour mirrors the C tour step by step: both print the same text
(but for the title and the numbers Python's OUT_OF_RAM shows) and draw the
same picture."""
import os
import re
import subprocess
import sys

import pytest

from conftest import SOURCE_ROOT

TOUR_EXE = os.environ.get("CAPMEM_TOUR_EXE")


def run(cmd, svg):
    env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD" or cmd[0] == sys.executable}
    env["CAPMEM_TOUR_SVG"] = str(svg)
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    text = out.stdout.replace(" (Python)", "").replace(str(svg), "PICTURE")
    return re.sub(r"OUT_OF_RAM \(needed [^)]*\)", "OUT_OF_RAM", text)


# Sections of the C tour the Python tour does not have: 7, real mode (a
# Python pager would run inside the SIGSEGV handler).
NOT_IN_PYTHON = {"7"}


def sections(text):
    """{number: text} of the tour's "== N. title ==" sections (0: the preamble).

    Capability handles are blanked: skipped sections use capability slots,
    so the handles of later sections differ while what they say does not.
    """
    text = re.sub(r"0x[0-9a-f]{15,16}\b", "HANDLE", text)
    parts = re.split(r"^== (\d+)\. ", text, flags=re.M)
    out = {"0": parts[0]}
    for number, body in zip(parts[1::2], parts[2::2]):
        out[number] = body
    return out


@pytest.mark.skipif(not TOUR_EXE, reason="CAPMEM_TOUR_EXE is not set (run through meson test)")
def test_python_tour_prints_what_the_c_tour_prints(tmp_path):
    c = sections(run([TOUR_EXE], tmp_path / "c.svg"))
    py = sections(run([sys.executable, str(SOURCE_ROOT / "examples" / "python" / "tour.py")],
                      tmp_path / "py.svg"))
    assert set(py) == set(c) - NOT_IN_PYTHON
    for number in py:
        assert py[number] == c[number], f"section {number}"
    assert (tmp_path / "py.svg").read_text().lstrip().startswith("<?xml")
