"""The packaged model cache used for the first time by two commands at once, or by one killed mid-build.

Each test starts from an empty R1_HOME. The same race on the real SmolLM2 conversion (540 MB,
~30 s) is `test_two_processes_convert_smollm2_at_once` in tests/test_models.py (marked slow);
here the `tiny` alias goes through the same build-and-rename code in a few seconds.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from faultkit import (
    R1,
    ROOT,
    kill_group,
    r1_env,
    read_jsonl,
    start_r1,
    wait_for,
    write_jsonl,
)

ARGS = ["-m", "tiny", "-n", "2", "--max-new-tokens", "4", "--dtype", "float32", "--seed", "0", "-q"]


def _prompt_file(tmp_path: Path) -> Path:
    return write_jsonl(tmp_path / "prompts.jsonl", [{"id": "q", "prompt": "What is 1 + 1?", "answer": "2"}])


def _leftovers(models: Path) -> list[str]:
    return sorted(p.name for p in models.iterdir() if p.name.startswith("."))


def test_two_rollouts_build_the_cache_at_once(tmp_path: Path) -> None:
    home = tmp_path / "home"
    source = _prompt_file(tmp_path)
    env = r1_env(R1_HOME=str(home))
    procs = [subprocess.Popen([*R1, "rollout", str(source), *ARGS, "-o", str(tmp_path / f"out{i}.jsonl")], cwd=ROOT,
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for i in range(2)]
    errors = [proc.communicate(timeout=300)[1] for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0], errors
    assert errors == ["", ""]
    assert read_jsonl(tmp_path / "out0.jsonl") == read_jsonl(tmp_path / "out1.jsonl")
    models = home / "models"
    assert json.loads((models / "tiny" / "r1_model.json").read_text())["name"] == "tiny"
    assert _leftovers(models) == []  # the loser's temporary folder is gone


def test_a_build_killed_midway_is_redone_by_the_next_command(tmp_path: Path) -> None:
    """kill -9 while the cache is being built: the next command builds it whole and works."""
    home = tmp_path / "home"
    models = home / "models"
    source = _prompt_file(tmp_path)
    env = r1_env(R1_HOME=str(home))
    proc = start_r1("rollout", source, *ARGS, log=tmp_path / "killed.log", env=env)
    building = wait_for(lambda: proc.poll() is not None or (models.is_dir() and _leftovers(models) != []), 300)
    assert building and proc.poll() is None, (tmp_path / "killed.log").read_text()[-2000:]
    kill_group(proc)
    assert not (models / "tiny").exists()  # never a half-built folder under the final name
    done = subprocess.run([*R1, "rollout", str(source), *ARGS], check=False, cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert [r["sample"] for r in map(json.loads, done.stdout.splitlines())] == [0, 1]
    assert (models / "tiny" / "r1_model.json").is_file()
