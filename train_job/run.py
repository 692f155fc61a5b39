"""Fine-tune a causal LM for question answering with LoRA / QLoRA, pushing checkpoints to the Hub.

    python train_job/run.py --config configs/tiny-cpu.yaml
    python train_job/run.py --config configs/tiny-cpu-pretrain.yaml --data reports/   # raw text (--task pretrain)
    python train_job/run.py --config configs/tiny-cpu.yaml --init-adapter runs/tiny-cpu/final   # continue an adapter
    python train_job/run.py --config configs/smollm2-cpu-dpo.yaml --data runs/facts.csv \
        --adapter runs/smollm2-cpu/final          # preference stage (DPO) on the adapter's own answers
    python train_job/run.py --config configs/tiny-cpu.yaml --push-to-hub --hub-repo me/qa-run --push-every 10
    python train_job/run.py --config configs/llama2-context-qa.yaml --data filings.csv --learning_rate 1e-4
    python train_job/run.py --config configs/tiny-cpu.yaml --push-to-hub --hub-repo me/qa-run \
        --resume-from-hub me/qa-run@20          # continue from the checkpoint pushed at step 20
    accelerate launch --num_processes 2 --cpu train_job/run.py --config configs/tiny-cpu.yaml

Every field of the argument classes below and of TRL's `SFTConfig` (learning rate, batch size,
optimizer, scheduler, packing, max_length, eval and save steps ...) can be set in a YAML preset
and overridden on the command line (`--learning_rate 1e-4` or `--learning-rate 1e-4`); `--help`
lists them all. The endpoint and token come from HF_ENDPOINT / HF_TOKEN or the flags.

Exit status: 0 done; 2 bad input or settings (one `error:` line, before any training); 3 trained
and saved locally, but some checkpoint pushes failed (the summary says how to push them later).

--task sft (the default) trains on question-answer pairs; loss is computed on the answer only (the
prompt and context are masked out), and no compute is spent on padding (--batching, see its help);
the naive way, every example padded to max_length, stays available with --batching max-length.
--task pretrain continues pretraining on raw text (files, folders or a text column): loss on every
token, the text cut into full max_length blocks. --init-adapter starts either from a trained adapter,
so documents -> pretrain -> SFT is two runs. --unanswerable_share adds questions their context cannot
answer, taught "The context does not state this." (qa_core/unanswerable.py); --task dpo continues an
adapter on preference pairs judged from its own answers (train_job/preference.py).
Every run draws its loss curve into output_dir/loss.png, and the answer scores of its held-out
questions at every checkpoint (--score_questions, train_job/scoring.py) into answer_scores.png; both
are saved and pushed with the final checkpoint.
"""

from __future__ import annotations

import qa_core  # noqa: F401  (before peft imports bitsandbytes: qa_core quiets its warnings)

# isort: split
import difflib
import functools
import importlib.util
import json
import os
import shutil
import sys
import time
import warnings
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

import torch
from accelerate import PartialState
from datasets import Dataset, DatasetDict
from peft import LoraConfig, PeftModel, prepare_model_for_kbit_training
from transformers import IntervalStrategy, PreTrainedModel, TrainingArguments
from transformers.trainer_utils import get_last_checkpoint
from trl import DPOConfig, SFTConfig, TrlParser

from qa_core.cli import one_line
from qa_core.config import Settings, load_settings, setting_option
from qa_core.data import load_qa_data, split_qa_data
from qa_core.demo_model import sample_data_path
from qa_core.errors import QAError
from qa_core.evaluate import held_out_questions
from qa_core.hub.checkpoints import (
    MAIN_SCORE,
    SCORE_KEYS,
    main_score,
    pull,
    read_checkpoint_record,
    write_record,
)
from qa_core.hub.publish import adapter_card, check_push_options, check_write_access
from qa_core.hub.refs import ModelRef, public_name
from qa_core.hub.snapshots import require_adapter
from qa_core.metrics import says_not_stated
from qa_core.models import LoadedModel, load_model, locate
from qa_core.prompts import STYLE_HELP, build_prompt, resolve_style
from qa_core.reports import write_loss_curve, write_score_curve
from qa_core.text_data import load_texts, passages
from qa_core.unanswerable import NOT_STATED_ANSWER, with_unanswerable
from train_job.launch import check_job, check_launch, job_facts
from train_job.preference import PreferenceTrainer, build_pairs, completion, load_pairs, push_pairs
from train_job.pushing import CheckpointCallback, CheckpointPusher, PushReport, checkpoint_record
from train_job.sampling import GroupedSFTTrainer
from train_job.scoring import AnswerScoreCallback, EvaluationDrawsNothing
from train_job.shards import is_sharded, write_whole_adapter

# TRL 1.16 still sets and reads activation checkpointing under its deprecated name (SFTConfig's
# default, model.is_gradient_checkpointing): a FutureWarning at every run that no setting avoids.
warnings.filterwarnings("ignore", r"`(is_)?gradient_checkpointing` is deprecated", FutureWarning)

