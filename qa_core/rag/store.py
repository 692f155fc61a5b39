"""A Chroma collection of document chunks, embedded on disk or on a Chroma server, and the
embedding model that goes with it: open it, write and remove chunks, list and delete sources.
Which chunks an ingest writes is `qa_core.rag.ingest`'s business; Chroma's client and errors are
`qa_core.rag.chroma`'s.

`QA_CHROMA_URL=http://host:port` uses a server started with
`chroma run --path DIR --host 127.0.0.1 --port 8000`; otherwise the database lives in the folder
`QA_CHROMA_PATH`.
"""

from __future__ import annotations

import difflib
import re
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import chromadb
from chromadb.api import ClientAPI
from chromadb.api.models.Collection import Collection
from tqdm.auto import tqdm

from qa_core.chunking import Chunk, ChunkOptions, chunk_documents
from qa_core.config import Settings
from qa_core.documents import Document
from qa_core.embeddings import EmbeddingModel, SentenceEmbedding, resolve_embedding_model, tuned_keyword_weight
from qa_core.errors import EmbeddingError, StoreError
from qa_core.rag.chroma import ChromaEmbedding, built_with_model, check_collection_name, open_client, same_model

# Chunks embedded per call: enough that length-sorting leaves little padding, few enough that
# progress moves and memory stays small.
EMBED_BLOCK = 512


@contextmanager
def temporary_store(settings: Settings, embedding: EmbeddingModel | None = None) -> Iterator[RagStore]:
    """A collection in memory for the length of the block (for evaluations); deleted afterwards."""
    store = RagStore(settings, f"eval-{uuid.uuid4().hex[:12]}", chromadb.EphemeralClient(), embedding)
    try:
        yield store
    finally:
        store.client.delete_collection(store.name)


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

    def versions(self, source: str) -> tuple[set[str], dict[str, tuple[int, int | None]]]:
        """The ids stored for `source`, and per file version (fingerprint): (chunks stored, chunks it has)."""
        stored = self.collection.get(where={"source": source}, include=["metadatas"])
        versions: dict[str, tuple[int, int | None]] = {}
        for meta in stored["metadatas"]:
            count, expected = versions.get(meta["file_hash"], (0, meta.get("file_chunks")))
            versions[meta["file_hash"]] = (count + 1, expected)
        return set(stored["ids"]), versions

    def keep_only_version(self, source: str, fingerprint: str) -> None:
        """Remove the chunks of `source` that come from any other version of its file."""
        self.collection.delete(where={"$and": [{"source": source}, {"file_hash": {"$ne": fingerprint}}]})
        self.changes += 1

    def remove_chunks(self, ids: list[str]) -> None:
        """Remove those of `ids` that are stored."""
        # Only what was stored: after a failed write (a full disk) the database may refuse any
        # further write for as long as this process lives, and most often nothing was stored.
        stored = self.collection.get(ids=ids, include=[])["ids"]
        if stored:
            self.collection.delete(ids=stored)
        self.changes += 1

    def add_documents(
        self, source: str, docs: list[Document], fingerprint: str, options: ChunkOptions | None = None
    ) -> int:
        """Store documents that did not come from a file (e.g. CSV cells in an evaluation).

        Returns:
            The number of chunks stored.
        """
        chunks = chunk_documents(docs, self.embedder, fingerprint, options or ChunkOptions())
        self.add_chunks(chunks, progress=False)
        return len(chunks)

    def add_chunks(self, chunks: list[Chunk], progress: bool = False, block: int = EMBED_BLOCK) -> None:
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
            # the collection's own name is left out: a visitor's is internal (session-…) and says nothing
            known = [entry["source"] for entry in self.sources()]
            close = difflib.get_close_matches(source, known, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise StoreError(f"no document {source!r} among the {len(known)} stored{hint}")
        self.collection.delete(ids=ids)
        self.changes += 1
        return len(ids)

    def reset(self) -> None:
        """Delete the collection and start it again empty."""
        self.client.delete_collection(self.name)
        self.collection = self._open_collection(self.name)
        self.changes += 1
