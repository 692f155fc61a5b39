"""Fine-tune a causal LM for question answering with LoRA / QLoRA, pushing checkpoints to the Hub.

    python train_job/run.py --config configs/tiny-cpu.yaml
    python train_job/run.py --config configs/tiny-cpu.yaml --push-to-hub --hub-repo me/qa-run --push-every 10
    python train_job/run.py --config configs/llama2-context-qa.yaml --data filings.csv --learning_rate 1e-4
    python train_job/run.py --config configs/tiny-cpu.yaml --push-to-hub --hub-repo me/qa-run \
        --resume-from-hub me/qa-run@20          # continue from the checkpoint pushed at step 20
    accelerate launch --num_processes 2 --cpu train_job/run.py --config configs/tiny-cpu.yaml

Every field of `TrainScriptArguments` below and of TRL's `SFTConfig` (learning rate, batch size,
optimizer, scheduler, packing, max_length, eval and save steps ...) can be set in a YAML preset
and overridden on the command line (`--learning_rate 1e-4` or `--learning-rate 1e-4`); `--help`
lists them all. The endpoint and token come from HF_ENDPOINT / HF_TOKEN or the flags.

Loss is computed on the answer only (the prompt and context are masked out), and no compute is
spent on padding (--batching, see its help); the naive way, every example padded to max_length,
stays available with --batching max-length.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from datasets import Dataset
from peft import LoraConfig, prepare_model_for_kbit_training
from trl import SFTConfig, SFTTrainer, TrlParser

from hub.checkpoints import pull
from hub.publish import adapter_card
from hub.remote import api, call
from qa_core.config import Settings, load_settings
from qa_core.data import load_qa_data, split_qa_data
from qa_core.demo_model import sample_data_path
from qa_core.errors import QAError
from qa_core.models import load_model
from qa_core.prompts import STYLE_HELP, build_prompt
from qa_core.snapshots import parse_ref
from train_job.pushing import CheckpointPusher, PushCallback, checkpoint_record

BATCHINGS = ("auto", "packed", "grouped", "max-length")


@dataclass
class TrainScriptArguments:
    """What to train on and how to publish it (TRL's SFTConfig holds the optimisation options)."""

    model: str = field(default="demo", metadata={"help": "Base model: Hub id[@revision], local folder, or 'demo'."})
    data: str = field(
        default=str(sample_data_path()),
        metadata={"help": "QA data: CSV / JSONL / JSON file or Hugging Face dataset id (default: the bundled sample)."},
    )
    columns: str | None = field(
        default=None, metadata={"help": "Column mapping, e.g. question=instruction,context=input,answer=output."}
    )
    test_size: float = field(default=0.1, metadata={"help": "Fraction held out for evaluation."})
    prompt_style: str = field(
        default="auto", metadata={"help": "; ".join(f"{name}: {text}" for name, text in STYLE_HELP.items())}
    )
    quantization: str = field(
        default="none", metadata={"help": "none | 4bit (QLoRA: nf4, double quant) | 8bit (LLM.int8, threshold 6.0)."}
    )
    lora_r: int = field(default=16, metadata={"help": "LoRA rank."})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA scaling alpha."})
    lora_dropout: float = field(default=0.05, metadata={"help": "Dropout on the LoRA layers."})
    lora_target_modules: list[str] = field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"],
        metadata={"help": "Module names that get LoRA layers."},
    )
    train_head: bool = field(default=False, metadata={"help": "Also train lm_head (saved with the adapter)."})
    hub_repo: str | None = field(default=None, metadata={"help": "Hub repo to push checkpoints to (USER/NAME)."})
    hub_endpoint: str | None = field(default=None, metadata={"help": "Hub endpoint (default: HF_ENDPOINT)."})
    push_every: int | None = field(
        default=None, metadata={"help": "Push a checkpoint every N steps (default: save_steps); always at the end."}
    )
    resume: bool = field(default=False, metadata={"help": "Continue from the latest checkpoint in output_dir."})
    resume_from_hub: str | None = field(
        default=None, metadata={"help": "Continue from a pushed checkpoint: REPO[@STEP_OR_SHA] (default: latest)."}
    )
    batching: str = field(
        default="auto",
        metadata={
            "help": "auto: packed with flash-attention (its varlen kernels skip the other examples), else grouped | "
            "packed: examples packed into max_length rows without padding, each attending only to itself | "
            "grouped: batches of similar-length examples, padded to their longest | "
            "max-length: every example padded to max_length (the naive way, for comparison)"
        },
    )


