"""Local generation vs an OpenAI-compatible server with continuous batching, N questions at once.

    python -m benchmarks.serving                                   # 16 questions, a 4-layer x 512 Llama
    python -m benchmarks.serving --questions 32 --max-new-tokens 64

Starts `transformers serve FOLDER --continuous-batching --device cpu` on a loopback port (it needs
`pip install "transformers[serving]"`), then answers the same questions greedily three ways:
in this process one at a time, in this process in one batch (`qa_core.qa.generate`, the toolkit's
local way), and through the server as concurrent requests (QA_GENERATION_BACKEND=openai, the
way `qa_core.evaluate` and `qa_core.synth` send batches). The answers must be identical. The last
line is `ratio=<local batched s ÷ server s>`.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from benchmarks.generation import one_at_a_time_and_batched
from qa_core.config import load_settings
from qa_core.data import load_qa_data
from qa_core.demo_model import build_demo_model, sample_data_path
from qa_core.generation import GenerationSettings
from qa_core.models import load_model
from qa_core.ports import free_port
from qa_core.prompts import build_prompt


@contextlib.contextmanager
def transformers_serve(
    folder: Path, port: int, continuous_batching: bool = True, timeout: float = 180
) -> Iterator[str]:
    """Run `transformers serve FOLDER` (pinned to that model, offline, on the CPU) on 127.0.0.1:`port`
    until the block ends; yields its API root, `http://127.0.0.1:PORT/v1`."""
    command = [str(Path(sys.executable).parent / "transformers"), "serve", str(folder), "--port", str(port)]
    command += ["--host", "127.0.0.1", "--device", "cpu"]
    command += ["--continuous-batching"] if continuous_batching else []
    process = subprocess.Popen(
        command, env={**os.environ, "HF_HUB_OFFLINE": "1"}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2):
                    break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"transformers serve did not start (exit status {process.poll()})") from None
                time.sleep(0.5)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        process.terminate()
        process.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--questions", type=int, default=16)
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--hidden-size", type=int, default=512, help="of the local Llama (compute, not overhead)")
    parser.add_argument("--layers", type=int, default=4)
    args = parser.parse_args()

    folder = build_demo_model(
        Path(tempfile.mkdtemp()) / "model", hidden_size=args.hidden_size, num_hidden_layers=args.layers
    )
    local = load_model(str(folder), backend="local")
    questions = (list(load_qa_data(sample_data_path())["question"]) * 4)[: args.questions]
    prompts = [build_prompt("qa", question, None, local.tokenizer) for question in questions]
    settings = GenerationSettings(max_new_tokens=args.max_new_tokens)
    (one_at_a_time, sequential_s), (batched, batched_s) = one_at_a_time_and_batched(
        local, prompts, settings, len(prompts)
    )

    with transformers_serve(folder, free_port()) as url:
        served = load_model(str(folder), settings=load_settings(None, openai_base_url=url), backend="openai")
        served.backend.generate_many(prompts[:2], settings)  # warm-up: the server loads the model on its first request
        start = time.perf_counter()
        remote = served.backend.generate_many(prompts, settings, batch_size=len(prompts))
        server_s = time.perf_counter() - start

    same = sum(a == b == c for a, b, c in zip(one_at_a_time, batched, remote, strict=True))
    print(
        f"{args.layers}-layer x {args.hidden_size} Llama, {len(prompts)} questions, up to {args.max_new_tokens} "
        f"new tokens: local one at a time {sequential_s:.2f}s, local batched {batched_s:.2f}s, "
        f"server (continuous batching, {len(prompts)} concurrent requests) {server_s:.2f}s; "
        f"{same}/{len(prompts)} answers identical"
    )
    print(f"server_vs_one_at_a_time={sequential_s / server_s:.2f}")
    print(f"ratio={batched_s / server_s:.2f}")


if __name__ == "__main__":
    main()
