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


@pytest.mark.skipif(not TOUR_EXE, reason="CAPMEM_TOUR_EXE is not set (run through meson test)")
def test_python_tour_prints_what_the_c_tour_prints(tmp_path):
    c = run([TOUR_EXE], tmp_path / "c.svg")
    py = run([sys.executable, str(SOURCE_ROOT / "examples" / "python" / "tour.py")],
             tmp_path / "py.svg")
    assert "== 7. Seeing the state" in py
    assert py == c
    assert (tmp_path / "py.svg").read_bytes() == (tmp_path / "c.svg").read_bytes()
