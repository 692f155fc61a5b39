"""The Dockerfile built and run as a user would (`python -m benchmarks.container`): the first answer,
a document kept on the volume across a restart, a clean SIGTERM stop, a non-root user, a passing
HEALTHCHECK. Runs wherever a builder works (a docker daemon, or podman and buildah: tests/setup.sh
installs them); the Dockerfile's own promises are checked on its text everywhere."""

import re
import subprocess
import sys

import pytest

from benchmarks.container import find_builder
from tests.helpers import ROOT

DOCKERFILE = (ROOT / "Dockerfile").read_text()


def test_the_dockerfile_takes_index_settings_and_the_cpu_torch_and_keeps_out_what_it_does_not_run():
    for argument in ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_TRUSTED_HOST", "TORCH_INDEX_URL"):
        assert re.search(rf"^ARG {argument}=", DOCKERFILE, re.M), argument
    assert "ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu" in DOCKERFILE
    assert re.search(r"^USER (?!root)\w+", DOCKERFILE, re.M) and "HEALTHCHECK" in DOCKERFILE
    assert re.search(r"^VOLUME /data", DOCKERFILE, re.M) and "QA_CHROMA_PATH=/data/chroma" in DOCKERFILE
    ignored = (ROOT / ".dockerignore").read_text().split()
    for folder in ("tests", "benchmarks", ".ci", "*.egg-info", ".env", ".git", "results", "runs"):
        assert folder in ignored, folder


@pytest.mark.slow
@pytest.mark.skipif(find_builder() is None, reason="no container builder here (a docker daemon, or podman + buildah)")
def test_the_image_builds_answers_keeps_documents_and_stops_cleanly():
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.container"], cwd=ROOT, capture_output=True, text=True, timeout=3000
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    figures = dict(item.split("=", 1) for item in result.stdout.strip().splitlines()[-1].split())
    assert figures["answered"] == "1" and figures["kept_documents"] == "1", figures
    assert figures["user"] == "1000" and figures["healthy"] == "1", figures
    assert float(figures["stop_s"]) < 30  # SIGTERM ended it; 30 s is when the engine kills it
