"""What the training commands (`grpo`, `sft`) share: running here or launching ranks, the progress bar, the summary.

Each command keeps its own flags; the settings class says how its figures read
(`progress`, `stats`). These helpers run its `train` in this process under a progress bar on
stderr, or N ranks under `accelerate launch` (r1cli.training.base.launch).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

import typer

from r1cli.cli._common import progress_bar, summary


def opt(kind: Any, *names: str, help: str, **kw: Any) -> Any:  # noqa: A002
    """An option that may be left out (None: the recipe's value, else r1's or TRL's default)."""
    return Annotated[kind | None, typer.Option(*names, help=help, **kw)]


# The flags every training command shares (`r1 distill` forwards them to its student): one spelling and help.
RunDirOpt = opt(str, "--output", "-o", help="Run folder: final model + tokenizer, checkpoints, metrics.jsonl, r1_config.json.")
MaxStepsOpt = opt(int, "--max-steps", help="Optimisation steps (overrides --epochs).")
GradAccumOpt = opt(int, "--grad-accum", min=1, help="Gradient accumulation steps.")
TrainSeedOpt = opt(int, "--seed", help="Random seed (TRL default 42).")
LoraOpt = opt(str, "--lora", metavar="R[,ALPHA]", help="Train a LoRA adapter of rank R (alpha default 2R) with PEFT; the merged model is saved.")
TrainResumeOpt = Annotated[bool, typer.Option("--resume", help="Continue from the last checkpoint in -o, same step count and data order. Settings that differ from the run's r1_config.json are refused, except the run's length (--max-steps, --epochs), its save/log/eval cadence and --num-processes.")]
NumProcessesOpt = Annotated[int, typer.Option("--num-processes", min=1, help="Training processes, started with `accelerate launch` (gloo on CPU).")]
EvalDataOpt = opt(str, "--eval-data", help="Held-out prompt records scored like r1 eval every --eval-every steps (eval/… in metrics.jsonl).")
EvalEveryOpt = opt(int, "--eval-every", min=1, help="Evaluate on --eval-data every N optimisation steps.")
EvalSamplesOpt = opt(int, "--eval-samples", min=1, help="Samples per held-out prompt (pass@1 over K, cons@K; default 4).")
SaveBestOpt = opt(str, "--save-best", metavar="METRIC", help="Keep the weights with the best held-out METRIC (pass@1, cons@K, format) in OUTPUT/best/.")
SaveStepsOpt = opt(int, "--save-steps", min=1, help="Write a checkpoint every N steps (default 50).")
SaveTotalLimitOpt = opt(int, "--save-total-limit", min=1, help="Checkpoints kept, oldest deleted first (default 2; each holds the optimizer state).")


def run_flags(*, resume: bool = False, num_processes: int = 1, **values: Any) -> dict[str, Any]:
    """The settings the training flags give (None = not given, so the recipe or r1's default holds)."""
    return {**values, "resume": resume or None, "num_processes": num_processes if num_processes > 1 else None}


def start(settings: Any, *, quiet: bool, **options: Any) -> None:
    """Run here, or with `--num-processes N` start N ranks (rank 0 prints progress and summary)."""
    if settings.num_processes > 1:
        from r1cli.training.base import launch

        code = launch(settings, quiet=quiet)
        if code:
            raise typer.Exit(code)
        return
    run(settings, quiet=quiet, **options)


def run(settings: Any, *, quiet: bool, label: str | None = None, **options: Any) -> Any:
    """Train in this process with a progress bar on stderr, then print the summary line."""
    result = train_here(label or settings.TRAINER, type(settings).train, settings, quiet=quiet,
                        stats=settings.stats, **options)
    report(result, settings.stats(settings.progress(result.last)), quiet=quiet)
    return result


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
    from r1cli.training.base import summary_line

    summary(summary_line(result, stats), quiet=quiet)
