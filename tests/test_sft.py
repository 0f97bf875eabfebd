"""`r1 sft`: record shapes, templates, the completion-only loss mask, refusals before any model loads,
and short real runs on the tiny random model (3 steps from each format, reloaded afterwards)."""

import json
import time

import pytest
import typer
from typer.testing import CliRunner

from r1cli.cli._common import reports_errors
from r1cli.cli.sft import sft_cmd
from r1cli.errors import BadInput, R1Error
from r1cli.training import sft
from r1cli.training.sft import Example, SFTSettings, metrics_row, render_example, to_example

runner = CliRunner()
app = typer.Typer()
app.command("sft")(reports_errors(sft_cmd))


@app.callback()
def _root() -> None:
    """Test app: `r1 sft` alone."""


USER = {"role": "user", "content": "Compute 2 + 3."}
ASSISTANT = {"role": "assistant", "content": "<think>2 + 3 = 5</think> \\boxed{5}"}
# rollout / reject-sample output: every key but prompt and completion must be dropped
PC = [{"id": f"p{i}", "sample": 0, "prompt": f"Compute {i} + 1.", "completion": f"<think>{i} + 1</think> \\boxed{{{i + 1}}}",
       "answer": str(i + 1), "rewards": {"accuracy": 1.0}, "reward": 1.0, "finish_reason": "stop"} for i in range(6)]
MESSAGES = [{"messages": [{"role": "user", "content": f"Double {i}."}, {"role": "assistant", "content": f"It is {2 * i}."}],
             "source": "chat"} for i in range(6)]
SMALL = ["--batch-size", "2", "--max-length", "128", "-q"]


