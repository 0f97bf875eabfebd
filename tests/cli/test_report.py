"""`r1 report`: PNGs from a real `r1 grpo` metrics.jsonl of the tiny model, tables from results files."""

import json
import shutil

import pytest
from typer.testing import CliRunner

from r1cli.cli import app
from r1cli.report import ema, markdown, series

runner = CliRunner()


@pytest.fixture(scope="module")
def grpo_run(tmp_path_factory, tiny_model):
    """A real 3-step GRPO run of the tiny model (2 prompts × 2 generations × 8 tokens, beta 0.001: KL logged)."""
    root = tmp_path_factory.mktemp("report")
    data = root / "prompts.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in [{"prompt": "Compute 2 + 3.", "answer": "5"},
                                                           {"prompt": "Compute 4 * 2.", "answer": "8"}]))
    out = root / "zero"
    result = runner.invoke(app, ["grpo", "-m", tiny_model, "--data", str(data), "--template", "r1-zero",
                                 "-r", "accuracy", "-r", "format:0.5", "-n", "2", "--batch-size", "4",
                                 "--max-completion-length", "8", "--max-steps", "3", "-o", str(out), "-q"])
    assert result.exit_code == 0, result.stderr
    return out


@pytest.fixture
def two_runs(grpo_run, tmp_path):
    """The real run, and a copy of its metrics under another name whose curves differ (several runs overlaid)."""
    other = tmp_path / "dapo"
    other.mkdir()
    rows = [json.loads(line) for line in (grpo_run / "metrics.jsonl").read_text().splitlines()]
    for i, row in enumerate(rows):
        row.update({"reward": 0.5 + 0.2 * i, "accuracy": 0.1 * i, "completion_length": 8 - i, "kl": 0.01 * i})
    (other / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return grpo_run, other


def not_blank(path, min_bytes=10_000):
    from matplotlib.image import imread

    assert path.stat().st_size > min_bytes, path
    pixels = imread(path)
    assert pixels.ndim == 3 and pixels.shape[0] > 300 and pixels.shape[1] > 500
    assert pixels[..., :3].std() > 0.05, f"{path} looks blank"
    colours = {tuple(p) for p in (pixels[::7, ::7, :3] * 255).astype(int).reshape(-1, 3)}
    assert len(colours) > 20, f"{path} has almost no colours"


def test_real_grpo_metrics_render(grpo_run, two_runs, tmp_path):
    zero, dapo = two_runs
    plots = tmp_path / "plots"
    result = runner.invoke(app, ["report", str(zero), str(dapo / "metrics.jsonl"), "-o", str(plots)])
    assert result.exit_code == 0, result.stderr
    names = {p.name for p in plots.iterdir()}
    # the training curves, and the diagnostics of a stalled or collapsing run (clip ratios, entropy, …)
    assert {"reward.png", "reward_accuracy.png", "reward_format.png", "accuracy.png", "completion_length.png",
            "kl.png", "training.png", "report.md", "frac_reward_zero_std.png", "grad_norm.png", "entropy.png",
            "clip_ratio_low_mean.png", "clip_ratio_high_mean.png", "clip_ratio_region_mean.png"} <= names, names
    assert all(n.endswith(".png") or n == "report.md" for n in names), names
    for png in plots.glob("*.png"):
        not_blank(png)
    # stdout: the training summary as a markdown table, one row per run
    assert "## Training runs" in result.stdout
    assert "| zero | 3 |" in result.stdout and "| dapo | 3 |" in result.stdout
    assert f"wrote {len(names)} files to" in result.stderr
    report_md = (plots / "report.md").read_text()
    assert "![training](training.png)" in report_md and "| zero | 3 |" in report_md


def test_without_output_only_the_tables(grpo_run, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["report", str(grpo_run / "metrics.jsonl")])
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith("## Training runs") and list(tmp_path.iterdir()) == []


@pytest.fixture
def two_results(tmp_path):
    """Two real `r1 eval --from` results folders (no model: records with known rewards)."""
    def rec(qid, sample, correct, pred):
        return {"id": qid, "sample": sample, "completion": f"\\boxed{{{pred}}}", "answer": "1",
                "rewards": {"accuracy": correct, "format": 0.0}, "pred": pred, "completion_tokens": 12,
                "finish_reason": "stop", "model": "m"}

    folders = []
    for name, good in (("base", 1), ("zero", 3)):
        data = tmp_path / f"{name}-math.jsonl"
        rows = [rec(q, s, 1.0 if s < good else 0.0, "1" if s < good else "2") for q in "ab" for s in range(4)]
        data.write_text("".join(json.dumps(r) + "\n" for r in rows))
        out = tmp_path / name
        result = runner.invoke(app, ["eval", "--from", str(data), "--pass-k", "1,2", "-o", str(out), "-q"])
        assert result.exit_code == 0, result.stderr
        folders.append(out)
    return folders


def test_table_and_bar_chart_from_two_results_files(two_results, tmp_path):
    base, zero = two_results
    plots = tmp_path / "plots"
    result = runner.invoke(app, ["report", str(base / "results.json"), str(zero), "-o", str(plots)])
    assert result.exit_code == 0, result.stderr
    table = [line for line in result.stdout.splitlines() if line.startswith("|")]
    assert table[0].startswith("| benchmark | run | model | questions | n | pass@1 % | 95% CI | cons@n % | pass@2 % |")
    base_row, zero_row = table[2:]
    assert "| base | m | 2 | 4 | 25.0 | 25.0–25.0 | 0.0 | 50.0 |" in base_row
    assert "| zero | m | 2 | 4 | 75.0 | 75.0–75.0 | 100.0 | 100.0 |" in zero_row
    not_blank(plots / "eval_pass_1.png", min_bytes=8_000)
    assert "| zero | m |" in (plots / "report.md").read_text()


def test_bar_chart_of_another_metric(two_results, tmp_path):
    result = runner.invoke(app, ["report", *map(str, two_results), "--metric", "cons@n", "-o", str(tmp_path / "p")])
    assert result.exit_code == 0, result.stderr
    not_blank(tmp_path / "p" / "eval_cons_n.png", min_bytes=8_000)
    bad = runner.invoke(app, ["report", *map(str, two_results), "--metric", "pass@64", "-o", str(tmp_path / "q")])
    assert bad.exit_code == 1 and "no benchmark has 'pass@64'" in bad.stderr
    assert not (tmp_path / "q").exists()  # refused before anything is drawn


def test_missing_matplotlib_gives_the_install_hint(grpo_run, tmp_path, monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "matplotlib.figure", None)  # as if not installed
    result = runner.invoke(app, ["report", str(grpo_run), "-o", str(tmp_path / "plots")])
    assert result.exit_code == 1
    assert "matplotlib, which is not installed" in result.stderr and "pip install 'r1cli[plot]'" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(("make", "message"), [
    (lambda p: p / "nope", "no such file or folder"),
    (lambda p: p, "no metrics.jsonl or results.json in this folder"),
    (lambda p: (p / "m.jsonl").write_text('{"reward": 1}\n') and p / "m.jsonl", "not a metrics row (no 'step')"),
    (lambda p: (p / "r.json").write_text('{"x": 1}') and p / "r.json", "not an r1 eval results file"),
])
def test_bad_inputs(tmp_path, make, message):
    result = runner.invoke(app, ["report", str(make(tmp_path))])
    assert result.exit_code == 1
    assert message in result.stderr


def test_a_run_still_writing_is_read_up_to_its_last_full_line(grpo_run, tmp_path):
    run = tmp_path / "live"
    shutil.copytree(grpo_run, run, ignore=shutil.ignore_patterns("*.safetensors", "checkpoint-*"))
    with open(run / "metrics.jsonl", "a") as fp:
        fp.write('{"step": 4, "rew')
    result = runner.invoke(app, ["report", str(run)])
    assert result.exit_code == 0, result.stderr
    assert "| live | 3 |" in result.stdout


@pytest.mark.parametrize(("values", "weight", "expected"), [
    ([1.0, 2.0, 3.0], 0.0, [1.0, 2.0, 3.0]),
    ([4.0, 4.0, 4.0], 0.9, [4.0, 4.0, 4.0]),  # debiased: a constant stays constant from the first step
    ([0.0, 1.0], 0.5, [0.0, 2 / 3]),  # (0.5·0·0.5 + 0.5·1) / (1 − 0.25)
])
def test_ema(values, weight, expected):
    assert ema(values, weight) == pytest.approx(expected)


def test_series_skips_missing_values_and_markdown_escapes_pipes():
    rows = [{"step": 1, "kl": 0.1}, {"step": 2, "kl": float("nan")}, {"step": 3, "kl": None}, {"step": 4, "kl": 0.3}]
    assert series(rows, "kl") == ([1.0, 4.0], [0.1, 0.3])
    assert markdown(["a", "b"], [["x|y", "1.0"]]).splitlines() == ["| a | b |", "|---|---:|", "| x\\|y | 1.0 |"]