BATCHINGS = ("auto", "packed", "grouped", "max-length")
KERNELS = ("auto", "liger", "none")
TASKS = ("sft", "pretrain", "dpo")
LOSS_CURVE = "loss.png"
SCORE_CURVE = "answer_scores.png"
PUSH_FAILED = 3  # exit status: training completed, but some checkpoint pushes failed for good


@dataclass
class DataArguments:
    """What to train on, and how examples become prompts and batches."""

    task: str = field(
        default="sft",
        metadata={"help": "sft: question-answer pairs, loss on the answer | pretrain: raw text, loss on every token."},
    )
    data: str = field(
        default=str(sample_data_path()),
        metadata={
            "help": "sft: CSV / JSONL / JSON file or Hugging Face dataset id of QA pairs (default: the bundled "
            "sample) | pretrain: a file or folder of .txt / .md / .pdf / .csv, or a dataset id (see --text-column)."
        },
    )
    text_column: str | None = field(
        default=None, metadata={"help": "pretrain: the text column of CSV files and datasets (default: text)."}
    )
    columns: str | None = field(
        default=None, metadata={"help": "Column mapping, e.g. question=instruction,context=input,answer=output."}
    )
    test_size: float = field(default=0.1, metadata={"help": "Fraction held out for evaluation."})
    prompt_style: str = field(
        default="auto", metadata={"help": "; ".join(f"{name}: {text}" for name, text in STYLE_HELP.items())}
    )
    unanswerable_share: float = field(
        default=0.0,
        metadata={
            "help": "sft, dpo: the share of training (and held-out) rows made unanswerable, their answer "
            "--not_stated_answer: the question with another document's context, or with its own less the "
            "sentences stating the answer (qa_core/unanswerable.py). 0: none."
        },
    )
    not_stated_answer: str = field(
        default=NOT_STATED_ANSWER, metadata={"help": "The answer taught for unanswerable rows."}
    )
    score_questions: int = field(
        default=32,
        metadata={
            "help": "sft, dpo: answer the first N held-out questions (and unanswerable ones made from them) with "
            "the base before training and at every evaluation, logged as eval_exact_figure, eval_contains_answer "
            "... (train_job/scoring.py); a run that evaluates then does so at every checkpoint (eval_steps = "
            "save_steps). 0, or --eval_strategy no: off."
        },
    )
    batching: str = field(
        default="auto",
        metadata={
            "help": "auto: packed on a GPU or with flash-attention, else grouped (see benchmarks/README.md) | "
            "packed: examples packed into max_length rows without padding, each attending only to itself | "
            "grouped: batches of similar-length examples, padded to their longest (train_job/sampling.py) | "
            "max-length: every example padded to max_length (the naive way, for comparison)"
        },
    )


@dataclass
class ModelArguments:
    """The base model, how it is loaded, and the LoRA adapter trained on it."""

    model: str = field(
        default="demo", metadata={"help": "Base model: Hub id[@revision], local folder, 'smollm2' or 'demo'."}
    )
    # "none" by default, not QA_QUANTIZATION: a setting made for the app never changes how a run trains.
    quantization: str = field(default="none", metadata=setting_option("quantization", falls_back=False))
    attn_implementation: str | None = field(
        default=None,
        metadata={
            "help": "Attention kernel: sdpa (default), flash_attention_2 (needs the flash-attn package), "
            "flex_attention (torch's own, compiled on first use), eager."
        },
    )
    init_adapter: str | None = field(
        default=None,
        metadata={
            "aliases": ["--adapter"],
            "help": "Start from this LoRA adapter (folder or REPO[@REV]) instead of a new one; its rank, alpha "
            "and target modules replace the lora_* options.",
        },
    )
    lora_r: int = field(default=16, metadata={"help": "LoRA rank."})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA scaling alpha."})
    lora_dropout: float = field(default=0.05, metadata={"help": "Dropout on the LoRA layers."})
    lora_target_modules: list[str] = field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"],
        metadata={"help": "Module names that get LoRA layers."},
    )
    train_head: bool = field(default=False, metadata={"help": "Also train lm_head (saved with the adapter)."})
    kernels: str = field(
        default="auto",
        metadata={
            "help": "auto: liger on a CUDA GPU when liger-kernel is installed, else none | liger: Liger's Triton "
            "kernels (fused linear cross-entropy, RMSNorm, SwiGLU, RoPE; TRL's use_liger_kernel) | none: "
            "transformers' own. A CPU always gets none: nothing there may change results."
        },
    )


@dataclass
class PublishArguments:
    """Where checkpoints are pushed while training runs, and where a run resumes from."""

    hub_repo: str | None = field(default=None, metadata={"help": "Hub repo to push checkpoints to (USER/NAME)."})
    hub_endpoint: str | None = field(default=None, metadata=setting_option("hf_endpoint"))
    push_every: int | None = field(
        default=None, metadata={"help": "Push a checkpoint every N steps (default: save_steps); always at the end."}
    )
    push_patience: float = field(
        default=600.0,
        metadata={
            "help": "Seconds a checkpoint push keeps trying while the Hub is unavailable (HTTP 429/5xx, no "
            "connection), checkpoints waiting in order; then it is reported and training goes on."
        },
    )
    resume: bool = field(default=False, metadata={"help": "Continue from the latest checkpoint in output_dir."})
    resume_from_hub: str | None = field(
        default=None, metadata={"help": "Continue from a pushed checkpoint: REPO[@STEP_OR_SHA] (default: latest)."}
    )


