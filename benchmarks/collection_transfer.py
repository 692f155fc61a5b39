"""A published collection: pulling it vs ingesting the same documents, and the memory a push and a
pull hold as the collection grows.

    python -m benchmarks.collection_transfer                      # Debian's licence texts, 5,000 vs 20,000 chunks
    python -m benchmarks.collection_transfer --docs reports/ --sizes 5000 40000

1. The documents (`--docs`, default /usr/share/common-licenses: real texts no one here wrote) are
   ingested into a fresh collection, pushed to a local Hub server, and pulled into a fresh Chroma
   folder, each timed; the pull must call the embedding model not once (it is counted). The same
   questions are then asked of both sides: top-5 ids equal, scores within 1e-4.
2. Collections of each `--sizes` chunks (random unit vectors: the transfer, not the embedding, is
   measured) are pushed and pulled in a subprocess each, which reports the peak of what Python and
   Arrow allocate (tracemalloc + Arrow's pool) and the growth of its resident set. Chroma's own index
   lives outside both and grows with the collection whatever the transfer does; the resident set
   shows it.

The last line: `ratio=<ingest s / pull s> push_mem=<MB at the largest / smallest size> pull_mem=<same>`.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
from pathlib import Path

# Downloads land in the run's own folder, not the user's Hub cache (read by the client at import);
# the measuring child processes inherit it.
WORK = Path(os.environ.setdefault("COLLECTION_TRANSFER_WORK", tempfile.mkdtemp(prefix="collection-transfer-")))
os.environ.update({"HF_HOME": str(WORK / "hf-home"), "HF_HUB_DISABLE_XET": "1", "HF_HUB_DISABLE_TELEMETRY": "1"})

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402

from hub.local_server import HubServer  # noqa: E402
from qa_core.config import Settings, load_settings  # noqa: E402
from qa_core.embeddings import SentenceEmbedding  # noqa: E402
from qa_core.rag.ingest import ingest  # noqa: E402
from qa_core.rag.published import pull_collection, push_collection  # noqa: E402
from qa_core.rag.retrieval import Retriever  # noqa: E402
from qa_core.rag.store import RagStore  # noqa: E402

QUESTIONS = [
    "What happens to the patent licence if you sue someone over a patent?",
    "Can I use the names of the contributors to endorse my product?",
    "Is the software provided with a warranty?",
    "Must modified files carry a notice that they were changed?",
    "Can the licence be upgraded to a later version?",
    "What must accompany a distribution in object code form?",
    "Who may be held liable for damages?",
    "Does the licence apply to fonts embedded in documents?",
    "What is a derivative work?",
    "May I charge a fee for a copy?",
    "What counts as source code?",
    "Can I combine the work with a library under another licence?",
    "What happens if I violate the terms?",
    "Are trademarks granted?",
    "Which law governs the licence?",
    "Is the work dedicated to the public domain?",
    "What must the notice file contain?",
    "Can I sublicense the work?",
    "How do I apply the licence to my program?",
    "What are the obligations when conveying modified versions?",
]


def hub_settings(url: str, token: str, chroma: Path) -> Settings:
    return load_settings(None, hf_endpoint=url, hf_token=token, chroma_path=chroma)


def pull_vs_ingest(docs: Path, url: str, token: str, work: Path) -> float:
    """Ingest, push, pull; returns ingest seconds / pull seconds."""
    corpus = work / "corpus"
    corpus.mkdir()
    for path in sorted(p for p in docs.iterdir() if p.is_file()):
        readable = path.suffix.lower() in (".txt", ".md", ".pdf", ".csv")  # Debian's licences have none
        (corpus / (path.name if readable else path.name + ".txt")).write_bytes(path.read_bytes())
    built = hub_settings(url, token, work / "built")
    started = time.perf_counter()
    store = RagStore(built, "corpus")
    ingest(store, [str(corpus)], progress=True)
    ingest_s = time.perf_counter() - started
    push_collection(store, "bench/corpus", built)

    calls = 0
    embed = SentenceEmbedding.__call__

    def counted(self, texts):
        nonlocal calls
        calls += 1
        return embed(self, texts)

    SentenceEmbedding.__call__ = counted
    try:
        started = time.perf_counter()
        pulled = pull_collection("bench/corpus", hub_settings(url, token, work / "pulled"), "corpus", progress=True)
        pull_s = time.perf_counter() - started
    finally:
        SentenceEmbedding.__call__ = embed
    assert calls == 0, f"the pull embedded {calls} times"
    copy = RagStore(hub_settings(url, token, work / "pulled"), "corpus")
    same = 0
    for question in QUESTIONS:
        a, b = Retriever(store).search(question, 5), Retriever(copy).search(question, 5)
        if [h.id for h in a] == [h.id for h in b] and all(
            abs(x.score - y.score) < 1e-4 for x, y in zip(a, b, strict=True)
        ):
            same += 1
        else:
            print(
                f"differs: {question!r}\n  built:  {[(h.label, round(h.score, 5)) for h in a]}\n"
                f"  pulled: {[(h.label, round(h.score, 5)) for h in b]}"
            )
    print(
        f"{pulled.chunks} chunks of {len(list(corpus.iterdir()))} documents: ingest {ingest_s:.1f} s, "
        f"pull {pull_s:.1f} s (embedding calls: {calls}); same top-5 and scores for {same}/{len(QUESTIONS)} questions"
    )
    return ingest_s / pull_s


def fill(size: int, settings: Settings) -> None:
    """A collection `synthetic-SIZE` of `size` chunks with random unit vectors (nothing embedded)."""
    store = RagStore(settings, f"synthetic-{size}")
    rng = np.random.default_rng(size)
    for start in range(0, size, 5000):
        numbers = range(start, min(start + 5000, size))
        vectors = rng.standard_normal((len(numbers), 384), dtype=np.float32)
        store.collection.upsert(
            ids=[f"chunk-{i}" for i in numbers],
            embeddings=vectors / np.linalg.norm(vectors, axis=1, keepdims=True),
            documents=[f"Paragraph {i} of a synthetic filing, about eighty words long. " * 8 for i in numbers],
            metadatas=[
                {"source": f"filing-{i // 200}.txt", "title": f"Filing {i // 200}", "chunk": i} for i in numbers
            ],
        )


def resident_mb() -> float:
    """This process's resident set now, in MB."""
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