def write_jsonl(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return str(path)


def sft_run(*args, input=None):
    return runner.invoke(app, ["sft", *args], input=input)


def metrics(out):
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


# ---- record shapes and templates (pure) -----------------------------------------------------------


@pytest.mark.parametrize(("record", "prompt", "completion"), [
    ({"prompt": "2+3?", "completion": " 5", "id": "x", "rewards": {}}, "2+3?", " 5"),
    ({"prompt": [USER], "completion": "5"}, [USER], "5"),
    ({"prompt": "2+3?", "completion": [ASSISTANT]}, "2+3?", [ASSISTANT]),
    ({"messages": [USER, ASSISTANT]}, [USER], [ASSISTANT]),
    ({"messages": [{"role": "system", "content": "Be brief."}, USER, ASSISTANT]},
     [{"role": "system", "content": "Be brief."}, USER], [ASSISTANT]),
    ({"messages": [{**USER, "name": "u"}, ASSISTANT]}, [USER], [ASSISTANT]),  # extra message keys dropped
    ({"prompt": "p", "completion": "c", "messages": [USER]}, "p", "c"),  # prompt + completion win
])
def test_to_example(record, prompt, completion):
    example = to_example("f:1", record)
    assert (example.prompt, example.completion) == (prompt, completion)


@pytest.mark.parametrize(("record", "message"), [
    ({"question": "2+3?", "answer": "5"}, "f:7: neither 'prompt' + 'completion' nor 'messages'"),
    ({"prompt": "2+3?"}, "neither 'prompt' + 'completion' nor 'messages'"),
    ({"messages": [USER]}, "the last message must be the assistant's"),
    ({"messages": [ASSISTANT]}, "needs a prompt turn before the assistant's"),
    ({"messages": "hello"}, "'messages' must be a non-empty list"),
    ({"messages": []}, "'messages' must be a non-empty list"),
    ({"prompt": "", "completion": "5"}, "'prompt' must be a non-empty string"),
    ({"prompt": "2+3?", "completion": 5}, "'completion' must be text or a list of assistant messages"),
    ({"prompt": "2+3?", "completion": [USER]}, "assistant turns only"),
])
def test_to_example_refuses_bad_records(record, message):
    with pytest.raises(BadInput, match=message.replace("+", r"\+").replace("(", r"\(")):
        to_example("f:7", record)


@pytest.mark.parametrize(("example", "template", "system", "row"), [
    (Example("f:1", "2+3?", "5"), "chat", None,
     {"prompt": [{"role": "user", "content": "2+3?"}], "completion": [{"role": "assistant", "content": "5"}]}),
    (Example("f:1", "2+3?", "5"), "chat", "",
     {"prompt": [{"role": "system", "content": ""}, {"role": "user", "content": "2+3?"}],
      "completion": [{"role": "assistant", "content": "5"}]}),
    (Example("f:1", [USER], [ASSISTANT]), "chat", None, {"prompt": [USER], "completion": [ASSISTANT]}),
    (Example("f:1", "2+3?", " 5"), "none", None, {"prompt": "2+3?", "completion": " 5"}),
])
def test_render_example(example, template, system, row):
    assert render_example(example, template, system=system) == row


def test_render_example_r1_zero_is_the_rollout_prompt():
    from r1cli.templates import render

    row = render_example(Example("f:1", "2+3?", " <think>"), "r1-zero")
    assert row == {"prompt": render("2+3?", "r1-zero"), "completion": " <think>"}


@pytest.mark.parametrize(("example", "template", "message"), [
    (Example("f:3", [USER], "5"), "none", "f:3: template 'none' needs a text prompt"),
    (Example("f:3", "2+3?", [ASSISTANT]), "r1-zero", "f:3: template 'r1-zero' needs a text completion"),
])
def test_render_example_refuses_messages_without_chat(example, template, message):
    with pytest.raises(BadInput, match=message):
        render_example(example, template)


def test_metrics_row_names():
    logs = {"loss": 2.0, "learning_rate": 1e-5, "grad_norm": 0.5, "num_tokens": 300.0, "mean_token_accuracy": 0.1,
            "entropy": 9.0, "epoch": 1.0, "step_time": 0.3, "aux": float("nan")}
    assert metrics_row(logs, 4, 2.0) == {"step": 4, "loss": 2.0, "lr": 1e-5, "grad_norm": 0.5, "tokens": 300.0,
                                         "mean_token_accuracy": 0.1, "entropy": 9.0, "epoch": 1.0, "step_time": 0.3,
                                         "time": 2.0, "aux": None}


# ---- settings: defaults < recipe < flags ------------------------------------------------------------


def test_settings_precedence(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("learning_rate: 1.0e-4\nnum_train_epochs: 3\nwarmup_steps: 2\n"
                      "r1:\n  template: r1-zero\n  lora: 8\n")
    settings = SFTSettings.build({"learning_rate": 5e-5, "epochs": None, "output": str(tmp_path / "o")}, recipe)
    assert settings.trl["learning_rate"] == 5e-5  # flag over recipe
    assert settings.trl["num_train_epochs"] == 3  # recipe over r1's default (2)
    assert settings.trl["warmup_steps"] == 2 and settings.trl["completion_only_loss"] is True
    assert settings.template == "r1-zero" and settings.lora == (8, 16) and settings.method == "sft"
    assert SFTSettings.build({"output": "o"}).trl["num_train_epochs"] == 2  # R1's two epochs
    assert SFTSettings.from_json(json.loads(json.dumps(settings.to_json()))) == settings
    gkd = SFTSettings.build({"output": "o", "method": "gkd", "teacher": "tiny"}, {"lmbda": 0.25, "max_new_tokens": 16})
    assert gkd.trl["lmbda"] == 0.25


@pytest.mark.parametrize(("flags", "recipe", "message"), [
    ({}, {"lmbda": 0.5}, "unknown setting 'lmbda'"),  # a GKD field, not an SFT one
    ({"method": "gkd"}, None, "--method gkd needs a teacher model"),
    ({"teacher": "tiny"}, None, "a teacher is used by --method gkd only"),
    ({"method": "kd"}, None, "unknown method 'kd'"),
    ({"lora": "0"}, None, "bad --lora '0'"),
])
def test_settings_refusals(flags, recipe, message):
    with pytest.raises(R1Error, match=message):
        SFTSettings.build({"output": "o", **flags}, recipe)


# ---- refusals before any model loads --------------------------------------------------------------


@pytest.fixture
def no_model(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a model was about to load")

    monkeypatch.setattr(sft, "build_trainer", refuse)
    monkeypatch.setattr("r1cli.models.load_model", refuse)


@pytest.mark.parametrize(("records", "args", "message"), [
    ([PC[0], {"question": "2+3?", "answer": "5"}], [], ":2: neither 'prompt' + 'completion' nor 'messages'"),
    ([MESSAGES[0], {"messages": [USER]}], [], ":2: the last message must be the assistant's"),
    ([MESSAGES[0]], ["--template", "r1-zero"], ":1: template 'r1-zero' needs a text prompt"),
])
def test_bad_data_is_refused_before_a_model_loads(tmp_path, tiny_model, no_model, records, args, message):
    data = write_jsonl(tmp_path / "bad.jsonl", records)
    start = time.perf_counter()
    result = sft_run("-m", tiny_model, "--data", data, "-o", str(tmp_path / "o"), *args)
    assert result.exit_code == 1, result.output
    assert message in result.stderr and data in result.stderr
    assert time.perf_counter() - start < 10
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(("recipe", "args", "message"), [
    ("lr_scheduler_type: sometimes\n", [], "invalid SFT settings: sometimes is not a valid SchedulerType"),
    ("", ["--lora", "x"], "bad --lora 'x'"),
])
def test_bad_settings_are_refused_before_a_model_loads(tmp_path, tiny_model, no_model, recipe, args, message):
    data = write_jsonl(tmp_path / "d.jsonl", PC)
    (tmp_path / "r.yaml").write_text(recipe)
    result = sft_run("-m", tiny_model, "--data", data, "-o", str(tmp_path / "o"), "-c", str(tmp_path / "r.yaml"), *args)
    assert result.exit_code == 1, result.output
    assert message in result.stderr


def test_recipe_unknown_key_is_an_error(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("max_lenght: 512\n")
    result = sft_run("--data", "x.jsonl", "-o", str(tmp_path / "o"), "-c", str(recipe))
    assert result.exit_code == 1
    assert "unknown setting 'max_lenght'" in result.stderr and "did you mean 'max_length'?" in result.stderr


# ---- the loss mask: exactly the completion's tokens ------------------------------------------------


@pytest.mark.parametrize(("records", "template", "suffix"), [
    (PC[:3], None, "<|im_end|>\n"),  # chat: the assistant turn's end, as the template writes it
    (MESSAGES[:3], None, "<|im_end|>\n"),
    (PC[:3], "r1-zero", "<|im_end|>"),  # text: TRL appends the EOS token
    (PC[:3], "none", "<|im_end|>"),
])
def test_loss_mask_covers_exactly_the_completion(tmp_path, tiny_model, records, template, suffix):
    """SmolLM2's chat template has no {% generation %} markers; completion-only loss must still mask
    every prompt token (the system prompt the template inserts included) and no completion token."""
    from r1cli.models import load_tokenizer

    settings = SFTSettings.build({"model": tiny_model, "data": write_jsonl(tmp_path / "d.jsonl", records),
                                  "output": str(tmp_path / "o"), "template": template})
    tokenizer = load_tokenizer(tiny_model)
    assert "{% generation %}" not in tokenizer.chat_template
    prepared = sft.prepare(settings, tokenizer)
    trainer = sft.build_trainer(settings, prepared, sft.sft_config(settings), tokenizer=tokenizer)
    # the records' other keys (id, rewards, answer, …) never reach TRL
    assert set(trainer.train_dataset.column_names) == {"input_ids", "labels"}
    for example, row in zip(prepared.examples, trainer.train_dataset):
        ids, labels = row["input_ids"], row["labels"]
        start = next(i for i, label in enumerate(labels) if label != -100)
        assert all(label == token for label, token in zip(labels[start:], ids[start:]))  # one contiguous span
        completion = example.completion if isinstance(example.completion, str) else example.completion[0]["content"]
        assert tokenizer.decode(ids[start:]) == completion + suffix
        # the prompt's tokens are those r1 rollout's engine feeds the model, even where a token could
        # span the boundary ("Compute 0 + 1." + "<think>…": '.<' is one token of the joint text)
        prompt = render_example(example, prepared.template)["prompt"]
        if isinstance(prompt, list):
            text = tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=False)
            assert ids[:start] == tokenizer(text, add_special_tokens=False)["input_ids"]
        else:
            assert ids[:start] == tokenizer(prompt, add_special_tokens=True)["input_ids"]


# ---- real runs on the tiny model ---------------------------------------------------------------------


def _weights(folder):
    from safetensors.torch import load_file

    return load_file(f"{folder}/model.safetensors")


def _changed(before, after):
    return any(not before[k].equal(after[k]) for k in before)


def test_prompt_completion_three_steps_and_reload(tmp_path, tiny_model):
    out = tmp_path / "run"
    data = write_jsonl(tmp_path / "pc.jsonl", PC)
    result = sft_run("-m", tiny_model, "--data", data, "--max-steps", "3", "-o", str(out), *SMALL[:-1])
    assert result.exit_code == 0, result.stderr
    assert result.stdout == ""
    assert "trained 3 steps in " in result.stderr and f"model saved to {out}" in result.stderr
    rows = metrics(out)
    assert [r["step"] for r in rows] == [1, 2, 3]
    for key in ("loss", "lr", "grad_norm", "tokens", "mean_token_accuracy", "entropy", "step_time", "time"):
        assert isinstance(rows[0][key], (int, float)), key
    assert rows[2]["tokens"] > rows[0]["tokens"] > 0
    config = json.loads((out / "r1_config.json").read_text())
    assert config["r1"]["template"] == "chat" and config["sft_config"]["completion_only_loss"] is True
    assert config["sft_config"]["bf16"] is False and config["processes"] == 1
    from transformers import AutoModelForCausalLM, AutoTokenizer

    AutoModelForCausalLM.from_pretrained(out)
    assert AutoTokenizer.from_pretrained(out).chat_template
    assert _changed(_weights(tiny_model), _weights(out))


def test_messages_from_stdin_three_steps_and_reload(tmp_path, tiny_model):
    out = tmp_path / "run"
    stdin = "".join(json.dumps(r) + "\n" for r in MESSAGES)
    result = sft_run("-m", tiny_model, "--max-steps", "3", "-o", str(out), *SMALL, input=stdin)
    assert result.exit_code == 0, result.stderr
    assert [r["step"] for r in metrics(out)] == [1, 2, 3]
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(out)
    assert model.num_parameters() > 0
    assert _changed(_weights(tiny_model), _weights(out))


def test_resume_continues_the_step_count(tmp_path, tiny_model):
    out = tmp_path / "run"
    data = write_jsonl(tmp_path / "pc.jsonl", PC)
    recipe = tmp_path / "r.yaml"
    recipe.write_text("save_steps: 1\n")
    base = ["-m", tiny_model, "--data", data, "-c", str(recipe), "-o", str(out), *SMALL]
    assert sft_run(*base, "--max-steps", "1").exit_code == 0
    again = sft_run(*base, "--max-steps", "2")
    assert again.exit_code == 1 and "already holds a training run" in again.stderr
    with open(out / "metrics.jsonl", "a") as fp:  # logged after the last checkpoint (a crash): dropped on resume
        fp.write(json.dumps({"step": 2, "loss": 99.0}) + "\n")
    result = sft_run(*[a for a in base if a != "-q"], "--max-steps", "2", "--resume")
    assert result.exit_code == 0, result.stderr
    assert "resumed from" in result.stderr and "checkpoint-1" in result.stderr
    rows = metrics(out)
    assert [r["step"] for r in rows] == [1, 2] and rows[1]["loss"] != 99.0


def test_lora_and_packing(tmp_path, tiny_model):
    out = tmp_path / "run"
    data = write_jsonl(tmp_path / "pc.jsonl", PC)
    result = sft_run("-m", tiny_model, "--data", data, "--lora", "4", "--packing", "--max-length", "64",
                     "--max-steps", "1", "--batch-size", "2", "-o", str(out), "-q")
    assert result.exit_code == 0, result.stderr
    assert (out / "adapter" / "adapter_config.json").is_file()
    config = json.loads((out / "r1_config.json").read_text())
    assert config["sft_config"]["packing"] is True and config["r1"]["lora"] == [4, 8]
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(out)
    assert not any("lora" in name for name, _ in model.named_parameters())
    assert _changed(_weights(tiny_model), _weights(out))  # the merged adapter moved the weights


def test_two_processes_on_cpu(tmp_path, tiny_model, capfd):
    """Two ranks of `python -m r1cli.training.worker` (no CLI import, so no RuntimeWarning about it)."""
    out = tmp_path / "run"
    stdin = "".join(json.dumps(r) + "\n" for r in PC)
    result = sft_run("-m", tiny_model, "--max-steps", "2", "--num-processes", "2", "--batch-size", "1",
                     "-o", str(out), input=stdin)
    assert result.exit_code == 0, result.output
    ranks = capfd.readouterr().err  # the ranks' stderr: inherited file descriptors
    assert "trained 2 steps in " in ranks and "RuntimeWarning" not in ranks and "r1cli.cli" not in ranks, ranks
    config = json.loads((out / "r1_config.json").read_text())
    assert config["processes"] == 2  # two real ranks, not two independent runs
    assert config["trainer"] == "sft" and config["r1"]["data"] == "-" and config["r1"]["num_processes"] == 2
    assert [r["step"] for r in metrics(out)] == [1, 2]  # rank 0 alone writes the metrics
    assert (out / "model.safetensors").is_file() and (out / "sft_data.jsonl").is_file()


def test_eval_while_training_and_checkpoint_limit(tmp_path, tiny_model):
    """--eval-every 1: eval/… keys on each step's line; the last 2 checkpoints kept; best/ saved."""
    out = tmp_path / "run"
    data = write_jsonl(tmp_path / "d.jsonl", PC)
    held = write_jsonl(tmp_path / "held.jsonl", [{"prompt": "Compute 1 + 1.", "answer": "2"}])
    recipe = tmp_path / "r.yaml"
    recipe.write_text("r1:\n  eval_max_tokens: 8\n")  # random weights never stop: keep held-out answers short
    result = sft_run("-m", tiny_model, "--data", data, "-o", str(out), "--max-steps", "3", "--eval-data", held,
                     "-c", str(recipe),
                     "--eval-every", "1", "--eval-samples", "2", "--save-best", "format", "--save-steps", "1",
                     "--template", "r1-zero", *SMALL)
    assert result.exit_code == 0, result.stderr
    rows = metrics(out)
    assert [r["step"] for r in rows] == [1, 2, 3]
    assert all("eval/pass@1" in r and "eval/cons@2" in r and r["eval/step"] == r["step"] for r in rows)
    assert all(0 < r["eval/mean_tokens"] <= 8 for r in rows)
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-2", "checkpoint-3"]
    assert json.loads((out / "best.json").read_text())["metric"] == "eval/format"
    assert (out / "best" / "model.safetensors").is_file()
