"""Download a model or adapter from the Hub at an exact commit.

Everything goes through `huggingface_hub.snapshot_download` with the endpoint and token from
`Settings` passed explicitly (the client reads `HF_ENDPOINT` only once, at import). Only
safetensors weights, configs and tokenizer files are fetched: never pickled `.bin` weights,
optimizer states or the `original/` checkpoints some repos also carry.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from huggingface_hub import snapshot_download

from qa_core.config import Settings
from qa_core.errors import ModelLoadError
from qa_core.hub.client import describe_hub_error

# README.md: an adapter's card records the prompt style it was trained with.
MODEL_FILE_PATTERNS = ["*.json", "*.safetensors", "*.model", "*.tiktoken", "*.txt", "*.jinja", "README.md"]
# What building prompts needs when a server generates: configs, tokenizer, chat template, records.
TOKENIZER_FILE_PATTERNS = [pattern for pattern in MODEL_FILE_PATTERNS if pattern != "*.safetensors"]
# What makes a folder or repo a PEFT adapter.
ADAPTER_CONFIG, ADAPTER_WEIGHTS = "adapter_config.json", "adapter_model.safetensors"


@dataclass(frozen=True)
class Snapshot:
    """A downloaded repo at one commit: `path` holds the files of exactly `commit`."""

    repo_id: str
    commit: str
    path: Path


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


def require_adapter(folder: Path, name: str) -> None:
    """Refuse a folder that holds no PEFT adapter.

    Raises:
        ModelLoadError: no adapter_config.json in `folder`.
    """
    if not (folder / ADAPTER_CONFIG).is_file():
        raise ModelLoadError(f"{name}: not a PEFT adapter (no {ADAPTER_CONFIG})")
