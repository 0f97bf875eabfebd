"""`r1 distill` on tiny models: the whole chain, stages skipped or resumed on a rerun, settings that
changed refused, the gkd path, the teacher behind an OpenAI-compatible server, and a student with
another vocabulary refused before any model loads.

The teacher is the `tiny` model, the student a tiny model with other random weights (seed 1).
Random models write noise, never a correct answer: the runs keep samples with --no-correct-only.
"""

import json

import pytest
import typer
from typer.testing import CliRunner

from r1cli.cli._common import reports_errors
from r1cli.cli.distill import distill_cmd

runner = CliRunner()
app = typer.Typer()
app.command("distill")(reports_errors(distill_cmd))


@app.callback()
def _root() -> None:
    """Test app: `r1 distill` alone."""


PROMPTS = [{"id": f"q{i}", "prompt": f"Compute {i} + {i}.", "answer": str(2 * i)} for i in range(4)]
FAST = ["-n", "2", "--max-new-tokens", "6", "--no-correct-only", "--keep-truncated", "--workers", "0",
        "--batch-size", "2", "--max-length", "96"]


def distill_run(*args):
    return runner.invoke(app, ["distill", *args])


def lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def student(tmp_path_factory, tiny_model):
    """A tiny model with other random weights than the teacher's, same tokenizer."""
    from r1cli.models import build_tiny

    return str(build_tiny(tmp_path_factory.mktemp("student") / "tiny-seed1", seed=1))


@pytest.fixture
def data(tmp_path):
    path = tmp_path / "prompts.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in PROMPTS))
    return str(path)


FILES = ("rollouts.jsonl", "scored.jsonl", "selected.jsonl")


def mtimes(out, *, student=True):
    return {name: (out / name).stat().st_mtime_ns
            for name in (*FILES, *(f + ".r1.json" for f in FILES), *(["student.r1.json"] if student else []))}


def marker(path):
    """The manifest of a stage's output (FILE.r1.json, or FOLDER.r1.json for the student)."""
    return json.loads((path.parent / (path.name + ".r1.json")).read_text())