@dataclass
class PreferenceArguments:
    """--task dpo: the pairs built from the data and the adapter's own answers (train_job/preference.py)."""

    beta: float = field(
        default=0.1,
        metadata={"help": "DPO's beta: how far the tuned adapter may move from where it started (higher: less)."},
    )
    preference_loss: list[str] = field(
        default_factory=lambda: ["sigmoid", "sft"],
        metadata={
            "help": "TRL's DPO loss types, summed: sigmoid is DPO's; sft adds the chosen answers' likelihood "
            "(RPO), without which DPO lowered 'not stated' even where it was chosen (see docs/training.md)."
        },
    )
    decline_share: float = field(
        default=0.5,
        metadata={
            "help": "Of the answerable questions the model answered right, the share whose pair rejects the "
            "not-stated answer rather than a wrong figure: without it DPO taught declining answerable ones too."
        },
    )
    pair_samples: int = field(default=2, metadata={"help": "Answers sampled per question to judge."})
    pair_temperature: float = field(default=0.7, metadata={"help": "Sampling temperature of those answers."})
    pairs: str | None = field(
        default=None,
        metadata={
            "help": "Train on pairs made before instead of sampling new ones: a JSONL file written by --save_pairs, "
            "or a Hub dataset pushed by --push_pairs (REPO[@REV]). Held-out pairs are still made from the data."
        },
    )
    save_pairs: str | None = field(
        default=None, metadata={"help": "Also write the training pairs here (JSONL: prompt, chosen, rejected)."}
    )
    push_pairs: str | None = field(
        default=None, metadata={"help": "Also push the training pairs to this Hub dataset repo (USER/NAME)."}
    )


def prompt_completion(data: Dataset, style: str, tokenizer) -> Dataset:
    """Turn QA rows into TRL's prompt / completion format, the prompt built as at inference time."""

    def convert(row: dict) -> dict:
        prompt = build_prompt(style, row["question"], row["context"] or None, tokenizer)
        return {"prompt": prompt, "completion": completion(prompt, row["answer"])}

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


def check_options(
    data_args: DataArguments, model_args: ModelArguments, publish_args: PublishArguments, push: bool, settings: Settings
) -> None:
    """Fail on options that cannot work, before loading anything."""
    if model_args.kernels not in KERNELS:
        raise QAError(f"--kernels {model_args.kernels!r}: choose {', '.join(KERNELS)}")
    if data_args.batching not in BATCHINGS:
        raise QAError(f"--batching {data_args.batching!r}: choose {', '.join(BATCHINGS)}")
    if data_args.task not in TASKS:
        raise QAError(f"--task {data_args.task!r}: choose {', '.join(TASKS)}")
    if data_args.task == "dpo" and not model_args.init_adapter:
        raise QAError("--task dpo tunes a trained adapter further: give --adapter FOLDER_OR_REPO[@REV]")
    if not says_not_stated(data_args.not_stated_answer):
        raise QAError(
            f"--not_stated_answer {data_args.not_stated_answer!r} would not be read as saying the context is silent "
            "(evaluation and the DPO stage look for 'does not state', 'not stated', 'not mentioned' ...)"
        )
    if data_args.task == "pretrain" and data_args.unanswerable_share:
        raise QAError("--unanswerable_share applies to --task sft: raw text has no questions to make unanswerable")
    if data_args.task == "pretrain" and data_args.batching != "auto":
        raise QAError("--batching applies to --task sft; pretraining always cuts the text into full max_length blocks")
    if push:
        check_push_options(publish_args.hub_repo, settings)


def load_data(data_args: DataArguments, settings: Settings, seed: int) -> tuple[DatasetDict, Dataset | None]:
    """QA rows, or passages of raw text, split reproducibly into `train` and `test`.

    Returns:
        (the split, unanswerable rows added to both parts; the held-out questions whose answers are
        scored during training, None for raw text or with --score_questions 0).
    """
    if data_args.task == "pretrain":
        problems: list[str] = []
        texts = load_texts([data_args.data], settings, data_args.text_column, problems)
        for problem in problems:
            print(f"warning: {problem}", file=sys.stderr)
        data = Dataset.from_dict({"text": passages(texts)})
    else:
        data = load_qa_data(data_args.data, data_args.columns, token=settings.hub_token)
    parts = split_qa_data(data, data_args.test_size, seed)
    if data_args.task == "pretrain":
        return parts, None
    share, answer = data_args.unanswerable_share, data_args.not_stated_answer
    scored = None
    if data_args.score_questions:  # the questions `qa_core.evaluate --split test --limit N` asks
        scored = held_out_questions(parts["test"], data_args.score_questions, share, answer, seed)
    for name, part in parts.items():  # made after the split: no held-out question is trained on in another context
        parts[name] = with_unanswerable(part, share, answer, seed)
    return parts, scored


