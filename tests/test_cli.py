import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from r1cli import __version__
from r1cli.cli import app

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()


def commands():
    """Every leaf command as its argv prefix, e.g. ["rollout"], ["data", "countdown"]."""
    group = typer.main.get_command(app)
    out = []
    for name, cmd in group.commands.items():
        sub = getattr(cmd, "commands", None)
        if sub:
            out += [[name, s] for s in sub]
        else:
            out.append([name])
    return out


def test_version():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.stdout.strip() == f"r1 {__version__}"


def test_python_dash_m():
    proc = subprocess.run([sys.executable, "-m", "r1cli", "--version"], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.strip() == f"r1 {__version__}"


def test_help_does_not_import_heavy_libraries():
    code = ("import sys\nfrom r1cli.cli import main\nsys.argv=['r1','--help']\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            "heavy=[m for m in ('torch','transformers','trl','vllm','datasets','math_verify') if m in sys.modules]\n"
            "print('HEAVY', heavy, file=sys.stderr)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert "HEAVY []" in proc.stderr, proc.stderr


@pytest.mark.parametrize("argv", commands(), ids=lambda a: " ".join(a))
def test_every_command_has_an_example_in_its_help(argv):
    result = runner.invoke(app, [*argv, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert re.search(r"^\s+r1 " + re.escape(argv[0]), result.stdout, re.M), result.stdout


@pytest.mark.parametrize("argv", commands(), ids=lambda a: " ".join(a))
def test_every_command_is_documented(argv):
    # each top-level command has its page, linked from the README; each subcommand is on its page
    page = ROOT / "docs" / "commands" / f"{argv[0]}.md"
    assert page.is_file(), f"no docs/commands/{argv[0]}.md"
    assert f"(docs/commands/{argv[0]}.md)" in (ROOT / "README.md").read_text()
    text = page.read_text()
    assert f"r1 {' '.join(argv)}" in text, f"{page.name} never shows `r1 {' '.join(argv)}`"


def test_broken_pipe_is_quiet():
    # `r1 data … | head -1`: the reader leaves early; no traceback, no hang.
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run(
        f"{sys.executable} -m r1cli data arithmetic -n 200000 | head -1",
        shell=True, capture_output=True, text=True, timeout=60, env=env,
    )
    assert proc.returncode == 0
    assert json.loads(proc.stdout)["task"] == "math"
    assert "Traceback" not in proc.stderr and "BrokenPipe" not in proc.stderr, proc.stderr
