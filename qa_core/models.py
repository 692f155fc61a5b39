"""Load a base model (full precision, 4-bit or 8-bit) with an optional LoRA adapter.

A model is named by a Hub id (`Qwen/Qwen2.5-0.5B-Instruct`, optionally `@revision`), a local
folder, or `demo` (the offline demo model, built on first use). With no name and no
`QA_BASE_MODEL`, the default is `DEFAULT_ONLINE_MODEL` when the Hub is reachable, and the demo
model otherwise. Every kind goes through the same `AutoModelForCausalLM` / `AutoTokenizer` path.

    from qa_core.models import load_model
    loaded = load_model("demo")
    print(loaded.description)
"""

from __future__ import annotations

import contextlib
import importlib.util
import socket
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import torch
from huggingface_hub import constants, try_to_load_from_cache
from peft import PeftModel
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    BitsAndBytesConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from qa_core.checkpoints import STEP, resolve_revision
from qa_core.config import QUANTIZATIONS, Settings, load_settings
from qa_core.demo_model import DEMO_NAME, ensure_demo_model
from qa_core.errors import ModelLoadError
from qa_core.snapshots import download_snapshot, parse_ref, read_checkpoint_record

# Small (0.5 B parameters, about 1 GB in bfloat16), Apache-2.0, not gated, with a chat template,
# and usable on a laptop CPU: a default that works for anyone without a licence click or a GPU.
DEFAULT_ONLINE_MODEL = "Qwen/Qwen2.5-0.5B-Instruct"


@dataclass
class LoadedModel:
    """A model ready for generation, and where exactly it came from."""

    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    name: str
    commit: str | None = None
    adapter: str | None = None
    adapter_commit: str | None = None
    adapter_path: Path | None = None
    quantization: str = "none"
    prompt_style: str | None = None  # the style the adapter was trained with (from its checkpoint record)

    @property
    def is_demo(self) -> bool:
        return self.name == DEMO_NAME

    @property
    def description(self) -> str:
        """One line naming base model, adapter and the commits they were loaded at."""
        text = _with_commit(self.name, self.commit)
        if self.adapter:
            text += f" + adapter {_with_commit(self.adapter, self.adapter_commit)}"
        if self.quantization != "none":
            text += f" ({self.quantization})"
        return text


def _with_commit(name: str, commit: str | None) -> str:
    return f"{name}@{commit[:12]}" if commit else name


def hub_reachable(endpoint: str, timeout: float = 2.0) -> bool:
    """Return True when a TCP connection to the Hub endpoint opens within `timeout` seconds."""
    if constants.HF_HUB_OFFLINE:
        return False
    url = urlsplit(endpoint)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((url.hostname, port), timeout=timeout):
            return True
    except OSError:
        return False


def resolve_model_name(name: str | None, settings: Settings) -> str:
    """Return the model to use: `name`, else QA_BASE_MODEL, else the online default or `demo`.

    The online default is also used offline when it is already in the local Hub cache.
    """
    if name:
        return name
    if settings.base_model:
        return settings.base_model
    cached = try_to_load_from_cache(DEFAULT_ONLINE_MODEL, "config.json")
    if isinstance(cached, str) or hub_reachable(settings.hf_endpoint):
        return DEFAULT_ONLINE_MODEL
    return DEMO_NAME


def resolve_device(device: str) -> torch.device:
    """Map `auto` to the best available accelerator; check that an explicit one exists."""
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ModelLoadError(f"device {device!r} requested but no CUDA GPU is available")
    if device == "mps" and not torch.backends.mps.is_available():
        raise ModelLoadError("device 'mps' requested but Apple MPS is not available")
    return torch.device(device)


def resolve_dtype(dtype: str, device: torch.device) -> torch.dtype:
    """Map `auto` to bfloat16 on GPUs that support it, float16 on other GPUs, float32 on CPU."""
    if dtype != "auto":
        return getattr(torch, dtype)
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float32


def quantization_config(mode: str, compute_dtype: torch.dtype) -> BitsAndBytesConfig | None:
    """Return the bitsandbytes config for `none`, `4bit` (nf4, double quant) or `8bit`.

    Raises:
        ModelLoadError: quantization was asked for but bitsandbytes is not installed.
    """
    if mode == "none":
        return None
    if mode not in QUANTIZATIONS:
        raise ModelLoadError(f"quantization {mode!r} is not one of: {', '.join(QUANTIZATIONS)}")
    if importlib.util.find_spec("bitsandbytes") is None:
        raise ModelLoadError(f"quantization {mode!r} needs bitsandbytes: pip install bitsandbytes")
    if mode == "4bit":
        return BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=compute_dtype,
        )
    return BitsAndBytesConfig(load_in_8bit=True, llm_int8_threshold=6.0)


