"""Inference engines behind one small interface.

An engine turns rendered prompts (raw text, or chat messages that the engine renders with
the model's chat template) into completions. It knows nothing about files, records or
rewards. Engines are looked up by name and imported lazily, so `r1 --help` never imports
torch.

An engine is one module: a class with `name`, `Options` (its options dataclass, see
`r1cli.engines.options`) and `__init__(model, options)`, registered as an entry point of the
group `r1cli.engines`. `get_engine` checks the options against that declaration, and the CLI
derives the engine flags from it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol, Union

from r1cli.engines.options import EngineChoice, EngineOptions, engine_options, option
from r1cli.errors import EngineUnavailable
from r1cli.plugins import Registry

Message = dict[str, str]
Prompt = Union[str, list[Message]]
"""Raw text (no template is applied by the engine) or chat messages (the chat template is)."""


@dataclass(frozen=True, kw_only=True)
class SamplingParams:
    """How to sample. Defaults follow R1's evaluation setting (T=0.6, top-p 0.95)."""

    n: int = 1
    max_new_tokens: int = 512
    temperature: float = 0.6
    top_p: float = 0.95
    top_k: int = 0  # 0 = off
    seed: int = 0
    stop: tuple[str, ...] = ()  # end a completion at any of these; the text keeps the one it met
    ignore_eos: bool = False  # generate exactly max_new_tokens (benchmarks)
    # Budget forcing (s1, Muennighoff et al. 2025): after `think_budget` tokens inside the think
    # block the engine appends `think_close` itself; a `</think>` before `min_think` tokens is
    # replaced by "Wait". `think_close` None: "</think>\n\n" (the rollout layer sets the
    # template's, e.g. "</think>\n<answer>" for r1-zero). `answer_budget`: at most this many
    # tokens after the think block (after the forced close, or after the model's own
    # `</think>`), within max_new_tokens; the completion then ends with finish_reason "length".
    think_budget: int | None = None
    min_think: int | None = None
    think_close: str | None = None
    answer_budget: int | None = None

    def __post_init__(self) -> None:
        if self.n < 1:
            raise ValueError(f"n (samples per prompt) must be ≥ 1, got {self.n}")
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be ≥ 1, got {self.max_new_tokens}")
        if self.temperature < 0:
            raise ValueError(f"temperature must be ≥ 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.top_k < 0:
            raise ValueError(f"top_k must be ≥ 0 (0 = off), got {self.top_k}")
        if self.think_budget is not None and self.think_budget < 1:
            raise ValueError(f"think_budget must be ≥ 1, got {self.think_budget}")
        if self.min_think is not None and self.min_think < 1:
            raise ValueError(f"min_think must be ≥ 1, got {self.min_think}")
        if self.answer_budget is not None and self.answer_budget < 1:
            raise ValueError(f"answer_budget must be ≥ 1, got {self.answer_budget}")
        if self.think_budget is not None and self.min_think is not None and self.min_think > self.think_budget:
            raise ValueError(f"min_think ({self.min_think}) is more than think_budget ({self.think_budget})")

    @property
    def tracks_thinking(self) -> bool:
        """Whether the engine counts think tokens (and forces the block's end or extension)."""
        return self.think_budget is not None or self.min_think is not None or self.answer_budget is not None


@dataclass(frozen=True)
class Completion:
    text: str
    finish_reason: str  # "stop" (EOS or a stop string, which the text keeps) or "length"
    completion_tokens: int
    # with a thinking budget or --min-think: tokens inside the think block, tokens after it, and
    # what the engine did to it ("close": ended at the budget, "extend": a close came too early)
    think_tokens: int | None = None
    answer_tokens: int | None = None
    forced: str | None = None


DEFAULT_MODEL = "smollm2-135m"  # what the engines that load weights load without -m
DEFAULT_THINK_CLOSE = "</think>\n\n"
THINK_EXTEND = "Wait"  # s1's word for "keep thinking"


@dataclass(frozen=True)
class Generation:
    """The n completions of one prompt."""

    prompt_tokens: int
    completions: list[Completion] = field(default_factory=list)


class Engine(Protocol):
    name: str
    model_name: str
    batch_size: int  # sequences worth handing to one generate() call

    def has_chat_template(self) -> bool: ...

    def generate(
        self, prompts: Sequence[Prompt], params: SamplingParams, *, keys: Sequence[str] | None = None
    ) -> list[Generation]:
        """Generate params.n completions for each prompt.

        `keys` (one per prompt, e.g. the record id) make sampling per prompt: the samples of a
        prompt depend on (seed, key, sample index), not on which other prompts share its batch.
        """
        ...


def stop_end(text: str, stop: Sequence[str]) -> int | None:
    """Where a completion that met a stop string ends: just after the stop string that ends first.

    The stop string stays in the completion (vLLM's `include_stop_str_in_output`), so a
    completion stopped at "</answer>" still closes its answer and the format reward can see it.
    None when no stop string occurs in `text`.

    >>> text = "<answer>4</answer> and more"
    >>> text[: stop_end(text, ("</answer>",))]
    '<answer>4</answer>'
    >>> stop_end("no tag", ("</answer>",)) is None
    True
    """
    ends = [text.find(s) + len(s) for s in stop if s and s in text]
    return min(ends) if ends else None


def sample_seed(seed: int, key: str, sample: int) -> int:
    """A 63-bit seed for one (prompt key, sample index) under a run seed; stable across processes."""
    digest = hashlib.blake2b(f"{seed}\x1f{key}\x1f{sample}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") & ((1 << 63) - 1)


def generate_budgets(engine: Engine, prompts: Sequence[Prompt], params: SamplingParams, budgets: Sequence[int], *,
                     keys: Sequence[str] | None = None) -> dict[int, list[Generation]]:
    """The generations of every thinking budget in `budgets` (a sweep), keyed by budget.

    Engines that can share the work (hf: one decode to the largest budget, each smaller budget
    forked from the shared prefix) do; others run one generation per budget.
    """
    budgets = sorted(set(budgets))
    shared = getattr(engine, "generate_budgets", None)
    if shared is not None:
        return shared(prompts, params, budgets, keys=keys)
    return {b: engine.generate(prompts, replace(params, think_budget=b), keys=keys) for b in budgets}


# name -> "module:Class": the entry points of `r1cli.engines` (the built-ins hf, vllm, openai, and any
# installed package's; docs/plugins.md), read from the package metadata, imported when used.
ENGINES = Registry("r1cli.engines", "engine")


def unknown_engine(name: str) -> EngineUnavailable:
    """The error for an engine name that is not one, with the closest name."""
    from r1cli.templates import did_you_mean

    close = did_you_mean(name, ENGINES)
    return EngineUnavailable(f"unknown engine '{name}'" + (f" (did you mean '{close}'?)" if close else ""),
                             hint=f"choose from: {', '.join(sorted(ENGINES))}")


def get_engine(name: str, model: str | None = None, options: Any = None, **values: Any) -> Engine:
    """Build the engine `name` for the model spec `model` (imports the engine lazily).

    `model` None: smollm2-135m for the engines that load weights, the served model for openai.
    `options`: the engine's options dataclass (`EngineOptions`), or a mapping of its fields;
    keywords add to it. They are checked against the engine's declaration: an option it does not
    take is a `BadOption` naming the flag and the engines that take it.

        get_engine("hf", "smollm2-135m", {"batch_size": 16, "dtype": "float32"})
        get_engine("openai", None, base_url="http://127.0.0.1:8000/v1", concurrency=32)
    """
    checked = engine_options(name, options, **values)  # an unknown name: EngineUnavailable with the names
    cls = ENGINES.load(name)  # a plugin that cannot be loaded: PluginError naming its distribution
    return cls(model, checked)

