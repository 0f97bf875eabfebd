"""Reward functions for `r1 score` and GRPO, and the registry that builds them.

A reward is a pure function ``fn(completion: str, **record) -> float | None``: the completion
text, and every other field of the scored record as keywords (``answer``, ``task``, ``numbers``,
``target``, ``tests``, ``prompt``, ``completion_tokens``, …). ``None`` means "cannot be scored"
and is never 0. Rewards are registered as *factories*: ``factory(**params) -> RewardFn``; the
factory's keyword parameters are the reward's parameters (``r1 score --list``), and only the
rewards a run selects are built.

The registry is open (docs/plugins.md): the factories come from the entry points of the group
``r1cli.rewards`` (r1cli's built-ins, and any installed package's), each imported when its name is
first used; ``register`` adds one in this process (a notebook, a test); and a spec may name a
reward function directly by its dotted path, ``package.module:function[:WEIGHT]``.

>>> [r.name for r in resolve(["accuracy", "format:0.5"])]
['accuracy', 'format']
>>> out = score_record({"completion": "<think>2+2</think><answer>4</answer>", "answer": "4"},
...                    resolve(["accuracy", "format:0.5"]))
>>> out["rewards"], out["reward"], out["pred"]
({'accuracy': 1.0, 'format': 1.0}, 1.5, '4')
"""

from __future__ import annotations

import difflib
import inspect
import math
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from r1cli import plugins
from r1cli.errors import PluginError, R1Error, UnknownReward

RewardFn = Callable[..., "float | None"]
Factory = Callable[..., RewardFn]
Needs = Callable[[Mapping[str, Any]], tuple[str, ...]] | tuple[str, ...]

