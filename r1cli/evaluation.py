r"""The library half of `r1 eval`: benchmarks, generation, scoring, metrics, results.json.

DeepSeek-R1's evaluation protocol (paper §3): k samples per question at T=0.6, top-p 0.95;
pass@1 = mean correctness over the k, averaged over questions; cons@k = majority vote. A run:

1. `load_benchmark`: a preset (`aime24`, `math500`, `gsm8k`, `gpqa-diamond`: hub id, split and
   fields), a preset applied to a local copy (`gsm8k=test.jsonl`), a local file, or a HF dataset
   name with the field-mapping flags of `r1 rollout`; prompt records with stable ids.
2. `generate`: the records through `r1cli.rollout.rollout` and an engine.
3. `score`: the accuracy and format rewards through `r1cli.scoring` (records that already carry
   an accuracy reward are kept as they are).
4. `benchmark_metrics`: samples grouped by `id`, `r1cli.metrics.summarize`.
5. `write_results`: `results.json` (metrics and every setting needed to reproduce) and the
   scored samples as JSONL, each written atomically.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
import dataclasses
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from r1cli.engines import Engine, SamplingParams
from r1cli.errors import BadInput
from r1cli.prompts import prepare_prompts, prompt_id
from r1cli.sources import Located, iter_records
from r1cli.metrics import Question, Sample, summarize
from r1cli.eval_protocol import PROTOCOLS, lcb_record, protocol_samples
from r1cli.rollout import RolloutStats

RESULTS_FILE = "results.json"
EVAL_REWARDS = ("accuracy", "format")
# DeepSeek-R1's usage recommendation for math: "Please reason step by step, and put your final
# answer within \boxed{}." The accuracy reward reads <answer> first, then the last \boxed{}.
MATH_INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."
CODE_INSTRUCTION = ("Write a Python 3 program that reads the input from stdin and writes the answer to stdout. "
                    "Put the whole program in one ```python code block at the end of your answer.")
CHOICE_INSTRUCTION = ("Please reason step by step, and put the letter of your final answer (A, B, C or D) "
                      "within \\boxed{}.")


# ---- benchmarks --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Preset:
    """A well-known benchmark: where it lives on the hub and how its fields map to prompt records."""

    name: str
    source: str  # hub id, with ":config" when it has one
    split: str
    prompt_field: str
    answer_field: str
    extract: str | None = None  # io.extract_answer's 'gsm8k' / 'boxed'
    id_field: str | None = None
    instruction: str = MATH_INSTRUCTION
    about: str = ""
    convert: Callable[[dict[str, Any], int], dict[str, Any]] | None = field(default=None, repr=False)

    @property
    def repo_id(self) -> str:
        return self.source.partition(":")[0]

    def download_hint(self) -> str:
        name, _, config = self.source.partition(":")
        args = f"'{name}'" + (f", '{config}'" if config else "")
        return (f"where the hub is reachable, save a local copy once: python -c \"import datasets; "
                f"datasets.load_dataset({args}, split='{self.split}').to_json('{self.name}.jsonl')\"; "
                f"then pass --data {self.name}={self.name}.jsonl (the preset's fields, on the local file)")


def gpqa_record(record: Mapping[str, Any], seed: int) -> dict[str, Any]:
    """A GPQA row as a `choice` prompt record: the four answers shuffled (seeded per question), gold = a letter.

    The order depends on (seed, question) only, so it is the same whatever rows are loaded.

    >>> row = {"Question": "2+2?", "Correct Answer": "4", "Incorrect Answer 1": "3",
    ...        "Incorrect Answer 2": "5", "Incorrect Answer 3": "22"}
    >>> r = gpqa_record(row, 0)
    >>> r["task"], sorted(r["choices"]), r["choices"]["ABCD".index(r["answer"])]
    ('choice', ['22', '3', '4', '5'], '4')
    """
    question = str(record["Question"]).strip()
    choices = [str(record[k]).strip() for k in
               ("Correct Answer", "Incorrect Answer 1", "Incorrect Answer 2", "Incorrect Answer 3")]
    digest = hashlib.sha256(f"{seed}\x1f{question}".encode()).digest()
    order = list(range(4))
    random.Random(int.from_bytes(digest[:8], "big")).shuffle(order)
    shuffled = [choices[i] for i in order]
    lines = "\n".join(f"{letter}) {text}" for letter, text in zip("ABCD", shuffled, strict=True))
    out = {"prompt": f"{question}\n\n{lines}", "answer": "ABCD"[order.index(0)], "choices": shuffled, "task": "choice"}
    if record.get("Record ID"):
        out["id"] = str(record["Record ID"])
    return out


_LCB_FIELDS = ("question_content", "public_test_cases")
_GPQA_FIELDS = ("Question", "Correct Answer", "Incorrect Answer 1", "Incorrect Answer 2", "Incorrect Answer 3")

PRESETS: dict[str, Preset] = {
    "aime24": Preset("aime24", "HuggingFaceH4/aime_2024", "train", "problem", "answer", id_field="id",
                     about="AIME 2024 I and II: 30 problems, integer answers"),
    "aime25": Preset("aime25", "yentinglin/aime_2025", "train", "problem", "answer", id_field="id",
                     about="AIME 2025 I and II: 30 problems, integer answers"),
    "math500": Preset("math500", "HuggingFaceH4/MATH-500", "test", "problem", "answer", id_field="unique_id",
                      about="MATH-500 (Lightman et al.): 500 MATH test problems"),
    "gsm8k": Preset("gsm8k", "openai/gsm8k:main", "test", "question", "answer", extract="gsm8k",
                    about="GSM8K test: 1,319 grade-school word problems ('#### answer')"),
    "gpqa-diamond": Preset("gpqa-diamond", "Idavidrein/gpqa:gpqa_diamond", "train", "Question", "Correct Answer",
                           instruction=CHOICE_INSTRUCTION, convert=gpqa_record,
                           about="GPQA Diamond: 198 graduate-level multiple-choice questions (gated on the hub)"),
    "livecodebench": Preset("livecodebench", "livecodebench/code_generation_lite", "test", "question_content",
                            "public_test_cases", instruction=CODE_INSTRUCTION, convert=lcb_record,
                            about="LiveCodeBench code generation (stdin/stdout problems), scored by the code "
                                  "reward in its sandbox"),
}


@dataclass
class Benchmark:
    """One benchmark's prompt records and where they came from."""

    name: str  # the --data value as given
    records: list[dict[str, Any]]
    info: dict[str, Any]  # preset, source, split, fields, instruction: recorded in results.json


