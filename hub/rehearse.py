"""Rehearse a Space's build and start on this machine, as the Hub would run it.

    python -m hub rehearse your-name/domain-qa
    python -m hub rehearse your-name/domain-qa --revision 3f2a1c9 --workdir /tmp/rehearsal

1. The Space's files at the deployed commit, alone in an empty folder (nothing of this checkout).
2. `requirements.txt` alone, installed into a fresh virtual environment (several minutes the first
   time; `--workdir` keeps it, and it is reused while requirements.txt is unchanged).
3. `app.py` started with the environment a Space gives it: SPACE_ID, SPACE_AUTHOR_NAME,
   SPACE_REPO_NAME, SPACE_HOST, SYSTEM=spaces, its port, the Space's variables as the Hub lists them,
   and its secrets (their values come from this machine's environment or `.env`: the Hub never gives
   them back). HF_ENDPOINT is the Hub the Space was deployed to.
4. One question per tab through `gradio_client` (QA, context QA, an upload and a RAG question), then
   the defaults a public Space needs: visitors cannot load adapters, one visitor's documents are not
   another's, and no secret appears in the page or its API description. With QA_COLLECTION_REPO, a
   fresh visitor asks a question only the published collection answers, and cannot delete from it.

The QA answer is printed, so it can be compared with `python -m qa_core ask` on this machine (the
same model, adapter and greedy settings give the same words). What fails is one `error:` line.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from huggingface_hub import snapshot_download
from tqdm import tqdm

from qa_core.config import Settings
from qa_core.errors import DeployError
from qa_core.hub.client import api, call
from qa_core.hub.spaces import read_secret
from qa_core.ports import free_port

DOCUMENT = (
    "Northwind Capital's 2024 annual report. Net revenue rose to $84.2 million in 2024. "
    "The board approved a dividend of 12 cents per share, payable in March 2025."
)
QUESTION = "What was Northwind Capital's net revenue in 2024?"
STEPS = ("downloading the Space's files", "installing requirements.txt", "starting app.py", "asking each tab")


@dataclass(frozen=True)
class Rehearsal:
    """What the rehearsed Space did: where, how long each stage took, and what each tab answered."""

    space_id: str
    commit: str
    install_s: float
    start_s: float
    answers: dict[str, str]
    checks: list[str]


def download_space(space_id: str, revision: str | None, settings: Settings, target: Path) -> str:
    """Put the Space's files at `revision` (default: its head) alone in `target`; returns the commit."""
    hub = api(settings)
    commit = call(lambda: hub.space_info(space_id, revision=revision).sha, settings, space_id, revision)
    if target.exists():
        for path in sorted(target.rglob("*"), reverse=True):  # empty, so nothing of another commit stays
            path.unlink() if path.is_file() or path.is_symlink() else path.rmdir()
    call(
        lambda: snapshot_download(
            space_id, repo_type="space", revision=commit, local_dir=target, endpoint=settings.hf_endpoint,
            token=settings.hub_token,
        ),
        settings,
        space_id,
        commit,
    )  # fmt: skip
    return commit


def fresh_environment(requirements: Path, venv: Path) -> float:
    """Install `requirements` alone into a new virtual environment at `venv`, as a Space's build does;
    one made before from the same file is reused. Returns the seconds the install took (0 if reused).

    Raises:
        DeployError: the requirements do not install; the message ends with pip's last error line.
    """
    digest = hashlib.sha256(requirements.read_bytes()).hexdigest()
    stamp = venv / "requirements.sha256"
    if stamp.is_file() and stamp.read_text() == digest:
        return 0.0
    started = time.monotonic()
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
    result = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "-r", str(requirements)],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        errors = [line for line in result.stderr.splitlines() if line.strip()]
        raise DeployError(f"requirements.txt does not install in an empty environment: {errors[-1] if errors else ''}")
    stamp.write_text(digest)
    return time.monotonic() - started


