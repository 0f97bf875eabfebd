"""GRPO on TRL's `GRPOTrainer`: settings, data, rewards, and the run's output folder.

r1 adds only what TRL lacks: prompt records from any `r1` input with their fields checked
against the chosen rewards before a model loads, the reward registry through its one TRL
adapter, dynamic sampling, `metrics.jsonl` and `r1_config.json`, resume from the last
checkpoint, and launching several processes with `accelerate launch`. Every other setting is a
`GRPOConfig` field, from a recipe (`-c recipe.yaml`) or r1's defaults below.

    from r1cli.training.grpo import GRPOSettings, train
    settings = GRPOSettings.build({"model": "tiny", "data": "prompts.jsonl", "output_dir": "run", "max_steps": 2})
    train(settings)
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
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from r1cli.errors import BadInput, EngineUnavailable, OutputError, R1Error
from r1cli.training.config import field_names, load_recipe, merge, split_recipe, to_jsonable
from r1cli.training.sampling import DEFAULT_MAX_ROUNDS

CONFIG_FILE = "r1_config.json"
METRICS_FILE = "metrics.jsonl"
DATA_FILE = "prompts.jsonl"  # the prompts, saved for the processes of `--num-processes` when read from stdin

# r1's defaults for GRPOConfig fields where they differ from TRL's (a recipe or a flag overrides them).
TRL_DEFAULTS: dict[str, Any] = {
    "beta": 0.001,  # as in R1: a reference model and the k3 KL estimator; TRL's default is 0 (none)
    "logging_steps": 1,  # one metrics.jsonl line per step
    "report_to": "none",
    "disable_tqdm": True,  # r1 draws its own bar on stderr
    "save_steps": 50,
}

# Flags that are GRPOConfig fields under another name.
FLAG_FIELDS = {
    "num_generations": "num_generations", "max_completion_length": "max_completion_length",
    "temperature": "temperature", "learning_rate": "learning_rate", "beta": "beta", "loss": "loss_type",
    "epsilon": "epsilon", "epsilon_high": "epsilon_high", "max_steps": "max_steps", "epochs": "num_train_epochs",
    "batch_size": "per_device_train_batch_size", "grad_accum": "gradient_accumulation_steps", "seed": "seed",
    "output": "output_dir", "use_vllm": "use_vllm", "vllm_mode": "vllm_mode",
}


@dataclass(frozen=True, kw_only=True)
class GRPOSettings:
    """Everything a GRPO run needs: r1's own settings, and the GRPOConfig fields in `trl`."""

    model: str = "smollm2-135m"
    data: str = "-"
    reward: tuple[str, ...] = ("accuracy", "format")
    reward_params: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    template: str | None = None
    system: str | None = None
    split: str | None = None
    prompt_field: str | None = None
    answer_field: str | None = None
    extract_answer: str | None = None
    dynamic_sampling: bool = False
    dynamic_sampling_rounds: int = DEFAULT_MAX_ROUNDS
    lora: tuple[int, int] | None = None
    resume: bool = False
    num_processes: int = 1
    trl: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.reward:
            raise R1Error("no reward selected", hint="add -r NAME, e.g. -r accuracy -r format")
        if self.num_processes < 1:
            raise R1Error(f"--num-processes must be at least 1, got {self.num_processes}")
        if self.dynamic_sampling_rounds < 1:
            raise R1Error(f"dynamic_sampling_rounds must be at least 1, got {self.dynamic_sampling_rounds}")
        if not self.trl.get("output_dir"):
            raise R1Error("no output folder", hint="give -o FOLDER (or output_dir in the recipe)")

    @property
    def output_dir(self) -> Path:
        return Path(self.trl["output_dir"])

    @classmethod
    def own_fields(cls) -> set[str]:
        return {f.name for f in fields(cls)} - {"trl"}

    @classmethod
    def build(cls, flags: Mapping[str, Any], recipe: str | Path | Mapping[str, Any] | None = None) -> GRPOSettings:
        """Resolve settings: r1's defaults < the recipe < flags (None = not given).

        `flags` holds r1 settings (`model`, `reward`, …), the flag names of `FLAG_FIELDS`
        (`loss`, `epochs`, `output`, …) and any other GRPOConfig field by its own name.
        """
        from trl import GRPOConfig

        trl_fields = field_names(GRPOConfig)
        own_fields = cls.own_fields()
        if recipe is None:
            recipe_trl, recipe_own = {}, {}
        else:
            source = str(recipe) if not isinstance(recipe, Mapping) else "recipe"
            data = recipe if isinstance(recipe, Mapping) else load_recipe(recipe)
            recipe_trl, recipe_own = split_recipe(data, trainer_fields=trl_fields, own_fields=own_fields,
                                                  source=source)
        flag_trl: dict[str, Any] = {}
        flag_own: dict[str, Any] = {}
        for key, value in flags.items():
            if key in FLAG_FIELDS:
                flag_trl[FLAG_FIELDS[key]] = value
            elif key in own_fields:
                flag_own[key] = value
            elif key in trl_fields:
                flag_trl[key] = value
            else:
                raise R1Error(f"unknown GRPO setting '{key}'")
        trl = merge(TRL_DEFAULTS, recipe_trl, flag_trl)
        own = merge(recipe_own, flag_own)
        if recipe_own.get("reward_params") and flag_own.get("reward_params"):  # per reward: flags win per key
            params = {k: dict(v or {}) for k, v in recipe_own["reward_params"].items()}
            for name, values in flag_own["reward_params"].items():
                params.setdefault(name, {}).update(values)
            own["reward_params"] = params
        if "reward" in own:
            own["reward"] = tuple([own["reward"]] if isinstance(own["reward"], str) else own["reward"])
        if isinstance(own.get("lora"), (str, int)):
            own["lora"] = parse_lora(str(own["lora"]))
        elif own.get("lora") is not None:
            own["lora"] = tuple(own["lora"])
        return cls(**own, trl=trl)

    def to_json(self) -> dict[str, Any]:
        return to_jsonable(asdict(self))

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> GRPOSettings:
        own = {k: v for k, v in data.items() if k in cls.own_fields()}
        own["reward"] = tuple(own.get("reward", ()))
        if own.get("lora") is not None:
            own["lora"] = tuple(own["lora"])
        return cls(**own, trl=dict(data.get("trl", {})))


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


