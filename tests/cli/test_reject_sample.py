import dataclasses
import inspect
import json
import os
import subprocess
import sys

import pytest
import typer
from typer.testing import CliRunner

from r1cli.cli import app
from r1cli.cli.reject_sample import POLICY_OPTIONS, policy_from_options, reject_sample_cmd
from r1cli.reject_sampling import SelectPolicy

runner = CliRunner()

OK = "<think>Two plus two is four.</think><answer>4</answer>"


def row(rid, sample, completion=OK, accuracy=1.0, **extra):
    return {"id": rid, "prompt": f"Question {rid}?", "answer": "4", "sample": sample, "completion": completion,
            "finish_reason": "stop", "completion_tokens": len(completion.split()),
            "rewards": {"accuracy": accuracy, "format": 1.0}, "reward": (accuracy or 0.0) + 1.0, **extra}


ROWS = [
    row("a", 0),
    row("a", 1, OK.replace("</think>", "</think>\n")),  # an exact repeat, whitespace aside
    row("a", 2, "<think>Two plus two is five.</think><answer>5</answer>", 0.0),
    row("a", 3, "<think>Two plus two", 0.0, finish_reason="length"),
    row("b", 0, "<think>先把两个数相加 then check.</think><answer>4</answer>"),
    row("b", 1, "<think>Add them.</think><answer>4</answer>", None),
    row("c", 0, "<think>Count: three, four.</think><answer>4</answer>", src="unit"),
]


def jsonl(records):
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)


def reject(*args, input=None):
    return runner.invoke(app, ["reject-sample", *args], input=jsonl(ROWS) if input is None else input)


def parse(stdout):
    return [json.loads(line) for line in stdout.splitlines()]


def test_keeps_correct_readable_samples_with_a_summary_on_stderr():
    result = reject()
    assert result.exit_code == 0, result.stderr
    out = parse(result.stdout)  # stdout is JSONL only
    assert [(r["id"], r["sample"]) for r in out] == [("a", 0), ("c", 0)]
    assert out[1] == ROWS[6]  # every key kept, unchanged
    assert ("kept 2 of 7 records (2 of 3 prompts with ≥ 1 kept; dropped: truncated 1, unverified 1, incorrect 1, "
            "mixed-language 1, duplicate 1) in ") in result.stderr


def test_policy_flags():
    result = reject("--no-correct-only", "--min-reward", "1.5", "--max-mixed", "1", "--dedup", "none",
                    "--keep-truncated", "--max-per-prompt", "1", "-q")
    assert result.exit_code == 0, result.stderr
    assert [(r["id"], r["sample"]) for r in parse(result.stdout)] == [("a", 0), ("b", 0), ("c", 0)]
    assert result.stderr == ""


def test_messages_without_think():
    result = reject("--format", "messages", "--strip-think", "-q")
    assert result.exit_code == 0, result.stderr
    first = parse(result.stdout)[0]
    assert first["messages"] == [{"role": "user", "content": "Question a?"},
                                 {"role": "assistant", "content": "<answer>4</answer>"}]
    assert "prompt" not in first and "completion" not in first
    assert (first["id"], first["sample"], first["rewards"]) == ("a", 0, ROWS[0]["rewards"])


def test_interleaved_groups_are_a_clear_error_and_nothing_is_written(tmp_path):
    out = tmp_path / "sft.jsonl"
    result = reject("-o", str(out), input=jsonl([*ROWS, row("a", 9)]))
    assert result.exit_code == 1
    assert "Error: <stdin>:8: id 'a' reappears after other groups: the input is not grouped by id" in result.stderr
    assert "Hint: a prompt's samples must be together, as r1 rollout writes them" in result.stderr
    assert result.stdout == ""
    assert not out.exists() and not (tmp_path / "sft.jsonl.part").exists()


def test_unscored_records_name_the_field_and_how_to_score_them(tmp_path):
    path = tmp_path / "rollouts.jsonl"
    path.write_text(jsonl([{k: v for k, v in row("a", 0).items() if k not in ("rewards", "reward")}]))
    result = runner.invoke(app, ["reject-sample", str(path)])
    assert result.exit_code == 1
    assert f"Error: {path}:1: no rewards.accuracy: --correct-only keeps records whose accuracy is 1" in result.stderr
    assert "r1 score -r accuracy" in result.stderr and "--no-correct-only" in result.stderr
    assert runner.invoke(app, ["reject-sample", str(path), "--no-correct-only", "-q"]).exit_code == 0


