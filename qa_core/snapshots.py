"""Download a model or adapter from the Hub at an exact commit.

Everything goes through `huggingface_hub.snapshot_download` with the endpoint and token from
`Settings` passed explicitly (the client reads `HF_ENDPOINT` only once, at import). Only
safetensors weights, configs and tokenizer files are fetched: never pickled `.bin` weights,
optimizer states or the `original/` checkpoints some repos also carry.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import httpx2
from huggingface_hub import metadata_load, snapshot_download
from huggingface_hub.errors import (
    GatedRepoError,
    HfHubHTTPError,
    LocalEntryNotFoundError,
    OfflineModeIsEnabled,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from qa_core.config import Settings
from qa_core.errors import ModelLoadError

# README.md: an adapter's card records the prompt style it was trained with.
MODEL_FILE_PATTERNS = ["*.json", "*.safetensors", "*.model", "*.tiktoken", "*.txt", "*.jinja", "README.md"]
# What building prompts needs when a server generates: configs, tokenizer, chat template, records.
TOKENIZER_FILE_PATTERNS = [pattern for pattern in MODEL_FILE_PATTERNS if pattern != "*.safetensors"]
# The record of a training checkpoint (step, epoch, loss, eval metrics ...) written with every
# checkpoint commit; train_job writes it, hub lists it, qa_core.evaluate reads it.
CHECKPOINT_FILE = "checkpoint.json"
# What the Hub client raises when it cannot reach the server at all.
NETWORK_ERRORS = (httpx2.TransportError, ConnectionError, TimeoutError)


@dataclass(frozen=True)
class Snapshot:
    """A downloaded repo at one commit: `path` holds the files of exactly `commit`."""

    repo_id: str
    commit: str
    path: Path


def parse_ref(spec: str) -> tuple[str, str | None]:
    """Split `REPO_OR_PATH[@REVISION]` into its name and revision (None when absent).

    >>> parse_ref("me/adapter@3f2a")
    ('me/adapter', '3f2a')
    """
    name, sep, revision = spec.rpartition("@")
    if not sep or not name or "/" in revision:
        return spec, None
    return name, revision or None


def read_checkpoint_record(folder: Path) -> dict:
    """The training record saved with a checkpoint or adapter folder (step, metrics, prompt style ...):
    its checkpoint.json, else the metadata of its model card, else {}."""
    record_file = folder / CHECKPOINT_FILE
    if record_file.is_file():
        try:
            return json.loads(record_file.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError):
            return {}
    card = folder / "README.md"
    return metadata_load(card) or {} if card.is_file() else {}


def xet_unsupported(exc: BaseException) -> bool:
    """True when an upload failed because the endpoint does not serve Xet storage (the client
    reports the 404 of its xet-write-token request as a ConnectionError)."""
    return isinstance(exc, NETWORK_ERRORS) and "xet-write-token" in str(exc) and "404" in str(exc)


def describe_hub_error(exc: Exception, repo_id: str, revision: str | None, endpoint: str) -> str:
    """Turn a Hub client exception into one line that says what to do; never includes a token."""
    at = f"@{revision}" if revision else ""
    if isinstance(exc, GatedRepoError):
        return f"{repo_id} is gated: accept its licence on the Hub and set HF_TOKEN"
    if isinstance(exc, RepositoryNotFoundError):
        return f"{repo_id}: repository not found on {endpoint}, or HF_TOKEN has no access to it"
    if isinstance(exc, RevisionNotFoundError):
        return f"{repo_id}: revision {revision!r} not found on {endpoint}"
    if isinstance(exc, (OfflineModeIsEnabled, LocalEntryNotFoundError)):
        return (
            f"{repo_id}{at} is not in the local cache and the Hub at {endpoint} cannot be used "
            "(offline mode, or no connection)"
        )
    if isinstance(exc, HfHubHTTPError) and exc.response is not None:
        status = exc.response.status_code
        if status == 401:
            return f"{endpoint} rejected the token (HTTP 401): check HF_TOKEN"
        if status == 403:
            return f"{repo_id}: the token may not access this repository (HTTP 403)"
        return f"{repo_id}{at}: the Hub at {endpoint} answered HTTP {status}"
    if xet_unsupported(exc):
        return (
            f"{repo_id}: the Hub at {endpoint} does not support Xet uploads (no xet-write-token route); "
            "set HF_HUB_DISABLE_XET=1 to upload without Xet"
        )
    if isinstance(exc, NETWORK_ERRORS):
        return f"{repo_id}{at}: cannot reach the Hub at {endpoint} ({type(exc).__name__})"
    detail = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{repo_id}{at}: request to the Hub at {endpoint} failed: {type(exc).__name__} {detail}".rstrip()


def download_snapshot(repo_id: str, revision: str | None, settings: Settings, weights: bool = True) -> Snapshot:
    """Download the weights (unless not `weights`), configs and tokenizer of `repo_id` at `revision`.

    `revision` may be a branch, tag or commit sha; the returned snapshot records the commit
    it resolved to, so callers can report and pin exactly what they loaded.

    Returns:
        The `Snapshot` in the local Hugging Face cache.

    Raises:
        ModelLoadError: the repo or revision does not exist, the token is rejected, the Hub
            cannot be reached and the files are not cached, or (with `weights`) the repo has no safetensors.
    """
    try:
        path = Path(
            snapshot_download(
                repo_id,
                revision=revision,
                token=settings.hub_token,
                endpoint=settings.hf_endpoint,
                allow_patterns=MODEL_FILE_PATTERNS if weights else TOKENIZER_FILE_PATTERNS,
            )
        )
    except Exception as exc:  # the client raises many kinds; all become one clear line
        message = describe_hub_error(exc, repo_id, revision, settings.hf_endpoint)
        raise ModelLoadError(settings.redact(message)) from exc
    if weights and not any(path.rglob("*.safetensors")):
        raise ModelLoadError(
            f"{repo_id}@{path.name} has no .safetensors weights; only safetensors are loaded "
            "from the Hub (convert the repo, or download it and pass the local folder)"
        )
    return Snapshot(repo_id=repo_id, commit=path.name, path=path)
