"""Push a folder to the Hub as exactly one commit, with a model card; never push a token.

`upload_folder` may split a large upload into several commits; `create_commit` with explicit
operations keeps one checkpoint = one commit. Before anything is sent, every file is checked
for the configured token, and `.env` files are never included.
"""

from __future__ import annotations

from pathlib import Path

from huggingface_hub import CommitOperationAdd

from hub.checkpoints import CHECKPOINT_FILE, checkpoint_message
from hub.remote import HubError, api, call
from qa_core.config import Settings

SKIPPED_DIRS = {".git", ".cache", "__pycache__"}


def _files(folder: Path) -> list[Path]:
    return sorted(
        path
        for path in folder.rglob("*")
        if path.is_file()
        and not path.name.startswith(".env")
        and not SKIPPED_DIRS.intersection(path.relative_to(folder).parts)
    )


def _check_for_token(name: str, content: bytes, settings: Settings) -> None:
    if settings.hf_token and settings.hf_token.encode() in content:
        raise HubError(f"{name} contains the Hugging Face token; refusing to push it")


def push_folder(
    folder: str | Path,
    repo_id: str,
    settings: Settings,
    title: str,
    description: str = "",
    extra_files: dict[str, str | bytes] | None = None,
    private: bool | None = None,
    retries: int | None = None,
    backoff: float | None = None,
) -> str:
    """Push every file of `folder` (plus `extra_files`, path -> content) as one commit to `repo_id`,
    creating the repo if needed.

    Returns:
        The new commit's sha.

    Raises:
        HubError: a file contains the token, no write access, or the Hub is unreachable.
    """
    folder = Path(folder)
    operations = []
    for path in _files(folder):
        name = path.relative_to(folder).as_posix()
        if name in (extra_files or {}):
            continue
        _check_for_token(name, path.read_bytes(), settings)
        operations.append(CommitOperationAdd(name, str(path)))
    for name, content in (extra_files or {}).items():
        data = content.encode() if isinstance(content, str) else content
        _check_for_token(name, data, settings)
        operations.append(CommitOperationAdd(name, data))
    if not operations:
        raise HubError(f"{folder}: nothing to push")
    hub = api(settings)
    call(lambda: hub.create_repo(repo_id, private=private, exist_ok=True), settings, repo_id, None, retries, backoff)
    commit = call(
        lambda: hub.create_commit(repo_id, operations, commit_message=title, commit_description=description),
        settings,
        repo_id,
        None,
        retries,
        backoff,
    )
    return commit.oid


def push_checkpoint(folder: str | Path, repo_id: str, info: dict, settings: Settings, **kwargs: object) -> str:
    """Push a training checkpoint as one commit whose message and `checkpoint.json` hold `info`.

    Returns:
        The commit sha.
    """
    title, description = checkpoint_message(info)
    extra = {CHECKPOINT_FILE: description + "\n", **kwargs.pop("extra_files", {})}
    return push_folder(folder, repo_id, settings, title, description, extra_files=extra, **kwargs)


def model_card(repo_id: str, provenance: dict) -> str:
    """A README.md for a merged model: front matter the Hub indexes, then where it came from."""
    checkpoint = provenance.get("checkpoint") or {}
    dataset = checkpoint.get("dataset")
    lines = [
        "---",
        f"base_model: {provenance['base']}",
        "library_name: transformers",
        "tags:",
        "- qa-toolkit",
        "- lora",
        "- merged",
    ]
    if dataset and "/" in str(dataset) and not Path(str(dataset)).exists():
        lines += ["datasets:", f"- {dataset}"]
    lines += [
        "---",
        "",
        f"# {repo_id}",
        "",
        f"A LoRA adapter merged into its base model with qa-toolkit (`python -m hub merge`), in {provenance['dtype']}.",
        "",
        "| | |",
        "|---|---|",
        f"| base model | `{provenance['base']}`{_at(provenance.get('base_commit'))} |",
        f"| adapter | `{provenance['adapter']}`{_at(provenance.get('adapter_commit'))} |",
    ]
    if dataset:
        lines.append(f"| training data | `{dataset}` |")
    if provenance.get("max_abs_diff") is not None:
        lines.append(f"| merge check: max abs logit difference vs adapter | {provenance['max_abs_diff']:.3g} |")
    metrics = {k: v for k, v in checkpoint.items() if k not in ("dataset",) and isinstance(v, (int, float, str))}
    if metrics:
        lines += ["", "## Training checkpoint", "", "| | |", "|---|---|"]
        lines += [f"| {key} | {value} |" for key, value in sorted(metrics.items())]
    return "\n".join(lines) + "\n"


def _at(commit: str | None) -> str:
    return f" at commit `{commit}`" if commit else ""
