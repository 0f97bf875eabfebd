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

import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any, ClassVar

from r1cli.engines.hf import HFOptions
from r1cli.errors import BadInput, EngineUnavailable, R1Error
from r1cli.training import base, run
from r1cli.training.base import Launch, TrainSettings
from r1cli.training.dynamic_sampling import DEFAULT_MAX_ROUNDS
from r1cli.training.generation import resolve_generation
from r1cli.training.run import METRICS_FILE, RunResult, iter_metrics, parse_lora, truncate_metrics
from r1cli.training.stall import STALL_STEPS

__all__ = ["GRPOSettings", "RunResult", "iter_metrics", "launch", "metrics_row", "parse_lora", "train",
           "truncate_metrics"]

DATA_FILE = "prompts.jsonl"  # the prompts, saved for the processes of `--num-processes` when read from stdin

# r1's defaults for GRPOConfig fields where they differ from TRL's (a recipe or a flag overrides them).
TRL_DEFAULTS: dict[str, Any] = {
    "beta": 0.001,  # as in R1: a reference model and the k3 KL estimator; TRL's default is 0 (none)
    "logging_steps": 1,  # one metrics.jsonl line per step
    "report_to": "none",
    "disable_tqdm": True,  # r1 draws its own bar on stderr
    "save_steps": 50,
    # Keep the last 2 checkpoints: each holds the optimizer state (3x the model: 1.6 GB for a 135M
    # model in fp32), and nothing capped their number before.
    "save_total_limit": 2,
}

# Flags that are GRPOConfig fields under another name.
FLAG_FIELDS = {
    "num_generations": "num_generations", "max_completion_length": "max_completion_length",
    "temperature": "temperature", "learning_rate": "learning_rate", "beta": "beta", "loss": "loss_type",
    "epsilon": "epsilon", "epsilon_high": "epsilon_high", "max_steps": "max_steps", "epochs": "num_train_epochs",
    "batch_size": "per_device_train_batch_size", "grad_accum": "gradient_accumulation_steps", "seed": "seed",
    "output": "output_dir", "use_vllm": "use_vllm", "vllm_mode": "vllm_mode",
    "mask_truncated": "mask_truncated_completions",
}

# GRPOConfig fields with a fixed set of values (TRL 1.16 accepts some unknown ones silently).
CHOICES = {
    "importance_sampling_level": ("token", "sequence"),
    "scale_rewards": ("group", "batch", "none"),
    "multi_objective_aggregation": ("sum_then_normalize", "normalize_then_sum"),
    "vllm_importance_sampling_mode": ("token_truncate", "token_mask", "sequence_truncate", "sequence_mask"),
    "vllm_mode": ("colocate", "server"),
}


