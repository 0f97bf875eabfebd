"""One rank of a launched training run: `python -m r1cli.training.worker LAUNCH_FILE [--quiet]`.

`r1cli.training.base.launch` writes the launch file (which trainer, the rank's settings, the
run's record) and starts N of these under `accelerate launch`. Rank 0 draws the progress bar on
stderr (when it is a terminal and --quiet is not given) and prints the summary line; an R1Error
is printed as `Error: …` / `Hint: …` and exits 1. Nothing here imports the CLI.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


def main(argv: list[str] | None = None) -> int:
    from r1cli import log
    from r1cli.errors import R1Error
    from r1cli.training import base

    log.setup()  # library warnings and log lines off stderr, as in the CLI's own process
    argv = sys.argv[1:] if argv is None else argv
    if not argv:
        print("usage: python -m r1cli.training.worker LAUNCH_FILE [--quiet] (under accelerate launch; "
              "r1 grpo/sft --num-processes N write the file)", file=sys.stderr)
        return 2
    quiet = "--quiet" in argv[1:] or os.environ.get("RANK", "0") != "0"
    try:
        settings, record = base.read_launch(argv[0])
        with _progress(settings.TRAINER, settings.stats, quiet=quiet) as update:
            result = settings.train(progress=update, record=record)
    except R1Error as exc:
        print(f"Error: {exc.message}", file=sys.stderr)
        if exc.hint:
            print(f"Hint: {exc.hint}", file=sys.stderr)
        return 1
    if not quiet:
        print(base.summary_line(result, settings.stats(settings.progress(result.last))), file=sys.stderr)
    return 0


@contextmanager
def _progress(label: str, stats: Any, *, quiet: bool) -> Iterator[Any]:
    """`update(step=, total=, **values)` drawing a bar on stderr, or doing nothing off a terminal."""
    if quiet or not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TextColumn("{task.fields[stats]}"))
    with Progress(*columns, console=Console(stderr=True, highlight=False)) as bar:
        task = bar.add_task(label, total=None, stats="")

        def update(step: int, total: int, **values: Any) -> None:
            bar.update(task, total=total if total and total > 0 else None, completed=step, stats=stats(values))

        yield update


if __name__ == "__main__":
    sys.exit(main())
