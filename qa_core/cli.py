"""What every command line of the toolkit shares: its parser (--env-file, subcommands that take the
shared options before or after their name), the model options, and `run`, the one contract of all
of them: a `QAError` is one `error: …` line and exit status 2, never a traceback.

    parser = new_parser("python -m qa_core.rag", __doc__, shared_options)
    ingest = add_command(parser.add_subparsers(required=True), "ingest", "add files")
    sys.exit(run(parser, argv, overrides=MODEL_OVERRIDES))

The commands themselves live with what they run (`python -m qa_core`: qa_core/__main__.py).
Settings not given as flags come from the environment and `.env` (see `.env.example`).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from qa_core.config import Settings, load_settings, setting_option
from qa_core.errors import QAError

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
    parser.add_argument("--model", metavar="ID_OR_PATH", **setting_option("base_model"))
    parser.add_argument("--adapter", metavar="PATH_OR_REPO[@REV]", **setting_option("adapter"))
    parser.add_argument("--quantization", **setting_option("quantization"))
    parser.add_argument("--backend", dest="generation_backend", **setting_option("generation_backend"))
    parser.add_argument("--openai-base-url", metavar="URL", **setting_option("openai_base_url"))
    parser.add_argument("--openai-model", metavar="NAME", **setting_option("openai_model"))
