"""Every command of the README and of the docs/ pages it links that can run offline runs as written,
so the documentation cannot drift from the code (how they are run: tests/documented.py)."""

import re

import pytest

from tests.conftest import HUB_TOKEN
from tests.documented import (
    documented_commands,
    documents,
    prepare_folder,
    run_documented,
    walkthrough_command,
)
from tests.helpers import ROOT

pytestmark = pytest.mark.slow  # see pyproject.toml: the fast tier is pytest -m "not slow"

# What cannot run here, and why: each is exercised elsewhere or needs what this machine lacks.
SKIPPED = {
    r"^pip install": "installs packages (.ci/run does)",
    r"^bash tests/setup\.sh|^python -m pytest": "the test suite itself",
    r"python app\.py": "serves until stopped (tests/test_app.py starts the app)",
    r"^docker ": "no Docker engine on these machines",
    r"^vllm ": "vLLM needs a GPU",
    r"^accelerate launch": "two training processes: tests/test_train.py and tests/test_scale_out.py",
    r"^torchrun ": "one machine of a two-machine job: tests/test_scale_out.py starts both",
    r"NousResearch/|mistralai/|Qwen/": "downloads a real model from the Hub",
    r"llama2-qna-": "Llama-2-7b-chat in 4-bit: a GPU and a download",
    r"filings\.csv|policy_qa\.csv": "the user's own data",
    r"Client\(": "needs a running app: tests/test_app.py calls every endpoint with gradio_client",
    r"hub rehearse": "a fresh environment and a deployed Space: tests/test_rehearsal.py",
    r"benchmarks\.not_stated": "trains three ways and evaluates each (~30 min): its figures are in the walk-through",
    r"smollm2-cpu-dpo\.yaml": "the preference stage on smollm2 (~10 min): tests/test_smollm2.py runs it for two steps",
}


def skip_reason(command: str) -> str | None:
    return next((why for pattern, why in SKIPPED.items() if re.search(pattern, command, re.MULTILINE)), None)


def test_every_offline_readme_command_runs_as_written(hub_server, tmp_path):
    folder, walkthrough = prepare_folder(tmp_path), walkthrough_command()
    ran, failures = 0, []
    for language, command in documented_commands():
        if skip_reason(command) or (language, command) == walkthrough:
            continue
        result = run_documented(language, command, folder, hub_server.url, HUB_TOKEN)
        ran += 1
        if result.returncode != 0:
            failures.append(f"$ {command}\nexit {result.returncode}\n{result.stderr[-1500:]}")
    assert not failures, "\n\n".join(failures)
    assert ran >= 40, f"only {ran} documented commands ran; did the code blocks change shape?"


def test_the_walkthrough_runs_as_written(walkthrough_adapter):
    # It runs once per session (tests/conftest.py), and the smollm2 tests score the adapter it trained.
    assert (walkthrough_adapter / "adapter_config.json").is_file()


def test_every_page_the_readme_links_exists_and_is_linked():
    pages = documents()[1:]
    assert all(page.is_file() for page in pages), [str(p) for p in pages if not p.is_file()]
    assert set(pages) == set((ROOT / "docs").glob("*.md")), "a docs/ page the README does not link"
    assert len((ROOT / "README.md").read_text().splitlines()) < 300
