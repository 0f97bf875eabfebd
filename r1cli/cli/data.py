"""`r1 data`: built-in verifiable tasks as prompt records (JSONL on stdout)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from r1cli import tasks
from r1cli.cli._common import OutputOpt, QuietOpt, SeedOpt, reports_errors, summary
from r1cli.cli._tasks import TaskGroup
from r1cli.sink import open_output

data_app = typer.Typer(
    cls=TaskGroup,  # adds `r1 data NAME` for the tasks of installed plugins
    help="Generate verifiable tasks (countdown, arithmetic) as prompt records with gold answers.",
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)

NumOpt = Annotated[int, typer.Option("--num", "-n", min=0, help="Number of tasks to generate.")]


def _write(task: str, num: int, seed: int, output: str, quiet: bool, **options: Any) -> None:
    count = 0
    with open_output(output) as sink:
        for record in tasks.generate(task, num, seed=seed, **options):
            sink.write(record)
            count += 1
    where = "" if output == "-" else f" to {output}"
    summary(f"wrote {count:,} {task} tasks{where} (seed {seed})", quiet=quiet)


@data_app.command("countdown")
@reports_errors
def countdown_cmd(
    num: NumOpt = 100,
    num_numbers: Annotated[
        int, typer.Option("--num-numbers", min=3, max=6, help="Numbers per instance, all used in the answer.")
    ] = 4,
    max_number: Annotated[int, typer.Option("--max-number", min=1, help="Numbers are drawn from 1..N.")] = 99,
    max_target: Annotated[int, typer.Option("--max-target", min=1, help="Targets lie in 1..N.")] = 100,
    seed: SeedOpt = 0,
    output: OutputOpt = "-",
    quiet: QuietOpt = False,
) -> None:
    """Countdown (TinyZero): reach the target with + - * / using each number once; always solvable.

    \b
        r1 data countdown -n 1000 --seed 1 -o countdown.jsonl
        r1 data countdown -n 8 | r1 rollout -m smollm2-135m -n 4 --template r1-zero | r1 score
    """
    _write("countdown", num, seed, output, quiet, num_numbers=num_numbers, max_number=max_number, max_target=max_target)


@data_app.command("arithmetic")
@reports_errors
def arithmetic_cmd(
    num: NumOpt = 100,
    difficulty: Annotated[
        int,
        typer.Option("--difficulty", min=1, max=5, help="1 (2 operations, no parentheses) … 5 (6 operations)."),
    ] = 2,
    seed: SeedOpt = 0,
    output: OutputOpt = "-",
    quiet: QuietOpt = False,
) -> None:
    """Multi-step integer arithmetic with exact answers (task "math").

    \b
        r1 data arithmetic -n 8 | r1 rollout -m smollm2-135m -n 4
        r1 data arithmetic -n 500 --difficulty 3 --seed 2 -o arith.jsonl
    """
    _write("arithmetic", num, seed, output, quiet, difficulty=difficulty)
