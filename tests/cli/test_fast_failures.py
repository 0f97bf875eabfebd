"""Fast, clear failures: an offline dataset name, and names that are close to a real one."""

from __future__ import annotations

import json
import time

import pytest
from typer.testing import CliRunner

from r1cli.cli import app

runner = CliRunner()


@pytest.mark.parametrize("argv", [
    ["rollout", "openai/gsm8k:main", "-m", "tiny"],
    ["score", "openai/gsm8k", "-r", "format"],  # accuracy alone takes ~3 s to import math-verify
    ["reject-sample", "openai/gsm8k", "--split", "test"],
])
def test_an_offline_dataset_name_fails_at_once_with_a_local_copy_command(argv):
    # conftest sets HF_HUB_OFFLINE=1; without the probe `datasets` spent 8–30 s retrying
    started = time.perf_counter()
    result = runner.invoke(app, argv)
    elapsed = time.perf_counter() - started
    assert result.exit_code == 1, result.stderr
    assert elapsed < 2, elapsed
    name, _, config = argv[1].partition(":")
    split = argv[argv.index("--split") + 1] if "--split" in argv else "train"
    args = f"'{name}'" + (f", '{config}'" if config else "")
    assert "needs the Hugging Face hub" in result.stderr
    # the same save-a-local-copy hint `r1 eval --data PRESET` gives
    assert f"save a local copy once: python -c \"import datasets; datasets.load_dataset({args}, split='{split}')" \
           in result.stderr.replace("\n", ""), result.stderr
    assert result.stdout == ""


def test_an_unreachable_hub_fails_at_once_too(monkeypatch):
    from huggingface_hub import constants

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")  # nothing listens: refused at once
    started = time.perf_counter()
    result = runner.invoke(app, ["rollout", "someone/some-data", "-m", "tiny"])
    assert result.exit_code == 1, result.stderr
    # the probe itself answers in ~0.3 s; importing huggingface_hub's client the first time costs
    # 0.5–2 s on a busy 2-core machine (before: 24 s of "Retrying in 8s" inside `datasets`)
    assert time.perf_counter() - started < 4
    assert "unreachable" in result.stderr and "save a local copy" in result.stderr


def test_eval_gives_the_same_hint_for_a_preset():
    result = runner.invoke(app, ["eval", "--data", "gsm8k", "-m", "tiny"])
    assert result.exit_code == 1
    assert "save a local copy once: python -c \"import datasets; datasets.load_dataset(" \
           in result.stderr.replace("\n", ""), result.stderr


@pytest.mark.parametrize(("argv", "code", "says"), [
    (["rollout", "--template", "r1zero"], 2, "did you mean 'r1-zero'?"),
    (["rollout", "--template", "R1_Zero"], 2, "did you mean 'r1-zero'?"),
    (["grpo", "--template", "chatt"], 2, "did you mean 'chat'?"),
    (["sft", "--template", "nope"], 2, "choose from: r1-zero, chat, none"),
    (["eval", "--template", "r1zero", "--data", "x.jsonl"], 2, "did you mean 'r1-zero'?"),
    (["rollout", "-m", "smollm2"], 1, "did you mean 'smollm2-135m'?"),
    (["rollout", "-m", "tiyn"], 1, "did you mean 'tiny'?"),
    (["rollout", "-m", "tiny", "--engine", "vlm"], 1, "did you mean 'vllm'?"),
    (["rollout", "-m", "tiny", "--engine", "HF"], 1, "did you mean 'hf'?"),
])
def test_a_close_name_gets_a_did_you_mean_before_any_model_loads(argv, code, says):
    started = time.perf_counter()
    result = runner.invoke(app, argv, input=json.dumps({"prompt": "2+2?"}) + "\n", env={"COLUMNS": "300"})
    assert result.exit_code == code, result.output
    assert says in " ".join(result.stderr.split()), result.stderr
    assert time.perf_counter() - started < 1  # the template error used to take 4 s (after the model loaded)
