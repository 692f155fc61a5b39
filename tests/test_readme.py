"""Every command of the README and of the docs/ pages it links that can run offline runs as written,
so the documentation cannot drift from the code. Commands run in order (the README, then each page
in the order the README links it; a command already run is not run again) in a scratch folder
holding the files they name
(reports/, policy.pdf, faq.csv, policy.txt) and links to the repository's folders they use; those
that talk to the Hub get the test Hub server as HF_ENDPOINT, the others a closed port (offline).
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import HUB_TOKEN
from tests.helpers import ROOT, write_pdf

pytestmark = pytest.mark.slow  # see pyproject.toml: the fast tier is pytest -m "not slow"

FENCE = re.compile(r"^```(bash|python)\n(.*?)^```", re.MULTILINE | re.DOTALL)
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
}
DOC_LINK = re.compile(r"\]\((docs/[\w-]+\.md)\)")


def documents() -> list[Path]:
    """The README, then each docs/ page in the order the README first links it."""
    linked = dict.fromkeys(DOC_LINK.findall((ROOT / "README.md").read_text()))
    return [ROOT / "README.md", *(ROOT / page for page in linked)]


HUB_COMMAND = re.compile(r"your-name/|--push-to-hub|-m hub |tests\.hub_server")


def readme_commands() -> list[tuple[str, str]]:
    """(language, command) for every bash command (continuation lines joined) and python block, once."""
    found = []
    blocks = [block for document in documents() for block in FENCE.findall(document.read_text())]
    for language, body in blocks:
        if language == "python":
            found.append(("python", body))
        elif "hub.local_server" in body or "transformers serve" in body:  # starts a server in the background
            found.append(("script", body))
        else:
            joined = re.sub(r"\\\n\s*", "", body)
            lines = [line.strip() for line in joined.splitlines()]
            found += [("bash", line) for line in lines if line and not line.startswith("#")]
    return list(dict.fromkeys(found))


def skip_reason(command: str) -> str | None:
    return next((why for pattern, why in SKIPPED.items() if re.search(pattern, command, re.MULTILINE)), None)


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """A scratch folder with the files the README's commands name."""
    for folder in ("configs", "qa_core", "train_job", "tests", "benchmarks"):
        (tmp_path / folder).symlink_to(ROOT / folder)
    (tmp_path / "reports").mkdir()
    (tmp_path / "reports" / "q3.txt").write_text(
        "Northwind Bank Q3 report. The CET1 ratio at year end was 14.2 percent, up from 13.8 percent.\n"
    )
    (tmp_path / "reports" / "q2.txt").write_text("Northwind Bank Q2 report. Net interest income rose 4 percent.\n")
    write_pdf(tmp_path / "policy.pdf", ["A personal data breach must be reported within 72 hours."], "Data policy")
    (tmp_path / "faq.csv").write_text(
        "question,answer\nWhat is a bond?,A debt security.\nWhat is CET1?,Common equity tier 1 capital.\n"
    )
    (tmp_path / "policy.txt").write_text("A personal data breach must be reported to the regulator within 72 hours.\n")
    return tmp_path


def test_every_offline_readme_command_runs_as_written(workspace, hub_server):
    commands = readme_commands()
    offline = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "HF_TOKEN")}
    online = {**offline, "HF_ENDPOINT": hub_server.url, "HF_TOKEN": HUB_TOKEN, "HF_HUB_DISABLE_XET": "1"}
    ran, failures = 0, []
    for language, command in commands:
        if skip_reason(command):
            continue
        env = online if HUB_COMMAND.search(command) else offline
        if language == "python":
            argv = [sys.executable, "-c", command]
        elif language == "script":  # stop what it started in the background when it ends
            argv = ["bash", "-ec", "trap 'kill $(jobs -p) 2>/dev/null' EXIT\n" + command]
        else:
            argv = ["bash", "-ec", command]
        # the longest, smollm2 trained and evaluated with the local Hub, takes about 8 minutes on 2 cores
        result = subprocess.run(argv, cwd=workspace, env=env, capture_output=True, text=True, timeout=1200)
        ran += 1
        if result.returncode != 0:
            failures.append(f"$ {command}\nexit {result.returncode}\n{result.stderr[-1500:]}")
    assert not failures, "\n\n".join(failures)
    assert ran >= 40, f"only {ran} documented commands ran; did the code blocks change shape?"


def test_every_page_the_readme_links_exists_and_is_linked():
    pages = documents()[1:]
    assert all(page.is_file() for page in pages), [str(p) for p in pages if not p.is_file()]
    assert set(pages) == set((ROOT / "docs").glob("*.md")), "a docs/ page the README does not link"
    assert len((ROOT / "README.md").read_text().splitlines()) < 300
