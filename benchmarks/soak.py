"""Soak test: simulated visitors against a real `python app.py` for minutes while its parts fail.

    python -m benchmarks.soak                            # 10 minutes, 16 visitors at a time
    python -m benchmarks.soak --minutes 3 --clients 8
    python -m benchmarks.soak --minutes 1 --clients 4    # the short run of tests/test_soak.py

Everything runs on 127.0.0.1 in a temporary folder: the app (the offline `demo` model by default,
`--model smollm2` for the real one), a `chroma run` server it stores documents in, and the
project's Hub test server holding an adapter with two checkpoints. Each client thread plays one
visitor after another (seeded): questions (streamed and not), context QA (pasted and uploaded),
uploads then RAG questions (dense and hybrid, generative and extractive), deletes, base vs
adapter, checkpoint listings and bad requests (empty, oversized, wrong types, a path on the server,
a `../` name, a file over the size cap, a PDF that is not one, a broken CSV); a visitor then closes
the page or just goes (left to the idle sweep). On timers, logged with their times:

1. Chroma is killed (SIGKILL) for 20 s and restarted on the same folder;
2. an ingest in a child process hits a file size limit (RLIMIT_FSIZE), as on a full disk;
3. a training run with --push-to-hub meets a Hub that answers 503 for 60 s;
4. at the end, after the idle sweep, the app gets SIGTERM; then it is started again and asked once.

A request is an `error` when it is refused with a clear message (bad input, or a part that is down
saying so), `unexpected` otherwise (the generic message, a timeout, a dropped stream, an HTTP 5xx).
Before leaving, a visitor compares their documents with what the app acknowledged: chunks missing
are `lost_chunks`. Growth is the app's resident memory, open files and threads at the end over
those after the first minute (or quarter of the run). The last line:

    requests=N errors=N unexpected_errors=N lost_chunks=N rss_growth=X fd_growth=N thread_growth=N
    leftover_collections=N p95_ms=N
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import chromadb
import httpx
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError

from app import UNEXPECTED
from benchmarks.faults import run_with_file_size_limit
from hub.local_server import HubServer
from qa_core.config import load_settings
from qa_core.demo_model import ensure_demo_model, random_adapter
from qa_core.hub.checkpoints import write_record
from qa_core.ports import free_port
from qa_core.visitors import SESSION_PREFIX

ROOT = Path(__file__).resolve().parent.parent
REQUEST_TIMEOUT = 180.0  # seconds: a request slower than this counts as unexpected
MAX_QUESTION_CHARS = 2000
ADAPTER_REPO = "tester/soak-adapter"
WORDS = ("capital", "liquidity", "ratio", "bond", "yield", "coupon", "maturity", "equity", "dividend", "margin")
TOKEN = "hf_soak_0123456789abcdef"  # the test Hub accepts any token; the app needs one to list and load


def set_up(argv: list[str], env: dict, what: str) -> None:
    """Run a set-up step; one that fails stops the soak with its own last words, not an exit status."""
    done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"soak set-up failed while {what} (exit {done.returncode}):\n{done.stderr[-2000:]}")


def log(started: float, text: str) -> None:
    print(f"[{time.monotonic() - started:7.1f}s] {text}", flush=True)


@dataclass
class Tally:
    """What the visitors saw, shared by every client thread."""

    requests: int = 0
    errors: int = 0
    unexpected: list[str] = field(default_factory=list)
    lost_chunks: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def ok(self, seconds: float) -> None:
        with self.lock:
            self.requests += 1
            self.latencies_ms.append(seconds * 1000)

    def refused(self) -> None:
        with self.lock:
            self.requests += 1
            self.errors += 1

    def failed(self, what: str) -> None:
        with self.lock:
            self.requests += 1
            self.unexpected.append(what[:300])

    def p95_ms(self) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[int(0.95 * (len(ordered) - 1))] if ordered else 0.0


class Process:
    """A child process whose output goes to a log file; stopped on request or at exit."""

    def __init__(self, argv: list[str], env: dict, log_file: Path, **options: object) -> None:
        self.argv, self.env, self.log_file, self.options = argv, env, log_file, options
        self.popen: subprocess.Popen | None = None

    def start(self) -> Process:
        with self.log_file.open("a") as out:
            self.popen = subprocess.Popen(
                self.argv, cwd=ROOT, env=self.env, stdout=out, stderr=subprocess.STDOUT, **self.options
            )
        return self

    def stop(self, sig: int = signal.SIGKILL, timeout: float = 30) -> int | None:
        if self.popen is None or self.popen.poll() is not None:
            return self.popen.returncode if self.popen else None
        self.popen.send_signal(sig)
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            return None


def wait_until(ready, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if ready():
                return
        except Exception:  # not up yet
            pass
        time.sleep(0.25)
    raise RuntimeError(f"{what} did not come up within {timeout:.0f} s")


def process_stats(pid: int) -> tuple[int, int, int]:
    """(resident memory in kB, open files, threads) of a process, from /proc."""
    status = Path(f"/proc/{pid}/status").read_text()
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    rss = int(fields["VmRSS"].split()[0])
    return rss, len(os.listdir(f"/proc/{pid}/fd")), int(fields["Threads"])


def session_collections(chroma_port: int) -> int:
    client = chromadb.HttpClient(host="127.0.0.1", port=chroma_port)
    return sum(1 for c in client.list_collections() if c.name.startswith(SESSION_PREFIX))


class Visitor:
    """One visitor: a gradio_client session, the documents the app acknowledged, a random walk."""

    def __init__(self, url: str, rng: random.Random, folder: Path, tally: Tally) -> None:
        self.url, self.rng, self.folder, self.tally = url, rng, folder, tally
        self.client = Client(url, verbose=False)
        self.ledger: dict[str, int] = {}  # source -> chunks the app said it stored

    # --- one request, classified ------------------------------------------------------------
    def call(self, api: str, *args: object, expect_error: bool = False):
        started = time.monotonic()
        job = self.client.submit(*args, api_name=api)
        try:
            result = job.result(timeout=REQUEST_TIMEOUT)
        except AppError as exc:
            if str(exc) == UNEXPECTED:
                self.tally.failed(f"{api}: the generic error")
            else:
                self.tally.refused()
            return None
        except TimeoutError:
            self.tally.failed(f"{api}: no answer within {REQUEST_TIMEOUT:.0f} s")
            return None
        except Exception as exc:  # a dropped connection, an HTTP error of the upload ...
            if expect_error and re.search(r"413|too large|exceeds the maximum file size", str(exc), re.IGNORECASE):
                self.tally.refused()
            else:
                self.tally.failed(f"{api}: {type(exc).__name__}: {exc}")
            return None
        if expect_error:
            self.tally.failed(f"{api}: a bad request was answered as a good one")
            return None
        self.tally.ok(time.monotonic() - started)
        if time.monotonic() - started > 30:
            print(f"slow: {api} took {time.monotonic() - started:.0f} s", flush=True)
        return result

    def raw_call(self, api: str, data: list) -> None:
        """A request as a script would send it, without gradio_client's checks."""
        try:
            with httpx.Client(timeout=REQUEST_TIMEOUT) as http:
                posted = http.post(f"{self.url}/gradio_api/call/{api}", json={"data": data})
                if posted.status_code >= 500:
                    return self.tally.failed(f"raw {api}: HTTP {posted.status_code}")
                if posted.status_code >= 400:
                    return self.tally.refused()
                event = posted.json()["event_id"]
                stream = http.get(f"{self.url}/gradio_api/call/{api}/{event}").text
        except httpx.HTTPError as exc:
            return self.tally.failed(f"raw {api}: {type(exc).__name__}")
        if "event: error" in stream:
            generic = UNEXPECTED in stream
            return self.tally.failed(f"raw {api}: the generic error") if generic else self.tally.refused()
        if "event: complete" not in stream:
            return self.tally.failed(f"raw {api}: the stream ended without a result")
        self.tally.failed(f"raw {api}: a bad request was answered as a good one {stream[-200:]!r}")

    # --- behaviours -------------------------------------------------------------------------
    def question(self) -> str:
        return f"What is the {self.rng.choice(WORDS)} {self.rng.choice(WORDS)}?"

    def qa(self) -> None:
        self.call("/qa", self.question(), 24, self.rng.choice([0.0, 0.7]))

    def context_qa(self) -> None:
        context = f"The {self.rng.choice(WORDS)} ratio was {self.rng.randint(1, 99)}.{self.rng.randint(0, 9)} percent."
        mode = self.rng.choice(["generate", "extractive"])
        if self.rng.random() < 0.5:
            self.call("/context_qa", self.question(), context, None, 24, mode)
        else:
            path = self.folder / f"context-{self.rng.randint(0, 10**9)}.txt"
            path.write_text(context)
            self.call("/context_qa", self.question(), "", handle_file(str(path)), 24, mode)

    def upload(self) -> None:
        paths = []
        for _ in range(self.rng.randint(1, 3)):
            n = self.rng.randint(0, 10**9)
            path = self.folder / f"report-{n}.md"
            paragraphs = [
                " ".join(self.rng.choice(WORDS) for _ in range(60)) + "." for _ in range(self.rng.randint(2, 6))
            ]
            path.write_text(f"# Report {n}\n\n" + "\n\n".join(paragraphs) + "\n")
            paths.append(path)
        result = self.call("/ingest", [handle_file(str(p)) for p in paths])
        if result is not None:
            self.ledger = {row[0]: int(row[2]) for row in result[1]["data"]}

    def rag(self) -> None:
        mode = self.rng.choice(["retrieve-then-answer", "extractive"])
        self.call("/rag", self.question(), mode, 3, self.rng.random() < 0.5, 24)

    def delete(self) -> None:
        if self.ledger:
            source = self.rng.choice(sorted(self.ledger))
            if self.call("/delete_document", source) is not None:
                self.ledger.pop(source)

    def compare(self) -> None:
        self.call("/compare", self.question(), 16)

    def checkpoints(self) -> None:
        self.call("/checkpoints", ADAPTER_REPO)

    def bad_request(self) -> None:
        kind = self.rng.randrange(9)
        if kind == 0:
            self.call("/qa", "   ", 8, 0.0, expect_error=True)
        elif kind == 1:
            self.call("/qa", "x" * (MAX_QUESTION_CHARS + 1), 8, 0.0, expect_error=True)
        elif kind == 2:
            self.raw_call("qa", [{"not": "a question"}, "many", None])
        elif kind == 3:
            self.raw_call("ingest", [[{"path": "/etc/passwd", "meta": {"_type": "gradio.FileData"}}]])
        elif kind == 4:
            self.raw_call("delete_document", ["../../etc/passwd"])
        elif kind == 5:
            big = self.folder / "big.txt"
            big.write_text("word " * 300_000)  # 1.5 MB, over the 1 MB cap
            self.call("/ingest", [handle_file(str(big))], expect_error=True)
        elif kind in (6, 7):
            bad = self.folder / ("fake.pdf" if kind == 6 else "broken.csv")
            bad.write_bytes(b"this is not a pdf" if kind == 6 else b'question,answer\n"unterminated,row\n')
            result = self.call("/ingest", [handle_file(str(bad))], expect_error=False)
            if result is not None and "skipped" not in result[0]:
                self.tally.failed(f"ingest of {bad.name}: accepted without a word: {result[0]!r}")
        else:
            self.raw_call("rag", ["What?", "no-such-mode", "three", True, 8])

    def check_ledger(self) -> None:
        """Chunks the app acknowledged that are not there any more are lost."""
        if not self.ledger:
            return
        result = self.call("/documents")
        if result is None:
            return  # the store is down right now: nothing to compare with
        stored = {row[0]: int(row[2]) for row in result["data"]}
        lost = sum(max(0, chunks - stored.get(source, 0)) for source, chunks in self.ledger.items())
        if lost:
            with self.tally.lock:
                self.tally.lost_chunks += lost

    def close_page(self) -> None:
        """What a browser does when its tab closes: its heartbeat connection drops."""
        try:
            with (
                httpx.Client(timeout=10) as http,
                http.stream("GET", f"{self.url}/gradio_api/heartbeat/{self.client.session_hash}") as stream,
            ):
                next(stream.iter_lines())
        except httpx.HTTPError as exc:
            self.tally.failed(f"heartbeat: {type(exc).__name__}")

    def walk(self, deadline: float) -> None:
        behaviours = [
            (self.qa, 4),
            (self.context_qa, 3),
            (self.upload, 3),
            (self.rag, 4),
            (self.delete, 1),
            (self.compare, 1),
            (self.checkpoints, 1),
            (self.bad_request, 3),
        ]
        actions, weights = zip(*behaviours, strict=True)
        for _ in range(self.rng.randint(3, 10)):
            if time.monotonic() > deadline:
                break
            self.rng.choices(actions, weights)[0]()
        self.check_ledger()
        if self.rng.random() < 0.5:
            self.close_page()
        self.client.close()


