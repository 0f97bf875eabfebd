"""Reward functions for `r1 score` and GRPO, and the registry that builds them.

A reward is a pure function ``fn(completion: str, **record) -> float | None``: the completion
text, and every other field of the scored record as keywords (``answer``, ``task``, ``numbers``,
``target``, ``tests``, ``prompt``, ``completion_tokens``, …). ``None`` means "cannot be scored"
and is never 0. Rewards are registered as *factories*: ``factory(**params) -> RewardFn``; the
factory's keyword parameters are the reward's parameters (``r1 score --list``), and only the
rewards a run selects are built.

>>> [r.name for r in resolve(["accuracy", "format:0.5"])]
['accuracy', 'format']
>>> out = score_record({"completion": "<think>2+2</think><answer>4</answer>", "answer": "4"},
...                    resolve(["accuracy", "format:0.5"]))
>>> out["rewards"], out["reward"], out["pred"]
({'accuracy': 1.0, 'format': 1.0}, 1.5, '4')
"""

from __future__ import annotations

import difflib
import importlib.util
import inspect
import math
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from r1cli.errors import R1Error, UnknownReward

RewardFn = Callable[..., "float | None"]
Factory = Callable[..., RewardFn]
Needs = Callable[[Mapping[str, Any]], tuple[str, ...]] | tuple[str, ...]

__all__ = [
    "Factory",
    "Needs",
    "Reward",
    "RewardFn",
    "completion_text",
    "describe",
    "get_factory",
    "missing_fields",
    "names",
    "parse_spec",
    "register",
    "resolve",
    "score_record",
]


@dataclass(frozen=True)
class _Entry:
    name: str
    factory: Factory
    needs: Needs
    summary: str


# name -> entry; filled once, by the explicit import list at the bottom of this module.
_REGISTRY: dict[str, _Entry] = {}


def register(name: str, *, needs: Needs = (), summary: str = "") -> Callable[[Factory], Factory]:
    """Register a reward factory under `name` (a decorator).

    `needs` names the record fields the reward requires, or is a function of the record that
    returns them (accuracy needs `answer` for math but `numbers` and `target` for countdown).
    `summary` defaults to the first line of the factory's docstring.
    """

    def decorate(factory: Factory) -> Factory:
        if name in _REGISTRY and _REGISTRY[name].factory is not factory:
            raise ValueError(f"reward '{name}' is registered twice")
        doc = (inspect.getdoc(factory) or "").strip().splitlines()
        _REGISTRY[name] = _Entry(name, factory, needs, summary or (doc[0] if doc else ""))
        return factory

    return decorate


@dataclass(frozen=True)
class Reward:
    """A built reward: its name, its weight in the total, the pure function, and the fields it needs."""

    name: str
    weight: float
    fn: RewardFn
    needs: Needs = ()

    def fields(self, record: Mapping[str, Any]) -> tuple[str, ...]:
        """The record fields this reward needs for `record`."""
        return tuple(self.needs(record)) if callable(self.needs) else tuple(self.needs)


def names() -> list[str]:
    """The registered reward names, sorted."""
    return sorted(_REGISTRY)


def get_factory(name: str) -> Factory:
    """The factory registered under `name`; UnknownReward (with the valid names) otherwise."""
    try:
        return _REGISTRY[name].factory
    except KeyError:
        raise _unknown(name) from None


def _unknown(name: str) -> UnknownReward:
    close = difflib.get_close_matches(name, names(), n=1)
    hint = f"did you mean '{close[0]}'?" if close else "`r1 score --list` shows every reward and its parameters"
    return UnknownReward(f"unknown reward '{name}'. Choose from: {', '.join(names())}.", hint=hint)


