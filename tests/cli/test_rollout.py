import json
from collections import Counter

import pytest
from typer.testing import CliRunner

from r1cli.cli import app

runner = CliRunner()

PROMPTS = [
    {"id": "a", "prompt": "What is 2 + 2?", "answer": "4", "src": "unit"},
    {"id": "b", "prompt": "Name a colour.", "answer": "red"},
    {"id": "c", "prompt": "Count to three, slowly and carefully, please.", "answer": "1 2 3"},
]


def jsonl(records):
    return "".join(json.dumps(r) + "\n" for r in records)


def run(args, input=None):
    result = runner.invoke(app, args, input=input)
    return result


def rollout(tiny_model, *extra, input=None, n=2, tokens=6):
    return run(["rollout", "-m", tiny_model, "-n", str(n), "--max-new-tokens", str(tokens), "-q", *extra],
               input=jsonl(PROMPTS) if input is None else input)


def parse(stdout):
    return [json.loads(line) for line in stdout.splitlines()]


def test_rollout_writes_one_record_per_completion(tiny_model):
    result = rollout(tiny_model)
    assert result.exit_code == 0, result.stderr
    out = parse(result.stdout)
    assert len(out) == 6
    # a prompt's samples are contiguous, numbered 0..n-1
    ids = [r["id"] for r in out]
    assert sorted(Counter(ids).values()) == [2, 2, 2]
    for i in range(0, 6, 2):
        assert ids[i] == ids[i + 1] and [out[i]["sample"], out[i + 1]["sample"]] == [0, 1]
    by_id = {r["id"]: r for r in out}
    assert by_id["a"]["src"] == "unit" and by_id["a"]["answer"] == "4"  # unknown keys pass through
    for r in out:
        assert isinstance(r["completion"], str)
        assert r["finish_reason"] in ("stop", "length")
        assert r["prompt_tokens"] > 5
        assert 1 <= r["completion_tokens"] <= 6
        if r["finish_reason"] == "length":
            assert r["completion_tokens"] == 6
        assert r["model"] == tiny_model


def test_summary_goes_to_stderr_only(tiny_model):
    result = run(["rollout", "-m", tiny_model, "-n", "1", "--max-new-tokens", "3"], input=jsonl(PROMPTS[:1]))
    assert result.exit_code == 0, result.stderr
    assert "generated 1 completions for 1 prompts" in result.stderr
    assert [json.loads(x)["id"] for x in result.stdout.splitlines()] == ["a"]


def test_same_seed_same_output_other_seed_other_output(tiny_model):
    first = rollout(tiny_model, "--seed", "3")
    again = rollout(tiny_model, "--seed", "3")
    other = rollout(tiny_model, "--seed", "4")
    assert first.exit_code == again.exit_code == other.exit_code == 0
    assert first.stdout == again.stdout
    assert first.stdout != other.stdout


def test_samples_do_not_depend_on_batching(tiny_model):
    # exact in fp32; in bf16 the rounding of a padded batch can flip a draw
    def completions(batch):
        result = rollout(tiny_model, "--engine-batch-size", batch, "--dtype", "float32", n=3)
        assert result.exit_code == 0, result.stderr
        return {(r["id"], r["sample"]): r["completion"] for r in parse(result.stdout)}

    assert completions("1") == completions("9")


def test_greedy_samples_are_identical(tiny_model):
    result = rollout(tiny_model, "--temperature", "0", n=2)
    out = parse(result.stdout)
    assert out[0]["completion"] == out[1]["completion"]


def test_chat_messages_and_templates(tiny_model):
    messages = [{"id": "m", "prompt": [{"role": "user", "content": "hello"}]}]
    chat = rollout(tiny_model, input=jsonl(messages), n=1)
    with_system = rollout(tiny_model, "--system", "Be brief.", input=jsonl(messages), n=1)
    assert chat.exit_code == with_system.exit_code == 0
    assert parse(with_system.stdout)[0]["prompt_tokens"] != parse(chat.stdout)[0]["prompt_tokens"]
    r1zero = rollout(tiny_model, "--template", "r1-zero", n=1, input=jsonl(PROMPTS[:1]))
    assert r1zero.exit_code == 0 and parse(r1zero.stdout)[0]["prompt_tokens"] > 60
    refused = rollout(tiny_model, "--template", "r1-zero", input=jsonl(messages))
    assert refused.exit_code == 1
    assert "Error: <stdin>:1: template 'r1-zero' needs a text prompt" in refused.stderr


