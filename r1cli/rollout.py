"""Rollouts: prompt records in, one record per completion out, a prompt's samples together.

The library half of `r1 rollout`; the CLI only parses options and writes what this yields.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import islice
from typing import Any

from r1cli.engines import Engine, Generation, SamplingParams
from r1cli.errors import BadInput
from r1cli.io import Located
from r1cli.templates import check_template, render

@dataclass
class RolloutStats:
    prompts: int = 0
    completions: int = 0
    tokens: int = 0
    truncated: int = 0
    skipped: int = 0  # prompts already complete in the output (--resume)


def resolve_template(template: str | None, engine: Engine) -> str:
    """The default template: `chat` for models with a chat template, else `none`."""
    if template is None:
        return "chat" if engine.has_chat_template() else "none"
    return check_template(template)


def rollout_records(record: dict[str, Any], generation: Generation, model: str,
                    prefill: str | None = None) -> list[dict[str, Any]]:
    """The rollout records of one prompt: the prompt record plus one completion each.

    With a `prefill` (the answer's start, written for the model) the records carry it, so that
    rewards and SFT see the whole answer: `prefill` + `completion`.
    """
    extra = {"prefill": prefill} if prefill else {}
    return [
        {
            **record,
            **extra,
            "sample": s,
            "completion": c.text,
            "finish_reason": c.finish_reason,
            "prompt_tokens": generation.prompt_tokens,
            "completion_tokens": c.completion_tokens,
            "model": model,
        }
        for s, c in enumerate(generation.completions)
    ]


def rollout(
    located: Iterable[Located],
    engine: Engine,
    params: SamplingParams,
    *,
    template: str | None = None,
    system: str | None = None,
    prefill: str | None = None,
    prompts_per_call: int = 8,
    lookahead: int = 8,
    skip: set[str] | frozenset[str] = frozenset(),
    stats: RolloutStats | None = None,
) -> Iterator[list[dict[str, Any]]]:
    """Yield each prompt's group of rollout records as soon as it is generated.

    Prompts are read `prompts_per_call × lookahead` at a time and sorted by length, so each
    engine call pads little; groups therefore come out in generation order. Ids in `skip`
    (complete in a resumed output) are not generated again.
    """
    stats = stats if stats is not None else RolloutStats()
    template = resolve_template(template, engine)
    pending = iter(located)
    while True:
        raw = list(islice(pending, prompts_per_call * lookahead))
        if not raw:
            return
        window: list[tuple[dict[str, Any], Any]] = []
        for where, record in raw:
            if record["id"] in skip:
                stats.skipped += 1
                continue
            try:
                window.append((record, render(record["prompt"], template, system=system, prefill=prefill)))
            except BadInput as exc:
                raise BadInput(f"{where}: {exc.message}", hint=exc.hint) from None
        window.sort(key=lambda item: _size(item[1]))
        for start in range(0, len(window), prompts_per_call):
            call = window[start : start + prompts_per_call]
            generations = engine.generate([p for _, p in call], params, keys=[r["id"] for r, _ in call])
            for (record, _), generation in zip(call, generations):
                group = rollout_records(record, generation, engine.model_name, prefill)
                stats.prompts += 1
                stats.completions += len(group)
                stats.tokens += sum(r["completion_tokens"] for r in group)
                stats.truncated += sum(r["finish_reason"] == "length" for r in group)
                yield group


def _size(prompt: Any) -> int:
    return len(prompt) if isinstance(prompt, str) else sum(len(m["content"]) for m in prompt)