def load_benchmark(spec: str, *, split: str | None = None, prompt_field: str | None = None,
                   answer_field: str | None = None, extract: str | None = None, instruction: str | None = None,
                   limit: int | None = None, seed: int = 0) -> Benchmark:
    """The prompt records of a --data value: PRESET, PRESET=FILE, a local file or a HF dataset name.

    The mapping arguments (`split`, fields, `extract`) apply to files and dataset names; presets
    bring their own.
    `instruction` is appended to every prompt (None: the preset's, none for other data; '':
    none). `limit` keeps the first questions. A preset whose hub is unreachable fails at once
    with a hint to use a local copy.
    """
    name, eq, local = spec.partition("=")
    preset = PRESETS.get(name)
    if eq and preset is None:
        raise BadInput(f"--data {spec}: '{name}' is not a preset",
                       hint=f"PRESET=FILE takes one of: {', '.join(PRESETS)}")
    if preset is not None:
        source = local if eq else preset.source
        if not eq:
            check_hub(preset.repo_id, what=f"preset '{name}'", hint=preset.download_hint())
        located = _limited(iter_records(source, split=None if eq else preset.split), limit)
        try:
            records = _preset_records(preset, located, seed)
        except BadInput as exc:  # a local copy that is not the preset's data, or the hub failing mid-way
            raise BadInput(f"--data {spec}: {exc.message}", hint=exc.hint if eq else preset.download_hint()) from None
        info = {"preset": name, "source": source, "split": None if eq else preset.split,
                "prompt_field": preset.prompt_field, "answer_field": preset.answer_field, "extract": preset.extract}
        suffix = preset.instruction if instruction is None else instruction
    else:
        if not Path(spec).exists() and looks_like_hub_id(spec):
            check_hub(spec.partition(":")[0], what=f"dataset '{spec}'",
                      hint="check the name, or save the data as a local .jsonl/.parquet file")
        located = _limited(iter_records(spec, split=split), limit)
        records = _gold_checked(prepare_prompts(located, prompt_field=prompt_field, answer_field=answer_field,
                                                extract=extract))
        info = {"source": spec, "split": split, "prompt_field": prompt_field, "answer_field": answer_field,
                "extract": extract}
        suffix = instruction or ""
    if not records:
        raise BadInput(f"--data {spec}: no questions", hint="the file or split is empty")
    if suffix:
        records = [{**r, "prompt": with_instruction(r["prompt"], suffix)} for r in records]
    info["instruction"] = suffix or None
    info["limit"] = limit
    return Benchmark(spec, records, info)


