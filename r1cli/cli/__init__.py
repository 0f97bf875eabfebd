"""The `r1` command: every command is registered here, in one place."""

from __future__ import annotations

import functools
import inspect
import os
import sys
from collections.abc import Callable
from typing import Annotated, Any

import typer

from r1cli import __version__, log
from r1cli.cli._common import reports_errors
from r1cli.cli.data import data_app
from r1cli.cli.distill import distill_cmd
from r1cli.cli.eval import eval_cmd
from r1cli.cli.grpo import grpo_cmd
from r1cli.cli.report import report_cmd
from r1cli.cli.reject_sample import reject_sample_cmd
from r1cli.cli.rollout import rollout_cmd
from r1cli.cli.score import score_cmd
from r1cli.cli.sft import sft_cmd

app = typer.Typer(
    name="r1",
    help="The DeepSeek-R1 training recipe as composable Unix commands. JSONL in, JSONL out.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=True,  # r1 --install-completion / --show-completion: bash, zsh, fish, powershell
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"r1 {__version__}")
        raise typer.Exit()


_VERBOSE_HELP = "Also show the libraries' warnings and log lines (transformers, TRL, …) on stderr."
VerboseOpt = Annotated[bool, typer.Option("--verbose", "-v", help=_VERBOSE_HELP)]


def _with_verbose(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Give a command a `-v/--verbose` option (`r1 rollout -v …` as well as `r1 -v rollout …`)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, verbose: bool = False, **kwargs: Any) -> Any:
        if verbose:
            log.setup(verbose=True)
        return fn(*args, **kwargs)

    signature = inspect.signature(fn, eval_str=True)
    params = [*signature.parameters.values(),
              inspect.Parameter("verbose", inspect.Parameter.KEYWORD_ONLY, default=False, annotation=VerboseOpt)]
    wrapper.__signature__ = signature.replace(parameters=params)  # type: ignore[attr-defined]
    wrapper.__annotations__ = {p.name: p.annotation for p in params}
    return wrapper


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help=_VERBOSE_HELP)] = False,
) -> None:
    """The DeepSeek-R1 training recipe as composable Unix commands. JSONL in, JSONL out.

    \b
        r1 data arithmetic -n 8 | r1 rollout -m smollm2-135m -n 4 > rollouts.jsonl
    """
    if verbose:
        log.setup(verbose=True)


app.add_typer(data_app, name="data")
for _name, _fn in {
    "rollout": rollout_cmd,
    "score": score_cmd,
    "grpo": grpo_cmd,
    "reject-sample": reject_sample_cmd,
    "sft": sft_cmd,
    "distill": distill_cmd,
    "eval": eval_cmd,
    "report": report_cmd,
}.items():
    app.command(_name)(reports_errors(_with_verbose(_fn)))


def main() -> None:
    """Console-script entry point: `r1`."""
    log.setup()  # library warnings off the terminal from the first import on; -v shows them
    try:
        app()
    except BrokenPipeError:
        _quiet_broken_pipe()


def _quiet_broken_pipe() -> None:
    # The reader went away (`r1 … | head -1`): exit quietly. Point stdout at /dev/null so the
    # interpreter's final flush does not print "Exception ignored … BrokenPipeError".
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    sys.exit(1)
