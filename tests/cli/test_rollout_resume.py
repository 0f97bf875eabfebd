"""`r1 rollout --resume` continues the same run or refuses: the manifest (FILE.r1.json) names the
settings and the input the file was made from, and a resume that differs is refused naming the
setting, both values and the fix, with the file left as it was. Before manifests, each of these
resumes was accepted: a smaller -n dropped samples, a larger one deleted every group, another
model or temperature said "4 prompts already done", another input was mixed in.
"""

import json
import shutil
from collections import Counter

import pytest
from typer.testing import CliRunner

from r1cli.cli import app

runner = CliRunner()

PROMPTS = [{"id": f"q{i}", "prompt": f"What is {i} + {i}?", "answer": str(2 * i)} for i in range(4)]
BASE = ["--max-new-tokens", "4", "--engine-batch-size", "4", "--dtype", "float32", "--template", "none"]


def jsonl(records):
    return "".join(json.dumps(r) + "\n" for r in records)


def records(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def other_model(tmp_path_factory):
    """A tiny model with other weights (seed 1) under another name."""
    from r1cli.models import build_tiny

    return str(build_tiny(tmp_path_factory.mktemp("other") / "tiny-seed1", seed=1))


@pytest.fixture(scope="module")
def made(tmp_path_factory, tiny_model):
    """prompts.jsonl, and out.jsonl (+ its manifest) rolled out from it with -n 2."""
    folder = tmp_path_factory.mktemp("made")
    (folder / "prompts.jsonl").write_text(jsonl(PROMPTS))
    result = runner.invoke(app, ["rollout", str(folder / "prompts.jsonl"), "-m", tiny_model, "-n", "2", *BASE,
                                 "-q", "-o", str(folder / "out.jsonl")])
    assert result.exit_code == 0, result.stderr
    return folder


@pytest.fixture
def out(made, tmp_path):
    for name in ("prompts.jsonl", "out.jsonl", "out.jsonl.r1.json"):
        shutil.copy(made / name, tmp_path / name)
    (tmp_path / "other.jsonl").write_text(jsonl([{**p, "id": "z" + p["id"]} for p in PROMPTS]))
    return tmp_path / "out.jsonl"


def resume(out, *args, model, source="prompts.jsonl", n="2"):
    return runner.invoke(app, ["rollout", str(out.parent / source), "-m", model, "-n", n, *BASE, *args,
                               "-o", str(out), "--resume"])


@pytest.mark.parametrize(("case", "args", "message"), [
    ("smaller -n", ["-n", "1"], "(-n: 2 on record, 1 now)"),
    ("larger -n", ["-n", "6"], "(-n: 2 on record, 6 now)"),
    ("other model", ["-m", "OTHER"], "(-m: "),
    ("other temperature", ["--temperature", "1.0"], "(--temperature: 0.6 on record, 1.0 now)"),
    ("other template", ["--template", "r1-zero"], "(--template: 'none' on record, 'r1-zero' now)"),
    ("other dtype", ["--dtype", "bfloat16"], "(--dtype: 'float32' on record, 'bfloat16' now)"),
    ("other seed", ["--seed", "1"], "(--seed: 0 on record, 1 now)"),
    ("other input", ["SOURCE", "other.jsonl"], "other.jsonl is not the input"),
])
def test_a_resume_that_is_not_the_same_run_is_refused(out, tiny_model, other_model, case, args, message):
    before = out.read_bytes(), (out.parent / "out.jsonl.r1.json").read_bytes()
    options = {"model": tiny_model}
    flags = []
    for i in range(0, len(args), 2):
        key, value = args[i], args[i + 1]
        if key in ("-n", "-m") or key == "SOURCE":
            options[{"-n": "n", "-m": "model", "SOURCE": "source"}[key]] = other_model if value == "OTHER" else value
        else:
            flags += [key, value]
    result = resume(out, *flags, **options)
    assert result.exit_code == 1, (case, result.output)
    assert message in result.stderr, (case, result.stderr)
    assert "Traceback" not in result.stderr
    assert "Hint:" in result.stderr
    assert (out.read_bytes(), (out.parent / "out.jsonl.r1.json").read_bytes()) == before  # nothing written or lost
    assert not (out.parent / "out.jsonl.part").exists()


@pytest.mark.parametrize("args", [["--engine-batch-size", "2"], ["-q"]])
def test_what_may_change_on_resume_does_not_count(out, tiny_model, args):
    """The engine's batch size changes how fast records come, not what they hold."""
    before = out.read_bytes()
    result = resume(out, *args, model=tiny_model)
    assert result.exit_code == 0, result.stderr
    assert out.read_bytes() == before
    assert "4 prompts already done" in result.stderr or "-q" in args


def test_an_input_that_grew_is_continued(out, tiny_model):
    """Prompts appended to the input: a resume samples the new ones only, as a fresh run would have."""
    more = PROMPTS + [{"id": "q9", "prompt": "What is 9 + 9?", "answer": "18"}]
    (out.parent / "prompts.jsonl").write_text(jsonl(more))
    before = records(out)
    result = resume(out, model=tiny_model)
    assert result.exit_code == 0, result.stderr
    assert "generated 2 completions for 1 prompts" in result.stderr and "4 prompts already done" in result.stderr
    after = records(out)
    assert after[: len(before)] == before
    assert Counter((r["id"], r["sample"]) for r in after) == Counter((p["id"], s) for p in more for s in range(2))
    manifest = json.loads((out.parent / "out.jsonl.r1.json").read_text())
    assert manifest["input"]["records"] == 5 and manifest["output"]["records"] == 10 and manifest["complete"]


# ---- files made by an r1 from before manifests: accepted with a warning, their content still checked ------------


@pytest.mark.parametrize(("case", "n", "message"), [
    ("smaller -n", "1", "prompt 'q0' has samples 0, 1, not 0–0"),
    ("larger -n", "6", "prompt 'q0' has samples 0, 1, not 0–5"),
])
def test_without_a_manifest_another_n_is_refused_and_nothing_deleted(out, tiny_model, case, n, message):
    (out.parent / "out.jsonl.r1.json").unlink()
    before = out.read_bytes()
    result = resume(out, model=tiny_model, n=n)
    assert result.exit_code == 1, (case, result.output)
    assert "has no manifest" in result.stderr and message in result.stderr
    assert "resume with the -n it was made with" in result.stderr
    assert out.read_bytes() == before and not (out.parent / "out.jsonl.part").exists()


def test_without_a_manifest_another_model_is_refused_before_it_writes(out, tiny_model, other_model):
    (out.parent / "out.jsonl.r1.json").unlink()
    (out.parent / "prompts.jsonl").write_text(jsonl(PROMPTS + [{"id": "q9", "prompt": "What is 9 + 9?"}]))
    before = out.read_bytes()
    result = resume(out, model=other_model)
    assert result.exit_code == 1, result.output
    assert f"holds completions of {tiny_model}, not of {other_model}" in result.stderr
    assert out.read_bytes() == before


def test_without_a_manifest_the_same_run_goes_on_with_a_warning(out, tiny_model):
    (out.parent / "out.jsonl.r1.json").unlink()
    lines = out.read_text().splitlines(keepends=True)
    out.unlink()
    (out.parent / "out.jsonl.part").write_text("".join(lines[:3]))  # an older r1, killed mid-run
    result = resume(out, model=tiny_model)
    assert result.exit_code == 0, result.stderr
    assert "Warning: " in result.stderr and "has no manifest" in result.stderr
    got = records(out)
    assert Counter((r["id"], r["sample"]) for r in got) == Counter((p["id"], s) for p in PROMPTS for s in range(2))
    # per-sample seeds: the completions of the uninterrupted run
    assert {(r["id"], r["sample"]): r["completion"] for r in got} == {
        (r["id"], r["sample"]): r["completion"] for r in map(json.loads, lines)}
    assert json.loads((out.parent / "out.jsonl.r1.json").read_text())["complete"]  # written from then on
