"""Unsloth's side of `bash benchmarks/gpu.sh --parts vs-unsloth`: the same model folder, data, LoRA and
steps as the toolkit's run, trained through Unsloth itself; prints one JSON line (tokens/s, peak GiB).

    python -m benchmarks.unsloth_train --model FOLDER --data mixed.csv --steps 23 --out DIR

Unsloth needs a CUDA GPU (and `pip install unsloth`); gpu.py runs this in its own process so that
Unsloth's patches of transformers never touch the toolkit's run.
"""

from __future__ import annotations

import argparse
import json

# isort: off
from unsloth import FastLanguageModel  # Unsloth patches trl, transformers and peft: it comes first
import torch
from trl import SFTConfig, SFTTrainer

# isort: on

from qa_core.data import load_qa_data
from train_job.run import prompt_completion

TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--steps", type=int, default=23)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    model, tokenizer = FastLanguageModel.from_pretrained(
        model_name=args.model, max_seq_length=1024, load_in_4bit=True, dtype=torch.bfloat16
    )
    model = FastLanguageModel.get_peft_model(
        model,
        r=16,
        lora_alpha=32,
        lora_dropout=0,
        target_modules=TARGETS,
        bias="none",
        use_gradient_checkpointing="unsloth",
        random_state=0,
    )
    train = prompt_completion(load_qa_data(args.data), "qa", tokenizer)
    config = SFTConfig(
        output_dir=args.out,
        max_steps=args.steps,
        per_device_train_batch_size=args.batch_size,
        learning_rate=2e-4,
        logging_steps=1,
        bf16=True,
        max_length=1024,
        packing=True,
        padding_free=True,
        save_strategy="no",
        report_to="none",
        include_num_input_tokens_seen="non_padding",
        seed=0,
    )
    torch.cuda.reset_peak_memory_stats()
    trainer = SFTTrainer(model=model, processing_class=tokenizer, train_dataset=train, args=config)
    output = trainer.train()
    tokens_s = trainer.state.num_input_tokens_seen / output.metrics["train_runtime"]
    print(json.dumps({"tokens_s": tokens_s, "peak_gib": torch.cuda.max_memory_allocated() / 2**30}), flush=True)


if __name__ == "__main__":
    main()
