"""Training throughput: real (non-pad) tokens per second, default batching vs every example padded to 512.

    python -m benchmarks.train_throughput                          # a local 4-layer Llama, CPU
    python -m benchmarks.train_throughput --model demo             # the (overhead-bound) demo model
    python -m benchmarks.train_throughput --model Qwen/Qwen2.5-0.5B-Instruct --steps 50 --gpu

Both runs train the same model on the same data for the same number of steps with the same
batch size, through `train_job/run.py`; the only difference is `--batching` (the default `auto`
against `max-length`). The data mixes lengths the way QA data does: each bundled sample question
without context, with its evidence, and with a long context of three passages. The last line is
`ratio=<default tokens/s ÷ padded tokens/s>`, each the best of --repeats runs, alternated (a run of
30 steps lasts seconds, and other work on the machine moves single runs by up to 20%).

Without --model the model is the demo recipe widened to 4 layers x 256 (about 1.8 M parameters,
random weights): large enough that a step's time is spent on tokens, as when fine-tuning a 7 B
model, rather than on the fixed per-step overhead that dominates the 0.4 M demo model.
"""

from __future__ import annotations

import argparse
import csv
import random
import tempfile
from pathlib import Path

from qa_core.data import load_qa_data
from qa_core.demo_model import build_demo_model, sample_data_path
from train_job.run import main, parse_args


def mixed_length_data(path: Path, seed: int = 0) -> Path:
    rows = load_qa_data(sample_data_path()).to_list()
    contexts = [row["context"] for row in rows]
    rng = random.Random(seed)
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["question", "answer", "context"])
        for row in rows:
            long_context = "\n\n".join([*rng.sample(contexts, 2), row["context"]])
            for context in ("", row["context"], long_context):
                writer.writerow([row["question"], row["answer"], context])
    return path


def tokens_per_second(options: list[str]) -> tuple[float, str]:
    with tempfile.TemporaryDirectory() as out:
        record = main(*parse_args([*options, "--output_dir", out]))
    return record["train_tokens"] / record["train_runtime"], record["batching"]


def main_benchmark() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", help="model id or folder (default: a local 4-layer x 256 Llama)")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=2, help="runs of each way; the best counts")
    parser.add_argument("--gpu", action="store_true", help="train on the GPU instead of the CPU")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as folder:
        data = mixed_length_data(Path(folder) / "mixed.csv")
        model = args.model or str(build_demo_model(Path(folder) / "model", hidden_size=256, num_hidden_layers=4))
        options = [
            "--model",
            model,
            "--data",
            str(data),
            "--prompt_style",
            "qa",
            "--max_steps",
            str(args.steps),
            "--per_device_train_batch_size",
            str(args.batch_size),
            "--max_length",
            "512",
            "--eval_strategy",
            "no",
            "--save_strategy",
            "no",
            "--logging_steps",
            str(args.steps),
            "--report_to",
            "none",
            "--use_cpu",
            str(not args.gpu),
        ]
        runs: dict[str, list[float]] = {"padded": [], "default": []}
        for _ in range(args.repeats):
            runs["padded"].append(tokens_per_second([*options, "--batching", "max-length"])[0])
            speed, batching = tokens_per_second(options)
            runs["default"].append(speed)
    padded, default = max(runs["padded"]), max(runs["default"])
    print(
        f"{args.model or 'local 4x256 Llama'}, {args.steps} steps of {args.batch_size} examples, best of "
        f"{args.repeats}: padded to 512 {padded:.0f} tokens/s ({', '.join(f'{x:.0f}' for x in runs['padded'])}), "
        f"default ({batching}) {default:.0f} tokens/s ({', '.join(f'{x:.0f}' for x in runs['default'])})"
    )
    print(f"ratio={default / padded:.2f}")


if __name__ == "__main__":
    main_benchmark()
