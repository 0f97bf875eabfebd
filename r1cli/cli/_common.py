"""What every command shares: option aliases, the stderr console, progress, the error boundary."""

from __future__ import annotations

import functools
import os
import sys
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console

from r1cli.errors import R1Error

# The one console of the CLI: stderr. stdout carries data only.
err = Console(stderr=True, highlight=False)

# ---- shared options: one spelling and one help text everywhere -------------------------

InputArg = Annotated[
    str,
    typer.Argument(
        help="Records to read: a .jsonl/.json/.parquet file, '-' for stdin, or a HF dataset name.",
        show_default=True,
    ),
]
OutputOpt = Annotated[str, typer.Option("--output", "-o", help="Write JSONL here ('-' = stdout).")]
ModelOpt = Annotated[
    str,
    typer.Option("--model", "-m", help="Model: hub id, local folder, or alias (smollm2-135m, tiny)."),
]
SeedOpt = Annotated[int, typer.Option("--seed", help="Random seed; same seed + inputs + settings → same output.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar or summary line.")]
ResumeOpt = Annotated[
    bool,
    typer.Option("--resume", help="Keep the complete records already in -o FILE and do only the rest."),
]
SplitOpt = Annotated[str | None, typer.Option("--split", help="Dataset split, for HF dataset names (default: train).")]
PromptFieldOpt = Annotated[
    str | None, typer.Option("--prompt-field", help="Input field holding the prompt (e.g. problem, question).")
]
AnswerFieldOpt = Annotated[
    str | None, typer.Option("--answer-field", help="Input field holding the gold answer (e.g. solution).")
]
ExtractAnswerOpt = Annotated[
    str | None,
    typer.Option(
        "--extract-answer",
        help="Pull the answer out of the answer field: 'gsm8k' (text after '####') or 'boxed' (last \\boxed{}).",
    ),
]
TemplateOpt = Annotated[
    str | None,
    typer.Option(
        "--template",
        help="Prompt template: r1-zero, chat, none (default: chat when the model has a chat template, else none).",
    ),
]
SystemOpt = Annotated[
    str | None,
    typer.Option("--system", help="System prompt for --template chat; '' removes the template's default one."),
]
PrefillOpt = Annotated[
    str | None,
    typer.Option("--prefill", help="Start every answer with this text, written for the model (R1: '<think>'); "
                                   "records carry it as `prefill`."),
]

SkipInvalidOpt = Annotated[
    bool, typer.Option("--skip-invalid", help="Skip malformed input lines (bad JSON, not UTF-8, not an object), "
                                              "counted in the summary, instead of failing.")
]

RewardOpt = Annotated[
    list[str] | None,
    typer.Option("--reward", "-r", metavar="NAME[:WEIGHT]",
                 help="Reward to compute, with its weight in `reward`; repeatable (default: accuracy, format)."),
]
RewardArgOpt = Annotated[
    list[str] | None,
    typer.Option("--reward-arg", metavar="NAME.KEY=VALUE",
                 help="A reward's parameter, e.g. accuracy.fallback=last-number; repeatable (see --list)."),
]


def reward_params(args: list[str], language: str | None, selected: list[str]) -> dict[str, dict[str, Any]]:
    """{reward: {parameter: text}} from --reward-arg NAME.KEY=VALUE and --language."""
    params: dict[str, dict[str, Any]] = {}
    for arg in args:
        target, eq, value = arg.partition("=")
        name, dot, key = target.partition(".")
        if not eq or not dot or not name.strip() or not key.strip():
            raise typer.BadParameter(f"'{arg}' is not NAME.KEY=VALUE (e.g. accuracy.fallback=last-number)",
                                     param_hint="--reward-arg")
        params.setdefault(name.strip(), {})[key.strip()] = value
    if language is not None:
        if "language" not in selected:
            raise typer.BadParameter("--language sets the language reward's target: add -r language",
                                     param_hint="--language")
        params.setdefault("language", {})["language"] = language
    return params


# ---- error boundary ---------------------------------------------------------------------

F = TypeVar("F", bound=Callable[..., Any])


def debug_enabled() -> bool:
    return os.environ.get("R1_DEBUG", "") not in ("", "0")


def print_error(exc: R1Error) -> None:
    err.print(f"Error: {exc.message}", markup=False, style="bold red", soft_wrap=True)
    if exc.hint:
        err.print(f"Hint: {exc.hint}", markup=False, soft_wrap=True)


def reports_errors(fn: F) -> F:
    """Turn R1Error into `Error: …` / `Hint: …` on stderr and exit 1; Ctrl-C into exit 130."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except R1Error as exc:
            if debug_enabled():
                traceback.print_exc(file=sys.stderr)
            print_error(exc)
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            err.print("Interrupted.", markup=False)
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]


# ---- progress ---------------------------------------------------------------------------


def show_progress(quiet: bool) -> bool:
    """Progress bars only on an interactive stderr, and never with --quiet."""
    return not quiet and err.is_terminal


@contextmanager
def progress_bar(description: str, *, total: float | None, quiet: bool, fields: str = "",
                 **initial: Any) -> Iterator[Any]:
    """A rich progress bar on stderr, or a no-op object when progress is off.

    `fields` is a rich format string over task fields (e.g. "{task.fields[speed]}"), whose first
    values come as keyword arguments. The yielded object has `.update(advance=…, **fields)`.
    """
    if not show_progress(quiet):
        yield _NoProgress()
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
    if fields:
        columns.append(TextColumn(fields))
    with Progress(*columns, console=err, transient=False) as bar:
        task = bar.add_task(description, total=total, **initial)
        yield _Bar(bar, task)


class _NoProgress:
    def update(self, **_: Any) -> None:
        pass


class _Bar:
    def __init__(self, bar: Any, task: Any) -> None:
        self._bar, self._task = bar, task

    def update(self, advance: float = 0, **fields: Any) -> None:
        self._bar.update(self._task, advance=advance, **fields)


def summary(line: str, *, quiet: bool) -> None:
    """The one summary line a command ends with, on stderr."""
    if not quiet:
        err.print(line, markup=False, soft_wrap=True)
