import json
import os
import signal
import subprocess
import sys
import tempfile
import uuid
from itertools import pairwise
from pathlib import Path

import pytest
import torch
from huggingface_hub import HfApi, ModelCard, snapshot_download
from peft import LoraConfig
from safetensors.torch import load_file
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from trl import SFTConfig, SFTTrainer

import qa_core.hub.client
from benchmarks.train_throughput import mixed_length_data
from hub.merge import merge_adapter
from qa_core.config import load_settings
from qa_core.data import load_qa_data
from qa_core.demo_model import random_adapter, sample_data_path
from qa_core.errors import DataError, QAError
from qa_core.hub.checkpoints import list_checkpoints, pull
from qa_core.models import load_model
from qa_core.qa import qa_prompt
from qa_core.serving import QAService
from tests.conftest import HUB_READ_TOKEN, HUB_TOKEN
from tests.helpers import ROOT, run_cli
from train_job.preference import load_pairs
from train_job.pushing import CheckpointPusher
from train_job.run import error_line, main, parse_args, prompt_completion
from train_job.sampling import GroupedSFTTrainer, LengthBucketSampler

pytestmark = pytest.mark.slow  # see pyproject.toml: the fast tier is pytest -m "not slow"

TINY = str(ROOT / "configs" / "tiny-cpu.yaml")


@pytest.fixture(autouse=True)
def fast_retries(monkeypatch):
    monkeypatch.setattr(qa_core.hub.client, "BACKOFF_SECONDS", 0.01)


def train(tmp_path, *args: str, server=None) -> dict:
    hub_flags = ["--hub-endpoint", server.url, "--hub-token", HUB_TOKEN] if server else []
    return main(*parse_args(["--config", TINY, "--output_dir", str(tmp_path), *hub_flags, *args]))


@pytest.fixture(scope="module")
def pushed(tmp_path_factory, hub_server):
    """The tiny preset, 30 steps, pushing every 10 steps to the test Hub."""
    qa_core.hub.client.BACKOFF_SECONDS = 0.01
    out = tmp_path_factory.mktemp("tiny")
    record = train(out, "--push-to-hub", "--hub-repo", "tester/tiny", "--push-every", "10", server=hub_server)
    assert record["step"] == 30 and record["train_tokens"] > 0
    assert record["batching"] == "grouped"  # auto: no flash-attention on a CPU
    return out


def test_tiny_preset_pushes_one_commit_per_checkpoint(pushed, hub_settings, capsys):
    checkpoints = list_checkpoints("tester/tiny", hub_settings)
    assert [c.step for c in checkpoints] == [30, 20, 10]
    final = checkpoints[0].info
    assert {"epoch", "loss", "eval_loss", "eval_perplexity", "dataset", "base_model"} <= set(final)
    # the data file is named, not its path on the training machine; the style is the concrete one
    assert (final["base_model"], final["dataset"], final["prompt_style"]) == ("demo", "sample_qa.csv", "qa")
    assert "eval_loss" in checkpoints[1].info  # evaluated at every save


def test_no_local_path_is_published(pushed, hub_settings, tmp_path):
    api = HfApi(endpoint=hub_settings.hf_endpoint, token=HUB_TOKEN)
    for commit in api.list_repo_commits("tester/tiny"):
        folder = Path(snapshot_download("tester/tiny", revision=commit.commit_id, **hub_kwargs(hub_settings)))
        published = [commit.title, commit.message] + [p.read_text() for p in folder.glob("*.json")]
        published += [(folder / "README.md").read_text()] if (folder / "README.md").is_file() else []
        for text in published:
            assert str(ROOT) not in text and str(pushed) not in text and HUB_TOKEN not in text


