"""kill -9 at random moments, then the same command again: every (id, sample) exactly once.

Each test runs the command once uninterrupted (the reference, and the measured duration the
kill moments are drawn from), then the same command on a fresh output, killed with SIGKILL
(its whole process group) three times at seeded random moments while it writes, and finally
run to the end. The result must equal the reference as a multiset of records. Rollouts run
in float32 with one prompt per generate call, so a resumed run's batches are the reference's
and even the texts match.
"""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

from faultkit import (
    complete_lines,
    keys,
    kill_and_rerun,
    kill_group,
    kill_while_writing,
    multiset,
    read_jsonl,
    size,
    start_r1,
    timed_run,
    whole_lines,
    write_jsonl,
)

N = 2  # samples per prompt


def _progress(output: Path, total: int):
    """Share of the `total` output lines written so far, in FILE.part or (finished) FILE."""
    part = Path(str(output) + ".part")
    return lambda: (complete_lines(part) + complete_lines(output)) / total


def _never_incomplete(output: Path, total: int):
    """After a kill, FILE is either absent (the work is in FILE.part) or complete."""
    def check(_: int) -> None:
        if output.exists():
            assert whole_lines(output) == total
    return check


def _assert_exactly_once(got: list[dict], reference: list[dict]) -> None:
    assert set(keys(got).values()) == {1}, [k for k, c in keys(got).items() if c > 1]
    assert keys(got) == keys(reference)
    assert multiset(got) == multiset(reference)


def test_rollout(tiny: str, prompts, tmp_path: Path) -> None:
    source = prompts(8)
    total = 8 * N
    args = ["rollout", source, "-m", tiny, "-n", N, "--max-new-tokens", 8, "--engine-batch-size", N, "--dtype", "float32",
            "--seed", 0, "-q"]
    reference = tmp_path / "reference.jsonl"
    window = timed_run([*args, "-o", reference], _progress(reference, total), tmp_path / "reference.log")
    out = tmp_path / "out.jsonl"
    kills = kill_and_rerun([*args, "-o", out, "--resume"], progress=_progress(out, total), window=window,
                           rng=random.Random(1), logs=tmp_path, after_kill=_never_incomplete(out, total))
    print(kills)  # shown with -s: where the kills landed
    assert kills.landed >= 1, kills
    assert not Path(str(out) + ".part").exists()
    _assert_exactly_once(read_jsonl(out), read_jsonl(reference))


def _rollout_records(prompts: int) -> list[dict]:
    """Completions with distinct answers (no verdict-cache hits): ~1 ms of math-verify each."""
    rows = []
    for i in range(prompts):
        gold = 3 * i + 1
        for s in range(N):
            pred = gold if s == 0 else f"{gold}.{s}5"
            rows.append({"id": f"q{i}", "sample": s, "prompt": f"What is {gold} + 0?", "answer": str(gold),
                         "task": "math", "completion": f"<think>{gold} plus zero</think><answer>{pred}</answer>"})
    return rows


def test_score(tmp_path: Path) -> None:
    rows = _rollout_records(1500)
    source = write_jsonl(tmp_path / "rollouts.jsonl", rows)
    args = ["score", source, "-r", "accuracy", "-r", "format", "--workers", 2, "-q"]
    reference = tmp_path / "reference.jsonl"
    window = timed_run([*args, "-o", reference], _progress(reference, len(rows)), tmp_path / "reference.log")
    out = tmp_path / "out.jsonl"
    kills = kill_and_rerun([*args, "-o", out, "--resume"], progress=_progress(out, len(rows)), window=window,
                           rng=random.Random(2), logs=tmp_path, after_kill=_never_incomplete(out, len(rows)))
    print(kills)  # shown with -s: where the kills landed
    assert kills.landed >= 1, kills
    got = read_jsonl(out)
    _assert_exactly_once(got, read_jsonl(reference))
    assert [(r["id"], r["sample"]) for r in got] == [(r["id"], r["sample"]) for r in rows]  # input order
    assert sum(r["rewards"]["accuracy"] for r in got) == 1500  # sample 0 of each prompt is right


def test_reject_sample(tmp_path: Path) -> None:
    """reject-sample has no --resume: it writes FILE.part and renames it, so a kill leaves no FILE."""
    rows = [{"id": f"q{i}", "sample": s, "prompt": f"Question {i}?", "answer": "4", "finish_reason": "stop",
             "completion": f"<think>Sample {s} of question {i}.</think><answer>{4 + s % 2}</answer>",
             "rewards": {"accuracy": float(s % 2 == 0)}, "reward": float(s % 2 == 0)}
            for i in range(20000) for s in range(N)]
    source = write_jsonl(tmp_path / "scored.jsonl", rows)
    reference = tmp_path / "reference.jsonl"
    out, part = tmp_path / "out.jsonl", tmp_path / "out.jsonl.part"
    args = ["reject-sample", source, "-q"]
    window = timed_run([*args, "-o", reference], lambda: float(size(Path(f"{reference}.part")) > 0 or reference.exists()),
                       tmp_path / "reference.log")
    expected = size(reference)

    def written() -> float:
        return (size(part) or (expected if out.exists() else 0)) / expected

    def no_output_after_a_kill(_: int) -> None:
        assert not out.exists() or size(out) == expected  # absent, or the run had finished

    kills = kill_and_rerun([*args, "-o", out], progress=written, window=window, rng=random.Random(3), logs=tmp_path,
                           after_kill=no_output_after_a_kill)
    print(kills)  # shown with -s: where the kills landed
    assert kills.landed >= 1, kills
    assert not part.exists()
    got = read_jsonl(out)
    assert len(got) == 20000
    _assert_exactly_once(got, read_jsonl(reference))