def client_loop(url: str, seed: int, folder: Path, tally: Tally, deadline: float) -> None:
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    visitors = 0
    while time.monotonic() < deadline and visitors < 10_000:
        visitors += 1
        try:
            Visitor(url, rng, folder, tally).walk(deadline)
        except Exception as exc:  # a visitor whose page would not even load
            tally.failed(f"visitor: {type(exc).__name__}: {exc}")
            time.sleep(1)


# --- faults --------------------------------------------------------------------------------
def fault_thread(tally: Tally, started: float, fault: Callable, *args) -> threading.Thread:
    """A thread that runs `fault`; should the fault itself fail, that is counted and logged rather
    than lost on stderr (a fault that never reports would read as one that did not happen)."""

    def run() -> None:
        try:
            fault(*args)
        except Exception as exc:
            tally.failed(f"{fault.__name__}: {type(exc).__name__}: {exc}")
            log(started, f"{fault.__name__} failed: {type(exc).__name__}: {exc}")

    return threading.Thread(target=run, name=fault.__name__)


def chroma_outage(chroma: Process, port: int, seconds: float, started: float) -> None:
    log(started, f"fault 1: Chroma killed (SIGKILL) for {seconds:.0f} s")
    chroma.stop(signal.SIGKILL)
    time.sleep(seconds)
    chroma.start()
    wait_until(lambda: chromadb.HttpClient(host="127.0.0.1", port=port).heartbeat(), 60, "Chroma")
    log(started, "fault 1: Chroma is back")


