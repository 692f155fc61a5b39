"""Questions whose context does not answer them, made from QA rows: what teaches a model to say so.

    python train_job/run.py --config configs/smollm2-cpu.yaml --data facts.csv --unanswerable_share 0.2
    python -m qa_core.evaluate --data facts.csv --model smollm2 --adapter runs/smollm2-cpu/final --unanswerable 0.2

QA data as users have it holds no unanswerable rows, so fine-tuning on it only ever rewards giving
an answer. `with_unanswerable` adds rows whose context cannot answer the question — the question
with another document's context, or with its own context less the sentences that state the
answer — and whose answer is one phrase, "The context does not state this." by default: the
phrase the app and the CLIs answer with when the figure check finds nothing that states what
was asked.
"""

from __future__ import annotations

import random
import re

from datasets import Dataset

from qa_core.errors import QAError
from qa_core.extractive import sentence_spans
from qa_core.grounding import NOT_STATED
from qa_core.metrics import contains_answer, exact_figure

NOT_STATED_ANSWER = f"{NOT_STATED['context']}."
WITHHELD = "withheld_answer"  # the answer an unanswerable row's context no longer states ("" in the others)


def states(sentence: str, answer: str) -> bool:
    """Whether `sentence` states `answer`: word for word, or every figure of it."""
    return contains_answer(sentence, answer) or bool(exact_figure(sentence, answer))


def without_answer(context: str, answer: str) -> str | None:
    """`context` less every sentence that states `answer`; None when none does, or none is left."""
    spans = sentence_spans(context)
    stating = [(a, b) for a, b in spans if states(context[a:b], answer)]
    if not stating or len(stating) == len(spans):
        return None
    kept, start = [], 0
    for a, b in stating:
        kept.append(context[start:a])
        start = b
    kept.append(context[start:])
    return re.sub(r"[ \t]{2,}", " ", "".join(kept)).strip()


def _other_context(row: dict, rows: list[dict], rng: random.Random) -> str | None:
    """The context of another document's row that does not contain `row`'s answer (None if none)."""
    for _ in range(20):
        other = rng.choice(rows)
        another = other["context"] != row["context"] and (not row["title"] or other["title"] != row["title"])
        if another and not states(other["context"], row["answer"]):
            return other["context"]
    return None


def with_unanswerable(data: Dataset, share: float, answer: str = NOT_STATED_ANSWER, seed: int = 0) -> Dataset:
    """`data` with unanswerable rows added, so that they are `share` of the rows returned; half with
    another document's context, half with their own less the sentences stating the answer (another
    document's where no sentence states it, word for word or every figure of it). A column `withheld_answer` holds the
    answer the context of an added row no longer states ("" in the others: with `share` 0, `data`
    is returned as it is). Shuffled with `seed`; the same seed and data always give the same rows.

    Raises:
        QAError: `share` not in [0, 1), or no row has a context to make such rows from.
    """
    if not 0 <= share < 1:
        raise QAError(f"unanswerable share must be at least 0 and below 1, got {share}")
    if share == 0:
        return data
    rows = [dict(row) for row in data]
    with_context = [row for row in rows if row["context"].strip()]
    if len(with_context) < 2:
        raise QAError("unanswerable rows are made from rows with a context: the data has fewer than two")
    rng = random.Random(seed)
    added = []
    for n in range(round(len(rows) * share / (1 - share))):
        row = rng.choice(with_context)
        context = without_answer(row["context"], row["answer"]) if n % 2 else None
        context = context or _other_context(row, with_context, rng)
        if context:
            added.append({**row, "context": context, "answer": answer, WITHHELD: row["answer"]})
    combined = [{**row, WITHHELD: ""} for row in rows] + added
    rng.shuffle(combined)
    return Dataset.from_list(combined)
