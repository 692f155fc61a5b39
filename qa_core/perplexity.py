"""Perplexity: of reference answers after their prompts, and of long domain text.

Text longer than the model's window is scored with a sliding window (the method of the
transformers perplexity guide): windows of `window` tokens moved by `stride`, every token scored
exactly once, each with up to `window - stride` tokens of the text before it as context.

    python -m qa_core.evaluate --perplexity-text reports/ --model demo --adapter runs/tiny-cpu-pretrain/final
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from tqdm.auto import tqdm

from qa_core.models import LoadedModel, adapter_off

DEFAULT_WINDOW = 1024
DEFAULT_STRIDE = 512


@torch.inference_mode()
def reference_perplexity(loaded: LoadedModel, prompts: list[str], references: list[str]) -> float:
    """exp(mean negative log-likelihood) of the reference answers' tokens, each after its prompt."""
    tokenizer, model = loaded.tokenizer, loaded.model
    total_nll, total_tokens = 0.0, 0
    for prompt, reference in zip(prompts, references, strict=True):
        prompt_ids = tokenizer(prompt)["input_ids"]
        answer_ids = tokenizer(" " + reference, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        ids = torch.tensor([prompt_ids + answer_ids], device=model.device)
        logits = model(input_ids=ids).logits[0, len(prompt_ids) - 1 : -1].float()
        total_nll += torch.nn.functional.cross_entropy(logits, ids[0, len(prompt_ids) :], reduction="sum").item()
        total_tokens += len(answer_ids)
    return math.exp(total_nll / total_tokens)


@torch.inference_mode()
def text_perplexity(
    loaded: LoadedModel,
    texts: Sequence[str],
    window: int = DEFAULT_WINDOW,
    stride: int = DEFAULT_STRIDE,
    show_progress: bool = False,
) -> tuple[float, int]:
    """Perplexity of `loaded` (with its adapter, if any) on `texts`, each scored on its own.

    Returns:
        (exp(mean negative log-likelihood per token), the number of tokens scored).

    Raises:
        ValueError: `stride` is not between 1 and the window.
    """
    window = min(window, loaded.context_length)
    if not 0 < stride <= window:
        raise ValueError(f"stride must be between 1 and the window ({window}), got {stride}")
    total_nll, scored = 0.0, 0
    for text in tqdm(texts, desc="perplexity", unit="text", disable=not show_progress):
        ids = loaded.tokenizer(text, return_tensors="pt")["input_ids"][0]
        done = 1  # the first token has nothing before it to be predicted from
        for begin in range(0, max(len(ids) - 1, 1), stride):
            end = min(begin + window, len(ids))
            inputs = ids[begin:end].unsqueeze(0).to(loaded.model.device)
            logits = loaded.model(input_ids=inputs).logits[0, :-1].float()
            # label j is the token at begin + 1 + j; score only the ones no earlier window scored
            losses = torch.nn.functional.cross_entropy(logits, inputs[0, 1:], reduction="none")[done - begin - 1 :]
            total_nll += losses.sum().item()
            scored += len(losses)
            done = end
            if end == len(ids):
                break
    if not scored:
        return float("nan"), 0
    return math.exp(total_nll / scored), scored


def compare_perplexity(loaded: LoadedModel, texts: Sequence[str], **options: object) -> dict:
    """Perplexity of the base model and, when `loaded` has an adapter, of base + adapter.

    Returns:
        {"texts": n, "tokens": n, "perplexity_base": x, "perplexity_finetuned": y or None,
        "ratio": y / x or None}.
    """
    with adapter_off(loaded):
        base, tokens = text_perplexity(loaded, texts, **options)
    tuned = text_perplexity(loaded, texts, **options)[0] if loaded.adapter else None
    return {
        "texts": len(texts),
        "tokens": tokens,
        "perplexity_base": base,
        "perplexity_finetuned": tuned,
        "ratio": tuned / base if tuned is not None else None,
    }
