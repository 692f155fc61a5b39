"""`python -m hub deploy`: exactly the Space's files in one commit, its variables, secrets and hardware
through the real Hub client, and every refusal as one line that changes nothing on the Hub."""

import re
import shutil

import pytest
from huggingface_hub import HfApi, snapshot_download

from hub.cli import main as hub_main
from qa_core.config import load_settings
from qa_core.demo_model import random_adapter
from qa_core.hub.checkpoints import push_checkpoint
from tests.conftest import HUB_READ_TOKEN, HUB_TOKEN
from tests.helpers import ROOT

SPACE_FILES = {"app.py", "requirements.txt", "README.md"}


@pytest.fixture
def checkout(tmp_path):
    """The project's Space files plus what a working checkout also holds and a Space must never get."""
    root = tmp_path / "checkout"
    root.mkdir()
    for name in SPACE_FILES:
        shutil.copy(ROOT / name, root / name)
    shutil.copytree(ROOT / "qa_core", root / "qa_core", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "docs", root / "docs")  # the pages the README links: readable on the Space
    junk = {
        "tests/test_x.py": "x = 1\n",
        "benchmarks/b.py": "y = 2\n",
        ".ci/run": "echo\n",
        ".env": f"HF_TOKEN={HUB_TOKEN}\n",
        "qa_core/.env": f"HF_TOKEN={HUB_TOKEN}\n",
        "results/results.json": "{}\n",
        "runs/tiny/adapter_config.json": "{}\n",
        "hub-data/blobs/abc": "blob\n",
        "qa_core/__pycache__/config.cpython-311.pyc": "compiled\n",
    }
    for name, text in junk.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def deploy(capsys, hub_server, root, *args, token=HUB_TOKEN):
    """Run `python -m hub deploy` in this process; returns (exit status, stdout, stderr)."""
    argv = ["deploy", *args, "--app-dir", str(root), "--env-file", str(root / "no.env")]
    argv += ["--hub-endpoint", hub_server.url] + (["--hub-token", token] if token else [])
    status = hub_main(argv)
    out, err = capsys.readouterr()
    return status, out, err


def space_api(hub_server) -> HfApi:
    return HfApi(endpoint=hub_server.url, token=HUB_TOKEN)


def expected_files(root) -> set[str]:
    library = {p.relative_to(root).as_posix() for p in (root / "qa_core").rglob("*") if p.is_file()}
    docs = {p.relative_to(root).as_posix() for p in (root / "docs").glob("*.md")}
    return SPACE_FILES | docs | {n for n in library if "__pycache__" not in n and not n.endswith(".env")}


def test_a_deploy_is_one_commit_of_exactly_the_space_files_with_its_settings(
    capsys, hub_server, checkout, monkeypatch, tmp_path
):
    monkeypatch.setenv("HF_TOKEN", HUB_TOKEN)  # the secret's value comes from the environment
    asked_before = len(hub_server.requests)
    status, out, err = deploy(
        capsys, hub_server, checkout, "tester/qa-space", "--var", "QA_BASE_MODEL=demo",
        "--var", "QA_ADAPTER=tester/run@abc1234", "--secret", "HF_TOKEN", "--hardware", "cpu-basic",
    )  # fmt: skip
    assert status == 0, err
    assert HUB_TOKEN not in out + err
    assert sum("/api/repos/create" in line for line in hub_server.requests[asked_before:]) == 1  # was asked twice
    hub = space_api(hub_server)
    commits = hub.list_repo_commits("tester/qa-space", repo_type="space")
    assert [c.title for c in commits] == ["Deploy the app", "initial commit"]
    assert out.splitlines()[-1] == f"commit {commits[0].commit_id}"
    assert out.splitlines()[0] == f"{hub_server.url}/spaces/tester/qa-space"
    files = set(hub.list_repo_files("tester/qa-space", repo_type="space"))
    assert files == expected_files(checkout) | {".gitattributes"}
    assert "qa_core/resources/sample_qa.csv" in files  # what app.py reads at run time comes along
    assert "docs/app.md" in files  # the README's links work on the Space's page
    assert hub.space_info("tester/qa-space").sdk == "gradio"
    variables = {k: v.value for k, v in hub.get_space_variables("tester/qa-space").items()}
    assert variables == {"QA_BASE_MODEL": "demo", "QA_ADAPTER": "tester/run@abc1234"}
    assert set(hub.get_space_secrets("tester/qa-space")) == {"HF_TOKEN"}
    assert hub.get_space_runtime("tester/qa-space").requested_hardware == "cpu-basic"
    downloaded = snapshot_download(
        "tester/qa-space", repo_type="space", endpoint=hub_server.url, token=HUB_TOKEN, local_dir=tmp_path / "s"
    )
    for path in (tmp_path / "s").rglob("*"):
        if path.is_file() and ".cache" not in path.parts:
            assert HUB_TOKEN.encode() not in path.read_bytes(), path
            assert path.stat().st_size < 10 * 2**20
    assert downloaded


