"""The document collections of the app's visitors: one per browser session (deleted when it ends or
idles past QA_SESSION_TTL_S), one per signed-in user (kept), or one shared by all
(QA_SHARED_COLLECTION); created on a visitor's first upload, within per-visitor quotas. A
published collection (QA_COLLECTION_REPO) is searched together with each visitor's own, read-only:
uploads and deletions only ever reach the visitor's own collection.

    collections = VisitorCollections(settings, open_client(settings), resolve_embedding_model(None, settings))
    collections.ingest("session-id", ["report.pdf"], ["report.pdf"])
    collections.retriever("session-id").search("What was the CET1 ratio?")
    collections.close()
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections import OrderedDict
from pathlib import Path

from chromadb.api import ClientAPI

from qa_core.config import Settings
from qa_core.embeddings import EmbeddingModel
from qa_core.errors import QAError, StoreError
from qa_core.rag.chroma import collection_exists, store_errors
from qa_core.rag.ingest import IngestReport, ingest
from qa_core.rag.retrieval import JointRetriever, Retriever, Searcher
from qa_core.rag.store import RagStore

SESSION_PREFIX = "session-"  # the collections of visitors' sessions (swept when idle)
USER_PREFIX = "user-"  # the collections of signed-in visitors (kept)
RETRIEVER_CACHE = 256  # sessions whose retriever (and keyword index) stays in memory
log = logging.getLogger("qa_toolkit.visitors")


class VisitorCollections:
    """Which collection each visitor uses, what may go into it, and when it goes away; a sweeper
    thread deletes idle sessions' collections until `close()`."""

    def __init__(
        self, settings: Settings, chroma: ClientAPI, embedding: EmbeddingModel, published: RagStore | None = None
    ) -> None:
        """`published`: a collection every visitor's questions also search, and none can change."""
        self.settings, self.chroma, self.embedding = settings, chroma, embedding
        self.published = Retriever(published) if published else None
        self.published_sources = {entry["source"] for entry in published.sources()} if published else set()
        pulled = (published.collection.metadata or {}) if published else {}  # read once: it never changes here
        self.published_repo = pulled.get("pulled_from", "")
        self.published_from = f"{self.published_repo}@{pulled.get('pulled_commit', '')[:7]}" if published else ""
        # Bounded: a public app meets many sessions; a dropped retriever is rebuilt on its next use.
        self._retrievers: OrderedDict[str, Retriever] = OrderedDict()
        self._last_seen: dict[str, float] = {}  # collection -> when its session last did anything
        self._started = time.monotonic()
        self._lock = threading.Lock()  # the app's worker threads share the two maps above
        self._stopping = threading.Event()
        self._sweeper = threading.Thread(target=self._sweep_forever, name="session-sweeper", daemon=True)
        self._sweeper.start()

    def close(self, end_sessions: bool = False) -> None:
        """Stop the sweeper and join its thread; with `end_sessions` (the server is shutting down),
        also delete every browser session's collection (signed-in users' and the shared one stay).
        Safe to call more than once."""
        self._stopping.set()
        self._sweeper.join()
        if end_sessions and not self.settings.shared_collection:
            with store_errors(self.settings):
                for collection in self.chroma.list_collections():
                    if collection.name.startswith(SESSION_PREFIX):
                        self._drop(collection.name)

    def collection_for(self, session: str, user: str | None = None) -> str:
        """The collection a visitor reads and writes: the shared one; a signed-in `user`'s own (kept
        across visits, with QA_LOGIN); or the browser session's (deleted when it ends)."""
        if self.settings.shared_collection:
            return self.settings.shared_collection
        if user and self.settings.login:
            return USER_PREFIX + hashlib.sha256(user.encode()).hexdigest()[:24]
        return SESSION_PREFIX + hashlib.sha256(session.encode()).hexdigest()[:24]

    def retriever(self, session: str, user: str | None = None) -> Searcher | None:
        """What the visitor's questions search: the published collection and the visitor's own, as
        one (each hit saying which it is from), or either alone; None when there is neither."""
        own = self.own_retriever(session, user=user)
        if self.published is None:
            return own
        parts = {self.published_repo: self.published}
        if own is not None:
            parts["your upload"] = own
        return JointRetriever(parts)

    def own_retriever(self, session: str, create: bool = False, user: str | None = None) -> Retriever | None:
        """The retriever over the visitor's own collection; None when it has none yet, unless `create`
        (only an upload creates a collection: looking creates nothing)."""
        name = self.collection_for(session, user)
        with self._lock:
            retriever = self._retrievers.get(name)
        if retriever is None:
            with store_errors(self.settings):
                if not create and not collection_exists(self.chroma, name):
                    return None  # remembers nothing: every page load of a stranger comes here
                retriever = Retriever(RagStore(self.settings, name, self.chroma, self.embedding))
        with self._lock:
            retriever = self._retrievers.setdefault(name, retriever)  # another thread may have made one
            self._retrievers.move_to_end(name)
            while len(self._retrievers) > RETRIEVER_CACHE:
                self._retrievers.popitem(last=False)
            self._last_seen[name] = time.monotonic()  # only for collections that exist (the sweep drops them)
        return retriever

    def ingest(self, session: str, paths: list[str], names: list[str], user: str | None = None) -> IngestReport:
        """Ingest uploaded files (stored under their original `names`) into the session's collection,
        creating it on the first upload.

        Raises:
            QAError: more files than QA_MAX_UPLOADS at once, or the collection would grow past
                QA_MAX_SESSION_MB of text (then nothing is added; the message says how much is stored).
        """
        if len(paths) > self.settings.max_uploads:
            raise QAError(f"{len(paths)} files at once; the limit is {self.settings.max_uploads} (QA_MAX_UPLOADS)")
        store = self.own_retriever(session, create=True, user=user).store
        with store_errors(self.settings):
            return self._ingest_within_quota(store, paths, names)

    def _ingest_within_quota(self, store: RagStore, paths: list[str], names: list[str]) -> IngestReport:
        limit, stored = self.settings.max_session_mb * 1e6, store.text_bytes()
        # A PDF's bytes are mostly not text: only other files can be refused before they are read.
        text_files = sum(Path(p).stat().st_size for p in paths if Path(p).suffix.lower() != ".pdf")
        if stored + text_files > limit:
            raise QAError(self._over_quota(stored, stored + text_files))
        before = {entry["source"] for entry in store.sources()}
        report = ingest(store, paths, names, progress=True)
        after = store.text_bytes()
        if after > limit:
            for source in set(report.added) - before:
                store.delete(source)
            raise QAError(self._over_quota(stored, after))
        return report

    def _over_quota(self, stored: float, total: float) -> str:
        return (
            f"your documents hold {stored / 1e6:.3g} MB of text and this upload would bring them to "
            f"{total / 1e6:.3g} MB, over this server's limit of {self.settings.max_session_mb:g} MB per visitor; "
            "it was not added. Delete documents first (or, running the server yourself, raise QA_MAX_SESSION_MB)"
        )

    def documents(self, session: str, user: str | None = None) -> list[dict]:
        """The visitor's own documents (source, title, chunks)."""
        retriever = self.own_retriever(session, user=user)
        with store_errors(self.settings):
            return retriever.store.sources() if retriever else []

    def delete_document(self, session: str, source: str, user: str | None = None) -> int:
        """Delete one of the session's documents; returns the chunks removed.

        Raises:
            StoreError: no such document, or one of the published collection (read-only).
        """
        if source in self.published_sources:
            raise StoreError(f"{source!r} is in the published collection {self.published_from}, which is read-only")
        retriever = self.own_retriever(session, user=user)
        if retriever is None:
            raise StoreError(f"no document {source!r}: you have not uploaded any")
        with store_errors(self.settings):
            return retriever.store.delete(source)

    def end_session(self, session: str) -> None:
        """Forget a visitor whose session ended: delete the session's collection (never the shared
        one, nor a signed-in user's)."""
        if not self.settings.shared_collection:
            with store_errors(self.settings):
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
        with self._lock:
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
