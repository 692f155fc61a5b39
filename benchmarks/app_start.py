"""App start-up: seconds from `python app.py` to the first answer, with an empty vs a filled model cache.

    python -m benchmarks.app_start

Each run starts the app in a fresh process on a free port and asks `/qa` through gradio_client as
soon as the server answers. The cold run starts with an empty QA_CACHE_DIR (the offline demo model
is built); the warm run reuses it. The last line is `ratio=<cold s ÷ warm s>`.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from gradio_client import Client

from qa_core.ports import free_port

ROOT = Path(__file__).resolve().parent.parent


def seconds_to_first_answer(cache_dir: str, chroma_dir: str) -> float:
    port = free_port()
    env = {
        **os.environ,
        "QA_CACHE_DIR": cache_dir,
        "QA_CHROMA_PATH": chroma_dir,
        "GRADIO_SERVER_PORT": str(port),
        "GRADIO_ANALYTICS_ENABLED": "False",
        "QA_BASE_MODEL": "demo",
        "HF_HUB_DISABLE_TELEMETRY": "1",
    }
    start = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "app.py"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        while True:
            try:
                client = Client(f"http://127.0.0.1:{port}", verbose=False)
                break
            except Exception:
                if process.poll() is not None:
                    raise RuntimeError("the app exited before answering") from None
                time.sleep(0.1)
        client.predict("What is a bond?", 8, 0.0, api_name="/qa")
        return time.perf_counter() - start
    finally:
        process.terminate()
        process.wait(timeout=30)


def main() -> None:
    with tempfile.TemporaryDirectory() as cache, tempfile.TemporaryDirectory() as chroma:
        cold = seconds_to_first_answer(cache, chroma)
        warm = seconds_to_first_answer(cache, chroma)
    print(f"first answer after start: cold (demo model built) {cold:.2f}s, warm (cached) {warm:.2f}s")
    print(f"ratio={cold / warm:.2f}")


if __name__ == "__main__":
    main()