def load_trainable_model(
    model_args: ModelArguments, training_args: SFTConfig, settings: Settings
) -> tuple[LoadedModel, PeftModel | PreTrainedModel, LoraConfig, dict]:
    """The base model, loaded as everywhere else in the toolkit (`smollm2`, Hub ids pinned to a
    commit, 4/8-bit), made ready for LoRA.

    Returns:
        (the loaded model, the model to train, its LoRA config, the starting adapter's record or {}).
    """
    loaded = load_model(
        model_args.model,
        settings=settings,
        quantization=model_args.quantization,
        device=str(training_args.device),
        attn_implementation=model_args.attn_implementation,
        backend="local",  # training needs the weights here, whatever QA_GENERATION_BACKEND says
    )
    model = loaded.model
    model.config.use_cache = False  # a KV cache in training would also break packed attention masks
    if model_args.quantization != "none":
        checkpointing = training_args.activation_checkpointing
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=checkpointing)
    if model_args.init_adapter:  # trained on with its own rank, alpha and target modules
        model, init_record = start_from_adapter(model, model_args.init_adapter, settings)
        return loaded, model, model.peft_config["default"], init_record
    check_target_modules(model, model_args.lora_target_modules)
    lora = LoraConfig(
        r=model_args.lora_r,
        lora_alpha=model_args.lora_alpha,
        lora_dropout=model_args.lora_dropout,
        target_modules=model_args.lora_target_modules,
        modules_to_save=["lm_head"] if model_args.train_head else None,
        task_type="CAUSAL_LM",
    )
    return loaded, model, lora, {}


def prepare_examples(
    data_args: DataArguments, parts: DatasetDict, tokenizer, model, init_record: dict
) -> tuple[str | None, str, Dataset, Dataset]:
    """Build the training and held-out examples.

    Returns:
        (the prompt style, None for raw text; the batching; the train and test datasets).
    """
    if data_args.task == "pretrain":
        return None, "wrapped", parts["train"], parts["test"]
    # The concrete style is recorded with every checkpoint: the adapter is asked the way it was
    # trained (a continued adapter keeps its style unless told otherwise).
    style = resolve_style(data_args.prompt_style, tokenizer, trained=init_record.get("prompt_style"))
    train = prompt_completion(parts["train"], style, tokenizer)
    test = prompt_completion(parts["test"], style, tokenizer)
    # DPO's collator pads each batch to its longest pair; its examples are made later, from answers
    batching = resolve_batching(data_args.batching, model) if data_args.task == "sft" else "padded"
    return style, batching, train, test


def preference_pairs(
    loaded: LoadedModel,
    parts: DatasetDict,
    style: str,
    options: PreferenceArguments,
    seed: int,
    data_args: DataArguments,
    settings: Settings,
) -> tuple[Dataset, Dataset | None, dict]:
    """The DPO stage's train and held-out pairs, from the model's own answers (train_job/preference.py).

    Returns:
        (train pairs; held-out pairs, None if there are none; what the checkpoint record says of
        them: stage, beta, counts, and where they were pushed).

    Raises:
        QAError: no training question gives a pair (the figure check confirms none of their references).
    """
    loaded.model.eval()  # sampled as served: no dropout
    sample = functools.partial(
        build_pairs,
        loaded,
        style=style,
        samples=options.pair_samples,
        temperature=options.pair_temperature,
        seed=seed,
        decline_share=options.decline_share,
        not_stated=data_args.not_stated_answer,
    )
    if options.pairs:  # sampling is most of the stage's cost: trying another beta or lr need not repeat it
        train, counts = load_pairs(options.pairs, settings), {"loaded_from": public_name(options.pairs)}
        counts["pairs"] = len(train)
    else:
        train, counts = sample(parts["train"])
    if not len(train):
        raise QAError(
            f"none of the {counts['questions']} training questions gives a preference pair: the figure check "
            "confirms none of their reference answers in their context"
        )
    if options.save_pairs:
        train.to_json(options.save_pairs)
    record = {"stage": "dpo", "beta": options.beta, "loss": options.preference_loss, "pairs": counts}
    if options.push_pairs:
        about = f"Made by qa-toolkit's `train_job/run.py --task dpo` from `{public_name(data_args.data)}`: {counts}."
        record["pairs_commit"] = push_pairs(train, options.push_pairs, settings, about)
        record["pairs_repo"] = options.push_pairs
    # Held-out questions are judged the same way; a split whose references the check confirms none
    # of gives no pairs, and then no eval loss (qa_core.evaluate measures the answers either way).
    test, _ = sample(parts["test"])
    return train, test if len(test) else None, record


def dpo_config(training_args: SFTConfig, options: PreferenceArguments, evaluate: bool) -> DPOConfig:
    """The DPO stage's arguments: the Trainer's own (steps, learning rate, saving, logging ...) and
    max_length as set for the run, and beta; no evaluation during training without held-out pairs
    (`evaluate` False). SFT's own fields (its loss type, packing ...) mean other things, or nothing, here."""
    names = [f.name for f in fields(TrainingArguments) if f.init] + ["max_length"]
    shared = {name: getattr(training_args, name) for name in names}
    if not evaluate:
        shared["eval_strategy"] = "no"
    return DPOConfig(**shared, beta=options.beta, loss_type=options.preference_loss)


