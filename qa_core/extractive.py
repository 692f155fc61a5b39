"""Answer with the passage's own words: the sentence that best answers a question, and where it is.

No language model writes anything, so nothing is made up: the answer is a sentence of the given
context (or of the retrieved chunks), with its citation. Sentences are ranked by the meaning of
question and sentence (the embedding model's cosine similarity) plus two cheap signals: how many of
the question's content words the sentence contains, and, for questions asking for an amount or a
date, whether the sentence holds a number. The meaning is compared without the question's names
and years: they found the passage, and inside it they match its running header ("Contoso Energy |
Annual Report ... 2023") better than the row that answers (the shared words still count them, so a
passage about several companies still gives the one asked about). A table (lines that mostly end in a figure, as text
taken from a PDF or a Markdown table lays rows out) is split into its rows, so that the answer to
"What was the capital expenditure?" is one row, not the whole table.

Sentences end where NLTK's Punkt tokenizer says, told the abbreviations of finance and policy text
("U.S.", "Inc.", "No.", "approx.", "Dr."): a full stop after one does not end a sentence, so a
quoted answer never begins mid-sentence. Punkt is already installed (rouge-score needs NLTK) and
needs no download when given its abbreviations; pysbd, the other small splitter, cut after
"approx." and rewrites whitespace unless told not to.

    >>> best_sentences("How fast must breaches be reported?",
    ...                ["Breaches must be reported within 72 hours. Lunch is at noon."])[0].text
    'Breaches must be reported within 72 hours.'
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from nltk.tokenize.punkt import PunktParameters, PunktSentenceTokenizer

from qa_core.embeddings import EmbeddingModel, load_sentence_model

# Lower case, without the last full stop, as Punkt looks them up. Not "etc.": it mostly ends one.
_ABBREVIATION_TEXT = """
u.s u.k u.n e.u e.g i.e vs approx inc corp co ltd llc plc bros dept govt univ assn
no nos art sec para ch fig figs vol pp p ref cf al mr mrs ms dr prof sr jr st rev gen hon
jan feb mar apr jun jul aug sep sept oct nov dec mon tue wed thu fri
"""
ABBREVIATIONS = frozenset(_ABBREVIATION_TEXT.split())
_PUNKT = PunktParameters()
_PUNKT.abbrev_types = set(ABBREVIATIONS)
SENTENCES = PunktSentenceTokenizer(_PUNKT)
BLOCK = re.compile(r"\n\s*\n")
LINE = re.compile(r"[^\n]+")
ROW_END = re.compile(r"(?:\d\)?|%|\|)$")  # a figure, a negative one in parentheses, a percentage, a Markdown cell
WORD = re.compile(r"[a-z0-9]+(?:[.,][0-9]+)?")
NUMBER = re.compile(r"\d")
# Names and years: capitalised words that do not open a sentence, "FY2023", "2023".
NAME = re.compile(r"(?<![.!?]\s)(?<!^)\b(?:[A-Z][\w&'-]*|FY\d{2,4}|(?:19|20)\d{2})\b")
QUANTITY_QUESTION = re.compile(
    r"^\s*(how (many|much|long|fast|often|soon)|when|what (year|date|percent|share|amount))", re.I
)
_STOPWORD_TEXT = """
a an the of in on at to for by with from and or is are was were be been it its this that these those what which
who whom how when where why do does did has have had can could should would will must may might their there
than then into about as per our your his her they them we you i
"""
STOPWORDS = frozenset(_STOPWORD_TEXT.split())
WORD_WEIGHT, NUMBER_WEIGHT = 0.5, 0.1


def _is_table(lines: list[str]) -> bool:
    rows = sum(1 for line in lines if ROW_END.search(line))
    return rows >= 2 and rows * 2 >= len(lines)


def sentence_spans(text: str, table_rows: bool = True) -> list[tuple[int, int]]:
    """The (start, end) offsets in `text` of its sentences (see `split_sentences`), in order; what
    lies between two spans is whitespace."""
    spans, start = [], 0
    block_ends = [(m.start(), m.end()) for m in BLOCK.finditer(text)] + [(len(text), len(text))]
    for end, next_start in block_ends:
        block = text[start:end]
        lines = [m.span() for m in LINE.finditer(block) if m.group().strip()]
        pieces = lines if table_rows and _is_table([block[a:b] for a, b in lines]) else SENTENCES.span_tokenize(block)
        for a, b in pieces:
            piece = block[a:b]
            if piece.strip():  # offsets of the piece without its surrounding whitespace
                lead = len(piece) - len(piece.lstrip())
                spans.append((start + a + lead, start + a + len(piece.rstrip())))
        start = next_start
    return spans


def split_sentences(text: str, table_rows: bool = True) -> list[str]:
    """The sentences of `text` (split at blank lines and after . ! ? that do not close an
    abbreviation), and with `table_rows` each line of a table its own; blank ones dropped.

    >>> split_sentences("Returns on U.S. stocks were 9.6% approx. in 2005. Bonds did less.")
    ['Returns on U.S. stocks were 9.6% approx. in 2005.', 'Bonds did less.']
    """
    return [text[start:end] for start, end in sentence_spans(text, table_rows)]


def content_words(text: str) -> set[str]:
    return {word for word in WORD.findall(text.lower()) if word not in STOPWORDS and len(word) > 1}


@dataclass
class Sentence:
    """A sentence of passage number `passage` (0-based), and how well it answers the question."""

    text: str
    passage: int
    score: float


def what_is_asked(question: str) -> str:
    """`question` without its names and years, which say where to look, not what to find.

    >>> what_is_asked("What was Contoso Energy's net revenue in FY2023?")
    'What was net revenue in ?'
    """
    return " ".join(NAME.sub(" ", question).split()) or question


def _unrepeated(candidates: list[tuple[str, int]], pages: list[str]) -> list[tuple[str, int]]:
    """The (sentence, passage) candidates less those that two pages or more state word for word
    (`pages`: the page each passage comes from): a running header or footer, a standard note. Such
    a line answers no question, yet it names the company and the year the question names. All of
    them when every one repeats."""
    pages_of: dict[str, set[str]] = {}
    for text, passage in candidates:
        pages_of.setdefault(text, set()).add(pages[passage])
    return [c for c in candidates if len(pages_of[c[0]]) < 2] or candidates


def best_sentences(
    question: str,
    passages: list[str],
    top: int = 1,
    embedding: EmbeddingModel | None = None,
    table_rows: bool = True,
    pages: list[str] | None = None,
) -> list[Sentence]:
    """The `top` sentences (or table rows, see `split_sentences`) of `passages` that best answer
    `question`, best first, scored with the sentence-embedding model `embedding` (default: the
    bundled MiniLM). `pages` names the page each passage comes from (default: each its own): a
    sentence that several pages repeat is only a candidate when every one is repeated."""
    candidates = [(text, n) for n, passage in enumerate(passages) for text in split_sentences(passage, table_rows)]
    candidates = _unrepeated(candidates, pages or [str(n) for n in range(len(passages))])
    if not candidates:
        return []
    model = load_sentence_model((embedding or EmbeddingModel()).location)
    vectors = model.encode([what_is_asked(question), *(text for text, _ in candidates)], normalize_embeddings=True)
    asked = content_words(question)
    wants_number = bool(QUANTITY_QUESTION.match(question))
    scored = []
    for (text, passage), vector in zip(candidates, vectors[1:], strict=True):
        overlap = len(asked & content_words(text)) / len(asked) if asked else 0.0
        number = NUMBER_WEIGHT if wants_number and NUMBER.search(text) else 0.0
        scored.append(Sentence(text, passage, float(vector @ vectors[0]) + WORD_WEIGHT * overlap + number))
    return sorted(scored, key=lambda sentence: sentence.score, reverse=True)[:top]


def best_sentence(question: str, passages: list[str], embedding: EmbeddingModel | None = None) -> str:
    """The text of the sentence of `passages` that best answers `question` ("" when they hold none)."""
    best = best_sentences(question, passages, embedding=embedding)
    return best[0].text if best else ""
