"""The figure check itself (qa_core.grounding): does it flag a planted wrong figure, and leave right ones alone?

    python -m benchmarks.figure_check
    python -m benchmarks.figure_check --variant b --rows 120

A labelled set built from the fact sheets of `benchmarks/fact_sheets.py`: for each question whose
answer is a figure, three right answers (the reference as written, in a sentence, and the same
value written another way: "$4.2 billion" as "$4,200 million", "12,400" as "12.4 thousand") and
one wrong answer (the figure moved by a factor the sheet does not state: ×1.1, ×0.9, ×10 or ÷10,
or a digit dropped, as small models do: "90 days" for 9). Each answer is checked against its own
fact sheet (context QA) and against three sheets, its own and two others (RAG with k=3). The last
line is `recall=<share of wrong answers flagged> false_alarm=<share of right answers flagged>`, both
with three sheets.

A model's real answers, questions the documents do not answer and answers built to fool the
check are `benchmarks/trust.py`'s.
"""

from __future__ import annotations

import argparse
import random

from benchmarks.fact_sheets import build_rows
from qa_core.grounding import check_figures
from qa_core.metrics import Figure, figure_mentions

FACTORS = (1.1, 0.9, 10, 0.1)


def written_otherwise(text: str, figure: Figure) -> str | None:
    """The same value in another form, or None when the answer's form has no other common one."""
    if text.startswith("$") and figure.scale == 1e9:
        return f"${figure.value / 1e6:,.0f} million"
    if text.startswith("$") and figure.scale == 1e6 and figure.value >= 1e9:
        return f"${figure.value / 1e9:g} billion"
    if text.startswith("$") and figure.scale == 1e6:
        return f"${figure.value:,.0f}"
    if "," in text:
        return f"{figure.value / 1e3:g} thousand"
    if text.endswith("%"):
        return f"{figure.digits:g} percent"
    return None


def planted(text: str, figure: Figure, sheet: str, rng: random.Random) -> str:
    """`text` with its figure changed to one the sheet does not state."""
    stated = [found for _, found in figure_mentions(sheet)]
    for _ in range(50):
        if rng.random() < 0.25 and len(str(int(figure.digits))) > 1:
            digits = str(int(figure.digits))[:-1]  # a digit dropped: 90 -> 9
            wrong = Figure(float(digits), figure.scale)
        else:
            wrong = Figure(round(figure.digits * rng.choice(FACTORS), 2), figure.scale)
        if not any(wrong.same_as(found) for found in stated):
            number = f"{wrong.digits:,.2f}".rstrip("0").rstrip(".")
            return text.replace(text.lstrip("$").split(" ")[0].rstrip("%"), number, 1)
    raise ValueError(f"no wrong figure found for {text!r}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=240)
    parser.add_argument("--variant", choices=("a", "b"), default="a")
    args = parser.parse_args()
    rng = random.Random(0)
    rows = build_rows(args.rows, args.variant)
    sheets = sorted({row["evidence_text"] for row in rows})
    counts = {"right": [0, 0, 0], "wrong": [0, 0, 0]}  # answers, flagged with 1 sheet, flagged with 3 sheets
    for row in rows:
        mentions = figure_mentions(row["answer"])
        if len(mentions) != 1 or row["answer"].isdigit() and len(row["answer"]) == 4:  # figures, not years
            continue
        text, figure = mentions[0]
        others = rng.sample([sheet for sheet in sheets if sheet != row["evidence_text"]], 2)
        right = [row["answer"], f"According to the fact sheet, the answer is {row['answer']}."]
        right += [form] if (form := written_otherwise(text, figure)) else []
        labelled = [("right", answer) for answer in right]
        labelled.append(("wrong", planted(row["answer"], figure, row["evidence_text"], rng)))
        for label, answer in labelled:
            counts[label][0] += 1
            counts[label][1] += check_figures(answer, [row["evidence_text"]], row["question"]).flagged
            counts[label][2] += check_figures(answer, [row["evidence_text"], *others], row["question"]).flagged
    (right, right_1, right_3), (wrong, wrong_1, wrong_3) = counts["right"], counts["wrong"]
    print(
        f"variant {args.variant}: {wrong} wrong answers, {right} right ones; own sheet: recall "
        f"{wrong_1 / wrong:.3f}, false alarm {right_1 / right:.3f}; three sheets: recall {wrong_3 / wrong:.3f}, "
        f"false alarm {right_3 / right:.3f}"
    )
    print(f"recall={wrong_3 / wrong:.3f} false_alarm={right_3 / right:.3f}")


if __name__ == "__main__":
    main()
