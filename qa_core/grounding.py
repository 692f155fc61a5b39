"""Every figure of a grounded answer checked against its sources, and "the documents do not say"
when no source states what was asked.

A finance reader needs to know, before reading on, whether "25% of the average daily volume" comes
from the filing and answers the question, or comes from the model. Each figure of an answer is read
as a quantity (`qa_core.quantities`: "$546 million" is money, "546 employees" a count, the 10 of
"Section 10(b)" no figure) and looked for in the sources (RAG chunks, or the one context of context
QA), sentence by sentence, cited sources first. A figure gets a ✓ (`supported`) only when a source
states it as the same kind of quantity, that source names what the question names (company, rule,
year: `qa_core.questions`), the quantity is of the kind asked ("at what rate" wants a percentage)
and its sentence speaks of no other year than the one asked. A figure stated in a source that fails
one of those is `off_question` (found, with the reason), and one stated nowhere `unsupported`.
The question's own figures, citation marks ("[2]") and list numbers ("1.") do not count.

Before any figure, `unstated` asks whether any source can answer at all: none names the
question's subjects, or none that does states the kind of quantity asked. Then every surface
answers that the documents do not state it (`settle`), whatever the model wrote.

    >>> check = check_figures("About 3.86% of $1.15 million.", ["The loan is $1,150,000 at 3.5%."])
    >>> check.unsupported, [(f.figure, f.source) for f in check.supported]
    (['3.86%'], [('$1.15 million', 1)])
    >>> check.warning
    '3.86% is in none of the sources'
    >>> unstated("At what rate does the loan to Kestrel Robotics accrue?", ["Acme leases 25,000 square feet."])
    'no source names Kestrel Robotics'
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field

from qa_core.embeddings import EmbeddingModel
from qa_core.extractive import Sentence, best_sentences, split_sentences
from qa_core.quantities import DATE, KIND_NAMES, YEAR, Quantity, quantities
from qa_core.questions import accepts, asked_kind, subjects, unnamed

CITATION_MARK = re.compile(r"\[\d+\]")
LIST_NUMBER = re.compile(r"^\s*\d{1,2}[.)]\s", re.MULTILINE)
NOT_STATED = {"documents": "The documents do not state this", "context": "The context does not state this"}
QUOTE_CANDIDATES = 10  # best sentences looked through for one that states the kind of quantity asked
# The tail of an answer that loops: the same words (6 to 80 characters) three times or more in a row.
LOOP = re.compile(r"(\S.{5,79}?)(?:\s*\1){2,}\s*$", re.DOTALL)


@dataclass
class CheckedFigure:
    """A figure of the answer as written, the source (numbered from 1) and sentence that state it,
    and why it does, or does not, answer the question."""

    figure: str
    source: int
    sentence: str
    why: str


@dataclass
class FigureCheck:
    """The answer's figures: shown with a ✓ (`supported`), stated in a source but not shown to answer
    the question (`off_question`), and stated in none (`unsupported`)."""

    supported: list[CheckedFigure] = field(default_factory=list)
    off_question: list[CheckedFigure] = field(default_factory=list)
    unsupported: list[str] = field(default_factory=list)

    @property
    def flagged(self) -> bool:
        """Whether any figure lacks a ✓."""
        return bool(self.unsupported or self.off_question)

    @property
    def warning(self) -> str | None:
        """One line naming each figure without a ✓ and why, or None when there is none."""
        parts = []
        if self.unsupported:
            names = ", ".join(self.unsupported[:-1]) + (" and " if len(self.unsupported) > 1 else "")
            parts.append(
                f"{names}{self.unsupported[-1]} {'is' if len(self.unsupported) == 1 else 'are'} in none of the sources"
            )
        parts += [f"{f.figure} is stated in [{f.source}] but {f.why}" for f in self.off_question]
        return "; ".join(parts) or None

    def to_dict(self) -> dict:
        return {
            "supported_figures": [asdict(f) for f in self.supported],
            "off_question_figures": [asdict(f) for f in self.off_question],
            "unsupported_figures": self.unsupported,
        }


def _years(found: Iterable[Quantity]) -> set[int]:
    return {int(q.figure.digits) for q in found if q.kind in (YEAR, DATE) and 1800 <= q.figure.digits <= 2100}


def _why_not(
    kind: str | None, asked_years: set[int], stated: Quantity, sentence: list[Quantity], missing: list[str]
) -> str | None:
    """Why `stated`, a quantity of a `sentence` in a source that does not name the question's
    subjects `missing`, does not answer a question asking for `kind` about `asked_years`; None when it does."""
    if missing:
        return f"that source does not name {' or '.join(missing)}"
    if not accepts(kind, stated.kind):
        return f"as {KIND_NAMES[stated.kind]}, and the question asks for {KIND_NAMES[kind]}"
    other_years = _years(q for q in sentence if q is not stated)
    if asked_years and other_years and not asked_years & other_years:
        stated_for, asked_about = (", ".join(map(str, sorted(years))) for years in (other_years, asked_years))
        return f"for {stated_for}, and the question asks about {asked_about}"
    return None


def check_figures(
    answer: str,
    sources: list[str],
    question: str = "",
    preferred: Sequence[int] = (),
    embedding: EmbeddingModel | None = None,
) -> FigureCheck:
    """Look each figure of `answer` up in `sources`: the `preferred` source numbers (those the answer
    cites) first, then the others in order; in each, sentence by sentence. Where a source states
    several quantities of the kind asked, the figure must be in the sentence of that source that
    best answers `question` (ranked as extractive answers are, with `embedding`): a sheet's other
    year, or the rent where the loan was asked, gets no ✓.

    Returns:
        The `FigureCheck`: figures with a ✓, figures found but not answering (each with source,
        sentence and why), figures found nowhere.
    """
    check = FigureCheck()
    asked, kind = quantities(question), asked_kind(question)
    asked_years = _years(asked)
    order = [*dict.fromkeys(n for n in preferred if 1 <= n <= len(sources)), *range(1, len(sources) + 1)]
    missing = {n: unnamed(question, sources[n - 1]) for n in dict.fromkeys(order)}
    # Each sentence's quantities read once, not once per figure of the answer.
    sentences = [
        (n, sentence, quantities(sentence))
        for n in dict.fromkeys(order)
        for sentence in split_sentences(sources[n - 1])
    ]
    answering: dict[int, tuple[str, list[Quantity]] | None] = {}

    def answers_elsewhere(n: int, stated: Quantity) -> str | None:
        """Why source `n`'s answer to the question is another sentence, without `stated` (None: it is not)."""
        if n not in answering:
            stating = [
                (text, found) for m, text, found in sentences if m == n and any(accepts(kind, q.kind) for q in found)
            ]
            best = best_sentences(question, [text for text, _ in stating], embedding=embedding) if question else []
            answering[n] = stating[best[0].passage] if best else None
        if answering[n] is None or any(stated.same_as(q) for q in answering[n][1]):
            return None
        text, found = answering[n]
        figures = " and ".join(q.text for q in found if accepts(kind, q.kind))
        return f"[{n}] answers the question with {figures}: “{text}”"

    why_not = functools.partial(_why_not, kind, asked_years)
    seen: list[Quantity] = []
    # A year or date the question does not ask for, by the sentences that state it as their one year.
    dating: dict[str, set[tuple[int, str]]] = {}
    for figure in quantities(LIST_NUMBER.sub(" ", CITATION_MARK.sub(" ", answer))):
        if any(figure.same_as(s) for s in seen) or any(figure.figure.same_as(q.figure) for q in asked):
            continue
        seen.append(figure)
        stating = [
            (n, text, in_sentence, stated)
            for n, text, in_sentence in sentences
            for stated in in_sentence
            if figure.same_as(stated)
        ]
        if not stating:
            check.unsupported.append(figure.text)
            continue
        reasons = [
            (n, text, stated, why_not(stated, in_sentence, missing[n]) or answers_elsewhere(n, stated))
            for n, text, in_sentence, stated in stating
        ]
        n, text, stated, why = next((r for r in reasons if r[3] is None), reasons[0])
        if why is None:
            named = subjects(question)
            where = f", in a source that names {' and '.join(named)}" if named else ""
            check.supported.append(CheckedFigure(figure.text, n, text, f"{KIND_NAMES[stated.kind]}{where}"))
            continue
        check.off_question.append(CheckedFigure(figure.text, n, text, why))
        if not asked_years and stated.kind in (YEAR, DATE):
            dating[figure.text] = {(m, t) for m, t, found, q in stating if _years(found) == _years([q])}
    # "18.4% in the third quarter of 2025" for a question naming no year: the one year of the ✓
    # figure's own sentence dates the answer; it is no second answer to flag. (Where that sentence
    # states two years, either may be the wrong one: it stays flagged.)
    supported = {(f.source, f.sentence) for f in check.supported}
    check.off_question = [f for f in check.off_question if not dating.get(f.figure, set()) & supported]
    return check