def test_each_commit_holds_exactly_one_checkpoint(hub_server, hub_settings, tmp_path):
    """--max-steps 5 --push-every 2: no commit mixes files of two steps, the final one included, and
    resuming from the branch head continues at its step without pushing an earlier step again."""
    flags = ["--push-to-hub", "--hub-repo", "tester/consistent", "--push-every", "2", "--eval_strategy", "no"]
    train(tmp_path / "a", "--max_steps", "5", *flags, server=hub_server)
    assert [c.step for c in list_checkpoints("tester/consistent", hub_settings)] == [5, 4, 2]
    assert_commits_consistent("tester/consistent", hub_settings)

    with pytest.raises(QAError, match="is at step 5 and --max_steps is 5: nothing left to train"):
        train(tmp_path / "b", "--max_steps", "5", "--resume-from-hub", "tester/consistent", *flags, server=hub_server)
    record = train(
        tmp_path / "c", "--max_steps", "8", "--resume-from-hub", "tester/consistent", *flags, server=hub_server
    )
    assert record["step"] == 8 and record["push_failures"] == 0
    assert [c.step for c in list_checkpoints("tester/consistent", hub_settings)] == [8, 6, 5, 4, 2]
    assert_commits_consistent("tester/consistent", hub_settings)


def hub_kwargs(settings) -> dict:
    return {"endpoint": settings.hf_endpoint, "token": settings.hf_token}


def assert_commits_consistent(repo: str, settings) -> None:
    """Every checkpoint commit's record, trainer state and files belong to the same step."""
    for checkpoint in list_checkpoints(repo, settings):
        folder = Path(snapshot_download(repo, revision=checkpoint.commit, **hub_kwargs(settings)))
        state = json.loads((folder / "trainer_state.json").read_text())
        record = json.loads((folder / "checkpoint.json").read_text())
        assert state["global_step"] == record["step"] == checkpoint.step
        names = {p.name for p in folder.iterdir()}
        assert {"optimizer.pt", "scheduler.pt", "adapter_model.safetensors", "README.md"} <= names
        card = ModelCard.load(folder / "README.md")
        assert card.data.prompt_style == "qa" and card.data.base_model == "demo"


