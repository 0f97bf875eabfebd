"""`r1 distill`: teacher rollouts → score → reject-sample → fine-tune the student, resumable stage by stage."""

from __future__ import annotations

from typing import Annotated

import typer

from r1cli.cli import reject_sample as rs
from r1cli.cli._common import (
    AnswerFieldOpt, ExtractAnswerOpt, PrefillOpt, PromptFieldOpt, QuietOpt, RewardArgOpt, RewardOpt, SplitOpt,
    SystemOpt, TemplateOpt, complete_model, progress_bar, reward_params, summary,
)
from r1cli.cli._engine import EngineArg, build_engine, with_engine_options
from r1cli.cli.rollout import (
    AnswerBudgetOpt, MaxNewTokensOpt, SamplesOpt, TemperatureOpt, ThinkBudgetOpt, TopKOpt, TopPOpt,
)
from r1cli.cli.score import TimeoutOpt, WorkersOpt
from r1cli.cli.sft import (
    BatchSizeOpt, ConfigOpt, EpochsOpt, GradAccumOpt, LearningRateOpt, LoraOpt, MaxLengthOpt, MaxStepsOpt,
    NumProcessesOpt, PackingOpt,
)

TeacherOpt = Annotated[str, typer.Option("--teacher", autocompletion=complete_model, help="Model that writes the samples: hub id, local folder, or alias.")]
StudentOpt = Annotated[str, typer.Option("--student", autocompletion=complete_model, help="Model to train on the kept samples: hub id, local folder, or alias.")]
PromptsOpt = Annotated[str, typer.Option("--data", "-d", help="Prompt records: a .jsonl/.json/.parquet file, '-' (stdin) or a HF dataset name.")]
FolderOpt = Annotated[str, typer.Option("--output", "-o", help="Folder for every stage: rollouts.jsonl, scored.jsonl, selected.jsonl, student/.")]
MethodOpt = Annotated[str, typer.Option("--method", help="sft: fine-tune on the kept samples (R1's distillation); gkd: TRL's GKDTrainer, logit distillation on them and on the student's own samples; on-policy: the student samples the prompts and learns the teacher's distributions on them (reverse KL; TRL's DistillationTrainer). gkd and on-policy need a shared tokenizer.")]
DistillSeedOpt = Annotated[int | None, typer.Option("--seed", help="Random seed of the rollouts (default 0) and of the student's training (default: the recipe's, else TRL's 42).")]


