"""Command line: ask a question, or check a QA data file before training on it.

    python -m qa_core ask "What is a bond?"
    python -m qa_core ask "What is the maximum fine?" --context-file policy.txt --stream
    python -m qa_core ask "What is a bond?" --model Qwen/Qwen2.5-0.5B-Instruct --adapter me/qa-lora@4f1c2ab
    python -m qa_core ask "What is a bond?" --backend openai --openai-base-url http://127.0.0.1:8000/v1
    python -m qa_core check-data data.csv --columns question=q,answer=a

Settings not given as flags come from the environment and `.env` (see `.env.example`).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from qa_core.cli import MODEL_OVERRIDES, add_command, add_model_options, new_parser, run
from qa_core.config import Settings, setting_option
from qa_core.errors import QAError


def _read_context(args: argparse.Namespace) -> str | None:
    if args.context_file is None:
        return args.context
    if args.context_file == "-":
        return sys.stdin.read()
    path = Path(args.context_file)
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise QAError(f"--context-file {path}: cannot read it as UTF-8 text ({exc})") from exc


def cmd_ask(args: argparse.Namespace, settings: Settings) -> int:
    from qa_core.prompts import check_question

    check_question(args.question)  # before torch is imported and the model loaded, which take seconds
    from qa_core.generation import GenerationSettings
    from qa_core.models import load_model_for_cli
    from qa_core.qa import ask, ask_stream, qa_prompt

    context = _read_context(args)
    loaded = load_model_for_cli(args, settings)
    if args.show_prompt:
        print(f"prompt:\n{qa_prompt(loaded, args.question, context, args.prompt_style)}", file=sys.stderr)
    generation = GenerationSettings(
        max_new_tokens=args.max_new_tokens, temperature=args.temperature, repetition_penalty=args.repetition_penalty
    )
    if args.stream and not args.json:
        answer = ""
        for piece in ask_stream(loaded, args.question, context, args.prompt_style, generation):
            answer += piece
            print(piece, end="", flush=True)
        print()
    else:
        answer = ask(loaded, args.question, context, args.prompt_style, generation)
    result = {"question": args.question, "answer": answer}
    if context is not None:  # a grounded answer: its figures looked up in the context (QA_UNSUPPORTED)
        result = {**result, **check_grounded(args.question, answer, context, settings, printed=args.stream)}
    if args.json:
        print(json.dumps(result))
    elif not args.stream:
        print(result["answer"])
    return 0


def check_grounded(question: str, answer: str, context: str, settings: Settings, printed: bool) -> dict:
    """The grounded report of an answer from `context` (`qa_core.grounding.Grounded.to_dict`): the
    answer shown — "the context does not state this" when it does not, or what QA_UNSUPPORTED
    leaves —, what the model stated and the figure check; a warning line on stderr says what is
    wrong, and a streamed answer, already `printed`, is followed by its replacement."""
    from qa_core.grounding import settle_from_context

    grounded = settle_from_context(question, answer, context, settings.unsupported)
    if grounded.warning:
        print(f"warning: {grounded.warning}", file=sys.stderr)
    if printed and grounded.replaced:
        print(f"replaced ({grounded.replaced}): {grounded.answer}")
    return grounded.to_dict()


def cmd_check_data(args: argparse.Namespace, settings: Settings) -> int:
    from qa_core.data import load_qa_data, split_qa_data

    dataset = load_qa_data(args.source, args.columns, args.split, settings.hub_token)
    with_context = sum(1 for c in dataset["context"] if c)
    parts = split_qa_data(dataset, args.test_size, args.seed)
    print(
        f"{args.source}: {len(dataset)} QA pairs ({with_context} with context); "
        f"split {len(parts['train'])} train / {len(parts['test'])} test (seed {args.seed})"
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    from qa_core.prompts import STYLE_HELP

    parser = new_parser("python -m qa_core", __doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    ask = add_command(commands, "ask", "answer a question")
    ask.add_argument("question", help="the question to answer")
    source = ask.add_mutually_exclusive_group()
    source.add_argument("--context-file", metavar="PATH", help="answer from the text in this file ('-': stdin)")
    source.add_argument("--context", metavar="TEXT", help="answer from this text")
    add_model_options(ask)
    styles = "; ".join(f"{name}: {text}" for name, text in STYLE_HELP.items())
    ask.add_argument(
        "--prompt-style", default="auto", choices=list(STYLE_HELP), help=f"how the prompt is written ({styles})"
    )
    ask.add_argument("--show-prompt", action="store_true", help="print the exact prompt sent to the model on stderr")
    ask.add_argument("--max-new-tokens", type=int, default=256, help="longest answer in tokens (default 256)")
    ask.add_argument("--temperature", type=float, default=0.0, help="0 is greedy and deterministic (default 0)")
    ask.add_argument(
        "--repetition-penalty",
        type=float,
        default=1.0,
        help="over 1 discourages repeating tokens, the question's and context's too, so it also stops answers "
        "copying the context's figures: 1.1-1.2 for free answers that loop (default 1: none)",
    )
    ask.add_argument(
        "--json",
        action="store_true",
        help="print one JSON object: question, answer and, with a context, model_answer, replaced, not_stated, "
        "supported_figures (the ✓ ones), off_question_figures and unsupported_figures",
    )
    ask.add_argument("--stream", action="store_true", help="print the answer token by token as it is generated")
    ask.add_argument("--device", **setting_option("device"))
    ask.add_argument("--dtype", **setting_option("dtype"))
    ask.set_defaults(run=cmd_ask)

    check = add_command(commands, "check-data", "validate a QA data file or dataset and show its split")
    check.add_argument("source", help="CSV, JSONL or JSON file, or a Hugging Face dataset id or folder")
    check.add_argument("--columns", metavar="MAPPING", help="e.g. question=instruction,context=input,answer=output")
    check.add_argument("--split", default="train", help="dataset split to read (default: train)")
    check.add_argument("--test-size", type=float, default=0.1, help="held-out fraction (default 0.1)")
    check.add_argument("--seed", type=int, default=42, help="split seed (default 42)")
    check.set_defaults(run=cmd_check_data)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status (2 for bad input or settings)."""
    return run(build_parser(), argv, overrides=(*MODEL_OVERRIDES, "device", "dtype"))


if __name__ == "__main__":
    sys.exit(main())
