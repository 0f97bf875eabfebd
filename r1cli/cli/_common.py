"""What every command shares: option aliases, the stderr console, progress, the error boundary."""

from __future__ import annotations

import contextvars
import functools
import inspect
import os
import shlex
import sys
import traceback
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console

from r1cli.errors import R1Error
from r1cli.pipeline.clock import BusyClock  # noqa: F401  (commands time their stages with it)

# The one console of the CLI: stderr. stdout carries data only.
err = Console(stderr=True, highlight=False)

# ---- completion: values the shell can offer (fast: no torch, no model) -----------------


def _matching(names: Iterable[str], incomplete: str) -> list[str]:
    return [name for name in names if name.startswith(incomplete)]


def complete_reward(incomplete: str) -> list[str]:
    """Reward names for `-r` (the registry imports no torch: ~0.3 s)."""
    from r1cli import rewards

    return _matching(rewards.names(), incomplete)


def complete_reward_arg(incomplete: str) -> list[str]:
    """`NAME.` prefixes for `--reward-arg NAME.KEY=VALUE`."""
    from r1cli import rewards

    return _matching((f"{name}." for name in rewards.names()), incomplete)


def complete_template(incomplete: str) -> list[str]:
    from r1cli.templates import TEMPLATES

    return _matching(TEMPLATES, incomplete)


def complete_engine(incomplete: str) -> list[str]:
    from r1cli.engines import ENGINES

    return _matching(sorted(ENGINES), incomplete)


def complete_model(incomplete: str) -> list[str]:
    """The packaged aliases; local folders the shell offers itself once the word has a '/'."""
    from r1cli.models import ALIASES

    return _matching(ALIASES, incomplete)


