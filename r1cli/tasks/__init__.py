"""Generators of verifiable tasks: seeded streams of prompt records with gold answers.

A task is a generator function ``generate(n: int, *, seed: int = 0, **options) -> Iterator[dict]``
registered in the entry-point group ``r1cli.tasks``: the built-ins (countdown, arithmetic) and any
installed package's (docs/plugins.md). Its keyword-only parameters besides `seed` are its options.
Each record is a prompt record (DESIGN.md): at least `prompt`, usually `id`, `answer` and `task`.

>>> [r["id"] for r in generate("arithmetic", 2, seed=5)]
['arithmetic-5-0', 'arithmetic-5-1']
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from typing import Any

from r1cli import plugins
from r1cli.errors import PluginError, R1Error

__all__ = ["TASKS", "generate", "options", "parameters"]

# name -> "module:generate", read from the entry points; a module is imported when its task is used.
TASKS = plugins.Registry("r1cli.tasks", "task")

_SHAPE = ("a task is `def generate(n: int, *, seed: int = 0, **options) -> Iterator[dict]`, yielding "
          "prompt records (docs/plugins.md)")


def parameters(task: str) -> list[inspect.Parameter]:
    """The keyword-only parameters of a task's generator, besides `seed`: its options."""
    try:
        signature = inspect.signature(_lookup(task), eval_str=True)
    except (NameError, TypeError):  # an annotation that cannot be evaluated: keep it as text
        signature = inspect.signature(_lookup(task))
    return [p for p in signature.parameters.values() if p.kind is p.KEYWORD_ONLY and p.name != "seed"]


def options(task: str) -> list[str]:
    """The keyword options a task generator takes, besides `seed`.

    >>> options("arithmetic")
    ['difficulty']
    """
    return [p.name for p in parameters(task)]


def generate(task: str, n: int, *, seed: int = 0, **opts: Any) -> Iterator[dict[str, Any]]:
    """`n` prompt records of `task`, the same for the same seed and options.

    Raises R1Error for an unknown task, an unknown option, or an option out of range; PluginError
    when a plugin's task cannot be loaded or yields something that is not a prompt record.
    """
    fn = _lookup(task)
    unknown = sorted(set(opts) - set(options(task)))
    if unknown:
        raise R1Error(
            f"unknown option{'s' if len(unknown) > 1 else ''} for task '{task}': {', '.join(unknown)}",
            hint=f"choose from: {', '.join(options(task)) or 'none (it takes no options)'}",
        )
    records = fn(n, seed=seed, **opts)
    return records if task in TASKS.builtin else _checked(task, records)


def _checked(task: str, records: Iterator[Any]) -> Iterator[dict[str, Any]]:
    """A plugin's records, checked; its ValueError (a bad option) as an R1Error, as a reward factory's."""
    try:
        yield from _records(task, records)
    except ValueError as exc:
        raise R1Error(f"task '{task}': {exc}") from exc


def _records(task: str, records: Iterator[Any]) -> Iterator[dict[str, Any]]:
    for i, record in enumerate(records):
        if not isinstance(record, dict) or not isinstance(record.get("prompt"), (str, list)):
            got = type(record).__name__ if not isinstance(record, dict) else "a record without a prompt"
            raise PluginError(f"task '{task}' ({TASKS.providers(task)[0].where()}) yielded {got} as record {i + 1}",
                              hint=_SHAPE)
        yield record


def _lookup(task: str) -> Callable[..., Iterator[dict[str, Any]]]:
    if task not in TASKS:
        from r1cli.templates import did_you_mean

        close = did_you_mean(task, list(TASKS))
        raise R1Error(f"unknown task '{task}'" + (f" (did you mean '{close}'?)" if close else ""),
                      hint=f"choose from: {', '.join(TASKS)}")
    fn = TASKS.load(task)
    where = f"task '{task}' ({TASKS.providers(task)[0].where()})"
    if not callable(fn) or inspect.isclass(fn):
        raise PluginError(f"{where} is a {type(fn).__name__}, not a generator function", hint=_SHAPE)
    params = inspect.signature(fn).parameters
    if "seed" not in params or params["seed"].kind not in (inspect.Parameter.KEYWORD_ONLY,
                                                           inspect.Parameter.POSITIONAL_OR_KEYWORD):
        raise PluginError(f"{where} takes no `seed` keyword: the same seed must give the same records",
                          hint=_SHAPE)
    return fn
