"""Rollouts: prompt records in, one record per completion out, a prompt's samples together.

The library half of `r1 rollout`; the CLI only parses options and writes what this yields.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from itertools import islice
from typing import Any

from r1cli.engines import Engine, Generation, SamplingParams
from r1cli.errors import BadInput
from r1cli.sources import Located
from r1cli.templates import check_template, render

@dataclass
class RolloutStats:
    prompts: int = 0
    completions: int = 0
    tokens: int = 0
    truncated: int = 0
    skipped: int = 0  # prompts already complete in the output (--resume)


def think_close(template: str) -> str:
    """What budget forcing appends when the think block runs out: the closing tag and the answer
    opening the template expects (r1-zero: `<answer>`; chat models that think: a blank line).

    >>> think_close("r1-zero"), think_close("chat")
    ('</think>\\n<answer>', '</think>\\n\\n')
    """
    return "</think>\n<answer>" if template == "r1-zero" else "</think>\n\n"


def with_think_close(params: SamplingParams, template: str) -> SamplingParams:
    """`params` with the template's forced close, where thinking is tracked and none is set."""
    if params.tracks_thinking and params.think_close is None:
        return replace(params, think_close=think_close(template))
    return params


def resolve_template(template: str | None, engine: Engine) -> str:
    """The default template: `chat` for models with a chat template, else `none`."""
    if template is None:
        return "chat" if engine.has_chat_template() else "none"
    return check_template(template)


def rollout_records(record: dict[str, Any], generation: Generation, model: str,
                    prefill: str | None = None, *, template: str | None = None,
                    system: str | None = None) -> list[dict[str, Any]]:
    """The rollout records of one prompt: the prompt record plus one completion each.

    Each record says how its prompt was rendered (`template`, `system`, `prefill`; null = not
    given), so that reject-sample and sft show a student exactly the prompt the model saw:
    `render(prompt, template, system=system, prefill=prefill)`. The answer is `prefill` +
    `completion`.
    """
    extra = {"template": template, "system": system, "prefill": prefill or None}
    records = [
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
    for out, c in zip(records, generation.completions):
        if c.think_tokens is not None:  # a thinking budget or --min-think was set
            out.update(think_tokens=c.think_tokens, answer_tokens=c.answer_tokens, forced=c.forced)
    return records


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
    params = with_think_close(params, template)
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
                group = rollout_records(record, generation, engine.model_name, prefill, template=template,
                                        system=system)
                stats.prompts += 1
                stats.completions += len(group)
                stats.tokens += sum(r["completion_tokens"] for r in group)
                stats.truncated += sum(r["finish_reason"] == "length" for r in group)
                yield group


def _size(prompt: Any) -> int:
    return len(prompt) if isinstance(prompt, str) else sum(len(m["content"]) for m in prompt)


def rollout_sweep(
    located: Iterable[Located],
    engine: Engine,
    params: SamplingParams,
    budgets: Sequence[int],
    *,
    template: str | None = None,
    system: str | None = None,
    prefill: str | None = None,
    prompts_per_call: int = 8,
    stats: RolloutStats | None = None,
    on_group: Callable[[], None] | None = None,
) -> dict[int, list[dict[str, Any]]]:
    """Rollout records of every prompt under each thinking budget in `budgets`, in input order.

    The engine shares the work where it can (`engines.generate_budgets`): the hf engine decodes
    each prompt once, to the largest budget, and forks the smaller budgets from that prefix.
    Records carry `think_budget`.
    """
    from r1cli.engines import generate_budgets

    stats = stats if stats is not None else RolloutStats()
    template = resolve_template(template, engine)
    params = replace(params, think_close=params.think_close or think_close(template))
    rendered = []
    for where, record in located:
        try:
            rendered.append((record, render(record["prompt"], template, system=system, prefill=prefill)))
        except BadInput as exc:
            raise BadInput(f"{where}: {exc.message}", hint=exc.hint) from None
    order = sorted(range(len(rendered)), key=lambda i: _size(rendered[i][1]))
    out: dict[int, dict[int, list[dict[str, Any]]]] = {b: {} for b in budgets}
    for start in range(0, len(order), prompts_per_call):
        call = order[start : start + prompts_per_call]
        by_budget = generate_budgets(engine, [rendered[i][1] for i in call], params, budgets,
                                     keys=[rendered[i][0]["id"] for i in call])
        for b, generations in by_budget.items():
            for i, generation in zip(call, generations):
                group = [{**r, "think_budget": b} for r in
                         rollout_records(rendered[i][0], generation, engine.model_name, prefill)]
                out[b][i] = group
                stats.completions += len(group)
                stats.tokens += sum(r["completion_tokens"] for r in group)
                stats.truncated += sum(r["finish_reason"] == "length" for r in group)
        stats.prompts += len(call)
        if on_group is not None:
            for _ in call:
                on_group()
    return {b: [r for i in sorted(groups) for r in groups[i]] for b, groups in out.items()}
