"""The process that pushes checkpoints for `train_job.pushing.CheckpointPusher`.

    python -m train_job.push_worker USER/NAME [--backoff S] [--patience S]

Reads one JSON job per line on stdin, `{"folder": PATH, "record": {...}, "files": {NAME: TEXT}}`,
pushes the folder (plus `files`) as one checkpoint commit, deletes the folder, and answers one JSON
line on stdout: `{"step": N, "commit": SHA}` or `{"step": N, "error": "..."}`. It ends at the end of
its input. The endpoint and token come from HF_ENDPOINT / HF_TOKEN in its environment; the repo
exists (the training script made it before training). While the Hub is unavailable (HTTP 429 / 5xx,
no connection) a push is tried again, waiting `--backoff` seconds, then twice as long each time up
to 30 s, for `--patience` seconds: an outage of minutes delays the checkpoints, in order, instead
of losing them. This loop is the only one: each try is a single request of the client (no retries
of its own inside). Other failures (a refused token, a bad repo) are answered at once.

It runs apart from the training process because uploads bring their own threads and progress bars:
tqdm bars made in a thread beside the trainer's share tqdm's instance set under another lock, and
crashed a resumed run with "Set changed size during iteration".
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

from qa_core.config import Settings, load_settings
from qa_core.errors import HubError
from qa_core.hub.checkpoints import push_checkpoint
from qa_core.hub.client import is_transient

LONGEST_WAIT_SECONDS = 30.0


def push_patiently(job: dict, args: argparse.Namespace, settings: Settings) -> str:
    """Push one job, trying again while the Hub is unavailable, for `args.patience` seconds.

    Returns:
        The commit sha.

    Raises:
        HubError: a failure that is not an outage, or an outage longer than the patience.
    """
    deadline = time.monotonic() + args.patience
    wait = args.backoff
    while True:
        try:
            return push_checkpoint(
                job["folder"], args.repo, job["record"], settings, extra_files=job["files"], retries=0, create=False
            )
        except HubError as exc:
            if not is_transient(exc.__cause__) or time.monotonic() + wait > deadline:
                raise
            print(f"push of step {job['record']['step']}: {exc}; trying again in {wait:.0f} s", file=sys.stderr)
            time.sleep(wait)
            wait = min(wait * 2, LONGEST_WAIT_SECONDS)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m train_job.push_worker", description=__doc__.split("\n")[0])
    parser.add_argument("repo")
    parser.add_argument("--backoff", type=float, default=1.0, help="seconds before the first try again")
    parser.add_argument("--patience", type=float, default=0.0, help="seconds to keep trying while the Hub is down")
    args = parser.parse_args(argv)
    settings = load_settings(None)
    answers, sys.stdout = sys.stdout, sys.stderr  # stdout carries answers only; anything printed goes to stderr
    for line in sys.stdin:
        job = json.loads(line)
        step = job["record"]["step"]
        try:
            commit = push_patiently(job, args, settings)
            answer = {"step": step, "commit": commit}
        except Exception as exc:  # every failure is reported to the trainer, whatever raised it
            answer = {"step": step, "error": settings.redact(str(exc) or type(exc).__name__)}
        finally:
            shutil.rmtree(Path(job["folder"]), ignore_errors=True)
        answers.write(json.dumps(answer) + "\n")
        answers.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
