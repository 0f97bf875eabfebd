"""What the training commands (`grpo`, `sft`) share: launching ranks, the progress bar, the summary.

Each command keeps its own flags and statistics; these helpers only run a `train` function of
r1cli.training in this process, or N ranks of it under `accelerate launch`.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any

import typer

from r1cli.cli._common import progress_bar, summary


def start(settings: Any, *, launch: Callable[..., int], run: Callable[..., None], quiet: bool) -> None:
    """Run here, or with `--num-processes N` start N ranks (rank 0 prints progress and summary)."""
    if settings.num_processes > 1:
        code = launch(settings, quiet=quiet)
        if code:
            raise typer.Exit(code)
        return
    run(settings, quiet=quiet)


def warn(message: str) -> None:
    """A warning from a running trainer, on stderr (shown with --quiet too: it says the run is wasted)."""
    from r1cli.cli._common import err

    err.print(message, markup=False, highlight=False)


def train_here(label: str, train: Callable[..., Any], settings: Any, *, quiet: bool,
               stats: Callable[[dict[str, Any]], str], **options: Any) -> Any:
    """`train(settings, progress=…, **options)` under a progress bar on stderr showing `stats(values)`."""
    with progress_bar(label, total=None, quiet=quiet, fields="{task.fields[stats]}", stats="") as bar:
        def update(step: int, total: int, **values: Any) -> None:
            bar.update(total=total if total and total > 0 else None, completed=step, stats=stats(values))

        return train(settings, progress=update, **options)


def report(result: Any, stats: str, *, quiet: bool) -> None:
    """The summary line of a finished run."""
    per_step = result.seconds / max(result.steps - result.first_step, 1)
    resumed = f", resumed from {result.resumed_from}" if result.resumed_from else ""
    steps = f"{result.steps:,} step{'s' if result.steps != 1 else ''}"
    summary(f"trained {steps} in {result.seconds:,.1f} s ({per_step:.2f} s/step{resumed}); "
            f"{stats or 'no metrics'}; model saved to {result.output_dir}", quiet=quiet)


def worker_main(load_settings: Callable[[str], Any], run: Callable[..., None], argv: list[str] | None = None) -> None:
    """Entry point of each rank under `accelerate launch` (`python -m r1cli.cli.<cmd> CONFIG`)."""
    from r1cli.cli._common import print_error
    from r1cli.errors import R1Error

    argv = sys.argv[1:] if argv is None else argv
    try:
        settings = load_settings(argv[0])
        run(settings, quiet="--quiet" in argv[1:] or os.environ.get("RANK", "0") != "0")
    except R1Error as exc:
        print_error(exc)
        sys.exit(1)
