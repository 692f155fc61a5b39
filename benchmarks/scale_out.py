"""Data parallel: real (non-pad) tokens per second of 2 training processes against 1, same steps.

    python -m benchmarks.scale_out                     # a local 4-layer Llama on the CPU (gloo)
    python -m benchmarks.scale_out --steps 60 --repeats 3

Both ways run `train_job/run.py` under `torchrun --standalone` on the same mixed-length QA data
(benchmarks/train_throughput.py) for the same number of steps with the same batch per process, so
two processes train on twice the examples; each run's tokens/s is the training script's own
summary. The last line is `ratio=<2 processes ÷ 1 process>`, each the best of --repeats runs,
alternated. On a CPU the processes share its cores (torchrun gives each one thread), so the figure
says what gloo data parallel costs or gains on this machine, not what GPUs would do.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks.train_throughput import mixed_length_data
from qa_core.demo_model import build_demo_model

ROOT = Path(__file__).resolve().parent.parent
SPEED = re.compile(r"\((\d+) tokens/s\)")


def tokens_per_second(processes: int, options: list[str], out: Path) -> float:
    """Train with `processes` processes and return the summary line's tokens/s."""
    torchrun = Path(sys.executable).parent / "torchrun"
    argv = [str(torchrun), "--standalone", "--nproc_per_node", str(processes), "train_job/run.py", *options]
    result = subprocess.run(
        [*argv, "--output_dir", str(out)], cwd=ROOT, capture_output=True, text=True, env={**os.environ}, timeout=1800
    )
    found = SPEED.search(result.stdout)
    if result.returncode != 0 or not found:
        raise SystemExit(f"training with {processes} process(es) failed:\n{result.stderr[-3000:]}")
    return float(found.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=8, help="examples per process and step")
    parser.add_argument("--repeats", type=int, default=2, help="runs of each way; the best counts")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as folder:
        data = mixed_length_data(Path(folder) / "mixed.csv")
        model = build_demo_model(Path(folder) / "model", hidden_size=256, num_hidden_layers=4)
        options = ["--model", str(model), "--data", str(data), "--prompt_style", "qa", "--use_cpu", "true"]
        options += ["--max_steps", str(args.steps), "--per_device_train_batch_size", str(args.batch_size)]
        options += ["--max_length", "512", "--eval_strategy", "no", "--save_strategy", "no", "--report_to", "none"]
        runs: dict[int, list[float]] = {1: [], 2: []}
        for _ in range(args.repeats):
            for processes in runs:
                runs[processes].append(tokens_per_second(processes, options, Path(folder) / f"run{processes}"))
    one, two = max(runs[1]), max(runs[2])
    print(
        f"local 4x256 Llama, {args.steps} steps of {args.batch_size} examples per process, best of {args.repeats}, "
        f"CPU ({os.cpu_count()} cores): 1 process {one:.0f} tokens/s ({', '.join(f'{x:.0f}' for x in runs[1])}), "
        f"2 processes {two:.0f} tokens/s ({', '.join(f'{x:.0f}' for x in runs[2])})"
    )
    print(f"ratio={two / one:.2f}")


if __name__ == "__main__":
    main()
