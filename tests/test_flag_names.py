"""One spelling, one meaning: a short flag or a name means the same thing in every command."""

from __future__ import annotations

import click
import pytest
import typer.main

from r1cli.cli import app


def _commands(group: click.Command, prefix: str = "") -> dict[str, click.Command]:
    out = {}
    for name, cmd in getattr(group, "commands", {}).items():
        out[f"{prefix}{name}"] = cmd
        out.update(_commands(cmd, f"{prefix}{name} "))
    return out


COMMANDS = _commands(typer.main.get_command(app))


def _meanings(flag: str) -> dict[str, str]:
    """command → the long name of the option that `flag` spells there."""
    found = {}
    for name, cmd in COMMANDS.items():
        for param in getattr(cmd, "params", []):
            opts = [*param.opts, *param.secondary_opts]
            if flag in opts:
                found[name] = max(opts, key=len)
    return found


@pytest.mark.parametrize(("flag", "meaning"), [("-d", "--data"), ("-m", "--model"), ("-o", "--output"),
                                               ("-r", "--reward"), ("-q", "--quiet"), ("-c", "--config")])
def test_a_short_flag_means_one_option_everywhere(flag, meaning):
    meanings = _meanings(flag)
    assert meanings, f"no command takes {flag}"
    assert set(meanings.values()) == {meaning}, meanings


def test_the_engine_batch_and_the_training_batch_have_different_names():
    """--engine-batch-size: sequences per engine call; --batch-size: the per-device training batch."""
    engine = set(_meanings("--engine-batch-size"))
    training = {name for name, cmd in COMMANDS.items() for p in cmd.params
                if "--batch-size" in p.opts and not p.hidden}
    assert {"rollout", "eval", "distill", "grpo"} <= engine
    assert training == {"grpo", "sft", "distill"}, training
