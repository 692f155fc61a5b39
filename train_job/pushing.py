"""Push training checkpoints to the Hub in the background, one commit per checkpoint.

A push never stops training: each saved checkpoint is copied aside (the trainer may delete it
while it uploads) and pushed by one worker thread, in order; a failed push is retried by
`hub.remote`, then reported, and training goes on. `finish()` waits for the queue to drain.
"""

from __future__ import annotations

import math
import queue
import shutil
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from hub.publish import push_checkpoint
from hub.remote import HubError
from qa_core.config import Settings

# Trainer files that are not needed to use or resume a checkpoint; training_args.bin is a pickle
# of the arguments and could carry a token.
SKIPPED_FILES = {"training_args.bin"}


def checkpoint_record(state: TrainerState, extra: dict) -> dict:
    """Step, epoch, the last logged training loss and eval metrics, plus `extra` (data, base ...)."""
    record: dict = {"step": state.global_step, "epoch": round(state.epoch or 0.0, 4), **extra}
    for entry in state.log_history:
        for key, value in entry.items():
            if (key == "loss" or key.startswith("eval_")) and isinstance(value, (int, float)):
                record[key] = round(float(value), 6)
    if "eval_loss" in record:
        record["eval_perplexity"] = round(math.exp(min(record["eval_loss"], 50)), 4)
    return record


@dataclass
class PushReport:
    """What the pusher did: commit sha per step, and one line per push that failed for good."""

    pushed: dict[int, str] = field(default_factory=dict)
    failed: list[str] = field(default_factory=list)


class CheckpointPusher:
    """Pushes checkpoint folders to `repo_id` from a background thread, in the order given."""

    def __init__(self, repo_id: str, settings: Settings) -> None:
        self.repo_id, self.settings = repo_id, settings
        self.report = PushReport()
        self._staging = Path(tempfile.mkdtemp(prefix="qa-push-"))
        self._queue: queue.Queue[tuple[Path, dict, dict] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._work, name="hub-push", daemon=True)
        self._thread.start()

    def submit(self, folder: Path, record: dict, extra_files: dict[str, str] | None = None) -> None:
        """Copy `folder` aside and queue it for pushing with its checkpoint `record` (and `extra_files`)."""
        copy = self._staging / f"step-{record['step']}"
        shutil.copytree(folder, copy, ignore=lambda _dir, names: [n for n in names if n in SKIPPED_FILES])
        self._queue.put((copy, record, extra_files or {}))

    def _work(self) -> None:
        while (job := self._queue.get()) is not None:
            folder, record, extra_files = job
            try:
                commit = push_checkpoint(folder, self.repo_id, record, self.settings, extra_files=extra_files)
                self.report.pushed[record["step"]] = commit
                print(f"pushed step {record['step']} to {self.repo_id}@{commit[:12]}", flush=True)
            except HubError as exc:
                self.report.failed.append(f"step {record['step']}: {exc}")
                print(f"warning: push of step {record['step']} failed, training goes on: {exc}", flush=True)
            finally:
                shutil.rmtree(folder, ignore_errors=True)

    def finish(self) -> PushReport:
        """Wait for every queued push to finish; returns the report."""
        self._queue.put(None)
        self._thread.join()
        shutil.rmtree(self._staging, ignore_errors=True)
        return self.report


class PushCallback(TrainerCallback):
    """Hands every checkpoint the trainer saves (every `save_steps`) to a `CheckpointPusher`; the
    last one is left to the training script, which pushes it after the final evaluation."""

    def __init__(self, pusher: CheckpointPusher, extra: dict) -> None:
        self.pusher, self.extra = pusher, extra

    def on_save(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs) -> None:
        if state.is_world_process_zero and state.global_step < state.max_steps:
            folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            self.pusher.submit(folder, checkpoint_record(state, self.extra))
