"""Tune the retriever's sentence-embedding model on your own question -> evidence pairs.

    python train_job/retriever.py --data filings.csv --out runs/retriever
    python train_job/retriever.py --data filings.csv --out runs/retriever --hard-negatives --epochs 4
    python train_job/retriever.py --data qa.jsonl --columns context=passage,title=report --out runs/retriever \
        --push-to-hub --hub-repo me/filings-retriever
    python -m qa_core.rag eval --csv held_out.csv --title-col doc_name --embedding-model runs/retriever
    QA_EMBEDDING_MODEL=runs/retriever python -m qa_core.rag reindex --collection filings

The QA data an LLM is fine-tuned on (question, answer, evidence, document title; the same files
and column mappings as train_job/run.py) also says which passage answers which question. Each
evidence is chunked and headed with its title exactly as `qa_core.rag ingest` does, and every
(question, chunk) pair trains the model with sentence-transformers' own trainer and
MultipleNegativesRankingLoss: the other chunks of a batch are the negatives. Batches never hold
two pairs from the same document, whose chunks would be false negatives for each other;
`--hard-negatives` adds, for each question, the chunk of another document that the base model
ranks highest. A split of the questions is held out (`--test-size`), and recall@1/5/10 and MRR of
their evidence, among the evidence of every question, are printed before and after tuning; hybrid
search's keyword weight is chosen on them too (`retrieval.json` in the folder: collections built
with the model take it).

The result is an ordinary sentence-transformers folder with a model card; point
`QA_EMBEDDING_MODEL` or `--embedding-model` at it (or at the Hub repo it was pushed to). Every
option of sentence-transformers' training arguments can be set too (`--help`), or in a YAML file
(`--config`). Exit status: 0 done; 2 bad input or settings (one `error:` line).
"""

from __future__ import annotations

import json
import random
import sys
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
from datasets import Dataset
from sentence_transformers import SentenceTransformer, SentenceTransformerTrainer
from sentence_transformers.base.sampler import DefaultBatchSampler
from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss
from sentence_transformers.sentence_transformer.training_args import SentenceTransformerTrainingArguments
from trl import TrlParser

from qa_core.chunking import DEFAULT_CHUNK_TOKENS, DEFAULT_OVERLAP_TOKENS, ChunkOptions, chunk_documents
from qa_core.config import Settings, load_settings, setting_option
from qa_core.data import load_qa_data, parse_columns, split_qa_data
from qa_core.documents import Document
from qa_core.embeddings import (
    DEFAULT_EMBEDDING_MODEL,
    RETRIEVAL_FILE,
    EmbeddingModel,
    SentenceEmbedding,
    resolve_embedding_model,
)
from qa_core.errors import DataError, QAError
from qa_core.hub.client import push_folder
from qa_core.hub.publish import check_push_options, check_write_access
from qa_core.hub.refs import public_name
from qa_core.rag.evaluate import (
    EvidenceRow,
    evidence_store,
    format_metrics,
    rank_evidence,
    retrieval_metrics,
    tune_keyword_weight,
)
from qa_core.rag.retrieval import Retriever
from qa_core.reports import write_loss_curve


@dataclass
class RetrieverScriptArguments:
    """What to tune on, from which model, and where to publish it."""

    data: str = field(metadata={"help": "QA data with evidence: CSV / JSONL / JSON file or Hugging Face dataset id."})
    columns: str | None = field(
        default=None, metadata={"help": "Column mapping, e.g. question=q,context=passage,title=report."}
    )
    title_col: str | None = field(
        default=None, metadata={"help": "Column naming each evidence's document (default: doc_name or title)."}
    )
    base_model: str = field(
        default=DEFAULT_EMBEDDING_MODEL,
        metadata={"help": "Model to tune: the bundled all-MiniLM-L6-v2, a folder, or a Hub REPO[@REV]."},
    )
    test_size: float = field(default=0.2, metadata={"help": "Fraction of the questions held out to measure on."})
    hard_negatives: bool = field(
        default=False, metadata={"help": "Add each question's best-ranked chunk of another document as a negative."}
    )
    chunk_tokens: int = field(default=DEFAULT_CHUNK_TOKENS, metadata={"help": "As `qa_core.rag ingest`."})
    overlap_tokens: int = field(default=DEFAULT_OVERLAP_TOKENS, metadata={"help": "As `qa_core.rag ingest`."})
    hub_repo: str | None = field(default=None, metadata={"help": "Hub repo to push the model to (USER/NAME)."})
    hub_endpoint: str | None = field(default=None, metadata=setting_option("hf_endpoint"))


@dataclass
class RetrieverTrainingArguments(SentenceTransformerTrainingArguments):
    """sentence-transformers' training arguments, with the short names of the examples above."""

    output_dir: str = field(default="runs/retriever", metadata={"aliases": ["--out"], "help": "Where to save."})
    num_train_epochs: float = field(default=3, metadata={"aliases": ["--epochs"], "help": "Passes over the pairs."})
    per_device_train_batch_size: int = field(
        default=16, metadata={"aliases": ["--batch-size"], "help": "Pairs per batch (each other's negatives)."}
    )


