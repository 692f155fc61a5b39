"""Every figure a grounded answer states, looked up in the text it was grounded on.

A finance reader needs to know, before reading on, whether "25% of the average daily volume" comes
from the filing or from the model. Each figure of an answer (amounts, percentages, counts,
durations, dates: the forms numeric match reads, so `$1,150,000` = `1.15 million`) is looked for in
the sources (RAG chunks, or the one context of context QA), sentence by sentence; figures the
question itself states do not count, and neither do citation marks ("[2]") or list numbers ("1.").
The result names, for each supported figure, the source and the sentence that states it, and lists
the unsupported ones, which the app shows as a warning and `QA_UNSUPPORTED` can act on.

    >>> check = check_figures("About 3.86% of $1.15 million.", ["The loan is $1,150,000 at 3.5%."])
    >>> check.unsupported, [(f.figure, f.source) for f in check.supported]
    (['3.86%'], [('$1.15 million', 1)])
    >>> check.warning
    '3.86% is in none of the sources'
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from qa_core.embeddings import EmbeddingModel
from qa_core.extractive import best_sentence, split_sentences
from qa_core.metrics import figure_mentions, figures

CITATION_MARK = re.compile(r"\[\d+\]")
LIST_NUMBER = re.compile(r"^\s*\d{1,2}[.)]\s", re.MULTILINE)


@dataclass
class SupportedFigure:
    """A figure of the answer as written, the source (numbered from 1) and the sentence that states it."""

    figure: str
    source: int
    sentence: str


@dataclass
class FigureCheck:
    """The answer's figures found in its sources, and those found in none."""

    supported: list[SupportedFigure] = field(default_factory=list)
    unsupported: list[str] = field(default_factory=list)

    @property
    def warning(self) -> str | None:
        """One line naming the unsupported figures, or None when there is none."""
        if not self.unsupported:
            return None
        names = ", ".join(self.unsupported[:-1]) + (" and " if len(self.unsupported) > 1 else "") + self.unsupported[-1]
        return f"{names} {'is' if len(self.unsupported) == 1 else 'are'} in none of the sources"

    def to_dict(self) -> dict:
        return {"supported_figures": [asdict(s) for s in self.supported], "unsupported_figures": self.unsupported}


def check_figures(answer: str, sources: list[str], question: str = "") -> FigureCheck:
    """Look each figure of `answer` up in `sources` (in order; the first sentence that states it wins).

    Returns:
        The `FigureCheck`: supported figures with source number and sentence; unsupported ones as written.
    """
    check = FigureCheck()
    asked = figures(question)
    # Each sentence's figures read once, not once per figure of the answer.
    sentences = [
        (n, sentence, figures(sentence))
        for n, text in enumerate(sources, start=1)
        for sentence in split_sentences(text)
    ]
    seen = set()
    for written, figure in figure_mentions(LIST_NUMBER.sub(" ", CITATION_MARK.sub(" ", answer))):
        if figure in seen or any(figure.same_as(q) for q in asked):
            continue
        seen.add(figure)
        found = next(
            ((n, sentence) for n, sentence, stated in sentences if any(figure.same_as(s) for s in stated)), None
        )
        if found:
            check.supported.append(SupportedFigure(written, *found))
        else:
            check.unsupported.append(written)
    return check


def settle(answer: str, check: FigureCheck, policy: str, quote: Callable[[], str]) -> str:
    """The answer to show under QA_UNSUPPORTED `policy`, given its `check`: `warn` keeps it (the
    check is shown beside it); `quote` replaces an answer with an unsupported figure by `quote()`,
    the sources' own best sentence; `refuse` by a refusal that names the figures."""
    if policy == "warn" or not check.unsupported:
        return answer
    if policy == "quote":
        return quote()
    return f"I cannot answer this from the sources: the answer written stated figures they do not ({check.warning})."


def settle_from_context(
    question: str, answer: str, context: str, policy: str, embedding: EmbeddingModel | None = None
) -> tuple[str, FigureCheck]:
    """Check an answer written from one `context` and settle it under QA_UNSUPPORTED `policy` (the
    quote, the context's best sentence, is only looked for when it replaces the answer).

    Returns:
        (the answer to show, its figure check).
    """
    check = check_figures(answer, [context], question)
    return settle(answer, check, policy, lambda: best_sentence(question, [context], embedding)), check