def disk_full(folder: Path, env: dict, tally: Tally, started: float) -> None:
    """An ingest that meets a file size limit stops with one clear line and keeps the collection as it was."""
    log(started, "fault 2: an ingest under a file size limit (RLIMIT_FSIZE)")
    folder.mkdir(parents=True, exist_ok=True)
    first, second = folder / "first", folder / "second"
    first.mkdir(exist_ok=True)
    second.mkdir(exist_ok=True)
    rng = random.Random(1)
    (first / "a.md").write_text(" ".join(rng.choice(WORDS) for _ in range(300)) + ".\n")
    for n in range(4):  # over a thousand small chunks: the database grows past the limit below
        paragraphs = [" ".join(rng.choice(WORDS) for _ in range(50)) + "." for _ in range(24)]
        (second / f"b{n}.md").write_text(f"# Report {n}\n\n" + "\n\n".join(paragraphs) + "\n")
    db = folder / "db"
    child_env = {**env, "QA_CHROMA_PATH": str(db)}
    child_env.pop("QA_CHROMA_URL", None)
    command = [sys.executable, "-m", "qa_core.rag", "ingest", "--chunk-tokens", "32", "--overlap-tokens", "8"]
    first_ingest = subprocess.run(
        [*command, str(first), "--collection", "disk"], cwd=ROOT, env=child_env, capture_output=True, text=True
    )
    if first_ingest.returncode != 0:
        raise RuntimeError(f"the ingest before the limit failed: {first_ingest.stderr[-300:]}")
    before = set(chromadb.PersistentClient(path=str(db)).get_collection("disk").get(include=[])["ids"])
    limit = max(p.stat().st_size for p in db.rglob("*") if p.is_file()) + 100_000
    result = run_with_file_size_limit([*command, str(second), "--collection", "disk"], child_env, limit)
    after = set(chromadb.PersistentClient(path=str(db)).get_collection("disk").get(include=[])["ids"])
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    clear = result.returncode == 2 and len(errors) == 1 and "disk" in errors[0]
    if clear:
        tally.refused()
    else:
        tally.failed(f"disk full: exit {result.returncode}, {result.stderr[-300:]!r}")
    with tally.lock:
        tally.lost_chunks += len(before - after)
    if after - before:
        tally.failed(f"disk full: {len(after - before)} chunks of the failed upload were left behind")
    log(started, f"fault 2: exit {result.returncode}, {errors[-1] if errors else 'no error line'}")


