"""A PEFT model sharded with torch's FSDP2 (`fully_shard`, one unit per decoder layer) on every
process of a gloo job: three optimizer steps, then the whole adapter written by
`train_job.shards.write_whole_adapter` and the sharded model's logits saved beside it.

    torchrun --nproc_per_node 2 tests/fsdp_adapter_job.py OUT_FOLDER DEMO_MODEL_FOLDER
"""

import sys
from pathlib import Path

import torch
import torch.distributed as dist
from peft import LoraConfig, get_peft_model
from torch.distributed.fsdp import fully_shard
from transformers import AutoModelForCausalLM

from train_job.shards import write_whole_adapter

PROMPT_IDS = torch.tensor([[5, 17, 42, 8, 99, 3, 61, 7]])

if __name__ == "__main__":
    out, base = Path(sys.argv[1]), sys.argv[2]
    dist.init_process_group("gloo")
    torch.manual_seed(0)  # the same initial weights on every process, as from_pretrained gives
    config = LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"])
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(base), config)
    for layer in model.base_model.model.model.layers:
        fully_shard(layer)
    fully_shard(model)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    torch.manual_seed(1 + dist.get_rank())  # each process its own batch, as data parallel has it
    for _ in range(3):
        batch = torch.randint(0, 200, (2, 16))
        model(input_ids=batch, labels=batch).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    write_whole_adapter(model, out / "adapter", trained=True)
    with torch.no_grad():
        logits = model(input_ids=PROMPT_IDS).logits  # a forward of the sharded model: every process
    if dist.get_rank() == 0:
        torch.save(logits, out / "sharded_logits.pt")
    dist.destroy_process_group()