def _template_option(value: str | None) -> str | None:
    """Check --template while the command line is parsed: before any input is read or model loads."""
    if value is None:
        return value
    from r1cli.errors import BadInput
    from r1cli.templates import check_template

    try:
        return check_template(value)
    except BadInput as exc:
        raise typer.BadParameter(f"{exc.message}; {exc.hint}" if exc.hint else exc.message) from None


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
    typer.Option("--model", "-m", autocompletion=complete_model,
                 help="Model: hub id, local folder, or alias (smollm2-135m, tiny). Default: smollm2-135m "
                      "(with --engine openai: the served model; with -c: the recipe's)."),
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
        "--template", callback=_template_option, autocompletion=complete_template,
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
    typer.Option("--reward", "-r", metavar="NAME[:WEIGHT]", autocompletion=complete_reward,
                 help="Reward to compute, with its weight in `reward`; repeatable (default: accuracy, format)."),
]
RewardArgOpt = Annotated[
    list[str] | None,
    typer.Option("--reward-arg", metavar="NAME.KEY=VALUE", autocompletion=complete_reward_arg,
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
    """Turn R1Error into `Error: …` / `Hint: …` on stderr and exit 1; Ctrl-C into exit 130.

    Also the two things every reading command does before it starts: when its input is a
    terminal, one line saying what it expects (and no progress bar); after Ctrl-C, the command
    that continues the run, where the command can resume into a file.
    """
    params = inspect.signature(fn).parameters

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        hinted = _stdin_hint(fn.__name__, kwargs)
        token = _TTY_INPUT.set(hinted)
        try:
            return fn(*args, **kwargs)
        except R1Error as exc:
            if debug_enabled():
                traceback.print_exc(file=sys.stderr)
            print_error(exc)
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            err.print("Interrupted.", markup=False)
            again = resume_command(sys.argv, kwargs) if "resume" in params else None
            if again:
                err.print(f"Resume with: {again}", markup=False, soft_wrap=True)
            raise typer.Exit(130) from None
        finally:
            _TTY_INPUT.reset(token)

    return wrapper  # type: ignore[return-value]


def resume_command(argv: list[str], options: dict[str, Any]) -> str | None:
    """The command line that continues an interrupted run: argv with `--resume` added.

    Only where the output is a file or run folder (`-o PATH`): a stream to stdout cannot resume.

    >>> resume_command(["/venv/bin/r1", "rollout", "p.jsonl", "-o", "out file.jsonl"], {"output": "out file.jsonl"})
    "r1 rollout p.jsonl -o 'out file.jsonl' --resume"
    >>> resume_command(["r1", "score", "x.jsonl"], {"output": "-"}) is None
    True
    """
    output = options.get("output")
    if not output or output == "-" or len(argv) < 2:
        return None
    program = Path(argv[0]).name
    words = ["python", "-m", "r1cli"] if program in ("__main__.py", "-m") else [program or "r1"]
    rest = list(argv[1:])
    if "--resume" not in rest:
        rest.append("--resume")
    return shlex.join(words + rest)


# ---- input on a terminal ----------------------------------------------------------------

# command → (what it reads, a pipe that feeds it, the same from a file)
_EXPECTS: dict[str, tuple[str, str, str]] = {
    "rollout_cmd": ("prompt records", "r1 data arithmetic -n 8 | r1 rollout", "r1 rollout prompts.jsonl"),
    "score_cmd": ("rollout records", "r1 rollout prompts.jsonl | r1 score", "r1 score rollouts.jsonl"),
    "reject_sample_cmd": ("scored records", "r1 score rollouts.jsonl | r1 reject-sample",
                          "r1 reject-sample scored.jsonl"),
    "grpo_cmd": ("prompt records", "r1 data arithmetic -n 64 | r1 grpo -o runs/grpo",
                 "r1 grpo --data prompts.jsonl -o runs/grpo"),
    "sft_cmd": ("prompt-completion records", "r1 reject-sample scored.jsonl | r1 sft -o runs/sft",
                "r1 sft --data kept.jsonl -o runs/sft"),
    "distill_cmd": ("prompt records", "r1 data arithmetic -n 64 | r1 distill …",
                    "r1 distill --data prompts.jsonl …"),
}
# Set while a command runs whose input is a terminal: progress bars stay off, since a bar
# would sit at 0/? while the user types (for grpo it looked as if training had started).
_TTY_INPUT: contextvars.ContextVar[bool] = contextvars.ContextVar("r1_tty_input", default=False)


def _stdin_hint(command: str, options: dict[str, Any]) -> bool:
    """Print what `command` expects when it would read records from a terminal; True if it did."""
    expects = _EXPECTS.get(command)
    if expects is None or options.get("list_rewards"):
        return False
    source = options.get("path", options.get("data"))
    if source is None and options.get("config"):  # the recipe may name the data
        return False
    if source not in (None, "-") or not _stdin_is_terminal():
        return False
    what, piped, named = expects
    name = command.removesuffix("_cmd").replace("_", "-")
    err.print(f"r1 {name} reads {what} (JSON Lines) from stdin, which is a terminal: pipe them in "
              f"({piped}) or name a file ({named}). Waiting for input; Ctrl-D ends it, Ctrl-C quits.",
              markup=False, soft_wrap=True)
    return True


def _stdin_is_terminal() -> bool:
    try:
        return os.isatty(sys.stdin.fileno())
    except (AttributeError, OSError, ValueError):  # replaced stdin (tests, notebooks) without a descriptor
        return False


# ---- progress ---------------------------------------------------------------------------


def show_progress(quiet: bool) -> bool:
    """Progress bars only on an interactive stderr, never with --quiet, never while the input is a terminal."""
    return not quiet and err.is_terminal and not _TTY_INPUT.get()


# Counting the lines of a JSONL file up front costs ~0.1 s per 100 MB (1 MiB reads, bytes.count);
# past this size the bar shows counts only rather than delay the start.
_COUNT_LIMIT_BYTES = 2 << 30


def input_total(source: str | None, *, per_record: int = 1) -> int | None:
    """How many records a JSONL input file holds (× `per_record`), for a bar with a total and ETA.

    None for stdin, streams, HF dataset names and other formats: those bars show counts.
    """
    if not source or source == "-" or not source.lower().endswith(".jsonl"):
        return None
    path = Path(source)
    try:
        if not path.is_file() or path.stat().st_size > _COUNT_LIMIT_BYTES:
            return None
        lines, last = 0, b"\n"
        with open(path, "rb") as fp:
            while chunk := fp.read(1 << 20):
                lines += chunk.count(b"\n")
                last = chunk[-1:]
    except OSError:
        return None
    lines += last != b"\n"  # a last line without its newline
    return lines * per_record


@contextmanager
def progress_bar(description: str, *, total: float | None, quiet: bool, fields: str = "",
                 **initial: Any) -> Iterator[Any]:
    """A rich progress bar on stderr, or a no-op object when progress is off.

    With a `total` the bar shows `done/total` and an ETA; without one (a stream), the count.
    `fields` is a rich format string over task fields (e.g. "{task.fields[speed]}"), whose first
    values come as keyword arguments. The yielded object has `.update(advance=…, **fields)`.
    """
    if not show_progress(quiet):
        yield _NoProgress()
        return
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    columns = [TextColumn("{task.description}"), BarColumn(), _count_column(), TimeElapsedColumn(), _eta_column()]
    if fields:
        columns.append(TextColumn(fields))
    with Progress(*columns, console=err, transient=False) as bar:
        task = bar.add_task(description, total=total, **initial)
        yield _Bar(bar, task)


def _count_text(task: Any) -> str:
    done = int(task.completed)
    return f"{done:,}/{int(task.total):,}" if task.total is not None else f"{done:,}"


def _eta_text(task: Any) -> str:
    if task.total is None or task.finished:
        return ""
    remaining = task.time_remaining
    if remaining is None:
        return "eta …"
    minutes, seconds = divmod(int(remaining + 0.5), 60)
    hours, minutes = divmod(minutes, 60)
    return f"eta {hours}:{minutes:02d}:{seconds:02d}" if hours else f"eta {minutes}:{seconds:02d}"


def _column(render: Callable[[Any], str]) -> type:
    from rich.progress import ProgressColumn
    from rich.text import Text

    class Column(ProgressColumn):
        def render(self, task: Any) -> Text:
            return Text(render(task))

    return Column


def _count_column() -> Any:
    return _column(_count_text)()


def _eta_column() -> Any:
    return _column(_eta_text)()


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


def warn(text: str) -> None:
    """`Warning: …` on stderr (shown with --quiet too: it is about the data, not progress)."""
    err.print(f"Warning: {text}", markup=False, soft_wrap=True)