@dataclass(frozen=True, kw_only=True)
class GRPOSettings(TrainSettings):
    """Everything a GRPO run needs: r1's own settings, and the GRPOConfig fields in `trl`."""

    reward: tuple[str, ...] = ("accuracy", "format")
    reward_params: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    prefill: str | None = None
    prompt_field: str | None = None
    answer_field: str | None = None
    extract_answer: str | None = None
    dynamic_sampling: bool = False
    dynamic_sampling_rounds: int = DEFAULT_MAX_ROUNDS
    shared_prefix: bool = True  # each group's prompt computed once in the training forwards (shared_prefix.py)
    generation: str | None = None  # r1 (default) or trl; see training/generation.py
    stop: tuple[str, ...] = ()
    think_budget: int | None = None  # budget forcing in r1 generation (SamplingParams.think_budget)
    answer_budget: int | None = None  # tokens after the think block (SamplingParams.answer_budget)
    generation_options: Mapping[str, Any] = field(default_factory=dict)  # r1 generation's hf engine: batch_size, dtype
    stall_steps: int = STALL_STEPS

    TRAINER: ClassVar[str] = "grpo"
    WHAT: ClassVar[str] = "GRPO"
    TRL_DEFAULTS: ClassVar[Mapping[str, Any]] = TRL_DEFAULTS
    FLAG_FIELDS: ClassVar[Mapping[str, str]] = FLAG_FIELDS
    TUPLES: ClassVar[tuple[str, ...]] = ("reward", "stop")

    def __post_init__(self) -> None:
        for flag, value in (("--think-budget", self.think_budget), ("--answer-budget", self.answer_budget)):
            if resolve_generation(self.generation, self.trl) == "trl" and value is not None:
                raise R1Error(f"{flag} needs r1 generation: TRL's own generation (--generation trl, vLLM, "
                              "continuous batching) cannot end a think block or an answer mid-decode",
                              hint=f"drop --generation trl / --use-vllm, or drop {flag}")
        if self.generation_options:
            if resolve_generation(self.generation, self.trl) == "trl":
                raise R1Error("--engine-batch-size and --dtype set r1 generation's engine; TRL generates here",
                              hint="drop them, or --generation trl / --use-vllm")
            HFOptions.of(self.generation_options)  # a bad value: BadOption naming the flag
        for flag, value in (("--think-budget", self.think_budget), ("--answer-budget", self.answer_budget)):
            if value is not None and value < 1:
                raise R1Error(f"{flag} must be at least 1, got {value}")
        if not self.reward:
            raise R1Error("no reward selected", hint="add -r NAME, e.g. -r accuracy -r format")
        if self.dynamic_sampling_rounds < 1:
            raise R1Error(f"dynamic_sampling_rounds must be at least 1, got {self.dynamic_sampling_rounds}")
        super().__post_init__()

    @classmethod
    def config_class(cls) -> type:
        from trl import GRPOConfig

        return GRPOConfig

    @classmethod
    def _own(cls, layers: run.Layers) -> dict[str, Any]:
        own = layers.own
        recipe_params, flag_params = layers.recipe_own.get("reward_params"), layers.flag_own.get("reward_params")
        if recipe_params and flag_params:  # per reward: flags win per key
            params = {k: dict(v or {}) for k, v in recipe_params.items()}
            for name, values in flag_params.items():
                params.setdefault(name, {}).update(values)
            own["reward_params"] = params
        return own

    def config(self) -> Any:
        return grpo_config(self)

    def to_json(self) -> dict[str, Any]:
        from r1cli.rewards import RULES

        # the built-in rewards' revision: a run is not continued under rewards that judge differently
        return {**super().to_json(), "reward_rules": RULES}

    def train(self, **options: Any) -> RunResult:
        return train(self, **options)

    def plan_launch(self) -> Launch:
        prepared = prepare(self)
        args = grpo_config(self)  # bad settings fail here, once, before N processes start
        checked = base.record(resolve_template(prepared, self), prepared.records)
        if self.data != "-":
            return Launch(base.ranks_settings(self), checked, args)
        # the ranks cannot all read stdin: they read the prompts, fields mapped, rendered as given
        path = str(self.output_dir / DATA_FILE)
        return Launch(base.ranks_settings(self, data=path, split=None, prompt_field=None, answer_field=None,
                                          extract_answer=None), checked, args, path, prepared.records)

    @staticmethod
    def progress(logs: Mapping[str, Any]) -> dict[str, Any]:
        return {"reward": logs.get("reward"), "accuracy": logs.get("rewards/accuracy/mean"),
                "length": logs.get("completions/mean_length")}

    @staticmethod
    def stats(values: Mapping[str, Any]) -> str:
        parts = []
        for label in ("reward", "accuracy", "length"):
            value = values.get(label)
            if isinstance(value, (int, float)):
                parts.append(f"{label} {value:.3g}" if label != "length" else f"{label} {value:.0f}")
        return ", ".join(parts)


# ---- data and rewards: checked before any model loads -------------------------------------


@dataclass
class Prepared:
    rows: list[dict[str, Any]]  # the prompt records TRL trains on, prompts rendered
    rewards: list[Any]
    template: str | None
    records: list[dict[str, Any]] = field(default_factory=list)  # the same, fields mapped, prompts as read


def prepare(settings: GRPOSettings) -> Prepared:
    """Build the rewards and read the prompts; refuse records that lack a field a reward needs."""
    from r1cli import rewards as registry
    from r1cli.prompts import prepare_prompts
    from r1cli.sources import iter_records
    from r1cli.templates import check_template, render

    built = registry.resolve(list(settings.reward), settings.reward_params)
    for reward in built:  # e.g. the code reward opted into running without a namespace sandbox
        if warning := getattr(reward.fn, "warning", None):
            warnings.warn(warning, UserWarning, stacklevel=1)  # r1's own line on the CLI's stderr
    template = check_template(settings.template) if settings.template is not None else None
    located = prepare_prompts(iter_records(settings.data, split=settings.split), prompt_field=settings.prompt_field,
                              answer_field=settings.answer_field, extract=settings.extract_answer)
    rows, records = [], []
    for where, record in located:
        for name, reward in [(f, r) for f, r in registry.missing_fields(record, built) if f != "completion"]:
            raise BadInput(f"{where}: no '{name}' field, which the {reward} reward needs",
                           hint="add it to the data, map it with --answer-field, or drop -r " + reward)
        row = dict(record)
        if template is not None:
            try:
                row["prompt"] = render(record["prompt"], template, system=settings.system, prefill=settings.prefill)
            except BadInput as exc:
                raise BadInput(f"{where}: {exc.message}", hint=exc.hint) from None
        rows.append(row)
        records.append(record)
    if not rows:
        raise BadInput(f"{settings.data}: no prompt records", hint="GRPO needs at least one prompt")
    return Prepared(rows=rows, rewards=built, template=template, records=records)


