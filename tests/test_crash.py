"""Nothing is lost when a process dies: ingest and training are killed with SIGKILL part-way
(real subprocesses), run again, and end exactly as an uninterrupted run would."""

import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import chromadb
import pytest

from benchmarks.faults import run_with_file_size_limit
from qa_core.hub.checkpoints import list_checkpoints
from qa_core.rag.store import EMBED_BLOCK
from tests.conftest import HUB_TOKEN
from tests.helpers import ROOT

pytestmark = pytest.mark.slow  # see pyproject.toml: the fast tier is pytest -m "not slow"

WORDS = [
    "capital",
    "liquidity",
    "ratio",
    "bond",
    "yield",
    "coupon",
    "maturity",
    "issuer",
    "covenant",
    "equity",
    "dividend",
    "revenue",
    "margin",
    "regulator",
    "breach",
    "notice",
    "policy",
    "consent",
    "processor",
    "controller",
    "audit",
    "reserve",
    "provision",
    "impairment",
    "exposure",
    "leverage",
    "tier",
    "buffer",
    "stress",
    "scenario",
    "hedge",
    "swap",
    "rate",
    "spread",
    "default",
    "recovery",
    "collateral",
]
PROGRESS = re.compile(r"embedding:.*?\|\s*(\d+)/(\d+)")


def write_corpus(folder: Path, files: int = 12, paragraphs: int = 48) -> Path:
    """Files of distinct paragraphs, several chunks each, so a kill lands inside a file."""
    rng = random.Random(7)
    folder.mkdir()
    for n in range(files):
        text = "\n\n".join(
            f"Section {n}.{p}. " + " ".join(rng.choice(WORDS) for _ in range(50)) + "." for p in range(paragraphs)
        )
        (folder / f"report-{n}.md").write_text(f"# Report {n}\n\n{text}\n")
    return folder


class Run:
    """A command in a subprocess whose output (stdout and stderr together) is collected as it comes."""

    def __init__(self, argv: list[str], env: dict, cwd: Path = ROOT) -> None:
        self.output = ""
        self.process = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while chunk := self.process.stdout.read1(4096):
            self.output += chunk.decode(errors="replace")

    def kill_when(self, ready, timeout: float = 240) -> None:
        """SIGKILL the process as soon as `ready(output)` holds (fails if it ends first)."""
        deadline = time.monotonic() + timeout
        while not ready(self.output):
            assert self.process.poll() is None, f"it ended before the kill point:\n{self.output[-2000:]}"
            assert time.monotonic() < deadline, "the kill point never came"
            time.sleep(0.02)
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def finish(self, timeout: float = 300) -> str:
        assert self.process.wait(timeout) == 0, self.output[-3000:]
        self._reader.join()
        return self.output


def stored_at_least(blocks: int):
    def ready(output: str) -> bool:
        counts = PROGRESS.findall(output)
        return bool(counts) and blocks * EMBED_BLOCK <= int(counts[-1][0]) < int(counts[-1][1])

    return ready


def ingest(corpus: Path, collection: str, env: dict) -> Run:
    # The smallest chunks: over a thousand of them, several embedding blocks, in seconds.
    argv = [sys.executable, "-m", "qa_core.rag", "ingest", str(corpus), "--collection", collection]
    return Run([*argv, "--chunk-tokens", "32", "--overlap-tokens", "8"], env)


def test_ingest_killed_part_way_ends_like_a_clean_ingest(tmp_path):
    corpus = write_corpus(tmp_path / "docs")
    env = {**os.environ, "QA_CHROMA_PATH": str(tmp_path / "db"), "PYTHONPATH": str(ROOT)}
    ingest(corpus, "killed", env).kill_when(stored_at_least(1))  # killed after the first block
    database = chromadb.PersistentClient(path=str(tmp_path / "db"))
    after_first_kill = database.get_collection("killed").count()
    ingest(corpus, "killed", env).kill_when(stored_at_least(1))  # and again, part-way through the rest
    completed = ingest(corpus, "killed", env).finish()
    ingest(corpus, "clean", env).finish()

    database = chromadb.PersistentClient(path=str(tmp_path / "db"))
    killed, clean = (set(database.get_collection(name).get(include=[])["ids"]) for name in ("killed", "clean"))
    assert 0 < after_first_kill < len(clean)  # the kill left files half-stored
    assert killed == clean
    assert "partly stored file(s) completed" in completed


def test_an_ingest_that_hits_a_full_disk_leaves_the_collection_as_it_was(tmp_path):
    """The disk fills part-way through an upload (a file size limit, RLIMIT_FSIZE, in the ingesting
    process): one clear error line, exit 2, and none of the upload's chunks stay behind."""
    env = {**os.environ, "QA_CHROMA_PATH": str(tmp_path / "db"), "PYTHONPATH": str(ROOT)}
    first = tmp_path / "first"
    first.mkdir()
    (first / "a.md").write_text("# A\n\n" + " ".join(WORDS) + ".\n")
    ingest(first, "full", env).finish()
    database = chromadb.PersistentClient(path=str(tmp_path / "db"))
    before = set(database.get_collection("full").get(include=[])["ids"])
    limit = max(path.stat().st_size for path in (tmp_path / "db").rglob("*") if path.is_file()) + 100_000

    corpus = write_corpus(tmp_path / "docs", files=4, paragraphs=24)
    argv = [sys.executable, "-m", "qa_core.rag", "ingest", str(corpus), "--collection", "full"]
    result = run_with_file_size_limit([*argv, "--chunk-tokens", "32", "--overlap-tokens", "8"], env, limit)
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.returncode == 2 and len(errors) == 1, result.stderr[-2000:]
    assert "disk is full or over a file size limit" in errors[0] and "nothing of this upload was kept" in errors[0]
    after = set(chromadb.PersistentClient(path=str(tmp_path / "db")).get_collection("full").get(include=[])["ids"])
    assert after == before


def test_training_killed_between_checkpoints_resumes_without_duplicate_pushes(hub_server, hub_settings, tmp_path):
    env = {**os.environ, "HF_TOKEN": HUB_TOKEN, "HF_HUB_DISABLE_XET": "1"}
    command = [sys.executable, "train_job/run.py", "--config", str(ROOT / "configs" / "tiny-cpu.yaml")]
    command += ["--output_dir", str(tmp_path), "--max_steps", "60", "--eval_strategy", "no", "--logging_steps", "5"]
    command += ["--push-to-hub", "--hub-repo", "tester/killed", "--push-every", "5", "--hub-endpoint", hub_server.url]
    Run(command, env).kill_when(lambda output: "pushed step 10 " in output)
    saved = max(int(p.name.split("-")[1]) for p in tmp_path.glob("checkpoint-*"))

    resumed = Run([*command, "--resume"], env).finish()
    first_push = int(re.search(r"pushed step (\d+) ", resumed).group(1))
    assert first_push == saved + 5  # continued from the last saved step, not from the start
    steps = [c.step for c in list_checkpoints("tester/killed", hub_settings)]
    assert steps[0] == 60 and len(steps) == len(set(steps))  # no checkpoint pushed twice
    assert steps == sorted(steps, reverse=True)
