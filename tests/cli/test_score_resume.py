"""`r1 score --resume` continues the same run or refuses, naming the setting (or the input) and the
fix, and leaves the output as it was. Before manifests, changed rewards kept the old records (no
`format` reward), and `r1 score b.jsonl -o out.jsonl --resume` on an output made from a.jsonl
kept a0–a149, then scored b150–b399: b0–b149 were never scored.
"""

import json
import shutil

import pytest
from typer.testing import CliRunner

from r1cli.cli import app
from r1cli.rewards import RULES

runner = CliRunner()


def rows(prefix, n):
    return [{"id": f"{prefix}{i}", "sample": 0, "answer": str(i % 3),
             "completion": f"<think>{i}</think><answer>{i % 5}</answer>"} for i in range(n)]


def jsonl(records):
    return "".join(json.dumps(r) + "\n" for r in records)


def records(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture
def out(tmp_path):
    """out.jsonl scored from a.jsonl (150 records) with -r accuracy; b.jsonl: 400 other records."""
    (tmp_path / "a.jsonl").write_text(jsonl(rows("a", 150)))
    (tmp_path / "b.jsonl").write_text(jsonl(rows("b", 400)))
    out = tmp_path / "out.jsonl"
    made = score(out, "a.jsonl", "-r", "accuracy", resume=False)
    assert made.exit_code == 0, made.stderr
    return out


def score(out, source, *args, resume=True):
    return runner.invoke(app, ["score", str(out.parent / source), *args, "--workers", "0", "-o", str(out),
                               *(["--resume"] if resume else [])])


@pytest.mark.parametrize(("case", "source", "args", "message"), [
    ("another reward", "a.jsonl", ["-r", "accuracy", "-r", "format"], "(-r format: none on record, 1.0 now)"),
    ("another weight", "a.jsonl", ["-r", "accuracy:2"], "(-r accuracy: 1.0 on record, 2.0 now)"),
    ("a reward's parameter", "a.jsonl", ["-r", "accuracy", "--reward-arg", "accuracy.fallback=last-number"],
     '(--reward-arg accuracy: none on record, {"fallback": "last-number"} now)'),
    ("another input", "b.jsonl", ["-r", "accuracy"], "b.jsonl:1 (id 'b0', sample 0) is not the record scored at"),
])
def test_a_resume_that_is_not_the_same_run_is_refused(out, case, source, args, message):
    before = out.read_bytes(), (out.parent / "out.jsonl.r1.json").read_bytes()
    result = score(out, source, *args)
    assert result.exit_code == 1, (case, result.output)
    assert message in result.stderr, (case, result.stderr)
    assert "Hint:" in result.stderr and "Traceback" not in result.stderr
    assert (out.read_bytes(), (out.parent / "out.jsonl.r1.json").read_bytes()) == before
    assert not (out.parent / "out.jsonl.part").exists()


def test_another_input_is_refused_even_when_its_first_records_match(out):
    """The manifest's fingerprint covers every record read, not only the ids: c.jsonl has a's ids and
    completions but another gold answer in its last record."""
    changed = rows("a", 150)
    changed[-1]["answer"] = "99"
    (out.parent / "c.jsonl").write_text(jsonl(changed + rows("x", 5)))
    before = out.read_bytes()
    result = score(out, "c.jsonl", "-r", "accuracy")
    assert result.exit_code == 1, result.output
    assert f"c.jsonl is not the input {out} was made from (its first 150 records differ)" in result.stderr
    assert out.read_bytes() == before


def test_a_partial_output_of_another_input_is_refused_without_a_manifest(out):
    """A .part left by an older r1 (no manifest): the records it holds are compared with the input's."""
    (out.parent / "out.jsonl.r1.json").unlink()
    kept = out.read_text().splitlines(keepends=True)[:40]
    out.unlink()
    part = out.parent / "out.jsonl.part"
    part.write_text("".join(kept))
    result = score(out, "b.jsonl", "-r", "accuracy")
    assert result.exit_code == 1, result.output
    assert "has no manifest" in result.stderr
    assert "b.jsonl:1 (id 'b0', sample 0) is not the record scored" in result.stderr
    assert part.read_text() == "".join(kept) and not out.exists()
    same = score(out, "a.jsonl", "-r", "accuracy")  # its own input: continued, with a warning
    assert same.exit_code == 0, same.stderr
    assert "40 already done" in same.stderr
    assert [r["id"] for r in records(out)] == [f"a{i}" for i in range(150)]


def test_another_timeout_is_refused(out):
    """--timeout decides which records score 0.0 as hangs: a file scored under two limits would mix them."""
    before = out.read_bytes()
    result = runner.invoke(app, ["score", str(out.parent / "a.jsonl"), "-r", "accuracy", "--timeout", "30",
                                 "-o", str(out), "--resume"])
    assert result.exit_code == 1, result.output
    assert "(--timeout: none on record, 30.0 now)" in result.stderr
    assert out.read_bytes() == before


@pytest.mark.parametrize("args", [["--workers", "1"], ["-q"]])
def test_what_may_change_on_resume_does_not_count(out, args):
    before = out.read_bytes()
    result = runner.invoke(app, ["score", str(out.parent / "a.jsonl"), "-r", "accuracy", *args, "-o", str(out),
                                 "--resume"])
    assert result.exit_code == 0, result.stderr
    assert out.read_bytes() == before


def test_an_input_that_grew_is_continued(out):
    (out.parent / "a.jsonl").write_text(jsonl(rows("a", 150) + rows("n", 10)))
    result = score(out, "a.jsonl", "-r", "accuracy")
    assert result.exit_code == 0, result.stderr
    assert "scored 10 completions" in result.stderr and "150 already done" in result.stderr
    assert [r["id"] for r in records(out)] == [f"a{i}" for i in range(150)] + [f"n{i}" for i in range(10)]


def test_the_manifest_names_the_settings_and_the_input(out, tmp_path):
    manifest = json.loads((out.parent / "out.jsonl.r1.json").read_text())
    assert manifest["command"] == "score" and manifest["complete"] is True
    assert manifest["settings"]["rewards"] == {"accuracy": 1.0}
    assert manifest["input"]["source"].endswith("a.jsonl") and manifest["input"]["records"] == 150
    assert manifest["output"]["records"] == 150 and len(manifest["output"]["sha256"]) == 64
    shutil.copy(out, tmp_path / "copy.jsonl")
    again = score(tmp_path / "copy.jsonl", "a.jsonl", "-r", "accuracy", resume=False)  # same input, same fingerprint
    assert again.exit_code == 0
    assert json.loads((tmp_path / "copy.jsonl.r1.json").read_text())["input"]["sha256"] == manifest["input"]["sha256"]


def test_a_file_scored_under_older_reward_rules_is_not_continued(out):
    """An r1 whose built-in rewards judge differently (rewards.RULES) would append new verdicts to old ones."""
    manifest = out.parent / "out.jsonl.r1.json"
    data = json.loads(manifest.read_text())
    del data["settings"]["reward_rules"]  # written before the rules had a revision
    manifest.write_text(json.dumps(data))
    result = score(out, "a.jsonl", "-r", "accuracy")
    assert result.exit_code == 1, result.output
    assert f"the revision of r1's reward rules (rescore from the start): none on record, {RULES} now" in result.stderr
