"""Evaluate answers on held-out QA data: base vs fine-tuned vs engineered prompt vs RAG.

    python -m qa_core.evaluate --data qa_core/resources/sample_qa.csv --model demo --modes base,prompt,rag
    python -m qa_core.evaluate --data facts.csv --model smollm2 --adapter runs/smollm2-cpu/final \
        --modes base,finetuned --unanswerable 0.2    # with questions their context cannot answer
    python -m qa_core.evaluate --data policy_qa.csv --model NousResearch/Llama-2-7b-hf \
        --adapter your-name/policy-run@3f2a1c --modes base,finetuned,prompt,rag --out results/

Modes (all on the same questions, with batched generation):
- base: the base model (adapter switched off), in --prompt-style (default: the style the adapter
  was trained with);
- finetuned: the base with the adapter, same prompt;
- prompt: the best model (fine-tuned if an adapter is given) with an engineered prompt (--engineered-style,
  default the model's chat template with a system prompt);
- rag: the best model answering from the chunks retrieved for each question out of a collection of
  every context in the data (citations as in `python -m qa_core.rag ask`).
base, finetuned and prompt put each row's own context in the prompt (--context row, the default), as
training did, or ask the question alone (--context none, closed book).

Writes to --out: results.md and results.json (one row per mode), answers.csv (every answer, to read
the failures), comparison.png (the modes side by side).

With `--perplexity-text PATH...` (with or without --data) it measures the perplexity of the base model
and of base + adapter on domain text (files, folders or a dataset's text column; long documents with a
sliding window), writes perplexity.md/json and ends with `perplexity_base=<x> perplexity_finetuned=<y>`:

    python -m qa_core.evaluate --perplexity-text reports/ --model demo --adapter runs/tiny-cpu-pretrain/final

With `--adapter REPO --revisions all` it evaluates every checkpoint pushed by a training run
(`finetuned` mode, each checkpoint's step read from its checkpoint.json) and writes
checkpoints.md/json and checkpoints.png, the metrics against the training step.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from pathlib import Path

from datasets import Dataset
from tqdm.auto import tqdm

from qa_core import metrics
from qa_core.cli import MODEL_OVERRIDES, add_model_options, new_parser, run
from qa_core.config import Settings
from qa_core.data import load_qa_data, split_qa_data
from qa_core.documents import Document
from qa_core.errors import QAError
from qa_core.generation import GenerationSettings
from qa_core.grounding import check_figures
from qa_core.hub.checkpoints import pushed_checkpoints
from qa_core.hub.refs import ModelRef
from qa_core.models import LoadedModel, adapter_off, attach_adapter, load_model_for_cli
from qa_core.perplexity import DEFAULT_STRIDE, DEFAULT_WINDOW, compare_perplexity, reference_perplexity
from qa_core.prompts import STYLE_HELP, build_prompt
from qa_core.quantities import quantities
from qa_core.rag.answer import RagOptions, prepare
from qa_core.rag.retrieval import Retriever
from qa_core.rag.store import temporary_store
from qa_core.reports import write_checkpoint_results, write_perplexity_results, write_results
from qa_core.text_data import load_texts
from qa_core.unanswerable import NOT_STATED_ANSWER, with_unanswerable

MODES = ("base", "finetuned", "prompt", "rag")
CONTEXTS = ("row", "none")


def rag_prompts(
    loaded: LoadedModel, data: Dataset, contexts: list[str], settings: Settings, k: int
) -> tuple[list[str], list[list[str]]]:
    """Grounded prompts for every question, retrieving from an in-memory collection of `contexts`,
    and the texts of the chunks each prompt holds (what its answer's figures must come from)."""
    with temporary_store(settings) as store:
        for n, context in enumerate(dict.fromkeys(c for c in contexts if c.strip())):
            store.add_documents(f"context-{n}", [Document(context, f"context-{n}", "")], f"context-{n}")
        retriever = Retriever(store)
        prepared = [prepare(loaded, retriever, q, RagOptions(k=k)) for q in data["question"]]
    return [p.prompt for p in prepared], [p.grounds for p in prepared]


def _mean(values: list) -> float | None:
    """The mean of the values that apply (None: the metric does not apply to that question)."""
    applying = [float(v) for v in values if v is not None]
    return sum(applying) / len(applying) if applying else None


def figure_scores(answer: str, sources: list[str] | None, question: str) -> dict:
    """Whether the answer's figures are all in the `sources` it was grounded on (None when it states
    none, or was not grounded), and whether any is in none of them."""
    if not sources:
        return {"figures_supported": None, "unsupported_figure": None}
    check = check_figures(answer, sources, question)
    stated = bool(check.supported or check.flagged)
    return {
        "figures_supported": not check.flagged if stated else None,
        "unsupported_figure": check.flagged,
    }


def not_stated_scores(answer: str, reference: str) -> dict:
    """Whether the question is unanswerable (its reference says the context does not state it), and
    whether the answer says so or states a figure all the same."""
    return {
        "unanswerable": metrics.says_not_stated(reference),
        "says_not_stated": metrics.says_not_stated(answer),
        "states_figure": bool(quantities(answer)),
    }


def _share(per_question: list[dict], name: str, unanswerable: bool) -> float | None:
    """The mean of `name` over the unanswerable questions, or over the answerable ones (None if none)."""
    return _mean([q[name] for q in per_question if q["unanswerable"] == unanswerable])


def score_mode(
    answers: list[str],
    references: list[str],
    questions: list[str],
    grounds: list[list[str]] | None = None,
    similarity: bool = True,
) -> tuple[dict, list[dict]]:
    """The table row's metrics and per-question metrics for one mode's answers; with `grounds` (the
    texts each answer was grounded on), the figure check too; without `similarity`, no semantic
    similarity (None: it needs an embedding model, and a training run's scores do without it)."""
    similarity = metrics.semantic_similarity(answers, references) if similarity else [None] * len(answers)
    grounds = grounds or [None] * len(answers)
    per_question = []
    for answer, reference, question, sim, sources in zip(
        answers, references, questions, similarity, grounds, strict=True
    ):
        per_question.append(
            {
                "exact_figure": metrics.exact_figure(answer, reference, question),
                "contains_answer": metrics.contains_answer(answer, reference),
                "semantic_similarity": sim,
                "bleu": metrics.bleu(answer, reference),
                **metrics.rouge(answer, reference),
                "numeric_match": metrics.numeric_match(answer, reference, question),
                "refused": metrics.is_refusal(answer),
                **not_stated_scores(answer, reference),
                "answer_words": len(answer.split()),
                **figure_scores(answer, sources, question),
            }
        )
    bert = metrics.bertscore(answers, references)
    column = {name: [q[name] for q in per_question] for name in per_question[0]}
    row = {
        "exact_figure": _mean(column["exact_figure"]),
        "contains_answer": _mean(column["contains_answer"]),
        "semantic_similarity": _mean(similarity),
        "bleu": metrics.corpus_bleu(answers, references),
        **{name: _mean(column[name]) for name in metrics.ROUGE_KEYS},
        "bertscore": _mean(bert) if bert else None,
        "numeric_match": _mean(column["numeric_match"]),
        "refusal_rate": _mean(column["refused"]),
        # of the grounded answers that state a figure, the share whose figures are all in their sources;
        # of all grounded answers, the share with a figure in none of them
        "figures_supported": _mean(column["figures_supported"]),
        "unsupported_figure": _mean(column["unsupported_figure"]),
        # questions whose context cannot answer them: said so, or stated a figure anyway; and the
        # answerable ones wrongly said not stated
        "not_stated": _share(per_question, "says_not_stated", unanswerable=True),
        "figure_when_unanswerable": _share(per_question, "states_figure", unanswerable=True),
        "not_stated_when_answerable": _share(per_question, "says_not_stated", unanswerable=False),
        "answer_words": _mean(column["answer_words"]),
    }
    return row, per_question


def held_out_questions(
    rows: Dataset, limit: int | None, unanswerable: float, answer: str = NOT_STATED_ANSWER, seed: int = 42
) -> Dataset:
    """The questions evaluation asks of `rows` (a held-out split, or all the data): the first `limit`
    rows, then the unanswerable ones `with_unanswerable` makes from them (`unanswerable` of the
    rows returned), as training does with `seed`. So a run's answer scores (train_job/scoring.py)
    and `--limit N` here are the same answerable questions, with or without --unanswerable.

    Raises:
        QAError: `unanswerable` not in [0, 1).
    """
    if limit:
        rows = rows.select(range(min(limit, len(rows))))
    return with_unanswerable(rows, unanswerable, answer, seed)


def evaluate(
    loaded: LoadedModel,
    data: Dataset,
    modes: list[str],
    settings: Settings,
    generation: GenerationSettings | None = None,
    prompt_style: str = "auto",
    engineered_style: str = "auto",
    batch_size: int = 8,
    k: int = 3,
    contexts: list[str] | None = None,
    context: str = "row",
    show_progress: bool = False,
    similarity: bool = True,
) -> tuple[list[dict], list[dict]]:
    """Answer every question of `data` in each mode and score the answers. `context` `row` puts each
    row's own context in the prompts of base, finetuned and prompt (as training does), `none` asks
    the question alone; `rag` retrieves from `contexts` (default: the data's). `similarity` False
    leaves semantic similarity out (see `score_mode`).

    Returns:
        (one row per mode with its metrics, perplexity and latency; one row per question and mode).

    Raises:
        QAError: an unknown mode or context, or `finetuned` without an adapter.
    """
    unknown = sorted(set(modes) - set(MODES))
    if unknown:
        raise QAError(f"unknown mode(s) {unknown}; choose from {', '.join(MODES)}")
    if context not in CONTEXTS:
        raise QAError(f"unknown context {context!r}; choose {' or '.join(CONTEXTS)}")
    if "finetuned" in modes and not loaded.adapter:
        raise QAError("mode 'finetuned' needs --adapter")
    generation = generation or GenerationSettings(max_new_tokens=128)
    questions, references = list(data["question"]), list(data["answer"])
    given = list(data["context"]) if context == "row" else [None] * len(questions)
    rows, answers_out = [], []
    for mode in tqdm(modes, desc="evaluating", unit="mode", disable=not show_progress):
        if mode == "rag":
            prompts, grounds = rag_prompts(loaded, data, contexts or list(data["context"]), settings, k)
        else:
            grounds = [[c] if c else [] for c in given]
            # base and finetuned are asked as the adapter was trained; `prompt` tries another prompt.
            style, trained = (engineered_style, None) if mode == "prompt" else (prompt_style, loaded.prompt_style)
            prompts = [
                build_prompt(style, q, c, loaded.tokenizer, trained=trained)
                for q, c in zip(questions, given, strict=True)
            ]
        with adapter_off(loaded) if mode == "base" else contextlib.nullcontext():
            started = time.perf_counter()
            answers = loaded.backend.generate_many(prompts, generation, batch_size, show_progress)
            latency = (time.perf_counter() - started) / len(prompts)
            # a server returns text, not the log-probabilities of a given answer
            perplexity = reference_perplexity(loaded, prompts, references) if loaded.backend.scores_tokens else None
        row, per_question = score_mode(answers, references, questions, grounds, similarity)
        rows.append({"mode": mode, "n": len(questions), **row, "perplexity": perplexity, "latency_s": latency})
        for question, reference, answer, scores in zip(questions, references, answers, per_question, strict=True):
            answers_out.append({"mode": mode, "question": question, "reference": reference, "answer": answer, **scores})
    return rows, answers_out


def evaluate_checkpoints(
    loaded: LoadedModel, repo_id: str, data: Dataset, settings: Settings, generation: GenerationSettings, **options
) -> list[dict]:
    """Evaluate the `finetuned` mode at every checkpoint commit of `repo_id` (commits without a
    checkpoint record are not counted); one row per checkpoint, by step.

    Raises:
        QAError: the repo has no checkpoint commits, or cannot be listed (HubError).
    """
    rows = []
    for checkpoint in tqdm(pushed_checkpoints(repo_id, settings), desc="checkpoints", unit="commit"):
        attach_adapter(loaded, f"{repo_id}@{checkpoint.commit}", settings)
        (row,), _ = evaluate(loaded, data, ["finetuned"], settings, generation, **options)
        rows.append({"step": checkpoint.step, "commit": checkpoint.commit[:12], **row})
    return sorted(rows, key=lambda row: row["step"])


def cmd_evaluate(args: argparse.Namespace, settings: Settings) -> int:
    if not args.data and not args.perplexity_text:
        raise QAError("give --data (questions to answer), --perplexity-text (text to score), or both")
    # Everything the user gave is read and checked before the model is loaded.
    data = load_qa_data(args.data, args.columns, token=settings.hub_token) if args.data else None
    problems: list[str] = []
    texts = []
    if args.perplexity_text:
        texts = load_texts(args.perplexity_text, settings, args.text_column, problems)
    for problem in problems:
        print(f"warning: {problem}", file=sys.stderr)
    loaded = load_model_for_cli(args, settings)  # with a server, only the tokenizer: quick to refuse after
    if texts and not loaded.backend.scores_tokens:
        raise QAError("--perplexity-text scores every token with the model's weights: run it with --backend local")
    if data is not None:
        answer_questions(args, data, loaded, settings)
    if texts:
        row = compare_perplexity(loaded, texts, window=args.window, stride=args.stride, show_progress=True)
        title = f"Perplexity on {', '.join(args.perplexity_text)}"
        write_perplexity_results(row, Path(args.out), title, f"model: {loaded.description}")
        print((Path(args.out) / "perplexity.md").read_text())
        tuned = f"{row['perplexity_finetuned']:.4f}" if row["perplexity_finetuned"] else "n/a"
        print(f"perplexity_base={row['perplexity_base']:.4f} perplexity_finetuned={tuned}")
    return 0


def answer_questions(args: argparse.Namespace, data: Dataset, loaded: LoadedModel, settings: Settings) -> None:
    """The QA part of the command line: modes side by side, or every pushed checkpoint."""
    contexts = list(data["context"])  # RAG retrieves from every context, not only the test split's
    if args.split == "test":
        data = split_qa_data(data, args.test_size, args.seed)["test"]
    data = held_out_questions(data, args.limit, args.unanswerable, seed=args.seed)
    generation = GenerationSettings(max_new_tokens=args.max_new_tokens)
    options = {
        "prompt_style": args.prompt_style,
        "batch_size": args.batch_size,
        "context": args.context,
        "show_progress": True,
    }
    if args.revisions == "all":
        if not args.adapter:
            raise QAError("--revisions all needs --adapter REPO (the training run's Hub repo)")
        rows = evaluate_checkpoints(loaded, ModelRef.parse(args.adapter).repo_id, data, settings, generation, **options)
        write_checkpoint_results(rows, Path(args.out), f"{args.adapter}: checkpoints on {len(data)} questions")
        print((Path(args.out) / "checkpoints.md").read_text())
        return
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    rows, answers = evaluate(
        loaded,
        data,
        modes,
        settings,
        generation,
        engineered_style=args.engineered_style,
        k=args.k,
        contexts=contexts,
        **options,
    )
    asked = "with each row's own context" if args.context == "row" else "without context (closed book)"
    notes = [
        f"data: {args.data} ({args.split} split, {len(data)} questions); model: {loaded.description}",
        f"base, finetuned and prompt asked {asked}; rag retrieves from every context of the data",
    ]
    if rows[0]["bertscore"] is None:
        notes.append(f"BERTScore skipped: {metrics.BERTSCORE_MODEL} is not in the local Hugging Face cache")
    notes.append(
        "exact_figure and numeric_match average over questions whose reference states a figure the question "
        "does not; contains_answer: the whole reference is in the answer (for short answers)"
    )
    notes.append(
        "not_stated: of the questions whose reference says the context does not state it, the share answered so; "
        "figure_when_unanswerable: the share of them answered with a figure all the same; "
        "not_stated_when_answerable: the share of the others answered 'not stated'"
    )
    write_results(rows, answers, Path(args.out), "Answer quality by mode", notes)
    print((Path(args.out) / "results.md").read_text())


def build_parser() -> argparse.ArgumentParser:
    parser = new_parser("python -m qa_core.evaluate", __doc__)
    parser.add_argument("--data", help="QA CSV / JSONL / JSON file or Hugging Face dataset id")
    parser.add_argument("--columns", metavar="MAPPING", help="e.g. question=instruction,answer=output")
    parser.add_argument(
        "--split",
        choices=["test", "all"],
        default="test",
        help="evaluate on the held-out split (same seed as training) or every row",
    )
    parser.add_argument("--test-size", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--limit", type=int, help="at most this many questions of the data (the --unanswerable ones come on top)"
    )
    parser.add_argument(
        "--unanswerable",
        type=float,
        default=0.0,
        metavar="SHARE",
        help="add questions their context cannot answer, this share of all, as training's --unanswerable_share "
        "does; the not_stated column is the share of them answered 'not stated' (default: 0, none)",
    )
    add_model_options(parser)
    parser.add_argument("--modes", default="base,finetuned,prompt,rag", help=f"comma-separated: {', '.join(MODES)}")
    parser.add_argument(
        "--prompt-style", default="auto", choices=list(STYLE_HELP), help="prompt of base/finetuned (default: auto)"
    )
    parser.add_argument(
        "--engineered-style",
        default="auto",
        choices=list(STYLE_HELP),
        help="prompt of 'prompt' (default: the model's chat template, else qa; never the adapter's style)",
    )
    parser.add_argument(
        "--context",
        choices=CONTEXTS,
        default="row",
        help="row: base, finetuned and prompt get each row's own context, as in training (default) | none: closed book",
    )
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("-k", type=int, default=3, help="chunks retrieved in 'rag' mode")
    parser.add_argument("--revisions", choices=["all"], help="with a Hub --adapter: evaluate every pushed checkpoint")
    parser.add_argument(
        "--perplexity-text",
        nargs="+",
        metavar="PATH",
        help="perplexity of base and base + --adapter on these files / folders (.txt .md .pdf .csv) or dataset ids",
    )
    parser.add_argument("--text-column", help="text column of CSV files and datasets given to --perplexity-text")
    parser.add_argument("--window", type=int, default=DEFAULT_WINDOW, help="tokens per perplexity window")
    parser.add_argument("--stride", type=int, default=DEFAULT_STRIDE, help="tokens the perplexity window moves by")
    parser.add_argument(
        "--out", default="results", help="folder for results.md/json, answers.csv, comparison.png, perplexity.md/json"
    )
    parser.set_defaults(run=cmd_evaluate)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the evaluation command line; returns the exit status (2 for bad input)."""
    return run(build_parser(), argv, overrides=MODEL_OVERRIDES)


if __name__ == "__main__":
    sys.exit(main())
