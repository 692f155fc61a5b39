"""A whole LoRA adapter from a model sharded across processes (FSDP2): gathered, checked, written.

Under FSDP every process holds a slice of each tensor. Saved from one process's slices, an adapter
lacks the others' rows: with FSDP2, PEFT and a full state dict, the `adapter_only` save that
`transformers.Trainer` uses wrote only rank 0's slice (accelerate#4206), and a run resumed on N
processes reverted (N-1)/N of its adapter to the initial values. Here every tensor is gathered whole
with torch's own `get_model_state_dict(..., full_state_dict=True)` (a collective: every process calls
it), checked against the model's own shapes and for `lora_B` rows still at their initial zeros, and
only then written by process 0 as an ordinary PEFT adapter folder that loads in one process.

    write_whole_adapter(model, "runs/x/checkpoint-40", trained=True)   # on every process of the job
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.distributed as dist
from peft import PeftModel
from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict
from torch.distributed.tensor import DTensor

from qa_core.errors import QAError


def is_sharded(model: torch.nn.Module) -> bool:
    """True when FSDP2 has sharded `model` (its parameters are DTensors)."""
    return any(isinstance(parameter, DTensor) for parameter in model.parameters())


def gather_full_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Every parameter and persistent buffer of `model` whole, on the CPU of process 0 ({} on the
    others). Collective: every process of the job must call it."""
    return get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))


def check_adapter(model: torch.nn.Module, state: dict[str, torch.Tensor], trained: bool) -> None:
    """Refuse a gathered adapter that is not whole: a LoRA tensor missing or of another shape than the
    model's own (a DTensor's shape is the whole tensor's), or, once `trained`, a `lora_B` with a row
    still all zeros (its initial value: that row was never gathered, or reverted).

    Raises:
        QAError: names the first such tensor.
    """
    for name, parameter in model.named_parameters():
        if "lora_" not in name:
            continue
        if name not in state:
            raise QAError(f"the gathered adapter lacks {name}: not pushed")
        if tuple(state[name].shape) != tuple(parameter.shape):
            raise QAError(
                f"the gathered {name} is {tuple(state[name].shape)}, the model's is {tuple(parameter.shape)} "
                "(one process's shard?): not pushed"
            )
        if trained and "lora_B" in name and bool(torch.all(state[name] == 0, dim=1).any()):
            zero_rows = int(torch.all(state[name] == 0, dim=1).sum())
            raise QAError(f"the gathered {name} has {zero_rows} rows still at their initial zeros: not pushed")


def write_whole_adapter(model: PeftModel, folder: str | Path, trained: bool) -> None:
    """Gather the adapter of the sharded `model` from every process, check it (`check_adapter`) and
    write it into `folder` as a PEFT adapter (adapter_config.json, adapter_model.safetensors),
    replacing what a save of one process's shards wrote there. Call it on every process.

    Raises:
        QAError: the gathered adapter is not whole (on process 0; nothing is written then).
    """
    state = gather_full_state(model)
    if dist.is_initialized() and dist.get_rank() != 0:
        return
    check_adapter(model, state, trained)
    model.save_pretrained(folder, state_dict=state)