def add_scoring(
    trainer: GroupedSFTTrainer,
    loaded: LoadedModel,
    questions: Dataset,
    style: str,
    settings: Settings,
    data_args: DataArguments,
) -> dict:
    """Score answers to `questions` at every evaluation (train_job/scoring.py).

    Returns:
        What the checkpoint records say of it: the score commit titles name, and the command that
        asks the same questions afterwards; {} when the run never evaluates (DPO without held-out pairs).
    """
    if trainer.args.eval_strategy == IntervalStrategy.NO:  # asked for, or DPO without held-out pairs
        print("note: no evaluation during this run, so its answers are not scored (--score_questions)", file=sys.stderr)
        return {}
    trainer.add_callback(AnswerScoreCallback(trainer, loaded, questions, style, settings))
    chosen = trainer.args.metric_for_best_model or ""
    chosen = chosen if chosen.startswith("eval_") else f"eval_{chosen}"
    command = (
        f"python -m qa_core.evaluate --data {public_name(data_args.data)} --split test --test-size "
        f"{data_args.test_size} --seed {trainer.args.seed} --limit {data_args.score_questions}"
    )
    if data_args.unanswerable_share:
        command += f" --unanswerable {data_args.unanswerable_share}"
    return {"score_metric": chosen if chosen in SCORE_KEYS else MAIN_SCORE, "scored_with": command}


def resolve_batching(batching: str, model) -> str:
    """`auto` is `packed` on a GPU or with flash-attention, else `grouped`.

    Packing flattens a batch into one sequence, each example masked to itself. Flash-attention's
    varlen kernels skip the other examples' tokens; other kernels compute the whole masked square.
    On a GPU that costs little next to the weights (7B QLoRA on an H100: packed with SDPA 3,565
    real tokens/s, grouped 603, see benchmarks/README.md); on a CPU it costs more than grouping's
    padding (demo model: packed 1.6x, grouped 2.3x over padding to max_length)."""
    if batching != "auto":
        return batching
    on_gpu = model.device.type == "cuda"
    return "packed" if on_gpu or "flash" in (model.config._attn_implementation or "") else "grouped"


def resolve_kernels(kernels: str, model) -> str:
    """`auto` is `liger` on a CUDA GPU when liger-kernel is installed, else `none`.

    Raises:
        QAError: `liger` asked for without a CUDA GPU or without the package (its kernels are Triton).
    """
    usable = model.device.type == "cuda" and importlib.util.find_spec("liger_kernel") is not None
    if kernels == "auto":
        return "liger" if usable else "none"
    if kernels == "liger" and not usable:
        raise QAError("--kernels liger needs a CUDA GPU and the liger-kernel package (pip install liger-kernel)")
    return kernels


def configure_trainer(
    training_args: SFTConfig, publish_args: PublishArguments, batching: str, kernels: str, scoring: bool
) -> None:
    """Every SFTConfig field this script derives from its own options, set in one place (`batching`:
    resolved by `resolve_batching`, or `wrapped` for raw text; `kernels` by `resolve_kernels`;
    `scoring`: answers are scored at every evaluation, so there is one at every checkpoint)."""
    # The trainer pickles its arguments into every checkpoint: keep the token out of them, and keep
    # it from pushing on its own (this script pushes one commit per checkpoint).
    training_args.hub_token, training_args.push_to_hub = None, False
    if training_args.include_num_input_tokens_seen == "no":  # the summary reports real tokens per second
        training_args.include_num_input_tokens_seen = "non_padding"
    if publish_args.push_every:
        training_args.save_strategy, training_args.save_steps = "steps", publish_args.push_every
    evaluates = training_args.eval_strategy != IntervalStrategy.NO
    if scoring and evaluates and training_args.save_strategy in ("steps", "epoch"):  # every checkpoint is scored
        training_args.eval_strategy = IntervalStrategy(
            getattr(training_args.save_strategy, "value", training_args.save_strategy)
        )
        training_args.eval_steps, training_args.do_eval = training_args.save_steps, True
    training_args.use_liger_kernel = kernels == "liger"
    training_args.packing = training_args.padding_free = batching == "packed"
    if batching == "wrapped":  # raw text: concatenated and cut into full max_length blocks, no padding at all
        training_args.packing, training_args.packing_strategy = True, "wrapped"
    if batching == "grouped":
        training_args.train_sampling_strategy = "group_by_length"
    if batching == "max-length":
        training_args.pad_to_multiple_of = training_args.max_length
    if training_args.bf16 and training_args.device.type == "cpu" and not torch.ops.mkldnn._is_mkldnn_bf16_supported():
        # TRL turns bf16 on by default. Emulated on a CPU without native bfloat16 (AVX2 only), a
        # training step of smollm2 ran 19x slower than in float32.
        training_args.bf16, training_args.mixed_precision = False, "no"
        print("note: this CPU has no native bfloat16: training in float32 (bf16 would be ~19x slower)", file=sys.stderr)


