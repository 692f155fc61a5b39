"""Helpers shared by tests."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_cli(*args: str, cwd: Path = ROOT, stdin: str | None = None, env: dict | None = None):
    """Run `python -m qa_core ARGS` in a subprocess and return the CompletedProcess."""
    return subprocess.run(
        [sys.executable, "-m", "qa_core", *args],
        cwd=cwd,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
    )
