"""The one adapter from an r1cli reward to TRL's batched reward-function call.

TRL's GRPOTrainer calls each reward function as ``fn(prompts=[…], completions=[…],
completion_ids=[…], **columns)`` where every dataset column arrives as a list aligned with
the completions (plus `trainer_state`, `log_extra`, `log_metric`), and expects one float or
None per completion. TRL names the logged metric ``rewards/<fn.__name__>/mean`` and applies
`reward_weights` itself, so the adapter returns unweighted values.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from r1cli.rewards import Reward, completion_text

# Keywords TRL passes that are not per-completion columns.
_NOT_COLUMNS = frozenset({"trainer_state", "log_extra", "log_metric", "completion_ids", "prompts", "completions"})


def to_trl(reward: Reward) -> Callable[..., list[float | None]]:
    """Wrap `reward` as a TRL reward function named after it.

    Completions may be strings or lists of assistant messages. `completion_ids`, when TRL gives
    them, become each record's `completion_tokens` (unless the dataset has that column).

    >>> from r1cli.rewards import resolve
    >>> fn = to_trl(resolve(["accuracy"])[0])
    >>> chat = [{"role": "assistant", "content": "\\\\boxed{4}"}]
    >>> fn.__name__, fn(prompts=["2+2?", "3+3?"], completions=[chat, "7"], answer=["4", "6"])
    ('accuracy', [1.0, 0.0])
    """

    def reward_fn(
        prompts: Sequence[Any] | None = None,
        completions: Sequence[Any] = (),
        completion_ids: Sequence[Sequence[int]] | None = None,
        **kwargs: Any,
    ) -> list[float | None]:
        columns = {k: v for k, v in kwargs.items() if k not in _NOT_COLUMNS and isinstance(v, (list, tuple))}
        values: list[float | None] = []
        for i, completion in enumerate(completions):
            record = {k: v[i] for k, v in columns.items() if i < len(v)}
            if prompts is not None and i < len(prompts):
                record["prompt"] = prompts[i]
            if completion_ids is not None and i < len(completion_ids) and record.get("completion_tokens") is None:
                record["completion_tokens"] = len(completion_ids[i])
            text = completion_text(completion)
            value = None if text is None else reward.fn(text, **record)
            values.append(None if value is None else float(value))
        return values

    reward_fn.__name__ = reward_fn.__qualname__ = reward.name
    return reward_fn
