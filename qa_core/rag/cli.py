"""RAG from the command line: ingest documents into Chroma, search them, answer with citations.

    python -m qa_core.rag ingest reports/ policy.pdf --collection filings
    python -m qa_core.rag ingest faq.csv --text-column answer --title-column topic
    python -m qa_core.rag query "What was the CET1 ratio?" -k 5 [--hybrid] [--json]
    python -m qa_core.rag ask "What was the CET1 ratio?" [--mode answer-then-retrieve] [--model ID]
    python -m qa_core.rag list | delete --source reports/q3.pdf | reset
    python -m qa_core.rag eval --csv qa_core/resources/sample_qa.csv --title-col doc_name --json
    python -m qa_core.rag eval --csv held_out.csv --title-col doc_name --tune-hybrid --collection filings
    python -m qa_core.rag reindex --collection filings --embedding-model runs/retriever
    python -m qa_core.rag --collection filings push your-name/filings-index [--private]
    python -m qa_core.rag --collection filings pull your-name/filings-index[@REV] [--reembed]

The database is the folder QA_CHROMA_PATH (default ./chroma_db), or the Chroma server at
QA_CHROMA_URL; the collection is --collection or QA_COLLECTION (default "documents"); the
embedding model is --embedding-model or QA_EMBEDDING_MODEL (a folder or Hub REPO[@REV]; default:
the bundled all-MiniLM-L6-v2), and a collection only opens with the model it was built with.
"""

from __future__ import annotations

import argparse
import json
import sys

from qa_core.chunking import DEFAULT_CHUNK_TOKENS, DEFAULT_OVERLAP_TOKENS
from qa_core.cli import MODEL_OVERRIDES, add_command, add_model_options, new_parser, run
from qa_core.config import Settings
from qa_core.documents import NO_TEXT_COLUMN
from qa_core.embeddings import DEFAULT_EMBEDDING_MODEL
from qa_core.rag import MODES
from qa_core.rag.ingest import ingest
from qa_core.rag.store import RagStore


def _preview(text: str, width: int = 160) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def cmd_ingest(args: argparse.Namespace, settings: Settings) -> int:
    store = RagStore(settings, args.collection)
    report = ingest(
        store,
        args.paths,
        None,
        args.text_column,
        args.title_column,
        args.chunk_tokens,
        args.overlap_tokens,
        progress=True,
    )
    for problem in report.problems:
        print(f"skipped: {problem}", file=sys.stderr)
    if any(NO_TEXT_COLUMN in problem for problem in report.problems):
        print("tip: name a CSV's text column with --text-column", file=sys.stderr)
    print(f"{store.name}: {report.summary()}; {store.count()} chunks stored")
    return 1 if report.problems and not (report.added or report.unchanged) else 0


def cmd_query(args: argparse.Namespace, settings: Settings) -> int:
    from qa_core.rag.retrieval import Retriever

    hits = Retriever(RagStore(settings, args.collection)).search(args.question, args.k, args.hybrid)
    if args.json:
        print(json.dumps([hit.to_dict() for hit in hits]))
    for n, hit in enumerate(hits if not args.json else [], start=1):
        print(f"[{n}] {hit.score:.3f}  {hit.label}\n    {_preview(hit.text)}")
    return 0


def cmd_ask(args: argparse.Namespace, settings: Settings) -> int:
    from qa_core.prompts import check_question

    check_question(args.question)  # before the model and the index take seconds to load
    from qa_core.generation import GenerationSettings
    from qa_core.models import load_model_for_cli
    from qa_core.rag.answer import RagOptions, answer, default_mode
    from qa_core.rag.retrieval import Retriever

    retriever = Retriever(RagStore(settings, args.collection))
    loaded = None if args.mode == "extractive" else load_model_for_cli(args, settings)  # quoting needs no model
    generation = GenerationSettings(max_new_tokens=args.max_new_tokens)
    mode = args.mode or default_mode(loaded)
    options = RagOptions(mode, args.k, args.hybrid, args.prompt_style, generation)
    result = answer(loaded, retriever, args.question, options, settings.unsupported)
    if args.json:
        print(json.dumps(result.to_dict()))
        return 0
    warning = result.grounded.warning
    if warning:
        print(f"warning: {warning}", file=sys.stderr)
    print(result.answer)
    print(f"\n{result.citations}")
    return 0


def cmd_list(args: argparse.Namespace, settings: Settings) -> int:
    store = RagStore(settings, args.collection)
    entries = store.sources()
    for entry in entries:
        print(f"{entry['source']}\t{entry['chunks']} chunks\t{entry['title']}")
    summary = f"{store.name}: {len(entries)} document(s), {store.count()} chunks, embedded with {store.embedder.pinned}"
    print(summary, file=sys.stderr)
    return 0


