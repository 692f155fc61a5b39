"""Push a folder to the Hub as exactly one commit, with a model card; never push a token.

`upload_folder` may split a large upload into several commits; `create_commit` with explicit
operations keeps one checkpoint = one commit. Before anything is sent, every file is checked
for the configured token, and `.env` files are never included.
"""

from __future__ import annotations

from pathlib import Path

from huggingface_hub import CommitOperationAdd

from hub.checkpoints import checkpoint_message
from hub.remote import HubError, api, call
from qa_core.config import Settings
from qa_core.snapshots import CHECKPOINT_FILE

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


def _card(front: dict, title: str, intro: str, facts: dict, metrics: dict) -> str:
    """A model card: YAML front matter the Hub indexes, an intro, a facts table, a metrics table."""
    lines = ["---"]
    for key, value in front.items():
        lines += [f"{key}:", *(f"- {item}" for item in value)] if isinstance(value, list) else [f"{key}: {value}"]
    lines += ["---", "", f"# {title}", "", intro, "", "| | |", "|---|---|"]
    lines += [f"| {key} | {value} |" for key, value in facts.items() if value not in (None, "")]
    numbers = {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    if numbers:
        lines += ["", "## Metrics", "", "| metric | value |", "|---|---|"]
        lines += [f"| {key} | {value:.6g} |" for key, value in sorted(numbers.items())]
    return "\n".join(lines) + "\n"


def _front(base: str, library: str, tags: list[str], dataset: str | None) -> dict:
    front: dict = {"base_model": base, "library_name": library, "tags": ["qa-toolkit", *tags]}
    if dataset and "/" in dataset and not Path(dataset).exists():  # a Hub dataset id, not a local file
        front["datasets"] = [dataset]
    return front


def _code(text: str | None, commit: str | None = None) -> str | None:
    return f"`{text}`" + (f" at commit `{commit}`" if commit else "") if text else None


def model_card(repo_id: str, provenance: dict) -> str:
    """The README.md of a merged model: base and adapter (with commits), data, merge check, metrics."""
    checkpoint = provenance.get("checkpoint") or {}
    dataset = checkpoint.get("dataset")
    diff = provenance.get("max_abs_diff")
    return _card(
        _front(provenance["base"], "transformers", ["lora", "merged"], dataset),
        repo_id,
        f"A LoRA adapter merged into its base model with qa-toolkit (`python -m hub merge`), in {provenance['dtype']}.",
        {
            "base model": _code(provenance["base"], provenance.get("base_commit")),
            "adapter": _code(provenance["adapter"], provenance.get("adapter_commit")),
            "training data": _code(dataset),
            "merge check: max abs logit difference vs adapter": f"{diff:.3g}" if diff is not None else None,
        },
        checkpoint,
    )


def adapter_card(repo_id: str, record: dict, options: dict) -> str:
    """The README.md of a run's adapter repo: how it was trained, its final metrics, how to use it."""
    base = options["model"].rpartition("@")[0] or options["model"]
    usage = f'python -m qa_core ask "Your question" --model {base} --adapter {repo_id}'
    return _card(
        _front(base, "peft", ["lora", "question-answering"], options.get("data")),
        repo_id,
        f"LoRA adapter trained with qa-toolkit (`train_job/run.py`); one commit per checkpoint.\n\n"
        f"```bash\n{usage}\n```",
        {
            "base model": _code(record.get("base_model", base)),
            "training data": _code(options.get("data")),
            "prompt style": _code(options.get("prompt_style")),
            "quantization": _code(options.get("quantization")),
            "LoRA": f"r {options['lora_r']}, alpha {options['lora_alpha']}, dropout {options['lora_dropout']}, "
            f"modules {', '.join(options['lora_target_modules'])}",
            "trained head": "lm_head" if options.get("train_head") else "no",
            "steps": record.get("step"),
        },
        record,
    )
