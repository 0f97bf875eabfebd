"""`r1 grpo`: settings, dynamic sampling, refusals before any model loads, and short real runs.

Runs use the tiny random model: 2 prompts × 2 generations × 8 tokens, 1–2 steps each.
"""

import json
import time
from types import SimpleNamespace

import pytest
import typer
from typer.testing import CliRunner

from r1cli import rewards
from r1cli.cli._common import reports_errors
from r1cli.cli.grpo import grpo_cmd
from r1cli.errors import R1Error
from r1cli.training import grpo
from r1cli.training.grpo import GRPOSettings, metrics_row, parse_lora
from r1cli.training.dynamic_sampling import fill_batch, informative_groups, rank_slices, refill_indices

runner = CliRunner()
app = typer.Typer()
app.command("grpo")(reports_errors(grpo_cmd))


@app.callback()
def _root() -> None:
    """Test app: `r1 grpo` alone."""


PROMPTS = [{"prompt": "Compute 2 + 3.", "answer": "5"}, {"prompt": "Compute 4 * 2.", "answer": "8"}]
CHAT = [{"prompt": [{"role": "user", "content": "Compute 2 + 3."}], "answer": "5"},
        {"prompt": [{"role": "user", "content": "Compute 4 * 2."}], "answer": "8"}]
SMALL = ["-n", "2", "--batch-size", "4", "--max-completion-length", "8", "-q"]


