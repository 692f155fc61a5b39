"""What answer scores at every checkpoint cost: the walk-through's smollm2 run with and without them.

    python -m benchmarks.fact_sheets --out runs/facts.csv
    python -m benchmarks.scoring_cost --data runs/facts.csv            # two runs of about 3 minutes on 2 cores

Runs `train_job/run.py --config configs/smollm2-cpu.yaml` twice on the same data and seed, with
`--score_questions 0` and with the default (32 held-out questions: the base before the first step,
then every checkpoint), and compares wall time and the trained weights (which must be the same).
The last line is `scored_s=… unscored_s=… weights_equal=… ratio=…`, the ratio being unscored ÷
scored wall time (1.0: free).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from safetensors.torch import load_file

ROOT = Path(__file__).resolve().parent.parent


def train(data: str, out: Path, score_questions: int) -> float:
    """One run of the walk-through's preset; returns its wall time in seconds."""
    command = [sys.executable, "train_job/run.py", "--config", "configs/smollm2-cpu.yaml", "--data", data]
    command += ["--output_dir", str(out), "--score_questions", str(score_questions)]
    started = time.perf_counter()
    subprocess.run(command, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="the fact sheets (python -m benchmarks.fact_sheets --out …)")
    parser.add_argument("--score-questions", type=int, default=32)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        folders = {"unscored": Path(scratch) / "unscored", "scored": Path(scratch) / "scored"}
        seconds = {
            "unscored": train(args.data, folders["unscored"], 0),
            "scored": train(args.data, folders["scored"], args.score_questions),
        }
        weights = [load_file(folder / "final" / "adapter_model.safetensors") for folder in folders.values()]
        equal = weights[0].keys() == weights[1].keys() and all(
            torch.equal(weights[0][k], weights[1][k]) for k in weights[0]
        )
        record = json.loads((folders["scored"] / "final" / "checkpoint.json").read_text())
    for entry in record["answer_scores"]:
        scores = "  ".join(f"{key.removeprefix('eval_')}={value:.3f}" for key, value in entry.items() if key != "step")
        print(f"step {entry['step']:>3} ({'base' if entry['step'] == 0 else 'adapter'}): {scores}")
    print(
        f"scored_s={seconds['scored']:.0f} unscored_s={seconds['unscored']:.0f} weights_equal={equal} "
        f"ratio={seconds['unscored'] / seconds['scored']:.2f}"
    )


if __name__ == "__main__":
    main()