@with_engine_options(aliases={"--rollout-batch-size": "batch_size"})  # the teacher's engine
def distill_cmd(
    teacher: TeacherOpt,
    student: StudentOpt,
    output: FolderOpt,
    data: PromptsOpt = "-",
    method: MethodOpt = "sft",
    samples: SamplesOpt = 4,
    max_new_tokens: MaxNewTokensOpt = 512,
    temperature: TemperatureOpt = 0.6,
    top_p: TopPOpt = 0.95,
    top_k: TopKOpt = 0,
    think_budget: ThinkBudgetOpt = None,
    answer_budget: AnswerBudgetOpt = None,
    seed: DistillSeedOpt = None,
    template: TemplateOpt = None,
    system: SystemOpt = None,
    prefill: PrefillOpt = None,
    engine: EngineArg = "hf",  # type: ignore[assignment]  # --engine and its options: an EngineChoice
    reward: RewardOpt = None,
    reward_arg: RewardArgOpt = None,
    workers: WorkersOpt = None,
    timeout: TimeoutOpt = None,
    correct_only: rs.CorrectOnlyOpt = rs.DEFAULTS.correct_only,
    min_reward: rs.MinRewardOpt = rs.DEFAULTS.min_reward,
    language: rs.TargetLanguageOpt = rs.DEFAULTS.language,
    min_language: rs.MinLanguageOpt = rs.DEFAULTS.min_language,
    max_tokens: rs.MaxTokensOpt = rs.DEFAULTS.max_tokens,
    drop_truncated: rs.DropTruncatedOpt = rs.DEFAULTS.drop_truncated,
    max_mixed: rs.MaxMixedOpt = rs.DEFAULTS.max_mixed if rs.DEFAULTS.max_mixed is not None else 1.0,
    max_paragraph_words: rs.MaxParagraphWordsOpt = rs.DEFAULTS.max_paragraph_words or 0,
    drop_code_blocks: rs.DropCodeBlocksOpt = rs.DEFAULTS.drop_code_blocks,
    dedup: rs.DedupOpt = rs.DEFAULTS.dedup,
    near_threshold: rs.NearThresholdOpt = rs.DEFAULTS.near_threshold,
    max_per_prompt: rs.MaxPerPromptOpt = rs.DEFAULTS.max_per_prompt,
    keep_think: rs.KeepThinkOpt = rs.DEFAULTS.keep_think,
    format: rs.FormatOpt = rs.DEFAULTS.format,
    config: ConfigOpt = None,
    epochs: EpochsOpt = None,
    learning_rate: LearningRateOpt = None,
    max_length: MaxLengthOpt = None,
    packing: PackingOpt = None,
    max_steps: MaxStepsOpt = None,
    batch_size: BatchSizeOpt = None,
    grad_accum: GradAccumOpt = None,
    lora: LoraOpt = None,
    num_processes: NumProcessesOpt = 1,
    split: SplitOpt = None,
    prompt_field: PromptFieldOpt = None,
    answer_field: AnswerFieldOpt = None,
    extract_answer: ExtractAnswerOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Distill a teacher into a student (R1 §2.4): sample, score, keep the good samples, fine-tune.

    One command for `r1 rollout | r1 score | r1 reject-sample` then `r1 sft`, keeping each
    stage's output in -o FOLDER. Rerun the same command after an interruption: finished stages
    are skipped, a partial one continues. Options as in those commands; the training options
    (and -c recipe.yaml) apply to the student.

    \b
        r1 distill --teacher runs/grpo --student smollm2-135m --data prompts.jsonl -n 8 -o runs/distill
        r1 distill --teacher Qwen/Qwen2.5-7B-Instruct --student Qwen/Qwen2.5-0.5B-Instruct --data prompts.jsonl -o out --method gkd -c gkd.yaml
        r1 distill --teacher tiny --student ./student --data prompts.jsonl -o out --no-correct-only --max-steps 3
    """
    if method == "on-policy":
        unused = {"--think-budget": think_budget, "--answer-budget": answer_budget, "--lora": lora,
                  "--packing": packing, "--max-length": max_length,
                  "--num-processes": num_processes if num_processes > 1 else None}
        _on_policy(teacher=teacher, student=student, output=output, data=data, template=template, system=system,
                   prefill=prefill, split=split, prompt_field=prompt_field, config=config, quiet=quiet,
                   unused=[flag for flag, value in unused.items() if value],
                   flags={"epochs": epochs, "learning_rate": learning_rate, "max_steps": max_steps,
                          "batch_size": batch_size, "grad_accum": grad_accum, "seed": seed,
                          "max_completion_length": max_new_tokens, "temperature": temperature})
        return
    from r1cli.cli._common import warn
    from r1cli.engines import SamplingParams
    from r1cli.pipeline.distill import DistillSettings, distill

    policy = rs.policy_from_options(**{name: value for name, value in locals().items() if name in rs.POLICY_OPTIONS})
    specs = list(reward or ["accuracy", "format"])
    names = [s.partition(":")[0].strip() for s in specs]
    try:
        sampling = SamplingParams(n=samples, max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p,
                                  top_k=top_k, seed=seed or 0, think_budget=think_budget,
                                  answer_budget=answer_budget)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    sft_flags = {"epochs": epochs, "learning_rate": learning_rate, "max_length": max_length, "packing": packing,
                 "max_steps": max_steps, "batch_size": batch_size, "grad_accum": grad_accum, "seed": seed,
                 "lora": lora, "system": system, "num_processes": num_processes if num_processes > 1 else None}
    settings = DistillSettings.build(
        teacher=teacher, student=student, output=output, method=method, sft_flags=sft_flags, recipe=config,
        data=data, sampling=sampling, template=template, system=system, prefill=prefill, split=split, prompt_field=prompt_field,
        answer_field=answer_field, extract_answer=extract_answer, engine=engine, rewards=tuple(specs), policy=policy, score_workers=workers, score_timeout=timeout,
        reward_params=reward_params(reward_arg or [], language if "language" in names else None, names))
    result = distill(settings, make_engine=lambda: build_engine(engine, teacher), warn=warn,
                     progress=lambda name: progress_bar(name, total=None, quiet=quiet),
                     log=lambda line: summary(line, quiet=quiet))
    sums = result.summaries
    done = [name for name, how in result.ran.items() if how == "skipped"]
    skipped = f"; {', '.join(done)} done before" if done else ""
    summary(f"distilled {teacher} into {student} in {result.seconds:,.1f} s: {sums['rollout'].get('prompts', 0):,} "
            f"prompts, {sums['rollout'].get('completions', 0):,} samples, {sums['select'].get('records_kept', 0):,} "
            f"kept, {sums['train'].get('steps', 0):,} training steps{skipped}; student saved to "
            f"{result.output_dir / 'student'}", quiet=quiet)


def _on_policy(*, teacher: str, student: str, output: str, flags: dict, config: str | None, quiet: bool,
               unused: list[str], **own: object) -> None:
    """`--method on-policy`: no rollout, score or select stage; the student trains on the prompts in OUTPUT/student."""
    from pathlib import Path

    from r1cli.cli._train import report, train_here
    from r1cli.errors import R1Error
    from r1cli.training.onpolicy import OnPolicySettings, train

    if unused:
        raise R1Error(f"{', '.join(unused)} do not apply to --method on-policy", hint="drop them")
    settings = OnPolicySettings.build({**flags, **own, "model": student, "teacher": teacher,
                                       "output": str(Path(output) / "student")}, config)
    result = train_here("on-policy", train, settings, quiet=quiet,
                        stats=lambda v: f"loss {v['loss']:.3g}" if isinstance(v.get("loss"), float) else "")
    loss = result.last.get("loss")
    report(result, f"reverse-KL loss {loss:.3g}" if isinstance(loss, float) and settings.trl.get("beta") == 1.0
           else (f"loss {loss:.3g}" if isinstance(loss, float) else ""), quiet=quiet)
