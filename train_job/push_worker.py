"""The process that pushes checkpoints for `train_job.pushing.CheckpointPusher`.

    python -m train_job.push_worker USER/NAME [--retries N] [--backoff S]

Reads one JSON job per line on stdin, `{"folder": PATH, "record": {...}, "files": {NAME: TEXT}}`,
pushes the folder (plus `files`) as one checkpoint commit, deletes the folder, and answers one JSON
line on stdout: `{"step": N, "commit": SHA}` or `{"step": N, "error": "..."}`. It ends at the end of
its input. The endpoint and token come from HF_ENDPOINT / HF_TOKEN in its environment.

It runs apart from the training process because uploads bring their own threads and progress bars:
tqdm bars made in a thread beside the trainer's share tqdm's instance set under another lock, and
crashed a resumed run with "Set changed size during iteration".
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from qa_core.config import load_settings
from qa_core.hub.checkpoints import push_checkpoint


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m train_job.push_worker", description=__doc__.split("\n")[0])
    parser.add_argument("repo")
    parser.add_argument("--retries", type=int, default=None)
    parser.add_argument("--backoff", type=float, default=None)
    args = parser.parse_args(argv)
    settings = load_settings(None)
    answers, sys.stdout = sys.stdout, sys.stderr  # stdout carries answers only; anything printed goes to stderr
    for line in sys.stdin:
        job = json.loads(line)
        step = job["record"]["step"]
        try:
            commit = push_checkpoint(
                job["folder"],
                args.repo,
                job["record"],
                settings,
                extra_files=job["files"],
                retries=args.retries,
                backoff=args.backoff,
            )
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
