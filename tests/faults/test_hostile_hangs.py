"""A hang is a wrong answer: completions that exhaust a limit score 0.0, in `r1 score` and in `r1 grpo`.

With the old fixed record timeout (5 s, equal to the code reward's per-test limit) the pool killed
these records before their reward reported, and they scored null: a sample left out of the GRPO
group mean, so hanging paid better than being wrong. Now a record's budget is what its rewards'
own limits add up to: the sandbox's per-test limit fires first (0.0, with its reason), a correct
but slow program is scored 1.0, and a verifier stuck in C (sympy) is killed past the budget and
scores 0.0 with `pred` kept. In `r1 grpo` the rewards run in the same pool: a stuck completion
scores 0.0 within its budget and the step goes on.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
import typer
from faultkit import run_r1
from typer.testing import CliRunner

from r1cli import rewards
from r1cli.rewards.trl import PooledRewards


def code_record(name: str, program: str, tests: int = 1) -> dict:
    return {"id": name, "task": "code", "completion": f"Here:\n```python\n{program}\n```",
            "tests": [{"input": str(i), "output": str(i + 1)} for i in range(tests)]}


CODE_HANGS = {
    # name: (program, tests, expected code reward)
    "busy loop": ("while True: pass", 1, 0.0),
    "sleep": ("import time\ntime.sleep(100)", 1, 0.0),
    "ignores SIGXCPU": ("import signal\nsignal.signal(signal.SIGXCPU, signal.SIG_IGN)\nwhile True: pass", 1, 0.0),
    # correct, 10 tests × 0.6 s: more than the old 5 s record timeout, each well within its 5 s limit
    "correct but slow": ("import time\ntime.sleep(0.6)\nprint(int(input()) + 1)", 10, 1.0),
}


def test_code_hangs_score_zero_and_a_slow_correct_program_one(tmp_path: Path) -> None:
    source = tmp_path / "code.jsonl"
    source.write_text("".join(json.dumps(code_record(name, program, tests)) + "\n"
                              for name, (program, tests, _) in CODE_HANGS.items()))
    start = time.monotonic()
    result = run_r1("score", source, "-r", "code", "--workers", "2", timeout=120)
    elapsed = time.monotonic() - start
    assert result.returncode == 0, result.stderr
    out = {r["id"]: r for r in map(json.loads, result.stdout.splitlines())}
    for name, (_, _, expected) in CODE_HANGS.items():
        assert out[name]["rewards"] == {"code": expected}, (name, out[name])
        if expected == 0.0:
            assert "time limit" in out[name]["score_error"], out[name]
    # each hang costs one per-test limit (5 s); the slow program 10 × 0.6 s; 2 workers
    assert elapsed < 60, elapsed


MATH_STALLS = [r"\sum_{k=1}^{10^{12}} k^{k}", r"(\frac{10^{10}}{1})!", r"10^{\frac{10^{10}}{1}}",
               r"\int_0^1 e^{x^{x^{x}}}dx"]


def test_answers_that_stall_sympy_score_zero_and_keep_pred(tmp_path: Path) -> None:
    source = tmp_path / "math.jsonl"
    source.write_text("".join(json.dumps({"id": f"m{i}", "answer": "5", "completion": f"<think>x</think> \\boxed{{{a}}}"})
                              + "\n" for i, a in enumerate(MATH_STALLS)))
    start = time.monotonic()
    result = run_r1("score", source, "-r", "accuracy", "--workers", "2", timeout=120)
    elapsed = time.monotonic() - start
    assert result.returncode == 0, result.stderr
    out = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["rewards"] for r in out] == [{"accuracy": 0.0}] * 4, out
    assert [r["pred"] for r in out] == MATH_STALLS
    # two at a time, each within the record budget (the rewards' own limits + 1 s) and a start-up
    assert elapsed < 2 * (5 + 1) + 20, elapsed


# ---- r1 grpo ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def hang_reward() -> str:
    """1.0, or stuck for good on prompts whose answer is 'hang'; it declares a 0.5 s budget."""
    if "test_hang" not in rewards.names():
        @rewards.register("test_hang", summary="test reward")
        def _hang():
            def reward(completion, answer=None, **_):
                if answer == "hang":
                    time.sleep(1000)
                return 1.0

            reward.budget_s = 0.5
            return reward
    return "test_hang"


def test_pooled_rewards_reuse_their_workers_and_bound_a_hang(hang_reward: str) -> None:
    pid = rewards.Reward("pid", 1.0, lambda completion, **_: float(os.getpid()))
    pid.fn.budget_s = 0.5  # type: ignore[attr-defined]
    pooled = PooledRewards([*rewards.resolve([hang_reward]), pid], workers=2)
    hang_fn, pid_fn = pooled.functions()
    try:
        pids = set()
        for _ in range(3):
            batch = dict(prompts=["p"] * 4, completions=["a", "b", "c", "d"], answer=["ok", "ok", "ok", "ok"])
            assert hang_fn(**batch) == [1.0] * 4
            pids |= set(pid_fn(**batch))
        assert len(pids) <= 2 and os.getpid() not in pids  # the same two forked workers, every batch
        start = time.monotonic()
        batch = dict(prompts=["p"] * 4, completions=["a", "b", "c", "d"], answer=["ok", "hang", "hang", "ok"])
        assert hang_fn(**batch) == [1.0, 0.0, 0.0, 1.0]
        assert time.monotonic() - start < 0.5 + 0.5 + 1.0 + 3  # both budgets, the margin, forks
        assert all(v is not None for v in pid_fn(**batch))  # the reward after the hang still ran
    finally:
        pooled.close()


def test_grpo_goes_on_past_a_hanging_completion(tmp_path: Path, tiny_model: str, hang_reward: str) -> None:
    from r1cli.cli._common import reports_errors
    from r1cli.cli.grpo import grpo_cmd

    app = typer.Typer()
    app.command("grpo")(reports_errors(grpo_cmd))
    app.callback()(lambda: None)
    data = tmp_path / "p.jsonl"
    data.write_text(json.dumps({"prompt": "Compute 2 + 3.", "answer": "hang"}) + "\n"
                    + json.dumps({"prompt": "Compute 4 * 2.", "answer": "8"}) + "\n")
    out = tmp_path / "run"
    start = time.monotonic()
    result = CliRunner().invoke(app, ["grpo", "-m", tiny_model, "--data", str(data), "-r", hang_reward,
                                      "--max-steps", "2", "-n", "2", "--batch-size", "4",
                                      "--max-completion-length", "8", "-o", str(out), "-q"])
    elapsed = time.monotonic() - start
    assert result.exit_code == 0, result.stderr
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2]
    for row in rows:  # each batch: 2 completions of each prompt; the stuck ones score 0.0, not null
        assert row[f"reward/{hang_reward}"] == 0.5 and row["score/timed_out"] == 2
    assert elapsed < 120, elapsed  # in-process and unbounded, the first reward call would never return
