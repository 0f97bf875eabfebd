"""`r1 report`: training curves and evaluation tables, as PNGs and markdown."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from r1cli.cli._common import QuietOpt, err, summary


def report_cmd(
    paths: Annotated[list[str], typer.Argument(metavar="RUN", help="Run folders (r1 grpo -o, r1 eval -o), metrics.jsonl or results.json files.")],
    output: Annotated[str | None, typer.Option("--output", "-o", metavar="DIR", help="Write the PNGs and report.md here (without it: the tables only).")] = None,
    smooth: Annotated[float, typer.Option("--smooth", min=0.0, max=0.99, help="EMA weight of the training curves (0 = raw; the raw curve is drawn faint).")] = 0.6,
    metric: Annotated[str, typer.Option("--metric", help="What the evaluation bar chart shows: pass@1 (with its 95% interval), cons@n, pass@K, format, …")] = "pass@1",
    quiet: QuietOpt = False,
) -> None:
    """Plot training runs and compare evaluations: PNGs in -o DIR, markdown tables on stdout.

    From metrics.jsonl: total and per-reward reward, accuracy, response length and KL against
    step, smoothed, runs overlaid. From results.json: a table of every benchmark × run and a
    bar chart.

    \b
        r1 report runs/zero runs/dapo -o plots/
        r1 report evals/base/results.json evals/zero/results.json -o plots/ > comparison.md
    """
    from r1cli.report import load_inputs, report
    from r1cli.report_thinking import protocol_warnings

    text, written = report(paths, Path(output) if output else None, smooth=smooth, metric=metric)
    for line in protocol_warnings(load_inputs(paths)[1]):
        err.print(f"warning: {line}", markup=False, highlight=False, soft_wrap=True)
    typer.echo(text, nl=False)
    if written:
        summary(f"wrote {len(written)} files to {output}: {', '.join(p.name for p in written)}", quiet=quiet)