def unstated(question: str, sources: list[str]) -> str | None:
    """Why no source can state what `question` asks — none names its subjects, or none that does
    states the kind of quantity it asks for —, or None when one may."""
    naming = [text for text in sources if not unnamed(question, text)]
    if not naming:
        missing = [s for s in subjects(question) if all(s in unnamed(question, text) for text in sources)]
        return (
            f"no source names {' or '.join(missing)}"
            if missing
            else f"no one source names {' and '.join(subjects(question))}"
        )
    kind = asked_kind(question)
    if kind and not any(accepts(kind, q.kind) for text in naming for q in quantities(text)):
        about = f" about {' and '.join(subjects(question))}" if subjects(question) else ""
        return f"no source{about} states {KIND_NAMES[kind]}"
    return None


def answering_sentence(
    question: str, passages: list[str], embedding: EmbeddingModel | None = None, pages: list[str] | None = None
) -> Sentence | None:
    """The sentence of `passages` that best answers `question` (see `qa_core.extractive`), taking
    among the best few the first that states the kind of quantity asked, in a passage that names
    the question's subjects; None when the passages hold no sentence."""
    best = best_sentences(question, passages, QUOTE_CANDIDATES, embedding, pages=pages)
    kind = asked_kind(question)
    fits = (
        s
        for s in best
        if not unnamed(question, passages[s.passage])
        and (kind is None or any(accepts(kind, q.kind) for q in quantities(s.text)))
    )
    return next(fits, best[0] if best else None)


