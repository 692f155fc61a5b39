"""Checkpoints of a training run: one Hub commit each, with its step and metrics in the commit.

A checkpoint commit is titled `checkpoint step 40: loss 1.2345` and carries the full record
(step, epoch, loss, eval metrics ...) as JSON in the commit description and in `checkpoint.json`,
so listing a run needs one API call and every checkpoint stays readable on its own. This module
is the whole record format: the training script writes and pushes it, `hub` lists and pulls it,
models and evaluation read it back.

    from qa_core.hub.checkpoints import list_checkpoints, pull
    for c in list_checkpoints("me/run", settings): print(c.commit, c.step, c.info.get("loss"))
    pull("me/run", "40", "ckpt-40", settings)      # by step, or by (short) commit sha
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from huggingface_hub import metadata_load, snapshot_download

from qa_core.config import Settings
from qa_core.errors import HubError
from qa_core.hub.client import api, call, push_folder

# The record of a training checkpoint (step, epoch, loss, eval metrics, prompt style ...), saved in
# every checkpoint folder and pushed with every checkpoint commit.
CHECKPOINT_FILE = "checkpoint.json"
TRAINER_STATE = "trainer_state.json"  # the Trainer's, pushed with each checkpoint: its log history holds every loss
STEP = re.compile(r"^(?:step[-=:]?)?(\d{1,6})$")
BEST = re.compile(r"^best(?::(\w+))?$")  # `best`, `best:unsupported_figure`, `best:eval_loss`

# Answer scores of held-out questions, logged during training as `eval_<name>` (train_job/scoring.py);
# a record's `answer_scores` lists them step by step, step 0 being the base model's.
SCORES = (
    "exact_figure",
    "contains_answer",
    "rouge_l",
    "figures_supported",
    "unsupported_figure",
    "refusal_rate",
    "not_stated",
)
SCORE_KEYS = tuple(f"eval_{name}" for name in SCORES)
MAIN_SCORE = "eval_exact_figure"  # what commit titles and `@best` go by unless told another
LOWER_IS_BETTER = ("eval_unsupported_figure", "eval_refusal_rate")  # and every loss


@dataclass
class Checkpoint:
    """One pushed checkpoint: the commit, when, and what the trainer recorded with it."""

    commit: str
    date: datetime
    title: str
    info: dict

    @property
    def step(self) -> int | None:
        return self.info.get("step")

    @property
    def base_scores(self) -> dict:
        """The base model's answer scores, logged before the run's first step ({} without scoring)."""
        return base_scores(self.info)


def score_history(log_history: list[dict]) -> list[dict]:
    """The answer scores in a trainer's `log_history`, one entry per step (step 0: the base), oldest first."""
    history: dict[int, dict] = {}
    for entry in log_history:
        scores = {key: entry[key] for key in SCORE_KEYS if key in entry}
        if scores and "step" in entry:
            history.setdefault(entry["step"], {"step": entry["step"]}).update(scores)
    return [history[step] for step in sorted(history)]


def split_scores(history: list[dict]) -> tuple[dict, list[dict]]:
    """An `answer_scores` history as (the base's entry, {} if none; the trained checkpoints' entries)."""
    base = next((entry for entry in history if entry["step"] == 0), {})
    return base, [entry for entry in history if entry["step"] > 0]


def base_scores(info: dict) -> dict:
    """The base model's scores in a checkpoint record: its `answer_scores` entry of step 0, less the step."""
    base, _ = split_scores(info.get("answer_scores") or [])
    return {key: value for key, value in base.items() if key != "step"}


def score_label(key: str) -> str:
    """`eval_exact_figure` as people read it: `exact figure`."""
    return key.removeprefix("eval_").replace("_", " ")


