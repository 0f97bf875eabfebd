"""The user's stderr shows r1's own lines only: progress, the summary, r1's errors.

Every model-loading command runs here as a real process on the tiny model, as a user types it.
When a library release starts to warn (transformers 5.24's "`past_key_values` is deprecated" on
every forward pass was the last one), the `verbose` case below fails first, by name, with the
library's line: fix the call in r1cli (or, if no call of r1's causes it, say why in r1cli/log.py).
The default case proves that even then the user's terminal stays clean.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# What a library's line looks like: a warning class, a source location, a traceback, a log level
# prefix, a tqdm bar. None of r1's own lines has any of these.
_NOISE = re.compile(
    r"\w+Warning\b|\.py:\d+|Traceback|^\s*(WARNING|INFO|DEBUG|ERROR|CRITICAL)\b|\d+%\|.*\||it/s\]|"
    r"deprecat|^r1: library:",
    re.IGNORECASE,
)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from r1cli import tasks

    folder = tmp_path_factory.mktemp("stderr")
    prompts = folder / "prompts.jsonl"
    prompts.write_text("".join(json.dumps(r) + "\n" for r in tasks.generate("arithmetic", 3, seed=0)))
    sft = folder / "sft.jsonl"
    sft.write_text("".join(json.dumps({"prompt": f"What is {i} + 1?", "completion": f" {i + 1}"}) + "\n"
                           for i in range(4)))
    scored = folder / "rollouts.jsonl"
    scored.write_text("".join(json.dumps({"id": f"q{i}", "sample": 0, "prompt": "What is 2 + 2?", "answer": "4",
                                          "completion": "<think>2 and 2</think><answer>4</answer>",
                                          "finish_reason": "stop"}) + "\n" for i in range(4)))
    return {"dir": folder, "prompts": prompts, "sft": sft, "rollouts": scored}


def _commands(tiny: str, inputs: dict[str, Path], out: Path) -> dict[str, list[str]]:
    p = str(inputs["prompts"])
    return {
        "rollout": ["rollout", p, "-m", tiny, "-n", "2", "--max-new-tokens", "4", "-o", str(out / "r.jsonl")],
        "score": ["score", str(inputs["rollouts"]), "-r", "accuracy", "-r", "format", "-o", str(out / "s.jsonl")],
        "grpo": ["grpo", "-m", tiny, "-d", p, "-n", "2", "--max-completion-length", "4", "--max-steps", "1",
                 "--batch-size", "2", "-o", str(out / "grpo")],
        "sft": ["sft", "-m", tiny, "-d", str(inputs["sft"]), "--max-steps", "1", "-o", str(out / "sft")],
        "eval": ["eval", "-m", tiny, "-d", p, "-n", "2", "--max-new-tokens", "4"],
        "distill": ["distill", "--teacher", tiny, "--student", tiny, "-d", p, "-n", "2", "--max-new-tokens", "4",
                    "--max-steps", "1", "--no-correct-only", "--keep-truncated", "-o", str(out / "distill")],
    }


@pytest.mark.parametrize("mode", ["default", "verbose"])
@pytest.mark.parametrize("command", ["rollout", "score", "grpo", "sft", "eval", "distill"])
def test_stderr_holds_only_r1s_lines(command: str, mode: str, tiny_model: str, inputs: dict[str, Path],
                                     tmp_path: Path) -> None:
    args = _commands(tiny_model, inputs, tmp_path)[command]
    env = {**os.environ, "R1_VERBOSE": "1" if mode == "verbose" else "0"}
    proc = subprocess.run([sys.executable, "-m", "r1cli", *args], capture_output=True, text=True, timeout=600,
                          cwd=ROOT, env=env, stdin=subprocess.DEVNULL, check=False)
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    foreign = [line for line in lines if _NOISE.search(line)]
    assert not foreign, (f"`r1 {command}` printed lines that are not r1's own"
                         f"{' (a library now warns: fix the call that causes it)' if mode == 'verbose' else ''}:\n"
                         + "\n".join(foreign))
    assert lines, "the summary line is missing"


def _run_python(code: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT,
                          env={**os.environ, **env}, check=False)


_EMIT = """
import logging, warnings
from r1cli import log
log.setup()
warnings.warn_explicit("`old` is deprecated", FutureWarning, "/x/site-packages/transformers/foo.py", 7)
logging.getLogger("trl.trainer").warning("a trainer says so")
"""


@pytest.mark.parametrize("verbose, shown", [("0", False), ("1", True)])
def test_library_warnings_are_logged_and_shown_with_verbose(verbose: str, shown: bool, tmp_path: Path) -> None:
    logfile = tmp_path / "r1.log"
    proc = _run_python(_EMIT, R1_VERBOSE=verbose, R1_LOG_FILE=str(logfile))
    assert proc.returncode == 0, proc.stderr
    assert ("deprecated" in proc.stderr and "a trainer says so" in proc.stderr) is shown, proc.stderr
    if not shown:
        assert proc.stderr == ""
    logged = logfile.read_text()
    assert "FutureWarning: `old` is deprecated" in logged and "trl.trainer: a trainer says so" in logged


def test_library_progress_bars_stay_off_the_terminal() -> None:
    # transformers converts the packaged GGUF with a bare tqdm bar, which no HF switch turns off
    code = ("from r1cli import log\nlog.setup()\nfrom tqdm.auto import tqdm\n"
            "for _ in tqdm(range(3), desc='Converting and de-quantizing GGUF tensors...'): pass\n")
    proc = _run_python(code, R1_VERBOSE="0")
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr


def test_r1s_own_warnings_still_reach_stderr() -> None:
    code = ("import warnings\nfrom r1cli import log\nlog.setup()\n"
            "warnings.warn_explicit('unconfined run', UserWarning, log.__file__, 1)\n")
    proc = _run_python(code, R1_VERBOSE="0")
    assert proc.stderr.strip() == "Warning: unconfined run"


def test_verbose_flag_is_on_every_model_command() -> None:
    from typer.testing import CliRunner

    from r1cli.cli import app

    for command in ["rollout", "score", "grpo", "sft", "eval", "distill", "reject-sample", "report"]:
        result = CliRunner().invoke(app, [command, "--help"])
        assert "--verbose" in result.stdout, command