__all__ = [
    "Factory",
    "Needs",
    "REWARDS",
    "RULES",
    "Reward",
    "RewardFn",
    "check_reward_fn",
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


# The revision of the built-in rewards' rules: raised when one of them gives another value for the same
# record, so that `r1 score --resume` refuses to append new verdicts to a file of old ones.
# 2: format/tags score a block without content (empty, a placeholder) as no block; math accuracy
# refuses an answer that restates the question or leaves the arithmetic undone.
# 3: format/tags: a think block that only copies the question (or a piece of it) is no content.
RULES = 3

# The entry points of `r1cli.rewards`: names from the package metadata, modules imported on first use.
REWARDS = plugins.Registry("r1cli.rewards", "reward")
# name -> entry: the factories registered in this process (`register`, which the built-in modules
# also call when they are imported) and those loaded from entry points. A name here is looked up
# here first.
_REGISTRY: dict[str, _Entry] = {}

_SHAPE = ("a reward is `def fn(completion: str, *, answer: str | None = None, **_) -> float | None`: the "
          "completion text, the record's other fields as keywords, None when it cannot be scored (docs/plugins.md)")


def register(name: str, *, needs: Needs = (), summary: str = "") -> Callable[[Factory], Factory]:
    """Register a reward factory under `name` (a decorator), in this process.

    `needs` names the record fields the reward requires, or is a function of the record that
    returns them (accuracy needs `answer` for math but `numbers` and `target` for countdown).
    `summary` defaults to the first line of the factory's docstring. A package that provides
    rewards to every process declares entry points instead (docs/plugins.md).
    """

    def decorate(factory: Factory) -> Factory:
        builtin = REWARDS.builtin.get(name)
        if builtin is not None and builtin != f"{factory.__module__}:{factory.__qualname__}":
            raise ValueError(f"'{name}' is r1cli's built-in reward ({builtin}): register yours under another name")
        if name in _REGISTRY and _REGISTRY[name].factory is not factory:
            raise ValueError(f"reward '{name}' is registered twice")
        _REGISTRY[name] = _Entry(name, factory, needs, summary or _first_line(factory))
        return factory

    return decorate


def _first_line(obj: Any) -> str:
    doc = (inspect.getdoc(obj) or "").strip().splitlines()
    return doc[0] if doc else ""


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
    """The registered reward names (built-in, from installed plugins, registered here), sorted; imports nothing."""
    return sorted(set(_REGISTRY) | set(REWARDS))


def get_factory(name: str) -> Factory:
    """The factory registered under `name`; UnknownReward (with the valid names) otherwise, PluginError
    (naming the distribution and entry point) when its plugin cannot be loaded."""
    return _entry(name).factory


def _entry(name: str) -> _Entry:
    entry = _REGISTRY.get(name)
    if name in REWARDS:
        factory = REWARDS.load(name)  # imports its module once; warns once about a plugin the built-in shadows
        entry = entry or _REGISTRY.get(name)  # the module registered it (the built-ins do)
        if entry is None:
            if not callable(factory) or isinstance(factory, (str, bytes)):
                raise PluginError(f"reward '{name}' ({REWARDS.providers(name)[0].where()}) is a "
                                  f"{type(factory).__name__}, not a reward factory",
                                  hint="point the entry point at a function that takes the reward's parameters as "
                                       "keywords and returns the reward function (docs/plugins.md)")
            entry = _Entry(name, factory, getattr(factory, "needs", ()),
                           getattr(factory, "summary", "") or _first_line(factory))
            _REGISTRY[name] = entry
    if entry is None:
        raise _unknown(name)
    return entry


def _unknown(name: str) -> UnknownReward:
    close = difflib.get_close_matches(name, names(), n=1)
    hint = (f"did you mean '{close[0]}'?" if close else
            "`r1 score --list` shows every reward and its parameters; a function of your own: "
            "-r package.module:function")
    return UnknownReward(f"unknown reward '{name}'. Choose from: {', '.join(names())}.", hint=hint)


def parse_spec(spec: str) -> tuple[str, float]:
    """Split a reward spec ``NAME[:WEIGHT]`` or ``package.module:function[:WEIGHT]`` into name and weight (default 1).

    >>> parse_spec("format:0.5")
    ('format', 0.5)
    >>> parse_spec("accuracy")
    ('accuracy', 1.0)
    >>> parse_spec("my_rewards:brevity"), parse_spec("my_rewards.short:brevity:0.5")
    (('my_rewards:brevity', 1.0), ('my_rewards.short:brevity', 0.5))
    """
    text = spec.strip()
    head, sep, tail = text.rpartition(":")
    head, tail = head.strip(), tail.strip()
    weight = _number(tail) if sep else None
    if weight is not None or (sep and head in names()):  # NAME:WEIGHT (`format:abc` is a bad weight, not a path)
        name = head
    else:
        name, weight = text, 1.0
        if sep and not plugins.is_path(name):
            raise R1Error(f"bad weight '{tail}' in reward spec '{spec}'",
                          hint="write NAME:WEIGHT, e.g. format:0.5, or package.module:function for your own reward")
    if not name:
        raise R1Error(f"empty reward name in '{spec}'", hint="write NAME or NAME:WEIGHT, e.g. format:0.5")
    if weight is None:
        raise R1Error(f"bad weight '{tail}' in reward spec '{spec}'", hint="write NAME:WEIGHT, e.g. format:0.5")
    if not math.isfinite(weight):
        raise R1Error(f"weight of reward '{name}' must be a finite number, got {tail}")
    return name, weight


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def check_reward_fn(fn: Any, where: str) -> tuple[str, ...]:
    """Check that `fn` can be called as a reward (`_SHAPE`); the record fields its signature requires.

    >>> check_reward_fn(lambda completion, *, answer, **_: 1.0, "reward 'x'")
    ('answer',)
    >>> check_reward_fn(lambda completions, **kwargs: [1.0], "reward 'x'")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    r1cli.errors.PluginError: reward 'x' takes TRL's batch arguments (completions, …): r1 calls a reward once ...
    """
    if inspect.isclass(fn) or not callable(fn):
        raise PluginError(f"{where} is a {'class' if inspect.isclass(fn) else type(fn).__name__}, "
                          "not a reward function", hint=_SHAPE)
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):  # a builtin or C callable: nothing to check
        return ()
    kinds = inspect.Parameter
    positional = [p for p in params if p.kind in (kinds.POSITIONAL_ONLY, kinds.POSITIONAL_OR_KEYWORD)]
    if positional and positional[0].name in ("completions", "prompts"):
        raise PluginError(f"{where} takes TRL's batch arguments ({positional[0].name}, …): r1 calls a reward once "
                          "per completion", hint=_SHAPE)
    if not positional and not any(p.kind is kinds.VAR_POSITIONAL for p in params):
        raise PluginError(f"{where} takes no positional argument: it must take the completion text first",
                          hint=_SHAPE)
    if not any(p.kind is kinds.VAR_KEYWORD for p in params):
        raise PluginError(f"{where} does not take **keywords: r1 passes it every other field of the record "
                          "(answer, task, prompt, …)", hint=_SHAPE)
    rest = [p for p in params if p is not (positional[0] if positional else None)]
    stuck = [p.name for p in rest if p.kind is kinds.POSITIONAL_ONLY and p.default is kinds.empty]
    if stuck:
        raise PluginError(f"{where}: parameter '{stuck[0]}' is positional-only; record fields come as keywords",
                          hint=_SHAPE)
    return tuple(p.name for p in rest
                 if p.kind in (kinds.POSITIONAL_OR_KEYWORD, kinds.KEYWORD_ONLY) and p.default is kinds.empty)


