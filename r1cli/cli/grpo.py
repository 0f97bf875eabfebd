"""`r1 grpo`: reinforcement learning with GRPO (TRL's GRPOTrainer) and r1's rewards."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from r1cli.cli import _train
from r1cli.cli._common import (
    AnswerFieldOpt, ExtractAnswerOpt, ModelOpt, PrefillOpt, PromptFieldOpt, QuietOpt, RewardArgOpt, RewardOpt, SplitOpt,
    SystemOpt, TemplateOpt, reward_params,
)
from r1cli.cli._engine import EngineArg, with_engine_options
from r1cli.cli._train import (
    EvalDataOpt, EvalEveryOpt, EvalSamplesOpt, GradAccumOpt, LoraOpt, MaxStepsOpt, NumProcessesOpt, RunDirOpt,
    SaveBestOpt, SaveStepsOpt, SaveTotalLimitOpt, TrainResumeOpt, TrainSeedOpt,
)
from r1cli.cli._train import opt as _opt

DataOpt = _opt(str, "--data", "-d", help="Prompt records: a .jsonl/.json/.parquet file, '-' (stdin, the default) or a HF dataset name.")
ConfigOpt = _opt(str, "--config", "-c", help="YAML recipe: GRPOConfig fields, and r1 settings under 'r1:'. Flags override it.")


@with_engine_options(engines=("hf",), prefix="r1 generation: ")  # the hf engine's --engine-batch-size, --dtype
def grpo_cmd(
    model: ModelOpt = None,  # type: ignore[assignment]  # None: the recipe's, else smollm2-135m
    data: DataOpt = None,
    reward: RewardOpt = None,
    reward_arg: RewardArgOpt = None,
    template: TemplateOpt = None,
    system: SystemOpt = None,
    prefill: PrefillOpt = None,
    output: RunDirOpt = None,
    config: ConfigOpt = None,
    num_generations: _opt(int, "--num-generations", "-n", min=2, help="Completions per prompt (the group).") = None,
    max_completion_length: _opt(int, "--max-completion-length", min=1, help="Most tokens per completion.") = None,
    temperature: _opt(float, "--temperature", min=0.0, help="Sampling temperature.") = None,
    learning_rate: _opt(float, "--learning-rate", "--lr", help="Peak learning rate (TRL default 1e-6).") = None,
    beta: _opt(float, "--beta", min=0.0, help="KL coefficient against the reference model (k3 estimator), default 0.001 as in R1; 0 = no reference model.") = None,
    loss: _opt(str, "--loss", help="TRL loss_type: grpo, dr_grpo, dapo, bnpo, cispo, sapo, … (TRL default dapo).") = None,
    epsilon: _opt(float, "--epsilon", help="Lower clip range of the ratio (TRL default 0.2).") = None,
    epsilon_high: _opt(float, "--epsilon-high", help="Upper clip range (DAPO clip-higher: 0.28); default = --epsilon.") = None,
    max_steps: MaxStepsOpt = None,
    epochs: _opt(float, "--epochs", help="Passes over the prompts (TRL default 3).") = None,
    batch_size: _opt(int, "--batch-size", min=1, help="Completions per process per micro-step (TRL's per_device_train_batch_size); prompts per step = batch × grad-accum × processes / generations.") = None,
    grad_accum: GradAccumOpt = None,
    seed: TrainSeedOpt = None,
    dynamic_sampling: _opt(bool, "--dynamic-sampling/--no-dynamic-sampling", help="DAPO: drop groups whose rewards are all equal and sample more prompts to refill the batch.") = None,
    shared_prefix: _opt(bool, "--shared-prefix/--no-shared-prefix", help="Compute each group's prompt once in the training forwards (same log-probs; off: one row per completion, as TRL).") = None,
    lora: LoraOpt = None,
    use_vllm: _opt(bool, "--use-vllm/--no-vllm", help="Generate with vLLM (GPU only; needs r1cli's vllm extra).") = None,
    vllm_mode: _opt(str, "--vllm-mode", help="colocate (same GPU) or server (trl vllm-serve); GPU only.") = None,
    generation: _opt(str, "--generation", help="Who generates: r1 (r1's hf engine on the policy, the default) or trl (TRL's own; also with --use-vllm).") = None,
    engine: EngineArg = "hf",  # type: ignore[assignment]  # r1 generation's engine options
    think_budget: _opt(int, "--think-budget", min=1, metavar="N", help="Budget forcing in r1 generation: close the think block after N tokens (</think> and the template's answer opening).") = None,
    answer_budget: _opt(int, "--answer-budget", min=1, metavar="N", help="r1 generation: end a completion N tokens after its think block (finish 'length').") = None,
    stop: Annotated[list[str] | None, typer.Option("--stop", help="End a completion at this string, as in r1 rollout (repeatable; r1 generation).")] = None,
    importance_sampling_level: _opt(str, "--importance-sampling-level", help="token, or sequence = GSPO: one importance ratio per sequence.") = None,
    scale_rewards: _opt(str, "--scale-rewards", help="Advantage scaling: group std (TRL default), batch std, or none (Dr. GRPO).") = None,
    mask_truncated: _opt(bool, "--mask-truncated/--no-mask-truncated", help="DAPO: leave completions cut at the length limit out of the loss.") = None,
    top_entropy_quantile: _opt(float, "--top-entropy-quantile", min=0.0, max=1.0, help="Train only on the tokens above this entropy quantile (0.2 = top 20%; 1 = all).") = None,
    entropy_coef: _opt(float, "--entropy-coef", help="Entropy bonus weight in the loss (0 = off).") = None,
    multi_objective_aggregation: _opt(str, "--multi-objective-aggregation", help="sum_then_normalize (default) or normalize_then_sum (GDPO: normalise each reward first).") = None,
    vllm_importance_sampling_correction: _opt(bool, "--vllm-importance-sampling-correction/--no-vllm-importance-sampling-correction", help="Correct for vLLM's sampling log-probs differing from the trainer's (vLLM only).") = None,
    vllm_importance_sampling_mode: _opt(str, "--vllm-importance-sampling-mode", help="token_truncate, token_mask, sequence_truncate or sequence_mask (TRL default): how that correction is applied.") = None,
    vllm_importance_sampling_clip_max: _opt(float, "--vllm-importance-sampling-clip-max", help="Upper bound of the correction's ratio (TRL default 3).") = None,
    vllm_importance_sampling_clip_min: _opt(float, "--vllm-importance-sampling-clip-min", help="Lower bound of the correction's ratio.") = None,
    eval_data: EvalDataOpt = None,
    eval_every: EvalEveryOpt = None,
    eval_samples: EvalSamplesOpt = None,
    save_best: SaveBestOpt = None,
    save_steps: SaveStepsOpt = None,
    save_total_limit: SaveTotalLimitOpt = None,
    resume: TrainResumeOpt = False,
    num_processes: NumProcessesOpt = 1,
    split: SplitOpt = None,
    prompt_field: PromptFieldOpt = None,
    answer_field: AnswerFieldOpt = None,
    extract_answer: ExtractAnswerOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Train a policy with GRPO on prompt records, scored by r1's rewards (same names as `r1 score`).

    \b
        r1 data arithmetic -n 512 | r1 grpo -m smollm2-135m -r accuracy -r format --template r1-zero -o runs/zero
        r1 grpo --data prompts.jsonl -c examples/recipes/dapo.yaml -o runs/dapo --resume
        r1 grpo --data prompts.jsonl -m tiny --max-steps 2 --num-processes 2 -o runs/ddp
    """
    from r1cli.training.grpo import GRPOSettings

    specs = list(reward) if reward else None
    names = [s.partition(":")[0].strip() for s in specs or ["accuracy", "format"]]
    flags = {
        "model": model, "data": data,
        "reward": tuple(specs) if specs else None,
        "reward_params": reward_params(reward_arg or [], None, names) or None,
        "template": template, "system": system, "prefill": prefill, "split": split, "prompt_field": prompt_field,
        "answer_field": answer_field, "extract_answer": extract_answer, "dynamic_sampling": dynamic_sampling,
        "shared_prefix": shared_prefix,
        "lora": lora, "output": output, "num_generations": num_generations, "max_completion_length": max_completion_length,
        "temperature": temperature, "learning_rate": learning_rate, "beta": beta, "loss": loss, "epsilon": epsilon,
        "epsilon_high": epsilon_high, "max_steps": max_steps, "epochs": epochs, "batch_size": batch_size,
        "grad_accum": grad_accum, "seed": seed, "use_vllm": use_vllm, "vllm_mode": vllm_mode,
        "generation": generation, "stop": tuple(stop) if stop else None, "think_budget": think_budget,
        "answer_budget": answer_budget,
        "generation_options": engine.given() or None,
        "importance_sampling_level": importance_sampling_level, "scale_rewards": scale_rewards,
        "mask_truncated": mask_truncated, "top_entropy_quantile": top_entropy_quantile, "entropy_coef": entropy_coef,
        "multi_objective_aggregation": multi_objective_aggregation,
        "vllm_importance_sampling_correction": vllm_importance_sampling_correction,
        "vllm_importance_sampling_mode": vllm_importance_sampling_mode,
        "vllm_importance_sampling_clip_max": vllm_importance_sampling_clip_max,
        "vllm_importance_sampling_clip_min": vllm_importance_sampling_clip_min,
        "eval_data": eval_data, "eval_every": eval_every, "eval_samples": eval_samples, "save_best": save_best,
        "save_steps": save_steps, "save_total_limit": save_total_limit,
    }
    settings = GRPOSettings.build(_train.run_flags(**flags, resume=resume, num_processes=num_processes), config)
    _train.start(settings, quiet=quiet, warn=_train.warn)


def run(settings: Any, *, quiet: bool) -> None:
    """Train in this process with a progress bar on stderr, then print the summary line."""
    _train.run(settings, quiet=quiet, warn=_train.warn)
