"""What every training command shares: settings layers, the run folder, callbacks, resume, launching.

`r1 grpo` and `r1 sft` (and `r1 distill`'s student stage) train with a TRL trainer and write the
same output folder: the final model and tokenizer at the top (`from_pretrained(OUTPUT)` loads
it), `checkpoint-N/` folders, `r1_config.json` (r1's settings, the trainer config, versions) and
`metrics.jsonl` (one line per logging step, truncated back to the checkpoint a run resumes from).
This module holds those pieces; r1cli.training.base holds the settings and the record
(r1_config.json) they share, each trainer's module only its trainer and its data.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import socket
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from r1cli.errors import OutputError, R1Error
from r1cli.training.config import load_recipe, merge, split_recipe

CONFIG_FILE = "r1_config.json"
METRICS_FILE = "metrics.jsonl"
ADAPTER_DIR = "adapter"


# ---- settings: defaults < recipe < flags ---------------------------------------------------------


@dataclass
class Layers:
    """A command's resolved settings: the trainer config's fields, and r1's own (recipe, then flags)."""

    trainer: dict[str, Any]
    recipe_own: dict[str, Any]
    flag_own: dict[str, Any]

    @property
    def own(self) -> dict[str, Any]:
        return merge(self.recipe_own, self.flag_own)


def layer_settings(flags: Mapping[str, Any], recipe: str | Path | Mapping[str, Any] | None, *,
                   trainer_fields: Collection[str], own_fields: Collection[str], flag_fields: Mapping[str, str],
                   defaults: Mapping[str, Any], what: str) -> Layers:
    """Split flags and a recipe into trainer fields and r1's own settings; r1's `defaults` < recipe < flags.

    `flags` holds r1 settings (`own_fields`), the flag names of `flag_fields` (mapped to the trainer
    field they set) and any other trainer field by its own name; a None value is "not given".

    >>> layers = layer_settings({"epochs": 2, "model": "tiny", "lr": None}, {"seed": 3, "r1": {"model": "x"}},
    ...                         trainer_fields={"num_train_epochs", "seed", "learning_rate"}, own_fields={"model"},
    ...                         flag_fields={"epochs": "num_train_epochs", "lr": "learning_rate"},
    ...                         defaults={"learning_rate": 1e-5}, what="SFT")
    >>> layers.trainer, layers.own
    ({'learning_rate': 1e-05, 'seed': 3, 'num_train_epochs': 2}, {'model': 'tiny'})
    """
    if recipe is None:
        recipe_trainer, recipe_own = {}, {}
    else:
        source = str(recipe) if not isinstance(recipe, Mapping) else "recipe"
        data = recipe if isinstance(recipe, Mapping) else load_recipe(recipe)
        recipe_trainer, recipe_own = split_recipe(data, trainer_fields=trainer_fields, own_fields=own_fields,
                                                  source=source)
    flag_trainer: dict[str, Any] = {}
    flag_own: dict[str, Any] = {}
    for key, value in flags.items():
        if key in flag_fields:
            flag_trainer[flag_fields[key]] = value
        elif key in own_fields:
            flag_own[key] = value
        elif key in trainer_fields:
            flag_trainer[key] = value
        else:
            raise R1Error(f"unknown {what} setting '{key}'")
    return Layers(trainer=merge(defaults, recipe_trainer, flag_trainer), recipe_own=recipe_own,
                  flag_own={k: v for k, v in flag_own.items() if v is not None})


def parse_lora(spec: str) -> tuple[int, int]:
    """`R[,ALPHA]` → (rank, alpha); alpha defaults to 2 × rank.

    >>> parse_lora("16"), parse_lora("8,32")
    ((16, 32), (8, 32))
    """
    rank_text, _, alpha_text = spec.partition(",")
    try:
        rank = int(rank_text)
        alpha = int(alpha_text) if alpha_text.strip() else 2 * rank
    except ValueError:
        raise R1Error(f"bad --lora '{spec}'", hint="write R or R,ALPHA with integers, e.g. --lora 16,32") from None
    if rank < 1 or alpha < 1:
        raise R1Error(f"bad --lora '{spec}': rank and alpha must be positive")
    return rank, alpha


def normalise_lora(value: Any) -> tuple[int, int] | None:
    """A `lora` setting from a flag ("8,16"), a recipe (8 or [8, 16]) or r1_config.json ([8, 16])."""
    if value is None:
        return None
    if isinstance(value, (str, int)):
        return parse_lora(str(value))
    return (int(value[0]), int(value[1]))


