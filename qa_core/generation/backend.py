"""Where text is generated: the interface both backends share.

A `Backend` holds the tokenizer and generates: `LocalBackend` with the model's weights in this
process, `ServerBackend` by sending the exact prompts to an OpenAI-compatible server. Everything
above this package (QA, RAG, evaluation, the app) asks a backend and never which kind it is.
"""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Protocol

from transformers import PretrainedConfig, PreTrainedModel, PreTrainedTokenizerBase

from qa_core.generation.settings import GenerationSettings, check_prompt_length


class TextGenerator(Protocol):
    """Anything that answers one prompt: a backend, or the app's batcher in front of one."""

    def generate(self, prompt: str, settings: GenerationSettings | None = None) -> str: ...


def growing(pieces: Iterator[str]) -> Iterator[str]:
    """A backend's stream of pieces as a batcher streams: the whole answer so far, each time it grows."""
    text = ""
    for piece in pieces:
        text += piece
        yield text.strip()


class Batcher(Protocol):
    """What the app's handlers generate through: many callers' requests, each streamed on its own."""

    def stream(
        self, prompt: str, settings: GenerationSettings | None = None, with_adapter: bool = True
    ) -> Iterator[str]: ...

    def generate(self, prompt: str, settings: GenerationSettings | None = None, with_adapter: bool = True) -> str: ...

    def exclusive(self) -> contextlib.AbstractContextManager: ...

    def close(self) -> None: ...


class Backend(ABC):
    """Generates text for prompts built by the toolkit; knows the tokenizer and the context size."""

    tokenizer: PreTrainedTokenizerBase
    config: PretrainedConfig
    model: PreTrainedModel | None = None  # the weights, when they are in this process

    @property
    def scores_tokens(self) -> bool:
        """Whether this backend can score given tokens (a reference answer's perplexity, a text's):
        only with the weights in this process; a server returns text."""
        return self.model is not None

    @property
    def context_length(self) -> int:
        """The number of positions (prompt + answer tokens) the model can attend to."""
        return getattr(self.config, "max_position_embeddings", None) or 2048

    def check_lengths(self, prompts: Sequence[str], settings: GenerationSettings) -> list[list[int]]:
        """The prompts' token ids, each checked to leave room for the answer.

        Raises:
            PromptError: a prompt plus `max_new_tokens` exceeds the model's context length.
        """
        ids = self.tokenizer(list(prompts))["input_ids"]
        for prompt_ids in ids:
            check_prompt_length(len(prompt_ids), self, settings)
        return ids

    def generate(self, prompt: str, settings: GenerationSettings | None = None) -> str:
        """The answer to one prompt."""
        return self.generate_many([prompt], settings)[0]

    @abstractmethod
    def generate_many(
        self,
        prompts: Sequence[str],
        settings: GenerationSettings | None = None,
        batch_size: int = 8,
        show_progress: bool = False,
    ) -> list[str]:
        """The answers to `prompts`, in their order, `batch_size` at a time.

        Raises:
            PromptError: a prompt plus `max_new_tokens` exceeds the model's context length.
            ServerError: the server failed a request.
        """

    @abstractmethod
    def stream(self, prompt: str, settings: GenerationSettings | None = None) -> Iterator[str]:
        """Yield the answer to `prompt` piece by piece as it is generated."""

    @abstractmethod
    def without_adapter(self) -> contextlib.AbstractContextManager[None]:
        """Within the block the base model answers alone (a no-op without an adapter)."""

    @abstractmethod
    def attach(self, folder: Path, name: str) -> None:
        """Answer with the LoRA adapter in `folder` (known to a server as `name`) from now on,
        replacing any adapter attached before.

        Raises:
            ModelLoadError: the adapter does not fit the base model.
        """

    @abstractmethod
    def batcher(self, max_batch_size: int) -> Batcher:
        """What answers many callers at once (the app's visitors) on this backend."""

    def describe(self) -> str:
        """Where generation runs, for a model's one-line description ('' in this process)."""
        return ""

    def recipe(self) -> dict:
        """What, besides the model and adapter, decides the text generated (for records)."""
        return {}
