import json
import os
import subprocess
import sys
from itertools import pairwise

import pytest
import torch
from peft import LoraConfig
from trl import SFTConfig, SFTTrainer

import qa_core.hub_client
from hub.merge import merge_adapter
from qa_core.checkpoints import list_checkpoints, pull
from qa_core.data import load_qa_data
from qa_core.demo_model import sample_data_path
from qa_core.errors import DataError, ModelLoadError, QAError
from qa_core.models import load_model
from tests.conftest import HUB_READ_TOKEN, HUB_TOKEN
from tests.helpers import ROOT
from train_job.run import main, parse_args, prompt_completion

TINY = str(ROOT / "configs" / "tiny-cpu.yaml")


@pytest.fixture(autouse=True)
def fast_retries(monkeypatch):
    monkeypatch.setattr(qa_core.hub_client, "BACKOFF_SECONDS", 0.01)


def train(tmp_path, *args: str, server=None) -> dict:
    hub_flags = ["--hub-endpoint", server.url, "--hub-token", HUB_TOKEN] if server else []
    return main(*parse_args(["--config", TINY, "--output_dir", str(tmp_path), *hub_flags, *args]))


@pytest.fixture(scope="module")
def pushed(tmp_path_factory, hub_server):
    """The tiny preset, 30 steps, pushing every 10 steps to the test Hub."""
    qa_core.hub_client.BACKOFF_SECONDS = 0.01
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
    assert final["base_model"] == "demo" and final["dataset"] == str(sample_data_path())
    assert "eval_loss" in checkpoints[1].info  # evaluated at every save


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


def test_the_trained_adapter_changes_the_model(pushed, hub_settings, demo):
    tuned = load_model("demo", "tester/tiny", settings=hub_settings)
    ids = demo.tokenizer(
        ["Answer the following question:\nQuestion: What is a bond?\n---\nAnswer:"], return_tensors="pt"
    )
    with torch.no_grad():
        assert not torch.allclose(tuned.model(**ids).logits, demo.model(**ids).logits, atol=1e-4)


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


def test_hub_failures_during_training_are_reported_and_training_completes(hub_server, hub_settings, tmp_path, capsys):
    hub_server.fail_next(4, route="/commit/")  # the first checkpoint's commit fails on every retry
    record = train(
        tmp_path,
        "--push-to-hub",
        "--hub-repo",
        "tester/flaky",
        "--push-every",
        "10",
        "--max_steps",
        "30",
        server=hub_server,
    )
    out = capsys.readouterr().out
    assert record["step"] == 30
    assert "warning: push of step 10 failed, training goes on" in out
    assert "pushed 2 checkpoint(s) to tester/flaky, 1 push(es) failed: step 10:" in out
    assert [c.step for c in list_checkpoints("tester/flaky", hub_settings)] == [30, 20]


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
        (["--quantization", "3bit"], ModelLoadError, "quantization '3bit' is not one of"),
        (["--push-to-hub"], QAError, "--push-to-hub needs --hub-repo"),
        (["--batching", "bucketed"], QAError, "--batching 'bucketed': choose auto, packed, grouped, max-length"),
    ],
)
def test_bad_input_fails_before_training(tmp_path, args, error, message):
    with pytest.raises(error, match=message):
        train(tmp_path / "out", *args)
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


def test_every_preset_parses():
    for preset in sorted((ROOT / "configs").glob("*.yaml")):
        script_args, training_args = parse_args(["--config", str(preset), "--bf16", "false"])
        assert script_args.lora_r >= 8 and script_args.batching in ("auto", "grouped"), preset.name
    script_args, policy = parse_args(["--config", str(ROOT / "configs/policy-qa-int8.yaml"), "--bf16", "false"])
    assert (policy.optim.value, policy.learning_rate, policy.max_grad_norm, script_args.batching) == (
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
    assert json.loads((tmp_path / "checkpoint-2" / "trainer_state.json").read_text())["global_step"] == 2