def parse_spec(spec: str) -> tuple[str, float]:
    """Split a reward spec ``NAME[:WEIGHT]`` into its name and weight (default 1.0).

    >>> parse_spec("format:0.5")
    ('format', 0.5)
    >>> parse_spec("accuracy")
    ('accuracy', 1.0)
    """
    name, sep, weight_text = spec.strip().partition(":")
    name = name.strip()
    if not name:
        raise R1Error(f"empty reward name in '{spec}'", hint="write NAME or NAME:WEIGHT, e.g. format:0.5")
    if not sep:
        return name, 1.0
    try:
        weight = float(weight_text)
    except ValueError:
        raise R1Error(
            f"bad weight '{weight_text}' in reward spec '{spec}'", hint="write NAME:WEIGHT, e.g. format:0.5"
        ) from None
    if not math.isfinite(weight):
        raise R1Error(f"weight of reward '{name}' must be a finite number, got {weight_text}")
    return name, weight


def _params(factory: Factory) -> dict[str, inspect.Parameter]:
    try:
        sig = inspect.signature(factory, eval_str=True)
    except (NameError, TypeError):  # an annotation that cannot be evaluated: keep it as text
        sig = inspect.signature(factory)
    return {
        p.name: p
        for p in sig.parameters.values()
        if p.kind in (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    }


def _type_name(annotation: Any) -> str:
    if annotation is inspect.Parameter.empty:
        return "any"
    if isinstance(annotation, str):
        return annotation
    if isinstance(annotation, type) and not typing.get_args(annotation):
        return annotation.__name__
    return str(annotation).replace("typing.", "").replace("NoneType", "None")


def _coerce(value: Any, annotation: Any, where: str) -> Any:
    """Convert a text value (from a CLI flag or an env file) to the parameter's annotated type."""
    if not isinstance(value, str) or annotation in (inspect.Parameter.empty, str, Any):
        return value
    if typing.get_origin(annotation) is typing.Literal:
        if value in typing.get_args(annotation):
            return value
        choices = ", ".join(map(str, typing.get_args(annotation)))
        raise R1Error(f"{where}: '{value}' is not one of: {choices}")
    union = typing.get_origin(annotation) in (typing.Union, types.UnionType)
    args = typing.get_args(annotation) if union else (annotation,)
    if type(None) in args and value.strip().lower() in ("none", "null", ""):
        return None
    for kind in args:
        if kind is bool:
            low = value.strip().lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off"):
                return False
        elif kind in (int, float):
            try:
                return kind(value)
            except ValueError:
                continue
        elif kind is str:
            return value
    raise R1Error(f"{where}: cannot read '{value}' as {_type_name(annotation)}")


def resolve(specs: Sequence[str], params: Mapping[str, Mapping[str, Any]] | None = None) -> list[Reward]:
    """Build the rewards named by `specs` (``NAME[:WEIGHT]``), with per-reward `params`.

    Unknown names raise UnknownReward (with a did-you-mean); unknown parameters, parameters for
    a reward that is not selected, and duplicate names raise R1Error.

    >>> [(r.name, r.weight) for r in resolve(["format:0.5", "length"], {"length": {"kind": "overlong"}})]
    [('format', 0.5), ('length', 1.0)]
    """
    params = dict(params or {})
    built: list[Reward] = []
    seen: set[str] = set()
    for spec in specs:
        name, weight = parse_spec(spec)
        if name not in _REGISTRY:
            raise _unknown(name)
        if name in seen:
            raise R1Error(
                f"reward '{name}' is selected twice", hint="give each reward once, with NAME:WEIGHT for its weight"
            )
        seen.add(name)
        entry = _REGISTRY[name]
        accepted = _params(entry.factory)
        kwargs = dict(params.pop(name, None) or {})
        for key in kwargs:
            if key not in accepted:
                valid = ", ".join(accepted) or "none"
                raise R1Error(f"reward '{name}' has no parameter '{key}'", hint=f"its parameters: {valid}")
            kwargs[key] = _coerce(kwargs[key], accepted[key].annotation, f"reward '{name}' parameter '{key}'")
        try:
            fn = entry.factory(**kwargs)
        except ValueError as exc:  # factories validate their parameters with ValueError
            raise R1Error(f"reward '{name}': {exc}") from exc
        built.append(Reward(name=name, weight=weight, fn=fn, needs=entry.needs))
    if params:
        extra = ", ".join(sorted(params))
        raise R1Error(
            f"parameters given for reward(s) not selected: {extra}",
            hint="select them with --reward, or drop their parameters",
        )
    return built


def describe() -> list[dict[str, Any]]:
    """Every registered reward: name, summary, and its parameters (name, type, default)."""
    out = []
    for name in names():
        entry = _REGISTRY[name]
        params = [
            {
                "name": p.name,
                "type": _type_name(p.annotation),
                "default": None if p.default is inspect.Parameter.empty else p.default,
            }
            for p in _params(entry.factory).values()
        ]
        needs = None if callable(entry.needs) else list(entry.needs)
        out.append({"name": name, "summary": entry.summary, "params": params, "needs": needs})
    return out


def completion_text(completion: Any) -> str | None:
    """The completion as text: a string, or the last assistant message's content of a chat completion.

    >>> completion_text([{"role": "assistant", "content": "hi"}])
    'hi'
    """
    if isinstance(completion, str):
        return completion
    if isinstance(completion, dict):
        content = completion.get("content")
        return content if isinstance(content, str) else None
    if isinstance(completion, list) and completion:
        for message in reversed(completion):
            if isinstance(message, dict) and message.get("role", "assistant") == "assistant":
                content = message.get("content")
                return content if isinstance(content, str) else None
    return None


def missing_fields(record: Mapping[str, Any], rewards: Sequence[Reward]) -> list[tuple[str, str]]:
    """The (field, reward) pairs for fields that `record` lacks (absent or null) and a reward needs.

    >>> missing_fields({"completion": "x"}, resolve(["accuracy", "format"]))
    [('answer', 'accuracy')]
    """
    missing = []
    for reward in rewards:
        for field in ("completion", *reward.fields(record)):
            if record.get(field) is None:
                missing.append((field, reward.name))
    return missing


def score_record(record: Mapping[str, Any], rewards: Sequence[Reward]) -> dict[str, Any]:
    """A new dict: `record` plus ``rewards`` ({name: value}), ``reward`` and ``pred`` (null when nothing was extracted).

    ``reward`` is the weighted sum of the non-null rewards, or None if all are null. ``pred`` is
    the final answer extracted by the first reward that extracts one (accuracy); a stale ``pred``
    from an earlier scoring is dropped. A record without a text completion scores None everywhere.
    """
    out = {k: v for k, v in record.items() if k not in ("rewards", "reward", "pred")}
    text = completion_text(record.get("completion"))
    fields = {k: v for k, v in record.items() if k != "completion"}
    values: dict[str, float | None] = {}
    pred = None
    for reward in rewards:
        value = None if text is None else reward.fn(text, **fields)
        values[reward.name] = None if value is None else float(value)
        extract = getattr(reward.fn, "extract_pred", None)
        if pred is None and extract is not None and text is not None:
            pred = extract(text, fields)
    scored = [(r.weight, values[r.name]) for r in rewards if values[r.name] is not None]
    out["rewards"] = values
    out["reward"] = sum(w * v for w, v in scored) if scored else None
    out["pred"] = pred  # on every scored record: null when nothing was extracted
    return out


# ---- the reward modules: registration happens here, in one place -------------------------
# Each module keeps its heavy imports (math_verify, sympy, langdetect) inside functions, so
# importing r1cli.rewards stays cheap.
from r1cli.rewards import accuracy, format, language, length, repetition  # noqa: E402, F401, A004

if importlib.util.find_spec("r1cli.rewards.code") is not None:  # `code` comes with the code sandbox
    from r1cli.rewards import code  # noqa: E402, F401
