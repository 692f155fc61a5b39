"""Batched and streaming text generation.

Batches are padded on the left, so every prompt ends where its answer begins, and prompts are
sorted by length before batching so that a batch holds prompts of similar length and little
padding. Streaming runs `generate` in a thread and yields text as tokens arrive.

    from qa_core.models import load_model
    from qa_core.generate import GenerationSettings, generate, stream
    loaded = load_model("demo")
    print(generate(loaded.model, loaded.tokenizer, ["Question: What is a bond?"]))
    for piece in stream(loaded.model, loaded.tokenizer, "Question: What is a bond?"):
        print(piece, end="", flush=True)
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from threading import Event, Thread

import torch
from tqdm.auto import tqdm
from transformers import (
    GenerationConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    StoppingCriteria,
    StoppingCriteriaList,
    TextIteratorStreamer,
)

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


def context_limit(model: PreTrainedModel) -> int:
    """The number of positions (prompt + answer tokens) the model can attend to."""
    return getattr(model.config, "max_position_embeddings", None) or 2048


def prompt_budget(model: PreTrainedModel, settings: GenerationSettings) -> int:
    """The most prompt tokens that leave room for `settings.max_new_tokens` answer tokens."""
    return context_limit(model) - settings.max_new_tokens


def check_prompt_length(prompt_tokens: int, model: PreTrainedModel, settings: GenerationSettings) -> None:
    """Raise PromptError when prompt plus answer would not fit in the model's context."""
    if prompt_tokens > prompt_budget(model, settings):
        raise PromptError(
            f"the prompt is {prompt_tokens} tokens; with max_new_tokens={settings.max_new_tokens} "
            f"that exceeds the model's limit of {context_limit(model)} tokens: shorten the context or the answer"
        )


@torch.inference_mode()
def generate(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[str],
    settings: GenerationSettings | None = None,
    batch_size: int = 8,
    show_progress: bool = False,
) -> list[str]:
    """Answer every prompt, `batch_size` prompts per forward pass.

    Returns:
        The generated continuations (prompt not included), in the order of `prompts`.

    Raises:
        PromptError: a prompt plus `max_new_tokens` exceeds the model's context length.
    """
    settings = settings or GenerationSettings()
    config = settings.to_config(tokenizer)
    lengths = [len(ids) for ids in tokenizer(list(prompts))["input_ids"]]
    for length in lengths:
        check_prompt_length(length, model, settings)
    order = sorted(range(len(prompts)), key=lambda i: lengths[i], reverse=True)
    answers: list[str] = [""] * len(prompts)
    starts = range(0, len(order), batch_size)
    for start in tqdm(starts, desc="generating", unit="batch", disable=not show_progress):
        batch = order[start : start + batch_size]
        encoded = tokenizer([prompts[i] for i in batch], return_tensors="pt", padding=True, padding_side="left").to(
            model.device
        )
        output = model.generate(**encoded, generation_config=config)
        new_tokens = output[:, encoded["input_ids"].shape[1] :]
        for i, text in zip(batch, tokenizer.batch_decode(new_tokens, skip_special_tokens=True), strict=True):
            answers[i] = text.strip()
    return answers


def stream(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompt: str,
    settings: GenerationSettings | None = None,
) -> Iterator[str]:
    """Yield the answer to `prompt` piece by piece as the model generates it.

    Raises:
        PromptError: the prompt plus `max_new_tokens` exceeds the model's context length.
    """
    settings = settings or GenerationSettings()
    encoded = tokenizer(prompt, return_tensors="pt").to(model.device)
    check_prompt_length(encoded["input_ids"].shape[1], model, settings)
    streamer = TextIteratorStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True)
    cancel = Event()
    failure: list[BaseException] = []

    @torch.inference_mode()
    def run() -> None:
        try:
            model.generate(
                **encoded,
                generation_config=settings.to_config(tokenizer),
                streamer=streamer,
                stopping_criteria=StoppingCriteriaList([_StopWhenSet(cancel)]),
            )
        except BaseException as exc:  # re-raised in the consumer's thread below
            failure.append(exc)
            streamer.end()  # otherwise the consumer waits forever for the next token

    thread = Thread(target=run, daemon=True)
    thread.start()
    try:
        yield from (piece for piece in streamer if piece)
    finally:
        cancel.set()  # a consumer that stops early also stops the generation
        thread.join()
    if failure:
        raise failure[0]


class _StopWhenSet(StoppingCriteria):
    def __init__(self, event: Event) -> None:
        self.event = event

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs) -> torch.BoolTensor:
        return torch.full((input_ids.shape[0],), self.event.is_set(), dtype=torch.bool, device=input_ids.device)