def main_score(info: dict, digits: int = 2) -> str:
    """A record's main answer score against the base's, as people read it (`exact figure 0.81
    (base 0.47)`); "" when it has none."""
    metric = info.get("score_metric", MAIN_SCORE)
    if not isinstance(info.get(metric), (int, float)):
        return ""
    base = base_scores(info).get(metric)
    return f"{score_label(metric)} {info[metric]:.{digits}f}" + (
        f" (base {base:.{digits}f})" if base is not None else ""
    )


def checkpoint_message(info: dict) -> tuple[str, str]:
    """The commit title and description for a checkpoint record (`step` is required): the title names
    the loss and, with answer scores, the main one against the base's
    (`checkpoint step 40: loss 1.2345, exact figure 0.81 (base 0.47)`)."""
    title = f"checkpoint step {info['step']}"
    said = []
    if isinstance(info.get("loss"), (int, float)):
        said.append(f"loss {info['loss']:.4f}")
    scored = main_score(info)
    if scored:
        said.append(scored)
    if said:
        title += ": " + ", ".join(said)
    return title, json.dumps(info, sort_keys=True)


def write_record(folder: Path, record: dict) -> None:
    """Save `record` as the folder's checkpoint.json (read back when the adapter is loaded)."""
    (folder / CHECKPOINT_FILE).write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")


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


def push_checkpoint(folder: str | Path, repo_id: str, info: dict, settings: Settings, **kwargs: object) -> str:
    """Push a training checkpoint as one commit whose message and `checkpoint.json` hold `info`.

    Returns:
        The commit sha.
    """
    title, description = checkpoint_message(info)
    extra = {CHECKPOINT_FILE: description + "\n", **kwargs.pop("extra_files", {})}
    return push_folder(folder, repo_id, settings, title, description, extra_files=extra, **kwargs)


def parse_checkpoint_info(message: str) -> dict | None:
    """The checkpoint record in a commit message, or None for commits that are not checkpoints."""
    start = message.find("{")
    if start < 0:
        return None
    try:
        info, _ = json.JSONDecoder().raw_decode(message[start:])
    except json.JSONDecodeError:
        return None
    return info if isinstance(info, dict) and isinstance(info.get("step"), int) else None


def list_checkpoints(repo_id: str, settings: Settings, branch: str = "main") -> list[Checkpoint]:
    """The checkpoints on `branch`, newest first (commits without a checkpoint record are skipped).

    Raises:
        HubError: the repo or branch does not exist, the token is refused, the Hub is unreachable.
    """
    commits = call(lambda: api(settings).list_repo_commits(repo_id, revision=branch), settings, repo_id, branch)
    found = []
    for commit in commits:
        info = parse_checkpoint_info(commit.message or "")
        if info is not None:
            found.append(Checkpoint(commit.commit_id, commit.created_at, commit.title, info))
    return found


def logged_losses(repo_id: str, commit: str, settings: Settings) -> list[dict]:
    """Every training and eval loss the run logged up to the checkpoint at `commit` (the log history of
    its trainer_state.json), as {"step", "loss" or "eval_loss"} entries; [] when it has no such file.

    Raises:
        HubError: the Hub failed the request.
    """
    hub = api(settings)
    if not call(lambda: hub.file_exists(repo_id, TRAINER_STATE, revision=commit), settings, repo_id, commit):
        return []
    path = call(lambda: hub.hf_hub_download(repo_id, TRAINER_STATE, revision=commit), settings, repo_id, commit)
    history = json.loads(Path(path).read_text(encoding="utf-8")).get("log_history", [])
    return [
        {"step": entry["step"], key: entry[key]}
        for entry in history
        for key in ("loss", "eval_loss")
        if key in entry and "step" in entry
    ]


def pushed_checkpoints(repo_id: str, settings: Settings) -> list[Checkpoint]:
    """`list_checkpoints` of the main branch, for callers that need at least one.

    Raises:
        HubError: as `list_checkpoints`, or the repo has no checkpoint commits.
    """
    found = list_checkpoints(repo_id, settings)
    if not found:
        raise HubError(f"{repo_id} has no checkpoint commits (pushed by train_job/run.py --push-to-hub)")
    return found


