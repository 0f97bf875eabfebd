"""`r1 rollout`: sample completions for prompt records."""

from __future__ import annotations

import itertools
import time
from typing import Annotated

import typer

from r1cli.cli._common import (
    AnswerFieldOpt, ExtractAnswerOpt, InputArg, ModelOpt, OutputOpt, PromptFieldOpt, QuietOpt, ResumeOpt, SeedOpt,
    SplitOpt, SystemOpt, TemplateOpt, progress_bar, summary,
)

SamplesOpt = Annotated[int, typer.Option("--samples", "-n", min=1, help="Completions per prompt.")]
MaxNewTokensOpt = Annotated[int, typer.Option("--max-new-tokens", min=1, help="Most tokens per completion.")]
TemperatureOpt = Annotated[float, typer.Option("--temperature", min=0.0, help="Sampling temperature (0 = greedy).")]
TopPOpt = Annotated[float, typer.Option("--top-p", min=0.0, max=1.0, help="Nucleus sampling mass.")]
TopKOpt = Annotated[int, typer.Option("--top-k", min=0, help="Sample among the k likeliest tokens (0 = off).")]
EngineOpt = Annotated[str, typer.Option("--engine", help="Inference engine: hf (transformers).")]


def rollout_cmd(
    path: InputArg = "-",
    model: ModelOpt = "smollm2-135m",
    samples: SamplesOpt = 4,
    max_new_tokens: MaxNewTokensOpt = 512,
    temperature: TemperatureOpt = 0.6,
    top_p: TopPOpt = 0.95,
    top_k: TopKOpt = 0,
    seed: SeedOpt = 0,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Sequences generated together.")] = 64,
    template: TemplateOpt = None,
    system: SystemOpt = None,
    stop: Annotated[list[str] | None, typer.Option("--stop", help="Stop at this string (repeatable).")] = None,
    engine: EngineOpt = "hf",
    dtype: Annotated[str | None, typer.Option("--dtype", help="float32, bfloat16 or float16 (default: bf16 on GPU and on CPUs with bf16 instructions, else fp32).")] = None,
    split: SplitOpt = None,
    prompt_field: PromptFieldOpt = None,
    answer_field: AnswerFieldOpt = None,
    extract_answer: ExtractAnswerOpt = None,
    output: OutputOpt = "-",
    resume: ResumeOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Sample completions: one record per completion, a prompt's samples together.

    \b
        r1 data arithmetic -n 8 | r1 rollout -m smollm2-135m -n 4 > rollouts.jsonl
        r1 rollout prompts.jsonl -m Qwen/Qwen2.5-0.5B-Instruct -n 16 --template r1-zero -o out.jsonl --resume
    """
    from r1cli.engines import SamplingParams, get_engine
    from r1cli.io import iter_records, open_output, prepare_prompts
    from r1cli.rollout import RolloutStats, rollout

    if resume and output == "-":
        raise typer.BadParameter("--resume needs -o FILE (records already there are kept)", param_hint="--resume")
    try:
        params = SamplingParams(n=samples, max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p,
                                top_k=top_k, seed=seed, stop=tuple(stop or ()))
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    located = prepare_prompts(iter_records(path, split=split), prompt_field=prompt_field,
                              answer_field=answer_field, extract=extract_answer)
    first = next(located, None)  # bad input fails here, before a model loads
    stats = RolloutStats()
    start = time.perf_counter()
    with open_output(output, resume=resume) as sink:
        done = sink.resume_groups(samples)
        if first is not None:
            eng = get_engine(engine, model, batch_size=batch_size, dtype=dtype)
            start = time.perf_counter()
            groups = rollout(itertools.chain([first], located), eng, params, template=template, system=system,
                             prompts_per_call=max(1, batch_size // samples), skip=done, stats=stats)
            with progress_bar("rollout", total=None, quiet=quiet, fields="{task.fields[speed]}",
                              speed="") as bar:
                for group in groups:
                    sink.write_many(group)
                    rate = stats.tokens / max(time.perf_counter() - start, 1e-9)
                    bar.update(advance=1, speed=f"{rate:,.1f} tok/s")
    elapsed = time.perf_counter() - start
    resumed = f", {stats.skipped:,} prompts already done" if stats.skipped else ""
    summary(f"generated {stats.completions:,} completions for {stats.prompts:,} prompts "
            f"({stats.tokens:,} tokens, {stats.tokens / max(elapsed, 1e-9):,.1f} tok/s, "
            f"{stats.truncated:,} truncated{resumed})", quiet=quiet)
