"""Does fine-tuning teach a model to say "the context does not state this"? SFT, SFT with
unanswerable rows, and SFT then DPO, side by side on held-out fact sheets.

    python -m benchmarks.not_stated                                  # the base model (minutes)
    python -m benchmarks.not_stated --adapter runs/smollm2-cpu/final # one adapter
    python -m benchmarks.not_stated --train                          # the base, and three ways trained (~20 min)

Training data: the walk-through's fact sheets (variant a, 240 rows). Held out: 60 questions about
the fact sheets of variant b (other companies, people, cities and wordings), asked three ways:
- answerable: with their own sheet (exact figure, contains answer, unsupported figure);
- other kind: with a loan or lease sheet (`benchmarks/agreements.py`), which states rates and
  amounts of another borrower: the answer should say the context does not state it;
- answer removed: with their own sheet less the sentences that state the answer, which still
  names the company and states its other figures.
Every answer is the model's own (no answer policy, as `qa_core.evaluate --modes finetuned`).
With `--train`, also the training cost of each (wall time on this machine). The last line is
`key=value` pairs.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import time
from pathlib import Path

from datasets import Dataset

from benchmarks import agreements, fact_sheets
from qa_core.config import load_settings
from qa_core.generation import GenerationSettings
from qa_core.unanswerable import NOT_STATED_ANSWER, without_answer

SETS = ("answerable", "other_kind", "answer_removed")
# name -> the run.py options of each way of training, after --data and --output_dir
WAYS = {
    "sft": ["--config", "configs/smollm2-cpu.yaml", "--unanswerable_share", "0"],
    "sft_unanswerable": ["--config", "configs/smollm2-cpu.yaml"],
    "sft_dpo": ["--config", "configs/smollm2-cpu-dpo.yaml", "--adapter", "{sft_unanswerable}"],
}
METRICS = {
    "answerable": ("exact_figure", "contains_answer", "unsupported_figure", "not_stated_when_answerable"),
    "other_kind": ("not_stated", "figure_when_unanswerable"),
    "answer_removed": ("not_stated", "figure_when_unanswerable"),
}


def held_out(rows: int = 60, seed: int = 1) -> dict[str, Dataset]:
    """The held-out questions, asked with their own sheet, a sheet of another kind, and their own
    sheet less the answer (those whose answer no sentence states word for word are left out)."""
    facts = fact_sheets.build_rows(rows, "b", seed=seed)
    loans = [row["evidence_text"] for row in agreements.build_rows(60, seed=seed)]
    rng = random.Random(seed)

    def dataset(rows_: list[tuple[dict, str]], answer: str | None) -> Dataset:
        return Dataset.from_list(
            [{"question": r["question"], "answer": answer or r["answer"], "context": c} for r, c in rows_]
        )

    removed = [(row, without_answer(row["evidence_text"], row["answer"])) for row in facts]
    return {
        "answerable": dataset([(row, row["evidence_text"]) for row in facts], None),
        "other_kind": dataset([(row, rng.choice(loans)) for row in facts], NOT_STATED_ANSWER),
        "answer_removed": dataset([(row, context) for row, context in removed if context], NOT_STATED_ANSWER),
    }


def scores(adapter: str | None, sets: dict[str, Dataset], model: str = "smollm2") -> dict[str, float]:
    """`metric@set` of the model's own answers (`base` when no adapter, else `finetuned`)."""
    from qa_core.evaluate import evaluate
    from qa_core.models import load_model

    settings = load_settings(None)
    loaded = load_model(model, adapter, settings=settings)
    mode = "finetuned" if adapter else "base"
    out = {}
    for name, data in sets.items():
        (row,), _ = evaluate(loaded, data, [mode], settings, GenerationSettings(max_new_tokens=48))
        out |= {f"{metric}@{name}": round(row[metric], 3) for metric in METRICS[name]}
    return out


def train(way: str, data: Path, out: Path, done: dict[str, Path]) -> tuple[Path, float]:
    """Train one way with `train_job/run.py`; returns (the adapter folder, wall seconds)."""
    options = [option.format(**{name: str(folder) for name, folder in done.items()}) for option in WAYS[way]]
    started = time.perf_counter()
    command = [sys.executable, "train_job/run.py", *options, "--data", str(data), "--output_dir", str(out / way)]
    subprocess.run(command, check=True)
    return out / way / "final", time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--adapter", help="evaluate this adapter (folder or REPO[@REV]) against the base")
    parser.add_argument("--train", action="store_true", help="train SFT, SFT + unanswerable rows and SFT then DPO")
    parser.add_argument("--out", type=Path, default=Path("runs/not-stated"), help="where --train puts its runs")
    args = parser.parse_args()
    sets = held_out()
    results = {} if args.adapter and not args.train else {"base": scores(None, sets)}
    if args.adapter:
        results["adapter"] = scores(args.adapter, sets)
    if args.train:
        data = args.out / "facts.csv"
        data.parent.mkdir(parents=True, exist_ok=True)
        fact_sheets.write_csv(data, fact_sheets.build_rows(240, "a"))
        done: dict[str, Path] = {}
        for way in WAYS:
            done[way], seconds = train(way, data, args.out, done)
            results[way] = {"train_seconds": round(seconds), **scores(str(done[way]), sets)}
    (args.out / "not_stated.json").parent.mkdir(parents=True, exist_ok=True)
    (args.out / "not_stated.json").write_text(json.dumps(results, indent=2) + "\n")
    for name, row in results.items():
        print(name, json.dumps(row))
    print(" ".join(f"{name}.{key}={value}" for name, row in results.items() for key, value in row.items()))


if __name__ == "__main__":
    main()
