"""`r1 rollout`: sample completions for prompt records."""

from __future__ import annotations

from typing import Annotated

import typer

from r1cli.cli._common import (
    AnswerFieldOpt, ExtractAnswerOpt, InputArg, ModelOpt, OutputOpt, PromptFieldOpt, QuietOpt, ResumeOpt, SeedOpt,
    SkipInvalidOpt, SplitOpt, SystemOpt, TemplateOpt, PrefillOpt, input_total, progress_bar, summary, warn,
)
from r1cli.cli._engine import EngineArg, build_engine, with_engine_options

SamplesOpt = Annotated[int, typer.Option("--samples", "-n", min=1, help="Completions per prompt.")]
MaxNewTokensOpt = Annotated[int, typer.Option("--max-new-tokens", min=1, help="Most tokens per completion.")]
TemperatureOpt = Annotated[float, typer.Option("--temperature", min=0.0, help="Sampling temperature (0 = greedy).")]
TopPOpt = Annotated[float, typer.Option("--top-p", min=0.0, max=1.0, help="Nucleus sampling mass.")]
TopKOpt = Annotated[int, typer.Option("--top-k", min=0, help="Sample among the k likeliest tokens (0 = off).")]
ThinkBudgetOpt = Annotated[
    int | None,
    typer.Option("--think-budget", min=1, metavar="N",
                 help="Budget forcing: after N tokens inside <think> the engine closes it (</think> and the answer "
                      "opening of the template) and the answer follows within --max-new-tokens."),
]
AnswerBudgetOpt = Annotated[
    int | None,
    typer.Option("--answer-budget", min=1, metavar="N",
                 help="At most N tokens after the think block (forced or not); the completion then ends as "
                      "'length'. With a budget sweep, each budget's answer gets its own N."),
]
MinThinkOpt = Annotated[
    int | None,
    typer.Option("--min-think", min=1, metavar="M",
                 help="Replace a </think> that comes before M think tokens by 'Wait' and let the model continue."),
]


@with_engine_options(aliases={"--batch-size": "batch_size"})
def rollout_cmd(
    path: InputArg = "-",
    model: ModelOpt = None,  # type: ignore[assignment]  # None: smollm2-135m, or the served model (openai)
    samples: SamplesOpt = 4,
    max_new_tokens: MaxNewTokensOpt = 512,
    temperature: TemperatureOpt = 0.6,
    top_p: TopPOpt = 0.95,
    top_k: TopKOpt = 0,
    seed: SeedOpt = 0,
    template: TemplateOpt = None,
    system: SystemOpt = None,
    prefill: PrefillOpt = None,
    stop: Annotated[list[str] | None, typer.Option("--stop", help="Stop at this string (repeatable).")] = None,
    think_budget: ThinkBudgetOpt = None,
    min_think: MinThinkOpt = None,
    answer_budget: AnswerBudgetOpt = None,
    engine: EngineArg = "hf",  # type: ignore[assignment]  # --engine and its options: an EngineChoice
    split: SplitOpt = None,
    prompt_field: PromptFieldOpt = None,
    answer_field: AnswerFieldOpt = None,
    extract_answer: ExtractAnswerOpt = None,
    skip_invalid: SkipInvalidOpt = False,
    output: OutputOpt = "-",
    resume: ResumeOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Sample completions: one record per completion, a prompt's samples together.

    \b
        r1 data arithmetic -n 8 | r1 rollout -m smollm2-135m -n 4 > rollouts.jsonl
        r1 rollout prompts.jsonl -m Qwen/Qwen2.5-0.5B-Instruct -n 16 --template r1-zero -o out.jsonl --resume
        r1 rollout prompts.jsonl --engine openai --base-url http://127.0.0.1:8000/v1 --concurrency 64 -n 16 -o out.jsonl
    """
    from r1cli.engines import SamplingParams
    from r1cli.pipeline.stages import RolloutJob, Source, rollout_file

    if resume and output == "-":
        raise typer.BadParameter("--resume needs -o FILE (records already there are kept)", param_hint="--resume")
    try:
        params = SamplingParams(n=samples, max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p,
                                top_k=top_k, seed=seed, stop=tuple(stop or ()), think_budget=think_budget,
                                min_think=min_think, answer_budget=answer_budget)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    job = RolloutJob(model=model, engine=engine, sampling=params, template=template, system=system, prefill=prefill,
                     prompt_field=prompt_field, answer_field=answer_field, extract_answer=extract_answer)
    total = input_total(path)
    result = rollout_file(
        Source(path=path, split=split, skip_invalid=skip_invalid), output, job, resume=resume, warn=warn,
        make_engine=lambda: build_engine(engine, model),
        progress=lambda done: progress_bar("rollout", total=None if total is None else max(total - done, 0),
                                           quiet=quiet, fields="{task.fields[speed]}", speed=""))
    stats, clock = result.stats, result.clock
    resumed = f", {stats.skipped:,} prompts already done" if stats.skipped else ""
    resumed += f", {result.retries:,} requests retried" if result.retries else ""
    resumed += f", {len(result.invalid):,} invalid lines skipped" if result.invalid else ""
    summary(f"generated {stats.completions:,} completions for {stats.prompts:,} prompts "
            f"({stats.tokens:,} tokens, {stats.tokens / clock.busy:,.1f} tok/s, "
            f"{stats.truncated:,} truncated{resumed}{clock.waited()})", quiet=quiet)
