"""Ingest throughput (the store's way vs one chunk at a time vs the encoder alone) and query latency.

    python -m benchmarks.rag_ingest                       # 400 chunks compared, 10,000 for latency
    python -m benchmarks.rag_ingest --compare 200 --corpus 2000 --queries 50

Every ingest way embeds the same chunks with the same model into a fresh on-disk Chroma
collection: the store's way (`RagStore.add_documents`: large length-sorted encode blocks, Chroma
writes overlapping with encoding), and the naive way, one chunk per call. The encoder alone
(`encode` of the same texts, nothing stored) is the ceiling a CPU allows. The last line is
`ratio=<store ÷ one at a time> ceiling=<store ÷ encoder alone> hybrid_p95_ms=<p95 over --corpus chunks>`.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from pathlib import Path

from tqdm import tqdm

from qa_core.chunking import chunk_documents
from qa_core.config import load_settings
from qa_core.data import load_qa_data
from qa_core.demo_model import sample_data_path
from qa_core.documents import Document
from qa_core.rag.retrieval import Retriever
from qa_core.rag.store import RagStore


def synthetic_documents(n: int, seed: int = 0) -> list[Document]:
    """`n` short filing-like paragraphs (about 60 words) built from the sample evidence texts."""
    sentences = [s.strip() + "." for text in load_qa_data(sample_data_path())["context"] for s in text.split(". ") if s]
    rng = random.Random(seed)
    return [
        Document(" ".join(rng.sample(sentences, 3)) + f" Reference {i}.", f"filing-{i // 50}.txt", f"Filing {i // 50}")
        for i in range(n)
    ]


def chunks_per_second(store: RagStore, docs: list[Document], batched: bool) -> float:
    start = time.perf_counter()
    if batched:
        store.add_documents("bench.txt", docs, "batched")
    else:
        for i, doc in enumerate(tqdm(docs, desc="one at a time", unit="chunk")):
            store.add_documents("bench.txt", [doc], f"single-{i}")
    return store.count() / (time.perf_counter() - start)


def encode_only_per_second(store: RagStore, docs: list[Document]) -> float:
    """Chunks/s of the encoder alone on the texts the store embeds for `docs` (chunked beforehand)."""
    texts = [chunk.indexed_text for chunk in chunk_documents(docs, store.embedder, "encode-only")]
    start = time.perf_counter()
    store.embedder(texts)
    return len(texts) / (time.perf_counter() - start)


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--compare", type=int, default=400, help="chunks ingested each way for the ratio")
    parser.add_argument("--corpus", type=int, default=10_000, help="chunks in the collection for query latency")
    parser.add_argument("--queries", type=int, default=100, help="queries timed")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as folder:
        settings = load_settings(None, chroma_path=Path(folder))
        docs = synthetic_documents(args.compare)
        naive = chunks_per_second(RagStore(settings, "naive"), docs, batched=False)
        encoder = encode_only_per_second(RagStore(settings, "encoder"), docs)  # the model is warm from here on
        batched = chunks_per_second(RagStore(settings, "batched"), docs, batched=True)
        print(
            f"ingest {args.compare} chunks: one at a time {naive:.1f} chunks/s, the store's way {batched:.1f} "
            f"chunks/s, the encoder alone {encoder:.1f} chunks/s"
        )

        store = RagStore(settings, "latency")
        corpus = synthetic_documents(args.corpus, seed=1)
        for start in tqdm(range(0, len(corpus), 1000), desc="building corpus", unit="k chunks"):
            store.add_documents(f"part-{start}.txt", corpus[start : start + 1000], f"part-{start}")
        retriever = Retriever(store)
        questions = [q for q in load_qa_data(sample_data_path())["question"]]
        p95 = {}
        for hybrid in (False, True):
            retriever.search(questions[0], 5, hybrid)  # warm-up: builds the keyword index once
            latencies = []
            for i in range(args.queries):
                start = time.perf_counter()
                retriever.search(questions[i % len(questions)], 5, hybrid)
                latencies.append((time.perf_counter() - start) * 1000)
            name = "hybrid" if hybrid else "dense"
            p95[name] = percentile(latencies, 95)
            p50 = percentile(latencies, 50)
            print(f"query over {store.count()} chunks ({name}): p50 {p50:.1f} ms, p95 {p95[name]:.1f} ms")
    print(f"ratio={batched / naive:.2f} ceiling={batched / encoder:.2f} hybrid_p95_ms={p95['hybrid']:.1f}")


if __name__ == "__main__":
    main()