def _path_reward(name: str, weight: float, params: Mapping[str, Any] | None) -> Reward:
    """The reward function at the dotted path `name`, checked; its `needs` attribute, else the fields it requires."""
    if params:
        raise R1Error(f"reward '{name}' is a function given by its path: it takes no parameters",
                      hint="to give a reward parameters, provide a factory through an entry point (docs/plugins.md)")
    fn = plugins.load_path(name, "reward")
    required = check_reward_fn(fn, f"reward '{name}'")
    return Reward(name=name, weight=weight, fn=fn, needs=getattr(fn, "needs", required))


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
        if name in seen:
            raise R1Error(
                f"reward '{name}' is selected twice", hint="give each reward once, with NAME:WEIGHT for its weight"
            )
        seen.add(name)
        if plugins.is_path(name):
            built.append(_path_reward(name, weight, params.pop(name, None)))
            continue
        entry = _entry(name)
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
        check_reward_fn(fn, f"reward '{name}' (what its factory returned)")
        built.append(Reward(name=name, weight=weight, fn=fn, needs=entry.needs))
    if params:
        extra = ", ".join(sorted(params))
        raise R1Error(
            f"parameters given for reward(s) not selected: {extra}",
            hint="select them with --reward, or drop their parameters",
        )
    return built


def describe() -> list[dict[str, Any]]:
    """Every registered reward: name, summary, its parameters (name, type, default), the fields it
    needs, and `from` (r1cli, the plugin's distribution, or None: registered in this process).

    A plugin that cannot be loaded is listed with its error as the summary.
    """
    out = []
    for name in names():
        origin = REWARDS.origin(name) if name in REWARDS else None
        try:
            entry = _entry(name)
        except PluginError as exc:
            out.append({"name": name, "summary": f"cannot be loaded: {exc.message}", "params": [], "needs": [],
                        "from": origin})
            continue
        params = [
            {
                "name": p.name,
                "type": _type_name(p.annotation),
                "default": None if p.default is inspect.Parameter.empty else p.default,
            }
            for p in _params(entry.factory).values()
        ]
        needs = None if callable(entry.needs) else list(entry.needs)
        out.append({"name": name, "summary": entry.summary, "params": params, "needs": needs, "from": origin})
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

