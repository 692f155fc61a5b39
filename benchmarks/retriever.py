"""Retrieval quality on the hard filings corpus: tuned vs untuned embedding model, dense vs hybrid.

    python -m benchmarks.retriever                 # 12 companies x 5 years, 180 questions, ~5 minutes
    python -m benchmarks.retriever --companies 6

The questions are split in two halves. For each direction, `train_job/retriever.py` (default
options) tunes all-MiniLM-L6-v2 on one half, and `qa_core.rag eval` measures the other half's
questions with the whole corpus (both halves' evidence) in the collection: the untuned model and
the tuned one, dense and hybrid. The last line is `ratio=<mean recall@5 tuned ÷ untuned, dense>`
followed by the figures it comes from.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from benchmarks.filings import build_rows, write_csv
from qa_core.config import load_settings
from qa_core.rag.evaluate import evaluate_retrieval, format_metrics
from train_job.retriever import main as tune
from train_job.retriever import parse_args


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--companies", type=int, default=12)
    parser.add_argument("--years", type=int, default=5)
    args = parser.parse_args()
    rows = build_rows(args.companies, args.years)
    halves = rows[: len(rows) // 2], rows[len(rows) // 2 :]
    results: dict[str, list[dict]] = {}
    train_seconds = []
    with tempfile.TemporaryDirectory() as work:
        files = [write_csv(Path(work) / f"half{n}.csv", half) for n, half in enumerate(halves)]
        for train, held in ((0, 1), (1, 0)):
            started = time.perf_counter()
            folder = str(Path(work) / f"tuned-on-{train}")
            tune(*parse_args(["--data", str(files[train]), "--out", folder]))
            train_seconds.append(time.perf_counter() - started)
            for model in (None, folder):
                settings = load_settings(None, embedding_model=model)
                for hybrid in (False, True):
                    metrics, _ = evaluate_retrieval(
                        settings, files[held], title_col="doc_name", hybrid=hybrid, corpus_csv=[str(files[train])]
                    )
                    key = f"{'tuned' if model else 'untuned'} {'hybrid' if hybrid else 'dense'}"
                    results.setdefault(key, []).append(metrics)
    print(f"{len(rows)} questions, two halves; mean of both directions (train on one, measure the other):")
    for key, runs in results.items():
        mean = {m: sum(r[m] for r in runs) / len(runs) for m in ("recall@1", "recall@5", "recall@10", "mrr")}
        print(f"  {key:15s} {format_metrics(mean)}")
    recall = {key: sum(r["recall@5"] for r in runs) / len(runs) for key, runs in results.items()}
    print(f"tuning took {max(train_seconds):.0f} s at most per half (measuring before and after included)")
    print(
        f"ratio={recall['tuned dense'] / recall['untuned dense']:.3f} "
        + " ".join(f"{key.replace(' ', '_')}_recall@5={value:.3f}" for key, value in recall.items())
    )


if __name__ == "__main__":
    main()