def test_many_pushes_while_a_resumed_run_trains(pushed, hub_server, hub_settings, tmp_path, monkeypatch):
    """A push at every step of a run resumed from the Hub: every push lands, in order, each record
    carries the eval metrics of its own step only."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    record = train(
        tmp_path,
        "--resume-from-hub",
        "tester/tiny@20",
        "--max_steps",
        "36",
        "--push-to-hub",
        "--hub-repo",
        "tester/stress",
        "--push-every",
        "1",
        "--eval_steps",
        "4",
        "--logging_steps",
        "1",
        "--score_questions",
        "0",  # scoring would evaluate at every checkpoint: this test is about evaluations every 4 steps
        server=hub_server,
    )
    assert record["push_failures"] == 0
    checkpoints = list_checkpoints("tester/stress", hub_settings)
    assert [c.step for c in checkpoints] == list(range(36, 20, -1))
    for checkpoint in checkpoints[1:]:  # the final record has the final evaluation
        assert ("eval_loss" in checkpoint.info) == (checkpoint.step % 4 == 0), checkpoint.step
    assert not list((tmp_path / "tmp").iterdir())  # staged copies removed


def test_a_dead_push_process_is_reported_and_abort_cleans_up(hub_settings, demo_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    folder = random_adapter(demo_dir, tmp_path / "ckpt")
    pusher = CheckpointPusher("tester/dead", hub_settings, card=lambda record: "# card\n")
    pusher._worker.kill()
    pusher._worker.wait()
    pusher.submit(folder, {"step": 1})
    report = pusher.finish()
    assert report.failed == {1: f"the push process exited with status {-signal.SIGKILL}"}
    assert "warning: push of step 1 failed, training goes on" in capsys.readouterr().out

    pusher = CheckpointPusher("tester/aborted", hub_settings, card=lambda record: "# card\n")
    pusher.submit(folder, {"step": 1})
    pusher.abort()
    assert not list(tmp_path.glob("qa-push-*"))


def test_each_checkpoint_is_pullable_and_mergeable(pushed, hub_settings, tmp_path):
    for step in (10, 30):
        commit = pull("tester/tiny", str(step), tmp_path / f"s{step}", hub_settings)
        files = set(os.listdir(tmp_path / f"s{step}"))
        assert {"adapter_model.safetensors", "adapter_config.json", "checkpoint.json"} <= files
        assert "training_args.bin" not in files
        result = merge_adapter("demo", f"tester/tiny@{commit}", tmp_path / f"m{step}", hub_settings, verify=True)
        assert result.max_abs_diff < 1e-4
    assert {"optimizer.pt", "scheduler.pt", "trainer_state.json"} <= set(os.listdir(tmp_path / "s10"))
    card = (tmp_path / "s30" / "README.md").read_text()
    assert "library_name: peft" in card and "--adapter tester/tiny" in card and HUB_TOKEN not in card
    assert "| LoRA | r 8, alpha 16, dropout 0.05, modules k_proj, o_proj, q_proj, v_proj |" in card


def test_the_trained_adapter_changes_the_model(pushed, hub_settings, demo):
    tuned = load_model("demo", "tester/tiny", settings=hub_settings)
    ids = demo.tokenizer(
        ["Answer the following question:\nQuestion: What is a bond?\n---\nAnswer:"], return_tensors="pt"
    )
    with torch.no_grad():
        assert not torch.allclose(tuned.model(**ids).logits, demo.model(**ids).logits, atol=1e-4)


def test_a_trained_adapter_is_asked_the_way_it_was_trained(pushed, hub_settings, demo):
    """tiny-cpu trains with the 'qa' style although the demo tokenizer has a chat template: wherever
    the adapter is loaded it must be asked in 'qa', unless a style is named explicitly."""
    assert demo.tokenizer.chat_template and qa_prompt(demo, "What is a bond?").startswith("<")
    qa = "Answer the following question:\nQuestion: What is a bond?\n---\nAnswer:"
    tuned = load_model("demo", "tester/tiny", settings=hub_settings)
    local = load_model("demo", str(pushed / "final"))
    assert tuned.prompt_style == local.prompt_style == "qa"
    assert qa_prompt(tuned, "What is a bond?") == qa_prompt(local, "What is a bond?") == qa
    assert qa_prompt(tuned, "What is a bond?", style="chat-template") != qa  # an explicit style wins

    with QAService(hub_settings, loaded=load_model("demo")) as service:
        service.load_adapter("tester/tiny", "20")
    assert qa_prompt(service.loaded, "What is a bond?") == qa

    ask = ["ask", "What is a bond?", "--model", "demo", "--adapter", str(pushed / "final"), "--max-new-tokens", "2"]
    shown = run_cli(*ask, "--show-prompt")
    assert shown.returncode == 0 and f"prompt:\n{qa}\n" in shown.stderr
    explicit = run_cli(*ask, "--show-prompt", "--prompt-style", "alpaca")
    assert "### Instruction:\nWhat is a bond?" in explicit.stderr and qa not in explicit.stderr


def test_a_preference_stage_continues_the_adapter_from_its_own_answers(pushed, hub_server, hub_settings, tmp_path):
    """--task dpo: the demo model's answers (random weights) are all wrong, so every question gives a
    pair whose chosen answer is the reference; the adapter is trained on and pushed as SFT's is."""
    pairs_file = tmp_path / "pairs.jsonl"
    options = ["--task", "dpo", "--adapter", "tester/tiny@20", "--max_steps", "4", "--save_steps", "2"]
    options += ["--pair_samples", "1", "--unanswerable_share", "0.25", "--save_pairs", str(pairs_file)]
    options += ["--push_pairs", "tester/tiny-pairs"]
    push = ["--push-to-hub", "--hub-repo", "tester/tiny-dpo"]
    record = train(tmp_path / "run", *options, "--eval_strategy", "no", *push, server=hub_server)

    assert (record["task"], record["step"]) == ("dpo", 4) and record["init_adapter"].startswith("tester/tiny@")
    preference = record["preference"]
    assert (preference["stage"], preference["beta"]) == ("dpo", 0.1)
    counts = preference["pairs"]
    assert counts["pairs"] + counts["unconfirmed"] == counts["questions"] and counts["pairs"] > counts["questions"] / 2
    assert counts["chosen_own"] == 0 and counts["unanswerable"] > 0
    pairs = [json.loads(line) for line in pairs_file.read_text().splitlines()]
    assert len(pairs) == counts["pairs"] and set(pairs[0]) == {"prompt", "chosen", "rejected"}
    data = load_qa_data(sample_data_path())
    references = {" " + answer for answer in data["answer"]} | {" The context does not state this."}
    assert {pair["chosen"] for pair in pairs} <= references
    assert all(pair["prompt"].startswith("Answer the following question using the provided context:") for pair in pairs)

    published = Path(snapshot_download("tester/tiny-pairs", repo_type="dataset", **hub_kwargs(hub_settings)))
    assert (published / "pairs.jsonl").read_text() == pairs_file.read_text()
    assert "- dpo" in (published / "README.md").read_text() and preference["pairs_repo"] == "tester/tiny-pairs"
    assert [c.step for c in list_checkpoints("tester/tiny-dpo", hub_settings)] == [4, 2]
    card = (Path(snapshot_download("tester/tiny-dpo", **hub_kwargs(hub_settings))) / "README.md").read_text()
    assert "preference-tuned (DPO)" in card and f"| preference pairs | {counts['pairs']} from" in card
    final = tmp_path / "run" / "final"
    assert sorted(p.name for p in final.iterdir() if p.is_dir()) == []  # no copy of the reference adapter

    # the pushed pairs train again without sampling: another beta, the same pairs
    again = train(tmp_path / "again", *options[:6], "--pairs", "tester/tiny-pairs", "--beta", "0.3", server=hub_server)
    assert again["preference"]["pairs"] == {"loaded_from": "tester/tiny-pairs", "pairs": counts["pairs"]}
    assert again["preference"]["beta"] == 0.3 and again["step"] == 4
    started, tuned = load_model("demo", "tester/tiny@20", settings=hub_settings), load_model("demo", str(final))
    ids = started.tokenizer(
        ["Answer the following question:\nQuestion: What is a bond?\n---\nAnswer:"], return_tensors="pt"
    )
    with torch.no_grad():
        assert not torch.allclose(tuned.model(**ids).logits, started.model(**ids).logits, atol=1e-5)