def test_deploying_again_is_one_more_commit_that_drops_what_the_checkout_no_longer_has(capsys, hub_server, checkout):
    assert deploy(capsys, hub_server, checkout, "tester/redeploy")[0] == 0
    (checkout / "qa_core" / "synth.py").unlink()
    (checkout / "qa_core" / "new_module.py").write_text("VALUE = 1\n")
    assert deploy(capsys, hub_server, checkout, "tester/redeploy")[0] == 0
    hub = space_api(hub_server)
    assert len(hub.list_repo_commits("tester/redeploy", repo_type="space")) == 3
    files = set(hub.list_repo_files("tester/redeploy", repo_type="space"))
    assert "qa_core/new_module.py" in files and "qa_core/synth.py" not in files


def test_a_dry_run_lists_files_and_settings_and_changes_nothing(capsys, hub_server, checkout, monkeypatch):
    monkeypatch.setenv("QA_TEST_SECRET", "s3cret-value")
    status, out, err = deploy(
        capsys, hub_server, checkout, "tester/dry", "--var", "QA_BASE_MODEL=demo", "--secret", "QA_TEST_SECRET",
        "--hardware", "t4-small", "--dry-run",
    )  # fmt: skip
    assert status == 0, err
    listed = {line.split()[0] for line in out.splitlines() if line.startswith("  ")}
    assert listed == expected_files(checkout)
    assert "variable QA_BASE_MODEL=demo" in out and "hardware t4-small" in out and "secret QA_TEST_SECRET" in out
    assert "s3cret-value" not in out + err
    assert not space_api(hub_server).repo_exists("tester/dry", repo_type="space")


@pytest.mark.parametrize(
    "case, args, token, says",
    [
        ("no token", [], None, "no Hub token"),
        ("read-only token", [], HUB_READ_TOKEN, "read-only"),
        ("unknown hardware", ["--hardware", "h100-huge"], HUB_TOKEN, "--hardware 'h100-huge' is not"),
        ("secret not set", ["--secret", "QA_UNSET_SECRET"], HUB_TOKEN, "secret QA_UNSET_SECRET is not set"),
        ("not KEY=VALUE", ["--var", "QA_BASE_MODEL"], HUB_TOKEN, "KEY=VALUE"),
        ("token in a variable", ["--var", f"NOTE={HUB_TOKEN}"], HUB_TOKEN, "pass secrets with --secret"),
        ("not a Space id", [], HUB_TOKEN, "not a Space id"),
    ],
)
def test_each_refusal_is_one_line_and_changes_nothing(capsys, hub_server, checkout, case, args, token, says):
    space = "no-owner" if case == "not a Space id" else f"tester/refused-{'-'.join(case.split()).replace('=', '')}"
    status, out, err = deploy(capsys, hub_server, checkout, space, *args, token=token)
    assert status == 2
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1 and says in err, err
    assert HUB_TOKEN not in err
    if "/" in space:
        assert not space_api(hub_server).repo_exists(space, repo_type="space")