def locate(spec: str, settings: Settings) -> tuple[Path, str, str | None]:
    """Find the local folder for a model or adapter named `demo`, a folder, or `REPO[@REV]`, where
    REV is a branch, tag, commit or the step of a pushed training checkpoint (`me/run@40`).

    Returns:
        (folder, name without revision, commit sha or None for local folders).
    """
    if spec == DEMO_NAME:
        return ensure_demo_model(settings.cache_dir), DEMO_NAME, None
    if Path(spec).expanduser().is_dir():
        return Path(spec).expanduser(), spec, None
    repo_id, revision = parse_ref(spec)
    if Path(repo_id).expanduser().is_dir():
        raise ModelLoadError(f"{spec}: a revision (@{revision}) only applies to Hub repos, not folders")
    if repo_id.startswith((".", "/", "~")) or repo_id.count("/") > 1:
        raise ModelLoadError(f"{spec}: no such folder")
    if revision and STEP.match(revision):  # a training step: the commit of that checkpoint
        revision = resolve_revision(repo_id, revision, settings)
    snapshot = download_snapshot(repo_id, revision, settings)
    return snapshot.path, repo_id, snapshot.commit


def load_tokenizer(folder: Path) -> PreTrainedTokenizerBase:
    """Load the tokenizer in `folder`, padded on the left as batched generation needs."""
    tokenizer = AutoTokenizer.from_pretrained(folder)
    if tokenizer.pad_token is None:  # Llama-2 and Mistral ship without one
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    return tokenizer


def load_model(
    model: str | None = None,
    adapter: str | None = None,
    settings: Settings | None = None,
    *,
    quantization: str | None = None,
    device: str | None = None,
    dtype: str | None = None,
    attn_implementation: str | None = None,
) -> LoadedModel:
    """Load `model` (see `resolve_model_name`) with an optional LoRA `adapter` (`PATH_OR_REPO[@REV]`).

    Arguments left as None fall back to `settings` (QA_* variables); `attn_implementation` to
    transformers' choice (sdpa where available).

    Returns:
        The `LoadedModel`, in eval mode, with commits recorded for Hub sources.

    Raises:
        ModelLoadError: the model or adapter cannot be found or loaded, or the requested
            device / quantization is not available on this machine.
    """
    settings = settings or load_settings()
    name = resolve_model_name(model, settings)
    adapter = adapter or settings.adapter
    mode = quantization or settings.quantization
    torch_device = resolve_device(device or settings.device)
    torch_dtype = resolve_dtype(dtype or settings.dtype, torch_device)

    folder, name, commit = locate(name, settings)
    try:
        tokenizer = load_tokenizer(folder)
        base = AutoModelForCausalLM.from_pretrained(
            folder,
            dtype=torch_dtype,
            quantization_config=quantization_config(mode, torch_dtype),
            device_map={"": str(torch_device)},
            **({"attn_implementation": attn_implementation} if attn_implementation else {}),
        )
    except ModelLoadError:
        raise
    except Exception as exc:
        where = f" in {mode}" if mode != "none" else ""
        raise ModelLoadError(f"cannot load {name}{where} on {torch_device}: {exc}") from exc

    loaded = LoadedModel(model=base, tokenizer=tokenizer, name=name, commit=commit, quantization=mode)
    if adapter:
        attach_adapter(loaded, adapter, settings)
    loaded.model.eval()
    return loaded


@contextlib.contextmanager
def adapter_off(loaded: LoadedModel) -> Iterator[None]:
    """Run the base model alone inside the block (a no-op without an adapter)."""
    with loaded.model.disable_adapter() if loaded.adapter else contextlib.nullcontext():
        yield


def attach_adapter(loaded: LoadedModel, adapter: str, settings: Settings) -> None:
    """Attach the LoRA `adapter` (`PATH_OR_REPO[@REV]`) to `loaded`, replacing any adapter it has,
    without reloading the base model.

    Raises:
        ModelLoadError: the adapter cannot be found, is not a PEFT adapter, or does not fit the base.
    """
    folder, name, commit = locate(adapter, settings)
    attach_adapter_folder(loaded, folder, name, commit)


def attach_adapter_folder(loaded: LoadedModel, folder: Path, name: str, commit: str | None = None) -> None:
    """Attach the adapter in `folder` (recorded as `name` at `commit`), replacing any adapter it has.

    Raises:
        ModelLoadError: not a PEFT adapter, or it does not fit the base.
    """
    if not (folder / "adapter_config.json").is_file():
        raise ModelLoadError(f"{name}: not a PEFT adapter (no adapter_config.json)")
    try:
        if isinstance(loaded.model, PeftModel):
            previous, fresh = loaded.model.active_adapter, f"adapter_{uuid.uuid4().hex[:8]}"
            loaded.model.load_adapter(folder, adapter_name=fresh)
            loaded.model.set_adapter(fresh)
            loaded.model.delete_adapter(previous)
        else:
            loaded.model = PeftModel.from_pretrained(loaded.model, folder)
    except Exception as exc:
        raise ModelLoadError(f"cannot attach adapter {name} to {loaded.name}: {exc}") from exc
    loaded.model.eval()
    loaded.adapter, loaded.adapter_commit, loaded.adapter_path = name, commit, folder
    loaded.prompt_style = read_checkpoint_record(folder).get("prompt_style")