def resolve_template(prepared: Prepared, settings: GRPOSettings, tokenizer: Any | None = None) -> GRPOSettings:
    """The settings with the template the prompts are rendered with (no --template: the model's
    tokenizer decides, see `_apply_default_template`)."""
    if prepared.template is None:
        from r1cli.models import load_tokenizer

        _apply_default_template(prepared, settings, tokenizer if tokenizer is not None else load_tokenizer(settings.model))
    return replace(settings, template=prepared.template)


def _apply_default_template(prepared: Prepared, settings: GRPOSettings, tokenizer: Any) -> None:
    """No --template: chat messages when the model has a chat template, else the raw prompt."""
    if prepared.template is not None:
        return
    from r1cli.templates import render

    chat = bool(getattr(tokenizer, "chat_template", None))
    prepared.template = "chat" if chat else "none"
    for row in prepared.rows:
        if chat or isinstance(row["prompt"], str):
            row["prompt"] = render(row["prompt"], prepared.template, system=settings.system if chat else None,
                                   prefill=settings.prefill)
        else:
            raise BadInput(f"record '{row['id']}' has chat messages but the model has no chat template",
                           hint="use --template r1-zero or none with text prompts")


def _continue_prefilled(rows: list[dict[str, Any]], tokenizer: Any) -> None:
    """Chat prompts that end with an assistant message (a prefill, e.g. `--prefill`) become text.

    TRL's GRPOTrainer always adds a generation prompt to chat prompts, which would close the
    prefilled message; rendered here with `continue_final_message`, the model continues it.
    """
    bos = getattr(tokenizer, "bos_token", None)
    adds_bos = bool(bos) and bool(tokenizer("", add_special_tokens=True)["input_ids"])
    for row in rows:
        prompt = row["prompt"]
        if isinstance(prompt, list) and prompt and prompt[-1]["role"] == "assistant":
            text = tokenizer.apply_chat_template(prompt, continue_final_message=True, tokenize=False)
            row["prompt"] = text[len(bos):] if adds_bos and text.startswith(bos) else text  # TRL adds it again


def _dataset(rows: list[dict[str, Any]]) -> Any:
    return run.dataset(rows, what="prompt records",
                       hint="give each field the same type in every record (e.g. `answer` always a string)")


# ---- the trainer ---------------------------------------------------------------------------------


def grpo_config(settings: GRPOSettings) -> Any:
    """The `GRPOConfig`, with bf16 off where there is no GPU; bad values become R1Error."""
    import torch
    from trl import GRPOConfig

    kwargs = run.cpu_defaults(dict(settings.trl))
    if not torch.cuda.is_available() and kwargs.get("use_vllm"):
        raise EngineUnavailable("--use-vllm needs a CUDA GPU", hint="drop --use-vllm on this machine")
    if kwargs.get("use_vllm"):
        import importlib.util

        if importlib.util.find_spec("vllm") is None:
            raise EngineUnavailable("vLLM is not installed", hint="pip install 'r1cli[vllm]' (GPU only), or drop --use-vllm")
    for name, choices in CHOICES.items():
        value = kwargs.get(name)
        if value is not None and not isinstance(value, bool) and value not in choices:
            flag = "--" + next((f for f, t in FLAG_FIELDS.items() if t == name), name).replace("_", "-")
            raise R1Error(f"{flag} (GRPOConfig {name}): unknown value '{value}'. Choose from: {', '.join(choices)}.")
    loss = kwargs.get("loss_type")
    valid = loss_types(GRPOConfig)
    if loss is not None and valid and loss not in valid:
        close = [v for v in valid if v.replace("_", "") == str(loss).replace("_", "").replace("-", "")]
        raise R1Error(f"unknown loss '{loss}'. Choose from: {', '.join(valid)}.",
                      hint=f"did you mean '{close[0]}'?" if close else "--loss takes TRL's loss_type names")
    return run.make_config(GRPOConfig, kwargs, what="GRPO", hint=_config_hint)


def _config_hint(problem: str) -> str | None:
    if "divisible" in problem:
        return ("--batch-size × --grad-accum × processes counts completions and must be a multiple of "
                "--num-generations")
    return None


def loss_types(config_cls: Any) -> list[str]:
    """TRL's loss_type names, read from the field's help ("Supported values are 'grpo', …")."""
    import re

    help_text = next((f.metadata.get("help", "") for f in fields(config_cls) if f.name == "loss_type"), "")
    listed = help_text.partition("Supported values are")[2].partition(". ")[0]
    return re.findall(r"'(\w+)'", listed)


