"""A collection published as a Hub dataset: pushed as Parquet with its embeddings, pulled into
Chroma without embedding anything.

    python -m qa_core.rag --collection filings ingest reports/
    python -m qa_core.rag --collection filings push your-name/filings-index [--private]
    python -m qa_core.rag --collection filings pull your-name/filings-index[@REV] [--reembed]

The dataset holds `data/chunks-NNNNN-of-NNNNN.parquet` (one row per chunk: id, text, source,
title, page, row, headings, every stored field as JSON, and the embedding), `collection.json` (the
manifest: format version, the embedding model and revision, dimension, chunking, each source file's
name, size and sha256, the shards and their sha256, and a fingerprint of every row) and a dataset
card whose `configs` let the Hub's viewer show the chunks. Sources ingested by absolute path are
published relative to the folder they share: no path of the machine that built it goes out.

A push reads the collection `SHARD_ROWS` chunks at a time, so its memory does not grow with the
collection; one whose fingerprint equals the manifest's on the Hub makes no commit. A pull checks
the manifest and every shard's sha256 before it loads anything, fills a staging collection and
only then puts it in place of the old one: a pull that fails or is killed leaves the previous
collection (or, for the instant between two renames, none), never a partial one that answers. The
collection records the repo and commit it came from, so pulling that commit again does nothing.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from chromadb.api import ClientAPI
from huggingface_hub import DatasetCard, DatasetCardData, hf_hub_download, snapshot_download
from huggingface_hub.errors import EntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError
from tqdm.auto import tqdm

from qa_core.chunking import Chunk, chunk_header
from qa_core.config import Settings
from qa_core.embeddings import EmbeddingModel, resolve_embedding_model
from qa_core.errors import CollectionError, HubError, StoreError
from qa_core.hub.client import api, call, push_folder
from qa_core.rag.chroma import (
    check_collection_name,
    collection_exists,
    fresh_staging,
    open_client,
    replace_collection,
    same_model,
)
from qa_core.rag.store import RagStore

FORMAT, FORMAT_VERSION = "qa-toolkit-collection", 1
MANIFEST = "collection.json"
SHARD_ROWS = 5000  # chunks per Parquet file, and per read from Chroma: 5,000 x 384 floats is 7.7 MB
# Kept from the collection's own metadata: hybrid search's tuned keyword weight.
CARRIED_METADATA = ("keyword_weight",)
log = logging.getLogger("qa_toolkit.published")


@dataclass(frozen=True)
class Transfer:
    """What a push or pull did: the collection, the repo and commit, the chunks, and whether
    anything changed (False: the Hub or the local collection already held exactly this)."""

    collection: str
    repo_id: str
    commit: str
    chunks: int
    changed: bool


def _features(dimension: int) -> datasets.Features:
    return datasets.Features(
        {
            "id": datasets.Value("string"),
            "text": datasets.Value("string"),
            "source": datasets.Value("string"),
            "title": datasets.Value("string"),
            "page": datasets.Value("int32"),
            "row": datasets.Value("int32"),
            "headings": datasets.Value("string"),
            "metadata": datasets.Value("string"),
            "embedding": datasets.List(datasets.Value("float32"), length=dimension),
        }
    )


def _pages(store: RagStore, rows: int) -> Iterator[dict]:
    """The collection `rows` chunks at a time, with their embeddings (Chroma's own order)."""
    for offset in range(0, store.count(), rows):
        yield store.collection.get(limit=rows, offset=offset, include=["documents", "metadatas", "embeddings"])


def _sha256(path: Path) -> str:
    with path.open("rb") as file:
        return hashlib.file_digest(file, "sha256").hexdigest()


class _Manifest:
    """What a push learns of the collection as it writes the shards."""

    def __init__(self, store: RagStore) -> None:
        pinned = store.embedder.pinned
        self.store = store
        self.fingerprint = hashlib.sha256(f"{pinned.name}\0{pinned.revision}".encode())
        self.sources: dict[str, dict] = {}
        self.chunking: set[tuple] = set()
        self.dimension = 0

    def add(self, id_: str, text: str, meta: dict, vector: np.ndarray) -> None:
        self.fingerprint.update(f"{id_}\0{text}\0{json.dumps(meta, sort_keys=True)}\0".encode())
        self.fingerprint.update(vector.tobytes())
        entry = self.sources.setdefault(
            meta["source"],
            {
                "source": meta["source"],
                "title": meta.get("title", ""),
                "bytes": meta.get("file_bytes"),
                "sha256": meta.get("file_sha256"),
                "chunks": 0,
            },
        )
        entry["chunks"] += 1
        self.chunking.add((meta.get("chunk_tokens"), meta.get("overlap_tokens")))

    def to_dict(self, shards: list[dict]) -> dict:
        pinned = self.store.embedder.pinned
        metadata = self.store.collection.metadata or {}
        carried = {key: metadata[key] for key in CARRIED_METADATA if key in metadata}
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "collection": self.store.name,
            "embedding_model": {"name": pinned.name, "revision": pinned.revision},
            "dimension": self.dimension,
            "chunking": [
                {"chunk_tokens": tokens, "overlap_tokens": overlap}
                for tokens, overlap in sorted(self.chunking, key=str)
                if tokens is not None
            ],
            "chunks": sum(shard["rows"] for shard in shards),
            "sources": sorted(self.sources.values(), key=lambda entry: entry["source"]),
            "shards": shards,
            "fingerprint": self.fingerprint.hexdigest(),
            "collection_metadata": carried,
        }


