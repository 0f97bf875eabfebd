"""The recipes in examples/recipes and the algorithm flags of `r1 grpo`: their values reach
TRL's GRPOConfig, and a 2-step run on the tiny model computes a loss with each recipe."""

import json
import math
from pathlib import Path

import pytest
import typer
import yaml
from typer.testing import CliRunner

from r1cli.cli import grpo as grpo_cli
from r1cli.cli._common import reports_errors
from r1cli.training import grpo
from r1cli.training.grpo import GRPOSettings

RECIPES = Path(__file__).resolve().parent.parent / "examples" / "recipes"
NAMES = ["r1-zero", "dapo", "dr-grpo", "gspo", "cispo"]
# flags every test run adds (a tiny, fast run); the recipe's own values for these are not checked
SMALL = {"max_steps": 2, "num_generations": 2, "batch_size": 4, "max_completion_length": 8}
OVERRIDDEN = {"max_steps", "num_generations", "per_device_train_batch_size", "max_completion_length", "output_dir"}

runner = CliRunner()
app = typer.Typer()
app.command("grpo")(reports_errors(grpo_cli.grpo_cmd))


@app.callback()
def _root() -> None:
    """Test app: `r1 grpo` alone."""


def test_every_recipe_is_tested():
    assert sorted(p.stem for p in RECIPES.glob("*.yaml")) == sorted(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_recipe_two_steps(tmp_path, tiny_model, name):
    recipe = RECIPES / f"{name}.yaml"
    data = tmp_path / "p.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in [{"prompt": "Compute 2 + 3.", "answer": "5"},
                                                          {"prompt": "Compute 4 * 2.", "answer": "8"}]))
    out = tmp_path / "run"
    settings = GRPOSettings.build({"model": tiny_model, "data": str(data), "output": str(out), **SMALL}, recipe)
    result = grpo.train(settings)
    assert result.steps == 2
    config = json.loads((out / "r1_config.json").read_text())["grpo_config"]
    expected = {k: v for k, v in yaml.safe_load(recipe.read_text()).items() if k not in OVERRIDDEN | {"r1"}}
    assert expected
    for key, value in expected.items():
        got = config[key]
        assert got == value or (isinstance(value, float) and math.isclose(got, value)), (key, got, value)
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2]
    assert all(isinstance(r["loss"], float) and math.isfinite(r["loss"]) for r in rows)


# ---- the algorithm flags, one row per flag: flag -> GRPOConfig field and value ----------------------

FLAGS = [
    (["--importance-sampling-level", "sequence"], "importance_sampling_level", "sequence"),
    (["--scale-rewards", "batch"], "scale_rewards", "batch"),
    (["--scale-rewards", "none"], "scale_rewards", "none"),
    (["--mask-truncated"], "mask_truncated_completions", True),
    (["--top-entropy-quantile", "0.2"], "top_entropy_quantile", 0.2),
    (["--entropy-coef", "0.01"], "entropy_coef", 0.01),
    (["--multi-objective-aggregation", "normalize_then_sum"], "multi_objective_aggregation", "normalize_then_sum"),
    (["--no-vllm-importance-sampling-correction"], "vllm_importance_sampling_correction", False),
    (["--vllm-importance-sampling-mode", "token_truncate"], "vllm_importance_sampling_mode", "token_truncate"),
    (["--vllm-importance-sampling-clip-max", "2.5"], "vllm_importance_sampling_clip_max", 2.5),
    (["--vllm-importance-sampling-clip-min", "0.5"], "vllm_importance_sampling_clip_min", 0.5),
    (["--save-steps", "7"], "save_steps", 7),
    (["--save-total-limit", "3"], "save_total_limit", 3),
    ([], "save_total_limit", 2),  # r1's default: the last 2 checkpoints
]


@pytest.fixture
def captured(monkeypatch):
    seen = {}

    def fake_start(settings, **_):
        seen["config"] = grpo.grpo_config(settings)
        seen["settings"] = settings

    monkeypatch.setattr(grpo_cli._train, "start", fake_start)
    return seen


@pytest.mark.parametrize(("args", "field", "value"), FLAGS)
def test_flag_reaches_grpo_config(tmp_path, captured, args, field, value):
    result = runner.invoke(app, ["grpo", "-m", "tiny", "--data", "x.jsonl", "-o", str(tmp_path / "r"), *args])
    assert result.exit_code == 0, result.output
    assert getattr(captured["config"], field) == value


def test_bad_flag_value_is_an_error_naming_it(tmp_path, captured):
    result = runner.invoke(app, ["grpo", "-m", "tiny", "--data", "x.jsonl", "-o", str(tmp_path / "r"),
                                 "--importance-sampling-level", "word"])
    assert result.exit_code == 1
    assert "importance_sampling_level" in result.output


def test_help_says_what_each_flag_is_for():
    result = runner.invoke(app, ["grpo", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for flag in ("--importance-sampling-level", "--scale-rewards", "--mask-truncated", "--top-entropy-quantile",
                 "--entropy-coef", "--multi-objective-aggregation", "--vllm-importance-sampling-correction",
                 "--generation", "--eval-data", "--save-best", "--save-total-limit"):
        assert flag in result.output