def unrepeated(answer: str) -> str:
    """`answer` cut where it starts to loop: the same words three times in a row, or a sentence
    that an earlier one already said, are kept once."""
    looping = LOOP.search(answer[-400:])  # the tail only: this runs on every streamed token
    if looping:
        unit = looping.group(1)
        repeats = re.search(rf"(?:{re.escape(unit)}\s*)+$", answer)
        answer = answer[: repeats.start()] + unit
    said: set[str] = set()
    for sentence in split_sentences(answer, table_rows=False):
        key = " ".join(sentence.lower().split())
        if key in said and len(key) > 5:
            return answer[: answer.rfind(sentence)].rstrip()
        said.add(key)
    return answer


def until_looping(texts: Iterable[str]) -> Iterator[str]:
    """A stream of the whole answer so far, each cut where it starts to loop (`unrepeated`); at the
    first loop the stream is closed, which stops its generation."""
    texts = iter(texts)
    for text in texts:
        kept = unrepeated(text)
        yield kept
        if kept != text:
            close = getattr(texts, "close", None)
            if close:
                close()
            return


def context_quote(question: str, context: str, embedding: EmbeddingModel | None = None) -> str:
    """The sentence of `context` that answers `question` (`answering_sentence`; "" when it has none)."""
    best = answering_sentence(question, [context], embedding)
    return best.text if best else ""


@dataclass
class Grounded:
    """A grounded answer as shown (`answer`), what the model (or the quote) stated (`stated`), the
    figure check of what it stated, and why the two differ: `replaced` is None, "not stated",
    "quote" or "refuse", and `not_stated` the reason no source states what was asked."""

    answer: str
    stated: str
    check: FigureCheck
    replaced: str | None = None
    not_stated: str | None = None

    @property
    def warning(self) -> str | None:
        """What the reader must know before relying on the answer, in one line (None: nothing)."""
        if self.not_stated:
            said = f"; the model's answer was {self.stated!r}" if self.stated and self.stated != self.answer else ""
            return f"the sources do not state what was asked: {self.not_stated}{said}"
        if self.replaced:
            replaced = f"the model's answer {self.stated!r} was replaced (QA_UNSUPPORTED={self.replaced})"
            return f"{replaced}: {self.check.warning}"
        return self.check.warning

    def to_dict(self) -> dict:
        return {
            "answer": self.answer,
            "model_answer": self.stated,
            "replaced": self.replaced,
            "not_stated": self.not_stated,
            **self.check.to_dict(),
        }


def settle(
    question: str,
    answer: str,
    sources: list[str],
    policy: str,
    quote: Callable[[], str],
    where: str = "documents",
    preferred: Sequence[int] = (),
    off_topic: str | None = None,
    embedding: EmbeddingModel | None = None,
) -> Grounded:
    """The answer to show for `answer`, grounded on `sources`: when no source states what is asked
    (`unstated`), that the `where` ("documents" or "context") do not state it; else, under
    QA_UNSUPPORTED `policy`, `warn` keeps an answer whose figures lack a ✓ (the check is shown
    beside it), `quote` replaces it by `quote()`, the sources' own best sentence, and `refuse` by a
    refusal that names the figures. `off_topic` is a reason, known beforehand, why the sources do
    not speak of the question (RAG: the best chunk's retrieval score is too low); `embedding` ranks
    the sources' sentences (see `check_figures`)."""
    check = check_figures(answer, sources, question, preferred, embedding)
    reason = unstated(question, sources) or off_topic
    if reason:
        return Grounded(f"{NOT_STATED[where]} ({reason}).", answer, check, "not stated", reason)
    if policy == "warn" or not check.flagged:
        return Grounded(answer, answer, check)
    if policy == "quote":
        return Grounded(quote(), answer, check, "quote")
    refusal = f"I cannot answer this from the sources: the answer written stated figures they do not ({check.warning})."
    return Grounded(refusal, answer, check, "refuse")


def settle_from_context(
    question: str, answer: str, context: str, policy: str, embedding: EmbeddingModel | None = None
) -> Grounded:
    """Check an answer written from one `context` and settle it under QA_UNSUPPORTED `policy` (see
    `settle`; the quote, the context's answering sentence, is only looked for when it replaces the answer)."""

    def quote() -> str:
        return context_quote(question, context, embedding)

    return settle(question, unrepeated(answer), [context], policy, quote, "context", embedding=embedding)