# ---- data and rewards: checked before any model loads -------------------------------------


@dataclass
class Prepared:
    rows: list[dict[str, Any]]
    rewards: list[Any]
    template: str | None


def prepare(settings: GRPOSettings) -> Prepared:
    """Build the rewards and read the prompts; refuse records that lack a field a reward needs."""
    from r1cli import rewards as registry
    from r1cli.io import iter_records, prepare_prompts
    from r1cli.templates import check_template, render

    built = registry.resolve(list(settings.reward), settings.reward_params)
    template = check_template(settings.template) if settings.template is not None else None
    located = prepare_prompts(iter_records(settings.data, split=settings.split), prompt_field=settings.prompt_field,
                              answer_field=settings.answer_field, extract=settings.extract_answer)
    rows = []
    for where, record in located:
        for name, reward in [(f, r) for f, r in registry.missing_fields(record, built) if f != "completion"]:
            raise BadInput(f"{where}: no '{name}' field, which the {reward} reward needs",
                           hint="add it to the data, map it with --answer-field, or drop -r " + reward)
        if template is not None:
            try:
                record["prompt"] = render(record["prompt"], template, system=settings.system)
            except BadInput as exc:
                raise BadInput(f"{where}: {exc.message}", hint=exc.hint) from None
        rows.append(record)
    if not rows:
        raise BadInput(f"{settings.data}: no prompt records", hint="GRPO needs at least one prompt")
    return Prepared(rows=rows, rewards=built, template=template)


def _apply_default_template(prepared: Prepared, settings: GRPOSettings, tokenizer: Any) -> None:
    """No --template: chat messages when the model has a chat template, else the raw prompt."""
    if prepared.template is not None:
        return
    from r1cli.templates import render

    chat = bool(getattr(tokenizer, "chat_template", None))
    prepared.template = "chat" if chat else "none"
    for row in prepared.rows:
        if chat or isinstance(row["prompt"], str):
            row["prompt"] = render(row["prompt"], prepared.template, system=settings.system if chat else None)
        else:
            raise BadInput(f"record '{row['id']}' has chat messages but the model has no chat template",
                           hint="use --template r1-zero or none with text prompts")


def _dataset(rows: list[dict[str, Any]]) -> Any:
    from datasets import Dataset

    try:
        return Dataset.from_list(rows)
    except Exception as exc:  # pyarrow raises several types for columns of mixed types
        raise BadInput(f"the prompt records cannot form one table: {type(exc).__name__}: {exc}",
                       hint="give each field the same type in every record (e.g. `answer` always a string)") from None


# ---- the trainer ---------------------------------------------------------------------------------


