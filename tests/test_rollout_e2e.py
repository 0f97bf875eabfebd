"""Rollout as a user runs it: separate processes, kill -9, pipes, and the real SmolLM2."""

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter

import pytest

R1 = [sys.executable, "-m", "r1cli"]


def env():
    return {**os.environ, "PYTHONUNBUFFERED": "1"}


def keys(path):
    return Counter((r["id"], r["sample"]) for r in map(json.loads, path.read_text().splitlines()))


def test_kill_9_then_resume_is_exactly_once(tiny_model, tmp_path):
    prompts = tmp_path / "p.jsonl"
    subprocess.run(R1 + ["data", "arithmetic", "-n", "24", "-o", str(prompts), "-q"], check=True)
    out = tmp_path / "out.jsonl"
    part = tmp_path / "out.jsonl.part"
    args = R1 + ["rollout", str(prompts), "-m", tiny_model, "-n", "3", "--max-new-tokens", "16",
                 "--engine-batch-size", "6", "-q", "-o", str(out), "--resume"]
    proc = subprocess.Popen(args, env=env(), stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while time.time() < deadline and (not part.exists() or part.stat().st_size < 2000):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert part.exists() and not out.exists()
    done_before = len(part.read_text().splitlines())
    assert 0 < done_before < 72
    subprocess.run(args, check=True, env=env())
    assert not part.exists()
    got = keys(out)
    assert set(got.values()) == {1}
    ids = [json.loads(line)["id"] for line in prompts.read_text().splitlines()]
    assert got == Counter((i, s) for i in ids for s in range(3))


def test_rollout_into_head_is_quiet(tiny_model):
    cmd = (f"{sys.executable} -m r1cli data arithmetic -n 40 | "
           f"{sys.executable} -m r1cli rollout -m {tiny_model} -n 2 --max-new-tokens 4 --engine-batch-size 4 | head -1")
    proc = subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=120, env=env())
    assert proc.returncode == 0
    assert json.loads(proc.stdout)["sample"] == 0
    assert "Traceback" not in proc.stderr and "Error" not in proc.stderr, proc.stderr


@pytest.mark.slow
def test_smollm2_rollout_end_to_end(smollm2, tmp_path):
    """The real packaged model: text decodes, finish reasons and token counts agree."""
    prompts = tmp_path / "p.jsonl"
    prompts.write_text(json.dumps({"id": "q", "prompt": "What is the capital of France?"}) + "\n")
    out = tmp_path / "out.jsonl"
    # 4 samples at T 0.6: a 135M model answers in French or rambles in some of them (seeds 0 and 1
    # do under transformers 5.24), so "Paris" is asked of the group, not of every sample
    proc = subprocess.run(R1 + ["rollout", str(prompts), "-m", "smollm2-135m", "-n", "4", "--max-new-tokens", "40",
                                "--seed", "0", "-o", str(out)], capture_output=True, text=True, env=env())
    assert proc.returncode == 0, proc.stderr
    assert "generated 4 completions for 1 prompts" in proc.stderr
    records = [json.loads(x) for x in out.read_text().splitlines()]
    assert [r["sample"] for r in records] == [0, 1, 2, 3]

    from r1cli.models import load_tokenizer

    tok = load_tokenizer("smollm2-135m")
    chat = tok.apply_chat_template([{"role": "user", "content": "What is the capital of France?"}],
                                   add_generation_prompt=True, tokenize=False)
    for r in records:
        assert r["model"] == "smollm2-135m"
        assert r["prompt_tokens"] == len(tok(chat, add_special_tokens=False)["input_ids"])
        words = r["completion"].split()
        assert len(words) >= 3 and sum(w.strip(".,!?").isalpha() for w in words) >= len(words) // 2
        n = len(tok(r["completion"], add_special_tokens=False)["input_ids"])
        if r["finish_reason"] == "stop":
            assert r["completion_tokens"] < 40 and abs(r["completion_tokens"] - (n + 1)) <= 2  # + EOS
        else:
            assert r["completion_tokens"] == 40 and abs(n - 40) <= 2
    assert "Paris" in " ".join(r["completion"] for r in records)