def public_sources(sources: list[str]) -> dict[str, str]:
    """The name each source is published under: a path on this machine (absolute, as an ingest of
    `/home/me/reports` stores it) relative to the folder all such paths share; others as they are.

    >>> public_sources(["/home/me/r/a.pdf", "/home/me/r/q/b.pdf", "upload.txt"])
    {'/home/me/r/a.pdf': 'a.pdf', '/home/me/r/q/b.pdf': 'q/b.pdf', 'upload.txt': 'upload.txt'}
    """
    local = [source for source in sources if os.path.isabs(source)]
    common = os.path.commonpath([os.path.dirname(source) for source in local]) if local else ""
    return {source: os.path.relpath(source, common) if source in local else source for source in sources}


def write_dataset(store: RagStore, folder: Path, progress: bool = False, rows: int | None = None) -> dict:
    """Write `store`'s chunks as Parquet shards under `folder/data/` (through `datasets`), reading
    `rows` chunks (default `SHARD_ROWS`) at a time.

    Returns:
        The manifest (not yet written).
    """
    manifest = _Manifest(store)
    names = public_sources([entry["source"] for entry in store.sources()])
    rows = rows or SHARD_ROWS
    total = store.count()
    shards = max(1, -(-total // rows))
    (folder / "data").mkdir(parents=True, exist_ok=True)
    written: list[dict] = []
    with tqdm(total=total, desc="writing", unit="chunk", disable=not progress) as bar:
        for number, page in enumerate(_pages(store, rows)):
            vectors = np.asarray(page["embeddings"], dtype=np.float32)
            manifest.dimension = vectors.shape[1]
            table: dict[str, list] = {name: [] for name in _features(manifest.dimension)}
            for id_, text, meta, vector in zip(page["ids"], page["documents"], page["metadatas"], vectors, strict=True):
                meta = {**meta, "source": names[meta["source"]]}
                manifest.add(id_, text, meta, vector)
                table["id"].append(id_)
                table["text"].append(text)
                table["source"].append(meta["source"])
                table["title"].append(meta.get("title", ""))
                table["page"].append(meta.get("page"))
                table["row"].append(meta.get("row"))
                table["headings"].append(meta.get("context", ""))
                table["metadata"].append(json.dumps(meta, sort_keys=True))
                table["embedding"].append(vector)
            path = folder / "data" / f"chunks-{number:05d}-of-{shards:05d}.parquet"
            datasets.Dataset.from_dict(table, features=_features(manifest.dimension)).to_parquet(path)
            entry = {"path": path.relative_to(folder).as_posix(), "rows": len(page["ids"]), "sha256": _sha256(path)}
            written.append(entry)
            bar.update(len(page["ids"]))
    return manifest.to_dict(written)


def dataset_card(repo_id: str, manifest: dict) -> str:
    """The dataset card: what the collection is, how it was built, and how to pull it."""
    data = DatasetCardData(
        pretty_name=f"{manifest['collection']} (document collection)",
        tags=["rag", "embeddings", "chroma", "qa-toolkit"],
        configs=[{"config_name": "default", "data_files": [{"split": "train", "path": "data/*.parquet"}]}],
    )
    model = manifest["embedding_model"]
    chunking = ", ".join(f"{c['chunk_tokens']} tokens, {c['overlap_tokens']} overlap" for c in manifest["chunking"])
    lines = [
        f"# {manifest['collection']}",
        "",
        f"A document collection for retrieval: {manifest['chunks']:,} chunks of {len(manifest['sources'])} "
        "documents, with their embeddings, as the QA toolkit's RAG tab and `python -m qa_core.rag` search them.",
        "",
        "| | |",
        "|---|---|",
        f"| embedding model | `{model['name']}` ({model['revision']}) |",
        f"| dimension | {manifest['dimension']} |",
        f"| chunking | {chunking or 'not recorded'} |",
        f"| format | {FORMAT} {FORMAT_VERSION} (`{MANIFEST}`) |",
        "",
        "## Use it",
        "",
        "```bash",
        f"python -m qa_core.rag --collection {manifest['collection']} pull {repo_id}",
        f'python -m qa_core.rag --collection {manifest["collection"]} ask "your question"',
        "```",
        "",
        f"Or serve it read-only in the app: `QA_COLLECTION_REPO={repo_id}`. The chunks load with "
        f'`datasets.load_dataset("{repo_id}")`.',
        "",
        "## Documents",
        "",
        "| source | title | chunks | bytes | sha256 |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {s['source']} | {s['title']} | {s['chunks']} | {s['bytes'] or ''} | {(s['sha256'] or '')[:16]} |"
        for s in manifest["sources"]
    ]
    return str(DatasetCard(f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(lines) + "\n"))


def _download(repo_id: str, path: str, revision: str, settings: Settings) -> Path | None:
    """One file of the dataset repo at `revision`, in the Hub cache; None when the repo, the
    revision or the file does not exist.

    Raises:
        HubError: the Hub cannot be reached or refused the token.
    """

    def download() -> Path | None:
        try:
            found = hf_hub_download(
                repo_id,
                path,
                repo_type="dataset",
                revision=revision,
                endpoint=settings.hf_endpoint,
                token=settings.hub_token,
            )
        except (RepositoryNotFoundError, RevisionNotFoundError, EntryNotFoundError):
            return None
        return Path(found)

    return call(download, settings, repo_id, revision)


def _remote_manifest(repo_id: str, revision: str, settings: Settings) -> dict | None:
    """The manifest on the Hub at `revision`, or None when the repo or the file does not exist.

    Raises:
        HubError: the Hub cannot be reached or refused the token.
        CollectionError: the file is not JSON.
    """
    path = _download(repo_id, MANIFEST, revision, settings)
    if path is None:
        return None
    try:
        return json.loads(path.read_text())
    except ValueError as exc:
        raise CollectionError(f"{repo_id}@{revision}: {MANIFEST} is not valid JSON ({exc})") from exc


def push_collection(
    store: RagStore, repo_id: str, settings: Settings, private: bool | None = None, progress: bool = False
) -> Transfer:
    """Publish `store` as one commit to the dataset repo `repo_id` (created if needed); nothing is
    committed when the Hub's manifest has the same fingerprint.

    Returns:
        The `Transfer` (commit: the new one, or the Hub's head when unchanged).

    Raises:
        StoreError: the collection is empty.
        HubError: no write access, or the Hub cannot be reached.
    """
    chunks = store.count()
    if not chunks:
        raise StoreError(f"collection {store.name!r} is empty: ingest documents before pushing it")
    with tempfile.TemporaryDirectory(prefix="collection-") as tmp:
        folder = Path(tmp)
        manifest = write_dataset(store, folder, progress)
        remote = _remote_manifest(repo_id, "main", settings)
        if remote is not None and remote.get("fingerprint") == manifest["fingerprint"]:
            head = call(lambda: api(settings).repo_info(repo_id, repo_type="dataset").sha, settings, repo_id)
            return Transfer(store.name, repo_id, head, chunks, changed=False)
        (folder / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
        (folder / "README.md").write_text(dataset_card(repo_id, manifest))
        title = f"collection {store.name}: {chunks:,} chunks of {len(manifest['sources'])} documents"
        commit = push_folder(folder, repo_id, settings, title, private=private, repo_type="dataset")
    return Transfer(store.name, repo_id, commit, chunks, changed=True)


def check_manifest(manifest: dict | None, where: str, embedding: EmbeddingModel | None, reembed: bool) -> None:
    """Raise CollectionError unless `manifest` describes a collection this side can load as it is
    (or, with `reembed`, re-embed: then `embedding` may be None)."""
    if manifest is None or manifest.get("format") != FORMAT:
        raise CollectionError(f"{where} is not a published collection (no {MANIFEST} of format {FORMAT!r})")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise CollectionError(
            f"{where}: collection format version {manifest.get('format_version')!r} is not one this toolkit "
            f"reads (it reads {FORMAT_VERSION}); upgrade the toolkit"
        )
    built = EmbeddingModel(manifest["embedding_model"]["name"], manifest["embedding_model"]["revision"])
    if not reembed and not same_model(built, embedding):
        raise CollectionError(
            f"{where} was embedded with {built} but queries here embed with {embedding}: set QA_EMBEDDING_MODEL "
            "to the model it was built with, or pull with --reembed to embed its texts with this one"
        )


def _check_shards(folder: Path, manifest: dict, where: str) -> None:
    """Raise CollectionError when a shard is missing or differs from the manifest (sha256, rows, width)."""
    for shard in manifest["shards"]:
        path = folder / shard["path"]
        if not path.is_file() or _sha256(path) != shard["sha256"]:
            raise CollectionError(f"{where}: {shard['path']} is missing or damaged (its sha256 is not the manifest's)")
        try:
            schema, rows = pq.read_schema(path), pq.ParquetFile(path).metadata.num_rows
        except (pa.ArrowException, OSError) as exc:
            raise CollectionError(f"{where}: {shard['path']} is not a readable Parquet file ({exc})") from exc
        vectors = schema.field("embedding").type if "embedding" in schema.names else None
        width = getattr(vectors, "list_size", None)
        if rows != shard["rows"] or width != manifest["dimension"]:
            raise CollectionError(
                f"{where}: {shard['path']} holds {rows} rows of {width}-dimensional embeddings; the manifest says "
                f"{shard['rows']} of {manifest['dimension']}"
            )


def _load(store: RagStore, folder: Path, manifest: dict, reembed: bool, progress: bool) -> None:
    """Fill `store` from the shards, one Parquet batch at a time."""
    limit = store.client.get_max_batch_size()
    with tqdm(total=manifest["chunks"], desc="loading", unit="chunk", disable=not progress) as bar:
        for shard in manifest["shards"]:
            for batch in pq.ParquetFile(folder / shard["path"]).iter_batches(
                batch_size=limit, columns=["id", "text", "metadata", "embedding"]
            ):
                ids, texts = batch.column("id").to_pylist(), batch.column("text").to_pylist()
                metadatas = [json.loads(meta) for meta in batch.column("metadata").to_pylist()]
                if reembed:
                    chunks = [Chunk(i, t, chunk_header(m), m) for i, t, m in zip(ids, texts, metadatas, strict=True)]
                    store.add_chunks(chunks)
                else:
                    vectors = batch.column("embedding").flatten().to_numpy().reshape(len(ids), manifest["dimension"])
                    store.collection.upsert(ids=ids, embeddings=vectors, documents=texts, metadatas=metadatas)
                    del vectors  # a view of the batch's buffers
                bar.update(len(ids))
                del batch  # freed before the next is read: one batch's buffers at a time, however many shards


def _split_spec(spec: str) -> tuple[str, str]:
    repo_id, _, revision = spec.partition("@")
    if repo_id.count("/") != 1 or not all(repo_id.split("/")):
        raise CollectionError(f"{spec!r}: a published collection is named OWNER/NAME[@REVISION]")
    return repo_id, revision or "main"


def pull_collection(
    spec: str,
    settings: Settings,
    collection: str | None = None,
    reembed: bool = False,
    progress: bool = False,
    client: ClientAPI | None = None,
) -> Transfer:
    """Fill the Chroma collection `collection` (default `QA_COLLECTION`) from the published
    collection `spec` (`OWNER/NAME[@REVISION]`, default the main branch), without embedding
    anything unless `reembed`.

    Returns:
        The `Transfer` (changed False: the collection already held that commit).

    Raises:
        CollectionError: not a collection, an unknown format version, another embedding model
            (without `reembed`), a damaged or inconsistent shard; nothing was loaded.
        StoreError: the target collection holds chunks that were not pulled from this repo.
        HubError: the repo or revision does not exist, or the Hub cannot be reached.
    """
    repo_id, revision = _split_spec(spec)
    name = collection or settings.collection
    check_collection_name(name)
    client = client or open_client(settings)
    commit = _resolve(repo_id, revision, settings)
    where = f"{repo_id}@{commit[:7]}"
    existing = client.get_collection(name) if collection_exists(client, name) else None
    recorded = (existing.metadata or {}) if existing else {}
    if recorded.get("pulled_from") == repo_id and recorded.get("pulled_commit") == commit:
        return Transfer(name, repo_id, commit, existing.count(), changed=False)
    embedding = resolve_embedding_model(settings.embedding_model, settings)
    manifest = _remote_manifest(repo_id, commit, settings)
    check_manifest(manifest, where, embedding, reembed)
    if existing and existing.count() and recorded.get("pulled_from") != repo_id:
        raise StoreError(
            f"collection {name!r} holds {existing.count()} chunks that were not pulled from {repo_id}; "
            "pull into another --collection, or reset this one first"
        )
    folder = Path(
        call(
            lambda: snapshot_download(
                repo_id,
                repo_type="dataset",
                revision=commit,
                allow_patterns=[MANIFEST, "data/*.parquet"],
                max_workers=1,  # each download holds a buffer of its own: one at a time keeps memory flat
                endpoint=settings.hf_endpoint,
                token=settings.hub_token,
            ),
            settings,
            repo_id,
            commit,
        )
    )
    _check_shards(folder, manifest, where)
    store = RagStore(settings, fresh_staging(client, name, "pull"), client, embedding)
    try:
        _load(store, folder, manifest, reembed, progress)
        pulled = {"pulled_from": repo_id, "pulled_commit": commit, **manifest.get("collection_metadata", {})}
        store.collection.modify(metadata={**(store.collection.metadata or {}), **pulled})
    except BaseException:
        client.delete_collection(store.name)
        raise
    replace_collection(client, store.collection, name)
    return Transfer(name, repo_id, commit, manifest["chunks"], changed=True)


def pin_collection(spec: str, settings: Settings) -> str:
    """`spec` (`OWNER/NAME[@REV]`) as `OWNER/NAME@COMMIT`, once its manifest says it is a collection
    this toolkit reads (what a deployed Space must serve: a branch moves with the next push).

    Raises:
        CollectionError: not a published collection, or of an unknown format version.
        HubError: the repo or revision does not exist, or the Hub cannot be reached.
    """
    repo_id, commit, _ = _published(spec, settings)
    return f"{repo_id}@{commit}"


def sample_question(spec: str, settings: Settings) -> tuple[str, str]:
    """A question only the published collection `spec` answers: a sentence of one of its chunks
    (from its first shard), and the source that chunk is from.

    Raises:
        CollectionError, HubError: as `pin_collection`; or no chunk holds a sentence of six words.
    """
    repo_id, commit, manifest = _published(spec, settings)
    first = manifest["shards"][0]["path"]
    shard = _download(repo_id, first, commit, settings)
    if shard is None:
        raise CollectionError(f"{repo_id}@{commit[:7]}: {first}, named in its manifest, is missing")
    rows = pq.read_table(shard, columns=["text", "source"]).to_pylist()
    for row in rows:
        for sentence in re.split(r"(?<=[.!?])\s+", " ".join(row["text"].split())):
            if 6 <= len(sentence.split()) <= 40 and sentence[0].isupper():
                return sentence, row["source"]
    raise CollectionError(f"{repo_id}@{commit[:7]}: no chunk of its first shard holds a sentence to ask about")


def _published(spec: str, settings: Settings) -> tuple[str, str, dict]:
    """The repo, the commit `spec` is at, and its manifest, checked to be a collection's (of any
    embedding model: that is the pulling side's to check).

    Raises:
        CollectionError: not a published collection, or of an unknown format version.
        HubError: the repo or revision does not exist, or the Hub cannot be reached.
    """
    repo_id, revision = _split_spec(spec)
    commit = _resolve(repo_id, revision, settings)
    manifest = _remote_manifest(repo_id, commit, settings)
    check_manifest(manifest, f"{repo_id}@{commit[:7]}", None, reembed=True)
    return repo_id, commit, manifest


def _resolve(repo_id: str, revision: str, settings: Settings) -> str:
    """The commit `revision` (a branch, tag or sha) of the dataset repo `repo_id` is at."""
    return call(
        lambda: api(settings).repo_info(repo_id, repo_type="dataset", revision=revision).sha,
        settings,
        repo_id,
        revision,
    )


def local_name(repo_id: str) -> str:
    """The Chroma collection a server keeps the published collection `repo_id` in."""
    return "published-" + re.sub(r"[^A-Za-z0-9._-]", "-", repo_id)


def serve_published(spec: str, settings: Settings, client: ClientAPI) -> RagStore:
    """The published collection `spec` (`OWNER/NAME[@REV]`) as a server searches it: pulled into
    `local_name(...)` unless that already holds the commit (a container's volume keeps it across
    restarts); when the Hub cannot be reached, the copy pulled before, with a warning.

    Raises:
        QAError: as `pull_collection`, when no copy was pulled before.
    """
    repo_id, _ = _split_spec(spec)
    name = local_name(repo_id)
    started = time.monotonic()
    try:
        transfer = pull_collection(spec, settings, name, progress=True, client=client)
    except HubError as exc:
        stored = client.get_collection(name) if collection_exists(client, name) else None
        if stored is None or (stored.metadata or {}).get("pulled_from") != repo_id or not stored.count():
            raise
        commit = stored.metadata["pulled_commit"]
        log.warning("%s; serving the copy pulled before (%s@%s)", exc, repo_id, commit[:7])
    else:
        how = "pulled" if transfer.changed else "already here (that commit was pulled before)"
        at = f"{repo_id}@{transfer.commit[:7]}"
        log.info(
            "published collection %s: %d chunks, %s, in %.1f s", at, transfer.chunks, how, time.monotonic() - started
        )
    return RagStore(settings, name, client)


def describe(transfer: Transfer, pushed: bool) -> str:
    """One line saying what a push or pull did."""
    at = f"{transfer.repo_id}@{transfer.commit[:7]}"
    if not transfer.changed:
        return f"{transfer.collection}: {transfer.chunks:,} chunks, unchanged since {at}: nothing to do"
    return f"{transfer.collection}: {transfer.chunks:,} chunks {'pushed to' if pushed else 'pulled from'} {at}"
