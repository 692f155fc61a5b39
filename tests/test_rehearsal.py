"""A Space deployed with `python -m hub deploy`, rehearsed with `python -m hub rehearse`: its files
alone, requirements.txt alone in a fresh environment, app.py started as a Space starts it. Its greedy
answer with a pushed adapter is the one `python -m qa_core ask` gives here (train/serve parity)."""

import os
import subprocess
import sys

import pytest

from hub.rehearse import QUESTION
from tests.conftest import HUB_TOKEN
from tests.documented import documented_commands, run_documented
from tests.helpers import ROOT

pytestmark = pytest.mark.slow  # trains, installs requirements.txt into a new environment, starts the app


def hub_command(*args: str, env: dict, timeout: float = 1500) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "hub", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture
def hub_env(hub_server):
    return {**os.environ, "HF_ENDPOINT": hub_server.url, "HF_TOKEN": HUB_TOKEN, "HF_HUB_DISABLE_XET": "1"}


def test_the_documented_offline_deploy_rehearses_a_space_that_answers_as_ask_does(hub_server):
    """docs/deploy.md's offline trial as written: its own local Hub, a smollm2 adapter trained and
    pushed, the Space deployed pinned to its commit and rehearsed, then `ask` here with that adapter."""
    trial = next(cmd for language, cmd in documented_commands() if language == "script" and "hub rehearse" in cmd)
    assert f'ask "{QUESTION}"' in trial  # the question each rehearsal asks
    done = run_documented("script", trial, ROOT, hub_server.url, HUB_TOKEN)  # the script sets its own Hub
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.strip().splitlines()
    answers = dict(line.split(": ", 1) for line in lines if line.split(":")[0] in ("qa", "context_qa", "rag"))
    assert set(answers) == {"qa", "context_qa", "rag"} and all(answers.values())
    checks = next(line for line in lines if line.startswith("public defaults: ")).split("; ")
    assert len(checks) == 5  # adapters locked, documents per visitor, no secret in the page, the published collection
    assert (
        checks[3]
        == "the published collection tester/rules-index answered a question from benchmarks/data/rule_10b18.txt"
    )
    assert checks[4] == "visitors cannot delete from it"
    assert answers["qa"] == " ".join(lines[-1].split())  # ask's answer here: the served one, word for word


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