def test_end_to_end_then_a_rerun_skips_every_stage(tmp_path, tiny_model, student, data):
    out = tmp_path / "out"
    result = distill_run("--teacher", tiny_model, "--student", student, "--data", data, "-o", str(out),
                         "--max-steps", "2", *FAST)
    assert result.exit_code == 0, result.stderr
    assert result.stdout == ""
    rollouts, scored, selected = (lines(out / f) for f in ("rollouts.jsonl", "scored.jsonl", "selected.jsonl"))
    assert [(r["id"], r["sample"]) for r in rollouts] == [(f"q{i}", s) for i in range(4) for s in range(2)]
    assert all(r["model"] == tiny_model and r["completion_tokens"] <= 6 for r in rollouts)
    assert all(set(r["rewards"]) == {"accuracy", "format"} for r in scored) and len(scored) == 8
    assert 0 < len(selected) <= 8
    # the prompts as the teacher saw them (its chat template: messages), answered by one assistant turn
    assert all(r["template"] == "chat" and r["prompt"][-1]["role"] == "user" for r in selected)
    assert all(r["completion"] == [{"role": "assistant", "content": r["completion"][0]["content"]}] for r in selected)
    manifests = [marker(out / name) for name in (*FILES, "student")]
    assert [m["command"] for m in manifests] == ["rollout", "score", "reject-sample", "train"]
    assert all(m["complete"] for m in manifests) and not list(out.glob("*.part*"))
    for upstream, downstream in zip(manifests, manifests[1:]):  # each stage records the output it read
        assert downstream["input"]["sha256"] == upstream["output"]["sha256"]
        assert downstream["input"]["records"] == upstream["output"]["records"]
    assert manifests[2]["summary"]["records_kept"] == len(selected)
    assert manifests[0]["settings"]["sampling"]["n"] == 2 and manifests[1]["settings"]["rewards"] == {
        "accuracy": 1.0, "format": 1.0}
    student_dir = out / "student"
    assert [r["step"] for r in lines(student_dir / "metrics.jsonl")] == [1, 2]
    config = json.loads((student_dir / "r1_config.json").read_text())
    assert config["r1"]["model"] == student and config["r1"]["template"] == "chat"
    assert config["r1"]["data"] == str(out / "selected.jsonl")
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    AutoModelForCausalLM.from_pretrained(student_dir)
    before, after = load_file(f"{student}/model.safetensors"), load_file(f"{student_dir}/model.safetensors")
    assert any(not before[k].equal(after[k]) for k in before)  # the student was trained
    assert "rollout: 8 completions for 4 prompts" in result.stderr
    assert f"student saved to {student_dir}" in result.stderr

    # the same command again: nothing is redone
    stamps = mtimes(out)
    again = distill_run("--teacher", tiny_model, "--student", student, "--data", data, "-o", str(out),
                        "--max-steps", "2", *FAST)
    assert again.exit_code == 0, again.stderr
    assert mtimes(out) == stamps
    for stage in ("rollout", "score", "select", "train"):
        assert f"{stage}: done already" in again.stderr

    # other settings for a finished stage: refused, naming what changed and what to remove
    changed = distill_run("--teacher", tiny_model, "--student", student, "--data", data, "-o", str(out),
                          "--max-steps", "2", *FAST, "--temperature", "0.9")
    assert changed.exit_code == 1
    assert "the rollout stage finished with other settings (--temperature: 0.6 on record, 0.9 now)" in changed.stderr
    assert "rollouts.jsonl" in changed.stderr and mtimes(out) == stamps

    # the prompts changed under the same name: refused, nothing touched
    (tmp_path / "prompts.jsonl").write_text("".join(json.dumps({**r, "prompt": r["prompt"] + "!"}) + "\n"
                                                    for r in PROMPTS))
    other = distill_run("--teacher", tiny_model, "--student", student, "--data", data, "-o", str(out),
                        "--max-steps", "2", *FAST)
    assert other.exit_code == 1, other.stderr
    assert "is not the input" in other.stderr and "rm -r" in other.stderr and "Traceback" not in other.stderr
    assert mtimes(out) == stamps and not list(out.glob("*.part*"))


@pytest.fixture
def crash_at_step(monkeypatch):
    """Interrupt the student's training (as Ctrl-C would) when it logs step `n`."""
    from r1cli.training import run

    original = run.metrics_callback

    def install(n):
        def metrics_callback(path, row):
            callback = original(path, row)
            on_log = callback.on_log

            def crashing(args, state, control, logs=None, **kwargs):
                on_log(args, state, control, logs=logs, **kwargs)
                if state.global_step == n:
                    raise KeyboardInterrupt

            callback.on_log = crashing
            return callback

        monkeypatch.setattr(run, "metrics_callback", metrics_callback)

    yield install
    monkeypatch.setattr(run, "metrics_callback", original)


def test_interrupted_training_resumes_without_redoing_earlier_stages(tmp_path, tiny_model, student, data,
                                                                      crash_at_step, monkeypatch):
    out = tmp_path / "out"
    recipe = tmp_path / "r.yaml"
    recipe.write_text("save_steps: 1\n")
    args = ["--teacher", tiny_model, "--student", student, "--data", data, "-o", str(out), "-c", str(recipe),
            "--max-steps", "3", *FAST]
    crash_at_step(2)
    first = distill_run(*args)
    assert first.exit_code == 130, first.output
    assert marker(out / "selected.jsonl")["complete"] and not marker(out / "student")["complete"]
    assert (out / "student" / "checkpoint-1").is_dir()
    stamps = mtimes(out, student=False)
    monkeypatch.undo()  # no crash this time; and no teacher may load: its stages are done

    def no_teacher(*a, **k):
        raise AssertionError("the teacher was about to load")

    monkeypatch.setattr("r1cli.engines.get_engine", no_teacher)
    second = distill_run(*args)
    assert second.exit_code == 0, second.stderr
    assert mtimes(out, student=False) == stamps
    for stage in ("rollout", "score", "select"):
        assert f"{stage}: done already" in second.stderr
    assert "resumed from" in second.stderr and "checkpoint-" in second.stderr
    rows = lines(out / "student" / "metrics.jsonl")
    assert [r["step"] for r in rows] == [1, 2, 3]  # step 2 logged before the crash, dropped and redone
    assert marker(out / "student")["complete"] and marker(out / "student")["summary"]["first_step"] >= 1


