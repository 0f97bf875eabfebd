"""On-policy distillation (`r1 distill --method on-policy`) on TRL's `DistillationTrainer`.

The student samples completions of the prompts itself and learns the teacher's next-token
distributions on them: a generalised Jensen-Shannon divergence per token, `beta` = 1 (the
default) being the reverse KL(student || teacher), which is mode-seeking and the standard for
distilling reasoning (Agarwal et al. 2024, "On-Policy Distillation of Language Models"; Qwen3
and Thinking Machines' on-policy distillation). No teacher rollouts, scoring or selection: the
data are prompt records, as for `r1 grpo`. Both models must share a tokenizer (the divergence is
taken token by token), checked before either loads, as for `--method gkd`.

The student's run folder is OUTPUT/student (model, checkpoints, metrics.jsonl, r1_config.json).

    from r1cli.training.onpolicy import OnPolicySettings, train
    train(OnPolicySettings.build({"model": "tiny", "teacher": "tiny", "data": "prompts.jsonl", "output": "out/student"}))
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, ClassVar

from r1cli.errors import BadInput, R1Error
from r1cli.training import base, run
from r1cli.training.base import RunSettings
from r1cli.training.run import METRICS_FILE, RunResult

TRL_DEFAULTS: dict[str, Any] = {
    "beta": 1.0,  # reverse KL; explicit so r1_config.json says which divergence was used
    "logging_steps": 1,
    "report_to": "none",
    "disable_tqdm": True,
    "save_steps": 50,
    "save_total_limit": 2,
}

FLAG_FIELDS = {
    "learning_rate": "learning_rate", "epochs": "num_train_epochs", "max_steps": "max_steps",
    "batch_size": "per_device_train_batch_size", "grad_accum": "gradient_accumulation_steps", "seed": "seed",
    "output": "output_dir", "max_completion_length": "max_completion_length", "temperature": "temperature",
    "beta": "beta",
}


@dataclass(frozen=True, kw_only=True)
class OnPolicySettings(RunSettings):
    """The student (`model`), its `teacher`, the prompts, and DistillationConfig's fields in `trl`."""

    model: str
    teacher: str
    data: str = "-"
    template: str | None = None
    system: str | None = None
    prefill: str | None = None
    split: str | None = None
    prompt_field: str | None = None

    TRAINER: ClassVar[str] = "on-policy"
    WHAT: ClassVar[str] = "on-policy distillation"
    TRL_DEFAULTS: ClassVar[Mapping[str, Any]] = TRL_DEFAULTS
    FLAG_FIELDS: ClassVar[Mapping[str, str]] = FLAG_FIELDS

    @property
    def config_key(self) -> str:
        return "distillation_config"

    @classmethod
    def config_class(cls) -> type:
        from trl import DistillationConfig

        return DistillationConfig

    def train(self, **options: Any) -> RunResult:
        return train(self, **options)


def config(settings: OnPolicySettings) -> Any:
    return settings.config()


def prepare(settings: OnPolicySettings, tokenizer: Any) -> tuple[list[dict[str, Any]], str]:
    """The prompts, rendered as `r1 grpo` renders them; (rows with only `prompt`, the template)."""
    from r1cli.prompts import prepare_prompts
    from r1cli.sources import iter_records
    from r1cli.templates import check_template, render

    chat = bool(getattr(tokenizer, "chat_template", None))
    template = check_template(settings.template) if settings.template is not None else ("chat" if chat else "none")
    if template == "chat" and not chat:
        raise R1Error(f"the student ({settings.model}) has no chat template", hint="use --template r1-zero or none")
    rows = []
    for where, record in prepare_prompts(iter_records(settings.data, split=settings.split),
                                         prompt_field=settings.prompt_field):
        try:
            prompt = render(record["prompt"], template, system=settings.system, prefill=settings.prefill)
        except BadInput as exc:
            raise BadInput(f"{where}: {exc.message}", hint=exc.hint) from None
        if isinstance(prompt, list) and prompt[-1]["role"] == "assistant":
            raise BadInput(f"{where}: on-policy distillation adds the generation prompt itself; a prefill would be "
                           "closed as a finished assistant turn", hint="drop --prefill, or use --template r1-zero")
        rows.append({"prompt": prompt})
    if not rows:
        raise BadInput(f"{settings.data}: no prompt records", hint="on-policy distillation needs prompts")
    return rows, template


def check(settings: OnPolicySettings) -> None:
    """Before any model loads: a shared tokenizer and valid trainer settings."""
    from r1cli.training.gkd import check_shared_vocabulary

    check_shared_vocabulary(settings.teacher, settings.model)
    config(settings)


@base.one_run
def train(settings: OnPolicySettings, *, progress: Callable[..., Any] | None = None) -> RunResult:
    """Distil the teacher into the student on the student's own samples, and save the student."""
    from transformers.utils import logging as hf_logging
    from trl import DistillationTrainer

    from r1cli.models import load_model, load_tokenizer, resolve_model
    from r1cli.training.sft import metrics_row

    check(settings)
    tokenizer = load_tokenizer(settings.model)
    tokenizer.padding_side = "left"
    rows, template = prepare(settings, tokenizer)
    args = config(settings)
    start = base.begin(settings, base.record(replace(settings, template=template), rows), args)
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    callbacks = [run.metrics_callback(settings.output_dir / METRICS_FILE, metrics_row)]
    if progress is not None:
        callbacks.append(run.progress_callback(progress, settings.progress))
    teacher = load_model(settings.teacher, dtype="float32")  # the student trains in float32 too
    with run.quiet_renames():
        trainer = DistillationTrainer(model=resolve_model(settings.model), teacher_model=teacher, args=args,
                                      train_dataset=run.dataset(rows, what="prompt records", hint=""),
                                      processing_class=tokenizer, callbacks=callbacks)
    run.quiet_trainer(trainer)
    return base.fit(settings, trainer, start, args)