def prompt_completion(data: Dataset, style: str, tokenizer) -> Dataset:
    """Turn QA rows into TRL's prompt / completion format, the prompt built as at inference time."""

    def convert(row: dict) -> dict:
        prompt = build_prompt(style, row["question"], row["context"] or None, tokenizer)
        return {"prompt": prompt, "completion": row["answer"] if prompt[-1:].isspace() else " " + row["answer"]}

    return data.map(convert, remove_columns=data.column_names)


def check_target_modules(model, targets: list[str]) -> None:
    """Fail before training when a LoRA target names no module of the model."""
    names = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    missing = sorted(set(targets) - names)
    if missing:
        linear = sorted(
            {n.rsplit(".", 1)[-1] for n, m in model.named_modules() if type(m).__name__.startswith("Linear")}
        )
        raise QAError(f"lora_target_modules {missing} are not modules of this model; linear layers are: {linear}")


def check_write_access(repo_id: str, settings: Settings) -> None:
    """Fail before training when the token cannot write to `repo_id` (creating it if needed)."""
    identity = call(lambda: api(settings).whoami(), settings, repo_id)
    if identity.get("auth", {}).get("accessToken", {}).get("role") == "read":
        raise QAError(f"{repo_id}: the token is read-only; pushing checkpoints needs a write token")
    call(lambda: api(settings).create_repo(repo_id, exist_ok=True), settings, repo_id)


