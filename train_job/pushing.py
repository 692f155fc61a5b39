"""Push training checkpoints to the Hub while training goes on, one commit per checkpoint.

Every checkpoint the trainer saves gets its record (step, losses, eval metrics, prompt style ...)
written into the folder as `checkpoint.json`, so a local checkpoint says how it was trained too.
With a `CheckpointPusher`, the folder is then copied aside (the trainer may delete it while it
uploads) and handed to a separate push process (`train_job.push_worker`), which pushes the copies
in order. At most `max_pending` copies wait; beyond that, training waits for the uploads instead of
filling the disk. A failed push is retried (`qa_core.hub.client`), through an outage of the Hub for
`--push-patience` seconds, then reported, and training goes on; `finish()` waits for the rest.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from qa_core.config import Settings
from qa_core.hub import client as hub_client
from qa_core.hub.checkpoints import score_history, write_record
from qa_core.hub.client import NEVER_PUSHED
from train_job.shards import is_sharded, write_whole_adapter

ROOT = Path(__file__).resolve().parent.parent


def checkpoint_record(state: TrainerState, extra: dict) -> dict:
    """Step, epoch, the last logged training loss, this step's eval metrics (answer scores included),
    the answer scores of every evaluation so far and of the base (`answer_scores`), plus `extra`."""
    record: dict = {"step": state.global_step, "epoch": round(state.epoch or 0.0, 4), **extra}
    for entry in state.log_history:
        for key, value in entry.items():
            if not isinstance(value, (int, float)):
                continue
            if key == "loss" or (key.startswith("eval_") and entry.get("step") == state.global_step):
                record[key] = round(float(value), 6)
    if "eval_loss" in record:
        record["eval_perplexity"] = round(math.exp(min(record["eval_loss"], 50)), 4)
    history = score_history(state.log_history)
    if history:  # every checkpoint so far and the base: the card's table, `@best` across a run
        record["answer_scores"] = history
    return record


@dataclass
class PushReport:
    """What the pusher did: commit sha per step, and why each push that failed for good failed."""

    pushed: dict[int, str] = field(default_factory=dict)
    failed: dict[int, str] = field(default_factory=dict)


class CheckpointPusher:
    """Pushes checkpoint folders to `repo_id` from a separate process, in the order given.

    `card(record)` gives the README.md pushed with each checkpoint; steps up to `skip_through`
    (those already on the repo, when a run resumes from it) are not pushed again. While the Hub is
    unavailable, a push keeps trying for `patience` seconds; meanwhile at most `max_pending`
    checkpoints wait, then training waits too.
    """

    def __init__(
        self,
        repo_id: str,
        settings: Settings,
        card: Callable[[dict], str],
        skip_through: int = -1,
        max_pending: int = 2,
        patience: float = 0.0,
    ) -> None:
        self.repo_id, self.card, self.skip_through = repo_id, card, skip_through
        self.report = PushReport()
        self._staging = Path(tempfile.mkdtemp(prefix="qa-push-"))
        self._slots = threading.Semaphore(max_pending)
        self._pending: set[int] = set()
        env = {
            **os.environ,
            "HF_ENDPOINT": settings.hf_endpoint,
            "HF_TOKEN": settings.hf_token or "",
            "HF_HUB_DISABLE_PROGRESS_BARS": "1",
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        }
        limits = ["--backoff", str(hub_client.BACKOFF_SECONDS), "--patience", str(patience)]
        self._worker = subprocess.Popen(
            [sys.executable, "-m", "train_job.push_worker", repo_id, *limits],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        self._reader = threading.Thread(target=self._read_answers, name="hub-push-answers", daemon=True)
        self._reader.start()

    def submit(self, folder: Path, record: dict) -> None:
        """Copy `folder` aside and queue it for pushing with its `record` (waits while
        `max_pending` pushes are queued)."""
        step = record["step"]
        if step <= self.skip_through:
            print(f"step {step} is already on {self.repo_id}; not pushed again", flush=True)
            return
        self._slots.acquire()
        if self._worker.poll() is not None:  # the worker is gone: report instead of waiting forever
            self._slots.release()
            self._fail(step, f"the push process exited with status {self._worker.returncode}")
            return
        copy = self._staging / f"step-{step}"
        shutil.copytree(folder, copy, ignore=lambda _dir, names: [n for n in names if n in NEVER_PUSHED])
        self._pending.add(step)
        job = {"folder": str(copy), "record": record, "files": {"README.md": self.card(record)}}
        try:
            self._worker.stdin.write(json.dumps(job) + "\n")
            self._worker.stdin.flush()
        except OSError:  # it died after the check above; its reader reports the pending step
            pass

    def _fail(self, step: int, reason: str) -> None:
        self.report.failed[step] = reason
        print(f"warning: push of step {step} failed, training goes on: {reason}", flush=True)

    def _read_answers(self) -> None:
        for line in self._worker.stdout:
            answer = json.loads(line)
            step = answer["step"]
            self._pending.discard(step)
            if "commit" in answer:
                self.report.pushed[step] = answer["commit"]
                print(f"pushed step {step} to {self.repo_id}@{answer['commit'][:12]}", flush=True)
            else:
                self._fail(step, answer["error"])
            self._slots.release()
        code = self._worker.wait()
        for step in sorted(self._pending):  # the worker died with pushes outstanding
            self._fail(step, f"the push process exited with status {code}")
            self._slots.release()
        self._pending.clear()

    def finish(self) -> PushReport:
        """Wait for every queued push to finish; returns the report."""
        self._worker.stdin.close()
        self._reader.join()
        shutil.rmtree(self._staging, ignore_errors=True)
        return self.report

    def abort(self) -> None:
        """Stop pushing at once (training failed): end the push process, remove the staged copies."""
        self._worker.kill()
        self._reader.join()
        shutil.rmtree(self._staging, ignore_errors=True)


class CheckpointCallback(TrainerCallback):
    """Writes the record into every checkpoint the trainer saves (every `save_steps`) and hands it
    to the `pusher`, if any; the last one is left to the training script, which pushes it after the
    final evaluation. Also applies this run's save / eval / logging intervals on resume."""

    def __init__(self, extra: dict, pusher: CheckpointPusher | None = None) -> None:
        self.extra, self.pusher = extra, pusher

    def on_train_begin(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs) -> None:
        # A resumed trainer keeps the save / eval / logging intervals of the run it resumes; this
        # run's options (--push-every, eval_steps ...) must win.
        state.compute_steps(args, state.max_steps)

    def on_save(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs) -> None:
        folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        model = kwargs.get("model")
        if model is not None and is_sharded(model):  # every process takes part; process 0 writes it whole
            write_whole_adapter(model, folder, trained=state.global_step > 0)
        if not state.is_world_process_zero:
            return
        record = checkpoint_record(state, self.extra)
        write_record(folder, record)
        if self.pusher and state.global_step < state.max_steps:
            self.pusher.submit(folder, record)
