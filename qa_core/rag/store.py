"""A Chroma collection of document chunks: embedded on disk, or on a Chroma server.

`QA_CHROMA_URL=http://host:port` uses a server started with
`chroma run --path DIR --host 127.0.0.1 --port 8000`; otherwise the database lives in the folder
`QA_CHROMA_PATH`. Ingesting is idempotent and survives being killed: chunk ids are hashes of the
file's contents, and every chunk records how many chunks its file has, so a file counts as stored
only once all of them are. An unchanged, complete file adds nothing; a file a killed ingest left
half-stored is completed (only its missing chunks are embedded); a changed file's new chunks are
stored before its old ones are removed, so a failure half-way never loses what was there.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import chromadb
import httpx
from chromadb.api import ClientAPI
from chromadb.api.models.Collection import Collection
from chromadb.api.types import Documents, EmbeddingFunction, Embeddings
from chromadb.errors import ChromaError, InternalError, NotFoundError
from tqdm.auto import tqdm

from qa_core.chunking import (
    DEFAULT_CHUNK_TOKENS,
    DEFAULT_OVERLAP_TOKENS,
    Chunk,
    ChunkOptions,
    chunk_documents,
    chunk_header,
)
from qa_core.config import Settings
from qa_core.documents import Document, read_sources
from qa_core.embeddings import EmbeddingModel, SentenceEmbedding, resolve_embedding_model, tuned_keyword_weight
from qa_core.errors import EmbeddingError, StoreError

# Chunks embedded per call: enough that length-sorting leaves little padding, few enough that
# progress moves and memory stays small.
EMBED_BLOCK = 512
COLLECTION_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9._-]{1,510}[a-zA-Z0-9]$")


class ChromaEmbedding(EmbeddingFunction[Documents]):
    """The toolkit's embeddings as Chroma's embedding function. Chroma is always given one: a
    collection without it would try to download Chroma's own ONNX model."""

    def __init__(self, embedder: SentenceEmbedding | None = None) -> None:
        self.embedder = embedder or SentenceEmbedding()

    def __call__(self, input: Documents) -> Embeddings:
        return self.embedder(input)

    @staticmethod
    def name() -> str:
        return "qa-toolkit-sentence-transformers"

    def default_space(self) -> str:
        return "cosine"

    def get_config(self) -> dict[str, Any]:
        pinned = self.embedder.pinned
        return {"model": pinned.name, "revision": pinned.revision, "location": pinned.location}

    @staticmethod
    def build_from_config(config: dict[str, Any]) -> ChromaEmbedding:
        model = config["model"]
        return ChromaEmbedding(
            SentenceEmbedding(EmbeddingModel(model, config.get("revision", ""), config.get("location", model)))
        )


@dataclass
class IngestReport:
    """What an ingest did, file by file."""

    added: dict[str, int] = field(default_factory=dict)
    replaced: list[str] = field(default_factory=list)
    completed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def summary(self) -> str:
        parts = [f"{sum(self.added.values())} chunks from {len(self.added)} file(s) added"]
        if self.replaced:
            parts.append(f"{len(self.replaced)} changed file(s) replaced")
        if self.completed:
            parts.append(f"{len(self.completed)} partly stored file(s) completed")
        if self.unchanged:
            parts.append(f"{len(self.unchanged)} unchanged file(s) skipped")
        if self.problems:
            parts.append(f"{len(self.problems)} problem(s)")
        return "; ".join(parts)


@contextmanager
def temporary_store(settings: Settings, embedding: EmbeddingModel | None = None) -> Iterator[RagStore]:
    """A collection in memory for the length of the block (for evaluations); deleted afterwards."""
    store = RagStore(settings, f"eval-{uuid.uuid4().hex[:12]}", chromadb.EphemeralClient(), embedding)
    try:
        yield store
    finally:
        store.client.delete_collection(store.name)


