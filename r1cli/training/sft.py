"""Supervised fine-tuning on TRL's `SFTTrainer` (GKD, its logit-distillation variant: r1cli.training.gkd).

Data: prompt–completion records (what `r1 rollout` and `r1 reject-sample` write; every other key
is dropped before TRL sees it) or `messages` records. The loss covers the completion only. A
messages record becomes prompt–completion data: the last turn, which must be the assistant's,
is the completion and the turns before it the prompt. TRL's own way to train on assistant turns
only (`assistant_only_loss`) needs `{% generation %}` markers in the chat template, which many
templates lack (SmolLM2's among them); TRL's prompt–completion path marks the completion's
tokens itself (where the tokenised prompt and prompt+completion diverge) with any template.

Templates as in `r1 rollout` and `r1 grpo`: `chat` (the default when the model has a chat
template) trains on chat messages, `r1-zero` and `none` on plain text, so the student sees its
prompts exactly as rollouts and evaluation show them.

    from r1cli.training.sft import SFTSettings, train
    train(SFTSettings.build({"model": "tiny", "data": "selected.jsonl", "output": "run", "max_steps": 3}))
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar

from r1cli.errors import BadInput, R1Error
from r1cli.sources import Located
from r1cli.training import base, run
from r1cli.training.base import Launch, TrainSettings
from r1cli.training.run import METRICS_FILE, RunResult

DATA_FILE = "sft_data.jsonl"  # the examples, saved for the processes of `--num-processes` when read from stdin
METHODS = {"sft": "r1cli.training.sft:SFTSettings", "gkd": "r1cli.training.gkd:GKDSettings"}

# r1's defaults for SFTConfig/GKDConfig fields where they differ from TRL's (a recipe or a flag overrides them).
TRL_DEFAULTS: dict[str, Any] = {
    "num_train_epochs": 2,  # R1 §2.3.3: two epochs over the ~800k selected samples; TRL's default is 3
    "completion_only_loss": True,  # TRL's None means the same for prompt–completion data; explicit here
    "logging_steps": 1,  # one metrics.jsonl line per step
    "report_to": "none",
    "disable_tqdm": True,  # r1 draws its own bar on stderr
    "save_steps": 50,
    "save_total_limit": 2,  # each checkpoint holds the optimizer state (3x the model in fp32)
}

# Flags that are SFTConfig fields under another name.
FLAG_FIELDS = {
    "learning_rate": "learning_rate", "epochs": "num_train_epochs", "max_length": "max_length", "packing": "packing",
    "max_steps": "max_steps", "batch_size": "per_device_train_batch_size", "grad_accum": "gradient_accumulation_steps",
    "seed": "seed", "output": "output_dir",
}


@dataclass(frozen=True, kw_only=True)
class SFTSettings(TrainSettings):
    """Everything an SFT run needs: r1's own settings, and the SFTConfig fields in `trl`.

    `method`: "sft" (SFTTrainer), or "gkd" (`GKDSettings`: TRL's GKDTrainer, the student also
    learns the `teacher`'s next-token distributions); `build` and `from_json` choose the class.
    """

    method: str = "sft"
    teacher: str | None = None
    eval_max_tokens: int = 512  # completion tokens per held-out sample

    TRAINER: ClassVar[str] = "sft"
    WHAT: ClassVar[str] = "SFT"
    TRL_DEFAULTS: ClassVar[Mapping[str, Any]] = TRL_DEFAULTS
    FLAG_FIELDS: ClassVar[Mapping[str, str]] = FLAG_FIELDS

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.method not in METHODS:
            raise R1Error(f"unknown method '{self.method}'. Choose from: {', '.join(METHODS)}.")
        if self.method != self.TRAINER:
            raise R1Error(f"method '{self.method}' has its own settings class",
                          hint="build them with SFTSettings.build(), which chooses it")
        if self.teacher and self.method == "sft":
            raise R1Error("a teacher is used by --method gkd only", hint="drop the teacher, or use --method gkd")

    @classmethod
    def config_class(cls) -> type:
        from trl import SFTConfig

        return SFTConfig

    @classmethod
    def build(cls, flags: Mapping[str, Any], recipe: str | Path | Mapping[str, Any] | None = None) -> SFTSettings:
        """Resolve settings: r1's defaults < the recipe < flags (None = not given).

        `flags` holds r1 settings (`model`, `template`, …), the flag names of `FLAG_FIELDS`
        (`epochs`, `batch_size`, `output`, …) and any other SFTConfig field by its own name. With
        `method: gkd`, GKDConfig's fields (`lmbda`, `beta`, `max_new_tokens`, …) are accepted too.
        """
        method = flags.get("method") or _recipe_method(recipe) or cls.TRAINER
        return super(SFTSettings, method_class(method)).build(flags, recipe)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SFTSettings:
        return super(SFTSettings, method_class(data.get("method") or cls.TRAINER)).from_json(data)

    def rows(self, examples: list[Example], template: str, told: bool) -> list[dict[str, Any]]:
        """The rows TRL trains on, from the checked examples and the template chosen."""
        return [render_example(e, template, system=_system(e, self.system, told) if template == "chat" else None)
                for e in examples]

    def trainer(self, prepared: Prepared, args: Any, callbacks: Iterable[Any], tokenizer: Any) -> Any:
        return build_trainer(self, prepared, args, callbacks, tokenizer=tokenizer)

    def train(self, **options: Any) -> RunResult:
        return train(self, **options)

    def plan_launch(self) -> Launch:
        prepared = prepare(self)
        args = self.config()  # bad settings fail here, once, before N processes start
        checked = base.record(replace(self, template=prepared.template), prepared.records)
        if self.data != "-":
            return Launch(base.ranks_settings(self), checked, args)
        # the ranks cannot all read stdin: they read the checked examples, as the records said them
        path = str(self.output_dir / DATA_FILE)
        return Launch(base.ranks_settings(self, data=path, split=None), checked, args, path, prepared.records)

    @staticmethod
    def progress(logs: Mapping[str, Any]) -> dict[str, Any]:
        return {"loss": logs.get("loss"), "accuracy": logs.get("mean_token_accuracy")}

    @staticmethod
    def stats(values: Mapping[str, Any]) -> str:
        parts = []
        for label, key in (("loss", "loss"), ("token accuracy", "accuracy")):
            value = values.get(key)
            if isinstance(value, (int, float)):
                parts.append(f"{label} {value:.3g}")
        return ", ".join(parts)


def method_class(method: str) -> type[SFTSettings]:
    """The settings class of an SFT method (`sft`, `gkd`)."""
    if method not in METHODS:
        raise R1Error(f"unknown method '{method}'. Choose from: {', '.join(METHODS)}.")
    import importlib

    module, _, name = METHODS[method].partition(":")
    return getattr(importlib.import_module(module), name)


def _recipe_method(recipe: str | Path | Mapping[str, Any] | None) -> str | None:
    if recipe is None:
        return None
    from r1cli.training.config import OWN_SECTION, load_recipe

    data = recipe if isinstance(recipe, Mapping) else load_recipe(recipe)
    section = data.get(OWN_SECTION)
    return section.get("method") if isinstance(section, Mapping) else None


# ---- data: checked before any model loads -------------------------------------------------------


@dataclass
class Example:
    """One training example: a prompt (text or messages) and its completion (text or assistant messages)."""

    where: str
    prompt: str | list[dict[str, str]]
    completion: str | list[dict[str, str]]
    # how the record says its prompt is shown (rollout / reject-sample records carry it); None: not said
    template: str | None = field(default=None, repr=False)
    system: str | None = field(default=None, repr=False)


def read_examples(located: Iterable[Located]) -> list[Example]:
    """Validate SFT records; other keys are dropped. A record that is neither prompt + completion
    nor messages ending in an assistant turn is a BadInput naming its file:line."""
    examples = [to_example(where, record) for where, record in located]
    if not examples:
        raise BadInput("no SFT records", hint="give records with 'prompt' + 'completion', or 'messages'")
    return examples


def to_example(where: str, record: Mapping[str, Any]) -> Example:
    """An `Example` from a prompt–completion or a messages record.

    >>> to_example("f:1", {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Yo"}]})
    Example(where='f:1', prompt=[{'role': 'user', 'content': 'Hi'}], completion=[{'role': 'assistant', 'content': 'Yo'}])
    """
    if "prompt" in record and "completion" in record:
        prompt, completion = record["prompt"], record["completion"]
        if not (isinstance(prompt, str) and prompt.strip()) and not _messages(prompt):
            raise BadInput(f"{where}: 'prompt' must be a non-empty string or a list of "
                           '{"role": ..., "content": ...} messages')
        if isinstance(completion, list) and _messages(completion):
            if any(m["role"] != "assistant" for m in completion):
                raise BadInput(f"{where}: a 'completion' given as messages must hold assistant turns only")
        elif not isinstance(completion, str):
            raise BadInput(f"{where}: 'completion' must be text or a list of assistant messages",
                           hint=f"got {type(completion).__name__}")
        prefill = record.get("prefill")  # a rollout record: the answer is prefill + completion
        if isinstance(prefill, str) and isinstance(completion, str):
            completion = prefill + completion
        return Example(where, _clean(prompt), _clean(completion), *_carried(where, record))
    if "messages" in record:
        messages = record["messages"]
        if not _messages(messages):
            raise BadInput(f"{where}: 'messages' must be a non-empty list of " '{"role": ..., "content": ...} objects')
        if messages[-1]["role"] != "assistant":
            raise BadInput(f"{where}: the last message must be the assistant's (the completion trained on), "
                           f"got '{messages[-1]['role']}'")
        if len(messages) < 2:
            raise BadInput(f"{where}: 'messages' needs a prompt turn before the assistant's")
        return Example(where, _clean(messages[:-1]), _clean(messages[-1:]), *_carried(where, record))
    fields_ = ", ".join(sorted(record)) or "none"
    raise BadInput(f"{where}: neither 'prompt' + 'completion' nor 'messages'",
                   hint=f"the record's fields are: {fields_}; SFT reads r1 rollout / reject-sample output "
                        "or chat records with 'messages'")


def _carried(where: str, record: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """The record's own `template` and `system` (what r1 rollout and reject-sample write)."""
    template, system = record.get("template"), record.get("system")
    if template is not None and not isinstance(template, str):
        raise BadInput(f"{where}: 'template' must be a template name, got {type(template).__name__}")
    if system is not None and not isinstance(system, str):
        raise BadInput(f"{where}: 'system' must be text or null, got {type(system).__name__}")
    return template, system


def carried_template(examples: Iterable[Example]) -> str | None:
    """The one template the records carry (None if none does); records that disagree are an error:
    one training table has one shape, text or messages."""
    from r1cli.templates import check_template

    seen: dict[str, str] = {}
    for example in examples:
        if example.template is not None:
            seen.setdefault(example.template, example.where)
    if len(seen) > 1:
        found = ", ".join(f"'{name}' ({where})" for name, where in seen.items())
        raise BadInput(f"the records carry different templates: {found}",
                       hint="train on one kind at a time, or choose one with --template")
    if not seen:
        return None
    name, where = next(iter(seen.items()))
    try:
        return check_template(name)
    except BadInput as exc:
        raise BadInput(f"{where}: {exc.message}", hint=exc.hint) from None


def _messages(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(
        isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str) for m in value)


def _clean(value: Any) -> Any:
    """Messages keep `role` and `content` only: one table needs one shape for every record."""
    if isinstance(value, list):
        return [{"role": m["role"], "content": m["content"]} for m in value]
    return value


def render_example(example: Example, template: str, *, system: str | None = None) -> dict[str, Any]:
    """The TRL row of an example: conversational prompt–completion for `chat`, text for `r1-zero`/`none`.

    >>> render_example(Example("f:1", "2+2?", "4"), "chat")
    {'prompt': [{'role': 'user', 'content': '2+2?'}], 'completion': [{'role': 'assistant', 'content': '4'}]}
    >>> render_example(Example("f:1", "2+2?", " 4"), "none")
    {'prompt': '2+2?', 'completion': ' 4'}
    """
    from r1cli.templates import render

    try:
        prompt = render(example.prompt, template, system=system)
    except BadInput as exc:
        raise BadInput(f"{example.where}: {exc.message}", hint=exc.hint) from None
    completion = example.completion
    if template == "chat":
        if isinstance(completion, str):
            completion = [{"role": "assistant", "content": completion}]
    elif not isinstance(completion, str):
        raise BadInput(f"{example.where}: template '{template}' needs a text completion, got chat messages",
                       hint="use --template chat for messages records")
    return {"prompt": prompt, "completion": completion}


@dataclass
class Prepared:
    rows: list[dict[str, Any]]
    template: str
    examples: list[Example]

    @property
    def records(self) -> list[dict[str, Any]]:
        """The examples as SFT records, as their records said them (before any template)."""
        return [{k: v for k, v in (("prompt", e.prompt), ("completion", e.completion), ("template", e.template),
                                   ("system", e.system)) if v is not None} for e in self.examples]


def prepare(settings: SFTSettings, tokenizer: Any | None = None) -> Prepared:
    """Read and check the records, choose the template, and render the rows TRL trains on.

    No model loads here: bad data fails in a second. Without --template, the student's
    tokenizer decides (chat when it has a chat template).
    """
    from r1cli.sources import iter_records
    from r1cli.templates import check_template

    examples = read_examples(iter_records(settings.data, split=settings.split))
    # the records' own template first (the prompt their model saw), unless --template says otherwise
    told = settings.template is not None
    template = check_template(settings.template) if told else carried_template(examples)
    if template is None:
        if tokenizer is None:
            from r1cli.models import load_tokenizer

            tokenizer = load_tokenizer(settings.model)
        template = "chat" if getattr(tokenizer, "chat_template", None) else "none"
    return Prepared(rows=settings.rows(examples, template, told), template=template, examples=examples)


def _system(example: Example, flag: str | None, told: bool) -> str | None:
    """--system, else the record's own system prompt when its template is the one used."""
    if flag is not None or told:
        return flag
    return example.system


def tokenize_row(row: Mapping[str, Any], tokenizer: Any) -> dict[str, list[int]]:
    """`input_ids`: the prompt's tokens exactly as `r1 rollout`'s engine feeds them to the model,
    then the completion's; `completion_mask` marks the completion (the tokens the loss covers).

    TRL tokenises prompt + completion as one text and starts the completion where that and the
    prompt's own tokens diverge: a token spanning the boundary ('.<' in "…1." + "<think>…")
    then counts as completion, and the model trains after a prompt it never sees at inference.
    Tokenised apart, the prompt stays as the engines tokenise it. A chat completion is the text
    the template adds after the generation prompt (SmolLM2: the answer + "<|im_end|>\n"); a text
    completion ends with the EOS token, as TRL does.
    """
    prompt, completion = row["prompt"], row["completion"]
    if isinstance(prompt, str):
        prompt_ids = list(tokenizer(prompt, add_special_tokens=True)["input_ids"])
        completion_ids = list(tokenizer(completion, add_special_tokens=False)["input_ids"])
        if tokenizer.eos_token_id is not None and completion_ids[-1:] != [tokenizer.eos_token_id]:
            completion_ids.append(tokenizer.eos_token_id)
    else:
        prompt_text = tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=False)
        full_text = tokenizer.apply_chat_template(prompt + completion, tokenize=False)
        prompt_ids = list(tokenizer(prompt_text, add_special_tokens=False)["input_ids"])
        if full_text.startswith(prompt_text):
            completion_ids = list(tokenizer(full_text[len(prompt_text):], add_special_tokens=False)["input_ids"])
        else:  # the template renders the prompt otherwise once answered (e.g. drops old reasoning): TRL's rule
            full_ids = list(tokenizer(full_text, add_special_tokens=False)["input_ids"])
            start = next((i for i, (a, b) in enumerate(zip(prompt_ids, full_ids)) if a != b),
                         min(len(prompt_ids), len(full_ids)))
            prompt_ids, completion_ids = full_ids[:start], full_ids[start:]
    return {"input_ids": prompt_ids + completion_ids,
            "completion_mask": [0] * len(prompt_ids) + [1] * len(completion_ids)}


def _tokenized(rows: list[dict[str, Any]], tokenizer: Any, args: Any) -> Any:
    """The rows as TRL's pre-tokenised dataset (TRL then builds labels, truncates and packs)."""
    dataset = _dataset(rows)
    return dataset.map(tokenize_row, fn_kwargs={"tokenizer": tokenizer}, remove_columns=dataset.column_names,
                       num_proc=args.dataset_num_proc)


def _dataset(rows: list[dict[str, Any]]) -> Any:
    return run.dataset(rows, what="SFT records", hint="give every record the same shape (text or chat messages)")


# ---- the trainer ---------------------------------------------------------------------------------


def sft_config(settings: SFTSettings) -> Any:
    """The `SFTConfig` (`GKDConfig` for gkd), with bf16 off where there is no GPU; bad values become R1Error."""
    return settings.config()


def build_trainer(settings: SFTSettings, prepared: Prepared, args: Any, callbacks: Iterable[Any] = (),
                  tokenizer: Any | None = None) -> Any:
    """An SFTTrainer over the prepared rows, tokenised as `tokenize_row` says."""
    from trl import SFTTrainer

    from r1cli.models import load_tokenizer, resolve_model

    no_bars()
    tokenizer = tokenizer if tokenizer is not None else load_tokenizer(settings.model)
    trainer = SFTTrainer(model=resolve_model(settings.model), train_dataset=_tokenized(prepared.rows, tokenizer, args),
                         args=args, processing_class=tokenizer, callbacks=list(callbacks),
                         peft_config=run.lora_config(settings.lora))
    return run.quiet_trainer(trainer)


def no_bars() -> None:
    """TRL's model-loading, tokenising and packing bars off: stderr is for r1's own progress."""
    from datasets.utils.logging import disable_progress_bar as no_dataset_bars
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    no_dataset_bars()


_RENAMED = {"loss": "loss", "learning_rate": "lr", "grad_norm": "grad_norm", "num_tokens": "tokens",
            "mean_token_accuracy": "mean_token_accuracy", "entropy": "entropy", "epoch": "epoch",
            "step_time": "step_time"}


def metrics_row(logs: Mapping[str, Any], step: int, elapsed: float) -> dict[str, Any]:
    """One metrics.jsonl line from TRL's logs: r1's names first, then TRL's other keys as they are.

    >>> metrics_row({"loss": 2.5, "learning_rate": 2e-5, "num_tokens": 640.0, "mean_token_accuracy": 0.25,
    ...              "grad_norm": 1.5, "step_time": 0.4, "epoch": 0.5}, 3, 1.25)
    {'step': 3, 'loss': 2.5, 'lr': 2e-05, 'grad_norm': 1.5, 'tokens': 640.0, 'mean_token_accuracy': 0.25, \
'epoch': 0.5, 'step_time': 0.4, 'time': 1.25}
    """
    row: dict[str, Any] = {"step": step}
    for key, name in _RENAMED.items():
        if key in logs:
            row[name] = logs[key]
    row["time"] = round(elapsed, 3)
    for key, value in logs.items():
        if key not in _RENAMED:
            row[key] = value
    return run.clean_row(row)


# ---- running ---------------------------------------------------------------------------------------


@base.one_run
def train(settings: SFTSettings, *, progress: Callable[..., Any] | None = None, prepared: Prepared | None = None,
          record: Mapping[str, Any] | None = None) -> RunResult:
    """Fine-tune in this process (or as one rank of `accelerate launch`) and save the model.

    `record`: what r1_config.json says the run is (a launched rank gets the one its parent checked).
    """
    from transformers.utils import logging as hf_logging

    from r1cli.models import load_tokenizer
    from r1cli.training.eval_callback import held_out_callbacks

    tokenizer = load_tokenizer(settings.model)
    prepared = prepared or prepare(settings, tokenizer)
    args = settings.config()
    resolved = replace(settings, template=prepared.template)
    start = base.begin(settings, record or base.record(resolved, prepared.records), args)
    hf_logging.set_verbosity_error()
    callbacks = [*held_out_callbacks(settings, max_new_tokens=settings.eval_max_tokens, seed=args.seed,
                                     template=lambda: prepared.template),
                 run.metrics_callback(settings.output_dir / METRICS_FILE, metrics_row)]
    if progress is not None:
        callbacks.append(run.progress_callback(progress, settings.progress))
    with run.quiet_renames():
        trainer = settings.trainer(prepared, args, callbacks, tokenizer)
    return base.fit(settings, trainer, start, args, lora=settings.lora)


def launch(settings: SFTSettings, *, quiet: bool = False) -> int:
    """Check the data and settings in this process, then run N training processes; their exit status."""
    return base.launch(settings, quiet=quiet)