def cmd_reindex(args: argparse.Namespace, settings: Settings) -> int:
    from qa_core.rag.ingest import reindex

    before, store = reindex(settings, args.collection, progress=True)
    print(f"{store.name}: {store.count()} chunks re-embedded with {store.embedder.pinned} (built with {before} before)")
    return 0


def cmd_delete(args: argparse.Namespace, settings: Settings) -> int:
    store = RagStore(settings, args.collection)
    print(f"{args.source}: {store.delete(args.source)} chunks deleted from {store.name}")
    return 0


def cmd_reset(args: argparse.Namespace, settings: Settings) -> int:
    store = RagStore(settings, args.collection)
    count = store.count()
    store.reset()
    print(f"{store.name}: reset, {count} chunks deleted")
    return 0


def cmd_push(args: argparse.Namespace, settings: Settings) -> int:
    from qa_core.rag.published import describe, push_collection

    store = RagStore(settings, args.collection)
    print(describe(push_collection(store, args.repo, settings, args.private or None, progress=True), pushed=True))
    return 0


def cmd_pull(args: argparse.Namespace, settings: Settings) -> int:
    from qa_core.rag.published import describe, pull_collection

    transfer = pull_collection(args.repo, settings, args.collection, args.reembed, progress=True)
    print(describe(transfer, pushed=False))
    return 0


def cmd_eval(args: argparse.Namespace, settings: Settings) -> int:
    from qa_core.rag.evaluate import evaluate_retrieval, format_metrics, read_questions_and_corpus, tune_hybrid

    embedded = settings.embedding_model or DEFAULT_EMBEDDING_MODEL
    if args.tune_hybrid:
        columns = (args.question_col, args.evidence_col, args.title_col)
        questions, corpus = read_questions_and_corpus(args.csv, *columns, args.corpus)
        weight, tried = tune_hybrid(settings, questions, corpus, args.distractors, True)
        for tried_weight, metrics in tried.items():
            print(f"keyword weight {tried_weight:g}: {format_metrics(metrics)}")
        print(f"{args.csv} ({embedded}, {tried[weight]['n']} questions): best keyword weight {weight:g}")
        if args.collection:
            RagStore(settings, args.collection).record_keyword_weight(weight)
            print(f"{args.collection}: hybrid search now weighs keywords {weight:g}")
        else:
            print("to use it, run again with --collection NAME: that collection's hybrid search then takes it")
        if args.json:
            print(json.dumps({"keyword_weight": weight, **tried[weight]}))
        return 0
    metrics, report = evaluate_retrieval(
        settings,
        args.csv,
        args.question_col,
        args.evidence_col,
        args.title_col,
        args.distractors,
        args.hybrid,
        True,
        args.corpus,
    )
    for problem in report.problems:
        print(f"skipped distractor: {problem}", file=sys.stderr)
    mode = "hybrid" if args.hybrid else "dense"
    print(f"{args.csv} ({mode}, {embedded}, {metrics['n']} questions): {format_metrics(metrics)}")
    if args.json:
        print(json.dumps(metrics))
    return 0


def shared_options(parser: argparse.ArgumentParser, default) -> None:
    parser.add_argument(
        "--collection", default=default(None), help="Chroma collection (default: QA_COLLECTION or 'documents')"
    )
    parser.add_argument(
        "--embedding-model",
        default=default(None),
        metavar="FOLDER_OR_REPO[@REV]",
        help="sentence-embedding model (default: QA_EMBEDDING_MODEL, else the bundled all-MiniLM-L6-v2)",
    )


def add_ingest(commands: argparse._SubParsersAction) -> None:
    ingest = add_command(commands, "ingest", "add .txt, .md, .pdf, .csv files and folders of them", shared_options)
    ingest.add_argument("paths", nargs="+", metavar="PATH", help="files and folders (walked recursively)")
    ingest.add_argument("--text-column", help="CSV column holding each row's text (default: text, content, ...)")
    ingest.add_argument("--title-column", help="CSV column naming each row's document (default: title, doc_name, ...)")
    ingest.add_argument(
        "--chunk-tokens",
        type=int,
        default=DEFAULT_CHUNK_TOKENS,
        help=f"most tokens per chunk (default {DEFAULT_CHUNK_TOKENS}; never more than the embedding model reads)",
    )
    ingest.add_argument(
        "--overlap-tokens",
        type=int,
        default=DEFAULT_OVERLAP_TOKENS,
        help=f"tokens shared by neighbouring chunks (default {DEFAULT_OVERLAP_TOKENS})",
    )
    ingest.set_defaults(run=cmd_ingest)


