"""Measure retrieval: does the search find the passage each question was written from?

Builds a throw-away collection (in memory) from the evidence texts of a QA CSV (and of any
`--corpus` CSVs, e.g. the whole set while the questions are a held-out half), plus any distractor
documents, asks every question, and reports recall@1/5/10 and MRR of the row's own evidence. A
hit is any chunk of that evidence. This is how embedding models, chunking, headers and hybrid
retrieval are compared on a given corpus.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from qa_core.config import Settings
from qa_core.data import read_csv_rows
from qa_core.documents import Document
from qa_core.embeddings import EmbeddingModel
from qa_core.errors import DataError
from qa_core.rag.retrieval import Retriever
from qa_core.rag.store import IngestReport, temporary_store

K_VALUES = (1, 5, 10)


@dataclass(frozen=True)
class EvidenceRow:
    """A question, the passage it was written from, and the passage's document title ("" if none)."""

    question: str
    evidence: str
    title: str = ""

    @property
    def source(self) -> str:
        """The evidence's name in the collection: the same text is the same source."""
        return "evidence-" + hashlib.sha256(self.evidence.encode()).hexdigest()[:12]


def format_metrics(metrics: dict[str, float]) -> str:
    """`recall@1=0.500  recall@5=0.900 …`: the metrics as `eval` and the retriever script print them."""
    return "  ".join(f"{key}={value:.3f}" for key, value in metrics.items() if key != "n")


def _require(header: list[str], column: str | None, path: Path, option: str) -> None:
    if column and column not in header:
        raise DataError(f"{path}: no column {column!r} for {option} (columns: {', '.join(header)})")


def read_evidence_rows(
    csv_path: str | Path,
    question_col: str = "question",
    evidence_col: str = "evidence_text",
    title_col: str | None = None,
) -> list[EvidenceRow]:
    """The rows of a QA CSV as `EvidenceRow`s.

    Raises:
        DataError: the CSV is malformed, lacks a named column, has no rows, or an empty question or evidence.
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
    found = []
    for where, row in rows:
        question, evidence = row[question_col].strip(), row[evidence_col].strip()
        if not question or not evidence:
            raise DataError(f"{where}: empty {question_col if not question else evidence_col}")
        found.append(EvidenceRow(question, evidence, row[title_col].strip() if title_col else ""))
    return found


def retrieval_metrics(
    settings: Settings,
    questions: list[EvidenceRow],
    corpus: list[EvidenceRow] = (),
    embedding: EmbeddingModel | None = None,
    hybrid: bool = False,
    distractors: list[str] | None = None,
    progress: bool = False,
) -> tuple[dict[str, float], IngestReport]:
    """Index the evidence of `questions` and `corpus` (chunked as ingest chunks, with the title as
    header) and the `distractors` files in a throw-away collection embedded with `embedding`
    (default: QA_EMBEDDING_MODEL), then rank each question's own evidence.

    Returns:
        ({"recall@1", "recall@5", "recall@10", "mrr", "n"}, the distractors' ingest report).
    """
    with temporary_store(settings, embedding) as store:
        stored: set[str] = set()
        for row in [*questions, *corpus]:
            if row.source not in stored:
                store.add_documents(row.source, [Document(row.evidence, row.source, row.title)], row.source)
                stored.add(row.source)
        report = store.ingest(distractors or [], progress=progress)
        retriever = Retriever(store)
        ranks = []
        for row in tqdm(questions, desc="retrieving", unit="question", disable=not progress):
            found = [hit.source for hit in retriever.search(row.question, max(K_VALUES), hybrid)]
            ranks.append(found.index(row.source) + 1 if row.source in found else None)
    metrics = {f"recall@{k}": sum(1 for r in ranks if r and r <= k) / len(ranks) for k in K_VALUES}
    metrics["mrr"] = sum(1 / r for r in ranks if r) / len(ranks)
    metrics["n"] = len(ranks)
    return metrics, report


def evaluate_retrieval(
    settings: Settings,
    csv_path: str | Path,
    question_col: str = "question",
    evidence_col: str = "evidence_text",
    title_col: str | None = None,
    distractors: list[str] | None = None,
    hybrid: bool = False,
    progress: bool = False,
    corpus_csv: list[str] = (),
) -> tuple[dict[str, float], IngestReport]:
    """Evaluate retrieval of each row's evidence for its question; the evidence of every row of
    the `corpus_csv` files (same columns) is indexed too.

    Returns:
        ({"recall@1", "recall@5", "recall@10", "mrr", "n"}, the distractors' ingest report).

    Raises:
        DataError: a CSV is malformed or lacks a named column.
    """
    questions = read_evidence_rows(csv_path, question_col, evidence_col, title_col)
    corpus = [row for path in corpus_csv for row in read_evidence_rows(path, question_col, evidence_col, title_col)]
    return retrieval_metrics(settings, questions, corpus, None, hybrid, distractors, progress)
