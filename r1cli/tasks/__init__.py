"""Built-in generators of verifiable tasks: seeded streams of prompt records with gold answers.

>>> [r["id"] for r in generate("arithmetic", 2, seed=5)]
['arithmetic-5-0', 'arithmetic-5-1']
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from typing import Any

from r1cli.errors import R1Error
from r1cli.tasks import arithmetic, countdown

# name → generator(n, *, seed, **options) -> Iterator[dict]; options are the generator's keywords.
TASKS: dict[str, Callable[..., Iterator[dict[str, Any]]]] = {
    "countdown": countdown.generate,
    "arithmetic": arithmetic.generate,
}


def options(task: str) -> list[str]:
    """The keyword options a task generator takes, besides `seed`.

    >>> options("arithmetic")
    ['difficulty']
    """
    params = inspect.signature(_lookup(task)).parameters.values()
    return [p.name for p in params if p.kind is p.KEYWORD_ONLY and p.name != "seed"]


def generate(task: str, n: int, *, seed: int = 0, **opts: Any) -> Iterator[dict[str, Any]]:
    """`n` prompt records of `task`, the same for the same seed and options.

    Raises R1Error for an unknown task, an unknown option, or an option out of range.
    """
    fn = _lookup(task)
    unknown = sorted(set(opts) - set(options(task)))
    if unknown:
        raise R1Error(
            f"unknown option{'s' if len(unknown) > 1 else ''} for task '{task}': {', '.join(unknown)}",
            hint=f"choose from: {', '.join(options(task))}",
        )
    return fn(n, seed=seed, **opts)


def _lookup(task: str) -> Callable[..., Iterator[dict[str, Any]]]:
    try:
        return TASKS[task]
    except KeyError:
        raise R1Error(f"unknown task '{task}'", hint=f"choose from: {', '.join(TASKS)}") from None
