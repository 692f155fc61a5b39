"""The soak benchmark, short: a real `python app.py`, four visitors at a time for a minute, with
every fault of the full run at shorter intervals (benchmarks/soak.py; the 10-minute figures are
in benchmarks/README.md)."""

import os
import re
import subprocess
import sys

import pytest

from tests.helpers import ROOT

pytestmark = pytest.mark.slow  # see pyproject.toml: the fast tier is pytest -m "not slow"

LAST_LINE = re.compile(
    r"^requests=(\d+) errors=(\d+) unexpected_errors=(\d+) lost_chunks=(\d+) rss_growth=([\d.]+) "
    r"fd_growth=(-?\d+) thread_growth=(-?\d+) leftover_collections=(\d+) p95_ms=(\d+)$"
)


def test_a_short_soak_with_faults_loses_nothing_and_leaks_nothing():
    """Run as a user would on an offline machine: the venv's python named, not activated (its bin
    folder not on PATH: it used to die on `chroma` not found), and HF_HUB_OFFLINE=1 (its own
    push to its own Hub used to fail with a bare CalledProcessError)."""
    command = [sys.executable, "-m", "benchmarks.soak", "--minutes", "1", "--clients", "4", "--ttl", "10"]
    venv_bin = os.path.dirname(sys.executable)
    path = os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep) if p != venv_bin)
    env = {**os.environ, "PATH": path, "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200)
    out = result.stdout
    assert result.returncode == 0, result.stderr[-3000:]
    fields = LAST_LINE.match(out.strip().splitlines()[-1])
    assert fields, out[-2000:]
    requests, errors, unexpected, lost, rss, fds, threads, leftover, _ = fields.groups()
    assert int(unexpected) == 0, out[-3000:]
    assert int(lost) == 0 and int(leftover) == 0
    assert int(requests) > 50 and int(errors) > 0  # bad requests were made, and refused
    assert float(rss) <= 1.15 and int(fds) <= 5 and int(threads) <= 2  # the bound for 3 min x 8
    # Every fault happened, and the app came through each as the issue asks (on failure, the
    # benchmark's log and the end of its stderr: a fault thread's traceback lands there):
    told = out + result.stderr[-3000:]
    assert "fault 1: Chroma is back" in out, told
    assert re.search(r"fault 2: exit 2, error: the store's disk is full .* nothing of this upload was kept", out), told
    assert re.search(
        r"fault 3: training exited 0 \([1-9]\d* pushes tried again\); checkpoints, newest first: \[20, 10\]", out
    ), told
    assert re.search(r"fault 4: SIGTERM: exit 0 in [\d.]+ s, 0 session collections left", out), told
    assert "restarted: answers again" in out, told