def test_pairs_made_earlier_must_hold_pairs(tmp_path):
    with pytest.raises(QAError, match="--pairs missing.jsonl: no such file"):
        load_pairs("missing.jsonl", load_settings(None))
    rows = tmp_path / "rows.jsonl"
    rows.write_text('{"prompt": "Q", "chosen": " A"}\n')
    with pytest.raises(QAError, match="no preference pairs in it \\(rejected; a pair is prompt / chosen / rejected\\)"):
        load_pairs(str(rows), load_settings(None))


def test_a_preference_stage_needs_an_adapter(tmp_path):
    with pytest.raises(QAError, match="--task dpo tunes a trained adapter further: give --adapter"):
        train(tmp_path / "out", "--task", "dpo")
    assert not (tmp_path / "out").exists()


def test_resume_from_a_hub_checkpoint_continues_at_its_step(pushed, hub_server, hub_settings, tmp_path):
    record = train(
        tmp_path,
        "--resume-from-hub",
        "tester/tiny@20",
        "--max_steps",
        "40",
        "--push-to-hub",
        "--hub-repo",
        "tester/tiny-resumed",
        "--push-every",
        "10",
        server=hub_server,
    )
    assert record["step"] == 40
    assert [c.step for c in list_checkpoints("tester/tiny-resumed", hub_settings)] == [40, 30]


def test_resume_from_the_latest_local_checkpoint(tmp_path):
    with pytest.raises(QAError, match="cannot resume"):
        train(tmp_path / "empty", "--resume", "--max_steps", "10")
    train(tmp_path / "run", "--max_steps", "20", "--save_steps", "10", "--eval_strategy", "no")
    state = json.loads((tmp_path / "run" / "checkpoint-20" / "trainer_state.json").read_text())
    record = train(tmp_path / "run", "--resume", "--max_steps", "30", "--save_steps", "10", "--eval_strategy", "no")
    assert record["step"] == 30
    resumed = json.loads((tmp_path / "run" / "checkpoint-30" / "trainer_state.json").read_text())
    assert resumed["log_history"][: len(state["log_history"])] == state["log_history"]  # continued, not restarted


