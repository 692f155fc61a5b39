"""Chunking and fusion measured: recall@1/5/10 and MRR of each setting on short pages and long ones.

    python -m benchmarks.chunking                 # three corpora, every setting: ~6 minutes on 2 CPU cores
    python -m benchmarks.chunking --companies 4   # smaller filings corpora

Corpora: the sample data (short passages, one chunk each), `benchmarks/filings.py` (table pages of
about one chunk) and `benchmarks/long_filings.py` (10-K-like pages of two to four chunks, every page
of every filing stored, those no question is about included). For each chunking setting (most
tokens per chunk, overlap, and whether a chunk's header repeats the headings and column header it
falls under) the corpus is embedded once, then searched dense and hybrid (keyword weight 0.1, and
the best weight from `--tune-hybrid`'s candidates, chosen on the same questions: an upper bound), with
results ranked per chunk (a page's chunks take several of the k places) or per page (a page's best
chunk stands for it). Prints a Markdown table; the last line is
`ratio=<recall@5 of the defaults ÷ the former defaults (no context header, per chunk), dense, long pages>`.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from benchmarks import filings, long_filings
from qa_core.chunking import ChunkOptions
from qa_core.config import load_settings
from qa_core.demo_model import sample_data_path
from qa_core.rag.evaluate import EvidenceRow, evidence_store, rank_evidence, read_evidence_rows, tune_keyword_weight
from qa_core.rag.retrieval import KEYWORD_WEIGHT, PER_PAGE, Retriever


@dataclass(frozen=True)
class Setting:
    name: str
    chunking: ChunkOptions


SETTINGS = [
    Setting("512/32, no context (former default)", ChunkOptions(512, 32, context=False)),
    Setting("512/32, context", ChunkOptions(512, 32, context=True)),
    Setting("512/0, context", ChunkOptions(512, 0)),
    Setting("512/64, context", ChunkOptions(512, 64)),
    Setting("128/32, context", ChunkOptions(128, 32)),
]


def rows_of(records: list[dict[str, str]], questions: bool = True) -> list[EvidenceRow]:
    return [EvidenceRow(r["question"] if questions else "", r["evidence_text"], r["doc_name"]) for r in records]


def corpora(companies: int) -> dict[str, tuple[list[EvidenceRow], list[EvidenceRow]]]:
    """name -> (questions, every page to store)."""
    sample = read_evidence_rows(sample_data_path(), title_col="doc_name")
    short = rows_of(filings.build_rows(companies, 5))
    questions, pages = long_filings.build(companies, 4)
    return {
        "sample data": (sample, sample),
        "filings (one-chunk pages)": (short, short),
        "long filings": (rows_of(questions), rows_of(pages, questions=False)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--companies", type=int, default=10, help="companies in the filings corpora")
    args = parser.parse_args()
    settings = load_settings(None)
    print("| corpus | chunking | results | dense R@1 / R@5 / R@10 / MRR | hybrid 0.1 | hybrid, best weight |")
    print("| --- | --- | --- | --- | --- | --- |")
    recall = {}
    for corpus, (questions, pages) in corpora(args.companies).items():
        for setting in SETTINGS:
            with evidence_store(settings, pages, chunking=setting.chunking) as (store, _):
                chunks = store.count()
                for per_page in (False, True):
                    dense = rank_evidence(Retriever(store, per_page=per_page), questions)
                    hybrid = rank_evidence(Retriever(store, KEYWORD_WEIGHT, per_page), questions, hybrid=True)
                    weight, tried = tune_keyword_weight(store, questions, per_page=per_page)
                    recall[corpus, setting.name, per_page] = dense["recall@5"]
                    cells = [_cell(dense), _cell(hybrid), f"{_cell(tried[weight])} (w {weight})"]
                    scoring = "per page" if per_page else "per chunk"
                    row = [corpus, f"{setting.name}, {chunks} chunks", scoring, *cells]
                    print(f"| {' | '.join(row)} |", flush=True)
    default = ChunkOptions()
    default_name = next(s.name for s in SETTINGS if s.chunking == default)
    before = recall["long filings", SETTINGS[0].name, False]
    after = recall["long filings", default_name, PER_PAGE]
    print(f"ratio={after / before:.3f} (long filings, dense recall@5: defaults {after:.3f}, former {before:.3f})")


def _cell(metrics: dict[str, float]) -> str:
    return " / ".join(f"{metrics[key]:.3f}" for key in ("recall@1", "recall@5", "recall@10", "mrr"))


if __name__ == "__main__":
    main()
