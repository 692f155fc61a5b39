"""Split documents into chunks by tokens, on paragraph and sentence boundaries, with overlap.

Chunks are measured in the embedding model's own word pieces and are never longer than what it
reads (256 for all-MiniLM-L6-v2) once the document header is added, so no chunk is silently cut
off at embedding time; `chunk_tokens` (default 512) caps them further for models with longer windows.
Each chunk is embedded with a header naming its document, because questions name companies,
reports and periods that the chunk's own text rarely repeats.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache

import semchunk

from qa_core.documents import Document
from qa_core.embeddings import SentenceEmbedding, load_sentence_model

DEFAULT_CHUNK_TOKENS = 512
DEFAULT_OVERLAP_TOKENS = 32
MIN_CHUNK_TOKENS = 32


@dataclass
class Chunk:
    """A piece of a document: `text` is shown and cited, `header + text` is embedded and indexed."""

    id: str
    text: str
    header: str
    metadata: dict

    @property
    def indexed_text(self) -> str:
        return self.header + self.text


def document_header(title: str) -> str:
    """The line that names a chunk's document in what gets embedded and keyword-indexed."""
    return f"Document: {title}\n" if title else ""


@lru_cache(maxsize=64)
def _chunker(location: str, size: int) -> semchunk.Chunker:
    return semchunk.chunkerify(load_sentence_model(location).tokenizer, size)


def chunk_documents(
    docs: list[Document],
    embedder: SentenceEmbedding,
    fingerprint: str,
    chunk_tokens: int = DEFAULT_CHUNK_TOKENS,
    overlap_tokens: int = DEFAULT_OVERLAP_TOKENS,
) -> list[Chunk]:
    """Chunk every document; ids are derived from source, `fingerprint` and position (of the
    document in `docs`, of the chunk in the document), so the same file chunked the same way
    always gets the same ids."""
    chunks: list[Chunk] = []
    for doc_index, doc in enumerate(docs):
        header = document_header(doc.title)
        room = embedder.max_tokens - 2 - embedder.count_tokens(header)  # 2: [CLS] and [SEP]
        size = max(MIN_CHUNK_TOKENS, min(chunk_tokens, room))
        texts, offsets = _chunker(embedder.pinned.location, size)(
            doc.text, overlap=min(overlap_tokens, size // 2), offsets=True
        )
        location = {key: value for key, value in (("page", doc.page), ("row", doc.row)) if value is not None}
        for index, (text, (start, end)) in enumerate(zip(texts, offsets, strict=True)):
            if not text.strip():
                continue
            key = f"{doc.source}\0{fingerprint}\0{doc_index}\0{index}"
            metadata = {
                "source": doc.source,
                "title": doc.title,
                **location,
                "chunk": index,
                "start": start,
                "end": end,
                "file_hash": fingerprint,
                "text_hash": hashlib.sha256(text.encode()).hexdigest()[:16],
            }
            chunks.append(Chunk(hashlib.sha256(key.encode()).hexdigest()[:32], text, header, metadata))
    return chunks
