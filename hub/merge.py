"""Merge a LoRA adapter (and any head it trained) into a full-precision base model.

    python -m hub merge --base demo --adapter me/run@3f2a1c --out merged --verify
    python -m hub merge --base NousResearch/Llama-2-7b-chat-hf --adapter ./ckpt --out merged \
        --dtype bfloat16 --push me/policy-qa-merged

The base is loaded in float32 or bfloat16 (never 4/8-bit: merging into quantized weights would
round the update away), the adapter attached, and `merge_and_unload` folds it in. A head trained
through `modules_to_save` (e.g. lm_head) replaces the base head; for models whose input and
output embeddings are tied, the merged model is saved untied so the trained head does not
overwrite the input embeddings on reload. `--verify` reloads the merged folder from disk and
compares its logits with the adapter-attached model's on a few prompts.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from transformers import AutoConfig, AutoModelForCausalLM, PreTrainedModel, PreTrainedTokenizerBase

from qa_core.config import Settings
from qa_core.errors import MergeError
from qa_core.hub.checkpoints import read_checkpoint_record
from qa_core.hub.publish import DEFAULT_TOLERANCE, MERGE_INFO_FILE
from qa_core.models import LoadedModel, load_model, locate

VERIFY_PROMPTS = [
    "Answer the following question:\nQuestion: What is a bond?\n---\nAnswer:",
    "What was Northwind Capital's total revenue in fiscal 2024?",
    "Within how many hours must a personal data breach be reported to the regulator?",
]


@dataclass
class MergeResult:
    """What was merged, where it was written, and how closely it matches (when verified)."""

    out: str
    base: str
    base_commit: str | None
    adapter: str
    adapter_commit: str | None
    dtype: str
    max_abs_diff: float | None = None
    checkpoint: dict | None = None


@torch.inference_mode()
def _logits(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> list[torch.Tensor]:
    return [model(**tokenizer(p, return_tensors="pt").to(model.device)).logits.float().cpu() for p in VERIFY_PROMPTS]


def check_mergeable(base: str, settings: Settings, dtype: str, quantization: str) -> None:
    """Refuse a merge whose result would be wrong: into quantized weights, or in an unknown dtype.

    Raises:
        MergeError: `quantization` is not "none", `dtype` is not a merge dtype, or the base's own
            weights are quantized.
        ModelLoadError: the base cannot be found.
    """
    if quantization != "none":
        raise MergeError(
            f"refusing to merge into a {quantization} base: the LoRA update would be rounded into "
            "quantized weights; merge into --dtype float32 or bfloat16 and quantize the merged model when loading it"
        )
    if dtype not in DEFAULT_TOLERANCE:
        raise MergeError(f"--dtype {dtype!r}: merge in one of {', '.join(DEFAULT_TOLERANCE)}")
    base_folder, _, _ = locate(base, settings)
    if getattr(AutoConfig.from_pretrained(base_folder), "quantization_config", None):
        raise MergeError(f"refusing to merge into {base}: its weights are already quantized; use a full-precision base")


def merged_model(loaded: LoadedModel) -> PreTrainedModel:
    """The adapter folded into the base (`merge_and_unload`), checked to leave the input embeddings
    alone unless the adapter trained them.

    Raises:
        MergeError: the merge changed embeddings the adapter did not train.
    """
    embeddings_before = loaded.model.get_input_embeddings().weight.detach().clone()
    trains_embeddings = "embed_tokens" in (loaded.model.active_peft_config.modules_to_save or [])
    merged = loaded.model.merge_and_unload()
    if not trains_embeddings and not torch.equal(merged.get_input_embeddings().weight, embeddings_before):
        raise MergeError("the merge changed the input embeddings although the adapter did not train them")
    return merged


def save_merged(merged: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, out: Path) -> None:
    """Model and tokenizer into `out`, which must end up with no adapter file in it.

    Raises:
        MergeError: adapter files are left in `out`.
    """
    merged.save_pretrained(out)
    tokenizer.save_pretrained(out)
    leftovers = [p.name for p in out.glob("adapter_*")]
    if leftovers:
        raise MergeError(f"{out}: adapter files left in the merged folder: {leftovers}")


def reloaded_difference(
    out: Path, expected: list[torch.Tensor], tokenizer: PreTrainedTokenizerBase, device: torch.device, dtype: str
) -> float:
    """The largest |logit difference| between the folder `out` reloaded from disk and `expected`
    (the adapter-attached model's logits), on the device and in the dtype the adapter ran, so only
    the merge differs."""
    reloaded = AutoModelForCausalLM.from_pretrained(out, dtype=getattr(torch, dtype), device_map={"": str(device)})
    return max(
        (got - want).abs().max().item() for got, want in zip(_logits(reloaded, tokenizer), expected, strict=True)
    )


def merge_adapter(
    base: str,
    adapter: str,
    out: str | Path,
    settings: Settings,
    dtype: str = "float32",
    quantization: str = "none",
    verify: bool = False,
) -> MergeResult:
    """Merge `adapter` into `base` and save the result (model + tokenizer, no adapter files) to `out`.

    Returns:
        The `MergeResult`, also saved as `merge_info.json` in `out` (read by `push` for the card).

    Raises:
        MergeError: a quantized base, input embeddings changed by the merge.
        ModelLoadError: the base or adapter cannot be loaded.
    """
    check_mergeable(base, settings, dtype, quantization)
    loaded = load_model(base, adapter, settings, quantization="none", dtype=dtype, backend="local")  # needs weights
    expected = _logits(loaded.model, loaded.tokenizer) if verify else None
    merged = merged_model(loaded)
    out = Path(out)
    save_merged(merged, loaded.tokenizer, out)
    result = MergeResult(
        out=str(out),
        base=loaded.name,
        base_commit=loaded.commit,
        adapter=loaded.adapter,
        adapter_commit=loaded.adapter_commit,
        dtype=dtype,
        checkpoint=read_checkpoint_record(loaded.adapter_path) or None,
    )
    if expected is not None:
        result.max_abs_diff = reloaded_difference(out, expected, loaded.tokenizer, merged.device, dtype)
    (out / MERGE_INFO_FILE).write_text(json.dumps(asdict(result), indent=2) + "\n")
    return result