class ResidentPeak(threading.Thread):
    """Samples the resident set every 10 ms until stopped; `peak` is the highest seen."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peak, self.done = resident_mb(), threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.01):
            self.peak = max(self.peak, resident_mb())


def measure(step: str, size: int, url: str) -> dict:
    """In this fresh process: push (or pull) `synthetic-SIZE`; the seconds, the peak of what Python and
    Arrow allocated, and how far the resident set's peak rose above what it was before the step."""
    settings = hub_settings(url, os.environ["HF_TOKEN"], WORK / "synthetic")
    if step == "push":
        store = RagStore(settings, f"synthetic-{size}")
        store.count()
    before, sampler = resident_mb(), ResidentPeak()
    sampler.start()
    arrow_before = pa.default_memory_pool().max_memory() or 0
    tracemalloc.start()
    started = time.perf_counter()
    if step == "push":
        push_collection(store, f"bench/synthetic-{size}", settings)
    else:
        pull_collection(f"bench/synthetic-{size}", hub_settings(url, os.environ["HF_TOKEN"], WORK / f"pulled-{size}"))
    seconds = time.perf_counter() - started
    python_peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    arrow_peak = (pa.default_memory_pool().max_memory() or 0) - arrow_before
    sampler.done.set()
    sampler.join()
    return {
        "s": seconds,
        "held_mb": (python_peak + arrow_peak) / 1e6,
        "python_mb": python_peak / 1e6,
        "arrow_mb": arrow_peak / 1e6,
        "rss_growth_mb": sampler.peak - before,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=Path, default=Path("/usr/share/common-licenses"))
    parser.add_argument("--sizes", type=int, nargs="+", default=[5000, 20000])
    parser.add_argument("--measure", nargs=3, metavar=("STEP", "SIZE", "HUB_URL"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:  # a child process: one step at one size
        print(json.dumps(measure(args.measure[0], int(args.measure[1]), args.measure[2])))
        return

    token = "hf_" + secrets.token_hex(16)
    os.environ["HF_TOKEN"] = token  # for the children; never printed
    hub = HubServer(0, WORK / "hub", token=token).start()
    try:
        ratio = pull_vs_ingest(args.docs, hub.url, token, WORK)
        held = {}
        for size in args.sizes:
            fill(size, hub_settings(hub.url, token, WORK / "synthetic"))
            for step in ("push", "pull"):
                child = subprocess.run(
                    [sys.executable, "-m", "benchmarks.collection_transfer", "--measure", step, str(size), hub.url],
                    capture_output=True,
                    text=True,
                    check=True,
                )
                m = json.loads(child.stdout.strip().splitlines()[-1])
                held[step, size] = m["held_mb"]
                print(
                    f"{size:>6} chunks {step}: {m['s']:.1f} s, Python + Arrow peak {m['held_mb']:.1f} MB "
                    f"({m['python_mb']:.1f} + {m['arrow_mb']:.1f}), "
                    f"resident set peak {m['rss_growth_mb']:.1f} MB above its start"
                )
        small, large = min(args.sizes), max(args.sizes)
        memory = {step: held[step, large] / held[step, small] for step in ("push", "pull")}
        print(f"ratio={ratio:.1f} push_mem={memory['push']:.2f} pull_mem={memory['pull']:.2f}")
    finally:
        hub.shutdown()
        hub.server_close()
        shutil.rmtree(WORK, ignore_errors=True)


if __name__ == "__main__":
    main()
