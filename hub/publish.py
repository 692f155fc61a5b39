"""Push a folder to the Hub as exactly one commit, with a model card; never push a token.

`upload_folder` may split a large upload into several commits; `create_commit` with explicit
operations keeps one checkpoint = one commit. That commit also deletes every file the branch holds
that the folder does not (except `.gitattributes`), so each commit is one consistent state: a
checkpoint's trainer state, optimizer and record always belong to the same step. Before anything is
sent, every file is checked for the configured token, and `.env` files are never included. Cards
and records name local files and folders by their name only, never by their path on this machine.
"""

from __future__ import annotations

from pathlib import Path

from huggingface_hub import CommitOperationAdd, CommitOperationDelete, ModelCard, ModelCardData

from qa_core.checkpoints import checkpoint_message
from qa_core.config import Settings
from qa_core.hub_client import HubError, api, call
from qa_core.snapshots import CHECKPOINT_FILE

SKIPPED_DIRS = {".git", ".cache", "__pycache__"}
# A pickle of the trainer's arguments: not needed to use or resume a checkpoint, and it could carry a token.
NEVER_PUSHED = {"training_args.bin"}
KEPT_FILES = {".gitattributes"}  # repo settings, not part of any checkpoint
# What `python -m hub merge` writes beside a merged model, and the card of its push is made from;
# with the largest logit difference its --verify accepts by default, per merge dtype.
MERGE_INFO_FILE = "merge_info.json"
DEFAULT_TOLERANCE = {"float32": 1e-3, "float16": 5e-2, "bfloat16": 1e-1}


def public_name(spec: str) -> str:
    """`spec` as it may be published: a Hub id as it is, a local file or folder by its name only."""
    path = Path(spec).expanduser()
    if path.exists() or spec.startswith(("/", ".", "~")):
        return path.name
    return spec


def _files(folder: Path) -> list[Path]:
    return sorted(
        path
        for path in folder.rglob("*")
        if path.is_file()
        and not path.name.startswith(".env")
        and path.name not in NEVER_PUSHED
        and not SKIPPED_DIRS.intersection(path.relative_to(folder).parts)
    )


def _check_for_token(name: str, content: bytes, settings: Settings) -> None:
    if settings.hf_token and settings.hf_token.encode() in content:
        raise HubError(f"{name} contains the Hugging Face token; refusing to push it")


def check_push_options(repo_id: str | None, settings: Settings) -> None:
    """Fail at once, without a request, when `--push-to-hub` lacks a repo or a token.

    Raises:
        HubError: no `--hub-repo`, or no token.
    """
    if not repo_id:
        raise HubError("--push-to-hub needs --hub-repo USER/NAME")
    if not settings.hf_token:
        raise HubError("--push-to-hub needs a token: set HF_TOKEN or pass --hub-token")


def check_write_access(repo_id: str, settings: Settings) -> None:
    """Fail early (before training) when the token cannot write to `repo_id` (creating it if needed)."""
    identity = call(lambda: api(settings).whoami(), settings, repo_id)
    if identity.get("auth", {}).get("accessToken", {}).get("role") == "read":
        raise HubError(f"{repo_id}: the token is read-only; pushing needs a write token")
    call(lambda: api(settings).create_repo(repo_id, exist_ok=True), settings, repo_id)


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
    creating the repo if needed; the same commit deletes the branch's other files.

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

    def commit() -> str:
        # Listed right before committing, with that commit as the parent: a push in between fails
        # (HTTP 412) instead of leaving files of another checkpoint behind.
        head = hub.repo_info(repo_id)
        kept = KEPT_FILES | {op.path_in_repo for op in operations}
        stale = sorted({f.rfilename for f in head.siblings or []} - kept)
        deletes = [CommitOperationDelete(name) for name in stale]
        return hub.create_commit(
            repo_id,
            operations + deletes,
            commit_message=title,
            commit_description=description,
            parent_commit=head.sha,
        ).oid

    return call(commit, settings, repo_id, None, retries, backoff)