def store_failure(exc: BaseException, settings: Settings) -> str | None:
    """What went wrong, in words, when `exc` says the store itself failed (its server stopped
    answering, its disk is full); None for anything else."""
    if isinstance(exc, httpx.TransportError):
        return f"the Chroma server at {settings.chroma_url} does not answer ({type(exc).__name__})"
    if isinstance(exc, (InternalError, OSError)) and re.search(r"disk|space|too large|I/O", str(exc), re.IGNORECASE):
        # one line: the CLI prints one `error:` line, and Chroma's messages can span several
        return f"the store's disk is full or over a file size limit ({' '.join(str(exc).split())[:120]})"
    if isinstance(exc, NotFoundError):  # deleted under a request: an idle session swept, or another tab
        return "the collection was deleted while this request used it (upload the documents again)"
    if isinstance(exc, ChromaError) and settings.chroma_url:  # e.g. a server still starting up
        return f"the Chroma server at {settings.chroma_url} failed ({type(exc).__name__})"
    return None


@contextmanager
def store_errors(settings: Settings) -> Iterator[None]:
    """Turn a failure of the store itself into one `StoreError` line (try again later) instead of
    a traceback; any other exception passes through.

    Raises:
        StoreError: the Chroma server does not answer, or the disk is full.
    """
    try:
        yield
    except Exception as exc:
        what = store_failure(exc, settings)
        if what is None:
            raise
        raise StoreError(f"{what}: try again in a moment") from exc


def open_client(settings: Settings) -> ClientAPI:
    """A Chroma client for `QA_CHROMA_URL` when set, else the folder `QA_CHROMA_PATH`.

    Raises:
        StoreError: the server does not answer, or the folder cannot be used.
    """
    if settings.chroma_url:
        url = urlsplit(settings.chroma_url)
        try:
            client = chromadb.HttpClient(host=url.hostname, port=url.port or 8000, ssl=url.scheme == "https")
            client.heartbeat()
        except Exception as exc:
            raise StoreError(f"cannot reach the Chroma server at {settings.chroma_url}: {exc}") from exc
        return client
    try:
        return chromadb.PersistentClient(path=str(settings.chroma_path))
    except Exception as exc:
        raise StoreError(f"cannot open the Chroma database in {settings.chroma_path}: {exc}") from exc


def collection_exists(client: ClientAPI, name: str) -> bool:
    """Whether `client` holds a collection `name` (without creating it)."""
    try:
        client.get_collection(name)
    except NotFoundError:
        return False
    return True


def check_collection_name(name: str) -> None:
    """Raises StoreError for a name Chroma would refuse, saying what a name may hold."""
    if not COLLECTION_NAME.match(name) or ".." in name:
        raise StoreError(
            f"collection name {name!r}: use 3-512 letters, digits, '.', '_' or '-', "
            "starting and ending with a letter or digit"
        )


def built_with_model(collection: Collection) -> EmbeddingModel:
    """The embedding model a collection records (its revision is empty for collections made before
    revisions were recorded)."""
    metadata = collection.metadata or {}
    name = str(metadata.get("embedding_model", "unknown"))
    return EmbeddingModel(name, str(metadata.get("embedding_revision", "")), name)


def same_model(recorded: EmbeddingModel, pinned: EmbeddingModel) -> bool:
    """Whether vectors of `pinned` belong with those `recorded`: the same name, and the same revision
    where the collection records one."""
    return recorded.name == pinned.name and recorded.revision in ("", pinned.revision)


