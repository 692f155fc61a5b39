"""What the app serves, as plain Python: QA, context QA, RAG per session, adapters, comparisons.

`app.py` wires these methods to Gradio components and API endpoints; tests and scripts call them
directly. One `QAService` holds one loaded model (loaded once) and one Chroma client. Every
generation goes through one `GenerationBatcher`: visitors who ask at the same time are answered
in one batch (QA_MAX_BATCH_SIZE), each streaming their own answer. Documents a
visitor uploads go into their own collection (`service.collections`, see `qa_core.visitors`).

    service = QAService(load_settings())
    print("".join(service.answer_stream("What is a bond?")))
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from qa_core.config import Settings
from qa_core.documents import SourceFile, read_documents
from qa_core.embeddings import resolve_embedding_model
from qa_core.errors import QAError
from qa_core.extractive import best_sentences, sentence_spans, split_sentences
from qa_core.generation import GenerationSettings
from qa_core.grounding import Grounded, check_figures, context_quote, settle_from_context, until_looping
from qa_core.hub.checkpoints import MAIN_SCORE
from qa_core.hub.visitor_adapters import fetch_visitor_adapter, list_visitor_checkpoints
from qa_core.memory import MemoryTrimmer
from qa_core.models import LoadedModel, attach_adapter_folder, load_model
from qa_core.prompts import check_question
from qa_core.qa import qa_prompt
from qa_core.rag.answer import RagAnswer, RagOptions, answer_stream, default_mode
from qa_core.rag.chroma import open_client, store_errors
from qa_core.reports import latest_results
from qa_core.visitors import VisitorCollections

CONTEXT_MODES = ("generate", "extractive")  # write an answer with the model, or quote the context


def marked_sentences(context: str, support: set[str], mark: str = "support") -> list[tuple[str, str | None]]:
    """`context` whole, cut into its sentences, each marked `mark` when in `support` (else None),
    and the whitespace between them kept as it was (unmarked)."""
    pieces: list[tuple[str, str | None]] = []
    end = 0
    for start, stop in sentence_spans(context):
        if start > end:
            pieces.append((context[end:start], None))
        sentence = context[start:stop]
        pieces.append((sentence, mark if sentence in support else None))
        end = stop
    return pieces + ([(context[end:], None)] if end < len(context) else [])


class QAService:
    """The model, the document collections and the operations the app offers."""

    def __init__(self, settings: Settings, loaded: LoadedModel | None = None) -> None:
        self.settings = settings
        self.loaded = loaded or load_model(settings=settings)
        # The untrained demo model writes noise, and a small model answers numbered sources worse than
        # a quote of them: quote the documents instead (see `default_mode`).
        self.context_mode = CONTEXT_MODES[1] if self.loaded.is_demo else CONTEXT_MODES[0]
        self.rag_mode = default_mode(self.loaded)
        self.batcher = self.loaded.backend.batcher(settings.max_batch_size)  # or the inference server's
        self.embedding = resolve_embedding_model(settings.embedding_model, settings)  # pinned once, for every visitor
        chroma = open_client(settings)
        published = None
        if settings.collection_repo:
            from qa_core.rag.published import serve_published  # datasets and pyarrow: only when used

            published = serve_published(settings.collection_repo, settings, chroma)
        self.collections = VisitorCollections(settings, chroma, self.embedding, published)
        self.trimmer = MemoryTrimmer()  # memory freed between visitors goes back to the system

    def close(self, end_sessions: bool = False) -> None:
        """Stop the session sweeper, the generation batcher and the memory trimmer and join their
        threads (requests still waiting for an answer end with an error); with `end_sessions` (the
        server is shutting down), delete the browser sessions' collections too. Safe to call more
        than once."""
        self.batcher.close()
        self.trimmer.close()
        self.collections.close(end_sessions)  # last: may raise StoreError when Chroma is away

    def __enter__(self) -> QAService:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def check_input(self, question: str, context: str | None = None) -> None:
        """Refuse a question or context longer than this server takes (counted in characters,
        before anything is tokenised).

        Raises:
            QAError: over QA_MAX_QUESTION_CHARS or QA_MAX_CONTEXT_CHARS.
        """
        limits = (
            (question, self.settings.max_question_chars, "question", "QA_MAX_QUESTION_CHARS"),
            (context or "", self.settings.max_context_chars, "context", "QA_MAX_CONTEXT_CHARS"),
        )
        for text, limit, what, variable in limits:
            if len(text) > limit:
                raise QAError(
                    f"the {what} is {len(text):,} characters; this server takes at most {limit:,} ({variable})"
                )

    # --- question answering -----------------------------------------------------------------
    def answer_stream(
        self, question: str, context: str | None = None, generation: GenerationSettings | None = None
    ) -> Iterator[str]:
        """Yield the answer as it grows (each item is the whole answer so far)."""
        self.check_input(question, context)
        yield from self.batcher.stream(qa_prompt(self.loaded, question, context), generation)

    def supporting_sentences(self, question: str, answer: str, context: str, top: int = 2) -> list[str]:
        """The `top` sentences of `context` that best support the question and answer, in context order."""
        best = best_sentences(f"{question} {answer}", [context], top, self.embedding)
        return [sentence for sentence in split_sentences(context) if sentence in {b.text for b in best}]

    def context_qa_stream(
        self, question: str, context: str, mode: str = "generate", generation: GenerationSettings | None = None
    ) -> Iterator[tuple[str, list[tuple[str, str | None]], Grounded | None]]:
        """Answer from `context`: yield (answer so far, the context's sentences each marked "support"
        or None, None until the answer is complete and then its `Grounded` report: the figure check,
        what the model stated and why the answer shown differs). `extractive` answers with the
        context's own best sentence, without the model. When the context does not state what is
        asked, the answer says so (the closest sentences marked); a written answer whose figures
        lack a ✓ is kept, quoted or refused (QA_UNSUPPORTED); one that loops is cut.

        Raises:
            QAError: empty question or context, input over the limits, or an unknown mode.
        """
        if mode not in CONTEXT_MODES:
            raise QAError(f"unknown answer mode {mode!r}; choose {' or '.join(CONTEXT_MODES)}")
        if not context or not context.strip():
            raise QAError("paste a context or upload a file to answer from")
        self.check_input(question, context)
        check_question(question)
        if mode == "extractive":
            answer = context_quote(question, context, self.embedding)
        else:
            answer = ""
            for answer in until_looping(self.answer_stream(question, context, generation)):
                yield answer, [(context, None)], None
        grounded = settle_from_context(question, answer, context, self.settings.unsupported, self.embedding)
        yield grounded.answer, self.marked_support(question, answer, context, grounded, mode), grounded

    def marked_support(
        self, question: str, answer: str, context: str, grounded: Grounded, mode: str
    ) -> list[tuple[str, str | None]]:
        """The context's sentences marked: when it does not state what was asked, the closest ones
        ("closest"); the quote that replaced the model's answer; when the answer states figures, only
        the sentences that state those with a ✓ (a sentence with the same digits as a wrong figure
        is no support); else the quote, or the sentences closest to question and answer ("support")."""
        if grounded.not_stated:
            return marked_sentences(context, set(self.supporting_sentences(question, "", context)), "closest")
        check = grounded.check
        if grounded.replaced == "quote":
            support = {grounded.answer}  # the context's own sentence, in place of the model's
        elif check.supported or check.flagged:
            support = {figure.sentence for figure in check.supported}
        else:
            support = {answer} if mode == "extractive" else set(self.supporting_sentences(question, answer, context))
        return marked_sentences(context, support)

    def read_context_file(self, path: str, name: str) -> str:
        """The text of an uploaded .txt, .md, .pdf or .csv file, for context QA.

        Raises:
            IngestError: unsupported, too large, unreadable, or no text.
        """
        docs = read_documents(SourceFile(Path(path), name), self.settings.max_file_bytes)
        text = "\n\n".join(doc.text for doc in docs)
        self.check_input("", text)
        return text

    def rag_scope(self) -> str:
        """What the RAG tab searches, in a sentence (Markdown)."""
        if not self.collections.published:
            return "Searches **your uploads** (add documents on the left)."
        store = self.collections.published.store
        documents = len(self.collections.published_sources)
        return (
            f"Searches the published collection **{self.collections.published_from}** ({documents} documents, "
            f"{store.count():,} chunks; read-only) together with **your uploads**. Citations say which each source is."
        )

    def rag_stream(
        self, session: str, question: str, options: RagOptions | None = None, user: str | None = None
    ) -> Iterator[tuple[str, RagAnswer]]:
        """Retrieve, then yield (answer so far, result) as the grounded answer is generated (see
        `qa_core.rag.answer.answer_stream`); the last result carries its `grounded` report."""
        self.check_input(question)
        retriever = self.collections.retriever(session, user=user)
        with store_errors(self.settings):  # the Chroma server may be down; generation needs no store
            if retriever is None or not retriever.store.count():  # none yet, all deleted, or an upload in flight
                raise QAError("your collection is empty: ingest documents first (upload them in the RAG tab)")
            results = answer_stream(self.loaded, retriever, question, options, self.settings.unsupported, self.batcher)
            result = next(results)  # the retrieval (and answer-then-retrieve's draft)
        yield result.answer, result
        for result in results:
            yield result.answer, result

    # --- model ------------------------------------------------------------------------------
    def _ensure_adapter_loading_allowed(self) -> None:
        """Raise QAError when the operator turned adapter loading off (QA_ALLOW_ADAPTER_LOAD=0)."""
        if not self.settings.allow_adapter_load:
            raise QAError("loading adapters is turned off on this server (QA_ALLOW_ADAPTER_LOAD=0)")

    def load_adapter(self, repo: str, revision: str = "") -> str:
        """Attach the adapter of Hub repo `repo` at `revision` (a step, commit or branch; default
        main), replacing the current one for every visitor. What a visitor names is checked before
        anything is downloaded (see `qa_core.hub.visitor_adapters`): a Hub repo only, an adapter, not too
        large, the operator's token only for the operator's repos.

        Returns:
            The description of what is now loaded.

        Raises:
            QAError: adapter loading is off (QA_ALLOW_ADAPTER_LOAD=0, the default on a Space), a path
                or bad name, not an adapter, too large, or no such repo or checkpoint.
        """
        self._ensure_adapter_loading_allowed()  # before any request to the Hub
        snapshot = fetch_visitor_adapter(repo, revision or "", self.settings)
        with self.batcher.exclusive():  # between batches, never under one
            attach_adapter_folder(self.loaded, snapshot.path, snapshot.repo_id, snapshot.commit)
        return self.loaded.description

    def checkpoints(self, repo: str) -> tuple[list[dict], list[dict], list[dict]]:
        """The checkpoints pushed to Hub repo `repo`, newest first: step, train loss, eval loss,
        exact figure, date and commit of each (as `python -m hub list` shows them); every loss the
        run logged up to the newest ({"step", "loss" or "eval_loss"}; [] when its checkpoints hold
        no log); and the newest checkpoint's answer scores by step, step 0 the base's ([] unscored).

        Raises:
            QAError: not a `USER/NAME` repo name, no such repo, or no checkpoint commits in it.
        """
        found, logged = list_visitor_checkpoints(repo, self.settings)
        rows = [
            {
                "step": c.step,
                "loss": c.info.get("loss"),
                "eval loss": c.info.get("eval_loss"),
                "exact figure": c.info.get(MAIN_SCORE),
                "date": f"{c.date:%Y-%m-%d %H:%M}",
                "commit": c.commit[:12],
            }
            for c in found
        ]
        return rows, logged, found[0].info.get("answer_scores") or []

    def latest_results(self) -> str:
        """The newest evaluation table under QA_RESULTS_DIR (the results.md that `python -m
        qa_core.evaluate --out DIR` writes, in any sub-folder), headed by where it is; or how to make one."""
        folder = self.settings.results_dir
        table = latest_results(folder)
        if table is None:
            return (
                f"No evaluation yet in `{folder}` or its sub-folders: run `python -m qa_core.evaluate --data FILE "
                f"--out {folder}/NAME` (or set QA_RESULTS_DIR)."
            )
        written = datetime.fromtimestamp(table.stat().st_mtime, UTC)
        heading = f"*Latest evaluation: `{table.relative_to(folder.parent)}`, written {written:%Y-%m-%d %H:%M} UTC*"
        return f"{heading}\n\n{table.read_text(encoding='utf-8')}"

    def compare(
        self, question: str, generation: GenerationSettings | None = None, context: str | None = None
    ) -> tuple[str, str]:
        """(base model's answer, fine-tuned answer) to the same question, with `context` when one is
        given: each as the model wrote it (no answer policy), followed by what the figure check says
        of it against the context, or, without one, that it was asked closed-book.

        Raises:
            QAError: no adapter is loaded; empty question or input over the limits.
        """
        context = context.strip() if context and context.strip() else None
        self.check_input(question, context)
        if not self.loaded.adapter:
            raise QAError("no adapter is loaded: load one first to compare base and fine-tuned answers")
        prompt = qa_prompt(self.loaded, question, context)  # the same prompt, with and without the adapter
        base = self.batcher.generate(prompt, generation, with_adapter=False)
        tuned = self.batcher.generate(prompt, generation)
        return with_check(base, question, context), with_check(tuned, question, context)


def with_check(answer: str, question: str, context: str | None) -> str:
    """`answer` and a line saying which of its figures the context states with a ✓ and which it
    does not; without a context, that nothing was checked (a closed-book answer's figures come from
    the model's memory)."""
    if context is None:
        return f"{answer}\n\n(closed-book: no context given, so its figures are the model's own and unchecked)"
    check = check_figures(answer, [context], question)
    if check.warning:
        return f"{answer}\n\n⚠ {check.warning}"
    if check.supported:
        return f"{answer}\n\n✓ {', '.join(f.figure for f in check.supported)}: stated in the context"
    return answer
