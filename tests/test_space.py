"""The repository as a Hugging Face Space and as an installed project: what a Space build does
(requirements.txt alone, before the code is there), its front matter, and ZeroGPU's rules."""

import json
import os
import shutil
import subprocess
import sys
from importlib.metadata import requires

import gradio
import pytest
from huggingface_hub import metadata_load
from packaging.requirements import Requirement

from qa_core.config import load_settings
from tests.helpers import ROOT

pytestmark = pytest.mark.slow  # see pyproject.toml: the fast tier is pytest -m "not slow"

ZERO_GPU_PYTHONS = ("3.10", "3.12")  # the only versions ZeroGPU hardware accepts


def requirement_lines() -> list[str]:
    lines = (ROOT / "requirements.txt").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def test_requirements_install_alone_in_an_empty_folder(tmp_path):
    """A Space runs `pip install -r requirements.txt` before the repository's code is copied in."""
    shutil.copy(ROOT / "requirements.txt", tmp_path)
    result = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--dry-run", "--quiet", "-r", "requirements.txt"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert all(not line.startswith("-") for line in requirement_lines())  # no -e . / -r: plain requirements


def test_the_installed_project_declares_exactly_requirements_txt():
    declared = {str(Requirement(r)) for r in requires("qa-toolkit")}
    wanted = {str(Requirement(line)) for line in requirement_lines()}
    assert declared == wanted, "requirements.txt changed since the install: run pip install -e ."


def test_training_script_runs_from_another_folder(tmp_path):
    """`python train_job/run.py` finds qa_core and hub through the installed project, not the cwd."""
    result = subprocess.run(
        [sys.executable, str(ROOT / "train_job" / "run.py"), "--help"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "--push_every" in result.stdout or "--push-every" in result.stdout


def test_space_front_matter_fits_its_hardware():
    front = metadata_load(ROOT / "README.md")
    assert front["sdk"] == "gradio" and front["sdk_version"] == gradio.__version__
    assert (ROOT / front["app_file"]).is_file()
    readme = (ROOT / "README.md").read_text()
    if "ZeroGPU" in readme or front.get("suggested_hardware", "").startswith("zero"):
        assert front["python_version"] in ZERO_GPU_PYTHONS


FAKE_SPACES = """
import sys
TORCH_BEFORE = sorted(m for m in ("torch", "transformers") if m in sys.modules)
DECORATED = []

def GPU(fn):
    DECORATED.append(fn.__name__)
    return fn
"""

PROBE = """
import json, sys
import app, spaces
from qa_core.config import load_settings
from qa_core.serving import QAService
app.build_app(QAService(load_settings(None, base_model="demo")))
print(json.dumps({"imported_before_spaces": spaces.TORCH_BEFORE, "on_gpu": sorted(spaces.DECORATED)}))
"""


def test_zero_gpu_imports_spaces_first_and_decorates_only_generation(tmp_path):
    """On ZeroGPU, `spaces` must come before anything that can initialise CUDA, and a decorated
    function runs in a forked worker: loading an adapter there would be lost, so it is not decorated.
    (`spaces` is replaced by a recorder here: ZeroGPU itself exists only on Hugging Face.)"""
    (tmp_path / "spaces").mkdir()
    (tmp_path / "spaces" / "__init__.py").write_text(FAKE_SPACES)
    result = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)])},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert seen == {"imported_before_spaces": [], "on_gpu": ["compare", "context_qa", "qa", "rag"]}


def test_zero_gpu_places_the_model_on_cuda(monkeypatch):
    monkeypatch.setenv("SPACES_ZERO_GPU", "true")
    assert load_settings(None).device == "cuda"
    monkeypatch.setenv("QA_DEVICE", "cpu")  # the operator's choice still wins
    assert load_settings(None).device == "cpu"
