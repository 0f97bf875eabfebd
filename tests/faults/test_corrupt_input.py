"""Corrupted input lines at seeded random positions: the error names file:line, or --skip-invalid counts them.

Four kinds of damage, as files meet them: a line that is not JSON, a line cut short (a writer
killed mid-line; also as the last line, without its newline), bytes that are not UTF-8, and a
JSON value that is not an object. Without --skip-invalid the command stops at the first one
(exit 1) naming its file and line, and leaves no output file; with it, the command skips them,
processes every good record, and counts them in its summary line.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from faultkit import read_jsonl, write_jsonl
from typer.testing import CliRunner

from r1cli.cli import app

runner = CliRunner()

KINDS = {
    "bad-json": (lambda line: b'{"id": "broken", "prompt": oops}\n', "invalid JSON (Expecting value"),
    "cut-short": (lambda line: line[: len(line) // 2] + b"\n", "invalid JSON (Unterminated string"),
    "not-utf8": (lambda line: line.replace(b'"', b'"\xff\xfe', 1), "not UTF-8"),
    "not-an-object": (lambda line: b'["a", "list"]\n', "expected a JSON object, got an array"),
}


def corrupt(lines: list[bytes], rng: random.Random, kinds: list[str], *, cut_last: bool = False) -> tuple[bytes, dict[int, str]]:
    """The file with one line per kind damaged at seeded random positions; {line number: kind}.

    `cut_last`: also cut the last line short, without its newline (a writer killed mid-line).
    """
    lines = list(lines)
    last = len(lines) - (1 if cut_last else 0)
    positions = rng.sample(range(last), len(kinds))
    damaged = {}
    for pos, kind in zip(positions, kinds):
        lines[pos] = KINDS[kind][0](lines[pos])
        damaged[pos + 1] = kind
    if cut_last:
        lines[-1] = lines[-1][: len(lines[-1]) // 2]
        damaged[len(lines)] = "cut-short"
    return b"".join(lines), damaged


def _prompts(n: int) -> list[dict]:
    return [{"id": f"p{i}", "prompt": f"What is {i} + {i}?", "answer": str(2 * i)} for i in range(n)]


def _rollouts(n: int) -> list[dict]:
    return [{"id": f"p{i // 2}", "sample": i % 2, "prompt": f"What is {i // 2} + {i // 2}?", "answer": str(i // 2 * 2),
             "completion": f"<think>Doubling {i // 2}.</think><answer>{i // 2 * 2 + i % 2}</answer>",
             "finish_reason": "stop"} for i in range(n)]


def _scored(n: int) -> list[dict]:
    return [{**r, "rewards": {"accuracy": float(r["sample"] == 0)}, "reward": float(r["sample"] == 0)}
            for r in _rollouts(n)]


def _command(name: str, tiny: str, source: Path, out: Path) -> list[str]:
    return {
        "rollout": ["rollout", str(source), "-m", tiny, "-n", "1", "--max-new-tokens", "2", "--engine-batch-size", "4"],
        "score": ["score", str(source), "-r", "accuracy", "--workers", "0"],
        "reject-sample": ["reject-sample", str(source)],
    }[name] + ["-o", str(out), "-q"]


def _records(name: str, n: int) -> list[dict]:
    return {"rollout": _prompts, "score": _rollouts, "reject-sample": _scored}[name](n)


COMMANDS = ["rollout", "score", "reject-sample"]


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("command", COMMANDS)
def test_the_error_names_the_damaged_line(command: str, kind: str, tiny: str, tmp_path: Path) -> None:
    rng = random.Random(f"{command}/{kind}")
    good = write_jsonl(tmp_path / "good.jsonl", _records(command, 24))
    data, damaged = corrupt(good.read_bytes().splitlines(keepends=True), rng, [kind])
    source = tmp_path / "input.jsonl"
    source.write_bytes(data)
    out = tmp_path / "out.jsonl"
    result = runner.invoke(app, _command(command, tiny, source, out))
    assert result.exit_code == 1, result.stderr
    (line,) = damaged
    first = result.stderr.splitlines()[0]
    assert first.startswith(f"Error: {source}:{line}: {KINDS[kind][1]}"), (damaged, result.stderr)
    assert "Traceback" not in result.stderr
    assert not out.exists() and not Path(f"{out}.part").exists()


def test_a_cut_last_line_is_named_too(tmp_path: Path) -> None:
    """A file whose writer was killed mid-line: the error names its last line."""
    good = write_jsonl(tmp_path / "good.jsonl", _rollouts(10))
    source = tmp_path / "input.jsonl"
    source.write_bytes(good.read_bytes()[:-20])
    result = runner.invoke(app, ["score", str(source), "-r", "format", "--workers", "0", "-q"])
    assert result.exit_code == 1
    assert result.stderr.startswith(f"Error: {source}:10: invalid JSON (Unterminated string"), result.stderr


@pytest.mark.parametrize("command", COMMANDS)
def test_skip_invalid_skips_and_counts(command: str, tiny: str, tmp_path: Path) -> None:
    rng = random.Random(command)
    records = _records(command, 40)
    good = write_jsonl(tmp_path / "good.jsonl", records)
    data, damaged = corrupt(good.read_bytes().splitlines(keepends=True), rng, [*KINDS, *KINDS], cut_last=True)
    source = tmp_path / "input.jsonl"
    source.write_bytes(data)
    out = tmp_path / "out.jsonl"
    args = [a for a in _command(command, tiny, source, out) if a != "-q"] + ["--skip-invalid"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.stderr
    assert f"{len(damaged)} invalid lines skipped" in result.stderr, result.stderr
    survivors = [r for i, r in enumerate(records, start=1) if i not in damaged]
    got = [(r["id"], r.get("sample", 0)) for r in read_jsonl(out)]
    if command == "rollout":  # batches are sorted by length: the order is not the input's
        assert sorted(got) == sorted((r["id"], 0) for r in survivors)
    elif command == "score":
        assert got == [(r["id"], r["sample"]) for r in survivors]
    else:
        assert got == [(r["id"], r["sample"]) for r in survivors if r["rewards"]["accuracy"] == 1.0]