def test_interrupted_rollout_resumes_with_the_missing_prompts_only(tmp_path, tiny_model, student, data, monkeypatch):
    from r1cli.engines.hf import HFEngine

    out = tmp_path / "out"
    calls = []
    generate = HFEngine.generate

    def counting(self, prompts, params, **kwargs):
        calls.append(len(prompts))
        if len(calls) == 3:
            raise KeyboardInterrupt
        return generate(self, prompts, params, **kwargs)

    monkeypatch.setattr(HFEngine, "generate", counting)
    args = ["--teacher", tiny_model, "--student", student, "--data", data, "-o", str(out), "--max-steps", "1",
            "--engine-batch-size", "2", *FAST]  # 2 sequences per call: one prompt × 2 samples
    first = distill_run(*args)
    assert first.exit_code == 130
    partial = lines(out / "rollouts.jsonl.part")
    assert len(partial) == 4 and not (out / "rollouts.jsonl").exists()
    assert marker(out / "rollouts.jsonl.part")["complete"] is False
    calls.clear()
    second = distill_run(*args)
    assert second.exit_code == 0, second.stderr
    assert calls == [1, 1]  # the two prompts not done
    assert "2 prompts done before" in second.stderr
    rollouts = lines(out / "rollouts.jsonl")
    assert rollouts[:4] == partial
    assert sorted((r["id"], r["sample"]) for r in rollouts) == [(f"q{i}", s) for i in range(4) for s in range(2)]
    assert (out / "student" / "model.safetensors").is_file()


def test_gkd_on_tiny_models(tmp_path, tiny_model, student, data):
    out = tmp_path / "out"
    recipe = tmp_path / "gkd.yaml"
    recipe.write_text("max_new_tokens: 4\nlmbda: 0.5\nbeta: 0.5\n")
    result = distill_run("--teacher", tiny_model, "--student", student, "--data", data, "-o", str(out),
                         "--method", "gkd", "-c", str(recipe), "--max-steps", "2", "--seed", "3", *FAST)
    assert result.exit_code == 0, result.stderr
    config = json.loads((out / "student" / "r1_config.json").read_text())
    assert config["r1"]["method"] == "gkd" and config["r1"]["teacher"] == tiny_model
    assert config["gkd_config"]["lmbda"] == 0.5 and config["gkd_config"]["max_new_tokens"] == 4
    rows = lines(out / "student" / "metrics.jsonl")
    assert [r["step"] for r in rows] == [1, 2]
    assert all(r["loss"] > 0 for r in rows)  # two models with other weights: a divergence to reduce
    from transformers import AutoModelForCausalLM

    AutoModelForCausalLM.from_pretrained(out / "student")


