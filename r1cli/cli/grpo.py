"""`r1 grpo`: reinforcement learning with GRPO (TRL's GRPOTrainer) and r1's rewards."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from r1cli.cli import _train
from r1cli.cli._common import (
    AnswerFieldOpt, ExtractAnswerOpt, ModelOpt, PrefillOpt, PromptFieldOpt, QuietOpt, RewardArgOpt, RewardOpt, SplitOpt,
    SystemOpt, TemplateOpt, reward_params,
)
from r1cli.cli._train import report, start, train_here


def _opt(kind: Any, *names: str, help: str, **kw: Any) -> Any:  # noqa: A002
    return Annotated[kind | None, typer.Option(*names, help=help, **kw)]


DataOpt = _opt(str, "--data", "-d", help="Prompt records: a .jsonl/.json/.parquet file, '-' (stdin, the default) or a HF dataset name.")
RunDirOpt = _opt(str, "--output", "-o", help="Run folder: final model + tokenizer, checkpoints, metrics.jsonl, r1_config.json.")
ConfigOpt = _opt(str, "--config", "-c", help="YAML recipe: GRPOConfig fields, and r1 settings under 'r1:'. Flags override it.")


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
    max_steps: _opt(int, "--max-steps", help="Optimisation steps (overrides --epochs).") = None,
    epochs: _opt(float, "--epochs", help="Passes over the prompts (TRL default 3).") = None,
    batch_size: _opt(int, "--batch-size", min=1, help="Completions per process per micro-step (TRL's per_device_train_batch_size); prompts per step = batch × grad-accum × processes / generations.") = None,
    grad_accum: _opt(int, "--grad-accum", min=1, help="Gradient accumulation steps.") = None,
    seed: _opt(int, "--seed", help="Random seed (TRL default 42).") = None,
    dynamic_sampling: _opt(bool, "--dynamic-sampling/--no-dynamic-sampling", help="DAPO: drop groups whose rewards are all equal and sample more prompts to refill the batch.") = None,
    lora: _opt(str, "--lora", metavar="R[,ALPHA]", help="Train a LoRA adapter of rank R (alpha default 2R) with PEFT; the merged model is saved.") = None,
    use_vllm: _opt(bool, "--use-vllm/--no-vllm", help="Generate with vLLM (GPU only; needs r1cli's vllm extra).") = None,
    vllm_mode: _opt(str, "--vllm-mode", help="colocate (same GPU) or server (trl vllm-serve); GPU only.") = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue from the last checkpoint in -o, same step count and data order.")] = False,
    num_processes: Annotated[int, typer.Option("--num-processes", min=1, help="Training processes, started with `accelerate launch` (gloo on CPU).")] = 1,
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
    from r1cli.training.grpo import GRPOSettings, launch

    specs = list(reward) if reward else None
    names = [s.partition(":")[0].strip() for s in specs or ["accuracy", "format"]]
    flags = {
        "model": model, "data": data,
        "reward": tuple(specs) if specs else None,
        "reward_params": reward_params(reward_arg or [], None, names) or None,
        "template": template, "system": system, "prefill": prefill, "split": split, "prompt_field": prompt_field,
        "answer_field": answer_field, "extract_answer": extract_answer, "dynamic_sampling": dynamic_sampling,
        "lora": lora, "resume": resume or None, "num_processes": num_processes if num_processes > 1 else None,
        "output": output, "num_generations": num_generations, "max_completion_length": max_completion_length,
        "temperature": temperature, "learning_rate": learning_rate, "beta": beta, "loss": loss, "epsilon": epsilon,
        "epsilon_high": epsilon_high, "max_steps": max_steps, "epochs": epochs, "batch_size": batch_size,
        "grad_accum": grad_accum, "seed": seed, "use_vllm": use_vllm, "vllm_mode": vllm_mode,
    }
    settings = GRPOSettings.build(flags, config)
    start(settings, launch=launch, run=run, quiet=quiet)


def run(settings: Any, *, quiet: bool) -> None:
    """Train in this process with a progress bar on stderr, then print the summary line."""
    from r1cli.training.grpo import train

    result = train_here("grpo", train, settings, quiet=quiet, stats=_stats)
    report(result, _stats(result.last, trl_names=True), quiet=quiet)


def _stats(values: dict[str, Any], *, trl_names: bool = False) -> str:
    keys = ({"reward": "reward", "accuracy": "rewards/accuracy/mean", "length": "completions/mean_length"}
            if trl_names else {"reward": "reward", "accuracy": "accuracy", "length": "length"})
    parts = []
    for label, key in keys.items():
        value = values.get(key)
        if isinstance(value, (int, float)):
            parts.append(f"{label} {value:.3g}" if label != "length" else f"{label} {value:.0f}")
    return ", ".join(parts)


def worker_main(argv: list[str] | None = None) -> None:
    """Entry point of each rank under `accelerate launch` (`python -m r1cli.cli.grpo CONFIG`)."""
    from r1cli.training.grpo import worker_settings

    _train.worker_main(worker_settings, run, argv)


if __name__ == "__main__":
    worker_main()