class RagStore:
    """One collection of chunks, and the embedding model that goes with it."""

    def __init__(
        self,
        settings: Settings,
        collection: str | None = None,
        client: ClientAPI | None = None,
        embedding: EmbeddingModel | None = None,
    ) -> None:
        """Open (creating if needed) `collection`, default `QA_COLLECTION`, embedded with `embedding`
        (default: `QA_EMBEDDING_MODEL`, pinned).

        Raises:
            StoreError: bad collection name, or the database cannot be reached.
            EmbeddingError: the embedding model cannot be found, or the collection was built with another.
        """
        self.settings = settings
        self.name = collection or settings.collection
        check_collection_name(self.name)
        self.embedder = SentenceEmbedding(embedding or resolve_embedding_model(settings.embedding_model, settings))
        self.client = client or open_client(settings)
        self.collection: Collection = self._open_collection(self.name)
        self.changes = 0  # writes through this store, so that in-memory indexes know when to rebuild
        built_with = built_with_model(self.collection)
        if not same_model(built_with, self.embedder.pinned):
            raise EmbeddingError(
                f"collection {self.name!r} was built with {built_with} but this run embeds with "
                f"{self.embedder.pinned}: set QA_EMBEDDING_MODEL (or --embedding-model) to the model it was built "
                f"with, or re-embed it with `python -m qa_core.rag reindex --collection {self.name}`"
            )

    def _open_collection(self, name: str) -> Collection:
        pinned = self.embedder.pinned
        metadata = {"embedding_model": pinned.name, "embedding_revision": pinned.revision}
        if (weight := tuned_keyword_weight(pinned)) is not None:  # only a new collection takes it
            metadata["keyword_weight"] = weight
        try:
            return self.client.get_or_create_collection(
                name,
                embedding_function=ChromaEmbedding(self.embedder),
                configuration={"hnsw": {"space": "cosine"}},
                metadata=metadata,
            )
        except ValueError as exc:  # Chroma's embedding function conflict
            persisted = re.search(r"persisted: (\S+)", str(exc))
            raise EmbeddingError(
                f"collection {name!r} was built with another embedding function "
                f"({persisted.group(1) if persisted else exc}): use another collection, or reset this one"
            ) from exc

    @property
    def keyword_weight(self) -> float | None:
        """BM25's weight in hybrid search as tuned for this collection, or None if never tuned
        (`python -m qa_core.rag eval --tune-hybrid`, or the tuned embedding model's own)."""
        weight = (self.collection.metadata or {}).get("keyword_weight")
        return None if weight is None else float(weight)

    def record_keyword_weight(self, weight: float) -> None:
        """Keep `weight` as this collection's hybrid keyword weight."""
        self.collection.modify(metadata={**(self.collection.metadata or {}), "keyword_weight": weight})

    def count(self) -> int:
        """The chunks stored (Chroma counts them: the cost grows with the collection)."""
        return self.collection.count()

    def storage_stamp(self) -> tuple[int, int] | None:
        """Size and modification time of a folder database's file, or None for a server or in-memory client.

        Any process's write to any collection of the folder changes it (Chroma's SQLite keeps a
        rollback journal, so writes land in this file); reads leave it alone. It costs one `stat`."""
        chroma = self.client.get_settings()
        if self.settings.chroma_url or not chroma.is_persistent:
            return None
        try:
            stat = (Path(chroma.persist_directory) / "chroma.sqlite3").stat()
        except OSError:
            return None
        return stat.st_size, stat.st_mtime_ns

    def text_bytes(self) -> int:
        """The UTF-8 size of every stored chunk's text."""
        if not self.count():
            return 0
        return sum(len(text.encode()) for text in self.collection.get(include=["documents"])["documents"])

    def _stored(self, source: str) -> tuple[set[str], dict[str, tuple[int, int | None]]]:
        """The ids stored for `source`, and per file version (fingerprint): (chunks stored, chunks it has)."""
        stored = self.collection.get(where={"source": source}, include=["metadatas"])
        versions: dict[str, tuple[int, int | None]] = {}
        for meta in stored["metadatas"]:
            count, expected = versions.get(meta["file_hash"], (0, meta.get("file_chunks")))
            versions[meta["file_hash"]] = (count + 1, expected)
        return set(stored["ids"]), versions

    def ingest(
        self,
        paths: Iterable[str],
        names: Iterable[str] | None = None,
        text_column: str | None = None,
        title_column: str | None = None,
        chunk_tokens: int = DEFAULT_CHUNK_TOKENS,
        overlap_tokens: int = DEFAULT_OVERLAP_TOKENS,
        progress: bool = False,
    ) -> IngestReport:
        """Ingest files and folders; `names` gives uploaded files the names they are cited under.

        Returns:
            The report: chunks added per file, files replaced, completed or unchanged, and one line
            per file that could not be ingested (the others are ingested all the same).
        """
        report = IngestReport()
        options = {
            "text_column": text_column,
            "title_column": title_column,
            "chunk_tokens": chunk_tokens,
            "overlap_tokens": overlap_tokens,
        }
        pending: list[tuple[str, str, list[Chunk]]] = []  # source, fingerprint, chunks not stored yet
        for file, docs in read_sources(paths, self.settings.max_file_bytes, report.problems, names, options):
            fingerprint = file.fingerprint()
            ids, versions = self._stored(file.source)
            count, expected = versions.get(fingerprint, (0, 0))
            if set(versions) == {fingerprint} and expected in (count, None):  # None: stored before counts were
                report.unchanged.append(file.source)
                continue
            chunks = chunk_documents(docs, self.embedder, fingerprint, ChunkOptions(chunk_tokens, overlap_tokens))
            for chunk in chunks:
                chunk.metadata["file_chunks"] = len(chunks)
            if fingerprint in versions:
                report.completed.append(file.source)
            elif versions:
                report.replaced.append(file.source)
            pending.append((file.source, fingerprint, [chunk for chunk in chunks if chunk.id not in ids]))
        new = [chunk for _, _, chunks in pending for chunk in chunks]
        try:
            self._add(new, progress)
        except Exception as exc:
            raise self._roll_back([chunk.id for chunk in new], exc) from exc
        for source, fingerprint, chunks in pending:  # only once every new chunk is stored
            self.collection.delete(where={"$and": [{"source": source}, {"file_hash": {"$ne": fingerprint}}]})
            self.changes += 1
            report.added[source] = len(chunks)
        return report

    def _roll_back(self, ids: list[str], exc: Exception) -> Exception:
        """Remove the chunks of an ingest that failed part-way, so the collection is as it was
        before it (older versions of its files are removed only after a complete ingest).

        Returns:
            The error to raise: a `StoreError` that says whether the rollback worked, when the
            store itself failed; else `exc`.
        """
        what = store_failure(exc, self.settings)
        try:
            # Only what was stored: after a failed write (a full disk) the database may refuse any
            # further write for as long as this process lives, and most often nothing was stored.
            stored = self.collection.get(ids=ids, include=[])["ids"]
            if stored:
                self.collection.delete(ids=stored)
        except Exception:
            if what is None:
                return exc
            return StoreError(
                f"{what}: the upload stopped part-way and may be partly stored; upload the same files "
                "again once the store is back to complete them"
            )
        self.changes += 1
        if what is None:
            return exc
        return StoreError(f"{what}: nothing of this upload was kept; the collection is as it was before it")

    def add_documents(
        self, source: str, docs: list[Document], fingerprint: str, options: ChunkOptions | None = None
    ) -> int:
        """Store documents that did not come from a file (e.g. CSV cells in an evaluation).

        Returns:
            The number of chunks stored.
        """
        chunks = chunk_documents(docs, self.embedder, fingerprint, options or ChunkOptions())
        self._add(chunks, progress=False)
        return len(chunks)

    def _add(self, chunks: list[Chunk], progress: bool, block: int = EMBED_BLOCK) -> None:
        """Embed `chunks` in large blocks (sentence-transformers sorts a block by length, so its
        batches carry little padding) and write each block from a second thread while the next is
        embedded, so the encoder never waits for Chroma."""
        limit = self.client.get_max_batch_size()

        def write(batch: list[Chunk], vectors: list) -> None:
            for start in range(0, len(batch), limit):
                part = batch[start : start + limit]
                self.collection.upsert(
                    ids=[c.id for c in part],
                    embeddings=vectors[start : start + limit],
                    documents=[c.text for c in part],
                    metadatas=[c.metadata for c in part],
                )
            bar.update(len(batch))  # counted once stored, so the bar never runs ahead of the database

        bar = tqdm(total=len(chunks), desc="embedding", unit="chunk", disable=not progress or not chunks)
        with bar, ThreadPoolExecutor(max_workers=1) as writer:
            written = None
            for start in range(0, len(chunks), block):
                batch = chunks[start : start + block]
                vectors = self.embedder([c.indexed_text for c in batch])
                if written is not None:
                    written.result()  # one block in flight at most; a failed write stops the ingest here
                written = writer.submit(write, batch, vectors)
            if written is not None:
                written.result()
        self.changes += 1

    def sources(self) -> list[dict]:
        """One entry per stored source: source, title and number of chunks, sorted by source."""
        found: dict[str, dict] = {}
        for meta in self.collection.get(include=["metadatas"])["metadatas"]:
            entry = found.setdefault(meta["source"], {"source": meta["source"], "title": meta["title"], "chunks": 0})
            entry["chunks"] += 1
        return sorted(found.values(), key=lambda entry: entry["source"])

    def delete(self, source: str) -> int:
        """Remove every chunk of `source`; returns how many there were.

        Raises:
            StoreError: nothing is stored under that source name.
        """
        ids = self.collection.get(where={"source": source}, include=[])["ids"]
        if not ids:
            known = ", ".join(entry["source"] for entry in self.sources()[:10]) or "none"
            raise StoreError(f"no document {source!r} in collection {self.name!r} (stored: {known})")
        self.collection.delete(ids=ids)
        self.changes += 1
        return len(ids)

    def reset(self) -> None:
        """Delete the collection and start it again empty."""
        self.client.delete_collection(self.name)
        self.collection = self._open_collection(self.name)
        self.changes += 1


