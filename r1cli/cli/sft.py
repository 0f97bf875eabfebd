"""`r1 sft`: supervised fine-tuning (TRL's SFTTrainer) on prompt–completion or messages records."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from r1cli.cli import _train
from r1cli.cli._common import ModelOpt, QuietOpt, SplitOpt, SystemOpt, TemplateOpt
from r1cli.cli._train import report, start, train_here


def _opt(kind: Any, *names: str, help: str, **kw: Any) -> Any:  # noqa: A002
    return Annotated[kind | None, typer.Option(*names, help=help, **kw)]


# The training flags `r1 distill` forwards to its student stage: one spelling and help text in both.
SFTDataOpt = _opt(str, "--data", "-d", help="SFT records (prompt + completion, or messages): a .jsonl/.json/.parquet file, '-' (stdin, the default) or a HF dataset name.")
RunDirOpt = _opt(str, "--output", "-o", help="Run folder: final model + tokenizer, checkpoints, metrics.jsonl, r1_config.json.")
ConfigOpt = _opt(str, "--config", "-c", help="YAML recipe: SFTConfig fields, and r1 settings under 'r1:'. Flags override it.")
EpochsOpt = _opt(float, "--epochs", help="Passes over the data (default 2, as in R1).")
LearningRateOpt = _opt(float, "--learning-rate", "--lr", help="Peak learning rate (TRL default 2e-5).")
MaxLengthOpt = _opt(int, "--max-length", min=1, help="Most tokens per example (prompt + completion), longer ones truncated; with --packing, the packed sequence length (TRL default 1024).")
PackingOpt = _opt(bool, "--packing/--no-packing", help="Pack several examples into each --max-length sequence (TRL's best-fit decreasing).")
MaxStepsOpt = _opt(int, "--max-steps", help="Optimisation steps (overrides --epochs).")
BatchSizeOpt = _opt(int, "--batch-size", min=1, help="Examples per process per micro-step (TRL's per_device_train_batch_size, default 8).")
GradAccumOpt = _opt(int, "--grad-accum", min=1, help="Gradient accumulation steps.")
TrainSeedOpt = _opt(int, "--seed", help="Random seed (TRL default 42).")
LoraOpt = _opt(str, "--lora", metavar="R[,ALPHA]", help="Train a LoRA adapter of rank R (alpha default 2R) with PEFT; the merged model is saved.")
TrainResumeOpt = Annotated[bool, typer.Option("--resume", help="Continue from the last checkpoint in -o, same step count and data order.")]
NumProcessesOpt = Annotated[int, typer.Option("--num-processes", min=1, help="Training processes, started with `accelerate launch` (gloo on CPU).")]
EvalDataOpt = _opt(str, "--eval-data", help="Held-out prompt records scored like r1 eval every --eval-every steps (eval/… in metrics.jsonl).")
EvalEveryOpt = _opt(int, "--eval-every", min=1, help="Evaluate on --eval-data every N optimisation steps.")
EvalSamplesOpt = _opt(int, "--eval-samples", min=1, help="Samples per held-out prompt (pass@1 over K, cons@K; default 4).")
SaveBestOpt = _opt(str, "--save-best", metavar="METRIC", help="Keep the weights with the best held-out METRIC (pass@1, cons@K, format) in OUTPUT/best/.")
SaveStepsOpt = _opt(int, "--save-steps", min=1, help="Write a checkpoint every N steps (default 50).")
SaveTotalLimitOpt = _opt(int, "--save-total-limit", min=1, help="Checkpoints kept, oldest deleted first (default 2; each holds the optimizer state).")


def sft_cmd(
    model: ModelOpt = None,  # type: ignore[assignment]  # None: the recipe's, else smollm2-135m
    data: SFTDataOpt = None,
    output: RunDirOpt = None,
    config: ConfigOpt = None,
    template: TemplateOpt = None,
    system: SystemOpt = None,
    epochs: EpochsOpt = None,
    learning_rate: LearningRateOpt = None,
    max_length: MaxLengthOpt = None,
    packing: PackingOpt = None,
    max_steps: MaxStepsOpt = None,
    batch_size: BatchSizeOpt = None,
    grad_accum: GradAccumOpt = None,
    seed: TrainSeedOpt = None,
    lora: LoraOpt = None,
    resume: TrainResumeOpt = False,
    num_processes: NumProcessesOpt = 1,
    split: SplitOpt = None,
    eval_data: EvalDataOpt = None,
    eval_every: EvalEveryOpt = None,
    eval_samples: EvalSamplesOpt = None,
    save_best: SaveBestOpt = None,
    save_steps: SaveStepsOpt = None,
    save_total_limit: SaveTotalLimitOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Fine-tune a model on prompt–completion or messages records; the loss covers the completions only.

    Reads what `r1 rollout` and `r1 reject-sample` write (other keys are ignored) and chat records
    with `messages` (the last, assistant turn is the completion). The prompt is shown as the records
    say (their `template` and `system`, which r1 rollout and reject-sample write); records that say
    nothing get chat messages when the model has a chat template, else --template r1-zero|none.

    \b
        r1 rollout prompts.jsonl -n 16 | r1 score -r accuracy | r1 reject-sample > selected.jsonl
        r1 sft -m smollm2-135m --data selected.jsonl -o runs/sft --epochs 2
        r1 sft -m Qwen/Qwen2.5-0.5B --data chats.jsonl -c recipe.yaml --lora 16 -o runs/lora --resume
        r1 sft -m tiny --data selected.jsonl --max-steps 3 --num-processes 2 -o runs/ddp
    """
    from r1cli.training.sft import SFTSettings, launch

    settings = SFTSettings.build(sft_flags(
        model=model, data=data, output=output, template=template, system=system, epochs=epochs,
        learning_rate=learning_rate, max_length=max_length, packing=packing, max_steps=max_steps,
        batch_size=batch_size, grad_accum=grad_accum, seed=seed, lora=lora, resume=resume,
        num_processes=num_processes, split=split, eval_data=eval_data, eval_every=eval_every,
        eval_samples=eval_samples, save_best=save_best, save_steps=save_steps, save_total_limit=save_total_limit), config)
    start(settings, launch=launch, run=run, quiet=quiet)


def sft_flags(*, resume: bool = False, num_processes: int = 1, **values: Any) -> dict[str, Any]:
    """The settings the training flags give (None = not given, so the recipe or r1's default holds)."""
    return {**values, "resume": resume or None, "num_processes": num_processes if num_processes > 1 else None}


def run(settings: Any, *, quiet: bool, label: str = "sft") -> None:
    """Train in this process with a progress bar on stderr, then print the summary line."""
    from r1cli.training.sft import train

    result = train_here(label, train, settings, quiet=quiet, stats=_stats)
    report(result, _stats({"loss": result.last.get("loss"), "accuracy": result.last.get("mean_token_accuracy")}),
           quiet=quiet)


def _stats(values: dict[str, Any]) -> str:
    parts = []
    for label, key in (("loss", "loss"), ("token accuracy", "accuracy")):
        value = values.get(key)
        if isinstance(value, (int, float)):
            parts.append(f"{label} {value:.3g}")
    return ", ".join(parts)


def worker_main(argv: list[str] | None = None) -> None:
    """Entry point of each rank under `accelerate launch` (`python -m r1cli.cli.sft CONFIG`)."""
    from r1cli.training.sft import worker_settings

    _train.worker_main(worker_settings, run, argv)


if __name__ == "__main__":
    worker_main()