def _limited(located: Iterator[Located], limit: int | None) -> Iterator[Located]:
    for i, item in enumerate(located):
        if limit is not None and i >= limit:
            return
        yield item


def _preset_records(preset: Preset, located: Iterable[Located], seed: int) -> list[dict[str, Any]]:
    def mapped() -> Iterator[Located]:
        for where, record in located:
            if preset.convert is not None:
                needed = _LCB_FIELDS if preset.name == "livecodebench" else _GPQA_FIELDS
                missing = [f for f in needed if f not in record]
                if missing:
                    raise BadInput(f"{where}: no '{missing[0]}' field",
                                   hint=f"the record's fields are: {', '.join(sorted(record))}")
                try:
                    yield where, preset.convert(record, seed)
                except BadInput as exc:
                    raise BadInput(f"{where}: {exc.message}", hint=exc.hint) from None
                continue
            out = dict(record)
            if preset.id_field and record.get(preset.id_field) is not None:
                out["id"] = str(record[preset.id_field])
            yield where, out

    if preset.convert is not None:
        return _gold_checked(prepare_prompts(mapped()))
    return _gold_checked(prepare_prompts(mapped(), prompt_field=preset.prompt_field,
                                         answer_field=preset.answer_field, extract=preset.extract))


def _gold_checked(located: Iterable[Located]) -> list[dict[str, Any]]:
    """The records, each with what the accuracy reward needs to judge it (`answer`; countdown's
    `numbers`/`target`; code's `tests`): a question without a gold answer cannot be evaluated."""
    from r1cli import rewards

    accuracy = rewards.resolve(["accuracy"])[0]
    out = []
    for where, record in located:
        missing = [f for f in accuracy.fields(record) if record.get(f) is None]
        if missing:
            raise BadInput(f"{where}: no '{missing[0]}' field: a question needs its gold answer to be evaluated",
                           hint=f"the record's fields are: {', '.join(sorted(record))}; map one with --answer-field")
        out.append(record)
    return out


def with_instruction(prompt: Any, instruction: str) -> Any:
    """The prompt with `instruction` appended: to the text, or to the last user message.

    >>> with_instruction("What is 2+2?", "Think.")
    'What is 2+2?\\nThink.'
    """
    if isinstance(prompt, str):
        return f"{prompt.rstrip()}\n{instruction}"
    messages = [dict(m) for m in prompt]
    for message in reversed(messages):
        if message["role"] == "user":
            message["content"] = f"{message['content'].rstrip()}\n{instruction}"
            break
    return messages


