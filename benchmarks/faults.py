"""Faults the soak benchmark and the crash tests inject into real processes."""

import resource
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_with_file_size_limit(argv: list[str], env: dict, limit: int) -> subprocess.CompletedProcess:
    """Run `argv` (text output captured) with no file it writes allowed past `limit` bytes
    (RLIMIT_FSIZE), as on a full disk: writes fail with EFBIG (Python ignores SIGXFSZ)."""

    def limit_file_size() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return subprocess.run(
        argv, cwd=ROOT, env=env, capture_output=True, text=True, preexec_fn=limit_file_size, timeout=600
    )
