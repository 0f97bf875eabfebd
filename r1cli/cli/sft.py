"""`r1 sft`: supervised fine-tuning (TRL's SFTTrainer) on prompt–completion or messages records."""

from __future__ import annotations

from r1cli.cli import _train
from r1cli.cli._common import ModelOpt, QuietOpt, SplitOpt, SystemOpt, TemplateOpt
from r1cli.cli._train import (
    EvalDataOpt, EvalEveryOpt, EvalSamplesOpt, GradAccumOpt, LoraOpt, MaxStepsOpt, NumProcessesOpt, RunDirOpt,
    SaveBestOpt, SaveStepsOpt, SaveTotalLimitOpt, TrainResumeOpt, TrainSeedOpt, opt,
)

__all__ = ["BatchSizeOpt", "ConfigOpt", "EpochsOpt", "GradAccumOpt", "LearningRateOpt", "LoraOpt", "MaxLengthOpt",
           "MaxStepsOpt", "NumProcessesOpt", "PackingOpt", "sft_cmd"]

# The SFT flags `r1 distill` forwards to its student stage (with the shared ones of cli/_train.py).
SFTDataOpt = opt(str, "--data", "-d", help="SFT records (prompt + completion, or messages): a .jsonl/.json/.parquet file, '-' (stdin, the default) or a HF dataset name.")
ConfigOpt = opt(str, "--config", "-c", help="YAML recipe: SFTConfig fields, and r1 settings under 'r1:'. Flags override it.")
EpochsOpt = opt(float, "--epochs", help="Passes over the data (default 2, as in R1).")
LearningRateOpt = opt(float, "--learning-rate", "--lr", help="Peak learning rate (TRL default 2e-5).")
MaxLengthOpt = opt(int, "--max-length", min=1, help="Most tokens per example (prompt + completion), longer ones truncated; with --packing, the packed sequence length (TRL default 1024).")
PackingOpt = opt(bool, "--packing/--no-packing", help="Pack several examples into each --max-length sequence (TRL's best-fit decreasing).")
BatchSizeOpt = opt(int, "--batch-size", min=1, help="Examples per process per micro-step (TRL's per_device_train_batch_size, default 8).")


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
    from r1cli.training.sft import SFTSettings

    settings = SFTSettings.build(_train.run_flags(
        model=model, data=data, output=output, template=template, system=system, epochs=epochs,
        learning_rate=learning_rate, max_length=max_length, packing=packing, max_steps=max_steps,
        batch_size=batch_size, grad_accum=grad_accum, seed=seed, lora=lora, resume=resume,
        num_processes=num_processes, split=split, eval_data=eval_data, eval_every=eval_every,
        eval_samples=eval_samples, save_best=save_best, save_steps=save_steps, save_total_limit=save_total_limit), config)
    _train.start(settings, quiet=quiet)
