import json
import os
import subprocess
import sys
import time
from pathlib import Path

import huggingface_hub.constants
import pytest
import torch
from huggingface_hub import HfApi, snapshot_download
from transformers import AutoModelForCausalLM

import qa_core.hub.client
from hub.cli import main as hub_main
from hub.merge import merge_adapter
from qa_core.config import load_settings
from qa_core.demo_model import build_demo_model, random_adapter
from qa_core.errors import HubError, MergeError
from qa_core.hub.checkpoints import (
    MAIN_SCORE,
    list_checkpoints,
    pull,
    push_checkpoint,
    pushed_checkpoints,
    resolve_revision,
)
from qa_core.hub.client import push_folder
from qa_core.hub.visitor_adapters import list_visitor_checkpoints
from qa_core.models import load_model
from tests.conftest import HUB_TOKEN
from tests.helpers import ROOT, free_port


@pytest.fixture(autouse=True)
def fast_retries(monkeypatch):
    monkeypatch.setattr(qa_core.hub.client, "BACKOFF_SECONDS", 0.01)


@pytest.fixture(scope="module")
def run(tmp_path_factory, hub_server, demo_dir):
    """A training run pushed as two checkpoint commits (steps 10 and 20) with a trained head."""
    settings = load_settings(None, hf_endpoint=hub_server.url, hf_token=HUB_TOKEN)
    folders, commits = {}, {}
    for step, seed in ((10, 1), (20, 2)):
        folders[step] = random_adapter(demo_dir, tmp_path_factory.mktemp(f"step{step}"), seed=seed, train_head=True)
        info = {
            "step": step,
            "epoch": step / 20,
            "loss": 3.0 - step / 10,
            "eval_loss": 3.1 - step / 10,
            "dataset": "qa_core/resources/sample_qa.csv",
        }
        commits[step] = push_checkpoint(folders[step], "tester/policy-run", info, settings)
    return {"repo": "tester/policy-run", "folders": folders, "commits": commits}


def test_checkpoints_are_listed_newest_first_with_metrics(run, hub_settings):
    checkpoints = list_checkpoints(run["repo"], hub_settings)  # 3 commits per page: pagination is used
    assert [c.step for c in checkpoints] == [20, 10]
    assert [c.commit for c in checkpoints] == [run["commits"][20], run["commits"][10]]
    assert checkpoints[0].title == "checkpoint step 20: loss 1.0000"
    assert checkpoints[1].info["eval_loss"] == pytest.approx(2.1)


def test_pull_an_older_checkpoint_by_step_and_by_sha(run, hub_settings, tmp_path):
    by_step = pull(run["repo"], "10", tmp_path / "a", hub_settings)
    by_sha = pull(run["repo"], run["commits"][10][:10], tmp_path / "b", hub_settings)
    assert by_step == by_sha == run["commits"][10]
    pushed = (run["folders"][10] / "adapter_model.safetensors").read_bytes()
    for folder in ("a", "b"):
        assert (tmp_path / folder / "adapter_model.safetensors").read_bytes() == pushed
        assert json.loads((tmp_path / folder / "checkpoint.json").read_text())["step"] == 10
    assert resolve_revision(run["repo"], "main", hub_settings) == run["commits"][20]  # asked, never cached


