"""Settings read from the environment and an optional `.env` file.

Real environment variables win over `.env`, which wins over the defaults, so a deployment can
override a checked-in `.env` without editing it. The `.env` file is read without being copied
into `os.environ`, so nothing else in the process (or a child process) sees the token by accident.

Each setting is declared once, below: its field, its environment variables, its help and how its
text is read. The settings table of docs/settings.md and `.env.example` are made from these declarations:

    python -m qa_core.config --markdown        # the table in docs/settings.md
    python -m qa_core.config --env-example     # .env.example

On a ZeroGPU Space (SPACES_ZERO_GPU=true, set by the Space) QA_DEVICE defaults to `cuda`: ZeroGPU
expects the model on `cuda` from start-up and attaches a real GPU while a `@spaces.GPU` function runs.
On any Space (SPACE_ID set) QA_ALLOW_ADAPTER_LOAD defaults to 0: strangers visit.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from dataclasses import MISSING, Field, dataclass, field, fields
from pathlib import Path
from typing import Any

from dotenv import dotenv_values

from qa_core.errors import SettingsError

DEFAULT_ENDPOINT = "https://huggingface.co"

DEVICES = ("auto", "cpu", "cuda", "mps")
DTYPES = ("auto", "float32", "bfloat16", "float16")
QUANTIZATIONS = ("none", "4bit", "8bit")
BACKENDS = ("local", "openai")
UNSUPPORTED_POLICIES = ("warn", "quote", "refuse")  # what to do with an answer stating a figure no source states


def _path(value: str) -> Path:
    return Path(value).expanduser()


def _url(value: str) -> str:
    return value.rstrip("/")


def _flag(value: str) -> bool:
    choices = {"1": True, "true": True, "yes": True, "on": True, "0": False, "false": False, "no": False, "off": False}
    if value.lower() not in choices:
        raise ValueError(value)
    return choices[value.lower()]


def _patterns(value: str) -> tuple[str, ...]:
    return tuple(p for p in value.replace(",", " ").split() if p)


def setting(
    default: Any,
    *variables: str,
    help: str,
    parse: Callable[[str], Any] = str,
    example: str = "",
    secret: bool = False,
    choices: tuple[str, ...] | None = None,
) -> Any:
    """Declare a setting: its `default` (a callable makes a default factory), the environment
    `variables` that set it (the first one set wins), its `help`, how its text is `parse`d, the
    `example` value `.env.example` shows, whether it is a `secret` (kept out of `repr`), and the
    `choices` it takes (checked when settings are loaded, offered by its command-line options)."""
    metadata = {"variables": variables, "help": help, "parse": parse, "example": example, "secret": secret}
    metadata["choices"] = choices
    if callable(default):
        return field(default_factory=default, repr=not secret, metadata=metadata)
    return field(default=default, repr=not secret, metadata=metadata)


@dataclass(frozen=True)
class Settings:
    """Everything the toolkit reads from the environment (secrets are excluded from `repr()`)."""

    hf_token: str | None = setting(
        None,
        "HF_TOKEN",
        "HF",
        help="Hugging Face token (HF is an alias); never printed, logged, written to model cards or pushed",
        secret=True,
    )
    hf_endpoint: str = setting(
        DEFAULT_ENDPOINT,
        "HF_ENDPOINT",
        help="Hub endpoint: a mirror or the local test server",
        parse=_url,
        example="http://127.0.0.1:8765",
    )
    base_model: str | None = setting(
        None,
        "QA_BASE_MODEL",
        help="base model: a Hub id[@revision], a folder, `smollm2` or `demo` (default: Qwen/Qwen2.5-0.5B-Instruct "
        "when the Hub answers, else smollm2)",
        example="NousResearch/Llama-2-7b-chat-hf",
    )
    adapter: str | None = setting(
        None, "QA_ADAPTER", help="LoRA adapter: a folder or a Hub repo[@revision]", example="your-name/qa-run@main"
    )
    device: str = setting(
        "auto", "QA_DEVICE", help="`auto`, `cpu`, `cuda`, `cuda:N`, `mps` (`cuda` on a ZeroGPU Space)", example="auto"
    )
    dtype: str = setting(
        "auto",
        "QA_DTYPE",
        help="`auto` (bfloat16/float16 on a GPU, float32 on a CPU), `float32`, `bfloat16`, `float16`",
        example="auto",
        choices=DTYPES,
    )
    quantization: str = setting(
        "none",
        "QA_QUANTIZATION",
        help="`none`, `4bit` (nf4, double quant), `8bit` (bitsandbytes)",
        example="none",
        choices=QUANTIZATIONS,
    )
    cache_dir: Path = setting(
        lambda: Path.home() / ".cache" / "qa-toolkit",
        "QA_CACHE_DIR",
        help="where `smollm2` is prepared and `demo` built",
        parse=_path,
        example="~/.cache/qa-toolkit",
    )
    chroma_path: Path = setting(
        Path("chroma_db"),
        "QA_CHROMA_PATH",
        help="folder of the embedded Chroma database",
        parse=_path,
        example="./chroma_db",
    )
    chroma_url: str | None = setting(
        None,
        "QA_CHROMA_URL",
        help="http://host:port of a Chroma server (`chroma run`); used instead of the folder when set",
        parse=_url,
        example="http://127.0.0.1:8000",
    )
    collection: str = setting("documents", "QA_COLLECTION", help="Chroma collection of the CLI", example="documents")
    embedding_model: str | None = setting(
        None,
        "QA_EMBEDDING_MODEL",
        help="sentence-transformers folder or Hub repo[@revision] (default: the bundled all-MiniLM-L6-v2); "
        "collections record it",
        example="runs/retriever",
    )
    max_file_mb: float = setting(50.0, "QA_MAX_FILE_MB", help="largest file read, in MB", parse=float, example="50")
    shared_collection: str | None = setting(
        None,
        "QA_SHARED_COLLECTION",
        help="app: one collection every visitor sees (default: one per browser session)",
        example="team-docs",
    )
    collection_repo: str | None = setting(
        None,
        "QA_COLLECTION_REPO",
        help="app: a published collection (`python -m qa_core.rag push`) pulled at start-up and searched, "
        "read-only, with every visitor's own uploads",
        example="your-name/filings-index@main",
    )
    max_uploads: int = setting(50, "QA_MAX_UPLOADS", help="app: most files per upload", parse=int, example="50")
    results_dir: Path = setting(
        Path("results"),
        "QA_RESULTS_DIR",
        help="app: the Model tab shows the newest evaluation in this folder or under it (`qa_core.evaluate --out`)",
        parse=_path,
        example="./results",
    )
    allow_adapter_load: bool = setting(
        True,
        "QA_ALLOW_ADAPTER_LOAD",
        help="app: 1 lets visitors load another adapter, for everyone (0 by default on a Space)",
        parse=_flag,
        example="0",
    )
    adapter_repos: tuple[str, ...] | None = setting(
        None,
        "QA_ADAPTER_REPOS",
        help="app: repos (patterns) whose adapters visitors load with HF_TOKEN; others are fetched without it, "
        "so only public ones load (default: the token owner's namespace)",
        parse=_patterns,
        example="your-name/*,team/qa-*",
    )
    max_adapter_mb: float = setting(
        1024.0, "QA_MAX_ADAPTER_MB", help="app: largest adapter a visitor may load, in MB", parse=float, example="1024"
    )
    max_question_chars: int = setting(
        2000, "QA_MAX_QUESTION_CHARS", help="app: longest question, in characters", parse=int, example="2000"
    )
    max_context_chars: int = setting(
        200_000,
        "QA_MAX_CONTEXT_CHARS",
        help="app: longest pasted or uploaded context, in characters",
        parse=int,
        example="200000",
    )
    queue_max_size: int = setting(
        64, "QA_QUEUE_MAX_SIZE", help="app: most requests waiting; more are turned away", parse=int, example="64"
    )
    session_ttl_s: float = setting(
        3600.0,
        "QA_SESSION_TTL_S",
        help="app: a visitor's documents are deleted when the page closes, or after this many idle seconds",
        parse=float,
        example="3600",
    )
    max_session_mb: float = setting(
        5.0,
        "QA_MAX_SESSION_MB",
        help="app: most text one visitor may store, in MB (about 2,000 chunks a MB to embed)",
        parse=float,
        example="5",
    )
    login: bool = setting(
        False,
        "QA_LOGIN",
        help='app: 1 shows "Sign in with Hugging Face"; a signed-in visitor\'s documents are kept across visits',
        parse=_flag,
        example="1",
    )
    max_batch_size: int = setting(
        16,
        "QA_MAX_BATCH_SIZE",
        help="app: most visitors' answers generated together in one batch (1 = one at a time)",
        parse=int,
        example="16",
    )
    unsupported: str = setting(
        "quote",
        "QA_UNSUPPORTED",
        help="a grounded answer (RAG, context QA) stating a figure without a ✓ (in none of its sources, or not as "
        "what was asked): `quote` (replaced by the sources' answering sentence; the default: with the walk-through's "
        "smollm2 adapter, RAG's exact figure 0.706 against 0.441 kept as written), `warn` (kept, with the report) or "
        "`refuse` (replaced by a refusal); the report keeps the model's answer. Whatever the policy, when no source "
        "states what is asked the answer says so",
        example="warn",
        choices=UNSUPPORTED_POLICIES,
    )
    generation_backend: str = setting(
        "local",
        "QA_GENERATION_BACKEND",
        help="`local` (generate in this process) or `openai` (an OpenAI-compatible server such as vLLM, TGI or "
        "`transformers serve` generates; only the tokenizer is loaded here)",
        example="openai",
        choices=BACKENDS,
    )
    openai_base_url: str = setting(
        "http://127.0.0.1:8000/v1",
        "QA_OPENAI_BASE_URL",
        help="the server's API root",
        parse=_url,
        example="http://127.0.0.1:8000/v1",
    )
    openai_model: str | None = setting(
        None,
        "QA_OPENAI_MODEL",
        help="the base model's name on the server (default: the Hub id, or the folder)",
        example="NousResearch/Llama-2-7b-chat-hf",
    )
    openai_api_key: str | None = setting(
        None,
        "QA_OPENAI_API_KEY",
        help="the server's key, if it wants one; a secret like HF_TOKEN, and no flag takes it",
        secret=True,
    )
    openai_timeout: float = setting(
        300.0, "QA_OPENAI_TIMEOUT", help="seconds to wait for the server's answer", parse=float, example="300"
    )

    def __post_init__(self) -> None:
        _check_choice("QA_DEVICE", self.device.split(":", 1)[0], DEVICES)  # cuda:N is cuda
        for f in fields(self):
            if f.metadata["choices"]:
                _check_choice(f.metadata["variables"][0], getattr(self, f.name), f.metadata["choices"])

    @property
    def max_file_bytes(self) -> int:
        """QA_MAX_FILE_MB in bytes: the largest file any reader accepts."""
        return int(self.max_file_mb * 1e6)

    @property
    def hub_token(self) -> str | bool:
        """The token to hand the Hub client: False when none is configured, because the client
        would otherwise pick one up by itself (HF_TOKEN in the environment, a cached login)."""
        return self.hf_token or False

    def redact(self, text: str) -> str:
        """Return `text` with the secrets (Hub token, inference server key) replaced, for messages and logs."""
        for secret in (self.hf_token, self.openai_api_key):
            text = text.replace(secret, "***") if secret else text
        return text


def setting_option(name: str, falls_back: bool = True) -> dict:
    """The help and choices of the command-line option that overrides setting `name`, from its
    declaration (so an option never restates a setting): `add_argument(flag, **setting_option(name))`,
    or a dataclass field's metadata for TrlParser / HfArgumentParser. With `falls_back`, the help
    says that the setting's variable applies when the option is not given."""
    declared = next(f for f in fields(Settings) if f.name == name)
    help = declared.metadata["help"] + (f"; when not given, {declared.metadata['variables'][0]}" if falls_back else "")
    choices = declared.metadata["choices"]
    return {"help": help, **({"choices": list(choices)} if choices else {})}