def start_from_adapter(model, spec: str, settings: Settings) -> tuple[PeftModel, dict]:
    """Wrap `model` in the adapter `spec` (folder or REPO[@REV]), its weights trainable.

    Returns:
        (the model, the adapter's checkpoint record with `adapter` set to its public name and commit).

    Raises:
        QAError: not found, not a PEFT adapter, or made for another base model.
    """
    folder, name, commit = locate(spec, settings)
    require_adapter(folder, f"--init-adapter {spec}")
    try:
        model = PeftModel.from_pretrained(model, folder, is_trainable=True)
    except Exception as exc:  # peft raises many kinds for an adapter of another shape
        raise QAError(f"--init-adapter {spec}: does not fit this base model ({type(exc).__name__}: {exc})") from exc
    label = public_name(name) + (f"@{commit[:12]}" if commit else "")
    return model, {**read_checkpoint_record(folder), "adapter": label}


def pull_checkpoint(spec: str, output_dir: str, settings: Settings) -> tuple[str, str]:
    """Download the pushed checkpoint `REPO[@STEP_OR_SHA]` (default: the latest) to resume from.

    Returns:
        (the local folder, the repo id).

    Raises:
        QAError: it holds no trainer state (an adapter only), or the Hub refuses.
    """
    ref = ModelRef.parse(spec)
    if ref.repo_id is None:
        raise QAError(f"--resume-from-hub {spec}: not a Hub repo (REPO[@STEP]); for a folder: --resume_from_checkpoint")
    repo_id, revision = ref.repo_id, ref.revision
    folder = Path(output_dir) / "resumed-from-hub"
    shutil.rmtree(folder, ignore_errors=True)  # never mix files of two checkpoints
    commit = pull(repo_id, revision or "main", folder, settings)
    if not (folder / "trainer_state.json").is_file():
        raise QAError(f"{repo_id}@{commit[:12]} has no trainer state to resume from (adapter only)")
    return str(folder), repo_id


def find_resume_point(
    publish_args: PublishArguments, training_args: SFTConfig, settings: Settings
) -> tuple[str | None, int]:
    """Where training resumes from: a pushed checkpoint (adapter, head, optimizer, scheduler, step),
    the latest local one, or nowhere.

    Returns:
        (the checkpoint folder or None; the last step already on --hub-repo, or -1).

    Raises:
        QAError: nothing to resume from, or nothing left to train.
    """
    resume_from, resumed_repo = None, None
    if publish_args.resume:
        output = Path(training_args.output_dir)
        resume_from = get_last_checkpoint(str(output)) if output.is_dir() else None
        if resume_from is None:
            raise QAError(f"cannot resume: no checkpoint-N folder in {output}")
    if publish_args.resume_from_hub:
        resume_from, resumed_repo = pull_checkpoint(publish_args.resume_from_hub, training_args.output_dir, settings)
    if not resume_from:
        return None, -1
    step = json.loads((Path(resume_from) / "trainer_state.json").read_text())["global_step"]
    if 0 < training_args.max_steps <= step:  # the trainer would run one step past it
        raise QAError(
            f"{resume_from} is at step {step} and --max_steps is {training_args.max_steps}: "
            "nothing left to train; raise --max_steps to continue"
        )
    return resume_from, step if resumed_repo == publish_args.hub_repo else -1


def run_facts(loaded: LoadedModel, data_args: DataArguments, model_args: ModelArguments, lora: LoraConfig) -> dict:
    """What every checkpoint record (and so every card) says about how it was trained; local
    files are named by their name only."""
    targets = lora.target_modules
    return {
        "base_model": public_name(loaded.name),
        "base_commit": loaded.commit,
        "task": data_args.task,
        "dataset": public_name(data_args.data),
        "quantization": model_args.quantization,
        "lora": {
            "r": lora.r,
            "alpha": lora.lora_alpha,
            "dropout": lora.lora_dropout,
            "target_modules": [targets] if isinstance(targets, str) else sorted(targets),  # a str is a regex
            "modules_to_save": sorted(lora.modules_to_save or []),
        },
    }


def train_and_evaluate(trainer: GroupedSFTTrainer, resume_from: str | None, pusher: CheckpointPusher | None):
    """Train, then evaluate on the held-out split; pushes stop at once if either fails.

    Returns:
        The trainer's `TrainOutput`.
    """
    try:
        output = trainer.train(resume_from_checkpoint=resume_from)
        step = trainer.state.global_step
        evaluated = any("eval_loss" in entry and entry.get("step") == step for entry in trainer.state.log_history)
        if trainer.eval_dataset is not None and not evaluated:  # answers are not scored twice at one step
            trainer.evaluate()
        return output
    except BaseException as exc:
        if pusher:
            pusher.abort()
        if isinstance(exc, ValueError) and "checkpoint" in str(exc).lower():
            raise QAError(f"cannot resume: {exc}") from exc
        raise