def looks_like_hub_id(source: str) -> bool:
    """'org/name' or 'org/name:config', not a path that exists.

    >>> looks_like_hub_id("openai/gsm8k:main"), looks_like_hub_id("data/test.jsonl"), looks_like_hub_id("x.jsonl")
    (True, False, False)
    """
    parts = source.partition(":")[0].split("/")
    return (len(parts) == 2 and all(p and not p.startswith(".") for p in parts) and " " not in source
            and Path(source).suffix.lower() not in (".jsonl", ".json", ".parquet"))


def check_hub(repo_id: str, *, what: str, hint: str) -> None:
    """Fail at once when the hub cannot serve a dataset (offline mode, no network), instead of
    after minutes of retries inside `datasets`; the probe takes milliseconds, or its 10 s timeout.
    """
    from r1cli.models import _hub_offline

    if _hub_offline():
        raise BadInput(f"{what} needs the Hugging Face hub ({repo_id}), and HF_HUB_OFFLINE is set", hint=hint)
    from huggingface_hub import HfApi
    from huggingface_hub.errors import GatedRepoError, HfHubHTTPError, RepositoryNotFoundError

    try:
        HfApi().dataset_info(repo_id, timeout=10)
    except GatedRepoError:
        raise BadInput(f"{what}: the dataset {repo_id} is gated",
                       hint=f"accept its terms at https://huggingface.co/datasets/{repo_id}, then `hf auth login`; "
                            f"or: {hint}") from None
    except RepositoryNotFoundError:
        raise BadInput(f"{what}: no dataset {repo_id} on the hub (or it is private)", hint=hint) from None
    except HfHubHTTPError:
        return  # the hub answered, oddly: let `datasets` try and report
    except Exception as exc:  # noqa: BLE001 - any transport failure means the hub is unreachable
        raise BadInput(f"{what}: the Hugging Face hub is unreachable ({type(exc).__name__})", hint=hint) from None


# ---- generation and scoring --------------------------------------------------------------------