def cpu_defaults(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Trainer-config settings a machine without a GPU needs, unless the recipe sets them."""
    import torch

    if not torch.cuda.is_available():
        kwargs.setdefault("bf16", False)  # TRL's bf16 default fails without a GPU
        # Without use_cpu, ranks started by `accelerate launch` on a CPU machine each train alone
        # (transformers sees DistributedType.NO); with it they form one gloo DDP group.
        kwargs.setdefault("use_cpu", True)
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:
            kwargs.setdefault("ddp_backend", "gloo")
        kwargs.setdefault("dataloader_pin_memory", False)  # pinning needs an accelerator (a warning otherwise)
    return kwargs


def make_config(config_cls: type, kwargs: Mapping[str, Any], *, what: str,
                hint: Callable[[str], str | None] = lambda _: None) -> Any:
    """`config_cls(**kwargs)`, with TRL's ValueError/TypeError turned into an R1Error naming `what`."""
    try:
        with quiet_renames():
            return config_cls(**kwargs)
    except (ValueError, TypeError) as exc:
        raise R1Error(f"invalid {what} settings: {exc}", hint=hint(str(exc))) from None


class quiet_renames(warnings.catch_warnings):
    """TRL and PEFT set or call transformers' renamed `*gradient_checkpointing*` names (5.23): not the user's doing."""

    def __enter__(self) -> Any:
        out = super().__enter__()
        warnings.filterwarnings("ignore", message=".*gradient_checkpointing.*", category=FutureWarning)
        return out


def dataset(rows: list[dict[str, Any]], *, what: str, hint: str) -> Any:
    """A `datasets.Dataset` of the rows; columns of mixed types become BadInput naming `what`."""
    from datasets import Dataset

    from r1cli.errors import BadInput

    try:
        return Dataset.from_list(rows)
    except Exception as exc:  # pyarrow raises several types for columns of mixed types
        raise BadInput(f"the {what} cannot form one table: {type(exc).__name__}: {exc}", hint=hint) from None


def lora_config(lora: tuple[int, int] | None) -> Any:
    """PEFT's LoraConfig over all linear layers, or None."""
    if lora is None:
        return None
    from peft import LoraConfig

    return LoraConfig(r=lora[0], lora_alpha=lora[1], target_modules="all-linear", task_type="CAUSAL_LM")


# ---- callbacks ---------------------------------------------------------------------------------------


def metrics_callback(path: Path, row: Callable[[Mapping[str, Any], int, float], dict[str, Any]]) -> Any:
    """A TrainerCallback writing `row(logs, step, elapsed)` to metrics.jsonl per logging step, on rank 0.

    It also adds `step_time` (seconds per optimisation step since the previous log) to the logs
    when the trainer does not log one itself (SFTTrainer does not; GRPOTrainer does).
    """
    from transformers import TrainerCallback

    class MetricsCallback(TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):  # noqa: ANN001, ANN201
            self.start = time.perf_counter()
            self.last = (self.start, state.global_step)
            if state.is_world_process_zero:
                truncate_metrics(path, state.global_step)

        def on_log(self, args, state, control, logs=None, **kwargs):  # noqa: ANN001, ANN201
            if not logs or "train_runtime" in logs:
                return
            now = time.perf_counter()
            then, step = self.last
            if "step_time" not in logs and state.global_step > step:
                logs["step_time"] = round((now - then) / (state.global_step - step), 4)
            self.last = (now, state.global_step)
            if state.is_world_process_zero:
                line = json.dumps(clean_row(row(logs, state.global_step, now - self.start)), ensure_ascii=False)
                with open(path, "a", encoding="utf-8") as fp:
                    fp.write(line + "\n")

    return MetricsCallback()


def progress_callback(update: Callable[..., Any], values: Callable[[Mapping[str, Any]], dict[str, Any]]) -> Any:
    """A TrainerCallback calling `update(step=, total=, **values(logs))` on rank 0 at start and per log."""
    from transformers import TrainerCallback

    class ProgressCallback(TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):  # noqa: ANN001, ANN201
            if state.is_world_process_zero:
                update(step=state.global_step, total=state.max_steps)

        def on_log(self, args, state, control, logs=None, **kwargs):  # noqa: ANN001, ANN201
            if state.is_world_process_zero and logs and "train_runtime" not in logs:
                update(step=state.global_step, total=state.max_steps, **values(logs))

    return ProgressCallback()


def clean_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """NaN (a metric TRL could not compute) as null: JSON has no NaN."""
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}


def truncate_metrics(path: Path, step: int) -> None:
    """Drop metrics.jsonl lines past `step` (logged after the checkpoint a run resumes from)."""
    if not path.is_file():
        return
    kept = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            break  # a torn last line
        if isinstance(row, dict) and isinstance(row.get("step"), int) and row["step"] <= step:
            kept.append(line + "\n")
    path.write_text("".join(kept), encoding="utf-8")