def write_jsonl(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return str(path)


def grpo_run(*args, input=None):
    return runner.invoke(app, ["grpo", *args], input=input)


def metrics(out):
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


# ---- pure parts -------------------------------------------------------------------------------


@pytest.mark.parametrize(("rewards_", "size", "expected"), [
    ([1.0, 1.0, 0.0, 1.0], 2, [False, True]),
    ([0.0, 0.0, 0.0, 0.0], 2, [False, False]),
    ([0.5, None, None, None], 2, [False, False]),  # fewer than two scorable rewards: no signal
    ([0.5, float("nan"), 0.2, 0.5], 2, [False, True]),
    ([1.0, 1.0, 1.0, 0.0, 1.0, 1.0], 3, [False, True]),
    ([0.1, 0.1 + 1e-9], 2, [False]),  # equal within tolerance
])
def test_informative_groups(rewards_, size, expected):
    assert informative_groups(rewards_, size) == expected


def test_informative_groups_refuses_ragged_rewards():
    with pytest.raises(ValueError, match="groups of 2"):
        informative_groups([1.0, 0.0, 1.0], 2)


@pytest.mark.parametrize(("rounds", "needed", "expected"), [
    ([[True, True]], 2, [(0, 0), (0, 1)]),  # nothing dropped
    ([[False, True], [True, False]], 2, [(0, 1), (1, 0)]),  # a dropped group refilled from round 1
    ([[False, True], [True, True]], 2, [(0, 1), (1, 0)]),  # extra informative groups are not used
    ([[False, False], [False, True]], 2, [(1, 1), (0, 0)]),  # too few: topped up with dropped ones
    ([[False, False]], 2, [(0, 0), (0, 1)]),
])
def test_fill_batch_drops_and_refills(rounds, needed, expected):
    picks = fill_batch(rounds, needed)
    assert picks == expected
    assert len(picks) == needed  # every step keeps its batch size


def test_rank_slices_and_refill_indices():
    assert rank_slices([True, False, True, True, False, False], 3) == [[True, False], [True, True], [False, False]]
    with pytest.raises(ValueError):
        rank_slices([True, False, True], 2)
    first = refill_indices(seed=1, step=5, round_=1, dataset_size=100, prompts=8)
    assert first == refill_indices(seed=1, step=5, round_=1, dataset_size=100, prompts=8)
    assert first != refill_indices(seed=1, step=5, round_=2, dataset_size=100, prompts=8)
    assert len(set(first)) == 8 and all(0 <= i < 100 for i in first)


def test_kept_groups_are_concatenated_with_their_padding():
    import torch

    from r1cli.training.dynamic_sampling import dynamic_sampling_trainer

    def round_(width, base):  # 2 groups of 2 completions; prompts 3 wide, completions `width` wide
        return {"prompt_ids": torch.full((4, 3), base), "prompt_mask": torch.ones(4, 3, dtype=torch.long),
                "completion_ids": torch.full((4, width), base), "completion_mask": torch.ones(4, width, dtype=torch.long),
                "advantages": torch.arange(4.0) + base, "num_items_in_batch": torch.tensor(4 * width)}

    fake = SimpleNamespace(_tokenizer=SimpleNamespace(pad_token_id=0), accelerator=SimpleNamespace(gather=lambda t: t))
    concat = dynamic_sampling_trainer()._r1_concat
    merged = concat(fake, [round_(2, 10), round_(5, 20)], [(0, 1), (1, 0)], 2)
    assert merged["completion_ids"].tolist() == [[10, 10, 0, 0, 0]] * 2 + [[20] * 5] * 2  # right-padded
    assert merged["completion_mask"].sum(dim=1).tolist() == [2, 2, 5, 5]
    assert merged["advantages"].tolist() == [12.0, 13.0, 20.0, 21.0]  # group 1 of round 0, group 0 of round 1
    assert merged["num_items_in_batch"].item() == 14  # the kept completion tokens, not the generated ones
    assert merged["prompt_ids"].shape == (4, 3)


@pytest.mark.parametrize(("spec", "expected"), [("16", (16, 32)), ("8,8", (8, 8)), (" 4 , 16", (4, 16))])
def test_parse_lora(spec, expected):
    assert parse_lora(spec) == expected


@pytest.mark.parametrize("spec", ["x", "0", "4,-1", "4,a"])
def test_parse_lora_refuses(spec):
    with pytest.raises(R1Error, match="bad --lora"):
        parse_lora(spec)


def test_metrics_row_names():
    logs = {"reward": 0.5, "rewards/format/mean": 0.5, "completions/mean_length": 12.0, "kl": 0.01,
            "loss": 0.1, "entropy": 2.0, "learning_rate": 1e-6, "step_time": 3.0, "frac_reward_zero_std": 0.5,
            "grad_norm": 1.0}
    row = metrics_row(logs, 7, ["format"], 4.0)
    assert row == {"step": 7, "reward": 0.5, "reward/format": 0.5, "completion_length": 12.0, "kl": 0.01,
                   "loss": 0.1, "entropy": 2.0, "lr": 1e-6, "step_time": 3.0, "frac_reward_zero_std": 0.5,
                   "time": 4.0, "grad_norm": 1.0}


# ---- settings: defaults < recipe < flags ---------------------------------------------------------


def test_settings_precedence(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("learning_rate: 1.0e-5\nbeta: 0.0\nloss_type: dr_grpo\nsave_steps: 7\n"
                      "r1:\n  reward: [format]\n  dynamic_sampling: true\n  lora: 8\n")
    settings = GRPOSettings.build({"learning_rate": 2e-5, "loss": None, "output": str(tmp_path / "o"),
                                   "model": "tiny"}, recipe)
    assert settings.trl["learning_rate"] == 2e-5  # flag over recipe
    assert settings.trl["beta"] == 0.0  # recipe over r1's default (0.001)
    assert settings.trl["loss_type"] == "dr_grpo"  # flag not given: recipe
    assert settings.trl["logging_steps"] == 1  # r1's default
    assert settings.reward == ("format",) and settings.dynamic_sampling and settings.lora == (8, 16)
    params = GRPOSettings.build({"output": "o", "reward": ("format", "length"),
                                 "reward_params": {"length": {"max_len": "64"}}},
                                {"r1": {"reward_params": {"format": {"strict": False}, "length": {"kind": "overlong"}}}})
    assert params.reward_params == {"format": {"strict": False}, "length": {"kind": "overlong", "max_len": "64"}}
    defaults = GRPOSettings.build({"output": str(tmp_path / "o")})
    assert defaults.trl["beta"] == 0.001 and defaults.reward == ("accuracy", "format")
    assert GRPOSettings.from_json(json.loads(json.dumps(settings.to_json()))) == settings


def test_launch_command_starts_real_ranks(tmp_path):
    from r1cli.training import base, run

    cmd = run.launch_command(base.WORKER_MODULE, tmp_path / "r1_launch.json", 2, 29500, quiet=True)
    assert cmd[1:3] == ["launch", "--multi_gpu"]  # `--cpu --num_processes 2` starts one process
    for flag, value in (("--num_processes", "2"), ("--num_machines", "1"), ("--mixed_precision", "no"),
                        ("--dynamo_backend", "no"), ("--main_process_port", "29500")):
        assert cmd[cmd.index(flag) + 1] == value
    assert cmd[-4:] == ["-m", "r1cli.training.worker", str(tmp_path / "r1_launch.json"), "--quiet"]


def test_recipe_unknown_key_is_an_error(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("learning_rate: 1.0e-5\nnum_generation: 4\n")
    result = grpo_run("--data", "x.jsonl", "-o", str(tmp_path / "o"), "-c", str(recipe))
    assert result.exit_code == 1
    assert "unknown setting 'num_generation'" in result.stderr
    assert "did you mean 'num_generations'?" in result.stderr


def test_no_output_folder_is_an_error():
    result = grpo_run("--data", "x.jsonl")
    assert result.exit_code == 1
    assert "no output folder" in result.stderr


# ---- refusals before any model loads ----------------------------------------------------------------


@pytest.fixture
def no_model(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a model was about to load")

    monkeypatch.setattr(grpo, "build_trainer", refuse)
    monkeypatch.setattr("r1cli.models.load_model", refuse)


@pytest.mark.parametrize(("records", "args", "message"), [
    ([PROMPTS[0], {"prompt": "Compute 1 + 1."}], ["-r", "accuracy"],
     ":2: no 'answer' field, which the accuracy reward needs"),
    ([{"question": "Compute 1 + 1."}], [], ":1: no 'prompt' field"),
    (CHAT, ["--template", "r1-zero"], ":1: template 'r1-zero' needs a text prompt"),
])
def test_bad_data_is_refused_before_a_model_loads(tmp_path, no_model, records, args, message):
    data = write_jsonl(tmp_path / "bad.jsonl", records)
    start = time.perf_counter()
    result = grpo_run("-m", "tiny", "--data", data, "-o", str(tmp_path / "o"), *args)
    assert result.exit_code == 1, result.output
    assert message in result.stderr and data in result.stderr
    assert time.perf_counter() - start < 5
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(("args", "message", "hint"), [
    (["--loss", "dr-grpo"], "unknown loss 'dr-grpo'. Choose from: grpo, dr_grpo, dapo", "did you mean 'dr_grpo'?"),
    (["-n", "3", "--batch-size", "4"], "must be divisible by num_generations", "multiple of --num-generations"),
    (["--lora", "x"], "bad --lora 'x'", "R,ALPHA"),
])
def test_bad_settings_are_refused_before_a_model_loads(tmp_path, no_model, args, message, hint):
    data = write_jsonl(tmp_path / "p.jsonl", PROMPTS)
    result = grpo_run("-m", "tiny", "--data", data, "-o", str(tmp_path / "o"), "-r", "format", *args)
    assert result.exit_code == 1, result.output
    assert message in result.stderr and hint in result.stderr


@pytest.mark.parametrize(("reward", "message"), [
    ("acuracy", "unknown reward 'acuracy'. Choose from: accuracy,"),
    ("format:x", "bad weight 'x'"),
])
def test_bad_reward_is_refused_before_a_model_loads(tmp_path, no_model, reward, message):
    data = write_jsonl(tmp_path / "p.jsonl", PROMPTS)
    result = grpo_run("-m", "tiny", "--data", data, "-o", str(tmp_path / "o"), "-r", reward)
    assert result.exit_code == 1
    assert message in result.stderr


# ---- real runs on the tiny model ---------------------------------------------------------------------


def test_plain_prompts_two_steps_and_reload(tmp_path, tiny_model):
    out = tmp_path / "run"
    data = write_jsonl(tmp_path / "p.jsonl", PROMPTS)
    result = grpo_run("-m", tiny_model, "--data", data, "--template", "r1-zero", "-r", "accuracy",
                      "-r", "format:0.5", "--max-steps", "2", "-o", str(out), *SMALL[:-1])
    assert result.exit_code == 0, result.stderr
    assert result.stdout == ""  # stdout is for data; a training run writes none
    assert "trained 2 steps in " in result.stderr and f"model saved to {out}" in result.stderr
    rows = metrics(out)
    assert [r["step"] for r in rows] == [1, 2]
    for key in ("reward", "reward/accuracy", "reward/format", "accuracy", "completion_length", "kl", "loss",
                "entropy", "lr", "step_time", "frac_reward_zero_std", "time"):
        assert key in rows[0], key
    assert rows[0]["completion_length"] <= 8
    config = json.loads((out / "r1_config.json").read_text())
    assert config["r1"]["template"] == "r1-zero" and config["r1"]["reward"] == ["accuracy", "format:0.5"]
    assert config["grpo_config"]["beta"] == 0.001 and config["grpo_config"]["reward_weights"] == [1.0, 0.5]
    assert config["grpo_config"]["bf16"] is False
    assert (out / "model.safetensors").is_file() and (out / "tokenizer.json").is_file()
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(out)
    assert model.num_parameters() > 0
    assert AutoTokenizer.from_pretrained(out).chat_template


def test_chat_prompts_from_stdin(tmp_path, tiny_model):
    out = tmp_path / "run"
    stdin = "".join(json.dumps(r) + "\n" for r in CHAT)
    result = grpo_run("-m", tiny_model, "-r", "format", "--max-steps", "1", "-o", str(out), *SMALL, input=stdin)
    assert result.exit_code == 0, result.stderr
    assert json.loads((out / "r1_config.json").read_text())["r1"]["template"] == "chat"
    assert [r["step"] for r in metrics(out)] == [1]
    assert "accuracy" not in metrics(out)[0]  # only with the accuracy reward


def test_prefilled_chat_prompts_are_continued(tiny_model):
    from r1cli.models import load_tokenizer
    from r1cli.templates import render

    tokenizer = load_tokenizer(tiny_model)
    rows = [{"prompt": render("Compute 2 + 3.", "chat", system="", prefill="<think>")}, {"prompt": "plain <think>"}]
    grpo._continue_prefilled(rows, tokenizer)
    opened = tokenizer.apply_chat_template([{"role": "system", "content": ""},
                                            {"role": "user", "content": "Compute 2 + 3."}],
                                           add_generation_prompt=True, tokenize=False)
    assert rows[0]["prompt"] == opened + "<think>"  # TRL would have closed the assistant turn
    assert rows[1]["prompt"] == "plain <think>"


def test_prefill_with_chat_prompts_one_step(tmp_path, tiny_model):
    out = tmp_path / "run"
    result = grpo_run("-m", tiny_model, "-r", "tags", "--template", "chat", "--prefill", "<think>", "--max-steps", "1",
                      "-o", str(out), *SMALL, input="".join(json.dumps(r) + "\n" for r in PROMPTS))
    assert result.exit_code == 0, result.stderr
    assert json.loads((out / "r1_config.json").read_text())["r1"]["prefill"] == "<think>"
    assert metrics(out)[0]["reward/tags"] >= 0.25  # the prefilled <think> counts for every completion


def test_resume_continues_the_step_count(tmp_path, tiny_model):
    out = tmp_path / "run"
    data = write_jsonl(tmp_path / "p.jsonl", PROMPTS)
    recipe = tmp_path / "r.yaml"
    recipe.write_text("save_steps: 1\n")
    base = ["-m", tiny_model, "--data", data, "-r", "format", "-c", str(recipe), "-o", str(out), *SMALL]
    assert grpo_run(*base, "--max-steps", "1").exit_code == 0
    again = grpo_run(*base, "--max-steps", "2")
    assert again.exit_code == 1 and "already holds a training run" in again.stderr
    # a line logged after the last checkpoint (a crash) is dropped on resume, not duplicated
    with open(out / "metrics.jsonl", "a") as fp:
        fp.write(json.dumps({"step": 2, "reward": 9.0}) + "\n")
    result = grpo_run(*[a for a in base if a != "-q"], "--max-steps", "2", "--resume")
    assert result.exit_code == 0, result.stderr
    assert "resumed from" in result.stderr and "checkpoint-1" in result.stderr
    rows = metrics(out)
    assert [r["step"] for r in rows] == [1, 2] and rows[1]["reward"] != 9.0
    state = json.loads((out / "checkpoint-2" / "trainer_state.json").read_text())
    assert state["global_step"] == 2


@pytest.fixture(scope="module")
def seen_reward():
    """A reward of 1 that appends the answers it scores (one line per call: a step's batch) to $R1_TEST_SEEN."""
    import os

    if "test_seen" not in rewards.names():
        @rewards.register("test_seen", needs=("answer",), summary="test reward")
        def _seen():
            def reward(completion, answer, **_):
                with open(os.environ["R1_TEST_SEEN"], "a") as fp:
                    fp.write(answer + "\n")
                return 1.0
            return reward
    return "test_seen"


def test_resume_keeps_the_data_order(tmp_path, tiny_model, seen_reward, monkeypatch):
    prompts = [{"prompt": f"Compute {i} + 1.", "answer": f"v{i}"} for i in range(8)]
    data = write_jsonl(tmp_path / "p.jsonl", prompts)
    recipe = tmp_path / "r.yaml"
    recipe.write_text("save_steps: 1\n")

    def answers_per_step(out, *steps):
        seen = tmp_path / f"{out}.seen"
        monkeypatch.setenv("R1_TEST_SEEN", str(seen))
        for n, *extra in steps:
            args = ["-m", tiny_model, "--data", data, "-r", seen_reward, "-c", str(recipe), "-o", str(tmp_path / out),
                    "--seed", "3", *SMALL, "--max-steps", str(n), *extra]
            result = grpo_run(*args)
            assert result.exit_code == 0, result.stderr
        lines = seen.read_text().split()
        # 2 prompts × 2 generations a step, scored in parallel by the reward pool: in any order within a step
        return [sorted(lines[i:i + 4]) for i in range(0, len(lines), 4)]

    straight = answers_per_step("straight", (3,))
    resumed = answers_per_step("resumed", (1,), (3, "--resume"))
    assert len(straight) == 3 and resumed == straight  # the same prompts at every step, after the resume too


@pytest.fixture(scope="module")
def half_reward():
    """A reward that varies between random completions of prompts whose answer starts with 'v' (their
    groups are informative, mostly) and is constant for the others (never informative)."""
    if "test_half" not in rewards.names():
        @rewards.register("test_half", needs=("answer",), summary="test reward")
        def _half():
            return lambda completion, answer, **_: float(len(completion) % 2) if answer.startswith("v") else 1.0
    return "test_half"


def test_dynamic_sampling_drops_and_refills(tmp_path, tiny_model, half_reward):
    out = tmp_path / "run"
    records = [{"prompt": f"Compute {i} + 1.", "answer": ("v" if i < 3 else "c") + str(i)} for i in range(12)]
    data = write_jsonl(tmp_path / "p.jsonl", records)
    recipe = tmp_path / "r.yaml"
    recipe.write_text("r1:\n  dynamic_sampling: true\n  dynamic_sampling_rounds: 6\n")
    result = grpo_run("-m", tiny_model, "--data", data, "-r", half_reward, "-c", str(recipe), "--max-steps", "1",
                      "-o", str(out), "-n", "4", "--batch-size", "8", "--max-completion-length", "8", "-q")
    assert result.exit_code == 0, result.stderr
    (row,) = metrics(out)
    # the first batch (2 of 12 prompts, 9 of them constant) needed refills; they found informative groups
    assert 2 <= row["dynamic_sampling/rounds"] < 6
    assert row["dynamic_sampling/informative_frac"] == 1  # stopped early: the kept batch is all informative
    assert row["frac_reward_zero_std"] > 0  # dropped groups were generated and logged


def test_dynamic_sampling_tops_up_when_no_group_is_informative(tmp_path, tiny_model):
    """Random text never follows the template: every group scores 0, so every round is used and the
    step still trains on a full batch of (zero-advantage) groups."""
    out = tmp_path / "run"
    data = write_jsonl(tmp_path / "p.jsonl", PROMPTS)
    recipe = tmp_path / "r.yaml"
    recipe.write_text("r1:\n  dynamic_sampling_rounds: 2\n")
    result = grpo_run("-m", tiny_model, "--data", data, "-r", "format", "--dynamic-sampling", "-c", str(recipe),
                      "--max-steps", "1", "-o", str(out), *SMALL)
    assert result.exit_code == 0, result.stderr
    (row,) = metrics(out)
    assert row["dynamic_sampling/rounds"] == 2 and row["dynamic_sampling/informative_frac"] == 0
    assert row["frac_reward_zero_std"] == 1


def test_lora_saves_adapter_and_merged_model(tmp_path, tiny_model):
    out = tmp_path / "run"
    data = write_jsonl(tmp_path / "p.jsonl", PROMPTS)
    result = grpo_run("-m", tiny_model, "--data", data, "-r", "format", "--lora", "4", "--max-steps", "1",
                      "-o", str(out), *SMALL)
    assert result.exit_code == 0, result.stderr
    assert (out / "adapter" / "adapter_config.json").is_file()
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(out)
    assert not any("lora" in name for name, _ in model.named_parameters())


def test_two_processes_on_cpu(tmp_path, tiny_model, capfd):
    """Two ranks of `python -m r1cli.training.worker` (no CLI import, so no RuntimeWarning about it)."""
    out = tmp_path / "run"
    stdin = "".join(json.dumps(r) + "\n" for r in PROMPTS)
    result = grpo_run("-m", tiny_model, "-r", "format", "--template", "r1-zero", "--max-steps", "2",
                      "--num-processes", "2", "-n", "2", "--batch-size", "2", "--max-completion-length", "8",
                      "-o", str(out), input=stdin)
    assert result.exit_code == 0, result.output
    ranks = capfd.readouterr().err  # the ranks' stderr: inherited file descriptors
    assert "trained 2 steps in " in ranks and "RuntimeWarning" not in ranks and "r1cli.cli" not in ranks, ranks
    config = json.loads((out / "r1_config.json").read_text())
    assert config["processes"] == 2  # two real ranks, not two independent runs
    # the record is the run as given (stdin, r1-zero), not the ranks' copy of the prompts
    assert config["trainer"] == "grpo" and config["r1"]["data"] == "-" and config["r1"]["template"] == "r1-zero"
    assert config["r1"]["num_processes"] == 2 and config["data"]["records"] == 2
    assert [r["step"] for r in metrics(out)] == [1, 2]  # rank 0 alone writes the metrics
    assert (out / "model.safetensors").is_file() and (out / "prompts.jsonl").is_file()
    assert not (out / "r1_launch.json").exists()


# ---- held-out evaluation, the stall warning, the checkpoint policy -----------------------------------


def test_eval_stall_and_checkpoints(tmp_path, tiny_model):
    """3 steps: eval/… keys at steps 2 (every 2), best/ kept, one stall warning (random weights never
    score, so every group's rewards are equal), at most 2 checkpoints, a final model without optimizer."""
    out = tmp_path / "run"
    data = write_jsonl(tmp_path / "p.jsonl", PROMPTS * 2)
    held = write_jsonl(tmp_path / "held.jsonl", [{"prompt": "Compute 1 + 1.", "answer": "2"}])
    recipe = tmp_path / "r.yaml"
    recipe.write_text("r1:\n  stall_steps: 2\n")
    result = grpo_run("-m", tiny_model, "--data", data, "--template", "r1-zero", "--max-steps", "3", "-o", str(out),
                      "-c", str(recipe), "--eval-data", held, "--eval-every", "2", "--eval-samples", "2",
                      "--save-best", "pass@1", "--save-steps", "1", *SMALL)
    assert result.exit_code == 0, result.stderr
    assert result.stderr.count("frac_reward_zero_std = 1.0") == 1  # one warning, with -q too
    assert "--prefill '<think>'" in result.stderr and "--dynamic-sampling" in result.stderr
    rows = metrics(out)
    assert [r["step"] for r in rows] == [1, 2, 3]
    assert not any(k.startswith("eval/") for k in rows[0]) and not any(k.startswith("eval/") for k in rows[2])
    for key in ("eval/pass@1", "eval/pass@1_lo", "eval/pass@1_hi", "eval/cons@2", "eval/format", "eval/mean_tokens",
                "eval/questions"):
        assert key in rows[1], key
    assert rows[1]["eval/questions"] == 1 and 0 < rows[1]["eval/mean_tokens"] <= 8
    best = json.loads((out / "best.json").read_text())
    assert best == {"metric": "eval/pass@1", "value": rows[1]["eval/pass@1"], "step": 2}
    assert (out / "best" / "model.safetensors").is_file() and (out / "best" / "tokenizer.json").is_file()
    checkpoints = sorted(p.name for p in out.glob("checkpoint-*"))
    assert checkpoints == ["checkpoint-2", "checkpoint-3"]  # --save-total-limit's default: the last 2
    assert (out / "checkpoint-3" / "optimizer.pt").is_file()  # resumable
    assert (out / "model.safetensors").is_file() and not (out / "optimizer.pt").exists()


@pytest.mark.parametrize(("args", "message"), [
    (["--eval-every", "2"], "--eval-every needs held-out prompts"),
    (["--save-best", "pass@1"], "--save-best needs held-out prompts"),
    (["--eval-data", "h.jsonl"], "--eval-data needs --eval-every N"),
    (["--eval-data", "h.jsonl", "--eval-every", "1", "--save-best", "loss"], "not a metric it can rank by"),
    (["--eval-data", "h.jsonl", "--eval-every", "1", "--save-best", "cons@8"], "needs at least 8 samples"),
    (["--generation", "fast"], "unknown --generation 'fast'"),
])
def test_eval_flags_are_checked_before_a_model_loads(tmp_path, no_model, args, message):
    result = grpo_run("-m", "tiny", "--data", write_jsonl(tmp_path / "p.jsonl", PROMPTS), "-o", str(tmp_path / "r"),
                      *args)
    assert result.exit_code == 1
    assert message in result.stderr