def main(script_args: TrainScriptArguments, training_args: SFTConfig) -> dict:
    """Train, evaluate and publish; returns the final checkpoint record (step, losses, metrics,
    train_runtime and train_tokens, the real tokens trained on, padding excluded)."""
    started = time.time()
    settings = load_settings(hf_endpoint=script_args.hub_endpoint, hf_token=training_args.hub_token)
    # The trainer pickles its arguments into every checkpoint: keep the token out of them, and
    # keep the trainer from pushing on its own (this script pushes one commit per checkpoint).
    push = training_args.push_to_hub
    training_args.hub_token, training_args.push_to_hub = None, False
    is_main = training_args.process_index == 0
    if script_args.batching not in BATCHINGS:
        raise QAError(f"--batching {script_args.batching!r}: choose {', '.join(BATCHINGS)}")
    if push and not script_args.hub_repo:
        raise QAError("--push-to-hub needs --hub-repo USER/NAME")
    if push and not settings.hf_token:
        raise QAError("--push-to-hub needs a token: set HF_TOKEN or pass --hub-token")
    if training_args.include_num_input_tokens_seen == "no":  # the summary reports real tokens per second
        training_args.include_num_input_tokens_seen = "non_padding"

    # 1. Data: QA rows -> prompt / completion pairs, split reproducibly.
    parts = split_qa_data(
        load_qa_data(script_args.data, script_args.columns, token=settings.hf_token),
        script_args.test_size,
        training_args.seed,
    )

    # 2. Model: loaded like everywhere else in the toolkit (`demo`, Hub ids pinned to a commit, 4/8-bit).
    loaded = load_model(
        script_args.model, settings=settings, quantization=script_args.quantization, device=str(training_args.device)
    )
    model, tokenizer = loaded.model, loaded.tokenizer
    model.config.use_cache = False  # a KV cache in training would also break packed attention masks
    check_target_modules(model, script_args.lora_target_modules)
    if script_args.quantization != "none":
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=training_args.gradient_checkpointing)
    train = prompt_completion(parts["train"], script_args.prompt_style, tokenizer)
    test = prompt_completion(parts["test"], script_args.prompt_style, tokenizer)

    # 3. Publishing: check write access before spending any compute.
    pusher = None
    if push:
        if is_main:
            check_write_access(script_args.hub_repo, settings)
            pusher = CheckpointPusher(script_args.hub_repo, settings)
        if script_args.push_every:
            training_args.save_strategy, training_args.save_steps = "steps", script_args.push_every

    # 4. Batching: no compute on padding. Packing flattens a batch into one sequence; only flash-attention
    # skips the other examples' tokens, elsewhere attention would cost the square of the whole batch.
    batching = script_args.batching
    if batching == "auto":
        batching = "packed" if "flash" in (model.config._attn_implementation or "") else "grouped"
    training_args.packing = training_args.padding_free = batching == "packed"
    if batching == "grouped":
        training_args.train_sampling_strategy = "group_by_length"
    if batching == "max-length":
        training_args.pad_to_multiple_of = training_args.max_length

    # 5. Resume from a pushed checkpoint (adapter, head, optimizer, scheduler, step), or a local one.
    resume_from: str | bool | None = True if script_args.resume else None
    if script_args.resume_from_hub:
        repo_id, revision = parse_ref(script_args.resume_from_hub)
        folder = Path(training_args.output_dir) / "resumed-from-hub"
        commit = pull(repo_id, revision or "main", folder, settings)
        if not (folder / "trainer_state.json").is_file():
            raise QAError(f"{repo_id}@{commit[:12]} has no trainer state to resume from (adapter only)")
        resume_from = str(folder)

    extra = {
        "base_model": loaded.description,
        "dataset": script_args.data,
        "prompt_style": script_args.prompt_style,
        "batching": batching,
    }
    trainer = SFTTrainer(
        model=model,
        args=training_args,
        train_dataset=train,
        eval_dataset=test,
        processing_class=tokenizer,
        peft_config=LoraConfig(
            r=script_args.lora_r,
            lora_alpha=script_args.lora_alpha,
            lora_dropout=script_args.lora_dropout,
            target_modules=script_args.lora_target_modules,
            modules_to_save=["lm_head"] if script_args.train_head else None,
            task_type="CAUSAL_LM",
        ),
        callbacks=[PushCallback(pusher, extra)] if pusher else None,
    )
    try:
        train_output = trainer.train(resume_from_checkpoint=resume_from)
    except ValueError as exc:
        if "checkpoint" in str(exc).lower():
            raise QAError(f"cannot resume: {exc}") from exc
        raise

    # 6. Evaluate on the held-out split, save, and push the final checkpoint with a model card.
    trainer.evaluate()
    final = Path(training_args.output_dir) / "final"
    trainer.save_model(final)
    record = checkpoint_record(trainer.state, extra)
    record["train_loss"] = round(train_output.training_loss, 6)  # the average over the run
    record["train_runtime"] = round(train_output.metrics["train_runtime"], 3)
    record["train_tokens"] = trainer.state.num_input_tokens_seen
    report = None
    if pusher:
        pusher.submit(final, record, {"README.md": adapter_card(script_args.hub_repo, record, vars(script_args))})
        report = pusher.finish()

    if is_main:
        summary = (
            f"trained {loaded.description} on {len(train)} examples with {training_args.world_size} process(es): "
            f"{trainer.state.global_step} steps in {time.time() - started:.0f}s "
            f"({record['train_tokens'] / record['train_runtime']:.0f} tokens/s), "
            f"train loss {record['train_loss']:.4f}, "
            f"eval loss {record.get('eval_loss', float('nan')):.4f} "
            f"(perplexity {record.get('eval_perplexity', float('nan')):.2f}); adapter in {final}"
        )
        if report is not None:
            summary += f"; pushed {len(report.pushed)} checkpoint(s) to {script_args.hub_repo}"
            if report.failed:
                summary += f", {len(report.failed)} push(es) failed: " + " | ".join(report.failed)
        print(summary, flush=True)
    return record


def parse_args(argv: list[str] | None = None) -> tuple[TrainScriptArguments, SFTConfig]:
    parser = TrlParser((TrainScriptArguments, SFTConfig))
    parser.set_defaults(report_to="none", output_dir="runs/qa-lora")
    return parser.parse_args_and_config(argv)


if __name__ == "__main__":
    try:
        main(*parse_args())
    except QAError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except ValueError as exc:  # an option the machine cannot honour, e.g. bf16 without a GPU
        if "support" not in str(exc) and "You need" not in str(exc):
            raise
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