def save_final(trainer: GroupedSFTTrainer, train_output, extra: dict, title: str) -> tuple[Path, Path, dict]:
    """Save the adapter as output_dir/final and write the final record (and loss curve) into it
    and into the last full checkpoint.

    Returns:
        (the final adapter folder; the folder to push: the last full checkpoint when the trainer
        saved one, so the branch's head can be resumed from, else the adapter alone; the record).
    """
    output_dir = Path(trainer.args.output_dir)
    final = output_dir / "final"
    trainer.save_model(final)
    if is_sharded(trainer.model):  # the save above holds one process's shards (accelerate#4206)
        write_whole_adapter(trainer.model, final, trained=True)
    record = checkpoint_record(trainer.state, extra)
    record["train_loss"] = round(train_output.training_loss, 6)  # the average over the run
    record["train_runtime"] = round(train_output.metrics["train_runtime"], 3)
    record["train_tokens"] = trainer.state.num_input_tokens_seen
    last = output_dir / f"checkpoint-{trainer.state.global_step}"
    complete = last if last.is_dir() else final
    if trainer.is_world_process_zero():
        curves = {
            "loss_curve": (LOSS_CURVE, write_loss_curve(trainer.state.log_history, output_dir / LOSS_CURVE, title)),
            "score_curve": (
                SCORE_CURVE,
                write_score_curve(record.get("answer_scores", []), output_dir / SCORE_CURVE, title),
            ),
        }
        for key, (name, written) in curves.items():
            if written:
                record[key] = name  # the card shows it
                for folder in {final, complete}:
                    shutil.copy(output_dir / name, folder / name)
        write_record(final, record)
        write_record(complete, record)
    return final, complete, record


def summary(
    loaded: LoadedModel, examples: str, trainer: GroupedSFTTrainer, seconds: float, record: dict, final: Path
) -> str:
    """The line printed at the end of a run: what was trained, how fast, the losses and the main
    answer score against the base's, where it went."""
    scored = main_score(record, digits=3)
    scored = f", {scored}" if scored else ""
    return (
        f"trained {loaded.description} on {examples} with {trainer.args.world_size} process(es): "
        f"{trainer.state.global_step} steps in {seconds:.0f}s "
        f"({record['train_tokens'] / max(record['train_runtime'], 1e-9):.0f} tokens/s), "
        f"train loss {record['train_loss']:.4f}, "
        f"eval loss {record.get('eval_loss', float('nan')):.4f} "
        f"(perplexity {record.get('eval_perplexity', float('nan')):.2f}){scored}; adapter in {final}"
    )


def push_summary(report: PushReport, repo: str, output_dir: str, final: Path) -> str:
    """What the pusher did, and how to publish what it could not."""
    text = f"; pushed {len(report.pushed)} checkpoint(s) to {repo}"
    if report.failed:
        failures = " | ".join(f"step {step}: {why}" for step, why in sorted(report.failed.items()))
        text += f", {len(report.failed)} push(es) failed: {failures}" + push_later_hint(report, output_dir, repo, final)
    return text


def main(
    data_args: DataArguments,
    model_args: ModelArguments,
    publish_args: PublishArguments,
    preference_args: PreferenceArguments,
    training_args: SFTConfig,
) -> dict:
    """Train, evaluate and publish; returns the final checkpoint record (step, losses, metrics,
    train_runtime and train_tokens, the real tokens trained on, padding excluded; `push_failures`,
    the number of checkpoint pushes that failed for good)."""
    started = time.time()
    settings = load_settings(hf_endpoint=publish_args.hub_endpoint, hf_token=training_args.hub_token)
    settings = replace(settings, adapter=None)  # QA_ADAPTER is the app's; a run starts from --init-adapter
    push, is_main = training_args.push_to_hub, training_args.process_index == 0
    check_launch(training_args.device.type)
    check_options(data_args, model_args, publish_args, push, settings)
    if preference_args.push_pairs and not settings.hf_token:
        raise QAError("--push_pairs needs a token: set HF_TOKEN or pass --hub-token")

    parts, scored = load_data(data_args, settings, training_args.seed)
    loaded, model, lora, init_record = load_trainable_model(model_args, training_args, settings)
    style, batching, train, test = prepare_examples(data_args, parts, loaded.tokenizer, model, init_record)
    kernels = resolve_kernels(model_args.kernels, model)
    configure_trainer(training_args, publish_args, batching, kernels, scoring=scored is not None)
    resume_from, already_pushed = find_resume_point(publish_args, training_args, settings)
    pusher = None
    if push and is_main:  # write access is checked before any compute is spent
        repo = publish_args.hub_repo
        check_write_access(repo, settings)
        card = functools.partial(adapter_card, repo)
        pusher = CheckpointPusher(repo, settings, card, already_pushed, patience=publish_args.push_patience)
    if preference_args.push_pairs and is_main:
        check_write_access(preference_args.push_pairs, settings, repo_type="dataset")
    preference = {}
    if data_args.task == "dpo":
        train, test, preference = preference_pairs(
            loaded, parts, style, preference_args, training_args.seed, data_args, settings
        )

    extra = {**run_facts(loaded, data_args, model_args, lora), "prompt_style": style, "batching": batching}
    extra["kernels"] = kernels
    if data_args.unanswerable_share:
        extra["unanswerable"] = {"share": data_args.unanswerable_share, "answer": data_args.not_stated_answer}
    if init_record:
        extra["init_adapter"] = init_record["adapter"]
    if preference:
        extra["preference"] = preference
    trainer_class, trainer_args = GroupedSFTTrainer, training_args
    if data_args.task == "dpo":
        trainer_class, trainer_args = (
            PreferenceTrainer,
            dpo_config(training_args, preference_args, evaluate=test is not None),
        )
    trainer = trainer_class(
        model=model,
        args=trainer_args,
        train_dataset=train,
        eval_dataset=test,
        processing_class=loaded.tokenizer,
        peft_config=None if init_record else lora,
        callbacks=[CheckpointCallback(extra, pusher), EvaluationDrawsNothing()],
    )
    if scored is not None:
        extra.update(add_scoring(trainer, loaded, scored, style, settings, data_args))
    extra.update(job_facts(trainer))  # what runs, not what a config asked: every checkpoint records it
    check_job(extra)
    train_output = train_and_evaluate(trainer, resume_from, pusher)
    title = f"{data_args.task}: {public_name(loaded.description)}"
    final, complete, record = save_final(trainer, train_output, extra, title)
    report = None
    if pusher:
        pusher.submit(complete, record)
        report = pusher.finish()
    record["push_failures"] = len(report.failed) if report else 0

    if is_main:
        examples = f"{len(train)} {'passages' if style is None else 'examples'}"
        line = summary(loaded, examples, trainer, time.time() - started, record, final)
        if report is not None:
            line += push_summary(report, publish_args.hub_repo, training_args.output_dir, final)
        print(line, flush=True)
    return record


