"""Measure retrieval: does the search find the passage each question was written from?

Builds a throw-away collection (in memory) from the evidence texts of a QA CSV, plus any
distractor documents, asks every question, and reports recall@1/5/10 and MRR of the row's own
evidence. This is how chunking, headers and hybrid retrieval are compared on a given corpus.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from tqdm.auto import tqdm

from qa_core.config import Settings
from qa_core.data import read_csv_rows
from qa_core.errors import DataError
from qa_core.rag.documents import Document
from qa_core.rag.retrieval import Retriever
from qa_core.rag.store import IngestReport, temporary_store

K_VALUES = (1, 5, 10)


def _require(header: list[str], column: str | None, path: Path, option: str) -> None:
    if column and column not in header:
        raise DataError(f"{path}: no column {column!r} for {option} (columns: {', '.join(header)})")


def evaluate_retrieval(
    settings: Settings,
    csv_path: str | Path,
    question_col: str = "question",
    evidence_col: str = "evidence_text",
    title_col: str | None = None,
    distractors: list[str] | None = None,
    hybrid: bool = False,
    progress: bool = False,
) -> tuple[dict[str, float], IngestReport]:
    """Evaluate retrieval of each row's evidence for its question.

    Returns:
        ({"recall@1", "recall@5", "recall@10", "mrr", "n"}, the distractors' ingest report).

    Raises:
        DataError: the CSV is malformed or lacks a named column.
    """
    path = Path(csv_path)
    header, rows = read_csv_rows(path)
    for column, option in (
        (question_col, "--question-col"),
        (evidence_col, "--evidence-col"),
        (title_col, "--title-col"),
    ):
        _require(header, column, path, option)
    if not rows:
        raise DataError(f"{path}: no rows to evaluate")
    with temporary_store(settings) as store:
        pairs: list[tuple[str, str]] = []
        for where, row in rows:
            question, evidence = row[question_col].strip(), row[evidence_col].strip()
            if not question or not evidence:
                raise DataError(f"{where}: empty {question_col if not question else evidence_col}")
            source = "evidence-" + hashlib.sha256(evidence.encode()).hexdigest()[:12]
            if not store.collection.get(where={"source": source}, include=[])["ids"]:
                title = row[title_col].strip() if title_col else ""
                store.add_documents(source, [Document(evidence, source, title)], source)
            pairs.append((question, source))
        report = store.ingest(distractors or [], progress=progress)
        retriever = Retriever(store)
        ranks = []
        for question, source in tqdm(pairs, desc="retrieving", unit="question", disable=not progress):
            found = [hit.source for hit in retriever.search(question, max(K_VALUES), hybrid)]
            ranks.append(found.index(source) + 1 if source in found else None)
    metrics = {f"recall@{k}": sum(1 for r in ranks if r and r <= k) / len(ranks) for k in K_VALUES}
    metrics["mrr"] = sum(1 / r for r in ranks if r) / len(ranks)
    metrics["n"] = len(ranks)
    return metrics, report