def reindex(
    settings: Settings, collection: str | None = None, embedding: EmbeddingModel | None = None, progress: bool = False
) -> tuple[EmbeddingModel, RagStore]:
    """Re-embed every stored chunk of `collection` with `embedding` (default: `QA_EMBEDDING_MODEL`),
    from the chunk texts it stores, so no source file is needed.

    The new vectors go into a staging collection that replaces the old one only once complete: a
    reindex that fails or is killed while embedding leaves the collection as it was, built with its
    old model (the staging copy is dropped by the next reindex). Only between the two renames at
    the end is the collection under its `-retired` name.

    Returns:
        (the model the collection was built with before, the re-embedded store).

    Raises:
        StoreError: no such collection, or the database cannot be reached.
        EmbeddingError: the embedding model cannot be found or loaded.
    """
    name = collection or settings.collection
    check_collection_name(name)
    client = open_client(settings)
    if not collection_exists(client, name):
        raise StoreError(f"no collection {name!r} to reindex")
    old = client.get_collection(name)
    before = built_with_model(old)
    staging = f"{name[:480]}-reindex"
    if collection_exists(client, staging):  # left by a reindex that did not finish
        client.delete_collection(staging)
    store = RagStore(settings, staging, client, embedding)
    stored = old.get(include=["documents", "metadatas"])
    chunks = [
        Chunk(id_, text, chunk_header(meta), meta)
        for id_, text, meta in zip(stored["ids"], stored["documents"], stored["metadatas"], strict=True)
    ]
    store._add(chunks, progress)
    retired = f"{name[:480]}-retired"
    old.modify(name=retired)
    store.collection.modify(name=name)
    client.delete_collection(retired)
    store.name = name
    return before, store
