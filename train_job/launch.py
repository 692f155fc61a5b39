"""The job a launcher really formed, as the running trainer sees it: checked before training, and
recorded in every checkpoint.

The training script runs unchanged under `accelerate launch` and `torchrun`, but a launch can fall
short of what its config asked without a word: `accelerate launch` with `use_cpu` starts each
process on its own (its simple launcher sets MASTER_ADDR and MASTER_PORT, no rank and no world
size), so two "machines" train two separate models that would both push; an FSDP or DeepSpeed
config that this machine's accelerate cannot honour leaves plain data parallel. Each is one
`error:` line here, before any training. What the checkpoint record says (`processes`,
`machines`, `fsdp`, `deepspeed`) is read from the running trainer, never from a config.

    torchrun --nnodes 2 --node_rank 0 --nproc_per_node 1 --master_addr 127.0.0.1 --master_port 29511 \\
        train_job/run.py --config configs/tiny-cpu.yaml      # and node_rank 1 on the other machine
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from transformers import Trainer

from qa_core.errors import QAError

TORCHRUN = (
    "start each machine with torchrun --nnodes N --node_rank R --nproc_per_node P --master_addr ADDR "
    "--master_port PORT (see docs/scale-out.md)"
)


def check_launch(device: str, env: Mapping[str, str] = os.environ) -> None:
    """Refuse, before anything is loaded, a launch that cannot form the job it asks for.

    Raises:
        QAError: MASTER_ADDR is set (a multi-process or multi-machine launch) but no WORLD_SIZE, so
            every process would train alone and push its own checkpoints; or FSDP / DeepSpeed asked
            (ACCELERATE_USE_FSDP / ACCELERATE_USE_DEEPSPEED) on a CPU `device`, where accelerate
            runs plain data parallel instead.
    """
    if "MASTER_ADDR" in env and "WORLD_SIZE" not in env:
        raise QAError(
            f"this process was started alone, although its launcher set MASTER_ADDR={env['MASTER_ADDR']} for a "
            "job of several processes or machines (accelerate launch with use_cpu starts each on its own): " + TORCHRUN
        )
    if device == "cpu":
        for asked in asked_for(env):
            raise QAError(
                f"the launch config asks for {asked}, and on CPUs accelerate runs plain data parallel instead: "
                "use a data-parallel launch here (docs/scale-out.md), or run it where there are GPUs"
            )


def asked_for(env: Mapping[str, str] = os.environ) -> list[str]:
    """What the launcher's environment asks of the trainer beyond data parallel: FSDP, DeepSpeed."""
    asked = {"FSDP": "ACCELERATE_USE_FSDP", "DeepSpeed": "ACCELERATE_USE_DEEPSPEED"}
    return [f"{name} ({variable}=true)" for name, variable in asked.items() if env.get(variable, "").lower() == "true"]


def job_facts(trainer: Trainer, env: Mapping[str, str] = os.environ) -> dict:
    """What the running job is: {"processes", "machines", "fsdp", "deepspeed"}, from the trainer and
    the launcher's environment (LOCAL_WORLD_SIZE: the processes of one machine)."""
    processes = trainer.args.world_size
    per_machine = int(env.get("LOCAL_WORLD_SIZE", processes)) or 1
    return {
        "processes": processes,
        "machines": max(processes // per_machine, 1),
        "fsdp": bool(trainer.is_fsdp_enabled),
        "deepspeed": bool(trainer.is_deepspeed_enabled),
    }


def check_job(facts: dict, env: Mapping[str, str] = os.environ) -> None:
    """Refuse a job that is not what the launch asked for: fewer processes than WORLD_SIZE, or FSDP /
    DeepSpeed asked but not running.

    Raises:
        QAError: one line saying what was asked and what runs.
    """
    asked = int(env.get("WORLD_SIZE", facts["processes"]))
    if facts["processes"] != asked:
        raise QAError(f"the launcher asked for {asked} processes and {facts['processes']} formed the job: " + TORCHRUN)
    running = [name for name, on in (("FSDP", facts["fsdp"]), ("DeepSpeed", facts["deepspeed"])) if on]
    missing = [wanted for wanted in asked_for(env) if wanted.split()[0] not in running]
    if missing:
        raise QAError(f"the launch config asks for {missing[0]}, and the trainer runs without it")
