"""Shell completion through Typer's own mechanism: scripts for bash, zsh and fish, and the values
r1 completes (commands, options, reward, template, engine and model names), without torch."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

R1 = str(Path(sys.executable).with_name("r1"))


def complete(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([R1], env={**os.environ, **env}, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(("shell", "marker"), [
    ("bash", "complete -o default -F _r1_completion r1"),
    ("zsh", "compdef _r1_completion r1"),
    ("fish", "complete --command r1"),
])
def test_a_completion_script_is_generated_for_each_shell(shell, marker):
    proc = complete({"_R1_COMPLETE": f"source_{shell}"})
    assert proc.returncode == 0, proc.stderr
    assert marker in proc.stdout
    assert "_R1_COMPLETE=complete_" in proc.stdout  # the script calls r1 back for the values


def test_install_and_show_completion_are_offered():
    proc = subprocess.run([R1, "--help"], capture_output=True, text=True, timeout=60, env={**os.environ, "COLUMNS": "200"})
    assert "--install-completion" in proc.stdout and "--show-completion" in proc.stdout


def bash(words: str) -> list[str]:
    cword = len(words.split()) - (0 if words.endswith(" ") else 1)
    proc = complete({"_R1_COMPLETE": "complete_bash", "COMP_WORDS": words, "COMP_CWORD": str(cword)})
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.split()


@pytest.mark.parametrize(("words", "expected"), [
    ("r1 score -r acc", ["accuracy"]),                  # a reward name
    ("r1 score --reward l", ["language", "length"]),
    ("r1 grpo -r form", ["format"]),
    ("r1 score --reward-arg acc", ["accuracy."]),
    ("r1 rollout --template r1", ["r1-zero"]),          # a template name
    ("r1 sft --template ", ["r1-zero", "chat", "none"]),
    ("r1 rollout --engine ", ["hf", "openai", "vllm"]),  # engine names
    ("r1 eval --engine v", ["vllm"]),
    ("r1 rollout -m sm", ["smollm2-135m"]),             # model aliases
    ("r1 distill --teacher t", ["tiny"]),
    ("r1 re", ["reject-sample", "report"]),             # command names
    ("r1 rollout --max-n", ["--max-new-tokens"]),       # options
])
def test_bash_completes(words, expected):
    assert bash(words) == expected


def test_zsh_and_fish_complete_a_reward_name():
    zsh = complete({"_R1_COMPLETE": "complete_zsh", "_TYPER_COMPLETE_ARGS": "r1 score -r acc"})
    assert zsh.returncode == 0 and '"accuracy"' in zsh.stdout, zsh.stdout + zsh.stderr
    fish = complete({"_R1_COMPLETE": "complete_fish", "_TYPER_COMPLETE_FISH_ACTION": "get-args",
                     "_TYPER_COMPLETE_ARGS": "r1 score -r acc"})
    assert fish.returncode == 0 and fish.stdout.split() == ["accuracy"], fish.stdout + fish.stderr


def test_completion_imports_no_heavy_library():
    # each Tab press runs r1: it must not pay for torch (~2 s) or transformers
    code = ("import os, sys\nos.environ.update(_R1_COMPLETE='complete_bash', COMP_WORDS='r1 rollout -m sm', COMP_CWORD='3')\n"
            "sys.argv = ['r1']\nfrom r1cli.cli import main\ntry:\n    main()\nexcept SystemExit:\n    pass\n"
            "heavy = [m for m in ('torch', 'transformers', 'trl', 'datasets', 'math_verify') if m in sys.modules]\n"
            "print('HEAVY', heavy, file=sys.stderr)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "smollm2-135m" in proc.stdout
    assert "HEAVY []" in proc.stderr, proc.stderr
