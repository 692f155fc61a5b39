"""Outgrowing one process: launchers that form one job, one push per checkpoint, records that say
what really ran, and launches that fall short refused in one line (docs/scale-out.md)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from huggingface_hub import snapshot_download
from peft import LoraConfig, PeftModel, get_peft_model
from transformers import AutoModelForCausalLM

from qa_core.errors import QAError
from qa_core.hub.checkpoints import list_checkpoints
from tests.conftest import HUB_TOKEN
from tests.fsdp_adapter_job import PROMPT_IDS
from tests.helpers import ROOT, free_port
from train_job.shards import check_adapter

pytestmark = pytest.mark.slow  # see pyproject.toml: the fast tier is pytest -m "not slow"

TINY = ["train_job/run.py", "--config", "configs/tiny-cpu.yaml"]
BIN = os.path.dirname(sys.executable)  # torchrun and accelerate, beside this interpreter


def launch(argv: list[str], tmp_path: Path, server=None) -> subprocess.Popen:
    """Start `argv` in the repository, its output in tmp_path/log-N.txt (N: the launches so far)."""
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", "HF_TOKEN": HUB_TOKEN}
    if server:
        env |= {"HF_ENDPOINT": server.url, "HF_HUB_DISABLE_XET": "1"}
    log = (tmp_path / f"log-{len(list(tmp_path.glob('log-*')))}.txt").open("w")
    return subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, text=True)


def output_of(tmp_path: Path, n: int) -> str:
    return (tmp_path / f"log-{n}.txt").read_text()


def test_two_machines_on_loopback_are_one_job_that_pushes_each_checkpoint_once(
    hub_server, hub_settings, demo_dir, tmp_path
):
    port, out = free_port(), tmp_path / "run"
    run = [*TINY, "--output_dir", str(out), "--max_steps", "4", "--save_steps", "2", "--eval_steps", "2"]
    run += ["--push-to-hub", "--hub-repo", "tester/two-machines", "--push-every", "2"]
    machines = [
        launch(
            [f"{BIN}/torchrun", "--nnodes", "2", "--node_rank", str(rank), "--nproc_per_node", "1"]
            + ["--master_addr", "127.0.0.1", "--master_port", str(port), *run],
            tmp_path,
            hub_server,
        )
        for rank in (0, 1)
    ]
    codes = [machine.wait(timeout=600) for machine in machines]
    assert codes == [0, 0], output_of(tmp_path, 0)[-3000:] + output_of(tmp_path, 1)[-3000:]
    assert "with 2 process(es): 4 steps" in output_of(tmp_path, 0)
    checkpoints = list_checkpoints("tester/two-machines", hub_settings)
    assert [c.step for c in checkpoints] == [4, 2]  # each pushed once, by one process
    for c in checkpoints:
        job = {key: c.info[key] for key in ("processes", "machines", "fsdp", "deepspeed")}
        assert job == {"processes": 2, "machines": 2, "fsdp": False, "deepspeed": False}

    # Resumed from the Hub on one process (another world size): continues at step 4 and pushes step 6.
    alone = launch(
        [sys.executable, *TINY, "--output_dir", str(tmp_path / "resumed"), "--max_steps", "6", "--save_steps", "2"]
        + ["--eval_steps", "2", "--push-to-hub", "--hub-repo", "tester/two-machines", "--push-every", "2"]
        + ["--resume-from-hub", "tester/two-machines"],
        tmp_path,
        hub_server,
    )
    assert alone.wait(timeout=600) == 0, output_of(tmp_path, 2)[-3000:]
    checkpoints = list_checkpoints("tester/two-machines", hub_settings)
    assert [c.step for c in checkpoints] == [6, 4, 2]  # no earlier step pushed again
    assert (checkpoints[0].info["processes"], checkpoints[0].info["machines"]) == (1, 1)
    hub = {"endpoint": hub_settings.hf_endpoint, "token": HUB_TOKEN}
    at_4, at_6 = (Path(snapshot_download("tester/two-machines", revision=c.commit, **hub)) for c in checkpoints[1::-1])
    history = [json.loads((folder / "trainer_state.json").read_text())["log_history"] for folder in (at_4, at_6)]
    assert history[1][: len(history[0])] == history[0]  # the two-machine run's steps, then more

    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(demo_dir), at_6)
    lora_b = {name: p for name, p in model.named_parameters() if "lora_B" in name}
    assert lora_b and all(not torch.any(torch.all(p == 0, dim=1)) for p in lora_b.values())  # no row left at zero


def test_an_accelerate_launch_that_forms_no_job_is_one_error_line(tmp_path):
    """accelerate with --cpu starts each "machine" alone (MASTER_ADDR set, no WORLD_SIZE): it used to
    train one model per machine, each pushing."""
    argv = [f"{BIN}/accelerate", "launch", "--cpu", "--num_machines", "2", "--num_processes", "2"]
    argv += ["--machine_rank", "0", "--main_process_ip", "127.0.0.1", "--main_process_port", str(free_port())]
    process = launch([*argv, *TINY, "--output_dir", str(tmp_path / "run")], tmp_path)
    assert process.wait(timeout=300) != 0  # accelerate reports the script's exit status 2 as its own error
    errors = [line for line in output_of(tmp_path, 0).splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith("error: this process was started alone, although its launcher")
    assert not (tmp_path / "run").exists()  # refused before anything was trained or saved


def test_the_fsdp_preset_where_fsdp_cannot_run_is_one_error_line(tmp_path):
    """On this CPU accelerate would wrap the model for plain data parallel: never trained silently."""
    argv = [f"{BIN}/accelerate", "launch", "--config_file", "configs/launch/fsdp.yaml", "--mixed_precision", "no"]
    argv += ["--main_process_port", str(free_port())]
    process = launch([*argv, *TINY, "--output_dir", str(tmp_path / "run"), "--max_steps", "2"], tmp_path)
    assert process.wait(timeout=300) != 0
    errors = [line for line in output_of(tmp_path, 0).splitlines() if line.startswith("error:")]
    assert errors == [
        "error: the launch config asks for FSDP (ACCELERATE_USE_FSDP=true), and on CPUs accelerate runs plain data "
        "parallel instead: use a data-parallel launch here (docs/scale-out.md), or run it where there are GPUs"
    ]


def test_an_fsdp2_sharded_adapter_is_written_whole_and_loads_in_one_process(demo_dir, tmp_path):
    """torch's fully_shard on 2 gloo processes, three training steps, then the gather-and-write path
    of a checkpoint save; the folder loads with PEFT in this one process and gives the sharded
    model's logits."""
    argv = [f"{BIN}/torchrun", "--nproc_per_node", "2", "--master_port", str(free_port())]
    process = launch([*argv, "tests/fsdp_adapter_job.py", str(tmp_path), str(demo_dir)], tmp_path)
    assert process.wait(timeout=300) == 0, output_of(tmp_path, 0)[-3000:]
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(demo_dir), tmp_path / "adapter").eval()
    lora = {name: p for name, p in model.named_parameters() if "lora_" in name}
    assert len(lora) == 2 * 4 * model.config.num_hidden_layers  # A and B of q, k, v, o in every layer
    hidden = model.config.hidden_size
    assert all(p.shape in ((8, hidden), (hidden, 8), (8, 64), (64, 8)) for p in lora.values())  # whole, not halves
    assert all(not torch.any(torch.all(p == 0, dim=1)) for n, p in lora.items() if "lora_B" in n)  # moved
    with torch.no_grad():
        logits = model(input_ids=PROMPT_IDS).logits
    assert (logits - torch.load(tmp_path / "sharded_logits.pt")).abs().max() <= 1e-4


def test_an_adapter_gathered_from_one_shard_is_refused(demo_dir):
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(demo_dir), LoraConfig(r=8, target_modules=["q_proj"]))
    name = next(n for n, _ in model.named_parameters() if "lora_A" in n)
    whole = {n: p.detach().clone() + 1 for n, p in model.named_parameters()}  # every lora_B moved off zero
    check_adapter(model, whole, trained=True)
    half = {**whole, name: whole[name][:4]}  # rank 0's slice of 2 (accelerate#4206)
    with pytest.raises(QAError, match=r"lora_A.default.weight is \(4, 128\), the model's is \(8, 128\)"):
        check_adapter(model, half, trained=True)
    b = name.replace("lora_A", "lora_B")
    reverted = {**whole, b: torch.cat([whole[b][:64], torch.zeros_like(whole[b][64:])])}  # a resume on 2
    with pytest.raises(QAError, match="has 64 rows still at their initial zeros"):
        check_adapter(model, reverted, trained=True)
