"""Files into a store, and a store re-embedded.

Ingesting is idempotent and survives being killed: chunk ids are hashes of the file's contents,
and every chunk records how many chunks its file has, so a file counts as stored only once all of
them are. An unchanged, complete file adds nothing; a file a killed ingest left half-stored is
completed (only its missing chunks are embedded); a changed file's new chunks are stored before
its old ones are removed, so a failure half-way never loses what was there.

    python -m qa_core.rag ingest reports/ policy.pdf
    python -m qa_core.rag reindex --embedding-model all-MiniLM-L6-v2
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field

from qa_core.chunking import (
    DEFAULT_CHUNK_TOKENS,
    DEFAULT_OVERLAP_TOKENS,
    Chunk,
    ChunkOptions,
    chunk_documents,
    chunk_header,
)
from qa_core.config import Settings
from qa_core.documents import read_sources
from qa_core.embeddings import EmbeddingModel
from qa_core.errors import StoreError
from qa_core.rag.chroma import (
    built_with_model,
    check_collection_name,
    collection_exists,
    fresh_staging,
    open_client,
    replace_collection,
    store_failure,
)
from qa_core.rag.store import RagStore


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


def ingest(
    store: RagStore,
    paths: Iterable[str],
    names: Iterable[str] | None = None,
    text_column: str | None = None,
    title_column: str | None = None,
    chunk_tokens: int = DEFAULT_CHUNK_TOKENS,
    overlap_tokens: int = DEFAULT_OVERLAP_TOKENS,
    progress: bool = False,
) -> IngestReport:
    """Ingest files and folders into `store`; `names` gives uploaded files the names they are cited under.

    Returns:
        The report: chunks added per file, files replaced, completed or unchanged, and one line
        per file that could not be ingested (the others are ingested all the same).

    Raises:
        StoreError: the store failed part-way (its server stopped, its disk filled); the message
            says whether the collection is as it was before.
    """
    report = IngestReport()
    options = {
        "text_column": text_column,
        "title_column": title_column,
        "chunk_tokens": chunk_tokens,
        "overlap_tokens": overlap_tokens,
    }
    pending: list[tuple[str, str, list[Chunk]]] = []  # source, fingerprint, chunks not stored yet
    for file, docs in read_sources(paths, store.settings.max_file_bytes, report.problems, names, options):
        fingerprint = file.fingerprint()
        ids, versions = store.versions(file.source)
        count, expected = versions.get(fingerprint, (0, 0))
        if set(versions) == {fingerprint} and expected in (count, None):  # None: stored before counts were
            report.unchanged.append(file.source)
            continue
        chunks = chunk_documents(docs, store.embedder, fingerprint, ChunkOptions(chunk_tokens, overlap_tokens))
        content = file.path.read_bytes()
        recorded = {  # what a published collection's manifest says of each file and its chunking
            "file_chunks": len(chunks),
            "file_bytes": len(content),
            "file_sha256": hashlib.sha256(content).hexdigest(),
            "chunk_tokens": chunk_tokens,
            "overlap_tokens": overlap_tokens,
        }
        for chunk in chunks:
            chunk.metadata.update(recorded)
        if fingerprint in versions:
            report.completed.append(file.source)
        elif versions:
            report.replaced.append(file.source)
        pending.append((file.source, fingerprint, [chunk for chunk in chunks if chunk.id not in ids]))
    new = [chunk for _, _, chunks in pending for chunk in chunks]
    try:
        store.add_chunks(new, progress)
    except Exception as exc:
        raise _roll_back(store, [chunk.id for chunk in new], exc) from exc
    for source, fingerprint, chunks in pending:  # only once every new chunk is stored
        store.keep_only_version(source, fingerprint)
        report.added[source] = len(chunks)
    return report


def _roll_back(store: RagStore, ids: list[str], exc: Exception) -> Exception:
    """Remove the chunks of an ingest that failed part-way, so the collection is as it was
    before it (older versions of its files are removed only after a complete ingest).

    Returns:
        The error to raise: a `StoreError` that says whether the rollback worked, when the
        store itself failed; else `exc`.
    """
    what = store_failure(exc, store.settings)
    try:
        store.remove_chunks(ids)
    except Exception:
        if what is None:
            return exc
        return StoreError(
            f"{what}: the upload stopped part-way and may be partly stored; upload the same files "
            "again once the store is back to complete them"
        )
    if what is None:
        return exc
    return StoreError(f"{what}: nothing of this upload was kept; the collection is as it was before it")


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
    store = RagStore(settings, fresh_staging(client, name, "reindex"), client, embedding)
    stored = old.get(include=["documents", "metadatas"])
    chunks = [
        Chunk(id_, text, chunk_header(meta), meta)
        for id_, text, meta in zip(stored["ids"], stored["documents"], stored["metadatas"], strict=True)
    ]
    store.add_chunks(chunks, progress)
    replace_collection(client, store.collection, name)
    store.name = name
    return before, store
