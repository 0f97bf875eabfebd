"""Engines own their options: one dataclass per engine, checked by `get_engine`, and the CLI's
engine flags, help and "applies to" errors derived from those declarations."""

import json
import re
from dataclasses import dataclass, fields
from typing import ClassVar

import pytest
import typer
from typer.testing import CliRunner

from r1cli.cli import app
from r1cli.engines import EngineChoice, EngineOptions, engine_options, get_engine, option
from r1cli.engines.hf import HFOptions
from r1cli.engines.openai import OpenAIOptions
from r1cli.engines.options import declared, flag_of
from r1cli.engines.vllm import VLLMOptions
from r1cli.errors import BadOption, EngineUnavailable

runner = CliRunner()
URL = "http://127.0.0.1:9/v1"


def flat(text):
    """stderr or --help without rich's box drawing and line wrapping."""
    return " ".join(text.replace("│", " ").replace("╭", " ").replace("╰", " ").split())


# ---- the declarations, checked in the library ------------------------------------------------


@pytest.mark.parametrize("engine, given, expected", [
    ("hf", {}, HFOptions(batch_size=64, dtype=None)),
    ("hf", {"dtype": "BF16", "batch_size": None}, HFOptions(dtype="bfloat16")),  # None = not given
    ("vllm", {"dtype": "half", "tensor_parallel_size": 2}, VLLMOptions(dtype="float16", tensor_parallel_size=2)),
    ("vllm", {"gpu_memory_utilization": 1}, VLLMOptions(gpu_memory_utilization=1.0)),
    ("openai", {"base_url": URL, "request_timeout": 5}, OpenAIOptions(base_url=URL, request_timeout=5.0)),
])
def test_options_are_checked_and_normalised(engine, given, expected):
    assert engine_options(engine, given) == expected


@pytest.mark.parametrize("engine, given, message, flag", [
    # an option another engine takes: name the flag and the engines that take it
    ("hf", {"concurrency": 4}, "--concurrency applies to --engine openai, not hf", "--concurrency"),
    ("hf", {"base_url": URL}, "--base-url applies to --engine openai, not hf", "--base-url"),
    ("hf", {"tensor_parallel_size": 2}, "--tensor-parallel-size applies to --engine vllm, not hf",
     "--tensor-parallel-size"),
    ("openai", {"base_url": URL, "dtype": "bfloat16"}, "--dtype applies to --engine hf or vllm, not openai", "--dtype"),
    ("vllm", {"api_key_env": "K"}, "--api-key-env applies to --engine openai, not vllm", "--api-key-env"),
    ("hf", {"device": "cpu"}, "--engine hf takes no option 'device'", None),
    # required, and bad values
    ("openai", {}, "--engine openai needs --base-url URL (e.g. http://127.0.0.1:8000/v1)", "--base-url"),
    ("openai", {"base_url": "ftp://h"}, "--base-url 'ftp://h' is not an http(s) URL", "--base-url"),
    ("hf", {"batch_size": 0}, "--engine-batch-size must be ≥ 1, got 0", "--engine-batch-size"),
    ("hf", {"batch_size": "8"}, "--engine-batch-size must be an integer, got '8'", "--engine-batch-size"),
    ("hf", {"batch_size": True}, "--engine-batch-size must be an integer, got True", "--engine-batch-size"),
    ("hf", {"batch_size": 2.5}, "--engine-batch-size must be an integer, got 2.5", "--engine-batch-size"),
    ("hf", {"dtype": "int4"}, "--dtype int4: choose from auto, bfloat16, float16, float32", "--dtype"),
    ("vllm", {"gpu_memory_utilization": 1.5}, "--gpu-memory-utilization must be ≤ 1, got 1.5",
     "--gpu-memory-utilization"),
    ("vllm", {"tensor_parallel_size": 0}, "--tensor-parallel-size must be ≥ 1, got 0", "--tensor-parallel-size"),
    ("openai", {"base_url": URL, "concurrency": 0}, "--concurrency must be ≥ 1, got 0", "--concurrency"),
    ("openai", {"base_url": URL, "max_retries": -1}, "--max-retries must be ≥ 0, got -1", "--max-retries"),
    ("openai", {"base_url": URL, "request_timeout": 0}, "--request-timeout must be ≥ 0.001, got 0", "--request-timeout"),
    ("openai", {"base_url": 8000}, "--base-url must be a string, got 8000", "--base-url"),
])
def test_bad_options_are_refused_naming_the_flag(engine, given, message, flag):
    with pytest.raises(BadOption) as info:
        engine_options(engine, given)
    assert info.value.message == message and info.value.flag == flag


