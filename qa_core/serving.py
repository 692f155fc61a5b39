"""What the app serves, as plain Python: QA, context QA, RAG per session, adapters, comparisons.

`app.py` wires these methods to Gradio components and API endpoints; tests and scripts call them
directly. One `QAService` holds one loaded model (loaded once) and one Chroma client. Every
generation goes through one `GenerationBatcher`: visitors who ask at the same time are answered
in one batch (QA_MAX_BATCH_SIZE), each streaming their own answer. Documents a
visitor uploads go into a collection of their own session, unless the operator configures a
shared collection (QA_SHARED_COLLECTION).

    service = QAService(load_settings())
    print("".join(service.answer_stream("What is a bond?")))
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path

from qa_core.config import Settings
from qa_core.documents import SourceFile, read_documents
from qa_core.embeddings import resolve_embedding_model
from qa_core.errors import QAError
from qa_core.extractive import best_sentences, split_sentences
from qa_core.generate import GenerationSettings
from qa_core.hub.visitor_adapters import fetch_visitor_adapter, list_visitor_checkpoints
from qa_core.models import LoadedModel, attach_adapter_folder, load_model
from qa_core.prompts import check_question
from qa_core.qa import qa_prompt
from qa_core.rag.answer import RagAnswer, RagOptions, prepare, quote
from qa_core.rag.retrieval import Retriever
from qa_core.rag.store import IngestReport, RagStore, StoreError, collection_exists, open_client

SESSION_PREFIX = "session-"  # the collections of visitors' sessions (swept when idle)
USER_PREFIX = "user-"  # the collections of signed-in visitors (kept)
RETRIEVER_CACHE = 256  # sessions whose retriever (and keyword index) stays in memory
log = logging.getLogger("qa_toolkit.serving")
CONTEXT_MODES = ("generate", "extractive")  # write an answer with the model, or quote the context


class QAService:
    """The model, the document collections and the operations the app offers."""

    def __init__(self, settings: Settings, loaded: LoadedModel | None = None) -> None:
        self.settings = settings
        self.loaded = loaded or load_model(settings=settings)
        # The untrained demo model writes noise: quote the documents instead, until a real model is set.
        self.extractive_by_default = self.loaded.is_demo
        self.batcher = self.loaded.backend.batcher(settings.max_batch_size)  # or the inference server's
        self.chroma = open_client(settings)
        self.embedding = resolve_embedding_model(settings.embedding_model, settings)  # pinned once, for every visitor
        # Bounded: a public app meets many sessions; a dropped retriever is rebuilt on its next use.
        self._retrievers: OrderedDict[str, Retriever] = OrderedDict()
        self._last_seen: dict[str, float] = {}  # collection -> when its session last did anything
        self._started = time.monotonic()
        self._stopping = threading.Event()
        self._sweeper = threading.Thread(target=self._sweep_forever, name="session-sweeper", daemon=True)
        self._sweeper.start()

    def close(self) -> None:
        """Stop the session sweeper and the generation batcher and join their threads (requests
        still waiting for an answer end with an error). Safe to call more than once."""
        self._stopping.set()
        self._sweeper.join()
        self.batcher.close()

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
    ) -> Iterator[tuple[str, list[tuple[str, str | None]]]]:
        """Answer from `context`: yield (answer so far, the context's sentences each marked "support"
        or None). `extractive` answers with the context's own best sentence, without the model.

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
            best = best_sentences(question, [context], embedding=self.embedding)
            answer, support = (best[0].text, {best[0].text}) if best else ("", set())
        else:
            answer = ""
            for answer in self.answer_stream(question, context, generation):
                yield answer, [(context, None)]
            support = set(self.supporting_sentences(question, answer, context))
        yield answer, [(sentence, "support" if sentence in support else None) for sentence in split_sentences(context)]

    def read_context_file(self, path: str, name: str) -> str:
        """The text of an uploaded .txt, .md, .pdf or .csv file, for context QA.

        Raises:
            IngestError: unsupported, too large, unreadable, or no text.
        """
        docs = read_documents(SourceFile(Path(path), name), self.settings.max_file_bytes)
        text = "\n\n".join(doc.text for doc in docs)
        self.check_input("", text)
        return text

    # --- documents and RAG ------------------------------------------------------------------
    def collection_for(self, session: str, user: str | None = None) -> str:
        """The collection a visitor reads and writes: the shared one; a signed-in `user`'s own (kept
        across visits, with QA_LOGIN); or the browser session's (deleted when it ends)."""
        if self.settings.shared_collection:
            return self.settings.shared_collection
        if user and self.settings.login:
            return USER_PREFIX + hashlib.sha256(user.encode()).hexdigest()[:24]
        return SESSION_PREFIX + hashlib.sha256(session.encode()).hexdigest()[:24]

    def retriever(self, session: str, create: bool = False, user: str | None = None) -> Retriever | None:
        """The retriever over the visitor's collection; None when it has none yet, unless `create`
        (only an upload creates a collection: looking creates nothing)."""
        name = self.collection_for(session, user)
        if name not in self._retrievers:
            if not create and not collection_exists(self.chroma, name):
                return None  # remembers nothing: every page load of a stranger comes here
            self._retrievers[name] = Retriever(RagStore(self.settings, name, self.chroma, self.embedding))
            while len(self._retrievers) > RETRIEVER_CACHE:
                self._retrievers.popitem(last=False)
        self._retrievers.move_to_end(name)
        self._last_seen[name] = time.monotonic()  # only for collections that exist (the sweep drops them)
        return self._retrievers[name]

    def ingest(self, session: str, paths: list[str], names: list[str], user: str | None = None) -> IngestReport:
        """Ingest uploaded files (stored under their original `names`) into the session's collection,
        creating it on the first upload.

        Raises:
            QAError: more files than QA_MAX_UPLOADS at once, or the collection would grow past
                QA_MAX_SESSION_MB of text or QA_MAX_SESSION_CHUNKS chunks (then nothing is added).
        """
        if len(paths) > self.settings.max_uploads:
            raise QAError(f"{len(paths)} files at once; the limit is {self.settings.max_uploads} (QA_MAX_UPLOADS)")
        store = self.retriever(session, create=True, user=user).store
        incoming, stored = sum(Path(p).stat().st_size for p in paths), store.text_bytes()
        if stored + incoming > self.settings.max_session_mb * 1e6:
            raise QAError(
                f"your documents hold {stored / 1e6:.1f} MB and this upload {incoming / 1e6:.1f} MB: over this "
                f"server's limit of {self.settings.max_session_mb:g} MB per visitor (QA_MAX_SESSION_MB); "
                "delete documents first"
            )
        before = {entry["source"] for entry in store.sources()}
        report = store.ingest(paths, names, progress=True)
        if store.count() > self.settings.max_session_chunks:
            for source in set(report.added) - before:
                store.delete(source)
            raise QAError(
                f"this upload would bring your documents to more than {self.settings.max_session_chunks} chunks, "
                "this server's limit per visitor (QA_MAX_SESSION_CHUNKS); it was not added"
            )
        return report

    def documents(self, session: str, user: str | None = None) -> list[dict]:
        retriever = self.retriever(session, user=user)
        return retriever.store.sources() if retriever else []

    def delete_document(self, session: str, source: str, user: str | None = None) -> int:
        """Delete one of the session's documents; returns the chunks removed.

        Raises:
            StoreError: no such document.
        """
        retriever = self.retriever(session, user=user)
        if retriever is None:
            raise StoreError(f"no document {source!r}: you have not uploaded any")
        return retriever.store.delete(source)

    def end_session(self, session: str) -> None:
        """Forget a visitor whose session ended: delete the session's collection (never the shared
        one, nor a signed-in user's)."""
        if not self.settings.shared_collection:
            self._drop(self.collection_for(session))

    def sweep(self) -> list[str]:
        """Delete the collections of sessions idle for more than QA_SESSION_TTL_S (those whose end
        was never signalled); a collection unseen since this server started counts from its start.

        Returns:
            The names of the collections deleted.
        """
        if self.settings.shared_collection:
            return []
        now, ttl = time.monotonic(), self.settings.session_ttl_s
        idle = [
            collection.name
            for collection in self.chroma.list_collections()
            if collection.name.startswith(SESSION_PREFIX)
            and now - self._last_seen.get(collection.name, self._started) > ttl
        ]
        for name in idle:
            self._drop(name)
        return idle

    def _drop(self, name: str) -> None:
        self._retrievers.pop(name, None)
        self._last_seen.pop(name, None)
        if collection_exists(self.chroma, name):
            self.chroma.delete_collection(name)

    def _sweep_forever(self) -> None:
        while not self._stopping.wait(min(60.0, max(0.5, self.settings.session_ttl_s / 4))):
            try:
                self.sweep()
            except Exception:  # a failed sweep is tried again at the next round
                log.exception("sweeping idle sessions failed")

    def rag_stream(
        self, session: str, question: str, options: RagOptions | None = None, user: str | None = None
    ) -> Iterator[tuple[str, RagAnswer]]:
        """Retrieve, then yield (answer so far, result) as the grounded answer is generated."""
        self.check_input(question)
        options = options or RagOptions()
        retriever = self.retriever(session, user=user)
        if retriever is None or not retriever.store.count():  # none yet, all deleted, or an upload in flight
            raise QAError("your collection is empty: ingest documents first (upload them in the RAG tab)")
        if options.mode == "extractive":
            result = quote(retriever, question, options)
            yield result.answer, result
            return
        result = prepare(self.loaded, retriever, question, options, self.batcher)
        for text in self.batcher.stream(result.prompt, options.generation):
            result.answer = text
            yield text, result
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

    def checkpoints(self, repo: str) -> list[dict]:
        """The checkpoints pushed to Hub repo `repo`, newest first: step, train loss, eval loss,
        date and commit of each (as `python -m hub list` shows them).

        Raises:
            QAError: not a `USER/NAME` repo name, no such repo, or no checkpoint commits in it.
        """
        return [
            {
                "step": c.step,
                "loss": c.info.get("loss"),
                "eval loss": c.info.get("eval_loss"),
                "date": f"{c.date:%Y-%m-%d %H:%M}",
                "commit": c.commit[:12],
            }
            for c in list_visitor_checkpoints(repo, self.settings)
        ]

    def latest_results(self) -> str:
        """The latest evaluation table (results.md of `python -m qa_core.evaluate`), or how to make one."""
        table = self.settings.results_dir / "results.md"
        if table.is_file():
            return table.read_text(encoding="utf-8")
        return (
            f"No evaluation yet in `{self.settings.results_dir}`: run `python -m qa_core.evaluate --data FILE "
            f"--out {self.settings.results_dir}` (or set QA_RESULTS_DIR)."
        )

    def compare(self, question: str, generation: GenerationSettings | None = None) -> tuple[str, str]:
        """(base model's answer, fine-tuned answer) to the same question.

        Raises:
            QAError: no adapter is loaded.
        """
        self.check_input(question)
        if not self.loaded.adapter:
            raise QAError("no adapter is loaded: load one first to compare base and fine-tuned answers")
        prompt = qa_prompt(self.loaded, question)  # the same prompt, with and without the adapter
        return self.batcher.generate(prompt, generation, with_adapter=False), self.batcher.generate(prompt, generation)