def push_checkpoint(folder: str | Path, repo_id: str, info: dict, settings: Settings, **kwargs: object) -> str:
    """Push a training checkpoint as one commit whose message and `checkpoint.json` hold `info`.

    Returns:
        The commit sha.
    """
    title, description = checkpoint_message(info)
    extra = {CHECKPOINT_FILE: description + "\n", **kwargs.pop("extra_files", {})}
    return push_folder(folder, repo_id, settings, title, description, extra_files=extra, **kwargs)


def _card(data: ModelCardData, title: str, intro: str, facts: dict, metrics: dict) -> str:
    """A model card: metadata the Hub indexes, an intro, a facts table, a metrics table."""
    lines = [f"# {title}", "", intro, "", "| | |", "|---|---|"]
    lines += [f"| {key} | {value} |" for key, value in facts.items() if value not in (None, "")]
    numbers = {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    if numbers:
        lines += ["", "## Metrics", "", "| metric | value |", "|---|---|"]
        lines += [f"| {key} | {value:.6g} |" for key, value in sorted(numbers.items())]
    return str(ModelCard(f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(lines) + "\n"))


def _card_data(base: str, library: str, tags: list[str], dataset: str | None, **extra: object) -> ModelCardData:
    hub_dataset = dataset and "/" in dataset and not Path(dataset).exists()  # a Hub dataset id, not a local file
    return ModelCardData(
        base_model=public_name(base),
        library_name=library,
        tags=["qa-toolkit", *tags],
        datasets=[dataset] if hub_dataset else None,
        **extra,
    )


def _code(text: str | None, commit: str | None = None) -> str | None:
    return f"`{text}`" + (f" at commit `{commit}`" if commit else "") if text else None


def model_card(repo_id: str, provenance: dict) -> str:
    """The README.md of a merged model: base and adapter (with commits), data, merge check, metrics."""
    checkpoint = provenance.get("checkpoint") or {}
    dataset = checkpoint.get("dataset")
    diff = provenance.get("max_abs_diff")
    return _card(
        _card_data(provenance["base"], "transformers", ["lora", "merged"], dataset),
        repo_id,
        f"A LoRA adapter merged into its base model with qa-toolkit (`python -m hub merge`), in {provenance['dtype']}.",
        {
            "base model": _code(public_name(provenance["base"]), provenance.get("base_commit")),
            "adapter": _code(public_name(provenance["adapter"]), provenance.get("adapter_commit")),
            "training data": _code(public_name(dataset) if dataset else None),
            "merge check: max abs logit difference vs adapter": f"{diff:.3g}" if diff is not None else None,
        },
        checkpoint,
    )


def adapter_card(repo_id: str, record: dict, options: dict) -> str:
    """The README.md of a checkpoint of a run's adapter repo: how it was trained (including the prompt
    style it must be asked in), its metrics, how to use it."""
    base = public_name(options["model"].rpartition("@")[0] or options["model"])
    usage = f'python -m qa_core ask "Your question" --model {base} --adapter {repo_id}'
    style = record.get("prompt_style")
    task = record.get("task", "sft")
    what = "continued pretraining on raw text" if task == "pretrain" else "question answering"
    intro = f"LoRA adapter trained with qa-toolkit (`train_job/run.py`) for {what}; one commit per checkpoint."
    intro += f"\n\n```bash\n{usage}\n```"
    if record.get("loss_curve"):
        intro += f"\n\n![training and eval loss]({record['loss_curve']})"
    return _card(
        _card_data(base, "peft", ["lora", "question-answering"], options.get("data"), prompt_style=style),
        repo_id,
        intro,
        {
            "base model": _code(record.get("base_model", base)),
            "task": task,
            "started from adapter": _code(record.get("init_adapter")),
            "training data": _code(public_name(options["data"]) if options.get("data") else None),
            "prompt style": _code(style),
            "quantization": _code(options.get("quantization")),
            "LoRA": f"r {options['lora_r']}, alpha {options['lora_alpha']}, dropout {options['lora_dropout']}, "
            f"modules {', '.join(options['lora_target_modules'])}",
            "trained head": "lm_head" if options.get("train_head") else "no",
            "steps": record.get("step"),
        },
        record,
    )