def test_cli_list_and_pull(run, hub_server, tmp_path, capsys):
    flags = ["--hub-endpoint", hub_server.url, "--hub-token", HUB_TOKEN]
    assert hub_main([*flags, "list", run["repo"], "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [c["step"] for c in listed] == [20, 10] and listed[0]["commit"] == run["commits"][20]
    assert hub_main([*flags, "pull", run["repo"], "--revision", "step-20", "--out", str(tmp_path / "c")]) == 0
    assert run["commits"][20] in capsys.readouterr().out
    assert hub_main([*flags, "pull", run["repo"], "--out", str(tmp_path / "latest")]) == 0  # default: the latest
    assert f"{run['repo']}@{run['commits'][20]} (step 20) -> " in capsys.readouterr().out


def test_merge_verify_push_download_generate(run, hub_server, hub_settings, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", hub_server.url)
    monkeypatch.setenv("HF_TOKEN", HUB_TOKEN)
    adapter = f"{run['repo']}@{run['commits'][10]}"
    code = hub_main(
        [
            "merge",
            "--base",
            "demo",
            "--adapter",
            adapter,
            "--out",
            str(tmp_path / "merged"),
            "--verify",
            "--push",
            "tester/policy-merged",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert float(out.strip().splitlines()[-1].removeprefix("max_abs_diff=")) < 1e-4
    assert not list((tmp_path / "merged").glob("adapter_*"))
    api = HfApi(endpoint=hub_server.url, token=HUB_TOKEN)
    card = Path(api.hf_hub_download("tester/policy-merged", "README.md")).read_text()
    assert "base_model: demo" in card and run["commits"][10] in card and "sample_qa.csv" in card
    snapshot = Path(snapshot_download("tester/policy-merged", endpoint=hub_server.url, token=HUB_TOKEN))
    for file in snapshot.rglob("*"):
        assert HUB_TOKEN.encode() not in file.read_bytes()
    merged = load_model("tester/policy-merged", settings=hub_settings)
    tuned = load_model("demo", adapter, settings=hub_settings)
    prompts = ["Answer the following question:\nQuestion: What is a bond?\n---\nAnswer:"]
    assert merged.backend.generate_many(prompts) == tuned.backend.generate_many(prompts)
    assert merged.commit == api.repo_info("tester/policy-merged").sha


@pytest.mark.parametrize("tied", [True, False])
def test_merge_keeps_a_trained_head_and_the_input_embeddings(tmp_path, tied):
    base_dir = build_demo_model(tmp_path / "base", tie_word_embeddings=tied)
    adapter = random_adapter(base_dir, tmp_path / "adapter", seed=3, train_head=True)
    settings = load_settings(None)
    result = merge_adapter(str(base_dir), str(adapter), tmp_path / "merged", settings, verify=True)
    assert result.max_abs_diff < 1e-4
    base = AutoModelForCausalLM.from_pretrained(base_dir)
    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "merged")
    assert torch.equal(merged.get_input_embeddings().weight, base.get_input_embeddings().weight)
    assert not torch.allclose(merged.lm_head.weight, base.lm_head.weight)  # the trained head is used
    assert merged.lm_head.weight.data_ptr() != merged.get_input_embeddings().weight.data_ptr()


def test_quantized_merge_is_refused(tmp_path, demo_dir):
    adapter = random_adapter(demo_dir, tmp_path / "adapter")
    with pytest.raises(MergeError, match="refusing to merge into a 4bit base"):
        merge_adapter("demo", str(adapter), tmp_path / "out", load_settings(None), quantization="4bit")
    quantized = load_model("demo", quantization="4bit", device="cpu")
    quantized.model.save_pretrained(tmp_path / "demo-4bit")
    quantized.tokenizer.save_pretrained(tmp_path / "demo-4bit")
    with pytest.raises(MergeError, match="already quantized"):
        merge_adapter(str(tmp_path / "demo-4bit"), str(adapter), tmp_path / "out", load_settings(None))
    assert not (tmp_path / "out").exists()


def test_verify_fails_above_the_tolerance(run, hub_server, tmp_path, capsys):
    flags = ["--hub-endpoint", hub_server.url, "--hub-token", HUB_TOKEN]
    code = hub_main(
        [
            *flags,
            "merge",
            "--base",
            "demo",
            "--adapter",
            str(run["folders"][20]),
            "--out",
            str(tmp_path / "m"),
            "--verify",
            "--tolerance",
            "-1",
        ]
    )
    captured = capsys.readouterr()
    assert code == 1 and captured.out.strip().splitlines()[-1].startswith("max_abs_diff=")
    assert "differ from the adapter's by more than -1" in captured.err


def test_remote_errors_are_one_clear_line(run, hub_server, hub_settings, tmp_path):
    wrong = load_settings(None, hf_endpoint=hub_server.url, hf_token="hf_wrongTOKEN000000000000000000")
    with pytest.raises(HubError, match="rejected the token") as info:
        list_checkpoints(run["repo"], wrong)
    assert "hf_wrong" not in str(info.value)
    with pytest.raises(HubError, match="tester/nope: repository not found"):
        list_checkpoints("tester/nope", hub_settings)
    with pytest.raises(HubError, match="revision 'deadbeef00' not found"):
        pull(run["repo"], "deadbeef00", tmp_path / "x", hub_settings)
    with pytest.raises(HubError, match=r"no checkpoint at step 99 \(steps pushed: 10, 20\)"):
        pull(run["repo"], "99", tmp_path / "x", hub_settings)
    down = load_settings(None, hf_endpoint=f"http://127.0.0.1:{free_port()}", hf_token=HUB_TOKEN)
    with pytest.raises(HubError, match=r"cannot reach the Hub at http://127\.0\.0\.1:\d+ .*gave up after retrying"):
        resolve_revision(run["repo"], "main", down)


def test_an_unreachable_hub_is_one_line_at_once_for_commands_people_wait_on():
    """Before: huggingface_hub's five retries (23 s, ten stderr lines), then the error line."""
    refused = f"http://127.0.0.1:{free_port()}"
    for endpoint, why in ((refused, "connection refused"), ("http://hub.invalid", "hub.invalid does not resolve")):
        listed = subprocess.run(
            [sys.executable, "-m", "hub", "list", "tester/facts-qa"],
            cwd=ROOT,
            env={**os.environ, "HF_ENDPOINT": endpoint},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert listed.returncode == 2
        assert listed.stderr == f"error: tester/facts-qa: cannot reach the Hub at {endpoint} ({why})\n"
    with pytest.raises(HubError, match=r"cannot reach the Hub at .* \(connection refused\)$"):  # the app's List
        list_visitor_checkpoints("tester/facts-qa", load_settings(None, hf_endpoint=refused))


def test_transient_failures_are_retried(run, hub_server, hub_settings):
    hub_server.fail_next(2)  # repo_info: retried here
    assert resolve_revision(run["repo"], "main", hub_settings) == run["commits"][20]
    hub_server.fail_next(2)  # commit listing: retried by the client's own backoff
    assert [c.step for c in list_checkpoints(run["repo"], hub_settings)] == [20, 10]
    hub_server.fail_next(10)
    with pytest.raises(HubError, match="HTTP 503 .*gave up after retrying"):
        resolve_revision(run["repo"], "main", hub_settings)
    hub_server.fail_next(0)


def test_push_never_sends_the_token(tmp_path, hub_settings):
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    (folder / ".env").write_text(f"HF_TOKEN={HUB_TOKEN}\n")
    commit = push_folder(folder, "tester/clean", hub_settings, "upload")
    files = HfApi(endpoint=hub_settings.hf_endpoint, token=HUB_TOKEN).list_repo_files("tester/clean", revision=commit)
    assert ".env" not in files and "config.json" in files
    (folder / "notes.txt").write_text(f"debug: token={HUB_TOKEN}")
    with pytest.raises(HubError, match="notes.txt contains the Hugging Face token; refusing to push it"):
        push_folder(folder, "tester/clean", hub_settings, "upload")


def test_server_runs_from_the_command_line(tmp_path):
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "hub.local_server", "--port", str(port), "--data-dir", str(tmp_path), "--token", "t0k"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout.readline().strip() == f"Hub-compatible test server on http://127.0.0.1:{port}"
        assert "HF_HUB_DISABLE_XET=1" in process.stdout.readline()  # it does not speak Xet
        assert HfApi(endpoint=f"http://127.0.0.1:{port}", token="t0k").whoami()["name"] == "tester"
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_a_push_drops_files_the_folder_no_longer_has(hub_settings, tmp_path):
    api = HfApi(endpoint=hub_settings.hf_endpoint, token=HUB_TOKEN)
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "old.txt").write_text("from the first push")
    (tmp_path / "a" / "kept.txt").write_text("1")
    push_folder(tmp_path / "a", "tester/mirror", hub_settings, "first")
    (tmp_path / "a" / "old.txt").unlink()
    (tmp_path / "a" / "kept.txt").write_text("2")
    commit = push_folder(tmp_path / "a", "tester/mirror", hub_settings, "second")
    assert set(api.list_repo_files("tester/mirror", revision=commit)) == {".gitattributes", "kept.txt"}


def test_the_default_client_against_a_server_without_xet_says_so(hub_settings, tmp_path, monkeypatch):
    """With hf_xet installed and HF_HUB_DISABLE_XET unset the client uploads through Xet, which the
    test server does not speak: the error must say that (not 'cannot reach the Hub'), at once."""
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_DISABLE_XET", False)
    (tmp_path / "model.safetensors").write_bytes(b"\0" * 2048)
    started = time.monotonic()
    with pytest.raises(HubError) as failure:
        push_folder(tmp_path, "tester/xet", hub_settings, "upload")
    assert "does not support Xet uploads" in str(failure.value)
    assert "set HF_HUB_DISABLE_XET=1" in str(failure.value) and "retrying" not in str(failure.value)
    assert time.monotonic() - started < 15  # not retried as if the Hub were down


def test_a_merge_that_fails_verification_is_not_pushed(run, hub_server, hub_settings, tmp_path, capsys):
    flags = ["--hub-endpoint", hub_server.url, "--hub-token", HUB_TOKEN]
    adapter = f"{run['repo']}@{run['commits'][20]}"
    merge = ["merge", "--base", "demo", "--adapter", adapter, "--out", str(tmp_path / "m"), "--verify"]
    code = hub_main([*flags, *merge, "--dtype", "bfloat16", "--tolerance", "1e-12", "--push", "tester/bad-merge"])
    captured = capsys.readouterr()
    assert code == 1 and "not pushed to tester/bad-merge" in captured.err
    assert not HfApi(endpoint=hub_server.url, token=HUB_TOKEN).repo_exists("tester/bad-merge")


def test_a_repo_without_checkpoint_commits_is_one_clear_error(hub_settings, tmp_path):
    (tmp_path / "notes.txt").write_text("no checkpoint here")
    push_folder(tmp_path, "tester/plain", hub_settings, title="plain files")
    assert list_checkpoints("tester/plain", hub_settings) == []
    with pytest.raises(HubError, match=r"^tester/plain has no checkpoint commits \(pushed by train_job/run.py"):
        pushed_checkpoints("tester/plain", hub_settings)


@pytest.fixture(scope="module")
def scored_run(tmp_path_factory, hub_server, demo_dir):
    """Four checkpoints with answer scores, as train_job/run.py records them: step 20 and 30 tie for
    the best exact figure, step 40 has the fewest unsupported figures; the base scored at step 0."""
    settings = load_settings(None, hf_endpoint=hub_server.url, hf_token=HUB_TOKEN)
    scores = {
        0: (0.50, 0.30),
        10: (0.625, 0.20),
        20: (0.75, 0.15),
        30: (0.75, 0.10),
        40: (0.6875, 0.05),
    }
    history = [{"step": s, "eval_exact_figure": e, "eval_unsupported_figure": u} for s, (e, u) in scores.items()]
    commits = {}
    for n, step in enumerate((10, 20, 30, 40)):
        folder = random_adapter(demo_dir, tmp_path_factory.mktemp(f"scored{step}"), seed=step)
        info = {"loss": 2.0 - n / 10, **history[n + 1], "answer_scores": history[: n + 2]}
        commits[step] = push_checkpoint(folder, "tester/scored-run", {**info, "score_metric": MAIN_SCORE}, settings)
    return {"repo": "tester/scored-run", "commits": commits}


def test_a_checkpoint_commit_names_its_main_score_against_the_base(scored_run, hub_settings):
    titles = [c.title for c in list_checkpoints(scored_run["repo"], hub_settings)]
    assert titles[0] == "checkpoint step 40: loss 1.7000, exact figure 0.69 (base 0.50)"
    assert titles[-1] == "checkpoint step 10: loss 2.0000, exact figure 0.62 (base 0.50)"


def test_best_is_the_highest_score_and_the_earlier_step_on_a_tie(scored_run, hub_settings, tmp_path, capsys):
    commits = scored_run["commits"]
    assert resolve_revision(scored_run["repo"], "best", hub_settings) == commits[20]  # 20 and 30 tie: the earlier
    assert "tester/scored-run@best: step 20" in capsys.readouterr().err
    # lower is better for unsupported figures; `eval_` may be left out
    assert resolve_revision(scored_run["repo"], "best:unsupported_figure", hub_settings) == commits[40]
    assert resolve_revision(scored_run["repo"], "best:eval_unsupported_figure", hub_settings) == commits[40]
    with pytest.raises(HubError, match=r"no checkpoint records eval_rouge_l .*--score_questions.* record eval_exact"):
        resolve_revision(scored_run["repo"], "best:rouge_l", hub_settings)
    # wherever REPO@REV is taken: an adapter loaded as REPO@best is that checkpoint
    loaded = load_model("demo", adapter=f"{scored_run['repo']}@best", settings=hub_settings)
    assert loaded.adapter_commit == commits[20]
    flags = ["--hub-endpoint", hub_settings.hf_endpoint, "--hub-token", HUB_TOKEN]
    assert hub_main([*flags, "pull", scored_run["repo"], "--revision", "best", "--out", str(tmp_path / "b")]) == 0
    assert f"{scored_run['repo']}@{commits[20]} (step 20)" in capsys.readouterr().out


def test_a_run_without_scores_has_no_best(run, hub_settings):
    with pytest.raises(HubError, match=r"tester/policy-run: no checkpoint records eval_exact_figure \(train with"):
        resolve_revision(run["repo"], "best", hub_settings)


def test_list_shows_the_scores_as_columns_with_the_base(scored_run, hub_server, capsys):
    flags = ["--hub-endpoint", hub_server.url, "--hub-token", HUB_TOKEN]
    assert hub_main([*flags, "list", scored_run["repo"]]) == 0
    header, *rows = capsys.readouterr().out.splitlines()
    assert header.split()[-4:] == ["exact", "figure", "unsupported", "figure"]
    assert [row.split()[1] for row in rows[:-1]] == ["40", "30", "20", "10"]
    assert rows[-1].split()[:3] == ["base", "model", "0"] and rows[-1].split()[-2:] == ["0.5", "0.3"]
    assert rows[0].split()[-2:] == ["0.6875", "0.05"]
    assert hub_main([*flags, "list", scored_run["repo"], "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(c["step"], c["eval_exact_figure"], c["base_scores"]["eval_exact_figure"]) for c in listed] == [
        (40, 0.6875, 0.5),
        (30, 0.75, 0.5),
        (20, 0.75, 0.5),
        (10, 0.625, 0.5),
    ]
