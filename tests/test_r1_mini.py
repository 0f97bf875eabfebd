"""examples/r1-mini/run.sh --quick: every stage of the R1 pipeline runs on the tiny model, hands
the next stage its input, and a rerun skips what is done.

One quick run (tiny model, 2 + 2 GRPO steps, 8 questions × 2 samples × 24 tokens: 2–3 minutes on a
busy 2-core CPU) serves the whole module; the tests after it check each stage's output, then rerun.
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "examples" / "r1-mini" / "run.sh"
STAGES = ["data", "eval-base", "zero", "eval-zero", "rollout", "score", "select", "sft", "eval-sft", "rl",
          "eval-rl", "report", "publish"]
EVALS = ["base", "zero", "sft", "rl"]
R1_RULES = "--max-per-prompt 1"
KEEP_ALL = "--no-correct-only --keep-truncated --max-mixed 1 --max-paragraph-words 0 --allow-code-blocks"


def run_script(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """The script as a user runs it: `r1` and `python` from this environment on PATH."""
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    return subprocess.run(["bash", str(SCRIPT), *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=900)


def jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def snapshot(folder: Path) -> dict[str, int]:
    return {str(p): p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}


# ---- without a run: arguments --------------------------------------------------------------------


def test_help_and_bad_arguments(tmp_path):
    shown = run_script("--help", cwd=tmp_path)
    assert shown.returncode == 0
    assert "--quick" in shown.stdout and "--redo STAGE" in shown.stdout
    bad = run_script("--quik", cwd=tmp_path)
    assert bad.returncode == 2 and "unknown argument '--quik'" in bad.stderr
    nostage = run_script("--quick", "-o", str(tmp_path / "out"), "--redo", "zer0", cwd=tmp_path)
    assert nostage.returncode == 1
    assert "no stage 'zer0'" in nostage.stderr and "eval-base zero eval-zero" in nostage.stderr
    assert not (tmp_path / "out").exists()


# ---- one quick run, then its outputs -------------------------------------------------------------

slow = pytest.mark.slow  # a real run of the script (2–3 minutes), shared by the tests below


@pytest.fixture(scope="module")
def quick(tmp_path_factory, tiny_model):
    base = tmp_path_factory.mktemp("r1-mini")
    out, results = base / "run", base / "results"
    start = time.monotonic()
    proc = run_script("--quick", "-o", str(out), "--results", str(results), cwd=base)
    took = time.monotonic() - start
    assert proc.returncode == 0, proc.stderr[-4000:]
    return SimpleNamespace(base=base, out=out, results=results, proc=proc, took=took,
                           args=("--quick", "-o", str(out), "--results", str(results)))


@slow
def test_every_stage_ran_once_and_was_timed(quick):
    stages = quick.out / ".stages"
    assert sorted(p.name for p in stages.iterdir()) == sorted(f"{s}.done" for s in STAGES)
    for name in STAGES:
        command, took = (stages / f"{name}.done").read_text().splitlines()
        assert command and took.endswith(" s") and float(took[:-2]) >= 0
        assert quick.proc.stderr.count(f"] {name}: done in ") == 1
    assert quick.took < 600, f"the quick mode took {quick.took:.0f} s"


@slow
def test_data_holds_out_the_test_questions(quick):
    data = quick.out / "data"
    train, test, sample = (jsonl(data / name) for name in ("train.jsonl", "arithmetic-test.jsonl", "sample.jsonl"))
    assert len(test) == 8 and 0 < len(train) <= 32
    assert not {r["prompt"] for r in train} & {r["prompt"] for r in test}
    assert sample == train[-8:]
    assert all(r["task"] == "math" and r["answer"] for r in train + test)


@slow
def test_both_grpo_runs_use_the_r1_zero_prompt_and_their_rewards(quick):
    for name, model, rewards in (("zero", "tiny", ["accuracy", "format", "tags:0.5"]),
                                 ("rl", str(quick.out / "sft"), ["accuracy", "format", "tags:0.5", "language"])):
        run = quick.out / name
        config = json.loads((run / "r1_config.json").read_text())["r1"]
        assert (config["model"], config["reward"]) == (model, rewards)
        assert (config["template"], config["prefill"]) == ("r1-zero", "<think>")
        assert config["reward_params"]["format"] == {"strict": "false"}
        assert config["trl"]["max_steps"] == 2 and config["trl"]["beta"] == 0.001
        assert (run / "model.safetensors").is_file()
        rows = jsonl(run / "metrics.jsonl")
        assert [r["step"] for r in rows] == [1, 2]
        assert all(f"reward/{r.split(':')[0]}" in rows[-1] for r in rewards)
    assert json.loads((quick.out / "rl" / "r1_config.json").read_text())["r1"]["reward_params"]["language"] == {
        "language": "en"}


@slow
def test_rejection_sampling_draws_from_the_r1_zero_checkpoint(quick):
    folder = quick.out / "select"
    rollouts = jsonl(folder / "rollouts.jsonl")
    prompts = [r["id"] for r in jsonl(quick.out / "data" / "sample.jsonl")]
    assert sorted((r["id"], r["sample"]) for r in rollouts) == sorted((i, s) for i in prompts for s in range(2))
    ids = [r["id"] for r in rollouts]
    assert all(ids[k] == ids[k + 1] for k in range(0, len(ids), 2))  # a prompt's samples together
    assert {r["model"] for r in rollouts} == {str(quick.out / "zero")}
    assert {r["prefill"] for r in rollouts} == {"<think>"}
    scored = jsonl(folder / "scored.jsonl")
    assert len(scored) == 16 and all(set(r["rewards"]) == {"accuracy", "format", "language"} for r in scored)
    # random weights are never right: R1's rules keep nothing, so the second policy was used
    assert f"no sample kept by 'r1 reject-sample {R1_RULES}'" in quick.proc.stderr
    assert (folder / "policy.txt").read_text() == KEEP_ALL + "\n"
    selected = jsonl(folder / "selected.jsonl")
    assert len(selected) == 16
    assert all(r["completion"].startswith("<think>") and "prefill" not in r for r in selected)
    assert all(r["template"] == "none" and r["prompt"].startswith("A conversation between User and Assistant")
               for r in selected)  # the prompt the model saw (r1-zero), ready for sft as it is


@slow
def test_cold_start_sft_trains_the_base_on_the_selected_samples(quick):
    config = json.loads((quick.out / "sft" / "r1_config.json").read_text())["r1"]
    # the selected records hold the r1-zero prompts as rendered, so sft applies no second template
    assert (config["model"], config["template"]) == ("tiny", "none")
    assert config["data"] == str(quick.out / "select" / "selected.jsonl")
    assert (quick.out / "sft" / "model.safetensors").is_file()
    assert len(jsonl(quick.out / "sft" / "metrics.jsonl")) == 2


@slow
def test_every_checkpoint_is_evaluated_the_same_way(quick):
    models = {"base": "tiny", "zero": str(quick.out / "zero"), "sft": str(quick.out / "sft"), "rl": str(quick.out / "rl")}
    for name in EVALS:
        folder = quick.out / "eval" / name
        results = json.loads((folder / "results.json").read_text())
        (bench,) = results["benchmarks"]
        assert (bench["questions"], bench["samples"]) == (8, 2)
        assert 0 <= bench["pass@1"] <= 1
        settings = results["settings"]
        assert (settings["model"], settings["template"], settings["prefill"]) == (models[name], "r1-zero", "<think>")
        assert (settings["max_new_tokens"], settings["temperature"], settings["seed"]) == (24, 0.6, 0)
        (samples,) = folder.glob("*.samples.jsonl")
        assert len(jsonl(samples)) == 16


@slow
def test_report_summary_and_published_results(quick):
    report = quick.out / "report"
    for png in ("training.png", "reward.png", "reward_language.png", "accuracy.png", "eval_pass_1.png"):
        assert (report / png).stat().st_size > 1000, png
    tables = (report / "tables.md").read_text()
    training = [line for line in tables.splitlines() if line.startswith(("| zero |", "| rl |"))]
    evals = [line.split("|")[2].strip() for line in tables.splitlines() if "arithmetic-test.jsonl" in line]
    assert len(training) == 2 and evals == EVALS
    summary = (quick.out / "summary.md").read_text()
    assert quick.proc.stdout == summary
    assert tables in summary and "| all |" in summary and "16 kept by" in summary
    published = (quick.results / "README.md").read_text()
    assert f"run.sh --quick -o {quick.out} --results {quick.results}" in published
    assert summary in published and (quick.results / "training.png").is_file()


@slow
def test_a_rerun_skips_every_finished_stage(quick):
    before = snapshot(quick.out)
    start = time.monotonic()
    again = run_script(*quick.args, cwd=quick.base)
    assert again.returncode == 0, again.stderr
    assert time.monotonic() - start < 30
    assert "done in" not in again.stderr
    assert all(f"] {name}: done already (" in again.stderr for name in STAGES)
    after = snapshot(quick.out)
    assert {k: v for k, v in after.items() if not k.endswith("summary.md")} == {
        k: v for k, v in before.items() if not k.endswith("summary.md")}
    assert again.stdout == (quick.out / "summary.md").read_text() == quick.proc.stdout


@slow
def test_changed_settings_are_refused_with_the_redo_command(quick):
    before = snapshot(quick.out)
    other = run_script(*quick.args, "-m", str(quick.out / "sft"), cwd=quick.base)
    assert other.returncode == 1
    assert "Error: stage eval-base ran as 'evaluate base tiny 2 24'" in other.stderr
    assert f"Hint: to redo it and the later stages: examples/r1-mini/run.sh --quick -o {quick.out} -m {quick.out / 'sft'} " \
           f"--results {quick.results} --redo eval-base" in other.stderr
    assert snapshot(quick.out) == before


@slow
def test_redo_runs_a_stage_and_the_later_ones_again(quick):
    stages = quick.out / ".stages"
    kept = (stages / "eval-rl.done").read_text()
    again = run_script(*quick.args, "--redo", "report", cwd=quick.base)
    assert again.returncode == 0, again.stderr
    assert [s for s in STAGES if f"] {s}: done in " in again.stderr] == ["report", "publish"]
    assert (stages / "eval-rl.done").read_text() == kept
    assert (quick.out / "report" / "training.png").is_file()
