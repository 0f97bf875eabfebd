"""`r1 grpo/sft --resume` continue the same run or refuse: the resume rule against r1_config.json.

A setting that differs from the record is refused, naming it with both values and the fix, and
the folder is left as it was; the settings that may change (a longer run, the save/log/eval
cadence, the path to the same folder, the process count) are accepted and recorded truthfully,
with the change in `history`. Tables over the settings run against records written by
`base.write_record` (no model); a few real runs on the tiny model check the whole path.
"""

import json
import shutil
from types import SimpleNamespace

import pytest
import typer
from typer.testing import CliRunner

from r1cli.cli._common import reports_errors
from r1cli.cli.grpo import grpo_cmd
from r1cli.cli.sft import sft_cmd
from r1cli.errors import OutputError
from r1cli.training import base
from r1cli.training.grpo import GRPOSettings
from r1cli.training.sft import SFTSettings

runner = CliRunner()
app = typer.Typer()
app.command("grpo")(reports_errors(grpo_cmd))
app.command("sft")(reports_errors(sft_cmd))

PROMPTS = [{"prompt": "Compute 2 + 3.", "answer": "5"}, {"prompt": "Compute 4 * 2.", "answer": "8"}]
PC = [{"prompt": f"Compute {i} + 1.", "completion": f"<think>{i} + 1</think> \\boxed{{{i + 1}}}"} for i in range(4)]


