"""`r1 … | head -1` after every streaming command: a quiet exit, no traceback, no hang.

Each pipeline runs in a real shell with `pipefail` off, as users type it. `head` leaves after
one line while the command still has records to write; the command must then stop within the
timeout, print nothing on stderr (no traceback, no "Exception ignored"), and exit 0 or 1 (the
quiet EPIPE exit) — never 120 (Python's status when the final flush of stdout fails).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from faultkit import ROOT, r1_env, write_jsonl

R1 = f"{sys.executable} -m r1cli"


def _scored(n: int) -> list[dict]:
    return [{"id": f"q{i // 4}", "sample": i % 4, "prompt": "What is 2 + 2?", "answer": "4", "finish_reason": "stop",
             "completion": f"<think>Sample {i}: two and two.</think><answer>4</answer>",
             "rewards": {"accuracy": 1.0, "format": 1.0}, "reward": 2.0} for i in range(n)]


def _pipelines(tiny: str, tmp: Path) -> dict[str, str]:
    scored = write_jsonl(tmp / "scored.jsonl", _scored(20000))
    rollouts = write_jsonl(tmp / "rollouts.jsonl", [{k: v for k, v in r.items() if k not in ("rewards", "reward")}
                                                    for r in _scored(20000)])
    # eval prints one metrics line per benchmark: the second benchmark (scoring 4,000 records) is still
    # running when head leaves, so writing its line meets the closed pipe
    small = write_jsonl(tmp / "small.jsonl", _scored(8))
    big = write_jsonl(tmp / "big.jsonl", [{k: v for k, v in r.items() if k not in ("rewards", "reward")}
                                          for r in _scored(4000)])
    return {
        "data": f"{R1} data arithmetic -n 200000 -q",
        "rollout": f"{R1} data arithmetic -n 2000 -q | {R1} rollout -m {tiny} -n 2 --max-new-tokens 4 --engine-batch-size 4 -q",
        "score": f"{R1} score {rollouts} --workers 2 -q",
        "score-stdin": f"{R1} score -r format --workers 2 -q < {rollouts}",
        "reject-sample": f"{R1} reject-sample {scored} -q",
        "eval": f"{R1} eval --from {small} --from {big} --from {small} --workers 2 -q",
    }


@pytest.mark.parametrize("command", ["data", "rollout", "score", "score-stdin", "reject-sample", "eval"])
def test_head_1_is_a_quiet_early_exit(command: str, tiny: str, tmp_path: Path) -> None:
    pipeline = _pipelines(tiny, tmp_path)[command]
    status = tmp_path / "status"
    script = f"set +o pipefail\n{pipeline} | head -1\necho \"${{PIPESTATUS[@]}}\" > {status}\n"
    proc = subprocess.run(["bash", "-c", script], check=False, capture_output=True, text=True, timeout=120, cwd=ROOT,
                          env=r1_env())
    assert proc.returncode == 0
    assert proc.stderr == "", proc.stderr
    (line,) = proc.stdout.splitlines()
    assert isinstance(json.loads(line), dict)
    statuses = [int(s) for s in status.read_text().split()]
    assert all(s in (0, 1) for s in statuses[:-1]), statuses  # every r1 before head
    assert statuses[-2] == 1, statuses  # the command writing into head did meet the closed pipe
