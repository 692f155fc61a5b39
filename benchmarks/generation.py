"""Generation throughput: answering the same questions in batches vs one at a time.

    python -m benchmarks.generation                               # demo model, CPU
    python -m benchmarks.generation --model Qwen/Qwen2.5-0.5B-Instruct --batch-size 16

Both ways generate greedily for the same prompts (every sample question, in the `qa` style) with
the same maximum length, so they produce the same answers (checked); the batched way pads on the
left and groups prompts of similar length. The last line is `ratio=<sequential s ÷ batched s>`.
"""

from __future__ import annotations

import argparse
import time

from qa_core.data import load_qa_data
from qa_core.demo_model import sample_data_path
from qa_core.generation import GenerationSettings
from qa_core.models import LoadedModel, load_model
from qa_core.prompts import build_prompt

Timed = tuple[list[str], float]


def one_at_a_time_and_batched(
    loaded: LoadedModel, prompts: list[str], settings: GenerationSettings, batch_size: int
) -> tuple[Timed, Timed]:
    """(answers, seconds) answering `prompts` one at a time, then in batches of `batch_size`."""
    loaded.backend.generate_many(prompts[:2], settings)  # warm-up
    start = time.perf_counter()
    sequential = [loaded.backend.generate(p, settings) for p in prompts]
    sequential_s = time.perf_counter() - start
    start = time.perf_counter()
    batched = loaded.backend.generate_many(prompts, settings, batch_size=batch_size)
    return (sequential, sequential_s), (batched, time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="demo")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    args = parser.parse_args()

    loaded = load_model(args.model)
    prompts = [build_prompt("qa", q, None, loaded.tokenizer) for q in load_qa_data(sample_data_path())["question"]]
    settings = GenerationSettings(max_new_tokens=args.max_new_tokens)
    (sequential, sequential_s), (batched, batched_s) = one_at_a_time_and_batched(
        loaded, prompts, settings, args.batch_size
    )

    same = sum(a == b for a, b in zip(sequential, batched, strict=True))
    print(
        f"{loaded.description}: {len(prompts)} answers of up to {args.max_new_tokens} tokens; "
        f"one at a time {sequential_s:.2f}s, batches of {args.batch_size} {batched_s:.2f}s; "
        f"{same}/{len(prompts)} answers identical"
    )
    print(f"ratio={sequential_s / batched_s:.2f}")


if __name__ == "__main__":
    main()