def space_environment(
    space_id: str, port: int, home: Path, variables: dict[str, str], secrets: dict[str, str], settings: Settings
) -> dict[str, str]:
    """The environment a Space starts `app.py` in: nothing of this shell's but PATH."""
    author, name = space_id.split("/")
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "PYTHONUNBUFFERED": "1",
        "SYSTEM": "spaces",
        "SPACE_ID": space_id,
        "SPACE_AUTHOR_NAME": author,
        "SPACE_REPO_NAME": name,
        "SPACE_HOST": f"{author}-{name}.hf.space".lower().replace("_", "-"),
        "GRADIO_SERVER_NAME": "127.0.0.1",  # a Space listens on 0.0.0.0; a rehearsal stays on loopback
        "GRADIO_SERVER_PORT": str(port),
        "HF_ENDPOINT": settings.hf_endpoint,  # the Hub the Space was deployed to
        **variables,
        **secrets,
    }


def start_app(space_dir: Path, python: Path, env: dict[str, str], log: Path, timeout: float) -> subprocess.Popen:
    """Start `app.py` and wait until its page answers.

    Raises:
        DeployError: it exited first (with its last error line) or did not answer within `timeout`.
    """
    with log.open("w") as out:
        process = subprocess.Popen(
            [str(python), "app.py"], cwd=space_dir, env=env, stdout=out, stderr=subprocess.STDOUT
        )
    url = f"http://127.0.0.1:{env['GRADIO_SERVER_PORT']}/"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            lines = [line for line in log.read_text().splitlines() if line.strip()] or [""]
            status = process.returncode
            raise DeployError(f"app.py exited with status {status} before answering: {lines[-1]} (log: {log})")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return process
        except OSError:
            time.sleep(0.5)
    stop_app(process)
    raise DeployError(f"app.py did not answer on {url} within {timeout:.0f} s (log: {log})")


def stop_app(process: subprocess.Popen) -> None:
    """SIGTERM, as a Space stopping a replica sends; killed if it has not ended after 30 s."""
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def ask_each_tab(url: str, document: Path, max_new_tokens: int) -> dict[str, str]:
    """One question per tab through gradio_client; returns each tab's answer.

    Raises:
        DeployError: a tab failed or came back empty.
    """
    from gradio_client import Client, handle_file

    client = Client(url, verbose=False)
    calls = {
        "qa": lambda: client.predict(QUESTION, max_new_tokens, 0.0, api_name="/qa"),
        "context_qa": lambda: client.predict(
            QUESTION, DOCUMENT, None, max_new_tokens, "extractive", api_name="/context_qa"
        )[0],
        "ingest": lambda: client.predict([handle_file(str(document))], api_name="/ingest")[0],
        "rag": lambda: client.predict(QUESTION, "extractive", 3, False, max_new_tokens, api_name="/rag"),
    }
    answers = {}
    for tab, ask in calls.items():
        try:
            answers[tab] = ask()
        except Exception as exc:
            raise DeployError(f"the Space's {tab} endpoint failed: {type(exc).__name__}: {exc}") from exc
        if not str(answers[tab]).strip():
            raise DeployError(f"the Space's {tab} endpoint answered nothing")
    answer, sources, *_ = answers["rag"]
    if document.name not in sources:
        raise DeployError(f"the Space's rag endpoint did not cite the uploaded {document.name}: {sources!r}")
    answers["rag"] = answer
    return answers


def check_public_defaults(url: str, variables: dict[str, str], secrets: dict[str, str]) -> list[str]:
    """The defaults a public Space needs, checked on the running app; returns what was checked.

    Raises:
        DeployError: one of them does not hold.
    """
    from gradio_client import Client

    checked = []
    if "QA_ALLOW_ADAPTER_LOAD" not in variables:
        try:
            Client(url, verbose=False).predict("someone/any-adapter", "", api_name="/load_adapter")
        except Exception as exc:
            if "turned off" not in str(exc):
                raise DeployError(f"loading an adapter failed in an unexpected way: {exc}") from exc
        else:
            raise DeployError("a visitor could load an adapter on this Space: QA_ALLOW_ADAPTER_LOAD should be off")
        checked.append("visitors cannot load adapters")
    if "QA_SHARED_COLLECTION" not in variables:
        if Client(url, verbose=False).predict(api_name="/documents")["data"]:
            raise DeployError("a new visitor sees another visitor's documents: collections should be per session")
        checked.append("a new visitor sees no other visitor's documents")
    pages = [url, f"{url}config", f"{url}gradio_api/info"]
    for page in pages:
        with urllib.request.urlopen(page, timeout=30) as answer:
            text = answer.read().decode("utf-8", "replace")
        leaked = [name for name, value in secrets.items() if value in text]
        if leaked:
            raise DeployError(f"the value of secret {leaked[0]} is in {page}")
    checked.append(f"no secret value in {len(pages)} pages")
    return checked


