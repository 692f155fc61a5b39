"""Find the chunks that answer a question: dense (embeddings), keyword (BM25), or both fused.

Hybrid retrieval scores the union of the dense and keyword candidates by cosine similarity plus
`KEYWORD_WEIGHT` times the BM25 score divided by the best BM25 score among them. It runs on an
in-memory copy of the collection (vectors and a `bm25s` index, rebuilt only when the chunks
change), so a hybrid query costs one embedding, one matrix product and one sparse BM25 scoring.
Keywords catch exact names, years and figures that embeddings blur, but a long question full of generic words
makes BM25's ranking noise: the small weight lets keywords decide between chunks the embedding
finds about equally close, never overrule it. Reciprocal rank fusion, which weighs both rankings
alike, lost up to 0.27 of recall@5 on such questions; `python -m qa_core.rag eval --hybrid`
measures it on a given corpus (benchmarks/README.md has the figures behind the weight).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

import bm25s
import numpy as np
import torch

from qa_core.chunking import chunk_header
from qa_core.rag.store import RagStore

KEYWORD_WEIGHT = 0.1
PER_PAGE = True  # results keep one chunk per page (benchmarks/chunking.py measures both ways)
PAGE_POOL = 4  # chunks looked at per page asked for, when results keep one chunk per page
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
    origin: str = ""  # which collection, when several are searched as one (`JointRetriever`)

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

    @property
    def from_collection(self) -> str:
        """` · ` and the collection the chunk is from when several were searched, else ""."""
        return f" · {self.origin}" if self.origin else ""

    def to_dict(self) -> dict:
        found = {"id": self.id, "score": round(self.score, 4), "label": self.label, "text": self.text}
        return {**found, **({"origin": self.origin} if self.origin else {}), **self.metadata}


@dataclass
class _Index:
    """A collection's chunks held in memory for hybrid search: texts, metadata, normalised vectors
    and a BM25 index (`bm25s`, scored with sparse matrices), built once per version of the chunks."""

    changes: int  # the store's own writes counted when it was read
    ids: list[str]
    texts: list[str]
    metadatas: list[dict]
    vectors: torch.Tensor  # torch, not numpy: numpy's BLAS threads would then compete with the encoder's
    bm25: bm25s.BM25 | None  # None (and no vectors) for an empty collection: bm25s cannot index nothing

    @classmethod
    def build(cls, store: RagStore) -> _Index:
        changes = store.changes
        stored = store.collection.get(include=["documents", "metadatas", "embeddings"])
        corpus = [
            keyword_tokens(chunk_header(meta) + text)
            for text, meta in zip(stored["documents"], stored["metadatas"], strict=True)
        ]
        bm25, vectors = None, torch.empty(0, 0)
        if corpus:
            bm25 = bm25s.BM25()
            bm25.index(corpus, show_progress=False)
            vectors = torch.from_numpy(np.asarray(stored["embeddings"], dtype=np.float32).reshape(len(corpus), -1))
        return cls(changes, stored["ids"], stored["documents"], stored["metadatas"], vectors, bm25)

    def keyword_scores(self, query: str) -> np.ndarray:
        tokens = keyword_tokens(query)
        if not tokens or self.bm25 is None:
            return np.zeros(len(self.ids), dtype=np.float32)
        return self.bm25.get_scores(tokens)

    def hit(self, i: int, score: float) -> Hit:
        return Hit(self.ids[i], self.texts[i], float(score), self.metadatas[i])


def ranking(hit: Hit) -> tuple[float, str]:
    """Sort key: highest score first; scores equal to 6 decimals (the same text embedded twice differs
    in the last bits, with the batch it was embedded in) by chunk id."""
    return -round(hit.score, 6), hit.id


def _top(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the `k` highest scores, highest first."""
    k = min(k, len(scores))
    if k == 0:
        return np.empty(0, dtype=int)
    top = np.argpartition(-scores, k - 1)[:k]
    return top[np.argsort(-scores[top], kind="stable")]


