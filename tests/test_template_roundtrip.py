"""Records remember their template: r1 rollout → score → reject-sample → sft shows the student the
tokens the teacher saw, without being told the template again."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from r1cli.cli import app

runner = CliRunner()
PROMPTS = [{"id": "q1", "prompt": "Compute 2 + 3.", "answer": "5"},
           {"id": "q2", "prompt": "What is 7 * 6?", "answer": "42"}]


def run(*argv: str) -> None:
    result = runner.invoke(app, [*argv, "-q"])
    assert result.exit_code == 0, result.stderr


def rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def pipeline(tmp_path: Path, model: str, *rollout_flags: str, fmt: str = "completion") -> tuple[list[dict], list[dict]]:
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps(p) + "\n" for p in PROMPTS))
    run("rollout", str(prompts), "-m", model, "-n", "2", "--max-new-tokens", "6", *rollout_flags,
        "-o", str(tmp_path / "rollouts.jsonl"))
    run("score", str(tmp_path / "rollouts.jsonl"), "-r", "format", "-o", str(tmp_path / "scored.jsonl"))
    # the tiny random model is never correct and always runs to the limit: keep everything
    run("reject-sample", str(tmp_path / "scored.jsonl"), "--no-correct-only", "--keep-truncated", "--dedup", "none",
        "--format", fmt, "-o", str(tmp_path / "kept.jsonl"))
    return rows(tmp_path / "rollouts.jsonl"), rows(tmp_path / "kept.jsonl")


def source_of(kept: list[dict], rollouts: list[dict]) -> list[dict]:
    """The rollout record each kept record came from."""
    by_key = {(r["id"], r["sample"]): r for r in rollouts}
    return [by_key[(k["id"], k["sample"])] for k in kept]


def sft_prompt_ids(model: str, data: Path) -> tuple[str, list[list[int]]]:
    from r1cli.models import load_tokenizer
    from r1cli.training.sft import SFTSettings, prepare, tokenize_row

    tokenizer = load_tokenizer(model)
    settings = SFTSettings.build({"model": model, "data": str(data), "output": str(data.parent / "run")})
    prepared = prepare(settings, tokenizer)
    ids = []
    for row in prepared.rows:
        tokens = tokenize_row(row, tokenizer)
        ids.append([t for t, m in zip(tokens["input_ids"], tokens["completion_mask"]) if m == 0])
    return prepared.template, ids


def test_r1_zero_rollout_to_sft_keeps_the_prompt_tokens(tiny_model, tmp_path):
    from r1cli.engines import get_engine
    from r1cli.templates import render

    rollouts, kept = pipeline(tmp_path, tiny_model, "--template", "r1-zero")
    assert {(r["template"], r["system"], r["prefill"]) for r in rollouts} == {("r1-zero", None, None)}
    assert kept  # random text may trip a readability filter; most samples survive
    for record in kept:  # the prompt as the model saw it, marked to be used as it is
        raw = next(p["prompt"] for p in PROMPTS if p["id"] == record["id"])
        assert record["prompt"] == render(raw, "r1-zero") and record["template"] == "none"

    template, ids = sft_prompt_ids(tiny_model, tmp_path / "kept.jsonl")  # no --template given
    assert template == "none"
    engine = get_engine("hf", tiny_model)
    for record, prompt_ids in zip(source_of(kept, rollouts), ids):
        assert prompt_ids == engine.encode(render(record["prompt"], "r1-zero"))
        assert len(prompt_ids) == record["prompt_tokens"]

    result = runner.invoke(app, ["sft", "-m", tiny_model, "--data", str(tmp_path / "kept.jsonl"),
                                 "-o", str(tmp_path / "student"), "--max-steps", "1", "-q"])
    assert result.exit_code == 0, result.stderr
    assert json.loads((tmp_path / "student" / "r1_config.json").read_text())


def test_chat_rollout_with_a_system_prompt_becomes_those_messages(tiny_model, tmp_path):
    from r1cli.engines import get_engine
    from r1cli.templates import render

    rollouts, kept = pipeline(tmp_path, tiny_model, "--template", "chat", "--system", "Be brief.",
                              "--prefill", "<think>", fmt="messages")
    assert {(r["template"], r["system"], r["prefill"]) for r in rollouts} == {("chat", "Be brief.", "<think>")}
    for record in kept:
        raw = next(p["prompt"] for p in PROMPTS if p["id"] == record["id"])
        *prompt, answer = record["messages"]
        assert prompt == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": raw}]
        assert answer["role"] == "assistant" and answer["content"].startswith("<think>")  # prefill + completion
        assert "prefill" not in record and "system" not in record

    template, ids = sft_prompt_ids(tiny_model, tmp_path / "kept.jsonl")
    assert template == "chat"
    engine = get_engine("hf", tiny_model)
    for record, prompt_ids in zip(source_of(kept, rollouts), ids):  # the system turn the teacher saw, not the default one
        assert prompt_ids == engine.encode(render(record["prompt"], "chat", system="Be brief."))


def test_a_text_prompt_cannot_become_chat_turns(tiny_model, tmp_path):
    with pytest.raises(AssertionError, match="--format messages, but the model saw a text prompt"):
        pipeline(tmp_path, tiny_model, "--template", "r1-zero", fmt="messages")
    assert not (tmp_path / "kept.jsonl").exists()  # nothing half-written


@pytest.mark.parametrize(("records", "error"), [
    ([{"prompt": "a", "completion": "b", "template": "r1-zero"},
      {"prompt": [{"role": "user", "content": "a"}], "completion": "b", "template": "chat"}],
     "the records carry different templates"),
    ([{"prompt": "a", "completion": "b", "template": "r1zero"}], "did you mean 'r1-zero'?"),
    ([{"prompt": "a", "completion": "b", "template": 3}], "'template' must be a template name"),
])
def test_sft_refuses_templates_it_cannot_honour(tmp_path, records, error):
    from r1cli.errors import BadInput
    from r1cli.training.sft import SFTSettings, prepare

    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in records))
    settings = SFTSettings.build({"model": "tiny", "data": str(data), "output": str(tmp_path / "run")})
    with pytest.raises(BadInput, match=error.replace("?", r"\?")):
        prepare(settings, tokenizer=object())


def test_a_rollout_record_is_an_sft_record_with_its_prefill(tmp_path):
    from r1cli.training.sft import SFTSettings, prepare

    data = tmp_path / "d.jsonl"
    data.write_text(json.dumps({"prompt": "2+2?", "completion": " 4", "template": "r1-zero", "system": None,
                                "prefill": "<think>"}) + "\n")
    settings = SFTSettings.build({"model": "tiny", "data": str(data), "output": str(tmp_path / "run")})
    prepared = prepare(settings, tokenizer=object())
    assert prepared.template == "r1-zero"
    assert prepared.rows[0]["prompt"].endswith("User: 2+2?. Assistant:")
    assert prepared.rows[0]["completion"] == "<think> 4"
