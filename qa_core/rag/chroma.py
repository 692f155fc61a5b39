"""Chroma itself: the client for a folder or a server, collection names, the embedding model a
collection records, and Chroma's failures turned into one `StoreError` line."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

import chromadb
import httpx
from chromadb.api import ClientAPI
from chromadb.api.models.Collection import Collection
from chromadb.api.types import Documents, EmbeddingFunction, Embeddings
from chromadb.errors import ChromaError, InternalError, NotFoundError

from qa_core.config import Settings
from qa_core.embeddings import EmbeddingModel, SentenceEmbedding
from qa_core.errors import StoreError

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


def replace_collection(client: ClientAPI, staging: Collection, name: str) -> None:
    """Put the complete collection `staging` in place of `name` (which may not exist). Until the
    first rename, `name` is untouched; only between the two renames is there no `name`."""
    retired = f"{name[:480]}-retired"
    if collection_exists(client, retired):  # left by a replacement killed between its renames
        client.delete_collection(retired)
    if collection_exists(client, name):
        client.get_collection(name).modify(name=retired)
    staging.modify(name=name)
    if collection_exists(client, retired):
        client.delete_collection(retired)


def fresh_staging(client: ClientAPI, name: str, purpose: str) -> str:
    """The name of a staging collection for `name` (`NAME-reindex`, `NAME-pull`), with any copy a
    killed run left behind deleted."""
    staging = f"{name[:480]}-{purpose}"
    if collection_exists(client, staging):
        client.delete_collection(staging)
    return staging


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