def check_published_collection(url: str, spec: str, settings: Settings) -> str:
    """A fresh visitor asks a question only the published collection `spec` answers, and cannot
    delete its documents; returns what was checked.

    Raises:
        DeployError: the answer does not cite the collection, or a visitor could delete from it.
    """
    from gradio_client import Client

    from qa_core.rag.published import sample_question

    repo_id = spec.split("@")[0]
    question, source = sample_question(spec, settings)
    visitor = Client(url, verbose=False)
    answer, sources, *_ = visitor.predict(question, "extractive", 3, False, 64, api_name="/rag")
    if f"{source}" not in sources or f"· {repo_id}" not in sources:
        raise DeployError(f"asked {question!r}, the Space did not cite {source} of {repo_id}: {sources!r}")
    try:
        visitor.predict(source, api_name="/delete_document")
    except Exception as exc:
        if "read-only" not in str(exc):
            raise DeployError(f"deleting a published document failed in an unexpected way: {exc}") from exc
    else:
        raise DeployError(f"a visitor deleted {source} from the published collection {repo_id}")
    return f"the published collection {repo_id} answered a question from {source}; visitors cannot delete from it"


def rehearse(
    space_id: str,
    settings: Settings,
    workdir: Path | None = None,
    revision: str | None = None,
    env_file: str | os.PathLike | None = ".env",
    max_new_tokens: int = 16,
    start_timeout: float = 600.0,
) -> Rehearsal:
    """Build and start the Space `space_id` here as the Hub would, and ask each tab a question.

    Returns:
        The commit rehearsed, the install and start times, each tab's answer and the defaults checked.

    Raises:
        DeployError: a stage failed; the message names it.
        HubError: the Space cannot be read from the Hub.
    """
    workdir = Path(workdir or tempfile.mkdtemp(prefix="space-rehearsal-"))
    home = workdir / "home"
    home.mkdir(parents=True, exist_ok=True)
    hub = api(settings)
    with tqdm(STEPS, desc=f"rehearsing {space_id}", unit="step", file=sys.stderr) as progress:
        progress.set_postfix_str(STEPS[0])
        commit = download_space(space_id, revision, settings, workdir / "space")
        variables = {k: v.value for k, v in call(lambda: hub.get_space_variables(space_id), settings, space_id).items()}
        names = call(lambda: hub.get_space_secrets(space_id), settings, space_id)
        secrets = {name: read_secret(name, env_file) for name in names}
        progress.update()
        progress.set_postfix_str(STEPS[1])
        install_s = fresh_environment(workdir / "space" / "requirements.txt", workdir / "venv")
        progress.update()
        progress.set_postfix_str(STEPS[2])
        port = free_port()
        env = space_environment(space_id, port, home, variables, secrets, settings)
        started = time.monotonic()
        python = workdir / "venv" / "bin" / "python"
        process = start_app(workdir / "space", python, env, workdir / "app.log", start_timeout)
        try:
            start_s = time.monotonic() - started
            progress.update()
            progress.set_postfix_str(STEPS[3])
            url = f"http://127.0.0.1:{port}/"
            document = workdir / "annual-report.txt"
            document.write_text(DOCUMENT)
            answers = ask_each_tab(url, document, max_new_tokens)
            checks = check_public_defaults(url, variables, secrets)
            if variables.get("QA_COLLECTION_REPO"):
                checks.append(check_published_collection(url, variables["QA_COLLECTION_REPO"], settings))
            progress.update()
        finally:
            stop_app(process)
    return Rehearsal(space_id, commit, install_s, start_s, answers, checks)