def test_a_hub_outage_during_training_delays_the_pushes_and_loses_none(hub_server, hub_settings, tmp_path, capfd):
    """The Hub answers 503 to nine commits: the push keeps trying (--push_patience), one request a
    try, training goes on, and every checkpoint lands, in order, once the Hub is back; the repo is
    made once, before training, not again at every push."""
    hub_server.fail_next(9, route="/commit/")
    before = len(hub_server.requests)
    record = train(
        tmp_path,
        "--push-to-hub",
        "--hub-repo",
        "tester/flaky",
        "--push-every",
        "10",
        "--max_steps",
        "30",
        "--push_patience",
        "60",
        server=hub_server,
    )
    out, err = capfd.readouterr()
    assert record["step"] == 30 and record["push_failures"] == 0
    assert "pushed 3 checkpoint(s) to tester/flaky" in out and "failed" not in out
    assert [c.step for c in list_checkpoints("tester/flaky", hub_settings)] == [30, 20, 10]
    assert hub_server.failures_left == 0
    assert err.count("push of step 10: ") == 9  # each failed request said, and waited for, once: no nested retries
    requests = hub_server.requests[before:]
    assert sum("POST /api/repos/create" in request for request in requests) == 1


def test_a_run_whose_pushes_fail_exits_3_and_says_how_to_push_later(pushed, hub_server, hub_settings, tmp_path):
    """The Hub refuses every commit (HTTP 403): training completes and keeps its checkpoints, the
    exit status says the publish failed, and the printed commands publish them."""
    hub_server.fail_next(100, route="/commit/", status=403)
    command = [sys.executable, "train_job/run.py", "--config", TINY, "--output_dir", str(tmp_path), "--max_steps", "4"]
    hub = ["--push-to-hub", "--hub-repo", "tester/unpublished", "--push-every", "2", "--hub-endpoint", hub_server.url]
    result = subprocess.run(
        [*command, *hub],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "HF_TOKEN": HUB_TOKEN},
    )
    hub_server.fail_next(0)
    assert result.returncode == 3, result.stderr[-2000:]
    assert "pushed 0 checkpoint(s) to tester/unpublished, 2 push(es) failed" in result.stdout
    later = [line.strip() for line in result.stdout.splitlines() if line.strip().startswith("python -m hub push")]
    assert later == [f"python -m hub push {tmp_path}/checkpoint-{step} tester/unpublished" for step in (2, 4)]
    for line in later:
        pushed_later = subprocess.run(
            [sys.executable, *line.split()[1:], "--hub-endpoint", hub_server.url],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "HF_TOKEN": HUB_TOKEN},
        )
        assert pushed_later.returncode == 0, pushed_later.stderr
    assert [c.step for c in list_checkpoints("tester/unpublished", hub_settings)] == [4, 2]


def test_labels_cover_only_the_answer(demo, tmp_path):
    data = prompt_completion(load_qa_data(sample_data_path()).select(range(3)), "qa", demo.tokenizer)
    trainer = SFTTrainer(
        model=load_model("demo").model,
        args=SFTConfig(output_dir=str(tmp_path), use_cpu=True, report_to="none", packing=False),
        train_dataset=data,
        processing_class=demo.tokenizer,
        peft_config=LoraConfig(r=4, target_modules=["q_proj"]),
    )
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(3)])
    for row, labels, ids in zip(data, batch["labels"], batch["input_ids"], strict=True):
        kept = ids[labels != -100]
        assert demo.tokenizer.decode(kept).strip() == row["completion"].strip() + "</s>"
        prompt_tokens = len(demo.tokenizer(row["prompt"])["input_ids"])
        assert (labels[:prompt_tokens] == -100).all()


def padding_share(batches) -> float:
    """Padding tokens over real tokens in `batches` (attention masks)."""
    real = sum(int(batch["attention_mask"].sum()) for batch in batches)
    return sum(batch["attention_mask"].numel() for batch in batches) / real - 1


