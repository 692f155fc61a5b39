"""Build the app's container image from the Dockerfile, run it as a user would, and measure it.

    python -m benchmarks.container

The builder is docker where its daemon answers, else podman with buildah (Debian's packages;
tests/setup.sh installs them). Where the Dockerfile's base (python:3.11-slim) is not in the local
image store, and no registry can be reached from here, a base with the same Python is made from
Debian's packages with debootstrap (once; it is kept). The host's pip configuration, and the local
folders it names, are lent to the build's RUN steps, and torch comes from the indexes pip is
configured with (TORCH_INDEX_URL empty), so the build works behind whatever package mirror this
machine uses.

Then: run the image (demo model, a shared collection on the /data volume), wait for its first answer
through gradio_client, upload a document, stop the container with SIGTERM, start it again and find
the document, and check that the app runs as uid 1000 and that the image's HEALTHCHECK passes. Last line:
`build_s=… image_gb=… first_answer_s=… stop_s=… user=1000 healthy=1 kept_documents=1 answered=1`.
The image stays, tagged qa-toolkit, for `podman run` / `docker run`.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from qa_core.ports import free_port

ROOT = Path(__file__).resolve().parent.parent
TAG = "localhost/qa-toolkit"
DEBIAN_BASE = "localhost/py311-bookworm:base"
NAME = "qa-toolkit-bench"
VOLUME = "qa-toolkit-bench-data"
STATE = Path(os.environ.get("QA_CONTAINER_STATE", Path.home() / ".cache" / "qa-toolkit" / "containers"))
DOCUMENT = "Northwind Capital's net revenue rose to $84.2 million in 2024."
# podman on these machines: runc (crun refuses hybrid cgroups), cgroupfs, limits that may not be raised.
CONTAINERS_CONF = """[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
"""
STORAGE_CONF = """[storage]
driver = "overlay"
graphroot = "{root}/storage"
runroot = "{root}/run"
"""


@dataclass(frozen=True)
class Builder:
    """A container engine: `run` builds its command lines; `build` is docker's or buildah's."""

    engine: str  # docker or podman
    env: dict[str, str]

    def run(self, *args: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess:
        return subprocess.run(
            [self.engine, *args], env=self.env, capture_output=True, text=True, check=check, timeout=timeout
        )

    def has_image(self, name: str) -> bool:
        return self.run("image", "inspect", name, check=False).returncode == 0


def find_builder() -> Builder | None:
    """docker with a daemon that answers, else podman + buildah configured for this machine, else None."""
    if shutil.which("docker") and subprocess.run(["docker", "info"], capture_output=True).returncode == 0:
        return Builder("docker", dict(os.environ))
    if not (shutil.which("podman") and shutil.which("buildah")):
        return None
    STATE.mkdir(parents=True, exist_ok=True)
    (STATE / "containers.conf").write_text(CONTAINERS_CONF)
    (STATE / "storage.conf").write_text(STORAGE_CONF.format(root=STATE))
    env = {
        **os.environ,
        "CONTAINERS_CONF": str(STATE / "containers.conf"),
        "CONTAINERS_STORAGE_CONF": str(STATE / "storage.conf"),
        "BUILDAH_ISOLATION": "chroot",
    }
    return Builder("podman", env)


def debian_mirror() -> str:
    """The Debian mirror this machine's apt uses (deb.debian.org if none is found)."""
    for sources in [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]:
        text = sources.read_text() if sources.is_file() else ""
        found = re.search(r"^URIs:\s*(\S+/debian)\s*$|^deb\s+(\S+/debian)\s", text, re.M)
        if found:
            return found.group(1) or found.group(2)
    return "http://deb.debian.org/debian"


def make_debian_base(builder: Builder) -> str:
    """A Python 3.11 base image from Debian bookworm's packages, with a venv first on PATH (Debian's
    pip refuses system installs); made once, then reused."""
    if builder.has_image(DEBIAN_BASE):
        return DEBIAN_BASE
    with tempfile.TemporaryDirectory(prefix="rootfs-") as rootfs:
        subprocess.run(
            ["debootstrap", "--variant=minbase", "--include=python3,python3-venv,ca-certificates", "bookworm",
             rootfs, debian_mirror()],
            check=True, capture_output=True, timeout=1200,
        )  # fmt: skip
        subprocess.run(["chroot", rootfs, "python3", "-m", "venv", "/opt/venv"], check=True)
        archive = Path(rootfs).with_suffix(".tar")
        with tarfile.open(archive, "w") as tar:
            tar.add(rootfs, arcname=".")
        path = "/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
        builder.run("import", "--change", f"ENV PATH={path}", "--change", "ENV LANG=C.UTF-8", str(archive), DEBIAN_BASE)
        archive.unlink()
    return DEBIAN_BASE


def pip_mounts() -> list[str]:
    """`-v` options lending this machine's pip configuration, the local folders and the CA bundle it
    names, to the build's RUN steps (buildah only: plain docker takes the PIP_* build arguments)."""
    shown = subprocess.run(["pip", "config", "debug"], capture_output=True, text=True).stdout
    configs = re.findall(r"^\s+(/\S+), exists: True", shown, re.M)
    listed = subprocess.run(["pip", "config", "list"], capture_output=True, text=True).stdout
    values = re.findall(r"'([^']*)'", listed) + [v for k, v in os.environ.items() if k.startswith("PIP_")]
    paths = {
        Path(p.removeprefix("file://")) for value in values for p in value.split() if p.startswith(("/", "file:/"))
    }
    # A file index (…/simple) links to its files beside it: lend the folder that holds both.
    paths = {str(p.parent if p.name == "simple" else p) for p in paths if p.exists()} | set(configs)
    return [f"-v={path}:{path}:ro" for path in sorted(paths)]


def build(builder: Builder) -> float:
    """Build TAG from the Dockerfile; returns the seconds it took."""
    base_args = []
    if not builder.has_image("python:3.11-slim"):
        base_args = ["--build-arg", f"BASE={make_debian_base(builder)}"]
    pip_env = [f"--build-arg={k}={v}" for k, v in os.environ.items() if k in ("PIP_FIND_LINKS", "PIP_INDEX_URL")]
    started = time.monotonic()
    if builder.engine == "docker":
        command = ["docker", "build", *base_args, *pip_env, "--build-arg", "TORCH_INDEX_URL=", "-t", TAG, str(ROOT)]
    else:
        command = ["buildah", "bud", "--isolation", "chroot", "--network", "host", "--layers", "--format",
                   "docker", *pip_mounts(), *base_args, *pip_env, "--build-arg", "TORCH_INDEX_URL=", "-t", TAG,
                   str(ROOT)]  # fmt: skip
    result = subprocess.run(command, env=builder.env, capture_output=True, text=True, timeout=3600)
    if result.returncode != 0:
        raise SystemExit(f"error: the image did not build:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return time.monotonic() - started


def wait_for_answer(builder: Builder, url: str, timeout: float = 600) -> str:
    """Poll the app until /qa answers through gradio_client; returns the answer.

    Raises:
        SystemExit: the container stopped first (with its log's end), or nothing answered in time.
    """
    from gradio_client import Client

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            return Client(url, verbose=False).predict("What is a bond?", 8, 0.0, api_name="/qa")
        except Exception:
            running = builder.run("inspect", "--format", "{{.State.Running}}", NAME, check=False).stdout.strip()
            if running != "true":
                log = builder.run("logs", NAME, check=False)
                raise SystemExit(f"error: the container stopped:\n{(log.stdout + log.stderr)[-3000:]}") from None
            time.sleep(1)
    raise SystemExit(f"error: the container did not answer on {url} within {timeout:.0f} s")


def documents(url: str) -> list[str]:
    from gradio_client import Client

    return [row[0] for row in Client(url, verbose=False).predict(api_name="/documents")["data"]]


def run_and_check(builder: Builder) -> dict[str, object]:
    """Run the image, then restart it; returns the figures of the last line."""
    from gradio_client import Client, handle_file

    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    builder.run("rm", "-f", NAME, check=False)
    builder.run("volume", "rm", "-f", VOLUME, check=False)
    options = ["--network", "host", "-v", f"{VOLUME}:/data", "-e", "GRADIO_SERVER_NAME=127.0.0.1",
               "-e", f"GRADIO_SERVER_PORT={port}", "-e", "QA_BASE_MODEL=demo", "-e", "QA_SHARED_COLLECTION=kept",
               "-e", "HF_HUB_OFFLINE=1"]  # fmt: skip
    started = time.monotonic()
    builder.run("run", "-d", "--name", NAME, *options, TAG)
    try:
        answered = bool(wait_for_answer(builder, url).strip())
        first_answer_s = time.monotonic() - started
        with tempfile.TemporaryDirectory() as folder:
            report = Path(folder) / "annual-report.txt"
            report.write_text(DOCUMENT)
            Client(url, verbose=False).predict([handle_file(str(report))], api_name="/ingest")
        uid = builder.run("exec", NAME, "id", "-u").stdout.strip()
        if builder.engine == "docker":
            time.sleep(35)  # docker runs the HEALTHCHECK on its own interval
            health = builder.run("inspect", "--format", "{{.State.Health.Status}}", NAME).stdout.strip()
            healthy = health == "healthy"
        else:
            healthy = builder.run("healthcheck", "run", NAME, check=False).returncode == 0
        stopping = time.monotonic()
        builder.run("stop", "-t", "30", NAME)
        stop_s = time.monotonic() - stopping
        builder.run("start", NAME)
        wait_for_answer(builder, url)
        kept = "annual-report.txt" in documents(url)
    finally:
        builder.run("rm", "-f", NAME, check=False)
        builder.run("volume", "rm", "-f", VOLUME, check=False)
    return {
        "first_answer_s": round(first_answer_s, 1),
        "stop_s": round(stop_s, 1),
        "user": uid,
        "healthy": int(healthy),
        "kept_documents": int(kept),
        "answered": int(answered),
    }


def main() -> None:
    argparse.ArgumentParser(description=__doc__.split("\n")[0]).parse_args()
    builder = find_builder()
    if builder is None:
        print("skipped=no container builder here (a docker daemon, or podman and buildah)")
        return
    build_s = build(builder)
    size = int(builder.run("image", "inspect", "--format", "{{.Size}}", TAG).stdout.strip())
    figures = run_and_check(builder)
    print(
        " ".join(
            f"{k}={v}" for k, v in {"build_s": round(build_s), "image_gb": round(size / 1e9, 2), **figures}.items()
        )
    )


if __name__ == "__main__":
    main()
