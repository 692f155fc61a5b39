"""A Space deployed with `python -m hub deploy`, rehearsed with `python -m hub rehearse`: its files
alone, requirements.txt alone in a fresh environment, app.py started as a Space starts it. Its greedy
answer with a pushed adapter is the one `python -m qa_core ask` gives here (train/serve parity)."""

import json
import os
import subprocess
import sys

import pytest
from huggingface_hub import HfApi

from hub.rehearse import QUESTION
from tests.conftest import HUB_TOKEN
from tests.helpers import ROOT, run_cli

pytestmark = pytest.mark.slow  # trains, installs requirements.txt into a new environment, starts the app


def hub_command(*args: str, env: dict, timeout: float = 1500) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "hub", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture
def hub_env(hub_server):
    return {**os.environ, "HF_ENDPOINT": hub_server.url, "HF_TOKEN": HUB_TOKEN, "HF_HUB_DISABLE_XET": "1"}


def test_the_rehearsed_space_answers_with_the_pushed_adapter_as_ask_does(hub_server, hub_env, tmp_path):
    trained = subprocess.run(
        [sys.executable, "train_job/run.py", "--config", "configs/tiny-cpu.yaml", "--push-to-hub",
         "--hub-repo", "tester/tiny-run", "--output_dir", str(tmp_path / "run"), "--max_steps", "10"],
        cwd=ROOT, env=hub_env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert trained.returncode == 0, trained.stderr[-3000:]
    sha = HfApi(endpoint=hub_server.url, token=HUB_TOKEN).list_repo_commits("tester/tiny-run")[0].commit_id
    adapter = f"tester/tiny-run@{sha}"

    deployed = hub_command(
        "deploy", "tester/qa-space", "--var", "QA_BASE_MODEL=demo", "--var", f"QA_ADAPTER={adapter}",
        "--secret", "HF_TOKEN", "--hardware", "cpu-basic", env=hub_env,
    )  # fmt: skip
    assert deployed.returncode == 0, deployed.stderr
    assert HUB_TOKEN not in deployed.stdout + deployed.stderr
    commit = deployed.stdout.split()[-1]

    rehearsed = hub_command("rehearse", "tester/qa-space", "--json", "--workdir", str(tmp_path / "space"), env=hub_env)
    assert rehearsed.returncode == 0, rehearsed.stderr[-3000:]
    done = json.loads(rehearsed.stdout)
    assert done["commit"] == commit and done["install_s"] > 0
    assert "Net revenue rose to $84.2 million" in done["answers"]["context_qa"]
    assert "84.2 million" in done["answers"]["rag"]
    assert len(done["checks"]) == 3  # adapters locked, documents per visitor, no secret in the page

    ask = ["ask", QUESTION, "--model", "demo", "--max-new-tokens", "16"]
    here = run_cli(*ask, "--adapter", adapter, env={"HF_ENDPOINT": hub_server.url, "HF_TOKEN": HUB_TOKEN})
    assert here.returncode == 0, here.stderr
    assert done["answers"]["qa"] == here.stdout.rstrip("\n")
    base = run_cli(*ask)
    assert base.stdout.rstrip("\n") != done["answers"]["qa"]  # the adapter took effect once served


def test_a_space_that_fails_to_start_is_named_in_one_line(hub_server, hub_env, tmp_path):
    app = tmp_path / "broken"
    (app / "qa_core").mkdir(parents=True)
    (app / "qa_core" / "__init__.py").write_text("")
    (app / "requirements.txt").write_text("# nothing to install\n")
    (app / "README.md").write_text("---\nsdk: gradio\napp_file: app.py\n---\n# broken\n")
    (app / "app.py").write_text("raise RuntimeError('QA_BASE_MODEL points at a model that does not exist')\n")
    assert hub_command("deploy", "tester/broken", "--app-dir", str(app), env=hub_env).returncode == 0

    rehearsed = hub_command("rehearse", "tester/broken", "--workdir", str(tmp_path / "work"), env=hub_env)
    assert rehearsed.returncode == 2
    last = rehearsed.stderr.strip().splitlines()[-1]
    assert last.startswith("error: app.py exited with status 1 before answering: RuntimeError: QA_BASE_MODEL"), last
