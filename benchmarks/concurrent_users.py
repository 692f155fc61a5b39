"""Many visitors at once: N simultaneous gradio_client clients on /qa, batched serving vs one at a time.

    python -m benchmarks.concurrent_users                       # 32 clients, 256-token answers, demo model
    python -m benchmarks.concurrent_users --clients 64 --max-new-tokens 128 --model Qwen/Qwen2.5-0.5B-Instruct

Starts `python app.py` twice on loopback, once with QA_MAX_BATCH_SIZE=1 (every request alone, one
after another) and once with QA_MAX_BATCH_SIZE=N (requests that arrive together answered in one
batch), sends the same N questions from N clients at the same moment to each, and checks that
every request was answered with the same greedy answer both ways. The last line is
`ratio=<one-at-a-time seconds ÷ batched seconds>`.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from gradio_client import Client

from qa_core.ports import free_port

ROOT = Path(__file__).resolve().parent.parent


def start_app(model: str, max_batch_size: int, data: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {
        **os.environ,
        "QA_BASE_MODEL": model,
        "QA_MAX_BATCH_SIZE": str(max_batch_size),
        "QA_CHROMA_PATH": str(data / f"chroma-{max_batch_size}"),
        "GRADIO_SERVER_NAME": "127.0.0.1",
        "GRADIO_SERVER_PORT": str(port),
        "GRADIO_ANALYTICS_ENABLED": "False",
    }
    process = subprocess.Popen(
        [sys.executable, "app.py"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"app.py exited: {process.stderr.read()[-2000:]}")
        try:
            Client(url, verbose=False)
            return process, url
        except Exception:
            time.sleep(0.5)
    process.kill()
    raise SystemExit("app.py did not start in 180 s")


def visit(url: str, questions: list[str], max_new_tokens: int) -> tuple[float, list[str]]:
    """Every question from its own client, all sent at once; (seconds until the last answer, answers)."""
    clients = [Client(url, verbose=False) for _ in questions]
    with ThreadPoolExecutor(len(questions)) as pool:
        started = time.perf_counter()
        jobs = [
            client.submit(q, max_new_tokens, 0.0, api_name="/qa") for client, q in zip(clients, questions, strict=True)
        ]
        answers = list(pool.map(lambda job: job.result(timeout=600), jobs))
        return time.perf_counter() - started, answers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--max-new-tokens", type=int, default=256, help="the app's default answer length")
    parser.add_argument("--model", default="demo")
    args = parser.parse_args()
    questions = [f"What does clause {n} of the credit agreement say about leverage?" for n in range(args.clients)]

    seconds, answers = {}, {}
    with tempfile.TemporaryDirectory() as data:
        for label, size in (("one at a time", 1), ("batched", args.clients)):
            process, url = start_app(args.model, size, Path(data))
            try:
                visit(url, questions[:2], args.max_new_tokens)  # warm-up
                seconds[label], answers[label] = visit(url, questions, args.max_new_tokens)
            finally:
                process.terminate()
                process.wait(timeout=30)

    answered = sum(bool(a) for a in answers["batched"])
    same = sum(a == b for a, b in zip(answers["one at a time"], answers["batched"], strict=True))
    print(
        f"{args.clients} simultaneous clients on /qa ({args.model}, {args.max_new_tokens} new tokens): "
        f"one at a time {seconds['one at a time']:.1f}s, batched {seconds['batched']:.1f}s; "
        f"{answered}/{args.clients} answered, {same}/{args.clients} answers identical both ways"
    )
    print(f"ratio={seconds['one at a time'] / seconds['batched']:.2f}")


if __name__ == "__main__":
    main()