def test_the_teacher_behind_an_openai_compatible_server(tmp_path, tiny_model, student, data):
    """`--engine openai`: the teacher is the suite's loopback server; before, distill built the engine
    itself and crashed (`OpenAIEngine.__init__() got an unexpected keyword argument 'dtype'`)."""
    from test_engine_openai import FakeServer

    out = tmp_path / "out"
    with FakeServer() as server:
        result = distill_run("--teacher", tiny_model, "--student", student, "--data", data, "-o", str(out),
                             "--engine", "openai", "--base-url", server.url, "--concurrency", "2", "--max-steps", "1",
                             *FAST)
    assert result.exit_code == 0, result.stderr
    rollouts = lines(out / "rollouts.jsonl")
    assert sorted((r["id"], r["sample"]) for r in rollouts) == [(f"q{i}", s) for i in range(4) for s in range(2)]
    assert all(r["completion"].startswith(f"Compute {r['id'][1:]} + ") for r in rollouts)  # the server's answers
    assert len(server.requests) == 8 and {path for path, _, _ in server.requests} == {"/v1/chat/completions"}
    assert marker(out / "rollouts.jsonl")["settings"]["engine"]["engine"] == "openai"
    assert (out / "student" / "model.safetensors").is_file()


@pytest.mark.slow
def test_the_teacher_served_by_transformers_serve(tmp_path, tiny_model, student, data):
    """The same through a real OpenAI-compatible server: `transformers serve` on 127.0.0.1."""
    from test_engine_openai import SERVING, Serve, free_port

    if not SERVING:
        pytest.skip("needs transformers[serving] (pip install 'r1cli[serving]')")
    out = tmp_path / "out"
    server = Serve(tiny_model, free_port(), open(tmp_path / "serve.log", "w"))
    try:
        result = distill_run("--teacher", tiny_model, "--student", student, "--data", data, "-o", str(out),
                             "--engine", "openai", "--base-url", server.url, "--concurrency", "2", "--max-steps", "1",
                             "--template", "none", *FAST)  # through the chat endpoint the random model's turns are empty
    finally:
        server.stop()
    assert result.exit_code == 0, result.stderr
    rollouts = lines(out / "rollouts.jsonl")
    assert sorted((r["id"], r["sample"]) for r in rollouts) == [(f"q{i}", s) for i in range(4) for s in range(2)]
    assert all(r["model"] == tiny_model and 1 <= r["completion_tokens"] <= 6 for r in rollouts)
    assert (out / "student" / "model.safetensors").is_file()


@pytest.mark.parametrize(("args", "message"), [
    (["--engine", "openai"], "--engine openai needs --base-url"),
    (["--engine", "openai", "--base-url", "http://127.0.0.1:1/v1", "--dtype", "bfloat16"], "--dtype"),
])
def test_engine_options_are_checked_before_anything_runs(tmp_path, tiny_model, student, data, args, message):
    out = tmp_path / "out"
    result = distill_run("--teacher", tiny_model, "--student", student, "--data", data, "-o", str(out), *args)
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.stderr.replace("│", " ").split())
    assert not out.exists()