def test_grouped_batches_carry_little_padding_and_change_between_epochs(demo, tmp_path):
    data = load_qa_data(str(mixed_length_data(tmp_path / "mixed.csv")))  # 108 rows, 45 to 266 tokens
    config = {"output_dir": str(tmp_path), "use_cpu": True, "report_to": "none", "per_device_train_batch_size": 8}
    trainers = {
        strategy: GroupedSFTTrainer(
            model=load_model("demo").model,
            args=SFTConfig(**config, train_sampling_strategy=strategy),
            train_dataset=prompt_completion(data, "qa", demo.tokenizer),
            processing_class=demo.tokenizer,
            peft_config=LoraConfig(r=4, target_modules=["q_proj"]),
        )
        for strategy in ("group_by_length", "random")
    }
    torch.manual_seed(0)
    grouped = trainers["group_by_length"].get_train_dataloader()
    assert isinstance(grouped.batch_sampler.sampler, LengthBucketSampler)
    epochs = [list(grouped) for _ in range(3)]
    for batches in epochs:
        assert sum(len(batch["input_ids"]) for batch in batches) == len(data)  # every example once per epoch
        assert [len(batch["input_ids"]) for batch in batches[:-1]] == [8] * (len(batches) - 1)
        assert max(len(batch["input_ids"][0]) for batch in batches) == len(batches[0]["input_ids"][0])  # longest 1st
        assert padding_share(batches) < 0.15
    shuffled = [list(trainers["random"].get_train_dataloader()) for _ in range(3)]
    assert min(padding_share(batches) for batches in shuffled) > 0.5
    assert epochs[0][0]["input_ids"].shape != epochs[1][0]["input_ids"].shape or not torch.equal(
        epochs[0][1]["input_ids"], epochs[1][1]["input_ids"]
    )  # not the same batches every epoch


def test_packed_examples_do_not_attend_to_each_other(demo, tmp_path):
    data = prompt_completion(load_qa_data(sample_data_path()).select(range(4)), "qa", demo.tokenizer)
    trainer = SFTTrainer(
        model=load_model("demo").model,
        args=SFTConfig(output_dir=str(tmp_path), use_cpu=True, report_to="none", packing=True, max_length=512),
        train_dataset=data,
        processing_class=demo.tokenizer,
        peft_config=LoraConfig(r=4, target_modules=["q_proj"]),
    )
    batch = trainer.data_collator([trainer.train_dataset[0]])
    starts = (batch["position_ids"][0] == 0).nonzero().flatten().tolist()
    assert len(starts) > 1 and "attention_mask" not in batch  # several examples in one row, no padding
    model = load_model("demo").model
    model.config.use_cache = False
    with torch.no_grad():
        packed = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"]).logits[0]
        bounds = [*starts, batch["input_ids"].shape[1]]
        for start, end in pairwise(bounds):
            alone = model(input_ids=batch["input_ids"][:, start:end]).logits[0]
            assert torch.allclose(packed[start:end], alone, atol=1e-4)


@pytest.mark.parametrize(
    ("args", "error", "message"),
    [
        (["--columns", "answer=reply"], DataError, "missing column 'reply' for the answer"),
        (["--lora_target_modules", "q_proj", "attn_out"], QAError, r"\['attn_out'\] are not modules of this model"),
        (["--push-to-hub"], QAError, "--push-to-hub needs --hub-repo"),
        (["--batching", "bucketed"], QAError, "--batching 'bucketed': choose auto, packed, grouped, max-length"),
    ],
)
def test_bad_input_fails_before_training(tmp_path, args, error, message):
    with pytest.raises(error, match=message):
        train(tmp_path / "out", *args)
    assert not (tmp_path / "out").exists()


def test_an_unknown_quantization_is_refused_by_the_parser_with_the_choices(tmp_path, capsys):
    with pytest.raises(SystemExit) as stopped:
        train(tmp_path / "out", "--quantization", "3bit")
    assert stopped.value.code == 2
    assert (
        "argument --quantization: invalid choice: '3bit' (choose from 'none', '4bit', '8bit')"
        in capsys.readouterr().err
    )
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("token", "message"),
    [
        (HUB_READ_TOKEN, "tester/tiny: the token is read-only"),
        ("hf_notTheRightToken0000000000000", "rejected the token"),
    ],
)
def test_a_token_that_cannot_push_fails_before_training(pushed, hub_server, tmp_path, token, message):
    args = [
        "--config",
        TINY,
        "--output_dir",
        str(tmp_path / "out"),
        "--push-to-hub",
        "--hub-repo",
        "tester/tiny",
        "--hub-endpoint",
        hub_server.url,
        "--hub-token",
        token,
    ]
    with pytest.raises(QAError, match=message):
        main(*parse_args(args))
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ("--bogus-flag", "error: unknown option --bogus-flag; python train_job/run.py --help lists every option"),
        ("--learning-rat", "error: unknown option --learning-rat; did you mean --learning_rate?"),  # no prefix match
    ],
)
def test_a_misspelled_option_is_one_error_line(tmp_path, option, message):
    command = [sys.executable, "train_job/run.py", "--config", TINY, option, "3", "--output_dir", str(tmp_path / "o")]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert (result.returncode, result.stderr.strip().splitlines()[-1]) == (2, message)
    assert "Traceback" not in result.stderr and not (tmp_path / "o").exists()