def grpo_config(settings: GRPOSettings) -> Any:
    """The `GRPOConfig`, with bf16 off where there is no GPU; bad values become R1Error."""
    import torch
    from trl import GRPOConfig

    kwargs = dict(settings.trl)
    if not torch.cuda.is_available():
        kwargs.setdefault("bf16", False)  # TRL's bf16 default fails without a GPU
        # Without use_cpu, ranks started by `accelerate launch` on a CPU machine each train alone
        # (transformers sees DistributedType.NO); with it they form one gloo DDP group.
        kwargs.setdefault("use_cpu", True)
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:
            kwargs.setdefault("ddp_backend", "gloo")
        kwargs.setdefault("dataloader_pin_memory", False)  # pinning needs an accelerator (a warning otherwise)
        if kwargs.get("use_vllm"):
            raise EngineUnavailable("--use-vllm needs a CUDA GPU", hint="drop --use-vllm on this machine")
    if kwargs.get("use_vllm"):
        import importlib.util

        if importlib.util.find_spec("vllm") is None:
            raise EngineUnavailable("vLLM is not installed", hint="pip install 'r1cli[vllm]' (GPU only), or drop --use-vllm")
    loss = kwargs.get("loss_type")
    valid = loss_types(GRPOConfig)
    if loss is not None and valid and loss not in valid:
        close = [v for v in valid if v.replace("_", "") == str(loss).replace("_", "").replace("-", "")]
        raise R1Error(f"unknown loss '{loss}'. Choose from: {', '.join(valid)}.",
                      hint=f"did you mean '{close[0]}'?" if close else "--loss takes TRL's loss_type names")
    try:
        with warnings.catch_warnings():
            # TRL sets `gradient_checkpointing`, which transformers 5.23 renamed: not the user's doing.
            warnings.filterwarnings("ignore", message=".*gradient_checkpointing.*", category=FutureWarning)
            return GRPOConfig(**kwargs)
    except (ValueError, TypeError) as exc:
        raise R1Error(f"invalid GRPO settings: {exc}",
                      hint="--batch-size × --grad-accum × processes counts completions and must be a multiple of "
                           "--num-generations" if "divisible" in str(exc) else None) from None


def loss_types(config_cls: Any) -> list[str]:
    """TRL's loss_type names, read from the field's help ("Supported values are 'grpo', …")."""
    import re

    help_text = next((f.metadata.get("help", "") for f in fields(config_cls) if f.name == "loss_type"), "")
    listed = help_text.partition("Supported values are")[2].partition(". ")[0]
    return re.findall(r"'(\w+)'", listed)


def build_trainer(settings: GRPOSettings, prepared: Prepared, args: Any, callbacks: Sequence[Any] = ()) -> Any:
    """A GRPOTrainer (or its dynamic-sampling subclass) over the prepared prompts."""
    from transformers import PrinterCallback
    from transformers.utils import logging as hf_logging
    from trl import GRPOTrainer

    from r1cli.models import load_tokenizer, resolve_model
    from r1cli.rewards.trl import to_trl
    from r1cli.training.sampling import dynamic_sampling_trainer

    hf_logging.disable_progress_bar()
    source = resolve_model(settings.model)
    tokenizer = load_tokenizer(settings.model)
    tokenizer.padding_side = "left"
    _apply_default_template(prepared, settings, tokenizer)
    reward_fns = [to_trl(r) for r in prepared.rewards]
    if args.reward_weights is None:
        args.reward_weights = [r.weight for r in prepared.rewards]
    peft_config = None
    if settings.lora is not None:
        from peft import LoraConfig

        peft_config = LoraConfig(r=settings.lora[0], lora_alpha=settings.lora[1], target_modules="all-linear",
                                 task_type="CAUSAL_LM")
    cls = GRPOTrainer
    if settings.dynamic_sampling:
        cls = dynamic_sampling_trainer()
    trainer = cls(model=source, reward_funcs=reward_fns, args=args, train_dataset=_dataset(prepared.rows),
                  processing_class=tokenizer, callbacks=list(callbacks), peft_config=peft_config)
    if settings.dynamic_sampling:
        trainer.r1_max_rounds = settings.dynamic_sampling_rounds
    trainer.remove_callback(PrinterCallback)  # it prints every log dict on stdout
    return trainer


