"""Measure retrieval: does the search find the passage each question was written from?

Builds a throw-away collection (in memory) from the evidence texts of a QA CSV (and of any
`--corpus` CSVs, e.g. the whole set while the questions are a held-out half), plus any distractor
documents, asks every question, and reports recall@1/5/10 and MRR of the row's own evidence. A
hit is any chunk of that evidence. This is how embedding models, chunking, headers and hybrid
retrieval are compared on a given corpus.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from qa_core.chunking import ChunkOptions
from qa_core.config import Settings
from qa_core.data import read_csv_rows
from qa_core.documents import Document
from qa_core.embeddings import EmbeddingModel
from qa_core.errors import DataError
from qa_core.rag.ingest import IngestReport, ingest
from qa_core.rag.retrieval import PER_PAGE, Retriever
from qa_core.rag.store import RagStore, temporary_store

K_VALUES = (1, 5, 10)
KEYWORD_WEIGHTS = (0.0, 0.05, 0.1, 0.2, 0.3, 0.5)  # the hybrid weights --tune-hybrid tries


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
    questions: bool = True,
) -> list[EvidenceRow]:
    """The rows of a QA CSV as `EvidenceRow`s; with `questions` False, the evidence of a corpus
    (a row's question may then be empty or its column missing).

    Raises:
        DataError: the CSV is malformed, lacks a named column, has no rows, or an empty question or evidence.
    """
    path = Path(csv_path)
    header, rows = read_csv_rows(path)
    for column, option in (
        (question_col if questions else None, "--question-col"),
        (evidence_col, "--evidence-col"),
        (title_col, "--title-col"),
    ):
        _require(header, column, path, option)
    if not rows:
        raise DataError(f"{path}: no rows to evaluate")
    found = []
    for where, row in rows:
        question, evidence = (row.get(question_col) or "").strip(), row[evidence_col].strip()
        if (questions and not question) or not evidence:
            raise DataError(f"{where}: empty {evidence_col if not evidence else question_col}")
        found.append(EvidenceRow(question, evidence, row[title_col].strip() if title_col else ""))
    return found


@contextmanager
def evidence_store(
    settings: Settings,
    rows: list[EvidenceRow],
    embedding: EmbeddingModel | None = None,
    distractors: list[str] | None = None,
    chunking: ChunkOptions | None = None,
    progress: bool = False,
) -> Iterator[tuple[RagStore, IngestReport]]:
    """A throw-away collection embedded with `embedding` (default: QA_EMBEDDING_MODEL) holding the
    evidence of `rows` (each text once, chunked as `chunking` says, with the title as header) and
    the `distractors` files; yields it with the distractors' ingest report."""
    with temporary_store(settings, embedding) as store:
        stored: set[str] = set()
        for row in rows:
            if row.source not in stored:
                store.add_documents(row.source, [Document(row.evidence, row.source, row.title)], row.source, chunking)
                stored.add(row.source)
        yield store, ingest(store, distractors or [], progress=progress)


def rank_evidence(
    retriever: Retriever, questions: list[EvidenceRow], hybrid: bool = False, progress: bool = False
) -> dict[str, float]:
    """Ask every question and find where its own evidence ranks.

    Returns:
        {"recall@1", "recall@5", "recall@10", "mrr", "n"}.
    """
    ranks = []
    for row in tqdm(questions, desc="retrieving", unit="question", disable=not progress):
        found = [hit.source for hit in retriever.search(row.question, max(K_VALUES), hybrid)]
        ranks.append(found.index(row.source) + 1 if row.source in found else None)
    metrics = {f"recall@{k}": sum(1 for r in ranks if r and r <= k) / len(ranks) for k in K_VALUES}
    metrics["mrr"] = sum(1 / r for r in ranks if r) / len(ranks)
    metrics["n"] = len(ranks)
    return metrics


def tune_keyword_weight(
    store: RagStore, questions: list[EvidenceRow], progress: bool = False, per_page: bool = PER_PAGE
) -> tuple[float, dict[float, dict[str, float]]]:
    """The hybrid keyword weight that ranks `questions`' evidence best in `store`: the highest
    recall@5, then MRR, then the smaller weight (0, where keywords add nothing, is a candidate,
    so the choice never loses to dense search on these questions).

    Returns:
        (the weight, {weight: its metrics} for every weight tried).
    """
    tried = {
        weight: rank_evidence(Retriever(store, weight, per_page), questions, hybrid=True)
        for weight in tqdm(KEYWORD_WEIGHTS, desc="trying keyword weights", disable=not progress)
    }
    best = max(tried, key=lambda weight: (tried[weight]["recall@5"], tried[weight]["mrr"], -weight))
    return best, tried


def retrieval_metrics(
    settings: Settings,
    questions: list[EvidenceRow],
    corpus: list[EvidenceRow] = (),
    embedding: EmbeddingModel | None = None,
    hybrid: bool = False,
    distractors: list[str] | None = None,
    progress: bool = False,
) -> tuple[dict[str, float], IngestReport]:
    """Index the evidence of `questions` and `corpus` and the `distractors` files (`evidence_store`),
    then rank each question's own evidence (`rank_evidence`).

    Returns:
        ({"recall@1", "recall@5", "recall@10", "mrr", "n"}, the distractors' ingest report).
    """
    with evidence_store(settings, [*questions, *corpus], embedding, distractors, progress=progress) as (store, report):
        return rank_evidence(Retriever(store), questions, hybrid, progress), report


def read_questions_and_corpus(
    csv_path: str | Path,
    question_col: str = "question",
    evidence_col: str = "evidence_text",
    title_col: str | None = None,
    corpus_csv: list[str] = (),
) -> tuple[list[EvidenceRow], list[EvidenceRow]]:
    """(the rows of `csv_path`, the evidence of every row of the `corpus_csv` files, same columns).

    Raises:
        DataError: a CSV is malformed or lacks a named column.
    """
    questions = read_evidence_rows(csv_path, question_col, evidence_col, title_col)
    corpus = [
        row for path in corpus_csv for row in read_evidence_rows(path, question_col, evidence_col, title_col, False)
    ]
    return questions, corpus


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
    questions, corpus = read_questions_and_corpus(csv_path, question_col, evidence_col, title_col, corpus_csv)
    return retrieval_metrics(settings, questions, corpus, None, hybrid, distractors, progress)


def tune_hybrid(
    settings: Settings,
    questions: list[EvidenceRow],
    corpus: list[EvidenceRow] = (),
    distractors: list[str] | None = None,
    progress: bool = False,
) -> tuple[float, dict[float, dict[str, float]]]:
    """Choose the hybrid keyword weight on `questions` (held-out questions: not those a retriever
    was tuned on), indexed with `corpus` and `distractors` as `retrieval_metrics` indexes them.

    Returns:
        (the weight, {weight: its metrics} for every weight tried); see `tune_keyword_weight`.
    """
    with evidence_store(settings, [*questions, *corpus], None, distractors, progress=progress) as (store, _):
        return tune_keyword_weight(store, questions, progress)
