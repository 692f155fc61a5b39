"""Answer questions from retrieved chunks, citing them as [1], [2] ...

Two modes:
- `retrieve-then-answer`: search with the question, then answer from what was found.
- `answer-then-retrieve`: the model first drafts an answer without context; the question plus
  that draft is the search query (a draft shares vocabulary with the passage that answers it),
  and the final answer is grounded on what that search found.

When the numbered sources would not fit in the model's context next to the answer, the
lowest-ranked ones are dropped rather than cutting text mid-chunk. Small models seldom write
citations: an answer that cites none is attributed to the sources that state every figure in it.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from dataclasses import dataclass, field

from qa_core.chunking import column_header
from qa_core.errors import QAError
from qa_core.generation import Batcher, GenerationSettings, TextGenerator, growing, prompt_budget
from qa_core.grounding import Grounded, answering_sentence, settle, until_looping
from qa_core.models import LoadedModel
from qa_core.prompts import check_question
from qa_core.qa import qa_prompt
from qa_core.quantities import quantities
from qa_core.rag import MODES
from qa_core.rag.retrieval import Hit, Searcher

CITATION = re.compile(r"\[(\d+)\]")
# A best chunk scoring under this (cosine similarity with the question) speaks of something else:
# the documents do not state the answer. Over the fact, loan and rule sheets of benchmarks/trust.py,
# the best chunk for each of its 64 questions scored 0.56 to 0.90; for ten questions off their
# subject (the capital of France, sourdough, Hamlet …) 0.07 to 0.21.
MIN_SCORE = 0.25
# Under this many parameters a model answers from numbered sources worse than a quote of them does:
# smollm2 (135 M) over 17 fact sheets, exact figure 0.706 quoted (extractive), 0.647 written with
# QA_UNSUPPORTED=quote, 0.088 written and kept (benchmarks/trust.py). Bigger models write by default.
SMALL_MODEL = 1_000_000_000


@dataclass
class RagAnswer:
    """An answer, the chunks it was grounded on (numbered from 1), how they were found, and, once
    the answer is complete, its `grounded` report (what the model stated, the figure check, why
    the answer shown differs)."""

    question: str
    prompt: str
    hits: list[Hit]
    query: str
    answer: str = ""
    draft: str | None = None
    grounded: Grounded | None = None

    @property
    def cited(self) -> list[int]:
        """The source numbers the answer cites, in order of first mention."""
        numbers = (int(n) for n in CITATION.findall(self.answer))
        return list(dict.fromkeys(n for n in numbers if 1 <= n <= len(self.hits)))

    @property
    def supported_by(self) -> list[int]:
        """The source numbers whose text states every figure of the answer (none when it states no figure)."""
        stated = quantities(CITATION.sub(" ", self.answer))
        if not stated:
            return []
        return [
            n
            for n, hit in enumerate(self.hits, start=1)
            if all(any(figure.same_as(found) for found in quantities(hit.text)) for figure in stated)
        ]

    @property
    def grounds(self) -> list[str]:
        """The text each numbered chunk puts before the model: its headings and column header, then the chunk."""
        return [f"{hit.metadata.get('context', '')}\n\n{hit.text}" for hit in self.hits]

    def sources(self) -> list[tuple[int, Hit]]:
        """The cited sources; when the answer cites none, those that state its figures; else every retrieved one."""
        numbers = self.cited or self.supported_by or range(1, len(self.hits) + 1)
        return [(n, self.hits[n - 1]) for n in numbers]

    @property
    def citations(self) -> str:
        """`sources()` as the CLI and the app show them: a heading that says why the numbers may have
        gaps, then one line per source with its number and score."""
        if self.grounded and self.grounded.not_stated:
            heading = "Closest passages (none states what was asked):"
        elif self.cited:
            heading = "Sources:"
        elif self.supported_by:
            heading = "Sources (not cited by the model; they state the answer's figures):"
        else:
            heading = "Retrieved (the answer cites none of them):"
        lines = (f"[{n}] {hit.label}{hit.from_collection} (score {hit.score:.3f})" for n, hit in self.sources())
        return "\n".join([heading, *lines])

    def to_dict(self) -> dict:
        return {
            "question": self.question,
            "answer": self.answer,
            **(self.grounded.to_dict() if self.grounded else {}),
            "cited": self.cited,
            "supported_by": self.supported_by,
            "query": self.query,
            "draft": self.draft,
            "sources": [{"n": n, **hit.to_dict()} for n, hit in enumerate(self.hits, start=1)],
        }


def numbered_context(hits: list[Hit]) -> str:
    lines = ["Sources (cite the ones you use, like [1]):"]
    lines += [f"[{n}] {hit.label}: {hit.text.strip()}" for n, hit in enumerate(hits, start=1)]
    return "\n\n".join(lines)


@dataclass
class RagOptions:
    """How to retrieve and answer: mode, number of chunks, hybrid search, prompt style, sampling,
    and the retrieval score under which the documents are taken not to speak of the question."""

    mode: str = MODES[0]
    k: int = 5
    hybrid: bool = False
    style: str = "auto"
    generation: GenerationSettings = field(default_factory=GenerationSettings)
    min_score: float = MIN_SCORE


def default_mode(loaded: LoadedModel) -> str:
    """The RAG mode that answers best with `loaded`, as measured: `extractive` for the demo model and
    for models under SMALL_MODEL parameters (whose weights are in this process), else
    retrieve-then-answer (a model behind an inference server is taken to be a large one)."""
    model = loaded.model
    small = model is not None and sum(p.numel() for p in model.parameters()) < SMALL_MODEL
    return "extractive" if loaded.is_demo or small else MODES[0]


def prepare(
    loaded: LoadedModel,
    retriever: Searcher,
    question: str,
    options: RagOptions | None = None,
    generator: TextGenerator | None = None,
) -> RagAnswer:
    """Retrieve and build the grounded prompt, without generating the final answer yet
    (so that a caller can stream it). `generator` writes the draft answer of answer-then-retrieve
    (default: the model's backend; the app passes the batcher its visitors share).

    Raises:
        QAError: unknown mode, or nothing stored to retrieve from.
        PromptError: empty question, or the prompt does not fit even with a single source.
    """
    options = options or RagOptions()
    if options.mode not in MODES:
        raise QAError(f"unknown RAG mode {options.mode!r}; choose {' or '.join(MODES)}")
    qa_prompt(loaded, question)  # fail fast on an empty question, before any generation
    draft = None
    if options.mode == "answer-then-retrieve":
        draft_prompt = qa_prompt(loaded, question, None, options.style)
        draft = (generator or loaded.backend).generate(draft_prompt, options.generation)
    query = f"{question}\n{draft}" if draft else question
    hits = retrieve(retriever, query, options)
    budget = prompt_budget(loaded, options.generation)
    while True:
        prompt = qa_prompt(loaded, question, numbered_context(hits), options.style)
        if len(hits) == 1 or len(loaded.tokenizer(prompt)["input_ids"]) <= budget:
            break
        hits = hits[:-1]
    return RagAnswer(question=question, prompt=prompt, hits=hits, query=query, draft=draft)


def retrieve(retriever: Searcher, query: str, options: RagOptions) -> list[Hit]:
    """The `options.k` chunks that best match `query`.

    Raises:
        QAError: nothing is stored to retrieve from.
    """
    hits = retriever.search(query, options.k, options.hybrid)
    if not hits:
        raise QAError(
            f"collection {retriever.store.name!r} is empty: ingest documents first (python -m qa_core.rag ingest PATH)"
        )
    return hits


def quote(retriever: Searcher, question: str, options: RagOptions | None = None) -> RagAnswer:
    """The `extractive` mode: the retrieved chunks' sentence that best answers `question`, with its
    citation ("… [2]"). No language model is needed, and nothing is made up.

    Raises:
        PromptError: empty question.
        QAError: nothing stored to retrieve from.
    """
    check_question(question)
    hits = retrieve(retriever, question, options or RagOptions(mode="extractive"))
    answer = best_quote(question, hits, retriever)
    return RagAnswer(question=question, prompt="", hits=hits, query=question, answer=answer)


def best_quote(question: str, hits: list[Hit], retriever: Searcher) -> str:
    """The sentence of `hits` that best answers `question` (`qa_core.grounding.answering_sentence`),
    quoted with its citation ("" if none)."""
    pinned = retriever.store.embedder.pinned
    best = answering_sentence(question, [hit.text for hit in hits], pinned, [hit.label for hit in hits])
    return f"{quoted(best.text, hits[best.passage])} [{best.passage + 1}]" if best else ""


def quoted(sentence: str, hit: Hit) -> str:
    """`sentence` of `hit` as quoted: a table row with its table's column header, which says which
    figure is which year ("Dividends paid (512) (440) (columns: Year ended December 31, 2023 2022)")."""
    above = hit.metadata.get("context", "") + hit.text[: max(hit.text.find(sentence), 0)]
    columns = column_header(above)
    return f"{sentence} (columns: {columns})" if columns and sentence != columns else sentence


def answer_stream(
    loaded: LoadedModel | None,
    retriever: Searcher,
    question: str,
    options: RagOptions | None = None,
    unsupported: str = "quote",
    generator: Batcher | None = None,
) -> Iterator[RagAnswer]:
    """Answer `question` from the store, citing the chunks used (see `prepare`; the `extractive`
    mode quotes them, see `quote`, and needs no `loaded` model). Yields the `RagAnswer` as its
    answer grows (through `generator`, the app's batcher, else the model's backend; an answer that
    starts to loop is cut and its generation stopped); the last one is settled (`qa_core.grounding.settle`, with
    `unsupported` the QA_UNSUPPORTED policy) and carries its `grounded` report.

    Raises:
        QAError: unknown mode, or nothing stored to retrieve from.
        PromptError: empty question, or the prompt does not fit even with a single source.
    """
    options = options or RagOptions()
    if options.mode == "extractive":
        result = quote(retriever, question, options)
        unsupported = "warn"  # a quote is what the policy would put in its place: its report is shown
    else:
        result = prepare(loaded, retriever, question, options, generator)
        if generator:
            texts = generator.stream(result.prompt, options.generation)
        else:
            texts = growing(loaded.backend.stream(result.prompt, options.generation))
        for text in until_looping(texts):
            result.answer = text
            yield result
    quote_instead = functools.partial(best_quote, question, result.hits, retriever)  # only made when needed
    best = max(hit.score for hit in result.hits)
    far = f"the closest passage scores {best:.2f}, under {options.min_score}" if best < options.min_score else None
    result.grounded = settle(
        question,
        result.answer,
        result.grounds,
        unsupported,
        quote_instead,
        preferred=result.cited,
        off_topic=far,
        embedding=retriever.store.embedder.pinned,
    )
    result.answer = result.grounded.answer
    yield result


def answer(
    loaded: LoadedModel | None,
    retriever: Searcher,
    question: str,
    options: RagOptions | None = None,
    unsupported: str = "quote",
) -> RagAnswer:
    """The complete, settled answer of `answer_stream`."""
    *_, result = answer_stream(loaded, retriever, question, options, unsupported)
    return result