class OnePerDocumentBatchSampler(DefaultBatchSampler):
    """Batches that hold at most one pair per document, in a new order every epoch."""

    def __init__(self, dataset: Dataset, groups: list[str], batch_size: int, drop_last: bool, **kwargs) -> None:
        super().__init__(dataset, batch_size=batch_size, drop_last=drop_last, **kwargs)
        self.groups = groups

    def _batches(self) -> list[list[int]]:
        waiting = list(range(len(self.groups)))
        random.Random(self.seed + self.epoch).shuffle(waiting)
        batches = []
        while waiting:
            batch, seen, later = [], set(), []
            for index in waiting:
                if len(batch) < self.batch_size and self.groups[index] not in seen:
                    batch.append(index)
                    seen.add(self.groups[index])
                else:
                    later.append(index)
            if len(batch) == self.batch_size or not self.drop_last:
                batches.append(batch)
            waiting = later
        return batches

    def __iter__(self):
        yield from self._batches()

    def __len__(self) -> int:
        return len(self._batches())


def evidence_rows(data: Dataset) -> list[EvidenceRow]:
    """The rows that have evidence to retrieve.

    Raises:
        DataError: no row has any.
    """
    rows = [EvidenceRow(r["question"], r["context"], r["title"]) for r in data if r["context"].strip()]
    if not rows:
        raise DataError("no row has evidence to retrieve: map the evidence column with --columns context=COLUMN")
    return rows


def training_pairs(
    rows: list[EvidenceRow], embedder: SentenceEmbedding, chunk_tokens: int, overlap_tokens: int
) -> tuple[list[str], list[str], list[str]]:
    """(questions, chunks, groups): one pair per chunk of each question's evidence, chunked and headed
    as ingest does; a pair's group is its document (title, else the evidence itself)."""
    questions, chunks, groups = [], [], []
    for row in rows:
        document = Document(row.evidence, row.source, row.title)
        for chunk in chunk_documents([document], embedder, row.source, ChunkOptions(chunk_tokens, overlap_tokens)):
            questions.append(row.question)
            chunks.append(chunk.indexed_text)
            groups.append(row.title or row.source)
    return questions, chunks, groups


def hardest_negatives(
    model: SentenceTransformer, questions: list[str], chunks: list[str], groups: list[str]
) -> list[str]:
    """For each pair, the chunk of another document that `model` ranks highest for its question."""
    corpus = sorted(set(zip(chunks, groups, strict=True)))
    texts = [text for text, _ in corpus]
    scores = model.encode(questions, normalize_embeddings=True) @ model.encode(texts, normalize_embeddings=True).T
    pair_groups = np.array(groups)
    for column, (_, group) in enumerate(corpus):
        scores[pair_groups == group, column] = -np.inf  # never its own document
    return [texts[i] for i in scores.argmax(axis=1)]


def parse_args(argv: list[str] | None = None) -> tuple[RetrieverScriptArguments, RetrieverTrainingArguments]:
    parser = TrlParser((RetrieverScriptArguments, RetrieverTrainingArguments))
    # A few hundred pairs on a CPU: the settings measured on the filings corpus (benchmarks/README.md);
    # the loss logged every 5% of the steps, so that even a short run draws a curve.
    parser.set_defaults(learning_rate=3e-5, warmup_steps=0.1, save_strategy="no", logging_steps=0.05, report_to="none")
    return parser.parse_args_and_config(argv)


def load_evidence(
    script_args: RetrieverScriptArguments, seed: int, settings: Settings
) -> tuple[list[EvidenceRow], list[EvidenceRow], list[EvidenceRow]]:
    """Questions with their evidence: (training rows, held-out rows, every row); held-out questions
    are measured among all the evidence."""
    columns = parse_columns(script_args.columns) | ({"title": script_args.title_col} if script_args.title_col else {})
    data = load_qa_data(script_args.data, columns, token=settings.hub_token)
    parts = split_qa_data(data, script_args.test_size, seed)
    return evidence_rows(parts["train"]), evidence_rows(parts["test"]), evidence_rows(data)


def build_pairs(
    script_args: RetrieverScriptArguments, train_rows: list[EvidenceRow], embedder: SentenceEmbedding
) -> tuple[dict, list[str]]:
    """(anchor, positive[, negative]) columns, chunked with the base model's tokenizer as ingest would
    chunk them for it, and each pair's document (no batch holds two pairs of one document)."""
    questions, chunks, groups = training_pairs(
        train_rows, embedder, script_args.chunk_tokens, script_args.overlap_tokens
    )
    pairs = {"anchor": questions, "positive": chunks}
    if script_args.hard_negatives:
        pairs["negative"] = hardest_negatives(embedder.model, questions, chunks, groups)
    print(f"{len(questions)} pairs from {len(train_rows)} questions over {len(set(groups))} documents", flush=True)
    return pairs, groups


