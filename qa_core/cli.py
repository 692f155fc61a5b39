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
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from qa_core.config import BACKENDS, DEVICES, DTYPES, QUANTIZATIONS, Settings, load_settings
from qa_core.errors import QAError

if TYPE_CHECKING:
    from qa_core.models import LoadedModel

EPILOG = "Settings not given as flags come from the environment and .env: see .env.example."
# The settings that `add_model_options` flags override (pass to `run`).
MODEL_OVERRIDES = ("quantization", "generation_backend", "openai_base_url", "openai_model")


# Adds a command line's own shared options to a parser; `default(value)` gives each option's default.
SharedOptions = Callable[[argparse.ArgumentParser, Callable[[object], object]], None]


def new_parser(prog: str, doc: str, shared: SharedOptions | None = None) -> argparse.ArgumentParser:
    """A parser with the options every command line of the toolkit shares (--env-file), plus the
    command line's own `shared` options; subcommands made with `add_command` accept them too."""
    parser = argparse.ArgumentParser(prog=prog, description=doc.split("\n")[0], epilog=EPILOG)
    _add_shared(parser, shared, default=lambda value: value)
    return parser


def add_command(
    commands: argparse._SubParsersAction, name: str, help: str, shared: SharedOptions | None = None
) -> argparse.ArgumentParser:
    """A subcommand that also takes the shared options after its name: `--collection X ingest ...`
    and `ingest ... --collection X` both work."""
    command = commands.add_parser(name, help=help, epilog=EPILOG)
    # SUPPRESS: an option not repeated after the subcommand keeps the value given before it.
    _add_shared(command, shared, default=lambda value: argparse.SUPPRESS)
    return command


def _add_shared(parser: argparse.ArgumentParser, shared: SharedOptions | None, default: Callable) -> None:
    parser.add_argument("--env-file", default=default(".env"), help="file of KEY=VALUE settings (default: .env)")
    if shared:
        shared(parser, default)


def run(parser: argparse.ArgumentParser, argv: list[str] | None, overrides: tuple[str, ...] = ()) -> int:
    """Parse `argv`, load settings (flags named in `overrides` win), run the chosen command.

    Returns:
        The command's exit status, or 2 with a one-line `error:` message for a `QAError`.
    """
    args = parser.parse_args(argv)
    settings: Settings | None = None
    try:
        settings = load_settings(args.env_file, **{name: getattr(args, name, None) for name in overrides})
        return args.run(args, settings)
    except QAError as exc:
        message = settings.redact(str(exc)) if settings else str(exc)
        print(f"error: {one_line(message)}", file=sys.stderr)
        return 2


def one_line(message: str) -> str:
    """`message` on one line: a library's message that runs over several is joined, not cut."""
    return " ".join(line.strip() for line in message.splitlines() if line.strip())


def add_model_options(parser: argparse.ArgumentParser) -> None:
    """--model, --adapter, --quantization and where generation runs (--backend and the server's
    URL and model name); the server's key is read from QA_OPENAI_API_KEY only, never a flag."""
    parser.add_argument(
        "--model", metavar="ID_OR_PATH", help="Hub id[@revision], local folder, or 'demo' (default: QA_BASE_MODEL)"
    )
    parser.add_argument(
        "--adapter", metavar="PATH_OR_REPO[@REV]", help="LoRA adapter folder or Hub repo (default: QA_ADAPTER)"
    )
    parser.add_argument("--quantization", choices=QUANTIZATIONS, help="load the model in 4-bit or 8-bit (bitsandbytes)")
    parser.add_argument(
        "--backend",
        dest="generation_backend",
        choices=BACKENDS,
        help="local: generate in this process | openai: on an OpenAI-compatible server (QA_GENERATION_BACKEND)",
    )
    parser.add_argument("--openai-base-url", metavar="URL", help="the server's API root (QA_OPENAI_BASE_URL)")
    parser.add_argument("--openai-model", metavar="NAME", help="the base model's name on the server (QA_OPENAI_MODEL)")


def load_model_for_cli(args: argparse.Namespace, settings: Settings) -> LoadedModel:
    """Load `--model` / `--adapter`, saying on stderr what was loaded and if it is the demo model."""
    from qa_core.demo_model import DEMO_NOTICE
    from qa_core.models import load_model

    loaded = load_model(args.model, args.adapter, settings)
    print(f"model: {loaded.description}", file=sys.stderr)
    if loaded.is_demo:
        print(DEMO_NOTICE, file=sys.stderr)
    return loaded


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
    from qa_core.qa import generate, qa_prompt, stream

    context = _read_context(args)
    loaded = load_model_for_cli(args, settings)
    prompt = qa_prompt(loaded, args.question, context, args.prompt_style)
    if args.show_prompt:
        print(f"prompt:\n{prompt}", file=sys.stderr)
    generation = GenerationSettings(
        max_new_tokens=args.max_new_tokens, temperature=args.temperature, repetition_penalty=args.repetition_penalty
    )
    if args.stream and not args.json:
        answer = ""
        for piece in stream(loaded, prompt, generation):
            answer += piece
            print(piece, end="", flush=True)
        print()
    else:
        answer = generate(loaded, [prompt], generation)[0]
    result = {"question": args.question, "answer": answer}
    if context is not None:  # a grounded answer: its figures looked up in the context (QA_UNSUPPORTED)
        result = {**result, **check_grounded(args.question, answer, context, settings, printed=args.stream)}
    if args.json:
        print(json.dumps(result))
    elif not args.stream:
        print(result["answer"])
    return 0


def check_grounded(question: str, answer: str, context: str, settings: Settings, printed: bool) -> dict:
    """The figure check of an answer from `context`, with the answer QA_UNSUPPORTED leaves (a
    warning line on stderr names any unsupported figure; a streamed answer, already `printed`, is
    followed by its replacement)."""
    from qa_core.extractive import best_sentence
    from qa_core.grounding import check_figures, settle

    check = check_figures(answer, [context], question)
    if check.warning:
        print(f"warning: {check.warning}", file=sys.stderr)
    settled = settle(answer, check, settings.unsupported, lambda: best_sentence(question, [context]))
    if printed and settled != answer:
        print(f"replaced (QA_UNSUPPORTED={settings.unsupported}): {settled}")
    return {"answer": settled, **check.to_dict()}


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
        help="print one JSON object: question, answer and, with a context, supported_figures and unsupported_figures",
    )
    ask.add_argument("--stream", action="store_true", help="print the answer token by token as it is generated")
    ask.add_argument("--device", help=f"{' | '.join(DEVICES)} or cuda:N (default: QA_DEVICE or auto)")
    ask.add_argument("--dtype", choices=DTYPES, help="weights dtype (default: QA_DTYPE or auto)")
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