def build_trainer(settings: GRPOSettings, prepared: Prepared, args: Any, callbacks: Sequence[Any] = (),
                  tokenizer: Any | None = None) -> Any:
    """A GRPOTrainer (with dynamic sampling, with shared prompts) over the prepared prompts."""
    from transformers.utils import logging as hf_logging
    from trl import GRPOTrainer

    from r1cli.models import load_tokenizer, resolve_model
    from r1cli.rewards.trl import PooledRewards
    from r1cli.training.dynamic_sampling import dynamic_sampling_trainer
    from r1cli.training.shared_prefix import shared_prefix_trainer

    hf_logging.disable_progress_bar()
    source = resolve_model(settings.model)
    tokenizer = tokenizer if tokenizer is not None else load_tokenizer(settings.model)
    tokenizer.padding_side = "left"
    _apply_default_template(prepared, settings, tokenizer)
    _continue_prefilled(prepared.rows, tokenizer)
    # scored in r1 score's worker pool: in parallel, each record within its rewards' time budget
    pooled = PooledRewards(prepared.rewards)
    reward_fns = pooled.functions()
    if args.reward_weights is None:
        args.reward_weights = [r.weight for r in prepared.rewards]
    cls = GRPOTrainer
    if settings.dynamic_sampling:
        cls = dynamic_sampling_trainer()
    if settings.shared_prefix:
        cls = shared_prefix_trainer(cls)
    rollout = None
    if resolve_generation(settings.generation, args.to_dict()) == "r1":
        from r1cli.training.generation import R1Rollout

        rollout = R1Rollout(stop=settings.stop, options=settings.generation_options, think_budget=settings.think_budget,
                             answer_budget=settings.answer_budget, template=settings.template)
    with warnings.catch_warnings():
        # TRL calls rollout_func experimental; r1 pins TRL 1.16, whose contract it follows
        warnings.filterwarnings("ignore", message=".*'rollout_func'.*", category=UserWarning)
        trainer = cls(model=source, reward_funcs=reward_fns, args=args, train_dataset=_dataset(prepared.rows),
                      processing_class=tokenizer, callbacks=list(callbacks),
                      peft_config=run.lora_config(settings.lora), rollout_func=rollout)
    trainer.r1_rewards = pooled
    if settings.dynamic_sampling:
        trainer.r1_max_rounds = settings.dynamic_sampling_rounds
    return run.quiet_trainer(trainer)


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
    return run.clean_row(row)


# ---- running ---------------------------------------------------------------------------------------


def training_callbacks(settings: GRPOSettings, args: Any, template: Callable[[], str | None], *,
                       warn: Callable[[str], None] | None = None) -> list[Any]:
    """The stall warning, and held-out evaluation with --eval-data (before the metrics callback,
    whose line the `eval/…` keys join)."""
    from r1cli.training.eval_callback import held_out_callbacks
    from r1cli.training.stall import stall_callback

    callbacks = [stall_callback(settings.stall_steps, **({"warn": warn} if warn else {}))]
    return callbacks + held_out_callbacks(settings, max_new_tokens=args.max_completion_length, seed=args.seed,
                                          template=template, prefill=settings.prefill, stop=settings.stop)


@base.one_run
def train(settings: GRPOSettings, *, progress: Callable[..., Any] | None = None, prepared: Prepared | None = None,
          warn: Callable[[str], None] | None = None, record: Mapping[str, Any] | None = None) -> RunResult:
    """Run GRPO in this process (or as one rank of `accelerate launch`) and save the model.

    `record`: what r1_config.json says the run is (a launched rank gets the one its parent checked).
    """
    from transformers.utils import logging as hf_logging

    from r1cli.models import load_tokenizer

    prepared = prepared or prepare(settings)
    args = grpo_config(settings)
    tokenizer = load_tokenizer(settings.model)
    resolved = resolve_template(prepared, settings, tokenizer)
    start = base.begin(settings, record or base.record(resolved, prepared.records), args)
    hf_logging.set_verbosity_error()
    names = [r.name for r in prepared.rewards]
    callbacks = [*training_callbacks(settings, args, lambda: prepared.template, warn=warn),
                 run.metrics_callback(settings.output_dir / METRICS_FILE,
                                      lambda logs, step, elapsed: metrics_row(logs, step, names, elapsed))]
    if progress is not None:
        callbacks.append(run.progress_callback(progress, settings.progress))
    with run.quiet_renames():
        trainer = build_trainer(settings, prepared, args, callbacks, tokenizer=tokenizer)
    return base.fit(settings, trainer, start, args, lora=settings.lora, last_key="reward",
                    close=trainer.r1_rewards.close)  # the reward pool's workers


def launch(settings: GRPOSettings, *, quiet: bool = False) -> int:
    """Check the data in this process, then run N training processes; returns their exit status."""
    return base.launch(settings, quiet=quiet)