class Retriever:
    """Searches one `RagStore`. Keyword and hybrid search use an in-memory index of the collection,
    rebuilt only when the chunks change: the store counts its own changes, and a change made by
    another process shows in the number of chunks (a replacement of exactly as many chunks by
    another process is seen when this process next changes the collection). Chroma's count grows
    with the collection (4 ms at 50,000 chunks), so a folder database is only counted after its
    file changed (anyone's write to any collection); a server's collection is counted every time."""

    def __init__(self, store: RagStore, keyword_weight: float | None = None, per_page: bool = PER_PAGE) -> None:
        """`keyword_weight`: BM25's weight in hybrid search (default: the one tuned for the
        collection, else `KEYWORD_WEIGHT`); `per_page`: one chunk per page in results."""
        self.store = store
        self.keyword_weight = next(w for w in (keyword_weight, store.keyword_weight, KEYWORD_WEIGHT) if w is not None)
        self.per_page = per_page
        self._index: _Index | None = None
        self._stamp: tuple[int, int] | None = None  # the database file as the last check saw it

    def dense(self, query: str, k: int) -> list[Hit]:
        """The `k` chunks nearest to `query` (Chroma's vector index; fewer if fewer are stored)."""
        if k < 1:  # Chroma refuses to look for none
            return []
        found = self.store.collection.query(
            query_embeddings=[self.store.embedder.embed_query(query).numpy()],
            n_results=k,
            include=["documents", "metadatas", "distances"],
        )
        return [
            Hit(id_, text, 1.0 - distance, meta)
            for id_, text, meta, distance in zip(
                found["ids"][0], found["documents"][0], found["metadatas"][0], found["distances"][0], strict=True
            )
        ]

    def index(self) -> _Index:
        """The in-memory index of the collection as it is now."""
        stamp = self.store.storage_stamp()  # taken first: a write after it shows at the next check
        current = self._index is not None and self._index.changes == self.store.changes
        if current and (stamp is None or stamp != self._stamp):
            current = len(self._index.ids) == self.store.count()
        if not current:
            self._index = _Index.build(self.store)
        self._stamp = stamp
        return self._index

    def keyword(self, query: str, k: int) -> list[Hit]:
        """The `k` chunks with the highest BM25 score for `query` (none that share no word with it)."""
        index = self.index()
        scores = index.keyword_scores(query)
        return [index.hit(i, scores[i]) for i in _top(scores, k) if scores[i] > 0]

    def search(self, query: str, k: int = 5, hybrid: bool = False) -> list[Hit]:
        """The `k` best chunks for `query`, highest score first: with `per_page`, the best chunk of
        each of the `k` best pages (a chunk's page: its file's page or row, or its file), then, where
        fewer pages match, the next best chunks (so a single long file still gives `k` chunks)."""
        pool = k * PAGE_POOL if self.per_page else k
        # Equal scores (the same text in two files) in a fixed order: Chroma's index returns ties in
        # an order of its own, which differs between two copies of one collection.
        hits = sorted(self._hybrid(query, pool) if hybrid else self.dense(query, pool), key=ranking)
        if self.per_page:
            best: dict[str, Hit] = {}  # the first (best) chunk of each page, in order
            for hit in hits:
                best.setdefault(hit.label, hit)
            hits = [*best.values(), *(hit for hit in hits if best[hit.label] is not hit)]
        return sorted(hits[:k], key=ranking)

    def _hybrid(self, query: str, k: int) -> list[Hit]:
        index = self.index()
        if not index.ids:
            return []
        similarity = (index.vectors @ self.store.embedder.embed_query(query)).numpy()
        if not self.keyword_weight:
            return [index.hit(i, similarity[i]) for i in _top(similarity, k)]
        bm25 = index.keyword_scores(query)
        pool = max(4 * k, 20)
        candidates = np.union1d(_top(similarity, pool), _top(bm25, pool)[: np.count_nonzero(bm25)])
        best_keyword = float(bm25[candidates].max()) or 1.0
        fused = similarity[candidates] + self.keyword_weight * bm25[candidates] / best_keyword
        return [index.hit(candidates[j], fused[j]) for j in _top(fused, k)]


class JointRetriever:
    """Several collections searched as one: each is searched as it is, and the best `k` of all their
    hits kept, each hit saying which collection it is from (`Hit.origin`). The app searches a
    published collection and a visitor's own uploads so; they share an embedding model (a pull
    checks it), so their dense scores compare."""

    def __init__(self, parts: dict[str, Retriever]) -> None:
        """`parts`: origin (as citations show it) -> the retriever of that collection."""
        self.parts = parts
        self.store = next(iter(parts.values())).store  # its embedding model is every part's

    def search(self, query: str, k: int = 5, hybrid: bool = False) -> list[Hit]:
        """The `k` best chunks of all the collections for `query`, highest score first."""
        hits = [
            replace(hit, origin=origin) for origin, part in self.parts.items() for hit in part.search(query, k, hybrid)
        ]
        return sorted(hits, key=ranking)[:k]


Searcher = Retriever | JointRetriever  # what answering takes: `search`, and a `store` for its embedding model