def test_file_output_and_empty_input(tmp_path):
    out = tmp_path / "sft.jsonl"
    result = reject("-o", str(out))
    assert result.exit_code == 0, result.stderr
    assert [r["id"] for r in parse(out.read_text())] == ["a", "c"] and result.stdout == ""
    result = reject(input="")
    assert result.exit_code == 0 and result.stdout == ""
    assert "kept 0 of 0 records (0 of 0 prompts with ≥ 1 kept; dropped: none)" in result.stderr


@pytest.mark.parametrize(("args", "message"), [
    (["--dedup", "fuzzy"], "dedup must be one of none, exact, near"),
    (["--format", "chatml"], "format must be one of completion, messages"),
    (["--language", "klingon"], "unsupported language 'klingon'"),
    (["--max-mixed", "2"], "--max-mixed"),
    (["--max-per-prompt", "0"], "--max-per-prompt"),
])
def test_bad_options_are_usage_errors(args, message):
    result = reject(*args)
    assert result.exit_code == 2
    assert message in result.stderr


def test_every_policy_field_is_an_option_with_the_policy_default():
    """`r1 distill` forwards these options by name: they must match SelectPolicy's fields and defaults."""
    fields = {f.name for f in dataclasses.fields(SelectPolicy)}
    params = inspect.signature(reject_sample_cmd).parameters
    assert set(POLICY_OPTIONS) == fields and set(POLICY_OPTIONS) <= set(params)
    defaults = {name: params[name].default for name in POLICY_OPTIONS}
    assert policy_from_options(**defaults) == SelectPolicy()
    assert policy_from_options() == SelectPolicy()
    assert policy_from_options(max_paragraph_words=0, max_mixed=1.0) == SelectPolicy(
        max_paragraph_words=None, max_mixed=None)
    with pytest.raises(typer.BadParameter, match="dedup must be one of"):
        policy_from_options(dedup="fuzzy")
    with pytest.raises(TypeError, match="not reject-sample options: samples"):
        policy_from_options(samples=4)


def test_head_stops_a_long_stream_early():
    # `… | r1 reject-sample | head -1` on an endless input: one group in memory, a quick quiet exit
    gen = ("import json, itertools, sys\n"
           "for i in itertools.count():\n"
           "    for s in range(4):\n"
           f"        r = {{'id': f'p{{i}}', 'sample': s, 'prompt': 'q', 'completion': f'<think>{{s}}</think> 4',"
           " 'rewards': {'accuracy': 1.0}, 'reward': 1.0}\n"
           "        sys.stdout.write(json.dumps(r) + '\\n')\n")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    # (the generator's own BrokenPipeError, once r1 has exited, is not r1's: 2>/dev/null)
    proc = subprocess.run(f"{sys.executable} -c \"{gen}\" 2>/dev/null | {sys.executable} -m r1cli reject-sample "
                          "| head -3",
                          shell=True, capture_output=True, text=True, timeout=60, env=env)
    assert proc.returncode == 0, proc.stderr
    assert [json.loads(line)["sample"] for line in proc.stdout.splitlines()] == [0, 1, 2]
    assert "Traceback" not in proc.stderr, proc.stderr


def test_rollout_score_reject_sample_on_the_tiny_model(tiny_model, tmp_path):
    """The real pipeline: the tiny model's gibberish is wrong, so keep by format reward only."""
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text(jsonl([{"id": "x", "prompt": "1+1?", "answer": "2"},
                              {"id": "y", "prompt": "2+3?", "answer": "5"}]))
    rollouts, scored = tmp_path / "rollouts.jsonl", tmp_path / "scored.jsonl"
    steps = [["rollout", str(prompts), "-m", tiny_model, "-n", "3", "--max-new-tokens", "8", "-o", str(rollouts)],
             ["score", str(rollouts), "-r", "accuracy", "-r", "format", "--workers", "0", "-o", str(scored)]]
    for argv in steps:
        result = runner.invoke(app, argv)
        assert result.exit_code == 0, result.stderr
    strict = runner.invoke(app, ["reject-sample", str(scored)])
    assert strict.exit_code == 0, strict.stderr
    assert "kept 0 of 6 records (0 of 2 prompts" in strict.stderr  # 8 random tokens: never correct, cut off
    loose = runner.invoke(app, ["reject-sample", str(scored), "--no-correct-only", "--keep-truncated",
                                "--max-mixed", "1", "--allow-code-blocks", "--dedup", "none", "--format", "messages"])
    assert loose.exit_code == 0, loose.stderr
    out = parse(loose.stdout)
    assert len(out) == 6 and [r["id"] for r in out] == ["x"] * 3 + ["y"] * 3
    assert all(r["messages"][-1]["role"] == "assistant" and r["finish_reason"] == "length" for r in out)