def _check_choice(variable: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise SettingsError(f"{variable}={value!r} is not one of: {', '.join(choices)}")


def _default(f: Field) -> str:
    """A setting's default as text (a computed default shows its example)."""
    value = f.metadata["example"] if f.default is MISSING else f.default
    if isinstance(value, bool):
        return "`1`" if value else "`0`"
    if isinstance(value, float):
        value = f"{value:g}"
    return f"`{value}`" if value not in (None, "") else ""


def markdown_table() -> str:
    """The table of settings in docs/settings.md: one row per setting, its variables, help and default."""
    rows = ["| variable | meaning | default |", "|---|---|---|"]
    for f in fields(Settings):
        names = ", ".join(f"`{v}`" for v in f.metadata["variables"])
        rows.append(f"| {names} | {f.metadata['help']} | {_default(f)} |")
    return "\n".join(rows)


def env_example() -> str:
    """The text of `.env.example`: every setting, commented out, with its help."""
    lines = [
        "# Copy to .env and set what you need. Real environment variables win over this file.",
        "# Made by `python -m qa_core.config --env-example` from qa_core/config.py.",
    ]
    for f in fields(Settings):
        first, *aliases = f.metadata["variables"]
        lines += ["", f"# {f.metadata['help']}" + (f" (alias: {', '.join(aliases)})" if aliases else "")]
        lines.append(f"# {first}={f.metadata['example']}")
    return "\n".join(lines) + "\n"


def load_settings(env_file: str | os.PathLike | None = ".env", **overrides: object) -> Settings:
    """Read settings from `env_file` (if it exists) and the process environment.

    Keyword `overrides` (e.g. from command-line flags) win over both; `None` values are ignored
    so that an unset flag does not hide an environment variable.

    Returns:
        The merged, validated `Settings`.

    Raises:
        SettingsError: a variable has a value outside its allowed choices.
    """
    values: dict[str, str | None] = {}
    if env_file is not None and Path(env_file).is_file():
        values.update(dotenv_values(env_file))
    values.update(os.environ)

    found: dict[str, object] = {}
    for f in fields(Settings):
        present = [(v, values[v].strip()) for v in f.metadata["variables"] if (values.get(v) or "").strip()]
        if present:
            variable, raw = present[0]
            try:
                found[f.name] = f.metadata["parse"](raw)
            except ValueError:
                raise SettingsError(f"{variable}={raw!r} is not a valid value") from None
    if "device" not in found and (values.get("SPACES_ZERO_GPU") or "").lower() in ("1", "t", "true"):
        found["device"] = "cuda"
    if "allow_adapter_load" not in found and values.get("SPACE_ID"):  # a public Space: strangers visit
        found["allow_adapter_load"] = False
    known = {f.name for f in fields(Settings)}
    for name, value in overrides.items():
        if name not in known:
            raise TypeError(f"unknown setting {name!r}")
        if value is not None:
            found[name] = value
    return Settings(**found)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Print the settings' documentation, made from their declarations.")
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--markdown", action="store_true", help="the table in docs/settings.md")
    which.add_argument("--env-example", action="store_true", help="the text of .env.example")
    print(markdown_table() if parser.parse_args().markdown else env_example(), end="")
