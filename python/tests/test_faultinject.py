# SPDX-License-Identifier: MIT
"""A short run under the library's fault-injection hooks (see
tests/test_faultinject.c): the n-th host allocation or mapping fails, and
the binding turns each failure into HostNoMem or SystemCallError."""
import os
import pathlib
import subprocess
import sys

import pytest

INJECT = os.environ.get("CAPMEM_INJECT_LIBRARY")
HERE = pathlib.Path(__file__).resolve().parent


@pytest.mark.skipif(not INJECT, reason="CAPMEM_INJECT_LIBRARY is not set (run through meson test)")
@pytest.mark.parametrize("kind", ["malloc", "mmap", "memfd", "ftruncate"])
def test_every_injected_host_failure_is_a_clean_exception(kind):
    env = dict(os.environ, CAPMEM_LIBRARY=INJECT)
    out = subprocess.run([sys.executable, str(HERE / "faultinject_scenario.py"), kind], env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    line = out.stdout.strip().splitlines()[-1]
    name, runs, failures = line.split()
    runs = int(runs.split("=")[1])
    failures = int(failures.split("=")[1])
    # The last run went through; every earlier one failed cleanly or fell back
    # (a memfd failure may fall back to an anonymous mapping).
    assert name == kind and runs >= 2 and 1 <= failures <= runs - 1