def generate(records: Sequence[dict[str, Any]], engine: Engine, params: SamplingParams, *,
             template: str | None = None, system: str | None = None, prefill: str | None = None,
             batch_size: int = 64,
             stats: RolloutStats | None = None, on_group: Callable[[], None] | None = None) -> list[dict[str, Any]]:
    """Rollout records for every question (params.n each), in input order."""
    from r1cli.rollout import rollout

    located = ((f"question {i}", r) for i, r in enumerate(records, start=1))
    order = {r["id"]: i for i, r in enumerate(records)}
    groups = []
    for group in rollout(located, engine, params, template=template, system=system, prefill=prefill,
                         prompts_per_call=max(1, batch_size // params.n), stats=stats):
        groups.append(group)
        if on_group is not None:
            on_group()
    groups.sort(key=lambda g: order[g[0]["id"]])  # rollout sorts a window by prompt length
    return [r for g in groups for r in g]


def needs_scoring(record: Mapping[str, Any]) -> bool:
    """Whether a record lacks the accuracy reward `r1 eval` judges by."""
    rewards = record.get("rewards")
    return not isinstance(rewards, Mapping) or "accuracy" not in rewards


def score(located: Iterable[tuple[str, dict[str, Any]]], *, workers: int | None = None,
          reward_params: Mapping[str, Mapping[str, Any]] | None = None, rescore: bool = False,
          on_record: Callable[[], None] | None = None) -> list[dict[str, Any]]:
    """The records with `rewards` (accuracy, format), `reward` and `pred`.

    Records that already have an accuracy reward are kept as they are, unless `rescore`.
    """
    from contextlib import closing

    from r1cli import rewards
    from r1cli.scoring import score_located

    items = list(located)
    todo = [(w, r) for w, r in items if rescore or needs_scoring(r)]
    if not todo:
        return [dict(r) for _, r in items]
    fns = rewards.resolve(list(EVAL_REWARDS), reward_params)
    out = []
    with closing(score_located(iter(todo), fns, workers=workers)) as scored:
        for _, record in items:
            out.append(next(scored) if rescore or needs_scoring(record) else dict(record))
            if on_record is not None:
                on_record()
    return out


# ---- metrics -----------------------------------------------------------------------------------


def group_questions(located: Iterable[tuple[str, Mapping[str, Any]]]) -> list[Question]:
    """Scored records grouped by `id` (contiguous or not), in order of first appearance.

    A question's samples are put in `sample` order (file order where there is none), so that the
    majority vote's tie-break (the answer that came first) does not depend on how the file was
    written. A record without `id` is grouped by its prompt (`io.prompt_id`); one with neither is
    an error.
    """
    groups: dict[str, list[tuple[int, int, Sample]]] = {}
    tasks: dict[str, str] = {}
    for position, (where, record) in enumerate(located):
        if record.get("id") is not None:
            key = str(record["id"])
        elif record.get("prompt") is not None:
            key = prompt_id(record["prompt"])
        else:
            raise BadInput(f"{where}: no 'id' (nor 'prompt') to group the samples of a question by",
                           hint="r1 eval --from reads r1 rollout or r1 score records")
        index = record.get("sample")
        order = index if isinstance(index, int) and not isinstance(index, bool) else position
        groups.setdefault(key, []).append((order, position, to_sample(record)))
        tasks.setdefault(key, str(record.get("task") or "math"))
    return [Question(tuple(s for _, _, s in sorted(samples, key=lambda t: t[:2])), tasks[key], key)
            for key, samples in groups.items()]


def to_sample(record: Mapping[str, Any]) -> Sample:
    """What the metrics read of one scored record."""
    rewards = record.get("rewards") if isinstance(record.get("rewards"), Mapping) else {}
    reason = record.get("finish_reason")
    tokens = record.get("completion_tokens")
    pred = record.get("pred")
    return Sample(
        correct=_number(rewards.get("accuracy")),
        pred=pred if isinstance(pred, str) else None,
        tokens=tokens if isinstance(tokens, int) else None,
        truncated=None if reason is None else reason == "length",
        formatted=_number(rewards.get("format")),
    )


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def benchmark_metrics(name: str, scored: Sequence[Mapping[str, Any]], ks: Sequence[int] | None = None, *,
                      seed: int = 0) -> dict[str, Any]:
    """`summarize` of one benchmark's scored records, with `data` first and the `model` that wrote them."""
    questions = group_questions((f"{name}: record {i}", r) for i, r in enumerate(scored, start=1))
    try:
        metrics = summarize(questions, ks, seed=seed)
    except ValueError as exc:
        raise BadInput(f"{name}: {exc}",
                       hint="every question needs the same number of samples n, and k ≤ n") from None
    models = sorted({str(r["model"]) for r in scored if r.get("model") is not None})
    think = [r["think_tokens"] for r in scored if isinstance(r.get("think_tokens"), int)]
    if think:  # a thinking budget or --min-think counted them
        metrics["mean_think_tokens"] = sum(think) / len(think)
        metrics["forced"] = sum(r.get("forced") == "close" for r in scored) / len(scored)
    n = metrics.get("samples")
    if isinstance(n, int) and n > 1 and metrics.get("pass@1") is not None:
        metrics[f"avg@{n}"] = metrics["pass@1"]  # lighteval's name: pass@1 averaged over n samples
    return {"data": name, **metrics, "model": models[0] if len(models) == 1 else (models or None)}


# ---- results -----------------------------------------------------------------------------------


def versions() -> dict[str, str]:
    """Versions of what an evaluation's numbers depend on."""
    from importlib.metadata import PackageNotFoundError, version

    from r1cli import __version__

    out = {"r1cli": __version__}
    for name in ("torch", "transformers", "tokenizers", "accelerate", "trl", "math-verify", "sympy", "datasets",
                 "vllm", "httpx"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            pass
    return out


def samples_file(name: str, taken: set[str]) -> str:
    """A file name for a benchmark's scored samples, unique within the run.

    >>> taken = set()
    >>> samples_file("gsm8k", taken), samples_file("data/test.jsonl", taken), samples_file("test.jsonl", taken)
    ('gsm8k.samples.jsonl', 'test.samples.jsonl', 'test-2.samples.jsonl')
    """
    base = name.partition("=")[0] if name.partition("=")[0] in PRESETS else name
    stem = Path(base).name if Path(base).suffix else base.replace("/", "__").replace(":", "_")
    stem = re.sub(r"[^\w.-]+", "_", Path(stem).stem if Path(stem).suffix else stem) or "data"
    candidate, i = stem, 1
    while candidate in taken:
        i += 1
        candidate = f"{stem}-{i}"
    taken.add(candidate)
    return f"{candidate}.samples.jsonl"


def write_samples(folder: Path, file_name: str, records: Iterable[Mapping[str, Any]]) -> Path:
    """The scored samples as JSONL, written as FILE.part and renamed (r1cli.sink.open_output)."""
    from r1cli.sink import open_output

    path = folder / file_name
    with open_output(str(path)) as sink:
        sink.write_many(records)
    return path


def write_results(folder: Path, settings: Mapping[str, Any], benchmarks: Sequence[Mapping[str, Any]]) -> Path:
    """`results.json`: {"settings", "versions", "benchmarks": [metrics + data info]}, written atomically."""
    data = {"settings": dict(settings), "versions": versions(), "benchmarks": list(benchmarks)}
    from r1cli.files import write_json

    return write_json(folder / RESULTS_FILE, data)


@dataclass(frozen=True, kw_only=True)
class EvalSettings:
    """How the samples were drawn: what results.json records so a run can be repeated."""

    model: str | None = None
    engine: str = "hf"
    template: str | None = None
    system: str | None = None
    prefill: str | None = None
    samples: int = 4
    temperature: float = 0.6
    top_p: float = 0.95
    top_k: int = 0
    max_new_tokens: int = 512
    seed: int = 0
    pass_k: tuple[int, ...] | None = None
    dtype: str | None = None
    batch_size: int = 64
    limit: int | None = None
    instruction: str | None = None
    from_files: tuple[str, ...] = ()
    protocol: str | None = None
    think_budget: tuple[int, ...] | None = None  # one budget, or a sweep
    min_think: int | None = None
    answer_budget: int | None = None  # tokens after the think block, at every budget
    stop: tuple[str, ...] = ()
    model_revision: str | None = None  # the hub commit, or "sha256:…" of a local folder's files

    def __post_init__(self) -> None:
        if self.protocol is not None and self.protocol not in PROTOCOLS:
            raise ValueError(f"unknown protocol '{self.protocol}': choose from {', '.join(PROTOCOLS)}")
        if self.think_budget and self.min_think is not None and self.min_think > min(self.think_budget):
            raise ValueError(f"--min-think {self.min_think} is more than the smallest --think-budget "
                             f"{min(self.think_budget)}")
        for k in self.pass_k or ():
            if k < 1:
                raise ValueError(f"--pass-k values must be ≥ 1, got {k}")
            if not self.from_files and k > self.samples:
                raise ValueError(f"--pass-k {k} is more than -n {self.samples}: pass@k needs k ≤ n samples "
                                 f"per question (use -n {k} or more)")

    def params(self, samples: int | None = None) -> SamplingParams:
        budget = self.think_budget[0] if self.think_budget and len(self.think_budget) == 1 else None
        return SamplingParams(n=samples or self.samples, max_new_tokens=self.max_new_tokens,
                              temperature=self.temperature, top_p=self.top_p, top_k=self.top_k, seed=self.seed,
                              think_budget=budget, min_think=self.min_think,
                              answer_budget=self.answer_budget, stop=tuple(self.stop))

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["pass_k"] = list(self.pass_k) if self.pass_k else None
        out["from_files"] = list(self.from_files)
        out["think_budget"] = list(self.think_budget) if self.think_budget else None
        out["stop"] = list(self.stop)
        if self.from_files:  # nothing was sampled: the sampling settings would be made up
            for key in ("model", "engine", "template", "system", "prefill", "samples", "temperature", "top_p", "top_k",
                        "max_new_tokens", "dtype", "batch_size", "instruction", "limit", "think_budget", "min_think",
                        "answer_budget", "model_revision", "stop"):
                out.pop(key)
        return out


def evaluate(bench: Benchmark, engine: Engine, settings: EvalSettings, *, workers: int | None = None,
             reward_params: Mapping[str, Mapping[str, Any]] | None = None, stats: RolloutStats | None = None,
             on_question: Callable[[], None] | None = None) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(metrics, scored samples) of one benchmark: generate `settings.samples` per question, score, summarize.

    In a notebook: ``evaluate(load_benchmark("gsm8k", limit=50), get_engine("hf", "smollm2-135m"),
    EvalSettings(model="smollm2-135m", samples=4))``.
    """
    (result,) = evaluate_budgets(bench, engine, dataclasses.replace(settings, think_budget=settings.think_budget[:1])
                                 if settings.think_budget else settings, workers=workers,
                                 reward_params=reward_params, stats=stats, on_question=on_question)
    return result


def evaluate_budgets(bench: Benchmark, engine: Engine, settings: EvalSettings, *, workers: int | None = None,
                     reward_params: Mapping[str, Mapping[str, Any]] | None = None, stats: RolloutStats | None = None,
                     on_question: Callable[[], None] | None = None) -> list[tuple[dict[str, Any], list[dict[str, Any]]]]:
    """(metrics, scored samples) of one benchmark per thinking budget of `settings.think_budget`
    (one entry without a budget). A sweep generates once: `rollout.rollout_sweep`."""
    from r1cli.rollout import rollout_sweep

    n = protocol_samples(settings.protocol, bench.name, settings.samples)
    params = settings.params(n)
    budgets = settings.think_budget or ()
    if len(budgets) > 1:
        located = ((f"question {i}", r) for i, r in enumerate(bench.records, start=1))
        runs = rollout_sweep(located, engine, params, budgets, template=settings.template, system=settings.system,
                             prefill=settings.prefill, prompts_per_call=max(1, settings.batch_size // n),
                             stats=stats, on_group=on_question)
    else:
        runs = {budgets[0] if budgets else None: generate(
            bench.records, engine, params, template=settings.template, system=settings.system,
            prefill=settings.prefill, batch_size=settings.batch_size, stats=stats, on_group=on_question)}
    out = []
    for budget, rollouts in runs.items():
        scored = score(((f"{bench.name}: question {r['id']} sample {r['sample']}", r) for r in rollouts),
                       workers=workers, reward_params=reward_params)
        metrics = benchmark_metrics(bench.name, scored, settings.pass_k, seed=settings.seed)
        if budget is not None:  # one row per budget in tables and reports: the name says which
            metrics = {"data": f"{bench.name}@think{budget}", **{k: v for k, v in metrics.items() if k != "data"},
                       "benchmark": bench.name, "think_budget": budget}
        out.append((metrics, scored))
    return out


def evaluate_file(path: str, settings: EvalSettings, *, workers: int | None = None,
                  reward_params: Mapping[str, Mapping[str, Any]] | None = None, rescore: bool = False,
                  on_record: Callable[[], None] | None = None) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(metrics, scored samples) of rollout or scored records in a file (`r1 eval --from`); nothing is generated.

    Records without an accuracy reward (all of them with `rescore`) are scored first (accuracy + format).
    """
    scored = score(iter_records(path), workers=workers, reward_params=reward_params, rescore=rescore,
                   on_record=on_record)
    if not scored:
        raise BadInput(f"{path}: no records", hint="--from reads the output of r1 rollout or r1 score")
    return benchmark_metrics(path, scored, settings.pass_k, seed=settings.seed), scored