def test_an_unknown_engine_and_another_engines_options_object_are_refused():
    with pytest.raises(EngineUnavailable, match="unknown engine 'tgi'"):
        engine_options("tgi", {})
    with pytest.raises(BadOption, match="HFOptions are the options of --engine hf, not openai"):
        engine_options("openai", HFOptions())
    with pytest.raises(BadOption, match="--concurrency applies to --engine openai, not hf"):
        HFOptions.of(concurrency=2)


def test_get_engine_takes_an_options_object_a_mapping_or_keywords(tiny_model):
    assert get_engine("hf", tiny_model, HFOptions(batch_size=5, dtype="float32")).batch_size == 5
    eng = get_engine("hf", tiny_model, {"batch_size": 3}, dtype="fp32")
    assert (eng.batch_size, eng.options.dtype, str(eng.model.dtype)) == (3, "float32", "torch.float32")
    with pytest.raises(BadOption, match="--concurrency applies to --engine openai, not hf"):
        get_engine("hf", tiny_model, concurrency=2)
    with pytest.raises(BadOption, match="--engine openai needs --base-url"):
        get_engine("openai")  # refused before any connection is tried


def test_an_engine_choice_knows_what_determines_the_records():
    choice = EngineChoice("openai", {"base_url": URL, "concurrency": 64})
    # not the server's address (the records name the served model), concurrency, batch or timeouts
    assert choice.record_settings() == {"engine": "openai"}
    assert EngineChoice.from_json(json.loads(json.dumps(choice.to_json()))) == choice
    assert EngineChoice("vllm").record_settings() == {"engine": "vllm", "dtype": None, "tensor_parallel_size": 1,
                                                      "gpu_memory_utilization": 0.9}


# ---- the CLI's flags come from the declarations -------------------------------------------------


def every_flag():
    return sorted({flag_of(f) for cls in declared().values() for f in fields(cls)})


def test_every_engine_declares_its_options():
    assert {name: cls for name, cls in declared().items()} == {"hf": HFOptions, "vllm": VLLMOptions,
                                                               "openai": OpenAIOptions}
    assert every_flag() == ["--api-key-env", "--base-url", "--concurrency", "--dtype", "--engine-batch-size",
                            "--gpu-memory-utilization", "--max-retries", "--request-timeout", "--tensor-parallel-size"]


