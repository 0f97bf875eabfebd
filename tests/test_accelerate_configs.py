"""examples/accelerate/: every config parses as `accelerate launch --config_file` reads it, and
the DDP one trains `r1 grpo` in 2 CPU processes."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "examples" / "accelerate"


@pytest.mark.parametrize("name, kind, extra", [
    ("ddp", "MULTI_GPU", {}),
    ("zero2", "DEEPSPEED", {"zero_stage": 2}),
    ("zero3", "DEEPSPEED", {"zero_stage": 3, "zero3_init_flag": True, "zero3_save_16bit_model": True}),
    ("fsdp", "FSDP", {"fsdp_version": 2, "fsdp_auto_wrap_policy": "TRANSFORMER_BASED_WRAP",
                      "fsdp_state_dict_type": "FULL_STATE_DICT"}),
])
def test_config_loads_with_accelerates_own_loader(name, kind, extra):
    from accelerate.commands.config.config_args import load_config_from_file

    config = load_config_from_file(str(CONFIGS / f"{name}.yaml"))
    assert config.distributed_type.name == kind
    assert config.num_machines == 1 and not config.use_cpu
    section = config.deepspeed_config if kind == "DEEPSPEED" else config.fsdp_config
    assert {k: section[k] for k in extra} == extra


@pytest.mark.parametrize("name, flag", [("ddp", "multi_gpu"), ("zero2", "use_deepspeed"), ("zero3", "use_deepspeed"),
                                        ("fsdp", "use_fsdp")])
def test_accelerate_launch_accepts_the_config(name, flag):
    from accelerate.commands.launch import (
        _validate_launch_command,
        launch_command_parser,
    )

    args = launch_command_parser().parse_args(["--config_file", str(CONFIGS / f"{name}.yaml"), "train.py"])
    _validate_launch_command(args)  # what `accelerate launch` does with the file before starting anything
    assert getattr(args, flag) is True
    assert args.num_processes >= 2


def test_every_config_is_documented():
    page = (ROOT / "docs" / "engines.md").read_text()
    for path in sorted(CONFIGS.glob("*.yaml")):
        assert f"examples/accelerate/{path.name}" in page, path.name


@pytest.mark.slow
def test_ddp_config_trains_grpo_in_two_cpu_processes(tiny_model, tmp_path):
    """`accelerate launch --config_file examples/accelerate/ddp.yaml -m r1cli grpo …`: 2 ranks, one gloo group."""
    prompts = tmp_path / "p.jsonl"
    subprocess.run([sys.executable, "-m", "r1cli", "data", "arithmetic", "-n", "8", "-q", "-o", str(prompts)],
                   check=True)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    out = tmp_path / "run"
    accelerate = str(Path(sys.executable).with_name("accelerate"))
    proc = subprocess.run(
        [accelerate, "launch", "--config_file", str(CONFIGS / "ddp.yaml"), "--num_processes", "2",
         "--main_process_port", str(port), "-m", "r1cli", "grpo", "--data", str(prompts), "-m", tiny_model,
         "-r", "format", "--max-steps", "2", "-n", "2", "--batch-size", "2", "--max-completion-length", "8",
         "-o", str(out)],
        capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"}, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    config = json.loads((out / "r1_config.json").read_text())
    assert config["processes"] == 2  # TrainingArguments.world_size: both ranks trained as one DDP group
    assert (out / "model.safetensors").exists()
    steps = [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert steps and max(steps) == 2
