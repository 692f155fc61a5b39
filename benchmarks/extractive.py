"""Extractive answers measured: how often the quoted sentence or table row states the reference's figures.

    python -m benchmarks.extractive                  # sample data and long filings: ~2 minutes on 2 CPU cores
    python -m benchmarks.extractive --companies 4

For every question with a figure in its reference answer, the RAG tab's `extractive` mode quotes one
sentence of the five chunks retrieved from the whole corpus (`qa_core.rag.answer.quote`), and also
of the question's own page alone (quoting without retrieval's misses). A quote is right when it
states every figure of the reference (`exact_figure`) and is a sentence's length (at most
`MAX_WORDS` words: a whole table states every figure too, but answers nothing). Both ways are run
with tables split into their rows (now) and into sentences only (before: a table block has no
sentence punctuation, so it was one "sentence"). The last line is
`ratio=<right quotes with rows ÷ without, retrieved, long filings>`.
"""

from __future__ import annotations

import argparse
import csv

from benchmarks import long_filings
from benchmarks.chunking import rows_of
from qa_core.config import load_settings
from qa_core.demo_model import sample_data_path
from qa_core.extractive import best_sentences
from qa_core.metrics import exact_figure
from qa_core.rag.answer import RagOptions, quoted, retrieve
from qa_core.rag.evaluate import EvidenceRow, evidence_store
from qa_core.rag.retrieval import Retriever

MAX_WORDS = 50


def right(quote: str, row: dict[str, str]) -> bool:
    return len(quote.split()) <= MAX_WORDS and bool(exact_figure(quote, row["answer"], row["question"]))


def right_share(questions: list[dict[str, str]], pages: list[EvidenceRow], table_rows: bool) -> tuple[float, float]:
    """(share of right quotes from the retrieved chunks, share from the question's own page)."""
    retrieved = own = 0
    with evidence_store(load_settings(None), pages) as (store, _):
        retriever = Retriever(store)
        for row in questions:
            hits = retrieve(retriever, row["question"], RagOptions(mode="extractive"))
            texts, pages = [hit.text for hit in hits], [hit.label for hit in hits]
            best = best_sentences(row["question"], texts, table_rows=table_rows, pages=pages)[0]
            retrieved += right(quoted(best.text, hits[best.passage]), row)
            own += right(best_sentences(row["question"], [row["evidence_text"]], table_rows=table_rows)[0].text, row)
    return retrieved / len(questions), own / len(questions)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--companies", type=int, default=10)
    args = parser.parse_args()
    with sample_data_path().open() as f:
        sample = list(csv.DictReader(f))
    questions, pages = long_filings.build(args.companies, 4)
    corpora = {
        "sample data": (sample, rows_of(sample, questions=False)),
        "long filings": (questions, rows_of(pages, questions=False)),
    }
    print("| corpus | questions with a figure | split | right quote, retrieved (top 5) | right quote, own page |")
    print("| --- | --- | --- | --- | --- |")
    shares = {}
    for name, (rows, corpus) in corpora.items():
        with_figures = [row for row in rows if exact_figure("", row["answer"], row["question"]) is not None]
        for table_rows in (False, True):
            shares[name, table_rows] = right_share(with_figures, corpus, table_rows)
            split = "sentences and table rows" if table_rows else "sentences only"
            retrieved, own = shares[name, table_rows]
            print(f"| {name} | {len(with_figures)} | {split} | {retrieved:.3f} | {own:.3f} |", flush=True)
    after, before = shares["long filings", True][0], shares["long filings", False][0]
    print(f"ratio={after / max(before, 1e-9):.3f} (long filings, right quotes retrieved: {after:.3f} vs {before:.3f})")


if __name__ == "__main__":
    main()