def tune(
    base: EmbeddingModel, pairs: dict, groups: list[str], args: RetrieverTrainingArguments
) -> tuple[Path, list[dict]]:
    """Train with in-batch negatives (MultipleNegativesRankingLoss) and save to `output_dir`;
    returns the folder and the trainer's log history."""
    model = SentenceTransformer(base.location, device="cpu" if args.use_cpu else None)
    args.batch_sampler = partial(OnePerDocumentBatchSampler, groups=groups)
    trainer = SentenceTransformerTrainer(
        model=model,
        args=args,
        train_dataset=Dataset.from_dict(pairs),
        loss=MultipleNegativesRankingLoss(model),
    )
    trainer.train()
    folder = Path(args.output_dir)
    model.save_pretrained(str(folder))
    return folder, trainer.state.log_history


def measure_tuned(
    folder: Path, held_out: list[EvidenceRow], everything: list[EvidenceRow], settings: Settings
) -> tuple[dict, float, dict]:
    """The tuned model's held-out metrics, and hybrid search's keyword weight chosen on the same
    questions (0 when keywords do not help) with its metrics; the weight is kept in the folder."""
    tuned = resolve_embedding_model(str(folder), settings)
    with evidence_store(settings, [*held_out, *everything], tuned, progress=True) as (store, _):
        after = rank_evidence(Retriever(store), held_out, progress=True)
        weight, tried = tune_keyword_weight(store, held_out, progress=True)
    (folder / RETRIEVAL_FILE).write_text(json.dumps({"keyword_weight": weight, "hybrid": tried[weight]}, indent=1))
    return after, weight, tried[weight]


def main(script_args: RetrieverScriptArguments, args: RetrieverTrainingArguments) -> dict:
    """Tune, measure, save and (with --push-to-hub) publish; returns {"before": metrics, "after":
    metrics, "pairs": n, "output_dir": folder, "commit": sha or None}."""
    settings = load_settings(hf_endpoint=script_args.hub_endpoint, hf_token=args.hub_token)
    push, args.push_to_hub = args.push_to_hub, False  # the finished model is pushed here, not by the Trainer
    if push:  # before any training: a missing repo or token, or a read-only token
        check_push_options(script_args.hub_repo, settings)
        check_write_access(script_args.hub_repo, settings)

    train_rows, held_out, everything = load_evidence(script_args, args.seed, settings)
    base = resolve_embedding_model(script_args.base_model, settings)
    pairs, groups = build_pairs(script_args, train_rows, SentenceEmbedding(base))
    before, _ = retrieval_metrics(settings, held_out, everything, base, progress=True)
    print(f"held-out ({len(held_out)} questions), {base}: {format_metrics(before)}", flush=True)
    folder, log_history = tune(base, pairs, groups, args)
    after, weight, hybrid = measure_tuned(folder, held_out, everything, settings)
    print(f"held-out ({len(held_out)} questions), tuned: {format_metrics(after)}", flush=True)
    print(f"hybrid, keyword weight {weight:g} (chosen on them): {format_metrics(hybrid)}", flush=True)
    curve = write_loss_curve(log_history, folder / "loss.png", f"retriever: {public_name(base.name)}")
    write_card_section(folder, base, before, after, len(held_out), len(pairs["anchor"]), curve, weight)

    commit = None
    if push:
        message = f"Tuned retriever: recall@5 {before['recall@5']:.3f} -> {after['recall@5']:.3f} on held-out questions"
        commit = push_folder(folder, script_args.hub_repo, settings, title=message)
        print(f"pushed {folder} to {script_args.hub_repo}@{commit[:12]}")
    return {
        "before": before,
        "after": after,
        "keyword_weight": weight,
        "pairs": len(pairs["anchor"]),
        "output_dir": str(folder),
        "commit": commit,
    }


def write_card_section(
    folder: Path,
    base: EmbeddingModel,
    before: dict,
    after: dict,
    held_out: int,
    pairs: int,
    curve: bool,
    keyword_weight: float,
) -> None:
    """Add the before/after table, the hybrid weight chosen (and the loss curve, when `curve`) to the
    card sentence-transformers wrote."""
    rows = "\n".join(
        f"| {key} | {before[key]:.3f} | {after[key]:.3f} |" for key in ("recall@1", "recall@5", "recall@10", "mrr")
    )
    section = (
        f"\n## Retrieval on held-out questions\n\nTuned from `{base.name}` on {pairs} (question, evidence chunk) "
        f"pairs with `train_job/retriever.py`; measured on {held_out} held-out questions, every question's "
        f"evidence in the collection, chunked as `qa_core.rag ingest` chunks it.\n\n"
        f"| metric | before | after |\n| --- | --- | --- |\n{rows}\n\n"
        f"Hybrid search's keyword weight, chosen on the same questions: {keyword_weight:g} (in `{RETRIEVAL_FILE}`; "
        "collections built with this model take it).\n"
    )
    if curve:
        section += "\n![training loss](loss.png)\n"
    card = folder / "README.md"
    card.write_text((card.read_text() if card.is_file() else "") + section)


if __name__ == "__main__":
    try:
        main(*parse_args())
    except QAError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