# ---- distill: four stages, each resumable ----------------------------------------------------------

STAGES = ("rollout", "score", "select", "train")
PROMPTS, STEPS = 6, 3


def _stage_progress(out: Path) -> dict:
    """Per stage, the share of its output written so far: records in its JSONL file, steps logged."""
    files = {"rollout": "rollouts.jsonl", "score": "scored.jsonl", "select": "selected.jsonl"}
    progress = {stage: _progress(out / name, PROMPTS * N) for stage, name in files.items()}
    progress["train"] = lambda: complete_lines(out / "student" / "metrics.jsonl") / STEPS
    return progress


def _finished(out: Path, stage: str) -> bool:
    """Whether the stage's manifest (OUT/rollouts.jsonl.r1.json, …, OUT/student.r1.json) says it finished."""
    name = {"rollout": "rollouts.jsonl", "score": "scored.jsonl", "select": "selected.jsonl", "train": "student"}[stage]
    try:
        return json.loads((out / f"{name}.r1.json").read_text())["complete"] is True
    except (OSError, ValueError, KeyError):
        return False


def test_distill(tiny: str, prompts, tmp_path: Path) -> None:
    """Killed in three seeded stages at random moments, `r1 distill` run again finishes every stage once."""
    source = prompts(PROMPTS)
    args = ["distill", "--teacher", tiny, "--student", tiny, "--data", source, "-n", N, "--max-new-tokens", 8,
            "--engine-batch-size", N, "--dtype", "float32", "-r", "accuracy", "-r", "format", "--workers", 1,
            "--no-correct-only", "--keep-truncated", "--max-mixed", 1, "--allow-code-blocks", "--dedup", "none",
            "--max-steps", STEPS, "--batch-size", 2, "-q"]

    # the reference run, noting when each stage's output first grows and when the stage is done
    reference = tmp_path / "reference"
    progress = _stage_progress(reference)
    proc = start_r1(*args, "-o", reference, log=tmp_path / "reference.log")
    begin, first, done = time.monotonic(), {}, {}
    while proc.poll() is None:
        now = time.monotonic() - begin
        for stage in STAGES:
            if stage not in first and progress[stage]() > 0:
                first[stage] = now
            if stage not in done and _finished(reference, stage):
                done[stage] = now
        time.sleep(0.01)
    assert proc.returncode == 0, (tmp_path / "reference.log").read_text()[-3000:]
    end = time.monotonic() - begin
    window = {s: max(done.get(s, end) - first.get(s, end), 0.05) for s in STAGES}

    # three runs, each killed in a stage drawn at random (in stage order), at a random moment of
    # that stage's productive phase (as in `kill_and_rerun`), then a run to the end
    rng = random.Random(4)
    targets = sorted(rng.sample(STAGES, 3), key=STAGES.index)
    out = tmp_path / "out"
    progress = _stage_progress(out)
    kills = []
    for i, stage in enumerate(targets):
        log = tmp_path / f"kill-{i}.log"
        proc = start_r1(*args, "-o", out, log=log)
        try:
            kills.append(f"{stage}: {kill_while_writing(proc, progress[stage], window[stage], rng)}")
        except AssertionError as exc:
            raise AssertionError(f"{exc}: {log.read_text()[-3000:]}") from None
        finally:
            kill_group(proc)
        for name in ("rollouts.jsonl", "scored.jsonl", "selected.jsonl"):  # a stage's file is whole or absent
            if (out / name).exists():
                whole_lines(out / name)
    print(", ".join(kills))
    assert any("already finished" not in k for k in kills), kills
    final = start_r1(*args, "-o", out, log=tmp_path / "final.log")
    assert final.wait(300) == 0, (tmp_path / "final.log").read_text()[-3000:]

    for name in ("rollouts.jsonl", "scored.jsonl", "selected.jsonl"):
        got, expected = read_jsonl(out / name), read_jsonl(reference / name)
        assert len(got) == PROMPTS * N, (name, kills)
        _assert_exactly_once(got, expected)
    for stage in STAGES:
        assert _finished(out, stage), stage
    assert not list(out.glob("*.part")) and not list(out.glob("*.part.r1.json")) and not list(out.glob("*.lock"))
    assert (out / "student" / "model.safetensors").is_file()
    steps = [json.loads(line)["step"] for line in (out / "student" / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(1, STEPS + 1)), steps  # a restarted training does not log a step twice