class _Callbacks:
    """Factory of the TrainerCallbacks (transformers is imported only when a run starts)."""

    @staticmethod
    def metrics(path: Path, reward_names: Sequence[str]) -> Any:
        from transformers import TrainerCallback

        class MetricsCallback(TrainerCallback):
            """One metrics.jsonl line per logging step, on the main process."""

            def on_train_begin(self, args, state, control, **kwargs):  # noqa: ANN001, ANN201
                self.start = time.perf_counter()
                if state.is_world_process_zero:
                    truncate_metrics(path, state.global_step)

            def on_log(self, args, state, control, logs=None, **kwargs):  # noqa: ANN001, ANN201
                if not state.is_world_process_zero or not logs or "train_runtime" in logs:
                    return
                row = metrics_row(logs, state.global_step, reward_names, time.perf_counter() - self.start)
                with open(path, "a", encoding="utf-8") as fp:
                    fp.write(json.dumps(row, ensure_ascii=False) + "\n")

        return MetricsCallback()

    @staticmethod
    def progress(update: Callable[..., Any]) -> Any:
        from transformers import TrainerCallback

        class ProgressCallback(TrainerCallback):
            """Feeds `update(step=, total=, reward=, accuracy=, length=)` on the main process."""

            def on_train_begin(self, args, state, control, **kwargs):  # noqa: ANN001, ANN201
                if state.is_world_process_zero:
                    update(step=state.global_step, total=state.max_steps)

            def on_log(self, args, state, control, logs=None, **kwargs):  # noqa: ANN001, ANN201
                if state.is_world_process_zero and logs and "train_runtime" not in logs:
                    update(step=state.global_step, total=state.max_steps, reward=logs.get("reward"),
                           accuracy=logs.get("rewards/accuracy/mean"), length=logs.get("completions/mean_length"))

        return ProgressCallback()


_RENAMED = {"reward": "reward", "completions/mean_length": "completion_length", "kl": "kl", "loss": "loss",
            "entropy": "entropy", "learning_rate": "lr", "step_time": "step_time",
            "frac_reward_zero_std": "frac_reward_zero_std"}


def metrics_row(logs: Mapping[str, Any], step: int, reward_names: Sequence[str], elapsed: float) -> dict[str, Any]:
    """One metrics.jsonl line from TRL's logs: r1's names first, then TRL's other keys as they are.

    >>> metrics_row({"reward": 1.5, "rewards/accuracy/mean": 1.0, "learning_rate": 1e-6, "grad_norm": 0.3},
    ...             3, ["accuracy"], 12.0)
    {'step': 3, 'reward': 1.5, 'reward/accuracy': 1.0, 'accuracy': 1.0, 'lr': 1e-06, 'time': 12.0, 'grad_norm': 0.3}
    """
    row: dict[str, Any] = {"step": step}
    used = set()
    for key, name in _RENAMED.items():
        if key == "reward":
            row["reward"] = logs.get("reward")
            used.add(key)
            for reward in reward_names:
                row[f"reward/{reward}"] = logs.get(f"rewards/{reward}/mean")
                used.add(f"rewards/{reward}/mean")
            if "accuracy" in reward_names:
                row["accuracy"] = row["reward/accuracy"]
        elif key in logs:
            row[name] = logs[key]
            used.add(key)
    row["time"] = round(elapsed, 3)
    for key, value in logs.items():
        if key not in used:
            row[key] = value
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


# ---- running ---------------------------------------------------------------------------------------


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


def check_output(settings: GRPOSettings) -> str | None:
    """The checkpoint to resume from (with --resume); refuse to overwrite a finished or started run."""
    out = settings.output_dir
    if out.exists() and not out.is_dir():
        raise OutputError(f"{out} is a file, not a folder", hint="give -o a folder path")
    checkpoint = last_checkpoint(out)
    if settings.resume:
        return checkpoint
    started = checkpoint is not None or (out / "model.safetensors").exists() or (out / "adapter").exists()
    if started:
        raise OutputError(f"{out} already holds a training run",
                          hint="add --resume to continue it, or choose another -o folder")
    return None


