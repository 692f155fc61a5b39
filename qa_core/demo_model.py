"""The offline demo model: a tiny Llama built locally so that everything runs without a download.

Its tokenizer is a byte-level BPE trained with `tokenizers` on the sample data the project
ships; its weights are random (seeded, so every machine builds the same model). It is
untrained: it exercises the real loading, generation, training and merging code paths in
seconds on a CPU, but its answers are meaningless. It is saved as an ordinary Hugging Face model
folder and loaded through `AutoModelForCausalLM` / `AutoTokenizer` like any other.

    python -m qa_core.demo_model      # builds it in QA_CACHE_DIR if needed and prints its folder
    python -c "from qa_core.demo_model import build_demo_model; build_demo_model('/tmp/demo')"
"""

from __future__ import annotations

import csv
import os
import shutil
import tempfile
from importlib import resources
from pathlib import Path

import torch
from filelock import FileLock
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

DEMO_NAME = "demo"
# Bump when the recipe below changes, so that old cached builds are not reused.
DEMO_VERSION = 1
SPECIAL_TOKENS = ["<unk>", "<s>", "</s>", "<pad>"]
CHAT_TEMPLATE = (
    "{% for message in messages %}<|{{ message['role'] }}|>\n{{ message['content'] }}</s>\n"
    "{% endfor %}{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)
DEMO_NOTICE = (
    "Using the offline demo model: a tiny, untrained Llama built locally, so its answers are "
    "meaningless. Point at a real model with --model ID_OR_PATH or QA_BASE_MODEL "
    "(e.g. smollm2 offline, or Qwen/Qwen2.5-0.5B-Instruct)."
)


def sample_data_path() -> Path:
    """Return the path of the bundled sample QA CSV (question, answer, evidence_text, doc_name)."""
    return Path(str(resources.files("qa_core") / "resources" / "sample_qa.csv"))


def _training_texts() -> list[str]:
    with sample_data_path().open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    texts = [" ".join(row.values()) for row in rows]
    # Prompt scaffolding, so that templates tokenize into a few tokens rather than bytes.
    texts += [
        "Answer the following question:\nQuestion: \n---\nAnswer: Context: ",
        "### Instruction:\n### Input:\n### Response:\n [INST] <<SYS>> <</SYS>> [/INST]",
        "<|system|>\n<|user|>\n<|assistant|>\n",
    ]
    return texts


def build_tokenizer(vocab_size: int = 1000) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE tokenizer on the bundled text; any input text can be encoded."""
    bpe = Tokenizer(models.BPE(unk_token="<unk>"))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(_training_texts(), trainer)
    bos_id = bpe.token_to_id("<s>")
    bpe.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", bos_id)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        pad_token="<pad>",
        chat_template=CHAT_TEMPLATE,
        model_max_length=2048,
    )


def build_demo_model(
    out_dir: str | os.PathLike,
    tie_word_embeddings: bool = False,
    seed: int = 0,
    hidden_size: int = 128,
    num_hidden_layers: int = 2,
) -> Path:
    """Build the demo tokenizer and a randomly initialised tiny Llama into `out_dir`.

    `tie_word_embeddings` chooses whether lm_head shares the input embedding matrix (as many
    small models do) or not (as Llama-2 does); both kinds matter when merging a trained head.
    `hidden_size` and `num_hidden_layers` make larger variants, e.g. for benchmarks that should
    be bound by compute rather than by per-step overhead.

    Returns:
        `out_dir` as a Path, holding a folder loadable with `from_pretrained`.
    """
    tokenizer = build_tokenizer()
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        num_hidden_layers=num_hidden_layers,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=2048,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=tie_word_embeddings,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    out = Path(out_dir)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def ensure_demo_model(cache_dir: str | os.PathLike) -> Path:
    """Return the folder of the cached demo model, building it first if it is not there yet.

    The model is built in a temporary folder and renamed into place, so an interrupted build never
    leaves a half-written model behind; processes that start at once (the ranks of a training job)
    wait for the one that builds it.
    """
    target = Path(cache_dir) / f"demo-model-v{DEMO_VERSION}"
    if (target / "config.json").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(target.parent / ".demo-build.lock"):
        if (target / "config.json").is_file():  # built while this process waited
            return target
        shutil.rmtree(target, ignore_errors=True)  # what an interrupted build could leave
        staging = Path(tempfile.mkdtemp(prefix=".demo-build-", dir=target.parent))
        try:
            build_demo_model(staging)
            staging.rename(target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return target


def random_adapter(base_dir: Path, out: Path, seed: int = 0, train_head: bool = False) -> Path:
    """Save a LoRA adapter for the model in `base_dir` with non-zero (seeded) weights, so that
    attaching it changes the output, and return `out`; with `train_head`, lm_head is changed too
    (modules_to_save). The benchmarks and tests load, push and serve such adapters without training."""
    from peft import LoraConfig, get_peft_model  # only the benchmarks and tests make such adapters

    torch.manual_seed(seed)
    config = LoraConfig(
        r=8,
        lora_alpha=16,
        target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
        init_lora_weights=False,
        modules_to_save=["lm_head"] if train_head else None,
    )
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(base_dir), config)
    if train_head:
        with torch.no_grad():
            head = model.base_model.model.lm_head.modules_to_save["default"].weight
            head.add_(torch.randn_like(head) * 0.5)
    model.save_pretrained(out)
    return out


if __name__ == "__main__":
    from qa_core.config import load_settings

    print(ensure_demo_model(load_settings().cache_dir))
