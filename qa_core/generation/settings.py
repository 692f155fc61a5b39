"""How to sample an answer, and whether a prompt leaves room for it.

from qa_core.generation import GenerationSettings
greedy = GenerationSettings(max_new_tokens=64)            # temperature 0: deterministic
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from transformers import GenerationConfig, PreTrainedTokenizerBase

from qa_core.errors import PromptError


@dataclass
class GenerationSettings:
    """How to sample an answer. `temperature` 0 means greedy (deterministic) decoding."""

    max_new_tokens: int = 256
    temperature: float = 0.0
    top_p: float = 0.95
    repetition_penalty: float = 1.0

    def to_config(self, tokenizer: PreTrainedTokenizerBase) -> GenerationConfig:
        sampling = {"do_sample": True, "temperature": self.temperature, "top_p": self.top_p}
        return GenerationConfig(
            max_new_tokens=self.max_new_tokens,
            repetition_penalty=self.repetition_penalty,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
            **(sampling if self.temperature > 0 else {"do_sample": False}),
        )


class HasContext(Protocol):
    """Anything that knows how many positions its model attends to (a backend, a loaded model)."""

    @property
    def context_length(self) -> int: ...


def prompt_budget(model: HasContext, settings: GenerationSettings) -> int:
    """The most prompt tokens that leave room for `settings.max_new_tokens` answer tokens."""
    return model.context_length - settings.max_new_tokens


def check_prompt_length(prompt_tokens: int, model: HasContext, settings: GenerationSettings) -> None:
    """Raise PromptError when prompt plus answer would not fit in the model's context."""
    if prompt_tokens > prompt_budget(model, settings):
        raise PromptError(
            f"the prompt is {prompt_tokens} tokens; with max_new_tokens={settings.max_new_tokens} "
            f"that exceeds the model's limit of {model.context_length} tokens: shorten the context or the answer"
        )