def write_config(settings: GRPOSettings, args: Any | None = None) -> None:
    settings.output_dir.mkdir(parents=True, exist_ok=True)
    data = {"r1": settings.to_json()}
    if args is not None:
        data["processes"] = args.world_size
        data["grpo_config"] = to_jsonable(args.to_dict())
    from r1cli import __version__

    data["versions"] = {"r1cli": __version__, **_versions()}
    tmp = settings.output_dir / (CONFIG_FILE + ".part")
    tmp.write_text(json.dumps(data, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, settings.output_dir / CONFIG_FILE)


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("torch", "transformers", "trl", "peft", "accelerate"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            pass
    return out


def train(settings: GRPOSettings, *, progress: Callable[..., Any] | None = None,
          prepared: Prepared | None = None) -> RunResult:
    """Run GRPO in this process (or as one rank of `accelerate launch`) and save the model."""
    prepared = prepared or prepare(settings)
    args = grpo_config(settings)
    checkpoint = check_output(settings)
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    out = settings.output_dir
    callbacks = [_Callbacks.metrics(out / METRICS_FILE, [r.name for r in prepared.rewards])]
    if progress is not None:
        callbacks.append(_Callbacks.progress(progress))
    with warnings.catch_warnings():
        # TRL and PEFT call transformers' renamed `*gradient_checkpointing*` methods: not the user's doing.
        warnings.filterwarnings("ignore", message=".*gradient_checkpointing.*", category=FutureWarning)
        trainer = build_trainer(settings, prepared, args, callbacks)
        if trainer.accelerator.is_main_process:
            write_config(replace(settings, template=prepared.template), args)
        first_step = _checkpoint_step(checkpoint)
        start = time.perf_counter()
        trainer.train(resume_from_checkpoint=checkpoint)
        seconds = time.perf_counter() - start
        _save(trainer, settings)
    last = {}
    for entry in reversed(trainer.state.log_history):
        if "reward" in entry:
            last = entry
            break
    return RunResult(output_dir=out, steps=trainer.state.global_step, first_step=first_step, seconds=seconds, last=last,
                     resumed_from=checkpoint)


def _checkpoint_step(checkpoint: str | None) -> int:
    """The step a checkpoint folder (checkpoint-N) was saved at; 0 for none."""
    if checkpoint is None:
        return 0
    try:
        return int(Path(checkpoint).name.rsplit("-", 1)[1])
    except (IndexError, ValueError):
        return 0


def _save(trainer: Any, settings: GRPOSettings) -> None:
    """The final model at the top of the output folder; a LoRA run saves its adapter in adapter/ and
    the merged model at the top, so that `from_pretrained(OUTPUT)` loads the trained policy."""
    out = settings.output_dir
    if settings.lora is None:
        trainer.save_model(str(out))
        return
    trainer.save_model(str(out / "adapter"))
    if trainer.accelerator.is_main_process:
        model = trainer.accelerator.unwrap_model(trainer.model)
        merged = model.merge_and_unload()
        merged.save_pretrained(str(out))
        trainer.processing_class.save_pretrained(str(out))
    trainer.accelerator.wait_for_everyone()


# ---- several processes -----------------------------------------------------------------------------


def launch_command(config_path: Path, num_processes: int, port: int, *, quiet: bool = False) -> list[str]:
    """`accelerate launch` of the worker entry point with N real ranks.

    `--cpu --num_processes N` starts ONE process (accelerate 1.15); `--multi_gpu` with explicit
    machine, precision and dynamo settings starts N ranks, with gloo where there is no GPU.
    """
    accelerate = shutil.which("accelerate") or str(Path(sys.executable).with_name("accelerate"))
    return [accelerate, "launch", "--multi_gpu", "--num_processes", str(num_processes), "--num_machines", "1",
            "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(port),
            "-m", "r1cli.cli.grpo", str(config_path), *(["--quiet"] if quiet else [])]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def launch(settings: GRPOSettings, *, quiet: bool = False) -> int:
    """Check the data in this process, then run N training processes; returns their exit status."""
    prepared = prepare(settings)
    grpo_config(settings)  # bad settings fail here, once, before N processes start
    check_output(settings)
    out = settings.output_dir
    out.mkdir(parents=True, exist_ok=True)
    child = replace(settings, num_processes=1)
    if settings.data == "-":  # the ranks cannot all read stdin: give them the prompts as a file
        from r1cli.io import dumps

        (out / DATA_FILE).write_text("".join(dumps(r) for r in prepared.rows), encoding="utf-8")
        child = replace(child, data=str(out / DATA_FILE), prompt_field=None, answer_field=None, extract_answer=None)
        if prepared.template is not None:  # the saved prompts are rendered already
            child = replace(child, template="none" if _all_text(prepared.rows) else "chat", system=None)
    write_config(child)
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // settings.num_processes)))
    proc = subprocess.run(launch_command(out / CONFIG_FILE, settings.num_processes, _free_port(), quiet=quiet), env=env)
    return proc.returncode


def _all_text(rows: list[dict[str, Any]]) -> bool:
    return all(isinstance(r["prompt"], str) for r in rows)


def worker_settings(config_path: str | Path) -> GRPOSettings:
    """The settings a launched rank runs with: the `r1` section of r1_config.json."""
    data = json.loads(Path(config_path).read_text(encoding="utf-8"))
    return GRPOSettings.from_json(data["r1"])


def iter_metrics(path: str | Path) -> Iterator[dict[str, Any]]:
    """The rows of a run's metrics.jsonl."""
    with open(path, encoding="utf-8") as fp:
        for line in fp:
            if line.strip():
                yield json.loads(line)
