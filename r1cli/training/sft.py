"""Supervised fine-tuning on TRL's `SFTTrainer` (and GKD distillation on TRL's `GKDTrainer`).

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
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from r1cli.errors import BadInput, R1Error
from r1cli.io import Located
from r1cli.training import run
from r1cli.training.config import field_names, to_jsonable
from r1cli.training.run import CONFIG_FILE, METRICS_FILE, RunResult

DATA_FILE = "sft_data.jsonl"  # the examples, saved for the processes of `--num-processes` when read from stdin
METHODS = ("sft", "gkd")

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
class SFTSettings:
    """Everything an SFT run needs: r1's own settings, and the SFTConfig (GKDConfig) fields in `trl`.

    `method`: "sft" (SFTTrainer), or "gkd" (TRL's GKDTrainer: the student also learns the
    `teacher`'s next-token distributions, on its own samples a `lmbda` share of the steps).
    """

    model: str = "smollm2-135m"
    data: str = "-"
    template: str | None = None
    system: str | None = None
    split: str | None = None
    lora: tuple[int, int] | None = None
    resume: bool = False
    num_processes: int = 1
    method: str = "sft"
    teacher: str | None = None
    eval_data: str | None = None
    eval_every: int | None = None
    eval_samples: int = 4
    eval_max_tokens: int = 512  # completion tokens per held-out sample
    save_best: str | None = None
    trl: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        from r1cli.training.eval_callback import check_eval_settings

        check_eval_settings(self)
        if self.method not in METHODS:
            raise R1Error(f"unknown method '{self.method}'. Choose from: {', '.join(METHODS)}.")
        if self.method == "gkd" and not self.teacher:
            raise R1Error("--method gkd needs a teacher model", hint="give --teacher MODEL")
        if self.method == "sft" and self.teacher:
            raise R1Error("a teacher is used by --method gkd only", hint="drop the teacher, or use --method gkd")
        if self.num_processes < 1:
            raise R1Error(f"--num-processes must be at least 1, got {self.num_processes}")
        if not self.trl.get("output_dir"):
            raise R1Error("no output folder", hint="give -o FOLDER (or output_dir in the recipe)")

    @property
    def output_dir(self) -> Path:
        return Path(self.trl["output_dir"])

    @classmethod
    def own_fields(cls) -> set[str]:
        return {f.name for f in fields(cls)} - {"trl"}

    @classmethod
    def build(cls, flags: Mapping[str, Any], recipe: str | Path | Mapping[str, Any] | None = None) -> SFTSettings:
        """Resolve settings: r1's defaults < the recipe < flags (None = not given).

        `flags` holds r1 settings (`model`, `template`, …), the flag names of `FLAG_FIELDS`
        (`epochs`, `batch_size`, `output`, …) and any other SFTConfig field by its own name. With
        `method: gkd`, GKDConfig's fields (`lmbda`, `beta`, `max_new_tokens`, …) are accepted too.
        """
        method = flags.get("method") or _recipe_method(recipe) or "sft"
        layers = run.layer_settings(flags, recipe, trainer_fields=field_names(config_class(method)),
                                    own_fields=cls.own_fields(), flag_fields=FLAG_FIELDS, defaults=TRL_DEFAULTS,
                                    what="SFT" if method == "sft" else "GKD")
        own = layers.own
        own["lora"] = run.normalise_lora(own.get("lora"))
        return cls(**own, trl=layers.trainer)

    def to_json(self) -> dict[str, Any]:
        return to_jsonable(asdict(self))

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SFTSettings:
        own = {k: v for k, v in data.items() if k in cls.own_fields()}
        own["lora"] = run.normalise_lora(own.get("lora"))
        return cls(**own, trl=dict(data.get("trl", {})))


def _recipe_method(recipe: str | Path | Mapping[str, Any] | None) -> str | None:
    if recipe is None:
        return None
    from r1cli.training.config import OWN_SECTION, load_recipe

    data = recipe if isinstance(recipe, Mapping) else load_recipe(recipe)
    section = data.get(OWN_SECTION)
    return section.get("method") if isinstance(section, Mapping) else None


def config_class(method: str) -> type:
    if method == "gkd":
        return gkd_classes()[0]
    from trl import SFTConfig

    return SFTConfig


def gkd_classes() -> tuple[type, type]:
    """TRL's (GKDConfig, GKDTrainer): in `trl.experimental.gkd` since TRL 1.0, top-level `trl` before."""
    import warnings

    with warnings.catch_warnings():
        # The "APIs here are unstable" notice of trl.experimental: r1 pins what it uses in its tests.
        warnings.filterwarnings("ignore", message=".*trl.experimental.*")
        try:
            from trl.experimental.gkd import GKDConfig, GKDTrainer
        except ImportError:
            from trl import GKDConfig, GKDTrainer  # type: ignore[attr-defined,no-redef]
    return GKDConfig, GKDTrainer


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


def prepare(settings: SFTSettings, tokenizer: Any | None = None) -> Prepared:
    """Read and check the records, choose the template, and render the rows TRL trains on.

    No model loads here: bad data fails in a second. Without --template, the student's
    tokenizer decides (chat when it has a chat template).
    """
    from r1cli.io import iter_records
    from r1cli.templates import check_template

    examples = read_examples(iter_records(settings.data, split=settings.split))
    # the records' own template first (the prompt their model saw), unless --template says otherwise
    told = settings.template is not None
    template = check_template(settings.template) if told else carried_template(examples)
    if settings.method == "gkd":
        check_shared_vocabulary(settings.teacher or "", settings.model)
    if template is None:
        if tokenizer is None:
            from r1cli.models import load_tokenizer

            tokenizer = load_tokenizer(settings.model)
        template = "chat" if getattr(tokenizer, "chat_template", None) else "none"
    if settings.method == "gkd" and template != "chat":
        raise R1Error(f"--method gkd trains on chat messages; template '{template}' gives plain text",
                      hint="use --template chat with a student that has a chat template, or --method sft")
    rows = [render_example(e, template, system=_system(e, settings.system, told) if template == "chat" else None)
            for e in examples]
    if settings.method == "gkd":  # TRL's ChatML collator reads whole conversations
        rows = [{"messages": r["prompt"] + r["completion"]} for r in rows]
    return Prepared(rows=rows, template=template, examples=examples)


def _system(example: Example, flag: str | None, told: bool) -> str | None:
    """--system, else the record's own system prompt when its template is the one used."""
    if flag is not None or told:
        return flag
    return example.system


def check_shared_vocabulary(teacher: str, student: str) -> None:
    """Refuse a teacher and a student whose tokenizers (or embedding sizes) differ: logit
    distillation compares their next-token distributions token by token. Tokenizers and configs
    only: no model loads."""
    from r1cli.models import load_tokenizer, resolve_model

    t_vocab, s_vocab = load_tokenizer(teacher).get_vocab(), load_tokenizer(student).get_vocab()
    if t_vocab != s_vocab:
        only_t = sorted(set(t_vocab) - set(s_vocab))
        only_s = sorted(set(s_vocab) - set(t_vocab))
        moved = sum(1 for tok, i in t_vocab.items() if tok in s_vocab and s_vocab[tok] != i)
        example = (f"'{only_s[0]}' only in the student" if only_s else f"'{only_t[0]}' only in the teacher"
                   if only_t else f"{moved:,} tokens with other ids")
        raise R1Error(f"the teacher ({teacher}) and the student ({student}) do not share a tokenizer: "
                      f"{len(t_vocab):,} vs {len(s_vocab):,} tokens ({example})",
                      hint="--method gkd compares the two models' next-token distributions token by token; use "
                           "--method sft (it trains on the teacher's text), or a student of the teacher's family")
    from transformers import AutoConfig

    sizes = [AutoConfig.from_pretrained(resolve_model(m)).get_text_config().vocab_size for m in (teacher, student)]
    if sizes[0] != sizes[1]:
        raise R1Error(f"the teacher ({teacher}) and the student ({student}) share a tokenizer but their output "
                      f"layers differ: vocab_size {sizes[0]:,} vs {sizes[1]:,}",
                      hint="--method gkd needs equal vocab_size in both configs; use --method sft")


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
    """The `SFTConfig` (or `GKDConfig`), with bf16 off where there is no GPU; bad values become R1Error."""
    kwargs = run.cpu_defaults(dict(settings.trl))
    if kwargs.get("packing") and settings.method == "gkd":
        raise R1Error("--packing does not apply to --method gkd (it trains on whole conversations)")
    return run.make_config(config_class(settings.method), kwargs, what=settings.method.upper())


def build_trainer(settings: SFTSettings, prepared: Prepared, args: Any, callbacks: Iterable[Any] = (),
                  tokenizer: Any | None = None) -> Any:
    """An SFTTrainer (or GKDTrainer) over the prepared rows."""
    from datasets.utils.logging import disable_progress_bar as no_dataset_bars
    from transformers.utils import logging as hf_logging

    from r1cli.models import load_model, load_tokenizer, resolve_model

    hf_logging.disable_progress_bar()
    no_dataset_bars()  # TRL's tokenising/packing bars: stderr is for r1's own progress
    source = resolve_model(settings.model)
    tokenizer = tokenizer if tokenizer is not None else load_tokenizer(settings.model)
    common = dict(args=args, processing_class=tokenizer, callbacks=list(callbacks),
                  peft_config=run.lora_config(settings.lora))
    if settings.method == "gkd":  # GKD's collator tokenises whole conversations itself
        _, trainer_cls = gkd_classes()
        teacher = load_model(settings.teacher or "", dtype="float32")  # the student trains in float32 too
        trainer = trainer_cls(model=source, teacher_model=teacher, train_dataset=_dataset(prepared.rows), **common)
    else:
        from trl import SFTTrainer

        trainer = SFTTrainer(model=source, train_dataset=_tokenized(prepared.rows, tokenizer, args), **common)
    return run.quiet_trainer(trainer)


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


def _progress_values(logs: Mapping[str, Any]) -> dict[str, Any]:
    return {"loss": logs.get("loss"), "accuracy": logs.get("mean_token_accuracy")}


# ---- running ---------------------------------------------------------------------------------------


def check_output(settings: SFTSettings) -> str | None:
    """The checkpoint to resume from (with --resume); refuse to overwrite a finished or started run."""
    return run.check_output(settings.output_dir, settings.resume)


def write_config(settings: SFTSettings, args: Any | None = None) -> None:
    run.write_config(settings.output_dir, settings.to_json(), args=args, config_key=f"{settings.method}_config")


def train(settings: SFTSettings, *, progress: Callable[..., Any] | None = None,
          prepared: Prepared | None = None) -> RunResult:
    """Fine-tune in this process (or as one rank of `accelerate launch`) and save the model."""
    from r1cli.models import load_tokenizer

    tokenizer = load_tokenizer(settings.model)
    prepared = prepared or prepare(settings, tokenizer)
    args = sft_config(settings)
    checkpoint = check_output(settings)
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    out = settings.output_dir
    from r1cli.training.eval_callback import held_out_callbacks

    callbacks = [*held_out_callbacks(settings, max_new_tokens=settings.eval_max_tokens, seed=args.seed,
                                     template=lambda: prepared.template),
                 run.metrics_callback(out / METRICS_FILE, metrics_row)]
    if progress is not None:
        callbacks.append(run.progress_callback(progress, _progress_values))
    with run.quiet_renames():
        trainer = build_trainer(settings, prepared, args, callbacks, tokenizer=tokenizer)
    if trainer.accelerator.is_main_process:
        write_config(replace(settings, template=prepared.template), args)
    return run.fit(trainer, out, checkpoint, settings.lora, last_key="loss")


# ---- several processes -----------------------------------------------------------------------------

WORKER_MODULE = "r1cli.cli.sft"


def launch(settings: SFTSettings, *, quiet: bool = False) -> int:
    """Check the data and settings in this process, then run N training processes; their exit status."""
    prepared = prepare(settings)
    sft_config(settings)  # bad settings fail here, once, before N processes start
    check_output(settings)
    out = settings.output_dir
    out.mkdir(parents=True, exist_ok=True)
    child = replace(settings, num_processes=1, template=prepared.template)
    if settings.data == "-":  # the ranks cannot all read stdin: give them the checked examples as a file
        from r1cli.io import dumps

        text = "".join(dumps({"prompt": e.prompt, "completion": e.completion}) for e in prepared.examples)
        (out / DATA_FILE).write_text(text, encoding="utf-8")
        child = replace(child, data=str(out / DATA_FILE), split=None)
    write_config(child)
    command = run.launch_command(WORKER_MODULE, out / CONFIG_FILE, settings.num_processes, run.free_port(),
                                 quiet=quiet)
    return run.run_launch(command, settings.num_processes)


def worker_settings(config_path: str | Path) -> SFTSettings:
    """The settings a launched rank runs with: the `r1` section of r1_config.json."""
    return SFTSettings.from_json(run.read_config(config_path))