def test_every_file_holding_the_token_is_named_and_nothing_is_pushed(capsys, hub_server, checkout):
    (checkout / "docs" / "notes.md").write_text(f"export HF_TOKEN={HUB_TOKEN}\n")
    (checkout / "qa_core" / "secret.py").write_text(f"TOKEN = '{HUB_TOKEN}'\n")
    status, _, err = deploy(capsys, hub_server, checkout, "tester/leaky")
    assert status == 2 and "docs/notes.md, qa_core/secret.py: contain the Hugging Face token" in err, err
    assert HUB_TOKEN not in err and not space_api(hub_server).repo_exists("tester/leaky", repo_type="space")


def test_a_space_of_another_sdk_or_a_file_over_10_mb_is_refused_before_anything_changes(capsys, hub_server, checkout):
    hub = space_api(hub_server)
    hub.create_repo("tester/docker-space", repo_type="space", space_sdk="docker")
    status, _, err = deploy(capsys, hub_server, checkout, "tester/docker-space", "--var", "QA_BASE_MODEL=demo")
    assert status == 2 and "SDK 'docker', not gradio" in err
    assert hub.get_space_variables("tester/docker-space") == {}
    assert len(hub.list_repo_commits("tester/docker-space", repo_type="space")) == 1

    (checkout / "qa_core" / "resources" / "big.csv").write_bytes(b"x" * (11 * 2**20))
    status, _, err = deploy(capsys, hub_server, checkout, "tester/too-big")
    assert status == 2 and "qa_core/resources/big.csv is 11.0 MB" in err
    assert not hub.repo_exists("tester/too-big", repo_type="space")


def test_an_adapter_named_by_step_or_best_is_deployed_pinned_to_its_commit(capsys, hub_server, checkout, demo_dir):
    """A Space restarts whenever it likes: `REPO@best` must not become another checkpoint then."""
    settings = load_settings(None, hf_endpoint=hub_server.url, hf_token=HUB_TOKEN)
    commits = {
        step: push_checkpoint(
            random_adapter(demo_dir, checkout.parent / f"s{step}", seed=step),
            "tester/pinned-run",
            {"step": step, "eval_exact_figure": figure},
            settings,
        )
        for step, figure in ((10, 0.8), (20, 0.6))
    }
    assert_deployed_pinned(
        capsys, hub_server, checkout, "QA_ADAPTER", "tester/pinned-run@best", f"tester/pinned-run@{commits[10]}"
    )


def assert_deployed_pinned(capsys, hub_server, checkout, variable: str, spec: str, pinned: str) -> None:
    """A deploy with `--var VARIABLE=SPEC` says it pinned SPEC to PINNED, and the Space's variable is PINNED."""
    space = f"tester/space-{variable.lower().replace('_', '-')}"
    status, _, err = deploy(
        capsys, hub_server, checkout, space, "--var", "QA_BASE_MODEL=demo", "--var", f"{variable}={spec}"
    )
    assert status == 0, err
    assert f"{variable}={spec} pinned to {pinned}" in err
    assert space_api(hub_server).get_space_variables(space)[variable].value == pinned


def test_a_published_collection_is_deployed_pinned_and_a_repo_that_is_not_one_is_refused(
    capsys, hub_server, checkout, tmp_path
):
    from qa_core.documents import Document
    from qa_core.rag.published import push_collection
    from qa_core.rag.store import RagStore

    settings = load_settings(None, hf_endpoint=hub_server.url, hf_token=HUB_TOKEN, chroma_path=tmp_path / "db")
    store = RagStore(settings, "rules")
    store.add_documents("rule.txt", [Document("Issuers may repurchase at most 25% of volume.", "rule.txt", "")], "v1")
    commit = push_collection(store, "tester/rules-index", settings).commit
    assert_deployed_pinned(
        capsys, hub_server, checkout, "QA_COLLECTION_REPO", "tester/rules-index", f"tester/rules-index@{commit}"
    )

    space_api(hub_server).create_repo("tester/plain-data", repo_type="dataset")
    status, _, err = deploy(
        capsys, hub_server, checkout, "tester/other-space", "--var", "QA_COLLECTION_REPO=tester/plain-data"
    )
    (line,) = err.strip().splitlines()
    assert status == 2 and re.fullmatch(r"error: tester/plain-data@\w{7} is not a published collection \(.*\)", line)
    assert not space_api(hub_server).repo_exists("tester/other-space", repo_type="space")
