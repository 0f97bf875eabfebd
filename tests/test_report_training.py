"""`r1 report`'s training curves: GRPO diagnostics, SFT loss and token accuracy, held-out eval, whole steps."""

import json

import pytest

from r1cli.report import TrainingRun, curve_specs, plot_training

pytest.importorskip("matplotlib")

GRPO_ROWS = [{"step": s, "reward": 0.0, "reward/format": 0.0, "frac_reward_zero_std": 1.0, "grad_norm": 0.0,
              "clip_ratio/region_mean": 0.0, "clip_ratio/low_mean": 0.0, "clip_ratio/high_mean": 0.0,
              "entropy": 10.8 - s / 10, "loss": 0.0, "completion_length": 8.0} for s in (1, 2, 3)]
GRPO_ROWS[1].update({"eval/pass@1": 0.25, "eval/pass@1_lo": 0.0, "eval/pass@1_hi": 0.5, "eval/cons@4": 0.5,
                     "eval/format": 0.1, "eval/mean_tokens": 7.5})
SFT_ROWS = [{"step": s, "loss": 3.0 - s / 2, "mean_token_accuracy": 0.1 * s, "lr": 2e-5} for s in (1, 2)]


def test_curve_specs_include_diagnostics_and_eval():
    keys = [k for k, _, _ in curve_specs([TrainingRun("g", "g", GRPO_ROWS)])]
    for key in ("frac_reward_zero_std", "grad_norm", "clip_ratio/region_mean", "entropy", "eval/pass@1",
                "eval/cons@4", "eval/format", "eval/mean_tokens", "reward/format"):
        assert key in keys, key


@pytest.mark.parametrize(("rows", "expected", "absent"), [
    (GRPO_ROWS, ["frac_reward_zero_std.png", "grad_norm.png", "clip_ratio_region_mean.png", "entropy.png",
                 "eval_pass_1.png", "eval_cons_4.png", "eval_format.png", "eval_mean_tokens.png", "training.png"],
     ["mean_token_accuracy.png", "kl.png"]),
    (SFT_ROWS, ["loss.png", "mean_token_accuracy.png", "training.png"], ["reward.png", "frac_reward_zero_std.png"]),
])
def test_plots_written(tmp_path, rows, expected, absent):
    names = {p.name for p in plot_training([TrainingRun("r", "r", rows)], tmp_path)}
    for name in expected:
        assert name in names, (name, sorted(names))
    for name in absent:
        assert name not in names


def test_step_axis_shows_whole_steps(monkeypatch, tmp_path):
    """A 3-step run: ticks 1, 2, 3 only (never 1.25, 1.5, …)."""
    import r1cli.report as report

    axes = []
    original = report._curve

    def keep(ax, *args, **kwargs):
        axes.append(ax)
        return original(ax, *args, **kwargs)

    monkeypatch.setattr(report, "_curve", keep)
    plot_training([TrainingRun("r", "r", GRPO_ROWS)], tmp_path)
    assert axes
    for ax in axes:
        ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
        assert ticks and all(float(t).is_integer() for t in ticks), ticks


def test_report_command_on_an_sft_run(tmp_path):
    from typer.testing import CliRunner

    from r1cli.cli import app

    run = tmp_path / "sft"
    run.mkdir()
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in SFT_ROWS))
    result = CliRunner().invoke(app, ["report", str(run), "-o", str(tmp_path / "plots")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "plots" / "loss.png").is_file() and (tmp_path / "plots" / "mean_token_accuracy.png").is_file()