def push_later_hint(report: PushReport, output_dir: str, repo: str, final: Path) -> str:
    """How to publish the checkpoints whose push failed, newest pushed state last; failed steps
    older than a pushed one are superseded by it (a push makes its checkpoint the head of main)."""
    newest_pushed = max(report.pushed, default=-1)
    commands = []
    for step in sorted(step for step in report.failed if step > newest_pushed):
        folder = Path(output_dir) / f"checkpoint-{step}"
        commands.append(f"  python -m hub push {folder if folder.is_dir() else final} {repo}")
    if not commands:
        return ""
    return "\nthe checkpoints are kept locally; to publish them later, in this order:\n" + "\n".join(commands)


def parse_args(
    argv: list[str] | None = None,
) -> tuple[DataArguments, ModelArguments, PublishArguments, PreferenceArguments, SFTConfig]:
    """The options of a run, from `--config PRESET.yaml` and the command line (which wins)."""
    # no abbreviations: a mistyped --learning-rat 3 must be refused, not taken as --learning_rate 3
    parser = TrlParser(
        (DataArguments, ModelArguments, PublishArguments, PreferenceArguments, SFTConfig), allow_abbrev=False
    )
    parser.set_defaults(report_to="none", output_dir="runs/qa-lora")
    try:
        *options, unknown = parser.parse_args_and_config(argv, return_remaining_strings=True)
    except ValueError as exc:  # an argument class's own check: bf16 without support, strategies that disagree ...
        raise QAError(f"invalid options: {exc}") from exc
    if unknown:
        raise QAError(unknown_option(unknown, parser))
    return tuple(options)


def unknown_option(unknown: list[str], parser: TrlParser) -> str:
    """What is wrong with options no argument class declares (a preset's keys, or the command line's):
    the first one named, and the known option closest to it."""
    name = next((item for item in unknown if item.startswith("-")), unknown[0])
    flag = "--" + name.lstrip("-").split("=", 1)[0].replace("-", "_")
    known = [option for action in parser._actions for option in action.option_strings if option.startswith("--")]
    close = difflib.get_close_matches(flag, known, n=1)
    hint = f"; did you mean {close[0]}?" if close else "; python train_job/run.py --help lists every option"
    return f"unknown option {name}{hint}"


def error_line(exc: QAError, argv: list[str]) -> str:
    """`exc` as the one `error:` line every command prints, the run's token (--hub-token or HF_TOKEN) hidden."""
    flags = [n for n, arg in enumerate(argv[:-1]) if arg in ("--hub-token", "--hub_token")]
    given = argv[flags[-1] + 1] if flags else None
    return f"error: {one_line(load_settings(None, hf_token=given).redact(str(exc)))}"


if __name__ == "__main__":
    try:
        final_record = main(*parse_args())
        # Every process leaves the job together: one that exits with its process group still open can
        # abort another machine's process still tearing down (gloo, torchrun --nnodes 2).
        PartialState().destroy_process_group()
        if final_record["push_failures"]:  # trained and saved, but not (all) published
            sys.exit(PUSH_FAILED)
    except QAError as exc:
        if int(os.environ.get("RANK", "0")) == 0:  # every process of a job fails alike: one says so
            print(error_line(exc, sys.argv[1:]), file=sys.stderr)
        sys.exit(2)
