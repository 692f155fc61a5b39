"""Settings read from the environment and an optional `.env` file.

Real environment variables win over `.env`, which wins over the defaults, so a deployment can
override a checked-in `.env` without editing it. The `.env` file is read without being copied
into `os.environ`, so nothing else in the process (or a child process) sees the token by accident.

Variables (see `.env.example`):

    HF_TOKEN / HF       Hugging Face token (HF is accepted as an alias, HF_TOKEN wins)
    HF_ENDPOINT         Hub endpoint, e.g. a private mirror (default https://huggingface.co)
    QA_BASE_MODEL       model id or local path; `demo` is the offline demo model
    QA_ADAPTER          LoRA adapter: local folder or Hub repo, optionally `@revision`
    QA_DEVICE           auto | cpu | cuda | cuda:N | mps (default auto)
    QA_DTYPE            auto | float32 | bfloat16 | float16 (default auto)
    QA_QUANTIZATION     none | 4bit | 8bit (default none)
    QA_CACHE_DIR        where the demo model is built (default ~/.cache/qa-toolkit)
    QA_CHROMA_PATH      folder of the embedded Chroma database (default ./chroma_db)
    QA_CHROMA_URL       http://host:port of a Chroma server; when set, used instead of the folder
    QA_COLLECTION       Chroma collection name (default documents)
    QA_EMBEDDING_MODEL  sentence-transformers folder or Hub REPO[@REV] (default: the bundled all-MiniLM-L6-v2)
    QA_MAX_FILE_MB      largest file accepted for ingestion, in MB (default 50)
    QA_SHARED_COLLECTION  app: one collection every visitor sees (default: one per browser session)
    QA_MAX_UPLOADS      app: most files per upload (default 10)
    QA_RESULTS_DIR      app: where `python -m qa_core.evaluate --out` wrote its table (default ./results)
    QA_ALLOW_ADAPTER_LOAD  app: 1 lets visitors load another adapter (for everyone); default 1, but 0 on a
                        Space (SPACE_ID set), where strangers visit
    QA_ADAPTER_REPOS    app: Hub repos (patterns, e.g. "me/*,team/qa-*") visitors' adapters are fetched with
                        HF_TOKEN from; others are fetched without it, so only public ones load (default: the
                        token owner's namespace)
    QA_MAX_ADAPTER_MB   app: largest adapter a visitor may load, in MB (default 1024)
    QA_MAX_QUESTION_CHARS  app: longest question, in characters (default 2000)
    QA_MAX_CONTEXT_CHARS   app: longest pasted or uploaded context, in characters (default 200000)
    QA_QUEUE_MAX_SIZE   app: most requests waiting in the queue; more are turned away (default 64)
    QA_SESSION_TTL_S    app: a visitor's documents are deleted when their session ends, or after this many
                        seconds idle (default 3600)
    QA_MAX_SESSION_CHUNKS  app: most chunks one visitor may store (default 2000)
    QA_MAX_SESSION_MB   app: most text one visitor may store, in MB (default 20)
    QA_LOGIN            app: 1 shows "Sign in with Hugging Face"; a signed-in visitor's documents are kept
                        across visits, under their user name (default 0)
    QA_MAX_BATCH_SIZE   app: most visitors' answers generated together in one batch; 1 = one at a time (default 16)
    QA_GENERATION_BACKEND  local (the model runs in this process) | openai (an OpenAI-compatible server such
                        as vLLM, TGI or `transformers serve` generates; only the tokenizer is loaded here)
    QA_OPENAI_BASE_URL  the server's API root (default http://127.0.0.1:8000/v1)
    QA_OPENAI_MODEL     the base model's name on the server (default: the model's Hub id, or its folder)
    QA_OPENAI_API_KEY   the server's key, if it wants one (a secret: never printed, like HF_TOKEN)
    QA_OPENAI_TIMEOUT   seconds to wait for a server's answer (default 300)

On a ZeroGPU Space (SPACES_ZERO_GPU=true, set by the Space) QA_DEVICE defaults to `cuda`: ZeroGPU
expects the model on `cuda` from start-up and attaches a real GPU while a `@spaces.GPU` function runs.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path

from dotenv import dotenv_values

from qa_core.errors import SettingsError

DEFAULT_ENDPOINT = "https://huggingface.co"

DEVICES = ("auto", "cpu", "cuda", "mps")
DTYPES = ("auto", "float32", "bfloat16", "float16")
QUANTIZATIONS = ("none", "4bit", "8bit")
BACKENDS = ("local", "openai")


@dataclass(frozen=True)
class Settings:
    """Everything the toolkit reads from the environment.

    The token is excluded from `repr()` so that printing or logging settings never leaks it.
    """

    hf_token: str | None = field(default=None, repr=False)
    hf_endpoint: str = DEFAULT_ENDPOINT
    base_model: str | None = None
    adapter: str | None = None
    device: str = "auto"
    dtype: str = "auto"
    quantization: str = "none"
    cache_dir: Path = field(default_factory=lambda: Path.home() / ".cache" / "qa-toolkit")
    chroma_path: Path = Path("chroma_db")
    chroma_url: str | None = None
    collection: str = "documents"
    embedding_model: str | None = None
    max_file_mb: float = 50.0
    shared_collection: str | None = None
    max_uploads: int = 10
    results_dir: Path = Path("results")
    allow_adapter_load: bool = True
    adapter_repos: tuple[str, ...] | None = None
    max_adapter_mb: float = 1024.0
    max_question_chars: int = 2000
    max_context_chars: int = 200_000
    queue_max_size: int = 64
    session_ttl_s: float = 3600.0
    max_session_chunks: int = 2000
    max_session_mb: float = 20.0
    login: bool = False
    max_batch_size: int = 16
    generation_backend: str = "local"
    openai_base_url: str = "http://127.0.0.1:8000/v1"
    openai_model: str | None = None
    openai_api_key: str | None = field(default=None, repr=False)
    openai_timeout: float = 300.0

    def __post_init__(self) -> None:
        device_kind = self.device.split(":", 1)[0]
        _check_choice("QA_DEVICE", device_kind, DEVICES)
        _check_choice("QA_DTYPE", self.dtype, DTYPES)
        _check_choice("QA_QUANTIZATION", self.quantization, QUANTIZATIONS)
        _check_choice("QA_GENERATION_BACKEND", self.generation_backend, BACKENDS)

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


def _check_choice(variable: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise SettingsError(f"{variable}={value!r} is not one of: {', '.join(choices)}")


def _path(value: str) -> Path:
    return Path(value).expanduser()


def _flag(value: str) -> bool:
    choices = {"1": True, "true": True, "yes": True, "on": True, "0": False, "false": False, "no": False, "off": False}
    if value.lower() not in choices:
        raise ValueError(value)
    return choices[value.lower()]


# Settings field -> (environment variables, the first set one wins; conversion from text)
_VARIABLES: dict[str, tuple[tuple[str, ...], Callable[[str], object]]] = {
    "hf_token": (("HF_TOKEN", "HF"), str),
    "hf_endpoint": (("HF_ENDPOINT",), lambda value: value.rstrip("/")),
    "base_model": (("QA_BASE_MODEL",), str),
    "adapter": (("QA_ADAPTER",), str),
    "device": (("QA_DEVICE",), str),
    "dtype": (("QA_DTYPE",), str),
    "quantization": (("QA_QUANTIZATION",), str),
    "cache_dir": (("QA_CACHE_DIR",), _path),
    "chroma_path": (("QA_CHROMA_PATH",), _path),
    "chroma_url": (("QA_CHROMA_URL",), lambda value: value.rstrip("/")),
    "collection": (("QA_COLLECTION",), str),
    "embedding_model": (("QA_EMBEDDING_MODEL",), str),
    "max_file_mb": (("QA_MAX_FILE_MB",), float),
    "shared_collection": (("QA_SHARED_COLLECTION",), str),
    "max_uploads": (("QA_MAX_UPLOADS",), int),
    "results_dir": (("QA_RESULTS_DIR",), _path),
    "allow_adapter_load": (("QA_ALLOW_ADAPTER_LOAD",), _flag),
    "adapter_repos": (("QA_ADAPTER_REPOS",), lambda value: tuple(p for p in value.replace(",", " ").split() if p)),
    "max_adapter_mb": (("QA_MAX_ADAPTER_MB",), float),
    "max_question_chars": (("QA_MAX_QUESTION_CHARS",), int),
    "max_context_chars": (("QA_MAX_CONTEXT_CHARS",), int),
    "queue_max_size": (("QA_QUEUE_MAX_SIZE",), int),
    "session_ttl_s": (("QA_SESSION_TTL_S",), float),
    "max_session_chunks": (("QA_MAX_SESSION_CHUNKS",), int),
    "max_session_mb": (("QA_MAX_SESSION_MB",), float),
    "login": (("QA_LOGIN",), _flag),
    "max_batch_size": (("QA_MAX_BATCH_SIZE",), int),
    "generation_backend": (("QA_GENERATION_BACKEND",), str),
    "openai_base_url": (("QA_OPENAI_BASE_URL",), lambda value: value.rstrip("/")),
    "openai_model": (("QA_OPENAI_MODEL",), str),
    "openai_api_key": (("QA_OPENAI_API_KEY",), str),
    "openai_timeout": (("QA_OPENAI_TIMEOUT",), float),
}


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
    for name, (variables, convert) in _VARIABLES.items():
        present = [(v, values[v].strip()) for v in variables if (values.get(v) or "").strip()]
        if present:
            variable, raw = present[0]
            try:
                found[name] = convert(raw)
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