def write_jsonl(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return str(path)


def _recorded(cls, tmp_path, flags, rows):
    """A run folder holding a checkpoint and the record of `cls.build(flags)` (as a finished step writes it)."""
    settings = cls.build(flags)
    out = settings.output_dir
    (out / "checkpoint-1").mkdir(parents=True)
    (out / "checkpoint-1" / "trainer_state.json").write_text("{}")
    base.write_record(out, base.Start(None, base.record(settings, rows), []), args=settings.config(),
                      config_key=settings.config_key)
    return out


def _resume(cls, flags, changes, rows):
    settings = cls.build({**flags, **changes, "resume": True})
    return base.begin(settings, base.record(settings, rows), settings.config())


GRPO = {"model": "tiny", "data": "p.jsonl", "reward": ("format",), "max_steps": 1, "num_generations": 2,
        "batch_size": 2}

SFT = {"model": "tiny", "data": "d.jsonl", "max_steps": 1}
KINDS = {"grpo": (GRPOSettings, GRPO, PROMPTS), "sft": (SFTSettings, SFT, PC)}

REFUSED = [
    ("grpo", {"num_processes": 2}, "num_processes: 1 on record, 2 now"),  # the global batch doubles
    ("grpo", {"learning_rate": 1e-4}, "learning_rate (--learning-rate): 1e-06 on record, 0.0001 now"),
    ("grpo", {"beta": 0.04}, "beta (--beta): 0.001 on record, 0.04 now"),
    ("grpo", {"seed": 7}, "seed (--seed): 42 on record, 7 now"),
    ("grpo", {"loss": "grpo"}, "loss_type (--loss): 'dapo' on record, 'grpo' now"),
    ("grpo", {"num_generations": 4, "batch_size": 4}, "num_generations (--num-generations): 2 on record, 4 now"),
    ("grpo", {"reward": ("accuracy",)}, 'reward: ["format"] on record, ["accuracy"] now'),
    ("grpo", {"model": "smollm2-135m"}, "model: 'tiny' on record, 'smollm2-135m' now"),
    ("grpo", {"template": "r1-zero"}, "template: none on record, 'r1-zero' now"),
    ("grpo", {"lora": "4"}, "lora: none on record, [4, 8] now"),
    ("grpo", {"temperature": 0.7}, "temperature (--temperature): 1.0 on record, 0.7 now"),
    ("grpo", {"dynamic_sampling": True}, "dynamic_sampling: false on record, true now"),
    ("grpo", {"eval_data": "held.jsonl", "eval_every": 2}, "eval_data: none on record, 'held.jsonl' now"),
    ("sft", {"learning_rate": 1e-4}, "learning_rate (--learning-rate): 2e-05 on record, 0.0001 now"),
    ("sft", {"max_length": 64}, "max_length (--max-length): 1024 on record, 64 now"),
    ("sft", {"seed": 3}, "seed (--seed): 42 on record, 3 now"),
    ("sft", {"packing": True}, "packing (--packing): false on record, true now"),
    ("sft", {"batch_size": 4}, "per_device_train_batch_size (--batch-size): 8 on record, 4 now"),
    ("sft", {"grad_accum": 2}, "gradient_accumulation_steps (--grad-accum): 1 on record, 2 now"),
    ("sft", {"system": "Be brief."}, "system: none on record, 'Be brief.' now"),
    ("sft", {"method": "gkd", "teacher": "tiny"}, "trainer: 'sft' on record, 'gkd' now"),
]


@pytest.mark.parametrize(("kind", "changes", "message"), REFUSED, ids=[f"{k}-{next(iter(c))}" for k, c, _ in REFUSED])
def test_resume_refuses_another_setting(tmp_path, kind, changes, message):
    cls, flags, rows = KINDS[kind]
    flags = {**flags, "output": str(tmp_path / "run")}
    out = _recorded(cls, tmp_path, flags, rows)
    before = (out / "r1_config.json").read_bytes()
    with pytest.raises(OutputError) as info:
        _resume(cls, flags, changes, rows)
    assert f"the run in {out} was made with other settings ({message}" in info.value.message
    assert "another -o" in info.value.hint and "without --resume" in info.value.hint
    assert (out / "r1_config.json").read_bytes() == before


def test_another_trainer_in_the_folder_is_refused(tmp_path):
    out = _recorded(SFTSettings, tmp_path, {**SFT, "output": str(tmp_path / "run")}, PC)
    with pytest.raises(OutputError, match="trainer: 'sft' on record, 'grpo' now"):
        _resume(GRPOSettings, {**GRPO, "output": str(out)}, {}, PROMPTS)


MAY_CHANGE = [
    ({"max_steps": 5}, {"trl.max_steps": {"was": 1, "now": 5}}),
    ({"epochs": 5}, {"trl.num_train_epochs": {"was": 3.0, "now": 5}}),  # TRL's 3 on record
    ({"save_steps": 1, "save_total_limit": 4}, {"trl.save_steps": {"was": 50, "now": 1},
                                                "trl.save_total_limit": {"was": 2, "now": 4}}),
    ({"logging_steps": 2}, {"trl.logging_steps": {"was": 1, "now": 2}}),
    ({"data": "elsewhere/p.jsonl"}, {"data": {"was": "p.jsonl", "now": "elsewhere/p.jsonl"}}),  # same content
    ({}, {}),
]


@pytest.mark.parametrize(("changes", "changed"), MAY_CHANGE, ids=[", ".join(c) or "none" for c, _ in MAY_CHANGE])
def test_settings_that_may_change_are_accepted_and_recorded(tmp_path, changes, changed):
    flags = {**GRPO, "output": str(tmp_path / "run")}
    out = _recorded(GRPOSettings, tmp_path, flags, PROMPTS)
    start = _resume(GRPOSettings, {**flags, "output": f"{out}/."}, changes, PROMPTS)  # the same folder, another path
    assert start.checkpoint == str(out / "checkpoint-1")
    changed = {**changed, "trl.output_dir": {"was": str(out), "now": f"{out}/."}}
    assert start.history == [{"resumed_from": "checkpoint-1", "changed": changed}]
    settings = GRPOSettings.build({**flags, **changes, "resume": True})
    base.write_record(out, start, args=SimpleNamespace(world_size=1, to_dict=settings.config().to_dict),
                      config_key="grpo_config")
    record = json.loads((out / "r1_config.json").read_text())
    assert record["r1"]["resume"] is True and record["history"] == start.history
    for key, change in changed.items():  # the record says the value the run goes on with
        section = record["r1"]
        for part in key.split("."):
            section = section.get(part) if isinstance(section, dict) else None
        assert section == change["now"], key


def test_other_data_is_refused_by_its_fingerprint(tmp_path):
    flags = {**GRPO, "output": str(tmp_path / "run")}
    out = _recorded(GRPOSettings, tmp_path, flags, PROMPTS)
    for changes in ({}, {"data": "q.jsonl"}):  # the same path with another content (or stdin), or another file
        with pytest.raises(OutputError, match=r"data_fingerprint: '2 records, sha256 \w+' on record, '1 records"):
            _resume(GRPOSettings, flags, changes, PROMPTS[:1])
    assert "history" not in json.loads((out / "r1_config.json").read_text())


def test_a_record_without_a_fingerprint_compares_the_data_path(tmp_path):
    """A record written before the fingerprint: the path stands in for the content."""
    flags = {**GRPO, "output": str(tmp_path / "run")}
    out = _recorded(GRPOSettings, tmp_path, flags, PROMPTS)
    record = json.loads((out / "r1_config.json").read_text())
    del record["data"], record["trainer"]  # the trainer is then read from the config's key, grpo_config
    (out / "r1_config.json").write_text(json.dumps(record))
    assert _resume(GRPOSettings, flags, {"max_steps": 2}, PROMPTS).history
    with pytest.raises(OutputError, match="data: 'p.jsonl' on record, 'q.jsonl' now"):
        _resume(GRPOSettings, flags, {"data": "q.jsonl"}, PROMPTS)


def test_a_run_recorded_under_older_reward_rules_is_refused(tmp_path):
    """A GRPO run is not continued under built-in rewards that judge the same completion differently."""
    from r1cli.rewards import RULES

    flags = {**GRPO, "output": str(tmp_path / "run")}
    out = _recorded(GRPOSettings, tmp_path, flags, PROMPTS)
    record = json.loads((out / "r1_config.json").read_text())
    assert record["r1"]["reward_rules"] == RULES
    del record["r1"]["reward_rules"]  # recorded by an r1 from before the rules had a revision
    (out / "r1_config.json").write_text(json.dumps(record))
    with pytest.raises(OutputError, match=f"reward_rules: none on record, {RULES} now"):
        _resume(GRPOSettings, flags, {}, PROMPTS)


# ---- real runs on the tiny model ---------------------------------------------------------------------

GRPO_SMALL = ["-r", "format", "-n", "2", "--batch-size", "2", "--max-completion-length", "8", "-q"]
SFT_SMALL = ["--batch-size", "2", "--max-length", "64", "-q"]


def _one_step(tmp_path_factory, trainer, records, small):
    """One step with a checkpoint: (the run folder, the command's arguments but --max-steps)."""
    tmp = tmp_path_factory.mktemp(trainer)
    out = tmp / "run"
    args = [trainer, "-m", "tiny", "--data", write_jsonl(tmp / "data.jsonl", records), "--save-steps", "1",
            "-o", str(out), *small]
    result = runner.invoke(app, [*args, "--max-steps", "1"])
    assert result.exit_code == 0, result.stderr
    return out, args


@pytest.fixture(scope="module")
def grpo_run(tiny_model, tmp_path_factory):
    return _one_step(tmp_path_factory, "grpo", PROMPTS, GRPO_SMALL)


@pytest.fixture(scope="module")
def sft_run(tiny_model, tmp_path_factory):
    return _one_step(tmp_path_factory, "sft", PC, SFT_SMALL)


def _snapshot(out):
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


@pytest.mark.parametrize(("trainer", "flags", "message"), [
    ("grpo", ["--learning-rate", "1e-4"], "learning_rate (--learning-rate): 1e-06 on record, 0.0001 now"),
    ("grpo", ["--beta", "0.04"], "beta (--beta): 0.001 on record, 0.04 now"),
    ("grpo", ["--template", "r1-zero"], "template: 'chat' on record, 'r1-zero' now"),
    ("grpo", ["--num-processes", "2"], "num_processes: 1 on record, 2 now"),
    ("sft", ["--learning-rate", "1e-4"], "learning_rate (--learning-rate): 2e-05 on record, 0.0001 now"),
    ("sft", ["--seed", "3"], "seed (--seed): 42 on record, 3 now"),
    ("sft", ["--template", "r1-zero"], "template: 'chat' on record, 'r1-zero' now"),
])
def test_cli_resume_with_another_setting_is_refused_and_changes_nothing(request, trainer, flags, message):
    out, args = request.getfixturevalue(f"{trainer}_run")
    before = _snapshot(out)
    result = runner.invoke(app, [*args, "--max-steps", "2", "--resume", *flags])
    assert result.exit_code == 1, result.output
    assert f"Error: the run in {out} was made with other settings ({message}" in result.stderr
    assert "Hint: to continue this run, give it the settings on record" in result.stderr
    assert _snapshot(out) == before  # r1_config.json, metrics, checkpoints: as they were


@pytest.mark.parametrize("trainer", ["grpo", "sft"])
def test_cli_longer_max_steps_is_accepted_and_recorded(request, tmp_path, trainer):
    source, args = request.getfixturevalue(f"{trainer}_run")
    out = tmp_path / "run"
    shutil.copytree(source, out)
    args = [a if a != str(source) else str(out) for a in args]
    result = runner.invoke(app, [*args, "--max-steps", "2", "--resume"])
    assert result.exit_code == 0, result.stderr
    record = json.loads((out / "r1_config.json").read_text())
    assert record["trainer"] == trainer and record["r1"]["resume"] is True
    assert record["r1"]["trl"]["max_steps"] == 2 and record[f"{trainer}_config"]["max_steps"] == 2
    changed = record["history"][-1]["changed"]
    assert record["history"][-1]["resumed_from"] == "checkpoint-1"
    assert changed["trl.max_steps"] == {"was": 1, "now": 2}
    assert [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()] == [1, 2]
    lr = record[f"{trainer}_config"]["learning_rate"]
    assert lr == json.loads((source / "r1_config.json").read_text())[f"{trainer}_config"]["learning_rate"]


# ---- the worker: a training module, not the CLI ----------------------------------------------------


def test_training_modules_do_not_import_the_cli():
    import subprocess
    import sys

    code = ("import sys, r1cli.training.worker, r1cli.training.grpo, r1cli.training.sft, r1cli.training.gkd, "
            "r1cli.training.onpolicy, r1cli.training.base; "
            "print(sorted(m for m in sys.modules if m.startswith('r1cli.cli')))")
    done = subprocess.run([sys.executable, "-W", "error", "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]", done.stdout
    usage = subprocess.run([sys.executable, "-m", "r1cli.training.worker"], capture_output=True, text=True)
    assert usage.returncode == 2 and "usage: python -m r1cli.training.worker LAUNCH_FILE" in usage.stderr
    assert "RuntimeWarning" not in usage.stderr


@pytest.mark.parametrize("processes", ["1", "2"])
def test_a_second_run_into_the_same_folder_is_refused(tmp_path, processes):
    """One writer at a time: while a run holds OUTPUT.lock, another (resumed or not) is refused at once."""
    from r1cli.files import exclusive, lock_file

    out = tmp_path / "run"
    data = write_jsonl(tmp_path / "p.jsonl", PROMPTS)
    with exclusive(lock_file(out), what=str(out)):
        result = runner.invoke(app, ["grpo", "-m", "tiny", "--data", data, "-o", str(out), "--resume",
                                     "--num-processes", processes, *GRPO_SMALL])
    assert result.exit_code == 1, result.output
    assert f"Error: {out} is being written by another r1 process (pid " in result.stderr
    assert not out.exists()
