"""`r1 score`: attach rewards to completion records."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from r1cli.cli._common import (
    InputArg, OutputOpt, QuietOpt, ResumeOpt, RewardArgOpt, RewardOpt, SkipInvalidOpt, SplitOpt, input_total,
    progress_bar, reward_params, summary, warn,
)

DEFAULT_REWARDS = ("accuracy", "format")

LanguageOpt = Annotated[
    str | None,
    typer.Option("--language", metavar="CODE",
                 help="Target language of the language reward (en, zh, …; default: the prompt's language)."),
]
WorkersOpt = Annotated[
    int | None,
    typer.Option("--workers", min=0,
                 help="Worker processes (default: one per CPU). 0 scores in this process, without "
                      "--timeout: for debugging."),
]
TimeoutOpt = Annotated[
    float | None,
    typer.Option("--timeout", min=0.001, show_default=False,
                 help="Seconds a record's rewards may take (default: what their own limits add up to, e.g. "
                      "code.timeout_s per test). Past it the worker is killed: the reward it was in scores 0.0 "
                      "with a `score_error`, and the rewards after it get as long again."),
]

ListOpt = Annotated[bool, typer.Option("--list", help="List the rewards and their parameters, then exit.")]


def score_cmd(
    path: InputArg = "-",
    reward: RewardOpt = None,
    reward_arg: RewardArgOpt = None,
    language: LanguageOpt = None,
    workers: WorkersOpt = None,
    timeout: TimeoutOpt = None,
    skip_invalid: SkipInvalidOpt = False,
    list_rewards: ListOpt = False,
    split: SplitOpt = None,
    output: OutputOpt = "-",
    resume: ResumeOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Score completions: add `rewards`, `reward` (their weighted sum) and `pred` to every record.

    A reward that cannot be computed is null, never 0: a record without the field a reward needs
    (`answer` for accuracy on math) gets null for it, counted in the summary. A record without
    `completion` is an error. A reward that runs past the record's time budget (a hang) scores
    0.0, one that crashed null, each with a `score_error` note. Output order is input order.

    \b
        r1 rollout prompts.jsonl -n 16 | r1 score -r accuracy -r format:0.5 > scored.jsonl
        r1 score rollouts.jsonl -r accuracy -r language --language en -o scored.jsonl --resume
        r1 score --list
    """
    from r1cli import rewards
    from r1cli.pipeline.stages import ScoreJob, Source, score_file

    if list_rewards:
        _print_rewards(rewards.describe())
        return
    if resume and output == "-":
        raise typer.BadParameter("--resume needs -o FILE (records already there are kept)", param_hint="--resume")
    specs = tuple(reward or DEFAULT_REWARDS)
    params = reward_params(reward_arg or [], language, [rewards.parse_spec(s)[0] for s in specs])
    job = ScoreJob(rewards=specs, reward_params=params, workers=workers, timeout=timeout)
    fns = job.resolve()
    for fn in fns:  # e.g. the code reward running programs outside the namespace sandbox, as opted in
        if warning := getattr(fn.fn, "warning", None):
            warn(warning)
    total = input_total(path)
    result = score_file(Source(path=path, split=split, skip_invalid=skip_invalid), output, job, rewards=fns,
                        resume=resume, warn=warn, progress=lambda done: progress_bar(
                            "scoring", total=None if total is None else max(total - done, 0), quiet=quiet))
    stats = result.stats
    if stats.capped:
        warn(f"--timeout {timeout:g} s stopped {stats.capped:,} records before their rewards' own limits (they "
             "scored 0.0 there); drop --timeout to let those limits decide")
    for (field, name), count in sorted(stats.missing.items()):
        if field != "completion":
            warn(f"{count:,} records lack '{field}', which {name} needs: scored null")
    summary(_summary(stats, len(result.invalid), result.done, result.clock), quiet=quiet)


def _summary(stats: Any, skipped: int, resumed: int, clock: Any) -> str:
    parts = [f"{stats.unscorable:,} unscorable", f"{stats.timed_out:,} timed out"]
    if stats.failed:
        parts.append(f"{stats.failed:,} failed")
    if skipped:
        parts.append(f"{skipped:,} invalid lines skipped")
    if resumed:
        parts.append(f"{resumed:,} already done")
    rate = stats.records / clock.busy
    return (f"scored {stats.records:,} completions ({', '.join(parts)}) in {clock.elapsed:.1f} s"
            f"{clock.waited()} ({rate:,.0f}/s)")


def _print_rewards(described: list[dict[str, Any]]) -> None:
    """The reward table, on stdout: it is what --list was asked for."""
    from rich.console import Console
    from rich.table import Table

    table = Table(show_lines=False, pad_edge=False, box=None, header_style="bold")
    for column in ("reward", "parameters (default)", "needs", "from", "summary"):
        table.add_column(column, overflow="fold")
    for entry in described:
        params = "\n".join(f"{p['name']}: {p['type']} = {p['default']!r}" for p in entry["params"]) or "-"
        needs = entry["needs"]
        table.add_row(entry["name"], params, "per task" if needs is None else ", ".join(needs) or "-",
                      entry.get("from") or "-", entry["summary"])
    Console(highlight=False).print(table)