def hub_outage_during_training(hub: HubServer, env: dict, folder: Path, seconds: float, tally: Tally, started: float):
    log(started, "fault 3: training with --push-to-hub; the Hub will answer 503 for a while")
    command = [sys.executable, "train_job/run.py", "--config", "configs/tiny-cpu.yaml", "--output_dir", str(folder)]
    command += ["--max_steps", "20", "--eval_strategy", "no", "--push-to-hub", "--hub-repo", "tester/soak-run"]
    command += ["--push-every", "10", "--push_patience", str(seconds * 20)]
    run = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output, down_since = [], None
    for line in run.stdout:
        output.append(line)
        if "pushed step 10 " in line:  # `in`: tqdm's carriage returns share the merged lines
            # Down until a push has met the outage (however slowly this machine trains), and for
            # at least `seconds`.
            down_since = time.monotonic()
            hub.fail_for(seconds * 10)
            log(started, f"fault 3: the Hub answers 503 (at least {seconds:.0f} s, until a push has met it)")
        if down_since is not None and "trying again" in line:
            hub.down_until = max(down_since + seconds, time.monotonic())
            down_since = None
    hub.down_until = 0.0
    code = run.wait()
    listed = subprocess.run(
        [sys.executable, "-m", "hub", "list", "tester/soak-run", "--json"], cwd=ROOT, env=env, capture_output=True
    )  # as a user lists them, in the environment that reaches this Hub
    steps = [c["step"] for c in json.loads(listed.stdout or "[]")]
    if code == 0 and steps == [20, 10]:
        tally.ok(0)
    else:
        tally.failed(f"training through a Hub outage: exit {code}, steps {steps}, {''.join(output)[-300:]!r}")
    retries = sum("trying again" in line for line in output)
    log(started, f"fault 3: training exited {code} ({retries} pushes tried again); checkpoints, newest first: {steps}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--model", default="demo", help="the app's model (default: demo; smollm2 for real answers)")
    parser.add_argument("--ttl", type=float, default=60.0, help="QA_SESSION_TTL_S: idle visitors are swept after it")
    args = parser.parse_args(argv)
    started = time.monotonic()
    run_seconds = args.minutes * 60
    # The faults' lengths scale down for short runs (the full run: 20 s of Chroma, 60 s of Hub).
    chroma_down, hub_down = min(20.0, run_seconds / 6), min(60.0, run_seconds / 4)
    tally = Tally()
    with tempfile.TemporaryDirectory(prefix="qa-soak-") as tmp:
        work = Path(tmp)
        hub = HubServer(0, work / "hub").start()
        adapter = random_adapter(ensure_demo_model(load_settings(None).cache_dir), work / "adapter", seed=1)
        # Its own Hub on loopback, reachable even where the environment says HF_HUB_OFFLINE=1.
        hub_env = {**os.environ, "HF_ENDPOINT": hub.url, "HF_TOKEN": TOKEN, "HF_HUB_DISABLE_XET": "1"}
        hub_env["HF_HUB_OFFLINE"] = "0"
        for step in (10, 20):  # pushed as users push (the test Hub speaks no Xet: the client must know first)
            write_record(adapter, {"step": step, "loss": 3.0 - step / 10})
            set_up([sys.executable, "-m", "hub", "push", str(adapter), ADAPTER_REPO], hub_env, f"pushing step {step}")
        chroma_port, app_port = free_port(), free_port()
        chroma_cli = str(Path(sys.executable).parent / "chroma")  # beside this interpreter: no activated venv needed
        chroma = Process(
            [chroma_cli, "run", "--path", str(work / "chroma"), "--host", "127.0.0.1", "--port", str(chroma_port)],
            dict(os.environ),
            work / "chroma.log",
        ).start()
        wait_until(lambda: chromadb.HttpClient(host="127.0.0.1", port=chroma_port).heartbeat(), 60, "Chroma")
        env = {
            **os.environ,
            "QA_BASE_MODEL": args.model,
            "QA_CHROMA_URL": f"http://127.0.0.1:{chroma_port}",
            "QA_SESSION_TTL_S": str(args.ttl),
            "QA_MAX_FILE_MB": "1",
            "QA_MAX_QUESTION_CHARS": str(MAX_QUESTION_CHARS),
            "QA_ALLOW_ADAPTER_LOAD": "1",
            "QA_ADAPTER": f"{ADAPTER_REPO}@20",
            **hub_env,
            "GRADIO_SERVER_PORT": str(app_port),
            "GRADIO_ANALYTICS_ENABLED": "False",
        }
        url = f"http://127.0.0.1:{app_port}"

        def start_app() -> Process:
            app = Process([sys.executable, "app.py"], env, work / "app.log").start()
            wait_until(lambda: httpx.get(f"{url}/gradio_api/info", timeout=2).status_code == 200, 300, "the app")
            return app

        app = start_app()
        log(started, f"app on {url} (pid {app.popen.pid}), Chroma on {chroma_port}, Hub on {hub.url}")

        deadline = time.monotonic() + run_seconds
        clients = [
            threading.Thread(
                target=client_loop,
                args=(url, args.seed * 1000 + n, work / f"client-{n}", tally, deadline),
                daemon=True,
            )
            for n in range(args.clients)
        ]
        for thread in clients:
            thread.start()
        time.sleep(min(60.0, run_seconds / 4))
        baseline = process_stats(app.popen.pid)
        log(started, f"baseline: rss {baseline[0] / 1024:.0f} MB, {baseline[1]} open files, {baseline[2]} threads")
        faults = [
            fault_thread(tally, started, chroma_outage, chroma, chroma_port, chroma_down, started),
            fault_thread(tally, started, disk_full, work / "disk", env, tally, started),
            fault_thread(
                tally, started, hub_outage_during_training, hub, env, work / "train", hub_down, tally, started
            ),
        ]
        for fault in faults:
            fault.start()
            time.sleep(max(1.0, (deadline - time.monotonic()) / 4))
        for thread in [*clients, *faults]:
            thread.join(max(1.0, deadline - time.monotonic() + REQUEST_TIMEOUT * 2))
        for fault in faults:
            if fault.is_alive():
                tally.failed(f"{fault.name} did not finish in time")
        log(started, f"visitors done; waiting {args.ttl * 1.5:.0f} s for the idle sweep")
        time.sleep(args.ttl * 1.5)
        end = process_stats(app.popen.pid)
        leftover = session_collections(chroma_port)
        log(started, f"end: rss {end[0] / 1024:.0f} MB, {end[1]} open files, {end[2]} threads; {leftover} left")

        stopping = time.monotonic()
        code = app.stop(signal.SIGTERM, timeout=30)
        stop_seconds = time.monotonic() - stopping
        after_stop = session_collections(chroma_port)
        log(started, f"fault 4: SIGTERM: exit {code} in {stop_seconds:.1f} s, {after_stop} session collections left")
        if code != 0 or after_stop:
            tally.failed(f"SIGTERM: exit {code}, {after_stop} session collections left")
        app = start_app()
        answer = Client(url, verbose=False).predict("What is a bond?", 8, 0.0, api_name="/qa")
        log(started, f"restarted: answers again ({len(answer)} characters)")
        app.stop(signal.SIGTERM)
        chroma.stop(signal.SIGTERM)
        hub.shutdown()
        logged = (work / "app.log").read_text(errors="replace").splitlines()
        for number, line in enumerate(logged):  # what the app logged of the errors it did not expect
            if "unexpected error" in line:
                print("app log: " + " | ".join(logged[number : number + 12]))

    for problem in tally.unexpected[:20]:
        print(f"unexpected: {problem}")
    print(
        json.dumps({"minutes": args.minutes, "clients": args.clients, "seed": args.seed, "model": args.model}),
        flush=True,
    )
    print(
        f"requests={tally.requests} errors={tally.errors} unexpected_errors={len(tally.unexpected)} "
        f"lost_chunks={tally.lost_chunks} rss_growth={end[0] / baseline[0]:.3f} fd_growth={end[1] - baseline[1]} "
        f"thread_growth={end[2] - baseline[2]} leftover_collections={leftover} p95_ms={tally.p95_ms():.0f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
