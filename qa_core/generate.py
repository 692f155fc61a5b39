"""Batched and streaming text generation, in this process or on an OpenAI-compatible server.

In process, batches are padded on the left, so every prompt ends where its answer begins, and
prompts are sorted by length before batching so that a batch holds prompts of similar length and
little padding; streaming runs `generate` in a thread and yields text as tokens arrive. When the
model was loaded for a server (QA_GENERATION_BACKEND=openai), the same prompts go to the server
instead (`qa_core.inference_server`): a batch as concurrent requests, a stream as server-sent events.

    from qa_core.models import load_model
    from qa_core.generate import GenerationSettings, generate, stream
    loaded = load_model("demo")
    print(generate(loaded, ["Question: What is a bond?"]))
    for piece in stream(loaded, "Question: What is a bond?"):
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
    PreTrainedTokenizerBase,
    StoppingCriteria,
    StoppingCriteriaList,
    TextIteratorStreamer,
)

from qa_core.errors import PromptError
from qa_core.models import LoadedModel


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


def prompt_budget(loaded: LoadedModel, settings: GenerationSettings) -> int:
    """The most prompt tokens that leave room for `settings.max_new_tokens` answer tokens."""
    return loaded.context_length - settings.max_new_tokens


def check_prompt_length(prompt_tokens: int, loaded: LoadedModel, settings: GenerationSettings) -> None:
    """Raise PromptError when prompt plus answer would not fit in the model's context."""
    if prompt_tokens > prompt_budget(loaded, settings):
        raise PromptError(
            f"the prompt is {prompt_tokens} tokens; with max_new_tokens={settings.max_new_tokens} "
            f"that exceeds the model's limit of {loaded.context_length} tokens: shorten the context or the answer"
        )


@torch.inference_mode()
def generate(
    loaded: LoadedModel,
    prompts: Sequence[str],
    settings: GenerationSettings | None = None,
    batch_size: int = 8,
    show_progress: bool = False,
) -> list[str]:
    """Answer every prompt, `batch_size` prompts per forward pass (or requests in flight on a server).

    Returns:
        The generated continuations (prompt not included), in the order of `prompts`.

    Raises:
        PromptError: a prompt plus `max_new_tokens` exceeds the model's context length.
        ServerError: the server failed a request (see `qa_core.inference_server`).
    """
    settings = settings or GenerationSettings()
    tokenizer, model = loaded.tokenizer, loaded.model
    lengths = [len(ids) for ids in tokenizer(list(prompts))["input_ids"]]
    for length in lengths:
        check_prompt_length(length, loaded, settings)
    if loaded.server is not None:
        return loaded.server.complete_many(loaded.served_model(), prompts, settings, batch_size, show_progress)
    config = settings.to_config(tokenizer)
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


def stream(loaded: LoadedModel, prompt: str, settings: GenerationSettings | None = None) -> Iterator[str]:
    """Yield the answer to `prompt` piece by piece as the model (or the server) generates it.

    Raises:
        PromptError: the prompt plus `max_new_tokens` exceeds the model's context length.
        ServerError: the server failed the request.
    """
    settings = settings or GenerationSettings()
    tokenizer, model = loaded.tokenizer, loaded.model
    encoded = tokenizer(prompt, return_tensors="pt")
    check_prompt_length(encoded["input_ids"].shape[1], loaded, settings)
    if loaded.server is not None:
        yield from loaded.server.stream(loaded.served_model(), prompt, settings)
        return
    encoded = encoded.to(model.device)
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
