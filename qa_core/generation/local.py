"""Generation in this process, with the model's weights.

Batches are padded on the left, so every prompt ends where its answer begins, and prompts are
sorted by length before batching so that a batch holds prompts of similar length and little
padding; streaming runs `generate` in a thread and yields text as tokens arrive.
"""

from __future__ import annotations

import contextlib
import re
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from threading import Event, Thread

import torch
from peft import PeftModel
from safetensors import safe_open
from tqdm.auto import tqdm
from transformers import (
    PreTrainedModel,
    PreTrainedTokenizerBase,
    StoppingCriteria,
    StoppingCriteriaList,
    TextIteratorStreamer,
)

from qa_core.errors import ModelLoadError
from qa_core.generation.backend import Backend
from qa_core.generation.batching import GenerationBatcher
from qa_core.generation.settings import GenerationSettings

# A LoRA weight as PEFT saves it: base_model.model.<layer path>.lora_A.weight (or lora_B).
LORA_WEIGHT = re.compile(r"base_model\.model\.(.+)\.lora_([AB])\.weight")


class LocalBackend(Backend):
    """A model loaded in this process (full precision or 4/8-bit), optionally with a LoRA adapter."""

    def __init__(self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> None:
        self.model, self.tokenizer = model, tokenizer

    @property
    def config(self):  # the model's own: attaching an adapter keeps it
        return self.model.config

    @torch.inference_mode()
    def generate_many(
        self,
        prompts: Sequence[str],
        settings: GenerationSettings | None = None,
        batch_size: int = 8,
        show_progress: bool = False,
    ) -> list[str]:
        settings = settings or GenerationSettings()
        lengths = [len(ids) for ids in self.check_lengths(prompts, settings)]
        config = settings.to_config(self.tokenizer)
        order = sorted(range(len(prompts)), key=lambda i: lengths[i], reverse=True)
        answers: list[str] = [""] * len(prompts)
        starts = range(0, len(order), batch_size)
        for start in tqdm(starts, desc="generating", unit="batch", disable=not show_progress):
            batch = order[start : start + batch_size]
            # Padded by `pad`, not by the tokenizer call: that would switch padding on in the shared
            # fast tokenizer's backend, under other threads' unpadded calls (see qa_core.embeddings.counting_tokenizer).
            ids = self.tokenizer([prompts[i] for i in batch])["input_ids"]
            encoded = self.tokenizer.pad({"input_ids": ids}, return_tensors="pt", padding_side="left").to(
                self.model.device
            )
            output = self.model.generate(**encoded, generation_config=config)
            new_tokens = output[:, encoded["input_ids"].shape[1] :]
            for i, text in zip(batch, self.tokenizer.batch_decode(new_tokens, skip_special_tokens=True), strict=True):
                answers[i] = text.strip()
        return answers

    def stream(self, prompt: str, settings: GenerationSettings | None = None) -> Iterator[str]:
        settings = settings or GenerationSettings()
        self.check_lengths([prompt], settings)
        encoded = self.tokenizer(prompt, return_tensors="pt").to(self.model.device)
        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True)
        cancel = Event()
        failure: list[BaseException] = []

        @torch.inference_mode()
        def run() -> None:
            try:
                self.model.generate(
                    **encoded,
                    generation_config=settings.to_config(self.tokenizer),
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

    def without_adapter(self) -> contextlib.AbstractContextManager[None]:
        if isinstance(self.model, PeftModel):
            return self.model.disable_adapter()
        return contextlib.nullcontext()

    def attach(self, folder: Path, name: str) -> None:
        # Checked first: PEFT would change the model's layers before finding that its weights do not fit.
        misfit = adapter_misfit(self.model, folder)
        if misfit:
            raise ModelLoadError(f"cannot attach adapter {name}: {misfit}")
        try:
            if isinstance(self.model, PeftModel):
                previous, fresh = self.model.active_adapter, f"adapter_{uuid.uuid4().hex[:8]}"
                self.model.load_adapter(folder, adapter_name=fresh)
                self.model.set_adapter(fresh)
                self.model.delete_adapter(previous)
            else:
                self.model = PeftModel.from_pretrained(self.model, folder)
        except Exception as exc:  # peft raises many kinds for an adapter of another shape
            raise ModelLoadError(f"cannot attach adapter {name}: {exc}") from exc
        self.model.eval()

    def batcher(self, max_batch_size: int) -> GenerationBatcher:
        return GenerationBatcher(self, max_batch_size)


def adapter_misfit(model: PreTrainedModel | PeftModel, folder: Path) -> str | None:
    """The first LoRA weight of the adapter in `folder` whose shape does not fit `model`'s layer,
    said in words, or None when all fit (or the weights are not in safetensors form)."""
    weights = folder / "adapter_model.safetensors"
    if not weights.is_file():
        return None
    base = model.get_base_model() if isinstance(model, PeftModel) else model
    with safe_open(weights, "pt") as tensors:
        for key in tensors.keys():  # noqa: SIM118 (a safetensors file is not iterable)
            match = LORA_WEIGHT.fullmatch(key)
            if not match:
                continue
            path, which = match.groups()
            try:
                layer = base.get_submodule(path)
            except AttributeError:
                return f"it adapts a layer {path} that this model does not have"
            shape = tensors.get_slice(key).get_shape()
            side, size = ("inputs", shape[1]) if which == "A" else ("outputs", shape[0])
            expected = getattr(layer, "in_features" if which == "A" else "out_features", size)
            if size != expected:
                return f"its layer {path} has {size} {side} where this model's has {expected}"
    return None


class _StopWhenSet(StoppingCriteria):
    def __init__(self, event: Event) -> None:
        self.event = event

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs) -> torch.BoolTensor:
        return torch.full((input_ids.shape[0],), self.event.is_set(), dtype=torch.bool, device=input_ids.device)