@pytest.mark.parametrize("command", ["rollout", "eval", "distill"])
def test_help_lists_every_engine_flag_with_its_declared_help(command):
    result = runner.invoke(app, [command, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    text = flat(result.stdout)
    for cls in declared().values():
        for f in fields(cls):
            assert flag_of(f) in text, (command, flag_of(f))
            about = f.metadata["help"]
            assert about[1:30] in text, (command, about)  # (capitalised where every engine takes it)
    assert "openai engine: requests in flight at once (default 16)." in text
    assert "Sequences per engine call (default: hf 64; vllm 512; openai: max(64, --concurrency))." in text
    assert "Inference engine: hf (transformers, any machine), vllm (in-process vLLM, CUDA GPU), openai" in text
    # the hidden old spellings; distill's --batch-size is the student's training batch
    assert "--rollout-batch-size" not in text
    assert bool(re.search(r"(?<![\w-])--batch-size", text)) == (command == "distill")


def engine_args(command):
    """Enough of each command's other options to reach the engine checks (nothing is read or loaded)."""
    return {"rollout": ["rollout"], "eval": ["eval", "--data", "never-read.jsonl"],
            "distill": ["distill", "--teacher", "tiny", "--student", "tiny", "-o", "never-written", "--data", "x"]}[command]


@pytest.fixture
def no_model(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a model was about to load")

    monkeypatch.setattr("r1cli.models.load_model", refuse)


@pytest.mark.parametrize("command", ["rollout", "eval", "distill"])
@pytest.mark.parametrize("args, message", [
    (["--base-url", URL], "--base-url applies to --engine openai, not hf"),
    (["--concurrency", "4"], "--concurrency applies to --engine openai, not hf"),
    (["--tensor-parallel-size", "2"], "--tensor-parallel-size applies to --engine vllm, not hf"),
    (["--engine", "openai"], "--engine openai needs --base-url URL"),
    (["--engine", "openai", "--base-url", URL, "--dtype", "bfloat16"],
     "--dtype applies to --engine hf or vllm, not openai"),
    (["--engine", "openai", "--base-url", URL, "--gpu-memory-utilization", "0.5"],
     "--gpu-memory-utilization applies to --engine vllm, not openai"),
    (["--engine", "openai", "--base-url", "ftp://h"], "--base-url 'ftp://h' is not an http(s) URL"),
    (["--dtype", "int4"], "--dtype int4: choose from auto, bfloat16, float16, float32"),
    # the declared bounds and types, checked as the command line is parsed
    (["--engine-batch-size", "0"], "'--engine-batch-size': Input should be greater than or equal to 1"),
    (["--engine", "vllm", "--gpu-memory-utilization", "2"],
     "'--gpu-memory-utilization': Input should be less than or equal to 1"),
    (["--engine", "openai", "--base-url", URL, "--concurrency", "many"], "'--concurrency': Input should be a valid integer"),
])
def test_engine_options_that_do_not_apply_or_are_bad_are_usage_errors(command, args, message, no_model):
    result = runner.invoke(app, [*engine_args(command), *args], input="", env={"COLUMNS": "300"})
    assert result.exit_code == 2, result.stderr
    assert message in flat(result.stderr)


@pytest.mark.parametrize("command, alias", [("rollout", "--batch-size"), ("eval", "--batch-size"),
                                            ("distill", "--rollout-batch-size")])
def test_an_old_batch_flag_and_the_new_one_together_are_refused(command, alias, no_model):
    result = runner.invoke(app, [*engine_args(command), alias, "2", "--engine-batch-size", "2"], input="")
    assert result.exit_code == 2
    assert f"{alias} and --engine-batch-size are the same option: give --engine-batch-size only" in flat(result.stderr)


def test_the_old_batch_size_flag_still_works_and_warns_once(tiny_model):
    prompts = "".join(json.dumps({"id": f"p{i}", "prompt": f"Compute {i} + 1."}) + "\n" for i in range(3))
    common = ["rollout", "-m", tiny_model, "-n", "2", "--max-new-tokens", "3", "--dtype", "float32", "-q"]
    old = runner.invoke(app, [*common, "--batch-size", "2"], input=prompts)
    new = runner.invoke(app, [*common, "--engine-batch-size", "2"], input=prompts)
    assert old.exit_code == new.exit_code == 0, old.stderr + new.stderr
    assert old.stdout == new.stdout and len(old.stdout.splitlines()) == 6
    warning = "Warning: --batch-size is deprecated here: use --engine-batch-size (sequences per engine call)."
    assert flat(old.stderr).count(warning) == 1 and "Warning" not in new.stderr


# ---- an engine added in one place brings its flags ------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class EchoOptions(EngineOptions):
    engine: ClassVar[str] = "echo"

    batch_size: int = option(8, min=1, flag="--engine-batch-size", help="sequences per engine call")
    echo_prefix: str = option(">", help="text put in front of every completion")


class EchoEngine:
    """An engine that writes the prompt back: what a plugin package would register."""

    name = "echo"
    summary = "the prompt, back"
    Options = EchoOptions

    def __init__(self, model, options):
        self.model_name, self.options, self.batch_size = model or "echo", options, options.batch_size


@pytest.fixture
def echo_engine(monkeypatch):
    from r1cli.engines import ENGINES

    monkeypatch.setitem(ENGINES.builtin, "echo", f"{__name__}:EchoEngine")
    yield
    ENGINES._loaded.pop("echo", None)


def test_a_registered_engine_brings_its_flags_help_and_checks(echo_engine):
    from r1cli.cli._engine import with_engine_options

    seen = {}

    @with_engine_options()
    def sample_cmd(engine: EngineChoice = "hf") -> None:  # type: ignore[assignment]
        """Sample."""
        seen["engine"] = engine

    one = typer.Typer()
    one.command()(sample_cmd)
    text = flat(runner.invoke(one, ["--help"], env={"COLUMNS": "200"}).stdout)
    assert "echo engine: text put in front of every completion (default >)." in text
    assert "echo (the prompt, back)" in text
    assert "(default: hf 64; vllm 512; openai: max(64, --concurrency); echo 8)" in text
    ok = runner.invoke(one, ["--engine", "echo", "--echo-prefix", "#", "--engine-batch-size", "3"])
    assert ok.exit_code == 0, ok.output
    assert seen["engine"] == EngineChoice("echo", {"echo_prefix": "#", "batch_size": 3})
    assert seen["engine"].build().batch_size == 3
    wrong = runner.invoke(one, ["--echo-prefix", "#"])
    assert wrong.exit_code == 2 and "--echo-prefix applies to --engine echo, not hf" in flat(wrong.output)


# ---- grpo: the options of r1 generation's engine (always hf, on the policy) ---------------------


def test_grpo_offers_the_hf_options_of_r1_generation(monkeypatch, tmp_path, tiny_model):
    from r1cli.training import grpo

    captured = []
    monkeypatch.setattr("r1cli.cli._train.start", lambda settings, **kw: captured.append(settings))
    data = tmp_path / "p.jsonl"
    data.write_text(json.dumps({"prompt": "Compute 2 + 3.", "answer": "5"}) + "\n")
    base = ["grpo", "-m", tiny_model, "--data", str(data), "-o", str(tmp_path / "run"), "--max-steps", "1",
            "-n", "2", "--batch-size", "2"]  # grpo's --batch-size: the training batch
    ok = runner.invoke(app, [*base, "--engine-batch-size", "3", "--dtype", "fp32"])
    assert ok.exit_code == 0, ok.stderr
    (settings,) = captured
    assert settings.generation_options == {"batch_size": 3, "dtype": "float32"}
    assert settings.trl["per_device_train_batch_size"] == 2
    trainer = grpo.build_trainer(settings, grpo.prepare(settings), grpo.grpo_config(settings))
    assert trainer.rollout_func.options == HFOptions(batch_size=3, dtype="float32")
    for args, code, message in [(["--concurrency", "2"], 2, "No such option: --concurrency"),
                                (["--engine", "hf"], 2, "No such option: --engine"),
                                (["--dtype", "int4"], 2, "--dtype int4: choose from"),
                                (["--generation", "trl", "--dtype", "float32"], 1, "TRL generates here")]:
        refused = runner.invoke(app, [*base, *args])
        assert refused.exit_code == code and message in flat(refused.stderr), (args, refused.stderr)
    assert len(captured) == 1


@pytest.mark.parametrize("dtype, autocast", [("float32", None), ("bfloat16", "torch.bfloat16"),
                                             ("float16", "torch.float16")])
def test_the_policy_engine_autocasts_an_fp32_policy_to_the_chosen_dtype(tiny_model, dtype, autocast):
    from r1cli.models import load_model, load_tokenizer
    from r1cli.training.generation import PolicyEngine

    model = load_model(tiny_model)  # fp32
    engine = PolicyEngine(model, load_tokenizer(tiny_model), {"batch_size": 5, "dtype": dtype})
    assert engine.batch_size == 5 and str(engine.autocast_dtype) == str(autocast)


@pytest.mark.parametrize("words, expected", [
    ("r1 rollout --engine-b", ["--engine-batch-size"]),  # the derived flags complete; the hidden --batch-size does not
    ("r1 eval --gpu-memory", ["--gpu-memory-utilization"]),
    ("r1 distill --concurr", ["--concurrency"]),
    ("r1 rollout --engine o", ["openai"]),
    ("r1 grpo --engine-b", ["--engine-batch-size"]),
])
def test_the_derived_flags_complete_in_the_shell(words, expected):
    import os
    import subprocess
    import sys
    from pathlib import Path

    cword = len(words.split()) - 1
    env = {**os.environ, "_R1_COMPLETE": "complete_bash", "COMP_WORDS": words, "COMP_CWORD": str(cword)}
    proc = subprocess.run([str(Path(sys.executable).with_name("r1"))], env=env, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == expected
