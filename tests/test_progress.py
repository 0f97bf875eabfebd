"""Progress that tells the truth: totals and an ETA for files, counts for streams, a one-line hint
instead of a bar when the input is a terminal, rates over a stage's own work, and the command
that resumes after Ctrl-C."""

from __future__ import annotations

import io
import json
import os
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest
import typer
from rich.console import Console

from r1cli.cli import _common
from r1cli.cli._common import BusyClock, input_total, progress_bar, reports_errors, resume_command

R1 = str(Path(sys.executable).with_name("r1"))


@pytest.mark.parametrize(("name", "content", "per_record", "expected"), [
    ("p.jsonl", '{"a": 1}\n{"a": 2}\n', 1, 2),
    ("p.jsonl", '{"a": 1}\n{"a": 2}', 1, 2),          # no final newline
    ("p.jsonl", '{"a": 1}\n{"a": 2}\n', 4, 8),        # prompts × samples
    ("p.jsonl", "", 1, 0),
    ("p.json", '[{"a": 1}]', 1, None),                # not line-based: counts only
    ("-", None, 1, None),                             # stdin: a stream
    ("openai/gsm8k", None, 1, None),                  # a dataset name
    ("missing.jsonl", None, 1, None),
])
def test_input_total(tmp_path, name, content, per_record, expected):
    source = name
    if content is not None:
        (tmp_path / name).write_text(content)
        source = str(tmp_path / name)
    assert input_total(source, per_record=per_record) == expected


def _terminal(monkeypatch) -> io.StringIO:
    out = io.StringIO()
    monkeypatch.setattr(_common, "err", Console(file=out, force_terminal=True, width=120, highlight=False))
    return out


def test_a_bar_with_a_total_shows_it_and_an_eta(monkeypatch):
    out = _terminal(monkeypatch)
    with progress_bar("rollout", total=8, quiet=False) as bar:
        for _ in range(3):
            time.sleep(0.05)
            bar.update(advance=1)
    text = out.getvalue()
    assert "3/8" in text and "eta " in text, text


def test_a_stream_bar_shows_the_count_alone(monkeypatch):
    out = _terminal(monkeypatch)
    with progress_bar("scoring", total=None, quiet=False) as bar:
        bar.update(advance=4)
    text = out.getvalue()
    assert " 4 " in text and "/?" not in text and "eta" not in text, text


def test_busy_time_leaves_out_the_wait_for_input():
    def slow():
        for i in range(3):
            time.sleep(0.2)  # the upstream stage is slow
            yield i

    clock = BusyClock()
    for _ in clock.reading(slow()):
        time.sleep(0.01)  # this stage's own work
    assert clock.waiting >= 0.55
    assert clock.busy < 0.2
    assert "waiting for input" in clock.waited()


def test_score_rate_in_a_slow_pipe_counts_scoring_only(tmp_path):
    import threading

    from typer.testing import CliRunner

    from r1cli.cli import app

    record = {"id": "p", "sample": 0, "prompt": "2+2?", "answer": "4", "completion": "<think>x</think><answer>4</answer>"}
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)

    def upstream() -> None:  # a slow stage before score: one record, 2 s of work, another
        with open(fifo, "w") as fp:
            fp.write(json.dumps(record) + "\n")
            fp.flush()
            time.sleep(2)
            fp.write(json.dumps({**record, "sample": 1}) + "\n")

    writer = threading.Thread(target=upstream)
    writer.start()
    result = CliRunner().invoke(app, ["score", str(fifo), "-r", "format", "--workers", "0"])
    writer.join()
    assert result.exit_code == 0, result.stderr
    line = result.stderr.strip().splitlines()[-1]
    assert "waiting for input" in line, line
    rate = float(line.rsplit("(", 1)[1].split("/s")[0].replace(",", ""))
    waited = float(line.split(" s of it waiting")[0].rsplit(", ", 1)[1])
    assert waited >= 1.8, line
    assert rate > 2, line  # over wall time (> 2 s for two records) this read "(1/s)"


@pytest.mark.parametrize(("argv", "expected"), [
    (["r1", "rollout", "p.jsonl", "-o", "out.jsonl"], "r1 rollout p.jsonl -o out.jsonl --resume"),
    (["/x/bin/r1", "score", "-o", "a b.jsonl", "--resume"], "r1 score -o 'a b.jsonl' --resume"),
    (["/x/r1cli/__main__.py", "grpo", "-o", "runs/g"], "python -m r1cli grpo -o runs/g --resume"),
])
def test_resume_command(argv, expected):
    assert resume_command(argv, {"output": argv[argv.index("-o") + 1]}) == expected


def _interrupted(*, output: str = "-", resume: bool = False) -> None:
    raise KeyboardInterrupt


def _interrupted_no_resume(*, output: str = "-") -> None:
    raise KeyboardInterrupt


@pytest.mark.parametrize(("fn", "output", "expected"), [
    (_interrupted, "out.jsonl", "Interrupted.\nResume with: r1 rollout in.jsonl -o out.jsonl --resume\n"),
    (_interrupted, "-", "Interrupted.\n"),                  # stdout cannot resume
    (_interrupted_no_resume, "out.jsonl", "Interrupted.\n"),  # the command has no --resume
])
def test_interrupted_names_the_resume_command(monkeypatch, fn, output, expected):
    out = io.StringIO()
    monkeypatch.setattr(_common, "err", Console(file=out, width=200))
    monkeypatch.setattr(sys, "argv", ["r1", "rollout", "in.jsonl", "-o", output])
    with pytest.raises(typer.Exit) as exit_info:
        reports_errors(fn)(output=output)
    assert exit_info.value.exit_code == 130
    assert out.getvalue() == expected


def _under_pty(argv: list[str]) -> tuple[int, str]:
    """Run argv with a pseudo-terminal on stdin; end the input with Ctrl-D once it has started."""
    master, slave = os.openpty()
    proc = subprocess.Popen(argv, stdin=slave, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "COLUMNS": "200"})
    os.close(slave)
    stderr = ""
    deadline = time.monotonic() + 60
    while "Waiting for input" not in stderr and time.monotonic() < deadline and proc.poll() is None:
        ready, _, _ = select.select([proc.stderr], [], [], 0.5)
        if ready:
            stderr += os.read(proc.stderr.fileno(), 4096).decode()
    os.write(master, b"\x04")  # Ctrl-D: end of input
    rest, more = proc.communicate(timeout=60)
    os.close(master)
    return proc.returncode, stderr + more


@pytest.mark.parametrize(("argv", "expects"), [
    (["rollout", "-m", "tiny"], "r1 rollout reads prompt records"),
    (["score"], "r1 score reads rollout records"),
    (["reject-sample"], "r1 reject-sample reads scored records"),
])
def test_a_terminal_on_stdin_gets_one_line_saying_what_to_give(argv, expects):
    code, stderr = _under_pty([R1, *argv])
    assert code == 0, stderr
    hint = [line for line in stderr.splitlines() if line.startswith(expects)]
    assert len(hint) == 1, stderr
    assert "pipe them in" in hint[0] and "name a file" in hint[0]
    assert "0/?" not in stderr and "━" not in stderr  # no bar sitting at zero


def test_a_file_argument_needs_no_hint_even_on_a_terminal(tmp_path):
    empty = tmp_path / "rollouts.jsonl"
    empty.write_text("")
    code, stderr = _under_pty([R1, "score", str(empty)])
    assert code == 0, stderr
    assert "reads rollout records" not in stderr