def is_checkpoint_revision(revision: str) -> bool:
    """Whether `revision` names a checkpoint by its step (`40`) or score (`best`), not a Git revision."""
    return bool(STEP.match(revision) or BEST.match(revision))


def best_checkpoint(repo_id: str, checkpoints: list[Checkpoint], metric: str | None = None) -> Checkpoint:
    """The checkpoint with the best `metric` (default: the one the run's commit titles name, else
    eval_exact_figure; `exact_figure` and `eval_exact_figure` are the same), the earlier step on a
    tie; lower is better for losses, unsupported figures and refusals.

    Raises:
        HubError: no checkpoint records that metric.
    """
    if metric is None:
        metric = next((c.info["score_metric"] for c in checkpoints if "score_metric" in c.info), MAIN_SCORE)
    key = metric if metric.startswith("eval_") else f"eval_{metric}"
    scored = sorted((c for c in checkpoints if isinstance(c.info.get(key), (int, float))), key=lambda c: c.step)
    if not scored:
        named = sorted({k for c in checkpoints for k, v in c.info.items() if k.startswith("eval_")})
        hint = f"; its checkpoints record {', '.join(named)}" if named else ""
        raise HubError(
            f"{repo_id}: no checkpoint records {key} (train with --score_questions N, on by default, to score "
            f"answers at every checkpoint){hint}"
        )
    sign = -1 if key in LOWER_IS_BETTER or key.endswith("loss") else 1
    best = max(scored, key=lambda c: sign * c.info[key])  # max keeps the first of equals: the earlier step
    print(f"{repo_id}@best: step {best.step}, commit {best.commit[:12]}, {key} {best.info[key]:.4g}", file=sys.stderr)
    return best


def resolve_revision(repo_id: str, revision: str, settings: Settings) -> str:
    """The full commit sha for a step (`40`, `step-40`), the best scored checkpoint (`best`,
    `best:METRIC`, see `best_checkpoint`), a branch, a tag or a (short) sha.

    Branch names are resolved on the Hub every time, never from a possibly stale local cache.

    Raises:
        HubError: no checkpoint has that step or a score, or the revision does not exist.
    """
    best = BEST.match(revision)
    if best:
        return best_checkpoint(repo_id, pushed_checkpoints(repo_id, settings), best.group(1)).commit
    step = STEP.match(revision)
    if step:
        checkpoints = list_checkpoints(repo_id, settings)
        for checkpoint in checkpoints:
            if checkpoint.step == int(step.group(1)):
                return checkpoint.commit
        steps = ", ".join(str(c.step) for c in reversed(checkpoints)) or "none"
        raise HubError(f"{repo_id}: no checkpoint at step {step.group(1)} (steps pushed: {steps})")
    return call(lambda: api(settings).repo_info(repo_id, revision=revision).sha, settings, repo_id, revision)


def pin_checkpoint(spec: str, settings: Settings) -> str:
    """`REPO@STEP` or `REPO@best[:METRIC]` as `REPO@COMMIT` (what a deployed Space must load: the
    best of a run still training moves); any other name as it is.

    Raises:
        HubError: as for `resolve_revision`.
    """
    repo_id, _, revision = spec.rpartition("@")
    if repo_id.count("/") == 1 and is_checkpoint_revision(revision):
        return f"{repo_id}@{resolve_revision(repo_id, revision, settings)}"
    return spec


def pull(repo_id: str, revision: str, out: str | Path, settings: Settings) -> str:
    """Download every file of one checkpoint into `out`.

    Returns:
        The commit sha that was downloaded.

    Raises:
        HubError: as for `resolve_revision`, or the download fails.
    """
    commit = resolve_revision(repo_id, revision, settings)
    call(
        lambda: snapshot_download(
            repo_id, revision=commit, local_dir=out, endpoint=settings.hf_endpoint, token=settings.hub_token
        ),
        settings,
        repo_id,
        commit,
    )
    return commit