def test_stop_string_ends_the_completion_and_stays_in_it(tiny_model):
    free = parse(rollout(tiny_model, n=1, tokens=12).stdout)[0]
    text = free["completion"]
    stop = text[len(text) // 2 : len(text) // 2 + 3]
    assert stop and stop in text
    stopped = parse(rollout(tiny_model, "--stop", stop, n=1, tokens=12).stdout)[0]
    assert stopped["finish_reason"] == "stop"
    assert stopped["completion"] == text[: text.find(stop) + len(stop)]  # kept, as vLLM's include_stop_str_in_output
    assert stopped["completion_tokens"] < 12


@pytest.mark.parametrize(
    "data, message",
    [
        ('{"prompt": "ok"}\n{"prompt": "x"\n', "Error: <stdin>:2: invalid JSON"),
        ('{"prompt": "ok"}\n[1, 2]\n', "Error: <stdin>:2: expected a JSON object, got an array"),
        ('{"question": "2+2?"}\n', "Error: <stdin>:1: no 'prompt' field"),
        (b'{"prompt": "caf\xe9"}\n', "Error: <stdin>:1: not UTF-8"),
    ],
)
def test_bad_input_is_a_clear_error(tiny_model, data, message):
    result = run(["rollout", "-m", tiny_model, "-n", "1", "--max-new-tokens", "2", "-q"], input=data)
    assert result.exit_code == 1
    assert message in result.stderr
    assert "Hint:" in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_input_leaves_no_output_file(tiny_model, tmp_path):
    out = tmp_path / "out.jsonl"
    data = jsonl(PROMPTS) + '{"prompt": broken\n'
    result = run(["rollout", "-m", tiny_model, "-n", "1", "--max-new-tokens", "2", "-q", "-o", str(out)], input=data)
    assert result.exit_code == 1
    assert list(tmp_path.iterdir()) == []


def test_unknown_model_lists_aliases():
    result = run(["rollout", "-m", "no-such-model", "-q"], input=jsonl(PROMPTS[:1]))
    assert result.exit_code == 1
    assert "smollm2-135m" in result.stderr and "tiny" in result.stderr


def test_resume_needs_an_output_file(tiny_model):
    result = run(["rollout", "-m", tiny_model, "--resume"], input=jsonl(PROMPTS))
    assert result.exit_code == 2
    assert "--resume" in result.stderr


def test_field_mapping_from_a_file(tiny_model, tmp_path):
    src = tmp_path / "gsm.jsonl"
    src.write_text(jsonl([{"question": "Tom has 2 apples and gets 3. How many?", "answer": "2+3=5\n#### 5"}]))
    result = run(["rollout", str(src), "-m", tiny_model, "-n", "1", "--max-new-tokens", "2", "-q",
                  "--prompt-field", "question", "--extract-answer", "gsm8k"])
    assert result.exit_code == 0, result.stderr
    (rec,) = parse(result.stdout)
    assert rec["answer"] == "5" and rec["prompt"].startswith("Tom") and rec["id"].startswith("p-")


@pytest.mark.parametrize("cut", ["mid-line", "mid-group", "between-groups"])
def test_resume_after_a_crash_is_exactly_once(tiny_model, tmp_path, cut):
    src = tmp_path / "p.jsonl"
    src.write_text(jsonl(PROMPTS))
    full = tmp_path / "full.jsonl"
    args = ["rollout", str(src), "-m", tiny_model, "-n", "2", "--max-new-tokens", "5", "-q", "--engine-batch-size", "2",
            "--dtype", "float32"]
    assert run(args + ["-o", str(full)]).exit_code == 0
    lines = full.read_text().splitlines(keepends=True)
    assert len(lines) == 6
    crashed = {"mid-line": "".join(lines[:3]) + lines[3][:17],
               "mid-group": "".join(lines[:3]),
               "between-groups": "".join(lines[:4])}[cut]
    out = tmp_path / "out.jsonl"
    (tmp_path / "out.jsonl.part").write_text(crashed)
    result = run(args + ["-o", str(out), "--resume"])
    assert result.exit_code == 0, result.stderr
    got = [json.loads(x) for x in out.read_text().splitlines()]
    keys = Counter((r["id"], r["sample"]) for r in got)
    assert keys == Counter((p["id"], s) for p in PROMPTS for s in range(2))
    # per-sample seeds: the resumed file holds the same completions as the uninterrupted run
    want = {(r["id"], r["sample"]): r["completion"] for r in map(json.loads, lines)}
    assert {(r["id"], r["sample"]): r["completion"] for r in got} == want
    assert not (tmp_path / "out.jsonl.part").exists()


@pytest.mark.parametrize("template", ["r1-zero", "chat"])
def test_prefill_is_recorded_and_scored_as_part_of_the_answer(tiny_model, template):
    result = rollout(tiny_model, "--template", template, "--prefill", "<think>", n=1)
    assert result.exit_code == 0, result.stderr
    out = parse(result.stdout)
    assert [r["prefill"] for r in out] == ["<think>"] * 3
    assert sorted(r["prompt"] for r in out) == sorted(p["prompt"] for p in PROMPTS)  # unrendered
    scored = run(["score", "-r", "tags", "-q"], input=result.stdout)
    assert scored.exit_code == 0, scored.stderr
    assert all(r["rewards"]["tags"] >= 0.25 for r in parse(scored.stdout))  # the prefilled <think> counts
