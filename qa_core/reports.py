"""The files an evaluation writes: tables to read (Markdown, JSON, CSV) and charts to look at (PNG).

results.md / results.json / answers.csv / comparison.png     one row per answer mode
checkpoints.md / checkpoints.json / checkpoints.png          one row per pushed checkpoint
perplexity.md / perplexity.json                               perplexity of base and fine-tuned on a text
loss.png                                                      a training run's loss curves
answer_scores.png                                             its answer scores by step, the base's as lines
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
from matplotlib import pyplot as plt  # noqa: E402

from qa_core.hub.checkpoints import SCORE_KEYS, score_label, split_scores  # noqa: E402

CHART_METRICS = ("exact_figure", "contains_answer", "semantic_similarity", "rouge_l", "numeric_match", "refusal_rate")


def latest_results(folder: Path) -> Path | None:
    """The newest results.md in `folder` or any folder under it (each `--out` of an evaluation), or None."""
    found = [path for path in folder.rglob("results.md") if path.is_file()] if folder.is_dir() else []
    return max(found, key=lambda path: path.stat().st_mtime, default=None)


def _cell(value: object) -> str:
    if value is None:
        return "n/a"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def markdown_table(rows: list[dict]) -> str:
    columns = list(rows[0])
    table = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    return "\n".join(table + ["| " + " | ".join(_cell(row[c]) for c in columns) + " |" for row in rows])


def write_results(rows: list[dict], answers: list[dict], out: Path, title: str, notes: list[str]) -> None:
    """results.md, results.json, answers.csv and comparison.png in `out`."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.md").write_text(
        f"# {title}\n\n" + markdown_table(rows) + "\n\n" + "\n".join(f"- {n}" for n in notes) + "\n"
    )
    (out / "results.json").write_text(json.dumps({"title": title, "rows": rows, "notes": notes}, indent=2) + "\n")
    with (out / "answers.csv").open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(answers[0]))
        writer.writeheader()
        writer.writerows(answers)
    figure, axis = plt.subplots(figsize=(9, 4.5))
    width = 0.8 / len(rows)
    for i, row in enumerate(rows):
        values = [row[m] if row[m] is not None else 0.0 for m in CHART_METRICS]
        positions = [j + i * width for j in range(len(CHART_METRICS))]
        axis.bar(positions, values, width, label=row["mode"])
    axis.set_xticks([j + width * (len(rows) - 1) / 2 for j in range(len(CHART_METRICS))], CHART_METRICS)
    axis.set_ylim(0, 1)
    axis.set_title(title)
    axis.legend()
    figure.tight_layout()
    figure.savefig(out / "comparison.png", dpi=120)
    plt.close(figure)


def write_checkpoint_results(rows: list[dict], out: Path, title: str) -> None:
    """checkpoints.md, checkpoints.json and checkpoints.png (metrics against the training step)."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "checkpoints.md").write_text(f"# {title}\n\n" + markdown_table(rows) + "\n")
    (out / "checkpoints.json").write_text(json.dumps({"title": title, "rows": rows}, indent=2) + "\n")
    figure, (quality, perplexity) = plt.subplots(1, 2, figsize=(11, 4.5))
    steps = [row["step"] for row in rows]
    for metric in CHART_METRICS:
        if all(row[metric] is not None for row in rows):
            quality.plot(steps, [row[metric] for row in rows], marker="o", label=metric)
    quality.set_xlabel("training step")
    quality.set_ylim(0, 1)
    quality.legend()
    perplexity.plot(steps, [row["perplexity"] for row in rows], marker="o", color="black")
    perplexity.set_xlabel("training step")
    perplexity.set_ylabel("reference perplexity")
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(out / "checkpoints.png", dpi=120)
    plt.close(figure)


def write_perplexity_results(row: dict, out: Path, title: str, note: str) -> None:
    """perplexity.md and perplexity.json in `out`."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "perplexity.md").write_text(f"# {title}\n\n{markdown_table([row])}\n\n- {note}\n")
    (out / "perplexity.json").write_text(json.dumps({"title": title, "note": note, **row}, indent=2) + "\n")


def write_loss_curve(log_history: list[dict], path: Path, title: str) -> bool:
    """Plot training and eval loss against the step from a trainer's `log_history` into `path`.

    Returns:
        False (and no file) when the history holds no loss at all.
    """
    series = {"train loss": "loss", "eval loss": "eval_loss"}
    points = {
        label: [(entry["step"], entry[key]) for entry in log_history if key in entry and "step" in entry]
        for label, key in series.items()
    }
    if not any(points.values()):
        return False
    figure, axis = plt.subplots(figsize=(7, 4))
    for label, values in points.items():
        if values:
            steps, losses = zip(*values, strict=True)
            axis.plot(steps, losses, marker="o" if len(values) < 30 else None, label=label)
    axis.set_xlabel("training step")
    axis.set_ylabel("loss")
    axis.set_title(title)
    axis.legend()
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return True


def write_score_curve(history: list[dict], path: Path, title: str) -> bool:
    """Plot a run's answer scores (`answer_scores` of its checkpoint record: step 0 is the base)
    against the step into `path`, each base score a dashed line of its colour.

    Returns:
        False (and no file) when no checkpoint has been scored.
    """
    base, trained = split_scores(history)
    keys = [key for key in SCORE_KEYS if any(key in entry for entry in trained)]
    if not keys:
        return False
    figure, axis = plt.subplots(figsize=(7, 4))
    for key in keys:
        points = [(entry["step"], entry[key]) for entry in trained if key in entry]
        steps, values = zip(*points, strict=True)
        line = axis.plot(steps, values, marker="o" if len(points) < 30 else None, label=score_label(key))[0]
        if key in base:
            axis.axhline(base[key], color=line.get_color(), linestyle="--", linewidth=1)
    axis.set_xlabel("training step")
    axis.set_ylabel("share of held-out questions (dashed: base model)")
    axis.set_ylim(-0.02, 1.02)
    axis.set_title(title)
    axis.legend(fontsize="small")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return True
