"""Turn documents into question-answer pairs with a model: training data for a domain model.

    python -m qa_core.synth --docs reports/ --model demo --out pairs.csv
    python -m qa_core.synth --docs filings/ manual.pdf --model Qwen/Qwen2.5-7B-Instruct --quantization 4bit \
        --per-chunk 3 --batch-size 16 --out pairs.csv --resume

Documents are read and chunked exactly as RAG ingestion reads and chunks them (.txt, .md, .pdf
pages, .csv rows). For every chunk the model is asked (batched; in its chat template when it has
one, see --prompt-style) for N pairs in this format and nothing else:

    Q: <a question the text answers>
    A: <the answer, in the text's own words and figures>

Output in any other shape is skipped and counted as malformed, never fatal. A pair is kept when its
question is new (not a copy of one already written, ignoring case and punctuation) and the chunk
supports it: every number in the answer appears in the chunk, and question plus answer are close to
the chunk in meaning (cosine similarity of their embeddings at least --min-support).

Rows are appended to --out as each batch finishes and OUT.progress.jsonl records the chunks done,
so after a crash `--resume` goes on where it stopped. The progress file also records the recipe
(model and adapter with their commits, generation, judging, chunking and embedding options), and
`--resume` with another recipe is refused, naming what differs, so one file never mixes the pairs
of two models. The CSV's columns are question, answer,
evidence_text, doc_name (and source: file and page), which train_job/run.py, qa_core.evaluate and
train_job/retriever.py read as they are. The last line sums up the whole file:
`chunks=<n> kept=<n> malformed=<n> duplicates=<n> unsupported=<n>`.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tqdm.auto import tqdm

from qa_core import metrics
from qa_core.chunking import DEFAULT_CHUNK_TOKENS, DEFAULT_OVERLAP_TOKENS, Chunk, ChunkOptions, chunk_documents
from qa_core.cli import MODEL_OVERRIDES, add_model_options, new_parser, run
from qa_core.config import Settings
from qa_core.documents import read_sources
from qa_core.embeddings import SentenceEmbedding, resolve_embedding_model
from qa_core.errors import QAError
from qa_core.generation import GenerationSettings
from qa_core.models import LoadedModel, load_model_for_cli
from qa_core.prompts import STYLE_HELP, build_prompt

COLUMNS = ("question", "answer", "evidence_text", "doc_name", "source")
SYSTEM = "You write exam questions and answers from documents, exactly in the format asked for."
INSTRUCTION = (
    "Write {n} question-answer pairs about the text in the context. Each question must be answerable "
    "from the text alone and name what it asks about (the company, report or period), not 'the text'. "
    "Each answer must be short and use the text's own words and figures. "
    "Write exactly {n} pairs in this format and nothing else:\nQ: <question>\nA: <answer>"
)
DEFAULT_MIN_SUPPORT = 0.4
# A line that opens a question or an answer: "Q:", "Question 2:", "1. Q:", "**A.**" ...
LABEL = re.compile(r"^\s*(?:\d+[.)]\s*)?[*#_\s]*(Q|Question|A|Answer)\s*\d*\s*[:.)][*_]*\s*(.*)$", re.IGNORECASE)
# An answer written on its question's line: "Q: What was revenue? A: $4.2 billion"
INLINE_ANSWER = re.compile(r"(?<=[?.])\s+[*_]*(A|Answer)\s*\d*\s*:[*_]*\s+", re.IGNORECASE)
LIST_NUMBER = re.compile(r"^\s*\d{1,3}[.)]\s+")  # "1. What was …": the model numbering its list


@dataclass
class SynthOptions:
    """What to ask for and what to keep."""

    per_chunk: int = 3
    batch_size: int = 8
    prompt_style: str = "auto"
    min_support: float = DEFAULT_MIN_SUPPORT
    generation: GenerationSettings = field(default_factory=GenerationSettings)


@dataclass
class SynthStats:
    """Counts over the whole output file: chunks done, pairs kept, and pairs asked for but lost."""

    chunks: int = 0
    kept: int = 0
    malformed: int = 0
    duplicates: int = 0
    unsupported: int = 0

    def add(self, other: SynthStats) -> None:
        for name, value in asdict(other).items():
            setattr(self, name, getattr(self, name) + value)

    def summary(self) -> str:
        return " ".join(f"{name}={value}" for name, value in asdict(self).items())


def read_chunks(
    paths: Sequence[str],
    settings: Settings,
    problems: list[str],
    chunk_tokens: int = DEFAULT_CHUNK_TOKENS,
    overlap_tokens: int = DEFAULT_OVERLAP_TOKENS,
) -> tuple[list[Chunk], SentenceEmbedding]:
    """Read and chunk every document under `paths` as RAG ingestion does.

    Returns:
        (the chunks in document order, the embedder that measured them, used again for support).

    Raises:
        QAError: no document could be read (`problems` says why for each file).
    """
    embedder = SentenceEmbedding(resolve_embedding_model(settings.embedding_model, settings))  # as ingest
    chunks: list[Chunk] = []
    for file, docs in read_sources(paths, settings.max_file_bytes, problems):
        chunks += chunk_documents(docs, embedder, file.fingerprint(), ChunkOptions(chunk_tokens, overlap_tokens))
    if not chunks:
        raise QAError(f"no text to generate pairs from in {', '.join(paths)}: " + "; ".join(problems or ["empty"]))
    return chunks, embedder


def synth_prompt(loaded: LoadedModel, chunk: Chunk, options: SynthOptions) -> str:
    """The request for `options.per_chunk` pairs about `chunk` (its document named in the context)."""
    instruction = INSTRUCTION.format(n=options.per_chunk)
    return build_prompt(
        options.prompt_style, instruction, chunk.indexed_text, loaded.tokenizer, SYSTEM, trained=loaded.prompt_style
    )


def parse_pairs(output: str, limit: int) -> list[tuple[str, str]]:
    """The (question, answer) pairs in `output`, at most `limit`, in order.

    A pair is a question label line followed by an answer label line; lines without a label continue
    the field above them. A question without an answer, or an empty field, is not a pair.
    """
    pairs: list[tuple[str, str]] = []
    question: list[str] | None = None
    answer: list[str] | None = None

    def close() -> None:
        if question is not None and answer is not None:
            q, a = (LIST_NUMBER.sub("", " ".join(field)).strip() for field in (question, answer))
            if q and a:
                pairs.append((q, a))

    for line in INLINE_ANSWER.sub(r"\nA: ", output).splitlines():
        match = LABEL.match(line)
        if match and match.group(1).lower().startswith("q"):
            close()
            question, answer = [match.group(2)], None
        elif match and question is not None and answer is None:
            answer = [match.group(2)]
        elif line.strip() and (answer if answer is not None else question) is not None:
            (answer if answer is not None else question).append(line.strip())
    close()
    return pairs[:limit]


def question_key(question: str) -> str:
    """What two questions share when one is a copy of the other: lower-case words, no punctuation,
    no list number in front."""
    return " ".join(re.findall(r"\w+", LIST_NUMBER.sub("", question).lower()))


def supported(pair: tuple[str, str], chunk_text: str, similarity: float, min_support: float) -> bool:
    """Every number of the answer is in the chunk, the pair is close enough to it in meaning, and the
    answer says something the question does not (a question, or the question again, answers nothing)."""
    question, answer = pair
    numbers_found = metrics.numeric_match(chunk_text, answer)  # share of the answer's numbers in the chunk
    says_something = not answer.rstrip().endswith("?") and metrics.normalise(answer) not in metrics.normalise(question)
    return similarity >= min_support and numbers_found in (None, 1.0) and says_something


class PairFile:
    """The output CSV and its progress file: which chunks are done, which questions are written.

    Rows are appended and flushed to disk batch by batch; a chunk is marked done only after its rows
    are on disk, so a crash loses at most the batch in flight (`--resume` redoes it, and its pairs
    already written are then dropped as duplicates)."""

    def __init__(self, out: Path, resume: bool, overwrite: bool) -> None:
        self.out, self.progress = out, out.with_name(out.name + ".progress.jsonl")
        self.done: set[str] = set()
        self.seen: set[str] = set()
        self.totals = SynthStats()
        self.recipe: dict | None = None  # how the pairs were made, once recorded
        exists = out.exists() and out.stat().st_size > 0
        if exists and not (resume or overwrite):
            raise QAError(f"{out} exists: --resume to go on adding to it, or --overwrite to start again")
        if exists and resume:
            self._load()
        else:
            out.parent.mkdir(parents=True, exist_ok=True)
            with out.open("w", newline="", encoding="utf-8") as f:
                csv.writer(f).writerow(COLUMNS)
            self.progress.unlink(missing_ok=True)

    def _load(self) -> None:
        with self.out.open(newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            if tuple(reader.fieldnames or ()) != COLUMNS:
                raise QAError(f"{self.out}: not a file this command wrote (columns {reader.fieldnames}); cannot resume")
            self.seen = {question_key(row["question"]) for row in reader}
        if self.progress.is_file():
            for line in self.progress.read_text(encoding="utf-8").splitlines():
                entry = json.loads(line) if line.strip() else {}
                if "recipe" in entry:
                    self.recipe = entry["recipe"]
                elif entry:
                    self.done.add(entry.pop("chunk"))
                    self.totals.add(SynthStats(chunks=1, **entry))

    def start(self, recipe: dict) -> None:
        """Record `recipe` (JSON values) as how the file's pairs are made, or check it is the one recorded.

        Raises:
            QAError: the file was made with another recipe; the message names what differs.
        """
        if self.recipe is None:
            self._append_progress([{"recipe": recipe}])
            self.recipe = recipe
        elif self.recipe != recipe:
            differs = [
                f"{key} {self.recipe.get(key)!r}, now {recipe.get(key)!r}"
                for key in sorted(self.recipe.keys() | recipe.keys())
                if self.recipe.get(key) != recipe.get(key)
            ]
            raise QAError(
                f"{self.out} was made with another recipe ({'; '.join(differs)}): resume with the same "
                "model and options, or write to another --out (or --overwrite)"
            )

    def _append_progress(self, entries: list[dict]) -> None:
        with self.progress.open("a", encoding="utf-8") as f:
            f.writelines(json.dumps(entry) + "\n" for entry in entries)
            f.flush()
            os.fsync(f.fileno())

    def append(self, rows: list[dict], finished: list[tuple[str, SynthStats]]) -> None:
        """Write `rows`, then mark the `finished` chunks (id, their counts) done."""
        with self.out.open("a", newline="", encoding="utf-8") as f:
            csv.DictWriter(f, fieldnames=COLUMNS).writerows(rows)
            f.flush()
            os.fsync(f.fileno())
        entries = []
        for chunk_id, stats in finished:
            entries.append({"chunk": chunk_id, **{k: v for k, v in asdict(stats).items() if k != "chunks"}})
            self.totals.add(stats)
        self._append_progress(entries)


def synthesize(
    loaded: LoadedModel,
    chunks: list[Chunk],
    embedder: SentenceEmbedding,
    pair_file: PairFile,
    options: SynthOptions,
    show_progress: bool = False,
) -> str | None:
    """Ask the model for pairs about every chunk not done yet, keep the good ones, append them.

    Returns:
        One raw model output that held no pair at all (to show what the model writes), or None.
    """
    pending = [chunk for chunk in chunks if chunk.id not in pair_file.done]
    example_malformed = None
    bar = tqdm(total=len(pending), desc="generating pairs", unit="chunk", disable=not show_progress)
    for start in range(0, len(pending), options.batch_size):
        batch = pending[start : start + options.batch_size]
        prompts = [synth_prompt(loaded, chunk, options) for chunk in batch]
        outputs = loaded.backend.generate_many(prompts, options.generation, options.batch_size)
        rows, finished = [], []
        for chunk, output in zip(batch, outputs, strict=True):
            kept, stats = judge(output, chunk, pair_file.seen, embedder, options)
            if stats.malformed == options.per_chunk and example_malformed is None:
                example_malformed = output
            rows += kept
            finished.append((chunk.id, stats))
        pair_file.append(rows, finished)
        bar.update(len(batch))
    bar.close()
    return example_malformed


def judge(
    output: str, chunk: Chunk, seen: set[str], embedder: SentenceEmbedding, options: SynthOptions
) -> tuple[list[dict], SynthStats]:
    """Parse one output about `chunk` and sort its pairs: kept (their keys added to `seen`),
    duplicates of a question in `seen`, unsupported by the chunk; the pairs asked for but not
    found in the format count as malformed.

    Returns:
        (the CSV rows of the kept pairs, the counts for this chunk).
    """
    pairs = parse_pairs(output, options.per_chunk)
    stats = SynthStats(chunks=1, malformed=options.per_chunk - len(pairs))
    if not pairs:
        return [], stats
    *pair_vectors, chunk_vector = embedder([f"{q} {a}" for q, a in pairs] + [chunk.text])  # normalised
    similarity = [float(vector @ chunk_vector) for vector in pair_vectors]
    rows = []
    for (question, answer), score in zip(pairs, similarity, strict=True):
        key = question_key(question)
        if key in seen:
            stats.duplicates += 1
        elif not supported((question, answer), chunk.text, score, options.min_support):
            stats.unsupported += 1
        else:
            seen.add(key)
            stats.kept += 1
            rows.append(_row(question, answer, chunk))
    return rows, stats


def _row(question: str, answer: str, chunk: Chunk) -> dict:
    page = chunk.metadata.get("page")
    source = chunk.metadata["source"] + (f" p.{page}" if page else "")
    return {
        "question": question,
        "answer": answer,
        "evidence_text": chunk.text,
        "doc_name": chunk.metadata["title"],
        "source": source,
    }


def recipe(loaded: LoadedModel, options: SynthOptions, embedder: SentenceEmbedding, args: argparse.Namespace) -> dict:
    """Everything that decides which pairs a run writes, as JSON values (see `PairFile.start`)."""
    return {
        "model": loaded.name,
        "model_commit": loaded.commit,
        "adapter": loaded.adapter,
        "adapter_commit": loaded.adapter_commit,
        "quantization": loaded.quantization,
        **loaded.backend.recipe(),  # the server and the name the model is served as, when one generates
        "prompt_style": options.prompt_style,
        "per_chunk": options.per_chunk,
        "max_new_tokens": options.generation.max_new_tokens,
        "temperature": options.generation.temperature,
        "min_support": options.min_support,
        "embedding_model": str(embedder.pinned),
        "chunk_tokens": args.chunk_tokens,
        "overlap_tokens": args.overlap_tokens,
    }


def cmd_synth(args: argparse.Namespace, settings: Settings) -> int:
    if args.per_chunk < 1 or args.batch_size < 1:
        raise QAError("--per-chunk and --batch-size must be at least 1")
    problems: list[str] = []
    chunks, embedder = read_chunks(args.docs, settings, problems, args.chunk_tokens, args.overlap_tokens)
    for problem in problems:
        print(f"warning: {problem}", file=sys.stderr)
    pair_file = PairFile(Path(args.out), args.resume, args.overwrite)
    already = sum(chunk.id in pair_file.done for chunk in chunks)
    print(f"{len(chunks)} chunks from {len(args.docs)} path(s); {already} done before", file=sys.stderr)
    loaded = load_model_for_cli(args, settings)
    options = SynthOptions(
        per_chunk=args.per_chunk,
        batch_size=args.batch_size,
        prompt_style=args.prompt_style,
        min_support=args.min_support,
        generation=GenerationSettings(
            max_new_tokens=args.max_new_tokens or 80 * args.per_chunk, temperature=args.temperature
        ),
    )
    pair_file.start(recipe(loaded, options, embedder, args))
    example = synthesize(loaded, chunks, embedder, pair_file, options, show_progress=True)
    totals = pair_file.totals
    if example is not None and totals.kept == 0:
        print(f"warning: no pair kept; the model wrote, for example:\n{example[:400]!r}", file=sys.stderr)
    print(f"wrote {args.out}: {totals.summary()}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = new_parser("python -m qa_core.synth", __doc__)
    parser.add_argument(
        "--docs", nargs="+", required=True, metavar="PATH", help="files or folders of .txt .md .pdf .csv"
    )
    parser.add_argument("--out", required=True, metavar="CSV", help="where the pairs go (appended batch by batch)")
    add_model_options(parser)
    parser.add_argument("--per-chunk", type=int, default=3, help="pairs asked for per chunk (default 3)")
    parser.add_argument("--batch-size", type=int, default=8, help="chunks per generation batch (default 8)")
    parser.add_argument(
        "--prompt-style", default="auto", choices=list(STYLE_HELP), help="how the request is written (default auto)"
    )
    parser.add_argument("--max-new-tokens", type=int, help="longest output per chunk (default 80 per pair)")
    parser.add_argument("--temperature", type=float, default=0.0, help="0 is greedy and deterministic (default 0)")
    parser.add_argument(
        "--min-support",
        type=float,
        default=DEFAULT_MIN_SUPPORT,
        help=f"least cosine similarity of question + answer to the chunk (default {DEFAULT_MIN_SUPPORT})",
    )
    parser.add_argument("--chunk-tokens", type=int, default=DEFAULT_CHUNK_TOKENS, help="largest chunk, in tokens")
    parser.add_argument("--overlap-tokens", type=int, default=DEFAULT_OVERLAP_TOKENS, help="overlap between chunks")
    done = parser.add_mutually_exclusive_group()
    done.add_argument("--resume", action="store_true", help="go on with an existing --out, skipping chunks done")
    done.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    parser.set_defaults(run=cmd_synth)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status (2 for bad input)."""
    return run(build_parser(), argv, overrides=MODEL_OVERRIDES)


if __name__ == "__main__":
    sys.exit(main())
