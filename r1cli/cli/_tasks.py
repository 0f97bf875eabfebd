"""`r1 data NAME` for tasks that installed packages provide (entry points of `r1cli.tasks`).

The built-in tasks have their own commands (cli/data.py). A plugin's task gets one built when it is
asked for: `r1 data` lists the plugins' names from the package metadata alone, and `r1 data NAME`
imports that plugin only, deriving its options from the generator's keyword-only parameters
(`max_len: int = 5` becomes `--max-len INTEGER`), next to the options every task has (-n, --seed,
-o, -q). A plugin that cannot be loaded still gets its name: the command reports the error.
"""

from __future__ import annotations

import inspect
import types
import typing
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from r1cli.errors import R1Error

__all__ = ["TaskGroup"]

_OWN = ("num", "seed", "output", "quiet", "verbose")
_TYPES = (bool, int, float, str)


class TaskGroup(TyperGroup):
    """The `r1 data` group: its own commands, then a command per plugin task."""

    def list_commands(self, ctx: Any) -> list[str]:
        own = super().list_commands(ctx)
        return [*own, *(name for name in _plugin_tasks() if name not in own)]

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        command = super().get_command(ctx, cmd_name)
        if command is None and cmd_name in _plugin_tasks():
            command = _command(cmd_name)
            self.commands[cmd_name] = command  # built once per process
        return command


def _plugin_tasks() -> list[str]:
    from r1cli.tasks import TASKS

    return [name for name in TASKS if name not in TASKS.builtin]


def _command(name: str) -> Any:
    """The click command of the plugin task `name` (through a one-command Typer app)."""
    from r1cli import tasks
    from r1cli.cli._common import OutputOpt, QuietOpt, SeedOpt, reports_errors

    origin = tasks.TASKS.origin(name)
    num_opt = Annotated[int, typer.Option("--num", "-n", min=0, help="Number of tasks to generate.")]
    params = [inspect.Parameter("num", inspect.Parameter.KEYWORD_ONLY, default=100, annotation=num_opt),
              inspect.Parameter("seed", inspect.Parameter.KEYWORD_ONLY, default=0, annotation=SeedOpt),
              inspect.Parameter("output", inspect.Parameter.KEYWORD_ONLY, default="-", annotation=OutputOpt),
              inspect.Parameter("quiet", inspect.Parameter.KEYWORD_ONLY, default=False, annotation=QuietOpt)]
    try:
        options = tasks.parameters(name)
        doc = inspect.getdoc(tasks.TASKS.load(name)) or ""
        broken: R1Error | None = None
    except R1Error as exc:  # the plugin cannot be loaded: the command says so when run
        options, doc, broken = [], "", exc
    for param in options:
        if param.name in _OWN:
            broken = broken or R1Error(f"task '{name}' of {origin} has an option named '{param.name}', which r1 data "
                                       "uses itself", hint=f"rename that parameter in {origin}")
            continue
        params.append(inspect.Parameter(param.name, inspect.Parameter.KEYWORD_ONLY, default=_default(param),
                                        annotation=_annotation(param)))

    def run(**kwargs: Any) -> None:
        from r1cli.cli.data import _write

        if broken is not None:
            raise broken
        values = {k: kwargs.pop(k) for k in ("num", "seed", "output", "quiet")}
        _write(name, values["num"], values["seed"], values["output"], values["quiet"], **kwargs)

    run.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    run.__name__ = f"{name}_task_cmd"
    summary = doc.split("\n\n")[0].replace("\n", " ") if doc else f"The task '{name}'."
    run.__doc__ = (f"{summary} (from {origin})" if broken is None else
                   f"The task '{name}' from {origin}, which cannot be loaded: {broken.message}")
    app = typer.Typer()
    app.command(name, context_settings={"help_option_names": ["-h", "--help"]})(reports_errors(run))
    return typer.main.get_command(app)


def _default(param: inspect.Parameter) -> Any:
    return ... if param.default is inspect.Parameter.empty else param.default


def _annotation(param: inspect.Parameter) -> Any:
    """The Typer option of a generator parameter: its type when Typer reads it, else text it gets as is."""
    kind = param.annotation
    union = typing.get_origin(kind) in (typing.Union, types.UnionType)
    args = [a for a in typing.get_args(kind) if a is not type(None)] if union else [kind]
    base = args[0] if len(args) == 1 and args[0] in _TYPES else str
    choices = typing.get_args(kind) if typing.get_origin(kind) is typing.Literal else ()
    if choices and type(choices[0]) in _TYPES and all(type(c) is type(choices[0]) for c in choices):
        base = type(choices[0])  # Literal[1, 2, 3]: an int, checked by the generator
    help_text = f"One of: {', '.join(map(str, choices))}." if choices else None
    flag = "--" + param.name.replace("_", "-")
    decls = [f"{flag}/--no-{flag[2:]}"] if base is bool else [flag]
    return Annotated[base | None if union else base, typer.Option(*decls, help=help_text)]
