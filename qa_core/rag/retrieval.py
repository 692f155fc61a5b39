"""Find the chunks that answer a question: dense (embeddings), keyword (BM25), or both fused.

Hybrid retrieval scores the union of the dense and keyword candidates by cosine similarity plus
`KEYWORD_WEIGHT` times the BM25 score divided by the best BM25 score among them. Keywords catch
exact names, years and figures that embeddings blur, but a long question full of generic words
makes BM25's ranking noise: the small weight lets keywords decide between chunks the embedding
finds about equally close, never overrule it. Reciprocal rank fusion, which weighs both rankings
alike, lost up to 0.27 of recall@5 on such questions; `python -m qa_core.rag eval --hybrid`
measures it on a given corpus (benchmarks/README.md has the figures behind the weight).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

import numpy as np
from rank_bm25 import BM25Okapi

from qa_core.rag.chunking import document_header
from qa_core.rag.store import RagStore

KEYWORD_WEIGHT = 0.1
# Words, and numbers with their separators kept ("1,240", "13.8", "2025"), lower-cased.
TOKEN = re.compile(r"\w+(?:[.,]\d+)*")


def keyword_tokens(text: str) -> list[str]:
    return TOKEN.findall(text.lower())


@dataclass
class Hit:
    """A retrieved chunk: `score` is cosine similarity (dense), BM25 (keyword) or both fused (hybrid)."""

    id: str
    text: str
    score: float
    metadata: dict

    @property
    def source(self) -> str:
        return self.metadata["source"]

    @property
    def label(self) -> str:
        """Where the chunk comes from, as a citation shows it: `report.pdf, page 3`."""
        if "page" in self.metadata:
            return f"{self.source}, page {self.metadata['page']}"
        if "row" in self.metadata:
            return f"{self.source}, row {self.metadata['row']}"
        return self.source

    def to_dict(self) -> dict:
        return {"id": self.id, "score": round(self.score, 4), "label": self.label, "text": self.text, **self.metadata}


class Retriever:
    """Searches one `RagStore`. The keyword index is rebuilt only when the stored chunks change."""

    def __init__(self, store: RagStore) -> None:
        self.store = store
        self._bm25: BM25Okapi | None = None
        self._bm25_key = ""
        self._chunks: dict = {}

    def dense(self, query: str, k: int, vector: np.ndarray | None = None) -> list[Hit]:
        """The `k` chunks nearest to `query` (whose embedding is `vector`, when already computed)."""
        n = min(k, self.store.count())
        if n == 0:
            return []
        vector = np.asarray(self.store.embedder([query])[0]) if vector is None else vector
        found = self.store.collection.query(
            query_embeddings=[vector], n_results=n, include=["documents", "metadatas", "distances"]
        )
        return [
            Hit(id_, text, 1.0 - distance, meta)
            for id_, text, meta, distance in zip(
                found["ids"][0], found["documents"][0], found["metadatas"][0], found["distances"][0], strict=True
            )
        ]

    def _keyword_index(self) -> BM25Okapi | None:
        ids = self.store.collection.get(include=[])["ids"]
        key = hashlib.sha256("\0".join(sorted(ids)).encode()).hexdigest()
        if key != self._bm25_key:
            stored = self.store.collection.get(include=["documents", "metadatas"])
            self._chunks = {"ids": stored["ids"], "documents": stored["documents"], "metadatas": stored["metadatas"]}
            corpus = [
                keyword_tokens(document_header(meta["title"]) + text)
                for text, meta in zip(stored["documents"], stored["metadatas"], strict=True)
            ]
            self._bm25 = BM25Okapi(corpus) if corpus else None
            self._bm25_key = key
        return self._bm25

    def keyword(self, query: str, k: int) -> list[Hit]:
        index = self._keyword_index()
        if index is None:
            return []
        scores = index.get_scores(keyword_tokens(query))
        best = sorted(range(len(scores)), key=lambda i: scores[i], reverse=True)[:k]
        chunks = self._chunks
        return [
            Hit(chunks["ids"][i], chunks["documents"][i], float(scores[i]), chunks["metadatas"][i])
            for i in best
            if scores[i] > 0
        ]

    def search(self, query: str, k: int = 5, hybrid: bool = False) -> list[Hit]:
        """The `k` best chunks for `query`, best first."""
        if not hybrid:
            return self.dense(query, k)
        pool = max(4 * k, 20)
        if not self.store.count():
            return []
        asked = np.asarray(self.store.embedder([query])[0])  # embedded once, for both uses below
        dense, keyword = self.dense(query, pool, asked), self.keyword(query, pool)
        hits = {hit.id: hit for hit in keyword} | {hit.id: hit for hit in dense}
        similarity = {hit.id: hit.score for hit in dense}
        if missing := [id_ for id_ in hits if id_ not in similarity]:  # keyword-only: their cosine similarity
            vectors = self.store.collection.get(ids=missing, include=["embeddings"])
            similarity |= dict(zip(vectors["ids"], np.asarray(vectors["embeddings"]) @ asked, strict=True))
        bm25 = {hit.id: hit.score for hit in keyword}
        best_keyword = max(bm25.values(), default=0.0) or 1.0
        fused = {id_: float(similarity[id_]) + KEYWORD_WEIGHT * bm25.get(id_, 0.0) / best_keyword for id_ in hits}
        best = sorted(fused, key=fused.get, reverse=True)[:k]
        return [Hit(i, hits[i].text, fused[i], hits[i].metadata) for i in best]