def iter_metrics(path: str | Path) -> Iterator[dict[str, Any]]:
    """The rows of a run's metrics.jsonl."""
    with open(path, encoding="utf-8") as fp:
        for line in fp:
            if line.strip():
                yield json.loads(line)


def quiet_trainer(trainer: Any) -> Any:
    """Drop transformers' PrinterCallback: it prints every log dict on stdout, which is for data."""
    from transformers import PrinterCallback

    trainer.remove_callback(PrinterCallback)
    return trainer


# ---- the run folder -----------------------------------------------------------------------------------


@dataclass
class RunResult:
    output_dir: Path
    steps: int
    first_step: int
    seconds: float
    last: dict[str, Any]
    resumed_from: str | None


def last_checkpoint(output_dir: Path) -> str | None:
    from transformers.trainer_utils import get_last_checkpoint

    return get_last_checkpoint(str(output_dir)) if output_dir.is_dir() else None


def is_finished(output_dir: Path) -> bool:
    """Does the folder hold a final model (a finished run)?"""
    return (output_dir / "model.safetensors").exists() or (output_dir / "model.safetensors.index.json").exists()


def check_output(output_dir: Path, resume: bool) -> str | None:
    """The checkpoint to resume from (with --resume); refuse to overwrite a finished or started run."""
    if output_dir.exists() and not output_dir.is_dir():
        raise OutputError(f"{output_dir} is a file, not a folder", hint="give -o a folder path")
    checkpoint = last_checkpoint(output_dir)
    if resume:
        return checkpoint
    if checkpoint is not None or is_finished(output_dir) or (output_dir / ADAPTER_DIR).exists():
        raise OutputError(f"{output_dir} already holds a training run",
                          hint="add --resume to continue it, or choose another -o folder")
    return None


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("torch", "transformers", "trl", "peft", "accelerate"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            pass
    return out


def checkpoint_step(checkpoint: str | None) -> int:
    """The step a checkpoint folder (checkpoint-N) was saved at; 0 for none.

    >>> checkpoint_step("run/checkpoint-12"), checkpoint_step(None)
    (12, 0)
    """
    if checkpoint is None:
        return 0
    try:
        return int(Path(checkpoint).name.rsplit("-", 1)[1])
    except (IndexError, ValueError):
        return 0


def fit(trainer: Any, output_dir: Path, checkpoint: str | None, lora: tuple[int, int] | None,
        last_key: str = "loss") -> RunResult:
    """Train (from `checkpoint` when resuming), save the final model, and summarise the run."""
    first_step = checkpoint_step(checkpoint)
    start = time.perf_counter()
    with quiet_renames():
        trainer.train(resume_from_checkpoint=checkpoint)
    seconds = time.perf_counter() - start
    save_model(trainer, output_dir, lora)
    last = next((entry for entry in reversed(trainer.state.log_history) if last_key in entry), {})
    return RunResult(output_dir=output_dir, steps=trainer.state.global_step, first_step=first_step, seconds=seconds,
                     last=last, resumed_from=checkpoint)


def save_model(trainer: Any, output_dir: Path, lora: tuple[int, int] | None) -> None:
    """The final model at the top of the output folder; a LoRA run saves its adapter in adapter/ and
    the merged model at the top, so that `from_pretrained(OUTPUT)` loads the trained policy."""
    if lora is None:
        trainer.save_model(str(output_dir))
        return
    trainer.save_model(str(output_dir / ADAPTER_DIR))
    if trainer.accelerator.is_main_process:
        model = trainer.accelerator.unwrap_model(trainer.model)
        merged = model.merge_and_unload()
        merged.save_pretrained(str(output_dir))
        trainer.processing_class.save_pretrained(str(output_dir))
    trainer.accelerator.wait_for_everyone()


# ---- several processes -----------------------------------------------------------------------------


def launch_command(module: str, config_path: Path, num_processes: int, port: int, *,
                   quiet: bool = False) -> list[str]:
    """`accelerate launch` of a worker entry point (`python -m MODULE LAUNCH_FILE`) with N real ranks.

    `--cpu --num_processes N` starts ONE process (accelerate 1.15); `--multi_gpu` with explicit
    machine, precision and dynamo settings starts N ranks, with gloo where there is no GPU.
    """
    accelerate = shutil.which("accelerate") or str(Path(sys.executable).with_name("accelerate"))
    return [accelerate, "launch", "--multi_gpu", "--num_processes", str(num_processes), "--num_machines", "1",
            "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(port),
            "-m", module, str(config_path), *(["--quiet"] if quiet else [])]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_launch(command: list[str], num_processes: int) -> int:
    """Run an `accelerate launch` command with the CPU threads shared among the ranks; its exit status."""
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // num_processes)))
    return subprocess.run(command, env=env).returncode
