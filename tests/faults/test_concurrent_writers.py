"""Two `r1` processes writing one output at once: one writes it, the other is refused at once.

Before the lock, two `r1 score a.jsonl -o out.jsonl --resume` started together wrote every id
twice (800 lines for 400 records), and the second died with a FileNotFoundError traceback from
os.replace. Now the output is locked (FILE.lock) while a command writes it: the second writer
exits 1 with a message naming the first one's pid, touches nothing, and the first one's output
holds each record once.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from faultkit import ROOT, r1_env, read_jsonl, wait_for, write_jsonl

R1_SCRIPT = str(Path(sys.executable).with_name("r1"))  # the installed `r1`, as a user runs it
RECORDS = 3000


def _rollouts(n: int) -> list[dict]:
    """Completions with distinct answers (no verdict-cache hits): ~1 ms of math-verify each."""
    return [{"id": f"q{i}", "sample": 0, "prompt": f"What is {i} + 0?", "answer": str(i), "task": "math",
             "completion": f"<think>{i} plus zero</think><answer>{i}.{i % 7}5</answer>"} for i in range(n)]


def _start(*args: object) -> subprocess.Popen:
    return subprocess.Popen([R1_SCRIPT, *map(str, args)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True, cwd=ROOT, env=r1_env())


@pytest.mark.parametrize("second", [["--resume"], []], ids=["both-resume", "second-fresh"])
def test_a_second_writer_is_refused_and_the_first_output_is_whole(tmp_path: Path, second: list[str]) -> None:
    source = write_jsonl(tmp_path / "a.jsonl", _rollouts(RECORDS))
    out = tmp_path / "out.jsonl"
    args = ["score", source, "-r", "accuracy", "-r", "format", "--workers", 1, "-q", "-o", out]
    first, other = _start(*args, "--resume"), None
    try:
        assert wait_for(lambda: Path(f"{out}.part").exists() or first.poll() is not None, timeout=120)
        assert first.poll() is None, "the first writer finished before the second could start: raise RECORDS"
        began = time.monotonic()
        other = _start(*args, *second)
        _, other_err = other.communicate(timeout=120)
        refused_in = time.monotonic() - began
        _, first_err = first.communicate(timeout=300)
    finally:
        for proc in (first, other):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
    assert first.returncode == 0, first_err
    assert other.returncode == 1, other_err
    assert other_err.startswith(f"Error: {out} is being written by another r1 process (pid {first.pid})"), other_err
    assert "Hint: wait for it to finish" in other_err
    assert "Traceback" not in other_err + first_err
    assert refused_in < 60  # at once: it never waited for the lock, nor scored
    got = read_jsonl(out)
    assert Counter(r["id"] for r in got) == Counter(f"q{i}" for i in range(RECORDS))  # each id once
    assert [r["id"] for r in got] == [f"q{i}" for i in range(RECORDS)]  # in input order
    assert not Path(f"{out}.part").exists() and not Path(f"{out}.lock").exists()


def test_two_writers_started_together_never_mix(tmp_path: Path) -> None:
    """Started in the same instant: whichever locks first writes; the other is refused, or (had the
    first already finished) resumes a finished file and adds nothing."""
    source = write_jsonl(tmp_path / "a.jsonl", _rollouts(RECORDS))
    out = tmp_path / "out.jsonl"
    args = ["score", source, "-r", "accuracy", "--workers", 1, "-q", "-o", out, "--resume"]
    procs = [_start(*args), _start(*args)]
    results = [(p.wait(timeout=300), p.stderr.read()) for p in procs]  # type: ignore[union-attr]
    codes = sorted(code for code, _ in results)
    assert codes in ([0, 1], [0, 0]), results
    for code, stderr in results:
        assert "Traceback" not in stderr, stderr
        if code == 1:
            assert "is being written by another r1 process" in stderr, stderr
    assert [r["id"] for r in read_jsonl(out)] == [f"q{i}" for i in range(RECORDS)]