def test_options_that_disagree_are_one_error_line_and_a_token_never_shows(tmp_path):
    options = ["--load_best_model_at_end", "true", "--save_strategy", "no", "--output_dir", str(tmp_path / "o")]
    result = subprocess.run(
        [sys.executable, "train_job/run.py", "--config", TINY, *options], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert (
        result.stderr.strip()
        .splitlines()[-1]
        .startswith("error: invalid options: --load_best_model_at_end requires the save and eval strategy to match")
    )
    failed = QAError("hf_abc123 was refused\nby the Hub")
    assert error_line(failed, ["--hub-token", "hf_abc123"]) == "error: *** was refused by the Hub"


def test_every_preset_parses():
    for preset in sorted((ROOT / "configs").glob("*.yaml")):
        data_args, model_args, *_ = parse_args(["--config", str(preset), "--bf16", "false"])
        assert model_args.lora_r >= 8 and data_args.batching in ("auto", "grouped"), preset.name
    data_args, *_, policy = parse_args(["--config", str(ROOT / "configs/policy-qa-int8.yaml"), "--bf16", "false"])
    assert (policy.optim.value, policy.learning_rate, policy.max_grad_norm, data_args.batching) == (
        "paged_adamw_8bit",
        2e-4,
        0.3,
        "grouped",
    )


def test_two_processes_with_accelerate(tmp_path):
    result = subprocess.run(
        [
            "accelerate",
            "launch",
            "--multi_gpu",
            "--num_processes",
            "2",
            "--num_machines",
            "1",
            "--mixed_precision",
            "no",
            "--dynamo_backend",
            "no",
            "train_job/run.py",
            "--config",
            TINY,
            "--output_dir",
            str(tmp_path),
            "--max_steps",
            "4",
            "--save_steps",
            "2",
            "--eval_steps",
            "2",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PATH": f"{os.path.dirname(sys.executable)}:{os.environ['PATH']}"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "with 2 process(es): 4 steps" in result.stdout
    for noise in ("FutureWarning", "kernels-community"):  # warnings no user can act on, once per process
        assert noise not in result.stderr
    assert json.loads((tmp_path / "checkpoint-2" / "trainer_state.json").read_text())["global_step"] == 2


def test_the_apps_adapter_setting_does_not_leak_into_training(tmp_path, monkeypatch, demo_dir):
    """QA_ADAPTER (set for the app, e.g. in .env) is not where a run starts: that is --init-adapter.
    It made the trainer refuse a model that already had an adapter."""
    monkeypatch.setenv("QA_ADAPTER", str(random_adapter(demo_dir, tmp_path / "adapter")))
    record = train(tmp_path / "run", "--max_steps", "2", "--eval_strategy", "no", "--save_strategy", "no")
    assert record["step"] == 2 and "init_adapter" not in record


def test_kernels_are_liger_only_where_they_run(tmp_path):
    """`auto` takes Liger's Triton kernels on a CUDA GPU only: on a CPU nothing may change results."""
    record = train(tmp_path / "auto", "--max_steps", "1", "--eval_strategy", "no", "--save_strategy", "no")
    assert record["kernels"] == "none"
    with pytest.raises(QAError, match=r"--kernels liger needs a CUDA GPU and the liger-kernel package"):
        train(tmp_path / "liger", "--kernels", "liger", "--max_steps", "1")
    with pytest.raises(QAError, match=r"--kernels 'fast': choose auto, liger, none"):
        train(tmp_path / "bad", "--kernels", "fast")


def test_answers_are_scored_at_every_checkpoint_and_change_no_weight(hub_server, hub_settings, tmp_path, monkeypatch):
    """--score_questions: the base at step 0, every pushed checkpoint after, in the log history the
    Trainer judges by, the trackers, the records, commit titles, cards and a PNG; the weights as
    with it off."""
    steps = ["--max_steps", "8", "--save_steps", "4", "--seed", "7"]
    # trackio reads TRACKIO_DIR once, when first imported (maybe by an earlier test): a project of its own
    monkeypatch.setenv("TRACKIO_DIR", str(tmp_path / "trackio"))
    project = f"scored-tiny-{uuid.uuid4().hex[:8]}"
    trackers = ["--report_to", "trackio", "--project", project]
    push = ["--push-to-hub", "--hub-repo", "tester/scored-tiny"]
    scored = train(tmp_path / "on", *steps, "--score_questions", "6", *trackers, *push, server=hub_server)
    train(tmp_path / "off", *steps, "--score_questions", "0")
    weights = [load_file(tmp_path / side / "final" / "adapter_model.safetensors") for side in ("on", "off")]
    assert weights[0].keys() == weights[1].keys()
    assert all(torch.equal(weights[0][name], weights[1][name]) for name in weights[0])

    assert [entry["step"] for entry in scored["answer_scores"]] == [0, 4, 8]  # 0: the base model
    assert all("eval_exact_figure" in entry and "eval_rouge_l" in entry for entry in scored["answer_scores"])
    assert scored["score_metric"] == "eval_exact_figure"
    assert scored["scored_with"].endswith("--split test --test-size 0.1 --seed 7 --limit 6")
    history = json.loads((tmp_path / "on" / "checkpoint-8" / "trainer_state.json").read_text())["log_history"]
    assert [e["step"] for e in history if "eval_contains_answer" in e] == [0, 4, 8]
    off = json.loads((tmp_path / "off" / "checkpoint-8" / "trainer_state.json").read_text())["log_history"]
    assert not any("eval_contains_answer" in entry for entry in off)
    assert (tmp_path / "on" / "final" / "answer_scores.png").stat().st_size > 10_000
    from trackio.sqlite_storage import SQLiteStorage

    (run,) = SQLiteStorage.get_runs(project)
    tracked = [log["eval/exact_figure"] for log in SQLiteStorage.get_logs(project, run) if "eval/exact_figure" in log]
    assert tracked == [entry["eval_exact_figure"] for entry in scored["answer_scores"]]

    checkpoints = list_checkpoints("tester/scored-tiny", hub_settings)
    assert [c.step for c in checkpoints] == [8, 4]
    base = scored["answer_scores"][0]["eval_exact_figure"]
    for checkpoint in checkpoints:
        assert f"exact figure {checkpoint.info['eval_exact_figure']:.2f} (base {base:.2f})" in checkpoint.title
    card = ModelCard.load(Path(snapshot_download("tester/scored-tiny", **hub_kwargs(hub_settings))) / "README.md")
    results = {(r.metric_type, r.metric_value) for r in card.data.eval_results}
    assert ("exact_figure", scored["eval_exact_figure"]) in results and ("rouge_l", scored["eval_rouge_l"]) in results
    table = card.text[card.text.index("## Answer scores") :]
    assert "| base |" in table and "| 4 |" in table and "| 8 |" in table and "answer_scores.png" in table


def test_the_trainer_keeps_the_best_checkpoint_by_an_answer_score(tmp_path):
    record = train(
        tmp_path,
        *(
            "--max_steps",
            "6",
            "--save_steps",
            "2",
            "--eval_steps",
            "2",
            "--score_questions",
            "4",
            "--save_total_limit",
            "1",
        ),
        *("--metric_for_best_model", "eval_rouge_l", "--load_best_model_at_end", "--report_to", "tensorboard"),
    )
    state = json.loads((tmp_path / "checkpoint-6" / "trainer_state.json").read_text())
    trained = [entry for entry in record["answer_scores"] if entry["step"] > 0]
    best = max(trained, key=lambda entry: entry["eval_rouge_l"])  # max keeps the first of equals, as the Trainer
    assert state["best_metric"] == pytest.approx(best["eval_rouge_l"])
    assert state["best_model_checkpoint"].endswith(f"checkpoint-{best['step']}")
    assert record["score_metric"] == "eval_rouge_l"
    events = EventAccumulator(str(next((tmp_path / "runs").iterdir()))).Reload()  # TensorBoard's, too
    assert [(e.step, e.value) for e in events.Scalars("eval/rouge_l")] == [
        (entry["step"], pytest.approx(entry["eval_rouge_l"])) for entry in record["answer_scores"]
    ]
