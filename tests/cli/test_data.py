"""`r1 data countdown|arithmetic`: JSONL on stdout, one summary line on stderr."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from r1cli.cli.data import data_app
from r1cli.tasks.countdown import check, evaluate

runner = CliRunner()

app = typer.Typer()
app.add_typer(data_app, name="data")


def _records(stdout: str) -> list[dict]:
    lines = stdout.splitlines()
    records = [json.loads(line) for line in lines]  # every stdout line is JSON
    assert all(isinstance(r, dict) for r in records)
    return records


def test_countdown_writes_solvable_records_and_a_summary() -> None:
    result = runner.invoke(app, ["data", "countdown", "-n", "20", "--seed", "3", "--num-numbers", "5"])
    assert result.exit_code == 0, result.stderr
    records = _records(result.stdout)
    assert [r["id"] for r in records] == [f"countdown-3-{i}" for i in range(20)]
    assert all(len(r["numbers"]) == 5 and check(r["answer"], r["numbers"], r["target"]) for r in records)
    assert result.stderr.strip() == "wrote 20 countdown tasks (seed 3)"


def test_countdown_ranges() -> None:
    result = runner.invoke(app, ["data", "countdown", "-n", "50", "--max-number", "10", "--max-target", "15", "-q"])
    assert result.exit_code == 0, result.stderr
    records = _records(result.stdout)
    assert all(max(r["numbers"]) <= 10 and 1 <= r["target"] <= 15 for r in records)


@pytest.mark.parametrize("difficulty", [1, 3, 5])
def test_arithmetic_records(difficulty: int) -> None:
    result = runner.invoke(app, ["data", "arithmetic", "-n", "10", "--difficulty", str(difficulty)])
    assert result.exit_code == 0, result.stderr
    records = _records(result.stdout)
    assert len(records) == 10
    for rec in records:
        assert set(rec) == {"id", "prompt", "answer", "task", "difficulty"}
        assert (rec["task"], rec["difficulty"]) == ("math", difficulty)
        assert evaluate(rec["prompt"].removeprefix("Compute ").removesuffix(".")) == int(rec["answer"])
    assert "wrote 10 arithmetic tasks" in result.stderr


def test_same_seed_same_output() -> None:
    runs = [runner.invoke(app, ["data", "arithmetic", "-n", "30", "--seed", s, "-q"]).stdout for s in ("5", "5", "6")]
    assert runs[0] == runs[1] != runs[2]


def test_quiet_and_empty() -> None:
    result = runner.invoke(app, ["data", "countdown", "-n", "0", "-q"])
    assert (result.exit_code, result.stdout, result.stderr) == (0, "", "")


def test_output_file(tmp_path: Path) -> None:
    out = tmp_path / "sub" / "arith.jsonl"
    result = runner.invoke(app, ["data", "arithmetic", "-n", "7", "-o", str(out)])
    assert result.exit_code == 0, result.stderr
    assert result.stdout == ""
    assert len(_records(out.read_text(encoding="utf-8"))) == 7
    assert not Path(str(out) + ".part").exists()
    assert str(out) in result.stderr.replace("\n", "")  # rich may wrap a long path


@pytest.mark.parametrize(
    "args",
    [
        ["data", "countdown", "--num-numbers", "7"],
        ["data", "countdown", "--num-numbers", "2"],
        ["data", "countdown", "-n", "-1"],
        ["data", "arithmetic", "--difficulty", "0"],
        ["data", "arithmetic", "--difficulty", "6"],
        ["data", "sudoku"],
    ],
)
def test_usage_errors_exit_2(args: list[str]) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert result.stdout == ""


def test_help_shows_an_example_pipeline() -> None:
    result = runner.invoke(app, ["data", "arithmetic", "--help"])
    assert result.exit_code == 0
    assert "r1 data arithmetic -n 8 | r1 rollout" in result.stdout


def test_wired_into_r1() -> None:
    from r1cli.cli import app as r1

    result = runner.invoke(r1, ["data", "countdown", "-n", "2", "-q"])
    assert result.exit_code == 0, result.stderr
    assert len(_records(result.stdout)) == 2