def add_question_command(commands: argparse._SubParsersAction, name: str, help: str) -> argparse.ArgumentParser:
    """`query` or `ask`: a question, how many chunks, dense or hybrid, text or JSON."""
    command = add_command(commands, name, help, shared_options)
    command.add_argument("question")
    command.add_argument("-k", type=int, default=5, help="chunks to retrieve (default 5)")
    command.add_argument("--hybrid", action="store_true", help="fuse keyword (BM25) and dense rankings")
    command.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    return command


def add_ask(commands: argparse._SubParsersAction) -> None:
    from qa_core.prompts import STYLE_HELP

    ask = add_question_command(commands, "ask", "answer a question from the documents, with citations")
    ask.add_argument(
        "--mode",
        choices=MODES,
        help=f"{MODES[0]}: retrieve, then the model answers from the chunks | {MODES[1]}: the model drafts "
        f"an answer, retrieves with it, then answers | {MODES[2]}: quote the chunks' best sentence, no "
        f"model (default: what answers best for the model, as measured: {MODES[2]} under 1 B parameters, "
        f"else {MODES[0]})",
    )
    add_model_options(ask)
    ask.add_argument("--prompt-style", default="auto", choices=list(STYLE_HELP), help="prompt style")
    ask.add_argument("--max-new-tokens", type=int, default=256, help="longest answer (default 256)")
    ask.set_defaults(run=cmd_ask)


def add_eval(commands: argparse._SubParsersAction) -> None:
    evaluate = add_command(commands, "eval", "recall@k and MRR of each question's own evidence", shared_options)
    evaluate.add_argument("--csv", required=True, help="CSV with a question and an evidence column")
    evaluate.add_argument("--question-col", default="question")
    evaluate.add_argument("--evidence-col", default="evidence_text")
    evaluate.add_argument("--title-col", help="column naming each evidence's document (embedded as its header)")
    evaluate.add_argument("--distractors", nargs="*", default=[], metavar="PATH", help="other documents to add")
    evaluate.add_argument(
        "--corpus", nargs="*", default=[], metavar="CSV", help="CSVs whose evidence is indexed too (same columns)"
    )
    evaluate.add_argument("--hybrid", action="store_true", help="fuse keyword (BM25) and dense rankings")
    evaluate.add_argument(
        "--tune-hybrid",
        action="store_true",
        help="choose hybrid search's keyword weight on these (held-out) questions; with --collection, keep it there",
    )
    evaluate.add_argument("--json", action="store_true", help="last line: one JSON object of the metrics")
    evaluate.set_defaults(run=cmd_eval)


def build_parser() -> argparse.ArgumentParser:
    parser = new_parser("python -m qa_core.rag", __doc__, shared_options)
    commands = parser.add_subparsers(dest="command", required=True)
    add_ingest(commands)
    add_question_command(commands, "query", "show the chunks that best match a question").set_defaults(run=cmd_query)
    add_ask(commands)
    add_command(commands, "list", "list stored documents", shared_options).set_defaults(run=cmd_list)
    delete = add_command(commands, "delete", "delete one document's chunks", shared_options)
    delete.add_argument("--source", required=True, help="the document's name as `list` shows it")
    delete.set_defaults(run=cmd_delete)
    add_command(commands, "reset", "delete every chunk of the collection", shared_options).set_defaults(run=cmd_reset)
    reindex = add_command(
        commands, "reindex", "re-embed a collection's stored chunks with --embedding-model", shared_options
    )
    reindex.set_defaults(run=cmd_reindex)
    add_eval(commands)
    push = add_command(commands, "push", "publish the collection as a Hub dataset (one commit)", shared_options)
    push.add_argument("repo", metavar="OWNER/NAME", help="the dataset repo (created if needed)")
    push.add_argument("--private", action="store_true", help="create the repo private")
    push.set_defaults(run=cmd_push)
    pull = add_command(commands, "pull", "fill the collection from a published one, embedding nothing", shared_options)
    pull.add_argument("repo", metavar="OWNER/NAME[@REV]", help="the dataset repo, at a branch, tag or commit")
    pull.add_argument(
        "--reembed", action="store_true", help="embed its texts with this side's model (built with another)"
    )
    pull.set_defaults(run=cmd_pull)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the RAG command line; returns the exit status (2 for bad input or settings)."""
    return run(build_parser(), argv, overrides=("embedding_model", *MODEL_OVERRIDES))