@pytest.fixture
def no_model(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a model was about to load")

    monkeypatch.setattr("r1cli.engines.get_engine", refuse)
    monkeypatch.setattr("r1cli.models.load_model", refuse)


def test_gkd_refuses_a_student_with_another_vocabulary(tmp_path, tiny_model, data, no_model):
    from transformers import AutoTokenizer

    from r1cli.models import build_tiny

    other = build_tiny(tmp_path / "other-vocab", seed=2)
    tokenizer = AutoTokenizer.from_pretrained(other)
    tokenizer.add_tokens(["<r1_extra_token>"])
    tokenizer.save_pretrained(other)
    out = tmp_path / "out"
    result = distill_run("--teacher", tiny_model, "--student", str(other), "--data", data, "-o", str(out),
                         "--method", "gkd", *FAST)
    assert result.exit_code == 1, result.output
    assert "do not share a tokenizer" in result.stderr and "'<r1_extra_token>' only in the student" in result.stderr
    assert "--method sft" in result.stderr
    assert not out.exists()


@pytest.mark.parametrize(("args", "message"), [
    (["-r", "format"], "--correct-only keeps samples whose accuracy is 1, but the accuracy reward is not computed"),
    (["-r", "acuracy"], "unknown reward 'acuracy'"),
    (["--method", "kd"], "Choose from: sft, gkd, on-policy"),
    (["--template", "r1-zero", "--method", "gkd"], "--method gkd trains on chat messages"),
])
def test_refusals_before_any_model_loads(tmp_path, tiny_model, student, data, no_model, args, message):
    out = tmp_path / "out"
    result = distill_run("--teacher", tiny_model, "--student", student, "--data", data, "-o", str(out), *args)
    assert result.exit_code == 1, result.output
    assert message in result.stderr
    assert not out.exists()


def test_nothing_selected_is_a_clear_error(tmp_path, tiny_model, student, data):
    out = tmp_path / "out"
    result = distill_run("--teacher", tiny_model, "--student", student, "--data", data, "-o", str(out),
                         "-n", "1", "--max-new-tokens", "2", "--workers", "0", "--keep-truncated")  # correct only
    assert result.exit_code == 1, result.output
    assert "no sample survived selection" in result.stderr and "incorrect" in result.stderr
    assert "--no-correct-only" in result.stderr
    assert marker(out / "selected.jsonl")["complete"] and not (out / "student").exists()


# ---- on-policy distillation (TRL's DistillationTrainer) ----------------------------------------------


def test_on_policy_on_tiny_models(tmp_path, tiny_model, student, data):
    """The student samples, the loss is the reverse KL to a teacher with other weights: positive, and it
    moves the student; no rollout, score or select stage runs."""
    out = tmp_path / "out"
    result = distill_run("--teacher", tiny_model, "--student", student, "--data", data, "-o", str(out),
                         "--method", "on-policy", "--max-steps", "2", "--max-new-tokens", "6", "--batch-size", "2",
                         "--learning-rate", "1e-3", "-q")
    assert result.exit_code == 0, result.stderr
    config = json.loads((out / "student" / "r1_config.json").read_text())
    assert config["r1"]["teacher"] == tiny_model and config["r1"]["model"] == student
    assert config["distillation_config"]["beta"] == 1.0  # reverse KL
    assert config["distillation_config"]["max_completion_length"] == 6
    rows = lines(out / "student" / "metrics.jsonl")
    assert [r["step"] for r in rows] == [1, 2]
    assert all(r["loss"] > 0 and r["grad_norm"] > 0 for r in rows)
    assert all(r["completions/max_length"] <= 6 for r in rows)
    assert not (out / "rollouts.jsonl").exists() and not (out / "selected.jsonl").exists()
    import torch
    from transformers import AutoModelForCausalLM

    before = AutoModelForCausalLM.from_pretrained(student).state_dict()
    after = AutoModelForCausalLM.from_pretrained(out / "student").state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)


@pytest.mark.parametrize(("args", "message"), [
    (["--lora", "8"], "--lora do not apply to --method on-policy"),
    (["--prefill", "<think>"], "a prefill would be closed"),
])
def test_on_policy_refusals(tmp_path, tiny_model, student, data, no_model, args, message):
    result = distill_run("--teacher", tiny_model, "--student", student, "--data", data, "-o", str(tmp_path / "o"),
                         "--method", "on-policy", *args)
    assert result.exit_code == 1, result.output
    assert message in result.stderr


def test_on_policy_refuses_a_student_with_another_vocabulary(tmp_path, tiny_model, data, no_model):
    from transformers import AutoTokenizer

    from r1cli.models import build_tiny

    other = build_tiny(tmp_path / "other-vocab", seed=2)
    tokenizer = AutoTokenizer.from_pretrained(other)
    tokenizer.add_tokens(["<r1_extra_token>"])
    tokenizer.save_pretrained(other)
    result = distill_run("--teacher", tiny_model, "--student", str(other), "--data", data, "-o", str(tmp_path / "o"),
                         "--method", "on-policy")
    assert result.exit_code == 1, result.output
    assert "do not share a tokenizer" in result.stderr
    assert not (tmp_path / "o").exists()
